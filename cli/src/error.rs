//! The one error type of the CLI, the exit codes it maps to, and the names of the CLI's flags
//! for the request fields the servers talk about.
//!
//! Servers name proto fields (`options.timeframe`, `validation_mode=VALIDATION_MODE_REPAIR`);
//! the user typed flags. Each command declares which flag fills which field ([`Flags`], all
//! tables below), and every server error it prints names the flag instead of the field.

use ktrdr_common::metrics::code_name;
use tonic::Code;
use tonic_types::StatusExt;

/// Exit codes of `ktrdr`, the same for every command (scripts branch on them).
///
/// `health` keeps the codes it always had: 1 when the health check itself answers with an error
/// (e.g. an unknown service name), 4 when the server answers but is not `SERVING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything worked.
    Success = 0,
    /// The command ran but what it checked or ran failed: a strategy file is invalid, a load job
    /// or a training session ended FAILED or CANCELLED, `health`'s check answered an error.
    Failed = 1,
    /// Bad command line or input the CLI rejects before calling anyone (clap uses 2 too).
    Usage = 2,
    /// The gateway cannot be reached.
    Connection = 3,
    /// The server answered with an error status (`health`: reachable but not SERVING).
    Server = 4,
    /// Interrupted by Ctrl+C (128 + SIGINT, as shells report it).
    Interrupted = 130,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// Everything a command can fail with. Each message says what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or an input file is unusable.
    #[error("{0}")]
    Usage(String),
    /// Nothing answers at the URL.
    #[error(
        "cannot reach the gateway at {url} — start it with `make run` or set KTRDR_GATEWAY_URL (or pass --url) ({detail})"
    )]
    Connection { url: String, detail: String },
    /// The server answered with an error status; `flags` names the command's flags for the
    /// request fields the status mentions.
    #[error("{}", describe_status(status, flags))]
    Server { status: tonic::Status, flags: Flags },
    /// The work ran and failed (a job, a session, a validation).
    #[error("{0}")]
    Failed(String),
    /// The user pressed Ctrl+C; what had to be cancelled has been.
    #[error("{0}")]
    Interrupted(String),
    /// Writing the output failed. A closed pipe (`ktrdr … | head`) is not a failure: see
    /// [`CliError::is_closed_pipe`].
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Which CLI flag fills which request field: `(field path or server phrase, flag)`. A field
/// path also matches the paths below it (`range` covers `range.end_ms`), longest entry first.
pub type Flags = &'static [(&'static str, &'static str)];

/// No flags (commands whose requests carry nothing the user typed).
pub const NO_FLAGS: Flags = &[];

/// `data show / range / gaps / list` (ReadBars, GetCoverage, ListDatasets).
pub const DATASET_FLAGS: Flags = &[
    ("symbol", "SYMBOL"),
    ("timeframe", "-t/--timeframe"),
    ("range.start_ms", "--start"),
    ("range.end_ms", "--end"),
    ("range", "--start/--end"),
    ("limit", "-n/--limit"),
    ("from_end", "--tail"),
    ("max_gaps", "--max"),
    ("unexpected_only", "--unexpected"),
];

/// `data load` (LoadData, LoadBatch).
pub const LOAD_FLAGS: Flags = &[
    ("symbol", "SYMBOLS"),
    ("symbols", "SYMBOLS"),
    ("timeframe", "-t/--timeframe"),
    ("timeframes", "-t/--timeframe"),
    ("range.start_ms", "--start"),
    ("range.end_ms", "--end"),
    ("range", "--start/--end"),
    ("mode", "-m/--mode"),
    ("fill_gaps", "--fill-gaps"),
    ("use_rth", "--rth"),
    ("what_to_show", "--what-to-show"),
];

/// `data import` (ImportCsv). The server's advice for a rejected file names the validation
/// mode; the CLI's switch for it is `--repair`.
pub const IMPORT_FLAGS: Flags = &[
    ("validation_mode=VALIDATION_MODE_REPAIR", "--repair"),
    ("options.validation_mode", "--repair"),
    ("options.symbol", "--symbol"),
    ("options.timeframe", "-t/--timeframe"),
    ("options.timezone", "--timezone"),
    ("options.dry_run", "--dry-run"),
    ("options.replace_existing", "--replace"),
    ("options.file_name", "FILE"),
];

/// `train` (TrainStrategy).
pub const TRAIN_FLAGS: Flags = &[
    ("strategy_yaml", "STRATEGY"),
    ("strategy_name", "STRATEGY"),
    ("strategy", "STRATEGY"),
    ("symbols", "--symbols"),
    ("timeframes", "--timeframes"),
    ("range.start_ms", "--start"),
    ("range.end_ms", "--end"),
    ("range", "--start/--end"),
    ("epochs", "--epochs"),
    ("seed", "--seed"),
    ("batch_size", "--batch-size"),
    ("device", "--device"),
    ("data_mode", "--data-mode"),
    ("sweep", "--sweep"),
    ("sweep.seeds", "--seeds"),
    ("sweep.parallel", "--parallel"),
];

/// `trainings …` and `models list / show` (session and model ids, filters).
pub const LISTING_FLAGS: Flags = &[
    ("session_id", "SESSION_ID"),
    ("job_id", "JOB_ID"),
    ("model_id", "MODEL_ID"),
    ("strategy", "--strategy"),
    ("symbol", "--symbol"),
    ("timeframe", "-t/--timeframe"),
    ("state", "--state"),
];

/// `backtest` (BacktestStrategy) and `backtest list / show / cancel`.
pub const BACKTEST_FLAGS: Flags = &[
    ("model_id", "MODEL"),
    ("strategy_name", "MODEL"),
    ("strategy_yaml", "MODEL"),
    ("model", "MODEL"),
    ("symbols", "--symbols"),
    ("symbol", "--symbol"),
    ("range.start_ms", "--start"),
    ("range.end_ms", "--end"),
    ("range", "--start/--end"),
    ("settings.initial_capital", "--capital"),
    ("settings.commission_rate", "--commission"),
    ("settings.fixed_fee", "--fixed-fee"),
    ("settings.slippage_rate", "--slippage"),
    ("settings.spread_rate", "--spread"),
    ("settings.fraction_of_equity", "--size-fraction"),
    ("settings.fixed_units", "--units"),
    ("settings.fixed_notional", "--notional"),
    ("settings.lot_step", "--lot-step"),
    ("settings.fractional", "--fractional"),
    ("settings.allow_shorts", "--allow-shorts"),
    ("settings.confidence_threshold", "--confidence"),
    ("settings.min_bars_between_trades", "--min-bars-between"),
    ("settings.min_time_between_trades_ms", "--min-time-between"),
    ("settings.reverse_on_opposite", "--reverse"),
    ("settings.fill", "--same-close-fill"),
    ("settings.trading_days", "--trading-days"),
    ("settings.periods_per_year", "--periods-per-year"),
    ("allow_training_overlap", "--allow-training-overlap"),
    ("data_mode", "--local"),
    ("walk_forward.train_ms", "--train-window"),
    ("walk_forward.test_ms", "--test-window"),
    ("walk_forward.step_ms", "--step"),
    ("walk_forward.anchored", "--anchored"),
    ("walk_forward.epochs", "--epochs"),
    ("walk_forward.seed", "--seed"),
    ("walk_forward", "--train-window/--test-window"),
    ("backtest_id", "BACKTEST_ID"),
    ("job_id", "JOB_ID"),
];

/// `models evaluate / predict`.
pub const MODEL_DATA_FLAGS: Flags = &[
    ("model_id", "MODEL_ID"),
    ("symbols", "--symbols"),
    ("symbol", "--symbol"),
    ("dataset.symbol", "--symbol"),
    ("dataset.timeframe", "-t/--timeframe"),
    ("dataset.range.start_ms", "--start"),
    ("dataset.range.end_ms", "--end"),
    ("dataset.range", "--start/--end"),
    ("timeframe", "-t/--timeframe"),
    ("range.start_ms", "--start"),
    ("range.end_ms", "--end"),
    ("range", "--start/--end"),
];

/// The flag for request field `field` (or a field below one in `flags`), if the command has one.
/// `symbols[2]` is the symbol list's flag; `lines[17].high` (a CSV line) has none.
pub fn flag_for(flags: Flags, field: &str) -> Option<&'static str> {
    let base = field.split('[').next().unwrap_or(field);
    flags
        .iter()
        .filter(|(path, _)| {
            base == *path
                || base
                    .strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
        .max_by_key(|(path, _)| path.len())
        .map(|&(_, flag)| flag)
}

/// `text` with every proto field path the command has a flag for replaced by that flag. Words
/// are replaced only where they are unmistakably field names: dotted or underscored paths and
/// `name=VALUE` phrases anywhere, plain words (`symbol`) only right after `invalid `, the form
/// of every single-field `INVALID_ARGUMENT` message.
pub fn name_flags(text: &str, flags: Flags) -> String {
    if flags.is_empty() {
        return text.to_owned();
    }
    let is_word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '=' | '[' | ']');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_word) {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after.find(|c: char| !is_word(c)).unwrap_or(after.len());
        let word = &after[..end];
        // A sentence's full stop is not part of the path.
        let path = word.trim_end_matches('.');
        let looks_like_field = path.contains(['.', '_', '=', '[']);
        let after_invalid = out.ends_with("invalid ");
        match flag_for(flags, path) {
            Some(flag) if looks_like_field || after_invalid => {
                out.push_str(flag);
                out.push_str(&word[path.len()..]);
            }
            _ => out.push_str(word),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

impl CliError {
    /// Classifies a status from a call to the gateway at `url`: transport failures (no
    /// server, refused, timed out connecting) become [`CliError::Connection`], everything the
    /// server itself answered becomes [`CliError::Server`].
    /// `flags` are the command's names for the request fields the status may mention.
    pub fn from_status(status: tonic::Status, url: &str, flags: Flags) -> Self {
        if is_transport_failure(&status) {
            CliError::Connection {
                url: url.to_owned(),
                detail: status.message().to_owned(),
            }
        } else {
            CliError::Server { status, flags }
        }
    }

    /// Whoever read the output went away (`ktrdr … | head`): like any Unix tool the command
    /// ends quietly and successfully instead of reporting it.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::Usage,
            CliError::Connection { .. } => ExitCode::Connection,
            CliError::Server { .. } => ExitCode::Server,
            CliError::Failed(_) | CliError::Output(_) => ExitCode::Failed,
            CliError::Interrupted(_) => ExitCode::Interrupted,
        }
    }

    /// A stable word for `--json` error objects.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Usage(_) => "usage",
            CliError::Connection { .. } => "connection",
            CliError::Server { .. } => "server",
            CliError::Failed(_) => "failed",
            CliError::Interrupted(_) => "interrupted",
            CliError::Output(_) => "output",
        }
    }

    /// The error as one JSON object (what `--json` prints on stderr).
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "kind": self.kind(),
            "message": self.to_string(),
            "exit_code": self.exit_code() as u8,
        });
        if let CliError::Server { status, .. } = self {
            error["code"] = code_name(status.code()).into();
            error["server_message"] = status.message().into();
        }
        serde_json::json!({ "error": error })
    }
}

/// A status the transport produced rather than the server: UNAVAILABLE without the `ErrorInfo`
/// every ktrdr service attaches to its own UNAVAILABLE answers (a gateway whose backend is down
/// is reachable; that is a server error).
fn is_transport_failure(status: &tonic::Status) -> bool {
    status.code() == Code::Unavailable && status.get_error_details().error_info().is_none()
}

/// `NOT_FOUND: no dataset AAPL 1h — …`, plus each field violation of a `BadRequest` on its own
/// line, so the user sees which argument to fix; fields are named by their flags.
fn describe_status(status: &tonic::Status, flags: Flags) -> String {
    let mut text = format!(
        "{}: {}",
        code_name(status.code()),
        name_flags(status.message(), flags)
    );
    let details = status.get_error_details();
    if let Some(bad_request) = details.bad_request() {
        for violation in &bad_request.field_violations {
            // The summary message often already names the first violation; list them anyway:
            // there may be many (one per bad CSV row).
            text.push_str(&format!(
                "\n  {}: {}",
                flag_for(flags, &violation.field).unwrap_or(&violation.field),
                name_flags(&violation.description, flags)
            ));
        }
    }
    if let Some(retry) = details.retry_info()
        && let Some(delay) = retry.retry_delay
    {
        text.push_str(&format!("\n  retry after {:.1} s", delay.as_secs_f64()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_unavailable_is_a_connection_error_and_a_server_answer_is_not() {
        let bare = tonic::Status::unavailable("tcp connect error");
        let err = CliError::from_status(bare, "http://localhost:50051", NO_FLAGS);
        assert_eq!(err.exit_code(), ExitCode::Connection);
        assert!(err.to_string().contains("make run"), "{err}");

        let answered = tonic::Status::not_found("no dataset AAPL 1h");
        let err = CliError::from_status(answered, "http://localhost:50051", DATASET_FLAGS);
        assert_eq!(err.exit_code(), ExitCode::Server);
        assert_eq!(err.to_string(), "NOT_FOUND: no dataset AAPL 1h");
        assert_eq!(err.to_json()["error"]["code"], "NOT_FOUND");
    }

    #[test]
    fn a_closed_pipe_is_not_an_error_but_other_output_failures_are() {
        let closed = CliError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(closed.is_closed_pipe());
        let full = CliError::from(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(!full.is_closed_pipe());
        assert_eq!(full.exit_code(), ExitCode::Failed);
    }

    #[test]
    fn field_paths_are_named_by_the_flags_that_fill_them() {
        assert_eq!(flag_for(IMPORT_FLAGS, "options.symbol"), Some("--symbol"));
        assert_eq!(flag_for(DATASET_FLAGS, "range.end_ms"), Some("--end"));
        assert_eq!(flag_for(TRAIN_FLAGS, "range.foo"), Some("--start/--end"));
        assert_eq!(flag_for(TRAIN_FLAGS, "symbols[2]"), Some("--symbols"));
        assert_eq!(flag_for(DATASET_FLAGS, "symbolic"), None);
        assert_eq!(flag_for(IMPORT_FLAGS, "lines[17].high"), None);
    }

    #[test]
    fn server_messages_name_flags_but_keep_their_words() {
        assert_eq!(
            name_flags(
                "ImportCsv AAPL 1h rejected: 1 invalid bar(s); first: line 3: high 9 < low. Fix the rows or write with validation_mode=VALIDATION_MODE_REPAIR",
                IMPORT_FLAGS
            ),
            "ImportCsv AAPL 1h rejected: 1 invalid bar(s); first: line 3: high 9 < low. Fix the rows or write with --repair"
        );
        assert_eq!(
            name_flags(
                "invalid options.timezone: unknown time zone \"Mars\"",
                IMPORT_FLAGS
            ),
            "invalid --timezone: unknown time zone \"Mars\""
        );
        // A plain word is a field only where the server's `invalid FIELD:` form says so.
        assert_eq!(
            name_flags("invalid symbol: set the symbol first", DATASET_FLAGS),
            "invalid SYMBOL: set the symbol first"
        );
        assert_eq!(
            name_flags("end 5 must be after range.start_ms.", DATASET_FLAGS),
            "end 5 must be after --start."
        );
        assert_eq!(
            name_flags("no dataset AAPL 1h", NO_FLAGS),
            "no dataset AAPL 1h"
        );
    }

    #[test]
    fn a_rejected_import_tells_the_user_to_pass_repair() {
        use tonic_types::{ErrorDetails, FieldViolation};
        let status = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "ImportCsv AAPL 1h rejected: 1 invalid bar(s); first: bad high. Fix the rows or write with validation_mode=VALIDATION_MODE_REPAIR",
            ErrorDetails::with_bad_request(vec![
                FieldViolation::new("lines[3].high", "high 9 is below low 10"),
                FieldViolation::new("options.timezone", "unknown time zone"),
            ]),
        );
        let err = CliError::from_status(status, "http://localhost:50051", IMPORT_FLAGS);
        let text = err.to_string();
        assert!(text.contains("write with --repair"), "{text}");
        assert!(!text.contains("VALIDATION_MODE"), "{text}");
        assert!(
            text.contains("\n  lines[3].high: high 9 is below low 10"),
            "{text}"
        );
        assert!(text.contains("\n  --timezone: unknown time zone"), "{text}");
        let json = err.to_json();
        assert!(
            json["error"]["server_message"]
                .as_str()
                .unwrap()
                .contains("VALIDATION_MODE_REPAIR")
        );
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--repair")
        );
    }
}
