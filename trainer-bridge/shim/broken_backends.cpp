// Deliberately broken "backends" for the NPU error tests (tests/npu_errors.rs). Each is this one file
// compiled by build.rs with one of the macros below into its own tiny shared library; none includes a
// libtorch header, so they build in well under a second.
//
//   MIXTAPE_BROKEN_NO_INIT       a valid shared library without torch_npu::init_npu
//   MIXTAPE_BROKEN_OTHER_TORCH   exports init_npu but needs a c10 symbol this libtorch lacks, which is
//                                what a torch_npu built for another torch release looks like to dlopen
//   MIXTAPE_BROKEN_OLD_ABI       exports init_npu compiled with -D_GLIBCXX_USE_CXX11_ABI=0
//   MIXTAPE_BROKEN_NO_REGISTER   exports a working init_npu but never registers a PrivateUse1 backend

#include <string>

#if defined(MIXTAPE_BROKEN_NO_INIT)

extern "C" int mixtape_not_a_torch_backend() { return 0; }

#elif defined(MIXTAPE_BROKEN_OTHER_TORCH)

namespace c10 {
// Declared, never defined: resolved against libc10.so at dlopen time, where it does not exist.
void symbol_from_another_libtorch_release();
}  // namespace c10

namespace torch_npu {
void init_npu(const std::string&) { c10::symbol_from_another_libtorch_release(); }
}  // namespace torch_npu

#elif defined(MIXTAPE_BROKEN_OLD_ABI) || defined(MIXTAPE_BROKEN_NO_REGISTER)

namespace torch_npu {
void init_npu(const std::string&) {}
}  // namespace torch_npu

#else
#error "define one of the MIXTAPE_BROKEN_* macros"
#endif
