//! The training host's compute devices: `KTRDR_TRAINING_DEVICE` read and resolved against
//! what the binary was built with and what the machine answers, a session's `device` request
//! checked against them, and each device described (name, memory) for `GetStatus` and the
//! metrics.
//!
//! Invariants: the resolved list is never empty and holds either the CPU alone or CUDA GPUs
//! only; a CUDA device is listed only when this binary has the `cuda` feature and the driver
//! answered for it. The CUDA driver is probed once per process, through cudarc's dynamic
//! loading, before any burn CUDA device exists: burn panics when `libcuda.so.1` is missing,
//! the probe turns that into an answer.

use std::fmt;

use ktrdr_common::config::{ConfigError, Kind};
use ktrdr_strategy::compute::Compute;

/// What `KTRDR_TRAINING_DEVICE` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSetting {
    /// CUDA when the binary has it and a device answers, else the CPU.
    Auto,
    Cpu,
    /// These CUDA ordinals; empty = every device the driver shows.
    Cuda(Vec<usize>),
}

/// The [`Kind`] of `KTRDR_TRAINING_DEVICE` (`config::TRAINING_DEVICE`).
#[derive(Debug, Clone, Copy)]
pub struct DeviceChoice;

impl Kind for DeviceChoice {
    type Value = DeviceSetting;
    fn parse(&self, raw: &str) -> Option<DeviceSetting> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(DeviceSetting::Auto),
            "cpu" => Some(DeviceSetting::Cpu),
            "cuda" => Some(DeviceSetting::Cuda(Vec::new())),
            other => {
                let list = other.strip_prefix("cuda:")?;
                let mut ordinals = Vec::new();
                for item in list.split(',') {
                    let item = item.trim();
                    let n = item
                        .strip_prefix("cuda:")
                        .unwrap_or(item)
                        .parse::<usize>()
                        .ok()?;
                    if !ordinals.contains(&n) {
                        ordinals.push(n);
                    }
                }
                Some(DeviceSetting::Cuda(ordinals))
            }
        }
    }
    fn default_value(&self) -> DeviceSetting {
        DeviceSetting::Auto
    }
    fn default_text(&self) -> String {
        "auto".to_owned()
    }
    fn expected(&self) -> String {
        "auto, cpu, cuda or cuda:N[,M…]".to_owned()
    }
}

/// One device of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    pub compute: Compute,
    /// The GPU's name as the driver gives it, or the CPU's model and thread count.
    pub name: String,
    /// Bytes; 0 when unknown.
    pub memory_total_bytes: u64,
}

impl HostDevice {
    pub fn id(&self) -> String {
        self.compute.id()
    }

    /// The CPU of this machine.
    pub fn cpu() -> Self {
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "CPU".to_owned());
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            compute: Compute::Cpu,
            name: format!("{model} ({threads} threads)"),
            memory_total_bytes: meminfo_bytes("MemTotal:").unwrap_or(0),
        }
    }

    /// Memory in use now, bytes, where the platform says: for the CPU the machine's RAM in
    /// use (total less available, every process), for a GPU the device's memory in use
    /// (every process on it).
    pub fn memory_used_bytes(&self) -> Option<u64> {
        match self.compute {
            Compute::Cpu => {
                let total = meminfo_bytes("MemTotal:")?;
                let available = meminfo_bytes("MemAvailable:")?;
                Some(total.saturating_sub(available))
            }
            Compute::Cuda(ordinal) => cuda::memory_used_bytes(ordinal),
        }
    }
}

impl fmt::Display for HostDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id(), self.name)
    }
}

/// A `/proc/meminfo` line's value in bytes.
fn meminfo_bytes(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// What the CUDA driver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaProbe {
    /// This binary has no CUDA backend.
    NotBuilt,
    /// Built with CUDA, but the driver did not answer (no `libcuda.so.1`, no device…).
    Unavailable(String),
    /// The devices the driver shows, in ordinal order.
    Devices(Vec<HostDevice>),
}

/// The CUDA devices of this machine, asked once per process.
pub fn probe_cuda() -> &'static CudaProbe {
    static PROBE: std::sync::OnceLock<CudaProbe> = std::sync::OnceLock::new();
    PROBE.get_or_init(cuda::probe)
}

/// The devices `setting` selects, given the CPU and what the CUDA probe answered; the error is
/// what the variable could be set to on this host, for [`ConfigError::expected`].
pub fn resolve(
    setting: &DeviceSetting,
    cpu: HostDevice,
    probe: &CudaProbe,
) -> Result<Vec<HostDevice>, String> {
    let gpus = match probe {
        CudaProbe::Devices(devices) if !devices.is_empty() => Ok(devices),
        CudaProbe::Devices(_) => Err("the CUDA driver shows no device".to_owned()),
        CudaProbe::NotBuilt => Err(
            "this binary was built without CUDA (build with --features cuda, e.g. \
             deploy/Dockerfile.cuda)"
                .to_owned(),
        ),
        CudaProbe::Unavailable(why) => Err(format!("no CUDA device answers ({why})")),
    };
    match setting {
        DeviceSetting::Cpu => Ok(vec![cpu]),
        DeviceSetting::Auto => Ok(gpus.map_or_else(|_| vec![cpu], Clone::clone)),
        DeviceSetting::Cuda(ordinals) => {
            let gpus = gpus.map_err(|why| format!("cpu or auto: {why}; this host has cpu"))?;
            if ordinals.is_empty() {
                return Ok(gpus.clone());
            }
            ordinals
                .iter()
                .map(|&n| {
                    gpus.iter()
                        .find(|d| d.compute == Compute::Cuda(n))
                        .cloned()
                        .ok_or_else(|| {
                            format!(
                                "devices this host has (cuda:{n} is not one of them): {}",
                                describe(gpus)
                            )
                        })
                })
                .collect()
        }
    }
}

/// [`resolve`], its refusal as the configuration error naming `variable` (the one `setting`
/// was read from).
pub fn resolve_or_config_error(
    variable: &str,
    setting: &DeviceSetting,
    cpu: HostDevice,
    probe: &CudaProbe,
) -> Result<Vec<HostDevice>, ConfigError> {
    resolve(setting, cpu, probe)
        .map_err(|expected| ConfigError::new(variable, &setting_text(setting), expected))
}

fn setting_text(setting: &DeviceSetting) -> String {
    match setting {
        DeviceSetting::Auto => "auto".to_owned(),
        DeviceSetting::Cpu => "cpu".to_owned(),
        DeviceSetting::Cuda(ordinals) if ordinals.is_empty() => "cuda".to_owned(),
        DeviceSetting::Cuda(ordinals) => format!(
            "cuda:{}",
            ordinals
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// `cuda:0 (NVIDIA H200), cuda:1 (NVIDIA H200)`.
pub fn describe(devices: &[HostDevice]) -> String {
    devices
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A session's `device` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    /// Unset: the host's least-loaded device.
    Any,
    Cpu,
    /// `cuda`: any of the host's GPUs.
    AnyCuda,
    /// `cuda:N`.
    Cuda(usize),
}

impl DeviceRequest {
    /// `""`, `cpu`, `cuda`, `cuda:N` (any case, trimmed); `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" => Some(Self::Any),
            "cpu" => Some(Self::Cpu),
            "cuda" => Some(Self::AnyCuda),
            other => other
                .strip_prefix("cuda:")?
                .parse::<usize>()
                .ok()
                .map(Self::Cuda),
        }
    }

    pub fn accepts(&self, device: &Compute) -> bool {
        match self {
            Self::Any => true,
            Self::Cpu => *device == Compute::Cpu,
            Self::AnyCuda => device.is_cuda(),
            Self::Cuda(n) => *device == Compute::Cuda(*n),
        }
    }
}

impl fmt::Display for DeviceRequest {
    /// The normalised spelling, as stored with the session (`""` for [`DeviceRequest::Any`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => Ok(()),
            Self::Cpu => f.write_str("cpu"),
            Self::AnyCuda => f.write_str("cuda"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The CUDA driver, through cudarc (the library burn-cuda itself loads at run time).
#[cfg(feature = "cuda")]
mod cuda {
    use std::sync::{Arc, OnceLock};

    use cudarc::driver::CudaContext;
    use ktrdr_strategy::compute::Compute;

    use super::{CudaProbe, HostDevice};

    /// The primary context of each device found, kept to ask for its memory (burn-cuda uses
    /// the same primary contexts).
    static CONTEXTS: OnceLock<Vec<Arc<CudaContext>>> = OnceLock::new();

    pub fn probe() -> CudaProbe {
        // cudarc panics when it cannot load libcuda; that panic is the answer "no driver", so
        // it is caught, and its message kept out of the log for the one call.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let found = std::panic::catch_unwind(|| -> Result<Vec<Arc<CudaContext>>, String> {
            let count = CudaContext::device_count().map_err(|e| e.to_string())?;
            (0..usize::try_from(count).unwrap_or(0))
                .map(|n| CudaContext::new(n).map_err(|e| format!("cuda:{n}: {e}")))
                .collect()
        });
        std::panic::set_hook(hook);
        let contexts = match found {
            Ok(Ok(contexts)) => contexts,
            Ok(Err(why)) => return CudaProbe::Unavailable(why),
            Err(_) => {
                return CudaProbe::Unavailable(
                    "the NVIDIA driver's libcuda.so.1 cannot be loaded".to_owned(),
                );
            }
        };
        let devices = contexts
            .iter()
            .map(|ctx| HostDevice {
                compute: Compute::Cuda(ctx.ordinal()),
                name: ctx.name().unwrap_or_else(|_| "NVIDIA GPU".to_owned()),
                memory_total_bytes: ctx.total_mem().map_or(0, |b| b as u64),
            })
            .collect();
        let _ = CONTEXTS.set(contexts);
        CudaProbe::Devices(devices)
    }

    pub fn memory_used_bytes(ordinal: usize) -> Option<u64> {
        let ctx = CONTEXTS.get()?.iter().find(|c| c.ordinal() == ordinal)?;
        let (free, total) = ctx.mem_get_info().ok()?;
        Some(total.saturating_sub(free) as u64)
    }
}

/// Without the `cuda` feature there is no driver to ask.
#[cfg(not(feature = "cuda"))]
mod cuda {
    use super::CudaProbe;

    pub fn probe() -> CudaProbe {
        CudaProbe::NotBuilt
    }

    pub fn memory_used_bytes(_ordinal: usize) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use ktrdr_common::config::Env;

    use super::*;
    use crate::config::TRAINING_DEVICE;

    fn cpu() -> HostDevice {
        HostDevice {
            compute: Compute::Cpu,
            name: "Test CPU (2 threads)".to_owned(),
            memory_total_bytes: 8 << 30,
        }
    }

    fn gpus(n: usize) -> CudaProbe {
        CudaProbe::Devices(
            (0..n)
                .map(|i| HostDevice {
                    compute: Compute::Cuda(i),
                    name: format!("Fake GPU {i}"),
                    memory_total_bytes: 80 << 30,
                })
                .collect(),
        )
    }

    fn read(raw: &str) -> Result<DeviceSetting, ConfigError> {
        Env::from_pairs([("KTRDR_TRAINING_DEVICE", raw)]).read(&TRAINING_DEVICE)
    }

    #[test]
    fn the_setting_reads_every_documented_spelling() {
        assert_eq!(
            Env::default().read(&TRAINING_DEVICE).unwrap(),
            DeviceSetting::Auto
        );
        assert_eq!(read("auto").unwrap(), DeviceSetting::Auto);
        assert_eq!(read(" CPU ").unwrap(), DeviceSetting::Cpu);
        assert_eq!(read("cuda").unwrap(), DeviceSetting::Cuda(vec![]));
        assert_eq!(read("cuda:1").unwrap(), DeviceSetting::Cuda(vec![1]));
        assert_eq!(read("cuda:2, 0").unwrap(), DeviceSetting::Cuda(vec![2, 0]));
        assert_eq!(
            read("cuda:0,cuda:1,0").unwrap(),
            DeviceSetting::Cuda(vec![0, 1])
        );
    }

    #[test]
    fn a_bad_setting_is_an_error_naming_the_variable() {
        for bad in [
            "gpu",
            "cuda:",
            "cuda:x",
            "cuda:0,,1",
            "cuda:-1",
            "tpu:0",
            "cpu,cuda",
        ] {
            let err = read(bad).unwrap_err();
            assert_eq!(err.variable, "KTRDR_TRAINING_DEVICE", "{bad}");
            assert!(err.to_string().contains("cuda:N"), "{err}");
        }
    }

    #[test]
    fn auto_takes_every_gpu_that_answers_and_the_cpu_otherwise() {
        let all = resolve(&DeviceSetting::Auto, cpu(), &gpus(2)).unwrap();
        assert_eq!(
            all.iter().map(HostDevice::id).collect::<Vec<_>>(),
            ["cuda:0", "cuda:1"]
        );
        for probe in [
            CudaProbe::NotBuilt,
            CudaProbe::Unavailable("no libcuda".into()),
            gpus(0),
        ] {
            assert_eq!(
                resolve(&DeviceSetting::Auto, cpu(), &probe).unwrap(),
                [cpu()]
            );
        }
        assert_eq!(
            resolve(&DeviceSetting::Cpu, cpu(), &gpus(2)).unwrap(),
            [cpu()],
            "cpu is the CPU even on a GPU host"
        );
    }

    #[test]
    fn cuda_lists_pick_those_gpus_in_the_order_given() {
        let picked = resolve(&DeviceSetting::Cuda(vec![2, 0]), cpu(), &gpus(3)).unwrap();
        assert_eq!(
            picked.iter().map(HostDevice::id).collect::<Vec<_>>(),
            ["cuda:2", "cuda:0"]
        );
        assert_eq!(
            resolve(&DeviceSetting::Cuda(vec![]), cpu(), &gpus(3))
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn asking_for_cuda_where_there_is_none_says_what_the_host_has() {
        let err = resolve_or_config_error(
            TRAINING_DEVICE.name,
            &DeviceSetting::Cuda(vec![]),
            cpu(),
            &CudaProbe::NotBuilt,
        )
        .unwrap_err();
        assert_eq!(err.variable, "KTRDR_TRAINING_DEVICE");
        assert_eq!(err.value, "cuda");
        assert!(err.expected.contains("--features cuda"), "{err}");
        assert!(err.expected.contains("this host has cpu"), "{err}");

        let err = resolve_or_config_error(
            TRAINING_DEVICE.name,
            &DeviceSetting::Cuda(vec![0]),
            cpu(),
            &CudaProbe::Unavailable("the NVIDIA driver's libcuda.so.1 cannot be loaded".into()),
        )
        .unwrap_err();
        assert_eq!(err.value, "cuda:0");
        assert!(err.expected.contains("libcuda.so.1"), "{err}");

        let err = resolve_or_config_error(
            TRAINING_DEVICE.name,
            &DeviceSetting::Cuda(vec![0, 3]),
            cpu(),
            &gpus(2),
        )
        .unwrap_err();
        assert_eq!(err.value, "cuda:0,3");
        assert!(err.expected.contains("cuda:3 is not one of them"), "{err}");
        assert!(
            err.expected
                .contains("cuda:0 (Fake GPU 0), cuda:1 (Fake GPU 1)"),
            "{err}"
        );
    }

    #[test]
    fn session_requests_parse_normalise_and_match_devices() {
        assert_eq!(DeviceRequest::parse(" "), Some(DeviceRequest::Any));
        assert_eq!(DeviceRequest::parse("CPU"), Some(DeviceRequest::Cpu));
        assert_eq!(DeviceRequest::parse("cuda"), Some(DeviceRequest::AnyCuda));
        assert_eq!(DeviceRequest::parse("cuda:3"), Some(DeviceRequest::Cuda(3)));
        for bad in ["gpu", "cuda:", "cuda:1,2", "cuda:a", "mps"] {
            assert_eq!(DeviceRequest::parse(bad), None, "{bad}");
        }
        assert_eq!(DeviceRequest::Cuda(3).to_string(), "cuda:3");
        assert_eq!(DeviceRequest::Any.to_string(), "");
        assert!(DeviceRequest::Any.accepts(&Compute::Cpu));
        assert!(DeviceRequest::AnyCuda.accepts(&Compute::Cuda(1)));
        assert!(!DeviceRequest::AnyCuda.accepts(&Compute::Cpu));
        assert!(DeviceRequest::Cuda(1).accepts(&Compute::Cuda(1)));
        assert!(!DeviceRequest::Cuda(1).accepts(&Compute::Cuda(0)));
        assert!(!DeviceRequest::Cpu.accepts(&Compute::Cuda(0)));
    }

    #[test]
    fn the_cpu_is_described_with_its_memory() {
        let cpu = HostDevice::cpu();
        assert_eq!(cpu.id(), "cpu");
        assert!(cpu.name.contains("threads"), "{}", cpu.name);
        if cfg!(target_os = "linux") {
            assert!(cpu.memory_total_bytes > 0);
            let used = cpu.memory_used_bytes().unwrap();
            assert!(used > 0 && used <= cpu.memory_total_bytes);
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_build_without_cuda_probes_nothing() {
        assert_eq!(*probe_cuda(), CudaProbe::NotBuilt);
    }
}
