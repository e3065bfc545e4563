//! Configuration of the gateway: the routing table of ARCHITECTURE §2 plus what each capability
//! needs when it runs in-process.

use ktrdr_common::config::{
    ConfigError, Env, Flag, Millis, ServerConfig, Urls, Var, VarDoc, env_help, loopback,
    server_var_docs,
};
use std::time::Duration;

use ktrdr_data::config::StoreConfig;
use ktrdr_ib_host::config::{IbBehaviour, IbConnectionConfig};
use ktrdr_training_host::config::TrainingConfig;

/// Default gRPC port of `ktrdr-gateway`.
pub const DEFAULT_PORT: u16 = 50051;

/// Where one capability runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `USE_*_SERVICE`: `true` calls the host service, `false` runs it in the gateway.
    pub use_host_service: bool,
    /// `*_URL`: the host service's URL(s); several are balanced.
    pub urls: Vec<String>,
}

impl Route {
    fn from_env(env: &Env, manager: &ManagerSpec) -> Result<Self, ConfigError> {
        Ok(Self {
            use_host_service: env.read(&manager.use_var)?,
            urls: env.read(&manager.url_var)?,
        })
    }
}

/// One routed capability, declared once: its manager name, the gRPC service it routes, its two
/// variables (`USE_<PREFIX>`, `<PREFIX>_URL`) and what a caller is told when its host service
/// is down. Config, `--help`, `GetConfiguration` and error messages all read it from here.
#[derive(Debug, Clone, Copy)]
pub struct ManagerSpec {
    /// Short manager name: `data`, `training`, `ib`.
    pub manager: &'static str,
    /// The gRPC service the manager routes, e.g. `ktrdr.data.v1.DataService`.
    pub service: &'static str,
    /// `DATA_SERVICE` for `USE_DATA_SERVICE` / `DATA_SERVICE_URL`.
    pub env_prefix: &'static str,
    pub use_var: Var<Flag>,
    /// Its default is the host service's default URL.
    pub url_var: Var<Urls>,
    /// e.g. `Data`: the start of the "… service unavailable at URL" message.
    pub label: &'static str,
    /// What to do when the host service is down.
    pub hint: &'static str,
}

/// Declares a [`ManagerSpec`], spelling its variable names from the prefix.
macro_rules! manager_spec {
    (
        manager: $manager:literal, service: $service:literal, prefix: $prefix:literal,
        default_url: $url:literal, use_meaning: $use_meaning:literal,
        url_meaning: $url_meaning:literal, label: $label:literal, hint: $hint:literal $(,)?
    ) => {
        ManagerSpec {
            manager: $manager,
            service: $service,
            env_prefix: $prefix,
            use_var: Var {
                name: concat!("USE_", $prefix),
                kind: Flag(true),
                meaning: $use_meaning,
            },
            url_var: Var {
                name: concat!($prefix, "_URL"),
                kind: Urls($url),
                meaning: $url_meaning,
            },
            label: $label,
            hint: $hint,
        }
    };
}

/// The IB capability: `ktrdr-ib-host`, or an IB connection in the gateway.
pub const IB: ManagerSpec = manager_spec! {
    manager: "ib",
    service: "ktrdr.ib.v1.IbHostService",
    prefix: "IB_HOST_SERVICE",
    default_url: "http://localhost:50052",
    use_meaning: "true: reach IB through ktrdr-ib-host; false: the gateway connects to IB itself",
    url_meaning: "URL of ktrdr-ib-host",
    label: "IB host",
    hint: "start ktrdr-ib-host or set USE_IB_HOST_SERVICE=false to connect to IB from the gateway",
};

/// The market-data store: `ktrdr-data`, or the store opened in the gateway.
pub const DATA: ManagerSpec = manager_spec! {
    manager: "data",
    service: "ktrdr.data.v1.DataService",
    prefix: "DATA_SERVICE",
    default_url: "http://localhost:50054",
    use_meaning: "true: use ktrdr-data; false: the gateway opens the store itself",
    url_meaning: "URL of ktrdr-data",
    label: "Data",
    hint: "start ktrdr-data or set USE_DATA_SERVICE=false to open the store in the gateway",
};

/// Training and inference: `ktrdr-training-host` replicas, or sessions in the gateway (CPU).
pub const TRAINING: ManagerSpec = manager_spec! {
    manager: "training",
    service: "ktrdr.training.v1.TrainingService",
    prefix: "TRAINING_HOST_SERVICE",
    default_url: "http://localhost:50053",
    use_meaning: "true: train on ktrdr-training-host; false: train in the gateway (CPU)",
    url_meaning: "URL(s) of ktrdr-training-host: one, a comma list, or a DNS name",
    label: "Training host",
    hint: "start ktrdr-training-host or set USE_TRAINING_HOST_SERVICE=false to train in the gateway",
};

/// The routing table: which capabilities run in host services and where those are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    pub ib: Route,
    pub data: Route,
    pub training: Route,
}

impl RoutingConfig {
    pub fn vars() -> Vec<VarDoc> {
        [IB, DATA, TRAINING]
            .iter()
            .flat_map(|m| [m.use_var.doc(), m.url_var.doc()])
            .collect()
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            ib: Route::from_env(env, &IB)?,
            data: Route::from_env(env, &DATA)?,
            training: Route::from_env(env, &TRAINING)?,
        })
    }
}

/// How the gateway calls its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPolicy {
    /// Deadline of a unary backend call when the caller set none.
    pub default_timeout: Duration,
    /// Retries of an idempotent call answered `UNAVAILABLE`.
    pub retries: u32,
    /// Backoff before the first retry; doubles for each further one, with full jitter.
    pub retry_backoff: Duration,
    /// How often DNS names in `*_URL` are resolved again (new replicas join the balance).
    pub dns_refresh: Duration,
}

ktrdr_common::vars! {
    pub CALL_TIMEOUT = "GATEWAY_CALL_TIMEOUT_MS", Millis::new(30_000, 10, 24 * 3_600_000), "deadline of a unary backend call when the caller set none (a caller's deadline is passed on as is)";
    pub RETRIES = "GATEWAY_RETRIES", Int::new(3, 0, 10), "retries of an idempotent backend call answered UNAVAILABLE";
    pub RETRY_BACKOFF = "GATEWAY_RETRY_BACKOFF_MS", Millis::new(100, 1, 60_000), "pause before the first retry; doubles for each further one, with full jitter";
    pub DNS_REFRESH = "GATEWAY_DNS_REFRESH_MS", Millis::new(30_000, 100, 3_600_000), "how often host names in *_URL are resolved again, so new replicas (e.g. pods behind a headless Service) get calls";
}

impl Default for CallPolicy {
    /// The declared defaults of the variables.
    fn default() -> Self {
        let ms = |var: &Var<Millis>| Duration::from_millis(var.kind.default);
        Self {
            default_timeout: ms(&CALL_TIMEOUT),
            retries: u32::try_from(RETRIES.kind.default).unwrap_or(u32::MAX),
            retry_backoff: ms(&RETRY_BACKOFF),
            dns_refresh: ms(&DNS_REFRESH),
        }
    }
}

impl CallPolicy {
    pub fn vars() -> Vec<VarDoc> {
        vec![
            CALL_TIMEOUT.doc(),
            RETRIES.doc(),
            RETRY_BACKOFF.doc(),
            DNS_REFRESH.doc(),
        ]
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            default_timeout: env.read(&CALL_TIMEOUT)?,
            retries: u32::try_from(env.read(&RETRIES)?).unwrap_or(u32::MAX),
            retry_backoff: env.read(&RETRY_BACKOFF)?,
            dns_refresh: env.read(&DNS_REFRESH)?,
        })
    }
}

ktrdr_common::vars! {
    /// `KTRDR_AUTH_TOKEN`: when set, every public RPC but health needs it as a bearer token.
    pub AUTH_TOKEN_VAR = "KTRDR_AUTH_TOKEN", Optional("(unset: no auth)"), "when set, every RPC but health and reflection needs `authorization: Bearer <token>`; otherwise UNAUTHENTICATED";
}

/// Everything `ktrdr-gateway` reads.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub server: ServerConfig,
    pub routing: RoutingConfig,
    pub calls: CallPolicy,
    /// `KTRDR_AUTH_TOKEN`; `None` = no authentication.
    pub auth_token: Option<String>,
    /// Used when `USE_IB_HOST_SERVICE=false`.
    pub ib: IbConnectionConfig,
    /// Pacing and timeouts of the in-process IB host (`USE_IB_HOST_SERVICE=false`).
    pub ib_behaviour: IbBehaviour,
    /// Used when `USE_DATA_SERVICE=false`.
    pub store: StoreConfig,
    /// Used when `USE_TRAINING_HOST_SERVICE=false`.
    pub training: TrainingConfig,
}

impl GatewayConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, loopback(DEFAULT_PORT))?,
            routing: RoutingConfig::from_env(env)?,
            calls: CallPolicy::from_env(env)?,
            auth_token: env.read(&AUTH_TOKEN_VAR)?,
            ib: IbConnectionConfig::from_env(env)?,
            ib_behaviour: IbBehaviour::from_env(env)?,
            store: StoreConfig::from_env(env)?,
            training: TrainingConfig::from_env(env)?,
        })
    }

    /// The `--help` epilogue listing every variable.
    pub fn help() -> String {
        let mut vars = server_var_docs(loopback(DEFAULT_PORT));
        vars.extend(RoutingConfig::vars());
        vars.extend(CallPolicy::vars());
        vars.push(AUTH_TOKEN_VAR.doc());
        vars.extend(IbConnectionConfig::vars());
        vars.extend(IbBehaviour::vars());
        vars.extend(StoreConfig::vars());
        vars.extend(TrainingConfig::vars());
        env_help(&vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_every_capability_runs_in_its_host_service() {
        let config = GatewayConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config.server.listen_addr, loopback(50051));
        let r = &config.routing;
        assert!(r.ib.use_host_service && r.data.use_host_service && r.training.use_host_service);
        assert_eq!(r.ib.urls, ["http://localhost:50052"]);
        assert_eq!(r.data.urls, ["http://localhost:50054"]);
        assert_eq!(r.training.urls, ["http://localhost:50053"]);
    }

    #[test]
    fn each_route_reads_its_own_variables() {
        let env = Env::from_pairs([
            ("USE_IB_HOST_SERVICE", "false"),
            ("IB_HOST_SERVICE_URL", "http://ib:1"),
            ("USE_DATA_SERVICE", "0"),
            ("DATA_SERVICE_URL", "http://data:2"),
            ("USE_TRAINING_HOST_SERVICE", "no"),
            ("TRAINING_HOST_SERVICE_URL", "http://t1:3,http://t2:3"),
        ]);
        let r = RoutingConfig::from_env(&env).unwrap();
        assert_eq!(
            r.ib,
            Route {
                use_host_service: false,
                urls: vec!["http://ib:1".into()]
            }
        );
        assert_eq!(r.data.urls, ["http://data:2"]);
        assert!(!r.data.use_host_service);
        assert_eq!(r.training.urls, ["http://t1:3", "http://t2:3"]);
        assert!(!r.training.use_host_service);
    }

    #[test]
    fn a_bad_routing_value_names_its_variable() {
        for (var, bad) in [
            ("USE_IB_HOST_SERVICE", "sometimes"),
            ("USE_DATA_SERVICE", "2"),
            ("USE_TRAINING_HOST_SERVICE", "y"),
            ("IB_HOST_SERVICE_URL", "ib-host"),
            ("DATA_SERVICE_URL", "tcp://data:50054"),
            ("TRAINING_HOST_SERVICE_URL", "http://a:1,,b"),
        ] {
            let err = GatewayConfig::from_env(&Env::from_pairs([(var, bad)])).unwrap_err();
            assert_eq!(err.variable, var, "{bad}");
        }
    }

    #[test]
    fn in_process_settings_are_read_too() {
        let env = Env::from_pairs([
            ("IB_PORT", "7497"),
            ("KTRDR_DATA_DIR", "/d"),
            ("KTRDR_MODELS_DIR", "/m"),
        ]);
        let config = GatewayConfig::from_env(&env).unwrap();
        assert_eq!(config.ib.port, 7497);
        assert_eq!(config.store.data_dir, std::path::PathBuf::from("/d"));
        assert_eq!(config.training.models_dir, std::path::PathBuf::from("/m"));
    }

    #[test]
    fn help_lists_the_routing_variables() {
        let help = GatewayConfig::help();
        for var in [
            "USE_IB_HOST_SERVICE",
            "TRAINING_HOST_SERVICE_URL",
            "KTRDR_DATA_DIR",
            "IB_CLIENT_ID",
        ] {
            assert!(help.contains(var), "{var}");
        }
    }
}
