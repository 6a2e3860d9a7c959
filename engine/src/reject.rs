//! [`RejectCode`]: why a drawn record did not become a packed sample, as every layer names it.
//!
//! The source readers ([`crate::source::RejectReason::code`]), the index and the planner (records
//! and samples a stage cannot use), the builder (records whose encoding fails) and the audit
//! (reading `rejects.jsonl` back) all speak this one enum, so a reason cannot be spelled two ways.
//! Each code serializes as the snake_case string `rejects.jsonl`, the manifest's `rejects` map,
//! `plan --json` and lock files carry; those strings never change once released (reports, tests
//! and users' scripts key on them), and codes sort by them, so maps keyed by a code serialize in
//! the same order as maps keyed by its string.
//!
//! The manifest's `rejects` map stays keyed by the string (`mixtape_shards` does not depend on the
//! engine, and a training-side reader must accept a manifest whose reasons it does not know).

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::image::{ProcessError, ResizeError};

/// Why a record was rejected. See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectCode {
    // Reading a record (the source readers' `RejectReason`s).
    InvalidJson,
    InvalidUtf8,
    MissingField,
    NullField,
    WrongType,
    EmptyConversation,
    NoAssistantTurn,
    UnknownRole,
    PlaceholderMismatch,
    EmptyText,
    NoImage,
    MissingMember,
    MissingImage,
    UnreadableImageHeader,
    RecordTooLarge,
    // Fitting it in a stage (planner and builder).
    /// More tokens than the stage's `seq_len`, and not a text that splits into windows.
    TooLong,
    /// The chat template cannot render the sample.
    Template,
    // Processing its images (builder; the planner predicts the resize ones from image headers).
    /// Not an image, an unsupported format, corrupt, truncated, over the decode limit.
    UndecodableImage,
    /// Long side over `max_aspect_ratio` times the short side.
    ImageTooElongated,
    /// The resize rule or the resampler cannot produce a grid for it.
    ImageUnresizable,
    /// The encoder refused the resized image.
    ImageUnencodable,
}

impl RejectCode {
    /// Every code, in declaration order.
    pub const ALL: [RejectCode; 21] = [
        RejectCode::InvalidJson,
        RejectCode::InvalidUtf8,
        RejectCode::MissingField,
        RejectCode::NullField,
        RejectCode::WrongType,
        RejectCode::EmptyConversation,
        RejectCode::NoAssistantTurn,
        RejectCode::UnknownRole,
        RejectCode::PlaceholderMismatch,
        RejectCode::EmptyText,
        RejectCode::NoImage,
        RejectCode::MissingMember,
        RejectCode::MissingImage,
        RejectCode::UnreadableImageHeader,
        RejectCode::RecordTooLarge,
        RejectCode::TooLong,
        RejectCode::Template,
        RejectCode::UndecodableImage,
        RejectCode::ImageTooElongated,
        RejectCode::ImageUnresizable,
        RejectCode::ImageUnencodable,
    ];

    /// The stable snake_case string (what serde writes).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::InvalidJson => "invalid_json",
            RejectCode::InvalidUtf8 => "invalid_utf8",
            RejectCode::MissingField => "missing_field",
            RejectCode::NullField => "null_field",
            RejectCode::WrongType => "wrong_type",
            RejectCode::EmptyConversation => "empty_conversation",
            RejectCode::NoAssistantTurn => "no_assistant_turn",
            RejectCode::UnknownRole => "unknown_role",
            RejectCode::PlaceholderMismatch => "placeholder_mismatch",
            RejectCode::EmptyText => "empty_text",
            RejectCode::NoImage => "no_image",
            RejectCode::MissingMember => "missing_member",
            RejectCode::MissingImage => "missing_image",
            RejectCode::UnreadableImageHeader => "unreadable_image_header",
            RejectCode::RecordTooLarge => "record_too_large",
            RejectCode::TooLong => "too_long",
            RejectCode::Template => "template",
            RejectCode::UndecodableImage => "undecodable_image",
            RejectCode::ImageTooElongated => "image_too_elongated",
            RejectCode::ImageUnresizable => "image_unresizable",
            RejectCode::ImageUnencodable => "image_unencodable",
        }
    }

    /// Why the resize rule refused an image (the planner sees only this part of processing).
    pub fn of_resize(error: &ResizeError) -> RejectCode {
        match error {
            ResizeError::TooElongated { .. } => RejectCode::ImageTooElongated,
            _ => RejectCode::ImageUnresizable,
        }
    }
}

impl From<&ProcessError> for RejectCode {
    fn from(error: &ProcessError) -> Self {
        match error {
            ProcessError::Decode(_) => RejectCode::UndecodableImage,
            ProcessError::Resize(e) => RejectCode::of_resize(e),
            ProcessError::Resample(_) => RejectCode::ImageUnresizable,
            ProcessError::Encode(_) => RejectCode::ImageUnencodable,
            // A kind of failure mixtape-image adds later: it could not read the image.
            _ => RejectCode::UndecodableImage,
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// By the string, so that maps keyed by codes list them as maps keyed by strings do.
impl Ord for RejectCode {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for RejectCode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_as_its_string_and_reads_back() {
        for code in RejectCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<RejectCode>(&json).unwrap(), code);
        }
        let mut strings: Vec<&str> = RejectCode::ALL.iter().map(|c| c.as_str()).collect();
        strings.sort_unstable();
        strings.dedup();
        assert_eq!(strings.len(), RejectCode::ALL.len(), "codes are distinct");
    }

    #[test]
    fn codes_sort_as_their_strings() {
        let mut codes = RejectCode::ALL.to_vec();
        codes.sort();
        let strings: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        let mut sorted = strings.clone();
        sorted.sort_unstable();
        assert_eq!(strings, sorted);
    }

    #[test]
    fn an_unknown_reason_is_refused_when_read() {
        assert!(serde_json::from_str::<RejectCode>("\"sunspots\"").is_err());
    }

    #[test]
    fn image_failures_are_rejected_under_the_code_of_the_step_that_failed() {
        use crate::image::{
            DEFAULT_JPEG_QUALITY, ImageEncoding, ResizePolicy, RgbImage, encode_png, process,
        };
        let code = |bytes: &[u8], quality: u8| {
            let policy = ResizePolicy::default();
            RejectCode::from(&process(bytes, &policy, ImageEncoding::Jpeg, quality).unwrap_err())
        };
        let png = |w, h| encode_png(&RgbImage::try_filled(w, h, [90, 120, 30]).unwrap()).unwrap();
        assert_eq!(
            code(b"not an image", DEFAULT_JPEG_QUALITY),
            RejectCode::UndecodableImage
        );
        assert_eq!(
            code(&png(6000, 29), DEFAULT_JPEG_QUALITY),
            RejectCode::ImageTooElongated
        );
        assert_eq!(code(&png(50, 50), 0), RejectCode::ImageUnencodable);
    }
}
