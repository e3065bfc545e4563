//! `ktrdr-ib-host`. The binary is a thin shell around [`server`].

pub mod api;
pub mod config;

use ktrdr_common::server::GrpcServer;
use ktrdr_common::with_message_limits;
use ktrdr_proto::ib::v1::ib_host_service_server::IbHostServiceServer;

use crate::api::IbHostApi;
use crate::config::IbHostConfig;

/// The binary's name, in logs and error messages.
pub const BINARY: &str = "ktrdr-ib-host";

/// The gRPC server of `ktrdr-ib-host` with its API, health and reflection mounted.
pub fn server(config: IbHostConfig) -> GrpcServer {
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let api = with_message_limits!(
        IbHostServiceServer::new(IbHostApi::new(BINARY)),
        grpc.config()
    );
    grpc.with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(api)
}
