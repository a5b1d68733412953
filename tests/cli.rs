//! End-to-end checks of the `qamlab` binary as a user runs it.

use std::process::Command;

mod common;

fn qamlab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_qamlab"))
        .args(args)
        .output()
        .expect("running the qamlab binary")
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

#[test]
fn task_checks_a_scene_shows_its_layout_and_tries_it() {
    let out = qamlab(&["task", "cube-single", "--episodes", "4"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for expected in [
        "task cube-single (built-in)",
        "observation (28 values): pinch.position [0..3],",
        "actions (5 values): dx [-1, 1],",
        "cube_goal: cube within 0.04 m",
        "oracle: the scripted oracle drives it",
        "agents: they act in its action space",
        "tried: oracle (solve) succeeds in",
        "tried: random actions succeed in 0% of 4 episodes",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }

    // Random actions never succeed at cube-single: `task` says what that means for learning from nothing.
    assert!(
        stdout
            .contains("note: random actions never reached the goals: training online from nothing")
            && !stdout.contains("first control step"),
        "{stdout}"
    );
    // Keep-away rules of goals are listed with their ranges.
    let out = qamlab(&["task", "cube-double"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "at least 0.08 m from cube_a, at least 0.08 m from cube_b, at least 0.1 m from goal_a"
        ),
        "{stdout}"
    );

    // A goal that holds at reset (its tolerance spans the table): `task` points at it.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tasks/cube-single.scn.ron"),
    )
    .unwrap()
    .replacen(", tolerance: 0.04)", ", tolerance: 5.0)", 1);
    let easy = dir.path().join("easy.scn.ron");
    std::fs::write(&easy, text).unwrap();
    let out = qamlab(&["task", easy.to_str().unwrap(), "--episodes", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("note: 3 of 3 random episodes succeeded at their first control step"),
        "{stdout}"
    );

    // A scene file with a mistake: the error names the file and the field, and the exit code says so.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tasks/cube-single.scn.ron"),
    )
    .unwrap()
    .replacen(", tolerance: 0.04)", ")", 1);
    let bad = dir.path().join("bad.scn.ron");
    std::fs::write(&bad, text).unwrap();
    let out = qamlab(&["task", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.scn.ron") && stderr.contains("Goal.tolerance"),
        "{stderr}"
    );

    // An action range other than [-1, 1] loads, but the agents (which act in [-1, 1]) cannot use it: `task` says
    // so, and `train` refuses it before any work.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tasks/cube-single.scn.ron"),
    )
    .unwrap();
    let dz = "(name: \"dz\", joints: [\"z\"], control: PositionDelta(scale: 0.05), range: (min: -1.0, max: 1.0)";
    assert!(text.contains(dz));
    let narrow = dir.path().join("narrow.scn.ron");
    std::fs::write(
        &narrow,
        text.replacen(dz, &dz.replace("-1.0, max: 1.0", "-0.5, max: 0.5"), 1),
    )
    .unwrap();
    let why = "action `dz` ranges over [-0.5, 0.5], but the agents act in [-1, 1]";
    let out = qamlab(&["task", narrow.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "agents: cannot act in it: task cube-single: {why}"
        )),
        "{stdout}"
    );
    let run = dir.path().join("run");
    let out = qamlab(&[
        "train",
        "--quiet",
        "--task",
        narrow.to_str().unwrap(),
        "--offline-steps",
        "0",
        "--online-steps",
        "10",
        "--device",
        "cpu",
        "--out",
        run.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(why), "{stderr}");
}

#[test]
fn collect_writes_the_dataset_and_its_validation_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("play.npz");
    let status = Command::new(env!("CARGO_BIN_EXE_qamlab"))
        .args([
            "collect",
            "--quiet",
            "--episodes",
            "3",
            "--val-episodes",
            "1",
            "--envs",
            "3",
        ])
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let train = qamlab_headless::dataset::load_dataset(&out).unwrap();
    let val = qamlab_headless::dataset::load_dataset(dir.path().join("play-val.npz")).unwrap();
    assert_eq!((train.episodes, val.episodes), (3, 1));
    // Its own seed stream: the validation episode is none of the training ones.
    let first = |d: &qamlab_headless::dataset::Dataset| d.observations[..28].to_vec();
    assert_ne!(first(&train), first(&val));
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
    let out = qamlab(&[
        "dataset",
        file.to_str().unwrap(),
        "--task",
        "cube-single",
        "--columns",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for line in [
        "d.npz: 2 episodes, 60 transitions, 28-D observations, 5-D actions",
        "source: task cube-single (scene builtin:cube-single), by qamlab ",
        ": qamlab collect --task cube-single --episodes 2 --envs 2 --seed 0 --noise 0.1 --episode-length 30",
        "observations: pinch.position.x, pinch.position.y,",
        "actions: dx, dy, dz, dyaw, gripper",
        "% of episodes reach it",
        "rewards: mean ",
        "fits task cube-single",
    ] {
        assert!(stdout.contains(line), "`{line}` in:\n{stdout}");
    }
    let out = qamlab(&["dataset", file.to_str().unwrap(), "--task", "cube-double"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("observations are 28-D")
            && stderr.contains("collected on task cube-single"),
        "{stderr}"
    );
    // A file that does not record its columns is checked by its widths, and says so.
    let bare = dir.path().join("bare.npz");
    common::write_npz(&bare, 28, 5, None);
    let out = qamlab(&[
        "dataset",
        bare.to_str().unwrap(),
        "--task",
        "cube-single",
        "--columns",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("source: not recorded")
            && stdout.contains("columns: not recorded")
            && stdout.contains("fits task cube-single, with a warning: dataset ")
            && stdout.contains("only its widths are checked against task cube-single")
            && stdout.contains("note: no transition reaches success"),
        "{stdout}"
    );
    // A misspelt task is said before anything is printed.
    let out = qamlab(&["dataset", file.to_str().unwrap(), "--task", "cube-singel"]);
    assert!(out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("cube-singel"));
    let out = qamlab(&["dataset", "no-such.npz"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_qamlab"))
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
    let demo = || {
        let out = dir.path().to_str().unwrap();
        qamlab(&["demo", "--device", "cpu", "--quiet", "--out", out])
    };
    let out = demo();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
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
    let out = demo();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not while it runs") && stderr.contains("in use by another qamlab process"),
        "{stderr}"
    );
    assert!(run.join("config.toml").exists());
    assert!(!dir.path().join("cube-single-play.npz").exists());
}
