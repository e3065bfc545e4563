//! `ktrdr-data`. The binary is a thin shell around [`server`].

pub mod api;
pub mod config;

use ktrdr_common::server::GrpcServer;
use ktrdr_common::with_message_limits;
use ktrdr_proto::data::v1::data_service_server::DataServiceServer;

use crate::api::DataApi;
use crate::config::DataConfig;

/// The binary's name, in logs and error messages.
pub const BINARY: &str = "ktrdr-data";

/// The gRPC server of `ktrdr-data` with its API, health and reflection mounted.
pub fn server(config: DataConfig) -> GrpcServer {
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let api = with_message_limits!(DataServiceServer::new(DataApi::new(BINARY)), grpc.config());
    grpc.with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(api)
}
