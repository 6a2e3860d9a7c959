//! Property tests of the reader's guarantees, on real shards written with random layouts:
//! ranks are disjoint and complete, every rank yields the same number of batches, resuming from
//! the state at a random stop point (with the same or another world size, across stages) yields
//! exactly the rows not yet yielded, the order does not depend on threads or prefetch depth, a
//! rank's batches dealt round-robin to workers (as a PyTorch `DataLoader` does) come back in order,
//! and stages read as object-store URLs (`file://`, through the same ranged reads, chunk cache and
//! read-ahead as `s3://`) give the folder's rows, resumed or not.

mod reader_fixture;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use mixtape_shards::reader::ReaderOptions;
use mixtape_shards::{ImageMode, Reader};
use proptest::prelude::*;

use reader_fixture::{all, origins, read_some, write_stage};

/// Two stages with random shard sizes (some empty) and row-group sizes.
fn layout() -> impl Strategy<Value = (Vec<u64>, Vec<u64>, usize)> {
    (
        prop::collection::vec(0u64..40, 1..6),
        prop::collection::vec(0u64..30, 1..4),
        1usize..9,
    )
}

fn write(dir: &std::path::Path, (a, b, group): &(Vec<u64>, Vec<u64>, usize)) -> Vec<PathBuf> {
    vec![
        write_stage(dir, 0, "warmup", a, *group),
        write_stage(dir, 1, "sft", b, *group),
    ]
}

fn options(
    seed: u64,
    window: usize,
    batch: usize,
    rank: usize,
    world: usize,
    epochs: u32,
) -> ReaderOptions {
    ReaderOptions::default()
        .with_seed(seed)
        .with_shuffle_window(window)
        .with_batch_size(batch)
        .with_rank(rank, world)
        .with_epochs(epochs)
        .with_image_mode(ImageMode::Skip)
        .with_decode_threads(2)
        .with_prefetch(2)
}

/// `(stage, epoch, origin)` of every row.
fn tagged(batches: &[mixtape_shards::RowBatch]) -> Vec<(usize, u32, (usize, u32, u64))> {
    batches
        .iter()
        .flat_map(|b| {
            origins(std::slice::from_ref(b))
                .into_iter()
                .map(move |o| (b.stage, b.epoch, o))
        })
        .collect()
}

/// Rows of each stage, from the layout.
fn stage_rows(l: &(Vec<u64>, Vec<u64>, usize)) -> [u64; 2] {
    [l.0.iter().sum(), l.1.iter().sum()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn ranks_are_disjoint_complete_and_equally_long(
        l in layout(), seed in any::<u64>(), window in 1usize..50, batch in 1usize..4, world in 1usize..5,
        epochs in 1u32..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let dirs = write(dir.path(), &l);
        let per_rank: Vec<_> = (0..world)
            .map(|rank| all(Reader::try_new(&dirs, options(seed, window, batch, rank, world, epochs), None).unwrap()))
            .collect();
        let counts: BTreeSet<usize> = per_rank.iter().map(|b| b.len()).collect();
        prop_assert_eq!(counts.len(), 1, "ranks yield different batch counts");
        let step = (batch * world) as u64;
        // (rank, epoch) -> its batches' (rank, epoch, first row)
        type Batches = Vec<(usize, u32, u64)>;
        let mut by_epoch: BTreeMap<(usize, u32), Batches> = BTreeMap::new();
        for batches in &per_rank {
            for b in batches {
                prop_assert_eq!(b.rows.len(), batch);
                by_epoch.entry((b.stage, b.epoch)).or_default().extend(origins(std::slice::from_ref(b)));
            }
        }
        for (stage, rows) in stage_rows(&l).into_iter().enumerate() {
            for epoch in 0..epochs {
                let got = by_epoch.remove(&(stage, epoch)).unwrap_or_default();
                let unique: BTreeSet<_> = got.iter().copied().collect();
                prop_assert_eq!(unique.len(), got.len(), "a row was read twice in one epoch");
                prop_assert_eq!(got.len() as u64, rows / step * step);
                if step == 1 {
                    prop_assert!(unique.iter().all(|o| o.0 == stage));
                }
            }
        }
    }

    #[test]
    fn resuming_yields_exactly_the_rest_even_with_another_world_size(
        l in layout(), seed in any::<u64>(), window in 1usize..50, batch in 1usize..4, world in 1usize..4,
        batch2 in 1usize..4, world2 in 1usize..4, stop in 0usize..30, elastic in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let dirs = write(dir.path(), &l);
        let (batch2, world2) = if elastic { (batch2, world2) } else { (batch, world) };
        let epochs = 2;
        // Uninterrupted run, per rank.
        let full: Vec<Vec<_>> = (0..world)
            .map(|rank| tagged(&all(Reader::try_new(&dirs, options(seed, window, batch, rank, world, epochs), None).unwrap())))
            .collect();
        // Stop every rank after the same number of batches: their states must agree.
        let mut first = Vec::new();
        let mut states = Vec::new();
        for rank in 0..world {
            let (batches, state) = read_some(&dirs, options(seed, window, batch, rank, world, epochs), None, Some(stop));
            first.push(tagged(&batches));
            states.push(state);
        }
        prop_assert!(states.windows(2).all(|w| w[0] == w[1]), "ranks disagree on the state");
        let json = serde_json::to_string(&states[0]).unwrap();
        prop_assert!(json.len() < 400, "state is not small: {}", json);
        let state: mixtape_shards::ReaderState = serde_json::from_str(&json).unwrap();
        let second: Vec<Vec<_>> = (0..world2)
            .map(|rank| {
                let (b, _) = read_some(&dirs, options(seed, window, batch2, rank, world2, epochs), Some(state.clone()), None);
                tagged(&b)
            })
            .collect();
        if !elastic {
            for rank in 0..world {
                let mut joined = first[rank].clone();
                joined.extend(&second[rank]);
                prop_assert_eq!(&joined, &full[rank], "rank {} resumed differently", rank);
            }
        }
        // Per (stage, epoch), the rows read before and after the stop are disjoint and are exactly
        // the first K rows of the epoch's order (read by one rank, one row per batch), where K is
        // what the cursor arithmetic allows: full steps of the old split up to the stop, then full
        // steps of the new one.
        let order = tagged(&all(Reader::try_new(&dirs, options(seed, window, 1, 0, 1, epochs), None).unwrap()));
        let (step1, step2) = ((batch * world) as u64, (batch2 * world2) as u64);
        for (stage, rows) in stage_rows(&l).into_iter().enumerate() {
            for epoch in 0..epochs {
                let key = (stage, epoch);
                let before = (stage, epoch) < (state.stage, state.epoch);
                let expected_len = if before {
                    rows / step1 * step1
                } else if key == (state.stage, state.epoch) {
                    state.offset + (rows - state.offset) / step2 * step2
                } else {
                    rows / step2 * step2
                };
                let got: Vec<_> =
                    first.iter().chain(&second).flatten().filter(|t| (t.0, t.1) == key).map(|t| t.2).collect();
                let unique: BTreeSet<_> = got.iter().copied().collect();
                prop_assert_eq!(unique.len(), got.len(), "a row was read twice in stage {} epoch {}", stage, epoch);
                let expected: BTreeSet<_> = order
                    .iter()
                    .filter(|t| (t.0, t.1) == key)
                    .take(expected_len as usize)
                    .map(|t| t.2)
                    .collect();
                prop_assert_eq!(unique, expected, "stage {} epoch {}", stage, epoch);
            }
        }
    }

    #[test]
    fn the_order_does_not_depend_on_threads_or_prefetch(
        l in layout(), seed in any::<u64>(), window in 1usize..50, threads in 1usize..5, prefetch in 1usize..6,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let dirs = write(dir.path(), &l);
        let reference = origins(&all(Reader::try_new(&dirs, options(seed, window, 2, 0, 1, 1).with_decode_threads(1).with_prefetch(1), None).unwrap()));
        let other = origins(&all(Reader::try_new(&dirs, options(seed, window, 2, 0, 1, 1).with_decode_threads(threads).with_prefetch(prefetch), None).unwrap()));
        prop_assert_eq!(reference, other);
    }

    #[test]
    fn workers_taken_in_turn_give_the_ranks_order_and_states(
        l in layout(), seed in any::<u64>(), window in 1usize..50, batch in 1usize..4, world in 1usize..3,
        workers in 1usize..4, stop in 0usize..12, epochs in 1u32..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let dirs = write(dir.path(), &l);
        let rank = world - 1;
        // The rank's batches and the state after each, from `resume`, one reader.
        let whole = |resume: Option<mixtape_shards::ReaderState>| {
            let mut reader = Reader::try_new(&dirs, options(seed, window, batch, rank, world, epochs), resume).unwrap();
            let mut out = Vec::new();
            while let Some(b) = reader.next() {
                out.push((tagged(&[b.unwrap()]), reader.state()));
            }
            out
        };
        let (_, resume) = read_some(&dirs, options(seed, window, batch, rank, world, epochs), None, Some(stop));
        for start in [None, Some(resume)] {
            let expected = whole(start.clone());
            let mut readers: Vec<Reader> = (0..workers)
                .map(|w| {
                    let o = options(seed, window, batch, rank, world, epochs).with_worker(w, workers);
                    Reader::try_new(&dirs, o, start.clone()).unwrap()
                })
                .collect();
            // Round-robin until a worker runs dry, as the DataLoader does.
            let mut dealt = Vec::new();
            'deal: loop {
                for reader in &mut readers {
                    match reader.next() {
                        Some(b) => dealt.push((tagged(&[b.unwrap()]), reader.state())),
                        None => break 'deal,
                    }
                }
            }
            for reader in &mut readers {
                prop_assert!(reader.next().is_none(), "a worker has batches after another ran dry");
            }
            prop_assert_eq!(&dealt, &expected);
        }
    }

    #[test]
    fn stages_read_as_urls_give_the_folders_rows_with_or_without_read_ahead_and_cache(
        l in layout(), seed in any::<u64>(), window in 1usize..20, batch in 1usize..4,
        (rank, world) in (1usize..3).prop_flat_map(|w| (0..w, Just(w))), epochs in 1u32..3,
        stop in 0usize..12, cache_limit in prop::sample::select(vec![0u64, 2_000, 1 << 30]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let dirs = write(dir.path(), &l);
        let urls: Vec<PathBuf> = dirs
            .iter()
            .map(|d| PathBuf::from(format!("file://{}", d.display())))
            .collect();
        let base = || options(seed, window, batch, rank, world, epochs);
        let (head, resume) = read_some(&dirs, base(), None, Some(stop));
        let (tail, _) = read_some(&dirs, base(), Some(resume.clone()), None);
        let folder = all(Reader::try_new(&dirs, base(), None).unwrap());
        prop_assert_eq!(tagged(&head).into_iter().chain(tagged(&tail)).collect::<Vec<_>>(), tagged(&folder));
        let cache = dir.path().join("cache");
        for read_ahead in [true, false] {
            for cached in [false, true] {
                let mut o = base().with_read_ahead(read_ahead).with_remote_requests(3);
                if cached {
                    o = o.with_cache(&cache, cache_limit);
                }
                let whole = all(Reader::try_new(&urls, o.clone(), None).unwrap());
                prop_assert_eq!(tagged(&whole), tagged(&folder));
                let (head, state) = read_some(&urls, o.clone(), None, Some(stop));
                prop_assert_eq!(&state, &resume);
                let (tail, _) = read_some(&urls, o, Some(state), None);
                prop_assert_eq!(
                    tagged(&head).into_iter().chain(tagged(&tail)).collect::<Vec<_>>(),
                    tagged(&folder)
                );
            }
        }
    }
}
