//! The shard format, version 1: the Arrow schema of a shard and its file-level metadata.
//!
//! A shard is one Parquet file holding one row per *packed sequence*: several training samples
//! concatenated into at most `seq_len` tokens. Token-level columns (`input_ids`, `loss_mask`,
//! `position_ids`) have one entry per token; sample-level columns (`seq_lens`, `sample_*`) have one
//! entry per packed sample, in packing order; `images` has one struct per image, in token order.
//!
//! Invariants every shard row satisfies (checked on write by [`crate::PackedRow::validate`] and again
//! on read):
//! - `len(input_ids) == len(loss_mask) == len(position_ids) == sum(seq_lens) <= seq_len`;
//! - rows are *not* padded: padding to `seq_len` is the reader's job, so no byte is spent on it;
//! - `position_ids` restart at 0 at every packed sample (flash-attn varlen / Megatron THD layout);
//! - every image's `num_tokens` placeholder tokens start at `token_offset` and lie inside the sample
//!   `sample` it belongs to.
//!
//! Every column and every list element is non-nullable: a null would only ever mean a bug. List
//! elements are named `element`, as the Parquet LIST specification recommends, so readers that ignore
//! the embedded Arrow schema see standard three-level lists.
//!
//! The format version is bumped whenever a reader of the previous version could misread a shard;
//! adding file metadata keys does not bump it. FORMAT.md at the repository root is the human
//! documentation of this module and must change with it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

/// The shard format version this crate writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Parquet `created_by` of every shard.
///
/// Fixed on purpose, with no crate versions in it, so that identical rows give byte-identical
/// shards across mixtape releases that do not change the encoding (a resumed build must match an
/// uninterrupted one). parquet-rs would otherwise write `parquet-rs version <x.y.z>`.
pub const CREATED_BY: &str = "mixtape-shards (format 1)";

/// Names of the file-level key-value metadata entries of a shard.
pub mod meta_keys {
    /// The shard format version, `"1"`.
    pub const FORMAT_VERSION: &str = "mixtape.format_version";
    /// Fingerprint of the resolved recipe that produced the shard.
    pub const RECIPE_FINGERPRINT: &str = "mixtape.recipe_fingerprint";
    /// Name of the training stage the shard belongs to.
    pub const STAGE: &str = "mixtape.stage";
    /// Maximum tokens per row (the packing length), decimal.
    pub const SEQ_LEN: &str = "mixtape.seq_len";
    /// Index of the shard within its stage, decimal; the file is `shard-{index:05}.parquet`.
    pub const SHARD_INDEX: &str = "mixtape.shard_index";
}

/// Column names, shared by the writer, the reader and the documentation.
pub mod columns {
    pub const INPUT_IDS: &str = "input_ids";
    pub const LOSS_MASK: &str = "loss_mask";
    pub const POSITION_IDS: &str = "position_ids";
    pub const SEQ_LENS: &str = "seq_lens";
    pub const SAMPLE_SOURCE: &str = "sample_source";
    pub const SAMPLE_CATEGORY: &str = "sample_category";
    pub const SAMPLE_KEY: &str = "sample_key";
    pub const SAMPLE_LOSS_TOKENS: &str = "sample_loss_tokens";
    pub const IMAGES: &str = "images";

    /// Fields of the `images` struct, in schema order.
    pub mod image {
        pub const BYTES: &str = "bytes";
        pub const ENCODING: &str = "encoding";
        pub const HEIGHT: &str = "height";
        pub const WIDTH: &str = "width";
        pub const SOURCE_HEIGHT: &str = "source_height";
        pub const SOURCE_WIDTH: &str = "source_width";
        pub const GRID_T: &str = "grid_t";
        pub const GRID_H: &str = "grid_h";
        pub const GRID_W: &str = "grid_w";
        pub const TOKEN_OFFSET: &str = "token_offset";
        pub const NUM_TOKENS: &str = "num_tokens";
        pub const SAMPLE: &str = "sample";
    }
}

/// Name of the element field of every list column (Parquet LIST convention).
pub(crate) const LIST_ELEMENT: &str = "element";

/// Parquet column path of the image bytes leaf: dictionary encoding and statistics are switched off
/// there, since encoded images never repeat and min/max of JPEG bytes mean nothing.
pub(crate) const IMAGE_BYTES_PATH: [&str; 4] =
    [columns::IMAGES, "list", LIST_ELEMENT, columns::image::BYTES];

/// The fields of the `images` struct.
pub fn image_fields() -> Fields {
    use columns::image::*;
    let int = |name: &str| Field::new(name, DataType::Int32, false);
    Fields::from(vec![
        Field::new(BYTES, DataType::Binary, false),
        Field::new(ENCODING, DataType::Utf8, false),
        int(HEIGHT),
        int(WIDTH),
        int(SOURCE_HEIGHT),
        int(SOURCE_WIDTH),
        int(GRID_T),
        int(GRID_H),
        int(GRID_W),
        int(TOKEN_OFFSET),
        int(NUM_TOKENS),
        int(SAMPLE),
    ])
}

/// The element field of a list column holding `data_type`.
pub(crate) fn element(data_type: DataType) -> Arc<Field> {
    Arc::new(Field::new(LIST_ELEMENT, data_type, false))
}

fn list(name: &str, data_type: DataType) -> Field {
    Field::new(name, DataType::List(element(data_type)), false)
}

/// The Arrow schema of a version-1 shard (one shared instance).
pub fn shard_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use columns::*;
            Arc::new(Schema::new(vec![
                list(INPUT_IDS, DataType::Int32),
                list(LOSS_MASK, DataType::UInt8),
                list(POSITION_IDS, DataType::Int32),
                list(SEQ_LENS, DataType::Int32),
                list(SAMPLE_SOURCE, DataType::Utf8),
                list(SAMPLE_CATEGORY, DataType::Utf8),
                list(SAMPLE_KEY, DataType::Utf8),
                list(SAMPLE_LOSS_TOKENS, DataType::Int32),
                list(IMAGES, DataType::Struct(image_fields())),
            ]))
        })
        .clone()
}

/// What a shard's file metadata says about it: where it comes from and where it belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMeta {
    /// Fingerprint of the resolved recipe (opaque to this crate).
    pub recipe_fingerprint: String,
    /// Stage name.
    pub stage: String,
    /// Packing length: no row holds more tokens.
    pub seq_len: u32,
    /// Index of the shard within its stage.
    pub shard_index: u32,
}

impl ShardMeta {
    /// The key-value pairs stored in the Parquet footer, in a fixed order.
    pub fn to_key_values(&self) -> Vec<(&'static str, String)> {
        vec![
            (meta_keys::FORMAT_VERSION, FORMAT_VERSION.to_string()),
            (
                meta_keys::RECIPE_FINGERPRINT,
                self.recipe_fingerprint.clone(),
            ),
            (meta_keys::STAGE, self.stage.clone()),
            (meta_keys::SEQ_LEN, self.seq_len.to_string()),
            (meta_keys::SHARD_INDEX, self.shard_index.to_string()),
        ]
    }

    /// Parses the footer's key-value pairs; the error says which key is missing or malformed.
    pub fn from_key_values(kv: &HashMap<String, String>) -> Result<Self, MetaError> {
        let get = |key: &'static str| kv.get(key).ok_or(MetaError::Missing { key });
        let number = |key: &'static str| -> Result<u32, MetaError> {
            let raw = get(key)?;
            raw.parse().map_err(|_| MetaError::Malformed {
                key,
                value: raw.clone(),
            })
        };
        let version = get(meta_keys::FORMAT_VERSION)?;
        if version != &FORMAT_VERSION.to_string() {
            return Err(MetaError::UnsupportedVersion {
                found: version.clone(),
            });
        }
        Ok(Self {
            recipe_fingerprint: get(meta_keys::RECIPE_FINGERPRINT)?.clone(),
            stage: get(meta_keys::STAGE)?.clone(),
            seq_len: number(meta_keys::SEQ_LEN)?,
            shard_index: number(meta_keys::SHARD_INDEX)?,
        })
    }
}

/// Why a shard's file metadata cannot be understood (the reader adds the file name).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetaError {
    #[error(
        "metadata key `{key}` is missing: the file was not written by mixtape-shards, or was rewritten by a tool that dropped its key-value metadata"
    )]
    Missing { key: &'static str },
    #[error(
        "metadata key `{key}` holds {value:?}, not a non-negative integer: the footer is corrupt; rebuild the shard"
    )]
    Malformed { key: &'static str, value: String },
    #[error(
        "shard format version {found:?} is not supported (this reader reads version {FORMAT_VERSION}): rebuild the stage with this mixtape, or read it with the mixtape that wrote it"
    )]
    UnsupportedVersion { found: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ShardMeta {
        ShardMeta {
            recipe_fingerprint: "fp".into(),
            stage: "sft".into(),
            seq_len: 4096,
            shard_index: 7,
        }
    }

    fn as_map(meta: &ShardMeta) -> HashMap<String, String> {
        meta.to_key_values()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn metadata_round_trips_through_key_values() {
        assert_eq!(ShardMeta::from_key_values(&as_map(&meta())), Ok(meta()));
    }

    #[test]
    fn metadata_keys_are_written_in_a_fixed_documented_order() {
        let keys: Vec<_> = meta().to_key_values().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "mixtape.format_version",
                "mixtape.recipe_fingerprint",
                "mixtape.stage",
                "mixtape.seq_len",
                "mixtape.shard_index"
            ]
        );
    }

    #[test]
    fn another_format_version_is_refused_with_the_version_found() {
        let mut kv = as_map(&meta());
        kv.insert(meta_keys::FORMAT_VERSION.into(), "2".into());
        assert_eq!(
            ShardMeta::from_key_values(&kv),
            Err(MetaError::UnsupportedVersion { found: "2".into() })
        );
    }

    #[test]
    fn a_missing_or_malformed_key_is_named() {
        let mut kv = as_map(&meta());
        kv.remove(meta_keys::STAGE);
        assert_eq!(
            ShardMeta::from_key_values(&kv),
            Err(MetaError::Missing {
                key: meta_keys::STAGE
            })
        );
        let mut kv = as_map(&meta());
        kv.insert(meta_keys::SEQ_LEN.into(), "-1".into());
        let err = ShardMeta::from_key_values(&kv).unwrap_err();
        assert!(err.to_string().contains("mixtape.seq_len"), "{err}");
    }

    #[test]
    fn every_column_and_list_element_is_non_nullable() {
        for field in shard_schema().fields() {
            assert!(!field.is_nullable(), "{}", field.name());
            let DataType::List(element) = field.data_type() else {
                panic!("{} is not a list", field.name())
            };
            assert_eq!(element.name(), LIST_ELEMENT);
            assert!(!element.is_nullable(), "{}", field.name());
        }
        for field in image_fields().iter() {
            assert!(!field.is_nullable(), "images.{}", field.name());
        }
    }
}
