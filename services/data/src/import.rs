//! ImportCsv: options checked up front, then the file parsed, validated and committed in one
//! write on the blocking pool.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use chrono_tz::Tz;
use ktrdr_common::error::{ServiceError, enum_field};
use ktrdr_common::market::timeframe_field;
use ktrdr_common::status::now_ms;
use ktrdr_market::{Timeframe, normalize_symbol};
use ktrdr_proto::data::v1::{self as pb, IssueKind, IssueSeverity, ValidationIssue};
use tokio::sync::mpsc;

use crate::csv_io;
use crate::store::Store;
use crate::validate::{self, MAX_ISSUES_RETURNED};

/// A checked ImportCsv request.
#[derive(Debug)]
pub struct ImportPlan {
    pub symbol: String,
    pub timeframe: Timeframe,
    pub time_zone: Tz,
    pub repair: bool,
    pub dry_run: bool,
    pub replace: bool,
    pub source: String,
    /// A file already on the server, under the data directory.
    pub server_file: Option<PathBuf>,
}

impl ImportPlan {
    pub fn from_options(
        options: &pb::ImportCsvOptions,
        data_dir: &Path,
    ) -> Result<Self, ServiceError> {
        let named = if options.server_path.is_empty() {
            &options.file_name
        } else {
            &options.server_path
        };
        let inferred = ktrdr_market::dataset_of_file_name(named);
        let symbol = match (options.symbol.as_str(), &inferred) {
            ("", Some((symbol, _))) => symbol.clone(),
            ("", None) => {
                return Err(ServiceError::invalid_argument(
                    "options.symbol",
                    "set the symbol, or name the file SYMBOL_timeframe.csv (e.g. AAPL_1h.csv)",
                ));
            }
            (given, _) => given.to_owned(),
        };
        let symbol = normalize_symbol(&symbol)
            .map_err(|why| ServiceError::invalid_argument("options.symbol", why))?;
        let timeframe = match (options.timeframe.as_str(), &inferred) {
            ("", Some((_, tf))) => *tf,
            ("", None) => {
                return Err(ServiceError::invalid_argument(
                    "options.timeframe",
                    format!(
                        "set the timeframe ({}), or name the file SYMBOL_timeframe.csv",
                        Timeframe::ACCEPTED
                    ),
                ));
            }
            (given, _) => timeframe_field("options.timeframe", given)?,
        };
        let time_zone = match options.timezone.trim() {
            "" => chrono_tz::UTC,
            name => name.parse::<Tz>().map_err(|_| {
                ServiceError::invalid_argument(
                    "options.timezone",
                    format!("unknown time zone {name:?}; use an IANA name such as America/New_York or UTC"),
                )
            })?,
        };
        let server_file = if options.server_path.is_empty() {
            None
        } else {
            Some(server_file(data_dir, &options.server_path)?)
        };
        Ok(Self {
            symbol,
            timeframe,
            time_zone,
            repair: enum_field::<pb::ValidationMode>(
                "options.validation_mode",
                options.validation_mode,
            )? == pb::ValidationMode::Repair,
            dry_run: options.dry_run,
            replace: options.replace_existing,
            source: format!("csv:{named}"),
            server_file,
        })
    }

    /// Parses, validates and (unless a dry run) writes.
    pub fn run(
        self,
        input: impl Read,
        store: &Store,
    ) -> Result<pb::ImportCsvResponse, ServiceError> {
        let parsed = csv_io::parse(input, self.time_zone)
            .map_err(|e| ServiceError::invalid_argument("chunk", format!("cannot import: {e}")))?;
        let unreadable: Vec<ValidationIssue> = parsed
            .skipped
            .iter()
            .map(|(line, why)| ValidationIssue {
                kind: IssueKind::MissingValue as i32,
                severity: IssueSeverity::Error as i32,
                timestamp_ms: None,
                row: Some(*line as i64),
                field: String::new(),
                message: format!("line {line}: {why} (rule: every row needs a readable timestamp)"),
                repaired: self.repair,
                repair: if self.repair {
                    "skipped the row".to_owned()
                } else {
                    String::new()
                },
                value: None,
            })
            .collect();

        let (clean, mut report) =
            validate::validate(parsed.bars, self.timeframe, self.repair, now_ms());
        // Report file lines rather than positions among the parsed bars.
        for issue in &mut report.issues {
            if let Some(row) = issue.row {
                issue.row = parsed.lines.get(row as usize).map(|&line| line as i64);
            }
        }
        report.issues.splice(0..0, unreadable);
        if !self.repair && report.has_errors() {
            return Err(report.rejection_of(
                &format!("ImportCsv {} {}", self.symbol, self.timeframe),
                "lines",
            ));
        }

        let mut response = pb::ImportCsvResponse {
            symbol: self.symbol.clone(),
            timeframe: self.timeframe.to_string(),
            rows_read: parsed.rows_read as i64,
            rows_skipped: parsed.skipped.len() as i64 + report.bars_dropped,
            detected_columns: parsed.columns,
            timestamp_column: parsed.timestamp_column,
            timestamp_format: parsed
                .timestamp_format
                .map(|f| f.name().to_owned())
                .unwrap_or_default(),
            issues: report.returned_issues(MAX_ISSUES_RETURNED),
            issues_total: report.issues.len() as i64,
            dry_run: self.dry_run,
            ..Default::default()
        };
        let dataset = store.dataset(&self.symbol, self.timeframe)?;
        let outcome = if self.dry_run {
            dataset.preview(&clean, self.replace)?
        } else if self.replace {
            dataset.replace(&clean, &self.source)?
        } else {
            dataset.write(&clean, &self.source)?
        };
        response.bars_written = outcome.bars_written as i64;
        response.bars_replaced = outcome.bars_replaced as i64;
        response.coverage = Some(pb::CoverageSummary {
            first_ms: outcome.first_ms,
            last_ms: outcome.last_ms,
            bar_count: outcome.bar_count as i64,
        });
        Ok(response)
    }
}

/// `server_path` resolved under the data directory; absolute paths and `..` are refused so a
/// client can only import files an operator put there (e.g. the original `data/AAPL_1h.csv`).
fn server_file(data_dir: &Path, raw: &str) -> Result<PathBuf, ServiceError> {
    let path = Path::new(raw);
    let safe = path.components().all(|c| matches!(c, Component::Normal(_)));
    if !safe {
        return Err(ServiceError::invalid_argument(
            "options.server_path",
            format!("{raw:?} must be a relative path inside the data directory, without '..'"),
        ));
    }
    Ok(data_dir.join(path))
}

/// A blocking `Read` over the chunks of an upload.
pub struct ChunkReader {
    pub rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    pub chunk: Vec<u8>,
    pub pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(symbol: &str, timeframe: &str, file_name: &str) -> pb::ImportCsvOptions {
        pb::ImportCsvOptions {
            symbol: symbol.into(),
            timeframe: timeframe.into(),
            file_name: file_name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_dataset_comes_from_options_or_the_file_name() {
        let root = Path::new("/data");
        let plan = ImportPlan::from_options(&options("", "", "AAPL_1h.csv"), root).unwrap();
        assert_eq!(
            (plan.symbol.as_str(), plan.timeframe),
            ("AAPL", Timeframe::H1)
        );
        let plan =
            ImportPlan::from_options(&options("eur.usd", "1d", "whatever.csv"), root).unwrap();
        assert_eq!(
            (plan.symbol.as_str(), plan.timeframe),
            ("EURUSD", Timeframe::D1)
        );
        let err = ImportPlan::from_options(&options("", "", "prices.csv"), root).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid options.symbol"),
            "{err}"
        );
    }

    #[test]
    fn server_paths_stay_inside_the_data_directory() {
        let root = Path::new("/data");
        let mut o = options("", "", "");
        o.server_path = "AAPL_1h.csv".into();
        assert_eq!(
            ImportPlan::from_options(&o, root).unwrap().server_file,
            Some(PathBuf::from("/data/AAPL_1h.csv"))
        );
        for bad in ["/etc/passwd", "../AAPL_1h.csv", "x/../../AAPL_1h.csv"] {
            o.server_path = bad.into();
            assert!(ImportPlan::from_options(&o, root).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_are_checked() {
        let mut o = options("AAPL", "1h", "");
        o.timezone = "Mars/Olympus".into();
        let err = ImportPlan::from_options(&o, Path::new("/d")).unwrap_err();
        assert!(err.to_string().contains("unknown time zone"), "{err}");
        o.timezone = "America/New_York".into();
        assert_eq!(
            ImportPlan::from_options(&o, Path::new("/d"))
                .unwrap()
                .time_zone,
            chrono_tz::America::New_York
        );
    }
}
