// A thin C ABI over libtorch's float32 matmul precision switch for CUDA (TF32 tensor cores or
// IEEE fp32), which tch does not expose. Rust drives it from `agent/src/precision.rs`.
//
// `setAllowTF32CuBLAS` is used rather than the newer per-backend `setFloat32Precision`: it keeps
// libtorch's legacy and new precision flags consistent (after the new API alone, libtorch 2.11
// throws when something reads the legacy flag) and touches CUDA matmuls only, not oneDNN's.

#include <ATen/Context.h>

#include "shim.h"

extern "C" {

char* qamlab_set_tf32_matmul(int enable) {
  return qamlab_guarded([&] { at::globalContext().setAllowTF32CuBLAS(enable != 0); });
}

char* qamlab_tf32_matmul(int* out) {
  return qamlab_guarded([&] { *out = at::globalContext().allowTF32CuBLAS() ? 1 : 0; });
}

}  // extern "C"
