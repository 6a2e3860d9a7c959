//! One packed sequence as the writer takes it and the reader returns it: [`PackedRow`].
//!
//! A row is plain data with public fields, so the packer can build it without ceremony; whether it
//! is *consistent* is checked by [`PackedRow::validate`], which the writer calls on every row and the
//! reader on every row it decodes. Validation returns a [`RowError`] naming the sample or image at
//! fault and never panics, whatever the input.
//!
//! `position_ids` are not stored in the struct: they follow from `seq_lens` (0..len for each packed
//! sample), so keeping them separately could only let the two disagree. The writer derives them with
//! [`PackedRow::position_ids`]; the reader checks the stored column against the same derivation.
//!
//! Image geometry uses `u32` (sizes and counts are never negative); the schema stores `int32`, so
//! validation also checks that every value fits.

use crate::Counts;

/// How the bytes of a [`ShardImage`] are encoded: `mixtape-image`'s enum, shared with the recipe
/// and the builder.
pub use mixtape_image::ImageEncoding;

/// One image of a packed row, with the geometry the vision encoder needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardImage {
    /// Encoded image bytes (see `encoding`).
    pub bytes: Vec<u8>,
    pub encoding: ImageEncoding,
    /// Trained size in pixels (a multiple of patch_size x merge_size, 28 for Qwen2.5-VL).
    pub height: u32,
    pub width: u32,
    /// Size of the source image before resizing.
    pub source_height: u32,
    pub source_width: u32,
    /// Patch grid (t, h, w): (1, height / patch, width / patch) for a still image.
    pub grid_t: u32,
    pub grid_h: u32,
    pub grid_w: u32,
    /// Index in `input_ids` of the image's first placeholder (`<|image_pad|>`) token.
    pub token_offset: u32,
    /// Number of placeholder tokens (`grid_t * grid_h * grid_w / merge_size^2`).
    pub num_tokens: u32,
    /// Index of the packed sample the image belongs to.
    pub sample: u32,
}

/// The position ids of a row whose samples have `seq_lens` tokens (`tokens` in all): 0..len for
/// each sample. Negative lengths (rejected by validation) yield nothing rather than panicking.
pub fn position_ids(seq_lens: &[i32], tokens: usize) -> Vec<i32> {
    let mut ids = Vec::with_capacity(tokens);
    for &len in seq_lens {
        ids.extend(0..len.max(0));
    }
    ids
}

/// The counts of each packed sample of a row, as the manifest sums them: `visit(meta, counts)`
/// once per sample, in order. `tokens` is the sample's `seq_lens` entry (image placeholder tokens
/// included), `loss_tokens` its `loss_tokens` (which validation checks against the mask), and an
/// image, given as `(sample, num_tokens)`, counts for the sample its `sample` field names.
///
/// The one definition of "what a sample holds": the writer (manifest counts), `verify` and the
/// audit (recounts from the shards) and the reader's [`crate::Tally`] (what training consumed) all
/// count through it, so their figures can only differ when the data does.
pub fn count_samples(
    samples: &[PackedSampleMeta],
    seq_lens: &[i32],
    images: impl Iterator<Item = (u32, u32)> + Clone,
    mut visit: impl FnMut(&PackedSampleMeta, Counts),
) {
    for (index, (meta, &len)) in samples.iter().zip(seq_lens).enumerate() {
        let mut counts = Counts {
            samples: 1,
            tokens: u64::try_from(len).unwrap_or(0),
            loss_tokens: u64::from(meta.loss_tokens),
            ..Counts::default()
        };
        for (_, num_tokens) in images
            .clone()
            .filter(|&(sample, _)| sample as usize == index)
        {
            counts.images += 1;
            counts.image_tokens += u64::from(num_tokens);
        }
        visit(meta, counts);
    }
}

/// Provenance of one packed sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedSampleMeta {
    /// Source name in the recipe.
    pub source: String,
    /// Category name in the recipe.
    pub category: String,
    /// Stable key of the sample within its source (e.g. `file:line`, or `file:line#window`).
    pub key: String,
    /// Tokens of this sample with `loss_mask == 1`.
    pub loss_tokens: u32,
}

/// One packed sequence: several samples concatenated, not padded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackedRow {
    /// Token ids, all samples concatenated.
    pub input_ids: Vec<i32>,
    /// 1 where the token counts in the loss, else 0; same length as `input_ids`.
    pub loss_mask: Vec<u8>,
    /// Tokens of each packed sample, in order; sums to `input_ids.len()`.
    pub seq_lens: Vec<i32>,
    /// Provenance of each packed sample, parallel to `seq_lens`.
    pub samples: Vec<PackedSampleMeta>,
    /// Images in token order.
    pub images: Vec<ShardImage>,
}

/// Extra checks [`PackedRow::validate`] can apply beyond self-consistency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RowChecks {
    /// Reject rows with more tokens (the stage's `seq_len`).
    pub max_tokens: Option<u32>,
    /// Require every image's span of `input_ids` to hold exactly this token (the tokenizer's
    /// `<|image_pad|>` id, 151655 for Qwen2). The format does not know the tokenizer, so this is
    /// opt-in.
    pub image_pad_token: Option<i32>,
    /// The rows were read without image bytes (a reader that skips images reads every column but
    /// those): empty `bytes` are expected then, not an error.
    pub without_image_bytes: bool,
}

impl RowChecks {
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    pub fn with_image_pad_token(mut self, token: i32) -> Self {
        self.image_pad_token = Some(token);
        self
    }

    pub fn without_image_bytes(mut self) -> Self {
        self.without_image_bytes = true;
        self
    }
}

/// Why a row is inconsistent. Messages say what to fix in the code that built the row.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RowError {
    #[error("row has no packed samples: drop empty packs before writing")]
    Empty,
    #[error(
        "row has {input_ids} input_ids but {loss_mask} loss_mask entries: emit one mask entry per token"
    )]
    LossMaskLength { input_ids: usize, loss_mask: usize },
    #[error("loss_mask[{position}] is {value}: the mask holds only 0 and 1")]
    LossMaskValue { position: usize, value: u8 },
    #[error(
        "row has {seq_lens} seq_lens but {samples} sample entries: record provenance for every packed sample"
    )]
    SampleCount { seq_lens: usize, samples: usize },
    #[error("seq_lens[{sample}] is {len}: every packed sample has at least one token")]
    SampleLength { sample: usize, len: i32 },
    #[error(
        "seq_lens sum to {sum} but the row has {input_ids} input_ids: seq_lens must partition the row"
    )]
    SeqLensSum { sum: i64, input_ids: usize },
    #[error(
        "row has {tokens} tokens, more than seq_len {max}: the packer must never exceed seq_len"
    )]
    TooLong { tokens: usize, max: u32 },
    #[error(
        "sample {sample} declares {declared} loss tokens but its loss_mask has {counted}: count the mask, not the text"
    )]
    LossTokens {
        sample: usize,
        declared: u32,
        counted: u64,
    },
    #[error(
        "sample {sample} has an empty {field}: every packed sample names its source and category"
    )]
    EmptyName { sample: usize, field: &'static str },
    #[error("image {image} belongs to sample {sample} but the row has {samples} samples")]
    ImageSample {
        image: usize,
        sample: u32,
        samples: usize,
    },
    #[error(
        "image {image} spans tokens {start}..{end}, outside its sample {sample} (tokens {sample_start}..{sample_end}): image tokens stay inside their sample"
    )]
    ImageOutsideSample {
        image: usize,
        start: u64,
        end: u64,
        sample: u32,
        sample_start: u64,
        sample_end: u64,
    },
    #[error(
        "image {image} starts at token {start}, before the end ({previous_end}) of the image before it: list images in token order, without overlap"
    )]
    ImageOrder {
        image: usize,
        start: u32,
        previous_end: u64,
    },
    #[error(
        "image {image}: input_ids[{position}] is {found}, not the image pad token {expected}: token_offset must point at the image's placeholder run"
    )]
    ImageToken {
        image: usize,
        position: usize,
        found: i32,
        expected: i32,
    },
    #[error("image {image}: {detail}")]
    ImageGeometry { image: usize, detail: String },
    #[error("image {image} has no bytes: store the encoded image")]
    ImageBytes { image: usize },
    #[error("{what} is {value}, more than the format's int32 can hold")]
    TooLarge { what: &'static str, value: u64 },
}

impl PackedRow {
    /// Number of tokens in the row (before the reader pads it).
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Position ids: 0..len for each packed sample (see [`position_ids`]).
    pub fn position_ids(&self) -> Vec<i32> {
        position_ids(&self.seq_lens, self.input_ids.len())
    }

    /// Token ranges `[start, end)` of each packed sample.
    pub fn sample_spans(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.seq_lens.iter().scan(0u64, |start, &len| {
            let begin = *start;
            *start += u64::try_from(len).unwrap_or(0);
            Some((begin, *start))
        })
    }

    /// Rough in-memory size of the row's columns in bytes (4 per id and position, 1 per mask entry,
    /// the image bytes, the strings). The writer uses it to bound row groups; it is deterministic,
    /// which is all rotation needs.
    pub fn raw_bytes(&self) -> usize {
        let tokens = self.input_ids.len() * 9;
        let samples: usize = self
            .samples
            .iter()
            .map(|s| 8 + s.source.len() + s.category.len() + s.key.len())
            .sum();
        let images: usize = self.images.iter().map(|i| i.bytes.len() + 48).sum();
        tokens + samples + self.seq_lens.len() * 4 + images
    }

    /// Per-sample counts of this row, attributed to each sample's source and category by `visit`
    /// (called once per packed sample): [`count_samples`] over its columns.
    pub fn sample_counts(&self, visit: impl FnMut(&PackedSampleMeta, Counts)) {
        let images = self.images.iter().map(|i| (i.sample, i.num_tokens));
        count_samples(&self.samples, &self.seq_lens, images, visit);
    }

    /// Checks that the row is self-consistent and passes `checks`.
    ///
    /// Lengths agree; `seq_lens` are positive and partition the row; the mask is 0/1 and each
    /// sample's `loss_tokens` matches it; images lie inside their sample, in token order, without
    /// overlap, with plausible geometry; every value fits the schema's int32.
    pub fn validate(&self, checks: &RowChecks) -> Result<(), RowError> {
        if self.seq_lens.is_empty() {
            return Err(RowError::Empty);
        }
        let tokens = self.input_ids.len();
        fits_i32("row length", tokens as u64)?;
        if let Some(max) = checks.max_tokens
            && tokens > max as usize
        {
            return Err(RowError::TooLong { tokens, max });
        }
        if self.loss_mask.len() != tokens {
            return Err(RowError::LossMaskLength {
                input_ids: tokens,
                loss_mask: self.loss_mask.len(),
            });
        }
        // An OR over the whole mask vectorises; only a bad mask pays for finding the position.
        if self.loss_mask.iter().fold(0, |any, &m| any | m) > 1
            && let Some(position) = self.loss_mask.iter().position(|&m| m > 1)
        {
            return Err(RowError::LossMaskValue {
                position,
                value: self.loss_mask[position],
            });
        }
        if self.samples.len() != self.seq_lens.len() {
            return Err(RowError::SampleCount {
                seq_lens: self.seq_lens.len(),
                samples: self.samples.len(),
            });
        }
        if let Some(sample) = self.seq_lens.iter().position(|&len| len <= 0) {
            return Err(RowError::SampleLength {
                sample,
                len: self.seq_lens[sample],
            });
        }
        let sum: i64 = self.seq_lens.iter().map(|&len| i64::from(len)).sum();
        if sum != tokens as i64 {
            return Err(RowError::SeqLensSum {
                sum,
                input_ids: tokens,
            });
        }
        let spans: Vec<(u64, u64)> = self.sample_spans().collect();
        for (sample, (meta, &(start, end))) in self.samples.iter().zip(&spans).enumerate() {
            if meta.source.is_empty() {
                return Err(RowError::EmptyName {
                    sample,
                    field: "source",
                });
            }
            if meta.category.is_empty() {
                return Err(RowError::EmptyName {
                    sample,
                    field: "category",
                });
            }
            let counted = self.loss_mask[start as usize..end as usize]
                .iter()
                .filter(|&&m| m == 1)
                .count() as u64;
            if counted != u64::from(meta.loss_tokens) {
                return Err(RowError::LossTokens {
                    sample,
                    declared: meta.loss_tokens,
                    counted,
                });
            }
        }
        let mut previous_end = 0u64;
        for (index, image) in self.images.iter().enumerate() {
            image.validate(index, checks.without_image_bytes)?;
            let Some(&(sample_start, sample_end)) = spans.get(image.sample as usize) else {
                return Err(RowError::ImageSample {
                    image: index,
                    sample: image.sample,
                    samples: spans.len(),
                });
            };
            let start = u64::from(image.token_offset);
            let end = start + u64::from(image.num_tokens);
            if start < sample_start || end > sample_end {
                return Err(RowError::ImageOutsideSample {
                    image: index,
                    start,
                    end,
                    sample: image.sample,
                    sample_start,
                    sample_end,
                });
            }
            if index > 0 && start < previous_end {
                return Err(RowError::ImageOrder {
                    image: index,
                    start: image.token_offset,
                    previous_end,
                });
            }
            previous_end = end;
            if let Some(expected) = checks.image_pad_token {
                let span = &self.input_ids[start as usize..end as usize];
                if let Some(at) = span.iter().position(|&id| id != expected) {
                    return Err(RowError::ImageToken {
                        image: index,
                        position: start as usize + at,
                        found: span[at],
                        expected,
                    });
                }
            }
        }
        Ok(())
    }
}

impl ShardImage {
    fn validate(&self, index: usize, without_bytes: bool) -> Result<(), RowError> {
        let geometry = |detail: String| RowError::ImageGeometry {
            image: index,
            detail,
        };
        if self.bytes.is_empty() && !without_bytes {
            return Err(RowError::ImageBytes { image: index });
        }
        fits_i32("image byte length", self.bytes.len() as u64)?;
        for (what, value) in [
            ("image height", self.height),
            ("image width", self.width),
            ("image source_height", self.source_height),
            ("image source_width", self.source_width),
            ("image grid_t", self.grid_t),
            ("image grid_h", self.grid_h),
            ("image grid_w", self.grid_w),
            ("image token_offset", self.token_offset),
            ("image num_tokens", self.num_tokens),
            ("image sample", self.sample),
        ] {
            fits_i32(what, u64::from(value))?;
            if value == 0 && !matches!(what, "image token_offset" | "image sample") {
                return Err(geometry(format!(
                    "{what} is 0: every size, grid side and token count is positive"
                )));
            }
        }
        if !self.height.is_multiple_of(self.grid_h)
            || !self.width.is_multiple_of(self.grid_w)
            || self.height / self.grid_h != self.width / self.grid_w
        {
            return Err(geometry(format!(
                "size {}x{} is not a whole grid of square patches {}x{}: grid_h and grid_w are height and width divided by the patch size",
                self.height, self.width, self.grid_h, self.grid_w
            )));
        }
        let patches = u64::from(self.grid_t) * u64::from(self.grid_h) * u64::from(self.grid_w);
        if patches % u64::from(self.num_tokens) != 0 {
            return Err(geometry(format!(
                "{patches} patches (grid {}x{}x{}) do not merge into {} tokens: num_tokens is patches / merge_size^2",
                self.grid_t, self.grid_h, self.grid_w, self.num_tokens
            )));
        }
        Ok(())
    }
}

fn fits_i32(what: &'static str, value: u64) -> Result<(), RowError> {
    if value > i32::MAX as u64 {
        Err(RowError::TooLarge { what, value })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{IMAGE_PAD, row, sample};

    fn checks() -> RowChecks {
        RowChecks::default()
            .with_max_tokens(64)
            .with_image_pad_token(IMAGE_PAD)
    }

    #[test]
    fn a_well_formed_row_with_images_is_valid() {
        let row = row(&[(10, 0), (20, 2), (8, 1)]);
        assert_eq!(row.validate(&checks()), Ok(()));
    }

    #[test]
    fn position_ids_restart_at_zero_at_each_packed_sample() {
        let mut row = row(&[(3, 0), (2, 0), (4, 0)]);
        row.seq_lens = vec![3, 2, 4];
        assert_eq!(row.position_ids(), [0, 1, 2, 0, 1, 0, 1, 2, 3]);
    }

    #[test]
    fn an_empty_row_is_rejected() {
        assert_eq!(
            PackedRow::default().validate(&checks()),
            Err(RowError::Empty)
        );
    }

    #[test]
    fn a_row_longer_than_seq_len_is_rejected() {
        let row = row(&[(40, 0), (30, 0)]);
        assert_eq!(
            row.validate(&checks()),
            Err(RowError::TooLong {
                tokens: 70,
                max: 64
            })
        );
    }

    #[test]
    fn mismatched_lengths_are_rejected() {
        let mut bad = row(&[(10, 0)]);
        bad.loss_mask.pop();
        assert_eq!(
            bad.validate(&checks()),
            Err(RowError::LossMaskLength {
                input_ids: 10,
                loss_mask: 9
            })
        );

        let mut bad = row(&[(10, 0), (5, 0)]);
        bad.samples.pop();
        assert_eq!(
            bad.validate(&checks()),
            Err(RowError::SampleCount {
                seq_lens: 2,
                samples: 1
            })
        );

        let mut bad = row(&[(10, 0), (5, 0)]);
        bad.seq_lens = vec![10, 4];
        assert_eq!(
            bad.validate(&checks()),
            Err(RowError::SeqLensSum {
                sum: 14,
                input_ids: 15
            })
        );

        let mut bad = row(&[(10, 0), (5, 0)]);
        bad.seq_lens = vec![15, 0];
        assert_eq!(
            bad.validate(&checks()),
            Err(RowError::SampleLength { sample: 1, len: 0 })
        );
    }

    #[test]
    fn the_loss_mask_is_binary_and_agrees_with_declared_loss_tokens() {
        let mut bad = row(&[(10, 0)]);
        bad.loss_mask[3] = 2;
        assert_eq!(
            bad.validate(&checks()),
            Err(RowError::LossMaskValue {
                position: 3,
                value: 2
            })
        );

        let mut bad = row(&[(10, 0), (6, 0)]);
        bad.samples[1].loss_tokens += 1;
        assert!(matches!(
            bad.validate(&checks()),
            Err(RowError::LossTokens { sample: 1, .. })
        ));
    }

    #[test]
    fn samples_name_their_source_and_category() {
        let mut bad = row(&[(10, 0)]);
        bad.samples[0].category.clear();
        assert_eq!(
            bad.validate(&checks()),
            Err(RowError::EmptyName {
                sample: 0,
                field: "category"
            })
        );
    }

    #[test]
    fn an_image_must_lie_inside_its_own_sample() {
        // Sample 0 covers tokens 0..10, sample 1 covers 10..30 and holds the image.
        let mut bad = row(&[(10, 0), (20, 1)]);
        bad.images[0].sample = 0;
        assert!(matches!(
            bad.validate(&checks()),
            Err(RowError::ImageOutsideSample {
                image: 0,
                sample: 0,
                ..
            })
        ));

        let mut bad = row(&[(10, 0), (20, 1)]);
        bad.images[0].sample = 5;
        assert_eq!(
            bad.validate(&checks()),
            Err(RowError::ImageSample {
                image: 0,
                sample: 5,
                samples: 2
            })
        );

        let mut bad = row(&[(10, 0), (20, 1)]);
        bad.images[0].token_offset = 28;
        assert!(matches!(
            bad.validate(&checks()),
            Err(RowError::ImageOutsideSample {
                image: 0,
                end: 32,
                ..
            })
        ));
    }

    #[test]
    fn an_image_offset_must_point_at_its_run_of_pad_tokens() {
        let mut bad = row(&[(20, 1)]);
        bad.images[0].token_offset -= 1;
        assert!(matches!(
            bad.validate(&checks()),
            Err(RowError::ImageToken { image: 0, .. })
        ));
        // Without a pad token to check against, only the span itself is validated.
        assert_eq!(bad.validate(&RowChecks::default()), Ok(()));
    }

    #[test]
    fn images_are_in_token_order_without_overlap() {
        let mut bad = row(&[(20, 2)]);
        bad.images.swap(0, 1);
        assert!(matches!(
            bad.validate(&checks()),
            Err(RowError::ImageOrder { image: 1, .. })
        ));
    }

    #[test]
    fn image_geometry_must_be_a_grid_of_square_patches() {
        let mut bad = row(&[(20, 1)]);
        bad.images[0].grid_w = 3;
        let err = bad.validate(&checks()).unwrap_err();
        assert!(
            matches!(err, RowError::ImageGeometry { image: 0, .. }),
            "{err}"
        );

        let mut bad = row(&[(20, 1)]);
        bad.images[0].num_tokens = 3;
        assert!(matches!(
            bad.validate(&RowChecks::default()),
            Err(RowError::ImageGeometry { image: 0, .. })
        ));

        let mut bad = row(&[(20, 1)]);
        bad.images[0].bytes.clear();
        assert_eq!(
            bad.validate(&checks()),
            Err(RowError::ImageBytes { image: 0 })
        );
    }

    #[test]
    fn values_beyond_int32_are_rejected_not_truncated() {
        let mut bad = row(&[(20, 1)]);
        bad.images[0].source_width = u32::MAX;
        assert_eq!(
            bad.validate(&checks()),
            Err(RowError::TooLarge {
                what: "image source_width",
                value: u64::from(u32::MAX)
            })
        );
    }

    #[test]
    fn validation_never_panics_on_hostile_values() {
        let mut bad = row(&[(4, 0)]);
        bad.seq_lens = vec![i32::MIN, 4];
        bad.samples.push(sample("s", "c", "k", 0));
        assert_eq!(
            bad.validate(&checks()),
            Err(RowError::SampleLength {
                sample: 0,
                len: i32::MIN
            })
        );
        assert_eq!(bad.position_ids(), [0, 1, 2, 3]);
        assert_eq!(bad.sample_spans().collect::<Vec<_>>(), [(0, 0), (0, 4)]);
    }

    #[test]
    fn counts_attribute_images_to_their_sample() {
        let row = row(&[(10, 0), (20, 2)]);
        let mut seen = Vec::new();
        row.sample_counts(|meta, counts| seen.push((meta.key.clone(), counts)));
        assert_eq!(
            seen[0].1,
            Counts {
                samples: 1,
                tokens: 10,
                loss_tokens: row.samples[0].loss_tokens.into(),
                image_tokens: 0,
                images: 0
            }
        );
        assert_eq!(seen[1].1.images, 2);
        assert_eq!(seen[1].1.image_tokens, 8);
    }

    #[test]
    fn encodings_round_trip_through_their_column_values() {
        for encoding in [
            ImageEncoding::Jpeg,
            ImageEncoding::Png,
            ImageEncoding::Source,
        ] {
            assert_eq!(ImageEncoding::parse(encoding.as_str()), Some(encoding));
        }
        assert_eq!(ImageEncoding::parse("webp"), None);
    }
}
