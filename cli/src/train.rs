//! `ktrdr train` (GatewayService.TrainStrategy: load the data, then train, with live progress)
//! and `ktrdr trainings …` (TrainingService sessions: list, show, watch, cancel).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ktrdr_proto::gateway::v1::{
    TrainStrategyRequest, train_strategy_request, train_strategy_response,
};
use ktrdr_proto::training::v1::{
    CancelTrainingRequest, GetTrainingRequest, ListTrainingsRequest, TrainingEvent,
    TrainingMetrics, TrainingSession, TrainingState, WatchTrainingRequest, training_event,
};
use serde_json::json;

use crate::data::{LoadView, Mode, cancel_load, summary_text};
use crate::error::CliError;
use crate::json::{self as to_json, short_name, training_state};
use crate::output::{Table, percent, print, print_json, print_json_line, say, say_multi, warn};
use crate::sweep::{SweepAxis, SweepView, parse_sweep_axis, sweep_of};
use crate::time::{human_duration, iso_or_dash};
use crate::{Context, CtrlC, RangeArgs, parse_symbol, parse_timeframe};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Strategy file (v2 YAML), or the name of one under the server's strategies/ directory.
    pub strategy: String,
    /// Symbols to train on, comma-separated (default: the strategy's).
    #[arg(long, value_delimiter = ',', value_parser = parse_symbol)]
    pub symbols: Vec<String>,
    /// Timeframes, comma-separated, the base first (default: the strategy's).
    #[arg(long, value_delimiter = ',', value_parser = parse_timeframe)]
    pub timeframes: Vec<String>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Epochs (overrides the strategy's).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub epochs: Option<i32>,
    /// Random seed (default: the strategy's, else random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Batch size (overrides the strategy's).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub batch_size: Option<i32>,
    /// Device: cpu, cuda or cuda:N (default: the training host's).
    #[arg(long)]
    pub device: Option<String>,
    /// How to make sure the data exists first (local: train on stored bars only).
    #[arg(long, value_enum, default_value_t = Mode::Tail)]
    pub data_mode: Mode,
    /// Train a grid instead of one session: PARAM=V1,V2,… with PARAM one of hidden (layer
    /// sizes, e.g. hidden=32x16,64x32), learning_rate, batch_size, epochs; repeat the flag for
    /// more parameters. Ends with the points ranked by validation loss.
    #[arg(long, value_name = "PARAM=VALUES", value_parser = parse_sweep_axis)]
    pub sweep: Vec<SweepAxis>,
    /// Seeds per sweep point: --seed (random when unset), then --seed + 1, …
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub seeds: Option<i32>,
    /// Sweep sessions in flight at once (default: one per training host).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub parallel: Option<i32>,
}

#[derive(Debug, Subcommand)]
pub enum TrainingsCommand {
    /// List training sessions, newest first.
    List {
        /// Only sessions in this state.
        #[arg(long, value_enum)]
        state: Option<StateFilter>,
        /// Only sessions of this strategy.
        #[arg(long)]
        strategy: Option<String>,
        /// Only sessions training this symbol.
        #[arg(long, value_parser = parse_symbol)]
        symbol: Option<String>,
    },
    /// Show one session: state, progress, metrics, model.
    Show {
        /// Session id.
        session_id: String,
    },
    /// Follow a session's events until it ends (Ctrl+C stops watching, not the session).
    Watch {
        /// Session id.
        session_id: String,
    },
    /// Cancel a queued or running session (its latest checkpoint is kept), or every session of
    /// a sweep.
    Cancel {
        /// Session id, or a sweep id (`ktrdr train --sweep` prints it).
        session_id: String,
        /// Why, recorded with the session.
        #[arg(long, default_value = "cancelled with the ktrdr CLI")]
        reason: String,
    },
}

/// Session states to filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    Queued,
    LoadingData,
    Running,
    Completed,
    Failed,
    Cancelled,
    Interrupted,
}

impl StateFilter {
    fn to_proto(self) -> TrainingState {
        match self {
            StateFilter::Queued => TrainingState::Queued,
            StateFilter::LoadingData => TrainingState::LoadingData,
            StateFilter::Running => TrainingState::Running,
            StateFilter::Completed => TrainingState::Completed,
            StateFilter::Failed => TrainingState::Failed,
            StateFilter::Cancelled => TrainingState::Cancelled,
            StateFilter::Interrupted => TrainingState::Interrupted,
        }
    }
}

pub async fn run(ctx: &Context, command: TrainingsCommand) -> Result<(), CliError> {
    match command {
        TrainingsCommand::List {
            state,
            strategy,
            symbol,
        } => list(ctx, state, strategy, symbol).await,
        TrainingsCommand::Show { session_id } => show(ctx, &session_id).await,
        TrainingsCommand::Watch { session_id } => watch(ctx, &session_id).await,
        TrainingsCommand::Cancel { session_id, reason } => cancel(ctx, &session_id, &reason).await,
    }
}

// ---- rendering of training events ----------------------------------------------------------

/// Draws a session's events: state changes as lines, one bar over the epochs with the latest
/// loss and accuracy. Remembers how the session ended.
pub struct TrainingView {
    json: bool,
    bar: ProgressBar,
    session_id: String,
    final_state: Option<TrainingState>,
    reason: String,
    model_id: String,
    metrics: Option<TrainingMetrics>,
}

impl TrainingView {
    pub fn new(json: bool, bar: ProgressBar) -> Self {
        let style = ProgressStyle::with_template("{spinner} epoch [{bar:30}] {pos}/{len}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        Self {
            json,
            bar,
            session_id: String::new(),
            final_state: None,
            reason: String::new(),
            model_id: String::new(),
            metrics: None,
        }
    }

    fn line(&self, text: String) {
        if !self.json {
            say(&self.bar, &text);
        }
    }

    pub fn on_event(&mut self, event: &TrainingEvent) -> Result<(), CliError> {
        use training_event::Event;
        if self.json {
            print_json_line(&to_json::training_event(event))?;
        }
        if self.session_id.is_empty() {
            self.session_id.clone_from(&event.session_id);
        }
        match &event.event {
            Some(Event::StateChanged(s)) => {
                let to = s.to_state();
                self.line(format!(
                    "session {}: {}{}",
                    event.session_id,
                    training_state(to),
                    if s.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", s.reason)
                    }
                ));
                if to == TrainingState::Running {
                    self.bar.enable_steady_tick(Duration::from_millis(200));
                }
                if to.is_terminal() {
                    self.final_state = Some(to);
                    self.reason.clone_from(&s.reason);
                    self.bar.finish_and_clear();
                }
            }
            Some(Event::DataLoaded(d)) => self.line(format!(
                "loaded {} bars of {} {}",
                d.bars, d.symbol, d.timeframe
            )),
            Some(Event::EpochProgress(e)) => {
                self.bar.set_length(e.total_epochs.max(0) as u64);
                self.bar.set_position(e.epoch.max(0) as u64);
                let validation = match (e.val_loss, e.val_accuracy) {
                    (Some(loss), Some(accuracy)) => {
                        format!("  val loss {loss:.4} acc {}", percent(accuracy))
                    }
                    _ => String::new(),
                };
                let eta = e
                    .eta_ms
                    .map(|ms| format!("  ETA {}", human_duration(ms)))
                    .unwrap_or_default();
                let message = format!(
                    "loss {:.4} acc {}{validation}{eta}",
                    e.train_loss,
                    percent(e.train_accuracy)
                );
                self.line(format!(
                    "epoch {}/{}  {message}{}",
                    e.epoch,
                    e.total_epochs,
                    if e.improved { "  *" } else { "" }
                ));
                self.bar.set_message(message);
            }
            Some(Event::BatchProgress(b)) => {
                self.bar.set_length(b.total_epochs.max(0) as u64);
                self.bar.set_message(format!(
                    "epoch {} batch {}/{}  loss {:.4} acc {}",
                    b.epoch,
                    b.batch,
                    b.total_batches,
                    b.loss,
                    percent(b.accuracy)
                ));
            }
            Some(Event::DataSplit(r)) => {
                for (name, part) in [
                    ("train", &r.train),
                    ("validation", &r.validation),
                    ("test", &r.test),
                ] {
                    let p = part.unwrap_or_default();
                    self.line(format!(
                        "split {name}: {} rows from {} bars (BUY {}, HOLD {}, SELL {})",
                        p.rows, p.bars, p.buy, p.hold, p.sell
                    ));
                }
                for warning in &r.warnings {
                    warn(&self.bar, warning);
                }
            }
            Some(Event::CheckpointSaved(_)) | Some(Event::Log(_)) | None => {}
            Some(Event::ModelSaved(m)) => {
                self.model_id.clone_from(&m.model_id);
                self.line(format!("model saved: {} ({})", m.model_id, m.path));
            }
            Some(Event::FinalMetrics(m)) => self.metrics = Some(m.clone()),
        }
        Ok(())
    }

    pub fn is_finished(&self) -> bool {
        self.final_state.is_some()
    }

    /// Prints the outcome; an error unless the session COMPLETED.
    pub fn finish(&self) -> Result<(), CliError> {
        self.bar.finish_and_clear();
        let Some(state) = self.final_state else {
            return Err(CliError::Failed(format!(
                "the event stream of session {} ended before the session did; follow it with `ktrdr trainings watch {}`",
                self.session_id, self.session_id
            )));
        };
        if state == TrainingState::Completed {
            if !self.json {
                let mut text = format!(
                    "session {} COMPLETED{}\n",
                    self.session_id,
                    if self.model_id.is_empty() {
                        String::new()
                    } else {
                        format!(": model {}", self.model_id)
                    }
                );
                if let Some(metrics) = &self.metrics {
                    text.push_str(&metrics_text(metrics));
                }
                print(&text)?;
            }
            return Ok(());
        }
        Err(CliError::Failed(format!(
            "session {} ended {}{}",
            self.session_id,
            training_state(state),
            if self.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", self.reason)
            }
        )))
    }
}

/// Metrics as indented lines: losses and accuracies, then per-class scores and the confusion
/// matrix when there are some.
pub fn metrics_text(m: &TrainingMetrics) -> String {
    let mut text = String::new();
    // Metrics of an evaluation (no training ran) have only the evaluated split.
    let trained = m.epochs_run > 0;
    let mut table = Table::new(["split", "loss", "accuracy"]);
    if trained {
        table.row([
            "train".to_owned(),
            format!("{:.4}", m.train_loss),
            percent(m.train_accuracy),
        ]);
    }
    if let (Some(loss), Some(accuracy)) = (m.val_loss, m.val_accuracy) {
        table.row([
            "validation".to_owned(),
            format!("{loss:.4}"),
            percent(accuracy),
        ]);
    }
    if let (Some(loss), Some(accuracy)) = (m.test_loss, m.test_accuracy) {
        table.row(["test".to_owned(), format!("{loss:.4}"), percent(accuracy)]);
    }
    for line in table.render().lines() {
        text.push_str(&format!("  {line}\n"));
    }
    if !m.per_class.is_empty() {
        let mut classes = Table::new(["class", "precision", "recall", "f1", "support"]);
        for c in &m.per_class {
            classes.row([
                short_name(c.signal().as_str_name(), "SIGNAL_"),
                format!("{:.3}", c.precision),
                format!("{:.3}", c.recall),
                format!("{:.3}", c.f1),
                c.support.to_string(),
            ]);
        }
        text.push('\n');
        for line in classes.render().lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    if m.confusion_matrix.len() == 9 {
        let mut matrix = Table::new(["true \\ predicted", "BUY", "HOLD", "SELL"]);
        for (row, name) in ["BUY", "HOLD", "SELL"].iter().enumerate() {
            let cells = &m.confusion_matrix[row * 3..row * 3 + 3];
            matrix.row([
                name.to_string(),
                cells[0].to_string(),
                cells[1].to_string(),
                cells[2].to_string(),
            ]);
        }
        text.push('\n');
        for line in matrix.render().lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    if !trained {
        text.push_str(&format!("\n  {} samples evaluated\n", m.test_samples));
        return text;
    }
    text.push_str(&format!(
        "\n  best epoch {} of {} run{}; {} train / {} validation / {} test samples; trained in {}\n",
        m.best_epoch,
        m.epochs_run,
        if m.early_stopped { " (early stopped)" } else { "" },
        m.train_samples,
        m.val_samples,
        m.test_samples,
        human_duration(m.training_time_ms)
    ));
    text
}

// ---- train ---------------------------------------------------------------------------------

/// The strategy for the request: a file's text, or a name for the server's strategies/.
fn strategy_source(raw: &str) -> Result<train_strategy_request::Strategy, CliError> {
    let path = Path::new(raw);
    if path.is_file() {
        let yaml = std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read {raw}: {e}")))?;
        return Ok(train_strategy_request::Strategy::StrategyYaml(yaml));
    }
    let looks_like_a_path = raw.contains('/') || raw.contains('\\');
    if looks_like_a_path {
        return Err(CliError::Usage(format!(
            "{raw}: no such file (pass a strategy file, or a strategy name known to the server)"
        )));
    }
    Ok(train_strategy_request::Strategy::StrategyName(
        raw.trim_end_matches(".yaml").to_owned(),
    ))
}

pub async fn train(ctx: &Context, args: TrainArgs) -> Result<(), CliError> {
    let request = TrainStrategyRequest {
        strategy: Some(strategy_source(&args.strategy)?),
        symbols: args.symbols.clone(),
        timeframes: args.timeframes.clone(),
        range: args.range.to_proto()?,
        epochs: args.epochs,
        seed: args.seed,
        batch_size: args.batch_size,
        device: args.device.clone(),
        data_mode: args.data_mode.to_proto() as i32,
        sweep: sweep_of(&args.sweep, args.seeds, args.parallel)?,
        ..Default::default()
    };
    let bars = if ctx.json {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let mut view = TrainingView::new(ctx.json, bars.add(ProgressBar::new(0)));
    // One bar per (symbol, timeframe) load, in the order the loads start.
    let mut loads: BTreeMap<(String, String), (LoadView, String)> = BTreeMap::new();
    let mut ctrl_c = CtrlC::listen()?;

    let mut gateway = ctx.gateway();
    let call = gateway.train_strategy(request);
    let mut stream = tokio::select! {
        response = call => response.map_err(|s| ctx.error(s))?.into_inner(),
        _ = ctrl_c.pressed() => {
            return Err(CliError::Interrupted("interrupted before training started".to_owned()));
        }
    };
    let mut session_id = String::new();
    let mut sweep: Option<SweepView> = None;
    loop {
        let message = tokio::select! {
            message = stream.message() => message.map_err(|s| ctx.error(s))?,
            _ = ctrl_c.pressed() => {
                let _ = bars.clear();
                if let Some(sweep) = &sweep {
                    return Err(interrupt_training(ctx, "sweep", &sweep.sweep_id, &loads).await);
                }
                return Err(interrupt_training(ctx, "session", &session_id, &loads).await);
            }
        };
        let Some((point, event)) = message.and_then(|m| Some((m.point, m.event?))) else {
            break;
        };
        match event {
            train_strategy_response::Event::SweepStarted(started) => {
                sweep = Some(SweepView::new(ctx.json, &bars, &started)?);
                view.bar.finish_and_clear();
            }
            train_strategy_response::Event::SweepProgress(progress) => {
                if let Some(sweep) = &mut sweep {
                    sweep.on_progress(&progress)?;
                }
            }
            train_strategy_response::Event::SweepSummary(summary) => {
                let _ = bars.clear();
                return match &sweep {
                    Some(sweep) => sweep.finish(&summary),
                    None => Err(CliError::Failed(
                        "the gateway sent a sweep summary without starting a sweep".to_owned(),
                    )),
                };
            }
            train_strategy_response::Event::TrainingStarted(started)
                if point > 0 && sweep.is_some() =>
            {
                if let Some(sweep) = &sweep {
                    sweep.on_started(point, &started)?;
                }
            }
            train_strategy_response::Event::Training(event) if point > 0 && sweep.is_some() => {
                if let Some(sweep) = &sweep {
                    sweep.on_training(point, &event)?;
                }
            }
            train_strategy_response::Event::DataLoad(load) => {
                if ctx.json && load.event.is_some() {
                    print_json_line(&to_json::data_load_event(&load))?;
                }
                let Some(load_event) = load.event else {
                    continue;
                };
                let key = (load.symbol.clone(), load.timeframe.clone());
                let (view, job_id) = loads.entry(key).or_insert_with(|| {
                    let label = format!("{} {}", load.symbol, load.timeframe);
                    let bar = bars.insert_before(&view.bar, ProgressBar::new(0));
                    (LoadView::with_bar(bar, &label, ctx.json), String::new())
                });
                if !load_event.job_id.is_empty() {
                    job_id.clone_from(&load_event.job_id);
                }
                view.on_event(&load_event);
                if let Some(ktrdr_proto::gateway::v1::load_event::Event::Summary(summary)) =
                    &load_event.event
                    && !ctx.json
                {
                    say_multi(
                        &bars,
                        summary_text(&load.symbol, &load.timeframe, job_id, summary).trim_end(),
                    );
                }
            }
            train_strategy_response::Event::TrainingStarted(started) => {
                session_id.clone_from(&started.session_id);
                if ctx.json {
                    print_json_line(&json!({
                        "event": "training_started",
                        "session_id": started.session_id,
                        "state": training_state(started.state()),
                        "queue_position": started.queue_position,
                        "local": started.local,
                        "training_host_url": started.training_host_url,
                    }))?;
                } else {
                    say_multi(
                        &bars,
                        &format!(
                            "training session {} started {}{} — Ctrl+C cancels it",
                            started.session_id,
                            if started.local {
                                "in the gateway".to_owned()
                            } else {
                                format!("on {}", started.training_host_url)
                            },
                            if started.queue_position > 0 {
                                format!(", queued at position {}", started.queue_position)
                            } else {
                                String::new()
                            }
                        ),
                    );
                }
            }
            train_strategy_response::Event::Training(event) => {
                view.on_event(&event)?;
                if view.is_finished() {
                    break;
                }
            }
        }
    }
    let _ = bars.clear();
    if let Some(sweep) = &sweep {
        return Err(CliError::Failed(format!(
            "the event stream of sweep {id} ended before its summary; its sessions are listed by `ktrdr trainings list`",
            id = sweep.sweep_id
        )));
    }
    view.finish()
}

/// After Ctrl+C: cancel the session (`what` = "session") or the sweep (every session of it) if
/// it started, else the loads still running; the error to exit with (130).
async fn interrupt_training(
    ctx: &Context,
    what: &str,
    session_id: &str,
    loads: &BTreeMap<(String, String), (LoadView, String)>,
) -> CliError {
    if session_id.is_empty() {
        let mut messages = Vec::new();
        for (_, job_id) in loads.values() {
            messages.push(cancel_load(ctx, job_id).await.to_string());
        }
        if messages.is_empty() {
            return CliError::Interrupted("interrupted before training started".to_owned());
        }
        return CliError::Interrupted(messages.join("; "));
    }
    let mut request = tonic::Request::new(CancelTrainingRequest {
        session_id: session_id.to_owned(),
        reason: "Ctrl+C in the ktrdr CLI".to_owned(),
    });
    request.set_timeout(Duration::from_secs(10));
    match ctx.training().cancel_training(request).await {
        Ok(response) => {
            let response = response.into_inner();
            let state = training_state(response.state());
            if ctx.json {
                let _ = print_json_line(&json!({
                    "event": "interrupted",
                    "session_id": session_id,
                    "what": what,
                    "state": state,
                    "checkpoint_epoch": response.checkpoint_epoch,
                }));
            }
            CliError::Interrupted(format!(
                "interrupted: {what} {session_id} is {state}{}",
                if response.checkpoint_epoch > 0 {
                    format!(
                        " (checkpoint of epoch {} kept; resume with StartTraining resume_from_session_id)",
                        response.checkpoint_epoch
                    )
                } else {
                    String::new()
                }
            ))
        }
        Err(status) => CliError::Interrupted(format!(
            "interrupted, but cancelling {what} {session_id} failed: {} — run `ktrdr trainings cancel {session_id}`",
            ctx.error(status)
        )),
    }
}

// ---- trainings -----------------------------------------------------------------------------

async fn list(
    ctx: &Context,
    state: Option<StateFilter>,
    strategy: Option<String>,
    symbol: Option<String>,
) -> Result<(), CliError> {
    let sessions = ctx
        .every_page(|page_token| {
            let request = ctx.request(ListTrainingsRequest {
                states: state.map(|s| s.to_proto() as i32).into_iter().collect(),
                strategy_name: strategy.clone().unwrap_or_default(),
                symbol: symbol.clone().unwrap_or_default(),
                page_size: crate::LIST_PAGE_SIZE,
                page_token,
            });
            let mut client = ctx.training();
            async move {
                let page = client.list_trainings(request).await?.into_inner();
                Ok((page.sessions, page.next_page_token))
            }
        })
        .await?;
    if ctx.json {
        let rows: Vec<_> = sessions.iter().map(to_json::session).collect();
        return print_json(&json!({ "sessions": rows }));
    }
    if sessions.is_empty() {
        return print("no training sessions\n");
    }
    let mut table = Table::new([
        "session",
        "strategy",
        "symbols",
        "timeframes",
        "state",
        "progress",
        "created",
        "model",
    ]);
    for s in &sessions {
        table.row([
            s.session_id.clone(),
            s.strategy_name.clone(),
            s.symbols.join(","),
            s.timeframes.join(","),
            training_state(s.state()),
            s.progress
                .as_ref()
                .map_or("-".to_owned(), |p| format!("{:.0}%", p.percent)),
            iso_or_dash(s.created_at_ms),
            if s.model_id.is_empty() {
                "-".to_owned()
            } else {
                s.model_id.clone()
            },
        ]);
    }
    print(&table.render())
}

fn session_text(s: &TrainingSession) -> String {
    let progress = s.progress.clone().unwrap_or_default();
    let mut text = format!(
        "session     {}\nstrategy    {}\nsymbols     {}\ntimeframes  {}\nstate       {}{}\nprogress    {:.0}% ({}/{} {})\ncreated     {}\nstarted     {}\nfinished    {}\ndevice      {}\nepochs      {}  seed {}\n",
        s.session_id,
        s.strategy_name,
        s.symbols.join(", "),
        s.timeframes.join(", "),
        training_state(s.state()),
        if s.error.is_empty() {
            String::new()
        } else {
            format!(" — {}", s.error)
        },
        progress.percent,
        progress.items_done,
        progress.items_total,
        if progress.unit.is_empty() {
            "epochs"
        } else {
            &progress.unit
        },
        iso_or_dash(s.created_at_ms),
        iso_or_dash(s.started_at_ms),
        iso_or_dash(s.finished_at_ms),
        if s.device.is_empty() { "-" } else { &s.device },
        s.epochs,
        s.seed,
    );
    if !s.model_id.is_empty() {
        text.push_str(&format!("model       {}\n", s.model_id));
    }
    if s.last_checkpoint_epoch > 0 {
        text.push_str(&format!("checkpoint  epoch {}\n", s.last_checkpoint_epoch));
    }
    if let Some(metrics) = &s.metrics {
        text.push_str("metrics\n");
        text.push_str(&metrics_text(metrics));
    }
    text
}

async fn show(ctx: &Context, session_id: &str) -> Result<(), CliError> {
    let session = ctx
        .training()
        .get_training(ctx.request(GetTrainingRequest {
            session_id: session_id.to_owned(),
        }))
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner()
        .session
        .unwrap_or_default();
    if ctx.json {
        return print_json(&to_json::session(&session));
    }
    print(&session_text(&session))
}

async fn watch(ctx: &Context, session_id: &str) -> Result<(), CliError> {
    let bar = if ctx.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    let mut view = TrainingView::new(ctx.json, bar);
    let mut ctrl_c = CtrlC::listen()?;
    let mut training = ctx.training();
    let call = training.watch_training(WatchTrainingRequest {
        session_id: session_id.to_owned(),
        after_sequence: None,
    });
    let stopped = || {
        CliError::Interrupted(format!(
            "stopped watching; session {session_id} goes on (`ktrdr trainings cancel {session_id}` cancels it)"
        ))
    };
    let mut stream = tokio::select! {
        response = call => response.map_err(|s| ctx.error(s))?.into_inner(),
        _ = ctrl_c.pressed() => return Err(stopped()),
    };
    loop {
        let message = tokio::select! {
            message = stream.message() => message.map_err(|s| ctx.error(s))?,
            _ = ctrl_c.pressed() => return Err(stopped()),
        };
        let Some(event) = message.and_then(|m| m.event) else {
            break;
        };
        view.on_event(&event)?;
    }
    view.finish()
}

async fn cancel(ctx: &Context, session_id: &str, reason: &str) -> Result<(), CliError> {
    let response = ctx
        .training()
        .cancel_training(ctx.request(CancelTrainingRequest {
            session_id: session_id.to_owned(),
            reason: reason.to_owned(),
        }))
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner();
    let state = training_state(response.state());
    if ctx.json {
        return print_json(&json!({
            "session_id": session_id,
            "state": state,
            "checkpoint_epoch": response.checkpoint_epoch,
            "session": response.session.as_ref().map(to_json::session),
        }));
    }
    print(&format!(
        "session {session_id}: {state}{}\n",
        if response.checkpoint_epoch > 0 {
            format!(" (checkpoint of epoch {} kept)", response.checkpoint_epoch)
        } else {
            String::new()
        }
    ))
}
