//! The only `unsafe` of the Ascend path: declarations of the C++ shim's extern "C" functions
//! (`shim/npu_shim.cpp`, compiled and linked by build.rs) and safe wrappers around them.
//!
//! Invariants the wrappers uphold: every pointer handed to C++ is either a valid NUL-terminated string
//! that outlives the call, or the `at::Tensor*` inside a live [`tch::Tensor`] (tch's `C_tensor` *is*
//! `at::Tensor`); every tensor pointer coming back is freshly `new`ed and handed to
//! [`Tensor::from_ptr`], which owns and frees it; every detail string coming back is `malloc`ed by the
//! shim and freed here with `mixtape_npu_free_string` after copying. No C++ exception crosses the
//! boundary: the shim catches them and returns a code or a null pointer plus a message.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr;

use tch::Tensor;
use torch_sys::C_tensor;

unsafe extern "C" {
    fn mixtape_npu_load(
        path: *const c_char,
        device: *const c_char,
        detail: *mut *mut c_char,
    ) -> c_int;
    fn mixtape_npu_torch_version() -> *const c_char;
    fn mixtape_npu_device_count() -> c_int;
    fn mixtape_npu_to(src: *const C_tensor, index: c_int, error: *mut *mut c_char)
    -> *mut C_tensor;
    fn mixtape_npu_device_index(t: *const C_tensor) -> c_int;
    fn mixtape_npu_autocast_enter(dtype: c_int);
    fn mixtape_npu_autocast_exit(was_enabled: c_int, previous_dtype: c_int);
    fn mixtape_npu_autocast_enabled() -> c_int;
    fn mixtape_npu_autocast_dtype() -> c_int;
    fn mixtape_npu_free_string(s: *mut c_char);
}

/// Outcome of [`load`], mirroring the shim's `MixtapeNpuLoad` codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoadOutcome {
    Ok,
    DlopenFailed(String),
    UndefinedSymbol(String),
    NoInitSymbol(String),
    OldAbi(String),
    InitFailed(String),
    NotRegistered(String),
    OtherLibrary(String),
    LoadedTooLate(String),
    ProbeFailed(String),
}

/// Copies and frees a string the shim allocated (null: empty).
fn take_string(s: *mut c_char) -> String {
    if s.is_null() {
        return String::new();
    }
    // SAFETY: the shim returns NUL-terminated strings from malloc; we free it exactly once, here.
    unsafe {
        let owned = CStr::from_ptr(s).to_string_lossy().into_owned();
        mixtape_npu_free_string(s);
        owned
    }
}

/// dlopens `path` (or reuses it if already loaded), calls its `init_npu(device)`, checks registration.
pub(crate) fn load(path: &CStr, device: &CStr) -> LoadOutcome {
    let mut detail: *mut c_char = ptr::null_mut();
    // SAFETY: both strings are valid for the call; `detail` is an out-pointer the shim may fill.
    let code = unsafe { mixtape_npu_load(path.as_ptr(), device.as_ptr(), &mut detail) };
    let detail = take_string(detail);
    match code {
        0 => LoadOutcome::Ok,
        1 => LoadOutcome::DlopenFailed(detail),
        2 => LoadOutcome::UndefinedSymbol(detail),
        3 => LoadOutcome::NoInitSymbol(detail),
        4 => LoadOutcome::OldAbi(detail),
        5 => LoadOutcome::InitFailed(detail),
        6 => LoadOutcome::NotRegistered(detail),
        7 => LoadOutcome::OtherLibrary(detail),
        8 => LoadOutcome::LoadedTooLate(detail),
        9 => LoadOutcome::ProbeFailed(detail),
        other => {
            LoadOutcome::InitFailed(format!("the shim returned unknown code {other}: {detail}"))
        }
    }
}

/// The libtorch version the shim was compiled against (the one tch links), e.g. "2.13.0".
pub(crate) fn torch_version() -> String {
    // SAFETY: returns a pointer to a static string literal.
    unsafe { CStr::from_ptr(mixtape_npu_torch_version()) }
        .to_string_lossy()
        .into_owned()
}

/// PrivateUse1 devices the loaded backend reports; `None` before any backend is loaded.
pub(crate) fn device_count() -> Option<usize> {
    // SAFETY: no arguments; the shim checks whether a device guard is registered.
    let n = unsafe { mixtape_npu_device_count() };
    usize::try_from(n).ok()
}

/// Copies `t` to PrivateUse1 device `index`, or to the CPU when `index` is `None`.
pub(crate) fn to(t: &Tensor, index: Option<usize>) -> Result<Tensor, String> {
    let index = match index {
        Some(i) => {
            c_int::try_from(i).map_err(|_| format!("device index {i} does not fit a C int"))?
        }
        None => -1,
    };
    let mut error: *mut c_char = ptr::null_mut();
    // SAFETY: `t` keeps its at::Tensor alive for the call; the shim only reads it.
    let out = unsafe { mixtape_npu_to(t.as_ptr(), index, &mut error) };
    if out.is_null() {
        return Err(take_string(error));
    }
    // SAFETY: `out` is a fresh `new at::Tensor`, exactly what tch's Tensor owns and later deletes.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// The PrivateUse1 index of `t`, or `None` when it is not on a PrivateUse1 device.
pub(crate) fn device_index(t: &Tensor) -> Option<usize> {
    // SAFETY: `t` keeps its at::Tensor alive for the call; the shim only reads its device.
    let index = unsafe { mixtape_npu_device_index(t.as_ptr()) };
    usize::try_from(index).ok()
}

/// Autocast state for the PrivateUse1 device type: (enabled, at::ScalarType code).
pub(crate) fn autocast_state() -> (bool, c_int) {
    // SAFETY: plain reads of libtorch's thread-local autocast state.
    unsafe {
        (
            mixtape_npu_autocast_enabled() != 0,
            mixtape_npu_autocast_dtype(),
        )
    }
}

/// Turns autocast on for PrivateUse1 with `dtype` (an at::ScalarType code) and enters one nesting level.
pub(crate) fn autocast_enter(dtype: c_int) {
    // SAFETY: sets libtorch's thread-local autocast state; any ScalarType code is accepted there.
    unsafe { mixtape_npu_autocast_enter(dtype) }
}

/// Leaves one nesting level (clearing the cast cache at the outermost) and restores the prior state.
pub(crate) fn autocast_exit(previous: (bool, c_int)) {
    // SAFETY: as for autocast_enter.
    unsafe { mixtape_npu_autocast_exit(c_int::from(previous.0), previous.1) }
}

/// A C string for the shim, or the reason it cannot be one.
pub(crate) fn c_string(bytes: &[u8]) -> Result<CString, String> {
    CString::new(bytes)
        .map_err(|_| format!("`{}` contains a NUL byte", String::from_utf8_lossy(bytes)))
}
