//! The FFI boundary to libjpeg-turbo (only with the `libjpeg-turbo` feature): safe wrappers over
//! the C shim in `csrc/turbo_shim.c`, which build.rs compiles against the system libjpeg.
//!
//! The shim owns everything libjpeg-specific (settings, error manager, output buffer); this module
//! only checks that the buffer matches the size it announces, calls it, and copies the result into
//! a `Vec`. Errors come back as the message libjpeg formatted, never as an `exit()` (libjpeg's
//! default) or a panic: the shim's error handler longjmps back inside C, so no Rust frame is ever
//! jumped over. [`crate::encode`] holds the policy (validation, error types, which encoder).

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_uint};

unsafe extern "C" {
    fn mixtape_turbo_encode_rgb(
        pixels: *const u8,
        width: c_uint,
        height: c_uint,
        quality: c_int,
        capacity_hint: usize,
        out: *mut *mut u8,
        out_len: *mut usize,
        msg: *mut c_char,
        msg_cap: usize,
    ) -> c_int;
    fn mixtape_turbo_free(buf: *mut u8);
    fn mixtape_turbo_version() -> *const c_char;
}

/// libjpeg's longest formatted message (`JMSG_LENGTH_MAX`) is 200 bytes.
const MSG_CAP: usize = 256;

/// The libjpeg-turbo version of the headers the shim was compiled against, e.g. `"2.1.5"`.
///
/// The libjpeg API has no run-time version query, so this is the build's version; the shared
/// library loaded at run time is the one the package manager installed alongside those headers.
pub(crate) fn version() -> &'static str {
    // SAFETY: the shim returns a pointer to a NUL-terminated string literal (static storage), so
    // it is valid for 'static and never written.
    let version = unsafe { CStr::from_ptr(mixtape_turbo_version()) };
    version.to_str().unwrap_or("unknown")
}

/// Encodes `height` rows of `width` RGB8 pixels as a baseline 4:2:0 JPEG at `quality`, with the
/// settings the shim fixes (islow DCT, standard Huffman tables, JFIF header only).
///
/// `pixels` must hold exactly `3 * width * height` bytes (checked here: a mismatch is an `Err`, not
/// an out-of-bounds read). Everything else libjpeg rejects (zero or over-65,500 sides) comes back
/// as libjpeg's own message. Quality is passed through; libjpeg clamps it to 1..=100.
pub(crate) fn encode_rgb(
    pixels: &[u8],
    width: u32,
    height: u32,
    quality: u8,
    capacity_hint: usize,
) -> Result<Vec<u8>, String> {
    let expected = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3));
    if expected != Some(pixels.len()) {
        return Err(format!(
            "{} bytes of pixels for a {width}x{height} RGB image",
            pixels.len()
        ));
    }
    let mut out: *mut u8 = std::ptr::null_mut();
    let mut out_len: usize = 0;
    let mut msg = [0 as c_char; MSG_CAP];
    // SAFETY: `pixels` is a live slice of exactly 3 * width * height bytes (checked above), which
    // is all the shim reads, and only for the duration of the call. `out`, `out_len` and `msg` are
    // valid for writes; the shim writes at most MSG_CAP bytes, NUL included, into `msg`.
    let rc = unsafe {
        mixtape_turbo_encode_rgb(
            pixels.as_ptr(),
            width,
            height,
            c_int::from(quality),
            capacity_hint,
            &mut out,
            &mut out_len,
            msg.as_mut_ptr(),
            MSG_CAP,
        )
    };
    if rc != 0 {
        // SAFETY: the shim NUL-terminates `msg` within its MSG_CAP bytes on every error return
        // (it writes '\0' at msg[0] on entry and copies at most MSG_CAP - 1 bytes after that).
        let detail = unsafe { CStr::from_ptr(msg.as_ptr()) };
        let detail = detail.to_string_lossy();
        return Err(if detail.is_empty() {
            format!("libjpeg-turbo failed (code {rc})")
        } else {
            detail.into_owned()
        });
    }
    // SAFETY: on success the shim hands over `out`, a malloc'd buffer of at least `out_len`
    // initialised bytes that nothing else references; it is read here once, then freed exactly
    // once by the shim's free (the allocator that made it), and the pointer is not used after.
    let bytes = unsafe {
        let bytes = std::slice::from_raw_parts(out, out_len).to_vec();
        mixtape_turbo_free(out);
        bytes
    };
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_headers() {
        let v = version();
        let parts: Vec<&str> = v.split('.').collect();
        assert_eq!(parts.len(), 3, "{v}");
        assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{v}");
    }

    // encode.rs rejects these sizes before calling in; calling the shim directly is how libjpeg's
    // own error path (error_exit -> longjmp -> message) gets exercised.
    #[test]
    fn libjpeg_errors_come_back_as_messages() {
        let err = encode_rgb(&[], 0, 0, 90, 0).unwrap_err();
        assert!(err.contains("Empty JPEG image"), "{err}");
        let wide = vec![0u8; 3 * 65_501];
        let err = encode_rgb(&wide, 65_501, 1, 90, 0).unwrap_err();
        assert!(err.contains("65500"), "{err}");
        // The shim and libjpeg still work after an error.
        let ok = encode_rgb(&[10, 20, 30], 1, 1, 90, 0).unwrap();
        assert_eq!(&ok[..2], &[0xFF, 0xD8]);
        assert_eq!(&ok[ok.len() - 2..], &[0xFF, 0xD9]);
    }

    #[test]
    fn a_short_buffer_is_refused_before_the_call() {
        let err = encode_rgb(&[0; 11], 2, 2, 90, 0).unwrap_err();
        assert!(err.contains("11 bytes"), "{err}");
    }

    #[test]
    fn the_output_buffer_grows_from_a_tiny_hint() {
        // Noise compresses badly: far more than the 4 KiB the shim starts from with a hint of 0.
        let mut x = 1u32;
        let pixels: Vec<u8> = (0..3 * 256 * 256)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        let small = encode_rgb(&pixels, 256, 256, 95, 0).unwrap();
        let roomy = encode_rgb(&pixels, 256, 256, 95, pixels.len()).unwrap();
        assert!(small.len() > 64 * 1024, "{}", small.len());
        assert_eq!(small, roomy);
    }
}
