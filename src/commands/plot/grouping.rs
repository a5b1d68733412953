//! Runs that differ only in their seed as one series: their settings, the groups of equal ones, each group's
//! mean with its band, and the notes on runs drawn apart.

use std::collections::BTreeMap;

use anyhow::Context;
use qamlab_headless::TrainConfig;
use qamlab_headless::plot::{Band, Phases, Sample, Series, mean_over_runs, online_from};
use qamlab_headless::run_dir::RunDir;

use super::labels::series_labels;
use super::list_steps;
use super::read::RunData;
use super::samples::Drawn;

/// The run's configuration but its seed, flattened to `key → value` (the `[agent]` keys by their own names, but
/// those its agent's kind does not read): what must be equal for runs to be seeds of one experiment. The task is its
/// name (a scene-file run's path is its own copy's), with a hash of the copy, so that runs of an edited scene stay
/// apart.
pub(super) fn settings(
    cfg: &TrainConfig,
    task: &str,
    run: &RunDir,
) -> anyhow::Result<BTreeMap<String, String>> {
    let value = serde_json::to_value(cfg).context("reading the run's configuration")?;
    let mut flat = BTreeMap::new();
    let show = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    // Another kind's weights (a BC run's `inv_temp`, kept from a shared config) change nothing the run trains: a BC
    // baseline run beside each point of a QAM sweep is one experiment.
    let unused = TrainConfig::agent_keys_unused_by(cfg.agent.kind);
    if let serde_json::Value::Object(fields) = value {
        for (key, v) in &fields {
            match v {
                serde_json::Value::Object(agent) => {
                    for (k, v) in agent {
                        if !unused.iter().any(|(key, _)| key == k) {
                            flat.insert(k.clone(), show(v));
                        }
                    }
                }
                _ => {
                    flat.insert(key.clone(), show(v));
                }
            }
        }
    }
    // Runs of one experiment: the seed, where the work ran (and on how many CPU threads) and how often it was
    // recorded may differ.
    for bookkeeping in [
        "seed",
        "device",
        "cpu_threads",
        "cuda_graphs",
        "split_update",
        "log_interval",
        "checkpoint_interval",
        "keep_checkpoints",
    ] {
        flat.remove(bookkeeping);
    }
    // Each seed's run may collect its own copy of the dataset (the demo does, in its --out): not its path but its
    // contents say which data it is. Its file name stands for them until `identify_datasets` puts in the CRC-32
    // the run recorded.
    // A run without one says so where that sets it apart (not `dataset null`).
    let dataset = cfg.dataset.as_ref().map_or("none".into(), |dataset| {
        let name = dataset.file_name().unwrap_or(dataset.as_os_str());
        name.to_string_lossy().into_owned()
    });
    flat.insert("dataset".into(), dataset);
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

/// Each run's dataset compared by its contents: by the CRC-32 its checkpoints record, so that seeds that trained
/// on copies of one dataset (each demo collects its own) group, and runs of different data under one name do not.
/// A run that records none (no checkpoint yet, or one from before the CRC was recorded) is compared by the file's
/// name, as before, unless the runs that record one under that name agree on it: then it is taken as theirs. The
/// dataset is named by its file, with its CRC-32 where another run's dataset of that name differs from it.
pub(super) fn identify_datasets(runs: &mut [RunData]) {
    let names: Vec<Option<String>> = runs.iter().map(|r| r.dataset.clone()).collect();
    let crc_text = |crc: u32| format!("CRC-32 {crc:08x}");
    let ids: Vec<Option<String>> = runs
        .iter()
        .zip(&names)
        .map(|(run, name)| {
            let name = name.as_ref()?;
            let crc = run.dataset_crc.or_else(|| {
                // The CRC-32 the runs of this dataset name record, where they all record the same.
                let mut recorded = runs
                    .iter()
                    .zip(&names)
                    .filter(|(_, n)| n.as_ref() == Some(name))
                    .filter_map(|(r, _)| r.dataset_crc);
                let first = recorded.next()?;
                recorded.all(|c| c == first).then_some(first)
            });
            Some(crc.map_or_else(|| name.clone(), crc_text))
        })
        .collect();
    for (i, run) in runs.iter_mut().enumerate() {
        let (Some(name), Some(id)) = (&names[i], &ids[i]) else {
            continue;
        };
        let ambiguous = names
            .iter()
            .zip(&ids)
            .any(|(n, other)| n.as_ref() == Some(name) && other.as_ref() != Some(id));
        let shown = match run.dataset_crc {
            _ if !ambiguous => name.clone(),
            Some(crc) => format!("{name} ({})", crc_text(crc)),
            None => format!("{name} (no CRC-32 recorded)"),
        };
        run.settings.insert("dataset".into(), id.clone());
        run.shown.insert("dataset".into(), shown);
    }
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

/// One series per group: its runs' mean with `band` (a run alone as it is), labelled and in its style (colour,
/// variant), with each run's own line where `seeds`, and the step its runs go online at (equal settings: one
/// step); a group whose runs' steps differ is drawn (its mean) at the steps they share, said.
pub(super) fn series(
    drawn: &[Drawn],
    groups: &[Vec<usize>],
    (several_tasks, band, seeds): (bool, Band, bool),
    styles: &[(usize, usize)],
    warnings: &mut Vec<String>,
) -> anyhow::Result<Vec<Series>> {
    let labels = series_labels(drawn, groups, several_tasks, band);
    let mut series = Vec::new();
    for ((group, label), &(color, variant)) in groups.iter().zip(labels).zip(styles) {
        let samples: Vec<Vec<Sample>> = group.iter().map(|&i| drawn[i].samples.clone()).collect();
        let merged = mean_over_runs(&samples, band);
        if let Some(warning) = left_out_warning(&label, group, &merged.left_out, drawn) {
            warnings.push(warning);
        }
        anyhow::ensure!(
            !merged.points.is_empty(),
            "{label}: its runs ({}) share no step to average over; draw them apart with --no-group",
            group_dirs(group, drawn)
        );
        let first = &drawn[group[0]].run;
        series.push(Series {
            online_from: online_from(&[Phases {
                offline_steps: first.offline_steps,
                online_steps: first.online_steps,
            }]),
            label,
            points: merged.points,
            color,
            variant,
            // A run alone is its own line already.
            runs: if seeds && group.len() > 1 {
                samples
                    .iter()
                    .map(|run| run.iter().map(|s| (s.x, s.y)).collect())
                    .collect()
            } else {
                Vec::new()
            },
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
        let differ: Vec<String> = differences(run, other)
            .into_iter()
            .map(|key| format!("{key} {} vs {}", run.shown(key), other.shown(key)))
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

/// The settings that say how a run was evaluated and computed, not what it trained: a legend names them last, and
/// only where nothing else tells a line apart (the reviewer's legend named `eval_episodes 5, eval_interval 500`, and
/// left out the `offline_steps` that made the difference).
const BOOKKEEPING: [&str; 4] = ["eval_episodes", "eval_envs", "eval_interval", "tf32"];

/// Whether the setting `key` is bookkeeping ([`BOOKKEEPING`]).
pub(super) fn is_bookkeeping(key: &str) -> bool {
    BOOKKEEPING.contains(&key)
}

/// Settings in the order a legend names them: what the run trained (the agent's hyper-parameters, its steps, data
/// and task) first, bookkeeping last, each part by name.
fn rank(keys: &mut Vec<&str>) {
    keys.sort_unstable_by_key(|&k| (is_bookkeeping(k), k));
    keys.dedup();
}

/// The first runs of the other `groups` of `group`'s agent and task.
fn rivals<'a>(drawn: &'a [Drawn], groups: &[Vec<usize>], group: &[usize]) -> Vec<&'a RunData> {
    let ours = &drawn[group[0]].run;
    groups
        .iter()
        .filter(|g| g[0] != group[0])
        .map(|g| &drawn[g[0]].run)
        .filter(|theirs| theirs.kind == ours.kind && theirs.task == ours.task)
        .collect()
}

/// What sets `group` apart from the other `groups` of its agent and task: the settings in which it differs from
/// any of them, ranked (what it trained first, bookkeeping last); none where no other group shares its agent and
/// task. Its colour goes by these.
pub(super) fn set_apart_by<'a>(
    drawn: &'a [Drawn],
    groups: &[Vec<usize>],
    group: &[usize],
) -> Vec<&'a str> {
    let ours = &drawn[group[0]].run;
    let mut keys: Vec<&str> = rivals(drawn, groups, group)
        .into_iter()
        .flat_map(|theirs| differences(ours, theirs))
        .collect();
    rank(&mut keys);
    keys
}

/// The settings `group`'s legend names ([`set_apart_by`], ranked): bookkeeping only where it alone sets the group
/// apart from another (two runs that differ in nothing but `eval_episodes`).
pub(super) fn named_apart_by<'a>(
    drawn: &'a [Drawn],
    groups: &[Vec<usize>],
    group: &[usize],
) -> Vec<&'a str> {
    let ours = &drawn[group[0]].run;
    let mut keys: Vec<&str> = rivals(drawn, groups, group)
        .into_iter()
        .flat_map(|theirs| {
            let differ = differences(ours, theirs);
            let bookkeeping_only = differ.iter().all(|k| is_bookkeeping(k));
            differ
                .into_iter()
                .filter(move |k| bookkeeping_only || !is_bookkeeping(k))
        })
        .collect();
    rank(&mut keys);
    keys
}

/// The settings in which two runs differ, ranked as a legend names them (a key one lacks included).
pub(super) fn differences<'a>(a: &'a RunData, b: &'a RunData) -> Vec<&'a str> {
    let mut keys: Vec<&str> = a
        .settings
        .keys()
        .chain(b.settings.keys())
        .map(String::as_str)
        .filter(|&k| a.settings.get(k) != b.settings.get(k))
        .collect();
    rank(&mut keys);
    keys
}

#[cfg(test)]
mod tests {
    use qamlab_agent::AgentKind;
    use qamlab_headless::plot::SeriesPoint;

    use crate::commands::plot::fixtures::{
        args, config, fake_run, fake_run_of, points, record_dataset_crc, run_with_lr,
    };
    use crate::commands::plot::{BandArg, PlotArgs, prepare};

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
            cfg.keep_checkpoints = 3;
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
        let with_lr = |lr, seed| run_with_lr(dir.path(), lr, seed);
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
        // Each series then marks its own, in its colour, and the x axis says what the marks are.
        let own: Vec<Option<f64>> = plot.chart.series.iter().map(|s| s.online_from).collect();
        assert_eq!(own, [Some(200.0), Some(300.0)]);
        assert_eq!(
            plot.chart.x_desc,
            "training step (offline, then online from the tick in each line's colour)"
        );
        // Where one line is right for all, or across time, none of their own.
        let plot = prepare(&args(&[&runs[0], &runs[1]])).unwrap();
        assert!(plot.chart.series.iter().all(|s| s.online_from.is_none()));
    }

    #[test]
    fn a_chart_of_an_unfinished_run_says_how_far_it_got() {
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str, summary: Option<&str>| {
            let mut cfg = config(AgentKind::Fql, 0);
            (cfg.offline_steps, cfg.online_steps) = (600, 0);
            let run = fake_run(dir.path(), name, &cfg, &[(300, 0.0)], &[]);
            let file = qamlab_headless::run_dir::RunDir::new(&run).summary();
            match summary {
                Some(text) => std::fs::write(file, text).unwrap(),
                None => std::fs::remove_file(file).unwrap(),
            }
            run
        };
        // The reviewer's rF: stopped at step 423 of 600, its last evaluation at 300.
        let stopped = r#"{"stopped_early": true, "offline_updates": 423, "online_steps": 0}"#;
        let rf = run("rF", Some(stopped));
        let plot = prepare(&args(&[&rf])).unwrap();
        assert_eq!(
            plot.chart.subtitle.as_deref(),
            Some("stopped at step 423 of 600")
        );
        // A stop's summary that a resume went past (its process killed before writing its own): the evaluations
        // recorded since say more.
        let stale = r#"{"stopped_early": true, "offline_updates": 100, "online_steps": 0}"#;
        let stale = run("stale", Some(stale));
        assert_eq!(
            prepare(&args(&[&stale])).unwrap().chart.subtitle.as_deref(),
            Some("stopped at step 300 of 600")
        );
        // A finished run: nothing said.
        let done = run("done", Some(r#"{"stopped_early": false}"#));
        assert_eq!(prepare(&args(&[&done])).unwrap().chart.subtitle, None);
        // Training now (its lock held; a resume of a stopped run keeps the stop's summary until it ends), and one
        // killed outright (no summary, no lock): by name, beside a finished one.
        let resumed = run("resumed", Some(stopped));
        let _training = qamlab_headless::run_dir::RunDir::new(&resumed)
            .lock()
            .unwrap();
        let killed = run("killed", None);
        let plot = prepare(&args(&[&done, &resumed, &killed])).unwrap();
        assert_eq!(
            plot.chart.subtitle.as_deref(),
            Some(
                "unfinished: resumed in progress: step 300 of 600; killed stopped at step 300 of 600"
            )
        );
    }

    /// The labels of a plot's series.
    fn labels(plot: &crate::commands::plot::Plot) -> Vec<&str> {
        plot.chart.series.iter().map(|s| s.label.as_str()).collect()
    }

    #[test]
    fn runs_are_grouped_by_their_datasets_contents_not_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str, seed, dataset: &str, crc: Option<u32>| {
            let mut cfg = config(AgentKind::Bc, seed);
            cfg.dataset = Some(dataset.into());
            let run = fake_run(dir.path(), name, &cfg, &[(100, 0.5)], &[]);
            if let Some(crc) = crc {
                record_dataset_crc(&run, crc);
            }
            run
        };
        // One name, two datasets: apart, each labelled by its CRC-32, and the note says so.
        let a0 = run("a0", 0, "/data/cs.npz", Some(0x65a6_f83e));
        let a1 = run("a1", 1, "/data/copy/cs.npz", Some(0x65a6_f83e));
        let b0 = run("b0", 0, "/data/other/cs.npz", Some(0xd8f4_0002));
        let b1 = run("b1", 1, "/data/other2/cs.npz", Some(0xd8f4_0002));
        let plot = prepare(&args(&[&a0, &b0, &a1, &b1])).unwrap();
        assert_eq!(
            labels(&plot),
            [
                "bc dataset cs.npz (CRC-32 65a6f83e) (2 seeds, mean, band min–max)",
                "bc dataset cs.npz (CRC-32 d8f40002) (2 seeds, mean, band min–max)"
            ]
        );
        let plot = prepare(&args(&[&a0, &b1])).unwrap();
        assert!(
            plot.notes[0]
                .contains("differ in dataset cs.npz (CRC-32 65a6f83e) vs cs.npz (CRC-32 d8f40002)"),
            "{:?}",
            plot.notes
        );
        // A run trained without a dataset: `dataset none` where that sets it apart.
        let mut cfg = config(AgentKind::Bc, 0);
        cfg.dataset = None;
        let online = fake_run(dir.path(), "online", &cfg, &[(100, 0.5)], &[]);
        let plot = prepare(&args(&[&a0, &online])).unwrap();
        assert!(
            labels(&plot)
                .iter()
                .any(|l| l.starts_with("bc dataset none")),
            "{:?}",
            labels(&plot)
        );
        // A run with no checkpoint yet: taken as the one dataset its name's runs record.
        let young = run("young", 2, "/data/cs.npz", None);
        let plot = prepare(&args(&[&a0, &a1, &young])).unwrap();
        assert_eq!(labels(&plot), ["bc (3 seeds, mean, band min–max)"]);
        // Where the name's runs record two, it is told apart, by its name.
        let plot = prepare(&args(&[&a0, &b0, &young])).unwrap();
        assert_eq!(plot.chart.series.len(), 3);
        assert!(
            plot.notes
                .iter()
                .any(|n| n
                    .contains("dataset cs.npz (no CRC-32 recorded) vs cs.npz (CRC-32 65a6f83e)")),
            "{:?}",
            plot.notes
        );
        // Old runs recording none: compared by name, as before.
        let old = [
            run("old0", 0, "/x/cs.npz", None),
            run("old1", 1, "/y/cs.npz", None),
        ];
        let plot = prepare(&args(&[&old[0], &old[1]])).unwrap();
        assert_eq!(labels(&plot), ["bc (2 seeds, mean, band min–max)"]);
    }

    #[test]
    fn settings_the_runs_kind_does_not_read_do_not_set_its_seeds_apart() {
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str, kind, seed, inv_temp| {
            let mut cfg = config(kind, seed);
            cfg.agent.inv_temp = inv_temp;
            fake_run(dir.path(), name, &cfg, &[(100, 0.5)], &[])
        };
        // A BC baseline beside each point of a QAM inv_temp sweep: BC reads no inv_temp, its seeds are one.
        let bc = [
            run("bc-s0", AgentKind::Bc, 0, 3.0),
            run("bc-s1", AgentKind::Bc, 1, 1.0),
        ];
        let qam = [
            run("qam-s0", AgentKind::Qam, 0, 3.0),
            run("qam-s1", AgentKind::Qam, 1, 1.0),
        ];
        let plot = prepare(&args(&[&bc[0], &bc[1], &qam[0], &qam[1]])).unwrap();
        assert_eq!(
            labels(&plot),
            [
                "bc (2 seeds, mean, band min–max)",
                "qam inv_temp 3.0 (qam-s0)",
                "qam inv_temp 1.0 (qam-s1)"
            ]
        );
        assert!(
            plot.notes.iter().all(|n| !n.contains("bc-s")),
            "{:?}",
            plot.notes
        );
    }

    #[test]
    fn the_cpu_threads_a_seed_ran_on_are_bookkeeping() {
        let dir = tempfile::tempdir().unwrap();
        let run = |seed, threads| {
            let mut cfg = config(AgentKind::Qam, seed);
            cfg.cpu_threads = Some(threads);
            fake_run(dir.path(), &format!("s{seed}"), &cfg, &[(100, 0.5)], &[])
        };
        let plot = prepare(&args(&[&run(0, 1), &run(1, 2)])).unwrap();
        assert_eq!(labels(&plot), ["qam (2 seeds, mean, band min–max)"]);
        assert!(plot.notes.is_empty(), "{:?}", plot.notes);
    }

    #[test]
    fn the_band_is_min_max_or_the_standard_error_or_none_and_the_legend_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let runs: Vec<_> = [0.0, 0.5, 1.0]
            .iter()
            .enumerate()
            .map(|(seed, &rate)| {
                let name = format!("s{seed}");
                fake_run_of(
                    dir.path(),
                    &name,
                    AgentKind::Qam,
                    seed as u64,
                    &[(100, rate)],
                    &[],
                )
            })
            .collect();
        let with = |band| {
            prepare(&PlotArgs {
                band,
                ..args(&runs.iter().collect::<Vec<_>>())
            })
            .unwrap()
        };
        let plot = with(BandArg::Sem);
        assert_eq!(labels(&plot), ["qam (3 seeds, mean ± s.e.)"]);
        // Standard deviation 0.5 over √3.
        let (lo, hi) = plot.chart.series[0].points[0].band.unwrap();
        let error = 0.5 / 3f64.sqrt();
        assert!((lo - (0.5 - error)).abs() < 1e-12 && (hi - (0.5 + error)).abs() < 1e-12);
        let plot = with(BandArg::None);
        assert_eq!(labels(&plot), ["qam (3 seeds, mean)"]);
        assert_eq!(points(&plot.chart.series[0]), [(100.0, 0.5, None)]);
        let plot = with(BandArg::Minmax);
        assert_eq!(
            points(&plot.chart.series[0]),
            [(100.0, 0.5, Some((0.0, 1.0)))]
        );
        assert!(plot.chart.series[0].runs.is_empty());
        // --seeds: each seed's own line too.
        let plot = prepare(&PlotArgs {
            seeds: true,
            ..args(&runs.iter().collect::<Vec<_>>())
        })
        .unwrap();
        assert_eq!(
            plot.chart.series[0].runs,
            [[(100.0, 0.0)], [(100.0, 0.5)], [(100.0, 1.0)]]
        );
    }

    #[test]
    fn the_online_mark_and_the_x_axis_name_follow_the_phases_the_runs_train_in() {
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str, offline, online| {
            let mut cfg = config(AgentKind::Qam, 0);
            (cfg.offline_steps, cfg.online_steps) = (offline, online);
            fake_run(dir.path(), name, &cfg, &[(100, 0.5), (200, 0.5)], &[])
        };
        let both = prepare(&args(&[&run("both", 200, 300)])).unwrap();
        assert_eq!(
            (both.chart.online_from, both.chart.x_desc.as_str()),
            (Some(200.0), "training step (offline, then online)")
        );
        // Offline only: no line at its last step.
        let offline = prepare(&args(&[&run("offline", 200, 0)])).unwrap();
        assert_eq!(
            (offline.chart.online_from, offline.chart.x_desc.as_str()),
            (None, "training step (offline)")
        );
        let online = prepare(&args(&[&run("online", 0, 200)])).unwrap();
        assert_eq!(
            (online.chart.online_from, online.chart.x_desc.as_str()),
            (None, "training step (online)")
        );
    }
}
