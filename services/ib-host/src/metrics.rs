//! ib-host's Prometheus metrics, served with the RPC metrics by [`ktrdr_common::metrics`].

use std::sync::LazyLock;

use ktrdr_common::metrics::{Counter, Family, Gauge, Histogram, latency_histogram, register};

type ByRule = Family<[(&'static str, &'static str); 1], Histogram, fn() -> Histogram>;

/// Each wait of a request at the pacing gate, by the rule that held it.
pub static PACING_WAIT: LazyLock<ByRule> = LazyLock::new(|| {
    register(
        "ib_pacing_wait_seconds",
        "Time requests waited at the IB pacing gate, by rule",
        Family::new_with_constructor(latency_histogram as fn() -> Histogram),
    )
});
/// Requests waiting at the pacing gate now.
pub static PACING_QUEUE: LazyLock<Gauge> = LazyLock::new(|| {
    register(
        "ib_pacing_queue_depth",
        "Requests waiting at the IB pacing gate",
        Gauge::default(),
    )
});
/// 162 pacing violations IB reported despite the gate.
pub static PACING_VIOLATIONS: LazyLock<Counter> = LazyLock::new(|| {
    register(
        "ib_pacing_violations",
        "Pacing violations (IB error 162) reported despite the gate",
        Counter::default(),
    )
});
/// Reconnections after a lost IB connection.
pub static RECONNECTS: LazyLock<Counter> = LazyLock::new(|| {
    register(
        "ib_reconnects",
        "Reconnections to IB after the connection was lost",
        Counter::default(),
    )
});
/// 1 while connected to IB.
pub static CONNECTED: LazyLock<Gauge> = LazyLock::new(|| {
    register(
        "ib_connected",
        "1 while the TWS API connection is up, else 0",
        Gauge::default(),
    )
});

/// Registers every metric, so a scrape shows them (at zero) before anything happened.
pub fn init() {
    LazyLock::force(&PACING_WAIT);
    LazyLock::force(&PACING_QUEUE);
    LazyLock::force(&PACING_VIOLATIONS);
    LazyLock::force(&RECONNECTS);
    LazyLock::force(&CONNECTED);
}
