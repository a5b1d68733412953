//! Runs for the tests: run directories as `train` leaves them, and the flags to plot them.

use std::path::{Path, PathBuf};

use qamlab_agent::AgentKind;
use qamlab_headless::TrainConfig;
use qamlab_headless::evaluate::EvalPoint;
use qamlab_headless::phase::Phase;
use qamlab_headless::plot::Series;
use qamlab_headless::run_dir::RunDir;

use super::{PlotArgs, XAxis};

/// A run directory as `train` leaves it, finished (its summary says it did not stop early), with the given
/// evaluations (step, success rate; the return is -100 times the rate) and metrics rows.
pub(super) fn fake_run(
    root: &Path,
    name: &str,
    cfg: &TrainConfig,
    evals: &[(u64, f64)],
    rows: &[serde_json::Value],
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let run = RunDir::new(&dir);
    std::fs::write(run.config(), cfg.to_toml().unwrap()).unwrap();
    let evals: Vec<EvalPoint> = evals
        .iter()
        .map(|&(step, rate)| EvalPoint {
            step,
            phase: Phase::Offline,
            success_rate: rate,
            mean_return: -100.0 * rate,
            episodes: 10,
        })
        .collect();
    run.write_evals(&evals).unwrap();
    for row in rows {
        run.append_metrics(row).unwrap();
    }
    std::fs::write(run.summary(), r#"{"stopped_early": false}"#).unwrap();
    dir
}

/// `fake_run` of a run with `config(kind, seed)`.
pub(super) fn fake_run_of(
    root: &Path,
    name: &str,
    kind: AgentKind,
    seed: u64,
    evals: &[(u64, f64)],
    rows: &[serde_json::Value],
) -> PathBuf {
    fake_run(root, name, &config(kind, seed), evals, rows)
}

/// A QAM run named `lr{lr}-s{seed}` in `root` whose settings differ from the others' by its learning rate, with one
/// evaluation.
pub(super) fn run_with_lr(root: &Path, lr: f64, seed: u64) -> PathBuf {
    let mut cfg = config(AgentKind::Qam, seed);
    cfg.agent.lr = lr;
    fake_run(root, &format!("lr{lr}-s{seed}"), &cfg, &[(100, 0.5)], &[])
}

/// The configuration of a run of `kind` seeded `seed`, with a dataset and 200 offline steps.
pub(super) fn config(kind: AgentKind, seed: u64) -> TrainConfig {
    let mut cfg = TrainConfig {
        dataset: Some("/data/cube-single-play.npz".into()),
        offline_steps: 200,
        seed,
        ..TrainConfig::default()
    };
    cfg.agent.kind = kind;
    cfg
}

pub(super) fn args(runs: &[&PathBuf]) -> PlotArgs {
    PlotArgs {
        runs: runs.iter().map(|r| r.to_path_buf()).collect(),
        out: "unused.png".into(),
        title: None,
        metric: "success".into(),
        x: XAxis::Steps,
        no_group: false,
        band: super::BandArg::Minmax,
        seeds: false,
        smooth: 1,
    }
}

/// `args` plotting `metric`.
pub(super) fn metric_args(metric: &str, runs: &[&PathBuf]) -> PlotArgs {
    PlotArgs {
        metric: metric.into(),
        ..args(runs)
    }
}

/// `args` over wall-clock time.
pub(super) fn time_args(runs: &[&PathBuf]) -> PlotArgs {
    PlotArgs {
        x: XAxis::Time,
        ..args(runs)
    }
}

/// A point as x, y and band.
pub(super) type Point = (f64, f64, Option<(f64, f64)>);

pub(super) fn points(series: &Series) -> Vec<Point> {
    series.points.iter().map(|p| (p.x, p.y, p.band)).collect()
}

pub(super) fn row(step: u64, wall_seconds: f64, critic_loss: f64) -> serde_json::Value {
    serde_json::json!({"step": step, "phase": "offline", "wall_seconds": wall_seconds,
                       "critic_loss": critic_loss, "q_mean": -critic_loss})
}

/// Gives the run at `dir` a checkpoint whose replay file records `crc` as its dataset's CRC-32, as `train` writes
/// it (the other files are placeholders: only the replay file's header is read).
pub(super) fn record_dataset_crc(dir: &Path, crc: u32) {
    let checkpoint = RunDir::new(dir).checkpoints().join("step-100");
    std::fs::create_dir_all(&checkpoint).unwrap();
    std::fs::write(checkpoint.join("agent.safetensors"), b"").unwrap();
    std::fs::write(checkpoint.join("state.json"), b"{}").unwrap();
    let header = format!(r#"{{"__metadata__":{{"dataset_crc32":"{crc}","seed":"0"}}}}"#);
    let mut replay = (header.len() as u64).to_le_bytes().to_vec();
    replay.extend_from_slice(header.as_bytes());
    std::fs::write(checkpoint.join("replay.safetensors"), replay).unwrap();
}
