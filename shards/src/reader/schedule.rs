//! The stages a reader reads, in schedule order, from their manifests alone.
//!
//! Opening a schedule reads one `manifest.json` per stage (`_mixtape/<stage>/manifest.json` beside
//! the stage folder, [`crate::layout`]) and nothing else: shard footers are read
//! later, when the order first reaches a shard. That keeps the time to the first batch independent
//! of the number of shards (start-up is one JSON parse of the manifest).

use std::path::PathBuf;

use crate::{Manifest, StageLayout};

use super::ReaderError;

/// One stage folder and its manifest.
#[derive(Debug)]
pub struct Stage {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Rows per shard, in manifest order.
    pub shard_rows: Vec<u64>,
}

impl Stage {
    pub fn name(&self) -> &str {
        &self.manifest.stage
    }

    pub fn shard_path(&self, shard: u32) -> PathBuf {
        self.dir.join(&self.manifest.shards[shard as usize].file)
    }
}

/// Every stage, in order.
#[derive(Debug)]
pub struct Schedule {
    pub stages: Vec<Stage>,
    /// See [`super::ReaderState::schedule`].
    pub fingerprint: String,
}

impl Schedule {
    pub fn open(dirs: &[PathBuf]) -> Result<Self, ReaderError> {
        if dirs.is_empty() {
            return Err(ReaderError::NoStages);
        }
        let mut hasher = blake3::Hasher::new();
        let mut stages = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let manifest = Manifest::read(StageLayout::of_dir(dir).manifest())?;
            for part in [
                manifest.stage.as_str(),
                manifest.recipe_fingerprint.as_str(),
            ] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
            hasher.update(&(manifest.shards.len() as u64).to_le_bytes());
            for shard in &manifest.shards {
                hasher.update(&shard.rows.to_le_bytes());
                hasher.update(shard.blake3.as_bytes());
            }
            let shard_rows = manifest.shards.iter().map(|s| s.rows).collect();
            stages.push(Stage {
                dir: dir.clone(),
                manifest,
                shard_rows,
            });
        }
        let fingerprint = hasher.finalize().to_hex()[..16].to_string();
        Ok(Self {
            stages,
            fingerprint,
        })
    }
}
