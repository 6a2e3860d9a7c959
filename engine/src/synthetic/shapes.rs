//! Text about shape scenes: captions, question/answer rounds and grounding boxes.
//!
//! Every statement is computed from the [`Scene`] description, never sampled independently, so it is
//! true of the rendered image by construction. Questions that would be ambiguous are not asked: "What
//! colour is the star?" needs exactly one star, "Is the red circle on the left?" needs exactly one red
//! circle lying wholly in one half, and grounding only targets shapes with a unique description.
//! Phrasing is varied with the sample's own random stream (not the scene's), so the same scene could be
//! described differently by another generator without changing its pixels.

use super::rng::SplitMix64;
use super::scene::{BBox, Colour, Scene, Shape, ShapeKind};
use super::words::{article, capitalise, number_word};

/// Shapes grouped by (colour, kind), in order of first appearance, with their counts.
fn groups(shapes: &[Shape]) -> Vec<(Colour, ShapeKind, usize)> {
    let mut out: Vec<(Colour, ShapeKind, usize)> = Vec::with_capacity(4);
    for s in shapes {
        match out.iter_mut().find(|g| g.0 == s.colour && g.1 == s.kind) {
            Some(g) => g.2 += 1,
            None => out.push((s.colour, s.kind, 1)),
        }
    }
    out
}

fn count(shapes: &[Shape], colour: Option<Colour>, kind: Option<ShapeKind>) -> usize {
    shapes
        .iter()
        .filter(|s| colour.is_none_or(|c| s.colour == c) && kind.is_none_or(|k| s.kind == k))
        .count()
}

/// "two red circles", "an orange star".
fn counted_phrase(n: usize, colour: Colour, kind: ShapeKind) -> String {
    let quantity = if n == 1 {
        article(colour.name()).to_string()
    } else {
        number_word(n)
    };
    format!("{quantity} {} {}", colour.name(), kind.noun(n))
}

/// "a, b and c".
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A one-sentence caption listing every (colour, kind) group with its exact count, and the background.
pub(crate) fn caption(scene: &Scene, rng: &mut SplitMix64) -> String {
    let mut groups = groups(scene.shapes());
    rng.shuffle(&mut groups);
    let phrases: Vec<String> = groups
        .iter()
        .map(|&(c, k, n)| counted_phrase(n, c, k))
        .collect();
    let listed = join_and(&phrases);
    let bg = scene.background().name();
    match rng.below(4) {
        0 => format!(
            "{} on {} {bg} background.",
            capitalise(&listed),
            article(bg)
        ),
        1 => format!("{} {bg} background with {listed}.", capitalise(article(bg))),
        2 => format!(
            "This image shows {listed} on {} {bg} background.",
            article(bg)
        ),
        _ => {
            let total = scene.shapes().len();
            let noun = if total == 1 { "shape" } else { "shapes" };
            format!(
                "{} {noun} on {} {bg} background: {listed}.",
                capitalise(&number_word(total)),
                article(bg)
            )
        }
    }
}

/// A (question, answer) about counts, with a short ("3") or sentence answer.
fn count_answer(rng: &mut SplitMix64, n: usize, what_singular: &str, what_plural: &str) -> String {
    if rng.chance(1, 2) {
        return n.to_string();
    }
    match n {
        0 => format!("There are no {what_plural}."),
        1 => format!("There is one {what_singular}."),
        _ => format!("There are {} {what_plural}.", number_word(n)),
    }
}

/// Which half of the canvas a box lies wholly in, along one axis, if any.
fn half(lo: u32, hi: u32, extent: u32) -> Option<bool> {
    // `true` for the first half (left/top). Compare doubled to avoid rounding the midpoint.
    if 2 * hi <= extent {
        Some(true)
    } else if 2 * lo >= extent {
        Some(false)
    } else {
        None
    }
}

/// Picks a colour and kind: usually one present in the scene, sometimes any (possibly absent).
fn colour_and_kind(scene: &Scene, rng: &mut SplitMix64) -> (Colour, ShapeKind) {
    let present = scene.shapes();
    if rng.chance(2, 3)
        && let Some(s) = rng.pick(present)
    {
        return (s.colour, s.kind);
    }
    let colour = Colour::SHAPE[rng.below(Colour::SHAPE.len() as u64) as usize];
    let kind = ShapeKind::ALL[rng.below(ShapeKind::ALL.len() as u64) as usize];
    (colour, kind)
}

/// One question/answer pair of a randomly chosen type, or `None` when that type would be ambiguous
/// for this scene (the caller draws again).
fn question(scene: &Scene, rng: &mut SplitMix64) -> Option<(String, String)> {
    let shapes = scene.shapes();
    match rng.below(6) {
        0 => {
            let (c, k) = colour_and_kind(scene, rng);
            let n = count(shapes, Some(c), Some(k));
            let q = format!("How many {} {} are there?", c.name(), k.plural());
            let singular = format!("{} {}", c.name(), k.name());
            let plural = format!("{} {}", c.name(), k.plural());
            Some((q, count_answer(rng, n, &singular, &plural)))
        }
        1 => {
            let (_, k) = colour_and_kind(scene, rng);
            let n = count(shapes, None, Some(k));
            let q = format!("How many {} are in the image?", k.plural());
            Some((q, count_answer(rng, n, k.name(), k.plural())))
        }
        2 => {
            let q = "How many shapes are there in total?".to_string();
            Some((q, count_answer(rng, shapes.len(), "shape", "shapes")))
        }
        3 => {
            let kind = rng.pick(shapes)?.kind;
            let mut of_kind = shapes.iter().filter(|s| s.kind == kind);
            let (Some(only), None) = (of_kind.next(), of_kind.next()) else {
                return None;
            };
            let q = format!("What colour is the {}?", kind.name());
            let a = if rng.chance(1, 2) {
                format!("{}.", capitalise(only.colour.name()))
            } else {
                format!("The {} is {}.", kind.name(), only.colour.name())
            };
            Some((q, a))
        }
        4 => {
            let s = *rng.pick(shapes)?;
            if count(shapes, Some(s.colour), Some(s.kind)) != 1 {
                return None;
            }
            let b = s.bbox();
            let desc = format!("{} {}", s.colour.name(), s.kind.name());
            let (axis, first_half) = if rng.chance(1, 2) {
                (["left", "right"], half(b.x1, b.x2, scene.width())?)
            } else {
                (["top", "bottom"], half(b.y1, b.y2, scene.height())?)
            };
            let side = if first_half { axis[0] } else { axis[1] };
            let q = format!(
                "Is the {desc} in the {} or the {} half of the image?",
                axis[0], axis[1]
            );
            let a = if rng.chance(1, 2) {
                format!("The {side} half.")
            } else {
                format!("It is in the {side} half.")
            };
            Some((q, a))
        }
        _ => {
            let (c, k) = colour_and_kind(scene, rng);
            let n = count(shapes, Some(c), Some(k));
            let q = format!("Is there {} {} {}?", article(c.name()), c.name(), k.name());
            let a = match (n, rng.chance(1, 2)) {
                (0, true) => "No.".to_string(),
                (0, false) => format!("No, there is no {} {}.", c.name(), k.name()),
                (_, true) => "Yes.".to_string(),
                (1, false) => "Yes, there is one.".to_string(),
                (n, false) => format!("Yes, there are {}.", number_word(n)),
            };
            Some((q, a))
        }
    }
}

/// 1-3 distinct question/answer rounds about the scene.
pub(crate) fn vqa_rounds(scene: &Scene, rng: &mut SplitMix64) -> Vec<(String, String)> {
    const DRAWS_PER_ROUND: usize = 8;
    let rounds = rng.range(1, 3) as usize;
    let mut out: Vec<(String, String)> = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        for _ in 0..DRAWS_PER_ROUND {
            let Some((q, a)) = question(scene, rng) else {
                continue;
            };
            if !out.iter().any(|(asked, _)| *asked == q) {
                out.push((q, a));
                break;
            }
        }
    }
    if out.is_empty() {
        // Every scene has at least one shape, so the total is always a fair question.
        let n = scene.shapes().len();
        out.push((
            "How many shapes are there in total?".to_string(),
            n.to_string(),
        ));
    }
    out
}

/// The phrases that pick out exactly one shape ("the red circle", "the star", "the blue shape").
fn unique_descriptions(shapes: &[Shape], s: &Shape) -> Vec<String> {
    let mut out = Vec::with_capacity(3);
    if count(shapes, Some(s.colour), Some(s.kind)) == 1 {
        out.push(format!("the {} {}", s.colour.name(), s.kind.name()));
    }
    if count(shapes, None, Some(s.kind)) == 1 {
        out.push(format!("the {}", s.kind.name()));
    }
    if count(shapes, Some(s.colour), None) == 1 {
        out.push(format!("the {} shape", s.colour.name()));
    }
    out
}

/// "(x1, y1), (x2, y2)" in original-image pixel coordinates; see [`BBox`] for the convention.
pub(crate) fn format_bbox(b: BBox) -> String {
    format!("({}, {}), ({}, {})", b.x1, b.y1, b.x2, b.y2)
}

/// 1-2 grounding rounds, each about a different uniquely describable shape. Scene construction
/// guarantees at least one such shape.
pub(crate) fn grounding_rounds(scene: &Scene, rng: &mut SplitMix64) -> Vec<(String, String)> {
    let shapes = scene.shapes();
    let mut targets: Vec<(usize, Vec<String>)> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| (i, unique_descriptions(shapes, s)))
        .filter(|(_, d)| !d.is_empty())
        .collect();
    rng.shuffle(&mut targets);
    let rounds = (rng.range(1, 2) as usize).min(targets.len());
    targets
        .iter()
        .take(rounds)
        .enumerate()
        .map(|(round, (i, descriptions))| {
            let desc = rng.pick(descriptions).cloned().unwrap_or_default();
            let q = match (round, rng.below(3)) {
                (0, 0) => {
                    format!("Give the bounding box of {desc} as (x1, y1), (x2, y2) in pixels.")
                }
                (0, 1) => format!(
                    "Where is {desc}? Answer with its bounding box (x1, y1), (x2, y2) in pixel \
                     coordinates."
                ),
                (0, _) => format!(
                    "Locate {desc} in the image and output its bounding box as (x1, y1), (x2, y2)."
                ),
                (_, 0) => format!("And {desc}?"),
                (_, _) => format!("Now give the bounding box of {desc}."),
            };
            (q, format_bbox(shapes[*i].bbox()))
        })
        .collect()
}
