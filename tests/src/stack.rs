//! Topologies of real processes on loopback ports, with typed clients: the whole stack (ib-sim,
//! then — unless the gateway runs them in process — ib-host, data and training hosts, then the
//! gateway routed to them), or the IB path alone ([`IbPair`]).

use std::path::Path;

use ktrdr_proto::ib::v1::ib_host_service_client::IbHostServiceClient;
use ktrdr_proto::ib::v1::ib_sim_service_client::IbSimServiceClient;
use ktrdr_proto::ib::v1::inject_fault_request::Fault;
use ktrdr_proto::ib::v1::{
    GetHeadTimestampRequest, GetHeadTimestampResponse, GetSimStatusRequest, GetSimStatusResponse,
    GetStatusRequest, GetStatusResponse, InjectFaultRequest, LookupContractRequest,
    LookupContractResponse, ResetSimRequest,
};
use tempfile::TempDir;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::ServiceProcess;

/// Which capabilities the gateway runs in process (`USE_*_SERVICE=false`).
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcess {
    pub ib: bool,
    pub data: bool,
    pub training: bool,
}

impl InProcess {
    pub const NONE: Self = Self {
        ib: false,
        data: false,
        training: false,
    };
    pub const ALL: Self = Self {
        ib: true,
        data: true,
        training: true,
    };
}

/// Pacing scaled down on both sides, so IB's windows last milliseconds.
pub const FAST_PACING: &[(&str, &str)] = &[
    ("IB_SIM_PACING_SCALE", "0.002"),
    ("IB_PACING_SCALE", "0.002"),
    ("IB_PACING_MARGIN_MS", "400"),
];

pub struct Stack {
    pub sim: ServiceProcess,
    pub ib_host: Option<ServiceProcess>,
    pub data: Option<ServiceProcess>,
    pub training_hosts: Vec<ServiceProcess>,
    pub gateway: ServiceProcess,
    /// The TWS API port of ib-sim.
    pub tws_port: String,
    pub data_dir: TempDir,
    pub models_dir: TempDir,
}

/// ib-sim with its TWS socket on a free port and `env`; its control client and TWS port.
pub async fn start_sim(
    env: &[(&str, &str)],
) -> (ServiceProcess, IbSimServiceClient<Channel>, String) {
    let mut all = vec![("IB_SIM_ADDR", "127.0.0.1:0")];
    all.extend_from_slice(env);
    let sim = ServiceProcess::start("ktrdr-ib-sim", &all).await;
    let mut api = IbSimServiceClient::new(sim.channel().await);
    let tws = api
        .get_sim_status(GetSimStatusRequest {})
        .await
        .expect("ib-sim status")
        .into_inner()
        .tws_listen_addr;
    let port = tws.rsplit(':').next().unwrap_or_default().to_owned();
    (sim, api, port)
}

/// ib-sim and one ib-host connected to it, with typed clients: the IB path on its own.
pub struct IbPair {
    pub sim: ServiceProcess,
    pub host: ServiceProcess,
    pub sim_api: IbSimServiceClient<Channel>,
    pub api: IbHostServiceClient<Channel>,
    pub health: HealthClient<Channel>,
}

impl IbPair {
    /// ib-sim (`sim_env`), then ib-host (`host_env`) pointed at it; waits until ib-host serves.
    pub async fn start(sim_env: &[(&str, &str)], host_env: &[(&str, &str)]) -> Self {
        let (sim, sim_api, port) = start_sim(sim_env).await;
        let mut env = vec![("IB_HOST", "127.0.0.1"), ("IB_PORT", port.as_str())];
        env.extend_from_slice(host_env);
        let host = ServiceProcess::start("ktrdr-ib-host", &env).await;
        let channel = host.channel().await;
        let mut pair = Self {
            sim,
            api: IbHostServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
            host,
            sim_api,
        };
        pair.wait_health(ServingStatus::Serving).await;
        pair
    }

    /// ib-host's health for its API.
    pub async fn health(&mut self) -> ServingStatus {
        self.health
            .check(HealthCheckRequest {
                service: "ktrdr.ib.v1.IbHostService".into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status()
    }

    /// Waits (bounded by [`crate::PROCESS_WAIT`]) until ib-host's health is `want`.
    pub async fn wait_health(&mut self, want: ServingStatus) {
        let deadline = tokio::time::Instant::now() + crate::PROCESS_WAIT;
        while self.health().await != want {
            assert!(
                tokio::time::Instant::now() < deadline,
                "ib-host health never became {want:?}\nib-host:\n{}\nib-sim:\n{}",
                self.host.logs(),
                self.sim.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn sim_status(&mut self) -> GetSimStatusResponse {
        self.sim_api
            .get_sim_status(GetSimStatusRequest {})
            .await
            .expect("ib-sim status")
            .into_inner()
    }

    /// ib-host's GetStatus.
    pub async fn host_status(&mut self) -> GetStatusResponse {
        self.api
            .get_status(GetStatusRequest {})
            .await
            .expect("ib-host status")
            .into_inner()
    }

    /// ib-host's LookupContract of `symbol`.
    pub async fn lookup(&mut self, symbol: &str) -> Result<LookupContractResponse, tonic::Status> {
        let request = LookupContractRequest {
            symbol: symbol.into(),
            ..Default::default()
        };
        Ok(self.api.lookup_contract(request).await?.into_inner())
    }

    /// ib-host's GetHeadTimestamp of `symbol`.
    pub async fn head_timestamp(
        &mut self,
        symbol: &str,
    ) -> Result<GetHeadTimestampResponse, tonic::Status> {
        let request = GetHeadTimestampRequest {
            symbol: symbol.into(),
            ..Default::default()
        };
        Ok(self.api.get_head_timestamp(request).await?.into_inner())
    }

    /// Clears ib-sim's faults (keeping its connections).
    pub async fn reset_sim(&mut self) {
        self.sim_api
            .reset_sim(ResetSimRequest {
                drop_connections: false,
            })
            .await
            .expect("reset ib-sim");
    }

    /// Historical requests ib-sim has received.
    pub async fn historical_requests(&mut self) -> i64 {
        historical_requests(&self.sim_status().await)
    }

    /// Waits (bounded) until ib-sim has received a historical request.
    pub async fn wait_for_a_historical_request(&mut self) {
        let deadline = tokio::time::Instant::now() + crate::PROCESS_WAIT;
        while self.historical_requests().await == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no request reached the sim"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Injects one fault at ib-sim.
    pub async fn inject(&mut self, fault: Fault) {
        self.sim_api
            .inject_fault(InjectFaultRequest { fault: Some(fault) })
            .await
            .expect("inject fault");
    }
}

fn historical_requests(status: &GetSimStatusResponse) -> i64 {
    status
        .requests_by_kind
        .get("historical_data")
        .copied()
        .unwrap_or(0)
}

/// ktrdr-data on a new temporary store, with `env`; the store lives as long as the directory.
pub async fn start_data(env: &[(&str, &str)]) -> (ServiceProcess, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    (start_data_in(dir.path(), env).await, dir)
}

/// ktrdr-data on the store in `dir`, with `env`.
pub async fn start_data_in(dir: &Path, env: &[(&str, &str)]) -> ServiceProcess {
    let store = path(dir);
    let mut all = vec![("KTRDR_DATA_DIR", store.as_str())];
    all.extend_from_slice(env);
    ServiceProcess::start("ktrdr-data", &all).await
}

/// A training host reading bars from the data service at `data_url`, keeping models (and
/// sessions) under `models`, with no strategies directory, and `env`.
pub async fn start_training_host(
    data_url: &str,
    models: &Path,
    env: &[(&str, &str)],
) -> ServiceProcess {
    let (models, strategies) = (path(models), path(&models.join("no-strategies")));
    let mut all = vec![
        ("DATA_SERVICE_URL", data_url),
        ("KTRDR_MODELS_DIR", models.as_str()),
        ("KTRDR_STRATEGIES_DIR", strategies.as_str()),
    ];
    all.extend_from_slice(env);
    ServiceProcess::start("ktrdr-training-host", &all).await
}

/// A free loopback port (for a process that must be reachable before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn path(dir: &Path) -> String {
    dir.to_string_lossy().into_owned()
}

impl Stack {
    /// The stack with `training_hosts` training hosts (0 when training runs in process), `env`
    /// given to every process.
    pub async fn start(in_process: InProcess, training_hosts: usize, env: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let models_dir = tempfile::tempdir().expect("temp dir");
        let (data_path, models_path) = (path(data_dir.path()), path(models_dir.path()));
        let strategies = crate::repo_root().join("strategies");
        let strategies = path(&strategies);
        let with = |extra: &[(&'static str, String)]| -> Vec<(String, String)> {
            let mut all: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            all.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            all
        };
        let start = |binary: &'static str, vars: Vec<(String, String)>| async move {
            let refs: Vec<(&str, &str)> =
                vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            ServiceProcess::start(binary, &refs).await
        };

        let env_refs: Vec<(String, String)> = with(&[]);
        let env_refs: Vec<(&str, &str)> = env_refs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (sim, _, tws_port) = start_sim(&env_refs).await;
        let ib_env = [
            ("IB_HOST", "127.0.0.1".to_owned()),
            ("IB_PORT", tws_port.clone()),
        ];

        let ib_host = if in_process.ib {
            None
        } else {
            Some(start("ktrdr-ib-host", with(&ib_env)).await)
        };
        let data = if in_process.data {
            None
        } else {
            Some(start("ktrdr-data", with(&[("KTRDR_DATA_DIR", data_path.clone())])).await)
        };
        let gateway_port = free_port();
        let gateway_addr = format!("127.0.0.1:{gateway_port}");
        // In-process training reads bars from the data route: the data service, or the gateway.
        let data_url = data
            .as_ref()
            .map_or(format!("http://{gateway_addr}"), ServiceProcess::url);
        let mut hosts = Vec::new();
        for i in 0..training_hosts {
            let mut host_env = env_refs.clone();
            host_env.push(("KTRDR_STRATEGIES_DIR", strategies.as_str()));
            let models = models_dir.path().join(format!("host{i}"));
            hosts.push(start_training_host(&data_url, &models, &host_env).await);
        }
        let unused = "http://127.0.0.1:1".to_owned();
        let mut gateway_env = vec![
            ("KTRDR_LISTEN_ADDR", gateway_addr),
            ("USE_IB_HOST_SERVICE", (!in_process.ib).to_string()),
            ("USE_DATA_SERVICE", (!in_process.data).to_string()),
            (
                "USE_TRAINING_HOST_SERVICE",
                (!in_process.training).to_string(),
            ),
            (
                "IB_HOST_SERVICE_URL",
                ib_host.as_ref().map_or(unused.clone(), ServiceProcess::url),
            ),
            (
                "DATA_SERVICE_URL",
                data.as_ref().map_or(unused.clone(), ServiceProcess::url),
            ),
            (
                "TRAINING_HOST_SERVICE_URL",
                if hosts.is_empty() {
                    unused
                } else {
                    hosts
                        .iter()
                        .map(ServiceProcess::url)
                        .collect::<Vec<_>>()
                        .join(",")
                },
            ),
            ("KTRDR_DATA_DIR", data_path),
            ("KTRDR_MODELS_DIR", models_path),
            ("KTRDR_STRATEGIES_DIR", strategies),
            // ib-host holds client id 1 on the same simulator.
            ("IB_CLIENT_ID", "7".to_owned()),
        ];
        gateway_env.extend(ib_env);
        let gateway = start("ktrdr-gateway", with(&gateway_env)).await;
        Self {
            sim,
            ib_host,
            data,
            training_hosts: hosts,
            gateway,
            tws_port,
            data_dir,
            models_dir,
        }
    }

    pub async fn gateway_channel(&self) -> Channel {
        self.gateway.channel().await
    }

    pub async fn sim_api(&self) -> IbSimServiceClient<Channel> {
        IbSimServiceClient::new(self.sim.channel().await)
    }

    /// Historical requests ib-sim has received.
    pub async fn sim_historical_requests(&self) -> i64 {
        let status = self
            .sim_api()
            .await
            .get_sim_status(GetSimStatusRequest {})
            .await
            .expect("ib-sim status")
            .into_inner();
        historical_requests(&status)
    }
}
