//! Checkpoints: one safetensors file holding the weights (`model.NAME`), the optimizer's moments
//! (`optim.m.NAME`, `optim.v.NAME`) and, in the header's `__metadata__` under `mixtape`, a JSON
//! [`CheckpointMeta`]: where in the schedule the run stands and the reader's resume cursor.
//!
//! Any safetensors reader (Python's `safetensors.torch.load_file`) opens it; the weights are plain
//! f32 tensors. Files are written under a temporary name and renamed, so a crash never leaves a
//! half-written checkpoint under the final name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mixtape_shards::ReaderState;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::device::Placement;

use crate::model::ModelConfig;

/// Version of the checkpoint layout.
pub const CHECKPOINT_FORMAT: u32 = 1;
/// Metadata key of the JSON [`CheckpointMeta`].
pub const META_KEY: &str = "mixtape";
pub const MODEL_PREFIX: &str = "model.";

/// Where a run stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: u32,
    pub model: ModelConfig,
    /// Seed of the weight initialisation and of the data order.
    pub seed: u64,
    /// Index of the stage to continue (the number of stages once the schedule is done).
    pub stage_index: usize,
    /// Its name (empty when done).
    pub stage: String,
    /// Optimizer steps already taken in that stage.
    pub step: u64,
    /// Optimizer steps over all stages.
    pub global_step: u64,
    /// The reader's cursor over all the stages of the schedule (`None`: start stage `stage_index`
    /// from its beginning).
    pub reader: Option<ReaderState>,
    /// For an averaged checkpoint: the inputs and their normalised weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub averaged_from: Vec<(String, f64)>,
}

/// Why a checkpoint cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("cannot write checkpoint {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read checkpoint {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a safetensors file: {detail}", path.display())]
    Format { path: PathBuf, detail: String },
    #[error("{}: not a mixtape-train checkpoint ({detail})", path.display())]
    Meta { path: PathBuf, detail: String },
    #[error("{}: tensor `{name}` is {dtype}, checkpoints hold f32", path.display())]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
}

/// A checkpoint in memory: named f32 tensors (on the CPU) and the metadata.
#[derive(Debug)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub tensors: Vec<(String, Tensor)>,
}

impl Checkpoint {
    /// Tensors whose names start with `prefix`, the prefix removed, put on `placement`.
    pub fn with_prefix(&self, prefix: &str, placement: &Placement) -> Vec<(String, Tensor)> {
        self.tensors
            .iter()
            .filter_map(|(n, t)| {
                n.strip_prefix(prefix)
                    .map(|rest| (rest.to_string(), placement.put(t)))
            })
            .collect()
    }

    /// Writes the checkpoint atomically. Its tensors must be CPU or CUDA tensors (read NPU tensors
    /// back through [`Placement::to_cpu`] first).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let write = |source| CheckpointError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut owned = Vec::with_capacity(self.tensors.len());
        for (name, t) in &self.tensors {
            let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let values = Vec::<f32>::try_from(t.view(-1))
                .map_err(|e| write(std::io::Error::other(e.to_string())))?;
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            owned.push((name.clone(), shape, bytes));
        }
        let views = owned
            .iter()
            .map(|(n, shape, bytes)| {
                Ok((
                    n.clone(),
                    TensorView::new(Dtype::F32, shape.clone(), bytes)?,
                ))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
            .map_err(|e| write(std::io::Error::other(e.to_string())))?;
        let meta =
            serde_json::to_string(&self.meta).map_err(|e| write(std::io::Error::other(e)))?;
        let bytes =
            safetensors::serialize(views, Some(HashMap::from([(META_KEY.to_string(), meta)])))
                .map_err(|e| write(std::io::Error::other(e.to_string())))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let tmp = path.with_extension("safetensors.tmp");
        std::fs::write(&tmp, bytes).map_err(write)?;
        std::fs::rename(&tmp, path).map_err(write)
    }

    /// Reads a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let format = |e: safetensors::SafeTensorError| CheckpointError::Format {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(format)?;
        let meta_err = |detail: String| CheckpointError::Meta {
            path: path.to_path_buf(),
            detail,
        };
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY))
            .ok_or_else(|| meta_err(format!("no `{META_KEY}` entry in its metadata")))?;
        let meta: CheckpointMeta =
            serde_json::from_str(json).map_err(|e| meta_err(e.to_string()))?;
        if meta.format != CHECKPOINT_FORMAT {
            return Err(meta_err(format!(
                "format {} (this build reads {CHECKPOINT_FORMAT})",
                meta.format
            )));
        }
        let file = SafeTensors::deserialize(&bytes).map_err(format)?;
        let mut tensors = Vec::new();
        for (name, view) in file.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(CheckpointError::Dtype {
                    path: path.to_path_buf(),
                    name,
                    dtype: format!("{:?}", view.dtype()),
                });
            }
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            tensors.push((
                name,
                Tensor::from_data_size(view.data(), &shape, Kind::Float),
            ));
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { meta, tensors })
    }
}
