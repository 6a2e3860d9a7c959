//! Named parameters: created on the CPU from one seeded generator, then moved to the training device.
//!
//! Why not tch's `VarStore`: its variables live in a `HashMap` (no stable order for checkpoints and
//! gradient norms), and it initialises on the target device, so a CUDA or NPU run would start from
//! other weights than a CPU run of the same seed. Here every tensor is drawn on the CPU in creation
//! order, then moved, so any device starts from the same bits; names are sorted (`BTreeMap`), so
//! checkpoints, clipping and the optimizer always walk parameters in the same order.
//!
//! A name's first component is its module (`vision`, `projector`, `llm`): freezing and per-module
//! learning rates select parameters by it.

use std::collections::BTreeMap;

use tch::{Device, Kind, Tensor};

use crate::device::Placement;

/// The model's trainable tensors, by dotted name.
#[derive(Debug)]
pub struct ParamStore {
    placement: Placement,
    params: BTreeMap<String, Tensor>,
}

impl ParamStore {
    /// An empty store whose parameters will live on `placement`. Seeds libtorch's CPU generator, so
    /// two stores built the same way hold the same values.
    pub fn new(placement: Placement, seed: u64) -> Self {
        tch::manual_seed(seed as i64);
        Self {
            placement,
            params: BTreeMap::new(),
        }
    }

    /// Where the parameters live; the model creates its other tensors there and reads values back
    /// through it.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Keeps the moved tensor itself (`Tensor::set_data` refuses PrivateUse1 tensors).
    fn insert(&mut self, name: String, cpu: Tensor) -> Tensor {
        let tensor = self.placement.put(&cpu).set_requires_grad(true);
        let previous = self.params.insert(name.clone(), tensor.shallow_clone());
        assert!(
            previous.is_none(),
            "parameter {name} created twice (a bug in the model definition)"
        );
        tensor
    }

    /// Normal(0, std) entries.
    pub fn normal(&mut self, name: impl Into<String>, shape: &[i64], std: f64) -> Tensor {
        let t = Tensor::randn(shape, (Kind::Float, Device::Cpu)) * std;
        self.insert(name.into(), t)
    }

    pub fn zeros(&mut self, name: impl Into<String>, shape: &[i64]) -> Tensor {
        self.insert(
            name.into(),
            Tensor::zeros(shape, (Kind::Float, Device::Cpu)),
        )
    }

    pub fn ones(&mut self, name: impl Into<String>, shape: &[i64]) -> Tensor {
        self.insert(name.into(), Tensor::ones(shape, (Kind::Float, Device::Cpu)))
    }

    /// Every parameter, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.params.get(name)
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Number of scalars over all parameters.
    pub fn numel(&self) -> i64 {
        self.params.values().map(|t| t.numel() as i64).sum()
    }

    /// The module a parameter belongs to: the first component of its name.
    pub fn module_of(name: &str) -> &str {
        name.split('.').next().unwrap_or(name)
    }

    /// Makes exactly the parameters of `modules` trainable (the rest get no gradients).
    pub fn set_trainable(&self, modules: &[&str]) {
        for (name, t) in &self.params {
            let _ = t.set_requires_grad(modules.contains(&Self::module_of(name)));
        }
    }

    /// Whether any parameter of `module` is trainable.
    pub fn trains(&self, module: &str) -> bool {
        self.params
            .iter()
            .any(|(name, t)| Self::module_of(name) == module && t.requires_grad())
    }
}

/// A dense layer `y = x W^T + b`, computed in the [`Precision`] asked for.
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

/// Standard deviation of the initial weights (GPT-2 / Qwen2 `initializer_range`).
pub const INIT_STD: f64 = 0.02;

impl Linear {
    pub fn new(store: &mut ParamStore, name: &str, inputs: i64, outputs: i64, bias: bool) -> Self {
        let weight = store.normal(format!("{name}.weight"), &[outputs, inputs], INIT_STD);
        let bias = bias.then(|| store.zeros(format!("{name}.bias"), &[outputs]));
        Self { weight, bias }
    }

    pub fn forward(&self, x: &Tensor, precision: Precision) -> Tensor {
        match precision {
            Precision::F32 => x.linear(&self.weight, self.bias.as_ref()),
            Precision::Bf16 => {
                let bias = self.bias.as_ref().map(|b| b.to_kind(Kind::BFloat16));
                x.to_kind(Kind::BFloat16)
                    .linear(&self.weight.to_kind(Kind::BFloat16), bias.as_ref())
                    .to_kind(Kind::Float)
            }
        }
    }
}

/// Root-mean-square layer norm with a learned scale (Qwen2), always in f32.
#[derive(Debug)]
pub struct RmsNorm {
    weight: Tensor,
}

const RMS_EPS: f64 = 1e-6;

impl RmsNorm {
    pub fn new(store: &mut ParamStore, name: &str, dim: i64) -> Self {
        Self {
            weight: store.ones(format!("{name}.weight"), &[dim]),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let variance = x.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        x * (variance + RMS_EPS).rsqrt() * &self.weight
    }
}

/// Arithmetic of matrix products: master weights, norms, softmax statistics and the loss stay f32
/// either way. `Bf16` is autocast done by hand (tch's `autocast` only covers CUDA): every matrix
/// product (linear layers and attention) runs in bfloat16 on any device, gradients flow back to the
/// f32 weights through the casts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    Bf16,
}

impl Precision {
    /// Kind used for matrix products.
    pub fn compute_kind(self) -> Kind {
        match self {
            Precision::F32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
        }
    }
}
