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
