//! [`ShardSetWriter`]: a stream of packed rows in, a folder of shards of a target size out.
//!
//! The set writer owns one [`ShardWriter`] at a time and publishes it as soon as its
//! [`ShardWriter::estimated_bytes`] reaches the target, so shards are named `shard-00000.parquet`,
//! `shard-00001.parquet`, ... in the order rows arrive. The estimate counts encoded row groups
//! plus the raw size of buffered rows, both functions of the rows alone: the same rows always cut
//! at the same places, whatever the machine's speed or thread timing. A shard ends at most one row
//! past the target (plus the footer), and is never empty: the next shard is opened only when a row
//! arrives for it.
//!
//! The set writer does not know about rejects or the recipe beyond [`ShardMeta`]; the caller turns
//! the returned [`ShardInfo`]s into a [`crate::Manifest`].

use std::path::{Path, PathBuf};

use crate::writer::{ShardOptions, ShardWriter, WriteError};
use crate::{PackedRow, ShardInfo, ShardMeta};

/// Size at which a shard is closed and the next one started.
///
/// Larger shards mean fewer files (object stores and file systems prefer few large files) and less
/// footer overhead; smaller shards mean a killed build redoes less work, and more files to spread
/// across data-loader workers (a stage wants at least ranks x workers shards). 256 MiB holds about
/// 10,000 rows of 8192 text tokens or ~400 rows of image-heavy sequences.
pub const DEFAULT_TARGET_SHARD_BYTES: u64 = 256 << 20;

/// Writes a stage's rows into consecutive shards. See the module documentation.
#[derive(Debug)]
pub struct ShardSetWriter {
    dir: PathBuf,
    /// Metadata of the next shard to open (its `shard_index` advances).
    next: ShardMeta,
    options: ShardOptions,
    target_bytes: u64,
    current: Option<ShardWriter>,
    shards: Vec<ShardInfo>,
}

impl ShardSetWriter {
    /// Starts a set in `dir`; the first shard gets `first.shard_index` (0 for a fresh stage). The
    /// options are checked now; no file is created before the first row.
    pub fn try_new(
        dir: impl AsRef<Path>,
        first: ShardMeta,
        options: ShardOptions,
    ) -> Result<Self, WriteError> {
        options.check(&first)?;
        Ok(Self {
            dir: dir.as_ref().to_path_buf(),
            next: first,
            options,
            target_bytes: DEFAULT_TARGET_SHARD_BYTES,
            current: None,
            shards: Vec::new(),
        })
    }

    /// Closes each shard once its estimated size reaches `bytes`.
    pub fn with_target_shard_bytes(mut self, bytes: u64) -> Self {
        self.target_bytes = bytes;
        self
    }

    pub fn target_shard_bytes(&self) -> u64 {
        self.target_bytes
    }

    /// Shards published so far.
    pub fn shards(&self) -> &[ShardInfo] {
        &self.shards
    }

    /// Appends one row, publishing the current shard when it reaches the target size. An invalid
    /// row is refused (see [`ShardWriter::write`]) and changes nothing.
    pub fn write(&mut self, row: PackedRow) -> Result<(), WriteError> {
        let current = match &mut self.current {
            Some(current) => current,
            empty => {
                let writer =
                    ShardWriter::try_new(&self.dir, self.next.clone(), self.options.clone())?;
                self.next.shard_index += 1;
                empty.insert(writer)
            }
        };
        current.write(row)?;
        if current.estimated_bytes() >= self.target_bytes {
            self.publish_current()?;
        }
        Ok(())
    }

    fn publish_current(&mut self) -> Result<(), WriteError> {
        if let Some(writer) = self.current.take() {
            self.shards.push(writer.finish()?);
        }
        Ok(())
    }

    /// Publishes the last shard and returns every shard of the set, in index order. A set that
    /// received no row returns no shard and creates no file.
    pub fn finish(mut self) -> Result<Vec<ShardInfo>, WriteError> {
        self.publish_current()?;
        Ok(std::mem::take(&mut self.shards))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard_file::read_rows;
    use crate::testing::row_with_seed;

    fn meta() -> ShardMeta {
        ShardMeta {
            recipe_fingerprint: "fp".into(),
            stage: "multitask".into(),
            seq_len: 512,
            shard_index: 0,
        }
    }

    fn rows(n: usize) -> Vec<PackedRow> {
        (0..n)
            .map(|i| row_with_seed(&[(100 + i % 50, i % 2), (200, 1), (60, 0)], i as u64))
            .collect()
    }

    fn write_set(
        dir: &Path,
        target: u64,
        options: ShardOptions,
        rows: &[PackedRow],
    ) -> Vec<ShardInfo> {
        let mut set = ShardSetWriter::try_new(dir, meta(), options)
            .unwrap()
            .with_target_shard_bytes(target);
        for row in rows {
            set.write(row.clone()).unwrap();
        }
        set.finish().unwrap()
    }

    #[test]
    fn shards_rotate_at_the_target_size_and_keep_every_row_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let rows = rows(120);
        let target = 20_000;
        let shards = write_set(
            dir.path(),
            target,
            ShardOptions::default().with_max_rows_per_row_group(2),
            &rows,
        );
        assert!(shards.len() >= 4, "{} shards", shards.len());
        for (i, shard) in shards.iter().enumerate() {
            assert_eq!(shard.index, i as u32);
            assert_eq!(shard.file, format!("shard-{i:05}.parquet"));
            assert!(shard.rows > 0);
            // Every shard but the last closed near the target: the estimate overshoots only by the
            // raw size of the rows not yet encoded, and one row at most is added past it.
            if i + 1 < shards.len() {
                assert!(
                    shard.bytes >= target * 3 / 4,
                    "shard {i}: {} bytes",
                    shard.bytes
                );
            }
            assert!(
                shard.bytes < target * 3 / 2,
                "shard {i}: {} bytes",
                shard.bytes
            );
        }
        let read: Vec<PackedRow> = shards
            .iter()
            .flat_map(|s| read_rows(dir.path().join(&s.file)).unwrap())
            .collect();
        assert_eq!(read, rows);
    }

    #[test]
    fn a_stage_folder_round_trips_through_its_manifest() {
        use crate::{MANIFEST_FILE, Manifest};
        let dir = tempfile::tempdir().unwrap();
        let rows = rows(30);
        let shards = write_set(
            dir.path(),
            30_000,
            ShardOptions::default().with_max_rows_per_row_group(4),
            &rows,
        );
        let rejects = std::collections::BTreeMap::from([("too_long".to_string(), 1)]);
        let manifest = Manifest::new("multitask", 512, "fp", shards, rejects);
        manifest.write(dir.path().join(MANIFEST_FILE)).unwrap();

        let read = Manifest::read(dir.path().join(MANIFEST_FILE)).unwrap();
        assert_eq!(read, manifest);
        assert_eq!(read.totals.rows, 30);
        assert_eq!(read.totals.samples, 90);
        assert_eq!(
            read.totals.tokens,
            rows.iter().map(|r| r.len() as u64).sum::<u64>()
        );
        let mut back = Vec::new();
        for shard in &read.shards {
            let bytes = std::fs::read(dir.path().join(&shard.file)).unwrap();
            assert_eq!(
                shard.blake3,
                blake3::hash(&bytes).to_hex().to_string(),
                "{}",
                shard.file
            );
            assert_eq!(shard.bytes, bytes.len() as u64);
            back.extend(read_rows(dir.path().join(&shard.file)).unwrap());
        }
        assert_eq!(back, rows);
    }

    #[test]
    fn rotation_depends_only_on_the_rows() {
        let rows = rows(80);
        let options = ShardOptions::default().with_max_rows_per_row_group(5);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = write_set(a.path(), 15_000, options.clone(), &rows);
        let second = write_set(b.path(), 15_000, options, &rows);
        assert!(first.len() > 1);
        assert_eq!(first, second);
    }

    #[test]
    fn a_target_of_zero_bytes_puts_each_row_in_its_own_shard() {
        let dir = tempfile::tempdir().unwrap();
        let shards = write_set(dir.path(), 0, ShardOptions::default(), &rows(3));
        assert_eq!(shards.iter().map(|s| s.rows).collect::<Vec<_>>(), [1, 1, 1]);
    }

    #[test]
    fn a_set_without_rows_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_set(dir.path(), 1000, ShardOptions::default(), &[]).is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn numbering_starts_at_the_first_shard_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = ShardSetWriter::try_new(
            dir.path(),
            ShardMeta {
                shard_index: 7,
                ..meta()
            },
            ShardOptions::default(),
        )
        .unwrap()
        .with_target_shard_bytes(0);
        for row in rows(2) {
            set.write(row).unwrap();
        }
        let files: Vec<String> = set.finish().unwrap().into_iter().map(|s| s.file).collect();
        assert_eq!(files, ["shard-00007.parquet", "shard-00008.parquet"]);
    }

    #[test]
    fn dropping_a_set_keeps_published_shards_and_removes_the_unfinished_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = ShardSetWriter::try_new(
            dir.path(),
            meta(),
            ShardOptions::default().with_max_rows_per_row_group(1),
        )
        .unwrap()
        .with_target_shard_bytes(3_000);
        for row in rows(10) {
            set.write(row).unwrap();
        }
        let published = set.shards().len();
        assert!(published >= 1);
        drop(set);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let expected: Vec<String> = (0..published)
            .map(|i| format!("shard-{i:05}.parquet"))
            .collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn bad_options_are_refused_when_the_set_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let err = ShardSetWriter::try_new(
            dir.path(),
            meta(),
            ShardOptions::default().with_zstd_level(100),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            WriteError::InvalidOption {
                option: "zstd_level",
                ..
            }
        ));
    }
}
