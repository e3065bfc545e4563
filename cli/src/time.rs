//! Timestamps on the command line and in the output.
//!
//! Accepted: a date (`2024-01-02`, midnight UTC), an RFC 3339 time (`2024-01-02T14:30:00Z`,
//! any offset), a time without offset taken as UTC (`2024-01-02T14:30:00`, `2024-01-02 14:30`)
//! or epoch milliseconds (`1704153600000`). Printed: ISO 8601 UTC, `2024-01-02T14:30:00Z`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Parses one command-line timestamp into UTC epoch milliseconds.
pub fn parse_timestamp(raw: &str) -> Result<i64, String> {
    let text = raw.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .map_err(|_| format!("{raw:?} is too large for epoch milliseconds"));
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.and_utc().timestamp_millis());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(midnight) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc().timestamp_millis());
    }
    Err(format!(
        "{raw:?} is not a timestamp; use 2024-01-02, 2024-01-02T14:30:00Z or epoch milliseconds"
    ))
}

/// Parses one command-line duration (`90d`, `4h`, `30m`, `45s`, `500ms`, `2w`) into milliseconds.
pub fn parse_duration(raw: &str) -> Result<i64, String> {
    let text = raw.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => 0,
    };
    let bad = || {
        format!(
            "{raw:?} is not a duration; use a whole number and ms, s, m, h, d or w (e.g. 4h, 90d)"
        )
    };
    if number.is_empty() || unit_ms == 0 {
        return Err(bad());
    }
    number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .ok_or_else(bad)
}

/// `2024-01-02T14:30:00Z` (milliseconds only when there are some).
pub fn iso(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(time) => time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => ms.to_string(),
    }
}

/// [`iso`], or `-` for the 0 that the API uses for "none".
pub fn iso_or_dash(ms: i64) -> String {
    if ms == 0 { "-".to_owned() } else { iso(ms) }
}

/// [`iso`] as JSON, or `null` for the API's 0.
pub fn iso_json(ms: i64) -> serde_json::Value {
    if ms == 0 {
        serde_json::Value::Null
    } else {
        iso(ms).into()
    }
}

/// A duration for humans: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{} h {:02} min", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_2: i64 = 1_704_153_600_000;

    #[test]
    fn accepts_dates_rfc3339_naive_times_and_epoch_ms() {
        assert_eq!(parse_timestamp("2024-01-02"), Ok(JAN_2));
        assert_eq!(
            parse_timestamp("2024-01-02T14:30:00Z"),
            Ok(JAN_2 + 14 * 3_600_000 + 30 * 60_000)
        );
        assert_eq!(
            parse_timestamp("2024-01-02T15:30:00+01:00"),
            Ok(JAN_2 + 14 * 3_600_000 + 30 * 60_000)
        );
        assert_eq!(parse_timestamp("2024-01-02 01:00"), Ok(JAN_2 + 3_600_000));
        assert_eq!(parse_timestamp("1704153600000"), Ok(JAN_2));
    }

    #[test]
    fn rejects_anything_else_with_the_accepted_forms() {
        for bad in ["", "yesterday", "2024-13-01", "2024-01-02T25:00:00Z", "-5"] {
            let err = parse_timestamp(bad).unwrap_err();
            assert!(err.contains("2024-01-02T14:30:00Z"), "{bad}: {err}");
        }
        assert!(parse_timestamp("99999999999999999999").is_err());
    }

    #[test]
    fn durations_are_a_whole_number_and_a_unit() {
        assert_eq!(parse_duration("4h"), Ok(4 * 3_600_000));
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400_000));
        assert_eq!(parse_duration("30m"), Ok(30 * 60_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("0s"), Ok(0));
        for bad in ["", "4", "h", "1.5h", "-4h", "4 hours", "99999999999999999w"] {
            assert!(parse_duration(bad).unwrap_err().contains("90d"), "{bad}");
        }
    }

    #[test]
    fn prints_iso_utc() {
        assert_eq!(iso(JAN_2), "2024-01-02T00:00:00Z");
        assert_eq!(iso(JAN_2 + 1), "2024-01-02T00:00:00.001Z");
        assert_eq!(iso_or_dash(0), "-");
        assert_eq!(iso_json(0), serde_json::Value::Null);
        assert_eq!(human_duration(65_000), "1 min 05 s");
    }
}
