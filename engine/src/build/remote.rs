//! What a build into object storage (`--out s3://bucket/prefix`) needs beyond a folder's: a local
//! scratch folder for shards being written, and a lock that refuses a second builder.
//!
//! A shard is written to a local temporary first (the writer hashes and CRCs it as it writes),
//! then uploaded whole ([`mixtape_store::publish`]): the store shows the object only once its
//! upload completes, so a reader never sees half a shard.
//! Sidecars, manifests and the record are single PUTs, in the same order as on disk: a shard, then
//! its sidecar; every shard, then the stage's manifest.
//!
//! On a file system two builders of one folder are kept apart by the record each writes first and
//! the temporaries each owns; an object store has no rename and no folder to list atomically, so a
//! build takes `_mixtape/lock.json` with a conditional PUT (create only if absent) before it writes
//! anything, and deletes it when it ends, failed or not. A second build finds the lock and is
//! refused with who holds it. A lock left by a killed build on this machine (its process is gone)
//! is taken over; one left by another machine must be deleted by hand, as the error says. Each
//! task of a split build takes a lock of its own (`lock.task-I.json`): tasks run side by side.

use std::path::{Path, PathBuf};

use mixtape_shards::layout::BuildLayout;
use serde::{Deserialize, Serialize};

use super::{BuildError, BuildScope};

/// Who holds a build lock, as written in the lock object.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Holder {
    host: String,
    pid: u32,
    /// Seconds since the Unix epoch.
    started: u64,
}

/// A held lock on a remote build output; released (deleted) on drop.
#[derive(Debug)]
pub(super) struct BuildLock {
    path: PathBuf,
}

/// Whether `name` (in `_mixtape/`) is a build lock.
pub(super) fn is_lock(name: &str) -> bool {
    name == "lock.json" || (name.starts_with("lock.task-") && name.ends_with(".json"))
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Whether process `pid` runs on this machine.
fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

impl BuildLock {
    /// Takes the lock of `layout` for `scope`, or fails naming its holder.
    pub(super) fn take(layout: &BuildLayout, scope: BuildScope) -> Result<Self, BuildError> {
        let name = match scope {
            BuildScope::Task { task, .. } => format!("lock.task-{task}.json"),
            _ => "lock.json".to_string(),
        };
        let path = layout.mixtape_dir().join(name);
        let me = Holder {
            host: host(),
            pid: std::process::id(),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let bytes = serde_json::to_vec_pretty(&me).unwrap_or_default();
        let io = |e| BuildError::io(&path, e);
        for _ in 0..2 {
            if mixtape_store::create_new(&path, bytes.clone().into()).map_err(io)? {
                return Ok(Self { path });
            }
            let holder: Option<Holder> = mixtape_store::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match holder {
                // Left by a build of this machine that is gone: take it over.
                Some(h) if h.host == me.host && !alive(h.pid) => {
                    mixtape_store::delete(&path).map_err(io)?;
                }
                // Deleted in between by its holder: try again.
                None if !mixtape_store::is_file(&path) => {}
                holder => {
                    let holder = holder.map_or_else(
                        || "unreadable".to_string(),
                        |h| {
                            format!(
                                "host {}, pid {}, started at {} (Unix time)",
                                h.host, h.pid, h.started
                            )
                        },
                    );
                    return Err(BuildError::Locked { lock: path, holder });
                }
            }
        }
        Err(BuildError::Locked {
            lock: path,
            holder: "another build, which took it twice as this one tried".to_string(),
        })
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        // A lock left behind is reported to the next build with the fix; nothing to do here.
        let _ = mixtape_store::delete(&self.path);
    }
}

/// A local folder for the shards of a remote build while they are written, removed on drop.
#[derive(Debug)]
pub(super) struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub(super) fn create() -> Result<Self, BuildError> {
        let dir = std::env::temp_dir().join(format!("mixtape-build-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| BuildError::io(&dir, e))?;
        Ok(Self { dir })
    }

    /// The folder for stage `stage`'s shard temporaries.
    pub(super) fn stage(&self, stage: &str) -> PathBuf {
        self.dir.join(stage)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
