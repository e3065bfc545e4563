//! `ktrdr-data`: the market-data store and its gRPC service. The binary is a thin shell around
//! [`server`]; the gateway runs the same library in-process when `USE_DATA_SERVICE=false`.

pub mod api;
pub mod calendar;
pub mod config;
pub mod coverage;
pub mod csv_io;
mod import;
pub mod metrics;
pub mod store;
pub mod validate;

use std::sync::Arc;

use ktrdr_common::server::GrpcServer;
use ktrdr_common::with_message_limits;
use ktrdr_proto::data::v1::data_service_server::DataServiceServer;

use crate::api::DataApi;
use crate::config::DataConfig;
use crate::store::Store;

/// The binary's name, in logs and error messages.
pub const BINARY: &str = "ktrdr-data";

/// The gRPC server of `ktrdr-data` with its API, health and reflection mounted.
pub fn server(config: DataConfig) -> GrpcServer {
    metrics::init();
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let store = Arc::new(Store::new(config.store.data_dir.clone()));
    let api = DataApi::new(store, config.server.listen_addr);
    let api = with_message_limits!(DataServiceServer::new(api), grpc.config());
    grpc.with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(api)
}
