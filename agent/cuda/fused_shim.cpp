// A C ABI over libtorch's fused Dense + GELU, `at::_addmm_activation(bias, x, kernel, 1, 1,
// use_gelu=true)` (on CUDA one cuBLASLt call with a bias + GELU epilogue). tch's binding of it
// cannot reach the flag: its generated wrapper passes `use_gelu` where `beta` goes, so it always
// applies ReLU. Rust drives this from `agent/src/gelu.rs`.

#include <ATen/core/Tensor.h>
#include <ATen/ops/_addmm_activation.h>

#include "shim.h"

extern "C" {

// `*out` receives a new `at::Tensor` (tch's tensor handle), owned by the caller.
char* qamlab_addmm_gelu(const void* bias, const void* x, const void* kernel, void** out) {
  return qamlab_guarded([&] {
    const auto& b = *static_cast<const at::Tensor*>(bias);
    const auto& m1 = *static_cast<const at::Tensor*>(x);
    const auto& m2 = *static_cast<const at::Tensor*>(kernel);
    *out = new at::Tensor(at::_addmm_activation(b, m1, m2, 1, 1, /*use_gelu=*/true));
  });
}

}  // extern "C"
