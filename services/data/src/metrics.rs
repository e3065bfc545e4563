//! The data service's Prometheus metrics, served with the RPC metrics by
//! [`ktrdr_common::metrics`].

use std::sync::LazyLock;

use ktrdr_common::metrics::{Counter, register};

/// Bars committed to the store (each write's new bars, not the partition rewrites).
pub static BARS_WRITTEN: LazyLock<Counter> = LazyLock::new(|| {
    register(
        "store_bars_written",
        "Bars committed to the store",
        Counter::default(),
    )
});
/// Bytes of Parquet partitions written (rewrites of merged partitions included).
pub static BYTES_WRITTEN: LazyLock<Counter> = LazyLock::new(|| {
    register(
        "store_bytes_written",
        "Bytes of Parquet partitions written, rewrites included",
        Counter::default(),
    )
});

/// Registers every metric, so a scrape shows them (at zero) before anything happened.
pub fn init() {
    LazyLock::force(&BARS_WRITTEN);
    LazyLock::force(&BYTES_WRITTEN);
}
