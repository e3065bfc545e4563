//! ZigZag pivots and segment labels (BUY / HOLD / SELL).
//!
//! Labels look at the future by design: they are what the model learns to predict. They are
//! computed per split (see [`crate::dataset`]) so a training label never uses validation or
//! test prices.

use serde::{Deserialize, Serialize};

/// The three classes, in the model's output order (the original's: 0 BUY, 1 HOLD, 2 SELL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Label {
    Buy = 0,
    Hold = 1,
    Sell = 2,
}

impl Label {
    pub const ALL: [Label; 3] = [Label::Buy, Label::Hold, Label::Sell];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<Label> {
        Self::ALL.get(i).copied()
    }

    /// `BUY`, `HOLD` or `SELL`.
    pub fn name(self) -> &'static str {
        match self {
            Label::Buy => "BUY",
            Label::Hold => "HOLD",
            Label::Sell => "SELL",
        }
    }
}

/// A confirmed ZigZag extreme.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pivot {
    pub index: usize,
    /// True for a swing high, false for a swing low.
    pub is_high: bool,
}

/// Confirmed ZigZag pivots of `close`: an extreme becomes a pivot once the price has moved
/// `threshold` (a fraction, 0.02 = 2 %) away from it in the other direction. The last, still
/// unconfirmed extreme is not returned. NaN prices are skipped.
pub fn zigzag_pivots(close: &[f64], threshold: f64) -> Vec<Pivot> {
    let mut pivots = Vec::new();
    let Some(first) = close.iter().position(|v| v.is_finite() && *v > 0.0) else {
        return pivots;
    };
    // Before the first swing is known, track both the running high and low.
    let (mut hi, mut lo) = (first, first);
    let mut direction: Option<bool> = None; // Some(true) = rising (tracking a high)
    let mut extreme = first;
    for i in first + 1..close.len() {
        let x = close[i];
        if !(x.is_finite() && x > 0.0) {
            continue;
        }
        match direction {
            None => {
                if x > close[hi] {
                    hi = i;
                }
                if x < close[lo] {
                    lo = i;
                }
                if x >= close[lo] * (1.0 + threshold) {
                    pivots.push(Pivot {
                        index: lo,
                        is_high: false,
                    });
                    direction = Some(true);
                    extreme = i;
                } else if x <= close[hi] * (1.0 - threshold) {
                    pivots.push(Pivot {
                        index: hi,
                        is_high: true,
                    });
                    direction = Some(false);
                    extreme = i;
                }
            }
            Some(true) => {
                if x > close[extreme] {
                    extreme = i;
                } else if x <= close[extreme] * (1.0 - threshold) {
                    pivots.push(Pivot {
                        index: extreme,
                        is_high: true,
                    });
                    direction = Some(false);
                    extreme = i;
                }
            }
            Some(false) => {
                if x < close[extreme] {
                    extreme = i;
                } else if x >= close[extreme] * (1.0 + threshold) {
                    pivots.push(Pivot {
                        index: extreme,
                        is_high: false,
                    });
                    direction = Some(true);
                    extreme = i;
                }
            }
        }
    }
    pivots
}

/// Segment labels from the ZigZag of `close`, as the original's `generate_segment_labels`:
/// bars strictly between a swing low and the next swing high are BUY, between a high and the
/// next low SELL, the pivots themselves HOLD.
///
/// Bars before the first pivot and after the last confirmed one get `None`: their segment's
/// direction is not known from these prices. Callers drop
/// them from training.
pub fn segment_labels(close: &[f64], threshold: f64) -> Vec<Option<Label>> {
    let mut labels = vec![None; close.len()];
    let pivots = zigzag_pivots(close, threshold);
    for pair in pivots.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let label = if from.is_high {
            Label::Sell
        } else {
            Label::Buy
        };
        for slot in &mut labels[from.index + 1..to.index] {
            *slot = Some(label);
        }
    }
    for pivot in &pivots {
        labels[pivot.index] = Some(Label::Hold);
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pivots_hand_worked() {
        // threshold 10 %: the low 100 (idx 0) is confirmed by 120 (≥ 110; 110 itself is not
        // safely ≥ 100 × 1.1 in floating point), the high 120 by 108 (≤ 120 × 0.9), the low 100
        // at idx 6 by 111 (≥ 110); the rise to 130 stays unconfirmed.
        let c = [
            100.0, 105.0, 110.0, 120.0, 115.0, 108.0, 100.0, 111.0, 130.0,
        ];
        let p = zigzag_pivots(&c, 0.10);
        let idx: Vec<(usize, bool)> = p.iter().map(|p| (p.index, p.is_high)).collect();
        assert_eq!(idx, vec![(0, false), (3, true), (6, false)]);
    }

    #[test]
    fn segment_labels_hand_worked() {
        let c = [
            100.0, 105.0, 110.0, 120.0, 115.0, 108.0, 100.0, 111.0, 130.0,
        ];
        let l = segment_labels(&c, 0.10);
        use Label::*;
        assert_eq!(
            l,
            vec![
                Some(Hold),
                Some(Buy),
                Some(Buy),
                Some(Hold),
                Some(Sell),
                Some(Sell),
                Some(Hold),
                None,
                None
            ]
        );
    }

    #[test]
    fn flat_single_and_nan_inputs() {
        assert!(segment_labels(&[5.0; 10], 0.02).iter().all(Option::is_none));
        assert_eq!(segment_labels(&[5.0], 0.02), vec![None]);
        assert!(segment_labels(&[], 0.02).is_empty());
        let c = [100.0, f64::NAN, 120.0, 100.0];
        let p = zigzag_pivots(&c, 0.1);
        assert_eq!(p.iter().map(|p| p.index).collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn labels_round_trip_indices() {
        for l in Label::ALL {
            assert_eq!(Label::from_index(l.index()), Some(l));
        }
        assert_eq!(Label::from_index(3), None);
    }
}
