//! Scene descriptions: what a synthetic image shows, derived from its id alone.
//!
//! A [`Scene`] is the ground truth shared by the text generators and the renderer. Generators read it to
//! write captions, answers and transcriptions that are true of the image; [`super::render_scene`] draws
//! it. Because a sample only stores `ImageSource::Synthetic { scene }`, everything here is a pure function
//! of that `u64`:
//!
//! - Bit 63 of the id picks the family ([`SCENE_TEXT_BIT`] set: lines of text for OCR; clear: coloured
//!   shapes), the other 63 bits seed the layout. Every `u64` is a valid scene, so decoding cannot fail.
//! - Layout uses integers only (no `sin`, `powf`, ...), so a scene is identical on every platform.
//!   The one shape with irrational geometry, the star, uses a fixed table of unit vectors.
//! - Shapes sit in non-overlapping square cells with a background gap between them, and each shape's
//!   [`BBox`] is exactly the extent of the pixels the renderer paints (tests check this pixel for
//!   pixel), so counts, colours, positions and boxes stated in text are verifiably true.
//!
//! Building a scene costs a few hundred nanoseconds and allocates one small `Vec`: planners call it for
//! every sample to learn image sizes without rendering.

use super::rng::SplitMix64;
use super::words;

/// Set in a scene id for text (OCR) scenes; clear for shape scenes.
pub const SCENE_TEXT_BIT: u64 = 1 << 63;

/// Canvas sides vary within these bounds (pixels), with long/short side <= [`MAX_CANVAS_ASPECT`], so
/// the resize rule takes all its branches across a data set.
pub const MIN_CANVAS_SIDE: u32 = 160;
/// See [`MIN_CANVAS_SIDE`].
pub const MAX_CANVAS_SIDE: u32 = 1280;
/// Largest long/short canvas side ratio.
pub const MAX_CANVAS_ASPECT: u32 = 4;
/// Text canvases are at least this wide so that a line holds [`MIN_LINE_CHARS`] glyphs at scale 2.
pub const MIN_TEXT_CANVAS_WIDTH: u32 = 224;
/// Fewest glyphs a text line has room for; longer than any vocabulary word.
pub const MIN_LINE_CHARS: u32 = 12;
/// The bitmap font's glyph side before scaling.
pub const GLYPH_SIDE: u32 = 8;

/// A named colour. Names are what the text says; [`Colour::rgb`] is what the renderer paints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Colour {
    Red,
    Orange,
    Yellow,
    Green,
    Blue,
    Purple,
    Pink,
    Brown,
    Black,
    // Backgrounds.
    White,
    LightGray,
    Beige,
    LightBlue,
    // Ink for text scenes.
    DarkGray,
    Navy,
}

impl Colour {
    /// Colours shapes are painted in; all distinct from each other and from every background.
    pub const SHAPE: [Colour; 9] = [
        Colour::Red,
        Colour::Orange,
        Colour::Yellow,
        Colour::Green,
        Colour::Blue,
        Colour::Purple,
        Colour::Pink,
        Colour::Brown,
        Colour::Black,
    ];
    /// Light backgrounds, for shapes and text alike.
    pub const BACKGROUND: [Colour; 4] = [
        Colour::White,
        Colour::LightGray,
        Colour::Beige,
        Colour::LightBlue,
    ];
    /// Dark inks for text scenes.
    pub const INK: [Colour; 4] = [Colour::Black, Colour::DarkGray, Colour::Navy, Colour::Brown];

    /// The English name used in text ("light gray").
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Orange => "orange",
            Colour::Yellow => "yellow",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Purple => "purple",
            Colour::Pink => "pink",
            Colour::Brown => "brown",
            Colour::Black => "black",
            Colour::White => "white",
            Colour::LightGray => "light gray",
            Colour::Beige => "beige",
            Colour::LightBlue => "light blue",
            Colour::DarkGray => "dark gray",
            Colour::Navy => "navy",
        }
    }

    /// The exact RGB value painted.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 30, 30],
            Colour::Orange => [245, 140, 20],
            Colour::Yellow => [240, 210, 20],
            Colour::Green => [30, 150, 50],
            Colour::Blue => [30, 70, 210],
            Colour::Purple => [130, 50, 170],
            Colour::Pink => [240, 110, 180],
            Colour::Brown => [130, 80, 30],
            Colour::Black => [20, 20, 20],
            Colour::White => [255, 255, 255],
            Colour::LightGray => [211, 211, 211],
            Colour::Beige => [245, 240, 220],
            Colour::LightBlue => [200, 225, 245],
            Colour::DarkGray => [70, 70, 70],
            Colour::Navy => [20, 30, 100],
        }
    }
}

/// The kinds of shape drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShapeKind {
    Circle,
    Square,
    /// Isosceles, apex up, base along the bottom of its cell.
    Triangle,
    /// Five-pointed, one point up.
    Star,
}

impl ShapeKind {
    pub const ALL: [ShapeKind; 4] = [
        ShapeKind::Circle,
        ShapeKind::Square,
        ShapeKind::Triangle,
        ShapeKind::Star,
    ];

    /// Singular noun.
    pub fn name(self) -> &'static str {
        match self {
            ShapeKind::Circle => "circle",
            ShapeKind::Square => "square",
            ShapeKind::Triangle => "triangle",
            ShapeKind::Star => "star",
        }
    }

    /// Plural noun.
    pub fn plural(self) -> &'static str {
        match self {
            ShapeKind::Circle => "circles",
            ShapeKind::Square => "squares",
            ShapeKind::Triangle => "triangles",
            ShapeKind::Star => "stars",
        }
    }

    /// Noun for `count` items.
    pub fn noun(self, count: usize) -> &'static str {
        if count == 1 {
            self.name()
        } else {
            self.plural()
        }
    }
}

/// A pixel box: columns `x1..x2` and rows `y1..y2`, half-open. `(x1, y1)` and `(x2, y2)` are the
/// top-left and bottom-right corners in continuous image coordinates (pixel edges), so the box is
/// `x2 - x1` pixels wide. It is the exact extent of the painted pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BBox {
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
}

/// One drawn shape. Geometry is fully determined by `kind` and the square cell at (`x`, `y`) of side
/// `size` (odd, so circles, triangles and stars have a centre pixel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub kind: ShapeKind,
    pub colour: Colour,
    pub x: u32,
    pub y: u32,
    pub size: u32,
}

/// Star vertices as offsets from the centre for outer radius `r`: ten points alternating outer and
/// inner, clockwise from the top. Inner radius is 0.45 r (a chunky star that stays one blob when small).
/// The unit vectors are literal constants: `sin`/`cos` results are not guaranteed identical across
/// platforms, and these must be.
pub(crate) fn star_vertices(r: u32) -> [(i64, i64); 10] {
    const UNIT: [(f64, f64); 10] = [
        (0.0, -1.0),
        (0.264_503_363_531_612_9, -0.364_057_647_468_726_4),
        (0.951_056_516_295_153_5, -0.309_016_994_374_947_4),
        (0.427_975_432_332_819_2, 0.139_057_647_468_726_3),
        (0.587_785_252_292_473_1, 0.809_016_994_374_947_4),
        (0.0, 0.45),
        (-0.587_785_252_292_473_1, 0.809_016_994_374_947_4),
        (-0.427_975_432_332_819_2, 0.139_057_647_468_726_3),
        (-0.951_056_516_295_153_5, -0.309_016_994_374_947_4),
        (-0.264_503_363_531_612_9, -0.364_057_647_468_726_4),
    ];
    let r = f64::from(r);
    UNIT.map(|(ux, uy)| ((ux * r).round() as i64, (uy * r).round() as i64))
}

impl Shape {
    /// Centre pixel of the cell.
    pub fn centre(&self) -> (u32, u32) {
        (self.x + self.size / 2, self.y + self.size / 2)
    }

    /// The exact extent of the pixels this shape paints.
    pub fn bbox(&self) -> BBox {
        let cell = BBox {
            x1: self.x,
            y1: self.y,
            x2: self.x + self.size,
            y2: self.y + self.size,
        };
        match self.kind {
            // Circle (radius size/2 around the centre pixel), square and triangle all touch all four
            // sides of their cell: see the rasterizers in `render`.
            ShapeKind::Circle | ShapeKind::Square | ShapeKind::Triangle => cell,
            ShapeKind::Star => {
                let (cx, cy) = self.centre();
                let v = star_vertices(self.size / 2);
                let min_x = v.iter().map(|p| p.0).min().unwrap_or(0);
                let max_x = v.iter().map(|p| p.0).max().unwrap_or(0);
                let min_y = v.iter().map(|p| p.1).min().unwrap_or(0);
                let max_y = v.iter().map(|p| p.1).max().unwrap_or(0);
                // Vertices lie within the cell (|offset| <= size/2), so these never go negative.
                let at = |c: u32, d: i64| (i64::from(c) + d).max(0) as u32;
                BBox {
                    x1: at(cx, min_x),
                    y1: at(cy, min_y),
                    x2: at(cx, max_x) + 1,
                    y2: at(cy, max_y) + 1,
                }
            }
        }
    }
}

/// Lines of text drawn with the 8x8 bitmap font, each glyph scaled to `scale x scale` pixel blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextBlock {
    pub ink: Colour,
    /// Pixel magnification of the 8x8 glyphs (2..=4).
    pub scale: u32,
    /// Left edge of every line, pixels.
    pub left: u32,
    /// Top edge of the first line, pixels.
    pub top: u32,
    /// Distance between the tops of consecutive lines (glyph height plus a gap).
    pub line_pitch: u32,
    /// The lines, printable ASCII only, words separated by single spaces, no leading/trailing spaces.
    pub lines: Vec<String>,
}

impl TextBlock {
    /// The exact transcription of the block: its lines joined by newlines.
    pub fn transcription(&self) -> String {
        self.lines.join("\n")
    }
}

/// What a scene contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SceneContent {
    /// Non-overlapping shapes, in drawing order. Never empty.
    Shapes(Vec<Shape>),
    /// Lines of text for OCR.
    Text(TextBlock),
}

/// A complete description of one synthetic image. Only [`Scene::from_id`] builds one, which keeps its
/// invariants (sizes within bounds, shapes inside the canvas and apart, text inside the canvas).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scene {
    id: u64,
    height: u32,
    width: u32,
    background: Colour,
    content: SceneContent,
}

impl Scene {
    /// Decodes (regenerates) the scene an id names. Total and deterministic.
    pub fn from_id(id: u64) -> Scene {
        let mut rng = SplitMix64::new(id);
        if id & SCENE_TEXT_BIT != 0 {
            text_scene(id, &mut rng)
        } else {
            shapes_scene(id, &mut rng)
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Canvas height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Canvas width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// `(height, width)`, as [`crate::sample::ImageRef::size`] stores it.
    pub fn size(&self) -> (u32, u32) {
        (self.height, self.width)
    }

    pub fn background(&self) -> Colour {
        self.background
    }

    pub fn content(&self) -> &SceneContent {
        &self.content
    }

    /// The shapes, or an empty slice for a text scene.
    pub fn shapes(&self) -> &[Shape] {
        match &self.content {
            SceneContent::Shapes(shapes) => shapes,
            SceneContent::Text(_) => &[],
        }
    }

    /// The text block of a text scene.
    pub fn text(&self) -> Option<&TextBlock> {
        match &self.content {
            SceneContent::Text(block) => Some(block),
            SceneContent::Shapes(_) => None,
        }
    }
}

/// Canvas `(height, width)` with `width` in `min_width..=MAX_CANVAS_SIDE` and the aspect bound kept.
fn canvas(rng: &mut SplitMix64, min_width: u32) -> (u32, u32) {
    let width = rng.range(min_width, MAX_CANVAS_SIDE);
    let lo = MIN_CANVAS_SIDE.max(width.div_ceil(MAX_CANVAS_ASPECT));
    let hi = MAX_CANVAS_SIDE.min(width * MAX_CANVAS_ASPECT);
    (rng.range(lo, hi), width)
}

/// Shapes come in 1-3 groups of 1-3 shapes each; each group has its own (colour, kind). One group has a
/// single member and is placed first (on an empty canvas, so it always fits): every scene therefore has
/// a uniquely describable shape for grounding. Later shapes that find no free spot after a few tries are
/// dropped; the text is derived from the shapes that were placed, so it stays true.
fn shapes_scene(id: u64, rng: &mut SplitMix64) -> Scene {
    const PLACEMENT_TRIES: u32 = 30;
    let (height, width) = canvas(rng, MIN_CANVAS_SIDE);
    let background = Colour::BACKGROUND[rng.below(Colour::BACKGROUND.len() as u64) as usize];

    let n_groups = rng.range(1, 3) as usize;
    let mut groups: Vec<(Colour, ShapeKind, u32)> = Vec::with_capacity(n_groups);
    while groups.len() < n_groups {
        let colour = Colour::SHAPE[rng.below(Colour::SHAPE.len() as u64) as usize];
        let kind = ShapeKind::ALL[rng.below(ShapeKind::ALL.len() as u64) as usize];
        if !groups.iter().any(|g| g.0 == colour && g.1 == kind) {
            let count = if groups.is_empty() {
                1
            } else {
                rng.range(1, 3)
            };
            groups.push((colour, kind, count));
        }
    }

    let short = height.min(width);
    let min_size = (short / 12).max(15);
    let max_size = (short / 5).max(min_size);
    let margin = (short / 40).max(4);
    let mut shapes: Vec<Shape> = Vec::with_capacity(9);
    for &(colour, kind, count) in &groups {
        for _ in 0..count {
            // Odd sizes give every shape a centre pixel.
            let size = rng.range(min_size, max_size) | 1;
            let gap = (size / 8).max(4);
            for _ in 0..PLACEMENT_TRIES {
                let x = rng.range(margin, width - margin - size);
                let y = rng.range(margin, height - margin - size);
                let clear = shapes.iter().all(|s| {
                    let g = gap.max((s.size / 8).max(4));
                    x >= s.x + s.size + g
                        || s.x >= x + size + g
                        || y >= s.y + s.size + g
                        || s.y >= y + size + g
                });
                if clear {
                    shapes.push(Shape {
                        kind,
                        colour,
                        x,
                        y,
                        size,
                    });
                    break;
                }
            }
        }
    }
    Scene {
        id,
        height,
        width,
        background,
        content: SceneContent::Shapes(shapes),
    }
}

/// 1-6 lines of words and numbers in a dark ink on a light background, glyphs magnified 2-4x. The
/// magnification is capped so that a line always has room for [`MIN_LINE_CHARS`] glyphs, longer than
/// any single token, so no line is ever empty.
fn text_scene(id: u64, rng: &mut SplitMix64) -> Scene {
    const MARGIN: u32 = 8;
    let (height, width) = canvas(rng, MIN_TEXT_CANVAS_WIDTH);
    let background = Colour::BACKGROUND[rng.below(Colour::BACKGROUND.len() as u64) as usize];
    let ink = Colour::INK[rng.below(Colour::INK.len() as u64) as usize];

    let max_scale = (width - 2 * MARGIN) / (GLYPH_SIDE * MIN_LINE_CHARS);
    let scale = rng.range(2, 4).min(max_scale).max(2);
    let glyph = GLYPH_SIDE * scale;
    let line_pitch = glyph + glyph / 2;
    let fitting_lines = (height - 2 * MARGIN - glyph) / line_pitch + 1;
    let n_lines = rng.range(1, fitting_lines.min(6));

    let spare_x = width - 2 * MARGIN - glyph * MIN_LINE_CHARS;
    let left = MARGIN + rng.range(0, spare_x / 2);
    let capacity = ((width - MARGIN - left) / glyph) as usize;
    let block_height = (n_lines - 1) * line_pitch + glyph;
    let top = MARGIN + rng.range(0, height - 2 * MARGIN - block_height);

    let lines = (0..n_lines)
        .map(|_| {
            let target = rng.range((capacity / 3).max(1) as u32, capacity as u32) as usize;
            let mut line = String::with_capacity(capacity);
            loop {
                let word = words::ocr_token(rng);
                let needed = word.len() + usize::from(!line.is_empty());
                if line.len() + needed > capacity {
                    break;
                }
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(&word);
                if line.len() >= target {
                    break;
                }
            }
            line
        })
        .collect();
    let text = TextBlock {
        ink,
        scale,
        left,
        top,
        line_pitch,
        lines,
    };
    Scene {
        id,
        height,
        width,
        background,
        content: SceneContent::Text(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: bool) -> impl Iterator<Item = u64> {
        let family = if text { SCENE_TEXT_BIT } else { 0 };
        (0..400u64).map(move |i| (super::super::rng::mix64(i) & !SCENE_TEXT_BIT) | family)
    }

    #[test]
    fn every_id_decodes_including_the_extremes() {
        for id in [0, 1, u64::MAX, SCENE_TEXT_BIT, SCENE_TEXT_BIT - 1] {
            let scene = Scene::from_id(id);
            assert_eq!(scene.id(), id);
            assert_eq!(scene.text().is_some(), id & SCENE_TEXT_BIT != 0);
        }
    }

    #[test]
    fn canvases_vary_within_bounds_and_aspect_limit() {
        let mut widths = std::collections::BTreeSet::new();
        let mut wide = 0;
        let mut tall = 0;
        for id in ids(false).chain(ids(true)) {
            let s = Scene::from_id(id);
            let (h, w) = s.size();
            assert!((MIN_CANVAS_SIDE..=MAX_CANVAS_SIDE).contains(&h), "{h}");
            assert!((MIN_CANVAS_SIDE..=MAX_CANVAS_SIDE).contains(&w), "{w}");
            assert!(h.max(w) <= MAX_CANVAS_ASPECT * h.min(w));
            widths.insert(w);
            wide += usize::from(w >= 2 * h);
            tall += usize::from(h >= 2 * w);
        }
        assert!(widths.len() > 300, "sizes vary");
        assert!(
            wide > 20 && tall > 20,
            "aspect ratios vary both ways: {wide} wide, {tall} tall"
        );
    }

    #[test]
    fn shapes_are_inside_the_canvas_apart_and_one_is_unique() {
        for id in ids(false) {
            let scene = Scene::from_id(id);
            let shapes = scene.shapes();
            assert!(!shapes.is_empty() && shapes.len() <= 9);
            for (i, a) in shapes.iter().enumerate() {
                assert_eq!(a.size % 2, 1);
                assert!(a.x + a.size <= scene.width() && a.y + a.size <= scene.height());
                for b in &shapes[i + 1..] {
                    let apart = a.x + a.size + 4 <= b.x
                        || b.x + b.size + 4 <= a.x
                        || a.y + a.size + 4 <= b.y
                        || b.y + b.size + 4 <= a.y;
                    assert!(apart, "{a:?} {b:?}");
                }
            }
            let first = shapes[0];
            let same = shapes
                .iter()
                .filter(|s| s.kind == first.kind && s.colour == first.colour);
            assert_eq!(
                same.count(),
                1,
                "the first shape is the only one of its colour and kind"
            );
        }
    }

    #[test]
    fn star_bbox_lies_inside_its_cell() {
        for size in (15..300).step_by(2) {
            let star = Shape {
                kind: ShapeKind::Star,
                colour: Colour::Red,
                x: 0,
                y: 0,
                size,
            };
            let b = star.bbox();
            assert!(b.x2 <= size && b.y2 <= size && b.x1 < b.x2 && b.y1 < b.y2);
            assert_eq!(b.y1, 0, "the top point touches the top of the cell");
        }
    }

    #[test]
    fn text_lines_fit_the_canvas() {
        for id in ids(true) {
            let scene = Scene::from_id(id);
            let t = scene.text().unwrap();
            assert!((1..=6).contains(&t.lines.len()));
            assert!((2..=4).contains(&t.scale));
            let glyph = GLYPH_SIDE * t.scale;
            for line in &t.lines {
                assert!(!line.is_empty() && line.trim() == line && !line.contains("  "));
                assert!(line.bytes().all(|b| (0x21..0x7f).contains(&b) || b == b' '));
                assert!(t.left + line.len() as u32 * glyph <= scene.width());
            }
            let bottom = t.top + (t.lines.len() as u32 - 1) * t.line_pitch + glyph;
            assert!(bottom <= scene.height());
        }
    }
}
