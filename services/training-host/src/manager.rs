//! [`SessionManager`]: starts, queues, runs, cancels and remembers training sessions.
//!
//! At most `max_concurrent_sessions` sessions hold a slot (LOADING_DATA or RUNNING); the rest
//! wait in a FIFO queue. A session leaving the queue is placed on one of the host's devices
//! ([`crate::placement`]: the least loaded its request accepts, within the per-device limit);
//! the oldest queued session that can be placed goes first, so a session waiting for a busy
//! `cuda:1` does not hold back one that any device can take. Data loading is async I/O on the runtime; everything CPU-bound
//! (features, training, saving) runs on a dedicated OS thread per session. Sessions are written
//! to the sessions directory (`KTRDR_SESSIONS_DIR`, one per host) on every state change and epoch, and reloaded at start; sessions that
//! were queued or running when the host stopped become INTERRUPTED.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ktrdr_common::status::now_ms;
use ktrdr_market::Timeframe;
use ktrdr_proto::training::v1 as pb;
use ktrdr_strategy::StrategyError;
use ktrdr_strategy::dataset::SymbolBars;
use tokio::sync::{broadcast, mpsc};

use ktrdr_strategy::compute::Compute;

use crate::config::TrainingConfig;
use crate::data::{BarSource, Loaded};
use crate::device::{DeviceRequest, HostDevice};
use crate::error::{Result, TrainingError};
use crate::persist::SessionStore;
use crate::placement::Placement;
use crate::record::{Event, EventKind, SessionRecord, SessionSpec, State};
use crate::runner::Job;
use crate::session::Session;
use crate::spec;

/// Sessions that may wait for a slot; beyond, StartTraining answers RESOURCE_EXHAUSTED.
pub const MAX_QUEUED: usize = 4_096;
/// How long CancelTraining waits for a running session to stop before answering.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Cheap to clone; every clone drives the same sessions.
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    config: TrainingConfig,
    /// The models directory's volume id ([`crate::registry::volume_id`]); empty when it cannot
    /// be read or written.
    models_volume: String,
    data: BarSource,
    store: SessionStore,
    sessions: Mutex<Sessions>,
    save_lock: Mutex<()>,
}

struct Sessions {
    by_id: HashMap<String, Arc<Session>>,
    queue: VecDeque<String>,
    active: usize,
    /// Sessions per device, indexed as `TrainingConfig::devices`.
    placement: Placement,
}

/// One device of the host as `GetStatus` and the metrics report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLoad {
    pub device: HostDevice,
    /// Sessions placed on it now (LOADING_DATA or RUNNING).
    pub sessions: usize,
    /// Sessions it takes at once; 0 = no per-device limit.
    pub limit: usize,
}

/// Filters and paging of [`SessionManager::list`].
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub states: Vec<State>,
    pub strategy_name: String,
    pub symbol: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionManager {
    /// Loads the sessions of earlier runs; those that had not finished become INTERRUPTED.
    /// Removes what model and backtest saves of this host killed half-way left (see
    /// [`crate::registry::clean_unfinished`]).
    pub fn open(config: TrainingConfig, data: BarSource) -> Self {
        let owner = crate::runner::staging_owner(&config.sessions_dir);
        crate::registry::clean_unfinished(&config.models_dir, &owner);
        crate::backtest::clean_staging(&config.models_dir, &owner);
        let models_volume = crate::registry::volume_id(&config.models_dir).unwrap_or_else(|e| {
            tracing::warn!(
                dir = %config.models_dir.display(),
                error = %e,
                "cannot read the models volume id"
            );
            String::new()
        });
        let store = SessionStore::new(&config.sessions_dir);
        let mut sessions = Sessions {
            by_id: HashMap::new(),
            queue: VecDeque::new(),
            active: 0,
            placement: Placement::new(
                config.devices.iter().map(|d| d.compute).collect(),
                config.sessions_per_device,
            ),
        };
        for file in store.load_all() {
            let state = file.record.state;
            let session = Arc::new(Session::new(file.record, file.events));
            if !state.is_terminal() {
                // The session file lags behind checkpoints by up to a second; the epoch file
                // written with the weights is exact.
                let stem = crate::runner::existing_checkpoint_stem(
                    &config.sessions_dir,
                    &config.models_dir,
                    &session.id,
                );
                if let Some(epoch) = stem
                    .ok()
                    .and_then(|stem| std::fs::read_to_string(stem.with_extension("epoch")).ok())
                    .and_then(|e| e.trim().parse::<u32>().ok())
                {
                    session.update(|r| r.last_checkpoint_epoch = epoch);
                }
                session.emit(
                    EventKind::StateChanged {
                        from: Some(state),
                        to: State::Interrupted,
                        reason: format!(
                            "the training host stopped while the session was {state:?}; \
                             start again with resume_from_session_id"
                        ),
                    },
                    &store,
                );
            }
            sessions.by_id.insert(session.id.clone(), session);
        }
        if !sessions.by_id.is_empty() {
            tracing::info!(sessions = sessions.by_id.len(), "loaded training sessions");
        }
        Self {
            inner: Arc::new(Inner {
                config,
                models_volume,
                data,
                store,
                sessions: Mutex::new(sessions),
                save_lock: Mutex::new(()),
            }),
        }
    }

    pub fn config(&self) -> &TrainingConfig {
        &self.inner.config
    }

    pub fn data(&self) -> &BarSource {
        &self.inner.data
    }

    pub fn models_dir(&self) -> PathBuf {
        self.inner.config.models_dir.clone()
    }

    /// The models directory's volume id, read at start; empty when unknown.
    pub fn models_volume(&self) -> &str {
        &self.inner.models_volume
    }

    /// What names this host's staging directories in the shared models directory.
    pub fn staging_owner(&self) -> String {
        crate::runner::staging_owner(&self.inner.config.sessions_dir)
    }

    /// (sessions holding a slot, sessions queued).
    pub fn load(&self) -> (usize, usize) {
        let s = lock(&self.inner.sessions);
        (s.active, s.queue.len())
    }

    /// Each device with the sessions on it, in `KTRDR_TRAINING_DEVICE` order.
    pub fn devices(&self) -> Vec<DeviceLoad> {
        let s = lock(&self.inner.sessions);
        self.inner
            .config
            .devices
            .iter()
            .enumerate()
            .map(|(i, device)| DeviceLoad {
                device: device.clone(),
                sessions: s.placement.sessions(i),
                limit: s.placement.limit(),
            })
            .collect()
    }

    /// The device a session without a device request would be placed on now (the first
    /// when all are full).
    pub fn default_device(&self) -> &HostDevice {
        let index = lock(&self.inner.sessions)
            .placement
            .choose(DeviceRequest::Any)
            .unwrap_or(0);
        let devices = &self.inner.config.devices;
        devices.get(index).unwrap_or(&devices[0])
    }

    /// Where evaluation, prediction and backtests compute: the least-loaded device.
    pub fn inference_compute(&self) -> Compute {
        self.default_device().compute
    }

    /// Refuses a device request this host can never serve, saying what it has.
    fn check_device(&self, requested: &str) -> Result<()> {
        let request = DeviceRequest::parse(requested).ok_or_else(|| {
            TrainingError::invalid(
                "device",
                format!("{requested:?} is not a device: use cpu, cuda or cuda:N"),
            )
        })?;
        if lock(&self.inner.sessions).placement.serves(request) {
            return Ok(());
        }
        Err(TrainingError::Precondition {
            reason: "DEVICE_UNAVAILABLE".to_owned(),
            message: format!(
                "device {requested} is not available on this training host; it has {} \
                 (KTRDR_TRAINING_DEVICE chooses them); ask for one of those or leave device unset",
                crate::device::describe(&self.inner.config.devices)
            ),
            field: "device".to_owned(),
        })
    }

    fn session(&self, id: &str) -> Result<Arc<Session>> {
        lock(&self.inner.sessions)
            .by_id
            .get(id.trim())
            .cloned()
            .ok_or_else(|| TrainingError::SessionNotFound(id.to_owned()))
    }

    /// A session's summary and its queue position (1-based; 0 when not queued).
    pub fn get(&self, id: &str) -> Result<(SessionRecord, usize)> {
        let session = self.session(id)?;
        let position = self.queue_position(id);
        Ok((session.record(), position))
    }

    fn queue_position(&self, id: &str) -> usize {
        lock(&self.inner.sessions)
            .queue
            .iter()
            .position(|q| q == id)
            .map_or(0, |p| p + 1)
    }

    /// Validates the request, queues the session and starts it when a slot is free.
    pub async fn start(
        &self,
        request: &pb::StartTrainingRequest,
    ) -> Result<(SessionRecord, usize)> {
        let spec = self.resolve(request)?;
        self.check_device(&spec.device)?;
        // Fail fast when the bars cannot be read at all, rather than queueing a doomed session.
        self.inner.data.ping().await?;
        let record = SessionRecord {
            id: spec::new_session_id(),
            spec,
            state: State::Queued,
            created_at_ms: now_ms(),
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
        };
        let origin = tracing::info_span!("training session", session_id = %record.id);
        let session = Arc::new(Session::new(record, Vec::new()).traced(origin));
        {
            let mut sessions = lock(&self.inner.sessions);
            if sessions.queue.len() >= MAX_QUEUED {
                return Err(TrainingError::QueueFull(format!(
                    "{} sessions are queued already (the limit); retry later",
                    sessions.queue.len()
                )));
            }
            // Checked under the lock that inserts, so two resumes racing cannot both pass.
            if let Some(earlier) = &session.record().spec.resumed_from
                && let Some(other) = sessions.by_id.values().find(|s| {
                    !s.state().is_terminal()
                        && s.record().spec.resumed_from.as_ref() == Some(earlier)
                })
            {
                return Err(TrainingError::SessionBusy {
                    session_id: earlier.clone(),
                    message: format!(
                        "session {earlier} is being resumed already by session {} ({:?}); \
                         watch or cancel that one instead of resuming again",
                        other.id,
                        other.state()
                    ),
                });
            }
            session.emit(
                EventKind::StateChanged {
                    from: None,
                    to: State::Queued,
                    reason: "waiting for a training slot".to_owned(),
                },
                &self.inner.store,
            );
            sessions.by_id.insert(session.id.clone(), session.clone());
            sessions.queue.push_back(session.id.clone());
        }
        self.schedule();
        let position = self.queue_position(&session.id);
        Ok((session.record(), position))
    }

    fn resolve(&self, request: &pb::StartTrainingRequest) -> Result<SessionSpec> {
        let resume = request
            .resume_from_session_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let Some(resume) = resume else {
            return spec::resolve(request, &self.inner.config.strategies_dir);
        };
        let earlier = self.session(resume).map_err(|_| {
            TrainingError::invalid(
                "resume_from_session_id",
                format!("no training session {resume}"),
            )
        })?;
        let earlier = earlier.record();
        if !earlier.state.is_terminal() {
            return Err(TrainingError::SessionBusy {
                session_id: earlier.id.clone(),
                message: format!(
                    "session {resume} is {:?}, not finished; cancel it first, or watch it",
                    earlier.state
                ),
            });
        }
        if earlier.state == State::Completed {
            return Err(TrainingError::invalid(
                "resume_from_session_id",
                format!(
                    "session {resume} is COMPLETED; only CANCELLED, INTERRUPTED or FAILED sessions can be resumed"
                ),
            ));
        }
        // Without a strategy in the request, the earlier session's resolved request is rerun.
        let mut spec = if request.strategy.is_none() {
            let mut spec = earlier.spec.clone();
            spec.labels.extend(request.labels.clone());
            spec
        } else {
            spec::resolve(request, &self.inner.config.strategies_dir)?
        };
        let checkpoint = crate::runner::existing_checkpoint_stem(
            &self.inner.config.sessions_dir,
            &self.inner.config.models_dir,
            &earlier.id,
        )?;
        // The epoch file is written with the weights; the session record may lag behind it.
        let epoch = std::fs::read_to_string(checkpoint.with_extension("epoch"))
            .ok()
            .and_then(|e| e.trim().parse::<u32>().ok())
            .unwrap_or(earlier.last_checkpoint_epoch);
        if epoch > 0 && checkpoint.with_extension("mpk").is_file() {
            spec.resume_checkpoint = Some((checkpoint.display().to_string(), epoch));
        }
        spec.resumed_from = Some(earlier.id);
        Ok(spec)
    }

    /// Hands free slots to queued sessions: the oldest that a device can take first.
    fn schedule(&self) {
        let mut starting = Vec::new();
        {
            let mut sessions = lock(&self.inner.sessions);
            let mut next = 0;
            while sessions.active < self.inner.config.max_concurrent_sessions
                && next < sessions.queue.len()
            {
                let id = sessions.queue[next].clone();
                let Some(session) = sessions.by_id.get(&id).cloned() else {
                    sessions.queue.remove(next);
                    continue;
                };
                // Checked at StartTraining; a record from an older version reads as "any".
                let request = DeviceRequest::parse(&session.record().spec.device)
                    .unwrap_or(DeviceRequest::Any);
                let Some(device) = sessions.placement.place(request) else {
                    next += 1;
                    continue;
                };
                sessions.queue.remove(next);
                sessions.active += 1;
                crate::metrics::device_sessions(
                    &self.inner.config.devices[device],
                    sessions.placement.sessions(device),
                );
                starting.push((session, device));
            }
        }
        for (session, device) in starting {
            let placed = &self.inner.config.devices[device];
            session.update(|r| r.device = placed.id());
            // Before the task runs, so StartTraining already answers LOADING_DATA.
            session.emit(
                EventKind::StateChanged {
                    from: Some(State::Queued),
                    to: State::LoadingData,
                    reason: format!("training slot free on {placed}"),
                },
                &self.inner.store,
            );
            let manager = self.clone();
            let origin = session.take_origin();
            tokio::spawn(tracing::Instrument::instrument(
                async move {
                    manager.run(session, device).await;
                    {
                        let mut sessions = lock(&manager.inner.sessions);
                        sessions.active -= 1;
                        sessions.placement.release(device);
                        crate::metrics::device_sessions(
                            &manager.inner.config.devices[device],
                            sessions.placement.sessions(device),
                        );
                    }
                    manager.schedule();
                },
                origin,
            ));
        }
    }

    async fn run(&self, session: Arc<Session>, device: usize) {
        let store = &self.inner.store;
        let compute = self.inner.config.devices[device].compute;
        let outcome = match self.load_bars(&session).await {
            Ok(bars) => self.train(session.clone(), bars, compute).await,
            Err(e) => Err(e),
        };
        let from = session.state();
        match outcome {
            Ok(()) => {}
            Err(TrainingError::Strategy(StrategyError::Cancelled)) => {
                session.emit(
                    EventKind::StateChanged {
                        from: Some(from),
                        to: State::Cancelled,
                        reason: session.cancel_reason(),
                    },
                    store,
                );
            }
            Err(e) => {
                tracing::warn!(session = %session.id, error = %e, "training session failed");
                session.emit(
                    EventKind::StateChanged {
                        from: Some(from),
                        to: State::Failed,
                        reason: e.to_string(),
                    },
                    store,
                );
            }
        }
    }

    /// Streams every (symbol, timeframe) the session needs from the data service.
    async fn load_bars(&self, session: &Session) -> Result<Vec<SymbolBars>> {
        let spec = session.record().spec;
        let timeframes = spec
            .timeframes
            .iter()
            .map(|t| t.parse::<Timeframe>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| TrainingError::invalid("timeframes", e.to_string()))?;
        let base_tf = timeframes.iter().min().copied();
        let (mut first, mut end) = (i64::MAX, i64::MIN);
        let store = &self.inner.store;
        let mut on_loaded = |loaded: Loaded<'_>| {
            let tf = loaded.timeframe;
            let first_ms = loaded.bars.timestamp_ms.first().copied().unwrap_or(0);
            let end_ms = loaded
                .bars
                .timestamp_ms
                .last()
                .map_or(0, |&last| last + tf.duration_ms());
            if Some(tf) == base_tf {
                first = first.min(first_ms);
                end = end.max(end_ms);
            }
            if loaded.resampled {
                session.emit(
                    EventKind::Log {
                        level: "info".to_owned(),
                        message: format!(
                            "no stored {} {tf} bars: resampled from the base timeframe",
                            loaded.symbol
                        ),
                    },
                    store,
                );
            }
            session.emit(
                EventKind::DataLoaded {
                    symbol: loaded.symbol.to_owned(),
                    timeframe: tf.to_string(),
                    bars: loaded.bars.len() as u64,
                    first_ms,
                    end_ms,
                },
                store,
            );
        };
        let bars = self
            .inner
            .data
            .read_symbols(
                &spec.symbols,
                &timeframes,
                spec.start_ms,
                spec.end_ms,
                &|| !session.cancel_requested(),
                &mut on_loaded,
            )
            .await?;
        session.update(|r| {
            r.loaded_first_ms = first;
            r.loaded_end_ms = end;
        });
        Ok(bars)
    }

    /// Runs the CPU-bound part on a dedicated thread and waits for it without blocking.
    async fn train(
        &self,
        session: Arc<Session>,
        bars: Vec<SymbolBars>,
        compute: Compute,
    ) -> Result<()> {
        let strategy = spec::strategy_of(&session.record().spec)?;
        let manager = self.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("train-{}", &session.id[..8.min(session.id.len())]))
            .spawn(move || {
                let inner = &manager.inner;
                let result = Job {
                    session: &session,
                    store: &inner.store,
                    models_dir: &inner.config.models_dir,
                    sessions_dir: &inner.config.sessions_dir,
                    save_lock: &inner.save_lock,
                    strategy,
                    bars,
                    compute,
                }
                .run();
                let _ = tx.send(result);
            })
            .map_err(|e| TrainingError::internal(format!("cannot start a training thread: {e}")))?;
        rx.await
            .map_err(|_| TrainingError::internal("the training thread panicked"))?
    }

    /// Cancels a queued or running session; a finished one is returned unchanged. Waits (a
    /// bounded time) for a running session to stop, so the answer shows CANCELLED.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<SessionRecord> {
        let session = self.session(id)?;
        let was_queued = {
            let mut sessions = lock(&self.inner.sessions);
            let position = sessions.queue.iter().position(|q| q == &session.id);
            position.map(|p| sessions.queue.remove(p)).is_some()
        };
        session.request_cancel(reason);
        if was_queued {
            session.emit(
                EventKind::StateChanged {
                    from: Some(State::Queued),
                    to: State::Cancelled,
                    reason: session.cancel_reason(),
                },
                &self.inner.store,
            );
            return Ok(session.record());
        }
        let (_, mut live, terminal) = session.subscribe(i64::MAX);
        if !terminal {
            let _ = tokio::time::timeout(CANCEL_WAIT, async {
                while !session.state().is_terminal() {
                    match live.recv().await {
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            })
            .await;
        }
        Ok(session.record())
    }

    /// Sessions matching `filter`, newest first: (page, total matching).
    pub fn list(
        &self,
        filter: &ListFilter,
        offset: usize,
        limit: usize,
    ) -> (Vec<(SessionRecord, usize)>, usize) {
        let sessions: Vec<Arc<Session>> =
            lock(&self.inner.sessions).by_id.values().cloned().collect();
        let mut records: Vec<SessionRecord> = sessions
            .iter()
            .map(|s| s.record())
            .filter(|r| filter.states.is_empty() || filter.states.contains(&r.state))
            .filter(|r| {
                filter.strategy_name.is_empty() || r.spec.strategy_name == filter.strategy_name
            })
            .filter(|r| {
                filter.symbol.is_empty()
                    || r.spec
                        .symbols
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(&filter.symbol))
            })
            .collect();
        records.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then_with(|| b.id.cmp(&a.id))
        });
        let total = records.len();
        let page = records
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|r| {
                let position = self.queue_position(&r.id);
                (r, position)
            })
            .collect();
        (page, total)
    }

    /// A stream of the session's events after `after` (retained ones first, then live), ending
    /// after the event of a terminal state.
    pub fn watch(&self, id: &str, after: i64) -> Result<mpsc::Receiver<Event>> {
        let session = self.session(id)?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let (past, mut live, mut ended) = session.subscribe(after);
            let mut last = after;
            for event in past {
                last = event.sequence;
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            while !ended {
                match live.recv().await {
                    Ok(event) if event.sequence <= last => {}
                    Ok(event) => {
                        last = event.sequence;
                        ended = event.new_state().is_some_and(State::is_terminal);
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                    // Too slow for the live feed: catch up from the ring.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let (missed, terminal) = session.events_after(last);
                        for event in missed {
                            last = event.sequence;
                            if tx.send(event).await.is_err() {
                                return;
                            }
                        }
                        ended = terminal;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::record::SessionFile;

    fn config(models_dir: &std::path::Path, sessions_dir: PathBuf) -> TrainingConfig {
        TrainingConfig {
            models_dir: models_dir.to_owned(),
            sessions_dir,
            strategies_dir: models_dir.to_owned(),
            max_concurrent_sessions: 1,
            devices: vec![HostDevice::cpu()],
            sessions_per_device: 0,
        }
    }

    fn data() -> BarSource {
        BarSource::new(Default::default(), &["http://127.0.0.1:1".to_owned()])
    }

    fn save(store: &SessionStore, id: &str, state: State) {
        let mut record = crate::session::tests::record(id);
        record.state = state;
        record.last_sequence = 4;
        store
            .save(&SessionFile {
                record,
                events: Vec::new(),
            })
            .unwrap();
    }

    #[test]
    fn sessions_unfinished_at_the_last_stop_are_interrupted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let sessions_dir = dir.path().join(crate::persist::SESSIONS_DIR);
        let store = SessionStore::new(&sessions_dir);
        save(&store, "run", State::Running);
        save(&store, "done", State::Completed);
        let manager = SessionManager::open(config(dir.path(), sessions_dir), data());
        let (run, _) = manager.get("run").unwrap();
        assert_eq!(run.state, State::Interrupted);
        assert_eq!(run.last_sequence, 5, "sequence numbers continue");
        assert_eq!(manager.get("done").unwrap().0.state, State::Completed);
        assert!(matches!(
            manager.get("nope"),
            Err(TrainingError::SessionNotFound(_))
        ));
        // And the change is on disk.
        let reloaded = store.load_all();
        assert!(
            reloaded
                .iter()
                .any(|f| f.record.id == "run" && f.record.state == State::Interrupted)
        );
        assert_eq!(manager.load(), (0, 0));
    }

    /// Two hosts on one shared models directory, each with its own sessions directory (the
    /// StatefulSet in k8s/): a host that starts leaves the other's running sessions alone and
    /// lists only its own.
    #[test]
    fn hosts_sharing_a_models_dir_do_not_touch_each_others_sessions() {
        let models = tempfile::tempdir().unwrap();
        let dir_a = models.path().join("_sessions").join("host-a");
        let dir_b = models.path().join("_sessions").join("host-b");
        let store_a = SessionStore::new(&dir_a);
        save(&store_a, "a-running", State::Running);
        let store_b = SessionStore::new(&dir_b);
        save(&store_b, "b-stale", State::Queued);
        let before = std::fs::read(dir_a.join("a-running.json")).unwrap();

        let host_b = SessionManager::open(config(models.path(), dir_b.clone()), data());

        // Host B sees, and interrupts, only its own unfinished session.
        assert_eq!(host_b.get("b-stale").unwrap().0.state, State::Interrupted);
        assert!(matches!(
            host_b.get("a-running"),
            Err(TrainingError::SessionNotFound(_))
        ));
        let (listed, total) = host_b.list(&ListFilter::default(), 0, 100);
        assert_eq!(total, 1);
        assert_eq!(listed[0].0.id, "b-stale");
        // Host A's record is byte for byte as host A wrote it: still RUNNING.
        assert_eq!(std::fs::read(dir_a.join("a-running.json")).unwrap(), before);
        let a = store_a.load_all();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].record.state, State::Running);
        // Nothing of B's leaked into A's directory or the shared models directory's top.
        assert!(!dir_a.join("b-stale.json").exists());
        assert!(!models.path().join("b-stale.json").exists());
        // The registry still sees no models: session directories are not strategies.
        assert!(crate::registry::list(models.path()).is_empty());
    }

    /// Checkpoints live with the session records; one left by an older host under
    /// `<models>/_checkpoints` is still found, so an upgrade keeps resumable progress.
    #[test]
    fn checkpoints_move_with_the_sessions_dir_and_old_ones_are_still_found() {
        let models = tempfile::tempdir().unwrap();
        let sessions = models.path().join("_sessions").join("host-a");
        let own = crate::runner::checkpoint_stem(&sessions, "s1").unwrap();
        assert_eq!(
            own,
            sessions.join("checkpoints").join("s1").join("checkpoint")
        );
        assert_eq!(
            crate::runner::existing_checkpoint_stem(&sessions, models.path(), "s1").unwrap(),
            own
        );
        let legacy = models.path().join("_checkpoints").join("s1");
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join("checkpoint.epoch"), "3").unwrap();
        assert_eq!(
            crate::runner::existing_checkpoint_stem(&sessions, models.path(), "s1").unwrap(),
            legacy.join("checkpoint")
        );
        // Its own checkpoint wins once there is one.
        std::fs::create_dir_all(own.parent().unwrap()).unwrap();
        std::fs::write(own.with_extension("epoch"), "5").unwrap();
        assert_eq!(
            crate::runner::existing_checkpoint_stem(&sessions, models.path(), "s1").unwrap(),
            own
        );
    }
}
