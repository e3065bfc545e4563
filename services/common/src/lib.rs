//! Shared scaffolding for every ktrdr binary, so no service repeats it:
//!
//! - [`config`]: environment read once into typed structs that tests build from a map;
//! - [`error`]: one error type, mapped once to `tonic::Status` with `google.rpc` details;
//! - [`server`]: the gRPC server every binary runs (health, reflection, RPC logs, limits, drain,
//!   undecodable requests answered INVALID_ARGUMENT);
//! - [`client`]: pooled, lazily connected channels to other services;
//! - [`logging`]: `tracing` set-up (`RUST_LOG`, text or JSON);
//! - [`telemetry`]: OpenTelemetry traces across services (W3C trace context), when configured;
//! - [`metrics`]: Prometheus metrics (RPC counts and latencies, the services' own) on their own port.

pub mod client;
pub mod config;
pub mod deadline;
mod decode;
pub mod error;
mod limit;
pub mod logging;
pub mod market;
pub mod metrics;
pub mod paging;
mod rpc_log;
pub mod server;
pub mod status;
pub mod telemetry;

pub use config::{ConfigError, Env, ServerConfig, TelemetryConfig};
pub use error::ServiceError;
