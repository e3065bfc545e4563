//! Bearer-token authentication of the public API (`KTRDR_AUTH_TOKEN`). Health and reflection
//! stay open: probes and `grpcurl list` need no secret, and they reveal nothing but the schema.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ktrdr_common::error::ServiceError;
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;

/// Checks `authorization: Bearer <token>` when a token is configured.
#[derive(Clone)]
pub struct BearerAuth {
    token: Option<Arc<[u8]>>,
}

impl BearerAuth {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token: token.map(|t| Arc::from(t.as_bytes())),
        }
    }

    fn check(&self, header: Option<&[u8]>) -> Result<(), ServiceError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let Some(header) = header else {
            return Err(ServiceError::unauthenticated(
                "MISSING_TOKEN",
                "this gateway requires a token: send the header `authorization: Bearer <KTRDR_AUTH_TOKEN>` (grpcurl -H 'authorization: Bearer …'; the ktrdr CLI reads KTRDR_AUTH_TOKEN)",
            ));
        };
        let presented = bearer_credentials(header).unwrap_or(b"");
        // Constant-time: the comparison must not reveal how much of a guess was right.
        if bool::from(presented.ct_eq(expected)) {
            Ok(())
        } else {
            Err(ServiceError::unauthenticated(
                "INVALID_TOKEN",
                "the bearer token does not match KTRDR_AUTH_TOKEN of this gateway",
            ))
        }
    }
}

/// The token of an `authorization` value using the Bearer scheme: the scheme name in any case
/// (RFC 7235 §2.1, RFC 6750 §2.1), one or more spaces, then the token. `None` for any other
/// scheme or a value without a token.
fn bearer_credentials(header: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer";
    let (scheme, rest) = header.split_at_checked(SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) || rest.first() != Some(&b' ') {
        return None;
    }
    let token = rest.trim_ascii_start();
    (!token.is_empty()).then_some(token)
}

/// A generated gRPC service behind [`BearerAuth`]: calls without the token are answered
/// `UNAUTHENTICATED` before they reach it.
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: BearerAuth,
}

impl<S> Authenticated<S> {
    pub fn new(inner: S, auth: BearerAuth) -> Self {
        Self { inner, auth }
    }
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower_service::Service<http::Request<Body>> for Authenticated<S>
where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(http::HeaderValue::as_bytes);
        match self.auth.check(header) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(error) => {
                let response = Status::from(error).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_token_everything_passes() {
        assert!(BearerAuth::new(None).check(None).is_ok());
    }

    #[test]
    fn with_a_token_only_the_exact_bearer_passes() {
        let auth = BearerAuth::new(Some("s3cret"));
        assert!(auth.check(Some(b"Bearer s3cret")).is_ok());
        for bad in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"s3cret",
            b"Basic s3cret",
            b"",
        ] {
            let err = auth.check(Some(bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated);
        }
        let missing = auth.check(None).unwrap_err();
        assert!(missing.to_string().contains("authorization: Bearer"));
    }

    #[test]
    fn the_bearer_scheme_name_is_case_insensitive() {
        let auth = BearerAuth::new(Some("s3cret"));
        let cases: [(&[u8], bool); 11] = [
            (b"Bearer s3cret", true),
            (b"bearer s3cret", true),
            (b"BEARER s3cret", true),
            (b"bEaReR s3cret", true),
            (b"Bearer   s3cret", true),
            (b"Bearers3cret", false),
            (b"BEARER", false),
            (b"BEARER ", false),
            (b"Bear s3cret", false),
            (b"Bearer\ts3cret", false),
            (b"Bearer s3cret ", false),
        ];
        for (header, accepted) in cases {
            let shown = String::from_utf8_lossy(header);
            assert_eq!(auth.check(Some(header)).is_ok(), accepted, "{shown}");
        }
    }
}
