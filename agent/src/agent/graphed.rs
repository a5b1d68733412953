//! [`Agent::update`] and [`Agent::sample_actions`] replayed from CUDA graphs.
//!
//! The first graphed call does its work eagerly on the graph's side stream (which also warms up
//! the per-stream state capture needs), recording its random draws; then it rewinds the agent,
//! captures the same work, replays it with the same draws and checks that the replay reproduces
//! the eager result (a kernel missing from the capture). The next call, at another step, is
//! replayed and checked against eager work once more (a value the capture baked in: a step count,
//! a seed). Only then is the graph trusted; any failure turns graphs off for this agent with the
//! reason kept in [`Agent::cuda_graph_fallback`], and work continues eagerly. Either way every
//! call does its work exactly once, and what it leaves is the eager result.

use tch::{Device, Kind, Tensor};

use super::{Agent, StepMode};
use crate::cuda_graph::{self, CudaGraph, StaticNoise, relative_difference};
use crate::data::Batch;
use crate::error::{AgentError, Result};
use crate::metrics::{Trace, UpdateMetrics};
use crate::noise::torch_rng_lock;
use crate::precision;

/// Largest relative difference (to the size of the step the eager update took) between a replay
/// and eager work. A replay runs the very kernels of the eager pass on the same inputs, so the two
/// agree to the bit in practice, or to rounding where a kernel reduces in another order; a stale
/// input or a missed draw changes the step by about its own size (relative difference ~1).
const TOLERANCE: f64 = 1e-4;

/// Replays checked against eager work after the capture's own check.
const VERIFIED_REPLAYS: u8 = 1;

/// Acting graphs kept at once (one per batch size: the training envs, the eval envs, ...).
const MAX_ACT_GRAPHS: usize = 4;

/// The captured graphs of one agent.
#[derive(Default)]
pub(super) struct Graphs {
    update: Option<GraphedUpdate>,
    acts: Vec<GraphedAct>,
    /// Graphs emulated on any device (see [`Agent::emulate_cuda_graphs`]).
    emulation: Option<GraphEmulation>,
}

/// How [`Agent::emulate_cuda_graphs`] stands in for capture and replay.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphEmulation {
    /// Replays run the captured body again on the same static buffers.
    Faithful,
    /// As `Faithful`, but replays forget to refill their draws: the fault a graph that baked its
    /// random numbers in at capture would have (the checks must catch it).
    StaleDraws,
}

/// Where captured work lives: a real CUDA graph, or (emulation) nowhere: a "replay" runs the
/// body again on the same static buffers.
enum Captured {
    Cuda(CudaGraph),
    Emulated,
}

impl Captured {
    fn new(device: Device, emulation: Option<GraphEmulation>) -> Result<Self> {
        Ok(if emulation.is_some() {
            Self::Emulated
        } else {
            Self::Cuda(CudaGraph::new(device)?)
        })
    }

    fn on_side_stream<T>(&mut self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        match self {
            Self::Cuda(g) => g.on_side_stream(f),
            Self::Emulated => f(),
        }
    }

    /// Captures `f` on a CUDA device; emulation runs nothing now (its replays run the body).
    fn capture(&mut self, f: impl FnOnce() -> Result<()>) -> Result<()> {
        match self {
            Self::Cuda(g) => g.capture(f),
            Self::Emulated => Ok(()),
        }
    }
}

/// A captured update: static inputs refilled before each replay, static outputs read after.
struct GraphedUpdate {
    graph: Captured,
    batch: Batch,
    noise: StaticNoise,
    metrics: UpdateMetrics,
    /// Replays still to be checked against eager work.
    unverified: u8,
}

/// A captured acting call for one batch size.
struct GraphedAct {
    graph: Captured,
    obs: Tensor,
    noise: StaticNoise,
    actions: Tensor,
    /// Replays still to be checked against eager work.
    unverified: u8,
}

/// Copies of everything an update changes.
struct Snapshot {
    flat: Tensor,
    targets: Tensor,
    mu: Tensor,
    nu: Tensor,
    step: u64,
    count: u64,
}

fn batch_fields(b: &Batch) -> [&Tensor; 7] {
    [
        &b.observations,
        &b.actions,
        &b.rewards,
        &b.masks,
        &b.valid,
        &b.terminals,
        &b.next_observations,
    ]
}

/// The batch as tensors of its own on `device` (not aliasing the caller's).
fn own_batch(b: &Batch, device: Device) -> Batch {
    let own = |t: &Tensor| t.to_kind(Kind::Float).to_device(device).copy();
    Batch {
        observations: own(&b.observations),
        actions: own(&b.actions),
        rewards: own(&b.rewards),
        masks: own(&b.masks),
        valid: own(&b.valid),
        terminals: own(&b.terminals),
        next_observations: own(&b.next_observations),
    }
}

impl Agent {
    /// Turns CUDA graphs on (or off) for updates and acting. Needs a CUDA device, a build with
    /// the graph shim and the agent's own seeded noise source. Graphs are captured lazily, per
    /// batch shape, and each is checked against eager work before it is trusted; if anything
    /// fails the agent goes on eagerly and says why in [`Agent::cuda_graph_fallback`].
    /// A refusal is also kept as the fall-back reason (see [`Agent::execution`]).
    pub fn use_cuda_graphs(&mut self, on: bool) -> Result<()> {
        if !on {
            self.graphs = None;
            return Ok(());
        }
        let refused = if !matches!(self.device, Device::Cuda(_)) {
            format!(
                "CUDA graphs need a CUDA device; this agent is on {:?}",
                self.device
            )
        } else if !cuda_graph::available() {
            "this build has no CUDA graph support (rebuild with the torch wheel's CUDA headers)"
                .into()
        } else {
            return self.graphs_on(None);
        };
        let e = AgentError::CudaGraph(refused);
        self.graph_fallback = Some(e.to_string());
        Err(e)
    }

    /// Runs the graph machinery on any device with capture and replay emulated (see
    /// [`GraphEmulation`]): everything but the capture itself (static inputs, noise refills, the
    /// split Adam step, the checks against eager work, the fall-back) can then be tested on a CPU.
    #[doc(hidden)]
    pub fn emulate_cuda_graphs(&mut self, emulation: GraphEmulation) -> Result<()> {
        self.graphs_on(Some(emulation))
    }

    fn graphs_on(&mut self, emulation: Option<GraphEmulation>) -> Result<()> {
        if self.noise.torch_seed().is_none() {
            return Err(AgentError::CudaGraph(
                "CUDA graphs reproduce only the agent's own seeded noise source".into(),
            ));
        }
        self.graphs = Some(Graphs {
            emulation,
            ..Graphs::default()
        });
        self.graph_fallback = None;
        Ok(())
    }

    /// Whether updates and acting currently run from CUDA graphs.
    pub fn cuda_graphs_active(&self) -> bool {
        self.graphs.is_some()
    }

    /// Why CUDA graphs were turned off after [`Agent::use_cuda_graphs`] turned them on, if they were.
    pub fn cuda_graph_fallback(&self) -> Option<&str> {
        self.graph_fallback.as_deref()
    }

    /// How updates and acting run: `eager`, `cuda graphs`, or `eager (CUDA graph failed: …)`,
    /// followed by `, TF32 matmuls` on a CUDA device whose float32 matmuls may use TF32.
    pub fn execution(&self) -> String {
        let mut how = match (&self.graph_fallback, self.graphs.is_some()) {
            (Some(reason), _) => format!("eager (CUDA graph failed: {reason})"),
            (None, true) => "cuda graphs".into(),
            (None, false) => "eager".into(),
        };
        if self.device.is_cuda() && precision::tf32_matmuls().unwrap_or(false) {
            how.push_str(", TF32 matmuls");
        }
        if self.splits_updates() {
            how.push_str(", updates on 2 threads");
        }
        how
    }

    fn graphs_off(&mut self, reason: AgentError) {
        self.graphs = None;
        // Its first line: libtorch's messages carry a C++ backtrace after it, which would spread one
        // table row or log line over dozens.
        let reason = reason.to_string();
        let first = reason.lines().next().unwrap_or_default().trim_end();
        self.graph_fallback = Some(first.to_string());
        tracing::warn!("CUDA graphs turned off, updates and acting go on eagerly: {first}");
    }

    fn graphs(&mut self) -> &mut Graphs {
        self.graphs.as_mut().expect("graphs are on")
    }

    fn emulation(&self) -> Option<GraphEmulation> {
        self.graphs.as_ref().and_then(|g| g.emulation)
    }

    /// A graph to capture into, or `None` with graphs turned off if none can be made.
    fn new_graph(&mut self) -> Option<Captured> {
        match Captured::new(self.device, self.emulation()) {
            Ok(g) => Some(g),
            Err(e) => {
                self.graphs_off(e);
                None
            }
        }
    }

    fn seed_for_graphs(&self) -> u64 {
        self.noise
            .torch_seed()
            .expect("graphs_on checked the noise source")
    }

    /// Redraws the static draws of a graph for `(step, stream)` before its replay.
    fn refill(&self, noise: &mut StaticNoise, step: u64, stream: u64) {
        if self.emulation() == Some(GraphEmulation::StaleDraws) {
            noise.rewind();
        } else {
            let _rng = torch_rng_lock();
            noise.refill(step, stream);
        }
    }

    fn snapshot(&self) -> Snapshot {
        let (mu, nu) = self.adam.state();
        Snapshot {
            flat: self.nets.flat.detach().copy(),
            targets: self.nets.flat_targets.copy(),
            mu: mu.copy(),
            nu: nu.copy(),
            step: self.step,
            count: self.adam.count,
        }
    }

    fn restore(&mut self, s: &Snapshot) {
        let (mu, nu) = self.adam.state();
        tch::no_grad(|| {
            for (dst, src) in [
                (&self.nets.flat, &s.flat),
                (&self.nets.flat_targets, &s.targets),
                (mu, &s.mu),
                (nu, &s.nu),
            ] {
                dst.shallow_clone().copy_(src);
            }
        });
        self.step = s.step;
        self.adam.count = s.count;
    }

    /// An error if the agent's state is not `expected` (what one update from `before` gave the
    /// other way), relative to the size of that update.
    fn check_update(&self, expected: &Snapshot, before: &Snapshot) -> Result<()> {
        if (self.step, self.adam.count) != (expected.step, expected.count) {
            return Err(AgentError::CudaGraph(format!(
                "the replayed update left step {} (Adam count {}), the eager one {} ({})",
                self.step, self.adam.count, expected.step, expected.count
            )));
        }
        let (mu, nu) = self.adam.state();
        for (name, got, want, origin) in [
            ("parameters", &self.nets.flat, &expected.flat, &before.flat),
            (
                "target parameters",
                &self.nets.flat_targets,
                &expected.targets,
                &before.targets,
            ),
            ("Adam first moments", mu, &expected.mu, &before.mu),
            ("Adam second moments", nu, &expected.nu, &before.nu),
        ] {
            let rel = relative_difference(got, want, Some(origin))?;
            if rel > TOLERANCE {
                return Err(AgentError::CudaGraph(format!(
                    "the replayed update differs from the eager one in its {name} (relative \
                     difference {rel:.3e}, tolerance {TOLERANCE:e})"
                )));
            }
        }
        Ok(())
    }

    /// The update from the graph for this batch shape, capturing it first if there is none.
    /// `Ok(None)`: nothing was done (no usable graph); the caller runs the eager update.
    pub(super) fn update_graphed(&mut self, batch: &Batch) -> Result<Option<UpdateMetrics>> {
        let Some(mut g) = self.graphs().update.take() else {
            return self.capture_update(batch);
        };
        let same_shapes = batch_fields(&g.batch)
            .iter()
            .zip(batch_fields(batch))
            .all(|(a, b)| a.size() == b.size());
        if !same_shapes {
            self.graphs().update = Some(g);
            return Ok(None);
        }
        for (dst, src) in batch_fields(&g.batch).into_iter().zip(batch_fields(batch)) {
            dst.shallow_clone().f_copy_(src)?;
        }
        let before = (g.unverified > 0).then(|| self.snapshot());
        self.replay_update(&mut g, self.step)?;
        let Some(before) = before else {
            let metrics = g.metrics.snapshot()?;
            self.graphs().update = Some(g);
            return Ok(Some(metrics));
        };
        // Checked replay: keep what it left, do the update eagerly from the same state, compare.
        let replayed = self.snapshot();
        self.restore(&before);
        let metrics = self.update_traced(batch, &mut Trace::disabled())?;
        match self.check_update(&replayed, &before) {
            Ok(()) => {
                g.unverified -= 1;
                self.graphs().update = Some(g);
            }
            Err(e) => self.graphs_off(e),
        }
        Ok(Some(metrics))
    }

    /// The device work of one update on the static batch and draws of `g`.
    fn update_body(
        &mut self,
        batch: &Batch,
        noise: &mut StaticNoise,
        metrics: &mut UpdateMetrics,
    ) -> Result<()> {
        let mut trace = Trace::disabled();
        let total = self.losses(batch, noise, metrics, &mut trace)?;
        self.apply_gradients(&total, None, StepMode::Captured, metrics, &mut trace)
    }

    /// Step `step` from the graph of `g`: the host half (draws, Adam's bias corrections, the step
    /// counter) around one replay of the device half.
    fn replay_update(&mut self, g: &mut GraphedUpdate, step: u64) -> Result<()> {
        self.refill(&mut g.noise, step, 0);
        self.adam.prepare();
        match &g.graph {
            Captured::Cuda(graph) => graph.replay()?,
            Captured::Emulated => {
                let mut metrics = UpdateMetrics::default();
                self.update_body(&g.batch, &mut g.noise, &mut metrics)?;
                g.metrics = metrics;
            }
        }
        self.step += 1;
        Ok(())
    }

    fn capture_update(&mut self, batch: &Batch) -> Result<Option<UpdateMetrics>> {
        let Some(mut graph) = self.new_graph() else {
            return Ok(None);
        };
        let batch = own_batch(batch, self.device);
        let mut noise = StaticNoise::recording(self.seed_for_graphs());
        let before = self.snapshot();
        let eager =
            graph.on_side_stream(|| self.eager_update(&batch, &mut noise, &mut Trace::disabled()));
        let metrics = match eager {
            Ok(m) => m,
            Err(e @ AgentError::CudaGraph(_)) if self.step == before.step => {
                self.graphs_off(e);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let after = self.snapshot();
        match self.capture_checked_update(graph, batch, noise, &before, &after) {
            Ok(g) => self.graphs().update = Some(g),
            Err(e) => self.graphs_off(e),
        }
        // Whatever the capture did, the agent leaves with the eager result.
        self.restore(&after);
        Ok(Some(metrics))
    }

    /// Rewinds to `before`, captures the update of `batch`, replays it with the recorded draws
    /// and checks that it lands on `after` (the eager result).
    fn capture_checked_update(
        &mut self,
        mut graph: Captured,
        batch: Batch,
        mut noise: StaticNoise,
        before: &Snapshot,
        after: &Snapshot,
    ) -> Result<GraphedUpdate> {
        self.restore(before);
        noise.freeze();
        let mut metrics = UpdateMetrics::default();
        graph.capture(|| self.update_body(&batch, &mut noise, &mut metrics))?;
        let mut g = GraphedUpdate {
            graph,
            batch,
            noise,
            metrics,
            unverified: VERIFIED_REPLAYS,
        };
        self.replay_update(&mut g, before.step)?;
        self.check_update(after, before)?;
        Ok(g)
    }

    /// Acting from the graph for this many observations, capturing it first if there is none.
    /// `Ok(None)`: nothing was done; the caller acts eagerly (same draws: same result).
    pub(super) fn act_graphed(&mut self, obs: &Tensor) -> Result<Option<Tensor>> {
        let rows = obs.size()[0];
        let graphs = self.graphs();
        let Some(i) = graphs.acts.iter().position(|g| g.obs.size()[0] == rows) else {
            return self.capture_act(obs);
        };
        let mut g = graphs.acts.remove(i);
        g.obs.shallow_clone().f_copy_(obs)?;
        self.replay_act(&mut g)?;
        let actions = g.actions.copy();
        if g.unverified == 0 {
            self.graphs().acts.push(g);
            return Ok(Some(actions));
        }
        let eager = self.act_eagerly(obs)?;
        match check_actions(&actions, &eager) {
            Ok(()) => {
                g.unverified -= 1;
                self.graphs().acts.push(g);
            }
            Err(e) => self.graphs_off(e),
        }
        Ok(Some(eager))
    }

    /// The current acting call from the graph of `g` (its draws refilled first).
    fn replay_act(&self, g: &mut GraphedAct) -> Result<()> {
        self.refill(&mut g.noise, self.step, self.act_calls);
        match &g.graph {
            Captured::Cuda(graph) => graph.replay(),
            Captured::Emulated => {
                g.actions = self.act_drawing_from(&g.obs, &mut g.noise)?;
                Ok(())
            }
        }
    }

    fn capture_act(&mut self, obs: &Tensor) -> Result<Option<Tensor>> {
        let Some(mut graph) = self.new_graph() else {
            return Ok(None);
        };
        let obs = obs.to_kind(Kind::Float).to_device(self.device).copy();
        let mut noise = StaticNoise::recording(self.seed_for_graphs());
        let actions = match graph.on_side_stream(|| self.eager_act(&obs, &mut noise)) {
            Ok(a) => a,
            Err(e @ AgentError::CudaGraph(_)) => {
                self.graphs_off(e);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match self.capture_checked_act(graph, obs, noise, &actions) {
            Ok(g) => {
                let acts = &mut self.graphs().acts;
                if acts.len() == MAX_ACT_GRAPHS {
                    acts.remove(0);
                }
                acts.push(g);
            }
            Err(e) => self.graphs_off(e),
        }
        Ok(Some(actions))
    }

    fn capture_checked_act(
        &self,
        mut graph: Captured,
        obs: Tensor,
        mut noise: StaticNoise,
        eager: &Tensor,
    ) -> Result<GraphedAct> {
        noise.freeze();
        let mut actions = Tensor::zeros([0], (Kind::Float, self.device));
        graph.capture(|| {
            actions = self.act_drawing_from(&obs, &mut noise)?;
            Ok(())
        })?;
        let mut g = GraphedAct {
            graph,
            obs,
            noise,
            actions,
            unverified: VERIFIED_REPLAYS,
        };
        self.replay_act(&mut g)?;
        check_actions(&g.actions, eager)?;
        Ok(g)
    }
}

/// An error if replayed actions differ from the eager ones of the same call.
fn check_actions(replayed: &Tensor, eager: &Tensor) -> Result<()> {
    let rel = relative_difference(replayed, eager, None)?;
    if rel > TOLERANCE {
        return Err(AgentError::CudaGraph(format!(
            "replayed actions differ from the eager ones (relative difference {rel:.3e}, \
             tolerance {TOLERANCE:e})"
        )));
    }
    Ok(())
}
