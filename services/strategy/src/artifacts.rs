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
//!
//! Saving is atomic: the version number is claimed by creating its (empty) directory, every
//! file is written and synced in a staging directory `.staging.<owner>.<version dir>` beside
//! it, and the staging directory is renamed onto the claim. A version directory is therefore
//! either empty (claimed, being written) or complete, never partial; a saver killed half-way
//! leaves only its own staging directory and empty claim, which [`ModelStore::clean_staging`]
//! of the same owner removes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use crate::compute::{Compute, OnBackend};
use crate::dataset::Dataset;
use crate::error::{Result, StrategyError};
use crate::features::{FeatureSpec, compute_features, feature_spec};
use crate::labels::Label;
use crate::model::{CLASSES, Mlp, MlpConfig};
use crate::strategy::{LoadedStrategy, StrategyConfig};
use crate::training::{
    EvaluationMetrics, TrainedModel, TrainingMetrics, argmax, evaluation_of, predict_probabilities,
};
use ktrdr_market::{Bars, Timeframe};

const WEIGHTS_STEM: &str = "model";

/// The files of a saved model version, as the original names them.
pub mod file {
    /// The weights (burn's named MessagePack recorder adds `.mpk` to the stem).
    pub const WEIGHTS: &str = "model.mpk";
    /// The strategy as trained and the network's shape.
    pub const CONFIG: &str = "config.json";
    /// Training metrics.
    pub const METRICS: &str = "metrics.json";
    /// The feature names and order the network reads.
    pub const FEATURES: &str = "features.json";
    /// The original's model metadata.
    pub const METADATA: &str = "metadata.json";
}
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
    /// Names this saver's staging directories, so that savers sharing the directory (several
    /// hosts on one volume) only ever clean up their own.
    owner: String,
}

/// The prefix of every staging directory (hidden: never a strategy or a version).
const STAGING_PREFIX: &str = ".staging.";

impl ModelStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            owner: "local".to_owned(),
        }
    }

    /// The store as saver `owner` (a plain name: letters, digits, `-`, `_`), e.g. one per host
    /// sharing the directory.
    pub fn owned_by(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// The directory of strategy `name`: `name` must be a safe directory name.
    fn strategy_dir(&self, name: &str) -> Result<PathBuf> {
        let name = ktrdr_market::path::safe_name(name).map_err(|why| {
            StrategyError::invalid("name", format!("{why} (it names the model directory)"))
        })?;
        ktrdr_market::path::join_under(&self.root, name).map_err(|why| io_error(&self.root, why))
    }

    fn staging_name(&self, dir_name: &str) -> String {
        format!("{STAGING_PREFIX}{}.{dir_name}", self.owner)
    }

    /// Removes what a save of this owner left when it was killed half-way: its staging
    /// directories and the empty version directories they had claimed. Returns the directories
    /// removed (the caller logs them). Other owners' staging directories are left alone: they
    /// may be saving right now.
    pub fn clean_staging(&self) -> Vec<PathBuf> {
        let mine = format!("{STAGING_PREFIX}{}.", self.owner);
        let mut removed = Vec::new();
        let Ok(strategies) = std::fs::read_dir(&self.root) else {
            return removed;
        };
        for strategy in strategies.flatten() {
            let Ok(entries) = std::fs::read_dir(strategy.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(claimed) = name.to_str().and_then(|n| n.strip_prefix(&mine)) else {
                    continue;
                };
                let staging = entry.path();
                if std::fs::remove_dir_all(&staging).is_ok() {
                    removed.push(staging);
                }
                // The claim, if the rename never happened: only ever an empty directory.
                let claim = strategy.path().join(claimed);
                if std::fs::remove_dir(&claim).is_ok() {
                    removed.push(claim);
                }
            }
        }
        removed
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
        self.save_with(strategy, trained, &[])
    }

    /// [`Self::save`] with `extra` files (name, content) written into the version with the
    /// model's own, so the version appears with all of them or not at all.
    pub fn save_with<B: Backend>(
        &self,
        strategy: &LoadedStrategy,
        trained: &TrainedModel<B>,
        extra: &[(&str, &[u8])],
    ) -> Result<PathBuf> {
        let strategy_dir = self.strategy_dir(&strategy.config.name)?;
        std::fs::create_dir_all(&strategy_dir).map_err(|e| io_error(&strategy_dir, e))?;
        let prefix = Self::prefix(strategy)?;
        let version_tag = format!("{prefix}_v");
        let first = next_version(&strategy_dir, &version_tag)?;
        let (next, dir) = create_version_dir(&strategy_dir, &version_tag, first)?;
        let dir_name = format!("{version_tag}{next}");
        let staging = strategy_dir.join(self.staging_name(&dir_name));
        let written = std::fs::create_dir(&staging)
            .map_err(|e| io_error(&staging, e))
            .and_then(|()| write_version(&staging, strategy, trained, next, extra))
            .and_then(|()| {
                // Onto the empty claim: atomic, and refused if the claim is not empty.
                std::fs::rename(&staging, &dir).map_err(|e| io_error(&dir, e))
            });
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&staging);
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
        sync_dir(&strategy_dir);

        // Write then rename: readers never see a half-written pointer. The staging file is
        // named after this version so that two savers (hosts sharing the directory) never write
        // the same one. An exclusive lock on a file beside the pointer serialises the
        // read-compare-write, so the pointer only ever moves to a newer version.
        let latest = strategy_dir.join(format!("{prefix}_latest"));
        let lock_path = strategy_dir.join(format!(".{prefix}_latest.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_error(&lock_path, e))?;
        lock.lock().map_err(|e| io_error(&lock_path, e))?;
        let pointed = std::fs::read_to_string(&latest).ok().and_then(|name| {
            name.trim()
                .strip_prefix(&version_tag)?
                .parse::<usize>()
                .ok()
        });
        // A newer version saved meanwhile (by another host) keeps the pointer: the pointer is
        // written only after a version is complete, so it never names an incomplete model.
        if pointed.is_none_or(|n| n < next) {
            let staging = strategy_dir.join(format!(".{dir_name}.latest.tmp"));
            std::fs::write(&staging, &dir_name).map_err(|e| io_error(&staging, e))?;
            std::fs::rename(&staging, &latest).map_err(|e| io_error(&latest, e))?;
        }
        drop(lock);
        Ok(dir)
    }

    /// The newest version's directory of `strategy_name` for `symbols` and base timeframe.
    pub fn latest(
        &self,
        strategy_name: &str,
        symbols: &[String],
        timeframe: Timeframe,
    ) -> Result<PathBuf> {
        let strategy_dir = self.strategy_dir(strategy_name)?;
        let pointer = strategy_dir.join(format!("{}_{timeframe}_latest", symbols.join("_")));
        let name = std::fs::read_to_string(&pointer).map_err(|e| io_error(&pointer, e))?;
        ktrdr_market::path::join_under(&strategy_dir, name.trim())
            .map_err(|why| io_error(&pointer, why))
    }
}

/// Writes every file of version `next` into `dir` (the staging directory) and syncs them.
fn write_version<B: Backend>(
    dir: &Path,
    strategy: &LoadedStrategy,
    trained: &TrainedModel<B>,
    next: usize,
    extra: &[(&str, &[u8])],
) -> Result<()> {
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
        &dir.join(file::CONFIG),
        &SavedConfig {
            strategy: strategy_config,
            network: trained.config.clone(),
        },
    )?;
    write_json(&dir.join(file::METRICS), &trained.metrics)?;
    let features = feature_spec(strategy)?;
    if features.fuzzy_features != trained.feature_names {
        return Err(StrategyError::data(
            "trained feature names differ from the strategy's".to_owned(),
        ));
    }
    write_json(&dir.join(file::FEATURES), &features)?;
    let created_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let m = &trained.metrics;
    write_json(
        &dir.join(file::METADATA),
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
    for (name, content) in extra {
        let path = ktrdr_market::path::join_under(dir, name).map_err(|why| io_error(dir, why))?;
        std::fs::write(&path, content).map_err(|e| io_error(&path, e))?;
    }
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let path = entry.map_err(|e| io_error(dir, e))?.path();
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(&path, e))?;
    }
    Ok(())
}

/// Makes renames in `dir` durable (best effort: not every file system can sync a directory).
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// One more than the highest `<version_tag><N>` in `strategy_dir` (1 when there is none).
fn next_version(strategy_dir: &Path, version_tag: &str) -> Result<usize> {
    let mut next = 1;
    for entry in std::fs::read_dir(strategy_dir).map_err(|e| io_error(strategy_dir, e))? {
        let name = entry.map_err(|e| io_error(strategy_dir, e))?.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix(version_tag))
            .and_then(|v| v.parse::<usize>().ok())
        {
            next = next.max(n + 1);
        }
    }
    Ok(next)
}

/// How many taken version numbers [`create_version_dir`] steps over before giving up.
const VERSION_ATTEMPTS: usize = 1_000;

/// Claims the version directory `<version_tag><N>` for the first free N from `first` on.
/// Several hosts may share the models directory and list it at the same moment; `create_dir`
/// is atomic (also on NFS), so exactly one of them gets each N and the others step to N+1.
fn create_version_dir(
    strategy_dir: &Path,
    version_tag: &str,
    first: usize,
) -> Result<(usize, PathBuf)> {
    for n in first..first.saturating_add(VERSION_ATTEMPTS) {
        let dir = strategy_dir.join(format!("{version_tag}{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((n, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&dir, e)),
        }
    }
    Err(io_error(
        strategy_dir,
        format!("no free version directory {version_tag}{first}..+{VERSION_ATTEMPTS}"),
    ))
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
        let config: SavedConfig = read_json(&dir.join(file::CONFIG))?;
        let features: FeatureSpec = read_json(&dir.join(file::FEATURES))?;
        let metrics: TrainingMetrics = read_json(&dir.join(file::METRICS))?;
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

/// A saved model loaded on a device chosen at run time ([`Compute`]): what [`SavedModel`]
/// holds, with the network's backend out of sight.
pub struct LoadedModel {
    pub dir: PathBuf,
    pub strategy: LoadedStrategy,
    pub network: MlpConfig,
    pub features: FeatureSpec,
    pub metrics: TrainingMetrics,
    network_on_device: Box<dyn Probabilities>,
}

/// Softmax probabilities of a network on its device, for rows of a dataset.
trait Probabilities: Send {
    fn of(&self, rows: &Dataset, network: &MlpConfig, batch_size: usize) -> Vec<[f32; CLASSES]>;
}

struct OnDevice<B: Backend> {
    model: Mlp<B>,
    device: B::Device,
}

impl<B: Backend> Probabilities for OnDevice<B> {
    fn of(&self, rows: &Dataset, network: &MlpConfig, batch_size: usize) -> Vec<[f32; CLASSES]> {
        predict_probabilities(&self.model, rows, network, &self.device, batch_size)
    }
}

/// Loads a saved model on the device a [`Compute`] runs.
struct Load<'p>(&'p Path);

impl OnBackend for Load<'_> {
    type Output = Result<LoadedModel>;
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<LoadedModel> {
        let saved = SavedModel::<B::InnerBackend>::load(self.0, device)?;
        Ok(LoadedModel {
            dir: saved.dir,
            strategy: saved.strategy,
            network: saved.network,
            features: saved.features,
            metrics: saved.metrics,
            network_on_device: Box::new(OnDevice {
                model: saved.model,
                device: saved.device,
            }),
        })
    }
}

impl LoadedModel {
    pub fn load(dir: impl AsRef<Path>, compute: &Compute) -> Result<Self> {
        compute.run(Load(dir.as_ref()))?
    }

    /// As [`SavedModel::predict`].
    pub fn predict(
        &self,
        symbol: &str,
        bars: &BTreeMap<Timeframe, Bars>,
    ) -> Result<Vec<Prediction>> {
        predict_rows(&self.strategy, &self.network, symbol, bars, |rows| {
            self.network_on_device
                .of(rows, &self.network, PREDICT_BATCH)
        })
    }

    /// The model's metrics on `rows` ([`crate::training::evaluate`]).
    pub fn evaluate(&self, rows: &Dataset, batch_size: usize) -> EvaluationMetrics {
        evaluation_of(
            &self.network_on_device.of(rows, &self.network, batch_size),
            rows,
        )
    }
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("dir", &self.dir)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// Rows per forward pass when predicting.
const PREDICT_BATCH: usize = 1024;

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
    predict_rows(strategy, network, symbol, bars, |rows| {
        predict_probabilities(model, rows, network, device, PREDICT_BATCH)
    })
}

/// [`predict_bars`] with the network's probabilities given by `probabilities`.
fn predict_rows(
    strategy: &LoadedStrategy,
    network: &MlpConfig,
    symbol: &str,
    bars: &BTreeMap<Timeframe, Bars>,
    probabilities: impl FnOnce(&Dataset) -> Vec<[f32; CLASSES]>,
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
    let probabilities = probabilities(&rows);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_taken_since_the_listing_is_stepped_over() {
        let dir = tempfile::tempdir().unwrap();
        let tag = "AAPL_1h_v";
        assert_eq!(next_version(dir.path(), tag).unwrap(), 1);
        let (n, path) = create_version_dir(dir.path(), tag, 1).unwrap();
        assert_eq!((n, path.clone()), (1, dir.path().join("AAPL_1h_v1")));
        // Another host created v2 and v3 after this one listed the directory (seeing v1 only).
        for taken in ["AAPL_1h_v2", "AAPL_1h_v3"] {
            std::fs::create_dir(dir.path().join(taken)).unwrap();
        }
        let (n, path) = create_version_dir(dir.path(), tag, 2).unwrap();
        assert_eq!((n, path), (4, dir.path().join("AAPL_1h_v4")));
        // Other prefixes and stray files do not count.
        std::fs::create_dir(dir.path().join("AAPL_4h_v9")).unwrap();
        std::fs::write(dir.path().join("AAPL_1h_latest"), "AAPL_1h_v4").unwrap();
        assert_eq!(next_version(dir.path(), tag).unwrap(), 5);
    }

    #[test]
    fn a_file_in_the_way_is_an_error_not_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        assert!(matches!(
            create_version_dir(&missing, "X_1h_v", 1),
            Err(StrategyError::Io { .. })
        ));
    }

    /// Many savers that all listed the directory before any of them created a version (the
    /// worst case for hosts sharing it) still get distinct versions, 1..=n.
    #[test]
    fn concurrent_savers_get_distinct_versions() {
        let dir = tempfile::tempdir().unwrap();
        let savers = 8;
        let listed = std::sync::Barrier::new(savers);
        let mut got: Vec<usize> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..savers)
                .map(|_| {
                    scope.spawn(|| {
                        let first = next_version(dir.path(), "M_1d_v").unwrap();
                        listed.wait();
                        create_version_dir(dir.path(), "M_1d_v", first).unwrap().0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        got.sort_unstable();
        assert_eq!(got, (1..=savers).collect::<Vec<_>>());
    }
}
