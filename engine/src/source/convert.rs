//! Records to samples: the one place that knows what a conversation, caption or text record means.
//!
//! Every format funnels through here. JSONL lines and JSON-array elements arrive as JSON objects; a
//! Parquet row arrives as a JSON object of its projected columns (nested `list<struct>` columns
//! become arrays of objects); a WebDataset group arrives as its `json` member. Images are passed in
//! by the caller, lazily, because only the caller knows where they come from (paths in the JSON,
//! an image column, tar members) — and because probing headers costs I/O, which a record that is
//! already broken should not pay.
//!
//! Conventions enforced here (see `crate::sample`): one `<image>` placeholder per image, in order;
//! a record with images but no placeholders gets them put before its first user turn (LLaVA);
//! a conversation must have an assistant turn, since loss is applied only there.

use serde_json::{Map, Value};

use super::error::{RejectReason, json_type_name};
use super::spec::{FieldMap, RecordSchema};
use crate::sample::{IMAGE_PLACEHOLDER, ImageRef, Role, Sample, SampleKind, Turn};

/// Default field names, per format, when the recipe's `fields:` does not override them.
pub(crate) const DEFAULT_CONVERSATIONS: &str = "conversations";
pub(crate) const DEFAULT_MESSAGES: &str = "messages";
pub(crate) const DEFAULT_IMAGE: &str = "image";
pub(crate) const DEFAULT_IMAGES: &str = "images";
pub(crate) const DEFAULT_CAPTION: &str = "caption";
pub(crate) const DEFAULT_TEXT: &str = "text";

/// The names looked up, in order, for each part of a record: an explicit `fields:` entry replaces
/// the defaults (no fallback, so a typo in the recipe shows up as a missing field, not as silently
/// reading another column).
pub(crate) fn conversation_keys(fields: &FieldMap) -> Vec<&str> {
    match (&fields.conversations, &fields.messages) {
        (None, None) => vec![DEFAULT_CONVERSATIONS, DEFAULT_MESSAGES],
        (c, m) => c.iter().chain(m.iter()).map(String::as_str).collect(),
    }
}

pub(crate) fn image_keys(fields: &FieldMap) -> Vec<&str> {
    match &fields.image {
        Some(k) => vec![k.as_str()],
        None => vec![DEFAULT_IMAGE, DEFAULT_IMAGES],
    }
}

pub(crate) fn caption_keys(fields: &FieldMap) -> Vec<&str> {
    match &fields.caption {
        Some(k) => vec![k.as_str()],
        None => vec![DEFAULT_CAPTION, DEFAULT_TEXT],
    }
}

pub(crate) fn text_keys(fields: &FieldMap) -> Vec<&str> {
    vec![fields.text.as_deref().unwrap_or(DEFAULT_TEXT)]
}

/// Builds a sample from a record object. `images` is called once the text parts are valid.
pub(crate) fn sample_from_object(
    schema: RecordSchema,
    obj: &Map<String, Value>,
    fields: &FieldMap,
    images: impl FnOnce() -> Result<Vec<ImageRef>, RejectReason>,
) -> Result<Sample, RejectReason> {
    match schema {
        RecordSchema::Conversation => {
            let turns = conversation_turns(obj, fields)?;
            finish_conversation(turns, images()?)
        }
        RecordSchema::Caption => {
            let caption = required_text(obj, &caption_keys(fields))?;
            finish_caption(caption, images()?)
        }
        RecordSchema::Text => {
            let text = required_text(obj, &text_keys(fields))?;
            finish_text(text)
        }
    }
}

/// Requires the record to be an object (a JSONL line could hold any JSON value).
pub(crate) fn as_object(value: &Value) -> Result<&Map<String, Value>, RejectReason> {
    value.as_object().ok_or_else(|| RejectReason::WrongType {
        field: "(record)".to_owned(),
        expected: "an object",
        found: json_type_name(value),
    })
}

/// The first of `keys` present in `obj`, with its value.
fn first_present<'a, 'k>(
    obj: &'a Map<String, Value>,
    keys: &[&'k str],
) -> Option<(&'k str, &'a Value)> {
    keys.iter().find_map(|k| obj.get(*k).map(|v| (*k, v)))
}

fn missing(keys: &[&str]) -> RejectReason {
    RejectReason::missing(
        keys.first().copied().unwrap_or("?"),
        keys.get(1..).unwrap_or(&[]),
    )
}

/// A required string field (caption, text), taken from the first key present.
pub(crate) fn required_text(
    obj: &Map<String, Value>,
    keys: &[&str],
) -> Result<String, RejectReason> {
    let (key, value) = first_present(obj, keys).ok_or_else(|| missing(keys))?;
    match value {
        Value::String(s) if s.trim().is_empty() => Err(RejectReason::EmptyText(key.to_owned())),
        Value::String(s) => Ok(s.clone()),
        Value::Null => Err(RejectReason::NullField(key.to_owned())),
        other => Err(RejectReason::WrongType {
            field: key.to_owned(),
            expected: "a string",
            found: json_type_name(other),
        }),
    }
}

/// Image paths written in a record: a string, or a list of strings, under the first key present.
/// Absent or null means no images; the caller decides whether that is allowed.
pub(crate) fn image_paths(
    obj: &Map<String, Value>,
    keys: &[&str],
) -> Result<Vec<String>, RejectReason> {
    let Some((key, value)) = first_present(obj, keys) else {
        return Ok(Vec::new());
    };
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(RejectReason::WrongType {
                    field: format!("{key}[{i}]"),
                    expected: "a string (an image path)",
                    found: json_type_name(other),
                }),
            })
            .collect(),
        other => Err(RejectReason::WrongType {
            field: key.to_owned(),
            expected: "a string or a list of strings",
            found: json_type_name(other),
        }),
    }
}

/// The turns of a conversation record, LLaVA (`{from, value}`) or messages (`{role, content}`) style.
///
/// The style is detected per record from the list's key; each turn also accepts the other style's
/// names as a fallback, because mixed exports (a `conversations` list of `{role, content}`) exist in
/// the wild and are unambiguous.
pub(crate) fn conversation_turns(
    obj: &Map<String, Value>,
    fields: &FieldMap,
) -> Result<Vec<Turn>, RejectReason> {
    let keys = conversation_keys(fields);
    let (key, value) = first_present(obj, &keys).ok_or_else(|| missing(&keys))?;
    let llava_style = fields
        .conversations
        .as_deref()
        .unwrap_or(DEFAULT_CONVERSATIONS)
        == key;
    turns_from_value(key, value, llava_style)
}

/// Turns from a JSON list of turn objects; `key` names the list in rejects.
pub(crate) fn turns_from_value(
    key: &str,
    value: &Value,
    llava_style: bool,
) -> Result<Vec<Turn>, RejectReason> {
    let list = match value {
        Value::Array(list) => list,
        Value::Null => return Err(RejectReason::NullField(key.to_owned())),
        other => {
            return Err(RejectReason::WrongType {
                field: key.to_owned(),
                expected: "a list of turns",
                found: json_type_name(other),
            });
        }
    };
    if list.is_empty() {
        return Err(RejectReason::EmptyConversation);
    }
    let (role_keys, text_keys) = if llava_style {
        (["from", "role"], ["value", "content"])
    } else {
        (["role", "from"], ["content", "value"])
    };
    list.iter()
        .enumerate()
        .map(|(i, turn)| {
            let at = |name: &str| format!("{key}[{i}].{name}");
            let Value::Object(turn) = turn else {
                return Err(RejectReason::WrongType {
                    field: format!("{key}[{i}]"),
                    expected: "an object",
                    found: json_type_name(turn),
                });
            };
            let (role_key, role) = first_present(turn, &role_keys)
                .ok_or_else(|| RejectReason::missing(&at(role_keys[0]), &[&at(role_keys[1])]))?;
            let role = match role {
                Value::String(r) => parse_role(r)?,
                other => {
                    return Err(RejectReason::WrongType {
                        field: at(role_key),
                        expected: "a string",
                        found: json_type_name(other),
                    });
                }
            };
            let (text_key, text) = first_present(turn, &text_keys)
                .ok_or_else(|| RejectReason::missing(&at(text_keys[0]), &[&at(text_keys[1])]))?;
            let text = match text {
                Value::String(t) => t.clone(),
                Value::Null => return Err(RejectReason::NullField(at(text_key))),
                other => {
                    return Err(RejectReason::WrongType {
                        field: at(text_key),
                        expected: "a string",
                        found: json_type_name(other),
                    });
                }
            };
            Ok(Turn { role, text })
        })
        .collect()
}

/// Maps a speaker name to a role: LLaVA's `human`/`gpt` and OpenAI's `user`/`assistant`, plus
/// `system`. Case is ignored (`Human`, `GPT` occur in exports).
pub(crate) fn parse_role(name: &str) -> Result<Role, RejectReason> {
    match name.to_ascii_lowercase().as_str() {
        "human" | "user" => Ok(Role::User),
        "gpt" | "assistant" => Ok(Role::Assistant),
        "system" => Ok(Role::System),
        _ => Err(RejectReason::UnknownRole(name.to_owned())),
    }
}

fn placeholder_count<'a>(texts: impl IntoIterator<Item = &'a str>) -> usize {
    texts
        .into_iter()
        .map(|t| t.matches(IMAGE_PLACEHOLDER).count())
        .sum()
}

/// Checks a conversation and places its image placeholders.
pub(crate) fn finish_conversation(
    mut turns: Vec<Turn>,
    images: Vec<ImageRef>,
) -> Result<Sample, RejectReason> {
    if turns.is_empty() {
        return Err(RejectReason::EmptyConversation);
    }
    if !turns.iter().any(|t| t.role == Role::Assistant) {
        return Err(RejectReason::NoAssistantTurn);
    }
    let placeholders = placeholder_count(turns.iter().map(|t| t.text.as_str()));
    if placeholders == 0 && !images.is_empty() {
        // LLaVA convention: images without placeholders go before the first user turn's text.
        let target = turns.iter().position(|t| t.role == Role::User).unwrap_or(0);
        let prefix = format!("{IMAGE_PLACEHOLDER}\n").repeat(images.len());
        turns[target].text.insert_str(0, &prefix);
    } else if placeholders != images.len() {
        return Err(RejectReason::PlaceholderMismatch {
            placeholders,
            images: images.len(),
        });
    }
    Ok(Sample {
        kind: SampleKind::Conversation,
        turns,
        images,
    })
}

/// A caption sample: the images as the user turn, the caption as the assistant turn.
pub(crate) fn finish_caption(
    caption: String,
    images: Vec<ImageRef>,
) -> Result<Sample, RejectReason> {
    if images.is_empty() {
        return Err(RejectReason::NoImage);
    }
    let stray = placeholder_count([caption.as_str()]);
    if stray > 0 {
        // The caption would render an extra image slot with no image behind it.
        return Err(RejectReason::PlaceholderMismatch {
            placeholders: stray + images.len(),
            images: images.len(),
        });
    }
    let user = vec![IMAGE_PLACEHOLDER; images.len()].join("\n");
    Ok(Sample {
        kind: SampleKind::Caption,
        turns: vec![
            Turn {
                role: Role::User,
                text: user,
            },
            Turn {
                role: Role::Assistant,
                text: caption,
            },
        ],
        images,
    })
}

/// A plain text sample.
pub(crate) fn finish_text(text: String) -> Result<Sample, RejectReason> {
    let stray = placeholder_count([text.as_str()]);
    if stray > 0 {
        return Err(RejectReason::PlaceholderMismatch {
            placeholders: stray,
            images: 0,
        });
    }
    Ok(Sample {
        kind: SampleKind::Text,
        turns: vec![Turn {
            role: Role::Assistant,
            text,
        }],
        images: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::ImageSource;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn img(n: u64) -> ImageRef {
        ImageRef {
            source: ImageSource::Synthetic { scene: n },
            size: Some((10, 10)),
        }
    }

    fn convo(v: Value, images: usize) -> Result<Sample, RejectReason> {
        sample_from_object(
            RecordSchema::Conversation,
            &obj(v),
            &FieldMap::default(),
            || Ok((0..images as u64).map(img).collect()),
        )
    }

    #[test]
    fn llava_roles_map_to_user_and_assistant() {
        let s = convo(
            json!({"conversations": [
                {"from": "system", "value": "be brief"},
                {"from": "human", "value": "<image>\nwhat?"},
                {"from": "gpt", "value": "a cat"}]}),
            1,
        )
        .unwrap();
        let roles: Vec<Role> = s.turns.iter().map(|t| t.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant]);
        assert_eq!(s.kind, SampleKind::Conversation);
        assert_eq!(s.turns[1].text, "<image>\nwhat?");
    }

    #[test]
    fn messages_style_uses_role_and_content() {
        let s = convo(json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}), 0)
            .unwrap();
        assert_eq!(
            s.turns,
            [
                Turn {
                    role: Role::User,
                    text: "hi".into()
                },
                Turn {
                    role: Role::Assistant,
                    text: "yo".into()
                }
            ]
        );
    }

    #[test]
    fn images_without_placeholders_are_put_before_the_first_user_turn() {
        let s = convo(
            json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "compare"},
                                {"role": "assistant", "content": "same"}]}),
            2,
        )
        .unwrap();
        assert_eq!(s.turns[0].text, "s");
        assert_eq!(s.turns[1].text, "<image>\n<image>\ncompare");
        assert_eq!(s.images.len(), 2);
    }

    #[test]
    fn placeholders_must_match_the_images_when_present() {
        let r = convo(
            json!({"conversations": [{"from": "human", "value": "<image> <image>"}, {"from": "gpt", "value": "x"}]}),
            1,
        );
        assert_eq!(
            r,
            Err(RejectReason::PlaceholderMismatch {
                placeholders: 2,
                images: 1
            })
        );
        let r = convo(
            json!({"conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}]}),
            0,
        );
        assert_eq!(
            r,
            Err(RejectReason::PlaceholderMismatch {
                placeholders: 1,
                images: 0
            })
        );
    }

    #[test]
    fn conversations_need_turns_an_assistant_and_known_roles() {
        assert_eq!(
            convo(json!({"conversations": []}), 0),
            Err(RejectReason::EmptyConversation)
        );
        assert_eq!(
            convo(
                json!({"conversations": [{"from": "human", "value": "hi"}]}),
                0
            ),
            Err(RejectReason::NoAssistantTurn)
        );
        assert_eq!(
            convo(
                json!({"conversations": [{"from": "narrator", "value": "hi"}]}),
                0
            ),
            Err(RejectReason::UnknownRole("narrator".into()))
        );
        assert_eq!(
            convo(json!({"chat": []}), 0),
            Err(RejectReason::missing("conversations", &["messages"]))
        );
    }

    #[test]
    fn wrong_types_name_the_path_to_the_field() {
        let r = convo(json!({"messages": [{"role": "user", "content": 5}]}), 0).unwrap_err();
        assert_eq!(
            r.to_string(),
            "field `messages[0].content` is a number, expected a string"
        );
        let r = convo(json!({"messages": [{"content": "x"}]}), 0).unwrap_err();
        assert_eq!(
            r.to_string(),
            "missing field `messages[0].role` (nor `messages[0].from`)"
        );
    }

    #[test]
    fn role_names_ignore_case() {
        assert_eq!(parse_role("GPT"), Ok(Role::Assistant));
        assert_eq!(parse_role("Human"), Ok(Role::User));
    }

    #[test]
    fn field_map_replaces_the_default_names() {
        let fields = FieldMap {
            messages: Some("dialog".into()),
            ..FieldMap::default()
        };
        let o = obj(
            json!({"dialog": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
                            "conversations": "ignored"}),
        );
        let s = sample_from_object(RecordSchema::Conversation, &o, &fields, || Ok(vec![])).unwrap();
        assert_eq!(s.turns.len(), 2);
    }

    #[test]
    fn captions_fall_back_to_text_and_render_one_placeholder_per_image() {
        let s = sample_from_object(
            RecordSchema::Caption,
            &obj(json!({"text": "a dog"})),
            &FieldMap::default(),
            || Ok(vec![img(1)]),
        )
        .unwrap();
        assert_eq!(s.kind, SampleKind::Caption);
        assert_eq!(
            s.turns,
            [
                Turn {
                    role: Role::User,
                    text: "<image>".into()
                },
                Turn {
                    role: Role::Assistant,
                    text: "a dog".into()
                }
            ]
        );
        let r = sample_from_object(
            RecordSchema::Caption,
            &obj(json!({"caption": "x"})),
            &FieldMap::default(),
            || Ok(vec![]),
        );
        assert_eq!(r, Err(RejectReason::NoImage));
    }

    #[test]
    fn text_must_be_a_non_empty_string() {
        let f = FieldMap::default();
        let t = |v| {
            sample_from_object(RecordSchema::Text, &obj(v), &f, || {
                unreachable!("text has no images")
            })
        };
        assert_eq!(
            t(json!({"text": "hello"})).unwrap().turns,
            [Turn {
                role: Role::Assistant,
                text: "hello".into()
            }]
        );
        assert_eq!(
            t(json!({"text": "  "})),
            Err(RejectReason::EmptyText("text".into()))
        );
        assert_eq!(
            t(json!({"text": null})),
            Err(RejectReason::NullField("text".into()))
        );
        assert_eq!(
            t(json!({"body": "x"})),
            Err(RejectReason::missing("text", &[]))
        );
    }

    #[test]
    fn images_are_not_probed_when_the_text_is_already_broken() {
        let r = sample_from_object(
            RecordSchema::Caption,
            &obj(json!({})),
            &FieldMap::default(),
            || panic!("images must not be probed for a broken record"),
        );
        assert_eq!(r.unwrap_err().code().as_str(), "missing_field");
    }

    #[test]
    fn image_paths_accept_a_string_a_list_or_nothing() {
        let keys = [DEFAULT_IMAGE, DEFAULT_IMAGES];
        assert_eq!(
            image_paths(&obj(json!({"image": "a.png"})), &keys).unwrap(),
            ["a.png"]
        );
        assert_eq!(
            image_paths(&obj(json!({"images": ["a", "b"]})), &keys).unwrap(),
            ["a", "b"]
        );
        assert!(image_paths(&obj(json!({})), &keys).unwrap().is_empty());
        assert_eq!(
            image_paths(&obj(json!({"images": [1]})), &keys)
                .unwrap_err()
                .code()
                .as_str(),
            "wrong_type"
        );
    }
}
