//! Runs that differ only in their seed as one series: their settings, the groups of equal ones, each group's
//! mean with its band, and the notes on runs drawn apart.

use std::collections::BTreeMap;

use anyhow::Context;
use qamlab_headless::TrainConfig;
use qamlab_headless::plot::{Sample, Series, mean_over_runs};
use qamlab_headless::run_dir::RunDir;

use super::labels::series_labels;
use super::list_steps;
use super::samples::Drawn;

/// The run's configuration but its seed, flattened to `key → value` (the `[agent]` keys by their own names): what
/// must be equal for runs to be seeds of one experiment. The task is its name (a scene-file run's path is its own
/// copy's), with a hash of the copy, so that runs of an edited scene stay apart.
pub(super) fn settings(
    cfg: &TrainConfig,
    task: &str,
    run: &RunDir,
) -> anyhow::Result<BTreeMap<String, String>> {
    let value = serde_json::to_value(cfg).context("reading the run's configuration")?;
    let mut flat = BTreeMap::new();
    let show = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    if let serde_json::Value::Object(fields) = value {
        for (key, v) in &fields {
            match v {
                serde_json::Value::Object(agent) => {
                    for (k, v) in agent {
                        flat.insert(k.clone(), show(v));
                    }
                }
                _ => {
                    flat.insert(key.clone(), show(v));
                }
            }
        }
    }
    // Runs of one experiment: the seed, where the work ran and how often it was recorded may differ.
    for bookkeeping in [
        "seed",
        "device",
        "cuda_graphs",
        "split_update",
        "log_interval",
        "checkpoint_interval",
    ] {
        flat.remove(bookkeeping);
    }
    // Each seed's run may collect its own copy of the dataset (the demo does, in its --out): the file's name says
    // which data it is.
    if let Some(dataset) = &cfg.dataset {
        let name = dataset.file_name().unwrap_or(dataset.as_os_str());
        flat.insert("dataset".into(), name.to_string_lossy().into_owned());
    }
    flat.insert("task".into(), task.to_string());
    if let Ok(scene) = std::fs::read(run.task_scene()) {
        // Only equality matters, within this process: std's hasher does.
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&scene, &mut hasher);
        flat.insert(
            "task_scene".into(),
            format!("{:016x}", std::hash::Hasher::finish(&hasher)),
        );
    }
    Ok(flat)
}

/// The runs in groups of equal settings (all but the seed), in the order each group's first run was given.
pub(super) fn group_by_settings(drawn: &[Drawn]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(&BTreeMap<String, String>, Vec<usize>)> = Vec::new();
    for (i, d) in drawn.iter().enumerate() {
        let settings = &d.run.settings;
        match groups.iter_mut().find(|(s, _)| *s == settings) {
            Some((_, members)) => members.push(i),
            None => groups.push((settings, vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// One series per group: its runs' mean (a run alone as it is), labelled; a group whose runs' steps differ is
/// drawn at the steps they share, said.
pub(super) fn series(
    drawn: &[Drawn],
    groups: &[Vec<usize>],
    several_tasks: bool,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Vec<Series>> {
    let labels = series_labels(drawn, groups, several_tasks);
    let mut series = Vec::new();
    for (group, label) in groups.iter().zip(labels) {
        let samples: Vec<Vec<Sample>> = group.iter().map(|&i| drawn[i].samples.clone()).collect();
        let merged = mean_over_runs(&samples);
        if let Some(warning) = left_out_warning(&label, group, &merged.left_out, drawn) {
            warnings.push(warning);
        }
        anyhow::ensure!(
            !merged.points.is_empty(),
            "{label}: its runs ({}) share no step to average over; draw them apart with --no-group",
            group_dirs(group, drawn)
        );
        series.push(Series {
            label,
            points: merged.points,
        });
    }
    Ok(series)
}

/// The warning for a group whose runs were evaluated (or logged) at different steps: which steps the mean
/// leaves out, run by run.
fn left_out_warning(
    label: &str,
    group: &[usize],
    left_out: &[Vec<u64>],
    drawn: &[Drawn],
) -> Option<String> {
    let which: Vec<String> = group
        .iter()
        .zip(left_out)
        .filter(|(_, steps)| !steps.is_empty())
        .map(|(&i, steps)| format!("{} at {}", drawn[i].run.dir.display(), list_steps(steps)))
        .collect();
    if which.is_empty() {
        return None;
    }
    Some(format!(
        "{label}: the runs' steps differ, so the mean uses only the steps all {} share; left out: {}",
        group.len(),
        which.join("; ")
    ))
}

/// The folders of a group's runs, comma-separated.
fn group_dirs(group: &[usize], drawn: &[Drawn]) -> String {
    group
        .iter()
        .map(|&i| drawn[i].run.dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// For a run drawn alone beside another of its agent and task: why they were not one group (their settings
/// differ, and in what), since a reader comparing seeds would expect one.
pub(super) fn apart_notes(drawn: &[Drawn], groups: &[Vec<usize>]) -> Vec<String> {
    let mut notes = Vec::new();
    for group in groups.iter().filter(|g| g.len() == 1) {
        let run = &drawn[group[0]].run;
        let Some(other) = groups
            .iter()
            .filter(|g| g[0] != group[0])
            .map(|g| &drawn[g[0]].run)
            .find(|o| o.kind == run.kind && o.task == run.task)
        else {
            continue;
        };
        let differ: Vec<String> = differences(&run.settings, &other.settings)
            .into_iter()
            .map(|(key, ours, theirs)| format!("{key} {ours} vs {theirs}"))
            .collect();
        notes.push(format!(
            "{} is drawn apart from {}: runs are grouped when only their seed differs, and these differ in {}",
            run.dir.display(),
            other.dir.display(),
            differ.join(", ")
        ));
    }
    notes
}

/// The settings in which two runs differ: key, `a`'s value and `b`'s (`unset` where one lacks the key).
pub(super) fn differences<'a>(
    a: &'a BTreeMap<String, String>,
    b: &'a BTreeMap<String, String>,
) -> Vec<(&'a String, &'a str, &'a str)> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let value =
        |m: &'a BTreeMap<String, String>, k: &String| m.get(k).map_or("unset", String::as_str);
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| (k, value(a, k), value(b, k)))
        .collect()
}

#[cfg(test)]
mod tests {
    use qamlab_agent::AgentKind;
    use qamlab_headless::plot::SeriesPoint;

    use crate::commands::plot::fixtures::{args, config, fake_run, fake_run_of, points};
    use crate::commands::plot::{PlotArgs, prepare};

    #[test]
    fn seeds_of_one_configuration_are_one_series_their_mean_and_band() {
        let dir = tempfile::tempdir().unwrap();
        let qam = |seed, evals: &[(u64, f64)]| {
            let name = format!("qam-s{seed}");
            fake_run_of(dir.path(), &name, AgentKind::Qam, seed, evals, &[])
        };
        let s0 = qam(0, &[(100, 0.0), (200, 0.5), (300, 1.0)]);
        // Its own copy of the dataset (as each demo collects one) and other bookkeeping: the same experiment.
        let s1 = {
            let mut cfg = config(AgentKind::Qam, 1);
            cfg.dataset = Some("/elsewhere/s1/cube-single-play.npz".into());
            cfg.log_interval *= 2;
            cfg.checkpoint_interval += 1;
            let evals = [(100, 0.25), (200, 0.25), (300, 0.5)];
            fake_run(dir.path(), "qam-s1", &cfg, &evals, &[])
        };
        // Still running: one evaluation fewer; and one past the others.
        let s2 = qam(2, &[(100, 0.5), (200, 0.75)]);
        let s3 = qam(3, &[(100, 0.25), (200, 0.5), (300, 0.75), (400, 1.0)]);
        let bc = fake_run_of(dir.path(), "bc", AgentKind::Bc, 0, &[(100, 0.0)], &[]);
        let plot = prepare(&args(&[&s0, &s1, &bc, &s2, &s3])).unwrap();
        let labels: Vec<&str> = plot.chart.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["qam (4 seeds, mean, band min–max)", "bc (bc)"]);
        // Only the steps all four share: 100 and 200.
        assert_eq!(
            points(&plot.chart.series[0]),
            [
                (100.0, 0.25, Some((0.0, 0.5))),
                (200.0, 0.5, Some((0.25, 0.75)))
            ]
        );
        assert_eq!(points(&plot.chart.series[1]), [(100.0, 0.0, None)]);
        let [warning] = plot.warnings.as_slice() else {
            panic!("{:?}", plot.warnings)
        };
        assert!(
            warning.contains("the mean uses only the steps all 4 share")
                && warning.contains(&format!("{} at 300;", s0.display()))
                && warning.contains(&format!("{} at 300, 400", s3.display()))
                && !warning.contains(&s2.display().to_string()),
            "{warning}"
        );
        // Every run goes online at step 200: one mark there.
        assert_eq!(plot.chart.online_from, Some(200.0));
        // --no-group: each run alone, as before.
        let plot = prepare(&PlotArgs {
            no_group: true,
            ..args(&[&s0, &s1, &bc])
        })
        .unwrap();
        let labels: Vec<&str> = plot.chart.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["qam (qam-s0)", "qam (qam-s1)", "bc (bc)"]);
        assert_eq!(
            plot.chart.series[1].points[2],
            SeriesPoint {
                x: 300.0,
                y: 0.5,
                band: None
            }
        );
        assert!(plot.warnings.is_empty() && plot.notes.is_empty());
    }

    #[test]
    fn runs_whose_settings_differ_are_apart_and_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let with_lr = |lr, seed| {
            let mut cfg = config(AgentKind::Qam, seed);
            cfg.agent.lr = lr;
            fake_run(
                dir.path(),
                &format!("lr{lr}-s{seed}"),
                &cfg,
                &[(100, 0.5)],
                &[],
            )
        };
        let runs = [
            with_lr(0.001, 0),
            with_lr(0.0003, 0),
            with_lr(0.001, 1),
            with_lr(0.0003, 1),
        ];
        let plot = prepare(&args(&runs.iter().collect::<Vec<_>>())).unwrap();
        let labels: Vec<&str> = plot.chart.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "qam lr 0.001 (2 seeds, mean, band min–max)",
                "qam lr 0.0003 (2 seeds, mean, band min–max)"
            ]
        );
        // Two runs that differ in more than their seed, each alone: the note says in what.
        let other = {
            let mut cfg = config(AgentKind::Qam, 1);
            cfg.dataset = Some("/data/other.npz".into());
            fake_run(dir.path(), "other", &cfg, &[(100, 0.5)], &[])
        };
        let plot = prepare(&args(&[&runs[0], &other])).unwrap();
        assert_eq!(plot.chart.series.len(), 2);
        assert!(
            plot.notes[0].contains("lr0.001-s0 is drawn apart from")
                && plot.notes[0].contains("dataset cube-single-play.npz vs other.npz")
                && plot.notes[0].contains("lr 0.001 vs 0.0003"),
            "{:?}",
            plot.notes
        );
        // Runs going online at different steps: no mark would be right for all.
        let late = {
            let mut cfg = config(AgentKind::Qam, 2);
            cfg.offline_steps = 300;
            fake_run(dir.path(), "late", &cfg, &[(100, 0.5)], &[])
        };
        let plot = prepare(&args(&[&runs[0], &late])).unwrap();
        assert_eq!(plot.chart.online_from, None);
    }
}
