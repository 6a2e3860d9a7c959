//! List columns decoded straight from their Parquet pages: the token lists and the image bytes.
//!
//! arrow-rs decodes a `list<int32>` column by materialising a definition and a repetition level per
//! value and then walking every one of them to rebuild the list offsets (`ListArrayReader`): on the
//! demo shards that walk was a quarter of the streaming reader's CPU. A shard's `input_ids` and
//! `loss_mask` are required lists of required INT32 values (definition and repetition levels of at
//! most 1), so a row's length is the number of values parquet's record reader returns for that one
//! row, and reading row by row yields the offsets with no walk at all. `images.bytes` has the same
//! shape with BYTE_ARRAY values: read as Arrow, a batch's image bytes were copied from the page into
//! one growing Arrow buffer and again into each image's vector; here each value is a slice of the
//! decompressed page, copied once into the vector the image keeps.
//!
//! Each row comes out as the vectors a [`crate::PackedRow`] keeps, with no Arrow array in between:
//! these columns are most of a row group, and every intermediate copy is memory a fresh reader
//! process must fault in. A column of any other shape (a file written by another tool) is left to
//! arrow; both paths give the same rows.

use std::sync::Arc;

use arrow_schema::{DataType, Field};
use parquet::basic::Type as PhysicalType;
use parquet::column::reader::{ColumnReaderImpl, get_typed_column_reader};
use parquet::data_type::{ByteArray, ByteArrayType, DataType as ParquetType, Int32Type};
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::metadata::page_index::RowGroupPageIndex;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::{ChunkReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedRowGroupReader;
use parquet::schema::types::SchemaDescriptor;

/// The index of leaf `path` when it can be decoded directly: a required list of required values of
/// type `physical` (definition and repetition levels of at most 1), as mixtape writes it.
pub(super) fn direct_leaf(
    schema: &SchemaDescriptor,
    path: &[&str],
    physical: PhysicalType,
) -> Option<usize> {
    (0..schema.num_columns()).find(|&i| {
        let leaf = schema.column(i);
        leaf.path()
            .parts()
            .iter()
            .map(String::as_str)
            .eq(path.iter().copied())
            && leaf.max_def_level() == 1
            && leaf.max_rep_level() == 1
            && leaf.physical_type() == physical
    })
}

/// One batch of a directly decoded column: each row's values in a vector of its own.
#[derive(Debug)]
pub(super) enum RowLists {
    Int32(Vec<Vec<i32>>),
    UInt8(Vec<Vec<u8>>),
    /// Each row's byte strings (its images' bytes), each in a vector of its own.
    Binary(Vec<Vec<Vec<u8>>>),
}

impl std::fmt::Display for RowLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Int32(_) => "lists of Int32",
            Self::UInt8(_) => "lists of UInt8",
            Self::Binary(_) => "lists of binary",
        })
    }
}

/// What a directly decoded column comes out as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Output {
    Int32,
    /// INT32 values narrowed to bytes (`loss_mask`), each checked to fit.
    UInt8,
    Binary,
}

impl Output {
    /// The output for an Arrow list field of Int32 or UInt8 elements.
    pub(super) fn of_int_list(field: &Field) -> Result<Self, ParquetError> {
        match field.data_type() {
            DataType::List(element) if element.data_type() == &DataType::Int32 => Ok(Self::Int32),
            DataType::List(element) if element.data_type() == &DataType::UInt8 => Ok(Self::UInt8),
            other => Err(ParquetError::General(format!(
                "column `{}` is {other}, not a list of Int32 or UInt8",
                field.name()
            ))),
        }
    }
}

/// One row's values at a time, as parquet's record reader gives them; the vector is reused from
/// row to row, so that each row is then copied once into vectors of their exact length, the ones
/// the row keeps, and nothing else is allocated per row.
struct RowReader<T: ParquetType> {
    reader: ColumnReaderImpl<T>,
    row: Vec<T::T>,
    def_levels: Vec<i16>,
    rep_levels: Vec<i16>,
}

impl<T: ParquetType> RowReader<T> {
    fn new(reader: ColumnReaderImpl<T>) -> Self {
        Self {
            reader,
            row: Vec::new(),
            def_levels: Vec::new(),
            rep_levels: Vec::new(),
        }
    }

    /// The next `rows` rows, each made by `convert` from its values. `column` and `rows_left` (the
    /// rows the row group has left) name a column that ends early.
    fn rows<O>(
        &mut self,
        rows: usize,
        column: &str,
        rows_left: usize,
        mut convert: impl FnMut(&[T::T]) -> Result<O, ParquetError>,
    ) -> Result<Vec<O>, ParquetError> {
        let mut out = Vec::with_capacity(rows);
        for read in 0..rows {
            self.row.clear();
            self.def_levels.clear();
            self.rep_levels.clear();
            let (records, _, _) = self.reader.read_records(
                1,
                Some(&mut self.def_levels),
                Some(&mut self.rep_levels),
                &mut self.row,
            )?;
            if records != 1 {
                let left = rows_left - read;
                return Err(ParquetError::General(format!(
                    "column `{column}` ends {left} rows before its row group"
                )));
            }
            out.push(convert(&self.row)?);
        }
        Ok(out)
    }
}

/// A leaf's reader, by what its rows come out as.
enum Leaf {
    Int32(RowReader<Int32Type>),
    /// INT32 values narrowed to bytes (`loss_mask`), each checked to fit.
    UInt8(RowReader<Int32Type>),
    Binary(RowReader<ByteArrayType>),
}

/// Batches of one directly decoded list column, `batch_rows` rows each (the last one shorter):
/// the same row counts as arrow's reader with that batch size.
pub(super) struct DirectList {
    leaf: Leaf,
    rows_left: usize,
    batch_rows: usize,
    /// The column's name, for errors.
    column: String,
}

impl DirectList {
    /// Opens leaf `leaf` (named `column`) of row group `row_group` in `file`, to come out as
    /// `output`: INT32 leaves as Int32 or UInt8, BYTE_ARRAY leaves as Binary.
    pub(super) fn try_new<R: ChunkReader + 'static>(
        file: Arc<R>,
        metadata: &ParquetMetaData,
        row_group: usize,
        leaf: usize,
        column: &str,
        output: Output,
        batch_rows: usize,
    ) -> Result<Self, ParquetError> {
        let group = metadata.row_group(row_group);
        let props = Arc::new(ReaderProperties::builder().build());
        let reader = SerializedRowGroupReader::new(
            file,
            group,
            RowGroupPageIndex::new(row_group, None),
            props,
        )?;
        let reader = reader.get_column_reader(leaf)?;
        let physical = group.column(leaf).column_type();
        let leaf = match (physical, output) {
            (PhysicalType::INT32, Output::Int32) => {
                Leaf::Int32(RowReader::new(get_typed_column_reader(reader)))
            }
            (PhysicalType::INT32, Output::UInt8) => {
                Leaf::UInt8(RowReader::new(get_typed_column_reader(reader)))
            }
            (PhysicalType::BYTE_ARRAY, Output::Binary) => {
                Leaf::Binary(RowReader::new(get_typed_column_reader(reader)))
            }
            (physical, output) => {
                return Err(ParquetError::General(format!(
                    "column `{column}` holds {physical} values, which do not decode as {output:?}"
                )));
            }
        };
        let rows_left = usize::try_from(group.num_rows()).map_err(|_| {
            ParquetError::General(format!("row group {row_group} has a negative row count"))
        })?;
        Ok(Self {
            leaf,
            rows_left,
            batch_rows: batch_rows.max(1),
            column: column.to_string(),
        })
    }

    fn next_batch(&mut self) -> Result<RowLists, ParquetError> {
        let rows = self.rows_left.min(self.batch_rows);
        let (column, left) = (self.column.as_str(), self.rows_left);
        let batch = match &mut self.leaf {
            Leaf::Int32(reader) => {
                RowLists::Int32(reader.rows(rows, column, left, |row| Ok(row.to_vec()))?)
            }
            Leaf::UInt8(reader) => {
                RowLists::UInt8(reader.rows(rows, column, left, |row| narrow(column, row))?)
            }
            Leaf::Binary(reader) => {
                let bytes = |row: &[ByteArray]| Ok(row.iter().map(|v| v.data().to_vec()).collect());
                RowLists::Binary(reader.rows(rows, column, left, bytes)?)
            }
        };
        self.rows_left -= rows;
        Ok(batch)
    }
}

/// `values` as bytes, or an error naming the first one outside 0..=255. Checked first, then narrowed in a
/// loop the compiler vectorises (a fallible collect does not).
fn narrow(column: &str, values: &[i32]) -> Result<Vec<u8>, ParquetError> {
    if let Some(bad) = values.iter().find(|&&v| u8::try_from(v).is_err()) {
        return Err(ParquetError::General(format!(
            "column `{column}` holds {bad}, outside 0..=255"
        )));
    }
    Ok(values.iter().map(|&v| v as u8).collect())
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
        let mut writer =
            SerializedFileWriter::new(std::fs::File::create(&path).unwrap(), schema, props)
                .unwrap();
        let mut group = writer.next_row_group().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        let values: Vec<i32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        let def = vec![1i16; values.len()];
        let rep: Vec<i16> = rows
            .iter()
            .flat_map(|r| (0..r.len()).map(|i| i16::from(i > 0)))
            .collect();
        column
            .typed::<Int32Type>()
            .write_batch(&values, Some(&def), Some(&rep))
            .unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
        path
    }

    fn read_loss_mask(
        path: &std::path::Path,
        batch_rows: usize,
    ) -> Vec<Result<RowLists, ParquetError>> {
        use parquet::file::reader::FileReader;
        let file = std::fs::File::open(path).unwrap();
        let metadata =
            parquet::file::serialized_reader::SerializedFileReader::new(file.try_clone().unwrap())
                .unwrap()
                .metadata()
                .clone();
        let element = Arc::new(Field::new("element", DataType::UInt8, false));
        let output =
            Output::of_int_list(&Field::new("loss_mask", DataType::List(element), false)).unwrap();
        DirectList::try_new(
            Arc::new(file),
            &metadata,
            0,
            0,
            "loss_mask",
            output,
            batch_rows,
        )
        .unwrap()
        .collect()
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
        assert_eq!(
            batches,
            [
                vec![vec![0, 1, 1], vec![1], vec![0, 0]],
                vec![vec![1, 0, 1, 1]]
            ]
        );
    }

    #[test]
    fn a_loss_mask_value_beyond_a_byte_is_an_error_naming_the_column_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = loss_mask_file(dir.path(), &[&[0, 1], &[1, 300]]);
        let batches = read_loss_mask(&path, 8);
        assert_eq!(batches.len(), 1, "one error, then nothing");
        let message = batches[0].as_ref().unwrap_err().to_string();
        assert!(
            message.contains("`loss_mask`") && message.contains("300"),
            "{message}"
        );
    }

    #[test]
    fn only_required_lists_of_required_values_are_decoded_directly() {
        let shard_like = schema(
            "message shard {
                required group input_ids (LIST) { repeated group list { required int32 element; } }
                required group loss_mask (LIST) { repeated group list { required int32 element (INTEGER(8, false)); } }
                required group images (LIST) {
                    repeated group list { required group element { required binary bytes; required int32 height; } }
                }
            }",
        );
        let list = |column| [column, "list", "element"];
        let image_bytes = ["images", "list", "element", "bytes"];
        assert_eq!(
            direct_leaf(&shard_like, &list("input_ids"), PhysicalType::INT32),
            Some(0)
        );
        assert_eq!(
            direct_leaf(&shard_like, &list("loss_mask"), PhysicalType::INT32),
            Some(1)
        );
        assert_eq!(
            direct_leaf(&shard_like, &image_bytes, PhysicalType::BYTE_ARRAY),
            Some(2)
        );
        assert_eq!(
            direct_leaf(&shard_like, &image_bytes, PhysicalType::INT32),
            None
        );
        assert_eq!(
            direct_leaf(&shard_like, &list("seq_lens"), PhysicalType::INT32),
            None
        );
        // What another writer might produce: nullable lists, elements or structs, or 64-bit ids.
        let other = schema(
            "message other {
                optional group input_ids (LIST) { repeated group list { optional int32 element; } }
                required group loss_mask (LIST) { repeated group list { optional int32 element; } }
                required group seq_lens (LIST) { repeated group list { required int64 element; } }
                required group images (LIST) {
                    repeated group list { optional group element { required binary bytes; } }
                }
            }",
        );
        for column in ["input_ids", "loss_mask", "seq_lens"] {
            assert_eq!(
                direct_leaf(&other, &list(column), PhysicalType::INT32),
                None,
                "{column}"
            );
        }
        assert_eq!(
            direct_leaf(&other, &image_bytes, PhysicalType::BYTE_ARRAY),
            None
        );
    }
}
