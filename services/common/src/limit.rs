//! A tower layer that bounds the API calls a server runs at once, so a burst of callers cannot
//! grow its memory without bound. Each call holds a permit from when its request arrives until
//! its response body ends (the last message of a stream, or the client going away); a call
//! beyond the limit is answered at once with RESOURCE_EXHAUSTED, `ErrorInfo{reason:
//! TOO_MANY_STREAMS}` and `RetryInfo`, without reaching the service. Health checks and
//! reflection are never refused, so probes and tools still answer under load.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;

use crate::ServiceError;

/// How long a refused caller is told to wait before retrying.
const RETRY_AFTER: Duration = Duration::from_millis(200);

fn is_infrastructure(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// Adds [`ConcurrencyLimit`] around a service; every clone shares the same permits.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    binary: &'static str,
    limit: usize,
    permits: Arc<Semaphore>,
}

impl ConcurrencyLimitLayer {
    pub fn new(binary: &'static str, limit: usize) -> Self {
        Self {
            binary,
            limit,
            permits: Arc::new(Semaphore::new(limit)),
        }
    }
}

impl<S> tower_layer::Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit {
            inner,
            limit: self.clone(),
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    limit: ConcurrencyLimitLayer,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> tower_service::Service<Request<ReqBody>> for ConcurrencyLimit<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if is_infrastructure(req.uri().path()) {
            return Box::pin(self.inner.call(req));
        }
        let Ok(permit) = Arc::clone(&self.limit.permits).try_acquire_owned() else {
            let status: tonic::Status = ServiceError::resource_exhausted(
                "TOO_MANY_STREAMS",
                format!(
                    "{} already serves {} calls at once (KTRDR_MAX_CONCURRENT_STREAMS); retry after the RetryInfo delay",
                    self.limit.binary, self.limit.limit
                ),
                Some(RETRY_AFTER),
            )
            .into();
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let call = self.inner.call(req);
        Box::pin(async move {
            let response = call.await?;
            Ok(response.map(|inner| {
                Body::new(PermitBody {
                    inner,
                    _permit: permit,
                })
            }))
        })
    }
}

pin_project! {
    /// A response body that holds its call's permit until it is dropped.
    struct PermitBody {
        #[pin]
        inner: Body,
        _permit: OwnedSemaphorePermit,
    }
}

impl HttpBody for PermitBody {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic_types::StatusExt;
    use tower_service::Service;

    /// A response body that streams until it is dropped, like a long server stream.
    struct Streaming;

    impl HttpBody for Streaming {
        type Data = <Body as HttpBody>::Data;
        type Error = tonic::Status;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[derive(Clone)]
    struct Echo;

    impl tower_service::Service<Request<()>> for Echo {
        type Response = Response<Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response<Body>, Self::Error>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: Request<()>) -> Self::Future {
            std::future::ready(Ok(Response::new(Body::new(Streaming))))
        }
    }

    fn request(path: &str) -> Request<()> {
        Request::builder().uri(path).body(()).unwrap()
    }

    #[tokio::test]
    async fn a_call_beyond_the_limit_is_refused_with_retry_info_until_a_body_ends() {
        let mut service = tower_layer::Layer::layer(&ConcurrencyLimitLayer::new("test", 1), Echo);
        let first = service.call(request("/a.B/C")).await.unwrap();
        assert!(first.headers().get("grpc-status").is_none());

        let refused = service.call(request("/a.B/C")).await.unwrap();
        let status = tonic::Status::from_header_map(refused.headers()).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.get_error_details().retry_info().is_some());
        // Health checks are never refused.
        let health = service
            .call(request("/grpc.health.v1.Health/Check"))
            .await
            .unwrap();
        assert!(health.headers().get("grpc-status").is_none());

        drop(first);
        let again = service.call(request("/a.B/C")).await.unwrap();
        assert!(again.headers().get("grpc-status").is_none());
    }
}
