//! `ktrdr-gateway`: reads its configuration, serves until SIGTERM/SIGINT. The logic is in the library.

use clap::Parser;
use ktrdr_gateway::config::GatewayConfig;

/// The ktrdr gateway: the public gRPC endpoint that routes data, IB and training work to the host services or runs it in-process.
#[derive(Parser)]
#[command(name = "ktrdr-gateway", version, after_help = GatewayConfig::help())]
struct Args {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Args::parse();
    let config = ktrdr_common::config::load_or_exit(ktrdr_gateway::BINARY, GatewayConfig::from_env);
    // Dropped at the end of main: flushes the trace spans still batched.
    let _telemetry = ktrdr_common::logging::init_for(ktrdr_gateway::BINARY, &config.server);
    let gateway = ktrdr_gateway::gateway(config)?;
    ktrdr_gateway::serve(gateway).await?;
    Ok(())
}
