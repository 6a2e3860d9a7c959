//! No silent corruption on the read path: a single changed byte anywhere in a shard the reader
//! uses is reported, naming the shard and, inside a column chunk, its row group and column, in
//! every image mode, and the reader stops. With images skipped, the image bytes are not read, so
//! only changes outside them are (and must be) reported.

mod reader_fixture;

use std::ops::Range;
use std::path::Path;

use mixtape_shards::reader::ReaderOptions;
use mixtape_shards::{
    ImageMode, Manifest, ReadError, Reader, ReaderError, Region, ShardFile, StageLayout,
};

use reader_fixture::{png_image, row, write_stage_with};

/// The image bytes leaf, as parquet names it.
const IMAGE_BYTES: &str = "images.list.element.bytes";

/// Every region of a shard: the magic, each column chunk, the tail.
fn regions(path: &Path) -> Vec<(Range<u64>, Region)> {
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .unwrap();
    let mut regions = vec![(0..4, Region::Magic)];
    let mut end = 4;
    for (row_group, group) in meta.row_groups().iter().enumerate() {
        for column in group.columns() {
            let (start, len) = column.byte_range();
            assert_eq!(start, end, "column chunks are contiguous");
            end = start + len;
            let column = column.column_path().string();
            regions.push((start..end, Region::ColumnChunk { row_group, column }));
        }
    }
    regions.push((end..len, Region::Tail));
    regions
}

/// One stage of one shard, two row groups of three rows, one small PNG per row.
fn stage(dir: &Path) -> std::path::PathBuf {
    write_stage_with(dir, 0, "sft", &[6], 3, |stage, shard, r| {
        let mut packed = row(stage, shard, r);
        packed.images = vec![png_image(28, 28, 1, 0)];
        packed
    })
}

/// Positions to flip: the first, middle and last byte of every region, then a fixed
/// pseudo-random sample of the rest, `count` in all.
fn positions(regions: &[(Range<u64>, Region)], len: u64, count: usize) -> Vec<u64> {
    let mut out: Vec<u64> = regions
        .iter()
        .flat_map(|(r, _)| [r.start, r.start + (r.end - r.start) / 2, r.end - 1])
        .collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    while out.len() < count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x % len);
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn region_of(regions: &[(Range<u64>, Region)], position: u64) -> &Region {
    &regions
        .iter()
        .find(|(r, _)| r.contains(&position))
        .unwrap()
        .1
}

/// The first error of a reader that reads every row, or `None` when it reads them all.
fn first_error(stage: &Path, mode: ImageMode) -> Option<ReaderError> {
    let options = ReaderOptions::default()
        .with_batch_size(1)
        .with_shuffle(false)
        .with_decode_threads(1)
        .with_prefetch(1)
        .with_image_mode(mode);
    Reader::try_new(&[stage.to_path_buf()], options, None)
        .unwrap()
        .find_map(Result::err)
}

fn flipped(bytes: &[u8], position: u64) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    // A different change at each position: one bit, or all of them.
    bytes[position as usize] ^= if position.is_multiple_of(3) {
        0xFF
    } else {
        1 << (position % 8)
    };
    bytes
}

#[test]
fn every_single_byte_change_is_reported_with_its_shard_row_group_and_column_in_every_image_mode() {
    let dir = tempfile::tempdir().unwrap();
    let stage = stage(dir.path());
    let path = stage.join("shard-00000.parquet");
    let original = std::fs::read(&path).unwrap();
    let regions = regions(&path);
    assert!(
        regions
            .iter()
            .any(|(_, r)| matches!(r, Region::ColumnChunk { column, .. } if column == IMAGE_BYTES))
    );
    let positions = positions(&regions, original.len() as u64, 520);
    assert!(positions.len() >= 500, "{} positions", positions.len());
    for &position in &positions {
        std::fs::write(&path, flipped(&original, position)).unwrap();
        let region = region_of(&regions, position);
        let in_image_bytes =
            matches!(region, Region::ColumnChunk { column, .. } if column == IMAGE_BYTES);
        for mode in [ImageMode::Decoded, ImageMode::Raw, ImageMode::Skip] {
            let case = format!("byte {position} ({region}), {mode:?}");
            let err = first_error(&stage, mode);
            if mode == ImageMode::Skip && in_image_bytes {
                assert!(
                    err.is_none(),
                    "{case}: images skipped, their bytes are not read: {err:?}"
                );
                continue;
            }
            let Some(err) = err else {
                panic!("{case}: the change passed silently")
            };
            let message = err.to_string();
            assert!(message.contains("shard-00000.parquet"), "{case}: {message}");
            match &err {
                ReaderError::Read(ReadError::Corrupt { region: found, .. }) => {
                    assert_eq!(found, region, "{case}")
                }
                other => panic!("{case}: not a checksum error: {other}"),
            }
            if let Region::ColumnChunk { row_group, column } = region {
                assert!(
                    message.contains(&format!("row group {row_group}, column {column}")),
                    "{case}: {message}"
                );
            }
        }
    }
    std::fs::write(&path, &original).unwrap();
    for mode in [ImageMode::Decoded, ImageMode::Raw, ImageMode::Skip] {
        assert!(
            first_error(&stage, mode).is_none(),
            "the intact shard reads whole"
        );
    }
}

#[test]
fn every_byte_of_the_shard_is_checked_when_all_its_row_groups_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let stage = stage(dir.path());
    let path = stage.join("shard-00000.parquet");
    let info = Manifest::read(StageLayout::of_dir(&stage).manifest())
        .unwrap()
        .shards
        .remove(0);
    let original = std::fs::read(&path).unwrap();
    let regions = regions(&path);
    let read = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        let shard = ShardFile::open_checked(&path, &info)?;
        (0..shard.row_groups()).try_for_each(|g| shard.read_row_group(g).map(drop))
    };
    read(&original).unwrap();
    for position in 0..original.len() as u64 {
        let region = region_of(&regions, position);
        match read(&flipped(&original, position)) {
            Err(ReadError::Corrupt { region: found, .. }) => {
                assert_eq!(&found, region, "byte {position}")
            }
            other => panic!("byte {position} ({region}): {other:?}"),
        }
    }
    // A shard one byte longer or shorter is refused before anything is read.
    let mut longer = original.clone();
    longer.push(0);
    assert!(
        matches!(read(&longer), Err(ReadError::Size { expected, found, .. }) if found == expected + 1)
    );
}
