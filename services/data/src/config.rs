//! Configuration of the data service, read once from the environment.

use std::path::PathBuf;

use ktrdr_common::config::{
    ConfigError, Env, ServerConfig, VarDoc, env_help, loopback, server_var_docs,
};

/// Default gRPC port of `ktrdr-data`.
pub const DEFAULT_PORT: u16 = 50054;

/// Where the store keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `KTRDR_DATA_DIR`: root of the Parquet datasets.
    pub data_dir: PathBuf,
}

ktrdr_common::vars! {
    pub DATA_DIR = "KTRDR_DATA_DIR", FsPath("./data"), "directory of the market-data store";
}

impl StoreConfig {
    pub fn vars() -> Vec<VarDoc> {
        vec![DATA_DIR.doc()]
    }

    /// Reads the store variables; the gateway uses this too when it runs the store in-process.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            data_dir: env.read(&DATA_DIR)?,
        })
    }
}

/// Everything `ktrdr-data` reads.
#[derive(Debug, Clone)]
pub struct DataConfig {
    pub server: ServerConfig,
    pub store: StoreConfig,
}

impl DataConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, loopback(DEFAULT_PORT))?,
            store: StoreConfig::from_env(env)?,
        })
    }

    /// The `--help` epilogue listing every variable.
    pub fn help() -> String {
        let mut vars = server_var_docs(loopback(DEFAULT_PORT));
        vars.extend(StoreConfig::vars());
        env_help(&vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = DataConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config.server.listen_addr, loopback(50054));
        assert_eq!(config.store.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn reads_the_data_dir() {
        let env = Env::from_pairs([("KTRDR_DATA_DIR", "/var/lib/ktrdr/data")]);
        assert_eq!(
            DataConfig::from_env(&env).unwrap().store.data_dir,
            PathBuf::from("/var/lib/ktrdr/data")
        );
    }

    #[test]
    fn a_bad_listen_address_is_an_error() {
        let env = Env::from_pairs([("KTRDR_LISTEN_ADDR", "50054")]);
        assert_eq!(
            DataConfig::from_env(&env).unwrap_err().variable,
            "KTRDR_LISTEN_ADDR"
        );
    }

    #[test]
    fn help_names_every_variable() {
        let help = DataConfig::help();
        for var in ["KTRDR_LISTEN_ADDR", "KTRDR_DATA_DIR", "RUST_LOG"] {
            assert!(help.contains(var), "{var}");
        }
    }
}
