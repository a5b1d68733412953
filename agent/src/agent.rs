//! The agent: its networks, one optimiser, the update that composes the losses of the chosen
//! variant, and acting.

use std::sync::mpsc::{self, Receiver};

use tch::{Device, Kind, Tensor};

use crate::acting::{self, ActionNoise};
use crate::config::{AgentConfig, AgentKind};
use crate::data::Batch;
use crate::error::{AgentError, Result};
use crate::fql::fql_actor_loss;
use crate::metrics::{Trace, UpdateMetrics};
use crate::networks::{
    Critic, EditActor, NamedTensor, Parameters, Temperature, VectorField, copy_parameters,
    flatten_parameters,
};
use crate::noise::{Noise, TorchNoise};
use crate::optim::Adam;
use crate::qam::{self, QFn, batch_actions, last};

mod graphed;

#[doc(hidden)]
pub use graphed::GraphEmulation;

/// Calls macro `$m` with the trainable networks of [`Nets`] in optimiser order: the one list that the flat
/// parameter buffer (`Nets::new`) and the parameter names (`Nets::trainable`) both follow, so they cannot part.
macro_rules! trainable_networks {
    ($m:ident) => {
        $m!(
            critic,
            actor_slow,
            actor_fast,
            one_step_actor,
            edit_actor,
            edit_alpha
        )
    };
}

/// Every network an agent may own; which ones exist depends on [`AgentKind`].
///
/// FQL and BC keep their BC flow actor in `actor_slow` (named `actor_bc_flow`) and FQL its
/// one-step actor in `one_step_actor` (named `actor_onestep_flow`), as in `agents/fql.py`.
/// QAM's `target_actor_fast` is never read by the reference and is not built.
pub struct Nets {
    /// Online critic ensemble (`critic`); absent for BC.
    pub critic: Option<Critic>,
    /// Polyak copy of the critic (`target_critic`).
    pub target_critic: Option<Critic>,
    /// Behaviour flow policy trained by BC (`actor_slow`, or `actor_bc_flow` for FQL/BC).
    pub actor_slow: Option<VectorField>,
    /// Polyak copy of `actor_slow`: the base model of adjoint matching (QAM variants).
    pub target_actor_slow: Option<VectorField>,
    /// The acting flow policy trained by adjoint matching (QAM variants).
    pub actor_fast: Option<VectorField>,
    /// One-step actor (`one_step_actor` for QAM-F, `actor_onestep_flow` for FQL).
    pub one_step_actor: Option<VectorField>,
    /// QAM-E edit actor.
    pub edit_actor: Option<EditActor>,
    /// QAM-E temperature.
    pub edit_alpha: Option<Temperature>,
    /// Act with `actor_fast` (QAM with `inv_temp ≠ 0`) rather than the BC flow actor.
    pub act_with_fast: bool,
    /// Every trainable parameter lives in this one flat buffer (in [`Nets::trainable`] order);
    /// the networks hold views of it that are gradient leaves.
    pub flat: Tensor,
    /// Every target parameter in one flat buffer: `target_critic`, then `target_actor_slow`.
    pub flat_targets: Tensor,
    /// Polyak pairs as `(online name prefix, offset, length)`: the same range in `flat` and in
    /// `flat_targets` (the online networks that have targets come first in `flat`).
    pub polyak_ranges: Vec<(String, i64, i64)>,
}

impl Nets {
    /// Builds (and initialises) the networks of `cfg.kind`; targets start as exact copies.
    pub fn new(cfg: &AgentConfig, obs: usize, d: usize, device: Device) -> Self {
        let (ah, vh) = (&cfg.actor_hidden_dims, &cfg.value_hidden_dims);
        let field = |name: &str, timed: bool| {
            VectorField::new(name, obs, d, ah, cfg.actor_layer_norm, timed, device)
        };
        let critic =
            |name: &str| Critic::new(name, cfg.num_qs, obs, d, vh, cfg.value_layer_norm, device);
        let qam = cfg.kind.is_qam();
        let mut nets = Nets {
            critic: None,
            target_critic: None,
            actor_slow: None,
            target_actor_slow: None,
            actor_fast: None,
            one_step_actor: None,
            edit_actor: None,
            edit_alpha: None,
            act_with_fast: qam && cfg.inv_temp != 0.0,
            flat: Tensor::zeros([0], (Kind::Float, device)),
            flat_targets: Tensor::zeros([0], (Kind::Float, device)),
            polyak_ranges: Vec::new(),
        };
        // Creation order = reference module order (critic, actor_slow, actor_fast, extras).
        if cfg.kind.has_critic() {
            nets.critic = Some(critic("critic"));
            nets.target_critic = Some(critic("target_critic"));
        }
        if qam {
            nets.actor_slow = Some(field("actor_slow", true));
            nets.target_actor_slow = Some(field("target_actor_slow", true));
            nets.actor_fast = Some(field("actor_fast", true));
        } else {
            nets.actor_slow = Some(field("actor_bc_flow", true));
        }
        match cfg.kind {
            AgentKind::QamF => nets.one_step_actor = Some(field("one_step_actor", false)),
            AgentKind::Fql => nets.one_step_actor = Some(field("actor_onestep_flow", false)),
            AgentKind::QamE => {
                nets.edit_actor = Some(EditActor::new(obs, d, ah, device));
                nets.edit_alpha = Some(Temperature::new(device));
            }
            _ => {}
        }
        if let (Some(t), Some(o)) = (&nets.target_critic, &nets.critic) {
            copy_parameters(t, o);
        }
        if let (Some(t), Some(o)) = (&nets.target_actor_slow, &nets.actor_slow) {
            copy_parameters(t, o);
        }
        let mut offset = 0;
        for (online, has_target) in [
            (
                nets.critic
                    .as_ref()
                    .map(|c| (c.named_parameters(), "critic/")),
                nets.target_critic.is_some(),
            ),
            (
                nets.actor_slow
                    .as_ref()
                    .map(|a| (a.named_parameters(), "actor_slow/")),
                nets.target_actor_slow.is_some(),
            ),
        ] {
            if let (Some((params, prefix)), true) = (online, has_target) {
                let len: i64 = params.iter().map(|(_, t)| t.numel() as i64).sum();
                nets.polyak_ranges.push((prefix.to_string(), offset, len));
                offset += len;
            }
        }
        let mut trainable: Vec<&mut Tensor> = Vec::new();
        macro_rules! collect_mut {
            ($($f:ident),*) => { $( if let Some(n) = &mut nets.$f { trainable.extend(n.parameters_mut()); } )* };
        }
        trainable_networks!(collect_mut);
        let flat = flatten_parameters(trainable, true, device);
        let mut targets: Vec<&mut Tensor> = Vec::new();
        if let Some(t) = &mut nets.target_critic {
            targets.extend(t.parameters_mut());
        }
        if let Some(t) = &mut nets.target_actor_slow {
            targets.extend(t.parameters_mut());
        }
        nets.flat_targets = flatten_parameters(targets, false, device);
        nets.flat = flat;
        nets
    }

    /// The flow field used for acting and the TD target (§6.1): `actor_fast` for QAM with
    /// `inv_temp ≠ 0`, otherwise the BC flow actor.
    pub fn acting_field(&self) -> &VectorField {
        match &self.actor_fast {
            Some(fast) if self.act_with_fast => fast,
            _ => self
                .actor_slow
                .as_ref()
                .expect("every agent has a BC flow actor"),
        }
    }

    /// Trainable parameters in optimiser order.
    pub fn trainable(&self) -> Vec<NamedTensor> {
        let mut v = Vec::new();
        macro_rules! add {
            ($($f:ident),*) => { $( if let Some(n) = &self.$f { v.extend(n.named_parameters()); } )* };
        }
        trainable_networks!(add);
        v
    }

    /// `(target, online)` parameter lists of the Polyak-averaged pairs.
    pub fn target_pairs(&self) -> Vec<(Vec<NamedTensor>, Vec<NamedTensor>)> {
        let mut v = Vec::new();
        if let (Some(t), Some(o)) = (&self.target_critic, &self.critic) {
            v.push((t.named_parameters(), o.named_parameters()));
        }
        if let (Some(t), Some(o)) = (&self.target_actor_slow, &self.actor_slow) {
            v.push((t.named_parameters(), o.named_parameters()));
        }
        v
    }

    /// Every parameter: trainable ones, then the targets.
    pub fn all(&self) -> Vec<NamedTensor> {
        let mut v = self.trainable();
        for (t, _) in self.target_pairs() {
            v.extend(t);
        }
        v
    }
}

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

/// The draws of the critic's next actions (`sample_actions(s')`, prefix `next`), the first draws
/// of an update; `None` for an agent without a critic.
fn draw_next_actions(
    nets: &Nets,
    cfg: &AgentConfig,
    d: i64,
    batch: &Batch,
    noise: &mut dyn Noise,
) -> Result<Option<ActionNoise>> {
    if nets.critic.is_none() {
        return Ok(None);
    }
    let b = batch.observations.size()[0];
    let device = batch.observations.device();
    ActionNoise::draw(nets, cfg, d, &[b], noise, "next", device).map(Some)
}

/// The critic half of an update: its loss (§3) and metrics.
fn critic_half(
    nets: &Nets,
    cfg: &AgentConfig,
    d: i64,
    batch: &Batch,
    next: &ActionNoise,
    metrics: &mut UpdateMetrics,
    trace: &mut Trace,
) -> Tensor {
    let (loss, q) = qam::critic_loss(nets, cfg, d, batch, next, trace);
    metrics.push("critic_loss", &loss);
    metrics.push("q_mean", &q.mean(Kind::Float));
    metrics.push("q_min", &q.min());
    metrics.push("q_max", &q.max());
    loss
}

/// The policy half of an update: the loss terms of the variant's actors (§4, §8), in the order
/// the total adds them after the critic loss, and their metrics.
#[allow(clippy::too_many_arguments)]
fn policy_half(
    nets: &Nets,
    cfg: &AgentConfig,
    d: i64,
    batch: &Batch,
    noise: &mut dyn Noise,
    flow_at: FlowLossAt,
    metrics: &mut UpdateMetrics,
    trace: &mut Trace,
) -> Result<Vec<Tensor>> {
    let obs = &batch.observations;
    let actions = batch_actions(batch, cfg);
    let valid = last(&batch.valid);
    match cfg.kind {
        AgentKind::Bc => {
            let actor = nets.actor_slow.as_ref().expect("actor_bc_flow");
            let flow = qam::bc_flow_loss(actor, obs, &actions, &valid, noise, trace)?;
            metrics.push("flow_loss", &flow);
            Ok(vec![flow])
        }
        AgentKind::Fql => {
            let (actor_loss, bc) =
                fql_actor_loss(nets, cfg, obs, &actions, &valid, d, noise, trace)?;
            metrics.push("flow_loss", &bc);
            metrics.push("actor_loss", &actor_loss);
            trace.record("actor_loss", &actor_loss);
            Ok(vec![actor_loss])
        }
        AgentKind::Qam | AgentKind::QamF | AgentKind::QamE => {
            // The BC flow loss is drawn first, as the reference draws it, and computed last, so
            // that a helper computing it instead has the whole policy half's time.
            let bc = match flow_at {
                FlowLossAt::Here => Some(qam::BcDraws::draw(noise, &actions)?),
                FlowLossAt::Helper(_) => None,
            };
            let target_critic = nets.target_critic.as_ref().expect("target_critic");
            let q_target: QFn<'_> = &|o, a| target_critic.forward(o, a, true);
            let (fast, base) = (
                nets.actor_fast.as_ref().expect("actor_fast"),
                nets.target_actor_slow.as_ref().expect("base"),
            );
            let adj = qam::adjoint_matching_loss(fast, base, q_target, obs, d, cfg, noise, trace)?;
            let extra = match cfg.kind {
                AgentKind::QamF => Some(qam::fql_losses(nets, cfg, obs, d, noise, trace)?),
                AgentKind::QamE => {
                    let edit = nets.edit_actor.as_ref().expect("edit_actor");
                    let temp = nets.edit_alpha.as_ref().expect("edit_alpha");
                    let critic = nets.critic.as_ref().expect("critic");
                    let losses =
                        qam::edit_losses(edit, temp, critic, fast, cfg, obs, d, noise, trace);
                    Some(losses?)
                }
                _ => None,
            };
            let flow = match flow_at {
                FlowLossAt::Helper(value) => value.recv().map_err(|_| {
                    AgentError::Helper("it stopped before sending the BC flow loss".into())
                })?,
                FlowLossAt::Here => {
                    let slow = nets.actor_slow.as_ref().expect("actor_slow");
                    let bc = bc.expect("drawn above");
                    qam::bc_flow_loss_from(slow, obs, &actions, &valid, &bc, trace)
                }
            };
            // (no `+=`: tch's AddAssign is in place and would overwrite `flow`)
            let actor = match extra {
                Some(extra) => &flow + extra,
                None => flow.shallow_clone(),
            };
            metrics.push("flow_loss", &flow);
            metrics.push("adj_loss", &adj);
            metrics.push("actor_loss", &actor);
            trace.record("actor_loss", &actor);
            for (name, t) in trace.reported() {
                metrics.push(name, t);
            }
            Ok(vec![actor, adj])
        }
    }
}

/// Where a QAM update computes the BC flow loss of `actor_slow` (§4.1).
enum FlowLossAt {
    /// Here, in the policy half.
    Here,
    /// On the helper of a split update, which draws nothing and takes the loss's gradient itself:
    /// the loss's value (constant) comes back for `actor_loss` and the total.
    Helper(Receiver<Tensor>),
}

/// The total loss (§4.5): the critic loss (if any) plus the policy terms, added left to right.
fn total_loss(critic: Option<&Tensor>, terms: &[Tensor]) -> Tensor {
    let mut parts = critic.into_iter().chain(terms);
    let first = parts.next().expect("an update has a loss").shallow_clone();
    parts.fold(first, |total, t| total + t)
}

/// Lends the networks and the batch to the helper thread of a split update.
///
/// tch's `Tensor` is `Send` but not `Sync`, because a tensor can be changed in place. While the
/// two halves run, neither changes a network or the batch: their in-place operations touch only
/// tensors they have just made, and the optimiser runs after both have joined. libtorch's reads
/// and its autograd bookkeeping on shared leaves are thread-safe (PyTorch shares modules across
/// threads the same way), and the halves take gradients of disjoint parameters.
struct Lent<'a>((&'a Nets, &'a Batch));

// SAFETY: see the type's documentation: shared, read-only use within one scope of the helper.
unsafe impl Send for Lent<'_> {}

impl<'a> Lent<'a> {
    /// The lent references (a method, so that a closure captures the whole `Lent`).
    fn into_inner(self) -> (&'a Nets, &'a Batch) {
        self.0
    }
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
        tch::manual_seed(seed as i64 & i64::MAX);
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

    /// Whether CPU updates run their two independent halves on two threads: the critic's loss
    /// and gradient (§3), and for the QAM variants the BC flow loss of `actor_slow` (§4.1), on a
    /// helper thread while this one does the rest of the policy's (§4, §8). On by
    /// default; it changes no result (the same bytes either way), only the speed on machines
    /// with a second core. CUDA updates and agents without a critic always run on one thread.
    pub fn set_split_update(&mut self, on: bool) {
        self.split_update = on;
    }

    /// Whether eager updates run split over two threads (see [`Agent::set_split_update`]).
    pub fn splits_updates(&self) -> bool {
        self.split_update && self.device == Device::Cpu && self.nets.critic.is_some()
    }

    /// Starts the helper thread of split updates unless it runs already; if no thread can be
    /// started, turns splitting off (`execution` then says so) and returns false.
    fn start_helper(&mut self) -> bool {
        if self.helper.is_none() {
            match rayon_core::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "qamlab-update-helper".into())
                .build()
            {
                Ok(pool) => self.helper = Some(pool),
                Err(_) => self.split_update = false,
            }
        }
        self.helper.is_some()
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
        let terms = policy_half(nets, cfg, d, batch, noise, FlowLossAt::Here, metrics, trace)?;
        let total = total_loss(critic.as_ref(), &terms);
        trace.record("total_loss", &total);
        Ok(total)
    }

    /// [`Agent::losses`] and the backward pass with the critic half, and for the QAM variants
    /// the BC flow loss of `actor_slow`, on the helper thread ([`Agent::start_helper`]); then the
    /// optimiser step. Their draws are taken here first, so every draw comes in the order of the
    /// one-thread update, and the two threads share no trainable parameter, so each gradient is
    /// the one a single backward pass of the total gives.
    fn split_update_step(
        &mut self,
        batch: &Batch,
        noise: &mut dyn Noise,
        metrics: &mut UpdateMetrics,
        trace: &mut Trace,
    ) -> Result<()> {
        let helper = self.helper.as_ref().expect("started by eager_update");
        let (nets, cfg, d) = (&self.nets, &self.cfg, self.policy_dim() as i64);
        let next = draw_next_actions(nets, cfg, d, batch, noise)?.expect("the agent has a critic");
        let params = nets.trainable();
        // `trainable` lists the critic first.
        let (critic_params, policy_params) =
            params.split_at(params.partition_point(|(name, _)| name.starts_with("critic/")));
        let critic_inputs: Vec<Tensor> = critic_params
            .iter()
            .map(|(_, p)| p.shallow_clone())
            .collect();
        // QAM variants: the helper also computes the BC flow loss of `actor_slow` and its
        // gradient, from draws taken here in turn; its value comes back for the policy half.
        let (flow_at, flow_work) = if nets.actor_fast.is_some() {
            let draws = qam::BcDraws::draw(noise, &batch_actions(batch, cfg))?;
            let (value_tx, value_rx) = mpsc::channel();
            let slow_inputs: Vec<Tensor> = policy_params
                .iter()
                .filter(|(name, _)| name.starts_with("actor_slow/"))
                .map(|(_, p)| p.shallow_clone())
                .collect();
            (
                FlowLossAt::Helper(value_rx),
                Some((draws, value_tx, slow_inputs)),
            )
        } else {
            (FlowLossAt::Here, None)
        };
        let lent = Lent((nets, batch));
        let helper_trace = trace.fork();
        // libtorch keeps its thread count per thread: the helper takes this thread's.
        let threads = tch::get_num_threads();
        let mut helped = None;
        let policy = helper.in_place_scope(|scope| {
            let helped = &mut helped;
            scope.spawn(move |_| {
                let (nets, batch) = lent.into_inner();
                tch::set_num_threads(threads);
                let (mut metrics, mut trace) = (UpdateMetrics::default(), helper_trace);
                let slow_grads = flow_work.map(|(draws, value, inputs)| {
                    let slow = nets.actor_slow.as_ref().expect("actor_slow");
                    let (actions, valid) = (batch_actions(batch, cfg), last(&batch.valid));
                    let obs = &batch.observations;
                    let flow =
                        qam::bc_flow_loss_from(slow, obs, &actions, &valid, &draws, &mut trace);
                    // No receiver: the policy half has stopped; its error is reported.
                    let _ = value.send(flow.detach());
                    Tensor::f_run_backward(&[&flow], &inputs, false, false)
                });
                let loss = critic_half(nets, cfg, d, batch, &next, &mut metrics, &mut trace);
                let grads = Tensor::f_run_backward(&[&loss], &critic_inputs, false, false);
                *helped =
                    Some(grads.and_then(|grads| {
                        Ok((loss, grads, slow_grads.transpose()?, metrics, trace))
                    }));
            });
            let mut policy_metrics = UpdateMetrics::default();
            let terms = policy_half(
                nets,
                cfg,
                d,
                batch,
                noise,
                flow_at,
                &mut policy_metrics,
                trace,
            );
            terms.and_then(|terms| {
                // A term made only of the helper's constant BC loss has no gradient here.
                let outputs: Vec<&Tensor> = terms.iter().filter(|t| t.requires_grad()).collect();
                let inputs: Vec<&Tensor> = policy_params.iter().map(|(_, p)| p).collect();
                let grads = Tensor::f_run_backward(&outputs, &inputs, false, false)?;
                Ok((terms, grads, policy_metrics))
            })
        });
        let helped = helped.expect("the scope ran the helper's half");
        let (critic_loss, mut grads, slow_grads, helper_metrics, helper_trace) = helped?;
        let (terms, policy_grads, policy_metrics) = policy?;
        metrics.extend(helper_metrics);
        metrics.extend(policy_metrics);
        trace.absorb(helper_trace);
        let total = tch::no_grad(|| total_loss(Some(&critic_loss), &terms));
        trace.record("total_loss", &total);
        // With the BC loss on the helper, `actor_slow`'s gradients are the helper's (this
        // thread's backward did not reach it).
        let helper_has_slow = slow_grads.is_some();
        let mut slow_grads = slow_grads.unwrap_or_default().into_iter();
        for ((name, _), g) in policy_params.iter().zip(policy_grads) {
            grads.push(if helper_has_slow && name.starts_with("actor_slow/") {
                slow_grads.next().expect("one per actor_slow parameter")
            } else {
                g
            });
        }
        self.finish_step(
            &total,
            &params,
            grads,
            None,
            StepMode::Eager,
            metrics,
            trace,
        )
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
            pieces.push(g.reshape([-1]));
        }
        // one flat gradient, laid out like `flat`
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
    /// critic parameters receive zero gradient. QAM variants only.
    pub fn update_policy_against(&mut self, batch: &Batch, q: QFn<'_>) -> Result<UpdateMetrics> {
        if self.nets.actor_fast.is_none() {
            return Err(AgentError::Config {
                field: "kind".into(),
                reason: "update_policy_against needs a QAM agent".into(),
            });
        }
        self.check_batch(batch)?;
        let batch = &batch.to_device(self.device);
        let _rng = self
            .noise
            .uses_global_torch_rng()
            .then(crate::noise::torch_rng_lock);
        self.noise.reseed(self.step, 0);
        let (cfg, nets, d) = (
            &self.cfg,
            &self.nets,
            self.cfg.policy_dim(self.action_dim) as i64,
        );
        let noise = self.noise.as_mut();
        let mut trace = Trace::disabled();
        let actions = batch_actions(batch, cfg);
        let slow = nets.actor_slow.as_ref().expect("actor_slow");
        let flow = qam::bc_flow_loss(
            slow,
            &batch.observations,
            &actions,
            &last(&batch.valid),
            noise,
            &mut trace,
        )?;
        let (fast, base) = (
            nets.actor_fast.as_ref().expect("actor_fast"),
            nets.target_actor_slow.as_ref().expect("base"),
        );
        let adj = qam::adjoint_matching_loss(
            fast,
            base,
            q,
            &batch.observations,
            d,
            cfg,
            noise,
            &mut trace,
        )?;
        let mut metrics = UpdateMetrics::default();
        metrics.push("flow_loss", &flow);
        metrics.push("adj_loss", &adj);
        let total = flow + adj;
        self.apply_gradients(
            &total,
            Some(&["actor_slow/", "actor_fast/"]),
            StepMode::Eager,
            &mut metrics,
            &mut trace,
        )?;
        Ok(metrics)
    }

    /// `sample_actions` (§6.2) for `obs [N, O]` (float32): `[N, D]` actions in [−1, 1], with
    /// fresh noise seeded from `(seed, step, acting-call counter)`.
    pub fn sample_actions(&mut self, obs: &Tensor) -> Result<Tensor> {
        let size = obs.size();
        if size.len() != 2 || size[1] != self.obs_dim as i64 {
            return Err(crate::error::shape_error(
                "observations",
                &[-1, self.obs_dim as i64],
                &size,
            ));
        }
        self.act_calls += 1;
        if self.graphs.is_some()
            && let Some(actions) = self.act_graphed(obs)?
        {
            return Ok(actions);
        }
        self.act_eagerly(obs)
    }

    /// The current acting call done eagerly with the agent's own noise source.
    fn act_eagerly(&mut self, obs: &Tensor) -> Result<Tensor> {
        let obs = obs.to_device(self.device).to_kind(Kind::Float);
        let mut noise = std::mem::replace(&mut self.noise, Box::new(crate::noise::NoDraws));
        let out = self.eager_act(&obs, noise.as_mut());
        self.noise = noise;
        out
    }

    /// `sample_actions` of the device-resident `obs` for the current acting call, drawing from
    /// `noise` (reseeded from the step and acting-call counters).
    fn eager_act(&self, obs: &Tensor, noise: &mut dyn Noise) -> Result<Tensor> {
        let _rng = noise
            .uses_global_torch_rng()
            .then(crate::noise::torch_rng_lock);
        noise.reseed(self.step, self.act_calls);
        self.act_drawing_from(obs, noise)
    }

    /// The device work of `sample_actions` on `obs`, drawing from `noise` as it stands.
    fn act_drawing_from(&self, obs: &Tensor, noise: &mut dyn Noise) -> Result<Tensor> {
        let d = self.policy_dim() as i64;
        tch::no_grad(|| {
            acting::sample_actions(
                &self.nets,
                &self.cfg,
                d,
                obs,
                noise,
                "act",
                &mut Trace::disabled(),
            )
        })
    }
}
