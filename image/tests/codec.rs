//! Tests of the codec pipeline as a whole: EXIF-rotated demo photos come out upright, encoders
//! round-trip, every pixel layout converts, and damaged bytes are errors, never panics.
//!
//! That the source readers' probed sizes agree with what these decoders produce is tested on the
//! engine's side (`engine/tests/demo_images.rs`), where the readers are.

use std::path::{Path, PathBuf};

use mixtape_image::exif::tiff_with_orientation;
use mixtape_image::*;
use proptest::prelude::*;

/// The demo recipe's images (recipes/data/images; their README says what each shows).
fn demo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/data")
}

/// The 24 demo images (JPEG and PNG, EXIF-rotated ones included), by file name.
fn demo_images() -> Vec<(String, Vec<u8>)> {
    let mut images: Vec<(String, Vec<u8>)> = std::fs::read_dir(demo_root().join("images"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    images.sort();
    assert_eq!(images.len(), 24, "the demo's 24 images");
    images
}

fn demo(name: &str) -> Vec<u8> {
    std::fs::read(demo_root().join("images").join(name)).unwrap()
}

fn near(got: [u8; 3], want: [u8; 3], tolerance: i32) -> bool {
    got.iter()
        .zip(want)
        .all(|(&g, w)| (i32::from(g) - i32::from(w)).abs() <= tolerance)
}

/// A smooth, colourful test picture: every channel varies, nothing is symmetric.
fn picture(width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::try_filled(width, height, [0; 3]).unwrap();
    for y in 0..height {
        for x in 0..width {
            let r = (x * 255 / width.max(1)) as u8;
            let g = (y * 255 / height.max(1)) as u8;
            let b = ((x + 2 * y) % 256) as u8 / 2 + 60;
            img.set_pixel(x, y, [r, g, b]);
        }
    }
    img
}

/// Four flat quadrants (red, green / blue, yellow), big enough to survive JPEG untouched at their
/// centres, so any flip or rotation is visible.
fn quadrants(width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::try_filled(width, height, [0; 3]).unwrap();
    let (hw, hh) = (width / 2, height / 2);
    img.fill_rect(0, 0, hw, hh, [220, 30, 30]);
    img.fill_rect(hw, 0, width, hh, [30, 160, 50]);
    img.fill_rect(0, hh, hw, height, [30, 70, 220]);
    img.fill_rect(hw, hh, width, height, [245, 215, 30]);
    img
}

/// Colours at the centres of the four quadrants: top left, top right, bottom left, bottom right.
fn quadrant_colours(img: &RgbImage) -> [[u8; 3]; 4] {
    let (w, h) = (img.width, img.height);
    [
        (w / 4, h / 4),
        (3 * w / 4, h / 4),
        (w / 4, 3 * h / 4),
        (3 * w / 4, 3 * h / 4),
    ]
    .map(|(x, y)| img.pixel(x, y).unwrap())
}

/// JPEG bytes with an EXIF APP1 carrying `orientation` inserted right after SOI.
fn with_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(tiff_with_orientation(orientation));
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    out.extend(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn png_bytes(
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) -> Vec<u8> {
    png_bytes_with(width, height, color, depth, data, |_| {})
}

fn png_bytes_with(
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    setup: impl FnOnce(&mut png::Encoder<'_, &mut Vec<u8>>),
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(depth);
    setup(&mut encoder);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(data).unwrap();
    writer.finish().unwrap();
    out
}

// ---- demo data -------------------------------------------------------------------------------

#[test]
fn exif_rotated_demo_photos_come_out_as_displayed() {
    // Per recipes/data/README.md: displayed, a green star at the top, a red circle on the left and a
    // blue square on the right, each centred (within 6%) in its cell of a 3x3 grid.
    for (name, orientation, displayed) in [
        ("exif6-08.jpg", 6, (200, 320)),
        ("exif8-17.jpg", 8, (160, 240)),
    ] {
        let bytes = demo(name);
        assert_eq!(jpeg_orientation(&bytes), Some(orientation), "{name}");
        let img = decode(&bytes).unwrap();
        assert_eq!(img.size(), displayed, "{name}");
        let (w, h) = (img.width, img.height);
        let red = img.pixel(w / 6, h / 2).unwrap();
        let blue = img.pixel(5 * w / 6, h / 2).unwrap();
        let green = img.pixel(w / 2, h / 6).unwrap();
        assert!(near(red, [220, 30, 30], 40), "{name}: left is {red:?}");
        assert!(near(blue, [30, 70, 220], 40), "{name}: right is {blue:?}");
        assert!(near(green, [30, 160, 50], 40), "{name}: top is {green:?}");
    }
}

#[test]
fn grayscale_and_rgba_demo_pngs_convert_to_rgb() {
    // shapes-09.png is mode L (only black and gray shapes on white); shapes-10.png is opaque RGBA.
    let gray = decode(&demo("shapes-09.png")).unwrap();
    assert_eq!(gray.size(), (300, 400));
    assert!(
        gray.pixels
            .chunks_exact(3)
            .all(|p| p[0] == p[1] && p[1] == p[2])
    );
    assert_eq!(gray.pixel(0, 0), Some([255; 3]));
    let rgba = decode(&demo("shapes-10.png")).unwrap();
    assert_eq!(rgba.size(), (120, 200));
    assert!(
        rgba.pixels.chunks_exact(3).any(|p| p[0] != p[1]),
        "colour survives"
    );
}

#[test]
fn decoding_into_a_recycled_buffer_gives_the_same_pixels_and_never_shortens_it() {
    // One buffer reused across every demo image (JPEG and PNG, EXIF-rotated ones included) and the
    // eight orientations, as a reader recycles it: it starts short, and is full of stale bytes
    // whenever the next image is smaller than the last.
    let stored = quadrants(96, 64);
    let jpeg = encode_jpeg(&stored, 95).unwrap();
    let mut inputs = demo_images();
    inputs.extend((1..=8).map(|o| (format!("orientation {o}"), with_exif(&jpeg, o))));
    let mut buffer = vec![0xAB; 10];
    for (name, bytes) in &inputs {
        let before = buffer.len();
        let want = decode(bytes).unwrap();
        let (height, width) = decode_into(bytes, &mut buffer).unwrap();
        assert_eq!((height, width), want.size(), "{name}");
        let n = want.pixels.len();
        assert!(buffer[..n] == want.pixels[..], "{name}: pixels differ");
        assert!(buffer.len() >= before.max(n), "{name}: buffer shortened");
    }
    assert!(decode_into(&demo("shapes-01.jpg")[..500], &mut buffer).is_err());
    // A fresh buffer comes out exactly the image's size.
    let mut fresh = Vec::new();
    let (height, width) = decode_into(&jpeg, &mut fresh).unwrap();
    assert_eq!(fresh.len(), height as usize * width as usize * 3);
}

// ---- EXIF orientation -------------------------------------------------------------------------

#[test]
fn all_eight_orientations_turn_the_stored_pixels_upright() {
    let stored = quadrants(96, 64);
    let jpeg = encode_jpeg(&stored, 95).unwrap();
    for value in 1..=8 {
        let bytes = with_exif(&jpeg, value);
        let o = Orientation::from_exif(value);
        let img = decode(&bytes).unwrap();
        let expected = o.apply(stored.clone());
        assert_eq!(img.size(), expected.size(), "orientation {value}");
        for (got, want) in quadrant_colours(&img)
            .into_iter()
            .zip(quadrant_colours(&expected))
        {
            assert!(
                near(got, want, 12),
                "orientation {value}: {got:?} vs {want:?}"
            );
        }
    }
}

// ---- round trips and determinism --------------------------------------------------------------

#[test]
fn png_round_trip_is_lossless() {
    for (w, h) in [(1, 1), (3, 7), (300, 200)] {
        let img = picture(w, h);
        assert_eq!(decode(&encode_png(&img).unwrap()).unwrap(), img);
    }
}

#[test]
fn jpeg_round_trip_is_close_and_uses_420() {
    let img = picture(320, 240);
    let bytes = encode_jpeg(&img, 90).unwrap();
    let back = decode(&bytes).unwrap();
    assert_eq!(back.size(), img.size());
    let total: u64 = img
        .pixels
        .iter()
        .zip(&back.pixels)
        .map(|(&a, &b)| u64::from(a.abs_diff(b)))
        .sum();
    let mean = total as f64 / img.pixels.len() as f64;
    assert!(mean < 2.0, "mean absolute error {mean}");
    // SOF0: ..., then per component (id, sampling HV, table). Luma 2x2, chroma 1x1 means 4:2:0.
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF0");
    let components = &bytes[sof + 10..sof + 19];
    assert_eq!(
        [components[1], components[4], components[7]],
        [0x22, 0x11, 0x11]
    );
}

#[test]
fn encoders_are_deterministic_and_write_no_metadata() {
    let img = picture(200, 120);
    let a = encode_jpeg(&img, 90).unwrap();
    assert_eq!(a, encode_jpeg(&img, 90).unwrap());
    assert_eq!(jpeg_orientation(&a), None);
    assert!(!a.windows(4).any(|w| w == b"Exif"));
    let p = encode_png(&img).unwrap();
    assert_eq!(p, encode_png(&img).unwrap());
    for chunk in [b"tIME", b"tEXt", b"iTXt", b"eXIf"] {
        assert!(
            !p.windows(4).any(|w| w == chunk),
            "{}",
            String::from_utf8_lossy(chunk)
        );
    }
}

#[test]
fn encoders_reject_bad_input() {
    let img = picture(10, 10);
    assert!(matches!(
        encode_jpeg(&img, 0),
        Err(EncodeError::InvalidQuality(0))
    ));
    assert!(matches!(
        encode_jpeg(&img, 101),
        Err(EncodeError::InvalidQuality(101))
    ));
    assert!(matches!(
        encode_jpeg(&RgbImage::default(), 90),
        Err(EncodeError::BadSize { .. })
    ));
    assert!(matches!(
        encode_png(&RgbImage::default()),
        Err(EncodeError::BadSize { .. })
    ));
    let broken = RgbImage {
        width: 4,
        height: 4,
        pixels: vec![0; 47],
    };
    assert!(matches!(
        encode_jpeg(&broken, 90),
        Err(EncodeError::BadBuffer { .. })
    ));
    assert!(matches!(
        encode_png(&broken),
        Err(EncodeError::BadBuffer { .. })
    ));
    let wide = RgbImage {
        width: 70_000,
        height: 1,
        pixels: vec![0; 210_000],
    };
    assert!(matches!(
        encode_jpeg(&wide, 90),
        Err(EncodeError::BadSize { .. })
    ));
}

// ---- pixel layouts ----------------------------------------------------------------------------

#[test]
fn png_pixel_layouts_all_become_rgb() {
    use png::{BitDepth, ColorType};
    let white = 255u8;
    // Gray, 8 bit.
    let img = decode(&png_bytes(
        2,
        1,
        ColorType::Grayscale,
        BitDepth::Eight,
        &[0, 200],
    ))
    .unwrap();
    assert_eq!(img.pixels, [0, 0, 0, 200, 200, 200]);
    // Gray, 1 bit: expanded to 0 / 255.
    let img = decode(&png_bytes(
        8,
        1,
        ColorType::Grayscale,
        BitDepth::One,
        &[0b1010_0000],
    ))
    .unwrap();
    assert_eq!(img.pixel(0, 0), Some([255; 3]));
    assert_eq!(img.pixel(1, 0), Some([0; 3]));
    // Gray + alpha: opaque keeps its value, transparent becomes white, half blends.
    let img = decode(&png_bytes(
        3,
        1,
        ColorType::GrayscaleAlpha,
        BitDepth::Eight,
        &[10, 255, 10, 0, 0, 128],
    ))
    .unwrap();
    assert_eq!(img.pixels, [10, 10, 10, white, white, white, 127, 127, 127]);
    // RGBA composited on white.
    let img = decode(&png_bytes(
        2,
        1,
        ColorType::Rgba,
        BitDepth::Eight,
        &[200, 100, 0, 255, 200, 100, 0, 0],
    ))
    .unwrap();
    assert_eq!(img.pixels, [200, 100, 0, white, white, white]);
    // 16-bit RGB keeps the high byte.
    let img = decode(&png_bytes(
        1,
        1,
        ColorType::Rgb,
        BitDepth::Sixteen,
        &[0x12, 0x34, 0xAB, 0xCD, 0xFF, 0x00],
    ))
    .unwrap();
    assert_eq!(img.pixels, [0x12, 0xAB, 0xFF]);
    // 16-bit gray keeps the high byte too (Pillow would clamp 0x8000 to 255).
    let img = decode(&png_bytes(
        1,
        1,
        ColorType::Grayscale,
        BitDepth::Sixteen,
        &[0x80, 0x00],
    ))
    .unwrap();
    assert_eq!(img.pixels, [0x80; 3]);
    // Palette (2 bit indices), with a tRNS entry making index 1 transparent.
    let palette = [255, 0, 0, 0, 255, 0, 0, 0, 255];
    let bytes = png_bytes_with(
        3,
        1,
        ColorType::Indexed,
        BitDepth::Two,
        &[0b0001_1000],
        |e| {
            e.set_palette(palette.to_vec());
            e.set_trns(vec![255, 0, 255]);
        },
    );
    let img = decode(&bytes).unwrap();
    assert_eq!(img.pixels, [255, 0, 0, white, white, white, 0, 0, 255]);
}

#[test]
fn grayscale_and_cmyk_jpegs_become_rgb() {
    let mut gray = Vec::new();
    let luma: Vec<u8> = (0..64 * 48).map(|i| (i % 64 * 4) as u8).collect();
    jpeg_encoder::Encoder::new(&mut gray, 95)
        .encode(&luma, 64, 48, jpeg_encoder::ColorType::Luma)
        .unwrap();
    let img = decode(&gray).unwrap();
    assert_eq!(img.size(), (48, 64));
    assert!(
        img.pixels
            .chunks_exact(3)
            .all(|p| p[0] == p[1] && p[1] == p[2])
    );

    // Flat CMYK: pure cyan ink (C = 255, others 0) must come out cyan-ish whatever the
    // Adobe inversion convention, as long as encoder and decoder agree.
    let mut cmyk = Vec::new();
    let ink: Vec<u8> = [255u8, 0, 0, 0].repeat(32 * 32);
    jpeg_encoder::Encoder::new(&mut cmyk, 95)
        .encode(&ink, 32, 32, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let img = decode(&cmyk).unwrap();
    assert_eq!(img.size(), (32, 32));
    let p = img.pixel(16, 16).unwrap();
    assert!(
        p[0] < 60 && p[1] > 190 && p[2] > 190,
        "cyan ink decoded as {p:?}"
    );
}

#[test]
fn webp_lossless_with_and_without_alpha() {
    let img = picture(40, 30);
    let mut rgb = Vec::new();
    image_webp::WebPEncoder::new(&mut rgb)
        .encode(&img.pixels, 40, 30, image_webp::ColorType::Rgb8)
        .unwrap();
    assert_eq!(decode(&rgb).unwrap(), img);

    let rgba_pixels = [10, 20, 30, 255, 10, 20, 30, 0];
    let mut rgba = Vec::new();
    image_webp::WebPEncoder::new(&mut rgba)
        .encode(&rgba_pixels, 2, 1, image_webp::ColorType::Rgba8)
        .unwrap();
    assert_eq!(decode(&rgba).unwrap().pixels, [10, 20, 30, 255, 255, 255]);
}

// ---- errors -----------------------------------------------------------------------------------

#[test]
fn unsupported_formats_are_named() {
    let seen = |bytes: &[u8]| match decode(bytes) {
        Err(DecodeError::Unsupported { seen }) => seen,
        other => panic!("{other:?}"),
    };
    assert_eq!(decode(b""), Err(DecodeError::Empty));
    assert_eq!(seen(b"GIF89a\x01\x00"), "gif");
    assert_eq!(seen(b"\0\0\0\x1cftypheic"), "heic");
    assert_eq!(seen(b"BM...."), "bmp");
    assert_eq!(
        seen(b"hello world"),
        "unknown, starting with bytes 68 65 6c 6c 6f 20 77 6f"
    );
    assert!(
        decode(b"GIF89a")
            .unwrap_err()
            .to_string()
            .contains("unsupported image format: gif")
    );
}

#[test]
fn truncated_images_are_corrupt_not_grey() {
    // Cutting only the end-of-image marker off a JPEG is enough to refuse it; a PNG cut after its
    // last image data (in the IEND trailer) still holds every pixel and decodes.
    for (name, tail) in [("shapes-01.jpg", 2), ("shapes-00.png", 30)] {
        let bytes = demo(name);
        for keep in [bytes.len() / 3, bytes.len() / 2, bytes.len() - tail] {
            let err = decode(&bytes[..keep]).unwrap_err();
            assert!(
                matches!(err, DecodeError::Corrupt { .. }),
                "{name} cut to {keep}: {err:?}"
            );
        }
    }
    // WebP too.
    let mut webp = Vec::new();
    image_webp::WebPEncoder::new(&mut webp)
        .encode(&picture(40, 30).pixels, 40, 30, image_webp::ColorType::Rgb8)
        .unwrap();
    assert!(decode(&webp[..webp.len() / 2]).is_err());
}

#[test]
fn images_over_the_pixel_limit_are_refused_from_the_header() {
    let bytes = demo("shapes-01.jpg"); // 640 x 480
    assert!(matches!(
        decode_with_limit(&bytes, 640 * 480 - 1),
        Err(DecodeError::TooLarge {
            height: 480,
            width: 640,
            ..
        })
    ));
    assert!(decode_with_limit(&bytes, 640 * 480).is_ok());
    // A PNG whose header claims 1,000,000 x 1,000,000 pixels (and holds none) is refused from the
    // header, before anything the size of the image is allocated.
    let mut huge = Vec::new();
    let mut encoder = png::Encoder::new(&mut huge, 1_000_000, 1_000_000);
    encoder.set_color(png::ColorType::Rgb);
    drop(encoder.write_header().unwrap());
    assert!(matches!(
        decode(&huge),
        Err(DecodeError::TooLarge {
            height: 1_000_000,
            width: 1_000_000,
            ..
        })
    ));
}

// ---- the pipeline -----------------------------------------------------------------------------

#[test]
fn process_keeps_the_exif_layout_and_can_write_png() {
    let out = process(
        &demo("exif6-08.jpg"),
        &ResizePolicy::default(),
        ImageEncoding::Png,
        DEFAULT_JPEG_QUALITY,
    )
    .unwrap();
    // 200 x 320 rounds to 196 x 308 (HxW).
    assert_eq!((out.height, out.width), (196, 308));
    let img = decode(&out.bytes).unwrap();
    let red = img.pixel(img.width / 6, img.height / 2).unwrap();
    assert!(near(red, [220, 30, 30], 40), "{red:?}");
}

#[test]
fn process_errors_say_which_step_failed() {
    let policy = ResizePolicy::default();
    let error = |bytes: &[u8], policy: &ResizePolicy| {
        process(bytes, policy, ImageEncoding::Jpeg, DEFAULT_JPEG_QUALITY).unwrap_err()
    };
    let png = |w, h| encode_png(&picture(w, h)).unwrap();
    assert!(matches!(
        error(b"not an image", &policy),
        ProcessError::Decode(_)
    ));
    assert!(matches!(
        error(&png(6000, 29), &policy),
        ProcessError::Resize(ResizeError::TooElongated { .. })
    ));
    // FACTS.md section 2: sides under 28 px are kept (20 x 100 WxH goes up to 28 x 112), and
    // 30 x 5000 (HxW) under max_pixels 50,176 keeps a side of 28 (transformers' clamp).
    let small = process(
        &png(20, 100),
        &policy,
        ImageEncoding::Jpeg,
        DEFAULT_JPEG_QUALITY,
    )
    .unwrap();
    assert_eq!((small.height, small.width), (112, 28));
    let thin = process(
        &png(5000, 30),
        &policy.with_max_pixels(50_176),
        ImageEncoding::Jpeg,
        DEFAULT_JPEG_QUALITY,
    )
    .unwrap();
    assert_eq!((thin.height, thin.width), (28, 2884));
    let err = process(&png(50, 50), &policy, ImageEncoding::Jpeg, 0).unwrap_err();
    assert!(matches!(err, ProcessError::Encode(_)), "{err}");
}

// ---- damaged bytes never panic ----------------------------------------------------------------

/// Real files of every format, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut webp = Vec::new();
    image_webp::WebPEncoder::new(&mut webp)
        .encode(&picture(24, 16).pixels, 24, 16, image_webp::ColorType::Rgb8)
        .unwrap();
    vec![
        demo("shapes-07.jpg"),
        with_exif(&encode_jpeg(&picture(40, 24), 80).unwrap(), 6),
        demo("shapes-02.png"),
        demo("shapes-09.png"),
        webp,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Random byte overwrites (half of them in the first 256 bytes, where the headers are), then a
    /// random truncation, of a real JPEG, PNG or WebP: `decode` returns (an image or an error) and
    /// no decoder panics.
    #[test]
    fn damaged_images_never_panic(
        seed in 0usize..5,
        edits in proptest::collection::vec(
            (any::<bool>(), any::<prop::sample::Index>(), any::<u8>()),
            0..12,
        ),
        keep in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = seeds().swap_remove(seed);
        for (in_header, at, value) in edits {
            let i = at.index(if in_header { bytes.len().min(256) } else { bytes.len() });
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(keep.index(bytes.len() + 1));
        }
        match decode(&bytes) {
            Ok(img) => prop_assert_eq!(img.pixels.len(), 3 * img.width as usize * img.height as usize),
            Err(DecodeError::DecoderPanicked { format, detail }) => {
                prop_assert!(false, "{} decoder panicked: {}", format, detail);
            }
            Err(_) => {}
        }
    }
}
