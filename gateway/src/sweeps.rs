//! The gateway's training sweeps as jobs: each sweep's lifecycle, the sessions its points
//! started, and whether it was cancelled. Running a sweep is `sweep`'s; cancelling its sessions
//! is the training manager's (CancelTraining with a sweep id).
//!
//! Invariant: once a sweep is marked cancelled, a point that starts a session afterwards learns
//! it from [`Sweep::started`] and cancels that session itself, so none is left running.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ktrdr_proto::common::v1::JobState;
use ktrdr_training_host::spec;

use crate::jobs::{JobTable, Lifecycle, Tracked};

/// Finished sweeps kept so CancelTraining still answers for them.
const FINISHED_SWEEPS_KEPT: usize = 100;

/// One running or finished sweep. Its lifecycle's cancellation token says whether it was
/// cancelled; it is set, and read, while the sessions' lock is held, so a point that starts a
/// session either is in the list [`Sweep::cancel`] returns or learns it must cancel.
pub struct Sweep {
    pub life: Lifecycle,
    /// The sessions its points started.
    sessions: Mutex<Vec<String>>,
}

impl Tracked for Sweep {
    fn lifecycle(&self) -> &Lifecycle {
        &self.life
    }
}

impl Sweep {
    fn sessions(&self) -> MutexGuard<'_, Vec<String>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_cancelled(&self) -> bool {
        self.life.cancel.is_cancelled()
    }

    /// Records a session a point started; `false` when the sweep was cancelled meanwhile (the
    /// point cancels its session itself).
    pub fn started(&self, session_id: &str) -> bool {
        let mut sessions = self.sessions();
        sessions.push(session_id.to_owned());
        !self.is_cancelled()
    }

    /// Marks the sweep cancelled; the sessions started so far.
    pub fn cancel(&self) -> Vec<String> {
        let sessions = self.sessions();
        self.life.cancel.cancel();
        sessions.clone()
    }
}

/// The sweeps a gateway knows.
pub type Sweeps = JobTable<Sweep>;

impl JobTable<Sweep> {
    /// A table keeping the latest finished sweeps so CancelTraining still answers for them.
    pub fn for_sweeps() -> Self {
        Self::new(FINISHED_SWEEPS_KEPT)
    }

    /// A new running sweep, registered.
    pub fn create(&self) -> Arc<Sweep> {
        let sweep = Arc::new(Sweep {
            life: Lifecycle::new(format!("sweep-{}", spec::new_session_id())),
            sessions: Mutex::default(),
        });
        sweep.life.set_state(JobState::Running);
        self.insert(Arc::clone(&sweep));
        sweep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_sweep_tells_points_that_start_late_to_cancel_their_session() {
        let sweeps = Sweeps::for_sweeps();
        let sweep = sweeps.create();
        assert!(sweep.started("a"));
        assert_eq!(sweep.cancel(), ["a"]);
        assert!(sweep.is_cancelled());
        assert!(!sweep.started("b"));
        assert!(sweeps.get(&sweep.life.id).is_some());
        assert!(sweeps.get("sweep-unknown").is_none());
    }
}
