//! The window, for real: under Xvfb with software Vulkan (mesa's lavapipe), `qamlab view` opens a window on
//! cube-single with the oracle acting and saves a screenshot after its first frame: it waits until the 3D view
//! shows something (the first frames, before the pipelines compile, show only the clear colour). The PNG must
//! show the scene: not one flat colour, with the table's and the robot's colours in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// The whole run may take this long on a slow 2-core machine (it takes seconds normally).
const TIMEOUT: Duration = Duration::from_secs(300);

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Hue (degrees), saturation and value of an sRGB pixel.
fn hsv([r, g, b]: [u8; 3]) -> (f32, f32, f32) {
    let (r, g, b) = (
        f32::from(r) / 255.0,
        f32::from(g) / 255.0,
        f32::from(b) / 255.0,
    );
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let hue = if delta == 0.0 {
        0.0
    } else if max == r {
        60.0 * ((g - b) / delta).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / delta + 2.0)
    } else {
        60.0 * ((r - g) / delta + 4.0)
    };
    let saturation = if max == 0.0 { 0.0 } else { delta / max };
    (hue, saturation, max)
}

/// Runs `qamlab view` under Xvfb for `frames` frames and returns the screenshot's path (`name` inside `dir`).
fn screenshot(dir: &Path, name: &str, frames: u32) -> PathBuf {
    screenshot_of(
        dir,
        name,
        frames,
        &["--task", "cube-single", "--policy", "oracle"],
    )
}

/// [`screenshot`] of `qamlab view` with `view_args`.
fn screenshot_of(dir: &Path, name: &str, frames: u32, view_args: &[&str]) -> PathBuf {
    screenshot_and_stderr(dir, name, frames, view_args).0
}

/// Held while an `xvfb-run -a` runs: it takes the first display number without a lock file, so two started at
/// once may take the same one, and the loser's window fails to open (`XOpenDisplayFailed`).
static VIRTUAL_SCREEN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One virtual screen at a time (a test that failed while holding it leaves it usable).
fn virtual_screen() -> std::sync::MutexGuard<'static, ()> {
    VIRTUAL_SCREEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// [`screenshot_of`], and what `qamlab view` printed on stderr.
fn screenshot_and_stderr(
    dir: &Path,
    name: &str,
    frames: u32,
    view_args: &[&str],
) -> (PathBuf, String) {
    screenshot_after(dir, name, frames, view_args, || {})
}

/// [`screenshot_and_stderr`], with `meanwhile` run once the window's command has started. A virtual screen that went
/// away before the window opened (`xvfb-run`'s server, on a loaded machine: "could not open its window on the
/// display") is the test machine's failure, not the window's: the run is tried once more on a fresh one.
fn screenshot_after(
    dir: &Path,
    name: &str,
    frames: u32,
    view_args: &[&str],
    meanwhile: impl FnOnce(),
) -> (PathBuf, String) {
    match screenshot_try(dir, name, frames, view_args, meanwhile) {
        Ok(done) => done,
        Err(stderr) if stderr.contains("could not open its window on the display") => {
            eprintln!(
                "the virtual screen went away before the window opened; trying again:\n{stderr}"
            );
            screenshot_try(dir, name, frames, view_args, || {})
                .unwrap_or_else(|stderr| panic!("qamlab view failed twice:\n{stderr}"))
        }
        Err(stderr) => panic!("qamlab view failed:\n{stderr}"),
    }
}

/// One run of [`screenshot_after`]: the screenshot and stderr, or the stderr of a run that failed.
fn screenshot_try(
    dir: &Path,
    name: &str,
    frames: u32,
    view_args: &[&str],
    meanwhile: impl FnOnce(),
) -> Result<(PathBuf, String), String> {
    assert!(
        on_path("xvfb-run").is_some(),
        "xvfb-run is not installed, so the window cannot be tested: run scripts/setup.sh \
         (it installs xvfb, xauth, mesa-vulkan-drivers and libvulkan1)"
    );
    let png = dir.join(name);
    let _screen = virtual_screen();
    let mut child = common::default_sigint(&mut Command::new("xvfb-run"))
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_qamlab"))
        .arg("view")
        .args(view_args)
        .args(["--frames", &frames.to_string(), "--screenshot"])
        .arg(&png)
        // Software Vulkan: the machine may have no GPU, and under Xvfb no GL is better.
        .env("WGPU_BACKEND", "vulkan")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting xvfb-run");
    let start = Instant::now();
    meanwhile();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the window") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collecting the output");
            panic!(
                "qamlab view ran past {TIMEOUT:?}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("collecting the output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !status.success() {
        return Err(format!("({status}) {stderr}"));
    }
    assert!(
        png.is_file(),
        "qamlab view exited without writing {}:\n{stderr}",
        png.display()
    );
    eprintln!("qamlab view took {:.1} s", start.elapsed().as_secs_f32());
    Ok((png, stderr.into_owned()))
}

#[test]
fn view_renders_the_scene_under_xvfb() {
    let dir = tempfile::tempdir().unwrap();
    let png = screenshot(dir.path(), "view.png", 1);
    let image = image::open(&png).expect("reading the screenshot").to_rgb8();
    let (w, h) = image.dimensions();
    assert!(w >= 640 && h >= 400, "screenshot is {w}x{h}");
    let pixels: Vec<[u8; 3]> = image.pixels().map(|p| p.0).collect();

    // Not uniform: a blank or single-colour window fails here.
    let mean = pixels
        .iter()
        .map(|p| f64::from(p[0]) + f64::from(p[1]) + f64::from(p[2]))
        .sum::<f64>()
        / (3.0 * pixels.len() as f64);
    let var = pixels
        .iter()
        .map(|p| ((f64::from(p[0]) + f64::from(p[1]) + f64::from(p[2])) / 3.0 - mean).powi(2))
        .sum::<f64>()
        / pixels.len() as f64;
    assert!(
        var.sqrt() > 10.0,
        "the screenshot is nearly uniform (brightness sd {:.1})",
        var.sqrt()
    );

    // The table (muted wood) and the robot (saturated orange), however the light falls on them.
    let hsvs: Vec<(f32, f32, f32)> = pixels.iter().map(|&p| hsv(p)).collect();
    let table = hsvs
        .iter()
        .filter(|(h, s, v)| (18.0..45.0).contains(h) && (0.25..0.62).contains(s) && *v > 0.25)
        .count();
    let robot = hsvs
        .iter()
        .filter(|(h, s, v)| (10.0..38.0).contains(h) && *s > 0.72 && *v > 0.2)
        .count();
    let n = pixels.len() as f64;
    eprintln!(
        "table pixels {table} ({:.1}%), robot pixels {robot} ({:.2}%)",
        100.0 * table as f64 / n,
        100.0 * robot as f64 / n
    );
    assert!(
        table as f64 > 0.02 * n,
        "the table's colour covers only {table} pixels of {n}"
    );
    // The gripper is small at this distance (about 300-500 pixels of 1280x760 in the runs so far).
    assert!(robot > 120, "the robot's colour covers only {robot} pixels");
}

#[test]
fn the_same_command_gives_the_same_picture() {
    // The frames run on a fixed clock and the envs pause at the last, so how fast the machine draws (and how many
    // frames the first capture waits for the render pipelines) changes nothing: the same step, the same bytes.
    let dir = tempfile::tempdir().unwrap();
    let first = std::fs::read(screenshot(dir.path(), "a.png", 6)).unwrap();
    let second = std::fs::read(screenshot(dir.path(), "b.png", 6)).unwrap();
    assert!(first == second, "two screenshots of one command differ");
}

/// A config for a window's training run of 1500 online steps with tiny networks, evaluated every `eval_interval`
/// steps, written into `dir`.
fn tiny_training_config(dir: &Path, eval_interval: u32) -> PathBuf {
    let config = dir.join("tiny.toml");
    std::fs::write(
        &config,
        format!(
            "online_steps = 1500\nstart_training = 100\nenvs = 2\neval_interval = {eval_interval}\n\
             eval_episodes = 2\neval_envs = 2\ncheckpoint_interval = 1500\nlog_interval = 100\n[agent]\n\
             batch_size = 8\nactor_hidden_dims = [16]\nvalue_hidden_dims = [16]\nnum_qs = 2\n"
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_screenshot_while_training_shows_the_trained_agent_the_same_each_time() {
    // With --train the frames count from the end of training, so the picture does not depend on when the
    // trainer's weights reached the window: the final weights act, the whole curves show.
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_training_config(dir.path(), 500);
    let run = dir.path().join("run");
    let args = [
        "--task",
        "cube-single",
        "--train",
        "--config",
        config.to_str().unwrap(),
        "--device",
        "cpu",
        "--out",
        run.to_str().unwrap(),
    ];
    let (png, stderr) = screenshot_and_stderr(dir.path(), "a.png", 4, &args);
    let first = std::fs::read(png).unwrap();
    // The window says where the run goes, and how to go on with it.
    let run_text = run.display().to_string();
    assert!(
        stderr.contains(&format!("view: training into {run_text}"))
            && stderr.contains(&format!("qamlab train --resume {run_text}")),
        "{stderr}"
    );
    // The window waited for the end of training (closed earlier, it would have stopped the trainer first).
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(summary.contains("\"stopped_early\": false"), "{summary}");
    std::fs::remove_dir_all(&run).unwrap();
    let second = std::fs::read(screenshot_of(dir.path(), "b.png", 4, &args)).unwrap();
    assert!(
        first == second,
        "two screenshots of one training command differ"
    );
}

/// The pendulum example's scene file, copied to `dir` with `edit` applied to its text.
fn pendulum_scene(dir: &Path, edit: impl Fn(&str) -> String) -> PathBuf {
    let pendulum =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tasks/examples/pendulum.scn.ron");
    let path = dir.join("live.scn.ron");
    std::fs::write(&path, edit(&std::fs::read_to_string(pendulum).unwrap())).unwrap();
    path
}

/// Pixels of the panel (the first 340 columns) in the pure yellow of its notes and warnings.
fn yellow_in_panel(png: &Path) -> usize {
    yellow_rows_in_panel(png).len()
}

/// The row of each pixel of the panel in the pure yellow of its notes and warnings.
fn yellow_rows_in_panel(png: &Path) -> Vec<u32> {
    let image = image::open(png).expect("reading the screenshot").to_rgb8();
    image
        .enumerate_pixels()
        .filter(|(x, _, p)| {
            let (hue, saturation, value) = hsv(p.0);
            *x < 340 && (50.0..=70.0).contains(&hue) && saturation > 0.8 && value > 0.8
        })
        .map(|(_, y, _)| y)
        .collect()
}

#[test]
fn the_panel_lists_the_warnings_of_the_scene() {
    // Gravity pointing up: said in the terminal, and in the panel, in yellow, beside the scene file (the terminal
    // of a window is easily out of sight). Nothing else in this panel is yellow.
    let dir = tempfile::tempdir().unwrap();
    let up = |text: &str| text.replace("gravity: (0.0, 0.0, -9.81)", "gravity: (0.0, 0.0, 9.81)");
    let scene = pendulum_scene(dir.path(), up);
    let args = ["--task", scene.to_str().unwrap(), "--envs", "1"];
    let (png, stderr) = screenshot_and_stderr(dir.path(), "up.png", 2, &args);
    assert!(
        stderr.contains("warning: gravity is (0, 0, 9.81): it points up"),
        "{stderr}"
    );
    let yellow = yellow_rows_in_panel(&png);
    assert!(
        yellow.len() > 200,
        "{} yellow pixels in the panel: its warning is not shown",
        yellow.len()
    );
    // Near the top, by the other notes, above the curves (under them, the keys at the panel's foot could push it
    // out of sight): the first curve starts some 250 pixels down.
    let lowest = yellow.iter().max().unwrap();
    assert!(*lowest < 230, "the warning shows as low as row {lowest}");
    // The scene as shipped has no warning, and no yellow.
    let scene = pendulum_scene(dir.path(), str::to_string);
    let args = ["--task", scene.to_str().unwrap(), "--envs", "1"];
    let png = screenshot_of(dir.path(), "down.png", 2, &args);
    assert_eq!(yellow_in_panel(&png), 0);
}

#[test]
fn a_scene_saved_while_the_window_trains_is_not_shown_and_the_panel_says_so() {
    // The run trains the task as it began (its copy in RUN/task.scn.ron): the window shows that one, and says once in
    // the terminal, and in the panel, that the file changed. It drew the new goal, and counted its successes, while
    // the run trained the old one.
    let dir = tempfile::tempdir().unwrap();
    let tolerance = |value: &'static str| {
        move |text: &str| text.replace("tolerance: 0.1)", &format!("tolerance: {value})"))
    };
    let scene = pendulum_scene(dir.path(), tolerance("0.08"));
    let config = tiny_training_config(dir.path(), 1500);
    let run = dir.path().join("run");
    let args = [
        "--task",
        scene.to_str().unwrap(),
        "--train",
        "--config",
        config.to_str().unwrap(),
        "--device",
        "cpu",
        "--envs",
        "1",
        "--out",
        run.to_str().unwrap(),
    ];
    let save = || {
        // Once the run has read the file (its first metrics come after), as the author saves it meanwhile.
        let start = Instant::now();
        while !std::fs::metadata(run.join("metrics.jsonl")).is_ok_and(|m| m.len() > 0) {
            assert!(start.elapsed() < TIMEOUT, "training never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        pendulum_scene(dir.path(), tolerance("0.3"));
    };
    let (png, stderr) = screenshot_after(dir.path(), "train.png", 4, &args, save);
    let copy = run.join("task.scn.ron");
    assert!(
        std::fs::read_to_string(&copy)
            .unwrap()
            .contains("tolerance: 0.08)"),
        "the run trained another version"
    );
    let note = format!(
        "note: {} changed; the run goes on with the task as it began, its copy {}, which the window keeps showing",
        scene.display(),
        copy.display()
    );
    assert_eq!(stderr.matches(&note).count(), 1, "{stderr}");
    let yellow = yellow_in_panel(&png);
    assert!(
        yellow > 200,
        "{yellow} yellow pixels in the panel: the change is not said"
    );
}

#[test]
fn a_screenshot_name_other_than_png_is_refused_before_the_window_opens() {
    let dir = tempfile::tempdir().unwrap();
    let jpg = dir.path().join("shot.jpg");
    let out = Command::new(env!("CARGO_BIN_EXE_qamlab"))
        .args(["view", "--screenshot"])
        .arg(&jpg)
        // Any display will do: the name is checked before a window is asked for.
        .env("DISPLAY", ":99")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("shot.jpg") && stderr.contains("give a .png file name"),
        "{stderr}"
    );
    assert!(!jpg.exists());
}

/// Runs `qamlab view ARGS` (under `xvfb-run -a` if asked) with `env` set; its exit code and stderr.
fn view_fails(args: &[&str], env: &[(&str, &str)], xvfb: bool) -> (Option<i32>, String) {
    let _screen = xvfb.then(virtual_screen);
    let mut command = if xvfb {
        assert!(
            on_path("xvfb-run").is_some(),
            "xvfb-run is not installed, so the window cannot be tested: run scripts/setup.sh"
        );
        let mut command = Command::new("xvfb-run");
        command.arg("-a").arg(env!("CARGO_BIN_EXE_qamlab"));
        command
    } else {
        Command::new(env!("CARGO_BIN_EXE_qamlab"))
    };
    let out = command
        .arg("view")
        .args(args)
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .expect("running qamlab view");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_display_with_no_x_server_is_refused_with_an_error_not_a_panic() {
    // A display no X server serves (no socket for it), as a stale `ssh -X` or a finished Xvfb leaves DISPLAY:
    // winit panicked building its event loop.
    let display = (7300..8000)
        .map(|n| format!(":{n}"))
        .find(|d| !Path::new(&format!("/tmp/.X11-unix/X{}", &d[1..])).exists())
        .expect("a free display number");
    let view = |args: &[&str]| {
        let (code, stderr) = view_fails(args, &[("DISPLAY", &display)], false);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            !stderr.contains("panicked"),
            "a panic shown to the user:\n{stderr}"
        );
        stderr
    };
    let stderr = view(&["--task", "cube-single"]);
    assert!(
        stderr.contains(&format!(
            "cannot open the X11 display DISPLAY={display}: no X server answers there"
        )) && stderr.contains("xvfb-run -a qamlab view"),
        "{stderr}"
    );
    // The flags are checked first: their own mistakes are named, whatever the display.
    let dir = tempfile::tempdir().unwrap();
    let stderr = view(&["--save-to", dir.path().to_str().unwrap()]);
    assert!(
        stderr.contains("--save-to") && stderr.contains("that is a directory"),
        "{stderr}"
    );
}

#[test]
fn no_render_adapter_is_refused_with_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("x.png");
    // A display, but no Vulkan driver: Bevy's renderer found no adapter and panicked ("Unable to find a GPU!").
    let (code, stderr) = view_fails(
        &["--frames", "3", "--screenshot", png.to_str().unwrap()],
        &[
            ("WGPU_BACKEND", "vulkan"),
            ("VK_ICD_FILENAMES", "/nonexistent.json"),
            ("VK_DRIVER_FILES", "/nonexistent.json"),
        ],
        true,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("no render adapter") && stderr.contains("mesa-vulkan-drivers"),
        "the error does not say what is missing:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "a panic shown to the user:\n{stderr}"
    );
    assert!(!png.exists(), "a screenshot with no renderer");
}

#[test]
fn a_success_stays_on_screen_green_for_a_moment() {
    // The oracle's first success in cube-single comes at about step 20 (frame 10); the env shows it, its goal's copy
    // green, for 0.6 s (12 steps) before the next episode. Without the hold the env reset at once and no green was
    // ever seen on a one-goal task.
    let dir = tempfile::tempdir().unwrap();
    let png = screenshot_of(
        dir.path(),
        "success.png",
        13,
        &["--task", "cube-single", "--policy", "oracle", "--envs", "1"],
    );
    let image = image::open(&png).expect("reading the screenshot").to_rgb8();
    // The 3D view only: the panel is the first 340 columns.
    let green = image
        .enumerate_pixels()
        .filter(|(x, _, _)| *x >= 340)
        .filter(|(_, _, p)| {
            let (hue, saturation, value) = hsv(p.0);
            (80.0..=160.0).contains(&hue) && saturation > 0.3 && value > 0.25
        })
        .count();
    assert!(
        green >= 15,
        "{green} green pixels: the success is not shown"
    );
}

#[test]
fn each_env_of_the_grid_wears_a_label() {
    // Four envs in a grid: over each, a dark plate with its name in white ("env 0" .. "env 3"). White is nowhere
    // else in the 3D view (the table, the floor, the robot and the sky are all coloured or darker); env 0 alone
    // has no label (the panel speaks of it), so its picture has none.
    let dir = tempfile::tempdir().unwrap();
    let labelled = |name: &str, args: &[&str]| {
        let png = screenshot_of(dir.path(), name, 4, args);
        let image = image::open(&png).expect("reading the screenshot").to_rgb8();
        // The 3D view only: the panel, the first 340 columns, has white text of its own.
        let white: Vec<(u32, u32)> = image
            .enumerate_pixels()
            .filter(|(x, _, p)| {
                let (_, saturation, value) = hsv(p.0);
                *x >= 340 && value > 0.85 && saturation < 0.15
            })
            .map(|(x, y, _)| (x, y))
            .collect();
        (white.len(), white_patches(&white))
    };
    let args = ["--task", "cube-single", "--policy", "oracle", "--envs", "4"];
    let (pixels, patches) = labelled("grid.png", &[&args[..], &["--grid"]].concat());
    assert!(
        pixels >= 100 && patches == 4,
        "{pixels} white pixels in {patches} patches: four labels expected"
    );
    let (pixels, _) = labelled("one.png", &args);
    assert_eq!(pixels, 0, "white in the picture of one env");
}

/// How many separate patches `pixels` make: 32-pixel blocks holding any, joined where they touch.
fn white_patches(pixels: &[(u32, u32)]) -> usize {
    let blocks: std::collections::HashSet<(i64, i64)> = pixels
        .iter()
        .map(|&(x, y)| (i64::from(x / 32), i64::from(y / 32)))
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut patches = 0;
    for &start in &blocks {
        if !seen.insert(start) {
            continue;
        }
        patches += 1;
        let mut stack = vec![start];
        while let Some((x, y)) = stack.pop() {
            for next in [(x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)] {
                if blocks.contains(&next) && seen.insert(next) {
                    stack.push(next);
                }
            }
        }
    }
    patches
}

#[test]
fn a_screenshot_of_a_diverged_agent_fails_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let pendulum =
        env!("CARGO_MANIFEST_DIR").to_string() + "/assets/tasks/examples/pendulum.scn.ron";
    // A few online steps on the pendulum (no dataset needed): a checkpoint to damage.
    let trained = Command::new(env!("CARGO_BIN_EXE_qamlab"))
        .args([
            "train",
            "--quiet",
            "--task",
            &pendulum,
            "--config",
            "cpu-small",
        ])
        .args([
            "--offline-steps",
            "0",
            "--online-steps",
            "40",
            "--start-training",
            "20",
        ])
        .args([
            "--envs",
            "2",
            "--eval-interval",
            "40",
            "--eval-episodes",
            "1",
        ])
        .args(["--checkpoint-interval", "40", "--device", "cpu", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    // Its actors' biases past any float's reach: the agent's actions come out non-finite.
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    let agent = run
        .join("checkpoints")
        .join(latest.trim())
        .join("agent.safetensors");
    let (tensors, meta) = qamlab_agent::checkpoint::read_tensors(&agent).unwrap();
    let tensors: Vec<(String, tch::Tensor)> = tensors
        .into_iter()
        .map(|(name, t)| {
            let blown = name.contains("actor") && name.ends_with("bias");
            let t = if blown { t.full_like(3e38) } else { t };
            (name, t)
        })
        .collect();
    qamlab_agent::checkpoint::write_tensors(&agent, &tensors, meta).unwrap();
    let png = dir.path().join("diverged.png");
    let (code, stderr) = view_fails(
        &[
            "--checkpoint",
            run.to_str().unwrap(),
            "--envs",
            "1",
            "--frames",
            "5",
            "--screenshot",
            png.to_str().unwrap(),
        ],
        &[("WGPU_BACKEND", "vulkan")],
        true,
    );
    // The picture is taken (it shows the message), and the command fails with it, as `eval` would.
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the envs stopped before the screenshot")
            && stderr.contains("diverged"),
        "{stderr}"
    );
    // Said once, and not as a success (mesa's XDG_RUNTIME_DIR lines aside, which also start `error:`).
    assert!(
        !stderr.contains("saved")
            && stderr.matches("error: the envs stopped").count() == 1
            && !stderr.contains("the window exited"),
        "{stderr}"
    );
    assert!(png.is_file(), "{stderr}");
}

/// The pid of a child of `parent` whose command is `name` (from /proc: no procps needed).
fn child_named(parent: u32, name: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let field = |key: &str| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix(key))
                    .map(str::trim)
            };
            (field("Name:")? == name && field("PPid:")?.parse::<u32>().ok()? == parent)
                .then_some(pid)
        })
}

/// `qamlab view --train` under Xvfb (`xvfb-run`, the child returned), once training is under way and the window
/// catches `signal`: with the run's folder (in the returned temporary one), qamlab's pid and when it started.
fn training_window(
    signal: i32,
) -> (
    std::process::Child,
    PathBuf,
    tempfile::TempDir,
    u32,
    Instant,
) {
    assert!(on_path("xvfb-run").is_some(), "xvfb-run is not installed");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(
        &config,
        "online_steps = 1000000\nstart_training = 100\nenvs = 2\neval_interval = 1000000\n\
         checkpoint_interval = 1000000\nlog_interval = 100\n[agent]\nbatch_size = 8\n\
         actor_hidden_dims = [16]\nvalue_hidden_dims = [16]\nnum_qs = 2\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let mut child = common::default_sigint(&mut Command::new("xvfb-run"))
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_qamlab"))
        .args([
            "view",
            "--task",
            "cube-single",
            "--train",
            "--device",
            "cpu",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .env("WGPU_BACKEND", "vulkan")
        // mesa's device-select layer says "error: XDG_RUNTIME_DIR ..." without it (harmless, README)
        .env("NODEVICE_SELECT", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting xvfb-run");
    // xvfb-run runs qamlab as its child: wait for it to be up, its handler installed, and training under way.
    let start = Instant::now();
    let pid = loop {
        assert!(
            start.elapsed() < TIMEOUT && child.try_wait().unwrap().is_none(),
            "the window never came up"
        );
        if let Some(pid) =
            child_named(child.id(), "qamlab").filter(|&pid| common::catches(pid, signal))
            && std::fs::metadata(run.join("metrics.jsonl")).is_ok_and(|m| m.len() > 0)
        {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (child, run, dir, pid, start)
}

/// Waits for the `xvfb-run` of [`training_window`] to end (`what` says what should have ended it); returns its
/// exit status and stderr.
fn window_ended(
    mut child: std::process::Child,
    start: Instant,
    what: &str,
) -> (std::process::ExitStatus, String) {
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "qamlab view did not stop on {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    (exit, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `qamlab view --train` under Xvfb, sent `signal` once training is under way; returns the exit status and the
/// stderr, with the run directory, once the command ended. With `twice`, the signal comes twice, 20 ms apart.
fn signalled_training_window(
    signal: i32,
    twice: bool,
) -> (std::process::ExitStatus, String, tempfile::TempDir) {
    let _screen = virtual_screen();
    let (child, _run, dir, pid, start) = training_window(signal);
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
    if twice {
        std::thread::sleep(Duration::from_millis(20));
        // (it may have ended already)
        unsafe { libc::kill(pid as i32, signal) };
    }
    let (exit, stderr) = window_ended(child, start, &format!("signal {signal}"));
    (exit, stderr, dir)
}

#[test]
fn a_lost_display_stops_training_at_a_checkpoint() {
    // The X server ends under the window (an `ssh -X` session dropped): Xlib ends the process from within, which
    // tore libtorch down under the trainer, losing its steps since the last checkpoint (here: every step).
    let _screen = virtual_screen();
    let (mut child, run, _dir, pid, start) = training_window(libc::SIGTERM);
    // The window's frames under way (an X server killed while the window is still being made leaves it waiting
    // for ever instead; SIGTERM then stops it, below).
    std::thread::sleep(Duration::from_secs(8));
    let server = child_named(child.id(), "Xvfb").expect("xvfb-run's Xvfb");
    assert_eq!(unsafe { libc::kill(server as i32, libc::SIGKILL) }, 0);
    let lost = Instant::now();
    while child.try_wait().unwrap().is_none() && lost.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ended_itself = child.try_wait().unwrap().is_some();
    if !ended_itself {
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let (_exit, stderr) = window_ended(child, start, "the X server's end");
    assert!(!stderr.contains("panicked"), "{stderr}");
    if ended_itself {
        assert!(
            stderr.contains("training stops at a checkpoint first"),
            "{stderr}"
        );
    }
    assert!(
        run.join("checkpoints/latest").exists(),
        "no checkpoint in {}:\n{stderr}",
        run.display()
    );
}

/// The window closes on `signal` as its close button does: training stops at a checkpoint, and the command says how
/// to go on and exits with `status`, the shell's for a command the signal ended (never "error: the window exited
/// with an error (code 130)").
fn a_signal_closes_the_window_and_stops_training_at_a_checkpoint(signal: i32, status: i32) {
    let (exit, stderr, dir) = signalled_training_window(signal, false);
    let run = dir.path().join("run");
    assert_eq!(exit.code(), Some(status), "{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
    assert!(
        stderr.contains("interrupted: the run is checkpointed where it stopped")
            && stderr.contains(&format!("qamlab train --resume {}", run.display())),
        "{stderr}"
    );
    assert!(
        run.join("checkpoints/latest").exists(),
        "no checkpoint in {}",
        run.display()
    );
}

#[test]
fn ctrl_c_closes_the_window_and_stops_training_at_a_checkpoint() {
    a_signal_closes_the_window_and_stops_training_at_a_checkpoint(libc::SIGINT, 130);
}

#[test]
fn sigterm_closes_the_window_and_stops_training_at_a_checkpoint() {
    a_signal_closes_the_window_and_stops_training_at_a_checkpoint(libc::SIGTERM, 143);
}

#[test]
fn a_second_ctrl_c_ends_the_window_at_once_without_a_trace() {
    // Bevy's own handler ended the process with `process::exit` under the training thread: a libtorch panic trace
    // and its "Received more than one ctrl+c" line. Now the second signal's default action ends it.
    let (exit, stderr, _dir) = signalled_training_window(libc::SIGINT, true);
    assert!(!exit.success(), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("more than one ctrl+c"),
        "{stderr}"
    );
}
