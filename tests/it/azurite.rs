//! Azurite, Azure Storage's emulator (from the npm registry: `tests/node/`, installed by
//! `tests/python/setup-venv.sh`), serving blobs on a free port of `127.0.0.1` for the lifetime of
//! the value, so that `az://` URLs are tested against a real Azure Blob server.
//!
//! [`Azurite::env`] gives the environment `object_store`'s `MicrosoftAzureBuilder::from_env()`
//! needs to reach it (the emulator's built-in account); containers are made and blobs read back
//! through Azure's own Python client (`tests/python/azure_blobs.py`, `azure-storage-blob` in the
//! venv), so the test's view of the server does not go through the code under test.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{file_tree, repo, run_python};

/// How long [`Azurite::start`] waits for the blob service to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// An Azurite blob service, killed when dropped.
#[derive(Debug)]
pub struct Azurite {
    child: Child,
    port: u16,
    /// Azurite's storage folder, and its log.
    dir: tempfile::TempDir,
}

impl Azurite {
    /// Starts `tests/node/node_modules/.bin/azurite-blob` on a free port and waits until it
    /// accepts connections.
    pub fn start() -> Azurite {
        let bin = repo().join("tests/node/node_modules/.bin/azurite-blob");
        assert!(
            bin.is_file(),
            "{} is missing: run `bash tests/python/setup-venv.sh` (it installs tests/node/ with npm, Azurite among it)",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("temp dir for Azurite");
        let log = std::fs::File::create(dir.path().join("azurite.log")).expect("create the log");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
            .port();
        let child = Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--skipApiVersionCheck", "--silent", "--location"])
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut azurite = Azurite { child, port, dir };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = azurite.child.try_wait().expect("poll Azurite") {
                panic!("Azurite exited ({status}); its log:\n{}", azurite.log());
            }
            assert!(
                Instant::now() < deadline,
                "Azurite did not listen on port {port} within {STARTUP_TIMEOUT:?}; its log:\n{}",
                azurite.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        azurite
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("azurite.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The variables that point `az://` URLs at this emulator's built-in account.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
            ("AZURITE_BLOB_STORAGE_URL".into(), self.endpoint()),
        ]
    }

    pub fn create_container(&self, name: &str) {
        let endpoint = self.endpoint();
        run_python(
            "tests/python/azure_blobs.py",
            &[Path::new("create"), Path::new(&endpoint), Path::new(name)],
        );
    }

    /// Every blob under `prefix/` of `container`, by name relative to the prefix.
    pub fn blobs(&self, container: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let out = tempfile::tempdir().expect("temp dir for the blobs");
        let endpoint = self.endpoint();
        run_python(
            "tests/python/azure_blobs.py",
            &[
                Path::new("download"),
                Path::new(&endpoint),
                Path::new(container),
                Path::new(prefix),
                out.path(),
            ],
        );
        file_tree(out.path())
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
