//! Technical indicators, vectorised over `f64` columns.
//!
//! Conventions shared by every indicator here:
//! - the output has one value per input bar; bars before the indicator has enough history
//!   (the warm-up) are `NaN`;
//! - a `NaN` (or infinite) input bar makes that bar's output `NaN` and **restarts the warm-up**
//!   after it: each maximal run of finite bars is computed on its own (`by_finite_runs`). This
//!   keeps recursive indicators (EMA, Wilder smoothing) from carrying a hole forever and keeps
//!   window indicators from silently averaging over it;
//! - standard (published) definitions, as TA-Lib computes them (start-up, seeds, tie rules).
//!   Where the original ktrdr computed something else, or where we give a value TA-Lib's formula
//!   leaves undefined (0/0), the indicator's doc comment says what and why. The
//!   `indicator_dump` example and `scripts/talib_parity.py` (run by `make test`) compare every
//!   indicator with a TA-Lib counterpart against TA-Lib.
//!
//! [`resolve`] turns a strategy file's indicator entry into an [`IndicatorDef`];
//! [`IndicatorKind::compute`] runs it on [`ktrdr_market::Bars`].

pub mod momentum;
pub mod trend;
pub mod volatility;
pub mod volume;

mod params;
mod registry;

pub use registry::{
    IndicatorDef, IndicatorKind, IndicatorOutput, KNOWN_NAMES, PriceSource, resolve,
};

/// Runs `kernel` on every maximal run of bars where all `inputs` are finite and writes its
/// outputs there; every other bar gets `NaN`.
///
/// `kernel` receives equal-length slices with only finite values and must return
/// `output_count` columns of that length.
pub(crate) fn by_finite_runs<const K: usize>(
    inputs: [&[f64]; K],
    output_count: usize,
    kernel: impl Fn([&[f64]; K]) -> Vec<Vec<f64>>,
) -> Vec<Vec<f64>> {
    let n = inputs.iter().map(|c| c.len()).min().unwrap_or(0);
    // The usual case, one run over everything: the kernel's columns are the outputs.
    if n > 0 && inputs.iter().all(|c| c[..n].iter().all(|v| v.is_finite())) {
        let whole: [&[f64]; K] = std::array::from_fn(|k| &inputs[k][..n]);
        let mut outputs = kernel(whole);
        for out in &mut outputs {
            out.truncate(n);
        }
        outputs.resize_with(output_count, || vec![f64::NAN; n]);
        return outputs;
    }
    let mut outputs = vec![vec![f64::NAN; n]; output_count];
    let mut start = 0;
    while start < n {
        if !inputs.iter().all(|c| c[start].is_finite()) {
            start += 1;
            continue;
        }
        let mut end = start + 1;
        while end < n && inputs.iter().all(|c| c[end].is_finite()) {
            end += 1;
        }
        let slices: [&[f64]; K] = std::array::from_fn(|k| &inputs[k][start..end]);
        for (out, computed) in outputs.iter_mut().zip(kernel(slices)) {
            out[start..end].copy_from_slice(&computed[..end - start]);
        }
        start = end;
    }
    outputs
}

/// Single-input, single-output shorthand for [`by_finite_runs`].
pub(crate) fn map_finite_runs(input: &[f64], kernel: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    by_finite_runs([input], 1, |[x]| vec![kernel(x)])
        .pop()
        .unwrap_or_default()
}

/// Kernels on finite input only; used by the indicators and by each other.
pub(crate) mod kernel {
    /// Simple moving average; the first `period - 1` values are NaN.
    pub fn sma(x: &[f64], period: usize) -> Vec<f64> {
        let n = x.len();
        let mut out = vec![f64::NAN; n];
        if period == 0 || n < period {
            return out;
        }
        // Re-sum each window every `period` bars so a running sum cannot drift on long inputs.
        let mut sum: f64 = x[..period].iter().sum();
        out[period - 1] = sum / period as f64;
        for i in period..n {
            if i % period == 0 {
                sum = x[i + 1 - period..=i].iter().sum();
            } else {
                sum += x[i] - x[i - period];
            }
            out[i] = sum / period as f64;
        }
        out
    }

    /// Exponential moving average with `alpha`, seeded by the SMA of the first `period` values
    /// (the first output is at index `period - 1`).
    pub fn ema_seeded(x: &[f64], period: usize, alpha: f64) -> Vec<f64> {
        let n = x.len();
        let mut out = vec![f64::NAN; n];
        if period == 0 || n < period {
            return out;
        }
        let mut value = x[..period].iter().sum::<f64>() / period as f64;
        out[period - 1] = value;
        for i in period..n {
            value += alpha * (x[i] - value);
            out[i] = value;
        }
        out
    }

    /// EMA with the standard `alpha = 2 / (period + 1)`.
    pub fn ema(x: &[f64], period: usize) -> Vec<f64> {
        ema_seeded(x, period, 2.0 / (period as f64 + 1.0))
    }

    /// Wilder's smoothing, SMA-seeded (the first value at index `period - 1`), then
    /// `(previous × (period − 1) + x) / period`, in TA-Lib's order of operations.
    pub fn wilder(x: &[f64], period: usize) -> Vec<f64> {
        let n = x.len();
        let mut out = vec![f64::NAN; n];
        if period == 0 || n < period {
            return out;
        }
        let p = period as f64;
        let mut value = x[..period].iter().sum::<f64>() / p;
        out[period - 1] = value;
        for i in period..n {
            value = (value * (p - 1.0) + x[i]) / p;
            out[i] = value;
        }
        out
    }

    /// `values` placed from index `from` of an `n`-long column, NaN before; for kernels run
    /// on a later slice of their input.
    pub fn placed_at(n: usize, from: usize, values: Vec<f64>) -> Vec<f64> {
        let mut out = vec![f64::NAN; n];
        if from < n {
            out[from..from + values.len()].copy_from_slice(&values);
        }
        out
    }

    /// Applies `kernel` to the values after the leading NaNs of `x` (a derived series's
    /// warm-up), keeping those NaNs.
    pub fn after_warmup(x: &[f64], kernel: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
        let first = x.iter().position(|v| !v.is_nan()).unwrap_or(x.len());
        let mut out = vec![f64::NAN; x.len()];
        let computed = kernel(&x[first..]);
        out[first..].copy_from_slice(&computed);
        out
    }

    /// Rolling maximum over `period` bars, O(n).
    pub fn rolling_max(x: &[f64], period: usize) -> Vec<f64> {
        rolling_extreme(x, period, |newer, older| newer >= older)
    }

    /// Rolling minimum over `period` bars.
    pub fn rolling_min(x: &[f64], period: usize) -> Vec<f64> {
        rolling_extreme(x, period, |newer, older| newer <= older)
    }

    /// The extreme of each window of `period` bars: the value that `wins` over every other in
    /// the window, the latest of several equal ones (NaN before the first full window).
    ///
    /// Finite input takes the block method (van Herk, Gil and Werman): with blocks of
    /// `period` bars, a window is the tail of one block and the head of the next, whose
    /// extremes come from one backward and one forward pass, three comparisons a bar whatever
    /// the period. Input with NaN (which compares false to everything) takes the monotonic
    /// deque, which defines the result for it.
    fn rolling_extreme(x: &[f64], period: usize, wins: impl Fn(f64, f64) -> bool) -> Vec<f64> {
        let mut out = vec![f64::NAN; x.len()];
        if period == 0 || x.len() < period {
            return out;
        }
        if x.iter().all(|v| v.is_finite()) {
            extremes_by_blocks(x, period, wins, &mut out);
        } else {
            extremes_by_deque(x, period, wins, &mut out);
        }
        out
    }

    /// [`rolling_extreme`] by the deque alone, whatever the input (what the block method is
    /// checked against).
    #[cfg(test)]
    pub(crate) fn rolling_extreme_by_deque(
        x: &[f64],
        period: usize,
        wins: impl Fn(f64, f64) -> bool,
    ) -> Vec<f64> {
        let mut out = vec![f64::NAN; x.len()];
        if period > 0 {
            extremes_by_deque(x, period, wins, &mut out);
        }
        out
    }

    /// Writes window `i`'s extreme to `out[i]` from the first full window on; `period` ≥ 1 and
    /// at most `x.len()`.
    fn extremes_by_blocks(
        x: &[f64],
        period: usize,
        wins: impl Fn(f64, f64) -> bool,
        out: &mut [f64],
    ) {
        let n = x.len();
        // tail[j]: the extreme of x[j..] up to the end of j's block.
        let mut tail = vec![0.0; n];
        for block in (0..n).step_by(period) {
            let end = (block + period).min(n);
            let mut best = x[end - 1];
            tail[end - 1] = best;
            for j in (block..end - 1).rev() {
                if !wins(best, x[j]) {
                    best = x[j];
                }
                tail[j] = best;
            }
        }
        // head: the extreme of x from the start of i's block up to i. Window i is the tail of
        // the block its start is in and the head of i's block, or one whole block.
        for block in (0..n).step_by(period) {
            let end = (block + period).min(n);
            let mut head = x[block];
            for i in block..end {
                if wins(x[i], head) {
                    head = x[i];
                }
                let Some(start) = (i + 1).checked_sub(period) else {
                    continue; // before the first full window
                };
                out[i] = if start == block || wins(head, tail[start]) {
                    head
                } else {
                    tail[start]
                };
            }
        }
    }

    /// [`extremes_by_blocks`] with a monotonic deque, which also defines the result on NaN.
    fn extremes_by_deque(
        x: &[f64],
        period: usize,
        wins: impl Fn(f64, f64) -> bool,
        out: &mut [f64],
    ) {
        let mut deque = std::collections::VecDeque::<usize>::new();
        for i in 0..x.len() {
            while let Some(&back) = deque.back() {
                if wins(x[i], x[back]) {
                    deque.pop_back();
                } else {
                    break;
                }
            }
            deque.push_back(i);
            if let Some(&front) = deque.front()
                && front + period <= i
            {
                deque.pop_front();
            }
            if i + 1 >= period
                && let Some(&front) = deque.front()
            {
                out[i] = x[front];
            }
        }
    }

    /// Rolling population standard deviation (divides by `period`), two-pass per window so flat
    /// input gives exactly 0.
    ///
    /// Each window's sums run in window order, as a plain loop over the window would; [`LANES`]
    /// neighbouring windows are summed side by side so their additions overlap in the CPU
    /// instead of each waiting for the previous one.
    pub fn rolling_population_std(x: &[f64], period: usize) -> Vec<f64> {
        let n = x.len();
        let mut out = vec![f64::NAN; n];
        if period == 0 || n < period {
            return out;
        }
        let p = period as f64;
        let first = period - 1;
        let mut i = first;
        while i + LANES <= n {
            let start = i + 1 - period;
            let mut sum = [0.0; LANES];
            for (lane, s) in sum.iter_mut().enumerate() {
                *s = x[start + lane];
            }
            for k in 1..period {
                for (lane, s) in sum.iter_mut().enumerate() {
                    *s += x[start + lane + k];
                }
            }
            let mean = sum.map(|s| s / p);
            let mut squares = [0.0; LANES];
            for (lane, q) in squares.iter_mut().enumerate() {
                let d = x[start + lane] - mean[lane];
                *q = d * d;
            }
            for k in 1..period {
                for (lane, q) in squares.iter_mut().enumerate() {
                    let d = x[start + lane + k] - mean[lane];
                    *q += d * d;
                }
            }
            for lane in 0..LANES {
                out[i + lane] = window_std(&x[start + lane..=i + lane], squares[lane], p);
            }
            i += LANES;
        }
        for i in i..n {
            let window = &x[i + 1 - period..=i];
            let mean = window.iter().sum::<f64>() / p;
            let squares = window.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>();
            out[i] = window_std(window, squares, p);
        }
        out
    }

    /// Windows [`rolling_population_std`] sums side by side.
    const LANES: usize = 8;

    /// The deviation of one window from its sum of squared deviations; exactly 0 for a flat
    /// window, whose mean can round off the value.
    #[inline]
    fn window_std(window: &[f64], squares: f64, period: f64) -> f64 {
        if window.iter().all(|v| *v == window[0]) {
            0.0
        } else {
            (squares / period).sqrt()
        }
    }

    /// Rolling sum over `period` bars.
    pub fn rolling_sum(x: &[f64], period: usize) -> Vec<f64> {
        sma(x, period)
            .into_iter()
            .map(|v| v * period as f64)
            .collect()
    }

    /// True range: the largest of high − low and the distances from the previous close to
    /// the high and to the low. NaN on the first bar, which has no previous close (TA-Lib's
    /// TRANGE).
    pub fn true_range(high: &[f64], low: &[f64], close: &[f64]) -> Vec<f64> {
        (0..high.len())
            .map(|i| {
                if i == 0 {
                    return f64::NAN;
                }
                let pc = close[i - 1];
                let greatest = high[i] - low[i];
                greatest.max((pc - high[i]).abs()).max((pc - low[i]).abs())
            })
            .collect()
    }

    /// Wilder's Average True Range as TA-Lib computes it: the first value, at index
    /// `period`, is the mean of the true ranges of bars 1..=period (bar 0 has none), then
    /// Wilder smoothing.
    pub fn atr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
        let n = high.len();
        if n < 2 {
            return vec![f64::NAN; n];
        }
        let tr = true_range(high, low, close);
        placed_at(n, 1, wilder(&tr[1..], period))
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    /// Asserts two columns are equal within `tol`, NaN matching NaN.
    #[track_caller]
    pub fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
        assert_eq!(
            actual.len(),
            expected.len(),
            "length: {actual:?} vs {expected:?}"
        );
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            if e.is_nan() {
                assert!(a.is_nan(), "index {i}: expected NaN, got {a} ({actual:?})");
            } else {
                assert!(
                    (a - e).abs() <= tol,
                    "index {i}: expected {e}, got {a} ({actual:?})"
                );
            }
        }
    }

    pub const NAN: f64 = f64::NAN;
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn finite_runs_restart_after_nan() {
        // SMA(2) of [1, 3, NaN, 5, 7, 9]: run [1,3] → [NaN, 2]; run [5,7,9] → [NaN, 6, 8].
        let out = map_finite_runs(&[1.0, 3.0, NAN, 5.0, 7.0, 9.0], |x| kernel::sma(x, 2));
        assert_close(&out, &[NAN, 2.0, NAN, NAN, 6.0, 8.0], 1e-12);
    }

    #[test]
    fn sma_hand_worked() {
        // (1+2+3)/3 = 2, (2+3+4)/3 = 3, (3+4+5)/3 = 4
        assert_close(
            &kernel::sma(&[1.0, 2.0, 3.0, 4.0, 5.0], 3),
            &[NAN, NAN, 2.0, 3.0, 4.0],
            1e-12,
        );
        assert_close(&kernel::sma(&[1.0], 3), &[NAN], 0.0);
        assert!(kernel::sma(&[], 3).is_empty());
    }

    #[test]
    fn sma_does_not_drift_on_long_input() {
        let x: Vec<f64> = (0..100_000).map(|i| 0.1 + (i % 7) as f64 * 1e-3).collect();
        let out = kernel::sma(&x, 7);
        // Every full window holds each residue 0..7 once: mean = 0.1 + 3e-3.
        for v in &out[6..] {
            assert!((v - 0.103).abs() < 1e-12);
        }
    }

    #[test]
    fn rolling_extremes() {
        let x = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        assert_close(
            &kernel::rolling_max(&x, 3),
            &[NAN, NAN, 4.0, 4.0, 5.0, 9.0, 9.0, 9.0],
            0.0,
        );
        assert_close(
            &kernel::rolling_min(&x, 3),
            &[NAN, NAN, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0],
            0.0,
        );
    }

    #[test]
    fn rolling_extremes_by_blocks_are_the_deques_for_every_period_ties_included() {
        // Ties everywhere (11 distinct values), signed zeros, and a partial last block.
        let x: Vec<f64> = (0..103)
            .map(|i| match (i * 37) % 13 {
                11 => 0.0,
                12 => -0.0,
                v => v as f64 * 0.5,
            })
            .collect();
        let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
        for period in 1..=110 {
            assert_eq!(
                bits(kernel::rolling_max(&x, period)),
                bits(kernel::rolling_extreme_by_deque(&x, period, |a, b| a >= b)),
                "max, period {period}"
            );
            assert_eq!(
                bits(kernel::rolling_min(&x, period)),
                bits(kernel::rolling_extreme_by_deque(&x, period, |a, b| a <= b)),
                "min, period {period}"
            );
        }
    }

    #[test]
    fn population_std_is_the_plain_two_pass_deviation_of_each_window_to_the_bit() {
        let x: Vec<f64> = (0..1_037)
            .map(|i| {
                if (200..260).contains(&i) {
                    1.1
                } else {
                    100.0 + (i as f64 * 0.37).sin()
                }
            })
            .collect();
        for period in [1, 2, 3, 7, 8, 9, 20, 50, 1_037] {
            let out = kernel::rolling_population_std(&x, period);
            for i in period - 1..x.len() {
                let window = &x[i + 1 - period..=i];
                let mean = window.iter().sum::<f64>() / period as f64;
                let var =
                    window.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / period as f64;
                let expected = if window.iter().all(|v| *v == window[0]) {
                    0.0
                } else {
                    var.sqrt()
                };
                assert_eq!(
                    out[i].to_bits(),
                    expected.to_bits(),
                    "period {period}, bar {i}"
                );
            }
            assert!(out[..period - 1].iter().all(|v| v.is_nan()));
        }
    }

    #[test]
    fn population_std_hand_worked() {
        // [2,4,4,4,5,5,7,9]: mean 5, squared deviations sum 32, /8 = 4 → σ = 2 (population).
        let x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let out = kernel::rolling_population_std(&x, 8);
        assert_eq!(out[7], 2.0);
        let flat = kernel::rolling_population_std(&[1.1; 5], 3);
        assert_close(&flat, &[NAN, NAN, 0.0, 0.0, 0.0], 0.0);
    }

    #[test]
    fn true_range_uses_previous_close_and_starts_on_the_second_bar() {
        // bar1: H-L = 1, |H-pc| = |12-10| = 2, |L-pc| = 1 → 2
        let tr = kernel::true_range(&[11.0, 12.0], &[9.0, 11.0], &[10.0, 11.5]);
        assert!(tr[0].is_nan());
        assert_eq!(tr[1], 2.0);
    }
}
