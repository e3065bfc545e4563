//! Configuration of the IB host, read once from the environment.

use std::time::Duration;

use ktrdr_common::config::{
    ConfigError, Env, Kind, ServerConfig, VarDoc, env_help, loopback, server_var_docs,
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
            pacing_retries: IB_PACING_RETRIES.kind.default as u32,
        }
    }
}

/// IB's rules with the declared defaults of `IB_PACING`, `IB_PACING_SCALE` and
/// `IB_PACING_MARGIN_MS`.
impl Default for PacingConfig {
    fn default() -> Self {
        Self::ib_rules(
            IB_PACING.kind.default_value(),
            IB_PACING_SCALE.kind.default_value(),
            IB_PACING_MARGIN.kind.default_value(),
        )
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

ktrdr_common::vars! {
    pub IB_HOST = "IB_HOST", Text("127.0.0.1"), "host of IB Gateway / TWS (or ktrdr-ib-sim)";
    pub IB_PORT = "IB_PORT", Int::new(4002, 1, u16::MAX as u64), "TWS API port (4001/4002 IB Gateway live/paper, 7496/7497 TWS)";
    pub IB_CLIENT_ID = "IB_CLIENT_ID", Int::new(1, 0, i32::MAX as u64), "TWS API client id, unique per IB Gateway";
}

impl IbConnectionConfig {
    pub fn vars() -> Vec<VarDoc> {
        vec![IB_HOST.doc(), IB_PORT.doc(), IB_CLIENT_ID.doc()]
    }

    /// Reads the IB variables; the gateway uses this too when it talks to IB in-process.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            host: env.read(&IB_HOST)?,
            port: u16::try_from(env.read(&IB_PORT)?).unwrap_or(u16::MAX),
            client_id: i32::try_from(env.read(&IB_CLIENT_ID)?).unwrap_or(i32::MAX),
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
            base: IB_REQUEST_TIMEOUT.kind.default_value(),
            per_1000_bars: IB_REQUEST_TIMEOUT_PER_1000_BARS.kind.default_value(),
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

ktrdr_common::vars! {
    pub IB_PACING = "IB_PACING", Flag(true), "pace historical requests by IB's rules (false only against a simulator with pacing off)";
    pub IB_PACING_SCALE = "IB_PACING_SCALE", Float::new(1.0, 0.0001, 100.0), "multiplies IB's pacing windows (15 s, 2 s, 10 min); match IB_SIM_PACING_SCALE in tests";
    pub IB_PACING_MARGIN = "IB_PACING_MARGIN_MS", Millis::new(250, 0, 60_000), "safety margin added to every pacing window (absorbs delays between our send and IB's receipt)";
    pub IB_PACING_RETRIES = "IB_PACING_RETRIES", Int::new(3, 0, 10), "retries of a request IB answers with a 162 pacing violation before RESOURCE_EXHAUSTED";
    pub IB_REQUEST_TIMEOUT = "IB_REQUEST_TIMEOUT_MS", Millis::new(30_000, 100, 3_600_000), "wait for one IB answer before DEADLINE_EXCEEDED; historical requests add IB_REQUEST_TIMEOUT_PER_1000_BARS_MS";
    pub IB_REQUEST_TIMEOUT_PER_1000_BARS = "IB_REQUEST_TIMEOUT_PER_1000_BARS_MS", Millis::new(3_000, 0, 600_000), "extra wait per 1000 bars a historical request can return";
    pub IB_TIMEOUTS_BEFORE_RECONNECT = "IB_TIMEOUTS_BEFORE_RECONNECT", Int::new(3, 1, 100), "IB requests in a row without an answer before the connection counts as broken (calls fail with UNAVAILABLE, health NOT_SERVING, reconnect)";
    pub IB_CONNECTIVITY_PROBE = "IB_CONNECTIVITY_PROBE_MS", Millis::new(30_000, 50, 3_600_000), "after IB error 1100 with no 1101/1102, how often IB is asked for its time; an answer restores service";
    pub IB_RECONNECT_MAX = "IB_RECONNECT_MAX_MS", Millis::new(10_000, 100, 600_000), "longest pause between connection attempts (backoff from 100 ms)";
}

impl IbBehaviour {
    pub fn vars() -> Vec<VarDoc> {
        vec![
            IB_PACING.doc(),
            IB_PACING_SCALE.doc(),
            IB_PACING_MARGIN.doc(),
            IB_PACING_RETRIES.doc(),
            IB_REQUEST_TIMEOUT.doc(),
            IB_REQUEST_TIMEOUT_PER_1000_BARS.doc(),
            IB_TIMEOUTS_BEFORE_RECONNECT.doc(),
            IB_CONNECTIVITY_PROBE.doc(),
            IB_RECONNECT_MAX.doc(),
        ]
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let pacing = PacingConfig::ib_rules(
            env.read(&IB_PACING)?,
            env.read(&IB_PACING_SCALE)?,
            env.read(&IB_PACING_MARGIN)?,
        );
        Ok(Self {
            host: HostSettings {
                pacing,
                pacing_retries: u32::try_from(env.read(&IB_PACING_RETRIES)?).unwrap_or(u32::MAX),
            },
            connect: ConnectSettings {
                backoff_max: env.read(&IB_RECONNECT_MAX)?,
                timeouts_before_reconnect: u32::try_from(env.read(&IB_TIMEOUTS_BEFORE_RECONNECT)?)
                    .unwrap_or(u32::MAX),
                probe_interval: env.read(&IB_CONNECTIVITY_PROBE)?,
                ..ConnectSettings::default()
            },
            timeouts: RequestTimeouts {
                base: env.read(&IB_REQUEST_TIMEOUT)?,
                per_1000_bars: env.read(&IB_REQUEST_TIMEOUT_PER_1000_BARS)?,
            },
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
        let mut vars = server_var_docs(loopback(DEFAULT_PORT));
        vars.extend(IbConnectionConfig::vars());
        vars.extend(IbBehaviour::vars());
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
