//! The length index: per valid sample of a source, its token counts and image sizes.
//!
//! Planning needs every sample's length on every basis, which means really tokenizing the source.
//! That is the slow part of `plan`, so the index is cached on disk under a key derived from the content
//! hashes of the source's files, the tokenizer file and the source's settings: a second plan over
//! unchanged inputs reads a few arrays instead of tokenizing. Image pads are not stored, only image
//! sizes, because the pad count depends on each stage's image policy.
//!
//! Cache files are written atomically ([`mixtape_store::write`]: a temporary renamed into place, or
//! one PUT when the cache folder is a bucket, `--cache-dir s3://...`), so a killed plan never leaves
//! a torn entry; an unreadable entry is treated as a miss and rebuilt.
//!
//! A source is indexed and cached in parts ([`source_parts`]): one per file (a synthetic source is
//! one part), each keyed on its own file, so editing one file re-measures that file only, and
//! `mixtape index --task` splits the measuring of a recipe by file across machines that share the
//! cache. A source's index is its parts' in file order, as if measured in one pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::reject::RejectCode;
use crate::sample::SampleKind;
use crate::source::spec::{SourceFormat, SourceSpec};
use crate::source::{self, Record, SourceError};
use crate::template::{ChatStyle, Encoder, TextLengths};

/// Bumped whenever the index layout or anything that changes measured lengths (template, readers,
/// synthetic generators) changes, so stale cache entries are never reused.
/// 3: image probing applies the decoder's acceptance rule (`mixtape_image::check`).
/// (Entries became one per file of a source, not one per source, without a bump: an entry's
/// layout and lengths are unchanged, a one-file source's key is the same as before, and the
/// version counts in every plan's fingerprint.)
pub const INDEX_VERSION: u32 = 3;
const MAGIC: &[u8; 8] = b"MXIDX\0\0\x01";
/// Records tokenized per parallel batch: large enough to amortise rayon, small enough to keep memory
/// flat while streaming.
const BATCH: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A file's identity for fingerprints and cache keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Path relative to the recipe's folder (with `/` separators), so digests are portable.
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
}

impl FileDigest {
    pub fn of(path: &Path, base: &Path) -> Result<Self, IndexError> {
        let io = |source| IndexError::Io {
            path: path.to_path_buf(),
            source,
        };
        // A source on object storage is hashed (and later read) from its downloaded copy.
        let local = mixtape_store::local_copy(path).map_err(io)?;
        let hash = mixtape_shards::hash_file(&local).map_err(io)?;
        Ok(Self {
            path: relative_path(path, base),
            bytes: hash.bytes,
            blake3: hash.blake3,
        })
    }
}

/// `path` relative to `base` when it lies beneath it (else as given), with `/` separators. An empty
/// `base` (the folder of a recipe named without one, `recipe.yaml`) is the current folder, so the
/// result does not depend on where the project lives.
pub fn relative_path(path: &Path, base: &Path) -> String {
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let base = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
    let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let rel = full
        .strip_prefix(&base)
        .map(Path::to_path_buf)
        .unwrap_or(full);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A record that did not become a sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexReject {
    /// `file:line`, `file row N`, ... as the reader shows it.
    pub location: String,
    /// Why (`invalid_json`, `missing_image`, ...).
    pub code: RejectCode,
    pub message: String,
}

/// Lengths of every valid sample of one source, in record order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceIndex {
    /// Records read, valid or not.
    pub records: u64,
    pub files: Vec<FileDigest>,
    pub rejects: Vec<IndexReject>,
    /// Ordinal of each sample's record in the source (files in order, records in file order, rejects
    /// counted).
    #[serde(skip)]
    pub record_of: Vec<u64>,
    /// 1 when the sample is long text (split into windows rather than rejected when too long).
    #[serde(skip)]
    pub is_text: Vec<u8>,
    #[serde(skip)]
    pub text_tokens: Vec<u32>,
    #[serde(skip)]
    pub loss_tokens: Vec<u32>,
    /// `image_start[i]..image_start[i + 1]` indexes `image_sizes` for sample `i`.
    #[serde(skip)]
    pub image_start: Vec<u32>,
    /// (height, width) of each image.
    #[serde(skip)]
    pub image_sizes: Vec<(u32, u32)>,
}

impl SourceIndex {
    pub fn samples(&self) -> usize {
        self.text_tokens.len()
    }

    pub fn images(&self, sample: usize) -> &[(u32, u32)] {
        &self.image_sizes[self.image_start[sample] as usize..self.image_start[sample + 1] as usize]
    }

    /// Reject counts by reason code.
    pub fn reject_counts(&self) -> BTreeMap<RejectCode, u64> {
        let mut counts = BTreeMap::new();
        for r in &self.rejects {
            *counts.entry(r.code).or_insert(0) += 1;
        }
        counts
    }

    /// Appends the index of the source's next part, whose records follow this one's.
    fn append(&mut self, part: SourceIndex) {
        let (records, images) = (self.records, self.image_sizes.len() as u32);
        self.records += part.records;
        self.rejects.extend(part.rejects);
        self.record_of
            .extend(part.record_of.iter().map(|r| r + records));
        self.is_text.extend(part.is_text);
        self.text_tokens.extend(part.text_tokens);
        self.loss_tokens.extend(part.loss_tokens);
        self.image_start
            .extend(part.image_start.iter().skip(1).map(|s| s + images));
        self.image_sizes.extend(part.image_sizes);
    }

    fn push_sample(
        &mut self,
        record: u64,
        kind: SampleKind,
        text: u32,
        loss: u32,
        images: &[(u32, u32)],
    ) {
        if self.image_start.is_empty() {
            self.image_start.push(0);
        }
        self.record_of.push(record);
        self.is_text.push(u8::from(kind == SampleKind::Text));
        self.text_tokens.push(text);
        self.loss_tokens.push(loss);
        self.image_sizes.extend_from_slice(images);
        self.image_start.push(self.image_sizes.len() as u32);
    }
}

/// Where index entries are cached; `None` disables caching.
#[derive(Clone, Debug)]
pub struct IndexCache {
    pub dir: Option<PathBuf>,
}

impl IndexCache {
    /// `$MIXTAPE_CACHE_DIR`, else `$XDG_CACHE_HOME/mixtape`, else `~/.cache/mixtape`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("MIXTAPE_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("mixtape"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("mixtape"))
    }
}

/// Builds (or loads from cache) the index of one source.
pub fn index_source(
    spec: &SourceSpec,
    encoder: &Encoder,
    tokenizer: &FileDigest,
    recipe_dir: &Path,
    cache: &IndexCache,
) -> Result<SourceIndex, IndexError> {
    index_source_with_progress(spec, encoder, tokenizer, recipe_dir, cache, &|_| {})
}

/// Progress of indexing one source, for a progress display: tokenizing a large source takes
/// seconds to minutes, and the number of records is not known until it is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexProgress {
    /// `records` records of `source` read and measured so far (reported once per batch).
    Measured { source: String, records: u64 },
    /// `source` is indexed; `cached` when its index came from the cache (nothing was measured).
    Done {
        source: String,
        records: u64,
        cached: bool,
    },
}

/// [`index_source`], reporting progress as batches are measured.
pub fn index_source_with_progress(
    spec: &SourceSpec,
    encoder: &Encoder,
    tokenizer: &FileDigest,
    recipe_dir: &Path,
    cache: &IndexCache,
    progress: &(dyn Fn(IndexProgress) + Sync),
) -> Result<SourceIndex, IndexError> {
    let files = source_files(spec, recipe_dir)?;
    let mut index = SourceIndex {
        files: files.clone(),
        image_start: vec![0],
        ..SourceIndex::default()
    };
    let mut cached = true;
    for part in 0..source_parts(spec) {
        let before = index.records;
        let (piece, hit) = index_part(
            spec,
            part,
            &files,
            encoder,
            tokenizer,
            recipe_dir,
            cache,
            &|records| {
                progress(IndexProgress::Measured {
                    source: spec.name.clone(),
                    records: before + records,
                })
            },
        )?;
        cached &= hit;
        index.append(piece);
    }
    progress(IndexProgress::Done {
        source: spec.name.clone(),
        records: index.records,
        cached,
    });
    Ok(index)
}

/// The parts a source is indexed and cached in: one per file, or 1 for a synthetic source.
pub fn source_parts(spec: &SourceSpec) -> usize {
    if spec.format == SourceFormat::Synthetic {
        1
    } else {
        spec.files.len()
    }
}

/// The digests of a source's files (none for a synthetic source); a file source without files is
/// an error.
pub fn source_files(spec: &SourceSpec, recipe_dir: &Path) -> Result<Vec<FileDigest>, IndexError> {
    if spec.format != SourceFormat::Synthetic && spec.files.is_empty() {
        return Err(SourceError::NoFiles {
            name: spec.name.clone(),
        }
        .into());
    }
    spec.files
        .iter()
        .map(|f| FileDigest::of(f, recipe_dir))
        .collect()
}

/// Indexes part `part` of a source (its file `part`; the whole of a synthetic source), or loads it
/// from the cache; `files` are [`source_files`]'. Returns the part's index, its records numbered
/// from 0, and whether it came from the cache. `measured` hears the records measured so far.
#[allow(clippy::too_many_arguments)]
pub fn index_part(
    spec: &SourceSpec,
    part: usize,
    files: &[FileDigest],
    encoder: &Encoder,
    tokenizer: &FileDigest,
    recipe_dir: &Path,
    cache: &IndexCache,
    measured: &dyn Fn(u64),
) -> Result<(SourceIndex, bool), IndexError> {
    let file = files.get(part);
    let key = cache_key(
        spec,
        file.map(|_| &spec.files[part]),
        file,
        tokenizer,
        recipe_dir,
    );
    let entry = cache
        .dir
        .as_ref()
        .map(|d| d.join("index").join(format!("{key}.idx")));
    if let Some(path) = &entry
        && let Some(index) = read_entry(path)
    {
        return Ok((index, true));
    }
    let mut index = SourceIndex {
        files: file.cloned().into_iter().collect(),
        image_start: vec![0],
        ..SourceIndex::default()
    };
    let mut records = source::read_source_file(spec, part)?;
    let next_batch = |records: &mut source::Records| -> Result<Vec<Record>, IndexError> {
        let mut batch = Vec::with_capacity(BATCH);
        for record in records.take(BATCH) {
            batch.push(record?);
        }
        Ok(batch)
    };
    // Reading (parsing, probing image headers) is sequential and measuring (tokenizing) is
    // parallel: the next batch is read while the current one is measured.
    let mut batch = next_batch(&mut records)?;
    while !batch.is_empty() {
        let (results, next) = rayon::join(
            || measure_batch(&batch, encoder, &spec.chat),
            || next_batch(&mut records),
        );
        add_batch(&mut index, batch, results);
        measured(index.records);
        batch = next?;
    }
    if let Some(path) = &entry {
        // The cache is an optimisation: failing to write it must not fail the plan.
        let _ = write_entry(path, &index);
    }
    Ok((index, false))
}

/// A record's kind, lengths and image sizes, or why it is rejected (code, message).
type Measured = Result<(SampleKind, TextLengths, Vec<(u32, u32)>), (RejectCode, String)>;

fn measure_batch(batch: &[Record], encoder: &Encoder, style: &ChatStyle) -> Vec<Measured> {
    batch
        .par_iter()
        .map(|record| match &record.sample {
            Ok(sample) => {
                let sizes: Option<Vec<(u32, u32)>> = sample.images.iter().map(|i| i.size).collect();
                let Some(sizes) = sizes else {
                    return Err((
                        RejectCode::UnreadableImageHeader,
                        "image size unknown".to_string(),
                    ));
                };
                encoder
                    .measure(sample, style)
                    .map(|len| (sample.kind, len, sizes))
                    .map_err(|e| (RejectCode::Template, e.to_string()))
            }
            Err(reason) => Err((reason.code(), reason.to_string())),
        })
        .collect()
}

fn add_batch(index: &mut SourceIndex, batch: Vec<Record>, measured: Vec<Measured>) {
    for (record, result) in batch.into_iter().zip(measured) {
        // The ordinal of a record in the whole source (files in order, records in file order): the
        // builder re-reads the source and counts the same way to find drawn samples.
        let ordinal = index.records;
        index.records += 1;
        match result {
            Ok((kind, len, sizes)) => {
                index.push_sample(ordinal, kind, len.text_tokens, len.loss_tokens, &sizes)
            }
            Err((code, message)) => index.rejects.push(IndexReject {
                location: record.location.to_string(),
                code,
                message,
            }),
        }
    }
}

fn cache_key(
    spec: &SourceSpec,
    path: Option<&PathBuf>,
    file: Option<&FileDigest>,
    tokenizer: &FileDigest,
    recipe_dir: &Path,
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&INDEX_VERSION.to_le_bytes());
    h.update(
        format!(
            "{:?}|{:?}|{:?}|{:?}",
            spec.format, spec.schema, spec.fields, spec.synthetic
        )
        .as_bytes(),
    );
    // The record cap decides which records are rejected as `record_too_large`.
    h.update(&spec.max_record_bytes.to_le_bytes());
    // A system prompt and the turn-end loss change every conversation's lengths. Hashed only when
    // set, so the cache entries of sources that leave them alone stay valid.
    if spec.chat != ChatStyle::default() {
        h.update(format!("{:?}", spec.chat).as_bytes());
    }
    if let Some(root) = &spec.image_root {
        h.update(relative_path(root, recipe_dir).as_bytes());
    }
    // Image paths resolve against the file's folder, and reject locations name the file: where
    // the file is matters, as well as what it holds.
    if let Some(path) = path {
        h.update(path.to_string_lossy().as_bytes());
    }
    if let Some(file) = file {
        h.update(file.blake3.as_bytes());
    }
    h.update(tokenizer.blake3.as_bytes());
    h.finalize().to_hex()[..32].to_string()
}

fn write_entry(path: &Path, index: &SourceIndex) -> std::io::Result<()> {
    let header = serde_json::to_vec(index).map_err(std::io::Error::other)?;
    let mut buf = Vec::with_capacity(header.len() + index.samples() * 24);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(header.len() as u64).to_le_bytes());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(&(index.samples() as u64).to_le_bytes());
    buf.extend_from_slice(&(index.image_sizes.len() as u64).to_le_bytes());
    index
        .record_of
        .iter()
        .for_each(|v| buf.extend_from_slice(&v.to_le_bytes()));
    buf.extend_from_slice(&index.is_text);
    for arr in [&index.text_tokens, &index.loss_tokens, &index.image_start] {
        arr.iter()
            .for_each(|v| buf.extend_from_slice(&v.to_le_bytes()));
    }
    for (h, w) in &index.image_sizes {
        buf.extend_from_slice(&h.to_le_bytes());
        buf.extend_from_slice(&w.to_le_bytes());
    }
    // A file written atomically, or an object: a cache folder may be shared storage or a bucket.
    mixtape_store::write(path, buf.into())
}

fn read_entry(path: &Path) -> Option<SourceIndex> {
    let bytes = mixtape_store::read(path).ok()?;
    let mut cur = Cursor {
        bytes: &bytes,
        pos: 0,
    };
    if cur.take(8)? != MAGIC {
        return None;
    }
    let header_len = cur.u64()? as usize;
    let mut index: SourceIndex = serde_json::from_slice(cur.take(header_len)?).ok()?;
    let samples = cur.u64()? as usize;
    let images = cur.u64()? as usize;
    index.record_of = (0..samples).map(|_| cur.u64()).collect::<Option<_>>()?;
    index.is_text = cur.take(samples)?.to_vec();
    index.text_tokens = (0..samples).map(|_| cur.u32()).collect::<Option<_>>()?;
    index.loss_tokens = (0..samples).map(|_| cur.u32()).collect::<Option<_>>()?;
    index.image_start = (0..=samples).map(|_| cur.u32()).collect::<Option<_>>()?;
    index.image_sizes = (0..images)
        .map(|_| Some((cur.u32()?, cur.u32()?)))
        .collect::<Option<_>>()?;
    (cur.pos == bytes.len()).then_some(index)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(out)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}
