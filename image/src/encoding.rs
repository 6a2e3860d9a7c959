//! [`ImageEncoding`]: how an image's bytes are stored, the one name for it across mixtape.
//!
//! The recipe's `image.encoding`, the builder's [`process`](crate::process()) and the shard's
//! `images.encoding` column all say the same thing, so they share this enum: this crate is the
//! lowest one that both the engine and the shard format depend on, and a value never needs mapping
//! by hand from one layer's enum to another's.

/// How the bytes of an image are stored in a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ImageEncoding {
    /// Resized to the training size, re-encoded as baseline JPEG (4:2:0).
    Jpeg,
    /// Resized to the training size, re-encoded as lossless 8-bit RGB PNG: for text-heavy images
    /// where JPEG ringing would blur glyphs.
    Png,
    /// The source file's bytes, unresized (any format the decoder takes), with the training size
    /// recorded beside them: the reader resizes with the same rule and code as the builder.
    Source,
}

impl ImageEncoding {
    /// Every encoding, in the order of the recipe's documentation.
    pub const ALL: [ImageEncoding; 3] = [
        ImageEncoding::Jpeg,
        ImageEncoding::Png,
        ImageEncoding::Source,
    ];

    /// The name used in recipes and in the shards' `images.encoding` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageEncoding::Jpeg => "jpeg",
            ImageEncoding::Png => "png",
            ImageEncoding::Source => "source",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    ///
    /// ```
    /// use mixtape_image::ImageEncoding;
    ///
    /// assert_eq!(ImageEncoding::parse("png"), Some(ImageEncoding::Png));
    /// assert_eq!(ImageEncoding::parse("webp"), None);
    /// for encoding in ImageEncoding::ALL {
    ///     assert_eq!(ImageEncoding::parse(encoding.as_str()), Some(encoding));
    /// }
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == value)
    }
}

impl std::fmt::Display for ImageEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
