//! Diagnostics: errors and warnings about user input, located at `file:line:col`.
//!
//! Recipe checking never stops at the first problem: every layer pushes [`Diagnostic`]s into a
//! [`Diagnostics`] list and carries on with what it can still resolve, so `mixtape check` shows every
//! error at once. A diagnostic points at a [`Span`] inside a file of the [`SourceMap`] (the recipe and
//! every file it extends), and renders with the offending line and a caret underline, rustc-style.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
pub type FileId = usize;

/// A location inside one recipe file. `line` and `col` are 1-based; `len` counts characters on the
/// first line (for the underline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub file: FileId,
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

/// The text of every file a recipe was loaded from, so diagnostics can quote them.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<(PathBuf, String)>,
}

impl SourceMap {
    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.files.push((path, text));
        self.files.len() - 1
    }

    pub fn path(&self, file: FileId) -> &Path {
        &self.files[file].0
    }

    pub fn text(&self, file: FileId) -> &str {
        &self.files[file].1
    }

    /// Finds an already loaded file by path.
    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files.iter().position(|(p, _)| p == path)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Folder of a file: the base that relative paths written in that file resolve against.
    pub fn dir(&self, file: FileId) -> &Path {
        self.path(file).parent().unwrap_or(Path::new("."))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// Where a diagnostic points: a span in a recipe file, or a whole file (a data source, say).
#[derive(Clone, Debug, PartialEq)]
pub enum Location {
    Span(Span),
    File(PathBuf),
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Location,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            location: Location::Span(span),
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            location: Location::Span(span),
            message: message.into(),
            hint: None,
        }
    }

    pub fn error_in_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            location: Location::File(path.into()),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Renders `error: message`, then ` --> file:line:col`, the quoted line with an underline, and
    /// the hint. Paths are shown as loaded (relative when the user gave relative paths).
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{label}: {}", self.message);
        // The `-->`, `|` and `=` columns line up with the line number's gutter, as rustc's do.
        let mut pad = " ".to_string();
        match &self.location {
            Location::Span(span) if span.file < sources.len() => {
                pad = " ".repeat(span.line.to_string().len());
                let _ = writeln!(
                    out,
                    "{pad} --> {}:{}:{}",
                    sources.path(span.file).display(),
                    span.line,
                    span.col
                );
                if let Some(line) = sources.text(span.file).lines().nth(span.line as usize - 1) {
                    let gutter = span.line.to_string();
                    let indent: String = line
                        .chars()
                        .take(span.col.saturating_sub(1) as usize)
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect();
                    let width = span.len.max(1) as usize;
                    let _ = writeln!(out, "{pad} |");
                    let _ = writeln!(out, "{gutter} | {line}");
                    let _ = writeln!(out, "{pad} | {indent}{}", "^".repeat(width));
                }
            }
            Location::Span(_) | Location::None => {}
            Location::File(path) => {
                let _ = writeln!(out, "  --> {}", path.display());
            }
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{pad} = hint: {hint}");
        }
        out
    }

    /// `file:line:col` (or the file, or nothing), for one-line summaries and JSON output.
    pub fn position(&self, sources: &SourceMap) -> Option<String> {
        match &self.location {
            Location::Span(s) if s.file < sources.len() => Some(format!(
                "{}:{}:{}",
                sources.path(s.file).display(),
                s.line,
                s.col
            )),
            Location::File(p) => Some(p.display().to_string()),
            _ => None,
        }
    }
}

/// An ordered list of diagnostics, collected across layers.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub fn error(&mut self, span: Span, message: impl Into<String>) {
        self.push(Diagnostic::error(span, message));
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Diagnostics in file order (then line, column), errors before warnings at the same place, so
    /// output reads top to bottom like the recipe.
    pub fn sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            let key = |d: &Diagnostic| match &d.location {
                Location::Span(s) => (0, s.file, s.line, s.col),
                Location::File(_) => (1, 0, 0, 0),
                Location::None => (2, 0, 0, 0),
            };
            key(a).cmp(&key(b)).then(a.severity.cmp(&b.severity))
        });
        self.items.dedup();
        self.items
    }
}

impl Extend<Diagnostic> for Diagnostics {
    fn extend<T: IntoIterator<Item = Diagnostic>>(&mut self, iter: T) {
        self.items.extend(iter);
    }
}

/// "did you mean `x`?" for a misspelt name, when one candidate is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let best = candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= (c.chars().count().max(name.chars().count()) / 3).max(1))
        .min_by_key(|(d, c)| (*d, *c))?;
    Some(format!("did you mean `{}`?", best.1))
}

/// Edit distance over characters where a swap of two neighbours counts as one edit (optimal string
/// alignment), so `sede` is one edit from `seed`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// A list like "`a`, `b` or `c`" for hints.
pub fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("sede", ["seed", "name"]).as_deref(),
            Some("did you mean `seed`?")
        );
        assert_eq!(
            did_you_mean("budgte", ["budget", "mix"]).as_deref(),
            Some("did you mean `budget`?")
        );
        assert_eq!(did_you_mean("zzzzzz", ["seed", "name"]), None);
    }

    #[test]
    fn renders_location_snippet_and_hint() {
        let mut map = SourceMap::default();
        let f = map.add("r.yaml".into(), "version: 1\nsede: 3\n".into());
        let d = Diagnostic::error(
            Span {
                file: f,
                line: 2,
                col: 1,
                len: 4,
            },
            "unknown key `sede`",
        )
        .with_hint("did you mean `seed`?");
        assert_eq!(
            d.render(&map),
            "error: unknown key `sede`\n  --> r.yaml:2:1\n  |\n2 | sede: 3\n  | ^^^^\n  = hint: did you mean `seed`?\n"
        );
    }
}
