//! What an audit can find wrong, each finding naming the file (and shard, field or category) at
//! fault and the fix.
//!
//! Findings are data, not errors: an audit collects all of them and still reports every figure it
//! could compute, so one damaged shard does not hide the mix of the rest. The binary turns "any
//! finding" into exit status 1. Each variant serializes with a `kind` tag for `--json`, and
//! `Display` gives the one-line message the table and the HTML report print.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::recipe::Basis;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// A category's realized share is further from the recipe's than the tolerance.
    MixDeviation {
        stage: String,
        category: String,
        basis: Basis,
        target_share: f64,
        realized_share: f64,
        deviation_pp: f64,
        tolerance_pp: f64,
    },
    /// Shards (or a manifest, or `build.json`) carry another recipe fingerprint than the one given.
    FingerprintMismatch {
        file: PathBuf,
        found: String,
        expected: String,
    },
    /// The manifest says one thing, the shards hold another.
    ManifestMismatch {
        manifest: PathBuf,
        field: String,
        manifest_value: String,
        recounted: String,
    },
    /// A shard's footer disagrees with its manifest or its file name.
    ShardMetaMismatch {
        file: PathBuf,
        key: String,
        found: String,
        expected: String,
    },
    ManifestMissing {
        manifest: PathBuf,
    },
    /// The build output's `build.json` is missing, unparseable or edited: nothing proves which
    /// recipe its shards belong to.
    BuildRecordUnreadable {
        file: PathBuf,
        error: String,
    },
    ManifestUnreadable {
        manifest: PathBuf,
        error: String,
    },
    ShardUnreadable {
        file: PathBuf,
        error: String,
    },
    /// Listed in the manifest, absent from the folder.
    ShardMissing {
        file: PathBuf,
    },
    /// In the folder, not listed in the manifest.
    ShardUnlisted {
        file: PathBuf,
    },
    RejectsUnreadable {
        file: PathBuf,
        error: String,
    },
    /// A stage of the recipe has no folder in the build output.
    StageNotBuilt {
        stage: String,
        dir: PathBuf,
    },
    /// A stage folder whose stage the recipe does not have.
    StageNotInRecipe {
        stage: String,
        dir: PathBuf,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MixDeviation {
                stage,
                category,
                basis,
                target_share,
                realized_share,
                deviation_pp,
                tolerance_pp,
            } => write!(
                f,
                "stage {stage}: category `{category}` is {:.2}% of {} but the recipe asks for {:.2}% ({deviation_pp:+.2} pp, tolerance {tolerance_pp} pp): rebuild the stage from this recipe, or check which sources fell short",
                100.0 * realized_share,
                basis.noun(),
                100.0 * target_share
            ),
            Problem::FingerprintMismatch {
                file,
                found,
                expected,
            } => write!(
                f,
                "{}: built from recipe fingerprint {} but the recipe given has {}: these shards were built from another recipe (or its data changed); rebuild with `mixtape build`, or audit against the recipe or lock they came from",
                file.display(),
                short(found),
                short(expected)
            ),
            Problem::ManifestMismatch {
                manifest,
                field,
                manifest_value,
                recounted,
            } => write!(
                f,
                "{}: `{field}` says {manifest_value} but the shards hold {recounted}: a shard or the manifest was changed after the build; delete the stage folder and rebuild it",
                manifest.display()
            ),
            Problem::ShardMetaMismatch {
                file,
                key,
                found,
                expected,
            } => write!(
                f,
                "{}: footer `{key}` is {found} but {expected} was expected: the shard belongs to another stage or build; delete the stage folder and rebuild it",
                file.display()
            ),
            Problem::ManifestMissing { manifest } => write!(
                f,
                "{} is missing: the stage was not finished; run `mixtape build` again to complete it",
                manifest.display()
            ),
            Problem::BuildRecordUnreadable { file, error } => write!(
                f,
                "{} cannot be trusted ({error}): nothing proves which recipe this folder's shards were built from, and `mixtape build` refuses to resume it; rebuild with `mixtape build RECIPE --out DIR --rebuild`",
                file.display()
            ),
            Problem::ManifestUnreadable { manifest, error } => {
                write!(
                    f,
                    "{} cannot be read ({error}): delete it and rerun `mixtape build` to rewrite it",
                    manifest.display()
                )
            }
            Problem::ShardUnreadable { file, error } => write!(
                f,
                "{} cannot be read whole, its figures are partial: {error}",
                file.display()
            ),
            Problem::ShardMissing { file } => write!(
                f,
                "{} is listed in the manifest but missing: delete the stage folder and rebuild it",
                file.display()
            ),
            Problem::ShardUnlisted { file } => write!(
                f,
                "{} is not listed in the manifest (a leftover of another build?): delete it, or rebuild the stage",
                file.display()
            ),
            Problem::RejectsUnreadable { file, error } => {
                write!(
                    f,
                    "{} cannot be read ({error}): rebuild the stage to rewrite it",
                    file.display()
                )
            }
            Problem::StageNotBuilt { stage, dir } => write!(
                f,
                "stage {stage} of the recipe has no folder {}: run `mixtape build` to build it",
                dir.display()
            ),
            Problem::StageNotInRecipe { stage, dir } => write!(
                f,
                "{} holds stage {stage}, which the recipe does not have: audit against the recipe it was built from",
                dir.display()
            ),
        }
    }
}

/// The first 12 hex digits, as `plan` prints fingerprints.
fn short(fingerprint: &str) -> &str {
    fingerprint.get(..12).unwrap_or(fingerprint)
}
