//! `qamlab demo`, the main job on an embedded default: collect a cube-single dataset with the
//! noisy "play" oracle, train QAM offline then online, and report the success rates and the plot.
//! On a 2-core CPU it takes 2 to 11 minutes, by the machine (docs/benchmarks.md); with `--device cuda` it trains
//! the paper-size networks for longer.

use std::path::{Path, PathBuf};

use anyhow::Context;
use qamlab_headless::collect::{CollectOptions, collect_staged};
use qamlab_headless::run_dir::{RunDir, RunLock};
use qamlab_headless::{DeviceChoice, TrainConfig, TrainOptions};

/// Flags of `qamlab demo`.
#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// auto, cpu or cuda (cuda trains the paper-size networks).
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Directory for the dataset and the run.
    #[arg(long, default_value = "runs/demo", value_parser = super::path_arg())]
    pub out: PathBuf,
    /// Seed of the dataset and the run (at most 2^63-1).
    #[arg(long, default_value_t = 0, value_parser = super::seed_arg)]
    pub seed: u64,
    /// Hide the progress bars (and the start line; where stderr is not a terminal, the line each evaluation prints).
    #[arg(long)]
    pub quiet: bool,
}

/// The demo's schedule for a device.
struct Plan {
    episodes: usize,
    config: TrainConfig,
}

fn plan(device: tch::Device, dataset: PathBuf, seed: u64) -> anyhow::Result<Plan> {
    // The demo's settings ship as files a user can start from: small networks on a CPU, the paper's on a GPU.
    let name = if device.is_cuda() {
        "cuda-paper"
    } else {
        "cpu-small"
    };
    let text = qamlab_headless::config::shipped_config_text(name).expect("the demo's configs ship");
    let config = TrainConfig::from_toml_str(text, &format!("assets/configs/{name}.toml"))?;
    Ok(Plan {
        episodes: 1000,
        config: TrainConfig {
            dataset: Some(dataset),
            seed,
            ..config
        },
    })
}

/// The previous demo run in `run_dir`, if any, locked for replacing: refused if it holds anything a run does not
/// write, or if another process is training or resuming it.
fn claim_previous_run(run_dir: &Path) -> anyhow::Result<Option<RunLock>> {
    if !run_dir.exists() {
        return Ok(None);
    }
    let previous = RunDir::new(run_dir);
    let foreign = previous.foreign_entries()?;
    if !foreign.is_empty() {
        anyhow::bail!(
            "{} is where the demo writes its run, replacing the previous one, but it also holds {} that a run does \
             not write: move them, or pick another --out",
            run_dir.display(),
            foreign.join(", ")
        );
    }
    let lock = previous
        .lock()
        .context("the demo replaces its previous run, but not while it runs")?;
    Ok(Some(lock))
}

/// Where `run_dir` holds a run that was stopped before its end (a checkpoint, and no summary or one saying
/// `stopped_early`, as Ctrl-C leaves it): that this demo will replace it, and how to continue it instead, said
/// before the minutes of collecting.
fn interrupted_run_note(run_dir: &Path) -> Option<String> {
    let run = RunDir::new(run_dir);
    let finished = std::fs::read_to_string(run.summary())
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|summary| summary.is_object() && summary["stopped_early"] != true);
    if finished {
        return None;
    }
    let checkpoint = run.latest_checkpoint().ok().flatten()?;
    Some(format!(
        "note: {} holds an earlier demo run that stopped before its end (at {}); this demo replaces it once its \
         dataset is collected. To continue that run instead, stop here (Ctrl-C) and run `qamlab train --resume {}`",
        run_dir.display(),
        checkpoint.display(),
        qamlab_headless::shell::quote_path(run_dir)
    ))
}

/// Checks `--out` before any work: the folders for the dataset and the run must be possible there (what a file
/// in their way would otherwise fail on later, inside them).
fn check_out(out: &Path, run_dir: &Path) -> anyhow::Result<()> {
    qamlab_headless::files::check_out_dir(out, "--out")?;
    let shown = out.display();
    anyhow::ensure!(
        !out.is_file(),
        "--out {shown} is a file; the demo needs a folder for its dataset and its run"
    );
    if !out.exists() {
        qamlab_headless::files::check_writable(out, "--out")?;
    }
    anyhow::ensure!(
        !run_dir.exists() || run_dir.is_dir(),
        "--out {shown}: {} is a file, so the demo's run folder cannot be made there: move it, or choose another --out",
        run_dir.display()
    );
    Ok(())
}

/// `--out`, made if need be and locked for this demo's whole length: a second demo there would replace the dataset
/// this one trains on before finding its run in use (a fresh `--out` holds no run to lock yet). The lock is the
/// folder's own (`flock` on it), so nothing is left behind, and it ends with the process however that ends.
fn claim_out(out: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(out).with_context(|| format!("making --out {}", out.display()))?;
    let folder =
        std::fs::File::open(out).with_context(|| format!("opening --out {}", out.display()))?;
    match folder.try_lock() {
        Ok(()) => Ok(folder),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "--out {} is in use by another qamlab demo (collecting its dataset or training): let it finish, or \
             pick another --out",
            out.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking --out {}", out.display()))
        }
    }
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let device = args.device.resolve()?;
    let dataset = args.out.join("cube-single-play.npz");
    let plan = plan(device, dataset.clone(), args.seed)?;
    let run_dir = args.out.join(format!(
        "qam-{}",
        if device.is_cuda() { "cuda" } else { "cpu" }
    ));
    check_out(&args.out, &run_dir)?;
    let _out_claim = claim_out(&args.out)?;
    // Checked before collecting: the demo replaces its previous run, and nothing that is not one, nor a run
    // another process is using (held until the old run is cleared).
    let mut claim = claim_previous_run(&run_dir)?;
    if let Some(note) = interrupted_run_note(&run_dir) {
        qamlab_headless::stdout_line!("{note}")?;
    }
    let device_name = qamlab_headless::config::device_name(device);
    qamlab_headless::stdout_line!(
        "qamlab demo on {device_name}: {} play episodes of cube-single, then QAM {} offline + {} online steps",
        plan.episodes,
        plan.config.offline_steps,
        plan.config.online_steps
    )?;
    // Ctrl-C while collecting stops it with no temporary file left (training, next, takes Ctrl-C as a request to
    // checkpoint and stop).
    super::interrupt::cancel_on_interrupt();
    let staged = collect_staged(&CollectOptions {
        task: "cube-single".into(),
        episodes: plan.episodes,
        envs: 16,
        seed: args.seed,
        out: dataset.clone(),
        progress: !args.quiet,
        ..CollectOptions::default()
    })
    .context("collecting the demo dataset");
    let collected = super::interrupt::cancelled(
        staged,
        "the demo dataset was not written (no temporary file is left)",
    )?
    .put_in_place()?;
    if let Some(warning) = collected.left_out_warning() {
        tracing::warn!("{warning}");
    }
    qamlab_headless::stdout_line!(
        "dataset: {} ({} transitions)",
        dataset.display(),
        collected.transitions
    )?;
    // From here Ctrl-C asks training to checkpoint and stop; one that came before, during the collection's last
    // write, stops the demo here, before the previous run is cleared.
    let observer = super::interrupt::stop_on_interrupt();
    super::interrupt::stop_if_cancelled(
        "the dataset is written; the previous demo run is kept and training did not start",
    )?;
    // Another demo on the same --out may have started its run while this one collected.
    if claim.is_none() {
        claim = claim_previous_run(&run_dir)?;
    }
    if run_dir.exists() {
        qamlab_headless::stdout_line!("replacing the previous demo run {}", run_dir.display())?;
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("clearing the previous demo run {}", run_dir.display()))?;
    }
    drop(claim);
    let summary = qamlab_headless::train(
        TrainOptions::new(plan.config, &run_dir)
            .with_progress(!args.quiet)
            .with_observer(observer),
    )?;
    if let Err(stopped) = super::interrupt::check(&summary) {
        // A resumed training ends without the demo's own last word: say how to get it.
        let checkpointed = RunDir::new(&run_dir)
            .latest_checkpoint()
            .ok()
            .flatten()
            .is_some();
        return Err(match checkpointed {
            true => super::interrupt::interrupted(format!(
                "{stopped}; then `qamlab eval --run {} --episodes {FINAL_EPISODES} --seed {FINAL_SEED}` gives the \
                 demo's final evaluation",
                qamlab_headless::shell::quote_path(&run_dir)
            )),
            false => stopped,
        });
    }
    super::train::print_summary(&summary)?;
    let final_evaluation = final_evaluation(&run_dir, device)?;
    // The demo's headline figure, kept with the run's others.
    qamlab_headless::train::write_summary(&qamlab_headless::TrainSummary {
        final_evaluation: Some(final_evaluation),
        ..summary
    })
}

/// Episodes of the demo's last word on its agent: the run's own evaluations (30 episodes each) leave its success
/// rate within about +-17 points, 100 fresh ones within about +-10, for a second or two of acting.
const FINAL_EPISODES: usize = 100;
/// Seed of those episodes' initial states, other than the run's evaluations' (`qamlab eval --seed 7` repeats it).
const FINAL_SEED: u64 = 7;

/// Evaluates the run's last checkpoint over [`FINAL_EPISODES`] fresh episodes, as `qamlab eval` would, and says
/// how to repeat it.
fn final_evaluation(
    run_dir: &Path,
    device: tch::Device,
) -> anyhow::Result<qamlab_headless::train::FinalEvaluation> {
    let run = RunDir::new(run_dir);
    let cfg = run.read_config()?;
    let task = qamlab_tasks::load_task(&cfg.task)?;
    let spec = qamlab_sim::EnvSpec::of(&task.scene);
    let (_, mut agent) = run.load_latest_agent(&cfg, (spec.obs_dim, spec.action_dim), device)?;
    let result = qamlab_headless::evaluate::evaluate(
        &mut agent,
        &task.scene,
        FINAL_EPISODES,
        10,
        FINAL_SEED,
    )
    .context("the demo's final evaluation")?;
    let (low, high) = result.interval();
    qamlab_headless::stdout_line!(
        "final evaluation: success {:.0}% over {} fresh episodes (95% interval {:.0}-{:.0}%); `qamlab eval --run {} \
         --episodes {FINAL_EPISODES} --seed {FINAL_SEED} --device {}` repeats it",
        100.0 * result.success_rate,
        result.episodes,
        100.0 * low,
        100.0 * high,
        qamlab_headless::shell::quote_path(run_dir),
        if device.is_cuda() { "cuda" } else { "cpu" }
    )?;
    Ok(qamlab_headless::train::FinalEvaluation {
        success_rate: result.success_rate,
        interval: (low, high),
        mean_return: result.mean_return,
        episodes: result.episodes,
        envs: Some(result.envs),
        seed: FINAL_SEED,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_demo_at_a_time_uses_an_out_folder() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("fresh/demo");
        let held = claim_out(&out).unwrap();
        assert!(out.is_dir());
        let err = format!("{:#}", claim_out(&out).unwrap_err());
        assert_eq!(
            err,
            format!(
                "--out {} is in use by another qamlab demo (collecting its dataset or training): let it finish, or \
                 pick another --out",
                out.display()
            )
        );
        drop(held);
        claim_out(&out).unwrap();
    }

    #[test]
    fn a_demo_says_before_collecting_that_it_replaces_a_run_stopped_before_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("qam-cpu");
        // No run, or one without a checkpoint: nothing to say.
        assert_eq!(interrupted_run_note(&run), None);
        std::fs::create_dir_all(run.join("checkpoints/step-400")).unwrap();
        std::fs::write(run.join("checkpoints/latest"), "step-400").unwrap();
        let note = interrupted_run_note(&run).unwrap();
        assert!(
            note.starts_with(&format!(
                "note: {} holds an earlier demo run that stopped before its end (at {})",
                run.display(),
                run.join("checkpoints/step-400").display()
            )) && note.ends_with(&format!("`qamlab train --resume {}`", run.display())),
            "{note}"
        );
        // A run stopped by Ctrl-C or SIGTERM has a summary that says so.
        std::fs::write(run.join("summary.json"), r#"{"stopped_early": true}"#).unwrap();
        assert!(interrupted_run_note(&run).is_some());
        // A run that finished has its summary: replaced without a word.
        std::fs::write(run.join("summary.json"), r#"{"stopped_early": false}"#).unwrap();
        assert_eq!(interrupted_run_note(&run), None);
        // A path a shell would split is quoted, to paste.
        let spaced = dir.path().join("my demo/qam-cpu");
        std::fs::create_dir_all(spaced.join("checkpoints/step-400")).unwrap();
        std::fs::write(spaced.join("checkpoints/latest"), "step-400").unwrap();
        let note = interrupted_run_note(&spaced).unwrap();
        assert!(
            note.ends_with(&format!("`qamlab train --resume '{}'`", spaced.display())),
            "{note}"
        );
    }

    #[test]
    fn the_shipped_configs_are_the_demo_plans_and_valid() {
        for device in [tch::Device::Cpu, tch::Device::Cuda(0)] {
            let plan = plan(device, "d.npz".into(), 3).unwrap();
            plan.config.validate().unwrap();
            assert_eq!(plan.config.seed, 3);
            assert_eq!(
                plan.config.dataset.as_deref(),
                Some(std::path::Path::new("d.npz"))
            );
            assert_eq!(
                plan.config.device.resolve().is_ok(),
                !device.is_cuda() || tch::Cuda::is_available()
            );
        }
        let cpu = plan(tch::Device::Cpu, "d.npz".into(), 0).unwrap().config;
        assert_eq!(
            (
                cpu.agent.actor_hidden_dims.as_slice(),
                cpu.agent.num_qs,
                cpu.offline_steps,
                cpu.online_steps
            ),
            ([128, 128].as_slice(), 2, 20_000, 30_000)
        );
    }
}
