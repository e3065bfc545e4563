//! A tower layer that writes one log line per RPC when it completes (method, gRPC code, latency
//! and peer) and records it in the RPC metrics ([`crate::metrics`]). The code of a streaming call
//! is only known from its trailers, so the response body is wrapped and the call is finished when
//! the trailers pass (or when the client goes away).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Code;
use tonic::transport::server::TcpConnectInfo;
use tracing::Instrument;
use tracing::instrument::Instrumented;

/// Adds [`RpcLog`] around a service.
#[derive(Debug, Clone, Default)]
pub struct RpcLogLayer {
    /// The gRPC services the server mounts; metrics label other paths `unknown`.
    served: Arc<[&'static str]>,
}

impl RpcLogLayer {
    pub fn new(served: impl IntoIterator<Item = &'static str>) -> Self {
        Self {
            served: served.into_iter().collect(),
        }
    }
}

impl<S> tower_layer::Layer<S> for RpcLogLayer {
    type Service = RpcLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcLog {
            inner,
            served: Arc::clone(&self.served),
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct RpcLog<S> {
    inner: S,
    served: Arc<[&'static str]>,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for RpcLog<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<LoggedBody<ResBody>>;
    type Error = S::Error;
    type Future = LoggedFuture<Instrumented<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        let span = crate::telemetry::server_span(req.uri().path(), req.headers());
        let call = CallRecord {
            span: span.clone(),
            method: req.uri().path().to_owned(),
            peer,
            start: Instant::now(),
            served: Arc::clone(&self.served),
        };
        LoggedFuture {
            inner: span.in_scope(|| self.inner.call(req)).instrument(span),
            call: Some(call),
        }
    }
}

struct CallRecord {
    /// The RPC's trace span (disabled unless tracing is on); ends with the record.
    span: tracing::Span,
    method: String,
    peer: Option<SocketAddr>,
    start: Instant,
    served: Arc<[&'static str]>,
}

impl CallRecord {
    /// Health checks and reflection are polled constantly by probes and tools; they only log at
    /// debug level unless they fail.
    fn is_infrastructure(&self) -> bool {
        self.method.starts_with("/grpc.health.") || self.method.starts_with("/grpc.reflection.")
    }

    fn finish(self, code: Code, message: &str) {
        let elapsed = self.start.elapsed();
        crate::telemetry::record_code(&self.span, code);
        crate::metrics::record_rpc(&self.method, &self.served, code, elapsed);
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let peer = self.peer.map(|p| p.to_string()).unwrap_or_default();
        let method = self.method.as_str();
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    rpc.method = method,
                    rpc.code = ?code,
                    latency_ms = format_args!("{latency_ms:.2}"),
                    peer = %peer,
                    error = message,
                    "rpc {method} {code:?} in {latency_ms:.2} ms"
                )
            };
        }
        match code {
            Code::Ok if self.is_infrastructure() => line!(debug),
            Code::Ok
            | Code::Cancelled
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Unauthenticated
            | Code::PermissionDenied
            | Code::Aborted => line!(info),
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => line!(warn),
            Code::Unknown | Code::Internal | Code::DataLoss => line!(error),
        }
    }
}

/// The code and message of a `grpc-status` in headers or trailers.
fn grpc_status(headers: &http::HeaderMap) -> Option<(Code, String)> {
    tonic::Status::from_header_map(headers).map(|s| (s.code(), s.message().to_owned()))
}

pin_project! {
    /// The response future of [`RpcLog`].
    pub struct LoggedFuture<F> {
        #[pin]
        inner: F,
        call: Option<CallRecord>,
    }
}

impl<F, B, E> Future for LoggedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<LoggedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                // A "trailers-only" response (typical for errors) has its status in the headers.
                let call = match (call, grpc_status(&parts.headers)) {
                    (Some(call), Some((code, message))) => {
                        call.finish(code, &message);
                        None
                    }
                    (call, _) => call,
                };
                Ok(Response::from_parts(
                    parts,
                    LoggedBody { inner: body, call },
                ))
            }
            Err(err) => {
                if let Some(call) = call {
                    call.finish(Code::Internal, "the service failed before responding");
                }
                Err(err)
            }
        })
    }
}

pin_project! {
    /// The response body of [`RpcLog`]; logs when the trailers pass.
    pub struct LoggedBody<B> {
        #[pin]
        inner: B,
        call: Option<CallRecord>,
    }

    impl<B> PinnedDrop for LoggedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                call.finish(Code::Cancelled, "the client went away before the call completed");
            }
        }
    }
}

impl<B: Body> Body for LoggedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        let outcome = match &frame {
            Some(Ok(frame)) => frame
                .trailers_ref()
                .map(|trailers| grpc_status(trailers).unwrap_or((Code::Ok, String::new()))),
            Some(Err(_)) => Some((Code::Internal, "the response stream failed".to_owned())),
            None => Some((
                Code::Unknown,
                "the response ended without a grpc-status".to_owned(),
            )),
        };
        if let Some((code, message)) = outcome
            && let Some(call) = this.call.take()
        {
            call.finish(code, &message);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
