//! Parquet reader for HF-datasets style files: one row per record, images as `{bytes, path}` structs.
//!
//! The file is read in row batches of [`DEFAULT_BATCH_ROWS`] with only the columns the schema needs
//! projected, so a dataset with a large unrelated column (embeddings, a second image) costs nothing
//! extra. Each row's text columns are turned into a small JSON object and handed to the same
//! converter as JSONL records, so a Parquet conversation follows exactly the JSONL rules; images are
//! read from the image column directly (bytes are probed in memory, paths resolved like JSONL).
//!
//! Column problems that hold for the whole file (a missing column, an image column of a type that
//! cannot hold images) are a [`SourceError`] up front; a null in one row rejects that row.

use std::fs::File;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde_json::{Map, Value};

use super::convert::{
    DEFAULT_CONVERSATIONS, caption_keys, conversation_keys, finish_caption, finish_conversation,
    finish_text, image_keys, required_text, text_keys, turns_from_value,
};
use super::error::{RejectReason, SourceError};
use super::images::{probe_bytes, probe_file, resolve_path};
use super::spec::RecordSchema;
use super::{FileCtx, Record, RecordUnit, Records};
use crate::sample::{ImageRef, Sample};

/// Rows per batch. Small, because image columns hold encoded images inline (a batch of 64 rows of
/// 500 KB images is 32 MB); larger batches would only help text-only files, where rows are cheap.
pub const DEFAULT_BATCH_ROWS: usize = 64;

/// A text column the converter reads, and whether its cells are JSON strings to parse first.
#[derive(Clone, Debug)]
struct TextColumn {
    name: String,
    json_string: bool,
}

/// What the reader takes from each row, resolved once per file against its schema.
#[derive(Clone, Debug)]
struct RowPlan {
    schema: RecordSchema,
    text: TextColumn,
    image: Option<String>,
}

pub(crate) fn open(ctx: FileCtx) -> Result<Records, SourceError> {
    let parquet_err = |e: parquet::errors::ParquetError| SourceError::Parquet {
        path: ctx.path.clone(),
        detail: e.to_string(),
    };
    let file = mixtape_store::local_copy(&ctx.path)
        .and_then(File::open)
        .map_err(|e| SourceError::io(&ctx.path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let plan = plan(&ctx, builder.schema())?;
    let mut wanted = vec![plan.text.name.as_str()];
    wanted.extend(plan.image.as_deref());
    // Parquet root columns are the Arrow schema's top-level fields, in the same order.
    let indices: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| wanted.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(DEFAULT_BATCH_ROWS)
        .build()
        .map_err(parquet_err)?;
    Ok(Box::new(ParquetRows {
        ctx,
        plan,
        reader,
        batch: None,
        row_in_batch: 0,
        next_row: 0,
        done: false,
    }))
}

fn column_names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// Decides which columns hold the row's parts, checking their types.
fn plan(ctx: &FileCtx, schema: &Schema) -> Result<RowPlan, SourceError> {
    let fields = &ctx.spec.fields;
    let has = |name: &str| schema.field_with_name(name).is_ok();
    let record_schema = match ctx.spec.schema {
        Some(s) => s,
        // No schema in the recipe: the columns usually say it.
        None if conversation_keys(fields).iter().any(|k| has(k)) => RecordSchema::Conversation,
        None if image_keys(fields).iter().any(|k| has(k)) => RecordSchema::Caption,
        None if text_keys(fields).iter().any(|k| has(k)) => RecordSchema::Text,
        None => {
            return Err(SourceError::UnknownRowSchema {
                path: ctx.path.clone(),
                available: column_names(schema),
            });
        }
    };
    let missing = |keys: &[&str], field: &'static str| SourceError::MissingColumn {
        path: ctx.path.clone(),
        wanted: keys
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(" or "),
        field,
        available: column_names(schema),
    };
    let pick = |keys: &[&str]| keys.iter().find(|k| has(k)).map(|k| (*k).to_owned());
    let (text_keys_, field) = match record_schema {
        RecordSchema::Conversation => {
            let keys = conversation_keys(fields);
            let field = if fields.conversations.is_none() && fields.messages.is_some() {
                "messages"
            } else {
                "conversations"
            };
            (keys, field)
        }
        RecordSchema::Caption => (caption_keys(fields), "caption"),
        RecordSchema::Text => (text_keys(fields), "text"),
    };
    let text_name = pick(&text_keys_).ok_or_else(|| missing(&text_keys_, field))?;
    let text_type = schema
        .field_with_name(&text_name)
        .map(|f| f.data_type().clone())
        .unwrap_or(DataType::Null);
    let json_string = is_string(&text_type);
    let text_ok = match record_schema {
        RecordSchema::Conversation => json_string || is_list(&text_type),
        _ => json_string,
    };
    if !text_ok {
        return Err(SourceError::ColumnType {
            path: ctx.path.clone(),
            column: text_name,
            found: text_type.to_string(),
            expected: match record_schema {
                RecordSchema::Conversation => "a list of {role, content} structs, or a JSON string",
                _ => "a string",
            },
        });
    }
    // Only conversations hold JSON text to parse; captions and text are plain strings.
    let json_string = json_string && record_schema == RecordSchema::Conversation;
    let image = match record_schema {
        RecordSchema::Text => None,
        _ => {
            let keys = image_keys(fields);
            match pick(&keys) {
                Some(name) => Some(name),
                None if record_schema == RecordSchema::Caption => {
                    return Err(missing(&keys, "image"));
                }
                None => None,
            }
        }
    };
    if let Some(name) = &image {
        let dt = schema
            .field_with_name(name)
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Null);
        if !is_image_type(&dt) {
            return Err(SourceError::ColumnType {
                path: ctx.path.clone(),
                column: name.clone(),
                found: dt.to_string(),
                expected: "a {bytes, path} struct, binary, a string path, or a list of those",
            });
        }
    }
    Ok(RowPlan {
        schema: record_schema,
        text: TextColumn {
            name: text_name,
            json_string,
        },
        image,
    })
}

fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn is_binary(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

fn is_list(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    )
}

fn is_single_image_type(dt: &DataType) -> bool {
    match dt {
        DataType::Struct(children) => children.iter().any(|c| {
            (c.name() == "bytes" && is_binary(c.data_type()))
                || (c.name() == "path" && is_string(c.data_type()))
        }),
        other => is_binary(other) || is_string(other),
    }
}

fn is_image_type(dt: &DataType) -> bool {
    match dt {
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            is_single_image_type(item.data_type())
        }
        other => is_single_image_type(other),
    }
}

struct ParquetRows {
    ctx: FileCtx,
    plan: RowPlan,
    reader: ParquetRecordBatchReader,
    batch: Option<BatchColumns>,
    row_in_batch: usize,
    /// Row index within the file of the next row.
    next_row: u64,
    done: bool,
}

/// The projected columns of the current batch, looked up once per batch rather than once per row.
struct BatchColumns {
    rows: usize,
    text: Option<ArrayRef>,
    image: Option<ArrayRef>,
}

impl BatchColumns {
    /// The stored size of row `i`: the bytes of its text and image cells.
    fn row_bytes(&self, i: usize) -> u64 {
        [&self.text, &self.image]
            .into_iter()
            .flatten()
            .map(|col| cell_bytes(col.as_ref(), i))
            .sum()
    }

    fn new(batch: &RecordBatch, plan: &RowPlan) -> Self {
        BatchColumns {
            rows: batch.num_rows(),
            text: batch.column_by_name(&plan.text.name).cloned(),
            image: plan
                .image
                .as_deref()
                .and_then(|n| batch.column_by_name(n))
                .cloned(),
        }
    }
}

impl Iterator for ParquetRows {
    type Item = Result<Record, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if let Some(batch) = &self.batch
                && self.row_in_batch < batch.rows
            {
                // The batch is already decoded (its size is the file's row-group layout, bounded
                // by DEFAULT_BATCH_ROWS), but an oversize row must not reach JSON and tokenizing.
                let size = batch.row_bytes(self.row_in_batch);
                let limit = self.ctx.spec.max_record_bytes;
                let sample = if size > limit {
                    Err(RejectReason::RecordTooLarge { bytes: size, limit })
                } else {
                    row_sample(
                        &self.ctx,
                        &self.plan,
                        batch,
                        self.row_in_batch,
                        self.next_row,
                    )
                };
                let location = self.ctx.location(RecordUnit::Row, self.next_row, None);
                self.row_in_batch += 1;
                self.next_row += 1;
                return Some(Ok(Record { location, sample }));
            }
            match self.reader.next() {
                None => self.done = true,
                Some(Ok(batch)) => {
                    self.batch = Some(BatchColumns::new(&batch, &self.plan));
                    self.row_in_batch = 0;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(SourceError::Parquet {
                        path: self.ctx.path.clone(),
                        detail: format!("at row {}: {e}", self.next_row),
                    }));
                }
            }
        }
    }
}

fn row_sample(
    ctx: &FileCtx,
    plan: &RowPlan,
    cols: &BatchColumns,
    i: usize,
    row: u64,
) -> Result<Sample, RejectReason> {
    let name = plan.text.name.as_str();
    let value = match &cols.text {
        Some(col) if plan.text.json_string && !col.is_null(i) => {
            let text = string_at(col.as_ref(), i).unwrap_or_default();
            serde_json::from_str(text)
                .map_err(|e| RejectReason::InvalidJson(format!("column `{name}`: {e}")))?
        }
        Some(col) => cell_to_json(col.as_ref(), i),
        None => Value::Null,
    };
    let images = || match (&plan.image, &cols.image) {
        (Some(image), Some(col)) => row_images(ctx, plan.schema, image, col.as_ref(), i, row),
        _ => Ok(Vec::new()),
    };
    let obj = Map::from_iter([(name.to_owned(), value)]);
    match plan.schema {
        RecordSchema::Conversation => {
            let llava_style = ctx
                .spec
                .fields
                .conversations
                .as_deref()
                .unwrap_or(DEFAULT_CONVERSATIONS)
                == name;
            let turns = turns_from_value(name, &obj[name], llava_style)?;
            finish_conversation(turns, images()?)
        }
        RecordSchema::Caption => finish_caption(required_text(&obj, &[name])?, images()?),
        RecordSchema::Text => finish_text(required_text(&obj, &[name])?),
    }
}

/// An image cell before probing.
enum RawImage {
    Bytes(Arc<[u8]>),
    Path(String),
}

fn row_images(
    ctx: &FileCtx,
    schema: RecordSchema,
    name: &str,
    col: &dyn Array,
    i: usize,
    row: u64,
) -> Result<Vec<ImageRef>, RejectReason> {
    if col.is_null(i) {
        // A conversation row without images is a text-only turn in a multimodal set; a caption
        // without its image is broken.
        return match schema {
            RecordSchema::Caption => Err(RejectReason::NullField(name.to_owned())),
            _ => Ok(Vec::new()),
        };
    }
    let raw: Vec<Option<RawImage>> = if let Some(list) = list_at(col, i) {
        (0..list.len())
            .map(|j| single_image(list.as_ref(), j))
            .collect()
    } else {
        vec![single_image(col, i)]
    };
    raw.into_iter()
        .enumerate()
        .map(|(j, image)| match image {
            Some(RawImage::Bytes(bytes)) => probe_bytes(bytes, || {
                format!("{} row {row} column `{name}` image {j}", ctx.path.display())
            }),
            Some(RawImage::Path(p)) => probe_file(resolve_path(&ctx.image_root, &p)),
            None => Err(RejectReason::NullField(format!("{name}[{j}]"))),
        })
        .collect()
}

/// One image value: bytes when present, else the path; `None` when both are null.
fn single_image(col: &dyn Array, i: usize) -> Option<RawImage> {
    if col.is_null(i) {
        return None;
    }
    if let Some(s) = col.as_struct_opt() {
        let bytes = s
            .column_by_name("bytes")
            .and_then(|b| binary_at(b.as_ref(), i));
        if let Some(bytes) = bytes {
            return Some(RawImage::Bytes(Arc::from(bytes)));
        }
        let path = s
            .column_by_name("path")
            .and_then(|p| string_at(p.as_ref(), i));
        return path.map(|p| RawImage::Path(p.to_owned()));
    }
    if let Some(bytes) = binary_at(col, i) {
        return Some(RawImage::Bytes(Arc::from(bytes)));
    }
    string_at(col, i).map(|p| RawImage::Path(p.to_owned()))
}

/// The bytes of a binary cell; `None` if null or not a binary column.
fn binary_at(col: &dyn Array, i: usize) -> Option<&[u8]> {
    if col.is_null(i) {
        return None;
    }
    if let Some(a) = col.as_binary_opt::<i32>() {
        Some(a.value(i))
    } else if let Some(a) = col.as_binary_opt::<i64>() {
        Some(a.value(i))
    } else if let Some(a) = col.as_binary_view_opt() {
        Some(a.value(i))
    } else {
        col.as_fixed_size_binary_opt().map(|a| a.value(i))
    }
}

/// The text of a string cell; `None` if null or not a string column.
fn string_at(col: &dyn Array, i: usize) -> Option<&str> {
    if col.is_null(i) {
        return None;
    }
    if let Some(a) = col.as_string_opt::<i32>() {
        Some(a.value(i))
    } else if let Some(a) = col.as_string_opt::<i64>() {
        Some(a.value(i))
    } else {
        col.as_string_view_opt().map(|a| a.value(i))
    }
}

/// The items of a list cell; `None` if null or not a list column.
fn list_at(col: &dyn Array, i: usize) -> Option<ArrayRef> {
    if col.is_null(i) {
        return None;
    }
    if let Some(a) = col.as_list_opt::<i32>() {
        Some(a.value(i))
    } else if let Some(a) = col.as_list_opt::<i64>() {
        Some(a.value(i))
    } else {
        col.as_fixed_size_list_opt().map(|a| a.value(i))
    }
}

/// The bytes a cell holds: string and binary lengths, summed through lists and structs; 8 for any
/// other non-null value.
fn cell_bytes(col: &dyn Array, i: usize) -> u64 {
    if col.is_null(i) {
        return 0;
    }
    if let Some(s) = string_at(col, i) {
        return s.len() as u64;
    }
    if let Some(b) = binary_at(col, i) {
        return b.len() as u64;
    }
    if let Some(items) = list_at(col, i) {
        return (0..items.len())
            .map(|j| cell_bytes(items.as_ref(), j))
            .sum();
    }
    if let Some(s) = col.as_struct_opt() {
        return s
            .columns()
            .iter()
            .map(|child| cell_bytes(child.as_ref(), i))
            .sum();
    }
    8
}

/// A cell as JSON, for the converter. Types a text record cannot use (binary, temporal) become null.
fn cell_to_json(col: &dyn Array, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    if let Some(s) = string_at(col, i) {
        return Value::String(s.to_owned());
    }
    if let Some(items) = list_at(col, i) {
        return Value::Array(
            (0..items.len())
                .map(|j| cell_to_json(items.as_ref(), j))
                .collect(),
        );
    }
    if let Some(s) = col.as_struct_opt() {
        let obj = s
            .column_names()
            .into_iter()
            .zip(s.columns())
            .map(|(name, child)| (name.to_owned(), cell_to_json(child.as_ref(), i)))
            .collect();
        return Value::Object(obj);
    }
    if let Some(b) = col.as_boolean_opt() {
        return Value::Bool(b.value(i));
    }
    if let Some(a) = col.as_primitive_opt::<Int64Type>() {
        return Value::from(a.value(i));
    }
    if let Some(a) = col.as_primitive_opt::<Int32Type>() {
        return Value::from(a.value(i));
    }
    if let Some(a) = col.as_primitive_opt::<UInt64Type>() {
        return Value::from(a.value(i));
    }
    if let Some(a) = col.as_primitive_opt::<UInt32Type>() {
        return Value::from(a.value(i));
    }
    if let Some(a) = col.as_primitive_opt::<Float64Type>() {
        return Value::from(a.value(i));
    }
    if let Some(a) = col.as_primitive_opt::<Float32Type>() {
        return Value::from(f64::from(a.value(i)));
    }
    Value::Null
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use arrow_array::builder::{BinaryBuilder, ListBuilder, StringBuilder, StructBuilder};
    use arrow_array::{BinaryArray, Float32Array, StringArray};
    use arrow_schema::{Field, Fields};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::super::images::testing::png_header;
    use super::super::testing::{read_all, spec};
    use super::super::{RejectReason, SourceFormat, read_source, sample_key};
    use super::*;
    use crate::sample::{ImageSource, Role, SampleKind};

    /// Writes one batch of named columns, in row groups of `group_rows`.
    fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, group_rows: usize) -> PathBuf {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group_rows))
            .build();
        let mut writer =
            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        path.to_path_buf()
    }

    /// `list<struct<role, content>>`, one list per row (`None` for a null row).
    fn messages(rows: &[Option<Vec<(&str, &str)>>]) -> ArrayRef {
        let fields = Fields::from(vec![
            Field::new("role", DataType::Utf8, true),
            Field::new("content", DataType::Utf8, true),
        ]);
        let mut list = ListBuilder::new(StructBuilder::from_fields(fields, 0));
        for row in rows {
            match row {
                Some(turns) => {
                    for (role, content) in turns {
                        let s = list.values();
                        s.field_builder::<StringBuilder>(0)
                            .unwrap()
                            .append_value(role);
                        s.field_builder::<StringBuilder>(1)
                            .unwrap()
                            .append_value(content);
                        s.append(true);
                    }
                    list.append(true);
                }
                None => list.append(false),
            }
        }
        Arc::new(list.finish())
    }

    /// One cell of an image struct column: `(bytes, path)`, or `None` for a null struct.
    type ImageCell<'a> = Option<(Option<Vec<u8>>, Option<&'a str>)>;

    /// HF `Image()` column: `struct<bytes: binary, path: string>`.
    fn image_structs(rows: &[ImageCell<'_>]) -> ArrayRef {
        let fields = Fields::from(vec![
            Field::new("bytes", DataType::Binary, true),
            Field::new("path", DataType::Utf8, true),
        ]);
        let mut s = StructBuilder::from_fields(fields, rows.len());
        for row in rows {
            let (bytes, path) = row.clone().unwrap_or((None, None));
            s.field_builder::<BinaryBuilder>(0)
                .unwrap()
                .append_option(bytes);
            s.field_builder::<StringBuilder>(1)
                .unwrap()
                .append_option(path);
            s.append(row.is_some());
        }
        Arc::new(s.finish())
    }

    fn chat(q: &str) -> Option<Vec<(&str, &str)>> {
        Some(vec![("user", q), ("assistant", "an answer")])
    }

    #[test]
    fn messages_and_image_structs_stream_across_batches_and_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let n = 150;
        let questions: Vec<String> = (0..n).map(|i| format!("<image>\nq{i}")).collect();
        let rows: Vec<_> = questions.iter().map(|q| chat(q)).collect();
        let images: Vec<_> = (0..n as u32)
            .map(|i| Some((Some(png_header(i + 1, 7)), None)))
            .collect();
        let f = write_parquet(
            &dir.path().join("chat.parquet"),
            vec![
                ("messages", messages(&rows)),
                ("image", image_structs(&images)),
                // An unrelated column the projection must skip.
                (
                    "score",
                    Arc::new(Float32Array::from(vec![0.5; n])) as ArrayRef,
                ),
            ],
            50,
        );
        let mut s = spec(SourceFormat::Parquet, vec![f.clone()]);
        s.schema = Some(RecordSchema::Conversation);
        let records = read_all(&s);
        assert_eq!(records.len(), n);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.location.record, i as u64);
            let sample = r.sample.as_ref().unwrap();
            assert_eq!(sample.kind, SampleKind::Conversation);
            assert_eq!(sample.turns[0].text, format!("<image>\nq{i}"));
            assert_eq!(sample.turns[1].role, Role::Assistant);
            assert_eq!(sample.images[0].size, Some((7, i as u32 + 1)));
            assert!(matches!(sample.images[0].source, ImageSource::Bytes(_)));
        }
        assert_eq!(
            records[5].location.to_string(),
            format!("{} row 5", f.display())
        );
        assert_eq!(sample_key(&s, &records[5].location), "chat.parquet row 5");
    }

    #[test]
    fn image_paths_nulls_and_broken_bytes_are_per_row() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("side.png"), png_header(9, 4)).unwrap();
        let f = write_parquet(
            &dir.path().join("mixed.parquet"),
            vec![
                (
                    "messages",
                    messages(&[
                        chat("look"),
                        chat("text only"),
                        None,
                        chat("<image>"),
                        chat("x"),
                    ]),
                ),
                (
                    "image",
                    image_structs(&[
                        Some((None, Some("side.png"))),
                        None,
                        None,
                        Some((Some(b"garbage bytes".to_vec()), None)),
                        Some((None, None)),
                    ]),
                ),
            ],
            100,
        );
        let records = read_all(&spec(SourceFormat::Parquet, vec![f.clone()]));
        let first = records[0].sample.as_ref().unwrap();
        assert_eq!(
            first.images[0].source,
            ImageSource::File(dir.path().join("side.png"))
        );
        assert_eq!(
            first.turns[0].text, "<image>\nlook",
            "placeholder prepended; schema inferred from columns"
        );
        assert!(records[1].sample.as_ref().unwrap().images.is_empty());
        assert_eq!(
            records[2].sample.as_ref().unwrap_err(),
            &RejectReason::NullField("messages".into())
        );
        let broken = records[3].reject_message().unwrap();
        assert!(
            broken.starts_with(&format!(
                "{} row 3: cannot read the image header of {} row 3 column `image` image 0",
                f.display(),
                f.display()
            )),
            "{broken}"
        );
        assert_eq!(
            records[4].sample.as_ref().unwrap_err(),
            &RejectReason::NullField("image[0]".into())
        );
    }

    #[test]
    fn a_json_string_conversation_column_and_a_list_of_images() {
        let dir = tempfile::tempdir().unwrap();
        let convo = r#"[{"from": "human", "value": "<image> and <image>"}, {"from": "gpt", "value": "two"}]"#;
        let mut images = ListBuilder::new(BinaryBuilder::new());
        images.values().append_value(png_header(1, 2));
        images.values().append_value(png_header(3, 4));
        images.append(true);
        images.values().append_value(png_header(1, 1));
        images.append(true);
        let f = write_parquet(
            &dir.path().join("llava.parquet"),
            vec![
                (
                    "conversations",
                    Arc::new(StringArray::from(vec![convo, "{not json"])) as ArrayRef,
                ),
                ("images", Arc::new(images.finish()) as ArrayRef),
            ],
            100,
        );
        let mut s = spec(SourceFormat::Parquet, vec![f]);
        s.schema = Some(RecordSchema::Conversation);
        let records = read_all(&s);
        let sample = records[0].sample.as_ref().unwrap();
        assert_eq!(
            sample.images.iter().map(|i| i.size).collect::<Vec<_>>(),
            [Some((2, 1)), Some((4, 3))]
        );
        assert_eq!(
            records[1].sample.as_ref().unwrap_err().code().as_str(),
            "invalid_json"
        );
    }

    #[test]
    fn caption_rows_use_a_plain_binary_column_and_fall_back_to_text() {
        let dir = tempfile::tempdir().unwrap();
        let f = write_parquet(
            &dir.path().join("caps.parquet"),
            vec![
                (
                    "image",
                    Arc::new(BinaryArray::from_opt_vec(vec![
                        Some(&png_header(5, 6)[..]),
                        Some(&png_header(1, 1)[..]),
                        None,
                    ])) as ArrayRef,
                ),
                (
                    "text",
                    Arc::new(StringArray::from(vec![Some("a photo"), None, Some("c")])) as ArrayRef,
                ),
            ],
            100,
        );
        let mut s = spec(SourceFormat::Parquet, vec![f]);
        s.schema = Some(RecordSchema::Caption);
        let records = read_all(&s);
        let sample = records[0].sample.as_ref().unwrap();
        assert_eq!(sample.kind, SampleKind::Caption);
        assert_eq!(sample.turns[1].text, "a photo");
        assert_eq!(sample.images[0].size, Some((6, 5)));
        assert_eq!(
            records[1].sample.as_ref().unwrap_err(),
            &RejectReason::NullField("text".into())
        );
        assert_eq!(
            records[2].sample.as_ref().unwrap_err(),
            &RejectReason::NullField("image".into())
        );
    }

    #[test]
    fn text_rows_with_a_mapped_column() {
        let dir = tempfile::tempdir().unwrap();
        let f = write_parquet(
            &dir.path().join("books.parquet"),
            vec![(
                "body",
                Arc::new(StringArray::from(vec!["chapter one", ""])) as ArrayRef,
            )],
            100,
        );
        let mut s = spec(SourceFormat::Parquet, vec![f]);
        s.schema = Some(RecordSchema::Text);
        s.fields.text = Some("body".into());
        let records = read_all(&s);
        assert_eq!(
            records[0].sample.as_ref().unwrap().turns[0].text,
            "chapter one"
        );
        assert_eq!(
            records[1].sample.as_ref().unwrap_err(),
            &RejectReason::EmptyText("body".into())
        );
    }

    #[test]
    fn missing_or_mistyped_columns_are_file_errors_that_say_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let f = write_parquet(
            &dir.path().join("caps.parquet"),
            vec![
                (
                    "img",
                    Arc::new(BinaryArray::from_vec(vec![b"x"])) as ArrayRef,
                ),
                ("label", Arc::new(Float32Array::from(vec![1.0])) as ArrayRef),
            ],
            100,
        );
        let mut s = spec(SourceFormat::Parquet, vec![f.clone()]);
        s.schema = Some(RecordSchema::Caption);
        let err = read_source(&s).unwrap().next().unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: no column `caption` or `text`; the file has columns [img, label]; set `fields.caption` in the recipe to the column that holds it",
                f.display()
            )
        );
        s.fields.caption = Some("label".into());
        s.fields.image = Some("img".into());
        let err = read_source(&s).unwrap().next().unwrap().unwrap_err();
        assert!(
            matches!(&err, SourceError::ColumnType { column, .. } if column == "label"),
            "{err}"
        );
        s.schema = None;
        s.fields = Default::default();
        let err = read_source(&s).unwrap().next().unwrap().unwrap_err();
        assert!(matches!(err, SourceError::UnknownRowSchema { .. }), "{err}");
    }

    #[test]
    fn a_file_that_is_not_parquet_is_a_file_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lfs.parquet");
        std::fs::write(
            &p,
            "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n",
        )
        .unwrap();
        let err = read_source(&spec(SourceFormat::Parquet, vec![p.clone()]))
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("cannot read Parquet file {}", p.display())),
            "{msg}"
        );
        assert!(msg.contains("Git LFS pointer"), "{msg}");
    }
}
