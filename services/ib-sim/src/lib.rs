//! `ktrdr-ib-sim`. The binary is a thin shell around [`server`].

pub mod api;
pub mod config;

use ktrdr_common::server::GrpcServer;
use ktrdr_common::with_message_limits;
use ktrdr_proto::ib::v1::ib_sim_service_server::IbSimServiceServer;

use crate::api::IbSimApi;
use crate::config::IbSimConfig;

/// The binary's name, in logs and error messages.
pub const BINARY: &str = "ktrdr-ib-sim";

/// The gRPC server of `ktrdr-ib-sim` with its API, health and reflection mounted.
pub fn server(config: IbSimConfig) -> GrpcServer {
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let api = with_message_limits!(
        IbSimServiceServer::new(IbSimApi::new(BINARY)),
        grpc.config()
    );
    grpc.with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(api)
}
