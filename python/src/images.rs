//! Decoded images handed to numpy, and the batches of DataLoader workers finished in the training
//! process.
//!
//! - [`rgb_array`]: one image's RGB pixels as a `uint8 [height, width, 3]` array over the reader's
//!   own buffer. The array's base object owns the [`Pixels`], so the buffer goes back to the
//!   reader's pool when Python drops the array, and the next image decodes into warm memory
//!   (handing the bytes over with `into_vec` cost every image a fresh allocation and its page
//!   faults).
//! - `WireDecoder` (`mixtape._native.WireDecoder`): turns the [`crate::wire`] batches a worker's
//!   reader yields into the batches a reader in this process would have yielded: it decodes their
//!   stored images (on its own threads, GIL released) and computes the model inputs.
//!   `mixtape.torch.ShardLoader` uses it, so that pixels (tens of times the bytes of the stored
//!   images) never cross processes; `submit` returns at once, so the next batch decodes while the
//!   trainer works on this one.

#![allow(unsafe_code)] // `rgb_array`: numpy borrowing a buffer its base object owns.

use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use mixtape_shards::qwen2vl::qwen2vl_inputs;
use mixtape_shards::{Image, ImageDecoder, Pixels, Row};
use numpy::PyArray3;
use numpy::ndarray::ArrayViewMut3;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{Layout, ReaderError, Ready, batch_dict, image_mode, wire};

/// The owner of an array's pixels (its numpy `base`): dropped, the buffer goes back to its pool.
#[pyclass(frozen, module = "mixtape._native")]
struct PixelsOwner {
    _pixels: Pixels,
}

/// `pixels` (RGB, row-major HWC) as a writable `uint8 [height, width, 3]` array without a copy.
pub(crate) fn rgb_array(
    py: Python<'_>,
    mut pixels: Pixels,
    height: usize,
    width: usize,
) -> PyResult<Bound<'_, PyAny>> {
    if pixels.len() != height * width * 3 {
        return Err(PyValueError::new_err(format!(
            "{} decoded bytes for a {height}x{width} RGB image",
            pixels.len()
        )));
    }
    // Taken before the move: moving `Pixels` moves the vector's handle, not its heap buffer.
    let data = pixels.as_mut_ptr();
    let owner = Bound::new(py, PixelsOwner { _pixels: pixels })?;
    // SAFETY: `data` points at `height * width * 3` initialised bytes (checked above) in a buffer
    // that `owner` holds and never touches again until it is dropped, which numpy does only
    // after the array (the base's only user) is gone. No other reference to the bytes exists.
    let array = unsafe {
        let view = ArrayViewMut3::from_shape_ptr((height, width, 3), data);
        PyArray3::borrow_from_array(&view, owner.into_any())
    };
    Ok(array.into_any())
}

/// Finishes wire batches (see the module docs).
#[pyclass(name = "WireDecoder", module = "mixtape._native")]
pub(crate) struct WireDecoder {
    decoder: ImageDecoder,
    layout: Layout,
    /// Whether the batches' stored images are to be decoded.
    decode_images: bool,
    threads: usize,
}

#[pymethods]
impl WireDecoder {
    /// `images` and `pixel_values` as the reader's: what the batches hold. The workers' readers
    /// read with `images="raw"` where this is `"decoded"`.
    #[new]
    #[pyo3(signature = (*, images="decoded", pixel_values=true, threads=None))]
    fn new(images: &str, pixel_values: bool, threads: Option<usize>) -> PyResult<Self> {
        let mode = image_mode(images)?;
        let threads = threads.unwrap_or(mixtape_shards::reader::DEFAULT_DECODE_THREADS);
        if threads == 0 {
            return Err(PyValueError::new_err(
                "decode_threads=0: decode on at least 1 thread",
            ));
        }
        Ok(Self {
            decoder: ImageDecoder::new(),
            layout: Layout::new(mode, pixel_values, threads),
            decode_images: mode == mixtape_shards::ImageMode::Decoded,
            threads,
        })
    }

    /// Starts finishing one wire batch (bytes a reader made with `wire=True` yielded).
    fn submit(&self, wire: Vec<u8>) -> DecodeJob {
        let decoder = self.decoder.clone();
        let layout = self.layout;
        let (decode_images, threads) = (self.decode_images, self.threads);
        let handle = std::thread::spawn(move || {
            let (mut batch, state) = wire::decode(&wire).map_err(|e| e.to_string())?;
            if decode_images {
                decode_rows(&decoder, &mut batch.rows, threads)?;
            }
            let inputs = qwen2vl_inputs(&batch.rows, &layout.inputs).map_err(|e| {
                let stage = batch.rows.first().map_or("?", |r| r.stage.as_str());
                format!("stage {stage}: {e}")
            })?;
            Ok(Ready {
                batch,
                inputs,
                state,
            })
        });
        DecodeJob {
            handle: Mutex::new(Some(handle)),
            layout,
        }
    }
}

/// A wire batch being finished; `wait()` returns it.
#[pyclass(module = "mixtape._native")]
pub(crate) struct DecodeJob {
    handle: Mutex<Option<JoinHandle<Result<Ready, String>>>>,
    layout: Layout,
}

#[pymethods]
impl DecodeJob {
    /// The batch, as the reader yields it. Raises `ReaderError` naming the row and image that
    /// failed to decode.
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| PyValueError::new_err("wait() was called already"))?;
        let ready = py
            .detach(|| handle.join())
            .map_err(|_| ReaderError::new_err("finishing a batch panicked"))?
            .map_err(ReaderError::new_err)?;
        batch_dict(py, &self.layout, ready)
    }
}

/// Decodes every image of `rows` in place, image `i` of the batch on thread `i % threads`.
fn decode_rows(decoder: &ImageDecoder, rows: &mut [Row], threads: usize) -> Result<(), String> {
    // Where each row came from, for errors; the images are decoded out of their rows.
    let origins: Vec<String> = rows
        .iter()
        .map(|r| {
            let o = r.origin;
            format!("stage {}, shard {}, row {}", r.stage, o.shard, o.row)
        })
        .collect();
    let mut images: Vec<Vec<Image>> = rows
        .iter_mut()
        .map(|r| std::mem::take(&mut r.images))
        .collect();
    let mut shares: Vec<Vec<(usize, usize, &mut Image)>> =
        (0..threads).map(|_| Vec::new()).collect();
    let all = images.iter_mut().enumerate().flat_map(|(row, images)| {
        images
            .iter_mut()
            .enumerate()
            .map(move |(index, image)| (row, index, image))
    });
    for (n, share) in all.enumerate() {
        shares[n % threads].push(share);
    }
    let origins = &origins;
    let decoded = std::thread::scope(|scope| {
        let workers: Vec<_> = shares
            .into_iter()
            .filter(|share| !share.is_empty())
            .map(|share| {
                scope.spawn(move || {
                    for (row, index, image) in share {
                        decoder
                            .decode(image)
                            .map_err(|e| format!("{}, image {index}: {e}", origins[row]))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .map_err(|_| "image decoding panicked".to_string())?
        })
    });
    for (row, images) in rows.iter_mut().zip(images) {
        row.images = images;
    }
    decoded
}
