//! The chat template: samples -> token ids, loss mask and image slots.
//!
//! One walker renders every [`SampleKind`] into ordered pieces (text with a loss flag, or an image slot),
//! and the same walker serves both the planner (which passes zero image tokens and only counts) and the
//! builder (which passes each image's real token count), so planned and built lengths cannot drift.
//!
//! Formats (Qwen2 ChatML):
//! - conversation: `<|im_start|>{role}\n{content}<|im_end|>\n` per turn, after a system turn with the
//!   source's [`ChatStyle::system`] prompt when one is set and the sample brings none of its own; loss
//!   on assistant content and, per [`TurnEndLoss`], on the turn's `<|im_end|>` and newline.
//! - caption: `{images}{caption}<|endoftext|>`; loss on the caption and the end token.
//! - text: `{text}<|endoftext|>`; loss on everything.
//!
//! Each `<image>` placeholder becomes `<|vision_start|>` + N x `<|image_pad|>` + `<|vision_end|>`.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::sample::{IMAGE_PLACEHOLDER, Role, Sample, SampleKind};

/// Special tokens the template needs; all must exist in the tokenizer.
pub const SPECIAL_TOKENS: [&str; 6] = [
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|endoftext|>",
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("cannot load tokenizer {path}: {detail}")]
    Load { path: String, detail: String },
    #[error("tokenizer {path} has no `{token}` token")]
    MissingSpecial { path: String, token: &'static str },
    #[error("tokenization failed: {0}")]
    Encode(String),
    #[error("sample has {placeholders} `<image>` placeholders but {images} images")]
    PlaceholderMismatch { placeholders: usize, images: usize },
}

/// Where the loss falls at the end of an assistant turn (`<|im_end|>` and the newline after it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnEndLoss {
    /// `<|im_end|>` carries loss and the newline after it does not: the model learns to end its
    /// turn, and the newline the template adds is not its to predict.
    #[default]
    ImEnd,
    /// Both `<|im_end|>` and the newline carry loss (how LLaMA-Factory's Qwen templates label a turn).
    ImEndNewline,
    /// Neither: loss on the assistant's content only.
    None,
}

impl TurnEndLoss {
    pub const NAMES: [&'static str; 3] = ["im_end", "im_end_newline", "none"];

    pub fn name(self) -> &'static str {
        match self {
            TurnEndLoss::ImEnd => "im_end",
            TurnEndLoss::ImEndNewline => "im_end_newline",
            TurnEndLoss::None => "none",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "im_end" => Some(TurnEndLoss::ImEnd),
            "im_end_newline" => Some(TurnEndLoss::ImEndNewline),
            "none" => Some(TurnEndLoss::None),
            _ => None,
        }
    }
}

/// How a source's conversations are rendered beyond the fixed ChatML format: the recipe's
/// `template` settings with the source's own `system` applied. The default renders exactly what
/// mixtape rendered before these settings existed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChatStyle {
    /// System prompt put before a conversation that has no system turn of its own (Qwen2-VL's chat
    /// template uses "You are a helpful assistant."); `None` adds nothing.
    pub system: Option<String>,
    pub turn_end_loss: TurnEndLoss,
}

/// Ids of the template's special tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialIds {
    pub im_start: u32,
    pub im_end: u32,
    pub vision_start: u32,
    pub vision_end: u32,
    pub image_pad: u32,
    pub end_of_text: u32,
}

/// A sample rendered to tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// 1 where the token carries loss.
    pub loss_mask: Vec<u8>,
    /// Per image (in order): the index of its first `<|image_pad|>` token and the pad count.
    pub image_slots: Vec<(u32, u32)>,
}

impl Encoded {
    pub fn loss_tokens(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m != 0).count()
    }
}

/// Token and loss counts of a sample with its image pads left out (the planner adds them per stage,
/// since the image policy, and so the pad count, can differ between stages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextLengths {
    pub text_tokens: u32,
    pub loss_tokens: u32,
}

/// Tokenizer plus template.
#[derive(Debug, Clone)]
pub struct Encoder {
    tokenizer: Tokenizer,
    special: SpecialIds,
}

impl Encoder {
    /// Loads an HF `tokenizer.json` and checks it has the template's special tokens.
    pub fn from_file(path: &Path) -> Result<Self, TemplateError> {
        let shown = path.display().to_string();
        let tokenizer = Tokenizer::from_file(path).map_err(|e| TemplateError::Load {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        let id = |token: &'static str| {
            tokenizer
                .token_to_id(token)
                .ok_or(TemplateError::MissingSpecial {
                    path: shown.clone(),
                    token,
                })
        };
        let special = SpecialIds {
            im_start: id("<|im_start|>")?,
            im_end: id("<|im_end|>")?,
            vision_start: id("<|vision_start|>")?,
            vision_end: id("<|vision_end|>")?,
            image_pad: id("<|image_pad|>")?,
            end_of_text: id("<|endoftext|>")?,
        };
        Ok(Self { tokenizer, special })
    }

    pub fn special(&self) -> SpecialIds {
        self.special
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Renders a sample in `style`; `image_tokens[i]` is the pad count of image `i`.
    pub fn encode(
        &self,
        sample: &Sample,
        image_tokens: &[u32],
        style: &ChatStyle,
    ) -> Result<Encoded, TemplateError> {
        let mut out = Encoded::default();
        let mut next_image = 0usize;
        let placeholders: usize = sample
            .turns
            .iter()
            .map(|t| t.text.matches(IMAGE_PLACEHOLDER).count())
            .sum();
        if placeholders != sample.images.len() || image_tokens.len() != sample.images.len() {
            return Err(TemplateError::PlaceholderMismatch {
                placeholders,
                images: sample.images.len(),
            });
        }
        match sample.kind {
            SampleKind::Conversation => {
                let has_system = sample.turns.first().is_some_and(|t| t.role == Role::System);
                if let (Some(system), false) = (&style.system, has_system) {
                    // The recipe checks that a system prompt holds no `<image>`, so it takes no image.
                    self.push_text(&mut out, &format!("<|im_start|>system\n{system}"), false)?;
                    self.push_ids(&mut out, &[self.special.im_end], false);
                    self.push_text(&mut out, "\n", false)?;
                }
                for turn in &sample.turns {
                    let loss = turn.role == Role::Assistant;
                    self.push_text(
                        &mut out,
                        &format!("<|im_start|>{}\n", turn.role.as_str()),
                        false,
                    )?;
                    self.push_content(&mut out, &turn.text, loss, image_tokens, &mut next_image)?;
                    let (end_loss, newline_loss) = match style.turn_end_loss {
                        TurnEndLoss::ImEnd => (loss, false),
                        TurnEndLoss::ImEndNewline => (loss, loss),
                        TurnEndLoss::None => (false, false),
                    };
                    self.push_ids(&mut out, &[self.special.im_end], end_loss);
                    self.push_text(&mut out, "\n", newline_loss)?;
                }
            }
            SampleKind::Caption => {
                for turn in &sample.turns {
                    let loss = turn.role == Role::Assistant;
                    self.push_content(&mut out, &turn.text, loss, image_tokens, &mut next_image)?;
                }
                self.push_ids(&mut out, &[self.special.end_of_text], true);
            }
            SampleKind::Text => {
                for turn in &sample.turns {
                    self.push_content(&mut out, &turn.text, true, image_tokens, &mut next_image)?;
                }
                self.push_ids(&mut out, &[self.special.end_of_text], true);
            }
        }
        Ok(out)
    }

    /// Counts a sample's tokens, rendered in `style`, without image pads.
    pub fn measure(
        &self,
        sample: &Sample,
        style: &ChatStyle,
    ) -> Result<TextLengths, TemplateError> {
        let zeros = vec![0; sample.images.len()];
        let encoded = self.encode(sample, &zeros, style)?;
        Ok(TextLengths {
            text_tokens: encoded.ids.len() as u32,
            loss_tokens: encoded.loss_tokens() as u32,
        })
    }

    fn push_content(
        &self,
        out: &mut Encoded,
        text: &str,
        loss: bool,
        image_tokens: &[u32],
        next_image: &mut usize,
    ) -> Result<(), TemplateError> {
        let mut parts = text.split(IMAGE_PLACEHOLDER);
        if let Some(first) = parts.next() {
            self.push_text(out, first, loss)?;
        }
        for part in parts {
            let pads = image_tokens[*next_image];
            *next_image += 1;
            self.push_ids(out, &[self.special.vision_start], false);
            out.image_slots.push((out.ids.len() as u32, pads));
            out.ids
                .extend(std::iter::repeat_n(self.special.image_pad, pads as usize));
            out.loss_mask.extend(std::iter::repeat_n(0, pads as usize));
            self.push_ids(out, &[self.special.vision_end], false);
            self.push_text(out, part, loss)?;
        }
        Ok(())
    }

    fn push_text(&self, out: &mut Encoded, text: &str, loss: bool) -> Result<(), TemplateError> {
        if text.is_empty() {
            return Ok(());
        }
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TemplateError::Encode(e.to_string()))?;
        self.push_ids(out, encoding.get_ids(), loss);
        Ok(())
    }

    fn push_ids(&self, out: &mut Encoded, ids: &[u32], loss: bool) {
        out.ids.extend_from_slice(ids);
        out.loss_mask
            .extend(std::iter::repeat_n(u8::from(loss), ids.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Turn;

    fn demo() -> Encoder {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/tokenizers/demo.json");
        Encoder::from_file(&path).expect("the demo tokenizer ships with the repository")
    }

    fn chat(turns: &[(Role, &str)]) -> Sample {
        Sample {
            kind: SampleKind::Conversation,
            turns: turns
                .iter()
                .map(|&(role, text)| Turn {
                    role,
                    text: text.to_string(),
                })
                .collect(),
            images: Vec::new(),
        }
    }

    /// The rendering as text, loss-carrying runs in ⟦…⟧.
    fn shown(encoder: &Encoder, encoded: &Encoded) -> String {
        let mut out = String::new();
        let mut at = 0;
        while at < encoded.ids.len() {
            let loss = encoded.loss_mask[at];
            let end = (at..encoded.ids.len())
                .find(|&i| encoded.loss_mask[i] != loss)
                .unwrap_or(encoded.ids.len());
            let text = encoder
                .tokenizer()
                .decode(&encoded.ids[at..end], false)
                .unwrap();
            if loss == 1 {
                out.push_str(&format!("⟦{text}⟧"));
            } else {
                out.push_str(&text);
            }
            at = end;
        }
        out
    }

    #[test]
    fn a_system_prompt_opens_conversations_without_one_of_their_own() {
        let encoder = demo();
        let style = ChatStyle {
            system: Some("You are a helpful assistant.".into()),
            ..ChatStyle::default()
        };
        let sample = chat(&[(Role::User, "Hi"), (Role::Assistant, "Hello")]);
        let encoded = encoder.encode(&sample, &[], &style).unwrap();
        assert_eq!(
            shown(&encoder, &encoded),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n\
             <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n⟦Hello<|im_end|>⟧\n"
        );
        let own = chat(&[(Role::System, "Be brief."), (Role::Assistant, "Ok")]);
        let encoded = encoder.encode(&own, &[], &style).unwrap();
        assert_eq!(
            shown(&encoder, &encoded),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>assistant\n⟦Ok<|im_end|>⟧\n"
        );
    }

    #[test]
    fn turn_end_loss_decides_whether_im_end_and_its_newline_carry_loss() {
        let encoder = demo();
        let sample = chat(&[(Role::User, "Hi"), (Role::Assistant, "Hello")]);
        let render = |turn_end_loss| {
            let style = ChatStyle {
                system: None,
                turn_end_loss,
            };
            shown(&encoder, &encoder.encode(&sample, &[], &style).unwrap())
        };
        let prompt = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
        assert_eq!(
            render(TurnEndLoss::ImEnd),
            format!("{prompt}⟦Hello<|im_end|>⟧\n")
        );
        assert_eq!(
            render(TurnEndLoss::ImEndNewline),
            format!("{prompt}⟦Hello<|im_end|>\n⟧")
        );
        assert_eq!(
            render(TurnEndLoss::None),
            format!("{prompt}⟦Hello⟧<|im_end|>\n")
        );
    }
}
