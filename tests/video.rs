//! `qamlab eval --video`, for real and without a display: a tiny run (a 2-episode dataset, 20 offline updates of
//! a tiny QAM), then its evaluation with a video rendered offscreen (mesa's lavapipe where there is no GPU). The
//! GIF must decode into many frames of 480x360 in which the scene moves, each with its caption strip at the top, the
//! last one framed in the colour of the episode's outcome; with no Vulkan driver the command must fail saying so,
//! and write nothing.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{collect_cmd, run_ok, tiny_config, train_cmd};
use std::time::Instant;

fn qamlab() -> Command {
    offscreen(common::qamlab())
}

/// `cmd` with no display: none is needed, so none is given.
fn offscreen(mut cmd: Command) -> Command {
    cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    cmd
}

/// The cheapest run directory with a checkpoint: no online phase, tiny networks.
const TINY: &str = tiny_config!(
    r#"
task = "cube-single"
offline_steps = 20
online_steps = 0
eval_episodes = 1
eval_envs = 1
checkpoint_interval = 20
log_interval = 10
device = "cpu"
"#
);

fn tiny_run(dir: &Path) -> PathBuf {
    let dataset = dir.join("data.npz");
    run_ok(&mut offscreen(collect_cmd(&dataset, "2", "3")));
    let config = dir.join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let run = dir.join("run");
    run_ok(&mut offscreen(train_cmd(&config, &dataset, &run)));
    run
}

/// Every frame of a GIF composed onto its canvas (RGBA), and the canvas size.
fn decode_gif(path: &Path) -> ((usize, usize), Vec<Vec<u8>>) {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options
        .read_info(std::fs::File::open(path).expect("opening the GIF"))
        .expect("a GIF header");
    let (w, h) = (usize::from(decoder.width()), usize::from(decoder.height()));
    let mut canvas = vec![0u8; w * h * 4];
    let mut frames = Vec::new();
    while let Some(frame) = decoder.read_next_frame().expect("a decodable frame") {
        let (left, top) = (usize::from(frame.left), usize::from(frame.top));
        let (fw, fh) = (usize::from(frame.width), usize::from(frame.height));
        assert!(
            left + fw <= w && top + fh <= h,
            "a frame outside the canvas"
        );
        for y in 0..fh {
            for x in 0..fw {
                let src = &frame.buffer[(y * fw + x) * 4..(y * fw + x) * 4 + 4];
                if src[3] != 0 {
                    let dst = ((top + y) * w + left + x) * 4;
                    canvas[dst..dst + 4].copy_from_slice(src);
                }
            }
        }
        frames.push(canvas.clone());
    }
    ((w, h), frames)
}

/// Mean absolute difference of two RGBA pictures, per channel value.
fn difference(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.len() as f64
}

#[test]
fn eval_renders_a_video_offscreen_and_fails_clearly_without_a_renderer() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    eprintln!("tiny run in {:.1} s", start.elapsed().as_secs_f32());

    let gif_path = dir.path().join("out").join("eval.gif");
    let rendered = Instant::now();
    let out = run_ok(
        qamlab()
            .arg("eval")
            .arg("--run")
            .arg(&run)
            .args(["--episodes", "1", "--envs", "1", "--device", "cpu"])
            .arg("--video")
            .arg(&gif_path)
            // Every 4th control step: fewer frames to render in software, the same episode.
            .args(["--video-every", "4"])
            // The evaluation as one JSON object alone on stdout, the video's path in it; the renderer's line
            // goes to stderr.
            .arg("--json"),
    );
    eprintln!(
        "eval with a video in {:.1} s",
        rendered.elapsed().as_secs_f32()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(report["video"], gif_path.display().to_string(), "{stdout}");
    assert_eq!(report["episodes"], 1, "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("video: "))
        .unwrap_or_else(|| panic!("eval did not say where the video is:\n{stderr}"));
    assert!(
        line.contains(&*gif_path.to_string_lossy()),
        "the video line names another path: {line}"
    );
    let succeeded = line.contains("1 successful");
    // How long it plays: 50 frames at most, then the last one held for a second.
    let seconds: f64 = line
        .split(" fps, ")
        .nth(1)
        .and_then(|rest| rest.split(" s, ").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the video line gives no length: {line}"));
    assert!((1.0..=3.6).contains(&seconds), "{line}");

    let ((w, h), frames) = decode_gif(&gif_path);
    assert_eq!((w, h), (480, 360), "the video's size");
    // 200 control steps at most, every 4th kept: 50 frames for a failure, fewer for an early success.
    assert!(frames.len() >= 10, "only {} frames ({line})", frames.len());
    let size = std::fs::metadata(&gif_path).unwrap().len();
    assert!(size < 3_000_000, "the GIF is {size} bytes");

    // Not blank: the picture varies.
    let first = &frames[0];
    let rgb: Vec<f64> = first
        .chunks_exact(4)
        .flat_map(|p| p[..3].iter().map(|&v| f64::from(v)))
        .collect();
    let mean = rgb.iter().sum::<f64>() / rgb.len() as f64;
    let spread = rgb.iter().map(|v| (v - mean).abs()).sum::<f64>() / rgb.len() as f64;
    assert!(
        spread > 10.0,
        "the first frame is nearly uniform ({spread:.1})"
    );
    // The robot moves: consecutive frames differ, and the episode's end differs from its start.
    let moving = frames
        .windows(2)
        .filter(|pair| difference(&pair[0], &pair[1]) > 0.0)
        .count();
    assert!(
        moving * 2 >= frames.len(),
        "only {moving} of {} frames differ from the one before",
        frames.len()
    );
    let last = frames.last().unwrap();
    let change = difference(first, last);
    assert!(
        change > 0.5,
        "the last frame looks like the first ({change:.2})"
    );
    // The last frame is framed in the episode's outcome, in colours told apart without red and green: blue
    // [0, 114, 178] for a success, orange [230, 159, 0] for a failure.
    let corner = &last[..3];
    let [r, g, b] = [0, 1, 2].map(|c| i32::from(corner[c]));
    if succeeded {
        assert!(b > 130 && r < 60, "a success framed in {corner:?}");
    } else {
        assert!(
            r > 180 && g > 110 && b < 60,
            "a failure framed in {corner:?}"
        );
    }
    // Every frame has its caption: a dark strip along the top (below a held frame's border) with light text in it.
    for (i, frame) in frames.iter().enumerate() {
        let strip_row = |y: usize| &frame[(y * w + 40) * 4..(y * w + w - 40) * 4];
        let dark = (8..28)
            .flat_map(|y| strip_row(y).chunks_exact(4))
            .filter(|p| p[..3].iter().all(|&c| c < 60))
            .count();
        let light = (8..28)
            .flat_map(|y| strip_row(y).chunks_exact(4))
            .filter(|p| p[..3].iter().all(|&c| c > 180))
            .count();
        assert!(
            dark > 20 * 200 && light > 100,
            "frame {i}: {dark} dark and {light} light pixels in the caption's rows"
        );
    }
    eprintln!(
        "{} frames, {size} bytes, success: {succeeded}, first -> last difference {change:.1}",
        frames.len()
    );

    // No Vulkan driver: a clear error, no panic, no file.
    let missing = dir.path().join("missing.gif");
    let out = qamlab()
        .arg("eval")
        .arg("--run")
        .arg(&run)
        .args(["--episodes", "1", "--envs", "1", "--device", "cpu"])
        .arg("--video")
        .arg(&missing)
        .arg("--json")
        .env("WGPU_BACKEND", "vulkan")
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .expect("running qamlab");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "eval --video succeeded with no renderer"
    );
    assert!(
        stderr.contains("no render adapter") && stderr.contains("Vulkan driver"),
        "the error does not say what is missing:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "a panic shown to the user:\n{stderr}"
    );
    assert!(!missing.exists(), "a video was written with no renderer");
    // `--json`: the evaluation stands, with why its video was not made.
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(report["video"].is_null(), "{report}");
    assert!(
        report["video_error"]
            .as_str()
            .is_some_and(|e| e.contains("no render adapter")),
        "{report}"
    );
    eprintln!("whole test {:.1} s", start.elapsed().as_secs_f32());
}

#[test]
fn a_signal_to_eval_while_its_video_is_written_stops_the_renderer_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let videos = dir.path().join("videos");
    std::fs::create_dir(&videos).unwrap();
    let mut child = qamlab()
        .arg("eval")
        .arg("--run")
        .arg(&run)
        .args([
            "--episodes",
            "1",
            "--envs",
            "1",
            "--device",
            "cpu",
            "--video",
        ])
        .arg(videos.join("eval.gif"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The renderer (a child process) is writing the GIF beside its name.
    common::wait_for_file_starting(
        &videos,
        ".tmp-eval.gif-",
        &mut child,
        std::time::Duration::from_secs(300),
    );
    // SIGTERM to eval alone, as `kill PID` or a scheduler sends it: the renderer stops too, and its file goes.
    // SAFETY: kill() with a live child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("interrupted: no video was written (no temporary file is left)")
            && !stderr.contains("error:"),
        "{stderr}"
    );
    assert!(
        common::names(&videos).is_empty(),
        "{:?}",
        common::names(&videos)
    );
    // Nor does a renderer left working write it later.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        common::names(&videos).is_empty(),
        "{:?}",
        common::names(&videos)
    );
}

/// The child process of `pid` (from /proc: the renderer `qamlab eval --video` starts), if it has one.
fn child_of(pid: u32) -> Option<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .find_map(|children| children.split_whitespace().next()?.parse().ok())
}

/// The state letter of process `pid` (`R`, `S`, `T` for stopped, `Z`), or `None` once it is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// `qamlab eval --video` into `videos`, once its renderer is started and eval waits for it (SIGTSTP is then
/// caught): the command and the renderer's pid.
fn eval_waiting_for_its_renderer(run: &Path, videos: &Path) -> (std::process::Child, u32) {
    let child = qamlab()
        .arg("eval")
        .arg("--run")
        .arg(run)
        .args(["--episodes", "1", "--envs", "1", "--device", "cpu"])
        .arg("--video")
        .arg(videos.join("eval.gif"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // As a shell runs a job: in a process group of its own, which SIGTSTP stops (the test's own group may be
        // orphaned, which the kernel does not stop).
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    let mut child = child;
    loop {
        assert!(Instant::now() < deadline, "no renderer");
        assert!(child.try_wait().unwrap().is_none(), "eval ended early");
        if let Some(renderer) = child_of(child.id())
            && common::catches(child.id(), libc::SIGTSTP)
        {
            return (child, renderer);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn ctrl_z_stops_the_renderer_with_eval_and_fg_continues_both() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let videos = dir.path().join("videos");
    let (child, renderer) = eval_waiting_for_its_renderer(&run, &videos);
    // As the terminal sends Ctrl-Z: to eval's process group, which the renderer is not in.
    // SAFETY: kill() with a live child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTSTP) }, 0);
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while state(child.id()) != Some('T') || state(renderer) != Some('T') {
        assert!(
            Instant::now() < deadline,
            "eval {:?}, renderer {:?}",
            state(child.id()),
            state(renderer)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // `fg`: the video is rendered and written as if never stopped.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGCONT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(common::names(&videos), ["eval.gif"]);
}

#[test]
fn killing_eval_ends_its_renderer_with_no_video_written() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let videos = dir.path().join("videos");
    let (mut child, renderer) = eval_waiting_for_its_renderer(&run, &videos);
    // SAFETY: kill() with a live child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    child.wait().unwrap();
    // Orphaned, it would go on and write the GIF after eval had ended.
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while state(renderer).is_some_and(|s| s != 'Z') {
        assert!(Instant::now() < deadline, "the renderer goes on");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        !videos.exists() || common::names(&videos).is_empty(),
        "{:?}",
        common::names(&videos)
    );
}

/// The video's first episode is the evaluation's (`--envs 1`, on the CPU): a pendulum whose goal is wide enough to
/// be met in passing, by an untrained agent at steps its draws decide, succeeds in both or in neither.
#[test]
fn the_video_shows_the_episode_the_evaluation_ran() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("pendulum.scn.ron");
    let text = std::fs::read_to_string(
        common::checkout_dir().join("assets/tasks/examples/pendulum.scn.ron"),
    )
    .unwrap();
    let wide = text.replacen("tolerance: 0.1)", "tolerance: 0.45)", 1);
    assert_ne!(wide, text, "the edit took");
    std::fs::write(&scene, wide).unwrap();
    let run = dir.path().join("run");
    // Online only, no update: the agent acts as initialised.
    run_ok(
        qamlab()
            .args([
                "train",
                "--quiet",
                "--config",
                "cpu-small",
                "--device",
                "cpu",
                "--task",
            ])
            .arg(&scene)
            .args([
                "--offline-steps",
                "0",
                "--online-steps",
                "20",
                "--start-training",
                "1000",
            ])
            .args(["--eval-interval", "20", "--eval-episodes", "2", "--out"])
            .arg(&run),
    );
    for seed in ["3", "4"] {
        let gif = dir.path().join(format!("v{seed}.gif"));
        let out = run_ok(
            qamlab()
                .arg("eval")
                .arg("--run")
                .arg(&run)
                .args([
                    "--episodes",
                    "1",
                    "--envs",
                    "1",
                    "--device",
                    "cpu",
                    "--seed",
                    seed,
                    "--json",
                ])
                .arg("--video")
                .arg(&gif)
                .args(["--video-every", "10"]),
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().find(|l| l.starts_with("video: ")).unwrap();
        let evaluated = report["successes"] == 1;
        assert_eq!(
            line.contains("1 successful"),
            evaluated,
            "seed {seed}: the evaluation {} its episode, but {line}",
            if evaluated { "succeeded in" } else { "failed" }
        );
    }
}
