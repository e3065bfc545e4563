//! Bar sizes: one spelling set everywhere (`1m 5m 15m 30m 1h 4h 1d 1w`, hours, days and weeks
//! also in upper case), bar alignment and durations.
//!
//! Invariants: intraday and daily bars align to multiples of their length from the UTC epoch;
//! weekly bars start on Monday 00:00 UTC. `1M` is never accepted (it reads as a month).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A bar size ktrdr stores, trains on and backtests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timeframe {
    M1,
    M5,
    M15,
    M30,
    H1,
    H4,
    D1,
    W1,
}

/// Milliseconds in a minute.
pub const MINUTE_MS: i64 = 60_000;
/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// 1970-01-01 was a Thursday; weekly bars start on Mondays (00:00 UTC), 4 days later.
const FIRST_MONDAY_MS: i64 = 4 * DAY_MS;

/// A timeframe spelling that is not one of [`Timeframe::ACCEPTED`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown timeframe {shown}; accepted: {accepted}", shown = self.shown(), accepted = Timeframe::ACCEPTED)]
pub struct UnknownTimeframe(pub String);

impl UnknownTimeframe {
    fn shown(&self) -> String {
        if self.0.is_empty() {
            "empty".to_owned()
        } else {
            crate::shown::shown(&self.0)
        }
    }
}

impl Timeframe {
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

    /// The accepted spellings, for error messages and help texts.
    pub const ACCEPTED: &str = "1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w";

    /// Parses `1m 5m 15m 30m 1h 4h 1d 1w` (hours, days and weeks also in upper case; `1M` is
    /// not accepted because it reads as a month). Surrounding whitespace is ignored.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw.trim() {
            "1m" => Self::M1,
            "5m" => Self::M5,
            "15m" => Self::M15,
            "30m" => Self::M30,
            "1h" | "1H" => Self::H1,
            "4h" | "4H" => Self::H4,
            "1d" | "1D" => Self::D1,
            "1w" | "1W" => Self::W1,
            _ => return None,
        })
    }

    /// The canonical spelling (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::M1 => "1m",
            Self::M5 => "5m",
            Self::M15 => "15m",
            Self::M30 => "30m",
            Self::H1 => "1h",
            Self::H4 => "4h",
            Self::D1 => "1d",
            Self::W1 => "1w",
        }
    }

    /// Length of one bar in milliseconds.
    pub fn duration_ms(self) -> i64 {
        match self {
            Self::M1 => MINUTE_MS,
            Self::M5 => 5 * MINUTE_MS,
            Self::M15 => 15 * MINUTE_MS,
            Self::M30 => 30 * MINUTE_MS,
            Self::H1 => HOUR_MS,
            Self::H4 => 4 * HOUR_MS,
            Self::D1 => DAY_MS,
            Self::W1 => 7 * DAY_MS,
        }
    }

    /// The open time of the bar containing `ts_ms`. Intraday and daily bars are aligned to UTC
    /// midnight multiples; weekly bars start on Monday 00:00 UTC. Never overflows: a timestamp
    /// within a bar of `i64::MIN` saturates to `i64::MIN`.
    pub fn bar_start(self, ts_ms: i64) -> i64 {
        let offset = if self == Self::W1 { FIRST_MONDAY_MS } else { 0 };
        let into_bar =
            (i128::from(ts_ms) - i128::from(offset)).rem_euclid(i128::from(self.duration_ms()));
        i64::try_from(i128::from(ts_ms) - into_bar).unwrap_or(i64::MIN)
    }

    /// Whether `ts_ms` is the open time of a bar of this timeframe.
    pub fn is_aligned(self, ts_ms: i64) -> bool {
        self.bar_start(ts_ms) == ts_ms
    }

    /// Whether every bar of `self` is made of whole bars of `finer`.
    pub fn is_multiple_of(self, finer: Timeframe) -> bool {
        self.duration_ms() % finer.duration_ms() == 0 && self >= finer
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Timeframe {
    type Err = UnknownTimeframe;

    fn from_str(s: &str) -> Result<Self, UnknownTimeframe> {
        Self::parse(s).ok_or_else(|| UnknownTimeframe(s.to_owned()))
    }
}

/// Written as its canonical spelling (`"1h"`).
impl Serialize for Timeframe {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Read with [`Timeframe::parse`]: the same spellings as every request field.
impl<'de> Deserialize<'de> for Timeframe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeframes_parse_and_print_round_trip() {
        for tf in Timeframe::ALL {
            assert_eq!(Timeframe::parse(tf.as_str()), Some(tf));
            assert_eq!(tf.as_str().parse::<Timeframe>(), Ok(tf));
        }
        assert_eq!(Timeframe::parse("1H"), Some(Timeframe::H1));
        assert_eq!(Timeframe::parse(" 4H "), Some(Timeframe::H4));
        assert_eq!(Timeframe::parse("1M"), None, "1M would read as a month");
        assert_eq!(Timeframe::parse("2h"), None);
        assert_eq!(
            "2h".parse::<Timeframe>().unwrap_err().to_string(),
            "unknown timeframe \"2h\"; accepted: 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w"
        );
        assert_eq!(
            "".parse::<Timeframe>().unwrap_err().to_string(),
            "unknown timeframe empty; accepted: 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w"
        );
    }

    #[test]
    fn serde_reads_every_accepted_spelling_and_writes_the_canonical_one() {
        let tf: Timeframe = serde_json::from_str("\"1H\"").unwrap();
        assert_eq!(tf, Timeframe::H1);
        assert_eq!(serde_json::to_string(&Timeframe::D1).unwrap(), "\"1d\"");
        let err = serde_json::from_str::<Timeframe>("\"2h\"").unwrap_err();
        assert!(err.to_string().contains("accepted: 1m"), "{err}");
    }

    #[test]
    fn durations_increase_with_the_timeframe() {
        assert_eq!(Timeframe::H4.duration_ms(), 14_400_000);
        assert!(
            Timeframe::ALL
                .windows(2)
                .all(|w| w[0].duration_ms() < w[1].duration_ms())
        );
    }

    #[test]
    fn bars_align_to_utc_multiples_and_weeks_to_mondays() {
        // 2024-01-03 (a Wednesday) 14:37:12 UTC
        let ts = 1_704_292_632_000;
        assert_eq!(Timeframe::M5.bar_start(ts), 1_704_292_500_000); // 14:35
        assert_eq!(Timeframe::H4.bar_start(ts), 1_704_283_200_000); // 12:00
        assert_eq!(Timeframe::D1.bar_start(ts), 1_704_240_000_000); // 2024-01-03 00:00
        assert_eq!(Timeframe::W1.bar_start(ts), 1_704_067_200_000); // Monday 2024-01-01
        assert_eq!(
            Timeframe::W1.bar_start(1_704_067_200_000),
            1_704_067_200_000
        );
        assert!(Timeframe::W1.is_aligned(1_704_067_200_000));
        assert!(!Timeframe::D1.is_aligned(ts));
        // before the epoch too
        assert_eq!(Timeframe::D1.bar_start(-1), -DAY_MS);
    }

    #[test]
    fn bar_start_saturates_instead_of_overflowing_at_the_ends_of_time() {
        for tf in Timeframe::ALL {
            assert_eq!(tf.bar_start(i64::MIN), i64::MIN, "{tf}");
            assert!(i64::MAX - tf.bar_start(i64::MAX) < tf.duration_ms(), "{tf}");
            assert!(tf.bar_start(i64::MIN + 1) == i64::MIN, "{tf}");
        }
    }

    #[test]
    fn coarser_timeframes_are_multiples() {
        assert!(Timeframe::H4.is_multiple_of(Timeframe::H1));
        assert!(Timeframe::W1.is_multiple_of(Timeframe::D1));
        assert!(!Timeframe::M1.is_multiple_of(Timeframe::M5));
    }
}
