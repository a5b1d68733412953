//! End-to-end training through the binary: collect -> train offline -> online, kill -9 and resume,
//! evaluation of the run, and clear errors for bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{collect_cmd, qamlab, run_err, run_ok, tiny_config, train_cmd, write_npz};
use qamlab_agent::checkpoint::{read_tensors, write_tensors};
use qamlab_headless::run_dir::{STATE_CRC_KEY, seal_state};

/// A tiny network and schedule so a whole run takes seconds on a CPU.
const TINY: &str = tiny_config!(
    r#"
task = "cube-single"
offline_steps = 60
online_steps = 1200
envs = 2
start_training = 100
eval_interval = 200
eval_episodes = 2
eval_envs = 2
checkpoint_interval = 20
log_interval = 20
device = "cpu"
"#
);

/// `qamlab eval` of a run (its path to follow) with 2 episodes on 2 envs, on the CPU.
const EVAL_ON_CPU: [&str; 8] = [
    "eval",
    "--episodes",
    "2",
    "--envs",
    "2",
    "--device",
    "cpu",
    "--run",
];

/// The cube-single dataset the runs here train on, collected into `dir`.
fn collect(dir: &Path) -> PathBuf {
    let dataset = dir.join("data.npz");
    run_ok(&mut collect_cmd(&dataset, "4", "1"));
    dataset
}

/// The `summary.json` a finished run wrote.
fn summary_of(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

/// `qamlab train --quiet --resume RUN`.
fn resume_cmd(run: &Path) -> Command {
    let mut cmd = qamlab();
    cmd.args(["train", "--quiet", "--resume"]).arg(run);
    cmd
}

/// Waits (up to 300 s) until the running `child` has published a checkpoint of a step past `step`.
fn wait_for_checkpoint_past(run: &Path, child: &mut std::process::Child, step: u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap_or_default();
        let at: u64 = latest
            .trim()
            .trim_start_matches("step-")
            .parse()
            .unwrap_or(0);
        if at > step {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint past step {step} within 300 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be stopped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn killed_run_resumes_from_its_checkpoint_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = collect(dir.path());
    let config = write_config(dir.path(), "tiny.toml", TINY);
    let run = dir.path().join("run");

    let mut child = train_cmd(&config, &dataset, &run)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for a checkpoint in the online phase (past the offline steps), then kill -9.
    wait_for_checkpoint_past(&run, &mut child, 100);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!run.join("summary.json").exists());
    damaged_checkpoints_are_refused_naming_the_file(&run, dir.path());
    episodes_that_cannot_be_replayed_end_at_the_checkpoint(&run, dir.path());

    let out = run_ok(&mut resume_cmd(&run));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("success"), "{stdout}");

    let summary = summary_of(&run);
    assert_eq!(summary["online_steps"], 1200);
    // Offline 60 updates, then one update per env step from step 100 to 1200 (the resumed
    // process redoes nothing that its checkpoint holds).
    assert_eq!(summary["updates"], 60 + 1101);
    // Evaluations at offline step 60, online steps 200, 400, ..., 1200: none lost, none doubled.
    let steps: Vec<u64> = summary["evals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![60, 260, 460, 660, 860, 1060, 1260]);
    assert!(run.join("learning_curve.png").exists());
    // Metrics rows are strictly increasing in step: a resumed run does not log a step twice.
    let metric_steps: Vec<u64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        metric_steps.windows(2).all(|w| w[0] < w[1]),
        "{metric_steps:?}"
    );
    assert_eq!(*metric_steps.last().unwrap(), 1260);

    // The resumed run is the run that was never stopped: the same weights, optimiser state, replay buffer, metrics
    // and evaluations, bit for bit (the envs are put back into their episodes in progress).
    let straight = dir.path().join("straight");
    run_ok(&mut train_cmd(&config, &dataset, &straight));
    for file in ["agent.safetensors", "replay.safetensors"] {
        let sorted = |run: &Path| {
            let (mut tensors, _) = read_tensors(&latest_checkpoint(run).join(file)).unwrap();
            tensors.sort_by(|a, b| a.0.cmp(&b.0));
            tensors
        };
        let (a, b) = (sorted(&run), sorted(&straight));
        assert_eq!(a.len(), b.len(), "{file}");
        for ((name, x), (other, y)) in a.iter().zip(&b) {
            assert!(name == other && x.equal(y), "{file}: {name} differs");
        }
        // The files themselves too, their metadata (the checkpoint id) and all: the same run, the same bytes.
        let bytes = |run: &Path| std::fs::read(latest_checkpoint(run).join(file)).unwrap();
        assert!(bytes(&run) == bytes(&straight), "{file}'s bytes differ");
    }
    let without_timings = |run: &Path| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        text.lines()
            .map(|l| {
                let mut row: serde_json::Value = serde_json::from_str(l).unwrap();
                let row_map = row.as_object_mut().unwrap();
                for timing in ["wall_seconds", "updates_per_second", "env_steps_per_second"] {
                    row_map.remove(timing);
                }
                row
            })
            .collect()
    };
    assert_eq!(without_timings(&run), without_timings(&straight));
    let read = |path: PathBuf| std::fs::read_to_string(path).unwrap();
    assert_eq!(read(run.join("eval.csv")), read(straight.join("eval.csv")));

    // Resuming the finished run changes nothing, not even its summary's timings.
    let summary_before = read(run.join("summary.json"));
    let out = run_ok(&mut resume_cmd(&run));
    assert!(String::from_utf8_lossy(&out.stderr).contains("finished already"));
    assert_eq!(read(run.join("summary.json")), summary_before);
    // A finished run that lost its summary writes it again, and says so rather than promising the summary.
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let out = run_ok(&mut resume_cmd(&run));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("its summary.json is missing or unreadable: writing it again")
            && !stderr.contains("nothing to resume"),
        "{stderr}"
    );
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    let (before, again) = (json(&summary_before), json(&read(run.join("summary.json"))));
    for key in [
        "evals",
        "updates",
        "online_steps",
        "offline_success",
        "online_success",
    ] {
        assert_eq!(again[key], before[key], "{key}");
    }

    let chart = dir.path().join("curves.png");
    run_ok(qamlab().arg("plot").arg(&run).arg("--out").arg(&chart));
    assert_eq!(&std::fs::read(&chart).unwrap()[1..4], b"PNG");

    let out = run_ok(qamlab().args(EVAL_ON_CPU).arg(&run));
    assert!(String::from_utf8_lossy(&out.stdout).contains("success"));
    // A built-in task's run has no scene copy, and nothing to warn of (it was told its record was missing).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
}

/// A copy of `run` at `scratch/name` whose latest checkpoint's `state.json` went through `edit`, sealed again with
/// the checksum of its text (as an edit made on purpose is), so that its values are judged.
fn copy_editing_state(
    run: &Path,
    scratch: &Path,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let copy = scratch.join(name);
    copy_dir(run, &copy);
    let path = latest_checkpoint(&copy).join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut state);
    state.as_object_mut().unwrap().remove(STATE_CRC_KEY);
    let sealed = seal_state(&serde_json::to_string_pretty(&state).unwrap()).unwrap();
    std::fs::write(&path, sealed).unwrap();
    copy
}

/// A copy of `run` at `scratch/name` whose latest checkpoint's replay tensor `tensor` went through `edit`.
fn copy_editing_replay(
    run: &Path,
    scratch: &Path,
    name: &str,
    tensor: &str,
    edit: impl Fn(tch::Tensor) -> tch::Tensor,
) -> PathBuf {
    let copy = scratch.join(name);
    copy_dir(run, &copy);
    let path = latest_checkpoint(&copy).join("replay.safetensors");
    let (tensors, meta) = read_tensors(&path).unwrap();
    let tensors: Vec<(String, tch::Tensor)> = tensors
        .into_iter()
        .map(|(n, t)| if n == tensor { (n, edit(t)) } else { (n, t) })
        .collect();
    write_tensors(&path, &tensors, meta).unwrap();
    copy
}

fn latest_checkpoint(run: &Path) -> PathBuf {
    let name = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    run.join("checkpoints").join(name.trim())
}

#[test]
fn an_interrupted_run_checkpoints_where_it_stopped_and_says_how_to_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = collect(dir.path());
    let config = write_config(dir.path(), "tiny.toml", TINY);
    // Starts a run, sends `signal` once it has a checkpoint, and returns the run and what it printed on stderr.
    let interrupt = |name: &str, signal: libc::c_int, code: i32| {
        let run = dir.path().join(name);
        let mut child = train_cmd(&config, &dataset, &run)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_checkpoint_past(&run, &mut child, 0);
        // SAFETY: kill() with a live child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // 128 + the signal, as a shell reports a command it ended.
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(
            stderr.contains("interrupted: the run is checkpointed where it stopped")
                && stderr.contains("qamlab train --resume"),
            "{stderr}"
        );
        (run, stderr)
    };
    // Ctrl-C, on a run whose name a shell splits: the command it says to run is quoted, and runs pasted as is
    // into a shell elsewhere.
    let (run, stderr) = interrupt("my run", libc::SIGINT, 130);
    let stopped_at = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    assert!(stderr.contains(stopped_at.trim()), "{stderr}");
    let command = format!("qamlab train --resume '{}'", run.display());
    assert!(stderr.contains(&format!("`{command}`")), "{stderr}");
    // Evaluated before it is resumed, its agent is said to be part-way, in words and in the JSON.
    let out = run_ok(qamlab().args(EVAL_ON_CPU).arg(&run).arg("--json"));
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains(&format!(
            "is step {} of the run's 1260: not the finished agent (the run stopped early, or trains on another \
             machine; `{command}` finishes a stopped one)",
            stopped_at.trim().trim_start_matches("step-")
        )),
        "{note}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&report["finished"], &report["total_steps"]),
        (&serde_json::json!(false), &serde_json::json!(1260))
    );
    // Its note into a log whose reader is gone is dropped: the evaluation still gives its figure.
    let mut child = qamlab()
        .args(EVAL_ON_CPU)
        .arg(&run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("success"),
        "{out:?}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run_ok(&mut common::pasted(&command, elsewhere.path()));
    assert!(String::from_utf8_lossy(&out.stdout).contains("success"));
    // SIGTERM (`timeout`, `docker stop`, a scheduler) is taken as Ctrl-C is; a plain path is shown as it is.
    let (run, stderr) = interrupt("run-terminated", libc::SIGTERM, 143);
    assert!(
        stderr.contains(&format!("`qamlab train --resume {}`", run.display())),
        "{stderr}"
    );
    // So is SIGHUP, the closed terminal or ssh session's.
    interrupt("run-hung-up", libc::SIGHUP, 129);
}

#[test]
fn a_run_keeps_the_checkpoints_asked_for_and_eval_takes_one_by_its_step() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = collect(dir.path());
    let config = write_config(dir.path(), "tiny.toml", TINY);
    let run = dir.path().join("run");
    run_ok(train_cmd(&config, &dataset, &run).args([
        "--online-steps",
        "100",
        "--keep-checkpoints",
        "3",
    ]));
    let kept: Vec<String> = common::names(&run.join("checkpoints"))
        .into_iter()
        .filter(|n| n.starts_with("step-"))
        .collect();
    // Every 20 steps (60 offline, then 2 envs' online steps), the newest three.
    assert_eq!(kept, ["step-120", "step-140", "step-160"]);
    let eval_json = |args: &[&str], run: &Path| {
        let out = run_ok(qamlab().args(EVAL_ON_CPU).arg(run).args(args).arg("--json"));
        // An earlier step asked for is no news: no note that it is part-way.
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let by_step = eval_json(&["--step", "120"], &run);
    let by_dir = eval_json(&[], &run.join("checkpoints/step-120"));
    let latest = eval_json(&[], &run);
    assert_eq!(by_step["checkpoint"], by_dir["checkpoint"]);
    assert_eq!(by_step["run_dir"], latest["run_dir"]);
    assert_eq!(
        (&by_step["step"], &by_dir["step"], &latest["step"]),
        (
            &serde_json::json!(120),
            &serde_json::json!(120),
            &serde_json::json!(160)
        )
    );
    assert!(by_step["updates"].as_u64() < latest["updates"].as_u64());
    // A step the run did not keep, and two steps at once, are refused, saying what there is.
    let err = run_err(qamlab().args(EVAL_ON_CPU).arg(&run).args(["--step", "100"]));
    assert!(
        err.contains("has no checkpoint of step 100: it has step-120, step-140, step-160"),
        "{err}"
    );
    let err = run_err(
        qamlab()
            .args(EVAL_ON_CPU)
            .arg(run.join("checkpoints/step-140"))
            .args(["--step", "120"]),
    );
    assert!(
        err.contains("a checkpoint of step 140: give one of them"),
        "{err}"
    );
    // `step-N` named from inside the run's checkpoints folder.
    let out = run_ok(
        qamlab()
            .current_dir(run.join("checkpoints"))
            .args(EVAL_ON_CPU)
            .args(["step-140", "--json"]),
    );
    let from_inside: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_inside["step"], serde_json::json!(140));
    // In a terminal, a bar counts the episodes (a log gets a line every 30 s instead).
    let shown = stderr_on_a_terminal(
        qamlab()
            .args(EVAL_ON_CPU)
            .arg(&run)
            .args(["--episodes", "6"]),
    );
    assert!(
        shown.contains("eval [") && shown.contains("/6 episodes"),
        "{shown:?}"
    );
}

/// What `cmd` writes on its standard error where that is a terminal (a pseudo-terminal of 120 columns), asserting
/// it succeeded.
fn stderr_on_a_terminal(cmd: &mut Command) -> String {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes the two descriptors it opens; no name or settings are asked for.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // Not inherited by the processes other tests start meanwhile: the reader waits for every copy to close.
    for fd in [master, slave] {
        // SAFETY: fcntl on a descriptor just opened.
        assert_ne!(
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) },
            -1
        );
    }
    // SAFETY: both descriptors were just opened, and each is owned once.
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::from(slave));
    let mut child = cmd.spawn().unwrap();
    // The command keeps its copy of the terminal's end until replaced: the reader sees the end once the child's
    // copies close.
    cmd.stderr(Stdio::null());
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // A terminal's master reads EIO, not 0, once every slave is closed.
        let _ = master.read_to_end(&mut bytes);
        bytes
    });
    let status = child.wait().unwrap();
    let shown = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(status.success(), "{shown}");
    shown
}

#[test]
fn a_run_whose_log_reader_went_away_trains_on_to_its_end() {
    // `qamlab train ... 2>&1 | tee log`, its `tee` ended with the terminal: the next progress line found the pipe
    // closed, and SIGPIPE ended the run without a checkpoint. Its lines are now dropped, as on a full disk.
    let dir = tempfile::tempdir().unwrap();
    let dataset = collect(dir.path());
    let config = write_config(dir.path(), "tiny.toml", &offline_only(40));
    let run = dir.path().join("run");
    // Not --quiet: its start line and a line an evaluation go to the pipe.
    let mut child = qamlab()
        .args(["train", "--config"])
        .arg(&config)
        .arg("--dataset")
        .arg(&dataset)
        .arg("--out")
        .arg(&run)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(run.join("summary.json").is_file());
}

/// Copies of a killed run, each with one part of its latest checkpoint damaged: `--resume` refuses each, naming
/// the file and the value, rather than panicking or quietly resuming another run.
fn damaged_checkpoints_are_refused_naming_the_file(run: &Path, scratch: &Path) {
    // A count edited by hand (the sampler's draws would move on silently): the file's checksum no longer agrees.
    let copy = scratch.join("edited-state");
    copy_dir(run, &copy);
    let path = latest_checkpoint(&copy).join("state.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let position = serde_json::from_str::<serde_json::Value>(&text).unwrap()["sampler_word_pos"]
        .as_str()
        .unwrap()
        .to_string();
    let moved = (position.parse::<u128>().unwrap() + 16).to_string();
    let field = |pos: &str| format!("\"sampler_word_pos\": \"{pos}\"");
    std::fs::write(&path, text.replace(&field(&position), &field(&moved))).unwrap();
    let err = run_err(&mut resume_cmd(&copy));
    assert!(
        err.contains(&format!("{}: its text's CRC-32 is ", path.display()))
            && err.contains("the file was edited or damaged since its checkpoint was written"),
        "{err}"
    );
    let copy = copy_editing_state(run, scratch, "damaged-state", |state| {
        state["sampler_word_pos"] = "12x".into();
    });
    let err = run_err(&mut resume_cmd(&copy));
    assert!(
        err.contains("state.json") && err.contains("sampler_word_pos \"12x\""),
        "{err}"
    );
    let copy = copy_editing_state(run, scratch, "more-successes", |state| {
        state["online_successes"] = (state["online_episodes"].as_u64().unwrap() + 1).into();
    });
    let err = run_err(&mut resume_cmd(&copy));
    assert!(
        err.contains("state.json") && err.contains("is more than online_episodes"),
        "{err}"
    );

    let copy = copy_editing_replay(run, scratch, "damaged-replay", "pending/lengths", |_| {
        tch::Tensor::from_slice(&[-1i64])
    });
    let err = run_err(&mut resume_cmd(&copy));
    assert!(
        err.contains("replay.safetensors") && err.contains("pending/lengths [-1]"),
        "{err}"
    );
}

/// Copies of a killed run whose envs cannot be put back exactly (a checkpoint without their record, as older
/// versions wrote; a recorded observation the replay does not reach, as on a machine whose physics rounds
/// otherwise): `--resume` says why, ends the episodes in progress at the checkpoint, and finishes the run.
fn episodes_that_cannot_be_replayed_end_at_the_checkpoint(run: &Path, scratch: &Path) {
    let copy = copy_editing_state(run, scratch, "older", |state| {
        state
            .as_object_mut()
            .unwrap()
            .remove("env_episode_word_pos");
    });
    let out = run_ok(&mut resume_cmd(&copy));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("an older qamlab wrote it")
            && stderr.contains("the episodes in progress end at the checkpoint"),
        "{stderr}"
    );
    assert!(copy.join("summary.json").exists());

    // Killed just as every env began an episode, there is nothing to replay (nor to check).
    let (tensors, _) = read_tensors(&latest_checkpoint(run).join("replay.safetensors")).unwrap();
    let in_progress = tensors
        .iter()
        .any(|(name, t)| name == "pending/lengths" && t.sum(tch::Kind::Int64).int64_value(&[]) > 0);
    let copy = copy_editing_replay(
        run,
        scratch,
        "other-physics",
        "pending/next_observations",
        |t| t + 1e-3,
    );
    let out = run_ok(&mut resume_cmd(&copy));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warned = stderr.contains("did not reach the observation its checkpoint recorded")
        && stderr.contains("the episodes in progress end at the checkpoint");
    assert_eq!(warned, in_progress, "{stderr}");
    assert!(copy.join("summary.json").exists());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn bad_inputs_get_errors_that_name_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "tiny.toml", TINY);

    let missing = dir.path().join("nope.npz");
    let err = run_err(&mut train_cmd(&config, &missing, &dir.path().join("r1")));
    assert!(err.contains("nope.npz"), "{err}");

    let bad_key = write_config(
        dir.path(),
        "typo.toml",
        &TINY.replace("envs = 2", "envz = 2"),
    );
    let err = run_err(qamlab().args(["train", "--config"]).arg(&bad_key));
    assert!(err.contains("envz") && err.contains("typo.toml"), "{err}");

    // A value out of range names the file it came from, or the flag.
    let zero_batch = write_config(
        dir.path(),
        "zero.toml",
        &TINY.replace("batch_size = 16", "batch_size = 0"),
    );
    let err = run_err(qamlab().args(["train", "--config"]).arg(&zero_batch));
    assert!(
        err.contains("zero.toml") && err.contains("batch_size") && err.contains("at least 1"),
        "{err}"
    );
    // A value valid only for some kinds is checked once --agent has picked the kind; it too names the file.
    let one_critic = write_config(
        dir.path(),
        "k1.toml",
        &TINY.replace("num_qs = 2", "num_qs = 1"),
    );
    let err = run_err(
        qamlab()
            .args(["train", "--print-config", "--config"])
            .arg(&one_critic),
    );
    assert!(err.contains("k1.toml") && err.contains("num_qs"), "{err}");
    let err = run_err(
        qamlab()
            .args(["train", "--envs", "0", "--config"])
            .arg(&config),
    );
    assert!(
        err.contains("--envs") && err.contains("at least 1"),
        "{err}"
    );

    let err = run_err(
        qamlab()
            .args([
                "train",
                "--task",
                "cube-singel",
                "--online-steps",
                "10",
                "--offline-steps",
                "0",
            ])
            .arg("--out")
            .arg(dir.path().join("r2")),
    );
    assert!(
        err.contains("cube-singel") && err.contains("cube-single"),
        "{err}"
    );

    // A dataset of another task's shape: 3-D observations, 2-D actions.
    let wrong = dir.path().join("wrong.npz");
    write_npz(&wrong, 3, 2, None);
    let err = run_err(&mut train_cmd(&config, &wrong, &dir.path().join("r3")));
    assert!(
        err.contains("wrong.npz") && err.contains("3-D") && err.contains("28-D"),
        "{err}"
    );

    // A dataset holding a NaN is refused before any training, naming the key.
    let nan = dir.path().join("nan.npz");
    write_npz(&nan, 28, 5, Some((1, 4)));
    let err = run_err(&mut train_cmd(&config, &nan, &dir.path().join("r4")));
    assert!(
        err.contains("nan.npz") && err.contains("observations") && err.contains("non-finite"),
        "{err}"
    );

    let err = run_err(qamlab().args(["train", "--device", "tpu"]));
    assert!(err.contains("tpu"), "{err}");

    let err = run_err(&mut resume_cmd(&dir.path().join("no-run")));
    assert!(err.contains("no-run"), "{err}");
}

/// `TINY` with only an offline phase of `steps` steps: a run of a few seconds that ends in a checkpoint.
fn offline_only(steps: u64) -> String {
    TINY.replace("offline_steps = 60", &format!("offline_steps = {steps}"))
        .replace("online_steps = 1200", "online_steps = 0")
}

#[test]
fn a_dataset_trains_only_tasks_with_its_columns() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = collect(dir.path());
    let config = write_config(dir.path(), "tiny.toml", &offline_only(2));
    let scene =
        std::fs::read_to_string(common::checkout_dir().join("assets/tasks/cube-single.scn.ron"))
            .unwrap();
    let train_on = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let mut cmd = train_cmd(&config, &dataset, &dir.path().join(name.replace('.', "-")));
        cmd.arg("--task").arg(path);
        cmd
    };

    // A variant of the scene (another name, the same columns) trains, saying whose data it is.
    let renamed = scene.replace(r#"name: "cube-single""#, r#"name: "cube-heavy""#);
    let out = run_ok(&mut train_on("heavy.scn.ron", &renamed));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("data.npz was collected on task cube-single, not cube-heavy")
            && stderr.contains("(`--task cube-single` trains on the dataset's task)"),
        "{stderr}"
    );
    // An edited copy under the same name: another version of the scene, said too. A mere copy is the same scene.
    let heavier = scene.replace("density: 1000.0", "density: 3000.0");
    let out = run_ok(&mut train_on("heavier.scn.ron", &heavier));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr
            .matches("was collected on another version of task cube-single's scene (builtin:cube-single; here")
            .count(),
        1,
        "{stderr}"
    );
    // Said when the run starts; a resumed run was told.
    let run = dir.path().join("heavier-scn-ron");
    let config_file = run.join("config.toml");
    let longer = std::fs::read_to_string(&config_file)
        .unwrap()
        .replace("offline_steps = 2", "offline_steps = 4");
    std::fs::write(&config_file, longer).unwrap();
    let out = run_ok(&mut resume_cmd(&run));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("another version"), "{stderr}");
    let out = run_ok(&mut train_on("copy.scn.ron", &scene));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // (The few episodes collected may never reach success, which the dataset's warning says of it by name.)
    assert!(!stderr.contains("was collected on"), "{stderr}");

    // Two sensors of the same width swapped: the widths agree, the columns do not.
    let swapped = scene
        .replace(r#"Position(frame: "pinch"),"#, "FIRST")
        .replace(
            r#"LinearVelocity(frame: "pinch"),"#,
            r#"Position(frame: "pinch"),"#,
        )
        .replace("FIRST", r#"LinearVelocity(frame: "pinch"),"#);
    let err = run_err(&mut train_on("swapped.scn.ron", &swapped));
    assert!(
        err.contains("data.npz was collected on task cube-single (scene builtin:cube-single), whose observations are not")
            && err.contains("observation 0 is `pinch.position.x` there")
            && err.contains("collect a dataset of this task with `qamlab collect --task ")
            && err.contains("swapped.scn.ron`"),
        "{err}"
    );
}

#[test]
fn a_run_is_self_contained_and_refuses_what_is_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = collect(dir.path());
    let config = write_config(dir.path(), "tiny.toml", &offline_only(20));
    let scene = dir.path().join("my-task.scn.ron");
    std::fs::copy(
        common::checkout_dir().join("assets/tasks/cube-single.scn.ron"),
        &scene,
    )
    .unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    // Relative paths, from the temporary directory.
    run_ok(
        qamlab()
            .current_dir(dir.path())
            .args([
                "train",
                "--quiet",
                "--config",
                "tiny.toml",
                "--task",
                "sub/../my-task.scn.ron",
            ])
            .args(["--dataset", "sub/../data.npz", "--out", "run"]),
    );
    // The run keeps a copy of its scene, the scene's real path and the dataset's: evaluating it from elsewhere,
    // with the scene file gone, works.
    assert!(run.join("task.scn.ron").is_file());
    let recorded = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        recorded.contains(&format!(
            "dataset = {:?}",
            dataset.canonicalize().unwrap().display().to_string()
        )) && recorded.contains(&format!(
            "task = {:?}",
            scene.canonicalize().unwrap().display().to_string()
        )),
        "{recorded}"
    );
    // Its config.toml given to a new run once the scene file changed: the new run trains the file as it is now,
    // and says so, naming the copy that trains the task as this run did.
    let text = std::fs::read_to_string(&scene).unwrap();
    let edited = text.replacen("tolerance: 0.04)", "tolerance: 0.05)", 1);
    assert_ne!(edited, text);
    std::fs::write(&scene, edited).unwrap();
    let out = run_ok(
        qamlab()
            .args(["train", "--quiet", "--config"])
            .arg(run.join("config.toml"))
            .arg("--out")
            .arg(dir.path().join("again")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "but {} changed since that run started: this run trains the file as it is now; to train the task as \
             that run did, add --task {}",
            scene.canonicalize().unwrap().display(),
            run.canonicalize().unwrap().join("task.scn.ron").display()
        )),
        "{stderr}"
    );
    std::fs::remove_file(&scene).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run_ok(
        qamlab()
            .current_dir(elsewhere.path())
            .args(EVAL_ON_CPU)
            .arg(&run),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cube-single (qam, checkpoint step-20, 20 updates): success"),
        "{stdout}"
    );

    // The run's copy of its scene edited since it started (a goal 100 times as tolerant, a success at reset):
    // eval, resume and view refuse it, naming the file; restored, it is the run's again.
    let copy = run.join("task.scn.ron");
    let text = std::fs::read_to_string(&copy).unwrap();
    let edited = text.replacen("tolerance: 0.04)", "tolerance: 4.0)", 1);
    assert_ne!(edited, text);
    std::fs::write(&copy, edited).unwrap();
    for cmd in [
        qamlab().args(EVAL_ON_CPU).arg(&run),
        &mut resume_cmd(&run),
        // The display is never opened: the run is refused before.
        qamlab()
            .env("DISPLAY", ":0")
            .args(["view", "--checkpoint"])
            .arg(&run),
    ] {
        let err = run_err(cmd);
        assert!(
            err.contains(&format!(
                "{} was edited after the run started",
                copy.display()
            )) && err.contains("Restore the file, or start a new run with the edited task"),
            "{err}"
        );
    }
    std::fs::write(&copy, &text).unwrap();
    // `--json`: the sentence's figures unrounded, with what it leaves out, as one JSON object alone on stdout.
    let out = run_ok(
        qamlab()
            .current_dir(elsewhere.path())
            .args(EVAL_ON_CPU)
            .arg(&run)
            .args(["--seed", "3", "--json"]),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let expected = serde_json::json!({
        "run_dir": run.display().to_string(),
        "checkpoint": run.join("checkpoints/step-20").display().to_string(),
        "step": 20,
        "total_steps": 20,
        "finished": true,
        "updates": 20,
        "task": "cube-single",
        "agent": "qam",
        "episodes": 2,
        "seed": 3,
        "video": null,
        "video_error": null,
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&report[key], value, "{key} in {stdout}");
    }
    let rate = report["success_rate"].as_f64().unwrap();
    let successes = report["successes"].as_u64().unwrap();
    let [low, high] = [0, 1].map(|i| report["interval"][i].as_f64().unwrap());
    assert!(
        rate == successes as f64 / 2.0 && low <= rate && rate <= high && high <= 1.0,
        "{stdout}"
    );
    assert!(report["mean_return"].as_f64().unwrap() <= 0.0, "{stdout}");

    // Resuming on a dataset whose contents changed (same length, other episodes) is refused.
    let extended = std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .replace("offline_steps = 20", "offline_steps = 40");
    std::fs::write(run.join("config.toml"), extended).unwrap();
    let original = std::fs::read(&dataset).unwrap();
    run_ok(
        qamlab()
            .args([
                "collect",
                "--episodes",
                "4",
                "--envs",
                "2",
                "--seed",
                "2",
                "--overwrite",
                "--out",
            ])
            .arg(&dataset),
    );
    let err = run_err(resume_cmd(&run).current_dir(elsewhere.path()));
    assert!(
        err.contains("data.npz") && err.contains("contents changed"),
        "{err}"
    );
    // A new run given its config.toml says so too, and trains on the file as it is (the scene file is gone since:
    // the run's copy).
    let out = run_ok(
        qamlab()
            .args(["train", "--quiet", "--config"])
            .arg(run.join("config.toml"))
            .arg("--task")
            .arg(run.join("task.scn.ron"))
            .arg("--out")
            .arg(dir.path().join("again-on-new-data")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "but its dataset {} changed since that run trained on it (CRC-32 ",
            dataset.canonicalize().unwrap().display()
        )) && stderr.contains("): this run trains on the file as it is now"),
        "{stderr}"
    );
    std::fs::write(&dataset, original).unwrap();
    let err = run_err(
        qamlab()
            .args(["train", "--resume"])
            .arg(&run)
            .args(["--seed", "3"]),
    );
    assert!(err.contains("--resume") && err.contains("--seed"), "{err}");

    // A checkpoint of another run's agent (BC) is refused by eval and by resume, naming what differs.
    let bc = dir.path().join("bc");
    run_ok(
        qamlab()
            .args(["train", "--quiet", "--agent", "bc", "--config"])
            .arg(&config)
            .arg("--dataset")
            .arg(&dataset)
            .arg("--out")
            .arg(&bc),
    );
    std::fs::copy(
        bc.join("checkpoints/step-20/agent.safetensors"),
        run.join("checkpoints/step-20/agent.safetensors"),
    )
    .unwrap();
    for cmd in [qamlab().args(EVAL_ON_CPU).arg(&run), &mut resume_cmd(&run)] {
        let err = run_err(cmd);
        assert!(
            err.contains("step-20/agent.safetensors")
                && err.contains("kind = \"bc\" (config: \"qam\")")
                && err.contains("another run"),
            "{err}"
        );
    }

    // A new run never writes into a directory holding other files, nor over a file.
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("config.toml"), "my notes").unwrap();
    for out in [&mine, &dataset] {
        let err = run_err(&mut train_cmd(&config, &dataset, out));
        assert!(
            err.contains("not empty") || err.contains("is a file"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(mine.join("config.toml")).unwrap(),
        "my notes"
    );

    // A dataset shorter than one action chunk is refused before the run directory is made.
    let short = dir.path().join("short.npz");
    write_npz(&short, 28, 5, None);
    let err = run_err(&mut train_cmd(&config, &short, &dir.path().join("r-short")));
    assert!(
        err.contains("short.npz") && err.contains("horizon_length = 5"),
        "{err}"
    );
    assert!(!dir.path().join("r-short").exists());

    // plot writes PNG only, and refuses a run with nothing to draw.
    let plot = |runs: &[&PathBuf], out: &str| {
        run_err(
            qamlab()
                .arg("plot")
                .args(runs)
                .arg("--out")
                .arg(dir.path().join(out)),
        )
    };
    let err = plot(&[&bc], "c.jpg");
    assert!(err.contains("c.jpg") && err.contains(".png"), "{err}");
    std::fs::write(
        bc.join("eval.csv"),
        "step,phase,success_rate,mean_return,episodes\n",
    )
    .unwrap();
    let err = plot(&[&bc], "c.png");
    assert!(err.contains("no evaluation yet"), "{err}");
    // A run stopped before its first evaluation has no eval.csv at all: the same message.
    std::fs::remove_file(bc.join("eval.csv")).unwrap();
    let err = plot(&[&bc], "c.png");
    assert!(err.contains("no evaluation yet"), "{err}");
    let err = plot(&[&bc, &bc], "c.png");
    assert!(err.contains("is given twice"), "{err}");

    let err = run_err(qamlab().args(["eval", "--episodes", "0", "--run"]).arg(&bc));
    assert!(
        err.contains("--episodes") && err.contains("at least 1"),
        "{err}"
    );
}

#[test]
fn sparse_rewards_pay_only_for_complete_success() {
    // cube-double rewards partial progress (-2 to 0); `--sparse true` makes every reward that is not 0 a -1.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "tiny.toml", TINY);
    let online_rewards = |sparse: &str| -> Vec<f32> {
        let run = dir.path().join(format!("sparse-{sparse}"));
        run_ok(
            qamlab()
                .args([
                    "train",
                    "--quiet",
                    "--task",
                    "cube-double",
                    "--offline-steps",
                    "0",
                ])
                .args(["--online-steps", "40", "--sparse", sparse, "--config"])
                .arg(&config)
                .arg("--out")
                .arg(&run),
        );
        let (tensors, _) =
            read_tensors(&latest_checkpoint(&run).join("replay.safetensors")).unwrap();
        let mut rewards = Vec::new();
        for (name, t) in tensors {
            if name.ends_with("/rewards") {
                rewards.extend(Vec::<f32>::try_from(t.flatten(0, -1)).unwrap());
            }
        }
        assert_eq!(rewards.len(), 40);
        rewards
    };
    assert!(online_rewards("false").contains(&-2.0));
    let sparse = online_rewards("true");
    assert!(
        sparse.iter().all(|&r| r == -1.0 || r == 0.0) && sparse.contains(&-1.0),
        "{sparse:?}"
    );
}

#[test]
fn every_shipped_config_resolves() {
    let dir = common::checkout_dir().join("assets/configs");
    let mut configs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    configs.sort();
    assert!(configs.len() >= 3, "{configs:?}");
    for config in configs {
        let out = run_ok(
            qamlab()
                .args(["train", "--print-config", "--config"])
                .arg(&config),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        // The resolved configuration names its task and the agent's networks.
        assert!(
            text.contains("task = \"") && text.contains("actor_hidden_dims"),
            "{config:?}:\n{text}"
        );
        // The same by its name, from a directory without it: the binary holds the shipped configs.
        let name = config.file_stem().unwrap().to_str().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let by_name = run_ok(qamlab().current_dir(elsewhere.path()).args([
            "train",
            "--print-config",
            "--config",
            name,
        ]));
        assert_eq!(
            String::from_utf8_lossy(&by_name.stdout),
            text,
            "--config {name}"
        );
    }
    // A bare name that is no shipped config says which are.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = qamlab()
        .current_dir(elsewhere.path())
        .args(["train", "--print-config", "--config", "cpu-smal"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("cpu-smal")
            && stderr.contains("cpu-small, cuda-paper")
            && stderr.contains("did you mean `cpu-small`?"),
        "{stderr}"
    );
    // The checkout's path, given away from the checkout: the shipped name is offered.
    let out = qamlab()
        .current_dir(elsewhere.path())
        .args(["train", "--print-config", "--config"])
        .arg("assets/configs/cpu-small.toml")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("the shipped cpu-small is `--config cpu-small`"),
        "{stderr}"
    );
}

#[test]
fn a_full_disk_during_a_checkpoint_leaves_the_run_at_the_one_before() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let dataset = collect(dir.path());
    let config = write_config(dir.path(), "tiny.toml", TINY);
    let run = dir.path().join("run");
    let mut cmd = train_cmd(&config, &dataset, &run);
    // No file of the run may grow past 150 kB, as on a disk that fills: the agent file (about 90 kB) fits, the
    // online replay buffer (256 bytes a step) outgrows it some 600 steps in, while a checkpoint is written.
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Ignored, SIGXFSZ leaves the write failing with EFBIG, as ENOSPC does.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit.rlim_cur = 150_000;
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let err = run_err(&mut cmd);
    let kept = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    assert!(
        err.contains("writing the checkpoint of step")
            && err.contains(&format!("(its last checkpoint, {kept}, is kept)"))
            && err.contains("File too large"),
        "{err}"
    );
    // The checkpoint cut short left nothing, under its name or a temporary one.
    let mut left: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["latest".to_string(), kept.clone()]);
    assert!(!run.join("summary.json").exists());
    // The run goes on from the checkpoint before, as one stopped there.
    run_ok(qamlab().args(EVAL_ON_CPU).arg(&run));
    run_ok(&mut resume_cmd(&run));
    assert_eq!(
        std::fs::read_to_string(run.join("checkpoints/latest")).unwrap(),
        "step-1260"
    );
    assert!(run.join("summary.json").is_file());
}

#[test]
fn a_file_that_is_no_checkpoint_is_named_as_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = collect(dir.path());
    let config = write_config(dir.path(), "tiny.toml", &offline_only(20));
    let run = dir.path().join("run");
    run_ok(&mut train_cmd(&config, &dataset, &run));
    let dataset_error = "not a safetensors checkpoint: it is a zip archive, as a dataset (.npz) is";

    // A dataset given where a checkpoint file is read.
    let err = run_err(qamlab().args(["view", "--checkpoint"]).arg(&dataset));
    assert!(
        err.contains(&format!("{}: {dataset_error}", dataset.display())),
        "{err}"
    );
    let agent = run.join("checkpoints/step-20/agent.safetensors");
    std::fs::copy(&dataset, &agent).unwrap();
    for cmd in [
        qamlab().args(EVAL_ON_CPU).arg(&run),
        &mut resume_cmd(&run),
        qamlab().args(["view", "--checkpoint"]).arg(&agent),
    ] {
        let err = run_err(cmd);
        assert!(
            err.contains(&format!("{}: {dataset_error}", agent.display())),
            "{err}"
        );
    }
    // ... and where a run directory is.
    for cmd in [
        qamlab().args(EVAL_ON_CPU).arg(&dataset),
        &mut resume_cmd(&dataset),
    ] {
        let err = run_err(cmd);
        assert!(
            err.contains("data.npz is a file, not a run directory: it is a zip archive, as a dataset (.npz) is"),
            "{err}"
        );
    }
}

/// A tiny online-only CPU run: 40 steps on 2 envs, evaluated and checkpointed at its end.
const TINY_ONLINE: &str = tiny_config!(
    r#"
task = "cube-single"
offline_steps = 0
online_steps = 40
envs = 2
start_training = 10
eval_interval = 40
eval_episodes = 1
eval_envs = 1
checkpoint_interval = 20
log_interval = 20
device = "cpu"
"#
);

/// The stderr of `cmd`, asserting it succeeded.
fn stderr_ok(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_ok(cmd).stderr).into_owned()
}

#[test]
fn a_cpu_run_records_its_threads_and_a_resume_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "tiny.toml", TINY_ONLINE);
    let out = dir.path().join("run");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // More threads than this machine gives the process: kept, and warned of.
    let threads = cores + 1;
    let mut train = qamlab();
    train
        .args(["train", "--config"])
        .arg(&config)
        .args(["--cpu-threads", &threads.to_string(), "--out"])
        .arg(&out);
    let stderr = stderr_ok(&mut train);
    let plural = if cores == 1 { "core" } else { "cores" };
    assert!(
        stderr.contains(&format!(
            "cpu_threads = {threads} is more than the {cores} {plural} this machine gives the process"
        )) && stderr.contains(&format!("online steps) on cpu (cpu_threads {threads}), in ")),
        "{stderr}"
    );
    let path = out.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&format!("\ncpu_threads = {threads}\n")),
        "{text}"
    );
    let summary = || summary_of(&out);
    assert_eq!(summary()["cpu_threads"], threads);
    // Resumed (given more steps), it keeps them, and says how to change them.
    let longer = text.replace("online_steps = 40\n", "online_steps = 60\n");
    std::fs::write(&path, &longer).unwrap();
    let mut resume = qamlab();
    resume.args(["train", "--resume"]).arg(&out);
    let stderr = stderr_ok(&mut resume);
    assert!(
        stderr.contains(&format!(
            "on cpu (cpu_threads {threads}) from step 40 of 60"
        )) && stderr.contains(&format!(
            "cpu_threads = {threads}, recorded in {}, is more than the {cores} {plural}",
            path.display()
        )) && stderr.contains("edit cpu_threads in that file"),
        "{stderr}"
    );
    assert_eq!(summary()["cpu_threads"], threads);
    // A run from before the key (its config.toml without the first line that says it is whole) resumes on half
    // the cores, and records them, saying so.
    let older: String = longer
        .replace("online_steps = 60\n", "online_steps = 80\n")
        .lines()
        .filter(|l| !l.starts_with("cpu_threads") && !l.starts_with("# qamlab run config"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, &older).unwrap();
    let stderr = stderr_ok(&mut resume);
    let half = (cores / 2).max(1);
    assert!(
        stderr.contains(&format!("on cpu (cpu_threads {half}) from step 60 of 80"))
            && stderr.contains(&format!(
                "{} set no cpu_threads (the run started on a GPU, or with a qamlab that did not record it): \
                 recorded cpu_threads = {half}, the count this CPU leg takes, which later resumes keep",
                path.display()
            ))
            && !stderr.contains("is more than the"),
        "{stderr}"
    );
    assert_eq!(summary()["cpu_threads"], half);
    let recorded = std::fs::read_to_string(&path).unwrap();
    assert!(
        recorded.contains(&format!(
            "\ncpu_threads = {half}  # recorded when the run first trained on the CPU\n"
        )),
        "{recorded}"
    );
    // Later resumes keep it, saying nothing of it.
    let more = recorded.replace("online_steps = 80\n", "online_steps = 100\n");
    std::fs::write(&path, &more).unwrap();
    let stderr = stderr_ok(&mut resume);
    assert!(
        stderr.contains(&format!("on cpu (cpu_threads {half}) from step 80 of 100"))
            && !stderr.contains("set no cpu_threads"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), more);
}

#[test]
fn online_success_rates_are_null_until_episodes_end_and_the_summary_says_what_was_compared() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = collect(dir.path());
    // cube-single's episodes last 200 steps: on 2 envs the first end (at the latest) at online step 400.
    let config = write_config(
        dir.path(),
        "short.toml",
        tiny_config!(
            r#"
task = "cube-single"
offline_steps = 20
online_steps = 600
envs = 2
start_training = 100
eval_interval = 300
eval_episodes = 3
eval_envs = 2
checkpoint_interval = 1000
log_interval = 20
device = "cpu"
seed = 5
"#
        ),
    );
    let run = dir.path().join("run");
    let out = run_ok(&mut train_cmd(&config, &dataset, &run));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let online: Vec<&serde_json::Value> = rows.iter().filter(|r| r["phase"] == "online").collect();
    let (before, after): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) = online
        .iter()
        .partition(|r| r["online_episodes"].as_u64() == Some(0));
    assert!(!before.is_empty() && !after.is_empty(), "{rows:?}");
    // No episode ended: no rate, rather than a 0 % that reads as a measured one.
    for row in &before {
        assert!(row["online_episode_success"].is_null(), "{row}");
    }
    for row in &after {
        assert!(row["online_episode_success"].is_f64(), "{row}");
    }
    // Fewer than the recent window's 100 episodes: no recent rate anywhere.
    for row in &online {
        assert!(row["online_recent_success"].is_null(), "{row}");
    }
    // The plot draws what was measured, and skips the nulls.
    let png = dir.path().join("episodes.png");
    run_ok(
        qamlab()
            .args(["plot", "--metric", "online_episode_success", "--out"])
            .arg(&png)
            .arg(&run),
    );
    assert!(png.is_file());

    // The summary records what a comparison of runs must hold equal.
    let summary = summary_of(&run);
    assert_eq!(summary["seed"], 5);
    assert_eq!(summary["eval_episodes"], 3);
    assert_eq!(summary["eval_envs"], 2);
    assert_eq!(
        summary["dataset"].as_str().map(PathBuf::from),
        Some(std::path::absolute(&dataset).unwrap())
    );
    // The printed line gives the last evaluation's count and interval, and the best as the best of how many.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("success: offline "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("/3, 95% interval ")
            && line.contains("at step 20 -> online ")
            && line.contains("at step 620")
            && line.contains("of 2 online evaluations"),
        "{line}"
    );
}

#[test]
fn the_door_example_is_learned_online_to_its_joint_goal() {
    // A joint goal (the door's angle, drawn at each reset) on a hinge with a closer (its spring), learned from
    // nothing: random actions get the door there in about 1 episode of 8 (`qamlab task`); QAM in all 30 episodes
    // from 4000 online steps on (seed 0, 2026-12-07; 6 or 29 of 30 at 2000, by the day's version of the scene).
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("door");
    let door = common::checkout_dir().join("assets/tasks/examples/door.scn.ron");
    run_ok(
        qamlab()
            .args(["train", "--config", "cpu-small", "--task"])
            .arg(&door)
            .args([
                "--offline-steps",
                "0",
                "--online-steps",
                "4000",
                "--start-training",
                "500",
                "--eval-interval",
                "4000",
                "--seed",
                "0",
                "--quiet",
                "--out",
            ])
            .arg(&run),
    );
    let summary = summary_of(&run);
    let success = summary["online_success"].as_f64().unwrap();
    assert!(success >= 0.8, "online success {success}: {summary}");
}

#[test]
fn a_learned_policy_collects_a_dataset_for_a_task_without_an_oracle() {
    // The pendulum has no oracle: a run learns it online from nothing (100 % within 2000 steps, README), then
    // `collect --run` makes a dataset with its policy, which trains an agent offline.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("pendulum");
    let pendulum = common::checkout_dir().join("assets/tasks/examples/pendulum.scn.ron");
    run_ok(
        qamlab()
            .args(["train", "--config", "cpu-small", "--task"])
            .arg(&pendulum)
            .args(["--offline-steps", "0", "--online-steps", "2000"])
            .args(["--start-training", "500", "--eval-interval", "2000"])
            .args(["--device", "cpu", "--seed", "0", "--quiet", "--out"])
            .arg(&run),
    );
    let collect = |out: &Path, seed: &str| {
        let mut cmd = qamlab();
        cmd.args(["collect", "--run"])
            .arg(&run)
            .args([
                "--episodes",
                "40",
                "--envs",
                "4",
                "--device",
                "cpu",
                "--quiet",
            ])
            .args(["--seed", seed, "--out"])
            .arg(out);
        cmd
    };
    let data = dir.path().join("data.npz");
    let out = run_ok(&mut collect(&data, "3"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("acting with the policy of") && stdout.contains("checkpoint step-2000"),
        "{stdout}"
    );
    // The dataset fits the scene the run copied and the original alike, and says how it was made.
    let described = run_ok(
        qamlab()
            .args(["dataset", "--json", "--task"])
            .arg(&pendulum)
            .arg(&data),
    );
    let described: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(described["fits"]["ok"], true, "{described}");
    assert_eq!(described["episodes"], 40, "{described}");
    let made_with = described["source"]["collected_with"].as_str().unwrap();
    assert!(
        made_with.contains(" --run ") && made_with.contains(" --step 2000"),
        "{made_with}"
    );
    // The recorded command, run again, gives the same bytes; naming another checkpoint's tensors, it is refused.
    let recorded = |out: &Path, crc: Option<&str>| {
        let mut words = shlex::split(made_with).unwrap();
        assert_eq!(words.remove(0), "qamlab", "{made_with}");
        let at = words.iter().position(|w| w == "--out").unwrap();
        words[at + 1] = out.display().to_string();
        let at = words
            .iter()
            .position(|w| w == "--checkpoint-crc32")
            .unwrap();
        if let Some(crc) = crc {
            words[at + 1] = crc.into();
        }
        let mut cmd = qamlab();
        cmd.args(words).arg("--quiet");
        cmd
    };
    let rerun = dir.path().join("rerun.npz");
    run_ok(&mut recorded(&rerun, None));
    assert_eq!(
        std::fs::read(&data).unwrap(),
        std::fs::read(&rerun).unwrap()
    );
    let err = run_err(&mut recorded(&dir.path().join("x.npz"), Some("00000000")));
    assert!(
        err.contains("--checkpoint-crc32 00000000") && err.contains("not the policy that acted"),
        "{err}"
    );
    // Random actions swing it up in about 1 episode of 32; the learned policy, explored with OGBench's noise,
    // in all 40 (2026-12-07).
    let reaching = described["episodes_reaching_success"].as_u64().unwrap();
    assert!(
        reaching >= 30,
        "{reaching} of 40 episodes reach the goal: {described}"
    );
    // An agent trained offline on it, from nothing else, swings it up (all 20 episodes at 800 steps, seeds 0 and 1,
    // 2026-12-07).
    let offline = dir.path().join("offline");
    run_ok(
        qamlab()
            .args(["train", "--config", "cpu-small", "--task"])
            .arg(&pendulum)
            .arg("--dataset")
            .arg(&data)
            .args(["--offline-steps", "800", "--online-steps", "0"])
            .args(["--eval-interval", "800", "--eval-episodes", "20"])
            .args(["--device", "cpu", "--seed", "0", "--quiet", "--out"])
            .arg(&offline),
    );
    let summary = summary_of(&offline);
    let success = summary["offline_success"].as_f64().unwrap();
    assert!(success >= 0.8, "offline success {success}: {summary}");
    // Same seed, same bytes; another seed, other episodes.
    let again = dir.path().join("again.npz");
    run_ok(&mut collect(&again, "3"));
    assert_eq!(
        std::fs::read(&data).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let other = dir.path().join("other.npz");
    run_ok(&mut collect(&other, "4"));
    assert_ne!(
        std::fs::read(&data).unwrap(),
        std::fs::read(&other).unwrap()
    );
    // What cannot be collected so is refused, naming why.
    let err = run_err(collect(&dir.path().join("x.npz"), "3").arg("--solve"));
    assert!(err.contains("--solve") && err.contains("--run"), "{err}");
    let err = run_err(collect(&dir.path().join("x.npz"), "3").args(["--step", "7"]));
    assert!(err.contains("step 7") && err.contains("step-2000"), "{err}");
    let err = run_err(collect(&dir.path().join("x.npz"), "3").args(["--task", "cube-single"]));
    assert!(
        err.contains("trained on task pendulum") && err.contains("cube-single"),
        "{err}"
    );
    let text = std::fs::read_to_string(&pendulum).unwrap();
    let wide = dir.path().join("wide.scn.ron");
    std::fs::write(
        &wide,
        text.replace(
            "range: (min: -1.0, max: 1.0)",
            "range: (min: -2.0, max: 2.0)",
        ),
    )
    .unwrap();
    let err = run_err(
        collect(&dir.path().join("x.npz"), "3")
            .arg("--task")
            .arg(&wide),
    );
    assert!(err.contains("the agents act in [-1, 1]"), "{err}");
    // Another version of the run's scene: collected, with a warning that names both.
    let easier = dir.path().join("easier.scn.ron");
    std::fs::write(&easier, text.replace("tolerance: 0.1", "tolerance: 0.3")).unwrap();
    let out = run_ok(
        collect(&dir.path().join("easier.npz"), "3")
            .arg("--task")
            .arg(&easier),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is another version of task pendulum's scene")
            && stderr.contains("easier.scn.ron"),
        "{stderr}"
    );
    let err = run_err(
        qamlab()
            .args(["collect", "--episodes", "1", "--run"])
            .arg(dir.path())
            .arg("--out")
            .arg(dir.path().join("x.npz")),
    );
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(!dir.path().join("x.npz").exists());
}
