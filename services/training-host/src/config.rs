//! Configuration of the training host, read once from the environment.

use std::path::PathBuf;

use ktrdr_common::config::{
    ConfigError, Env, ServerConfig, VarDoc, env_help, loopback, server_var_docs,
};

/// Default gRPC port of `ktrdr-training-host`.
pub const DEFAULT_PORT: u16 = 50053;

/// What training needs wherever it runs (host service or in the gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingConfig {
    /// `KTRDR_MODELS_DIR`: saved models, checkpoints and session records.
    pub models_dir: PathBuf,
    /// `KTRDR_STRATEGIES_DIR`: where strategies named by `strategy_name` are found.
    pub strategies_dir: PathBuf,
    /// `KTRDR_MAX_CONCURRENT_TRAININGS`: sessions that run at once; the rest queue.
    pub max_concurrent_sessions: usize,
}

impl TrainingConfig {
    pub const VARS: &[VarDoc] = &[
        VarDoc {
            name: "KTRDR_MODELS_DIR",
            default: "./models",
            meaning: "directory of saved models, checkpoints and session records",
        },
        VarDoc {
            name: "KTRDR_STRATEGIES_DIR",
            default: "./strategies",
            meaning: "directory of strategy YAML files that can be named in StartTraining",
        },
        VarDoc {
            name: "KTRDR_MAX_CONCURRENT_TRAININGS",
            default: "4",
            meaning: "training sessions run at once (1-256); more are queued",
        },
    ];

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let max = env.u64_in("KTRDR_MAX_CONCURRENT_TRAININGS", 4, 1, 256)?;
        Ok(Self {
            models_dir: env.path("KTRDR_MODELS_DIR", "./models"),
            strategies_dir: env.path("KTRDR_STRATEGIES_DIR", "./strategies"),
            max_concurrent_sessions: usize::try_from(max).unwrap_or(4),
        })
    }
}

/// Everything `ktrdr-training-host` reads.
#[derive(Debug, Clone)]
pub struct TrainingHostConfig {
    pub server: ServerConfig,
    pub training: TrainingConfig,
    /// `DATA_SERVICE_URL`: where training bars are streamed from.
    pub data_service_urls: Vec<String>,
}

impl TrainingHostConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, loopback(DEFAULT_PORT))?,
            training: TrainingConfig::from_env(env)?,
            data_service_urls: env.url_list("DATA_SERVICE_URL", "http://localhost:50054")?,
        })
    }

    /// The `--help` epilogue listing every variable.
    pub fn help() -> String {
        let mut vars = server_var_docs("127.0.0.1:50053");
        vars.extend_from_slice(TrainingConfig::VARS);
        vars.push(VarDoc {
            name: "DATA_SERVICE_URL",
            default: "http://localhost:50054",
            meaning: "the data service that training bars are read from",
        });
        env_help(&vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = TrainingHostConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config.server.listen_addr, loopback(50053));
        assert_eq!(config.training.models_dir, PathBuf::from("./models"));
        assert_eq!(
            config.training.strategies_dir,
            PathBuf::from("./strategies")
        );
        assert_eq!(config.training.max_concurrent_sessions, 4);
        assert_eq!(config.data_service_urls, ["http://localhost:50054"]);
    }

    #[test]
    fn reads_every_variable() {
        let env = Env::from_pairs([
            ("KTRDR_MODELS_DIR", "/models"),
            ("KTRDR_STRATEGIES_DIR", "/strategies"),
            ("KTRDR_MAX_CONCURRENT_TRAININGS", "16"),
            (
                "DATA_SERVICE_URL",
                "http://data-0:50054,http://data-1:50054",
            ),
        ]);
        let config = TrainingHostConfig::from_env(&env).unwrap();
        assert_eq!(config.training.models_dir, PathBuf::from("/models"));
        assert_eq!(config.training.strategies_dir, PathBuf::from("/strategies"));
        assert_eq!(config.training.max_concurrent_sessions, 16);
        assert_eq!(config.data_service_urls.len(), 2);
    }

    #[test]
    fn rejects_bad_values_by_name() {
        for (var, bad) in [
            ("KTRDR_MAX_CONCURRENT_TRAININGS", "0"),
            ("KTRDR_MAX_CONCURRENT_TRAININGS", "many"),
            ("DATA_SERVICE_URL", "data:50054"),
        ] {
            let err = TrainingHostConfig::from_env(&Env::from_pairs([(var, bad)])).unwrap_err();
            assert_eq!(err.variable, var);
        }
    }
}
