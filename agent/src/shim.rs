//! The Rust side of what the C++ shims over libtorch (`agent/cuda/`) share: every shim function
//! returns NULL on success or an error message that the shim allocated and Rust frees.

use std::ffi::{CStr, c_char};

unsafe extern "C" {
    fn qamlab_free_error(message: *mut c_char);
}

/// The error message a shim function returned (freed here), or `None` when it succeeded.
pub(crate) fn take_error(message: *mut c_char) -> Option<String> {
    if message.is_null() {
        return None;
    }
    // SAFETY: a non-null return is a NUL-terminated string malloc'd by the shim, freed once here.
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    unsafe { qamlab_free_error(message) };
    Some(text)
}
