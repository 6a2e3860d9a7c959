//! Typed reads from [`Node`]s that report problems instead of failing.
//!
//! Each reader returns `None` after pushing a located diagnostic, so the caller simply skips what is
//! invalid and keeps checking the rest of the recipe.

use crate::diag::{Diagnostic, Diagnostics, did_you_mean, one_of};
use crate::yaml::{Key, Node, Value};

/// Reads map entries, reporting a non-map and every key outside `allowed` (with a did-you-mean).
pub fn map<'n>(
    node: &'n Node,
    what: &str,
    allowed: &[&str],
    diags: &mut Diagnostics,
) -> Option<&'n [(Key, Node)]> {
    let Some(entries) = node.entries() else {
        diags.push(Diagnostic::error(
            node.span,
            format!("{what} must be a map, found {}", node.type_name()),
        ));
        return None;
    };
    for (key, _) in entries {
        if !allowed.contains(&key.name.as_str()) {
            let hint = did_you_mean(&key.name, allowed.iter().copied())
                .unwrap_or_else(|| format!("{what} accepts {}", one_of(allowed)));
            diags.push(
                Diagnostic::error(key.span, format!("unknown key `{}` in {what}", key.name))
                    .with_hint(hint),
            );
        }
    }
    Some(entries)
}

pub fn string(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<String> {
    match &node.value {
        Value::Str(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Str(_) => {
            diags.push(Diagnostic::error(
                node.span,
                format!("{what} must not be empty"),
            ));
            None
        }
        // Plain scalars such as `1234` in a name position are fine as text.
        Value::Int(i) => Some(i.to_string()),
        _ => {
            diags.push(Diagnostic::error(
                node.span,
                format!("{what} must be a string, found {}", node.type_name()),
            ));
            None
        }
    }
}

/// A finite number (integers included). NaN and infinities are rejected.
pub fn number(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<f64> {
    let value = match node.value {
        Value::Int(i) => i as f64,
        Value::Float(f) => f,
        _ => {
            diags.push(Diagnostic::error(
                node.span,
                format!("{what} must be a number, found {}", node.type_name()),
            ));
            return None;
        }
    };
    if !value.is_finite() {
        diags.push(Diagnostic::error(
            node.span,
            format!("{what} must be a finite number, found {value}"),
        ));
        return None;
    }
    Some(value)
}

/// A number strictly above zero.
pub fn positive_number(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<f64> {
    let value = number(node, what, diags)?;
    if value <= 0.0 {
        diags.push(Diagnostic::error(
            node.span,
            format!("{what} must be greater than 0, found {value}"),
        ));
        return None;
    }
    Some(value)
}

/// A number within `[lo, hi]`.
pub fn number_in(
    node: &Node,
    what: &str,
    lo: f64,
    hi: f64,
    diags: &mut Diagnostics,
) -> Option<f64> {
    let value = number(node, what, diags)?;
    if !(lo..=hi).contains(&value) {
        diags.push(Diagnostic::error(
            node.span,
            format!("{what} must be between {lo} and {hi}, found {value}"),
        ));
        return None;
    }
    Some(value)
}

/// A whole number of at least `min`. Integral floats such as `2e6` are accepted.
pub fn integer_at_least(node: &Node, what: &str, min: u64, diags: &mut Diagnostics) -> Option<u64> {
    let value = match node.value {
        Value::Int(i) => i as f64,
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 => f,
        Value::Float(f) => {
            diags.push(Diagnostic::error(
                node.span,
                format!("{what} must be a whole number, found {f}"),
            ));
            return None;
        }
        _ => {
            diags.push(Diagnostic::error(
                node.span,
                format!("{what} must be a whole number, found {}", node.type_name()),
            ));
            return None;
        }
    };
    if value < min as f64 {
        let bound = if min == 1 {
            "greater than 0".to_string()
        } else {
            format!("at least {min}")
        };
        diags.push(Diagnostic::error(
            node.span,
            format!("{what} must be {bound}, found {value}"),
        ));
        return None;
    }
    if value > u64::MAX as f64 / 2.0 {
        diags.push(Diagnostic::error(
            node.span,
            format!("{what} is too large: {value}"),
        ));
        return None;
    }
    Some(value as u64)
}

/// A whole number within `[min, max]`, with the range in the message so the fix is obvious.
pub fn integer_in(
    node: &Node,
    what: &str,
    min: u64,
    max: u64,
    diags: &mut Diagnostics,
) -> Option<u64> {
    let value = integer_at_least(node, what, min, diags)?;
    if value > max {
        diags.push(
            Diagnostic::error(
                node.span,
                format!("{what} must be at most {}, found {value}", thousands(max)),
            )
            .with_hint(format!(
                "use a whole number from {min} to {}",
                thousands(max)
            )),
        );
        return None;
    }
    Some(value)
}

/// A number in `(0, max]`.
pub fn positive_at_most(node: &Node, what: &str, max: f64, diags: &mut Diagnostics) -> Option<f64> {
    let value = positive_number(node, what, diags)?;
    if value > max {
        diags.push(Diagnostic::error(
            node.span,
            format!("{what} must be at most {max}, found {value}"),
        ));
        return None;
    }
    Some(value)
}

/// `1000000` as `1,000,000`, for limits in messages.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn boolean(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        _ => {
            diags.push(Diagnostic::error(
                node.span,
                format!("{what} must be true or false, found {}", node.type_name()),
            ));
            None
        }
    }
}

/// One of a fixed set of names.
pub fn choice<'a>(
    node: &Node,
    what: &str,
    allowed: &[&'a str],
    diags: &mut Diagnostics,
) -> Option<&'a str> {
    let text = string(node, what, diags)?;
    if let Some(found) = allowed.iter().find(|a| **a == text) {
        return Some(found);
    }
    let hint = did_you_mean(&text, allowed.iter().copied())
        .unwrap_or_else(|| format!("use {}", one_of(allowed)));
    diags.push(Diagnostic::error(node.span, format!("unknown {what} `{text}`")).with_hint(hint));
    None
}

/// A string or a list of strings.
pub fn strings(
    node: &Node,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Vec<(String, crate::diag::Span)>> {
    match &node.value {
        Value::Seq(items) if items.is_empty() => {
            diags.push(Diagnostic::error(
                node.span,
                format!("{what} must not be an empty list"),
            ));
            None
        }
        Value::Seq(items) => {
            let mut out = Vec::new();
            for item in items {
                out.push((string(item, what, diags)?, item.span));
            }
            Some(out)
        }
        _ => Some(vec![(string(node, what, diags)?, node.span)]),
    }
}
