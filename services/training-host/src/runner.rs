//! The blocking part of a session: features, labels, training and saving, run on its own OS
//! thread so the async runtime (health, status, watch calls) never waits on it. Training and
//! saving run on the device the session was placed on, through one generic path
//! ([`ktrdr_strategy::compute::Compute::run`]); everything else here is backend-free.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burn::tensor::backend::AutodiffBackend;
use ktrdr_strategy::artifacts::ModelStore;
use ktrdr_strategy::compute::{Compute, OnBackend};
use ktrdr_strategy::dataset::{SplitDatasets, SymbolBars, build_datasets};
use ktrdr_strategy::training::{Progress, SaveWeights, TrainControl, TrainingMetrics, train};
use ktrdr_strategy::{LoadedStrategy, StrategyError};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainingError};
use crate::persist::SessionStore;
use crate::record::{BatchEvent, EpochEvent, EventKind, Metrics, SplitReport, State};
use crate::session::Session;

/// Where a session's checkpoints live, inside the sessions directory: a checkpoint is only of
/// use with its session record (resume goes through the session id), so they stay together on
/// the host that owns both.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// Where checkpoints lived before `KTRDR_SESSIONS_DIR`: `<models>/_checkpoints`.
const LEGACY_CHECKPOINTS_DIR: &str = "_checkpoints";

/// `<root>/<session_id>/checkpoint`, refused unless the session id is a plain name.
fn checkpoint_under(root: &Path, session_id: &str) -> Result<PathBuf> {
    ktrdr_market::path::join_under(root, session_id)
        .map(|dir| dir.join("checkpoint"))
        .map_err(|why| TrainingError::internal(format!("session id {why}")))
}

/// The latest checkpoint of `session_id`, without the `.mpk` extension burn adds.
pub fn checkpoint_stem(sessions_dir: &Path, session_id: &str) -> Result<PathBuf> {
    checkpoint_under(&sessions_dir.join(CHECKPOINTS_DIR), session_id)
}

/// The checkpoint to resume `session_id` from: its own, or one an earlier version of the host
/// left under `<models>/_checkpoints` (so an upgrade does not lose interrupted sessions'
/// progress).
pub fn existing_checkpoint_stem(
    sessions_dir: &Path,
    models_dir: &Path,
    session_id: &str,
) -> Result<PathBuf> {
    let stem = checkpoint_stem(sessions_dir, session_id)?;
    let legacy = checkpoint_under(&models_dir.join(LEGACY_CHECKPOINTS_DIR), session_id)?;
    Ok(
        if !stem.with_extension("epoch").is_file() && legacy.with_extension("epoch").is_file() {
            legacy
        } else {
            stem
        },
    )
}

/// Batch progress events at most this often.
const BATCH_EVENT_INTERVAL: Duration = Duration::from_millis(250);

/// Our sidecar in each model directory (a [`ModelSession`]).
pub const SESSION_SIDECAR: &str = "session.json";

/// The strategy as the user wrote it, in each model directory; written with the rest of the
/// version, and the file that marks a version written by an older, non-atomic save complete.
pub const STRATEGY_FILE: &str = "strategy.yaml";

/// The name that marks this host's staging directories in a shared models directory: a hash
/// of its own sessions directory (one per host), so a host only ever cleans up its own.
pub fn staging_owner(sessions_dir: &Path) -> String {
    // FNV-1a: stable across builds, unlike the standard library's hasher.
    let hash = sessions_dir
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// `<strategy>/<version dir>` of a model directory under `models_dir`.
pub fn model_id_of(models_dir: &Path, dir: &Path) -> String {
    dir.strip_prefix(models_dir)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_else(|_| dir.display().to_string())
}

/// `session.json` next to a saved model: what the registry needs that ktrdr-strategy's
/// sidecars do not hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSession {
    pub session_id: String,
    pub device: String,
    pub labels: BTreeMap<String, String>,
    /// The requested range (open sides as `i64::MIN`/`MAX`): EvaluateModel re-reads it to
    /// rebuild the exact test split.
    pub start_ms: i64,
    pub end_ms: i64,
    /// The base bars actually loaded.
    pub loaded_first_ms: i64,
    pub loaded_end_ms: i64,
    pub seed: u64,
    pub train_samples: u64,
    pub val_samples: u64,
    pub test_samples: u64,
    pub training_time_ms: i64,
    /// The bars the model was fitted on (train and validation rows): first row's open time to
    /// the last row's close. Backtests that overlap it are refused unless told otherwise.
    #[serde(default)]
    pub fit_start_ms: Option<i64>,
    #[serde(default)]
    pub fit_end_ms: Option<i64>,
}

impl ModelSession {
    /// The bars the model was fitted on, `[start, end)`; models saved without the record fall
    /// back to every bar their session loaded.
    pub fn fit_range(&self) -> (i64, i64) {
        match (self.fit_start_ms, self.fit_end_ms) {
            (Some(start), Some(end)) => (start, end),
            _ => (self.loaded_first_ms, self.loaded_end_ms),
        }
    }
}

/// First open time and last close time of the train and validation rows.
fn fit_range(sets: &SplitDatasets, bar_ms: i64) -> (Option<i64>, Option<i64>) {
    let times = sets
        .train
        .timestamp_ms
        .iter()
        .chain(&sets.validation.timestamp_ms);
    let first = times.clone().min().copied();
    let last = times.max().map(|t| t.saturating_add(bar_ms));
    (first, last)
}

/// Everything the training thread needs.
pub struct Job<'a> {
    pub session: &'a Session,
    pub store: &'a SessionStore,
    pub models_dir: &'a Path,
    /// Checkpoints go under `<sessions_dir>/checkpoints/<id>/`.
    pub sessions_dir: &'a Path,
    /// Serialises this host's model saves (version numbers are claimed atomically anyway).
    pub save_lock: &'a Mutex<()>,
    pub strategy: LoadedStrategy,
    pub bars: Vec<SymbolBars>,
    /// The device the session was placed on.
    pub compute: Compute,
}

/// Saves a trained model (still on its device) into a model store with extra files.
pub type SaveModel<'a> =
    Box<dyn FnOnce(&ModelStore, &[(&str, &[u8])]) -> ktrdr_strategy::Result<PathBuf> + 'a>;

/// Training on one device: its metrics, and how to save the model it made.
pub struct Fit<'a> {
    pub strategy: &'a LoadedStrategy,
    pub sets: &'a SplitDatasets,
    pub control: TrainControl<'a>,
}

impl<'a> OnBackend for Fit<'a> {
    type Output = ktrdr_strategy::Result<(TrainingMetrics, SaveModel<'a>)>;

    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Self::Output {
        let trained = train::<B>(self.strategy, self.sets, device, self.control)?;
        let metrics = trained.metrics.clone();
        let strategy = self.strategy;
        let save: SaveModel<'a> =
            Box::new(move |store, extra| store.save_with(strategy, &trained, extra));
        Ok((metrics, save))
    }
}

impl Job<'_> {
    pub fn run(self) -> Result<()> {
        let Job {
            session,
            store,
            models_dir,
            sessions_dir,
            save_lock,
            strategy,
            bars,
            compute,
        } = self;
        let sets = build_datasets(&strategy, &bars)?;
        drop(bars);
        let (fit_start_ms, fit_end_ms) = fit_range(
            &sets,
            strategy.base_timeframe().map_or(0, |tf| tf.duration_ms()),
        );
        if session.cancel_requested() {
            return Err(StrategyError::Cancelled.into());
        }
        let report = split_report(&sets);
        for warning in &report.warnings {
            tracing::warn!(session = %session.id, "{warning}");
        }
        session.emit(EventKind::DataSplit(report), store);
        session.emit(
            EventKind::StateChanged {
                from: Some(State::LoadingData),
                to: State::Running,
                reason: format!(
                    "{} features; rows train {} / validation {} / test {}",
                    sets.feature_names.len(),
                    sets.train.len(),
                    sets.validation.len(),
                    sets.test.len()
                ),
            },
            store,
        );
        let record = session.record();
        let hp = &strategy.config.model.training;
        let total_epochs = hp.epochs.max(1);
        let total_batches = sets.train.len().div_ceil(hp.batch_size.max(1)).max(1);
        let monitor_accuracy = hp
            .early_stopping
            .as_ref()
            .is_some_and(|e| e.enabled && e.monitor == "val_accuracy");
        let started = Instant::now();
        let mut last_batch_event: Option<Instant> = None;
        let (mut epoch_loss_sum, mut prev_seen) = (0.0, 0usize);
        let mut best: Option<(u32, f64)> = None;
        let percent_of = |epoch: usize, batch: usize| {
            ((epoch - 1) * total_batches + batch) as f64 / (total_epochs * total_batches) as f64
                * 100.0
        };
        let eta = |percent: f64, elapsed: Duration| {
            (percent > 0.0)
                .then(|| (elapsed.as_millis() as f64 * (100.0 - percent) / percent) as i64)
        };
        let mut on_progress = |p: &Progress| match p {
            Progress::Batch {
                epoch,
                total_epochs,
                batch,
                total_batches_per_epoch,
                loss,
                samples_processed,
            } => {
                if *batch == 1 {
                    (epoch_loss_sum, prev_seen) = (0.0, 0);
                }
                epoch_loss_sum += loss * (samples_processed - prev_seen) as f64;
                prev_seen = *samples_processed;
                let now = Instant::now();
                if last_batch_event.is_some_and(|t| now - t < BATCH_EVENT_INTERVAL) {
                    return;
                }
                last_batch_event = Some(now);
                let elapsed = started.elapsed();
                let percent = percent_of(*epoch, *batch);
                session.emit(
                    EventKind::Batch(BatchEvent {
                        epoch: *epoch as u32,
                        total_epochs: *total_epochs as u32,
                        batch: *batch as u32,
                        total_batches: *total_batches_per_epoch as u32,
                        percent,
                        loss: epoch_loss_sum / (*samples_processed).max(1) as f64,
                        // The pipeline reports loss per batch, not accuracy; the epoch event
                        // carries the epoch's accuracy.
                        accuracy: 0.0,
                        eta_ms: eta(percent, elapsed),
                        samples_per_second: samples_processed_total(
                            *epoch,
                            *samples_processed,
                            sets.train.len(),
                        ) / elapsed.as_secs_f64().max(1e-9),
                    }),
                    store,
                );
            }
            Progress::Epoch(m) => {
                let score = if monitor_accuracy {
                    m.val_accuracy
                } else {
                    -m.val_loss
                };
                let improved = best.is_none_or(|(_, s)| score > s);
                if improved {
                    best = Some((m.epoch as u32, score));
                }
                let elapsed = started.elapsed();
                let percent = percent_of(m.epoch, total_batches);
                session.emit(
                    EventKind::Epoch(EpochEvent {
                        epoch: m.epoch as u32,
                        total_epochs: m.total_epochs as u32,
                        total_batches: total_batches as u32,
                        percent,
                        eta_ms: eta(percent, elapsed),
                        train_loss: m.train_loss,
                        train_accuracy: m.train_accuracy,
                        val_loss: m.val_loss,
                        val_accuracy: m.val_accuracy,
                        learning_rate: m.learning_rate,
                        samples_per_second: (m.epoch * sets.train.len()) as f64
                            / elapsed.as_secs_f64().max(1e-9),
                        elapsed_ms: elapsed.as_millis() as i64,
                        improved,
                        best_epoch: best.map_or(0, |(e, _)| e),
                    }),
                    store,
                );
            }
        };
        // Each epoch's weights replace the previous checkpoint (written beside it, then
        // renamed), so a cancelled or interrupted session can be resumed.
        let stem = checkpoint_stem(sessions_dir, &session.id)?;
        let mut on_checkpoint =
            |epoch: usize, save: SaveWeights<'_>| -> ktrdr_strategy::Result<()> {
                let io = |e: std::io::Error| StrategyError::Io {
                    path: stem.display().to_string(),
                    message: e.to_string(),
                };
                if let Some(dir) = stem.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let staging = stem.with_file_name("staging");
                save(&staging)?;
                std::fs::rename(staging.with_extension("mpk"), stem.with_extension("mpk"))
                    .map_err(io)?;
                // The epoch beside the weights: the session file may lag behind (it is written
                // at most once a second during training).
                std::fs::write(stem.with_extension("epoch"), epoch.to_string()).map_err(io)?;
                session.emit(
                    EventKind::CheckpointSaved {
                        epoch: epoch as u32,
                        path: stem.with_extension("mpk").display().to_string(),
                    },
                    store,
                );
                Ok(())
            };
        let resume = record
            .spec
            .resume_checkpoint
            .as_ref()
            .map(|(path, epoch)| (PathBuf::from(path), *epoch as usize));
        if let Some((_, epoch)) = &resume {
            session.emit(
                EventKind::Log {
                    level: "info".to_owned(),
                    message: format!("resuming from the checkpoint of epoch {epoch}"),
                },
                store,
            );
        }
        let (trained_metrics, save) = compute.run(Fit {
            strategy: &strategy,
            sets: &sets,
            control: TrainControl {
                seed: record.spec.seed,
                batches: compute.batches(),
                cancel: Some(session.cancel_flag()),
                progress: Some(&mut on_progress),
                checkpoint: Some(&mut on_checkpoint),
                resume,
            },
        })??;
        let training_time_ms = started.elapsed().as_millis() as i64;
        let metrics = final_metrics(
            &trained_metrics,
            [sets.train.len(), sets.validation.len(), sets.test.len()],
            training_time_ms,
        );
        let sidecar = ModelSession {
            session_id: session.id.clone(),
            device: compute.id(),
            labels: record.spec.labels.clone(),
            start_ms: record.spec.start_ms,
            end_ms: record.spec.end_ms,
            loaded_first_ms: record.loaded_first_ms,
            loaded_end_ms: record.loaded_end_ms,
            seed: record.spec.seed,
            train_samples: metrics.train_samples,
            val_samples: metrics.val_samples,
            test_samples: metrics.test_samples,
            training_time_ms,
            fit_start_ms,
            fit_end_ms,
        };
        let text = serde_json::to_string_pretty(&sidecar)
            .map_err(|e| TrainingError::internal(e.to_string()))?;
        let dir = {
            let _saving = save_lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            save(
                &ModelStore::new(models_dir).owned_by(staging_owner(sessions_dir)),
                &[
                    (SESSION_SIDECAR, text.as_bytes()),
                    // GetModel returns the strategy verbatim, as the user wrote it.
                    (STRATEGY_FILE, record.spec.strategy_yaml.as_bytes()),
                ],
            )?
        };
        let model_id = model_id_of(models_dir, &dir);
        session.emit(
            EventKind::ModelSaved {
                model_id,
                path: dir.display().to_string(),
            },
            store,
        );
        // The model is in the registry now; its checkpoint has served its purpose.
        if let Some(dir) = stem.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        session.emit(EventKind::FinalMetrics(metrics), store);
        session.emit(
            EventKind::StateChanged {
                from: Some(State::Running),
                to: State::Completed,
                reason: "training finished; model saved".to_owned(),
            },
            store,
        );
        Ok(())
    }
}

/// Rows and labels per split, and what makes them unfit to select a model on
/// ([`SplitDatasets::warnings`]).
pub fn split_report(sets: &SplitDatasets) -> SplitReport {
    let bars = |part: usize| -> u64 { sets.bars_per_part.iter().map(|b| b[part] as u64).sum() };
    let counts = |part: usize, d: &ktrdr_strategy::dataset::Dataset| {
        let [buy, hold, sell] = d.label_counts();
        [
            bars(part),
            d.len() as u64,
            buy as u64,
            hold as u64,
            sell as u64,
        ]
    };
    SplitReport {
        parts: [
            counts(0, &sets.train),
            counts(1, &sets.validation),
            counts(2, &sets.test),
        ],
        warnings: sets.warnings(),
    }
}

fn samples_processed_total(epoch: usize, in_epoch: usize, per_epoch: usize) -> f64 {
    ((epoch - 1) * per_epoch + in_epoch) as f64
}

/// The gRPC-facing metrics of a finished run.
pub fn final_metrics(m: &TrainingMetrics, samples: [usize; 3], training_time_ms: i64) -> Metrics {
    // By epoch number: a resumed run's history starts after its checkpoint.
    let best = m
        .history
        .iter()
        .find(|e| e.epoch == m.best_epoch)
        .or(m.history.last());
    let mut out = evaluation_metrics(&m.test);
    out.train_loss = best.map_or(f64::NAN, |e| e.train_loss);
    out.train_accuracy = best.map_or(f64::NAN, |e| e.train_accuracy);
    out.val_loss = best.map(|e| e.val_loss);
    out.val_accuracy = best.map(|e| e.val_accuracy);
    out.best_epoch = m.best_epoch as u32;
    out.epochs_run = m.epochs_trained as u32;
    out.early_stopped = m.stopped_early;
    out.training_time_ms = training_time_ms;
    out.train_samples = samples[0] as u64;
    out.val_samples = samples[1] as u64;
    out.test_samples = samples[2] as u64;
    out
}

/// Test-side metrics (loss, accuracy, per class, confusion) of one evaluation.
pub fn evaluation_metrics(e: &ktrdr_strategy::training::EvaluationMetrics) -> Metrics {
    Metrics {
        test_loss: Some(e.loss),
        test_accuracy: Some(e.accuracy),
        per_class: e
            .per_class
            .iter()
            .map(|c| (c.precision, c.recall, c.f1, c.support as u64))
            .collect(),
        confusion_matrix: e
            .confusion_matrix
            .iter()
            .flat_map(|row| row.iter().map(|&v| v as u64))
            .collect(),
        test_samples: e.rows as u64,
        ..Metrics::default()
    }
}
