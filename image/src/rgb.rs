//! [`RgbImage`]: a plain, codec-free RGB8 pixel buffer.
//!
//! The synthetic generators draw into it and tests read it back; the builder can hand it to whatever
//! encoder it uses. It is a struct with public fields rather than a wrapper around an imaging crate so
//! that the engine's pixels never change with a dependency's version, and so that the drawing code stays
//! a few obvious loops. Writes outside the canvas are clipped, never a panic.

use std::fmt;

/// An RGB image, 8 bits per channel, row-major, no padding: pixel `(x, y)` starts at byte
/// `3 * (y * width + x)`, and `pixels.len() == 3 * width * height`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

// Hand-written so that a failing assertion prints the size, not megabytes of bytes.
impl fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RgbImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("pixels", &format_args!("[{} bytes]", self.pixels.len()))
            .finish()
    }
}

impl RgbImage {
    /// A `width x height` image filled with `rgb`, or `None` when its byte count does not fit in
    /// `usize`.
    pub fn try_filled(width: u32, height: u32, rgb: [u8; 3]) -> Option<Self> {
        let count = (width as usize).checked_mul(height as usize)?;
        count.checked_mul(3)?;
        Some(RgbImage {
            width,
            height,
            pixels: rgb.repeat(count),
        })
    }

    /// `(height, width)`, the order mixtape-engine's `ImageRef::size` and the resize rule use.
    pub fn size(&self) -> (u32, u32) {
        (self.height, self.width)
    }

    fn offset(&self, x: u32, y: u32) -> Option<usize> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let offset = 3 * (y as usize * self.width as usize + x as usize);
        (offset + 3 <= self.pixels.len()).then_some(offset)
    }

    /// The colour at `(x, y)`, or `None` outside the canvas.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        let at = self.offset(x, y)?;
        Some([self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]])
    }

    /// Sets `(x, y)` to `rgb`; does nothing outside the canvas.
    pub fn set_pixel(&mut self, x: u32, y: u32, rgb: [u8; 3]) {
        if let Some(at) = self.offset(x, y) {
            self.pixels[at..at + 3].copy_from_slice(&rgb);
        }
    }

    /// Paints row `y` from column `x_start` up to, not including, `x_end`, clipped to the canvas.
    pub fn fill_span(&mut self, y: u32, x_start: u32, x_end: u32, rgb: [u8; 3]) {
        let x_end = x_end.min(self.width);
        if x_start >= x_end {
            return;
        }
        let (Some(start), Some(last)) = (self.offset(x_start, y), self.offset(x_end - 1, y)) else {
            return;
        };
        for px in self.pixels[start..last + 3].chunks_exact_mut(3) {
            px.copy_from_slice(&rgb);
        }
    }

    /// Paints the rectangle of columns `x0..x1` and rows `y0..y1` (half-open), clipped.
    pub fn fill_rect(&mut self, x0: u32, y0: u32, x1: u32, y1: u32, rgb: [u8; 3]) {
        for y in y0..y1.min(self.height) {
            self.fill_span(y, x0, x1, rgb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_row_major_rgb8() {
        let mut img = RgbImage::try_filled(3, 2, [1, 2, 3]).unwrap();
        assert_eq!(img.pixels.len(), 18);
        img.set_pixel(2, 1, [9, 8, 7]);
        assert_eq!(&img.pixels[15..18], &[9, 8, 7]);
        assert_eq!(img.pixel(2, 1), Some([9, 8, 7]));
        assert_eq!(img.pixel(0, 0), Some([1, 2, 3]));
        assert_eq!(img.size(), (2, 3));
    }

    #[test]
    fn drawing_outside_the_canvas_is_clipped() {
        let mut img = RgbImage::try_filled(4, 4, [0; 3]).unwrap();
        img.set_pixel(4, 0, [255; 3]);
        img.fill_span(9, 0, 4, [255; 3]);
        img.fill_rect(2, 2, 100, 100, [255; 3]);
        let lit = img.pixels.chunks_exact(3).filter(|p| p[0] == 255).count();
        assert_eq!(lit, 4, "only the 2x2 corner inside the canvas is painted");
        assert_eq!(img.pixel(4, 0), None);
    }

    #[test]
    fn absurd_sizes_are_refused_not_allocated() {
        assert!(RgbImage::try_filled(u32::MAX, u32::MAX, [0; 3]).is_none());
    }
}
