//! A tower layer that answers requests whose bytes are not a valid message of the method with
//! INVALID_ARGUMENT instead of tonic's INTERNAL, and logs them at warn: a malformed request is
//! the caller's fault, not the server's.
//!
//! tonic fails a request it cannot decode (malformed protobuf, a frame cut short, a compressed
//! flag without an encoding, a unary call without a message) before or while the handler runs,
//! always before any response header is sent, so the status is in the headers of a
//! "trailers-only" response. Only those statuses are rewritten: INTERNAL with one of tonic's
//! decoding messages. The handlers' own INTERNAL statuses never use these texts.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tonic::{Code, Status};

use crate::ServiceError;

/// How tonic (and prost through tonic) describe a request they could not decode.
const DECODE_FAILURES: &[&str] = &[
    "failed to decode Protobuf message",
    "Unexpected EOF decoding stream",
    "Missing request message",
    "protocol error: received message with",
    "Error decompressing",
];

fn is_decode_failure(status: &Status) -> bool {
    status.code() == Code::Internal
        && DECODE_FAILURES
            .iter()
            .any(|text| status.message().starts_with(text))
}

/// Rewrites a decoding failure in `headers` (a trailers-only response) to INVALID_ARGUMENT.
fn reclassify(headers: &mut HeaderMap, method: &str) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    if !is_decode_failure(&status) {
        return;
    }
    let cause = status.message();
    tracing::warn!(
        rpc.method = method,
        "undecodable request to {method}: {cause}"
    );
    let answer: Status = ServiceError::invalid_argument(
        "request",
        format!(
            "the request bytes are not a valid message for {method} ({cause}); send the message the service's .proto defines"
        ),
    )
    .into();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    if answer.add_header(headers).is_err() {
        // The message could not be a header value; the code alone still says what happened.
        headers.insert(
            "grpc-status",
            http::HeaderValue::from(Code::InvalidArgument as i32),
        );
    }
}

/// Adds [`DecodeErrors`] around a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeErrorLayer;

impl<S> tower_layer::Layer<S> for DecodeErrorLayer {
    type Service = DecodeErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeErrors { inner }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct DecodeErrors<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for DecodeErrors<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = DecodeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        DecodeFuture {
            method: req.uri().path().to_owned(),
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The response future of [`DecodeErrors`].
    pub struct DecodeFuture<F> {
        #[pin]
        inner: F,
        method: String,
    }
}

impl<F, B, E> Future for DecodeFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        if let Ok(response) = &mut result {
            reclassify(response.headers_mut(), this.method);
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoding_failure_becomes_an_invalid_argument_and_other_statuses_stay() {
        let mut headers = HeaderMap::new();
        Status::internal("failed to decode Protobuf message: invalid wire type")
            .add_header(&mut headers)
            .unwrap();
        reclassify(&mut headers, "/ktrdr.data.v1.DataService/ReadBars");
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("ReadBars"), "{status:?}");
        assert!(status.message().contains("invalid wire type"), "{status:?}");

        let mut headers = HeaderMap::new();
        Status::internal("the store is corrupt")
            .add_header(&mut headers)
            .unwrap();
        reclassify(&mut headers, "/ktrdr.data.v1.DataService/ReadBars");
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "the store is corrupt");
    }
}
