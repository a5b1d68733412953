//! [`weak_grips`]: cubes too heavy for the gantry's fingers to lift, by what their motor squeezes them with.
//!
//! The physics' motors are acceleration-based: a finger pushes on what stops it with its stiffness times how far
//! its target lies past the stop times its mass (`extra_mass`), up to `max_force`; `max_force` is only that cap,
//! and raising it adds nothing where the product is below it. Friction on the two fingers' faces then holds up to
//! the cube's weight.

use qamlab_sim::TaskScene;

use super::GANTRY_ACTIONS;
use super::feasibility::{Finger, Gripper, width_across};

/// How many times its weight the friction of the squeeze (the squeeze times the two contacts' friction) is, for the
/// heaviest cube the oracle's grasp lifts in most episodes: measured with cube-single's gantry, changing one or two
/// settings at a time, 2.3 to 3.1 over each finger's mass 0.05 to 0.2 kg, the gripper's stiffness 1000 to 8000 and
/// damping 100 to 400, the fingers' friction 0.6 to 3 and the cube 3 to 6 cm wide; lower (1.9) at stiffness 16000,
/// higher (4 to 5) with fingers of 0.3 to 0.4 kg. The grasp fails all at once past it: cube-single's succeeds in
/// 98% of episodes at 0.77 kg, in none at 0.83.
const LIFT_RATIO: f32 = 2.7;

/// [`LIFT_RATIO`] where `max_force` caps the squeeze: 1.9 to 2.1 measured (max_force 1 to 5 N).
const LIFT_RATIO_CAPPED: f32 = 2.0;

/// The ratio of the squeeze's friction to a cube's weight below which the cube is said to be too heavy: below every
/// ratio measured (1.9 at the least), so only grips clearly too weak are said; cube-single's from 1.4 kg.
const TOO_WEAK: f32 = 1.5;

/// A cube the fingers cannot lift.
pub(crate) struct WeakGrip {
    /// The cube.
    pub(crate) cube: usize,
    /// Its mass (kg).
    pub(crate) mass: f32,
    /// What each finger squeezes it with (N).
    pub(crate) squeeze: f32,
    /// Whether the gripper's `max_force` caps the squeeze.
    pub(crate) capped: bool,
    /// How far the fingers' closed targets lie inside the cube, together (m): 0 where they close short of it.
    pub(crate) overlap: f32,
    /// The two fingers' masses (kg).
    pub(crate) finger_masses: (f32, f32),
    /// The two contacts' friction coefficients, summed (each the mean of the finger's and the cube's, as the
    /// physics combines them).
    pub(crate) friction: f32,
    /// The mass (kg) the grasp lifts, as measured ([`LIFT_RATIO`], [`LIFT_RATIO_CAPPED`]).
    pub(crate) lifts: f32,
}

/// The goals' cubes too heavy for the gantry's grasp ([`TOO_WEAK`]), where the scene has the gantry the cube script
/// drives, with two fingers; `mass` gives a dynamic body's mass (kg). The squeeze: the gripper's stiffness times
/// how far the fingers' closed targets (+1, `at_max`) lie inside the cube across its wider side (where the script
/// may grasp it; the narrower side is squeezed less) times the fingers' reduced mass (each pushes against the
/// other through the cube), capped by `max_force`.
pub(crate) fn weak_grips(scene: &TaskScene, mass: impl Fn(usize) -> Option<f32>) -> Vec<WeakGrip> {
    let gantry = scene
        .actuators
        .iter()
        .map(|a| a.actuator.name.as_str())
        .eq(GANTRY_ACTIONS);
    let gravity = -scene.settings.gravity.z;
    let Some(gripper) = Gripper::of(scene).filter(|_| gantry && gravity > 0.0) else {
        return Vec::new();
    };
    let Some(pair) = gripper.pair() else {
        return Vec::new();
    };
    let body = |f: &Finger| scene.joints[f.joint].child;
    let (Some(m1), Some(m2)) = (mass(body(&pair.low)), mass(body(&pair.high))) else {
        return Vec::new();
    };
    let finger_friction = |f: &Finger| {
        scene.bodies[body(f)]
            .collider
            .as_ref()
            .map_or(0.0, |c| c.friction)
    };
    let closed = pair.gap_at(scene, gripper.at_max);
    let (k, cap) = (gripper.actuator.stiffness, gripper.actuator.max_force);
    let mut out = Vec::new();
    for def in &scene.goals {
        let cube = def.frame.body;
        // A cube with two goals is one cube to lift.
        if out.iter().any(|w: &WeakGrip| w.cube == cube) {
            continue;
        }
        let (Some(width), Some(m), Some(collider)) = (
            width_across(scene, cube),
            mass(cube),
            &scene.bodies[cube].collider,
        ) else {
            continue;
        };
        let overlap = (width - closed).max(0.0);
        let pushed = k * overlap * m1 * m2 / (m1 + m2);
        let squeeze = pushed.min(cap);
        let friction = (finger_friction(&pair.low) + collider.friction) / 2.0
            + (finger_friction(&pair.high) + collider.friction) / 2.0;
        let hold = squeeze * friction;
        if hold < TOO_WEAK * m * gravity * scene.bodies[cube].body.gravity_scale {
            let ratio = if pushed > cap {
                LIFT_RATIO_CAPPED
            } else {
                LIFT_RATIO
            };
            out.push(WeakGrip {
                cube,
                mass: m,
                squeeze,
                capped: pushed > cap,
                overlap,
                finger_masses: (m1, m2),
                friction,
                lifts: hold / ratio / gravity,
            });
        }
    }
    out
}
