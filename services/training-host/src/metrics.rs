//! The training host's Prometheus metrics, served with the RPC metrics by
//! [`ktrdr_common::metrics`].

use std::sync::LazyLock;

use ktrdr_common::metrics::{Family, Gauge, register};

use crate::device::HostDevice;
use crate::record::State;

/// Labels of one device: its id (`cpu`, `cuda:N`).
type ByDevice = Family<[(&'static str, String); 1], Gauge>;

/// Sessions placed on each device now.
pub static DEVICE_SESSIONS: LazyLock<ByDevice> = LazyLock::new(|| {
    register(
        "training_device_sessions",
        "Training sessions placed on each device (LOADING_DATA or RUNNING)",
        Family::default(),
    )
});

/// Each device's memory: the GPU's, or the machine's RAM for the CPU.
pub static DEVICE_MEMORY_TOTAL: LazyLock<Family<[(&'static str, String); 2], Gauge>> =
    LazyLock::new(|| {
        register(
            "training_device_memory_total_bytes",
            "Memory of each training device, bytes (the machine's RAM for the CPU); \
             labelled with the device's name",
            Family::default(),
        )
    });

/// Each device's memory in use, every process's.
pub static DEVICE_MEMORY_USED: LazyLock<ByDevice> = LazyLock::new(|| {
    register(
        "training_device_memory_used_bytes",
        "Memory in use on each training device, bytes, by every process (RAM for the CPU)",
        Family::default(),
    )
});

fn bytes(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Sessions on `device` are now `sessions`.
pub fn device_sessions(device: &HostDevice, sessions: usize) {
    DEVICE_SESSIONS
        .get_or_create(&[("device", device.id())])
        .set(i64::try_from(sessions).unwrap_or(i64::MAX));
}

/// Reads each device's memory in use now (blocking: asks the driver or `/proc`).
pub fn refresh_device_memory(devices: &[HostDevice]) {
    for device in devices {
        if let Some(used) = device.memory_used_bytes() {
            DEVICE_MEMORY_USED
                .get_or_create(&[("device", device.id())])
                .set(bytes(used));
        }
    }
}

/// Registers the device series of `devices`: no sessions yet, their memory.
pub fn init_devices(devices: &[HostDevice]) {
    for device in devices {
        device_sessions(device, 0);
        DEVICE_MEMORY_TOTAL
            .get_or_create(&[("device", device.id()), ("name", device.name.clone())])
            .set(bytes(device.memory_total_bytes));
    }
    refresh_device_memory(devices);
}

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
