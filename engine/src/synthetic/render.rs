//! Rasterizing a [`Scene`] into an [`RgbImage`].
//!
//! Deliberately crude: solid colours, no anti-aliasing, integer geometry. That keeps every painted
//! pixel exactly one of the scene's named colours, so tests can count shapes by colour and re-read text
//! by matching glyphs, and it makes the output identical on every platform. Each rasterizer paints
//! exactly the pixels inside [`Shape::bbox`], touching all four of its sides, which is what the
//! grounding answers promise.

use super::scene::{GLYPH_SIDE, Scene, SceneContent, Shape, ShapeKind, TextBlock, star_vertices};
use crate::image::RgbImage;

/// Renders the scene an id names: `render_scene(id) == Scene::from_id(id).render()`.
pub fn render_scene(scene: u64) -> RgbImage {
    Scene::from_id(scene).render()
}

impl Scene {
    /// Draws the scene: a `width x height` canvas of the background colour with its content on top.
    pub fn render(&self) -> RgbImage {
        // Sides are at most 1280 by construction (`Scene::from_id` is the only constructor), so the
        // buffer size cannot overflow.
        let count = self.width() as usize * self.height() as usize;
        let mut img = RgbImage {
            width: self.width(),
            height: self.height(),
            pixels: self.background().rgb().repeat(count),
        };
        match self.content() {
            SceneContent::Shapes(shapes) => shapes.iter().for_each(|s| draw_shape(&mut img, s)),
            SceneContent::Text(block) => draw_text(&mut img, block),
        }
        img
    }
}

fn draw_shape(img: &mut RgbImage, shape: &Shape) {
    let rgb = shape.colour.rgb();
    let (x, y, size) = (shape.x, shape.y, shape.size);
    let (cx, cy) = shape.centre();
    let r = size / 2;
    match shape.kind {
        ShapeKind::Square => img.fill_rect(x, y, x + size, y + size, rgb),
        ShapeKind::Circle => {
            // Pixel centres within distance r of the centre pixel; rows cy-r and cy+r and columns
            // cx-r and cx+r are reached, so the shape spans its whole cell.
            for dy in 0..=r {
                let half = (u64::from(r * r - dy * dy)).isqrt() as u32;
                img.fill_span(cy - dy, cx - half, cx + half + 1, rgb);
                img.fill_span(cy + dy, cx - half, cx + half + 1, rgb);
            }
        }
        ShapeKind::Triangle => {
            // Apex at the top-centre pixel, base the full bottom row: row t spans cx +- t/2, which is
            // exactly the set of pixel centres inside the triangle with vertices at pixel centres.
            for t in 0..size {
                img.fill_span(y + t, cx - t / 2, cx + t / 2 + 1, rgb);
            }
        }
        ShapeKind::Star => {
            // A fan of ten triangles from the centre; vertices are integer pixel centres, and the
            // inclusive edge test paints every vertex, so the painted extent is the vertex extent.
            let v = star_vertices(r);
            let c = (i64::from(cx), i64::from(cy));
            for i in 0..v.len() {
                let a = (c.0 + v[i].0, c.1 + v[i].1);
                let b = (c.0 + v[(i + 1) % v.len()].0, c.1 + v[(i + 1) % v.len()].1);
                fill_triangle(img, c, a, b, rgb);
            }
        }
    }
}

/// Paints the pixels whose centres lie inside or on the edges of the triangle `p0 p1 p2` (integer
/// pixel coordinates). Degenerate triangles paint nothing.
fn fill_triangle(img: &mut RgbImage, p0: (i64, i64), p1: (i64, i64), p2: (i64, i64), rgb: [u8; 3]) {
    let edge = |a: (i64, i64), b: (i64, i64), p: (i64, i64)| {
        (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0)
    };
    let area = edge(p0, p1, p2);
    if area == 0 {
        return;
    }
    let sign = area.signum();
    let x_lo = p0.0.min(p1.0).min(p2.0).max(0);
    let x_hi = p0.0.max(p1.0).max(p2.0).min(i64::from(img.width) - 1);
    let y_lo = p0.1.min(p1.1).min(p2.1).max(0);
    let y_hi = p0.1.max(p1.1).max(p2.1).min(i64::from(img.height) - 1);
    for py in y_lo..=y_hi {
        for px in x_lo..=x_hi {
            let p = (px, py);
            let inside = edge(p0, p1, p) * sign >= 0
                && edge(p1, p2, p) * sign >= 0
                && edge(p2, p0, p) * sign >= 0;
            if inside {
                img.set_pixel(px as u32, py as u32, rgb);
            }
        }
    }
}

/// The 8x8 glyph of a character: row `r`'s bit `c` (least significant = leftmost) is pixel `(c, r)`.
/// Non-ASCII characters draw as blanks (the generators only produce printable ASCII).
pub(crate) fn glyph(ch: char) -> [u8; 8] {
    font8x8::legacy::BASIC_LEGACY
        .get(ch as usize)
        .copied()
        .unwrap_or([0; 8])
}

fn draw_text(img: &mut RgbImage, block: &TextBlock) {
    let rgb = block.ink.rgb();
    let s = block.scale;
    let advance = GLYPH_SIDE * s;
    for (i, line) in block.lines.iter().enumerate() {
        let top = block.top + i as u32 * block.line_pitch;
        for (k, ch) in line.chars().enumerate() {
            let left = block.left + k as u32 * advance;
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..GLYPH_SIDE {
                    if bits & (1 << col) != 0 {
                        let (px, py) = (left + col * s, top + row as u32 * s);
                        img.fill_rect(px, py, px + s, py + s, rgb);
                    }
                }
            }
        }
    }
}
