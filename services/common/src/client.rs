//! Client channels to other ktrdr services.
//!
//! A [`ChannelPool`] hands out one [`Channel`] per URL (or URL list), shared by every caller:
//! tonic channels multiplex calls over HTTP/2, so there is no reason to connect per call. The
//! channels connect lazily (a service that starts before its dependencies does not fail), with a
//! connect timeout, HTTP/2 keepalive and the same flow-control windows and frame size as the
//! servers ([`crate::server::STREAM_WINDOW_BYTES`]). A comma-separated list is balanced across its endpoints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::config::parse_url_list;
use crate::error::ServiceError;
use crate::server::{CONNECTION_WINDOW_BYTES, MAX_FRAME_BYTES, STREAM_WINDOW_BYTES};

/// How channels connect and keep their connections alive.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    /// Time allowed to establish a TCP + HTTP/2 connection.
    pub connect_timeout: Duration,
    /// Interval of HTTP/2 pings while calls are open. gRPC servers in other languages reject
    /// pings more frequent than every 5 minutes when idle, so pings are only sent while calls run.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is considered dead.
    pub keepalive_timeout: Duration,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// One endpoint with the options applied; the error names the bad URL.
pub fn endpoint(url: &str, options: &ChannelOptions) -> Result<Endpoint, ServiceError> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| {
        ServiceError::failed_precondition(
            "INVALID_SERVICE_URL",
            format!("invalid URL {url:?}: {e}"),
        )
        .with_metadata("url", url)
    })?;
    Ok(endpoint
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .connect_timeout(options.connect_timeout)
        .http2_keep_alive_interval(options.keepalive_interval)
        .keep_alive_timeout(options.keepalive_timeout)
        .keep_alive_while_idle(false)
        .tcp_nodelay(true))
}

/// Shared, lazily connected channels keyed by URL list.
#[derive(Debug, Clone, Default)]
pub struct ChannelPool {
    options: ChannelOptions,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl ChannelPool {
    pub fn new(options: ChannelOptions) -> Self {
        Self {
            options,
            channels: Arc::default(),
        }
    }

    /// The channel for `urls` (one URL or a comma-separated list), created on first use.
    /// Must be called inside a Tokio runtime: balanced channels run a background task.
    pub fn channel(&self, urls: &str) -> Result<Channel, ServiceError> {
        let list = parse_url_list(urls).ok_or_else(|| {
            ServiceError::failed_precondition(
                "INVALID_SERVICE_URL",
                format!(
                    "invalid service URL list {urls:?}: expected http(s)://host:port[,http(s)://host:port…]"
                ),
            )
            .with_metadata("url", urls)
        })?;
        let key = list.join(",");
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = channels.get(&key) {
            return Ok(channel.clone());
        }
        let channel = match list.as_slice() {
            [one] => endpoint(one, &self.options)?.connect_lazy(),
            many => {
                let endpoints = many
                    .iter()
                    .map(|url| endpoint(url, &self.options))
                    .collect::<Result<Vec<_>, _>>()?;
                Channel::balance_list(endpoints.into_iter())
            }
        };
        channels.insert(key, channel.clone());
        Ok(channel)
    }

    /// How many distinct channels the pool holds.
    pub fn len(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use tonic_health::ServingStatus;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::config::{Env, ServerConfig, loopback};
    use crate::server::GrpcServer;

    /// Starts a server with only health, where `probe` reports `status`; returns its URL.
    async fn health_server(status: ServingStatus) -> String {
        let config = ServerConfig::from_env(&Env::default(), loopback(0)).unwrap();
        let server = GrpcServer::new("test", config);
        server
            .health_reporter()
            .set_service_status("probe", status)
            .await;
        let bound = server.bind().await.unwrap();
        let url = format!("http://{}", bound.local_addr());
        tokio::spawn(bound.serve_until(std::future::pending()));
        url
    }

    async fn probe(channel: Channel) -> i32 {
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "probe".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    }

    #[tokio::test]
    async fn one_channel_per_url_shared_by_callers() {
        let url = health_server(ServingStatus::Serving).await;
        let pool = ChannelPool::default();
        let a = pool.channel(&url).unwrap();
        let b = pool.channel(&format!(" {url} ")).unwrap();
        assert_eq!(pool.len(), 1);
        assert_eq!(probe(a).await, 1);
        assert_eq!(probe(b).await, 1);
    }

    #[tokio::test]
    async fn channels_connect_lazily_so_a_missing_server_is_not_an_error_until_called() {
        let pool = ChannelPool::default();
        let channel = pool.channel("http://127.0.0.1:9").unwrap();
        let err = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
    }

    #[tokio::test]
    async fn a_url_list_is_balanced_across_its_endpoints() {
        let serving = health_server(ServingStatus::Serving).await;
        let not_serving = health_server(ServingStatus::NotServing).await;
        let pool = ChannelPool::default();
        let channel = pool.channel(&format!("{serving},{not_serving}")).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..200 {
            seen.insert(probe(channel.clone()).await);
            if seen.len() == 2 {
                break;
            }
        }
        assert_eq!(seen, HashSet::from([1, 2]), "both endpoints must answer");
    }

    #[tokio::test]
    async fn bad_urls_are_a_failed_precondition_naming_the_url() {
        let pool = ChannelPool::default();
        let err = pool.channel("localhost:50054").unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(err.to_string().contains("localhost:50054"));
        assert!(pool.is_empty());
    }
}
