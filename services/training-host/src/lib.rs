//! `ktrdr-training-host`: training sessions (start, watch, cancel, persist), the model
//! registry, evaluation and prediction. The session logic ([`manager::SessionManager`]) is a
//! library so the gateway can run it in-process; [`server`] wraps it in the gRPC service.

pub mod backtest;
pub mod config;
pub mod convert;
pub mod data;
pub mod error;
pub mod grpc;
pub mod manager;
pub mod metrics;
pub mod persist;
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

/// The gRPC server of `ktrdr-training-host` with its API, health and reflection mounted.
pub fn server(config: TrainingHostConfig) -> GrpcServer {
    metrics::init();
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let manager = session_manager(&config);
    let api = with_message_limits!(
        TrainingServiceServer::new(TrainingGrpc::new(manager, config.server.listen_addr)),
        grpc.config()
    );
    grpc.with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(api)
}
