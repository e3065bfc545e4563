//! Backtests on the training host: a saved model's signals on stored bars, simulated by
//! `ktrdr-backtest`, saved under `<models_dir>/_backtests/<backtest_id>/`.
//!
//! Invariants:
//! - The traded bars are exactly the base bars of the requested range; indicator warm-up comes
//!   from bars before it ([`crate::data::BarSource::read_window`]), so no decision reads a bar
//!   outside what the store holds for that time, and none reads a later bar.
//! - Inference is batched over every bar of a window at once; the position only matters to
//!   the decision filters, which the engine applies bar by bar.
//! - A walk-forward is one account: the windows' bars and probabilities are joined in time
//!   order and simulated once (positions carry across windows); each window is also simulated
//!   on its own for its fold metrics.
//! - A range that overlaps the bars a model was fitted on is refused unless the caller allows
//!   it, and the result says so.
//! - A result is written to a staging directory and renamed into place: a saved backtest is
//!   whole or absent. A run whose caller went away writes nothing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use ktrdr_backtest::{
    Annualization, BacktestResult, Costs, ExecutionConfig, Fill, Filters, Lots, Metrics,
    SignalCounts, Sizing,
};
use ktrdr_common::error::ServiceError;
use ktrdr_common::market::{symbol_field, time_range};
use ktrdr_common::paging::{Page, Paged};
use ktrdr_market::{Bars, Timeframe};
use ktrdr_proto::common::v1::TimeRange;
use ktrdr_proto::training::v1 as pb;
use ktrdr_strategy::artifacts::LoadedModel;
use ktrdr_strategy::compute::Compute;
use ktrdr_strategy::dataset::SymbolBars;
use prost::Message;

use crate::error::{Result, TrainingError};
use crate::registry::ModelEntry;

/// Where saved backtests live, under the models directory.
pub const BACKTESTS_DIR: &str = "_backtests";
const RESULT_FILE: &str = "result.pb";
const TRADES_FILE: &str = "trades.arrow";
const EQUITY_FILE: &str = "equity.arrow";
/// Bytes per ReadBacktestTable message.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Where the result of `backtest_id` is saved.
fn dir_of(models_dir: &Path, backtest_id: &str) -> PathBuf {
    models_dir.join(BACKTESTS_DIR).join(backtest_id)
}

/// Checks a caller-chosen id: a safe single path component ([`ktrdr_market::path::safe_name`]).
fn check_id(field: &str, id: &str) -> Result<()> {
    ktrdr_market::path::safe_name(id)
        .map(drop)
        .map_err(|why| TrainingError::invalid(field, format!("not a backtest id: {why}")))
}

/// A new id for `symbol`'s backtest.
fn new_id(symbol: &str) -> String {
    format!(
        "bt-{}-{:08x}-{symbol}",
        ktrdr_common::status::now_ms(),
        crate::spec::random_u64() as u32
    )
}

/// The plan of a RunBacktest request, checked: either `model_id` and `range`, or `segments`
/// (a walk-forward), each range closed at both ends and each model saved; the symbol one the
/// models were trained on (the model's only symbol when the request names none); the id new.
/// Reads the model registry: call it off the async runtime.
pub fn plan_request(
    models_dir: &Path,
    req: &pb::RunBacktestRequest,
) -> std::result::Result<Plan, ServiceError> {
    let config = execution_config(req.settings.as_ref())?;
    let segments_given = !req.segments.is_empty();
    if segments_given && (!req.model_id.is_empty() || req.range.is_some()) {
        return Err(TrainingError::invalid(
            "segments",
            "give either model_id and range, or segments (a walk-forward), not both",
        )
        .into());
    }
    let wanted: Vec<(String, &str, Option<TimeRange>)> = if segments_given {
        req.segments
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("segments[{i}]."), s.model_id.as_str(), s.range))
            .collect()
    } else {
        vec![(String::new(), req.model_id.as_str(), req.range)]
    };
    let mut segments = Vec::with_capacity(wanted.len());
    for (prefix, model_id, range) in wanted {
        let range_field = format!("{prefix}range");
        let (start_ms, end_ms) = time_range(&range_field, range.as_ref())?;
        if start_ms == i64::MIN || end_ms == i64::MAX {
            return Err(TrainingError::invalid(
                range_field,
                "a backtest needs both ends of its range (UTC epoch ms)",
            )
            .into());
        }
        if model_id.trim().is_empty() {
            return Err(TrainingError::invalid(
                format!("{prefix}model_id"),
                "name the model to backtest, e.g. \"rsi_bollinger/EURUSD_1h_v1\"",
            )
            .into());
        }
        segments.push(Segment {
            model: crate::registry::get(models_dir, model_id)?,
            start_ms,
            end_ms,
        });
    }
    let symbol = if req.symbol.trim().is_empty() {
        match segments
            .first()
            .map(|s| s.model.metadata.symbols.as_slice())
        {
            Some([only]) => only.clone(),
            _ => {
                return Err(TrainingError::invalid(
                    "symbol",
                    "this model was trained on several symbols: say which to backtest",
                )
                .into());
            }
        }
    } else {
        symbol_field("symbol", &req.symbol)?
    };
    let backtest_id = if req.backtest_id.is_empty() {
        new_id(&symbol)
    } else {
        check_id("backtest_id", &req.backtest_id)?;
        req.backtest_id.clone()
    };
    if dir_of(models_dir, &backtest_id).exists() {
        return Err(TrainingError::invalid(
            "backtest_id",
            format!("a backtest {backtest_id:?} is already saved; pick another id"),
        )
        .into());
    }
    Ok(plan(
        backtest_id,
        symbol,
        segments,
        config,
        req.allow_training_overlap,
    )?)
}

/// The engine's name of a settings field → the request's.
fn settings_field(engine_field: &str) -> String {
    let name = match engine_field {
        "sizing.fraction" => "fraction_of_equity",
        "sizing.units" => "fixed_units",
        "sizing.notional" => "fixed_notional",
        "lots.step" => "lot_step",
        other => other.rsplit('.').next().unwrap_or(other),
    };
    format!("settings.{name}")
}

/// The execution settings of a request, defaults filled in, checked.
pub fn execution_config(settings: Option<&pb::BacktestSettings>) -> Result<ExecutionConfig> {
    let s = settings.cloned().unwrap_or_default();
    let defaults = ExecutionConfig::default();
    let costs = Costs::default();
    let filters = Filters::default();
    let sizing = match s.sizing {
        None => defaults.sizing,
        Some(pb::backtest_settings::Sizing::FractionOfEquity(f)) => Sizing::FractionOfEquity(f),
        Some(pb::backtest_settings::Sizing::FixedUnits(u)) => Sizing::FixedUnits(u),
        Some(pb::backtest_settings::Sizing::FixedNotional(x)) => Sizing::FixedNotional(x),
    };
    let lots = match (s.lot_step, s.fractional) {
        (Some(_), true) => {
            return Err(TrainingError::invalid(
                "settings.lot_step",
                "set lot_step or fractional, not both",
            ));
        }
        (Some(step), false) => Lots::Step(step),
        (None, true) => Lots::Any,
        (None, false) => Lots::Whole,
    };
    let annualization = match (s.trading_days, s.periods_per_year) {
        (Some(_), Some(_)) => {
            return Err(TrainingError::invalid(
                "settings.periods_per_year",
                "set trading_days or periods_per_year, not both",
            ));
        }
        (Some(days), None) => Annualization::TradingDays(days),
        (None, Some(periods)) => Annualization::PerBar(periods),
        (None, None) => Annualization::Auto,
    };
    let fill = match pb::BacktestFill::try_from(s.fill) {
        Ok(pb::BacktestFill::Unspecified | pb::BacktestFill::NextOpen) => Fill::NextOpen,
        Ok(pb::BacktestFill::SameCloseOptimistic) => Fill::SameCloseOptimistic,
        Err(_) => {
            return Err(TrainingError::invalid(
                "settings.fill",
                format!(
                    "{} is not a BacktestFill: use BACKTEST_FILL_NEXT_OPEN or \
                     BACKTEST_FILL_SAME_CLOSE_OPTIMISTIC",
                    s.fill
                ),
            ));
        }
    };
    let config = ExecutionConfig {
        initial_capital: s.initial_capital.unwrap_or(defaults.initial_capital),
        costs: Costs {
            commission_rate: s.commission_rate.unwrap_or(costs.commission_rate),
            fixed_fee: s.fixed_fee.unwrap_or(costs.fixed_fee),
            slippage_rate: s.slippage_rate.unwrap_or(costs.slippage_rate),
            spread_rate: s.spread_rate.unwrap_or(costs.spread_rate),
        },
        sizing,
        lots,
        allow_shorts: s.allow_shorts,
        filters: Filters {
            confidence_threshold: s
                .confidence_threshold
                .unwrap_or(filters.confidence_threshold),
            min_bars_between_trades: s
                .min_bars_between_trades
                .unwrap_or(filters.min_bars_between_trades),
            min_time_between_trades_ms: s
                .min_time_between_trades_ms
                .unwrap_or(filters.min_time_between_trades_ms),
            reverse_on_opposite: s.reverse_on_opposite,
        },
        fill,
        annualization,
    };
    config
        .validate()
        .map_err(|e| TrainingError::invalid(settings_field(&e.field), e.message))?;
    Ok(config)
}

/// The settings as applied, every default written out.
pub fn settings_pb(c: &ExecutionConfig) -> pb::BacktestSettings {
    use pb::backtest_settings::Sizing as S;
    pb::BacktestSettings {
        initial_capital: Some(c.initial_capital),
        commission_rate: Some(c.costs.commission_rate),
        fixed_fee: Some(c.costs.fixed_fee),
        slippage_rate: Some(c.costs.slippage_rate),
        spread_rate: Some(c.costs.spread_rate),
        sizing: Some(match c.sizing {
            Sizing::FractionOfEquity(f) => S::FractionOfEquity(f),
            Sizing::FixedUnits(u) => S::FixedUnits(u),
            Sizing::FixedNotional(x) => S::FixedNotional(x),
        }),
        lot_step: match c.lots {
            Lots::Step(step) => Some(step),
            Lots::Whole | Lots::Any => None,
        },
        fractional: c.lots == Lots::Any,
        allow_shorts: c.allow_shorts,
        confidence_threshold: Some(c.filters.confidence_threshold),
        min_bars_between_trades: Some(c.filters.min_bars_between_trades),
        min_time_between_trades_ms: Some(c.filters.min_time_between_trades_ms),
        reverse_on_opposite: c.filters.reverse_on_opposite,
        fill: match c.fill {
            Fill::NextOpen => pb::BacktestFill::NextOpen,
            Fill::SameCloseOptimistic => pb::BacktestFill::SameCloseOptimistic,
        } as i32,
        trading_days: match c.annualization {
            Annualization::TradingDays(d) => Some(d),
            _ => None,
        },
        periods_per_year: match c.annualization {
            Annualization::PerBar(p) => Some(p),
            _ => None,
        },
    }
}

/// The metrics on the wire.
pub fn metrics_pb(m: &Metrics) -> pb::BacktestMetrics {
    let side = |s: &ktrdr_backtest::SideStats| pb::BacktestSideStats {
        trades: s.trades as i64,
        win_rate_pct: s.win_rate_pct,
        pnl: s.pnl,
    };
    let a = &m.annualization;
    pb::BacktestMetrics {
        start_ms: m.start_ms,
        end_ms: m.end_ms,
        duration_ms: m.duration_ms,
        exposure_time_pct: m.exposure_time_pct,
        equity_final: m.equity_final,
        equity_peak: m.equity_peak,
        commissions: m.commissions,
        return_pct: m.return_pct,
        buy_hold_return_pct: m.buy_hold_return_pct,
        return_ann_pct: m.return_ann_pct,
        volatility_ann_pct: m.volatility_ann_pct,
        cagr_pct: m.cagr_pct,
        sharpe_ratio: m.sharpe_ratio,
        sortino_ratio: m.sortino_ratio,
        calmar_ratio: m.calmar_ratio,
        alpha_pct: m.alpha_pct,
        beta: m.beta,
        max_drawdown_pct: m.max_drawdown_pct,
        avg_drawdown_pct: m.avg_drawdown_pct,
        max_drawdown_duration_ms: m.max_drawdown_duration_ms,
        avg_drawdown_duration_ms: m.avg_drawdown_duration_ms,
        trades: m.trades as i64,
        win_rate_pct: m.win_rate_pct,
        best_trade_pct: m.best_trade_pct,
        worst_trade_pct: m.worst_trade_pct,
        avg_trade_pct: m.avg_trade_pct,
        max_trade_duration_ms: m.max_trade_duration_ms,
        avg_trade_duration_ms: m.avg_trade_duration_ms,
        profit_factor: m.profit_factor,
        expectancy_pct: m.expectancy_pct,
        sqn: m.sqn,
        kelly_criterion: m.kelly_criterion,
        profit_factor_dollars: m.profit_factor_dollars,
        long: Some(side(&m.long)),
        short: Some(side(&m.short)),
        turnover: m.turnover,
        slippage_costs: m.slippage_costs,
        spread_costs: m.spread_costs,
        annualization: Some(pb::BacktestAnnualization {
            returns: format!("{:?}", a.returns).to_lowercase(),
            periods_per_year: a.periods_per_year,
            bar_period_ms: a.bar_period_ms,
            weekend_share: a.weekend_share,
        }),
    }
}

fn signals_pb(s: &SignalCounts) -> pb::BacktestSignalCounts {
    pb::BacktestSignalCounts {
        bars_with_prediction: s.bars_with_prediction as i64,
        raw_buy: s.raw_buy as i64,
        raw_sell: s.raw_sell as i64,
        raw_hold: s.raw_hold as i64,
        dropped_low_confidence: s.dropped_low_confidence as i64,
        dropped_too_soon: s.dropped_too_soon as i64,
        dropped_already_positioned: s.dropped_already_positioned as i64,
        dropped_shorts_disabled: s.dropped_shorts_disabled as i64,
        dropped_last_bar: s.dropped_last_bar as i64,
        dropped_unaffordable: s.dropped_unaffordable as i64,
        executed: s.executed as i64,
    }
}

/// One window of a backtest and the model deciding on it.
#[derive(Debug, Clone)]
pub struct Segment {
    pub model: ModelEntry,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Segment {
    /// The base timeframe of the segment's model.
    pub fn base_timeframe(&self) -> Timeframe {
        self.model.metadata.timeframe
    }

    /// Whether the window overlaps the bars the model was fitted on, and those bars.
    pub fn training_overlap(&self) -> (bool, Option<(i64, i64)>) {
        let Some(fit) = self.model.session.as_ref().map(|s| s.fit_range()) else {
            return (false, None);
        };
        (self.start_ms < fit.1 && fit.0 < self.end_ms, Some(fit))
    }
}

/// A checked backtest, ready to read its bars.
#[derive(Debug, Clone)]
pub struct Plan {
    pub backtest_id: String,
    pub symbol: String,
    pub segments: Vec<Segment>,
    pub config: ExecutionConfig,
    pub overlaps_training: bool,
    pub training_range: Option<(i64, i64)>,
}

/// Checks the segments of a request: consecutive, one base timeframe, the symbol known to every
/// model that embeds its symbols, and no overlap with a model's fitted bars unless allowed.
fn plan(
    backtest_id: String,
    symbol: String,
    segments: Vec<Segment>,
    config: ExecutionConfig,
    allow_training_overlap: bool,
) -> Result<Plan> {
    let Some(first) = segments.first() else {
        return Err(TrainingError::invalid(
            "model_id",
            "give a model_id and a range, or segments",
        ));
    };
    let base = first.base_timeframe();
    for (i, pair) in segments.windows(2).enumerate() {
        if pair[1].start_ms < pair[0].end_ms {
            return Err(TrainingError::invalid(
                format!("segments[{}].range", i + 1),
                "segments must be in time order and must not overlap",
            ));
        }
    }
    let mut overlaps = false;
    let mut training_range = None;
    for (i, segment) in segments.iter().enumerate() {
        let field = |name: &str| {
            if segments.len() == 1 {
                name.to_owned()
            } else {
                format!("segments[{i}].{name}")
            }
        };
        if segment.base_timeframe() != base {
            return Err(TrainingError::invalid(
                field("model_id"),
                format!(
                    "model {} trades {} bars but the first segment's trades {base}; every \
                     segment must trade the same bars",
                    segment.model.model_id,
                    segment.base_timeframe()
                ),
            ));
        }
        let known = &segment.model.metadata.symbols;
        if !known.iter().any(|s| s == &symbol) {
            return Err(TrainingError::invalid(
                "symbol",
                format!(
                    "model {} was trained on {} and not on {symbol}; backtest one of those \
                     symbols, or train a model on {symbol}",
                    segment.model.model_id,
                    known.join(", ")
                ),
            ));
        }
        let (overlap, fit) = segment.training_overlap();
        if i == 0 {
            training_range = fit;
        }
        if overlap && !allow_training_overlap {
            let (start, end) = fit.unwrap_or_default();
            return Err(TrainingError::Precondition {
                reason: "OVERLAPS_TRAINING".to_owned(),
                message: format!(
                    "the range {}..{} overlaps the bars model {} was fitted on ({}..{}): its \
                     metrics would be in-sample. Backtest a later range (the model's test \
                     part starts at {}), or set allow_training_overlap (CLI: \
                     --allow-training-overlap) to run it anyway, flagged",
                    ktrdr_common::market::iso_ms(segment.start_ms),
                    ktrdr_common::market::iso_ms(segment.end_ms),
                    segment.model.model_id,
                    ktrdr_common::market::iso_ms(start),
                    ktrdr_common::market::iso_ms(end),
                    ktrdr_common::market::iso_ms(end),
                ),
                field: field("range"),
            });
        }
        overlaps |= overlap;
    }
    Ok(Plan {
        backtest_id,
        symbol,
        segments,
        config,
        overlaps_training: overlaps,
        training_range,
    })
}

/// What the run reports as it goes: (stage, bars done, bars in all, equity so far). Returns
/// false when the caller went away (the run stops, nothing is saved).
pub type Report<'a> = dyn FnMut(&str, i64, i64, f64) -> bool + 'a;

/// The base bars of `[start, end)` and one probability row per bar (NaN where the features are
/// incomplete), predicted with the segment's model in one batch.
fn predict_window(
    segment: &Segment,
    symbol: &str,
    bars: &SymbolBars,
    compute: &Compute,
) -> Result<(Bars, Vec<[f32; 3]>, usize)> {
    let saved = LoadedModel::load(&segment.model.dir, compute)?;
    let base_tf = saved.features.base_timeframe;
    let Some(base) = bars.bars.get(&base_tf) else {
        return Err(TrainingError::internal(format!(
            "no {base_tf} bars were read for {symbol}"
        )));
    };
    let first = base.timestamp_ms.partition_point(|&t| t < segment.start_ms);
    let last = base.timestamp_ms.partition_point(|&t| t < segment.end_ms);
    let window = base.slice(first..last);
    let predictions = saved.predict(symbol, &bars.bars)?;
    let mut probabilities = vec![[f32::NAN; 3]; window.len()];
    let mut bar = 0;
    for prediction in predictions {
        while bar < window.len() && window.timestamp_ms[bar] < prediction.timestamp_ms {
            bar += 1;
        }
        if bar < window.len() && window.timestamp_ms[bar] == prediction.timestamp_ms {
            probabilities[bar] = prediction.probabilities;
        }
    }
    Ok((window, probabilities, first))
}

fn range_pb(start_ms: i64, end_ms: i64) -> TimeRange {
    TimeRange { start_ms, end_ms }
}

/// Runs a planned backtest over the bars read for each segment (same order), its models
/// predicting on `compute`, saves it and returns its result.
pub fn run(
    models_dir: &Path,
    owner: &str,
    plan: &Plan,
    inputs: Vec<SymbolBars>,
    compute: &Compute,
    report: &mut Report<'_>,
) -> Result<pb::BacktestResult> {
    let started = std::time::Instant::now();
    let mut bars = Bars::default();
    let mut probabilities = Vec::new();
    let mut windows = Vec::with_capacity(plan.segments.len());
    let mut warmup_bars = 0;
    let total: i64 = inputs
        .iter()
        .zip(&plan.segments)
        .map(|(input, s)| {
            input.bars.get(&s.base_timeframe()).map_or(0, |b| {
                b.timestamp_ms
                    .iter()
                    .filter(|&&t| t >= s.start_ms && t < s.end_ms)
                    .count() as i64
            })
        })
        .sum();
    for (segment, input) in plan.segments.iter().zip(&inputs) {
        if !report(
            "predicting",
            bars.len() as i64,
            total,
            plan.config.initial_capital,
        ) {
            return Err(ktrdr_strategy::StrategyError::Cancelled.into());
        }
        let (window, rows, warmup) = predict_window(segment, &plan.symbol, input, compute)?;
        let at = bars.len();
        bars.extend(&window);
        probabilities.extend(rows);
        windows.push(at..bars.len());
        if windows.len() == 1 {
            warmup_bars = warmup;
        }
    }
    drop(inputs);
    if !report(
        "simulating",
        0,
        bars.len() as i64,
        plan.config.initial_capital,
    ) {
        return Err(ktrdr_strategy::StrategyError::Cancelled.into());
    }
    let outcome = ktrdr_backtest::run((&bars).into(), &probabilities, &plan.config)
        .map_err(|e| backtest_input_error(&e))?;
    let folds = if plan.segments.len() > 1 {
        plan.segments
            .iter()
            .zip(&windows)
            .map(|(segment, window)| {
                let slice = bars.slice(window.clone());
                let fold = ktrdr_backtest::run(
                    (&slice).into(),
                    &probabilities[window.clone()],
                    &plan.config,
                )
                .map_err(|e| backtest_input_error(&e))?;
                Ok(pb::BacktestFold {
                    model_id: segment.model.model_id.clone(),
                    range: Some(range_pb(segment.start_ms, segment.end_ms)),
                    bars: slice.len() as i64,
                    metrics: Some(metrics_pb(&fold.metrics)),
                })
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let final_equity = outcome.equity.last().copied().unwrap_or_default();
    if !report("saving", bars.len() as i64, bars.len() as i64, final_equity) {
        return Err(ktrdr_strategy::StrategyError::Cancelled.into());
    }
    let first = &plan.segments[0];
    let last = &plan.segments[plan.segments.len() - 1];
    let result = pb::BacktestResult {
        backtest_id: plan.backtest_id.clone(),
        model_id: first.model.model_id.clone(),
        symbol: plan.symbol.clone(),
        timeframe: first.base_timeframe().to_string(),
        range: Some(range_pb(first.start_ms, last.end_ms)),
        bars: bars.len() as i64,
        warmup_bars: warmup_bars as i64,
        overlaps_training: plan.overlaps_training,
        training_range: plan.training_range.map(|(s, e)| range_pb(s, e)),
        settings: Some(settings_pb(&plan.config)),
        metrics: Some(metrics_pb(&outcome.metrics)),
        signals: Some(signals_pb(&outcome.signals)),
        folds,
        created_at_ms: ktrdr_common::status::now_ms(),
        elapsed_ms: started.elapsed().as_millis() as i64,
    };
    save(models_dir, owner, &result, &bars, &outcome)?;
    Ok(result)
}

fn backtest_input_error(e: &ktrdr_backtest::InvalidInput) -> TrainingError {
    if e.field == "bars" {
        TrainingError::invalid("range", e.message.clone())
    } else {
        TrainingError::invalid(settings_field(&e.field), e.message.clone())
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainingError + '_ {
    move |e| TrainingError::internal(format!("{}: {e}", path.display()))
}

fn arrow_error(e: impl std::fmt::Display) -> TrainingError {
    TrainingError::internal(format!("encoding a backtest table: {e}"))
}

/// The prefix of `owner`'s staging directories (`owner`: [`crate::runner::staging_owner`]).
fn staging_prefix(owner: &str) -> String {
    format!(".staging.{owner}.")
}

/// Writes the result and its two tables into a staging directory of `owner`, then renames it
/// into place.
fn save(
    models_dir: &Path,
    owner: &str,
    result: &pb::BacktestResult,
    bars: &Bars,
    outcome: &BacktestResult,
) -> Result<()> {
    let root = models_dir.join(BACKTESTS_DIR);
    let target = root.join(&result.backtest_id);
    let staging = root.join(format!(
        "{}{}.{:08x}",
        staging_prefix(owner),
        result.backtest_id,
        crate::spec::random_u64() as u32
    ));
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let written = (|| {
        let view = bars.into();
        let trades = ktrdr_backtest::tables::trades_batch(view, &outcome.trades)
            .and_then(|b| ktrdr_market::arrow::record_batch_to_ipc(&b))
            .map_err(arrow_error)?;
        let equity = ktrdr_backtest::tables::equity_batch(
            view,
            &outcome.trades,
            &outcome.equity,
            &outcome.decisions,
        )
        .and_then(|b| ktrdr_market::arrow::record_batch_to_ipc(&b))
        .map_err(arrow_error)?;
        for (name, bytes) in [
            (TRADES_FILE, trades),
            (EQUITY_FILE, equity),
            (RESULT_FILE, result.encode_to_vec()),
        ] {
            let path = staging.join(name);
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
        if target.exists() {
            return Err(TrainingError::invalid(
                "backtest_id",
                format!(
                    "a backtest {:?} is already saved; pick another id",
                    result.backtest_id
                ),
            ));
        }
        std::fs::rename(&staging, &target).map_err(io(&target))
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

/// Removes the staging directories a crash of `owner` left behind; other hosts sharing the
/// models directory may be saving into theirs right now, so those stay.
pub fn clean_staging(models_dir: &Path, owner: &str) {
    let root = models_dir.join(BACKTESTS_DIR);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return;
    };
    let mine = staging_prefix(owner);
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&mine) {
            tracing::info!(path = %entry.path().display(), "removing an unfinished backtest");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn not_found(backtest_id: &str) -> TrainingError {
    TrainingError::NotFound {
        reason: "BACKTEST_NOT_FOUND".to_owned(),
        message: format!(
            "backtest {backtest_id} not found (ListBacktests, or `ktrdr backtest list`, shows \
             the saved ones)"
        ),
    }
}

/// The directory of saved backtest `backtest_id`; NOT_FOUND when it holds no result (a saved
/// backtest's directory appears whole, renamed from staging).
fn saved_dir(models_dir: &Path, backtest_id: &str) -> Result<PathBuf> {
    check_id("backtest_id", backtest_id)?;
    let dir = dir_of(models_dir, backtest_id);
    if !dir.join(RESULT_FILE).is_file() {
        return Err(not_found(backtest_id));
    }
    Ok(dir)
}

/// A saved backtest's result.
pub fn get(models_dir: &Path, backtest_id: &str) -> Result<pb::BacktestResult> {
    let path = saved_dir(models_dir, backtest_id)?.join(RESULT_FILE);
    let bytes = std::fs::read(&path).map_err(|_| not_found(backtest_id))?;
    pb::BacktestResult::decode(bytes.as_slice()).map_err(|e| {
        TrainingError::internal(format!("{}: not a saved backtest: {e}", path.display()))
    })
}

/// What ListBacktests orders and filters on, read from a saved result once.
#[derive(Debug, Clone)]
struct Listed {
    created_at_ms: i64,
    model_id: String,
    symbol: String,
}

/// The saved backtests' list keys, kept between List calls. A saved backtest never changes (it
/// appears whole, renamed from staging), so each call reads the directory, decodes only the
/// results it has not seen before, forgets the directories that are gone, and decodes in full
/// only the results of the page it answers with. (A result replaced by hand under the same id
/// keeps its old order and filter keys until the host restarts; its page shows the new one.)
#[derive(Debug, Default)]
pub struct Index(std::sync::Mutex<HashMap<String, Listed>>);

impl Index {
    /// The ids of the saved backtests of `model_id` (empty: any) and `symbol` (empty: any,
    /// case-insensitive), newest first, ties by id (last first).
    fn matching(&self, models_dir: &Path, model_id: &str, symbol: &str) -> Vec<String> {
        let root = models_dir.join(BACKTESTS_DIR);
        let ids: HashSet<String> = std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|name| !name.starts_with('.'))
            .collect();
        let mut index = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        index.retain(|id, _| ids.contains(id.as_str()));
        for id in ids {
            if index.contains_key(&id) {
                continue;
            }
            let Ok(bytes) = std::fs::read(root.join(&id).join(RESULT_FILE)) else {
                continue;
            };
            if let Ok(result) = pb::BacktestResult::decode(bytes.as_slice()) {
                let listed = Listed {
                    created_at_ms: result.created_at_ms,
                    model_id: result.model_id,
                    symbol: result.symbol,
                };
                index.insert(id, listed);
            }
        }
        let mut matching: Vec<(&String, &Listed)> = index
            .iter()
            .filter(|(_, l)| model_id.is_empty() || l.model_id == model_id)
            .filter(|(_, l)| symbol.is_empty() || l.symbol.eq_ignore_ascii_case(symbol))
            .collect();
        matching.sort_by(|(a_id, a), (b_id, b)| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then_with(|| b_id.cmp(a_id))
        });
        matching.into_iter().map(|(id, _)| id.clone()).collect()
    }

    /// One page of the saved backtests matching the filters, newest first.
    pub fn page(
        &self,
        models_dir: &Path,
        model_id: &str,
        symbol: &str,
        page: Page,
    ) -> Paged<pb::BacktestResult> {
        let ids = page.of(self.matching(models_dir, model_id.trim(), symbol.trim()));
        Paged {
            // A result removed since the directory was read is left out of its page.
            items: ids
                .items
                .iter()
                .filter_map(|id| get(models_dir, id).ok())
                .collect(),
            next_page_token: ids.next_page_token,
            total_size: ids.total_size,
        }
    }
}

/// A saved table in the format asked for.
pub fn read_table(
    models_dir: &Path,
    backtest_id: &str,
    table: pb::BacktestTable,
    format: pb::TableFormat,
) -> Result<Vec<u8>> {
    let dir = saved_dir(models_dir, backtest_id)?;
    let file = match table {
        pb::BacktestTable::Trades => TRADES_FILE,
        pb::BacktestTable::Equity => EQUITY_FILE,
        pb::BacktestTable::Unspecified => {
            return Err(TrainingError::invalid(
                "table",
                "say which table: BACKTEST_TABLE_TRADES or BACKTEST_TABLE_EQUITY",
            ));
        }
    };
    let path = dir.join(file);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    match format {
        pb::TableFormat::Unspecified | pb::TableFormat::ArrowIpc => Ok(bytes),
        pb::TableFormat::Csv => {
            let batches =
                ktrdr_market::arrow::ipc_to_record_batches(&bytes).map_err(arrow_error)?;
            let mut csv = String::new();
            for (i, batch) in batches.iter().enumerate() {
                let part = ktrdr_backtest::tables::to_csv(batch).map_err(arrow_error)?;
                // One header line for the whole table.
                let body = if i == 0 {
                    part.as_str()
                } else {
                    part.split_once('\n').map_or("", |(_, rest)| rest)
                };
                csv.push_str(body);
            }
            Ok(csv.into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save_result(models_dir: &Path, id: &str, symbol: &str, created_at_ms: i64) {
        let dir = dir_of(models_dir, id);
        std::fs::create_dir_all(&dir).unwrap();
        let result = pb::BacktestResult {
            backtest_id: id.to_owned(),
            model_id: "s/EURUSD_1h_v1".to_owned(),
            symbol: symbol.to_owned(),
            created_at_ms,
            ..Default::default()
        };
        std::fs::write(dir.join(RESULT_FILE), result.encode_to_vec()).unwrap();
    }

    #[test]
    fn the_backtest_index_lists_newest_first_filters_and_reads_each_result_once() {
        let models = tempfile::tempdir().unwrap();
        let dir = models.path();
        save_result(dir, "a", "EURUSD", 1);
        save_result(dir, "b", "GBPUSD", 3);
        save_result(dir, "c", "EURUSD", 3);
        std::fs::create_dir_all(dir.join(BACKTESTS_DIR).join(".staging-x")).unwrap();
        let index = Index::default();
        assert_eq!(index.matching(dir, "", ""), ["c", "b", "a"]);
        assert_eq!(index.matching(dir, "", "eurusd"), ["c", "a"]);
        assert!(index.matching(dir, "other/model_v1", "").is_empty());

        // A known result is not read again (saved results never change) ...
        save_result(dir, "a", "GBPUSD", 1);
        assert_eq!(index.matching(dir, "", "EURUSD"), ["c", "a"]);
        // ... a new one is, and a removed one is gone.
        save_result(dir, "d", "EURUSD", 5);
        std::fs::remove_dir_all(dir_of(dir, "c")).unwrap();
        assert_eq!(index.matching(dir, "", "EURUSD"), ["d", "a"]);

        let first = index.page(dir, "", "", Page::usual(2, "").unwrap());
        let ids: Vec<_> = first.items.iter().map(|r| r.backtest_id.as_str()).collect();
        assert_eq!((ids, first.total_size), (vec!["d", "b"], 3));
        let rest = index.page(dir, "", "", Page::usual(2, &first.next_page_token).unwrap());
        assert_eq!(
            rest.items[0].symbol, "GBPUSD",
            "a page's results are read in full"
        );
        assert!(rest.next_page_token.is_empty());
    }

    #[test]
    fn unset_settings_are_the_original_defaults() {
        let config = execution_config(None).unwrap();
        assert_eq!(config, ExecutionConfig::default());
        let applied = settings_pb(&config);
        assert_eq!(applied.commission_rate, Some(0.001));
        assert_eq!(applied.min_time_between_trades_ms, Some(4 * 3_600_000));
        assert_eq!(execution_config(Some(&applied)).unwrap(), config);
    }

    #[test]
    fn a_negative_commission_is_refused_naming_the_request_field() {
        let settings = pb::BacktestSettings {
            commission_rate: Some(-0.01),
            ..Default::default()
        };
        let err = execution_config(Some(&settings)).unwrap_err();
        match err {
            TrainingError::InvalidArgument { field, message } => {
                assert_eq!(field, "settings.commission_rate");
                assert!(message.contains("-0.01"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn contradictory_settings_are_refused() {
        let both_lots = pb::BacktestSettings {
            lot_step: Some(0.1),
            fractional: true,
            ..Default::default()
        };
        assert!(matches!(
            execution_config(Some(&both_lots)),
            Err(TrainingError::InvalidArgument { field, .. }) if field == "settings.lot_step"
        ));
        let sizing = pb::BacktestSettings {
            sizing: Some(pb::backtest_settings::Sizing::FractionOfEquity(1.5)),
            ..Default::default()
        };
        assert!(matches!(
            execution_config(Some(&sizing)),
            Err(TrainingError::InvalidArgument { field, .. })
                if field == "settings.fraction_of_equity"
        ));
        let fill = pb::BacktestSettings {
            fill: 99,
            ..Default::default()
        };
        assert!(execution_config(Some(&fill)).is_err());
    }

    #[test]
    fn backtest_ids_are_single_safe_path_components() {
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "_backtests",
            "a b",
            &"x".repeat(97),
        ] {
            assert!(check_id("backtest_id", bad).is_err(), "{bad:?}");
        }
        for good in ["bt-1-EURUSD", "my.run_2", &new_id("EURUSD")] {
            assert!(check_id("backtest_id", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn a_host_cleans_only_its_own_unfinished_backtests() {
        let models = tempfile::tempdir().expect("temp dir");
        let root = models.path().join(BACKTESTS_DIR);
        let mine = root.join(format!("{}bt-1.0000abcd", staging_prefix("host-a")));
        let theirs = root.join(format!("{}bt-2.0000abcd", staging_prefix("host-b")));
        let saved = root.join("bt-3");
        for dir in [&mine, &theirs, &saved] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        clean_staging(models.path(), "host-a");
        assert!(!mine.exists());
        assert!(theirs.is_dir(), "another host may be saving into it now");
        assert!(saved.is_dir());
    }
}
