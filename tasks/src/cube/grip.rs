//! [`weak_grips`]: cubes too heavy for the gantry's fingers to lift, by what their motor squeezes them with.
//!
//! The physics' motors are acceleration-based: a finger pushes on what stops it with its stiffness times how far
//! its target lies past the stop times the joint's effective mass, the finger's (`extra_mass`) taken with the body
//! it slides on (the palm: 1/(1/finger + 1/palm)), up to `max_force`; `max_force` is only that cap, and raising it
//! adds nothing where the product is below it. Friction on the two fingers' faces then holds up to the cube's weight.

use qamlab_sim::TaskScene;

use super::GANTRY_ACTIONS;
use super::feasibility::{Finger, Gripper, width_across};

/// How many times its weight the friction of the squeeze (the squeeze times the two contacts' friction) is, for the
/// heaviest cube the oracle's grasp lifts in most episodes: 1.97 with cube-single's gantry (it lifts 0.77 kg in 95%
/// of episodes, 0.78 kg in 2%: the grasp fails all at once past it); 1.6 to 2.5 measured changing one or two
/// settings at a time (the palm's mass 0.02 to 3 kg, each finger's 0.05 to 0.4 kg, the gripper's stiffness 1000 to
/// 16000, the fingers' friction 1.5 and 3; the highest with the lightest squeeze, the lowest with the strongest),
/// and 1.9 to 2.1 where `max_force` (1 to 5 N) caps the squeeze. So the mass it lifts, estimated, is within some 25%.
const LIFT_RATIO: f32 = 2.0;

/// The ratio of the squeeze's friction to a cube's weight below which the cube is said to be too heavy: below every
/// ratio measured (1.6 at the least); cube-single's from 1.0 kg.
const TOO_WEAK: f32 = 1.5;

/// The ratio below which the cube is said to be probably too heavy: below all but the strongest squeezes' ratios
/// (1.6 to 1.75 measured with a palm of 3 kg, fingers of 0.4 kg or stiffness 16000); cube-single's from 0.85 kg,
/// where it lifts almost none from 0.78 kg.
const PROBABLY_TOO_WEAK: f32 = 1.8;

/// A body a finger slides on and its mass (kg).
pub(crate) type Parent = (usize, f32);

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
    /// Whether it is surely too heavy ([`TOO_WEAK`]), not only probably ([`PROBABLY_TOO_WEAK`]).
    pub(crate) sure: bool,
    /// The two fingers' masses (kg).
    pub(crate) finger_masses: (f32, f32),
    /// The bodies the two fingers slide on (the palm), `None` for one that does not move.
    pub(crate) parents: (Option<Parent>, Option<Parent>),
    /// The fingers' reduced mass (kg), each finger's taken with its parent's: what the motor scales by.
    pub(crate) reduced_mass: f32,
    /// The two contacts' friction coefficients, summed (each the mean of the finger's and the cube's, as the
    /// physics combines them).
    pub(crate) friction: f32,
    /// The mass (kg) the grasp lifts, as measured ([`LIFT_RATIO`]).
    pub(crate) lifts: f32,
}

/// The goals' cubes (probably) too heavy for the gantry's grasp ([`PROBABLY_TOO_WEAK`]), where the scene has the
/// gantry the cube script drives, with two fingers; `mass` gives a dynamic body's mass (kg). The squeeze: the
/// gripper's stiffness times how far the fingers' closed targets (+1, `at_max`) lie inside the cube across its wider
/// side (where the script may grasp it; the narrower side is squeezed less) times the fingers' reduced mass (each
/// pushes against the other through the cube), each finger's mass taken with its parent's, capped by `max_force`.
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
    // The motor's effective mass: the finger's with the body it pushes from (a fixed one adds nothing).
    let parent = |f: &Finger| {
        let b = scene.joints[f.joint].parent;
        mass(b).map(|m| (b, m))
    };
    let (p1, p2) = (parent(&pair.low), parent(&pair.high));
    let effective = |m: f32, p: Option<Parent>| p.map_or(m, |(_, p)| m * p / (m + p));
    let (e1, e2) = (effective(m1, p1), effective(m2, p2));
    let reduced_mass = e1 * e2 / (e1 + e2);
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
        let pushed = k * overlap * reduced_mass;
        let squeeze = pushed.min(cap);
        let friction = (finger_friction(&pair.low) + collider.friction) / 2.0
            + (finger_friction(&pair.high) + collider.friction) / 2.0;
        let hold = squeeze * friction;
        let weight = m * gravity * scene.bodies[cube].body.gravity_scale;
        if hold < PROBABLY_TOO_WEAK * weight {
            out.push(WeakGrip {
                cube,
                mass: m,
                squeeze,
                capped: pushed > cap,
                overlap,
                sure: hold < TOO_WEAK * weight,
                finger_masses: (m1, m2),
                parents: (p1, p2),
                reduced_mass,
                friction,
                lifts: hold / LIFT_RATIO / gravity,
            });
        }
    }
    out
}
