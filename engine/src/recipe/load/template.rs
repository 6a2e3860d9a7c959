//! The recipe-wide `template` setting and each source's `system` prompt: how conversations render
//! beyond the fixed ChatML format.
//!
//! `template` is either the format's name (`template: chatml`) or a map with `format`, `system` (the
//! default system prompt) and `turn_end_loss`. A source's own `system` replaces the recipe's, and
//! `system: null` (or `""`) turns it off for that source.

use crate::diag::{Diagnostic, Diagnostics};
use crate::recipe::fields;
use crate::recipe::model::*;
use crate::sample::IMAGE_PLACEHOLDER;
use crate::template::{ChatStyle, TurnEndLoss};
use crate::yaml::{Node, Value};

const TEMPLATE_KEYS: &[&str] = &["format", "system", "turn_end_loss"];
const FORMATS: &[&str] = &["chatml"];

/// The `template` setting: its format and the recipe-wide conversation style.
pub(super) fn template(node: &Node, diags: &mut Diagnostics) -> Option<(Template, ChatStyle)> {
    if node.entries().is_none() {
        return fields::choice(node, "template", FORMATS, diags)
            .map(|_| (Template::Chatml, ChatStyle::default()));
    }
    let entries = fields::map(node, "`template`", TEMPLATE_KEYS, diags)?;
    let mut style = ChatStyle::default();
    let mut ok = true;
    for (key, value) in entries {
        let good = match key.name.as_str() {
            "format" => fields::choice(value, "template format", FORMATS, diags).map(|_| ()),
            "system" => system_prompt(value, "template `system`", diags).map(|s| style.system = s),
            "turn_end_loss" => fields::choice(value, "turn_end_loss", &TurnEndLoss::NAMES, diags)
                .and_then(TurnEndLoss::from_name)
                .map(|t| style.turn_end_loss = t),
            _ => Some(()),
        };
        ok &= good.is_some();
    }
    ok.then_some((Template::Chatml, style))
}

/// A system prompt: its text, or `None` for `null` or `""` (no system turn).
pub(super) fn system_prompt(
    node: &Node,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Option<String>> {
    match &node.value {
        Value::Null => Some(None),
        Value::Str(text) if text.is_empty() => Some(None),
        Value::Str(text) if text.contains(IMAGE_PLACEHOLDER) => {
            diags.push(
                Diagnostic::error(
                    node.span,
                    format!(
                        "{what} contains `{IMAGE_PLACEHOLDER}`; a system prompt takes no image"
                    ),
                )
                .with_hint("put images in the samples' user turns"),
            );
            None
        }
        Value::Str(text) => Some(Some(text.clone())),
        _ => {
            diags.push(
                Diagnostic::error(
                    node.span,
                    format!("{what} must be a string, found {}", node.type_name()),
                )
                .with_hint("quote it, or write `null` for no system prompt"),
            );
            None
        }
    }
}
