//! Token list columns decoded straight from their Parquet pages.
//!
//! arrow-rs decodes a `list<int32>` column by materialising a definition and a repetition level per
//! value and then walking every one of them to rebuild the list offsets (`ListArrayReader`): on the
//! demo shards that walk was a quarter of the streaming reader's CPU. A shard's `input_ids` and
//! `loss_mask` are required lists of required INT32 values (definition and repetition levels of at
//! most 1), so a row's length is the number of values parquet's record reader returns for that one
//! row, and reading row by row yields the offsets with no walk at all. A column of any other shape (a
//! file written by another tool) is left to arrow; both paths give the same Arrow column.

use std::sync::Arc;

use arrow_array::builder::OffsetBufferBuilder;
use arrow_array::{ArrayRef, Int32Array, ListArray, RecordBatch, UInt8Array};
use arrow_schema::{DataType, FieldRef, Schema};
use parquet::basic::Type as PhysicalType;
use parquet::column::reader::{ColumnReaderImpl, get_typed_column_reader};
use parquet::data_type::Int32Type;
use parquet::errors::ParquetError;
use parquet::file::metadata::page_index::RowGroupPageIndex;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::RowGroupReader;
use parquet::file::serialized_reader::SerializedRowGroupReader;
use parquet::schema::types::SchemaDescriptor;

/// The leaf index of list column `column` when it can be decoded directly: a required list of
/// required INT32 values, as mixtape writes it.
pub(super) fn direct_leaf(schema: &SchemaDescriptor, column: &str) -> Option<usize> {
    (0..schema.num_columns()).find(|&i| {
        let leaf = schema.column(i);
        let parts = leaf.path().parts();
        parts.len() == 3
            && parts[0] == column
            && leaf.max_def_level() == 1
            && leaf.max_rep_level() == 1
            && leaf.physical_type() == PhysicalType::INT32
    })
}

/// Batches of one directly decoded list column, `batch_rows` rows each (the last one shorter):
/// the same row counts as arrow's reader with that batch size.
pub(super) struct DirectList {
    reader: ColumnReaderImpl<Int32Type>,
    rows_left: usize,
    /// Values per row in the column chunk on average, to size each batch's buffer once.
    values_per_row: usize,
    batch_rows: usize,
    /// The Arrow field of the column: a list of Int32 or UInt8.
    field: FieldRef,
    def_levels: Vec<i16>,
    rep_levels: Vec<i16>,
}

impl DirectList {
    /// Opens leaf `leaf` of row group `row_group` in `file`, to come out as `field`.
    pub(super) fn try_new(
        file: std::fs::File,
        metadata: &ParquetMetaData,
        row_group: usize,
        leaf: usize,
        field: FieldRef,
        batch_rows: usize,
    ) -> Result<Self, ParquetError> {
        let group = metadata.row_group(row_group);
        let props = Arc::new(ReaderProperties::builder().build());
        let reader =
            SerializedRowGroupReader::new(Arc::new(file), group, RowGroupPageIndex::new(row_group, None), props)?;
        let reader = get_typed_column_reader::<Int32Type>(reader.get_column_reader(leaf)?);
        let rows_left = usize::try_from(group.num_rows())
            .map_err(|_| ParquetError::General(format!("row group {row_group} has a negative row count")))?;
        let values = usize::try_from(group.column(leaf).num_values()).unwrap_or(0);
        let values_per_row = values.div_ceil(rows_left.max(1));
        let (def_levels, rep_levels) = (Vec::new(), Vec::new());
        Ok(Self { reader, rows_left, values_per_row, batch_rows: batch_rows.max(1), field, def_levels, rep_levels })
    }

    fn next_batch(&mut self) -> Result<RecordBatch, ParquetError> {
        let rows = self.rows_left.min(self.batch_rows);
        // Sized once: growing by doubling copies, and touches about twice the bytes.
        let mut values: Vec<i32> = Vec::with_capacity(rows.saturating_mul(self.values_per_row));
        let mut lengths = Vec::with_capacity(rows);
        for _ in 0..rows {
            self.def_levels.clear();
            self.rep_levels.clear();
            let before = values.len();
            let (records, _, _) =
                self.reader.read_records(1, Some(&mut self.def_levels), Some(&mut self.rep_levels), &mut values)?;
            if records != 1 {
                return Err(ParquetError::General(format!(
                    "column `{}` ends {} rows before its row group",
                    self.field.name(),
                    self.rows_left
                )));
            }
            lengths.push(values.len() - before);
            self.rows_left -= 1;
        }
        if i32::try_from(values.len()).is_err() {
            return Err(ParquetError::General(format!(
                "column `{}` holds {} values in {rows} rows, more than Arrow's int32 offsets allow",
                self.field.name(),
                values.len()
            )));
        }
        let DataType::List(element) = self.field.data_type() else {
            return Err(ParquetError::General(format!("column `{}` is not a list", self.field.name())));
        };
        let values: ArrayRef = match element.data_type() {
            DataType::Int32 => Arc::new(Int32Array::from(values)),
            DataType::UInt8 => {
                let bytes = values.iter().map(|&v| u8::try_from(v)).collect::<Result<Vec<u8>, _>>().map_err(|_| {
                    ParquetError::General(format!("column `{}` holds a value outside 0..=255", self.field.name()))
                })?;
                Arc::new(UInt8Array::from(bytes))
            }
            other => {
                return Err(ParquetError::General(format!(
                    "column `{}` has elements of type {other}, not Int32 or UInt8",
                    self.field.name()
                )));
            }
        };
        let mut offsets = OffsetBufferBuilder::<i32>::new(lengths.len());
        for length in lengths {
            // Cannot overflow: the values' total fits an i32 (checked above).
            offsets.push_length(length);
        }
        let list = ListArray::try_new(element.clone(), offsets.finish(), values, None)?;
        Ok(RecordBatch::try_new(Arc::new(Schema::new(vec![self.field.clone()])), vec![Arc::new(list)])?)
    }
}

impl Iterator for DirectList {
    type Item = Result<RecordBatch, ParquetError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rows_left == 0 {
            return None;
        }
        let batch = self.next_batch();
        if batch.is_err() {
            // One error, then nothing: the column is unusable.
            self.rows_left = 0;
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use parquet::schema::parser::parse_message_type;

    use super::*;

    fn schema(message: &str) -> SchemaDescriptor {
        SchemaDescriptor::new(Arc::new(parse_message_type(message).unwrap()))
    }

    #[test]
    fn only_required_lists_of_required_int32_are_decoded_directly() {
        let shard_like = schema(
            "message shard {
                required group input_ids (LIST) { repeated group list { required int32 element; } }
                required group loss_mask (LIST) { repeated group list { required int32 element (INTEGER(8, false)); } }
            }",
        );
        assert_eq!(direct_leaf(&shard_like, "input_ids"), Some(0));
        assert_eq!(direct_leaf(&shard_like, "loss_mask"), Some(1));
        assert_eq!(direct_leaf(&shard_like, "seq_lens"), None);
        // What another writer might produce: nullable lists or elements, or 64-bit ids.
        let other = schema(
            "message other {
                optional group input_ids (LIST) { repeated group list { optional int32 element; } }
                required group loss_mask (LIST) { repeated group list { optional int32 element; } }
                required group seq_lens (LIST) { repeated group list { required int64 element; } }
            }",
        );
        for column in ["input_ids", "loss_mask", "seq_lens"] {
            assert_eq!(direct_leaf(&other, column), None, "{column}");
        }
    }
}
