//! Small deterministic bar series for tests and examples of every crate (no randomness, no
//! clock): the same call always gives the same bars.

use crate::bars::Bars;

/// `n` hourly bars from `start_ms` with a simple deterministic price path (a sine around 100
/// with a slow drift; high/low one unit around the open, volume rising from 1 000).
pub fn hourly(n: usize, start_ms: i64) -> Bars {
    let mut bars = Bars::with_capacity(n);
    for i in 0..n {
        let base = 100.0 + (i as f64 * 0.7).sin() * 5.0 + i as f64 * 0.01;
        bars.push(
            start_ms + i as i64 * 3_600_000,
            base,
            base + 1.0,
            base - 1.0,
            base + 0.25,
            1_000.0 + i as f64,
        );
    }
    bars
}
