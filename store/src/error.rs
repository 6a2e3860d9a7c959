//! The one error type of remote operations, carried inside `std::io::Error`.

use std::ops::Range;

/// Why a store operation failed. Every variant names the location it was about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The text looks like a URL but is not one mixtape can read.
    #[error("{url}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The store answered, or the network failed, after every retry.
    #[error("{url}{}: {error}{}", range_text(.range), hint(.error))]
    Remote {
        url: String,
        range: Option<Range<u64>>,
        /// Quoted in the message, not chained as a source: its text already carries its own
        /// causes, which a chain would print again at every level.
        error: object_store::Error,
    },
    /// The object arrived shorter than the range asked for (a connection that closed early and
    /// kept doing so through every retry).
    #[error("{url}{}: got {got} bytes (the object changed or the connection kept dropping)", range_text(&Some(.range.clone())))]
    Short {
        url: String,
        range: Range<u64>,
        got: u64,
    },
}

fn range_text(range: &Option<Range<u64>>) -> String {
    range
        .as_ref()
        .map(|r| format!(", bytes {}..{}", r.start, r.end))
        .unwrap_or_default()
}

/// Whether the store says the bucket or container is missing, in the body object_store quotes (a
/// listing's error is a generic one): S3's `NoSuchBucket`, Azure's `ContainerNotFound`, GCS's "The
/// specified bucket does not exist".
fn no_such_bucket(error: &object_store::Error) -> bool {
    let text = error.to_string();
    ["NoSuchBucket", "ContainerNotFound", "bucket does not exist"]
        .iter()
        .any(|code| text.contains(code))
}

fn hint(source: &object_store::Error) -> &'static str {
    match source {
        _ if no_such_bucket(source) => {
            " (no such bucket or container: check the name after `://`, or create it)"
        }
        object_store::Error::NotFound { .. } => " (no such object: check the URL)",
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            " (check the store's credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_ACCOUNT_KEY)"
        }
        _ => "",
    }
}

impl StoreError {
    /// The `io::ErrorKind` code written against files should see.
    fn kind(&self) -> std::io::ErrorKind {
        use object_store::Error as E;
        match self {
            Self::BadUrl { .. } => std::io::ErrorKind::InvalidInput,
            Self::Remote { error, .. } => match error {
                _ if no_such_bucket(error) => std::io::ErrorKind::NotFound,
                E::NotFound { .. } => std::io::ErrorKind::NotFound,
                E::AlreadyExists { .. } | E::Precondition { .. } => {
                    std::io::ErrorKind::AlreadyExists
                }
                E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                    std::io::ErrorKind::PermissionDenied
                }
                _ => std::io::ErrorKind::Other,
            },
            Self::Short { .. } => std::io::ErrorKind::UnexpectedEof,
        }
    }
}

impl From<StoreError> for std::io::Error {
    fn from(err: StoreError) -> Self {
        std::io::Error::new(err.kind(), err)
    }
}
