//! The one error type of ktrdr services and its one mapping to `tonic::Status`.
//!
//! Each variant fixes its gRPC code and the `google.rpc` details clients get (ARCHITECTURE §4):
//! field violations for bad arguments, `ErrorInfo` with a machine-readable reason, `RetryInfo`
//! where waiting helps. Messages say what failed and what to do.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every ktrdr error.
pub const ERROR_DOMAIN: &str = "ktrdr";

/// One offending field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `range.end_ms` or `symbols[2]`.
    pub field: String,
    /// What is wrong and what is accepted.
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Everything a ktrdr service call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed: `INVALID_ARGUMENT` + `BadRequest`.
    #[error("{message}")]
    InvalidArgument {
        message: String,
        violations: Vec<FieldViolation>,
    },
    /// A named thing does not exist: `NOT_FOUND` + `ErrorInfo`.
    #[error("{message}")]
    NotFound {
        /// e.g. `DATASET_NOT_FOUND`, `UNKNOWN_SYMBOL`.
        reason: String,
        message: String,
        metadata: HashMap<String, String>,
    },
    /// The thing to create exists already: `ALREADY_EXISTS` + `ErrorInfo`.
    #[error("{message}")]
    AlreadyExists {
        reason: String,
        message: String,
        metadata: HashMap<String, String>,
    },
    /// A dependency (host service, IB) cannot be reached: `UNAVAILABLE` + `ErrorInfo` + `RetryInfo`.
    #[error("{message}")]
    Unavailable {
        /// e.g. `SERVICE_UNAVAILABLE`, `IB_DISCONNECTED`.
        reason: String,
        /// The dependency's name, e.g. `data` or `ib`.
        service: String,
        /// Where it was expected.
        url: String,
        message: String,
        retry_after: Duration,
    },
    /// A quota or limit is hit (IB pacing, training slots): `RESOURCE_EXHAUSTED` + `ErrorInfo` +
    /// `RetryInfo` when known.
    #[error("{message}")]
    ResourceExhausted {
        reason: String,
        message: String,
        retry_after: Option<Duration>,
        metadata: HashMap<String, String>,
    },
    /// The caller's deadline passed: `DEADLINE_EXCEEDED`.
    #[error("{message}")]
    DeadlineExceeded { message: String },
    /// The system is not in a state to do this (e.g. misconfiguration): `FAILED_PRECONDITION` +
    /// `ErrorInfo`.
    #[error("{message}")]
    FailedPrecondition {
        reason: String,
        message: String,
        metadata: HashMap<String, String>,
    },
    /// The caller lacks a right or subscription the call needs (e.g. IB market-data
    /// permissions): `PERMISSION_DENIED` + `ErrorInfo`.
    #[error("{message}")]
    PermissionDenied {
        reason: String,
        message: String,
        metadata: HashMap<String, String>,
    },
    /// The operation was interrupted by a conflict or by the upstream dropping it; retrying the
    /// whole operation may succeed: `ABORTED` + `ErrorInfo`.
    #[error("{message}")]
    Aborted {
        reason: String,
        message: String,
        metadata: HashMap<String, String>,
    },
    /// The work was cancelled: `CANCELLED`.
    #[error("{message}")]
    Cancelled { message: String },
    /// The caller did not prove who it is (missing or wrong bearer token): `UNAUTHENTICATED` +
    /// `ErrorInfo`.
    #[error("{message}")]
    Unauthenticated { reason: String, message: String },

    /// A bug or an unexpected failure on our side: `INTERNAL`.
    #[error("{message}")]
    Internal { message: String },
}

/// A protobuf enum field read strictly: a value the contract does not define (a newer client,
/// a bug, a fuzzer) is `INVALID_ARGUMENT` naming the field, never silently the default.
pub fn enum_field<E: TryFrom<i32>>(field: &str, raw: i32) -> Result<E, ServiceError> {
    E::try_from(raw).map_err(|_| {
        ServiceError::invalid_argument(
            field,
            format!("unknown value {raw} (see the enum in the .proto for the accepted values)"),
        )
    })
}

impl ServiceError {
    /// A bad request with one offending field.
    pub fn invalid_argument(field: impl Into<String>, description: impl Into<String>) -> Self {
        let violation = FieldViolation::new(field, description);
        Self::InvalidArgument {
            message: format!("invalid {}: {}", violation.field, violation.description),
            violations: vec![violation],
        }
    }

    /// A bad request with several offending fields; `None` if there are none.
    pub fn from_violations(violations: Vec<FieldViolation>) -> Option<Self> {
        let message = match violations.as_slice() {
            [] => return None,
            [one] => format!("invalid {}: {}", one.field, one.description),
            many => format!(
                "{} invalid fields: {}",
                many.len(),
                many.iter()
                    .map(|v| format!("{} ({})", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        Some(Self::InvalidArgument {
            message,
            violations,
        })
    }

    pub fn not_found(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::NotFound {
            reason: reason.into(),
            message: message.into(),
            metadata: HashMap::new(),
        }
    }

    /// A host service that cannot be reached, with the fix in the message.
    pub fn service_unavailable(
        service: impl Into<String>,
        url: impl Into<String>,
        hint: impl AsRef<str>,
    ) -> Self {
        let (service, url) = (service.into(), url.into());
        Self::Unavailable {
            message: format!("{service} service unavailable at {url} — {}", hint.as_ref()),
            reason: "SERVICE_UNAVAILABLE".to_owned(),
            service,
            url,
            retry_after: Duration::from_secs(1),
        }
    }

    pub fn resource_exhausted(
        reason: impl Into<String>,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        Self::ResourceExhausted {
            reason: reason.into(),
            message: message.into(),
            retry_after,
            metadata: HashMap::new(),
        }
    }

    pub fn failed_precondition(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason: reason.into(),
            message: message.into(),
            metadata: HashMap::new(),
        }
    }

    pub fn permission_denied(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::PermissionDenied {
            reason: reason.into(),
            message: message.into(),
            metadata: HashMap::new(),
        }
    }

    pub fn aborted(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Aborted {
            reason: reason.into(),
            message: message.into(),
            metadata: HashMap::new(),
        }
    }

    pub fn unauthenticated(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Unauthenticated {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
        }
    }

    /// Adds one `ErrorInfo` metadata entry (ignored by variants without `ErrorInfo` metadata).
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        if let Self::NotFound { metadata, .. }
        | Self::AlreadyExists { metadata, .. }
        | Self::ResourceExhausted { metadata, .. }
        | Self::FailedPrecondition { metadata, .. }
        | Self::PermissionDenied { metadata, .. }
        | Self::Aborted { metadata, .. } = &mut self
        {
            metadata.insert(key.into(), value.into());
        }
        self
    }

    /// The gRPC code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::Unavailable { .. } => Code::Unavailable,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::Aborted { .. } => Code::Aborted,
            Self::Cancelled { .. } => Code::Cancelled,
            Self::Unauthenticated { .. } => Code::Unauthenticated,
            Self::Internal { .. } => Code::Internal,
        }
    }

    /// Whether a caller may retry the same call later and expect it to succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::ResourceExhausted { .. } | Self::Aborted { .. }
        )
    }
}

/// Longest `grpc-message` a status carries; statuses travel in HTTP/2 headers, which peers
/// limit (an oversized one tears down the connection with every call on it).
const MAX_MESSAGE_BYTES: usize = 1024;
/// Longest text of one detail (a field violation, an `ErrorInfo` metadata value).
const MAX_DETAIL_BYTES: usize = 256;

/// `text` cut to at most `limit` bytes (on a character boundary), saying how long it was.
fn capped(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

impl From<ServiceError> for Status {
    /// Every text is capped (`MAX_MESSAGE_BYTES`, `MAX_DETAIL_BYTES`), whatever input it
    /// echoes, so a status always fits in the headers.
    fn from(err: ServiceError) -> Self {
        let code = err.code();
        let message = capped(err.to_string(), MAX_MESSAGE_BYTES);
        let mut details = ErrorDetails::new();
        let cap_all = |metadata: HashMap<String, String>| -> HashMap<String, String> {
            metadata
                .into_iter()
                .map(|(k, v)| (capped(k, MAX_DETAIL_BYTES), capped(v, MAX_DETAIL_BYTES)))
                .collect()
        };
        match err {
            ServiceError::InvalidArgument { violations, .. } => {
                for v in violations {
                    details.add_bad_request_violation(
                        capped(v.field, MAX_DETAIL_BYTES),
                        capped(v.description, MAX_DETAIL_BYTES),
                    );
                }
            }
            ServiceError::NotFound {
                reason, metadata, ..
            }
            | ServiceError::AlreadyExists {
                reason, metadata, ..
            }
            | ServiceError::FailedPrecondition {
                reason, metadata, ..
            }
            | ServiceError::PermissionDenied {
                reason, metadata, ..
            }
            | ServiceError::Aborted {
                reason, metadata, ..
            } => {
                details.set_error_info(reason, ERROR_DOMAIN, cap_all(metadata));
            }
            ServiceError::Unavailable {
                reason,
                service,
                url,
                retry_after,
                ..
            } => {
                let metadata = cap_all(HashMap::from([
                    ("service".to_owned(), service),
                    ("url".to_owned(), url),
                ]));
                details
                    .set_error_info(reason, ERROR_DOMAIN, metadata)
                    .set_retry_info(Some(retry_after));
            }
            ServiceError::ResourceExhausted {
                reason,
                retry_after,
                metadata,
                ..
            } => {
                details.set_error_info(reason, ERROR_DOMAIN, cap_all(metadata));
                if retry_after.is_some() {
                    details.set_retry_info(retry_after);
                }
            }
            ServiceError::Unauthenticated { reason, .. } => {
                details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
            }
            ServiceError::DeadlineExceeded { .. }
            | ServiceError::Cancelled { .. }
            | ServiceError::Internal { .. } => {}
        }
        Status::with_error_details(code, message, details)
    }
}

/// The fields a status's `BadRequest` details name, in order (none without such details).
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(err: ServiceError) -> Status {
        err.into()
    }

    #[test]
    fn invalid_argument_carries_every_field_violation() {
        let err = ServiceError::from_violations(vec![
            FieldViolation::new("symbol", "must not be empty"),
            FieldViolation::new("range.end_ms", "must be after range.start_ms"),
        ])
        .unwrap();
        let s = status(err);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("2 invalid fields"), "{}", s.message());
        assert_eq!(violated_fields(&s), ["symbol", "range.end_ms"]);
        let bad = s.get_error_details().bad_request().cloned().unwrap();
        assert_eq!(
            bad.field_violations[1].description,
            "must be after range.start_ms"
        );
        assert!(ServiceError::from_violations(vec![]).is_none());
    }

    #[test]
    fn one_violation_names_the_field_in_the_message() {
        let s = status(ServiceError::invalid_argument(
            "timeframe",
            "unknown timeframe \"2h\"",
        ));
        assert_eq!(s.message(), "invalid timeframe: unknown timeframe \"2h\"");
        assert_eq!(violated_fields(&s), ["timeframe"]);
    }

    #[test]
    fn not_found_has_error_info_with_reason_and_metadata() {
        let s = status(
            ServiceError::not_found("DATASET_NOT_FOUND", "no dataset AAPL 1h")
                .with_metadata("symbol", "AAPL"),
        );
        assert_eq!(s.code(), Code::NotFound);
        let info = s.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "DATASET_NOT_FOUND");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(
            info.metadata.get("symbol").map(String::as_str),
            Some("AAPL")
        );
    }

    #[test]
    fn unavailable_names_service_and_url_and_says_when_to_retry() {
        let s = status(ServiceError::service_unavailable(
            "Training host",
            "http://localhost:50053",
            "start it or set USE_TRAINING_HOST_SERVICE=false",
        ));
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(
            s.message(),
            "Training host service unavailable at http://localhost:50053 — start it or set USE_TRAINING_HOST_SERVICE=false"
        );
        let details = s.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "SERVICE_UNAVAILABLE");
        assert_eq!(info.metadata["url"], "http://localhost:50053");
        assert_eq!(info.metadata["service"], "Training host");
        assert_eq!(
            details.retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn resource_exhausted_has_retry_info_only_when_known() {
        let paced = status(ServiceError::resource_exhausted(
            "IB_PACING_VIOLATION",
            "IB pacing",
            Some(Duration::from_secs(15)),
        ));
        assert_eq!(paced.code(), Code::ResourceExhausted);
        assert_eq!(
            paced.get_error_details().retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(15))
        );
        let full = status(ServiceError::resource_exhausted("SLOTS_FULL", "full", None));
        assert!(full.get_error_details().retry_info().is_none());
        assert_eq!(
            full.get_error_details().error_info().unwrap().reason,
            "SLOTS_FULL"
        );
    }

    #[test]
    fn failed_precondition_and_already_exists_have_error_info() {
        let s = status(ServiceError::failed_precondition(
            "MISCONFIGURED",
            "bad routing",
        ));
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(
            s.get_error_details().error_info().unwrap().reason,
            "MISCONFIGURED"
        );
        let s = status(ServiceError::AlreadyExists {
            reason: "MODEL_EXISTS".into(),
            message: "exists".into(),
            metadata: HashMap::new(),
        });
        assert_eq!(s.code(), Code::AlreadyExists);
        assert_eq!(
            s.get_error_details().error_info().unwrap().reason,
            "MODEL_EXISTS"
        );
    }

    #[test]
    fn permission_denied_and_aborted_have_error_info() {
        let s = status(
            ServiceError::permission_denied("IB_NO_PERMISSION", "no market data subscription")
                .with_metadata("ib_code", "354"),
        );
        assert_eq!(s.code(), Code::PermissionDenied);
        let info = s.get_error_details().error_info().cloned().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.metadata["ib_code"].as_str()),
            ("IB_NO_PERMISSION", "354")
        );
        let s = status(ServiceError::aborted(
            "IB_QUERY_DROPPED",
            "IB dropped the query",
        ));
        assert_eq!(s.code(), Code::Aborted);
        assert_eq!(
            s.get_error_details().error_info().unwrap().reason,
            "IB_QUERY_DROPPED"
        );
        assert!(ServiceError::aborted("R", "m").is_retryable());
        assert!(!ServiceError::permission_denied("R", "m").is_retryable());
    }

    #[test]
    fn echoed_input_of_any_size_leaves_a_status_that_fits_in_headers() {
        let huge = "A".repeat(100_000);
        let status: Status =
            ServiceError::not_found("SESSION_NOT_FOUND", format!("session {huge}"))
                .with_metadata("session_id", huge.clone())
                .into();
        assert!(status.message().len() < 1_100, "{}", status.message().len());
        assert!(
            status.message().ends_with("(100008 bytes)"),
            "{}",
            &status.message()[1000..]
        );
        // The details repeat the message (google.rpc.Status) next to the capped metadata; far
        // below HTTP/2's usual 16 KiB header list limit.
        assert!(status.details().len() < 2_000, "{}", status.details().len());
        let status: Status = ServiceError::invalid_argument(huge.clone(), huge).into();
        assert!(status.message().len() < 1_100);
        assert!(status.details().len() < 2_000, "{}", status.details().len());
    }

    #[test]
    fn plain_codes_carry_no_details() {
        for (err, code) in [
            (
                ServiceError::DeadlineExceeded {
                    message: "late".into(),
                },
                Code::DeadlineExceeded,
            ),
            (
                ServiceError::Cancelled {
                    message: "stop".into(),
                },
                Code::Cancelled,
            ),
            (ServiceError::internal("bug"), Code::Internal),
        ] {
            let s = status(err);
            assert_eq!(s.code(), code);
            let d = s.get_error_details();
            assert!(
                d.error_info().is_none() && d.retry_info().is_none() && d.bad_request().is_none()
            );
        }
    }

    #[test]
    fn only_waiting_errors_are_retryable() {
        assert!(ServiceError::service_unavailable("data", "u", "h").is_retryable());
        assert!(ServiceError::resource_exhausted("R", "m", None).is_retryable());
        assert!(!ServiceError::invalid_argument("f", "d").is_retryable());
        assert!(!ServiceError::internal("x").is_retryable());
    }
}
