//! `qamlab plot`: the learning curves of several runs on one chart (e.g. QAM against BC).

use std::path::PathBuf;

use anyhow::Context;
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
        let evals = read_evals(&run.evals())?;
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

/// Parses a run's `eval.csv` (step, phase, success_rate, mean_return, episodes).
fn read_evals(path: &std::path::Path) -> anyhow::Result<Vec<EvalPoint>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .skip(1)
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let bad = || {
                format!(
                    "{}: line {}: expected step,phase,success_rate,mean_return,episodes",
                    path.display(),
                    i + 2
                )
            };
            anyhow::ensure!(f.len() == 5, bad());
            Ok(EvalPoint {
                step: f[0].parse().with_context(bad)?,
                phase: f[1].to_string(),
                success_rate: f[2].parse().with_context(bad)?,
                mean_return: f[3].parse().with_context(bad)?,
                episodes: f[4].parse().with_context(bad)?,
            })
        })
        .collect()
}
