//! The training host's Prometheus metrics, served with the RPC metrics by
//! [`ktrdr_common::metrics`].

use std::sync::LazyLock;

use ktrdr_common::metrics::{Family, Gauge, register};

use crate::record::State;

/// Sessions this process knows, by state (terminal ones included: they stay listed).
pub static SESSIONS: LazyLock<Family<[(&'static str, &'static str); 1], Gauge>> =
    LazyLock::new(|| {
        register(
            "training_sessions",
            "Training sessions by state",
            Family::default(),
        )
    });

const STATES: [State; 7] = [
    State::Queued,
    State::LoadingData,
    State::Running,
    State::Completed,
    State::Failed,
    State::Cancelled,
    State::Interrupted,
];

fn label(state: State) -> &'static str {
    match state {
        State::Queued => "queued",
        State::LoadingData => "loading_data",
        State::Running => "running",
        State::Completed => "completed",
        State::Failed => "failed",
        State::Cancelled => "cancelled",
        State::Interrupted => "interrupted",
    }
}

/// Counts a session entering `to` (and leaving `from`).
pub fn session_moved(from: Option<State>, to: State) {
    if let Some(from) = from {
        SESSIONS.get_or_create(&[("state", label(from))]).dec();
    }
    SESSIONS.get_or_create(&[("state", label(to))]).inc();
}

/// Registers the metric with every state at zero, so a scrape shows them all.
pub fn init() {
    for state in STATES {
        let _ = SESSIONS.get_or_create(&[("state", label(state))]);
    }
}
