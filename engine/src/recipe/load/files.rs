//! The recipe file and its `extends` chain: each file is parsed with spans, the base it extends is
//! read first (recursively, with cycle and depth checks), and the file's own tree is deep-merged over it.

use std::path::{Path, PathBuf};

use super::MAX_EXTENDS_DEPTH;
use crate::diag::{Diagnostic, Diagnostics, SourceMap, Span};
use crate::recipe::fields;
use crate::yaml::{self, Node};

/// Reads a recipe file and, recursively, the file it extends, returning the merged tree.
pub(super) fn read_with_extends(
    path: &Path,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
    chain: &mut Vec<PathBuf>,
    extends_span: Option<Span>,
) -> Option<Node> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if let Some(pos) = chain.iter().position(|p| *p == canonical) {
        let cycle: Vec<String> = chain[pos..]
            .iter()
            .chain(std::iter::once(&canonical))
            .map(|p| p.display().to_string())
            .collect();
        let msg = format!("recipe `extends` forms a cycle: {}", cycle.join(" -> "));
        let d = match extends_span {
            Some(span) => Diagnostic::error(span, msg),
            None => Diagnostic::error_in_file(path, msg),
        };
        diags.push(d.with_hint("remove `extends` from one of these files"));
        return None;
    }
    if chain.len() >= MAX_EXTENDS_DEPTH {
        diags.push(Diagnostic::error_in_file(
            path,
            format!("`extends` chain deeper than {MAX_EXTENDS_DEPTH} files"),
        ));
        return None;
    }
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                // Keep the file (lossily) so the diagnostic can quote the line with the bad byte.
                let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
                let bad = err.as_bytes()[valid.len()];
                let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let line = valid.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
                let col = String::from_utf8_lossy(&valid[line_start..])
                    .chars()
                    .count() as u32
                    + 1;
                let file = sources.add(
                    path.to_path_buf(),
                    String::from_utf8_lossy(err.as_bytes()).into_owned(),
                );
                diags.push(
                    Diagnostic::error(
                        Span {
                            file,
                            line,
                            col,
                            len: 1,
                        },
                        format!("recipe file is not valid UTF-8 (byte 0x{bad:02x})"),
                    )
                    .with_hint("save the recipe as UTF-8"),
                );
                return None;
            }
        },
        Err(err) => {
            let msg = format!("cannot read recipe `{}`: {err}", path.display());
            diags.push(match extends_span {
                Some(span) => Diagnostic::error(span, msg)
                    .with_hint("`extends` paths are relative to the file that names them"),
                None => Diagnostic::error_in_file(path, msg),
            });
            return None;
        }
    };
    let file = sources.add(path.to_path_buf(), text);
    let node = match yaml::parse(sources.text(file), file) {
        Ok(Some(node)) => node,
        Ok(None) => {
            diags.push(
                Diagnostic::error(
                    Span {
                        file,
                        line: 1,
                        col: 1,
                        len: 1,
                    },
                    "recipe file is empty",
                )
                .with_hint("a recipe needs at least `version`, `name`, `sources` and `stages`"),
            );
            return None;
        }
        Err(errors) => {
            diags.extend(errors);
            return None;
        }
    };
    if node.entries().is_none() {
        diags.push(Diagnostic::error(
            node.span,
            format!(
                "a recipe must be a map of settings, found {}",
                node.type_name()
            ),
        ));
        return None;
    }
    let Some(extends) = node.get("extends") else {
        return Some(node);
    };
    let base_name = fields::string(extends, "`extends`", diags)?;
    let base_path = sources.dir(file).join(&base_name);
    chain.push(canonical);
    let base = read_with_extends(&base_path, sources, diags, chain, Some(extends.span));
    chain.pop();
    let own = node.without(&["extends"]);
    Some(match base {
        Some(base) => yaml::merge(&base, &own),
        None => own,
    })
}
