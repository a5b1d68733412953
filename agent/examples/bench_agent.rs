//! Prints `bench_agent` figures as JSON lines: `cargo run -p qamlab-agent --example bench_agent --
//! [small|paper] [updates] [cpu|cuda]` (defaults: small, 50, cpu;
//! torch intra-op threads from QAMLAB_BENCH_THREADS, default 1). Until `qamlab bench agent` exists.

use qamlab_agent::AgentKind;
use qamlab_agent::bench::{bench_agent, paper_config, small_config};
use tch::Device;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = args.first().map_or("small", String::as_str);
    let updates: usize = args.get(1).map_or(Ok(50), |s| s.parse())?;
    let device = match args.get(2).map(String::as_str) {
        Some("cuda") => Device::Cuda(0),
        _ => Device::Cpu,
    };
    // Intra-op threads (env QAMLAB_BENCH_THREADS, default 1: on a shared 2-core box OpenMP
    // spin-waiting with more threads than free cores distorts the figures badly).
    let threads: i32 = std::env::var("QAMLAB_BENCH_THREADS").map_or(Ok(1), |s| s.parse())?;
    tch::set_num_threads(threads);
    let config = if size == "paper" {
        paper_config()
    } else {
        small_config()
    };
    for kind in [
        AgentKind::Qam,
        AgentKind::QamF,
        AgentKind::QamE,
        AgentKind::Fql,
        AgentKind::Bc,
    ] {
        let mut cfg = config.clone();
        cfg.fql_alpha = if kind == AgentKind::QamF { 30.0 } else { 0.0 };
        cfg.edit_scale = if kind == AgentKind::QamE { 0.1 } else { 0.0 };
        let report = bench_agent(kind, cfg, device, updates, 28, 5)?;
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
