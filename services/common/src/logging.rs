//! `tracing` set-up shared by every binary: filter from `RUST_LOG`, text or JSON lines on stderr,
//! and OpenTelemetry trace export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set ([`crate::telemetry`]).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, ServerConfig, TelemetryConfig};
use crate::telemetry::{self, Telemetry};

/// Installs the global subscriber, with trace export if `telemetry` names an endpoint (as
/// `service_name`). A second call (tests running several servers in one process) keeps the first
/// subscriber. Keep the returned guard until the end of `main`: dropping it flushes the spans.
/// Must run inside a Tokio runtime when trace export is configured.
pub fn init(
    service_name: &str,
    format: LogFormat,
    filter: &str,
    telemetry_config: &TelemetryConfig,
) -> Telemetry {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(true)
        // Colour codes only for a person at a terminal, never in log files or pipes.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let provider = match telemetry::provider(service_name, telemetry_config) {
        Ok(provider) => provider,
        Err(e) => {
            eprintln!("{service_name}: tracing off: {e}");
            None
        }
    };
    let otel = provider.as_ref().map(|p| telemetry::layer(p, service_name));
    // Already-installed subscribers are fine: the first one wins.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Telemetry::new(provider)
}

/// [`init`] from a server's configuration.
pub fn init_for(service_name: &str, config: &ServerConfig) -> Telemetry {
    init(
        service_name,
        config.log_format,
        &config.log_filter,
        &config.telemetry,
    )
}
