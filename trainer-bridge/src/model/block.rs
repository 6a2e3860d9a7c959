//! One pre-norm transformer block (RMSNorm, rotary attention, SwiGLU MLP), shared by the vision tower
//! and the language model: they differ only in the attention layout they are handed (bidirectional
//! within an image, causal within a packed sample) and in where their rotary angles come from.

use tch::Tensor;

use super::attention::{VarlenLayout, apply_rope};
use super::params::{Linear, ParamStore, Precision, RmsNorm};

/// Sizes of a stack of blocks.
#[derive(Clone, Copy, Debug)]
pub struct BlockDims {
    pub dim: i64,
    pub heads: i64,
    pub mlp: i64,
}

#[derive(Debug)]
pub struct Block {
    dims: BlockDims,
    attn_norm: RmsNorm,
    qkv: Linear,
    out: Linear,
    mlp_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Block {
    pub fn new(store: &mut ParamStore, name: &str, dims: BlockDims) -> Self {
        let BlockDims { dim, mlp, .. } = dims;
        Self {
            dims,
            attn_norm: RmsNorm::new(store, &format!("{name}.attn_norm"), dim),
            // Qwen2 puts biases on q, k and v only.
            qkv: Linear::new(store, &format!("{name}.qkv"), dim, 3 * dim, true),
            out: Linear::new(store, &format!("{name}.out"), dim, dim, false),
            mlp_norm: RmsNorm::new(store, &format!("{name}.mlp_norm"), dim),
            gate: Linear::new(store, &format!("{name}.gate"), dim, mlp, false),
            up: Linear::new(store, &format!("{name}.up"), dim, mlp, false),
            down: Linear::new(store, &format!("{name}.down"), mlp, dim, false),
        }
    }

    pub fn head_dim(&self) -> i64 {
        self.dims.dim / self.dims.heads
    }

    /// `x`: `[T, dim]`; `rope`: the `(cos, sin)` tables for these `T` tokens.
    pub fn forward(
        &self,
        x: &Tensor,
        layout: &VarlenLayout,
        rope: &(Tensor, Tensor),
        precision: Precision,
    ) -> Tensor {
        let t = x.size()[0];
        let qkv = self
            .qkv
            .forward(&self.attn_norm.forward(x), precision)
            .view([t, 3, self.dims.heads, self.head_dim()]);
        let q = apply_rope(&qkv.select(1, 0), rope);
        let k = apply_rope(&qkv.select(1, 1), rope);
        let v = qkv.select(1, 2);
        let x = x + self
            .out
            .forward(&layout.attend(&q, &k, &v, precision), precision);
        let h = self.mlp_norm.forward(&x);
        let mlp = silu(&self.gate.forward(&h, precision)) * self.up.forward(&h, precision);
        &x + self.down.forward(&mlp, precision)
    }
}

/// SiLU as `x * sigmoid(x)`, not libtorch's `silu`: the backward formula of `silu` depends on the
/// grad mode of the thread that runs it (the fused `silu_backward` kernel when grad mode is off, a
/// composite formula that rounds differently when it is on), and libtorch's autograd engine runs a
/// device's backward on a worker thread whose grad mode is on, while CPU backward runs on the caller's
/// thread with it off. The gradients of `mul` and `sigmoid` do not depend on the thread, so the same
/// model gives the same gradients on any device (tests/npu_loop.rs checks it bit for bit).
fn silu(x: &Tensor) -> Tensor {
    x * x.sigmoid()
}

/// Activation recomputation for a chain of blocks, by hand (tch has no checkpoint function).
///
/// Forward: each block runs without building a graph; only its input is kept. The chain's output is
/// handed downstream as a fresh leaf. Once the downstream backward pass has filled that leaf's
/// gradient, [`Recompute::backward`] walks the blocks in reverse: it re-runs block `i` on its saved
/// input with a graph, back-propagates the incoming gradient through it (as `sum(y * g)`, whose
/// gradient with respect to `y` is exactly `g`), and passes the gradient at the block's input on.
/// Memory: one activation per block boundary instead of every intermediate of every block.
#[derive(Debug)]
pub struct Recompute {
    inputs: Vec<Tensor>,
    /// The leaf handed downstream.
    pub output: Tensor,
}

impl Recompute {
    /// Runs `blocks(i, x)` for `i < n` without a graph, saving inputs.
    pub fn forward(n: usize, x: &Tensor, mut block: impl FnMut(usize, &Tensor) -> Tensor) -> Self {
        let mut inputs = Vec::with_capacity(n);
        let mut x = x.detach();
        tch::no_grad(|| {
            for i in 0..n {
                let y = block(i, &x);
                inputs.push(std::mem::replace(&mut x, y));
            }
        });
        Self {
            inputs,
            output: x.set_requires_grad(true),
        }
    }

    /// Back-propagates through the blocks (parameters receive their gradients) and returns the
    /// gradient at the chain's input, or `None` when nothing downstream produced a gradient.
    pub fn backward(self, mut block: impl FnMut(usize, &Tensor) -> Tensor) -> Option<Tensor> {
        let mut grad = self.output.grad();
        if !grad.defined() {
            return None;
        }
        for (i, input) in self.inputs.into_iter().enumerate().rev() {
            let x = input.set_requires_grad(true);
            let y = block(i, &x);
            (y * &grad).sum(tch::Kind::Float).backward();
            grad = x.grad();
        }
        Some(grad)
    }
}
