//! Token list columns decoded straight from their Parquet pages.
//!
//! arrow-rs decodes a `list<int32>` column by materialising a definition and a repetition level per
//! value and then walking every one of them to rebuild the list offsets (`ListArrayReader`): on the
//! demo shards that walk was a quarter of the streaming reader's CPU. A shard's `input_ids` and
//! `loss_mask` are required lists of required INT32 values (definition and repetition levels of at
//! most 1), so a row's length is the number of values parquet's record reader returns for that one
//! row, and reading row by row yields the offsets with no walk at all. Each row comes out as the
//! vector a [`crate::PackedRow`] keeps, with no Arrow array in between: the token columns are most
//! of a row group, and every intermediate copy is memory a fresh reader process must fault in. A
//! column of any other shape (a file written by another tool) is left to arrow; both paths give the
//! same rows.

use std::sync::Arc;

use arrow_schema::{DataType, Field};
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

/// One batch of a directly decoded list column: each row's values in a vector of its own, of the
/// column's Arrow element type.
#[derive(Debug)]
pub(super) enum RowLists {
    Int32(Vec<Vec<i32>>),
    UInt8(Vec<Vec<u8>>),
}

/// Batches of one directly decoded list column, `batch_rows` rows each (the last one shorter):
/// the same row counts as arrow's reader with that batch size.
pub(super) struct DirectList {
    reader: ColumnReaderImpl<Int32Type>,
    rows_left: usize,
    batch_rows: usize,
    /// The column's name, for errors.
    column: String,
    /// Whether the Arrow element type is UInt8 (`loss_mask`) rather than Int32.
    bytes: bool,
    /// One row's values as parquet decodes them, reused from row to row: each row is then copied
    /// once into a vector of its exact length, the one the row keeps, and nothing else is
    /// allocated per row.
    row: Vec<i32>,
    def_levels: Vec<i16>,
    rep_levels: Vec<i16>,
}

impl std::fmt::Display for RowLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Int32(_) => "lists of Int32",
            Self::UInt8(_) => "lists of UInt8",
        })
    }
}

impl DirectList {
    /// Opens leaf `leaf` of row group `row_group` in `file`, to come out as rows of `field`'s
    /// element type (a list of Int32 or UInt8).
    pub(super) fn try_new(
        file: std::fs::File,
        metadata: &ParquetMetaData,
        row_group: usize,
        leaf: usize,
        field: &Field,
        batch_rows: usize,
    ) -> Result<Self, ParquetError> {
        let column = field.name().to_string();
        let bytes = match field.data_type() {
            DataType::List(element) if element.data_type() == &DataType::Int32 => false,
            DataType::List(element) if element.data_type() == &DataType::UInt8 => true,
            other => {
                return Err(ParquetError::General(format!(
                    "column `{column}` is {other}, not a list of Int32 or UInt8"
                )));
            }
        };
        let group = metadata.row_group(row_group);
        let props = Arc::new(ReaderProperties::builder().build());
        let reader =
            SerializedRowGroupReader::new(Arc::new(file), group, RowGroupPageIndex::new(row_group, None), props)?;
        let reader = get_typed_column_reader::<Int32Type>(reader.get_column_reader(leaf)?);
        let rows_left = usize::try_from(group.num_rows())
            .map_err(|_| ParquetError::General(format!("row group {row_group} has a negative row count")))?;
        let (row, def_levels, rep_levels) = (Vec::new(), Vec::new(), Vec::new());
        Ok(Self { reader, rows_left, batch_rows: batch_rows.max(1), column, bytes, row, def_levels, rep_levels })
    }

    /// Decodes the next row into `self.row`.
    fn read_row(&mut self) -> Result<(), ParquetError> {
        self.row.clear();
        self.def_levels.clear();
        self.rep_levels.clear();
        let (records, _, _) =
            self.reader.read_records(1, Some(&mut self.def_levels), Some(&mut self.rep_levels), &mut self.row)?;
        if records != 1 {
            return Err(ParquetError::General(format!(
                "column `{}` ends {} rows before its row group",
                self.column, self.rows_left
            )));
        }
        self.rows_left -= 1;
        Ok(())
    }

    fn next_batch(&mut self) -> Result<RowLists, ParquetError> {
        let rows = self.rows_left.min(self.batch_rows);
        if !self.bytes {
            let mut out = Vec::with_capacity(rows);
            for _ in 0..rows {
                self.read_row()?;
                out.push(self.row.clone());
            }
            return Ok(RowLists::Int32(out));
        }
        let mut out = Vec::with_capacity(rows);
        for _ in 0..rows {
            self.read_row()?;
            // Checked first, then narrowed in a loop the compiler vectorises (a fallible collect
            // does not).
            if let Some(bad) = self.row.iter().find(|&&v| u8::try_from(v).is_err()) {
                return Err(ParquetError::General(format!(
                    "column `{}` holds {bad}, outside 0..=255",
                    self.column
                )));
            }
            out.push(self.row.iter().map(|&v| v as u8).collect());
        }
        Ok(RowLists::UInt8(out))
    }
}

impl Iterator for DirectList {
    type Item = Result<RowLists, ParquetError>;

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

    /// A one-column file holding `loss_mask` rows (INT32 annotated as UInt8, as mixtape writes it).
    fn loss_mask_file(dir: &std::path::Path, rows: &[&[i32]]) -> std::path::PathBuf {
        use parquet::file::writer::SerializedFileWriter;
        let message = "message shard {
            required group loss_mask (LIST) { repeated group list { required int32 element (INTEGER(8, false)); } }
        }";
        let path = dir.join("loss-mask.parquet");
        let props = Arc::new(parquet::file::properties::WriterProperties::builder().build());
        let schema = Arc::new(parse_message_type(message).unwrap());
        let mut writer = SerializedFileWriter::new(std::fs::File::create(&path).unwrap(), schema, props).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        let values: Vec<i32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        let def = vec![1i16; values.len()];
        let rep: Vec<i16> = rows.iter().flat_map(|r| (0..r.len()).map(|i| i16::from(i > 0))).collect();
        column.typed::<Int32Type>().write_batch(&values, Some(&def), Some(&rep)).unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
        path
    }

    fn read_loss_mask(path: &std::path::Path, batch_rows: usize) -> Vec<Result<RowLists, ParquetError>> {
        use parquet::file::reader::FileReader;
        let file = std::fs::File::open(path).unwrap();
        let metadata = parquet::file::serialized_reader::SerializedFileReader::new(file.try_clone().unwrap())
            .unwrap()
            .metadata()
            .clone();
        let element = Arc::new(Field::new("element", DataType::UInt8, false));
        let field = Field::new("loss_mask", DataType::List(element), false);
        DirectList::try_new(file, &metadata, 0, 0, &field, batch_rows).unwrap().collect()
    }

    #[test]
    fn rows_come_out_one_vector_each_in_batches_of_the_requested_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = loss_mask_file(dir.path(), &[&[0, 1, 1], &[1], &[0, 0], &[1, 0, 1, 1]]);
        let batches: Vec<Vec<Vec<u8>>> = read_loss_mask(&path, 3)
            .into_iter()
            .map(|batch| match batch.unwrap() {
                RowLists::UInt8(rows) => rows,
                other => panic!("loss_mask decoded as {other}"),
            })
            .collect();
        assert_eq!(batches, [vec![vec![0, 1, 1], vec![1], vec![0, 0]], vec![vec![1, 0, 1, 1]]]);
    }

    #[test]
    fn a_loss_mask_value_beyond_a_byte_is_an_error_naming_the_column_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = loss_mask_file(dir.path(), &[&[0, 1], &[1, 300]]);
        let batches = read_loss_mask(&path, 8);
        assert_eq!(batches.len(), 1, "one error, then nothing");
        let message = batches[0].as_ref().unwrap_err().to_string();
        assert!(message.contains("`loss_mask`") && message.contains("300"), "{message}");
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
