//! The replicas of a host service that runs several (training hosts): the configured URLs, with
//! DNS names resolved to one endpoint per address and resolved again periodically, so pods that
//! join or leave a Kubernetes headless Service are picked up. Each endpoint has its own pooled
//! channel, because training sessions live on one host: calls about a session must reach the
//! host that runs it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ktrdr_common::client::ChannelPool;
use ktrdr_common::error::ServiceError;
use tonic::transport::Channel;

/// A URL split into what resolution needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ParsedUrl {
    scheme: String,
    host: String,
    port: u16,
}

fn parse(url: &str) -> Option<ParsedUrl> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_owned();
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some(ParsedUrl {
        scheme,
        host: host.to_owned(),
        port,
    })
}

/// Whether `url` names a host to resolve: not an IP literal and not `localhost` (which would
/// yield both 127.0.0.1 and ::1 while servers here usually listen on one of them).
fn needs_resolution(url: &str) -> Option<ParsedUrl> {
    let parsed = parse(url)?;
    let literal = parsed.host.parse::<IpAddr>().is_ok();
    (!literal && !parsed.host.eq_ignore_ascii_case("localhost")).then_some(parsed)
}

/// The endpoints of `url` given the addresses its host resolved to (none: keep the URL, so
/// calls fail with an error that names it).
fn endpoints_of(url: &str, parsed: &ParsedUrl, addresses: &[IpAddr]) -> Vec<String> {
    if addresses.is_empty() {
        return vec![url.to_owned()];
    }
    let mut out: Vec<String> = addresses
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => format!("{}://{v4}:{}", parsed.scheme, parsed.port),
            IpAddr::V6(v6) => format!("{}://[{v6}]:{}", parsed.scheme, parsed.port),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn resolve(urls: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for url in urls {
        match needs_resolution(url) {
            None => out.push(url.clone()),
            Some(parsed) => {
                let addresses: Vec<IpAddr> =
                    match tokio::net::lookup_host((parsed.host.as_str(), parsed.port)).await {
                        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
                        Err(e) => {
                            tracing::warn!(url, error = %e, "cannot resolve; keeping the name");
                            Vec::new()
                        }
                    };
                out.extend(endpoints_of(url, &parsed, &addresses));
            }
        }
    }
    out.dedup();
    out
}

pub struct Replicas {
    configured: Vec<String>,
    pool: ChannelPool,
    endpoints: RwLock<Vec<(String, Channel)>>,
    next: AtomicUsize,
}

impl Replicas {
    /// Replicas behind `urls`, starting with the URLs as given and resolving in the background
    /// at once and then every `refresh`. Must be called inside a Tokio runtime.
    pub fn start(
        urls: &[String],
        pool: ChannelPool,
        refresh: Duration,
    ) -> Result<Arc<Self>, ServiceError> {
        let endpoints = urls
            .iter()
            .map(|url| Ok((url.clone(), pool.channel(url)?)))
            .collect::<Result<Vec<_>, ServiceError>>()?;
        let replicas = Arc::new(Self {
            configured: urls.to_vec(),
            pool,
            endpoints: RwLock::new(endpoints),
            next: AtomicUsize::new(0),
        });
        if urls.iter().any(|u| needs_resolution(u).is_some()) {
            let weak = Arc::downgrade(&replicas);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(refresh);
                loop {
                    ticks.tick().await;
                    let Some(replicas) = weak.upgrade() else {
                        return;
                    };
                    replicas.refresh().await;
                }
            });
        }
        Ok(replicas)
    }

    /// Resolves the configured URLs again and replaces the endpoint set if it changed.
    pub async fn refresh(&self) {
        let resolved = resolve(&self.configured).await;
        self.set(resolved);
    }

    fn set(&self, urls: Vec<String>) {
        let current: Vec<String> = self.urls();
        if current == urls {
            return;
        }
        let endpoints: Vec<(String, Channel)> = urls
            .into_iter()
            .filter_map(|url| self.pool.channel(&url).ok().map(|c| (url, c)))
            .collect();
        if endpoints.is_empty() {
            return;
        }
        tracing::info!(
            from = ?current,
            to = ?endpoints.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            "replica endpoints changed"
        );
        *self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner) = endpoints;
    }

    /// Every endpoint now.
    pub fn all(&self) -> Vec<(String, Channel)> {
        self.endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn urls(&self) -> Vec<String> {
        self.all().into_iter().map(|(u, _)| u).collect()
    }

    /// The endpoints in round-robin order starting with the next one: new work spreads
    /// evenly, and a caller can fall back to the following ones.
    pub fn rotation(&self) -> Vec<(String, Channel)> {
        let mut all = self.all();
        if !all.is_empty() {
            let start = self.next.fetch_add(1, Ordering::Relaxed) % all.len();
            all.rotate_left(start);
        }
        all
    }

    /// The endpoint with this URL, if it is still one of them.
    pub fn find(&self, url: &str) -> Option<Channel> {
        self.all()
            .into_iter()
            .find_map(|(u, c)| (u == url).then_some(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_are_resolved() {
        assert!(needs_resolution("http://127.0.0.1:50053").is_none());
        assert!(needs_resolution("http://[::1]:50053").is_none());
        assert!(needs_resolution("http://localhost:50053").is_none());
        let parsed = needs_resolution("http://training-host.ktrdr.svc:50053").unwrap();
        assert_eq!(parsed.host, "training-host.ktrdr.svc");
        assert_eq!(parsed.port, 50053);
    }

    #[test]
    fn a_name_becomes_one_endpoint_per_address() {
        let url = "http://training-host:50053";
        let parsed = parse(url).unwrap();
        let ips: Vec<IpAddr> = ["10.0.0.8", "10.0.0.7", "10.0.0.8", "fd00::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            endpoints_of(url, &parsed, &ips),
            [
                "http://10.0.0.7:50053",
                "http://10.0.0.8:50053",
                "http://[fd00::1]:50053"
            ]
        );
        assert_eq!(endpoints_of(url, &parsed, &[]), [url]);
    }

    #[tokio::test]
    async fn endpoints_rotate_and_follow_a_new_resolution() {
        let pool = ChannelPool::default();
        let urls = vec![
            "http://127.0.0.1:1".to_owned(),
            "http://127.0.0.1:2".to_owned(),
        ];
        let replicas = Replicas::start(&urls, pool, Duration::from_secs(60)).unwrap();
        let first: Vec<String> = replicas.rotation().into_iter().map(|(u, _)| u).collect();
        let second: Vec<String> = replicas.rotation().into_iter().map(|(u, _)| u).collect();
        assert_eq!(first.len(), 2);
        assert_ne!(first[0], second[0], "round robin");
        replicas.set(vec!["http://127.0.0.1:3".to_owned()]);
        assert_eq!(replicas.urls(), ["http://127.0.0.1:3"]);
        assert!(replicas.find("http://127.0.0.1:1").is_none());
        replicas.set(Vec::new());
        assert_eq!(replicas.urls(), ["http://127.0.0.1:3"], "never empty");
    }
}
