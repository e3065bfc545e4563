//! The one TWS API connection: connect with backoff (the library does not retry a first
//! connect), notice that it dropped within a poll interval, and reconnect in the background
//! with our own backoff. The library's own reconnect loop is switched off
//! (`max_reconnect_attempts(0)`): while it runs, in-flight calls wait minutes (ibapi #816);
//! ours fails them at once with UNAVAILABLE and starts a fresh client.
//!
//! A link can also break without the socket closing: IB that stops answering (requests run
//! into their timeouts) counts as broken after `timeouts_before_reconnect` unanswered
//! requests in a row, and is replaced like a dropped one. After a 1100 "connectivity lost",
//! calls fail fast until 1101/1102 arrives, or until IB answers a probe (its time, asked every
//! `probe_interval`): a 1100 whose all-clear never comes does not leave the host unusable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ibapi::Client;
use ktrdr_common::status::now_ms;
use tokio::sync::watch;

use crate::config::{ConnectSettings, IbConnectionConfig};
use crate::error::IbError;
use crate::metrics;

/// Connection phases, as GetStatus reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Connected,
    Disconnected,
    Reconnecting,
}

/// The current link: a client while connected; the generation changes with every new client.
#[derive(Clone)]
pub struct Link {
    pub client: Option<Arc<Client>>,
    pub generation: u64,
    pub phase: Phase,
}

/// One IB data farm's latest notice.
#[derive(Debug, Clone, PartialEq)]
pub struct Farm {
    pub ok: bool,
    pub code: i32,
    pub message: String,
    pub at_ms: i64,
}

/// What GetStatus shows about the connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    pub server_version: i32,
    pub client_id: i32,
    pub connected_since_ms: i64,
    pub reconnects: i64,
    pub farms: BTreeMap<String, Farm>,
    pub last_error: String,
    pub last_error_at_ms: i64,
}

pub struct IbConnection {
    config: IbConnectionConfig,
    settings: ConnectSettings,
    link: watch::Sender<Link>,
    info: Mutex<ConnectionInfo>,
    /// Requests in a row that IB left unanswered on the current link.
    unanswered: AtomicU32,
}

impl IbConnection {
    /// Starts connecting in the background.
    pub fn start(config: IbConnectionConfig, settings: ConnectSettings) -> Arc<Self> {
        let (link, _) = watch::channel(Link {
            client: None,
            generation: 0,
            phase: Phase::Connecting,
        });
        let conn = Arc::new(Self {
            config,
            settings,
            link,
            info: Mutex::new(ConnectionInfo::default()),
            unanswered: AtomicU32::new(0),
        });
        let weak = Arc::downgrade(&conn);
        tokio::spawn(async move { supervise(weak).await });
        conn
    }

    pub fn address(&self) -> String {
        self.config.address()
    }

    pub fn config(&self) -> &IbConnectionConfig {
        &self.config
    }

    fn info_lock(&self) -> MutexGuard<'_, ConnectionInfo> {
        self.info.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn info(&self) -> ConnectionInfo {
        self.info_lock().clone()
    }

    pub fn phase(&self) -> Phase {
        self.link.borrow().phase
    }

    pub fn subscribe(&self) -> watch::Receiver<Link> {
        self.link.subscribe()
    }

    /// The connected client and its generation, or UNAVAILABLE at once.
    pub fn client(&self) -> Result<(Arc<Client>, u64), IbError> {
        let link = self.link.borrow();
        match (&link.client, link.phase) {
            (Some(c), Phase::Connected) => Ok((Arc::clone(c), link.generation)),
            _ => Err(self.disconnected()),
        }
    }

    pub fn disconnected(&self) -> IbError {
        let info = self.info_lock();
        let detail = if info.last_error.is_empty() {
            "not connected yet".to_owned()
        } else {
            info.last_error.clone()
        };
        IbError::Disconnected {
            address: self.address(),
            detail,
        }
    }

    /// Resolves once the link of `generation` is no longer usable.
    pub async fn lost(&self, generation: u64) {
        let mut rx = self.link.subscribe();
        let _ = rx
            .wait_for(|l| l.generation != generation || l.phase != Phase::Connected)
            .await;
    }

    /// Records that IB answered a request (bars, or an error of its own) on the link of
    /// `generation`: the link works.
    pub fn answered(&self, generation: u64) {
        if self.link.borrow().generation == generation {
            self.unanswered.store(0, Ordering::Relaxed);
        }
    }

    /// Records a request on the link of `generation` that IB left unanswered for `waited`.
    /// The last of `timeouts_before_reconnect` in a row breaks the link: in-flight calls fail
    /// with UNAVAILABLE, and the supervisor replaces the client.
    pub fn timed_out(&self, generation: u64, waited: Duration) {
        let link = self.link.borrow().clone();
        if link.generation != generation || link.phase != Phase::Connected {
            return;
        }
        let n = self.unanswered.fetch_add(1, Ordering::Relaxed) + 1;
        if n < self.settings.timeouts_before_reconnect {
            return;
        }
        self.unanswered.store(0, Ordering::Relaxed);
        self.error(format!(
            "{n} IB requests in a row got no answer (the last waited {waited:?}); the connection counts as broken and is replaced"
        ));
        self.set(None, generation, Phase::Reconnecting);
    }

    /// Whether the link of `generation` was given up while its socket still works.
    fn broken(&self, generation: u64) -> bool {
        let link = self.link.borrow();
        link.generation == generation && link.client.is_none()
    }

    /// Whether the link of `generation` waits for IB's all-clear after a 1100.
    fn awaiting_connectivity(&self, generation: u64) -> bool {
        let link = self.link.borrow();
        link.generation == generation && link.phase == Phase::Reconnecting && link.client.is_some()
    }

    /// Makes the link of `generation` usable again after a 1100.
    fn restore(&self, generation: u64) {
        let link = self.link.borrow().clone();
        if link.generation == generation
            && link.phase == Phase::Reconnecting
            && link.client.is_some()
        {
            self.set(link.client, generation, Phase::Connected);
        }
    }

    fn error(&self, message: String) {
        tracing::warn!("IB connection: {message}");
        let mut info = self.info_lock();
        info.last_error = message;
        info.last_error_at_ms = now_ms();
    }

    fn set(&self, client: Option<Arc<Client>>, generation: u64, phase: Phase) {
        self.link.send_replace(Link {
            client,
            generation,
            phase,
        });
    }

    /// Records a request-less IB notice: farm status, connectivity.
    fn notice(&self, generation: u64, code: i32, message: &str) {
        let farm = message.rsplit(':').next().unwrap_or("").trim().to_owned();
        match code {
            2103..=2108 | 2157 | 2158 => {
                let ok = matches!(code, 2104 | 2106 | 2107 | 2108 | 2158);
                self.info_lock().farms.insert(
                    if farm.is_empty() {
                        code.to_string()
                    } else {
                        farm
                    },
                    Farm {
                        ok,
                        code,
                        message: message.to_owned(),
                        at_ms: now_ms(),
                    },
                );
            }
            1100 => {
                self.error(format!("1100 {message}"));
                // IB itself is unreachable from TWS: calls would hang, so fail them fast.
                let link = self.link.borrow().clone();
                if link.generation == generation && link.phase == Phase::Connected {
                    self.set(link.client, generation, Phase::Reconnecting);
                }
            }
            1101 | 1102 => {
                tracing::info!(code, "IB connectivity restored: {message}");
                self.restore(generation);
            }
            _ => tracing::debug!(code, "IB notice: {message}"),
        }
    }
}

fn backoff(settings: &ConnectSettings, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(16));
    settings
        .backoff_min
        .saturating_mul(factor)
        .min(settings.backoff_max)
}

/// Connects, watches, reconnects, until the connection object is dropped.
async fn supervise(weak: std::sync::Weak<IbConnection>) {
    let mut attempt: u32 = 0;
    let mut id_offset = 0;
    let mut generation = 0;
    let mut ever_connected = false;
    loop {
        let Some(conn) = weak.upgrade() else { return };
        let client_id = conn.config.client_id.saturating_add(id_offset);
        let address = conn.address();
        let connecting = tokio::time::timeout(
            conn.settings.connect_timeout,
            Client::builder()
                .address(address.as_str())
                .client_id(client_id)
                .max_reconnect_attempts(0)
                .connect_with_notice_stream(),
        )
        .await;
        match connecting {
            Ok(Ok((client, mut notices))) => {
                attempt = 0;
                generation += 1;
                {
                    let mut info = conn.info_lock();
                    info.server_version = client.server_version();
                    info.client_id = client_id;
                    info.connected_since_ms = now_ms();
                    if ever_connected {
                        info.reconnects += 1;
                        metrics::RECONNECTS.inc();
                    }
                }
                ever_connected = true;
                conn.unanswered.store(0, Ordering::Relaxed);
                tracing::info!(%address, client_id, server_version = client.server_version(), "connected to IB");
                let client = Arc::new(client);
                conn.set(Some(Arc::clone(&client)), generation, Phase::Connected);
                metrics::CONNECTED.set(1);

                let notice_conn = Arc::downgrade(&conn);
                let gen_now = generation;
                let notice_task = tokio::spawn(async move {
                    while let Some(n) = notices.next().await {
                        let Some(conn) = notice_conn.upgrade() else {
                            return;
                        };
                        if n.request_id.is_none_or(|id| id < 0) {
                            conn.notice(gen_now, n.code, &n.message);
                        }
                    }
                });
                let poll = conn.settings.poll;
                drop(conn);
                // Watch the socket; bounded by the connection's lifetime.
                let mut silent_since: Option<Instant> = None;
                let socket_closed = loop {
                    tokio::time::sleep(poll).await;
                    let Some(conn) = weak.upgrade() else {
                        notice_task.abort();
                        client.disconnect().await;
                        return;
                    };
                    if !client.is_connected() {
                        break true;
                    }
                    if conn.broken(generation) {
                        break false;
                    }
                    if !conn.awaiting_connectivity(generation) {
                        silent_since = None;
                        continue;
                    }
                    let since = *silent_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < conn.settings.probe_interval {
                        continue;
                    }
                    silent_since = Some(Instant::now());
                    let probe =
                        tokio::time::timeout(conn.settings.connect_timeout, client.server_time())
                            .await;
                    if matches!(probe, Ok(Ok(_))) {
                        tracing::info!(
                            "IB answered a probe after 1100 with no 1101/1102 since; serving again"
                        );
                        conn.restore(generation);
                    }
                };
                notice_task.abort();
                let Some(conn) = weak.upgrade() else { return };
                if socket_closed {
                    conn.error(format!("connection to IB at {address} lost"));
                }
                conn.set(None, generation, Phase::Reconnecting);
                metrics::CONNECTED.set(0);
                conn.info_lock().connected_since_ms = 0;
                let pause = conn.settings.backoff_min;
                drop(conn);
                // Ends the old session's tasks; a fresh client replaces it.
                client.disconnect().await;
                if !socket_closed {
                    // IB went silent: a short pause before asking it again.
                    tokio::time::sleep(pause).await;
                }
            }
            Ok(Err(ibapi::Error::ClientIdInUse { client_id })) => {
                conn.error(format!(
                    "client id {client_id} in use (326); trying the next one"
                ));
                id_offset = (id_offset + 1) % conn.settings.client_id_tries.max(1);
                let phase = if ever_connected {
                    Phase::Reconnecting
                } else {
                    Phase::Connecting
                };
                conn.set(None, generation, phase);
                tokio::time::sleep(conn.settings.backoff_min).await;
            }
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no handshake within {:?}", conn.settings.connect_timeout),
                };
                conn.error(format!("cannot connect to IB at {address}: {why}"));
                let phase = if ever_connected {
                    Phase::Reconnecting
                } else {
                    Phase::Disconnected
                };
                conn.set(None, generation, phase);
                let delay = backoff(&conn.settings, attempt);
                attempt = attempt.saturating_add(1);
                drop(conn);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = ConnectSettings::default();
        assert_eq!(backoff(&s, 0), Duration::from_millis(100));
        assert_eq!(backoff(&s, 3), Duration::from_millis(800));
        assert_eq!(backoff(&s, 30), Duration::from_secs(10));
    }

    #[tokio::test]
    async fn nothing_listening_means_unavailable_at_once_and_retries_in_the_background() {
        // Port 1 on loopback: nothing listens there (binding it needs privileges).
        let conn = IbConnection::start(
            IbConnectionConfig {
                host: "127.0.0.1".into(),
                port: 1,
                client_id: 1,
            },
            ConnectSettings::default(),
        );
        let err = conn.client().err().unwrap();
        assert!(err.is_disconnected());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(conn.phase(), Phase::Disconnected);
        assert!(
            conn.info().last_error.contains("cannot connect"),
            "{}",
            conn.info().last_error
        );
    }
}
