//! The API's messages as JSON for `--json`.
//!
//! Field names follow the proto's (snake_case); timestamps are ISO 8601 UTC strings (`null` for
//! the API's 0) with the raw `…_ms` value beside them; enums are their value names without the
//! type prefix (`COMPLETED`, `HOST_SERVICE`).

use ktrdr_proto::common::v1::{JobState, Progress, TimeRange, Warning};
use ktrdr_proto::gateway::v1::{
    BatchDataset, LoadBatchResponse, LoadEvent, LoadJob, LoadSummary, load_batch_response,
    load_event,
};
use ktrdr_proto::training::v1::{
    Model, TrainingEvent, TrainingMetrics, TrainingSession, TrainingState, training_event,
};
use serde_json::{Value, json};

use crate::time::iso_json;

/// `TRAINING_STATE_COMPLETED` → `COMPLETED`.
pub fn short_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_owned()
}

pub fn job_state(state: JobState) -> String {
    short_name(state.as_str_name(), "JOB_STATE_")
}

pub fn training_state(state: TrainingState) -> String {
    short_name(state.as_str_name(), "TRAINING_STATE_")
}

pub fn range(range: Option<&TimeRange>) -> Value {
    match range {
        None => Value::Null,
        Some(r) => json!({
            "start": iso_json(r.start_ms),
            "end": iso_json(r.end_ms),
            "start_ms": r.start_ms,
            "end_ms": r.end_ms,
        }),
    }
}

pub fn progress(progress: Option<&Progress>) -> Value {
    match progress {
        None => Value::Null,
        Some(p) => json!({
            "percent": p.percent,
            "step": p.step,
            "items_done": p.items_done,
            "items_total": p.items_total,
            "unit": p.unit,
            "eta_ms": p.eta_ms,
            "elapsed_ms": p.elapsed_ms,
            "message": p.message,
        }),
    }
}

pub fn warnings(warnings: &[Warning]) -> Value {
    warnings
        .iter()
        .map(|w| {
            json!({
                "code": w.code,
                "message": w.message,
                "time": iso_json(w.time_ms),
                "metadata": w.metadata,
            })
        })
        .collect()
}

pub fn load_summary(s: &LoadSummary) -> Value {
    json!({
        "state": job_state(s.state()),
        "error": s.error,
        "bars_fetched": s.bars_fetched,
        "bars_cached_before": s.bars_cached_before,
        "bars_written": s.bars_written,
        "gaps_found": s.gaps_found,
        "segments_fetched": s.segments_fetched,
        "segments_failed": s.segments_failed,
        "ib_requests": s.ib_requests,
        "elapsed_ms": s.elapsed_ms,
        "first": iso_json(s.first_ms),
        "last": iso_json(s.last_ms),
        "bar_count": s.bar_count,
        "warnings": warnings(&s.warnings),
    })
}

/// One load event as a JSON line: `{"event": "started" | "progress" | "summary", "job_id", …}`.
pub fn load_event(event: &LoadEvent) -> Value {
    let mut value = match &event.event {
        Some(load_event::Event::Started(s)) => json!({
            "event": "started",
            "symbol": s.symbol,
            "timeframe": s.timeframe,
            "mode": short_name(s.mode().as_str_name(), "LOAD_MODE_"),
            "range": range(s.range.as_ref()),
            "joined": s.joined,
            "head_timestamp": iso_json(s.head_timestamp_ms),
            "bars_cached_before": s.bars_cached_before,
            "segments": s.segments.iter().map(|r| range(Some(r))).collect::<Vec<_>>(),
        }),
        Some(load_event::Event::Progress(p)) => json!({
            "event": "progress",
            "step": p.step,
            "segments_done": p.segments_done,
            "segments_total": p.segments_total,
            "segments_failed": p.segments_failed,
            "bars_fetched": p.bars_fetched,
            "pacing_wait_ms": p.pacing_wait_ms,
            "progress": progress(p.progress.as_ref()),
            "warnings": warnings(&p.warnings),
        }),
        Some(load_event::Event::Summary(s)) => {
            let mut value = load_summary(s);
            value["event"] = "summary".into();
            value
        }
        None => json!({ "event": "unknown" }),
    };
    value["job_id"] = event.job_id.clone().into();
    value["time"] = iso_json(event.time_ms);
    value
}

/// One dataset of a batch load.
pub fn batch_dataset(d: &BatchDataset) -> Value {
    let mut value = json!({
        "symbol": d.symbol,
        "timeframe": d.timeframe,
        "job_id": d.job_id,
        "state": job_state(d.state()),
        "error": d.error,
    });
    if let Some(summary) = &d.summary {
        value["summary"] = load_summary(summary);
    }
    value
}

/// One item of a batch load's stream (JSON Lines), with the batch id.
pub fn batch_event(response: &LoadBatchResponse) -> Value {
    let mut value = match &response.event {
        Some(load_batch_response::Event::Started(s)) => json!({
            "event": "batch_started",
            "datasets": s.datasets.iter().map(batch_dataset).collect::<Vec<_>>(),
        }),
        Some(load_batch_response::Event::Child(c)) => {
            let mut value = c
                .event
                .as_ref()
                .map_or_else(|| json!({ "event": "unknown" }), load_event);
            value["symbol"] = c.symbol.clone().into();
            value["timeframe"] = c.timeframe.clone().into();
            value
        }
        Some(load_batch_response::Event::Progress(p)) => json!({
            "event": "batch_progress",
            "progress": progress(p.progress.as_ref()),
            "dataset": p.dataset.as_ref().map(batch_dataset),
        }),
        Some(load_batch_response::Event::Summary(s)) => json!({
            "event": "batch_summary",
            "state": job_state(s.state()),
            "completed": s.completed,
            "failed": s.failed,
            "cancelled": s.cancelled,
            "elapsed_ms": s.elapsed_ms,
            "datasets": s.datasets.iter().map(batch_dataset).collect::<Vec<_>>(),
        }),
        None => json!({ "event": "unknown" }),
    };
    value["batch_id"] = response.batch_id.clone().into();
    value
}

pub fn load_job(job: &LoadJob) -> Value {
    json!({
        "job_id": job.job_id,
        "symbol": job.symbol,
        "timeframe": job.timeframe,
        "mode": short_name(job.mode().as_str_name(), "LOAD_MODE_"),
        "state": job_state(job.state()),
        "progress": progress(job.progress.as_ref()),
        "summary": job.summary.as_ref().map(load_summary),
        "created": iso_json(job.created_at_ms),
        "started": iso_json(job.started_at_ms),
        "finished": iso_json(job.finished_at_ms),
        "error": job.error,
        "range": range(job.range.as_ref()),
    })
}

pub fn metrics(m: Option<&TrainingMetrics>) -> Value {
    let Some(m) = m else { return Value::Null };
    json!({
        "train_loss": m.train_loss,
        "train_accuracy": m.train_accuracy,
        "val_loss": m.val_loss,
        "val_accuracy": m.val_accuracy,
        "test_loss": m.test_loss,
        "test_accuracy": m.test_accuracy,
        "per_class": m.per_class.iter().map(|c| json!({
            "signal": short_name(c.signal().as_str_name(), "SIGNAL_"),
            "precision": c.precision,
            "recall": c.recall,
            "f1": c.f1,
            "support": c.support,
        })).collect::<Vec<_>>(),
        "confusion_matrix": m.confusion_matrix,
        "best_epoch": m.best_epoch,
        "epochs_run": m.epochs_run,
        "early_stopped": m.early_stopped,
        "training_time_ms": m.training_time_ms,
        "train_samples": m.train_samples,
        "val_samples": m.val_samples,
        "test_samples": m.test_samples,
    })
}

pub fn session(s: &TrainingSession) -> Value {
    json!({
        "session_id": s.session_id,
        "strategy_name": s.strategy_name,
        "symbols": s.symbols,
        "timeframes": s.timeframes,
        "range": range(s.range.as_ref()),
        "state": training_state(s.state()),
        "created": iso_json(s.created_at_ms),
        "started": iso_json(s.started_at_ms),
        "finished": iso_json(s.finished_at_ms),
        "progress": progress(s.progress.as_ref()),
        "metrics": metrics(s.metrics.as_ref()),
        "model_id": s.model_id,
        "error": s.error,
        "device": s.device,
        "last_checkpoint_epoch": s.last_checkpoint_epoch,
        "labels": s.labels,
        "queue_position": s.queue_position,
        "epochs": s.epochs,
        "seed": s.seed,
        "resumed_from_session_id": s.resumed_from_session_id,
    })
}

/// One training event as a JSON line: `{"event": "state_changed" | "epoch" | …, "sequence", …}`.
pub fn training_event(event: &TrainingEvent) -> Value {
    use training_event::Event;
    let mut value = match &event.event {
        Some(Event::StateChanged(s)) => json!({
            "event": "state_changed",
            "from": training_state(s.from_state()),
            "to": training_state(s.to_state()),
            "reason": s.reason,
        }),
        Some(Event::DataLoaded(d)) => json!({
            "event": "data_loaded",
            "symbol": d.symbol,
            "timeframe": d.timeframe,
            "bars": d.bars,
            "range": range(d.range.as_ref()),
        }),
        Some(Event::EpochProgress(e)) => json!({
            "event": "epoch",
            "epoch": e.epoch,
            "total_epochs": e.total_epochs,
            "percent": e.percent,
            "eta_ms": e.eta_ms,
            "train_loss": e.train_loss,
            "train_accuracy": e.train_accuracy,
            "val_loss": e.val_loss,
            "val_accuracy": e.val_accuracy,
            "learning_rate": e.learning_rate,
            "samples_per_second": e.samples_per_second,
            "elapsed_ms": e.elapsed_ms,
            "improved": e.improved,
            "best_epoch": e.best_epoch,
        }),
        Some(Event::BatchProgress(b)) => json!({
            "event": "batch",
            "epoch": b.epoch,
            "total_epochs": b.total_epochs,
            "batch": b.batch,
            "total_batches": b.total_batches,
            "percent": b.percent,
            "loss": b.loss,
            "accuracy": b.accuracy,
            "eta_ms": b.eta_ms,
        }),
        Some(Event::CheckpointSaved(c)) => json!({
            "event": "checkpoint_saved",
            "epoch": c.epoch,
            "path": c.path,
        }),
        Some(Event::ModelSaved(m)) => json!({
            "event": "model_saved",
            "model_id": m.model_id,
            "path": m.path,
        }),
        Some(Event::FinalMetrics(m)) => json!({
            "event": "final_metrics",
            "metrics": metrics(Some(m)),
        }),
        Some(Event::DataSplit(r)) => {
            let part = |p: Option<&ktrdr_proto::training::v1::SplitSummary>| {
                let p = p.copied().unwrap_or_default();
                json!({
                    "bars": p.bars,
                    "rows": p.rows,
                    "buy": p.buy,
                    "hold": p.hold,
                    "sell": p.sell,
                })
            };
            json!({
                "event": "data_split",
                "train": part(r.train.as_ref()),
                "validation": part(r.validation.as_ref()),
                "test": part(r.test.as_ref()),
                "warnings": r.warnings,
            })
        }
        Some(Event::Log(l)) => json!({
            "event": "log",
            "level": l.level,
            "message": l.message,
        }),
        None => json!({ "event": "unknown" }),
    };
    value["session_id"] = event.session_id.clone().into();
    value["sequence"] = event.sequence.into();
    value["time"] = iso_json(event.time_ms);
    value
}

pub fn model(m: &Model) -> Value {
    json!({
        "model_id": m.model_id,
        "strategy_name": m.strategy_name,
        "version": m.version,
        "symbols": m.symbols,
        "timeframes": m.timeframes,
        "created": iso_json(m.created_at_ms),
        "training_session_id": m.training_session_id,
        "metrics": metrics(m.metrics.as_ref()),
        "feature_names": m.feature_names,
        "path": m.path,
        "size_bytes": m.size_bytes,
        "device": m.device,
        "training_range": range(m.training_range.as_ref()),
        "fit_range": range(m.fit_range.as_ref()),
        "parameter_count": m.parameter_count,
        "labels": m.labels,
    })
}
