//! `ktrdr-training-host`: training sessions (start, watch, cancel, persist), the model
//! registry, evaluation and prediction. The session logic ([`manager::SessionManager`]) is a
//! library so the gateway can run it in-process; [`server`] wraps it in the gRPC service.

pub mod backtest;
pub mod config;
pub mod convert;
pub mod data;
pub mod device;
pub mod error;
pub mod grpc;
pub mod manager;
pub mod metrics;
pub mod persist;
pub mod placement;
pub mod record;
pub mod registry;
pub mod runner;
pub mod session;
pub mod shortfall;
pub mod spec;

use ktrdr_common::client::{ChannelOptions, ChannelPool};
use ktrdr_common::server::GrpcServer;
use ktrdr_common::with_message_limits;
use ktrdr_proto::training::v1::training_service_server::TrainingServiceServer;

use crate::config::TrainingHostConfig;
use crate::data::BarSource;
use crate::grpc::TrainingGrpc;
use crate::manager::SessionManager;

/// The binary's name, in logs and error messages.
pub const BINARY: &str = "ktrdr-training-host";

/// The session manager of a training host: reads bars from `DATA_SERVICE_URL`, reloads the
/// sessions of earlier runs. Must be called inside a Tokio runtime.
pub fn session_manager(config: &TrainingHostConfig) -> SessionManager {
    let pool = ChannelPool::new(ChannelOptions::default());
    let data = BarSource::new(pool, &config.data_service_urls);
    SessionManager::open(config.training.clone(), data)
}

/// How often the device memory metrics are read.
const DEVICE_METRICS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The gRPC server of `ktrdr-training-host` with its API, health and reflection mounted.
/// Must be called inside a Tokio runtime.
pub fn server(config: TrainingHostConfig) -> GrpcServer {
    metrics::init();
    let devices = config.training.devices.clone();
    tracing::info!(
        devices = %device::describe(&devices),
        sessions_per_device = config.training.sessions_per_device,
        "training devices"
    );
    metrics::init_devices(&devices);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(DEVICE_METRICS_INTERVAL);
        loop {
            every.tick().await;
            let devices = devices.clone();
            let _ =
                tokio::task::spawn_blocking(move || metrics::refresh_device_memory(&devices)).await;
        }
    });
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let manager = session_manager(&config);
    let api = with_message_limits!(
        TrainingServiceServer::new(TrainingGrpc::new(manager, config.server.listen_addr)),
        grpc.config()
    );
    grpc.with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(api)
}
