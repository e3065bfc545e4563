//! `ktrdr-ib-sim`: reads its configuration, serves until SIGTERM/SIGINT. The logic is in the library.

use clap::Parser;
use ktrdr_ib_sim::config::IbSimConfig;

/// The ktrdr IB simulator: speaks the TWS API wire protocol with deterministic bars and IB's rules, so ktrdr runs without an IB account.
#[derive(Parser)]
#[command(name = "ktrdr-ib-sim", version, after_help = IbSimConfig::help())]
struct Args {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Args::parse();
    let config = ktrdr_common::config::load_or_exit(ktrdr_ib_sim::BINARY, IbSimConfig::from_env);
    ktrdr_common::logging::init_for(&config.server);
    ktrdr_ib_sim::server(config).serve().await?;
    Ok(())
}
