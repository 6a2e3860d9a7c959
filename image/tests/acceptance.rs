//! `check` is the acceptance rule the planner applies to image headers; `decode` is what the builder
//! runs. These tests hold the promise that connects them: for bytes cut short, the two always agree,
//! and whatever `check` refuses, `decode` refuses with the same error, so `mixtape check` cannot say
//! "ok" about an image the build will reject for a reason visible without decoding.

use mixtape_image::{
    DecodeError, RgbImage, check, check_with_limit, decode, decode_with_limit, encode_jpeg,
    encode_png,
};

fn picture(width: u32, height: u32) -> RgbImage {
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            pixels.extend_from_slice(&[(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8]);
        }
    }
    RgbImage {
        width,
        height,
        pixels,
    }
}

fn webp(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image_webp::WebPEncoder::new(&mut out)
        .encode(
            &picture(width, height).pixels,
            width,
            height,
            image_webp::ColorType::Rgb8,
        )
        .unwrap();
    out
}

fn samples() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("png", encode_png(&picture(61, 47)).unwrap()),
        ("jpeg", encode_jpeg(&picture(61, 47), 85).unwrap()),
        ("webp", webp(33, 21)),
    ]
}

#[test]
fn whole_images_pass_the_check() {
    for (name, bytes) in samples() {
        assert_eq!(check(&bytes), Ok(()), "{name}");
        assert!(decode(&bytes).is_ok(), "{name}");
    }
}

#[test]
fn at_every_cut_check_and_decode_agree() {
    for (name, bytes) in samples() {
        for keep in 0..bytes.len() {
            let cut = &bytes[..keep];
            match (check(cut), decode(cut)) {
                (Ok(()), Ok(_)) => {}
                (Err(a), Err(b)) => assert_eq!(a, b, "{name} cut to {keep} bytes"),
                (a, b) => panic!(
                    "{name} cut to {keep} of {} bytes: check {a:?}, decode {:?}",
                    bytes.len(),
                    b.map(|i| i.size())
                ),
            }
        }
    }
}

#[test]
fn a_png_cut_after_its_header_is_refused_by_both() {
    let bytes = encode_png(&picture(61, 47)).unwrap();
    // Signature (8) + IHDR chunk (4 + 4 + 13 + 4).
    let cut = &bytes[..33];
    let err = check(cut).unwrap_err();
    assert!(matches!(err, DecodeError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("truncated"), "{err}");
    assert_eq!(decode(cut).unwrap_err(), err);
}

#[test]
fn a_png_with_a_damaged_chunk_fails_its_crc_in_both() {
    let mut bytes = encode_png(&picture(61, 47)).unwrap();
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    bytes[idat + 10] ^= 0x40;
    let err = check(&bytes).unwrap_err();
    assert!(err.to_string().contains("fails its CRC"), "{err}");
    assert_eq!(decode(&bytes).unwrap_err(), err);
}

#[test]
fn formats_the_decoder_does_not_take_are_refused_by_both() {
    for bytes in [
        &b"GIF89a\x10\x00\x10\x00\x00\x00\x00"[..],
        b"BM\x00\x00",
        b"\0\0\0\x1cftypavif",
    ] {
        let err = check(bytes).unwrap_err();
        assert!(matches!(err, DecodeError::Unsupported { .. }), "{err:?}");
        assert_eq!(decode(bytes).unwrap_err(), err);
    }
}

#[test]
fn images_over_the_decode_limit_are_refused_by_both() {
    for (name, bytes) in samples() {
        let err = check_with_limit(&bytes, 100).unwrap_err();
        assert!(
            matches!(err, DecodeError::TooLarge { .. }),
            "{name}: {err:?}"
        );
        assert_eq!(decode_with_limit(&bytes, 100).unwrap_err(), err, "{name}");
    }
}
