// The C ABI between trainer-bridge's Rust code and an Ascend backend loaded at run time.
//
// Why a shim: tch only knows the CPU, CUDA, MPS and Vulkan device types, and torch_npu's entry point is a
// C++ function. This file, compiled by build.rs against the same libtorch headers tch links, offers a
// few extern "C" functions the Rust side (src/npu/ffi.rs) calls:
//
//   * loading: dlopen the backend library, find and call `torch_npu::init_npu(const std::string&)`, and
//     check that it registered the PrivateUse1 device type as "npu". Each failure returns a distinct code
//     plus a detail string (the dlerror text, the missing symbol, ...) that the Rust side turns into an
//     actionable error.
//   * tensors: move an at::Tensor (tch's C_tensor is an at::Tensor*) to PrivateUse1 device i or back to
//     CPU, and report a tensor's PrivateUse1 index without going through tch (which would misreport it).
//   * autocast for the PrivateUse1 device type (tch's autocast is CUDA-only).
//
// The init symbol is looked up by its mangled name rather than through an extern "C" wrapper library,
// so a stock Python-free torch_npu build works with nothing extra to compile on the Ascend machine. The
// name is the Itanium mangling of `void torch_npu::init_npu(const std::string&)` with the C++11 string
// ABI (which PyPI torch uses); a backend built with the old ABI exports a different name, which
// we detect and report as such.
//
// Errors never cross the C boundary as exceptions: every entry point catches and returns a message.

#include <ATen/autocast_mode.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/ones.h>
#include <c10/core/DeviceType.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/headeronly/version.h>

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>

namespace {

// `void torch_npu::init_npu(const std::string&)`, C++11 ABI (what PyPI torch and this shim use).
constexpr const char* kInitSymbol =
    "_ZN9torch_npu8init_npuERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE";
// The same function compiled with -D_GLIBCXX_USE_CXX11_ABI=0 (std::string is then `Ss`).
constexpr const char* kInitSymbolOldAbi = "_ZN9torch_npu8init_npuERKSs";

using InitFn = void (*)(const std::string&);

std::mutex load_mutex;
void* loaded_handle = nullptr;
std::string loaded_path;

char* dup(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

void set_detail(char** detail, const std::string& message) {
  if (detail != nullptr) *detail = dup(message);
}

// c10::Error::what() carries a C++ backtrace; its first line is the message people need.
std::string brief(const std::exception& e) {
  if (auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return c10_error->msg();
  return e.what();
}

}  // namespace

extern "C" {

// Result codes of mixtape_npu_load; src/npu/ffi.rs mirrors them.
enum MixtapeNpuLoad {
  MIXTAPE_NPU_OK = 0,
  MIXTAPE_NPU_DLOPEN_FAILED = 1,      // detail: dlerror()
  MIXTAPE_NPU_UNDEFINED_SYMBOL = 2,   // detail: dlerror() naming the symbol libtorch lacks
  MIXTAPE_NPU_NO_INIT_SYMBOL = 3,     // detail: the symbol looked for
  MIXTAPE_NPU_OLD_ABI = 4,            // detail: the old-ABI symbol found instead
  MIXTAPE_NPU_INIT_FAILED = 5,        // detail: the exception init_npu threw
  MIXTAPE_NPU_NOT_REGISTERED = 6,     // detail: what PrivateUse1 looks like after init
  MIXTAPE_NPU_OTHER_LIBRARY = 7,      // detail: the path loaded before
  MIXTAPE_NPU_LOADED_TOO_LATE = 8,    // detail: the autograd engine's complaint
  MIXTAPE_NPU_PROBE_FAILED = 9,       // detail: what the probe computation threw
};

// Loads `path` (RTLD_NOW | RTLD_GLOBAL: torch_npu's own dependencies resolve against it), calls its
// init_npu(device), and checks the PrivateUse1 registration. A second call with the same path only
// re-runs init (selecting another device); a different path is refused, since a process can hold only
// one PrivateUse1 backend.
int mixtape_npu_load(const char* path, const char* device, char** detail) {
  std::lock_guard<std::mutex> lock(load_mutex);
  try {
    if (loaded_handle != nullptr && loaded_path != path) {
      set_detail(detail, loaded_path);
      return MIXTAPE_NPU_OTHER_LIBRARY;
    }
    void* handle = loaded_handle;
    if (handle == nullptr) {
      dlerror();
      handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
      if (handle == nullptr) {
        const char* err = dlerror();
        std::string message = err != nullptr ? err : "dlopen failed without a message";
        set_detail(detail, message);
        return message.find("undefined symbol") != std::string::npos ? MIXTAPE_NPU_UNDEFINED_SYMBOL
                                                                      : MIXTAPE_NPU_DLOPEN_FAILED;
      }
    }
    auto init = reinterpret_cast<InitFn>(dlsym(handle, kInitSymbol));
    if (init == nullptr) {
      bool old_abi = dlsym(handle, kInitSymbolOldAbi) != nullptr;
      set_detail(detail, old_abi ? kInitSymbolOldAbi : kInitSymbol);
      // Not dlclose'd: its static initialisers may already have registered with the dispatcher.
      return old_abi ? MIXTAPE_NPU_OLD_ABI : MIXTAPE_NPU_NO_INIT_SYMBOL;
    }
    // From here on the library stays loaded even if init fails: its static initialisers have already
    // registered kernels with the dispatcher, and unloading it would leave them dangling.
    loaded_handle = handle;
    loaded_path = path;
    try {
      init(std::string(device));
    } catch (const std::exception& e) {
      set_detail(detail, brief(e));
      return MIXTAPE_NPU_INIT_FAILED;
    }
    if (!c10::is_privateuse1_backend_registered() || c10::get_privateuse1_backend() != "npu" ||
        !c10::impl::hasDeviceGuardImpl(c10::DeviceType::PrivateUse1)) {
      std::string state = c10::is_privateuse1_backend_registered()
                              ? "PrivateUse1 is registered as '" + c10::get_privateuse1_backend() + "'"
                              : "PrivateUse1 has no registered backend";
      if (!c10::impl::hasDeviceGuardImpl(c10::DeviceType::PrivateUse1)) {
        state += " and has no device guard";
      }
      set_detail(detail, state);
      return MIXTAPE_NPU_NOT_REGISTERED;
    }
    // Probe: one tiny forward and backward on the device. It proves the device computes (torch_npu's
    // init_npu reports some failures only by printing), and it catches a backend loaded after this
    // process already ran a backward pass: the autograd engine creates its per-device worker queues
    // once, on the first backward, from the device guards registered then, and has none for a
    // PrivateUse1 registered later.
    try {
      auto probe = at::ones({1}, at::TensorOptions().device(c10::Device(std::string(device)))).set_requires_grad(true);
      probe.sum().backward();
    } catch (const std::exception& e) {
      std::string message = brief(e);
      set_detail(detail, message);
      return message.find("ready_queue") != std::string::npos ? MIXTAPE_NPU_LOADED_TOO_LATE
                                                              : MIXTAPE_NPU_PROBE_FAILED;
    }
    return MIXTAPE_NPU_OK;
  } catch (const std::exception& e) {
    set_detail(detail, brief(e));
    return MIXTAPE_NPU_INIT_FAILED;
  }
}

// The libtorch version these headers (and therefore tch's libtorch) are, e.g. "2.13.0".
const char* mixtape_npu_torch_version() { return TORCH_VERSION; }

// Number of PrivateUse1 devices, or -1 if no backend is loaded.
int mixtape_npu_device_count() {
  if (!c10::impl::hasDeviceGuardImpl(c10::DeviceType::PrivateUse1)) return -1;
  return c10::impl::getDeviceGuardImpl(c10::DeviceType::PrivateUse1)->deviceCount();
}

// Copies `src` to PrivateUse1 device `index` (index < 0: back to CPU). Returns a new at::Tensor the
// caller owns (tch's Tensor::from_ptr takes it), or null with *error set.
at::Tensor* mixtape_npu_to(const at::Tensor* src, int index, char** error) {
  try {
    auto device = index < 0 ? c10::Device(c10::kCPU)
                            : c10::Device(c10::DeviceType::PrivateUse1,
                                          static_cast<c10::DeviceIndex>(index));
    return new at::Tensor(src->to(device));
  } catch (const std::exception& e) {
    set_detail(error, brief(e));
    return nullptr;
  }
}

// The PrivateUse1 device index of `t`, or -1 if it lives elsewhere (tch would report such a tensor as
// an MPS tensor, which is why model code must ask here instead).
int mixtape_npu_device_index(const at::Tensor* t) {
  if (!t->defined() || t->device().type() != c10::DeviceType::PrivateUse1) return -1;
  return t->device().index();
}

// Autocast for the PrivateUse1 device type. `dtype` is an at::ScalarType code (tch's Kind::c_int uses
// the same numbering). Entering increments autocast's nesting; leaving decrements it and, at the
// outermost level, clears the cast cache, as torch.autocast's context manager does.
void mixtape_npu_autocast_enter(int dtype) {
  at::autocast::set_autocast_dtype(c10::DeviceType::PrivateUse1, static_cast<at::ScalarType>(dtype));
  at::autocast::set_autocast_enabled(c10::DeviceType::PrivateUse1, true);
  at::autocast::increment_nesting();
}

void mixtape_npu_autocast_exit(int was_enabled, int previous_dtype) {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(c10::DeviceType::PrivateUse1, was_enabled != 0);
  at::autocast::set_autocast_dtype(c10::DeviceType::PrivateUse1,
                                   static_cast<at::ScalarType>(previous_dtype));
}

int mixtape_npu_autocast_enabled() {
  return at::autocast::is_autocast_enabled(c10::DeviceType::PrivateUse1) ? 1 : 0;
}

int mixtape_npu_autocast_dtype() {
  return static_cast<int>(at::autocast::get_autocast_dtype(c10::DeviceType::PrivateUse1));
}

void mixtape_npu_free_string(char* s) { std::free(s); }

}  // extern "C"
