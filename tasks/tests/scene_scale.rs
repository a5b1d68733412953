//! Scene checks on scenes as large as loading allows finish in seconds.

use std::time::{Duration, Instant};

use qamlab_sim::TaskScene;
use qamlab_sim::scene::MAX_SPACE_WIDTH;
use qamlab_tasks::{BUILTIN_TASKS, scene_warnings};

#[test]
fn a_sensor_listed_tens_of_thousands_of_times_is_warned_of_once_in_seconds() {
    let cube_single = BUILTIN_TASKS
        .iter()
        .find(|(name, _)| *name == "cube-single")
        .unwrap()
        .1;
    // As wide an observation as a scene may have: one sensor of one value, listed over and over.
    let copies = MAX_SPACE_WIDTH - 28;
    let list = "JointPosition(joint: \"x\"),\n".repeat(copies);
    let text = cube_single.replacen(
        "          sensors: [\n",
        &format!("          sensors: [\n{list}"),
        1,
    );
    let scene = TaskScene::from_ron(&text, "copies").unwrap();
    assert_eq!(scene.sensors.len(), copies + 11);
    let started = Instant::now();
    let warnings = scene_warnings(&scene);
    let took = started.elapsed();
    let twice: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("listed twice"))
        .collect();
    assert_eq!(twice.len(), 1, "{twice:?}");
    assert!(
        twice[0].starts_with("the sensor JointPosition(joint: \"x\") is listed twice"),
        "{}",
        twice[0]
    );
    // A scan of every earlier sensor for each took 12 s here; counting them in a map, well under a second.
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[test]
fn ten_thousand_axis_goals_on_one_body_are_checked_in_seconds() {
    // topple's cylinder with 10 000 axis goals, each drawn on its own: the pair check compares only so many per body.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/tasks/examples/topple.scn.ron"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let goals: String = (0..9_999)
        .map(|n| {
            format!(
                "    {}: (components: {{\"qamlab_sim::authoring::AxisGoal\": (name: \"g{n}\", body: \"cylinder\", \
                 axis: (0.0, 0.0, 1.0), direction: (1.0, 0.0, 0.0), tolerance: 0.{}, \
                 randomize_yaw: Some((min: -0.2, max: 0.2)))}}),\n",
                100 + n,
                300 + n % 100
            )
        })
        .collect();
    let text = text.replacen("  entities: {\n", &format!("  entities: {{\n{goals}"), 1);
    let scene = TaskScene::from_ron(&text, "many-axis-goals").unwrap();
    assert_eq!(scene.axis_goals.len(), 10_000);
    let started = Instant::now();
    let warnings = scene_warnings(&scene);
    let took = started.elapsed();
    // Each goal's drawn direction is unobserved (one warning each); no pair is out of reach of another.
    let note = "\"cylinder\" has 10000 axis goals to compare (undrawn ones alike counted once); the check of which \
                pairs can hold at once compared the first 48 of them only";
    assert_eq!(warnings.iter().filter(|w| *w == note).count(), 1);
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.starts_with("axis goals "))
            .count(),
        0
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}
