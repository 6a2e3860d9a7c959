//! Where every file of a build output lives, and how a folder is recognised as one.
//!
//! A build output (the `--out` of `mixtape build`, the *build root*) is laid out so that each stage
//! folder is a plain Parquet dataset, readable by pyarrow, HF `datasets`, DuckDB and polars without
//! a glob:
//!
//! ```text
//! OUT/
//!   README.md                       dataset card: one HF `datasets` config per stage
//!   <stage>/shard-NNNNN.parquet     the shards, and nothing else
//!   _mixtape/build.json             whose build this is (BuildRecord)
//!   _mixtape/rejects.jsonl          records no stage could read
//!   _mixtape/<stage>/manifest.json  the stage's manifest
//!   _mixtape/<stage>/rejects.jsonl  drawn records the stage could not use
//!   _mixtape/<stage>/shard-NNNNN.done.json   a finished shard's sidecar
//! ```
//!
//! Everything mixtape keeps for itself sits under `_mixtape/`: Parquet tools skip names starting
//! with `_` or `.` when they list a folder, and a stage folder holds only shards, so `OUT/<stage>`
//! reads as a dataset whatever the tool, even while a build runs: a shard is written as a hidden
//! temporary in `_mixtape/<stage>/` (DuckDB and polars would try to read one in the stage folder)
//! and renamed into the stage folder when complete, so a published shard is always whole.
//!
//! This module owns every path and name of that layout ([`BuildLayout`], [`StageLayout`], the
//! shard and sidecar names) and the discovery of stages ([`discover`]): the builder, `verify`,
//! `audit`, `stream`, `inspect` and the trainer all go through it, so they cannot disagree on
//! which file is what. Stages of a build root come in the order its `build.json` records (the
//! recipe's order); without a valid record, in name order.
//!
//! A folder in the layout mixtape wrote before this one (`build.json` and `manifest.json` beside
//! the shards) is refused with [`LayoutError::OldLayout`] rather than half-read.

use std::path::{Path, PathBuf};

use crate::build_record::{BuildRecord, BuildRecordError};

/// The folder under a build root that holds everything of mixtape's except the shards.
pub const MIXTAPE_DIR: &str = "_mixtape";
/// The build record's file name, in [`MIXTAPE_DIR`].
pub const BUILD_RECORD_FILE: &str = "build.json";
/// A stage manifest's file name, in the stage's folder under [`MIXTAPE_DIR`].
pub const MANIFEST_FILE: &str = "manifest.json";
/// Rejected records, one JSON object a line: the build's unreadable records in [`MIXTAPE_DIR`], a
/// stage's rejected draws in its folder there.
pub const REJECTS_FILE: &str = "rejects.jsonl";
/// The dataset card at the build root: YAML front matter naming one HF `datasets` config per stage.
pub const DATASET_CARD_FILE: &str = "README.md";

/// Name of shard `index` in its stage folder. Five digits keep names sorted for up to 100,000
/// shards (25 TB at the default shard size); beyond, names simply grow a digit.
pub fn shard_file_name(index: u32) -> String {
    format!("shard-{index:05}.parquet")
}

/// The index of a shard file name: `shard-` + at least five digits + `.parquet`, exactly what
/// [`shard_file_name`] writes. Any other name (a temporary, `shard-1.parquet`) is not a shard.
pub fn shard_index(name: &str) -> Option<u32> {
    index_between(name, "shard-", ".parquet")
}

/// Name of shard `index`'s sidecar, in the stage's folder under [`MIXTAPE_DIR`].
pub fn sidecar_file_name(index: u32) -> String {
    format!("shard-{index:05}.done.json")
}

/// The index of a sidecar file name (see [`sidecar_file_name`]).
pub fn sidecar_index(name: &str) -> Option<u32> {
    index_between(name, "shard-", ".done.json")
}

fn index_between(name: &str, prefix: &str, suffix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (digits.len() >= 5 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The paths of one build root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildLayout {
    root: PathBuf,
}

impl BuildLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The build root (`--out`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ROOT/_mixtape`.
    pub fn mixtape_dir(&self) -> PathBuf {
        self.root.join(MIXTAPE_DIR)
    }

    /// `ROOT/_mixtape/build.json`.
    pub fn build_record(&self) -> PathBuf {
        self.mixtape_dir().join(BUILD_RECORD_FILE)
    }

    /// `ROOT/_mixtape/rejects.jsonl`: records no stage could read.
    pub fn unreadable_rejects(&self) -> PathBuf {
        self.mixtape_dir().join(REJECTS_FILE)
    }

    /// `ROOT/README.md`: the dataset card.
    pub fn dataset_card(&self) -> PathBuf {
        self.root.join(DATASET_CARD_FILE)
    }

    /// Stage `name` of this build.
    pub fn stage(&self, name: &str) -> StageLayout {
        StageLayout {
            dir: self.root.join(name),
            root: self.root.clone(),
            name: name.to_string(),
        }
    }

    /// Whether the root holds mixtape's folder (a build in this layout, finished or not).
    pub fn exists(&self) -> bool {
        mixtape_store::is_dir(&self.mixtape_dir())
    }

    /// A file that only the layout before `_mixtape/` put in a build root: `ROOT/build.json`, or
    /// `ROOT/<stage>/manifest.json` (a stage folder holding its manifest).
    pub fn old_layout_file(&self) -> Option<PathBuf> {
        if self.exists() {
            return None;
        }
        let top = Some(self.root.join(BUILD_RECORD_FILE)).filter(|p| mixtape_store::is_file(p));
        top.or_else(|| {
            let mut nested: Vec<PathBuf> = mixtape_store::list(&self.root)
                .ok()?
                .into_iter()
                .filter(|e| e.size.is_none())
                .map(|e| self.root.join(e.name).join(MANIFEST_FILE))
                .filter(|p| mixtape_store::is_file(p))
                .collect();
            nested.sort();
            nested.into_iter().next()
        })
    }
}

/// The paths of one stage: its folder of shards, and its folder under [`MIXTAPE_DIR`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageLayout {
    /// The stage folder as the caller named it (kept for messages).
    dir: PathBuf,
    root: PathBuf,
    name: String,
}

impl StageLayout {
    /// The stage whose folder is `dir`: its build root is the parent folder, its name the folder's.
    /// A path without a final name (`.`, `..`) is resolved first.
    pub fn of_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        let split = |p: &Path| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some((p.parent()?.to_path_buf(), name))
        };
        let (root, name) = split(dir)
            .or_else(|| split(&dir.canonicalize().ok()?))
            .unwrap_or_else(|| (dir.to_path_buf(), String::new()));
        Self {
            dir: dir.to_path_buf(),
            root,
            name,
        }
    }

    /// The stage name (its folder's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stage folder: shards only.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The build this stage belongs to.
    pub fn build(&self) -> BuildLayout {
        BuildLayout::new(self.root.clone())
    }

    /// `ROOT/_mixtape/<stage>`: the manifest, rejects and sidecars.
    pub fn meta_dir(&self) -> PathBuf {
        self.root.join(MIXTAPE_DIR).join(&self.name)
    }

    /// `ROOT/_mixtape/<stage>/manifest.json`.
    pub fn manifest(&self) -> PathBuf {
        self.meta_dir().join(MANIFEST_FILE)
    }

    /// `ROOT/_mixtape/<stage>/rejects.jsonl`.
    pub fn rejects(&self) -> PathBuf {
        self.meta_dir().join(REJECTS_FILE)
    }

    /// `ROOT/<stage>/shard-NNNNN.parquet`.
    pub fn shard(&self, index: u32) -> PathBuf {
        self.dir.join(shard_file_name(index))
    }

    /// `ROOT/_mixtape/<stage>/shard-NNNNN.done.json`.
    pub fn sidecar(&self, index: u32) -> PathBuf {
        self.meta_dir().join(sidecar_file_name(index))
    }

    /// The shards in the stage folder, by index (names that are not [`shard_index`]es are skipped);
    /// a missing folder has none.
    pub fn list_shards(&self) -> std::io::Result<Vec<(u32, PathBuf)>> {
        let mut shards = Vec::new();
        let entries = match mixtape_store::list(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(shards),
            other => other?,
        };
        for entry in entries {
            if let Some(index) = shard_index(&entry.name) {
                shards.push((index, self.dir.join(&entry.name)));
            }
        }
        shards.sort();
        Ok(shards)
    }

    /// Whether anything of this stage exists: its folder under `_mixtape/`, or a shard.
    pub fn exists(&self) -> bool {
        mixtape_store::is_dir(&self.meta_dir()) || self.list_shards().is_ok_and(|s| !s.is_empty())
    }
}

/// What a folder given on the command line is. Exhaustive on purpose: a caller handles both.
#[derive(Debug)]
pub enum Discovered {
    /// A build root: `_mixtape/` is in it.
    Build {
        build: BuildLayout,
        /// `_mixtape/build.json`, read and checked.
        record: Result<BuildRecord, BuildRecordError>,
        /// Stages that exist (see [`StageLayout::exists`]): those the record lists, in its order,
        /// then any other, by name. Without a valid record, all of them by name.
        stages: Vec<StageLayout>,
    },
    /// One stage folder: its parent's `_mixtape/` knows it, or it holds shards.
    Stage(StageLayout),
}

/// Why a folder is not a shard set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    #[error("{} does not exist or is not a folder", path.display())]
    NotFound { path: PathBuf },
    #[error("cannot list {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is a build in mixtape's old layout ({} beside the shards); this mixtape keeps its files in {MIXTAPE_DIR}/ so that stage folders are plain Parquet datasets: rebuild it with `mixtape build RECIPE --out {} --rebuild`",
        root.display(), file.display(), root.display()
    )]
    OldLayout { root: PathBuf, file: PathBuf },
    #[error(
        "{} is not a shard set: it has no {MIXTAPE_DIR}/ folder and no shard-*.parquet (pass a build output folder, the --out of `mixtape build`, or one of its stage folders)",
        path.display()
    )]
    NotAShardSet { path: PathBuf },
    #[error(
        "{} holds no built stage yet: run `mixtape build RECIPE --out {}` first",
        path.display(), path.display()
    )]
    NoStageBuilt { path: PathBuf },
}

/// The stage folders a reader reads for `paths`: each is a stage folder, or a build output, which
/// stands for all its stages in recipe order (the order its `_mixtape/build.json` records).
pub fn stages_to_read(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LayoutError> {
    let mut dirs = Vec::new();
    for path in paths {
        match discover(path)? {
            Discovered::Stage(stage) => dirs.push(stage.dir().to_path_buf()),
            Discovered::Build { stages, .. } if stages.is_empty() => {
                return Err(LayoutError::NoStageBuilt { path: path.clone() });
            }
            Discovered::Build { stages, .. } => {
                dirs.extend(stages.iter().map(|s| s.dir().to_path_buf()))
            }
        }
    }
    Ok(dirs)
}

/// Recognises `dir`: a build root, or a stage folder of one. An old-layout build (or stage of one)
/// is refused with the fix.
pub fn discover(dir: impl AsRef<Path>) -> Result<Discovered, LayoutError> {
    let dir = dir.as_ref();
    if !mixtape_store::is_dir(dir) {
        return Err(LayoutError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let build = BuildLayout::new(dir);
    if build.exists() {
        let record = BuildRecord::read(build.build_record());
        let stages = build_stages(&build, record.as_ref().ok())?;
        return Ok(Discovered::Build {
            build,
            record,
            stages,
        });
    }
    let stage = StageLayout::of_dir(dir);
    let old_manifest = dir.join(MANIFEST_FILE);
    if mixtape_store::is_file(&old_manifest) {
        // A stage folder of the old layout: the build to redo is its parent.
        let root = stage.build().root().to_path_buf();
        return Err(LayoutError::OldLayout {
            root: if root.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                root
            },
            file: old_manifest,
        });
    }
    if let Some(file) = build.old_layout_file() {
        return Err(LayoutError::OldLayout {
            root: dir.to_path_buf(),
            file,
        });
    }
    if stage.exists() {
        return Ok(Discovered::Stage(stage));
    }
    Err(LayoutError::NotAShardSet {
        path: dir.to_path_buf(),
    })
}

/// The stages of a build root: the record's, in its order, then the others by name.
fn build_stages(
    build: &BuildLayout,
    record: Option<&BuildRecord>,
) -> Result<Vec<StageLayout>, LayoutError> {
    let mut names = Vec::new();
    for listed in [build.root().to_path_buf(), build.mixtape_dir()] {
        let io = |source| LayoutError::Io {
            path: listed.clone(),
            source,
        };
        for entry in mixtape_store::list(&listed).map_err(io)? {
            let name = entry.name;
            let plain = !name.starts_with('.') && !name.starts_with('_');
            if plain && entry.size.is_none() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort();
    let recorded = record.map(|r| r.stages.as_slice()).unwrap_or_default();
    let mut ordered: Vec<&String> = recorded.iter().collect();
    ordered.extend(names.iter().filter(|n| !recorded.contains(*n)));
    Ok(ordered
        .into_iter()
        .map(|name| build.stage(name))
        .filter(StageLayout::exists)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_and_sidecar_names_round_trip_and_nothing_else_parses() {
        for index in [0, 7, 99_999, 100_000] {
            assert_eq!(shard_index(&shard_file_name(index)), Some(index));
            assert_eq!(sidecar_index(&sidecar_file_name(index)), Some(index));
        }
        assert_eq!(shard_file_name(12), "shard-00012.parquet");
        assert_eq!(sidecar_file_name(12), "shard-00012.done.json");
        for name in [
            "shard-1.parquet",
            "shard-0001x.parquet",
            "shard-.parquet",
            ".shard-00001.parquet.tmp",
            "shard-00001.parquet.tmp",
            "shard-00001.done.json",
            "manifest.json",
        ] {
            assert_eq!(shard_index(name), None, "{name}");
        }
        assert_eq!(sidecar_index("shard-00001.parquet"), None);
    }

    #[test]
    fn a_stage_keeps_its_shards_in_its_folder_and_the_rest_under_mixtape() {
        let stage = BuildLayout::new("out").stage("sft");
        assert_eq!(stage.dir(), Path::new("out/sft"));
        assert_eq!(stage.shard(3), Path::new("out/sft/shard-00003.parquet"));
        assert_eq!(
            stage.manifest(),
            Path::new("out/_mixtape/sft/manifest.json")
        );
        assert_eq!(stage.rejects(), Path::new("out/_mixtape/sft/rejects.jsonl"));
        assert_eq!(
            stage.sidecar(3),
            Path::new("out/_mixtape/sft/shard-00003.done.json")
        );
        assert_eq!(
            stage.build().build_record(),
            Path::new("out/_mixtape/build.json")
        );
        assert_eq!(StageLayout::of_dir("out/sft"), stage);
        assert_eq!(
            StageLayout::of_dir("sft").manifest(),
            Path::new("_mixtape/sft/manifest.json")
        );
    }

    fn record(stages: &[&str]) -> BuildRecord {
        BuildRecord::new(
            "r",
            "fp",
            "enc",
            stages.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn names(found: &Discovered) -> Vec<&str> {
        match found {
            Discovered::Build { stages, .. } => stages.iter().map(|s| s.name()).collect(),
            Discovered::Stage(stage) => vec![stage.name()],
        }
    }

    #[test]
    fn a_build_root_lists_its_stages_in_recipe_order_then_unknown_ones_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let build = BuildLayout::new(dir.path());
        for name in ["zeta", "alpha", "extra"] {
            std::fs::create_dir_all(build.stage(name).dir()).unwrap();
            std::fs::create_dir_all(build.stage(name).meta_dir()).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("notes")).unwrap();
        record(&["zeta", "alpha", "never-built"])
            .write(build.build_record())
            .unwrap();
        let found = discover(dir.path()).unwrap();
        assert_eq!(names(&found), ["zeta", "alpha", "extra"]);

        std::fs::remove_file(build.build_record()).unwrap();
        let found = discover(dir.path()).unwrap();
        assert!(matches!(
            &found,
            Discovered::Build {
                record: Err(BuildRecordError::Missing { .. }),
                ..
            }
        ));
        assert_eq!(names(&found), ["alpha", "extra", "zeta"]);

        let found = discover(dir.path().join("zeta")).unwrap();
        assert_eq!(names(&found), ["zeta"]);
        assert!(matches!(found, Discovered::Stage(_)));
    }

    #[test]
    fn an_old_layout_build_or_stage_is_refused_with_the_rebuild_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sft")).unwrap();
        std::fs::write(dir.path().join("sft/manifest.json"), "{}").unwrap();
        std::fs::write(dir.path().join("sft/shard-00000.parquet"), "").unwrap();
        for path in [dir.path().to_path_buf(), dir.path().join("sft")] {
            let err = discover(&path).unwrap_err();
            assert!(matches!(err, LayoutError::OldLayout { .. }), "{err}");
            assert!(err.to_string().contains("--rebuild"), "{err}");
        }
    }

    #[test]
    fn a_folder_without_shards_or_mixtape_files_is_no_shard_set() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "").unwrap();
        let err = discover(dir.path()).unwrap_err();
        assert!(matches!(err, LayoutError::NotAShardSet { .. }), "{err}");
    }
}
