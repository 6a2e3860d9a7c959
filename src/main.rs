//! The `mixtape` binary: parses arguments and dispatches to a command.
//!
//! Exit status: 0 success; 1 the command ran and found problems (invalid recipe, lock mismatch,
//! differences with `--exit-code`); 2 it could not run (bad arguments, unreadable files).

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

/// Decoding a shard allocates and frees megabyte-sized column buffers per row group; mimalloc
/// reuses them where glibc's malloc returns them to the kernel and faults them back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}
