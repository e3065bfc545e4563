//! `ktrdr-training-host`. The binary is a thin shell around [`server`].

pub mod api;
pub mod config;

use ktrdr_common::server::GrpcServer;
use ktrdr_common::with_message_limits;
use ktrdr_proto::training::v1::training_service_server::TrainingServiceServer;

use crate::api::TrainingApi;
use crate::config::TrainingHostConfig;

/// The binary's name, in logs and error messages.
pub const BINARY: &str = "ktrdr-training-host";

/// The gRPC server of `ktrdr-training-host` with its API, health and reflection mounted.
pub fn server(config: TrainingHostConfig) -> GrpcServer {
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let api = with_message_limits!(
        TrainingServiceServer::new(TrainingApi::new(BINARY)),
        grpc.config()
    );
    grpc.with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(api)
}
