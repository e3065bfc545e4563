//! The model registry on disk (`models/<strategy>/<SYMBOLS>_<tf>_v<N>/`, written by
//! ktrdr-strategy's `ModelStore`), and evaluation / prediction with a saved model.
//!
//! Invariants: a version is listed, counted and served only when it is complete (its
//! `metadata.json` and `strategy.yaml`, the files a save writes first and last); every path is
//! built with [`join_under`] from validated names, so no model id reaches outside the models
//! directory; [`clean_unfinished`] removes at start what a killed save left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ktrdr_market::path::{join_under, safe_name};
use ktrdr_market::{Bars, Timeframe};
use ktrdr_strategy::LoadedStrategy;
use ktrdr_strategy::artifacts::{LoadedModel, ModelMetadata, ModelStore, SavedConfig, file};
use ktrdr_strategy::compute::Compute;
use ktrdr_strategy::dataset::{Dataset, SymbolBars, build_datasets};
use ktrdr_strategy::features::{compute_features, warmup_bars};
use ktrdr_strategy::labels::segment_labels;
use ktrdr_strategy::training::TrainingMetrics;

use crate::error::{Result, TrainingError};
use crate::record::Metrics;
use crate::runner::{
    ModelSession, SESSION_SIDECAR, STRATEGY_FILE, evaluation_metrics, final_metrics, model_id_of,
};

/// Whether the version directory `dir` holds a complete model.
fn is_complete(dir: &Path) -> bool {
    dir.join(file::METADATA).is_file() && dir.join(STRATEGY_FILE).is_file()
}

/// Removes, and logs one line each, what saves killed half-way left in `models_dir`: this
/// host's staging directories and empty version claims (`owner`, see [`crate::runner::staging_owner`]), and
/// version directories that hold files but are not complete (left by an older, non-atomic
/// save; an atomic save never leaves one). Other hosts' staging directories stay: they may be
/// saving now.
pub fn clean_unfinished(models_dir: &Path, owner: &str) {
    for removed in ModelStore::new(models_dir).owned_by(owner).clean_staging() {
        tracing::warn!(path = %removed.display(), "removed what an interrupted model save left");
    }
    for (_, versions) in strategy_dirs(models_dir) {
        for version in versions {
            let dir = version.path();
            let name = version.file_name();
            // Staging directories (hidden) are not versions, whatever their name ends with.
            let is_version = name
                .to_str()
                .filter(|n| safe_name(n).is_ok())
                .and_then(|n| n.rsplit_once("_v"))
                .is_some_and(|(_, n)| n.parse::<u32>().is_ok());
            let holds_files = std::fs::read_dir(&dir).is_ok_and(|mut e| e.next().is_some());
            if is_version && holds_files && !is_complete(&dir) {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => tracing::warn!(
                        path = %dir.display(),
                        "removed an incomplete model version (no {} or {STRATEGY_FILE})",
                        file::METADATA
                    ),
                    Err(e) => tracing::warn!(
                        path = %dir.display(),
                        error = %e,
                        "cannot remove an incomplete model version"
                    ),
                }
            }
        }
    }
}

/// Each strategy directory of `models_dir` (hidden and internal ones, `.x` and `_x`, skipped)
/// with its entries.
fn strategy_dirs(models_dir: &Path) -> Vec<(PathBuf, Vec<std::fs::DirEntry>)> {
    let Ok(strategies) = std::fs::read_dir(models_dir) else {
        return Vec::new();
    };
    strategies
        .flatten()
        .filter(|s| {
            s.file_name()
                .to_str()
                .is_some_and(|name| safe_name(name).is_ok())
        })
        .filter_map(|s| {
            let versions = std::fs::read_dir(s.path()).ok()?;
            Some((s.path(), versions.flatten().collect()))
        })
        .collect()
}

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
    if !is_complete(dir) {
        return None;
    }
    let metadata: ModelMetadata = read_json(&dir.join(file::METADATA))?;
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let version = name.rsplit_once("_v")?.1.parse().ok()?;
    let session: Option<ModelSession> = read_json(&dir.join(SESSION_SIDECAR));
    let training: Option<TrainingMetrics> = read_json(&dir.join(file::METRICS));
    let samples = session.as_ref().map_or([0; 3], |s| {
        [
            s.train_samples as usize,
            s.val_samples as usize,
            s.test_samples as usize,
        ]
    });
    let time = session.as_ref().map_or(0, |s| s.training_time_ms);
    let features: Option<ktrdr_strategy::features::FeatureSpec> =
        read_json(&dir.join(file::FEATURES));
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

/// The file naming the volume of a models directory.
const VOLUME_FILE: &str = "_volume";

/// The id of the storage `models_dir` is on, from its `_volume` file; the first host to ask
/// creates it. Hosts that share the directory read the same id; a file written next to it and
/// linked into place means two hosts starting at once agree on one.
pub fn volume_id(models_dir: &Path) -> std::io::Result<String> {
    let path = models_dir.join(VOLUME_FILE);
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_owned());
    }
    std::fs::create_dir_all(models_dir)?;
    let id = format!("{:016x}", crate::spec::random_u64());
    let staged = models_dir.join(format!(".{VOLUME_FILE}-{id}"));
    std::fs::write(&staged, &id)?;
    let linked = std::fs::hard_link(&staged, &path);
    let _ = std::fs::remove_file(&staged);
    let created = match linked {
        // A filesystem without hard links: create the file in place instead (a host reading
        // it between its creation and the write sees it empty and reports no volume id).
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, id.as_bytes())),
        other => other,
    };
    match created {
        Ok(()) => Ok(id),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().to_owned())
        }
        Err(e) => Err(e),
    }
}

/// Every model under `models_dir`, newest first.
pub fn list(models_dir: &Path) -> Vec<ModelEntry> {
    let mut out: Vec<ModelEntry> = strategy_dirs(models_dir)
        .into_iter()
        .flat_map(|(_, versions)| versions)
        .filter_map(|version| entry(models_dir, &version.path()))
        .collect();
    out.sort_by(|a, b| {
        b.metadata
            .created_at_ms
            .cmp(&a.metadata.created_at_ms)
            .then_with(|| b.model_id.cmp(&a.model_id))
    });
    out
}

/// How many complete models the registry holds, without reading them: GetStatus is polled and
/// must stay cheap.
pub fn count(models_dir: &Path) -> usize {
    strategy_dirs(models_dir)
        .into_iter()
        .flat_map(|(_, versions)| versions)
        .filter(|v| is_complete(&v.path()))
        .count()
}

/// The model `model_id` (`"<strategy>/<dir>"`, both safe names); ids cannot climb out of the
/// models directory.
pub fn get(models_dir: &Path, model_id: &str) -> Result<ModelEntry> {
    let id = model_id.trim();
    let dir = match id.split_once('/') {
        Some((strategy, version)) if safe_name(strategy).is_ok() && safe_name(version).is_ok() => {
            join_under(models_dir, id).ok()
        }
        _ => None,
    };
    let Some(dir) = dir else {
        return Err(TrainingError::invalid(
            "model_id",
            format!(
                "{} is not a model id (\"<strategy>/<SYMBOLS>_<tf>_v<N>\")",
                ktrdr_market::symbol::shown(model_id)
            ),
        ));
    };
    entry(models_dir, &dir).ok_or_else(|| TrainingError::ModelNotFound(id.to_owned()))
}

/// What EvaluateModel computes: metrics on `bars` with the saved model. `test_split_only`:
/// rebuild the training split and score its test part (the model's own test metrics);
/// otherwise label and score every base bar from `from_ms` on (earlier bars are warm-up).
pub fn evaluate_model(
    dir: &Path,
    bars: &[SymbolBars],
    test_split_only: bool,
    from_ms: i64,
    compute: &Compute,
) -> Result<Metrics> {
    let saved = LoadedModel::load(dir, compute)?;
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
    let metrics = saved.evaluate(&rows, batch);
    Ok(evaluation_metrics(&metrics))
}

/// Every labelled row with complete features from `from_ms` on, all symbols joined. Labels are
/// computed on the bars from `from_ms` only, so warm-up prices do not shape them.
fn labelled_rows(saved: &LoadedModel, bars: &[SymbolBars], from_ms: i64) -> Result<Dataset> {
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
    let path = dir.join(file::CONFIG);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::runner::staging_owner;

    #[test]
    fn hosts_sharing_a_models_directory_read_one_volume_id_and_others_differ() {
        let shared = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let first = volume_id(shared.path()).unwrap();
        assert_eq!(first.len(), 16);
        assert_eq!(volume_id(shared.path()).unwrap(), first);
        assert_ne!(volume_id(other.path()).unwrap(), first);
        assert_eq!(count(shared.path()), 0, "the id file is not a model");
        let left: Vec<_> = std::fs::read_dir(shared.path())
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(left.len(), 1, "no staged id file is left behind");
    }

    /// A version directory holding `files` (empty content), under `models/<strategy>/`.
    fn version(models: &Path, strategy: &str, name: &str, files: &[&str]) -> PathBuf {
        let dir = models.join(strategy).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for file in files {
            std::fs::write(dir.join(file), "").unwrap();
        }
        dir
    }

    #[test]
    fn incomplete_versions_are_not_counted_and_are_removed_at_start_but_claims_of_others_stay() {
        let models = tempfile::tempdir().unwrap();
        let root = models.path();
        let complete = version(root, "s", "EURUSD_1h_v1", &[file::METADATA, STRATEGY_FILE]);
        let partial = version(root, "s", "EURUSD_1h_v2", &[file::METADATA, file::WEIGHTS]);
        // Another host's save in progress: its empty claim and its staging directory.
        let claim = version(root, "s", "EURUSD_1h_v3", &[]);
        let staging = version(root, "s", ".staging.other.EURUSD_1h_v3", &[file::WEIGHTS]);
        // This host's save killed half-way.
        let owner = staging_owner(Path::new("/sessions/host-a"));
        let mine = version(
            root,
            "s",
            &format!(".staging.{owner}.EURUSD_1h_v4"),
            &[file::WEIGHTS],
        );
        let my_claim = version(root, "s", "EURUSD_1h_v4", &[]);
        assert_eq!(count(root), 1);
        assert!(
            entry(root, &partial).is_none(),
            "a partial version is not served"
        );

        clean_unfinished(root, &owner);

        assert!(complete.is_dir());
        assert!(!partial.exists());
        assert!(!mine.exists() && !my_claim.exists());
        assert!(
            claim.is_dir() && staging.is_dir(),
            "another host's save is left alone"
        );
        assert_eq!(count(root), 1);
    }

    #[test]
    fn staging_owners_differ_per_sessions_dir_and_are_stable() {
        let a = staging_owner(Path::new("/models/_sessions/host-0"));
        assert_eq!(a, staging_owner(Path::new("/models/_sessions/host-0")));
        assert_ne!(a, staging_owner(Path::new("/models/_sessions/host-1")));
        assert!(ktrdr_market::path::safe_name(&a).is_ok());
    }

    #[test]
    fn model_ids_that_would_leave_the_models_dir_are_invalid_arguments() {
        let models = tempfile::tempdir().unwrap();
        for bad in [
            "/EURUSD_1h_v1",
            "../x/EURUSD_1h_v1",
            "_sessions/x",
            ".hidden/EURUSD_1h_v1",
            "s/..",
            "s",
            "a/b/c",
        ] {
            assert!(
                matches!(
                    get(models.path(), bad),
                    Err(TrainingError::InvalidArgument { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            get(models.path(), "s/EURUSD_1h_v9"),
            Err(TrainingError::ModelNotFound(_))
        ));
    }
}
