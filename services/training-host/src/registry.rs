//! The model registry on disk (`models/<strategy>/<SYMBOLS>_<tf>_v<N>/`, written by
//! ktrdr-strategy's `ModelStore`), and evaluation / prediction with a saved model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ktrdr_market::{Bars, Timeframe};
use ktrdr_strategy::LoadedStrategy;
use ktrdr_strategy::artifacts::{ModelMetadata, SavedConfig, SavedModel};
use ktrdr_strategy::dataset::{Dataset, SymbolBars, build_datasets};
use ktrdr_strategy::features::{compute_features, warmup_bars};
use ktrdr_strategy::labels::segment_labels;
use ktrdr_strategy::model::CpuBackend;
use ktrdr_strategy::training::{TrainingMetrics, evaluate};

use crate::error::{Result, TrainingError};
use crate::record::Metrics;
use crate::runner::{
    ModelSession, SESSION_SIDECAR, evaluation_metrics, final_metrics, model_id_of,
};

/// One model as listed.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub model_id: String,
    pub dir: PathBuf,
    pub version: u32,
    pub metadata: ModelMetadata,
    pub metrics: Option<Metrics>,
    pub session: Option<ModelSession>,
    pub feature_names: Vec<String>,
    pub parameters: u64,
    pub size_bytes: u64,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn entry(models_dir: &Path, dir: &Path) -> Option<ModelEntry> {
    let metadata: ModelMetadata = read_json(&dir.join("metadata.json"))?;
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let version = name.rsplit_once("_v")?.1.parse().ok()?;
    let session: Option<ModelSession> = read_json(&dir.join(SESSION_SIDECAR));
    let training: Option<TrainingMetrics> = read_json(&dir.join("metrics.json"));
    let samples = session.as_ref().map_or([0; 3], |s| {
        [
            s.train_samples as usize,
            s.val_samples as usize,
            s.test_samples as usize,
        ]
    });
    let time = session.as_ref().map_or(0, |s| s.training_time_ms);
    let features: Option<ktrdr_strategy::features::FeatureSpec> =
        read_json(&dir.join("features.json"));
    Some(ModelEntry {
        model_id: model_id_of(models_dir, dir),
        dir: dir.to_owned(),
        version,
        parameters: training
            .as_ref()
            .map_or(0, |m| m.model_info.parameters as u64),
        metrics: training.as_ref().map(|m| final_metrics(m, samples, time)),
        session,
        feature_names: features.map(|f| f.fuzzy_features).unwrap_or_default(),
        size_bytes: dir_size(dir),
        metadata,
    })
}

/// Every model under `models_dir`, newest first.
pub fn list(models_dir: &Path) -> Vec<ModelEntry> {
    let mut out = Vec::new();
    let Ok(strategies) = std::fs::read_dir(models_dir) else {
        return out;
    };
    for strategy in strategies.flatten() {
        let name = strategy.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(['_', '.']) || !strategy.path().is_dir() {
            continue;
        }
        let Ok(versions) = std::fs::read_dir(strategy.path()) else {
            continue;
        };
        for version in versions.flatten() {
            if version.path().is_dir()
                && let Some(e) = entry(models_dir, &version.path())
            {
                out.push(e);
            }
        }
    }
    out.sort_by(|a, b| {
        b.metadata
            .created_at_ms
            .cmp(&a.metadata.created_at_ms)
            .then_with(|| b.model_id.cmp(&a.model_id))
    });
    out
}

/// How many models the registry holds (directories with a `metadata.json`), without reading
/// them: GetStatus is polled and must stay cheap.
pub fn count(models_dir: &Path) -> usize {
    let Ok(strategies) = std::fs::read_dir(models_dir) else {
        return 0;
    };
    strategies
        .flatten()
        .filter(|s| !s.file_name().to_string_lossy().starts_with(['_', '.']))
        .filter_map(|s| std::fs::read_dir(s.path()).ok())
        .flat_map(|versions| versions.flatten())
        .filter(|v| v.path().join("metadata.json").is_file())
        .count()
}

/// The model `model_id` ("<strategy>/<dir>"); ids cannot climb out of the models directory.
pub fn get(models_dir: &Path, model_id: &str) -> Result<ModelEntry> {
    let id = model_id.trim();
    let parts: Vec<&str> = id.split('/').collect();
    let valid = parts.len() == 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && !p.starts_with(['.', '_']) && !p.contains('\\'));
    if !valid {
        return Err(TrainingError::invalid(
            "model_id",
            format!("{model_id:?} is not a model id (\"<strategy>/<SYMBOLS>_<tf>_v<N>\")"),
        ));
    }
    entry(models_dir, &models_dir.join(id))
        .ok_or_else(|| TrainingError::ModelNotFound(id.to_owned()))
}

/// What EvaluateModel computes: metrics on `bars` with the saved model. `test_split_only`:
/// rebuild the training split and score its test part (the model's own test metrics);
/// otherwise label and score every base bar from `from_ms` on (earlier bars are warm-up).
pub fn evaluate_model(
    dir: &Path,
    bars: &[SymbolBars],
    test_split_only: bool,
    from_ms: i64,
) -> Result<Metrics> {
    let device = Default::default();
    let saved = SavedModel::<CpuBackend>::load(dir, &device)?;
    let batch = saved.strategy.config.model.training.batch_size.max(1);
    let rows = if test_split_only {
        build_datasets(&saved.strategy, bars)?.test
    } else {
        labelled_rows(&saved, bars, from_ms)?
    };
    if rows.is_empty() {
        return Err(TrainingError::invalid(
            "range",
            "no bar in the range has complete features and a label; widen the range",
        ));
    }
    let metrics = evaluate(&saved.model, &rows, &saved.network, &device, batch);
    Ok(evaluation_metrics(&metrics))
}

/// Every labelled row with complete features from `from_ms` on, all symbols joined. Labels are
/// computed on the bars from `from_ms` only, so warm-up prices do not shape them.
fn labelled_rows(
    saved: &SavedModel<CpuBackend>,
    bars: &[SymbolBars],
    from_ms: i64,
) -> Result<Dataset> {
    let threshold = saved.strategy.config.training.labels.zigzag_threshold;
    let base_tf = saved.features.base_timeframe;
    let mut out = Dataset {
        feature_count: saved.features.feature_count,
        ..Dataset::default()
    };
    for symbol_bars in bars {
        let symbol_index = if saved.network.uses_embedding() {
            saved
                .network
                .symbols
                .iter()
                .position(|s| *s == symbol_bars.symbol)
                .ok_or_else(|| {
                    TrainingError::invalid(
                        "symbols",
                        format!(
                            "this model embeds its training symbols ({}) and cannot score {}",
                            saved.network.symbols.join(", "),
                            symbol_bars.symbol
                        ),
                    )
                })? as u32
        } else {
            0
        };
        let features = compute_features(&saved.strategy, &symbol_bars.bars)?;
        let Some(base) = symbol_bars.bars.get(&base_tf) else {
            continue;
        };
        let first = base.timestamp_ms.partition_point(|&t| t < from_ms);
        for (offset, label) in segment_labels(&base.close[first..], threshold)
            .into_iter()
            .enumerate()
        {
            let i = first + offset;
            if let Some(label) = label
                && i < features.rows()
                && features.row_is_complete(i)
            {
                out.x.extend(features.row_f32(i));
                out.y.push(label);
                out.symbol_index.push(symbol_index);
                out.timestamp_ms.push(features.timestamp_ms[i]);
            }
        }
    }
    Ok(out)
}

/// The warm-up bars per timeframe of the model in `dir`
/// ([`ktrdr_strategy::features::warmup_bars`]), from its `config.json`.
pub fn warmup_of(dir: &Path) -> Result<BTreeMap<Timeframe, usize>> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| TrainingError::internal(format!("{}: {e}", path.display())))?;
    let config: SavedConfig = serde_json::from_str(&text)
        .map_err(|e| TrainingError::internal(format!("{}: {e}", path.display())))?;
    let strategy = LoadedStrategy::from_config(config.strategy)?;
    Ok(warmup_bars(&strategy)?)
}

/// Fills timeframes the caller did not provide by resampling the base bars.
pub fn complete_timeframes(
    bars: &mut BTreeMap<Timeframe, Bars>,
    timeframes: &[Timeframe],
) -> Result<()> {
    let Some(&base_tf) = timeframes.iter().min() else {
        return Ok(());
    };
    let Some(base) = bars.get(&base_tf).cloned() else {
        return Err(TrainingError::invalid(
            "bars",
            format!("the base timeframe {base_tf} is required"),
        ));
    };
    for &tf in timeframes {
        if let std::collections::btree_map::Entry::Vacant(slot) = bars.entry(tf) {
            slot.insert(base.resample(tf)?);
        }
    }
    Ok(())
}
