//! The legend: each series' label, telling runs and groups of one agent apart.

use std::path::PathBuf;

use qamlab_headless::plot::Band;

use super::grouping::named_apart_by;
use super::samples::Drawn;

/// Each series' legend text: a run alone as its agent and folder (`qam (qam-s2)`); a group as its agent, how many
/// seeds and what is drawn (`qam (3 seeds, mean, band min–max)`, `qam (3 seeds, mean ± s.e.)`); either with the
/// settings in which it differs from another run or group of its agent (`qam inv_temp 1 (...)`), so that the chart
/// alone says what each line is.
pub(super) fn series_labels(
    drawn: &[Drawn],
    groups: &[Vec<usize>],
    several_tasks: bool,
    band: Band,
) -> Vec<String> {
    let alone: Vec<Curve> = groups
        .iter()
        .filter(|g| g.len() == 1)
        .map(|g| {
            let run = &drawn[g[0]].run;
            Curve {
                kind: run.kind,
                differs: differing_settings(drawn, groups, g),
                dir: run.dir.clone(),
                task: run.task.clone(),
            }
        })
        .collect();
    let mut alone_labels = labels(&alone, several_tasks).into_iter();
    groups
        .iter()
        .map(|group| {
            if group.len() == 1 {
                return alone_labels.next().unwrap_or_default();
            }
            let first = &drawn[group[0]].run;
            let differs = differing_settings(drawn, groups, group);
            let name = if differs.is_empty() {
                first.kind.to_string()
            } else {
                format!("{} {differs}", first.kind)
            };
            let mut seeds: Vec<u64> = group.iter().map(|&i| drawn[i].run.seed).collect();
            seeds.sort_unstable();
            seeds.dedup();
            // Two runs of one seed are repeats, not seeds.
            let count = if seeds.len() == group.len() {
                format!("{} seeds", group.len())
            } else {
                format!("{} runs", group.len())
            };
            let task = if several_tasks {
                format!("{}, ", first.task)
            } else {
                String::new()
            };
            let drawn_as = match band {
                Band::MinMax => "mean, band min–max",
                Band::StandardError => "mean ± s.e.",
                Band::None => "mean",
            };
            format!("{name} ({task}{count}, {drawn_as})")
        })
        .collect()
}

/// The settings in which `group` differs from the other groups of its agent and task (`inv_temp 1, lr 0.001`),
/// the first three as [`named_apart_by`] ranks them (what the run trained before how it was evaluated, which is
/// named only where nothing else tells the lines apart); empty where no other group shares its agent and task.
fn differing_settings(drawn: &[Drawn], groups: &[Vec<usize>], group: &[usize]) -> String {
    let ours = &drawn[group[0]].run;
    let keys = named_apart_by(drawn, groups, group);
    let mut shown: Vec<String> = keys
        .iter()
        .take(3)
        .map(|k| format!("{k} {}", ours.shown(k)))
        .collect();
    if keys.len() > 3 {
        shown.push("...".into());
    }
    shown.join(", ")
}

/// One run's curve and what its label is made of.
struct Curve {
    kind: &'static str,
    /// The settings in which it differs from the other runs and groups of its agent (`inv_temp 1`), or empty.
    differs: String,
    dir: PathBuf,
    task: String,
}

/// Each run's agent, what sets it apart from its agent's other lines, and its folder name; the path as given where
/// two folders share a name (every demo's run is `qam-cpu`), and the task where the chart holds several.
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
            let name = if run.differs.is_empty() {
                run.kind.to_string()
            } else {
                format!("{} {}", run.kind, run.differs)
            };
            if several_tasks {
                format!("{name} ({which}, {})", run.task)
            } else {
                format!("{name} ({which})")
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
            differs: String::new(),
            dir: dir.into(),
            task: task.into(),
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

    #[test]
    fn a_group_and_a_lone_run_of_one_agent_are_each_named_by_what_sets_them_apart() {
        use qamlab_agent::AgentKind;

        use crate::commands::plot::fixtures::{args, config, fake_run};
        use crate::commands::plot::prepare;

        let dir = tempfile::tempdir().unwrap();
        let run = |lr, seed| {
            let mut cfg = config(AgentKind::Qam, seed);
            cfg.agent.lr = lr;
            let name = format!("lr{lr}-s{seed}");
            fake_run(dir.path(), &name, &cfg, &[(100, 0.5)], &[])
        };
        let (a0, a1, lone) = (run(0.001, 0), run(0.001, 1), run(0.0003, 0));
        let plot = prepare(&args(&[&a0, &a1, &lone])).unwrap();
        let labels: Vec<&str> = plot.chart.series.iter().map(|s| s.label.as_str()).collect();
        // Each colour is chosen by its lr (not qam's own): the legend names it, the lone run's too.
        assert_eq!(
            labels,
            [
                "qam lr 0.001 (2 seeds, mean, band min–max)",
                "qam lr 0.0003 (lr0.0003-s0)"
            ]
        );
        // A lone run beside one of its own settings apart (the reviewer's grp.png): each says in what; a run of
        // another agent, alone of its kind, as before.
        let evals_of = |seed, episodes| {
            let mut cfg = config(AgentKind::Qam, seed);
            cfg.agent.lr = 0.001;
            cfg.eval_episodes = episodes;
            fake_run(
                dir.path(),
                &format!("e{episodes}-s{seed}"),
                &cfg,
                &[(100, 0.5)],
                &[],
            )
        };
        let bc = fake_run(
            dir.path(),
            "bc",
            &config(AgentKind::Bc, 0),
            &[(100, 0.5)],
            &[],
        );
        let plot = prepare(&args(&[&a0, &a1, &lone, &evals_of(0, 10), &bc])).unwrap();
        let labels: Vec<&str> = plot.chart.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "qam lr 0.001, eval_episodes 50 (2 seeds, mean, band min–max)",
                "qam lr 0.0003 (lr0.0003-s0)",
                "qam lr 0.001, eval_episodes 10 (e10-s0)",
                "bc (bc)"
            ]
        );
        // Seeds drawn apart (--no-group) differ in nothing but the seed: each by its folder alone.
        let plot = prepare(&crate::commands::plot::PlotArgs {
            no_group: true,
            ..args(&[&a0, &a1])
        })
        .unwrap();
        let labels: Vec<&str> = plot.chart.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["qam (lr0.001-s0)", "qam (lr0.001-s1)"]);
    }

    #[test]
    fn a_legend_names_what_the_runs_trained_before_how_they_were_evaluated() {
        use qamlab_agent::AgentKind;

        use crate::commands::plot::fixtures::{args, config, fake_run};
        use crate::commands::plot::prepare;

        // The reviewer's two settings: 20000 offline steps against 2000, evaluated otherwise too. The legend named
        // dataset, eval_episodes and eval_interval (alphabetically the first three), and "..." for the steps.
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str, seed, offline_steps, dataset: &str, eval: (usize, u64)| {
            let mut cfg = config(AgentKind::Qam, seed);
            cfg.offline_steps = offline_steps;
            cfg.dataset = Some(dataset.into());
            (cfg.eval_episodes, cfg.eval_interval) = eval;
            fake_run(dir.path(), name, &cfg, &[(100, 0.5)], &[])
        };
        let long = [
            run("long-s0", 0, 20000, "/data/d.npz", (5, 500)),
            run("long-s1", 1, 20000, "/data/d.npz", (5, 500)),
        ];
        let short = run("short", 0, 2000, "/data/d2.npz", (10, 100));
        let plot = prepare(&args(&[&long[0], &long[1], &short])).unwrap();
        let labels: Vec<&str> = plot.chart.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "qam dataset d.npz, offline_steps 20000 (2 seeds, mean, band min–max)",
                "qam dataset d2.npz, offline_steps 2000 (short)"
            ]
        );
        // The note lists every difference, what was trained first.
        assert!(
            plot.notes[0].contains(
                "differ in dataset d2.npz vs d.npz, offline_steps 2000 vs 20000, eval_episodes"
            ),
            "{:?}",
            plot.notes
        );
    }
}
