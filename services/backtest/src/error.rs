//! The one error of the engine: an input that cannot be simulated, naming the offending field
//! (a config path such as `costs.commission_rate`, or a bar column) so a server can answer
//! `INVALID_ARGUMENT` with that field.

/// Why a backtest could not run. The engine never fails once its inputs are valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    /// The field at fault, as a dotted path into [`crate::ExecutionConfig`] or a bar column name.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl InvalidInput {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
