//! `mixtape._native`: the Rust half of the `mixtape` Python package (`python/mixtape/` is the
//! other half, and the only one users import).
//!
//! - `PyReader` (`mixtape.Reader`) is [`mixtape_shards::Reader`] itself: the same options, order,
//!   resume state (a state saved here resumes in Rust and back) and tally. Each batch is a dict of
//!   numpy arrays holding Qwen2-VL's inputs ([`mixtape_shards::qwen2vl`], whose labels the tch
//!   trainer trains on too), handed to numpy without a copy; reading and decoding run with the GIL released.
//!   With `wire=True` it yields each batch as `wire` bytes instead, for a DataLoader worker to
//!   hand to the training process, where `WireDecoder` (module `images`) finishes it.
//! - `check`, `plan` and `audit` return the documents `mixtape check/plan/audit --json`
//!   print, as JSON text that the Python side parses; `remote_counters` returns the process's
//!   object-store counters.
//! - A reader's failures raise `mixtape.ReaderError`; a shard whose bytes differ from what its
//!   manifest records raises its subclass `mixtape.CorruptShardError`. The message is the Rust
//!   error's: it names the shard, and the row group and column where it knows them.

mod images;
mod wire;

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use mixtape_engine::audit::{AuditOptions, audit as run_audit};
use mixtape_engine::diag::Severity;
use mixtape_engine::index::IndexCache;
use mixtape_engine::plan::Plan;
use mixtape_engine::resolve::resolve;
use mixtape_shards::qwen2vl::{InputsOptions, Qwen2VlBatch, qwen2vl_inputs};
use mixtape_shards::{ImageMode, ReadError, Reader, ReaderOptions, ReaderState, RowBatch, layout};
use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

pyo3::create_exception!(
    _native,
    ReaderError,
    PyException,
    "The shard reader failed (options, stages, resume state or a shard)."
);
pyo3::create_exception!(
    _native,
    CorruptShardError,
    ReaderError,
    "A shard's bytes differ from what its manifest records (the message names the shard, row group and column): rebuild the stage."
);
pyo3::create_exception!(
    _native,
    RecipeError,
    PyException,
    "A recipe has errors (the message lists each with file:line:col)."
);

fn reader_error(err: mixtape_shards::ReaderError) -> PyErr {
    use mixtape_shards::ReaderError as E;
    let corrupt = matches!(
        &err,
        E::Checksum { .. }
            | E::ShardMismatch { .. }
            | E::Read(
                ReadError::Corrupt { .. }
                    | ReadError::Size { .. }
                    | ReadError::ChecksumLayout { .. }
            )
    );
    if corrupt {
        CorruptShardError::new_err(err.to_string())
    } else {
        ReaderError::new_err(err.to_string())
    }
}

/// `serde_json` text -> Python objects, through Python's own `json` (a state or tally is small).
fn json_to_py<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}

fn to_json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn image_mode(images: &str) -> PyResult<ImageMode> {
    match images {
        "decoded" => Ok(ImageMode::Decoded),
        "raw" => Ok(ImageMode::Raw),
        "skip" => Ok(ImageMode::Skip),
        other => Err(PyValueError::new_err(format!(
            "images={other:?}: expected \"decoded\" (pixels), \"raw\" (stored bytes) or \"skip\" (geometry only)"
        ))),
    }
}

/// What a batch dict holds beyond the token inputs.
#[derive(Clone, Copy, Debug)]
struct Layout {
    inputs: InputsOptions,
    raw_images: bool,
    /// Images decoded, `pixel_values` not asked for: the batch holds each image's RGB pixels.
    rgb_images: bool,
}

impl Layout {
    /// `threads` lay out `pixel_values` (the reader's decode threads: they are idle meanwhile).
    fn new(mode: ImageMode, pixel_values: bool, threads: usize) -> Self {
        Self {
            inputs: InputsOptions {
                pixel_values: pixel_values && mode == ImageMode::Decoded,
                threads,
                ..InputsOptions::default()
            },
            raw_images: mode == ImageMode::Raw,
            rgb_images: mode == ImageMode::Decoded && !pixel_values,
        }
    }
}

/// The shard reader (see the package docs, `help(mixtape.Reader)`).
#[pyclass(name = "Reader", module = "mixtape._native")]
struct PyReader {
    reader: Mutex<Reader>,
    layout: Layout,
    /// Yield [`wire`] bytes rather than dicts.
    wire: bool,
}

/// A batch ready to become a dict: what one `__next__` computes with the GIL released.
struct Ready {
    batch: RowBatch,
    inputs: Qwen2VlBatch,
    state: String,
}

/// What one `__next__` computes with the GIL released.
enum Next {
    Ready(Box<Ready>),
    Wire(Vec<u8>),
}

#[pymethods]
impl PyReader {
    #[new]
    #[pyo3(signature = (
        stages, *, seed=None, batch_size=None, stage_batch_sizes=None, rank=None, world_size=None,
        worker=0, workers=1, epochs=None, shuffle=None, shuffle_window=None, prefetch=None,
        decode_threads=None, images="decoded", pixel_values=true, verify=false, state=None,
        wire=false, chunk_cache=None, chunk_cache_limit=10 << 30, remote_requests=None,
        read_ahead=true,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        stages: Vec<PathBuf>,
        seed: Option<u64>,
        batch_size: Option<usize>,
        stage_batch_sizes: Option<std::collections::BTreeMap<String, usize>>,
        rank: Option<usize>,
        world_size: Option<usize>,
        worker: usize,
        workers: usize,
        epochs: Option<u32>,
        shuffle: Option<bool>,
        shuffle_window: Option<usize>,
        prefetch: Option<usize>,
        decode_threads: Option<usize>,
        images: &str,
        pixel_values: bool,
        verify: bool,
        state: Option<String>,
        wire: bool,
        chunk_cache: Option<PathBuf>,
        chunk_cache_limit: u64,
        remote_requests: Option<usize>,
        read_ahead: bool,
    ) -> PyResult<Self> {
        let mode = image_mode(images)?;
        // RANK and WORLD_SIZE from the environment, as torchrun sets them, unless given.
        let mut options = ReaderOptions::from_env().map_err(reader_error)?;
        let (rank, world_size) = (
            rank.unwrap_or(options.rank()),
            world_size.unwrap_or(options.world_size()),
        );
        options = options
            .with_rank(rank, world_size)
            .with_worker(worker, workers)
            .with_image_mode(mode)
            .with_verify(verify)
            .with_read_ahead(read_ahead);
        if let Some(requests) = remote_requests {
            options = options.with_remote_requests(requests);
        }
        if let Some(dir) = chunk_cache {
            options = options.with_cache(dir, chunk_cache_limit);
        }
        if let Some(seed) = seed {
            options = options.with_seed(seed);
        }
        if let Some(rows) = batch_size {
            options = options.with_batch_size(rows);
        }
        for (stage, rows) in stage_batch_sizes.unwrap_or_default() {
            options = options.with_stage_batch_size(stage, rows);
        }
        if let Some(epochs) = epochs {
            options = options.with_epochs(epochs);
        }
        if let Some(shuffle) = shuffle {
            options = options.with_shuffle(shuffle);
        }
        if let Some(rows) = shuffle_window {
            options = options.with_shuffle_window(rows);
        }
        if let Some(batches) = prefetch {
            options = options.with_prefetch(batches);
        }
        if let Some(threads) = decode_threads {
            options = options.with_decode_threads(threads);
        }
        let resume: Option<ReaderState> = state
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| {
                    ReaderError::new_err(format!(
                        "the resume state is not a mixtape reader state: {e}"
                    ))
                })
            })
            .transpose()?;
        let threads = options.decode_threads();
        let reader = py.detach(|| {
            let dirs =
                layout::stages_to_read(&stages).map_err(|e| ReaderError::new_err(e.to_string()))?;
            Reader::try_new(&dirs, options, resume).map_err(reader_error)
        })?;
        Ok(Self {
            reader: Mutex::new(reader),
            layout: Layout::new(mode, pixel_values, threads),
            wire,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let next = py.detach(|| -> PyResult<Option<Next>> {
            let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(batch) = reader.next() else {
                return Ok(None);
            };
            let batch = batch.map_err(reader_error)?;
            let state = to_json(&reader.state())?;
            if self.wire {
                return Ok(Some(Next::Wire(wire::encode(&batch, &state))));
            }
            let inputs = qwen2vl_inputs(&batch.rows, &self.layout.inputs).map_err(|e| {
                ReaderError::new_err(format!(
                    "stage {}: {e}",
                    batch.rows.first().map_or("?", |r| r.stage.as_str())
                ))
            })?;
            Ok(Some(Next::Ready(Box::new(Ready {
                batch,
                inputs,
                state,
            }))))
        })?;
        match next {
            None => Ok(None),
            Some(Next::Wire(bytes)) => Ok(Some(PyBytes::new(py, &bytes).into_any())),
            Some(Next::Ready(ready)) => Ok(Some(batch_dict(py, &self.layout, *ready)?.into_any())),
        }
    }

    /// The state after the last batch yielded, as a dict: pass it (or its JSON) as `state=` to
    /// continue exactly after that batch.
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = to_json(&self.lock().state())?;
        json_to_py(py, &text)
    }

    /// What this reader has yielded: batches, rows, and counts in total, per category and per
    /// source (samples, tokens, loss tokens, image tokens, images).
    fn tally<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = to_json(self.lock().tally())?;
        json_to_py(py, &text)
    }

    /// Stage names, in schedule order.
    #[getter]
    fn stages(&self) -> Vec<String> {
        self.lock().stages().map(str::to_string).collect()
    }

    /// Index of the stage the next batch comes from (the number of stages at the end).
    #[getter]
    fn current_stage(&self) -> usize {
        self.lock().current_stage()
    }

    /// Things the reader will do that were probably not meant (a stage too small for one step).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.lock()
            .warnings()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Leaves the rest of the stages before `index` unread.
    fn skip_to_stage(&self, py: Python<'_>, index: usize) -> PyResult<()> {
        py.detach(|| self.lock().skip_to_stage(index).map_err(reader_error))
    }
}

impl PyReader {
    fn lock(&self) -> std::sync::MutexGuard<'_, Reader> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The batch as the dict `mixtape.Reader` yields (see the package docs).
fn batch_dict<'py>(py: Python<'py>, layout: &Layout, ready: Ready) -> PyResult<Bound<'py, PyDict>> {
    let Ready {
        batch,
        inputs,
        state,
    } = ready;
    let out = PyDict::new(py);
    let tokens = inputs.input_ids.len();
    let images = inputs.image_grid_thw.len() / 3;
    let stage = batch
        .rows
        .first()
        .map(|r| r.stage.clone())
        .unwrap_or_default();
    out.set_item("stage", stage)?;
    out.set_item("epoch", batch.epoch)?;
    out.set_item("offset", batch.offset)?;
    out.set_item("input_ids", inputs.input_ids.into_pyarray(py))?;
    out.set_item("labels", inputs.labels.into_pyarray(py))?;
    out.set_item("position_ids", inputs.position_ids.into_pyarray(py))?;
    out.set_item(
        "mrope_position_ids",
        inputs
            .mrope_position_ids
            .into_pyarray(py)
            .reshape([3, tokens])?,
    )?;
    out.set_item("cu_seqlens", inputs.cu_seqlens.into_pyarray(py))?;
    out.set_item("row_offsets", inputs.row_offsets.into_pyarray(py))?;
    out.set_item(
        "image_grid_thw",
        inputs
            .image_grid_thw
            .into_pyarray(py)
            .reshape([images, 3])?,
    )?;
    if layout.inputs.pixel_values {
        let values = layout.inputs.geometry.patch_values();
        let patches = inputs.pixel_values.len() / values;
        out.set_item(
            "pixel_values",
            inputs
                .pixel_values
                .into_pyarray(py)
                .reshape([patches, values])?,
        )?;
    }
    // (stage index, shard, row in the shard) of each row: what `mixtape stream --order` lists.
    let origins: Vec<i64> = batch
        .rows
        .iter()
        .flat_map(|r| {
            let o = r.origin;
            [o.stage as i64, i64::from(o.shard), o.row as i64]
        })
        .collect();
    let rows = batch.rows.len();
    out.set_item("row_origins", origins.into_pyarray(py).reshape([rows, 3])?)?;
    let loss_mask: Vec<u8> = batch
        .rows
        .iter()
        .flat_map(|r| r.loss_mask.iter().copied())
        .collect();
    out.set_item("loss_mask", loss_mask.into_pyarray(py))?;
    let samples = batch.rows.iter().flat_map(|r| &r.samples);
    let sources = PyList::new(py, samples.clone().map(|s| s.source.as_str()))?;
    let categories = PyList::new(py, samples.clone().map(|s| s.category.as_str()))?;
    let keys = PyList::new(py, samples.map(|s| s.key.as_str()))?;
    out.set_item("sample_sources", sources)?;
    out.set_item("sample_categories", categories)?;
    out.set_item("sample_keys", keys)?;
    if layout.rgb_images {
        // Decoded pixels without pixel_values: each image as uint8 [height, width, 3] over
        // the reader's buffer, which goes back to the reader when the array is dropped.
        let mut arrays = Vec::new();
        for image in batch.rows.into_iter().flat_map(|r| r.images) {
            let (height, width) = (image.height as usize, image.width as usize);
            arrays.push(images::rgb_array(py, image.rgb, height, width)?);
        }
        out.set_item("images", PyList::new(py, arrays)?)?;
    } else if layout.raw_images {
        let bytes = batch
            .rows
            .iter()
            .flat_map(|r| &r.images)
            .map(|i| PyBytes::new(py, &i.bytes));
        out.set_item("images", PyList::new(py, bytes)?)?;
    }
    out.set_item("state", json_to_py(py, &state)?)?;
    Ok(out)
}

fn cache(cache_dir: Option<PathBuf>) -> IndexCache {
    IndexCache {
        dir: cache_dir.or_else(IndexCache::default_dir),
    }
}

/// `mixtape check --json` as one document: `{"recipe", "ok", "errors", "warnings",
/// "diagnostics": [{"severity", "position", "message", "hint"}], "fingerprint"}`.
#[pyfunction]
#[pyo3(signature = (recipe, *, cache_dir=None))]
fn check(py: Python<'_>, recipe: PathBuf, cache_dir: Option<PathBuf>) -> PyResult<String> {
    py.detach(|| {
        let resolved = resolve(&recipe, &cache(cache_dir));
        let diagnostics = resolved.diagnostics.clone().sorted();
        let errors = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let listed: Vec<serde_json::Value> = diagnostics
            .iter()
            .map(|d| {
                serde_json::json!({
                    "severity": d.severity.to_string(),
                    "position": d.position(&resolved.files),
                    "message": d.message,
                    "hint": d.hint,
                })
            })
            .collect();
        let document = serde_json::json!({
            "recipe": recipe.display().to_string(),
            "ok": errors == 0,
            "errors": errors,
            "warnings": diagnostics.len() - errors,
            "diagnostics": listed,
            "fingerprint": resolved.plan.as_ref().map(|p| p.fingerprint.clone()),
        });
        to_json(&document)
    })
}

/// The plan of `recipe`, or every error in it.
fn resolve_plan(recipe: &std::path::Path, cache_dir: Option<PathBuf>) -> PyResult<Plan> {
    let resolved = resolve(recipe, &cache(cache_dir));
    resolved.plan.ok_or_else(|| {
        let rendered: Vec<String> = resolved
            .diagnostics
            .clone()
            .sorted()
            .iter()
            .map(|d| d.render(&resolved.files))
            .collect();
        RecipeError::new_err(format!(
            "{} has errors:\n{}",
            recipe.display(),
            rendered.join("\n")
        ))
    })
}

/// `mixtape plan --json`: the resolved plan (exact per-source draws and the fingerprint).
#[pyfunction]
#[pyo3(signature = (recipe, *, cache_dir=None))]
fn plan(py: Python<'_>, recipe: PathBuf, cache_dir: Option<PathBuf>) -> PyResult<String> {
    py.detach(|| to_json(&resolve_plan(&recipe, cache_dir)?))
}

/// `mixtape audit --json` of a build output (or one stage), against `recipe`'s plan when given.
#[pyfunction]
#[pyo3(signature = (out, *, recipe=None, tolerance=0.5, cache_dir=None))]
fn audit(
    py: Python<'_>,
    out: PathBuf,
    recipe: Option<PathBuf>,
    tolerance: f64,
    cache_dir: Option<PathBuf>,
) -> PyResult<String> {
    if !tolerance.is_finite() || tolerance < 0.0 {
        return Err(PyValueError::new_err(format!(
            "tolerance={tolerance} is not a number of percentage points >= 0 (e.g. 0.5)"
        )));
    }
    py.detach(|| {
        let planned = recipe
            .map(|recipe| resolve_plan(&recipe, cache_dir))
            .transpose()?;
        let options = AuditOptions {
            plan: planned.as_ref(),
            tolerance_pp: tolerance,
        };
        let report = run_audit(&out, &options).map_err(|e| ReaderError::new_err(e.to_string()))?;
        to_json(&report)
    })
}

/// The process's remote-read counters, as `mixtape stream` reports them under `remote`: GET
/// requests, bytes downloaded, reads retried, and bytes served from chunk caches instead.
#[pyfunction]
fn remote_counters(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let counters = mixtape_store::counters();
    let dict = PyDict::new(py);
    dict.set_item("requests", counters.get_requests())?;
    dict.set_item("bytes_downloaded", counters.bytes_downloaded())?;
    dict.set_item("retries", counters.retries())?;
    dict.set_item("cache_hit_bytes", counters.cache_hit_bytes())?;
    Ok(dict)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyReader>()?;
    m.add_class::<images::WireDecoder>()?;
    m.add_class::<images::DecodeJob>()?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(audit, m)?)?;
    m.add_function(wrap_pyfunction!(remote_counters, m)?)?;
    m.add("ReaderError", py.get_type::<ReaderError>())?;
    m.add("CorruptShardError", py.get_type::<CorruptShardError>())?;
    m.add("RecipeError", py.get_type::<RecipeError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
