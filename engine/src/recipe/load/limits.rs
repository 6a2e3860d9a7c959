//! The recipe-wide `limits` section: today the default cap on one record's bytes, which a file
//! source may override with its own `max_record_bytes`.

use crate::diag::Diagnostics;
use crate::recipe::fields;
use crate::recipe::model::*;
use crate::yaml::Node;

const LIMIT_KEYS: &[&str] = &["max_record_bytes"];

/// The recipe-wide `limits`: today the default record cap of every file source.
pub(super) fn limits(node: &Node, diags: &mut Diagnostics) -> Option<u64> {
    let entries = fields::map(node, "`limits`", LIMIT_KEYS, diags)?;
    match entries.iter().find(|(k, _)| k.name == "max_record_bytes") {
        Some((_, value)) => record_cap(value, "limits `max_record_bytes`", diags),
        None => Some(DEFAULT_MAX_RECORD_BYTES),
    }
}

pub(super) fn record_cap(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<u64> {
    fields::integer_in(node, what, 1, bounds::MAX_RECORD_BYTES_LIMIT, diags)
}
