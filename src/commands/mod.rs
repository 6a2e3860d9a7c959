//! One module per subcommand; each returns the process exit code.

mod audit;
mod build;
mod check;
mod diff;
mod index;
mod inspect;
mod plan;
mod progress;
mod stream;
mod verify;

use std::process::ExitCode;

use mixtape_engine::build::BuildScope;
use mixtape_engine::index::IndexCache;

use crate::cli::{Cli, Command};

pub use crate::failure::PROBLEMS;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // A missing input exits 2 with its path, the same for every command, before any of them
    // would turn it into a finding of its own (an invalid recipe, a damaged shard set).
    mixtape_store::set_s3_endpoint(cli.endpoint.as_deref());
    for path in cli.command.inputs() {
        crate::failure::require_readable(path)?;
    }
    let cache = IndexCache {
        dir: if cli.no_cache {
            None
        } else {
            cli.cache_dir.clone().or_else(IndexCache::default_dir)
        },
    };
    // Source files read from object storage are downloaded beside the length index.
    // (In the system's temporary folder when the cache itself is in a bucket.)
    mixtape_store::set_download_dir(
        cache
            .dir
            .as_ref()
            .filter(|dir| !mixtape_store::is_url(dir))
            .map(|dir| dir.join("objects")),
    );
    match cli.command {
        Command::Check { recipes, json } => check::run(&recipes, json, &cache),
        Command::Plan {
            recipe,
            json,
            lock,
            locked,
        } => plan::run(&recipe, json, lock.as_deref(), locked.as_deref(), &cache),
        Command::Build {
            recipe,
            out,
            jobs,
            max_reject_fraction,
            shard_bytes,
            rebuild,
            task,
            tasks,
            finish,
            quiet,
            json,
        } => {
            let scope = if finish {
                BuildScope::Finish
            } else {
                build::scope_from(task, tasks, &|name| std::env::var(name).ok())?
            };
            let options = mixtape_engine::build::BuildOptions {
                out,
                jobs,
                max_reject_fraction,
                target_shard_bytes: shard_bytes,
                cache,
                rebuild,
                scope,
            };
            build::run(&recipe, &options, quiet, json)
        }
        Command::Index {
            recipe,
            task,
            tasks,
            json,
        } => {
            let scope = build::scope_from(task, tasks, &|name| std::env::var(name).ok())?;
            index::run(&recipe, scope, json, &cache)
        }
        Command::Diff {
            before,
            after,
            json,
            exit_code,
        } => diff::run(&before, &after, json, exit_code, &cache),
        Command::Audit {
            dir,
            recipe,
            lock,
            tolerance,
            json,
            html,
            stream,
            steps,
            window,
            batch_size,
            seed,
            rank,
            world_size,
        } => {
            let stream = stream.then(|| audit::StreamArgs {
                steps: steps.unwrap_or(0),
                window,
                batch_size,
                seed,
                rank,
                world_size,
            });
            audit::run(
                &audit::AuditArgs {
                    dir,
                    recipe,
                    lock,
                    tolerance,
                    json,
                    html,
                    stream,
                },
                &cache,
            )
        }
        Command::Verify { dir, json } => verify::run(&dir, json),
        Command::Stream {
            dirs,
            rank,
            world_size,
            batch_size,
            seed,
            epochs,
            resume,
            save_state,
            steps,
            images,
            decode_threads,
            prefetch,
            shuffle_window,
            no_shuffle,
            verify,
            chunk_cache,
            chunk_cache_limit,
            remote_requests,
            no_read_ahead,
            order,
            json,
        } => stream::run(stream::StreamArgs {
            dirs,
            rank,
            world_size,
            batch_size,
            seed,
            epochs,
            resume,
            save_state,
            steps,
            images: match images {
                crate::cli::StreamImages::Skip => mixtape_shards::ImageMode::Skip,
                crate::cli::StreamImages::Raw => mixtape_shards::ImageMode::Raw,
                crate::cli::StreamImages::Decoded => mixtape_shards::ImageMode::Decoded,
            },
            decode_threads,
            prefetch,
            shuffle_window,
            no_shuffle,
            verify,
            chunk_cache: chunk_cache.map(|dir| (dir, chunk_cache_limit)),
            remote_requests,
            read_ahead: !no_read_ahead,
            order,
            json,
        }),
        Command::Inspect {
            path,
            shard,
            row,
            rows,
            tokenizer,
            recipe,
            images_out,
            json,
        } => inspect::run(inspect::InspectArgs {
            path,
            shard,
            row,
            rows,
            tokenizer,
            recipe,
            images_out,
            json,
        }),
    }
}
