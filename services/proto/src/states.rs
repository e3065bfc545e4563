//! What the lifecycle enums of the contracts mean beyond their names: which states are final.
//! A job or session in a terminal state never leaves it.

use crate::common::v1::JobState;
use crate::training::v1::TrainingState;

impl JobState {
    /// COMPLETED, FAILED or CANCELLED.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl TrainingState {
    /// COMPLETED, FAILED, CANCELLED or INTERRUPTED.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Cancelled | Self::Interrupted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_end_states_are_terminal() {
        let ended: Vec<_> = [
            JobState::Unspecified,
            JobState::Queued,
            JobState::Running,
            JobState::Completed,
            JobState::Failed,
            JobState::Cancelled,
        ]
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
        assert_eq!(
            ended,
            [JobState::Completed, JobState::Failed, JobState::Cancelled]
        );
        assert!(TrainingState::Interrupted.is_terminal());
        assert!(!TrainingState::LoadingData.is_terminal());
        assert!(!TrainingState::Running.is_terminal());
    }
}
