//! The validated recipe: what every later layer (planner, builder, trainer) reads.
//!
//! Everything here is resolved: inheritance applied, paths absolute, defaults filled in. Spans are
//! kept next to the values a later check may still need to blame (a stage's budget when sources fall
//! short, a source's definition when its files cannot be read).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::diag::Span;
use crate::source::spec::SourceSpec;

/// The only recipe language version this build understands.
pub const RECIPE_VERSION: u64 = 1;

/// Bounds `check` enforces on numeric settings. Each is far beyond any real training run, so it only
/// catches typos (an extra `000`, a sign) and values that would overflow arithmetic or memory later.
pub mod bounds {
    /// Samples a synthetic source may generate (its `count`).
    pub const MAX_SYNTHETIC_COUNT: u64 = 100_000_000;
    /// A stage budget, whatever its basis: 10^15 tokens is 100x the largest public pre-training runs.
    pub const MAX_BUDGET: u64 = 1_000_000_000_000_000;
    /// Shortest packed sequence: a chat turn's template alone takes about 10 tokens.
    pub const MIN_SEQ_LEN: u64 = 16;
    /// Longest packed sequence (2^20 tokens).
    pub const MAX_SEQ_LEN: u64 = 1 << 20;
    /// Largest learning rate; real ones are below 0.01.
    pub const MAX_LR: f64 = 10.0;
    /// Largest per-module learning-rate multiplier.
    pub const MAX_LR_SCALE: f64 = 1000.0;
    /// Largest source `weight` (weights are relative within a category).
    pub const MAX_WEIGHT: f64 = 1_000_000.0;
    /// Most times one sample may be drawn in a stage.
    pub const MAX_REPEAT: u64 = 1000;
    /// Largest `batch_size` and `grad_accum`.
    pub const MAX_BATCH: u64 = 1 << 20;
    /// Largest best-fit-decreasing buffer.
    pub const MAX_PACK_BUFFER: u64 = 1 << 24;
    /// Largest `patch_size` and `merge_size`.
    pub const MAX_PATCH_SIZE: u64 = 1024;
    pub const MAX_MERGE_SIZE: u64 = 64;
    /// Largest `min_pixels` / `max_pixels`: a 16384 x 16384 image.
    pub const MAX_IMAGE_PIXELS: u64 = 1 << 28;
    /// Largest `max_record_bytes` (4 GiB).
    pub const MAX_RECORD_BYTES_LIMIT: u64 = 1 << 32;
}

/// Default cap on one source record's stored size (`limits.max_record_bytes`): 16 MiB.
///
/// Parsing and tokenizing a record costs about 80 to 100 bytes of memory per byte of record (serde
/// values, token strings and offsets; measured: one 52.8 MB JSONL line took `plan` to 4.3 GB peak
/// RSS), so the cap is what bounds a build's peak memory per worker thread, whatever the data holds. 16 MiB fits a whole long book (War and Peace is 3.2 MB of text) or
/// a record carrying several full-resolution photos, and keeps the worst case near 1.5 GB per thread.
/// Larger records are rejected with reason `record_too_large` before they are parsed.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 16 << 20;

#[derive(Clone, Debug)]
pub struct Recipe {
    /// The recipe file as given by the user.
    pub path: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    /// HF `tokenizer.json`, absolute.
    pub tokenizer: PathBuf,
    /// The template's format; its settings (system prompt, turn-end loss) are resolved into each
    /// conversation source's [`SourceSpec::chat`].
    pub template: Template,
    /// Sources sorted by name.
    pub sources: Vec<SourceSpec>,
    /// Where each source is defined.
    pub source_spans: BTreeMap<String, Span>,
    pub stages: Vec<Stage>,
}

impl Recipe {
    pub fn source(&self, name: &str) -> Option<&SourceSpec> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Sources of a category, in name order.
    pub fn sources_in<'a>(
        &'a self,
        category: &'a str,
    ) -> impl Iterator<Item = &'a SourceSpec> + 'a {
        self.sources.iter().filter(move |s| s.category == category)
    }
}

/// Chat template used to render conversations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` (Qwen2 / ChatML).
    Chatml,
}

/// What a stage's budget counts.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Packed samples (a long text split into windows counts once per window).
    Samples,
    /// Every token of the sequence, image tokens included.
    Tokens,
    /// Tokens that carry loss (assistant turns, captions, text).
    LossTokens,
    /// `<|image_pad|>` tokens only.
    ImageTokens,
}

impl Basis {
    pub const ALL: [Basis; 4] = [
        Basis::Samples,
        Basis::Tokens,
        Basis::LossTokens,
        Basis::ImageTokens,
    ];

    /// What `counts` amount to on this basis.
    pub fn of(self, counts: &mixtape_shards::Counts) -> u64 {
        match self {
            Basis::Samples => counts.samples,
            Basis::Tokens => counts.tokens,
            Basis::LossTokens => counts.loss_tokens,
            Basis::ImageTokens => counts.image_tokens,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Basis::Samples => "samples",
            Basis::Tokens => "tokens",
            Basis::LossTokens => "loss_tokens",
            Basis::ImageTokens => "image_tokens",
        }
    }

    /// Singular/plural noun for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Basis::Samples => "samples",
            Basis::Tokens => "tokens",
            Basis::LossTokens => "loss tokens",
            Basis::ImageTokens => "image tokens",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub basis: Basis,
    pub amount: u64,
}

/// How images are sized and stored for a stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImagePolicy {
    pub patch_size: u32,
    pub merge_size: u32,
    pub min_pixels: u64,
    pub max_pixels: u64,
    /// Images whose long side exceeds this many times the short side are rejected.
    pub max_aspect_ratio: f64,
    pub encoding: ImageEncoding,
    /// JPEG quality (1..=100) when `encoding` is `jpeg`.
    pub jpeg_quality: u8,
}

impl Default for ImagePolicy {
    fn default() -> Self {
        Self {
            patch_size: 14,
            merge_size: 2,
            min_pixels: 3136,
            max_pixels: 1_003_520,
            max_aspect_ratio: 200.0,
            encoding: ImageEncoding::Jpeg,
            jpeg_quality: 90,
        }
    }
}

impl ImagePolicy {
    pub fn resize_policy(&self) -> crate::image::ResizePolicy {
        crate::image::ResizePolicy {
            patch_size: self.patch_size,
            merge_size: self.merge_size,
            min_pixels: self.min_pixels,
            max_pixels: self.max_pixels,
            max_aspect_ratio: self.max_aspect_ratio,
        }
    }
}

/// How images are stored in shards: `mixtape-image`'s enum, shared with the builder and the shards.
pub use mixtape_image::ImageEncoding;

/// Model parts a stage trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Module {
    Vision,
    Projector,
    Llm,
}

impl Module {
    pub const NAMES: [&'static str; 3] = ["vision", "projector", "llm"];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    Cosine,
    Linear,
    Constant,
}

/// Training hints: read by the trainer bridge, recorded in plans so a diff shows them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainHints {
    pub trainable: Vec<Module>,
    pub lr: f64,
    /// Learning-rate multiplier per module (e.g. a 10x projector).
    pub lr_scale: BTreeMap<String, f64>,
    /// Fraction of the stage's steps spent warming the learning rate up.
    pub warmup: f64,
    pub schedule: LrSchedule,
    /// Packed sequences per optimizer step (before gradient accumulation).
    pub batch_size: u32,
    pub grad_accum: u32,
    pub weight_decay: f64,
    pub clip_grad: f64,
}

impl Default for TrainHints {
    fn default() -> Self {
        Self {
            trainable: vec![Module::Vision, Module::Projector, Module::Llm],
            lr: 1.0e-5,
            lr_scale: BTreeMap::new(),
            warmup: 0.03,
            schedule: LrSchedule::Cosine,
            batch_size: 8,
            grad_accum: 1,
            weight_decay: 0.0,
            clip_grad: 1.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackAlgorithm {
    /// Best-fit-decreasing over a buffer of samples.
    Bfd,
    /// Greedy concatenation in arrival order (baseline).
    Greedy,
}

/// Packing settings of a stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PackPolicy {
    pub algorithm: PackAlgorithm,
    /// Samples considered together by best-fit-decreasing.
    pub buffer: u32,
    /// Most image tokens in one pack (balances vision-encoder load across ranks), if set.
    pub max_image_tokens: Option<u32>,
    /// What happens to text longer than `seq_len` (a source's own `long_text` wins).
    pub long_text: LongText,
}

/// What happens to a text sample (plain text, no images) longer than a stage's `seq_len`.
/// Conversations and captions over `seq_len` are always rejected as `too_long`: cutting them could
/// cut an image or a turn in half.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LongText {
    /// Consecutive `seq_len` windows, each packed as its own sample: nothing is lost, and on a
    /// `samples` budget every window counts as one sample.
    #[default]
    Split,
    /// Its first `seq_len` tokens, one sample; the rest is not trained on.
    Truncate,
    /// Rejected as `too_long` (counted in the reject list, never drawn).
    Drop,
}

impl LongText {
    pub const NAMES: [&'static str; 3] = ["split", "truncate", "drop"];

    pub fn name(self) -> &'static str {
        match self {
            LongText::Split => "split",
            LongText::Truncate => "truncate",
            LongText::Drop => "drop",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "split" => Some(LongText::Split),
            "truncate" => Some(LongText::Truncate),
            "drop" => Some(LongText::Drop),
            _ => None,
        }
    }
}

/// Default number of samples best-fit-decreasing sorts at once: large enough for >99% fill on
/// typical mixes, small enough to keep memory flat.
pub const DEFAULT_PACK_BUFFER: u32 = 2048;

impl Default for PackPolicy {
    fn default() -> Self {
        Self {
            algorithm: PackAlgorithm::Bfd,
            buffer: DEFAULT_PACK_BUFFER,
            max_image_tokens: None,
            long_text: LongText::Split,
        }
    }
}

/// One category's share of a stage budget.
#[derive(Clone, Debug, PartialEq)]
pub struct MixEntry {
    pub category: String,
    pub share: f64,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Stage {
    pub name: String,
    /// Where the stage's `name` is written.
    pub span: Span,
    /// The stage it extends, if any.
    pub parent: Option<String>,
    pub seq_len: u32,
    pub budget: Budget,
    pub budget_span: Span,
    /// Sorted by category name.
    pub mix: Vec<MixEntry>,
    pub max_repeat: u32,
    pub image: ImagePolicy,
    pub train: TrainHints,
    pub pack: PackPolicy,
}

impl Stage {
    /// What happens to `source`'s text longer than this stage's `seq_len`.
    pub fn long_text_of(&self, source: &SourceSpec) -> LongText {
        source.long_text.unwrap_or(self.pack.long_text)
    }
}
