//! `ktrdr`: the command-line client of the ktrdr gateway (and of any ktrdr service's health).
//!
//! Exit codes: 0 success, 1 the server answered with an error, 2 usage error, 3 cannot connect,
//! 4 reachable but not serving.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use ktrdr_common::client::{ChannelOptions, endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const EXIT_SERVER_ERROR: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CONNECTION: u8 = 3;
const EXIT_NOT_SERVING: u8 = 4;

/// ktrdr — algorithmic-trading research: market data from Interactive Brokers, neuro-fuzzy
/// strategy training, all through the ktrdr gateway.
#[derive(Parser)]
#[command(
    name = "ktrdr",
    version,
    after_help = "Exit codes: 0 ok, 1 server error, 2 usage, 3 cannot connect, 4 not serving"
)]
struct Cli {
    /// The gateway (or any ktrdr service) to talk to.
    #[arg(
        long,
        global = true,
        env = "KTRDR_GATEWAY_URL",
        default_value = "http://localhost:50051"
    )]
    url: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that a service answers and is SERVING (grpc.health.v1).
    Health {
        /// A service name to check instead of the whole server, e.g. ktrdr.data.v1.DataService.
        #[arg(long, default_value = "")]
        service: String,
        /// Keep trying for up to this many seconds until it is SERVING.
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        wait: u64,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Health { ref service, wait } => {
            health(&cli, service, Duration::from_secs(wait)).await
        }
    }
}

enum HealthOutcome {
    Status(ServingStatus),
    Unreachable(String),
    Failed(tonic::Status),
}

async fn health(cli: &Cli, service: &str, wait: Duration) -> ExitCode {
    let channel = match endpoint(&cli.url, &ChannelOptions::default()) {
        Ok(endpoint) => endpoint.connect_lazy(),
        Err(err) => {
            eprintln!("ktrdr: {err} (pass --url or set KTRDR_GATEWAY_URL)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut client = HealthClient::new(channel);
    let deadline = Instant::now() + wait;
    let outcome = loop {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: service.to_owned(),
        });
        request.set_timeout(Duration::from_secs(5));
        let outcome = match client.check(request).await {
            Ok(response) => HealthOutcome::Status(response.into_inner().status()),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                HealthOutcome::Unreachable(status.message().to_owned())
            }
            Err(status) => HealthOutcome::Failed(status),
        };
        let done = matches!(
            outcome,
            HealthOutcome::Status(ServingStatus::Serving) | HealthOutcome::Failed(_)
        );
        if done || Instant::now() >= deadline {
            break outcome;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let (status, detail, code) = match &outcome {
        HealthOutcome::Status(ServingStatus::Serving) => ("SERVING", String::new(), 0),
        HealthOutcome::Status(other) => (other.as_str_name(), String::new(), EXIT_NOT_SERVING),
        HealthOutcome::Unreachable(why) => ("UNREACHABLE", why.clone(), EXIT_CONNECTION),
        HealthOutcome::Failed(status) => (
            "ERROR",
            format!("{:?}: {}", status.code(), status.message()),
            EXIT_SERVER_ERROR,
        ),
    };
    if cli.json {
        let value = serde_json::json!({
            "url": cli.url,
            "service": service,
            "status": status,
            "detail": detail,
        });
        println!("{value}");
    } else if detail.is_empty() {
        println!(
            "{status}  {}{}",
            cli.url,
            if service.is_empty() {
                String::new()
            } else {
                format!(" ({service})")
            }
        );
    } else {
        println!("{status}  {}  {detail}", cli.url);
        if code == EXIT_CONNECTION {
            eprintln!(
                "hint: is the service running? `make run` starts the local stack; `scripts/stack.sh status` shows it"
            );
        }
    }
    ExitCode::from(code)
}
