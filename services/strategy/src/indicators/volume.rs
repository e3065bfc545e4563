//! Volume indicators: OBV, VWAP, Accumulation/Distribution line, Chaikin Money Flow, volume
//! ratio.

use super::{by_finite_runs, kernel, map_finite_runs};

/// On-Balance Volume, as TA-Lib's OBV: the running total starts at the first bar's volume
/// (on the first bar after a NaN bar too, since it restarts with its run), then adds a bar's
/// volume when the close rose, subtracts it when the close fell, and keeps it when the close
/// is unchanged.
///
/// Differs from the original ktrdr, which started the total at 0.
pub fn obv(close: &[f64], volume: &[f64]) -> Vec<f64> {
    by_finite_runs([close, volume], 1, |[c, v]| {
        let mut total = v.first().copied().unwrap_or(0.0);
        vec![
            (0..c.len())
                .map(|i| {
                    if i > 0 {
                        if c[i] > c[i - 1] {
                            total += v[i];
                        } else if c[i] < c[i - 1] {
                            total -= v[i];
                        }
                    }
                    total
                })
                .collect(),
        ]
    })
    .pop()
    .unwrap_or_default()
}

/// Rolling VWAP over `period` bars: Σ(price × volume) / Σ volume, with the typical price
/// (H + L + C)/3 or the close; TA-Lib's VWMA of that price. NaN where the window's volume is 0
/// (0/0; TA-Lib's running sums leave a rounding residue there and report NaN or ±∞).
///
/// The original's VWAP(20) is also a rolling window, not the session-anchored intraday VWAP.
pub fn vwap(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    volume: &[f64],
    period: usize,
    use_typical_price: bool,
) -> Vec<f64> {
    by_finite_runs([high, low, close, volume], 1, |[h, l, c, v]| {
        let pv: Vec<f64> = (0..c.len())
            .map(|i| {
                let price = if use_typical_price {
                    (h[i] + l[i] + c[i]) / 3.0
                } else {
                    c[i]
                };
                price * v[i]
            })
            .collect();
        let pv_sum = kernel::rolling_sum(&pv, period);
        let v_sum = kernel::rolling_sum(v, period);
        vec![
            pv_sum
                .iter()
                .zip(&v_sum)
                .map(|(a, b)| if *b > 0.0 { a / b } else { f64::NAN })
                .collect(),
        ]
    })
    .pop()
    .unwrap_or_default()
}

/// Close location value `((C − L) − (H − C)) / (H − L)` in [−1, 1]; 0 for a bar with no range.
fn close_location(h: f64, l: f64, c: f64) -> f64 {
    let range = h - l;
    if range == 0.0 {
        0.0
    } else {
        ((c - l) - (h - c)) / range
    }
}

/// Accumulation/Distribution line, as TA-Lib's AD: running total of close location × volume
/// (the first bar's included); with `smoothing_period`, an SMA of it.
pub fn ad_line(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    volume: &[f64],
    smoothing_period: Option<usize>,
) -> Vec<f64> {
    by_finite_runs([high, low, close, volume], 1, |[h, l, c, v]| {
        let mut total = 0.0;
        let line: Vec<f64> = (0..c.len())
            .map(|i| {
                total += close_location(h[i], l[i], c[i]) * v[i];
                total
            })
            .collect();
        vec![match smoothing_period {
            Some(p) => kernel::sma(&line, p),
            None => line,
        }]
    })
    .pop()
    .unwrap_or_default()
}

/// Chaikin Money Flow, as TA-Lib's CMF: Σ(close location × volume) / Σ volume over `period`
/// bars; 0 where the window's volume is 0 (no money flowed).
pub fn cmf(high: &[f64], low: &[f64], close: &[f64], volume: &[f64], period: usize) -> Vec<f64> {
    by_finite_runs([high, low, close, volume], 1, |[h, l, c, v]| {
        let flow: Vec<f64> = (0..c.len())
            .map(|i| close_location(h[i], l[i], c[i]) * v[i])
            .collect();
        let flow_sum = kernel::rolling_sum(&flow, period);
        let v_sum = kernel::rolling_sum(v, period);
        vec![
            flow_sum
                .iter()
                .zip(&v_sum)
                .map(|(a, b)| {
                    if b.is_nan() {
                        f64::NAN
                    } else if *b > 0.0 {
                        a / b
                    } else {
                        0.0
                    }
                })
                .collect(),
        ]
    })
    .pop()
    .unwrap_or_default()
}

/// Relative volume, as TA-Lib's RVOL: a bar's volume over the mean volume of the `period`
/// bars before it (the first value at index `period`). NaN where that mean is 0 (TA-Lib gives
/// +∞ for a bar with volume after `period` bars without, and NaN when it has none either; an
/// infinite ratio is no usable value, so we give NaN for both).
///
/// Differs from the original ktrdr, whose average included the bar itself.
pub fn volume_ratio(volume: &[f64], period: usize) -> Vec<f64> {
    map_finite_runs(volume, |v| {
        let n = v.len();
        let avg = kernel::sma(v, period);
        (0..n)
            .map(|i| {
                if i == 0 || avg[i - 1].is_nan() || avg[i - 1] <= 0.0 {
                    f64::NAN
                } else {
                    v[i] / avg[i - 1]
                }
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::test_support::*;

    #[test]
    fn obv_hand_worked() {
        // up +20, down −30, flat 0
        // starts at the first volume 10; up +20, down −30, flat 0
        let out = obv(&[10.0, 11.0, 10.5, 10.5], &[10.0, 20.0, 30.0, 40.0]);
        assert_eq!(out, vec![10.0, 30.0, 0.0, 0.0]);
        assert_eq!(obv(&[1.0], &[5.0]), vec![5.0]);
    }

    #[test]
    fn vwap_hand_worked() {
        // close-price VWAP(2): idx1 (10×1 + 20×3)/4 = 17.5
        let c = [10.0, 20.0];
        assert_close(
            &vwap(&c, &c, &c, &[1.0, 3.0], 2, false),
            &[NAN, 17.5],
            1e-12,
        );
        // typical price (12+8+10)/3 = 10 for both bars
        let out = vwap(&[12.0; 2], &[8.0; 2], &[10.0; 2], &[1.0, 1.0], 2, true);
        assert_close(&out, &[NAN, 10.0], 1e-12);
        assert_close(&vwap(&c, &c, &c, &[0.0, 0.0], 2, false), &[NAN, NAN], 0.0);
    }

    #[test]
    fn ad_line_and_cmf_hand_worked() {
        // bar0: H 10 L 0 C 10 → CLV 1 × V 2 = 2; bar1: C 0 → CLV −1 × V 1 = −1; bar2 no range → 0
        let h = [10.0, 10.0, 5.0];
        let l = [0.0, 0.0, 5.0];
        let c = [10.0, 0.0, 5.0];
        let v = [2.0, 1.0, 4.0];
        assert_eq!(ad_line(&h, &l, &c, &v, None), vec![2.0, 1.0, 1.0]);
        assert_close(&ad_line(&h, &l, &c, &v, Some(2)), &[NAN, 1.5, 1.0], 1e-12);
        // CMF(2): idx1 (2 − 1)/3 = 1/3; idx2 (−1 + 0)/5 = −0.2
        assert_close(&cmf(&h, &l, &c, &v, 2), &[NAN, 1.0 / 3.0, -0.2], 1e-12);
        assert_close(&cmf(&h, &l, &c, &[0.0; 3], 2), &[NAN, 0.0, 0.0], 0.0);
    }

    #[test]
    fn volume_ratio_hand_worked() {
        // period 2: idx2 30 / mean(10, 20) = 2; idx3 5 / mean(20, 30) = 0.2
        assert_close(
            &volume_ratio(&[10.0, 20.0, 30.0, 5.0], 2),
            &[NAN, NAN, 2.0, 0.2],
            1e-12,
        );
        assert_close(&volume_ratio(&[0.0, 0.0, 7.0], 2), &[NAN, NAN, NAN], 0.0);
    }
}
