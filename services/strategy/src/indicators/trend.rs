//! Trend indicators: moving averages, MACD, ADX, Aroon, Parabolic SAR, Ichimoku, SuperTrend,
//! distance from a moving average.

use super::{by_finite_runs, kernel, map_finite_runs};

/// Simple moving average of the last `period` values (TA-Lib's SMA).
pub fn sma(x: &[f64], period: usize) -> Vec<f64> {
    map_finite_runs(x, |x| kernel::sma(x, period))
}

/// Exponential moving average, `alpha = 2 / (period + 1)`, seeded with the SMA of the first
/// `period` values (first value at index `period - 1`), as TA-Lib's EMA.
///
/// Differs from the original ktrdr, which used pandas `ewm(span, adjust=True)`: a weighted
/// average over all history with no warm-up, so its first values depend on how far back the
/// data happen to start. SMA seeding is the standard (TA-Lib, StockCharts).
pub fn ema(x: &[f64], period: usize) -> Vec<f64> {
    map_finite_runs(x, |x| kernel::ema(x, period))
}

/// MACD line (EMA fast − EMA slow), signal line (EMA of the MACD line) and histogram, as
/// TA-Lib's MACD.
///
/// Every EMA is SMA-seeded, and both price EMAs are seeded on the same bar, `slow - 1`: the
/// slow one over the first `slow` prices, the fast one over the `fast` prices ending there
/// (TA-Lib's convention, so the line starts from two aligned averages). The MACD line starts
/// at index `slow - 1`, the signal and histogram `signal - 1` bars later. The original used
/// `ewm(adjust=False)` seeded with the first price, so it had values from the first bar whose
/// early part depends on where the data start.
pub fn macd(x: &[f64], fast: usize, slow: usize, signal: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut out = by_finite_runs([x], 3, |[x]| {
        let lag = slow.saturating_sub(fast).min(x.len());
        let fast_ema = kernel::placed_at(x.len(), lag, kernel::ema(&x[lag..], fast));
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

/// Wilder's ADX with +DI and −DI, as TA-Lib's ADX, PLUS_DI and MINUS_DI.
///
/// +DM/−DM and the true range start at the second bar (they need the previous bar). They are
/// smoothed as Wilder's running sums `S ← S − S / period + x`, started from the sum of the
/// first `period − 1` values (TA-Lib's seed), so the DIs start at index `period`; DX starts
/// there too and ADX, the mean of the first `period` DX values and then Wilder's average, at
/// index `2 * period - 1`. Where the smoothed true range is 0 both DIs are 0; where
/// +DI + −DI is 0 (no directional movement at all) DX is undefined: it counts as 0 in the
/// first mean and leaves ADX unchanged afterwards (TA-Lib's rules).
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
        if period == 0 || n <= period {
            return vec![adx, plus_di, minus_di];
        }
        let p = period as f64;
        let tr = kernel::true_range(h, l, c);
        // (+DM, −DM) of bar i: the larger move, if positive; neither on a tie.
        let dm = |i: usize| {
            let up = h[i] - h[i - 1];
            let down = l[i - 1] - l[i];
            if down > 0.0 && up < down {
                (0.0, down)
            } else if up > 0.0 && up > down {
                (up, 0.0)
            } else {
                (0.0, 0.0)
            }
        };
        let (mut s_plus, mut s_minus, mut s_tr) = (0.0, 0.0, 0.0);
        for (i, range) in tr.iter().enumerate().take(period).skip(1) {
            let (up, down) = dm(i);
            s_plus += up;
            s_minus += down;
            s_tr += range;
        }
        let mut dx_sum = 0.0;
        let mut value = f64::NAN;
        for i in period..n {
            let (up, down) = dm(i);
            s_plus = s_plus - s_plus / p + up;
            s_minus = s_minus - s_minus / p + down;
            s_tr = s_tr - s_tr / p + tr[i];
            let (pdi, mdi) = if s_tr != 0.0 {
                (100.0 * (s_plus / s_tr), 100.0 * (s_minus / s_tr))
            } else {
                (0.0, 0.0)
            };
            plus_di[i] = pdi;
            minus_di[i] = mdi;
            let sum = pdi + mdi;
            let dx = (s_tr != 0.0 && sum != 0.0).then(|| 100.0 * ((mdi - pdi).abs() / sum));
            if i < 2 * period - 1 {
                dx_sum += dx.unwrap_or(0.0);
            } else if i == 2 * period - 1 {
                value = (dx_sum + dx.unwrap_or(0.0)) / p;
                adx[i] = value;
            } else {
                if let Some(dx) = dx {
                    value = (value * (p - 1.0) + dx) / p;
                }
                adx[i] = value;
            }
        }
        vec![adx, plus_di, minus_di]
    });
    let minus = out.pop().unwrap_or_default();
    let plus = out.pop().unwrap_or_default();
    let adx = out.pop().unwrap_or_default();
    (adx, plus, minus)
}

/// Aroon up / down / oscillator over the last `period + 1` bars (first value at index
/// `period`), as TA-Lib's AROON and AROONOSC. `up = 100 × (period − bars since the highest high) / period`; on ties the most
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

/// Wilder's Parabolic SAR, as TA-Lib's SAR (SAREXT when `step_af` differs from
/// `initial_af`; TA-Lib's SAREXT then reports short SARs as negative numbers, we do not).
///
/// Start-up: the first bar has no value. The trade on the second bar is short when the low
/// fell by more than the high rose between the first two bars (−DM > +DM and −DM > 0), long
/// otherwise; its SAR is the first bar's low (long) or high (short) and its extreme point the
/// second bar's high (long) or low (short).
///
/// Each bar: a long trade reverses when the low touches or crosses the SAR (`low ≤ SAR`; a
/// short one when `high ≥ SAR`). On a reversal the bar's SAR is the previous extreme point,
/// moved out of the previous and current bars' range if it lies inside, the extreme point
/// becomes the bar's low (high) and the acceleration factor `initial_af`. Otherwise the bar's
/// SAR is the one projected the bar before, and a new extreme raises the factor by `step_af`
/// up to `max_af`. The next SAR is `SAR + af × (EP − SAR)`, never inside the previous and
/// current bars' range.
///
/// Differs from the original ktrdr, whose start-up (direction from the second bar's high,
/// extreme point from the first bar) and reversals (only when the low falls strictly below
/// the SAR, SAR capped by the two bars before) were its own.
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
        let up = h[1] - h[0];
        let down = l[0] - l[1];
        let mut long = !(down > 0.0 && up < down);
        let (mut sar, mut ep) = if long { (l[0], h[1]) } else { (h[0], l[1]) };
        let mut af = initial_af;
        // The first step compares with the second bar itself (TA-Lib's start).
        let (mut new_high, mut new_low) = (h[1], l[1]);
        for i in 1..n {
            let (prev_high, prev_low) = (new_high, new_low);
            (new_high, new_low) = (h[i], l[i]);
            if long {
                if new_low <= sar {
                    long = false;
                    sar = ep.max(prev_high).max(new_high);
                    out[i] = sar;
                    af = initial_af;
                    ep = new_low;
                    sar = (sar + af * (ep - sar)).max(prev_high).max(new_high);
                } else {
                    out[i] = sar;
                    if new_high > ep {
                        ep = new_high;
                        af = (af + step_af).min(max_af);
                    }
                    sar = (sar + af * (ep - sar)).min(prev_low).min(new_low);
                }
            } else if new_high >= sar {
                long = true;
                sar = ep.min(prev_low).min(new_low);
                out[i] = sar;
                af = initial_af;
                ep = new_high;
                sar = (sar + af * (ep - sar)).min(prev_low).min(new_low);
            } else {
                out[i] = sar;
                if new_low < ep {
                    ep = new_low;
                    af = (af + step_af).min(max_af);
                }
                sar = (sar + af * (ep - sar)).max(prev_high).max(new_high);
            }
        }
        vec![out]
    })
    .pop()
    .unwrap_or_default()
}

/// Ichimoku: tenkan-sen, kijun-sen, senkou span A and B. Tenkan and kijun are midpoints of
/// the highest high and lowest low (TA-Lib's MIDPRICE).
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

/// SuperTrend line and direction (+1 up, −1 down), as TA-Lib's SUPERTREND: Wilder's ATR and
/// `hl2 ± multiplier × ATR` bands that only ratchet in the trend's favour, each released by a
/// close beyond it. The first value is at the ATR's first bar, index `period`, and starts an
/// up trend (TA-Lib's convention: the line is the lower band there).
pub fn supertrend(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    period: usize,
    multiplier: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = by_finite_runs([high, low, close], 2, |[h, l, c]| {
        let n = h.len();
        let atr = kernel::atr(h, l, c, period);
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
                None => (basic_upper, basic_lower, 1.0),
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

/// Distance of `x` from its moving average (SMA or EMA, as above), in percent:
/// `100 × (x − MA) / MA`.
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
        // Rising bars: highs 10,11,12,13, lows 9,10,11,12. −DM of bar 1 is 0 → long; SAR = low0
        // = 9, EP = high1 = 11, AF .02.
        // i1: low 10 > 9, no new extreme: SAR 9; next 9 + .02(11 − 9) = 9.04 (≤ lows 10, 10).
        // i2: SAR 9.04; high 12 > EP → EP 12, AF .04; next 9.04 + .04(12 − 9.04) = 9.1584.
        // i3: SAR 9.1584.
        let out = parabolic_sar(
            &[10.0, 11.0, 12.0, 13.0],
            &[9.0, 10.0, 11.0, 12.0],
            0.02,
            0.02,
            0.2,
        );
        assert_close(&out, &[NAN, 9.0, 9.04, 9.1584], 1e-12);
        // i3: low 8 ≤ SAR 9.1584 → short; SAR = EP 12, outside the bars' range (max(12, 9)).
        let out = parabolic_sar(
            &[10.0, 11.0, 12.0, 9.0],
            &[9.0, 10.0, 11.0, 8.0],
            0.02,
            0.02,
            0.2,
        );
        assert_eq!(out[3], 12.0);
        // A low that only touches the SAR reverses too: i1 low 9 ≤ SAR 9.
        let out = parabolic_sar(&[10.0, 11.0], &[9.0, 9.0], 0.02, 0.02, 0.2);
        assert_eq!(out[1], 11.0);
        // Falling first bars start short: SAR = high0 = 10, EP = low1 = 8.
        let out = parabolic_sar(&[10.0, 9.5, 9.0], &[9.0, 8.0, 7.5], 0.02, 0.02, 0.2);
        assert_eq!(out[1], 10.0);
        // i2: 10 + .02(8 − 10) = 9.96, kept above the highs 9.5 and 9.5 → 9.96.
        assert_close(&out[2..], &[9.96], 1e-12);
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
        assert!(line[..3].iter().all(|v| v.is_nan()));
        assert!(direction[3..].iter().all(|d| *d == 1.0));
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
