//! Build script of mixtape-image. With the `libjpeg-turbo` feature it compiles the C shim in
//! `csrc/turbo_shim.c` against the system libjpeg-turbo and links `libjpeg`; without the feature it
//! does nothing (the crate then encodes JPEGs with the pure-Rust jpeg-encoder only).
//!
//! The feature test is `cfg(feature = "libjpeg-turbo")`, which Cargo sets for build scripts exactly
//! when it sets `CARGO_FEATURE_LIBJPEG_TURBO`; it also lets `cc` and `pkg-config` be optional
//! build-dependencies, compiled only when the shim is.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "libjpeg-turbo")]
    turbo::build();
}

#[cfg(feature = "libjpeg-turbo")]
mod turbo {
    use std::path::{Path, PathBuf};

    const MISSING: &str = "libjpeg-turbo development files not found: install them \
        (Debian/Ubuntu: apt-get install libjpeg62-turbo-dev; Fedora: libjpeg-turbo-devel; \
        macOS: brew install jpeg-turbo), or build without them: cargo build --no-default-features";

    /// Where the headers live when pkg-config does not know: the usual Unix prefix, then
    /// Homebrew's keg-only jpeg-turbo (Apple Silicon and Intel prefixes).
    const FALLBACK_INCLUDE_DIRS: [&str; 4] = [
        "/usr/include",
        "/usr/local/include",
        "/opt/homebrew/opt/jpeg-turbo/include",
        "/usr/local/opt/jpeg-turbo/include",
    ];

    pub fn build() {
        println!("cargo:rerun-if-changed=csrc/turbo_shim.c");

        // pkg-config prints the link flags (`-ljpeg` and any non-system `-L`) itself when it finds
        // libjpeg; otherwise link by name and hope the linker's default paths hold it.
        let mut include_dirs: Vec<PathBuf> = Vec::new();
        match pkg_config::Config::new().probe("libjpeg") {
            Ok(lib) => include_dirs.extend(lib.include_paths),
            Err(_) => println!("cargo:rustc-link-lib=jpeg"),
        }
        let header_dir = include_dirs
            .iter()
            .map(PathBuf::as_path)
            .chain(FALLBACK_INCLUDE_DIRS.iter().map(Path::new))
            .find(|dir| dir.join("jpeglib.h").is_file())
            .map(Path::to_path_buf);
        if let Some(dir) = &header_dir {
            // The system directories are searched anyway, and naming them with -I would reorder
            // the compiler's own search; Homebrew's keg is not searched by default.
            if !dir.starts_with("/usr/include") && !include_dirs.contains(dir) {
                include_dirs.push(dir.clone());
            }
            println!("cargo:rerun-if-changed={}", dir.join("jpeglib.h").display());
        }

        let mut build = cc::Build::new();
        build
            .file("csrc/turbo_shim.c")
            .includes(&include_dirs)
            .warnings(true)
            .extra_warnings(true);
        if let Err(e) = build.try_compile("mixtape_turbo_shim") {
            // Not found where we looked and the compiler could not find it either: say how to get
            // it. Found but failing: the compiler's own message (printed above) is the useful one.
            // `cargo::error` fails the build once the script returns, without a backtrace.
            if header_dir.is_none() {
                println!("cargo::error={MISSING}");
            } else {
                println!(
                    "cargo::error=compiling csrc/turbo_shim.c against libjpeg-turbo failed: {e}"
                );
            }
        }
    }
}
