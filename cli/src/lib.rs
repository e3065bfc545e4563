//! `ktrdr`: the command-line client of the ktrdr gateway.
//!
//! One module per command group; [`run`] dispatches. Every command that talks to the gateway
//! shares one lazily connected channel ([`Context`]) for all of its calls.

pub mod config;
pub mod data;
pub mod error;
pub mod health;
pub mod json;
pub mod models;
pub mod output;
pub mod strategies;
pub mod time;
pub mod train;

use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};
use ktrdr_common::client::{ChannelOptions, endpoint};
use ktrdr_proto::common::v1::TimeRange;
use ktrdr_proto::data::v1::data_service_client::DataServiceClient;
use ktrdr_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ktrdr_proto::training::v1::training_service_client::TrainingServiceClient;
use tonic::transport::Channel;

pub use error::{CliError, ExitCode};

/// ktrdr — algorithmic-trading research: market data from Interactive Brokers, neuro-fuzzy
/// strategy training, all through the ktrdr gateway.
#[derive(Debug, Parser)]
#[command(
    name = "ktrdr",
    version,
    after_help = "Timestamps: 2024-01-02, 2024-01-02T14:30:00Z or epoch milliseconds; printed as ISO 8601 UTC.\n\
                  --json: one JSON document on stdout (streams: one JSON object per line); errors as one JSON object on stderr.\n\
                  Exit codes: 0 ok, 1 failed (invalid strategy, job or session FAILED/CANCELLED; health: check error), \
                  2 usage, 3 cannot connect, 4 server error (health: not serving), 130 interrupted (Ctrl+C)."
)]
pub struct Cli {
    /// The gateway (or, for `health`, any ktrdr service) to talk to.
    #[arg(
        long,
        global = true,
        env = "KTRDR_GATEWAY_URL",
        default_value = "http://localhost:50051"
    )]
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
    /// Strategy files: validate locally.
    #[command(subcommand)]
    Strategies(strategies::StrategiesCommand),
    /// Print a shell completion script: `ktrdr completions bash > /etc/bash_completion.d/ktrdr`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
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
    pub fn new(url: &str, json: bool, timeout: Duration) -> Result<Self, CliError> {
        let channel = endpoint(url, &ChannelOptions::default())
            .map_err(|e| CliError::Usage(format!("{e} (pass --url or set KTRDR_GATEWAY_URL)")))?
            .connect_lazy();
        Ok(Self {
            url: url.to_owned(),
            json,
            timeout,
            channel,
            auth: Bearer::from_env()?,
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
        CliError::from_status(status, &self.url)
    }
}

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
        Err(err) => {
            if json {
                eprintln!("{}", err.to_json());
            } else {
                eprintln!("ktrdr: {err}");
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
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut Cli::command(), "ktrdr", &mut out);
            return Ok(ExitCode::Success);
        }
        Command::Strategies(command) => {
            return strategies::run(cli.json, command).map(|()| ExitCode::Success);
        }
        _ => {}
    }
    let ctx = Context::new(&cli.url, cli.json, timeout)?;
    match cli.command {
        Command::Config => config::run(&ctx).await?,
        Command::Data(command) => data::run(&ctx, command).await?,
        Command::Train(args) => train::train(&ctx, args).await?,
        Command::Trainings(command) => train::run(&ctx, command).await?,
        Command::Models(command) => models::run(&ctx, command).await?,
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
