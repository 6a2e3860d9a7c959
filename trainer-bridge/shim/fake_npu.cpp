// A test-only PrivateUse1 backend that stands in for torch_npu, so CI can run the NPU code path of
// trainer-bridge without Ascend hardware.
//
// What it is: a shared library (libmixtape_fake_npu.so) which, exactly like the Python-free
// libtorch_npu.so, registers PyTorch's PrivateUse1 device type under the name "npu" while it is being
// loaded (static initialisers), and exports the C++ function `torch_npu::init_npu(const std::string&)`
// that mixtape's shim looks up and calls. "Device memory" is host memory from this file's allocator.
//
// What it implements: only the kernels a device must own -- allocation (empty.memory_format,
// empty_strided), copies in and out (_copy_from, _copy_from_and_resize), the view/metadata ops that must
// keep a tensor on its device (view, as_strided, _reshape_alias, resize_, set_), and
// _local_scalar_dense. Every other operator goes through PyTorch's boxed CPU fallback: the inputs are
// copied to CPU, the CPU kernel runs, and the outputs are copied back to this device. The arithmetic is
// therefore the CPU kernels' own, which is why a training run "on npu" here must reproduce a CPU run
// bit for bit: any difference points at the device plumbing (a missed copy, a tensor silently left on
// CPU, a device query), which is what the tests are for.
//
// One more answer a device type owes libtorch: which fused attention kernel scaled_dot_product_attention
// should run (the `_fused_sdp_choice` dispatch stub). The fake gives the CPU's answer, so the CPU's fused
// kernel runs through the fallback; without it libtorch would pick the unfused math kernel, whose
// rounding differs from the CPU run's.
//
// It also registers a device guard (device index bookkeeping; the autograd engine needs one to run
// backward on a device), the PrivateUse1 hooks, and autocast rules for the matmul family so that
// `set_autocast` for the PrivateUse1 device type can be observed.
//
// Written from the public description of PyTorch's out-of-tree backend support (the "OpenReg" test
// extension shows the same registration points); nothing here is Ascend-specific.

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/EmptyTensor.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/op_registration/adaption.h>
#include <ATen/detail/PrivateUse1HooksInterface.h>
#include <ATen/native/CPUFallback.h>
#include <ATen/native/transformers/attention.h>
#include <ATen/ops/_fused_sdp_choice.h>
#include <ATen/ops/_local_scalar_dense_native.h>
#include <ATen/ops/_reshape_alias_native.h>
#include <ATen/ops/as_strided_cpu_dispatch.h>
#include <ATen/ops/copy_native.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/resize_native.h>
#include <ATen/ops/set_cpu_dispatch.h>
#include <ATen/ops/set_native.h>
#include <ATen/ops/view_native.h>
#include <c10/core/Allocator.h>
#include <c10/core/DeviceType.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/library.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace mixtape_fake_npu {
namespace {

// Two devices, so tests can address npu:1 and see npu:2 rejected.
constexpr c10::DeviceIndex kDeviceCount = 2;
constexpr c10::DeviceType kDevice = c10::DeviceType::PrivateUse1;

thread_local c10::DeviceIndex current_device = 0;

void check_index(c10::DeviceIndex index) {
  TORCH_CHECK(index >= 0 && index < kDeviceCount, "fake npu: device index ", static_cast<int>(index),
              " out of range (this fake backend has ", static_cast<int>(kDeviceCount), " devices)");
}

// --- memory ---------------------------------------------------------------------------------------

void free_device_memory(void* ptr) { std::free(ptr); }

struct HostBackedAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t nbytes) override {
    void* data = nullptr;
    if (nbytes > 0) {
      // 64-byte alignment, as c10's CPU allocator gives, so vectorised CPU kernels behave the same.
      data = std::aligned_alloc(64, (nbytes + 63) / 64 * 64);
      TORCH_CHECK(data != nullptr, "fake npu: out of host memory allocating ", nbytes, " bytes");
    }
    return {data, data, &free_device_memory, c10::Device(kDevice, current_device)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &free_device_memory; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    std::memcpy(dest, src, count);
  }
};

HostBackedAllocator allocator;

// --- device guard and hooks -----------------------------------------------------------------------

// The fake device executes synchronously on the calling thread, so every stream is the default stream
// and every event is complete as soon as it is recorded.
struct Guard final : c10::impl::DeviceGuardImplInterface {
  c10::DeviceType type() const override { return kDevice; }
  c10::Device exchangeDevice(c10::Device device) const override {
    check_index(device.index());
    auto previous = current_device;
    current_device = device.index();
    return {kDevice, previous};
  }
  c10::Device getDevice() const override { return {kDevice, current_device}; }
  void setDevice(c10::Device device) const override {
    check_index(device.index());
    current_device = device.index();
  }
  void uncheckedSetDevice(c10::Device device) const noexcept override {
    current_device = device.index();
  }
  c10::Stream getStream(c10::Device device) const noexcept override {
    return c10::Stream(c10::Stream::DEFAULT, device);
  }
  c10::Stream getDefaultStream(c10::Device device) const override {
    return c10::Stream(c10::Stream::DEFAULT, device);
  }
  c10::Stream exchangeStream(c10::Stream stream) const noexcept override {
    return c10::Stream(c10::Stream::DEFAULT, stream.device());
  }
  c10::DeviceIndex deviceCount() const noexcept override { return kDeviceCount; }
  void record(void** event, const c10::Stream&, const c10::DeviceIndex,
              const c10::EventFlag) const override {
    *event = nullptr;  // nothing to wait for: the work is already done
  }
  void block(void*, const c10::Stream&) const override {}
  bool queryEvent(void*) const override { return true; }
  void destroyEvent(void*, const c10::DeviceIndex) const noexcept override {}
  bool queryStream(const c10::Stream&) const override { return true; }
  void synchronizeStream(const c10::Stream&) const override {}
  void synchronizeEvent(void*) const override {}
  void synchronizeDevice(const c10::DeviceIndex) const override {}
};

struct Hooks final : at::PrivateUse1HooksInterface {
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return true; }
  bool hasPrimaryContext(c10::DeviceIndex) const override { return true; }
  void init() const override {}
  c10::DeviceIndex deviceCount() const override { return kDeviceCount; }
  void setCurrentDevice(c10::DeviceIndex device) const override {
    check_index(device);
    current_device = device;
  }
  c10::DeviceIndex getCurrentDevice() const override { return current_device; }
  c10::DeviceIndex exchangeDevice(c10::DeviceIndex device) const override {
    check_index(device);
    auto previous = current_device;
    current_device = device;
    return previous;
  }
  c10::DeviceIndex maybeExchangeDevice(c10::DeviceIndex device) const override {
    return exchangeDevice(device);
  }
  at::Device getDeviceFromPtr(void*) const override { return {kDevice, current_device}; }
  // Random numbers for this device come from CPU generators (one per device), since the kernels that
  // consume them are the CPU ones. torch::manual_seed seeds these too.
  const at::Generator& getDefaultGenerator(c10::DeviceIndex device) const override {
    static at::Generator generators[kDeviceCount] = {at::make_generator<at::CPUGeneratorImpl>(),
                                                     at::make_generator<at::CPUGeneratorImpl>()};
    auto index = device < 0 ? current_device : device;
    check_index(index);
    return generators[index];
  }
  at::Generator getNewGenerator(c10::DeviceIndex) const override {
    return at::make_generator<at::CPUGeneratorImpl>();
  }
};

// --- kernels the device must own --------------------------------------------------------------------

constexpr c10::DispatchKeySet kKeys(c10::DispatchKey::PrivateUse1);

at::Tensor empty_memory_format(c10::IntArrayRef size, std::optional<c10::ScalarType> dtype,
                               std::optional<c10::Layout> layout, std::optional<c10::Device> device,
                               std::optional<bool> pin_memory,
                               std::optional<c10::MemoryFormat> memory_format) {
  auto target = c10::device_or_default(device);
  TORCH_CHECK(c10::layout_or_default(layout) == c10::Layout::Strided,
              "fake npu: only strided tensors are supported");
  TORCH_CHECK(!c10::pinned_memory_or_default(pin_memory), "fake npu: pinned memory is CPU-only");
  c10::DeviceGuard guard(target);
  return at::detail::empty_generic(size, &allocator, kKeys, c10::dtype_or_default(dtype),
                                   memory_format);
}

at::Tensor empty_strided(c10::IntArrayRef size, c10::IntArrayRef stride,
                         std::optional<c10::ScalarType> dtype, std::optional<c10::Layout> layout,
                         std::optional<c10::Device> device, std::optional<bool> pin_memory) {
  auto target = c10::device_or_default(device);
  TORCH_CHECK(c10::layout_or_default(layout) == c10::Layout::Strided,
              "fake npu: only strided tensors are supported");
  TORCH_CHECK(!c10::pinned_memory_or_default(pin_memory), "fake npu: pinned memory is CPU-only");
  c10::DeviceGuard guard(target);
  return at::detail::empty_strided_generic(size, stride, &allocator, kKeys,
                                           c10::dtype_or_default(dtype));
}

// A CPU tensor aliasing the same bytes, so the CPU copy kernel can do the actual work.
at::Tensor host_alias(const at::Tensor& t) {
  return at::from_blob(t.data_ptr(), t.sizes(), t.strides(), t.options().device(at::kCPU));
}

at::Tensor copy_from(const at::Tensor& self, const at::Tensor& dst, bool non_blocking) {
  auto src = self.is_cpu() ? self : host_alias(self);
  auto out = dst.is_cpu() ? dst : host_alias(dst);
  at::native::copy_(out, src, non_blocking);
  return dst;
}

at::Tensor copy_from_and_resize(const at::Tensor& self, const at::Tensor& dst) {
  at::native::resize_(dst, self.sizes(), std::nullopt);
  return copy_from(self, dst, false);
}

at::Tensor view(const at::Tensor& self, c10::SymIntArrayRef size) {
  return at::native::view(self, C10_AS_INTARRAYREF_SLOW(size));
}

at::Tensor as_strided(const at::Tensor& self, c10::SymIntArrayRef size, c10::SymIntArrayRef stride,
                      std::optional<c10::SymInt> storage_offset) {
  return at::cpu::as_strided_symint(self, size, stride, std::move(storage_offset));
}

at::Tensor reshape_alias(const at::Tensor& self, c10::SymIntArrayRef size,
                         c10::SymIntArrayRef stride) {
  return at::native::_reshape_alias(self, C10_AS_INTARRAYREF_SLOW(size),
                                    C10_AS_INTARRAYREF_SLOW(stride));
}

const at::Tensor& resize(const at::Tensor& self, c10::SymIntArrayRef size,
                         std::optional<at::MemoryFormat> memory_format) {
  return at::native::resize_(self, C10_AS_INTARRAYREF_SLOW(size), memory_format);
}

at::Tensor& set_tensor(at::Tensor& self, const at::Tensor& source) {
  return at::native::set_tensor_(self, source);
}

at::Tensor& set_storage(at::Tensor& self, at::Storage source) {
  return at::native::set_(self, std::move(source));
}

at::Tensor& set_storage_offset(at::Tensor& self, at::Storage source, int64_t offset,
                               c10::IntArrayRef size, c10::IntArrayRef stride) {
  return at::cpu::set_(self, std::move(source), offset, size, stride);
}

at::Scalar local_scalar_dense(const at::Tensor& self) {
  return at::native::_local_scalar_dense_cpu(host_alias(self));
}

void cpu_fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  at::native::cpu_fallback(op, stack);
}

}  // namespace

// scaled_dot_product_attention asks each device type which fused kernel to use; a device type that
// does not answer gets the unfused "math" attention, whose rounding differs from the CPU's fused
// kernel. Like torch_npu (which answers with its own fused kernel), the fake answers -- with the
// CPU's choice for the same inputs, so the CPU kernel then runs through the fallback.
int64_t fused_sdp_choice(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                         const std::optional<at::Tensor>& attn_mask, double dropout_p, bool is_causal,
                         std::optional<double> scale, bool enable_gqa) {
  // CPU views of the same tensors, requires_grad included, so the choice is made for the same inputs.
  auto view = [](const at::Tensor& t) {
    auto cpu = host_alias(t);
    return t.requires_grad() ? cpu.set_requires_grad(true) : cpu;
  };
  std::optional<at::Tensor> mask;
  if (attn_mask.has_value() && attn_mask->defined()) {
    mask = view(*attn_mask);
  }
  return at::_fused_sdp_choice(view(query), view(key), view(value), mask, dropout_p, is_causal, scale,
                               enable_gqa);
}

namespace {

// --- registration (runs when the library is loaded, as torch_npu's does) ----------------------------

struct RegisterBackendName {
  RegisterBackendName() { c10::register_privateuse1_backend("npu"); }
};
RegisterBackendName register_backend_name;

struct RegisterHooks {
  RegisterHooks() { at::RegisterPrivateUse1HooksInterface(new Hooks()); }
};
RegisterHooks register_hooks;

C10_REGISTER_GUARD_IMPL(PrivateUse1, Guard);
REGISTER_ALLOCATOR(c10::DeviceType::PrivateUse1, &allocator);

TORCH_LIBRARY_IMPL(aten, PrivateUse1, m) {
  m.impl("empty.memory_format", empty_memory_format);
  m.impl("empty_strided", empty_strided);
  m.impl("_copy_from", copy_from);
  m.impl("_copy_from_and_resize", copy_from_and_resize);
  m.impl("view", view);
  m.impl("as_strided", as_strided);
  m.impl("_reshape_alias", reshape_alias);
  m.impl("resize_", resize);
  m.impl("set_.source_Tensor", set_tensor);
  m.impl("set_.source_Storage", set_storage);
  m.impl("set_.source_Storage_storage_offset", set_storage_offset);
  m.impl("_local_scalar_dense", local_scalar_dense);
}

TORCH_LIBRARY_IMPL(_, PrivateUse1, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&cpu_fallback>());
}

// Autocast: operators without a rule pass straight through; the matmul family runs in the autocast
// dtype (what torch_npu does for its cube-unit ops), so enabling autocast is observable in tests.
TORCH_LIBRARY_IMPL(_, AutocastPrivateUse1, m) { m.fallback(torch::CppFunction::makeFallthrough()); }

TORCH_LIBRARY_IMPL(aten, AutocastPrivateUse1, m) {
  KERNEL_PRIVATEUSEONE(mm, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(bmm, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(addmm, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(matmul, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(linear, lower_precision_fp)
}

}  // namespace
}  // namespace mixtape_fake_npu

namespace at::native {
REGISTER_PRIVATEUSE1_DISPATCH(_fused_sdp_choice_stub, &mixtape_fake_npu::fused_sdp_choice)
}  // namespace at::native

// --- the init symbol, same signature as the real one ------------------------------------------------

namespace torch_npu {

// Same declaration as torch_npu/csrc/libs/init_npu.h: "npu" or "npu:N" selects the current device.
__attribute__((visibility("default"))) void init_npu(const std::string& device_str) {
  auto device = c10::Device(device_str);
  TORCH_CHECK(device.type() == c10::DeviceType::PrivateUse1,
              "fake npu: init_npu expects an npu device, got '", device_str, "'");
  auto index = device.has_index() ? device.index() : c10::DeviceIndex(0);
  mixtape_fake_npu::check_index(index);
  mixtape_fake_npu::current_device = index;
}

}  // namespace torch_npu

