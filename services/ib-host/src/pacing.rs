//! The pacing gate every historical request passes before it is sent, so IB never has a
//! reason to answer 162 (anchors §2.1):
//!
//! - no identical request within 15 s;
//! - fewer than 6 requests for one contract + exchange + tick type within 2 s;
//! - at most 60 requests in any 10 minutes (BID_ASK counts twice);
//! - at most 50 open at once.
//!
//! Windows are IB's numbers times a scale (tests run them short) plus a safety margin that
//! absorbs the time between our send and IB's receipt.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics;

/// Pacing settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacingConfig {
    /// false: send at once (for a simulator with pacing off, or benchmarks).
    pub enabled: bool,
    /// Multiplies IB's windows; 1.0 = IB's real rules.
    pub scale: f64,
    /// Added to every window.
    pub margin: Duration,
    pub max_open: u32,
    pub per_10min: u32,
    pub same_contract_max: usize,
}

impl PacingConfig {
    /// IB's limits (50 open requests, 60 per 10 minutes, 5 per contract per 2 s) with the
    /// switch, scale and margin as configured (their defaults: `config`'s `Default`).
    pub fn ib_rules(enabled: bool, scale: f64, margin: Duration) -> Self {
        Self {
            enabled,
            scale,
            margin,
            max_open: 50,
            per_10min: 60,
            same_contract_max: 5,
        }
    }

    fn window(&self, ib_secs: f64) -> Duration {
        Duration::from_secs_f64(ib_secs * self.scale) + self.margin
    }
    pub fn identical(&self) -> Duration {
        self.window(15.0)
    }
    pub fn same_contract(&self) -> Duration {
        self.window(2.0)
    }
    pub fn ten_minutes(&self) -> Duration {
        self.window(600.0)
    }
}

struct Sent {
    at: Instant,
    identity: String,
    contract_key: String,
    cost: u32,
}

#[derive(Default)]
struct GateState {
    sent: VecDeque<Sent>,
    open: u32,
    queued: u32,
    total_wait: Duration,
    total_sent: i64,
    violations: i64,
}

/// Usage figures for GetStatus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacingSnapshot {
    pub last_10_min: u32,
    pub open: u32,
    pub queued: u32,
    pub total_wait_ms: i64,
    pub violations: i64,
    pub total_sent: i64,
}

/// Shared by every request of the process.
pub struct PacingGate {
    config: PacingConfig,
    state: Mutex<GateState>,
    freed: Notify,
}

/// A sent request; dropping it (answer, error or cancel) frees its open slot.
pub struct Permit {
    gate: Arc<PacingGate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        s.open = s.open.saturating_sub(1);
        drop(s);
        self.gate.freed.notify_waiters();
    }
}

struct QueuedGuard<'a> {
    gate: &'a PacingGate,
    counted: bool,
}

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        if self.counted {
            let mut s = self.gate.lock();
            s.queued = s.queued.saturating_sub(1);
            metrics::PACING_QUEUE.set(i64::from(s.queued));
        }
    }
}

/// Why a request waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Identical15s,
    SameContract2s,
    Per10Min60,
    MaxOpen50,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Self::Identical15s => "identical_15s",
            Self::SameContract2s => "same_contract_2s",
            Self::Per10Min60 => "60_per_10min",
            Self::MaxOpen50 => "max_open_50",
        }
    }
}

impl PacingGate {
    pub fn new(config: PacingConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            state: Mutex::new(GateState::default()),
            freed: Notify::new(),
        })
    }

    pub fn config(&self) -> PacingConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the request may go, or `None` if it may go now. `Some((None, rule))` means "when
    /// an open request finishes".
    fn next_slot(
        &self,
        s: &GateState,
        now: Instant,
        identity: &str,
        key: &str,
        cost: u32,
    ) -> Option<(Option<Instant>, Rule)> {
        let c = &self.config;
        if s.open >= c.max_open {
            return Some((None, Rule::MaxOpen50));
        }
        let mut wait: Option<(Instant, Rule)> = None;
        let mut later = |at: Instant, rule: Rule| {
            if at > now && wait.is_none_or(|(w, _)| at > w) {
                wait = Some((at, rule));
            }
        };
        if let Some(last) = s.sent.iter().rev().find(|x| x.identity == identity) {
            later(last.at + c.identical(), Rule::Identical15s);
        }
        let same: Vec<&Sent> = s
            .sent
            .iter()
            .rev()
            .filter(|x| x.contract_key == key && now.duration_since(x.at) < c.same_contract())
            .collect();
        if same.len() >= c.same_contract_max {
            // The oldest of the last `max` must leave the window.
            later(
                same[c.same_contract_max - 1].at + c.same_contract(),
                Rule::SameContract2s,
            );
        }
        let recent: Vec<&Sent> = s
            .sent
            .iter()
            .filter(|x| now.duration_since(x.at) < c.ten_minutes())
            .collect();
        let used: u32 = recent.iter().map(|x| x.cost).sum();
        if used + cost > c.per_10min {
            let mut excess = used + cost - c.per_10min;
            for x in &recent {
                excess = excess.saturating_sub(x.cost);
                if excess == 0 {
                    later(x.at + c.ten_minutes(), Rule::Per10Min60);
                    break;
                }
            }
        }
        wait.map(|(at, rule)| (Some(at), rule))
    }

    /// Waits until IB's rules allow the request, then records it as sent. `on_wait` is told
    /// each wait (its length and rule) so callers can report progress.
    pub async fn acquire(
        self: &Arc<Self>,
        identity: &str,
        contract_key: &str,
        cost: u32,
        mut on_wait: impl FnMut(Duration, Rule),
    ) -> Permit {
        if !self.config.enabled {
            let mut s = self.lock();
            s.open += 1;
            s.total_sent += 1;
            return Permit {
                gate: Arc::clone(self),
            };
        }
        // Counts this request as queued while it waits, however the wait ends (a cancelled
        // call drops this future mid-wait).
        let mut queued = QueuedGuard {
            gate: self,
            counted: false,
        };
        loop {
            let freed = self.freed.notified();
            let now = Instant::now();
            let slot = {
                let mut s = self.lock();
                let longest = self.config.ten_minutes().max(self.config.identical());
                while s
                    .sent
                    .front()
                    .is_some_and(|x| now.duration_since(x.at) > longest)
                {
                    s.sent.pop_front();
                }
                match self.next_slot(&s, now, identity, contract_key, cost) {
                    None => {
                        s.sent.push_back(Sent {
                            at: now,
                            identity: identity.to_owned(),
                            contract_key: contract_key.to_owned(),
                            cost,
                        });
                        s.open += 1;
                        s.total_sent += 1;
                        if queued.counted {
                            s.queued = s.queued.saturating_sub(1);
                            queued.counted = false;
                            metrics::PACING_QUEUE.set(i64::from(s.queued));
                        }
                        return Permit {
                            gate: Arc::clone(self),
                        };
                    }
                    Some(slot) => {
                        if !queued.counted {
                            s.queued += 1;
                            queued.counted = true;
                            metrics::PACING_QUEUE.set(i64::from(s.queued));
                        }
                        slot
                    }
                }
            };
            let started = Instant::now();
            let rule = slot.1;
            match slot {
                (Some(at), rule) => {
                    on_wait(at.saturating_duration_since(now), rule);
                    tokio::time::sleep_until(at).await;
                }
                (None, rule) => {
                    on_wait(Duration::ZERO, rule);
                    // Bounded: re-check at least every second even if a wake-up is missed.
                    let _ = tokio::time::timeout(Duration::from_secs(1), freed).await;
                }
            }
            let waited = started.elapsed();
            self.lock().total_wait += waited;
            metrics::PACING_WAIT
                .get_or_create(&[("rule", rule.name())])
                .observe(waited.as_secs_f64());
        }
    }

    /// Counts a 162 pacing violation IB reported despite the gate.
    pub fn record_violation(&self) {
        self.lock().violations += 1;
        metrics::PACING_VIOLATIONS.inc();
    }

    pub fn snapshot(&self) -> PacingSnapshot {
        let s = self.lock();
        let now = Instant::now();
        PacingSnapshot {
            last_10_min: s
                .sent
                .iter()
                .filter(|x| now.duration_since(x.at) < self.config.ten_minutes())
                .map(|x| x.cost)
                .sum(),
            open: s.open,
            queued: s.queued,
            total_wait_ms: i64::try_from(s.total_wait.as_millis()).unwrap_or(i64::MAX),
            violations: s.violations,
            total_sent: s.total_sent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(scale: f64) -> Arc<PacingGate> {
        PacingGate::new(PacingConfig {
            scale,
            margin: Duration::ZERO,
            ..PacingConfig::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn identical_requests_wait_15_seconds() {
        let g = gate(1.0);
        let t0 = Instant::now();
        drop(g.acquire("a", "k", 1, |_, _| {}).await);
        let mut rule = None;
        drop(g.acquire("a", "k", 1, |_, r| rule = Some(r)).await);
        assert_eq!(rule, Some(Rule::Identical15s));
        assert_eq!(t0.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn the_sixth_request_for_a_contract_waits_for_the_2_second_window() {
        let g = gate(1.0);
        let t0 = Instant::now();
        for i in 0..5 {
            drop(g.acquire(&format!("r{i}"), "k", 1, |_, _| {}).await);
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
        drop(g.acquire("r5", "k", 1, |_, _| {}).await);
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        drop(g.acquire("other", "k2", 1, |_, _| {}).await);
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn sixty_per_ten_minutes_with_bid_ask_counting_twice() {
        let g = gate(1.0);
        let t0 = Instant::now();
        for i in 0..30 {
            drop(
                g.acquire(&format!("r{i}"), &format!("k{i}"), 2, |_, _| {})
                    .await,
            );
        }
        assert_eq!(g.snapshot().last_10_min, 60);
        assert_eq!(t0.elapsed(), Duration::ZERO);
        drop(g.acquire("one-more", "kx", 1, |_, _| {}).await);
        assert_eq!(t0.elapsed(), Duration::from_secs(600));
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_50_open() {
        let g = gate(1.0);
        let mut permits = vec![];
        for i in 0..50 {
            permits.push(
                g.acquire(&format!("r{i}"), &format!("k{i}"), 1, |_, _| {})
                    .await,
            );
        }
        let g2 = Arc::clone(&g);
        let waiter = tokio::spawn(async move { g2.acquire("late", "kl", 1, |_, _| {}).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        assert_eq!(g.snapshot().queued, 1);
        permits.pop();
        let _late = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(g.snapshot().open, 50);
        assert_eq!(g.snapshot().queued, 0);
        // A waiter that gives up (a cancelled call) leaves no trace in the queue count.
        let g3 = Arc::clone(&g);
        let gave_up = tokio::spawn(async move { g3.acquire("later", "kl2", 1, |_, _| {}).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(g.snapshot().queued, 1);
        gave_up.abort();
        let _ = gave_up.await;
        assert_eq!(g.snapshot().queued, 0);
    }
}
