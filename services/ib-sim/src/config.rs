//! Configuration of the TWS simulator, read once from the environment.

use std::net::SocketAddr;

use ktrdr_common::config::{
    ConfigError, Env, ServerConfig, VarDoc, env_help, loopback, server_var_docs,
};

/// Default port of ib-sim's gRPC control API.
pub const DEFAULT_PORT: u16 = 50055;

/// Everything `ktrdr-ib-sim` reads.
#[derive(Debug, Clone)]
pub struct IbSimConfig {
    /// The control API (health, reflection, `IbSimService`).
    pub server: ServerConfig,
    /// `IB_SIM_ADDR`: where TWS API clients connect.
    pub tws_addr: SocketAddr,
}

impl IbSimConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, loopback(DEFAULT_PORT))?,
            tws_addr: env.socket_addr("IB_SIM_ADDR", loopback(4002))?,
        })
    }

    /// The `--help` epilogue listing every variable.
    pub fn help() -> String {
        let mut vars = server_var_docs("127.0.0.1:50055");
        vars.push(VarDoc {
            name: "IB_SIM_ADDR",
            default: "127.0.0.1:4002",
            meaning: "where TWS API clients (ib-host, ibapi) connect",
        });
        env_help(&vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_ib_gateway_paper_port() {
        let config = IbSimConfig::from_env(&Env::default()).unwrap();
        assert_eq!(config.server.listen_addr, loopback(50055));
        assert_eq!(config.tws_addr, loopback(4002));
    }

    #[test]
    fn reads_and_checks_the_tws_address() {
        let env = Env::from_pairs([("IB_SIM_ADDR", "0.0.0.0:7497")]);
        assert_eq!(
            IbSimConfig::from_env(&env).unwrap().tws_addr,
            "0.0.0.0:7497".parse().unwrap()
        );
        let err = IbSimConfig::from_env(&Env::from_pairs([("IB_SIM_ADDR", "4002")])).unwrap_err();
        assert_eq!(err.variable, "IB_SIM_ADDR");
    }
}
