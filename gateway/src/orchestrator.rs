//! The seed's `ServiceOrchestrator`, in Rust terms: every manager of the gateway knows its
//! service, how the environment routes it (host service or in-process), its statistics and its
//! health, and describes itself the same way in `GetConfiguration` and `GetStatistics`.

use std::collections::HashMap;
use std::time::Duration;

use ktrdr_proto::common::v1::Warning;
use ktrdr_proto::gateway::v1::{BackendStatistics, ManagerConfiguration, ManagerMode};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::Route;
use crate::routing::Endpoint;
use crate::stats::BackendStats;

/// How long a health probe of a host service may take.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[tonic::async_trait]
pub trait ServiceOrchestrator: Send + Sync {
    /// The manager's routed endpoint; everything below is derived from it.
    fn endpoint(&self) -> &Endpoint;

    /// Short manager name: `data`, `training`, `ib`.
    fn manager(&self) -> &'static str {
        self.endpoint().spec.manager
    }
    /// The gRPC service the manager routes, e.g. `ktrdr.data.v1.DataService`.
    fn service(&self) -> &'static str {
        self.endpoint().spec.service
    }
    /// `USE_<PREFIX>` / `<PREFIX>_URL`, e.g. `DATA_SERVICE`.
    fn env_prefix(&self) -> &'static str {
        self.endpoint().spec.env_prefix
    }
    fn default_url(&self) -> &'static str {
        self.endpoint().spec.url_var.kind.0
    }
    fn route(&self) -> &Route {
        &self.endpoint().route
    }
    fn stats(&self) -> &BackendStats {
        &self.endpoint().stats
    }
    /// The channel to the host service, when routed there.
    fn channel(&self) -> Option<Channel> {
        self.endpoint().channel()
    }

    fn mode(&self) -> ManagerMode {
        if self.route().use_host_service {
            ManagerMode::HostService
        } else {
            ManagerMode::Local
        }
    }

    /// Where calls go: the host service URL(s), or `in-process`.
    fn target(&self) -> String {
        if self.route().use_host_service {
            self.route().urls.join(",")
        } else {
            "in-process".to_owned()
        }
    }

    /// Probes the host service's health (`SERVING` for its service); in-process is healthy.
    async fn health(&self) -> (bool, String) {
        self.remote_health().await
    }

    /// The host service's health check; in-process counts as healthy.
    async fn remote_health(&self) -> (bool, String) {
        match self.channel() {
            Some(channel) => probe(channel, self.service()).await,
            None => (true, "in-process".to_owned()),
        }
    }

    /// What in the manager's set-up can give wrong or surprising answers; none by default.
    async fn warnings(&self) -> Vec<Warning> {
        Vec::new()
    }

    async fn configuration(&self) -> ManagerConfiguration {
        let (healthy, health_message) = self.health().await;
        let route = self.route();
        let prefix = self.env_prefix();
        let env = HashMap::from([
            (format!("USE_{prefix}"), route.use_host_service.to_string()),
            (format!("{prefix}_URL"), route.urls.join(",")),
        ]);
        ManagerConfiguration {
            manager: self.manager().to_owned(),
            service: self.service().to_owned(),
            mode: self.mode() as i32,
            url: route
                .urls
                .first()
                .cloned()
                .unwrap_or_else(|| self.default_url().to_owned()),
            urls: route.urls.clone(),
            env_prefix: prefix.to_owned(),
            env,
            healthy,
            health_message,
            stats: Some(self.stats().adapter()),
            warnings: self.warnings().await,
        }
    }

    /// One entry per backend endpoint (one here; managers of several replicas list each).
    async fn statistics(&self) -> Vec<BackendStatistics> {
        let (healthy, _) = self.health().await;
        vec![
            self.stats()
                .backend(self.manager(), &self.target(), healthy),
        ]
    }
}

/// Checks `service`'s health on `channel`: (`SERVING`?, detail).
pub async fn probe(channel: Channel, service: &str) -> (bool, String) {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(HEALTH_PROBE_TIMEOUT);
    match tokio::time::timeout(
        HEALTH_PROBE_TIMEOUT,
        HealthClient::new(channel).check(request),
    )
    .await
    {
        Ok(Ok(response)) => {
            let status = response.into_inner().status();
            (
                status == ServingStatus::Serving,
                status.as_str_name().to_owned(),
            )
        }
        Ok(Err(status)) => (false, format!("{:?}: {}", status.code(), status.message())),
        Err(_) => (false, "no answer within 1 s".to_owned()),
    }
}
