//! mixtape-store: where mixtape's bytes live, local paths and object-store URLs behind one blocking
//! API.
//!
//! Everywhere mixtape takes a path it also takes a URL: `s3://bucket/prefix` (and any
//! S3-compatible store: MinIO, Huawei OBS, Ceph, R2), `gs://bucket/prefix`, `az://container/prefix`,
//! `http(s)://host/prefix` (read only) and `file:///abs/path`. Callers keep passing `Path`s around: a
//! path whose text starts with `scheme://` is a URL ([`Location::of`]), anything else is a local file,
//! so `Path::join` builds object keys as it builds file names. Only this crate tells the two apart:
//!
//! - [`Location`]: a path resolved to a local file or a remote object of a store;
//! - [`read`], [`read_range`], [`for_each_chunk`], [`size`], [`list`], [`write()`], [`create_new`],
//!   [`delete`] and more: the blocking operations the rest of mixtape needs, each naming the
//!   location (and byte range) in its error. Remote calls run on one shared tokio runtime, are retried with exponential backoff
//!   on transient failures (5xx, throttling, dropped connections, timeouts) and counted in
//!   [`counters`];
//! - [`glob()`] and [`local_copy`]: recipe sources on object storage, matched by pattern and read
//!   from a downloaded copy;
//! - [`RangeCache`]: a local disk cache of byte ranges with a size limit, whose eviction the
//!   caller drives (the shard reader knows its future accesses and evicts by Belady's rule).
//!
//! Credentials and endpoints come from each store's usual environment variables (`AWS_*`:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` for an
//! S3-compatible endpoint; `GOOGLE_*`; `AZURE_*`), and [`set_s3_endpoint`] overrides the S3 endpoint
//! (the CLI's `--endpoint`).
//!
//! Errors are `std::io::Error`s whose inner error is a [`StoreError`], so that code written against
//! files reports remote failures in the same variants, with the object and range in the message.

mod cache;
mod counters;
mod error;
mod location;
mod ops;
mod runtime;
mod sources;

pub use cache::{CacheKey, RangeCache};
pub use counters::{Counters, counters};
pub use error::StoreError;
pub use location::{Location, Remote, is_url, set_s3_endpoint};
pub use ops::{
    Entry, create_dir_all, create_new, delete, exists, for_each_chunk, is_dir, is_file, list,
    publish, read, read_range, remove_dir, size, sync_dir, write,
};
pub use sources::{glob, local_copy, set_download_dir};
