//! `qamlab eval`: evaluates the latest checkpoint of a run, and with `--video` renders episodes of it.

use std::io::Read;
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
    /// Run directory written by `qamlab train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Evaluation episodes (at most 1000000).
    #[arg(long, default_value_t = 50,
          value_parser = super::count_up_to(qamlab_headless::limits::MAX_EVAL_EPISODES))]
    pub episodes: usize,
    /// Envs stepping together (at most 4096).
    #[arg(long, default_value_t = 10, value_parser = super::count_up_to(qamlab_headless::limits::MAX_ENVS))]
    pub envs: usize,
    /// Seed of the evaluation episodes' initial states.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: qamlab_headless::DeviceChoice,
    /// Also render episodes of the same checkpoint (480x360, 20 frames a second) to an animated GIF
    /// [default: RUN/eval.gif], or to numbered PNG frames when PATH is a directory (each episode's last frame
    /// repeated for a second, for assembling at 20 fps). Rendering is offscreen: no display is needed, but a Vulkan
    /// driver is (a GPU's, or mesa's software lavapipe).
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub video: Option<Option<PathBuf>>,
    /// Episodes in the video, from the evaluation's first initial states (with `--envs 1` on the CPU, the video's
    /// first episode is the evaluation's first, step for step).
    #[arg(long, default_value_t = 1, requires = "video",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub video_episodes: u32,
    /// Keep every k-th control step in the video (it then plays k times faster than real time).
    #[arg(long, default_value_t = 1, requires = "video",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub video_every: u32,
    /// Render the video only, in this process (what `--video` runs in a child process).
    #[arg(long, hide = true, requires = "video")]
    pub video_only: bool,
}

/// Runs `qamlab eval`: prints the success rate, then renders the video if asked.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run);
    let cfg = run.read_config()?;
    if let Some(original) = run.edited_original_scene().filter(|_| !args.video_only) {
        eprintln!(
            "note: {} changed since the run started; eval runs the task as the run trained on it, its copy {}",
            original.display(),
            run.task_scene().display()
        );
    }
    let video_out = match &args.video {
        Some(path) => Some(VideoOutput::from_path(
            &path.clone().unwrap_or_else(|| args.run.join("eval.gif")),
        )?),
        None => None,
    };
    let task = qamlab_tasks::load_task(&cfg.task)?;
    let spec = qamlab_sim::EnvSpec::of(&task.scene);
    let dims = (spec.obs_dim, spec.action_dim);
    if args.video_only {
        let out = video_out.expect("--video-only requires --video");
        // The acting agent runs on the CPU, as in the window: one env needs no GPU.
        let (_, agent) = run.load_latest_agent(&cfg, dims, tch::Device::Cpu)?;
        return record_video(&args, &task, agent, &out);
    }

    let device = args.device.resolve()?;
    let (checkpoint, mut agent) = run.load_latest_agent(&cfg, dims, device)?;
    let result = qamlab_headless::evaluate::evaluate(
        &mut agent,
        &task.scene,
        args.episodes,
        args.envs,
        args.seed,
    )
    .with_context(|| format!("evaluating task {}", cfg.task))?;
    let (low, high) = result.interval();
    println!(
        "{} ({}, checkpoint {}, {} updates): success {:.0}% over {} episodes (95% interval {:.0}-{:.0}%), mean \
         return {:.1}",
        task.name,
        cfg.agent.kind.as_str(),
        checkpoint.file_name().unwrap_or_default().display(),
        agent.step(),
        100.0 * result.success_rate,
        result.episodes,
        100.0 * low,
        100.0 * high,
        result.mean_return
    );
    if let Some(out) = video_out {
        render_in_child(&args, &out)?;
    }
    Ok(())
}

/// Renders the video in a child process (`qamlab eval ... --video-only`): the renderer's start-up cannot be
/// undone in-process, and a machine with no render adapter makes it abort; the child's failure is turned into an
/// error that says what is missing.
fn render_in_child(args: &EvalArgs, out: &VideoOutput) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the qamlab binary to render the video")?;
    eprintln!(
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
        .arg(&args.run)
        .args(["--seed", &args.seed.to_string()])
        .arg("--video")
        .arg(out.path())
        .args(["--video-episodes", &args.video_episodes.to_string()])
        .args(["--video-every", &args.video_every.to_string()])
        .arg("--video-only")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
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
    println!(
        "video: {} ({} frames of {}x{} at {} fps, {:.1} s, {} episode(s), {} successful)",
        out.path().display(),
        out.frame_count(&recorded),
        VIDEO_SIZE.0,
        VIDEO_SIZE.1,
        video::FPS,
        recorded.seconds(),
        recorded.successes.len(),
        successes
    );
    Ok(())
}
