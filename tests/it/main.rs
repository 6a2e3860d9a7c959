//! End-to-end tests of the `mixtape` binary: each test runs the real CLI in its own temp folder.

mod util;

mod audit;
mod azurite;
mod build;
mod check;
mod cli;
mod diff;
mod fake_gcs;
mod inspect;
mod long_text;
mod mix;
mod object_store;
mod parquet_tools;
mod plan;
mod python_package;
#[allow(dead_code)] // the harness of end-to-end object-storage tests; not all of it is used yet
mod s3_server;
mod server_process;
mod slurm;
mod split_build;
mod stream;
mod template;
mod verify;
