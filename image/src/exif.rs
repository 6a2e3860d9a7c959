//! EXIF orientation: reading the tag from JPEG bytes and turning stored pixels upright.
//!
//! Phones store photos in sensor order and record how to display them in the EXIF Orientation tag
//! (0x0112, values 1 to 8). Every size and pixel mixtape hands to a model is the image *as
//! displayed*: the source readers report header sizes transposed for orientations 5 to 8, so the
//! decoder must apply the same orientation, or the decoded size would disagree with the size the
//! planner counted tokens for, and "the red circle on the left" would become false.
//!
//! # Invariants
//!
//! - [`jpeg_orientation`] walks the same segments with the same limits as the source readers'
//!   header probe (`source/images.rs`): SOI, then at most [`MAX_JPEG_SEGMENTS`] marker segments up to
//!   the first SOS, taking the first APP1 that starts with `Exif\0\0` and has an Orientation tag in
//!   its first IFD. So decoding and probing agree on which images are rotated. Anything unreadable is
//!   "no orientation", never an error: the stored pixels are the best answer left.
//! - [`Orientation::apply`] returns an image of exactly [`Orientation::displayed_size`]; it is a pure
//!   pixel permutation (no resampling), so applying it is lossless.
//!
//! Only JPEG orientation is honoured: PNG `eXIf` and WebP `EXIF` chunks are rare, the readers do not
//! probe them either, and honouring them in one place only would break the size agreement.

use super::rgb::RgbImage;

/// How many JPEG segments to walk looking for EXIF before giving up; EXIF is APP1, normally first.
/// The same limit as the source readers' probe, so both agree on every file.
pub const MAX_JPEG_SEGMENTS: usize = 64;

/// The eight EXIF orientations: how the stored pixels map to the displayed image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Orientation {
    /// 1: stored upright.
    #[default]
    Normal,
    /// 2: mirrored left to right.
    FlipHorizontal,
    /// 3: upside down.
    Rotate180,
    /// 4: mirrored top to bottom.
    FlipVertical,
    /// 5: mirrored along the main diagonal (stored row 0 is the displayed left column).
    Transpose,
    /// 6: displayed by rotating the stored pixels 90 degrees clockwise.
    Rotate90,
    /// 7: mirrored along the anti-diagonal.
    Transverse,
    /// 8: displayed by rotating the stored pixels 90 degrees counter-clockwise.
    Rotate270,
}

impl Orientation {
    /// The orientation an EXIF tag value names; values outside 1 to 8 are treated as 1, as viewers do.
    pub fn from_exif(value: u16) -> Orientation {
        match value {
            2 => Orientation::FlipHorizontal,
            3 => Orientation::Rotate180,
            4 => Orientation::FlipVertical,
            5 => Orientation::Transpose,
            6 => Orientation::Rotate90,
            7 => Orientation::Transverse,
            8 => Orientation::Rotate270,
            _ => Orientation::Normal,
        }
    }

    /// The EXIF tag value (1 to 8).
    pub fn exif_value(self) -> u16 {
        match self {
            Orientation::Normal => 1,
            Orientation::FlipHorizontal => 2,
            Orientation::Rotate180 => 3,
            Orientation::FlipVertical => 4,
            Orientation::Transpose => 5,
            Orientation::Rotate90 => 6,
            Orientation::Transverse => 7,
            Orientation::Rotate270 => 8,
        }
    }

    /// Whether the displayed image has width and height swapped (orientations 5 to 8).
    pub fn transposes(self) -> bool {
        matches!(
            self,
            Orientation::Transpose
                | Orientation::Rotate90
                | Orientation::Transverse
                | Orientation::Rotate270
        )
    }

    /// `(height, width)` as displayed, for an image stored as `(height, width)`.
    pub fn displayed_size(self, stored: (u32, u32)) -> (u32, u32) {
        if self.transposes() {
            (stored.1, stored.0)
        } else {
            stored
        }
    }

    /// The stored pixel that lands at displayed `(x, y)`, for a stored image of `w x h`.
    fn source(self, x: usize, y: usize, w: usize, h: usize) -> (usize, usize) {
        match self {
            Orientation::Normal => (x, y),
            Orientation::FlipHorizontal => (w - 1 - x, y),
            Orientation::Rotate180 => (w - 1 - x, h - 1 - y),
            Orientation::FlipVertical => (x, h - 1 - y),
            Orientation::Transpose => (y, x),
            Orientation::Rotate90 => (y, h - 1 - x),
            Orientation::Transverse => (w - 1 - y, h - 1 - x),
            Orientation::Rotate270 => (w - 1 - y, x),
        }
    }

    /// The image as displayed. `Normal` returns the input unchanged; the others move every pixel
    /// once. An image whose buffer does not hold exactly `3 * width * height` bytes is returned
    /// unchanged (there is no consistent picture to turn).
    pub fn apply(self, img: RgbImage) -> RgbImage {
        let (w, h) = (img.width as usize, img.height as usize);
        if self == Orientation::Normal
            || w.checked_mul(h).and_then(|n| n.checked_mul(3)) != Some(img.pixels.len())
        {
            return img;
        }
        let (out_h, out_w) = self.displayed_size((img.height, img.width));
        let mut pixels = Vec::with_capacity(img.pixels.len());
        for y in 0..out_h as usize {
            for x in 0..out_w as usize {
                let (sx, sy) = self.source(x, y, w, h);
                let at = 3 * (sy * w + sx);
                pixels.extend_from_slice(&img.pixels[at..at + 3]);
            }
        }
        RgbImage {
            width: out_w,
            height: out_h,
            pixels,
        }
    }
}

/// One marker of a JPEG header: the marker byte and its body (after the length field; empty for
/// the markers that have no length).
#[derive(Clone, Copy, Debug)]
struct Segment<'a> {
    marker: u8,
    body: &'a [u8],
}

/// A walk over the markers after SOI, stopping at SOS or EOI (then `scan` holds where SOS starts,
/// if that is where it stopped) or at the first malformed marker.
#[derive(Debug)]
struct Segments<'a> {
    bytes: &'a [u8],
    at: usize,
    scan: Option<usize>,
}

impl<'a> Segments<'a> {
    /// Yields nothing for bytes that do not start with SOI.
    fn new(bytes: &'a [u8]) -> Self {
        let at = if bytes.starts_with(&[0xFF, 0xD8]) {
            2
        } else {
            bytes.len()
        };
        Segments {
            bytes,
            at,
            scan: None,
        }
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let bytes = self.bytes;
        let start = self.at;
        if *bytes.get(start)? != 0xFF {
            return None;
        }
        self.at = bytes.len();
        // Skip fill bytes (extra 0xFF) before the marker byte.
        let mut at = start + 1;
        let marker = loop {
            let byte = *bytes.get(at)?;
            at += 1;
            if byte != 0xFF {
                break byte;
            }
        };
        match marker {
            // Markers without a length.
            0x01 | 0xD0..=0xD8 => {
                self.at = at;
                return Some(Segment { marker, body: &[] });
            }
            0xDA => {
                self.scan = Some(start);
                return None;
            }
            // End of image: the header is over.
            0xD9 => return None,
            _ => {}
        }
        let len = u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?);
        let body_len = usize::from(len.checked_sub(2)?);
        let body = bytes.get(at + 2..at + 2 + body_len)?;
        self.at = at + 2 + body_len;
        Some(Segment { marker, body })
    }
}

/// The EXIF Orientation of JPEG bytes, or `None` when there is no readable tag (not a JPEG, no EXIF,
/// no Orientation entry, a broken TIFF block). See the module docs for which segments are searched.
pub fn jpeg_orientation(bytes: &[u8]) -> Option<u16> {
    Segments::new(bytes)
        .take(MAX_JPEG_SEGMENTS)
        .filter(|s| s.marker == 0xE1)
        .find_map(|s| s.body.strip_prefix(b"Exif\0\0").and_then(tiff_orientation))
}

/// Byte offset of the first SOS marker of a JPEG, found by walking its header segments, or `None` if
/// the walk does not reach one. Linear in the header length: every step consumes at least 2 bytes.
pub(crate) fn jpeg_scan_start(bytes: &[u8]) -> Option<usize> {
    let mut walk = Segments::new(bytes);
    walk.by_ref().for_each(drop);
    walk.scan
}

/// The Orientation tag (0x0112) of a TIFF header's first IFD (the body of an EXIF block after its
/// `Exif\0\0` prefix), or `None` when the header is not TIFF or has no such entry.
pub fn tiff_orientation(tiff: &[u8]) -> Option<u16> {
    let little = match tiff.get(0..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |at: usize| {
        let b: [u8; 2] = tiff.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = tiff.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    if u16_at(2)? != 42 {
        return None;
    }
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let entries = u16_at(ifd)?;
    (0..usize::from(entries)).find_map(|i| {
        let entry = ifd.checked_add(2)?.checked_add(i.checked_mul(12)?)?;
        // A SHORT value sits in the first two bytes of the entry's 4-byte value field.
        (u16_at(entry)? == 0x0112)
            .then(|| u16_at(entry + 8))
            .flatten()
    })
}

/// A minimal EXIF APP1 payload (without the `Exif\0\0` prefix) holding only an Orientation tag, in
/// big-endian TIFF. For tests (here and in mixtape-engine) that need JPEGs of every orientation.
#[doc(hidden)]
pub fn tiff_with_orientation(orientation: u16) -> Vec<u8> {
    let mut v = b"MM\0\x2a\0\0\0\x08".to_vec(); // header, IFD at offset 8
    v.extend_from_slice(&1u16.to_be_bytes()); // one entry
    v.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    v.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    v.extend_from_slice(&1u32.to_be_bytes()); // count
    v.extend_from_slice(&orientation.to_be_bytes());
    v.extend_from_slice(&[0, 0]); // value padding
    v.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3 wide x 2 high image whose pixels are all different: pixel (x, y) = [x, y, 0].
    fn labelled() -> RgbImage {
        let mut img = RgbImage::try_filled(3, 2, [0; 3]).unwrap();
        for y in 0..2 {
            for x in 0..3 {
                img.set_pixel(x, y, [x as u8, y as u8, 0]);
            }
        }
        img
    }

    /// Rows of stored `(x, y)` labels, top to bottom.
    type Layout = Vec<Vec<(u8, u8)>>;

    fn rows(img: &RgbImage) -> Layout {
        (0..img.height)
            .map(|y| {
                (0..img.width)
                    .map(|x| {
                        let p = img.pixel(x, y).unwrap();
                        (p[0], p[1])
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn every_orientation_maps_pixels_as_the_exif_spec_draws_them() {
        // Stored (x, y) labels. Expected displayed layouts, row by row, from the EXIF 2.3 figure.
        let cases: [(u16, Layout); 8] = [
            (
                1,
                vec![vec![(0, 0), (1, 0), (2, 0)], vec![(0, 1), (1, 1), (2, 1)]],
            ),
            (
                2,
                vec![vec![(2, 0), (1, 0), (0, 0)], vec![(2, 1), (1, 1), (0, 1)]],
            ),
            (
                3,
                vec![vec![(2, 1), (1, 1), (0, 1)], vec![(2, 0), (1, 0), (0, 0)]],
            ),
            (
                4,
                vec![vec![(0, 1), (1, 1), (2, 1)], vec![(0, 0), (1, 0), (2, 0)]],
            ),
            // 5: stored row 0 becomes the left column, stored column 0 the top row.
            (
                5,
                vec![
                    vec![(0, 0), (0, 1)],
                    vec![(1, 0), (1, 1)],
                    vec![(2, 0), (2, 1)],
                ],
            ),
            // 6: rotate clockwise: stored row 0 becomes the right column, read top to bottom.
            (
                6,
                vec![
                    vec![(0, 1), (0, 0)],
                    vec![(1, 1), (1, 0)],
                    vec![(2, 1), (2, 0)],
                ],
            ),
            // 7: stored row 0 becomes the right column, read bottom to top.
            (
                7,
                vec![
                    vec![(2, 1), (2, 0)],
                    vec![(1, 1), (1, 0)],
                    vec![(0, 1), (0, 0)],
                ],
            ),
            // 8: rotate counter-clockwise: stored row 0 becomes the left column, read bottom to top.
            (
                8,
                vec![
                    vec![(2, 0), (2, 1)],
                    vec![(1, 0), (1, 1)],
                    vec![(0, 0), (0, 1)],
                ],
            ),
        ];
        for (value, expected) in cases {
            let o = Orientation::from_exif(value);
            assert_eq!(o.exif_value(), value);
            let out = o.apply(labelled());
            assert_eq!(rows(&out), expected, "orientation {value}");
            assert_eq!(out.size(), o.displayed_size((2, 3)), "orientation {value}");
            assert_eq!(out.pixels.len(), 18);
        }
    }

    #[test]
    fn unknown_values_and_broken_buffers_leave_the_image_alone() {
        assert_eq!(Orientation::from_exif(0), Orientation::Normal);
        assert_eq!(Orientation::from_exif(9), Orientation::Normal);
        let broken = RgbImage {
            width: 5,
            height: 5,
            pixels: vec![1, 2, 3],
        };
        assert_eq!(Orientation::Rotate90.apply(broken.clone()), broken);
    }

    fn jpeg_with_app1(payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE1];
        v.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        v.extend_from_slice(payload);
        v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9]);
        v
    }

    #[test]
    fn reads_the_orientation_of_an_exif_app1() {
        for o in 1..=8 {
            let mut payload = b"Exif\0\0".to_vec();
            payload.extend(tiff_with_orientation(o));
            assert_eq!(jpeg_orientation(&jpeg_with_app1(&payload)), Some(o));
        }
        // XMP in APP1 is skipped; no EXIF at all is None; so are non-JPEGs and truncations.
        assert_eq!(
            jpeg_orientation(&jpeg_with_app1(b"http://ns.adobe.com/xap/1.0/\0")),
            None
        );
        assert_eq!(jpeg_orientation(b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(jpeg_orientation(&[0xFF, 0xD8, 0xFF]), None);
        assert_eq!(tiff_orientation(b"II*\0"), None);
    }

    #[test]
    fn finds_the_first_scan() {
        let v = jpeg_with_app1(b"Exif\0\0");
        assert_eq!(jpeg_scan_start(&v), Some(v.len() - 6));
        assert_eq!(jpeg_scan_start(&[0xFF, 0xD8, 0xFF, 0xDA]), Some(2));
        assert_eq!(jpeg_scan_start(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00]), None);
        assert_eq!(jpeg_scan_start(b"not a jpeg"), None);
    }
}
