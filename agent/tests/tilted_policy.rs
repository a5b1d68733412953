//! Behaviour without fixtures: with the critic replaced by a known `Q(a) = a_x`, BC on a 2-mode
//! Gaussian mixture plus adjoint matching must make `actor_fast` sample
//! `π*(a) ∝ π_β(a)·exp(inv_temp·Q(a))`. For equal-width modes the tilted mode weights are
//! `w_m·exp(inv_temp·μ_m,x)` (normalised); `inv_temp = 0` must give back `π_β`'s weights.

use qamlab_agent::acting::euler_flow;
use qamlab_agent::qam::memoryless_rollout;
use qamlab_agent::{Agent, AgentConfig, AgentKind, Noise, TorchNoise, Trace, TransitionStore};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

const MODES: [(f32, f32); 2] = [(-0.5, 0.7), (0.5, 0.3)]; // (x-position, weight)
const MODE_STD: f32 = 0.08;
/// Bound on the T = 40 distance to the analytic weight (measured 0.055).
const FINE_TOLERANCE: f64 = 0.08;

/// BC data: one constant observation, actions from the mixture (y ~ N(0, std) too).
fn mixture_store(n: usize, seed: u64) -> TransitionStore {
    tch::manual_seed(seed as i64);
    let pick = Tensor::rand([n as i64], (Kind::Float, Device::Cpu)).lt(MODES[0].1 as f64);
    let centre = pick.to_kind(Kind::Float) * MODES[0].0 as f64
        + pick.logical_not().to_kind(Kind::Float) * MODES[1].0 as f64;
    let x = centre + Tensor::randn([n as i64], (Kind::Float, Device::Cpu)) * MODE_STD as f64;
    let y = Tensor::randn([n as i64], (Kind::Float, Device::Cpu)) * MODE_STD as f64;
    let actions: Vec<f32> = Vec::try_from(Tensor::stack(&[x, y], 1).flatten(0, 1)).unwrap();
    let mut store = TransitionStore::new(1, 2);
    let zeros = vec![0f32; n];
    let mut terminals = vec![0f32; n];
    terminals[n - 1] = 1.0;
    store
        .extend_from_arrays(&zeros, &actions, &zeros, &zeros, &vec![1f32; n], &terminals)
        .unwrap();
    store
}

fn tilted_weight_of_right_mode(inv_temp: f64) -> f64 {
    let w: Vec<f64> = MODES
        .iter()
        .map(|&(x, w)| w as f64 * (inv_temp * x as f64).exp())
        .collect();
    w[1] / (w[0] + w[1])
}

/// Trains BC + adjoint matching against `Q(a) = a_x` with `flow_steps` Euler/SDE steps and
/// returns the fraction of `actor_fast` Euler-flow samples in the right mode.
fn trained_right_mode_fraction(inv_temp: f64, flow_steps: usize, updates: usize) -> f64 {
    // tiny ops: one intra-op thread is fastest, and immune to a busy machine
    tch::set_num_threads(1);
    let cfg = AgentConfig {
        kind: AgentKind::Qam,
        lr: 2e-3,
        batch_size: 256,
        actor_hidden_dims: vec![64, 64],
        value_hidden_dims: vec![8, 8],
        horizon_length: 1,
        num_qs: 2,
        tau: 0.5,
        flow_steps,
        inv_temp,
        clip_grad: Some(false),
        ..AgentConfig::default()
    };
    let store = mixture_store(20_000, 1);
    let mut agent = Agent::new(cfg.clone(), 1, 2, Device::Cpu, 7).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let q = |_obs: &Tensor, a: &Tensor| a.select(-1, 0).unsqueeze(0);
    for _ in 0..updates {
        let batch = store
            .sample(&mut rng, cfg.batch_size, 1, cfg.discount, Device::Cpu)
            .unwrap();
        agent.update_policy_against(&batch, &q).unwrap();
    }
    let n = 8000;
    let obs = Tensor::zeros([n, 1], (Kind::Float, Device::Cpu));
    tch::manual_seed(11);
    let eps = Tensor::randn([n, 2], (Kind::Float, Device::Cpu));
    let fast = agent.nets().actor_fast.as_ref().unwrap();
    let ode = euler_flow(fast, &obs, &eps, cfg.flow_steps);
    let base = agent.nets().target_actor_slow.as_ref().unwrap();
    let mut noise = TorchNoise::new(12);
    noise.reseed(0, 0);
    let sde = memoryless_rollout(
        &fast.frozen_flow(&obs, cfg.flow_steps),
        &base.frozen_flow(&obs, cfg.flow_steps),
        2,
        &mut noise,
        &mut Trace::disabled(),
    )
    .unwrap();
    let right = |a: &Tensor| {
        a.select(1, 0)
            .gt(0.0)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[])
    };
    eprintln!(
        "  (inv_temp {inv_temp}, T {flow_steps}: SDE samples {:.3}, ODE samples {:.3})",
        right(&sde[flow_steps]),
        right(&ode)
    );
    right(&ode)
}

/// Reference setting `T = 10`. `inv_temp = 0` must give back `π_β` (0.30) within 0.05.
/// `inv_temp = 2` (analytic 0.760): the reference algorithm itself under-tilts at `T = 10`
/// because its memoryless SDE is discretised with `T` Euler–Maruyama steps: measured with this
/// port 0.607 at T = 10 (the same after 5000 updates, so not under-training; the SDE samples
/// give 0.604, so not an ODE/SDE mismatch either), 0.659 at T = 20, 0.705 at T = 40. The bound
/// is therefore 0.76 ± 0.20, which the untilted 0.30 misses by far; with T = 40 the tilt must
/// come closer to the analytic weight than at T = 10, and within `FINE_TOLERANCE` of it.
#[test]
fn adjoint_matching_tilts_the_behaviour_policy_toward_high_q() {
    let base = trained_right_mode_fraction(0.0, 10, 1500);
    let want0 = tilted_weight_of_right_mode(0.0);
    eprintln!("inv_temp 0, T 10: right-mode weight {base:.3} (analytic {want0:.3})");
    assert!(
        (base - want0).abs() < 0.05,
        "inv_temp 0: {base:.3} vs pi_beta {want0:.3}"
    );
    let tilted = trained_right_mode_fraction(2.0, 10, 1500);
    let want = tilted_weight_of_right_mode(2.0);
    eprintln!("inv_temp 2, T 10: right-mode weight {tilted:.3} (analytic {want:.3})");
    assert!(
        (tilted - want).abs() < 0.20,
        "inv_temp 2: {tilted:.3} vs analytic {want:.3}"
    );
    assert!(
        tilted > base + 0.25,
        "inv_temp 2 must move mass to the high-Q mode: {tilted:.3} vs {base:.3}"
    );
    // A finer discretisation approaches the analytic tilt.
    let fine = trained_right_mode_fraction(2.0, 40, 1500);
    eprintln!("inv_temp 2: T 10 -> {tilted:.3}, T 40 -> {fine:.3} (analytic {want:.3})");
    assert!((fine - want).abs() < (tilted - want).abs());
    assert!(
        (fine - want).abs() < FINE_TOLERANCE,
        "T 40: {fine:.3} vs analytic {want:.3}"
    );
}
