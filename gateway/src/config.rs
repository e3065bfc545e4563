//! Configuration of the gateway: the routing table of ARCHITECTURE §2 plus what each capability
//! needs when it runs in-process.

use ktrdr_common::config::{
    ConfigError, Env, ServerConfig, VarDoc, env_help, loopback, server_var_docs,
};
use ktrdr_data::config::StoreConfig;
use ktrdr_ib_host::config::IbConnectionConfig;
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
    fn from_env(
        env: &Env,
        use_var: &str,
        url_var: &str,
        default_url: &str,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            use_host_service: env.bool(use_var, true)?,
            urls: env.url_list(url_var, default_url)?,
        })
    }
}

/// The routing table: which capabilities run in host services and where those are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    pub ib: Route,
    pub data: Route,
    pub training: Route,
}

impl RoutingConfig {
    pub const VARS: &[VarDoc] = &[
        VarDoc {
            name: "USE_IB_HOST_SERVICE",
            default: "true",
            meaning: "true: reach IB through ktrdr-ib-host; false: the gateway connects to IB itself",
        },
        VarDoc {
            name: "IB_HOST_SERVICE_URL",
            default: "http://localhost:50052",
            meaning: "URL of ktrdr-ib-host",
        },
        VarDoc {
            name: "USE_DATA_SERVICE",
            default: "true",
            meaning: "true: use ktrdr-data; false: the gateway opens the store itself",
        },
        VarDoc {
            name: "DATA_SERVICE_URL",
            default: "http://localhost:50054",
            meaning: "URL of ktrdr-data",
        },
        VarDoc {
            name: "USE_TRAINING_HOST_SERVICE",
            default: "true",
            meaning: "true: train on ktrdr-training-host; false: train in the gateway (CPU)",
        },
        VarDoc {
            name: "TRAINING_HOST_SERVICE_URL",
            default: "http://localhost:50053",
            meaning: "URL(s) of ktrdr-training-host: one, a comma list, or a DNS name",
        },
    ];

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            ib: Route::from_env(
                env,
                "USE_IB_HOST_SERVICE",
                "IB_HOST_SERVICE_URL",
                "http://localhost:50052",
            )?,
            data: Route::from_env(
                env,
                "USE_DATA_SERVICE",
                "DATA_SERVICE_URL",
                "http://localhost:50054",
            )?,
            training: Route::from_env(
                env,
                "USE_TRAINING_HOST_SERVICE",
                "TRAINING_HOST_SERVICE_URL",
                "http://localhost:50053",
            )?,
        })
    }
}

/// Everything `ktrdr-gateway` reads.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub server: ServerConfig,
    pub routing: RoutingConfig,
    /// Used when `USE_IB_HOST_SERVICE=false`.
    pub ib: IbConnectionConfig,
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
            ib: IbConnectionConfig::from_env(env)?,
            store: StoreConfig::from_env(env)?,
            training: TrainingConfig::from_env(env)?,
        })
    }

    /// The `--help` epilogue listing every variable.
    pub fn help() -> String {
        let mut vars = server_var_docs("127.0.0.1:50051");
        vars.extend_from_slice(RoutingConfig::VARS);
        vars.extend_from_slice(IbConnectionConfig::VARS);
        vars.extend_from_slice(StoreConfig::VARS);
        vars.extend_from_slice(TrainingConfig::VARS);
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
