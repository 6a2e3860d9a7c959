//! Packing throughput: items per second for best-fit-decreasing and greedy at seq_len 4096 and
//! 8192, on 50,000 items of a demo-like length mix (captions, VQA, OCR, long text cut into full
//! windows plus a remainder). Each configuration's non-pad fraction is printed once, so the price
//! of BFD's better fill is visible next to its speed.
//!
//! Run with `cargo bench --bench pack`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mixtape_engine::pack::{PackAlgorithm, PackItem, PackStats, PackerConfig, pack_all};

const ITEMS: usize = 50_000;

/// SplitMix64: the same stream on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next() % (u64::from(hi - lo) + 1)) as u32
    }
}

/// Captions 80-400 tokens, VQA 100-1500, OCR 200-800 (each partly image tokens), and long text:
/// zero to two full `seq_len` windows, then a remainder of uniform length.
fn demo_items(seed: u64, n: usize, seq_len: u32) -> Vec<PackItem> {
    let mut rng = Rng(seed);
    let mut items = Vec::with_capacity(n);
    while items.len() < n {
        let (tokens, image_share) = match rng.range(0, 99) {
            0..=29 => (rng.range(80, 400), rng.range(40, 80)),
            30..=59 => (rng.range(100, 1500), rng.range(20, 70)),
            60..=79 => (rng.range(200, 800), rng.range(50, 90)),
            _ => {
                for _ in 0..rng.range(0, 2) {
                    items.push(PackItem::text(items.len() as u64, seq_len));
                }
                (rng.range(1, seq_len), 0)
            }
        };
        items.push(PackItem::new(
            items.len() as u64,
            tokens,
            tokens * image_share / 100,
        ));
    }
    items.truncate(n);
    items
}

fn bench_pack(c: &mut Criterion) {
    let mut group = c.benchmark_group("pack");
    group.throughput(Throughput::Elements(ITEMS as u64));
    for seq_len in [4096u32, 8192] {
        let items = demo_items(42, ITEMS, seq_len);
        let configs = [
            ("bfd", PackerConfig::new(seq_len)),
            (
                "bfd_image_cap_2048",
                PackerConfig::new(seq_len).with_max_image_tokens(Some(2048)),
            ),
            (
                "greedy",
                PackerConfig::new(seq_len).with_algorithm(PackAlgorithm::Greedy),
            ),
        ];
        for (name, config) in configs {
            let packs = pack_all(config, items.iter().copied()).expect("demo items fit");
            let stats = PackStats::from_packs(seq_len, &packs);
            eprintln!(
                "pack/{name}/{seq_len}: {} items -> {} packs, non-pad fraction {:.4}",
                stats.items,
                stats.packs,
                stats.efficiency()
            );
            group.bench_with_input(BenchmarkId::new(name, seq_len), &items, |b, items| {
                b.iter(|| {
                    pack_all(config, black_box(items).iter().copied()).expect("demo items fit")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_pack);
criterion_main!(benches);
