//! Configuration of the IB host, read once from the environment.

use ktrdr_common::config::{
    ConfigError, Env, ServerConfig, VarDoc, env_help, loopback, server_var_docs,
};

/// Default gRPC port of `ktrdr-ib-host`.
pub const DEFAULT_PORT: u16 = 50052;

/// Where IB Gateway / TWS (or ib-sim) listens and who we are to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IbConnectionConfig {
    /// `IB_HOST`
    pub host: String,
    /// `IB_PORT`: 4002 is IB Gateway's paper-trading port (and ib-sim's default).
    pub port: u16,
    /// `IB_CLIENT_ID`: must be unique among the API clients of one IB Gateway.
    pub client_id: i32,
}

impl IbConnectionConfig {
    pub const VARS: &[VarDoc] = &[
        VarDoc {
            name: "IB_HOST",
            default: "127.0.0.1",
            meaning: "host of IB Gateway / TWS (or ktrdr-ib-sim)",
        },
        VarDoc {
            name: "IB_PORT",
            default: "4002",
            meaning: "TWS API port (4001/4002 IB Gateway live/paper, 7496/7497 TWS)",
        },
        VarDoc {
            name: "IB_CLIENT_ID",
            default: "1",
            meaning: "TWS API client id, unique per IB Gateway",
        },
    ];

    /// Reads the IB variables; the gateway uses this too when it talks to IB in-process.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let port = env.u64_in("IB_PORT", 4002, 1, u64::from(u16::MAX))?;
        let client_id = env.u64_in("IB_CLIENT_ID", 1, 0, i32::MAX as u64)?;
        Ok(Self {
            host: env.string("IB_HOST", "127.0.0.1"),
            port: u16::try_from(port).unwrap_or(4002),
            client_id: i32::try_from(client_id).unwrap_or(1),
        })
    }

    /// `host:port` as the TWS API client expects it.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Everything `ktrdr-ib-host` reads.
#[derive(Debug, Clone)]
pub struct IbHostConfig {
    pub server: ServerConfig,
    pub ib: IbConnectionConfig,
}

impl IbHostConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, loopback(DEFAULT_PORT))?,
            ib: IbConnectionConfig::from_env(env)?,
        })
    }

    /// The `--help` epilogue listing every variable.
    pub fn help() -> String {
        let mut vars = server_var_docs("127.0.0.1:50052");
        vars.extend_from_slice(IbConnectionConfig::VARS);
        env_help(&vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_point_at_a_local_paper_gateway() {
        let config = IbHostConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config.server.listen_addr, loopback(50052));
        assert_eq!(config.ib.address(), "127.0.0.1:4002");
        assert_eq!(config.ib.client_id, 1);
    }

    #[test]
    fn reads_every_ib_variable() {
        let env = Env::from_pairs([
            ("IB_HOST", "::1"),
            ("IB_PORT", "7497"),
            ("IB_CLIENT_ID", "17"),
        ]);
        let ib = IbConnectionConfig::from_env(&env).unwrap();
        assert_eq!(ib.address(), "[::1]:7497");
        assert_eq!(ib.client_id, 17);
    }

    #[test]
    fn rejects_bad_ports_and_client_ids_by_name() {
        for (var, bad) in [
            ("IB_PORT", "0"),
            ("IB_PORT", "70000"),
            ("IB_PORT", "gateway"),
            ("IB_CLIENT_ID", "-3"),
            ("IB_CLIENT_ID", "4294967296"),
        ] {
            let err = IbConnectionConfig::from_env(&Env::from_pairs([(var, bad)])).unwrap_err();
            assert_eq!((err.variable.as_str(), err.value.as_str()), (var, bad));
        }
    }
}
