//! A library that exports `torch_npu::init_npu` but never registers PyTorch's PrivateUse1 backend
//! (what a torch_npu linked against a second copy of libtorch looks like from here) is refused with a
//! message saying what is missing. Its own test binary: once loaded, a library stays in the process.

use std::path::Path;

use mixtape_trainer_bridge::npu::{NpuDevice, NpuError};

#[test]
fn a_backend_that_registers_nothing_is_refused() {
    let path = Path::new(env!("MIXTAPE_NPU_TEST_BACKENDS")).join("libbroken_no_register.so");
    let err = NpuDevice::load(Some(&path), 0).unwrap_err();
    match &err {
        NpuError::NotRegistered { detail, .. } => {
            assert!(
                detail.contains("PrivateUse1 has no registered backend"),
                "{detail}"
            );
        }
        other => panic!("expected NotRegistered, got {other:?}"),
    }
    assert!(err.to_string().contains("libc10.so"), "{err}");
    // The CPU still works.
    let t = tch::Tensor::from_slice(&[2.0f64]);
    assert_eq!((&t * &t).double_value(&[]), 4.0);
}
