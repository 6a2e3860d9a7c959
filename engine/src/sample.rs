//! Samples: the unit every source yields and every later stage consumes.
//!
//! A [`Sample`] is format-neutral: conversations, captions and long text all become a list of
//! [`Turn`]s plus the images they reference. Image placeholders stay in the text as [`IMAGE_PLACEHOLDER`]
//! (`<image>`), one per image, in order; the template expands each into vision tokens later, once the
//! image's resized size is known. Keeping samples this plain lets the planner (which only needs lengths)
//! and the builder (which needs pixels) share one reader per format.

use std::path::PathBuf;

/// The marker a turn's text uses where an image goes (LLaVA convention).
pub const IMAGE_PLACEHOLDER: &str = "<image>";

/// Who speaks a turn. Loss is applied to [`Role::Assistant`] turns only (and to every token of
/// [`SampleKind::Text`] samples).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// ChatML role name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of a conversation (or the single text/caption body of other kinds).
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

/// How the template renders a sample and where the loss goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// Multi-turn chat rendered with the chat template; loss on assistant turns.
    Conversation,
    /// Image(s) followed by their caption, no chat template; loss on the caption.
    Caption,
    /// Plain long text; loss on every token. May be split into `seq_len` windows by the builder.
    Text,
}

/// Where an image's bytes come from.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageSource {
    /// A file on disk (already resolved against the source's image root).
    File(PathBuf),
    /// Encoded bytes held by the record itself (Parquet image structs, WebDataset members).
    Bytes(std::sync::Arc<[u8]>),
    /// A procedurally drawn image of the built-in synthetic sources: `seed` regenerates the pixels.
    Synthetic { scene: u64 },
}

/// An image referenced by a sample, with its original size when known without decoding.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRef {
    pub source: ImageSource,
    /// Original (height, width) in pixels, read from the image header or known by construction.
    pub size: Option<(u32, u32)>,
}

/// A training sample before tokenization.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub kind: SampleKind,
    pub turns: Vec<Turn>,
    pub images: Vec<ImageRef>,
}
