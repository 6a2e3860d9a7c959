//! Proof that libjpeg-turbo writes the same bytes whichever SIMD path the CPU gives it, which is
//! what lets it be the default JPEG encoder without breaking byte-identical rebuilds across
//! machines (jpeg-encoder's `simd` feature was rejected for failing exactly this).
//!
//! libjpeg-turbo chooses its kernels once per process from the CPU's features, and reads
//! environment variables that narrow the choice: `JSIMD_FORCENONE` (plain C), `JSIMD_FORCESSE2`,
//! `JSIMD_FORCEAVX2` (x86_64; each keeps only that instruction set, if the CPU has it),
//! `JSIMD_FORCENEON` (Arm) and `JSIMD_NOHUFFENC` (C Huffman coder). So the parent test re-runs this
//! very test binary once per setting, the child test encodes a fixed set of images (photo-like,
//! drawn, noise, odd sizes) at several qualities and prints a hash per file, and the parent
//! requires every run to print the same hashes as the parent computes in-process. Each child also
//! prints how long a large encode took, so the output shows that the settings took effect.

#![cfg(feature = "libjpeg-turbo")]

use std::process::Command;
use std::time::Instant;

use mixtape_image::{JpegEncoder, RgbImage, encode_jpeg_with};

const CHILD_TEST: &str = "simd_child_prints_hashes";
const QUALITIES: [u8; 4] = [50, 90, 95, 100];
const HASH_PREFIX: &str = "mixtape-simd-hash ";
const TIME_PREFIX: &str = "mixtape-simd-time ";

/// Every variable libjpeg-turbo's SIMD dispatch reads, cleared in each child so that the parent's
/// environment cannot leak in.
const ALL_VARS: [&str; 5] = [
    "JSIMD_FORCENONE",
    "JSIMD_FORCESSE2",
    "JSIMD_FORCEAVX2",
    "JSIMD_FORCENEON",
    "JSIMD_NOHUFFENC",
];

#[cfg(target_arch = "x86_64")]
const SETTINGS: &[(&str, &[&str])] = &[
    ("auto", &[]),
    ("none", &["JSIMD_FORCENONE"]),
    ("sse2", &["JSIMD_FORCESSE2"]),
    ("avx2", &["JSIMD_FORCEAVX2"]),
    ("auto+c-huffman", &["JSIMD_NOHUFFENC"]),
    ("sse2+c-huffman", &["JSIMD_FORCESSE2", "JSIMD_NOHUFFENC"]),
];
#[cfg(target_arch = "aarch64")]
const SETTINGS: &[(&str, &[&str])] = &[
    ("auto", &[]),
    ("none", &["JSIMD_FORCENONE"]),
    ("neon", &["JSIMD_FORCENEON"]),
    ("auto+c-huffman", &["JSIMD_NOHUFFENC"]),
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SETTINGS: &[(&str, &[&str])] = &[("auto", &[]), ("none", &["JSIMD_FORCENONE"])];

/// xorshift32: deterministic noise without a dependency.
struct Noise(u32);

impl Noise {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

/// Smooth gradients in every channel plus +-`grain` of noise, like a photo.
fn photo(width: u32, height: u32, grain: u32, seed: u32) -> RgbImage {
    let mut img = RgbImage::try_filled(width, height, [0; 3]).unwrap();
    let mut noise = Noise(seed | 1);
    for y in 0..height {
        for x in 0..width {
            let base = [
                x * 255 / width.max(1),
                y * 255 / height.max(1),
                (x + 2 * y) % 256 / 2 + 60,
            ];
            img.set_pixel(
                x,
                y,
                base.map(|v| {
                    let n = (noise.next() % (2 * grain + 1)) as i32 - grain as i32;
                    (v as i32 + n).clamp(0, 255) as u8
                }),
            );
        }
    }
    img
}

/// Flat shapes, one-pixel lines and a checkerboard on white: hard edges, saturated colours.
fn drawing(width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::try_filled(width, height, [255; 3]).unwrap();
    img.fill_rect(
        width / 10,
        height / 10,
        width / 2,
        height / 2,
        [230, 20, 30],
    );
    img.fill_rect(width / 3, height / 2, width, height, [10, 40, 220]);
    for y in (0..height).step_by(5) {
        img.fill_span(y, 0, width, [0, 0, 0]);
    }
    for y in 0..height / 3 {
        for x in (2 * width / 3)..width {
            if (x + y) % 2 == 0 {
                img.set_pixel(x, y, [0, 200, 0]);
            }
        }
    }
    img
}

/// Uniform noise in every channel: the worst case for the Huffman coder (long codes, big values).
fn noise(width: u32, height: u32, seed: u32) -> RgbImage {
    let mut noise = Noise(seed | 1);
    RgbImage {
        width,
        height,
        pixels: (0..3 * width * height)
            .map(|_| (noise.next() >> 24) as u8)
            .collect(),
    }
}

fn images() -> Vec<(&'static str, RgbImage)> {
    vec![
        ("photo-1000x700", photo(1000, 700, 6, 1)),
        ("photo-640x480-grainy", photo(640, 480, 24, 2)),
        ("photo-29x45", photo(29, 45, 6, 3)),
        ("photo-1x1", photo(1, 1, 6, 4)),
        ("photo-17x3", photo(17, 3, 6, 5)),
        ("photo-1x33", photo(1, 33, 6, 6)),
        ("drawing-300x200", drawing(300, 200)),
        ("drawing-61x37", drawing(61, 37)),
        ("noise-128x96", noise(128, 96, 7)),
    ]
}

/// One line per (image, quality): name, quality, byte length and BLAKE3 of the JPEG.
fn hash_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for (name, img) in images() {
        for quality in QUALITIES {
            let jpeg = encode_jpeg_with(&img, quality, JpegEncoder::LibjpegTurbo).unwrap();
            lines.push(format!(
                "{name} q{quality} {} {}",
                jpeg.len(),
                blake3::hash(&jpeg).to_hex()
            ));
        }
    }
    lines
}

/// Run by [`same_bytes_on_every_simd_path`] in a child process; prints its results on stdout.
#[test]
#[ignore = "child of same_bytes_on_every_simd_path, which runs it under each JSIMD_* setting"]
fn simd_child_prints_hashes() {
    for line in hash_lines() {
        println!("{HASH_PREFIX}{line}");
    }
    let big = photo(1000, 700, 6, 1);
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        encode_jpeg_with(&big, 90, JpegEncoder::LibjpegTurbo).unwrap();
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    println!("{TIME_PREFIX}{ms:.3} ms per 1000x700 q90 encode");
}

/// The rest of `line` after `prefix`, which need not start the line: with `--nocapture`, libtest's
/// "test NAME ... " shares a line with the child's first print.
fn after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.find(prefix).map(|at| &line[at + prefix.len()..])
}

#[test]
fn same_bytes_on_every_simd_path() {
    let expected = hash_lines();
    assert_eq!(expected.len(), images().len() * QUALITIES.len());
    let exe = std::env::current_exe().unwrap();
    let mut report = Vec::new();
    for &(label, vars) in SETTINGS {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--exact",
            CHILD_TEST,
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ]);
        for var in ALL_VARS {
            cmd.env_remove(var);
        }
        for var in vars {
            cmd.env(var, "1");
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{label}: child failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<&str> = stdout
            .lines()
            .filter_map(|l| after(l, HASH_PREFIX))
            .collect();
        assert_eq!(
            got.len(),
            expected.len(),
            "{label}: the child printed {} hashes, not {}:\n{stdout}",
            got.len(),
            expected.len()
        );
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g, e, "{label} (JSIMD vars {vars:?}) wrote different bytes");
        }
        let time = stdout
            .lines()
            .find_map(|l| after(l, TIME_PREFIX))
            .unwrap_or("no time printed");
        report.push(format!("{label:>16}: {time}"));
    }
    // Shown with --nocapture: evidence that each setting really changed the code path.
    println!(
        "same {} hashes under {} JSIMD settings:\n{}",
        expected.len(),
        SETTINGS.len(),
        report.join("\n")
    );
}
