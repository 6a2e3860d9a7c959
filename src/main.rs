//! The `mixtape` binary: parses arguments and dispatches to a command.
//!
//! Exit status: 0 success; 1 the command ran and found problems (invalid recipe, lock mismatch,
//! differences with `--exit-code`); 2 it could not run (bad arguments, missing or unreadable inputs).
//! Under `--json` a failure is also one JSON object on stdout ([`failure::ErrorDoc`]).

mod cli;
mod commands;
mod failure;

use std::process::ExitCode;

use clap::Parser;

/// Decoding a shard allocates and frees megabyte-sized column buffers per row group; mimalloc
/// reuses them where glibc's malloc returns them to the kernel and faults them back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Restores SIGPIPE's default action, which the Rust runtime sets to "ignore": a reader that closes
/// the pipe early (`mixtape stream --order | head`) then ends this process quietly, as it ends `cat`,
/// where every later `println!` would otherwise panic on the broken pipe.
#[cfg(unix)]
#[allow(unsafe_code)]
fn die_quietly_on_a_closed_pipe() {
    // SAFETY: called first thing in `main`, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE and no handler of ours is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn die_quietly_on_a_closed_pipe() {}

fn main() -> ExitCode {
    die_quietly_on_a_closed_pipe();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` are no errors; a bad argument under `--json` still owes
            // stdout its JSON (the flag may be what failed to parse, so look at the raw words).
            if err.use_stderr() && std::env::args_os().any(|a| a == "--json") {
                let message = err.render().to_string();
                failure::ErrorDoc::could_not_run(&anyhow::anyhow!(message.trim().to_string()))
                    .print();
            }
            err.exit()
        }
    };
    let json = cli.command.json();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if json {
                failure::ErrorDoc::could_not_run(&err).print();
            }
            ExitCode::from(failure::COULD_NOT_RUN)
        }
    }
}
