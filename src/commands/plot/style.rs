//! Each series' colour and variant: a colour family per agent, the same from chart to chart, and a shade of it per
//! group of its runs (an agent, or an agent's setting); the seeds of one group drawn apart (`--no-group`) share it,
//! told apart by dashes and markers.

use qamlab_headless::plot::{FAMILIES, PALETTE_LEN, SHADES, agent_family, palette_index};

use super::grouping::set_apart_by;
use super::samples::Drawn;

/// FNV-1a: a hash that is the same in every process and version (std's is not promised to be), so that a group's
/// colour is too.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The colour and variant of each series (`series`: the runs of each, in order), from the groups of runs of
/// equal settings (`by_settings`: the seeds of one experiment). Every group takes a shade of its agent's colour
/// family, never another agent's colour: the agent's own where the chart holds no other setting of that agent (and
/// task), else one picked by a stable hash of what sets it apart (`qam lr 0.001`); a shade another group took
/// first moves on to the next free one of the family, and past the family's shades, its shades again (drawn
/// dashed). Agents as themselves choose first, so that they keep their own colours. Where every run is of one agent
/// (a sweep of its settings), no other agent's colour could be mistaken for it: the groups spread over the whole
/// palette, each family's own colour first ([`spread_over_palette`]), rather than three shades of one. A series'
/// variant is its run's place among its group's runs where they are drawn apart, else 0.
pub(super) fn series_styles(
    drawn: &[Drawn],
    by_settings: &[Vec<usize>],
    series: &[Vec<usize>],
    several_tasks: bool,
) -> Vec<(usize, usize)> {
    let keys: Vec<(String, bool)> = by_settings
        .iter()
        .map(|group| group_key(drawn, by_settings, group, several_tasks))
        .collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&g| !keys[g].1);
    let one_agent = drawn.iter().all(|d| d.run.kind == drawn[0].run.kind);
    let mut colors = vec![0; keys.len()];
    let mut taken: Vec<usize> = Vec::new();
    for g in order {
        let (key, as_itself) = &keys[g];
        let family = agent_family(drawn[by_settings[g][0]].run.kind);
        // The colours it may take, from the one it wants: a shade of its family, or with one agent, any (each
        // family's own colour before any shade).
        let hash = stable_hash(key);
        let (choices, wanted): (Vec<usize>, usize) = match (*as_itself, one_agent) {
            (true, true) => (spread_over_palette(family), 0),
            (false, true) => {
                let shift = (hash % (FAMILIES as u64 - 1)) as usize;
                (spread_over_palette(family + shift), 0)
            }
            (as_itself, false) => {
                let shades = (0..SHADES).map(|k| palette_index(family, k)).collect();
                (
                    shades,
                    if as_itself {
                        0
                    } else {
                        (hash % SHADES as u64) as usize
                    },
                )
            }
        };
        let color = (0..)
            .flat_map(|lap| {
                let choices = &choices;
                (0..choices.len())
                    .map(move |k| lap * PALETTE_LEN + choices[(wanted + k) % choices.len()])
            })
            .find(|c| !taken.contains(c))
            .expect("the laps never run out");
        taken.push(color);
        colors[g] = color;
    }
    series
        .iter()
        .map(|runs| {
            let run = runs[0];
            let (g, group) = by_settings
                .iter()
                .enumerate()
                .find(|(_, group)| group.contains(&run))
                .expect("every run is in a group");
            let variant = if runs.len() < group.len() {
                group.iter().position(|&i| i == run).unwrap_or(0)
            } else {
                0
            };
            (colors[g], variant)
        })
        .collect()
}

/// Every colour of the palette, for the settings of one agent: each agent family's own colour (`family`'s first,
/// then the families after it, round), then their darker shades, then their lighter ones, and the grey of names
/// that are no kind last.
fn spread_over_palette(family: usize) -> Vec<usize> {
    let kinds = FAMILIES - 1;
    let grey = FAMILIES - 1;
    (0..SHADES)
        .flat_map(|shade| (0..kinds).map(move |j| palette_index((family + j) % kinds, shade)))
        .chain((0..SHADES).map(|shade| palette_index(grey, shade)))
        .collect()
}

/// What sets a group apart on the chart: its agent, its task where the chart holds several, and every setting
/// in which it differs from another group of its agent and task (`qam lr 0.001`, as its legend names them); and
/// whether it differs from none (it is its agent as itself, in the agent's own colour).
fn group_key(
    drawn: &[Drawn],
    by_settings: &[Vec<usize>],
    group: &[usize],
    several_tasks: bool,
) -> (String, bool) {
    let ours = &drawn[group[0]].run;
    let keys = set_apart_by(drawn, by_settings, group);
    let mut text = ours.kind.to_string();
    if several_tasks {
        text = format!("{text} {}", ours.task);
    }
    for key in &keys {
        let value = ours.settings.get(*key).map_or("unset", String::as_str);
        text = format!("{text} {key} {value}");
    }
    (text, keys.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    use qamlab_agent::AgentKind;

    use crate::commands::plot::fixtures::{args, config, fake_run, fake_run_of, run_with_lr};
    use crate::commands::plot::{PlotArgs, prepare};

    /// The colour an agent's runs take where they are drawn as themselves alone (no other setting of it on the
    /// chart): its family's own.
    fn agent_color(kind: &str) -> usize {
        palette_index(agent_family(kind), 0)
    }

    #[test]
    fn every_line_of_an_agent_is_a_shade_of_its_family_never_another_agents_colour() {
        let dir = tempfile::tempdir().unwrap();
        // Settings of QAM side by side (the reviewer's grp.png drew them in red, brown and orange: QAM-F's and
        // BC's colours elsewhere), beside BC.
        let qam: Vec<_> = [0.001, 0.0003, 0.0001, 0.003]
            .iter()
            .map(|&lr| run_with_lr(dir.path(), lr, 0))
            .collect();
        let bc = fake_run_of(dir.path(), "bc", AgentKind::Bc, 0, &[(100, 0.5)], &[]);
        let family = |color: usize| (color % PALETTE_LEN) / SHADES;
        for n in 2..=qam.len() {
            let mut runs: Vec<_> = qam[..n].iter().collect();
            runs.push(&bc);
            let plot = prepare(&args(&runs)).unwrap();
            let colors: Vec<usize> = plot.chart.series.iter().map(|s| s.color).collect();
            let (ours, bc_color) = colors.split_at(n);
            assert!(
                ours.iter().all(|&c| family(c) == agent_family("qam")),
                "{n} settings: {colors:?}"
            );
            assert_eq!(bc_color, [agent_color("bc")]);
            // Each its own: a shade, or past the family's shades a shade again, dashed.
            let mut distinct = ours.to_vec();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), n, "{colors:?}");
        }
    }

    #[test]
    fn an_agent_keeps_its_colour_from_chart_to_chart_and_its_seeds_share_it() {
        let dir = tempfile::tempdir().unwrap();
        let run =
            |name: &str, kind, seed| fake_run_of(dir.path(), name, kind, seed, &[(100, 0.5)], &[]);
        let qam = [
            run("qam-s0", AgentKind::Qam, 0),
            run("qam-s1", AgentKind::Qam, 1),
        ];
        let bc = run("bc", AgentKind::Bc, 0);
        let fql = run("fql", AgentKind::Fql, 0);
        let colors = |plot: &super::super::Plot| -> Vec<(String, usize, usize)> {
            plot.chart
                .series
                .iter()
                .map(|s| (s.label.clone(), s.color, s.variant))
                .collect()
        };
        // QAM against BC, then FQL against QAM: QAM's colour is the same, first or not.
        let one = colors(&prepare(&args(&[&qam[0], &qam[1], &bc])).unwrap());
        let two = colors(&prepare(&args(&[&fql, &qam[0], &qam[1]])).unwrap());
        assert_eq!(one[0].1, two[1].1);
        assert_eq!(one[0].1, agent_color("qam"));
        assert_ne!(two[0].1, two[1].1);
        // --no-group: QAM's seeds in QAM's colour, each its own variant; BC in its own.
        let apart = colors(
            &prepare(&PlotArgs {
                no_group: true,
                ..args(&[&qam[0], &bc, &qam[1]])
            })
            .unwrap(),
        );
        assert_eq!(
            apart
                .iter()
                .map(|(_, color, variant)| (*color, *variant))
                .collect::<Vec<_>>(),
            [
                (agent_color("qam"), 0),
                (agent_color("bc"), 0),
                (agent_color("qam"), 1)
            ]
        );
        // Settings of one agent: each its colour, by what sets it apart, the same wherever it comes.
        let with_lr = |lr, seed| run_with_lr(dir.path(), lr, seed);
        let (a, b) = (with_lr(0.001, 0), with_lr(0.0003, 0));
        let ab = colors(&prepare(&args(&[&a, &b])).unwrap());
        let ba = colors(&prepare(&args(&[&b, &a])).unwrap());
        assert_ne!(ab[0].1, ab[1].1);
        assert_eq!((ab[0].1, ab[1].1), (ba[1].1, ba[0].1));
    }

    #[test]
    fn a_sweep_of_one_agent_spreads_over_the_whole_palette() {
        // Settings of QAM alone (three were navy, mid and light blue, told apart badly): any colour is QAM's here,
        // each family's own before any shade, whichever the settings.
        let dir = tempfile::tempdir().unwrap();
        let lrs = [0.001, 0.0003, 0.0001, 0.003, 0.03, 0.01, 0.0002, 0.0005];
        let qam: Vec<_> = lrs
            .iter()
            .map(|&lr| run_with_lr(dir.path(), lr, 0))
            .collect();
        let steps: Vec<_> = [600, 2000, 20000, 300, 1000, 5000, 100, 50000]
            .iter()
            .map(|&steps| {
                let mut cfg = config(AgentKind::Qam, 0);
                cfg.offline_steps = steps;
                fake_run(dir.path(), &format!("o{steps}"), &cfg, &[(100, 0.5)], &[])
            })
            .collect();
        for n in 2..=FAMILIES - 1 {
            for sweep in qam.windows(n).chain(steps.windows(n)) {
                let plot = prepare(&args(&sweep.iter().collect::<Vec<_>>())).unwrap();
                let colors: Vec<usize> = plot.chart.series.iter().map(|s| s.color).collect();
                let mut families: Vec<usize> = colors.iter().map(|c| c / SHADES).collect();
                families.sort_unstable();
                families.dedup();
                assert_eq!(families.len(), n, "{colors:?}");
                // No shade where a family's own colour is free, and no grey.
                assert!(
                    colors
                        .iter()
                        .all(|&c| c < PALETTE_LEN && c % SHADES == 0 && c / SHADES < FAMILIES - 1),
                    "{colors:?}"
                );
            }
        }
        // Seeds of one QAM setting alone keep QAM's own colour.
        let seeds = [run_with_lr(dir.path(), 0.001, 1), qam[0].clone()];
        let plot = prepare(&args(&seeds.iter().collect::<Vec<_>>())).unwrap();
        assert_eq!(plot.chart.series[0].color, agent_color("qam"));
    }

    #[test]
    fn an_agent_on_two_tasks_leaves_the_other_agents_their_colours() {
        let dir = tempfile::tempdir().unwrap();
        let single = fake_run_of(dir.path(), "single", AgentKind::Qam, 0, &[(100, 0.5)], &[]);
        let mut cfg = config(AgentKind::Qam, 0);
        cfg.task = "cube-double".into();
        let double = fake_run(dir.path(), "double", &cfg, &[(100, 0.5)], &[]);
        let bc = fake_run_of(dir.path(), "bc", AgentKind::Bc, 0, &[(100, 0.5)], &[]);
        let plot = prepare(&args(&[&single, &double, &bc])).unwrap();
        let colors: Vec<usize> = plot.chart.series.iter().map(|s| s.color).collect();
        let (qam, bc) = (agent_color("qam"), agent_color("bc"));
        assert_eq!((colors[0], colors[2]), (qam, bc));
        assert!(![qam, bc].contains(&colors[1]), "{colors:?}");
    }
}
