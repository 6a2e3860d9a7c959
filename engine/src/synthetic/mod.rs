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

#[cfg(test)]
mod truth_tests;

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
