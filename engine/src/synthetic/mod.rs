//! Built-in synthetic sources: deterministic procedural demo data whose text is true of its images.
//!
//! The demo recipes (and the tests of every later stage) need multimodal data without downloads. Each
//! [`SyntheticKind`] is a pure function `(seed, index) -> Sample` ([`generate`]):
//!
//! - `shapes-caption`, `shapes-vqa`, `shapes-grounding`: coloured circles, squares, triangles and stars on
//!   a light background, with a caption, question/answer rounds, or bounding-box answers;
//! - `ocr-text`: lines of words and numbers in a bitmap font, with the exact transcription;
//! - `long-text`: text-only documents of 150 to 5,000 words.
//!
//! # Why it is shaped so
//!
//! - **Cheap to plan.** A sample refers to its image as `ImageSource::Synthetic { scene }` and carries
//!   the size, known from the [`Scene`] description without drawing a pixel, so a planner can count the
//!   tokens of millions of samples (about a microsecond each). Pixels are drawn only by [`render_scene`].
//! - **Regenerable from the id alone.** The scene id encodes the family (bit 63: text or shapes) and a
//!   63-bit layout seed; [`Scene::from_id`] is total. See [`scene`] for the layout rules.
//! - **Identical everywhere, forever.** A hand-written SplitMix64 ([`rng`]) instead of `rand`, integer
//!   geometry, constant tables instead of `sin`/`cos`: outputs depend on nothing that a dependency
//!   update or another platform could change. Changing any generator changes the demo data, which
//!   plan fingerprints will show; do it deliberately.
//! - **True by construction.** Text is derived from the scene description, and the renderer paints
//!   exactly what the description says; the tests check the text against the rendered pixels (shape
//!   colours, counts, halves and boxes, and glyph-by-glyph re-reading of OCR images).
//! - **Distinct.** For a fixed kind and seed, different indices (below 2^63) give different scene ids:
//!   the id is a bijective mix of the index.

use crate::sample::{IMAGE_PLACEHOLDER, ImageRef, ImageSource, Role, Sample, SampleKind, Turn};

pub mod long_text;
pub mod render;
pub mod rng;
pub mod scene;
mod shapes;
mod words;

pub use crate::image::RgbImage;
pub use render::render_scene;
pub use scene::{BBox, Colour, SCENE_TEXT_BIT, Scene, SceneContent, Shape, ShapeKind, TextBlock};

use rng::{SplitMix64, mix64};

/// Which generator a synthetic source runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyntheticKind {
    /// `shapes-caption`: a scene of coloured shapes and a caption describing it.
    ShapesCaption,
    /// `shapes-vqa`: a scene and question/answer turns about counts, colours and positions.
    ShapesVqa,
    /// `shapes-grounding`: a scene and turns asking for / giving bounding boxes.
    ShapesGrounding,
    /// `ocr-text`: rendered lines of text and a transcription request.
    OcrText,
    /// `long-text`: procedurally generated multi-paragraph documents, no images.
    LongText,
}

impl SyntheticKind {
    /// The kind of sample this generator makes.
    pub fn sample_kind(self) -> SampleKind {
        match self {
            SyntheticKind::ShapesCaption => SampleKind::Caption,
            SyntheticKind::LongText => SampleKind::Text,
            SyntheticKind::ShapesVqa | SyntheticKind::ShapesGrounding | SyntheticKind::OcrText => {
                SampleKind::Conversation
            }
        }
    }

    /// All kinds, in the order `check` lists them in hints.
    pub const ALL: [SyntheticKind; 5] = [
        SyntheticKind::ShapesCaption,
        SyntheticKind::ShapesVqa,
        SyntheticKind::ShapesGrounding,
        SyntheticKind::OcrText,
        SyntheticKind::LongText,
    ];

    /// The name used in recipes.
    pub fn name(self) -> &'static str {
        match self {
            SyntheticKind::ShapesCaption => "shapes-caption",
            SyntheticKind::ShapesVqa => "shapes-vqa",
            SyntheticKind::ShapesGrounding => "shapes-grounding",
            SyntheticKind::OcrText => "ocr-text",
            SyntheticKind::LongText => "long-text",
        }
    }

    /// Parses a recipe name.
    pub fn from_name(name: &str) -> Option<SyntheticKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether samples of this kind carry an image.
    pub fn has_image(self) -> bool {
        self != SyntheticKind::LongText
    }

    /// A fixed per-kind constant mixed into every derived seed, so that kinds sharing a source seed
    /// still get unrelated data. Written out rather than derived from the variant order, which may
    /// change.
    fn salt(self) -> u64 {
        match self {
            SyntheticKind::ShapesCaption => 0x5348_4150_4341_5031,
            SyntheticKind::ShapesVqa => 0x5348_4150_5651_4131,
            SyntheticKind::ShapesGrounding => 0x5348_4150_4752_4431,
            SyntheticKind::OcrText => 0x4f43_5254_4558_5431,
            SyntheticKind::LongText => 0x4c4f_4e47_5458_5431,
        }
    }
}

const LOW_63: u64 = !SCENE_TEXT_BIT;

/// A bijection on 63-bit values (xor-shift and odd multiplication modulo 2^63 are each invertible).
fn mix63(mut x: u64) -> u64 {
    x &= LOW_63;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9) & LOW_63;
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB) & LOW_63;
    x ^ (x >> 31)
}

/// The 63-bit key of sample `index` of a `(kind, seed)` source; injective in `index` below 2^63.
fn sample_key(kind: SyntheticKind, seed: u64, index: u64) -> u64 {
    let base = mix64(seed ^ mix64(kind.salt()));
    mix63(base ^ index)
}

/// The scene id of sample `index` of a `(kind, seed)` source, or `None` for `long-text` (no image).
pub fn scene_id(kind: SyntheticKind, seed: u64, index: u64) -> Option<u64> {
    let key = sample_key(kind, seed, index);
    match kind {
        SyntheticKind::LongText => None,
        SyntheticKind::OcrText => Some(SCENE_TEXT_BIT | key),
        SyntheticKind::ShapesCaption
        | SyntheticKind::ShapesVqa
        | SyntheticKind::ShapesGrounding => Some(key),
    }
}

fn turn(role: Role, text: String) -> Turn {
    Turn { role, text }
}

/// Alternating user/assistant turns; the first user turn starts with the image placeholder.
fn conversation(rounds: Vec<(String, String)>) -> Vec<Turn> {
    let mut turns = Vec::with_capacity(2 * rounds.len());
    for (i, (question, answer)) in rounds.into_iter().enumerate() {
        let question = if i == 0 {
            format!("{IMAGE_PLACEHOLDER}\n{question}")
        } else {
            question
        };
        turns.push(turn(Role::User, question));
        turns.push(turn(Role::Assistant, answer));
    }
    turns
}

/// The instruction of every `ocr-text` sample (after the image placeholder).
pub const OCR_PROMPT: &str = "Read the text in the image.";

/// Sample `index` of the synthetic source `(kind, seed)`. Pure and deterministic; draws no pixels.
///
/// Image kinds return one [`ImageRef`] with `ImageSource::Synthetic { scene }` and its `(height,
/// width)`; pass the scene id to [`render_scene`] for the pixels.
pub fn generate(kind: SyntheticKind, seed: u64, index: u64) -> Sample {
    let key = sample_key(kind, seed, index);
    // The text's random stream is separate from the scene's, which `Scene::from_id` seeds with the id.
    let mut rng = SplitMix64::new(mix64(key ^ 0x7465_7874_5f73_7472));
    let Some(id) = scene_id(kind, seed, index) else {
        let document = long_text::document(&mut rng);
        return Sample {
            kind: SampleKind::Text,
            turns: vec![turn(Role::Assistant, document)],
            images: Vec::new(),
        };
    };
    let scene = Scene::from_id(id);
    let (sample_kind, turns) = match kind {
        SyntheticKind::ShapesCaption => (
            SampleKind::Caption,
            vec![
                turn(Role::User, IMAGE_PLACEHOLDER.to_string()),
                turn(Role::Assistant, shapes::caption(&scene, &mut rng)),
            ],
        ),
        SyntheticKind::ShapesVqa => (
            SampleKind::Conversation,
            conversation(shapes::vqa_rounds(&scene, &mut rng)),
        ),
        SyntheticKind::ShapesGrounding => (
            SampleKind::Conversation,
            conversation(shapes::grounding_rounds(&scene, &mut rng)),
        ),
        SyntheticKind::OcrText | SyntheticKind::LongText => {
            let transcription = scene
                .text()
                .map(TextBlock::transcription)
                .unwrap_or_default();
            (
                SampleKind::Conversation,
                conversation(vec![(OCR_PROMPT.to_string(), transcription)]),
            )
        }
    };
    Sample {
        kind: sample_kind,
        turns,
        images: vec![ImageRef {
            source: ImageSource::Synthetic { scene: id },
            size: Some(scene.size()),
        }],
    }
}

#[cfg(test)]
mod tests {
    //! Tests that synthetic samples are deterministic, distinct, and true of their rendered images.
    //!
    //! The oracle here looks only at pixels: it finds the connected blobs of each shape colour, classifies
    //! each blob's kind from its geometry, and re-reads OCR glyphs by matching them against the font. The
    //! generated text is then parsed and checked against that oracle, so a bug in the scene description,
    //! the renderer or the text generators shows up as a disagreement.

    use std::collections::BTreeMap;

    use super::render::glyph;
    use super::scene::GLYPH_SIDE;
    use super::words::number_word;
    use super::*;

    const SAMPLES: u64 = 40;

    /// A connected region of one shape colour, as found in the pixels.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Blob {
        colour: Colour,
        kind: ShapeKind,
        bbox: BBox,
    }

    fn colour_of(rgb: [u8; 3], palette: &[Colour]) -> Colour {
        *palette
            .iter()
            .find(|c| c.rgb() == rgb)
            .unwrap_or_else(|| panic!("unexpected colour {rgb:?}"))
    }

    /// 8-connected blobs of identical non-background colour, each classified by shape:
    /// a full box is a square, a full bottom row a triangle, over 60% fill a circle, else a star.
    fn blobs(img: &RgbImage) -> (Colour, Vec<Blob>) {
        let (w, h) = (img.width as i64, img.height as i64);
        let bg_rgb = img.pixel(0, 0).unwrap();
        let background = colour_of(bg_rgb, &Colour::BACKGROUND);
        let mut seen = vec![false; (w * h) as usize];
        let mut out = Vec::new();
        for start in 0..w * h {
            let (sx, sy) = ((start % w) as u32, (start / w) as u32);
            let rgb = img.pixel(sx, sy).unwrap();
            if seen[start as usize] || rgb == bg_rgb {
                continue;
            }
            seen[start as usize] = true;
            let mut stack = vec![(sx as i64, sy as i64)];
            let mut pixels = Vec::new();
            while let Some((x, y)) = stack.pop() {
                pixels.push((x as u32, y as u32));
                for (dx, dy) in [
                    (-1, -1),
                    (0, -1),
                    (1, -1),
                    (-1, 0),
                    (1, 0),
                    (-1, 1),
                    (0, 1),
                    (1, 1),
                ] {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w || ny >= h {
                        continue;
                    }
                    let i = (ny * w + nx) as usize;
                    if !seen[i] && img.pixel(nx as u32, ny as u32) == Some(rgb) {
                        seen[i] = true;
                        stack.push((nx, ny));
                    }
                }
            }
            let bbox = BBox {
                x1: pixels.iter().map(|p| p.0).min().unwrap(),
                y1: pixels.iter().map(|p| p.1).min().unwrap(),
                x2: pixels.iter().map(|p| p.0).max().unwrap() + 1,
                y2: pixels.iter().map(|p| p.1).max().unwrap() + 1,
            };
            let area = ((bbox.x2 - bbox.x1) * (bbox.y2 - bbox.y1)) as usize;
            let bottom_row = pixels.iter().filter(|p| p.1 == bbox.y2 - 1).count() as u32;
            let kind = if pixels.len() == area {
                ShapeKind::Square
            } else if bottom_row == bbox.x2 - bbox.x1 {
                ShapeKind::Triangle
            } else if pixels.len() * 10 > area * 6 {
                ShapeKind::Circle
            } else {
                ShapeKind::Star
            };
            out.push(Blob {
                colour: colour_of(rgb, &Colour::SHAPE),
                kind,
                bbox,
            });
        }
        (background, out)
    }

    fn matching(blobs: &[Blob], colour: Option<Colour>, kind: Option<ShapeKind>) -> Vec<&Blob> {
        blobs
            .iter()
            .filter(|b| colour.is_none_or(|c| b.colour == c) && kind.is_none_or(|k| b.kind == k))
            .collect()
    }

    fn parse_colour(word: &str) -> Option<Colour> {
        Colour::SHAPE.into_iter().find(|c| c.name() == word)
    }

    /// A kind from its singular or plural noun.
    fn parse_kind(word: &str) -> Option<ShapeKind> {
        ShapeKind::ALL
            .into_iter()
            .find(|k| k.name() == word || k.plural() == word)
    }

    /// "3", "three", "a", "an", "one", "no" -> the number.
    fn parse_count(word: &str) -> Option<usize> {
        match word {
            "a" | "an" | "A" | "An" => Some(1),
            "no" => Some(0),
            _ => word
                .parse()
                .ok()
                .or_else(|| (0..=12).find(|&n| number_word(n).eq_ignore_ascii_case(word))),
        }
    }

    fn words(text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    }

    /// The rendered image of a sample, checking the declared size on the way.
    fn image_of(sample: &Sample) -> (u64, RgbImage) {
        let [
            ImageRef {
                source: ImageSource::Synthetic { scene },
                size,
            },
        ] = sample.images.as_slice()
        else {
            panic!("one synthetic image expected: {:?}", sample.images);
        };
        let img = render_scene(*scene);
        assert_eq!(
            *size,
            Some((img.height, img.width)),
            "declared size is the rendered size"
        );
        assert_eq!(img.pixels.len(), 3 * (img.width * img.height) as usize);
        (*scene, img)
    }

    fn user_question(turn: &Turn, first: bool) -> &str {
        assert_eq!(turn.role, Role::User);
        if first {
            turn.text
                .strip_prefix("<image>\n")
                .expect("the first user turn starts with the image")
        } else {
            assert!(!turn.text.contains(IMAGE_PLACEHOLDER));
            &turn.text
        }
    }

    #[test]
    fn generation_is_deterministic_and_pure() {
        for kind in SyntheticKind::ALL {
            for index in [0, 1, 17, u64::MAX >> 1] {
                let a = generate(kind, 42, index);
                assert_eq!(a, generate(kind, 42, index), "{kind:?} {index}");
                if let Some(ImageRef {
                    source: ImageSource::Synthetic { scene },
                    ..
                }) = a.images.first()
                {
                    assert_eq!(render_scene(*scene), render_scene(*scene));
                }
            }
        }
    }

    #[test]
    fn different_indices_seeds_and_kinds_give_different_scenes() {
        let mut ids = std::collections::HashSet::new();
        for kind in SyntheticKind::ALL.into_iter().filter(|k| k.has_image()) {
            for seed in [0, 1] {
                for index in 0..500 {
                    let id = scene_id(kind, seed, index).unwrap();
                    assert!(
                        ids.insert(id),
                        "{kind:?} seed {seed} index {index} repeats a scene"
                    );
                    assert_eq!(id & SCENE_TEXT_BIT != 0, kind == SyntheticKind::OcrText);
                }
            }
        }
        let sizes: std::collections::HashSet<_> = (0..50)
            .map(|i| generate(SyntheticKind::ShapesCaption, 0, i).images[0].size)
            .collect();
        assert!(sizes.len() > 40, "canvas sizes vary between samples");
        assert_eq!(scene_id(SyntheticKind::LongText, 0, 0), None);
    }

    #[test]
    fn image_placeholders_and_roles_follow_the_sample_conventions() {
        for kind in SyntheticKind::ALL {
            for index in 0..SAMPLES {
                let s = generate(kind, 3, index);
                let placeholders: usize = s
                    .turns
                    .iter()
                    .map(|t| t.text.matches(IMAGE_PLACEHOLDER).count())
                    .sum();
                assert_eq!(placeholders, s.images.len(), "{kind:?}");
                let expected = match kind {
                    SyntheticKind::ShapesCaption => SampleKind::Caption,
                    SyntheticKind::LongText => SampleKind::Text,
                    _ => SampleKind::Conversation,
                };
                assert_eq!(s.kind, expected);
                assert_eq!(kind.sample_kind(), expected);
                if kind == SyntheticKind::LongText {
                    assert_eq!(s.turns.len(), 1);
                    assert_eq!(s.turns[0].role, Role::Assistant);
                } else {
                    assert!(s.turns[0].text.starts_with(IMAGE_PLACEHOLDER));
                    for (i, t) in s.turns.iter().enumerate() {
                        let role = if i % 2 == 0 {
                            Role::User
                        } else {
                            Role::Assistant
                        };
                        assert_eq!(t.role, role, "{kind:?} turn {i}");
                        assert!(!t.text.trim().is_empty());
                    }
                    assert_eq!(s.turns.len() % 2, 0);
                }
            }
        }
    }

    #[test]
    fn shape_pixels_match_the_scene_description_exactly() {
        for index in 0..SAMPLES {
            let (id, img) = image_of(&generate(SyntheticKind::ShapesVqa, 9, index));
            let scene = Scene::from_id(id);
            let (background, mut found) = blobs(&img);
            assert_eq!(background, scene.background());
            let mut declared: Vec<Blob> = scene
                .shapes()
                .iter()
                .map(|s| Blob {
                    colour: s.colour,
                    kind: s.kind,
                    bbox: s.bbox(),
                })
                .collect();
            let key = |b: &Blob| (b.bbox.y1, b.bbox.x1);
            found.sort_by_key(key);
            declared.sort_by_key(key);
            assert_eq!(found, declared, "scene {id:#x}");
        }
    }

    #[test]
    fn captions_state_exactly_the_drawn_shapes_and_background() {
        for index in 0..SAMPLES {
            let sample = generate(SyntheticKind::ShapesCaption, 5, index);
            let (_, img) = image_of(&sample);
            let (background, found) = blobs(&img);
            assert_eq!(sample.turns.len(), 2);
            assert_eq!(sample.turns[0].text, IMAGE_PLACEHOLDER);
            let caption = &sample.turns[1].text;

            let mut drawn: BTreeMap<(Colour, ShapeKind), usize> = BTreeMap::new();
            for b in &found {
                *drawn.entry((b.colour, b.kind)).or_default() += 1;
            }
            let w = words(caption);
            let mut stated = BTreeMap::new();
            for i in 1..w.len().saturating_sub(1) {
                if let (Some(c), Some(k)) = (parse_colour(&w[i]), parse_kind(&w[i + 1])) {
                    let n =
                        parse_count(&w[i - 1]).unwrap_or_else(|| panic!("no count in {caption:?}"));
                    assert_eq!(k.noun(n), w[i + 1], "number agreement in {caption:?}");
                    assert!(
                        stated.insert((c, k), n).is_none(),
                        "group stated twice: {caption:?}"
                    );
                }
            }
            assert_eq!(stated, drawn, "{caption:?}");
            assert!(
                caption.contains(&format!("{} background", background.name())),
                "{caption:?}"
            );
            if let Some(i) = w.iter().position(|x| x == "shapes" || x == "shape") {
                assert_eq!(parse_count(&w[i - 1]), Some(found.len()), "{caption:?}");
            }
        }
    }

    /// Answers a generated question from the pixel blobs alone and checks the generated answer.
    fn check_vqa(question: &str, answer: &str, blobs: &[Blob], img: &RgbImage) {
        let answer_words = words(answer);
        let count_in_answer = || -> usize {
            answer_words
                .iter()
                .find_map(|w| parse_count(w).filter(|_| w != "a" && w != "an"))
                .unwrap_or_else(|| panic!("no count in {answer:?}"))
        };
        let q = words(question);
        let q: Vec<&str> = q.iter().map(String::as_str).collect();
        match q.as_slice() {
            ["how", "many", "shapes", "are", "there", "in", "total"] => {
                assert_eq!(count_in_answer(), blobs.len(), "{question} {answer}");
            }
            ["how", "many", colour, kinds, "are", "there"] => {
                let n = matching(blobs, parse_colour(colour), parse_kind(kinds)).len();
                assert_eq!(count_in_answer(), n, "{question} {answer}");
            }
            ["how", "many", kinds, "are", "in", "the", "image"] => {
                let n = matching(blobs, None, parse_kind(kinds)).len();
                assert_eq!(count_in_answer(), n, "{question} {answer}");
            }
            ["what", "colour", "is", "the", kind] => {
                let only = matching(blobs, None, parse_kind(kind));
                assert_eq!(only.len(), 1, "asked only when unique: {question}");
                assert!(
                    answer_words.contains(&only[0].colour.name().to_string()),
                    "{question} {answer}"
                );
            }
            [
                "is",
                "the",
                colour,
                kind,
                "in",
                "the",
                first,
                "or",
                "the",
                second,
                "half",
                "of",
                "the",
                "image",
            ] => {
                let only = matching(blobs, parse_colour(colour), parse_kind(kind));
                assert_eq!(only.len(), 1, "asked only when unique: {question}");
                let b = only[0].bbox;
                let said_first = answer_words.iter().any(|w| w.as_str() == *first);
                let said_second = answer_words.iter().any(|w| w.as_str() == *second);
                assert!(said_first != said_second, "{answer}");
                let (lo, hi, extent) = match *first {
                    "left" => (b.x1, b.x2, img.width),
                    "top" => (b.y1, b.y2, img.height),
                    other => panic!("unexpected axis {other}"),
                };
                if said_first {
                    assert!(2 * hi <= extent, "{question} {answer} {b:?}");
                } else {
                    assert!(2 * lo >= extent, "{question} {answer} {b:?}");
                }
            }
            ["is", "there", "a" | "an", colour, kind] => {
                let n = matching(blobs, parse_colour(colour), parse_kind(kind)).len();
                assert_eq!(answer.starts_with("Yes"), n > 0, "{question} {answer}");
                assert_eq!(answer.starts_with("No"), n == 0, "{question} {answer}");
                if let Some(rest) = answer.strip_prefix("Yes, there are ") {
                    assert_eq!(parse_count(rest.trim_end_matches('.')), Some(n));
                }
                if answer == "Yes, there is one." {
                    assert_eq!(n, 1);
                }
            }
            _ => panic!("unrecognised question {question:?}"),
        }
    }

    #[test]
    fn vqa_answers_are_true_of_the_pixels() {
        let mut kinds_of_question = std::collections::BTreeSet::new();
        for index in 0..SAMPLES * 2 {
            let sample = generate(SyntheticKind::ShapesVqa, 1, index);
            let (_, img) = image_of(&sample);
            let (_, found) = blobs(&img);
            assert!((2..=6).contains(&sample.turns.len()));
            for (round, pair) in sample.turns.chunks(2).enumerate() {
                let question = user_question(&pair[0], round == 0);
                assert_eq!(pair[1].role, Role::Assistant);
                check_vqa(question, &pair[1].text, &found, &img);
                kinds_of_question.insert(words(question)[..2].join(" "));
            }
        }
        assert!(
            kinds_of_question.len() >= 4,
            "question types vary: {kinds_of_question:?}"
        );
    }

    /// The description inside a grounding question ("the red circle", "the star", "the blue shape").
    fn grounding_description(question: &str) -> &str {
        let after = |prefix: &str| question.find(prefix).map(|i| &question[i + prefix.len()..]);
        let rest = after("bounding box of ")
            .or_else(|| after("Where is "))
            .or_else(|| after("Locate "))
            .or_else(|| after("And "))
            .unwrap_or_else(|| panic!("unrecognised grounding question {question:?}"));
        let end = [" as (", "?", " in the image", "."]
            .iter()
            .filter_map(|s| rest.find(s))
            .min()
            .unwrap_or(rest.len());
        &rest[..end]
    }

    fn parse_bbox(answer: &str) -> BBox {
        let n: Vec<u32> = answer
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(n.len(), 4, "{answer}");
        assert_eq!(
            answer,
            format!("({}, {}), ({}, {})", n[0], n[1], n[2], n[3])
        );
        BBox {
            x1: n[0],
            y1: n[1],
            x2: n[2],
            y2: n[3],
        }
    }

    #[test]
    fn grounding_boxes_are_the_drawn_extents_of_uniquely_described_shapes() {
        for index in 0..SAMPLES {
            let sample = generate(SyntheticKind::ShapesGrounding, 2, index);
            let (_, img) = image_of(&sample);
            let (_, found) = blobs(&img);
            assert!((2..=4).contains(&sample.turns.len()));
            let mut targets = Vec::new();
            for (round, pair) in sample.turns.chunks(2).enumerate() {
                let description = grounding_description(user_question(&pair[0], round == 0));
                let w = words(description);
                assert_eq!(w[0], "the", "{description}");
                let (colour, kind) = match w[1..].iter().map(String::as_str).collect::<Vec<_>>()[..]
                {
                    [c, "shape"] => (parse_colour(c), None),
                    [c, k] => (parse_colour(c), parse_kind(k)),
                    [k] => (None, parse_kind(k)),
                    _ => panic!("unexpected description {description:?}"),
                };
                let described = matching(&found, colour, kind);
                assert_eq!(
                    described.len(),
                    1,
                    "{description:?} must pick out one shape"
                );
                assert_eq!(
                    parse_bbox(&pair[1].text),
                    described[0].bbox,
                    "{description}"
                );
                targets.push(described[0].bbox);
            }
            targets.dedup();
            assert_eq!(
                targets.len(),
                sample.turns.len() / 2,
                "each round asks about another shape"
            );
        }
    }

    /// Every printable ASCII glyph is distinct, so re-reading text from pixels is unambiguous.
    fn glyph_table() -> BTreeMap<[u8; 8], char> {
        let table: BTreeMap<[u8; 8], char> = (' '..='~').map(|c| (glyph(c), c)).collect();
        assert_eq!(
            table.len(),
            ('~' as usize) - (' ' as usize) + 1,
            "glyphs are distinct"
        );
        table
    }

    #[test]
    fn ocr_transcription_equals_the_text_read_back_from_the_pixels() {
        let table = glyph_table();
        for index in 0..SAMPLES {
            let sample = generate(SyntheticKind::OcrText, 4, index);
            let (id, img) = image_of(&sample);
            assert_eq!(user_question(&sample.turns[0], true), OCR_PROMPT);
            let transcription = &sample.turns[1].text;

            // The layout (where lines start and the magnification) comes from the scene; the characters
            // come only from the pixels, and every ink pixel must belong to a read glyph.
            let scene = Scene::from_id(id);
            let block = scene.text().unwrap();
            let ink = block.ink.rgb();
            let s = block.scale;
            let cell = GLYPH_SIDE * s;
            let mut ink_read = 0;
            let mut lines = Vec::new();
            for i in 0..block.lines.len() as u32 {
                let top = block.top + i * block.line_pitch;
                let mut line = String::new();
                let mut left = block.left;
                while left + cell <= img.width {
                    let mut bits = [0u8; 8];
                    for row in 0..GLYPH_SIDE {
                        for col in 0..GLYPH_SIDE {
                            let (x0, y0) = (left + col * s, top + row * s);
                            let on = img.pixel(x0, y0) == Some(ink);
                            for dy in 0..s {
                                for dx in 0..s {
                                    assert_eq!(
                                        img.pixel(x0 + dx, y0 + dy) == Some(ink),
                                        on,
                                        "blocky"
                                    );
                                }
                            }
                            if on {
                                bits[row as usize] |= 1 << col;
                                ink_read += (s * s) as usize;
                            }
                        }
                    }
                    line.push(
                        *table
                            .get(&bits)
                            .unwrap_or_else(|| panic!("unknown glyph {bits:?}")),
                    );
                    left += cell;
                }
                lines.push(line.trim_end().to_string());
            }
            let ink_total = img.pixels.chunks_exact(3).filter(|p| *p == ink).count();
            assert_eq!(ink_read, ink_total, "no ink outside the text lines");
            assert_eq!(&lines.join("\n"), transcription);
            assert_ne!(img.pixel(0, 0), Some(ink));
        }
    }

    #[test]
    fn long_text_samples_vary_widely_in_length() {
        let lengths: Vec<usize> = (0..200)
            .map(|i| {
                let s = generate(SyntheticKind::LongText, 8, i);
                assert!(s.images.is_empty());
                s.turns[0].text.split_whitespace().count()
            })
            .collect();
        let min = *lengths.iter().min().unwrap();
        let max = *lengths.iter().max().unwrap();
        assert!((long_text::MIN_WORDS..300).contains(&min), "{min}");
        assert!(max > 2400, "{max}");
        let distinct: std::collections::HashSet<_> = lengths.iter().collect();
        assert!(distinct.len() > 150);
    }
}
