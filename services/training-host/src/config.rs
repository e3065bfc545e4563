//! Configuration of the training host, read once from the environment.

use std::path::PathBuf;

use ktrdr_common::config::{
    ConfigError, Env, ServerConfig, VarDoc, env_help, loopback, server_var_docs,
};

use ktrdr_common::config::Var;

use crate::device::{DeviceChoice, HostDevice};

/// Default gRPC port of `ktrdr-training-host`.
pub const DEFAULT_PORT: u16 = 50053;

/// What training needs wherever it runs (host service or in the gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingConfig {
    /// `KTRDR_MODELS_DIR`: saved models (the registry). Several hosts may share it.
    pub models_dir: PathBuf,
    /// `KTRDR_SESSIONS_DIR`: this host's session records and checkpoints. Never shared: a host
    /// marks every unfinished session it finds here INTERRUPTED when it starts.
    pub sessions_dir: PathBuf,
    /// `KTRDR_STRATEGIES_DIR`: where strategies named by `strategy_name` are found.
    pub strategies_dir: PathBuf,
    /// `KTRDR_MAX_CONCURRENT_TRAININGS`: sessions that run at once; the rest queue.
    pub max_concurrent_sessions: usize,
    /// `KTRDR_TRAINING_DEVICE`, resolved on this machine: the devices sessions are placed on
    /// (never empty: the CPU alone, or GPUs).
    pub devices: Vec<HostDevice>,
    /// `KTRDR_TRAINING_SESSIONS_PER_DEVICE`: sessions one device runs at once; 0 = no limit
    /// but `max_concurrent_sessions`.
    pub sessions_per_device: usize,
}

ktrdr_common::vars! {
    pub MODELS_DIR = "KTRDR_MODELS_DIR", FsPath("./models"), "directory of saved models; hosts may share it";
    pub SESSIONS_DIR = "KTRDR_SESSIONS_DIR", Optional("<KTRDR_MODELS_DIR>/_sessions"), "this host's session records and checkpoints; one per host, never shared";
    pub STRATEGIES_DIR = "KTRDR_STRATEGIES_DIR", FsPath("./strategies"), "directory of strategy YAML files that can be named in StartTraining";
    pub MAX_CONCURRENT_TRAININGS = "KTRDR_MAX_CONCURRENT_TRAININGS", Int::new(4, 1, 256), "training sessions run at once; more are queued";
    pub SESSIONS_PER_DEVICE = "KTRDR_TRAINING_SESSIONS_PER_DEVICE", Int::new(0, 0, 256), "training sessions one device (the CPU, or each GPU) runs at once; 0: only KTRDR_MAX_CONCURRENT_TRAININGS limits";
    pub DATA_SERVICE_URL = "DATA_SERVICE_URL", Urls("http://localhost:50054"), "the data service that training bars are read from";
}

/// `KTRDR_TRAINING_DEVICE` (its own [`ktrdr_common::config::Kind`], so declared without
/// `vars!`); resolved on this machine by [`crate::device::resolve`].
pub const TRAINING_DEVICE: Var<DeviceChoice> = Var {
    name: "KTRDR_TRAINING_DEVICE",
    kind: DeviceChoice,
    meaning: "where sessions, evaluation, prediction and backtests compute: auto (CUDA when built \
              with it and a GPU answers, else the CPU), cpu, cuda (every GPU) or cuda:N[,M…]; \
              a device the host lacks stops it at start",
};

impl TrainingConfig {
    pub fn vars() -> Vec<VarDoc> {
        vec![
            MODELS_DIR.doc(),
            SESSIONS_DIR.doc(),
            STRATEGIES_DIR.doc(),
            MAX_CONCURRENT_TRAININGS.doc(),
            TRAINING_DEVICE.doc(),
            SESSIONS_PER_DEVICE.doc(),
        ]
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let max = env.read(&MAX_CONCURRENT_TRAININGS)?;
        let models_dir = env.read(&MODELS_DIR)?;
        let sessions_dir = match env.read(&SESSIONS_DIR)? {
            // Kubernetes leaves `$(POD_NAME)` as it is when POD_NAME is not defined before it;
            // every pod would then share that one literal directory, which is the very clash
            // this setting exists to avoid.
            Some(raw) if raw.contains("$(") => {
                return Err(ConfigError::new(
                    SESSIONS_DIR.name,
                    &raw,
                    "a path without an unexpanded $(VAR) (define the variable before it)",
                ));
            }
            Some(raw) => PathBuf::from(raw),
            None => models_dir.join(crate::persist::SESSIONS_DIR),
        };
        Ok(Self {
            models_dir,
            sessions_dir,
            strategies_dir: env.read(&STRATEGIES_DIR)?,
            max_concurrent_sessions: usize::try_from(max).unwrap_or(usize::MAX),
            devices: crate::device::resolve_or_config_error(
                TRAINING_DEVICE.name,
                &env.read(&TRAINING_DEVICE)?,
                HostDevice::cpu(),
                crate::device::probe_cuda(),
            )?,
            sessions_per_device: usize::try_from(env.read(&SESSIONS_PER_DEVICE)?)
                .unwrap_or(usize::MAX),
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
            data_service_urls: env.read(&DATA_SERVICE_URL)?,
        })
    }

    /// The `--help` epilogue listing every variable.
    pub fn help() -> String {
        let mut vars = server_var_docs(loopback(DEFAULT_PORT));
        vars.extend(TrainingConfig::vars());
        vars.push(DATA_SERVICE_URL.doc());
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
            config.training.sessions_dir,
            PathBuf::from("./models/_sessions")
        );
        assert_eq!(
            config.training.strategies_dir,
            PathBuf::from("./strategies")
        );
        assert_eq!(config.training.max_concurrent_sessions, 4);
        assert_eq!(config.training.sessions_per_device, 0);
        assert!(!config.training.devices.is_empty());
        assert_eq!(config.data_service_urls, ["http://localhost:50054"]);
    }

    #[test]
    fn reads_every_variable() {
        let env = Env::from_pairs([
            ("KTRDR_MODELS_DIR", "/models"),
            ("KTRDR_SESSIONS_DIR", "/models/_sessions/host-1"),
            ("KTRDR_STRATEGIES_DIR", "/strategies"),
            ("KTRDR_MAX_CONCURRENT_TRAININGS", "16"),
            ("KTRDR_TRAINING_DEVICE", "cpu"),
            ("KTRDR_TRAINING_SESSIONS_PER_DEVICE", "3"),
            (
                "DATA_SERVICE_URL",
                "http://data-0:50054,http://data-1:50054",
            ),
        ]);
        let config = TrainingHostConfig::from_env(&env).unwrap();
        assert_eq!(config.training.models_dir, PathBuf::from("/models"));
        assert_eq!(
            config.training.sessions_dir,
            PathBuf::from("/models/_sessions/host-1")
        );
        assert_eq!(config.training.strategies_dir, PathBuf::from("/strategies"));
        assert_eq!(config.training.max_concurrent_sessions, 16);
        assert_eq!(config.training.devices, [HostDevice::cpu()]);
        assert_eq!(config.training.sessions_per_device, 3);
        assert_eq!(config.data_service_urls.len(), 2);
    }

    #[test]
    fn sessions_follow_the_models_dir_unless_set() {
        let only_models = Env::from_pairs([("KTRDR_MODELS_DIR", "/shared/models")]);
        let config = TrainingConfig::from_env(&only_models).unwrap();
        assert_eq!(
            config.sessions_dir,
            PathBuf::from("/shared/models/_sessions")
        );
        // Blank is unset, as for every variable.
        let blank = Env::from_pairs([("KTRDR_MODELS_DIR", "/m"), ("KTRDR_SESSIONS_DIR", " ")]);
        assert_eq!(
            TrainingConfig::from_env(&blank).unwrap().sessions_dir,
            PathBuf::from("/m/_sessions")
        );
        // Anywhere, not only under the models directory.
        let elsewhere = Env::from_pairs([
            ("KTRDR_MODELS_DIR", "/shared/models"),
            ("KTRDR_SESSIONS_DIR", "/var/lib/host-a"),
        ]);
        let config = TrainingConfig::from_env(&elsewhere).unwrap();
        assert_eq!(config.models_dir, PathBuf::from("/shared/models"));
        assert_eq!(config.sessions_dir, PathBuf::from("/var/lib/host-a"));
    }

    #[test]
    fn help_documents_the_sessions_dir() {
        let help = TrainingHostConfig::help();
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with("KTRDR_SESSIONS_DIR"))
            .expect("KTRDR_SESSIONS_DIR in --help");
        assert!(
            line.contains("[default: <KTRDR_MODELS_DIR>/_sessions]"),
            "{line}"
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_in_a_build_without_it_is_an_error_naming_the_variable_and_what_the_host_has() {
        for asked in ["cuda", "cuda:0"] {
            let env = Env::from_pairs([("KTRDR_TRAINING_DEVICE", asked)]);
            let err = TrainingConfig::from_env(&env).unwrap_err();
            assert_eq!(err.variable, "KTRDR_TRAINING_DEVICE");
            assert!(err.expected.contains("this host has cpu"), "{err}");
        }
        // auto falls back to the CPU.
        let env = Env::from_pairs([("KTRDR_TRAINING_DEVICE", "auto")]);
        let config = TrainingConfig::from_env(&env).unwrap();
        assert_eq!(config.devices, [HostDevice::cpu()]);
    }

    #[test]
    fn rejects_bad_values_by_name() {
        for (var, bad) in [
            ("KTRDR_MAX_CONCURRENT_TRAININGS", "0"),
            ("KTRDR_MAX_CONCURRENT_TRAININGS", "many"),
            ("DATA_SERVICE_URL", "data:50054"),
            ("KTRDR_SESSIONS_DIR", "/models/_sessions/$(POD_NAME)"),
            ("KTRDR_TRAINING_DEVICE", "gpu"),
            ("KTRDR_TRAINING_SESSIONS_PER_DEVICE", "1000"),
        ] {
            let err = TrainingHostConfig::from_env(&Env::from_pairs([(var, bad)])).unwrap_err();
            assert_eq!(err.variable, var);
        }
    }
}
