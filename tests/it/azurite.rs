//! Azurite, Azure Storage's emulator (from the npm registry: `tests/node/`, installed by
//! `tests/python/setup-venv.sh`), serving blobs on a free port of `127.0.0.1` for the lifetime of
//! the value, so that `az://` URLs are tested against a real Azure Blob server.
//!
//! [`Azurite::env`] gives the environment `object_store`'s `MicrosoftAzureBuilder::from_env()`
//! needs to reach it (the emulator's built-in account); containers are made and blobs read back
//! through Azure's own Python client (`tests/python/azure_blobs.py`, `azure-storage-blob` in the
//! venv), so the test's view of the server does not go through the code under test.

use std::collections::BTreeMap;
use std::path::Path;

use crate::server_process::{ServerProcess, free_port};
use crate::util::{file_tree, repo, run_python};

/// An Azurite blob service, killed when dropped.
#[derive(Debug)]
pub struct Azurite {
    process: ServerProcess,
}

impl Azurite {
    /// Starts `tests/node/node_modules/.bin/azurite-blob` on a free port, keeping its blobs in the
    /// process's folder, and waits until it accepts connections.
    pub fn start() -> Azurite {
        let bin = repo().join("tests/node/node_modules/.bin/azurite-blob");
        assert!(
            bin.is_file(),
            "{} is missing: run `bash tests/python/setup-venv.sh` (it installs tests/node/ with npm, Azurite among it)",
            bin.display()
        );
        let port = free_port();
        let args = [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--skipApiVersionCheck",
            "--silent",
            "--location",
            "data",
        ]
        .map(String::from);
        let mut process = ServerProcess::spawn("Azurite", &bin, &args, port);
        process.wait_until_listening();
        Azurite { process }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.process.addr())
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
