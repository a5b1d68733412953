//! The loss halves of an update: the critic's and the policy's, and the total they add up to.

use std::sync::mpsc::Receiver;

use tch::{Kind, Tensor};

use super::Nets;
use crate::acting::ActionNoise;
use crate::config::{AgentConfig, AgentKind};
use crate::data::Batch;
use crate::error::{AgentError, Result};
use crate::fql::fql_actor_loss;
use crate::metrics::{Trace, UpdateMetrics};
use crate::noise::Noise;
use crate::qam::{self, QFn, batch_actions, last};

/// The draws of the critic's next actions (`sample_actions(s')`, prefix `next`), the first draws
/// of an update; `None` for an agent without a critic.
pub(super) fn draw_next_actions(
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
pub(super) fn critic_half(
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
/// the total adds them after the critic loss, and their metrics. Adjoint matching tilts toward
/// `q` where given (`(obs, action) → [K, B]`, constant), else toward the target critic.
#[allow(clippy::too_many_arguments)]
pub(super) fn policy_half(
    nets: &Nets,
    cfg: &AgentConfig,
    d: i64,
    batch: &Batch,
    noise: &mut dyn Noise,
    flow_at: FlowLossAt,
    q: Option<QFn<'_>>,
    metrics: &mut UpdateMetrics,
    trace: &mut Trace,
) -> Result<Vec<Tensor>> {
    let obs = &batch.observations;
    let actions = batch_actions(batch, cfg);
    let valid = last(&batch.valid);
    match cfg.kind {
        AgentKind::Bc => {
            let actor = nets.bc_actor();
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
            let target_critic = nets.target_critic();
            let q_target: QFn<'_> = &|o, a| target_critic.forward(o, a, true);
            let q = q.unwrap_or(q_target);
            let (fast, base) = (nets.actor_fast(), nets.target_bc_actor());
            let adj = qam::adjoint_matching_loss(fast, base, q, obs, d, cfg, noise, trace)?;
            let extra = match cfg.kind {
                AgentKind::QamF => Some(qam::qam_f_losses(nets, cfg, obs, d, noise, trace)?),
                AgentKind::QamE => {
                    let edit = nets.edit_actor();
                    let temp = nets.edit_alpha();
                    let critic = nets.critic();
                    let losses =
                        qam::qam_e_losses(edit, temp, critic, fast, cfg, obs, d, noise, trace);
                    Some(losses?)
                }
                // (FQL and BC took the arms above.)
                AgentKind::Qam | AgentKind::Fql | AgentKind::Bc => None,
            };
            let flow = match flow_at {
                FlowLossAt::Helper(value) => value.recv().map_err(|_| {
                    AgentError::Helper("it stopped before sending the BC flow loss".into())
                })?,
                FlowLossAt::Here => {
                    let slow = nets.bc_actor();
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
pub(super) enum FlowLossAt {
    /// Here, in the policy half.
    Here,
    /// On the helper of a split update, which draws nothing and takes the loss's gradient itself:
    /// the loss's value (constant) comes back for `actor_loss` and the total.
    Helper(Receiver<Tensor>),
}

/// The total loss (§4.5): the critic loss (if any) plus the policy terms, added left to right.
pub(super) fn total_loss(critic: Option<&Tensor>, terms: &[Tensor]) -> Tensor {
    let mut parts = critic.into_iter().chain(terms);
    let first = parts.next().expect("an update has a loss").shallow_clone();
    parts.fold(first, |total, t| total + t)
}
