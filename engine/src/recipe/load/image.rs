//! The `image` section, recipe-wide or per stage: the Qwen2.5-VL resize rule (patch and merge size,
//! pixel bounds, aspect-ratio cap) and how resized images are stored (encoding, JPEG quality).

use crate::diag::{Diagnostic, Diagnostics};
use crate::recipe::fields;
use crate::recipe::model::*;
use crate::yaml::Node;

pub(super) const IMAGE_KEYS: &[&str] = &[
    "patch_size",
    "merge_size",
    "min_pixels",
    "max_pixels",
    "max_aspect_ratio",
    "encoding",
    "jpeg_quality",
];

/// Types a stage's image policy: `node` is the recipe-level `image` merged with the stage's own
/// (`overrides`, when it has one). A conflict between two settings is reported at the one the stage
/// sets, since that is the edit that caused it: the recipe-level line alone would send the reader to
/// a value that is fine for every other stage.
pub(super) fn image_policy(
    node: &Node,
    overrides: Option<&Node>,
    stage: &str,
    diags: &mut Diagnostics,
) -> Option<ImagePolicy> {
    let entries = node.entries()?;
    let mut policy = ImagePolicy::default();
    let mut ok = true;
    for (key, value) in entries {
        let what = format!("image `{}`", key.name);
        let good = match key.name.as_str() {
            "patch_size" => fields::integer_in(value, &what, 1, bounds::MAX_PATCH_SIZE, diags)
                .map(|v| policy.patch_size = v as u32),
            "merge_size" => fields::integer_in(value, &what, 1, bounds::MAX_MERGE_SIZE, diags)
                .map(|v| policy.merge_size = v as u32),
            "min_pixels" => fields::integer_in(value, &what, 1, bounds::MAX_IMAGE_PIXELS, diags)
                .map(|v| policy.min_pixels = v),
            "max_pixels" => fields::integer_in(value, &what, 1, bounds::MAX_IMAGE_PIXELS, diags)
                .map(|v| policy.max_pixels = v),
            "max_aspect_ratio" => fields::number(value, &what, diags).and_then(|v| {
                if (1.0..=1e6).contains(&v) {
                    policy.max_aspect_ratio = v;
                    Some(())
                } else {
                    diags.push(Diagnostic::error(
                        value.span,
                        format!("{what} must be between 1 and 1000000, found {v}"),
                    ));
                    None
                }
            }),
            "encoding" => {
                fields::choice(value, "image encoding", &["jpeg", "png", "source"], diags).map(
                    |e| {
                        policy.encoding = match e {
                            "jpeg" => ImageEncoding::Jpeg,
                            "png" => ImageEncoding::Png,
                            _ => ImageEncoding::Source,
                        }
                    },
                )
            }
            "jpeg_quality" => fields::integer_at_least(value, &what, 1, diags).and_then(|v| {
                if v <= 100 {
                    policy.jpeg_quality = v as u8;
                    Some(())
                } else {
                    diags.push(Diagnostic::error(
                        value.span,
                        format!("{what} must be between 1 and 100, found {v}"),
                    ));
                    None
                }
            }),
            _ => Some(()), // reported by the key check
        };
        ok &= good.is_some();
    }
    if !ok {
        return None;
    }
    // A policy that can resize some accepted image to a zero side would fail mid-build: refuse it now.
    let factor = u64::from(policy.patch_size) * u64::from(policy.merge_size);
    let block = factor * factor;
    let blame = |key: &str| node.get(key).map_or(node.span, |n| n.span);
    // The first of `keys` the stage itself sets, with its span.
    let overridden = |keys: &[&'static str]| {
        keys.iter()
            .find_map(|&key| Some((key, overrides?.get(key)?.span)))
    };
    if policy.min_pixels > policy.max_pixels {
        let rule = "min_pixels must not exceed max_pixels";
        let (span, hint) = match (
            overridden(["min_pixels"].as_slice()),
            overridden(["max_pixels"].as_slice()),
        ) {
            (Some((_, span)), None) => (
                span,
                format!(
                    "{rule}; this stage's min_pixels is checked against max_pixels {} from the recipe-level `image` or the default",
                    policy.max_pixels
                ),
            ),
            (None, Some((_, span))) => (
                span,
                format!(
                    "{rule}; this stage's max_pixels is checked against min_pixels {} from the recipe-level `image` or the default",
                    policy.min_pixels
                ),
            ),
            (Some((_, span)), Some(_)) => (span, rule.to_string()),
            (None, None) => (blame("min_pixels"), rule.to_string()),
        };
        diags.push(
            Diagnostic::error(
                span,
                format!(
                    "{stage}: image min_pixels {} is above max_pixels {}",
                    policy.min_pixels, policy.max_pixels
                ),
            )
            .with_hint(hint),
        );
        return None;
    }
    let needed = (policy.max_aspect_ratio * block as f64).ceil() as u64;
    if policy.max_pixels < needed {
        let ratio_ok = (policy.max_pixels as f64 / block as f64).floor();
        let span =
            overridden(["max_pixels", "max_aspect_ratio", "patch_size", "merge_size"].as_slice())
                .map_or_else(|| blame("max_pixels"), |(_, span)| span);
        diags.push(
            Diagnostic::error(
                span,
                format!(
                    "{stage}: image max_pixels {} can resize an image to a zero side ({factor}-pixel blocks, aspect ratio up to {})",
                    policy.max_pixels, policy.max_aspect_ratio
                ),
            )
            .with_hint(if ratio_ok >= 1.0 {
                format!("raise max_pixels to at least {needed}, or lower max_aspect_ratio to at most {ratio_ok}")
            } else {
                format!("raise max_pixels to at least {needed}: one {factor}x{factor} block is {block} pixels")
            }),
        );
        return None;
    }
    Some(policy)
}
