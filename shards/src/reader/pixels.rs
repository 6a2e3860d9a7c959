//! [`Pixels`]: a decoded image's RGB bytes, in memory the reader recycles.
//!
//! One pass over the demo set decodes 3.5 GB of pixels into buffers of a few hundred kilobytes
//! each. A freshly allocated buffer has to be zeroed before the JPEG decoder writes into it (by the
//! allocator, or by the kernel when it faults in new pages), and that zeroing was a seventh of the
//! reader's image time. So a batch's images own their bytes as [`Pixels`], which hand their buffer
//! back to the reader's [`PixelPool`] when dropped; a worker decodes the next image into it in
//! place ([`mixtape_image::decode_into`]).
//!
//! A pooled buffer is never shortened: its length is the largest image it has held, all of it
//! initialised, and a [`Pixels`] shows only the first `height * width * 3` bytes. An image takes
//! the shortest idle buffer that fits, or a new one. The pool keeps at most [`POOL_BYTES`] of idle
//! buffers, freeing the shortest ones beyond that, so a trainer that holds on to batches costs
//! little extra, and one that drops them promptly decodes into warm memory.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

/// New buffers are a multiple of this many bytes.
const GRAIN: usize = 128 << 10;

/// Most bytes of idle pixel buffers a reader keeps for reuse: a few batches of large images.
/// Buffers in use by batches are not counted; they are bounded by the prefetch depth.
pub const POOL_BYTES: usize = 128 << 20;

/// RGB bytes of one decoded image (height x width x 3, row-major HWC); derefs to `[u8]`.
///
/// Dropped, the buffer goes back to the reader that decoded it, if any. [`Pixels::into_vec`]
/// takes the bytes out instead.
#[derive(Default)]
pub struct Pixels {
    /// At least `len` initialised bytes; the rest are left from an earlier, larger image.
    buffer: Vec<u8>,
    len: usize,
    pool: Option<Arc<PixelPool>>,
}

impl Pixels {
    /// The bytes as a vector of exactly their length (the buffer leaves the pool for good).
    pub fn into_vec(mut self) -> Vec<u8> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.truncate(self.len);
        buffer
    }
}

impl From<Vec<u8>> for Pixels {
    fn from(buffer: Vec<u8>) -> Self {
        Self {
            len: buffer.len(),
            buffer,
            pool: None,
        }
    }
}

impl Deref for Pixels {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

impl DerefMut for Pixels {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buffer[..self.len]
    }
}

impl AsRef<[u8]> for Pixels {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// A copy of the bytes, outside any pool.
impl Clone for Pixels {
    fn clone(&self) -> Self {
        Self::from(self.to_vec())
    }
}

impl PartialEq for Pixels {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Pixels {}

// By hand: a failing assertion should print a size, not megabytes of pixels.
impl std::fmt::Debug for Pixels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pixels([{} bytes])", self.len)
    }
}

impl Drop for Pixels {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.put(std::mem::take(&mut self.buffer));
        }
    }
}

/// Idle pixel buffers shared by a reader's image workers and the batches they produce.
#[derive(Debug, Default)]
pub(crate) struct PixelPool {
    idle: Mutex<Idle>,
}

#[derive(Debug, Default)]
struct Idle {
    buffers: Vec<Vec<u8>>,
    /// Sum of the idle buffers' lengths.
    bytes: usize,
}

impl PixelPool {
    /// A buffer of at least `len` bytes: the shortest idle one that is long enough, else a new one
    /// of `len` rounded up to [`GRAIN`] (growing an idle one would copy its stale bytes, and a
    /// little headroom lets the buffer serve slightly larger images later).
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let fresh = || vec![0; len.next_multiple_of(GRAIN)];
        let Ok(mut idle) = self.idle.lock() else {
            return fresh();
        };
        let best = idle
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= len)
            .min_by_key(|(_, b)| b.len());
        let Some(index) = best.map(|(i, _)| i) else {
            return fresh();
        };
        let buffer = idle.buffers.swap_remove(index);
        idle.bytes -= buffer.len();
        buffer
    }

    /// Wraps `len` decoded bytes at the start of `buffer`, to come back here when dropped.
    pub(crate) fn pixels(self: &Arc<Self>, buffer: Vec<u8>, len: usize) -> Pixels {
        debug_assert!(len <= buffer.len());
        let len = len.min(buffer.len());
        Pixels {
            buffer,
            len,
            pool: Some(Arc::clone(self)),
        }
    }

    fn put(&self, buffer: Vec<u8>) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        if buffer.is_empty() || buffer.len() > POOL_BYTES {
            return;
        }
        idle.bytes += buffer.len();
        idle.buffers.push(buffer);
        // Over the limit, the shortest buffers go first: a long one can hold any image.
        while idle.bytes > POOL_BYTES {
            let shortest = idle
                .buffers
                .iter()
                .enumerate()
                .min_by_key(|(_, b)| b.len())
                .map(|(i, _)| i);
            let Some(index) = shortest else { break };
            let freed = idle.buffers.swap_remove(index);
            idle.bytes -= freed.len();
        }
    }

    /// Bytes of idle buffers held.
    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        self.idle.lock().map(|idle| idle.bytes).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_pixels_return_their_whole_buffer_and_show_only_their_own_bytes() {
        let pool = Arc::new(PixelPool::default());
        let pixels = pool.pixels(vec![7; 12], 6);
        assert_eq!(&*pixels, &[7; 6]);
        assert_eq!(format!("{pixels:?}"), "Pixels([6 bytes])");
        drop(pixels);
        assert_eq!(pool.idle_bytes(), 12);
        // A shorter image reuses it without shortening it.
        let buffer = pool.take(3);
        assert_eq!(buffer.len(), 12);
        assert_eq!(pool.idle_bytes(), 0);
        // The shortest buffer long enough is taken; when none is, a new one of whole grains.
        drop(pool.pixels(buffer, 3));
        drop(pool.pixels(vec![1; 5], 5));
        drop(pool.pixels(vec![2; 8], 8));
        assert_eq!(pool.take(6).len(), 8);
        assert_eq!(pool.take(100).len(), GRAIN);
        assert_eq!(pool.take(GRAIN + 1).len(), 2 * GRAIN);
        assert_eq!(
            pool.idle_bytes(),
            17,
            "the 12- and 5-byte buffers stay idle"
        );
    }

    #[test]
    fn taken_out_or_cloned_pixels_leave_the_pool() {
        let pool = Arc::new(PixelPool::default());
        let pixels = pool.pixels(vec![1, 2, 3, 4], 3);
        let copy = pixels.clone();
        assert_eq!(copy, pixels);
        assert_eq!(pixels.into_vec(), [1, 2, 3]);
        drop(copy);
        assert_eq!(pool.idle_bytes(), 0);
        assert_eq!(Pixels::from(vec![9; 2]).len(), 2);
    }

    #[test]
    fn over_its_limit_the_pool_frees_its_shortest_buffers() {
        let pool = Arc::new(PixelPool::default());
        let (short, long) = (POOL_BYTES / 4, POOL_BYTES / 2 + 1);
        drop(pool.pixels(vec![0; short], short));
        drop(pool.pixels(vec![0; long], long));
        assert_eq!(pool.idle_bytes(), short + long);
        drop(pool.pixels(vec![0; long], long));
        assert_eq!(
            pool.idle_bytes(),
            long,
            "the short buffer and one long one freed"
        );
        drop(pool.pixels(vec![0; POOL_BYTES + 1], 1));
        assert_eq!(
            pool.idle_bytes(),
            long,
            "a buffer over the whole limit is never kept"
        );
    }
}
