//! `mixtape audit --stream`: the mix a training run really consumes in its first steps.
//!
//! The shard audit answers "what do the shards hold"; this one answers "what does rank R see in
//! steps 1..N", which is what a user checks before trusting the first hours of a run. It reads the
//! stages in schedule order through the same [`Reader`] a trainer uses (same seed, batch size, rank
//! and world size, images skipped: only counts matter), and cuts the steps into windows. A window's
//! figures are the difference of the reader's consumed-counts [`Tally`] at its two ends, so the audit
//! reports exactly what the reader says it yielded; a window closes early where the stage changes,
//! so every window compares with one stage's target.

use std::path::{Path, PathBuf};

use mixtape_shards::Counts;
use mixtape_shards::reader::{ImageMode, Reader, ReaderError, ReaderOptions, Tally};
use serde::Serialize;

use super::layout::{discover, ordered};
use super::{AuditError, Shares};
use crate::plan::Plan;
use crate::recipe::Basis;

/// Windows a stream audit reports when `--window` is not given.
pub const DEFAULT_WINDOWS: u64 = 4;

/// Settings of a stream audit.
#[derive(Clone, Debug)]
pub struct StreamOptions<'a> {
    /// Training steps (batches of this rank) to read.
    pub steps: u64,
    /// Steps per window; `None` cuts the steps into [`DEFAULT_WINDOWS`] windows.
    pub window_steps: Option<u64>,
    /// The reader's settings (seed, batch size, rank, world size); its image mode is ignored.
    pub reader: ReaderOptions,
    /// The plan whose stage targets each window is compared with.
    pub plan: Option<&'a Plan>,
}

/// Why a stream audit could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamAuditError {
    #[error(transparent)]
    Layout(#[from] AuditError),
    #[error(transparent)]
    Reader(#[from] ReaderError),
    #[error("--steps must be at least 1 (and --window too, when given)")]
    NoSteps,
}

/// The `--json` document of a stream audit.
#[derive(Clone, Debug, Serialize)]
pub struct StreamAudit {
    pub dir: PathBuf,
    pub rank: usize,
    pub world_size: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Steps asked for, and read (fewer when the data ran out first).
    pub steps_requested: u64,
    pub steps_read: u64,
    pub windows: Vec<StreamWindow>,
    /// What the reader warned about before reading (e.g. a stage too small to fill one global step,
    /// which yields nothing).
    pub warnings: Vec<String>,
}

/// Consecutive steps of one stage.
#[derive(Clone, Debug, Serialize)]
pub struct StreamWindow {
    /// First and last step, counted from 1.
    pub first_step: u64,
    pub last_step: u64,
    pub stage: String,
    pub rows: u64,
    pub total: Counts,
    /// The stage's budget basis (from the plan), on which shares and targets are given.
    pub basis: Option<Basis>,
    pub categories: Vec<StreamMixLine>,
}

/// One category within a window.
#[derive(Clone, Debug, Serialize)]
pub struct StreamMixLine {
    pub name: String,
    pub counts: Counts,
    pub share: Shares,
    pub target_share: Option<f64>,
    /// `100 * (share on the basis - target)`.
    pub deviation_pp: Option<f64>,
}

/// Reads the first `options.steps` batches of `dir` (a build output or one stage folder).
pub fn audit_stream(
    dir: &Path,
    options: &StreamOptions<'_>,
) -> Result<StreamAudit, StreamAuditError> {
    let window_steps = options
        .window_steps
        .unwrap_or_else(|| options.steps.div_ceil(DEFAULT_WINDOWS))
        .max(1);
    if options.steps == 0 || options.window_steps == Some(0) {
        return Err(StreamAuditError::NoSteps);
    }
    let found = discover(dir)?;
    let stage_dirs: Vec<PathBuf> = ordered(&found.stages, options.plan)
        .into_iter()
        .map(|s| s.path.clone())
        .collect();
    let reader_options = options.reader.clone().with_image_mode(ImageMode::Skip);
    let mut reader = Reader::try_new(&stage_dirs, reader_options.clone(), None)?;
    let warnings = reader.warnings().iter().map(ToString::to_string).collect();

    let mut windows = Vec::new();
    let mut open: Option<OpenWindow> = None;
    let mut steps_read = 0;
    while steps_read < options.steps {
        let Some(batch) = reader.next() else { break };
        let batch = batch?;
        steps_read += 1;
        let stage = batch
            .rows
            .first()
            .map_or_else(String::new, |r| r.stage.clone());
        // What the reader had yielded before this batch: the open window's end (nothing at step 1).
        let before = open
            .as_ref()
            .map_or_else(Tally::default, |w| w.after.clone());
        if let Some(window) = open.take_if(|w| w.stage != stage || w.steps == window_steps) {
            windows.push(window.close(before.clone(), options.plan));
        }
        let window = open.get_or_insert_with(|| OpenWindow::start(steps_read, stage, before));
        window.steps += 1;
        window.last_step = steps_read;
        window.after = reader.tally().clone();
    }
    if let Some(window) = open {
        let end = window.after.clone();
        windows.push(window.close(end, options.plan));
    }
    Ok(StreamAudit {
        dir: dir.to_path_buf(),
        rank: reader_options.rank(),
        world_size: reader_options.world_size(),
        batch_size: reader_options.batch_size(),
        seed: reader_options.seed(),
        steps_requested: options.steps,
        steps_read,
        windows,
        warnings,
    })
}

struct OpenWindow {
    first_step: u64,
    last_step: u64,
    steps: u64,
    stage: String,
    before: Tally,
    after: Tally,
}

impl OpenWindow {
    fn start(step: u64, stage: String, before: Tally) -> Self {
        OpenWindow {
            first_step: step,
            last_step: step,
            steps: 0,
            stage,
            after: before.clone(),
            before,
        }
    }

    /// The window's counts are `end - before`, category by category.
    fn close(self, end: Tally, plan: Option<&Plan>) -> StreamWindow {
        let total = minus(&end.total, &self.before.total);
        let stage_plan = plan.and_then(|p| p.stages.iter().find(|s| s.name == self.stage));
        let basis = stage_plan.map(|s| s.basis);
        let mut names: Vec<&String> = end.by_category.keys().collect();
        if let Some(stage_plan) = stage_plan {
            names.extend(stage_plan.categories.iter().map(|c| &c.name));
        }
        names.sort();
        names.dedup();
        let categories = names
            .into_iter()
            .filter_map(|name| {
                let now = end.by_category.get(name).copied().unwrap_or_default();
                let was = self
                    .before
                    .by_category
                    .get(name)
                    .copied()
                    .unwrap_or_default();
                let counts = minus(&now, &was);
                let target_share = stage_plan.map(|s| {
                    s.categories
                        .iter()
                        .find(|c| &c.name == name)
                        .map_or(0.0, |c| c.target_share)
                });
                if counts == Counts::default() && target_share.is_none_or(|t| t == 0.0) {
                    return None;
                }
                let share = Shares::of(&counts, &total);
                let deviation_pp = basis
                    .zip(target_share)
                    .map(|(b, t)| 100.0 * (share.on(b) - t));
                Some(StreamMixLine {
                    name: name.clone(),
                    counts,
                    share,
                    target_share,
                    deviation_pp,
                })
            })
            .collect();
        StreamWindow {
            first_step: self.first_step,
            last_step: self.last_step,
            stage: self.stage,
            rows: end.rows - self.before.rows,
            total,
            basis,
            categories,
        }
    }
}

fn minus(a: &Counts, b: &Counts) -> Counts {
    Counts {
        samples: a.samples - b.samples,
        tokens: a.tokens - b.tokens,
        loss_tokens: a.loss_tokens - b.loss_tokens,
        image_tokens: a.image_tokens - b.image_tokens,
        images: a.images - b.images,
    }
}

/// The readable table of a stream audit.
pub fn render_table(audit: &StreamAudit) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "stream audit of {}: rank {} of {}, batch size {}, seed {}, {} of {} steps read",
        audit.dir.display(),
        audit.rank,
        audit.world_size,
        audit.batch_size,
        audit.seed,
        audit.steps_read,
        audit.steps_requested
    );
    for w in &audit.windows {
        let basis = w
            .basis
            .map_or("tokens".to_owned(), |b| basis_name(b).to_owned());
        let _ = writeln!(
            out,
            "\nsteps {}-{} ({}): {} rows, {} samples, {} tokens; shares on {basis}",
            w.first_step, w.last_step, w.stage, w.rows, w.total.samples, w.total.tokens
        );
        let _ = writeln!(
            out,
            "  {:<20} {:>9} {:>11} {:>9} {:>9} {:>9}",
            "category", "samples", "tokens", "share", "target", "dev pp"
        );
        for c in &w.categories {
            let share = w.basis.map_or(c.share.tokens, |b| c.share.on(b));
            let target = c
                .target_share
                .map_or("-".to_owned(), |t| format!("{:.2}%", 100.0 * t));
            let dev = c
                .deviation_pp
                .map_or("-".to_owned(), |d| format!("{d:+.2}"));
            let _ = writeln!(
                out,
                "  {:<20} {:>9} {:>11} {:>8.2}% {:>9} {:>9}",
                c.name,
                c.counts.samples,
                c.counts.tokens,
                100.0 * share,
                target,
                dev
            );
        }
    }
    out
}

fn basis_name(basis: Basis) -> &'static str {
    match basis {
        Basis::Samples => "samples",
        Basis::Tokens => "tokens",
        Basis::LossTokens => "loss tokens",
        Basis::ImageTokens => "image tokens",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_the_difference_of_two_tallies() {
        let mut before = Tally {
            total: Counts {
                samples: 2,
                tokens: 100,
                loss_tokens: 50,
                image_tokens: 0,
                images: 0,
            },
            ..Tally::default()
        };
        before.by_category.insert("text".into(), before.total);
        let mut after = before.clone();
        after.rows = 3;
        let caption = Counts {
            samples: 4,
            tokens: 300,
            loss_tokens: 40,
            image_tokens: 200,
            images: 4,
        };
        after.by_category.insert("caption".into(), caption);
        after.total = Counts {
            samples: 6,
            tokens: 400,
            loss_tokens: 90,
            image_tokens: 200,
            images: 4,
        };
        let window = OpenWindow {
            first_step: 2,
            last_step: 3,
            steps: 2,
            stage: "s".into(),
            before,
            after: Tally::default(),
        };
        let closed = window.close(after, None);
        assert_eq!(closed.total, caption);
        assert_eq!(closed.rows, 3);
        let names: Vec<_> = closed.categories.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["caption"],
            "a category with nothing in the window and no target is left out"
        );
        assert_eq!(closed.categories[0].share.tokens, 1.0);
        assert_eq!(closed.categories[0].deviation_pp, None);
    }
}
