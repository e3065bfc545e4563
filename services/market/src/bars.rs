//! [`Bars`]: OHLCV bars of one symbol and one timeframe, one vector per column — the one bar
//! type of the whole system (store, IB relay, features, training, backtests).
//!
//! Invariants a caller can rely on after [`Bars::validate`]: every column has the same length
//! and `timestamp_ms` (each bar's **open** time, UTC epoch milliseconds) strictly increases.
//! IB's `-1` volume means "no volume reported" and is kept as is (see [`crate::resample`]).

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// OHLCV bars, one vector per column, all the same length.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bars {
    pub timestamp_ms: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

/// Why bars are not well formed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BarsError {
    #[error(
        "columns have different lengths: timestamp_ms has {timestamps} values but {column} has {len}"
    )]
    Ragged {
        column: &'static str,
        timestamps: usize,
        len: usize,
    },
    #[error("timestamps must strictly increase: bar {index} ({ts}) is not after bar {} ({previous})", index - 1)]
    Unsorted {
        index: usize,
        ts: i64,
        previous: i64,
    },
}

impl Bars {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            timestamp_ms: Vec::with_capacity(n),
            open: Vec::with_capacity(n),
            high: Vec::with_capacity(n),
            low: Vec::with_capacity(n),
            close: Vec::with_capacity(n),
            volume: Vec::with_capacity(n),
        }
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.timestamp_ms.len()
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.timestamp_ms.is_empty()
    }

    pub fn first_ms(&self) -> Option<i64> {
        self.timestamp_ms.first().copied()
    }

    pub fn last_ms(&self) -> Option<i64> {
        self.timestamp_ms.last().copied()
    }

    /// The first column whose length differs from `timestamp_ms`'s.
    pub fn check_lengths(&self) -> Result<(), BarsError> {
        let timestamps = self.timestamp_ms.len();
        for (column, values) in [
            ("open", &self.open),
            ("high", &self.high),
            ("low", &self.low),
            ("close", &self.close),
            ("volume", &self.volume),
        ] {
            if values.len() != timestamps {
                return Err(BarsError::Ragged {
                    column,
                    timestamps,
                    len: values.len(),
                });
            }
        }
        Ok(())
    }

    /// Checks that every column has the same length and timestamps strictly increase.
    pub fn validate(&self) -> Result<(), BarsError> {
        self.check_lengths()?;
        if let Some(i) = self.timestamp_ms.windows(2).position(|w| w[1] <= w[0]) {
            return Err(BarsError::Unsorted {
                index: i + 1,
                ts: self.timestamp_ms[i + 1],
                previous: self.timestamp_ms[i],
            });
        }
        Ok(())
    }

    /// Whether timestamps strictly increase.
    pub fn is_sorted_unique(&self) -> bool {
        self.timestamp_ms.windows(2).all(|w| w[0] < w[1])
    }

    /// Appends one bar.
    pub fn push(&mut self, ts: i64, open: f64, high: f64, low: f64, close: f64, volume: f64) {
        self.timestamp_ms.push(ts);
        self.open.push(open);
        self.high.push(high);
        self.low.push(low);
        self.close.push(close);
        self.volume.push(volume);
    }

    /// Appends bar `i` of `other`.
    pub fn push_from(&mut self, other: &Bars, i: usize) {
        self.push(
            other.timestamp_ms[i],
            other.open[i],
            other.high[i],
            other.low[i],
            other.close[i],
            other.volume[i],
        );
    }

    /// Appends all of `other`.
    pub fn extend(&mut self, other: &Bars) {
        self.timestamp_ms.extend_from_slice(&other.timestamp_ms);
        self.open.extend_from_slice(&other.open);
        self.high.extend_from_slice(&other.high);
        self.low.extend_from_slice(&other.low);
        self.close.extend_from_slice(&other.close);
        self.volume.extend_from_slice(&other.volume);
    }

    /// The bars `range` (by index), as a new `Bars`.
    pub fn slice(&self, range: Range<usize>) -> Bars {
        Bars {
            timestamp_ms: self.timestamp_ms[range.clone()].to_vec(),
            open: self.open[range.clone()].to_vec(),
            high: self.high[range.clone()].to_vec(),
            low: self.low[range.clone()].to_vec(),
            close: self.close[range.clone()].to_vec(),
            volume: self.volume[range].to_vec(),
        }
    }

    /// The index range of bars with `start_ms <= ts < end_ms`, for sorted bars.
    pub fn range_indices(&self, start_ms: i64, end_ms: i64) -> Range<usize> {
        let from = self.timestamp_ms.partition_point(|&t| t < start_ms);
        let to = self.timestamp_ms.partition_point(|&t| t < end_ms);
        from..to.max(from)
    }
}

#[cfg(test)]
mod tests {
    use crate::fixtures::hourly;

    #[test]
    fn validate_rejects_ragged_and_unsorted_bars_naming_what_is_wrong() {
        let mut b = hourly(3, 0);
        assert_eq!(b.validate(), Ok(()));
        b.close.pop();
        assert_eq!(
            b.validate().unwrap_err().to_string(),
            "columns have different lengths: timestamp_ms has 3 values but close has 2"
        );
        let mut b = hourly(3, 0);
        b.timestamp_ms[2] = b.timestamp_ms[1];
        assert_eq!(
            b.validate().unwrap_err().to_string(),
            "timestamps must strictly increase: bar 2 (3600000) is not after bar 1 (3600000)"
        );
        assert!(!b.is_sorted_unique());
    }

    #[test]
    fn range_indices_are_half_open() {
        let bars = hourly(10, 0);
        assert_eq!(bars.range_indices(3_600_000, 3 * 3_600_000), 1..3);
        assert_eq!(bars.range_indices(-5, 1), 0..1);
        assert_eq!(bars.range_indices(100 * 3_600_000, 200 * 3_600_000), 10..10);
        assert_eq!(bars.range_indices(5 * 3_600_000, 2 * 3_600_000), 5..5);
    }

    #[test]
    fn slices_pushes_and_extends_keep_the_columns_together() {
        let bars = hourly(10, 0);
        let mut rebuilt = bars.slice(0..4);
        rebuilt.extend(&bars.slice(4..9));
        rebuilt.push_from(&bars, 9);
        assert_eq!(rebuilt, bars);
        assert_eq!(rebuilt.first_ms(), Some(0));
        assert_eq!(rebuilt.last_ms(), Some(9 * 3_600_000));
    }
}
