//! Where a computation runs, chosen at run time: [`Compute`] names a device (the CPU, or one
//! CUDA GPU) and [`Compute::run`] calls one generic piece of code ([`OnBackend`]) with the burn
//! backend and device that serve it. Training, evaluation and prediction are written once,
//! generic over the backend; this is the only place that maps a device to a backend type.
//!
//! `Compute::Cuda` exists in every build so that device lists can be described, compared and
//! tested anywhere; running on it needs the `cuda` feature, and a build without it answers
//! with [`crate::StrategyError::Device`] instead.

use std::fmt;

use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;

use crate::error::Result;
use crate::model::CpuBackend;
use crate::training::BatchSource;

/// A compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Compute {
    /// The CPU, through burn's ndarray backend.
    Cpu,
    /// The CUDA GPU with this ordinal (as the driver numbers the visible devices), through
    /// burn-cuda.
    Cuda(usize),
}

/// A piece of work generic over the backend. `B` is the autodiff backend (what training
/// needs); inference uses `B::InnerBackend` on the same device.
pub trait OnBackend {
    type Output;
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Self::Output;
}

impl Compute {
    /// `job` on this device's backend. Fails only for a CUDA device in a build without the
    /// `cuda` feature.
    pub fn run<J: OnBackend>(&self, job: J) -> Result<J::Output> {
        match *self {
            Compute::Cpu => Ok(job.run::<Autodiff<CpuBackend>>(&Default::default())),
            #[cfg(feature = "cuda")]
            Compute::Cuda(ordinal) => Ok(job.run::<Autodiff<crate::model::GpuBackend>>(
                &burn::backend::cuda::CudaDevice::new(ordinal),
            )),
            #[cfg(not(feature = "cuda"))]
            Compute::Cuda(_) => Err(crate::error::StrategyError::Device(format!(
                "{self} needs the CUDA backend, and this binary was built without it \
                 (build with --features cuda, e.g. deploy/Dockerfile.cuda)"
            ))),
        }
    }

    /// The id used in requests, status and metrics: `cpu`, `cuda:N`.
    pub fn id(&self) -> String {
        self.to_string()
    }

    pub fn is_cuda(&self) -> bool {
        matches!(self, Compute::Cuda(_))
    }

    /// Where training on this device cuts its batches: on the device for a GPU (the split
    /// uploaded once), on the host for the CPU (where gathering is the copy).
    pub fn batches(&self) -> BatchSource {
        if self.is_cuda() {
            BatchSource::Device
        } else {
            BatchSource::Host
        }
    }
}

impl fmt::Display for Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compute::Cpu => f.write_str("cpu"),
            Compute::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Tensor;

    use super::*;

    /// Sums a small tensor on whatever backend it is given.
    struct Sum(Vec<f32>);

    impl OnBackend for Sum {
        type Output = f32;
        fn run<B: AutodiffBackend>(self, device: &B::Device) -> f32 {
            let n = self.0.len();
            let t: Tensor<B, 2> = crate::model::float_tensor(&self.0, 1, n, device);
            crate::model::to_f32_vec(t.sum())[0]
        }
    }

    #[test]
    fn the_cpu_runs_generic_code_on_the_ndarray_backend() {
        assert_eq!(Compute::Cpu.run(Sum(vec![1.0, 2.0, 3.5])).unwrap(), 6.5);
    }

    #[test]
    fn devices_are_named_as_requests_name_them() {
        assert_eq!(Compute::Cpu.id(), "cpu");
        assert_eq!(Compute::Cuda(1).id(), "cuda:1");
        assert!(Compute::Cuda(0).is_cuda() && !Compute::Cpu.is_cuda());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_cuda_device_without_the_cuda_build_is_an_error_saying_how_to_get_one() {
        let err = Compute::Cuda(0).run(Sum(vec![1.0])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cuda:0"), "{text}");
        assert!(text.contains("--features cuda"), "{text}");
    }
}
