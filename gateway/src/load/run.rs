//! Running a planned load: fetch each segment from IB, store it as soon as it is complete (so a
//! cancelled or failed load keeps what it fetched), report progress, and end with a summary.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ktrdr_common::status::now_ms;
use ktrdr_market::{Bars, Timeframe};
use ktrdr_proto::bars::BarsProto;
use ktrdr_proto::common::v1::{
    BarBatch, BarEncoding, Instrument, JobState, Progress, TimeRange, Warning, bar_batch,
};
use ktrdr_proto::data::v1::CoverageSummary;
use ktrdr_proto::gateway::v1::{LoadProgress, LoadStarted, LoadSummary, load_event};
use ktrdr_proto::ib::v1::ib_host_service_server::IbHostService;
use ktrdr_proto::ib::v1::{FetchBarsRequest, WhatToShow, fetch_bars_response};
use tokio_stream::StreamExt;
use tonic::{Code, Request, Status};

use super::job::{self, Job};
use super::plan::{Plan, Span};
use crate::data::DataManager;
use crate::ib::IbManager;

/// Share of the progress bar spent before the first segment (validation, planning).
const PLANNED_PERCENT: f64 = 10.0;
/// Share at the last segment; the rest is the summary.
const FETCHED_PERCENT: f64 = 95.0;

/// The host services (or in-process implementations) a load uses.
#[derive(Clone)]
pub struct Backends {
    pub ib: Arc<IbManager>,
    pub data: Arc<DataManager>,
}

/// Everything decided before the first segment is fetched.
#[derive(Debug, Clone)]
pub struct Planned {
    pub instrument: Option<Instrument>,
    pub head_ms: Option<i64>,
    /// The stored extent before the load (zeros for an empty dataset).
    pub stored_before: CoverageSummary,
    pub plan: Plan,
    pub what_to_show: i32,
    pub use_rth: bool,
    /// Warnings from planning (e.g. no head timestamp).
    pub warnings: Vec<Warning>,
}

pub fn warning(code: &str, message: String, metadata: &[(&str, String)]) -> Warning {
    Warning {
        code: code.to_owned(),
        message,
        time_ms: now_ms(),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<HashMap<_, _>>(),
    }
}

fn range(span: Span) -> TimeRange {
    TimeRange {
        start_ms: span.0,
        end_ms: span.1,
    }
}

/// Human-readable UTC time for progress steps.
fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Counters of a running load.
#[derive(Debug, Default)]
struct Tally {
    segments_done: i32,
    segments_fetched: i32,
    segments_failed: i32,
    bars_fetched: i64,
    bars_written: i64,
    ib_requests: i32,
    pacing_wait_ms: i64,
    /// Warnings not yet sent in a progress event.
    new_warnings: Vec<Warning>,
}

/// Why a segment produced no bars.
enum SegmentError {
    /// The whole load cannot go on (a backend is down, the symbol is unknown, …).
    Fatal(Status),
    /// This segment failed; the load continues without it.
    Skipped(Status),
}

/// Errors that would repeat for every further segment. An IB that did not answer in time
/// (DEADLINE_EXCEEDED) is one of them: each further segment would wait out its timeout too.
fn is_fatal(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::NotFound
            | Code::InvalidArgument
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::Unauthenticated
            | Code::Unimplemented
    )
}

fn classify(status: Status) -> SegmentError {
    if is_fatal(&status) {
        SegmentError::Fatal(status)
    } else {
        SegmentError::Skipped(status)
    }
}

fn source_of(what_to_show: i32, use_rth: bool) -> String {
    let mut source = "ib".to_owned();
    if let Ok(kind) = WhatToShow::try_from(what_to_show)
        && kind != WhatToShow::Unspecified
    {
        source.push(':');
        source.push_str(kind.as_str_name().trim_start_matches("WHAT_TO_SHOW_"));
    }
    if use_rth {
        source.push_str(":rth");
    }
    source
}

/// IB stamps some bars at the session open (e.g. 09:30 New York for hourly stock bars); the
/// store keeps bars at their UTC-aligned open time, so each is moved to the start of its slot.
fn align(bars: &mut Bars, timeframe: Timeframe) {
    for ts in &mut bars.timestamp_ms {
        *ts = timeframe.bar_start(*ts);
    }
}

struct Runner {
    job: Arc<Job>,
    backends: Backends,
    planned: Planned,
    tally: Tally,
    /// The stored extent as the latest write reported it (no extra call to learn it).
    extent: CoverageSummary,
    started: Instant,
}

impl Runner {
    fn total(&self) -> i32 {
        i32::try_from(self.planned.plan.segments.len()).unwrap_or(i32::MAX)
    }

    fn progress(&mut self, step: String, current: Option<Span>) {
        let total = self.total();
        let done = self.tally.segments_done;
        let percent = if total == 0 {
            FETCHED_PERCENT
        } else {
            PLANNED_PERCENT
                + (FETCHED_PERCENT - PLANNED_PERCENT) * f64::from(done) / f64::from(total)
        };
        let elapsed_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let eta_ms = (done > 0).then(|| elapsed_ms * i64::from(total - done) / i64::from(done));
        let warnings = std::mem::take(&mut self.tally.new_warnings);
        self.job.publish(load_event::Event::Progress(LoadProgress {
            progress: Some(Progress {
                percent,
                step: step.clone(),
                items_done: i64::from(done),
                items_total: i64::from(total),
                unit: "segments".to_owned(),
                eta_ms,
                elapsed_ms,
                message: warnings
                    .last()
                    .map(|w| w.message.clone())
                    .unwrap_or_default(),
                steps_done: 0,
                steps_total: 0,
            }),
            step,
            segments_done: done,
            segments_total: total,
            bars_fetched: self.tally.bars_fetched,
            warnings,
            current_segment: current.map(range),
            segments_failed: self.tally.segments_failed,
            pacing_wait_ms: self.tally.pacing_wait_ms,
        }));
    }

    /// Fetches one segment from IB, relaying IB progress as load progress.
    async fn fetch(&mut self, index: usize, span: Span) -> Result<Bars, SegmentError> {
        let spec = &self.job.spec;
        let instrument = self.planned.instrument.clone().unwrap_or_default();
        let request = FetchBarsRequest {
            symbol: spec.symbol.clone(),
            instrument_type: instrument.instrument_type,
            exchange: String::new(),
            currency: String::new(),
            timeframe: spec.timeframe.to_string(),
            range: Some(range(span)),
            what_to_show: self.planned.what_to_show,
            use_rth: self.planned.use_rth,
            encoding: BarEncoding::Columns as i32,
            con_id: instrument.con_id,
        };
        let mut stream = self
            .backends
            .ib
            .fetch_bars(Request::new(request))
            .await
            .map_err(classify)?
            .into_inner();
        let mut bars = Bars::default();
        let pacing_before = self.tally.pacing_wait_ms;
        let total = self.total();
        while let Some(item) = stream.next().await {
            match item.map_err(classify)?.event {
                Some(fetch_bars_response::Event::Plan(plan)) => {
                    self.tally.ib_requests +=
                        i32::try_from(plan.requests.len()).unwrap_or(i32::MAX);
                }
                Some(fetch_bars_response::Event::Progress(p)) => {
                    self.tally.pacing_wait_ms = pacing_before + p.pacing_wait_ms;
                    let step = if p.current_wait_ms > 0 {
                        format!(
                            "Segment {}/{total}: waiting {} ms for IB pacing ({})",
                            index + 1,
                            p.current_wait_ms,
                            p.pacing_rule
                        )
                    } else {
                        format!(
                            "Segment {}/{total}: IB request {}/{}",
                            index + 1,
                            p.request_index,
                            p.requests_total
                        )
                    };
                    self.progress(step, Some(span));
                }
                Some(fetch_bars_response::Event::Bars(batch)) => {
                    if let Some(bar_batch::Payload::Columns(columns)) = batch.payload {
                        self.tally.bars_fetched += columns.timestamp_ms.len() as i64;
                        let fetched = Bars::from_columns(columns).map_err(|e| {
                            SegmentError::Skipped(Status::internal(format!(
                                "ib-host sent malformed bars: {e}"
                            )))
                        })?;
                        bars.extend(&fetched);
                    }
                }
                Some(fetch_bars_response::Event::Warning(w)) => self.tally.new_warnings.push(w),
                None => {}
            }
        }
        Ok(bars)
    }

    /// Provenance recorded with the dataset (`ktrdr data list` shows it): IB, the data kind
    /// when one was asked for, and whether only regular trading hours were fetched, e.g.
    /// `ib`, `ib:MIDPOINT`, `ib:TRADES:rth`.
    fn source(&self) -> String {
        source_of(self.planned.what_to_show, self.planned.use_rth)
    }

    /// Stores one fetched segment.
    async fn store(&mut self, mut bars: Bars) -> Result<(), SegmentError> {
        if bars.is_empty() {
            return Ok(());
        }
        let spec = &self.job.spec;
        align(&mut bars, spec.timeframe);
        let count = bars.len() as i64;
        let batch = BarBatch {
            symbol: spec.symbol.clone(),
            timeframe: spec.timeframe.to_string(),
            payload: Some(bar_batch::Payload::Columns(bars.into_columns())),
            bar_count: count,
        };
        let written = self
            .backends
            .data
            .write_segment(batch, &self.source())
            .await
            .map_err(classify)?;
        self.tally.bars_written += written.bars_written;
        if let Some(extent) = written.coverage {
            self.extent = extent;
        }
        if written.bars_repaired + written.bars_dropped > 0 {
            self.tally.new_warnings.push(warning(
                "BARS_REPAIRED",
                format!(
                    "{} bars from IB were repaired and {} dropped before storing ({} issues)",
                    written.bars_repaired, written.bars_dropped, written.issues_total
                ),
                &[],
            ));
        }
        Ok(())
    }

    async fn run(mut self) {
        let plan = self.planned.plan.clone();
        self.job.publish(job::started(
            &self.job,
            LoadStarted {
                job_id: String::new(),
                symbol: self.job.spec.symbol.clone(),
                timeframe: self.job.spec.timeframe.to_string(),
                mode: self.job.spec.mode as i32,
                range: Some(range(plan.range)),
                joined: false,
                head_timestamp_ms: self.planned.head_ms.unwrap_or(0),
                bars_cached_before: self.planned.stored_before.bar_count,
                segments: plan.segments.iter().copied().map(range).collect(),
            },
        ));
        self.tally.new_warnings = std::mem::take(&mut self.planned.warnings);
        self.progress(format!("Planned {} segments", plan.segments.len()), None);

        let cancel = self.job.life.cancel.clone();
        let mut failure: Option<Status> = None;
        let mut last_skip: Option<Status> = None;
        let total = plan.segments.len();
        for (index, &span) in plan.segments.iter().enumerate() {
            if cancel.is_cancelled() {
                break;
            }
            self.progress(
                format!(
                    "Fetching segment {}/{total}: {} to {}",
                    index + 1,
                    utc(span.0),
                    utc(span.1)
                ),
                Some(span),
            );
            let fetched = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                fetched = self.fetch(index, span) => fetched,
            };
            let outcome = match fetched {
                Ok(bars) => self.store(bars).await,
                Err(e) => Err(e),
            };
            self.tally.segments_done += 1;
            match outcome {
                Ok(()) => self.tally.segments_fetched += 1,
                Err(SegmentError::Fatal(status)) => {
                    self.tally.segments_failed += 1;
                    failure = Some(if status.code() == Code::DeadlineExceeded {
                        Status::deadline_exceeded(format!(
                            "IB did not answer segment {}/{total} ({} to {}) in time, so the load stopped: {}; check that IB Gateway/TWS answers (`ktrdr health`) and load again",
                            index + 1,
                            utc(span.0),
                            utc(span.1),
                            status.message()
                        ))
                    } else {
                        status
                    });
                    break;
                }
                Err(SegmentError::Skipped(status)) => {
                    self.tally.segments_failed += 1;
                    self.tally.new_warnings.push(warning(
                        "SEGMENT_FAILED",
                        format!(
                            "segment {}/{total} ({} to {}) failed and is still missing: {}",
                            index + 1,
                            utc(span.0),
                            utc(span.1),
                            status.message()
                        ),
                        &[
                            ("segment", (index + 1).to_string()),
                            ("code", format!("{:?}", status.code())),
                        ],
                    ));
                    last_skip = Some(status);
                }
            }
            self.progress(format!("Fetched segment {}/{total}", index + 1), None);
        }

        if failure.is_none()
            && total > 0
            && self.tally.segments_fetched == 0
            && self.tally.segments_failed as usize == total
            && let Some(last) = last_skip
        {
            failure = Some(Status::new(
                last.code(),
                format!(
                    "all {total} segments failed; the last error: {}",
                    last.message()
                ),
            ));
        }
        let state = match (&failure, cancel.is_cancelled()) {
            (Some(_), _) => JobState::Failed,
            (None, true) => JobState::Cancelled,
            (None, false) => JobState::Completed,
        };
        self.finish(state, failure);
    }

    fn finish(mut self, state: JobState, failure: Option<Status>) {
        if !self.tally.new_warnings.is_empty() {
            self.progress("Finishing".to_owned(), None);
        }
        let error = failure
            .as_ref()
            .map(|s| s.message().to_owned())
            .unwrap_or_default();
        if let Some(status) = failure {
            self.job.set_failure(status);
        }
        let elapsed_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let tally = &self.tally;
        self.job.publish(load_event::Event::Summary(LoadSummary {
            bars_fetched: tally.bars_fetched,
            bars_cached_before: self.planned.stored_before.bar_count,
            bars_written: tally.bars_written,
            gaps_found: i32::try_from(self.planned.plan.gaps_found).unwrap_or(i32::MAX),
            segments_fetched: tally.segments_fetched,
            segments_failed: tally.segments_failed,
            ib_requests: tally.ib_requests,
            elapsed_ms,
            state: state as i32,
            error,
            first_ms: self.extent.first_ms,
            last_ms: self.extent.last_ms,
            bar_count: self.extent.bar_count,
            warnings: self.job.warnings(),
        }));
    }
}

/// Runs `job` to its end (spawned by the load manager).
pub async fn run(job: Arc<Job>, backends: Backends, planned: Planned) {
    Runner {
        job,
        backends,
        extent: planned.stored_before,
        planned,
        tally: Tally::default(),
        started: Instant::now(),
    }
    .run()
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_open_stamps_move_to_the_start_of_their_slot() {
        const H: i64 = 3_600_000;
        let day = 1_704_153_600_000; // 2024-01-02 00:00 UTC
        let mut bars = Bars {
            timestamp_ms: vec![day + 14 * H + 30 * 60_000, day + 15 * H],
            ..Bars::default()
        };
        align(&mut bars, Timeframe::H1);
        assert_eq!(bars.timestamp_ms, vec![day + 14 * H, day + 15 * H]);
    }

    #[test]
    fn the_source_says_what_was_fetched() {
        assert_eq!(source_of(0, false), "ib");
        assert_eq!(source_of(WhatToShow::Midpoint as i32, false), "ib:MIDPOINT");
        assert_eq!(source_of(WhatToShow::Trades as i32, true), "ib:TRADES:rth");
    }

    #[test]
    fn backend_outages_and_a_silent_ib_stop_a_load_and_pacing_only_skips_a_segment() {
        assert!(is_fatal(&Status::unavailable("down")));
        assert!(is_fatal(&Status::deadline_exceeded("IB did not answer")));
        assert!(is_fatal(&Status::not_found("unknown symbol")));
        assert!(!is_fatal(&Status::resource_exhausted("pacing")));
    }
}
