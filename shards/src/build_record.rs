//! `build.json`: the record in a build output's `_mixtape/` folder that says whose folder it is
//! (where it lives: [`crate::layout`]).
//!
//! `mixtape build` writes it before anything else in `--out`, and a rerun resumes a folder only when
//! its record parses, carries a valid checksum and names the same recipe fingerprint and JPEG
//! encoder: a folder whose ownership cannot be proven is never reused, since its shards could belong
//! to another recipe. `verify` and `audit` read the same type, so all three agree on what a valid
//! record is.
//!
//! It also records the tokenizer the shards were encoded with (its path and blake3), so `inspect`
//! can decode a shard's tokens without being told which tokenizer to use, and refuse a file at that
//! path that is no longer the same tokenizer.
//!
//! Versions: 1 had no `tokenizer`; 2 adds it. Version 1 records are still read (their checksum
//! covers the same fields, so they verify unchanged), with no tokenizer.
//!
//! The `checksum` is the blake3 of the record's other fields (their compact JSON, in field order),
//! so any edit to a value is detected even when the result still parses; whitespace and key order
//! do not matter. Unknown keys are refused for the same reason. The record holds no timestamps, so
//! two builds of one recipe write byte-identical records.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::layout::BUILD_RECORD_FILE;
/// Version of the record's layout ([`BuildRecord::format_version`]) that this mixtape writes.
pub const BUILD_RECORD_VERSION: u32 = 2;
/// The oldest version still read: version 1, which records no tokenizer.
pub const OLDEST_READ_BUILD_RECORD_VERSION: u32 = 1;

/// What `build.json` holds (without its checksum, which [`BuildRecord::write`] adds and
/// [`BuildRecord::read`] checks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuildRecord {
    /// [`BUILD_RECORD_VERSION`].
    pub format_version: u32,
    /// The recipe's `name`.
    pub recipe: String,
    /// The recipe fingerprint every stage manifest and shard footer of the folder carries.
    pub fingerprint: String,
    /// The JPEG encoder (name and version) that wrote the folder's images: another one would mix
    /// two encoders' bytes in one stage.
    pub jpeg_encoder: String,
    /// The recipe's stage names in recipe order: each has a folder of that name once built.
    pub stages: Vec<String>,
    /// The tokenizer the shards were encoded with; `None` in version 1 records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<RecordedTokenizer>,
}

/// The tokenizer file a build encoded with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedTokenizer {
    /// Absolute path of the `tokenizer.json`, as the build found it.
    pub path: PathBuf,
    /// Hex blake3 of its bytes (the same digest the recipe fingerprint covers).
    pub blake3: String,
}

/// The record as stored: its fields plus the checksum, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format_version: u32,
    recipe: String,
    fingerprint: String,
    jpeg_encoder: String,
    stages: Vec<String>,
    #[serde(default)]
    tokenizer: Option<RecordedTokenizer>,
    checksum: String,
}

/// Why `build.json` cannot be trusted. Each names the file; the fix depends on the command, so the
/// caller adds it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildRecordError {
    #[error("{} is missing", path.display())]
    Missing { path: PathBuf },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{} is not a mixtape build record: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} has format_version {found}, this mixtape reads versions {OLDEST_READ_BUILD_RECORD_VERSION} to {BUILD_RECORD_VERSION}", path.display())]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error("{} was edited: its checksum is {stated}, its content hashes to {computed}", path.display())]
    Checksum {
        path: PathBuf,
        stated: String,
        computed: String,
    },
    #[error("{} lists the stage `{stage}`, which is not a plain folder name inside the build output", path.display())]
    UnsafeStageName { path: PathBuf, stage: String },
}

impl BuildRecord {
    pub fn new(
        recipe: impl Into<String>,
        fingerprint: impl Into<String>,
        jpeg_encoder: impl Into<String>,
        stages: Vec<String>,
    ) -> Self {
        Self {
            format_version: BUILD_RECORD_VERSION,
            recipe: recipe.into(),
            fingerprint: fingerprint.into(),
            jpeg_encoder: jpeg_encoder.into(),
            stages,
            tokenizer: None,
        }
    }

    /// Records the tokenizer file the shards were encoded with (its path and hex blake3).
    pub fn with_tokenizer(mut self, path: impl Into<PathBuf>, blake3: impl Into<String>) -> Self {
        self.tokenizer = Some(RecordedTokenizer {
            path: path.into(),
            blake3: blake3.into(),
        });
        self
    }

    /// `blake3:` and the hex blake3 of the fields' compact JSON.
    pub fn checksum(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        let content = serde_json::to_vec(self).unwrap_or_default();
        format!("blake3:{}", blake3::hash(&content).to_hex())
    }

    /// The file's bytes: pretty JSON, fields in declaration order, the checksum last.
    pub fn to_json(&self) -> String {
        // A struct, not a `serde_json::Value`: a map's key order would depend on serde_json's
        // `preserve_order` feature.
        #[derive(Serialize)]
        struct WithChecksum<'a> {
            #[serde(flatten)]
            record: &'a BuildRecord,
            checksum: String,
        }
        let stored = WithChecksum {
            record: self,
            checksum: self.checksum(),
        };
        let mut text = serde_json::to_string_pretty(&stored).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the record atomically (temporary file, fsync, rename).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), BuildRecordError> {
        let path = path.as_ref();
        crate::atomic::write_file(path, self.to_json().as_bytes()).map_err(|source| {
            BuildRecordError::Io {
                path: path.to_path_buf(),
                action: "write",
                source,
            }
        })
    }

    /// Reads and checks a record: it must exist, parse with exactly the known keys, have this
    /// version and a checksum that matches its content.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, BuildRecordError> {
        let path = path.as_ref();
        let bytes = mixtape_store::read(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => BuildRecordError::Missing {
                path: path.to_path_buf(),
            },
            _ => BuildRecordError::Io {
                path: path.to_path_buf(),
                action: "read",
                source,
            },
        })?;
        let stored: Stored =
            serde_json::from_slice(&bytes).map_err(|source| BuildRecordError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        if !(OLDEST_READ_BUILD_RECORD_VERSION..=BUILD_RECORD_VERSION)
            .contains(&stored.format_version)
        {
            return Err(BuildRecordError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: stored.format_version,
            });
        }
        let record = Self {
            format_version: stored.format_version,
            recipe: stored.recipe,
            fingerprint: stored.fingerprint,
            jpeg_encoder: stored.jpeg_encoder,
            stages: stored.stages,
            tokenizer: stored.tokenizer,
        };
        let computed = record.checksum();
        if stored.checksum != computed {
            return Err(BuildRecordError::Checksum {
                path: path.to_path_buf(),
                stated: stored.checksum,
                computed,
            });
        }
        // A checksum proves no accident, not intent: a crafted record could name `../x`, and readers
        // join stage names to the build folder.
        if let Some(stage) = record.stages.iter().find(|s| !is_plain_folder_name(s)) {
            return Err(BuildRecordError::UnsafeStageName {
                path: path.to_path_buf(),
                stage: stage.clone(),
            });
        }
        Ok(record)
    }
}

/// One normal path component: not empty, not `.` or `..`, no separator, no NUL.
fn is_plain_folder_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> BuildRecord {
        BuildRecord::new(
            "demo",
            "fp-1",
            "libjpeg-turbo 3.0",
            vec!["warmup".into(), "sft".into()],
        )
        .with_tokenizer("/models/tok.json", "ab12")
    }

    #[test]
    fn a_written_record_reads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BUILD_RECORD_FILE);
        record().write(&path).unwrap();
        assert_eq!(BuildRecord::read(&path).unwrap(), record());
        // Deterministic: the same record, the same bytes.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), record().to_json());
    }

    /// Every single change to a written record is refused, and the error names the file.
    #[test]
    fn every_edit_missing_file_or_truncation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BUILD_RECORD_FILE);
        let good = record().to_json();
        let edits: Vec<(&str, String)> = vec![
            ("fingerprint", good.replace("fp-1", "fp-2")),
            ("recipe", good.replace("\"demo\"", "\"other\"")),
            ("jpeg encoder", good.replace("3.0", "3.1")),
            ("stage list", good.replace("\"sft\"", "\"sft2\"")),
            ("checksum", good.replace("blake3:", "blake3:0")),
            ("extra key", good.replacen('{', "{\"note\": 1,", 1)),
            (
                "version",
                good.replace("\"format_version\": 2", "\"format_version\": 3"),
            ),
            (
                "tokenizer hash",
                good.replace("\"blake3\": \"ab", "\"blake3\": \"cd"),
            ),
            ("truncated", good[..good.len() / 2].to_string()),
            ("stage outside the folder", {
                let escaping =
                    BuildRecord::new("demo", "fp-1", "libjpeg-turbo 3.0", vec!["../x".into()]);
                escaping.to_json()
            }),
            ("empty", String::new()),
        ];
        for (what, text) in edits {
            std::fs::write(&path, &text).unwrap();
            let err = BuildRecord::read(&path).expect_err(what);
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{what}: {err}"
            );
        }
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            BuildRecord::read(&path),
            Err(BuildRecordError::Missing { .. })
        ));
        // Whitespace is not content.
        std::fs::write(&path, good.replace('\n', " ")).unwrap();
        assert_eq!(BuildRecord::read(&path).unwrap(), record());
    }

    /// A record written before tokenizers were recorded still reads, with no tokenizer.
    #[test]
    fn a_version_1_record_reads_back_without_a_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BUILD_RECORD_FILE);
        let mut old = record();
        old.tokenizer = None;
        old.format_version = 1;
        // Without a tokenizer the fields hash exactly as version 1 wrote them.
        std::fs::write(&path, old.to_json()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("tokenizer"), "{text}");
        let read = BuildRecord::read(&path).unwrap();
        assert_eq!(read.format_version, 1);
        assert_eq!(read.tokenizer, None);
    }
}
