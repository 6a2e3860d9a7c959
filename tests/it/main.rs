//! End-to-end tests of the `mixtape` binary: each test runs the real CLI in its own temp folder.

mod util;

mod audit;
mod build;
mod check;
mod cli;
mod diff;
mod inspect;
mod long_text;
mod mix;
mod parquet_tools;
mod plan;
mod python_package;
mod slurm;
mod split_build;
mod stream;
mod template;
mod verify;
