//! Configuration of the TWS simulator, read once from the environment.

use std::net::SocketAddr;

use ktrdr_common::config::{
    ConfigError, Env, ServerConfig, VarDoc, env_help, loopback, server_var_docs,
};

use crate::state::{Rules, SimSettings};

/// Default port of ib-sim's gRPC control API.
pub const DEFAULT_PORT: u16 = 50055;

/// Everything `ktrdr-ib-sim` reads.
#[derive(Debug, Clone)]
pub struct IbSimConfig {
    /// The control API (health, reflection, `IbSimService`).
    pub server: ServerConfig,
    /// `IB_SIM_ADDR`: where TWS API clients connect.
    pub tws_addr: SocketAddr,
    /// Server version, rules and pacing windows.
    pub settings: SimSettings,
}

/// A positive float within `min..=max`.
pub fn float_in(
    env: &Env,
    name: &str,
    default: f64,
    min: f64,
    max: f64,
) -> Result<f64, ConfigError> {
    let Some(raw) = env.get(name) else {
        return Ok(default);
    };
    raw.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && (min..=max).contains(x))
        .ok_or_else(|| ConfigError::new(name, raw, format!("a number from {min} to {max}")))
}

impl IbSimConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let pacing = env.bool("IB_SIM_PACING", true)?;
        let mut rules = Rules::all(true);
        rules.pacing.identical_15s = pacing;
        rules.pacing.same_contract_2s = pacing;
        rules.pacing.per_10min_60 = pacing;
        rules.pacing.max_open_50 = pacing;
        rules.legal_durations = env.bool("IB_SIM_LEGAL_DURATIONS", true)?;
        rules.client_id_in_use = env.bool("IB_SIM_CLIENT_ID_CHECK", true)?;
        let version = env.u64_in("IB_SIM_SERVER_VERSION", 213, 100, 300)?;
        Ok(Self {
            server: ServerConfig::from_env(env, loopback(DEFAULT_PORT))?,
            tws_addr: env.socket_addr("IB_SIM_ADDR", loopback(4002))?,
            settings: SimSettings {
                server_version: i32::try_from(version).unwrap_or(213),
                rules,
                pacing_scale: float_in(env, "IB_SIM_PACING_SCALE", 1.0, 0.0001, 100.0)?,
            },
        })
    }

    /// The `--help` epilogue listing every variable.
    pub fn help() -> String {
        let mut vars = server_var_docs("127.0.0.1:50055");
        vars.extend_from_slice(&[
            VarDoc {
                name: "IB_SIM_ADDR",
                default: "127.0.0.1:4002",
                meaning: "where TWS API clients (ib-host, ibapi) connect; port 0 picks a free port (see GetSimStatus)",
            },
            VarDoc {
                name: "IB_SIM_PACING",
                default: "true",
                meaning: "enforce IB's historical pacing rules (error 162); also switchable at run time (SetRules)",
            },
            VarDoc {
                name: "IB_SIM_PACING_SCALE",
                default: "1.0",
                meaning: "multiplies IB's pacing windows (15 s, 2 s, 10 min); e.g. 0.01 for fast tests",
            },
            VarDoc {
                name: "IB_SIM_LEGAL_DURATIONS",
                default: "true",
                meaning: "refuse (duration, bar size) pairs IB does not allow (162/321)",
            },
            VarDoc {
                name: "IB_SIM_CLIENT_ID_CHECK",
                default: "true",
                meaning: "refuse a second connection with a client id in use (326)",
            },
            VarDoc {
                name: "IB_SIM_SERVER_VERSION",
                default: "213",
                meaning: "TWS server version announced at the handshake (ibapi 5.x needs >= 213)",
            },
        ]);
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
        assert_eq!(config.settings.server_version, 213);
        assert_eq!(config.settings.rules, Rules::all(true));
        assert_eq!(config.settings.pacing_scale, 1.0);
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

    #[test]
    fn reads_rules_and_pacing_scale() {
        let env = Env::from_pairs([
            ("IB_SIM_PACING", "false"),
            ("IB_SIM_PACING_SCALE", "0.01"),
            ("IB_SIM_CLIENT_ID_CHECK", "no"),
        ]);
        let c = IbSimConfig::from_env(&env).unwrap();
        assert!(!c.settings.rules.pacing.identical_15s && !c.settings.rules.client_id_in_use);
        assert!(c.settings.rules.legal_durations);
        assert_eq!(c.settings.pacing_scale, 0.01);
        for bad in ["0", "fast", "-1"] {
            let err = IbSimConfig::from_env(&Env::from_pairs([("IB_SIM_PACING_SCALE", bad)]))
                .unwrap_err();
            assert_eq!(err.variable, "IB_SIM_PACING_SCALE");
        }
    }
}
