//! `ktrdr-gateway`: the public endpoint. It serves `GatewayService` plus the public data and
//! training APIs (`DataService`, `TrainingService`), which it routes to the host services or runs
//! in-process (ARCHITECTURE §2). The binary is a thin shell around [`server`].

pub mod api;
pub mod config;
pub mod data;
pub mod orchestrator;
mod routing;
pub mod stats;
pub mod training;

use std::sync::Arc;

use ktrdr_common::client::{ChannelOptions, ChannelPool};
use ktrdr_common::error::ServiceError;
use ktrdr_common::server::GrpcServer;
use ktrdr_common::with_message_limits;
use ktrdr_proto::data::v1::data_service_server::DataServiceServer;
use ktrdr_proto::gateway::v1::gateway_service_server::GatewayServiceServer;
use ktrdr_proto::training::v1::training_service_server::TrainingServiceServer;

use crate::api::GatewayApi;
use crate::config::GatewayConfig;
use crate::data::DataManager;
use crate::orchestrator::ServiceOrchestrator;
use crate::training::TrainingManager;

/// The binary's name, in logs and error messages.
pub const BINARY: &str = "ktrdr-gateway";

/// The gRPC server of `ktrdr-gateway` with its APIs, health and reflection mounted. Must be
/// called inside a Tokio runtime (balanced channels start a background task).
pub fn server(config: GatewayConfig) -> Result<GrpcServer, ServiceError> {
    let pool = ChannelPool::new(ChannelOptions::default());
    let data = DataManager::new(&config, &pool)?;
    let training = TrainingManager::new(&config, &pool)?;
    let managers: Vec<Arc<dyn ServiceOrchestrator>> = vec![data.clone(), training.clone()];
    let gateway = GatewayApi::new(BINARY, managers, config.server.listen_addr);
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let limits = grpc.config().clone();
    Ok(grpc
        .with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(with_message_limits!(
            GatewayServiceServer::new(gateway),
            &limits
        ))
        .add_service(with_message_limits!(
            DataServiceServer::from_arc(data),
            &limits
        ))
        .add_service(with_message_limits!(
            TrainingServiceServer::from_arc(training),
            &limits
        )))
}
