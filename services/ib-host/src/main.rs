//! `ktrdr-ib-host`: reads its configuration, serves until SIGTERM/SIGINT. The logic is in the library.

use clap::Parser;
use ktrdr_ib_host::config::IbHostConfig;

/// The ktrdr IB host: owns the one connection to Interactive Brokers (TWS / IB Gateway) and serves historical bars, head timestamps and contract lookups over gRPC, paced by IB's rules.
#[derive(Parser)]
#[command(name = "ktrdr-ib-host", version, after_help = IbHostConfig::help())]
struct Args {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Args::parse();
    let config = ktrdr_common::config::load_or_exit(ktrdr_ib_host::BINARY, IbHostConfig::from_env);
    // Dropped at the end of main: flushes the trace spans still batched.
    let _telemetry = ktrdr_common::logging::init_for(ktrdr_ib_host::BINARY, &config.server);
    ktrdr_ib_host::run(config).await?;
    Ok(())
}
