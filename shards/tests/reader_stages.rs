//! One reader for a whole training schedule: stages at their own batch sizes, a capped stage left
//! behind with `skip_to_stage`, held-back rows read by position, the source size of every image, and
//! a reader that stays ended.

mod reader_fixture;

use mixtape_shards::reader::{ImageMode, ReaderOptions, read_rows_at};
use mixtape_shards::{Reader, ReaderError};
use reader_fixture::{all, origins, png_image, tag, write_stage, write_stage_with};

fn options() -> ReaderOptions {
    ReaderOptions::default()
        .with_image_mode(ImageMode::Skip)
        .with_shuffle(false)
}

#[test]
fn each_stage_reads_at_its_own_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let warmup = write_stage(dir.path(), 0, "warmup", &[8], 4);
    let sft = write_stage(dir.path(), 1, "sft", &[9], 4);
    let options = options().with_batch_size(4).with_stage_batch_size("sft", 3);
    let batches = all(Reader::try_new(&[warmup, sft], options, None).unwrap());
    let sizes: Vec<(usize, usize)> = batches.iter().map(|b| (b.stage, b.rows.len())).collect();
    assert_eq!(sizes, [(0, 4), (0, 4), (1, 3), (1, 3), (1, 3)]);
    // Every row of both stages, once (no rows dropped: both stages divide by their batch size).
    assert_eq!(origins(&batches).len(), 17);
}

#[test]
fn a_batch_size_for_a_stage_that_is_not_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sft = write_stage(dir.path(), 0, "sft", &[4], 4);
    let err = Reader::try_new(&[sft], options().with_stage_batch_size("stf", 2), None).unwrap_err();
    assert!(matches!(err, ReaderError::UnknownStage { .. }), "{err}");
    assert!(err.to_string().contains("`stf`"), "{err}");
}

#[test]
fn skipping_to_a_stage_leaves_the_rest_of_the_earlier_one_unread_and_resumes_there() {
    let dir = tempfile::tempdir().unwrap();
    let warmup = write_stage(dir.path(), 0, "warmup", &[10], 4);
    let sft = write_stage(dir.path(), 1, "sft", &[6], 4);
    let dirs = [warmup, sft];
    let mut reader = Reader::try_new(&dirs, options().with_batch_size(2), None).unwrap();
    assert_eq!(reader.current_stage(), 0);
    let first = reader.next().unwrap().unwrap();
    assert_eq!(first.stage, 0);
    reader.skip_to_stage(1).unwrap();
    assert_eq!(reader.current_stage(), 1);
    // Skipping back or to where it already is does nothing.
    reader.skip_to_stage(0).unwrap();
    reader.skip_to_stage(1).unwrap();
    let second = reader.next().unwrap().unwrap();
    assert_eq!(
        (second.stage, second.rows[0].input_ids[0]),
        (1, tag(1, 0, 0))
    );
    // The state after a skip resumes in the new stage.
    let state = reader.state();
    let rest = all(Reader::try_new(&dirs, options().with_batch_size(2), Some(state)).unwrap());
    assert_eq!(origins(&rest), [(1, 0, 2), (1, 0, 3), (1, 0, 4), (1, 0, 5)]);
    assert!(matches!(
        reader.skip_to_stage(3),
        Err(ReaderError::NoSuchStage {
            index: 3,
            stages: 2
        })
    ));
    // Skipping to the end ends the reader.
    reader.skip_to_stage(2).unwrap();
    assert!(reader.next().is_none());
    assert_eq!(reader.current_stage(), 2);
}

#[test]
fn an_ended_reader_stays_ended_even_when_asked_to_skip() {
    let dir = tempfile::tempdir().unwrap();
    let warmup = write_stage(dir.path(), 0, "warmup", &[2], 2);
    let sft = write_stage(dir.path(), 1, "sft", &[2], 2);
    std::fs::remove_file(sft.join("shard-00000.parquet")).unwrap();
    let mut reader = Reader::try_new(&[warmup, sft], options().with_batch_size(2), None).unwrap();
    assert!(reader.next().unwrap().is_ok());
    assert!(reader.next().unwrap().is_err(), "the missing shard");
    reader.skip_to_stage(2).unwrap();
    assert!(reader.next().is_none());
    assert!(reader.next().is_none());
}

#[test]
fn rows_read_by_position_are_the_rows_stored_there() {
    let dir = tempfile::tempdir().unwrap();
    // Rows 0-4 in shard 0, 5-11 in shard 1, row groups of 3.
    let sft = write_stage(dir.path(), 0, "sft", &[5, 7], 3);
    let rows = read_rows_at(&sft, [11, 0, 6, 6], ImageMode::Skip).unwrap();
    let tags: Vec<i32> = rows.iter().map(|r| r.input_ids[0]).collect();
    assert_eq!(tags, [tag(0, 0, 0), tag(0, 1, 1), tag(0, 1, 6)]);
    assert!(rows.iter().all(|r| r.stage == "sft"));
    let err = read_rows_at(&sft, [12], ImageMode::Skip).unwrap_err();
    assert!(
        matches!(
            err,
            ReaderError::NoSuchRow {
                row: 12,
                rows: 12,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn images_keep_their_source_size_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let sft = write_stage_with(dir.path(), 0, "sft", &[2], 2, |_, _, _| {
        // Two text tokens, the image's 2, two text tokens; loss on the last.
        let mut image = png_image(56, 28, 2, 0);
        (image.source_height, image.source_width) = (560, 280);
        let mut row = reader_fixture::row(0, 0, 0);
        let tokens = 4 + image.num_tokens as usize;
        row.input_ids = vec![7; tokens];
        row.loss_mask = vec![0; tokens];
        row.loss_mask[tokens - 1] = 1;
        row.seq_lens = vec![tokens as i32];
        row.samples.truncate(1);
        row.samples[0].loss_tokens = 1;
        row.images = vec![image];
        row
    });
    for mode in [ImageMode::Skip, ImageMode::Raw, ImageMode::Decoded] {
        let rows = read_rows_at(&sft, [1], mode).unwrap();
        let image = &rows[0].images[0];
        assert_eq!(
            (
                image.height,
                image.width,
                image.source_height,
                image.source_width
            ),
            (56, 28, 560, 280),
            "{mode:?}"
        );
    }
}
