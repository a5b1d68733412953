//! Simulation throughput: env steps per second with random actions and with the collecting oracle.

use std::time::Instant;

use qamlab_sim::{BatchedEnv, EnvOptions};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::oracle::{Oracle, OracleConfig, OracleMode};
use crate::registry::{Task, TaskError};

/// One measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct SimBenchRow {
    /// `"random"` (uniform random actions) or `"oracle"` (the play oracle with noise 0.1, as collection runs it).
    pub policy: &'static str,
    /// Envs stepped together.
    pub envs: usize,
    /// Control steps timed (each steps every env).
    pub steps: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Env steps per second, all envs together.
    pub env_steps_per_sec: f64,
    /// CPU time the process spent (all threads), seconds; `None` where `/proc` is unavailable.
    pub cpu_seconds: Option<f64>,
    /// Env steps per CPU-second: throughput per core, robust to other load on the machine. `None` when
    /// the process's CPU time is unknown or zero.
    pub env_steps_per_cpu_sec: Option<f64>,
}

/// CPU time of this process so far (user + system, all threads), from the process CPU-time clock: to the
/// nanosecond, where `/proc`'s 10 ms ticks left short rows without a figure.
fn process_cpu_seconds() -> Option<f64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) } == 0;
    ok.then_some(now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9)
}

/// Times `steps` control steps of `task` for each env count, with random actions, then with the oracle where the
/// task has one. Episodes auto-reset as usual (resets are part of the cost).
pub fn bench_sim(
    task: &Task,
    env_counts: &[usize],
    steps: usize,
) -> Result<Vec<SimBenchRow>, TaskError> {
    let mut rows = Vec::new();
    for &n in env_counts {
        let mut env = BatchedEnv::new(&task.scene, n, EnvOptions::default())?;
        let spec = env.spec().clone();
        let seeds: Vec<u64> = (0..n as u64).collect();
        env.reset(&seeds)?;
        let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
        let batches: Vec<Vec<f32>> = (0..16).map(|_| spec.random_actions(&mut rng, n)).collect();
        let (start, cpu) = (Instant::now(), process_cpu_seconds());
        for s in 0..steps {
            env.step(&batches[s % batches.len()])?;
        }
        rows.push(row("random", n, steps, start, cpu));

        // As `qamlab collect` drives it: play in the region the task's goals are drawn from.
        let config = OracleConfig {
            mode: OracleMode::Play,
            noise: 0.1,
            play_region: OracleConfig::play_region_of(&task.scene),
            ..OracleConfig::default()
        };
        let Ok(mut oracle) = Oracle::new(&task.scene, &spec, config, &seeds) else {
            continue;
        };
        let mut obs = env.reset(&seeds)?.to_vec();
        let (start, cpu) = (Instant::now(), process_cpu_seconds());
        for _ in 0..steps {
            let actions = oracle.act(&obs).to_vec();
            let out = env.step(&actions)?;
            obs.copy_from_slice(&out.obs);
            oracle.episodes_ended(out);
        }
        rows.push(row("oracle", n, steps, start, cpu));
    }
    Ok(rows)
}

fn row(
    policy: &'static str,
    envs: usize,
    steps: usize,
    start: Instant,
    cpu_start: Option<f64>,
) -> SimBenchRow {
    let seconds = start.elapsed().as_secs_f64();
    let env_steps = (envs * steps) as f64;
    let cpu_seconds = cpu_start.zip(process_cpu_seconds()).map(|(a, b)| b - a);
    SimBenchRow {
        policy,
        envs,
        steps,
        seconds,
        env_steps_per_sec: env_steps / seconds.max(1e-9),
        cpu_seconds,
        env_steps_per_cpu_sec: cpu_seconds.filter(|&c| c > 0.0).map(|c| env_steps / c),
    }
}
