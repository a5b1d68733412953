//! Parity with the reference JAX update (shared/fixtures/qam): every intermediate, gradient,
//! updated parameter and Adam moment of one update per variant, at the README's tolerances.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qamlab_agent::checkpoint::read_tensors;
use qamlab_agent::{Agent, AgentConfig, AgentKind, Batch, ReplayNoise, Trace, TransitionStore};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

/// The fixture root: `QAMLAB_FIXTURES` (which must exist when set), else the lab's shared fixtures
/// beside the checkout, else the copy of them this repository keeps (`agent/tests/fixtures/qam`), so
/// that a clone anywhere checks parity rather than skipping it.
fn fixture_root() -> PathBuf {
    if let Some(root) = std::env::var_os("QAMLAB_FIXTURES").map(PathBuf::from) {
        assert!(
            root.is_dir(),
            "QAMLAB_FIXTURES={} is not a directory",
            root.display()
        );
        return root;
    }
    // The crate directory at run time (cargo sets it for `cargo test`): a test binary reused from a
    // shared target directory may have been compiled in another checkout.
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    );
    let shared = crate_dir.join("../../shared/fixtures/qam");
    if shared.is_dir() {
        return shared;
    }
    let kept = crate_dir.join("tests/fixtures/qam");
    assert!(
        kept.is_dir(),
        "no QAM fixtures: neither {} nor {} is a directory (set QAMLAB_FIXTURES)",
        shared.display(),
        kept.display()
    );
    kept
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    read_tensors(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .0
        .into_iter()
        .collect()
}

/// Builds the agent config from the fixture's resolved reference config.
fn config_from_fixture(c: &Value) -> AgentConfig {
    let f = |k: &str| c[k].as_f64().unwrap_or_else(|| panic!("config key {k}"));
    let u = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("config key {k}")) as usize;
    let dims = |k: &str| {
        c[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect::<Vec<_>>()
    };
    let fql = c["agent_name"] == "fql";
    let (fql_alpha, edit_scale) = if fql {
        (0.0, 0.0)
    } else {
        (f("fql_alpha"), f("edit_scale"))
    };
    let kind = if fql {
        AgentKind::Fql
    } else if fql_alpha > 0.0 {
        AgentKind::QamF
    } else if edit_scale > 0.0 {
        AgentKind::QamE
    } else {
        AgentKind::Qam
    };
    let d = AgentConfig::default();
    AgentConfig {
        kind,
        lr: f("lr"),
        batch_size: u("batch_size"),
        actor_hidden_dims: dims("actor_hidden_dims"),
        actor_layer_norm: c["actor_layer_norm"].as_bool().unwrap(),
        value_hidden_dims: dims("value_hidden_dims"),
        value_layer_norm: c["value_layer_norm"].as_bool().unwrap(),
        action_chunking: c["action_chunking"].as_bool().unwrap(),
        horizon_length: u("horizon_length"),
        num_qs: u("num_qs"),
        rho: f("rho"),
        discount: f("discount"),
        tau: f("tau"),
        flow_steps: u("flow_steps"),
        best_of_n: u("best_of_n"),
        inv_temp: if fql { d.inv_temp } else { f("inv_temp") },
        fql_alpha,
        edit_scale,
        edit_target_entropy: c["edit_target_entropy"].as_f64(),
        edit_target_entropy_multiplier: c["edit_target_entropy_multiplier"].as_f64().unwrap_or(0.5),
        alpha: c["alpha"].as_f64().unwrap_or(d.alpha),
        clip_grad: Some(c["clip_grad"].as_bool().unwrap_or(false)),
    }
}

/// `max |a − b| − (atol + rtol·|b|)` must be ≤ 0; returns the worst excess and abs diff.
fn close(name: &str, got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Result<f64, String> {
    let got = got.to_kind(Kind::Double).to_device(Device::Cpu);
    let want = want.to_kind(Kind::Double);
    if got.size() != want.size() {
        return Err(format!(
            "{name}: shape {:?} vs fixture {:?}",
            got.size(),
            want.size()
        ));
    }
    let diff = (&got - &want).abs();
    let used = (&diff / (want.abs() * rtol + atol)).max().double_value(&[]);
    let max_diff = diff.max().double_value(&[]);
    if used > 1.0 || !max_diff.is_finite() {
        return Err(format!(
            "{name}: max |Δ| = {max_diff:.3e} exceeds atol {atol:.1e} + rtol {rtol:.0e}·|x|"
        ));
    }
    Ok(used)
}

/// Draws in consumption order, with the tfp event-first layout of the edit draws moved to the end.
fn replay_draws(path: &Path) -> ReplayNoise {
    let mut draws: Vec<(String, Tensor)> = load(path).into_iter().collect();
    draws.sort_by(|a, b| a.0.cmp(&b.0));
    let draws = draws
        .into_iter()
        .map(|(name, t)| {
            if name.ends_with("edit_eps") {
                // raw[d, b(, n)] → ξ[b(, n), d]
                let dims: Vec<i64> = (1..t.dim() as i64).chain([0]).collect();
                (name, t.permute(dims.as_slice()).contiguous())
            } else {
                (name, t)
            }
        })
        .collect();
    ReplayNoise::new(draws)
}

fn batch_from(path: &Path) -> Batch {
    let b = load(path);
    let g = |k: &str| b[k].to_kind(Kind::Float);
    Batch {
        observations: g("observations"),
        actions: g("actions"),
        rewards: g("rewards"),
        masks: g("masks"),
        valid: g("valid"),
        terminals: g("terminals"),
        next_observations: g("next_observations"),
    }
}

/// Fixture output names whose value this port reports under another name (or derives).
fn alias(name: &str) -> Option<&'static str> {
    Some(match name {
        "total_loss_recomputed" => "total_loss",
        "edit_log_probs_formula" => "edit_log_probs",
        _ => return None,
    })
}

/// One variant's reference update replayed on `device`; returns the mismatches.
fn check_variant(dir: &Path, device: Device) -> Vec<String> {
    let cfg_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let cfg = config_from_fixture(&cfg_json["agent_config"]);
    let obs_dim = cfg_json["obs_dim"].as_u64().unwrap() as usize;
    let action_dim = cfg_json["action_dim"].as_u64().unwrap() as usize;
    let mut agent = Agent::new(cfg.clone(), obs_dim, action_dim, device, 0).unwrap();
    let params: Vec<(String, Tensor)> = load(&dir.join("params_before.safetensors"))
        .into_iter()
        .filter(|(n, _)| !n.starts_with("target_actor_fast/"))
        .collect();
    agent.set_parameters(&params).unwrap();
    let noise = replay_draws(&dir.join("draws.safetensors"));
    agent.set_noise(Box::new(noise));
    let batch = batch_from(&dir.join("batch.safetensors"));
    let mut trace = Trace::enabled();
    let metrics = agent.update_traced(&batch, &mut trace).unwrap();
    metrics.check_finite().unwrap();
    let out = load(&dir.join("outputs.safetensors"));
    let mut failures = Vec::new();
    let mut checked = 0;
    // The comparison that used the largest share of its tolerance, reported for the record.
    let mut worst = (0.0, String::new());
    let mut missing = Vec::new();
    let mut check = |name: &str, got: &Tensor, want: &Tensor, rtol: f64, atol: f64| match close(
        name, got, want, rtol, atol,
    ) {
        Ok(used) => {
            checked += 1;
            if used > worst.0 {
                worst = (used, name.to_string());
            }
        }
        Err(e) => failures.push(e),
    };
    let trainable: Vec<String> = agent
        .nets()
        .trainable()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut names: Vec<&String> = out.keys().collect();
    names.sort();
    for name in names {
        let want = &out[name];
        if name.starts_with("info/") || name == "after_rng" || name.starts_with("after_opt/count") {
            continue;
        }
        if name == "edit_target_entropy" {
            let entropy = Tensor::from(cfg.target_entropy(cfg.policy_dim(action_dim)) as f32);
            check(name, &entropy, want, 1e-4, 1e-5);
        } else if let Some(p) = name.strip_prefix("grad/") {
            let gmax = want.abs().max().double_value(&[]);
            if trainable.iter().any(|n| n == p) {
                let got = trace.get(name).unwrap();
                check(name, got, want, 1e-4, 1e-5 * gmax.max(1.0));
            } else {
                assert_eq!(
                    gmax, 0.0,
                    "{name}: fixture gradient of a non-trained tensor should be zero"
                );
            }
        } else if let Some(p) = name.strip_prefix("after/") {
            let own = agent.parameters();
            match own.iter().find(|(n, _)| n == p) {
                Some((_, t)) => check(name, t, want, 0.0, 5e-7),
                None => assert!(
                    p.starts_with("target_actor_fast/"),
                    "{name} has no counterpart"
                ),
            }
        } else if let Some(rest) = name.strip_prefix("after_opt/") {
            let (which, p) = rest.split_once('/').unwrap();
            let (moments, _) = agent.optimizer_state();
            match moments.iter().find(|(n, _, _)| n == p) {
                Some((_, mu, nu)) => {
                    check(name, if which == "mu" { mu } else { nu }, want, 1e-4, 1e-7)
                }
                None => assert_eq!(want.abs().max().double_value(&[]), 0.0, "{name}"),
            }
        } else {
            let key = alias(name).unwrap_or(name);
            match trace.get(key) {
                Some(got) => check(name, &got.reshape(want.size()), want, 1e-4, 1e-5),
                None => missing.push(format!("{name}: not produced by the port")),
            }
        }
    }
    failures.extend(missing);
    assert_eq!(agent.optimizer_state().1, 1);
    assert!(
        checked > 50,
        "{}: only {checked} comparisons",
        dir.display()
    );
    eprintln!(
        "{}: {checked} tensors compared, {} failures; closest to its tolerance: {} at {:.0}%",
        dir.display(),
        failures.len(),
        worst.1,
        worst.0 * 100.0
    );
    failures
}

/// Every variant folder under the fixture root, checked on `device`.
fn every_variant_on(device: Device) {
    let root = fixture_root();
    let mut variants: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("params_before.safetensors").is_file())
        .collect();
    variants.sort();
    assert!(
        variants.len() >= 4,
        "expected the four variant fixtures, found {variants:?}"
    );
    let failures: Vec<String> = variants
        .iter()
        .flat_map(|v| {
            check_variant(v, device)
                .into_iter()
                .map(move |f| format!("{}: {f}", v.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "fixture mismatches on {device:?}:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_variant_matches_the_reference_update() {
    every_variant_on(Device::Cpu);
}

/// The same reference updates run by libtorch's CUDA kernels (skipped, loudly, without CUDA).
#[test]
fn every_variant_matches_the_reference_update_on_cuda() {
    if !tch::Cuda::is_available() {
        // Straight to stderr: the harness would swallow `eprintln!` of a passing test.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "every_variant_matches_the_reference_update_on_cuda: SKIPPED, no CUDA device (it runs on a GPU machine)"
        );
        return;
    }
    every_variant_on(Device::Cuda(0));
}

#[test]
fn sample_sequence_matches_the_reference() {
    let root = fixture_root();
    let dir = root.join("dataset_sampling");
    let data = load(&dir.join("dataset.safetensors"));
    let flat = |k: &str| -> Vec<f32> {
        Vec::try_from(data[k].to_kind(Kind::Float).flatten(0, -1)).unwrap()
    };
    let (o, a) = (
        data["observations"].size()[1] as usize,
        data["actions"].size()[1] as usize,
    );
    let mut store = TransitionStore::new(o, a);
    store
        .extend_from_arrays(
            &flat("observations"),
            &flat("actions"),
            &flat("next_observations"),
            &flat("rewards"),
            &flat("masks"),
            &flat("terminals"),
        )
        .unwrap();
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let reference = load(&dir.join("sample_sequence.safetensors"));
    let idxs: Vec<i64> = Vec::try_from(&reference["idxs"]).unwrap();
    let starts: Vec<usize> = idxs.iter().map(|&i| i as usize).collect();
    let h = cfg["sequence_length"].as_u64().unwrap() as usize;
    let batch = store
        .sample_sequence(h, cfg["discount"].as_f64().unwrap(), &starts, Device::Cpu)
        .unwrap();
    let got = [
        ("observations", &batch.observations),
        ("actions", &batch.actions),
        ("rewards", &batch.rewards),
        ("masks", &batch.masks),
        ("valid", &batch.valid),
        ("terminals", &batch.terminals),
        ("next_observations", &batch.next_observations),
    ];
    for (k, t) in got {
        close(k, t, &reference[&format!("out/{k}")], 0.0, 1e-6).unwrap();
    }
    // and the variant fixtures' batch is this sampling cast to f32
    let fixture_batch = batch_from(&root.join("qam/batch.safetensors"));
    close(
        "batch.rewards",
        &batch.rewards,
        &fixture_batch.rewards,
        0.0,
        0.0,
    )
    .unwrap();
    close(
        "batch.next_observations",
        &batch.next_observations,
        &fixture_batch.next_observations,
        0.0,
        0.0,
    )
    .unwrap();
}

/// The repository's copy of the fixtures is the lab's, byte for byte, where the lab's are beside the checkout
/// (refresh it with `cp -r ../shared/fixtures/qam agent/tests/fixtures/` when they change).
#[test]
fn the_kept_fixtures_are_the_shared_ones() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (shared, kept) = (
        crate_dir.join("../../shared/fixtures/qam"),
        crate_dir.join("tests/fixtures/qam"),
    );
    if !shared.is_dir() {
        return;
    }
    fn files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    files(&shared, &shared, &mut a);
    files(&kept, &kept, &mut b);
    a.sort();
    b.sort();
    assert_eq!(
        a,
        b,
        "the kept fixtures hold other files than {}",
        shared.display()
    );
    for name in &a {
        assert!(
            std::fs::read(shared.join(name)).unwrap() == std::fs::read(kept.join(name)).unwrap(),
            "{} differs from the lab's",
            kept.join(name).display()
        );
    }
}
