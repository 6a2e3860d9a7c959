//! Building one stage: read the drawn records, encode them in parallel, pack, write shards.
//!
//! A stage's draws are cut into shards of a fixed number of draws, decided up front from the plan's
//! expected size and `--shard-bytes`, so every shard is an independent unit: it is packed on its own
//! (the packer flushes at the shard's end), written under a temporary name, renamed, and then a
//! sidecar (`OUT/_mixtape/STAGE/shard-NNNNN.done.json`, [`mixtape_shards::layout`]) marks it done. The sidecar says exactly which draws the
//! shard holds (`ShardDraws`: its range of positions in the stage's packing order and a blake3 of
//! the (source, epoch, record, sample) list), beside the shard's info and rejects.
//!
//! A rerun first works out the shards it would write, then keeps a finished shard only when its
//! sidecar holds exactly the draws this run puts at that index and the file has the recorded size.
//! Everything else is removed before any shard is written: the stage manifest (so a folder is never
//! marked finished while its shards change), sidecars that do not match, shards without a matching
//! sidecar, shards and sidecars past the new shard count, and stale temporaries. So a resume with
//! another `--shard-bytes` reuses what still matches and rebuilds the rest: no draw is lost or
//! written twice. A finished stage whose shards prove they hold its draws as their own cut gave them
//! is kept as it is, whatever `--shard-bytes` says now. Since every shard is a pure function of its
//! draws, a resume with the same settings is byte-identical to an uninterrupted build.
//!
//! A task of a split build ([`super::BuildScope::Task`]) does all this for its own shards only
//! (`k % tasks == task`): it reads, keeps, removes and writes no other file, so tasks share the
//! folder, and it writes no manifest. The finish builds nothing: it fails unless every shard is
//! there, then writes the manifest as a whole build would.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use mixtape_shards::layout::{self, StageLayout};
use mixtape_shards::{
    MANIFEST_FILE, Manifest, PackedRow, PackedSampleMeta, REJECTS_FILE, ShardInfo, ShardMeta,
    ShardOptions, ShardWriter, shard_file_name,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::draws::{Draw, SourceDraws, interleave, stage_draws};
use super::encode::{EncodeReject, EncodedSample, cut, encode_sample};
use super::{BuildError, BuildOptions, BuildScope, Progress};
use crate::index::SourceIndex;
use crate::pack::{PackItem, Packer, PackerConfig};
use crate::plan::{Plan, StagePlan};
use crate::recipe::{Recipe, Stage};
use crate::reject::RejectCode;
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
    pub reason: RejectCode,
    pub message: String,
}

/// What a finished shard leaves beside itself.
#[derive(Debug, Serialize, Deserialize)]
struct ShardDone {
    draws: ShardDraws,
    info: ShardInfo,
    rejects: Vec<RejectEntry>,
}

/// Exactly which draws a shard holds: the shard is a pure function of them (and of the recipe
/// fingerprint and JPEG encoder, which `build.json` pins for the whole folder).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ShardDraws {
    /// Positions `[first, end)` in the stage's packing order.
    first: u64,
    end: u64,
    /// `blake3:` and the hex blake3 of the recipe fingerprint, the stage name, the shard index and
    /// every draw's (source name, epoch, record ordinal, sample index), in packing order.
    digest: String,
    /// Draws per source.
    by_source: BTreeMap<String, u64>,
    /// The cut that produced it: draws per shard, from `--shard-bytes` and the plan's expected
    /// size (for a reader of the file; reuse compares the draws themselves).
    draws_per_shard: u64,
}

impl ShardDraws {
    fn of(
        ctx: &StageContext<'_>,
        draws: &[SourceDraws],
        index: usize,
        per_shard: usize,
        chunk: &[(u32, u32)],
    ) -> Self {
        let mut hasher = blake3::Hasher::new();
        let mut by_source = BTreeMap::new();
        for text in [ctx.plan.fingerprint.as_str(), ctx.stage.name.as_str()] {
            hasher.update(&(text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        hasher.update(&(index as u64).to_le_bytes());
        for &(slot, j) in chunk {
            let source = &draws[slot as usize];
            let name = &ctx.recipe.sources[source.source].name;
            let draw = &source.draws[j as usize];
            hasher.update(&(name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update(&draw.epoch.to_le_bytes());
            hasher.update(&draw.record.to_le_bytes());
            hasher.update(&draw.sample.to_le_bytes());
            *by_source.entry(name.clone()).or_insert(0u64) += 1;
        }
        let first = (index * per_shard) as u64;
        ShardDraws {
            first,
            end: first + chunk.len() as u64,
            digest: format!("blake3:{}", hasher.finalize().to_hex()),
            by_source,
            draws_per_shard: per_shard as u64,
        }
    }

    /// Same draws, whatever setting cut them.
    fn holds_same_draws(&self, other: &ShardDraws) -> bool {
        (self.first, self.end, &self.digest) == (other.first, other.end, &other.digest)
    }
}

/// Result of a stage.
#[derive(Debug)]
pub struct StageOutcome {
    /// `None` for a task of a split build.
    pub manifest: Option<Manifest>,
    pub rejects: Vec<RejectEntry>,
    /// The stage's manifest and rejects file on disk already say exactly this: nothing was written.
    pub finished: bool,
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
    /// Where the stage's shards and bookkeeping go.
    pub layout: StageLayout,
    /// A local folder for shards being written: `_mixtape/<stage>/` for a build on disk, a scratch
    /// folder when the shards are uploaded to an object store.
    pub temporaries: std::path::PathBuf,
}

/// Fails unless every shard of the stage is finished (the finish of a split build checks every
/// stage before it writes anything).
pub(super) fn check_built(ctx: &StageContext<'_>) -> Result<(), BuildError> {
    let names: Vec<&str> = ctx.recipe.sources.iter().map(|s| s.name.as_str()).collect();
    let indexes: Vec<&SourceIndex> = names.iter().map(|n| &ctx.indexes[*n]).collect();
    let draws = stage_draws(ctx.plan.seed, ctx.stage_plan, &names, &indexes);
    let order = interleave(&draws);
    let (_, cuts) = stage_cut(ctx, &draws, &order);
    missing_shards(ctx, &cuts)
}

/// The stage's cut into shards: draws per shard, and each shard's draws.
fn stage_cut(
    ctx: &StageContext<'_>,
    draws: &[SourceDraws],
    order: &[(u32, u32)],
) -> (usize, Vec<ShardDraws>) {
    let cut = |per_shard: usize| -> Vec<ShardDraws> {
        order
            .chunks(per_shard)
            .enumerate()
            .map(|(k, chunk)| ShardDraws::of(ctx, draws, k, per_shard, chunk))
            .collect()
    };
    let mut per_shard =
        draws_per_shard(ctx.stage_plan, order.len(), ctx.options.target_shard_bytes).max(1);
    let mut cuts = cut(per_shard);
    // A finished stage (it has a manifest) cut with another `--shard-bytes` is kept as it was cut
    // when every one of its shards holds exactly the draws that cut gives: it already holds every
    // draw once, and re-cutting it would rebuild the whole stage for a layout choice
    // (`--rebuild` re-cuts).
    if let Some(theirs) = finished_cut(&ctx.layout).filter(|&p| p != per_shard && p > 0) {
        let their_cuts = cut(theirs);
        let whole = their_cuts.iter().enumerate().all(|(k, c)| {
            read_done(&ctx.layout, k as u32).is_some_and(|done| done.draws.holds_same_draws(c))
        });
        if whole {
            (per_shard, cuts) = (theirs, their_cuts);
        }
    }
    (per_shard, cuts)
}

pub(super) fn run(
    ctx: &StageContext<'_>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<StageOutcome, BuildError> {
    let names: Vec<&str> = ctx.recipe.sources.iter().map(|s| s.name.as_str()).collect();
    let indexes: Vec<&SourceIndex> = names.iter().map(|n| &ctx.indexes[*n]).collect();
    let draws = stage_draws(ctx.plan.seed, ctx.stage_plan, &names, &indexes);
    let order = interleave(&draws);
    let (per_shard, cuts) = stage_cut(ctx, &draws, &order);
    let chunks: Vec<&[(u32, u32)]> = order.chunks(per_shard).collect();
    let scope = ctx.options.scope;
    for dir in [ctx.layout.dir().to_path_buf(), ctx.layout.meta_dir()] {
        mixtape_store::create_dir_all(&dir).map_err(|e| BuildError::io(&dir, e))?;
    }
    let mut finished_shards = tidy(&ctx.layout, &cuts, scope)?;
    if scope == BuildScope::Finish {
        // `build` checked every stage before writing anything; a shard gone since is no reason to
        // build it here.
        let missing: Vec<usize> = (0..cuts.len())
            .filter(|&k| finished_shards[k].is_none())
            .collect();
        if let Some(error) = not_built(ctx, &missing, cuts.len()) {
            return Err(error);
        }
    }

    let mut cursors: Vec<SourceCursor<'_>> = draws
        .iter()
        .map(|d| {
            let spec = &ctx.recipe.sources[d.source];
            SourceCursor {
                spec,
                keys: SampleKeys::new(spec),
                reader: None,
                epoch: 0,
                next_ordinal: 0,
            }
        })
        .collect();
    progress(Progress::StageStart {
        stage: ctx.stage.name.clone(),
        draws: chunks
            .iter()
            .enumerate()
            .filter(|&(k, _)| scope.owns(k))
            .map(|(_, c)| c.len() as u64)
            .sum(),
    });

    let mut infos = Vec::new();
    let mut rejects = Vec::new();
    let (mut written, mut reused) = (0, 0);
    for (k, (chunk, cut)) in chunks.iter().zip(cuts).enumerate() {
        if !scope.owns(k) {
            // Another task's: the cursors read past its records to this task's next shard.
            continue;
        }
        let done = match finished_shards[k].take() {
            Some(done) => {
                // Its records are never read: a cursor reads forward to the next shard it builds.
                progress(Progress::Advance {
                    draws: chunk.len() as u64,
                    tokens: done.info.totals.tokens,
                });
                reused += 1;
                done
            }
            None => {
                let done = write_shard(ctx, k as u32, chunk, cut, &draws, &mut cursors, progress)?;
                write_done(&ctx.layout.sidecar(k as u32), &done)?;
                written += 1;
                done
            }
        };
        rejects.extend(done.rejects);
        infos.push(done.info);
    }
    if scope.is_task() {
        return Ok(StageOutcome {
            manifest: None,
            rejects,
            finished: false,
            shards_written: written,
            shards_reused: reused,
            drawn: order.len() as u64,
        });
    }

    let mut reject_counts = BTreeMap::new();
    for r in &rejects {
        // The manifest keys reasons by their strings (see `crate::reject`).
        *reject_counts
            .entry(r.reason.as_str().to_owned())
            .or_insert(0u64) += 1;
    }
    let manifest = Manifest::new(
        &ctx.stage.name,
        ctx.stage.seq_len,
        &ctx.plan.fingerprint,
        infos,
        reject_counts,
    );
    let finished = written == 0
        && mixtape_store::read(&ctx.layout.manifest())
            .is_ok_and(|b| b == manifest.to_json().as_bytes())
        && mixtape_store::read(&ctx.layout.rejects()).is_ok_and(|b| b == super::jsonl(&rejects));
    Ok(StageOutcome {
        manifest: Some(manifest),
        rejects,
        finished,
        shards_written: written,
        shards_reused: reused,
        drawn: order.len() as u64,
    })
}

/// Draws per shard of a finished stage (one with a manifest), from its first shard's sidecar.
fn finished_cut(stage: &StageLayout) -> Option<usize> {
    if !stage.manifest().is_file() {
        return None;
    }
    read_done(stage, 0).map(|done| done.draws.draws_per_shard as usize)
}

/// Fails, naming the first, when a shard of `cuts` is not finished (the finish of a split build).
fn missing_shards(ctx: &StageContext<'_>, cuts: &[ShardDraws]) -> Result<(), BuildError> {
    let missing: Vec<usize> = cuts
        .iter()
        .enumerate()
        .filter(|&(k, cut)| {
            read_done(&ctx.layout, k as u32).is_none_or(|done| !done.draws.holds_same_draws(cut))
        })
        .map(|(k, _)| k)
        .collect();
    not_built(ctx, &missing, cuts.len()).map_or(Ok(()), Err)
}

/// The error for a finish that found the shards `missing` (of `shards`) not built, if any are.
fn not_built(ctx: &StageContext<'_>, missing: &[usize], shards: usize) -> Option<BuildError> {
    let &first = missing.first()?;
    Some(BuildError::NotBuilt {
        stage: ctx.stage.name.clone(),
        missing: missing.len(),
        shards,
        first,
        sidecar: ctx.layout.sidecar(first as u32),
    })
}

/// Readies a stage folder for this run's cut (`cuts[k]`: the draws of shard `k`) and returns the
/// finished shards it keeps. A shard is kept when its sidecar holds exactly the draws of `cuts[k]`
/// and its file has the recorded size. Unless every shard is kept, the manifest goes first (the
/// stage is no longer finished), then every sidecar and shard not kept, then stale temporaries, so
/// a kill at any point leaves a folder the next run reads the same way.
///
/// A task of a split build looks at, keeps and removes its own shards only (with their
/// temporaries), and leaves the rest, and the stage's own temporaries, to the others.
fn tidy(
    stage: &StageLayout,
    cuts: &[ShardDraws],
    scope: BuildScope,
) -> Result<Vec<Option<ShardDone>>, BuildError> {
    let kept: Vec<Option<ShardDone>> = cuts
        .iter()
        .enumerate()
        .map(|(k, cut)| {
            read_done(stage, k as u32)
                .filter(|done| scope.owns(k) && done.draws.holds_same_draws(cut))
        })
        .collect();
    let keep = |index: usize| kept.get(index).is_some_and(Option::is_some);
    let mut sidecars = Vec::new();
    let mut others = Vec::new();
    for dir in [stage.dir().to_path_buf(), stage.meta_dir()] {
        for entry in mixtape_store::list(&dir).map_err(|e| BuildError::io(&dir, e))? {
            let name = entry.name;
            match StageFile::of(&name) {
                Some(StageFile::Sidecar(k)) if scope.owns(k) && !keep(k) => {
                    sidecars.push(dir.join(&name))
                }
                Some(StageFile::Shard(k)) if scope.owns(k) && !keep(k) => {
                    others.push(dir.join(&name))
                }
                Some(StageFile::Temporary(Some(k))) if scope.owns(k) => {
                    others.push(dir.join(&name))
                }
                Some(StageFile::Temporary(None)) if !scope.is_task() => {
                    others.push(dir.join(&name))
                }
                _ => {}
            }
        }
    }
    let all_kept = kept
        .iter()
        .enumerate()
        .all(|(k, done)| !scope.owns(k) || done.is_some());
    if !sidecars.is_empty() || !others.is_empty() || !all_kept {
        remove(&stage.manifest())?;
    }
    sidecars.sort();
    others.sort();
    for path in sidecars.iter().chain(&others) {
        remove(path)?;
    }
    Ok(kept)
}

fn remove(path: &Path) -> Result<(), BuildError> {
    mixtape_store::delete(path).map_err(|e| BuildError::io(path, e))
}

/// The files `build` writes for a stage, by name: in the stage folder (shards and their
/// temporaries) or in its `_mixtape/` folder (the rest). The old layout's hidden sidecar name
/// (`.shard-NNNNN.done.json`, beside the shards) is recognised too, so `--rebuild` can clear a
/// build written before `_mixtape/` existed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StageFile {
    /// `shard-NNNNN.parquet`.
    Shard(usize),
    /// `shard-NNNNN.done.json` (or the old `.shard-NNNNN.done.json`).
    Sidecar(usize),
    /// A hidden temporary of a shard or sidecar (with the shard's index), or of the manifest or
    /// rejects file, left by a killed build.
    Temporary(Option<usize>),
    /// `manifest.json` or `rejects.jsonl`.
    Summary,
}

impl StageFile {
    pub(super) fn of(name: &str) -> Option<StageFile> {
        if name == MANIFEST_FILE || name == REJECTS_FILE {
            return Some(StageFile::Summary);
        }
        if let Some(k) = layout::shard_index(name) {
            return Some(StageFile::Shard(k as usize));
        }
        let sidecar = name.strip_prefix('.').unwrap_or(name);
        if let Some(k) = layout::sidecar_index(sidecar) {
            return Some(StageFile::Sidecar(k as usize));
        }
        // `.shard-00000.parquet.tmp`, `..shard-00000.done.json.tmp-PID`, `.manifest.json.tmp`, ...
        let bare = name.trim_start_matches('.');
        let ours = name.starts_with('.')
            && ["shard-", "manifest.json.", "rejects.jsonl."]
                .iter()
                .any(|p| bare.starts_with(p));
        if !(ours && (name.ends_with(".tmp") || name.contains(".tmp-"))) {
            return None;
        }
        let file = bare.split(".tmp").next().unwrap_or(bare);
        let shard = layout::shard_index(file).or_else(|| layout::sidecar_index(file));
        Some(StageFile::Temporary(shard.map(|k| k as usize)))
    }
}

/// Draws per shard so that shards come out near the target size (from the plan's expectations).
fn draws_per_shard(stage: &StagePlan, draws: usize, target_bytes: u64) -> usize {
    let image_pixels = stage.expected.image_tokens as f64 * 784.0;
    let estimate =
        stage.expected.tokens as f64 * EST_BYTES_PER_TOKEN + image_pixels * EST_BYTES_PER_PIXEL;
    let shards = (estimate / target_bytes.max(1) as f64).ceil().max(1.0) as usize;
    draws.div_ceil(shards).max(1)
}

/// One packed item: a whole sample, or one window of a long text.
struct Item {
    sample: EncodedSample,
    meta: PackedSampleMeta,
}

/// One drawn record, read and ready to encode.
struct Fetched {
    /// Index of its source in the stage's draws.
    slot: usize,
    /// Index of its source in the recipe's sources.
    source: usize,
    record: Record,
    key: String,
    /// Tokens to keep when the plan cuts this draw.
    keep: Option<u64>,
    /// Tokens the plan counted for it (from the source index, after the cut); `None` when the plan
    /// counted it as a reject.
    planned_tokens: Option<u64>,
}

type FetchedBatch = Vec<Fetched>;
type EncodedBatch = Vec<Result<EncodedSample, EncodeReject>>;

/// Builds one shard as a three-step pipeline over batches of `ENCODE_BATCH` draws: while the `jobs`
/// threads of the pool encode batch `k`, the calling thread packs and writes batch `k - 1` and reads batch `k + 1`, so the
/// sequential steps (source I/O and parsing, packing, Parquet encoding) hide behind the parallel one.
/// Every step still sees the batches in draw order, so the shard is the same for any thread count.
fn write_shard(
    ctx: &StageContext<'_>,
    index: u32,
    chunk: &[(u32, u32)],
    cut: ShardDraws,
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
    let options =
        ShardOptions::default().with_image_pad_token(ctx.encoder.special().image_pad as i32);
    let writer =
        ShardWriter::try_new_with_temporary_in(ctx.layout.dir(), &ctx.temporaries, meta, options)
            .map_err(BuildError::Write)?;
    let packer = Packer::try_new(PackerConfig {
        seq_len: stage.seq_len,
        buffer: stage.pack.buffer as usize,
        max_image_tokens: stage.pack.max_image_tokens,
        algorithm: stage.pack.algorithm,
    })
    .map_err(|e| BuildError::Pack(e.to_string()))?;
    let mut shard = ShardAssembly {
        writer,
        packer,
        pending: HashMap::new(),
        next_id: 0,
        rejects: Vec::new(),
    };

    let mut batches = chunk.chunks(ENCODE_BATCH);
    let mut fetched = batches
        .next()
        .map(|batch| fetch_batch(ctx, batch, draws, cursors))
        .transpose()?;
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
                next = batches
                    .next()
                    .map(|batch| fetch_batch(ctx, batch, draws, cursors));
            }
        });
        written?;
        fetched = next.transpose()?;
        encoded = to_encode.zip(results);
    }
    // In the pool: the writer encodes the last row group's columns in parallel on it.
    ctx.pool.install(|| shard.finish(cut))
}

fn fetch_batch(
    ctx: &StageContext<'_>,
    batch: &[(u32, u32)],
    draws: &[SourceDraws],
    cursors: &mut [SourceCursor<'_>],
) -> Result<FetchedBatch, BuildError> {
    let mut records = Vec::with_capacity(batch.len());
    for &(slot, j) in batch {
        let (source, j) = (&draws[slot as usize], j as usize);
        let cursor = &mut cursors[slot as usize];
        let draw = &source.draws[j];
        let record = cursor.fetch(draw)?;
        let key = cursor.keys.key(&record.location);
        let keep = source.cut_at(j);
        let index = &ctx.indexes[&cursor.spec.name];
        let planned_tokens =
            crate::plan::usable(cursor.spec, index, draw.sample as usize, ctx.stage)
                .ok()
                .map(|counts| keep.unwrap_or(counts.tokens));
        records.push(Fetched {
            slot: slot as usize,
            source: source.source,
            record,
            key,
            keep,
            planned_tokens,
        });
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
        .map(|fetched| match &fetched.record.sample {
            Ok(sample) => encode_sample(
                sample,
                ctx.encoder,
                &ctx.recipe.sources[fetched.source],
                stage,
            )
            .map(|s| cut(s, fetched.keep)),
            Err(reason) => Err(EncodeReject {
                code: reason.code(),
                message: reason.to_string(),
            }),
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
        for (fetched, result) in records.into_iter().zip(results) {
            let Fetched {
                slot,
                record,
                key,
                planned_tokens,
                ..
            } = fetched;
            let spec = cursors[slot].spec;
            match result {
                Err(r) => self.rejects.push(RejectEntry {
                    source: spec.name.clone(),
                    location: record.location.to_string(),
                    reason: r.code,
                    message: r.message,
                }),
                Ok(sample) => {
                    let built = sample.ids.len() as u64;
                    // The plan counted this sample from the source index: if encoding it gives
                    // another length, the stage's mix is not the planned one.
                    if let Some(planned) = planned_tokens.filter(|&p| p != built) {
                        return Err(BuildError::LengthMismatch {
                            stage: stage.name.clone(),
                            source_name: spec.name.clone(),
                            location: record.location.to_string(),
                            planned,
                            built,
                        });
                    }
                    tokens += built;
                    for (window, item_sample) in
                        windows(sample, stage.seq_len).into_iter().enumerate()
                    {
                        let key = if window == 0 {
                            key.clone()
                        } else {
                            format!("{key}#w{window}")
                        };
                        let loss_tokens =
                            item_sample.loss_mask.iter().filter(|&&m| m != 0).count() as u32;
                        let item = PackItem {
                            id: self.next_id,
                            tokens: item_sample.ids.len() as u32,
                            image_tokens: item_sample.image_tokens(),
                        };
                        let meta = PackedSampleMeta {
                            source: spec.name.clone(),
                            category: spec.category.clone(),
                            key,
                            loss_tokens,
                        };
                        self.pending.insert(
                            self.next_id,
                            Item {
                                sample: item_sample,
                                meta,
                            },
                        );
                        self.next_id += 1;
                        for pack in self
                            .packer
                            .push(item)
                            .map_err(|e| BuildError::Pack(e.to_string()))?
                        {
                            self.writer
                                .write(assemble(&pack.items, &mut self.pending))
                                .map_err(BuildError::Write)?;
                        }
                    }
                }
            }
        }
        progress(Progress::Advance { draws, tokens });
        Ok(())
    }

    fn finish(mut self, draws: ShardDraws) -> Result<ShardDone, BuildError> {
        for pack in self.packer.finish() {
            self.writer
                .write(assemble(&pack.items, &mut self.pending))
                .map_err(BuildError::Write)?;
        }
        let info = self.writer.finish().map_err(BuildError::Write)?;
        Ok(ShardDone {
            draws,
            info,
            rejects: self.rejects,
        })
    }
}

/// Long text over `seq_len` becomes consecutive `seq_len` windows. Only `long_text: split` leaves a
/// text that long: [`encode_sample`] truncates or rejects it under the other settings.
fn windows(sample: EncodedSample, seq_len: u32) -> Vec<EncodedSample> {
    let seq_len = seq_len as usize;
    if sample.ids.len() <= seq_len || !sample.is_text {
        return vec![sample];
    }
    sample
        .ids
        .chunks(seq_len)
        .zip(sample.loss_mask.chunks(seq_len))
        .map(|(ids, mask)| EncodedSample {
            ids: ids.to_vec(),
            loss_mask: mask.to_vec(),
            images: Vec::new(),
            is_text: true,
        })
        .collect()
}

/// Lays a pack's items out back to back.
fn assemble(items: &[u64], pending: &mut HashMap<u64, Item>) -> PackedRow {
    let mut row = PackedRow::default();
    for (n, id) in items.iter().enumerate() {
        let Some(item) = pending.remove(id) else {
            continue;
        };
        let offset = row.input_ids.len() as u32;
        row.input_ids
            .extend(item.sample.ids.iter().map(|&t| t as i32));
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

/// The sidecar of shard `index`, when it parses and its shard is the file it describes (name,
/// index and size; the blake3 is `verify`'s job, reading every shard here would make a no-op rerun
/// cost a full read of the build).
fn read_done(stage: &StageLayout, index: u32) -> Option<ShardDone> {
    let done: ShardDone =
        serde_json::from_slice(&mixtape_store::read(&stage.sidecar(index)).ok()?).ok()?;
    let file = shard_file_name(index);
    let size = mixtape_store::size(&stage.shard(index)).ok()?;
    (done.info.index == index && done.info.file == file && done.info.bytes == size).then_some(done)
}

fn write_done(path: &Path, done: &ShardDone) -> Result<(), BuildError> {
    let bytes = serde_json::to_vec_pretty(done)
        .map_err(|e| BuildError::io(path, std::io::Error::other(e)))?;
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
                return Err(BuildError::SourceChanged {
                    name: self.spec.name.clone(),
                });
            };
            let record = record.map_err(BuildError::Source)?;
            let ordinal = self.next_ordinal;
            self.next_ordinal += 1;
            if ordinal == draw.record {
                return Ok(record);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_files_are_recognised_by_name_and_nothing_else_is() {
        assert_eq!(
            StageFile::of("shard-00012.parquet"),
            Some(StageFile::Shard(12))
        );
        assert_eq!(
            StageFile::of("shard-00012.done.json"),
            Some(StageFile::Sidecar(12))
        );
        // The old layout's hidden name, for `--rebuild` of an old build.
        assert_eq!(
            StageFile::of(".shard-00012.done.json"),
            Some(StageFile::Sidecar(12))
        );
        assert_eq!(StageFile::of("manifest.json"), Some(StageFile::Summary));
        assert_eq!(StageFile::of("rejects.jsonl"), Some(StageFile::Summary));
        // A shard's or sidecar's temporary names its shard, so a task of a split build can tell
        // its own from the other tasks'.
        let temporaries = [
            (".shard-00003.parquet.tmp", Some(3)),
            ("..shard-00003.done.json.tmp-4242", Some(3)),
            (".shard-00003.done.json.tmp-4242-123456", Some(3)),
            (".manifest.json.tmp", None),
            (".rejects.jsonl.tmp-7", None),
        ];
        for (temporary, shard) in temporaries {
            assert_eq!(
                StageFile::of(temporary),
                Some(StageFile::Temporary(shard)),
                "{temporary}"
            );
        }
        let others = [
            "shard-1.parquet",
            "shard-0001x.parquet",
            "notes.txt",
            ".shard-00001.done.json.bak",
            "shard-00001.parquet.tmp",
        ];
        for other in others {
            assert_eq!(StageFile::of(other), None, "{other}");
        }
    }
}
