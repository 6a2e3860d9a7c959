//! Where training runs: `--device cpu | cuda[:i] | npu[:i]`.
//!
//! [`DeviceSpec`] is what the user typed, parsed without touching libtorch; [`DeviceSpec::resolve`]
//! turns CPU and CUDA into a [`tch::Device`], and [`DeviceSpec::placement`] turns any of them, the
//! Ascend NPU included, into a [`Placement`], failing with a message that says what to do when the
//! device is not available. The training loop carries the [`Placement`]: model code never asks a
//! tensor for its device (a PrivateUse1 tensor reports itself as `Mps` to tch), it receives the
//! placement once, from here, and creates tensors through it.
//!
//! The Ascend backend itself (loading torch_npu, moving tensors) lives in `src/npu/`.

use std::fmt;
use std::str::FromStr;

use crate::npu::{NpuDevice, NpuError};

/// A device as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    Npu(usize),
}

/// Why a device name cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceError {
    #[error("unknown device `{0}`: expected cpu, cuda, cuda:N, npu or npu:N")]
    Unknown(String),
    #[error("device `{0}`: the index after `:` must be a number, e.g. cuda:0")]
    BadIndex(String),
    #[error(
        "device cuda:{index} is not available: libtorch reports {available} CUDA device(s){hint}"
    )]
    CudaUnavailable {
        index: usize,
        available: usize,
        hint: &'static str,
    },
    #[error(
        "device npu:{0} has no tch::Device (tch cannot name PrivateUse1): use DeviceSpec::placement, \
         which loads the Ascend backend"
    )]
    NpuHasNoTchDevice(usize),
    /// Loading or initialising the Ascend backend failed (the message says which file and the fix).
    #[error(transparent)]
    Npu(#[from] crate::npu::NpuError),
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(text: &str) -> Result<Self, DeviceError> {
        let lower = text.trim().to_ascii_lowercase();
        let (kind, index) = match lower.split_once(':') {
            Some((kind, index)) => {
                let index = index
                    .parse::<usize>()
                    .map_err(|_| DeviceError::BadIndex(text.to_string()))?;
                (kind.to_string(), index)
            }
            None => (lower.clone(), 0),
        };
        match kind.as_str() {
            "cpu" if !lower.contains(':') => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(index)),
            "npu" => Ok(DeviceSpec::Npu(index)),
            _ => Err(DeviceError::Unknown(text.to_string())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceSpec::Npu(i) => write!(f, "npu:{i}"),
        }
    }
}

impl DeviceSpec {
    /// The libtorch device, after checking it exists. CPU and CUDA only: an NPU is reached through
    /// [`DeviceSpec::placement`].
    pub fn resolve(self) -> Result<tch::Device, DeviceError> {
        match self {
            DeviceSpec::Cpu => Ok(tch::Device::Cpu),
            DeviceSpec::Cuda(index) => {
                let available = if tch::Cuda::is_available() {
                    tch::Cuda::device_count().max(0) as usize
                } else {
                    0
                };
                if index < available {
                    Ok(tch::Device::Cuda(index))
                } else {
                    let hint = if available == 0 {
                        " (no GPU visible, or libtorch installed without its CUDA libraries: run \
                         `bash trainer-bridge/install-libtorch.sh --cuda`)"
                    } else {
                        ""
                    };
                    Err(DeviceError::CudaUnavailable {
                        index,
                        available,
                        hint,
                    })
                }
            }
            DeviceSpec::Npu(index) => Err(DeviceError::NpuHasNoTchDevice(index)),
        }
    }

    /// Whether runs on this device are bit-for-bit reproducible (resume exactness is promised there).
    pub fn is_deterministic(self) -> bool {
        matches!(self, DeviceSpec::Cpu)
    }
}

/// Where a run's tensors live, the Ascend NPU included, which [`tch::Device`] cannot name.
///
/// Code that must run on an NPU creates tensors on the CPU and calls [`Placement::put`] instead of
/// `to_device`/`(kind, device)`, and never asks a tensor for its device (see [`crate::npu`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// CPU or CUDA: plain tch.
    Tch(tch::Device),
    /// A PrivateUse1 ("npu") device of the loaded Ascend backend.
    Npu(NpuDevice),
}

impl Placement {
    /// A copy of `t` on this placement (for `Tch`, tch's `to_device`, which returns `t` itself when
    /// it is already there).
    pub fn try_put(&self, t: &tch::Tensor) -> Result<tch::Tensor, NpuError> {
        match self {
            Placement::Tch(device) => Ok(t.to_device(*device)),
            Placement::Npu(npu) => npu.to_device(t),
        }
    }

    /// [`Placement::try_put`] that panics on failure, like tch's own `to_device` (a failed copy to a
    /// device that loaded and initialised means the device is out of memory or broken).
    pub fn put(&self, t: &tch::Tensor) -> tch::Tensor {
        self.try_put(t).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A tensor made by `make` on this placement: for CPU and CUDA, `make` receives the device itself
    /// (so those runs create their tensors exactly as before); for an NPU, which tch cannot name,
    /// `make` builds it on the CPU and the result is put on the device.
    pub fn create(&self, make: impl FnOnce(tch::Device) -> tch::Tensor) -> tch::Tensor {
        match self {
            Placement::Tch(device) => make(*device),
            Placement::Npu(_) => self.put(&make(tch::Device::Cpu)),
        }
    }

    /// A CPU copy of `t`, from wherever this placement keeps it.
    pub fn to_cpu(&self, t: &tch::Tensor) -> tch::Tensor {
        match self {
            Placement::Tch(_) => t.to_device(tch::Device::Cpu),
            Placement::Npu(npu) => npu.to_cpu(t).unwrap_or_else(|e| panic!("{e}")),
        }
    }
}

impl DeviceSpec {
    /// The placement for this device: CPU and CUDA as [`DeviceSpec::resolve`] checks them; `npu:i`
    /// loads the Ascend backend from `npu_lib` (or `$MIXTAPE_NPU_LIB`) and initialises device `i`.
    pub fn placement(self, npu_lib: Option<&std::path::Path>) -> Result<Placement, DeviceError> {
        match self {
            DeviceSpec::Npu(index) => Ok(Placement::Npu(NpuDevice::load(npu_lib, index)?)),
            other => other.resolve().map(Placement::Tch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("CUDA".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        assert_eq!("npu:1".parse(), Ok(DeviceSpec::Npu(1)));
        assert_eq!(
            "tpu".parse::<DeviceSpec>(),
            Err(DeviceError::Unknown("tpu".into()))
        );
        assert_eq!(
            "cuda:x".parse::<DeviceSpec>(),
            Err(DeviceError::BadIndex("cuda:x".into()))
        );
        assert_eq!(
            "cpu:1".parse::<DeviceSpec>(),
            Err(DeviceError::Unknown("cpu:1".into()))
        );
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn npu_has_no_tch_device_and_says_to_use_a_placement() {
        let err = DeviceSpec::Npu(0).resolve().unwrap_err();
        assert!(err.to_string().contains("DeviceSpec::placement"), "{err}");
    }

    #[test]
    fn cpu_resolves() {
        assert_eq!(DeviceSpec::Cpu.resolve(), Ok(tch::Device::Cpu));
        assert_eq!(
            DeviceSpec::Cpu.placement(None),
            Ok(Placement::Tch(tch::Device::Cpu))
        );
    }
}
