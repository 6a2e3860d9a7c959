//! Image references: resolving paths, reading sizes from headers, and deciding acceptance.
//!
//! Every image a reader yields carries its original `(height, width)`, read from the file or byte
//! header with `imagesize` (no decoding): the planner needs sizes to count vision tokens, and reading
//! headers at source time turns a missing or broken image into a per-record reject with a location
//! instead of a crash halfway through a build.
//!
//! Each image must also pass [`mixtape_image::check`], the same acceptance rule the builder's decoder
//! runs first: a format the decoder does not take (GIF, BMP, AVIF...), a size over the decode limit, a
//! JPEG without its end-of-image marker, a PNG cut short or with a damaged chunk. Such a record is
//! refused here as `unreadable_image_header`, so `check` and `plan` count it, and the build, which
//! reads records through these same functions, refuses it with the same code: a build cannot fail
//! `--max-reject-fraction` on images `check` called fine. The price is reading each image file whole
//! (the build reads it anyway); only defects a full decode finds (damaged entropy-coded data) are
//! left to the build, as `undecodable_image`.
//!
//! Sizes are as *displayed*: a JPEG whose EXIF orientation rotates it by 90 degrees (5 to 8, as
//! phone photos often are) reports its stored size transposed, because the pixels the model sees
//! (and the vision-token grid) are the upright ones. Whatever decodes the pixels must apply the same
//! orientation. `imagesize` does not read EXIF, so the few bytes of it needed are parsed here.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mixtape_image::tiff_orientation;

use super::error::RejectReason;
use crate::sample::{ImageRef, ImageSource};

/// Resolves a path written in a record: absolute paths stay as they are, relative ones are joined to
/// `root` (the source's `image_root`, or the data file's folder).
pub(crate) fn resolve_path(root: &Path, written: &str) -> PathBuf {
    root.join(written)
}

/// An image file on disk, with its displayed size, if the builder's decoder would accept it.
pub(crate) fn probe_file(path: PathBuf) -> Result<ImageRef, RejectReason> {
    let bytes = match mixtape_store::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RejectReason::MissingImage(path));
        }
        Err(e) => {
            return Err(RejectReason::UnreadableImageHeader {
                image: path.display().to_string(),
                detail: e.to_string(),
            });
        }
    };
    let size = probe(&bytes, || path.display().to_string())?;
    Ok(ImageRef {
        source: ImageSource::File(path),
        size: Some(size),
    })
}

/// Encoded image bytes held by the record; `what` names them in a reject (a member, a column).
pub(crate) fn probe_bytes(
    bytes: Arc<[u8]>,
    what: impl Fn() -> String,
) -> Result<ImageRef, RejectReason> {
    let size = probe(&bytes, what)?;
    Ok(ImageRef {
        source: ImageSource::Bytes(bytes),
        size: Some(size),
    })
}

/// The displayed `(height, width)` of a whole encoded image that passes the decoder's acceptance
/// rule.
fn probe(bytes: &[u8], what: impl Fn() -> String) -> Result<(u32, u32), RejectReason> {
    let unreadable = |detail: String| RejectReason::UnreadableImageHeader {
        image: what(),
        detail,
    };
    let size = imagesize::blob_size(bytes).map_err(|e| unreadable(describe(&e)))?;
    mixtape_image::check(bytes).map_err(|e| unreadable(e.to_string()))?;
    let transposed = exif_transposes(&mut Cursor::new(bytes));
    displayed(size, transposed, &what)
}

/// `(height, width)` as displayed, checked to fit `u32` and be non-empty.
fn displayed(
    size: imagesize::ImageSize,
    transposed: bool,
    what: impl Fn() -> String,
) -> Result<(u32, u32), RejectReason> {
    let (h, w) = checked_size(size, what)?;
    Ok(if transposed { (w, h) } else { (h, w) })
}

fn checked_size(
    size: imagesize::ImageSize,
    what: impl Fn() -> String,
) -> Result<(u32, u32), RejectReason> {
    match (u32::try_from(size.height), u32::try_from(size.width)) {
        (Ok(h), Ok(w)) if h > 0 && w > 0 => Ok((h, w)),
        _ => Err(RejectReason::UnreadableImageHeader {
            image: what(),
            detail: format!(
                "implausible size {}x{} (width x height)",
                size.width, size.height
            ),
        }),
    }
}

/// Whether a JPEG's EXIF orientation (5 to 8) turns it by 90 degrees. Anything unreadable is
/// "no": the stored size is the best answer left.
fn exif_transposes<R: Read + Seek>(reader: &mut R) -> bool {
    transposes(jpeg_exif_orientation(reader))
}

fn transposes(orientation: Option<u16>) -> bool {
    orientation.is_some_and(|o| (5..=8).contains(&o))
}

/// How many JPEG segments to walk looking for EXIF before giving up; EXIF is APP1, normally first.
const MAX_JPEG_SEGMENTS: usize = 64;

fn jpeg_exif_orientation<R: Read + Seek>(reader: &mut R) -> Option<u16> {
    read_jpeg_exif_orientation(reader).ok().flatten()
}

/// The EXIF orientation of a JPEG: `Ok(None)` when it has none (or is no JPEG), an error when the
/// reader fails or ends first (`UnexpectedEof` for a truncated file, or a head cut short).
fn read_jpeg_exif_orientation<R: Read + Seek>(reader: &mut R) -> std::io::Result<Option<u16>> {
    let mut two = [0u8; 2];
    reader.read_exact(&mut two)?;
    if two != [0xFF, 0xD8] {
        return Ok(None);
    }
    for _ in 0..MAX_JPEG_SEGMENTS {
        reader.read_exact(&mut two)?;
        if two[0] != 0xFF {
            return Ok(None);
        }
        let mut marker = two[1];
        while marker == 0xFF {
            // Fill bytes before a marker.
            let mut one = [0u8; 1];
            reader.read_exact(&mut one)?;
            marker = one[0];
        }
        match marker {
            // Markers without a length.
            0x01 | 0xD0..=0xD8 => continue,
            // Start of scan or end of image: EXIF would have come before.
            0xD9 | 0xDA => return Ok(None),
            _ => {}
        }
        reader.read_exact(&mut two)?;
        let Some(body) = u16::from_be_bytes(two).checked_sub(2) else {
            return Ok(None);
        };
        if marker == 0xE1 {
            let mut data = vec![0u8; usize::from(body)];
            reader.read_exact(&mut data)?;
            if let Some(orientation) = data.strip_prefix(b"Exif\0\0").and_then(tiff_orientation) {
                return Ok(Some(orientation));
            }
            // Another APP1 (XMP): keep looking.
        } else {
            reader.seek(SeekFrom::Current(i64::from(body)))?;
        }
    }
    Ok(None)
}

fn describe(e: &imagesize::ImageError) -> String {
    match e {
        imagesize::ImageError::NotSupported => "not a recognised image format".to_owned(),
        imagesize::ImageError::CorruptedImage => "the header is truncated or corrupt".to_owned(),
        imagesize::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file is too short to be an image".to_owned()
        }
        imagesize::ImageError::IoError(io) => io.to_string(),
    }
}

/// Test helpers shared by the reader tests: tiny image headers that `imagesize` understands.
#[cfg(test)]
pub(crate) mod testing {
    /// A whole, decodable PNG of the given size (a flat colour): what the probe accepts.
    pub(crate) fn png_header(width: u32, height: u32) -> Vec<u8> {
        let img =
            crate::image::RgbImage::try_filled(width, height, [90, 140, 200]).expect("small size");
        crate::image::encode_png(&img).expect("encodable")
    }

    /// A decodable JPEG of the given stored size with a JFIF APP0 and an optional EXIF APP1 carrying
    /// an orientation, ahead of the encoder's own segments.
    pub(crate) fn jpeg_header(
        width: u16,
        height: u16,
        orientation: Option<u16>,
        big_endian: bool,
    ) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        // An APP0 (JFIF) first, as most encoders write, so the reader has to skip a segment.
        v.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
        v.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        if let Some(o) = orientation {
            let u16b = |x: u16| {
                if big_endian {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                }
            };
            let u32b = |x: u32| {
                if big_endian {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                }
            };
            let mut tiff = Vec::new();
            tiff.extend_from_slice(if big_endian { b"MM" } else { b"II" });
            tiff.extend_from_slice(&u16b(42));
            tiff.extend_from_slice(&u32b(8));
            tiff.extend_from_slice(&u16b(1));
            tiff.extend_from_slice(&u16b(0x0112));
            tiff.extend_from_slice(&u16b(3));
            tiff.extend_from_slice(&u32b(1));
            tiff.extend_from_slice(&u16b(o));
            tiff.extend_from_slice(&[0, 0]);
            tiff.extend_from_slice(&u32b(0));
            let len = (2 + 6 + tiff.len()) as u16;
            v.extend_from_slice(&[0xFF, 0xE1]);
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(b"Exif\0\0");
            v.extend_from_slice(&tiff);
        }
        // Then a real image of the stored size, less its SOI: the probe accepts only decodable files.
        let img =
            crate::image::RgbImage::try_filled(u32::from(width), u32::from(height), [90, 140, 200])
                .expect("small size");
        v.extend_from_slice(&crate::image::encode_jpeg(&img, 80).expect("encodable")[2..]);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{jpeg_header, png_header};
    use super::*;

    #[test]
    fn a_file_reports_height_then_width() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        std::fs::write(&p, png_header(640, 480)).unwrap();
        let img = probe_file(p.clone()).unwrap();
        assert_eq!(img.size, Some((480, 640)));
        assert_eq!(img.source, ImageSource::File(p));
    }

    #[test]
    fn a_missing_file_is_a_missing_image_and_garbage_is_an_unreadable_header() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.png");
        assert_eq!(
            probe_file(missing.clone()),
            Err(RejectReason::MissingImage(missing))
        );
        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"this is not an image at all").unwrap();
        let err = probe_file(junk).unwrap_err();
        assert_eq!(err.code().as_str(), "unreadable_image_header");
        assert!(err.to_string().contains("junk.png"), "{err}");
    }

    #[test]
    fn images_the_decoder_refuses_are_refused_by_the_probe_with_the_decoders_reason() {
        let png = png_header(40, 30);
        let gif = b"GIF89a\x28\x00\x1e\x00\x00\x00\x00;".to_vec();
        let cut_after_ihdr = png[..33].to_vec();
        let cut_in_idat = png[..png.len() - 20].to_vec();
        let mut jpeg = jpeg_header(40, 30, None, true);
        jpeg.truncate(jpeg.len() - 2); // no end-of-image marker
        for (name, bytes, says) in [
            ("gif", gif, "unsupported image format: gif"),
            ("cut after IHDR", cut_after_ihdr, "truncated"),
            ("cut in IDAT", cut_in_idat, "truncated"),
            ("jpeg without EOI", jpeg, "no end-of-image marker"),
        ] {
            // imagesize alone reads a size from each of these.
            assert!(imagesize::blob_size(&bytes).is_ok(), "{name}");
            let decode = crate::image::decode(&bytes).unwrap_err().to_string();
            let err = probe_bytes(bytes.into(), || "x".into()).unwrap_err();
            assert_eq!(err.code().as_str(), "unreadable_image_header", "{name}");
            assert!(err.to_string().contains(says), "{name}: {err}");
            assert!(
                err.to_string().ends_with(&decode),
                "{name}: {err} vs {decode}"
            );
        }
    }

    #[test]
    fn bytes_are_probed_without_touching_disk() {
        let img = probe_bytes(png_header(3, 2).into(), || "column image".into()).unwrap();
        assert_eq!(img.size, Some((2, 3)));
        let err = probe_bytes(Arc::from(&b"xx"[..]), || "member 7.png".into()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read the image header of member 7.png"),
            "{err}"
        );
    }

    #[test]
    fn exif_orientations_that_rotate_90_degrees_report_the_upright_size() {
        // Stored 200 wide x 320 high; orientation 6 displays it 320 wide x 200 high.
        for big_endian in [true, false] {
            let rotated = probe_bytes(
                jpeg_header(200, 320, Some(6), big_endian).into(),
                String::new,
            )
            .unwrap();
            assert_eq!(rotated.size, Some((200, 320)));
        }
        for (orientation, expected) in [
            (None, (320, 200)),
            (Some(1), (320, 200)),
            (Some(3), (320, 200)),
            (Some(8), (200, 320)),
        ] {
            let img =
                probe_bytes(jpeg_header(200, 320, orientation, true).into(), String::new).unwrap();
            assert_eq!(img.size, Some(expected), "orientation {orientation:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("phone.jpg");
        std::fs::write(&p, jpeg_header(40, 30, Some(5), false)).unwrap();
        assert_eq!(probe_file(p).unwrap().size, Some((40, 30)));
    }

    #[test]
    fn a_header_or_exif_block_far_into_the_file_is_still_found() {
        // Two 64 KiB APP2 segments (an ICC profile, say) between the JFIF and the EXIF blocks put
        // the orientation and the frame header 128 KiB into the file.
        let mut padding = Vec::new();
        for _ in 0..2 {
            padding.extend_from_slice(&[0xFF, 0xE2, 0xFF, 0xFF]);
            padding.extend(std::iter::repeat_n(0u8, 0xFFFF - 2));
        }
        let dir = tempfile::tempdir().unwrap();
        for (orientation, expected) in [(Some(6), (40, 30)), (None, (30, 40))] {
            let mut bytes = jpeg_header(40, 30, orientation, true);
            let after_jfif = 2 + 18;
            bytes.splice(after_jfif..after_jfif, padding.iter().copied());
            assert!(bytes.len() > 128 << 10);
            let p = dir.path().join("icc.jpg");
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(
                probe_file(p).unwrap().size,
                Some(expected),
                "orientation {orientation:?}"
            );
        }
    }

    #[test]
    fn a_broken_exif_block_falls_back_to_the_stored_size() {
        let mut bytes = jpeg_header(200, 320, Some(6), true);
        // Point the IFD far outside the block.
        let ifd_offset = bytes.windows(4).position(|w| w == b"MM\0*").unwrap() + 4;
        bytes[ifd_offset..ifd_offset + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            probe_bytes(bytes.into(), String::new).unwrap().size,
            Some((320, 200))
        );
        assert_eq!(tiff_orientation(b"II*\0"), None);
        assert_eq!(
            jpeg_exif_orientation(&mut Cursor::new(&[0xFF, 0xD8, 0xFF][..])),
            None
        );
    }

    #[test]
    fn relative_paths_join_the_root_and_absolute_paths_stay() {
        assert_eq!(
            resolve_path(Path::new("/data"), "img/a.png"),
            PathBuf::from("/data/img/a.png")
        );
        assert_eq!(
            resolve_path(Path::new("/data"), "/abs/a.png"),
            PathBuf::from("/abs/a.png")
        );
    }
}
