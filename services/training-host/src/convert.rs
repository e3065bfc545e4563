//! Session records, events and metrics as protobuf messages.

use ktrdr_proto::common::v1::{Progress, TimeRange};
use ktrdr_proto::training::v1 as pb;

use crate::record::{Event, EventKind, Metrics, SessionRecord, State};

pub fn state(s: State) -> pb::TrainingState {
    match s {
        State::Queued => pb::TrainingState::Queued,
        State::LoadingData => pb::TrainingState::LoadingData,
        State::Running => pb::TrainingState::Running,
        State::Completed => pb::TrainingState::Completed,
        State::Failed => pb::TrainingState::Failed,
        State::Cancelled => pb::TrainingState::Cancelled,
        State::Interrupted => pb::TrainingState::Interrupted,
    }
}

pub fn state_from_pb(s: pb::TrainingState) -> Option<State> {
    Some(match s {
        pb::TrainingState::Unspecified => return None,
        pb::TrainingState::Queued => State::Queued,
        pb::TrainingState::LoadingData => State::LoadingData,
        pb::TrainingState::Running => State::Running,
        pb::TrainingState::Completed => State::Completed,
        pb::TrainingState::Failed => State::Failed,
        pb::TrainingState::Cancelled => State::Cancelled,
        pb::TrainingState::Interrupted => State::Interrupted,
    })
}

/// Open sides (`i64::MIN` / `i64::MAX`) are 0 on the wire.
pub fn range(start_ms: i64, end_ms: i64) -> TimeRange {
    TimeRange {
        start_ms: if start_ms == i64::MIN { 0 } else { start_ms },
        end_ms: if end_ms == i64::MAX { 0 } else { end_ms },
    }
}

const SIGNALS: [pb::Signal; 3] = [pb::Signal::Buy, pb::Signal::Hold, pb::Signal::Sell];

pub fn signal(class_index: usize) -> pb::Signal {
    SIGNALS
        .get(class_index)
        .copied()
        .unwrap_or(pb::Signal::Unspecified)
}

pub fn metrics(m: &Metrics) -> pb::TrainingMetrics {
    pb::TrainingMetrics {
        train_loss: m.train_loss,
        train_accuracy: m.train_accuracy,
        val_loss: m.val_loss,
        val_accuracy: m.val_accuracy,
        test_loss: m.test_loss,
        test_accuracy: m.test_accuracy,
        per_class: m
            .per_class
            .iter()
            .enumerate()
            .map(|(i, &(precision, recall, f1, support))| pb::ClassMetrics {
                signal: signal(i) as i32,
                precision,
                recall,
                f1,
                support: support as i64,
            })
            .collect(),
        confusion_matrix: m.confusion_matrix.iter().map(|&v| v as i64).collect(),
        best_epoch: m.best_epoch as i32,
        epochs_run: m.epochs_run as i32,
        early_stopped: m.early_stopped,
        training_time_ms: m.training_time_ms,
        train_samples: m.train_samples as i64,
        val_samples: m.val_samples as i64,
        test_samples: m.test_samples as i64,
    }
}

pub fn session(r: &SessionRecord, queue_position: usize) -> pb::TrainingSession {
    let spec = &r.spec;
    let (start, end) = if r.loaded_end_ms > r.loaded_first_ms {
        (r.loaded_first_ms, r.loaded_end_ms)
    } else {
        (spec.start_ms, spec.end_ms)
    };
    pb::TrainingSession {
        session_id: r.id.clone(),
        strategy_name: spec.strategy_name.clone(),
        symbols: spec.symbols.clone(),
        timeframes: spec.timeframes.clone(),
        range: Some(range(start, end)),
        state: state(r.state) as i32,
        created_at_ms: r.created_at_ms,
        started_at_ms: r.started_at_ms,
        finished_at_ms: r.finished_at_ms,
        progress: Some(Progress {
            percent: r.percent,
            step: format!("{:?}", r.state),
            items_done: i64::from(r.epochs_done),
            items_total: spec.epochs as i64,
            unit: "epochs".to_owned(),
            eta_ms: r.eta_ms,
            elapsed_ms: if r.started_at_ms == 0 {
                0
            } else if r.finished_at_ms > 0 {
                r.finished_at_ms - r.started_at_ms
            } else {
                ktrdr_common::status::now_ms() - r.started_at_ms
            },
            ..Default::default()
        }),
        metrics: r.metrics.as_ref().map(metrics),
        model_id: r.model_id.clone(),
        error: r.error.clone(),
        device: if r.device.is_empty() {
            spec.device.clone()
        } else {
            r.device.clone()
        },
        last_checkpoint_epoch: r.last_checkpoint_epoch as i32,
        labels: spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        queue_position: queue_position as i32,
        epochs: spec.epochs as i32,
        seed: spec.seed,
        resumed_from_session_id: spec.resumed_from.clone().unwrap_or_default(),
        last_sequence: r.last_sequence,
    }
}

pub fn event(session_id: &str, e: &Event) -> pb::TrainingEvent {
    use pb::training_event::Event as E;
    let kind = match &e.kind {
        EventKind::StateChanged { from, to, reason } => E::StateChanged(pb::StateChanged {
            from_state: from.map_or(pb::TrainingState::Unspecified, state) as i32,
            to_state: state(*to) as i32,
            reason: reason.clone(),
        }),
        EventKind::DataLoaded {
            symbol,
            timeframe,
            bars,
            first_ms,
            end_ms,
        } => E::DataLoaded(pb::DataLoaded {
            symbol: symbol.clone(),
            timeframe: timeframe.clone(),
            bars: *bars as i64,
            range: Some(TimeRange {
                start_ms: *first_ms,
                end_ms: *end_ms,
            }),
        }),
        EventKind::Epoch(p) => E::EpochProgress(pb::EpochProgress {
            epoch: p.epoch as i32,
            total_epochs: p.total_epochs as i32,
            batch: p.total_batches as i32,
            total_batches: p.total_batches as i32,
            percent: p.percent,
            eta_ms: p.eta_ms,
            train_loss: p.train_loss,
            train_accuracy: p.train_accuracy,
            val_loss: Some(p.val_loss),
            val_accuracy: Some(p.val_accuracy),
            learning_rate: p.learning_rate,
            samples_per_second: p.samples_per_second,
            elapsed_ms: p.elapsed_ms,
            improved: p.improved,
            best_epoch: p.best_epoch as i32,
        }),
        EventKind::Batch(b) => E::BatchProgress(pb::BatchProgress {
            epoch: b.epoch as i32,
            total_epochs: b.total_epochs as i32,
            batch: b.batch as i32,
            total_batches: b.total_batches as i32,
            percent: b.percent,
            loss: b.loss,
            accuracy: b.accuracy,
            eta_ms: b.eta_ms,
            samples_per_second: b.samples_per_second,
        }),
        EventKind::CheckpointSaved { epoch, path } => E::CheckpointSaved(pb::CheckpointSaved {
            epoch: *epoch as i32,
            path: path.clone(),
        }),
        EventKind::ModelSaved { model_id, path } => E::ModelSaved(pb::ModelSaved {
            model_id: model_id.clone(),
            path: path.clone(),
        }),
        EventKind::FinalMetrics(m) => E::FinalMetrics(metrics(m)),
        EventKind::DataSplit(report) => {
            let part = |[bars, rows, buy, hold, sell]: [u64; 5]| pb::SplitSummary {
                bars: bars as i64,
                rows: rows as i64,
                buy: buy as i64,
                hold: hold as i64,
                sell: sell as i64,
            };
            let [train, validation, test] = report.parts;
            E::DataSplit(pb::DataSplitReport {
                train: Some(part(train)),
                validation: Some(part(validation)),
                test: Some(part(test)),
                warnings: report.warnings.clone(),
            })
        }
        EventKind::Log { level, message } => E::Log(pb::LogLine {
            level: level.clone(),
            message: message.clone(),
        }),
    };
    pb::TrainingEvent {
        sequence: e.sequence,
        time_ms: e.time_ms,
        session_id: session_id.to_owned(),
        event: Some(kind),
    }
}
