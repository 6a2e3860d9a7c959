//! The training loop: stage after stage of the schedule, with the weights carried across.
//!
//! One optimizer step reads `grad_accum` batches of `batch_size` packed rows, back-propagates each
//! micro-batch's summed token loss scaled by one over the step's loss tokens (so the step's gradient
//! is that of the mean over every loss token of the step, however rows split into micro-batches),
//! clips the global gradient norm, and applies AdamW with each module's learning rate. Frozen modules
//! get no gradients (a frozen vision tower does not even build a graph).
//!
//! Checkpoints ([`crate::checkpoint`]) are written every `save_every` steps, at `stop_after`, and at
//! the end of every stage (`RUN/stage-NAME.safetensors`); each holds the weights, the optimizer's
//! moments and the reader's cursor, so a resumed run continues with the same rows in the same order.
//! On the CPU, a run stopped and resumed logs exactly the losses of an uninterrupted run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use mixtape_engine::recipe::Recipe;
use serde::Serialize;

use crate::checkpoint::{
    CHECKPOINT_FORMAT, Checkpoint, CheckpointError, CheckpointMeta, MODEL_PREFIX,
};
use crate::data::{DataError, Holdout, TrainRows};
use crate::device::{DeviceError, DeviceSpec, Placement};
use crate::eval::{EvalError, eval_loss};
use crate::log::{LogError, LogWriter, Record, StepRecord};
use crate::model::{ConfigError, Mllm, ModelConfig, Precision};
use crate::model_input::{self, ModelInputError};
use crate::optim::{AdamW, OptimError};
use crate::schedule::{ScheduleError, StagePlan, plan};
use crate::svg;
use mixtape_shards::Row;

/// File names inside the run folder.
pub const LOG_FILE: &str = "train.jsonl";
pub const CURVE_FILE: &str = "loss.svg";
pub const SUMMARY_FILE: &str = "summary.json";
/// Held-back rows per stage unless told otherwise.
pub const DEFAULT_HOLDOUT_ROWS: usize = 4;

/// Everything a run needs, resolved.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub recipe: Recipe,
    /// The build output folder (`mixtape build --out`), one sub-folder per stage.
    pub data: PathBuf,
    /// The run folder: log, checkpoints, loss curve.
    pub out: PathBuf,
    pub device: DeviceSpec,
    /// The Ascend backend library for `npu` devices (`None`: `$MIXTAPE_NPU_LIB`); unused otherwise.
    pub npu_lib: Option<PathBuf>,
    pub precision: Precision,
    pub recompute: bool,
    pub seed: u64,
    pub model: ModelConfig,
    pub holdout_rows: usize,
    /// Multiplies every stage's learning rate. Recipes state rates for the real model they describe
    /// (a pretrained LLM fine-tuned at 1e-5); a small model trained from scratch as a stand-in needs
    /// larger ones.
    pub lr_multiplier: f64,
    /// Cap on optimizer steps per stage (smoke runs, tests).
    pub max_steps_per_stage: Option<u64>,
    /// Save a checkpoint every N global steps.
    pub save_every: Option<u64>,
    /// Evaluate the current stage's held-back rows every N global steps (besides stage starts/ends).
    pub eval_every: Option<u64>,
    /// Save and stop after this global step (to test resuming, or to split a job).
    pub stop_after: Option<u64>,
    pub resume: Option<PathBuf>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    ModelInput(#[from] ModelInputError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Optim(#[from] OptimError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot load tokenizer {}: {detail}", path.display())]
    Tokenizer { path: PathBuf, detail: String },
    #[error("{}: {detail}", path.display())]
    Resume { path: PathBuf, detail: String },
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainSummary {
    /// `false` when it stopped at `stop_after`.
    pub finished: bool,
    pub global_steps: u64,
    /// Held-back loss of every stage's rows before the first step and at the end (absent after a
    /// stop).
    pub initial_eval: Option<f64>,
    pub final_eval: Option<f64>,
    /// The last checkpoint written.
    pub checkpoint: PathBuf,
    /// Tokens per second over the steps of this invocation.
    pub tokens_per_s: f64,
    pub parameters: i64,
}

/// Token ids the model needs from the recipe's tokenizer: vocabulary size and `<|image_pad|>`.
pub fn tokenizer_ids(recipe: &Recipe) -> Result<(i64, i32), TrainError> {
    let encoder = mixtape_engine::template::Encoder::from_file(&recipe.tokenizer).map_err(|e| {
        TrainError::Tokenizer {
            path: recipe.tokenizer.clone(),
            detail: e.to_string(),
        }
    })?;
    let vocab = encoder.tokenizer().get_vocab_size(true) as i64;
    Ok((vocab, encoder.special().image_pad as i32))
}

struct Run<'a> {
    opts: &'a TrainOptions,
    model: Mllm,
    placement: Placement,
    image_pad: i32,
    plans: Vec<StagePlan>,
    holdouts: Vec<Holdout>,
    log: LogWriter,
    global_step: u64,
    tokens: u64,
    busy_s: f64,
}

/// Trains the recipe's stages on the build in `opts.data`.
pub fn train(opts: &TrainOptions) -> Result<TrainSummary, TrainError> {
    // First: an NPU backend must be loaded before the process runs any backward pass.
    let placement = opts.device.placement(opts.npu_lib.as_deref())?;
    let (vocab, image_pad) = tokenizer_ids(&opts.recipe)?;
    let mut plans = plan(
        &opts.recipe,
        &opts.data,
        opts.holdout_rows,
        opts.max_steps_per_stage,
    )?;
    for p in &mut plans {
        p.lr *= opts.lr_multiplier;
    }
    let resume = opts.resume.as_deref().map(Checkpoint::load).transpose()?;
    let mut config = opts.model.clone();
    if config.vocab_size == 0 {
        config.vocab_size = vocab;
    }
    let seed = match &resume {
        Some(c) => {
            check_resume(opts, &config, &plans, c)?;
            c.meta.seed
        }
        None => opts.seed,
    };
    let model = Mllm::try_new(config, &placement, seed)?;
    std::fs::create_dir_all(&opts.out).map_err(|source| TrainError::Io {
        path: opts.out.clone(),
        source,
    })?;
    let holdouts = plans
        .iter()
        .map(|p| Holdout::read(&p.dir, opts.holdout_rows))
        .collect::<Result<Vec<_>, _>>()?;
    let log = LogWriter::open(
        &opts.out.join(LOG_FILE),
        resume.as_ref().map(|c| c.meta.global_step),
    )?;
    let mut run = Run {
        opts,
        model,
        placement,
        image_pad,
        plans,
        holdouts,
        log,
        global_step: 0,
        tokens: 0,
        busy_s: 0.0,
    };
    run.execute(resume, seed)
}

fn check_resume(
    opts: &TrainOptions,
    config: &ModelConfig,
    plans: &[StagePlan],
    c: &Checkpoint,
) -> Result<(), TrainError> {
    let path = opts.resume.clone().unwrap_or_default();
    let bad = |detail: String| {
        Err(TrainError::Resume {
            path: path.clone(),
            detail,
        })
    };
    if &c.meta.model != config {
        return bad("the checkpoint's model configuration differs from this run's (pass the same --model-config)".into());
    }
    if c.meta.stage_index > plans.len() {
        return bad(format!(
            "it is at stage {} of a schedule with {} stages",
            c.meta.stage_index,
            plans.len()
        ));
    }
    if let Some(plan) = plans.get(c.meta.stage_index)
        && plan.name != c.meta.stage
    {
        return bad(format!(
            "it continues stage `{}`, the recipe has `{}` there",
            c.meta.stage, plan.name
        ));
    }
    if !c.meta.averaged_from.is_empty() {
        return bad(
            "an averaged checkpoint has no optimizer state or data cursor to resume from".into(),
        );
    }
    Ok(())
}

impl Run<'_> {
    fn execute(
        &mut self,
        resume: Option<Checkpoint>,
        seed: u64,
    ) -> Result<TrainSummary, TrainError> {
        let (mut start_stage, mut start_step, mut reader, mut optimizer) = (0, 0, None, None);
        if let Some(c) = resume {
            load_weights(&self.model, &c, &self.placement)?;
            self.global_step = c.meta.global_step;
            start_stage = c.meta.stage_index;
            start_step = c.meta.step;
            reader = c.meta.reader.clone();
            if let Some(plan) = self.plans.get(start_stage) {
                self.model.params.set_trainable(
                    &plan
                        .trainable
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                );
            }
            let state = c
                .with_prefix("optim.", &self.placement)
                .into_iter()
                .map(|(n, t)| (format!("optim.{n}"), t))
                .collect();
            // Each stage starts a fresh optimizer, so its step count is the stage's step.
            optimizer = Some(AdamW::restore(&self.model.params, c.meta.step, state)?);
        }
        let initial_eval = if self.global_step == 0 {
            Some(self.eval_all()?)
        } else {
            None
        };
        let mut checkpoint = self.opts.resume.clone().unwrap_or_default();
        let stages: Vec<_> = self
            .plans
            .iter()
            .map(|p| (p.dir.clone(), p.name.clone(), p.batch_size))
            .collect();
        // One reader over the whole schedule; a checkpoint at a stage's end has no cursor, and the
        // reader then starts at that stage.
        let mut rows = TrainRows::try_new(&stages, seed, reader.take())?;
        for index in start_stage..self.plans.len() {
            let plan = self.plans[index].clone();
            let modules: Vec<&str> = plan.trainable.iter().map(String::as_str).collect();
            self.model.params.set_trainable(&modules);
            let mut optim = optimizer.take().unwrap_or_default();
            let first_step = if index == start_stage { start_step } else { 0 };
            // Skips what a capped previous stage left unread (nothing when resumed in this stage).
            rows.start_stage(index)?;
            if first_step == 0 {
                self.eval_stage(index)?;
            }
            let mut tally = rows.tally().by_category.clone();
            let mut skipped = rows.skipped;
            for step in first_step..plan.steps {
                let started = Instant::now();
                let Some(micro) = self.read_step(&mut rows, &plan, index)? else {
                    break;
                };
                let record = self.optimizer_step(
                    &plan,
                    step,
                    &micro,
                    &mut optim,
                    &rows,
                    &mut tally,
                    &mut skipped,
                    started,
                )?;
                self.log.write(&Record::Step(record))?;
                let save_now = self
                    .opts
                    .save_every
                    .is_some_and(|n| self.global_step.is_multiple_of(n));
                let stop_now = self.opts.stop_after == Some(self.global_step);
                if save_now || stop_now {
                    let meta = self.meta(index, step + 1, Some(rows.state()), seed);
                    checkpoint = self
                        .opts
                        .out
                        .join(format!("step-{:06}.safetensors", self.global_step));
                    self.save(&checkpoint, meta, Some(&optim))?;
                }
                if stop_now {
                    return Ok(self.summary(false, initial_eval, None, checkpoint));
                }
                if self
                    .opts
                    .eval_every
                    .is_some_and(|n| self.global_step.is_multiple_of(n))
                    && step + 1 < plan.steps
                {
                    self.eval_stage(index)?;
                }
            }
            self.eval_stage(index)?;
            checkpoint = self
                .opts
                .out
                .join(format!("stage-{}.safetensors", plan.name));
            self.save(&checkpoint, self.meta(index + 1, 0, None, seed), None)?;
            self.log.write(&Record::StageEnd {
                stage: plan.name.clone(),
                global_step: self.global_step,
                steps: plan.steps,
                checkpoint: checkpoint.display().to_string(),
            })?;
        }
        let final_eval = Some(self.eval_all()?);
        let summary = self.summary(true, initial_eval, final_eval, checkpoint);
        let records = crate::log::read(&self.opts.out.join(LOG_FILE))?;
        let curve = self.opts.out.join(CURVE_FILE);
        std::fs::write(&curve, svg::loss_curve(&records, &self.opts.recipe.name)).map_err(
            |source| TrainError::Io {
                path: curve,
                source,
            },
        )?;
        let path = self.opts.out.join(SUMMARY_FILE);
        let json = serde_json::to_string_pretty(&summary).expect("summary serializes") + "\n";
        std::fs::write(&path, json).map_err(|source| TrainError::Io { path, source })?;
        Ok(summary)
    }

    /// The micro-batches of one step (`None` once the stage's rows are exhausted).
    fn read_step(
        &mut self,
        rows: &mut TrainRows,
        plan: &StagePlan,
        index: usize,
    ) -> Result<Option<Vec<Vec<Row>>>, TrainError> {
        let mut micro = Vec::with_capacity(plan.grad_accum);
        while micro.len() < plan.grad_accum {
            match rows.next_batch(index, &self.holdouts[index]) {
                None => break,
                Some(batch) => {
                    let batch = batch?;
                    if !batch.is_empty() {
                        micro.push(batch);
                    }
                }
            }
        }
        Ok((!micro.is_empty()).then_some(micro))
    }

    #[allow(clippy::too_many_arguments)]
    fn optimizer_step(
        &mut self,
        plan: &StagePlan,
        step: u64,
        micro: &[Vec<Row>],
        optim: &mut AdamW,
        rows: &TrainRows,
        tally: &mut std::collections::BTreeMap<String, mixtape_shards::Counts>,
        skipped: &mut u64,
        started: Instant,
    ) -> Result<StepRecord, TrainError> {
        let loss_tokens: usize = micro.iter().map(|m| model_input::loss_tokens(m)).sum();
        let (mut loss_sum, mut tokens, mut image_tokens, mut n_rows) = (0.0, 0u64, 0u64, 0u64);
        for rows in micro {
            let (input, counts) = model_input::model_input(
                rows,
                &self.model.config,
                self.image_pad,
                &self.placement,
            )?;
            tokens += counts.tokens as u64;
            image_tokens += counts.image_tokens as u64;
            n_rows += counts.rows as u64;
            if counts.loss_tokens > 0 {
                let scale = 1.0 / loss_tokens as f64;
                let stats = self.model.forward_backward(
                    &input,
                    scale,
                    self.opts.precision,
                    self.opts.recompute,
                );
                loss_sum += stats.loss_sum;
            }
        }
        let grad_norm = AdamW::clip_grad_norm(&self.model.params, plan.clip_grad);
        optim.step(&self.model.params, plan.weight_decay, |name| {
            plan.module_lr(crate::model::ParamStore::module_of(name), step)
        });
        self.global_step += 1;
        let elapsed = started.elapsed().as_secs_f64();
        self.tokens += tokens;
        self.busy_s += elapsed;
        let now = rows.tally().by_category.clone();
        let window: Vec<(String, u64)> = now
            .iter()
            .map(|(c, counts)| {
                (
                    c.clone(),
                    counts.tokens - tally.get(c).map_or(0, |p| p.tokens),
                )
            })
            .collect();
        let total: u64 = window.iter().map(|(_, t)| t).sum();
        let mix = window
            .into_iter()
            .filter(|(_, t)| *t > 0)
            .map(|(c, t)| (c, (t as f64 / total.max(1) as f64 * 1e6).round() / 1e6))
            .collect();
        *tally = now;
        let skipped_rows = rows.skipped - *skipped;
        *skipped = rows.skipped;
        Ok(StepRecord {
            stage: plan.name.clone(),
            step: step + 1,
            global_step: self.global_step,
            loss: if loss_tokens > 0 {
                loss_sum / loss_tokens as f64
            } else {
                0.0
            },
            lr: plan.lr_at(step),
            lrs: plan
                .trainable
                .iter()
                .map(|m| (m.clone(), plan.module_lr(m, step)))
                .collect(),
            grad_norm,
            rows: n_rows,
            tokens,
            loss_tokens: loss_tokens as u64,
            image_tokens,
            step_s: elapsed,
            tokens_per_s: tokens as f64 / elapsed.max(1e-9),
            mix,
            skipped_rows,
        })
    }

    fn eval_stage(&mut self, index: usize) -> Result<(), TrainError> {
        if self.holdouts[index].rows.is_empty() {
            return Ok(());
        }
        let loss = eval_loss(
            &self.model,
            &self.holdouts[index].rows,
            self.image_pad,
            self.opts.precision,
            &self.placement,
        )?;
        let name = self.plans[index].name.clone();
        self.log.write(&Record::Eval {
            set: name.clone(),
            stage: name,
            global_step: self.global_step,
            loss: loss.loss,
            loss_tokens: loss.loss_tokens,
        })?;
        Ok(())
    }

    /// Held-back loss over every stage's rows together.
    fn eval_all(&mut self) -> Result<f64, TrainError> {
        let rows: Vec<Row> = self
            .holdouts
            .iter()
            .flat_map(|h| h.rows.iter().cloned())
            .collect();
        if rows.is_empty() {
            return Ok(f64::NAN);
        }
        let loss = eval_loss(
            &self.model,
            &rows,
            self.image_pad,
            self.opts.precision,
            &self.placement,
        )?;
        let stage = self
            .plans
            .iter()
            .find(|_| true)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        self.log.write(&Record::Eval {
            set: "all".into(),
            stage,
            global_step: self.global_step,
            loss: loss.loss,
            loss_tokens: loss.loss_tokens,
        })?;
        Ok(loss.loss)
    }

    fn meta(
        &self,
        stage_index: usize,
        step: u64,
        reader: Option<mixtape_shards::ReaderState>,
        seed: u64,
    ) -> CheckpointMeta {
        CheckpointMeta {
            format: CHECKPOINT_FORMAT,
            model: self.model.config.clone(),
            seed,
            stage_index,
            stage: self
                .plans
                .get(stage_index)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            step,
            global_step: self.global_step,
            reader,
            averaged_from: vec![],
        }
    }

    fn save(
        &self,
        path: &Path,
        meta: CheckpointMeta,
        optim: Option<&AdamW>,
    ) -> Result<(), TrainError> {
        let mut tensors: Vec<(String, tch::Tensor)> = self
            .model
            .params
            .iter()
            .map(|(n, t)| (format!("{MODEL_PREFIX}{n}"), t.detach()))
            .collect();
        if let Some(optim) = optim {
            tensors.extend(optim.state_tensors());
        }
        // Read back through the placement: a checkpoint holds CPU tensors, whatever the device.
        let tensors = tensors
            .into_iter()
            .map(|(n, t)| (n, self.placement.to_cpu(&t)))
            .collect();
        Checkpoint { meta, tensors }.save(path)?;
        Ok(())
    }

    fn summary(
        &self,
        finished: bool,
        initial_eval: Option<f64>,
        final_eval: Option<f64>,
        checkpoint: PathBuf,
    ) -> TrainSummary {
        TrainSummary {
            finished,
            global_steps: self.global_step,
            initial_eval,
            final_eval,
            checkpoint,
            tokens_per_s: self.tokens as f64 / self.busy_s.max(1e-9),
            parameters: self.model.params.numel(),
        }
    }
}

/// Copies a checkpoint's `model.*` tensors into the model's parameters; every parameter must be
/// present with its shape.
pub fn load_weights(
    model: &Mllm,
    checkpoint: &Checkpoint,
    placement: &Placement,
) -> Result<(), CheckpointError> {
    let weights: std::collections::BTreeMap<String, tch::Tensor> = checkpoint
        .with_prefix(MODEL_PREFIX, placement)
        .into_iter()
        .collect();
    for (name, p) in model.params.iter() {
        let w = weights.get(name).ok_or_else(|| CheckpointError::Meta {
            path: PathBuf::new(),
            detail: format!("it has no weights for `{name}`"),
        })?;
        if w.size() != p.size() {
            return Err(CheckpointError::Meta {
                path: PathBuf::new(),
                detail: format!(
                    "`{name}` has shape {:?}, the model {:?}",
                    w.size(),
                    p.size()
                ),
            });
        }
        tch::no_grad(|| p.shallow_clone().copy_(w));
    }
    Ok(())
}
