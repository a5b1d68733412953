//! Checkpoints (round trip is bitwise, damaged files are named errors), acting shapes, non-finite
//! loss detection, and determinism of the seeded noise.

use qamlab_agent::checkpoint::{read_tensors, write_tensors};
use qamlab_agent::networks::{Parameters, flat_layout};
use qamlab_agent::{Agent, AgentConfig, AgentError, AgentKind, Batch, TransitionStore};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

const O: usize = 3;
const A: usize = 2;

fn tiny(kind: AgentKind) -> AgentConfig {
    let mut cfg = AgentConfig {
        batch_size: 8,
        actor_hidden_dims: vec![16, 16],
        value_hidden_dims: vec![16, 16],
        horizon_length: 3,
        num_qs: 2,
        flow_steps: 4,
        ..AgentConfig::default()
    };
    cfg.select_kind(kind);
    cfg
}

/// A tiny QAM agent, fresh, saved as `a.safetensors` in `dir`.
fn saved_qam(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("a.safetensors");
    Agent::new(tiny(AgentKind::Qam), O, A, Device::Cpu, 0)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

/// Deterministic observations (no draw from torch's global generator, which agents in other
/// test threads are using).
fn obs(n: i64) -> Tensor {
    (Tensor::arange(n * O as i64, (Kind::Float, Device::Cpu)) * 0.37)
        .sin()
        .reshape([n, O as i64])
}

fn store() -> TransitionStore {
    let mut s = TransitionStore::new(O, A);
    for i in 0..40 {
        let x = i as f32 * 0.1;
        let obs = [x.sin(), x.cos(), x];
        let next = [(x + 0.1).sin(), (x + 0.1).cos(), x + 0.1];
        s.push(
            &obs,
            &[x.sin() * 0.5, -0.3],
            -1.0,
            1.0,
            (i % 10 == 9) as u8 as f32,
            &next,
        )
        .unwrap();
    }
    s
}

fn batch(seed: u64) -> Batch {
    store()
        .sample(
            &mut ChaCha8Rng::seed_from_u64(seed),
            8,
            3,
            0.99,
            Device::Cpu,
        )
        .unwrap()
}

fn assert_same_params(a: &Agent, b: &Agent) {
    for ((na, ta), (nb, tb)) in a.parameters().iter().zip(b.parameters()) {
        assert_eq!(*na, nb);
        assert!(ta.equal(&tb), "{na} differs");
    }
    let ((ma, ca), (mb, cb)) = (a.optimizer_state(), b.optimizer_state());
    assert_eq!(ca, cb);
    for ((n, mua, nua), (_, mub, nub)) in ma.iter().zip(mb) {
        assert!(mua.equal(mub) && nua.equal(nub), "moments of {n} differ");
    }
}

#[test]
fn save_load_then_update_equals_uninterrupted_update_for_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    for kind in AgentKind::ALL {
        // A rate whose shortest decimal form has 17 digits (what a sweep computing 3e-4 * 0.7 writes) must come
        // back exactly, or the run refuses its own checkpoint as another run's.
        let cfg = AgentConfig {
            lr: 3e-4 * 0.7,
            ..tiny(kind)
        };
        let mut a = Agent::new(cfg, O, A, Device::Cpu, 5).unwrap();
        a.update(&batch(0)).unwrap();
        a.update(&batch(1)).unwrap();
        // Acting moves the draws on: a loaded agent draws on from where the saved one stood.
        for _ in 0..3 {
            let _ = a.sample_actions(&obs(2)).unwrap();
        }
        let path = dir.path().join(format!("{}.safetensors", kind.as_str()));
        a.save(&path).unwrap();
        let mut b = Agent::new(tiny(kind), O, A, Device::Cpu, 99).unwrap();
        assert!(!b.parameters()[0].1.equal(&a.parameters()[0].1));
        b = Agent::load(&path, Device::Cpu).unwrap();
        assert_eq!(b.step(), 2);
        assert_eq!(b.acting_position(), 3, "{kind:?} acting position");
        assert_eq!(b.config(), a.config());
        assert_same_params(&a, &b);
        a.update(&batch(2)).unwrap();
        b.update(&batch(2)).unwrap();
        assert_same_params(&a, &b);
        let obs = batch(3).observations;
        assert!(
            a.sample_actions(&obs)
                .unwrap()
                .equal(&b.sample_actions(&obs).unwrap()),
            "{kind:?} acting"
        );
    }
}

#[test]
fn truncated_checkpoint_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_qam(&dir);
    let bytes = std::fs::read(&path).unwrap();
    for cut in [4, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = Agent::load(&path, Device::Cpu)
            .err()
            .expect("truncated file must not load");
        let msg = err.to_string();
        assert!(
            matches!(err, AgentError::Checkpoint { .. }) && msg.contains("a.safetensors"),
            "{msg}"
        );
    }
}

#[test]
fn mismatched_tensor_shape_names_the_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_qam(&dir);
    let (mut tensors, meta) = read_tensors(&path).unwrap();
    let name = "actor_fast/mlp/Dense_1/kernel";
    let slot = tensors.iter_mut().find(|(n, _)| n == name).unwrap();
    slot.1 = Tensor::zeros([16, 17], (Kind::Float, Device::Cpu));
    write_tensors(&path, &tensors, meta.clone()).unwrap();
    let msg = Agent::load(&path, Device::Cpu).err().unwrap().to_string();
    assert!(
        msg.contains(name) && msg.contains("[16, 16]") && msg.contains("[16, 17]"),
        "{msg}"
    );
    // a tensor missing from the file is named too
    let (tensors, _) = read_tensors(&path).unwrap();
    let kept: Vec<_> = tensors
        .into_iter()
        .filter(|(n, _)| n != "critic/value_net/LayerNorm_0/scale")
        .collect();
    write_tensors(&path, &kept, meta).unwrap();
    let msg = Agent::load(&path, Device::Cpu).err().unwrap().to_string();
    assert!(
        msg.contains("critic/value_net/LayerNorm_0/scale") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn sample_actions_shapes_bounds_and_best_of_n() {
    for kind in AgentKind::ALL {
        let mut agent = Agent::new(tiny(kind), O, A, Device::Cpu, 1).unwrap();
        let obs = obs(7);
        let a = agent.sample_actions(&obs).unwrap();
        assert_eq!(a.size(), vec![7, (3 * A) as i64], "{kind:?}");
        assert!(a.abs().max().double_value(&[]) <= 1.0);
        let err = agent
            .sample_actions(&Tensor::zeros([7, 4], (Kind::Float, Device::Cpu)))
            .unwrap_err();
        assert!(err.to_string().contains("observations"), "{err}");
    }
    // best-of-N picks, per state, the candidate with the highest online-critic ensemble mean
    let cfg = AgentConfig {
        best_of_n: 16,
        ..tiny(AgentKind::Qam)
    };
    let mut agent = Agent::new(cfg, O, A, Device::Cpu, 2).unwrap();
    let obs = obs(64);
    let best = agent.sample_actions(&obs).unwrap();
    let critic = agent.nets().critic.as_ref().unwrap();
    let q_best = critic
        .forward(&obs, &best, true)
        .mean(Kind::Float)
        .double_value(&[]);
    let cfg1 = AgentConfig {
        best_of_n: 1,
        ..tiny(AgentKind::Qam)
    };
    let mut single = Agent::new(cfg1, O, A, Device::Cpu, 2).unwrap();
    single.set_parameters(&agent.parameters()).unwrap();
    let one = single.sample_actions(&obs).unwrap();
    let q_one = critic
        .forward(&obs, &one, true)
        .mean(Kind::Float)
        .double_value(&[]);
    assert!(
        q_best > q_one,
        "best-of-16 {q_best} should beat a single draw {q_one}"
    );
}

#[test]
fn a_one_step_actors_actions_stay_in_the_action_space_however_far_out_it_points() {
    for (kind, prefix) in [
        (AgentKind::QamF, "one_step_actor/"),
        (AgentKind::Fql, "actor_onestep_flow/"),
    ] {
        let mut agent = Agent::new(tiny(kind), O, A, Device::Cpu, 3).unwrap();
        // The output layer's bias: the last dense layer of the one-step actor.
        let (name, mut bias) = agent
            .parameters()
            .into_iter()
            .filter(|(n, _)| n.starts_with(prefix) && n.contains("/Dense_") && n.ends_with("/bias"))
            .max_by(|(a, _), (b, _)| a.cmp(b))
            .unwrap_or_else(|| panic!("{kind:?}: no one-step actor bias"));
        let d = bias.size()[0];
        assert_eq!(d, (3 * A) as i64, "{name} is the output layer's");
        // 50 past either bound, alternately.
        let far = Tensor::arange(d, (Kind::Float, Device::Cpu)).remainder(2) * -100.0 + 50.0;
        tch::no_grad(|| bias.copy_(&far));
        let actions = agent.sample_actions(&obs(5)).unwrap();
        let values = Vec::<f32>::try_from(actions.flatten(0, -1)).unwrap();
        assert!(
            values.iter().all(|v| v.abs() <= 1.0),
            "{kind:?}: {values:?}"
        );
        assert!(
            values.contains(&1.0) && values.contains(&-1.0),
            "{kind:?}: the actions stop at both bounds: {values:?}"
        );
    }
}

#[test]
fn non_finite_loss_is_an_error_naming_the_loss_and_nothing_changes() {
    let mut agent = Agent::new(tiny(AgentKind::Qam), O, A, Device::Cpu, 0).unwrap();
    let mut bad = batch(0);
    bad.rewards = bad.rewards.fill(f64::NAN);
    let before: Vec<Tensor> = agent.parameters().iter().map(|(_, t)| t.copy()).collect();
    let err = agent.update(&bad).unwrap_err();
    assert!(
        matches!(&err, AgentError::NonFinite { name, .. } if name == "critic_loss"),
        "{err}"
    );
    assert_eq!(agent.step(), 0);
    for ((n, t), b) in agent.parameters().iter().zip(&before) {
        assert!(t.equal(b), "{n} changed by a rejected update");
    }
    // the metrics check the caller uses on an accelerator finds the same thing
    let m = agent.update(&batch(0)).unwrap();
    m.check_finite().unwrap();
    let names = m.names();
    for want in [
        "critic_loss",
        "flow_loss",
        "adj_loss",
        "q_mean",
        "q_min",
        "q_max",
        "grad_norm",
        "total_loss",
    ] {
        assert!(
            names.contains(&want),
            "metric {want} missing from {names:?}"
        );
    }
    assert!(m.to_pairs().unwrap().iter().all(|(_, v)| v.is_finite()));
}

/// A loss weight so large that the gradients' norm overflows: clipping then scales every gradient to zero, and
/// the run would go on learning nothing. Its losses are finite; the norm is what the check finds.
#[test]
fn an_infinite_gradient_norm_fails_the_finite_check() {
    let config = AgentConfig {
        fql_alpha: 1e21,
        ..tiny(AgentKind::QamF)
    };
    let mut agent = Agent::new(config, O, A, Device::Cpu, 0).unwrap();
    let m = agent.update(&batch(0)).unwrap();
    let pairs = m.to_pairs().unwrap();
    let grad_norm = pairs.iter().find(|(n, _)| n == "grad_norm").unwrap().1;
    assert!(grad_norm.is_infinite(), "grad_norm {grad_norm}");
    let err = m.check_finite().unwrap_err();
    assert!(
        matches!(&err, AgentError::NonFinite { name, .. } if name == "grad_norm"),
        "{err}"
    );
}

#[test]
fn each_variant_reports_its_own_terms_without_a_trace() {
    let terms: [(AgentKind, &[&str]); 3] = [
        (AgentKind::Qam, &["adj_abs_max"]),
        (
            AgentKind::QamF,
            &["adj_abs_max", "fql_distill_loss", "fql_q_loss"],
        ),
        (
            AgentKind::QamE,
            &["adj_abs_max", "edit_q_loss", "edit_entropy", "edit_alpha"],
        ),
    ];
    for (kind, want) in terms {
        let names = Agent::new(tiny(kind), O, A, Device::Cpu, 0)
            .unwrap()
            .update(&batch(0))
            .unwrap()
            .names();
        for name in want {
            assert!(
                names.contains(name),
                "{kind:?}: {name} missing from {names:?}"
            );
        }
    }
}

#[test]
fn updates_are_a_function_of_seed_and_step() {
    let run = |seed| {
        let mut a = Agent::new(tiny(AgentKind::QamE), O, A, Device::Cpu, seed).unwrap();
        for i in 0..3 {
            a.update(&batch(i)).unwrap();
        }
        a
    };
    let (x, y, z) = (run(4), run(4), run(5));
    assert_same_params(&x, &y);
    assert!(!x.parameters()[0].1.equal(&z.parameters()[0].1));
    // The seed's high half counts too (libtorch's CPU generator keeps only 32 bits of its seed).
    let init = |seed: u64| Agent::new(tiny(AgentKind::Qam), O, A, Device::Cpu, seed).unwrap();
    let plain = init(4);
    for high in [4 | 1 << 63, 4 | 1 << 32] {
        let other = init(high);
        let differ = (plain.parameters().iter())
            .zip(other.parameters())
            .any(|((_, a), (_, b))| !a.equal(&b));
        assert!(differ, "seed {high:#x} starts as seed 4 does");
    }
}

#[test]
fn split_update_gives_the_bytes_of_the_one_thread_update() {
    let best_of_4 = AgentConfig {
        best_of_n: 4,
        ..tiny(AgentKind::Qam)
    };
    let configs = AgentKind::ALL.map(tiny).into_iter().chain([best_of_4]);
    for cfg in configs {
        let label = format!("{:?} best-of-{}", cfg.kind, cfg.best_of_n);
        let mut split = Agent::new(cfg.clone(), O, A, Device::Cpu, 7).unwrap();
        let mut single = Agent::new(cfg, O, A, Device::Cpu, 7).unwrap();
        single.set_split_update(false);
        for i in 0..3 {
            let (ms, m1) = (
                split.update(&batch(i)).unwrap(),
                single.update(&batch(i)).unwrap(),
            );
            assert_eq!(ms.names(), m1.names(), "{label}: metric names");
            for name in m1.names() {
                let (a, b) = (ms.get(name).unwrap(), m1.get(name).unwrap());
                assert!(a.equal(b), "{label}: {name} {a:?} vs {b:?}");
            }
        }
        assert_same_params(&split, &single);
    }
}

#[test]
fn batch_shape_errors_name_the_array() {
    let mut agent = Agent::new(tiny(AgentKind::Qam), O, A, Device::Cpu, 0).unwrap();
    let mut b = batch(0);
    b.masks = Tensor::ones([8, 2], (Kind::Float, Device::Cpu));
    let msg = agent.update(&b).unwrap_err().to_string();
    assert!(
        msg.contains("batch.masks") && msg.contains("[8, 3]") && msg.contains("[8, 2]"),
        "{msg}"
    );
}

#[test]
fn without_action_chunking_the_policy_outputs_one_action() {
    let cfg = AgentConfig {
        action_chunking: false,
        ..tiny(AgentKind::QamE)
    };
    let mut agent = Agent::new(cfg, O, A, Device::Cpu, 0).unwrap();
    assert_eq!(agent.policy_dim(), A);
    agent.update(&batch(0)).unwrap().check_finite().unwrap();
    assert_eq!(
        agent.sample_actions(&obs(5)).unwrap().size(),
        vec![5, A as i64]
    );
    let bc = AgentConfig {
        best_of_n: 4,
        ..tiny(AgentKind::Bc)
    };
    assert!(
        Agent::new(bc, O, A, Device::Cpu, 0)
            .err()
            .unwrap()
            .to_string()
            .contains("best_of_n")
    );
}

#[test]
fn actor_layer_norm_reaches_the_flow_actors_but_never_the_edit_actor() {
    let cfg = AgentConfig {
        actor_layer_norm: true,
        ..tiny(AgentKind::QamE)
    };
    let agent = Agent::new(cfg, O, A, Device::Cpu, 0).unwrap();
    let names: Vec<String> = agent.parameters().into_iter().map(|(n, _)| n).collect();
    let normed = |prefix: &str| {
        names
            .iter()
            .any(|n| n.starts_with(prefix) && n.contains("LayerNorm"))
    };
    assert!(normed("actor_slow/"), "{names:?}");
    assert!(!normed("edit_actor/"), "{names:?}");
}

#[test]
fn a_checkpoint_holding_impossible_values_is_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_qam(&dir);
    let (tensors, meta) = read_tensors(&path).unwrap();
    for (prefix, value, says) in [
        ("critic/", f64::NAN, "holds non-finite values"),
        ("optimizer/nu/", -1.0, "holds negative values"),
    ] {
        let victim = tensors
            .iter()
            .map(|(n, _)| n.clone())
            .find(|n| n.starts_with(prefix))
            .unwrap();
        let damaged: Vec<(String, Tensor)> = tensors
            .iter()
            .map(|(n, t)| {
                let t = if n == &victim {
                    t.full_like(value)
                } else {
                    t.shallow_clone()
                };
                (n.clone(), t)
            })
            .collect();
        write_tensors(&path, &damaged, meta.clone()).unwrap();
        let err = Agent::load(&path, Device::Cpu).err().unwrap().to_string();
        assert!(err.contains(&format!("tensor {victim} {says}")), "{err}");
    }
}

#[test]
fn a_count_past_any_run_is_refused_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_qam(&dir);
    let (tensors, meta) = read_tensors(&path).unwrap();
    for key in ["step", "optimizer_count", "act_calls"] {
        let mut damaged = meta.clone();
        damaged.insert(key.to_string(), u64::MAX.to_string());
        write_tensors(&path, &tensors, damaged).unwrap();
        let err = Agent::load(&path, Device::Cpu).err().unwrap().to_string();
        assert!(
            err.contains(&format!(
                "metadata {key} = 18446744073709551615 is past any run's count (at most 2^53): the file is damaged"
            )),
            "{err}"
        );
    }
    // A seed is not a count: any u64 loads.
    let mut seeded = meta.clone();
    seeded.insert("seed".to_string(), u64::MAX.to_string());
    write_tensors(&path, &tensors, seeded).unwrap();
    assert_eq!(Agent::load(&path, Device::Cpu).unwrap().seed(), u64::MAX);
    // Sizes no agent has: the error names the file.
    let mut damaged = meta.clone();
    damaged.insert("obs_dim".to_string(), "0".to_string());
    write_tensors(&path, &tensors, damaged).unwrap();
    let err = Agent::load(&path, Device::Cpu).err().unwrap().to_string();
    assert!(
        err.starts_with(&format!(
            "checkpoint {}: invalid agent config: obs_dim",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn the_same_agent_saves_to_the_same_bytes() {
    // Metadata lives in a hash map, whose order changes from one map to the next: the file must not.
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::new(tiny(AgentKind::Qam), O, A, Device::Cpu, 0).unwrap();
    let files: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let path = dir.path().join(format!("a{i}.safetensors"));
            agent.save(&path).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    assert!(files.windows(2).all(|w| w[0] == w[1]));
    let loaded = Agent::load(dir.path().join("a0.safetensors"), Device::Cpu).unwrap();
    assert_same_params(&agent, &loaded);
}

#[test]
fn a_bit_changed_in_a_checkpoint_is_found_by_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_qam(&dir);
    let mut bytes = std::fs::read(&path).unwrap();
    // The last byte is a tensor's: the data section follows the header.
    *bytes.last_mut().unwrap() ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let err = Agent::load(&path, Device::Cpu).err().unwrap().to_string();
    assert!(
        err.contains("the file records") && err.contains("the file is damaged"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_path_that_is_not_a_file_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("agent.safetensors");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let err = Agent::load(&link, Device::Cpu).err().unwrap().to_string();
    assert!(
        err.contains("is not a regular file (a device, FIFO or socket)"),
        "{err}"
    );
    let err = Agent::load(dir.path(), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("is a folder"), "{err}");
}

#[test]
fn parameters_and_moments_start_on_64_byte_boundaries_and_the_padding_stays_zero() {
    for kind in [
        AgentKind::Qam,
        AgentKind::QamF,
        AgentKind::QamE,
        AgentKind::Fql,
    ] {
        let mut agent = Agent::new(tiny(kind), O, A, Device::Cpu, 0).unwrap();
        for i in 0..3 {
            agent.update(&batch(i)).unwrap();
        }
        let (moments, _) = agent.optimizer_state();
        let views = agent
            .parameters()
            .into_iter()
            .chain(moments.iter().flat_map(|(n, mu, nu)| {
                [
                    (format!("mu/{n}"), mu.shallow_clone()),
                    (format!("nu/{n}"), nu.shallow_clone()),
                ]
            }));
        for (name, t) in views {
            assert_eq!(
                t.data_ptr() as usize % 64,
                0,
                "{kind:?}: {name} is not 64-byte aligned"
            );
        }
        // Between the slots of the flat buffers: padding, exactly zero after the updates.
        let nets = agent.nets();
        let targets: Vec<(String, Tensor)> = nets
            .target_critic
            .iter()
            .flat_map(|c| c.named_parameters())
            .chain(
                nets.target_actor_slow
                    .iter()
                    .flat_map(|a| a.named_parameters()),
            )
            .collect();
        for (buffer, params) in [
            (&nets.flat, nets.trainable()),
            (&nets.flat_targets, targets),
        ] {
            let (starts, total) = flat_layout(params.iter().map(|(_, t)| t.numel() as i64));
            assert_eq!(total, buffer.numel() as i64);
            let ends = params
                .iter()
                .zip(&starts)
                .map(|((_, t), s)| s + t.numel() as i64);
            let next_starts = starts.iter().skip(1).copied().chain([total]);
            for (((name, _), end), next) in params.iter().zip(ends).zip(next_starts) {
                let padding = buffer.narrow(0, end, next - end);
                assert!(
                    padding.count_nonzero(None::<i64>).int64_value(&[]) == 0,
                    "{kind:?}: the padding after {name} is not zero"
                );
            }
        }
    }
}
