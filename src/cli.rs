//! Command-line arguments (clap types only; the commands live in `commands/`).

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

/// mixtape: data recipes and packed shard sets for multimodal LLM training.
///
/// Write a recipe (sources, category mixes, stages), `check` it while editing, `plan` it to see
/// exactly what each stage draws, and `diff` two recipes or lock files to review a change.
#[derive(Debug, Parser)]
#[command(name = "mixtape", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Where per-source length indexes are cached [env: MIXTAPE_CACHE_DIR; default: ~/.cache/mixtape].
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Do not read or write the index cache (re-tokenize every source).
    #[arg(long, global = true)]
    pub no_cache: bool,

    /// The endpoint of an S3-compatible store (MinIO, Huawei OBS, Ceph...) for s3:// URLs, e.g.
    /// http://127.0.0.1:9000 [env: AWS_ENDPOINT_URL].
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate recipes: report every error with file:line:col, the snippet and a hint.
    ///
    /// Opens and counts every source and checks that each stage can be satisfied within its
    /// `max_repeat`. Exit status 0 when every recipe is valid, 1 otherwise.
    Check {
        /// Recipe files.
        #[arg(required = true)]
        recipes: Vec<PathBuf>,
        /// Print diagnostics as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Resolve a recipe into exact per-stage, per-source draws and a fingerprint.
    Plan {
        /// The recipe file (.yaml).
        recipe: PathBuf,
        /// Print the plan as a stable JSON document.
        #[arg(long)]
        json: bool,
        /// Write the plan to FILE as a lock file (a later `plan --locked` or `diff` reads it).
        #[arg(long, value_name = "FILE")]
        lock: Option<PathBuf>,
        /// Fail (exit 1) unless the plan's fingerprint equals the one in FILE; writes nothing.
        #[arg(long, value_name = "FILE", conflicts_with = "lock")]
        locked: Option<PathBuf>,
    },
    /// Build one packed Parquet shard set per stage (the main job).
    ///
    /// Reads every drawn record, tokenizes it with the recipe's template, resizes its images with the
    /// Qwen2.5-VL rule, packs samples into sequences of at most `seq_len` tokens, and writes zstd
    /// Parquet shards plus a manifest per stage. Deterministic for any `--jobs`; rerunning after a
    /// crash finishes the build, keeping each finished shard whose recorded draws match this run's
    /// (a resume with another --shard-bytes rebuilds only what no longer matches). A non-empty --out
    /// is resumed only when its build.json proves it is this recipe's build.
    Build {
        /// The recipe file (.yaml).
        recipe: PathBuf,
        /// Output folder: one subfolder per stage.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Worker threads [default: all cores].
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Fail when more than this fraction of a stage's drawn records are rejected.
        #[arg(long, default_value_t = mixtape_engine::build::DEFAULT_MAX_REJECT_FRACTION)]
        max_reject_fraction: f64,
        /// Target size of one shard in bytes.
        #[arg(long, default_value_t = mixtape_engine::build::DEFAULT_TARGET_SHARD_BYTES)]
        shard_bytes: u64,
        /// Delete the files mixtape wrote in --out (build.json, shards, sidecars, manifests,
        /// rejects) and build from scratch: needed when --out holds another recipe's build, or one
        /// whose build.json is missing, damaged or edited. Other files in --out are left alone.
        #[arg(long, conflicts_with_all = ["task", "tasks", "finish"])]
        rebuild: bool,
        /// Build only this task's shards of a build split into --tasks tasks (shard k of every
        /// stage is task k mod N's), and no manifest: tasks run at once, on any machines sharing
        /// --out, and a failed one is rerun alone. Default: $SLURM_ARRAY_TASK_ID (counted from
        /// $SLURM_ARRAY_TASK_MIN) in a Slurm job array, $JOB_COMPLETION_INDEX in a Kubernetes
        /// Indexed Job.
        #[arg(long, value_name = "I", requires = "tasks")]
        task: Option<usize>,
        /// Number of tasks the build is split into. Default: $SLURM_ARRAY_TASK_COUNT in a Slurm
        /// job array (a Kubernetes Indexed Job passes its completions here).
        #[arg(long, value_name = "N")]
        tasks: Option<usize>,
        /// After every task of a split build has finished: check that every shard is there and
        /// write the manifests, rejects lists and dataset card. The folder is then byte-identical
        /// to a one-machine build's. Builds nothing.
        #[arg(long, conflicts_with_all = ["task", "tasks"])]
        finish: bool,
        /// No progress bars.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Print the build summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Measure (tokenize) the recipe's sources into the length cache, all of them or one task's
    /// share of their files, without planning: the part of planning that takes long.
    ///
    /// The cache holds one entry per file (a synthetic source is one part), so a split build's
    /// tasks then plan from it instead of each measuring every record: run `index --task I --tasks
    /// N` on N machines sharing MIXTAPE_CACHE_DIR, then the build tasks. Parts are the sources in
    /// name order, each source's files in order; part p is task p mod N's. Task and count default as
    /// for `build --task`.
    Index {
        /// The recipe file (.yaml).
        recipe: PathBuf,
        /// Measure only this task's parts (part p is task p mod N's).
        #[arg(long, value_name = "I", requires = "tasks")]
        task: Option<usize>,
        /// Number of tasks the measuring is split into.
        #[arg(long, value_name = "N")]
        tasks: Option<usize>,
        /// Print what was measured as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Explain what changed between two recipes or lock files, stage by stage.
    Diff {
        /// Recipe (.yaml/.yml) or lock file (.json) before the change.
        before: PathBuf,
        /// Recipe or lock file after the change.
        after: PathBuf,
        /// Print the diff as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 1 when the two differ (like `git diff --exit-code`).
        #[arg(long)]
        exit_code: bool,
    },
    /// Check shards against their manifests: every problem named, with its fix.
    ///
    /// DIR is a build output (every stage) or one stage folder. Checks each listed shard's size and
    /// blake3, footer (format version, stage, seq_len, fingerprint), that every row group decodes and
    /// the counts match, and that no shard is unlisted. Exit 0 all intact, 1 problems found, 2 DIR is
    /// no shard set.
    Verify {
        /// A build output (every stage) or one stage folder.
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show packed rows readably: per-sample boundaries, sources, decoded text, images.
    ///
    /// Text is decoded with the tokenizer the build recorded in build.json (refused when that file
    /// changed since; token ids when no record is found); `<|image_pad|>` runs are collapsed and loss
    /// tokens marked (green on a terminal, unless NO_COLOR is set).
    Inspect {
        /// A shard file, or a stage folder (then --shard picks the shard).
        path: PathBuf,
        /// Shard index within a stage folder [default: 0].
        #[arg(long, value_name = "K")]
        shard: Option<u32>,
        /// Show row N (counted from 0 in the shard) [default: row 0].
        #[arg(long, value_name = "N", conflicts_with = "rows")]
        row: Option<u64>,
        /// Show rows A to B (B excluded), e.g. 0..4.
        #[arg(long, value_name = "A..B")]
        rows: Option<String>,
        /// The HF tokenizer.json to decode with [default: the one build.json records].
        #[arg(long, value_name = "FILE", conflicts_with = "recipe")]
        tokenizer: Option<PathBuf>,
        /// Decode with the tokenizer this recipe names.
        #[arg(long, value_name = "FILE")]
        recipe: Option<PathBuf>,
        /// Write each image of the shown rows to DIR as row{R}-img{I}.jpg / .png.
        #[arg(long, value_name = "DIR")]
        images_out: Option<PathBuf>,
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recount the realized mix of built shards and check it against the recipe (a CI gate).
    ///
    /// DIR is a build output (every stage) or one stage folder. Every figure is recomputed from the
    /// shard contents and cross-checked with manifest.json: per stage, category and source, samples,
    /// tokens, loss tokens, image tokens, images and shares; the target share on the stage's basis
    /// and the deviation in percentage points; passes; rejects by reason; packing efficiency; pack
    /// and length histograms. Exit 0 all good, 1 a category is off by more than the tolerance, the
    /// fingerprint differs or the manifest disagrees with the shards, 2 it could not run.
    Audit {
        /// A build output (every stage) or one stage folder.
        dir: PathBuf,
        /// Compare with this recipe (its plan gives the targets and the fingerprint).
        #[arg(long, value_name = "RECIPE", conflicts_with = "lock")]
        recipe: Option<PathBuf>,
        /// Compare with this lock file (`mixtape plan --lock`) instead of a recipe.
        #[arg(long, value_name = "FILE")]
        lock: Option<PathBuf>,
        /// Largest deviation of a category's share from the recipe that passes, in percentage points.
        #[arg(long, value_name = "PP", default_value_t = mixtape_engine::audit::DEFAULT_TOLERANCE_PP)]
        tolerance: f64,
        /// Print the audit as JSON.
        #[arg(long)]
        json: bool,
        /// Also write a self-contained HTML report with charts to FILE.
        #[arg(long, value_name = "FILE", conflicts_with = "stream")]
        html: Option<PathBuf>,
        /// Audit the live stream instead of the shards: the mix of the first --steps batches this
        /// rank's reader yields (the trainer's reader, same seed/batch size/ranks), per window of steps.
        #[arg(long, requires = "steps")]
        stream: bool,
        /// With --stream: training steps (batches) to read.
        #[arg(long, value_name = "N", requires = "stream")]
        steps: Option<u64>,
        /// With --stream: steps per window [default: a quarter of --steps].
        #[arg(long, value_name = "STEPS", requires = "stream")]
        window: Option<u64>,
        /// With --stream: packed rows per batch (per rank).
        #[arg(long, default_value_t = mixtape_shards::reader::DEFAULT_BATCH_SIZE, requires = "stream")]
        batch_size: usize,
        /// With --stream: the reader's shuffle seed.
        #[arg(long, default_value_t = mixtape_shards::reader::DEFAULT_SEED, requires = "stream")]
        seed: u64,
        /// With --stream: this reader's rank [default: $RANK or 0].
        #[arg(long, requires = "stream")]
        rank: Option<usize>,
        /// With --stream: number of ranks [default: $WORLD_SIZE or 1].
        #[arg(long, requires = "stream")]
        world_size: Option<usize>,
    },
    /// Run the training reader without training: throughput, the final resume state, data orders.
    ///
    /// Reads the stage folders in the order given (a whole schedule resumes across stages) with the
    /// reader a trainer uses: shuffled by --seed, split by --rank/--world-size (default: the RANK and
    /// WORLD_SIZE environment variables), images decoded. Prints rows/s, tokens/s, images/s and the
    /// final state as JSON (pass it to --resume to continue). Exit 0 ok, 1 damaged data (the shard
    /// and row group are named), 2 it could not start.
    Stream {
        /// Stage folders of a build, in schedule order, or a build output folder (all its stages,
        /// in recipe order).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// This reader's rank [default: $RANK or 0].
        #[arg(long)]
        rank: Option<usize>,
        /// Number of ranks [default: $WORLD_SIZE or 1].
        #[arg(long)]
        world_size: Option<usize>,
        /// Packed rows per batch (per rank).
        #[arg(long, default_value_t = mixtape_shards::reader::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
        /// The reader's shuffle seed.
        #[arg(long, default_value_t = mixtape_shards::reader::DEFAULT_SEED)]
        seed: u64,
        /// Epochs over each stage.
        #[arg(long, default_value_t = mixtape_shards::reader::DEFAULT_EPOCHS)]
        epochs: u32,
        /// Continue from a state file (written by --save-state, or the printed JSON).
        #[arg(long, value_name = "STATE")]
        resume: Option<PathBuf>,
        /// Write the final state to FILE.
        #[arg(long, value_name = "FILE")]
        save_state: Option<PathBuf>,
        /// Stop after N batches.
        #[arg(long, value_name = "N")]
        steps: Option<u64>,
        /// What to do with images.
        #[arg(long, value_enum, default_value_t = StreamImages::Decoded)]
        images: StreamImages,
        /// Threads decoding row groups and images.
        #[arg(long, default_value_t = mixtape_shards::reader::DEFAULT_DECODE_THREADS)]
        decode_threads: usize,
        /// Batches decoded ahead.
        #[arg(long, default_value_t = mixtape_shards::reader::DEFAULT_PREFETCH)]
        prefetch: usize,
        /// Rows shuffled together (1 disables the row shuffle).
        #[arg(long, default_value_t = mixtape_shards::reader::DEFAULT_SHUFFLE_WINDOW)]
        shuffle_window: usize,
        /// Read shards in index order and rows in file order.
        #[arg(long)]
        no_shuffle: bool,
        /// Check every shard's blake3 against the manifest before reading it.
        #[arg(long)]
        verify: bool,
        /// Keep the column chunks of remote shards (s3://...) in this local folder between epochs,
        /// evicting what the reader's order needs furthest in the future.
        #[arg(long, value_name = "DIR")]
        chunk_cache: Option<PathBuf>,
        /// The most the chunk cache holds: bytes, or with a unit (500MB, 20GiB).
        #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "10GiB", requires = "chunk_cache")]
        chunk_cache_limit: u64,
        /// Range requests in flight at once for remote shards.
        #[arg(long, value_name = "N", default_value_t = mixtape_shards::reader::DEFAULT_REMOTE_REQUESTS)]
        remote_requests: usize,
        /// Fetch a remote stage's next shuffle window only on entering it (by default it is fetched
        /// and decoded while the current window's batches go out).
        #[arg(long)]
        no_read_ahead: bool,
        /// Print one line per row: stage, epoch, shard, row (instead of the state).
        #[arg(long)]
        order: bool,
        /// Print the throughput report, state and tally as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `mixtape stream --images`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamImages {
    /// Geometry only.
    Skip,
    /// The stored bytes.
    Raw,
    /// RGB pixels at the training size.
    Decoded,
}

impl Command {
    /// Whether `--json` was given: a failure is then one JSON object on stdout too.
    pub fn json(&self) -> bool {
        match self {
            Command::Check { json, .. }
            | Command::Plan { json, .. }
            | Command::Build { json, .. }
            | Command::Index { json, .. }
            | Command::Diff { json, .. }
            | Command::Verify { json, .. }
            | Command::Inspect { json, .. }
            | Command::Audit { json, .. }
            | Command::Stream { json, .. } => *json,
        }
    }

    /// Every path the command reads (not the ones it writes), to check before it starts.
    pub fn inputs(&self) -> Vec<&Path> {
        let mut paths: Vec<&Path> = Vec::new();
        match self {
            Command::Check { recipes, .. } => paths.extend(recipes.iter().map(PathBuf::as_path)),
            Command::Plan { recipe, locked, .. } => {
                paths.push(recipe);
                paths.extend(locked.as_deref());
            }
            Command::Build { recipe, .. } | Command::Index { recipe, .. } => paths.push(recipe),
            Command::Diff { before, after, .. } => {
                paths.extend([before.as_path(), after.as_path()])
            }
            Command::Verify { dir, .. } => paths.push(dir),
            Command::Inspect {
                path,
                tokenizer,
                recipe,
                ..
            } => {
                paths.push(path);
                paths.extend(tokenizer.as_deref());
                paths.extend(recipe.as_deref());
            }
            Command::Audit {
                dir, recipe, lock, ..
            } => {
                paths.push(dir);
                paths.extend(recipe.as_deref());
                paths.extend(lock.as_deref());
            }
            Command::Stream { dirs, resume, .. } => {
                paths.extend(dirs.iter().map(PathBuf::as_path));
                paths.extend(resume.as_deref());
            }
        }
        paths
    }
}

/// A size in bytes: a number, optionally followed by B, KB, MB, GB, TB (powers of 1000) or KiB,
/// MiB, GiB, TiB (powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write bytes, or e.g. 500MB or 20GiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            ));
        }
    };
    Ok((number * scale).round() as u64)
}
