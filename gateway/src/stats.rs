//! Per-backend call statistics: calls, errors by code, retries, in-flight calls and latency
//! percentiles over the most recent calls (bounded memory).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use ktrdr_common::status::now_ms;
use ktrdr_proto::gateway::v1::{AdapterStatistics, BackendStatistics};

/// Latencies kept for percentiles.
const LATENCY_WINDOW: usize = 2_048;

#[derive(Debug, Default)]
struct Recent {
    latencies_ms: VecDeque<f64>,
    total_latency_ms: f64,
    errors_by_code: BTreeMap<String, i64>,
    last_error: String,
    last_error_at_ms: i64,
    last_call_at_ms: i64,
}

/// Statistics of one backend (a host service, or the in-process implementation).
#[derive(Debug, Default)]
pub struct BackendStats {
    calls: AtomicI64,
    errors: AtomicI64,
    retries: AtomicI64,
    in_flight: AtomicI64,
    recent: Mutex<Recent>,
}

/// Counts a call as in flight until dropped.
pub struct InFlight<'a>(&'a BackendStats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl BackendStats {
    pub fn start(&self) -> (InFlight<'_>, Instant) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        (InFlight(self), Instant::now())
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished call (for streams: once the response headers arrived).
    pub fn finish(&self, latency: Duration, outcome: Result<(), &tonic::Status>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let ms = latency.as_secs_f64() * 1000.0;
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.last_call_at_ms = now_ms();
        recent.total_latency_ms += ms;
        if recent.latencies_ms.len() == LATENCY_WINDOW {
            recent.latencies_ms.pop_front();
        }
        recent.latencies_ms.push_back(ms);
        if let Err(status) = outcome {
            self.errors.fetch_add(1, Ordering::Relaxed);
            *recent
                .errors_by_code
                .entry(format!("{:?}", status.code()))
                .or_default() += 1;
            recent.last_error = format!("{:?}: {}", status.code(), status.message());
            recent.last_error_at_ms = now_ms();
        }
    }

    pub fn adapter(&self) -> AdapterStatistics {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let calls = self.calls.load(Ordering::Relaxed);
        AdapterStatistics {
            calls,
            errors: self.errors.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            latency_avg_ms: if calls > 0 {
                recent.total_latency_ms / calls as f64
            } else {
                0.0
            },
            last_call_at_ms: recent.last_call_at_ms,
            last_error: recent.last_error.clone(),
            last_error_at_ms: recent.last_error_at_ms,
        }
    }

    pub fn backend(&self, backend: &str, url: &str, healthy: bool) -> BackendStatistics {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut sorted: Vec<f64> = recent.latencies_ms.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            if sorted.is_empty() {
                0.0
            } else {
                sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
            }
        };
        BackendStatistics {
            backend: backend.to_owned(),
            url: url.to_owned(),
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            latency_p50_ms: pct(0.50),
            latency_p90_ms: pct(0.90),
            latency_p99_ms: pct(0.99),
            latency_max_ms: sorted.last().copied().unwrap_or(0.0),
            last_error: recent.last_error.clone(),
            last_error_at_ms: recent.last_error_at_ms,
            errors_by_code: recent
                .errors_by_code
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            healthy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_by_code_and_percentiles() {
        let stats = BackendStats::default();
        for ms in 1..=100 {
            let (_guard, _) = stats.start();
            stats.finish(Duration::from_millis(ms), Ok(()));
        }
        stats.finish(
            Duration::from_millis(1),
            Err(&tonic::Status::unavailable("down")),
        );
        stats.retried();
        let b = stats.backend("data", "http://x", true);
        assert_eq!((b.calls, b.errors, b.retries, b.in_flight), (101, 1, 1, 0));
        assert_eq!(b.errors_by_code["Unavailable"], 1);
        assert!(
            (b.latency_p50_ms - 50.0).abs() <= 1.0,
            "{}",
            b.latency_p50_ms
        );
        assert!((b.latency_max_ms - 100.0).abs() < 0.5);
        assert_eq!(b.last_error, "Unavailable: down");
        let a = stats.adapter();
        assert_eq!(a.calls, 101);
    }
}
