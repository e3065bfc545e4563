//! The one error type of the CLI and the exit codes it maps to.

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
    /// The server answered with an error status.
    #[error("{}", describe_status(.0))]
    Server(tonic::Status),
    /// The work ran and failed (a job, a session, a validation).
    #[error("{0}")]
    Failed(String),
    /// The user pressed Ctrl+C; what had to be cancelled has been.
    #[error("{0}")]
    Interrupted(String),
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// Classifies a status from a call to the gateway at `url`: transport failures (no
    /// server, refused, timed out connecting) become [`CliError::Connection`], everything the
    /// server itself answered becomes [`CliError::Server`].
    pub fn from_status(status: tonic::Status, url: &str) -> Self {
        if is_transport_failure(&status) {
            CliError::Connection {
                url: url.to_owned(),
                detail: status.message().to_owned(),
            }
        } else {
            CliError::Server(status)
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::Usage,
            CliError::Connection { .. } => ExitCode::Connection,
            CliError::Server(_) => ExitCode::Server,
            CliError::Failed(_) | CliError::Output(_) => ExitCode::Failed,
            CliError::Interrupted(_) => ExitCode::Interrupted,
        }
    }

    /// A stable word for `--json` error objects.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Usage(_) => "usage",
            CliError::Connection { .. } => "connection",
            CliError::Server(_) => "server",
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
        if let CliError::Server(status) = self {
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
/// line, so the user sees which argument to fix.
fn describe_status(status: &tonic::Status) -> String {
    let mut text = format!("{}: {}", code_name(status.code()), status.message());
    let details = status.get_error_details();
    if let Some(bad_request) = details.bad_request() {
        for violation in &bad_request.field_violations {
            // The summary message often already names the first violation; list them anyway:
            // there may be many (one per bad CSV row).
            text.push_str(&format!(
                "\n  {}: {}",
                violation.field, violation.description
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
        let err = CliError::from_status(bare, "http://localhost:50051");
        assert_eq!(err.exit_code(), ExitCode::Connection);
        assert!(err.to_string().contains("make run"), "{err}");

        let answered = tonic::Status::not_found("no dataset AAPL 1h");
        let err = CliError::from_status(answered, "http://localhost:50051");
        assert_eq!(err.exit_code(), ExitCode::Server);
        assert_eq!(err.to_string(), "NOT_FOUND: no dataset AAPL 1h");
        assert_eq!(err.to_json()["error"]["code"], "NOT_FOUND");
    }
}
