//! Ascend NPUs through a torch_npu libtorch build loaded at run time (`--device npu[:i]`).
//!
//! Why at run time: Ascend's torch_npu is a separate library built against one exact libtorch, needing
//! CANN on the machine. Linking it would make every mixtape-train binary unusable elsewhere; loading it
//! on request keeps CPU and CUDA builds untouched, and a missing or mismatched library becomes a clear
//! [`NpuError`] instead of a loader failure at start-up.
//!
//! How: [`NpuDevice::load`] hands the library path to the C++ shim (`shim/npu_shim.cpp`), which
//! dlopens it (its static initialisers register PyTorch's PrivateUse1 device type as "npu"), calls
//! `torch_npu::init_npu("npu:i")`, and checks the registration took. Afterwards tensors move with
//! [`NpuDevice::to_device`] / [`NpuDevice::to_cpu`], and [`NpuDevice::autocast`] sets autocast for the
//! PrivateUse1 device type (tch's own autocast is CUDA-only).
//!
//! Rules for code that trains on an NPU (tch cannot name the PrivateUse1 device):
//! - never ask tch for a tensor's device: a PrivateUse1 tensor reports itself as `Mps`. Use
//!   [`NpuDevice::index_of`] when a check is needed.
//! - create tensors on the CPU and move them: `Tensor::zeros(.., (kind, device))` cannot target the
//!   NPU, and `Tensor::set_data` refuses PrivateUse1 tensors, so parameters are drawn on the CPU,
//!   moved, and the moved tensor is what the model keeps (e.g. registered via `nn::Path::add`).
//! - load the backend before the first backward pass: the autograd engine starts its per-device
//!   worker threads from the device guards registered at that moment. Loading runs a one-element
//!   forward/backward probe on the device, so a late load is a [`NpuError::LoadedTooLate`] at load
//!   time, not an internal assertion in the middle of training.
//!
//! Which library: the `MIXTAPE_NPU_LIB` environment variable ([`NPU_LIB_ENV`]) or an explicit path.
//! The test suite uses a fake backend (`shim/fake_npu.cpp`) with the same init symbol; what only real
//! hardware can confirm is listed in trainer-bridge's README.

mod ffi;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tch::Tensor;

/// Environment variable naming the backend library (the Python-free torch_npu build's
/// `libtorch_npu.so`), read when no path is given explicitly.
pub const NPU_LIB_ENV: &str = "MIXTAPE_NPU_LIB";

/// Why the Ascend backend cannot be used. Each message names the file or symbol and the fix.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NpuError {
    #[error(
        "npu: no backend library given: pass --npu-lib PATH or set {NPU_LIB_ENV} to the libtorch_npu.so \
         of a Python-free torch_npu build (Ascend/pytorch, BUILD_LIBTORCH) made for torch {torch}"
    )]
    NoLibrary { torch: String },
    #[error("npu: backend library {} does not exist (from {origin}); check the path", path.display())]
    LibraryMissing { path: PathBuf, origin: String },
    #[error(
        "npu: cannot load {}: {detail}\n  (a missing libascendcl.so / libhccl.so means CANN's environment is \
         not set: `source /usr/local/Ascend/ascend-toolkit/set_env.sh`, or the LD_LIBRARY_PATH of your \
         CANN install)", path.display()
    )]
    LoadFailed { path: PathBuf, detail: String },
    #[error(
        "npu: {} was built against a different libtorch than the torch {torch} this program links: {detail}\n  \
         rebuild torch_npu (BUILD_LIBTORCH) against torch {torch} with _GLIBCXX_USE_CXX11_ABI=1",
        path.display()
    )]
    LibtorchMismatch {
        path: PathBuf,
        torch: String,
        detail: String,
    },
    #[error(
        "npu: {} has no symbol `{symbol}` (void torch_npu::init_npu(const std::string&)): it is not a \
         torch_npu library, or one too old to export init_npu; point {NPU_LIB_ENV} at libtorch_npu.so",
        path.display()
    )]
    MissingInitSymbol { path: PathBuf, symbol: String },
    #[error(
        "npu: {} was compiled with the old C++ string ABI (it exports `{symbol}`), but torch {torch} from \
         PyPI uses the C++11 ABI: rebuild torch_npu with _GLIBCXX_USE_CXX11_ABI=1", path.display()
    )]
    OldCxxAbi {
        path: PathBuf,
        symbol: String,
        torch: String,
    },
    #[error("npu: torch_npu::init_npu(\"{device}\") in {} failed: {detail}", path.display())]
    InitFailed {
        path: PathBuf,
        device: String,
        detail: String,
    },
    #[error(
        "npu: {} loaded and initialised, but {detail} (expected \"npu\"): it did not register into the \
         libtorch this program uses (was it linked against another copy of libc10.so / libtorch_cpu.so?)",
        path.display()
    )]
    NotRegistered { path: PathBuf, detail: String },
    #[error(
        "npu: {} cannot be loaded because another backend, {loaded}, already is (one PrivateUse1 backend \
         per process)", path.display()
    )]
    AnotherBackendLoaded { path: PathBuf, loaded: String },
    #[error(
        "npu: {} was loaded after this process had already run a backward pass, so libtorch's autograd \
         engine has no worker for the npu device ({detail}); load the backend (DeviceSpec::placement or \
         NpuDevice::load) before the first training step", path.display()
    )]
    LoadedTooLate { path: PathBuf, detail: String },
    #[error(
        "npu: {} initialised npu:{index}, but a one-element forward and backward on it failed: {detail}",
        path.display()
    )]
    ProbeFailed {
        path: PathBuf,
        index: usize,
        detail: String,
    },
    #[error("npu: device npu:{index} does not exist: the backend reports {count} device(s)")]
    NoSuchDevice { index: usize, count: usize },
    #[error("npu: moving a tensor {direction} failed: {detail}")]
    Transfer {
        direction: &'static str,
        detail: String,
    },
}

/// Lower-precision types autocast can run matrix products in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutocastDtype {
    F16,
    Bf16,
}

impl AutocastDtype {
    /// The at::ScalarType code (c10/core/ScalarType.h: Half = 5, BFloat16 = 15).
    fn scalar_type(self) -> i32 {
        match self {
            AutocastDtype::F16 => 5,
            AutocastDtype::Bf16 => 15,
        }
    }
}

/// An initialised Ascend device: the process has loaded the backend and `init_npu` ran for `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpuDevice {
    index: usize,
    library: PathBuf,
}

impl NpuDevice {
    /// Loads the backend named by `library`, or by [`NPU_LIB_ENV`] when `None`, and initialises
    /// `npu:index`. Loading the same library again (another index) only re-runs its init.
    pub fn load(library: Option<&Path>, index: usize) -> Result<Self, NpuError> {
        let (path, origin) = match library {
            Some(path) => (path.to_path_buf(), "the --npu-lib option".to_string()),
            None => match std::env::var_os(NPU_LIB_ENV) {
                Some(value) if !value.is_empty() => {
                    (PathBuf::from(value), format!("${NPU_LIB_ENV}"))
                }
                _ => {
                    return Err(NpuError::NoLibrary {
                        torch: ffi::torch_version(),
                    });
                }
            },
        };
        if !path.is_file() {
            return Err(NpuError::LibraryMissing { path, origin });
        }
        let device = format!("npu:{index}");
        let c_path =
            ffi::c_string(path.as_os_str().as_bytes()).map_err(|detail| NpuError::LoadFailed {
                path: path.clone(),
                detail,
            })?;
        let c_device = ffi::c_string(device.as_bytes()).expect("a device name has no NUL byte");
        let torch = ffi::torch_version;
        match ffi::load(&c_path, &c_device) {
            ffi::LoadOutcome::Ok => {}
            ffi::LoadOutcome::DlopenFailed(detail) => {
                return Err(NpuError::LoadFailed { path, detail });
            }
            ffi::LoadOutcome::UndefinedSymbol(detail) => {
                return Err(NpuError::LibtorchMismatch {
                    path,
                    torch: torch(),
                    detail,
                });
            }
            ffi::LoadOutcome::NoInitSymbol(symbol) => {
                return Err(NpuError::MissingInitSymbol { path, symbol });
            }
            ffi::LoadOutcome::OldAbi(symbol) => {
                return Err(NpuError::OldCxxAbi {
                    path,
                    symbol,
                    torch: torch(),
                });
            }
            ffi::LoadOutcome::InitFailed(detail) => {
                return Err(NpuError::InitFailed {
                    path,
                    device,
                    detail,
                });
            }
            ffi::LoadOutcome::NotRegistered(detail) => {
                return Err(NpuError::NotRegistered { path, detail });
            }
            ffi::LoadOutcome::LoadedTooLate(detail) => {
                return Err(NpuError::LoadedTooLate { path, detail });
            }
            ffi::LoadOutcome::ProbeFailed(detail) => {
                return Err(NpuError::ProbeFailed {
                    path,
                    index,
                    detail,
                });
            }
            ffi::LoadOutcome::OtherLibrary(loaded) => {
                return Err(NpuError::AnotherBackendLoaded { path, loaded });
            }
        }
        let count = ffi::device_count().unwrap_or(0);
        if index >= count {
            return Err(NpuError::NoSuchDevice { index, count });
        }
        Ok(Self {
            index,
            library: path,
        })
    }

    /// The device index (`i` of `npu:i`).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The backend library this device came from.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Number of devices the loaded backend reports.
    pub fn device_count(&self) -> usize {
        ffi::device_count().unwrap_or(0)
    }

    /// A copy of `t` (any device) on this NPU. Gradient tracking is not carried over: the result is
    /// a fresh leaf, ready to be registered as a parameter with `set_requires_grad(true)`.
    pub fn to_device(&self, t: &Tensor) -> Result<Tensor, NpuError> {
        ffi::to(t, Some(self.index)).map_err(|detail| NpuError::Transfer {
            direction: "to the npu",
            detail,
        })
    }

    /// A copy of `t` on the CPU (for logging, checkpoints, comparisons).
    pub fn to_cpu(&self, t: &Tensor) -> Result<Tensor, NpuError> {
        ffi::to(t, None).map_err(|detail| NpuError::Transfer {
            direction: "to the cpu",
            detail,
        })
    }

    /// The NPU index `t` lives on, or `None` if it is not on an NPU. Use this, never `t.device()`.
    pub fn index_of(t: &Tensor) -> Option<usize> {
        ffi::device_index(t)
    }

    /// Runs `f` with autocast enabled for the NPU device type in `dtype`, then restores the previous
    /// autocast state and, at the outermost level, clears autocast's cache of cast weights (so the
    /// next step casts the updated weights again), also if `f` panics.
    pub fn autocast<T>(&self, dtype: AutocastDtype, f: impl FnOnce() -> T) -> T {
        struct Restore((bool, i32));
        impl Drop for Restore {
            fn drop(&mut self) {
                ffi::autocast_exit(self.0);
            }
        }
        let previous = ffi::autocast_state();
        ffi::autocast_enter(dtype.scalar_type());
        let _restore = Restore(previous);
        f()
    }

    /// Whether autocast is currently on for the NPU device type (on this thread).
    pub fn autocast_enabled() -> bool {
        ffi::autocast_state().0
    }
}

/// The libtorch version the shim was compiled against (tch's libtorch), e.g. "2.13.0".
pub fn linked_torch_version() -> String {
    ffi::torch_version()
}
