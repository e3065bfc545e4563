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
    // Dropped at the end of main: flushes the trace spans still batched.
    let _telemetry = ktrdr_common::logging::init_for(ktrdr_ib_sim::BINARY, &config.server);
    let (sim, _) = ktrdr_ib_sim::start_tws(&config).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen for TWS API clients on {} (IB_SIM_ADDR): {e}",
            config.tws_addr
        )
    })?;
    ktrdr_ib_sim::server(&config, sim).serve().await?;
    Ok(())
}
