//! The per-stage manifest (`manifest.json`): every shard with its hash and counts, and the stage's
//! totals per category, per source and of rejects.
//!
//! The manifest is what audits, resumption and the training-side reader trust instead of opening
//! every shard, so it is written last, atomically, and only ever describes shards that are already
//! published. Its bytes are deterministic: struct fields serialize in declaration order, maps are
//! `BTreeMap`s (sorted by key), ratios are rounded to 6 decimals, and the file is pretty-printed
//! JSON ending with a newline. Nothing in it depends on time, paths outside the stage folder, or the
//! machine.
//!
//! Readers accept unknown fields: adding a field to the manifest is a compatible change within
//! format version 1; changing or removing one is not.

use std::collections::BTreeMap;
use std::ops::AddAssign;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::FORMAT_VERSION;

pub use crate::layout::MANIFEST_FILE;

/// What a set of packed samples holds. Summed per shard, per category, per source and per stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Packed samples (a text split into `seq_len` windows counts once per window).
    pub samples: u64,
    /// Tokens, image placeholder tokens included.
    pub tokens: u64,
    /// Tokens with `loss_mask == 1`.
    pub loss_tokens: u64,
    /// Image placeholder tokens (`<|image_pad|>`).
    pub image_tokens: u64,
    /// Images.
    pub images: u64,
}

impl AddAssign<&Counts> for Counts {
    fn add_assign(&mut self, other: &Counts) {
        self.samples += other.samples;
        self.tokens += other.tokens;
        self.loss_tokens += other.loss_tokens;
        self.image_tokens += other.image_tokens;
        self.images += other.images;
    }
}

/// One published shard, as [`crate::ShardWriter::finish`] reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Index of the shard in its stage.
    pub index: u32,
    /// File name, relative to the stage folder (`shard-00000.parquet`).
    pub file: String,
    /// Rows (packed sequences).
    pub rows: u64,
    /// Parquet row groups.
    pub row_groups: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// blake3 of the whole file, lowercase hex.
    pub blake3: String,
    /// Counts over every sample of the shard.
    pub totals: Counts,
    /// `rows * seq_len`: the tokens the shard occupies once the reader pads every row.
    pub padded_capacity: u64,
    /// `tokens / padded_capacity` (0 for an empty shard), rounded to 6 decimals.
    pub efficiency: f64,
    /// Counts per category name.
    pub by_category: BTreeMap<String, Counts>,
    /// Counts per source name.
    pub by_source: BTreeMap<String, Counts>,
    /// CRC32s of every byte range the reader uses, checked as it reads them.
    pub checksums: ShardChecksums,
}

/// CRC32s (IEEE, as zlib's `crc32`) of a shard's regions, recorded at build time so that a reader
/// detects any change to the bytes it uses as it reads them, without hashing the whole file first.
///
/// A shard is, in order: the magic `PAR1` (4 bytes, compared as is), its column chunks (each row
/// group's leaf columns in schema order, contiguous: page headers, dictionary page, data pages),
/// and the tail from the end of the last column chunk to the end of the file (page indexes,
/// footer with the embedded Arrow schema, footer length, trailing `PAR1`). CRC32 detects every
/// change of up to 32 consecutive bits, so every single-byte change in any region.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardChecksums {
    /// `column_chunks[row_group][leaf]`: CRC32 of the column chunk's byte range (as the footer's
    /// column metadata gives it: from its dictionary page, else its first data page, for its
    /// compressed size).
    pub column_chunks: Vec<Vec<u32>>,
    /// Offset of the tail: the end of the last column chunk (4 in a shard without row groups).
    pub tail_offset: u64,
    /// CRC32 of the tail, from `tail_offset` to the end of the file.
    pub tail_crc32: u32,
}

/// Stage totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub rows: u64,
    pub samples: u64,
    pub tokens: u64,
    pub loss_tokens: u64,
    pub image_tokens: u64,
    pub images: u64,
    /// `rows * seq_len`.
    pub padded_capacity: u64,
    /// `tokens / padded_capacity`: the non-pad fraction of what training will see (packing
    /// efficiency), 0 for an empty stage, rounded to 6 decimals.
    pub efficiency: f64,
    /// Input records rejected, all reasons together (the sum of `rejects`).
    pub rejected: u64,
}

/// The manifest of one stage folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Shard format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    pub stage: String,
    pub seq_len: u32,
    pub recipe_fingerprint: String,
    pub totals: Totals,
    pub by_category: BTreeMap<String, Counts>,
    pub by_source: BTreeMap<String, Counts>,
    /// Rejected input records per reason code (e.g. `invalid_json`, `too_long`).
    pub rejects: BTreeMap<String, u64>,
    /// Every shard of the stage, in index order.
    pub shards: Vec<ShardInfo>,
}

/// Adds every key's counts of `from` into `into`: a stage's per-category (or per-source) counts
/// are its shards' summed this way.
pub(crate) fn add_keyed(into: &mut BTreeMap<String, Counts>, from: &BTreeMap<String, Counts>) {
    for (name, counts) in from {
        *into.entry(name.clone()).or_default() += counts;
    }
}

/// Adds `row`'s samples to a shard's counts in total, per category and per source, as its
/// manifest entry records them (the writer counts with it, `verify` recounts with it).
pub(crate) fn count_row(
    row: &crate::PackedRow,
    totals: &mut Counts,
    by_category: &mut BTreeMap<String, Counts>,
    by_source: &mut BTreeMap<String, Counts>,
) {
    row.sample_counts(|meta, counts| {
        *totals += &counts;
        *by_category.entry(meta.category.clone()).or_default() += &counts;
        *by_source.entry(meta.source.clone()).or_default() += &counts;
    });
}

/// `numerator / denominator` rounded to 6 decimals; 0 when the denominator is 0 (never NaN, which
/// JSON cannot hold).
pub fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        return 0.0;
    }
    (numerator as f64 / denominator as f64 * 1e6).round() / 1e6
}

/// Why a manifest cannot be read or written. Each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("cannot {action} manifest {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("manifest {} is not a valid mixtape manifest: {source} (it was edited or truncated: rebuild the stage)", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("manifest {} has format_version {found}, this mixtape reads version {FORMAT_VERSION}: rebuild the stage with this mixtape", path.display())]
    UnsupportedVersion { path: PathBuf, found: u32 },
    /// A manifest written before shards carried checksums: its shards cannot be checked as read.
    #[error("manifest {} lists {file} without checksums (it was built by an older mixtape, whose shards cannot be checked as they are read): rebuild the stage with this mixtape", path.display())]
    NoChecksums { path: PathBuf, file: String },
}

impl Manifest {
    /// The manifest of a stage made of `shards` (sorted by index here), with the stage's rejects.
    pub fn new(
        stage: impl Into<String>,
        seq_len: u32,
        recipe_fingerprint: impl Into<String>,
        mut shards: Vec<ShardInfo>,
        rejects: BTreeMap<String, u64>,
    ) -> Self {
        shards.sort_by_key(|s| s.index);
        let mut totals = Totals::default();
        let mut all = Counts::default();
        let mut by_category: BTreeMap<String, Counts> = BTreeMap::new();
        let mut by_source: BTreeMap<String, Counts> = BTreeMap::new();
        for shard in &shards {
            totals.rows += shard.rows;
            all += &shard.totals;
            add_keyed(&mut by_category, &shard.by_category);
            add_keyed(&mut by_source, &shard.by_source);
        }
        totals.samples = all.samples;
        totals.tokens = all.tokens;
        totals.loss_tokens = all.loss_tokens;
        totals.image_tokens = all.image_tokens;
        totals.images = all.images;
        totals.padded_capacity = totals.rows * u64::from(seq_len);
        totals.efficiency = ratio(totals.tokens, totals.padded_capacity);
        totals.rejected = rejects.values().sum();
        Self {
            format_version: FORMAT_VERSION,
            stage: stage.into(),
            seq_len,
            recipe_fingerprint: recipe_fingerprint.into(),
            totals,
            by_category,
            by_source,
            rejects,
            shards,
        }
    }

    /// The exact bytes [`Manifest::write`] stores: pretty JSON and a trailing newline.
    pub fn to_json(&self) -> String {
        // Serializing plain structs, maps with string keys and finite floats cannot fail.
        let mut json = serde_json::to_string_pretty(self).unwrap_or_default();
        json.push('\n');
        json
    }

    /// Writes the manifest to `path` (normally [`crate::layout::StageLayout::manifest`]) atomically.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), ManifestError> {
        let path = path.as_ref();
        crate::atomic::write_file(path, self.to_json().as_bytes()).map_err(|source| {
            ManifestError::Io {
                path: path.to_path_buf(),
                action: "write",
                source,
            }
        })
    }

    /// Reads a manifest written by [`Manifest::write`], refusing other format versions.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let path = path.as_ref();
        let bytes = mixtape_store::read(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
        // Check the version before the full shape, so a future manifest says "version", not "field".
        // Likewise a manifest of an older build says "checksums", not "missing field".
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
            #[serde(default)]
            shards: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            #[serde(default)]
            file: String,
            #[serde(default)]
            checksums: Option<serde::de::IgnoredAny>,
        }
        let json = |source| ManifestError::Json {
            path: path.to_path_buf(),
            source,
        };
        let Version {
            format_version,
            shards,
        } = serde_json::from_slice(&bytes).map_err(json)?;
        if format_version != FORMAT_VERSION {
            return Err(ManifestError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: format_version,
            });
        }
        if let Some(entry) = shards.into_iter().find(|e| e.checksums.is_none()) {
            return Err(ManifestError::NoChecksums {
                path: path.to_path_buf(),
                file: entry.file,
            });
        }
        serde_json::from_slice(&bytes).map_err(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(samples: u64, tokens: u64) -> Counts {
        Counts {
            samples,
            tokens,
            loss_tokens: tokens / 2,
            image_tokens: tokens / 4,
            images: samples / 2,
        }
    }

    fn shard(index: u32, rows: u64, by: &[(&str, &str, Counts)]) -> ShardInfo {
        let mut info = ShardInfo {
            index,
            file: format!("shard-{index:05}.parquet"),
            rows,
            row_groups: 1,
            bytes: 1000 + u64::from(index),
            blake3: format!("{index:064x}"),
            totals: Counts::default(),
            padded_capacity: rows * 100,
            efficiency: 0.0,
            by_category: BTreeMap::new(),
            by_source: BTreeMap::new(),
            checksums: ShardChecksums {
                column_chunks: vec![vec![7, 8]],
                tail_offset: 40,
                tail_crc32: 9,
            },
        };
        for (category, source, c) in by {
            info.totals += c;
            *info.by_category.entry(category.to_string()).or_default() += c;
            *info.by_source.entry(source.to_string()).or_default() += c;
        }
        info.efficiency = ratio(info.totals.tokens, info.padded_capacity);
        info
    }

    fn manifest() -> Manifest {
        let shards = vec![
            shard(1, 2, &[("vqa", "llava", counts(3, 150))]),
            shard(
                0,
                3,
                &[
                    ("caption", "laion", counts(4, 200)),
                    ("vqa", "llava", counts(2, 90)),
                ],
            ),
        ];
        let rejects =
            BTreeMap::from([("too_long".to_string(), 2), ("invalid_json".to_string(), 1)]);
        Manifest::new("sft", 100, "fp-123", shards, rejects)
    }

    #[test]
    fn totals_sum_the_shards_per_category_and_per_source() {
        let m = manifest();
        assert_eq!(m.shards.iter().map(|s| s.index).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(m.totals.rows, 5);
        assert_eq!(m.totals.samples, 9);
        assert_eq!(m.totals.tokens, 440);
        assert_eq!(m.totals.padded_capacity, 500);
        assert_eq!(m.totals.efficiency, 0.88);
        assert_eq!(m.totals.rejected, 3);
        let mut vqa = counts(3, 150);
        vqa += &counts(2, 90);
        assert_eq!(m.by_category["vqa"], vqa);
        assert_eq!(m.by_source["laion"], counts(4, 200));
    }

    #[test]
    fn manifest_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let m = manifest();
        m.write(&path).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), m);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), m.to_json());
    }

    #[test]
    fn the_json_is_pretty_stable_and_ends_with_a_newline() {
        let json = manifest().to_json();
        assert!(json.ends_with("}\n"));
        assert_eq!(json, manifest().to_json());
        let keys: Vec<&str> = json
            .lines()
            .filter(|l| l.starts_with("  \""))
            .map(|l| l.trim_start().split('"').nth(1).unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "format_version",
                "stage",
                "seq_len",
                "recipe_fingerprint",
                "totals",
                "by_category",
                "by_source",
                "rejects",
                "shards"
            ]
        );
        // Maps are sorted by key whatever the insertion order.
        assert!(json.find("\"invalid_json\"").unwrap() < json.find("\"too_long\"").unwrap());
    }

    #[test]
    fn an_empty_stage_has_zero_efficiency_not_nan() {
        let m = Manifest::new("warmup", 4096, "fp", Vec::new(), BTreeMap::new());
        assert_eq!(m.totals.efficiency, 0.0);
        assert!(m.to_json().contains("\"efficiency\": 0.0"));
    }

    #[test]
    fn reading_names_the_file_and_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);

        let err = Manifest::read(&path).unwrap_err();
        assert!(matches!(err, ManifestError::Io { action: "read", .. }));
        assert!(err.to_string().contains("manifest.json"), "{err}");

        std::fs::write(&path, "{\"format_version\": 1, \"stage\": ").unwrap();
        let err = Manifest::read(&path).unwrap_err();
        assert!(matches!(err, ManifestError::Json { .. }), "{err}");
        assert!(err.to_string().contains("manifest.json"), "{err}");

        std::fs::write(
            &path,
            manifest()
                .to_json()
                .replace("\"format_version\": 1", "\"format_version\": 2"),
        )
        .unwrap();
        let err = Manifest::read(&path).unwrap_err();
        assert!(
            matches!(err, ManifestError::UnsupportedVersion { found: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_manifest_of_an_older_build_without_checksums_is_refused_with_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let mut json: serde_json::Value = serde_json::from_str(&manifest().to_json()).unwrap();
        json["shards"][1]
            .as_object_mut()
            .unwrap()
            .remove("checksums");
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        let err = Manifest::read(&path).unwrap_err();
        assert!(
            matches!(&err, ManifestError::NoChecksums { file, .. } if file == "shard-00001.parquet"),
            "{err}"
        );
        assert!(err.to_string().contains("rebuild the stage"), "{err}");
    }

    #[test]
    fn unknown_fields_are_accepted_for_forward_compatibility() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        std::fs::write(
            &path,
            manifest()
                .to_json()
                .replacen('{', "{\n  \"added_later\": true,", 1),
        )
        .unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), manifest());
    }
}
