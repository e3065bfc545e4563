//! `ktrdr data …`: load bars from IB through the gateway, import CSV files, and look at what the
//! store holds (bars, coverage, gaps, datasets). Everything goes through the gateway, which
//! serves the public `DataService` and routes it to the data service.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ktrdr_proto::common::v1::JobState;
use ktrdr_proto::common::v1::{BarColumns, BarEncoding, bar_batch};
use ktrdr_proto::data::v1::{
    GapKind, GetCoverageRequest, GetCoverageResponse, ImportCsvOptions, ImportCsvRequest,
    ListDatasetsRequest, ReadBarsRequest, ValidationMode, import_csv_request,
};
use ktrdr_proto::gateway::v1::{
    CancelLoadRequest, ListLoadsRequest, LoadBatchRequest, LoadBatchSummary, LoadDataRequest,
    LoadEvent, LoadMode, WatchLoadRequest, load_batch_response, load_event,
};
use serde_json::json;

use crate::error::CliError;
use crate::json::{self as to_json, job_state, short_name};
use crate::output::{
    Format, Table, human_bytes, note, number, print, print_json, print_json_line, say, say_multi,
};
use crate::time::{human_duration, iso, iso_json, iso_or_dash};
use crate::{Context, CtrlC, JobStateFilter, OnCtrlC, RangeArgs, parse_symbol, parse_timeframe};

/// Bytes per ImportCsv message: well under the 16 MiB message limit, big enough to be cheap.
const CSV_CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Load bars from IB into the store (GatewayService.LoadData), with a progress bar.
    /// Ctrl+C cancels the load job and exits with 130.
    Load(LoadArgs),
    /// Print stored bars (DataService.ReadBars).
    Show(ShowArgs),
    /// First and last stored bar and the bar count (DataService.GetCoverage).
    Range(DatasetArgs),
    /// Gaps in the stored bars, classified against the trading calendar.
    Gaps(GapsArgs),
    /// List the stored datasets.
    List(ListArgs),
    /// Import a CSV file in the original ktrdr format (`SYMBOL_tf.csv`) into the store.
    Import(ImportArgs),
    /// The gateway's load jobs, running and recent, newest first (GatewayService.ListLoads).
    Jobs(JobsArgs),
    /// Follow a load job to its summary (GatewayService.WatchLoad). Ctrl+C stops watching,
    /// not the job.
    Watch {
        /// Load job id (printed when the load starts, or by `ktrdr data jobs`).
        job_id: String,
    },
    /// Cancel a load job, or every dataset of a batch load (GatewayService.CancelLoad).
    Cancel {
        /// Load job id, or a batch id.
        job_id: String,
    },
}

#[derive(Debug, Args)]
pub struct DatasetArgs {
    /// Symbol, e.g. AAPL, EURUSD.
    #[arg(value_parser = parse_symbol)]
    pub symbol: String,
    /// Timeframe: 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w.
    #[arg(short = 't', long, value_parser = parse_timeframe)]
    pub timeframe: String,
    #[command(flatten)]
    pub range: RangeArgs,
}

/// How `data load` decides what to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Fetch nothing; report what is stored.
    Local,
    /// Bars newer than the last stored one (an empty store: the last 30 days).
    Tail,
    /// Bars older than the first stored one, back to --start or the head timestamp.
    Backfill,
    /// Backfill, fill unexpected gaps, and tail.
    Full,
}

impl Mode {
    pub fn to_proto(self) -> LoadMode {
        match self {
            Mode::Local => LoadMode::Local,
            Mode::Tail => LoadMode::Tail,
            Mode::Backfill => LoadMode::Backfill,
            Mode::Full => LoadMode::Full,
        }
    }
}

/// IB's data kind for `data load --what-to-show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WhatToShow {
    Trades,
    Midpoint,
    Bid,
    Ask,
    BidAsk,
}

impl WhatToShow {
    pub fn to_proto(self) -> ktrdr_proto::ib::v1::WhatToShow {
        use ktrdr_proto::ib::v1::WhatToShow as Pb;
        match self {
            WhatToShow::Trades => Pb::Trades,
            WhatToShow::Midpoint => Pb::Midpoint,
            WhatToShow::Bid => Pb::Bid,
            WhatToShow::Ask => Pb::Ask,
            WhatToShow::BidAsk => Pb::BidAsk,
        }
    }
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Symbols, comma-separated (AAPL or AAPL,MSFT,SPY). Several symbols or timeframes load as
    /// one batch (GatewayService.LoadBatch): a job per dataset, a summary table at the end.
    #[arg(value_name = "SYMBOLS", required = true, value_delimiter = ',', value_parser = parse_symbol)]
    pub symbols: Vec<String>,
    /// Timeframes, comma-separated: 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w.
    #[arg(short = 't', long = "timeframe", required = true, value_delimiter = ',', value_parser = parse_timeframe)]
    pub timeframes: Vec<String>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// What to fetch.
    #[arg(short = 'm', long, value_enum, default_value_t = Mode::Tail)]
    pub mode: Mode,
    /// Also fetch unexpected gaps inside the stored data (full always does).
    #[arg(long)]
    pub fill_gaps: bool,
    /// Regular trading hours only (IB useRTH); by default outside-hours bars are included.
    #[arg(long)]
    pub rth: bool,
    /// IB data kind; default: the instrument type's default (see ktrdr.ib.v1.WhatToShow).
    #[arg(long, value_enum)]
    pub what_to_show: Option<WhatToShow>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Print at most N bars: the first N of the range, or the last N with --tail.
    #[arg(short = 'n', long, value_name = "N")]
    pub limit: Option<i64>,
    /// With --limit: the last N bars instead of the first.
    #[arg(long, requires = "limit")]
    pub tail: bool,
    /// Output format (--json is the same as --format json).
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct GapsArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// List only UNEXPECTED gaps (missing data while the market was open).
    #[arg(long)]
    pub unexpected: bool,
    /// List at most N gaps (the counts still cover all of them).
    #[arg(long, value_name = "N")]
    pub max: Option<i32>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only datasets of this symbol.
    #[arg(long, value_parser = parse_symbol)]
    pub symbol: Option<String>,
    /// Only datasets of this timeframe.
    #[arg(short = 't', long, value_parser = parse_timeframe)]
    pub timeframe: Option<String>,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs in this state.
    #[arg(long, value_enum)]
    pub state: Option<JobStateFilter>,
    #[command(flatten)]
    pub dataset: ListArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file; symbol and timeframe come from a `SYMBOL_tf.csv` name unless given.
    pub file: PathBuf,
    /// Symbol to import as (default: from the file name).
    #[arg(long, value_parser = parse_symbol)]
    pub symbol: Option<String>,
    /// Timeframe to import as (default: from the file name).
    #[arg(short = 't', long, value_parser = parse_timeframe)]
    pub timeframe: Option<String>,
    /// IANA time zone of timestamps without an offset (default UTC).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Repair what can be repaired and drop the rest instead of rejecting the file.
    #[arg(long)]
    pub repair: bool,
    /// Parse and validate only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete the stored dataset first instead of merging.
    #[arg(long)]
    pub replace: bool,
}

pub async fn run(ctx: &Context, command: DataCommand) -> Result<(), CliError> {
    match command {
        DataCommand::Load(args) => load(ctx, args).await,
        DataCommand::Show(args) => show(ctx, args).await,
        DataCommand::Range(args) => range(ctx, args).await,
        DataCommand::Gaps(args) => gaps(ctx, args).await,
        DataCommand::List(args) => list(ctx, args).await,
        DataCommand::Import(args) => import(ctx, args).await,
        DataCommand::Jobs(args) => jobs(ctx, args).await,
        DataCommand::Watch { job_id } => watch(ctx, &job_id).await,
        DataCommand::Cancel { job_id } => cancel_by_request(ctx, &job_id).await,
    }
}

// ---- show ----------------------------------------------------------------------------------

async fn show(ctx: &Context, args: ShowArgs) -> Result<(), CliError> {
    if let Some(limit) = args.limit
        && limit < 0
    {
        return Err(CliError::Usage(format!("--limit {limit} must be >= 0")));
    }
    let dataset = &args.dataset;
    let request = ReadBarsRequest {
        symbol: dataset.symbol.clone(),
        timeframe: dataset.timeframe.clone(),
        range: dataset.range.to_proto()?,
        limit: args.limit,
        from_end: args.tail,
        // Columns: no Arrow decoder needed here, and the CLI prints row by row anyway.
        encoding: BarEncoding::Columns as i32,
        max_bars_per_batch: None,
    };
    let mut stream = ctx
        .data()
        .read_bars(request)
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner();
    let mut bars = BarColumns::default();
    while let Some(item) = stream.message().await.map_err(|s| ctx.error(s))? {
        let payload = item.batch.and_then(|b| b.payload);
        match payload {
            Some(bar_batch::Payload::Columns(c)) => {
                bars.timestamp_ms.extend(c.timestamp_ms);
                bars.open.extend(c.open);
                bars.high.extend(c.high);
                bars.low.extend(c.low);
                bars.close.extend(c.close);
                bars.volume.extend(c.volume);
            }
            Some(bar_batch::Payload::ArrowIpc(_)) => {
                return Err(CliError::Failed(
                    "the server answered ReadBars with Arrow IPC although columns were asked for"
                        .to_owned(),
                ));
            }
            None => {}
        }
    }
    let format = if ctx.json { Format::Json } else { args.format };
    let n = bars.timestamp_ms.len();
    let column = |values: &[f64], i: usize| values.get(i).copied().unwrap_or(f64::NAN);
    match format {
        Format::Json => {
            let rows: Vec<_> = (0..n)
                .map(|i| {
                    json!({
                        "timestamp": iso(bars.timestamp_ms[i]),
                        "timestamp_ms": bars.timestamp_ms[i],
                        "open": column(&bars.open, i),
                        "high": column(&bars.high, i),
                        "low": column(&bars.low, i),
                        "close": column(&bars.close, i),
                        "volume": column(&bars.volume, i),
                    })
                })
                .collect();
            print_json(&json!({
                "symbol": dataset.symbol,
                "timeframe": dataset.timeframe,
                "count": n,
                "bars": rows,
            }))
        }
        Format::Table | Format::Csv => {
            let mut table = Table::new(["timestamp", "open", "high", "low", "close", "volume"]);
            for i in 0..n {
                table.row([
                    iso(bars.timestamp_ms[i]),
                    number(column(&bars.open, i)),
                    number(column(&bars.high, i)),
                    number(column(&bars.low, i)),
                    number(column(&bars.close, i)),
                    number(column(&bars.volume, i)),
                ]);
            }
            if format == Format::Csv {
                // The original ktrdr CSV format: `data import` reads it back.
                print(&table.render_csv())
            } else {
                print(&table.render())?;
                note(&format!(
                    "{n} bar(s) of {} {}",
                    dataset.symbol, dataset.timeframe
                ));
                Ok(())
            }
        }
    }
}

// ---- range / gaps --------------------------------------------------------------------------

async fn coverage(
    ctx: &Context,
    dataset: &DatasetArgs,
    unexpected_only: bool,
    max_gaps: Option<i32>,
) -> Result<GetCoverageResponse, CliError> {
    let request = GetCoverageRequest {
        symbol: dataset.symbol.clone(),
        timeframe: dataset.timeframe.clone(),
        range: dataset.range.to_proto()?,
        unexpected_only,
        max_gaps,
    };
    Ok(ctx
        .data()
        .get_coverage(ctx.request(request))
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner())
}

async fn range(ctx: &Context, args: DatasetArgs) -> Result<(), CliError> {
    // Gaps are not needed here; ask for none so a long history costs nothing to answer.
    let c = coverage(ctx, &args, true, Some(0)).await?;
    if ctx.json {
        return print_json(&json!({
            "symbol": c.symbol,
            "timeframe": c.timeframe,
            "first": iso_json(c.first_ms),
            "last": iso_json(c.last_ms),
            "first_ms": c.first_ms,
            "last_ms": c.last_ms,
            "bar_count": c.bar_count,
            "calendar": c.calendar,
            "time_zone": c.time_zone,
        }));
    }
    print(&format!(
        "{} {}\n  first  {}\n  last   {}\n  bars   {}\n",
        c.symbol,
        c.timeframe,
        iso_or_dash(c.first_ms),
        iso_or_dash(c.last_ms),
        c.bar_count
    ))
}

fn gap_kind(kind: GapKind) -> String {
    short_name(kind.as_str_name(), "GAP_KIND_")
}

async fn gaps(ctx: &Context, args: GapsArgs) -> Result<(), CliError> {
    let c = coverage(ctx, &args.dataset, args.unexpected, args.max).await?;
    if ctx.json {
        let gaps: Vec<_> = c
            .gaps
            .iter()
            .map(|g| {
                json!({
                    "range": to_json::range(g.range.as_ref()),
                    "kind": gap_kind(g.kind()),
                    "missing_bars": g.missing_bars,
                    "expected_missing_bars": g.expected_missing_bars,
                })
            })
            .collect();
        let counts: Vec<_> = c
            .gap_counts
            .iter()
            .map(|g| {
                json!({
                    "kind": gap_kind(g.kind()),
                    "count": g.count,
                    "missing_bars": g.missing_bars,
                })
            })
            .collect();
        return print_json(&json!({
            "symbol": c.symbol,
            "timeframe": c.timeframe,
            "calendar": c.calendar,
            "time_zone": c.time_zone,
            "first": iso_json(c.first_ms),
            "last": iso_json(c.last_ms),
            "bar_count": c.bar_count,
            "gaps": gaps,
            "gap_counts": counts,
            "gaps_truncated": c.gaps_truncated,
            "covered": c.covered.iter().map(|r| to_json::range(Some(r))).collect::<Vec<_>>(),
        }));
    }
    let mut text = format!(
        "{} {} ({}, {}): {} bars from {} to {}\n",
        c.symbol,
        c.timeframe,
        if c.calendar.is_empty() {
            "no calendar"
        } else {
            &c.calendar
        },
        if c.time_zone.is_empty() {
            "UTC"
        } else {
            &c.time_zone
        },
        c.bar_count,
        iso_or_dash(c.first_ms),
        iso_or_dash(c.last_ms),
    );
    let counts: Vec<String> = c
        .gap_counts
        .iter()
        .filter(|g| g.count > 0)
        .map(|g| {
            format!(
                "{} {} ({} bars)",
                g.count,
                gap_kind(g.kind()),
                g.missing_bars
            )
        })
        .collect();
    text.push_str(&format!(
        "gaps: {}\n",
        if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(", ")
        }
    ));
    if !c.gaps.is_empty() {
        let mut table = Table::new(["start", "end", "kind", "missing bars", "expected missing"]);
        for g in &c.gaps {
            let r = g.range.unwrap_or_default();
            table.row([
                iso(r.start_ms),
                iso(r.end_ms),
                gap_kind(g.kind()),
                g.missing_bars.to_string(),
                g.expected_missing_bars.to_string(),
            ]);
        }
        text.push('\n');
        text.push_str(&table.render());
    }
    if c.gaps_truncated {
        text.push_str("(list truncated: pass --max or --unexpected)\n");
    }
    print(&text)
}

// ---- list ----------------------------------------------------------------------------------

async fn list(ctx: &Context, args: ListArgs) -> Result<(), CliError> {
    let datasets = ctx
        .every_page(|page_token| {
            let request = ctx.request(ListDatasetsRequest {
                symbol: args.symbol.clone().unwrap_or_default(),
                timeframe: args.timeframe.clone().unwrap_or_default(),
                page_size: 1000, // ListDatasets gives up to 1000 per page
                page_token,
            });
            let mut client = ctx.data();
            async move {
                let page = client.list_datasets(request).await?.into_inner();
                Ok((page.datasets, page.next_page_token))
            }
        })
        .await?;
    if ctx.json {
        let rows: Vec<_> = datasets
            .iter()
            .map(|d| {
                json!({
                    "symbol": d.symbol,
                    "timeframe": d.timeframe,
                    "first": iso_json(d.first_ms),
                    "last": iso_json(d.last_ms),
                    "bar_count": d.bar_count,
                    "size_bytes": d.size_bytes,
                    "updated": iso_json(d.updated_at_ms),
                    "partitions": d.partitions,
                    "source": d.source,
                })
            })
            .collect();
        return print_json(&json!({ "datasets": rows }));
    }
    if datasets.is_empty() {
        return print(
            "no datasets stored (load some with `ktrdr data load` or `ktrdr data import`)\n",
        );
    }
    let mut table = Table::new([
        "symbol",
        "timeframe",
        "first",
        "last",
        "bars",
        "size",
        "source",
    ]);
    for d in &datasets {
        table.row([
            d.symbol.clone(),
            d.timeframe.clone(),
            iso_or_dash(d.first_ms),
            iso_or_dash(d.last_ms),
            d.bar_count.to_string(),
            human_bytes(d.size_bytes),
            d.source.clone(),
        ]);
    }
    print(&table.render())
}

// ---- import --------------------------------------------------------------------------------

/// The dataset `data import` writes: `--symbol` and `-t` where given, else what a
/// `SYMBOL_tf.csv` file name says; a usage error naming the flags to pass otherwise.
pub fn import_dataset(
    file_name: &str,
    symbol: Option<&str>,
    timeframe: Option<&str>,
) -> Result<(String, String), CliError> {
    let named = ktrdr_market::dataset_of_file_name(file_name);
    let symbol = match (symbol, &named) {
        (Some(symbol), _) => Some(symbol.to_owned()),
        (None, Some((symbol, _))) => Some(parse_symbol(symbol).map_err(|why| {
            CliError::Usage(format!(
                "the file name {file_name} gives the symbol {symbol:?}, which {why}; pass --symbol"
            ))
        })?),
        (None, None) => None,
    };
    let timeframe = timeframe
        .map(str::to_owned)
        .or_else(|| named.map(|(_, tf)| tf.as_str().to_owned()));
    let accepted = ktrdr_market::Timeframe::ACCEPTED;
    match (symbol, timeframe) {
        (Some(symbol), Some(timeframe)) => Ok((symbol, timeframe)),
        (Some(_), None) => Err(CliError::Usage(format!(
            "{file_name} does not name its timeframe: pass -t/--timeframe ({accepted}), or name the file SYMBOL_timeframe.csv (e.g. AAPL_1h.csv)"
        ))),
        (None, Some(_)) => Err(CliError::Usage(format!(
            "{file_name} does not name its symbol: pass --symbol, or name the file SYMBOL_timeframe.csv (e.g. AAPL_1h.csv)"
        ))),
        (None, None) => Err(CliError::Usage(format!(
            "{file_name} does not name its timeframe and symbol: pass -t/--timeframe ({accepted}) and --symbol, or name the file SYMBOL_timeframe.csv (e.g. AAPL_1h.csv)"
        ))),
    }
}

async fn import(ctx: &Context, args: ImportArgs) -> Result<(), CliError> {
    let file = tokio::fs::File::open(&args.file)
        .await
        .map_err(|e| CliError::Usage(format!("cannot open {}: {e}", args.file.display())))?;
    let file_name = file_name_of(&args.file);
    let (symbol, timeframe) = import_dataset(
        &file_name,
        args.symbol.as_deref(),
        args.timeframe.as_deref(),
    )?;
    let options = ImportCsvOptions {
        symbol,
        timeframe,
        file_name: file_name.clone(),
        server_path: String::new(),
        timezone: args.timezone.clone().unwrap_or_default(),
        validation_mode: if args.repair {
            ValidationMode::Repair
        } else {
            ValidationMode::Reject
        } as i32,
        dry_run: args.dry_run,
        replace_existing: args.replace,
    };
    let first = ImportCsvRequest {
        part: Some(import_csv_request::Part::Options(options)),
    };
    // The file is streamed in chunks as the call sends them, so its size does not matter.
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut buffer = vec![0u8; CSV_CHUNK_BYTES];
        let mut filled = 0;
        while filled < buffer.len() {
            match file.read(&mut buffer[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                // A read error ends the stream early; the server then sees a truncated file and
                // reports the last line as bad, which names the problem well enough.
                Err(_) => break,
            }
        }
        if filled == 0 {
            return None;
        }
        buffer.truncate(filled);
        let next = ImportCsvRequest {
            part: Some(import_csv_request::Part::Chunk(buffer)),
        };
        Some((next, Some(file)))
    });
    let requests = futures_util::stream::iter([first]).chain(chunks);
    let response = ctx
        .data()
        .import_csv(requests)
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner();
    let coverage = response.coverage.unwrap_or_default();
    if ctx.json {
        return print_json(&json!({
            "file": args.file.display().to_string(),
            "symbol": response.symbol,
            "timeframe": response.timeframe,
            "rows_read": response.rows_read,
            "bars_written": response.bars_written,
            "bars_replaced": response.bars_replaced,
            "rows_skipped": response.rows_skipped,
            "detected_columns": response.detected_columns,
            "timestamp_column": response.timestamp_column,
            "timestamp_format": response.timestamp_format,
            "issues_total": response.issues_total,
            "issues": response.issues.iter().map(|i| json!({
                "kind": short_name(i.kind().as_str_name(), "ISSUE_KIND_"),
                "severity": short_name(i.severity().as_str_name(), "ISSUE_SEVERITY_"),
                "row": i.row,
                "field": i.field,
                "message": i.message,
                "repair": i.repair,
            })).collect::<Vec<_>>(),
            "dry_run": response.dry_run,
            "coverage": {
                "first": iso_json(coverage.first_ms),
                "last": iso_json(coverage.last_ms),
                "bar_count": coverage.bar_count,
            },
        }));
    }
    // A dry run's counts and coverage are what the import would do; nothing was written.
    let (dry_run, written, stored) = if response.dry_run {
        ("dry run: ", "would be written", "would store")
    } else {
        ("", "written", "stored")
    };
    let mut text = format!(
        "{dry_run}{file_name} → {} {}: {} rows read, {} bars {written} ({} replaced), {} skipped\n  timestamps: column {:?}, format {}\n  {stored}: {} bars from {} to {}\n",
        response.symbol,
        response.timeframe,
        response.rows_read,
        response.bars_written,
        response.bars_replaced,
        response.rows_skipped,
        response.timestamp_column,
        response.timestamp_format,
        coverage.bar_count,
        iso_or_dash(coverage.first_ms),
        iso_or_dash(coverage.last_ms),
    );
    for issue in &response.issues {
        text.push_str(&format!(
            "  {} line {}: {}{}\n",
            short_name(issue.severity().as_str_name(), "ISSUE_SEVERITY_"),
            issue.row.map_or("-".to_owned(), |r| r.to_string()),
            issue.message,
            if issue.repair.is_empty() {
                String::new()
            } else {
                format!(" ({})", issue.repair)
            }
        ));
    }
    if response.issues_total > response.issues.len() as i64 {
        text.push_str(&format!("  … {} issues in all\n", response.issues_total));
    }
    print(&text)
}

fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

// ---- load ----------------------------------------------------------------------------------

/// Draws one load job: a bar over its segments with bars fetched and the server's ETA.
pub struct LoadView {
    bar: ProgressBar,
    label: String,
    /// JSON mode: no text lines (stdout carries JSON Lines only).
    json: bool,
}

impl LoadView {
    /// A bar on stderr (drawn only on a terminal), hidden in JSON mode.
    pub fn new(json: bool, label: &str) -> Self {
        let bar = if json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        Self::with_bar(bar, label, json)
    }

    pub fn with_bar(bar: ProgressBar, label: &str, json: bool) -> Self {
        let style = ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} segments  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            label: label.to_owned(),
            json,
        }
    }

    fn say(&self, text: &str) {
        if !self.json {
            say(&self.bar, text);
        }
    }

    /// Updates the bar; returns the summary once the job ends.
    pub fn on_event(&self, event: &LoadEvent) {
        match &event.event {
            Some(load_event::Event::Started(s)) => {
                self.bar.set_length(s.segments.len() as u64);
                self.say(&format!(
                    "{}: load job {}{} ({} segment(s) to fetch, {} bars stored before)",
                    self.label,
                    event.job_id,
                    if s.joined {
                        " (joined a running load)"
                    } else {
                        ""
                    },
                    s.segments.len(),
                    s.bars_cached_before,
                ));
            }
            Some(load_event::Event::Progress(p)) => {
                self.bar.set_length(p.segments_total.max(0) as u64);
                self.bar.set_position(p.segments_done.max(0) as u64);
                let eta = p
                    .progress
                    .as_ref()
                    .and_then(|g| g.eta_ms)
                    .map(|ms| format!("  ETA {}", human_duration(ms)))
                    .unwrap_or_default();
                self.bar
                    .set_message(format!("{} bars{eta}  {}", p.bars_fetched, p.step));
                for warning in &p.warnings {
                    self.say(&format!("warning {}: {}", warning.code, warning.message));
                }
            }
            Some(load_event::Event::Summary(_)) => self.bar.finish_and_clear(),
            None => {}
        }
    }

    pub fn abandon(&self) {
        self.bar.abandon();
    }

    /// Names the dataset once it is known.
    pub fn set_label(&mut self, label: &str) {
        self.bar.set_prefix(label.to_owned());
        label.clone_into(&mut self.label);
    }
}

/// The summary of a finished load, as text.
pub fn summary_text(
    symbol: &str,
    timeframe: &str,
    job_id: &str,
    s: &ktrdr_proto::gateway::v1::LoadSummary,
) -> String {
    let mut text = format!(
        "{symbol} {timeframe}: {} — {} bars fetched, {} written, {} segment(s) fetched, {} failed, {} IB request(s) in {}\n  stored: {} bars from {} to {}  (job {job_id})\n",
        job_state(s.state()),
        s.bars_fetched,
        s.bars_written,
        s.segments_fetched,
        s.segments_failed,
        s.ib_requests,
        human_duration(s.elapsed_ms),
        s.bar_count,
        iso_or_dash(s.first_ms),
        iso_or_dash(s.last_ms),
    );
    if !s.error.is_empty() {
        text.push_str(&format!("  error: {}\n", s.error));
    }
    for warning in &s.warnings {
        text.push_str(&format!(
            "  warning {}: {}\n",
            warning.code, warning.message
        ));
    }
    text
}

async fn load(ctx: &Context, args: LoadArgs) -> Result<(), CliError> {
    let (symbol, timeframe) = match (args.symbols.as_slice(), args.timeframes.as_slice()) {
        ([symbol], [timeframe]) => (symbol.clone(), timeframe.clone()),
        _ => return load_batch(ctx, args).await,
    };
    let request = LoadDataRequest {
        symbol: symbol.clone(),
        timeframe: timeframe.clone(),
        mode: args.mode.to_proto() as i32,
        range: args.range.to_proto()?,
        fill_gaps: args.fill_gaps,
        use_rth: args.rth,
        what_to_show: args.what_to_show.map_or(0, |w| w.to_proto() as i32),
        ..Default::default()
    };
    let mut ctrl_c = CtrlC::listen()?;
    let mut gateway = ctx.gateway();
    let call = gateway.load_data(request);
    let stream = tokio::select! {
        response = call => response.map_err(|s| ctx.error(s))?.into_inner(),
        _ = ctrl_c.pressed() => {
            return Err(CliError::Interrupted("interrupted before the load started".to_owned()));
        }
    };
    let events = stream.map(|m| m.map(|m| m.event)).boxed();
    let dataset = Some((symbol.clone(), timeframe.clone()));
    follow_load(ctx, events, dataset, ctrl_c, OnCtrlC::CancelTheJob).await
}

/// `data watch JOB`: the job's events so far and to come, as `data load` shows them.
async fn watch(ctx: &Context, job_id: &str) -> Result<(), CliError> {
    let mut ctrl_c = CtrlC::listen()?;
    let mut gateway = ctx.gateway();
    let call = gateway.watch_load(WatchLoadRequest {
        job_id: job_id.to_owned(),
    });
    let stream = tokio::select! {
        response = call => response.map_err(|s| ctx.error(s))?.into_inner(),
        _ = ctrl_c.pressed() => return Err(stopped_watching(job_id)),
    };
    let events = stream.map(|m| m.map(|m| m.event)).boxed();
    // The job's first event, LoadStarted, names its dataset.
    follow_load(ctx, events, None, ctrl_c, OnCtrlC::StopWatching).await
}

fn stopped_watching(job_id: &str) -> CliError {
    crate::stopped_watching("load job", job_id, "ktrdr data cancel")
}

/// Shows a load job's events (a progress bar, or JSON lines) up to its summary, then the
/// summary; fails (exit 1) unless the job COMPLETED. `dataset` (symbol, timeframe) labels the
/// output; `None` takes it from the job's `LoadStarted`.
async fn follow_load(
    ctx: &Context,
    mut stream: BoxStream<'static, Result<Option<LoadEvent>, tonic::Status>>,
    mut dataset: Option<(String, String)>,
    mut ctrl_c: CtrlC,
    on_ctrl_c: OnCtrlC,
) -> Result<(), CliError> {
    let label_of = |d: &Option<(String, String)>| {
        d.as_ref()
            .map_or_else(|| "the load".to_owned(), |(s, t)| format!("{s} {t}"))
    };
    let mut label = label_of(&dataset);
    let mut view = LoadView::new(ctx.json, &label);
    let mut job_id = String::new();
    loop {
        let message = tokio::select! {
            message = stream.next() => message.transpose().map_err(|s| ctx.error(s))?,
            _ = ctrl_c.pressed() => {
                view.abandon();
                return Err(match on_ctrl_c {
                    OnCtrlC::CancelTheJob => cancel_load(ctx, &job_id).await,
                    OnCtrlC::StopWatching => stopped_watching(&job_id),
                });
            }
        };
        let Some(event) = message.flatten() else {
            return Err(CliError::Failed(format!(
                "the load stream of {label} ended without a summary"
            )));
        };
        if let (None, Some(load_event::Event::Started(s))) = (&dataset, &event.event) {
            dataset = Some((s.symbol.clone(), s.timeframe.clone()));
            label = label_of(&dataset);
            view.set_label(&label);
        }
        if !event.job_id.is_empty() {
            job_id.clone_from(&event.job_id);
        }
        if ctx.json {
            print_json_line(&to_json::load_event(&event))?;
        }
        view.on_event(&event);
        if let Some(load_event::Event::Summary(summary)) = &event.event {
            if !ctx.json {
                let (symbol, timeframe) = dataset.clone().unwrap_or_default();
                print(&summary_text(&symbol, &timeframe, &job_id, summary))?;
            }
            return match summary.state() {
                ktrdr_proto::common::v1::JobState::Completed => Ok(()),
                state => Err(CliError::Failed(format!(
                    "load job {job_id} of {label} ended {}{}",
                    job_state(state),
                    if summary.error.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", summary.error)
                    }
                ))),
            };
        }
    }
}

/// `data load` of several symbols or timeframes: one batch, a bar per dataset and one overall,
/// then a table of every dataset's outcome. Fails (exit 1) unless every dataset COMPLETED.
async fn load_batch(ctx: &Context, args: LoadArgs) -> Result<(), CliError> {
    let request = LoadBatchRequest {
        symbols: args.symbols.clone(),
        timeframes: args.timeframes.clone(),
        mode: args.mode.to_proto() as i32,
        range: args.range.to_proto()?,
        fill_gaps: args.fill_gaps,
        use_rth: args.rth,
        what_to_show: args.what_to_show.map_or(0, |w| w.to_proto() as i32),
    };
    let bars = if ctx.json {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let overall = bars.add(ProgressBar::new(0));
    overall.set_style(
        ProgressStyle::with_template("{spinner} batch [{bar:30}] {pos}/{len} datasets  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut views: BTreeMap<(String, String), LoadView> = BTreeMap::new();
    let mut batch_id = String::new();
    let mut ctrl_c = CtrlC::listen()?;

    let mut gateway = ctx.gateway();
    let call = gateway.load_batch(request);
    let mut stream = tokio::select! {
        response = call => response.map_err(|s| ctx.error(s))?.into_inner(),
        _ = ctrl_c.pressed() => {
            overall.abandon();
            return Err(CliError::Interrupted("interrupted before the batch started".to_owned()));
        }
    };
    loop {
        let message = tokio::select! {
            message = stream.message() => message.map_err(|s| ctx.error(s))?,
            _ = ctrl_c.pressed() => {
                overall.abandon();
                return Err(cancel(ctx, "batch", &batch_id).await);
            }
        };
        let Some(response) = message else {
            return Err(CliError::Failed(format!(
                "the stream of batch {batch_id} ended without a summary"
            )));
        };
        batch_id.clone_from(&response.batch_id);
        if ctx.json {
            print_json_line(&to_json::batch_event(&response))?;
        }
        match response.event {
            Some(load_batch_response::Event::Started(started)) => {
                overall.set_length(started.datasets.len() as u64);
                if !ctx.json {
                    let names: Vec<String> = started
                        .datasets
                        .iter()
                        .map(|d| format!("{} {}", d.symbol, d.timeframe))
                        .collect();
                    say_multi(
                        &bars,
                        &format!(
                            "batch {batch_id}: {} dataset(s): {}",
                            names.len(),
                            names.join(", ")
                        ),
                    );
                }
            }
            Some(load_batch_response::Event::Child(child)) => {
                let Some(event) = child.event else { continue };
                let key = (child.symbol.clone(), child.timeframe.clone());
                let view = views.entry(key).or_insert_with(|| {
                    let label = format!("{} {}", child.symbol, child.timeframe);
                    let bar = bars.insert_before(&overall, ProgressBar::new(0));
                    LoadView::with_bar(bar, &label, ctx.json)
                });
                view.on_event(&event);
            }
            Some(load_batch_response::Event::Progress(progress)) => {
                let done = progress.progress.as_ref().map_or(0, |p| p.items_done);
                overall.set_position(done.max(0) as u64);
                if let Some(d) = progress.dataset
                    && !ctx.json
                {
                    overall.set_message(format!("{} {}", d.symbol, d.timeframe));
                    say_multi(
                        &bars,
                        &format!(
                            "{} {}: {}{}",
                            d.symbol,
                            d.timeframe,
                            job_state(d.state()),
                            if d.error.is_empty() {
                                String::new()
                            } else {
                                format!(" — {}", d.error)
                            }
                        ),
                    );
                }
            }
            Some(load_batch_response::Event::Summary(summary)) => {
                overall.finish_and_clear();
                if !ctx.json {
                    print(&batch_summary_text(&batch_id, &summary))?;
                }
                return match summary.state() {
                    JobState::Completed => Ok(()),
                    state => Err(CliError::Failed(format!(
                        "batch {batch_id} ended {}: {} of {} dataset(s) completed, {} failed, {} cancelled",
                        job_state(state),
                        summary.completed,
                        summary.datasets.len(),
                        summary.failed,
                        summary.cancelled
                    ))),
                };
            }
            None => {}
        }
    }
}

/// A batch's outcome as a table, one row per dataset, and a closing line.
pub fn batch_summary_text(batch_id: &str, summary: &LoadBatchSummary) -> String {
    let mut table = Table::new([
        "symbol",
        "timeframe",
        "state",
        "fetched",
        "written",
        "stored",
        "first",
        "last",
        "error",
    ]);
    for d in &summary.datasets {
        let s = d.summary.clone().unwrap_or_default();
        let (fetched, written, stored, first, last) = if d.summary.is_some() {
            (
                s.bars_fetched.to_string(),
                s.bars_written.to_string(),
                s.bar_count.to_string(),
                iso_or_dash(s.first_ms),
                iso_or_dash(s.last_ms),
            )
        } else {
            let dash = || "-".to_owned();
            (dash(), dash(), dash(), dash(), dash())
        };
        table.row([
            d.symbol.clone(),
            d.timeframe.clone(),
            job_state(d.state()),
            fetched,
            written,
            stored,
            first,
            last,
            d.error.clone(),
        ]);
    }
    format!(
        "{}batch {batch_id}: {} — {} completed, {} failed, {} cancelled in {}\n",
        table.render(),
        job_state(summary.state()),
        summary.completed,
        summary.failed,
        summary.cancelled,
        human_duration(summary.elapsed_ms),
    )
}

/// Cancels load job `job_id` after Ctrl+C; the error to exit with (130, or what went wrong).
/// `data cancel JOB`: CancelLoad of a job or a batch; its state after.
async fn cancel_by_request(ctx: &Context, job_id: &str) -> Result<(), CliError> {
    let response = ctx
        .gateway()
        .cancel_load(ctx.request(CancelLoadRequest {
            job_id: job_id.to_owned(),
            reason: "cancelled with the ktrdr CLI".to_owned(),
        }))
        .await
        .map_err(|s| ctx.error(s))?
        .into_inner();
    let state = job_state(response.state());
    if ctx.json {
        return print_json(&json!({
            "job_id": job_id,
            "state": state,
            "job": response.job.as_ref().map(to_json::load_job),
        }));
    }
    print(&format!("load {job_id}: {state}\n"))
}

/// `data jobs`: the gateway's load jobs, every page.
async fn jobs(ctx: &Context, args: JobsArgs) -> Result<(), CliError> {
    let jobs = ctx
        .every_page(|page_token| {
            let request = ctx.request(ListLoadsRequest {
                states: args
                    .state
                    .map(|s| s.to_proto() as i32)
                    .into_iter()
                    .collect(),
                symbol: args.dataset.symbol.clone().unwrap_or_default(),
                timeframe: args.dataset.timeframe.clone().unwrap_or_default(),
                page_size: crate::LIST_PAGE_SIZE,
                page_token,
            });
            let mut client = ctx.gateway();
            async move {
                let page = client.list_loads(request).await?.into_inner();
                Ok((page.jobs, page.next_page_token))
            }
        })
        .await?;
    if ctx.json {
        let rows: Vec<_> = jobs.iter().map(to_json::load_job).collect();
        return print_json(&json!({ "jobs": rows }));
    }
    if jobs.is_empty() {
        return print("no load jobs on this gateway\n");
    }
    let mut table = Table::new([
        "job", "symbol", "tf", "mode", "state", "progress", "created", "error",
    ]);
    for j in &jobs {
        table.row([
            j.job_id.clone(),
            j.symbol.clone(),
            j.timeframe.clone(),
            short_name(j.mode().as_str_name(), "LOAD_MODE_"),
            job_state(j.state()),
            j.progress.clone().unwrap_or_default().step,
            iso(j.created_at_ms),
            j.error.clone(),
        ]);
    }
    print(&table.render())
}

pub async fn cancel_load(ctx: &Context, job_id: &str) -> CliError {
    cancel(ctx, "load job", job_id).await
}

/// Cancels `what` (`load job`, `batch`) `job_id` with CancelLoad; the error to exit with.
async fn cancel(ctx: &Context, what: &str, job_id: &str) -> CliError {
    if job_id.is_empty() {
        return CliError::Interrupted(format!("interrupted before the {what} started"));
    }
    let mut request = tonic::Request::new(CancelLoadRequest {
        job_id: job_id.to_owned(),
        reason: "Ctrl+C in the ktrdr CLI".to_owned(),
    });
    request.set_timeout(Duration::from_secs(10));
    match ctx.gateway().cancel_load(request).await {
        Ok(response) => {
            let state = job_state(response.into_inner().state());
            if ctx.json {
                // Best effort: stdout may be closed already when the user interrupts a pipe.
                let _ = print_json_line(&json!({
                    "event": "interrupted",
                    "job_id": job_id,
                    "state": state,
                }));
            }
            CliError::Interrupted(format!("interrupted: {what} {job_id} is {state}"))
        }
        Err(status) => CliError::Interrupted(format!(
            "interrupted, but cancelling {what} {job_id} failed: {} — run `ktrdr data cancel {job_id}`",
            ctx.error(status)
        )),
    }
}
