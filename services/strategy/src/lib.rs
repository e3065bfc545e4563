//! ktrdr's strategy pipeline: strategy files (the original v2 YAML format), indicators, fuzzy
//! memberships, features, ZigZag labels and chronological splits.
//!
//! The flow, for one strategy:
//! 1. [`strategy::LoadedStrategy::from_file`] parses and validates the YAML;
//! 2. [`features::compute_features`] turns each symbol's bars (one series per timeframe) into
//!    fuzzy memberships plus lags, joining higher timeframes only once their bar has closed;
//! 3. [`dataset::build_datasets`] splits each symbol chronologically, labels each part with
//!    ZigZag segments and joins the symbols;
//! 4. [`training::train`] fits the strategy's MLP with burn (CPU by default, CUDA with the
//!    `cuda` feature); [`artifacts::ModelStore`] saves it and [`artifacts::SavedModel`] loads it
//!    back to predict.
//!
//! Everything is deterministic; nothing here reads the clock or a global RNG.

pub mod artifacts;
pub mod bars;
pub mod dataset;
pub mod error;
pub mod features;
pub mod fuzzy;
pub mod indicators;
pub mod labels;
pub mod model;
pub mod split;
pub mod strategy;
pub mod synthetic;
pub mod training;

pub use bars::{Bars, Timeframe};
pub use error::{Result, StrategyError};
pub use labels::Label;
pub use strategy::{ConfigWarning, LoadedStrategy, StrategyConfig};
