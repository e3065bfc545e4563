//! Prometheus metrics: one registry per process, the RPC metrics every [`crate::server`]
//! records, and a small HTTP endpoint that serves them in the OpenMetrics text format on its own
//! port (`KTRDR_METRICS_ADDR`, see [`crate::config::ServerConfig`]).
//!
//! Services add their own metrics with [`register`] and keep the handle, e.g.
//! `static BARS: LazyLock<Counter> = LazyLock::new(|| metrics::register("x", "help", Counter::default()));`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::Code;

pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

/// Registers `metric` under `name` (counters get the `_total` suffix when encoded) and returns
/// it; the returned handle and the registered one share their value.
pub fn register<M: Metric + Clone>(name: &str, help: &str, metric: M) -> M {
    REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .register(name, help, metric.clone());
    metric
}

/// Latency buckets in seconds: 1 ms to 2 min (IB pacing and training calls are slow).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

type RpcLabels = [(&'static str, String); 3];

struct RpcMetrics {
    handled: Family<RpcLabels, Counter>,
    seconds: Family<RpcLabels, Histogram, fn() -> Histogram>,
}

static RPC: LazyLock<RpcMetrics> = LazyLock::new(|| RpcMetrics {
    handled: register(
        "grpc_server_handled",
        "RPCs completed on the server, by service, method and gRPC code",
        Family::default(),
    ),
    seconds: register(
        "grpc_server_handling_seconds",
        "Time from request to the last response byte (streams: to the trailers), by service, method and gRPC code",
        Family::new_with_constructor(latency_histogram as fn() -> Histogram),
    ),
});

/// Records one completed RPC. `path` is the HTTP/2 path, `/package.Service/Method`; paths of
/// services the server does not serve are counted as `unknown` so that random paths cannot
/// create label sets without bound.
pub(crate) fn record_rpc(path: &str, served: &[&str], code: Code, elapsed: Duration) {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .filter(|(service, _)| served.contains(service))
        .map_or(("unknown", "unknown"), |(s, m)| (s, m));
    let labels: RpcLabels = [
        ("grpc_service", service.to_owned()),
        ("grpc_method", method.to_owned()),
        ("grpc_code", code_name(code).to_owned()),
    ];
    RPC.handled.get_or_create(&labels).inc();
    RPC.seconds
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
}

/// The canonical name of a gRPC code (`OK`, `NOT_FOUND`, …).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Everything registered, in the OpenMetrics text format.
pub fn render() -> String {
    LazyLock::force(&RPC);
    let mut out = String::new();
    let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `listener` until `shutdown` completes. One request per connection
/// (`Connection: close`), which is all Prometheus needs; anything else gets 404 or 405.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream));
                }
                Err(e) => {
                    tracing::warn!("metrics endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Longest a client may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head read.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

async fn answer(mut stream: TcpStream) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if !matches!(read, Ok(true)) {
        return;
    }
    let request_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics" | "/") => ("200 OK", CONTENT_TYPE, render()),
        (_, "/metrics" | "/") => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_owned(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            "metrics are at /metrics\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_the_registry_over_http_and_counts_rpcs_by_code() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, std::future::pending()));
        record_rpc(
            "/ktrdr.test.v1.T/Get",
            &["ktrdr.test.v1.T"],
            Code::NotFound,
            Duration::from_millis(3),
        );
        record_rpc(
            "/nope.X/Y",
            &["ktrdr.test.v1.T"],
            Code::Unimplemented,
            Duration::ZERO,
        );

        let response = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains(CONTENT_TYPE));
        assert!(response.contains(
            r#"grpc_server_handled_total{grpc_service="ktrdr.test.v1.T",grpc_method="Get",grpc_code="NOT_FOUND"} 1"#
        ), "{response}");
        assert!(response.contains(
            r#"grpc_server_handled_total{grpc_service="unknown",grpc_method="unknown",grpc_code="UNIMPLEMENTED"}"#
        ));
        assert!(response.contains("grpc_server_handling_seconds_bucket{"));
        assert!(response.trim_end().ends_with("# EOF"));

        assert!(
            get(addr, "GET /other HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 404")
        );
        assert!(
            get(addr, "POST /metrics HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 405")
        );
    }
}
