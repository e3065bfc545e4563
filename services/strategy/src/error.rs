//! The one error type of the strategy pipeline.

/// Everything the strategy pipeline can fail with.
///
/// Configuration errors carry the YAML path of the offending value (e.g.
/// `indicators[2].period`) and the rule it breaks, so a user can fix the file without reading code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    /// The strategy file is not valid YAML or a value has the wrong type.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// A value parsed but breaks a rule (range, ordering, reference to an unknown indicator…).
    #[error("{path}: {rule}")]
    Invalid { path: String, rule: String },
    /// Reading a file failed.
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    /// Training was cancelled by its caller.
    #[error("training cancelled")]
    Cancelled,
    /// Saving or loading a model's weights failed.
    #[error("model weights at {path}: {message}")]
    Weights { path: String, message: String },
    /// Input data do not fit what the pipeline needs (lengths differ, unsorted timestamps…).
    #[error("data: {0}")]
    Data(String),
    /// The compute device asked for is not in this build (see [`crate::compute`]).
    #[error("{0}")]
    Device(String),
}

impl StrategyError {
    pub(crate) fn invalid(path: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            rule: rule.into(),
        }
    }

    pub(crate) fn data(message: impl Into<String>) -> Self {
        Self::Data(message.into())
    }
}

impl From<ktrdr_market::BarsError> for StrategyError {
    fn from(e: ktrdr_market::BarsError) -> Self {
        Self::Data(e.to_string())
    }
}

impl From<ktrdr_market::UnknownTimeframe> for StrategyError {
    fn from(e: ktrdr_market::UnknownTimeframe) -> Self {
        Self::Data(e.to_string())
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, StrategyError>;
