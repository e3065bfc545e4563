//! Configuration from the environment, read once at start.
//!
//! Every binary turns an [`Env`] into its own typed config struct. [`Env::from_process`] is what a
//! binary uses; tests build an [`Env`] from a map and never touch the process environment. A bad
//! value is a [`ConfigError`] that names the variable and what it accepts, and
//! [`load_or_exit`] turns that into one line on stderr and exit code 2.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Exit code of a binary whose configuration is invalid (the same code clap uses for usage errors).
pub const CONFIG_ERROR_EXIT_CODE: i32 = 2;

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

/// A variable whose value the binary cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}={value:?}: expected {expected}")]
pub struct ConfigError {
    /// The variable's name, e.g. `USE_DATA_SERVICE`.
    pub variable: String,
    /// The value as found.
    pub value: String,
    /// What the variable accepts, e.g. `true/false/1/0/yes/no`.
    pub expected: String,
}

impl ConfigError {
    pub fn new(variable: &str, value: &str, expected: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            value: value.to_owned(),
            expected: expected.into(),
        }
    }
}

/// Documentation of one variable, for `--help` texts.
#[derive(Debug, Clone, Copy)]
pub struct VarDoc {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Renders variable docs as the `--help` epilogue of a binary.
pub fn env_help(vars: &[VarDoc]) -> String {
    let width = vars.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::from("Environment variables (read once at start):\n");
    for var in vars {
        let default = if var.default.is_empty() {
            String::new()
        } else {
            format!(" [default: {}]", var.default)
        };
        out.push_str(&format!(
            "  {:width$}  {}{}\n",
            var.name, var.meaning, default
        ));
    }
    out
}

impl Env {
    /// The current process environment. Variables that are not valid UTF-8 are skipped here and
    /// therefore read as unset.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment made of the given pairs (for tests and embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The trimmed value of `name`; an empty or blank value counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A string, or `default` when unset.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// A boolean: `true/false/1/0/yes/no/on/off`, any case.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => {
                parse_bool(raw).ok_or_else(|| ConfigError::new(name, raw, "true/false/1/0/yes/no"))
            }
        }
    }

    /// An unsigned integer within `min..=max`.
    pub fn u64_in(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        raw.parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| ConfigError::new(name, raw, format!("an integer from {min} to {max}")))
    }

    /// A duration given in milliseconds, within `min..=max`.
    pub fn millis(
        &self,
        name: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.u64_in(name, ms(default), ms(min), ms(max))
            .map(Duration::from_millis)
    }

    /// A socket address such as `127.0.0.1:50054` or `[::1]:50054`; port 0 picks a free port.
    pub fn socket_addr(&self, name: &str, default: SocketAddr) -> Result<SocketAddr, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|_| {
                ConfigError::new(name, raw, "an IP address and port such as 127.0.0.1:50054")
            }),
        }
    }

    /// A filesystem path.
    pub fn path(&self, name: &str, default: &str) -> PathBuf {
        PathBuf::from(self.get(name).unwrap_or(default))
    }

    /// One or more `http://` / `https://` URLs, comma-separated.
    pub fn url_list(&self, name: &str, default: &str) -> Result<Vec<String>, ConfigError> {
        let raw = self.get(name).unwrap_or(default);
        parse_url_list(raw).ok_or_else(|| {
            ConfigError::new(
                name,
                raw,
                "one or more comma-separated URLs such as http://localhost:50054",
            )
        })
    }

    /// A value from a fixed set of words (case-insensitive); returns the canonical word.
    pub fn one_of(
        &self,
        name: &str,
        default: &'static str,
        allowed: &[&'static str],
    ) -> Result<&'static str, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        allowed
            .iter()
            .find(|word| word.eq_ignore_ascii_case(raw))
            .copied()
            .ok_or_else(|| ConfigError::new(name, raw, format!("one of {}", allowed.join(", "))))
    }
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Splits and checks a comma-separated URL list; `None` if any entry is not an http(s) URL
/// with a host.
pub fn parse_url_list(raw: &str) -> Option<Vec<String>> {
    let urls: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let valid = |url: &String| {
        url.parse::<http::Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
        })
    };
    (!urls.is_empty() && urls.iter().all(valid)).then_some(urls)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// What every ktrdr gRPC server reads: where to listen, how to log, limits and drain time.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `KTRDR_LISTEN_ADDR`: where gRPC is served.
    pub listen_addr: SocketAddr,
    /// `KTRDR_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `RUST_LOG`: the `tracing` filter directive.
    pub log_filter: String,
    /// `KTRDR_MAX_MESSAGE_BYTES`: largest gRPC message accepted or sent.
    pub max_message_bytes: usize,
    /// `KTRDR_MAX_CONCURRENT_STREAMS`: API calls the server runs at once (each is an HTTP/2
    /// stream; health and reflection not counted); more are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_streams: usize,
    /// `KTRDR_SHUTDOWN_GRACE_MS`: how long in-flight calls may finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// `KTRDR_METRICS_ADDR`: where Prometheus metrics are served; `None` when `off`. Defaults
    /// to the gRPC address with the port + 1000 (port 0 when the gRPC port is 0).
    pub metrics_addr: Option<SocketAddr>,
    /// OpenTelemetry trace export.
    pub telemetry: TelemetryConfig,
}

/// Where and how often traces are exported (OTLP/gRPC); off without an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://otel-collector:4317`.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_BSP_SCHEDULE_DELAY`: how often batched spans are sent.
    pub export_interval: Duration,
}

impl TelemetryConfig {
    pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(5);

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let otlp_endpoint = match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            None => None,
            Some(raw) => match parse_url_list(raw).as_deref() {
                Some([one]) => Some(one.clone()),
                _ => {
                    return Err(ConfigError::new(
                        "OTEL_EXPORTER_OTLP_ENDPOINT",
                        raw,
                        "one http(s) URL of an OTLP/gRPC collector such as http://localhost:4317",
                    ));
                }
            },
        };
        Ok(Self {
            otlp_endpoint,
            export_interval: env.millis(
                "OTEL_BSP_SCHEDULE_DELAY",
                Self::DEFAULT_EXPORT_INTERVAL,
                Duration::from_millis(10),
                Duration::from_secs(300),
            )?,
        })
    }
}

/// The documentation of the variables [`ServerConfig`] reads, given the binary's default port.
pub fn server_var_docs(default_listen: &'static str) -> Vec<VarDoc> {
    vec![
        VarDoc {
            name: "KTRDR_LISTEN_ADDR",
            default: default_listen,
            meaning: "where gRPC (API, health, reflection) is served; port 0 picks a free port",
        },
        VarDoc {
            name: "KTRDR_LOG_FORMAT",
            default: "text",
            meaning: "log line format: text or json",
        },
        VarDoc {
            name: "RUST_LOG",
            default: "info",
            meaning: "log filter, e.g. info or ktrdr_data=debug,info",
        },
        VarDoc {
            name: "KTRDR_MAX_MESSAGE_BYTES",
            default: "16777216",
            meaning: "largest gRPC message received or sent, in bytes",
        },
        VarDoc {
            name: "KTRDR_MAX_CONCURRENT_STREAMS",
            default: "256",
            meaning: "API calls served at once (health and reflection not counted); more are refused with RESOURCE_EXHAUSTED and RetryInfo",
        },
        VarDoc {
            name: "KTRDR_SHUTDOWN_GRACE_MS",
            default: "10000",
            meaning: "how long in-flight calls may finish after SIGTERM/SIGINT",
        },
        VarDoc {
            name: "OTEL_EXPORTER_OTLP_ENDPOINT",
            default: "",
            meaning: "OTLP/gRPC collector to export traces to, e.g. http://otel-collector:4317; unset: no tracing",
        },
        VarDoc {
            name: "OTEL_BSP_SCHEDULE_DELAY",
            default: "5000",
            meaning: "how often batched trace spans are exported, in milliseconds",
        },
        VarDoc {
            name: "KTRDR_METRICS_ADDR",
            default: "the gRPC address with port + 1000",
            meaning: "where Prometheus metrics are served (GET /metrics); off disables them",
        },
    ]
}

/// The default metrics address: the gRPC address with the port + 1000, or port 0 (a free port)
/// when the gRPC port is 0 or too high.
pub fn default_metrics_addr(listen_addr: SocketAddr) -> SocketAddr {
    let port = match listen_addr.port() {
        0 => 0,
        port => port.checked_add(1000).unwrap_or(0),
    };
    SocketAddr::new(listen_addr.ip(), port)
}

impl ServerConfig {
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
    /// Above the gateway's largest fan-out (a LoadBatch of 200 datasets runs 200 FetchBars at
    /// ib-host and 200 WriteBars at data at once).
    pub const DEFAULT_MAX_CONCURRENT_STREAMS: usize = 256;
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

    /// Reads the server variables; `default_listen` is the binary's own default address.
    pub fn from_env(env: &Env, default_listen: SocketAddr) -> Result<Self, ConfigError> {
        let log_format = match env.one_of("KTRDR_LOG_FORMAT", "text", &["text", "json"])? {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let log_filter = env.string("RUST_LOG", "info");
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            return Err(ConfigError::new(
                "RUST_LOG",
                &log_filter,
                format!("a tracing filter such as info or ktrdr_data=debug ({e})"),
            ));
        }
        let max_message_bytes = env.u64_in(
            "KTRDR_MAX_MESSAGE_BYTES",
            Self::DEFAULT_MAX_MESSAGE_BYTES as u64,
            64 * 1024,
            1024 * 1024 * 1024,
        )?;
        let max_concurrent_streams = env.u64_in(
            "KTRDR_MAX_CONCURRENT_STREAMS",
            Self::DEFAULT_MAX_CONCURRENT_STREAMS as u64,
            1,
            100_000,
        )?;
        let listen_addr = env.socket_addr("KTRDR_LISTEN_ADDR", default_listen)?;
        let metrics_addr = match env.get("KTRDR_METRICS_ADDR") {
            Some(raw) if raw.eq_ignore_ascii_case("off") => None,
            _ => Some(env.socket_addr("KTRDR_METRICS_ADDR", default_metrics_addr(listen_addr))?),
        };
        Ok(Self {
            listen_addr,
            metrics_addr,
            telemetry: TelemetryConfig::from_env(env)?,
            log_format,
            log_filter,
            max_message_bytes: usize::try_from(max_message_bytes)
                .unwrap_or(Self::DEFAULT_MAX_MESSAGE_BYTES),
            max_concurrent_streams: usize::try_from(max_concurrent_streams)
                .unwrap_or(Self::DEFAULT_MAX_CONCURRENT_STREAMS),
            shutdown_grace: env.millis(
                "KTRDR_SHUTDOWN_GRACE_MS",
                Self::DEFAULT_SHUTDOWN_GRACE,
                Duration::ZERO,
                Duration::from_secs(600),
            )?,
        })
    }
}

/// The loopback address with `port`, the default listen address of the binaries.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Reads the configuration with `read`, or prints one line naming the bad variable and exits
/// with [`CONFIG_ERROR_EXIT_CODE`]. Only for `main`: it ends the process.
pub fn load_or_exit<T>(binary: &str, read: impl FnOnce(&Env) -> Result<T, ConfigError>) -> T {
    match read(&Env::from_process()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{binary}: configuration error: {err}");
            std::process::exit(CONFIG_ERROR_EXIT_CODE)
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn bools_accept_the_documented_words_in_any_case() {
        for (raw, want) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("On", true),
            ("false", false),
            ("0", false),
            ("No", false),
            ("off", false),
        ] {
            assert_eq!(env(&[("X", raw)]).bool("X", !want), Ok(want), "{raw}");
        }
        assert_eq!(env(&[]).bool("X", true), Ok(true));
        assert_eq!(env(&[("X", "  ")]).bool("X", false), Ok(false));
    }

    #[test]
    fn a_bad_bool_names_the_variable_and_the_accepted_values() {
        let err = env(&[("USE_DATA_SERVICE", "maybe")])
            .bool("USE_DATA_SERVICE", true)
            .unwrap_err();
        assert_eq!(err.variable, "USE_DATA_SERVICE");
        assert_eq!(
            err.to_string(),
            "invalid USE_DATA_SERVICE=\"maybe\": expected true/false/1/0/yes/no"
        );
    }

    #[test]
    fn integers_are_range_checked() {
        let e = env(&[("N", "70000")]);
        assert_eq!(e.u64_in("N", 1, 0, 100_000), Ok(70_000));
        let err = e.u64_in("N", 1, 0, 65_535).unwrap_err();
        assert_eq!(err.expected, "an integer from 0 to 65535");
        assert!(env(&[("N", "-1")]).u64_in("N", 1, 0, 10).is_err());
        assert!(env(&[("N", "ten")]).u64_in("N", 1, 0, 10).is_err());
    }

    #[test]
    fn url_lists_split_on_commas_and_reject_non_urls() {
        let e = env(&[("U", "http://a:1, http://b:2 ,")]);
        assert_eq!(
            e.url_list("U", "http://localhost:1").unwrap(),
            vec!["http://a:1".to_owned(), "http://b:2".to_owned()]
        );
        assert_eq!(
            env(&[]).url_list("U", "http://localhost:50054").unwrap(),
            vec!["http://localhost:50054".to_owned()]
        );
        for bad in ["localhost:50054", "ftp://x:1", "http://", "http://a:1,nope"] {
            let err = env(&[("U", bad)]).url_list("U", "http://x:1").unwrap_err();
            assert_eq!(err.variable, "U", "{bad}");
        }
    }

    #[test]
    fn server_config_defaults() {
        let config = ServerConfig::from_env(&env(&[]), loopback(50054)).unwrap();
        assert_eq!(config.listen_addr, loopback(50054));
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.log_filter, "info");
        assert_eq!(config.max_message_bytes, 16 * 1024 * 1024);
        assert_eq!(config.max_concurrent_streams, 256);
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        assert_eq!(config.metrics_addr, Some(loopback(51054)));
        assert_eq!(config.telemetry.otlp_endpoint, None);
        let traced = ServerConfig::from_env(
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ]),
            loopback(1),
        )
        .unwrap();
        assert_eq!(
            traced.telemetry.otlp_endpoint.as_deref(),
            Some("http://collector:4317")
        );
        assert_eq!(traced.telemetry.export_interval, Duration::from_millis(100));
        let any_port = ServerConfig::from_env(&env(&[]), loopback(0)).unwrap();
        assert_eq!(any_port.metrics_addr, Some(loopback(0)));
    }

    #[test]
    fn metrics_follow_the_listen_address_unless_set_or_off() {
        let read = |pairs: &[(&str, &str)]| {
            ServerConfig::from_env(&env(pairs), loopback(50051))
                .unwrap()
                .metrics_addr
        };
        assert_eq!(
            read(&[("KTRDR_LISTEN_ADDR", "0.0.0.0:50052")]),
            Some("0.0.0.0:51052".parse().unwrap())
        );
        assert_eq!(
            read(&[("KTRDR_METRICS_ADDR", "0.0.0.0:9000")]),
            Some("0.0.0.0:9000".parse().unwrap())
        );
        assert_eq!(read(&[("KTRDR_METRICS_ADDR", "OFF")]), None);
        assert_eq!(
            read(&[("KTRDR_LISTEN_ADDR", "127.0.0.1:65000")]),
            Some(loopback(0))
        );
    }

    #[test]
    fn server_config_reads_every_variable() {
        let config = ServerConfig::from_env(
            &env(&[
                ("KTRDR_LISTEN_ADDR", "0.0.0.0:6000"),
                ("KTRDR_LOG_FORMAT", "JSON"),
                ("RUST_LOG", "ktrdr_data=debug,warn"),
                ("KTRDR_MAX_MESSAGE_BYTES", "1048576"),
                ("KTRDR_MAX_CONCURRENT_STREAMS", "8"),
                ("KTRDR_SHUTDOWN_GRACE_MS", "250"),
            ]),
            loopback(1),
        )
        .unwrap();
        assert_eq!(config.listen_addr, "0.0.0.0:6000".parse().unwrap());
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.log_filter, "ktrdr_data=debug,warn");
        assert_eq!(config.max_message_bytes, 1_048_576);
        assert_eq!(config.max_concurrent_streams, 8);
        assert_eq!(config.shutdown_grace, Duration::from_millis(250));
    }

    #[test]
    fn server_config_rejects_each_bad_variable_by_name() {
        for (var, bad) in [
            ("KTRDR_LISTEN_ADDR", "localhost"),
            ("KTRDR_LOG_FORMAT", "xml"),
            ("RUST_LOG", "info,[["),
            ("KTRDR_MAX_MESSAGE_BYTES", "12"),
            ("KTRDR_MAX_CONCURRENT_STREAMS", "0"),
            ("KTRDR_SHUTDOWN_GRACE_MS", "soon"),
            ("KTRDR_METRICS_ADDR", "9090"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_BSP_SCHEDULE_DELAY", "0"),
        ] {
            let err = ServerConfig::from_env(&env(&[(var, bad)]), loopback(1)).unwrap_err();
            assert_eq!(err.variable, var);
            assert_eq!(err.value, bad);
            assert!(err.to_string().starts_with(&format!("invalid {var}=")));
        }
    }

    #[test]
    fn help_lists_variables_with_defaults() {
        let help = env_help(&server_var_docs("127.0.0.1:50054"));
        assert!(help.contains("KTRDR_LISTEN_ADDR"));
        assert!(help.contains("[default: 127.0.0.1:50054]"));
    }
}
