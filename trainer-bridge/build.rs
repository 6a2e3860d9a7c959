//! Writes an rpath to libtorch's `lib/` folder into every binary and test of this crate, so they run
//! without LD_LIBRARY_PATH. torch-sys (`links = "tch"`) tells dependents where it linked libtorch from
//! as `DEP_TCH_LIBTORCH_LIB`, which is why this crate depends on torch-sys directly.
//!
//! With the `cuda` feature, also `--no-as-needed -ltorch`: Rust links with `--as-needed`, so only
//! libc10 and libtorch_cpu would be loaded and libtorch_cuda's kernels would never register; naming
//! libtorch (which depends on libtorch_cuda) while as-needed is off keeps CUDA available (tch-rs
//! issue 980). Without the feature the binaries load only the CPU libraries, which is what lets the
//! slim install (torch without its CUDA wheels) run at all: libtorch_cuda needs cuBLAS, cuSPARSE, ...

// Ascend NPU part (shim + test backends): its own file, owned by the NPU work.
#[path = "shim/build_npu.rs"]
mod build_npu;

fn main() {
    build_npu::build();
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(lib) => {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
            if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
                println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
                println!("cargo:rustc-link-arg=-ltorch");
                println!("cargo:rustc-link-arg=-Wl,--as-needed");
            }
        }
        Err(_) => println!(
            "cargo:warning=torch-sys did not report its libtorch folder; binaries need LD_LIBRARY_PATH to run"
        ),
    }
}
