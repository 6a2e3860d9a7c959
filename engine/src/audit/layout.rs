//! Finding the stages of an audit: `DIR` is a stage folder (it holds `manifest.json` or shards) or
//! a whole build output (its subfolders are stage folders; `build.json` and the top-level
//! `rejects.jsonl` sit beside them).
//!
//! Shards are found by listing the folder (`shard-*.parquet`, hidden temporaries skipped), not by
//! reading the manifest, so a shard the manifest forgot is still counted and reported. A stage is
//! named by its manifest, else by its first shard's footer, else by its folder.

use std::path::{Path, PathBuf};

use mixtape_shards::{BUILD_RECORD_FILE, BuildRecord, MANIFEST_FILE, Manifest, ShardFile};

use super::{AuditError, Problem};
use crate::plan::Plan;
/// Records no stage could use, one JSON object a line (top level and per stage).
pub const REJECTS_FILE: &str = "rejects.jsonl";

/// One stage folder.
#[derive(Debug)]
pub struct StageDir {
    pub name: String,
    pub path: PathBuf,
    /// `path/manifest.json`, read; `Err` holds why it could not be (`None` in the error: absent).
    pub manifest: Result<Manifest, Option<String>>,
    /// `shard-*.parquet` files, sorted by name.
    pub shards: Vec<PathBuf>,
}

impl StageDir {
    pub fn manifest_path(&self) -> PathBuf {
        self.path.join(MANIFEST_FILE)
    }
}

/// Everything under the audited folder.
#[derive(Debug)]
pub struct Found {
    pub whole_build: bool,
    pub stages: Vec<StageDir>,
    /// `build.json` and the fingerprint in it, when the record is valid.
    pub build_fingerprint: Option<(PathBuf, String)>,
    /// The stages `build.json` lists (empty when it is not valid).
    pub build_stages: Vec<String>,
    /// Why `build.json` cannot be trusted (missing, unparseable, edited), for a whole build.
    pub build_record_problem: Option<Problem>,
    /// The top-level `rejects.jsonl`, if present.
    pub unreadable: Option<PathBuf>,
}

pub fn discover(dir: &Path) -> Result<Found, AuditError> {
    if !dir.is_dir() {
        return Err(AuditError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    if let Some(stage) = stage_dir(dir)? {
        return Ok(Found {
            whole_build: false,
            stages: vec![stage],
            build_fingerprint: None,
            build_stages: Vec::new(),
            build_record_problem: None,
            unreadable: None,
        });
    }
    let mut stages = Vec::new();
    for path in list(dir)? {
        if path.is_dir() {
            stages.extend(stage_dir(&path)?);
        }
    }
    if stages.is_empty() {
        return Err(AuditError::NotAShardSet {
            path: dir.to_path_buf(),
        });
    }
    let state = dir.join(BUILD_RECORD_FILE);
    let (build_fingerprint, build_stages, build_record_problem) = match BuildRecord::read(&state) {
        Ok(record) => (Some((state, record.fingerprint)), record.stages, None),
        Err(e) => (
            None,
            Vec::new(),
            Some(Problem::BuildRecordUnreadable {
                file: state,
                error: e.to_string(),
            }),
        ),
    };
    let unreadable = Some(dir.join(REJECTS_FILE)).filter(|p| p.is_file());
    Ok(Found {
        whole_build: true,
        stages,
        build_fingerprint,
        build_stages,
        build_record_problem,
        unreadable,
    })
}

/// Stages in the plan's order, then the ones it does not name, by name.
pub fn ordered<'a>(stages: &'a [StageDir], plan: Option<&Plan>) -> Vec<&'a StageDir> {
    let rank = |s: &StageDir| {
        plan.and_then(|p| p.stages.iter().position(|ps| ps.name == s.name))
            .unwrap_or(usize::MAX)
    };
    let mut ordered: Vec<&StageDir> = stages.iter().collect();
    ordered.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.name.cmp(&b.name)));
    ordered
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let io = |source| AuditError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        paths.push(entry.map_err(io)?.path());
    }
    paths.sort();
    Ok(paths)
}

fn stage_dir(dir: &Path) -> Result<Option<StageDir>, AuditError> {
    let shards: Vec<PathBuf> = list(dir)?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".parquet"))
        })
        .collect();
    let manifest_path = dir.join(MANIFEST_FILE);
    if shards.is_empty() && !manifest_path.exists() {
        return Ok(None);
    }
    let manifest = if manifest_path.exists() {
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
            .unwrap_or_else(|| {
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
    };
    Ok(Some(StageDir {
        name,
        path: dir.to_path_buf(),
        manifest,
        shards,
    }))
}
