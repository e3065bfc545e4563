//! Chronological train / validation / test split of one symbol's bars.
//!
//! Nothing is shuffled before splitting: train is the oldest part, test the newest. (The
//! original shuffled multi-symbol rows *before* its "chronological" split, leaking the future
//! into training.) Multi-symbol data are split per symbol, then joined
//! ([`crate::dataset`]).

use std::ops::Range;

use crate::strategy::DataSplit;

/// Index ranges `[train, validation, test]` covering `0..n` in order. Train and validation
/// get `floor(n × fraction)` bars; test gets the rest.
pub fn chronological_ranges(n: usize, split: DataSplit) -> [Range<usize>; 3] {
    let take = |fraction: f64| ((n as f64) * fraction).floor().clamp(0.0, n as f64) as usize;
    let train_end = take(split.train).min(n);
    let validation_end = (train_end + take(split.validation)).min(n);
    let test_end = if split.test > 0.0 { n } else { validation_end };
    [
        0..train_end,
        train_end..validation_end,
        validation_end..test_end,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seventy_fifteen_fifteen() {
        let s = DataSplit {
            train: 0.7,
            validation: 0.15,
            test: 0.15,
        };
        // 100 bars: floor(70) = 70, floor(15) = 15, rest 15.
        assert_eq!(chronological_ranges(100, s), [0..70, 70..85, 85..100]);
        // 7 bars: floor(4.9) = 4, floor(1.05) = 1, rest 2.
        assert_eq!(chronological_ranges(7, s), [0..4, 4..5, 5..7]);
        assert_eq!(chronological_ranges(0, s), [0..0, 0..0, 0..0]);
        assert_eq!(chronological_ranges(1, s), [0..0, 0..0, 0..1]);
    }

    #[test]
    fn no_test_part() {
        let s = DataSplit {
            train: 0.8,
            validation: 0.2,
            test: 0.0,
        };
        assert_eq!(chronological_ranges(10, s), [0..8, 8..10, 10..10]);
    }
}
