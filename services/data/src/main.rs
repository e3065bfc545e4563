//! `ktrdr-data`: reads its configuration, serves until SIGTERM/SIGINT. The logic is in the library.

use clap::Parser;
use ktrdr_data::config::DataConfig;

/// The ktrdr market-data store: Parquet datasets per (symbol, timeframe), served over gRPC.
#[derive(Parser)]
#[command(name = "ktrdr-data", version, after_help = DataConfig::help())]
struct Args {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Args::parse();
    let config = ktrdr_common::config::load_or_exit(ktrdr_data::BINARY, DataConfig::from_env);
    // Dropped at the end of main: flushes the trace spans still batched.
    let _telemetry = ktrdr_common::logging::init_for(ktrdr_data::BINARY, &config.server);
    ktrdr_data::server(config).serve().await?;
    Ok(())
}
