//! CUDA graphs: the static noise buffers reproduce the seeded torch draws (checked anywhere), a
//! CPU agent refuses graphs with a clear error, and on a CUDA machine graphed updates and acting
//! equal eager ones for every agent kind (skipped, loudly, without CUDA).

use qamlab_agent::agent::GraphEmulation;
use qamlab_agent::cuda_graph::{self, StaticNoise};
use qamlab_agent::noise::torch_rng_lock;
use qamlab_agent::{Agent, AgentConfig, AgentKind, Batch, Noise, TorchNoise};
use tch::{Device, Kind, Tensor};

const O: usize = 6;
const A: usize = 2;

#[test]
fn static_noise_replays_exactly_the_seeded_torch_draws() {
    let _rng = torch_rng_lock();
    let dev = Device::Cpu;
    let mut torch = TorchNoise::new(11);
    torch.reseed(5, 0);
    let a = torch.normal("a", &[3, 4], dev).unwrap();
    let b = torch.uniform("b", &[2], dev).unwrap();

    let mut noise = StaticNoise::recording(11);
    noise.reseed(5, 0);
    let ra = noise.normal("a", &[3, 4], dev).unwrap();
    let rb = noise.uniform("b", &[2], dev).unwrap();
    assert!(
        ra.equal(&a) && rb.equal(&b),
        "recording draws like TorchNoise"
    );

    noise.freeze();
    noise.refill(6, 0);
    let fa = noise.normal("a", &[3, 4], dev).unwrap();
    assert_eq!(fa.data_ptr(), ra.data_ptr(), "the same static buffer");
    assert!(!fa.equal(&a), "another step draws other numbers");
    noise.refill(5, 0);
    let again_a = noise.normal("a", &[3, 4], dev).unwrap();
    let again_b = noise.uniform("b", &[2], dev).unwrap();
    assert!(
        again_a.equal(&a) && again_b.equal(&b),
        "refill = same draws"
    );

    noise.refill(5, 0);
    let err = noise.uniform("a", &[3, 4], dev).unwrap_err().to_string();
    assert!(err.contains("a") && err.contains("[3, 4]"), "{err}");
    noise.refill(5, 0);
    let err = noise.normal("x", &[1], dev).unwrap_err().to_string();
    assert!(err.contains("recorded as a") && err.contains("x"), "{err}");
}

fn small(kind: AgentKind) -> AgentConfig {
    let mut cfg = AgentConfig {
        batch_size: 16,
        actor_hidden_dims: vec![32, 32],
        value_hidden_dims: vec![32, 32],
        horizon_length: 3,
        num_qs: 2,
        flow_steps: 4,
        best_of_n: if kind == AgentKind::Qam { 4 } else { 1 },
        ..AgentConfig::default()
    };
    cfg.select_kind(kind);
    cfg
}

#[test]
fn graphs_on_a_cpu_agent_are_refused_by_name() {
    let mut agent = Agent::new(small(AgentKind::Qam), O, A, Device::Cpu, 0).unwrap();
    let err = agent.use_cuda_graphs(true).unwrap_err().to_string();
    assert!(err.contains("CUDA graph") && err.contains("Cpu"), "{err}");
    assert!(!agent.cuda_graphs_active());
    agent.use_cuda_graphs(false).unwrap();
}

/// A deterministic batch (no torch draws), different for every `i`.
fn batch(i: i64, b: i64, h: i64, device: Device) -> Batch {
    let opts = (Kind::Float, device);
    let wave = |n: i64, scale: f64| {
        ((Tensor::arange(n, opts) + (i * 7) as f64) * scale)
            .sin()
            .to_device(device)
    };
    Batch {
        observations: wave(b * O as i64, 0.31).reshape([b, O as i64]),
        actions: wave(b * h * A as i64, 0.17).reshape([b, h, A as i64]) * 0.9,
        rewards: -wave(b * h, 0.05).abs().reshape([b, h]),
        masks: Tensor::ones([b, h], opts),
        valid: Tensor::ones([b, h], opts),
        terminals: Tensor::zeros([b, h], opts),
        next_observations: wave(b * h * O as i64, 0.23).reshape([b, h, O as i64]),
    }
}

fn flat_parameters(agent: &Agent) -> Tensor {
    Tensor::cat(
        &agent
            .parameters()
            .iter()
            .map(|(_, t)| t.detach().reshape([-1]))
            .collect::<Vec<_>>(),
        0,
    )
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Six updates (one of another batch size, which runs eagerly) and acting at 1 and 5 rows after
/// each, for every kind: the graphed agent must match the eager one.
fn graphed_equals_eager(device: Device, graphs_on: fn(&mut Agent)) {
    for kind in AgentKind::ALL {
        let cfg = small(kind);
        let (b, h) = (cfg.batch_size as i64, cfg.horizon_length as i64);
        let mut eager = Agent::new(cfg.clone(), O, A, device, 3).unwrap();
        let mut graphed = Agent::new(cfg, O, A, device, 3).unwrap();
        graphs_on(&mut graphed);
        for i in 0..6 {
            let rows = if i == 4 { b / 2 } else { b };
            let x = batch(i, rows, h, device);
            let me = eager.update(&x).unwrap();
            let mg = graphed.update(&x).unwrap();
            assert_eq!(
                graphed.cuda_graph_fallback(),
                None,
                "{kind:?}: graphs fell back"
            );
            assert!(graphed.cuda_graphs_active());
            assert_eq!(eager.step(), graphed.step());
            let d = max_abs_diff(&flat_parameters(&eager), &flat_parameters(&graphed));
            assert!(d <= 1e-5, "{kind:?} update {i}: parameters differ by {d}");
            let (pe, pg) = (me.to_pairs().unwrap(), mg.to_pairs().unwrap());
            assert_eq!(pe.len(), pg.len());
            for ((name, a), (_, g)) in pe.iter().zip(pg) {
                assert!(
                    (a - g).abs() <= 1e-5 * (1.0 + a.abs()),
                    "{kind:?} {name}: {a} vs {g}"
                );
            }
            for rows in [1, 5, 1] {
                let obs = observations(rows, i);
                let ae = eager.sample_actions(&obs).unwrap();
                let ag = graphed.sample_actions(&obs).unwrap();
                let d = max_abs_diff(&ae, &ag);
                assert!(d <= 1e-6, "{kind:?} acting ({rows} rows): differ by {d}");
            }
        }
        eprintln!("{kind:?}: 6 updates and 18 acting calls through graphs equal eager ones");
    }
}

/// The graph machinery without the capture (replays re-run the body on the static buffers):
/// static inputs, draws refilled in order, the split Adam step, metrics snapshots, the check.
#[test]
fn emulated_graphs_equal_eager_updates_and_acting() {
    graphed_equals_eager(Device::Cpu, |a| {
        a.emulate_cuda_graphs(GraphEmulation::Faithful).unwrap()
    });
}

fn observations(rows: i64, i: i64) -> Tensor {
    (Tensor::arange(rows * O as i64, (Kind::Float, Device::Cpu)) * (0.1 + i as f64))
        .cos()
        .reshape([rows, O as i64])
}

/// A graph that baked its random draws in at capture passes the capture's own check (they are
/// the right draws for that step) but not the checked replay of the next call: the agent falls back
/// to eager work, says why, and still does exactly what an eager agent does.
#[test]
fn replays_with_stale_draws_are_caught_and_work_goes_on_eagerly() {
    for kind in [AgentKind::Qam, AgentKind::Bc] {
        let cfg = small(kind);
        let (b, h) = (cfg.batch_size as i64, cfg.horizon_length as i64);
        let mut eager = Agent::new(cfg.clone(), O, A, Device::Cpu, 5).unwrap();
        let mut graphed = Agent::new(cfg.clone(), O, A, Device::Cpu, 5).unwrap();
        graphed
            .emulate_cuda_graphs(GraphEmulation::StaleDraws)
            .unwrap();
        for i in 0..4 {
            let x = batch(i, b, h, Device::Cpu);
            eager.update(&x).unwrap();
            graphed.update(&x).unwrap();
            let fallback = graphed.cuda_graph_fallback();
            if i == 0 {
                assert_eq!(fallback, None, "{kind:?}: the capture's own check passes");
                assert!(graphed.cuda_graphs_active());
            } else {
                let reason = fallback.expect("the checked replay catches the stale draws");
                assert!(
                    reason.contains("differs from the eager one in its parameters"),
                    "{kind:?}: {reason}"
                );
                assert!(!graphed.cuda_graphs_active());
            }
            let d = max_abs_diff(&flat_parameters(&eager), &flat_parameters(&graphed));
            assert_eq!(d, 0.0, "{kind:?} update {i}: the eager result is kept");
        }

        // Acting alone: the first call captures, the second (other draws) is checked.
        let mut eager = Agent::new(cfg.clone(), O, A, Device::Cpu, 6).unwrap();
        let mut graphed = Agent::new(cfg, O, A, Device::Cpu, 6).unwrap();
        graphed
            .emulate_cuda_graphs(GraphEmulation::StaleDraws)
            .unwrap();
        for i in 0..3 {
            let obs = observations(4, i);
            let ae = eager.sample_actions(&obs).unwrap();
            let ag = graphed.sample_actions(&obs).unwrap();
            assert_eq!(max_abs_diff(&ae, &ag), 0.0, "{kind:?} acting call {i}");
            assert_eq!(
                graphed.cuda_graphs_active(),
                i == 0,
                "{kind:?} acting call {i}"
            );
        }
        let reason = graphed.cuda_graph_fallback().unwrap();
        assert!(reason.contains("replayed actions differ"), "{reason}");
    }
}

#[test]
fn graphed_updates_and_acting_equal_eager_ones_on_cuda() {
    if !tch::Cuda::is_available() {
        eprintln!("SKIPPED: no CUDA device; graphed execution is checked on a GPU machine only");
        return;
    }
    assert!(
        cuda_graph::available(),
        "libtorch sees CUDA but this build has no graph shim"
    );
    graphed_equals_eager(Device::Cuda(0), |a| a.use_cuda_graphs(true).unwrap());
}

/// A capture that fails (here a host read inside it, which CUDA forbids) is an error, and leaves the
/// process able to work eagerly: random draws and updates, as the agents' fallback needs.
#[test]
fn a_failed_capture_leaves_eager_work_possible_on_cuda() {
    if !tch::Cuda::is_available() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "a_failed_capture_leaves_eager_work_possible_on_cuda: SKIPPED, no CUDA device"
        );
        return;
    }
    let device = Device::Cuda(0);
    let x = Tensor::ones([4], (Kind::Float, device));
    let mut graph = cuda_graph::CudaGraph::new(device).unwrap();
    let _ = graph.on_side_stream(|| Ok(&x * 2.0)).unwrap();
    let failed = graph.capture(|| {
        let y = &x * 2.0;
        // Reading a value back synchronises: not allowed while capturing.
        Ok(y.f_double_value(&[0])?)
    });
    assert!(failed.is_err(), "a host read inside a capture was captured");
    drop(graph);
    {
        let _rng = torch_rng_lock();
        let drawn = Tensor::randn([1000], (Kind::Float, device));
        assert_eq!(drawn.size(), [1000]);
    }
    // Pinned host memory, as every eager update's batch takes (the host allocator's capture routing).
    let pinned = Tensor::from_slice(&[1.0f32; 64]).internal_pin_memory(device);
    assert!(pinned.to_device(device).sum(Kind::Float).double_value(&[]) == 64.0);
    let mut agent = Agent::new(small(AgentKind::Qam), O, A, device, 0).unwrap();
    agent.update(&batch(0, 16, 3, device)).unwrap();
    // And a new capture still works after it.
    cuda_graph::self_test(device).unwrap();
}
