//! What every routed capability shares: the host service's channel or the in-process
//! implementation, call statistics, deadline-carrying forwarding, one retry of idempotent calls
//! on `UNAVAILABLE`, and the error a caller gets when the host service is down.

use std::future::Future;
use std::time::Duration;

use ktrdr_common::error::ServiceError;
use tonic::Status;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::config::Route;
use crate::stats::BackendStats;

const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Where a capability's calls go.
pub enum Backend<L> {
    Remote { channel: Channel, url: String },
    Local(L),
}

pub struct Routed<L> {
    pub route: Route,
    pub backend: Backend<L>,
    pub stats: BackendStats,
    /// e.g. `Data`, `Training host`: the start of the "… service unavailable at URL" message.
    label: &'static str,
    /// What to do when the host service is down.
    hint: &'static str,
}

impl<L> Routed<L> {
    pub fn new(route: Route, backend: Backend<L>, label: &'static str, hint: &'static str) -> Self {
        Self {
            route,
            backend,
            stats: BackendStats::default(),
            label,
            hint,
        }
    }

    pub fn channel(&self) -> Option<Channel> {
        match &self.backend {
            Backend::Remote { channel, .. } => Some(channel.clone()),
            Backend::Local(_) => None,
        }
    }

    /// A transport failure of the host service as the error convention wants it; errors the
    /// service itself returned (with details) pass through.
    pub fn enrich(&self, status: Status) -> Status {
        let transport_failure = status.code() == tonic::Code::Unavailable
            && status.get_error_details().error_info().is_none();
        match &self.backend {
            Backend::Remote { url, .. } if transport_failure => {
                ServiceError::service_unavailable(self.label, url.clone(), self.hint).into()
            }
            _ => status,
        }
    }

    /// Times one call and records its outcome.
    pub async fn observe<T>(
        &self,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let (_in_flight, started) = self.stats.start();
        let result = call.await.map_err(|s| self.enrich(s));
        self.stats
            .finish(started.elapsed(), result.as_ref().map(drop));
        result
    }

    /// Runs `call`, and once more after a short pause if it is `idempotent` and the host
    /// service was unavailable.
    pub async fn retrying<T, F, Fut>(&self, idempotent: bool, call: F) -> Result<T, Status>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let result = call().await;
        if idempotent && matches!(&result, Err(s) if s.code() == tonic::Code::Unavailable) {
            self.stats.retried();
            tokio::time::sleep(RETRY_BACKOFF).await;
            return call().await;
        }
        result
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
                let call = || {
                    let mut client = $client(channel.clone());
                    let request = ktrdr_common::deadline::forward(&metadata, message.clone());
                    async move { client.$method(request).await }
                };
                routed.observe(routed.retrying($idempotent, call)).await
            }
        }
    }};
}

/// A server-streaming method: in-process, or the host service's stream relayed as it arrives.
macro_rules! routed_server_stream {
    ($routed:expr, $client:expr, $request:ident, $method:ident) => {{
        let routed = $routed;
        match &routed.backend {
            $crate::routing::Backend::Local(local) => routed.observe(local.$method($request)).await,
            $crate::routing::Backend::Remote { channel, .. } => {
                let (metadata, _, message) = $request.into_parts();
                let mut client = $client(channel.clone());
                routed
                    .observe(async move {
                        client
                            .$method(ktrdr_common::deadline::forward(&metadata, message))
                            .await
                            .map(|r| {
                                tonic::Response::new(Box::pin(r.into_inner())
                                    as ktrdr_common::server::ResponseStream<_>)
                            })
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

pub(crate) use {routed_client_stream, routed_server_stream, routed_unary};
