//! A small but real multimodal LLM in the shape of Qwen2.5-VL / MindVL, sized by [`ModelConfig`].
//!
//! - **Vision tower** (`Vision`): 14x14-pixel patches, projected linearly, then transformer blocks
//!   with 2-D rotary positions; attention is bidirectional within an image and never crosses images.
//!   Patches arrive in *merge order* (every 2x2 group of neighbours consecutive, groups row-major), as
//!   in Qwen2.5-VL, so the merger is a reshape.
//! - **Projector** (`Projector`): RMSNorm, then each 2x2 group of patch features (4 x vision dim)
//!   goes through a 2-layer MLP (GELU) to one LLM embedding: one `<|image_pad|>` token.
//! - **Language model**: token embeddings in which image features replace the `<|image_pad|>`
//!   embeddings, causal blocks with 1-D rotary positions from the shards' `position_ids`, attention
//!   block-diagonal over the packed samples, a final RMSNorm and an LM head applied only to the
//!   positions whose next token carries loss (`loss_mask`), which also saves most of the head's cost.
//!
//! Parameters are named `vision.*`, `projector.*`, `llm.*`, the module names of the recipe's
//! `train.trainable`. What Qwen2.5-VL has and this model leaves out, for size: windowed attention in
//! the vision tower, M-RoPE (3-D positions for image tokens; the shards store 1-D positions), grouped
//! query attention and the temporal patch axis (videos).

mod attention;
mod block;
mod params;

pub use attention::{VarlenLayout, apply_rope, rope_1d, rope_2d};
pub use block::{Block, BlockDims, Recompute};
pub use params::{INIT_STD, Linear, ParamStore, Precision, RmsNorm};

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::device::Placement;

/// Channels x patch x patch values of one patch.
pub fn patch_values(patch_size: i64) -> i64 {
    3 * patch_size * patch_size
}

/// Model sizes. The defaults are tiny so a CPU run of the demo takes minutes; every field can be set
/// from a JSON file (`--model-config`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Token ids are `0..vocab_size`; 0 means "the tokenizer's size".
    pub vocab_size: i64,
    pub patch_size: i64,
    pub merge_size: i64,
    pub vision_dim: i64,
    pub vision_layers: usize,
    pub vision_heads: i64,
    pub vision_mlp: i64,
    pub llm_dim: i64,
    pub llm_layers: usize,
    pub llm_heads: i64,
    pub llm_mlp: i64,
    pub rope_theta: f64,
    pub vision_rope_theta: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            vocab_size: 0,
            patch_size: 14,
            merge_size: 2,
            vision_dim: 64,
            vision_layers: 2,
            vision_heads: 2,
            vision_mlp: 128,
            llm_dim: 128,
            llm_layers: 2,
            llm_heads: 4,
            llm_mlp: 256,
            rope_theta: 1_000_000.0,
            vision_rope_theta: 10_000.0,
        }
    }
}

/// Why a configuration cannot build a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("model config: {0}")]
    Invalid(String),
}

impl ModelConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.vocab_size <= 0 {
            return bad("vocab_size must be positive".into());
        }
        if self.merge_size != 2 {
            return bad(format!(
                "merge_size {} unsupported: the projector merges 2x2 patches",
                self.merge_size
            ));
        }
        for (name, dim, heads) in [
            ("vision", self.vision_dim, self.vision_heads),
            ("llm", self.llm_dim, self.llm_heads),
        ] {
            if heads <= 0 || dim <= 0 || dim % heads != 0 || (dim / heads) % 4 != 0 {
                return bad(format!(
                    "{name}_dim {dim} must be a positive multiple of 4 x {name}_heads ({heads}) for rotary halves"
                ));
            }
        }
        if self.patch_size <= 0 || self.vision_mlp <= 0 || self.llm_mlp <= 0 {
            return bad("patch_size, vision_mlp and llm_mlp must be positive".into());
        }
        Ok(())
    }
}

/// One micro-batch, flattened: every packed row's tokens one after the other.
#[derive(Debug)]
pub struct ModelInput {
    /// `[T]` token ids.
    pub input_ids: Tensor,
    /// `[T]` positions, restarting at 0 in every packed sample.
    pub positions: Tensor,
    /// Length of every packed sample, in stream order (the attention segments).
    pub segments: Vec<usize>,
    /// `[N]` stream positions whose next token carries loss, and `[N]` those next tokens.
    pub loss_positions: Tensor,
    pub loss_targets: Tensor,
    pub images: Option<ImageInput>,
}

/// The images of a micro-batch, patchified.
#[derive(Debug)]
pub struct ImageInput {
    /// `[P, 3 * patch * patch]` normalised pixels, merge order.
    pub patches: Tensor,
    /// `[P]` patch row and column in its image.
    pub rows: Tensor,
    pub cols: Tensor,
    /// Patches per image, in order.
    pub patches_per_image: Vec<usize>,
    /// `[P / 4]` stream positions of the `<|image_pad|>` tokens the merged features replace.
    pub token_positions: Tensor,
}

#[derive(Debug)]
struct Vision {
    patch_embed: Linear,
    blocks: Vec<Block>,
    rope_theta: f64,
}

#[derive(Debug)]
struct Projector {
    norm: RmsNorm,
    fc1: Linear,
    fc2: Linear,
    group: i64,
}

impl Projector {
    fn forward(&self, patches: &Tensor, precision: Precision) -> Tensor {
        let (p, dim) = patches.size2().expect("patch features are [P, dim]");
        let grouped = self
            .norm
            .forward(patches)
            .reshape([p / self.group, dim * self.group]);
        self.fc2.forward(
            &self.fc1.forward(&grouped, precision).gelu("none"),
            precision,
        )
    }
}

/// The model: parameters plus structure.
#[derive(Debug)]
pub struct Mllm {
    pub config: ModelConfig,
    pub params: ParamStore,
    vision: Vision,
    projector: Projector,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: RmsNorm,
    head: Linear,
}

/// What a forward-backward pass reports.
#[derive(Clone, Copy, Debug)]
pub struct MicroStats {
    /// Sum of the token losses (nats) before scaling.
    pub loss_sum: f64,
}

impl Mllm {
    /// Builds the model with weights drawn from `seed` (on the CPU), kept on `placement`.
    pub fn try_new(
        config: ModelConfig,
        placement: &Placement,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut s = ParamStore::new(placement.clone(), seed);
        let c = &config;
        let vdims = BlockDims {
            dim: c.vision_dim,
            heads: c.vision_heads,
            mlp: c.vision_mlp,
        };
        let ldims = BlockDims {
            dim: c.llm_dim,
            heads: c.llm_heads,
            mlp: c.llm_mlp,
        };
        let group = c.merge_size * c.merge_size;
        let vision = Vision {
            patch_embed: Linear::new(
                &mut s,
                "vision.patch_embed",
                patch_values(c.patch_size),
                c.vision_dim,
                false,
            ),
            blocks: (0..c.vision_layers)
                .map(|i| Block::new(&mut s, &format!("vision.blocks.{i}"), vdims))
                .collect(),
            rope_theta: c.vision_rope_theta,
        };
        let projector = Projector {
            norm: RmsNorm::new(&mut s, "projector.norm", c.vision_dim),
            fc1: Linear::new(
                &mut s,
                "projector.fc1",
                group * c.vision_dim,
                group * c.vision_dim,
                true,
            ),
            fc2: Linear::new(
                &mut s,
                "projector.fc2",
                group * c.vision_dim,
                c.llm_dim,
                true,
            ),
            group,
        };
        let embed = s.normal("llm.embed.weight", &[c.vocab_size, c.llm_dim], INIT_STD);
        let blocks = (0..c.llm_layers)
            .map(|i| Block::new(&mut s, &format!("llm.blocks.{i}"), ldims))
            .collect();
        let norm = RmsNorm::new(&mut s, "llm.norm", c.llm_dim);
        let head = Linear::new(&mut s, "llm.head", c.llm_dim, c.vocab_size, false);
        Ok(Self {
            config,
            params: s,
            vision,
            projector,
            embed,
            blocks,
            norm,
            head,
        })
    }

    fn vision_head_dim(&self) -> i64 {
        self.config.vision_dim / self.config.vision_heads
    }

    fn llm_head_dim(&self) -> i64 {
        self.config.llm_dim / self.config.llm_heads
    }

    /// Summed cross-entropy over the loss positions, without gradients (evaluation).
    pub fn loss_sum(&self, input: &ModelInput, precision: Precision) -> f64 {
        tch::no_grad(|| self.scalar(&self.forward_loss(input, precision, false).0))
    }

    /// Forward and backward pass of one micro-batch: gradients of `scale * summed loss` accumulate
    /// into the trainable parameters. With `recompute`, every block's activations are recomputed
    /// during the backward pass instead of kept.
    pub fn forward_backward(
        &self,
        input: &ModelInput,
        scale: f64,
        precision: Precision,
        recompute: bool,
    ) -> MicroStats {
        let (loss, tapes) = self.forward_loss(input, precision, recompute);
        let loss_sum = self.scalar(&loss);
        (loss * scale).backward();
        if let Some(tapes) = tapes {
            self.backward_recomputed(input, tapes, precision);
        }
        MicroStats { loss_sum }
    }

    /// The value of a one-element tensor, read back through the placement (never from the device).
    fn scalar(&self, t: &Tensor) -> f64 {
        self.params.placement().to_cpu(t).double_value(&[])
    }

    fn forward_loss(
        &self,
        input: &ModelInput,
        precision: Precision,
        recompute: bool,
    ) -> (Tensor, Option<Tapes>) {
        let mut tapes = recompute.then(Tapes::default);
        let mut x = Tensor::embedding(&self.embed, &input.input_ids, -1, false, false);
        let mut vision_input = None;
        if let Some(images) = &input.images {
            let (features, vision) = self.vision_features(images, precision, tapes.is_some());
            vision_input = vision;
            x = x.index_put(&[Some(&images.token_positions)], &features, false);
        }
        let at = self.params.placement();
        let layout = VarlenLayout::new(&input.segments, true, at);
        let rope = rope_1d(
            &input.positions,
            self.llm_head_dim(),
            self.config.rope_theta,
            at,
        );
        let block = |i: usize, h: &Tensor| self.blocks[i].forward(h, &layout, &rope, precision);
        let hidden = match tapes.as_mut() {
            Some(t) => {
                let chain = Recompute::forward(self.blocks.len(), &x, block);
                let out = chain.output.shallow_clone();
                t.llm = Some((x, chain));
                t.vision = vision_input;
                out
            }
            None => (0..self.blocks.len()).fold(x, |h, i| block(i, &h)),
        };
        let picked = self
            .norm
            .forward(&hidden.index_select(0, &input.loss_positions));
        let logits = self.head.forward(&picked, precision);
        let loss = logits.cross_entropy_loss::<Tensor>(
            &input.loss_targets,
            None,
            Reduction::Sum,
            -100,
            0.0,
        );
        (loss, tapes)
    }

    /// Merged, projected image features `[P / 4, llm_dim]`. With `recompute` and a trainable vision
    /// tower, also the tower's input and recompute tape.
    fn vision_features(
        &self,
        images: &ImageInput,
        precision: Precision,
        recompute: bool,
    ) -> (Tensor, Option<(Tensor, Recompute)>) {
        let at = self.params.placement();
        let layout = VarlenLayout::new(&images.patches_per_image, false, at);
        let rope = rope_2d(
            &images.rows,
            &images.cols,
            self.vision_head_dim(),
            self.vision.rope_theta,
            at,
        );
        let v = &self.vision;
        let block = |i: usize, h: &Tensor| v.blocks[i].forward(h, &layout, &rope, precision);
        let tower = |x: Tensor| (0..v.blocks.len()).fold(x, |h, i| block(i, &h));
        if !self.params.trains("vision") {
            // Frozen tower: no graph at all, the projector's gradients do not need one.
            let out = tch::no_grad(|| tower(v.patch_embed.forward(&images.patches, precision)));
            return (self.projector.forward(&out, precision), None);
        }
        let x = v.patch_embed.forward(&images.patches, precision);
        if recompute {
            let chain = Recompute::forward(v.blocks.len(), &x, block);
            let features = self.projector.forward(&chain.output, precision);
            (features, Some((x, chain)))
        } else {
            (self.projector.forward(&tower(x), precision), None)
        }
    }

    fn backward_recomputed(&self, input: &ModelInput, tapes: Tapes, precision: Precision) {
        let at = self.params.placement();
        if let Some((x, chain)) = tapes.llm {
            let layout = VarlenLayout::new(&input.segments, true, at);
            let rope = rope_1d(
                &input.positions,
                self.llm_head_dim(),
                self.config.rope_theta,
                at,
            );
            let grad = chain.backward(|i, h| self.blocks[i].forward(h, &layout, &rope, precision));
            if let Some(grad) = grad.filter(|_| x.requires_grad()) {
                (x * grad).sum(Kind::Float).backward();
            }
        }
        if let (Some((x, chain)), Some(images)) = (tapes.vision, &input.images) {
            let layout = VarlenLayout::new(&images.patches_per_image, false, at);
            let rope = rope_2d(
                &images.rows,
                &images.cols,
                self.vision_head_dim(),
                self.vision.rope_theta,
                at,
            );
            let grad =
                chain.backward(|i, h| self.vision.blocks[i].forward(h, &layout, &rope, precision));
            if let Some(grad) = grad.filter(|_| x.requires_grad()) {
                (x * grad).sum(Kind::Float).backward();
            }
        }
    }
}

/// Recompute tapes of one forward pass: the chain input (still attached to its upstream graph) and
/// the chain.
#[derive(Debug, Default)]
struct Tapes {
    llm: Option<(Tensor, Recompute)>,
    vision: Option<(Tensor, Recompute)>,
}
