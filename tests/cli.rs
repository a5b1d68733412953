//! End-to-end checks of the `qamlab` binary as a user runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
#[path = "cli/flags.rs"]
mod flags;
#[path = "cli/readme.rs"]
mod readme;

fn qamlab(args: &[&str]) -> std::process::Output {
    common::qamlab()
        .args(args)
        .output()
        .expect("running the qamlab binary")
}

/// The stderr of qamlab run with `args`.
fn stderr_of(args: &[&str]) -> String {
    String::from_utf8_lossy(&qamlab(args).stderr).into_owned()
}

/// The stdout of `out`, asserting the run succeeded.
fn succeeded(out: std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    stdout
}

/// Runs qamlab with `args`, asserting it exits with status 1 (refused, not a usage error); returns its stderr.
fn refused(args: &[&str]) -> String {
    let out = qamlab(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn doctor_reports_libtorch_cuda_and_engines() {
    let out = qamlab(&["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "doctor failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The binary runs without LD_LIBRARY_PATH (rpath) and loads the libtorch it was built for.
    let torch = stdout
        .lines()
        .find(|l| l.starts_with("libtorch"))
        .expect("a libtorch line");
    assert!(torch.contains("2.11.0"), "{torch}");
    for key in [
        "CUDA",
        "CUDA graphs",
        "TF32 matmuls",
        "CPU threads",
        "CPU matmuls",
        "CPU memory",
        "display",
        "render adapters",
        "bevy",
        "rapier",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(key)),
            "no {key} line in:\n{stdout}"
        );
    }
    let bevy = stdout.lines().find(|l| l.starts_with("bevy")).unwrap();
    assert!(bevy.contains("0.19."), "{bevy}");
    // The binary answers oneMKL's vendor question itself (agent/src/mkl_kernels.rs).
    let matmuls = stdout
        .lines()
        .find(|l| l.starts_with("CPU matmuls"))
        .unwrap();
    assert!(!matmuls.contains("missing"), "{matmuls}");
}

#[test]
fn unknown_subcommand_is_a_usage_error_not_a_panic() {
    let out = qamlab(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("frobnicate"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_zero_count_names_its_flag() {
    for (args, flag) in [
        (
            &["collect", "--out", "x.npz", "--episodes", "0"][..],
            "--episodes",
        ),
        (
            &[
                "collect",
                "--out",
                "x.npz",
                "--episodes",
                "1",
                "--envs",
                "0",
            ][..],
            "--envs",
        ),
        (&["train", "--eval-interval", "0"][..], "--eval-interval"),
        (&["eval", "--run", "r", "--envs", "0"][..], "--envs"),
    ] {
        let out = qamlab(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains("must be at least 1"),
            "{args:?}: {stderr}"
        );
    }
}

/// cube-single's scene text with the first `from` replaced by `to`.
fn cube_single_with(from: &str, to: &str) -> String {
    let text =
        std::fs::read_to_string(common::checkout_dir().join("assets/tasks/cube-single.scn.ron"))
            .unwrap();
    assert!(
        text.contains(from),
        "`{from}` is not in cube-single's scene"
    );
    text.replacen(from, to, 1)
}

#[test]
fn task_says_when_a_body_leaves_the_scene_and_collect_refuses_a_task_that_loses_most() {
    // A table 10 cm across: the cube starts over it in few episodes, and falls without end in the rest.
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("small-table.scn.ron");
    let text = cube_single_with(
        "half_extents: (0.5, 0.5, 0.05)",
        "half_extents: (0.05, 0.05, 0.05)",
    )
    .replacen("name: \"cube-single\"", "name: \"small-table\"", 1);
    std::fs::write(&scene, text).unwrap();
    let scene = scene.to_str().unwrap();
    let stdout = succeeded(qamlab(&["task", scene, "--episodes", "4"]));
    assert!(
        stdout.contains(
            "note: a body left the scene in 4 of 4 episodes (`collect` leaves such episodes out"
        ),
        "{stdout}"
    );
    let out = dir.path().join("d.npz");
    let stderr = refused(&[
        "collect",
        "--task",
        scene,
        "--episodes",
        "8",
        "--envs",
        "4",
        "--episode-length",
        "40",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains("a body left the scene in 4 of 4 episodes, too many to leave out"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn task_checks_a_scene_shows_its_layout_and_tries_it() {
    let stdout = succeeded(qamlab(&["task", "cube-single", "--episodes", "4"]));
    for expected in [
        "task cube-single (built-in)",
        "observation (28 values): pinch.position [0..3],",
        "actions (5 values): dx [-1, 1],",
        "starts (drawn at each reset):\n  cube: authored at (0, 0, 0.02), x drawn from [-0.15, 0.15], y drawn from \
         [-0.15, 0.15], turned by [-3.1416, 3.1416] rad about z\n",
        "cube_goal: cube within 0.04 m",
        "oracle: the scripted oracle drives it",
        "agents: they act in its action space",
        "tried: oracle (solve) succeeds in",
        "; the goals still hold at the episode's end in",
        "tried: random actions succeed in 0% of 4 episodes",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }

    // Four episodes are too few to judge: no note.
    assert!(!stdout.contains("note:"), "{stdout}");
    // Keep-away rules of goals are listed with their ranges.
    let out = qamlab(&["task", "cube-double"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "at least 0.08 m from cube_a, at least 0.08 m from cube_b, at least 0.1 m from goal_a"
        ) && stdout.contains("rad about z, at least 0.1 m from cube_a\n"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    // Writes cube-single's scene with `from` replaced by `to` as `name` in `dir`, and returns its path.
    let edited = |name: &str, from: &str, to: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, cube_single_with(from, to)).unwrap();
        path.to_str().unwrap().to_string()
    };
    for (name, from, to, episodes, says) in [
        // A goal that holds at reset (its tolerance spans the table): `task` points at it.
        (
            "easy.scn.ron",
            ", tolerance: 0.04)",
            ", tolerance: 5.0)",
            "3",
            "note: 3 of 3 random episodes succeeded at their first control step",
        ),
        // A goal random actions never reach in 10 episodes (a 1 mm tolerance): `task` says what that means for
        // learning from nothing.
        (
            "hard.scn.ron",
            ", tolerance: 0.04)",
            ", tolerance: 0.001)",
            "10",
            "note: random actions never reached the goals in 10 episodes: training online from nothing",
        ),
        // A goal 13 cm above the table: the oracle lets the cube go there, and it falls; success was met in
        // passing.
        (
            "high.scn.ron",
            "target: (0.1, 0.1, 0.02)",
            "target: (0.1, 0.1, 0.15)",
            "10",
            "the goals no longer held at the end: an object met its target in passing",
        ),
    ] {
        let out = qamlab(&["task", &edited(name, from, to), "--episodes", episodes]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(says), "{stdout}");
    }

    // A goal metres beyond the gantry's reach, on a table that big: no policy can do the task (give or take how
    // far the robot may push or throw the cube); `task` says where, and fails.
    let far = dir.path().join("far.scn.ron");
    let text = cube_single_with(
        "x: Some((min: -0.15, max: 0.15)), y: Some((min: -0.15, max: 0.15)), min_distance_from",
        "x: Some((min: -0.15, max: 60.0)), y: Some((min: -0.15, max: 0.15)), min_distance_from",
    )
    .replacen(
        "Cuboid(half_extents: (0.5, 0.5, 0.05))",
        "Cuboid(half_extents: (70.0, 70.0, 0.05))",
        1,
    );
    std::fs::write(&far, text).unwrap();
    let far = far.to_str().unwrap().to_string();
    let out = qamlab(&["task", &far, "--episodes", "10"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stdout.contains(
            "oracle: none: task `cube-single` cannot be solved as laid out: it needs goal `cube_goal`'s target, \
             give or take 38.157 m (its tolerance, and how far past the pinch the robot can push or throw the cube), \
             within the pinch's reach"
        ) && !stdout.contains("tried:"),
        "{stdout}"
    );
    assert!(
        stderr.contains("its robot cannot do the task as the scene lays it out")
            && stderr.matches("warning:").count() == 1
            && stderr.contains("its TaskSettings name \"cube-single\" is a built-in task's"),
        "{stderr}"
    );

    // A scene file with a mistake: the error names the file and the field, and the exit code says so.
    let bad = edited("bad.scn.ron", ", tolerance: 0.04)", ")");
    let stderr = refused(&["task", &bad]);
    assert!(
        stderr.contains("bad.scn.ron") && stderr.contains("Goal.tolerance"),
        "{stderr}"
    );

    // An action range other than [-1, 1] loads, but the agents (which act in [-1, 1]) cannot use it: `task` says
    // so, and `train` refuses it before any work.
    let dz = "(name: \"dz\", joints: [\"z\"], control: PositionDelta(scale: 0.05), range: (min: -1.0, max: 1.0)";
    let narrow = edited(
        "narrow.scn.ron",
        dz,
        &dz.replace("-1.0, max: 1.0", "-0.5, max: 0.5"),
    );
    let why = "action `dz` ranges over [-0.5, 0.5], but the agents act in [-1, 1]";
    let out = qamlab(&["task", &narrow]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Said, and the exit status fails the check.
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "{narrow}: the agents cannot act in this task (the `agents:` line above says why)"
        )),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("agents: cannot act in it: {why}")),
        "{stdout}"
    );
    // Nor does it suggest training what cannot be trained.
    assert!(!stdout.contains("qamlab train"), "{stdout}");
    let run = dir.path().join("run");
    let stderr = refused(&[
        "train",
        "--quiet",
        "--task",
        &narrow,
        "--offline-steps",
        "0",
        "--online-steps",
        "10",
        "--device",
        "cpu",
        "--out",
        run.to_str().unwrap(),
    ]);
    // Named as given: the scene file, not the task name the copied scene holds.
    assert!(
        stderr.contains(&format!("task {narrow}: {why}")),
        "{stderr}"
    );
}

#[test]
fn collect_writes_the_dataset_and_its_validation_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("play.npz");
    // Named as given, from the directory it was given in: both files.
    let written = common::run_ok(
        common::qamlab()
            .current_dir(dir.path())
            .args(["collect", "--quiet", "--episodes", "3"])
            .args(["--val-episodes", "1", "--envs", "3", "--out", "play.npz"]),
    );
    let stdout = String::from_utf8_lossy(&written.stdout);
    assert!(
        stdout.contains("wrote play.npz: ") && stdout.contains("wrote play-val.npz: "),
        "{stdout}"
    );
    let train = qamlab_headless::dataset::load_dataset(&out).unwrap();
    let val = qamlab_headless::dataset::load_dataset(dir.path().join("play-val.npz")).unwrap();
    assert_eq!((train.episodes, val.episodes), (3, 1));
    // Its own seed stream: the validation episode is none of the training ones.
    let first = |d: &qamlab_headless::dataset::Dataset| d.transitions.observations[..28].to_vec();
    assert_ne!(first(&train), first(&val));
}

#[test]
fn the_command_a_dataset_records_makes_the_same_file_again_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().canonicalize().unwrap();
    std::fs::copy(
        common::checkout_dir().join("assets/tasks/cube-single.scn.ron"),
        here.join("mine.scn.ron"),
    )
    .unwrap();
    // Collected with the task's file named from its own directory.
    common::run_ok(
        common::qamlab()
            .current_dir(&here)
            .args([
                "collect",
                "--quiet",
                "--task",
                "mine.scn.ron",
                "--episodes",
                "2",
            ])
            .args(["--episode-length", "20", "--out", "d.npz"]),
    );
    let shown = succeeded(qamlab(&["dataset", here.join("d.npz").to_str().unwrap()]));
    let command = shown
        .lines()
        .find_map(|line| line.split_once(": qamlab collect ").map(|(_, c)| c))
        .unwrap_or_else(|| panic!("no command in:\n{shown}"));
    let task = here.join("mine.scn.ron");
    assert!(
        command.starts_with(&format!("--task {} ", task.display()))
            && command.ends_with(&format!("--out {}", here.join("d.npz").display())),
        "{command}"
    );
    // Run as shown from elsewhere (to another name, as the shown one exists): the same bytes.
    let again = here.join("again.npz");
    let mut args: Vec<String> = command.split(' ').map(String::from).collect();
    *args.last_mut().unwrap() = again.display().to_string();
    common::run_ok(
        common::qamlab()
            .current_dir(std::env::temp_dir())
            .arg("collect")
            .arg("--quiet")
            .args(&args),
    );
    assert!(std::fs::read(here.join("d.npz")).unwrap() == std::fs::read(&again).unwrap());
}

#[test]
fn a_dataset_s_command_pastes_into_a_shell_whatever_its_paths_hold() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().canonicalize().unwrap().join("my dir");
    std::fs::create_dir(&here).unwrap();
    std::fs::copy(
        common::checkout_dir().join("assets/tasks/cube-single.scn.ron"),
        here.join("my task.scn.ron"),
    )
    .unwrap();
    common::run_ok(
        common::qamlab()
            .current_dir(&here)
            .args(["collect", "--quiet", "--task", "my task.scn.ron"])
            .args([
                "--episodes",
                "2",
                "--episode-length",
                "20",
                "--out",
                "my set.npz",
            ]),
    );
    let file = here.join("my set.npz");
    let shown = succeeded(qamlab(&["dataset", file.to_str().unwrap()]));
    let command = shown
        .lines()
        .find_map(|line| line.split_once(": qamlab collect ").map(|(_, c)| c))
        .unwrap_or_else(|| panic!("no command in:\n{shown}"));
    let quoted = |path: &Path| format!("'{}'", path.display());
    let suffix = format!(" --out {}", quoted(&file));
    assert!(
        command.starts_with(&format!(
            "--task {} ",
            quoted(&here.join("my task.scn.ron"))
        )) && command.ends_with(&suffix),
        "{command}"
    );
    // Pasted into a shell elsewhere (to another name, as the shown one exists): the same bytes.
    let again = here.join("it's again.npz");
    let line = format!(
        "qamlab collect {} --out \"{}\" --quiet",
        command.strip_suffix(&suffix).unwrap(),
        again.display()
    );
    common::run_ok(&mut common::pasted(&line, &std::env::temp_dir()));
    assert!(std::fs::read(&file).unwrap() == std::fs::read(&again).unwrap());

    // `--json`: the same figures, for scripts, and nothing else on stdout.
    let json = succeeded(qamlab(&[
        "dataset",
        again.to_str().unwrap(),
        "--json",
        "--task",
        "cube-single",
    ]));
    assert_eq!(json.lines().count(), 1, "{json}");
    let value: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
    assert_eq!(value["file"], again.display().to_string());
    assert_eq!(value["episodes"], 2);
    assert_eq!(value["transitions"], 40);
    assert_eq!(
        (value["obs_dim"].clone(), value["action_dim"].clone()),
        (28.into(), 5.into())
    );
    assert_eq!(value["source"]["task"], "cube-single");
    assert_eq!(value["source"]["actions"][4], "gripper");
    assert_eq!(value["source"]["state_bodies"][6], "cube");
    // As the text shows it, this file's name (quoted as a shell needs it: `it's`) making it whole.
    let text = succeeded(qamlab(&["dataset", again.to_str().unwrap()]));
    let (_, shown_again) = text.split_once(": qamlab collect ").unwrap();
    let shown_again = shown_again.lines().next().unwrap();
    assert!(shown_again.ends_with("s again.npz\""), "{shown_again}");
    assert_eq!(
        value["source"]["collected_with"],
        format!("qamlab collect {shown_again}")
    );
    assert_eq!(value["rewards"]["max"], -1.0);
    assert_eq!(value["fits"]["task"], "cube-single");
    assert_eq!(value["fits"]["ok"], true);
    assert_eq!(value["fits"]["notes"], serde_json::json!([]));
    // A task it does not fit: the object says why, and the command still fails.
    let out = qamlab(&[
        "dataset",
        again.to_str().unwrap(),
        "--json",
        "--task",
        "cube-double",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        (&value["fits"]["task"], &value["fits"]["ok"]),
        (&"cube-double".into(), &false.into())
    );
    let error = value["fits"]["error"].as_str().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(error),
        "{error}"
    );
}

#[test]
fn an_out_path_of_an_unexpanded_tilde_or_a_dangling_link_and_a_run_of_no_steps_are_refused_up_front()
 {
    let dir = tempfile::tempdir().unwrap();
    let refused_in = |args: &[&str]| {
        let out = common::qamlab()
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        stderr
    };
    // `--out=~/...`: the shell leaves the `~` as it is; qamlab says so rather than make a folder named `~`.
    for args in [
        &["collect", "--episodes", "1", "--out=~/t.npz"][..],
        &["plot", "runs/a", "--out=~/x.png"],
        &["train", "--offline-steps", "0", "--out=~/run"],
        &["demo", "--device", "cpu", "--out=~/demo"],
    ] {
        let stderr = refused_in(args);
        assert!(
            stderr.contains("the path begins with a literal `~`, which the shell did not expand"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!dir.path().join("~").exists());
    // A link to a folder not made yet stands where the run's folder must go.
    std::os::unix::fs::symlink("nowhere", dir.path().join("dangling")).unwrap();
    for args in [
        &["train", "--offline-steps", "0", "--out", "dangling"][..],
        &["demo", "--device", "cpu", "--out", "dangling"],
    ] {
        let stderr = refused_in(args);
        assert!(
            stderr.contains("--out dangling is a symbolic link to nowhere, which does not exist: make that folder"),
            "{args:?}: {stderr}"
        );
    }
    // A run of no steps would leave nothing to evaluate, plot or resume.
    let stderr = refused_in(&[
        "train",
        "--offline-steps",
        "0",
        "--online-steps",
        "0",
        "--out",
        "r",
    ]);
    assert!(
        stderr.contains("offline_steps = 0 and online_steps = 0: the run would train nothing"),
        "{stderr}"
    );
    assert!(!dir.path().join("r").exists());
}

#[test]
fn dataset_shows_what_a_file_holds_and_whether_it_fits_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.npz");
    let out = qamlab(&[
        "collect",
        "--quiet",
        "--episodes",
        "2",
        "--envs",
        "2",
        "--episode-length",
        "30",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    // `qamlab dataset PATH --task cube-single --columns`, as each file here is shown.
    let show = |path: &std::path::Path| {
        let path = path.to_str().unwrap();
        qamlab(&["dataset", path, "--task", "cube-single", "--columns"])
    };
    let stdout = succeeded(show(&file));
    for line in [
        "d.npz: 2 episodes, 60 transitions, 28-D observations, 5-D actions",
        "source: task cube-single (scene builtin:cube-single), by qamlab ",
        &format!(
            ": qamlab collect --task cube-single --episodes 2 --envs 2 --seed 0 --noise 0.1 --episode-length 30 \
             --out {}",
            file.display()
        ),
        "observations: pinch.position.x, pinch.position.y,",
        "actions: dx, dy, dz, dyaw, gripper",
        "qpos: 7 per body (x, y, z, qx, qy, qz, qw), qvel: 6 (linear, then angular velocity; world frame): \
         carriage_x, carriage_y, carriage_z, palm, finger_l, finger_r, cube\n",
        "% of episodes reach it",
        "rewards: mean ",
        "fits task cube-single",
    ] {
        assert!(stdout.contains(line), "`{line}` in:\n{stdout}");
    }
    let stderr = refused(&["dataset", file.to_str().unwrap(), "--task", "cube-double"]);
    assert!(
        stderr.contains("observations are 28-D")
            && stderr.contains("collected on task cube-single"),
        "{stderr}"
    );
    // A file that does not record its columns is checked by its widths, and says so.
    let bare = dir.path().join("bare.npz");
    common::write_npz(&bare, 28, 5, None);
    let out = show(&bare);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("qpos")
            && stdout.contains("source: not recorded")
            && stdout.contains("columns: not recorded")
            && stdout.contains("fits task cube-single, with a warning: dataset ")
            && stdout.contains("only its widths are checked against task cube-single")
            && stdout.contains("note: no transition reaches success"),
        "{stdout}"
    );
    // A misspelt task is said before anything is printed.
    let out = qamlab(&["dataset", file.to_str().unwrap(), "--task", "cube-singel"]);
    assert!(out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("cube-singel"));
    let stderr = stderr_of(&["dataset", "no-such.npz"]);
    assert!(
        stderr.contains("no-such.npz") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    // As `qamlab task cube-single --episodes 1 | head -0`: the reader is gone before the first line is printed.
    let mut child = common::qamlab()
        .args(["task", "cube-single", "--episodes", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}

/// A file every write to fails with "No space left on device", as a full disk does.
fn full_disk() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
}

#[test]
fn a_result_that_cannot_be_written_is_an_error_and_a_log_that_cannot_is_no_reason_to_stop() {
    // std's println!/eprintln! panic when the write fails (and so does tracing's report of a warning it could not
    // write): `dataset --json > full-disk/x.json` gave a trace, and a run whose stderr went to a full disk died
    // mid-way with exit 101 and a trace nobody could read.
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("d.npz");
    common::run_ok(common::collect_cmd(&dataset, "2", "0").arg("--quiet"));
    for args in [
        vec![
            "dataset".to_string(),
            dataset.to_string_lossy().into_owned(),
            "--json".into(),
        ],
        vec!["--help".into()],
        vec!["--version".into()],
    ] {
        let out = common::qamlab()
            .args(&args)
            .stdout(full_disk())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: writing standard output: No space left on device"),
            "{args:?}: {stderr}"
        );
    }
    // Training goes on with its warnings and progress lines going nowhere, and says its result.
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        common::tiny_config!(
            "offline_steps = 40\nonline_steps = 0\neval_interval = 20\neval_episodes = 1\ntf32 = true\n"
        ),
    )
    .unwrap();
    let train = |run: &Path, stderr: std::process::Stdio| {
        common::qamlab()
            .args(["train", "--device", "cpu", "--config"])
            .arg(&config)
            .arg("--dataset")
            .arg(&dataset)
            .arg("--out")
            .arg(run)
            .stderr(stderr)
            .output()
            .unwrap()
    };
    let seen = train(&dir.path().join("seen"), std::process::Stdio::piped());
    let stderr = String::from_utf8_lossy(&seen.stderr);
    assert!(
        stderr.contains("warning: tf32 = true applies to CUDA matmuls only"),
        "{stderr}"
    );
    assert!(stderr.contains("eval at step 20 (offline)"), "{stderr}");
    let run = dir.path().join("run");
    let out = train(&run, full_disk().into());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}\n{stdout}", out.status);
    assert!(stdout.contains("success: offline "), "{stdout}");
    assert!(run.join("summary.json").is_file());
}

#[test]
fn collect_replaces_an_existing_dataset_only_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("play.npz");
    let collect = |extra: &[&str]| {
        let mut args = vec!["collect", "--quiet", "--episodes", "1", "--envs", "1"];
        args.extend(extra);
        args.extend(["--out", out.to_str().unwrap()]);
        qamlab(&args)
    };
    assert!(collect(&["--seed", "1"]).status.success());
    let first = std::fs::read(&out).unwrap();
    let refused = collect(&["--seed", "2"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("play.npz exists already") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        first,
        "a refused collect left the file as it was"
    );
    assert!(collect(&["--seed", "2", "--overwrite"]).status.success());
    assert_ne!(std::fs::read(&out).unwrap(), first);
}

#[test]
fn bench_agent_measures_a_train_config_at_its_task_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        "task = \"cube-double\"\n[agent]\nkind = \"qam-e\"\nbatch_size = 8\n\
         actor_hidden_dims = [16, 16]\nvalue_hidden_dims = [16, 16]\nnum_qs = 2\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "agent", "--device", "cpu", "--config", config];
        args.extend(["--updates", "2", "--split-update", "on"]);
        args.extend(extra);
        let out = qamlab(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // The agents measured, each with a positive rate: `| kind | execution | updates/s | ...`.
    let rows = |stdout: &str| -> Vec<(String, f64)> {
        stdout
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| agent"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].to_string(), cells[3].parse().unwrap())
            })
            .collect()
    };

    // Its own agent kind, at cube-double's sizes rather than the benchmark's cube-single ones.
    let stdout = bench(&[]);
    assert!(
        stdout.contains("(task cube-double: obs 46, action 5)"),
        "{stdout}"
    );
    let measured = rows(&stdout);
    assert_eq!(measured.len(), 1, "{stdout}");
    assert_eq!(measured[0].0, "qam-e");
    assert!(measured[0].1 > 0.0, "{stdout}");
    // --agents measures others with the same settings.
    let kinds: Vec<String> = rows(&bench(&["--agents", "bc,fql"]))
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(kinds, ["bc", "fql"]);
    let out = qamlab(&["bench", "agent", "--config", config, "--agents", "fql,xyz"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--agents") && stderr.contains("\"xyz\""),
        "{stderr}"
    );

    // A key that does not exist is refused by name, with the file's name.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "task = \"cube-single\"\n[agent]\nhidden = 3\n").unwrap();
    let out = qamlab(&["bench", "agent", "--config", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("hidden") && stderr.contains("bad.toml"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn demo_replaces_its_previous_run_and_nothing_else() {
    // A file the demo's run does not write, in the directory it would replace: refused before collecting.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("qam-cpu");
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    std::fs::write(run.join("config.toml"), "").unwrap();
    std::fs::write(run.join("notes.txt"), "mine").unwrap();
    // Each demo here is refused: its stderr.
    let demo = || {
        let out = dir.path().to_str().unwrap();
        refused(&["demo", "--device", "cpu", "--quiet", "--out", out])
    };
    let stderr = demo();
    assert!(
        stderr.contains("qam-cpu")
            && stderr.contains("also holds notes.txt that a run does not write"),
        "{stderr}"
    );
    assert!(run.join("notes.txt").exists());
    assert!(!dir.path().join("cube-single-play.npz").exists());

    // A previous run that another process holds (training or resuming it) is not replaced either.
    std::fs::remove_file(run.join("notes.txt")).unwrap();
    let lock = std::fs::File::create(run.join(".lock")).unwrap();
    lock.lock().unwrap();
    let stderr = demo();
    assert!(
        stderr.contains("not while it runs") && stderr.contains("in use by another qamlab process"),
        "{stderr}"
    );
    assert!(run.join("config.toml").exists());
    assert!(!dir.path().join("cube-single-play.npz").exists());
}

#[test]
fn huge_counts_are_refused_naming_the_flag_and_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("c/huge.npz");
    let huge = huge.to_str().unwrap();
    let max = "18446744073709551615";
    for (args, expected) in [
        (
            &["train", "--offline-steps", "0", "--utd-ratio", max][..],
            "invalid value '18446744073709551615' for '--utd-ratio <UTD_RATIO>': must be from 1 to 1024",
        ),
        (
            &["train", "--offline-steps", "18000000000000000000"][..],
            "for '--offline-steps <OFFLINE_STEPS>': must be at most 1000000000000",
        ),
        (
            &["train", "--envs", "100000000000"][..],
            "for '--envs <ENVS>': must be from 1 to 4096",
        ),
        (
            &["task", "cube-single", "--episodes", "10000000000"][..],
            "for '--episodes <EPISODES>': must be at most 4096",
        ),
        (
            &["collect", "--episodes", max, "--out", huge][..],
            "for '--episodes <EPISODES>': must be from 1 to 100000000",
        ),
        (
            &[
                "collect",
                "--episodes",
                "2",
                "--episode-length",
                "4000000000",
                "--out",
                huge,
            ][..],
            "for '--episode-length <EPISODE_LENGTH>': must be from 1 to 1000000",
        ),
        (
            &[
                "collect",
                "--episodes",
                "2",
                "--val-episodes",
                max,
                "--out",
                huge,
            ][..],
            "for '--val-episodes <VAL_EPISODES>': must be at most 100000000",
        ),
        (
            &["bench", "sim", "--envs", "1,100000000"][..],
            "for '--envs <ENVS>': must be from 1 to 4096",
        ),
        (
            &[
                "bench",
                "agent",
                "--size",
                "small",
                "--agents",
                "bc",
                "--threads",
                "4294967298",
            ][..],
            "for '--threads <THREADS>': must be from 1 to 1024",
        ),
        (
            &["eval", "--run", "r", "--episodes", "10000000"][..],
            "for '--episodes <EPISODES>': must be from 1 to 1000000",
        ),
    ] {
        let out = qamlab(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Within the bounds but past the machine's memory: refused before anything is allocated, with what it would
    // take; the validation file's before the main file is collected.
    for (args, expected) in [
        (
            &["collect", "--episodes", "10000000", "--out", huge][..],
            "error: collect: --episodes 10000000 of 201 rows each (506 bytes a row) would take 947.2 GiB of memory, \
             more than this machine's ",
        ),
        (
            &[
                "collect",
                "--episodes",
                "2",
                "--val-episodes",
                "50000000",
                "--out",
                huge,
            ][..],
            "error: --val-episodes 50000000: the validation file ",
        ),
    ] {
        let out = qamlab(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with(expected), "{args:?}: {stderr}");
    }
    assert!(!dir.path().join("c").exists());
}

/// A run in `dir/run` with many evaluations: a chart that takes a while to draw.
fn run_with_a_slow_chart(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    std::fs::create_dir(&run).unwrap();
    let config =
        common::run_ok(common::qamlab().args(["train", "--print-config", "--config", "cpu-small"]));
    std::fs::write(run.join("config.toml"), &config.stdout).unwrap();
    let mut evals = String::from("step,phase,success_rate,mean_return,episodes\n");
    for i in 1..=20_000 {
        evals += &format!("{},offline,{},-100,10\n", 10 * i, f64::from(i % 7) / 7.0);
    }
    std::fs::write(run.join("eval.csv"), evals).unwrap();
    run
}

/// `qamlab plot RUN --out CHART`, started by `sh -c "PRELUDE; exec ..."`: with the signal dispositions and limits
/// the prelude sets, as a script would start it.
fn plot_started_by_sh(prelude: &str, run: &Path, chart: &Path) -> std::process::Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!(r#"{prelude}; exec "$@""#))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_qamlab"))
        .arg("plot")
        .arg(run)
        .arg("--out")
        .arg(chart)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `child` has taken SIGTERM over (as a command does when its work starts), while it runs.
fn wait_until_it_catches_sigterm(child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !common::catches(child.id(), libc::SIGTERM) {
        assert!(
            std::time::Instant::now() < deadline,
            "never took SIGTERM over"
        );
        assert!(child.try_wait().unwrap().is_none(), "ended early");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn a_signal_while_plot_draws_ends_it_once_the_chart_is_whole_with_no_temporary_file() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_a_slow_chart(dir.path());
    let charts = dir.path().join("charts");
    std::fs::create_dir(&charts).unwrap();
    let mut child = common::qamlab()
        .arg("plot")
        .arg(&run)
        .arg("--out")
        .arg(charts.join("c.png"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // plot takes the signal over as it starts drawing (until then it would die at once, with nothing written).
    wait_until_it_catches_sigterm(&mut child);
    // SAFETY: kill() with a live child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    // Ended by the signal, as without a handler, but only once the chart was in place.
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("wrote"),
        "{out:?}"
    );
    assert_eq!(common::names(&charts), ["c.png"]);
    assert_eq!(&std::fs::read(charts.join("c.png")).unwrap()[1..4], b"PNG");
}

#[test]
fn a_chart_write_that_fails_while_a_signal_waits_says_its_error_before_the_signal_ends_plot() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_a_slow_chart(dir.path());
    let chart = dir.path().join("c.png");
    // A file size limit smaller than the chart: its write fails.
    let mut child = plot_started_by_sh(r#"trap "" XFSZ; ulimit -f 1"#, &run, &chart);
    wait_until_it_catches_sigterm(&mut child);
    // SAFETY: kill() with a live child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("c.png"),
        "{stderr}"
    );
    assert_eq!(common::names(dir.path()), ["run"]);
}

#[test]
fn a_resume_whose_settings_fail_names_the_runs_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    // A run's settings without a dataset, offline steps and all: as if its `dataset` line had been removed.
    let config =
        common::run_ok(common::qamlab().args(["train", "--print-config", "--config", "cpu-small"]));
    std::fs::write(run.join("config.toml"), &config.stdout).unwrap();
    let stderr = refused(&["train", "--resume", run.to_str().unwrap()]);
    assert!(
        stderr.starts_with(&format!(
            "error: resuming {}: {} (edit it there): offline_steps = 20000 needs a dataset",
            run.display(),
            run.join("config.toml").display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_signal_the_command_was_started_ignoring_stays_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_a_slow_chart(dir.path());
    let chart = dir.path().join("c.png");
    // As a shell script's `plot ... &` starts it: SIGINT ignored.
    let mut child = plot_started_by_sh(r#"trap "" INT"#, &run, &chart);
    wait_until_it_catches_sigterm(&mut child);
    assert!(
        !common::catches(child.id(), libc::SIGINT),
        "plot took over the SIGINT it was started ignoring"
    );
    // SAFETY: kill() with a live child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(&std::fs::read(&chart).unwrap()[1..4], b"PNG");
}

/// `collect` (given as `cmd`, its flags so far) of 2 episodes and 300 validation ones to `out`, started and waited
/// for until its main file is written beside its name (2 episodes: at once), while the validation file's episodes
/// are still collected.
fn collect_staging_its_validation_file(cmd: &mut Command, out: &Path) -> std::process::Child {
    let mut child = cmd
        .args(["--quiet", "--episodes", "2", "--val-episodes", "300"])
        .args(["--envs", "4", "--out"])
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let name = out.file_name().unwrap().to_str().unwrap();
    common::wait_for_file_starting(
        out.parent().unwrap(),
        &format!(".tmp-{name}-"),
        &mut child,
        std::time::Duration::from_secs(120),
    );
    child
}

#[test]
fn collect_keeps_a_file_that_appears_under_its_name_while_it_runs_and_its_own_data_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.npz");
    // Once the main file is written beside its name, another process makes a file of that name.
    let child = collect_staging_its_validation_file(common::qamlab().arg("collect"), &out);
    std::fs::write(&out, "another process's file").unwrap();
    let ended = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&ended.stderr);
    assert_eq!(ended.status.code(), Some(1), "{stderr}");
    let moved = dir.path().join("d-1.npz");
    let moved_val = dir.path().join("d-1-val.npz");
    assert!(
        stderr.contains(&format!(
            "error: collect: {} appeared while this collect ran (another process made it; it is left as it is), so \
             the data went to {} and {} instead",
            out.display(),
            moved.display(),
            moved_val.display()
        )),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&ended.stdout).contains(&format!("wrote {}", moved.display())));
    assert_eq!(std::fs::read(&out).unwrap(), b"another process's file");
    assert_eq!(
        common::names(dir.path()),
        ["d-1-val.npz", "d-1.npz", "d.npz"]
    );
    let data = qamlab_headless::dataset::load_dataset(&moved).unwrap();
    assert_eq!(data.episodes, 2);
    assert_eq!(
        qamlab_headless::dataset::load_dataset(&moved_val)
            .unwrap()
            .episodes,
        300
    );
}

#[test]
fn collect_replaces_a_pair_together_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.npz");
    let val = dir.path().join("d-val.npz");
    let collect = |episodes: &str, val_episodes: &str| {
        let mut cmd = common::qamlab();
        cmd.args(["collect", "--quiet", "--overwrite", "--episodes", episodes])
            .args(["--val-episodes", val_episodes, "--envs", "4", "--out"])
            .arg(&out);
        cmd
    };
    assert!(collect("2", "2").status().unwrap().success());
    let old = (std::fs::read(&out).unwrap(), std::fs::read(&val).unwrap());

    // Ctrl-C once the main file is written beside its name: the old pair stays, and no temporary file.
    let child = collect_staging_its_validation_file(
        common::qamlab().args(["collect", "--overwrite"]),
        &out,
    );
    // SAFETY: kill() with a live child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let ended = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&ended.stderr);
    assert_eq!(ended.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: nothing was written (no temporary file is left)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("error:"),
        "a deliberate Ctrl-C is not an error: {stderr}"
    );
    assert_eq!(common::names(dir.path()), ["d-val.npz", "d.npz"]);
    assert!(old == (std::fs::read(&out).unwrap(), std::fs::read(&val).unwrap()));

    // A full disk (here a file size limit) is said once, as our error, with nothing printed from a `Drop`, and
    // leaves the old pair.
    let limited = Command::new("sh")
        .arg("-c")
        .arg(r#"trap "" XFSZ; ulimit -f 64; exec "$@""#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_qamlab"))
        .args([
            "collect",
            "--quiet",
            "--overwrite",
            "--episodes",
            "20",
            "--val-episodes",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&limited.stderr);
    assert_eq!(limited.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: writing {}: File too large (os error 27)",
            out.display()
        )
    );
    assert_eq!(common::names(dir.path()), ["d-val.npz", "d.npz"]);
    assert!(old.0 == std::fs::read(&out).unwrap());
}

#[test]
fn an_ogbench_file_as_wide_as_the_task_is_refused_by_its_qpos_width() {
    // OGBench's cube-single with rewards and masks added: 28-D observations and 5-D actions as qamlab's, but its
    // MuJoCo arm's qpos [N, 21] and qvel [N, 20].
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ogb.npz");
    let rows = 12;
    let terminals: Vec<bool> = (0..rows).map(|r| r % 6 == 5).collect();
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&path).unwrap());
    for (key, width) in [
        ("observations", 28),
        ("actions", 5),
        ("qpos", 21),
        ("qvel", 20),
    ] {
        npz.add_array(key, &ndarray::Array2::<f32>::zeros((rows, width)))
            .unwrap();
    }
    npz.add_array("terminals", &ndarray::Array1::from(terminals))
        .unwrap();
    npz.add_array("rewards", &ndarray::Array1::<f32>::zeros(rows))
        .unwrap();
    npz.add_array("masks", &ndarray::Array1::<f32>::ones(rows))
        .unwrap();
    npz.finish().unwrap();
    let file = path.to_str().unwrap();
    let stderr = refused(&["dataset", file, "--task", "cube-single"]);
    assert!(
        stderr.contains(&format!(
            "error: dataset {file}: key `qpos` is 21 values wide, but task cube-single's qpos is 49"
        )) && stderr.contains("likely recorded in another simulator"),
        "{stderr}"
    );
    let run = dir.path().join("run");
    let stderr = stderr_of(&[
        "train",
        "--quiet",
        "--task",
        "cube-single",
        "--dataset",
        file,
        "--device",
        "cpu",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains("key `qpos` is 21 values wide") && !run.exists(),
        "{stderr}"
    );
}

#[test]
fn a_dataset_with_no_transitions_is_refused_as_train_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, terminals: &[bool]| {
        let path = dir.path().join(name);
        common::write_episodes_npz(&path, 28, 5, terminals, None);
        path.to_str().unwrap().to_string()
    };
    // Two episodes of a final row each: no transition.
    let empty = write("empty.npz", &[true, true]);
    let stderr = refused(&["dataset", &empty, "--task", "cube-single"]);
    assert!(
        stderr.contains(&format!(
            "error: dataset {empty}: 0 transitions, fewer than one action chunk of horizon_length = 5: `qamlab \
             train` refuses it, whatever its horizon_length"
        )),
        "{stderr}"
    );
    let run = dir.path().join("run");
    let stderr = stderr_of(&[
        "train",
        "--quiet",
        "--task",
        "cube-single",
        "--dataset",
        &empty,
        "--device",
        "cpu",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains(&format!(
            "dataset {empty}: 0 transitions, fewer than one action chunk of horizon_length = 5"
        )),
        "{stderr}"
    );
    // Shorter than a chunk of the default horizon: fits, with what train would say.
    let short = write("short.npz", &[false, false, true]);
    let stdout = succeeded(qamlab(&["dataset", &short, "--task", "cube-single"]));
    assert!(
        stdout.contains(&format!(
            "fits task cube-single, with a warning: dataset {short} does not record the task it was collected on"
        )) && stdout.contains(&format!(
            "; and dataset {short}: 2 transitions, fewer than one action chunk of horizon_length = 5: `qamlab \
             train` refuses it unless [agent] horizon_length is at most 2 (5 by default)"
        )),
        "{stdout}"
    );
    // Transitions enough, but in episodes shorter than a chunk: every sample would run past its episode's end,
    // weighted 0 in the losses, and train nothing.
    let chopped = write("chopped.npz", &[false, false, true].repeat(4));
    let stdout = succeeded(qamlab(&["dataset", &chopped, "--task", "cube-single"]));
    assert!(
        stdout.contains(&format!(
            "; and dataset {chopped}: its longest episode has 2 transitions, fewer than one action chunk of \
             horizon_length = 5, and a chunk that runs past its episode's end trains nothing (it is weighted 0 in \
             the losses): `qamlab train` refuses it unless [agent] horizon_length is at most 2 (5 by default)"
        )),
        "{stdout}"
    );
    let stderr = stderr_of(&[
        "train",
        "--quiet",
        "--dataset",
        &chopped,
        "--device",
        "cpu",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains(&format!(
                "dataset {chopped}: its longest episode has 2 transitions, fewer than one action chunk"
            )),
        "{stderr}"
    );
    assert!(!run.exists());
    // Trains, but a batch larger than the data repeats transitions: said.
    let small = write(
        "small.npz",
        &[[false; 10].as_slice(), &[true]].concat().repeat(3),
    );
    let stderr = stderr_of(&[
        "train",
        "--quiet",
        "--dataset",
        &small,
        "--offline-steps",
        "1",
        "--online-steps",
        "0",
        "--device",
        "cpu",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains(&format!(
            "warning: [agent] batch_size = 256 is more than dataset {small}'s 30 transitions: each offline batch \
             repeats some of them"
        )),
        "{stderr}"
    );
}

#[test]
fn a_path_that_is_not_utf8_is_refused_before_the_run_by_its_flag() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join(std::ffi::OsStr::from_bytes(b"run-\xff"));
    for flag in ["--out", "--resume"] {
        let out = common::qamlab()
            .args(["train", flag])
            .arg(&bad)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(2)
                && stderr.contains(&format!("for '{flag} <"))
                && stderr.contains("the path is not valid UTF-8"),
            "{flag}: {stderr}"
        );
    }
    assert!(!bad.exists());
    // A task's path too, wherever a task is named.
    let scene = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"task-\xff.scn.ron"));
    for args in [&["task"][..], &["train", "--task"], &["collect", "--task"]] {
        let out = common::qamlab().args(args).arg(&scene).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(2)
                && stderr
                    .contains("the path is not valid UTF-8; qamlab records a task's path as text"),
            "{args:?}: {stderr}"
        );
    }
}

/// A run copies its scene file and records its path: a pipe would be read empty the second time.
#[test]
fn train_refuses_a_task_scene_that_is_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("scene");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let run = dir.path().join("run");
    let out = qamlab(&[
        "train",
        "--task",
        fifo.to_str().unwrap(),
        "--offline-steps",
        "0",
        "--out",
        run.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1)
            && stderr.contains(
                "is not a regular file (a pipe?): a run keeps a copy of its task's scene file"
            ),
        "{stderr}"
    );
    assert!(!run.exists());
}

#[test]
fn paths_that_cannot_be_what_they_name_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    // A device reads forever; a folder not at all.
    for (args, expected) in [
        (
            vec!["train", "--config", "/dev/zero"],
            "error: config file /dev/zero is larger than 4.0 MiB",
        ),
        (
            vec!["dataset", "/dev/zero"],
            "error: dataset /dev/zero is a device, not a regular file: give the path of a file",
        ),
        (
            vec!["train", "--dataset", ""],
            "for '--dataset <DATASET>': expected the path of a file, got an empty one",
        ),
    ] {
        let out = qamlab(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
    }
    let big = path("big.toml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let stderr = stderr_of(&["train", "--config", &big]);
    assert!(
        stderr.contains(&format!("error: config file {big} is larger than 4.0 MiB")),
        "{stderr}"
    );
    let empty = path("empty-dataset.toml");
    std::fs::write(&empty, "dataset = \"\"\n").unwrap();
    let stderr = stderr_of(&["train", "--config", &empty]);
    assert!(
        stderr.contains(&format!(
            "error: config file {empty}: dataset = \"\": expected the path of an .npz file"
        )),
        "{stderr}"
    );

    // A file where the run's folder must go: said as collect says it, before any work.
    let file = path("d.npz");
    std::fs::write(&file, "data").unwrap();
    let stderr = stderr_of(&[
        "train",
        "--quiet",
        "--offline-steps",
        "0",
        "--online-steps",
        "10",
        "--device",
        "cpu",
        "--out",
        &format!("{file}/sub"),
    ]);
    assert!(
        stderr.contains(&format!(
            "--out {file}/sub: {file} is a file, so the folder for it cannot be made"
        )),
        "{stderr}"
    );
    let demo_out = path("c3");
    std::fs::create_dir(&demo_out).unwrap();
    std::fs::write(format!("{demo_out}/qam-cpu"), "").unwrap();
    let stderr = refused(&["demo", "--device", "cpu", "--quiet", "--out", &demo_out]);
    assert!(
        stderr.contains(&format!(
            "error: --out {demo_out}: {demo_out}/qam-cpu is a file, so the demo's run folder cannot be made there"
        )),
        "{stderr}"
    );
    assert_eq!(common::names(std::path::Path::new(&demo_out)), ["qam-cpu"]);
}

#[test]
fn a_run_that_cannot_start_says_its_error_alone() {
    // Warnings of the settings (here: networks too wide for a CPU, TF32 on a CPU, no update online) are for a
    // run that starts; before a fatal error they would bury it.
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("d.npz");
    common::write_npz(&dataset, 3, 2, None);
    let run = dir.path().join("run");
    let stderr = refused(&[
        "train",
        "--dataset",
        dataset.to_str().unwrap(),
        "--device",
        "cpu",
        "--tf32",
        "true",
        "--online-steps",
        "10",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains("observations are 3-D and actions 2-D, but task cube-single has 28-D"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning:"), "{stderr}");
}

#[test]
fn eval_of_a_finished_runs_checkpoint_repeats_its_final_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    // A pendulum whose goal is wide enough to be reached at steps the policy's draws decide.
    let text = std::fs::read_to_string(
        common::checkout_dir().join("assets/tasks/examples/pendulum.scn.ron"),
    )
    .unwrap();
    let scene = dir.path().join("pendulum.scn.ron");
    std::fs::write(
        &scene,
        text.replacen("tolerance: 0.1)", "tolerance: 0.45)", 1),
    )
    .unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(
        &config,
        "offline_steps = 0\nonline_steps = 40\nenvs = 2\nstart_training = 10\neval_interval = 20\n\
         eval_episodes = 6\neval_envs = 3\ndevice = \"cpu\"\nseed = 3\n[agent]\nbatch_size = 4\n\
         actor_hidden_dims = [8]\nvalue_hidden_dims = [8]\nnum_qs = 2\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let (config, scene, run) = (
        config.to_str().unwrap(),
        scene.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    succeeded(qamlab(&[
        "train", "--quiet", "--config", config, "--task", scene, "--out", run,
    ]));
    let evals = std::fs::read_to_string(out.join("eval.csv")).unwrap();
    let last: Vec<&str> = evals.lines().last().unwrap().split(',').collect();
    // The run's evaluations' seed: its seed XOR 0x5EEDE7A1.
    let seed = (3u64 ^ 0x5EED_E7A1).to_string();
    let report = succeeded(qamlab(&[
        "eval",
        "--run",
        run,
        "--episodes",
        "6",
        "--envs",
        "3",
        "--seed",
        &seed,
        "--device",
        "cpu",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let figure = |i: usize| last[i].parse::<f64>().unwrap();
    assert!(figure(3) > -200.0 && figure(3) < -1.0, "{evals}");
    assert_eq!(
        (
            report["success_rate"].as_f64(),
            report["mean_return"].as_f64(),
            report["envs"].as_u64()
        ),
        (Some(figure(2)), Some(figure(3)), Some(3)),
        "{evals}"
    );
    // Spread over other envs, the episodes are others (the count is reported, as it picks them).
    let report = succeeded(qamlab(&[
        "eval",
        "--run",
        run,
        "--episodes",
        "6",
        "--envs",
        "2",
        "--seed",
        &seed,
        "--device",
        "cpu",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["envs"].as_u64(), Some(2));
}

/// A finished run in `dir/name` of `seed` on `cpu_threads` threads, with three evaluations.
fn plotted_run(dir: &Path, name: &str, seed: u64, cpu_threads: usize) -> PathBuf {
    let run = dir.join(name);
    std::fs::create_dir(&run).unwrap();
    let config =
        common::run_ok(common::qamlab().args(["train", "--print-config", "--config", "cpu-small"]));
    let config = String::from_utf8(config.stdout).unwrap().replace(
        "seed = 0\n",
        &format!("seed = {seed}\ncpu_threads = {cpu_threads}\n"),
    );
    std::fs::write(run.join("config.toml"), config).unwrap();
    let mut evals = String::from("step,phase,success_rate,mean_return,episodes\n");
    for (step, rate) in [(1000, 0.1), (2000, 0.3), (3000, 0.5 + seed as f64 / 10.0)] {
        evals += &format!("{step},offline,{rate},-100,10\n");
    }
    std::fs::write(run.join("eval.csv"), evals).unwrap();
    run
}

#[test]
fn plot_draws_seeds_on_different_cpu_threads_as_one_series_with_the_band_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let s0 = plotted_run(dir.path(), "qam-s0", 0, 1);
    let s1 = plotted_run(dir.path(), "qam-s1", 1, 2);
    let chart = dir.path().join("chart.png");
    for band in ["minmax", "sem", "none"] {
        let out = common::qamlab()
            .arg("plot")
            .args([&s0, &s1])
            .arg("--out")
            .arg(&chart)
            .args(["--band", band])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{band}: {stderr}");
        // One series: no note of runs drawn apart (they would differ in cpu_threads only).
        assert!(!stderr.contains("drawn apart"), "{band}: {stderr}");
        assert_eq!(&std::fs::read(&chart).unwrap()[1..4], b"PNG");
    }
    let out = qamlab(&["plot", "runs/a", "--band", "sd"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[possible values: minmax, sem, none]"),
        "{stderr}"
    );
}

#[test]
fn plot_draws_bc_seeds_as_one_series_whatever_the_qam_weights_their_config_kept() {
    let dir = tempfile::tempdir().unwrap();
    // BC runs from one QAM config at two inv_temp (a baseline beside each point of a QAM sweep): BC reads none.
    let bc = |name: &str, seed, inv_temp: &str| {
        let run = plotted_run(dir.path(), name, seed, 1);
        let path = run.join("config.toml");
        let config = std::fs::read_to_string(&path).unwrap();
        let edited = config
            .replacen("kind = \"qam\"\n", "kind = \"bc\"\n", 1)
            .replacen("inv_temp = 3.0\n", &format!("inv_temp = {inv_temp}\n"), 1);
        assert!(
            edited.contains("kind = \"bc\"")
                && edited.contains(&format!("inv_temp = {inv_temp}\n"))
        );
        std::fs::write(&path, edited).unwrap();
        run
    };
    let (s0, s1) = (bc("bc-s0", 0, "3.0"), bc("bc-s1", 1, "1.0"));
    let out = common::qamlab()
        .arg("plot")
        .args([&s0, &s1])
        .arg("--out")
        .arg(dir.path().join("chart.png"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("drawn apart"), "{stderr}");
}

#[test]
fn a_folder_named_like_a_shipped_config_does_not_hide_it() {
    // A run made with `--out cpu-small` beside the user's later `--config cpu-small`.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cpu-small")).unwrap();
    let here = common::run_ok(common::qamlab().current_dir(dir.path()).args([
        "train",
        "--print-config",
        "--config",
        "cpu-small",
    ]));
    let shipped =
        common::run_ok(common::qamlab().args(["train", "--print-config", "--config", "cpu-small"]));
    assert_eq!(here.stdout, shipped.stdout);
}

#[test]
fn task_lists_a_joint_goal_and_collect_refuses_its_scene() {
    let door = common::checkout_dir().join("assets/tasks/examples/door.scn.ron");
    let door = door.to_str().unwrap();
    let stdout = succeeded(qamlab(&["task", door, "--episodes", "0"]));
    assert!(
        stdout.contains("open.target [5..6]")
            && stdout
                .contains("  open: joint hinge within 0.1 rad of a target drawn from [0.5, 1.2]\n"),
        "{stdout}"
    );
    assert!(stdout.contains("oracle: none"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("door.npz");
    let err = stderr_of(&[
        "collect",
        "--task",
        door,
        "--episodes",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("a scene without `JointGoal`s") && err.contains("--offline-steps 0"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn task_lists_an_axis_goal_and_its_sensors() {
    let topple = common::checkout_dir().join("assets/tasks/examples/topple.scn.ron");
    let stdout = succeeded(qamlab(&[
        "task",
        topple.to_str().unwrap(),
        "--episodes",
        "0",
    ]));
    assert!(
        stdout.contains("cylinder.axis(0,0,1) [6..9], fallen.direction [9..12]"),
        "{stdout}"
    );
    let listed = stdout
        .lines()
        .find(|l| l.starts_with("  fallen: "))
        .unwrap_or_else(|| panic!("no axis goal listed: {stdout}"));
    assert!(
        listed.starts_with("  fallen: cylinder's axis (0, 0, 1) within ")
            && listed.contains("of the direction (1, 0, 0), turned about z by a yaw drawn from ["),
        "{listed}"
    );
    assert!(
        stdout.contains("oracle: none") && stdout.contains("`AxisGoal`s"),
        "{stdout}"
    );
}
