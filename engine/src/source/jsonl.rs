//! JSON Lines (and JSON-array) readers for conversation, caption and text sources.
//!
//! A line is read as bytes, so one line of bad UTF-8 rejects that record instead of failing the
//! file; blank lines are skipped but still counted, so locations match an editor's line numbers.
//! A `.json` file holding a top-level array is streamed element by element through
//! [`ArrayScanner`]; a `.json` file that starts with `{` is read as JSON Lines, since mislabelled
//! JSONL is common and unambiguous.
//!
//! A line or element longer than the source's `max_record_bytes` is rejected as `record_too_large`
//! without being held: [`read_capped_line`] keeps at most the cap and skips the rest as it streams
//! past, so one 50 MB line costs the cap, not 50 MB (and never the ~100x that parsing and tokenizing
//! it would).

use std::fs::File;
use std::io::{self, BufRead, BufReader};

use serde_json::Value;

use super::convert::{self, image_keys, image_paths, sample_from_object};
use super::error::{RejectReason, SourceError};
use super::images::{probe_file, resolve_path};
use super::json_array::{ArrayScanner, ScanError};
use super::spec::RecordSchema;
use super::{FileCtx, Record, RecordUnit, Records};

/// Opens a JSON-family file: JSON Lines, or a top-level array when the name ends in `.json`.
pub(crate) fn open(ctx: FileCtx) -> Result<Records, SourceError> {
    let reader = open_reader(&ctx)?;
    let is_json = ctx
        .path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        let mut scanner = ArrayScanner::new(reader, ctx.spec.max_record_bytes);
        // Peek at the first element so a JSONL file named `.json` can be read as JSONL instead.
        match scanner.next_element() {
            Err(ScanError::NotAnArray { found: Some(b'{') }) => {}
            first => {
                return Ok(Box::new(JsonArrayRecords {
                    ctx,
                    scanner,
                    pending: Some(first),
                    index: 0,
                    done: false,
                }));
            }
        }
        let reader = open_reader(&ctx)?;
        return Ok(Box::new(JsonlRecords {
            ctx,
            reader,
            buf: Vec::new(),
            line: 0,
            done: false,
        }));
    }
    Ok(Box::new(JsonlRecords {
        ctx,
        reader,
        buf: Vec::new(),
        line: 0,
        done: false,
    }))
}

fn open_reader(ctx: &FileCtx) -> Result<BufReader<File>, SourceError> {
    let file = mixtape_store::local_copy(&ctx.path)
        .and_then(File::open)
        .map_err(|e| SourceError::io(&ctx.path, e))?;
    Ok(BufReader::new(file))
}

/// Parses one record's bytes and builds its sample. `where_` turns serde's position into words that
/// fit the record's location (a column for a line, a file line for an array element).
fn parse_record(
    ctx: &FileCtx,
    bytes: &[u8],
    where_: impl Fn(&serde_json::Error) -> String,
) -> Result<crate::sample::Sample, RejectReason> {
    let text = std::str::from_utf8(bytes).map_err(|_| RejectReason::InvalidUtf8)?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        let bare = full
            .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
            .unwrap_or(&full);
        RejectReason::InvalidJson(format!("{bare}{}", where_(&e)))
    })?;
    sample_from_json(ctx, ctx.json_schema(), &value)
}

/// Builds a sample from a parsed JSON record whose image paths resolve against the context's root.
fn sample_from_json(
    ctx: &FileCtx,
    schema: RecordSchema,
    value: &Value,
) -> Result<crate::sample::Sample, RejectReason> {
    let obj = convert::as_object(value)?;
    let fields = &ctx.spec.fields;
    sample_from_object(schema, obj, fields, || {
        let keys = image_keys(fields);
        let paths = image_paths(obj, &keys)?;
        if schema == RecordSchema::Caption
            && paths.is_empty()
            && !keys.iter().any(|k| obj.contains_key(*k))
        {
            return Err(RejectReason::missing(keys[0], keys.get(1..).unwrap_or(&[])));
        }
        paths
            .iter()
            .map(|p| probe_file(resolve_path(&ctx.image_root, p)))
            .collect()
    })
}

/// One line as [`read_capped_line`] read it.
#[derive(Debug, PartialEq, Eq)]
struct Line {
    /// Bytes consumed, line feed included; 0 at the end of the file.
    consumed: u64,
    /// The line's length without its line feed, counted in full even when over the cap.
    len: u64,
}

/// Reads one line into `buf` (without its line feed), keeping at most `cap + 1` bytes: a longer line
/// is streamed past, counted but not stored. `buf.len() as u64 == line.len` tells a complete line.
fn read_capped_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, cap: u64) -> io::Result<Line> {
    buf.clear();
    let keep = usize::try_from(cap.saturating_add(1)).unwrap_or(usize::MAX);
    let mut line = Line {
        consumed: 0,
        len: 0,
    };
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(line);
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let content = &available[..newline.unwrap_or(available.len())];
        let room = keep.saturating_sub(buf.len());
        buf.extend_from_slice(&content[..content.len().min(room)]);
        line.len += content.len() as u64;
        let used = content.len() + usize::from(newline.is_some());
        line.consumed += used as u64;
        reader.consume(used);
        if newline.is_some() {
            return Ok(line);
        }
    }
}

struct JsonlRecords {
    ctx: FileCtx,
    reader: BufReader<File>,
    buf: Vec<u8>,
    /// 0-based index of the next line.
    line: u64,
    done: bool,
}

impl Iterator for JsonlRecords {
    type Item = Result<Record, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let cap = self.ctx.spec.max_record_bytes;
        while !self.done {
            match read_capped_line(&mut self.reader, &mut self.buf, cap) {
                Ok(Line { consumed: 0, .. }) => self.done = true,
                Ok(Line { len, .. }) => {
                    let index = self.line;
                    self.line += 1;
                    if len > cap {
                        return Some(Ok(Record {
                            location: self.ctx.location(RecordUnit::Line, index, None),
                            sample: Err(RejectReason::RecordTooLarge {
                                bytes: len,
                                limit: cap,
                            }),
                        }));
                    }
                    let mut bytes = self.buf.as_slice();
                    if index == 0 {
                        bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
                    }
                    if bytes.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let sample =
                        parse_record(&self.ctx, bytes, |e| format!(" at column {}", e.column()));
                    return Some(Ok(Record {
                        location: self.ctx.location(RecordUnit::Line, index, None),
                        sample,
                    }));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(SourceError::io(&self.ctx.path, e)));
                }
            }
        }
        None
    }
}

struct JsonArrayRecords {
    ctx: FileCtx,
    scanner: ArrayScanner<BufReader<File>>,
    /// The element read while sniffing the format, not yet yielded.
    pending: Option<Result<Option<super::json_array::Element>, ScanError>>,
    index: u64,
    done: bool,
}

impl Iterator for JsonArrayRecords {
    type Item = Result<Record, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self
            .pending
            .take()
            .unwrap_or_else(|| self.scanner.next_element());
        match next {
            Ok(Some(element)) if element.size > self.ctx.spec.max_record_bytes => {
                let index = self.index;
                self.index += 1;
                Some(Ok(Record {
                    location: self.ctx.location(RecordUnit::Element, index, None),
                    sample: Err(RejectReason::RecordTooLarge {
                        bytes: element.size,
                        limit: self.ctx.spec.max_record_bytes,
                    }),
                }))
            }
            Ok(Some(element)) => {
                let index = self.index;
                self.index += 1;
                let start = element.line;
                let sample = parse_record(&self.ctx, &element.bytes, |e| {
                    format!(
                        " at line {} of the file",
                        start + e.line().saturating_sub(1) as u64
                    )
                });
                Some(Ok(Record {
                    location: self.ctx.location(RecordUnit::Element, index, None),
                    sample,
                }))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                let path = self.ctx.path.clone();
                Some(Err(match e {
                    ScanError::Io(source) => SourceError::Io { path, source },
                    ScanError::NotAnArray { found: None } => SourceError::JsonArray {
                        path,
                        detail: "the file is empty".into(),
                    },
                    ScanError::NotAnArray { found: Some(b) } => SourceError::JsonArray {
                        path,
                        detail: format!(
                            "the file starts with `{}`, not `[`",
                            char::from(b).escape_default()
                        ),
                    },
                    ScanError::Malformed(detail) => SourceError::JsonArray { path, detail },
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::super::images::testing::png_header;
    use super::super::testing::{read_all, spec};
    use super::super::{SourceFormat, read_source};
    use crate::sample::{ImageSource, Role, SampleKind};

    fn write(dir: &Path, name: &str, body: impl AsRef<[u8]>) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, body).unwrap();
        p
    }

    fn reasons(records: &[super::Record]) -> Vec<Option<&'static str>> {
        records
            .iter()
            .map(|r| r.sample.as_ref().err().map(|e| e.code().as_str()))
            .collect()
    }

    #[test]
    fn llava_jsonl_resolves_images_next_to_the_file_and_reads_their_size() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "imgs/a.png", png_header(40, 30));
        let f = write(
            dir.path(),
            "llava.jsonl",
            r#"{"image": "imgs/a.png", "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A."}]}
"#,
        );
        let records = read_all(&spec(SourceFormat::Conversation, vec![f.clone()]));
        let sample = records[0].sample.as_ref().unwrap();
        assert_eq!(sample.kind, SampleKind::Conversation);
        assert_eq!(
            sample.images[0].source,
            ImageSource::File(dir.path().join("imgs/a.png"))
        );
        assert_eq!(sample.images[0].size, Some((30, 40)));
        assert_eq!(
            records[0].location.to_string(),
            format!("{}:1", f.display())
        );
    }

    #[test]
    fn sharegpt_messages_with_an_images_list_get_placeholders_before_the_first_user_turn() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x.png", png_header(8, 8));
        write(dir.path(), "y.png", png_header(16, 8));
        let f = write(
            dir.path(),
            "sharegpt.jsonl",
            r#"{"images": ["x.png", "y.png"], "messages": [{"role": "user", "content": "diff?"}, {"role": "assistant", "content": "size"}]}"#,
        );
        let records = read_all(&spec(SourceFormat::Conversation, vec![f]));
        let sample = records[0].sample.as_ref().unwrap();
        assert_eq!(sample.turns[0].text, "<image>\n<image>\ndiff?");
        assert_eq!(
            sample.images.iter().map(|i| i.size).collect::<Vec<_>>(),
            [Some((8, 8)), Some((8, 16))]
        );
    }

    #[test]
    fn image_root_overrides_the_file_folder_and_absolute_paths_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pics");
        write(&root, "a.png", png_header(2, 2));
        let abs = write(dir.path(), "elsewhere/b.png", png_header(3, 3));
        let f = write(
            dir.path(),
            "data/caps.jsonl",
            format!(
                "{{\"image\": \"a.png\", \"caption\": \"one\"}}\n{{\"image\": \"{}\", \"caption\": \"two\"}}\n",
                abs.display()
            ),
        );
        let mut s = spec(SourceFormat::Caption, vec![f]);
        s.image_root = Some(root.clone());
        let records = read_all(&s);
        assert_eq!(
            records[0].sample.as_ref().unwrap().images[0].source,
            ImageSource::File(root.join("a.png"))
        );
        assert_eq!(
            records[1].sample.as_ref().unwrap().images[0].source,
            ImageSource::File(abs)
        );
    }

    #[test]
    fn caption_and_text_records_map_to_their_kinds_with_field_overrides() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.png", png_header(2, 2));
        let caps = write(
            dir.path(),
            "caps.jsonl",
            r#"{"img": "a.png", "alt": "a red square"}"#,
        );
        let mut s = spec(SourceFormat::Caption, vec![caps]);
        s.fields.image = Some("img".into());
        s.fields.caption = Some("alt".into());
        let sample = read_all(&s).remove(0).sample.unwrap();
        assert_eq!(sample.kind, SampleKind::Caption);
        assert_eq!(sample.turns[0].text, "<image>");
        assert_eq!(
            (sample.turns[1].role, sample.turns[1].text.as_str()),
            (Role::Assistant, "a red square")
        );

        let docs = write(
            dir.path(),
            "docs.jsonl",
            "{\"body\": \"Once upon a time.\"}\n",
        );
        let mut s = spec(SourceFormat::Text, vec![docs]);
        s.fields.text = Some("body".into());
        let sample = read_all(&s).remove(0).sample.unwrap();
        assert_eq!(sample.kind, SampleKind::Text);
        assert_eq!(sample.turns[0].text, "Once upon a time.");
    }

    #[test]
    fn every_json_level_reject_is_located_on_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ok.png", png_header(4, 4));
        std::fs::write(dir.path().join("junk.png"), b"definitely not an image").unwrap();
        let mut body = Vec::new();
        let lines: [&[u8]; 12] = [
            br#"{"image": "ok.png", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}"#,
            br#"{"conversations": [{"from": "human", "value": "hi"} {"from": "gpt"}]}"#,
            b"{\"conversations\": \"\xff\xfe\"}",
            br#"{"conversations": []}"#,
            br#"{"conversations": [{"from": "human", "value": "hi"}]}"#,
            br#"{"conversations": [{"from": "bot", "value": "hi"}, {"from": "gpt", "value": "x"}]}"#,
            br#"{"image": "ok.png", "conversations": [{"from": "human", "value": "<image><image>"}, {"from": "gpt", "value": "x"}]}"#,
            br#"{"image": "gone.png", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "x"}]}"#,
            br#"{"image": "junk.png", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "x"}]}"#,
            br#"{"dialogue": []}"#,
            br#"{"conversations": [{"from": "human", "value": 7}, {"from": "gpt", "value": "x"}]}"#,
            br#"[1, 2]"#,
        ];
        for line in lines {
            body.extend_from_slice(line);
            body.extend_from_slice(b"\n");
        }
        let f = write(dir.path(), "llava.jsonl", body);
        let records = read_all(&spec(SourceFormat::Conversation, vec![f.clone()]));
        assert_eq!(
            reasons(&records),
            [
                None,
                Some("invalid_json"),
                Some("invalid_utf8"),
                Some("empty_conversation"),
                Some("no_assistant_turn"),
                Some("unknown_role"),
                Some("placeholder_mismatch"),
                Some("missing_image"),
                Some("unreadable_image_header"),
                Some("missing_field"),
                Some("wrong_type"),
                Some("wrong_type"),
            ]
        );
        let messages: Vec<String> = records.iter().filter_map(|r| r.reject_message()).collect();
        let f = f.display();
        assert_eq!(
            messages[0],
            format!("{f}:2: invalid JSON: expected `,` or `]` at column 53")
        );
        assert_eq!(messages[1], format!("{f}:3: not valid UTF-8"));
        assert_eq!(messages[2], format!("{f}:4: the conversation has no turns"));
        assert_eq!(
            messages[3],
            format!("{f}:5: the conversation has no assistant turn")
        );
        assert!(
            messages[4].starts_with(&format!("{f}:6: unknown role `bot`")),
            "{}",
            messages[4]
        );
        assert!(messages[5].starts_with(&format!(
            "{f}:7: 2 `<image>` placeholder(s) in the text but 1 image(s)"
        )));
        assert!(messages[6].starts_with(&format!(
            "{f}:8: image not found: {}",
            dir.path().join("gone.png").display()
        )));
        assert!(
            messages[7].starts_with(&format!("{f}:9: cannot read the image header of ")),
            "{}",
            messages[7]
        );
        assert_eq!(
            messages[8],
            format!("{f}:10: missing field `conversations` (nor `messages`)")
        );
        assert_eq!(
            messages[9],
            format!("{f}:11: field `conversations[0].value` is a number, expected a string")
        );
        assert_eq!(
            messages[10],
            format!("{f}:12: field `(record)` is an array, expected an object")
        );
    }

    #[test]
    fn caption_and_text_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let caps = write(
            dir.path(),
            "caps.jsonl",
            "{\"caption\": \"no image\"}\n{\"image\": [], \"caption\": \"x\"}\n",
        );
        let records = read_all(&spec(SourceFormat::Caption, vec![caps]));
        assert_eq!(reasons(&records), [Some("missing_field"), Some("no_image")]);
        assert_eq!(
            records[0].sample.as_ref().unwrap_err().to_string(),
            "missing field `image` (nor `images`)"
        );
        let docs = write(
            dir.path(),
            "docs.jsonl",
            "{\"text\": \"\"}\n{\"text\": null}\n",
        );
        let records = read_all(&spec(SourceFormat::Text, vec![docs]));
        assert_eq!(reasons(&records), [Some("empty_text"), Some("null_field")]);
    }

    #[test]
    fn blank_lines_are_skipped_but_counted_and_crlf_and_bom_are_tolerated() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "t.jsonl",
            "\u{FEFF}{\"text\": \"a\"}\r\n\r\n   \n{\"text\": \"b\"}",
        );
        let records = read_all(&spec(SourceFormat::Text, vec![f]));
        assert_eq!(
            records
                .iter()
                .map(|r| r.location.record)
                .collect::<Vec<_>>(),
            [0, 3]
        );
        assert!(records.iter().all(|r| r.sample.is_ok()));
        assert_eq!(records[1].sample.as_ref().unwrap().turns[0].text, "b");
    }

    #[test]
    fn a_json_array_file_streams_its_elements() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "llava.json",
            "[\n {\"conversations\": [{\"from\": \"human\", \"value\": \"a, ] }\"}, {\"from\": \"gpt\", \"value\": \"b\"}]},\n {\"conversations\": [}\n]\n",
        );
        let records = read_all(&spec(SourceFormat::Conversation, vec![f.clone()]));
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].sample.as_ref().unwrap().turns[0].text, "a, ] }");
        assert_eq!(
            records[1].location.to_string(),
            format!("{}[1]", f.display())
        );
        assert_eq!(
            records[1].reject_message().unwrap(),
            format!(
                "{}[1]: invalid JSON: expected value at line 3 of the file",
                f.display()
            )
        );
    }

    #[test]
    fn a_json_file_holding_json_lines_is_read_as_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "docs.json",
            "{\"text\": \"a\"}\n{\"text\": \"b\"}\n",
        );
        let records = read_all(&spec(SourceFormat::Text, vec![f]));
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].location.unit, super::RecordUnit::Line);
    }

    #[test]
    fn a_truncated_json_array_yields_its_complete_elements_then_a_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "cut.json", "[{\"text\": \"a\"}, {\"text\": \"b");
        let items: Vec<_> = read_source(&spec(SourceFormat::Text, vec![f.clone()]))
            .unwrap()
            .collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].as_ref().unwrap().sample.is_ok());
        let err = items[1].as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: the file ends inside the element",
                f.display()
            )),
            "{err}"
        );
        let g = write(dir.path(), "scalar.json", "42");
        let err = read_source(&spec(SourceFormat::Text, vec![g]))
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        assert!(
            err.to_string().contains("starts with `4`, not `[`"),
            "{err}"
        );
    }

    #[test]
    fn a_50k_line_file_is_iterated_one_record_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = String::with_capacity(50_000 * 24);
        for i in 0..50_000 {
            body.push_str(&format!("{{\"text\": \"doc {i}\"}}\n"));
        }
        let f = write(dir.path(), "big.jsonl", body);
        let mut count = 0u64;
        let mut last = None;
        for item in read_source(&spec(SourceFormat::Text, vec![f])).unwrap() {
            let record = item.unwrap();
            assert_eq!(record.location.record, count);
            count += 1;
            last = Some(record);
        }
        assert_eq!(count, 50_000);
        assert_eq!(last.unwrap().sample.unwrap().turns[0].text, "doc 49999");
    }

    /// Streaming, proven: the writer only writes line k+1 after the reader has yielded record k, so
    /// a reader that tried to read ahead (or slurp the file) would block forever.
    #[cfg(unix)]
    #[test]
    fn records_are_yielded_before_the_rest_of_the_file_exists() {
        use std::io::Write;
        use std::sync::mpsc;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.jsonl");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("mkfifo unavailable; skipping");
            return;
        }
        let (ack_tx, ack_rx) = mpsc::channel::<()>();
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            let mut w = std::fs::OpenOptions::new()
                .write(true)
                .open(writer_path)
                .unwrap();
            for i in 0..3 {
                writeln!(w, "{{\"text\": \"line {i}\"}}").unwrap();
                w.flush().unwrap();
                if ack_rx.recv_timeout(Duration::from_secs(20)).is_err() {
                    return false;
                }
            }
            true
        });
        let mut records = read_source(&spec(SourceFormat::Text, vec![fifo])).unwrap();
        for i in 0..3 {
            let r = records.next().unwrap().unwrap();
            assert_eq!(r.sample.unwrap().turns[0].text, format!("line {i}"));
            ack_tx.send(()).unwrap();
        }
        assert!(writer.join().unwrap());
        assert!(records.next().is_none());
    }
}
