//! Configuration from the environment, read once at start.
//!
//! Every variable is declared once, as a [`Var`]: its name, its [`Kind`] (type, default, what
//! it accepts) and its meaning. Every binary turns an [`Env`] into its own typed config struct
//! by [`Env::read`]ing its variables, and lists the same declarations in `--help`
//! ([`env_help`]). [`Env::from_process`] is what a binary uses; tests build an [`Env`] from a map
//! and never touch the process environment. A bad value is a [`ConfigError`] that names the
//! variable and what it accepts, and [`load_or_exit`] turns that into one line on stderr and
//! exit code 2.

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

/// Documentation of one variable as `--help` prints it, rendered from its [`Var`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarDoc {
    pub name: &'static str,
    /// The default as text; empty for none.
    pub default: String,
    /// What it means, with the accepted range of a number.
    pub meaning: String,
}

/// One environment variable, declared once: its name, its [`Kind`] (the type it is read as,
/// its default and what it accepts) and its meaning. [`Env::read`] reads it and [`Var::doc`]
/// documents it for `--help`, so a name or a default is written in one place only.
#[derive(Debug, Clone, Copy)]
pub struct Var<K> {
    pub name: &'static str,
    pub kind: K,
    pub meaning: &'static str,
}

impl<K: Kind> Var<K> {
    /// The variable as `--help` lists it.
    pub fn doc(&self) -> VarDoc {
        VarDoc {
            name: self.name,
            default: self.kind.default_text(),
            meaning: match self.kind.range() {
                Some(range) => format!("{} ({range})", self.meaning),
                None => self.meaning.to_owned(),
            },
        }
    }
}

/// Declares [`Var`] constants, one a line:
/// `pub NAME = "ENV_NAME", Kind(default…), "meaning";` declares `pub const NAME: Var<Kind>`.
#[macro_export]
macro_rules! vars {
    ($(
        $(#[$attr:meta])*
        $vis:vis $id:ident = $name:literal, $kind:ident $(:: $ctor:ident)? ($($arg:expr),* $(,)?), $meaning:literal;
    )*) => {
        $(
            $(#[$attr])*
            $vis const $id: $crate::config::Var<$crate::config::$kind> = $crate::config::Var {
                name: $name,
                kind: $crate::config::$kind $(:: $ctor)? ($($arg),*),
                meaning: $meaning,
            };
        )*
    };
}

/// What a variable holds: how its text is read, its value when unset, what it accepts.
pub trait Kind {
    /// The type the variable is read as.
    type Value;
    /// The value of `raw` (trimmed, not empty); `None` when `raw` is not accepted.
    fn parse(&self, raw: &str) -> Option<Self::Value>;
    /// The value of an unset (or blank) variable.
    fn default_value(&self) -> Self::Value;
    /// The default as `--help` shows it; empty for none.
    fn default_text(&self) -> String;
    /// What the variable accepts, as a configuration error says it.
    fn expected(&self) -> String;
    /// The accepted range, for numbers.
    fn range(&self) -> Option<String> {
        None
    }
}

/// A boolean: `true/false/1/0/yes/no/on/off`, any case.
#[derive(Debug, Clone, Copy)]
pub struct Flag(pub bool);

impl Kind for Flag {
    type Value = bool;
    fn parse(&self, raw: &str) -> Option<bool> {
        parse_bool(raw)
    }
    fn default_value(&self) -> bool {
        self.0
    }
    fn default_text(&self) -> String {
        self.0.to_string()
    }
    fn expected(&self) -> String {
        "true/false/1/0/yes/no".to_owned()
    }
}

/// Any text.
#[derive(Debug, Clone, Copy)]
pub struct Text(pub &'static str);

impl Kind for Text {
    type Value = String;
    fn parse(&self, raw: &str) -> Option<String> {
        Some(raw.to_owned())
    }
    fn default_value(&self) -> String {
        self.0.to_owned()
    }
    fn default_text(&self) -> String {
        self.0.to_owned()
    }
    fn expected(&self) -> String {
        "text".to_owned()
    }
}

/// Text with no default: unset is `None`. `--help` shows what unset means (the field), e.g.
/// `(unset: no auth)`.
#[derive(Debug, Clone, Copy)]
pub struct Optional(pub &'static str);

impl Kind for Optional {
    type Value = Option<String>;
    fn parse(&self, raw: &str) -> Option<Option<String>> {
        Some(Some(raw.to_owned()))
    }
    fn default_value(&self) -> Option<String> {
        None
    }
    fn default_text(&self) -> String {
        self.0.to_owned()
    }
    fn expected(&self) -> String {
        "text".to_owned()
    }
}

/// A filesystem path.
#[derive(Debug, Clone, Copy)]
pub struct FsPath(pub &'static str);

impl Kind for FsPath {
    type Value = PathBuf;
    fn parse(&self, raw: &str) -> Option<PathBuf> {
        Some(PathBuf::from(raw))
    }
    fn default_value(&self) -> PathBuf {
        PathBuf::from(self.0)
    }
    fn default_text(&self) -> String {
        self.0.to_owned()
    }
    fn expected(&self) -> String {
        "a path".to_owned()
    }
}

/// An unsigned integer within `min..=max`.
#[derive(Debug, Clone, Copy)]
pub struct Int {
    pub default: u64,
    pub min: u64,
    pub max: u64,
}

impl Int {
    /// `default` when unset; accepts `min..=max`.
    pub const fn new(default: u64, min: u64, max: u64) -> Self {
        Self { default, min, max }
    }
}

impl Kind for Int {
    type Value = u64;
    fn parse(&self, raw: &str) -> Option<u64> {
        raw.parse::<u64>()
            .ok()
            .filter(|n| (self.min..=self.max).contains(n))
    }
    fn default_value(&self) -> u64 {
        self.default
    }
    fn default_text(&self) -> String {
        self.default.to_string()
    }
    fn expected(&self) -> String {
        format!("an integer from {} to {}", self.min, self.max)
    }
    fn range(&self) -> Option<String> {
        Some(format!("{} to {}", self.min, self.max))
    }
}

/// A duration in milliseconds within `min..=max`.
#[derive(Debug, Clone, Copy)]
pub struct Millis {
    pub default: u64,
    pub min: u64,
    pub max: u64,
}

impl Millis {
    /// `default` when unset; accepts `min..=max`.
    pub const fn new(default: u64, min: u64, max: u64) -> Self {
        Self { default, min, max }
    }
}

impl Kind for Millis {
    type Value = Duration;
    fn parse(&self, raw: &str) -> Option<Duration> {
        self.as_int().parse(raw).map(Duration::from_millis)
    }
    fn default_value(&self) -> Duration {
        Duration::from_millis(self.default)
    }
    fn default_text(&self) -> String {
        self.default.to_string()
    }
    fn expected(&self) -> String {
        self.as_int().expected()
    }
    fn range(&self) -> Option<String> {
        Some(format!("{} to {} ms", self.min, self.max))
    }
}

impl Millis {
    fn as_int(&self) -> Int {
        Int::new(self.default, self.min, self.max)
    }
}

/// A finite number within `min..=max`.
#[derive(Debug, Clone, Copy)]
pub struct Float {
    pub default: f64,
    pub min: f64,
    pub max: f64,
}

impl Float {
    /// `default` when unset; accepts `min..=max`.
    pub const fn new(default: f64, min: f64, max: f64) -> Self {
        Self { default, min, max }
    }
}

impl Kind for Float {
    type Value = f64;
    fn parse(&self, raw: &str) -> Option<f64> {
        raw.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && (self.min..=self.max).contains(x))
    }
    fn default_value(&self) -> f64 {
        self.default
    }
    fn default_text(&self) -> String {
        format!("{:?}", self.default)
    }
    fn expected(&self) -> String {
        format!("a number from {} to {}", self.min, self.max)
    }
    fn range(&self) -> Option<String> {
        Some(format!("{} to {}", self.min, self.max))
    }
}

/// A socket address such as `127.0.0.1:50054` or `[::1]:50054`; port 0 picks a free port.
#[derive(Debug, Clone, Copy)]
pub struct Addr(pub SocketAddr);

impl Kind for Addr {
    type Value = SocketAddr;
    fn parse(&self, raw: &str) -> Option<SocketAddr> {
        raw.parse().ok()
    }
    fn default_value(&self) -> SocketAddr {
        self.0
    }
    fn default_text(&self) -> String {
        self.0.to_string()
    }
    fn expected(&self) -> String {
        "an IP address and port such as 127.0.0.1:50054".to_owned()
    }
}

/// One or more `http://` / `https://` URLs, comma-separated.
#[derive(Debug, Clone, Copy)]
pub struct Urls(pub &'static str);

impl Kind for Urls {
    type Value = Vec<String>;
    fn parse(&self, raw: &str) -> Option<Vec<String>> {
        parse_url_list(raw)
    }
    fn default_value(&self) -> Vec<String> {
        parse_url_list(self.0).unwrap_or_default()
    }
    fn default_text(&self) -> String {
        self.0.to_owned()
    }
    fn expected(&self) -> String {
        "one or more comma-separated URLs such as http://localhost:50054".to_owned()
    }
}

/// One word of a fixed set (any case); read as the set's spelling.
#[derive(Debug, Clone, Copy)]
pub struct OneOf {
    pub default: &'static str,
    pub allowed: &'static [&'static str],
}

impl OneOf {
    /// `default` when unset; accepts one of `allowed`.
    pub const fn new(default: &'static str, allowed: &'static [&'static str]) -> Self {
        Self { default, allowed }
    }
}

impl Kind for OneOf {
    type Value = &'static str;
    fn parse(&self, raw: &str) -> Option<&'static str> {
        self.allowed
            .iter()
            .find(|word| word.eq_ignore_ascii_case(raw))
            .copied()
    }
    fn default_value(&self) -> &'static str {
        self.default
    }
    fn default_text(&self) -> String {
        self.default.to_owned()
    }
    fn expected(&self) -> String {
        format!("one of {}", self.allowed.join(", "))
    }
    fn range(&self) -> Option<String> {
        Some(self.allowed.join(" or "))
    }
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

    /// The trimmed value of `name`; an empty or blank value counts as unset. Private: a
    /// variable is read through its declaration ([`Env::read`]).
    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value of `var`: its default when unset or blank, an error naming it when its value
    /// is not one it accepts.
    pub fn read<K: Kind>(&self, var: &Var<K>) -> Result<K::Value, ConfigError> {
        match self.get(var.name) {
            None => Ok(var.kind.default_value()),
            Some(raw) => var
                .kind
                .parse(raw)
                .ok_or_else(|| ConfigError::new(var.name, raw, var.kind.expected())),
        }
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
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let otlp_endpoint = match env.read(&OTLP_ENDPOINT)? {
            None => None,
            Some(raw) => match parse_url_list(&raw).as_deref() {
                Some([one]) => Some(one.clone()),
                _ => {
                    return Err(ConfigError::new(
                        OTLP_ENDPOINT.name,
                        &raw,
                        "one http(s) URL of an OTLP/gRPC collector such as http://localhost:4317",
                    ));
                }
            },
        };
        Ok(Self {
            otlp_endpoint,
            export_interval: env.read(&EXPORT_INTERVAL)?,
        })
    }
}

/// `KTRDR_LISTEN_ADDR`, with the binary's own default address.
pub fn listen_var(default: SocketAddr) -> Var<Addr> {
    Var {
        name: "KTRDR_LISTEN_ADDR",
        kind: Addr(default),
        meaning: "where gRPC (API, health, reflection) is served; port 0 picks a free port",
    }
}

vars! {
    pub LOG_FORMAT = "KTRDR_LOG_FORMAT", OneOf::new("text", &["text", "json"]), "log line format";
    pub LOG_FILTER = "RUST_LOG", Text("info"), "log filter, e.g. info or ktrdr_data=debug,info";
    pub MAX_MESSAGE_BYTES = "KTRDR_MAX_MESSAGE_BYTES", Int::new(16 * 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024), "largest gRPC message received or sent, in bytes";
    /// Above the gateway's largest fan-out (a LoadBatch of 200 datasets runs 200 FetchBars at
    /// ib-host and 200 WriteBars at data at once).
    pub MAX_CONCURRENT_STREAMS = "KTRDR_MAX_CONCURRENT_STREAMS", Int::new(256, 1, 100_000), "API calls served at once (health and reflection not counted); more are refused with RESOURCE_EXHAUSTED and RetryInfo";
    pub SHUTDOWN_GRACE = "KTRDR_SHUTDOWN_GRACE_MS", Millis::new(10_000, 0, 600_000), "how long in-flight calls may finish after SIGTERM/SIGINT";
    pub OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT", Optional(""), "OTLP/gRPC collector to export traces to, e.g. http://otel-collector:4317; unset: no tracing";
    pub EXPORT_INTERVAL = "OTEL_BSP_SCHEDULE_DELAY", Millis::new(5_000, 10, 300_000), "how often batched trace spans are exported";
    pub METRICS_ADDR = "KTRDR_METRICS_ADDR", Optional("the gRPC address with port + 1000"), "where Prometheus metrics are served (GET /metrics); off disables them";
}

/// The documentation of the variables [`ServerConfig`] reads, given the binary's default
/// address.
pub fn server_var_docs(default_listen: SocketAddr) -> Vec<VarDoc> {
    vec![
        listen_var(default_listen).doc(),
        LOG_FORMAT.doc(),
        LOG_FILTER.doc(),
        MAX_MESSAGE_BYTES.doc(),
        MAX_CONCURRENT_STREAMS.doc(),
        SHUTDOWN_GRACE.doc(),
        OTLP_ENDPOINT.doc(),
        EXPORT_INTERVAL.doc(),
        METRICS_ADDR.doc(),
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
    /// Reads the server variables; `default_listen` is the binary's own default address.
    pub fn from_env(env: &Env, default_listen: SocketAddr) -> Result<Self, ConfigError> {
        let log_format = match env.read(&LOG_FORMAT)? {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let log_filter = env.read(&LOG_FILTER)?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            return Err(ConfigError::new(
                LOG_FILTER.name,
                &log_filter,
                format!("a tracing filter such as info or ktrdr_data=debug ({e})"),
            ));
        }
        let listen = listen_var(default_listen);
        let listen_addr = env.read(&listen)?;
        let metrics_addr = match env.read(&METRICS_ADDR)? {
            Some(raw) if raw.eq_ignore_ascii_case("off") => None,
            Some(raw) => Some(Addr(listen_addr).parse(&raw).ok_or_else(|| {
                ConfigError::new(METRICS_ADDR.name, &raw, Addr(listen_addr).expected())
            })?),
            None => Some(default_metrics_addr(listen_addr)),
        };
        Ok(Self {
            listen_addr,
            metrics_addr,
            telemetry: TelemetryConfig::from_env(env)?,
            log_format,
            log_filter,
            max_message_bytes: usize::try_from(env.read(&MAX_MESSAGE_BYTES)?).unwrap_or(usize::MAX),
            max_concurrent_streams: usize::try_from(env.read(&MAX_CONCURRENT_STREAMS)?)
                .unwrap_or(usize::MAX),
            shutdown_grace: env.read(&SHUTDOWN_GRACE)?,
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

    fn var<K>(name: &'static str, kind: K) -> Var<K> {
        Var {
            name,
            kind,
            meaning: "",
        }
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
            assert_eq!(
                env(&[("X", raw)]).read(&var("X", Flag(!want))),
                Ok(want),
                "{raw}"
            );
        }
        assert_eq!(env(&[]).read(&var("X", Flag(true))), Ok(true));
        assert_eq!(env(&[("X", "  ")]).read(&var("X", Flag(false))), Ok(false));
    }

    #[test]
    fn a_bad_bool_names_the_variable_and_the_accepted_values() {
        let err = env(&[("USE_DATA_SERVICE", "maybe")])
            .read(&var("USE_DATA_SERVICE", Flag(true)))
            .unwrap_err();
        assert_eq!(err.variable, "USE_DATA_SERVICE");
        assert_eq!(
            err.to_string(),
            "invalid USE_DATA_SERVICE=\"maybe\": expected true/false/1/0/yes/no"
        );
    }

    #[test]
    fn integers_are_range_checked() {
        let int = |max| {
            var(
                "N",
                Int {
                    default: 1,
                    min: 0,
                    max,
                },
            )
        };
        let e = env(&[("N", "70000")]);
        assert_eq!(e.read(&int(100_000)), Ok(70_000));
        let err = e.read(&int(65_535)).unwrap_err();
        assert_eq!(err.expected, "an integer from 0 to 65535");
        assert!(env(&[("N", "-1")]).read(&int(10)).is_err());
        assert!(env(&[("N", "ten")]).read(&int(10)).is_err());
        assert_eq!(env(&[]).read(&int(10)), Ok(1));
    }

    #[test]
    fn url_lists_split_on_commas_and_reject_non_urls() {
        let e = env(&[("U", "http://a:1, http://b:2 ,")]);
        assert_eq!(
            e.read(&var("U", Urls("http://localhost:1"))).unwrap(),
            vec!["http://a:1".to_owned(), "http://b:2".to_owned()]
        );
        assert_eq!(
            env(&[])
                .read(&var("U", Urls("http://localhost:50054")))
                .unwrap(),
            vec!["http://localhost:50054".to_owned()]
        );
        for bad in ["localhost:50054", "ftp://x:1", "http://", "http://a:1,nope"] {
            let err = env(&[("U", bad)])
                .read(&var("U", Urls("http://x:1")))
                .unwrap_err();
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
        let help = env_help(&server_var_docs(loopback(50054)));
        assert!(help.contains("KTRDR_LISTEN_ADDR"));
        assert!(help.contains("[default: 127.0.0.1:50054]"));
        let line = |name: &str| {
            help.lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {help}"))
                .to_owned()
        };
        // Default and range come from the declaration that is read.
        assert!(
            line("KTRDR_SHUTDOWN_GRACE_MS").ends_with("(0 to 600000 ms) [default: 10000]"),
            "{help}"
        );
        assert!(line("KTRDR_LOG_FORMAT").contains("(text or json) [default: text]"));
        assert!(
            line("KTRDR_METRICS_ADDR").contains("[default: the gRPC address with port + 1000]")
        );
    }

    #[test]
    fn a_declared_default_is_the_value_of_an_unset_variable() {
        let e = env(&[]);
        assert_eq!(e.read(&SHUTDOWN_GRACE), Ok(Duration::from_secs(10)));
        assert_eq!(e.read(&MAX_MESSAGE_BYTES), Ok(16 * 1024 * 1024));
        assert_eq!(e.read(&LOG_FORMAT), Ok("text"));
        assert_eq!(e.read(&OTLP_ENDPOINT), Ok(None));
        let float = var("F", Float::new(1.0, 0.0001, 100.0));
        assert_eq!(e.read(&float), Ok(1.0));
        assert_eq!(env(&[("F", "0.01")]).read(&float), Ok(0.01));
        for bad in ["0", "fast", "NaN", "inf"] {
            let err = env(&[("F", bad)]).read(&float).unwrap_err();
            assert_eq!(err.expected, "a number from 0.0001 to 100", "{bad}");
        }
    }
}
