//! The gateway's health follows its backends: each API is `SERVING` only while the backends it
//! needs answer their health checks (the data API needs `data`, the training API `training`,
//! the IB API `ib`, and `GatewayService`'s loads need `data` and `ib`). The process itself
//! (service `""`) stays `SERVING` while it runs, so liveness probes do not restart a healthy
//! gateway because a backend is down. `GetConfiguration` has the per-backend detail.

use std::sync::Arc;
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::orchestrator::ServiceOrchestrator;

/// How often the backends are checked.
const INTERVAL: Duration = Duration::from_secs(5);

/// Which APIs of the gateway need which manager's backend.
const NEEDS: &[(&str, &[&str])] = &[
    ("ktrdr.data.v1.DataService", &["data"]),
    ("ktrdr.training.v1.TrainingService", &["training"]),
    ("ktrdr.ib.v1.IbHostService", &["ib"]),
    ("ktrdr.gateway.v1.GatewayService", &["data", "ib"]),
];

pub struct HealthMonitor {
    reporter: HealthReporter,
    managers: Vec<Arc<dyn ServiceOrchestrator>>,
}

impl HealthMonitor {
    pub fn new(reporter: HealthReporter, managers: Vec<Arc<dyn ServiceOrchestrator>>) -> Self {
        Self { reporter, managers }
    }

    /// Checks every backend (in parallel) and updates each API's status.
    pub async fn check_once(&self) {
        let checks = self.managers.iter().map(|m| async move {
            let (healthy, detail) = m.health().await;
            (m.manager(), healthy, detail)
        });
        let results = futures_util::future::join_all(checks).await;
        for (service, needs) in NEEDS {
            let down: Vec<String> = results
                .iter()
                .filter(|(manager, healthy, _)| needs.contains(manager) && !healthy)
                .map(|(manager, _, detail)| format!("{manager}: {detail}"))
                .collect();
            let status = if down.is_empty() {
                ServingStatus::Serving
            } else {
                tracing::debug!(service, down = ?down, "backend down");
                ServingStatus::NotServing
            };
            self.reporter.set_service_status(service, status).await;
        }
    }

    /// Checks periodically, forever.
    pub async fn run(self) {
        let mut ticks = tokio::time::interval(INTERVAL);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.check_once().await;
        }
    }
}
