//! One load job's state and events. Callers that join or watch a job get its `LoadStarted`, the
//! latest progress snapshot, then live events up to the `LoadSummary`; a job that failed ends
//! their stream with the error status after the summary.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ktrdr_common::status::now_ms;
use ktrdr_market::Timeframe;
use ktrdr_proto::common::v1::{JobState, Progress, TimeRange, Warning};
use ktrdr_proto::gateway::v1::{LoadEvent, LoadJob, LoadMode, LoadStarted, load_event};
use tokio::sync::broadcast;
use tonic::Status;

use crate::jobs::{Lifecycle, Tracked};

/// Live events buffered per job for slow watchers; one that falls further behind resumes from
/// the latest snapshot.
const EVENT_BUFFER: usize = 256;

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
    started: Option<LoadEvent>,
    last_progress: Option<LoadEvent>,
    summary: Option<LoadEvent>,
    progress: Progress,
    warnings: Vec<Warning>,
    started_at_ms: i64,
    finished_at_ms: i64,
    error: String,
    /// The status a failed job ends its callers' streams with.
    failure: Option<Status>,
}

pub struct Job {
    pub life: Lifecycle,
    pub spec: JobSpec,
    inner: Mutex<JobInner>,
    events: broadcast::Sender<LoadEvent>,
    watchers: AtomicI32,
}

/// Keeps a job's watcher count while a caller streams its events.
pub struct WatcherGuard(Arc<Job>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a new watcher starts from.
pub struct Subscription {
    /// `LoadStarted` (if published), the latest progress, and the summary when finished.
    pub snapshot: Vec<LoadEvent>,
    /// Live events after the snapshot.
    pub live: broadcast::Receiver<LoadEvent>,
    pub guard: WatcherGuard,
}

impl Job {
    pub fn new(id: String, spec: JobSpec) -> Arc<Self> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Arc::new(Self {
            life: Lifecycle::new(id),
            spec,
            inner: Mutex::new(JobInner::default()),
            events,
            watchers: AtomicI32::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, JobInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn id(&self) -> &str {
        &self.life.id
    }

    /// Publishes an event: updates the snapshot and wakes every watcher. The lock is held while
    /// sending, so a watcher subscribing concurrently sees each event exactly once.
    pub fn publish(&self, event: load_event::Event) {
        let event = LoadEvent {
            job_id: self.life.id.clone(),
            time_ms: now_ms(),
            event: Some(event),
        };
        let mut inner = self.lock();
        match &event.event {
            Some(load_event::Event::Started(_)) => {
                self.life.set_state(JobState::Running);
                inner.started_at_ms = event.time_ms;
                inner.started = Some(event.clone());
            }
            Some(load_event::Event::Progress(p)) => {
                inner.progress = p.progress.clone().unwrap_or_default();
                inner.warnings.extend(p.warnings.iter().cloned());
                inner.last_progress = Some(event.clone());
            }
            Some(load_event::Event::Summary(s)) => {
                self.life.set_state(s.state());
                inner.finished_at_ms = event.time_ms;
                inner.error = s.error.clone();
                inner.summary = Some(event.clone());
            }
            None => {}
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    /// Records the status that ends the streams of a failed job (before its summary is
    /// published).
    pub fn set_failure(&self, status: Status) {
        self.lock().failure = Some(status);
    }

    pub fn warnings(&self) -> Vec<Warning> {
        self.lock().warnings.clone()
    }

    /// Starts watching: the snapshot so far and the live events after it.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let inner = self.lock();
        let live = self.events.subscribe();
        let snapshot = [&inner.started, &inner.last_progress, &inner.summary]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        drop(inner);
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Subscription {
            snapshot,
            live,
            guard: WatcherGuard(Arc::clone(self)),
        }
    }

    /// The failure of a finished job, for watchers that saw its summary live.
    pub fn failure(&self) -> Option<Status> {
        self.lock().failure.clone()
    }

    /// The latest snapshot, for watchers that fell behind the live buffer.
    pub fn latest(&self) -> Vec<LoadEvent> {
        let inner = self.lock();
        [&inner.last_progress, &inner.summary]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The job as `GetLoad`/`ListLoads` report it.
    pub fn describe(&self) -> LoadJob {
        let inner = self.lock();
        let summary = inner.summary.as_ref().and_then(|e| match &e.event {
            Some(load_event::Event::Summary(s)) => Some(s.clone()),
            _ => None,
        });
        let range = inner
            .started
            .as_ref()
            .and_then(|e| match &e.event {
                Some(load_event::Event::Started(s)) => s.range,
                _ => None,
            })
            .or(Some(self.spec.range));
        LoadJob {
            job_id: self.life.id.clone(),
            symbol: self.spec.symbol.clone(),
            timeframe: self.spec.timeframe.to_string(),
            mode: self.spec.mode as i32,
            state: self.life.state() as i32,
            progress: Some(inner.progress.clone()),
            summary,
            created_at_ms: self.life.created_at_ms,
            started_at_ms: inner.started_at_ms,
            finished_at_ms: inner.finished_at_ms,
            error: inner.error.clone(),
            range,
            fill_gaps: self.spec.fill_gaps,
            warnings: inner.warnings.clone(),
            watchers: self.watchers.load(Ordering::Relaxed),
        }
    }
}

impl Tracked for Job {
    fn lifecycle(&self) -> &Lifecycle {
        &self.life
    }
}

/// A `LoadStarted` as sent to a caller that joined the job rather than started it.
pub fn as_joined(event: &LoadEvent) -> LoadEvent {
    let mut event = event.clone();
    if let Some(load_event::Event::Started(started)) = &mut event.event {
        started.joined = true;
    }
    event
}

/// Whether `event` ends a job's stream.
pub fn is_summary(event: &LoadEvent) -> bool {
    matches!(event.event, Some(load_event::Event::Summary(_)))
}

/// The `LoadStarted` event of `job`.
pub fn started(job: &Job, started: LoadStarted) -> load_event::Event {
    load_event::Event::Started(LoadStarted {
        job_id: job.life.id.clone(),
        ..started
    })
}
