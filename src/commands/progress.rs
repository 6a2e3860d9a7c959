//! Progress on stderr while sources are indexed (tokenized), the silent phase of `check`, `plan`,
//! `diff`, `audit --recipe` and `build` before their first line of output.
//!
//! indicatif draws only when stderr is a terminal, so piped output and the tests see nothing; the
//! spinner counts records, since a source's record count is not known until it has been read.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use mixtape_engine::index::IndexProgress;

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
