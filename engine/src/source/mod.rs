//! Source readers: a [`SourceSpec`] in, a lazy stream of located [`Record`]s out.
//!
//! This is the first stage of the pipeline (sources -> samples -> encoded samples -> packs -> shards).
//! [`read_source`] opens the source's files one at a time, in the order the spec lists them, and
//! yields one record per JSONL line, JSON-array element, Parquet row, WebDataset group or synthetic
//! index. Nothing holds more than one record (one Parquet row batch, one tar group) in memory, so a
//! 100 GB source streams in constant space, and the order is deterministic: files in spec order,
//! records in file order.
//!
//! Failures come in two sizes (see [`error`]): a bad record is still yielded, as a [`Record`] whose
//! `sample` is a [`RejectReason`], so callers can count and report rejects by reason and keep going;
//! a file that cannot be read at all is yielded as one `Err(SourceError)`, after which reading moves
//! on to the next file (the caller chooses whether that is fatal).
//!
//! Every record carries a [`RecordLocation`]; its `Display` is what a user types into an editor
//! (`data/x.jsonl:12`), and [`sample_key`] turns it into a stable provenance key.
//!
//! Layout: `convert` turns JSON-shaped records into samples for every format; `images` resolves
//! and probes images; `jsonl`, `parquet`, `webdataset` and `synthetic` are the per-format readers.

pub mod error;
pub mod spec;

mod convert;
mod images;
mod json_array;
mod jsonl;
mod parquet;
mod synthetic;
mod webdataset;

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

pub use error::{RejectReason, SourceError};
pub use spec::{FieldMap, RecordSchema, SourceFormat, SourceSpec, SyntheticSpec};

use crate::sample::Sample;

/// What [`RecordLocation::record`] counts, which decides how a location is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordUnit {
    /// A JSONL line; `record` is the 0-based line index (blank lines count), shown 1-based.
    Line,
    /// An element of a top-level JSON array; `record` is its 0-based index, shown as `[i]`.
    Element,
    /// A Parquet row; `record` is the 0-based row index within the file.
    Row,
    /// A WebDataset group; `record` is its 0-based index within the tar, `member` its key.
    Group,
    /// A synthetic sample; `record` is the generator index.
    Synthetic,
}

/// Where a record came from. Cheap to compare and order: `(file_index, record)` is the reading order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordLocation {
    /// Index into the spec's `files` (0 for synthetic sources).
    pub file_index: u32,
    /// The file, as the spec names it; `None` for synthetic sources.
    pub file: Option<PathBuf>,
    /// See [`RecordUnit`] for what this counts.
    pub record: u64,
    /// The WebDataset key of the group (`000123`); `None` for other formats.
    pub member: Option<String>,
    pub unit: RecordUnit,
}

impl RecordLocation {
    /// Writes the location with `file` standing for the path (the full path for `Display`, a
    /// relative one for [`sample_key`]).
    fn write_with(&self, f: &mut dyn fmt::Write, file: &str) -> fmt::Result {
        match self.unit {
            RecordUnit::Line => write!(f, "{file}:{}", self.record.saturating_add(1)),
            RecordUnit::Element => write!(f, "{file}[{}]", self.record),
            RecordUnit::Row => write!(f, "{file} row {}", self.record),
            RecordUnit::Group => match &self.member {
                Some(key) => write!(f, "{file} member {key}"),
                None => write!(f, "{file} group {}", self.record),
            },
            RecordUnit::Synthetic => write!(f, "synthetic #{}", self.record),
        }
    }
}

impl fmt::Display for RecordLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        self.write_with(f, &file)
    }
}

/// One record of a source: where it is, and the sample it holds or why it was rejected.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub location: RecordLocation,
    pub sample: Result<Sample, RejectReason>,
}

impl Record {
    /// `"llava.jsonl:3: invalid JSON: ..."` for a rejected record; `None` for an accepted one.
    pub fn reject_message(&self) -> Option<String> {
        self.sample
            .as_ref()
            .err()
            .map(|reason| format!("{}: {reason}", self.location))
    }
}

/// The stream [`read_source`] returns.
pub type Records = Box<dyn Iterator<Item = Result<Record, SourceError>> + Send>;

/// Opens a source for streaming. Fails only when the spec itself is unusable (a file source with no
/// files, a synthetic source without settings); files are opened lazily, one at a time, and a file
/// that cannot be read shows up as an `Err` item in the stream.
pub fn read_source(spec: &SourceSpec) -> Result<Records, SourceError> {
    read_files(spec, 0..spec.files.len())
}

/// The records of the spec's file `file_index` alone, located as [`read_source`] locates them (a
/// synthetic source is read whole): one part of a source, for indexing a file at a time.
pub fn read_source_file(spec: &SourceSpec, file_index: usize) -> Result<Records, SourceError> {
    read_files(spec, file_index..file_index.saturating_add(1))
}

fn read_files(spec: &SourceSpec, files: std::ops::Range<usize>) -> Result<Records, SourceError> {
    if spec.format == SourceFormat::Synthetic {
        let settings = spec
            .synthetic
            .as_ref()
            .ok_or_else(|| SourceError::MissingSynthetic {
                name: spec.name.clone(),
            })?;
        return Ok(synthetic::read(settings));
    }
    if spec.files.is_empty() {
        return Err(SourceError::NoFiles {
            name: spec.name.clone(),
        });
    }
    if u32::try_from(spec.files.len()).is_err() {
        return Err(SourceError::TooManyFiles {
            name: spec.name.clone(),
            count: spec.files.len(),
        });
    }
    let count = spec.files.len();
    Ok(Box::new(Files {
        spec: Arc::new(spec.clone()),
        next_file: files.start.min(count),
        end: files.end.min(count),
        current: None,
    }))
}

/// What a per-format reader knows about the file it reads.
#[derive(Clone, Debug)]
pub(crate) struct FileCtx {
    pub spec: Arc<SourceSpec>,
    pub file_index: u32,
    pub path: PathBuf,
    /// Where relative image paths resolve: the spec's `image_root`, else the file's folder.
    pub image_root: PathBuf,
}

impl FileCtx {
    pub fn location(
        &self,
        unit: RecordUnit,
        record: u64,
        member: Option<String>,
    ) -> RecordLocation {
        RecordLocation {
            file_index: self.file_index,
            file: Some(self.path.clone()),
            record,
            member,
            unit,
        }
    }

    /// What each record of this file holds (Parquet and WebDataset take it from the spec's `schema`).
    pub fn json_schema(&self) -> RecordSchema {
        match self.spec.format {
            SourceFormat::Caption => RecordSchema::Caption,
            SourceFormat::Text => RecordSchema::Text,
            _ => RecordSchema::Conversation,
        }
    }
}

/// Walks the spec's files in order, opening each only when the previous one is exhausted.
struct Files {
    spec: Arc<SourceSpec>,
    next_file: usize,
    /// One past the last file to read.
    end: usize,
    current: Option<Records>,
}

impl Files {
    fn open(&self, file_index: usize) -> Result<Records, SourceError> {
        let path = self.spec.files[file_index].clone();
        let image_root = match &self.spec.image_root {
            Some(root) => root.clone(),
            None => path.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let ctx = FileCtx {
            spec: Arc::clone(&self.spec),
            // Checked in `read_source`.
            file_index: u32::try_from(file_index).unwrap_or(u32::MAX),
            path,
            image_root,
        };
        match self.spec.format {
            SourceFormat::Conversation | SourceFormat::Caption | SourceFormat::Text => {
                jsonl::open(ctx)
            }
            SourceFormat::Parquet => parquet::open(ctx),
            SourceFormat::WebDataset => webdataset::open(ctx),
            // Handled in `read_source`; a synthetic spec never lists files.
            SourceFormat::Synthetic => Ok(Box::new(std::iter::empty())),
        }
    }
}

impl Iterator for Files {
    type Item = Result<Record, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(current) = &mut self.current {
                match current.next() {
                    Some(item) => return Some(item),
                    None => self.current = None,
                }
            }
            if self.next_file >= self.end {
                return None;
            }
            let index = self.next_file;
            self.next_file += 1;
            match self.open(index) {
                Ok(records) => self.current = Some(records),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Stable provenance keys for one source's records: the file relative to the common parent folder of
/// all the source's files, written like a location (`books/part-0.jsonl:12`). Build it once per
/// source; [`sample_key`] is the one-off form.
#[derive(Clone, Debug)]
pub struct SampleKeys {
    common: PathBuf,
}

impl SampleKeys {
    pub fn new(spec: &SourceSpec) -> SampleKeys {
        SampleKeys {
            common: common_parent(&spec.files),
        }
    }

    pub fn key(&self, location: &RecordLocation) -> String {
        let rel = match &location.file {
            Some(file) => slash_path(file.strip_prefix(&self.common).unwrap_or(file)),
            None => String::new(),
        };
        let mut key = String::new();
        // Writing into a String cannot fail.
        let _ = location.write_with(&mut key, &rel);
        key
    }
}

/// The provenance key of a record of `spec`; see [`SampleKeys`].
pub fn sample_key(spec: &SourceSpec, location: &RecordLocation) -> String {
    SampleKeys::new(spec).key(location)
}

/// The deepest folder holding every file (the file's own folder when there is one file).
fn common_parent(files: &[PathBuf]) -> PathBuf {
    let mut iter = files.iter().map(|f| f.parent().unwrap_or(Path::new("")));
    let Some(first) = iter.next() else {
        return PathBuf::new();
    };
    let mut common: Vec<Component<'_>> = first.components().collect();
    for parent in iter {
        let n = common
            .iter()
            .zip(parent.components())
            .take_while(|(a, b)| *a == b)
            .count();
        common.truncate(n);
    }
    common.iter().collect()
}

/// A relative path with `/` separators whatever the platform, so keys are the same everywhere.
fn slash_path(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

#[cfg(test)]
pub(crate) mod testing {
    //! Shared helpers for the reader tests.
    use super::*;

    pub fn spec(format: SourceFormat, files: Vec<PathBuf>) -> SourceSpec {
        SourceSpec {
            name: "src".into(),
            format,
            category: "cat".into(),
            weight: None,
            files,
            schema: None,
            fields: FieldMap::default(),
            image_root: None,
            synthetic: None,
            max_record_bytes: crate::recipe::DEFAULT_MAX_RECORD_BYTES,
            chat: Default::default(),
            long_text: None,
        }
    }

    /// Reads every record, panicking on file-level errors.
    pub fn read_all(spec: &SourceSpec) -> Vec<Record> {
        read_source(spec).unwrap().map(|r| r.unwrap()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn loc(unit: RecordUnit, file: &str, record: u64, member: Option<&str>) -> RecordLocation {
        RecordLocation {
            file_index: 0,
            file: Some(file.into()),
            record,
            member: member.map(Into::into),
            unit,
        }
    }

    #[test]
    fn locations_read_like_editor_positions() {
        assert_eq!(
            loc(RecordUnit::Line, "data/x.jsonl", 11, None).to_string(),
            "data/x.jsonl:12"
        );
        assert_eq!(
            loc(RecordUnit::Element, "data/x.json", 3, None).to_string(),
            "data/x.json[3]"
        );
        assert_eq!(
            loc(RecordUnit::Row, "docs.parquet", 5, None).to_string(),
            "docs.parquet row 5"
        );
        assert_eq!(
            loc(RecordUnit::Group, "shapes-000000.tar", 7, Some("000123")).to_string(),
            "shapes-000000.tar member 000123"
        );
        let synthetic = RecordLocation {
            file_index: 0,
            file: None,
            record: 42,
            member: None,
            unit: RecordUnit::Synthetic,
        };
        assert_eq!(synthetic.to_string(), "synthetic #42");
    }

    #[test]
    fn sample_keys_are_relative_to_the_common_parent_of_the_files() {
        let s = spec(
            SourceFormat::Text,
            vec![
                "/data/books/part-0.jsonl".into(),
                "/data/news/part-0.jsonl".into(),
            ],
        );
        let l = loc(RecordUnit::Line, "/data/books/part-0.jsonl", 11, None);
        assert_eq!(sample_key(&s, &l), "books/part-0.jsonl:12");
        let one = spec(SourceFormat::Text, vec!["/data/books/part-0.jsonl".into()]);
        assert_eq!(sample_key(&one, &l), "part-0.jsonl:12");
    }

    #[test]
    fn a_file_source_without_files_is_a_spec_error() {
        let err = read_source(&spec(SourceFormat::Text, vec![]))
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "source `src` has no files (check its path or glob)"
        );
        let err = read_source(&spec(SourceFormat::Synthetic, vec![]))
            .err()
            .unwrap();
        assert!(matches!(err, SourceError::MissingSynthetic { .. }));
    }

    #[test]
    fn files_are_read_in_spec_order_and_opened_lazily() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        let b = dir.path().join("b.jsonl");
        std::fs::write(&a, "{\"text\": \"a1\"}\n{\"text\": \"a2\"}\n").unwrap();
        std::fs::write(&b, "{\"text\": \"b1\"}\n").unwrap();
        let s = spec(SourceFormat::Text, vec![b.clone(), a.clone()]);
        let mut records = read_source(&s).unwrap();
        let first = records.next().unwrap().unwrap();
        assert_eq!(first.location.file.as_deref(), Some(b.as_path()));
        // `a` is only opened once `b` is exhausted: removing it now surfaces as an error item there.
        std::fs::remove_file(&a).unwrap();
        let err = records.next().unwrap().unwrap_err();
        assert!(
            matches!(&err, SourceError::Io { path, .. } if *path == a),
            "{err}"
        );
        assert!(records.next().is_none());
    }

    #[test]
    fn a_rejected_record_reads_as_location_then_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("llava.jsonl");
        std::fs::write(&p, "{\"text\": \"ok\"}\n\n{\"text\": \"x\" \"y\"}\n").unwrap();
        let records = read_all(&spec(SourceFormat::Text, vec![p.clone()]));
        assert_eq!(records.len(), 2);
        let msg = records[1].reject_message().unwrap();
        assert_eq!(
            msg,
            format!(
                "{}:3: invalid JSON: expected `,` or `}}` at column 14",
                p.display()
            )
        );
        assert_eq!(records[0].reject_message(), None);
    }
}

#[cfg(test)]
mod demo_data_tests {
    //! The repository's demo datasets (`recipes/data`, real files in every format) read cleanly.
    use super::testing::*;
    use super::*;
    use crate::sample::ImageSource;

    #[test]
    fn every_demo_dataset_reads_without_rejects() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/data");
        let cases = [
            (
                SourceFormat::Conversation,
                "llava/llava-mini.jsonl",
                None,
                16,
            ),
            (
                SourceFormat::Conversation,
                "sharegpt/messages-mini.jsonl",
                None,
                12,
            ),
            (SourceFormat::Caption, "caption/part-0.jsonl", None, 12),
            (SourceFormat::Text, "books/encyclopedia-0.jsonl", None, 20),
            (
                SourceFormat::Parquet,
                "parquet/docs-mini.parquet",
                Some(RecordSchema::Conversation),
                16,
            ),
            (SourceFormat::WebDataset, "wds/shapes-000000.tar", None, 10),
        ];
        for (format, file, schema, count) in cases {
            let mut s = spec(format, vec![root.join(file)]);
            s.schema = schema;
            let records = read_all(&s);
            let rejects: Vec<String> = records.iter().filter_map(Record::reject_message).collect();
            assert_eq!(rejects, Vec::<String>::new(), "{file}");
            assert_eq!(records.len(), count, "{file}");
        }
    }

    #[test]
    fn the_exif_rotated_demo_photo_reports_its_upright_size() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/data");
        let records = read_all(&spec(
            SourceFormat::Conversation,
            vec![root.join("llava/llava-mini.jsonl")],
        ));
        let mut images = records
            .iter()
            .flat_map(|r| r.sample.as_ref().unwrap().images.iter());
        let exif6 = images
            .find(|i| matches!(&i.source, ImageSource::File(p) if p.ends_with("exif6-08.jpg")))
            .expect("llava-mini uses exif6-08.jpg");
        // Stored 200 wide x 320 high, displayed 320 wide x 200 high: (height, width) = (200, 320).
        assert_eq!(exif6.size, Some((200, 320)));
    }
}
