//! Training sweeps: a `TrainStrategy` with a [`TrainingSweep`] trains one session per point of a
//! grid of settings (hidden layers × learning rates × batch sizes × epochs × seeds), a few at a
//! time, each started on the next training host in turn, and ends with the points ranked by
//! validation loss.
//!
//! Invariants: every point is validated (with the training host's own checks) before anything
//! starts, and a bad value is named by its place in the sweep (`sweep.learning_rates[1]`); the
//! summary is sent once every point has ended; cancelling a sweep cancels every session it
//! started and keeps the rest from starting (a session that starts while the cancel runs is
//! cancelled by the point that started it).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use ktrdr_common::error::ServiceError;
use ktrdr_proto::common::v1::{JobState, Progress};
use ktrdr_proto::gateway::v1::{
    self as pb, HiddenLayers, SweepPoint, SweepProgress, SweepStarted, SweepSummary,
    TrainingStarted, TrainingSweep, train_strategy_response,
};
use ktrdr_proto::training::v1::training_service_server::TrainingService;
use ktrdr_proto::training::v1::{
    StartTrainingRequest, TrainingState, WatchTrainingRequest, training_event,
};
use ktrdr_training_host::spec;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::orchestrator::ServiceOrchestrator;
use crate::sweeps::Sweep;
use crate::training::TrainingManager;

/// The most points one sweep may train.
pub const MAX_SWEEP_POINTS: usize = 256;
/// The most sessions one sweep keeps in flight.
pub const MAX_PARALLEL: usize = 64;

type Sender = mpsc::Sender<Result<pb::TrainStrategyResponse, Status>>;

/// A validated grid: the request each point starts, its row as resolved, and how many run at
/// once.
#[derive(Debug)]
pub struct Grid {
    pub points: Vec<(StartTrainingRequest, SweepPoint)>,
    pub parallel: usize,
}

/// A list's values as the sweep's axis: `None` leaves the setting as the request gives it.
fn axis<T: Clone>(values: &[T]) -> Vec<Option<(usize, T)>> {
    if values.is_empty() {
        vec![None]
    } else {
        values.iter().cloned().enumerate().map(Some).collect()
    }
}

/// The first value listed twice, as an error naming it.
fn no_repeats<T: PartialEq + std::fmt::Debug>(
    field: &str,
    values: &[T],
) -> Result<(), ServiceError> {
    for (i, value) in values.iter().enumerate() {
        if values[..i].contains(value) {
            return Err(ServiceError::invalid_argument(
                format!("{field}[{i}]"),
                format!("{value:?} is listed twice; list each value once"),
            ));
        }
    }
    Ok(())
}

/// Renames a resolve error's fields to the sweep value that set them.
fn in_sweep(error: ServiceError, renames: &[(&str, Option<String>)]) -> ServiceError {
    let ServiceError::InvalidArgument { violations, .. } = &error else {
        return error;
    };
    let Some(first) = violations.first() else {
        return error;
    };
    for (field, swept) in renames {
        if let (Some(rest), Some(swept)) = (first.field.strip_prefix(field), swept) {
            return ServiceError::invalid_argument(format!("{swept}{rest}"), &first.description);
        }
    }
    error
}

/// Validates `sweep` and expands it over `base` (the request one session would start):
/// `hosts` training hosts (0 = in process) size the default parallelism.
pub fn grid(
    sweep: &TrainingSweep,
    base: &StartTrainingRequest,
    strategies_dir: &Path,
    hosts: usize,
) -> Result<Grid, ServiceError> {
    if sweep.seeds < 0 {
        return Err(ServiceError::invalid_argument(
            "sweep.seeds",
            format!("{} must be 0 or more", sweep.seeds),
        ));
    }
    let parallel = match usize::try_from(sweep.parallel) {
        Ok(0) => hosts.max(1),
        Ok(n) if n <= MAX_PARALLEL => n,
        _ => {
            return Err(ServiceError::invalid_argument(
                "sweep.parallel",
                format!(
                    "{} is not from 0 (one per training host) to {MAX_PARALLEL}",
                    sweep.parallel
                ),
            ));
        }
    };
    let seeds = sweep.seeds.max(1) as usize;
    let lengths = [
        sweep.hidden_layers.len(),
        sweep.learning_rates.len(),
        sweep.batch_sizes.len(),
        sweep.epochs.len(),
    ];
    if lengths.iter().all(|&n| n == 0) && seeds == 1 {
        return Err(ServiceError::invalid_argument(
            "sweep",
            "the sweep lists no values and one seed; list values to try or ask for seeds > 1",
        ));
    }
    let total = lengths
        .iter()
        .fold(seeds as u128, |n, &len| n * len.max(1) as u128);
    if total > MAX_SWEEP_POINTS as u128 {
        let factors: Vec<String> = lengths
            .iter()
            .filter(|&&n| n > 0)
            .chain(std::iter::once(&seeds))
            .map(ToString::to_string)
            .collect();
        return Err(ServiceError::invalid_argument(
            "sweep",
            format!(
                "{total} points ({}) are more than {MAX_SWEEP_POINTS}; list fewer values or seeds",
                factors.join(" × ")
            ),
        ));
    }
    let hidden: Vec<Vec<i32>> = sweep
        .hidden_layers
        .iter()
        .map(|h| h.sizes.clone())
        .collect();
    if let Some(i) = hidden.iter().position(Vec::is_empty) {
        return Err(ServiceError::invalid_argument(
            format!("sweep.hidden_layers[{i}].sizes"),
            "lists no layer size; give 1 to 16 sizes, e.g. [64, 32]",
        ));
    }
    no_repeats("sweep.hidden_layers", &hidden)?;
    no_repeats("sweep.learning_rates", &sweep.learning_rates)?;
    no_repeats("sweep.batch_sizes", &sweep.batch_sizes)?;
    no_repeats("sweep.epochs", &sweep.epochs)?;
    if base.resume_from_session_id.is_some() {
        return Err(ServiceError::invalid_argument(
            "resume_from_session_id",
            "a sweep trains every point from scratch; leave it unset",
        ));
    }
    let first_seed = base.seed.unwrap_or_else(spec::random_u64);

    let mut points = Vec::with_capacity(total as usize);
    for h in axis(&hidden) {
        for lr in axis(&sweep.learning_rates) {
            for batch in axis(&sweep.batch_sizes) {
                for epochs in axis(&sweep.epochs) {
                    for k in 0..seeds {
                        let mut request = base.clone();
                        if let Some((_, sizes)) = &h {
                            request.hidden_layers.clone_from(sizes);
                        }
                        request.learning_rate = lr.map_or(base.learning_rate, |(_, v)| Some(v));
                        request.batch_size = batch.map_or(base.batch_size, |(_, v)| Some(v));
                        request.epochs = epochs.map_or(base.epochs, |(_, v)| Some(v));
                        request.seed = Some(first_seed.wrapping_add(k as u64));
                        let named = |error: ServiceError| {
                            in_sweep(
                                error,
                                &[
                                    (
                                        "hidden_layers",
                                        h.as_ref().map(|(i, _)| {
                                            format!("sweep.hidden_layers[{i}].sizes")
                                        }),
                                    ),
                                    (
                                        "learning_rate",
                                        lr.map(|(i, _)| format!("sweep.learning_rates[{i}]")),
                                    ),
                                    (
                                        "batch_size",
                                        batch.map(|(i, _)| format!("sweep.batch_sizes[{i}]")),
                                    ),
                                    ("epochs", epochs.map(|(i, _)| format!("sweep.epochs[{i}]"))),
                                ],
                            )
                        };
                        // The device is the training host's to judge.
                        let checked = StartTrainingRequest {
                            device: None,
                            ..request.clone()
                        };
                        let resolved = spec::resolve(&checked, strategies_dir)
                            .map_err(|e| named(ServiceError::from(e)))?;
                        let strategy = spec::strategy_of(&resolved).map_err(|e| named(e.into()))?;
                        let row = SweepPoint {
                            point: points.len() as i32 + 1,
                            hidden_layers: Some(HiddenLayers {
                                sizes: strategy
                                    .config
                                    .model
                                    .architecture
                                    .hidden_layers
                                    .iter()
                                    .map(|&s| s as i32)
                                    .collect(),
                            }),
                            learning_rate: resolved.learning_rate,
                            batch_size: resolved.batch_size as i32,
                            epochs: resolved.epochs as i32,
                            seed: resolved.seed,
                            state: TrainingState::Queued as i32,
                            ..SweepPoint::default()
                        };
                        points.push((request, row));
                    }
                }
            }
        }
    }
    Ok(Grid { points, parallel })
}

fn event(
    point: i32,
    event: train_strategy_response::Event,
) -> Result<pb::TrainStrategyResponse, Status> {
    Ok(crate::train::point_event(point, event))
}

/// Ranks the points: COMPLETED ones by validation loss (those without one after), ties broken
/// by higher validation accuracy, then grid order; the others after them in grid order.
pub fn rank(points: &mut [SweepPoint]) {
    let key = |p: &SweepPoint| {
        let metrics = p.metrics.as_ref();
        let loss = metrics.and_then(|m| m.val_loss).filter(|l| l.is_finite());
        let accuracy = metrics.and_then(|m| m.val_accuracy).unwrap_or(0.0);
        (
            p.state() != TrainingState::Completed,
            loss.is_none(),
            loss,
            -accuracy,
            p.point,
        )
    };
    points.sort_by(|a, b| {
        let (a, b) = (key(a), key(b));
        a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut rank = 0;
    for p in points.iter_mut() {
        p.rank = if p.state() == TrainingState::Completed {
            rank += 1;
            rank
        } else {
            0
        };
    }
}

/// The summary of a sweep whose points all ended.
pub fn summary(sweep_id: &str, mut points: Vec<SweepPoint>, elapsed_ms: i64) -> SweepSummary {
    rank(&mut points);
    let count = |state: TrainingState| points.iter().filter(|p| p.state() == state).count() as i32;
    let completed = count(TrainingState::Completed);
    let cancelled = count(TrainingState::Cancelled);
    let failed = points.len() as i32 - completed - cancelled;
    let state = if completed == points.len() as i32 {
        JobState::Completed
    } else if cancelled > 0 {
        JobState::Cancelled
    } else {
        JobState::Failed
    };
    let best = points.first().filter(|p| p.rank == 1);
    SweepSummary {
        sweep_id: sweep_id.to_owned(),
        state: state as i32,
        best_model_id: best.map(|p| p.model_id.clone()).unwrap_or_default(),
        best_point: best.map_or(0, |p| p.point),
        completed,
        failed,
        cancelled,
        elapsed_ms,
        points,
    }
}

/// Runs a validated grid to its end, relaying every point's events on `tx` (a caller that went
/// away does not stop the sweep), and sends the ranked summary.
pub async fn run(
    training: Arc<TrainingManager>,
    sweep: Arc<Sweep>,
    grid: Grid,
    metadata: MetadataMap,
    tx: Sender,
) {
    let started_at = Instant::now();
    let (requests, rows): (Vec<_>, Vec<_>) = grid.points.into_iter().unzip();
    let total = rows.len();
    let _ = tx
        .send(event(
            0,
            train_strategy_response::Event::SweepStarted(SweepStarted {
                sweep_id: sweep.life.id.clone(),
                points: rows.clone(),
                parallel: grid.parallel as i32,
            }),
        ))
        .await;
    let queue = Mutex::new((0..total).collect::<VecDeque<usize>>());
    let rows = Mutex::new(rows);
    let ended = AtomicUsize::new(0);
    let next = || {
        queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    };
    let worker = || async {
        while let Some(i) = next() {
            let row = rows.lock().unwrap_or_else(PoisonError::into_inner)[i].clone();
            let row = run_point(&training, &sweep, requests[i].clone(), row, &metadata, &tx).await;
            rows.lock().unwrap_or_else(PoisonError::into_inner)[i] = row.clone();
            let ended = ended.fetch_add(1, Ordering::SeqCst) + 1;
            let progress = Progress {
                percent: ended as f64 * 100.0 / total as f64,
                step: format!("point {} {}", row.point, row.state().as_str_name()),
                items_done: ended as i64,
                items_total: total as i64,
                unit: "points".to_owned(),
                elapsed_ms: started_at.elapsed().as_millis() as i64,
                ..Progress::default()
            };
            let _ = tx
                .send(event(
                    row.point,
                    train_strategy_response::Event::SweepProgress(SweepProgress {
                        progress: Some(progress),
                        point: Some(row),
                    }),
                ))
                .await;
        }
    };
    futures_util::future::join_all((0..grid.parallel.min(total)).map(|_| worker())).await;
    let rows = rows.into_inner().unwrap_or_else(PoisonError::into_inner);
    let summary = summary(
        &sweep.life.id,
        rows,
        started_at.elapsed().as_millis() as i64,
    );
    let state = summary.state();
    let _ = tx
        .send(event(
            0,
            train_strategy_response::Event::SweepSummary(summary),
        ))
        .await;
    sweep.life.set_state(state);
}

/// Starts one point's session and follows it to its end; the point's final row.
async fn run_point(
    training: &TrainingManager,
    sweep: &Sweep,
    request: StartTrainingRequest,
    mut row: SweepPoint,
    metadata: &MetadataMap,
    tx: &Sender,
) -> SweepPoint {
    if sweep.is_cancelled() {
        row.set_state(TrainingState::Cancelled);
        return row;
    }
    let mut request = request;
    request
        .labels
        .insert("sweep_id".to_owned(), sweep.life.id.clone());
    request
        .labels
        .insert("sweep_point".to_owned(), row.point.to_string());
    let mut start = Request::new(request);
    *start.metadata_mut() = metadata.clone();
    let started = match training.start_training(start).await {
        Ok(started) => started.into_inner(),
        Err(status) => {
            row.set_state(TrainingState::Failed);
            row.error = format!("the session did not start: {}", status.message());
            return row;
        }
    };
    row.session_id.clone_from(&started.session_id);
    row.set_state(started.state());
    let local = !training.route().use_host_service;
    if !local {
        row.training_host_url = training.host_of(&started.session_id);
    }
    if !sweep.started(&started.session_id) {
        let reason = "the sweep was cancelled";
        if let Err(status) = training
            .cancel_session_as(&row.session_id, metadata, reason)
            .await
        {
            tracing::warn!(session_id = %row.session_id, error = %status.message(), "cancelling a sweep's late session failed");
        }
    }
    let _ = tx
        .send(event(
            row.point,
            train_strategy_response::Event::TrainingStarted(TrainingStarted {
                session_id: started.session_id.clone(),
                state: started.state,
                queue_position: started.queue_position,
                local,
                training_host_url: row.training_host_url.clone(),
            }),
        ))
        .await;

    let mut watch = Request::new(WatchTrainingRequest {
        session_id: started.session_id,
        after_sequence: None,
    });
    *watch.metadata_mut() = metadata.clone();
    let mut events = match training.watch_training(watch).await {
        Ok(events) => events.into_inner(),
        Err(status) => {
            row.set_state(TrainingState::Failed);
            row.error = format!("cannot follow the session: {}", status.message());
            return row;
        }
    };
    while let Some(item) = events.next().await {
        let training_event = match item {
            Ok(item) => item.event,
            Err(status) => {
                row.set_state(TrainingState::Failed);
                row.error = format!("lost the session's events: {}", status.message());
                return row;
            }
        };
        let Some(training_event) = training_event else {
            continue;
        };
        match &training_event.event {
            Some(training_event::Event::StateChanged(change)) => {
                row.set_state(change.to_state());
                if change.to_state() != TrainingState::Completed && change.to_state().is_terminal()
                {
                    row.error.clone_from(&change.reason);
                }
            }
            Some(training_event::Event::ModelSaved(saved)) => {
                row.model_id.clone_from(&saved.model_id);
            }
            Some(training_event::Event::FinalMetrics(metrics)) => {
                row.metrics = Some(metrics.clone());
            }
            _ => {}
        }
        let _ = tx
            .send(event(
                row.point,
                train_strategy_response::Event::Training(training_event),
            ))
            .await;
    }
    if !row.state().is_terminal() {
        row.set_state(TrainingState::Failed);
        row.error = "the session's event stream ended before the session did".to_owned();
    }
    row
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use ktrdr_proto::training::v1::{TrainingMetrics, start_training_request};

    /// The repository's strategies: hidden [32, 16], learning rate 0.001, batch 64, 30 epochs.
    fn strategies() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../strategies")
    }

    fn base() -> StartTrainingRequest {
        StartTrainingRequest {
            strategy: Some(start_training_request::Strategy::StrategyName(
                "rsi_bollinger_single".into(),
            )),
            seed: Some(10),
            ..Default::default()
        }
    }

    fn hidden(sizes: &[i32]) -> HiddenLayers {
        HiddenLayers {
            sizes: sizes.to_vec(),
        }
    }

    fn expand(sweep: &TrainingSweep) -> Result<Grid, ServiceError> {
        grid(sweep, &base(), &strategies(), 2)
    }

    fn field(error: ServiceError) -> String {
        match error {
            ServiceError::InvalidArgument { violations, .. } => violations[0].field.clone(),
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    #[test]
    fn a_grid_is_every_combination_with_seeds_fastest_and_unswept_settings_from_the_strategy() {
        let sweep = TrainingSweep {
            hidden_layers: vec![hidden(&[8, 4]), hidden(&[16])],
            learning_rates: vec![0.001, 0.01],
            seeds: 2,
            ..Default::default()
        };
        let grid = expand(&sweep).unwrap();
        assert_eq!(grid.parallel, 2, "one per training host");
        let rows: Vec<(Vec<i32>, f64, i32, i32, u64)> = grid
            .points
            .iter()
            .map(|(_, r)| {
                (
                    r.hidden_layers.clone().unwrap().sizes,
                    r.learning_rate,
                    r.batch_size,
                    r.epochs,
                    r.seed,
                )
            })
            .collect();
        assert_eq!(rows.len(), 8);
        assert_eq!(rows[0], (vec![8, 4], 0.001, 64, 30, 10));
        assert_eq!(rows[1], (vec![8, 4], 0.001, 64, 30, 11));
        assert_eq!(rows[2], (vec![8, 4], 0.01, 64, 30, 10));
        assert_eq!(rows[7], (vec![16], 0.01, 64, 30, 11));
        let numbers: Vec<i32> = grid.points.iter().map(|(_, r)| r.point).collect();
        assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
        let (request, _) = &grid.points[7];
        assert_eq!(request.hidden_layers, [16]);
        assert_eq!(request.learning_rate, Some(0.01));
        assert_eq!(request.seed, Some(11));
        assert!(
            grid.points
                .iter()
                .all(|(_, r)| r.state() == TrainingState::Queued)
        );
    }

    #[test]
    fn bad_sweeps_name_the_value_or_the_setting_at_fault() {
        let cases = [
            (
                TrainingSweep {
                    learning_rates: vec![0.01, -1.0],
                    ..Default::default()
                },
                "sweep.learning_rates[1]",
            ),
            (
                TrainingSweep {
                    hidden_layers: vec![hidden(&[8]), hidden(&[8, 0])],
                    ..Default::default()
                },
                "sweep.hidden_layers[1].sizes[1]",
            ),
            (
                TrainingSweep {
                    hidden_layers: vec![hidden(&[])],
                    ..Default::default()
                },
                "sweep.hidden_layers[0].sizes",
            ),
            (
                TrainingSweep {
                    epochs: vec![2, 0],
                    ..Default::default()
                },
                "sweep.epochs[1]",
            ),
            (
                TrainingSweep {
                    batch_sizes: vec![16, 16],
                    ..Default::default()
                },
                "sweep.batch_sizes[1]",
            ),
            (
                TrainingSweep {
                    learning_rates: (1..=20).map(|i| f64::from(i) / 1000.0).collect(),
                    seeds: 13,
                    ..Default::default()
                },
                "sweep",
            ),
            (TrainingSweep::default(), "sweep"),
            (
                TrainingSweep {
                    seeds: -1,
                    ..Default::default()
                },
                "sweep.seeds",
            ),
            (
                TrainingSweep {
                    seeds: 2,
                    parallel: 65,
                    ..Default::default()
                },
                "sweep.parallel",
            ),
        ];
        for (sweep, expected) in cases {
            let error = expand(&sweep).unwrap_err();
            assert_eq!(field(error), expected, "{sweep:?}");
        }
        let too_many = TrainingSweep {
            learning_rates: (1..=20).map(|i| f64::from(i) / 1000.0).collect(),
            seeds: 13,
            ..Default::default()
        };
        let message = expand(&too_many).unwrap_err().to_string();
        assert!(message.contains("260 points (20 × 13)"), "{message}");
        let mut resumed = base();
        resumed.resume_from_session_id = Some("s".into());
        let error = grid(
            &TrainingSweep {
                seeds: 2,
                ..Default::default()
            },
            &resumed,
            &strategies(),
            1,
        )
        .unwrap_err();
        assert_eq!(field(error), "resume_from_session_id");
    }

    fn point(n: i32, state: TrainingState, val: Option<(f64, f64)>) -> SweepPoint {
        SweepPoint {
            point: n,
            state: state as i32,
            model_id: format!("m{n}"),
            metrics: Some(TrainingMetrics {
                val_loss: val.map(|v| v.0),
                val_accuracy: val.map(|v| v.1),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_summary_ranks_completed_points_by_validation_loss_and_names_the_best_model() {
        let points = vec![
            point(1, TrainingState::Completed, Some((0.9, 0.5))),
            point(2, TrainingState::Failed, None),
            point(3, TrainingState::Completed, Some((0.4, 0.6))),
            point(4, TrainingState::Completed, None),
            point(5, TrainingState::Completed, Some((0.4, 0.7))),
        ];
        let summary = summary("s", points, 5);
        let order: Vec<(i32, i32)> = summary.points.iter().map(|p| (p.point, p.rank)).collect();
        assert_eq!(order, [(5, 1), (3, 2), (1, 3), (4, 4), (2, 0)]);
        assert_eq!(summary.best_model_id, "m5");
        assert_eq!(summary.best_point, 5);
        assert_eq!(
            (summary.completed, summary.failed, summary.cancelled),
            (4, 1, 0)
        );
        assert_eq!(summary.state(), JobState::Failed);
        let none = super::summary("s", vec![point(1, TrainingState::Cancelled, None)], 1);
        assert_eq!(none.state(), JobState::Cancelled);
        assert_eq!((none.best_point, none.best_model_id.as_str()), (0, ""));
    }
}
