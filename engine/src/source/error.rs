//! The two ways reading a source can fail: a record is rejected, or a file cannot be read.
//!
//! They are kept apart on purpose. A [`RejectReason`] is about one record (bad JSON on one line, a
//! missing image, a conversation without an answer): the reader reports it *in* the record and carries
//! on, so a build can count rejects by [`RejectReason::code`] and decide afterwards whether there were
//! too many (ripgrep's "collect soft failures" habit). A [`SourceError`] means a whole file (or the
//! spec itself) is unusable — it cannot be opened, it is not Parquet, a required column is missing —
//! and is reported once, naming the file and suggesting a fix.

use std::path::PathBuf;

use crate::reject::RejectCode;

/// Why one record was rejected. `Display` is a short human sentence meant to follow the record's
/// location (`"llava.jsonl:3: invalid JSON: ..."`); [`RejectReason::code`] is a stable key to count by.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    /// The line or element is not valid JSON; the message is serde_json's.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The line (or a text member) is not valid UTF-8.
    #[error("not valid UTF-8")]
    InvalidUtf8,
    /// A field the record needs is absent. `field` is the name looked up first; `also_tried` lists
    /// the fallbacks that were absent too.
    #[error("missing field `{field}`{}", also_tried_suffix(also_tried))]
    MissingField {
        field: String,
        also_tried: Vec<String>,
    },
    /// A field is present but null (Parquet nulls land here too).
    #[error("field `{0}` is null")]
    NullField(String),
    /// A field has the wrong JSON type. `field` is a path such as `messages[2].content`.
    #[error("field `{field}` is {found}, expected {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    /// The conversation list is empty.
    #[error("the conversation has no turns")]
    EmptyConversation,
    /// The conversation has turns but none by the assistant, so there is nothing to train on.
    #[error("the conversation has no assistant turn")]
    NoAssistantTurn,
    /// A turn's speaker is not one of the known role names.
    #[error("unknown role `{0}` (expected human, user, gpt, assistant or system)")]
    UnknownRole(String),
    /// The text has `<image>` placeholders, but not one per image.
    #[error(
        "{placeholders} `<image>` placeholder(s) in the text but {images} image(s); \
         use one placeholder per image, or none to have them put before the first user turn"
    )]
    PlaceholderMismatch { placeholders: usize, images: usize },
    /// A caption or text body is empty.
    #[error("field `{0}` is empty")]
    EmptyText(String),
    /// A caption record (or WebDataset group) has no image at all.
    #[error("no image (a caption record needs at least one)")]
    NoImage,
    /// A WebDataset group lacks a member the schema needs (e.g. `json` for conversations).
    #[error("no `{0}` member in the group")]
    MissingMember(String),
    /// An image path that does not exist (after resolving against the image root).
    #[error("image not found: {} (relative paths resolve against the source's image_root, or the data file's folder)", .0.display())]
    MissingImage(PathBuf),
    /// The image exists but its header does not give a size: not an image, an unsupported format,
    /// or a truncated file. `image` names the file or member.
    #[error("cannot read the image header of {image}: {detail}")]
    UnreadableImageHeader { image: String, detail: String },
    /// The record's stored size exceeds the source's `max_record_bytes`; it was skipped before being
    /// parsed or tokenized, so its size cannot drive memory use.
    #[error(
        "the record is {bytes} bytes, over the {limit}-byte limit \
         (raise `max_record_bytes` on the source, or `limits: {{max_record_bytes: ...}}` in the recipe, to keep it)"
    )]
    RecordTooLarge { bytes: u64, limit: u64 },
}

fn also_tried_suffix(also: &[String]) -> String {
    if also.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = also.iter().map(|f| format!("`{f}`")).collect();
        format!(" (nor {})", names.join(", "))
    }
}

impl RejectReason {
    /// Why, as every layer counts and reports it (`rejects.jsonl`, the manifest, `plan`).
    pub fn code(&self) -> RejectCode {
        match self {
            RejectReason::InvalidJson(_) => RejectCode::InvalidJson,
            RejectReason::InvalidUtf8 => RejectCode::InvalidUtf8,
            RejectReason::MissingField { .. } => RejectCode::MissingField,
            RejectReason::NullField(_) => RejectCode::NullField,
            RejectReason::WrongType { .. } => RejectCode::WrongType,
            RejectReason::EmptyConversation => RejectCode::EmptyConversation,
            RejectReason::NoAssistantTurn => RejectCode::NoAssistantTurn,
            RejectReason::UnknownRole(_) => RejectCode::UnknownRole,
            RejectReason::PlaceholderMismatch { .. } => RejectCode::PlaceholderMismatch,
            RejectReason::EmptyText(_) => RejectCode::EmptyText,
            RejectReason::NoImage => RejectCode::NoImage,
            RejectReason::MissingMember(_) => RejectCode::MissingMember,
            RejectReason::MissingImage(_) => RejectCode::MissingImage,
            RejectReason::UnreadableImageHeader { .. } => RejectCode::UnreadableImageHeader,
            RejectReason::RecordTooLarge { .. } => RejectCode::RecordTooLarge,
        }
    }

    pub(crate) fn missing(field: &str, also_tried: &[&str]) -> RejectReason {
        RejectReason::MissingField {
            field: field.to_owned(),
            also_tried: also_tried.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// A file-level (or spec-level) failure: the reader cannot produce records from a file at all.
/// Every message names the file and says what to check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Opening or reading a file failed.
    #[error("cannot read {}: {source} (check that the path exists and is readable)", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A `.json` file is not a well-formed top-level JSON array.
    #[error("{}: {detail} (a .json source must hold one top-level array of records, or JSON Lines)", path.display())]
    JsonArray { path: PathBuf, detail: String },
    /// The Parquet reader rejected the file.
    #[error(
        "cannot read Parquet file {}: {detail} (is it really Parquet, and not a Git LFS pointer or a partial download?)",
        path.display()
    )]
    Parquet { path: PathBuf, detail: String },
    /// A column the schema needs is not in the Parquet file.
    #[error(
        "{}: no column {wanted}; the file has columns [{}]; set `fields.{field}` in the recipe to the column that holds it",
        path.display(),
        available.join(", ")
    )]
    MissingColumn {
        path: PathBuf,
        wanted: String,
        field: &'static str,
        available: Vec<String>,
    },
    /// A Parquet column has a type the reader cannot interpret.
    #[error("{}: column `{column}` has type {found}, expected {expected}", path.display())]
    ColumnType {
        path: PathBuf,
        column: String,
        found: String,
        expected: &'static str,
    },
    /// A Parquet file without a schema whose columns do not say what a row holds.
    #[error(
        "{}: cannot tell what a row holds from columns [{}]; set `schema:` (caption, conversation or text) on the source",
        path.display(),
        available.join(", ")
    )]
    UnknownRowSchema {
        path: PathBuf,
        available: Vec<String>,
    },
    /// The tar reader rejected the file.
    #[error("cannot read tar file {}: {detail} (WebDataset shards must be uncompressed .tar files)", path.display())]
    Tar { path: PathBuf, detail: String },
    /// A file-backed source with no files.
    #[error("source `{name}` has no files (check its path or glob)")]
    NoFiles { name: String },
    /// A synthetic source without its generator parameters.
    #[error("source `{name}` is synthetic but has no generator settings")]
    MissingSynthetic { name: String },
    /// A source has more files than a location can number.
    #[error(
        "source `{name}` has {count} files; at most {} are supported",
        u32::MAX
    )]
    TooManyFiles { name: String, count: usize },
}

impl SourceError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> SourceError {
        SourceError::Io {
            path: path.into(),
            source,
        }
    }
}

/// A JSON value's type, in words, for [`RejectReason::WrongType`].
pub(crate) fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reject_code_is_listed_and_unique() {
        let samples = [
            RejectReason::InvalidJson("x".into()),
            RejectReason::InvalidUtf8,
            RejectReason::missing("caption", &["text"]),
            RejectReason::NullField("image".into()),
            RejectReason::WrongType {
                field: "text".into(),
                expected: "a string",
                found: "a number",
            },
            RejectReason::EmptyConversation,
            RejectReason::NoAssistantTurn,
            RejectReason::UnknownRole("bot".into()),
            RejectReason::PlaceholderMismatch {
                placeholders: 2,
                images: 1,
            },
            RejectReason::EmptyText("text".into()),
            RejectReason::NoImage,
            RejectReason::MissingMember("json".into()),
            RejectReason::MissingImage("a.png".into()),
            RejectReason::UnreadableImageHeader {
                image: "a.png".into(),
                detail: "d".into(),
            },
            RejectReason::RecordTooLarge { bytes: 2, limit: 1 },
        ];
        let codes: Vec<RejectCode> = samples.iter().map(RejectReason::code).collect();
        // Each reason its own code: the first codes of `RejectCode`, in order.
        assert_eq!(codes, RejectCode::ALL[..samples.len()]);
    }

    #[test]
    fn missing_field_names_the_fallbacks_it_tried() {
        let r = RejectReason::missing("caption", &["text"]);
        assert_eq!(r.to_string(), "missing field `caption` (nor `text`)");
        assert_eq!(
            RejectReason::missing("text", &[]).to_string(),
            "missing field `text`"
        );
    }

    #[test]
    fn missing_column_error_lists_what_the_file_has_and_the_fix() {
        let e = SourceError::MissingColumn {
            path: "/d/x.parquet".into(),
            wanted: "`caption` (or `text`)".into(),
            field: "caption",
            available: vec!["image".into(), "label".into()],
        };
        let msg = e.to_string();
        assert!(msg.contains("/d/x.parquet"), "{msg}");
        assert!(msg.contains("[image, label]"), "{msg}");
        assert!(msg.contains("fields.caption"), "{msg}");
    }
}
