//! What every kind of gateway job shares: loads, load batches, training sweeps and backtests.
//!
//! - [`Lifecycle`]: a job's id, creation time, cancellation token and state. The state moves
//!   QUEUED → RUNNING → one terminal state (COMPLETED, FAILED, CANCELLED) and never leaves it;
//!   waiters follow it through a watch channel, so "cancel, then wait briefly for the end" is
//!   written once.
//! - [`JobTable`]: the jobs a gateway knows, oldest first. A running job is never dropped;
//!   once more than `kept` jobs are held, the oldest finished ones go. Lookup trims the id;
//!   listing is newest first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ktrdr_common::status::now_ms;
use ktrdr_proto::common::v1::JobState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a cancel call waits for its job to stop before answering with the state it has.
pub const CANCEL_WAIT: Duration = Duration::from_secs(2);

/// A job's identity, cancellation and state.
pub struct Lifecycle {
    pub id: String,
    pub created_at_ms: i64,
    pub cancel: CancellationToken,
    state: watch::Sender<JobState>,
}

impl Lifecycle {
    /// A QUEUED job created now.
    pub fn new(id: String) -> Self {
        Self {
            id,
            created_at_ms: now_ms(),
            cancel: CancellationToken::new(),
            state: watch::Sender::new(JobState::Queued),
        }
    }

    pub fn state(&self) -> JobState {
        *self.state.borrow()
    }

    pub fn is_terminal(&self) -> bool {
        self.state().is_terminal()
    }

    /// Moves the job to `state`; a finished job keeps its terminal state.
    pub fn set_state(&self, state: JobState) {
        self.state.send_if_modified(|current| {
            let change = !current.is_terminal() && *current != state;
            if change {
                *current = state;
            }
            change
        });
    }

    /// Waits up to `wait` for the job to finish; its state then.
    pub async fn finished_within(&self, wait: Duration) -> JobState {
        let mut state = self.state.subscribe();
        let _ = tokio::time::timeout(wait, state.wait_for(|s| s.is_terminal())).await;
        self.state()
    }

    /// Cancels the job and waits (up to [`CANCEL_WAIT`]) for it to stop; its state then.
    pub async fn cancel_and_wait(&self) -> JobState {
        self.cancel.cancel();
        self.finished_within(CANCEL_WAIT).await
    }
}

/// A kind of job a [`JobTable`] holds.
pub trait Tracked: Send + Sync {
    fn lifecycle(&self) -> &Lifecycle;
}

/// The jobs of one kind a gateway knows, oldest first.
pub struct JobTable<J> {
    jobs: Mutex<VecDeque<Arc<J>>>,
    kept: usize,
}

impl<J: Tracked> JobTable<J> {
    /// A table that keeps at most `kept` jobs once the oldest have finished.
    pub fn new(kept: usize) -> Self {
        Self {
            jobs: Mutex::new(VecDeque::new()),
            kept,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<J>>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `job`, dropping the oldest finished jobs beyond the limit.
    pub fn insert(&self, job: Arc<J>) {
        let mut jobs = self.lock();
        jobs.push_back(job);
        while jobs.len() > self.kept {
            let Some(oldest) = jobs.iter().position(|j| j.lifecycle().is_terminal()) else {
                return;
            };
            jobs.remove(oldest);
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<J>> {
        let id = id.trim();
        self.lock().iter().find(|j| j.lifecycle().id == id).cloned()
    }

    /// Every job, newest first.
    pub fn newest_first(&self) -> Vec<Arc<J>> {
        self.lock().iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain(Lifecycle);

    impl Tracked for Plain {
        fn lifecycle(&self) -> &Lifecycle {
            &self.0
        }
    }

    fn job(id: &str) -> Arc<Plain> {
        Arc::new(Plain(Lifecycle::new(id.to_owned())))
    }

    #[test]
    fn a_finished_state_is_final() {
        let life = Lifecycle::new("j".into());
        life.set_state(JobState::Running);
        life.set_state(JobState::Cancelled);
        life.set_state(JobState::Completed);
        assert_eq!(life.state(), JobState::Cancelled);
    }

    #[test]
    fn the_oldest_finished_jobs_go_first_and_running_ones_stay() {
        let table = JobTable::new(2);
        let (a, b, c) = (job("a"), job("b"), job("c"));
        a.0.set_state(JobState::Running);
        b.0.set_state(JobState::Completed);
        for j in [&a, &b, &c] {
            table.insert(Arc::clone(j));
        }
        let ids: Vec<_> = table
            .newest_first()
            .iter()
            .map(|j| j.0.id.clone())
            .collect();
        assert_eq!(ids, ["c", "a"]);
        assert!(table.get(" a ").is_some());
        assert!(table.get("b").is_none());
        // Nothing finished: the table grows rather than drop a running job.
        table.insert(job("d"));
        assert_eq!(table.newest_first().len(), 3);
    }

    #[tokio::test]
    async fn cancel_and_wait_answers_with_the_state_the_job_ended_in() {
        let life = Arc::new(Lifecycle::new("j".into()));
        let worker = Arc::clone(&life);
        tokio::spawn(async move {
            worker.cancel.cancelled().await;
            worker.set_state(JobState::Cancelled);
        });
        assert_eq!(life.cancel_and_wait().await, JobState::Cancelled);
    }

    #[tokio::test]
    async fn a_job_that_does_not_stop_in_time_is_reported_as_still_running() {
        let life = Lifecycle::new("j".into());
        life.set_state(JobState::Running);
        life.cancel.cancel();
        let state = life.finished_within(Duration::from_millis(20)).await;
        assert_eq!(state, JobState::Running);
    }
}
