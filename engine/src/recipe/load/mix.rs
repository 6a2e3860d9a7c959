//! A stage's `budget` (how much it draws, in one basis) and `mix` (which categories, in which
//! shares); shares are rounded to six decimals so the plan fingerprint does not depend on float noise.

use std::collections::BTreeSet;

use crate::diag::{Diagnostic, Diagnostics, did_you_mean, one_of};
use crate::recipe::fields;
use crate::recipe::model::*;
use crate::yaml::Node;

pub(super) fn budget(node: &Node, diags: &mut Diagnostics) -> Option<Budget> {
    let keys: Vec<&str> = Basis::ALL.iter().map(|b| b.key()).collect();
    let entries = fields::map(node, "`budget`", &keys, diags)?;
    let set: Vec<_> = entries
        .iter()
        .filter(|(k, _)| keys.contains(&k.name.as_str()))
        .collect();
    match set.as_slice() {
        [] => {
            diags.push(
                Diagnostic::error(node.span, "`budget` needs exactly one basis, found none")
                    .with_hint(format!("set one of {}", one_of(&keys))),
            );
            None
        }
        [(key, value)] => {
            let basis = Basis::ALL.into_iter().find(|b| b.key() == key.name)?;
            let amount = fields::integer_in(
                value,
                &format!("budget `{}`", key.name),
                1,
                bounds::MAX_BUDGET,
                diags,
            )?;
            Some(Budget { basis, amount })
        }
        [(a, _), (b, _), ..] => {
            diags.push(
                Diagnostic::error(
                    b.span,
                    format!(
                        "`budget` needs exactly one basis, found both `{}` and `{}`",
                        a.name, b.name
                    ),
                )
                .with_hint("a stage's budget counts one thing; keep one of them"),
            );
            None
        }
    }
}

pub(super) fn mix(
    node: &Node,
    categories: &BTreeSet<String>,
    diags: &mut Diagnostics,
) -> Option<Vec<MixEntry>> {
    let Some(entries) = node.entries() else {
        diags.push(Diagnostic::error(
            node.span,
            format!(
                "`mix` must map categories to shares, found {}",
                node.type_name()
            ),
        ));
        return None;
    };
    if entries.is_empty() {
        diags.push(
            Diagnostic::error(node.span, "`mix` is empty")
                .with_hint("give at least one category a share"),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut sum = 0.0;
    for (key, value) in entries {
        if !categories.contains(&key.name) {
            let hint = did_you_mean(&key.name, categories.iter().map(String::as_str))
                .unwrap_or_else(|| {
                    let known: Vec<&str> = categories.iter().map(String::as_str).collect();
                    format!(
                        "no source has `category: {}`; known categories: {}",
                        key.name,
                        one_of(&known)
                    )
                });
            diags.push(
                Diagnostic::error(key.span, format!("undefined category `{}`", key.name))
                    .with_hint(hint),
            );
            ok = false;
        }
        match fields::number_in(value, &format!("share of `{}`", key.name), 0.0, 1.0, diags) {
            Some(share) => {
                sum += share;
                out.push(MixEntry {
                    category: key.name.clone(),
                    share,
                    span: key.span,
                });
            }
            None => ok = false,
        }
    }
    if ok && (sum - 1.0).abs() > 1e-6 {
        diags.push(
            Diagnostic::error(
                node.span,
                format!("mix shares sum to {}, not 1", round6(sum)),
            )
            .with_hint(format!(
                "shares are fractions of the budget; adjust them by {:+}",
                round6(1.0 - sum)
            )),
        );
        ok = false;
    }
    out.sort_by(|a, b| a.category.cmp(&b.category));
    ok.then_some(out)
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
