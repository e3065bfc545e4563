//! The whole ktrdr stack as real processes on loopback ports: ib-sim, then (unless the gateway
//! runs them in process) ib-host, data and training-host, then the gateway routed to them.

use std::path::Path;

use ktrdr_proto::ib::v1::GetSimStatusRequest;
use ktrdr_proto::ib::v1::ib_sim_service_client::IbSimServiceClient;
use tempfile::TempDir;
use tonic::transport::Channel;

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

        let sim = start(
            "ktrdr-ib-sim",
            with(&[("IB_SIM_ADDR", "127.0.0.1:0".to_owned())]),
        )
        .await;
        let tws = IbSimServiceClient::new(sim.channel().await)
            .get_sim_status(GetSimStatusRequest {})
            .await
            .expect("ib-sim status")
            .into_inner()
            .tws_listen_addr;
        let tws_port = tws.rsplit(':').next().unwrap_or_default().to_owned();
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
            let models = path(&models_dir.path().join(format!("host{i}")));
            hosts.push(
                start(
                    "ktrdr-training-host",
                    with(&[
                        ("DATA_SERVICE_URL", data_url.clone()),
                        ("KTRDR_MODELS_DIR", models),
                        ("KTRDR_STRATEGIES_DIR", strategies.clone()),
                    ]),
                )
                .await,
            );
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
        self.sim_api()
            .await
            .get_sim_status(GetSimStatusRequest {})
            .await
            .expect("ib-sim status")
            .into_inner()
            .requests_by_kind
            .get("historical_data")
            .copied()
            .unwrap_or(0)
    }
}
