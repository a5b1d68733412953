//! FQL baseline (spec §8, `agents/fql.py`): BC flow actor, one-step actor distilled from it with a
//! Q term; the critic loss is QAM's (§3) with the one-step actor as the next-action sampler.

use tch::{Kind, Tensor};

use crate::acting::euler_flow;
use crate::agent::Nets;
use crate::config::AgentConfig;
use crate::error::Result;
use crate::metrics::Trace;
use crate::noise::Noise;
use crate::qam::{bc_flow_loss, one_step_terms};

/// `L_actor = L_bc + alpha · L_distill + L_q` (draws `bc_x0`, `bc_t`, `distill_noise`).
/// Returns `(L_actor, L_bc)`.
#[allow(clippy::too_many_arguments)]
pub fn fql_actor_loss(
    nets: &Nets,
    cfg: &AgentConfig,
    obs: &Tensor,
    actions: &Tensor,
    valid: &Tensor,
    d: i64,
    noise: &mut dyn Noise,
    trace: &mut Trace,
) -> Result<(Tensor, Tensor)> {
    let bc_actor = nets.bc_actor();
    let bc = bc_flow_loss(bc_actor, obs, actions, valid, noise, trace)?;
    let eps = noise.normal("distill_noise", &[obs.size()[0], d], obs.device())?;
    let a_tgt = euler_flow(bc_actor, obs, &eps, cfg.flow_steps);
    let one_step = nets.one_step_actor();
    let critic = nets.critic();
    let (distill, q_loss, a_os, qs) = one_step_terms(one_step, critic, obs, &eps, &a_tgt);
    trace.record("distill_target_flow_actions", &a_tgt);
    trace.record("distill_actor_actions", &a_os);
    trace.record("actor_qs", &qs);
    trace.record("distill_loss", &distill);
    trace.record("q_loss", &q_loss);
    let loss = &bc + distill * cfg.alpha + &q_loss;
    debug_assert_eq!(loss.kind(), Kind::Float);
    Ok((loss, bc))
}
