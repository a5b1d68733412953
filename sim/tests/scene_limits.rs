//! The sizes a scene may have (file, counts, widths), and that scenes up to them load and check in seconds.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use qamlab_sim::TaskScene;
use qamlab_sim::physics::{MAX_OVERLAPS, overlaps_at_authored_poses};
use qamlab_sim::scene::{MAX_ENTITIES, MAX_OF_EACH_KIND, MAX_SCENE_BYTES, MAX_SPACE_WIDTH};

/// cube-single with `entities` (RON entity text) added before its own.
fn cube_single_with(entities: &str) -> String {
    common::cube_single_text().replacen(
        "  entities: {\n",
        &format!("  entities: {{\n{entities}"),
        1,
    )
}

/// `n` fixed tables, as cube-single's: piled where its own is, or side by side 2 m apart.
fn tables(n: usize, piled: bool) -> String {
    (0..n)
        .map(|k| {
            let (x, y) = if piled {
                (0.0, 0.0)
            } else {
                ((k % 100) as f32 * 2.0 + 5.0, (k / 100) as f32 * 2.0 + 5.0)
            };
            format!(
                "    {id}: (components: {{\n      \"qamlab_sim::authoring::Body\": (name: \"t{k}\", kind: Fixed, \
                 translation: ({x:?}, {y:?}, -0.05), rotation: (0.0, 0.0, 0.0, 1.0)),\n      \
                 \"qamlab_sim::authoring::Collider\": (shape: Cuboid(half_extents: (0.5, 0.5, 0.05)), density: 0.0, \
                 friction: 1.0, membership: 1),\n    }}),\n",
                id = 100_000 + k
            )
        })
        .collect()
}

fn message(e: qamlab_sim::SimError) -> String {
    e.to_string()
}

#[test]
fn a_scene_file_over_the_cap_is_refused_by_its_size_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.scn.ron");
    // Sparse: no disk and no time, as the 1 GB file whose lexing aborted on an allocation.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(MAX_SCENE_BYTES + 1)
        .unwrap();
    let started = Instant::now();
    let e = message(TaskScene::from_file(&path).unwrap_err());
    assert!(
        e.contains("huge.scn.ron")
            && e.contains(&format!("{} bytes", MAX_SCENE_BYTES + 1))
            && e.contains(&format!(
                "over the {} MiB a scene file may be",
                MAX_SCENE_BYTES >> 20
            )),
        "{e}"
    );
    // Refused by its length, not read: well under the seconds reading and lexing it takes.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_unnamed_pipe_that_never_ends_is_read_to_the_cap_and_refused() {
    // `qamlab task <(yes)`: a writer that stops only when the reader goes.
    let (reader, mut writer) = std::io::pipe().unwrap();
    let feeder = std::thread::spawn(move || {
        let line = [b'y'; 4096];
        let mut written = 0u64;
        while writer.write_all(&line).is_ok() {
            written += line.len() as u64;
        }
        written
    });
    use std::os::fd::AsRawFd;
    let path = format!("/dev/fd/{}", reader.as_raw_fd());
    let e = message(TaskScene::from_file(&path).unwrap_err());
    drop(reader);
    let written = feeder.join().unwrap();
    assert!(
        e.contains(&path)
            && e.contains(&format!(
                "more than {0} MiB, over the {0} MiB a scene file may be",
                MAX_SCENE_BYTES >> 20
            )),
        "{e}"
    );
    // Read to one byte past the cap, and no further (the pipe holds at most a buffer more).
    assert!(written <= MAX_SCENE_BYTES + (1 << 20), "{written}");
}

#[test]
fn scene_text_over_the_cap_is_refused() {
    let text = " ".repeat(MAX_SCENE_BYTES as usize + 1);
    let e = message(TaskScene::from_ron(&text, "given").unwrap_err());
    assert!(
        e.starts_with("given: ") && e.contains(&format!("over the {} MiB", MAX_SCENE_BYTES >> 20)),
        "{e}"
    );
}

#[test]
fn more_bodies_than_the_bound_are_refused_at_load() {
    // cube-single has its own bodies: these take it past the bound.
    let text = cube_single_with(&tables(MAX_OF_EACH_KIND, false));
    let e = message(TaskScene::from_ron(&text, "many").unwrap_err());
    assert!(
        e.contains("field `Body`")
            && e.contains(&format!(
                "components: a scene may have at most {MAX_OF_EACH_KIND}"
            )),
        "{e}"
    );
}

#[test]
fn more_entities_than_the_bound_are_refused_at_load() {
    // Empty ones, whose ids were each compared with every earlier one's.
    let empty: String = (0..MAX_ENTITIES)
        .map(|k| format!("    {}: (components: {{}}),\n", 300_000 + k))
        .collect();
    let e = message(TaskScene::from_ron(&cube_single_with(&empty), "empty").unwrap_err());
    assert!(
        e.contains("scene: field `entities`")
            && e.contains(&format!(
                "entities: a scene may have at most {MAX_ENTITIES}"
            )),
        "{e}"
    );
}

#[test]
fn a_scene_of_thousands_of_bodies_is_checked_in_seconds() {
    // Piled in one place, as the review's scene was: every pair's boxes meet, none can touch (all fixed).
    let text = cube_single_with(&tables(MAX_OF_EACH_KIND - 20, true));
    let started = Instant::now();
    let scene = TaskScene::from_ron(&text, "piled").unwrap();
    let overlaps = overlaps_at_authored_poses(&scene, 0.002);
    let took = started.elapsed();
    assert!(overlaps.is_empty(), "{overlaps:?}");
    // A name check against every earlier name and a contact test of every pair took 8 s for 20 000 bodies (and
    // 115 s for 40 000); the bound is far above what the hashed names and the sweep take (under a second).
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn a_body_or_site_name_used_twice_is_still_refused() {
    let twice = cube_single_with(&tables(3, false).replace("\"t2\"", "\"t0\""));
    let e = message(TaskScene::from_ron(&twice, "twice").unwrap_err());
    assert!(
        e.contains("field `Body.name`: the name \"t0\" is used twice"),
        "{e}"
    );
    let site = cube_single_with(
        "    99999: (components: {\"qamlab_sim::authoring::Site\": (name: \"cube\", body: \"palm\", offset: (0.0, 0.0, 0.0))}),\n",
    );
    let e = message(TaskScene::from_ron(&site, "site").unwrap_err());
    assert!(
        e.contains("field `Site.name`: the name \"cube\" is used twice"),
        "{e}"
    );
}

/// Dynamic balls of radius 5 cm at scattered places, in a collision group of their own.
fn balls(n: usize, piled: bool) -> (String, Vec<[f32; 3]>) {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let at: Vec<[f32; 3]> = (0..n)
        .map(|_| match piled {
            true => [0.0, 0.0, 1.0],
            false => [next() * 1.6, next() * 1.6, 1.0 + next() * 1.6],
        })
        .collect();
    let text = at
        .iter()
        .enumerate()
        .map(|(k, p)| {
            format!(
                "    {id}: (components: {{\n      \"qamlab_sim::authoring::Body\": (name: \"b{k}\", kind: Dynamic, \
                 translation: ({:?}, {:?}, {:?}), rotation: (0.0, 0.0, 0.0, 1.0)),\n      \
                 \"qamlab_sim::authoring::Collider\": (shape: Ball(radius: 0.05), density: 1000.0, friction: 1.0, \
                 membership: 4, filter: 4),\n    }}),\n",
                p[0],
                p[1],
                p[2],
                id = 200_000 + k
            )
        })
        .collect();
    (text, at)
}

#[test]
fn overlaps_found_by_the_sweep_are_those_of_every_pair() {
    let (text, at) = balls(400, false);
    let scene = TaskScene::from_ron(&cube_single_with(&text), "balls").unwrap();
    let index = |k: usize| {
        scene
            .bodies
            .iter()
            .position(|b| b.body.name == format!("b{k}"))
            .unwrap()
    };
    let (mut expected, mut unsure) = (Vec::new(), Vec::new());
    for k in 0..at.len() {
        for l in k + 1..at.len() {
            let d = (0..3)
                .map(|i| (at[k][i] - at[l][i]).powi(2))
                .sum::<f32>()
                .sqrt();
            let (a, b) = (index(k), index(l));
            // Within float rounding of the 2 mm threshold: either answer is right.
            if (0.1 - d - 0.002).abs() < 1e-4 {
                unsure.push((a.min(b), a.max(b)));
            } else if 0.1 - d > 0.002 {
                expected.push((a.min(b), a.max(b)));
            }
        }
    }
    let found: Vec<(usize, usize)> = overlaps_at_authored_poses(&scene, 0.002)
        .iter()
        .map(|o| o.bodies)
        .collect();
    // Every pair once, in the order of their colliders, as a scan of every pair gave them.
    assert!(found.windows(2).all(|w| w[0] < w[1]), "{found:?}");
    let mut found: Vec<(usize, usize)> = found
        .into_iter()
        .map(|(a, b)| (a.min(b), a.max(b)))
        .filter(|p| !unsure.contains(p))
        .collect();
    found.sort();
    expected.sort();
    assert!(
        (20..MAX_OVERLAPS).contains(&expected.len()),
        "{}",
        expected.len()
    );
    assert_eq!(found, expected);
}

#[test]
fn an_observation_wider_than_agents_take_is_refused_at_load() {
    let sensors = |n: usize, sensor: &str| {
        let text = common::cube_single_text();
        let list = format!("{sensor},\n").repeat(n);
        text.replacen(
            "          sensors: [\n",
            &format!("          sensors: [\n{list}"),
            1,
        )
    };
    // More sensors than values allowed: refused by their count, before any is resolved.
    let e = message(
        TaskScene::from_ron(
            &sensors(MAX_SPACE_WIDTH + 1, "JointPosition(joint: \"x\")"),
            "count",
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("field `ObservationSpace.sensors`")
            && e.contains(&format!(
                "sensors, each at least 1 value: an observation may be at most {MAX_SPACE_WIDTH}"
            )),
        "{e}"
    );
    // Fewer sensors, three values each: refused by the width.
    let e = message(
        TaskScene::from_ron(
            &sensors(MAX_SPACE_WIDTH / 3 + 1, "Position(frame: \"pinch\")"),
            "width",
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("field `ObservationSpace.sensors`: the observation is")
            && e.contains(&format!(
                "values wide ({} sensors): it may be at most {MAX_SPACE_WIDTH}",
                MAX_SPACE_WIDTH / 3 + 12
            )),
        "{e}"
    );
    // At the bound, a scene loads.
    let at_bound = sensors(MAX_SPACE_WIDTH - 28, "JointPosition(joint: \"x\")");
    let scene = TaskScene::from_ron(&at_bound, "at bound").unwrap();
    assert_eq!(
        scene.sensors.iter().map(|(_, d)| d.dim()).sum::<usize>(),
        MAX_SPACE_WIDTH
    );
}

#[test]
fn bodies_piled_up_are_reported_a_hundred_pairs_at_most() {
    // 2000 balls in one place are two million overlapping pairs, each of which was a warning.
    let (text, _) = balls(2000, true);
    let scene = TaskScene::from_ron(&cube_single_with(&text), "pile").unwrap();
    let first = scene
        .bodies
        .iter()
        .position(|b| b.body.name == "b0")
        .unwrap();
    let found: Vec<(usize, usize)> = overlaps_at_authored_poses(&scene, 0.002)
        .iter()
        .map(|o| o.bodies)
        .collect();
    // The first pairs in the order of the colliders: the first ball with each of the next hundred.
    let expected: Vec<(usize, usize)> = (1..=MAX_OVERLAPS).map(|k| (first, first + k)).collect();
    assert_eq!(found, expected);
}
