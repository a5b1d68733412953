//! CUDA graphs: an update or acting call is captured once and then replayed as one launch, which
//! removes the per-kernel launch cost that dominates eager updates of these small networks.
//!
//! tch does not expose libtorch's `at::cuda::CUDAGraph`, so a small C++ shim
//! (`agent/cuda/graph_shim.cpp`, compiled by the build script when the CUDA headers of the torch
//! wheel are present) wraps it. The rules a captured body must follow, and that the agent keeps:
//! * its inputs live in static tensors that are refilled in place before every replay;
//! * it draws no random numbers (draws are made before the replay into static buffers, see
//!   [`StaticNoise`]), makes no host synchronisation and copies nothing from the host;
//! * host-side scalars that change between steps (Adam's bias corrections) are read from device
//!   tensors filled before the replay.

#[cfg(qamlab_cuda_shim)]
use std::ffi::c_char;
use std::ffi::{c_int, c_void};

use tch::{Device, Kind, Tensor};

use crate::error::{AgentError, Result};
use crate::noise::{Noise, TorchNoise};

#[cfg(qamlab_cuda_shim)]
unsafe extern "C" {
    fn qamlab_graph_new(device: c_int, out: *mut *mut c_void) -> *mut c_char;
    fn qamlab_graph_enter_stream(graph: *mut c_void) -> *mut c_char;
    fn qamlab_graph_exit_stream(graph: *mut c_void) -> *mut c_char;
    fn qamlab_graph_capture_begin(graph: *mut c_void) -> *mut c_char;
    fn qamlab_graph_capture_end(graph: *mut c_void) -> *mut c_char;
    fn qamlab_graph_replay(graph: *mut c_void) -> *mut c_char;
    fn qamlab_graph_free(graph: *mut c_void);
}

/// Whether this build contains the CUDA graph shim (it needs the CUDA headers at build time).
pub fn available() -> bool {
    cfg!(qamlab_cuda_shim)
}

fn graph_error(what: &str, reason: impl Into<String>) -> AgentError {
    AgentError::CudaGraph(format!("{what}: {}", reason.into()))
}

/// Turns a shim return value into a `Result`, freeing the message.
#[cfg(qamlab_cuda_shim)]
fn check(what: &str, message: *mut c_char) -> Result<()> {
    crate::shim::take_error(message).map_or(Ok(()), |text| Err(graph_error(what, text)))
}

/// One capturable CUDA graph with its private side stream.
pub struct CudaGraph {
    raw: *mut c_void,
    captured: bool,
}

// SAFETY: the shim object is only touched through `&mut self` / `&self` methods; CUDA graphs and
// streams may be used from any thread.
unsafe impl Send for CudaGraph {}

impl CudaGraph {
    /// A new, empty graph for `device` (which must be a CUDA device).
    pub fn new(device: Device) -> Result<Self> {
        let Device::Cuda(index) = device else {
            return Err(graph_error(
                "creating a graph",
                format!("CUDA graphs need a CUDA device, not {device:?}"),
            ));
        };
        Self::new_on(index as c_int)
    }

    #[cfg(qamlab_cuda_shim)]
    fn new_on(index: c_int) -> Result<Self> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` receives an owned shim object (freed in Drop) on success.
        check("creating a graph", unsafe {
            qamlab_graph_new(index, &mut raw)
        })?;
        Ok(Self {
            raw,
            captured: false,
        })
    }

    #[cfg(not(qamlab_cuda_shim))]
    fn new_on(_index: c_int) -> Result<Self> {
        Err(graph_error(
            "creating a graph",
            "this build has no CUDA graph support (the CUDA headers of the torch wheel were not \
             found when qamlab-agent was built)",
        ))
    }

    /// Runs `f` with the graph's side stream current (e.g. the warm-up before a capture), then
    /// waits for it and restores the previous stream.
    pub fn on_side_stream<T>(&mut self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.enter()?;
        let out = f();
        let exit = self.exit();
        let out = out?;
        exit?;
        Ok(out)
    }

    /// Captures the kernels that `f` enqueues on the side stream (nothing executes); replay them
    /// with [`CudaGraph::replay`]. An error in `f` still ends the capture cleanly.
    pub fn capture<T>(&mut self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if self.captured {
            return Err(graph_error("capturing", "this graph was already captured"));
        }
        self.enter()?;
        let out = self.begin().and_then(|()| {
            let out = f();
            let end = self.end();
            let out = out?;
            end.map(|()| out)
        });
        let exit = self.exit();
        let out = out?;
        exit?;
        self.captured = true;
        Ok(out)
    }

    /// Launches the captured work on the current stream (asynchronously).
    pub fn replay(&self) -> Result<()> {
        if !self.captured {
            return Err(graph_error("replaying", "nothing was captured"));
        }
        self.raw_replay()
    }
}

#[cfg(qamlab_cuda_shim)]
impl CudaGraph {
    fn enter(&mut self) -> Result<()> {
        // SAFETY: `raw` is a live shim object.
        check("entering the side stream", unsafe {
            qamlab_graph_enter_stream(self.raw)
        })
    }
    fn exit(&mut self) -> Result<()> {
        // SAFETY: as above.
        check("leaving the side stream", unsafe {
            qamlab_graph_exit_stream(self.raw)
        })
    }
    fn begin(&mut self) -> Result<()> {
        // SAFETY: as above.
        check("beginning the capture", unsafe {
            qamlab_graph_capture_begin(self.raw)
        })
    }
    fn end(&mut self) -> Result<()> {
        // SAFETY: as above.
        check("ending the capture", unsafe {
            qamlab_graph_capture_end(self.raw)
        })
    }
    fn raw_replay(&self) -> Result<()> {
        // SAFETY: as above.
        check("replaying", unsafe { qamlab_graph_replay(self.raw) })
    }
}

#[cfg(not(qamlab_cuda_shim))]
impl CudaGraph {
    fn enter(&mut self) -> Result<()> {
        Ok(())
    }
    fn exit(&mut self) -> Result<()> {
        Ok(())
    }
    fn begin(&mut self) -> Result<()> {
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
    fn raw_replay(&self) -> Result<()> {
        Ok(())
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        #[cfg(qamlab_cuda_shim)]
        if !self.raw.is_null() {
            // SAFETY: `raw` was created by `qamlab_graph_new` and is freed exactly once.
            unsafe { qamlab_graph_free(self.raw) };
        }
    }
}

/// Captures `y = 2x + 1` on `device`, refills `x` and replays: a minimal end-to-end check that
/// capture and replay work on this machine (used by `qamlab doctor`).
pub fn self_test(device: Device) -> Result<()> {
    let mut graph = CudaGraph::new(device)?;
    let x = Tensor::zeros([4], (Kind::Float, device));
    // Warmed up on the capture's stream first, as the agent's captures are: first-use set-up (kernel
    // loading, per-stream state) is not allowed inside a capture.
    let _ = graph.on_side_stream(|| Ok(&x * 2.0 + 1.0))?;
    let y = graph.capture(|| Ok(&x * 2.0 + 1.0))?;
    let _ = x.shallow_clone().fill_(3.0);
    graph.replay()?;
    let got = y.f_to_device(Device::Cpu)?;
    let values: Vec<f32> = Vec::try_from(&got)?;
    if values.iter().any(|v| *v != 7.0) {
        return Err(graph_error(
            "self-test",
            format!("replay of y = 2x + 1 with x = 3 gave {values:?}"),
        ));
    }
    Ok(())
}

/// Which distribution a recorded draw comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Draw {
    Normal,
    Uniform,
}

/// Noise for captured work: the first (eager) pass draws like [`TorchNoise`] and keeps every
/// draw as a static buffer; afterwards the same buffers are handed out in the same order, and
/// [`StaticNoise::refill`] redraws them in place before each replay. `randn`/`rand` are
/// `empty().normal_()`/`uniform_()` in libtorch, so a replay sees exactly the numbers an eager
/// update with the same `(seed, step, stream)` would draw.
pub struct StaticNoise {
    source: TorchNoise,
    buffers: Vec<(String, Draw, Tensor)>,
    recording: bool,
    cursor: usize,
}

impl StaticNoise {
    /// Starts in recording mode, drawing from torch's generator reseeded like `TorchNoise(seed)`.
    pub fn recording(seed: u64) -> Self {
        Self {
            source: TorchNoise::new(seed),
            buffers: Vec::new(),
            recording: true,
            cursor: 0,
        }
    }

    /// Stops recording: from now on the recorded buffers are handed out, in order.
    pub fn freeze(&mut self) {
        self.recording = false;
        self.cursor = 0;
    }

    /// Reseeds from `(step, stream)` and redraws every buffer in place, in recorded order (the
    /// caller holds [`crate::noise::torch_rng_lock`]).
    pub fn refill(&mut self, step: u64, stream: u64) {
        self.source.reseed(step, stream);
        for (_, draw, buffer) in &mut self.buffers {
            let _ = match draw {
                Draw::Normal => buffer.normal_(0.0, 1.0),
                Draw::Uniform => buffer.uniform_(0.0, 1.0),
            };
        }
        self.rewind();
    }

    /// Hands the buffers out again from the first, as they are (not redrawn).
    pub fn rewind(&mut self) {
        self.cursor = 0;
    }

    fn take(&mut self, draw: Draw, label: &str, shape: &[i64], device: Device) -> Result<Tensor> {
        if self.recording {
            let t = match draw {
                Draw::Normal => self.source.normal(label, shape, device)?,
                Draw::Uniform => self.source.uniform(label, shape, device)?,
            };
            self.buffers
                .push((label.to_string(), draw, t.shallow_clone()));
            return Ok(t);
        }
        let (name, kind, buffer) = self.buffers.get(self.cursor).ok_or_else(|| {
            graph_error(
                "static noise",
                format!("draw {label} {shape:?} was not made when the graph was recorded"),
            )
        })?;
        if name != label || *kind != draw || buffer.size() != shape {
            return Err(graph_error(
                "static noise",
                format!(
                    "draw {} was recorded as {name} {:?}, requested {label} {shape:?}",
                    self.cursor,
                    buffer.size()
                ),
            ));
        }
        self.cursor += 1;
        Ok(buffer.shallow_clone())
    }
}

impl Noise for StaticNoise {
    fn normal(&mut self, label: &str, shape: &[i64], device: Device) -> Result<Tensor> {
        self.take(Draw::Normal, label, shape, device)
    }

    fn uniform(&mut self, label: &str, shape: &[i64], device: Device) -> Result<Tensor> {
        self.take(Draw::Uniform, label, shape, device)
    }

    fn reseed(&mut self, step: u64, stream: u64) {
        self.source.reseed(step, stream);
    }

    fn uses_global_torch_rng(&self) -> bool {
        true
    }
}

/// `‖got − expected‖ / ‖expected − origin‖` (origin zero if `None`): how far `got` lies from
/// `expected`, relative to the size of the change that led from `origin` to `expected`. NaN-safe
/// (a NaN gives infinity); 0 when both are equal. A host synchronisation: used once per capture.
pub fn relative_difference(
    got: &Tensor,
    expected: &Tensor,
    origin: Option<&Tensor>,
) -> Result<f64> {
    if got.numel() == 0 {
        return Ok(0.0);
    }
    let norm =
        |t: Tensor| -> Result<f64> { Ok(t.to_kind(Kind::Double).f_norm()?.f_double_value(&[])?) };
    let gap = norm(got - expected)?;
    if gap == 0.0 {
        return Ok(0.0);
    }
    let scale = match origin {
        Some(o) => norm(expected - o)?,
        None => norm(expected.shallow_clone())?,
    };
    let rel = gap / scale;
    Ok(if rel.is_nan() { f64::INFINITY } else { rel })
}
