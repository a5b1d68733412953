//! `qamlab eval`: evaluates the latest checkpoint of a run (or one of an earlier step it kept), and with `--video`
//! renders episodes of it.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context;
use qamlab_headless::run_dir::RunDir;

use crate::view::video::{self, VideoOptions, VideoOutput};

/// Size of the video's frames.
const VIDEO_SIZE: (u32, u32) = (480, 360);

/// Flags of `qamlab eval`.
#[derive(clap::Args, Clone, Debug)]
pub struct EvalArgs {
    /// Run directory written by `qamlab train` (`--checkpoint` too, as `view` names it), or one of its checkpoints,
    /// `RUN/checkpoints/step-N`.
    #[arg(long, alias = "checkpoint", value_parser = super::path_arg())]
    pub run: PathBuf,
    /// Evaluate the run's checkpoint of this step instead of its latest: one of those `keep_checkpoints` kept
    /// (`qamlab train --keep-checkpoints K`; their steps are the folders' names in RUN/checkpoints).
    #[arg(long, value_parser = super::non_negative::<u64>)]
    pub step: Option<u64>,
    /// Evaluation episodes (at most 1000000).
    #[arg(long, default_value_t = 50,
          value_parser = super::count_up_to(qamlab_headless::limits::MAX_EVAL_EPISODES))]
    pub episodes: usize,
    /// Envs stepping together (at most 4096). Each env starts its episodes from initial states of its own, so
    /// the result depends on the count as on --seed: another gives other episodes.
    #[arg(long, default_value_t = 10, value_parser = super::count_up_to(qamlab_headless::limits::MAX_ENVS))]
    pub envs: usize,
    /// Seed of the evaluation episodes' initial states (at most 2^63-1).
    #[arg(long, default_value_t = 0, value_parser = super::seed_arg)]
    pub seed: u64,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: qamlab_headless::DeviceChoice,
    /// Also render episodes of the same checkpoint (480x360, 20 frames a second) to an animated GIF
    /// [default: RUN/eval.gif, or RUN/eval-step-N.gif with --step], or to numbered PNG frames when PATH is a directory (each episode's last frame
    /// repeated for a second, for assembling at 20 fps). Rendering is offscreen: no display is needed, but a Vulkan
    /// driver is (a GPU's, or mesa's software lavapipe).
    #[arg(long, value_name = "PATH", num_args = 0..=1, value_parser = super::path_arg())]
    pub video: Option<Option<PathBuf>>,
    /// Episodes in the video, from the evaluation's first initial states (with `--envs 1` on the CPU, the video's
    /// first episode is the evaluation's first, step for step; at most 100).
    #[arg(long, default_value_t = 1, requires = "video",
          value_parser = super::count_up_to(100u32))]
    pub video_episodes: u32,
    /// Keep every k-th control step in the video (it then plays k times faster than real time; at most 100).
    #[arg(long, default_value_t = 1, requires = "video",
          value_parser = super::count_up_to(100u32))]
    pub video_every: u32,
    /// Print one JSON object on stdout instead of the sentence: run_dir, checkpoint, step, total_steps (the step
    /// the run ends at), finished (step is total_steps), updates, task, agent, episodes, envs (those the episodes
    /// were spread over), seed, successes, success_rate (unrounded), interval (its 95% bounds), mean_return, video
    /// (its path, or null without --video) and video_error (why the video asked for was not made, which fails the
    /// command, or null).
    #[arg(long)]
    pub json: bool,
    /// Render the video only, in this process (what `--video` runs in a child process).
    #[arg(long, hide = true, requires = "video")]
    pub video_only: bool,
}

/// Runs `qamlab eval`: prints the success rate, then renders the video if asked.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    // Its progress lines into a log whose reader went away must not end an evaluation of minutes.
    super::interrupt::survive_closed_pipes();
    let (run, step) = chosen_checkpoint(&args)?;
    let cfg = run.read_config()?;
    if let Some(original) = run.edited_original_scene().filter(|_| !args.video_only) {
        qamlab_headless::stderr_line!(
            "note: {} changed since the run started; eval runs the task as the run trained on it, its copy {}",
            original.display(),
            run.task_scene().display()
        );
    }
    let video_out = match &args.video {
        Some(Some(path)) => Some(VideoOutput::from_path(path)?),
        Some(None) => Some(VideoOutput::in_run(run.root(), step)?),
        None => None,
    };
    let task = qamlab_tasks::load_task(&cfg.task)?;
    let spec = qamlab_sim::EnvSpec::of(&task.scene);
    let dims = (spec.obs_dim, spec.action_dim);
    // The checkpoint of the step asked for, else the latest (read again where it moved on while it was loaded).
    let load = |device| match step {
        Some(step) => {
            let checkpoint = run.checkpoint_at(step)?;
            let agent = run.load_agent(&checkpoint, &cfg, dims, device)?;
            anyhow::Ok((checkpoint, agent))
        }
        None => run.load_latest_agent(&cfg, dims, device),
    };
    if args.video_only {
        let out = video_out.expect("--video-only requires --video");
        // The acting agent runs on the CPU, as in the window: one env needs no GPU. With the run's threads and
        // from the evaluation's own stream of draws, as the evaluation acts: its first episode is the video's.
        qamlab_headless::config::set_cpu_threads(cfg.cpu_threads);
        // The checkpoint the evaluation took, unless a run training still has removed it since (it keeps the newest
        // keep_checkpoints): then its latest, said.
        let (_, mut agent) = load(tch::Device::Cpu).or_else(|gone| match step {
            Some(step) if run.checkpoint_at(step).is_err() => {
                let (latest, agent) = run.load_latest_agent(&cfg, dims, tch::Device::Cpu)?;
                qamlab_headless::stderr_line!(
                    "note: step-{step} is gone ({gone:#}): the video shows {}, the run's latest",
                    latest.display()
                );
                anyhow::Ok((latest, agent))
            }
            _ => Err(gone),
        })?;
        agent.set_acting_position(qamlab_headless::evaluate::EVAL_ACTING_POSITION);
        return record_video(&args, &task, agent, &out);
    }

    let device = args.device.resolve()?;
    if device == tch::Device::Cpu {
        // The run's threads: sums over many values depend on their count, so its evaluations are repeated with it.
        let threads = qamlab_headless::config::set_cpu_threads(cfg.cpu_threads);
        let cores = qamlab_headless::config::available_cores();
        if threads > cores {
            tracing::warn!(
                "the run's cpu_threads = {threads} is more than the {cores} cores this machine gives the process: \
                 libtorch's threads spin, so the evaluation runs many times slower (its sums stay the run's)"
            );
        }
    }
    let (checkpoint, mut agent) = load(device)?;
    let total_steps = qamlab_headless::train::total_steps(&cfg);
    let chosen = step;
    let step = qamlab_headless::run_dir::checkpoint_dir_step(&checkpoint);
    // A step asked for is known to be part-way; the latest may be taken for the run's result.
    if let Some(step) = step.filter(|&s| s < total_steps && chosen.is_none()) {
        note_part_way(&run, &checkpoint, step, total_steps);
    }
    let result = evaluate_logging_progress(&args, &mut agent, &task.scene)
        .with_context(|| format!("evaluating task {}", cfg.task))?;
    if !args.json {
        let (low, high) = result.interval();
        qamlab_headless::stdout_line!(
            "{} ({}, checkpoint {}, {} updates): success {:.0}% over {} episodes (95% interval {:.0}-{:.0}%), \
             mean return {:.1}",
            task.name,
            cfg.agent.kind.as_str(),
            checkpoint.file_name().unwrap_or_default().display(),
            agent.step(),
            100.0 * result.success_rate,
            result.episodes,
            100.0 * low,
            100.0 * high,
            result.mean_return
        )?;
    }
    let rendered = match &video_out {
        // Of the checkpoint evaluated, by its step.
        Some(out) => render_in_child(&args, run.root(), step, out),
        None => Ok(()),
    };
    if args.json {
        // Printed whatever became of the video (its error follows on stderr): the evaluation stands.
        let video = video_out.filter(|_| rendered.is_ok());
        let video_error = rendered.as_ref().err().map(|e| format!("{e:#}"));
        let report = EvalReport {
            run: run.root(),
            checkpoint: &checkpoint,
            step,
            total_steps,
            updates: agent.step(),
            task: &task.name,
            agent: cfg.agent.kind.as_str(),
            seed: args.seed,
            result: &result,
            video: video.as_ref().map(VideoOutput::path),
            video_error,
        };
        qamlab_headless::stdout_line!("{}", report.to_json())?;
    }
    rendered
}

/// The run `--run` names and the step `--step` or a checkpoint's folder (`RUN/checkpoints/step-N`) asks for, if
/// any (else its latest is evaluated).
fn chosen_checkpoint(args: &EvalArgs) -> anyhow::Result<(RunDir, Option<u64>)> {
    let Some((run, step)) = RunDir::of_checkpoint_dir(&args.run) else {
        return Ok((RunDir::new(&args.run), args.step));
    };
    if let Some(asked) = args.step.filter(|&asked| asked != step) {
        anyhow::bail!(
            "--step {asked} and --run {}, a checkpoint of step {step}: give one of them",
            args.run.display()
        );
    }
    Ok((run, Some(step)))
}

/// Says that `checkpoint`, the one evaluated, is `step` of a run of `total_steps`: a rate of an agent part-way
/// through its run is no figure of the run, which comparisons must not take it for.
fn note_part_way(run: &RunDir, checkpoint: &std::path::Path, step: u64, total_steps: u64) {
    // Another machine's lock may not show here (NFS with local locks): a run that looks stopped may train there.
    let why = if run.in_use() {
        "the run is training still".to_string()
    } else {
        format!(
            "the run stopped early, or trains on another machine; `qamlab train --resume {}` finishes a stopped one",
            qamlab_headless::shell::quote_path(run.root())
        )
    };
    qamlab_headless::stderr_line!(
        "note: {} is step {step} of the run's {total_steps}: not the finished agent ({why})",
        checkpoint.display()
    );
}

/// The evaluation `args` ask for, with a progress bar in a terminal and a line of its progress every so often where
/// no bar shows (a log): one of many episodes takes minutes.
fn evaluate_logging_progress(
    args: &EvalArgs,
    agent: &mut qamlab_agent::Agent,
    scene: &qamlab_sim::TaskScene,
) -> anyhow::Result<qamlab_headless::evaluate::EvalResult> {
    let log = std::cell::RefCell::new(qamlab_headless::console::LogProgress::new(true));
    // Drawn only where standard error is a terminal.
    let bar =
        qamlab_headless::console::progress_bar("eval", args.episodes as u64, "episodes", true);
    let started = std::time::Instant::now();
    let report = |done: usize| {
        bar.set_position(done as u64);
        if log.borrow_mut().due() {
            qamlab_headless::stderr_line!(
                "eval: {done} of {} episodes, {:.0} s in",
                args.episodes,
                started.elapsed().as_secs_f64()
            );
        }
        false
    };
    let result = qamlab_headless::evaluate::evaluate_unless_stopped(
        agent,
        scene,
        args.episodes,
        args.envs,
        args.seed,
        &report,
    );
    bar.finish_and_clear();
    result?.context("the evaluation stopped before its end")
}

/// What `qamlab eval --json` reports.
struct EvalReport<'a> {
    run: &'a std::path::Path,
    checkpoint: &'a std::path::Path,
    /// The run's step the checkpoint was taken at.
    step: Option<u64>,
    /// The step the run ends at.
    total_steps: u64,
    updates: u64,
    task: &'a str,
    agent: &'a str,
    seed: u64,
    result: &'a qamlab_headless::evaluate::EvalResult,
    video: Option<&'a std::path::Path>,
    /// Why the video asked for was not made (the command fails too).
    video_error: Option<String>,
}

impl EvalReport<'_> {
    /// The report as one JSON object: the sentence's figures unrounded, and what it leaves out (paths, the
    /// checkpoint's step, the seed, the count of successes).
    fn to_json(&self) -> serde_json::Value {
        let result = self.result;
        let (low, high) = result.interval();
        serde_json::json!({
            "run_dir": super::absolute_text(self.run),
            "checkpoint": super::absolute_text(self.checkpoint),
            "step": self.step,
            "total_steps": self.total_steps,
            "finished": self.step.is_some_and(|s| s >= self.total_steps),
            "updates": self.updates,
            "task": self.task,
            "agent": self.agent,
            "episodes": result.episodes,
            "envs": result.envs,
            "seed": self.seed,
            "successes": result.successes(),
            "success_rate": result.success_rate,
            "interval": [low, high],
            "mean_return": result.mean_return,
            "video": self.video.map(super::absolute_text),
            "video_error": self.video_error,
        })
    }
}

/// Renders the video in a child process (`qamlab eval ... --video-only`): the renderer's start-up cannot be
/// undone in-process, and a machine with no render adapter makes it abort; the child's failure is turned into an
/// error that says what is missing.
fn render_in_child(
    args: &EvalArgs,
    run: &std::path::Path,
    step: Option<u64>,
    out: &VideoOutput,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the qamlab binary to render the video")?;
    qamlab_headless::stderr_line!(
        "eval: rendering {} episode(s) to {} ...",
        args.video_episodes,
        out.path().display()
    );
    // Ctrl-C and SIGTERM stop the renderer, which this process waits for: the signal is passed to it (see
    // below), and the command then says no video was written.
    super::interrupt::cancel_on_interrupt();
    let mut renderer = Command::new(exe);
    renderer
        .arg("eval")
        .arg("--run")
        .arg(run)
        .args(step.map(|step| format!("--step={step}")))
        .args(["--seed", &args.seed.to_string()])
        .arg("--video")
        .arg(out.path())
        .args(["--video-episodes", &args.video_episodes.to_string()])
        .args(["--video-every", &args.video_every.to_string()])
        .arg("--video-only")
        .stdin(Stdio::null())
        // With --json, stdout holds the one JSON object: the renderer's line goes to stderr.
        .stdout(if args.json {
            std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_or_else(|_| Stdio::null(), Stdio::from)
        } else {
            Stdio::inherit()
        })
        .stderr(Stdio::piped())
        // In a process group of its own, the terminal's Ctrl-C reaches this process alone, which passes it on
        // once: a second signal must reach the renderer only as a second one to this process (which ends it).
        .process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl(), getppid() and _exit() are async-signal-safe, as between fork and exec they must be.
    unsafe {
        renderer.pre_exec(move || {
            // Ended by SIGTERM (which removes its temporary file) when this process dies first, however it dies:
            // SIGKILL, or the SIGHUP of a closed terminal or a kill of the process group, which it is not in; else
            // it would write the video after `qamlab eval` had ended.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // (this process died before the prctl)
            if libc::getppid() != parent {
                libc::_exit(128 + libc::SIGTERM);
            }
            Ok(())
        });
    }
    let mut child = renderer.spawn().context("starting the video renderer")?;
    let mut pipe = child.stderr.take().expect("the renderer's stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    });
    let status = super::interrupt::wait_passing_signal(&mut child)
        .context("waiting for the video renderer")?;
    let stderr = reader.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    if super::interrupt::requested() {
        return Err(super::interrupt::interrupted(
            "interrupted: no video was written (no temporary file is left); the evaluation above stands",
        ));
    }
    let stderr = String::from_utf8_lossy(&stderr);
    // A panic's message (not its backtrace), or else the last lines.
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = match lines.iter().position(|l| l.contains("panicked at")) {
        Some(at) => &lines[at..lines.len().min(at + 4)],
        None => &lines[lines.len().saturating_sub(15)..],
    };
    if stderr.contains("Unable to find a GPU") || stderr.contains("no render adapter") {
        anyhow::bail!(
            "--video: no render adapter: rendering needs {}. No video was written.",
            crate::view::preflight::VULKAN_DRIVER_HELP
        );
    }
    anyhow::bail!(
        "--video: rendering failed ({}); no video was written. The renderer said:\n{}",
        status,
        tail.join("\n")
    )
}

/// Records the video in this process (the child side of [`render_in_child`]).
fn record_video(
    args: &EvalArgs,
    task: &qamlab_tasks::Task,
    agent: qamlab_agent::Agent,
    out: &VideoOutput,
) -> anyhow::Result<()> {
    let options = VideoOptions {
        episodes: args.video_episodes as usize,
        every: args.video_every,
        width: VIDEO_SIZE.0,
        height: VIDEO_SIZE.1,
        // The evaluation's first initial states.
        first_seed: qamlab_headless::evaluate::eval_env_seed(args.seed, 0),
    };
    let recorded = video::record(task, agent, &options)?;
    // While rendering, a stop signal ends this process with nothing written; from here it cancels the write, which
    // then removes its temporary file.
    super::interrupt::cancel_on_interrupt();
    super::interrupt::cancelled(
        out.write(&recorded),
        "no video was written (no temporary file is left)",
    )?;
    let successes = recorded.successes.iter().filter(|s| **s).count();
    qamlab_headless::stdout_line!(
        "video: {} ({} frames of {}x{} at {} fps, {:.1} s, {} episode(s), {} successful)",
        out.path().display(),
        out.frame_count(&recorded),
        VIDEO_SIZE.0,
        VIDEO_SIZE.1,
        video::FPS,
        recorded.seconds(),
        recorded.successes.len(),
        successes
    )?;
    Ok(())
}
