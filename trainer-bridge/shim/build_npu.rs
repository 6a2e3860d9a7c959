//! The Ascend part of trainer-bridge's build script (included by `build.rs` as a module).
//!
//! 1. Compiles `npu_shim.cpp` with the `cc` crate against the headers of the libtorch that torch-sys
//!    linked (`DEP_TCH_LIBTORCH_LIB/../include`) and links it statically into the crate. The C++11
//!    string ABI is forced on (`_GLIBCXX_USE_CXX11_ABI=1`) because PyPI's torch wheels use it; a
//!    mismatch would make every std::string-taking libtorch call fail to link or crash.
//! 2. Builds the test-only backends into `$OUT_DIR/npu-test-backends/` and exports that folder to the
//!    crate's tests as the compile-time variable `MIXTAPE_NPU_TEST_BACKENDS`:
//!    `libmixtape_fake_npu.so` (fake_npu.cpp, links libtorch, about 20 s of C++ the first time) and
//!    the broken ones from broken_backends.cpp (no libtorch headers, instant). They are shared
//!    libraries, not part of any binary, and exist so CI can exercise the real load path.
//!
//! Build scripts may panic: here a panic is the error message cargo shows, so each one says what is
//! missing and how to fix it.

use std::path::{Path, PathBuf};

pub fn build() {
    for file in [
        "shim/npu_shim.cpp",
        "shim/fake_npu.cpp",
        "shim/broken_backends.cpp",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
    let lib = match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(lib) => PathBuf::from(lib),
        Err(_) => panic!(
            "trainer-bridge: torch-sys did not report its libtorch folder (DEP_TCH_LIBTORCH_LIB), so the NPU \
             shim cannot find libtorch's headers; install libtorch with `bash trainer-bridge/install-libtorch.sh`"
        ),
    };
    let include = lib
        .parent()
        .map(|root| root.join("include"))
        .unwrap_or_default();
    if !include.join("ATen/core/Tensor.h").is_file() {
        panic!(
            "trainer-bridge: libtorch headers not found under {} (needed by shim/npu_shim.cpp); the libtorch \
             at {} looks incomplete: reinstall it with `bash trainer-bridge/install-libtorch.sh`",
            include.display(),
            lib.display()
        );
    }
    let api_include = include.join("torch/csrc/api/include");

    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("shim/npu_shim.cpp")
        .include(&include)
        .include(&api_include)
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .compile("mixtape_npu_shim");
    println!("cargo:rustc-link-lib=dl");

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("npu-test-backends");
    std::fs::create_dir_all(&out)
        .unwrap_or_else(|e| panic!("trainer-bridge: cannot create {}: {e}", out.display()));
    let libtorch_args = [
        format!("-I{}", include.display()),
        format!("-I{}", api_include.display()),
        format!("-L{}", lib.display()),
        format!("-Wl,-rpath,{}", lib.display()),
    ];
    shared_library(
        &out.join("libmixtape_fake_npu.so"),
        "shim/fake_npu.cpp",
        &["-D_GLIBCXX_USE_CXX11_ABI=1"],
        &libtorch_args,
        &["-ltorch_cpu", "-lc10"],
    );
    for (name, define, abi) in [
        ("libbroken_no_init.so", "-DMIXTAPE_BROKEN_NO_INIT", "1"),
        (
            "libbroken_other_torch.so",
            "-DMIXTAPE_BROKEN_OTHER_TORCH",
            "1",
        ),
        ("libbroken_old_abi.so", "-DMIXTAPE_BROKEN_OLD_ABI", "0"),
        (
            "libbroken_no_register.so",
            "-DMIXTAPE_BROKEN_NO_REGISTER",
            "1",
        ),
    ] {
        let abi = format!("-D_GLIBCXX_USE_CXX11_ABI={abi}");
        shared_library(
            &out.join(name),
            "shim/broken_backends.cpp",
            &[define, &abi],
            &[],
            &[],
        );
    }
    println!(
        "cargo:rustc-env=MIXTAPE_NPU_TEST_BACKENDS={}",
        out.display()
    );
}

/// Compiles one C++ file into a shared library with the C++ compiler `cc` would use.
fn shared_library(output: &Path, source: &str, defines: &[&str], extra: &[String], libs: &[&str]) {
    let compiler = cc::Build::new().cpp(true).get_compiler();
    let mut command = compiler.to_command();
    command
        .args(["-std=c++17", "-shared", "-fPIC", "-O0", "-w"])
        .args(defines)
        .args(extra)
        .arg(source)
        .arg("-o")
        .arg(output)
        .args(libs);
    let status = command.status().unwrap_or_else(|e| {
        panic!(
            "trainer-bridge: cannot run the C++ compiler {:?}: {e}",
            compiler.path()
        )
    });
    if !status.success() {
        panic!(
            "trainer-bridge: building the test backend {} from {source} failed: {command:?}",
            output.display()
        );
    }
}
