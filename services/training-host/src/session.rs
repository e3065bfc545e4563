//! One session in memory: its record, a bounded ring of its events, live watchers and its
//! cancel flag.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ktrdr_common::status::now_ms;
use tokio::sync::broadcast;

use crate::persist::SessionStore;
use crate::record::{Event, EventKind, SessionFile, SessionRecord, State};

/// Events kept per session. Batch progress is throttled to a few per second and is the first
/// to go when the ring is full, so state changes and epoch metrics of even long runs stay.
pub const MAX_EVENTS: usize = 2_000;
/// Progress events (epochs, checkpoints, logs) are written to the session file at most this
/// often; state changes always.
const PERSIST_INTERVAL: Duration = Duration::from_secs(1);
/// Live events buffered per watcher before it lags (it then catches up from the ring).
const WATCH_BUFFER: usize = 256;

#[derive(Debug)]
pub struct Session {
    pub id: String,
    state: Mutex<Inner>,
    /// Serialises emits, so a newer file snapshot is never overwritten by an older one and
    /// watchers get events in sequence order.
    persist: Mutex<Option<Instant>>,
    tx: broadcast::Sender<Event>,
    cancel: AtomicBool,
    cancel_reason: Mutex<String>,
    /// A span in the trace of the StartTraining call that created the session, for its run
    /// (bar reads from the data service included). Taken when the run starts, so it closes
    /// (and is exported) when the run ends.
    origin: Mutex<Option<tracing::Span>>,
}

#[derive(Debug)]
struct Inner {
    record: SessionRecord,
    events: VecDeque<Event>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    pub fn new(record: SessionRecord, events: Vec<Event>) -> Self {
        let (tx, _) = broadcast::channel(WATCH_BUFFER);
        crate::metrics::session_moved(None, record.state);
        Self {
            id: record.id.clone(),
            state: Mutex::new(Inner {
                record,
                events: events.into(),
            }),
            persist: Mutex::new(None),
            tx,
            cancel: AtomicBool::new(false),
            cancel_reason: Mutex::new(String::new()),
            origin: Mutex::new(None),
        }
    }

    /// The session, traced as part of `origin` (a span of the call that created it).
    pub fn traced(self, origin: tracing::Span) -> Self {
        *lock(&self.origin) = Some(origin);
        self
    }

    /// The span to run the session in (none for sessions restored from disk).
    pub fn take_origin(&self) -> tracing::Span {
        lock(&self.origin)
            .take()
            .unwrap_or_else(tracing::Span::none)
    }

    pub fn record(&self) -> SessionRecord {
        lock(&self.state).record.clone()
    }

    pub fn state(&self) -> State {
        lock(&self.state).record.state
    }

    /// Changes the record without an event (e.g. the loaded range).
    pub fn update(&self, f: impl FnOnce(&mut SessionRecord)) {
        f(&mut lock(&self.state).record);
    }

    pub fn cancel_flag(&self) -> &AtomicBool {
        &self.cancel
    }

    pub fn request_cancel(&self, reason: &str) {
        *lock(&self.cancel_reason) = reason.to_owned();
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn cancel_requested(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    pub fn cancel_reason(&self) -> String {
        let reason = lock(&self.cancel_reason).clone();
        if reason.is_empty() {
            "cancelled by user".to_owned()
        } else {
            format!("cancelled by user: {reason}")
        }
    }

    /// Records `kind` as the next event, applies it to the record, writes the session file
    /// (except for batch progress) and then tells watchers: an event a watcher has seen is on
    /// disk, even if the host is killed right after. Returns the event.
    pub fn emit(&self, kind: EventKind, store: &SessionStore) -> Event {
        // One emit at a time per session: file snapshots and live events stay in order.
        let mut last_write = lock(&self.persist);
        let persist = match kind {
            EventKind::Batch(_) => false,
            EventKind::StateChanged { .. }
            | EventKind::ModelSaved { .. }
            | EventKind::FinalMetrics(_) => true,
            // Epochs can take milliseconds: an fsync each would dominate short runs. The next
            // state change writes whatever was skipped.
            _ => last_write.is_none_or(|t| t.elapsed() >= PERSIST_INTERVAL),
        };
        let (event, file) = {
            let mut inner = lock(&self.state);
            let now = now_ms();
            let event = Event {
                sequence: inner.record.last_sequence + 1,
                time_ms: now,
                kind,
            };
            apply(&mut inner.record, &event);
            if inner.events.len() >= MAX_EVENTS {
                match inner
                    .events
                    .iter()
                    .position(|e| matches!(e.kind, EventKind::Batch(_)))
                {
                    Some(i) => {
                        inner.events.remove(i);
                    }
                    None => {
                        inner.events.pop_front();
                    }
                }
            }
            inner.events.push_back(event.clone());
            // A finished session keeps only what its file keeps: finished sessions accumulate
            // for the life of the host, batch progress of old runs is of no use.
            if event.new_state().is_some_and(State::is_terminal) {
                inner
                    .events
                    .retain(|e| !matches!(e.kind, EventKind::Batch(_)));
            }
            let file = persist.then(|| SessionFile {
                record: inner.record.clone(),
                events: inner
                    .events
                    .iter()
                    .filter(|e| !matches!(e.kind, EventKind::Batch(_)))
                    .cloned()
                    .collect(),
            });
            (event, file)
        };
        if let Some(file) = file {
            *last_write = Some(Instant::now());
            if let Err(e) = store.save(&file) {
                tracing::error!(session = %self.id, error = %e, "cannot write the session file");
            }
        }
        // A watcher that subscribed after the event entered the ring sees it twice (ring and
        // live); watchers skip sequence numbers they have already sent.
        let _ = self.tx.send(event.clone());
        event
    }

    /// Retained events after `after`, a live receiver that continues exactly after them, and
    /// whether the session had already ended.
    pub fn subscribe(&self, after: i64) -> (Vec<Event>, broadcast::Receiver<Event>, bool) {
        let inner = lock(&self.state);
        let past = inner
            .events
            .iter()
            .filter(|e| e.sequence > after)
            .cloned()
            .collect();
        (past, self.tx.subscribe(), inner.record.state.is_terminal())
    }

    pub fn events_after(&self, after: i64) -> (Vec<Event>, bool) {
        let inner = lock(&self.state);
        (
            inner
                .events
                .iter()
                .filter(|e| e.sequence > after)
                .cloned()
                .collect(),
            inner.record.state.is_terminal(),
        )
    }
}

/// What an event changes in the session summary.
fn apply(record: &mut SessionRecord, event: &Event) {
    record.last_sequence = event.sequence;
    match &event.kind {
        EventKind::StateChanged { to, reason, .. } => {
            crate::metrics::session_moved(Some(record.state), *to);
            record.state = *to;
            if to.is_active() && record.started_at_ms == 0 {
                record.started_at_ms = event.time_ms;
            }
            if to.is_terminal() {
                record.finished_at_ms = event.time_ms;
                record.eta_ms = None;
                if *to == State::Completed {
                    record.percent = 100.0;
                }
            }
            if *to == State::Failed {
                record.error = reason.clone();
            }
        }
        EventKind::Epoch(e) => {
            record.epochs_done = e.epoch;
            record.percent = e.percent;
            record.eta_ms = e.eta_ms;
            let metrics = record.metrics.get_or_insert_with(Default::default);
            metrics.train_loss = e.train_loss;
            metrics.train_accuracy = e.train_accuracy;
            metrics.val_loss = Some(e.val_loss);
            metrics.val_accuracy = Some(e.val_accuracy);
            metrics.best_epoch = e.best_epoch;
            metrics.epochs_run = e.epoch;
        }
        EventKind::Batch(b) => {
            record.percent = b.percent;
            record.eta_ms = b.eta_ms;
        }
        EventKind::ModelSaved { model_id, .. } => record.model_id = model_id.clone(),
        EventKind::CheckpointSaved { epoch, .. } => record.last_checkpoint_epoch = *epoch,
        EventKind::FinalMetrics(m) => record.metrics = Some(m.clone()),
        EventKind::DataLoaded { .. } | EventKind::DataSplit(_) | EventKind::Log { .. } => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::record::{BatchEvent, SessionSpec};

    pub(crate) fn record(id: &str) -> SessionRecord {
        SessionRecord {
            id: id.to_owned(),
            spec: SessionSpec {
                strategy_yaml: String::new(),
                strategy_name: "s".into(),
                symbols: vec!["EURUSD".into()],
                timeframes: vec!["1h".into()],
                start_ms: i64::MIN,
                end_ms: i64::MAX,
                epochs: 1,
                batch_size: 1,
                learning_rate: 0.1,
                hidden_layers: Vec::new(),
                seed: 1,
                device: "cpu".into(),
                labels: Default::default(),
                resumed_from: None,
                resume_checkpoint: None,
            },
            state: State::Queued,
            created_at_ms: 1,
            started_at_ms: 0,
            finished_at_ms: 0,
            epochs_done: 0,
            percent: 0.0,
            eta_ms: None,
            metrics: None,
            model_id: String::new(),
            error: String::new(),
            loaded_first_ms: 0,
            loaded_end_ms: 0,
            last_sequence: 0,
            last_checkpoint_epoch: 0,
            device: String::new(),
        }
    }

    fn batch() -> EventKind {
        EventKind::Batch(BatchEvent {
            epoch: 1,
            total_epochs: 1,
            batch: 1,
            total_batches: 1,
            percent: 1.0,
            loss: 1.0,
            accuracy: 0.0,
            eta_ms: None,
            samples_per_second: 1.0,
        })
    }

    #[test]
    fn the_ring_is_bounded_and_drops_batch_progress_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::new(dir.path());
        let session = Session::new(record("a"), Vec::new());
        session.emit(
            EventKind::StateChanged {
                from: None,
                to: State::Queued,
                reason: String::new(),
            },
            &store,
        );
        for _ in 0..MAX_EVENTS + 10 {
            session.emit(batch(), &store);
        }
        let (events, ended) = session.events_after(0);
        assert!(!ended);
        assert_eq!(events.len(), MAX_EVENTS);
        assert_eq!(events[0].sequence, 1, "the state change is kept");
        assert_eq!(events.last().unwrap().sequence, (MAX_EVENTS + 11) as i64);
        // Batch progress is live-only: the file holds the state change alone.
        let files = store.load_all();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].events.len(), 1);
    }

    #[test]
    fn a_subscriber_gets_each_event_once_across_ring_and_live() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::new(dir.path());
        let session = Session::new(record("b"), Vec::new());
        session.emit(batch(), &store);
        session.emit(batch(), &store);
        let (past, mut live, _) = session.subscribe(1);
        assert_eq!(past.iter().map(|e| e.sequence).collect::<Vec<_>>(), [2]);
        session.emit(
            EventKind::StateChanged {
                from: Some(State::Queued),
                to: State::Cancelled,
                reason: "x".into(),
            },
            &store,
        );
        let next = live.try_recv().unwrap();
        assert_eq!(next.sequence, 3);
        let (kept, ended) = session.events_after(0);
        assert!(ended);
        assert_eq!(
            kept.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [3],
            "batch progress is dropped once the session ends"
        );
        assert_eq!(session.state(), State::Cancelled);
        assert!(session.record().finished_at_ms > 0);
    }
}
