//! Loading the backend after a backward pass already ran in the process is refused at load time with
//! the fix, instead of an internal assertion from libtorch's autograd engine at the first NPU backward
//! (the engine sizes its per-device queues once, on the first backward). Its own test binary: the CPU
//! backward must come first in a fresh process.

use std::path::Path;

use mixtape_trainer_bridge::npu::{NpuDevice, NpuError};
use tch::{Kind, Tensor};

#[test]
fn loading_after_a_backward_pass_is_a_clear_error() {
    let x = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
    (&x * &x).sum(Kind::Float).backward();
    assert_eq!(Vec::<f32>::try_from(x.grad()).unwrap(), vec![2.0, 4.0]);

    let fake = Path::new(env!("MIXTAPE_NPU_TEST_BACKENDS")).join("libmixtape_fake_npu.so");
    let err = NpuDevice::load(Some(&fake), 0).unwrap_err();
    assert!(matches!(err, NpuError::LoadedTooLate { .. }), "{err:?}");
    assert!(
        err.to_string().contains("before the first training step"),
        "{err}"
    );
}
