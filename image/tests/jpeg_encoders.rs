//! Every built-in JPEG encoder ([`JpegEncoder::ALL`]: jpeg-encoder always, libjpeg-turbo with the
//! `libjpeg-turbo` feature) through the public API: round trips decode (zune-jpeg) to the same size
//! and close pixels, the files are baseline 4:2:0 with a JFIF header and nothing else, output is
//! the same on every call and every thread, and bad input gets the same error variant from each.

use mixtape_image::{
    EncodeError, JpegEncoder, RgbImage, decode, encode_jpeg, encode_jpeg_with, jpeg_encoder_id,
};

/// A smooth, colourful picture with a little deterministic grain (like a photo).
fn photo(width: u32, height: u32, seed: u32) -> RgbImage {
    let mut img = RgbImage::try_filled(width, height, [0; 3]).unwrap();
    let mut x = seed | 1;
    for y in 0..height {
        for col in 0..width {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let grain = (x % 9) as i32 - 4;
            let r = (col * 255 / width.max(1)) as i32 + grain;
            let g = (y * 255 / height.max(1)) as i32 - grain;
            let b = ((col + 2 * y) % 256) as i32 / 2 + 60 + grain;
            img.set_pixel(col, y, [r, g, b].map(|v| v.clamp(0, 255) as u8));
        }
    }
    img
}

/// Flat shapes with hard edges on white (like the synthetic drawings).
fn drawing(width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::try_filled(width, height, [255; 3]).unwrap();
    img.fill_rect(width / 8, height / 8, width / 2, height / 2, [200, 30, 40]);
    img.fill_rect(width / 3, height / 2, width - 2, height - 3, [20, 60, 210]);
    for y in (0..height).step_by(7) {
        img.fill_span(y, 0, width, [0, 0, 0]);
    }
    img
}

fn mean_abs_error(a: &RgbImage, b: &RgbImage) -> f64 {
    let total: u64 = a
        .pixels
        .iter()
        .zip(&b.pixels)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    total as f64 / a.pixels.len() as f64
}

/// Every marker segment before the scan data: (marker, payload without the length bytes).
fn segments(jpeg: &[u8]) -> Vec<(u8, &[u8])> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "SOI");
    assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9], "EOI");
    let mut out = Vec::new();
    let mut at = 2;
    loop {
        assert_eq!(jpeg[at], 0xFF, "marker at {at}");
        let marker = jpeg[at + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        out.push((marker, &jpeg[at + 4..at + 2 + len]));
        at += 2 + len;
        if marker == 0xDA {
            return out;
        }
    }
}

#[test]
fn the_default_is_the_first_and_is_named() {
    assert_eq!(JpegEncoder::ALL[0], JpegEncoder::DEFAULT);
    let id = jpeg_encoder_id();
    assert_eq!(id, JpegEncoder::DEFAULT.id());
    #[cfg(feature = "libjpeg-turbo")]
    {
        assert_eq!(JpegEncoder::DEFAULT, JpegEncoder::LibjpegTurbo);
        assert!(
            id.starts_with("libjpeg-turbo 2.") || id.starts_with("libjpeg-turbo 3."),
            "{id}"
        );
        assert_eq!(JpegEncoder::ALL.len(), 2);
    }
    #[cfg(not(feature = "libjpeg-turbo"))]
    {
        assert_eq!(id, "jpeg-encoder 0.7");
        assert_eq!(JpegEncoder::ALL, &[JpegEncoder::JpegEncoderRs]);
    }
    let img = photo(40, 30, 3);
    assert_eq!(
        encode_jpeg(&img, 90).unwrap(),
        encode_jpeg_with(&img, 90, JpegEncoder::DEFAULT).unwrap()
    );
}

#[test]
fn round_trips_are_close_at_the_right_size() {
    // Bounds are about 1.25x what both encoders measured (the +-4 grain is most of the error; the
    // drawing's one-pixel black lines on colour lose most to 4:2:0).
    for &encoder in JpegEncoder::ALL {
        for (img, quality, max_error) in [
            (photo(320, 240, 1), 90, 3.2),
            (photo(29, 45, 2), 90, 3.2),
            (photo(1, 1, 3), 90, 1.5),
            (photo(1000, 700, 4), 95, 3.2),
            (drawing(200, 150), 90, 7.0),
            (photo(320, 240, 5), 50, 4.0),
        ] {
            let bytes = encode_jpeg_with(&img, quality, encoder).unwrap();
            let back = decode(&bytes).unwrap();
            assert_eq!(back.size(), img.size(), "{encoder:?} {:?}", img.size());
            let mae = mean_abs_error(&img, &back);
            assert!(
                mae < max_error,
                "{encoder:?} {:?} q{quality}: mean absolute error {mae}",
                img.size()
            );
        }
    }
}

#[test]
fn quality_trades_bytes_for_error() {
    let img = photo(320, 240, 9);
    for &encoder in JpegEncoder::ALL {
        let low = encode_jpeg_with(&img, 50, encoder).unwrap();
        let high = encode_jpeg_with(&img, 95, encoder).unwrap();
        assert!(low.len() < high.len(), "{encoder:?}");
        let low_err = mean_abs_error(&img, &decode(&low).unwrap());
        let high_err = mean_abs_error(&img, &decode(&high).unwrap());
        assert!(low_err > high_err, "{encoder:?}: {low_err} vs {high_err}");
    }
}

#[test]
fn files_are_baseline_420_with_a_jfif_header_only() {
    for &encoder in JpegEncoder::ALL {
        for quality in [50, 90, 95, 100] {
            let bytes = encode_jpeg_with(&photo(64, 48, 7), quality, encoder).unwrap();
            let segs = segments(&bytes);
            let markers: Vec<u8> = segs.iter().map(|&(m, _)| m).collect();
            // APP0 (JFIF) first; no other APPn, COM, progressive SOF2 or restart intervals.
            assert_eq!(markers[0], 0xE0, "{encoder:?}");
            assert!(segs[0].1.starts_with(b"JFIF\0"), "{encoder:?}");
            for m in &markers[1..] {
                assert!(
                    matches!(m, 0xDB | 0xC0 | 0xC4 | 0xDA),
                    "{encoder:?} q{quality}: unexpected marker FF{m:02X} in {markers:02X?}"
                );
            }
            let (_, sof) = segs.iter().find(|&&(m, _)| m == 0xC0).expect("SOF0");
            // precision 8, height, width, 3 components of (id, HV sampling, quant table).
            assert_eq!(sof[0], 8);
            assert_eq!(u16::from_be_bytes([sof[1], sof[2]]), 48);
            assert_eq!(u16::from_be_bytes([sof[3], sof[4]]), 64);
            assert_eq!(sof[5], 3);
            assert_eq!(
                [sof[7], sof[10], sof[13]],
                [0x22, 0x11, 0x11],
                "{encoder:?} q{quality}: 4:2:0"
            );
            assert!(!bytes.windows(4).any(|w| w == b"Exif"), "{encoder:?}");
        }
    }
}

#[test]
fn output_is_the_same_on_every_call_and_thread() {
    let images = [photo(257, 131, 11), drawing(90, 61), photo(1, 1, 12)];
    for &encoder in JpegEncoder::ALL {
        let serial: Vec<Vec<u8>> = images
            .iter()
            .map(|i| encode_jpeg_with(i, 90, encoder).unwrap())
            .collect();
        let again: Vec<Vec<u8>> = images
            .iter()
            .map(|i| encode_jpeg_with(i, 90, encoder).unwrap())
            .collect();
        assert_eq!(serial, again, "{encoder:?}");
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..5)
                            .map(|_| {
                                images
                                    .iter()
                                    .map(|i| encode_jpeg_with(i, 90, encoder).unwrap())
                                    .collect::<Vec<_>>()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for round in h.join().unwrap() {
                    assert_eq!(round, serial, "{encoder:?} on another thread");
                }
            }
        });
    }
}

#[test]
fn every_encoder_rejects_bad_input_alike() {
    let img = photo(10, 10, 1);
    let broken = RgbImage {
        width: 4,
        height: 4,
        pixels: vec![0; 47],
    };
    let wide = RgbImage {
        width: 70_000,
        height: 1,
        pixels: vec![0; 210_000],
    };
    let tall = RgbImage {
        width: 1,
        height: 65_536,
        pixels: vec![0; 3 * 65_536],
    };
    for &encoder in JpegEncoder::ALL {
        let e = |img: &RgbImage, q: u8| encode_jpeg_with(img, q, encoder).unwrap_err();
        assert!(matches!(e(&img, 0), EncodeError::InvalidQuality(0)));
        assert!(matches!(e(&img, 101), EncodeError::InvalidQuality(101)));
        // Quality is checked first, even on an empty image.
        assert!(matches!(
            e(&RgbImage::default(), 0),
            EncodeError::InvalidQuality(0)
        ));
        assert!(matches!(
            e(&RgbImage::default(), 90),
            EncodeError::BadSize {
                format: "jpeg",
                height: 0,
                width: 0
            }
        ));
        let zero_width = RgbImage {
            width: 0,
            height: 5,
            pixels: Vec::new(),
        };
        assert!(matches!(
            e(&zero_width, 90),
            EncodeError::BadSize { width: 0, .. }
        ));
        assert!(matches!(
            e(&broken, 90),
            EncodeError::BadBuffer {
                width: 4,
                height: 4,
                len: 47
            }
        ));
        assert!(matches!(
            e(&wide, 90),
            EncodeError::BadSize { width: 70_000, .. }
        ));
        assert!(matches!(
            e(&tall, 90),
            EncodeError::BadSize { height: 65_536, .. }
        ));
    }
}

#[test]
fn each_encoder_takes_sides_up_to_its_own_limit() {
    // 65,501 x 1: within the format (jpeg-encoder) but past libjpeg's 65,500.
    let long = RgbImage::try_filled(65_501, 1, [90, 120, 200]).unwrap();
    let limit = RgbImage::try_filled(65_500, 1, [90, 120, 200]).unwrap();
    for &encoder in JpegEncoder::ALL {
        assert!(encoder.max_side() >= 65_500);
        let at_limit = encode_jpeg_with(&limit, 90, encoder).unwrap();
        assert_eq!(decode(&at_limit).unwrap().size(), (1, 65_500));
        let past = encode_jpeg_with(&long, 90, encoder);
        if encoder.max_side() >= 65_501 {
            assert_eq!(decode(&past.unwrap()).unwrap().size(), (1, 65_501));
        } else {
            assert!(matches!(
                past,
                Err(EncodeError::BadSize { width: 65_501, .. })
            ));
        }
    }
    assert_eq!(JpegEncoder::JpegEncoderRs.max_side(), 65_535);
    #[cfg(feature = "libjpeg-turbo")]
    assert_eq!(JpegEncoder::LibjpegTurbo.max_side(), 65_500);
}

/// The two encoders are different code: same settings and tables, different bytes, sizes within a
/// fraction of a percent (measured: 0.1-0.2%).
#[cfg(feature = "libjpeg-turbo")]
#[test]
fn libjpeg_turbo_and_jpeg_encoder_share_tables_not_bytes() {
    for img in [photo(640, 480, 21), drawing(300, 200)] {
        let turbo = encode_jpeg_with(&img, 90, JpegEncoder::LibjpegTurbo).unwrap();
        let rs = encode_jpeg_with(&img, 90, JpegEncoder::JpegEncoderRs).unwrap();
        let ratio = turbo.len() as f64 / rs.len() as f64;
        assert!(
            (0.97..1.03).contains(&ratio),
            "{} vs {}",
            turbo.len(),
            rs.len()
        );
        // The same quantisation tables (IJG's, scaled the same way): DQT segments are identical.
        let dqt = |b: &[u8]| -> Vec<Vec<u8>> {
            segments(b)
                .into_iter()
                .filter(|&(m, _)| m == 0xDB)
                .flat_map(|(_, p)| {
                    // One segment may hold several tables of 65 bytes (8-bit precision).
                    p.chunks(65).map(<[u8]>::to_vec).collect::<Vec<_>>()
                })
                .collect()
        };
        assert_eq!(dqt(&turbo), dqt(&rs));
        assert_ne!(turbo, rs);
    }
}
