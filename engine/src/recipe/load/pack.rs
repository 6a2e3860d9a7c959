//! A stage's `pack` section: how samples are packed into sequences (algorithm, look-ahead buffer,
//! per-sequence image-token cap, what happens to text longer than `seq_len`).

use crate::diag::{Diagnostic, Diagnostics};
use crate::recipe::fields;
use crate::recipe::model::*;
use crate::yaml::Node;

const PACK_KEYS: &[&str] = &[
    "algorithm",
    "buffer",
    "max_image_tokens",
    "long_text",
    "split_long_text",
];

pub(super) fn pack_policy(node: &Node, diags: &mut Diagnostics) -> Option<PackPolicy> {
    let entries = fields::map(node, "`pack`", PACK_KEYS, diags)?;
    let mut policy = PackPolicy::default();
    let mut ok = true;
    for (key, value) in entries {
        let what = format!("pack `{}`", key.name);
        let good = match key.name.as_str() {
            "algorithm" => fields::choice(value, "packing algorithm", &["bfd", "greedy"], diags)
                .map(|a| {
                    policy.algorithm = if a == "bfd" {
                        PackAlgorithm::Bfd
                    } else {
                        PackAlgorithm::Greedy
                    }
                }),
            "buffer" => fields::integer_in(value, &what, 1, bounds::MAX_PACK_BUFFER, diags)
                .map(|v| policy.buffer = v as u32),
            "max_image_tokens" => fields::integer_in(value, &what, 1, bounds::MAX_SEQ_LEN, diags)
                .map(|v| policy.max_image_tokens = Some(v as u32)),
            "long_text" => fields::choice(value, &what, &LongText::NAMES, diags)
                .and_then(LongText::from_name)
                .map(|v| policy.long_text = v),
            // The setting before `long_text` had `truncate`: true is `split`, false is `drop`.
            "split_long_text" if entries.iter().any(|(k, _)| k.name == "long_text") => {
                diags.push(
                    Diagnostic::error(key.span, "pack sets both `split_long_text` and `long_text`")
                        .with_hint("keep `long_text` (split, truncate or drop)"),
                );
                None
            }
            "split_long_text" => fields::boolean(value, &what, diags)
                .map(|v| policy.long_text = if v { LongText::Split } else { LongText::Drop }),
            _ => Some(()),
        };
        ok &= good.is_some();
    }
    ok.then_some(policy)
}
