//! A reader's batch as one byte string, for a DataLoader worker to hand to the training process.
//!
//! A batch as a dict of numpy arrays pickles to about a megabyte per 16k tokens (six int64 values
//! per token), and a worker's pickling plus the training process's unpickling cost more CPU than
//! reading the batch. On the wire a batch is what the reader read: the rows' int32 tokens, u8 loss
//! mask, sample and image records, and the stored image bytes (a few bytes per token). The
//! training process rebuilds the [`RowBatch`] (position ids from the sample lengths, as the reader
//! derives them), decodes its images and computes the model inputs with the same code as a reader
//! in the training process, so the batches are the same either way.
//!
//! Layout, little-endian: the magic `MXW1`, the reader state after the batch (JSON), the batch's
//! stage index, epoch and offset, then each row: stage name, origin, `input_ids`, `loss_mask`,
//! `seq_lens`, samples (source, category, key, loss tokens) and images (stored
//! bytes, encoding, sizes, grid, token offset, token count, sample). Strings and sequences are
//! length-prefixed (u32). Decoded pixels never travel: the worker reads images raw.

use mixtape_shards::{Image, ImageEncoding, PackedSampleMeta, Row, RowBatch, reader::RowOrigin};

const MAGIC: &[u8; 4] = b"MXW1";

/// Why a byte string is not a batch this module wrote.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("not a mixtape wire batch (no MXW1 magic): was it written by this mixtape version?")]
    Magic,
    #[error("the wire batch ends early, reading {what}")]
    Truncated { what: &'static str },
    #[error("the wire batch has {0} bytes after its last row")]
    Trailing(usize),
    #[error("the wire batch's {what} is not UTF-8")]
    Utf8 { what: &'static str },
    #[error("the wire batch names image encoding {0}, which this mixtape version does not know")]
    Encoding(u8),
}

/// `batch` and the reader's `state` after it (JSON), as bytes for [`decode`].
pub fn encode(batch: &RowBatch, state: &str) -> Vec<u8> {
    let bytes: usize = batch
        .rows
        .iter()
        .map(|r| r.input_ids.len() * 5 + r.images.iter().map(|i| i.bytes.len() + 64).sum::<usize>())
        .sum();
    let mut out = Writer(Vec::with_capacity(bytes + 256 + state.len()));
    out.0.extend_from_slice(MAGIC);
    out.str(state);
    out.u64(batch.stage as u64);
    out.u32(batch.epoch);
    out.u64(batch.offset);
    out.len(batch.rows.len());
    for row in &batch.rows {
        out.str(&row.stage);
        out.u64(row.origin.stage as u64);
        out.u32(row.origin.shard);
        out.u64(row.origin.row);
        out.i32s(&row.input_ids);
        out.bytes(&row.loss_mask);
        out.i32s(&row.seq_lens);
        out.len(row.samples.len());
        for sample in &row.samples {
            out.str(&sample.source);
            out.str(&sample.category);
            out.str(&sample.key);
            out.u32(sample.loss_tokens);
        }
        out.len(row.images.len());
        for image in &row.images {
            out.bytes(&image.bytes);
            let encoding = ImageEncoding::ALL
                .iter()
                .position(|&e| e == image.encoding)
                .unwrap_or(0);
            out.0.push(encoding as u8);
            for side in [
                image.height,
                image.width,
                image.source_height,
                image.source_width,
            ] {
                out.u32(side);
            }
            for g in image.grid {
                out.u32(g as u32);
            }
            out.u32(image.token_offset);
            out.u32(image.num_tokens);
            out.u32(image.sample);
        }
    }
    out.0
}

/// The batch and state [`encode`] wrote; images have their stored bytes and no pixels.
pub fn decode(wire: &[u8]) -> Result<(RowBatch, String), WireError> {
    let mut input = Reader(wire);
    if input.take(4, "magic").ok() != Some(MAGIC.as_slice()) {
        return Err(WireError::Magic);
    }
    let state = input.str("state")?;
    let stage = input.u64("stage")? as usize;
    let epoch = input.u32("epoch")?;
    let offset = input.u64("offset")?;
    let rows = input.len("rows")?;
    let mut batch = RowBatch {
        rows: Vec::with_capacity(rows.min(wire.len())),
        stage,
        epoch,
        offset,
    };
    for _ in 0..rows {
        let stage = input.str("stage name")?;
        let origin = RowOrigin {
            stage: input.u64("origin")? as usize,
            shard: input.u32("origin")?,
            row: input.u64("origin")?,
        };
        let input_ids = input.i32s("input_ids")?;
        let loss_mask = input.bytes("loss_mask")?.to_vec();
        let seq_lens = input.i32s("seq_lens")?;
        let position_ids = mixtape_shards::row::position_ids(&seq_lens, input_ids.len());
        let count = input.len("samples")?;
        let mut samples = Vec::with_capacity(count.min(wire.len()));
        for _ in 0..count {
            samples.push(PackedSampleMeta {
                source: input.str("sample source")?,
                category: input.str("sample category")?,
                key: input.str("sample key")?,
                loss_tokens: input.u32("sample loss tokens")?,
            });
        }
        let count = input.len("images")?;
        let mut images = Vec::with_capacity(count.min(wire.len()));
        for _ in 0..count {
            let bytes = input.bytes("image bytes")?.to_vec();
            let code = input.take(1, "image encoding")?[0];
            let encoding = *ImageEncoding::ALL
                .get(usize::from(code))
                .ok_or(WireError::Encoding(code))?;
            let mut u32s = [0u32; 10];
            for value in &mut u32s {
                *value = input.u32("image geometry")?;
            }
            let [
                height,
                width,
                source_height,
                source_width,
                gt,
                gh,
                gw,
                token_offset,
                num_tokens,
                sample,
            ] = u32s;
            images.push(Image {
                rgb: Default::default(),
                bytes,
                encoding,
                height,
                width,
                source_height,
                source_width,
                grid: [gt as i32, gh as i32, gw as i32],
                token_offset,
                num_tokens,
                sample,
            });
        }
        batch.rows.push(Row {
            stage,
            origin,
            input_ids,
            loss_mask,
            position_ids,
            seq_lens,
            samples,
            images,
        });
    }
    if !input.0.is_empty() {
        return Err(WireError::Trailing(input.0.len()));
    }
    Ok((batch, state))
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    /// A length: rows, samples and bytes in a batch stay far below 2^32.
    fn len(&mut self, len: usize) {
        self.u32(u32::try_from(len).unwrap_or(u32::MAX));
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.0.extend_from_slice(bytes);
    }

    fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn i32s(&mut self, values: &[i32]) {
        self.len(values.len());
        self.0.reserve(values.len() * 4);
        for value in values {
            self.0.extend_from_slice(&value.to_le_bytes());
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated { what });
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let bytes = self.take(8, what)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    fn len(&mut self, what: &'static str) -> Result<usize, WireError> {
        Ok(self.u32(what)? as usize)
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.len(what)?;
        self.take(len, what)
    }

    fn str(&mut self, what: &'static str) -> Result<String, WireError> {
        let bytes = self.bytes(what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError::Utf8 { what })
    }

    fn i32s(&mut self, what: &'static str) -> Result<Vec<i32>, WireError> {
        let len = self.len(what)?;
        let bytes = self.take(len.saturating_mul(4), what)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}
