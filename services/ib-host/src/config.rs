//! Configuration of the IB host, read once from the environment.

use std::time::Duration;

use ktrdr_common::config::{
    ConfigError, Env, ServerConfig, VarDoc, env_help, loopback, server_var_docs,
};

use crate::pacing::PacingConfig;

/// Behaviour of the host beyond the connection.
#[derive(Debug, Clone, Copy)]
pub struct HostSettings {
    pub pacing: PacingConfig,
    /// How often a request answered with 162 "pacing violation" is retried before the call
    /// fails with RESOURCE_EXHAUSTED.
    pub pacing_retries: u32,
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            pacing: PacingConfig::default(),
            pacing_retries: 3,
        }
    }
}

/// Timing of connection attempts.
#[derive(Debug, Clone, Copy)]
pub struct ConnectSettings {
    /// First retry delay; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How often the link is checked for a drop.
    pub poll: Duration,
    /// Longest wait for one handshake.
    pub connect_timeout: Duration,
    /// Client ids tried after `IB_CLIENT_ID` when it is in use (326).
    pub client_id_tries: i32,
    /// Requests in a row that IB leaves unanswered past their timeout before the connection
    /// counts as broken: in-flight calls fail with UNAVAILABLE, health turns NOT_SERVING and a
    /// fresh connection replaces it.
    pub timeouts_before_reconnect: u32,
    /// After a 1100 "connectivity lost" with no 1101/1102 since, how often IB is asked for its
    /// time; an answer makes the connection usable again.
    pub probe_interval: Duration,
}

impl Default for ConnectSettings {
    fn default() -> Self {
        Self {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            poll: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(10),
            client_id_tries: 10,
            timeouts_before_reconnect: 3,
            probe_interval: Duration::from_secs(30),
        }
    }
}

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

/// How long one IB request may take: a base for every request plus an allowance per bar a
/// historical request can return, so a week of minutes may take longer than a year of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTimeouts {
    pub base: Duration,
    pub per_1000_bars: Duration,
}

impl Default for RequestTimeouts {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            per_1000_bars: Duration::from_secs(3),
        }
    }
}

impl RequestTimeouts {
    /// The timeout of a request that can return up to `bars` bars (0 for requests without
    /// bars: contract details, head timestamps).
    pub fn for_bars(&self, bars: u64) -> Duration {
        let per_bar_nanos = self.per_1000_bars.as_nanos() / 1000;
        let allowance = per_bar_nanos.saturating_mul(u128::from(bars));
        let allowance = Duration::from_nanos(u64::try_from(allowance).unwrap_or(u64::MAX));
        self.base.saturating_add(allowance)
    }
}

/// How the IB host paces, retries and times out; the gateway reads the same variables when
/// it runs the host in process.
#[derive(Debug, Clone, Copy)]
pub struct IbBehaviour {
    pub host: HostSettings,
    pub connect: ConnectSettings,
    pub timeouts: RequestTimeouts,
}

/// A number within `min..=max`.
fn float_in(env: &Env, name: &str, default: f64, min: f64, max: f64) -> Result<f64, ConfigError> {
    let Some(raw) = env.get(name) else {
        return Ok(default);
    };
    raw.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && (min..=max).contains(x))
        .ok_or_else(|| ConfigError::new(name, raw, format!("a number from {min} to {max}")))
}

impl IbBehaviour {
    pub const VARS: &[VarDoc] = &[
        VarDoc {
            name: "IB_PACING",
            default: "true",
            meaning: "pace historical requests by IB's rules (false only against a simulator with pacing off)",
        },
        VarDoc {
            name: "IB_PACING_SCALE",
            default: "1.0",
            meaning: "multiplies IB's pacing windows (15 s, 2 s, 10 min); match IB_SIM_PACING_SCALE in tests",
        },
        VarDoc {
            name: "IB_PACING_MARGIN_MS",
            default: "250",
            meaning: "safety margin added to every pacing window (absorbs delays between our send and IB's receipt)",
        },
        VarDoc {
            name: "IB_PACING_RETRIES",
            default: "3",
            meaning: "retries of a request IB answers with a 162 pacing violation before RESOURCE_EXHAUSTED",
        },
        VarDoc {
            name: "IB_REQUEST_TIMEOUT_MS",
            default: "30000",
            meaning: "wait for one IB answer before DEADLINE_EXCEEDED; historical requests add IB_REQUEST_TIMEOUT_PER_1000_BARS_MS",
        },
        VarDoc {
            name: "IB_REQUEST_TIMEOUT_PER_1000_BARS_MS",
            default: "3000",
            meaning: "extra wait per 1000 bars a historical request can return",
        },
        VarDoc {
            name: "IB_TIMEOUTS_BEFORE_RECONNECT",
            default: "3",
            meaning: "IB requests in a row without an answer before the connection counts as broken (calls fail with UNAVAILABLE, health NOT_SERVING, reconnect)",
        },
        VarDoc {
            name: "IB_CONNECTIVITY_PROBE_MS",
            default: "30000",
            meaning: "after IB error 1100 with no 1101/1102, how often IB is asked for its time; an answer restores service",
        },
        VarDoc {
            name: "IB_RECONNECT_MAX_MS",
            default: "10000",
            meaning: "longest pause between connection attempts (backoff from 100 ms)",
        },
    ];

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let pacing = PacingConfig {
            enabled: env.bool("IB_PACING", true)?,
            scale: float_in(env, "IB_PACING_SCALE", 1.0, 0.0001, 100.0)?,
            margin: env.millis(
                "IB_PACING_MARGIN_MS",
                Duration::from_millis(250),
                Duration::ZERO,
                Duration::from_secs(60),
            )?,
            ..PacingConfig::default()
        };
        let retries = env.u64_in("IB_PACING_RETRIES", 3, 0, 10)?;
        let timeouts = RequestTimeouts {
            base: env.millis(
                "IB_REQUEST_TIMEOUT_MS",
                RequestTimeouts::default().base,
                Duration::from_millis(100),
                Duration::from_secs(3600),
            )?,
            per_1000_bars: env.millis(
                "IB_REQUEST_TIMEOUT_PER_1000_BARS_MS",
                RequestTimeouts::default().per_1000_bars,
                Duration::ZERO,
                Duration::from_secs(600),
            )?,
        };
        let timeouts_before_reconnect = env.u64_in("IB_TIMEOUTS_BEFORE_RECONNECT", 3, 1, 100)?;
        let probe_interval = env.millis(
            "IB_CONNECTIVITY_PROBE_MS",
            ConnectSettings::default().probe_interval,
            Duration::from_millis(50),
            Duration::from_secs(3600),
        )?;
        let backoff_max = env.millis(
            "IB_RECONNECT_MAX_MS",
            Duration::from_secs(10),
            Duration::from_millis(100),
            Duration::from_secs(600),
        )?;
        Ok(Self {
            host: HostSettings {
                pacing,
                pacing_retries: u32::try_from(retries).unwrap_or(3),
            },
            connect: ConnectSettings {
                backoff_max,
                timeouts_before_reconnect: u32::try_from(timeouts_before_reconnect).unwrap_or(3),
                probe_interval,
                ..ConnectSettings::default()
            },
            timeouts,
        })
    }
}

/// Everything `ktrdr-ib-host` reads.
#[derive(Debug, Clone)]
pub struct IbHostConfig {
    pub server: ServerConfig,
    pub ib: IbConnectionConfig,
    pub behaviour: IbBehaviour,
}

impl IbHostConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            server: ServerConfig::from_env(env, loopback(DEFAULT_PORT))?,
            ib: IbConnectionConfig::from_env(env)?,
            behaviour: IbBehaviour::from_env(env)?,
        })
    }

    /// The `--help` epilogue listing every variable.
    pub fn help() -> String {
        let mut vars = server_var_docs("127.0.0.1:50052");
        vars.extend_from_slice(IbConnectionConfig::VARS);
        vars.extend_from_slice(IbBehaviour::VARS);
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
    fn pacing_defaults_are_ibs_rules_and_scale_for_tests() {
        let b = IbBehaviour::from_env(&Env::default()).unwrap();
        assert!(b.host.pacing.enabled);
        assert_eq!(b.host.pacing.identical(), Duration::from_millis(15_250));
        let env = Env::from_pairs([("IB_PACING_SCALE", "0.01"), ("IB_PACING_MARGIN_MS", "0")]);
        let b = IbBehaviour::from_env(&env).unwrap();
        assert_eq!(b.host.pacing.ten_minutes(), Duration::from_secs(6));
        let err = IbBehaviour::from_env(&Env::from_pairs([("IB_PACING_SCALE", "x")])).unwrap_err();
        assert_eq!(err.variable, "IB_PACING_SCALE");
    }

    #[test]
    fn a_request_may_take_longer_the_more_bars_it_can_return() {
        let env = Env::from_pairs([
            ("IB_REQUEST_TIMEOUT_MS", "2000"),
            ("IB_REQUEST_TIMEOUT_PER_1000_BARS_MS", "500"),
            ("IB_TIMEOUTS_BEFORE_RECONNECT", "2"),
            ("IB_CONNECTIVITY_PROBE_MS", "250"),
        ]);
        let b = IbBehaviour::from_env(&env).unwrap();
        assert_eq!(b.timeouts.for_bars(0), Duration::from_secs(2));
        assert_eq!(b.timeouts.for_bars(4000), Duration::from_secs(4));
        // Never overflows, however many bars.
        assert!(b.timeouts.for_bars(u64::MAX) > Duration::from_secs(365 * 86_400));
        assert_eq!(b.connect.timeouts_before_reconnect, 2);
        assert_eq!(b.connect.probe_interval, Duration::from_millis(250));
        let err = IbBehaviour::from_env(&Env::from_pairs([("IB_TIMEOUTS_BEFORE_RECONNECT", "0")]))
            .unwrap_err();
        assert_eq!(err.variable, "IB_TIMEOUTS_BEFORE_RECONNECT");
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
