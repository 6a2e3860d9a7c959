//! The Ascend backend's failure modes, each through the real load path (dlopen, symbol lookup, init)
//! with deliberately broken libraries built by build.rs (shim/broken_backends.cpp). Every error must
//! name the file or symbol and the fix, and leave the process usable: after all of them, CPU tensors
//! still work.
//!
//! This is its own test binary because a process can hold one PrivateUse1 backend only: the working
//! fake backend is exercised in tests/npu_fake.rs, the unregistered one in tests/npu_unregistered.rs.

use std::path::{Path, PathBuf};

use mixtape_trainer_bridge::npu::{NPU_LIB_ENV, NpuDevice, NpuError, linked_torch_version};

fn backend(name: &str) -> PathBuf {
    Path::new(env!("MIXTAPE_NPU_TEST_BACKENDS")).join(name)
}

#[test]
fn a_missing_library_names_the_path_and_where_it_came_from() {
    let path = Path::new("/nonexistent/libtorch_npu.so");
    let err = NpuDevice::load(Some(path), 0).unwrap_err();
    assert!(matches!(err, NpuError::LibraryMissing { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("/nonexistent/libtorch_npu.so") && message.contains("--npu-lib"),
        "{message}"
    );
}

#[test]
fn no_library_at_all_says_how_to_give_one() {
    // The variable is unset for this process unless a developer exported it: only then skip.
    if std::env::var_os(NPU_LIB_ENV).is_some() {
        eprintln!("{NPU_LIB_ENV} is set in the environment; skipping");
        return;
    }
    let err = NpuDevice::load(None, 0).unwrap_err();
    assert_eq!(
        err,
        NpuError::NoLibrary {
            torch: linked_torch_version()
        }
    );
    let message = err.to_string();
    assert!(
        message.contains(NPU_LIB_ENV) && message.contains("libtorch_npu.so"),
        "{message}"
    );
    assert!(message.contains(&linked_torch_version()), "{message}");
}

#[test]
fn a_library_without_the_init_symbol_names_the_symbol() {
    let path = backend("libbroken_no_init.so");
    let err = NpuDevice::load(Some(&path), 0).unwrap_err();
    match &err {
        NpuError::MissingInitSymbol { path: p, symbol } => {
            assert_eq!(p, &path);
            assert_eq!(
                symbol,
                "_ZN9torch_npu8init_npuERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE"
            );
        }
        other => panic!("expected MissingInitSymbol, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("torch_npu::init_npu(const std::string&)"),
        "{err}"
    );
}

#[test]
fn a_library_built_for_another_libtorch_is_a_version_mismatch() {
    let path = backend("libbroken_other_torch.so");
    let err = NpuDevice::load(Some(&path), 0).unwrap_err();
    match &err {
        NpuError::LibtorchMismatch { torch, detail, .. } => {
            assert_eq!(torch, &linked_torch_version());
            assert!(
                detail.contains("symbol_from_another_libtorch_release"),
                "{detail}"
            );
        }
        other => panic!("expected LibtorchMismatch, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("rebuild torch_npu") && message.contains("2.13.0"),
        "{message}"
    );
}

#[test]
fn a_library_built_with_the_old_string_abi_says_so() {
    let path = backend("libbroken_old_abi.so");
    let err = NpuDevice::load(Some(&path), 0).unwrap_err();
    match &err {
        NpuError::OldCxxAbi { symbol, .. } => assert_eq!(symbol, "_ZN9torch_npu8init_npuERKSs"),
        other => panic!("expected OldCxxAbi, got {other:?}"),
    }
    assert!(
        err.to_string().contains("_GLIBCXX_USE_CXX11_ABI=1"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_shared_library_fails_to_load_with_the_loader_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libtorch_npu.so");
    std::fs::write(&path, b"not an ELF file").unwrap();
    let err = NpuDevice::load(Some(&path), 0).unwrap_err();
    match &err {
        NpuError::LoadFailed { detail, .. } => {
            assert!(detail.contains("libtorch_npu.so"), "{detail}")
        }
        other => panic!("expected LoadFailed, got {other:?}"),
    }
    assert!(err.to_string().contains("set_env.sh"), "{err}");
}

#[test]
fn nothing_else_breaks_after_failed_loads() {
    for name in [
        "libbroken_no_init.so",
        "libbroken_other_torch.so",
        "libbroken_old_abi.so",
    ] {
        assert!(NpuDevice::load(Some(&backend(name)), 0).is_err());
    }
    let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    assert_eq!((&t * 2).sum(tch::Kind::Float).double_value(&[]), 12.0);
    assert_eq!(NpuDevice::index_of(&t), None);
}
