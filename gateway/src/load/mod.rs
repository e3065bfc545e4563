//! Data loads as jobs: `LoadData` validates the symbol, clamps to the head timestamp, finds what
//! the store lacks, and runs a job that fetches it segment by segment from IB and stores each
//! segment as it arrives. Loads of different datasets run in parallel; a second load of the same
//! dataset joins the running one. Jobs can be watched, listed and cancelled. A batch
//! ([`batch`]) loads many datasets as child jobs.

pub mod batch;
pub mod job;
pub mod plan;
mod run;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ktrdr_common::error::ServiceError;
use ktrdr_common::market::{symbol_field, time_range, timeframe_field};
use ktrdr_common::status::now_ms;
use ktrdr_data::calendar::Calendar;
use ktrdr_data::coverage::classify_gap;
use ktrdr_market::Timeframe;
use ktrdr_proto::common::v1::JobState;
use ktrdr_proto::data::v1::data_service_server::DataService;
use ktrdr_proto::data::v1::{CoverageSummary, GapKind, GetCoverageRequest};
use ktrdr_proto::gateway::v1::{LoadDataRequest, LoadEvent, LoadJob, LoadMode};
use ktrdr_proto::ib::v1::ib_host_service_server::IbHostService;
use ktrdr_proto::ib::v1::{GetHeadTimestampRequest, LookupContractRequest};
use tonic::{Code, Request, Status};

use self::job::{Job, JobSpec};
use self::plan::{PlanInput, StoredGap};
pub use self::run::Backends;
use self::run::{Planned, warning};
use crate::jobs::JobTable;

/// Finished jobs kept for GetLoad/ListLoads.
const FINISHED_JOBS_KEPT: usize = 500;
/// Gaps asked of the data service when planning.
const MAX_PLANNED_GAPS: i32 = 100_000;

pub struct LoadManager {
    backends: Backends,
    jobs: JobTable<Job>,
    /// The running job of each dataset.
    running: Mutex<HashMap<(String, Timeframe), Arc<Job>>>,
    batches: JobTable<batch::Batch>,
}

/// A validated `LoadDataRequest`.
fn spec_of(request: &LoadDataRequest) -> Result<JobSpec, ServiceError> {
    let symbol = symbol_field("symbol", &request.symbol)?;
    let timeframe = timeframe_field("timeframe", &request.timeframe)?;
    time_range("range", request.range.as_ref())?;
    let mode = match LoadMode::try_from(request.mode) {
        Ok(LoadMode::Unspecified) => LoadMode::Tail,
        Ok(mode) => mode,
        Err(_) => {
            return Err(ServiceError::invalid_argument(
                "mode",
                format!(
                    "unknown mode {}; use LOAD_MODE_LOCAL, LOAD_MODE_TAIL, LOAD_MODE_BACKFILL or LOAD_MODE_FULL",
                    request.mode
                ),
            ));
        }
    };
    Ok(JobSpec {
        symbol,
        timeframe,
        mode,
        range: request.range.unwrap_or_default(),
        fill_gaps: request.fill_gaps,
    })
}

fn nonzero(ms: i64) -> Option<i64> {
    (ms != 0).then_some(ms)
}

impl LoadManager {
    pub fn new(backends: Backends) -> Arc<Self> {
        Arc::new(Self {
            backends,
            jobs: JobTable::new(FINISHED_JOBS_KEPT),
            running: Mutex::new(HashMap::new()),
            batches: JobTable::new(batch::FINISHED_BATCHES_KEPT),
        })
    }

    fn running_jobs(&self) -> MutexGuard<'_, HashMap<(String, Timeframe), Arc<Job>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn running(&self, spec: &JobSpec) -> Option<Arc<Job>> {
        self.running_jobs()
            .get(&(spec.symbol.clone(), spec.timeframe))
            .cloned()
    }

    /// Starts a load, or joins the running load of the same dataset (`true`).
    pub async fn start(
        self: &Arc<Self>,
        request: &LoadDataRequest,
    ) -> Result<(Arc<Job>, bool), Status> {
        let spec = spec_of(request)?;
        if let Some(job) = self.running(&spec) {
            return Ok((job, true));
        }
        let planned = self.plan(&spec, request).await?;

        let job = Job::new(ktrdr_training_host::spec::new_session_id(), spec.clone());
        {
            let mut running = self.running_jobs();
            let key = (spec.symbol.clone(), spec.timeframe);
            // Another call may have started the same dataset while this one planned.
            if let Some(existing) = running.get(&key) {
                return Ok((Arc::clone(existing), true));
            }
            running.insert(key, Arc::clone(&job));
            self.jobs.insert(Arc::clone(&job));
        }
        let manager = Arc::clone(self);
        let running = Arc::clone(&job);
        let backends = self.backends.clone();
        // The job's calls to ib-host and data belong to the trace of the LoadData that started it.
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                run::run(Arc::clone(&running), backends, planned).await;
                let mut jobs = manager.running_jobs();
                let key = (running.spec.symbol.clone(), running.spec.timeframe);
                if jobs.get(&key).is_some_and(|j| Arc::ptr_eq(j, &running)) {
                    jobs.remove(&key);
                }
            },
            span,
        ));
        Ok((job, false))
    }

    /// Validates the symbol, finds the head timestamp and what the store holds, and plans.
    async fn plan(&self, spec: &JobSpec, request: &LoadDataRequest) -> Result<Planned, Status> {
        let mut warnings = Vec::new();
        let (instrument, head_ms) = if spec.mode == LoadMode::Local {
            (None, None)
        } else {
            let lookup = self
                .backends
                .ib
                .lookup_contract(Request::new(LookupContractRequest {
                    symbol: spec.symbol.clone(),
                    instrument_type: request.instrument_type,
                    exchange: String::new(),
                    currency: String::new(),
                    refresh: false,
                }))
                .await?
                .into_inner();
            let instrument = lookup.instruments.into_iter().next();
            let head = self
                .backends
                .ib
                .get_head_timestamp(Request::new(GetHeadTimestampRequest {
                    symbol: spec.symbol.clone(),
                    instrument_type: instrument
                        .as_ref()
                        .map_or(request.instrument_type, |i| i.instrument_type),
                    exchange: String::new(),
                    currency: String::new(),
                    what_to_show: request.what_to_show,
                    use_rth: request.use_rth,
                    con_id: instrument.as_ref().map_or(0, |i| i.con_id),
                    refresh: false,
                }))
                .await;
            let head_ms = match head {
                Ok(head) => Some(head.into_inner().head_timestamp_ms),
                Err(status) if status.code() == Code::Unavailable => return Err(status),
                Err(status) => {
                    warnings.push(warning(
                        "NO_HEAD_TIMESTAMP",
                        format!(
                            "IB gave no head timestamp ({}); the start is not clamped",
                            status.message()
                        ),
                        &[],
                    ));
                    None
                }
            };
            (instrument, head_ms)
        };

        let coverage = self
            .backends
            .data
            .get_coverage(Request::new(GetCoverageRequest {
                symbol: spec.symbol.clone(),
                timeframe: spec.timeframe.to_string(),
                range: None,
                unexpected_only: false,
                max_gaps: Some(MAX_PLANNED_GAPS),
            }))
            .await;
        let coverage = match coverage {
            Ok(c) => Some(c.into_inner()),
            Err(status) if status.code() == Code::NotFound => None,
            Err(status) => return Err(status),
        };
        let stored = coverage
            .as_ref()
            .filter(|c| c.bar_count > 0)
            .map(|c| (c.first_ms, c.last_ms));
        let gaps = coverage
            .as_ref()
            .map(|c| {
                c.gaps
                    .iter()
                    .map(|g| StoredGap {
                        span: g.range.map_or((0, 0), |r| (r.start_ms, r.end_ms)),
                        kind: GapKind::try_from(g.kind).unwrap_or(GapKind::Unexpected),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if coverage.as_ref().is_some_and(|c| c.gaps_truncated) {
            warnings.push(warning(
                "GAPS_TRUNCATED",
                format!("more than {MAX_PLANNED_GAPS} gaps stored; only the first are planned"),
                &[],
            ));
        }
        let calendar = Calendar::for_symbol(&spec.symbol);
        let timeframe = spec.timeframe;
        let expects_bars = move |(start, end): plan::Span| {
            classify_gap(calendar, timeframe, timeframe.bar_start(start), end).expected_missing_bars
                > 0
        };
        let plan = plan::plan(
            &PlanInput {
                mode: spec.mode,
                timeframe: spec.timeframe,
                start: nonzero(spec.range.start_ms),
                end: nonzero(spec.range.end_ms),
                now_ms: now_ms(),
                head_ms,
                stored,
                gaps,
                fill_gaps: spec.fill_gaps,
            },
            &expects_bars,
        );
        Ok(Planned {
            instrument,
            head_ms,
            stored_before: CoverageSummary {
                first_ms: stored.map_or(0, |(first, _)| first),
                last_ms: stored.map_or(0, |(_, last)| last),
                bar_count: coverage.as_ref().map_or(0, |c| c.bar_count),
            },
            plan,
            what_to_show: request.what_to_show,
            use_rth: request.use_rth,
            warnings,
        })
    }

    pub fn get(&self, job_id: &str) -> Result<Arc<Job>, ServiceError> {
        self.jobs.get(job_id).ok_or_else(|| {
            ServiceError::not_found(
                "LOAD_JOB_NOT_FOUND",
                format!(
                    "no load job {:?} (finished jobs are kept for the latest {FINISHED_JOBS_KEPT}); list them with ListLoads or `ktrdr data jobs`",
                    ktrdr_market::symbol::shown(job_id)
                ),
            )
            .with_metadata("job_id", job_id)
        })
    }

    /// Jobs matching the filters, newest first.
    pub fn list(&self, states: &[JobState], symbol: &str, timeframe: &str) -> Vec<LoadJob> {
        let symbol = symbol.trim().to_uppercase();
        self.jobs
            .newest_first()
            .iter()
            .map(|job| job.describe())
            .filter(|j| states.is_empty() || states.iter().any(|s| *s as i32 == j.state))
            .filter(|j| symbol.is_empty() || j.symbol == symbol)
            .filter(|j| timeframe.is_empty() || j.timeframe == timeframe)
            .collect()
    }

    /// Cancels a job and waits (briefly) until it has stopped.
    pub async fn cancel(&self, job_id: &str) -> Result<LoadJob, ServiceError> {
        let job = self.get(job_id)?;
        if !job.life.is_terminal() {
            job.life.cancel_and_wait().await;
        }
        Ok(job.describe())
    }
}

impl LoadManager {
    /// Runs one load to its end (starting it, or joining the running load of the same
    /// dataset), handing each event to `on_event`; what TrainStrategy, Predict and
    /// EvaluateModel do before they need the bars. `Ok(false)` when `on_event` returned
    /// `false` (its caller went away); a load that fails ends with its status, a cancelled one
    /// with `CANCELLED` naming the dataset and `why` it was needed.
    pub async fn run_to_end<F, Fut>(
        self: &Arc<Self>,
        request: &LoadDataRequest,
        why: &str,
        mut on_event: F,
    ) -> Result<bool, Status>
    where
        F: FnMut(LoadEvent) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        use tokio_stream::StreamExt;
        let (job, joined) = self.start(request).await?;
        let mut events = job.events(joined);
        while let Some(item) = events.next().await {
            let event = item?;
            let cancelled = matches!(
                &event.event,
                Some(ktrdr_proto::gateway::v1::load_event::Event::Summary(s))
                    if s.state() == JobState::Cancelled
            );
            if !on_event(event).await {
                return Ok(false);
            }
            if cancelled {
                return Err(Status::cancelled(format!(
                    "the data load of {} {} (job {}) was cancelled, so {why}",
                    request.symbol, request.timeframe, job.life.id
                )));
            }
        }
        Ok(true)
    }
}
