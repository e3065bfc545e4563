//! Volatility indicators: ATR, Bollinger Bands and width, Keltner and Donchian channels,
//! squeeze intensity.

use super::momentum::position_in_range;
use super::{by_finite_runs, kernel, map_finite_runs};

/// Wilder's Average True Range, as TA-Lib's ATR. The first bar has no true range (no
/// previous close); the first ATR, at index `period`, is the mean of the true ranges of bars
/// 1..=period, then Wilder smoothing.
///
/// Differs from the original ktrdr, which used a plain rolling mean of the true range (an SMA,
/// not Wilder's average).
pub fn atr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<f64> {
    by_finite_runs([high, low, close], 1, |[h, l, c]| {
        vec![kernel::atr(h, l, c, period)]
    })
    .pop()
    .unwrap_or_default()
}

/// Bollinger Bands, as TA-Lib's BBANDS with an SMA: middle SMA, upper/lower at ± `std_dev`
/// population standard deviations (Bollinger's definition divides by N, not N − 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Bands {
    pub upper: Vec<f64>,
    pub middle: Vec<f64>,
    pub lower: Vec<f64>,
    /// %B: where the close is between the bands (0 at the lower, 1 at the upper band); 0.5
    /// when the bands have collapsed (flat prices).
    pub percent_b: Vec<f64>,
    /// (upper − lower) / middle.
    pub bandwidth: Vec<f64>,
}

pub fn bollinger(x: &[f64], period: usize, std_dev: f64) -> Bands {
    let out = by_finite_runs([x], 5, |[x]| {
        let middle = kernel::sma(x, period);
        let sd = kernel::rolling_population_std(x, period);
        let upper: Vec<f64> = middle
            .iter()
            .zip(&sd)
            .map(|(m, s)| m + std_dev * s)
            .collect();
        let lower: Vec<f64> = middle
            .iter()
            .zip(&sd)
            .map(|(m, s)| m - std_dev * s)
            .collect();
        let percent_b = (0..x.len())
            .map(|i| position_in_range(x[i], lower[i], upper[i]))
            .collect();
        let bandwidth = (0..x.len())
            .map(|i| relative_width(upper[i], lower[i], middle[i]))
            .collect();
        vec![upper, middle, lower, percent_b, bandwidth]
    });
    bands_from(out)
}

/// Only the %B of [`bollinger`] (the series fuzzy sets read), the same values without the other
/// four columns.
pub fn bollinger_percent_b(x: &[f64], period: usize, std_dev: f64) -> Vec<f64> {
    map_finite_runs(x, |x| {
        let middle = kernel::sma(x, period);
        let sd = kernel::rolling_population_std(x, period);
        (0..x.len())
            .map(|i| {
                let (m, s) = (middle[i], sd[i]);
                position_in_range(x[i], m - std_dev * s, m + std_dev * s)
            })
            .collect()
    })
}

fn relative_width(upper: f64, lower: f64, middle: f64) -> f64 {
    if middle == 0.0 {
        f64::NAN
    } else {
        (upper - lower) / middle
    }
}

fn bands_from(out: Vec<Vec<f64>>) -> Bands {
    let mut it = out.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Bands {
        upper: next(),
        middle: next(),
        lower: next(),
        percent_b: next(),
        bandwidth: next(),
    }
}

/// Keltner Channels as TA-Lib's KC: the middle line is the EMA(`period`) of the typical price
/// (H + L + C)/3, the bands are at ± `multiplier` × ATR(`atr_period`). Both legs start on the
/// same bar, `max(period − 1, atr_period)`, each seeded there over its own window (so the
/// shorter one is seeded later than it would be alone). `percent_b` and `bandwidth` as for
/// Bollinger.
///
/// Differs from the original ktrdr, whose middle line was an EMA of the close.
pub fn keltner(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    period: usize,
    atr_period: usize,
    multiplier: f64,
) -> Bands {
    let out = by_finite_runs([high, low, close], 5, |[h, l, c]| {
        let n = c.len();
        let start = period.saturating_sub(1).max(atr_period);
        if period == 0 || n <= start {
            return vec![vec![f64::NAN; n]; 5];
        }
        let tp: Vec<f64> = (0..n).map(|i| (h[i] + l[i] + c[i]) / 3.0).collect();
        let ema_from = start + 1 - period;
        let middle = kernel::placed_at(n, ema_from, kernel::ema(&tp[ema_from..], period));
        let atr_from = start - atr_period;
        let atr = kernel::placed_at(
            n,
            atr_from,
            kernel::atr(&h[atr_from..], &l[atr_from..], &c[atr_from..], atr_period),
        );
        let upper: Vec<f64> = middle
            .iter()
            .zip(&atr)
            .map(|(m, a)| m + a * multiplier)
            .collect();
        let lower: Vec<f64> = middle
            .iter()
            .zip(&atr)
            .map(|(m, a)| m - a * multiplier)
            .collect();
        let percent_b = (0..n)
            .map(|i| position_in_range(c[i], lower[i], upper[i]))
            .collect();
        let bandwidth = (0..n)
            .map(|i| relative_width(upper[i], lower[i], middle[i]))
            .collect();
        vec![upper, middle, lower, percent_b, bandwidth]
    });
    bands_from(out)
}

/// Donchian Channels, as TA-Lib's DONCHIAN: highest high and lowest low of the last `period`
/// bars (current bar included), their midpoint, and the close's position in the channel (0.5
/// where the channel has no width).
pub fn donchian(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Bands {
    let out = by_finite_runs([high, low, close], 5, |[h, l, c]| {
        let upper = kernel::rolling_max(h, period);
        let lower = kernel::rolling_min(l, period);
        let middle: Vec<f64> = upper
            .iter()
            .zip(&lower)
            .map(|(u, l)| (u + l) / 2.0)
            .collect();
        let percent_b = (0..c.len())
            .map(|i| position_in_range(c[i], lower[i], upper[i]))
            .collect();
        let bandwidth = (0..c.len())
            .map(|i| relative_width(upper[i], lower[i], middle[i]))
            .collect();
        vec![upper, middle, lower, percent_b, bandwidth]
    });
    bands_from(out)
}

/// Squeeze intensity: `1 − Bollinger width / Keltner width`. Positive while the Bollinger
/// Bands sit inside the Keltner Channels (a "squeeze"), the larger the tighter; negative when
/// they are outside. Our own definition: the original's `SqueezeIntensity` is not a published
/// indicator. 1 when both widths are 0.
#[allow(clippy::too_many_arguments)]
pub fn squeeze_intensity(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    bb_period: usize,
    bb_std_dev: f64,
    kc_period: usize,
    kc_atr_period: usize,
    kc_multiplier: f64,
) -> Vec<f64> {
    let bb = bollinger(close, bb_period, bb_std_dev);
    let kc = keltner(high, low, close, kc_period, kc_atr_period, kc_multiplier);
    (0..close.len())
        .map(|i| {
            let bb_width = bb.upper[i] - bb.lower[i];
            let kc_width = kc.upper[i] - kc.lower[i];
            if bb_width.is_nan() || kc_width.is_nan() {
                f64::NAN
            } else if kc_width == 0.0 {
                if bb_width == 0.0 { 1.0 } else { f64::NAN }
            } else {
                1.0 - bb_width / kc_width
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::test_support::*;

    #[test]
    fn percent_b_alone_is_bollingers_percent_b_to_the_bit() {
        let mut x: Vec<f64> = (0..500).map(|i| 50.0 + (i as f64 * 0.21).cos()).collect();
        x[100] = NAN; // a second finite run
        x[300..330].fill(49.5); // collapsed bands
        let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&bollinger_percent_b(&x, 20, 2.0)),
            bits(&bollinger(&x, 20, 2.0).percent_b)
        );
    }

    #[test]
    fn atr_hand_worked() {
        // H/L/C: (10,8,9) (11,9,10) (12,9,11) (11,10,10.5)
        // TR: none; max(2, |11−9|, |9−9|) = 2; max(3, |12−10|, |9−10|) = 3; max(1, |11−11|, |10−11|) = 1
        // Bar 0 has no true range (no previous close). ATR(2): idx2 = (2 + 3)/2 = 5/2;
        // idx3 = (5/2 × 1 + 1)/2 = 7/4.
        let out = atr(
            &[10.0, 11.0, 12.0, 11.0],
            &[8.0, 9.0, 9.0, 10.0],
            &[9.0, 10.0, 11.0, 10.5],
            2,
        );
        assert_close(&out, &[NAN, NAN, 5.0 / 2.0, 7.0 / 4.0], 1e-12);
        assert_close(
            &atr(&[5.0; 3], &[5.0; 3], &[5.0; 3], 2),
            &[NAN, NAN, 0.0],
            0.0,
        );
        assert_close(&atr(&[5.0], &[4.0], &[4.5], 14), &[NAN], 0.0);
    }

    #[test]
    fn bollinger_hand_worked() {
        // [2,4,4,4,5,5,7,9], period 8: mean 5, population σ 2 → bands 1 and 9 at k = 2.
        // %B of close 9 = (9 − 1)/(9 − 1) = 1; width = 8/5 = 1.6.
        let x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let b = bollinger(&x, 8, 2.0);
        assert!(b.middle[..7].iter().all(|v| v.is_nan()));
        assert_eq!((b.upper[7], b.middle[7], b.lower[7]), (9.0, 5.0, 1.0));
        assert_eq!(b.percent_b[7], 1.0);
        assert!((b.bandwidth[7] - 1.6).abs() < 1e-12);
        // Flat prices: the bands collapse onto the price; %B 0.5, width 0.
        let flat = bollinger(&[3.3; 4], 3, 2.0);
        assert_close(&flat.upper, &[NAN, NAN, 3.3, 3.3], 1e-12);
        assert_close(&flat.percent_b, &[NAN, NAN, 0.5, 0.5], 0.0);
        assert_close(&flat.bandwidth, &[NAN, NAN, 0.0, 0.0], 1e-12);
    }

    #[test]
    fn keltner_and_donchian_hand_worked() {
        // Constant bars H 11, L 9, C 10: EMA of the typical price 10, TR 2 → ATR 2 → bands
        // 10 ± 2 × 2, from bar max(period − 1, atr_period) = 2.
        let k = keltner(&[11.0; 4], &[9.0; 4], &[10.0; 4], 2, 2, 2.0);
        assert_close(&k.upper, &[NAN, NAN, 14.0, 14.0], 1e-12);
        assert_close(&k.lower, &[NAN, NAN, 6.0, 6.0], 1e-12);
        assert_close(&k.percent_b, &[NAN, NAN, 0.5, 0.5], 1e-12);
        let d = donchian(&[3.0, 5.0, 4.0], &[1.0, 2.0, 3.0], &[2.0, 4.0, 3.5], 2);
        // idx2: upper max(5,4) = 5, lower min(2,3) = 2, middle 3.5, %B (3.5−2)/3 = .5
        assert_close(&d.upper, &[NAN, 5.0, 5.0], 0.0);
        assert_close(&d.lower, &[NAN, 1.0, 2.0], 0.0);
        assert_close(&d.middle, &[NAN, 3.0, 3.5], 0.0);
        assert_close(&d.percent_b, &[NAN, 0.75, 0.5], 1e-12);
    }

    #[test]
    fn squeeze_of_constant_bars() {
        // Constant close: BB width 0; KC width 2 × 2 × ATR(=2) = 8 → intensity 1, from the
        // Keltner start, bar max(3 − 1, 3) = 3.
        let s = squeeze_intensity(&[11.0; 5], &[9.0; 5], &[10.0; 5], 3, 2.0, 3, 3, 2.0);
        assert_close(&s, &[NAN, NAN, NAN, 1.0, 1.0], 1e-12);
    }
}
