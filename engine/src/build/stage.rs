//! Building one stage: read the drawn records, encode them in parallel, pack, write shards.
//!
//! A stage's draws are cut into shards of a fixed number of draws, decided up front from the plan's
//! expected size, so every shard is an independent unit: it is packed on its own (the packer flushes
//! at the shard's end), written under a temporary name, renamed, and then a hidden sidecar
//! (`.shard-NNNNN.done.json`, holding the shard's info and rejects) marks it done. A rerun after a
//! crash skips every shard with a sidecar, reading past its records without encoding them, and
//! rebuilds the rest; since every shard is a pure function of its draws, the result is byte-identical
//! to an uninterrupted build.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use mixtape_shards::{Manifest, PackedRow, PackedSampleMeta, ShardInfo, ShardMeta, ShardOptions, ShardWriter};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::draws::{Draw, SourceDraws, interleave, stage_draws};
use super::encode::{EncodeReject, EncodedSample, cut, encode_sample};
use super::{BuildError, BuildOptions, Progress};
use crate::index::SourceIndex;
use crate::pack::{PackItem, Packer, PackerConfig};
use crate::plan::{Plan, StagePlan};
use crate::recipe::{Recipe, Stage};
use crate::source::{Record, Records, SampleKeys, read_source};
use crate::template::Encoder;

/// Records fetched and encoded together: enough to keep every core busy, few enough that the encoded
/// batch (images included) stays small.
const ENCODE_BATCH: usize = 256;
/// Bytes a packed token costs in a shard after zstd (ids, mask, positions), for sizing shards.
const EST_BYTES_PER_TOKEN: f64 = 3.0;
/// Bytes an image pixel costs once JPEG-encoded (about 1.2 bits per pixel at quality 90).
const EST_BYTES_PER_PIXEL: f64 = 0.15;

/// A record that did not make it into a shard, as written to `rejects.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectEntry {
    pub source: String,
    pub location: String,
    pub reason: String,
    pub message: String,
}

/// What a finished shard leaves beside itself.
#[derive(Debug, Serialize, Deserialize)]
struct ShardDone {
    info: ShardInfo,
    rejects: Vec<RejectEntry>,
}

/// Result of a stage.
#[derive(Debug)]
pub struct StageOutcome {
    pub manifest: Manifest,
    pub rejects: Vec<RejectEntry>,
    pub shards_written: usize,
    pub shards_reused: usize,
    pub drawn: u64,
}

pub(super) struct StageContext<'a> {
    pub recipe: &'a Recipe,
    pub plan: &'a Plan,
    pub stage: &'a Stage,
    pub stage_plan: &'a StagePlan,
    pub indexes: &'a BTreeMap<String, SourceIndex>,
    pub encoder: &'a Encoder,
    pub options: &'a BuildOptions,
    /// The `jobs` encoding threads; the calling thread reads, packs and writes beside them.
    pub pool: &'a rayon::ThreadPool,
    pub dir: PathBuf,
}

pub(super) fn run(ctx: &StageContext<'_>, progress: &(dyn Fn(Progress) + Sync)) -> Result<StageOutcome, BuildError> {
    let names: Vec<&str> = ctx.recipe.sources.iter().map(|s| s.name.as_str()).collect();
    let indexes: Vec<&SourceIndex> = names.iter().map(|n| &ctx.indexes[*n]).collect();
    let draws = stage_draws(ctx.plan.seed, ctx.stage_plan, &names, &indexes);
    let order = interleave(&draws);
    let per_shard = draws_per_shard(ctx.stage_plan, order.len(), ctx.options.target_shard_bytes);
    std::fs::create_dir_all(&ctx.dir).map_err(|e| BuildError::io(&ctx.dir, e))?;

    let mut cursors: Vec<SourceCursor<'_>> = draws
        .iter()
        .map(|d| {
            let spec = &ctx.recipe.sources[d.source];
            SourceCursor { spec, keys: SampleKeys::new(spec), reader: None, epoch: 0, next_ordinal: 0 }
        })
        .collect();
    progress(Progress::StageStart { stage: ctx.stage.name.clone(), draws: order.len() as u64 });

    let mut infos = Vec::new();
    let mut rejects = Vec::new();
    let (mut written, mut reused) = (0, 0);
    for (k, chunk) in order.chunks(per_shard.max(1)).enumerate() {
        let index = k as u32;
        let done_path = ctx.dir.join(format!(".shard-{index:05}.done.json"));
        if let Some(done) = read_done(&done_path, &ctx.dir) {
            for &(slot, j) in chunk {
                cursors[slot as usize].skip(&draws[slot as usize].draws[j as usize])?;
            }
            progress(Progress::Advance { draws: chunk.len() as u64, tokens: done.info.totals.tokens });
            rejects.extend(done.rejects);
            infos.push(done.info);
            reused += 1;
            continue;
        }
        let done = write_shard(ctx, index, chunk, &draws, &mut cursors, progress)?;
        write_done(&done_path, &done)?;
        rejects.extend(done.rejects);
        infos.push(done.info);
        written += 1;
    }

    let mut reject_counts = BTreeMap::new();
    for r in &rejects {
        *reject_counts.entry(r.reason.clone()).or_insert(0u64) += 1;
    }
    let manifest = Manifest::new(&ctx.stage.name, ctx.stage.seq_len, &ctx.plan.fingerprint, infos, reject_counts);
    Ok(StageOutcome { manifest, rejects, shards_written: written, shards_reused: reused, drawn: order.len() as u64 })
}

/// Draws per shard so that shards come out near the target size (from the plan's expectations).
fn draws_per_shard(stage: &StagePlan, draws: usize, target_bytes: u64) -> usize {
    let image_pixels = stage.expected.image_tokens as f64 * 784.0;
    let estimate = stage.expected.tokens as f64 * EST_BYTES_PER_TOKEN + image_pixels * EST_BYTES_PER_PIXEL;
    let shards = (estimate / target_bytes.max(1) as f64).ceil().max(1.0) as usize;
    draws.div_ceil(shards).max(1)
}

/// One packed item: a whole sample, or one window of a long text.
struct Item {
    sample: EncodedSample,
    meta: PackedSampleMeta,
}

/// A batch of fetched records: (source slot, record, sample key).
/// (source slot, record, key, tokens to keep when the plan cuts this draw).
type FetchedBatch = Vec<(usize, Record, String, Option<u64>)>;
type EncodedBatch = Vec<Result<EncodedSample, EncodeReject>>;

/// Builds one shard as a three-step pipeline over batches of `ENCODE_BATCH` draws: while the `jobs`
/// threads of the pool encode batch `k`, the calling thread packs and writes batch `k - 1` and reads batch `k + 1`, so the
/// sequential steps (source I/O and parsing, packing, Parquet encoding) hide behind the parallel one.
/// Every step still sees the batches in draw order, so the shard is the same for any thread count.
fn write_shard(
    ctx: &StageContext<'_>,
    index: u32,
    chunk: &[(u32, u32)],
    draws: &[SourceDraws],
    cursors: &mut [SourceCursor<'_>],
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<ShardDone, BuildError> {
    let stage = ctx.stage;
    let meta = ShardMeta {
        recipe_fingerprint: ctx.plan.fingerprint.clone(),
        stage: stage.name.clone(),
        seq_len: stage.seq_len,
        shard_index: index,
    };
    let options = ShardOptions::default().with_image_pad_token(ctx.encoder.special().image_pad as i32);
    let writer = ShardWriter::try_new(&ctx.dir, meta, options).map_err(BuildError::Write)?;
    let packer = Packer::try_new(PackerConfig {
        seq_len: stage.seq_len,
        buffer: stage.pack.buffer as usize,
        max_image_tokens: stage.pack.max_image_tokens,
        algorithm: stage.pack.algorithm,
    })
    .map_err(|e| BuildError::Pack(e.to_string()))?;
    let mut shard = ShardAssembly { writer, packer, pending: HashMap::new(), next_id: 0, rejects: Vec::new() };

    let mut batches = chunk.chunks(ENCODE_BATCH);
    let mut fetched = batches.next().map(|batch| fetch_batch(batch, draws, cursors)).transpose()?;
    let mut encoded: Option<(FetchedBatch, EncodedBatch)> = None;
    while fetched.is_some() || encoded.is_some() {
        let to_encode = fetched.take();
        let to_write = encoded.take();
        let mut results: Option<EncodedBatch> = None;
        let mut written = Ok(());
        let mut next = None;
        ctx.pool.in_place_scope(|scope| {
            if let Some(records) = &to_encode {
                let results = &mut results;
                scope.spawn(move |_| *results = Some(encode_batch(ctx, records)));
            }
            if let Some((records, results)) = to_write {
                written = shard.absorb(ctx, cursors, records, results, progress);
            }
            if written.is_ok() {
                next = batches.next().map(|batch| fetch_batch(batch, draws, cursors));
            }
        });
        written?;
        fetched = next.transpose()?;
        encoded = to_encode.zip(results);
    }
    // In the pool: the writer encodes the last row group's columns in parallel on it.
    ctx.pool.install(|| shard.finish())
}

fn fetch_batch(
    batch: &[(u32, u32)],
    draws: &[SourceDraws],
    cursors: &mut [SourceCursor<'_>],
) -> Result<FetchedBatch, BuildError> {
    let mut records = Vec::with_capacity(batch.len());
    for &(slot, j) in batch {
        let cursor = &mut cursors[slot as usize];
        let record = cursor.fetch(&draws[slot as usize].draws[j as usize])?;
        let key = cursor.keys.key(&record.location);
        records.push((slot as usize, record, key, draws[slot as usize].cut_at(j as usize)));
    }
    Ok(records)
}

fn encode_batch(ctx: &StageContext<'_>, records: &FetchedBatch) -> EncodedBatch {
    let stage = ctx.stage;
    records
        .par_iter()
        // One record per task: records differ in cost by 50x (image sizes), and rayon's default
        // splitting leaves leaf runs of a quarter of the batch, so one thread finished a batch alone
        // for up to 110 ms while the other idled (perf timeline of the e2e bench).
        .with_max_len(1)
        .map(|(_, record, _, keep)| match &record.sample {
            Ok(sample) => encode_sample(sample, ctx.encoder, &stage.image, stage.seq_len).map(|s| cut(s, *keep)),
            Err(reason) => Err(EncodeReject { code: reason.code(), message: reason.to_string() }),
        })
        .collect()
}

/// The sequential end of a shard's pipeline: rejects, packing and the Parquet writer.
struct ShardAssembly {
    writer: ShardWriter,
    packer: Packer,
    pending: HashMap<u64, Item>,
    next_id: u64,
    rejects: Vec<RejectEntry>,
}

impl ShardAssembly {
    fn absorb(
        &mut self,
        ctx: &StageContext<'_>,
        cursors: &[SourceCursor<'_>],
        records: FetchedBatch,
        results: EncodedBatch,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<(), BuildError> {
        let stage = ctx.stage;
        let draws = records.len() as u64;
        let mut tokens = 0u64;
        for ((slot, record, key, _), result) in records.into_iter().zip(results) {
            let spec = cursors[slot].spec;
            match result {
                Err(r) => self.rejects.push(RejectEntry {
                    source: spec.name.clone(),
                    location: record.location.to_string(),
                    reason: r.code.to_string(),
                    message: r.message,
                }),
                Ok(sample) => {
                    tokens += sample.ids.len() as u64;
                    for (window, item_sample) in windows(sample, stage).into_iter().enumerate() {
                        let key = if window == 0 { key.clone() } else { format!("{key}#w{window}") };
                        let loss_tokens = item_sample.loss_mask.iter().filter(|&&m| m != 0).count() as u32;
                        let item = PackItem {
                            id: self.next_id,
                            tokens: item_sample.ids.len() as u32,
                            image_tokens: item_sample.image_tokens(),
                        };
                        let meta = PackedSampleMeta { source: spec.name.clone(), category: spec.category.clone(), key, loss_tokens };
                        self.pending.insert(self.next_id, Item { sample: item_sample, meta });
                        self.next_id += 1;
                        for pack in self.packer.push(item).map_err(|e| BuildError::Pack(e.to_string()))? {
                            self.writer.write(assemble(&pack.items, &mut self.pending)).map_err(BuildError::Write)?;
                        }
                    }
                }
            }
        }
        progress(Progress::Advance { draws, tokens });
        Ok(())
    }

    fn finish(mut self) -> Result<ShardDone, BuildError> {
        for pack in self.packer.finish() {
            self.writer.write(assemble(&pack.items, &mut self.pending)).map_err(BuildError::Write)?;
        }
        let info = self.writer.finish().map_err(BuildError::Write)?;
        Ok(ShardDone { info, rejects: self.rejects })
    }
}

/// Long text over `seq_len` becomes consecutive `seq_len` windows (when the stage allows it).
fn windows(sample: EncodedSample, stage: &Stage) -> Vec<EncodedSample> {
    let seq_len = stage.seq_len as usize;
    if sample.ids.len() <= seq_len || !sample.is_text || !stage.pack.split_long_text {
        return vec![sample];
    }
    sample
        .ids
        .chunks(seq_len)
        .zip(sample.loss_mask.chunks(seq_len))
        .map(|(ids, mask)| EncodedSample { ids: ids.to_vec(), loss_mask: mask.to_vec(), images: Vec::new(), is_text: true })
        .collect()
}

/// Lays a pack's items out back to back.
fn assemble(items: &[u64], pending: &mut HashMap<u64, Item>) -> PackedRow {
    let mut row = PackedRow::default();
    for (n, id) in items.iter().enumerate() {
        let Some(item) = pending.remove(id) else { continue };
        let offset = row.input_ids.len() as u32;
        row.input_ids.extend(item.sample.ids.iter().map(|&t| t as i32));
        row.loss_mask.extend_from_slice(&item.sample.loss_mask);
        row.seq_lens.push(item.sample.ids.len() as i32);
        for mut image in item.sample.images {
            image.token_offset += offset;
            image.sample = n as u32;
            row.images.push(image);
        }
        row.samples.push(item.meta);
    }
    row
}

fn read_done(path: &Path, dir: &Path) -> Option<ShardDone> {
    let done: ShardDone = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    // The sidecar is written after the shard's rename, so both exist; still, never trust a sidecar
    // whose shard is gone.
    dir.join(&done.info.file).is_file().then_some(done)
}

fn write_done(path: &Path, done: &ShardDone) -> Result<(), BuildError> {
    let bytes = serde_json::to_vec_pretty(done).map_err(|e| BuildError::io(path, std::io::Error::other(e)))?;
    super::write_atomic(path, &bytes)
}

/// Reads one source front to back, once per epoch the stage's draws touch.
struct SourceCursor<'a> {
    spec: &'a crate::source::spec::SourceSpec,
    keys: SampleKeys,
    reader: Option<Records>,
    epoch: u64,
    next_ordinal: u64,
}

impl SourceCursor<'_> {
    fn fetch(&mut self, draw: &Draw) -> Result<Record, BuildError> {
        if self.reader.is_none() || draw.epoch != self.epoch || draw.record < self.next_ordinal {
            self.reader = Some(read_source(self.spec).map_err(BuildError::Source)?);
            self.epoch = draw.epoch;
            self.next_ordinal = 0;
        }
        let reader = self.reader.as_mut().expect("opened above");
        loop {
            let Some(record) = reader.next() else {
                return Err(BuildError::SourceChanged { name: self.spec.name.clone() });
            };
            let record = record.map_err(BuildError::Source)?;
            let ordinal = self.next_ordinal;
            self.next_ordinal += 1;
            if ordinal == draw.record {
                return Ok(record);
            }
        }
    }

    fn skip(&mut self, draw: &Draw) -> Result<(), BuildError> {
        self.fetch(draw).map(drop)
    }
}
