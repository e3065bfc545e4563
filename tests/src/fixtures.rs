//! Market data the cross-service tests and benchmarks share.

use ktrdr_proto::common::v1::{BarColumns, TimeRange};

/// 2024-01-01 00:00 UTC
pub const T0: i64 = 1_704_067_200_000;
pub const HOUR: i64 = 3_600_000;

/// `n` hourly bars from [`T0`]: a seeded random walk with trending regimes (SplitMix64, as
/// ktrdr-strategy's generator), so ZigZag labelling finds segments to learn.
pub fn trending_hourly_bars(n: usize, seed: u64) -> BarColumns {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut c = BarColumns::default();
    let (mut price, mut drift) = (100.0_f64, 0.0);
    for i in 0..n {
        if next() < 0.03 {
            drift = [-0.0015, 0.0, 0.0015][(next() * 3.0) as usize % 3];
        }
        let open = price;
        price *= 1.0 + drift + (next() - 0.5) * 0.008;
        c.timestamp_ms.push(T0 + i as i64 * HOUR);
        c.open.push(open);
        c.high.push(open.max(price) * (1.0 + next() * 0.002));
        c.low.push(open.min(price) * (1.0 - next() * 0.002));
        c.close.push(price);
        c.volume.push(1000.0 + next() * 100.0);
    }
    c
}

/// `n` hourly bars from [`T0`] with simple prices: open `100 + i`, high one above, low one
/// below, close half above, volume 10.
pub fn simple_hourly_bars(n: usize) -> BarColumns {
    let mut c = BarColumns::default();
    for i in 0..n {
        let p = 100.0 + i as f64;
        c.timestamp_ms.push(T0 + i as i64 * HOUR);
        c.open.push(p);
        c.high.push(p + 1.0);
        c.low.push(p - 1.0);
        c.close.push(p + 0.5);
        c.volume.push(10.0);
    }
    c
}

/// A small strategy: two indicators, one hidden layer, no early stopping
/// (`tests/fixtures/tiny_strategy.yaml`, which the Python client test reads too).
pub const TINY_STRATEGY: &str = include_str!("../fixtures/tiny_strategy.yaml");

/// [`TINY_STRATEGY`] on 1h bars with 4h and 1d context (every timeframe needs its own warm-up),
/// with a ZigZag threshold that finds segments in forex moves.
pub fn tiny_multi_timeframe_strategy() -> String {
    TINY_STRATEGY
        .replace("name: \"tiny_rsi\"", "name: \"tiny_rsi_mtf\"")
        .replace(
            "timeframes: { mode: \"single\", timeframe: \"1h\" }",
            "timeframes: { mode: \"multi_timeframe\", list: [\"1h\", \"4h\", \"1d\"], base_timeframe: \"1h\" }",
        )
        .replace("zigzag_threshold: 0.01", "zigzag_threshold: 0.005")
}

/// `[start_ms, end_ms)` as a request's `range`.
pub fn time_range(start_ms: i64, end_ms: i64) -> Option<TimeRange> {
    Some(TimeRange { start_ms, end_ms })
}

/// Midnight UTC of a calendar date, as epoch milliseconds.
pub fn utc_ms(year: i32, month: u8, day: u8) -> i64 {
    let (y, m, d) = (i64::from(year), i64::from(month), i64::from(day));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400_000
}
