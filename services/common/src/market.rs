//! The market vocabulary ([`ktrdr_market`]) read from request fields: each helper turns a bad
//! value into `INVALID_ARGUMENT` naming the field, with the accepted values in the message.

use ktrdr_market::{Timeframe, normalize_symbol};

use crate::error::ServiceError;

/// [`Timeframe::parse`] for a request field: `INVALID_ARGUMENT` naming the field otherwise.
pub fn timeframe_field(field: &str, raw: &str) -> Result<Timeframe, ServiceError> {
    raw.parse().map_err(|e: ktrdr_market::UnknownTimeframe| {
        ServiceError::invalid_argument(field, e.to_string())
    })
}

/// [`normalize_symbol`] for a request field: `INVALID_ARGUMENT` naming the field otherwise.
pub fn symbol_field(field: &str, raw: &str) -> Result<String, ServiceError> {
    normalize_symbol(raw).map_err(|why| ServiceError::invalid_argument(field, why))
}

/// The earliest timestamp a request may name: 1900-01-01 00:00 UTC.
pub const EARLIEST_MS: i64 = -2_208_988_800_000;
/// The latest timestamp a request may name: 2200-01-01 00:00 UTC.
pub const LATEST_MS: i64 = 7_258_118_400_000;

/// A request's half-open `[start_ms, end_ms)` with open sides (0) resolved to `i64::MIN` /
/// `i64::MAX`; `INVALID_ARGUMENT` naming the field if a side lies outside 1900–2200 (so no
/// later time arithmetic can overflow) or the end is not after the start.
pub fn time_range(
    field: &str,
    range: Option<&ktrdr_proto::common::v1::TimeRange>,
) -> Result<(i64, i64), ServiceError> {
    let (start, end) = range.map_or((0, 0), |r| (r.start_ms, r.end_ms));
    for (side, value) in [("start_ms", start), ("end_ms", end)] {
        if value != 0 && !(EARLIEST_MS..=LATEST_MS).contains(&value) {
            return Err(ServiceError::invalid_argument(
                format!("{field}.{side}"),
                format!(
                    "{value} is outside 1900-01-01..2200-01-01 (UTC epoch milliseconds; 0 = open-ended)"
                ),
            ));
        }
    }
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
    fn a_bad_timeframe_field_names_the_field_and_the_accepted_spellings() {
        assert_eq!(timeframe_field("timeframe", "1H").unwrap(), Timeframe::H1);
        let err = timeframe_field("timeframe", "2h").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid timeframe: unknown timeframe \"2h\"; accepted: 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w"
        );
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
        let extreme = TimeRange {
            start_ms: i64::MIN,
            end_ms: 10,
        };
        let far = time_range("range", Some(&extreme)).unwrap_err();
        assert_eq!(
            far.to_string(),
            format!(
                "invalid range.start_ms: {} is outside 1900-01-01..2200-01-01 (UTC epoch milliseconds; 0 = open-ended)",
                i64::MIN
            )
        );
        assert_eq!(
            err.to_string(),
            "invalid range.end_ms: end 5 must be after start 10 (UTC epoch milliseconds; 0 = open-ended)"
        );
    }
}
