//! How a command that fails says so: the exit code, the text on stderr, the JSON on stdout.
//!
//! Exit codes: 0 success; 1 the command ran and found problems ([`PROBLEMS`]); 2 it could not run
//! ([`COULD_NOT_RUN`]: bad arguments, an input that is missing or unreadable, a write error).
//!
//! Errors are always printed on stderr as `error: ...` with `  caused by: ...` lines. Under `--json`
//! every command also prints exactly one [`ErrorDoc`] on stdout, so a script that parses stdout
//! gets JSON whether the command succeeded or not:
//!
//! ```json
//! {"error": {"message": "...", "location": "recipe.yaml:15:25", "causes": [], "diagnostics": []}, "exit_code": 1}
//! ```
//!
//! `location` is where to look (a `file:line:col`, or the path of the input at fault), `null` when
//! no one place is to blame; `diagnostics` lists a recipe's located problems, each as `check --json`
//! prints it. Every key is always present, so the shape does not depend on the error.

use std::fmt;
use std::path::{Path, PathBuf};

use mixtape_engine::diag::{Diagnostic, Severity, SourceMap};
use serde::Serialize;

/// Exit code for "ran fine, found problems".
pub const PROBLEMS: u8 = 1;
/// Exit code for "could not run".
pub const COULD_NOT_RUN: u8 = 2;

/// The one JSON object a failed command prints on stdout under `--json`.
#[derive(Debug, Serialize)]
pub struct ErrorDoc {
    pub error: ErrorBody,
    pub exit_code: u8,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub message: String,
    pub location: Option<String>,
    pub causes: Vec<String>,
    pub diagnostics: Vec<serde_json::Value>,
}

impl ErrorDoc {
    /// A problem found by a command that ran (exit 1), with no single location.
    pub fn problem(message: impl Into<String>) -> Self {
        Self {
            error: ErrorBody {
                message: message.into(),
                location: None,
                causes: Vec::new(),
                diagnostics: Vec::new(),
            },
            exit_code: PROBLEMS,
        }
    }

    /// An error that stopped the command (exit 2): its message, causes and, when an input path is
    /// to blame, that path.
    pub fn could_not_run(err: &anyhow::Error) -> Self {
        let location = err
            .chain()
            .find_map(|e| e.downcast_ref::<UnreadableInput>())
            .map(|e| e.path.display().to_string());
        Self {
            error: ErrorBody {
                message: err.to_string(),
                location,
                causes: err.chain().skip(1).map(ToString::to_string).collect(),
                diagnostics: Vec::new(),
            },
            exit_code: COULD_NOT_RUN,
        }
    }

    /// An invalid recipe (exit 1): every error and warning, located at the first error.
    pub fn invalid_recipe(recipe: &Path, diagnostics: &[Diagnostic], files: &SourceMap) -> Self {
        let errors = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let location = diagnostics
            .iter()
            .find(|d| d.severity == Severity::Error)
            .and_then(|d| d.position(files));
        Self {
            error: ErrorBody {
                message: format!(
                    "{}: {errors} error{} in the recipe",
                    recipe.display(),
                    if errors == 1 { "" } else { "s" }
                ),
                location,
                causes: Vec::new(),
                diagnostics: diagnostics
                    .iter()
                    .map(|d| diagnostic_json(d, files))
                    .collect(),
            },
            exit_code: PROBLEMS,
        }
    }

    /// Prints the document on stdout, one line.
    pub fn print(&self) {
        // Plain strings and numbers: serializing cannot fail.
        println!("{}", serde_json::to_string(self).unwrap_or_default());
    }
}

/// A diagnostic as `check --json` prints it (without the recipe).
fn diagnostic_json(d: &Diagnostic, files: &SourceMap) -> serde_json::Value {
    serde_json::json!({
        "severity": d.severity.to_string(),
        "position": d.position(files),
        "message": d.message,
        "hint": d.hint,
    })
}

/// A path named on the command line that does not exist or cannot be read: the command cannot
/// run, whatever it is (exit 2).
#[derive(Debug)]
pub struct UnreadableInput {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl fmt::Display for UnreadableInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fix = if self.source.kind() == std::io::ErrorKind::NotFound {
            "check the path"
        } else {
            "check its permissions"
        };
        write!(
            f,
            "cannot read {}: {}; {fix}",
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for UnreadableInput {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Checks that `path` exists and can be opened (a file) or listed (a folder), before a command
/// starts reading it, so that a typo exits 2 with the path named whatever the command.
pub fn require_readable(path: &Path) -> Result<(), UnreadableInput> {
    if mixtape_store::is_url(path) {
        // An object, or a prefix with objects under it (a build or stage folder).
        let found = mixtape_store::exists(path).and_then(|found| {
            found.then_some(()).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no object or prefix of that name",
                )
            })
        });
        return found.map_err(|source| UnreadableInput {
            path: path.to_path_buf(),
            source,
        });
    }
    let opened = std::fs::metadata(path).and_then(|meta| {
        if meta.is_dir() {
            std::fs::read_dir(path).map(drop)
        } else {
            std::fs::File::open(path).map(drop)
        }
    });
    opened.map_err(|source| UnreadableInput {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether to colour output on a terminal: not when `NO_COLOR` is set to anything but the empty
/// string (<https://no-color.org>).
pub fn colour_allowed(no_color: Option<&std::ffi::OsStr>) -> bool {
    no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_set_to_anything_but_empty_turns_colour_off() {
        assert!(colour_allowed(None));
        assert!(colour_allowed(Some("".as_ref())));
        assert!(!colour_allowed(Some("1".as_ref())));
        assert!(!colour_allowed(Some("0".as_ref())));
    }

    #[test]
    fn a_missing_input_names_its_path_and_every_key_of_the_json_shape_is_present() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yaml");
        let err = anyhow::Error::new(require_readable(&missing).unwrap_err());
        let doc = serde_json::to_value(ErrorDoc::could_not_run(&err)).unwrap();
        assert_eq!(doc["exit_code"], 2);
        assert_eq!(doc["error"]["location"], missing.display().to_string());
        for key in ["message", "location", "causes", "diagnostics"] {
            assert!(doc["error"].get(key).is_some(), "{key}: {doc}");
        }
        assert!(require_readable(dir.path()).is_ok());
    }
}
