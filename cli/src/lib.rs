//! `ktrdr`: the command-line client of the ktrdr gateway.
//!
//! One module per command group; [`run`] dispatches. Every command that talks to the gateway
//! shares one lazily connected channel ([`Context`]) for all of its calls.

pub mod backtest;
pub mod config;
pub mod data;
pub mod error;
pub mod health;
pub mod json;
pub mod models;
pub mod output;
pub mod report;
pub mod strategies;
pub mod sweep;
pub mod time;
pub mod train;

use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use ktrdr_common::client::{ChannelOptions, endpoint};
use ktrdr_proto::common::v1::TimeRange;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use tonic::transport::Channel;

pub use error::{CliError, ExitCode, Flags};

/// ktrdr — algorithmic-trading research: market data from Interactive Brokers, neuro-fuzzy
/// strategy training, all through the ktrdr gateway.
#[derive(Debug, Parser)]
#[command(
    name = "ktrdr",
    version,
    after_help = "Timestamps: 2024-01-02, 2024-01-02T14:30:00Z or epoch milliseconds; printed as ISO 8601 UTC.\n\
                  --json: one JSON document on stdout (streams: one JSON object per line); errors as one JSON object on stderr.\n\
                  Exit codes: 0 ok, 1 failed (invalid strategy, job, session or backtest FAILED/CANCELLED; health: check error), \
                  2 usage, 3 cannot connect, 4 server error (health: not serving), 130 interrupted (Ctrl+C)."
)]
pub struct Cli {
    /// The gateway (or, for `health`, any ktrdr service) to talk to; $KTRDR_GATEWAY_URL, when
    /// set, replaces the default.
    #[arg(long, global = true, default_value = DEFAULT_URL)]
    pub url: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Deadline of each one-shot call, in seconds (streams have none).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 120)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: Command,
}

/// `--url` when neither it nor `KTRDR_GATEWAY_URL` is given.
pub const DEFAULT_URL: &str = "http://localhost:50051";

/// The variable that overrides [`DEFAULT_URL`].
pub const GATEWAY_URL_VAR: &str = "KTRDR_GATEWAY_URL";

impl Cli {
    /// Parses the process's command line; exits with clap's message and code 2 on a usage
    /// error, as `Cli::parse()` does.
    pub fn from_env() -> Self {
        let gateway_url = std::env::var(GATEWAY_URL_VAR).ok();
        Self::try_parse_with(std::env::args_os(), gateway_url).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` with `gateway_url` (the value of `KTRDR_GATEWAY_URL`, if set) as `--url`'s
    /// default. A default, not a value given: clap's usage lines then keep `--url` optional,
    /// where an `env` attribute would print it as if typed (and so as required).
    pub fn try_parse_with<I, T>(args: I, gateway_url: Option<String>) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut command = Self::command();
        if let Some(url) = gateway_url.filter(|url| !url.trim().is_empty()) {
            // Once per process: clap keeps defaults as `'static` text.
            let url: &'static str = url.leak();
            command = command.mut_arg("url", |arg| arg.default_value(url));
        }
        let matches = command.try_get_matches_from_mut(args)?;
        Self::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that a service answers and is SERVING (grpc.health.v1).
    Health(health::HealthArgs),
    /// Show how the gateway reaches each capability (GatewayService.GetConfiguration).
    Config,
    /// Market data: load from IB, import CSV, show, coverage, gaps, list.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Load the data a strategy needs, then train it, with live progress.
    Train(train::TrainArgs),
    /// Training sessions: list, show, watch, cancel.
    #[command(subcommand)]
    Trainings(train::TrainingsCommand),
    /// Trained models: list, show, evaluate, predict.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Backtest a model (or walk-forward a strategy) on stored bars: metrics, trades, equity,
    /// an HTML report; list, show and cancel backtests.
    Backtest(Box<backtest::BacktestArgs>),
    /// Strategy files: validate locally.
    #[command(subcommand)]
    Strategies(strategies::StrategiesCommand),
    /// Print a shell completion script: `ktrdr completions bash > /etc/bash_completion.d/ktrdr`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The names of this command's flags for the request fields it fills (see [`error`]).
    pub fn flags(&self) -> Flags {
        use data::DataCommand as D;
        use models::ModelsCommand as M;
        match self {
            Command::Data(D::Load(_)) => error::LOAD_FLAGS,
            Command::Data(D::Import(_)) => error::IMPORT_FLAGS,
            Command::Data(D::Show(_) | D::Range(_) | D::Gaps(_) | D::List(_)) => {
                error::DATASET_FLAGS
            }
            Command::Train(_) => error::TRAIN_FLAGS,
            Command::Trainings(_)
            | Command::Models(M::List { .. } | M::Show { .. })
            | Command::Data(D::Jobs(_) | D::Watch { .. } | D::Cancel { .. }) => {
                error::LISTING_FLAGS
            }
            Command::Models(M::Evaluate { .. } | M::Predict(_)) => error::MODEL_DATA_FLAGS,
            Command::Backtest(_) => error::BACKTEST_FLAGS,
            Command::Health(_)
            | Command::Config
            | Command::Strategies(_)
            | Command::Completions { .. } => error::NO_FLAGS,
        }
    }
}

/// Job states to filter the gateway's job lists on (`data jobs`, `backtest jobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JobStateFilter {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStateFilter {
    pub fn to_proto(self) -> ktrdr_proto::common::v1::JobState {
        use ktrdr_proto::common::v1::JobState;
        match self {
            Self::Queued => JobState::Queued,
            Self::Running => JobState::Running,
            Self::Completed => JobState::Completed,
            Self::Failed => JobState::Failed,
            Self::Cancelled => JobState::Cancelled,
        }
    }
}

/// What Ctrl+C does while a command follows a job's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCtrlC {
    /// Cancel the job: the command started it.
    CancelTheJob,
    /// Stop following; the job goes on (`… watch`).
    StopWatching,
}

impl OnCtrlC {
    /// For the line that says the job started.
    pub fn hint(self) -> &'static str {
        match self {
            Self::CancelTheJob => "Ctrl+C cancels it",
            Self::StopWatching => "Ctrl+C stops watching",
        }
    }
}

/// The exit after Ctrl+C while watching `what` (`load job`) `id`: the job goes on, and `cancel`
/// is the command that would cancel it.
pub fn stopped_watching(what: &str, id: &str, cancel: &str) -> CliError {
    CliError::Interrupted(format!(
        "stopped watching; {what} {id} goes on (`{cancel} {id}` cancels it)"
    ))
}

/// A time range on the command line (`--start`, `--end`), half-open like the API's.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// First bar open time to include: 2024-01-02, 2024-01-02T14:30:00Z or epoch ms.
    #[arg(long, value_parser = time::parse_timestamp)]
    pub start: Option<i64>,
    /// End of the range, exclusive (same forms as --start).
    #[arg(long, value_parser = time::parse_timestamp)]
    pub end: Option<i64>,
}

impl RangeArgs {
    /// The range for a request; unset sides are 0 (open-ended).
    pub fn to_proto(&self) -> Result<Option<TimeRange>, CliError> {
        if let (Some(start), Some(end)) = (self.start, self.end)
            && end <= start
        {
            return Err(CliError::Usage(format!(
                "--end {} must be after --start {}",
                time::iso(end),
                time::iso(start)
            )));
        }
        if self.start.is_none() && self.end.is_none() {
            return Ok(None);
        }
        Ok(Some(TimeRange {
            start_ms: self.start.unwrap_or(0),
            end_ms: self.end.unwrap_or(0),
        }))
    }
}

/// A timeframe argument, checked against the ones the API accepts.
pub fn parse_timeframe(raw: &str) -> Result<String, String> {
    ktrdr_market::Timeframe::parse(raw)
        .map(|tf| tf.as_str().to_owned())
        .ok_or_else(|| {
            format!(
                "{raw:?} is not a timeframe; use one of {}",
                ktrdr_market::Timeframe::ACCEPTED
            )
        })
}

/// A symbol argument in ktrdr's normalised form (`eur/usd` → `EURUSD`).
pub fn parse_symbol(raw: &str) -> Result<String, String> {
    ktrdr_market::normalize_symbol(raw)
}

/// What every command that talks to the gateway shares: the URL, the output mode and one
/// channel, connected on first use and reused by every call of the invocation.
pub struct Context {
    pub url: String,
    pub json: bool,
    pub timeout: Duration,
    channel: Channel,
    auth: Bearer,
    /// The command's flags, to name in the server errors it prints.
    flags: Flags,
}

/// The gateway's clients carry `authorization: Bearer $KTRDR_AUTH_TOKEN` when it is set.
pub type Authed = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

/// Adds the bearer token (if any) to every call.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    fn from_env() -> Result<Self, CliError> {
        match std::env::var("KTRDR_AUTH_TOKEN") {
            Ok(token) if !token.is_empty() => format!("Bearer {token}")
                .parse()
                .map(|v| Self(Some(v)))
                .map_err(|_| {
                    CliError::Usage(
                        "KTRDR_AUTH_TOKEN must be printable ASCII (it is sent as a header)".into(),
                    )
                }),
            _ => Ok(Self(None)),
        }
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Context {
    pub fn new(url: &str, json: bool, timeout: Duration, flags: Flags) -> Result<Self, CliError> {
        let channel = endpoint(url, &ChannelOptions::default())
            .map_err(|e| CliError::Usage(format!("{e} (pass --url or set KTRDR_GATEWAY_URL)")))?
            .connect_lazy();
        Ok(Self {
            url: url.to_owned(),
            json,
            timeout,
            channel,
            auth: Bearer::from_env()?,
            flags,
        })
    }

    pub fn gateway(&self) -> GatewayServiceClient<Authed> {
        GatewayServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn data(&self) -> DataServiceClient<Authed> {
        DataServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn training(&self) -> TrainingServiceClient<Authed> {
        TrainingServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A one-shot request with the invocation's deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// The error for a failed call: cannot connect, or what the server answered.
    pub fn error(&self, status: tonic::Status) -> CliError {
        CliError::from_status(status, &self.url, self.flags)
    }

    /// Every item of a List call: `page(token)` asks for the page at `token` (empty: the first),
    /// of [`LIST_PAGE_SIZE`] items unless the RPC states another limit, and answers its items
    /// and the next token (empty after the last page).
    pub async fn every_page<T, F, Fut>(&self, mut page: F) -> Result<Vec<T>, CliError>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
    {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let (items, next) = page(token).await.map_err(|s| self.error(s))?;
            all.extend(items);
            if next.is_empty() {
                return Ok(all);
            }
            token = next;
        }
    }
}

/// The page the CLI asks of the gateway's and training service's List RPCs: the most they give.
pub const LIST_PAGE_SIZE: i32 = ktrdr_common::paging::MAX_SIZE as i32;

/// Ctrl+C, listened for from the moment this is created. `tokio::signal::ctrl_c()` installs its
/// handler only when first polled, so a Ctrl+C arriving before that would take the default action
/// and kill the process without cancelling the job it started.
pub struct CtrlC {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl CtrlC {
    pub fn listen() -> Result<Self, CliError> {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| CliError::Failed(format!("cannot listen for Ctrl+C: {e}")))?;
            Ok(Self { signal })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves when Ctrl+C is pressed.
    pub async fn pressed(&mut self) {
        #[cfg(unix)]
        self.signal.recv().await;
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs one parsed command line; prints errors on stderr and returns the exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let json = cli.json;
    match dispatch(cli).await {
        Ok(code) => code,
        // `ktrdr … | head`: the reader has what it wanted.
        Err(err) if err.is_closed_pipe() => ExitCode::Success,
        Err(err) => {
            if json {
                output::note(&err.to_json().to_string());
            } else {
                output::note(&format!("ktrdr: {err}"));
            }
            err.exit_code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    let timeout = Duration::from_secs(cli.timeout.max(1));
    match cli.command {
        Command::Health(args) => return Ok(health::run(&cli.url, cli.json, &args).await),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics when its writer fails.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ktrdr", &mut script);
            return output::print(&String::from_utf8_lossy(&script)).map(|()| ExitCode::Success);
        }
        Command::Strategies(command) => {
            return strategies::run(cli.json, command).map(|()| ExitCode::Success);
        }
        _ => {}
    }
    let ctx = Context::new(&cli.url, cli.json, timeout, cli.command.flags())?;
    match cli.command {
        Command::Config => config::run(&ctx).await?,
        Command::Data(command) => data::run(&ctx, command).await?,
        Command::Train(args) => train::train(&ctx, args).await?,
        Command::Trainings(command) => train::run(&ctx, command).await?,
        Command::Models(command) => models::run(&ctx, command).await?,
        Command::Backtest(args) => backtest::run(&ctx, *args).await?,
        Command::Health(_) | Command::Completions { .. } | Command::Strategies(_) => {}
    }
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_gateway_url_comes_from_the_flag_then_the_environment_then_the_default() {
        let parse = |args: &[&str], env: Option<&str>| {
            Cli::try_parse_with(
                std::iter::once("ktrdr").chain(args.iter().copied()),
                env.map(str::to_owned),
            )
            .unwrap()
            .url
        };
        assert_eq!(parse(&["config"], None), DEFAULT_URL);
        assert_eq!(parse(&["config"], Some("http://gw:1")), "http://gw:1");
        assert_eq!(parse(&["config"], Some("")), DEFAULT_URL);
        assert_eq!(
            parse(&["--url", "http://flag:2", "config"], Some("http://gw:1")),
            "http://flag:2"
        );
        assert_eq!(
            parse(&["config", "--url", "http://flag:2"], Some("http://gw:1")),
            "http://flag:2"
        );
    }

    #[test]
    fn usage_lines_show_url_as_optional_when_the_environment_sets_it() {
        let err = Cli::try_parse_with(
            ["ktrdr", "data", "show", "AAPL"],
            Some("http://gw:1".to_owned()),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.render().to_string();
        let usage = text
            .lines()
            .find(|l| l.starts_with("Usage:"))
            .unwrap_or_else(|| panic!("no usage line in {text}"));
        assert!(!usage.contains("--url"), "{usage}");
        assert!(usage.contains("--timeframe <TIMEFRAME>"), "{usage}");
    }

    #[test]
    fn a_range_must_end_after_it_starts() {
        let range = RangeArgs {
            start: Some(10),
            end: Some(10),
        };
        assert!(matches!(range.to_proto(), Err(CliError::Usage(_))));
        let open = RangeArgs {
            start: Some(10),
            end: None,
        };
        assert_eq!(
            open.to_proto().unwrap(),
            Some(TimeRange {
                start_ms: 10,
                end_ms: 0
            })
        );
    }
}
