//! The API's messages as JSON for `--json`.
//!
//! Field names follow the proto's (snake_case); timestamps are ISO 8601 UTC strings (`null` for
//! the API's 0) with the raw `…_ms` value beside them; enums are their value names without the
//! type prefix (`COMPLETED`, `HOST_SERVICE`).

use ktrdr_proto::common::v1::{JobState, Progress, TimeRange, Warning};
use ktrdr_proto::gateway::v1::{
    BacktestEvent, BacktestJob, BatchDataset, LoadBatchResponse, LoadEvent, LoadJob, LoadSummary,
    backtest_event, load_batch_response, load_event,
};
use ktrdr_proto::training::v1::{
    BacktestMetrics, BacktestResult, BacktestSettings, BacktestSideStats, BacktestSignalCounts,
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

/// Execution settings as applied (every default filled in by the server).
pub fn backtest_settings(s: &BacktestSettings) -> Value {
    use ktrdr_proto::training::v1::backtest_settings::Sizing;
    let sizing = match s.sizing {
        Some(Sizing::FractionOfEquity(f)) => json!({ "fraction_of_equity": f }),
        Some(Sizing::FixedUnits(u)) => json!({ "fixed_units": u }),
        Some(Sizing::FixedNotional(n)) => json!({ "fixed_notional": n }),
        None => Value::Null,
    };
    json!({
        "initial_capital": s.initial_capital,
        "commission_rate": s.commission_rate,
        "fixed_fee": s.fixed_fee,
        "slippage_rate": s.slippage_rate,
        "spread_rate": s.spread_rate,
        "sizing": sizing,
        "lot_step": s.lot_step,
        "fractional": s.fractional,
        "allow_shorts": s.allow_shorts,
        "confidence_threshold": s.confidence_threshold,
        "min_bars_between_trades": s.min_bars_between_trades,
        "min_time_between_trades_ms": s.min_time_between_trades_ms,
        "reverse_on_opposite": s.reverse_on_opposite,
        "fill": short_name(s.fill().as_str_name(), "BACKTEST_FILL_"),
        "trading_days": s.trading_days,
        "periods_per_year": s.periods_per_year,
    })
}

fn side_stats(s: Option<&BacktestSideStats>) -> Value {
    let s = s.copied().unwrap_or_default();
    json!({ "trades": s.trades, "win_rate_pct": s.win_rate_pct, "pnl": s.pnl })
}

/// Metrics under the proto's names; an undefined value (NaN) is `null`.
pub fn backtest_metrics(m: &BacktestMetrics) -> Value {
    let mut value = json!({
        "start": iso_json(m.start_ms),
        "end": iso_json(m.end_ms),
        "duration_ms": m.duration_ms,
        "exposure_time_pct": m.exposure_time_pct,
        "equity_final": m.equity_final,
        "equity_peak": m.equity_peak,
        "commissions": m.commissions,
        "return_pct": m.return_pct,
        "buy_hold_return_pct": m.buy_hold_return_pct,
        "return_ann_pct": m.return_ann_pct,
        "volatility_ann_pct": m.volatility_ann_pct,
        "cagr_pct": m.cagr_pct,
        "sharpe_ratio": m.sharpe_ratio,
        "sortino_ratio": m.sortino_ratio,
        "calmar_ratio": m.calmar_ratio,
        "alpha_pct": m.alpha_pct,
        "beta": m.beta,
        "max_drawdown_pct": m.max_drawdown_pct,
        "avg_drawdown_pct": m.avg_drawdown_pct,
        "max_drawdown_duration_ms": m.max_drawdown_duration_ms,
        "avg_drawdown_duration_ms": m.avg_drawdown_duration_ms,
    });
    let trades = json!({
        "trades": m.trades,
        "win_rate_pct": m.win_rate_pct,
        "best_trade_pct": m.best_trade_pct,
        "worst_trade_pct": m.worst_trade_pct,
        "avg_trade_pct": m.avg_trade_pct,
        "max_trade_duration_ms": m.max_trade_duration_ms,
        "avg_trade_duration_ms": m.avg_trade_duration_ms,
        "profit_factor": m.profit_factor,
        "expectancy_pct": m.expectancy_pct,
        "sqn": m.sqn,
        "kelly_criterion": m.kelly_criterion,
        "profit_factor_dollars": m.profit_factor_dollars,
        "long": side_stats(m.long.as_ref()),
        "short": side_stats(m.short.as_ref()),
        "turnover": m.turnover,
        "slippage_costs": m.slippage_costs,
        "spread_costs": m.spread_costs,
        "annualization": m.annualization.as_ref().map(|a| json!({
            "returns": a.returns,
            "periods_per_year": a.periods_per_year,
            "bar_period_ms": a.bar_period_ms,
            "weekend_share": a.weekend_share,
        })),
    });
    // Two literals: one is past `json!`'s recursion limit.
    if let (Value::Object(all), Value::Object(rest)) = (&mut value, trades) {
        all.extend(rest);
    }
    value
}

pub fn backtest_signals(s: &BacktestSignalCounts) -> Value {
    json!({
        "bars_with_prediction": s.bars_with_prediction,
        "raw_buy": s.raw_buy,
        "raw_sell": s.raw_sell,
        "raw_hold": s.raw_hold,
        "dropped_low_confidence": s.dropped_low_confidence,
        "dropped_too_soon": s.dropped_too_soon,
        "dropped_already_positioned": s.dropped_already_positioned,
        "dropped_shorts_disabled": s.dropped_shorts_disabled,
        "dropped_last_bar": s.dropped_last_bar,
        "dropped_unaffordable": s.dropped_unaffordable,
        "executed": s.executed,
    })
}

pub fn backtest_result(r: &BacktestResult) -> Value {
    json!({
        "backtest_id": r.backtest_id,
        "model_id": r.model_id,
        "symbol": r.symbol,
        "timeframe": r.timeframe,
        "range": range(r.range.as_ref()),
        "bars": r.bars,
        "warmup_bars": r.warmup_bars,
        "overlaps_training": r.overlaps_training,
        "training_range": range(r.training_range.as_ref()),
        "settings": r.settings.as_ref().map(backtest_settings),
        "metrics": r.metrics.as_ref().map(backtest_metrics),
        "signals": r.signals.as_ref().map(backtest_signals),
        "folds": r.folds.iter().map(|f| json!({
            "model_id": f.model_id,
            "range": range(f.range.as_ref()),
            "bars": f.bars,
            "metrics": f.metrics.as_ref().map(backtest_metrics),
        })).collect::<Vec<_>>(),
        "created": iso_json(r.created_at_ms),
        "elapsed_ms": r.elapsed_ms,
    })
}

/// One event of a backtest job (`ktrdr backtest --json` prints one per line).
pub fn backtest_event(event: &BacktestEvent) -> Value {
    use backtest_event::Event;
    let mut value = match &event.event {
        Some(Event::Started(s)) => json!({
            "event": "started",
            "model_id": s.model_id,
            "symbols": s.symbols,
            "range": range(s.range.as_ref()),
            "folds": s.folds,
        }),
        Some(Event::DataLoad(d)) => {
            let mut line = d
                .event
                .as_ref()
                .map_or(json!({ "event": "unknown" }), load_event);
            line["event"] =
                format!("data_load_{}", line["event"].as_str().unwrap_or("unknown")).into();
            line["symbol"] = d.symbol.clone().into();
            line["timeframe"] = d.timeframe.clone().into();
            line
        }
        Some(Event::FoldTrained(f)) => json!({
            "event": "fold_trained",
            "fold": f.fold,
            "folds": f.folds,
            "train_range": range(f.train_range.as_ref()),
            "test_range": range(f.test_range.as_ref()),
            "model_id": f.model_id,
            "session_id": f.session_id,
        }),
        Some(Event::Progress(p)) => {
            let progress = p.progress.clone().unwrap_or_default();
            json!({
                "event": "progress",
                "symbol": p.symbol,
                "stage": progress.stage,
                "bars_done": progress.bars_done,
                "bars_total": progress.bars_total,
                "equity": progress.equity,
            })
        }
        Some(Event::Result(r)) => json!({ "event": "result", "result": backtest_result(r) }),
        Some(Event::Summary(s)) => json!({
            "event": "summary",
            "state": job_state(s.state()),
            "results": s.results.iter().map(backtest_result).collect::<Vec<_>>(),
            "failures": s.failures.iter().map(|f| json!({
                "symbol": f.symbol,
                "code": f.code,
                "message": f.message,
            })).collect::<Vec<_>>(),
            "error": s.error,
            "elapsed_ms": s.elapsed_ms,
        }),
        None => json!({ "event": "unknown" }),
    };
    value["job_id"] = event.job_id.clone().into();
    value["time"] = iso_json(event.time_ms);
    value
}

pub fn backtest_job(j: &BacktestJob) -> Value {
    json!({
        "job_id": j.job_id,
        "state": job_state(j.state()),
        "model_id": j.model_id,
        "symbols": j.symbols,
        "range": range(j.range.as_ref()),
        "progress": progress(j.progress.as_ref()),
        "created": iso_json(j.created_at_ms),
        "started": iso_json(j.started_at_ms),
        "finished": iso_json(j.finished_at_ms),
        "error": j.error,
    })
}
