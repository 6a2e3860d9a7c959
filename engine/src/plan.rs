//! Planning: a recipe plus the sources' length indexes -> the exact draws of every stage.
//!
//! Each source is read as an endless stream of its valid samples: pass (epoch) `e` visits them in a
//! permutation seeded by (recipe seed, source name, e). Stages consume consecutive stretches of that
//! stream, in stage order, so a later stage never reuses what an earlier one took until `max_repeat`
//! lets the stream wrap around (a stage may reach stream position `max_repeat x samples`).
//!
//! A stage's budget is split across categories by `mix` (shares on the budget's basis) and within a
//! category across its sources by `weight` (or, when no source of the category sets one, by each
//! source's size on the basis). Both splits are integer and exact: largest-remainder (Hamilton)
//! apportionment, see [`apportion`], so a 60-sample budget at 1/3, 1/3, 1/6, 1/6 asks for exactly
//! 20/20/10/10 and the targets always sum to the budget.
//!
//! A source then draws samples until the next one would take it further from its target than
//! stopping does (`draw`: the closest draw wins, ties go to fewer), so a source lands within half a
//! sample of its target. Within a stage, what the sources drawn so far landed over or under their
//! targets is carried to the next source, which aims at its target minus that carry (error
//! diffusion, in mix order then source order): the stage's total stays within half a sample of its
//! budget instead of accumulating one half-sample error per source, and lands it exactly when the
//! last source can be cut. A source's `target` stays the apportioned one. On a token basis, a text sample (no images, loss on every token) may be cut
//! instead: the draw that would overshoot keeps only the tokens the target still needs, recorded as
//! [`SourceDraw::cut`], and the builder truncates that sample to exactly that many tokens before
//! splitting it into `seq_len` windows. A sample budget never cuts. Samples that the stage cannot use
//! (too long, images too elongated under the stage's image policy) are consumed and counted as
//! rejects, so every record lands in exactly one place.
//!
//! The builder replays the same draws from [`SourceDraw::start`]..[`SourceDraw::end`] through a
//! [`Stream`], which is why this module and not the builder owns the stream order.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::diag::{Diagnostic, Span};
use crate::image::{image_tokens, smart_resize};
use crate::index::{FileDigest, SourceIndex};
use crate::recipe::{Basis, ImagePolicy, LongText, Recipe, Stage};
use crate::reject::RejectCode;
use crate::source::spec::SourceSpec;
use crate::template::TurnEndLoss;

/// Version of the plan document (`mixtape plan --json`, lock files). 2: integer targets
/// (largest-remainder apportionment), closest-draw stopping and [`SourceDraw::cut`].
pub const PLAN_VERSION: u32 = 2;
/// Most passes the planner simulates when telling the user which `max_repeat` would suffice.
const MAX_SIMULATED_PASSES: u64 = 1000;

/// What a sample, a draw or a stage amounts to on every basis: the manifest's [`Counts`], which
/// the planner's expectations are compared with.
pub use mixtape_shards::Counts;

/// The resolved plan of a recipe: stable JSON (`--json`) and the content of lock files.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Plan {
    pub mixtape_plan: u32,
    pub name: String,
    pub fingerprint: String,
    pub seed: u64,
    pub tokenizer: FileDigest,
    pub sources: Vec<SourcePlan>,
    pub stages: Vec<StagePlan>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SourcePlan {
    pub name: String,
    pub format: String,
    pub category: String,
    pub weight: Option<f64>,
    pub files: Vec<FileDigest>,
    /// Records read, valid or not.
    pub records: u64,
    /// Valid samples.
    pub samples: u64,
    /// Records rejected while reading, by reason.
    pub rejected: BTreeMap<RejectCode, u64>,
    /// Serialized settings (format, fields, schema, ...), compared by `diff`.
    pub settings: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct StagePlan {
    pub name: String,
    pub extends: Option<String>,
    pub seq_len: u32,
    pub basis: Basis,
    pub budget: u64,
    pub max_repeat: u32,
    pub image: serde_json::Value,
    pub train: serde_json::Value,
    pub pack: serde_json::Value,
    pub categories: Vec<CategoryPlan>,
    pub expected: Counts,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct CategoryPlan {
    pub name: String,
    /// Share of the budget the recipe asks for.
    pub target_share: f64,
    /// The category's target on the stage's basis: the budget apportioned by largest remainder, so
    /// the categories' targets sum to the budget.
    pub target: u64,
    /// Share of the stage's expected total on the basis.
    pub expected_share: f64,
    pub expected: Counts,
    pub sources: Vec<SourceDraw>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SourceDraw {
    pub source: String,
    /// Fraction of the category's target assigned to this source.
    pub weight_share: f64,
    /// The source's target on the basis: the category's target apportioned by largest remainder.
    pub target: u64,
    /// Valid samples in the source (one pass).
    pub available: u64,
    /// Stream positions `[start, end)` this stage consumes.
    pub start: u64,
    pub end: u64,
    /// Samples consumed that the stage cannot use, by reason.
    pub rejected: BTreeMap<RejectCode, u64>,
    /// Passes over the source this stage's draws amount to.
    pub passes: f64,
    pub expected: Counts,
    /// When set, the last draw (stream position `end - 1`, a text sample) is cut to its first `cut`
    /// tokens so that the source lands its token target exactly; `expected` counts the cut sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<u64>,
}

/// What the planner needs per source.
#[derive(Debug)]
pub struct SourceInput<'a> {
    pub spec: &'a SourceSpec,
    pub index: &'a SourceIndex,
}

/// Resolves every stage. Sources that cannot satisfy a stage within `max_repeat` become diagnostics
/// pointing at the stage's budget.
///
/// On success the plan comes with warnings: a source whose largest sample alone (among those that
/// cannot be cut) is larger than its category's whole target in a stage, which makes that
/// category's realized share a matter of luck.
pub fn resolve(
    recipe: &Recipe,
    indexes: &BTreeMap<String, SourceIndex>,
    tokenizer: FileDigest,
) -> Result<(Plan, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut cursors: BTreeMap<&str, u64> = BTreeMap::new();
    let mut streams: BTreeMap<&str, Stream> = BTreeMap::new();
    let mut stages = Vec::new();
    let mut warnings = Vec::new();
    for stage in &recipe.stages {
        let mut categories = Vec::new();
        let shares: Vec<f64> = stage.mix.iter().map(|e| e.share).collect();
        let cat_targets = apportion(stage.budget.amount, &shares);
        // Over (+) or under (-) their targets, the sources drawn so far in this stage.
        let mut carry: i128 = 0;
        for (entry, &cat_target) in stage.mix.iter().zip(&cat_targets) {
            let members: Vec<&SourceSpec> = recipe.sources_in(&entry.category).collect();
            // Per source: its size on the basis, and its largest sample that cannot be cut.
            let measured: Vec<(u64, u64)> = members
                .iter()
                .map(|s| {
                    let index = &indexes[&s.name];
                    (0..index.samples()).fold((0, 0), |(size, largest), i| {
                        match usable(s, index, i, stage) {
                            Ok(a) if can_cut(index, i, stage, &a) => {
                                (size + stage.budget.basis.of(&a), largest)
                            }
                            Ok(a) => (
                                size + stage.budget.basis.of(&a),
                                largest.max(stage.budget.basis.of(&a)),
                            ),
                            Err(_) => (size, largest),
                        }
                    })
                })
                .collect();
            let sizes: Vec<f64> = measured.iter().map(|&(size, _)| size as f64).collect();
            let weights: Vec<f64> = if members.iter().all(|s| s.weight.is_none()) {
                sizes.clone()
            } else {
                members.iter().map(|s| s.weight.unwrap_or(1.0)).collect()
            };
            let total_weight: f64 = weights.iter().sum();
            let targets = apportion(cat_target, &weights);
            let mut draws = Vec::new();
            let mut expected = Counts::default();
            for (k, spec) in members.iter().enumerate() {
                let weight_share = if total_weight > 0.0 {
                    weights[k] / total_weight
                } else {
                    1.0 / members.len() as f64
                };
                let target = targets[k];
                let index = &indexes[&spec.name];
                let largest = measured[k].1;
                if target > 0 && largest > cat_target {
                    warnings.push(oversized(
                        stage,
                        spec,
                        &entry.category,
                        cat_target,
                        largest,
                        entry.span,
                    ));
                }
                let stream = streams
                    .entry(spec.name.as_str())
                    .or_insert_with(|| Stream::new(recipe.seed, &spec.name, index.samples()));
                let start = *cursors.get(spec.name.as_str()).unwrap_or(&0);
                let aim = (i128::from(target) - carry).clamp(0, i128::from(u64::MAX)) as u64;
                match draw(stream, spec, index, stage, start, aim) {
                    Ok(d) => {
                        carry +=
                            i128::from(stage.budget.basis.of(&d.expected)) - i128::from(target);
                        cursors.insert(spec.name.as_str(), d.end);
                        expected += &d.expected;
                        draws.push(SourceDraw {
                            source: spec.name.clone(),
                            weight_share,
                            target,
                            available: index.samples() as u64,
                            start,
                            end: d.end,
                            rejected: d.rejected,
                            passes: if index.samples() == 0 {
                                0.0
                            } else {
                                (d.end - start) as f64 / index.samples() as f64
                            },
                            expected: d.expected,
                            cut: d.cut,
                        });
                    }
                    Err(short) => errors.push(shortfall(
                        stage,
                        spec,
                        &entry.category,
                        target,
                        short,
                        stage.budget_span,
                    )),
                }
            }
            categories.push(CategoryPlan {
                name: entry.category.clone(),
                target_share: entry.share,
                target: cat_target,
                expected_share: 0.0,
                expected,
                sources: draws,
            });
        }
        let mut totals = Counts::default();
        categories.iter().for_each(|c| totals += &c.expected);
        let denominator = stage.budget.basis.of(&totals).max(1) as f64;
        for c in &mut categories {
            c.expected_share = stage.budget.basis.of(&c.expected) as f64 / denominator;
        }
        stages.push(StagePlan {
            name: stage.name.clone(),
            extends: stage.parent.clone(),
            seq_len: stage.seq_len,
            basis: stage.budget.basis,
            budget: stage.budget.amount,
            max_repeat: stage.max_repeat,
            image: to_json(&stage.image),
            train: to_json(&stage.train),
            pack: pack_settings(&stage.pack),
            categories,
            expected: totals,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let sources: Vec<SourcePlan> = recipe
        .sources
        .iter()
        .map(|spec| {
            let index = &indexes[&spec.name];
            SourcePlan {
                name: spec.name.clone(),
                format: format!("{:?}", spec.format).to_lowercase(),
                category: spec.category.clone(),
                weight: spec.weight,
                files: index.files.clone(),
                records: index.records,
                samples: index.samples() as u64,
                rejected: index.reject_counts(),
                settings: source_settings(spec, &recipe.path),
            }
        })
        .collect();
    let fingerprint = fingerprint(recipe, &sources, &stages, &tokenizer);
    let plan = Plan {
        mixtape_plan: PLAN_VERSION,
        name: recipe.name.clone(),
        fingerprint,
        seed: recipe.seed,
        tokenizer,
        sources,
        stages,
    };
    Ok((plan, warnings))
}

/// Splits `total` into integer parts proportional to `weights` that sum to `total` exactly:
/// largest-remainder (Hamilton) apportionment. Each part gets the floor of its quota
/// `total * w / sum(w)`, and the units left over go one each to the largest fractional remainders;
/// ties go to the larger weight, then to the earlier entry (recipe order for sources, category name
/// order for the mix), so the result is deterministic. Non-positive or non-finite weights count as 0;
/// when no weight is positive the parts are equal (remainders again to the earliest entries).
pub fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let clean: Vec<f64> = weights
        .iter()
        .map(|&w| if w.is_finite() && w > 0.0 { w } else { 0.0 })
        .collect();
    let sum: f64 = clean.iter().sum();
    let clean = if sum > 0.0 {
        clean
    } else {
        vec![1.0; weights.len()]
    };
    let sum: f64 = clean.iter().sum();
    let quotas: Vec<f64> = clean.iter().map(|w| total as f64 * (w / sum)).collect();
    let mut parts: Vec<u64> = quotas
        .iter()
        .map(|q| (q.floor() as u64).min(total))
        .collect();
    // Float quotas can sum a unit away from `total` in either direction; both are corrected here.
    let assigned: u64 = parts.iter().sum();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (quotas[a] - quotas[a].floor(), quotas[b] - quotas[b].floor());
        rb.total_cmp(&ra)
            .then(clean[b].total_cmp(&clean[a]))
            .then(a.cmp(&b))
    });
    if assigned <= total {
        for &i in order.iter().cycle().take((total - assigned) as usize) {
            parts[i] += 1;
        }
    } else {
        let mut excess = assigned - total;
        for &i in order.iter().rev().cycle() {
            if excess == 0 {
                break;
            }
            if parts[i] > 0 {
                parts[i] -= 1;
                excess -= 1;
            }
        }
    }
    parts
}

/// Whether the stage may cut this sample (see [`cut_to`]).
fn can_cut(index: &SourceIndex, sample: usize, stage: &Stage, whole: &Counts) -> bool {
    // Under any long-text policy: a cut keeps fewer tokens than the sample's usable ones, so it
    // fits a window whenever the sample does (`truncate` already kept at most seq_len, `drop` left
    // only samples that fit), and under `split` it is windowed like any other.
    cuttable_basis(stage.budget.basis)
        && index.is_text[sample] != 0
        && whole.images == 0
        && whole.loss_tokens == whole.tokens
}

/// Bases on which a text sample can be cut to land a target exactly.
fn cuttable_basis(basis: Basis) -> bool {
    matches!(basis, Basis::Tokens | Basis::LossTokens)
}

fn oversized(
    stage: &Stage,
    spec: &SourceSpec,
    category: &str,
    target: u64,
    largest: u64,
    span: Span,
) -> Diagnostic {
    let noun = stage.budget.basis.noun();
    Diagnostic::warning(
        span,
        format!(
            "one sample of source `{}` ({} {noun}) is larger than the whole target of category `{category}` in stage `{}` ({} {noun}): the category's share will be far from its mix",
            spec.name,
            group(largest),
            stage.name,
            group(target),
        ),
    )
    .with_hint(format!("raise the budget of `{}` or the share of `{category}`, or move such samples to a stage with room for them", stage.name))
}

/// A stage's `pack` settings as plans record them. `long_text` is recorded as `split_long_text`,
/// the switch it replaced (true for `split`, false for `drop`), plus `long_text` for `truncate`, so
/// the plans and fingerprints of recipes written before it are the ones earlier versions made.
fn pack_settings(pack: &crate::recipe::PackPolicy) -> serde_json::Value {
    let mut value = serde_json::json!({
        "algorithm": pack.algorithm,
        "buffer": pack.buffer,
        "max_image_tokens": pack.max_image_tokens,
        "split_long_text": pack.long_text == LongText::Split,
    });
    if pack.long_text == LongText::Truncate
        && let Some(map) = value.as_object_mut()
    {
        map.insert("long_text".into(), pack.long_text.name().into());
    }
    value
}

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The settings of a source that shape its samples (not its files: those are digested separately).
fn source_settings(spec: &SourceSpec, recipe_path: &std::path::Path) -> serde_json::Value {
    let base = recipe_path.parent().unwrap_or(std::path::Path::new("."));
    let f = &spec.fields;
    let mut settings = serde_json::json!({
        "format": format!("{:?}", spec.format).to_lowercase(),
        "category": spec.category,
        "weight": spec.weight,
        "schema": spec.schema.map(|s| format!("{s:?}").to_lowercase()),
        "fields": {
            "image": f.image, "caption": f.caption, "text": f.text,
            "conversations": f.conversations, "messages": f.messages,
        },
        "image_root": spec.image_root.as_ref().map(|r| crate::index::relative_path(r, base)),
        "synthetic": spec.synthetic.as_ref().map(|s| serde_json::json!({
            "kind": s.kind.name(), "count": s.count, "seed": s.seed,
        })),
    });
    // The record cap decides which records are rejected, so it is part of the data; listed only when
    // it differs from the default, so recipes that leave it alone keep their settings (and diffs) short.
    if spec.max_record_bytes != crate::recipe::DEFAULT_MAX_RECORD_BYTES
        && let Some(map) = settings.as_object_mut()
    {
        map.insert("max_record_bytes".into(), spec.max_record_bytes.into());
    }
    // The same for the settings that change how records render or fit: listed when set.
    if let Some(map) = settings.as_object_mut() {
        if let Some(system) = &spec.chat.system {
            map.insert("system".into(), system.clone().into());
        }
        if spec.chat.turn_end_loss != TurnEndLoss::default() {
            map.insert(
                "turn_end_loss".into(),
                spec.chat.turn_end_loss.name().into(),
            );
        }
        if let Some(long_text) = spec.long_text {
            map.insert("long_text".into(), long_text.name().into());
        }
    }
    settings
}

/// blake3 over everything that changes the data: source settings and file contents, the tokenizer,
/// the seed, and every stage setting. Names, descriptions, key order, comments and whitespace do not
/// count (the document hashed is rebuilt from typed values in a fixed order).
fn fingerprint(
    recipe: &Recipe,
    sources: &[SourcePlan],
    stages: &[StagePlan],
    tokenizer: &FileDigest,
) -> String {
    let doc = serde_json::json!({
        "plan_version": PLAN_VERSION,
        "index_version": crate::index::INDEX_VERSION,
        "seed": recipe.seed,
        "template": recipe.template,
        "tokenizer": tokenizer.blake3,
        "sources": sources.iter().map(|s| serde_json::json!({
            "name": s.name,
            "settings": s.settings,
            "files": s.files.iter().map(|f| (&f.path, &f.blake3)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "stages": stages.iter().map(|s| serde_json::json!({
            "name": s.name, "seq_len": s.seq_len, "basis": s.basis, "budget": s.budget,
            "max_repeat": s.max_repeat, "image": s.image, "train": s.train, "pack": s.pack,
            "mix": s.categories.iter().map(|c| (&c.name, c.target_share)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    blake3::hash(&bytes).to_hex().to_string()
}

/// Why a sample cannot be used in a stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unusable {
    TooLong { tokens: u64, seq_len: u32 },
    Image(String, RejectCode),
}

impl Unusable {
    pub fn code(&self) -> RejectCode {
        match self {
            Unusable::TooLong { .. } => RejectCode::TooLong,
            Unusable::Image(_, code) => *code,
        }
    }
}

/// A sample's amounts under a stage's policies, or why the stage cannot use it.
pub fn usable(
    spec: &SourceSpec,
    index: &SourceIndex,
    sample: usize,
    stage: &Stage,
) -> Result<Counts, Unusable> {
    sample_amounts(
        index,
        sample,
        stage.seq_len,
        &stage.image,
        stage.long_text_of(spec),
    )
}

/// Counts of one sample: image pads from the resize rule, long text per `long_text` (split: one
/// sample per window; truncate: one sample of `seq_len` tokens; drop: too long).
pub fn sample_amounts(
    index: &SourceIndex,
    sample: usize,
    seq_len: u32,
    image: &ImagePolicy,
    long_text: LongText,
) -> Result<Counts, Unusable> {
    let policy = image.resize_policy();
    let mut pads = 0u64;
    let images = index.images(sample);
    for &(h, w) in images {
        let (rh, rw) = smart_resize(h, w, &policy)
            .map_err(|e| Unusable::Image(e.to_string(), RejectCode::of_resize(&e)))?;
        pads += u64::from(image_tokens(rh, rw, &policy));
    }
    let whole = u64::from(index.text_tokens[sample]) + pads;
    let loss_tokens = u64::from(index.loss_tokens[sample]);
    let is_text = index.is_text[sample] != 0;
    let (samples, tokens, loss_tokens) = match (whole <= u64::from(seq_len), is_text, long_text) {
        (true, ..) => (1, whole, loss_tokens),
        (false, true, LongText::Split) => (whole.div_ceil(u64::from(seq_len)), whole, loss_tokens),
        // Text carries loss on every token, so the first `seq_len` tokens keep that many.
        (false, true, LongText::Truncate) => {
            let kept = u64::from(seq_len);
            (1, kept, loss_tokens.min(kept))
        }
        _ => {
            return Err(Unusable::TooLong {
                tokens: whole,
                seq_len,
            });
        }
    };
    Ok(Counts {
        samples,
        tokens,
        loss_tokens,
        image_tokens: pads,
        images: images.len() as u64,
    })
}

/// The deterministic order in which a source's samples are drawn, pass after pass.
#[derive(Debug)]
pub struct Stream {
    seed: u64,
    source_hash: u64,
    len: usize,
    epoch: Option<(u64, Vec<u32>)>,
}

impl Stream {
    pub fn new(seed: u64, source: &str, len: usize) -> Self {
        let h = blake3::hash(source.as_bytes());
        let source_hash = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or_default());
        Self {
            seed,
            source_hash,
            len,
            epoch: None,
        }
    }

    /// The sample at stream position `pos`.
    pub fn sample_at(&mut self, pos: u64) -> usize {
        let epoch = pos / self.len as u64;
        if self.epoch.as_ref().map(|(e, _)| *e) != Some(epoch) {
            self.epoch = Some((
                epoch,
                permutation(
                    self.len,
                    self.seed ^ self.source_hash.rotate_left(17) ^ mix(epoch),
                ),
            ));
        }
        let perm = &self.epoch.as_ref().map(|(_, p)| p).expect("set above");
        perm[(pos % self.len as u64) as usize] as usize
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fisher-Yates with a splitmix64 generator: stable across platforms and dependency versions.
fn permutation(len: usize, seed: u64) -> Vec<u32> {
    let mut perm: Vec<u32> = (0..len as u32).collect();
    let mut state = seed;
    for i in (1..len).rev() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let r = mix(state);
        let j = ((u128::from(r) * (i as u128 + 1)) >> 64) as usize;
        perm.swap(i, j);
    }
    perm
}

struct Drawn {
    end: u64,
    expected: Counts,
    rejected: BTreeMap<RejectCode, u64>,
    cut: Option<u64>,
}

/// How far a source got before its limit.
struct Short {
    have: u64,
    /// Smallest `max_repeat` that would satisfy the target, if any does within the simulated passes.
    repeat_needed: Option<u64>,
}

/// Draws from `start` until the source is as close to `target` as whole samples allow: a sample
/// that would overshoot is taken only if that lands closer than stopping before it (a tie stops).
/// On a token basis a text sample that would overshoot is cut to the tokens still needed instead,
/// which lands the target exactly.
fn draw(
    stream: &mut Stream,
    spec: &SourceSpec,
    index: &SourceIndex,
    stage: &Stage,
    start: u64,
    target: u64,
) -> Result<Drawn, Short> {
    let n = index.samples() as u64;
    let limit = n * u64::from(stage.max_repeat);
    let basis = stage.budget.basis;
    let mut expected = Counts::default();
    let mut rejected = BTreeMap::new();
    let mut pos = start;
    let mut cut = None;
    while basis.of(&expected) < target {
        if pos >= limit {
            // Keep simulating to tell the user which max_repeat would do.
            let mut acc = basis.of(&expected);
            let mut p = pos;
            let mut needed = None;
            while n > 0 && p < n * MAX_SIMULATED_PASSES {
                if let Ok(a) = usable(spec, index, stream.sample_at(p), stage) {
                    acc += basis.of(&a);
                }
                p += 1;
                if acc >= target {
                    needed = Some(p.div_ceil(n));
                    break;
                }
            }
            return Err(Short {
                have: basis.of(&expected),
                repeat_needed: needed,
            });
        }
        let sample = stream.sample_at(pos);
        match usable(spec, index, sample, stage) {
            Ok(a) => {
                let need = target - basis.of(&expected);
                let amount = basis.of(&a);
                if amount > need {
                    if let Some(kept) = cut_to(index, sample, stage, &a, need) {
                        expected += &kept;
                        cut = Some(need);
                        pos += 1;
                        break;
                    }
                    if need <= amount - need {
                        // Stopping here is at least as close: the sample stays for the next stage.
                        break;
                    }
                }
                expected += &a;
            }
            Err(why) => *rejected.entry(why.code()).or_insert(0) += 1,
        }
        pos += 1;
    }
    Ok(Drawn {
        end: pos,
        expected,
        rejected,
        cut,
    })
}

/// The amounts of `sample` cut to its first `keep` tokens, when the stage may cut it: a token basis
/// (tokens, or loss tokens for a sample with loss on every token) and a text sample without images,
/// under any `long_text` policy (see [`can_cut`]).
fn cut_to(
    index: &SourceIndex,
    sample: usize,
    stage: &Stage,
    whole: &Counts,
    keep: u64,
) -> Option<Counts> {
    let cuttable = can_cut(index, sample, stage, whole) && keep > 0 && keep < whole.tokens;
    cuttable.then(|| Counts {
        samples: keep.div_ceil(u64::from(stage.seq_len)),
        tokens: keep,
        loss_tokens: keep,
        image_tokens: 0,
        images: 0,
    })
}

fn shortfall(
    stage: &Stage,
    spec: &SourceSpec,
    category: &str,
    target: u64,
    short: Short,
    span: Span,
) -> Diagnostic {
    let noun = stage.budget.basis.noun();
    let need = target;
    let missing = need.saturating_sub(short.have);
    let pct = 100.0 * missing as f64 / need.max(1) as f64;
    let mut hint = format!(
        "add data to `{}`, lower the budget or the share of `{category}`",
        spec.name
    );
    match short.repeat_needed {
        Some(r) => hint.push_str(&format!(", or set `max_repeat: {r}` on this stage")),
        None => hint.push_str(" (no max_repeat would do: the source has no usable samples)"),
    }
    Diagnostic::error(
        span,
        format!(
            "source `{}` cannot satisfy stage `{}` within max_repeat {}: needs {} {noun}, has {} (short by {} {noun}, {:.1}%)",
            spec.name,
            stage.name,
            stage.max_repeat,
            group(need),
            group(short.have),
            group(missing),
            pct
        ),
    )
    .with_hint(hint)
}

/// 1234567 -> "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_deterministic_and_complete() {
        let a = permutation(1000, 7);
        let b = permutation(1000, 7);
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_ne!(a, permutation(1000, 8));
    }

    #[test]
    fn each_pass_visits_every_sample_once_in_a_new_order() {
        let mut s = Stream::new(1, "src", 50);
        let first: Vec<usize> = (0..50).map(|p| s.sample_at(p)).collect();
        let second: Vec<usize> = (50..100).map(|p| s.sample_at(p)).collect();
        let mut f = first.clone();
        f.sort();
        assert_eq!(f, (0..50).collect::<Vec<_>>());
        assert_ne!(first, second);
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(100), "100");
    }
}
