//! `ktrdr backtest MODEL|STRATEGY.yaml` (GatewayService.BacktestStrategy: load what is
//! missing, backtest every symbol in parallel, with live progress), its result files
//! (`--trades`, `--equity`, `--report`), `ktrdr backtest list / show` (saved results) and
//! `ktrdr backtest jobs / watch / cancel` (the gateway's jobs).
//!
//! MODEL is a saved model id (`strategy/EURUSD_1h_v3`). A strategy file (`….yaml`) means the
//! newest saved model of the strategy it names, or, with `--train-window` and `--test-window`, a
//! walk-forward that trains the file window by window. Result files come from
//! TrainingService.ReadBacktestTable; with several symbols each file name gets the symbol
//! before its extension (`trades.csv` → `trades_EURUSD.csv`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ktrdr_proto::common::v1::{JobState, TimeRange};
use ktrdr_proto::gateway::v1::{
    BacktestEvent, BacktestStrategyRequest, BacktestSummary, CancelBacktestJobRequest,
    ListBacktestJobsRequest, WalkForward, WatchBacktestJobRequest, backtest_event,
    backtest_strategy_request,
};
use ktrdr_proto::training::v1::{
    BacktestFill, BacktestMetrics, BacktestResult, BacktestSettings, BacktestSignalCounts,
    BacktestTable, GetBacktestRequest, ListBacktestsRequest, ReadBacktestTableRequest, TableFormat,
    backtest_settings,
};
use serde_json::json;

use crate::data::{LoadView, Mode};
use crate::error::CliError;
use crate::json::{self as to_json, job_state};
use crate::output::{Table, print, print_json, print_json_line, say_multi, warn};
use crate::time::{human_duration, iso, iso_or_dash, parse_duration};
use crate::{Context, CtrlC, JobStateFilter, OnCtrlC, RangeArgs, parse_symbol, report};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, allow_negative_numbers = true)]
pub struct BacktestArgs {
    #[command(subcommand)]
    pub command: Option<BacktestCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// What `ktrdr backtest MODEL …` sends and writes.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A saved model id (strategy/EURUSD_1h_v3), or a strategy file (.yaml): its newest saved
    /// model, or with --train-window/--test-window a walk-forward trained window by window.
    #[arg(value_name = "MODEL")]
    pub model: Option<String>,
    /// Symbols, comma-separated, backtested in parallel (default: the model's).
    #[arg(long, value_delimiter = ',', value_parser = parse_symbol)]
    pub symbols: Vec<String>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Starting cash (default 100000).
    #[arg(long)]
    pub capital: Option<f64>,
    /// Commission per fill as a fraction of the notional (default 0.001).
    #[arg(long)]
    pub commission: Option<f64>,
    /// Fixed commission per fill, in cash (default 0).
    #[arg(long)]
    pub fixed_fee: Option<f64>,
    /// Slippage per fill as a fraction of the price (default 0.0005).
    #[arg(long)]
    pub slippage: Option<f64>,
    /// Full bid-ask spread as a fraction of the price; each fill crosses half (default 0).
    #[arg(long)]
    pub spread: Option<f64>,
    /// Size each entry as this fraction of the equity (default 0.25).
    #[arg(long, group = "sizing")]
    pub size_fraction: Option<f64>,
    /// Size each entry as this many units.
    #[arg(long, group = "sizing")]
    pub units: Option<f64>,
    /// Size each entry as this notional (units × price).
    #[arg(long, group = "sizing")]
    pub notional: Option<f64>,
    /// Sizes in multiples of this (default: whole units).
    #[arg(long, conflicts_with = "fractional")]
    pub lot_step: Option<f64>,
    /// Any positive size (crypto, forex lots as units).
    #[arg(long)]
    pub fractional: bool,
    /// Open shorts on SELL (default: long only).
    #[arg(long)]
    pub allow_shorts: bool,
    /// Signals below this probability are HOLD (default 0.5).
    #[arg(long)]
    pub confidence: Option<f64>,
    /// Bars between two executed trades, at least (default 0).
    #[arg(long)]
    pub min_bars_between: Option<u32>,
    /// Time between two executed trades, at least: 4h, 30m, 1d (default 4h).
    #[arg(long, value_parser = parse_duration)]
    pub min_time_between: Option<i64>,
    /// An opposite signal closes and opens the other side instead of only closing.
    #[arg(long)]
    pub reverse: bool,
    /// Fill at the decision bar's own close (optimistic, for comparisons) instead of the next
    /// bar's open.
    #[arg(long)]
    pub same_close_fill: bool,
    /// Annualise daily returns with this many days a year (252 stocks, 260 forex, 365 crypto).
    #[arg(long, conflicts_with = "periods_per_year")]
    pub trading_days: Option<f64>,
    /// Annualise per-bar returns with this many bars a year.
    #[arg(long)]
    pub periods_per_year: Option<f64>,
    /// Run even when the range overlaps the bars the model was fitted on.
    #[arg(long)]
    pub allow_training_overlap: bool,
    /// Stored bars only: load nothing from IB.
    #[arg(long)]
    pub local: bool,
    /// Walk-forward: length of each training window (e.g. 90d); needs a strategy file.
    #[arg(long, value_parser = parse_duration, requires = "test_window")]
    pub train_window: Option<i64>,
    /// Walk-forward: length of each out-of-sample window (e.g. 30d).
    #[arg(long, value_parser = parse_duration, requires = "train_window")]
    pub test_window: Option<i64>,
    /// Walk-forward: step between windows (default: the test window).
    #[arg(long, value_parser = parse_duration, requires = "train_window")]
    pub step: Option<i64>,
    /// Walk-forward: every training window starts at --start (default: rolling windows).
    #[arg(long, requires = "train_window")]
    pub anchored: bool,
    /// Walk-forward: epochs of each window's training (default: the strategy's).
    #[arg(long, requires = "train_window", value_parser = clap::value_parser!(i32).range(1..))]
    pub epochs: Option<i32>,
    /// Walk-forward: seed of each window's training.
    #[arg(long, requires = "train_window")]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub files: Files,
}

#[derive(Debug, Subcommand)]
pub enum BacktestCommand {
    /// List saved backtests, newest first.
    List {
        /// Only backtests of this model.
        #[arg(long)]
        model: Option<String>,
        /// Only backtests of this symbol.
        #[arg(long, value_parser = parse_symbol)]
        symbol: Option<String>,
    },
    /// Show one saved backtest: settings, metrics, signals; optionally write its files.
    Show {
        /// Backtest id (printed by `ktrdr backtest`).
        backtest_id: String,
        #[command(flatten)]
        files: Files,
    },
    /// List the gateway's backtest jobs (running and recent), newest first.
    Jobs {
        /// Only jobs in this state.
        #[arg(long, value_enum)]
        state: Option<JobStateFilter>,
    },
    /// Follow a backtest job until it ends, then print its summary and write its files (Ctrl+C
    /// stops watching, not the job).
    Watch {
        /// Job id (printed when the backtest starts, or by `ktrdr backtest jobs`).
        job_id: String,
        #[command(flatten)]
        files: Files,
    },
    /// Cancel a running backtest job and everything it runs.
    Cancel {
        /// Job id (printed when the backtest starts).
        job_id: String,
        /// Why, recorded with the job.
        #[arg(long, default_value = "cancelled with the ktrdr CLI")]
        reason: String,
    },
}

pub async fn run(ctx: &Context, args: BacktestArgs) -> Result<(), CliError> {
    match args.command {
        None => backtest(ctx, args.run).await,
        Some(BacktestCommand::List { model, symbol }) => list(ctx, model, symbol).await,
        Some(BacktestCommand::Show { backtest_id, files }) => show(ctx, &backtest_id, &files).await,
        Some(BacktestCommand::Jobs { state }) => jobs(ctx, state).await,
        Some(BacktestCommand::Watch { job_id, files }) => watch(ctx, &job_id, &files).await,
        Some(BacktestCommand::Cancel { job_id, reason }) => cancel(ctx, &job_id, &reason).await,
    }
}

// ---- the request ---------------------------------------------------------------------------

impl RunArgs {
    fn settings(&self) -> BacktestSettings {
        let sizing = match (self.size_fraction, self.units, self.notional) {
            (Some(f), _, _) => Some(backtest_settings::Sizing::FractionOfEquity(f)),
            (_, Some(u), _) => Some(backtest_settings::Sizing::FixedUnits(u)),
            (_, _, Some(n)) => Some(backtest_settings::Sizing::FixedNotional(n)),
            _ => None,
        };
        BacktestSettings {
            initial_capital: self.capital,
            commission_rate: self.commission,
            fixed_fee: self.fixed_fee,
            slippage_rate: self.slippage,
            spread_rate: self.spread,
            sizing,
            lot_step: self.lot_step,
            fractional: self.fractional,
            allow_shorts: self.allow_shorts,
            confidence_threshold: self.confidence,
            min_bars_between_trades: self.min_bars_between,
            min_time_between_trades_ms: self.min_time_between,
            reverse_on_opposite: self.reverse,
            fill: if self.same_close_fill {
                BacktestFill::SameCloseOptimistic as i32
            } else {
                BacktestFill::Unspecified as i32
            },
            trading_days: self.trading_days,
            periods_per_year: self.periods_per_year,
        }
    }

    fn walk_forward(&self) -> Option<WalkForward> {
        let (train_ms, test_ms) = (self.train_window?, self.test_window?);
        Some(WalkForward {
            train_ms,
            test_ms,
            step_ms: self.step.unwrap_or(0),
            anchored: self.anchored,
            epochs: self.epochs,
            seed: self.seed,
        })
    }

    /// The BacktestStrategy request; usage errors name the flags.
    pub fn to_request(&self) -> Result<BacktestStrategyRequest, CliError> {
        let Some(raw) = self.model.as_deref() else {
            return Err(CliError::Usage(
                "give MODEL: a model id (strategy/EURUSD_1h_v3) or a strategy file (.yaml)".into(),
            ));
        };
        let (Some(start), Some(end)) = (self.range.start, self.range.end) else {
            return Err(CliError::Usage(
                "a backtest needs --start and --end (the bars to trade)".into(),
            ));
        };
        let range = self.range.to_proto()?.unwrap_or(TimeRange {
            start_ms: start,
            end_ms: end,
        });
        let walk_forward = self.walk_forward();
        let model = model_source(raw, walk_forward.is_some())?;
        Ok(BacktestStrategyRequest {
            model: Some(model),
            symbols: self.symbols.clone(),
            range: Some(range),
            settings: Some(self.settings()),
            allow_training_overlap: self.allow_training_overlap,
            data_mode: if self.local {
                Mode::Local.to_proto() as i32
            } else {
                0
            },
            walk_forward,
        })
    }
}

/// What to backtest: a model id, or a strategy file (its newest model, or its text for a
/// walk-forward).
fn model_source(
    raw: &str,
    walk_forward: bool,
) -> Result<backtest_strategy_request::Model, CliError> {
    let is_file = raw.ends_with(".yaml") || raw.ends_with(".yml");
    if !is_file {
        if walk_forward {
            return Err(CliError::Usage(format!(
                "--train-window/--test-window train the strategy window by window: give a strategy file (.yaml) instead of model {raw}"
            )));
        }
        return Ok(backtest_strategy_request::Model::ModelId(raw.to_owned()));
    }
    let yaml = std::fs::read_to_string(raw)
        .map_err(|e| CliError::Usage(format!("cannot read strategy file {raw}: {e}")))?;
    if walk_forward {
        return Ok(backtest_strategy_request::Model::StrategyYaml(yaml));
    }
    let strategy = ktrdr_strategy::LoadedStrategy::from_yaml_str(&yaml).map_err(|e| {
        CliError::Usage(format!(
            "{raw}: {e} (check it with `ktrdr strategies validate {raw}`)"
        ))
    })?;
    Ok(backtest_strategy_request::Model::StrategyName(
        strategy.config.name,
    ))
}

// ---- running -------------------------------------------------------------------------------

/// One bar per symbol: the stage, bars done of the stage, the equity so far.
fn symbol_bar(bars: &MultiProgress, symbol: &str) -> ProgressBar {
    let bar = bars.add(ProgressBar::new(0));
    let style =
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} bars  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(symbol.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn backtest(ctx: &Context, args: RunArgs) -> Result<(), CliError> {
    let request = args.to_request()?;
    let mut ctrl_c = CtrlC::listen()?;
    let mut gateway = ctx.gateway();
    let call = gateway.backtest_strategy(request);
    let stream = tokio::select! {
        response = call => response.map_err(|s| ctx.error(s))?.into_inner(),
        _ = ctrl_c.pressed() => {
            return Err(CliError::Interrupted("interrupted before the backtest started".to_owned()));
        }
    };
    let events = stream.map(|m| m.map(|m| m.event)).boxed();
    follow(ctx, events, &args.files, ctrl_c, OnCtrlC::CancelTheJob).await
}

/// `ktrdr backtest watch JOB`: the job's events so far and to come, as `ktrdr backtest` shows
/// them.
async fn watch(ctx: &Context, job_id: &str, files: &Files) -> Result<(), CliError> {
    let mut ctrl_c = CtrlC::listen()?;
    let mut gateway = ctx.gateway();
    let call = gateway.watch_backtest_job(WatchBacktestJobRequest {
        job_id: job_id.to_owned(),
    });
    let stream = tokio::select! {
        response = call => response.map_err(|s| ctx.error(s))?.into_inner(),
        _ = ctrl_c.pressed() => return Err(stopped_watching(job_id)),
    };
    let events = stream.map(|m| m.map(|m| m.event)).boxed();
    follow(ctx, events, files, ctrl_c, OnCtrlC::StopWatching).await
}

fn stopped_watching(job_id: &str) -> CliError {
    crate::stopped_watching("backtest job", job_id, "ktrdr backtest cancel")
}

/// Shows a job's events (progress bars, or JSON lines) up to its summary, then prints the
/// summary and writes the result files.
async fn follow(
    ctx: &Context,
    mut stream: BoxStream<'static, Result<Option<BacktestEvent>, tonic::Status>>,
    files: &Files,
    mut ctrl_c: CtrlC,
    on_ctrl_c: OnCtrlC,
) -> Result<(), CliError> {
    let bars = if ctx.json {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let mut symbol_bars: BTreeMap<String, ProgressBar> = BTreeMap::new();
    let mut loads: BTreeMap<(String, String), LoadView> = BTreeMap::new();
    let mut job_id = String::new();
    let mut summary: Option<BacktestSummary> = None;
    loop {
        let message = tokio::select! {
            message = stream.next() => message.transpose().map_err(|s| ctx.error(s))?,
            _ = ctrl_c.pressed() => {
                let _ = bars.clear();
                return Err(match on_ctrl_c {
                    OnCtrlC::CancelTheJob => interrupt(ctx, &job_id).await,
                    OnCtrlC::StopWatching => stopped_watching(&job_id),
                });
            }
        };
        let Some(event) = message.flatten() else {
            break;
        };
        if ctx.json {
            print_json_line(&to_json::backtest_event(&event))?;
        }
        if job_id.is_empty() {
            job_id.clone_from(&event.job_id);
        }
        use backtest_event::Event;
        match event.event {
            Some(Event::Started(s)) => {
                if !ctx.json {
                    let what = if s.folds > 0 {
                        format!("walk-forward of {} window(s)", s.folds)
                    } else {
                        format!("model {}", s.model_id)
                    };
                    let ctrl_c_does = on_ctrl_c.hint();
                    say_multi(
                        &bars,
                        &format!(
                            "backtest job {} started: {what} on {} — {ctrl_c_does}",
                            event.job_id,
                            s.symbols.join(", ")
                        ),
                    );
                }
                for symbol in &s.symbols {
                    symbol_bars
                        .entry(symbol.clone())
                        .or_insert_with(|| symbol_bar(&bars, symbol));
                }
            }
            Some(Event::DataLoad(load)) => {
                let Some(load_event) = load.event else {
                    continue;
                };
                let view = loads
                    .entry((load.symbol.clone(), load.timeframe.clone()))
                    .or_insert_with(|| {
                        let label = format!("{} {} load", load.symbol, load.timeframe);
                        LoadView::with_bar(bars.add(ProgressBar::new(0)), &label, ctx.json)
                    });
                view.on_event(&load_event);
            }
            Some(Event::FoldTrained(f)) if !ctx.json => {
                say_multi(
                    &bars,
                    &format!(
                        "window {}/{}: trained {} on {} (session {}), trades {}",
                        f.fold,
                        f.folds,
                        f.model_id,
                        range_text(f.train_range.as_ref()),
                        f.session_id,
                        range_text(f.test_range.as_ref()),
                    ),
                );
            }
            Some(Event::Progress(p)) => {
                let progress = p.progress.unwrap_or_default();
                let bar = symbol_bars
                    .entry(p.symbol.clone())
                    .or_insert_with(|| symbol_bar(&bars, &p.symbol));
                bar.set_length(progress.bars_total.max(0) as u64);
                bar.set_position(progress.bars_done.max(0) as u64);
                bar.set_message(format!("{}  equity {:.2}", progress.stage, progress.equity));
            }
            Some(Event::Result(r)) => {
                if let Some(bar) = symbol_bars.get(&r.symbol) {
                    bar.finish_and_clear();
                }
                if !ctx.json {
                    say_multi(
                        &bars,
                        &format!(
                            "{}: backtest {} done, {} bars in {}",
                            r.symbol,
                            r.backtest_id,
                            r.bars,
                            human_duration(r.elapsed_ms)
                        ),
                    );
                }
            }
            Some(Event::Summary(s)) => {
                summary = Some(s);
                break;
            }
            Some(Event::FoldTrained(_)) | None => {}
        }
    }
    let _ = bars.clear();
    let Some(summary) = summary else {
        return Err(CliError::Failed(format!(
            "the event stream of backtest job {job_id} ended before the job did; follow it with `ktrdr backtest watch {job_id}`"
        )));
    };
    if !ctx.json {
        print(&summary_text(&job_id, &summary))?;
    }
    for result in &summary.results {
        let several = summary.results.len() > 1;
        write_files(ctx, result, files, several).await?;
    }
    match summary.state() {
        JobState::Completed => Ok(()),
        state => Err(CliError::Failed(format!(
            "backtest job {job_id} ended {}{}",
            job_state(state),
            if summary.error.is_empty() {
                String::new()
            } else {
                format!(": {}", summary.error)
            }
        ))),
    }
}

/// After Ctrl+C: cancel the job if it started; the error to exit with (130).
async fn interrupt(ctx: &Context, job_id: &str) -> CliError {
    if job_id.is_empty() {
        return CliError::Interrupted("interrupted before the backtest started".to_owned());
    }
    let mut request = tonic::Request::new(CancelBacktestJobRequest {
        job_id: job_id.to_owned(),
        reason: "Ctrl+C in the ktrdr CLI".to_owned(),
    });
    request.set_timeout(Duration::from_secs(10));
    match ctx.gateway().cancel_backtest_job(request).await {
        Ok(response) => {
            let state = job_state(response.into_inner().job.unwrap_or_default().state());
            if ctx.json {
                let _ = print_json_line(&json!({
                    "event": "interrupted",
                    "job_id": job_id,
                    "state": state,
                }));
            }
            CliError::Interrupted(format!("interrupted: backtest job {job_id} is {state}"))
        }
        Err(status) => CliError::Interrupted(format!(
            "interrupted, but cancelling backtest job {job_id} failed: {} — run `ktrdr backtest cancel {job_id}`",
            ctx.error(status)
        )),
    }
}

// ---- text ----------------------------------------------------------------------------------

fn range_text(range: Option<&TimeRange>) -> String {
    range.map_or("-".to_owned(), |r| {
        format!("{} → {}", iso_or_dash(r.start_ms), iso_or_dash(r.end_ms))
    })
}

/// A number with `decimals` decimals, `-` when undefined (NaN).
fn fixed(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "-".to_owned()
    }
}

/// A percentage field (already ×100) with two decimals.
fn pct(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2}%")
    } else {
        "-".to_owned()
    }
}

fn optional_duration(ms: Option<i64>) -> String {
    ms.map_or("-".to_owned(), human_duration)
}

/// The signals dropped, by the filter that dropped them.
fn dropped_text(s: &BacktestSignalCounts) -> String {
    let parts: Vec<String> = [
        ("low confidence", s.dropped_low_confidence),
        ("too soon", s.dropped_too_soon),
        ("already positioned", s.dropped_already_positioned),
        ("shorts disabled", s.dropped_shorts_disabled),
        ("last bar", s.dropped_last_bar),
        ("unaffordable", s.dropped_unaffordable),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "0".to_owned()
    } else {
        let total: i64 = [
            s.dropped_low_confidence,
            s.dropped_too_soon,
            s.dropped_already_positioned,
            s.dropped_shorts_disabled,
            s.dropped_last_bar,
            s.dropped_unaffordable,
        ]
        .iter()
        .sum();
        format!("{total} ({})", parts.join(", "))
    }
}

/// The metrics shown for a result, as (name, value) rows: the text table and the HTML report
/// both print these.
pub fn metric_rows(r: &BacktestResult) -> Vec<(&'static str, String)> {
    let m: BacktestMetrics = r.metrics.clone().unwrap_or_default();
    let s = r.signals.unwrap_or_default();
    vec![
        ("Backtest", r.backtest_id.clone()),
        ("Model", r.model_id.clone()),
        ("Bars", format!("{} {}", r.bars, r.timeframe)),
        ("Start", iso_or_dash(m.start_ms)),
        ("End", iso_or_dash(m.end_ms)),
        ("Equity Final", fixed(m.equity_final, 2)),
        ("Return", pct(m.return_pct)),
        ("Buy & Hold", pct(m.buy_hold_return_pct)),
        ("Return (Ann.)", pct(m.return_ann_pct)),
        ("Volatility (Ann.)", pct(m.volatility_ann_pct)),
        ("Sharpe", fixed(m.sharpe_ratio, 3)),
        ("Sortino", fixed(m.sortino_ratio, 3)),
        ("Calmar", fixed(m.calmar_ratio, 3)),
        ("Max DD", pct(m.max_drawdown_pct)),
        (
            "Max DD Duration",
            optional_duration(m.max_drawdown_duration_ms),
        ),
        ("# Trades", m.trades.to_string()),
        ("Win Rate", pct(m.win_rate_pct)),
        ("Best Trade", pct(m.best_trade_pct)),
        ("Worst Trade", pct(m.worst_trade_pct)),
        ("Profit Factor", fixed(m.profit_factor, 3)),
        ("Expectancy", pct(m.expectancy_pct)),
        ("SQN", fixed(m.sqn, 3)),
        ("Exposure", pct(m.exposure_time_pct)),
        ("Commissions", fixed(m.commissions, 2)),
        (
            "Signals executed",
            format!("{} of {}", s.executed, s.raw_buy + s.raw_sell),
        ),
        ("Signals dropped", dropped_text(&s)),
        (
            "Overlaps training",
            if r.overlaps_training { "yes" } else { "no" }.to_owned(),
        ),
    ]
}

/// Results side by side: one row per metric, one column per symbol.
pub fn metrics_table(results: &[BacktestResult]) -> String {
    let mut table =
        Table::new(std::iter::once("".to_owned()).chain(results.iter().map(|r| r.symbol.clone())));
    let columns: Vec<_> = results.iter().map(metric_rows).collect();
    if let Some(first) = columns.first() {
        for (i, (name, _)) in first.iter().enumerate() {
            table.row(
                std::iter::once((*name).to_owned())
                    .chain(columns.iter().map(|rows| rows[i].1.clone())),
            );
        }
    }
    table.render()
}

fn summary_text(job_id: &str, s: &BacktestSummary) -> String {
    let mut text = format!(
        "backtest job {job_id} {} in {}\n",
        job_state(s.state()),
        human_duration(s.elapsed_ms)
    );
    if !s.results.is_empty() {
        text.push('\n');
        text.push_str(&metrics_table(&s.results));
    }
    for r in &s.results {
        for (i, fold) in r.folds.iter().enumerate() {
            let m = fold.metrics.clone().unwrap_or_default();
            text.push_str(&format!(
                "  {} window {}: {} on {}: return {}, {} trades\n",
                r.symbol,
                i + 1,
                fold.model_id,
                range_text(fold.range.as_ref()),
                pct(m.return_pct),
                m.trades
            ));
        }
    }
    for f in &s.failures {
        text.push_str(&format!("{}: {} {}\n", f.symbol, f.code, f.message));
    }
    text
}

// ---- result files --------------------------------------------------------------------------

/// Where to write a result's files (`ktrdr backtest`, `show`, `watch`).
#[derive(Debug, Default, Args)]
pub struct Files {
    /// Write the trades here: CSV when the name ends .csv, else Arrow IPC.
    #[arg(long, value_name = "FILE")]
    pub trades: Option<PathBuf>,
    /// Write the equity curve (one row per bar) here: CSV when the name ends .csv, else Arrow IPC.
    #[arg(long, value_name = "FILE")]
    pub equity: Option<PathBuf>,
    /// Write a self-contained HTML report (metrics, equity, drawdown, trades on the price).
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
}

/// `path` with `_SYMBOL` before its extension (`trades.csv` → `trades_EURUSD.csv`).
pub fn path_for_symbol(path: &Path, symbol: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}_{symbol}.{}", ext.to_string_lossy()),
        None => format!("{stem}_{symbol}"),
    };
    path.with_file_name(name)
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// A saved table's bytes, chunks concatenated.
async fn read_table(
    ctx: &Context,
    backtest_id: &str,
    table: BacktestTable,
    format: TableFormat,
) -> Result<Vec<u8>, CliError> {
    let mut stream = ctx
        .training()
        .read_backtest_table(ctx.request(ReadBacktestTableRequest {
            backtest_id: backtest_id.to_owned(),
            table: table as i32,
            format: format as i32,
        }))
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(|s| ctx.error(s))? {
        bytes.extend_from_slice(&chunk.chunk);
    }
    Ok(bytes)
}

fn write_file(path: &Path, bytes: &[u8], flag: &str) -> Result<(), CliError> {
    std::fs::write(path, bytes)
        .map_err(|e| CliError::Failed(format!("{flag}: cannot write {}: {e}", path.display())))
}

async fn write_files(
    ctx: &Context,
    result: &BacktestResult,
    files: &Files,
    several: bool,
) -> Result<(), CliError> {
    let target = |path: &Path| {
        if several {
            path_for_symbol(path, &result.symbol)
        } else {
            path.to_path_buf()
        }
    };
    let mut written = Vec::new();
    for (path, table, flag) in [
        (&files.trades, BacktestTable::Trades, "--trades"),
        (&files.equity, BacktestTable::Equity, "--equity"),
    ] {
        let Some(path) = path else { continue };
        let path = target(path);
        let format = if is_csv(&path) {
            TableFormat::Csv
        } else {
            TableFormat::ArrowIpc
        };
        let bytes = read_table(ctx, &result.backtest_id, table, format).await?;
        write_file(&path, &bytes, flag)?;
        written.push((flag, path));
    }
    if let Some(path) = &files.report {
        let path = target(path);
        let equity = read_table(
            ctx,
            &result.backtest_id,
            BacktestTable::Equity,
            TableFormat::ArrowIpc,
        )
        .await?;
        let trades = read_table(
            ctx,
            &result.backtest_id,
            BacktestTable::Trades,
            TableFormat::ArrowIpc,
        )
        .await?;
        let html = report::html(result, &metric_rows(result), &equity, &trades)
            .map_err(|e| CliError::Failed(format!("--report: {e}")))?;
        write_file(&path, html.as_bytes(), "--report")?;
        written.push(("--report", path));
    }
    if ctx.json {
        if !written.is_empty() {
            let files: serde_json::Map<_, _> = written
                .iter()
                .map(|(flag, path)| {
                    (
                        flag.trim_start_matches("--").to_owned(),
                        path.display().to_string().into(),
                    )
                })
                .collect();
            print_json_line(&json!({
                "event": "files_written",
                "backtest_id": result.backtest_id,
                "symbol": result.symbol,
                "files": files,
            }))?;
        }
    } else {
        for (flag, path) in written {
            print(&format!(
                "{}: {} written to {}\n",
                result.symbol,
                flag.trim_start_matches("--"),
                path.display()
            ))?;
        }
    }
    Ok(())
}

// ---- list / show / cancel ------------------------------------------------------------------

async fn jobs(ctx: &Context, state: Option<JobStateFilter>) -> Result<(), CliError> {
    let jobs = ctx
        .every_page(|page_token| {
            let request = ctx.request(ListBacktestJobsRequest {
                states: state.map(|s| s.to_proto() as i32).into_iter().collect(),
                page_size: crate::LIST_PAGE_SIZE,
                page_token,
            });
            let mut client = ctx.gateway();
            async move {
                let page = client.list_backtest_jobs(request).await?.into_inner();
                Ok((page.jobs, page.next_page_token))
            }
        })
        .await?;
    if ctx.json {
        let rows: Vec<_> = jobs.iter().map(to_json::backtest_job).collect();
        return print_json(&json!({ "jobs": rows }));
    }
    if jobs.is_empty() {
        return print("no backtest jobs on this gateway\n");
    }
    let mut table = Table::new([
        "job", "state", "model", "symbols", "progress", "created", "error",
    ]);
    for j in &jobs {
        let progress = j.progress.clone().unwrap_or_default();
        table.row([
            j.job_id.clone(),
            job_state(j.state()),
            j.model_id.clone(),
            j.symbols.join(","),
            progress.step,
            iso(j.created_at_ms),
            j.error.clone(),
        ]);
    }
    print(&table.render())
}

async fn list(
    ctx: &Context,
    model: Option<String>,
    symbol: Option<String>,
) -> Result<(), CliError> {
    let results = ctx
        .every_page(|page_token| {
            let request = ctx.request(ListBacktestsRequest {
                model_id: model.clone().unwrap_or_default(),
                symbol: symbol.clone().unwrap_or_default(),
                page_size: crate::LIST_PAGE_SIZE,
                page_token,
            });
            let mut client = ctx.training();
            async move {
                let page = client.list_backtests(request).await?.into_inner();
                Ok((page.results, page.next_page_token))
            }
        })
        .await?;
    if ctx.json {
        let rows: Vec<_> = results.iter().map(to_json::backtest_result).collect();
        return print_json(&json!({ "backtests": rows }));
    }
    if results.is_empty() {
        return print("no saved backtests\n");
    }
    let mut table = Table::new([
        "backtest", "model", "symbol", "start", "end", "bars", "return", "sharpe", "max dd",
        "trades", "created",
    ]);
    for r in &results {
        let m = r.metrics.clone().unwrap_or_default();
        let range = r.range.unwrap_or_default();
        table.row([
            r.backtest_id.clone(),
            r.model_id.clone(),
            r.symbol.clone(),
            iso_or_dash(range.start_ms),
            iso_or_dash(range.end_ms),
            r.bars.to_string(),
            pct(m.return_pct),
            fixed(m.sharpe_ratio, 3),
            pct(m.max_drawdown_pct),
            m.trades.to_string(),
            iso_or_dash(r.created_at_ms),
        ]);
    }
    print(&table.render())
}

async fn show(ctx: &Context, backtest_id: &str, files: &Files) -> Result<(), CliError> {
    let result = ctx
        .training()
        .get_backtest(ctx.request(GetBacktestRequest {
            backtest_id: backtest_id.to_owned(),
        }))
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner()
        .result
        .unwrap_or_default();
    if ctx.json {
        print_json_line(&to_json::backtest_result(&result))?;
    } else {
        let mut text = format!(
            "backtest {} of {} on {} {}, {}; created {}\n\n",
            result.backtest_id,
            result.model_id,
            result.symbol,
            result.timeframe,
            range_text(result.range.as_ref()),
            iso(result.created_at_ms)
        );
        text.push_str(&metrics_table(std::slice::from_ref(&result)));
        print(&text)?;
        if result.overlaps_training {
            warn(
                &ProgressBar::hidden(),
                &format!(
                    "the range overlaps the bars the model was fitted on ({})",
                    range_text(result.training_range.as_ref())
                ),
            );
        }
    }
    write_files(ctx, &result, files, false).await
}

async fn cancel(ctx: &Context, job_id: &str, reason: &str) -> Result<(), CliError> {
    let job = ctx
        .gateway()
        .cancel_backtest_job(ctx.request(CancelBacktestJobRequest {
            job_id: job_id.to_owned(),
            reason: reason.to_owned(),
        }))
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner()
        .job
        .unwrap_or_default();
    if ctx.json {
        return print_json(&to_json::backtest_job(&job));
    }
    print(&format!(
        "backtest job {job_id}: {}\n",
        job_state(job.state())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> BacktestArgs {
        let cli = Cli::try_parse_from(std::iter::once("ktrdr").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.command {
            Command::Backtest(args) => *args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_model_id_with_flags_becomes_one_request_with_every_setting() {
        let args = parse(&[
            "backtest",
            "tiny/EURUSD_1h_v1",
            "--symbols",
            "eurusd,GBPUSD",
            "--start",
            "2024-04-01",
            "--end",
            "2024-06-01",
            "--capital",
            "5000",
            "--units",
            "3",
            "--min-time-between",
            "4h",
            "--same-close-fill",
            "--local",
        ]);
        assert!(args.command.is_none());
        let request = args.run.to_request().unwrap();
        assert_eq!(
            request.model,
            Some(backtest_strategy_request::Model::ModelId(
                "tiny/EURUSD_1h_v1".into()
            ))
        );
        assert_eq!(request.symbols, ["EURUSD", "GBPUSD"]);
        let settings = request.settings.unwrap();
        assert_eq!(settings.initial_capital, Some(5000.0));
        assert_eq!(
            settings.sizing,
            Some(backtest_settings::Sizing::FixedUnits(3.0))
        );
        assert_eq!(settings.min_time_between_trades_ms, Some(4 * 3_600_000));
        assert_eq!(settings.fill(), BacktestFill::SameCloseOptimistic);
        assert_eq!(request.data_mode, Mode::Local.to_proto() as i32);
        assert!(request.walk_forward.is_none());
    }

    #[test]
    fn subcommands_are_not_taken_for_a_model() {
        let args = parse(&["backtest", "show", "bt-1"]);
        assert!(matches!(args.command, Some(BacktestCommand::Show { .. })));
        let args = parse(&["backtest", "list", "--symbol", "eurusd"]);
        assert!(matches!(
            args.command,
            Some(BacktestCommand::List { symbol: Some(ref s), .. }) if s == "EURUSD"
        ));
    }

    #[test]
    fn a_strategy_file_means_its_newest_model_or_a_walk_forward_with_windows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        let yaml = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../strategies/rsi_bollinger_single.yaml"),
        )
        .unwrap();
        std::fs::write(&path, &yaml).unwrap();
        let file = path.to_str().unwrap();
        let name = ktrdr_strategy::LoadedStrategy::from_yaml_str(&yaml)
            .unwrap()
            .config
            .name;
        let common = ["--start", "2024-01-01", "--end", "2024-06-01"];
        let plain = parse(&[&["backtest", file][..], &common].concat());
        assert_eq!(
            plain.run.to_request().unwrap().model,
            Some(backtest_strategy_request::Model::StrategyName(name))
        );
        let wf = parse(
            &[
                &["backtest", file][..],
                &common,
                &[
                    "--train-window",
                    "90d",
                    "--test-window",
                    "30d",
                    "--anchored",
                ],
            ]
            .concat(),
        );
        let request = wf.run.to_request().unwrap();
        assert_eq!(
            request.model,
            Some(backtest_strategy_request::Model::StrategyYaml(yaml))
        );
        let windows = request.walk_forward.unwrap();
        assert_eq!(
            (
                windows.train_ms,
                windows.test_ms,
                windows.step_ms,
                windows.anchored
            ),
            (90 * 86_400_000, 30 * 86_400_000, 0, true)
        );
    }

    #[test]
    fn usage_errors_name_the_flags() {
        let no_range = parse(&["backtest", "tiny/EURUSD_1h_v1"]);
        let err = no_range.run.to_request().unwrap_err().to_string();
        assert!(err.contains("--start") && err.contains("--end"), "{err}");
        let wf_on_model = parse(&[
            "backtest",
            "tiny/EURUSD_1h_v1",
            "--start",
            "2024-01-01",
            "--end",
            "2024-02-01",
            "--train-window",
            "10d",
            "--test-window",
            "5d",
        ]);
        let err = wf_on_model.run.to_request().unwrap_err().to_string();
        assert!(err.contains("--train-window"), "{err}");
        let both = Cli::try_parse_from([
            "ktrdr",
            "backtest",
            "m/x",
            "--units",
            "1",
            "--notional",
            "5",
        ]);
        assert!(both.is_err());
    }

    #[test]
    fn several_symbols_put_the_symbol_before_the_extension() {
        assert_eq!(
            path_for_symbol(Path::new("out/trades.csv"), "EURUSD"),
            Path::new("out/trades_EURUSD.csv")
        );
        assert_eq!(
            path_for_symbol(Path::new("equity"), "GBPUSD"),
            Path::new("equity_GBPUSD")
        );
    }

    #[test]
    fn undefined_metrics_print_as_a_dash() {
        let result = BacktestResult {
            symbol: "EURUSD".into(),
            metrics: Some(BacktestMetrics {
                sharpe_ratio: f64::NAN,
                return_pct: 1.234,
                ..Default::default()
            }),
            ..Default::default()
        };
        let rows = metric_rows(&result);
        let value = |name: &str| rows.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(value("Sharpe"), "-");
        assert_eq!(value("Return"), "1.23%");
        assert!(metrics_table(&[result]).contains("EURUSD"));
    }
}
