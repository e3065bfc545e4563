//! `ktrdr-training-host`: reads its configuration, serves until SIGTERM/SIGINT. The logic is in the library.

use clap::Parser;
use ktrdr_training_host::config::TrainingHostConfig;

/// The ktrdr training host: trains neuro-fuzzy strategy models as sessions with streamed progress, cancel, persistence and a model registry.
#[derive(Parser)]
#[command(name = "ktrdr-training-host", version, after_help = TrainingHostConfig::help())]
struct Args {}

/// mimalloc reuses the memory of large, short-lived feature matrices instead of refaulting it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Args::parse();
    let config = ktrdr_common::config::load_or_exit(
        ktrdr_training_host::BINARY,
        TrainingHostConfig::from_env,
    );
    // Dropped at the end of main: flushes the trace spans still batched.
    let _telemetry = ktrdr_common::logging::init_for(ktrdr_training_host::BINARY, &config.server);
    ktrdr_training_host::server(config).serve().await?;
    Ok(())
}
