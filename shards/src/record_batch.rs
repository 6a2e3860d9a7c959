//! The mapping between [`PackedRow`]s and Arrow record batches of the shard schema, both ways (this
//! module is named for the Arrow `RecordBatch`, not for the reader's [`crate::RowBatch`]).
//!
//! Encoding flattens each column's values across rows and builds offsets once per column, rather
//! than appending row by row through Arrow builders: it is simpler and it lets every size limit be
//! checked up front. Arrow's offset-building helpers panic when a column passes `i32::MAX` entries
//! or bytes, so [`encode`] checks the totals first and reports [`EncodeError`] instead; the writer
//! keeps row groups far below that limit anyway.
//!
//! Decoding looks columns up by name and checks every type and every null count, so a file written
//! by another tool (or damaged) is reported column by column instead of panicking on a downcast. It
//! also checks that stored `position_ids` equal the ones `seq_lens` imply, since nothing else would
//! notice if they drifted apart.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, OffsetBufferBuilder};
use arrow_array::{
    Array, ArrayRef, BinaryArray, Int32Array, ListArray, RecordBatch, StringArray, StructArray,
    UInt8Array,
};
use arrow_schema::DataType;

use crate::schema::{columns, element, image_fields, shard_schema};
use crate::{ImageEncoding, PackedRow, PackedSampleMeta, ShardImage};

/// A batch could not be built; the writer adds the file and row group.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error(
        "column `{column}` would hold {total} values in one row group, more than Parquet's int32 offsets allow: lower max_row_group_bytes or max_rows_per_row_group"
    )]
    TooLarge { column: &'static str, total: u64 },
    #[error("arrow refused column `{column}`: {detail}")]
    Arrow {
        column: &'static str,
        detail: String,
    },
}

/// A batch does not hold valid shard rows; the reader adds the file and row group.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("column `{column}`{}: {detail}", row.map(|r| format!(", row {r}")).unwrap_or_default())]
pub struct DecodeError {
    pub column: String,
    /// Row within the batch, when the problem is local to one row.
    pub row: Option<usize>,
    pub detail: String,
}

/// Builds one record batch of the shard schema from `rows` (already validated).
pub(crate) fn encode(rows: &[PackedRow]) -> Result<RecordBatch, EncodeError> {
    use columns::*;
    let tokens = total(INPUT_IDS, rows.iter().map(|r| r.input_ids.len()))?;
    let samples = total(SEQ_LENS, rows.iter().map(|r| r.seq_lens.len()))?;
    let images = total(IMAGES, rows.iter().map(|r| r.images.len()))?;
    let image_bytes = total(
        image::BYTES,
        rows.iter().flat_map(|r| &r.images).map(|i| i.bytes.len()),
    )?;
    for (column, text) in [
        (
            SAMPLE_SOURCE,
            (|s: &PackedSampleMeta| s.source.len()) as fn(&PackedSampleMeta) -> usize,
        ),
        (SAMPLE_CATEGORY, |s| s.category.len()),
        (SAMPLE_KEY, |s| s.key.len()),
    ] {
        total(column, rows.iter().flat_map(|r| &r.samples).map(text))?;
    }

    let mut input_ids = Vec::with_capacity(tokens);
    let mut loss_mask = Vec::with_capacity(tokens);
    let mut position_ids = Vec::with_capacity(tokens);
    let mut seq_lens = Vec::with_capacity(samples);
    for row in rows {
        input_ids.extend_from_slice(&row.input_ids);
        loss_mask.extend_from_slice(&row.loss_mask);
        position_ids.extend(row.position_ids());
        seq_lens.extend_from_slice(&row.seq_lens);
    }
    let sample_meta = || rows.iter().flat_map(|r| &r.samples);
    let loss_tokens: Vec<i32> = sample_meta()
        .map(|s| to_i32(s.loss_tokens))
        .collect::<Result<_, _>>()?;
    let token_lengths = || rows.iter().map(|r| r.input_ids.len());
    let sample_lengths = || rows.iter().map(|r| r.seq_lens.len());

    let columns: Vec<ArrayRef> = vec![
        list(
            INPUT_IDS,
            DataType::Int32,
            token_lengths(),
            Arc::new(Int32Array::from(input_ids)),
        )?,
        list(
            LOSS_MASK,
            DataType::UInt8,
            token_lengths(),
            Arc::new(UInt8Array::from(loss_mask)),
        )?,
        list(
            POSITION_IDS,
            DataType::Int32,
            token_lengths(),
            Arc::new(Int32Array::from(position_ids)),
        )?,
        list(
            SEQ_LENS,
            DataType::Int32,
            sample_lengths(),
            Arc::new(Int32Array::from(seq_lens)),
        )?,
        strings(
            SAMPLE_SOURCE,
            sample_lengths(),
            sample_meta().map(|s| s.source.as_str()),
        )?,
        strings(
            SAMPLE_CATEGORY,
            sample_lengths(),
            sample_meta().map(|s| s.category.as_str()),
        )?,
        strings(
            SAMPLE_KEY,
            sample_lengths(),
            sample_meta().map(|s| s.key.as_str()),
        )?,
        list(
            SAMPLE_LOSS_TOKENS,
            DataType::Int32,
            sample_lengths(),
            Arc::new(Int32Array::from(loss_tokens)),
        )?,
        list(
            IMAGES,
            DataType::Struct(image_fields()),
            rows.iter().map(|r| r.images.len()),
            Arc::new(image_struct(rows, images, image_bytes)?),
        )?,
    ];
    RecordBatch::try_new(shard_schema(), columns).map_err(|e| EncodeError::Arrow {
        column: "(batch)",
        detail: e.to_string(),
    })
}

fn total(column: &'static str, lengths: impl Iterator<Item = usize>) -> Result<usize, EncodeError> {
    let total: u64 = lengths.map(|l| l as u64).sum();
    if total > i32::MAX as u64 {
        Err(EncodeError::TooLarge { column, total })
    } else {
        Ok(total as usize)
    }
}

fn to_i32(value: u32) -> Result<i32, EncodeError> {
    i32::try_from(value).map_err(|_| EncodeError::TooLarge {
        column: "(int32 value)",
        total: u64::from(value),
    })
}

fn list(
    column: &'static str,
    data_type: DataType,
    lengths: impl ExactSizeIterator<Item = usize>,
    values: ArrayRef,
) -> Result<ArrayRef, EncodeError> {
    let arrow = |detail: String| EncodeError::Arrow { column, detail };
    let mut offsets = OffsetBufferBuilder::<i32>::new(lengths.len());
    for length in lengths {
        offsets
            .try_push_length(length)
            .map_err(|e| arrow(e.to_string()))?;
    }
    let offsets = offsets.try_finish().map_err(|e| arrow(e.to_string()))?;
    let list = ListArray::try_new(element(data_type), offsets, values, None)
        .map_err(|e| arrow(e.to_string()))?;
    Ok(Arc::new(list))
}

fn strings<'a>(
    column: &'static str,
    lengths: impl ExactSizeIterator<Item = usize>,
    values: impl Iterator<Item = &'a str>,
) -> Result<ArrayRef, EncodeError> {
    list(
        column,
        DataType::Utf8,
        lengths,
        Arc::new(StringArray::from_iter_values(values)),
    )
}

/// The `images` struct column: `count` images holding `bytes` encoded bytes in all.
fn image_struct(
    rows: &[PackedRow],
    count: usize,
    bytes: usize,
) -> Result<StructArray, EncodeError> {
    let images = || rows.iter().flat_map(|r| &r.images);
    // Sized up front: growing a buffer of tens of MB by doubling was 15% of a build's final flush.
    let mut image_bytes = BinaryBuilder::with_capacity(count, bytes);
    for image in images() {
        image_bytes.append_value(&image.bytes);
    }
    let int = |field: fn(&ShardImage) -> u32| -> Result<ArrayRef, EncodeError> {
        let mut values = Vec::with_capacity(count);
        for image in images() {
            values.push(to_i32(field(image))?);
        }
        Ok(Arc::new(Int32Array::from(values)))
    };
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(image_bytes.finish()),
        Arc::new(StringArray::from_iter_values(
            images().map(|i| i.encoding.as_str()),
        )),
        int(|i| i.height)?,
        int(|i| i.width)?,
        int(|i| i.source_height)?,
        int(|i| i.source_width)?,
        int(|i| i.grid_t)?,
        int(|i| i.grid_h)?,
        int(|i| i.grid_w)?,
        int(|i| i.token_offset)?,
        int(|i| i.num_tokens)?,
        int(|i| i.sample)?,
    ];
    StructArray::try_new(image_fields(), arrays, None).map_err(|e| EncodeError::Arrow {
        column: columns::IMAGES,
        detail: e.to_string(),
    })
}

/// A list column viewed as per-row ranges into its (downcast) values.
struct Lists<'a, T> {
    offsets: &'a [i32],
    values: &'a T,
}

impl<T> Lists<'_, T> {
    fn range(&self, row: usize) -> Range<usize> {
        // Offsets of a valid ListArray are non-negative and non-decreasing.
        self.offsets[row] as usize..self.offsets[row + 1] as usize
    }
}

fn error(column: &str, row: Option<usize>, detail: impl Into<String>) -> DecodeError {
    DecodeError {
        column: column.to_string(),
        row,
        detail: detail.into(),
    }
}

fn downcast<'a, T: Array + 'static>(
    column: &str,
    array: &'a ArrayRef,
    want: &str,
) -> Result<&'a T, DecodeError> {
    let typed = array.as_any().downcast_ref::<T>().ok_or_else(|| {
        error(
            column,
            None,
            format!("expected {want}, found {}", array.data_type()),
        )
    })?;
    if typed.null_count() > 0 {
        return Err(error(
            column,
            None,
            format!(
                "holds {} nulls; shard columns are never null",
                typed.null_count()
            ),
        ));
    }
    Ok(typed)
}

fn lists<'a, T: Array + 'static>(
    batch: &'a RecordBatch,
    column: &'static str,
    want: &str,
) -> Result<Lists<'a, T>, DecodeError> {
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| error(column, None, "column is missing"))?;
    let list: &ListArray = downcast(column, array, &format!("list<{want}>"))?;
    let values = downcast(column, list.values(), &format!("list<{want}>"))?;
    Ok(Lists {
        offsets: list.value_offsets(),
        values,
    })
}

fn child<'a, T: Array + 'static>(
    images: &'a StructArray,
    name: &str,
    want: &str,
) -> Result<&'a T, DecodeError> {
    let column = format!("images.{name}");
    let array = images
        .column_by_name(name)
        .ok_or_else(|| error(&column, None, "field is missing"))?;
    downcast(&column, array, want)
}

/// Columns of a batch already split into one vector per row (the reader decodes them straight from
/// their Parquet pages): a column given here is not looked up in the Arrow batch, and its vectors
/// become the rows' own, uncopied.
#[derive(Debug, Default)]
pub(crate) struct DirectColumns {
    pub input_ids: Option<Vec<Vec<i32>>>,
    pub loss_mask: Option<Vec<Vec<u8>>>,
    /// Each row's images' bytes, in order; the Arrow batch's `images` then has no `bytes` field.
    pub image_bytes: Option<Vec<Vec<Vec<u8>>>>,
}

/// One token list column of a batch, row by row: split rows handed over, or ranges copied out of
/// an Arrow list column.
enum TokenColumn<'a, A, T> {
    Split(std::vec::IntoIter<Vec<T>>),
    Arrow(Lists<'a, A>),
}

impl<'a, A: Array + 'static, T: Copy> TokenColumn<'a, A, T> {
    fn new(
        batch: &'a RecordBatch,
        column: &'static str,
        want: &str,
        split: Option<Vec<Vec<T>>>,
    ) -> Result<Self, DecodeError> {
        match split {
            Some(rows) => Ok(Self::Split(split_rows(batch, column, rows)?)),
            None => Ok(Self::Arrow(lists::<A>(batch, column, want)?)),
        }
    }

    /// Row `row`'s values; rows are taken in order, each once.
    fn take(&mut self, row: usize, values: impl Fn(&A) -> &[T]) -> Vec<T> {
        match self {
            // Never short: split_rows checked the length against the batch's rows.
            Self::Split(rows) => rows.next().unwrap_or_default(),
            Self::Arrow(lists) => values(lists.values)[lists.range(row)].to_vec(),
        }
    }
}

/// The rows of a directly decoded column, one by one, checked to be as many as `batch`'s.
fn split_rows<T>(
    batch: &RecordBatch,
    column: &str,
    rows: Vec<T>,
) -> Result<std::vec::IntoIter<T>, DecodeError> {
    if rows.len() != batch.num_rows() {
        let detail = format!(
            "{} rows decoded from its pages, {} in the other columns",
            rows.len(),
            batch.num_rows()
        );
        return Err(error(column, None, detail));
    }
    Ok(rows.into_iter())
}

/// Reads the rows of one record batch of the shard schema. A batch read without the
/// `images.bytes` field (see [`crate::ReadColumns`]) gives images with empty `bytes`; one read
/// without `position_ids` skips their check against `seq_lens`.
#[cfg(test)]
pub(crate) fn decode(batch: &RecordBatch) -> Result<Vec<PackedRow>, DecodeError> {
    decode_with(batch, DirectColumns::default())
}

/// Like [`decode`], with the columns that `direct` holds taken from there.
pub(crate) fn decode_with(
    batch: &RecordBatch,
    direct: DirectColumns,
) -> Result<Vec<PackedRow>, DecodeError> {
    use columns::*;
    let mut input_ids =
        TokenColumn::<Int32Array, i32>::new(batch, INPUT_IDS, "int32", direct.input_ids)?;
    let mut loss_mask =
        TokenColumn::<UInt8Array, u8>::new(batch, LOSS_MASK, "uint8", direct.loss_mask)?;
    let mut image_bytes = direct
        .image_bytes
        .map(|rows| split_rows(batch, "images.bytes", rows))
        .transpose()?;
    let position_ids = match batch.column_by_name(POSITION_IDS) {
        Some(_) => Some(lists::<Int32Array>(batch, POSITION_IDS, "int32")?),
        None => None,
    };
    let seq_lens = lists::<Int32Array>(batch, SEQ_LENS, "int32")?;
    let sources = lists::<StringArray>(batch, SAMPLE_SOURCE, "utf8")?;
    let categories = lists::<StringArray>(batch, SAMPLE_CATEGORY, "utf8")?;
    let keys = lists::<StringArray>(batch, SAMPLE_KEY, "utf8")?;
    let loss_tokens = lists::<Int32Array>(batch, SAMPLE_LOSS_TOKENS, "int32")?;
    let images = lists::<StructArray>(batch, IMAGES, "struct")?;
    let image_columns = ImageColumns::try_new(images.values)?;

    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let sample_range = seq_lens.range(r);
        for (column, other) in [
            (SAMPLE_SOURCE, sources.range(r)),
            (SAMPLE_CATEGORY, categories.range(r)),
            (SAMPLE_KEY, keys.range(r)),
            (SAMPLE_LOSS_TOKENS, loss_tokens.range(r)),
        ] {
            if other.len() != sample_range.len() {
                return Err(error(
                    column,
                    Some(r),
                    format!(
                        "{} entries for {} packed samples",
                        other.len(),
                        sample_range.len()
                    ),
                ));
            }
        }
        let mut samples = Vec::with_capacity(sample_range.len());
        for k in 0..sample_range.len() {
            let loss = loss_tokens.values.value(loss_tokens.range(r).start + k);
            samples.push(PackedSampleMeta {
                source: sources.values.value(sources.range(r).start + k).to_string(),
                category: categories
                    .values
                    .value(categories.range(r).start + k)
                    .to_string(),
                key: keys.values.value(keys.range(r).start + k).to_string(),
                loss_tokens: u32::try_from(loss).map_err(|_| {
                    error(SAMPLE_LOSS_TOKENS, Some(r), format!("{loss} is negative"))
                })?,
            });
        }
        let mut row = PackedRow {
            input_ids: input_ids.take(r, |a| a.values()),
            loss_mask: loss_mask.take(r, |a| a.values()),
            seq_lens: seq_lens.values.values()[sample_range].to_vec(),
            samples,
            images: images
                .range(r)
                .map(|i| image_columns.image(i, r))
                .collect::<Result<_, _>>()?,
        };
        if let Some(rows) = image_bytes.as_mut() {
            // Never short: split_rows checked the length against the batch's rows.
            let bytes = rows.next().unwrap_or_default();
            if bytes.len() != row.images.len() {
                let detail = format!(
                    "{} byte strings for {} images",
                    bytes.len(),
                    row.images.len()
                );
                return Err(error("images.bytes", Some(r), detail));
            }
            for (image, bytes) in row.images.iter_mut().zip(bytes) {
                image.bytes = bytes;
            }
        }
        if let Some(position_ids) = &position_ids
            && position_ids.values.values()[position_ids.range(r)] != row.position_ids()
        {
            return Err(error(
                POSITION_IDS,
                Some(r),
                "do not count 0, 1, 2, ... within each packed sample as seq_lens imply",
            ));
        }
        rows.push(row);
    }
    Ok(rows)
}

struct ImageColumns<'a> {
    /// `None` when the batch was read without the image bytes.
    bytes: Option<&'a BinaryArray>,
    encoding: &'a StringArray,
    ints: [&'a Int32Array; 10],
}

const IMAGE_INTS: [&str; 10] = {
    use columns::image::*;
    [
        HEIGHT,
        WIDTH,
        SOURCE_HEIGHT,
        SOURCE_WIDTH,
        GRID_T,
        GRID_H,
        GRID_W,
        TOKEN_OFFSET,
        NUM_TOKENS,
        SAMPLE,
    ]
};

impl<'a> ImageColumns<'a> {
    fn try_new(images: &'a StructArray) -> Result<Self, DecodeError> {
        let mut ints = Vec::with_capacity(IMAGE_INTS.len());
        for name in IMAGE_INTS {
            ints.push(child::<Int32Array>(images, name, "int32")?);
        }
        Ok(Self {
            bytes: match images.column_by_name(columns::image::BYTES) {
                Some(_) => Some(child(images, columns::image::BYTES, "binary")?),
                None => None,
            },
            encoding: child(images, columns::image::ENCODING, "utf8")?,
            ints: ints
                .try_into()
                .map_err(|_| error(columns::IMAGES, None, "internal: image field count"))?,
        })
    }

    fn image(&self, i: usize, row: usize) -> Result<ShardImage, DecodeError> {
        let encoding = self.encoding.value(i);
        let mut ints = [0u32; 10];
        for ((slot, array), name) in ints.iter_mut().zip(self.ints).zip(IMAGE_INTS) {
            let value = array.value(i);
            *slot = u32::try_from(value).map_err(|_| {
                error(
                    &format!("images.{name}"),
                    Some(row),
                    format!("{value} is negative"),
                )
            })?;
        }
        let [
            height,
            width,
            source_height,
            source_width,
            grid_t,
            grid_h,
            grid_w,
            token_offset,
            num_tokens,
            sample,
        ] = ints;
        Ok(ShardImage {
            bytes: self.bytes.map(|b| b.value(i).to_vec()).unwrap_or_default(),
            encoding: ImageEncoding::parse(encoding).ok_or_else(|| {
                error(
                    "images.encoding",
                    Some(row),
                    format!("{encoding:?} is not one of \"jpeg\", \"png\", \"source\""),
                )
            })?,
            height,
            width,
            source_height,
            source_width,
            grid_t,
            grid_h,
            grid_w,
            token_offset,
            num_tokens,
            sample,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::row;

    #[test]
    fn rows_survive_encode_then_decode_unchanged() {
        let rows = vec![
            row(&[(10, 0), (20, 2)]),
            row(&[(7, 0)]),
            row(&[(30, 3), (8, 1)]),
        ];
        let batch = encode(&rows).unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(decode(&batch).unwrap(), rows);
    }

    #[test]
    fn an_empty_batch_encodes_and_decodes() {
        let batch = encode(&[]).unwrap();
        assert_eq!(batch.num_rows(), 0);
        assert_eq!(decode(&batch).unwrap(), Vec::<PackedRow>::new());
    }

    #[test]
    fn the_position_ids_column_restarts_at_each_sample() {
        let batch = encode(&[row(&[(3, 0), (2, 0)])]).unwrap();
        let positions = batch.column_by_name(columns::POSITION_IDS).unwrap();
        let positions = positions
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap()
            .value(0);
        let positions = positions.as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(positions.values().as_ref(), [0, 1, 2, 0, 1]);
    }

    #[test]
    fn drifted_position_ids_are_reported_with_their_row() {
        let rows = [row(&[(3, 0)]), row(&[(3, 0), (2, 0)])];
        let batch = encode(&rows).unwrap();
        // Re-encode with the second row's seq_lens changed but position_ids kept: splice columns.
        let mut other = rows.clone();
        other[1].seq_lens = vec![2, 3];
        let other = encode(&other).unwrap();
        let mut columns = batch.columns().to_vec();
        columns[3] = other.column(3).clone();
        let spliced = RecordBatch::try_new(batch.schema(), columns).unwrap();
        let err = decode(&spliced).unwrap_err();
        assert_eq!((err.column.as_str(), err.row), ("position_ids", Some(1)));
    }

    #[test]
    fn a_batch_of_another_schema_is_reported_by_column_not_by_panic() {
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![1, 2]));
        let batch = RecordBatch::try_from_iter([("input_ids", ints)]).unwrap();
        let err = decode(&batch).unwrap_err();
        assert_eq!(err.column, "input_ids");
        assert!(err.detail.contains("expected list<int32>"), "{err}");
    }
}
