//! Backtest jobs: `BacktestStrategy` checks the request, resolves the model, then runs
//! `TrainingService/RunBacktest` for every symbol at once (loading the bars the store lacks
//! first, unless the data mode is LOCAL), or, for a walk-forward, trains each window's model
//! with the TrainStrategy flow and backtests the symbols over the out-of-sample windows.
//!
//! Invariants:
//! - Everything a caller can get wrong (range, settings, model, symbols, walk-forward windows)
//!   is refused before the job exists, so a refused request leaves nothing behind.
//! - A job keeps every event but progress that a later snapshot of the same stage of a
//!   symbol's backtest, or of the same data load, supersedes ([`crate::events`]); a watcher
//!   that starts at any time gets them in order, then follows new events up to the summary.
//! - Cancelling a job drops its RunBacktest streams: the training host stops and saves nothing.
//! - Results are saved by the training host under `<job_id>-<SYMBOL>` (GetBacktest,
//!   ReadBacktestTable); the job itself lives in the gateway's memory.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ktrdr_common::error::ServiceError;
use ktrdr_common::market::{symbol_field, time_range};
use ktrdr_common::server::ResponseStream;
use ktrdr_common::status::now_ms;
use ktrdr_proto::common::v1::{JobState, Progress, TimeRange};
use ktrdr_proto::gateway::v1::{self as pb, backtest_event, backtest_strategy_request};
use ktrdr_proto::training::v1::training_service_server::TrainingService;
use ktrdr_proto::training::v1::{self as tpb, run_backtest_response, training_event};
use tokio_stream::StreamExt;
use tonic::{Request, Status};

use crate::events::{EventLog, JobEvent};
use crate::jobs::{JobTable, Lifecycle, Tracked};
use crate::train::TrainFlow;
use crate::training::TrainingManager;

/// Finished jobs kept for GetBacktestJob / ListBacktestJobs.
const FINISHED_KEPT: usize = 200;
/// Walk-forward windows at most.
pub const MAX_FOLDS: i64 = 200;

/// What a job was asked to do, checked.
#[derive(Debug, Clone)]
struct JobSpec {
    model_id: String,
    symbols: Vec<String>,
    range: TimeRange,
    settings: Option<tpb::BacktestSettings>,
    allow_training_overlap: bool,
    load_missing: bool,
    walk_forward: Option<WalkForwardPlan>,
}

/// A walk-forward's strategy and windows.
#[derive(Debug, Clone)]
struct WalkForwardPlan {
    strategy_yaml: String,
    folds: Vec<Fold>,
    epochs: Option<i32>,
    seed: Option<u64>,
    data_mode: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fold {
    train: (i64, i64),
    test: (i64, i64),
}

/// The windows of a walk-forward over `[start, end)` (see `WalkForward` in the proto).
fn folds(start: i64, end: i64, wf: &pb::WalkForward) -> Result<Vec<Fold>, ServiceError> {
    let positive = |field: &str, v: i64| {
        if v > 0 {
            Ok(v)
        } else {
            Err(ServiceError::invalid_argument(
                format!("walk_forward.{field}"),
                format!("must be > 0 ms, got {v}"),
            ))
        }
    };
    let train = positive("train_ms", wf.train_ms)?;
    let test = positive("test_ms", wf.test_ms)?;
    let step = if wf.step_ms == 0 {
        test
    } else {
        positive("step_ms", wf.step_ms)?
    };
    let first_test = start
        .checked_add(train)
        .filter(|&t| t < end)
        .ok_or_else(|| {
            ServiceError::invalid_argument(
                "walk_forward.train_ms",
                "the first training window reaches the end of the range: nothing is left to \
             backtest; widen the range or shorten train_ms",
            )
        })?;
    let mut out = Vec::new();
    let mut k: i64 = 0;
    while let Some(test_start) = k
        .checked_mul(step)
        .and_then(|offset| first_test.checked_add(offset))
        .filter(|&t| t < end)
    {
        if k >= MAX_FOLDS {
            return Err(ServiceError::invalid_argument(
                "walk_forward.step_ms",
                format!("more than {MAX_FOLDS} windows; use a longer step"),
            ));
        }
        let test_end = test_start.saturating_add(test).min(end);
        let train_start = if wf.anchored {
            start
        } else {
            test_start - train
        };
        out.push(Fold {
            train: (train_start, test_start),
            test: (test_start, test_end),
        });
        k += 1;
    }
    Ok(out)
}

#[derive(Default)]
struct Inner {
    results: Vec<tpb::BacktestResult>,
    failures: Vec<pb::BacktestFailure>,
    started_at_ms: i64,
    finished_at_ms: i64,
    error: String,
    summary: Option<pb::BacktestSummary>,
}

/// One backtest job.
pub struct Job {
    pub life: Lifecycle,
    spec: JobSpec,
    inner: Mutex<Inner>,
    events: Arc<EventLog<pb::BacktestEvent>>,
}

impl JobEvent for pb::BacktestEvent {
    fn is_last(&self) -> bool {
        matches!(self.event, Some(backtest_event::Event::Summary(_)))
    }

    /// A symbol's progress supersedes its earlier progress in the same stage (every stage is
    /// seen); a data load's event supersedes an earlier one of the same load as one load's
    /// events supersede each other.
    fn supersedes(&self, earlier: &Self) -> bool {
        use backtest_event::Event::{DataLoad, Progress};
        match (&self.event, &earlier.event) {
            (Some(Progress(new)), Some(Progress(old))) => {
                fn stage(p: &pb::BacktestSymbolProgress) -> Option<&str> {
                    p.progress.as_ref().map(|p| p.stage.as_str())
                }
                new.symbol == old.symbol && stage(new) == stage(old)
            }
            (Some(DataLoad(new)), Some(DataLoad(old))) => {
                new.symbol == old.symbol
                    && new.timeframe == old.timeframe
                    && match (&new.event, &old.event) {
                        (Some(new), Some(old)) => new.supersedes(old),
                        _ => false,
                    }
            }
            _ => false,
        }
    }
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, event: backtest_event::Event) {
        let event = pb::BacktestEvent {
            job_id: self.life.id.clone(),
            time_ms: now_ms(),
            event: Some(event),
        };
        let mut inner = self.lock();
        match &event.event {
            Some(backtest_event::Event::Started(_)) => {
                self.life.set_state(JobState::Running);
                inner.started_at_ms = event.time_ms;
            }
            Some(backtest_event::Event::Result(result)) => inner.results.push(result.clone()),
            Some(backtest_event::Event::Summary(summary)) => {
                self.life.set_state(summary.state());
                inner.finished_at_ms = event.time_ms;
                inner.error = summary.error.clone();
                inner.summary = Some(summary.clone());
            }
            _ => {}
        }
        drop(inner);
        self.events.publish(event);
    }

    fn fail_symbol(&self, symbol: &str, status: &Status) {
        self.lock().failures.push(pb::BacktestFailure {
            symbol: symbol.to_owned(),
            code: ktrdr_common::metrics::code_name(status.code()).to_owned(),
            message: status.message().to_owned(),
        });
    }

    /// The job as GetBacktestJob reports it.
    pub fn describe(&self) -> pb::BacktestJob {
        let inner = self.lock();
        let total = self.spec.symbols.len() as i64;
        let done = (inner.results.len() + inner.failures.len()) as i64;
        pb::BacktestJob {
            job_id: self.life.id.clone(),
            state: self.life.state() as i32,
            model_id: self.spec.model_id.clone(),
            symbols: self.spec.symbols.clone(),
            range: Some(self.spec.range),
            progress: Some(Progress {
                percent: if total == 0 {
                    0.0
                } else {
                    100.0 * done as f64 / total as f64
                },
                step: format!("{done} of {total} symbols done"),
                items_done: done,
                items_total: total,
                unit: "symbols".to_owned(),
                elapsed_ms: if inner.started_at_ms == 0 {
                    0
                } else {
                    now_ms() - inner.started_at_ms
                },
                ..Progress::default()
            }),
            summary: inner.summary.clone(),
            created_at_ms: self.life.created_at_ms,
            started_at_ms: inner.started_at_ms,
            finished_at_ms: inner.finished_at_ms,
            error: inner.error.clone(),
        }
    }

    /// The job's events so far, then every new event, up to the summary.
    pub fn events(&self) -> ResponseStream<pb::BacktestEvent> {
        self.events.follow()
    }
}

impl Tracked for Job {
    fn lifecycle(&self) -> &Lifecycle {
        &self.life
    }
}

/// The gateway's backtest jobs.
pub struct BacktestJobs {
    training: Arc<TrainingManager>,
    train: Arc<TrainFlow>,
    jobs: JobTable<Job>,
}

fn not_found(job_id: &str) -> ServiceError {
    ServiceError::not_found(
        "BACKTEST_JOB_NOT_FOUND",
        format!(
            "backtest job {:?} not found (ListBacktestJobs, or `ktrdr backtest jobs`, shows the \
             jobs this gateway runs and ran recently)",
            ktrdr_market::symbol::shown(job_id)
        ),
    )
}

impl BacktestJobs {
    pub fn new(training: Arc<TrainingManager>, train: Arc<TrainFlow>) -> Arc<Self> {
        Arc::new(Self {
            training,
            train,
            jobs: JobTable::new(FINISHED_KEPT),
        })
    }

    pub fn get(&self, job_id: &str) -> Result<Arc<Job>, ServiceError> {
        self.jobs.get(job_id).ok_or_else(|| not_found(job_id))
    }

    /// Jobs newest first, in one of `states` (any when empty).
    pub fn list(&self, states: &[JobState]) -> Vec<pb::BacktestJob> {
        self.jobs
            .newest_first()
            .iter()
            .map(|j| j.describe())
            .filter(|j| states.is_empty() || states.contains(&j.state()))
            .collect()
    }

    pub async fn cancel(
        &self,
        job_id: &str,
        reason: &str,
    ) -> Result<pb::BacktestJob, ServiceError> {
        let job = self.get(job_id)?;
        if !job.life.is_terminal() {
            job.lock().error = if reason.is_empty() {
                "cancelled by request".to_owned()
            } else {
                format!("cancelled: {reason}")
            };
            job.life.cancel_and_wait().await;
        }
        Ok(job.describe())
    }

    /// Checks the request, then starts the job; its events follow.
    pub async fn start(
        self: &Arc<Self>,
        request: pb::BacktestStrategyRequest,
    ) -> Result<Arc<Job>, Status> {
        let spec = self.check(request).await?;
        let job = Arc::new(Job {
            life: Lifecycle::new(format!(
                "bt-{:012x}",
                ktrdr_training_host::spec::random_u64() & 0xFFFF_FFFF_FFFF
            )),
            spec,
            inner: Mutex::default(),
            events: Arc::default(),
        });
        self.jobs.insert(Arc::clone(&job));
        let this = Arc::clone(self);
        let running = Arc::clone(&job);
        tokio::spawn(async move { this.run(running).await });
        Ok(job)
    }

    /// Everything a caller can get wrong, before any work.
    async fn check(&self, request: pb::BacktestStrategyRequest) -> Result<JobSpec, Status> {
        let (start, end) = time_range("range", request.range.as_ref())?;
        if start == i64::MIN || end == i64::MAX {
            return Err(ServiceError::invalid_argument(
                "range",
                "a backtest needs both ends of its range (UTC epoch ms)",
            )
            .into());
        }
        ktrdr_training_host::backtest::execution_config(request.settings.as_ref())?;
        let data_mode =
            ktrdr_common::error::enum_field::<pb::LoadMode>("data_mode", request.data_mode)?;
        let mut symbols = request
            .symbols
            .iter()
            .enumerate()
            .map(|(i, s)| symbol_field(&format!("symbols[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()?;
        symbols.dedup();
        let range = TimeRange {
            start_ms: start,
            end_ms: end,
        };
        let load_missing = data_mode != pb::LoadMode::Local;
        if let Some(wf) = &request.walk_forward {
            let Some(backtest_strategy_request::Model::StrategyYaml(yaml)) = &request.model else {
                return Err(ServiceError::invalid_argument(
                    "walk_forward",
                    "a walk-forward trains a model per window: give strategy_yaml",
                )
                .into());
            };
            let resolved = ktrdr_training_host::spec::resolve(
                &tpb::StartTrainingRequest {
                    strategy: Some(tpb::start_training_request::Strategy::StrategyYaml(
                        yaml.clone(),
                    )),
                    epochs: wf.epochs,
                    ..Default::default()
                },
                std::path::Path::new(""),
            )?;
            check_symbols(&mut symbols, &resolved.symbols, "the strategy")?;
            return Ok(JobSpec {
                model_id: String::new(),
                symbols,
                range,
                settings: request.settings,
                allow_training_overlap: request.allow_training_overlap,
                load_missing,
                walk_forward: Some(WalkForwardPlan {
                    strategy_yaml: yaml.clone(),
                    folds: folds(start, end, wf)?,
                    epochs: wf.epochs,
                    seed: wf.seed,
                    data_mode: request.data_mode,
                }),
            });
        }
        let model = match &request.model {
            Some(backtest_strategy_request::Model::ModelId(id)) => {
                let found = self
                    .training
                    .get_model(Request::new(tpb::GetModelRequest {
                        model_id: id.clone(),
                    }))
                    .await;
                match found {
                    Ok(answer) => answer.into_inner().model,
                    // A backtest of a model that does not exist is a wrong argument.
                    Err(status) if status.code() == tonic::Code::NotFound => {
                        return Err(ServiceError::invalid_argument(
                            "model_id",
                            format!(
                                "{}; `ktrdr models list` (ListModels) shows the saved models",
                                status.message()
                            ),
                        )
                        .into());
                    }
                    Err(status) => return Err(status),
                }
            }
            Some(backtest_strategy_request::Model::StrategyName(name)) => {
                let listed = self
                    .training
                    .list_models(Request::new(tpb::ListModelsRequest {
                        strategy_name: name.trim().to_owned(),
                        page_size: 1,
                        ..Default::default()
                    }))
                    .await?
                    .into_inner();
                Some(listed.models.into_iter().next().ok_or_else(|| {
                    ServiceError::not_found(
                        "MODEL_NOT_FOUND",
                        format!(
                            "no saved model of strategy {:?}: train it first (`ktrdr train`)",
                            ktrdr_market::symbol::shown(name)
                        ),
                    )
                })?)
            }
            Some(backtest_strategy_request::Model::StrategyYaml(_)) => {
                return Err(ServiceError::invalid_argument(
                    "strategy_yaml",
                    "strategy_yaml is for a walk-forward (set walk_forward); to backtest a saved \
                     model give model_id or strategy_name",
                )
                .into());
            }
            None => {
                return Err(ServiceError::invalid_argument(
                    "model",
                    "give model_id, strategy_name, or strategy_yaml with walk_forward",
                )
                .into());
            }
        };
        let model = model.ok_or_else(|| ServiceError::internal("GetModel returned no model"))?;
        check_symbols(
            &mut symbols,
            &model.symbols,
            &format!("model {}", model.model_id),
        )?;
        Ok(JobSpec {
            model_id: model.model_id,
            symbols,
            range,
            settings: request.settings,
            allow_training_overlap: request.allow_training_overlap,
            load_missing,
            walk_forward: None,
        })
    }

    async fn run(self: Arc<Self>, job: Arc<Job>) {
        let spec = job.spec.clone();
        job.publish(backtest_event::Event::Started(pb::BacktestStarted {
            job_id: job.life.id.clone(),
            model_id: spec.model_id.clone(),
            symbols: spec.symbols.clone(),
            range: Some(spec.range),
            folds: spec
                .walk_forward
                .as_ref()
                .map_or(0, |wf| wf.folds.len() as i32),
        }));
        let started = std::time::Instant::now();
        let segments = match &spec.walk_forward {
            None => Ok(Vec::new()),
            Some(wf) => {
                tokio::select! {
                    trained = self.train_folds(&job, wf) => trained,
                    () = job.life.cancel.cancelled() => Err(Status::cancelled("cancelled")),
                }
            }
        };
        let error = match segments {
            Err(status) => Some(status.message().to_owned()),
            Ok(segments) => {
                let runs = spec.symbols.iter().map(|symbol| {
                    let this = Arc::clone(&self);
                    let job = Arc::clone(&job);
                    let segments = segments.clone();
                    async move {
                        let outcome = tokio::select! {
                            outcome = this.run_symbol(&job, symbol, segments) => outcome,
                            () = job.life.cancel.cancelled() => return,
                        };
                        if let Err(status) = outcome {
                            job.fail_symbol(symbol, &status);
                        }
                    }
                });
                futures_util::future::join_all(runs).await;
                None
            }
        };
        let (results, failures, cancel_note) = {
            let inner = job.lock();
            (
                inner.results.clone(),
                inner.failures.clone(),
                inner.error.clone(),
            )
        };
        let (state, error) = if job.life.cancel.is_cancelled() {
            (JobState::Cancelled, cancel_note)
        } else if let Some(error) = error {
            (JobState::Failed, error)
        } else if !failures.is_empty() {
            let error = failures
                .iter()
                .map(|f| format!("{}: {}", f.symbol, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            (JobState::Failed, error)
        } else {
            (JobState::Completed, String::new())
        };
        job.publish(backtest_event::Event::Summary(pb::BacktestSummary {
            state: state as i32,
            results,
            failures,
            error,
            elapsed_ms: started.elapsed().as_millis() as i64,
        }));
    }

    /// Trains each walk-forward window's model in turn; the segments each symbol trades.
    async fn train_folds(
        &self,
        job: &Job,
        wf: &WalkForwardPlan,
    ) -> Result<Vec<tpb::BacktestSegment>, Status> {
        let mut segments = Vec::with_capacity(wf.folds.len());
        for (i, fold) in wf.folds.iter().enumerate() {
            let request = pb::TrainStrategyRequest {
                strategy: Some(pb::train_strategy_request::Strategy::StrategyYaml(
                    wf.strategy_yaml.clone(),
                )),
                symbols: job.spec.symbols.clone(),
                range: Some(TimeRange {
                    start_ms: fold.train.0,
                    end_ms: fold.train.1,
                }),
                epochs: wf.epochs,
                seed: wf.seed,
                data_mode: wf.data_mode,
                ..Default::default()
            };
            let mut events = self.train.start(Request::new(request)).await?;
            let mut model_id = String::new();
            let mut session_id = String::new();
            let mut failure = None;
            while let Some(item) = events.next().await {
                let Some(event) = item?.event else { continue };
                match event {
                    pb::train_strategy_response::Event::DataLoad(load) => {
                        job.publish(backtest_event::Event::DataLoad(load));
                    }
                    pb::train_strategy_response::Event::TrainingStarted(s) => {
                        session_id = s.session_id;
                    }
                    pb::train_strategy_response::Event::Training(t) => match t.event {
                        Some(training_event::Event::ModelSaved(saved)) => {
                            model_id = saved.model_id;
                        }
                        Some(training_event::Event::StateChanged(change))
                            if matches!(
                                change.to_state(),
                                tpb::TrainingState::Failed | tpb::TrainingState::Cancelled
                            ) =>
                        {
                            failure = Some(change.reason);
                        }
                        _ => {}
                    },
                    // A walk-forward window trains one point, never a sweep.
                    pb::train_strategy_response::Event::SweepStarted(_)
                    | pb::train_strategy_response::Event::SweepProgress(_)
                    | pb::train_strategy_response::Event::SweepSummary(_) => {}
                }
            }
            if model_id.is_empty() {
                return Err(Status::failed_precondition(format!(
                    "training the model of walk-forward window {} of {} ({}..{}) failed: {}",
                    i + 1,
                    wf.folds.len(),
                    ktrdr_common::market::iso_ms(fold.train.0),
                    ktrdr_common::market::iso_ms(fold.train.1),
                    failure.unwrap_or_else(|| "no model was saved".to_owned())
                )));
            }
            let test_range = TimeRange {
                start_ms: fold.test.0,
                end_ms: fold.test.1,
            };
            job.publish(backtest_event::Event::FoldTrained(
                pb::BacktestFoldTrained {
                    fold: i as i32 + 1,
                    folds: wf.folds.len() as i32,
                    train_range: Some(TimeRange {
                        start_ms: fold.train.0,
                        end_ms: fold.train.1,
                    }),
                    test_range: Some(test_range),
                    model_id: model_id.clone(),
                    session_id,
                },
            ));
            segments.push(tpb::BacktestSegment {
                model_id,
                range: Some(test_range),
            });
        }
        Ok(segments)
    }

    /// One symbol's RunBacktest, its events published as the job's.
    async fn run_symbol(
        &self,
        job: &Job,
        symbol: &str,
        segments: Vec<tpb::BacktestSegment>,
    ) -> Result<(), Status> {
        let spec = &job.spec;
        let walk_forward = !segments.is_empty();
        let request = tpb::RunBacktestRequest {
            model_id: if walk_forward {
                String::new()
            } else {
                spec.model_id.clone()
            },
            symbol: symbol.to_owned(),
            range: (!walk_forward).then_some(spec.range),
            settings: spec.settings,
            allow_training_overlap: spec.allow_training_overlap,
            backtest_id: format!("{}-{symbol}", job.life.id),
            segments,
        };
        let call = || {
            self.training
                .run_backtest_once(Request::new(request.clone()))
        };
        let response = if spec.load_missing {
            self.training
                .with_missing_bars_loaded_reporting(call, |load, event| {
                    job.publish(backtest_event::Event::DataLoad(pb::DataLoadEvent {
                        symbol: load.symbol,
                        timeframe: load.timeframe,
                        event: Some(event),
                    }));
                    async { true }
                })
                .await?
        } else {
            call().await?
        };
        let mut stream = response.into_inner();
        while let Some(item) = stream.next().await {
            match item?.event {
                Some(run_backtest_response::Event::Progress(progress)) => {
                    job.publish(backtest_event::Event::Progress(
                        pb::BacktestSymbolProgress {
                            symbol: symbol.to_owned(),
                            progress: Some(progress),
                        },
                    ));
                }
                Some(run_backtest_response::Event::Result(result)) => {
                    job.publish(backtest_event::Event::Result(result));
                    return Ok(());
                }
                None => {}
            }
        }
        Err(Status::unavailable(format!(
            "the training host ended {symbol}'s backtest without a result"
        )))
    }
}

/// Empty `symbols` become `known`; otherwise each must be one of `known`.
fn check_symbols(symbols: &mut Vec<String>, known: &[String], whose: &str) -> Result<(), Status> {
    if symbols.is_empty() {
        symbols.extend(known.iter().cloned());
        return Ok(());
    }
    for (i, symbol) in symbols.iter().enumerate() {
        if !known.contains(symbol) {
            return Err(ServiceError::invalid_argument(
                format!("symbols[{i}]"),
                format!(
                    "{whose} was trained on {} and not on {symbol}; backtest one of those",
                    known.join(", ")
                ),
            )
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn progress(symbol: &str, stage: &str) -> pb::BacktestEvent {
        pb::BacktestEvent {
            event: Some(backtest_event::Event::Progress(
                pb::BacktestSymbolProgress {
                    symbol: symbol.to_owned(),
                    progress: Some(tpb::BacktestProgress {
                        stage: stage.to_owned(),
                        ..Default::default()
                    }),
                },
            )),
            ..Default::default()
        }
    }

    #[test]
    fn progress_supersedes_only_the_same_symbols_progress_in_the_same_stage() {
        let later = progress("EURUSD", "simulating");
        assert!(later.supersedes(&progress("EURUSD", "simulating")));
        assert!(!later.supersedes(&progress("EURUSD", "predicting")));
        assert!(!later.supersedes(&progress("GBPUSD", "simulating")));
        let started = pb::BacktestEvent {
            event: Some(backtest_event::Event::Started(
                pb::BacktestStarted::default(),
            )),
            ..Default::default()
        };
        assert!(!later.supersedes(&started));
        assert!(!started.is_last());
    }

    fn wf(train: i64, test: i64, step: i64, anchored: bool) -> pb::WalkForward {
        pb::WalkForward {
            train_ms: train,
            test_ms: test,
            step_ms: step,
            anchored,
            ..Default::default()
        }
    }

    #[test]
    fn rolling_windows_train_on_the_window_before_each_test_window() {
        let f = folds(0, 100 * DAY, &wf(60 * DAY, 15 * DAY, 0, false)).unwrap();
        assert_eq!(
            f,
            [
                Fold {
                    train: (0, 60 * DAY),
                    test: (60 * DAY, 75 * DAY)
                },
                Fold {
                    train: (15 * DAY, 75 * DAY),
                    test: (75 * DAY, 90 * DAY)
                },
                Fold {
                    train: (30 * DAY, 90 * DAY),
                    test: (90 * DAY, 100 * DAY)
                },
            ]
        );
    }

    #[test]
    fn anchored_windows_all_start_at_the_range_start() {
        let f = folds(0, 100 * DAY, &wf(60 * DAY, 20 * DAY, 0, true)).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.train.0 == 0 && f.train.1 == f.test.0));
    }

    #[test]
    fn out_of_sample_windows_never_overlap_their_training_windows() {
        for f in folds(0, 365 * DAY, &wf(90 * DAY, 30 * DAY, 10 * DAY, false)).unwrap() {
            assert!(f.train.1 <= f.test.0);
        }
    }

    #[test]
    fn a_training_window_longer_than_the_range_is_refused() {
        let err = folds(0, 10 * DAY, &wf(10 * DAY, DAY, 0, false)).unwrap_err();
        assert!(err.to_string().contains("train_ms"), "{err}");
        assert!(folds(0, 10 * DAY, &wf(0, DAY, 0, false)).is_err());
        assert!(folds(0, 10 * DAY, &wf(DAY, -1, 0, false)).is_err());
    }
}
