//! Built-in synthetic sources (the demo data). TO BE WRITTEN by the synthetic-data helper.

/// Which generator a synthetic source runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyntheticKind {
    /// `shapes-caption`: a scene of coloured shapes and a caption describing it.
    ShapesCaption,
    /// `shapes-vqa`: a scene and question/answer turns about counts, colours and positions.
    ShapesVqa,
    /// `shapes-grounding`: a scene and turns asking for / giving bounding boxes.
    ShapesGrounding,
    /// `ocr-text`: rendered lines of text and a transcription request.
    OcrText,
    /// `long-text`: procedurally generated multi-paragraph documents, no images.
    LongText,
}

impl SyntheticKind {
    /// All kinds, in the order `check` lists them in hints.
    pub const ALL: [SyntheticKind; 5] = [
        SyntheticKind::ShapesCaption,
        SyntheticKind::ShapesVqa,
        SyntheticKind::ShapesGrounding,
        SyntheticKind::OcrText,
        SyntheticKind::LongText,
    ];

    /// The name used in recipes.
    pub fn name(self) -> &'static str {
        match self {
            SyntheticKind::ShapesCaption => "shapes-caption",
            SyntheticKind::ShapesVqa => "shapes-vqa",
            SyntheticKind::ShapesGrounding => "shapes-grounding",
            SyntheticKind::OcrText => "ocr-text",
            SyntheticKind::LongText => "long-text",
        }
    }

    /// Parses a recipe name.
    pub fn from_name(name: &str) -> Option<SyntheticKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}
