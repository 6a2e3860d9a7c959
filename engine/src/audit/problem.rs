//! What an audit can find wrong: every problem `verify` finds (the integrity of the shards against
//! their manifests, each with its fix), plus what only an audit can judge: the mix against the
//! recipe, the recipe fingerprint against the one given, and the rejects against `rejects.jsonl`.
//!
//! Findings are data, not errors: an audit collects all of them and still reports every figure it
//! could compute, so one damaged shard does not hide the mix of the rest. The binary turns "any
//! finding" into exit status 1. In `--json` each problem is an object with a `kind` tag: an
//! integrity problem is exactly the object `mixtape verify --json` prints for it. `Display` gives
//! the message the table and the HTML report print.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::recipe::Basis;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditProblem {
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
    RejectsUnreadable {
        file: PathBuf,
        error: String,
    },
    /// The manifest's rejects of one reason differ from the stage's `rejects.jsonl`.
    RejectsMismatch {
        manifest: PathBuf,
        reason: String,
        manifest_count: u64,
        rejects_file_count: u64,
    },
    /// A stage folder whose stage the recipe does not have.
    StageNotInRecipe {
        stage: String,
        dir: PathBuf,
    },
    /// What `mixtape verify` finds (serialized as `verify --json` does, with its own `kind`; the
    /// audit only serializes problems, so an untagged variant cannot make parsing ambiguous).
    #[serde(untagged)]
    Integrity(mixtape_shards::Problem),
}

impl fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditProblem::MixDeviation {
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
            AuditProblem::FingerprintMismatch {
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
            AuditProblem::RejectsUnreadable { file, error } => {
                write!(
                    f,
                    "{} cannot be read ({error}): rebuild the stage to rewrite it",
                    file.display()
                )
            }
            AuditProblem::RejectsMismatch {
                manifest,
                reason,
                manifest_count,
                rejects_file_count,
            } => write!(
                f,
                "{}: `rejects.{reason}` says {manifest_count} but rejects.jsonl beside it lists {rejects_file_count}: the manifest or rejects.jsonl was changed after the build; delete the stage folder and rebuild it",
                manifest.display()
            ),
            AuditProblem::StageNotInRecipe { stage, dir } => write!(
                f,
                "{} holds stage {stage}, which the recipe does not have: audit against the recipe it was built from",
                dir.display()
            ),
            AuditProblem::Integrity(problem) => write!(f, "{problem}"),
        }
    }
}

/// The first 12 hex digits, as `plan` prints fingerprints.
fn short(fingerprint: &str) -> &str {
    fingerprint.get(..12).unwrap_or(fingerprint)
}
