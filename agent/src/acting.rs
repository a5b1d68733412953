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

/// `sample_actions(s)` (§6.2) for `obs [..., O]` → `[..., D]` with fresh noise labelled
/// `{prefix}_noise` (`[..., N, D]`) and, for QAM-E, `{prefix}_edit_eps`. Constant (no graph).
///
/// Trace names (with `prefix = "next"`, as in the fixtures): `next_flow_actions`,
/// `next_os_actions`, `next_edit_{mean,std,noise,pre_tanh}`, `next_edit`.
pub fn sample_actions(
    nets: &Nets,
    cfg: &AgentConfig,
    d: i64,
    obs: &Tensor,
    noise: &mut dyn Noise,
    prefix: &str,
    trace: &mut Trace,
) -> Result<Tensor> {
    let n = cfg.best_of_n as i64;
    let mut lead = obs.size();
    let o = lead.pop().expect("obs has a feature dim");
    let noise_shape = [lead.clone(), vec![n, d]].concat();
    let eps = noise.normal(&format!("{prefix}_noise"), &noise_shape, obs.device())?;
    let obs_rep = obs
        .unsqueeze(-2)
        .expand([lead.clone(), vec![n, o]].concat(), false);
    let actions = if let Some(one_step) = &nets.one_step_actor {
        let os = tch::no_grad(|| one_step.forward(&obs_rep, &eps, None, true));
        trace.record(format!("{prefix}_os_actions"), &os);
        os.clamp(-1.0, 1.0)
    } else {
        let field = nets.acting_field();
        let flow = euler_flow(field, &obs_rep, &eps, cfg.flow_steps);
        trace.record(format!("{prefix}_flow_actions"), &flow);
        match &nets.edit_actor {
            Some(edit) => {
                let xi = noise.normal(&format!("{prefix}_edit_eps"), &noise_shape, obs.device())?;
                let s = tch::no_grad(|| edit.sample(&obs_rep, &flow, &xi, true));
                trace.record(format!("{prefix}_edit_mean"), &s.mean);
                trace.record(format!("{prefix}_edit_std"), &s.std);
                trace.record(format!("{prefix}_edit_noise"), &xi);
                trace.record(format!("{prefix}_edit_pre_tanh"), &s.pre_tanh);
                trace.record(format!("{prefix}_edit"), &s.edit);
                (flow + s.edit * cfg.edit_scale).clamp(-1.0, 1.0)
            }
            None => flow,
        }
    };
    if n == 1 {
        return Ok(actions.squeeze_dim(-2));
    }
    // best-of-N: argmax over candidates of the online ensemble mean.
    let critic = nets
        .critic
        .as_ref()
        .expect("best_of_n > 1 needs a critic (checked by validate)");
    let q =
        tch::no_grad(|| critic.forward(&obs_rep, &actions, true)).mean_dim(0, false, Kind::Float);
    let best = q
        .argmax(-1, true)
        .unsqueeze(-1)
        .expand([lead, vec![1, d]].concat(), false);
    Ok(actions.gather(-2, &best, false).squeeze_dim(-2))
}
