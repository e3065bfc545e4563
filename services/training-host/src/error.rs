//! The one error type of the training host, mapped to `tonic::Status` through
//! [`ktrdr_common::ServiceError`].

use ktrdr_common::ServiceError;
use ktrdr_strategy::StrategyError;

/// Everything a training-host call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrainingError {
    /// A request field is wrong (`field` is its path in the request or the strategy YAML).
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// The strategy file named by `strategy_name` does not exist.
    #[error("strategy {name:?} not found: no {path}")]
    StrategyNotFound { name: String, path: String },
    #[error("training session {0} not found")]
    SessionNotFound(String),
    #[error("model {0} not found")]
    ModelNotFound(String),
    /// The data service holds no bars for a dataset training needs.
    #[error(
        "no stored bars for {symbol} {timeframe} in the requested range at the data service \
         ({url}) — load them first (e.g. the gateway's LoadData)"
    )]
    MissingData {
        symbol: String,
        timeframe: String,
        url: String,
    },
    /// The stored bars do not cover what an inference call needs: missing warm-up, or
    /// stretches (stale or missing history) the trading calendar expects bars in.
    #[error(
        "{} — load them first (the gateway's Predict and EvaluateModel load them itself; else \
         LoadData / `ktrdr data load`) (data service {url})",
        shortfalls.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    NotCovered {
        shortfalls: Vec<crate::shortfall::Shortfall>,
        url: String,
    },
    /// The data service cannot be reached.
    #[error(
        "data service unavailable at {url} — start ktrdr-data or set DATA_SERVICE_URL ({message})"
    )]
    DataUnavailable { url: String, message: String },
    /// The data service answered with an error we did not expect.
    #[error("data service at {url}: {message}")]
    Data { url: String, message: String },
    /// A request the current state refuses (`reason` is the ErrorInfo reason, `field` the
    /// request field to change).
    #[error("{message}")]
    Precondition {
        reason: String,
        message: String,
        field: String,
    },
    /// Something a request names does not exist (`reason` is the ErrorInfo reason).
    #[error("{message}")]
    NotFound { reason: String, message: String },
    /// The queue is full.
    #[error("{0}")]
    QueueFull(String),
    /// The session asked about is in a state that forbids the call (e.g. resuming a session
    /// that runs, or that another session is resuming already).
    #[error("{message}")]
    SessionBusy { session_id: String, message: String },
    /// The pipeline (features, training, artifacts) failed.
    #[error("{0}")]
    Strategy(#[from] StrategyError),
    #[error("{0}")]
    Internal(String),
}

impl TrainingError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }
}

impl From<ktrdr_market::BarsError> for TrainingError {
    fn from(e: ktrdr_market::BarsError) -> Self {
        Self::Strategy(e.into())
    }
}

impl From<TrainingError> for ServiceError {
    fn from(err: TrainingError) -> Self {
        let message = err.to_string();
        match err {
            TrainingError::InvalidArgument { field, message } => {
                ServiceError::invalid_argument(field, message)
            }
            TrainingError::StrategyNotFound { name, path } => {
                ServiceError::not_found("STRATEGY_NOT_FOUND", message)
                    .with_metadata("strategy", name)
                    .with_metadata("path", path)
            }
            TrainingError::SessionNotFound(id) => {
                ServiceError::not_found("SESSION_NOT_FOUND", message)
                    .with_metadata("session_id", id)
            }
            TrainingError::ModelNotFound(id) => {
                ServiceError::not_found("MODEL_NOT_FOUND", message).with_metadata("model_id", id)
            }
            TrainingError::MissingData {
                symbol, timeframe, ..
            } => ServiceError::not_found("DATASET_NOT_FOUND", message)
                .with_metadata("symbol", symbol)
                .with_metadata("timeframe", timeframe),
            TrainingError::NotCovered { shortfalls, .. } => {
                crate::shortfall::shortfall_metadata(&shortfalls)
                    .into_iter()
                    .fold(
                        ServiceError::failed_precondition(
                            crate::shortfall::NOT_COVERED_REASON,
                            message,
                        ),
                        |e, (key, value)| e.with_metadata(key, value),
                    )
            }
            TrainingError::Precondition { reason, field, .. } => {
                ServiceError::failed_precondition(reason, message).with_metadata("field", field)
            }
            TrainingError::NotFound { reason, .. } => ServiceError::not_found(reason, message),
            TrainingError::DataUnavailable { url, message: why } => {
                ServiceError::service_unavailable(
                    "data",
                    url,
                    format!("start ktrdr-data or set DATA_SERVICE_URL ({why})"),
                )
            }
            TrainingError::Data { .. } | TrainingError::Internal(_) => {
                ServiceError::internal(message)
            }
            TrainingError::SessionBusy { session_id, .. } => {
                ServiceError::failed_precondition("SESSION_BUSY", message)
                    .with_metadata("session_id", session_id)
            }
            TrainingError::QueueFull(_) => ServiceError::resource_exhausted(
                "TRAINING_QUEUE_FULL",
                message,
                Some(std::time::Duration::from_secs(5)),
            ),
            TrainingError::Strategy(e) => match e {
                StrategyError::Parse { path, message } => {
                    ServiceError::invalid_argument(format!("strategy_yaml.{path}"), message)
                }
                StrategyError::Invalid { path, rule } => {
                    ServiceError::invalid_argument(format!("strategy_yaml.{path}"), rule)
                }
                StrategyError::Data(_) => ServiceError::failed_precondition("BAD_DATA", message),
                StrategyError::Cancelled => ServiceError::Cancelled { message },
                StrategyError::Device(_) => {
                    ServiceError::failed_precondition("DEVICE_UNAVAILABLE", message)
                }
                StrategyError::Io { .. } | StrategyError::Weights { .. } => {
                    ServiceError::internal(message)
                }
            },
        }
    }
}

impl From<TrainingError> for tonic::Status {
    fn from(err: TrainingError) -> Self {
        ServiceError::from(err).into()
    }
}

pub type Result<T> = std::result::Result<T, TrainingError>;
