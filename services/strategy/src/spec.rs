//! The entries of a strategy file that other modules interpret: an indicator's spec (read by
//! [`crate::indicators`]), a fuzzy set's spec (read by [`crate::fuzzy`]), and the warnings
//! loading collects. The rest of the schema is in [`crate::strategy`], which re-exports these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One entry of `indicators`: a `name`, an optional `type` and the parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorSpec {
    pub name: String,
    /// The registry type (`RSI`, `BollingerBands`); inferred from `name` when absent.
    #[serde(default, rename = "type")]
    pub indicator_type: Option<String>,
    /// Overrides `name` as the key fuzzy sets and features use.
    #[serde(default)]
    pub feature_id: Option<String>,
    /// Every other key: the indicator's parameters (`period`, `source`, …).
    #[serde(flatten)]
    pub params: BTreeMap<String, serde_norway::Value>,
}

impl IndicatorSpec {
    /// The key that fuzzy sets and feature names use for this indicator.
    pub fn id(&self) -> &str {
        self.feature_id.as_deref().unwrap_or(&self.name)
    }
}

/// One fuzzy set: `{type: triangular, parameters: [a, b, c]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FuzzySetSpec {
    #[serde(rename = "type")]
    pub kind: FuzzySetKind,
    pub parameters: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FuzzySetKind {
    Triangular,
    Trapezoidal,
    Gaussian,
}

/// Something in a strategy file that does not stop it loading but that the user should know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigWarning {
    /// YAML path, e.g. `model.features.scale_features`.
    pub path: String,
    pub message: String,
}
