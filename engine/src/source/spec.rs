//! Validated description of one source, as the recipe resolves it.
//!
//! The recipe layer turns YAML into a [`SourceSpec`]; the readers in this module turn a spec into a
//! stream of records. Paths here are already absolute (resolved against the recipe file's folder).

use std::path::PathBuf;

/// The on-disk (or built-in) format of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceFormat {
    /// JSONL (or a JSON array file): LLaVA `conversations: [{from, value}]` + `image`, or ShareGPT /
    /// LLaMA-Factory `messages: [{role, content}]` + `images`. The style is detected per record.
    Conversation,
    /// JSONL of image + caption pairs.
    Caption,
    /// JSONL of long text documents.
    Text,
    /// HF-datasets style Parquet; rows follow `schema`, images are structs `{bytes, path}`.
    Parquet,
    /// WebDataset tar shards: members grouped by key (`000123.jpg` + `000123.json`); the JSON follows
    /// `schema`, images are the members with an image extension.
    WebDataset,
    /// Built-in procedural generator (the demo); see `crate::synthetic`.
    Synthetic,
}

/// What a row of a Parquet source or the JSON member of a WebDataset sample holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordSchema {
    Conversation,
    Caption,
    Text,
}

/// Field-name mapping. Every entry is optional; unset entries use the format's defaults:
/// caption `{image, caption}` (falling back to `text`), text `{text}`, conversation `{conversations |
/// messages, image | images}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldMap {
    pub image: Option<String>,
    pub caption: Option<String>,
    pub text: Option<String>,
    pub conversations: Option<String>,
    pub messages: Option<String>,
}

/// A resolved source.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    /// The source's name in the recipe (the key under `sources:`).
    pub name: String,
    pub format: SourceFormat,
    pub category: String,
    /// Explicit weight within its category, if set.
    pub weight: Option<f64>,
    /// Files, sorted, after glob expansion; empty for synthetic sources.
    pub files: Vec<PathBuf>,
    /// For Parquet and WebDataset sources: what each record holds.
    pub schema: Option<RecordSchema>,
    pub fields: FieldMap,
    /// Folder that relative image paths resolve against; default: each source file's folder.
    pub image_root: Option<PathBuf>,
    /// Synthetic generator kind and sample count.
    pub synthetic: Option<SyntheticSpec>,
    /// Largest record, in stored bytes, the readers accept (a JSONL line, a JSON array element, a
    /// Parquet row's values, a WebDataset group's members); larger ones are rejected with
    /// `record_too_large` before they are parsed. See `recipe::DEFAULT_MAX_RECORD_BYTES`.
    pub max_record_bytes: u64,
    /// How conversations render: the recipe's `template` settings with this source's `system`.
    pub chat: crate::template::ChatStyle,
    /// What happens to this source's text longer than a stage's `seq_len`, when the source sets
    /// it; `None` follows each stage's `pack.long_text`.
    pub long_text: Option<crate::recipe::LongText>,
}

/// Parameters of a built-in synthetic source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticSpec {
    pub kind: crate::synthetic::SyntheticKind,
    pub count: u64,
    /// Generator seed (the source's `seed`, default 0). Independent of the recipe seed, so reshuffling
    /// a recipe never changes what a synthetic source contains.
    pub seed: u64,
}
