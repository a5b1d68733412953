//! Names of observation columns, like `pinch.position.x`: [`EnvSpec::new`](super::EnvSpec::new) names each
//! sensor's values with [`of_sensor`], and tasks that find a value by its name (an oracle reading the cubes'
//! positions) ask with the functions below, so that renaming a column is one edit both sides follow.

use crate::authoring::Sensor;

/// A sensor's block of the observation, named (`pinch.position`, `yaw.velocity`), and the names of its values
/// within it (`x`, `y`, `z`; one unnamed value for a joint's).
pub fn of_sensor(sensor: &Sensor) -> (String, &'static [&'static str]) {
    match sensor {
        Sensor::Position { frame } => (format!("{frame}.position"), &["x", "y", "z"]),
        Sensor::Quaternion { body } => (format!("{body}.quaternion"), &["x", "y", "z", "w"]),
        Sensor::YawSinCos { body } => (format!("{body}.yaw"), &["sin", "cos"]),
        Sensor::LinearVelocity { frame } => (format!("{frame}.velocity"), &["x", "y", "z"]),
        Sensor::AngularVelocity { body } => (format!("{body}.angular_velocity"), &["x", "y", "z"]),
        Sensor::JointPosition { joint } => (format!("{joint}.position"), &[""]),
        Sensor::JointVelocity { joint } => (format!("{joint}.velocity"), &[""]),
        Sensor::RelativePosition { from, to } => (format!("{to}-{from}"), &["x", "y", "z"]),
        Sensor::GoalPosition { goal } => (format!("{goal}.target"), &["x", "y", "z"]),
        Sensor::JointGoalTarget { goal } => (format!("{goal}.target"), &[""]),
        // The axis in the name: two axes of one body are two blocks.
        Sensor::BodyAxis { body, axis } => (
            format!("{body}.axis({},{},{})", axis.x, axis.y, axis.z),
            &["x", "y", "z"],
        ),
        Sensor::AxisGoalDirection { goal } => (format!("{goal}.direction"), &["x", "y", "z"]),
        Sensor::JointFraction { actuator } => (format!("{actuator}.fraction"), &[""]),
    }
}

/// The column of value `part` of the block `block` (the block's own name for its one unnamed value).
pub fn in_block(block: &str, part: &str) -> String {
    if part.is_empty() {
        block.to_string()
    } else {
        format!("{block}.{part}")
    }
}

/// The first column of `sensor`, where its values start.
fn first(sensor: Sensor) -> String {
    let (block, parts) = of_sensor(&sensor);
    in_block(&block, parts[0])
}

/// `frame.position.x`: the first column of a `Position` sensor of `frame`.
pub fn position_x(frame: &str) -> String {
    first(Sensor::Position {
        frame: frame.to_string(),
    })
}

/// `body.quaternion.x`: the first column of a `Quaternion` sensor of `body`.
pub fn quaternion_x(body: &str) -> String {
    first(Sensor::Quaternion {
        body: body.to_string(),
    })
}

/// `body.yaw.sin`: the first column of a `YawSinCos` sensor of `body`.
pub fn yaw_sin(body: &str) -> String {
    first(Sensor::YawSinCos {
        body: body.to_string(),
    })
}

/// `goal.target.x`: the first column of a `GoalPosition` sensor of `goal`.
pub fn target_x(goal: &str) -> String {
    first(Sensor::GoalPosition {
        goal: goal.to_string(),
    })
}

/// The frame whose [`position_x`] `column` is, if it is one.
pub fn frame_of_position_x(column: &str) -> Option<&str> {
    column.strip_suffix(&position_x(""))
}

/// The body whose [`yaw_sin`] `column` is, if it is one.
pub fn body_of_yaw_sin(column: &str) -> Option<&str> {
    column.strip_suffix(&yaw_sin(""))
}

/// The goal whose [`target_x`] `column` is, if it is one.
pub fn goal_of_target_x(column: &str) -> Option<&str> {
    column.strip_suffix(&target_x(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_is_named_by_its_sensor_and_the_name_gives_the_sensor_back() {
        assert_eq!(position_x("pinch"), "pinch.position.x");
        assert_eq!(quaternion_x("torso"), "torso.quaternion.x");
        assert_eq!(yaw_sin("cube"), "cube.yaw.sin");
        assert_eq!(target_x("goal"), "goal.target.x");
        assert_eq!(frame_of_position_x("pinch.position.x"), Some("pinch"));
        assert_eq!(body_of_yaw_sin("cube_1.yaw.sin"), Some("cube_1"));
        assert_eq!(goal_of_target_x("goal.target.x"), Some("goal"));
        assert_eq!(goal_of_target_x("goal.target.y"), None);
        let joint = Sensor::JointPosition {
            joint: "hip".into(),
        };
        assert_eq!(of_sensor(&joint), ("hip.position".to_string(), &[""][..]));
        assert_eq!(in_block("hip.position", ""), "hip.position");
    }
}
