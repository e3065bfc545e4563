//! `ktrdr health`: is a service up and SERVING (grpc.health.v1)? Works against any ktrdr
//! binary, not only the gateway; keeps its own exit codes (see [`ExitCode`]).

use std::time::{Duration, Instant};

use clap::Args;
use ktrdr_common::client::{ChannelOptions, endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::error::ExitCode;
use crate::output::{note, print, print_json_line};

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// A service name to check instead of the whole server, e.g. ktrdr.data.v1.DataService.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Keep trying for up to this many seconds until it is SERVING.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub wait: u64,
}

enum HealthOutcome {
    Status(ServingStatus),
    Unreachable(String),
    Failed(tonic::Status),
}

pub async fn run(url: &str, json: bool, args: &HealthArgs) -> ExitCode {
    let channel = match endpoint(url, &ChannelOptions::default()) {
        Ok(endpoint) => endpoint.connect_lazy(),
        Err(err) => {
            note(&format!(
                "ktrdr: {err} (pass --url or set KTRDR_GATEWAY_URL)"
            ));
            return ExitCode::Usage;
        }
    };
    let service = args.service.as_str();
    let mut client = HealthClient::new(channel);
    let deadline = Instant::now() + Duration::from_secs(args.wait);
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
        HealthOutcome::Status(ServingStatus::Serving) => {
            ("SERVING", String::new(), ExitCode::Success)
        }
        HealthOutcome::Status(other) => (other.as_str_name(), String::new(), ExitCode::Server),
        HealthOutcome::Unreachable(why) => ("UNREACHABLE", why.clone(), ExitCode::Connection),
        HealthOutcome::Failed(status) => (
            "ERROR",
            format!("{:?}: {}", status.code(), status.message()),
            ExitCode::Failed,
        ),
    };
    let printed = if json {
        let value = serde_json::json!({
            "url": url,
            "service": service,
            "status": status,
            "detail": detail,
        });
        print_json_line(&value)
    } else if detail.is_empty() {
        print(&format!(
            "{status}  {url}{}\n",
            if service.is_empty() {
                String::new()
            } else {
                format!(" ({service})")
            }
        ))
    } else {
        let printed = print(&format!("{status}  {url}  {detail}\n"));
        if code == ExitCode::Connection {
            note(
                "hint: is the service running? `make run` starts the local stack; `scripts/stack.sh status` shows it",
            );
        }
        printed
    };
    match printed {
        // A closed pipe leaves the verdict in the exit code; any other write error is a failure.
        Err(err) if !err.is_closed_pipe() => {
            note(&format!("ktrdr: {err}"));
            ExitCode::Failed
        }
        _ => code,
    }
}
