//! One record -> one encoded sample: images decoded, resized by the stage's rule and re-encoded, text
//! rendered by the template with each image's real pad count.
//!
//! Runs in parallel (rayon) over batches of records; everything here is a pure function of the record
//! and the stage's policies, which is what makes a build byte-identical for any thread count.

use std::sync::Arc;

use mixtape_shards::ShardImage;

use crate::image::{ProcessError, process};
use crate::image::{RgbImage, encode_jpeg, encode_png, grid, image_tokens, resize, smart_resize};
use crate::recipe::{ImageEncoding, ImagePolicy, LongText, Stage};
use crate::reject::RejectCode;
use crate::sample::{ImageSource, Sample, SampleKind};
use crate::source::spec::SourceSpec;
use crate::template::Encoder;

/// A sample ready to be packed. Image `token_offset`s are relative to the sample's first token.
#[derive(Clone, Debug)]
pub struct EncodedSample {
    pub ids: Vec<u32>,
    pub loss_mask: Vec<u8>,
    pub images: Vec<ShardImage>,
    pub is_text: bool,
}

impl EncodedSample {
    pub fn image_tokens(&self) -> u32 {
        self.images.iter().map(|i| i.num_tokens).sum()
    }
}

/// Why a drawn record did not make it into a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeReject {
    pub code: RejectCode,
    pub message: String,
}

/// Encodes a sample of `source` under a stage's policies: its images resized, its text rendered in
/// the source's chat style, and text over `seq_len` truncated or rejected as the stage's
/// [`LongText`] for the source says (`split` leaves it whole, for the packer's windows).
pub fn encode_sample(
    sample: &Sample,
    encoder: &Encoder,
    source: &SourceSpec,
    stage: &Stage,
) -> Result<EncodedSample, EncodeReject> {
    let (policy, seq_len) = (&stage.image, stage.seq_len);
    let resize_policy = policy.resize_policy();
    let mut images = Vec::with_capacity(sample.images.len());
    for (i, image) in sample.images.iter().enumerate() {
        let processed = process_image(&image.source, image.size, policy).map_err(|mut e| {
            e.message = format!("image {}: {}", i + 1, e.message);
            e
        })?;
        let (t, gh, gw) = grid(processed.height, processed.width, &resize_policy);
        images.push(ShardImage {
            bytes: processed.bytes,
            encoding: processed.encoding,
            height: processed.height,
            width: processed.width,
            source_height: processed.source_height,
            source_width: processed.source_width,
            grid_t: t,
            grid_h: gh,
            grid_w: gw,
            token_offset: 0,
            num_tokens: image_tokens(processed.height, processed.width, &resize_policy),
            sample: 0,
        });
    }
    let pads: Vec<u32> = images.iter().map(|i| i.num_tokens).collect();
    let mut encoded = encoder
        .encode(sample, &pads, &source.chat)
        .map_err(|e| EncodeReject {
            code: RejectCode::Template,
            message: e.to_string(),
        })?;
    for (image, (offset, _)) in images.iter_mut().zip(&encoded.image_slots) {
        image.token_offset = *offset;
    }
    let is_text = sample.kind == SampleKind::Text;
    if encoded.ids.len() > seq_len as usize {
        let why = match (is_text, stage.long_text_of(source)) {
            (true, LongText::Split) => None,
            (true, LongText::Truncate) => {
                encoded.ids.truncate(seq_len as usize);
                encoded.loss_mask.truncate(seq_len as usize);
                None
            }
            (true, LongText::Drop) => Some("long_text: drop"),
            (false, _) => Some("images are never cut"),
        };
        if let Some(why) = why {
            return Err(EncodeReject {
                code: RejectCode::TooLong,
                message: format!(
                    "{} tokens do not fit seq_len {seq_len} ({why})",
                    encoded.ids.len()
                ),
            });
        }
    }
    Ok(EncodedSample {
        ids: encoded.ids,
        loss_mask: encoded.loss_mask,
        images,
        is_text,
    })
}

/// The first `keep` tokens of a text sample, when the plan cuts it to land a token target exactly
/// (see [`SourceDraw::cut`](crate::plan::SourceDraw::cut)); the sample is then split into `seq_len`
/// windows like any long text. The planner cuts only text without images, so no image is ever cut.
pub fn cut(mut sample: EncodedSample, keep: Option<u64>) -> EncodedSample {
    if let Some(keep) = keep
        && sample.images.is_empty()
    {
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        sample.ids.truncate(keep);
        sample.loss_mask.truncate(keep);
    }
    sample
}

struct Processed {
    bytes: Vec<u8>,
    encoding: ImageEncoding,
    height: u32,
    width: u32,
    source_height: u32,
    source_width: u32,
}

fn process_image(
    source: &ImageSource,
    size: Option<(u32, u32)>,
    policy: &ImagePolicy,
) -> Result<Processed, EncodeReject> {
    let reject = |e: ProcessError| EncodeReject {
        code: RejectCode::from(&e),
        message: e.to_string(),
    };
    let resize_policy = policy.resize_policy();
    let bytes: Arc<[u8]> = match source {
        ImageSource::Synthetic { scene } => {
            let img = crate::synthetic::render_scene(*scene);
            return process_pixels(&img, policy).map_err(reject);
        }
        ImageSource::Bytes(bytes) => bytes.clone(),
        ImageSource::File(path) => mixtape_store::read(path)
            .map_err(|e| EncodeReject {
                code: RejectCode::MissingImage,
                message: format!("cannot read {}: {e}", path.display()),
            })?
            .to_vec()
            .into(),
    };
    if policy.encoding == ImageEncoding::Source {
        // Stored as-is with the target size: the reader resizes with the same rule.
        let (h, w) = size.unwrap_or((0, 0));
        let (height, width) = smart_resize(h, w, &resize_policy).map_err(|e| reject(e.into()))?;
        return Ok(Processed {
            bytes: bytes.to_vec(),
            encoding: policy.encoding,
            height,
            width,
            source_height: h,
            source_width: w,
        });
    }
    let p =
        process(&bytes, &resize_policy, policy.encoding, policy.jpeg_quality).map_err(reject)?;
    Ok(Processed {
        bytes: p.bytes,
        encoding: policy.encoding,
        height: p.height,
        width: p.width,
        source_height: p.source_height,
        source_width: p.source_width,
    })
}

fn process_pixels(img: &RgbImage, policy: &ImagePolicy) -> Result<Processed, ProcessError> {
    let resize_policy = policy.resize_policy();
    let (height, width) = smart_resize(img.height, img.width, &resize_policy)?;
    if policy.encoding == ImageEncoding::Source {
        return Ok(Processed {
            bytes: encode_png(img)?,
            encoding: policy.encoding,
            height,
            width,
            source_height: img.height,
            source_width: img.width,
        });
    }
    let resized = resize(img, height, width)?;
    let bytes = if policy.encoding == ImageEncoding::Png {
        encode_png(&resized)?
    } else {
        encode_jpeg(&resized, policy.jpeg_quality)?
    };
    Ok(Processed {
        bytes,
        encoding: policy.encoding,
        height,
        width,
        source_height: img.height,
        source_width: img.width,
    })
}
