//! `ktrdr-gateway`: the public endpoint. It serves `GatewayService` plus the public data and
//! training APIs (`DataService`, `TrainingService`), which it routes to the host services or runs
//! in-process (ARCHITECTURE §2). The binary is a thin shell around [`server`].

pub mod api;
pub mod config;
mod pending_data;

use ktrdr_common::server::GrpcServer;
use ktrdr_common::with_message_limits;
use ktrdr_proto::data::v1::data_service_server::DataServiceServer;
use ktrdr_proto::gateway::v1::gateway_service_server::GatewayServiceServer;
use ktrdr_proto::training::v1::training_service_server::TrainingServiceServer;
use ktrdr_training_host::api::TrainingApi;

use crate::api::GatewayApi;
use crate::config::GatewayConfig;
use crate::pending_data::PendingDataApi;

/// The binary's name, in logs and error messages.
pub const BINARY: &str = "ktrdr-gateway";

/// The gRPC server of `ktrdr-gateway` with its APIs, health and reflection mounted.
pub fn server(config: GatewayConfig) -> GrpcServer {
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let limits = grpc.config().clone();
    grpc.with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(with_message_limits!(
            GatewayServiceServer::new(GatewayApi::new(BINARY)),
            &limits
        ))
        .add_service(with_message_limits!(
            DataServiceServer::new(PendingDataApi::new(BINARY)),
            &limits
        ))
        .add_service(with_message_limits!(
            TrainingServiceServer::new(TrainingApi::new(BINARY)),
            &limits
        ))
}
