//! Configuration of the TWS simulator, read once from the environment.

use std::net::SocketAddr;

use ktrdr_common::config::{
    ConfigError, Env, ServerConfig, VarDoc, env_help, loopback, server_var_docs,
};

use std::time::Duration;

use crate::state::{Fault, FaultAction, Rules, SimSettings};

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

fn fault(
    kind: &'static str,
    description: String,
    action: FaultAction,
    remaining: i32,
    fraction: Option<f64>,
) -> Fault {
    Fault {
        id: String::new(),
        kind,
        description,
        action,
        remaining,
        request_kind: None,
        symbol: String::new(),
        created_at_ms: 0,
        fraction,
        seen: 0,
    }
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
        let mut startup_faults = vec![];
        let fail_code = env.u64_in("IB_SIM_FAIL_CODE", 0, 0, 10_000)?;
        let fail_fraction = float_in(env, "IB_SIM_FAIL_FRACTION", 0.0, 0.0, 1.0)?;
        if fail_code > 0 {
            let code = i32::try_from(fail_code).unwrap_or(162);
            startup_faults.push(fault(
                "fail_next_requests",
                format!(
                    "fail {:.0} % of requests with {code} (flags)",
                    fail_fraction * 100.0
                ),
                FaultAction::Fail {
                    code,
                    message: crate::session::standard_message(code),
                },
                -1,
                (fail_fraction > 0.0 && fail_fraction < 1.0).then_some(fail_fraction),
            ));
        }
        let delay = env.millis(
            "IB_SIM_REPLY_DELAY_MS",
            Duration::ZERO,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
        if !delay.is_zero() {
            startup_faults.push(fault(
                "delay_replies",
                format!("delay every reply by {} ms (flags)", delay.as_millis()),
                FaultAction::Delay(delay),
                -1,
                None,
            ));
        }
        let drop_after = env.u64_in("IB_SIM_DROP_AFTER_REQUESTS", 0, 0, 1_000_000)?;
        if drop_after > 0 {
            startup_faults.push(fault(
                "drop_connections",
                format!("drop connections at request {drop_after} (flags)"),
                FaultAction::DropAfter {
                    client_ids: vec![],
                    refuse_reconnect: Duration::ZERO,
                },
                i32::try_from(drop_after).unwrap_or(i32::MAX),
                None,
            ));
        }
        Ok(Self {
            server: ServerConfig::from_env(env, loopback(DEFAULT_PORT))?,
            tws_addr: env.socket_addr("IB_SIM_ADDR", loopback(4002))?,
            settings: SimSettings {
                server_version: i32::try_from(version).unwrap_or(213),
                rules,
                pacing_scale: float_in(env, "IB_SIM_PACING_SCALE", 1.0, 0.0001, 100.0)?,
                startup_faults,
                replay_dir: env
                    .get("IB_SIM_REPLAY_DIR")
                    .filter(|d| !d.trim().is_empty())
                    .map(std::path::PathBuf::from),
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
                name: "IB_SIM_FAIL_CODE",
                default: "0",
                meaning: "answer requests with this IB error code (0 = off), e.g. 162; see IB_SIM_FAIL_FRACTION",
            },
            VarDoc {
                name: "IB_SIM_FAIL_FRACTION",
                default: "0",
                meaning: "fraction of requests failed with IB_SIM_FAIL_CODE (0 or 1 = all)",
            },
            VarDoc {
                name: "IB_SIM_REPLY_DELAY_MS",
                default: "0",
                meaning: "delay every reply by this many milliseconds",
            },
            VarDoc {
                name: "IB_SIM_DROP_AFTER_REQUESTS",
                default: "0",
                meaning: "drop every client connection when this request arrives (0 = never)",
            },
            VarDoc {
                name: "IB_SIM_REPLAY_DIR",
                default: "",
                meaning: "replay bars from <SYMBOL>_<tf>.csv files here (original ktrdr format) instead of generating them",
            },
            VarDoc {
                name: "IB_SIM_SERVER_VERSION",
                default: "213",
                meaning: "highest TWS server version the sim negotiates; a client gets min(this, its own highest) (ibapi 5.x needs >= 213, classic clients such as ib_async get their own highest)",
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
        assert!(c.settings.startup_faults.is_empty());
        let env = Env::from_pairs([
            ("IB_SIM_FAIL_CODE", "162"),
            ("IB_SIM_FAIL_FRACTION", "0.25"),
            ("IB_SIM_REPLY_DELAY_MS", "50"),
            ("IB_SIM_DROP_AFTER_REQUESTS", "10"),
        ]);
        let kinds: Vec<_> = IbSimConfig::from_env(&env)
            .unwrap()
            .settings
            .startup_faults
            .iter()
            .map(|f| (f.kind, f.remaining, f.fraction))
            .collect();
        assert_eq!(
            kinds,
            [
                ("fail_next_requests", -1, Some(0.25)),
                ("delay_replies", -1, None),
                ("drop_connections", 10, None)
            ]
        );
        for bad in ["0", "fast", "-1"] {
            let err = IbSimConfig::from_env(&Env::from_pairs([("IB_SIM_PACING_SCALE", bad)]))
                .unwrap_err();
            assert_eq!(err.variable, "IB_SIM_PACING_SCALE");
        }
    }
}
