//! AdamW with decoupled weight decay, per-module learning rates and gradient clipping, written out
//! instead of using tch's optimizer because a checkpoint must hold the optimizer's state: tch's
//! `COptimizer` cannot export or import its moment buffers, so a resumed run would restart Adam's
//! statistics and diverge from the uninterrupted one.
//!
//! The moments live beside the parameters (same device), in the store's sorted name order, so every
//! step does the same floating-point operations in the same order. Weight decay applies to matrices
//! only (not to biases, norm scales or vectors), the usual choice for transformers.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use crate::model::ParamStore;

pub const DEFAULT_BETAS: (f64, f64) = (0.9, 0.95);
pub const DEFAULT_EPS: f64 = 1e-8;

#[derive(Debug)]
struct Moments {
    m: Tensor,
    v: Tensor,
}

/// The optimizer and its state.
#[derive(Debug)]
pub struct AdamW {
    betas: (f64, f64),
    eps: f64,
    /// Optimizer steps taken (bias correction uses it).
    pub steps: u64,
    moments: BTreeMap<String, Moments>,
}

impl Default for AdamW {
    fn default() -> Self {
        Self {
            betas: DEFAULT_BETAS,
            eps: DEFAULT_EPS,
            steps: 0,
            moments: BTreeMap::new(),
        }
    }
}

/// Why saved optimizer state does not fit the model.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptimError {
    #[error(
        "optimizer state for `{0}`, which the model does not have (checkpoint of another model?)"
    )]
    UnknownParameter(String),
    #[error("optimizer state for `{name}` has shape {found:?}, the parameter {expected:?}")]
    Shape {
        name: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
    #[error("optimizer state for `{0}` has a first moment but no second (or the reverse)")]
    Incomplete(String),
}

impl AdamW {
    /// L2 norm of all gradients together; when above `max_norm` (and `max_norm > 0`), scales every
    /// gradient down to it. Returns the norm before clipping.
    pub fn clip_grad_norm(params: &ParamStore, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = params
                .iter()
                .map(|(_, p)| p.grad())
                .filter(Tensor::defined)
                .collect();
            // Read back through the placement: never a scalar straight off an NPU tensor.
            let at = params.placement();
            let squares: f64 = grads
                .iter()
                .map(|g| at.to_cpu(&g.square().sum(Kind::Double)).double_value(&[]))
                .sum();
            let norm = squares.sqrt();
            if max_norm > 0.0 && norm > max_norm {
                let scale = max_norm / (norm + 1e-6);
                for g in &grads {
                    let _ = g.shallow_clone().g_mul_scalar_(scale);
                }
            }
            norm
        })
    }

    /// One update of every trainable parameter that has a gradient; `lr_of(name)` is its learning
    /// rate. Gradients are zeroed afterwards.
    pub fn step(&mut self, params: &ParamStore, weight_decay: f64, lr_of: impl Fn(&str) -> f64) {
        self.steps += 1;
        let (b1, b2) = self.betas;
        let t = self.steps as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        tch::no_grad(|| {
            for (name, p) in params.iter() {
                let g = p.grad();
                if !p.requires_grad() || !g.defined() {
                    continue;
                }
                let state = self
                    .moments
                    .entry(name.to_string())
                    .or_insert_with(|| Moments {
                        m: p.zeros_like(),
                        v: p.zeros_like(),
                    });
                state.m = &state.m * b1 + &g * (1.0 - b1);
                state.v = &state.v * b2 + g.square() * (1.0 - b2);
                let update = (&state.m / c1) / ((&state.v / c2).sqrt() + self.eps);
                let lr = lr_of(name);
                let mut p = p.shallow_clone();
                if weight_decay > 0.0 && p.dim() >= 2 {
                    let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                let _ = p.g_sub_(&(update * lr));
            }
        });
        Self::zero_grad(params);
    }

    pub fn zero_grad(params: &ParamStore) {
        for (_, p) in params.iter() {
            p.shallow_clone().zero_grad();
        }
    }

    /// The state as named tensors (`optim.m.NAME`, `optim.v.NAME`), for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.moments.len());
        for (name, m) in &self.moments {
            out.push((format!("optim.m.{name}"), m.m.shallow_clone()));
            out.push((format!("optim.v.{name}"), m.v.shallow_clone()));
        }
        out
    }

    /// Restores state written by [`AdamW::state_tensors`] (tensors already on the model's device).
    pub fn restore(
        params: &ParamStore,
        steps: u64,
        tensors: Vec<(String, Tensor)>,
    ) -> Result<Self, OptimError> {
        let mut halves: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
        for (key, tensor) in tensors {
            let (which, name) = match (key.strip_prefix("optim.m."), key.strip_prefix("optim.v.")) {
                (Some(n), _) => (0, n.to_string()),
                (_, Some(n)) => (1, n.to_string()),
                _ => continue,
            };
            let p = params
                .get(&name)
                .ok_or_else(|| OptimError::UnknownParameter(name.clone()))?;
            if p.size() != tensor.size() {
                return Err(OptimError::Shape {
                    name,
                    expected: p.size(),
                    found: tensor.size(),
                });
            }
            let slot = halves.entry(name).or_default();
            if which == 0 {
                slot.0 = Some(tensor)
            } else {
                slot.1 = Some(tensor)
            }
        }
        let mut moments = BTreeMap::new();
        for (name, pair) in halves {
            match pair {
                (Some(m), Some(v)) => {
                    moments.insert(name, Moments { m, v });
                }
                _ => return Err(OptimError::Incomplete(name)),
            }
        }
        Ok(Self {
            steps,
            moments,
            ..Self::default()
        })
    }
}
