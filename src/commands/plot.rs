//! `qamlab plot`: the learning curves of several runs on one chart (e.g. QAM against BC).

use std::path::PathBuf;

use qamlab_headless::plot::{EvalPoint, draw_learning_curves};
use qamlab_headless::run_dir::RunDir;

/// Flags of `qamlab plot`.
#[derive(clap::Args, Clone, Debug)]
pub struct PlotArgs {
    /// Run directories written by `qamlab train`.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output PNG.
    #[arg(long, default_value = "learning_curves.png")]
    pub out: PathBuf,
    /// Chart title (default: the task's name).
    #[arg(long)]
    pub title: Option<String>,
}

/// Reads each run's `eval.csv` and draws them together.
pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let is_png = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    anyhow::ensure!(
        is_png,
        "--out {}: the chart is written as PNG; give a .png file name",
        args.out.display()
    );
    qamlab_headless::files::check_writable(&args.out, "--out")?;
    let mut curves = Vec::new();
    let mut offline_steps = 0;
    let mut tasks: Vec<String> = Vec::new();
    for dir in &args.runs {
        let run = RunDir::new(dir);
        let cfg = run.read_config()?;
        offline_steps = offline_steps.max(cfg.offline_steps);
        let task = qamlab_tasks::load_task(&cfg.task).map_or(cfg.task.clone(), |t| t.name);
        if !tasks.contains(&task) {
            tasks.push(task);
        }
        let label = format!(
            "{} ({})",
            cfg.agent.kind.as_str(),
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("run")
        );
        let evals = run.read_evals()?;
        anyhow::ensure!(
            !evals.is_empty(),
            "{} has no evaluation yet: nothing to plot",
            dir.display()
        );
        curves.push((label, evals));
    }
    let series: Vec<(&str, &[EvalPoint])> = curves
        .iter()
        .map(|(label, points)| (label.as_str(), points.as_slice()))
        .collect();
    // Runs of several tasks can share a chart; the title then names each task.
    let title = args.title.unwrap_or(tasks.join(" / "));
    draw_learning_curves(&args.out, &title, &series, offline_steps)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
