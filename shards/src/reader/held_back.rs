//! [`read_rows_at`]: chosen rows of one stage, outside any order, as the reader yields rows.
//!
//! A trainer holds some rows of each stage back for evaluation (rows spread over the stage, never
//! trained on). Reading them needs no shuffle, ranks or prefetch, but it must give the same
//! [`Row`]s as the [`super::Reader`] (images decoded by the same code, the source size kept for
//! re-resizing), and the same integrity checks: shards are opened checked against the manifest and
//! only the row groups holding a wanted row are read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ReadColumns;

use super::ReaderError;
use super::images::convert_row;
use super::load::{RawRow, open_listed_shard};
use super::options::ImageMode;
use super::pixels::PixelPool;
use super::rows::{Row, RowOrigin};
use super::schedule::Schedule;

/// The rows of the stage in `stage_dir` at positions `rows` (counted in file order over the
/// manifest's shards, from 0), in increasing position order, each once. Their
/// [`RowOrigin::stage`] is 0.
///
/// ```no_run
/// use mixtape_shards::ImageMode;
/// use mixtape_shards::reader::read_rows_at;
///
/// // Rows 10 and 500 of the stage, with their images decoded.
/// let rows = read_rows_at("out/sft".as_ref(), [10, 500], ImageMode::Decoded)?;
/// assert_eq!(rows.len(), 2);
/// # Ok::<(), mixtape_shards::ReaderError>(())
/// ```
pub fn read_rows_at(
    stage_dir: &Path,
    rows: impl IntoIterator<Item = u64>,
    mode: ImageMode,
) -> Result<Vec<Row>, ReaderError> {
    let schedule = Schedule::open(&[stage_dir.to_path_buf()])?;
    let stage = &schedule.stages[0];
    let wanted: BTreeSet<u64> = rows.into_iter().collect();
    let total = stage.manifest.totals.rows;
    if let Some(&row) = wanted.last()
        && row >= total
    {
        return Err(ReaderError::NoSuchRow {
            stage: stage.name().to_string(),
            row,
            rows: total,
        });
    }
    let columns = ReadColumns {
        image_bytes: mode != ImageMode::Skip,
        position_ids: false,
    };
    let pool = Arc::new(PixelPool::default());
    let mut out = Vec::with_capacity(wanted.len());
    let mut shard_first = 0u64;
    for (shard, info) in stage.manifest.shards.iter().enumerate() {
        let shard_end = shard_first + info.rows;
        if wanted.range(shard_first..shard_end).next().is_some() {
            let path: PathBuf = stage.shard_path(shard as u32);
            let file = open_listed_shard(&path, info, None)?;
            let path: Arc<Path> = Arc::from(path.as_path());
            let mut group_first = shard_first;
            for group in 0..file.row_groups() {
                let group_end = group_first + file.row_group_rows(group).unwrap_or(0);
                if wanted.range(group_first..group_end).next().is_some() {
                    let packed = file.read_row_group_columns(group, columns)?;
                    for (row_in_group, row) in packed.into_iter().enumerate() {
                        let at = group_first + row_in_group as u64;
                        if !wanted.contains(&at) {
                            continue;
                        }
                        let raw = RawRow {
                            row,
                            origin: RowOrigin {
                                stage: 0,
                                shard: shard as u32,
                                row: at - shard_first,
                            },
                            path: path.clone(),
                            row_group: group,
                            row_in_group,
                        };
                        out.push(convert_row(raw, stage.name(), mode, &pool)?);
                    }
                }
                group_first = group_end;
            }
        }
        shard_first = shard_end;
    }
    Ok(out)
}
