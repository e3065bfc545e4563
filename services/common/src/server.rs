//! The gRPC server every ktrdr binary runs.
//!
//! [`GrpcServer`] always mounts `grpc.health.v1` (overall and per-service status) and server
//! reflection in both v1 and v1alpha (grpcurl 1.8 only speaks v1alpha), with the `google.rpc`
//! descriptors registered so grpcurl can print error details. Every RPC gets one log line and is
//! counted in the Prometheus metrics, served on [`ServerConfig::metrics_addr`]. A request whose
//! bytes do not decode is answered INVALID_ARGUMENT (logged at warn), not INTERNAL. At most
//! [`ServerConfig::max_concurrent_streams`] API calls run at once; more are refused with
//! RESOURCE_EXHAUSTED and RetryInfo. On
//! SIGTERM/SIGINT health turns NOT_SERVING, the listener closes and in-flight calls get
//! [`ServerConfig::shutdown_grace`] to finish. HTTP/2 flow-control windows and the frame size
//! are sized for streams of bars ([`STREAM_WINDOW_BYTES`]), the same as client channels'.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::ServerConfig;
use crate::decode::DecodeErrorLayer;
use crate::limit::ConcurrencyLimitLayer;
use crate::rpc_log::RpcLogLayer;

/// HTTP/2 flow control, for the receiving side of servers and client channels alike: how many
/// bytes a peer may send on one stream, and on one connection, before the receiver's reader
/// takes them. Bars stream in messages of up to a few MiB (Arrow IPC), so the sender can keep
/// one whole message in flight while the receiver works on the previous one.
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// See [`STREAM_WINDOW_BYTES`]; the connection's window covers every stream on it, so it also
/// bounds what a relay (the gateway) holds for many streams at once.
pub const CONNECTION_WINDOW_BYTES: u32 = 8 << 20;
/// The largest HTTP/2 frame a receiver accepts: bigger frames cut the per-frame work of large
/// messages (the default is 16 KiB).
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// The stream type of server-streaming methods.
pub type ResponseStream<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "cannot listen on {addr}: {source} (is another process using it? set KTRDR_LISTEN_ADDR)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot serve metrics on {addr}: {source} (is another process using it? set KTRDR_METRICS_ADDR, or off)"
    )]
    MetricsBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid descriptor set for reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("gRPC server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs the producer of a server stream (`tx` is a clone of the sender it feeds). If the
/// producer panics, the stream ends with `INTERNAL` naming `what` instead of ending as if all
/// went well; the panic is in the log.
pub fn spawn_stream_task<T, F>(
    tx: tokio::sync::mpsc::Sender<Result<T, tonic::Status>>,
    what: &'static str,
    producer: F,
) where
    T: Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let task = tokio::spawn(producer);
    tokio::spawn(async move {
        if let Err(e) = task.await
            && e.is_panic()
        {
            tracing::error!("{what} failed unexpectedly: {e}");
            let _ = tx
                .send(Err(tonic::Status::internal(format!(
                    "{what} failed unexpectedly; the server log has the details"
                ))))
                .await;
        }
    });
}

/// Builder for a binary's gRPC server. Add the API services, then [`GrpcServer::bind`] and
/// [`BoundServer::serve_until`], or [`GrpcServer::serve`] to run until a signal.
pub struct GrpcServer {
    binary: &'static str,
    config: ServerConfig,
    routes: RoutesBuilder,
    service_names: Vec<&'static str>,
    descriptor_sets: Vec<&'static [u8]>,
    health: HealthReporter,
}

impl GrpcServer {
    /// A server for `binary` (used in logs and error messages) with health already mounted.
    pub fn new(binary: &'static str, config: ServerConfig) -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        Self {
            binary,
            config,
            routes,
            service_names: Vec::new(),
            descriptor_sets: Vec::new(),
            health,
        }
    }

    /// The health reporter, for services that change their own status (e.g. IB disconnected).
    pub fn health_reporter(&self) -> HealthReporter {
        self.health.clone()
    }

    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Registers an encoded `FileDescriptorSet` for reflection (the API's own descriptors).
    pub fn with_descriptor_set(mut self, descriptor_set: &'static [u8]) -> Self {
        self.descriptor_sets.push(descriptor_set);
        self
    }

    /// Mounts an API service; its health status becomes SERVING once the server is bound.
    /// Message-size limits are per generated server, so apply [`crate::with_message_limits!`]
    /// before passing it in.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower_service::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Binds the listen address, mounts reflection and marks every service SERVING.
    pub async fn bind(self) -> Result<BoundServer, ServerError> {
        let addr = self.config.listen_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;

        let metrics = match self.config.metrics_addr {
            None => None,
            Some(addr) => {
                let listener = crate::metrics::bind(addr)
                    .await
                    .map_err(|source| ServerError::MetricsBind { addr, source })?;
                let local = listener
                    .local_addr()
                    .map_err(|source| ServerError::MetricsBind { addr, source })?;
                Some((listener, local))
            }
        };

        let mut routes = self.routes;
        routes.add_service(reflection_v1(&self.descriptor_sets, &self.service_names)?);
        routes.add_service(reflection_v1alpha(
            &self.descriptor_sets,
            &self.service_names,
        )?);

        for name in &self.service_names {
            self.health
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        Ok(BoundServer {
            binary: self.binary,
            config: self.config,
            listener,
            local_addr,
            metrics,
            routes,
            service_names: self.service_names,
            health: self.health,
        })
    }

    /// Binds and serves until SIGTERM or SIGINT, then drains.
    pub async fn serve(self) -> Result<(), ServerError> {
        let shutdown = shutdown_signal();
        self.bind().await?.serve_until(shutdown).await
    }
}

/// Services every server offers besides its API.
const INFRASTRUCTURE_SERVICES: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Reflection over all descriptor sets, advertising only the services this server mounts (the
/// ktrdr descriptor set holds every ktrdr service, but each binary serves only some).
fn reflection_builder(
    descriptor_sets: &[&'static [u8]],
    service_names: &[&'static str],
) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
    for set in descriptor_sets {
        builder = builder.register_encoded_file_descriptor_set(set);
    }
    for name in INFRASTRUCTURE_SERVICES.iter().chain(service_names) {
        builder = builder.with_service_name(*name);
    }
    builder
}

fn reflection_v1(
    descriptor_sets: &[&'static [u8]],
    service_names: &[&'static str],
) -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    ServerError,
> {
    Ok(reflection_builder(descriptor_sets, service_names).build_v1()?)
}

fn reflection_v1alpha(
    descriptor_sets: &[&'static [u8]],
    service_names: &[&'static str],
) -> Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
    ServerError,
> {
    Ok(reflection_builder(descriptor_sets, service_names).build_v1alpha()?)
}

/// A server whose listener is bound; [`BoundServer::local_addr`] is known (port 0 resolved).
pub struct BoundServer {
    binary: &'static str,
    config: ServerConfig,
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics: Option<(TcpListener, SocketAddr)>,
    routes: RoutesBuilder,
    service_names: Vec<&'static str>,
    health: HealthReporter,
}

impl BoundServer {
    /// The address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address metrics are served on, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

    /// Serves until `shutdown` completes, then drains in-flight calls for the grace period.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Self {
            binary,
            config,
            listener,
            local_addr,
            metrics,
            routes,
            service_names,
            health,
        } = self;
        // Logged before "listening on", so whoever waits for that line knows both addresses.
        let _metrics = metrics.map(|(listener, addr)| {
            tracing::info!(%addr, "{binary} serving metrics on http://{addr}/metrics");
            AbortOnDrop(tokio::spawn(crate::metrics::serve(
                listener,
                std::future::pending(),
            )))
        });
        tracing::info!(
            addr = %local_addr,
            services = ?service_names,
            "{binary} listening on {local_addr}"
        );

        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        let router = Server::builder()
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .max_frame_size(MAX_FRAME_BYTES)
            .http2_keepalive_interval(Some(Duration::from_secs(60)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .layer(RpcLogLayer::new(
                INFRASTRUCTURE_SERVICES
                    .iter()
                    .copied()
                    .chain(service_names.iter().copied()),
            ))
            .layer(ConcurrencyLimitLayer::new(
                binary,
                config.max_concurrent_streams,
            ))
            .layer(DecodeErrorLayer)
            .add_routes(routes.routes());
        let mut serving = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = drain_rx.await;
        }));

        tokio::select! {
            ended = &mut serving => return Ok(ended??),
            () = shutdown => {}
        }

        let grace = config.shutdown_grace;
        tracing::info!(
            "{binary} shutting down: no new calls, in-flight calls have {} ms to finish",
            grace.as_millis()
        );
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in &service_names {
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let _ = drain_tx.send(());
        match tokio::time::timeout(grace, &mut serving).await {
            Ok(ended) => ended??,
            Err(_) => {
                serving.abort();
                tracing::warn!(
                    "{binary}: grace period of {} ms over, dropping calls still running",
                    grace.as_millis()
                );
            }
        }
        tracing::info!("{binary} stopped");
        Ok(())
    }
}

/// Aborts the task when dropped (the metrics endpoint lives as long as the gRPC server).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl+C). The handlers are installed when this is called, not
/// when the future is first polled, so a signal that arrives right after start-up is not lost
/// to the default action (which would kill the process without draining).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("received SIGTERM"),
                        _ = int.recv() => tracing::info!("received SIGINT"),
                    }
                }
                (term, int) => {
                    let err = term
                        .err()
                        .or(int.err())
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    tracing::warn!(
                        "cannot install signal handlers ({err}); stopping on Ctrl+C only"
                    );
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Applies the configured message-size limits to a generated tonic server:
/// `with_message_limits!(DataServiceServer::new(svc), &config.server)`.
#[macro_export]
macro_rules! with_message_limits {
    ($server:expr, $config:expr) => {{
        let config: &$crate::config::ServerConfig = $config;
        $server
            .max_decoding_message_size(config.max_message_bytes)
            .max_encoding_message_size(config.max_message_bytes)
    }};
}
