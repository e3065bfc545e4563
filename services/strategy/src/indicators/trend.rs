//! Trend indicators: moving averages, MACD, ADX, Aroon, Parabolic SAR, Ichimoku, SuperTrend,
//! distance from a moving average.

use super::{by_finite_runs, kernel, map_finite_runs};

/// Simple moving average of the last `period` values.
pub fn sma(x: &[f64], period: usize) -> Vec<f64> {
    map_finite_runs(x, |x| kernel::sma(x, period))
}

/// Exponential moving average, `alpha = 2 / (period + 1)`, seeded with the SMA of the first
/// `period` values (first value at index `period - 1`).
///
/// Differs from the original ktrdr, which used pandas `ewm(span, adjust=True)`: a weighted
/// average over all history with no warm-up, so its first values depend on how far back the
/// data happen to start. SMA seeding is the standard (TA-Lib, StockCharts).
pub fn ema(x: &[f64], period: usize) -> Vec<f64> {
    map_finite_runs(x, |x| kernel::ema(x, period))
}

/// MACD line (EMA fast − EMA slow), signal line (EMA of the MACD line) and histogram.
///
/// Both EMAs and the signal are SMA-seeded (TA-Lib's convention): the MACD line starts at
/// index `slow - 1`, the signal and histogram `signal - 1` bars later. The original used
/// `ewm(adjust=False)` seeded with the first price, so it had values from the first bar whose
/// early part depends on where the data start.
pub fn macd(x: &[f64], fast: usize, slow: usize, signal: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut out = by_finite_runs([x], 3, |[x]| {
        let fast_ema = kernel::ema(x, fast);
        let slow_ema = kernel::ema(x, slow);
        let line: Vec<f64> = fast_ema.iter().zip(&slow_ema).map(|(f, s)| f - s).collect();
        let signal_line = kernel::after_warmup(&line, |l| kernel::ema(l, signal));
        let hist = line.iter().zip(&signal_line).map(|(l, s)| l - s).collect();
        vec![line, signal_line, hist]
    });
    let hist = out.pop().unwrap_or_default();
    let signal_line = out.pop().unwrap_or_default();
    let line = out.pop().unwrap_or_default();
    (line, signal_line, hist)
}

/// Wilder's ADX with +DI and −DI.
///
/// +DM/−DM and the true range start at the second bar (they need the previous bar); their
/// Wilder averages start at index `period`, DX there too, and ADX (Wilder average of DX) at
/// index `2 * period - 1`. Where +DI + −DI is 0 (flat prices) DX is 0; where the averaged true
/// range is 0, both DIs are 0.
pub fn adx(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    period: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut out = by_finite_runs([high, low, close], 3, |[h, l, c]| {
        let n = h.len();
        let mut adx = vec![f64::NAN; n];
        let mut plus_di = vec![f64::NAN; n];
        let mut minus_di = vec![f64::NAN; n];
        if n < 2 {
            return vec![adx, plus_di, minus_di];
        }
        let mut plus_dm = Vec::with_capacity(n - 1);
        let mut minus_dm = Vec::with_capacity(n - 1);
        let tr = kernel::true_range(h, l, c);
        for i in 1..n {
            let up = h[i] - h[i - 1];
            let down = l[i - 1] - l[i];
            plus_dm.push(if up > down && up > 0.0 { up } else { 0.0 });
            minus_dm.push(if down > up && down > 0.0 { down } else { 0.0 });
        }
        let atr = kernel::wilder(&tr[1..], period);
        let plus = kernel::wilder(&plus_dm, period);
        let minus = kernel::wilder(&minus_dm, period);
        let mut dx = vec![f64::NAN; n - 1];
        for j in 0..n - 1 {
            if atr[j].is_nan() {
                continue;
            }
            let (p, m) = if atr[j] > 0.0 {
                (100.0 * plus[j] / atr[j], 100.0 * minus[j] / atr[j])
            } else {
                (0.0, 0.0)
            };
            plus_di[j + 1] = p;
            minus_di[j + 1] = m;
            dx[j] = if p + m > 0.0 {
                100.0 * (p - m).abs() / (p + m)
            } else {
                0.0
            };
        }
        let smoothed = kernel::after_warmup(&dx, |d| kernel::wilder(d, period));
        adx[1..].copy_from_slice(&smoothed);
        vec![adx, plus_di, minus_di]
    });
    let minus = out.pop().unwrap_or_default();
    let plus = out.pop().unwrap_or_default();
    let adx = out.pop().unwrap_or_default();
    (adx, plus, minus)
}

/// Aroon up / down / oscillator over the last `period + 1` bars (first value at index
/// `period`). `up = 100 × (period − bars since the highest high) / period`; on ties the most
/// recent extreme counts (TA-Lib's choice).
pub fn aroon(high: &[f64], low: &[f64], period: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut out = by_finite_runs([high, low], 3, |[h, l]| {
        let n = h.len();
        let mut up = vec![f64::NAN; n];
        let mut down = vec![f64::NAN; n];
        let mut osc = vec![f64::NAN; n];
        for i in period..n {
            let window = i - period..=i;
            let mut hi_idx = i - period;
            let mut lo_idx = i - period;
            for j in window {
                if h[j] >= h[hi_idx] {
                    hi_idx = j;
                }
                if l[j] <= l[lo_idx] {
                    lo_idx = j;
                }
            }
            let p = period as f64;
            up[i] = 100.0 * (p - (i - hi_idx) as f64) / p;
            down[i] = 100.0 * (p - (i - lo_idx) as f64) / p;
            osc[i] = up[i] - down[i];
        }
        vec![up, down, osc]
    });
    let osc = out.pop().unwrap_or_default();
    let down = out.pop().unwrap_or_default();
    let up = out.pop().unwrap_or_default();
    (up, down, osc)
}

/// Wilder's Parabolic SAR. The first bar has no value; the initial direction is long when the
/// second bar's high is not below the first's (then SAR starts at the first low), short
/// otherwise. The SAR never moves inside the previous two bars' range.
pub fn parabolic_sar(
    high: &[f64],
    low: &[f64],
    initial_af: f64,
    step_af: f64,
    max_af: f64,
) -> Vec<f64> {
    by_finite_runs([high, low], 1, |[h, l]| {
        let n = h.len();
        let mut out = vec![f64::NAN; n];
        if n < 2 {
            return vec![out];
        }
        let mut long = h[1] >= h[0];
        let mut sar = if long { l[0] } else { h[0] };
        let mut ep = if long { h[0] } else { l[0] };
        let mut af = initial_af;
        for i in 1..n {
            sar += af * (ep - sar);
            // SAR may not enter the prior two bars' range.
            let lookback = if i >= 2 { i - 2 } else { i - 1 };
            if long {
                sar = sar.min(l[i - 1]).min(l[lookback]);
                if l[i] < sar {
                    long = false;
                    sar = ep;
                    ep = l[i];
                    af = initial_af;
                } else if h[i] > ep {
                    ep = h[i];
                    af = (af + step_af).min(max_af);
                }
            } else {
                sar = sar.max(h[i - 1]).max(h[lookback]);
                if h[i] > sar {
                    long = true;
                    sar = ep;
                    ep = h[i];
                    af = initial_af;
                } else if l[i] < ep {
                    ep = l[i];
                    af = (af + step_af).min(max_af);
                }
            }
            out[i] = sar;
        }
        vec![out]
    })
    .pop()
    .unwrap_or_default()
}

/// Ichimoku: tenkan-sen, kijun-sen, senkou span A and B.
///
/// The spans are the standard ones "plotted `displacement` bars ahead": the value at bar t is
/// the one computed at bar `t - displacement`, so nothing looks ahead. The chikou span (close
/// plotted `displacement` bars *back*) is not offered: at bar t it is the close of bar
/// `t + displacement`, i.e. the future.
pub fn ichimoku(
    high: &[f64],
    low: &[f64],
    tenkan: usize,
    kijun: usize,
    senkou_b: usize,
    displacement: usize,
) -> [Vec<f64>; 4] {
    let out = by_finite_runs([high, low], 4, |[h, l]| {
        let mid = |p: usize| -> Vec<f64> {
            let hh = kernel::rolling_max(h, p);
            let ll = kernel::rolling_min(l, p);
            hh.iter().zip(&ll).map(|(a, b)| (a + b) / 2.0).collect()
        };
        let t = mid(tenkan);
        let k = mid(kijun);
        let b = mid(senkou_b);
        let n = h.len();
        let mut span_a = vec![f64::NAN; n];
        let mut span_b = vec![f64::NAN; n];
        for i in displacement..n {
            span_a[i] = (t[i - displacement] + k[i - displacement]) / 2.0;
            span_b[i] = b[i - displacement];
        }
        vec![t, k, span_a, span_b]
    });
    let mut it = out.into_iter();
    std::array::from_fn(|_| it.next().unwrap_or_default())
}

/// SuperTrend line and direction (+1 up, −1 down) from Wilder's ATR and `hl2 ± multiplier × ATR`
/// bands that only ratchet in the trend's favour. The first valid bar starts in the direction
/// given by whether the close is above hl2.
pub fn supertrend(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    period: usize,
    multiplier: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = by_finite_runs([high, low, close], 2, |[h, l, c]| {
        let n = h.len();
        let atr = kernel::wilder(&kernel::true_range(h, l, c), period);
        let mut line = vec![f64::NAN; n];
        let mut direction = vec![f64::NAN; n];
        let mut prev: Option<(f64, f64, f64)> = None; // (final upper, final lower, direction)
        for i in 0..n {
            if atr[i].is_nan() {
                continue;
            }
            let hl2 = (h[i] + l[i]) / 2.0;
            let basic_upper = hl2 + multiplier * atr[i];
            let basic_lower = hl2 - multiplier * atr[i];
            let (upper, lower, dir) = match prev {
                None => (
                    basic_upper,
                    basic_lower,
                    if c[i] >= hl2 { 1.0 } else { -1.0 },
                ),
                Some((pu, pl, pd)) => {
                    let pc = c[i - 1];
                    let upper = if basic_upper < pu || pc > pu {
                        basic_upper
                    } else {
                        pu
                    };
                    let lower = if basic_lower > pl || pc < pl {
                        basic_lower
                    } else {
                        pl
                    };
                    let dir = if pd > 0.0 {
                        if c[i] < lower { -1.0 } else { 1.0 }
                    } else if c[i] > upper {
                        1.0
                    } else {
                        -1.0
                    };
                    (upper, lower, dir)
                }
            };
            line[i] = if dir > 0.0 { lower } else { upper };
            direction[i] = dir;
            prev = Some((upper, lower, dir));
        }
        vec![line, direction]
    });
    let direction = out.pop().unwrap_or_default();
    let line = out.pop().unwrap_or_default();
    (line, direction)
}

/// Distance of `x` from its moving average, in percent: `100 × (x − MA) / MA`.
pub fn distance_from_ma(x: &[f64], period: usize, use_ema: bool) -> Vec<f64> {
    let ma = if use_ema {
        ema(x, period)
    } else {
        sma(x, period)
    };
    x.iter()
        .zip(&ma)
        .map(|(v, m)| {
            if *m != 0.0 {
                100.0 * (v - m) / m
            } else {
                f64::NAN
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::test_support::*;

    #[test]
    fn ema_matches_stockcharts_example() {
        // StockCharts "Moving Averages" 10-day EMA example: SMA seed 22.22, then
        // multiplier 2/11 = 0.1818 (values published rounded to 2 decimals).
        let close = [
            22.27, 22.19, 22.08, 22.17, 22.18, 22.13, 22.23, 22.43, 22.24, 22.29, 22.15, 22.39,
            22.38, 22.61, 23.36, 24.05, 23.75, 23.83, 23.95, 23.63, 23.82, 23.87,
        ];
        let published = [
            22.22, 22.21, 22.24, 22.27, 22.33, 22.52, 22.80, 22.97, 23.13, 23.28, 23.34, 23.43,
            23.51,
        ];
        let out = ema(&close, 10);
        assert!(out[..9].iter().all(|v| v.is_nan()));
        for (k, p) in published.iter().enumerate() {
            assert!(
                (out[9 + k] - p).abs() < 0.006,
                "bar {}: {} vs {p}",
                9 + k,
                out[9 + k]
            );
        }
    }

    #[test]
    fn ema_hand_worked() {
        // period 3, alpha 0.5: seed (1+2+3)/3 = 2; then 2 + 0.5(4-2) = 3; 3 + 0.5(8-3) = 5.5
        assert_close(
            &ema(&[1.0, 2.0, 3.0, 4.0, 8.0], 3),
            &[NAN, NAN, 2.0, 3.0, 5.5],
            1e-12,
        );
    }

    #[test]
    fn moving_averages_edge_cases() {
        assert_close(&sma(&[5.0], 3), &[NAN], 0.0);
        assert_close(&ema(&[5.0], 3), &[NAN], 0.0);
        assert_close(&sma(&[7.0; 4], 2), &[NAN, 7.0, 7.0, 7.0], 1e-12);
        assert_close(&ema(&[7.0; 4], 2), &[NAN, 7.0, 7.0, 7.0], 1e-12);
        // NaN restarts the warm-up.
        assert_close(
            &ema(&[1.0, 1.0, NAN, 2.0, 2.0], 2),
            &[NAN, 1.0, NAN, NAN, 2.0],
            1e-12,
        );
    }

    #[test]
    fn macd_hand_worked() {
        // fast 2 (α 2/3), slow 3 (α 1/2), signal 2 (α 2/3) on 1,2,3,4,5,6.
        // EMA2: idx1 1.5, idx2 1.5+2/3(1.5)=2.5, idx3 3.5, idx4 4.5, idx5 5.5 (linear input: lag 0.5)
        // EMA3: idx2 2, idx3 3, idx4 4, idx5 5 (lag 1)
        // line: idx2..5 = 0.5; signal seeded SMA(0.5,0.5) at idx3 = 0.5; hist 0.
        let (line, signal, hist) = macd(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3, 2);
        assert_close(&line, &[NAN, NAN, 0.5, 0.5, 0.5, 0.5], 1e-12);
        assert_close(&signal, &[NAN, NAN, NAN, 0.5, 0.5, 0.5], 1e-12);
        assert_close(&hist, &[NAN, NAN, NAN, 0.0, 0.0, 0.0], 1e-12);
        let (line, _, _) = macd(&[3.0; 40], 12, 26, 9);
        assert!(line[..25].iter().all(|v| v.is_nan()));
        assert!(line[25..].iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn adx_flat_and_trend() {
        // Flat prices: no directional movement → DI 0, DX 0, ADX 0 from index 2p-1 = 5.
        let flat = [10.0; 8];
        let (adx_v, plus, minus) = adx(&flat, &flat, &flat, 3);
        assert_close(&adx_v, &[NAN, NAN, NAN, NAN, NAN, 0.0, 0.0, 0.0], 1e-12);
        assert_close(&plus, &[NAN, NAN, NAN, 0.0, 0.0, 0.0, 0.0, 0.0], 1e-12);
        assert_eq!(minus[3], 0.0);
        // Steady rise of 1 per bar with range 1 (high = low + 1, close = high):
        // +DM 1, -DM 0, TR = max(1, |h - pc| = 1, |l - pc| = 0) = 1 → +DI 100, -DI 0, DX 100, ADX 100.
        let low: Vec<f64> = (0..8).map(f64::from).collect();
        let high: Vec<f64> = low.iter().map(|v| v + 1.0).collect();
        let (adx_v, plus, minus) = adx(&high, &low, &high, 3);
        assert_close(
            &adx_v,
            &[NAN, NAN, NAN, NAN, NAN, 100.0, 100.0, 100.0],
            1e-9,
        );
        assert_eq!(plus[3], 100.0);
        assert_eq!(minus[7], 0.0);
    }

    #[test]
    fn aroon_hand_worked() {
        // period 3, window of 4 bars. idx3: highs [1,3,2,1] → highest at idx1, 2 bars ago → up = 100(3-2)/3 = 33.33;
        // lows [1,3,2,1] lowest tie idx0/idx3 → most recent idx3 → down = 100.
        let h = [1.0, 3.0, 2.0, 1.0];
        let (up, down, osc) = aroon(&h, &h, 3);
        assert_close(&up, &[NAN, NAN, NAN, 100.0 / 3.0], 1e-9);
        assert_close(&down, &[NAN, NAN, NAN, 100.0], 1e-9);
        assert_close(&osc, &[NAN, NAN, NAN, 100.0 / 3.0 - 100.0], 1e-9);
    }

    #[test]
    fn parabolic_sar_hand_worked() {
        // Rising bars: highs 10,11,12,13, lows 9,10,11,12. Long from the start, SAR0 = 9, EP = 10, AF 0.02.
        // i1: sar = 9 + .02(10-9) = 9.02, capped by low0 = 9 → 9; high 11 > EP → EP 11, AF .04
        // i2: sar = 9 + .04(11-9) = 9.08, min(low1 10, low0 9) → 9; EP 12, AF .06
        // i3: sar = 9 + .06(12-9) = 9.18, min(low2 11, low1 10) → 9.18; EP 13, AF .08
        let out = parabolic_sar(
            &[10.0, 11.0, 12.0, 13.0],
            &[9.0, 10.0, 11.0, 12.0],
            0.02,
            0.02,
            0.2,
        );
        assert_close(&out, &[NAN, 9.0, 9.0, 9.18], 1e-12);
        // A drop below the SAR reverses to short with SAR = EP (the highest high).
        let out = parabolic_sar(
            &[10.0, 11.0, 12.0, 9.0],
            &[9.0, 10.0, 11.0, 8.0],
            0.02,
            0.02,
            0.2,
        );
        // i3: sar = 9 + .06*3 = 9.18 → low 8 < 9.18 → reverse, SAR = EP 12.
        assert_eq!(out[3], 12.0);
    }

    #[test]
    fn ichimoku_spans_are_shifted_forward_only() {
        let h: Vec<f64> = (0..10).map(|i| f64::from(i) + 1.0).collect();
        let l: Vec<f64> = (0..10).map(f64::from).collect();
        let [tenkan, kijun, span_a, span_b] = ichimoku(&h, &l, 2, 3, 4, 2);
        // tenkan(2) at idx1 = (max(1,2) + min(0,1)) / 2 = 1
        assert_eq!(tenkan[1], 1.0);
        // kijun(3) at idx2 = (3 + 0) / 2 = 1.5
        assert_eq!(kijun[2], 1.5);
        // span A at idx4 = (tenkan[2] + kijun[2]) / 2 = ((3+1)/2 + 1.5)/2 = 1.75
        assert_eq!(span_a[4], 1.75);
        // span B(4) at idx5 = mid over bars 0..=3 = (4 + 0)/2 = 2
        assert_eq!(span_b[5], 2.0);
        assert!(span_b[4].is_nan());
    }

    #[test]
    fn supertrend_follows_a_rise() {
        let l: Vec<f64> = (0..20).map(f64::from).collect();
        let h: Vec<f64> = l.iter().map(|v| v + 1.0).collect();
        let (line, direction) = supertrend(&h, &l, &h, 3, 2.0);
        assert!(line[..2].iter().all(|v| v.is_nan()));
        assert!(direction[2..].iter().all(|d| *d == 1.0));
        // ATR stays 1 (every TR is 1): lower band at i = hl2 - 2 = i + 0.5 - 2.
        assert!((line[10] - 8.5).abs() < 1e-9);
    }

    #[test]
    fn distance_from_ma_percent() {
        // SMA(2) of [100, 110] = 105 → 100 × (110 − 105) / 105 = 4.7619…
        let out = distance_from_ma(&[100.0, 110.0], 2, false);
        assert!(out[0].is_nan());
        assert!((out[1] - 500.0 / 105.0).abs() < 1e-12);
    }
}
