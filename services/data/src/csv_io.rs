//! CSV import and export in the original ktrdr format and its variants.
//!
//! The original wrote `data/SYMBOL_tf.csv` with pandas: the index first (headers seen: `date`,
//! `timestamp`, or empty), then `open,high,low,close,volume`, timestamps as
//! `2025-05-22T08:00:00Z` or, in older files, `2025-05-22 08:00:00+00:00`. The importer accepts
//! any header case and order, ISO 8601 with or without offset, dates alone, `yyyymmdd[ hh:mm:ss]`
//! and epoch seconds or milliseconds; naive times are read in the requested time zone (UTC by
//! default). Export writes what the original wrote.

use std::io::Read;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use ktrdr_market::Timeframe;

use ktrdr_market::Bars;

/// A way timestamps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampFormat {
    Rfc3339,
    OffsetWithSpace,
    Naive,
    DateOnly,
    Compact,
    EpochSeconds,
    EpochMillis,
}

impl TimestampFormat {
    const ALL: [TimestampFormat; 7] = [
        Self::Rfc3339,
        Self::OffsetWithSpace,
        Self::Naive,
        Self::DateOnly,
        Self::Compact,
        Self::EpochMillis,
        Self::EpochSeconds,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Rfc3339 => "iso8601 with offset",
            Self::OffsetWithSpace => "yyyy-mm-dd hh:mm:ss+hh:mm",
            Self::Naive => "iso8601 without offset (read in the import time zone)",
            Self::DateOnly => "yyyy-mm-dd (bar date, 00:00 UTC)",
            Self::Compact => "yyyymmdd[ hh:mm:ss]",
            Self::EpochSeconds => "epoch seconds",
            Self::EpochMillis => "epoch milliseconds",
        }
    }

    fn parse(self, raw: &str, tz: Tz) -> Option<i64> {
        let raw = raw.trim();
        match self {
            Self::Rfc3339 => DateTime::parse_from_rfc3339(raw)
                .ok()
                .map(|t| t.timestamp_millis()),
            Self::OffsetWithSpace => [
                "%Y-%m-%d %H:%M:%S%:z",
                "%Y-%m-%d %H:%M:%S%z",
                "%Y-%m-%d %H:%M%:z",
            ]
            .iter()
            .find_map(|f| DateTime::parse_from_str(raw, f).ok())
            .map(|t| t.timestamp_millis()),
            Self::Naive => [
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
            .and_then(|t| local_ms(tz, t)),
            Self::DateOnly => NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_millis()),
            Self::Compact => {
                if raw.len() == 8 {
                    NaiveDate::parse_from_str(raw, "%Y%m%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc().timestamp_millis())
                } else {
                    ["%Y%m%d %H:%M:%S", "%Y%m%d  %H:%M:%S", "%Y%m%d-%H:%M:%S"]
                        .iter()
                        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
                        .and_then(|t| local_ms(tz, t))
                }
            }
            Self::EpochSeconds => raw
                .parse::<i64>()
                .ok()
                .filter(|s| s.abs() < 100_000_000_000)
                .and_then(|s| s.checked_mul(1000)),
            Self::EpochMillis => raw
                .parse::<i64>()
                .ok()
                .filter(|ms| ms.abs() >= 100_000_000_000),
        }
    }

    /// The first format that reads `raw`.
    pub fn detect(raw: &str, tz: Tz) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.parse(raw, tz).is_some())
    }
}

fn local_ms(tz: Tz, t: NaiveDateTime) -> Option<i64> {
    tz.from_local_datetime(&t)
        .earliest()
        .map(|t| t.timestamp_millis())
}

/// What an import read.
#[derive(Debug, Default)]
pub struct Parsed {
    pub bars: Bars,
    /// The file line (1-based) each bar came from.
    pub lines: Vec<u64>,
    pub rows_read: u64,
    /// (1-based line number, why) for rows that could not be read at all.
    pub skipped: Vec<(u64, String)>,
    pub columns: Vec<String>,
    pub timestamp_column: String,
    pub timestamp_format: Option<TimestampFormat>,
}

/// Why a file cannot be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("the file is empty")]
    Empty,
    #[error("no {0} column: expected a header with open, high, low, close and volume (any case)")]
    MissingColumn(&'static str),
    #[error("cannot read CSV: {0}")]
    Csv(#[from] csv::Error),
}

fn is_timestamp_header(name: &str) -> bool {
    matches!(
        name,
        "" | "date"
            | "datetime"
            | "timestamp"
            | "time"
            | "index"
            | "unnamed: 0"
            | "date_time"
            | "ts"
    )
}

fn number(raw: &str) -> f64 {
    match raw.trim() {
        "" => f64::NAN,
        other => other.parse().unwrap_or(f64::NAN),
    }
}

/// Reads a whole CSV from `input` (which may stream it); rows are kept in file order.
pub fn parse(input: impl Read, tz: Tz) -> Result<Parsed, CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut records = reader.records();
    let first = records.next().ok_or(CsvError::Empty)??;
    let mut parsed = Parsed::default();

    // A header row, unless the first field is already a timestamp (headerless files).
    let (ts_col, cols, first_data) =
        if TimestampFormat::detect(first.get(0).unwrap_or(""), tz).is_some() {
            parsed.columns = ["timestamp", "open", "high", "low", "close", "volume"]
                .map(String::from)
                .to_vec();
            (0, [1, 2, 3, 4, 5], Some(first))
        } else {
            let names: Vec<String> = first
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect();
            let find = |wanted: &'static str| -> Result<usize, CsvError> {
                names
                    .iter()
                    .position(|n| n == wanted)
                    .ok_or(CsvError::MissingColumn(wanted))
            };
            let cols = [
                find("open")?,
                find("high")?,
                find("low")?,
                find("close")?,
                find("volume")?,
            ];
            let ts_col = names
                .iter()
                .position(|n| is_timestamp_header(n))
                .unwrap_or(0);
            parsed.columns = first.iter().map(str::to_owned).collect();
            parsed.timestamp_column = first.get(ts_col).unwrap_or("").to_owned();
            (ts_col, cols, None)
        };
    if parsed.timestamp_column.is_empty() {
        parsed.timestamp_column = format!("column {}", ts_col + 1);
    }

    let mut line = if first_data.is_some() { 0 } else { 1 };
    let handle = |record: csv::StringRecord, line: u64, parsed: &mut Parsed| {
        parsed.rows_read += 1;
        let raw_ts = record.get(ts_col).unwrap_or("");
        if parsed.timestamp_format.is_none() {
            parsed.timestamp_format = TimestampFormat::detect(raw_ts, tz);
        }
        let ts = parsed
            .timestamp_format
            .and_then(|f| f.parse(raw_ts, tz))
            .or_else(|| TimestampFormat::detect(raw_ts, tz).and_then(|f| f.parse(raw_ts, tz)));
        let Some(ts) = ts else {
            parsed
                .skipped
                .push((line, format!("cannot read timestamp {raw_ts:?}")));
            return;
        };
        let field = |i: usize| number(record.get(i).unwrap_or(""));
        parsed.lines.push(line);
        parsed.bars.push(
            ts,
            field(cols[0]),
            field(cols[1]),
            field(cols[2]),
            field(cols[3]),
            field(cols[4]),
        );
    };
    if let Some(record) = first_data {
        line += 1;
        handle(record, line, &mut parsed);
    }
    for record in records {
        line += 1;
        match record {
            Ok(record) if record.iter().all(str::is_empty) => {}
            Ok(record) => handle(record, line, &mut parsed),
            Err(e) => {
                parsed.rows_read += 1;
                parsed.skipped.push((line, e.to_string()));
            }
        }
    }
    Ok(parsed)
}

/// Symbol and timeframe from an original file name such as `AAPL_1h.csv` or `EURUSD_1d.csv`.
pub fn infer_from_file_name(file_name: &str) -> Option<(String, Timeframe)> {
    let stem = std::path::Path::new(file_name).file_stem()?.to_str()?;
    let (symbol, timeframe) = stem.rsplit_once('_')?;
    Some((symbol.to_owned(), Timeframe::parse(timeframe)?))
}

/// Shortest text that reads back as exactly `value`.
fn format_number(value: f64) -> String {
    let text = value.to_string();
    if text.contains(['.', 'e', 'N', 'i']) {
        text
    } else {
        format!("{text}.0")
    }
}

/// Writes `bars` as CSV rows (no header) in the original's format.
pub fn write_rows(bars: &Bars, out: &mut Vec<u8>) {
    for i in 0..bars.len() {
        let ts = DateTime::from_timestamp_millis(bars.timestamp_ms[i])
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let row = format!(
            "{ts},{},{},{},{},{}\n",
            format_number(bars.open[i]),
            format_number(bars.high[i]),
            format_number(bars.low[i]),
            format_number(bars.close[i]),
            format_number(bars.volume[i])
        );
        out.extend_from_slice(row.as_bytes());
    }
}

pub const HEADER: &str = "timestamp,open,high,low,close,volume\n";

#[cfg(test)]
mod tests {
    use super::*;

    const UTC: Tz = chrono_tz::UTC;

    #[test]
    fn reads_the_original_formats_and_headers() {
        let files = [
            "timestamp,open,high,low,close,volume\n2025-05-22T08:00:00Z,1,2,0.5,1.5,100\n2025-05-22T09:00:00Z,1.5,2.5,1,2,200.0\n",
            "date,Open,High,Low,Close,Volume\n2025-05-22 08:00:00+00:00,1,2,0.5,1.5,100\n2025-05-22 09:00:00+00:00,1.5,2.5,1,2,200\n",
            ",open,high,low,close,volume\n2025-05-22 04:00:00-04:00,1,2,0.5,1.5,100\n2025-05-22 05:00:00-04:00,1.5,2.5,1,2,200\n",
            "Volume,Close,Low,High,Open,Date\n100,1.5,0.5,2,1,1747900800\n200,2,1,2.5,1.5,1747904400\n",
        ];
        for file in files {
            let parsed = parse(file.as_bytes(), UTC).unwrap();
            assert_eq!(
                parsed.bars.timestamp_ms,
                [1_747_900_800_000, 1_747_904_400_000],
                "{file}"
            );
            assert_eq!(parsed.bars.open, [1.0, 1.5]);
            assert_eq!(parsed.bars.volume, [100.0, 200.0]);
            assert!(parsed.skipped.is_empty());
        }
    }

    #[test]
    fn naive_times_use_the_import_time_zone_and_dates_are_utc_midnight() {
        let naive = "datetime,open,high,low,close,volume\n2024-01-02 09:30:00,1,2,0.5,1.5,100\n";
        let ny = parse(naive.as_bytes(), chrono_tz::America::New_York).unwrap();
        assert_eq!(ny.bars.timestamp_ms, [1_704_205_800_000]); // 14:30 UTC
        let daily = "date,open,high,low,close,volume\n2023-01-03,1,2,0.5,1.5,100\n20230104,1,2,0.5,1.5,100\n";
        let parsed = parse(daily.as_bytes(), chrono_tz::America::New_York).unwrap();
        assert_eq!(
            parsed.bars.timestamp_ms,
            [1_672_704_000_000, 1_672_790_400_000]
        );
    }

    #[test]
    fn headerless_files_and_bad_rows() {
        let file =
            "1704067200000,1,2,0.5,1.5,10\nnot-a-date,1,2,3,4,5\n1704070800000,1,2,0.5,,10\n";
        let parsed = parse(file.as_bytes(), UTC).unwrap();
        assert_eq!(parsed.rows_read, 3);
        assert_eq!(parsed.bars.len(), 2);
        assert_eq!(
            parsed.skipped,
            [(2, "cannot read timestamp \"not-a-date\"".to_owned())]
        );
        assert!(
            parsed.bars.close[1].is_nan(),
            "an empty price is a missing value for validation"
        );
        assert_eq!(parsed.timestamp_format, Some(TimestampFormat::EpochMillis));
    }

    #[test]
    fn missing_columns_are_named() {
        let err = parse(
            "date,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n".as_bytes(),
            UTC,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no volume column: expected a header with open, high, low, close and volume (any case)"
        );
    }

    #[test]
    fn export_round_trips_through_import() {
        let mut bars = Bars::default();
        bars.push(1_704_067_200_000, 101.25, 102.0, 100.0, 101.1, 12_345.0);
        bars.push(1_704_070_800_000, 0.1 + 0.2, 1.0, 0.1, 0.5, -1.0);
        let mut out = HEADER.as_bytes().to_vec();
        write_rows(&bars, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,101.25,102.0,100.0,101.1,12345.0\n"), "{text}");
        assert_eq!(parse(text.as_bytes(), UTC).unwrap().bars, bars);
    }

    #[test]
    fn file_names_name_the_dataset() {
        assert_eq!(
            infer_from_file_name("data/AAPL_1h.csv"),
            Some(("AAPL".into(), Timeframe::H1))
        );
        assert_eq!(
            infer_from_file_name("EURUSD_1d.csv"),
            Some(("EURUSD".into(), Timeframe::D1))
        );
        assert_eq!(
            infer_from_file_name("BRK_B_5m.csv"),
            Some(("BRK_B".into(), Timeframe::M5))
        );
        assert_eq!(infer_from_file_name("prices.csv"), None);
    }
}
