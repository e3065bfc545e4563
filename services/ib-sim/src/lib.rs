//! `ktrdr-ib-sim`: a TWS API wire-protocol simulator. The binary is a thin shell around
//! [`start_tws`] and [`server`].
//!
//! - [`wire`]: framing, message ids, versions; [`codec`]: every message in the encoding the
//!   agreed version calls for (classic text or protobuf); [`proto`]: the IB protobuf messages;
//! - [`calendar`] and [`market`]: New York time, trading sessions, contracts, deterministic bars;
//! - [`rules`]: legal (duration, bar size) pairs and pacing;
//! - [`session`]: one client connection; [`state`]: shared rules, counters, faults;
//! - [`control`]: the gRPC `IbSimService` tests drive.

pub mod calendar;
pub mod codec;
pub mod config;
pub mod control;
pub mod market;
pub mod proto;
pub mod replay;
pub mod rules;
pub mod session;
pub mod state;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use ktrdr_common::server::GrpcServer;
use ktrdr_common::with_message_limits;
use ktrdr_proto::ib::v1::ib_sim_service_server::IbSimServiceServer;
use tokio::net::TcpListener;

use crate::config::IbSimConfig;
use crate::control::IbSimApi;
use crate::state::Sim;

/// The binary's name, in logs and error messages.
pub const BINARY: &str = "ktrdr-ib-sim";

/// The gRPC control server of `ktrdr-ib-sim` over `sim`, with health and reflection mounted.
pub fn server(config: &IbSimConfig, sim: Arc<Sim>) -> GrpcServer {
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let api = with_message_limits!(
        IbSimServiceServer::new(IbSimApi::new(sim, config.server.listen_addr.to_string())),
        grpc.config()
    );
    grpc.with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(api)
}

/// Binds the TWS API socket and starts accepting clients in the background; returns the
/// simulator state and the bound address.
pub async fn start_tws(config: &IbSimConfig) -> std::io::Result<(Arc<Sim>, SocketAddr)> {
    let replay = match &config.settings.replay_dir {
        Some(dir) => {
            replay::Replay::load(dir, &market::contracts()).map_err(std::io::Error::other)?
        }
        None => replay::Replay::default(),
    };
    let sim = Sim::with_replay(config.settings.clone(), replay);
    let listener = TcpListener::bind(config.tws_addr).await?;
    let addr = listener.local_addr()?;
    if let Ok(mut slot) = sim.tws_addr.lock() {
        *slot = Some(addr);
    }
    // Not "listening on": test harnesses take the first such line as the gRPC address.
    tracing::info!(%addr, "{BINARY} accepts TWS API clients at {addr}");
    tokio::spawn(session::serve(Arc::clone(&sim), listener));
    Ok((sim, addr))
}
