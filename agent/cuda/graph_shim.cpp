// A thin C ABI over libtorch's CUDA graph capture (at::cuda::CUDAGraph), which tch does not
// expose. Rust drives it from `agent/src/cuda_graph.rs`: enter a private side stream, capture the
// work the current thread enqueues there, replay it later on the current stream. Every function
// returns NULL or an error message (see shim.h).

#include <ATen/core/CachingHostAllocator.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <mutex>
#include <optional>

#include "shim.h"

// libtorch's CUDAGraph, able to clean up after a capture that failed. CUDAGraph undoes what
// capture_begin set up only in a capture_end that succeeds: after a failed one the default CUDA
// generator stays in capture mode (every later eager random draw then fails, so an eager fallback
// could not run), and the device and pinned-host caching allocators keep routing allocations
// through a filter that points at this graph (slower, and a read of freed memory once it is gone).
struct RecoverableGraph : at::cuda::CUDAGraph {
  // Clean-up is best effort: the capture's own error is the one to report.
  template <typename F>
  static void ignoring_errors(F&& step) {
    try {
      step();
    } catch (...) {
    }
  }

  void recover_from_failed_capture() {
    // Past its bookkeeping, capture_end leaves the rest to reset() in the destructor; before
    // capture_begin chose its device, nothing was set up.
    if (capture_ended_ || capture_dev_ < 0) {
      return;
    }
    if (mempool_id_.first != 0 || mempool_id_.second != 0) {
      // Each step may have happened already, depending on where the capture failed (and then
      // throws, ignored); a pool is released once, as reset() would have.
      ignoring_errors([&] { c10::cuda::CUDACachingAllocator::endAllocateToPool(capture_dev_, mempool_id_); });
      ignoring_errors([&] { at::getHostAllocator(at::kCUDA)->end_allocate_to_pool(mempool_id_); });
      ignoring_errors([&] { c10::cuda::CUDACachingAllocator::releasePool(capture_dev_, mempool_id_); });
      ignoring_errors([&] { at::getHostAllocator(at::kCUDA)->release_pool(mempool_id_); });
    }
    // A copy of the generator's state starts outside capture mode, at the same seed and offset.
    ignoring_errors([&] {
      auto generator = at::cuda::detail::getDefaultCUDAGenerator(capture_dev_);
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.graphsafe_set_state(generator.clone());
    });
  }
};

struct QamlabGraph {
  explicit QamlabGraph(c10::DeviceIndex device)
      : stream(c10::cuda::getStreamFromPool(false, device)) {}
  // Declared first so it is destroyed last, after the streams.
  RecoverableGraph graph;
  // Capture needs a non-default stream; the same one is used for the warm-up work, so lazily
  // created per-stream state (cuBLAS workspaces) exists before capture begins.
  c10::cuda::CUDAStream stream;
  // The stream that was current before `enter_stream` (restored by `exit_stream`). Set directly
  // rather than through CUDAStreamGuard, whose inline guard implementation would make this object
  // link against libcudart itself instead of reaching CUDA only through libtorch.
  std::optional<c10::cuda::CUDAStream> previous;
};

extern "C" {

char* qamlab_graph_new(int device, QamlabGraph** out) {
  return qamlab_guarded([&] { *out = new QamlabGraph(static_cast<c10::DeviceIndex>(device)); });
}

char* qamlab_graph_enter_stream(QamlabGraph* g) {
  return qamlab_guarded([&] {
    // Work already queued on the current stream must be visible to the side stream.
    c10::cuda::device_synchronize();
    if (!g->previous) {
      g->previous = c10::cuda::getCurrentCUDAStream(g->stream.device_index());
    }
    c10::cuda::setCurrentCUDAStream(g->stream);
  });
}

char* qamlab_graph_exit_stream(QamlabGraph* g) {
  return qamlab_guarded([&] {
    g->stream.synchronize();
    if (g->previous) {
      c10::cuda::setCurrentCUDAStream(*g->previous);
      g->previous.reset();
    }
  });
}

char* qamlab_graph_capture_begin(QamlabGraph* g) {
  return qamlab_guarded([&] {
    c10::cuda::device_synchronize();
    // Thread-local: only this thread's unsafe CUDA calls (a synchronisation, say) break the
    // capture; another thread using the GPU meanwhile (a viewer, a second agent) does not.
    try {
      g->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
    } catch (...) {
      g->graph.recover_from_failed_capture();
      throw;
    }
  });
}

char* qamlab_graph_capture_end(QamlabGraph* g) {
  return qamlab_guarded([&] {
    try {
      g->graph.capture_end();
    } catch (...) {
      g->graph.recover_from_failed_capture();
      throw;
    }
  });
}

char* qamlab_graph_replay(QamlabGraph* g) {
  return qamlab_guarded([&] { g->graph.replay(); });
}

void qamlab_graph_free(QamlabGraph* g) {
  try {
    delete g;
  } catch (...) {
  }
}

// Frees the error messages of every shim (see shim.h); defined once, here.
void qamlab_free_error(char* message) { std::free(message); }

}  // extern "C"
