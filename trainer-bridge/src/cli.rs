//! Command-line arguments of `mixtape-train` (clap types only; `main.rs` resolves them).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mixtape-train",
    version,
    about = "Train a small Qwen2.5-VL-shaped model on mixtape shard sets, stage by stage"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train every stage of RECIPE on the shards `mixtape build RECIPE --out DATA` wrote.
    Train(TrainArgs),
    /// Average checkpoints (uniformly, or with --weights) into one.
    Average(AverageArgs),
    /// Held-back loss of a checkpoint under several image pixel budgets; reports the best.
    ResolutionSearch(ResolutionArgs),
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Device: cpu, cuda, cuda:N, npu, npu:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// For `npu` devices: the Ascend backend library (libtorch_npu.so of a Python-free torch_npu
    /// build); default: $MIXTAPE_NPU_LIB.
    #[arg(long, value_name = "PATH")]
    pub npu_lib: Option<PathBuf>,
    /// Run matrix products in bfloat16 (weights, norms and the loss stay f32).
    #[arg(long)]
    pub bf16: bool,
    /// Held-back rows per stage (the last rows of each stage; never trained on).
    #[arg(long, default_value_t = mixtape_trainer_bridge::train::DEFAULT_HOLDOUT_ROWS)]
    pub holdout_rows: usize,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The recipe the shards were built from.
    pub recipe: PathBuf,
    /// The build output folder (`mixtape build --out DATA`).
    #[arg(long)]
    pub data: PathBuf,
    /// Run folder for the log, checkpoints and loss curve.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Recompute each block's activations in the backward pass instead of keeping them.
    #[arg(long)]
    pub recompute: bool,
    /// Seed of the weights and the data order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Multiply every stage's learning rate by this (recipes state rates for the real, pretrained
    /// model; the small stand-in trained from scratch needs larger ones).
    #[arg(long, default_value_t = 1.0)]
    pub lr_multiplier: f64,
    /// JSON file of model sizes (fields of ModelConfig; missing ones keep their defaults).
    #[arg(long)]
    pub model_config: Option<PathBuf>,
    /// At most this many optimizer steps per stage.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Save a checkpoint every N optimizer steps.
    #[arg(long)]
    pub save_every: Option<u64>,
    /// Evaluate the stage's held-back rows every N steps.
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Save a checkpoint and stop after this global step.
    #[arg(long)]
    pub stop_after: Option<u64>,
    /// Continue from a checkpoint of this run.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AverageArgs {
    /// Checkpoints to average (two or more).
    #[arg(required = true, num_args = 2..)]
    pub checkpoints: Vec<PathBuf>,
    /// Relative weights, one per checkpoint, comma-separated (normalised to sum to 1).
    #[arg(long, value_delimiter = ',')]
    pub weights: Option<Vec<f64>>,
    /// Output file (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ResolutionArgs {
    /// The checkpoint to evaluate.
    pub checkpoint: PathBuf,
    /// The recipe the shards were built from.
    #[arg(long)]
    pub recipe: PathBuf,
    /// The build output folder.
    #[arg(long)]
    pub data: PathBuf,
    /// Stage whose held-back rows (and image policy) to use; default: the last.
    #[arg(long)]
    pub stage: Option<String>,
    /// Pixel budgets to try, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [50_176u64, 100_352, 200_704, 401_408])]
    pub max_pixels: Vec<u64>,
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long)]
    pub json: bool,
}
