//! What the reader yields: [`RowBatch`]es of [`Row`]s, each a packed sequence ready for a trainer.
//!
//! The buffers are the ones a varlen-attention trainer feeds to the model as they are: token ids,
//! loss mask and position ids of equal length, per-sample lengths (prefix-sum them for
//! cu_seqlens), and the row's images with their grids and token spans. Rows are not padded; a
//! trainer pads to `seq_len` or concatenates rows as it likes.

use crate::PackedSampleMeta;

/// Where a row was read from: for debugging data orders and for tests of the order guarantees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowOrigin {
    /// Index of the stage in the schedule.
    pub stage: usize,
    /// Index of the shard in the stage's manifest.
    pub shard: u32,
    /// Row within the shard (file order).
    pub row: u64,
}

/// One image of a row. Geometry is always filled; `bytes` and `rgb` depend on the image mode.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    /// Pixels at `height` x `width`, RGB u8, row-major HWC; empty unless the image mode is
    /// [`super::ImageMode::Decoded`]. Dropped, the buffer goes back to the reader for the next
    /// image; [`super::Pixels::into_vec`] keeps it.
    pub rgb: super::Pixels,
    /// The stored bytes (see `encoding`); empty unless the image mode is [`super::ImageMode::Raw`].
    pub bytes: Vec<u8>,
    /// How `bytes` are encoded in the shard.
    pub encoding: crate::ImageEncoding,
    /// Trained size (multiples of 28 for Qwen2.5-VL).
    pub height: u32,
    pub width: u32,
    /// Size of the source image before the builder resized it: what an evaluation re-resizes from
    /// under another pixel budget.
    pub source_height: u32,
    pub source_width: u32,
    /// Patch grid `(t, h, w)`, as Qwen2.5-VL's `image_grid_thw`.
    pub grid: [i32; 3],
    /// Index in the row's `input_ids` of the image's first placeholder token.
    pub token_offset: u32,
    /// Placeholder tokens of the image.
    pub num_tokens: u32,
    /// Index of the packed sample (in `seq_lens`) the image belongs to.
    pub sample: u32,
}

// By hand: a failing assertion should print sizes, not megabytes of pixels.
impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("rgb", &self.rgb)
            .field("bytes", &format_args!("[{} bytes]", self.bytes.len()))
            .field("encoding", &self.encoding)
            .field("height", &self.height)
            .field("width", &self.width)
            .field("source_height", &self.source_height)
            .field("source_width", &self.source_width)
            .field("grid", &self.grid)
            .field("token_offset", &self.token_offset)
            .field("num_tokens", &self.num_tokens)
            .field("sample", &self.sample)
            .finish()
    }
}

/// One packed sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Name of the stage the row belongs to.
    pub stage: String,
    pub origin: RowOrigin,
    pub input_ids: Vec<i32>,
    pub loss_mask: Vec<u8>,
    /// `0, 1, ...` restarting at each packed sample.
    pub position_ids: Vec<i32>,
    /// Tokens of each packed sample.
    pub seq_lens: Vec<i32>,
    /// Provenance of each packed sample, parallel to `seq_lens`.
    pub samples: Vec<PackedSampleMeta>,
    /// Images in token order.
    pub images: Vec<Image>,
}

impl Row {
    /// `[0, l0, l0 + l1, ...]`: the cumulative sequence lengths flash-attn's varlen kernels take.
    pub fn cu_seqlens(&self) -> Vec<i32> {
        let mut out = Vec::with_capacity(self.seq_lens.len() + 1);
        let mut total = 0i32;
        out.push(0);
        for &len in &self.seq_lens {
            total = total.saturating_add(len);
            out.push(total);
        }
        out
    }
}

/// One rank's batch of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowBatch {
    /// `batch_size` rows, all of the same stage.
    pub rows: Vec<Row>,
    /// Index of the stage in the schedule.
    pub stage: usize,
    /// Epoch within the stage.
    pub epoch: u32,
    /// Order position (in the epoch, all ranks together) where this batch's global step begins:
    /// the steps of one epoch have increasing offsets, equal on every rank.
    pub offset: u64,
}

impl RowBatch {
    /// Tokens of all rows.
    pub fn tokens(&self) -> usize {
        self.rows.iter().map(|r| r.input_ids.len()).sum()
    }

    /// Images of all rows.
    pub fn images(&self) -> usize {
        self.rows.iter().map(|r| r.images.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cu_seqlens_prefix_sums_the_sample_lengths() {
        let row = Row {
            stage: "s".into(),
            origin: RowOrigin {
                stage: 0,
                shard: 0,
                row: 0,
            },
            input_ids: vec![0; 9],
            loss_mask: vec![0; 9],
            position_ids: vec![0; 9],
            seq_lens: vec![4, 2, 3],
            samples: Vec::new(),
            images: Vec::new(),
        };
        assert_eq!(row.cu_seqlens(), [0, 4, 6, 9]);
    }
}
