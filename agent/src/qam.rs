//! The QAM losses, one function per equation of the spec (§3, §4), read top to bottom beside
//! `qam-algorithm.md`. Shapes: `B` batch, `O` obs, `D` policy dim, `K` ensemble, `T` flow steps.
//! [`crate::Agent::update`] sums them into one loss (or, split over two threads, into its two halves).

use tch::{Kind, Tensor};

use crate::acting::{ActionNoise, euler_flow, sample_actions_from};
use crate::agent::Nets;
use crate::config::AgentConfig;
use crate::data::Batch;
use crate::error::Result;
use crate::metrics::Trace;
use crate::networks::{Critic, EditActor, FrozenFlow, Temperature, VectorField};
use crate::noise::Noise;

/// A Q function for the terminal adjoint: `(obs [..., O], action [..., D]) → [K, ...]` (or
/// `[1, ...]` for a single known Q). Its parameters must be constant (frozen).
pub type QFn<'a> = &'a dyn Fn(&Tensor, &Tensor) -> Tensor;

/// The policy-dimension action of the batch: `[B, H·A]` with chunking, else `actions[:, 0]`.
pub fn batch_actions(batch: &Batch, cfg: &AgentConfig) -> Tensor {
    if cfg.action_chunking {
        batch.actions.flatten(1, 2)
    } else {
        batch.actions.select(1, 0)
    }
}

/// Last column of a `[B, H]` (or `[B, H, O]`) batch tensor.
pub(crate) fn last(t: &Tensor) -> Tensor {
    t.select(1, t.size()[1] - 1)
}

/// §3 critic loss: `mean_{K,B} (Q(s, a) − y)² · valid`, with
/// `y = r + γ^H · mask · (mean_K − ρ·std_K) Q_target(s', a')` and `a' = sample_actions(s')`.
/// `next` holds the draws of `sample_actions(s')` (prefix `next`). Returns `(loss, q [K, B])`;
/// only the online critic receives gradient.
pub fn critic_loss(
    nets: &Nets,
    cfg: &AgentConfig,
    d: i64,
    batch: &Batch,
    next: &ActionNoise,
    trace: &mut Trace,
) -> (Tensor, Tensor) {
    let critic = nets.critic();
    let target_critic = nets.target_critic();
    let next_obs = last(&batch.next_observations);
    let next_actions =
        sample_actions_from(nets, cfg, d, &next_obs, next, "next", trace).clamp(-1.0, 1.0);
    let next_qs = tch::no_grad(|| target_critic.forward(&next_obs, &next_actions, true));
    let next_q_std = next_qs.std_dim(0, false, false);
    let next_q = next_qs.mean_dim(0, false, Kind::Float) - &next_q_std * cfg.rho;
    let gamma_h = cfg.discount.powi(cfg.horizon_length as i32);
    let target_q = last(&batch.rewards) + last(&batch.masks) * &next_q * gamma_h;
    let actions = batch_actions(batch, cfg);
    let q = critic.forward(&batch.observations, &actions, false);
    let loss = ((&q - &target_q).square() * last(&batch.valid)).mean(Kind::Float);
    trace.record("batch_actions_flat", &actions);
    trace.record("next_actions", &next_actions);
    trace.record("next_qs", &next_qs);
    trace.record("next_q_std", &next_q_std);
    trace.record("next_q", &next_q);
    trace.record("target_q", &target_q);
    trace.record("q", &q);
    trace.record("critic_loss", &loss);
    (loss, q)
}

/// The draws of [`bc_flow_loss`], `bc_x0 [B, D]` and `bc_t [B, 1]`, taken apart from the loss so
/// that an update can draw them in turn and compute the loss later, or on another thread.
pub struct BcDraws {
    /// The flow's start points `x₀`.
    pub x0: Tensor,
    /// The times `t`.
    pub t: Tensor,
}

impl BcDraws {
    /// Draws `bc_x0` and `bc_t` for the actions `[B, D]`.
    pub fn draw(noise: &mut dyn Noise, actions: &Tensor) -> Result<Self> {
        let (b, d) = (actions.size()[0], actions.size()[1]);
        Ok(Self {
            x0: noise.normal("bc_x0", &[b, d], actions.device())?,
            t: noise.uniform("bc_t", &[b, 1], actions.device())?,
        })
    }
}

/// §4.1 BC flow matching of `actor`: `x_t = (1−t)x₀ + t·a`, target `a − x₀`;
/// `mean_B(mean_D (actor(s, x_t, t) − v*)² · valid)`. Draws `bc_x0 [B, D]`, `bc_t [B, 1]`.
pub fn bc_flow_loss(
    actor: &VectorField,
    obs: &Tensor,
    actions: &Tensor,
    valid: &Tensor,
    noise: &mut dyn Noise,
    trace: &mut Trace,
) -> Result<Tensor> {
    let draws = BcDraws::draw(noise, actions)?;
    Ok(bc_flow_loss_from(actor, obs, actions, valid, &draws, trace))
}

/// [`bc_flow_loss`] with its draws given.
pub fn bc_flow_loss_from(
    actor: &VectorField,
    obs: &Tensor,
    actions: &Tensor,
    valid: &Tensor,
    draws: &BcDraws,
    trace: &mut Trace,
) -> Tensor {
    let (x0, t) = (&draws.x0, &draws.t);
    let x_t = (1.0 - t) * x0 + t * actions;
    let vel = actions - x0;
    let pred = actor.forward(obs, &x_t, Some(t), false);
    let loss = ((&pred - &vel).square().mean_dim(-1, false, Kind::Float) * valid).mean(Kind::Float);
    trace.record("bc_x_t", &x_t);
    trace.record("bc_t", t);
    trace.record("bc_vel", &vel);
    trace.record("bc_pred", &pred);
    trace.record("flow_loss", &loss);
    loss
}

/// `σ(t) = √(2(1 − t + h)/(t + h))`, the memoryless noise schedule.
pub fn sigma(t: f64, h: f64) -> f64 {
    (2.0 * (1.0 - t + h) / (t + h)).sqrt()
}

/// §4.2a memoryless SDE roll-out of `actor_fast` (last step: ODE step of `base`), both frozen
/// at the same observations, from `x₀ ~ N(0, I)`; draws `adj_x0 [B, D]` and `adj_noise` ×T (the
/// last one unused, as in the reference). Returns the states `x_0 … x_T`, each `[B, D]`, all
/// constant.
pub fn memoryless_rollout(
    actor_fast: &FrozenFlow,
    base: &FrozenFlow,
    d: i64,
    noise: &mut dyn Noise,
    trace: &mut Trace,
) -> Result<Vec<Tensor>> {
    let steps = actor_fast.steps();
    let shape = [actor_fast.lead(), &[d]].concat();
    let device = actor_fast.device();
    let h = 1.0 / steps as f64;
    let mut xs = vec![noise.normal("adj_x0", &shape, device)?];
    let mut step_vel = Vec::with_capacity(steps);
    for i in 0..steps {
        let eps = noise.normal("adj_noise", &shape, device)?;
        let t_i = i as f64 * h;
        let x = xs.last().expect("x_0").shallow_clone();
        let (v, next) = tch::no_grad(|| {
            if i + 1 < steps {
                // x + (2v − x/(t+h))·h + σ√h·ε, with the two x terms gathered: x·t/(t+h).
                let v = actor_fast.velocity(&x, i);
                let keep = i as f64 / (i + 1) as f64;
                let next = &x * keep + &v * (2.0 * h) + eps * (h.sqrt() * sigma(t_i, h));
                (v, next)
            } else {
                let v = base.velocity(&x, i);
                let next = &x + &v * h;
                (v, next)
            }
        });
        step_vel.push(v);
        xs.push(next);
    }
    trace.record("adj_traj", &Tensor::stack(&xs, 0));
    trace.record("adj_step_vel", &Tensor::stack(&step_vel, 0));
    Ok(xs)
}

/// §4.2b terminal adjoint `ã_T = −inv_temp · ∇_x Σ_b mean_K Q(s_b, clip(x, −1, 1))` at `x_T`.
pub fn terminal_adjoint(
    q: QFn<'_>,
    obs: &Tensor,
    x_final: &Tensor,
    inv_temp: f64,
) -> Result<Tensor> {
    let x = x_final.detach().set_requires_grad(true);
    let total = q(obs, &x.clamp(-1.0, 1.0))
        .mean_dim(0, false, Kind::Float)
        .sum(Kind::Float);
    let grad = Tensor::f_run_backward(&[total], &[&x], false, false)?.remove(0);
    Ok(grad * -inv_temp)
}

/// §4.2c lean adjoint, backwards: `ã_i = ã_{i+1} + h·J_{f_i}(x_i)ᵀ ã_{i+1}` with
/// `f_i(x) = 2·base(s, x, t_i + h) − x/(t_i + h)`; VJPs w.r.t. the action input only.
/// Returns `[ã_0, …, ã_{T−1}]`, each `[B, D]`.
pub fn lean_adjoint(base: &FrozenFlow, xs: &[Tensor], adj_final: &Tensor) -> Result<Vec<Tensor>> {
    let steps = xs.len() - 1;
    let h = 1.0 / steps as f64;
    let mut adj = adj_final.shallow_clone();
    let mut adjs = Vec::with_capacity(steps);
    for i in (0..steps).rev() {
        // ã + h·(2·J_baseᵀã − ã/(t_i + h)) = ã·i/(i+1) + 2h·J_baseᵀã, with t_i + h = (i+1)/T.
        let keep = i as f64 / (i + 1) as f64;
        adj = base.adjoint_step(&xs[i], i + 1, &adj, keep, 2.0 * h)?;
        adjs.push(adj.shallow_clone());
    }
    adjs.reverse();
    Ok(adjs)
}

/// §4.2 adjoint matching of `actor_fast` toward `π* ∝ π_base · exp(inv_temp · Q)`:
/// `mean_B Σ_{i<T} Σ_d (2(v_fine − v_base)/σ_i + σ_i·ã_i)²`. Only `actor_fast` gets gradient.
#[allow(clippy::too_many_arguments)]
pub fn adjoint_matching_loss(
    actor_fast: &VectorField,
    base: &VectorField,
    q: QFn<'_>,
    obs: &Tensor,
    d: i64,
    cfg: &AgentConfig,
    noise: &mut dyn Noise,
    trace: &mut Trace,
) -> Result<Tensor> {
    let steps = cfg.flow_steps;
    let h = 1.0 / steps as f64;
    let fast_flow = actor_fast.frozen_flow(obs, steps);
    let base_flow = base.frozen_flow(obs, steps);
    let xs = memoryless_rollout(&fast_flow, &base_flow, d, noise, trace)?;
    let adj_init = terminal_adjoint(q, obs, &xs[steps], cfg.inv_temp)?;
    let adjs = Tensor::stack(&lean_adjoint(&base_flow, &xs, &adj_init)?, 0);
    let x_stack = Tensor::stack(&xs[..steps], 0);
    let (b, o) = (obs.size()[0], obs.size()[1]);
    let opts = (Kind::Float, obs.device());
    // t_i and σ(t_i) built on the device (no host-to-device copy inside the update).
    let t64 = Tensor::arange(steps as i64, (Kind::Double, obs.device())) * h;
    let sig64 = (((1.0 + h) - &t64) * 2.0 / (&t64 + h)).sqrt();
    let over_steps = |v: Tensor| {
        v.to_kind(opts.0)
            .reshape([steps as i64, 1, 1])
            .expand([steps as i64, b, 1], false)
    };
    let (ts, sigmas) = (over_steps(t64), over_steps(sig64));
    let obs_rep = obs.unsqueeze(0).expand([steps as i64, b, o], false);
    let v_fine = actor_fast.forward(&obs_rep, &x_stack, Some(&ts), false);
    let v_base = tch::no_grad(|| base_flow.velocities(&x_stack));
    let residual = (&v_fine - &v_base) * 2.0 / &sigmas + &sigmas * &adjs;
    let per_step = residual.square().sum_dim_intlist(-1, false, Kind::Float);
    let loss = per_step
        .sum_dim_intlist(0, false, Kind::Float)
        .mean(Kind::Float);
    let abs = adj_init.abs();
    trace.record("adj_xs", &x_stack);
    trace.record("adj_ts", &ts);
    trace.record("adj_sigmas", &sigmas);
    trace.record("adj_init", &adj_init);
    trace.record("adjs", &adjs);
    trace.record("adj_vf_fine", &v_fine);
    trace.record("adj_vf_base", &v_base);
    trace.record("adj_residual", &residual);
    trace.record("adj_loss_per_step", &per_step);
    trace.record("adj_loss", &loss);
    trace.record("adj_abs_max", &abs.max());
    trace.record("adj_abs_mean", &abs.mean(Kind::Float));
    trace.record("adj_abs_std", &abs.std(false));
    Ok(loss)
}

/// QAM-F / FQL terms of the one-step actor (§4.3, §8) from the flow action `a_flow` (constant):
/// `L_distill = mean_{B,D}(a_flow − a_os)²`, `L_q = −mean_B mean_K Q_online(s, clip(a_os))`
/// (critic frozen, gradient flows through `a_os`). Returns `(L_distill, L_q, a_os, qs)`.
pub fn one_step_terms(
    one_step: &VectorField,
    critic: &Critic,
    obs: &Tensor,
    eps: &Tensor,
    a_flow: &Tensor,
) -> (Tensor, Tensor, Tensor, Tensor) {
    let a_os = one_step.forward(obs, eps, None, false);
    let distill = (&a_os - a_flow).square().mean(Kind::Float);
    let (q_loss, qs) = q_term(critic, obs, &a_os);
    (distill, q_loss, a_os, qs)
}

/// The actor's Q term `L_q = −mean_B mean_K Q_online(s, clip(actions))` (critic frozen, gradient flows through
/// `actions`), shared by QAM-F/FQL and QAM-E. Returns `(L_q, qs)`.
fn q_term(critic: &Critic, obs: &Tensor, actions: &Tensor) -> (Tensor, Tensor) {
    let qs = critic.forward(obs, &actions.clamp(-1.0, 1.0), true);
    let q_loss = -qs.mean_dim(0, false, Kind::Float).mean(Kind::Float);
    (q_loss, qs)
}

/// §4.3 QAM-F losses: one-step actor distilled from `EulerFlow(actor_fast)` plus its Q term.
/// Draws `fql_noise [B, D]`. Returns `fql_alpha · L_distill + L_q`.
pub fn qam_f_losses(
    nets: &Nets,
    cfg: &AgentConfig,
    obs: &Tensor,
    d: i64,
    noise: &mut dyn Noise,
    trace: &mut Trace,
) -> Result<Tensor> {
    let eps = noise.normal("fql_noise", &[obs.size()[0], d], obs.device())?;
    let a_flow = euler_flow(nets.actor_fast(), obs, &eps, cfg.flow_steps);
    let one_step = nets.one_step_actor();
    let (distill, q_loss, a_os, qs) = one_step_terms(one_step, nets.critic(), obs, &eps, &a_flow);
    trace.record("fql_flow_actions", &a_flow);
    trace.record("fql_os_actions", &a_os);
    trace.record("fql_qs", &qs);
    trace.record("fql_distill_loss", &distill);
    trace.record("fql_q_loss", &q_loss);
    Ok(&q_loss + distill * cfg.fql_alpha)
}

/// §4.4 QAM-E losses: edit of the (constant) flow action, Q term through the edit, entropy term
/// with constant alpha, and the temperature loss. Draws `edit_base_noise`, `edit_eps` (`[B, D]`).
/// Returns `L_editQ + L_ent + L_alpha`.
#[allow(clippy::too_many_arguments)]
pub fn qam_e_losses(
    edit_actor: &EditActor,
    temperature: &Temperature,
    critic: &Critic,
    actor_fast: &VectorField,
    cfg: &AgentConfig,
    obs: &Tensor,
    d: i64,
    noise: &mut dyn Noise,
    trace: &mut Trace,
) -> Result<Tensor> {
    let b = obs.size()[0];
    let eps = noise.normal("edit_base_noise", &[b, d], obs.device())?;
    let a_flow = euler_flow(actor_fast, obs, &eps, cfg.flow_steps);
    let xi = noise.normal("edit_eps", &[b, d], obs.device())?;
    let s = edit_actor.sample(obs, &a_flow, &xi, false);
    let edited = &a_flow + &s.edit * cfg.edit_scale;
    let (q_loss, qs) = q_term(critic, obs, &edited);
    let alpha_const = temperature.alpha(true);
    let entropy_loss = (&s.log_prob * &alpha_const).mean(Kind::Float);
    let entropy = -s.log_prob.detach().mean(Kind::Float);
    let target_entropy = cfg.target_entropy(d as usize);
    let alpha_loss = temperature.alpha(false) * (&entropy - target_entropy);
    trace.record("edit_flow_actions", &a_flow);
    trace.record("edit_mean", &s.mean);
    trace.record("edit_std", &s.std);
    trace.record("edit_noise", &xi);
    trace.record("edit_pre_tanh", &s.pre_tanh);
    trace.record("edit", &s.edit);
    trace.record("edited_actions", &edited);
    trace.record("edit_log_probs", &s.log_prob);
    trace.record("edit_qs", &qs);
    trace.record("edit_q_loss", &q_loss);
    trace.record("edit_entropy_loss", &entropy_loss);
    trace.record("edit_entropy", &entropy);
    trace.record("edit_alpha", &alpha_const);
    trace.record("edit_alpha_loss", &alpha_loss);
    Ok(q_loss + entropy_loss + alpha_loss)
}
