//! The reader on damaged data and on images: a missing shard, a flipped byte (with and without
//! `verify`), a manifest that disagrees with a footer, and images that must come out as the same
//! pixels whether the shard stores them resized or as the source file, and whatever buffer the
//! reader recycled for them.

mod reader_fixture;

use mixtape_shards::reader::ReaderOptions;
use mixtape_shards::{
    ImageEncoding, ImageMode, Manifest, PackedRow, Reader, ReaderError, ReaderWarning, StageLayout,
};

use reader_fixture::{all, png_image, row, write_stage, write_stage_with};

fn first_error(reader: Reader) -> ReaderError {
    for batch in reader {
        if let Err(err) = batch {
            return err;
        }
    }
    panic!("the reader yielded no error");
}

fn options() -> ReaderOptions {
    ReaderOptions::default()
        .with_batch_size(2)
        .with_image_mode(ImageMode::Skip)
        .with_shuffle(false)
}

#[test]
fn a_missing_shard_is_named_and_ends_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let stage = write_stage(dir.path(), 0, "sft", &[6, 6, 6], 3);
    std::fs::remove_file(stage.join("shard-00001.parquet")).unwrap();
    // Windows of one shard: the first window needs only shard 0.
    let mut reader = Reader::try_new(&[stage], options().with_shuffle_window(6), None).unwrap();
    // Shard 0's rows come first (no shuffle), then the error, then nothing.
    let ok: Vec<_> = reader.by_ref().take(3).map(|b| b.unwrap()).collect();
    assert_eq!(ok.len(), 3);
    let err = reader.next().unwrap().unwrap_err();
    assert!(err.to_string().contains("shard-00001.parquet"), "{err}");
    assert!(reader.next().is_none());
}

#[test]
fn a_flipped_byte_is_caught_by_verify_and_named_with_its_row_group_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let stage = write_stage(dir.path(), 0, "sft", &[8, 8], 4);
    let path = stage.join("shard-00001.parquet");
    let mut bytes = std::fs::read(&path).unwrap();
    // Garble the first column chunk of row group 0 (right after the "PAR1" magic).
    for b in &mut bytes[8..40] {
        *b ^= 0x5A;
    }
    std::fs::write(&path, &bytes).unwrap();

    let err = first_error(
        Reader::try_new(
            std::slice::from_ref(&stage),
            options().with_verify(true),
            None,
        )
        .unwrap(),
    );
    assert!(matches!(err, ReaderError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("shard-00001.parquet"), "{err}");

    let err = first_error(Reader::try_new(&[stage], options(), None).unwrap());
    let message = err.to_string();
    assert!(
        message.contains("shard-00001.parquet") && message.contains("row group 0"),
        "{message}"
    );
}

#[test]
fn a_manifest_that_disagrees_with_the_footer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stage = write_stage(dir.path(), 0, "sft", &[5, 5], 2);
    let mut manifest = Manifest::read(StageLayout::of_dir(&stage).manifest()).unwrap();
    manifest.shards[0].rows = 4;
    manifest.shards[1].rows = 6;
    manifest
        .write(StageLayout::of_dir(&stage).manifest())
        .unwrap();
    let err = first_error(Reader::try_new(&[stage], options(), None).unwrap());
    assert!(
        matches!(
            err,
            ReaderError::ShardMismatch {
                what: "rows",
                manifest: 4,
                footer: 5,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn resuming_with_another_seed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stage = write_stage(dir.path(), 0, "sft", &[5], 2);
    let reader =
        Reader::try_new(std::slice::from_ref(&stage), options().with_seed(1), None).unwrap();
    let state = reader.state();
    let err = Reader::try_new(&[stage], options().with_seed(2), Some(state)).unwrap_err();
    assert_eq!(err.to_string(), "cannot resume from this state");
    // What differs is the cause, said once.
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("seed 1"), "{cause}");
}

/// A row with one sample holding `image` at token 2.
fn image_row(image: mixtape_shards::ShardImage) -> PackedRow {
    let mut r = row(0, 0, 0);
    let tokens = 4 + image.num_tokens as usize;
    r.input_ids = vec![7; tokens];
    r.loss_mask = vec![0; tokens];
    r.loss_mask[tokens - 1] = 1;
    r.seq_lens = vec![tokens as i32];
    r.samples.truncate(1);
    r.samples[0].loss_tokens = 1;
    r.images = vec![mixtape_shards::ShardImage {
        token_offset: 2,
        sample: 0,
        ..image
    }];
    r
}

#[test]
fn source_images_are_resized_like_the_builder_so_both_encodings_give_the_same_pixels() {
    let dir = tempfile::tempdir().unwrap();
    // A 100x90 source; the builder's rule makes it 112x84.
    let source = png_image(100, 90, 0, 0);
    let processed = mixtape_image::process(
        &source.bytes,
        &mixtape_image::ResizePolicy::default(),
        mixtape_image::ImageEncoding::Png,
        mixtape_image::DEFAULT_JPEG_QUALITY,
    )
    .unwrap();
    assert_eq!((processed.height, processed.width), (112, 84));
    let geometry = mixtape_shards::ShardImage {
        bytes: Vec::new(),
        encoding: ImageEncoding::Png,
        height: 112,
        width: 84,
        source_height: 100,
        source_width: 90,
        grid_t: 1,
        grid_h: 8,
        grid_w: 6,
        token_offset: 2,
        num_tokens: 12,
        sample: 0,
    };
    let resized = mixtape_shards::ShardImage {
        bytes: processed.bytes.clone(),
        ..geometry.clone()
    };
    let unresized = mixtape_shards::ShardImage {
        bytes: source.bytes.clone(),
        encoding: ImageEncoding::Source,
        ..geometry
    };
    let a = write_stage_with(dir.path(), 0, "png", &[1], 1, |_, _, _| {
        image_row(resized.clone())
    });
    let b = write_stage_with(dir.path(), 0, "source", &[1], 1, |_, _, _| {
        image_row(unresized.clone())
    });
    let decoded = |stage, mode| {
        let options = ReaderOptions::default().with_image_mode(mode);
        all(Reader::try_new(&[stage], options, None).unwrap())
            .remove(0)
            .rows
            .remove(0)
            .images
            .remove(0)
    };
    let from_png = decoded(a.clone(), ImageMode::Decoded);
    let from_source = decoded(b, ImageMode::Decoded);
    assert_eq!(from_png.rgb.len(), 112 * 84 * 3);
    assert_eq!(from_png.rgb, from_source.rgb);
    assert_eq!((from_png.grid, from_png.num_tokens), ([1, 8, 6], 12));
    let raw = decoded(a.clone(), ImageMode::Raw);
    assert_eq!((raw.bytes, raw.rgb.len()), (processed.bytes, 0));
    let skipped = decoded(a, ImageMode::Skip);
    assert!(skipped.bytes.is_empty() && skipped.rgb.is_empty() && skipped.height == 112);
}

#[test]
fn an_undecodable_image_names_shard_row_group_row_and_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut broken = png_image(56, 56, 2, 0);
    let len = broken.bytes.len();
    broken.bytes.truncate(len / 2);
    let stage = write_stage_with(dir.path(), 0, "sft", &[3], 2, |_, _, _| {
        image_row(broken.clone())
    });
    let options = ReaderOptions::default().with_shuffle(false);
    let err = first_error(Reader::try_new(&[stage], options, None).unwrap());
    assert!(
        matches!(
            err,
            ReaderError::Image {
                row_group: 0,
                row: 0,
                image: 0,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("shard-00000.parquet"), "{err}");
}

#[test]
fn the_tally_counts_what_was_yielded_and_matches_the_manifest_over_an_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let stage = write_stage(dir.path(), 0, "sft", &[7, 0, 9], 4);
    let mut reader = Reader::try_new(
        std::slice::from_ref(&stage),
        ReaderOptions::default().with_batch_size(1),
        None,
    )
    .unwrap();
    assert_eq!(reader.tally().rows, 0);
    reader.next().unwrap().unwrap();
    assert_eq!(reader.tally().rows, 1);
    reader.by_ref().for_each(|b| drop(b.unwrap()));
    let manifest = Manifest::read(StageLayout::of_dir(&stage).manifest()).unwrap();
    assert_eq!(reader.tally().rows, 16);
    assert_eq!(reader.tally().by_category, manifest.by_category);
    assert_eq!(reader.tally().by_source, manifest.by_source);
}

#[test]
fn recycled_pixel_buffers_never_carry_one_image_into_the_next() {
    // Decoded pixels go back to the reader when their batch is dropped and hold later images,
    // smaller or larger, JPEG or PNG. Each image must still come out exactly as its own bytes
    // decode, at exactly its own length.
    let sizes = [(112, 84), (56, 56), (168, 112), (28, 28), (84, 140)];
    let image = |row: u64| {
        let (height, width) = sizes[row as usize % sizes.len()];
        let mut image = png_image(height, width, 2, 0);
        if row.is_multiple_of(2) {
            let rgb = mixtape_image::decode(&image.bytes).unwrap();
            image.bytes = mixtape_image::encode_jpeg(&rgb, 90).unwrap();
            image.encoding = ImageEncoding::Jpeg;
        }
        image
    };
    let dir = tempfile::tempdir().unwrap();
    let stage = write_stage_with(dir.path(), 0, "mixed", &[20], 4, |_, _, r| {
        image_row(image(r))
    });
    let options = ReaderOptions::default()
        .with_batch_size(1)
        .with_decode_threads(2)
        .with_prefetch(1);
    let mut checked = 0;
    for batch in Reader::try_new(&[stage], options, None).unwrap() {
        for row in &batch.unwrap().rows {
            let expected = mixtape_shards::reader::decode_pixels(&image(row.origin.row)).unwrap();
            assert!(
                row.images[0].rgb[..] == expected[..],
                "row {}",
                row.origin.row
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 20);
}

#[test]
fn a_stage_smaller_than_one_global_step_is_warned_about_and_yields_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let small = write_stage(dir.path(), 0, "warmup", &[3], 2);
    let big = write_stage(dir.path(), 1, "sft", &[8], 4);
    // batch 2 x world 2: a global step takes 4 rows, warmup has 3.
    let options = options().with_rank(0, 2);
    let reader = Reader::try_new(&[small.clone(), big.clone()], options.clone(), None).unwrap();
    assert_eq!(
        reader.warnings(),
        [ReaderWarning::StageTooSmall {
            stage: "warmup".into(),
            rows: 3,
            step_rows: 4
        }]
    );
    assert!(reader.warnings()[0].to_string().contains("yields no batch"));
    let stages: Vec<String> = all(reader)
        .iter()
        .flat_map(|b| b.rows.iter().map(|r| r.stage.clone()))
        .collect();
    assert!(
        !stages.is_empty() && stages.iter().all(|s| s == "sft"),
        "{stages:?}"
    );
    // Big enough stages: no warning.
    assert!(
        Reader::try_new(&[big], options, None)
            .unwrap()
            .warnings()
            .is_empty()
    );
}

#[test]
fn a_resume_state_past_the_end_of_its_stage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stage = write_stage(dir.path(), 0, "sft", &[5], 2);
    let mut state = Reader::try_new(std::slice::from_ref(&stage), options(), None)
        .unwrap()
        .state();
    state.offset = 5;
    // At the end: nothing left of this epoch, which is not an error.
    Reader::try_new(std::slice::from_ref(&stage), options(), Some(state.clone())).unwrap();
    state.offset = 6;
    let err = Reader::try_new(&[stage], options(), Some(state)).unwrap_err();
    assert!(
        matches!(
            err,
            ReaderError::StatePastEnd {
                offset: 6,
                rows: 5,
                ..
            }
        ),
        "{err}"
    );
}
