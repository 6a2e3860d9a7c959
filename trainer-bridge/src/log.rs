//! The run log: one JSON object per line in `RUN/train.jsonl`, tagged by `event`.
//!
//! - `step`: one optimizer step: loss (mean over the step's loss tokens), base and per-module learning
//!   rates, gradient norm before clipping, rows / tokens / loss tokens / image tokens, wall time and
//!   tokens per second, and `mix`: each category's share of the tokens the reader yielded for this
//!   step (the window between two reads of the reader's tally: the realized mix, not the recipe's).
//! - `eval`: mean loss on held-back rows (`set` is a stage name, or `all` for every stage's).
//! - `stage_end`: a stage finished, with the checkpoint written for it.
//!
//! Lines are flushed as they are written, so a run killed at any point leaves a readable log; a
//! resumed run first drops the lines past its checkpoint's step, so the log reads as one run.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    Step(StepRecord),
    Eval {
        set: String,
        stage: String,
        global_step: u64,
        loss: f64,
        loss_tokens: u64,
    },
    StageEnd {
        stage: String,
        global_step: u64,
        steps: u64,
        checkpoint: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub stage: String,
    /// Step within the stage, from 1.
    pub step: u64,
    pub global_step: u64,
    pub loss: f64,
    pub lr: f64,
    pub lrs: BTreeMap<String, f64>,
    pub grad_norm: f64,
    pub rows: u64,
    pub tokens: u64,
    pub loss_tokens: u64,
    pub image_tokens: u64,
    pub step_s: f64,
    pub tokens_per_s: f64,
    pub mix: BTreeMap<String, f64>,
    /// Rows the reader yielded but the trainer skipped (they share samples with held-back rows).
    pub skipped_rows: u64,
}

impl Record {
    pub fn global_step(&self) -> u64 {
        match self {
            Record::Step(s) => s.global_step,
            Record::Eval { global_step, .. } | Record::StageEnd { global_step, .. } => *global_step,
        }
    }
}

/// Why the log cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}, line {line}: {detail}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

/// Appends records to a JSONL file.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl LogWriter {
    /// Opens `path` for appending; with `keep_up_to`, first drops the records past that global step.
    pub fn open(path: &Path, keep_up_to: Option<u64>) -> Result<Self, LogError> {
        let io = |source| LogError::Io {
            path: path.to_path_buf(),
            source,
        };
        match keep_up_to {
            Some(step) if path.exists() => {
                let kept: Vec<Record> = read(path)?
                    .into_iter()
                    .filter(|r| r.global_step() <= step)
                    .collect();
                let mut text = String::new();
                for r in &kept {
                    text.push_str(&serde_json::to_string(r).expect("records serialize"));
                    text.push('\n');
                }
                std::fs::write(path, text).map_err(io)?;
            }
            Some(_) => {}
            None => std::fs::write(path, "").map_err(io)?,
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn write(&mut self, record: &Record) -> Result<(), LogError> {
        let mut line = serde_json::to_string(record).expect("records serialize");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|source| LogError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// Reads every record of a log.
pub fn read(path: &Path) -> Result<Vec<Record>, LogError> {
    let file = std::fs::File::open(path).map_err(|source| LogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| LogError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).map_err(|e| LogError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            detail: e.to_string(),
        })?;
        out.push(record);
    }
    Ok(out)
}
