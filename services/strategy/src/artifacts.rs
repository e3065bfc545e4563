//! Saved models: `models/<strategy>/<SYMBOLS>_<tf>_v<N>/` with
//! - `model.mpk`: the weights (burn's named MessagePack, full precision);
//! - `config.json`: the strategy (as JSON) and the network's shape;
//! - `metrics.json`: [`TrainingMetrics`];
//! - `features.json`: [`FeatureSpec`], the input order;
//! - `metadata.json`: [`ModelMetadata`].
//!
//! `<SYMBOLS>` joins the symbols with `_`, `<tf>` is the base timeframe and `N` counts up from 1.
//! `<SYMBOLS>_<tf>_latest` next to the versions is a small text file holding the newest
//! version's directory name (a file rather than the original's symlink, so it works everywhere
//! and is replaced atomically).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::bars::{Bars, Timeframe};
use crate::dataset::Dataset;
use crate::error::{Result, StrategyError};
use crate::features::{FeatureSpec, compute_features, feature_spec};
use crate::labels::Label;
use crate::model::{CLASSES, Mlp, MlpConfig};
use crate::strategy::{LoadedStrategy, StrategyConfig};
use crate::training::{TrainedModel, TrainingMetrics, argmax, predict_probabilities};

const WEIGHTS_STEM: &str = "model";
const BURN_VERSION: &str = "0.21.0";

/// `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedConfig {
    pub strategy: StrategyConfig,
    pub network: MlpConfig,
}

/// `metadata.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    pub strategy_name: String,
    /// Joined with `_`, as in the directory name.
    pub symbol: String,
    pub symbols: Vec<String>,
    /// The base timeframe.
    pub timeframe: Timeframe,
    pub timeframes: Vec<Timeframe>,
    /// UTC epoch milliseconds.
    pub created_at_ms: i64,
    pub model_type: String,
    pub model_version: String,
    pub architecture_type: String,
    pub input_size: usize,
    pub burn_version: String,
    pub training_summary: TrainingSummary,
    pub feature_engineering: FeatureEngineering,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub epochs: usize,
    pub best_epoch: usize,
    pub final_accuracy: f64,
    pub best_val_accuracy: f64,
    pub test_accuracy: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureEngineering {
    pub scaler_required: bool,
    pub fuzzy_only: bool,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> StrategyError {
    StrategyError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| io_error(path, e))?;
    std::fs::write(path, text).map_err(|e| io_error(path, e))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    serde_json::from_str(&text).map_err(|e| io_error(path, e))
}

/// The `models/` directory.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
}

impl ModelStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `<SYMBOLS>_<tf>`.
    fn prefix(strategy: &LoadedStrategy) -> Result<String> {
        let tf = strategy
            .base_timeframe()
            .ok_or_else(|| StrategyError::invalid("training_data.timeframes", "no timeframe"))?;
        Ok(format!("{}_{tf}", strategy.symbols().join("_")))
    }

    /// Saves `trained` as the next version and points `latest` at it. Returns its directory.
    pub fn save<B: Backend>(
        &self,
        strategy: &LoadedStrategy,
        trained: &TrainedModel<B>,
    ) -> Result<PathBuf> {
        let strategy_dir = self.root.join(&strategy.config.name);
        std::fs::create_dir_all(&strategy_dir).map_err(|e| io_error(&strategy_dir, e))?;
        let prefix = Self::prefix(strategy)?;
        let version_tag = format!("{prefix}_v");
        let mut next = 1;
        for entry in std::fs::read_dir(&strategy_dir).map_err(|e| io_error(&strategy_dir, e))? {
            let name = entry.map_err(|e| io_error(&strategy_dir, e))?.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&version_tag))
                .and_then(|v| v.parse::<usize>().ok())
            {
                next = next.max(n + 1);
            }
        }
        let dir_name = format!("{version_tag}{next}");
        let dir = strategy_dir.join(&dir_name);
        std::fs::create_dir(&dir).map_err(|e| io_error(&dir, e))?;

        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let weights = dir.join(WEIGHTS_STEM);
        trained
            .model
            .clone()
            .save_file(weights.clone(), &recorder)
            .map_err(|e| StrategyError::Weights {
                path: weights.display().to_string(),
                message: e.to_string(),
            })?;
        let mut strategy_config = strategy.config.clone();
        strategy_config.model.input_size = Some(trained.config.input_size);
        write_json(
            &dir.join("config.json"),
            &SavedConfig {
                strategy: strategy_config,
                network: trained.config.clone(),
            },
        )?;
        write_json(&dir.join("metrics.json"), &trained.metrics)?;
        let features = feature_spec(strategy)?;
        if features.fuzzy_features != trained.feature_names {
            return Err(StrategyError::data(
                "trained feature names differ from the strategy's".to_owned(),
            ));
        }
        write_json(&dir.join("features.json"), &features)?;
        let created_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let m = &trained.metrics;
        write_json(
            &dir.join("metadata.json"),
            &ModelMetadata {
                strategy_name: strategy.config.name.clone(),
                symbol: strategy.symbols().join("_"),
                symbols: strategy.symbols(),
                timeframe: features.base_timeframe,
                timeframes: features.timeframes.clone(),
                created_at_ms,
                model_type: "mlp".to_owned(),
                model_version: format!("v{next}"),
                architecture_type: trained.config.architecture_name(),
                input_size: trained.config.input_size,
                burn_version: BURN_VERSION.to_owned(),
                training_summary: TrainingSummary {
                    epochs: m.epochs_trained,
                    best_epoch: m.best_epoch,
                    final_accuracy: m.final_train_accuracy,
                    best_val_accuracy: m.best_val_accuracy,
                    test_accuracy: m.test.accuracy,
                },
                feature_engineering: FeatureEngineering {
                    scaler_required: false,
                    fuzzy_only: true,
                },
            },
        )?;
        // Write then rename: readers never see a half-written pointer.
        let latest = strategy_dir.join(format!("{prefix}_latest"));
        let staging = strategy_dir.join(format!(".{prefix}_latest.tmp"));
        std::fs::write(&staging, &dir_name).map_err(|e| io_error(&staging, e))?;
        std::fs::rename(&staging, &latest).map_err(|e| io_error(&latest, e))?;
        Ok(dir)
    }

    /// The newest version's directory of `strategy_name` for `symbols` and base timeframe.
    pub fn latest(
        &self,
        strategy_name: &str,
        symbols: &[String],
        timeframe: Timeframe,
    ) -> Result<PathBuf> {
        let strategy_dir = self.root.join(strategy_name);
        let pointer = strategy_dir.join(format!("{}_{timeframe}_latest", symbols.join("_")));
        let name = std::fs::read_to_string(&pointer).map_err(|e| io_error(&pointer, e))?;
        Ok(strategy_dir.join(name.trim()))
    }
}

/// One prediction for one base bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The base bar's open time; the signal is for its close.
    pub timestamp_ms: i64,
    pub signal: Label,
    /// BUY, HOLD, SELL.
    pub probabilities: [f32; CLASSES],
    pub confidence: f32,
}

/// A model loaded from its directory, ready to predict.
#[derive(Debug)]
pub struct SavedModel<B: Backend> {
    pub dir: PathBuf,
    pub strategy: LoadedStrategy,
    pub network: MlpConfig,
    pub features: FeatureSpec,
    pub metrics: TrainingMetrics,
    pub model: Mlp<B>,
    device: B::Device,
}

impl<B: Backend> SavedModel<B> {
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config: SavedConfig = read_json(&dir.join("config.json"))?;
        let features: FeatureSpec = read_json(&dir.join("features.json"))?;
        let metrics: TrainingMetrics = read_json(&dir.join("metrics.json"))?;
        let strategy = LoadedStrategy::from_config(config.strategy)?;
        let names = crate::features::feature_names(&strategy)?;
        if names != features.fuzzy_features || names.len() != config.network.input_size {
            return Err(StrategyError::data(format!(
                "{}: features.json does not match the strategy in config.json",
                dir.display()
            )));
        }
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let weights = dir.join(WEIGHTS_STEM);
        let model = config
            .network
            .init::<B>(device)
            .load_file(weights.clone(), &recorder, device)
            .map_err(|e| StrategyError::Weights {
                path: weights.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(Self {
            dir: dir.to_owned(),
            strategy,
            network: config.network,
            features,
            metrics,
            model,
            device: device.clone(),
        })
    }

    /// Predictions for every base bar of `bars` whose features are complete (after warm-up).
    pub fn predict(
        &self,
        symbol: &str,
        bars: &BTreeMap<Timeframe, Bars>,
    ) -> Result<Vec<Prediction>> {
        predict_bars(
            &self.strategy,
            &self.network,
            &self.model,
            &self.device,
            symbol,
            bars,
        )
    }
}

/// Predictions of `model` (trained for `strategy`) for every base bar of `bars` whose features
/// are complete, for a model in memory or loaded.
pub fn predict_bars<B: Backend>(
    strategy: &LoadedStrategy,
    network: &MlpConfig,
    model: &Mlp<B>,
    device: &B::Device,
    symbol: &str,
    bars: &BTreeMap<Timeframe, Bars>,
) -> Result<Vec<Prediction>> {
    let symbol_index = if network.uses_embedding() {
        network
            .symbols
            .iter()
            .position(|s| s == symbol)
            .ok_or_else(|| {
                StrategyError::data(format!(
                    "this model embeds its training symbols ({}) and cannot score {symbol}",
                    network.symbols.join(", ")
                ))
            })? as u32
    } else {
        0
    };
    let features = compute_features(strategy, bars)?;
    if features.columns.len() != network.input_size {
        return Err(StrategyError::data(format!(
            "the strategy gives {} features but the model takes {}",
            features.columns.len(),
            network.input_size
        )));
    }
    let mut rows = Dataset {
        feature_count: features.columns.len(),
        ..Dataset::default()
    };
    for i in (0..features.rows()).filter(|&i| features.row_is_complete(i)) {
        rows.x.extend(features.row_f32(i));
        rows.y.push(Label::Hold); // unused by prediction
        rows.symbol_index.push(symbol_index);
        rows.timestamp_ms.push(features.timestamp_ms[i]);
    }
    let probabilities = predict_probabilities(model, &rows, network, device, 1024);
    Ok(rows
        .timestamp_ms
        .iter()
        .zip(probabilities)
        .map(|(&timestamp_ms, p)| {
            let best = argmax(&p);
            Prediction {
                timestamp_ms,
                signal: Label::from_index(best).unwrap_or(Label::Hold),
                probabilities: p,
                confidence: p[best],
            }
        })
        .collect())
}
