//! Prints simulation throughput for docs/benchmarks.md: `cargo run -p qamlab-tasks --example bench_sim [steps]`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let task = qamlab_tasks::load_task("cube-single")?;
    let s = &task.scene.settings;
    println!(
        "task cube-single: control dt {} s, {} substeps of {} s, {} solver iterations; {steps} steps per row",
        s.control_dt,
        s.substeps,
        s.control_dt / s.substeps as f32,
        s.solver_iterations
    );
    println!("| policy | envs | env steps/s (wall) | CPU-seconds | env steps per CPU-second |");
    println!("|---|---|---|---|---|");
    for r in qamlab_tasks::bench_sim(&task, &[1, 16, 64, 256], steps)? {
        let per_cpu = r
            .env_steps_per_cpu_sec
            .map_or("n/a".into(), |x| format!("{x:.0}"));
        let cpu = r.cpu_seconds.map_or("n/a".into(), |x| format!("{x:.2}"));
        println!(
            "| {} | {} | {:.0} | {cpu} | {per_cpu} |",
            r.policy, r.envs, r.env_steps_per_sec
        );
    }
    Ok(())
}
