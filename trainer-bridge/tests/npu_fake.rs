//! The Ascend code path end to end on the fake PrivateUse1 backend (shim/fake_npu.cpp, built by
//! build.rs): loading through `torch_npu::init_npu`, moving tensors, autocast, and training steps
//! (forward, backward, AdamW) whose losses and weights must equal a CPU run's bit for bit. The fake
//! runs every kernel as the CPU does, so any difference would come from the device plumbing.
//!
//! No test here touches a global random generator: tests share one process and run in parallel.

use std::path::{Path, PathBuf};

use mixtape_trainer_bridge::device::{DeviceSpec, Placement};
use mixtape_trainer_bridge::npu::{AutocastDtype, NpuDevice, NpuError};
use tch::{Device, Kind, Tensor, nn, nn::OptimizerConfig};

fn fake() -> PathBuf {
    Path::new(env!("MIXTAPE_NPU_TEST_BACKENDS")).join("libmixtape_fake_npu.so")
}

fn npu(index: usize) -> NpuDevice {
    NpuDevice::load(Some(&fake()), index).expect("the fake backend loads")
}

/// Deterministic "random-looking" values without a generator.
fn init(shape: &[i64], phase: f64, scale: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    ((Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.7311 + phase).sin() * scale).view(shape)
}

#[test]
fn tensors_round_trip_and_report_their_npu_index() {
    let device = npu(0);
    assert_eq!(device.device_count(), 2);
    let cpu = init(&[3, 5], 0.1, 1.0).to_kind(Kind::Double);
    let on_npu = device.to_device(&cpu).unwrap();
    assert_eq!(NpuDevice::index_of(&on_npu), Some(0));
    assert_eq!(NpuDevice::index_of(&cpu), None);
    // Work on the device (CPU fallback inside the fake) keeps results there.
    let sum = (&on_npu * 2.0 + 1.0).transpose(0, 1).contiguous();
    assert_eq!(NpuDevice::index_of(&sum), Some(0));
    let back = device.to_cpu(&sum).unwrap();
    assert_eq!(NpuDevice::index_of(&back), None);
    assert!(back.equal(&(&cpu * 2.0 + 1.0).transpose(0, 1)));
    assert_eq!(back.kind(), Kind::Double);
}

#[test]
fn a_second_device_index_and_an_out_of_range_one() {
    let second = npu(1);
    let t = second
        .to_device(&Tensor::from_slice(&[1i64, 2, 3]))
        .unwrap();
    assert_eq!(NpuDevice::index_of(&t), Some(1));
    let err = NpuDevice::load(Some(&fake()), 2).unwrap_err();
    match &err {
        NpuError::InitFailed { device, detail, .. } => {
            assert_eq!(device, "npu:2");
            assert!(detail.contains("out of range"), "{detail}");
        }
        other => panic!("expected InitFailed, got {other:?}"),
    }
}

#[test]
fn another_backend_is_refused_once_one_is_loaded() {
    npu(0);
    let other = Path::new(env!("MIXTAPE_NPU_TEST_BACKENDS")).join("libbroken_no_init.so");
    let err = NpuDevice::load(Some(&other), 0).unwrap_err();
    match &err {
        NpuError::AnotherBackendLoaded { loaded, .. } => assert_eq!(Path::new(loaded), fake()),
        other => panic!("expected AnotherBackendLoaded, got {other:?}"),
    }
}

#[test]
fn autocast_runs_matrix_products_in_the_lower_precision_and_restores_state() {
    let device = npu(0);
    let a_cpu = init(&[4, 6], 0.3, 1.0);
    let b_cpu = init(&[6, 5], 1.7, 1.0);
    let (a, b) = (
        device.to_device(&a_cpu).unwrap(),
        device.to_device(&b_cpu).unwrap(),
    );
    assert!(!NpuDevice::autocast_enabled());
    let (inside, enabled_inside) = device.autocast(AutocastDtype::Bf16, || {
        (a.mm(&b), NpuDevice::autocast_enabled())
    });
    assert!(enabled_inside);
    assert!(
        !NpuDevice::autocast_enabled(),
        "autocast must be off again after the closure"
    );
    assert_eq!(inside.kind(), Kind::BFloat16);
    let expected = a_cpu
        .to_kind(Kind::BFloat16)
        .mm(&b_cpu.to_kind(Kind::BFloat16));
    assert!(device.to_cpu(&inside).unwrap().equal(&expected));
    // Outside autocast the same product stays f32; elementwise ops are never cast.
    assert_eq!(a.mm(&b).kind(), Kind::Float);
    let half = device.autocast(AutocastDtype::F16, || (a.mm(&b), (&a + 1.0).kind()));
    assert_eq!((half.0.kind(), half.1), (Kind::Half, Kind::Float));
}

/// A few AdamW steps of a small packed-sequence language model: embeddings, one attention layer with
/// a block-diagonal causal mask over two packed samples, an RMS-normed GELU MLP, loss only where a
/// mask is set, and gradient-norm clipping. Parameters are drawn on the CPU, moved by the placement and
/// registered in a VarStore through `nn::Path::add`. Returns the losses and final weights (on the CPU).
fn train_steps(place: &Placement, steps: usize) -> (Vec<f64>, Vec<Tensor>) {
    const VOCAB: i64 = 32;
    const DIM: i64 = 16;
    const LEN: i64 = 24;
    let cpu = (Kind::Float, Device::Cpu);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let param = |name: &str, t: Tensor| root.add(name, place.put(&t), true);
    let embed = param("embed", init(&[VOCAB, DIM], 0.0, 0.5));
    let wq = param("wq", init(&[DIM, DIM], 0.4, 0.3));
    let wk = param("wk", init(&[DIM, DIM], 0.8, 0.3));
    let wv = param("wv", init(&[DIM, DIM], 1.2, 0.3));
    let w1 = param("w1", init(&[DIM * 2, DIM], 1.0, 0.3));
    let b1 = param("b1", Tensor::zeros([DIM * 2], cpu));
    let norm = param("norm", Tensor::ones([DIM * 2], cpu));
    let w2 = param("w2", init(&[VOCAB, DIM * 2], 2.0, 0.3));
    let mut opt = nn::AdamW::default().build(&vs, 3e-2).unwrap();

    // Two samples packed into one row (lengths 10 and 14): attention must not cross them.
    let tokens: Vec<i64> = (0..=LEN).map(|i| (i * 7 + 3) % VOCAB).collect();
    let sample: Vec<i64> = (0..LEN).map(|i| i64::from(i >= 10)).collect();
    let sample = Tensor::from_slice(&sample);
    let positions = Tensor::arange(LEN, (Kind::Int64, Device::Cpu));
    let allowed = sample
        .unsqueeze(1)
        .eq_tensor(&sample.unsqueeze(0))
        .logical_and(&positions.unsqueeze(1).ge_tensor(&positions.unsqueeze(0)));
    let blocked = place.put(&allowed.logical_not());
    let inputs = place.put(&Tensor::from_slice(&tokens[..LEN as usize]));
    // Loss on every position but the last of each sample (its target belongs to the next sample).
    let loss_at: Vec<i64> = (0..LEN).filter(|&i| i != 9 && i != LEN - 1).collect();
    let loss_at = place.put(&Tensor::from_slice(&loss_at));
    let targets = place
        .put(&Tensor::from_slice(&tokens[1..]))
        .index_select(0, &loss_at);

    let mut losses = Vec::new();
    for _ in 0..steps {
        let x = embed.index_select(0, &inputs);
        let (q, k, v) = (
            x.linear::<Tensor>(&wq, None),
            x.linear::<Tensor>(&wk, None),
            x.linear::<Tensor>(&wv, None),
        );
        let scores = q.matmul(&k.tr()) / (DIM as f64).sqrt();
        let attended = scores
            .masked_fill(&blocked, f64::NEG_INFINITY)
            .softmax(-1, Kind::Float)
            .matmul(&v);
        let h = (x + attended).linear(&w1, Some(&b1)).gelu("none");
        let h =
            &h * (h.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float) + 1e-6).rsqrt() * &norm;
        let logits = h.linear::<Tensor>(&w2, None).index_select(0, &loss_at);
        let loss = logits.cross_entropy_for_logits(&targets);
        if let Placement::Npu(_) = place {
            assert_eq!(
                NpuDevice::index_of(&loss),
                Some(0),
                "the loss must be computed on the npu"
            );
        }
        opt.zero_grad();
        loss.backward();
        // Clip the global gradient norm to 1: the norm is computed on the device, read through to_cpu.
        let norms: Vec<Tensor> = vs
            .trainable_variables()
            .iter()
            .map(|t| t.grad().norm())
            .collect();
        let total = place
            .to_cpu(&Tensor::stack(&norms, 0).norm())
            .double_value(&[]);
        if total > 1.0 {
            tch::no_grad(|| {
                for t in vs.trainable_variables() {
                    let _ = t.grad().g_mul_scalar_(1.0 / total);
                }
            });
        }
        opt.step();
        losses.push(place.to_cpu(&loss).double_value(&[]));
    }
    if let Placement::Npu(_) = place {
        for t in vs.trainable_variables() {
            assert_eq!(
                NpuDevice::index_of(&t),
                Some(0),
                "parameters stay on the npu through training"
            );
        }
    }
    let weights = [embed, wq, wk, wv, w1, b1, norm, w2];
    (losses, weights.iter().map(|t| place.to_cpu(t)).collect())
}

#[test]
fn training_steps_on_npu_equal_cpu_bit_for_bit() {
    let on_npu = DeviceSpec::Npu(0).placement(Some(&fake())).unwrap();
    assert!(matches!(on_npu, Placement::Npu(ref d) if d.index() == 0));
    let on_cpu = DeviceSpec::Cpu.placement(None).unwrap();
    let (npu_losses, npu_weights) = train_steps(&on_npu, 6);
    let (cpu_losses, cpu_weights) = train_steps(&on_cpu, 6);
    assert!(
        cpu_losses[5] < cpu_losses[0] * 0.9,
        "the model must learn: {cpu_losses:?}"
    );
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&npu_losses),
        bits(&cpu_losses),
        "npu {npu_losses:?} vs cpu {cpu_losses:?}"
    );
    for (n, c) in npu_weights.iter().zip(&cpu_weights) {
        assert!(n.equal(c), "final weights differ");
    }
}

/// The model's packed attention (libtorch's fused scaled_dot_product_attention per group of
/// segments), forward and backward, causal and not. libtorch asks the device type which fused kernel
/// to run: a backend that does not answer gets the unfused math kernel, whose rounding differs from
/// the CPU's (the whole training loop then drifts from the CPU run in the 9th digit).
fn attention_and_grads(place: &Placement, causal: bool) -> Vec<Tensor> {
    use mixtape_trainer_bridge::model::{Precision, VarlenLayout};
    let lengths = [5usize, 17, 9, 33];
    let tokens: i64 = lengths.iter().sum::<usize>() as i64;
    let input = |phase: f64| {
        place
            .put(&init(&[tokens, 2, 8], phase, 1.0))
            .set_requires_grad(true)
    };
    let (q, k, v) = (input(0.1), input(0.2), input(0.3));
    let out = VarlenLayout::new(&lengths, causal, place).attend(&q, &k, &v, Precision::F32);
    let weights = place.put(&init(&[tokens, 16], 0.9, 1.0));
    (&out * weights).sum(Kind::Float).backward();
    [out, q.grad(), k.grad(), v.grad()]
        .iter()
        .map(|t| place.to_cpu(t))
        .collect()
}

#[test]
fn packed_attention_on_npu_equals_cpu_forward_and_backward() {
    let on_npu = DeviceSpec::Npu(0).placement(Some(&fake())).unwrap();
    let on_cpu = DeviceSpec::Cpu.placement(None).unwrap();
    for causal in [true, false] {
        let npu = attention_and_grads(&on_npu, causal);
        let cpu = attention_and_grads(&on_cpu, causal);
        for (what, (n, c)) in ["output", "dq", "dk", "dv"]
            .iter()
            .zip(npu.iter().zip(&cpu))
        {
            let diff = (n - c).abs().max().double_value(&[]);
            assert!(
                n.equal(c),
                "causal={causal}: {what} differs by up to {diff}"
            );
        }
    }
}
