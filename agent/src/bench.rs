//! Speed benchmark: gradient updates per second and `sample_actions` latency at batch 1 and
//! 1024, on random data of the configured sizes. Used by `qamlab bench agent`.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::agent::Agent;
use crate::config::{AgentConfig, AgentKind};
use crate::data::Batch;
use crate::error::Result;

/// Benchmark figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    /// Agent kind.
    pub kind: String,
    /// Device, e.g. `Cpu` or `Cuda(0)`.
    pub device: String,
    /// How updates and acting ran: `eager`, `cuda graphs`, or `eager (CUDA graph failed: …)`.
    pub execution: String,
    /// Batch size of the updates.
    pub batch_size: usize,
    /// Timed updates (after warm-up).
    pub updates: usize,
    /// Gradient updates per second.
    pub updates_per_sec: f64,
    /// Median `sample_actions` latency for one observation, milliseconds.
    pub act_latency_b1_ms: f64,
    /// Median `sample_actions` latency for 1024 observations, milliseconds.
    pub act_latency_b1024_ms: f64,
}

/// The paper's configuration: B 256, 4×512 MLPs, K 10, T 10, H 5 (with obs 28 / action 5).
pub fn paper_config() -> AgentConfig {
    AgentConfig::default()
}

/// A configuration small enough for a CPU: B 64, 2×64 MLPs, K 2, T 10, H 5.
pub fn small_config() -> AgentConfig {
    AgentConfig {
        batch_size: 64,
        actor_hidden_dims: vec![64, 64],
        value_hidden_dims: vec![64, 64],
        num_qs: 2,
        ..AgentConfig::default()
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn random_batch(b: i64, h: i64, o: i64, a: i64, device: Device) -> Batch {
    let opts = (Kind::Float, device);
    Batch {
        observations: Tensor::randn([b, o], opts),
        actions: Tensor::rand([b, h, a], opts) * 2.0 - 1.0,
        rewards: -Tensor::rand([b, h], opts),
        masks: Tensor::ones([b, h], opts),
        valid: Tensor::ones([b, h], opts),
        terminals: Tensor::zeros([b, h], opts),
        next_observations: Tensor::randn([b, h, o], opts),
    }
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2] * 1e3
}

/// How a benchmarked agent executes.
#[derive(Clone, Copy, Debug)]
pub struct Execution {
    /// Replay updates and acting from CUDA graphs captured during the warm-up (CUDA only).
    pub cuda_graphs: bool,
    /// Split CPU updates over two threads ([`Agent::set_split_update`]).
    pub split_update: bool,
}

/// Times `updates` gradient steps (after 3 warm-up steps) and 20 acting calls at batch 1 and 1024,
/// executed as `execution` says.
pub fn bench_agent(
    kind: AgentKind,
    config: AgentConfig,
    device: Device,
    updates: usize,
    obs_dim: usize,
    action_dim: usize,
    execution: Execution,
) -> Result<BenchReport> {
    let cfg = AgentConfig { kind, ..config };
    let (b, h) = (cfg.batch_size as i64, cfg.horizon_length as i64);
    let mut agent = Agent::new(cfg.clone(), obs_dim, action_dim, device, 0)?;
    // A refusal (no shim in this build, say) is not fatal: the row runs eagerly and says why.
    let _ = agent.use_cuda_graphs(execution.cuda_graphs);
    agent.set_split_update(execution.split_update);
    let batch = random_batch(b, h, obs_dim as i64, action_dim as i64, device);
    for _ in 0..3 {
        agent.update(&batch)?;
    }
    sync(device);
    let start = Instant::now();
    let mut last = None;
    for _ in 0..updates {
        last = Some(agent.update(&batch)?);
    }
    sync(device);
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(m) = last {
        m.check_finite()?;
    }
    let mut latency = |n: i64| -> Result<f64> {
        let obs = Tensor::randn([n, obs_dim as i64], (Kind::Float, device));
        // With graphs, the first call captures and the second is checked against eager work.
        for _ in 0..2 {
            let _ = agent.sample_actions(&obs)?;
        }
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let a = agent.sample_actions(&obs)?;
            // reading back what acting needs is part of the latency
            let _ = a.to_device(Device::Cpu);
            times.push(t.elapsed().as_secs_f64());
        }
        Ok(median_ms(times))
    };
    let act_latency_b1_ms = latency(1)?;
    let act_latency_b1024_ms = latency(1024)?;

    Ok(BenchReport {
        kind: kind.as_str().into(),
        device: format!("{device:?}"),
        execution: agent.execution(),
        batch_size: cfg.batch_size,
        updates,
        updates_per_sec: updates as f64 / elapsed,
        act_latency_b1_ms,
        act_latency_b1024_ms,
    })
}
