//! WebDataset reader: uncompressed `.tar` shards whose consecutive members sharing a key form a sample.
//!
//! WebDataset's convention: a member's key is its path with the base name cut at the first dot, the
//! rest is its extension (`a/000123.seg.png` -> key `a/000123`, extension `seg.png`). A group's `json`
//! member follows the source's schema (caption by default); images are the `jpg`, `jpeg`, `png` and
//! `webp` members, ordered by extension so a group's image order never depends on how the tar was
//! written; a `txt` or `caption` member can hold the caption or text.
//!
//! Streaming without threads or self-referential structs: `tar::Archive::entries` borrows the
//! archive, so an iterator cannot own both. Instead each group is read by a fresh `Archive` over the
//! file, seeked to where the previous group's last member ended (member data is 512-byte aligned,
//! and the next member's extension headers — GNU long names, PAX — start right there). Reading one
//! group therefore costs one extra header read: the first header of the next group, read to see that
//! the key changed and read again by the next call.
//!
//! A group's size is the sum of its members' sizes from their tar headers. Once it passes the
//! source's `max_record_bytes`, the rest of the group's data is skipped unread and the group is
//! rejected as `record_too_large`, so a huge member never lands in memory.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::convert::{
    as_object, caption_keys, conversation_turns, finish_caption, finish_conversation, finish_text,
    required_text, text_keys,
};
use super::error::{RejectReason, SourceError};
use super::images::probe_bytes;
use super::spec::RecordSchema;
use super::{FileCtx, Record, RecordUnit, Records};
use crate::sample::{ImageRef, Sample};

/// Member extensions read as images.
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Member extensions read as plain-text captions (or text bodies) when the `json` has none.
pub const TEXT_EXTENSIONS: [&str; 2] = ["txt", "caption"];

/// One tar member of a group.
#[derive(Debug)]
struct Member {
    /// Lower-cased extension, everything after the first dot of the base name.
    ext: String,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Group {
    key: String,
    /// Empty once `bytes` passes the cap.
    members: Vec<Member>,
    /// Sum of the members' sizes, read or not.
    bytes: u64,
}

pub(crate) fn open(ctx: FileCtx) -> Result<Records, SourceError> {
    let file = mixtape_store::local_copy(&ctx.path)
        .and_then(File::open)
        .map_err(|e| SourceError::io(&ctx.path, e))?;
    Ok(Box::new(TarGroups {
        ctx,
        file: BufReader::new(file),
        offset: 0,
        index: 0,
        done: false,
    }))
}

/// Splits a member path into (key, extension) per WebDataset; `None` for names without an
/// extension and hidden files (`._000123.jpg` from macOS), which WebDataset skips too.
fn split_key(path: &str) -> Option<(&str, &str)> {
    let base_start = path.rfind('/').map_or(0, |i| i + 1);
    let base = &path[base_start..];
    if base.starts_with('.') {
        return None;
    }
    let dot = base.find('.')?;
    let ext = &base[dot + 1..];
    if ext.is_empty() {
        return None;
    }
    Some((&path[..base_start + dot], ext))
}

struct TarGroups {
    ctx: FileCtx,
    file: BufReader<File>,
    /// Byte offset where the next group's first member (or its extension headers) starts.
    offset: u64,
    index: u64,
    done: bool,
}

impl TarGroups {
    /// Reads the group starting at `self.offset`; `None` at the end of the archive.
    fn read_group(&mut self) -> Result<Option<Group>, SourceError> {
        let base = self.offset;
        let path = &self.ctx.path;
        let tar_err = |detail: String| SourceError::Tar {
            path: path.clone(),
            detail: format!("in the group starting at byte {base}: {detail}"),
        };
        self.file
            .seek(SeekFrom::Start(base))
            .map_err(|e| SourceError::io(path, e))?;
        let mut archive = tar::Archive::new(&mut self.file);
        let entries = archive.entries().map_err(|e| tar_err(e.to_string()))?;
        let mut group: Option<Group> = None;
        let mut end = None;
        let mut finished = true;
        for entry in entries {
            let mut entry = match entry {
                Ok(entry) => entry,
                // The group read so far is complete; the next call reports the error at its start.
                Err(_) if end.is_some() => {
                    finished = false;
                    break;
                }
                Err(e) => return Err(tar_err(e.to_string())),
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some((key, ext)) = split_key(&name) else {
                continue;
            };
            match &group {
                Some(g) if g.key != key => {
                    finished = false;
                    break;
                }
                Some(_) => {}
                None => {
                    group = Some(Group {
                        key: key.to_owned(),
                        members: Vec::new(),
                        bytes: 0,
                    })
                }
            }
            end = Some(entry.raw_file_position() + entry.size().div_ceil(512) * 512);
            let cap = self.ctx.spec.max_record_bytes;
            if let Some(g) = &mut group {
                g.bytes = g.bytes.saturating_add(entry.size());
                if g.bytes > cap {
                    // Too large: drop what was kept and let the tar reader skip this member's data.
                    g.members = Vec::new();
                    continue;
                }
            }
            let ext = ext.to_ascii_lowercase();
            let mut data =
                Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0).min(64 << 20));
            entry
                .read_to_end(&mut data)
                .map_err(|e| tar_err(format!("reading {name}: {e}")))?;
            if let Some(g) = &mut group {
                g.members.push(Member { ext, data });
            }
        }
        match (finished, end) {
            (false, Some(end)) => self.offset = base + end,
            _ => self.done = true,
        }
        Ok(group)
    }
}

impl Iterator for TarGroups {
    type Item = Result<Record, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_group() {
            Ok(Some(group)) => {
                let index = self.index;
                self.index += 1;
                let limit = self.ctx.spec.max_record_bytes;
                let sample = if group.bytes > limit {
                    Err(RejectReason::RecordTooLarge {
                        bytes: group.bytes,
                        limit,
                    })
                } else {
                    group_sample(&self.ctx, &group)
                };
                Some(Ok(Record {
                    location: self.ctx.location(RecordUnit::Group, index, Some(group.key)),
                    sample,
                }))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn group_sample(ctx: &FileCtx, group: &Group) -> Result<Sample, RejectReason> {
    let schema = ctx.spec.schema.unwrap_or(RecordSchema::Caption);
    let member = |exts: &[&str]| {
        group
            .members
            .iter()
            .find(|m| exts.contains(&m.ext.as_str()))
    };
    let obj = match member(&["json"]) {
        Some(m) => {
            let text = std::str::from_utf8(&m.data).map_err(|_| RejectReason::InvalidUtf8)?;
            let value: Value = serde_json::from_str(text).map_err(|e| {
                RejectReason::InvalidJson(format!("in member {}.json: {e}", group.key))
            })?;
            as_object(&value)?;
            match value {
                Value::Object(obj) => obj,
                _ => Map::new(),
            }
        }
        None => Map::new(),
    };
    let fields = &ctx.spec.fields;
    // The caption or text: the json's field when it has one, else a text member.
    let body = |keys: Vec<&str>| -> Result<String, RejectReason> {
        if keys.iter().any(|k| obj.contains_key(*k)) {
            return required_text(&obj, &keys);
        }
        match member(&TEXT_EXTENSIONS) {
            Some(m) => {
                let text = std::str::from_utf8(&m.data).map_err(|_| RejectReason::InvalidUtf8)?;
                let text = text.trim();
                if text.is_empty() {
                    return Err(RejectReason::EmptyText(m.ext.clone()));
                }
                Ok(text.to_owned())
            }
            None if member(&["json"]).is_some() => {
                Err(RejectReason::missing(keys[0], keys.get(1..).unwrap_or(&[])))
            }
            None => Err(RejectReason::MissingMember("json".into())),
        }
    };
    match schema {
        RecordSchema::Caption => finish_caption(body(caption_keys(fields))?, images(group)?),
        RecordSchema::Text => finish_text(body(text_keys(fields))?),
        RecordSchema::Conversation => {
            if member(&["json"]).is_none() {
                return Err(RejectReason::MissingMember("json".into()));
            }
            let turns = conversation_turns(&obj, fields)?;
            finish_conversation(turns, images(group)?)
        }
    }
}

/// The group's image members, ordered by extension, with their sizes.
fn images(group: &Group) -> Result<Vec<ImageRef>, RejectReason> {
    let mut members: Vec<&Member> = group
        .members
        .iter()
        .filter(|m| IMAGE_EXTENSIONS.contains(&m.ext.rsplit('.').next().unwrap_or("")))
        .collect();
    members.sort_by(|a, b| a.ext.cmp(&b.ext));
    members
        .into_iter()
        .map(|m| {
            probe_bytes(Arc::from(m.data.as_slice()), || {
                format!("member {}.{}", group.key, m.ext)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::super::images::testing::png_header;
    use super::super::testing::{read_all, spec};
    use super::super::{RecordSchema, RejectReason, SourceFormat, read_source, sample_key};
    use super::*;
    use crate::sample::{ImageSource, Role, SampleKind};

    /// Writes a tar with the given members, in order.
    fn write_tar(dir: &Path, name: &str, members: &[(&str, Vec<u8>)]) -> PathBuf {
        let path = dir.join(name);
        let mut builder = tar::Builder::new(File::create(&path).unwrap());
        for (member, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, member, data.as_slice())
                .unwrap();
        }
        builder.into_inner().unwrap();
        path
    }

    fn json(v: &str) -> Vec<u8> {
        v.as_bytes().to_vec()
    }

    #[test]
    fn keys_cut_the_base_name_at_its_first_dot() {
        assert_eq!(split_key("000123.jpg"), Some(("000123", "jpg")));
        assert_eq!(
            split_key("shard/000123.seg.png"),
            Some(("shard/000123", "seg.png"))
        );
        assert_eq!(split_key("a.b/c.txt"), Some(("a.b/c", "txt")));
        assert_eq!(split_key("README"), None);
        assert_eq!(split_key("._000123.jpg"), None);
    }

    #[test]
    fn consecutive_members_with_one_key_form_a_caption_sample() {
        let dir = tempfile::tempdir().unwrap();
        let tar = write_tar(
            dir.path(),
            "shapes-000000.tar",
            &[
                ("000000.png", png_header(20, 10)),
                ("000000.json", json(r#"{"caption": "two squares"}"#)),
                ("000001.jpg", png_header(5, 5)),
                ("000001.txt", json("a circle\n")),
            ],
        );
        let records = read_all(&spec(SourceFormat::WebDataset, vec![tar.clone()]));
        assert_eq!(records.len(), 2);
        let first = records[0].sample.as_ref().unwrap();
        assert_eq!(first.kind, SampleKind::Caption);
        assert_eq!(first.turns[1].text, "two squares");
        assert_eq!(first.images[0].size, Some((10, 20)));
        assert!(matches!(first.images[0].source, ImageSource::Bytes(_)));
        assert_eq!(
            records[1].sample.as_ref().unwrap().turns[1].text,
            "a circle"
        );
        assert_eq!(
            records[1].location.to_string(),
            format!("{} member 000001", tar.display())
        );
        assert_eq!(records[1].location.record, 1);
        let s = spec(SourceFormat::WebDataset, vec![tar]);
        assert_eq!(
            sample_key(&s, &records[1].location),
            "shapes-000000.tar member 000001"
        );
    }

    #[test]
    fn several_images_are_ordered_by_extension_not_by_tar_order() {
        let dir = tempfile::tempdir().unwrap();
        let tar = write_tar(
            dir.path(),
            "multi.tar",
            &[
                ("k.right.png", png_header(2, 2)),
                (
                    "k.json",
                    json(
                        r#"{"messages": [{"role": "user", "content": "<image> vs <image>"}, {"role": "assistant", "content": "same"}]}"#,
                    ),
                ),
                ("k.left.png", png_header(1, 1)),
            ],
        );
        let mut s = spec(SourceFormat::WebDataset, vec![tar]);
        s.schema = Some(RecordSchema::Conversation);
        let sample = read_all(&s).remove(0).sample.unwrap();
        assert_eq!(
            sample.images.iter().map(|i| i.size).collect::<Vec<_>>(),
            [Some((1, 1)), Some((2, 2))]
        );
        assert_eq!(sample.turns[1].role, Role::Assistant);
    }

    #[test]
    fn long_member_names_and_directories_do_not_break_grouping() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{}/sample", "d".repeat(150));
        let path = dir.path().join("long.tar");
        let mut builder = tar::Builder::new(File::create(&path).unwrap());
        let mut dir_header = tar::Header::new_gnu();
        dir_header.set_entry_type(tar::EntryType::Directory);
        dir_header.set_size(0);
        dir_header.set_mode(0o755);
        dir_header.set_cksum();
        builder
            .append_data(&mut dir_header, "d/", std::io::empty())
            .unwrap();
        for (name, data) in [
            (format!("{long}1.png"), png_header(3, 4)),
            (format!("{long}1.txt"), json("one")),
            (format!("{long}2.png"), png_header(5, 6)),
            (format!("{long}2.txt"), json("two")),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, &name, data.as_slice())
                .unwrap();
        }
        builder.into_inner().unwrap();
        let records = read_all(&spec(SourceFormat::WebDataset, vec![path]));
        let captions: Vec<&str> = records
            .iter()
            .map(|r| r.sample.as_ref().unwrap().turns[1].text.as_str())
            .collect();
        assert_eq!(captions, ["one", "two"]);
        assert_eq!(
            records[1].location.member.as_deref(),
            Some(format!("{long}2").as_str())
        );
    }

    #[test]
    fn group_level_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let tar = write_tar(
            dir.path(),
            "bad.tar",
            &[
                ("a.json", json(r#"{"caption": "no image"}"#)),
                ("b.png", png_header(2, 2)),
                ("c.png", png_header(2, 2)),
                ("c.json", json("{broken")),
                ("d.png", b"not a png at all".to_vec()),
                ("d.txt", json("x")),
            ],
        );
        let records = read_all(&spec(SourceFormat::WebDataset, vec![tar.clone()]));
        let codes: Vec<_> = records
            .iter()
            .map(|r| r.sample.as_ref().err().map(|e| e.code().as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                Some("no_image"),
                Some("missing_member"),
                Some("invalid_json"),
                Some("unreadable_image_header")
            ]
        );
        assert_eq!(
            records[1].reject_message().unwrap(),
            format!("{} member b: no `json` member in the group", tar.display())
        );
        assert!(
            records[3]
                .reject_message()
                .unwrap()
                .contains("cannot read the image header of member d.png")
        );

        let mut s = spec(SourceFormat::WebDataset, vec![tar]);
        s.schema = Some(RecordSchema::Conversation);
        let records = read_all(&s);
        assert_eq!(
            records[1].sample.as_ref().unwrap_err(),
            &RejectReason::MissingMember("json".into())
        );
    }

    #[test]
    fn text_schema_reads_the_json_text_or_a_txt_member() {
        let dir = tempfile::tempdir().unwrap();
        let tar = write_tar(
            dir.path(),
            "t.tar",
            &[
                ("a.json", json(r#"{"text": "from json"}"#)),
                ("b.txt", json("from txt")),
            ],
        );
        let mut s = spec(SourceFormat::WebDataset, vec![tar]);
        s.schema = Some(RecordSchema::Text);
        let texts: Vec<String> = read_all(&s)
            .into_iter()
            .map(|r| r.sample.unwrap().turns[0].text.clone())
            .collect();
        assert_eq!(texts, ["from json", "from txt"]);
    }

    #[test]
    fn a_file_that_is_not_a_tar_is_a_file_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fake.tar");
        std::fs::write(&p, vec![b'x'; 1024]).unwrap();
        let err = read_source(&spec(SourceFormat::WebDataset, vec![p.clone()]))
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("cannot read tar file {}", p.display())),
            "{msg}"
        );
    }

    #[test]
    fn groups_before_a_corrupt_header_are_still_yielded() {
        let dir = tempfile::tempdir().unwrap();
        let tar = write_tar(
            dir.path(),
            "cut.tar",
            &[
                ("a.png", png_header(2, 2)),
                ("a.txt", json("first")),
                ("b.png", png_header(2, 2)),
            ],
        );
        // Overwrite the third member's header (after two 512-byte headers + two padded bodies).
        let mut bytes = std::fs::read(&tar).unwrap();
        bytes[2048..2048 + 512].fill(b'x');
        std::fs::write(&tar, bytes).unwrap();
        let items: Vec<_> = read_source(&spec(SourceFormat::WebDataset, vec![tar.clone()]))
            .unwrap()
            .collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0].as_ref().unwrap().sample.as_ref().unwrap().turns[1].text,
            "first"
        );
        let err = items[1].as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "cannot read tar file {}: in the group starting at byte 2048",
                tar.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn many_groups_stream_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<(String, Vec<u8>)> = (0..300)
            .flat_map(|i| {
                [
                    (format!("{i:06}.png"), png_header(i + 1, 1)),
                    (format!("{i:06}.txt"), json("c")),
                ]
            })
            .collect();
        let refs: Vec<(&str, Vec<u8>)> = members
            .iter()
            .map(|(n, d)| (n.as_str(), d.clone()))
            .collect();
        let tar = write_tar(dir.path(), "many.tar", &refs);
        let widths: Vec<u32> = read_source(&spec(SourceFormat::WebDataset, vec![tar]))
            .unwrap()
            .map(|r| r.unwrap().sample.unwrap().images[0].size.unwrap().1)
            .collect();
        assert_eq!(widths, (1..=300).collect::<Vec<u32>>());
    }
}
