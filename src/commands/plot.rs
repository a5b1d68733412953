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
    let mut seen = Vec::new();
    for dir in &args.runs {
        let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        anyhow::ensure!(
            !seen.contains(&canonical),
            "{} is given twice: each run is drawn once",
            dir.display()
        );
        seen.push(canonical);
    }
    let mut runs = Vec::new();
    let mut offline_steps = 0;
    let mut tasks: Vec<String> = Vec::new();
    for dir in &args.runs {
        let run = RunDir::new(dir);
        // The curves were drawn already: a scene copy edited since does not change them.
        let cfg = run.read_config_unverified()?;
        offline_steps = offline_steps.max(cfg.offline_steps);
        let task = qamlab_tasks::load_task(&cfg.task).map_or(cfg.task.clone(), |t| t.name);
        if !tasks.contains(&task) {
            tasks.push(task.clone());
        }
        // A run stopped before its first evaluation has no eval.csv yet.
        let evals = if run.evals().exists() {
            run.read_evals()?
        } else {
            Vec::new()
        };
        anyhow::ensure!(
            !evals.is_empty(),
            "{} has no evaluation yet: nothing to plot",
            dir.display()
        );
        runs.push(Curve {
            kind: cfg.agent.kind.as_str(),
            dir: dir.clone(),
            task,
            evals,
        });
    }
    let labels = labels(&runs, tasks.len() > 1);
    let curves: Vec<(String, Vec<EvalPoint>)> = labels
        .into_iter()
        .zip(runs)
        .map(|(label, run)| (label, run.evals))
        .collect();
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

/// One run's curve and what its label is made of.
struct Curve {
    kind: &'static str,
    dir: PathBuf,
    task: String,
    evals: Vec<EvalPoint>,
}

/// Each run's agent and folder name; the path as given where two folders share a name (every demo's run is
/// `qam-cpu`), and the task where the chart holds several.
fn labels(runs: &[Curve], several_tasks: bool) -> Vec<String> {
    let name = |dir: &PathBuf| {
        dir.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("run")
            .to_string()
    };
    runs.iter()
        .map(|run| {
            let shared = runs
                .iter()
                .filter(|r| name(&r.dir) == name(&run.dir))
                .count()
                > 1;
            let which = if shared {
                run.dir.display().to_string()
            } else {
                name(&run.dir)
            };
            if several_tasks {
                format!("{} ({which}, {})", run.kind, run.task)
            } else {
                format!("{} ({which})", run.kind)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_tell_runs_apart() {
        let curve = |kind, dir: &str, task: &str| Curve {
            kind,
            dir: dir.into(),
            task: task.into(),
            evals: Vec::new(),
        };
        let runs = [
            curve("qam", "runs/demo/qam-cpu", "cube-single"),
            curve("qam", "old/demo/qam-cpu", "cube-single"),
            curve("bc", "runs/bc", "cube-single"),
        ];
        assert_eq!(
            labels(&runs, false),
            [
                "qam (runs/demo/qam-cpu)",
                "qam (old/demo/qam-cpu)",
                "bc (bc)"
            ]
        );
        let runs = [
            curve("qam", "runs/a", "cube-single"),
            curve("qam", "runs/b", "cube-double"),
        ];
        assert_eq!(
            labels(&runs, true),
            ["qam (a, cube-single)", "qam (b, cube-double)"]
        );
    }
}
