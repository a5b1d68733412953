//! The two-thread split update: the critic half (and for the QAM variants the BC flow loss of
//! `actor_slow`) on a helper thread while this one does the rest of the policy half.

use std::sync::mpsc;

use tch::{Device, TchError, Tensor};

use super::losses::{FlowLossAt, critic_half, draw_next_actions, policy_half, total_loss};
use super::{Agent, Nets, StepMode};
use crate::acting::ActionNoise;
use crate::config::AgentConfig;
use crate::data::Batch;
use crate::error::Result;
use crate::metrics::{Trace, UpdateMetrics};
use crate::networks::NamedTensor;
use crate::noise::Noise;
use crate::qam::{self, batch_actions, last};

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
    pub(super) fn start_helper(&mut self) -> bool {
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

    /// [`Agent::losses`] and the backward pass with the critic half, and for the QAM variants
    /// the BC flow loss of `actor_slow`, on the helper thread ([`Agent::start_helper`]); then the
    /// optimiser step. Their draws are taken here first, so every draw comes in the order of the
    /// one-thread update, and the two threads share no trainable parameter, so each gradient is
    /// the one a single backward pass of the total gives.
    pub(super) fn split_update_step(
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
        let (flow_at, slow_flow) = SlowFlowWork::draw(nets, cfg, batch, noise, policy_params)?;
        let work = HelperHalf {
            lent: Lent((nets, batch)),
            cfg,
            d,
            next,
            critic_inputs: shallow_clones(critic_params),
            slow_flow,
            trace: trace.fork(),
            // libtorch keeps its thread count per thread: the helper takes this thread's.
            threads: tch::get_num_threads(),
        };
        let mut helped = None;
        let mut policy_metrics = UpdateMetrics::default();
        let policy = helper.in_place_scope(|scope| {
            let helped = &mut helped;
            scope.spawn(move |_| *helped = Some(work.run()));
            self.policy_half_here(
                batch,
                noise,
                flow_at,
                policy_params,
                &mut policy_metrics,
                trace,
            )
        });
        let helped = helped.expect("the scope ran the helper's half")?;
        let (terms, policy_grads) = policy?;
        metrics.extend(helped.metrics);
        metrics.extend(policy_metrics);
        trace.absorb(helped.trace);
        let total = tch::no_grad(|| total_loss(Some(&helped.critic_loss), &terms));
        trace.record("total_loss", &total);
        let grads = all_grads(
            helped.critic_grads,
            policy_params,
            policy_grads,
            helped.slow_grads,
        );
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

    /// The policy half on this thread (with the BC flow loss where `flow_at` says), and its
    /// terms' gradients for `policy_params` (undefined where a term does not reach one).
    fn policy_half_here(
        &self,
        batch: &Batch,
        noise: &mut dyn Noise,
        flow_at: FlowLossAt,
        policy_params: &[NamedTensor],
        metrics: &mut UpdateMetrics,
        trace: &mut Trace,
    ) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let (nets, cfg, d) = (&self.nets, &self.cfg, self.policy_dim() as i64);
        let terms = policy_half(nets, cfg, d, batch, noise, flow_at, None, metrics, trace)?;
        // A term made only of the helper's constant BC loss has no gradient here.
        let outputs: Vec<&Tensor> = terms.iter().filter(|t| t.requires_grad()).collect();
        let inputs: Vec<&Tensor> = policy_params.iter().map(|(_, p)| p).collect();
        let grads = Tensor::f_run_backward(&outputs, &inputs, false, false)?;
        Ok((terms, grads))
    }
}

/// The BC flow loss of `actor_slow` as the helper takes it (QAM variants): its draws, taken on
/// this thread in turn, where its value goes back to the policy half, and what it differentiates.
struct SlowFlowWork {
    /// `bc_x0` and `bc_t`.
    draws: qam::BcDraws,
    /// To the policy half, which needs the loss's value for `actor_loss` and the total.
    value: mpsc::Sender<Tensor>,
    /// `actor_slow`'s parameters.
    inputs: Vec<Tensor>,
}

impl SlowFlowWork {
    /// For the QAM variants (those with `actor_fast`), the BC flow loss's draws and where the
    /// policy half waits for its value; the other variants keep the loss in the policy half.
    fn draw(
        nets: &Nets,
        cfg: &AgentConfig,
        batch: &Batch,
        noise: &mut dyn Noise,
        policy_params: &[NamedTensor],
    ) -> Result<(FlowLossAt, Option<Self>)> {
        if nets.actor_fast.is_none() {
            return Ok((FlowLossAt::Here, None));
        }
        let draws = qam::BcDraws::draw(noise, &batch_actions(batch, cfg))?;
        let (value, value_rx) = mpsc::channel();
        let inputs = policy_params
            .iter()
            .filter(|(name, _)| name.starts_with("actor_slow/"))
            .map(|(_, p)| p.shallow_clone())
            .collect();
        let work = Self {
            draws,
            value,
            inputs,
        };
        Ok((FlowLossAt::Helper(value_rx), Some(work)))
    }

    /// Computes the loss, sends its value to the policy half, and returns `actor_slow`'s
    /// gradients.
    fn run(
        self,
        nets: &Nets,
        cfg: &AgentConfig,
        batch: &Batch,
        trace: &mut Trace,
    ) -> std::result::Result<Vec<Tensor>, TchError> {
        let slow = nets.bc_actor();
        let (actions, valid) = (batch_actions(batch, cfg), last(&batch.valid));
        let obs = &batch.observations;
        let flow = qam::bc_flow_loss_from(slow, obs, &actions, &valid, &self.draws, trace);
        // No receiver: the policy half has stopped; its error is reported.
        let _ = self.value.send(flow.detach());
        Tensor::f_run_backward(&[&flow], &self.inputs, false, false)
    }
}

/// The helper thread's half of a split update, with all it needs lent or handed to it.
struct HelperHalf<'a> {
    lent: Lent<'a>,
    cfg: &'a AgentConfig,
    /// The policy's action dimension.
    d: i64,
    /// The critic's draws of next actions.
    next: ActionNoise,
    /// The critic's parameters.
    critic_inputs: Vec<Tensor>,
    /// The BC flow loss of `actor_slow` (QAM variants).
    slow_flow: Option<SlowFlowWork>,
    /// A fork of the update's trace.
    trace: Trace,
    /// libtorch's thread count on the calling thread.
    threads: i32,
}

/// What the helper's half gives back.
struct Helped {
    critic_loss: Tensor,
    /// One per critic parameter.
    critic_grads: Vec<Tensor>,
    /// One per `actor_slow` parameter, where the helper took the BC flow loss.
    slow_grads: Option<Vec<Tensor>>,
    metrics: UpdateMetrics,
    trace: Trace,
}

impl HelperHalf<'_> {
    /// Runs on the helper thread: the BC flow loss and its gradients first (QAM variants), then
    /// the critic half and its gradients.
    fn run(self) -> std::result::Result<Helped, TchError> {
        let (nets, batch) = self.lent.into_inner();
        tch::set_num_threads(self.threads);
        let (mut metrics, mut trace) = (UpdateMetrics::default(), self.trace);
        let slow_grads = self
            .slow_flow
            .map(|work| work.run(nets, self.cfg, batch, &mut trace));
        let (cfg, d) = (self.cfg, self.d);
        let critic_loss = critic_half(nets, cfg, d, batch, &self.next, &mut metrics, &mut trace);
        let critic_grads =
            Tensor::f_run_backward(&[&critic_loss], &self.critic_inputs, false, false)?;
        Ok(Helped {
            critic_loss,
            critic_grads,
            slow_grads: slow_grads.transpose()?,
            metrics,
            trace,
        })
    }
}

/// Handles to the parameters' tensors, sharing their storage and autograd identity.
fn shallow_clones(params: &[NamedTensor]) -> Vec<Tensor> {
    params.iter().map(|(_, p)| p.shallow_clone()).collect()
}

/// One gradient per trainable parameter, in `trainable`'s order: the critic's, then the
/// policy's.
fn all_grads(
    mut grads: Vec<Tensor>,
    policy_params: &[NamedTensor],
    policy_grads: Vec<Tensor>,
    slow_grads: Option<Vec<Tensor>>,
) -> Vec<Tensor> {
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
    grads
}
