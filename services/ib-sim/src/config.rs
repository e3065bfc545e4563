//! Configuration of the TWS simulator, read once from the environment.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use ktrdr_common::config::{ConfigError, Env, ServerConfig, env_help, loopback, server_var_docs};

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

ktrdr_common::vars! {
    pub TWS_ADDR = "IB_SIM_ADDR", Addr(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4002))), "where TWS API clients (ib-host, ibapi) connect; port 0 picks a free port (see GetSimStatus)";
    pub PACING = "IB_SIM_PACING", Flag(true), "enforce IB's historical pacing rules (error 162); also switchable at run time (SetRules)";
    pub PACING_SCALE = "IB_SIM_PACING_SCALE", Float::new(1.0, 0.0001, 100.0), "multiplies IB's pacing windows (15 s, 2 s, 10 min); e.g. 0.01 for fast tests";
    pub LEGAL_DURATIONS = "IB_SIM_LEGAL_DURATIONS", Flag(true), "refuse (duration, bar size) pairs IB does not allow (162/321)";
    pub CLIENT_ID_CHECK = "IB_SIM_CLIENT_ID_CHECK", Flag(true), "refuse a second connection with a client id in use (326)";
    pub FAIL_CODE = "IB_SIM_FAIL_CODE", Int::new(0, 0, 10_000), "answer requests with this IB error code (0 = off), e.g. 162; see IB_SIM_FAIL_FRACTION";
    pub FAIL_FRACTION = "IB_SIM_FAIL_FRACTION", Float::new(0.0, 0.0, 1.0), "fraction of requests failed with IB_SIM_FAIL_CODE (0 or 1 = all)";
    pub REPLY_DELAY = "IB_SIM_REPLY_DELAY_MS", Millis::new(0, 0, 3_600_000), "delay every reply by this many milliseconds";
    pub DROP_AFTER_REQUESTS = "IB_SIM_DROP_AFTER_REQUESTS", Int::new(0, 0, 1_000_000), "drop every client connection when this request arrives (0 = never)";
    pub REPLAY_DIR = "IB_SIM_REPLAY_DIR", Optional(""), "replay bars from <SYMBOL>_<tf>.csv files here (original ktrdr format) instead of generating them";
    pub SERVER_VERSION = "IB_SIM_SERVER_VERSION", Int::new(213, 100, 300), "highest TWS server version the sim negotiates; a client gets min(this, its own highest) (ibapi 5.x needs >= 213, classic clients such as ib_async get their own highest)";
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
        let pacing = env.read(&PACING)?;
        let mut rules = Rules::all(true);
        rules.pacing.identical_15s = pacing;
        rules.pacing.same_contract_2s = pacing;
        rules.pacing.per_10min_60 = pacing;
        rules.pacing.max_open_50 = pacing;
        rules.legal_durations = env.read(&LEGAL_DURATIONS)?;
        rules.client_id_in_use = env.read(&CLIENT_ID_CHECK)?;
        let version = env.read(&SERVER_VERSION)?;
        let mut startup_faults = vec![];
        let fail_code = env.read(&FAIL_CODE)?;
        let fail_fraction = env.read(&FAIL_FRACTION)?;
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
        let delay = env.read(&REPLY_DELAY)?;
        if !delay.is_zero() {
            startup_faults.push(fault(
                "delay_replies",
                format!("delay every reply by {} ms (flags)", delay.as_millis()),
                FaultAction::Delay(delay),
                -1,
                None,
            ));
        }
        let drop_after = env.read(&DROP_AFTER_REQUESTS)?;
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
            tws_addr: env.read(&TWS_ADDR)?,
            settings: SimSettings {
                server_version: i32::try_from(version).unwrap_or(i32::MAX),
                rules,
                pacing_scale: env.read(&PACING_SCALE)?,
                startup_faults,
                replay_dir: env.read(&REPLAY_DIR)?.map(std::path::PathBuf::from),
            },
        })
    }

    /// The `--help` epilogue listing every variable.
    pub fn help() -> String {
        let mut vars = server_var_docs(loopback(DEFAULT_PORT));
        vars.extend([
            TWS_ADDR.doc(),
            PACING.doc(),
            PACING_SCALE.doc(),
            LEGAL_DURATIONS.doc(),
            CLIENT_ID_CHECK.doc(),
            FAIL_CODE.doc(),
            FAIL_FRACTION.doc(),
            REPLY_DELAY.doc(),
            DROP_AFTER_REQUESTS.doc(),
            REPLAY_DIR.doc(),
            SERVER_VERSION.doc(),
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
