//! The Qwen2.5-VL resize rule (`smart_resize`) and the token cost it implies.
//!
//! A native-resolution vision encoder sees each image at a size chosen by this rule: both sides become
//! multiples of `factor = patch_size * merge_size` (28 for Qwen2.5-VL), the area is kept inside
//! `[min_pixels, max_pixels]`, and the aspect ratio is preserved as well as the grid allows. The resized
//! size fixes the number of LLM tokens the image costs (`H * W / 784` for Qwen2.5-VL), so the planner calls
//! [`smart_resize`] on header sizes to count tokens long before any pixel is decoded.
//!
//! # Why the arithmetic looks the way it does
//!
//! The output must match the Python reference (`image_processing_qwen2_vl.py` in transformers,
//! `qwen_vl_utils.smart_resize`) exactly, or a model trained on mixtape shards would see different grids
//! from the ones its processor produces at inference. So every step mirrors Python:
//!
//! - `round(side / factor)` is Python's round-half-to-even on an `f64` quotient (70 / 28 = 2.5 -> 2, so 70
//!   becomes 56, not 84). [`f64::round_ties_even`] is the same operation.
//! - The scaling factor `beta` is computed from the ORIGINAL sides, not the rounded ones, with the same
//!   order of float operations (`side / beta / factor`, `side * beta / factor`) so that results agree to
//!   the last bit. `h * w` is formed exactly in integers first, as Python does; converting it to `f64` is
//!   exact below 2^53 pixels (about 9.0e15), far beyond any real image. Above that Python divides exact
//!   integers while we round twice, so the two could differ in the last bit of `beta`.
//!
//! # Where Python is followed even though it looks odd
//!
//! This follows transformers' current rule (checked against 4.57.6) step for step, including the parts
//! that earlier versions did differently:
//!
//! - No side is too small: a 24x40 icon rounds to 28x28, which is under `min_pixels`, so the min branch
//!   scales it up to 56x84. Older versions rejected sides under `factor`; transformers keeps them, and so
//!   does mixtape, or a model would be trained without images it sees at inference.
//! - The max branch clamps each side to at least `factor` (`max(factor, floor(...))`): 30x5000 under
//!   `max_pixels` 50,176 becomes 28x2884, whose area exceeds `max_pixels`. The token count is still exact
//!   (it is computed from the output), so the packer and the planner stay correct.
//! - Nothing checks that the output lies inside `[min_pixels, max_pixels]`; Python does not either.
//!
//! The only rejections are Python's own: an aspect ratio above `max_aspect_ratio` (200), and a side of 0
//! (Python divides by zero there; [`ResizeError::Empty`]).

use thiserror::Error;

/// ViT patch side in pixels for Qwen2-VL / Qwen2.5-VL.
pub const DEFAULT_PATCH_SIZE: u32 = 14;
/// Spatial merge (2x2 patches become one LLM token) for Qwen2-VL / Qwen2.5-VL.
pub const DEFAULT_MERGE_SIZE: u32 = 2;
/// Smallest area an image is scaled up to: 56x56 = 4 tokens. Tiny icons still get a usable grid.
pub const DEFAULT_MIN_PIXELS: u64 = 3136;
/// Largest area before scaling down: 1280 x 28 x 28 = at most 1280 tokens per image. The processor's
/// default; it bounds memory and sequence length at the cost of detail in large documents.
pub const DEFAULT_MAX_PIXELS: u64 = 1_003_520;
/// The `max_pixels` Qwen2.5-VL-Instruct ships with (16384 x 28 x 28): more detail, up to 16,384 tokens.
pub const QWEN25_VL_INSTRUCT_MAX_PIXELS: u64 = 12_845_056;
/// Largest long/short side ratio accepted; thinner images are rejected as in the reference.
pub const DEFAULT_MAX_ASPECT_RATIO: f64 = 200.0;

/// Parameters of the resize rule. [`Default`] is the Qwen2.5-VL image processor's configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResizePolicy {
    /// ViT patch side in pixels.
    pub patch_size: u32,
    /// Patches merged per side into one LLM token (2 means 2x2 patches per token).
    pub merge_size: u32,
    /// Images with a smaller (rounded) area are scaled up to at least this many pixels.
    pub min_pixels: u64,
    /// Images with a larger (rounded) area are scaled down to at most this many pixels.
    pub max_pixels: u64,
    /// Images whose long side exceeds this many times the short side are rejected.
    pub max_aspect_ratio: f64,
}

impl Default for ResizePolicy {
    fn default() -> Self {
        ResizePolicy {
            patch_size: DEFAULT_PATCH_SIZE,
            merge_size: DEFAULT_MERGE_SIZE,
            min_pixels: DEFAULT_MIN_PIXELS,
            max_pixels: DEFAULT_MAX_PIXELS,
            max_aspect_ratio: DEFAULT_MAX_ASPECT_RATIO,
        }
    }
}

impl ResizePolicy {
    /// The granularity of output sides: `patch_size * merge_size` (28 by default). Saturates instead of
    /// overflowing; [`ResizePolicy::validate`] rejects policies where that would matter.
    pub fn factor(&self) -> u32 {
        self.patch_size.saturating_mul(self.merge_size)
    }

    /// The same policy with another `max_pixels` (test-time resolution search tries several).
    pub fn with_max_pixels(self, max_pixels: u64) -> Self {
        ResizePolicy { max_pixels, ..self }
    }

    /// The same policy with another `min_pixels`.
    pub fn with_min_pixels(self, min_pixels: u64) -> Self {
        ResizePolicy { min_pixels, ..self }
    }

    /// Checks that the policy can produce any output at all: non-zero patch and merge sizes whose
    /// product fits in `u32`, `min_pixels <= max_pixels`, room for at least one `factor x factor`
    /// image under `max_pixels`, and an aspect limit that is a number >= 1.
    pub fn validate(&self) -> Result<(), ResizeError> {
        let invalid = |reason| Err(ResizeError::InvalidPolicy { reason });
        if self.patch_size == 0 {
            return invalid("patch_size must be at least 1");
        }
        if self.merge_size == 0 {
            return invalid("merge_size must be at least 1");
        }
        let Some(factor) = self.patch_size.checked_mul(self.merge_size) else {
            return invalid("patch_size * merge_size must fit in 32 bits");
        };
        if self.min_pixels > self.max_pixels {
            return invalid("min_pixels must not exceed max_pixels");
        }
        if self.max_pixels < u64::from(factor) * u64::from(factor) {
            return invalid("max_pixels must allow at least one factor x factor image");
        }
        // NaN is not >= 1 either.
        if self.max_aspect_ratio.is_nan() || self.max_aspect_ratio < 1.0 {
            return invalid("max_aspect_ratio must be a number >= 1");
        }
        Ok(())
    }
}

/// Why an image cannot be resized under a policy.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum ResizeError {
    /// A side is 0 pixels: there is no image to resize (Python's rule divides by zero here).
    #[error("image of {height}x{width} (HxW) has no pixels")]
    Empty { height: u32, width: u32 },
    /// The long side is more than `max` times the short side.
    #[error(
        "image of {height}x{width} (HxW) has aspect ratio {ratio:.2}, above the maximum of {max}"
    )]
    TooElongated {
        height: u32,
        width: u32,
        ratio: f64,
        max: f64,
    },
    /// A resized side would not fit in `u32` (only reachable with absurd policies or sides).
    #[error(
        "image of {height}x{width} (HxW) would be resized to a side larger than 2^32 - 1 pixels"
    )]
    Overflow { height: u32, width: u32 },
    /// The policy itself is unusable; see [`ResizePolicy::validate`].
    #[error("invalid resize policy: {reason}")]
    InvalidPolicy { reason: &'static str },
}

/// Returns the `(height, width)` an image of `height x width` pixels is resized to under `policy`.
///
/// Both sides of the result are non-zero multiples of `policy.factor()`. The area lies within
/// `[min_pixels, max_pixels]` except where Python's own arithmetic leaves it (a side clamped to `factor`
/// on the max branch, or bounds too close for the grid); see the module docs.
pub fn smart_resize(
    height: u32,
    width: u32,
    policy: &ResizePolicy,
) -> Result<(u32, u32), ResizeError> {
    policy.validate()?;
    let factor = policy.factor();
    if height == 0 || width == 0 {
        return Err(ResizeError::Empty { height, width });
    }
    let ratio = f64::from(height.max(width)) / f64::from(height.min(width));
    if ratio > policy.max_aspect_ratio {
        return Err(ResizeError::TooElongated {
            height,
            width,
            ratio,
            max: policy.max_aspect_ratio,
        });
    }

    let f = f64::from(factor);
    let (h, w) = (f64::from(height), f64::from(width));
    // Exact in integers, then one conversion, as Python's `(height * width) / max_pixels` does.
    let area = (u64::from(height) * u64::from(width)) as f64;
    let sides = |scale: fn(f64) -> f64| (scale(h / f) as u64, scale(w / f) as u64);

    // Python: round(height / factor) * factor.
    let (mut h_units, mut w_units) = sides(f64::round_ties_even);
    let rounded_area = u128::from(h_units) * u128::from(w_units) * u128::from(factor).pow(2);
    if rounded_area > u128::from(policy.max_pixels) {
        // Python: beta = sqrt(h * w / max_pixels); max(factor, floor(side / beta / factor) * factor).
        let beta = (area / policy.max_pixels as f64).sqrt();
        h_units = ((h / beta / f).floor() as u64).max(1);
        w_units = ((w / beta / f).floor() as u64).max(1);
    } else if rounded_area < u128::from(policy.min_pixels) {
        // Python: beta = sqrt(min_pixels / (h * w)); ceil(side * beta / factor) * factor.
        let beta = (policy.min_pixels as f64 / area).sqrt();
        h_units = (h * beta / f).ceil() as u64;
        w_units = (w * beta / f).ceil() as u64;
    }

    let to_side = |units: u64| {
        units
            .checked_mul(u64::from(factor))
            .and_then(|side| u32::try_from(side).ok())
            .ok_or(ResizeError::Overflow { height, width })
    };
    Ok((to_side(h_units)?, to_side(w_units)?))
}

/// LLM tokens an image of the given RESIZED size costs: `(h / patch) * (w / patch) / merge^2`
/// (`h * w / 784` for Qwen2.5-VL). Pass the output of [`smart_resize`]; for other sizes the partial
/// patches are dropped. Saturates at `u32::MAX`, and returns 0 for an invalid policy with a zero patch or
/// merge size (which [`smart_resize`] rejects).
pub fn image_tokens(height: u32, width: u32, policy: &ResizePolicy) -> u32 {
    let merge2 = u64::from(policy.merge_size) * u64::from(policy.merge_size);
    let (_, gh, gw) = grid(height, width, policy);
    let tokens = (u64::from(gh) * u64::from(gw))
        .checked_div(merge2)
        .unwrap_or(0);
    u32::try_from(tokens).unwrap_or(u32::MAX)
}

/// The vision encoder's patch grid `(t, h, w)` for one image of the given RESIZED size:
/// `(1, height / patch, width / patch)` (`image_grid_thw` in transformers). All zeros for a zero patch
/// size.
pub fn grid(height: u32, width: u32, policy: &ResizePolicy) -> (u32, u32, u32) {
    match (
        height.checked_div(policy.patch_size),
        width.checked_div(policy.patch_size),
    ) {
        (Some(h), Some(w)) => (1, h, w),
        _ => (0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with_max(max_pixels: u64) -> ResizePolicy {
        ResizePolicy::default().with_max_pixels(max_pixels)
    }

    /// Asserts one worked example of FACTS.md section 2: size and token count.
    fn assert_example(input: (u32, u32), policy: ResizePolicy, output: (u32, u32), tokens: u32) {
        let got = smart_resize(input.0, input.1, &policy);
        assert_eq!(
            got,
            Ok(output),
            "{input:?} under max_pixels {}",
            policy.max_pixels
        );
        assert_eq!(
            image_tokens(output.0, output.1, &policy),
            tokens,
            "tokens of {output:?}"
        );
    }

    #[test]
    fn default_policy_is_qwen25_vl() {
        let p = ResizePolicy::default();
        assert_eq!(
            (p.patch_size, p.merge_size, p.min_pixels, p.max_pixels),
            (14, 2, 3136, 1_003_520)
        );
        assert_eq!(p.max_aspect_ratio, 200.0);
        assert_eq!(p.factor(), 28);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn full_hd_under_instruct_budget_only_rounds() {
        assert_example(
            (1080, 1920),
            with_max(QWEN25_VL_INSTRUCT_MAX_PIXELS),
            (1092, 1932),
            2691,
        );
    }

    #[test]
    fn full_hd_under_default_budget_scales_down_from_original_sides() {
        assert_example((1080, 1920), ResizePolicy::default(), (728, 1316), 1222);
    }

    #[test]
    fn large_portrait_photo_scales_down() {
        assert_example((4000, 3000), ResizePolicy::default(), (1148, 840), 1230);
    }

    #[test]
    fn multiple_of_factor_is_unchanged() {
        assert_example((224, 224), ResizePolicy::default(), (224, 224), 64);
    }

    #[test]
    fn rounding_is_half_to_even_so_70_becomes_56() {
        assert_example((70, 70), ResizePolicy::default(), (56, 56), 4);
        // 98 / 28 = 3.5 rounds up to the even 4: ties go to even in both directions.
        assert_eq!(
            smart_resize(98, 98, &ResizePolicy::default()),
            Ok((112, 112))
        );
    }

    #[test]
    fn smallest_image_takes_the_min_branch() {
        assert_example((28, 28), ResizePolicy::default(), (56, 56), 4);
    }

    #[test]
    fn square_image_under_a_small_budget() {
        assert_example((1000, 1000), with_max(262_144), (504, 504), 324);
    }

    #[test]
    fn thin_image_on_the_max_branch_keeps_a_side_of_one_factor() {
        // FACTS.md section 2: floor gives 0 rows of 28, transformers clamps it to 28 (28x2884, 103
        // tokens), even though the area then exceeds max_pixels.
        assert_example((30, 5000), with_max(50_176), (28, 2884), 103);
    }

    #[test]
    fn sides_under_the_factor_are_kept_through_the_min_branch() {
        // 24x40 rounds to 28x28 = 784 < 3136: the min branch scales it up (transformers 4.57 keeps it).
        assert_example((24, 40), ResizePolicy::default(), (56, 84), 6);
        // Sides under 14 px round to 0 on the first step and are lifted by the min branch.
        assert_example((10, 40), ResizePolicy::default(), (28, 112), 4);
        assert_example((13, 13), ResizePolicy::default(), (56, 56), 4);
        assert_example((5, 900), ResizePolicy::default(), (28, 756), 27);
        assert_example((1, 200), ResizePolicy::default(), (28, 812), 29);
        assert_example((27, 500), ResizePolicy::default(), (28, 504), 18);
    }

    #[test]
    fn an_image_without_pixels_is_an_error() {
        for (h, w) in [(0, 0), (0, 100), (100, 0)] {
            assert_eq!(
                smart_resize(h, w, &ResizePolicy::default()),
                Err(ResizeError::Empty {
                    height: h,
                    width: w
                })
            );
        }
    }

    #[test]
    fn aspect_ratio_of_exactly_the_limit_is_accepted_and_beyond_rejected() {
        assert_eq!(
            smart_resize(28, 5600, &ResizePolicy::default()),
            Ok((28, 5600))
        );
        // Ratio exactly 201 (and anything above 200, however little) is rejected.
        for (h, w) in [(28, 5628), (28, 5601), (1, 201), (5601, 28)] {
            assert!(
                matches!(
                    smart_resize(h, w, &ResizePolicy::default()),
                    Err(ResizeError::TooElongated { height, width, .. }) if (height, width) == (h, w)
                ),
                "{h}x{w}"
            );
        }
        // 1x200 is exactly 200: kept.
        assert!(smart_resize(1, 200, &ResizePolicy::default()).is_ok());
    }

    #[test]
    fn invalid_policies_are_errors_not_panics() {
        let base = ResizePolicy::default();
        for policy in [
            ResizePolicy {
                patch_size: 0,
                ..base
            },
            ResizePolicy {
                merge_size: 0,
                ..base
            },
            ResizePolicy {
                patch_size: u32::MAX,
                merge_size: 2,
                ..base
            },
            ResizePolicy {
                min_pixels: 10,
                max_pixels: 5,
                ..base
            },
            ResizePolicy {
                min_pixels: 1,
                max_pixels: 28 * 28 - 1,
                ..base
            },
            ResizePolicy {
                max_aspect_ratio: f64::NAN,
                ..base
            },
            ResizePolicy {
                max_aspect_ratio: 0.5,
                ..base
            },
        ] {
            assert!(
                matches!(
                    smart_resize(100, 100, &policy),
                    Err(ResizeError::InvalidPolicy { .. })
                ),
                "{policy:?}"
            );
            // The token helpers never divide by zero.
            let _ = image_tokens(100, 100, &policy);
            let _ = grid(100, 100, &policy);
        }
    }

    #[test]
    fn bounds_too_close_for_the_grid_give_what_python_gives() {
        // 100x100 rounds to 112x112 = 12,544 > 10,000, and flooring gives 84x84 = 7,056 < 9,000:
        // transformers returns 84x84 without checking the minimum, and so do we.
        let policy = ResizePolicy::default()
            .with_min_pixels(9_000)
            .with_max_pixels(10_000);
        assert_eq!(smart_resize(100, 100, &policy), Ok((84, 84)));
    }

    #[test]
    fn grid_and_tokens_of_a_resized_image() {
        let p = ResizePolicy::default();
        assert_eq!(grid(728, 1316, &p), (1, 52, 94));
        assert_eq!(image_tokens(728, 1316, &p), 52 * 94 / 4);
        assert_eq!(image_tokens(u32::MAX, u32::MAX, &p), u32::MAX, "saturates");
    }

    /// Policies of the shapes people configure: any patch/merge, min at least one factor^2, max at
    /// least 18x min. Then the min branch cannot overshoot max (its overshoot is below 17x min for
    /// aspect ratios up to 200) and the max branch cannot undershoot min (it keeps a quarter of max).
    fn sane_policy() -> impl Strategy<Value = ResizePolicy> {
        (1u32..=32, 1u32..=4, 1u64..=64, 18u64..=2_000).prop_map(
            |(patch, merge, min_mul, max_mul)| {
                let f2 = u64::from(patch * merge).pow(2);
                ResizePolicy {
                    patch_size: patch,
                    merge_size: merge,
                    min_pixels: f2 * min_mul,
                    max_pixels: f2 * min_mul * max_mul,
                    max_aspect_ratio: 200.0,
                }
            },
        )
    }

    /// Any valid policy, including ones whose bounds are close together.
    fn any_valid_policy() -> impl Strategy<Value = ResizePolicy> {
        (
            1u32..=32,
            1u32..=4,
            0u64..=2_000_000,
            0u64..=2_000_000,
            1.0f64..300.0,
        )
            .prop_map(|(patch, merge, a, b, ratio)| {
                let f2 = u64::from(patch * merge).pow(2);
                ResizePolicy {
                    patch_size: patch,
                    merge_size: merge,
                    min_pixels: a.min(b),
                    max_pixels: a.max(b).max(f2),
                    max_aspect_ratio: ratio,
                }
            })
    }

    proptest! {
        #[test]
        fn ok_results_are_nonzero_multiples_of_factor(
            height in 0u32..20_000,
            width in 0u32..20_000,
            policy in any_valid_policy(),
        ) {
            if let Ok((h, w)) = smart_resize(height, width, &policy) {
                let f = policy.factor();
                prop_assert!(h > 0 && w > 0);
                prop_assert_eq!(h % f, 0);
                prop_assert_eq!(w % f, 0);
            }
        }

        #[test]
        fn sane_policies_only_reject_elongated_images_and_stay_in_budget_unless_clamped(
            height in 1u32..60_000,
            width in 1u32..60_000,
            policy in sane_policy(),
        ) {
            match smart_resize(height, width, &policy) {
                Ok((h, w)) => {
                    prop_assert!(h > 0 && w > 0);
                    let area = u64::from(h) * u64::from(w);
                    prop_assert!(area >= policy.min_pixels);
                    // Only the max branch's clamp to one factor may leave the budget.
                    let f = policy.factor();
                    prop_assert!(area <= policy.max_pixels || h == f || w == f, "{h}x{w}");
                }
                Err(ResizeError::TooElongated { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
