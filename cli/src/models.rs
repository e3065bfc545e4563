//! `ktrdr models …`: the model registry of the training host(s), through the gateway.

use clap::{Args, Subcommand};
use ktrdr_proto::common::v1::DatasetRef;
use ktrdr_proto::training::v1::{
    EvaluateModelRequest, GetModelRequest, ListModelsRequest, Model, PredictRequest,
    predict_request,
};
use serde_json::json;

use crate::error::CliError;
use crate::json::{self as to_json, short_name};
use crate::output::{Format, Table, human_bytes, note, percent, print, print_json};
use crate::time::{iso, iso_or_dash};
use crate::train::metrics_text;
use crate::{Context, RangeArgs, parse_symbol, parse_timeframe};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List trained models, newest first.
    List {
        /// Only models of this strategy.
        #[arg(long)]
        strategy: Option<String>,
        /// Only models trained on this symbol.
        #[arg(long, value_parser = parse_symbol)]
        symbol: Option<String>,
        /// Only models using this timeframe.
        #[arg(short = 't', long, value_parser = parse_timeframe)]
        timeframe: Option<String>,
    },
    /// Show one model: what it was trained on, its metrics and features.
    Show {
        /// Model id, e.g. rsi_bollinger_single/EURUSD_1h_v1.
        model_id: String,
        /// Also print the strategy YAML it was trained with.
        #[arg(long)]
        yaml: bool,
    },
    /// Evaluate a model on stored bars (default: its own test split).
    Evaluate {
        /// Model id.
        model_id: String,
        /// Symbols to evaluate on, comma-separated (default: the model's).
        #[arg(long, value_delimiter = ',', value_parser = parse_symbol)]
        symbols: Vec<String>,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Run a model over stored bars: one BUY/HOLD/SELL signal per bar.
    Predict(PredictArgs),
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model id.
    pub model_id: String,
    /// Symbol whose stored bars to predict on.
    #[arg(long, value_parser = parse_symbol)]
    pub symbol: String,
    /// Base timeframe (default: the model's).
    #[arg(short = 't', long, value_parser = parse_timeframe)]
    pub timeframe: Option<String>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Print only the last N predictions.
    #[arg(short = 'n', long, value_name = "N")]
    pub limit: Option<usize>,
    /// Output format (--json is the same as --format json).
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(ctx: &Context, command: ModelsCommand) -> Result<(), CliError> {
    match command {
        ModelsCommand::List {
            strategy,
            symbol,
            timeframe,
        } => list(ctx, strategy, symbol, timeframe).await,
        ModelsCommand::Show { model_id, yaml } => show(ctx, &model_id, yaml).await,
        ModelsCommand::Evaluate {
            model_id,
            symbols,
            range,
        } => evaluate(ctx, &model_id, symbols, &range).await,
        ModelsCommand::Predict(args) => predict(ctx, args).await,
    }
}

async fn list(
    ctx: &Context,
    strategy: Option<String>,
    symbol: Option<String>,
    timeframe: Option<String>,
) -> Result<(), CliError> {
    let models = ctx
        .every_page(|page_token| {
            let request = ctx.request(ListModelsRequest {
                strategy_name: strategy.clone().unwrap_or_default(),
                symbol: symbol.clone().unwrap_or_default(),
                timeframe: timeframe.clone().unwrap_or_default(),
                page_size: crate::LIST_PAGE_SIZE,
                page_token,
            });
            let mut client = ctx.training();
            async move {
                let page = client.list_models(request).await?.into_inner();
                Ok((page.models, page.next_page_token))
            }
        })
        .await?;
    if ctx.json {
        let rows: Vec<_> = models.iter().map(to_json::model).collect();
        return print_json(&json!({ "models": rows }));
    }
    if models.is_empty() {
        return print("no models yet (train one with `ktrdr train STRATEGY.yaml`)\n");
    }
    let mut table = Table::new([
        "model",
        "symbols",
        "timeframes",
        "created",
        "test acc",
        "params",
        "device",
    ]);
    for m in &models {
        table.row([
            m.model_id.clone(),
            m.symbols.join(","),
            m.timeframes.join(","),
            iso_or_dash(m.created_at_ms),
            m.metrics
                .as_ref()
                .and_then(|x| x.test_accuracy)
                .map_or("-".to_owned(), percent),
            m.parameter_count.to_string(),
            m.device.clone(),
        ]);
    }
    print(&table.render())
}

fn model_text(m: &Model) -> String {
    let range = m.training_range.unwrap_or_default();
    let mut text = format!(
        "model       {}\nstrategy    {} (version {})\nsymbols     {}\ntimeframes  {}\ntrained on  {} to {}\ncreated     {}\nsession     {}\ndevice      {}\nparameters  {}\nsize        {}\npath        {}\nfeatures    {}\n",
        m.model_id,
        m.strategy_name,
        m.version,
        m.symbols.join(", "),
        m.timeframes.join(", "),
        iso_or_dash(range.start_ms),
        iso_or_dash(range.end_ms),
        iso_or_dash(m.created_at_ms),
        m.training_session_id,
        m.device,
        m.parameter_count,
        human_bytes(m.size_bytes),
        m.path,
        m.feature_names.len(),
    );
    if let Some(metrics) = &m.metrics {
        text.push_str("metrics\n");
        text.push_str(&metrics_text(metrics));
    }
    text
}

async fn show(ctx: &Context, model_id: &str, yaml: bool) -> Result<(), CliError> {
    let response = ctx
        .training()
        .get_model(ctx.request(GetModelRequest {
            model_id: model_id.to_owned(),
        }))
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner();
    let model = response.model.unwrap_or_default();
    if ctx.json {
        let mut value = to_json::model(&model);
        value["strategy_yaml"] = response.strategy_yaml.into();
        return print_json(&value);
    }
    let mut text = model_text(&model);
    if yaml {
        text.push_str("\nstrategy YAML\n");
        text.push_str(&response.strategy_yaml);
        if !response.strategy_yaml.ends_with('\n') {
            text.push('\n');
        }
    }
    print(&text)
}

async fn evaluate(
    ctx: &Context,
    model_id: &str,
    symbols: Vec<String>,
    range: &RangeArgs,
) -> Result<(), CliError> {
    let response = ctx
        .training()
        .evaluate_model(ctx.request(EvaluateModelRequest {
            model_id: model_id.to_owned(),
            symbols,
            range: range.to_proto()?,
        }))
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner();
    if ctx.json {
        return print_json(&json!({
            "model_id": response.model_id,
            "bars_evaluated": response.bars_evaluated,
            "metrics": to_json::metrics(response.metrics.as_ref()),
        }));
    }
    let mut text = format!(
        "model {}: {} bar(s) evaluated\n",
        response.model_id, response.bars_evaluated
    );
    if let Some(metrics) = &response.metrics {
        text.push_str(&metrics_text(metrics));
    }
    print(&text)
}

async fn predict(ctx: &Context, args: PredictArgs) -> Result<(), CliError> {
    let response = ctx
        .training()
        .predict(ctx.request(PredictRequest {
            model_id: args.model_id.clone(),
            input: Some(predict_request::Input::Dataset(DatasetRef {
                symbol: args.symbol.clone(),
                timeframe: args.timeframe.clone().unwrap_or_default(),
                range: args.range.to_proto()?,
            })),
        }))
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner();
    let n = response.timestamp_ms.len();
    let skip = args.limit.map_or(0, |limit| n.saturating_sub(limit));
    let signal = |i: usize| {
        let raw = response.signals.get(i).copied().unwrap_or_default();
        let signal = ktrdr_proto::training::v1::Signal::try_from(raw).unwrap_or_default();
        short_name(signal.as_str_name(), "SIGNAL_")
    };
    let prob = |column: &[f32], i: usize| f64::from(column.get(i).copied().unwrap_or(f32::NAN));
    let format = if ctx.json { Format::Json } else { args.format };
    if format == Format::Json {
        let rows: Vec<_> = (skip..n)
            .map(|i| {
                json!({
                    "timestamp": iso(response.timestamp_ms[i]),
                    "timestamp_ms": response.timestamp_ms[i],
                    "signal": signal(i),
                    "prob_buy": prob(&response.prob_buy, i),
                    "prob_hold": prob(&response.prob_hold, i),
                    "prob_sell": prob(&response.prob_sell, i),
                })
            })
            .collect();
        return print_json(&json!({
            "model_id": response.model_id,
            "symbol": response.symbol,
            "timeframe": response.timeframe,
            "count": rows.len(),
            "predictions": rows,
        }));
    }
    let mut table = Table::new(["timestamp", "signal", "prob_buy", "prob_hold", "prob_sell"]);
    for i in skip..n {
        table.row([
            iso(response.timestamp_ms[i]),
            signal(i),
            format!("{:.4}", prob(&response.prob_buy, i)),
            format!("{:.4}", prob(&response.prob_hold, i)),
            format!("{:.4}", prob(&response.prob_sell, i)),
        ]);
    }
    if format == Format::Csv {
        return print(&table.render_csv());
    }
    print(&table.render())?;
    note(&format!(
        "{} prediction(s) of {} on {} {}",
        n - skip,
        response.model_id,
        response.symbol,
        response.timeframe
    ));
    Ok(())
}
