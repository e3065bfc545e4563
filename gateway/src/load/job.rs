//! One load job's state and events. Callers that join or watch a job get its `LoadStarted`, the
//! latest progress snapshot (with every warning raised since they joined), then live events up
//! to the `LoadSummary`; a job that failed ends their streams with the error status after the
//! summary ([`crate::events`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ktrdr_common::server::ResponseStream;
use ktrdr_common::status::now_ms;
use ktrdr_market::Timeframe;
use ktrdr_proto::common::v1::{JobState, Progress, TimeRange, Warning};
use ktrdr_proto::gateway::v1::{
    LoadEvent, LoadJob, LoadMode, LoadStarted, LoadSummary, load_event,
};
use tonic::Status;

use crate::events::{EventLog, JobEvent};
use crate::jobs::{Lifecycle, Tracked};

/// What a job was asked to do.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub symbol: String,
    pub timeframe: Timeframe,
    pub mode: LoadMode,
    pub range: TimeRange,
    pub fill_gaps: bool,
}

#[derive(Debug, Default)]
struct JobInner {
    /// The range the job's plan covers, once it has one.
    planned: Option<TimeRange>,
    summary: Option<LoadSummary>,
    progress: Progress,
    warnings: Vec<Warning>,
    started_at_ms: i64,
    finished_at_ms: i64,
}

pub struct Job {
    pub life: Lifecycle,
    pub spec: JobSpec,
    inner: Mutex<JobInner>,
    events: Arc<EventLog<LoadEvent>>,
}

impl JobEvent for LoadEvent {
    fn is_last(&self) -> bool {
        matches!(self.event, Some(load_event::Event::Summary(_)))
    }

    /// A progress snapshot supersedes an earlier one that carried no warnings; the summary,
    /// which repeats every warning, supersedes the progress events that carried some. A
    /// finished job's log is thus its start, at most one progress snapshot and its summary.
    fn supersedes(&self, earlier: &Self) -> bool {
        use load_event::Event::{Progress, Summary};
        match (&self.event, &earlier.event) {
            (Some(Progress(_)), Some(Progress(p))) => p.warnings.is_empty(),
            (Some(Summary(_)), Some(Progress(p))) => !p.warnings.is_empty(),
            _ => false,
        }
    }
}

impl Job {
    pub fn new(id: String, spec: JobSpec) -> Arc<Self> {
        Arc::new(Self {
            life: Lifecycle::new(id),
            spec,
            inner: Mutex::new(JobInner::default()),
            events: Arc::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, JobInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes an event: updates the job's state and wakes every watcher.
    pub fn publish(&self, event: load_event::Event) {
        let event = LoadEvent {
            job_id: self.life.id.clone(),
            time_ms: now_ms(),
            event: Some(event),
        };
        let mut inner = self.lock();
        match &event.event {
            Some(load_event::Event::Started(s)) => {
                self.life.set_state(JobState::Running);
                inner.started_at_ms = event.time_ms;
                inner.planned = s.range;
            }
            Some(load_event::Event::Progress(p)) => {
                inner.progress = p.progress.clone().unwrap_or_default();
                inner.warnings.extend(p.warnings.iter().cloned());
            }
            Some(load_event::Event::Summary(s)) => {
                self.life.set_state(s.state());
                inner.finished_at_ms = event.time_ms;
                inner.summary = Some(s.clone());
            }
            None => {}
        }
        drop(inner);
        self.events.publish(event);
    }

    /// Records the status that ends the streams of a failed job (before its summary is
    /// published).
    pub fn set_failure(&self, status: Status) {
        self.events.set_failure(status);
    }

    pub fn warnings(&self) -> Vec<Warning> {
        self.lock().warnings.clone()
    }

    /// The job's events for one caller, `LoadStarted` marked as joined when the caller joined
    /// the job rather than started it.
    pub fn events(&self, joined: bool) -> ResponseStream<LoadEvent> {
        let events = self.events.follow();
        if !joined {
            return events;
        }
        Box::pin(tokio_stream::StreamExt::map(events, |event| {
            event.map(as_joined)
        }))
    }

    /// The job as `GetLoad`/`ListLoads` report it.
    pub fn describe(&self) -> LoadJob {
        let inner = self.lock();
        LoadJob {
            job_id: self.life.id.clone(),
            symbol: self.spec.symbol.clone(),
            timeframe: self.spec.timeframe.to_string(),
            mode: self.spec.mode as i32,
            state: self.life.state() as i32,
            progress: Some(inner.progress.clone()),
            summary: inner.summary.clone(),
            created_at_ms: self.life.created_at_ms,
            started_at_ms: inner.started_at_ms,
            finished_at_ms: inner.finished_at_ms,
            error: inner
                .summary
                .as_ref()
                .map(|s| s.error.clone())
                .unwrap_or_default(),
            range: inner.planned.or(Some(self.spec.range)),
            fill_gaps: self.spec.fill_gaps,
            warnings: inner.warnings.clone(),
            watchers: self.events.watchers(),
        }
    }
}

impl Tracked for Job {
    fn lifecycle(&self) -> &Lifecycle {
        &self.life
    }
}

/// A `LoadStarted` as sent to a caller that joined the job rather than started it.
fn as_joined(mut event: LoadEvent) -> LoadEvent {
    if let Some(load_event::Event::Started(started)) = &mut event.event {
        started.joined = true;
    }
    event
}

/// The `LoadStarted` event of `job`.
pub fn started(job: &Job, started: LoadStarted) -> load_event::Event {
    load_event::Event::Started(LoadStarted {
        job_id: job.life.id.clone(),
        ..started
    })
}

#[cfg(test)]
mod tests {
    use ktrdr_proto::common::v1::Warning;
    use ktrdr_proto::gateway::v1::LoadProgress;

    use super::*;

    fn event(event: load_event::Event) -> LoadEvent {
        LoadEvent {
            event: Some(event),
            ..LoadEvent::default()
        }
    }

    fn progress(warnings: usize) -> LoadEvent {
        event(load_event::Event::Progress(LoadProgress {
            warnings: vec![Warning::default(); warnings],
            ..LoadProgress::default()
        }))
    }

    #[test]
    fn warnings_outlive_progress_until_the_summary_that_repeats_them() {
        let summary = event(load_event::Event::Summary(LoadSummary::default()));
        let started = event(load_event::Event::Started(LoadStarted::default()));
        assert!(progress(0).supersedes(&progress(0)));
        assert!(
            !progress(0).supersedes(&progress(2)),
            "a warning is not skipped"
        );
        assert!(summary.supersedes(&progress(2)));
        assert!(!summary.supersedes(&progress(0)), "the last snapshot stays");
        assert!(!progress(0).supersedes(&started) && !summary.supersedes(&started));
        assert!(summary.is_last() && !progress(1).is_last());
    }
}
