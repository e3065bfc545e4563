//! ktrdr's strategy pipeline: strategy files (the original v2 YAML format), indicators, fuzzy
//! memberships, features, ZigZag labels and chronological splits, over the one bar type
//! [`ktrdr_market::Bars`].
//!
//! The flow, for one strategy:
//! 1. [`strategy::LoadedStrategy::from_file`] parses and validates the YAML;
//! 2. [`features::compute_features`] turns each symbol's bars (one series per timeframe) into
//!    fuzzy memberships plus lags, joining higher timeframes only once their bar has closed;
//! 3. [`dataset::build_datasets`] splits each symbol chronologically, labels each part with
//!    ZigZag segments and joins the symbols;
//! 4. [`training::train`] fits the strategy's MLP with burn (CPU by default, CUDA with the
//!    `cuda` feature; [`compute::Compute`] picks the backend at run time);
//!    [`artifacts::ModelStore`] saves it and [`artifacts::SavedModel`] (or, on a device chosen
//!    at run time, [`artifacts::LoadedModel`]) loads it back to predict.
//!
//! Everything is deterministic for a seed; only `metadata.json`'s creation time reads the clock.
//!
//! # Differences from the original ktrdr, on purpose
//! - No look-ahead: higher-timeframe bars join only once closed; labels are computed inside
//!   each split; multi-symbol data are split per symbol before joining, never shuffled first.
//! - Early stopping and "best model" keep a real copy of the best epoch's weights.
//! - Standard indicator definitions: SMA-seeded EMA and MACD (the original used pandas `ewm`),
//!   Wilder's ATR (the original: a rolling mean of the true range), Ehlers' Fisher Transform and
//!   RVI signal line; each indicator's doc comment says where it differs.
//! - Warm-up rows and rows without a known ZigZag segment are dropped from training instead of
//!   filled with 0 or labelled anyway.
//! - Bollinger/Keltner/Donchian feed fuzzy sets their %B (the original fed no band column);
//!   price-level overlays (SMA, EMA, VWAP, Parabolic SAR, Ichimoku) feed `close / value`.
//! - Only the v2 strategy format is read; the original's later v3 format (indicators as a map,
//!   `nn_inputs`) is not.

pub mod artifacts;
pub mod compute;
pub mod dataset;
pub mod error;
pub mod features;
pub mod fuzzy;
pub mod indicators;
pub mod labels;
pub mod model;
pub mod spec;
pub mod split;
pub mod strategy;
pub mod synthetic;
pub mod training;

pub use error::{Result, StrategyError};
pub use labels::Label;
pub use strategy::{ConfigWarning, LoadedStrategy, StrategyConfig};
