//! Market vocabulary every service shares: timeframes, symbol normalisation, asset classes.

use std::fmt;

use crate::error::ServiceError;

/// A bar size ktrdr stores and trains on.
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

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// 1970-01-01 was a Thursday; weekly bars start on Mondays (00:00 UTC), 4 days later.
const FIRST_MONDAY_MS: i64 = 4 * DAY_MS;

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

    /// The accepted spellings, for error messages.
    pub const ACCEPTED: &str = "1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w";

    /// Parses `1m 5m 15m 30m 1h 4h 1d 1w` (hours, days and weeks also in upper case; `1M` is
    /// not accepted because it reads as a month).
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

    /// [`Timeframe::parse`] for a request field: `INVALID_ARGUMENT` naming the field otherwise.
    pub fn parse_field(field: &str, raw: &str) -> Result<Self, ServiceError> {
        Self::parse(raw).ok_or_else(|| {
            let shown = if raw.is_empty() {
                "empty".to_owned()
            } else {
                format!("{raw:?}")
            };
            ServiceError::invalid_argument(
                field,
                format!("unknown timeframe {shown}; accepted: {}", Self::ACCEPTED),
            )
        })
    }

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
    /// midnight multiples; weekly bars start on Monday 00:00 UTC.
    pub fn bar_start(self, ts_ms: i64) -> i64 {
        let offset = if self == Self::W1 { FIRST_MONDAY_MS } else { 0 };
        ts_ms - (ts_ms - offset).rem_euclid(self.duration_ms())
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

/// ISO codes of the currencies IB trades as forex pairs.
const CURRENCIES: &[&str] = &[
    "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "HKD", "SGD",
    "MXN", "ZAR", "CNH", "PLN", "CZK", "HUF", "TRY", "ILS", "KRW",
];

/// Futures roots ktrdr recognises without a contract lookup.
const FUTURE_ROOTS: &[&str] = &[
    "ES", "MES", "NQ", "MNQ", "YM", "RTY", "CL", "NG", "GC", "SI", "HG", "ZB", "ZN", "ZF", "ZT",
    "ZC", "ZS", "ZW", "6E", "6J", "6B", "VX",
];

/// The broad kind of instrument a symbol names; decides its trading calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssetClass {
    Stock,
    Forex,
    Future,
}

impl AssetClass {
    /// Detects the class from a normalised symbol: six letters made of two known currencies
    /// are forex, known futures roots are futures, anything else is a stock.
    pub fn of(symbol: &str) -> Self {
        if is_currency_pair(symbol) {
            Self::Forex
        } else if FUTURE_ROOTS.contains(&symbol) {
            Self::Future
        } else {
            Self::Stock
        }
    }
}

fn is_currency_pair(symbol: &str) -> bool {
    symbol.len() == 6
        && symbol.is_char_boundary(3)
        && CURRENCIES.contains(&&symbol[..3])
        && CURRENCIES.contains(&&symbol[3..])
        && symbol[..3] != symbol[3..]
}

/// Normalises a symbol the way every ktrdr service does: trimmed, upper case, and forex pairs
/// written without separator (`eur.usd`, `EUR/USD`, `EUR-USD` → `EURUSD`). Symbols become
/// directory names in the store, so only `A–Z 0–9 . _ -` are allowed, starting with a letter or
/// digit, at most 32 characters (`BRK.B` stays `BRK.B`).
pub fn normalize_symbol(raw: &str) -> Result<String, String> {
    let upper = raw.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let compact: String = upper
        .chars()
        .filter(|c| !matches!(c, '.' | '/' | '-' | ' '))
        .collect();
    if compact.len() == 6 && is_currency_pair(&compact) && upper.len() <= 7 {
        return Ok(compact);
    }
    if upper.len() > 32 {
        return Err(format!("{raw:?} is longer than 32 characters"));
    }
    if let Some(bad) = upper
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{raw:?} contains {bad:?}; allowed are letters, digits, '.', '_' and '-' (forex pairs as EURUSD or EUR.USD)"
        ));
    }
    if !upper.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("{raw:?} must start with a letter or digit"));
    }
    Ok(upper)
}

/// [`normalize_symbol`] for a request field: `INVALID_ARGUMENT` naming the field otherwise.
pub fn symbol_field(field: &str, raw: &str) -> Result<String, ServiceError> {
    normalize_symbol(raw).map_err(|why| ServiceError::invalid_argument(field, why))
}

/// A request's half-open `[start_ms, end_ms)` with open sides resolved to `i64::MIN` /
/// `i64::MAX`; `INVALID_ARGUMENT` naming `field` if the end is not after the start.
pub fn time_range(
    field: &str,
    range: Option<&ktrdr_proto::common::v1::TimeRange>,
) -> Result<(i64, i64), ServiceError> {
    let (start, end) = range.map_or((0, 0), |r| (r.start_ms, r.end_ms));
    let start_ms = if start == 0 { i64::MIN } else { start };
    let end_ms = if end == 0 { i64::MAX } else { end };
    if end_ms <= start_ms {
        return Err(ServiceError::invalid_argument(
            format!("{field}.end_ms"),
            format!(
                "end {end} must be after start {start} (UTC epoch milliseconds; 0 = open-ended)"
            ),
        ));
    }
    Ok((start_ms, end_ms))
}

/// UTC epoch milliseconds as ISO 8601 (`2024-06-30T00:00:00Z`), for messages; the number
/// itself when it is out of chrono's range.
pub fn iso_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeframes_parse_and_print_round_trip() {
        for tf in Timeframe::ALL {
            assert_eq!(Timeframe::parse(tf.as_str()), Some(tf));
        }
        assert_eq!(Timeframe::parse("1H"), Some(Timeframe::H1));
        assert_eq!(Timeframe::parse("1M"), None, "1M would read as a month");
        assert_eq!(Timeframe::parse("2h"), None);
        let err = Timeframe::parse_field("timeframe", "2h").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid timeframe: unknown timeframe \"2h\"; accepted: 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w"
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
        assert!(Timeframe::W1.is_aligned(1_704_067_200_000));
        assert!(!Timeframe::D1.is_aligned(ts));
        // before the epoch too
        assert_eq!(Timeframe::D1.bar_start(-1), -DAY_MS);
    }

    #[test]
    fn coarser_timeframes_are_multiples() {
        assert!(Timeframe::H4.is_multiple_of(Timeframe::H1));
        assert!(Timeframe::W1.is_multiple_of(Timeframe::D1));
        assert!(!Timeframe::M1.is_multiple_of(Timeframe::M5));
    }

    #[test]
    fn symbols_normalise_like_ib_host() {
        for (raw, want) in [
            ("aapl", "AAPL"),
            (" EUR.USD ", "EURUSD"),
            ("eur/usd", "EURUSD"),
            ("EUR-USD", "EURUSD"),
            ("BRK.B", "BRK.B"),
            ("ES", "ES"),
        ] {
            assert_eq!(normalize_symbol(raw).as_deref(), Ok(want), "{raw}");
        }
        for bad in [
            "",
            "  ",
            "../etc",
            "A/B/C",
            "AAPL US",
            "_X",
            &"X".repeat(33),
        ] {
            assert!(normalize_symbol(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn time_ranges_resolve_open_sides_and_reject_reversed_ones() {
        use ktrdr_proto::common::v1::TimeRange;
        assert_eq!(time_range("range", None).unwrap(), (i64::MIN, i64::MAX));
        let r = TimeRange {
            start_ms: 10,
            end_ms: 0,
        };
        assert_eq!(time_range("range", Some(&r)).unwrap(), (10, i64::MAX));
        let bad = TimeRange {
            start_ms: 10,
            end_ms: 5,
        };
        let err = time_range("range", Some(&bad)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid range.end_ms: end 5 must be after start 10 (UTC epoch milliseconds; 0 = open-ended)"
        );
    }

    #[test]
    fn asset_classes() {
        assert_eq!(AssetClass::of("EURUSD"), AssetClass::Forex);
        assert_eq!(AssetClass::of("USDJPY"), AssetClass::Forex);
        assert_eq!(AssetClass::of("ES"), AssetClass::Future);
        assert_eq!(AssetClass::of("AAPL"), AssetClass::Stock);
        assert_eq!(AssetClass::of("USDUSD"), AssetClass::Stock);
    }
}
