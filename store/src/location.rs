//! Telling a URL from a path, and the one client per store (bucket, container or host) that every
//! location of that store shares.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::StoreError;

/// Where a path's bytes live.
#[derive(Clone, Debug)]
pub enum Location {
    /// A file on a local (or mounted shared) file system.
    Local(PathBuf),
    /// An object in an object store.
    Remote(Remote),
}

/// An object (or prefix) of an object store.
#[derive(Clone, Debug)]
pub struct Remote {
    /// The URL as given, without a trailing `/`: what errors name.
    pub url: String,
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The object's key in its store.
    pub(crate) key: object_store::path::Path,
}

impl Remote {
    /// The object's key within its bucket or container.
    pub fn key(&self) -> &str {
        self.key.as_ref()
    }
}

/// The schemes of the stores mixtape reaches, and what each is.
const SCHEMES: &[&str] = &[
    "s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "adl", "http", "https", "file",
];

/// Whether `path` is written as a URL (`scheme://...`) rather than a file path.
pub fn is_url(path: &Path) -> bool {
    path.to_str().is_some_and(|text| scheme_of(text).is_some())
}

/// The scheme of `text` when it starts with `scheme://`.
fn scheme_of(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let valid = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// The S3 endpoint set by [`set_s3_endpoint`], overriding `AWS_ENDPOINT_URL`.
static S3_ENDPOINT: RwLock<Option<String>> = RwLock::new(None);

/// Points every `s3://` location at `endpoint` (an S3-compatible server, e.g.
/// `http://127.0.0.1:9000`), overriding `AWS_ENDPOINT_URL`. Takes effect for stores first used
/// after the call.
pub fn set_s3_endpoint(endpoint: Option<&str>) {
    *S3_ENDPOINT.write().unwrap_or_else(|e| e.into_inner()) = endpoint.map(str::to_string);
    stores().lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// One client per `scheme://authority`, so connections are pooled across locations.
fn stores() -> &'static Mutex<HashMap<String, Arc<dyn ObjectStore>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// Retries: object_store backs off exponentially on 5xx, throttling and connection errors.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 8,
        retry_timeout: Duration::from_secs(120),
    }
}

fn client(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120))
}

impl Location {
    /// Resolves `path`: a URL of a supported store, or a local path. Fails only for a URL of an
    /// unknown scheme or one the store's client refuses (no bucket, bad credentials settings).
    pub fn of(path: &Path) -> Result<Self, StoreError> {
        let Some(text) = path.to_str() else {
            return Ok(Self::Local(path.to_path_buf()));
        };
        let Some(scheme) = scheme_of(text) else {
            return Ok(Self::Local(path.to_path_buf()));
        };
        let bad = |reason: String| StoreError::BadUrl {
            url: text.to_string(),
            reason,
        };
        let scheme = scheme.to_ascii_lowercase();
        if !SCHEMES.contains(&scheme.as_str()) {
            return Err(bad(format!(
                "unknown scheme `{scheme}://` (mixtape reads s3://, gs://, az://, http(s):// and file:// URLs)"
            )));
        }
        let rest = &text[scheme.len() + 3..];
        if scheme == "file" {
            return Ok(Self::Local(PathBuf::from(rest)));
        }
        let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(bad("no bucket or host after `://`".to_string()));
        }
        // `.` and `..` resolved as a file path's would be (a record's `../images/x.jpg` beside its
        // data file), and empty segments dropped: keys have none of them.
        let mut segments: Vec<&str> = Vec::new();
        for segment in key.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                segment => segments.push(segment),
            }
        }
        let key = segments.join("/");
        let parsed = object_store::path::Path::parse(&key)
            .map_err(|e| bad(format!("not a valid object key: {e}")))?;
        let root = format!("{scheme}://{authority}");
        let store = store_for(&scheme, &root).map_err(|e| bad(e.to_string()))?;
        let url = if key.is_empty() {
            root
        } else {
            format!("{root}/{key}")
        };
        Ok(Self::Remote(Remote {
            url,
            store,
            key: parsed,
        }))
    }

    /// The local path, for a local location.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Self::Local(path) => Some(path),
            Self::Remote(_) => None,
        }
    }
}

/// The shared client of the store at `root` (`scheme://authority`), built on first use.
fn store_for(scheme: &str, root: &str) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut stores = stores().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(store) = stores.get(root) {
        return Ok(store.clone());
    }
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env().with_url(root);
            let endpoint = S3_ENDPOINT
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                .or_else(|| std::env::var("AWS_ENDPOINT").ok());
            let allow_http = endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"));
            if let Some(endpoint) = endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            Arc::new(
                builder
                    .with_retry(retry())
                    .with_client_options(client(allow_http))
                    .build()?,
            )
        }
        // Plain HTTP is allowed, as `object_store` allows it for GCS by default: the base URL is
        // `https://storage.googleapis.com` unless the service account's `gcs_base_url` names a
        // test server such as fake-gcs-server, which speaks HTTP.
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(root)
                .with_retry(retry())
                .with_client_options(client(true))
                .build()?,
        ),
        "http" | "https" => Arc::new(
            HttpBuilder::new()
                .with_url(root)
                .with_retry(retry())
                .with_client_options(client(scheme == "http"))
                .build()?,
        ),
        _ => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(root)
                .with_retry(retry())
                .with_client_options(client(false))
                .build()?,
        ),
    };
    stores.insert(root.to_string(), store.clone());
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_scheme_prefixed_text_is_a_url() {
        assert!(is_url(Path::new("s3://bucket/out")));
        assert!(is_url(Path::new("https://host/x")));
        assert!(!is_url(Path::new("out/warmup")));
        assert!(!is_url(Path::new("/abs/s3://x")));
        assert!(!is_url(Path::new("weird:name")));
    }

    #[test]
    fn a_url_keeps_its_text_and_joins_like_a_path() {
        let path = Path::new("s3://bucket/out/")
            .join("warmup")
            .join("shard-00000.parquet");
        let Location::Remote(remote) = Location::of(&path).unwrap() else {
            panic!("not remote");
        };
        assert_eq!(remote.url, "s3://bucket/out/warmup/shard-00000.parquet");
        assert_eq!(remote.key(), "out/warmup/shard-00000.parquet");
    }

    #[test]
    fn dot_segments_resolve_like_a_files_path() {
        let Location::Remote(remote) =
            Location::of(Path::new("s3://b/corpus/llava/../images/./x.jpg")).unwrap()
        else {
            panic!("not remote");
        };
        assert_eq!(remote.url, "s3://b/corpus/images/x.jpg");
        assert_eq!(remote.key(), "corpus/images/x.jpg");
    }

    #[test]
    fn file_urls_are_local_and_unknown_schemes_are_refused_with_the_supported_list() {
        let local = Location::of(Path::new("file:///tmp/x")).unwrap();
        assert_eq!(local.as_local(), Some(Path::new("/tmp/x")));
        let err = Location::of(Path::new("ftp://host/x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown scheme `ftp://`"), "{err}");
        assert!(err.contains("s3://"), "{err}");
    }
}
