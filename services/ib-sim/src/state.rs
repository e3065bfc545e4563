//! The simulator's shared state: rules, counters, faults and connected clients.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::codec::{Codec, Kind};
use crate::market::{self, SimContract};
use crate::replay::Replay;
use crate::rules::{Pacer, PacingSwitches, PacingWindows};

/// IB's rules, each switchable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub pacing: PacingSwitches,
    pub legal_durations: bool,
    pub client_id_in_use: bool,
}

impl Rules {
    pub fn all(on: bool) -> Self {
        Self {
            pacing: PacingSwitches {
                identical_15s: on,
                same_contract_2s: on,
                per_10min_60: on,
                max_open_50: on,
            },
            legal_durations: on,
            client_id_in_use: on,
        }
    }
}

/// What an injected fault does to matching requests.
#[derive(Debug, Clone)]
pub enum FaultAction {
    Fail {
        code: i32,
        message: String,
    },
    Delay(Duration),
    /// Drop the matching clients' sockets once the fault's request count is used up.
    DropAfter {
        client_ids: Vec<i32>,
        refuse_reconnect: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub id: String,
    pub kind: &'static str,
    pub description: String,
    pub action: FaultAction,
    /// Requests still affected; -1 = until reset.
    pub remaining: i32,
    pub request_kind: Option<Kind>,
    pub symbol: String,
    pub created_at_ms: i64,
    /// Fail only this fraction of matching requests (None = all).
    pub fraction: Option<f64>,
    /// Matching requests seen, to pick the fraction deterministically.
    pub seen: u64,
}

/// One connected TWS API client.
#[derive(Debug)]
pub struct ClientEntry {
    pub client_id: i32,
    pub peer: SocketAddr,
    pub connected_at_ms: i64,
    pub requests_served: i64,
    /// The version agreed at the handshake; every frame to the client is encoded for it.
    pub server_version: i32,
    /// Frames to the client (notices from the control API).
    pub tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Set to true to close the connection.
    pub kill: watch::Sender<bool>,
}

#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub requests_served: i64,
    pub by_kind: BTreeMap<&'static str, i64>,
    pub connections_accepted: i64,
    pub pacing_violations_sent: i64,
    pub errors_sent: i64,
    pub errors_by_code: BTreeMap<i32, i64>,
}

pub struct Inner {
    pub rules: Rules,
    pub counters: Counters,
    pub faults: Vec<Fault>,
    pub clients: HashMap<u64, ClientEntry>,
    pub pacer: Pacer,
    pub next_fault: u64,
    pub next_conn: u64,
    pub refuse_until: Option<Instant>,
}

/// Startup settings of the simulator.
#[derive(Debug, Clone)]
pub struct SimSettings {
    /// The highest server version the sim negotiates (see [`crate::codec::negotiate`]).
    pub server_version: i32,
    pub rules: Rules,
    pub pacing_scale: f64,
    /// Faults in effect from the start (from flags), until a ResetSim.
    pub startup_faults: Vec<Fault>,
    /// Directory of `<SYMBOL>_<tf>.csv` files to replay; None = generate every bar.
    pub replay_dir: Option<std::path::PathBuf>,
}

impl SimSettings {
    /// IB's defaults: server version 213, every rule on at real pace, no faults, no replay.
    pub fn ib_defaults() -> Self {
        Self {
            server_version: 213,
            rules: Rules::all(true),
            pacing_scale: 1.0,
            startup_faults: vec![],
            replay_dir: None,
        }
    }
}

/// Shared by the TWS listener, every session and the control API.
pub struct Sim {
    pub settings: SimSettings,
    pub contracts: Vec<SimContract>,
    /// Bars replayed from files (IB_SIM_REPLAY_DIR) instead of generated.
    pub replay: Replay,
    pub started_at_ms: i64,
    inner: Mutex<Inner>,
    /// true while an injected connectivity loss is in effect; historical requests wait.
    pub connectivity_lost: watch::Sender<bool>,
    pub tws_addr: Mutex<Option<SocketAddr>>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Sim {
    pub fn new(settings: SimSettings) -> Arc<Self> {
        Self::with_replay(settings, Replay::default())
    }

    pub fn with_replay(settings: SimSettings, replay: Replay) -> Arc<Self> {
        let faults = settings
            .startup_faults
            .iter()
            .enumerate()
            .map(|(i, f)| Fault {
                id: format!("startup-{}", i + 1),
                created_at_ms: now_ms(),
                ..f.clone()
            })
            .collect();
        let inner = Inner {
            rules: settings.rules,
            counters: Counters::default(),
            faults,
            clients: HashMap::new(),
            pacer: Pacer::new(PacingWindows::scaled(settings.pacing_scale)),
            next_fault: 1,
            next_conn: 1,
            refuse_until: None,
        };
        Arc::new(Self {
            settings,
            contracts: market::contracts(),
            replay,
            started_at_ms: now_ms(),
            inner: Mutex::new(inner),
            connectivity_lost: watch::channel(false).0,
            tws_addr: Mutex::new(None),
        })
    }

    /// The state; a poisoned lock is recovered because every update leaves it consistent.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn rules(&self) -> Rules {
        self.lock().rules
    }

    /// Counts a received request.
    pub fn count_request(&self, conn: u64, kind: Kind) {
        let mut inner = self.lock();
        inner.counters.requests_served += 1;
        *inner.counters.by_kind.entry(kind.name()).or_default() += 1;
        if let Some(c) = inner.clients.get_mut(&conn) {
            c.requests_served += 1;
        }
    }

    pub fn count_error(&self, code: i32, pacing: bool) {
        let mut inner = self.lock();
        inner.counters.errors_sent += 1;
        *inner.counters.errors_by_code.entry(code).or_default() += 1;
        if pacing {
            inner.counters.pacing_violations_sent += 1;
        }
    }

    /// The faults that apply to this request, used up by one; and clients to drop now.
    pub fn take_faults(
        &self,
        kind: Kind,
        symbol: &str,
    ) -> (Vec<FaultAction>, Vec<(Vec<i32>, Duration)>) {
        let mut inner = self.lock();
        let mut actions = vec![];
        let mut drops = vec![];
        for fault in &mut inner.faults {
            let kind_ok = fault.request_kind.is_none_or(|k| k == kind);
            let symbol_ok = fault.symbol.is_empty() || fault.symbol.eq_ignore_ascii_case(symbol);
            if !kind_ok || !symbol_ok || fault.remaining == 0 {
                continue;
            }
            if let Some(fraction) = fault.fraction {
                fault.seen += 1;
                // Low-discrepancy pick: request n fails when the running share falls behind.
                let due = (fault.seen as f64 * fraction).floor()
                    > ((fault.seen - 1) as f64 * fraction).floor();
                if !due {
                    continue;
                }
            }
            if fault.remaining > 0 {
                fault.remaining -= 1;
            }
            match &fault.action {
                FaultAction::DropAfter {
                    client_ids,
                    refuse_reconnect,
                } => {
                    if fault.remaining == 0 {
                        drops.push((client_ids.clone(), *refuse_reconnect));
                    }
                }
                other => actions.push(other.clone()),
            }
        }
        inner.faults.retain(|f| f.remaining != 0);
        (actions, drops)
    }

    pub fn add_fault(&self, mut fault: Fault) -> (String, Vec<Fault>) {
        let mut inner = self.lock();
        fault.id = format!("f{}", inner.next_fault);
        inner.next_fault += 1;
        let id = fault.id.clone();
        inner.faults.push(fault);
        (id, inner.faults.clone())
    }

    /// Closes the connections of `client_ids` (all when empty); returns how many.
    pub fn drop_clients(&self, client_ids: &[i32], refuse_reconnect: Duration) -> usize {
        let mut inner = self.lock();
        if !refuse_reconnect.is_zero() {
            inner.refuse_until = Some(Instant::now() + refuse_reconnect);
        }
        let mut n = 0;
        for c in inner.clients.values() {
            if client_ids.is_empty() || client_ids.contains(&c.client_id) {
                let _ = c.kill.send(true);
                n += 1;
            }
        }
        n
    }

    /// Sends a message, encoded for each client's server version, to the clients in
    /// `client_ids` (all when empty); returns how many.
    pub fn broadcast(&self, client_ids: &[i32], frame: impl Fn(Codec) -> Vec<u8>) -> usize {
        let inner = self.lock();
        inner
            .clients
            .values()
            .filter(|c| client_ids.is_empty() || client_ids.contains(&c.client_id))
            .filter(|c| c.tx.send(frame(Codec::new(c.server_version))).is_ok())
            .count()
    }

    pub fn refusing(&self) -> bool {
        self.lock().refuse_until.is_some_and(|t| Instant::now() < t)
    }

    /// Default rules, no faults, zero counters, fresh pacing history, connectivity restored;
    /// whether connectivity had been lost.
    pub fn reset(&self) -> bool {
        let mut inner = self.lock();
        inner.rules = self.settings.rules;
        inner.faults.clear();
        inner.counters = Counters::default();
        inner.pacer.clear();
        inner.refuse_until = None;
        drop(inner);
        self.connectivity_lost.send_replace(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fractional_fault_fails_that_share_of_requests() {
        let sim = Sim::new(SimSettings::ib_defaults());
        sim.add_fault(Fault {
            id: String::new(),
            kind: "fail_next_requests",
            description: String::new(),
            action: FaultAction::Fail {
                code: 162,
                message: String::new(),
            },
            remaining: -1,
            request_kind: Some(Kind::Historical),
            symbol: String::new(),
            created_at_ms: 0,
            fraction: Some(0.25),
            seen: 0,
        });
        let failed = (0..100)
            .filter(|_| !sim.take_faults(Kind::Historical, "AAPL").0.is_empty())
            .count();
        assert_eq!(failed, 25);
        assert!(sim.take_faults(Kind::HeadTimestamp, "AAPL").0.is_empty());
    }
}
