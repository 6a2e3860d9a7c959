//! Finding the stages of an audit: `DIR` is a stage folder or a whole build output, as
//! [`mixtape_shards::layout::discover`] decides (which also owns every path: manifests,
//! `build.json` and rejects live under the build's `_mixtape/` folder).
//!
//! Shards are found by listing the folder (`shard-*.parquet`, hidden temporaries skipped), not by
//! reading the manifest, so a shard the manifest forgot is still counted and reported. A stage is
//! named by its manifest, else by its first shard's footer, else by its folder.

use std::path::{Path, PathBuf};

use mixtape_shards::layout::{self, Discovered, LayoutError, StageLayout};
use mixtape_shards::{Manifest, ShardFile};

use super::AuditError;
use crate::plan::Plan;

/// One stage folder.
#[derive(Debug)]
pub struct StageDir {
    pub name: String,
    pub path: PathBuf,
    /// Where its manifest and rejects are.
    pub layout: StageLayout,
}

impl StageDir {
    pub fn manifest_path(&self) -> PathBuf {
        self.layout.manifest()
    }

    pub fn rejects_path(&self) -> PathBuf {
        self.layout.rejects()
    }
}

/// Everything under the audited folder.
#[derive(Debug)]
pub struct Found {
    pub whole_build: bool,
    /// In the order the build record lists them (the recipe's), then the others by name.
    pub stages: Vec<StageDir>,
    /// `build.json` and the fingerprint in it, when the record is valid.
    pub build_fingerprint: Option<(PathBuf, String)>,
    /// The build's `_mixtape/rejects.jsonl` (records no stage could read), if present.
    pub unreadable: Option<PathBuf>,
}

pub fn discover(dir: &Path) -> Result<Found, AuditError> {
    let (build, record, layouts) = match layout::discover(dir) {
        Ok(Discovered::Stage(stage)) => {
            return Ok(Found {
                whole_build: false,
                stages: vec![stage_dir(&stage)?],
                build_fingerprint: None,
                unreadable: None,
            });
        }
        Ok(Discovered::Build {
            build,
            record,
            stages,
        }) => (build, record, stages),
        Err(LayoutError::NotFound { path }) => return Err(AuditError::NotFound { path }),
        Err(LayoutError::NotAShardSet { path }) => return Err(AuditError::NotAShardSet { path }),
        Err(e) => return Err(AuditError::Layout(e)),
    };
    let stages = layouts
        .iter()
        .map(stage_dir)
        .collect::<Result<Vec<_>, _>>()?;
    // Why a record is not valid is `verify`'s finding; the audit needs only the fingerprint.
    let build_fingerprint = record
        .ok()
        .map(|record| (build.build_record(), record.fingerprint));
    let unreadable = Some(build.unreadable_rejects()).filter(|p| mixtape_store::is_file(p));
    Ok(Found {
        whole_build: true,
        stages,
        build_fingerprint,
        unreadable,
    })
}

/// Stages in the plan's order, then the ones it does not name, in the order found.
pub fn ordered<'a>(stages: &'a [StageDir], plan: Option<&Plan>) -> Vec<&'a StageDir> {
    let rank = |s: &StageDir| {
        plan.and_then(|p| p.stages.iter().position(|ps| ps.name == s.name))
            .unwrap_or(usize::MAX)
    };
    let mut ordered: Vec<&StageDir> = stages.iter().collect();
    ordered.sort_by_key(|s| rank(s));
    ordered
}

fn stage_dir(stage: &StageLayout) -> Result<StageDir, AuditError> {
    let shards: Vec<PathBuf> = stage
        .list_shards()
        .map_err(|source| AuditError::Io {
            path: stage.dir().to_path_buf(),
            source,
        })?
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    let manifest_path = stage.manifest();
    let manifest = if mixtape_store::is_file(&manifest_path) {
        Manifest::read(&manifest_path).map_err(|e| Some(e.to_string()))
    } else {
        Err(None)
    };
    let name = match &manifest {
        Ok(m) => m.stage.clone(),
        Err(_) => shards
            .first()
            .and_then(|s| ShardFile::open(s).ok())
            .map(|s| s.meta().stage.clone())
            .unwrap_or_else(|| stage.name().to_string()),
    };
    Ok(StageDir {
        name,
        path: stage.dir().to_path_buf(),
        layout: stage.clone(),
    })
}
