//! Acting: `sample_actions` (§6.2), eagerly or replayed from a CUDA graph.

use tch::{Kind, Tensor};

use super::Agent;
use crate::acting;
use crate::error::Result;
use crate::metrics::Trace;
use crate::noise::Noise;

impl Agent {
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
    pub(super) fn act_eagerly(&mut self, obs: &Tensor) -> Result<Tensor> {
        let obs = obs.to_device(self.device).to_kind(Kind::Float);
        let mut noise = std::mem::replace(&mut self.noise, Box::new(crate::noise::NoDraws));
        let out = self.eager_act(&obs, noise.as_mut());
        self.noise = noise;
        out
    }

    /// `sample_actions` of the device-resident `obs` for the current acting call, drawing from
    /// `noise` (reseeded from the step and acting-call counters).
    pub(super) fn eager_act(&self, obs: &Tensor, noise: &mut dyn Noise) -> Result<Tensor> {
        let _rng = noise
            .uses_global_torch_rng()
            .then(crate::noise::torch_rng_lock);
        noise.reseed(self.step, self.act_calls);
        self.act_drawing_from(obs, noise)
    }

    /// The device work of `sample_actions` on `obs`, drawing from `noise` as it stands.
    pub(super) fn act_drawing_from(&self, obs: &Tensor, noise: &mut dyn Noise) -> Result<Tensor> {
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
