//! `ktrdr-gateway`: the public endpoint. It serves `GatewayService` (configuration, statistics,
//! data loads, orchestrated training) plus the public data, training and IB APIs, which it
//! routes to the host services or runs in-process (ARCHITECTURE §2). The binary is a thin shell
//! around [`gateway`] and [`serve`].

pub mod api;
pub mod auth;
pub mod backtest;
pub mod config;
pub mod data;
pub mod events;
pub mod health;
pub mod ib;
pub mod jobs;
mod listing;
pub mod load;
pub mod orchestrator;
pub mod replicas;
mod routing;
pub mod stats;
pub mod sweep;
pub mod sweeps;
pub mod train;
pub mod training;

use std::sync::Arc;

use ktrdr_common::client::{ChannelOptions, ChannelPool};
use ktrdr_common::error::ServiceError;
use ktrdr_common::server::{GrpcServer, ServerError, shutdown_signal};
use ktrdr_common::with_message_limits;
use ktrdr_proto::data::v1::data_service_server::DataServiceServer;
use ktrdr_proto::gateway::v1::gateway_service_server::GatewayServiceServer;
use ktrdr_proto::ib::v1::ib_host_service_server::IbHostServiceServer;
use ktrdr_proto::training::v1::training_service_server::TrainingServiceServer;

use crate::api::GatewayApi;
use crate::auth::{Authenticated, BearerAuth};
use crate::backtest::BacktestJobs;
use crate::config::GatewayConfig;
use crate::data::DataManager;
use crate::health::HealthMonitor;
use crate::ib::IbManager;
use crate::load::{Backends, LoadManager};
use crate::orchestrator::ServiceOrchestrator;
use crate::train::TrainFlow;
use crate::training::TrainingManager;

/// The binary's name, in logs and error messages.
pub const BINARY: &str = "ktrdr-gateway";

/// The gateway's server, and the monitor that keeps its health statuses in line with its
/// backends.
pub struct Gateway {
    pub grpc: GrpcServer,
    pub health: HealthMonitor,
}

/// Builds the gateway's APIs (each behind the bearer-token check) with health and reflection
/// mounted. Must be called inside a Tokio runtime (channels and in-process IB start tasks).
pub fn gateway(config: GatewayConfig) -> Result<Gateway, ServiceError> {
    let pool = ChannelPool::new(ChannelOptions::default());
    let data = DataManager::new(&config, &pool)?;
    let ib = IbManager::new(&config, &pool)?;
    let loads = LoadManager::new(Backends {
        ib: ib.clone(),
        data: data.clone(),
    });
    let training = TrainingManager::new(&config, &pool, loads.clone())?;
    let train = TrainFlow::new(
        loads.clone(),
        training.clone(),
        config.training.strategies_dir.clone(),
    );
    let backtests = BacktestJobs::new(training.clone(), train.clone());
    let managers: Vec<Arc<dyn ServiceOrchestrator>> =
        vec![data.clone(), training.clone(), ib.clone()];
    let gateway = GatewayApi::new(
        managers.clone(),
        loads,
        train,
        backtests,
        config.server.listen_addr,
    );
    let grpc = GrpcServer::new(BINARY, config.server.clone());
    let health = HealthMonitor::new(grpc.health_reporter(), managers);
    let limits = grpc.config().clone();
    let auth = BearerAuth::new(config.auth_token.as_deref());
    let grpc = grpc
        .with_descriptor_set(ktrdr_proto::FILE_DESCRIPTOR_SET)
        .add_service(Authenticated::new(
            with_message_limits!(GatewayServiceServer::new(gateway), &limits),
            auth.clone(),
        ))
        .add_service(Authenticated::new(
            with_message_limits!(DataServiceServer::from_arc(data), &limits),
            auth.clone(),
        ))
        .add_service(Authenticated::new(
            with_message_limits!(TrainingServiceServer::from_arc(training), &limits),
            auth.clone(),
        ))
        .add_service(Authenticated::new(
            with_message_limits!(IbHostServiceServer::from_arc(ib), &limits),
            auth,
        ));
    Ok(Gateway { grpc, health })
}

/// Serves until SIGTERM/SIGINT. Each API's health follows the backends it needs, checked once
/// before the first call is served and then periodically.
pub async fn serve(gateway: Gateway) -> Result<(), ServerError> {
    let Gateway { grpc, health } = gateway;
    let bound = grpc.bind().await?;
    health.check_once().await;
    let monitor = tokio::spawn(health.run());
    let shutdown = shutdown_signal();
    bound
        .serve_until(async move {
            shutdown.await;
            // Draining reports NOT_SERVING; the monitor must not turn it back to SERVING.
            monitor.abort();
        })
        .await
}
