//! Per-image builder pipeline speed: decode -> `smart_resize` target -> bicubic resize -> JPEG q90,
//! ours (zune-jpeg / png + fast_image_resize + the default JPEG encoder at 4:2:0,
//! `mixtape_engine::image`) against the `image` crate (0.25: its decoders, `imageops::resize` with
//! CatmullRom, its JpegEncoder), end to end and stage by stage. Throughput is in images, so criterion
//! reports images per second.
//!
//! The encode stage runs every JPEG encoder built in (`mixtape_image::JpegEncoder::ALL`):
//! libjpeg-turbo (the default with the `libjpeg-turbo` feature, which `cargo bench` has by default)
//! and the pure-Rust jpeg-encoder, side by side in one run: `cargo bench --bench image -- encode`.
//!
//! Two image sets: the 24 demo images (`recipes/data/images`, 96x96 to 640x480, PNG and JPEG, two
//! with EXIF rotation), and 12 synthetic scenes of 0.2 to 1 megapixel rendered by
//! `mixtape_engine::synthetic::render_scene`, with a little deterministic grain added so that they
//! compress like photos rather than flat drawings, then stored as JPEG q90.

use std::io::Cursor;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageDecoder, ImageReader};
use mixtape_engine::image::{
    self as img, ImageEncoding, ResizePolicy, RgbImage, encode_jpeg, encode_jpeg_with, smart_resize,
};
use mixtape_engine::synthetic::{SyntheticKind, render_scene, scene_id};

const QUALITY: u8 = 90;
const BUDGETS: [u64; 2] = [1_003_520, 262_144];

fn demo_images() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("recipes/data/images");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Adds +-8 of deterministic grain to every channel.
fn grain(mut img: RgbImage) -> RgbImage {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for v in &mut img.pixels {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *v = (i32::from(*v) + (x % 17) as i32 - 8).clamp(0, 255) as u8;
    }
    img
}

/// 12 synthetic scenes (shapes and text) between 0.2 and 1 megapixel, as JPEG q90.
fn synthetic_images() -> Vec<Vec<u8>> {
    let kinds = [SyntheticKind::ShapesCaption, SyntheticKind::OcrText];
    let mut out = Vec::new();
    for index in 0.. {
        let kind = kinds[index as usize % 2];
        let scene = render_scene(scene_id(kind, 7, index).unwrap());
        let pixels = u64::from(scene.width) * u64::from(scene.height);
        if (200_000..=1_000_000).contains(&pixels) {
            out.push(encode_jpeg(&grain(scene), QUALITY).unwrap());
        }
        if out.len() == 12 || index > 100_000 {
            break;
        }
    }
    assert_eq!(out.len(), 12, "not enough synthetic scenes of 0.2-1 MP");
    out
}

fn policy(max_pixels: u64) -> ResizePolicy {
    ResizePolicy::default().with_max_pixels(max_pixels)
}

// ---- the `image` crate path ------------------------------------------------------------------

fn image_crate_decode(bytes: &[u8]) -> image::RgbImage {
    let mut decoder = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    let orientation = decoder.orientation().unwrap();
    let mut decoded = DynamicImage::from_decoder(decoder).unwrap();
    decoded.apply_orientation(orientation);
    decoded.into_rgb8()
}

fn image_crate_resize(rgb: &image::RgbImage, height: u32, width: u32) -> image::RgbImage {
    if rgb.dimensions() == (width, height) {
        return rgb.clone();
    }
    imageops::resize(rgb, width, height, FilterType::CatmullRom)
}

fn image_crate_encode(rgb: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(rgb)
        .unwrap();
    out
}

fn image_crate_pipeline(bytes: &[u8], policy: &ResizePolicy) -> Vec<u8> {
    let rgb = image_crate_decode(bytes);
    let (h, w) = smart_resize(rgb.height(), rgb.width(), policy).unwrap();
    image_crate_encode(&image_crate_resize(&rgb, h, w))
}

fn ours_pipeline(bytes: &[u8], policy: &ResizePolicy) -> Vec<u8> {
    img::process(bytes, policy, ImageEncoding::Jpeg, QUALITY)
        .unwrap()
        .bytes
}

// ---- benches -------------------------------------------------------------------------------

fn bench_pipeline(c: &mut Criterion) {
    let sets = [
        ("demo24", demo_images()),
        ("synthetic12", synthetic_images()),
    ];
    let mut group = c.benchmark_group("image_pipeline");
    group.sample_size(20);
    for (set, images) in &sets {
        group.throughput(Throughput::Elements(images.len() as u64));
        for max_pixels in BUDGETS {
            let policy = policy(max_pixels);
            let param = format!("{set}/max{max_pixels}");
            group.bench_with_input(
                BenchmarkId::new("image_crate", &param),
                images,
                |b, images| {
                    b.iter(|| {
                        images
                            .iter()
                            .map(|i| image_crate_pipeline(i, &policy).len())
                            .sum::<usize>()
                    });
                },
            );
            group.bench_with_input(BenchmarkId::new("mixtape", &param), images, |b, images| {
                b.iter(|| {
                    images
                        .iter()
                        .map(|i| ours_pipeline(i, &policy).len())
                        .sum::<usize>()
                });
            });
        }
    }
    group.finish();
}

/// Each stage alone on the synthetic set at the default budget: inputs of a stage are the outputs of
/// the previous one, prepared outside the timed loop.
fn bench_stages(c: &mut Criterion) {
    let images = synthetic_images();
    let policy = policy(BUDGETS[0]);
    let n = images.len() as u64;

    let ours: Vec<RgbImage> = images.iter().map(|b| img::decode(b).unwrap()).collect();
    let theirs: Vec<image::RgbImage> = images.iter().map(|b| image_crate_decode(b)).collect();
    let targets: Vec<(u32, u32)> = ours
        .iter()
        .map(|i| smart_resize(i.height, i.width, &policy).unwrap())
        .collect();
    let ours_small: Vec<RgbImage> = ours
        .iter()
        .zip(&targets)
        .map(|(i, &(h, w))| img::resize(i, h, w).unwrap())
        .collect();
    let theirs_small: Vec<image::RgbImage> = theirs
        .iter()
        .zip(&targets)
        .map(|(i, &(h, w))| image_crate_resize(i, h, w))
        .collect();

    let mut group = c.benchmark_group("image_stage");
    group.sample_size(20);
    group.throughput(Throughput::Elements(n));
    group.bench_function("decode/image_crate", |b| {
        b.iter(|| {
            images
                .iter()
                .map(|i| image_crate_decode(i).len())
                .sum::<usize>()
        });
    });
    group.bench_function("decode/mixtape", |b| {
        b.iter(|| {
            images
                .iter()
                .map(|i| img::decode(i).unwrap().pixels.len())
                .sum::<usize>()
        });
    });
    group.bench_function("resize/image_crate", |b| {
        b.iter(|| {
            theirs
                .iter()
                .zip(&targets)
                .map(|(i, &(h, w))| image_crate_resize(i, h, w).len())
                .sum::<usize>()
        });
    });
    group.bench_function("resize/mixtape", |b| {
        b.iter(|| {
            ours.iter()
                .zip(&targets)
                .map(|(i, &(h, w))| img::resize(i, h, w).unwrap().pixels.len())
                .sum::<usize>()
        });
    });
    group.bench_function("encode/image_crate", |b| {
        b.iter(|| {
            theirs_small
                .iter()
                .map(|i| image_crate_encode(i).len())
                .sum::<usize>()
        });
    });
    for &encoder in img::JpegEncoder::ALL {
        group.bench_function(format!("encode/mixtape_{encoder:?}"), |b| {
            b.iter(|| {
                ours_small
                    .iter()
                    .map(|i| encode_jpeg_with(i, QUALITY, encoder).unwrap().len())
                    .sum::<usize>()
            });
        });
    }
    group.finish();

    // Not timed: input and output sizes, since the two encoders differ in chroma subsampling.
    let megapixels =
        |sizes: &mut dyn Iterator<Item = u64>| sizes.sum::<u64>() as f64 / 1e6 / n as f64;
    eprintln!(
        "image_stage: {n} images of {:.2} MP on average, resized to {:.2} MP",
        megapixels(
            &mut ours
                .iter()
                .map(|i| u64::from(i.width) * u64::from(i.height))
        ),
        megapixels(&mut targets.iter().map(|&(h, w)| u64::from(h) * u64::from(w))),
    );
    let ours_bytes: Vec<String> = img::JpegEncoder::ALL
        .iter()
        .map(|&encoder| {
            let bytes: usize = ours_small
                .iter()
                .map(|i| encode_jpeg_with(i, QUALITY, encoder).unwrap().len())
                .sum();
            format!("{} {bytes}", encoder.id())
        })
        .collect();
    let theirs_bytes: usize = theirs_small
        .iter()
        .map(|i| image_crate_encode(i).len())
        .sum();
    eprintln!(
        "image_stage: JPEG q{QUALITY} output for {n} images: mixtape (4:2:0) {} bytes, \
         image crate (4:4:4) {theirs_bytes} bytes",
        ours_bytes.join(" bytes, ")
    );
}

criterion_group!(benches, bench_pipeline, bench_stages);
criterion_main!(benches);
