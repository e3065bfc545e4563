//! Columnar OHLCV bars and timeframes.
//!
//! The data service will convert its own storage into [`Bars`]; until then tests and examples
//! build them directly or with [`crate::synthetic`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StrategyError};

/// OHLCV bars of one symbol and one timeframe, one column per field.
///
/// `timestamp_ms` is each bar's **open** time, UTC epoch milliseconds, strictly increasing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bars {
    pub timestamp_ms: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

impl Bars {
    /// Number of bars.
    pub fn len(&self) -> usize {
        self.timestamp_ms.len()
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.timestamp_ms.is_empty()
    }

    /// Checks that every column has the same length and timestamps strictly increase.
    pub fn validate(&self) -> Result<()> {
        let n = self.timestamp_ms.len();
        for (name, column) in [
            ("open", &self.open),
            ("high", &self.high),
            ("low", &self.low),
            ("close", &self.close),
            ("volume", &self.volume),
        ] {
            if column.len() != n {
                return Err(StrategyError::data(format!(
                    "column {name} has {} values but there are {n} timestamps",
                    column.len()
                )));
            }
        }
        if let Some(i) = self.timestamp_ms.windows(2).position(|w| w[1] <= w[0]) {
            return Err(StrategyError::data(format!(
                "timestamps must strictly increase: bar {} ({}) is not after bar {} ({})",
                i + 1,
                self.timestamp_ms[i + 1],
                i,
                self.timestamp_ms[i]
            )));
        }
        Ok(())
    }

    /// The bars `range` (by index), as a new `Bars`.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Bars {
        Bars {
            timestamp_ms: self.timestamp_ms[range.clone()].to_vec(),
            open: self.open[range.clone()].to_vec(),
            high: self.high[range.clone()].to_vec(),
            low: self.low[range.clone()].to_vec(),
            close: self.close[range.clone()].to_vec(),
            volume: self.volume[range].to_vec(),
        }
    }

    /// Aggregates these bars into bars of `target` (first open, max high, min low, last close,
    /// summed volume). A target bar is stamped with its open time: the start of its bucket.
    ///
    /// Buckets are aligned to the epoch, except weeks, which start on Monday 00:00 UTC. The last
    /// bucket may be incomplete (it holds only the bars seen so far), exactly as a live feed
    /// would show it; feature alignment never uses a higher-timeframe bar before its close time.
    pub fn resample(&self, target: Timeframe) -> Result<Bars> {
        self.validate()?;
        let mut out = Bars::default();
        let mut current_bucket: Option<i64> = None;
        for i in 0..self.len() {
            let bucket = target.bucket_start(self.timestamp_ms[i]);
            if current_bucket == Some(bucket) {
                let last = out.len() - 1;
                out.high[last] = out.high[last].max(self.high[i]);
                out.low[last] = out.low[last].min(self.low[i]);
                out.close[last] = self.close[i];
                out.volume[last] += self.volume[i];
            } else {
                current_bucket = Some(bucket);
                out.timestamp_ms.push(bucket);
                out.open.push(self.open[i]);
                out.high.push(self.high[i]);
                out.low.push(self.low[i]);
                out.close.push(self.close[i]);
                out.volume.push(self.volume[i]);
            }
        }
        Ok(out)
    }
}

/// A bar size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timeframe {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "30m")]
    M30,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "4h")]
    H4,
    #[serde(rename = "1d")]
    D1,
    #[serde(rename = "1w")]
    W1,
}

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;
/// 1970-01-01 was a Thursday; Monday 1970-01-05 is 4 days later.
const FIRST_MONDAY_MS: i64 = 4 * DAY_MS;

impl Timeframe {
    /// Every timeframe, shortest first.
    pub const ALL: [Timeframe; 8] = [
        Timeframe::M1,
        Timeframe::M5,
        Timeframe::M15,
        Timeframe::M30,
        Timeframe::H1,
        Timeframe::H4,
        Timeframe::D1,
        Timeframe::W1,
    ];

    /// The bar length in milliseconds.
    pub fn duration_ms(self) -> i64 {
        match self {
            Timeframe::M1 => MINUTE_MS,
            Timeframe::M5 => 5 * MINUTE_MS,
            Timeframe::M15 => 15 * MINUTE_MS,
            Timeframe::M30 => 30 * MINUTE_MS,
            Timeframe::H1 => 60 * MINUTE_MS,
            Timeframe::H4 => 240 * MINUTE_MS,
            Timeframe::D1 => DAY_MS,
            Timeframe::W1 => 7 * DAY_MS,
        }
    }

    /// The name used in strategy files and feature names (`1h`).
    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::M1 => "1m",
            Timeframe::M5 => "5m",
            Timeframe::M15 => "15m",
            Timeframe::M30 => "30m",
            Timeframe::H1 => "1h",
            Timeframe::H4 => "4h",
            Timeframe::D1 => "1d",
            Timeframe::W1 => "1w",
        }
    }

    /// The open time of the bar of this timeframe that contains `timestamp_ms`.
    pub fn bucket_start(self, timestamp_ms: i64) -> i64 {
        let duration = self.duration_ms();
        let anchor = if self == Timeframe::W1 {
            FIRST_MONDAY_MS
        } else {
            0
        };
        anchor + (timestamp_ms - anchor).div_euclid(duration) * duration
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Timeframe {
    type Err = StrategyError;

    fn from_str(s: &str) -> Result<Self> {
        Timeframe::ALL
            .into_iter()
            .find(|tf| tf.as_str() == s)
            .ok_or_else(|| {
                StrategyError::data(format!(
                    "unknown timeframe {s:?}; expected one of 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(ts: &[i64], close: &[f64]) -> Bars {
        Bars {
            timestamp_ms: ts.to_vec(),
            open: close.to_vec(),
            high: close.iter().map(|c| c + 1.0).collect(),
            low: close.iter().map(|c| c - 1.0).collect(),
            close: close.to_vec(),
            volume: vec![10.0; close.len()],
        }
    }

    #[test]
    fn timeframes_parse_and_print() {
        for tf in Timeframe::ALL {
            assert_eq!(tf.as_str().parse::<Timeframe>().unwrap(), tf);
        }
        assert!("2h".parse::<Timeframe>().is_err());
        assert_eq!(Timeframe::H4.duration_ms(), 14_400_000);
        assert!(
            Timeframe::ALL
                .windows(2)
                .all(|w| w[0].duration_ms() < w[1].duration_ms())
        );
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2024-01-03 (Wednesday) 12:00 UTC = 1704283200000; that week's Monday = 1704067200000.
        assert_eq!(
            Timeframe::W1.bucket_start(1_704_283_200_000),
            1_704_067_200_000
        );
        // 2024-01-01 00:00 is itself a Monday.
        assert_eq!(
            Timeframe::W1.bucket_start(1_704_067_200_000),
            1_704_067_200_000
        );
    }

    #[test]
    fn validate_rejects_ragged_and_unsorted() {
        let mut b = bars(&[0, 1], &[1.0, 2.0]);
        assert!(b.validate().is_ok());
        b.volume.pop();
        assert!(b.validate().is_err());
        let b = bars(&[1, 1], &[1.0, 2.0]);
        assert!(b.validate().is_err());
    }

    #[test]
    fn resample_hours_into_four_hours() {
        let h = 3_600_000;
        // Five hourly bars from 02:00: buckets 00:00 (02:00, 03:00) and 04:00 (04:00..06:00).
        let ts: Vec<i64> = (2..7).map(|k| k * h).collect();
        let b = bars(&ts, &[1.0, 5.0, 2.0, 3.0, 4.0]);
        let r = b.resample(Timeframe::H4).unwrap();
        assert_eq!(r.timestamp_ms, vec![0, 4 * h]);
        assert_eq!(r.open, vec![1.0, 2.0]);
        assert_eq!(r.close, vec![5.0, 4.0]);
        assert_eq!(r.high, vec![6.0, 5.0]);
        assert_eq!(r.low, vec![0.0, 1.0]);
        assert_eq!(r.volume, vec![20.0, 30.0]);
    }
}
