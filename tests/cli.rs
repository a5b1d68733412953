//! End-to-end checks of the `qamlab` binary as a user runs it.

use std::process::Command;

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
