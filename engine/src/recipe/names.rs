//! Stage and source names: one safe character set, because names become file and folder names.
//!
//! A stage's shards are written to `<out>/<stage name>/`, and source names appear in manifests,
//! reports and sample keys. A name such as `../../x`, `/abs/path`, `..` or `build.json` would write
//! outside `--out` or over mixtape's own files, so `check` refuses it here, once, and every later
//! layer (planner, builder, audit) only ever sees names that passed.
//!
//! The rule: 1 to [`MAX_NAME_LEN`] characters from `A-Z a-z 0-9 . _ -`, starting with a letter or
//! digit (so never `.`, `..`, a hidden file or a leading `-` that reads as a flag), not ending in
//! `.json`, `.jsonl`, `.parquet` or `.md` (the kinds of file mixtape writes, such as `build.json`,
//! `rejects.jsonl` and the `README.md` dataset card beside the stage folders; compared without
//! case, for case-insensitive file systems), and
//! not a Windows device name (`con`, `nul`, `com1`, ...), so a shard set can be copied anywhere.

use crate::diag::{Diagnostic, Diagnostics, Span};

/// Longest stage or source name, in bytes (all allowed characters are ASCII).
pub const MAX_NAME_LEN: usize = 64;

/// Endings reserved for mixtape's own files (`.md`: the build's `README.md` dataset card).
const RESERVED_SUFFIXES: [&str; 4] = [".json", ".jsonl", ".parquet", ".md"];

/// Names Windows treats as devices whatever their extension.
const DEVICE_NAMES: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Why `name` is not a safe name, or `None` when it is.
pub fn problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "it is {} bytes long; the limit is {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        let shown = if c.is_control() || c.is_whitespace() {
            format!("{:?}", c)
        } else {
            format!("`{c}`")
        };
        return Some(format!("it contains {shown}"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("it does not start with a letter or digit".into());
    }
    let lower = name.to_ascii_lowercase();
    if let Some(suffix) = RESERVED_SUFFIXES.iter().find(|s| lower.ends_with(*s)) {
        return Some(format!(
            "names ending in `{suffix}` are reserved for mixtape's own files"
        ));
    }
    let stem = lower.split('.').next().unwrap_or("");
    if DEVICE_NAMES.contains(&stem) {
        return Some(format!("`{stem}` is a device name on Windows"));
    }
    None
}

/// Reports `name` at `span` if it is not safe; `what` is "stage" or "source". Returns whether it is.
pub fn check(name: &str, what: &str, span: Span, diags: &mut Diagnostics) -> bool {
    let Some(problem) = problem(name) else {
        return true;
    };
    let suggestion = suggest(name);
    let mut hint = format!(
        "{what} names become folder and file names: use 1 to {MAX_NAME_LEN} of `A-Z a-z 0-9 . _ -`, starting with a letter or digit"
    );
    if let Some(s) = suggestion.filter(|s| problem_free(s)) {
        hint.push_str(&format!(", such as `{s}`"));
    }
    diags.push(
        Diagnostic::error(
            span,
            format!(
                "{what} name `{}` is not allowed: {problem}",
                name.escape_debug()
            ),
        )
        .with_hint(hint),
    );
    false
}

fn problem_free(name: &str) -> bool {
    problem(name).is_none()
}

/// A safe name close to `name`: unsafe characters become `-`, leading separators are dropped.
fn suggest(name: &str) -> Option<String> {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(['.', '_', '-']);
    let mut out: String = trimmed.chars().take(MAX_NAME_LEN).collect();
    while out.ends_with(['.', '-']) {
        out.pop();
    }
    (!out.is_empty() && out != name).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for name in [
            "warmup",
            "multitask-4k",
            "sft_v2",
            "stage.1",
            "0",
            "llava-mini",
            &"a".repeat(MAX_NAME_LEN),
        ] {
            assert_eq!(problem(name), None, "{name}");
        }
    }

    #[test]
    fn names_that_escape_or_clobber_the_output_folder_are_refused() {
        for name in [
            "../../x",
            "/abs/path",
            ".",
            "..",
            "build.json",
            "rejects.jsonl",
            "MANIFEST.JSON",
            "shard-00000.parquet",
            "README.md",
            ".hidden",
            "_x",
            "-rf",
            "a/b",
            "a\\b",
            "",
            " warmup",
            "warm up",
            "tab\there",
            "nul",
            "CON.txt",
            "café",
        ] {
            assert!(problem(name).is_some(), "{name:?} passed");
        }
        assert!(problem(&"a".repeat(MAX_NAME_LEN + 1)).is_some());
    }

    #[test]
    fn suggestions_are_safe_names() {
        assert_eq!(suggest("../../x").as_deref(), Some("x"));
        assert_eq!(suggest("/abs/path").as_deref(), Some("abs-path"));
        assert_eq!(suggest("warm up").as_deref(), Some("warm-up"));
        assert_eq!(suggest(".."), None);
    }
}
