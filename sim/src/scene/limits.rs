//! The sizes a scene may have: bounds on its file, its counts of things and its spaces' widths, checked before
//! the checks whose time grows with the square of a count (names against names, colliders against colliders), so
//! that no load runs for minutes or asks for memory no machine has.

use std::io::Read;
use std::path::Path;

use super::TaskScene;
use super::check::Check;
use super::parse::RawEntity;
use crate::error::SimError;

/// Largest scene file, in bytes (16 MiB). A built-in scene is a few KB, and one with [`MAX_OF_EACH_KIND`] bodies,
/// joints and sites and a [`MAX_SPACE_WIDTH`] observation about 10 MB; reading a scene takes memory tens of times its
/// size where it is all brackets or commas (its outline holds 48 bytes for each).
pub const MAX_SCENE_BYTES: u64 = 16 << 20;

/// Most bodies a scene may hold, and most joints, sites and goals, each. The built-ins hold at most a few dozen;
/// past it the scene's checks (overlaps, names, reachability) take more than seconds.
pub const MAX_OF_EACH_KIND: usize = 10_000;

/// Most entities a scene may hold: room for [`MAX_OF_EACH_KIND`] of each kind on entities of their own. Checked
/// as soon as the text is read, before entity ids are compared with each other.
pub const MAX_ENTITIES: usize = 5 * MAX_OF_EACH_KIND;

/// Widest observation or action a scene may have, in values: the widest an agent accepts
/// (`qamlab_agent::config::MAX_WIDTH`), so that a task no agent can learn is refused where it is written.
pub const MAX_SPACE_WIDTH: usize = 1 << 16;

/// `1 MiB`, `64 MiB`: a byte count as people read it.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20)).replace(".0 MiB", " MiB")
}

/// The refusal of a scene `bytes` long (at least `bytes` where `more` is set: a pipe read up to the cap).
fn too_large(file: &str, bytes: u64, more: bool) -> SimError {
    let size = if more {
        format!("more than {}", mib(MAX_SCENE_BYTES))
    } else {
        format!("{bytes} bytes ({})", mib(bytes))
    };
    SimError::Io {
        file: file.to_string(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{size}, over the {} a scene file may be (a built-in scene is a few KB): is it a scene file?",
                mib(MAX_SCENE_BYTES)
            ),
        ),
    }
}

/// The bytes of the file (or unnamed pipe) at `path`, refused past [`MAX_SCENE_BYTES`]: a file's size is looked at
/// before it is read, and a pipe is read to one byte past the cap at most.
pub(super) fn read_capped(path: &Path, file: &str) -> Result<Vec<u8>, SimError> {
    let io = |source| SimError::Io {
        file: file.to_string(),
        source,
    };
    let opened = std::fs::File::open(path).map_err(io)?;
    let length = opened.metadata().map_err(io)?.len();
    if length > MAX_SCENE_BYTES {
        return Err(too_large(file, length, false));
    }
    let mut bytes = Vec::new();
    opened
        .take(MAX_SCENE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_SCENE_BYTES {
        // A pipe, whose length is 0 until read, or a file that grew as it was read.
        return Err(too_large(file, bytes.len() as u64, true));
    }
    Ok(bytes)
}

/// Refuses scene text longer than [`MAX_SCENE_BYTES`] (given whole, not read from a file).
pub(super) fn check_size(bytes: usize, source: &str) -> Result<(), SimError> {
    if bytes as u64 > MAX_SCENE_BYTES {
        return Err(too_large(source, bytes as u64, false));
    }
    Ok(())
}

/// Refuses more than [`MAX_ENTITIES`] entities.
pub(super) fn check_entity_count(entities: usize, source: &str) -> Result<(), SimError> {
    if entities > MAX_ENTITIES {
        return Err(Check { source }.scene_err(
            "entities",
            format!(
                "the scene has {entities} entities: a scene may have at most {MAX_ENTITIES} (the built-in tasks \
                 have a few dozen)"
            ),
        ));
    }
    Ok(())
}

/// Refuses more than [`MAX_OF_EACH_KIND`] bodies, joints, sites or goals, and more actuators or sensors than
/// [`MAX_SPACE_WIDTH`] (each is at least one value wide), before the builders compare them with each other.
pub(super) fn check_counts(entities: &[RawEntity], source: &str) -> Result<(), SimError> {
    let ck = Check { source };
    let count = |has: fn(&RawEntity) -> bool| entities.iter().filter(|e| has(e)).count();
    for (component, n) in [
        ("Body", count(|e| e.body.is_some())),
        ("Joint", count(|e| e.joint.is_some())),
        ("Site", count(|e| e.site.is_some())),
        ("Goal", count(|e| e.goal.is_some())),
        ("JointGoal", count(|e| e.joint_goal.is_some())),
        ("AxisGoal", count(|e| e.axis_goal.is_some())),
    ] {
        if n > MAX_OF_EACH_KIND {
            return Err(ck.scene_err(
                component,
                format!(
                    "the scene has {n} `{component}` components: a scene may have at most {MAX_OF_EACH_KIND} \
                     (the built-in tasks have a few dozen)"
                ),
            ));
        }
    }
    for raw in entities {
        let actuators = raw.actions.as_ref().map_or(0, |a| a.actuators.len());
        if actuators > MAX_SPACE_WIDTH {
            return Err(ck.err(
                raw,
                "ActionSpace.actuators",
                format!(
                    "{actuators} actuators: an action may be at most {MAX_SPACE_WIDTH} values wide, the widest \
                     an agent accepts"
                ),
            ));
        }
        let sensors = raw.observations.as_ref().map_or(0, |o| o.sensors.len());
        if sensors > MAX_SPACE_WIDTH {
            return Err(ck.err(
                raw,
                "ObservationSpace.sensors",
                format!(
                    "{sensors} sensors, each at least 1 value: an observation may be at most {MAX_SPACE_WIDTH} \
                     values wide, the widest an agent accepts"
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses an observation wider than [`MAX_SPACE_WIDTH`] values.
pub(super) fn check_observation_width(scene: &TaskScene) -> Result<(), SimError> {
    let width: usize = scene.sensors.iter().map(|(_, d)| d.dim()).sum();
    if width > MAX_SPACE_WIDTH {
        let ck = Check {
            source: &scene.source,
        };
        return Err(ck.scene_err(
            "ObservationSpace.sensors",
            format!(
                "the observation is {width} values wide ({} sensors): it may be at most {MAX_SPACE_WIDTH}, the \
                 widest an agent accepts",
                scene.sensors.len()
            ),
        ));
    }
    Ok(())
}
