//! The stage schedule: the recipe's `train` hints joined with what the build actually wrote.
//!
//! For every stage of the recipe, in order: its shard folder `DATA/STAGE` (its manifest must name the
//! same stage and `seq_len`), which modules train, the learning rate and per-module scales, the
//! warm-up fraction and decay shape, and the number of optimizer steps: one pass over the stage's rows
//! (minus the held-back ones) at `batch_size x grad_accum` rows per step. Weights carry over from one
//! stage to the next; each stage starts a fresh optimizer, as separately launched stages do.
//!
//! Learning rate at step `s` of `n` with `w = ceil(warmup x n)` warm-up steps: `lr x (s + 1) / w`
//! during warm-up, then `cosine` decays to `lr x MIN_LR_RATIO` along half a cosine, `linear` along a
//! line, `constant` stays at `lr`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mixtape_engine::recipe::{LrSchedule, Module, Recipe};

use crate::data::{DataError, stage_rows};

/// Where decaying schedules end, as a fraction of the peak learning rate.
pub const MIN_LR_RATIO: f64 = 0.1;

/// Why the recipe and the build cannot be trained together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    #[error("stage {stage}: {detail}")]
    Stage { stage: String, detail: String },
    #[error(transparent)]
    Data(#[from] DataError),
}

/// One stage, ready to train.
#[derive(Clone, Debug, PartialEq)]
pub struct StagePlan {
    pub name: String,
    pub dir: PathBuf,
    pub seq_len: u32,
    /// Module names (`vision`, `projector`, `llm`) whose parameters train.
    pub trainable: Vec<String>,
    pub lr: f64,
    pub lr_scale: BTreeMap<String, f64>,
    pub warmup: f64,
    pub schedule: LrSchedule,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub weight_decay: f64,
    pub clip_grad: f64,
    /// Rows trained on (the manifest's, minus the held-back ones).
    pub rows: u64,
    pub steps: u64,
}

fn module_name(m: Module) -> &'static str {
    match m {
        Module::Vision => "vision",
        Module::Projector => "projector",
        Module::Llm => "llm",
    }
}

/// Plans every stage of `recipe` over the build in `data`. `max_steps` caps each stage (for smoke
/// runs); the learning-rate schedule then spans the capped steps.
pub fn plan(
    recipe: &Recipe,
    data: &Path,
    holdout_rows: usize,
    max_steps: Option<u64>,
) -> Result<Vec<StagePlan>, ScheduleError> {
    recipe
        .stages
        .iter()
        .map(|stage| {
            let err = |detail: String| ScheduleError::Stage { stage: stage.name.clone(), detail };
            let layout = mixtape_shards::BuildLayout::new(data).stage(&stage.name);
            let dir = layout.dir().to_path_buf();
            if !layout.manifest().is_file() {
                return Err(err(format!(
                    "{} has no manifest ({}): build it first (mixtape build {} --out {})",
                    dir.display(),
                    layout.manifest().display(),
                    recipe.path.display(),
                    data.display()
                )));
            }
            let manifest = mixtape_shards::Manifest::read(layout.manifest())
                .map_err(DataError::from)?;
            if manifest.stage != stage.name || manifest.seq_len != stage.seq_len {
                return Err(err(format!(
                    "{} holds stage {} at seq_len {}, the recipe says {} at {}: rebuild with this recipe",
                    dir.display(),
                    manifest.stage,
                    manifest.seq_len,
                    stage.name,
                    stage.seq_len
                )));
            }
            let t = &stage.train;
            let rows = stage_rows(&dir)?.saturating_sub(holdout_rows as u64);
            let per_step = u64::from(t.batch_size) * u64::from(t.grad_accum);
            if per_step == 0 {
                return Err(err("train.batch_size and train.grad_accum must be at least 1".into()));
            }
            let mut steps = rows.div_ceil(per_step);
            if let Some(cap) = max_steps {
                steps = steps.min(cap);
            }
            if steps == 0 {
                return Err(err(format!("no rows left to train on ({} held back)", holdout_rows)));
            }
            Ok(StagePlan {
                name: stage.name.clone(),
                dir,
                seq_len: stage.seq_len,
                trainable: t.trainable.iter().map(|&m| module_name(m).to_string()).collect(),
                lr: t.lr,
                lr_scale: t.lr_scale.clone(),
                warmup: t.warmup,
                schedule: t.schedule,
                batch_size: t.batch_size as usize,
                grad_accum: t.grad_accum as usize,
                weight_decay: t.weight_decay,
                clip_grad: t.clip_grad,
                rows,
                steps,
            })
        })
        .collect()
}

impl StagePlan {
    pub fn warmup_steps(&self) -> u64 {
        (self.warmup * self.steps as f64).ceil() as u64
    }

    /// Peak-relative learning rate at `step` (0-based), before per-module scales.
    pub fn lr_at(&self, step: u64) -> f64 {
        let warm = self.warmup_steps();
        if step < warm {
            return self.lr * (step + 1) as f64 / warm as f64;
        }
        let decay_steps = self.steps.saturating_sub(warm).saturating_sub(1).max(1);
        let progress = ((step - warm) as f64 / decay_steps as f64).min(1.0);
        let floor = self.lr * MIN_LR_RATIO;
        match self.schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Linear => self.lr - (self.lr - floor) * progress,
            LrSchedule::Cosine => {
                floor + (self.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }

    /// The learning rate of `module` at `step`.
    pub fn module_lr(&self, module: &str, step: u64) -> f64 {
        self.lr_at(step) * self.lr_scale.get(module).copied().unwrap_or(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(schedule: LrSchedule, steps: u64, warmup: f64) -> StagePlan {
        StagePlan {
            name: "s".into(),
            dir: PathBuf::new(),
            seq_len: 16,
            trainable: vec!["projector".into()],
            lr: 1.0,
            lr_scale: BTreeMap::from([("projector".to_string(), 10.0)]),
            warmup,
            schedule,
            batch_size: 1,
            grad_accum: 1,
            weight_decay: 0.0,
            clip_grad: 1.0,
            rows: steps,
            steps,
        }
    }

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let s = stage(LrSchedule::Cosine, 21, 0.05); // 2 warm-up steps
        assert_eq!(s.warmup_steps(), 2);
        assert_eq!(s.lr_at(0), 0.5);
        assert_eq!(s.lr_at(1), 1.0);
        assert_eq!(s.lr_at(2), 1.0);
        assert!((s.lr_at(20) - MIN_LR_RATIO).abs() < 1e-12);
        let mid = s.lr_at(11);
        assert!(
            (mid - (MIN_LR_RATIO + (1.0 - MIN_LR_RATIO) * 0.5)).abs() < 1e-9,
            "{mid}"
        );
        assert!((1..21).all(|i| s.lr_at(i) <= s.lr_at(i - 1) || i < 2));
        assert_eq!(s.module_lr("projector", 2), 10.0);
        assert_eq!(s.module_lr("llm", 2), 1.0);
    }

    #[test]
    fn linear_and_constant() {
        let lin = stage(LrSchedule::Linear, 11, 0.0);
        assert_eq!(lin.lr_at(0), 1.0);
        assert!((lin.lr_at(10) - MIN_LR_RATIO).abs() < 1e-12);
        assert!((lin.lr_at(5) - 0.55).abs() < 1e-12);
        let c = stage(LrSchedule::Constant, 5, 0.0);
        assert!((0..5).all(|i| c.lr_at(i) == 1.0));
    }
}
