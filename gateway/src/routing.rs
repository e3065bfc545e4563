//! What every routed capability shares: the host service's channel or the in-process
//! implementation, call statistics, deadline-carrying forwarding (with a default deadline for
//! unary calls), retries of idempotent calls on `UNAVAILABLE` with exponential backoff and
//! jitter, and the error a caller gets when the host service is down.
//!
//! Invariant: a transport failure of a host service (refused connection, the process killed
//! mid-call or mid-stream) reaches the caller as `UNAVAILABLE` naming the service and its URL,
//! with `ErrorInfo{service, url}` and `RetryInfo` ([`enrich`]); every relayed stream goes
//! through [`Endpoint::relay`], so this holds for stream items as for call answers.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use ktrdr_common::client::ChannelPool;
use ktrdr_common::deadline;
use ktrdr_common::error::ServiceError;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::config::{CallPolicy, ManagerSpec, Route};
use crate::stats::BackendStats;

/// A uniformly random duration in `[0, max]` ("full jitter"), so retries of many callers after
/// one outage do not arrive in lockstep. `RandomState` is seeded randomly per instance, which is
/// all the randomness this needs.
fn jitter(max: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(random % nanos.saturating_add(1))
}

/// The pause before retry number `attempt` (0-based): `base · 2^attempt`, jittered.
pub fn retry_delay(base: Duration, attempt: u32) -> Duration {
    jitter(base.saturating_mul(1 << attempt.min(16)))
}

/// What tonic answers when a response body ends inside a message.
const TRUNCATED_MESSAGE: &str = "Unexpected EOF decoding stream.";

/// Whether `status` comes from the transport rather than from the host service:
/// - tonic's own `UNAVAILABLE` (no `ErrorInfo`: the connection was refused or lost);
/// - `UNKNOWN` without details: ktrdr services never answer it, tonic does for a stream that
///   ended without a final status or an HTTP/2 error it cannot place;
/// - `INTERNAL` or `CANCELLED` raised by the connection itself (they carry the transport error
///   as their source; a status a service sends arrives in trailers and carries none), or a body
///   cut inside a message.
pub fn is_transport_failure(status: &Status) -> bool {
    let from_transport = std::error::Error::source(status).is_some();
    match status.code() {
        tonic::Code::Unavailable => status.get_error_details().error_info().is_none(),
        tonic::Code::Unknown => from_transport || status.details().is_empty(),
        tonic::Code::Internal => from_transport || status.message() == TRUNCATED_MESSAGE,
        tonic::Code::Cancelled => from_transport,
        _ => false,
    }
}

/// A transport failure or a missed deadline of `spec`'s host service at `url`, as the error
/// convention wants it: `UNAVAILABLE` with `ErrorInfo{service, url}` and `RetryInfo`, the cause
/// in the message. Errors the service itself returned pass through.
pub fn enrich(spec: &ManagerSpec, url: &str, status: Status) -> Status {
    if is_transport_failure(&status) {
        let hint = if status.code() == tonic::Code::Unavailable {
            spec.hint.to_owned()
        } else {
            format!(
                "the connection failed mid-call ({}); {}",
                status.message(),
                spec.hint
            )
        };
        ServiceError::service_unavailable(spec.label, url.to_owned(), hint).into()
    } else if status.code() == tonic::Code::DeadlineExceeded {
        Status::deadline_exceeded(format!(
            "{} service at {url} did not answer in time: {}",
            spec.label,
            status.message()
        ))
    } else {
        status
    }
}

/// Where a capability's calls go.
pub enum Backend<L> {
    Remote { channel: Channel, url: String },
    Local(L),
}

impl<L> Backend<L> {
    /// The host service behind `route`'s URL(s), over the pool's shared channel.
    pub fn remote(route: &Route, pool: &ChannelPool) -> Result<Self, ServiceError> {
        let url = route.urls.join(",");
        Ok(Self::Remote {
            channel: pool.channel(&url)?,
            url,
        })
    }
}

/// What every routed capability has, whatever runs it: its declaration, its route, its call
/// statistics and policy, and the host service's channel when calls go there. Managers expose
/// it to [`crate::orchestrator::ServiceOrchestrator`], which derives everything else from it.
pub struct Endpoint {
    pub spec: &'static ManagerSpec,
    pub route: Route,
    pub stats: BackendStats,
    pub policy: CallPolicy,
    /// The host service's channel and URL(s), when routed there.
    remote: Option<(Channel, String)>,
}

/// A capability routed to its host service or to the in-process implementation `L`.
pub struct Routed<L> {
    pub endpoint: Endpoint,
    pub backend: Backend<L>,
}

impl<L> Routed<L> {
    pub fn new(
        spec: &'static ManagerSpec,
        route: Route,
        backend: Backend<L>,
        policy: CallPolicy,
    ) -> Self {
        let remote = match &backend {
            Backend::Remote { channel, url } => Some((channel.clone(), url.clone())),
            Backend::Local(_) => None,
        };
        Self {
            endpoint: Endpoint {
                spec,
                route,
                stats: BackendStats::default(),
                policy,
                remote,
            },
            backend,
        }
    }
}

impl<L> std::ops::Deref for Routed<L> {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Endpoint {
    /// When a unary call received now must be answered: the caller's deadline when it set one,
    /// else the default.
    pub fn deadline(&self, metadata: &MetadataMap) -> Instant {
        Instant::now() + deadline::incoming_timeout(metadata).unwrap_or(self.policy.default_timeout)
    }

    /// A downstream request with the caller's metadata that must be answered by `deadline`
    /// (from [`Routed::deadline`]): it carries what remains, so retries never outlive the caller.
    pub fn request_until<T>(
        &self,
        deadline: Instant,
        metadata: &MetadataMap,
        message: T,
    ) -> tonic::Request<T> {
        let mut request = deadline::forward(metadata, message);
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        request
    }

    /// The channel to the host service, when routed there.
    pub fn channel(&self) -> Option<Channel> {
        self.remote.as_ref().map(|(channel, _)| channel.clone())
    }

    /// The host service's URL(s), when calls go to one.
    fn remote_url(&self) -> Option<&str> {
        self.remote.as_ref().map(|(_, url)| url.as_str())
    }

    /// [`enrich`] for this capability's host service at `url`.
    pub fn enrich_at(&self, url: &str, status: Status) -> Status {
        enrich(self.spec, url, status)
    }

    /// The host service's stream from `url`, relayed item by item; an error in it passes
    /// through [`enrich`], so a host that dies mid-stream ends the caller's stream with
    /// `UNAVAILABLE` naming it rather than tonic's `UNKNOWN: h2 protocol error`.
    pub fn relay<T: Send + 'static>(
        &self,
        url: &str,
        stream: tonic::Streaming<T>,
    ) -> ktrdr_common::server::ResponseStream<T> {
        let (spec, url) = (self.spec, url.to_owned());
        Box::pin(tokio_stream::StreamExt::map(stream, move |item| {
            item.map_err(|status| enrich(spec, &url, status))
        }))
    }

    /// Times one call to the routed backend and records its outcome.
    pub async fn observe<T>(
        &self,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        self.observe_at(self.remote_url(), call).await
    }

    /// Times one call to the host at `url` (`None`: in-process) and records its outcome.
    pub async fn observe_at<T>(
        &self,
        url: Option<&str>,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let (_in_flight, started) = self.stats.start();
        let result = call.await.map_err(|s| match url {
            Some(url) => self.enrich_at(url, s),
            None => s,
        });
        self.stats
            .finish(started.elapsed(), result.as_ref().map(drop));
        result
    }

    /// Runs `call`; if it is `idempotent` and the host service was unavailable, again up to
    /// `policy.retries` times with exponential backoff and jitter.
    pub async fn retrying<T, F, Fut>(&self, idempotent: bool, call: F) -> Result<T, Status>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut attempt = 0;
        loop {
            let result = call().await;
            let unavailable = matches!(&result, Err(s) if s.code() == tonic::Code::Unavailable);
            if !(idempotent && unavailable) || attempt >= self.policy.retries {
                return result;
            }
            self.stats.retried();
            tokio::time::sleep(retry_delay(self.policy.retry_backoff, attempt)).await;
            attempt += 1;
        }
    }
}

/// A unary method: in-process, or forwarded with the caller's deadline (and retried once when
/// `$idempotent`).
macro_rules! routed_unary {
    ($routed:expr, $client:expr, $request:ident, $method:ident, $idempotent:expr) => {{
        let routed = $routed;
        match &routed.backend {
            $crate::routing::Backend::Local(local) => routed.observe(local.$method($request)).await,
            $crate::routing::Backend::Remote { channel, .. } => {
                let (metadata, _, message) = $request.into_parts();
                let deadline = routed.deadline(&metadata);
                let call = || {
                    let mut client = $client(channel.clone());
                    let request = routed.request_until(deadline, &metadata, message.clone());
                    async move { client.$method(request).await }
                };
                routed.observe(routed.retrying($idempotent, call)).await
            }
        }
    }};
}

/// A server-streaming method: in-process, or the host service's stream relayed as it arrives
/// ([`Endpoint::relay`]).
macro_rules! routed_server_stream {
    ($routed:expr, $client:expr, $request:ident, $method:ident) => {{
        let routed = $routed;
        match &routed.backend {
            $crate::routing::Backend::Local(local) => routed.observe(local.$method($request)).await,
            $crate::routing::Backend::Remote { channel, url } => {
                let (metadata, _, message) = $request.into_parts();
                let mut client = $client(channel.clone());
                routed
                    .observe(async move {
                        client
                            .$method(ktrdr_common::deadline::forward(&metadata, message))
                            .await
                            .map(|r| tonic::Response::new(routed.relay(url, r.into_inner())))
                    })
                    .await
            }
        }
    }};
}

/// A client-streaming method: in-process, or the caller's stream forwarded as it arrives.
macro_rules! routed_client_stream {
    ($routed:expr, $client:expr, $request:ident, $method:ident) => {{
        let routed = $routed;
        match &routed.backend {
            $crate::routing::Backend::Local(local) => routed.observe(local.$method($request)).await,
            $crate::routing::Backend::Remote { channel, .. } => {
                let (metadata, _, stream) = $request.into_parts();
                // A failing upload ends the forwarded stream early.
                let messages = tokio_stream::StreamExt::map_while(stream, Result::ok);
                let mut client = $client(channel.clone());
                routed
                    .observe(async move {
                        client
                            .$method(ktrdr_common::deadline::forward(&metadata, messages))
                            .await
                    })
                    .await
            }
        }
    }};
}

/// The whole `impl $service for $manager` of a manager whose every method is relayed as it is:
/// one line per method, `unary name(Request) -> Response, idempotent;`,
/// `server_stream name(Request) -> Response, StreamType;` or
/// `client_stream name(Request) -> Response;`. The manager has a `routed` field and a
/// `client(Channel)` function in scope.
macro_rules! relay_service {
    ($service:path, $manager:ty { $($methods:tt)* }) => {
        $crate::routing::relay_service!(@methods $service, $manager; []; $($methods)*);
    };
    (@methods $service:path, $manager:ty; [$($done:tt)*];) => {
        #[tonic::async_trait]
        impl $service for $manager {
            $($done)*
        }
    };
    (@methods $service:path, $manager:ty; [$($done:tt)*];
        unary $method:ident($req:ty) -> $resp:ty, $idempotent:expr; $($rest:tt)*) => {
        $crate::routing::relay_service!(@methods $service, $manager; [$($done)*
            async fn $method(
                &self,
                request: tonic::Request<$req>,
            ) -> Result<tonic::Response<$resp>, tonic::Status> {
                $crate::routing::routed_unary!(&self.routed, client, request, $method, $idempotent)
            }
        ]; $($rest)*);
    };
    (@methods $service:path, $manager:ty; [$($done:tt)*];
        server_stream $method:ident($req:ty) -> $resp:ty, $stream:ident; $($rest:tt)*) => {
        $crate::routing::relay_service!(@methods $service, $manager; [$($done)*
            type $stream = ktrdr_common::server::ResponseStream<$resp>;

            async fn $method(
                &self,
                request: tonic::Request<$req>,
            ) -> Result<tonic::Response<Self::$stream>, tonic::Status> {
                $crate::routing::routed_server_stream!(&self.routed, client, request, $method)
            }
        ]; $($rest)*);
    };
    (@methods $service:path, $manager:ty; [$($done:tt)*];
        client_stream $method:ident($req:ty) -> $resp:ty; $($rest:tt)*) => {
        $crate::routing::relay_service!(@methods $service, $manager; [$($done)*
            async fn $method(
                &self,
                request: tonic::Request<tonic::Streaming<$req>>,
            ) -> Result<tonic::Response<$resp>, tonic::Status> {
                $crate::routing::routed_client_stream!(&self.routed, client, request, $method)
            }
        ]; $($rest)*);
    };
}

pub(crate) use {relay_service, routed_client_stream, routed_server_stream, routed_unary};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_request_carries_what_remains_of_the_callers_deadline() {
        let routed: Routed<()> = Routed::new(
            &crate::config::DATA,
            Route {
                use_host_service: true,
                urls: vec!["http://127.0.0.1:1".into()],
            },
            Backend::Local(()),
            CallPolicy::default(),
        );
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", "5S".parse().unwrap());
        let deadline = routed.deadline(&metadata);
        let remaining =
            |request: &tonic::Request<()>| deadline::incoming_timeout(request.metadata()).unwrap();
        let first = routed.request_until(deadline, &metadata, ());
        assert!(remaining(&first) <= Duration::from_secs(5));
        // After a pause (a retry's backoff) less remains.
        let later = routed.request_until(deadline - Duration::from_secs(2), &metadata, ());
        assert!(remaining(&later) <= Duration::from_secs(3));
        // Without a caller deadline: the default.
        let none = MetadataMap::new();
        let default = routed.request_until(routed.deadline(&none), &none, ());
        assert!(remaining(&default) <= CallPolicy::default().default_timeout);
        assert!(remaining(&default) > Duration::from_secs(29));
    }

    #[test]
    fn a_connection_lost_mid_stream_is_unavailable_naming_the_service() {
        let spec = &crate::config::TRAINING;
        let url = "http://127.0.0.1:50053";
        // What tonic yields when the host's connection breaks: the transport error as source.
        let broken = Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset",
        )));
        assert_eq!(broken.code(), tonic::Code::Unknown);
        let s = enrich(spec, url, broken);
        assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
        assert!(
            s.message().contains("Training host service unavailable at"),
            "{}",
            s.message()
        );
        let details = s.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.metadata["service"], spec.label);
        assert_eq!(info.metadata["url"], url);
        assert!(details.retry_info().is_some());
        // Answers the service sent (in trailers, no source) are its own: unchanged.
        // A stream cut without a final status, or inside a message.
        for cut in [
            Status::unknown("protocol error: missing grpc-status trailer"),
            Status::internal(TRUNCATED_MESSAGE),
        ] {
            assert_eq!(enrich(spec, url, cut).code(), tonic::Code::Unavailable);
        }
        for own in [
            Status::internal("the training thread panicked"),
            Status::cancelled("cancelled by user"),
            ServiceError::service_unavailable("data", "http://d", "start it").into(),
        ] {
            let code = own.code();
            let message = own.message().to_owned();
            let s = enrich(spec, url, own);
            assert_eq!((s.code(), s.message()), (code, message.as_str()));
        }
        // tonic's own UNAVAILABLE (connection refused) gets the details too.
        let refused = enrich(spec, url, Status::unavailable("tcp connect error"));
        assert!(refused.get_error_details().error_info().is_some());
    }

    #[test]
    fn retry_delays_stay_within_the_doubling_bound() {
        let base = Duration::from_millis(100);
        for attempt in 0..5 {
            let bound = base * 2u32.pow(attempt);
            for _ in 0..50 {
                assert!(retry_delay(base, attempt) <= bound);
            }
        }
        // Jitter: not every delay is the same.
        let delays: std::collections::HashSet<_> = (0..50).map(|_| retry_delay(base, 3)).collect();
        assert!(delays.len() > 1);
    }
}
