//! Packing throughput: items per second for best-fit-decreasing and greedy at seq_len 4096 and
//! 8192, on 50,000 items of a demo-like length mix (captions, VQA, OCR, long text cut into full
//! windows plus a remainder). Each configuration's non-pad fraction is printed once, so the price
//! of BFD's better fill is visible next to its speed.
//!
//! Run with `cargo bench --bench pack`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mixtape_engine::pack::{PackAlgorithm, PackItem, PackStats, PackerConfig, pack_all};
use mixtape_testdata::demo_lengths;

const ITEMS: usize = 50_000;

/// The demo-like length mix of `mixtape-testdata` as packer items (the packer tests use it too).
fn demo_items(seed: u64, n: usize, seq_len: u32) -> Vec<PackItem> {
    demo_lengths(seed, n, seq_len)
        .into_iter()
        .enumerate()
        .map(|(id, l)| PackItem::new(id as u64, l.tokens, l.image_tokens))
        .collect()
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
