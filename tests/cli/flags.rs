//! The flags as a script gives them: a bad value is a usage error (exit status 2) naming its flag, whatever the
//! flag; a flag given again takes its last value; a seed is one a run's config.toml can record.

use super::{common, qamlab};

/// Runs qamlab with `args`, asserting a usage error (exit status 2) that says `says`; returns its stderr.
fn usage_error(args: &[&str], says: &str) -> String {
    let out = qamlab(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
    assert!(
        !stderr.contains("unexpected argument") && !stderr.contains("tip:"),
        "{args:?}: {stderr}"
    );
    stderr
}

#[test]
fn a_value_a_flag_cannot_take_exits_2_naming_the_flag_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.npz");
    let out = out.to_str().unwrap();
    for (args, says) in [
        // Refused once collecting had started, with status 1, before.
        (
            &[
                "collect",
                "--episodes",
                "1",
                "--out",
                out,
                "--noise",
                "-0.5",
            ][..],
            "error: invalid value '-0.5' for '--noise <NOISE>': must be a finite number >= 0",
        ),
        (
            &[
                "collect",
                "--episodes",
                "1",
                "--out",
                out,
                "--random-action-prob",
                "2",
            ][..],
            "error: invalid value '2' for '--random-action-prob <RANDOM_ACTION_PROB>': must be from 0 to 1",
        ),
        (
            &["bench", "agent", "--agents", "bc, fql"][..],
            "error: invalid value ' fql' for '--agents <AGENTS>': unknown agent \" fql\" (expected qam, qam-f, \
             qam-e, fql or bc, separated by commas without spaces)",
        ),
        (
            &["bench", "agent", "--agents", ""][..],
            "error: invalid value '' for '--agents <AGENTS>': no agent named",
        ),
        (
            &["bench", "agent", "--size", "large"][..],
            "error: invalid value 'large' for '--size <SIZE>'",
        ),
        (
            &["plot", "runs/a", "--out", "chart.svg"][..],
            "error: invalid value 'chart.svg' for '--out <OUT>': the chart is written as PNG; give a .png file \
             name",
        ),
        // Refused by clap as an unknown flag `-1`, before: now by the flag's parser.
        (
            &["train", "--seed", "-1"][..],
            "error: invalid value '-1' for '--seed <SEED>': must be at least 0",
        ),
        (
            &["plot", "runs/a", "--smooth", "-1"][..],
            "error: invalid value '-1' for '--smooth <SMOOTH>': must be at least 1",
        ),
        (
            &["train", "--utd-ratio", "-2"][..],
            "error: invalid value '-2' for '--utd-ratio <UTD_RATIO>': must be at least 1",
        ),
        (
            &["eval", "--run", "r", "--episodes", "-10"][..],
            "error: invalid value '-10' for '--episodes <EPISODES>': must be at least 1",
        ),
        (
            &["task", "cube-single", "--episodes", "-1"][..],
            "error: invalid value '-1' for '--episodes <EPISODES>': must be at least 0",
        ),
        // Seeds past what a config.toml records: a run trained with one could not be read back.
        (
            &["train", "--seed", "9223372036854775808"][..],
            "error: invalid value '9223372036854775808' for '--seed <SEED>': must be at most 9223372036854775807, \
             the largest integer a run's config.toml can record",
        ),
        (
            &[
                "collect",
                "--episodes",
                "1",
                "--out",
                out,
                "--seed",
                "18446744073709551615",
            ][..],
            "must be at most 9223372036854775807, the largest integer a run's config.toml can record",
        ),
        (
            &["task", "cube-single", "--seed", "99999999999999999999"][..],
            "must be at most 9223372036854775807, the largest integer a run's config.toml can record",
        ),
        (
            &["demo", "--seed", "9223372036854775808"][..],
            "must be at most 9223372036854775807",
        ),
        (
            &["eval", "--run", "r", "--seed", "9223372036854775808"][..],
            "must be at most 9223372036854775807",
        ),
        (
            &["view", "--seed", "9223372036854775808"][..],
            "must be at most 9223372036854775807",
        ),
        // An unknown kind is said as bench says it, with no config file's wording.
        (
            &["train", "--agent", "qamx"][..],
            "for '--agent <AGENT>': unknown kind \"qamx\" (expected qam, qam-f, qam-e, fql or bc)\n",
        ),
        // Each spelling of a switch is taken by both commands; others list the command's own.
        (
            &["train", "--tf32", "maybe"][..],
            "[possible values: true, false, on, off, yes, no]",
        ),
        (
            &["bench", "agent", "--cuda-graphs", "maybe"][..],
            "[possible values: both, on, off]",
        ),
    ] {
        usage_error(args, says);
    }
    assert!(!dir.path().join("d.npz").exists());
}

#[test]
fn every_command_says_the_program_and_its_version() {
    // clap names a subcommand's version after a program of its own (`qamlab-train 0.1.0`), which does not exist.
    let want = format!("qamlab {}\n", env!("CARGO_PKG_VERSION"));
    for args in [
        &["-V"][..],
        &["train", "-V"],
        &["bench", "agent", "--version"],
    ] {
        let out = common::run_ok(common::qamlab().args(args));
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{args:?}");
    }
}

#[test]
fn a_flag_given_again_takes_its_last_value() {
    // The sweep pattern: a base command line, with a flag of it given again.
    let base = [
        "train",
        "--print-config",
        "--dataset",
        "base.npz",
        "--seed",
        "1",
        "--cuda-graphs",
        "off",
        "--tf32",
        "yes",
    ];
    let out = common::run_ok(
        common::qamlab()
            .args(base)
            .args(["--dataset", "other.npz", "--seed", "9223372036854775807"])
            .args(["--cuda-graphs", "true", "--split-update", "no"]),
    );
    let config = String::from_utf8_lossy(&out.stdout);
    for line in [
        "dataset = \"other.npz\"\n",
        "seed = 9223372036854775807\n",
        "cuda_graphs = true\n",
        "tf32 = true\n",
        "split_update = false\n",
    ] {
        assert!(config.contains(line), "no {line:?} in\n{config}");
    }
}

#[test]
fn a_run_of_the_largest_seed_is_read_back_by_eval_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(
        &config,
        common::tiny_config!(
            "device = \"cpu\"\noffline_steps = 0\nonline_steps = 8\nenvs = 2\nstart_training = 4\n\
             eval_interval = 8\neval_episodes = 2\neval_envs = 2\ncheckpoint_interval = 8\nlog_interval = 4\n"
        ),
    )
    .unwrap();
    let run = dir.path().join("run");
    let max = "9223372036854775807";
    common::run_ok(
        common::qamlab()
            .args(["train", "--quiet", "--seed", max, "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&run),
    );
    let recorded = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        recorded.contains(&format!("\nseed = {max}\n")),
        "{recorded}"
    );
    common::run_ok(
        common::qamlab()
            .args([
                "eval",
                "--episodes",
                "2",
                "--envs",
                "2",
                "--device",
                "cpu",
                "--seed",
                max,
                "--run",
            ])
            .arg(&run),
    );
    common::run_ok(
        common::qamlab()
            .arg("plot")
            .arg(&run)
            .arg("--out")
            .arg(dir.path().join("chart.png")),
    );
}

#[test]
fn task_exits_0_for_a_task_the_oracle_cannot_drive() {
    // As the README says: the oracle driving it or not is no failure; only a task no agent can act in, or one its
    // robot cannot solve, is.
    let scene = common::checkout_dir().join("assets/tasks/examples/pendulum.scn.ron");
    let out = common::run_ok(common::qamlab().arg("task").arg(&scene));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\noracle: none ("), "{stdout}");
}

#[test]
fn an_input_path_given_with_a_literal_tilde_is_told_why_it_was_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::qamlab()
        .current_dir(dir.path())
        .args(["eval", "--run=~/qamlab-no-such-run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "hint: `~/qamlab-no-such-run` begins with a literal `~`, which the shell did not expand"
        ) && stderr.contains("write `--run ~/qamlab-no-such-run`"),
        "{stderr}"
    );
}

#[test]
fn an_argument_that_is_not_utf8_gets_its_error_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let out = common::qamlab()
        .current_dir(dir.path())
        .arg("dataset")
        .arg(std::ffi::OsStr::from_bytes(b"x\xff.npz"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
