//! `ktrdr-ib-host`: the owner of the one Interactive Brokers connection. The binary is a thin
//! shell around [`run`]; the gateway can use [`host::IbHost`] in process.
//!
//! - [`connection`]: connect with backoff, detect drops, reconnect;
//! - [`source`]: the [`source::MarketDataSource`] trait and its `ibapi` implementation;
//! - [`plan`]: the fewest legal (duration, bar size) requests for a range;
//! - [`pacing`]: the gate that keeps IB's pacing rules;
//! - [`contract`]: symbols to IB contracts; [`error`]: IB codes to gRPC statuses;
//! - [`host`]: FetchBars, head timestamps, lookups, status; [`api`]: the gRPC service.

pub mod api;
pub mod config;
pub mod connection;
pub mod contract;
pub mod error;
pub mod host;
pub mod metrics;
pub mod pacing;
pub mod plan;
pub mod source;

use std::sync::Arc;

use ktrdr_common::server::{GrpcServer, ServerError, shutdown_signal};
use ktrdr_common::status::ProcessIdentity;
use ktrdr_common::with_message_limits;
use ktrdr_proto::ib::v1::ib_host_service_server::IbHostServiceServer;
use tonic_health::ServingStatus;

use crate::api::IbHostApi;
use crate::config::{IbBehaviour, IbConnectionConfig, IbHostConfig};
use crate::host::IbHost;
use crate::source::IbapiSource;

/// The binary's name, in logs and error messages.
pub const BINARY: &str = "ktrdr-ib-host";

const SERVICE: &str = "ktrdr.ib.v1.IbHostService";

/// The host over a real IB connection, connecting in the background. This is all the gateway
/// needs to run the IB logic in process (`USE_IB_HOST_SERVICE=false`): read
/// [`IbConnectionConfig::from_env`] and [`IbBehaviour::from_env`], then call the returned
/// host's methods directly.
pub fn connect(
    ib: IbConnectionConfig,
    behaviour: IbBehaviour,
    identity: ProcessIdentity,
) -> Arc<IbHost> {
    let source = IbapiSource::start(ib, behaviour.connect, behaviour.timeouts);
    IbHost::new(Arc::new(source), behaviour.host, identity)
}

/// The host of the `ktrdr-ib-host` binary.
pub fn start_host(config: &IbHostConfig) -> Arc<IbHost> {
    connect(
        config.ib.clone(),
        config.behaviour,
        ProcessIdentity::new("ib-host", config.server.listen_addr),
    )
}

/// The gRPC server of `ktrdr-ib-host` with its API, health and reflection mounted.
pub fn server(config: &IbHostConfig, host: Arc<IbHost>) -> GrpcServer {
    metrics::init();
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let api = with_message_limits!(
        IbHostServiceServer::new(IbHostApi::new(host)),
        grpc.config()
    );
    grpc.with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(api)
}

/// Serves until SIGTERM/SIGINT. The API's health follows the IB connection: NOT_SERVING while
/// disconnected (the process itself, service "", stays SERVING).
pub async fn run(config: IbHostConfig) -> Result<(), ServerError> {
    let host = start_host(&config);
    let grpc = server(&config, Arc::clone(&host));
    let health = grpc.health_reporter();
    let bound = grpc.bind().await?;
    let mut ready = host.source().watch_ready();
    // Before the first call is served: not connected yet means NOT_SERVING.
    if !*ready.borrow() {
        health
            .set_service_status(SERVICE, ServingStatus::NotServing)
            .await;
    }
    tokio::spawn(async move {
        loop {
            let up = *ready.borrow_and_update();
            let status = if up {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            health.set_service_status(SERVICE, status).await;
            if ready.changed().await.is_err() {
                return;
            }
        }
    });
    bound.serve_until(shutdown_signal()).await
}
