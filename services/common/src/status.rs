//! What every service's status response says about the process itself.

use std::time::{SystemTime, UNIX_EPOCH};

use ktrdr_proto::common::v1::ServiceInfo;

/// Identity of the running process, captured at start.
#[derive(Debug, Clone)]
pub struct ProcessIdentity {
    name: &'static str,
    listen_addr: String,
    started_at_ms: i64,
    hostname: String,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl ProcessIdentity {
    /// `name` is the service name of `ServiceInfo.name` ("data", "gateway", …).
    pub fn new(name: &'static str, listen_addr: impl ToString) -> Self {
        let hostname = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Self {
            name,
            listen_addr: listen_addr.to_string(),
            started_at_ms: now_ms(),
            hostname,
        }
    }

    pub fn service_info(&self) -> ServiceInfo {
        let now = now_ms();
        ServiceInfo {
            name: self.name.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: self.started_at_ms,
            uptime_ms: now - self.started_at_ms,
            now_ms: now,
            listen_addr: self.listen_addr.clone(),
            hostname: self.hostname.clone(),
            pid: std::process::id(),
        }
    }
}
