//! [`SceneExtent`]: where a scene is, and whether a body has left it ([`SceneExtent::escape`]): fallen off the
//! world or flung away. Nothing brings such a body back, so the rest of its episode is no data of the task: a cube
//! pushed off cube-double's table (it has no floor) falls 2.5 km in a 25 s episode, and a gripper stiff enough to
//! squeeze the cube out does so in a tenth of the oracle's episodes. The physics stays finite all the while (the
//! drivers' finite checks see nothing), so a driver that writes data asks this.

use bevy::math::Vec3;

use crate::scene::TaskScene;
use crate::spec::{EnvSpec, QPOS_PER_BODY};

/// How far outside the box around a scene a body's origin may go before it has left the scene (m). A robot lab's
/// scenes are metres across, and what moves in one stays within its reach; 10 m out, a body has fallen off or been
/// flung out (a free fall takes 1.4 s to get there).
pub const LEAVE_MARGIN: f32 = 10.0;

/// How far below the box around a scene a free body's origin may go, where gravity pulls down, before it has left
/// the scene (m): every collider is above it then, so nothing can stop its fall (a free fall takes 0.45 s to get
/// there). Without it, a cube that fell off a table in the last second of an episode stayed in the data, a metre
/// down. A body a joint holds (a pendulum's pole hanging below all it was authored with) swings back, and is judged
/// by [`LEAVE_MARGIN`] alone.
pub const FALL_MARGIN: f32 = 1.0;

/// The box around a scene as authored: every collider at its authored pose, where every body and every goal's
/// target starts or is drawn. A body whose origin gets over [`LEAVE_MARGIN`] outside it, or a free body over
/// [`FALL_MARGIN`] below it where gravity pulls down, has left the scene.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneExtent {
    /// The box's low corner (m).
    pub min: Vec3,
    /// The box's high corner (m).
    pub max: Vec3,
    /// Whether the scene's gravity pulls down (its z below 0), so that a free body below the box falls without end.
    pub falls: bool,
    /// The bodies a joint holds (the children of joints), which swing back from below the box.
    pub held: Vec<String>,
}

/// A body that has left the scene: what [`SceneExtent::escape`] finds.
#[derive(Clone, Debug, PartialEq)]
pub struct Escape {
    /// The body's name.
    pub body: String,
    /// Where its origin is.
    pub at: Vec3,
    /// How far outside the scene's box it is (m; infinite where its position is not finite).
    pub outside: f32,
    /// The scene's box.
    pub extent: SceneExtent,
}

impl std::fmt::Display for Escape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (lo, hi) = (self.extent.min, self.extent.max);
        let how = if self.outside > LEAVE_MARGIN {
            format!("over {LEAVE_MARGIN} m out")
        } else {
            format!("over {FALL_MARGIN} m below all of it, with nothing under it to land on")
        };
        write!(
            f,
            "body \"{}\" left the scene: it is at ({:.1}, {:.1}, {:.1}), {:.1} m outside the box around the \
             scene's colliders and the places its bodies and targets start ({:.2}, {:.2}, {:.2}) to ({:.2}, {:.2}, \
             {:.2}), {how}: it fell off what held it or was flung out, and nothing brings it back, so the episode \
             is no data of the task (a floor under the scene, or walls, keep bodies in; a motor too stiff for its \
             damping flings what it touches, which the scene's warnings name)",
            self.body,
            self.at.x,
            self.at.y,
            self.at.z,
            self.outside,
            lo.x,
            lo.y,
            lo.z,
            hi.x,
            hi.y,
            hi.z
        )
    }
}

impl SceneExtent {
    /// The box around `scene`: its colliders at their authored poses, every body's authored origin and the
    /// ranges its start is drawn from (a body a randomised root carries: wherever the root's draw puts it), a swaying
    /// body's stroke about them, and every goal's target and the ranges it is drawn from.
    pub fn of(scene: &TaskScene) -> Self {
        let (mut min, mut max) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
        let mut add = |lo: Vec3, hi: Vec3| {
            min = min.min(lo);
            max = max.max(hi);
        };
        let carried_by = scene.carried_by();
        for (b, def) in scene.bodies.iter().enumerate() {
            if let Some((lo, hi)) = scene.collider_bounds(b) {
                add(lo, hi);
            }
            let drawn = def.randomize.as_ref().map(|r| [r.x, r.y, r.z]);
            let (lo, hi) = drawn_box(def.body.translation, drawn.unwrap_or_default());
            add(lo, hi);
            // A swaying body's stroke: `amplitude * (sin(..) - sin(phase))` from its start, either way.
            if let Some(sway) = def.motion.as_ref().and_then(|m| m.sway.as_ref()) {
                let reach = sway.amplitude.abs() * (1.0 + sway.phase.sin().abs());
                add(lo - reach, hi + reach);
            }
            if let Some(root) = carried_by[b] {
                let home = &scene.bodies[root];
                let r = home
                    .randomize
                    .as_ref()
                    .expect("a carrying root is randomised");
                let (lo, hi) = drawn_box(home.body.translation, [r.x, r.y, r.z]);
                let (turned_lo, turned_hi) =
                    turned_box(def.body.translation - home.body.translation, r.yaw);
                add(lo + turned_lo, hi + turned_hi);
            }
        }
        for def in &scene.goals {
            let span = def.target_span();
            let (lo, hi) = (
                Vec3::from_array(span.map(|r| r.min)),
                Vec3::from_array(span.map(|r| r.max)),
            );
            add(lo, hi);
        }
        Self {
            min,
            max,
            falls: scene.settings.gravity.z < 0.0,
            held: scene
                .joints
                .iter()
                .map(|j| scene.bodies[j.child].body.name.clone())
                .collect(),
        }
    }

    /// The first body of one env's `qpos` row (laid out as `spec` says: each of its state bodies' position, then
    /// quaternion) whose origin is over [`LEAVE_MARGIN`] outside this box, a free body's over [`FALL_MARGIN`] below
    /// it where gravity pulls down, or not finite.
    pub fn escape(&self, spec: &EnvSpec, qpos: &[f32]) -> Option<Escape> {
        spec.state_bodies.iter().enumerate().find_map(|(i, body)| {
            let p = qpos.get(i * QPOS_PER_BODY..i * QPOS_PER_BODY + 3)?;
            let at = Vec3::new(p[0], p[1], p[2]);
            let outside = if at.is_finite() {
                (self.min - at).max(at - self.max).max(Vec3::ZERO).length()
            } else {
                f32::INFINITY
            };
            let fallen = self.falls && at.z < self.min.z - FALL_MARGIN && !self.held.contains(body);
            (outside > LEAVE_MARGIN || fallen).then(|| Escape {
                body: body.clone(),
                at,
                outside,
                extent: self.clone(),
            })
        })
    }
}

/// The box of places a point authored at `at` is drawn in, per axis from its range or else at `at`.
pub(crate) fn drawn_box(at: Vec3, drawn: [Option<crate::authoring::Range>; 3]) -> (Vec3, Vec3) {
    let lo = |k: usize| drawn[k].map_or(at[k], |r| r.min);
    let hi = |k: usize| drawn[k].map_or(at[k], |r| r.max);
    (
        Vec3::new(lo(0), lo(1), lo(2)),
        Vec3::new(hi(0), hi(1), hi(2)),
    )
}

/// The box of places `offset` is turned to about z by any angle in `yaw` (rad; unturned without one).
pub(crate) fn turned_box(offset: Vec3, yaw: Option<crate::authoring::Range>) -> (Vec3, Vec3) {
    let Some(yaw) = yaw else {
        return (offset, offset);
    };
    let (r, phase) = (offset.truncate().length(), offset.y.atan2(offset.x));
    // Each of x and y is extreme at the range's ends or where the turned offset points along an axis, a
    // multiple of a quarter turn from its own direction; past a whole turn, all round.
    let quarter = std::f32::consts::FRAC_PI_2;
    let mut angles = vec![yaw.min, yaw.max];
    if yaw.max - yaw.min < std::f32::consts::TAU {
        let first = ((yaw.min + phase) / quarter).ceil() as i32;
        let last = ((yaw.max + phase) / quarter).floor() as i32;
        angles.extend((first..=last).map(|k| k as f32 * quarter - phase));
    } else {
        angles.extend((0..4).map(|k| k as f32 * quarter - phase));
    }
    let (mut lo, mut hi) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
    for a in angles {
        let turned = Vec3::new(r * (a + phase).cos(), r * (a + phase).sin(), offset.z);
        (lo, hi) = (lo.min(turned), hi.max(turned));
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUBE_SINGLE: &str = include_str!("../../assets/tasks/cube-single.scn.ron");

    #[test]
    fn an_offset_turned_through_a_range_spans_the_arc_it_sweeps() {
        use crate::authoring::Range;
        let close = |(lo, hi): (Vec3, Vec3), want: (Vec3, Vec3)| {
            assert!(
                (lo - want.0).abs().max_element() < 1e-5
                    && (hi - want.1).abs().max_element() < 1e-5,
                "{lo} {hi}, not {want:?}"
            );
        };
        let offset = Vec3::new(1.0, 0.0, 0.5);
        close(turned_box(offset, None), (offset, offset));
        // A small turn either way: x barely shrinks, y swings both ways.
        let (c, s) = (0.1f32.cos(), 0.1f32.sin());
        close(
            turned_box(offset, Some(Range::new(-0.1, 0.1))),
            (Vec3::new(c, -s, 0.5), Vec3::new(1.0, s, 0.5)),
        );
        // Half a turn from a quarter past it: through -x, never back to +x.
        let quarter = std::f32::consts::FRAC_PI_2;
        close(
            turned_box(offset, Some(Range::new(quarter, 3.0 * quarter))),
            (Vec3::new(-1.0, -1.0, 0.5), Vec3::new(0.0, 1.0, 0.5)),
        );
        // Past a whole turn: all round.
        close(
            turned_box(offset, Some(Range::new(0.0, 7.0))),
            (Vec3::new(-1.0, -1.0, 0.5), Vec3::new(1.0, 1.0, 0.5)),
        );
    }

    #[test]
    fn a_swaying_body_s_whole_stroke_is_in_the_scene() {
        // The table made kinematic and swaying 3 m along x from the middle of its stroke: all of it is in the box.
        let text = CUBE_SINGLE.replacen(
            "name: \"table\", kind: Fixed",
            "name: \"table\", kind: Kinematic",
            1,
        );
        let sway = "\"qamlab_sim::authoring::KinematicMotion\": (sway: Some((amplitude: (3.0, 0.0, 0.0), \
                    period: 4.0, phase: 0.5))), \"qamlab_sim::authoring::Collider\"";
        let text = text.replacen("\"qamlab_sim::authoring::Collider\"", sway, 1);
        let extent = SceneExtent::of(&TaskScene::from_ron(&text, "swaying").unwrap());
        // From the table's origin at x = 0, 3 m x (1 + sin 0.5) either way.
        let reach = 3.0 * (1.0 + 0.5f32.sin());
        assert!(
            (extent.min.x + reach).abs() < 1e-5 && (extent.max.x - reach).abs() < 1e-5,
            "{extent:?}"
        );
    }

    #[test]
    fn a_body_ten_metres_out_of_the_scene_has_left_it() {
        let scene = TaskScene::from_ron(CUBE_SINGLE, "cube-single").unwrap();
        let extent = SceneExtent::of(&scene);
        // The table's top and bottom, its sides, and the gantry up to its fixed body at 0.25 m.
        assert_eq!(extent.min, Vec3::new(-0.5, -0.5, -0.1));
        assert!((extent.max - Vec3::new(0.5, 0.5, 0.26)).abs().max_element() < 1e-6);
        let spec = EnvSpec::of(&scene);
        let cube = spec.state_bodies.iter().position(|b| b == "cube").unwrap();
        let mut qpos = vec![0.0; spec.qpos_dim];
        for i in 0..spec.state_bodies.len() {
            qpos[i * QPOS_PER_BODY + 6] = 1.0;
        }
        assert_eq!(extent.escape(&spec, &qpos), None);
        // Flung sideways: 9.9 m beside the table is still in, 10.2 m out.
        qpos[cube * QPOS_PER_BODY] = 10.4;
        assert_eq!(extent.escape(&spec, &qpos), None);
        qpos[cube * QPOS_PER_BODY] = 10.7;
        let escape = extent.escape(&spec, &qpos).expect("the cube was flung out");
        assert_eq!(escape.body, "cube");
        assert!((escape.outside - 10.2).abs() < 1e-4, "{escape:?}");
        assert!(
            escape.to_string().starts_with(
                "body \"cube\" left the scene: it is at (10.7, 0.0, 0.0), 10.2 m outside the box around the \
                 scene's colliders and the places its bodies and targets start (-0.50, -0.50, -0.10) to (0.50, \
                 0.50, 0.26), over 10 m out"
            ),
            "{escape}"
        );
        // Fallen off the table: 0.9 m below all of it may still land on something, 1.1 m cannot.
        qpos[cube * QPOS_PER_BODY] = 0.6;
        qpos[cube * QPOS_PER_BODY + 2] = -1.0;
        assert_eq!(extent.escape(&spec, &qpos), None);
        qpos[cube * QPOS_PER_BODY + 2] = -1.2;
        let escape = extent.escape(&spec, &qpos).expect("the cube fell");
        assert!(
            escape.to_string().contains(
                "1.1 m outside the box around the scene's colliders and the places its bodies and targets start \
                 (-0.50, -0.50, -0.10) to (0.50, 0.50, 0.26), over 1 m below all of it, with nothing under it to \
                 land on"
            ),
            "{escape}"
        );
        // Where gravity does not pull down, only the 10 m bound holds.
        let up = SceneExtent {
            falls: false,
            ..extent.clone()
        };
        assert_eq!(up.escape(&spec, &qpos), None);
        // Nor for a body a joint holds: it swings back from below.
        assert!(extent.held.contains(&"finger_l".to_string()));
        let held = SceneExtent {
            held: vec!["cube".into()],
            ..extent
        };
        assert_eq!(held.escape(&spec, &qpos), None);
        // A position no longer finite has left it too.
        qpos[cube * QPOS_PER_BODY] = f32::NAN;
        assert_eq!(extent.escape(&spec, &qpos).unwrap().outside, f32::INFINITY);
    }
}
