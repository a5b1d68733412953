//! The two-thread split update: the critic half (and for the QAM variants the BC flow loss of
//! `actor_slow`) on a helper thread while this one does the rest of the policy half.

use std::sync::mpsc;

use tch::{Device, Tensor};

use super::losses::{FlowLossAt, critic_half, draw_next_actions, policy_half, total_loss};
use super::{Agent, Nets, StepMode};
use crate::data::Batch;
use crate::error::Result;
use crate::metrics::{Trace, UpdateMetrics};
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
                    let slow = nets.bc_actor();
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
                None,
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
}
