//! What a session is, as kept in memory and written to `models/_sessions/<id>.json`.
//!
//! These are our own serde types rather than the protobuf messages: the files must stay
//! readable by later versions, and the gRPC mapping lives in one place (`convert`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Lifecycle state; the numbering follows `ktrdr.training.v1.TrainingState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Queued,
    LoadingData,
    Running,
    Completed,
    Failed,
    Cancelled,
    Interrupted,
}

impl State {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Completed | State::Failed | State::Cancelled | State::Interrupted
        )
    }

    /// Holds a training slot.
    pub fn is_active(self) -> bool {
        matches!(self, State::LoadingData | State::Running)
    }
}

/// What a session was asked to do, fully resolved (no defaults left to apply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// The strategy YAML as given (or read from `strategies/`).
    pub strategy_yaml: String,
    pub strategy_name: String,
    pub symbols: Vec<String>,
    /// Base timeframe first.
    pub timeframes: Vec<String>,
    /// Half-open range of base bars, UTC epoch ms; `i64::MIN` / `i64::MAX` = open side.
    pub start_ms: i64,
    pub end_ms: i64,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Hidden layer sizes replacing the strategy's; empty = the strategy's.
    #[serde(default)]
    pub hidden_layers: Vec<usize>,
    pub seed: u64,
    /// The device asked for, normalised (`cpu`, `cuda`, `cuda:N`); empty = the host's choice.
    pub device: String,
    pub labels: BTreeMap<String, String>,
    pub resumed_from: Option<String>,
    /// The checkpoint the session continues from: weights file (without `.mpk`) and the epochs
    /// it holds.
    #[serde(default)]
    pub resume_checkpoint: Option<(String, u32)>,
}

/// Metrics as reported (epoch-level while running, final when completed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    /// BUY, HOLD, SELL: (precision, recall, f1, support).
    pub per_class: Vec<(f64, f64, f64, u64)>,
    /// Row-major 3×3, rows = truth.
    pub confusion_matrix: Vec<u64>,
    pub best_epoch: u32,
    pub epochs_run: u32,
    pub early_stopped: bool,
    pub training_time_ms: i64,
    pub train_samples: u64,
    pub val_samples: u64,
    pub test_samples: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochEvent {
    pub epoch: u32,
    pub total_epochs: u32,
    pub total_batches: u32,
    pub percent: f64,
    pub eta_ms: Option<i64>,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub learning_rate: f64,
    pub samples_per_second: f64,
    pub elapsed_ms: i64,
    pub improved: bool,
    pub best_epoch: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEvent {
    pub epoch: u32,
    pub total_epochs: u32,
    pub batch: u32,
    pub total_batches: u32,
    pub percent: f64,
    pub loss: f64,
    pub accuracy: f64,
    pub eta_ms: Option<i64>,
    pub samples_per_second: f64,
}

/// Rows and labels of one split: `[bars, rows, buy, hold, sell]`.
pub type SplitCounts = [u64; 5];

/// The split a session trains on, before training starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitReport {
    /// Train, validation, test.
    pub parts: [SplitCounts; 3],
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    StateChanged {
        from: Option<State>,
        to: State,
        reason: String,
    },
    DataLoaded {
        symbol: String,
        timeframe: String,
        bars: u64,
        first_ms: i64,
        end_ms: i64,
    },
    Epoch(EpochEvent),
    Batch(BatchEvent),
    CheckpointSaved {
        epoch: u32,
        path: String,
    },
    ModelSaved {
        model_id: String,
        path: String,
    },
    FinalMetrics(Metrics),
    DataSplit(SplitReport),
    Log {
        level: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub sequence: i64,
    pub time_ms: i64,
    pub kind: EventKind,
}

impl Event {
    /// The state this event moves the session to, if it is a state change.
    pub fn new_state(&self) -> Option<State> {
        match &self.kind {
            EventKind::StateChanged { to, .. } => Some(*to),
            _ => None,
        }
    }
}

/// The summary of a session (without its events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub spec: SessionSpec,
    pub state: State,
    pub created_at_ms: i64,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// Epochs done; with `spec.epochs` the progress.
    pub epochs_done: u32,
    pub percent: f64,
    pub eta_ms: Option<i64>,
    pub metrics: Option<Metrics>,
    pub model_id: String,
    pub error: String,
    /// Range of base bars actually loaded (resolved).
    pub loaded_first_ms: i64,
    pub loaded_end_ms: i64,
    pub last_sequence: i64,
    /// Epoch of the latest checkpoint; 0 when none.
    #[serde(default)]
    pub last_checkpoint_epoch: u32,
    /// The device the session was placed on (`cpu`, `cuda:N`); empty until it leaves the
    /// queue.
    #[serde(default)]
    pub device: String,
}

/// A session file: the record and its retained events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionFile {
    pub record: SessionRecord,
    pub events: Vec<Event>,
}
