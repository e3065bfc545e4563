//! What the gateway reports about its routes, as the system tests read it: one manager's
//! configuration, one backend's statistics.

use ktrdr_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ktrdr_proto::gateway::v1::{
    BackendStatistics, GetConfigurationRequest, GetStatisticsRequest, ManagerConfiguration,
};
use tonic::transport::Channel;

/// The configuration of the manager `name` (`data`, `training`, `ib`).
pub async fn manager(channel: Channel, name: &str) -> ManagerConfiguration {
    GatewayServiceClient::new(channel)
        .get_configuration(GetConfigurationRequest {})
        .await
        .expect("GetConfiguration")
        .into_inner()
        .managers
        .into_iter()
        .find(|m| m.manager == name)
        .unwrap_or_else(|| panic!("no manager {name}"))
}

/// The statistics of the (first) backend `name` (`data`, `training`, `ib`).
pub async fn backend(channel: Channel, name: &str) -> BackendStatistics {
    GatewayServiceClient::new(channel)
        .get_statistics(GetStatisticsRequest {})
        .await
        .expect("GetStatistics")
        .into_inner()
        .backends
        .into_iter()
        .find(|b| b.backend == name)
        .unwrap_or_else(|| panic!("no backend {name}"))
}
