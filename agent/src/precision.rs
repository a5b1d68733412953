//! Float32 matrix products on CUDA: IEEE fp32 (libtorch's default, and what the fixture parity
//! checks use) or TF32 tensor cores (inputs rounded to a 10-bit mantissa, fp32 accumulation).
//!
//! JAX computes float32 matmuls in TF32 by default on A100 and H100 GPUs, so the reference's own
//! GPU timings and training runs used TF32; this switch lets a run or a benchmark do the same.
//! It is a process-wide libtorch setting, reached through a C++ shim (`agent/cuda/`) since tch
//! does not expose it, and it changes nothing on the CPU.

#[cfg(qamlab_cuda_shim)]
use std::ffi::{c_char, c_int};

use crate::error::{AgentError, Result};

#[cfg(qamlab_cuda_shim)]
unsafe extern "C" {
    fn qamlab_set_tf32_matmul(enable: c_int) -> *mut c_char;
    fn qamlab_tf32_matmul(out: *mut c_int) -> *mut c_char;
}

/// Whether this build can switch TF32 (its CUDA shim needs the CUDA headers at build time).
pub fn available() -> bool {
    cfg!(qamlab_cuda_shim)
}

fn precision_error(reason: impl Into<String>) -> AgentError {
    AgentError::Precision(reason.into())
}

/// Lets CUDA float32 matmuls use TF32 tensor cores (`true`) or keeps them IEEE fp32 (`false`), for
/// the whole process. Turning TF32 on in a build without the shim is an error; turning it off
/// there succeeds (it is libtorch's default).
pub fn set_tf32_matmuls(on: bool) -> Result<()> {
    #[cfg(qamlab_cuda_shim)]
    {
        // SAFETY: a plain call; the returned message (if any) is taken and freed once.
        let message = unsafe { qamlab_set_tf32_matmul(c_int::from(on)) };
        crate::shim::take_error(message).map_or(Ok(()), |e| Err(precision_error(e)))
    }
    #[cfg(not(qamlab_cuda_shim))]
    {
        if on {
            return Err(precision_error(
                "this build cannot switch CUDA matmuls to TF32 (the CUDA headers of the torch wheel \
                 were not found when qamlab-agent was built)",
            ));
        }
        Ok(())
    }
}

/// Whether CUDA float32 matmuls currently may use TF32.
pub fn tf32_matmuls() -> Result<bool> {
    #[cfg(qamlab_cuda_shim)]
    {
        let mut out: c_int = 0;
        // SAFETY: `out` outlives the call; the returned message (if any) is taken and freed once.
        let message = unsafe { qamlab_tf32_matmul(&mut out) };
        crate::shim::take_error(message).map_or(Ok(out != 0), |e| Err(precision_error(e)))
    }
    #[cfg(not(qamlab_cuda_shim))]
    {
        Ok(false)
    }
}
