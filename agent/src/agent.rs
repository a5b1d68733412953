//! The agent: its networks, one optimiser, the update that composes the losses of the chosen
//! variant, and acting.
//!
//! Here: [`Agent`], its construction and the eager update. Beside it: `nets` (the networks an
//! agent holds), `losses` (an update's critic and policy halves), `split_update` (the critic half
//! on a helper thread), `sampling` (acting) and `graphed` (CUDA graph capture and replay).

use tch::{Device, Kind, Tensor};

use crate::config::{AgentConfig, AgentKind};
use crate::data::Batch;
use crate::error::{AgentError, Result};
use crate::metrics::{Trace, UpdateMetrics};
use crate::networks::{NamedTensor, slot_len};
use crate::noise::{Noise, TorchNoise};
use crate::optim::Adam;
use crate::qam::QFn;

mod graphed;
mod losses;
mod nets;
mod sampling;
mod split_update;

#[doc(hidden)]
pub use graphed::GraphEmulation;
pub use nets::Nets;

use losses::{FlowLossAt, critic_half, draw_next_actions, policy_half, total_loss};

/// A QAM / QAM-F / QAM-E / FQL / flow-BC agent on one device.
pub struct Agent {
    pub(crate) cfg: AgentConfig,
    pub(crate) obs_dim: usize,
    pub(crate) action_dim: usize,
    pub(crate) device: Device,
    pub(crate) seed: u64,
    pub(crate) step: u64,
    pub(crate) act_calls: u64,
    pub(crate) nets: Nets,
    pub(crate) adam: Adam,
    noise: Box<dyn Noise>,
    /// Captured CUDA graphs, when they are on (see [`Agent::use_cuda_graphs`]).
    graphs: Option<graphed::Graphs>,
    /// Why CUDA graphs were turned off after being asked for, if they were.
    graph_fallback: Option<String>,
    /// Whether CPU updates share their work with a second thread ([`Agent::set_split_update`]).
    split_update: bool,
    /// That thread, started by the first split update and kept for the next ones.
    helper: Option<rayon_core::ThreadPool>,
}

/// How [`Agent::apply_gradients`] runs: eagerly (host bookkeeping included) or as the body of a
/// CUDA graph capture (device work only; the caller does the host half before each replay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepMode {
    Eager,
    Captured,
}

impl Agent {
    /// Validates `cfg` and builds a freshly initialised agent (torch generator seeded with `seed`;
    /// draws come from a [`TorchNoise`] with the same seed).
    pub fn new(
        cfg: AgentConfig,
        obs_dim: usize,
        action_dim: usize,
        device: Device,
        seed: u64,
    ) -> Result<Agent> {
        cfg.validate()?;
        for (field, dim) in [("obs_dim", obs_dim), ("action_dim", action_dim)] {
            // The bound catches a corrupt checkpoint before libtorch is asked for an impossible allocation.
            if !(1..=crate::config::MAX_WIDTH).contains(&dim) {
                return Err(AgentError::Config {
                    field: field.into(),
                    reason: format!("must be from 1 to {}, got {dim}", crate::config::MAX_WIDTH),
                });
            }
        }
        // Before any capture: the check synchronises the device (and draws nothing).
        crate::gelu::check_cuda_dense_gelu(device);
        let _rng = crate::noise::torch_rng_lock();
        // libtorch's CPU generator (an mt19937) keeps only the low 32 bits of its seed: the high half is folded
        // in, so that seeds differing only there start from other weights (seeds below 2^32 are unchanged).
        // CUDA's generators (Philox) keep all 64 bits: they get the seed whole.
        tch::manual_seed(((seed ^ (seed >> 32)) & 0xffff_ffff) as i64);
        if device.is_cuda() {
            tch::Cuda::manual_seed_all(seed);
        }
        let d = cfg.policy_dim(action_dim);
        let nets = Nets::new(&cfg, obs_dim, d, device);
        let max_norm = cfg.clip_grad_enabled().then_some(1.0);
        let adam = Adam::new(&nets.flat, &nets.trainable(), cfg.lr, max_norm);
        Ok(Agent {
            cfg,
            obs_dim,
            action_dim,
            device,
            seed,
            step: 0,
            act_calls: 0,
            nets,
            adam,
            noise: Box::new(TorchNoise::new(seed)),
            graphs: None,
            graph_fallback: None,
            split_update: true,
            helper: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    /// The seed the agent was created with (its initialisation and noise streams derive from it).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Gradient steps taken so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The largest count (updates, optimizer steps, acting calls) a saved agent may record: far beyond any run
    /// (2^53, the whole numbers a JSON reader keeps exact), so a larger one is damage, refused on loading before
    /// a count carried past u64 could overflow.
    pub const MAX_COUNT: u64 = 1 << 53;

    /// Acting calls made so far: where the acting draws stand (each call's noise is seeded from it).
    pub fn acting_position(&self) -> u64 {
        self.act_calls
    }

    /// Sets where the acting draws stand (an [`Agent::acting_position`] recorded before): back, as if the calls
    /// made since had not been (an evaluation given up midway), or forward to a record of calls made since the
    /// agent was saved.
    pub fn set_acting_position(&mut self, position: u64) {
        self.act_calls = position;
    }

    /// The device every tensor lives on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Observation dimension `O`.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Environment action dimension `A`.
    pub fn action_dim(&self) -> usize {
        self.action_dim
    }

    /// Policy output dimension `D` (`H·A` with chunking).
    pub fn policy_dim(&self) -> usize {
        self.cfg.policy_dim(self.action_dim)
    }

    /// The networks (read-only; e.g. to evaluate a field or the critic).
    pub fn nets(&self) -> &Nets {
        &self.nets
    }

    /// Replaces the randomness source (e.g. a [`crate::ReplayNoise`] in tests).
    /// CUDA graphs need the seeded torch source and are turned off by this.
    pub fn set_noise(&mut self, noise: Box<dyn Noise>) {
        self.noise = noise;
        self.graphs = None;
    }

    /// Every parameter (online and target) under its reference name; handles share storage.
    pub fn parameters(&self) -> Vec<NamedTensor> {
        self.nets.all()
    }

    /// Adam moments `(name, μ, ν)` of the trainable parameters and the optimiser step count.
    pub fn optimizer_state(&self) -> (&[(String, Tensor, Tensor)], u64) {
        (&self.adam.moments, self.adam.count)
    }

    /// Overwrites parameters by name. Every parameter of the agent must be given with its exact
    /// shape; names the agent does not have are an error too.
    pub fn set_parameters(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        let own = self.parameters();
        for (name, _) in named {
            if !own.iter().any(|(n, _)| n == name) {
                return Err(AgentError::Parameter {
                    name: name.clone(),
                    reason: "not a parameter of this agent".into(),
                });
            }
        }
        for (name, mut dst) in own {
            let src = &named
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| AgentError::Parameter {
                    name: name.clone(),
                    reason: "missing".into(),
                })?
                .1;
            if src.size() != dst.size() {
                return Err(AgentError::Parameter {
                    name,
                    reason: format!("expected shape {:?}, got {:?}", dst.size(), src.size()),
                });
            }
            tch::no_grad(|| dst.f_copy_(&src.to_kind(Kind::Float)))?;
        }
        Ok(())
    }

    /// One gradient step on `batch` (spec §3–§5). Returns lazily-read metrics.
    ///
    /// Non-finite losses: on CPU the losses are checked before any parameter changes and an error
    /// naming the loss is returned (the step is not applied). On an accelerator the check would
    /// force a host sync, so it is left to the caller: call [`UpdateMetrics::check_finite`] when
    /// reading the metrics (e.g. every log interval).
    ///
    /// With CUDA graphs on ([`Agent::use_cuda_graphs`]) the update is replayed from a graph; the
    /// returned metrics are then a snapshot taken after the replay.
    pub fn update(&mut self, batch: &Batch) -> Result<UpdateMetrics> {
        if self.graphs.is_some() {
            self.check_batch(batch)?;
            if let Some(metrics) = self.update_graphed(batch)? {
                return Ok(metrics);
            }
        }
        self.update_traced(batch, &mut Trace::disabled())
    }

    fn check_batch(&self, batch: &Batch) -> Result<()> {
        batch.validate(self.obs_dim, self.action_dim)?;
        if batch.horizon() != self.cfg.horizon_length as i64 {
            return Err(crate::error::shape_error(
                "batch.actions",
                &[
                    batch.len(),
                    self.cfg.horizon_length as i64,
                    self.action_dim as i64,
                ],
                &batch.actions.size(),
            ));
        }
        Ok(())
    }

    /// [`Agent::update`] that also records every named intermediate, gradient (`grad/<name>`) and
    /// the global gradient norm into `trace`.
    pub fn update_traced(&mut self, batch: &Batch, trace: &mut Trace) -> Result<UpdateMetrics> {
        self.check_batch(batch)?;
        let batch = &batch.to_device(self.device);
        let mut noise = std::mem::replace(&mut self.noise, Box::new(crate::noise::NoDraws));
        let out = self.eager_update(batch, noise.as_mut(), trace);
        self.noise = noise;
        out
    }

    /// One eager update of the (device-resident) `batch` drawing from `noise`.
    fn eager_update(
        &mut self,
        batch: &Batch,
        noise: &mut dyn Noise,
        trace: &mut Trace,
    ) -> Result<UpdateMetrics> {
        let _rng = noise
            .uses_global_torch_rng()
            .then(crate::noise::torch_rng_lock);
        noise.reseed(self.step, 0);
        let mut metrics = UpdateMetrics::default();
        if self.splits_updates() && self.start_helper() {
            self.split_update_step(batch, noise, &mut metrics, trace)?;
            return Ok(metrics);
        }
        let total = self.losses(batch, noise, &mut metrics, trace)?;
        self.apply_gradients(&total, None, StepMode::Eager, &mut metrics, trace)?;
        Ok(metrics)
    }

    /// Builds the total loss of the configured variant (§4.5) and fills `metrics`.
    fn losses(
        &self,
        batch: &Batch,
        noise: &mut dyn Noise,
        metrics: &mut UpdateMetrics,
        trace: &mut Trace,
    ) -> Result<Tensor> {
        let (nets, cfg, d) = (&self.nets, &self.cfg, self.policy_dim() as i64);
        let critic = draw_next_actions(nets, cfg, d, batch, noise)?
            .map(|next| critic_half(nets, cfg, d, batch, &next, metrics, trace));
        let terms = policy_half(
            nets,
            cfg,
            d,
            batch,
            noise,
            FlowLossAt::Here,
            None,
            metrics,
            trace,
        )?;
        let total = total_loss(critic.as_ref(), &terms);
        trace.record("total_loss", &total);
        Ok(total)
    }

    /// Backward of `total` w.r.t. the trainable parameters (only those named in `only`, the rest
    /// get zero gradient), then [`Agent::finish_step`].
    fn apply_gradients(
        &mut self,
        total: &Tensor,
        only: Option<&[&str]>,
        mode: StepMode,
        metrics: &mut UpdateMetrics,
        trace: &mut Trace,
    ) -> Result<()> {
        let params = self.nets.trainable();
        let inputs: Vec<&Tensor> = params.iter().map(|(_, p)| p).collect();
        let grads = Tensor::f_run_backward(&[total], &inputs, false, false)?;
        self.finish_step(total, &params, grads, only, mode, metrics, trace)
    }

    /// With `grads` (one per trainable parameter, in order; undefined means zero): the loss
    /// check, Polyak targets from the pre-step parameters, then the Adam step.
    #[allow(clippy::too_many_arguments)]
    fn finish_step(
        &mut self,
        total: &Tensor,
        params: &[NamedTensor],
        grads: Vec<Tensor>,
        only: Option<&[&str]>,
        mode: StepMode,
        metrics: &mut UpdateMetrics,
        trace: &mut Trace,
    ) -> Result<()> {
        metrics.push("total_loss", total);
        if mode == StepMode::Eager && self.device == Device::Cpu {
            metrics.check_finite()?;
        }
        let flat = &self.nets.flat;
        let mut pieces = Vec::with_capacity(params.len());
        for ((name, p), g) in params.iter().zip(grads) {
            let excluded =
                only.is_some_and(|prefixes| !prefixes.iter().any(|q| name.starts_with(q)));
            let g = if g.defined() && !excluded {
                g
            } else {
                p.zeros_like()
            };
            trace.record(format!("grad/{name}"), &g);
            let n = g.numel() as i64;
            pieces.push(g.reshape([-1]));
            if slot_len(n) > n {
                pieces.push(self.nets.slot_padding.narrow(0, 0, slot_len(n) - n));
            }
        }
        // one flat gradient, laid out like `flat` (zero between the slots)
        let grad = Tensor::cat(&pieces, 0);
        tch::no_grad(|| {
            for (prefix, offset, len) in &self.nets.polyak_ranges {
                if only.is_none_or(|prefixes| prefixes.contains(&prefix.as_str())) {
                    let mut target = self.nets.flat_targets.narrow(0, *offset, *len);
                    let _ = target.lerp_(&flat.narrow(0, *offset, *len), self.cfg.tau);
                }
            }
        });
        let norm = match mode {
            StepMode::Eager => self.adam.step(flat, &grad),
            StepMode::Captured => self.adam.apply(flat, &grad),
        };
        trace.record("grad_global_norm", &norm);
        metrics.push("grad_norm", &norm);
        if mode == StepMode::Eager {
            self.step += 1;
        }
        Ok(())
    }

    /// Trains only the policy against a given Q function (critic untouched): BC flow loss for
    /// `actor_slow` plus adjoint matching of `actor_fast` with `q` in place of the target critic
    /// (`q: (obs, action) → [K, B]`, constant). Targets of `actor_slow` are Polyak-updated; the
    /// critic parameters receive zero gradient. Plain QAM only (the other variants' extra terms
    /// read the learned critic).
    pub fn update_policy_against(&mut self, batch: &Batch, q: QFn<'_>) -> Result<UpdateMetrics> {
        if self.cfg.kind != AgentKind::Qam {
            return Err(AgentError::Config {
                field: "kind".into(),
                reason: format!(
                    "update_policy_against needs a plain QAM agent (kind \"qam\"), not {:?}",
                    self.cfg.kind.as_str()
                ),
            });
        }
        self.check_batch(batch)?;
        let batch = &batch.to_device(self.device);
        let _rng = self
            .noise
            .uses_global_torch_rng()
            .then(crate::noise::torch_rng_lock);
        self.noise.reseed(self.step, 0);
        let d = self.policy_dim() as i64;
        let mut metrics = UpdateMetrics::default();
        let mut trace = Trace::disabled();
        let terms = policy_half(
            &self.nets,
            &self.cfg,
            d,
            batch,
            self.noise.as_mut(),
            FlowLossAt::Here,
            Some(q),
            &mut metrics,
            &mut trace,
        )?;
        let total = total_loss(None, &terms);
        self.apply_gradients(
            &total,
            Some(&["actor_slow/", "actor_fast/"]),
            StepMode::Eager,
            &mut metrics,
            &mut trace,
        )?;
        Ok(metrics)
    }
}
