//! Which device a session runs on: the host's devices as a pool, each with the sessions placed
//! on it. A session goes to the least-loaded device its request accepts (the lowest index on
//! ties, so one device fills no faster than another), and never to a device that holds its
//! limit of sessions already. Pure bookkeeping: the manager calls it under its lock.

use ktrdr_strategy::compute::Compute;

use crate::device::DeviceRequest;

#[derive(Debug, Clone)]
pub struct Placement {
    devices: Vec<Compute>,
    /// Sessions per device at most; `None` = no per-device limit.
    limit: Option<usize>,
    sessions: Vec<usize>,
}

impl Placement {
    /// `limit` 0 means no per-device limit.
    pub fn new(devices: Vec<Compute>, limit: usize) -> Self {
        let sessions = vec![0; devices.len()];
        Self {
            devices,
            limit: (limit > 0).then_some(limit),
            sessions,
        }
    }

    /// Whether any device of the pool could ever take `request`.
    pub fn serves(&self, request: DeviceRequest) -> bool {
        self.devices.iter().any(|d| request.accepts(d))
    }

    /// The device `request` would go to now, without placing anything.
    pub fn choose(&self, request: DeviceRequest) -> Option<usize> {
        (0..self.devices.len())
            .filter(|&i| request.accepts(&self.devices[i]))
            .filter(|&i| self.limit.is_none_or(|limit| self.sessions[i] < limit))
            .min_by_key(|&i| (self.sessions[i], i))
    }

    /// Places a session: the index of its device, or `None` while every device it accepts is
    /// full.
    pub fn place(&mut self, request: DeviceRequest) -> Option<usize> {
        let chosen = self.choose(request)?;
        self.sessions[chosen] += 1;
        Some(chosen)
    }

    /// A session placed on `index` ended.
    pub fn release(&mut self, index: usize) {
        if let Some(n) = self.sessions.get_mut(index) {
            *n = n.saturating_sub(1);
        }
    }

    /// Sessions on device `index` now.
    pub fn sessions(&self, index: usize) -> usize {
        self.sessions.get(index).copied().unwrap_or(0)
    }

    /// The per-device limit; 0 = none.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(n: usize, limit: usize) -> Placement {
        Placement::new((0..n).map(Compute::Cuda).collect(), limit)
    }

    #[test]
    fn sessions_spread_over_the_least_loaded_gpus() {
        let mut pool = gpus(3, 0);
        let placed: Vec<usize> = (0..7)
            .map(|_| pool.place(DeviceRequest::Any).unwrap())
            .collect();
        assert_eq!(placed, [0, 1, 2, 0, 1, 2, 0]);
        // A session on cuda:1 ends: the next goes there, the least loaded.
        pool.release(1);
        assert_eq!(pool.place(DeviceRequest::AnyCuda), Some(1));
        assert_eq!(
            (0..3).map(|i| pool.sessions(i)).collect::<Vec<_>>(),
            [3, 2, 2]
        );
    }

    #[test]
    fn a_full_device_takes_no_more_and_the_others_still_do() {
        let mut pool = gpus(2, 2);
        assert_eq!(pool.place(DeviceRequest::Cuda(1)), Some(1));
        assert_eq!(pool.place(DeviceRequest::Cuda(1)), Some(1));
        assert_eq!(pool.place(DeviceRequest::Cuda(1)), None, "cuda:1 is full");
        assert_eq!(
            pool.place(DeviceRequest::Any),
            Some(0),
            "an open request goes to the one with room"
        );
        assert_eq!(pool.place(DeviceRequest::Any), Some(0));
        assert_eq!(pool.place(DeviceRequest::Any), None, "every device is full");
        assert_eq!(pool.limit(), 2);
        pool.release(1);
        assert_eq!(pool.choose(DeviceRequest::Any), Some(1));
        assert_eq!(pool.place(DeviceRequest::Cuda(1)), Some(1));
    }

    #[test]
    fn requests_only_go_to_devices_that_match_them() {
        let mut pool = gpus(2, 0);
        assert!(pool.serves(DeviceRequest::Cuda(1)));
        assert!(!pool.serves(DeviceRequest::Cuda(2)));
        assert!(!pool.serves(DeviceRequest::Cpu));
        assert_eq!(pool.place(DeviceRequest::Cpu), None);
        assert_eq!(pool.place(DeviceRequest::Cuda(7)), None);
        for _ in 0..3 {
            assert_eq!(pool.place(DeviceRequest::Cuda(1)), Some(1));
        }
        // The open request avoids the busy device.
        assert_eq!(pool.place(DeviceRequest::Any), Some(0));

        let mut cpu = Placement::new(vec![Compute::Cpu], 0);
        assert!(cpu.serves(DeviceRequest::Cpu) && cpu.serves(DeviceRequest::Any));
        assert!(!cpu.serves(DeviceRequest::AnyCuda));
        assert_eq!(cpu.place(DeviceRequest::Cpu), Some(0));
        assert_eq!(cpu.place(DeviceRequest::Any), Some(0));
        assert_eq!(cpu.sessions(0), 2);
    }

    #[test]
    fn releasing_more_than_was_placed_never_underflows() {
        let mut pool = gpus(1, 1);
        pool.release(0);
        pool.release(5);
        assert_eq!(pool.sessions(0), 0);
        assert_eq!(pool.place(DeviceRequest::Any), Some(0));
        assert_eq!(pool.place(DeviceRequest::Any), None);
    }
}
