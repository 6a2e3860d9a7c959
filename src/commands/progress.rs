//! Progress on stderr for the silent phases: while sources are indexed (tokenized) in `check`,
//! `plan`, `diff`, `audit --recipe` and `build` before their first line of output, and while
//! `verify` and `audit` read a shard set.
//!
//! indicatif draws only when stderr is a terminal, so piped output and the tests see nothing; the
//! indexing spinner counts records, since a source's record count is not known until it has been
//! read, and the shard-set bar counts rows against the manifests' totals.

use std::path::Path;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use mixtape_engine::index::IndexProgress;
use mixtape_shards::{Discovered, Manifest};

/// One spinner for the source being indexed.
#[derive(Debug, Default)]
pub struct IndexSpinner {
    current: Mutex<Option<ProgressBar>>,
}

impl IndexSpinner {
    pub fn update(&self, event: IndexProgress) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            IndexProgress::Measured { source, records } => {
                let bar = current.get_or_insert_with(|| {
                    let bar = ProgressBar::new_spinner();
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} indexing {prefix}: {human_pos} records ({per_sec}, {elapsed})",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(source);
                    bar
                });
                bar.set_position(records);
            }
            IndexProgress::Done { .. } => {
                if let Some(bar) = current.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

/// A bar over the rows `verify` and `audit` decode: the total is the sum of the stages'
/// manifests (a stage without a readable manifest adds nothing, so the bar may finish early), and
/// every decoded row moves it by one. Rows are decoded after their shard is hashed, shards in
/// parallel, so the bar moves in bursts; on a large set it is the sign that work goes on.
pub struct RowProgress {
    bar: ProgressBar,
}

impl RowProgress {
    /// A bar for the shard set at `dir`, labelled `verb` ("verifying", "auditing").
    pub fn for_shard_set(dir: &Path, verb: &str) -> Self {
        let stages = match mixtape_shards::layout::discover(dir) {
            Ok(Discovered::Build { stages, .. }) => stages,
            Ok(Discovered::Stage(stage)) => vec![stage],
            // The command itself reports why the folder cannot be read.
            Err(_) => Vec::new(),
        };
        let rows: u64 = stages
            .iter()
            .filter_map(|stage| Manifest::read(stage.manifest()).ok())
            .map(|manifest| manifest.totals.rows)
            .sum();
        let bar = ProgressBar::new(rows);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {wide_bar} {human_pos}/{human_len} rows ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(verb.to_string());
        Self { bar }
    }

    /// One more row checked (callable from the verifying threads).
    pub fn row_done(&self) {
        self.bar.inc(1);
    }
}

impl Drop for RowProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
