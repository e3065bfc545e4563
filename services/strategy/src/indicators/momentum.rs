//! Momentum indicators: RSI, Stochastic, Williams %R, CCI, Momentum, ROC, RVI, MFI, Fisher
//! Transform.

use super::{by_finite_runs, kernel, map_finite_runs};

/// Wilder's RSI, as TA-Lib's RSI. The first value is at index `period` (it needs `period`
/// price changes); the averages are SMA-seeded, then Wilder-smoothed.
///
/// Where there was no loss over the averaging window RSI is 100, and where prices have not
/// moved at all since the series began (no gain, no loss: 0/0) it is 50, a neutral value rather
/// than NaN so flat stretches do not punch holes in features; TA-Lib reports 0 there, which
/// would read as maximally oversold. Matches the original in substance (it also used Wilder
/// smoothing seeded by an SMA), computed without a Python loop.
pub fn rsi(x: &[f64], period: usize) -> Vec<f64> {
    map_finite_runs(x, |x| {
        let n = x.len();
        let mut out = vec![f64::NAN; n];
        if period == 0 || n <= period {
            return out;
        }
        let mut avg_gain = 0.0;
        let mut avg_loss = 0.0;
        for i in 1..=period {
            let change = x[i] - x[i - 1];
            avg_gain += change.max(0.0);
            avg_loss += (-change).max(0.0);
        }
        avg_gain /= period as f64;
        avg_loss /= period as f64;
        let p = period as f64;
        let value = |gain: f64, loss: f64| {
            if loss == 0.0 {
                if gain == 0.0 { 50.0 } else { 100.0 }
            } else {
                100.0 - 100.0 / (1.0 + gain / loss)
            }
        };
        out[period] = value(avg_gain, avg_loss);
        for i in period + 1..n {
            let change = x[i] - x[i - 1];
            avg_gain = (avg_gain * (p - 1.0) + change.max(0.0)) / p;
            avg_loss = (avg_loss * (p - 1.0) + (-change).max(0.0)) / p;
            out[i] = value(avg_gain, avg_loss);
        }
        out
    })
}

/// Slow stochastic, as TA-Lib's STOCH with SMA smoothing: raw %K over `k_period`, smoothed by
/// an SMA of `smooth_k` into %K, and %D an SMA of %K over `d_period`. %K starts at index
/// `k_period + smooth_k − 2`, %D `d_period − 1` bars later (one TA-Lib STOCH call reports both
/// from %D's first bar).
///
/// A bar whose high-low range over the window is 0 (0/0) gets raw %K 50, a neutral value, where
/// TA-Lib reports 0, which would read as "closed at the low".
pub fn stochastic(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    k_period: usize,
    d_period: usize,
    smooth_k: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = by_finite_runs([high, low, close], 2, |[h, l, c]| {
        let k = slow_k(h, l, c, k_period, smooth_k);
        let d = kernel::after_warmup(&k, |k| kernel::sma(k, d_period.max(1)));
        vec![k, d]
    });
    let d = out.pop().unwrap_or_default();
    let k = out.pop().unwrap_or_default();
    (k, d)
}

/// Only the %K of [`stochastic`] (the series fuzzy sets read), the same values without %D.
pub fn stochastic_k(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    k_period: usize,
    smooth_k: usize,
) -> Vec<f64> {
    by_finite_runs([high, low, close], 1, |[h, l, c]| {
        vec![slow_k(h, l, c, k_period, smooth_k)]
    })
    .pop()
    .unwrap_or_default()
}

/// Raw %K over `k_period` smoothed by an SMA of `smooth_k`, on one finite run.
fn slow_k(h: &[f64], l: &[f64], c: &[f64], k_period: usize, smooth_k: usize) -> Vec<f64> {
    let hh = kernel::rolling_max(h, k_period);
    let ll = kernel::rolling_min(l, k_period);
    let raw: Vec<f64> = (0..c.len())
        .map(|i| position_in_range(c[i], ll[i], hh[i]) * 100.0)
        .collect();
    kernel::after_warmup(&raw, |r| kernel::sma(r, smooth_k.max(1)))
}

/// `(value - low) / (high - low)`, 0.5 when the range is empty, NaN when the range is NaN.
pub(crate) fn position_in_range(value: f64, low: f64, high: f64) -> f64 {
    let range = high - low;
    if range.is_nan() {
        f64::NAN
    } else if range == 0.0 {
        0.5
    } else {
        (value - low) / range
    }
}

/// Williams %R in [-100, 0], as TA-Lib's WILLR: `-100 × (highest high − close) / (highest
/// high − lowest low)`. Where the range is 0 (0/0) it is −50, a neutral value, where TA-Lib
/// reports 0, which would read as "closed at the high".
pub fn williams_r(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    by_finite_runs([high, low, close], 1, |[h, l, c]| {
        let hh = kernel::rolling_max(h, period);
        let ll = kernel::rolling_min(l, period);
        vec![
            (0..c.len())
                .map(|i| (position_in_range(c[i], ll[i], hh[i]) - 1.0) * 100.0)
                .collect(),
        ]
    })
    .pop()
    .unwrap_or_default()
}

/// Lambert's Commodity Channel Index, as TA-Lib's CCI: `(TP − SMA(TP)) / (0.015 × mean
/// absolute deviation)` with typical price `TP = (H + L + C) / 3`; 0 where the window's typical
/// prices are all equal (the mean deviation is 0; computed, the mean can round off the value
/// and leave a ratio of two rounding residues).
pub fn cci(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    by_finite_runs([high, low, close], 1, |[h, l, c]| {
        let n = c.len();
        let tp: Vec<f64> = (0..n).map(|i| (h[i] + l[i] + c[i]) / 3.0).collect();
        let mut out = vec![f64::NAN; n];
        if period == 0 || n < period {
            return vec![out];
        }
        for i in period - 1..n {
            let window = &tp[i + 1 - period..=i];
            if window.iter().all(|v| *v == window[0]) {
                out[i] = 0.0;
                continue;
            }
            let mean = window.iter().sum::<f64>() / period as f64;
            let mad = window.iter().map(|v| (v - mean).abs()).sum::<f64>() / period as f64;
            out[i] = if mad > 0.0 {
                (tp[i] - mean) / (0.015 * mad)
            } else {
                0.0
            };
        }
        vec![out]
    })
    .pop()
    .unwrap_or_default()
}

/// Momentum, as TA-Lib's MOM: `x[t] − x[t − period]`.
pub fn momentum(x: &[f64], period: usize) -> Vec<f64> {
    map_finite_runs(x, |x| {
        (0..x.len())
            .map(|i| {
                if i >= period {
                    x[i] - x[i - period]
                } else {
                    f64::NAN
                }
            })
            .collect()
    })
}

/// Rate of change in percent, as TA-Lib's ROC: `100 × (x[t] / x[t − period] − 1)`. NaN where
/// the old value is 0 (no rate of change from nothing), where TA-Lib reports 0.
pub fn roc(x: &[f64], period: usize) -> Vec<f64> {
    map_finite_runs(x, |x| {
        (0..x.len())
            .map(|i| {
                if i >= period && x[i - period] != 0.0 {
                    100.0 * (x[i] / x[i - period] - 1.0)
                } else {
                    f64::NAN
                }
            })
            .collect()
    })
}

/// Relative Vigor Index (Ehlers): the (1, 2, 2, 1)/6-weighted close − open over the same
/// weighting of high − low, each summed over `period` bars, and its (1, 2, 2, 1)/6-weighted
/// signal line. The first RVI is at index `period + 2`, the signal 3 bars later; 0 where the
/// summed range is 0. Not in TA-Lib (its RVI is the Relative Volatility Index).
pub fn rvi(
    open: &[f64],
    high: &[f64],
    low: &[f64],
    close: &[f64],
    period: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = by_finite_runs([open, high, low, close], 2, |[o, h, l, c]| {
        let n = c.len();
        let weighted = |x: &dyn Fn(usize) -> f64| -> Vec<f64> {
            (0..n)
                .map(|i| {
                    if i >= 3 {
                        (x(i) + 2.0 * x(i - 1) + 2.0 * x(i - 2) + x(i - 3)) / 6.0
                    } else {
                        f64::NAN
                    }
                })
                .collect()
        };
        let num = weighted(&|i| c[i] - o[i]);
        let den = weighted(&|i| h[i] - l[i]);
        let num_sum = kernel::after_warmup(&num, |x| kernel::rolling_sum(x, period));
        let den_sum = kernel::after_warmup(&den, |x| kernel::rolling_sum(x, period));
        let value: Vec<f64> = num_sum
            .iter()
            .zip(&den_sum)
            .map(|(a, b)| {
                if b.is_nan() {
                    f64::NAN
                } else if *b == 0.0 {
                    0.0
                } else {
                    a / b
                }
            })
            .collect();
        let signal = (0..n)
            .map(|i| {
                if i >= 3 {
                    (value[i] + 2.0 * value[i - 1] + 2.0 * value[i - 2] + value[i - 3]) / 6.0
                } else {
                    f64::NAN
                }
            })
            .collect();
        vec![value, signal]
    });
    let signal = out.pop().unwrap_or_default();
    let value = out.pop().unwrap_or_default();
    (value, signal)
}

/// Money Flow Index over `period` typical-price changes (first value at index `period`), as
/// TA-Lib's MFI: a bar's money flow `TP × volume` is positive when its typical price rose,
/// negative when it fell, and none on a tie. A tie is TA-Lib's: a change within 1e-14 of the
/// two prices' magnitudes (`|ΔTP| ≤ 1e-14 × (|TP| + |TP₋₁|)`), since typical prices equal in
/// exact arithmetic can differ in the last bit once rounded.
///
/// 100 where there was no negative flow. Where there was no flow at all (flat prices or zero
/// volume, 0/0) it is 50, a neutral value, where TA-Lib reports 0.
#[allow(clippy::needless_range_loop)] // windows over several aligned columns read clearer by index
pub fn mfi(high: &[f64], low: &[f64], close: &[f64], volume: &[f64], period: usize) -> Vec<f64> {
    by_finite_runs([high, low, close, volume], 1, |[h, l, c, v]| {
        let n = c.len();
        let mut out = vec![f64::NAN; n];
        let tp: Vec<f64> = (0..n).map(|i| (h[i] + l[i] + c[i]) / 3.0).collect();
        for i in period..n {
            let (mut pos, mut neg) = (0.0, 0.0);
            for j in i + 1 - period..=i {
                let change = tp[j] - tp[j - 1];
                if change.abs() <= 1e-14 * (tp[j].abs() + tp[j - 1].abs()) {
                    continue;
                }
                if change > 0.0 {
                    pos += tp[j] * v[j];
                } else {
                    neg += tp[j] * v[j];
                }
            }
            out[i] = if neg == 0.0 {
                if pos == 0.0 { 50.0 } else { 100.0 }
            } else {
                100.0 - 100.0 / (1.0 + pos / neg)
            };
        }
        vec![out]
    })
    .pop()
    .unwrap_or_default()
}

/// Ehlers' Fisher Transform of the median price over `period` bars, and its signal line (not
/// in TA-Lib).
///
/// `v = 0.33 × 2 × (position of hl2 in its `period` range − 0.5) + 0.67 × v[t−1]`, clamped to
/// ±0.999, `fisher = 0.5 × ln((1 + v) / (1 − v)) + 0.5 × fisher[t−1]`. Ehlers' trigger is the
/// previous Fisher value; here the signal is an SMA of Fisher over `smoothing` bars (the
/// original's parameter), which equals Ehlers' trigger shape for `smoothing = 1` shifted.
pub fn fisher_transform(
    high: &[f64],
    low: &[f64],
    period: usize,
    smoothing: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = by_finite_runs([high, low], 2, |[h, l]| {
        let n = h.len();
        let mid: Vec<f64> = (0..n).map(|i| (h[i] + l[i]) / 2.0).collect();
        let hh = kernel::rolling_max(&mid, period);
        let ll = kernel::rolling_min(&mid, period);
        let mut fisher = vec![f64::NAN; n];
        let (mut value, mut prev_fisher) = (0.0, 0.0);
        for i in 0..n {
            if hh[i].is_nan() {
                continue;
            }
            let pos = position_in_range(mid[i], ll[i], hh[i]);
            value = (0.66 * (pos - 0.5) + 0.67 * value).clamp(-0.999, 0.999);
            prev_fisher = 0.5 * ((1.0 + value) / (1.0 - value)).ln() + 0.5 * prev_fisher;
            fisher[i] = prev_fisher;
        }
        let signal = kernel::after_warmup(&fisher, |f| kernel::sma(f, smoothing.max(1)));
        vec![fisher, signal]
    });
    let signal = out.pop().unwrap_or_default();
    let fisher = out.pop().unwrap_or_default();
    (fisher, signal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::test_support::*;

    #[test]
    fn k_alone_is_the_stochastics_k_to_the_bit() {
        let close: Vec<f64> = (0..400).map(|i| 20.0 + (i as f64 * 0.13).sin()).collect();
        let mut high: Vec<f64> = close.iter().map(|c| c + 0.4).collect();
        let low: Vec<f64> = close.iter().map(|c| c - 0.3).collect();
        high[150] = NAN; // a second finite run
        let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&stochastic_k(&high, &low, &close, 14, 3)),
            bits(&stochastic(&high, &low, &close, 14, 3, 3).0)
        );
    }

    /// StockCharts' RSI worked example (14 periods; published values rounded to 2 decimals).
    const WILDER_CLOSES: [f64; 33] = [
        44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
        45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439,
        46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672,
        43.4205, 42.6628, 43.1314,
    ];
    const PUBLISHED_RSI: [f64; 19] = [
        70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42, 39.99,
        41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
    ];

    #[test]
    fn rsi_matches_published_example() {
        let out = rsi(&WILDER_CLOSES, 14);
        assert!(out[..14].iter().all(|v| v.is_nan()));
        for (k, p) in PUBLISHED_RSI.iter().enumerate() {
            assert!(
                (out[14 + k] - p).abs() < 0.006,
                "bar {}: {} vs {p}",
                14 + k,
                out[14 + k]
            );
        }
    }

    #[test]
    fn rsi_hand_worked_and_edge_cases() {
        // period 2 on [1, 2, 1, 3]: changes +1, −1, +2.
        // idx2: gain avg (1+0)/2 = .5, loss avg .5 → RS 1 → 50.
        // idx3: gain (.5·1 + 2)/2 = 1.25, loss (.5·1 + 0)/2 = .25 → RS 5 → 100 − 100/6 = 83.333…
        assert_close(
            &rsi(&[1.0, 2.0, 1.0, 3.0], 2),
            &[NAN, NAN, 50.0, 100.0 - 100.0 / 6.0],
            1e-12,
        );
        assert_close(&rsi(&[5.0; 4], 2), &[NAN, NAN, 50.0, 50.0], 0.0);
        assert_close(&rsi(&[1.0, 2.0, 3.0], 2), &[NAN, NAN, 100.0], 0.0);
        assert_close(&rsi(&[1.0], 14), &[NAN], 0.0);
        assert!(rsi(&[], 14).is_empty());
        // NaN restarts warm-up: after the NaN, 2 changes are needed again.
        let out = rsi(&[1.0, 2.0, 3.0, NAN, 3.0, 2.0, 1.0], 2);
        assert_close(&out, &[NAN, NAN, 100.0, NAN, NAN, NAN, 0.0], 0.0);
    }

    #[test]
    fn stochastic_hand_worked() {
        // k 3, smooth 1, d 2. Highs = lows = closes = [1, 2, 3, 2, 1]:
        // raw idx2: (3−1)/(3−1) = 100; idx3: window [2,3,2] → (2−2)/(3−2) = 0; idx4: [3,2,1] → 0/2 = 0.
        // %D(2): idx3 (100+0)/2 = 50, idx4 0.
        let x = [1.0, 2.0, 3.0, 2.0, 1.0];
        let (k, d) = stochastic(&x, &x, &x, 3, 2, 1);
        assert_close(&k, &[NAN, NAN, 100.0, 0.0, 0.0], 1e-12);
        assert_close(&d, &[NAN, NAN, NAN, 50.0, 0.0], 1e-12);
        // Default smoothing 3 delays %K by 2 more bars; flat prices give 50.
        let flat = [4.0; 8];
        let (k, d) = stochastic(&flat, &flat, &flat, 3, 3, 3);
        assert_close(&k, &[NAN, NAN, NAN, NAN, 50.0, 50.0, 50.0, 50.0], 1e-12);
        assert_close(&d, &[NAN, NAN, NAN, NAN, NAN, NAN, 50.0, 50.0], 1e-12);
    }

    #[test]
    fn williams_r_hand_worked() {
        // period 3 at idx2: HH 12, LL 8, close 11 → −100 × (12 − 11)/(12 − 8) = −25.
        let out = williams_r(
            &[10.0, 12.0, 11.0],
            &[8.0, 9.0, 10.0],
            &[9.0, 10.0, 11.0],
            3,
        );
        assert_close(&out, &[NAN, NAN, -25.0], 1e-12);
        assert_close(
            &williams_r(&[1.0; 3], &[1.0; 3], &[1.0; 3], 2),
            &[NAN, -50.0, -50.0],
            0.0,
        );
    }

    #[test]
    fn cci_hand_worked() {
        // period 3, H = L = C so TP = C = [1, 2, 6]: mean 3, MAD (2 + 1 + 3)/3 = 2
        // → (6 − 3)/(0.015 × 2) = 100.
        let x = [1.0, 2.0, 6.0];
        assert_close(&cci(&x, &x, &x, 3), &[NAN, NAN, 100.0], 1e-9);
        assert_close(
            &cci(&[5.0; 3], &[5.0; 3], &[5.0; 3], 3),
            &[NAN, NAN, 0.0],
            0.0,
        );
    }

    #[test]
    fn momentum_and_roc() {
        assert_close(&momentum(&[10.0, 11.0, 13.0], 2), &[NAN, NAN, 3.0], 0.0);
        // (13/10 − 1) × 100 = 30
        assert_close(&roc(&[10.0, 11.0, 13.0], 2), &[NAN, NAN, 30.0], 1e-12);
        assert_close(&roc(&[0.0, 1.0], 1), &[NAN, NAN], 0.0);
    }

    #[test]
    fn rvi_constant_bars() {
        // Every bar: open 1, close 2, high 3, low 0 → weighted num 1, den 3 → RVI 1/3 from idx
        // 3 + period − 1 = 4 (period 2); signal from idx 7.
        let n = 9;
        let (value, signal) = rvi(
            &vec![1.0; n],
            &vec![3.0; n],
            &vec![0.0; n],
            &vec![2.0; n],
            2,
        );
        assert!(value[..4].iter().all(|v| v.is_nan()));
        assert!(value[4..].iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-12));
        assert!(signal[..7].iter().all(|v| v.is_nan()));
        assert!((signal[7] - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn mfi_hand_worked_and_zero_volume() {
        // period 2; H = L = C → TP = C = [1, 2, 1.5], volume [10, 10, 20].
        // idx2: bar1 up, flow 2 × 10 = 20; bar2 down, flow 1.5 × 20 = 30 → ratio 2/3
        // → 100 − 100/(1 + 2/3) = 40.
        let c = [1.0, 2.0, 1.5];
        let out = mfi(&c, &c, &c, &[10.0, 10.0, 20.0], 2);
        assert_close(&out, &[NAN, NAN, 40.0], 1e-9);
        assert_close(&mfi(&c, &c, &c, &[0.0; 3], 2), &[NAN, NAN, 50.0], 0.0);
    }

    #[test]
    fn fisher_is_zero_for_centered_prices_and_bounded() {
        // hl2 always mid-range → position 0.5 → v 0 → fisher 0.
        let (fisher, _) = fisher_transform(&[2.0; 6], &[0.0; 6], 3, 3);
        assert_close(&fisher, &[NAN, NAN, 0.0, 0.0, 0.0, 0.0], 1e-12);
        let h: Vec<f64> = (0..50).map(|i| f64::from(i) + 1.0).collect();
        let l: Vec<f64> = (0..50).map(f64::from).collect();
        let (fisher, signal) = fisher_transform(&h, &l, 10, 3);
        assert!(fisher[9..].iter().all(|v| v.is_finite() && *v > 0.0));
        assert!(signal[11].is_finite() && signal[10].is_nan());
    }
}
