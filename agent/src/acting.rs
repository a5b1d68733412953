//! Acting (spec §6): Euler integration of a flow field and `sample_actions` with the variant's
//! policy (flow, one-step actor, or flow + edit) and best-of-N over the online critic.

use tch::{Kind, Tensor};

use crate::agent::Nets;
use crate::config::AgentConfig;
use crate::error::Result;
use crate::metrics::Trace;
use crate::networks::VectorField;
use crate::noise::Noise;

/// `EulerFlow(field, s, ε)` (§6.1): `a ← a + field(s, a, i/T)/T` for `i < T`, then clip to [−1, 1].
/// Evaluated with frozen parameters and no graph: the result is a constant.
pub fn euler_flow(field: &VectorField, obs: &Tensor, eps: &Tensor, flow_steps: usize) -> Tensor {
    field.frozen_flow(obs, flow_steps).euler(eps)
}

/// The draws of one `sample_actions` call: `{prefix}_noise` (`[..., N, D]`) and, for QAM-E,
/// `{prefix}_edit_eps` of the same shape. Drawn apart from the computation so that an update can
/// take its critic's draws first and compute the critic half on another thread.
pub struct ActionNoise {
    /// The flow (or one-step actor) noise.
    pub eps: Tensor,
    /// The edit actor's reparameterisation noise (QAM-E only).
    pub edit_eps: Option<Tensor>,
}

impl ActionNoise {
    /// Draws, in the reference order, what `sample_actions` needs for observations of leading
    /// shape `lead`.
    pub fn draw(
        nets: &Nets,
        cfg: &AgentConfig,
        d: i64,
        lead: &[i64],
        noise: &mut dyn Noise,
        prefix: &str,
        device: tch::Device,
    ) -> Result<ActionNoise> {
        let shape = [lead, &[cfg.best_of_n as i64, d]].concat();
        let eps = noise.normal(&format!("{prefix}_noise"), &shape, device)?;
        let edit_eps = match (&nets.one_step_actor, &nets.edit_actor) {
            (None, Some(_)) => Some(noise.normal(&format!("{prefix}_edit_eps"), &shape, device)?),
            _ => None,
        };
        Ok(ActionNoise { eps, edit_eps })
    }
}

/// `sample_actions(s)` (§6.2) for `obs [..., O]` → `[..., D]` with fresh noise (see
/// [`ActionNoise`]). Constant (no graph).
pub fn sample_actions(
    nets: &Nets,
    cfg: &AgentConfig,
    d: i64,
    obs: &Tensor,
    noise: &mut dyn Noise,
    prefix: &str,
    trace: &mut Trace,
) -> Result<Tensor> {
    let size = obs.size();
    let drawn = ActionNoise::draw(
        nets,
        cfg,
        d,
        &size[..size.len() - 1],
        noise,
        prefix,
        obs.device(),
    )?;
    Ok(sample_actions_from(
        nets, cfg, d, obs, &drawn, prefix, trace,
    ))
}

/// `sample_actions(s)` with its draws given.
///
/// Trace names (with `prefix = "next"`, as in the fixtures): `next_flow_actions`,
/// `next_os_actions`, `next_edit_{mean,std,noise,pre_tanh}`, `next_edit`.
pub fn sample_actions_from(
    nets: &Nets,
    cfg: &AgentConfig,
    d: i64,
    obs: &Tensor,
    drawn: &ActionNoise,
    prefix: &str,
    trace: &mut Trace,
) -> Tensor {
    let n = cfg.best_of_n as i64;
    let mut lead = obs.size();
    let o = lead.pop().expect("obs has a feature dim");
    let eps = &drawn.eps;
    let obs_rep = obs
        .unsqueeze(-2)
        .expand([lead.clone(), vec![n, o]].concat(), false);
    let actions = if let Some(one_step) = &nets.one_step_actor {
        let os = tch::no_grad(|| one_step.forward(&obs_rep, eps, None, true));
        trace.record(format!("{prefix}_os_actions"), &os);
        os.clamp(-1.0, 1.0)
    } else {
        let field = nets.acting_field();
        let flow = euler_flow(field, &obs_rep, eps, cfg.flow_steps);
        trace.record(format!("{prefix}_flow_actions"), &flow);
        match &nets.edit_actor {
            Some(edit) => {
                let xi = drawn.edit_eps.as_ref().expect("drawn for the edit actor");
                let s = tch::no_grad(|| edit.sample(&obs_rep, &flow, xi, true));
                trace.record(format!("{prefix}_edit_mean"), &s.mean);
                trace.record(format!("{prefix}_edit_std"), &s.std);
                trace.record(format!("{prefix}_edit_noise"), xi);
                trace.record(format!("{prefix}_edit_pre_tanh"), &s.pre_tanh);
                trace.record(format!("{prefix}_edit"), &s.edit);
                (flow + s.edit * cfg.edit_scale).clamp(-1.0, 1.0)
            }
            None => flow,
        }
    };
    if n == 1 {
        return actions.squeeze_dim(-2);
    }
    // best-of-N: argmax over candidates of the online ensemble mean (validate gives it a critic).
    let critic = nets.critic();
    let q =
        tch::no_grad(|| critic.forward(&obs_rep, &actions, true)).mean_dim(0, false, Kind::Float);
    let best = q
        .argmax(-1, true)
        .unsqueeze(-1)
        .expand([lead, vec![1, d]].concat(), false);
    actions.gather(-2, &best, false).squeeze_dim(-2)
}
