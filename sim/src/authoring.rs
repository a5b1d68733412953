//! Authoring components: what a task scene file (`.scn.ron`) is made of.
//!
//! Every type here is `Reflect` and registered by [`register_authoring_types`], so a scene names it by its type
//! path. Entities refer to each other by *name* (a body, site, joint, actuator or goal name), never by entity id,
//! so a scene stays readable and editable by hand.

use bevy::prelude::*;

/// A closed interval `[min, max]`; loading rejects `min > max`.
#[derive(Reflect, Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// Lower bound.
    pub min: f32,
    /// Upper bound.
    pub max: f32,
}

impl Range {
    /// The interval `[min, max]`.
    pub const fn new(min: f32, max: f32) -> Self {
        Self { min, max }
    }

    /// Whether `x` lies inside the interval (bounds included).
    pub fn contains(&self, x: f32) -> bool {
        x >= self.min && x <= self.max
    }

    /// The values a check of what a draw from the range may give tries: its ends and its middle.
    pub fn ends_and_middle(&self) -> [f32; 3] {
        [self.min, (self.min + self.max) / 2.0, self.max]
    }
}

/// The task as a whole: time steps, episode length, physics settings and reward form. Exactly one per scene.
#[derive(Component, Reflect, Clone, Debug)]
#[reflect(Component)]
pub struct TaskSettings {
    /// Task name (shown in specs and errors).
    pub name: String,
    /// Control steps per episode before truncation.
    pub episode_length: u32,
    /// Seconds per control step (one action).
    pub control_dt: f32,
    /// Physics steps per control step (each `control_dt / substeps` long, at most
    /// [`MAX_PHYSICS_STEP`](crate::scene::MAX_PHYSICS_STEP)).
    pub substeps: u32,
    /// Rapier solver iterations per physics step (each one a solver substep: its constraints rebuilt, then solved).
    pub solver_iterations: u32,
    /// Constraint-solving passes within each solver iteration (Rapier's internal PGS iterations; default 1).
    /// Far cheaper than more iterations (the constraints are not rebuilt): what stiff motors on a robot standing
    /// on its feet need to converge.
    #[reflect(default = "one_pass")]
    pub solver_passes: u32,
    /// Gravity, world frame (z is up in the built-in tasks).
    pub gravity: Vec3,
    /// How the sparse reward is formed from the goals.
    pub reward: RewardKind,
}

/// Sparse reward forms (OGBench's single-task conventions).
#[derive(Reflect, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewardKind {
    /// `success - 1`: 0 when every goal holds, -1 otherwise.
    SuccessMinusOne,
    /// `(goals satisfied) - (number of goals)`: from -K to 0.
    GoalsSatisfiedMinusCount,
}

/// How a rigid body moves.
#[derive(Reflect, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// Moved by forces, contacts and joints.
    Dynamic,
    /// Never moves (tables, bases).
    Fixed,
    /// Unaffected by forces, contacts and joints: it stays where it starts, or follows the motion a
    /// [`KinematicMotion`] on its entity authors (a rotating paddle, a moving platform), pushing and carrying what it
    /// touches.
    Kinematic,
}

/// A rigid body with its initial pose (world frame).
#[derive(Component, Reflect, Clone, Debug)]
#[reflect(Component)]
pub struct Body {
    /// Unique name other components refer to.
    pub name: String,
    /// Dynamic, fixed or kinematic.
    pub kind: BodyKind,
    /// Initial position.
    pub translation: Vec3,
    /// Initial orientation.
    pub rotation: Quat,
    /// Multiplier of the task's gravity on this body (0 for gravity-compensated robot links).
    #[reflect(default = "one")]
    pub gravity_scale: f32,
    /// Linear velocity damping.
    #[reflect(default)]
    pub linear_damping: f32,
    /// Angular velocity damping.
    #[reflect(default)]
    pub angular_damping: f32,
    /// Extra mass (kg) on top of the collider's; bodies without a collider need it to move.
    #[reflect(default)]
    pub extra_mass: f32,
}

fn one() -> f32 {
    1.0
}

fn one_pass() -> u32 {
    1
}

/// Collider shapes, in the body's frame (plus the collider's offset).
#[derive(Reflect, Clone, Debug, PartialEq)]
pub enum Shape {
    /// A box given by its half extents.
    Cuboid {
        /// Half sizes along x, y, z.
        half_extents: Vec3,
    },
    /// A sphere.
    Ball {
        /// Radius.
        radius: f32,
    },
    /// A capsule along the local z axis.
    Capsule {
        /// Half length of the segment between the two caps' centres.
        half_height: f32,
        /// Radius.
        radius: f32,
    },
    /// A cylinder along the local z axis.
    Cylinder {
        /// Half length.
        half_height: f32,
        /// Radius.
        radius: f32,
    },
    /// The convex hull of points.
    ConvexHull {
        /// At least four non-coplanar points.
        points: Vec<Vec3>,
    },
}

/// The collision shape and material of the body on the same entity.
#[derive(Component, Reflect, Clone, Debug)]
#[reflect(Component)]
pub struct Collider {
    /// Shape.
    pub shape: Shape,
    /// Shape position in the body frame.
    #[reflect(default)]
    pub offset: Vec3,
    /// Density (kg/m³): with the shape it gives the body's mass.
    pub density: f32,
    /// Coulomb friction coefficient.
    pub friction: f32,
    /// Restitution (bounciness), 0..1.
    #[reflect(default)]
    pub restitution: f32,
    /// Collision groups this collider belongs to (bit mask).
    #[reflect(default = "all_groups")]
    pub membership: u32,
    /// Collision groups this collider touches (bit mask); two colliders touch when each one's filter has a bit of
    /// the other's membership.
    #[reflect(default = "all_groups")]
    pub filter: u32,
}

fn all_groups() -> u32 {
    u32::MAX
}

/// The motion a joint allows between its parent and child body.
#[derive(Reflect, Clone, Copy, Debug, PartialEq)]
pub enum JointKind {
    /// Rotation about `axis` (world frame at the initial pose).
    Revolute {
        /// Rotation axis.
        axis: Vec3,
    },
    /// Translation along `axis` (world frame at the initial pose).
    Prismatic {
        /// Slide axis.
        axis: Vec3,
    },
    /// No relative motion.
    Fixed,
}

/// A joint between two bodies, defined at the bodies' initial poses: its coordinate is 0 there.
#[derive(Component, Reflect, Clone, Debug)]
#[reflect(Component)]
pub struct Joint {
    /// Unique name actuators and sensors refer to.
    pub name: String,
    /// Parent body name.
    pub parent: String,
    /// Child body name.
    pub child: String,
    /// Revolute, prismatic or fixed.
    pub kind: JointKind,
    /// Joint origin in world coordinates at the initial pose.
    pub anchor: Vec3,
    /// Limits of the joint coordinate (radians or metres); none for a free joint.
    #[reflect(default)]
    pub limits: Option<Range>,
    /// A passive spring and damper on the joint coordinate (a drawer pulled shut, a button that pops back up, a
    /// damped door); none for a joint that moves freely. Only on a revolute or prismatic joint no actuator drives.
    #[reflect(default)]
    pub spring: Option<JointSpring>,
}

/// A joint's passive spring-damper: it pulls the joint coordinate toward `rest` and slows its rate, through the
/// joint's motor (Rapier's acceleration-based model, the one actuators use), so it moves any mass alike.
#[derive(Reflect, Clone, Copy, Debug, PartialEq)]
pub struct JointSpring {
    /// Acceleration per unit of the coordinate's distance from `rest` (1/s²; per radian or per metre), as an
    /// actuator's motor stiffness; 0 for a damper alone.
    pub stiffness: f32,
    /// Acceleration per unit of the coordinate's rate (1/s), as an actuator's motor damping; 0 for an undamped
    /// spring, which swings about `rest`, slowed only by the solver's implicit integration.
    pub damping: f32,
    /// The joint coordinate the spring pulls toward, in the joint's units (radians or metres, as the
    /// `JointPosition` sensor reads it): 0, the default, is the authored pose.
    #[reflect(default)]
    pub rest: f32,
}

/// A named point fixed to a body (like a MuJoCo site): the pinch point of a gripper, say.
#[derive(Component, Reflect, Clone, Debug)]
#[reflect(Component)]
pub struct Site {
    /// Unique name sensors and goals refer to.
    pub name: String,
    /// Body the site moves with.
    pub body: String,
    /// Position in the body's frame.
    pub offset: Vec3,
}

/// How an action value becomes a joint motor command.
#[derive(Reflect, Clone, Copy, Debug, PartialEq)]
pub enum Control {
    /// Target position = current joint position (the mean of the joints driven) + action * `scale` (OGBench's
    /// end-effector deltas).
    PositionDelta {
        /// Joint units per unit action per control step.
        scale: f32,
    },
    /// Target position mapped linearly from the action range onto `[at_min, at_max]` (a gripper's open/close).
    PositionAbsolute {
        /// Joint target at the action range's minimum.
        at_min: f32,
        /// Joint target at the action range's maximum.
        at_max: f32,
    },
    /// Target velocity = action * `scale`.
    Velocity {
        /// Joint units per second per unit action.
        scale: f32,
    },
}

impl std::fmt::Display for Control {
    /// As a scene file writes it, e.g. `PositionDelta(scale: 0.05)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::PositionDelta { scale } => write!(f, "PositionDelta(scale: {scale})"),
            Control::PositionAbsolute { at_min, at_max } => {
                write!(f, "PositionAbsolute(at_min: {at_min}, at_max: {at_max})")
            }
            Control::Velocity { scale } => write!(f, "Velocity(scale: {scale})"),
        }
    }
}

/// One action dimension: a motor driving one or more joints with the same command.
#[derive(Reflect, Clone, Debug)]
pub struct Actuator {
    /// Name of this action dimension.
    pub name: String,
    /// Joints driven (prismatic or revolute), all with the same target.
    pub joints: Vec<String>,
    /// Position delta, absolute position or velocity control.
    pub control: Control,
    /// Valid action values; actions outside it are an error.
    pub range: Range,
    /// Motor stiffness (acceleration units per unit position error).
    pub stiffness: f32,
    /// Motor damping (acceleration units per unit velocity error).
    pub damping: f32,
    /// Largest force (or torque) the motor may apply.
    pub max_force: f32,
}

/// The action vector: one entry per dimension, in order. Exactly one per scene.
#[derive(Component, Reflect, Clone, Debug)]
#[reflect(Component)]
pub struct ActionSpace {
    /// Action dimensions in vector order.
    pub actuators: Vec<Actuator>,
}

/// One observation block. `frame` names a body or a site.
#[derive(Reflect, Clone, Debug, PartialEq)]
pub enum Sensor {
    /// Position of a frame (3).
    Position {
        /// Body or site.
        frame: String,
    },
    /// Orientation quaternion of a body, `x, y, z, w` with `w >= 0` (4).
    Quaternion {
        /// Body.
        body: String,
    },
    /// Heading of a body about the world z axis as `sin, cos` (2).
    YawSinCos {
        /// Body.
        body: String,
    },
    /// Linear velocity of a frame (3).
    LinearVelocity {
        /// Body or site.
        frame: String,
    },
    /// Angular velocity of a body (3).
    AngularVelocity {
        /// Body.
        body: String,
    },
    /// Joint coordinate (1).
    JointPosition {
        /// Joint.
        joint: String,
    },
    /// Joint coordinate rate (1).
    JointVelocity {
        /// Joint.
        joint: String,
    },
    /// `to - from` positions (3).
    RelativePosition {
        /// Body or site subtracted.
        from: String,
        /// Body or site.
        to: String,
    },
    /// A goal's target position (3).
    GoalPosition {
        /// Goal.
        goal: String,
    },
    /// A joint goal's target coordinate (1).
    JointGoalTarget {
        /// Joint goal.
        goal: String,
    },
    /// Where an axis of a body points: the unit vector `axis` (in the body's frame, any length but 0) turned into
    /// the world (3). Smooth where `Quaternion` flips sign, and what an `AxisGoal` on that axis judges.
    BodyAxis {
        /// Body.
        body: String,
        /// The axis, in the body's frame.
        axis: Vec3,
    },
    /// An axis goal's target direction, a unit vector in the world (3).
    AxisGoalDirection {
        /// Axis goal.
        goal: String,
    },
    /// Mean coordinate of an actuator's joints mapped onto 0 (the joints' lower limit) .. 1 (upper limit): a
    /// gripper's closure (1).
    JointFraction {
        /// Actuator whose joints are averaged (they need limits).
        actuator: String,
    },
}

/// The observation vector: blocks in order. Exactly one per scene.
#[derive(Component, Reflect, Clone, Debug)]
#[reflect(Component)]
pub struct ObservationSpace {
    /// Observation blocks in vector order.
    pub sensors: Vec<Sensor>,
}

/// A goal: a frame must come within `tolerance` of `target`. Success is every goal holding.
#[derive(Component, Reflect, Clone, Debug)]
#[reflect(Component)]
pub struct Goal {
    /// Unique name sensors refer to.
    pub name: String,
    /// Body or site that must reach the target.
    pub frame: String,
    /// Target position (world), before reset randomisation.
    pub target: Vec3,
    /// Largest distance that counts as reached.
    pub tolerance: f32,
    /// A body or site the target rides on: `target` and the `RandomizeTarget` ranges are then in its frame (from
    /// its origin, along its axes), and the target moves and turns with it through the episode (a plate a cube
    /// goes onto, wherever the plate starts or is pushed to). None: a point in the world.
    #[reflect(default)]
    pub relative_to: Option<String>,
}

/// A goal on a joint's coordinate: joint `joint` must come within `tolerance` of `target`, in the joint's units
/// (radians for a revolute joint, metres for a prismatic one; 0 is the authored pose, as `JointPosition` reads it):
/// a door opened to 60°, a drawer pulled 10 cm out, a button pressed in. Success is every goal, of every kind,
/// holding.
#[derive(Component, Reflect, Clone, Debug)]
#[reflect(Component)]
pub struct JointGoal {
    /// Unique name (among all goals) sensors refer to.
    pub name: String,
    /// Revolute or prismatic joint whose coordinate must reach the target.
    pub joint: String,
    /// Target coordinate, before reset randomisation.
    pub target: f32,
    /// Largest difference from the target that counts as reached (joint units).
    pub tolerance: f32,
    /// Range the target is drawn from, uniformly, at each reset; none keeps `target`.
    #[reflect(default)]
    pub randomize: Option<Range>,
}

/// A goal on a body's orientation: the body's `axis` (in its own frame) must point within `tolerance` radians of
/// `direction` (in the world): a block stood on end, a bottle laid on its side, a lid turned over. Two on one body,
/// on different axes, pin its whole orientation. Success is every goal, of every kind, holding.
#[derive(Component, Reflect, Clone, Debug)]
#[reflect(Component)]
pub struct AxisGoal {
    /// Unique name (among all goals) sensors refer to.
    pub name: String,
    /// The body (a `Dynamic` one) whose axis must turn.
    pub body: String,
    /// The axis, in the body's frame (any length but 0: only its direction counts).
    pub axis: Vec3,
    /// Where the axis must point, in the world (any length but 0), before reset randomisation.
    pub direction: Vec3,
    /// Largest angle between the axis and the direction that counts as reached (radians, below π).
    pub tolerance: f32,
    /// Range of a turn about the world's z axis (radians) drawn uniformly at each reset and applied to `direction`:
    /// the block must fall toward a heading that changes each episode. None keeps `direction`.
    #[reflect(default)]
    pub randomize_yaw: Option<Range>,
}

/// Reset randomisation of the body on the same entity: each given range replaces that coordinate of the initial
/// pose with a uniform draw (world frame; yaw about z, applied on top of the authored rotation).
/// `min_distance_from` keeps the body's origin away from bodies earlier in the scene (redrawn until so, at most 64
/// times; loading refuses a rule the redraws often miss): two cubes never start inside each other. On the root of
/// a joint tree (a body that is no joint's child), the draw moves every body joined to it by the same rigid motion
/// (the root's shift, and its yaw about the root's origin), so each joint starts at its authored angle; loading
/// refuses one on any other body of a tree, a second in one tree, and one whose tree holds a body besides its root
/// that is not Dynamic (a fixed or kinematic root may carry dynamic bodies).
#[derive(Component, Reflect, Clone, Debug, Default)]
#[reflect(Component)]
pub struct RandomizePose {
    /// Range of x.
    #[reflect(default)]
    pub x: Option<Range>,
    /// Range of y.
    #[reflect(default)]
    pub y: Option<Range>,
    /// Range of z.
    #[reflect(default)]
    pub z: Option<Range>,
    /// Range of the added yaw (radians).
    #[reflect(default)]
    pub yaw: Option<Range>,
    /// `(body, distance)` pairs: start at least `distance` from each such body (defined earlier in the scene).
    #[reflect(default)]
    pub min_distance_from: Vec<(String, f32)>,
}

/// Reset randomisation of the goal on the same entity: each given range replaces that target coordinate with a
/// uniform draw. `min_distance_from` keeps the target away from frames' initial positions and from the targets of
/// goals earlier in the scene (redrawn until so, at most 64 times; loading refuses a rule the redraws often miss).
#[derive(Component, Reflect, Clone, Debug, Default)]
#[reflect(Component)]
pub struct RandomizeTarget {
    /// Range of x.
    #[reflect(default)]
    pub x: Option<Range>,
    /// Range of y.
    #[reflect(default)]
    pub y: Option<Range>,
    /// Range of z.
    #[reflect(default)]
    pub z: Option<Range>,
    /// `(name, distance)` pairs: the target starts at least `distance` from each named frame's initial position
    /// (a body or site) or earlier goal's target.
    #[reflect(default)]
    pub min_distance_from: Vec<(String, f32)>,
}

/// Authored motion of the `Kinematic` body on the same entity, from where its episode starts (its authored pose, or
/// the one its `RandomizePose` drew), where it is at reset: a spin about its origin and a sway of its origin, each
/// optional, both bounded (the body never runs away), restarting at every reset. Time is the episode's: control
/// steps × `control_dt`, advanced by each physics step, so an episode's motion is the same whenever it is replayed.
/// Before each physics step the body is given the pose its motion has at the step's end, and the step moves it
/// there at the velocity that takes it there, which contacts see: a cube on a swaying platform rides along by
/// friction.
#[derive(Component, Reflect, Clone, Debug, Default, PartialEq)]
#[reflect(Component)]
pub struct KinematicMotion {
    /// Constant angular velocity (rad/s, world axes) about the body's origin: a rotating paddle or obstacle (what
    /// rests on a spinning surface creeps outward).
    #[reflect(default)]
    pub spin: Option<Vec3>,
    /// Back-and-forth motion of the body's origin: a moving platform, a target that moves.
    #[reflect(default)]
    pub sway: Option<Sway>,
}

/// A sway: the body's origin at time `t` is its start plus `amplitude * (sin(2π t / period + phase) - sin(phase))`,
/// back and forth along a straight stroke `2 * amplitude` long. The body is at its start at `t = 0`, where every
/// check of the scene sees it; with phase 0 that is the stroke's middle, with -π/2 one end (where it starts at
/// rest, toward `+amplitude`), in general `-amplitude * sin(phase)` from the middle.
#[derive(Reflect, Clone, Copy, Debug, PartialEq)]
pub struct Sway {
    /// Half the stroke, world frame (m): the largest offset from the stroke's middle.
    pub amplitude: Vec3,
    /// Seconds per back-and-forth.
    pub period: f32,
    /// Where in its stroke the episode begins (radians; 0, the default, is the middle, moving toward `+amplitude`;
    /// -π/2 the `-amplitude` end, at rest).
    #[reflect(default)]
    pub phase: f32,
}

/// Registers every authoring type, so scene files can name them.
pub fn register_authoring_types(registry: &mut bevy::reflect::TypeRegistry) {
    registry.register::<TaskSettings>();
    registry.register::<Body>();
    registry.register::<Collider>();
    registry.register::<Joint>();
    registry.register::<Site>();
    registry.register::<ActionSpace>();
    registry.register::<ObservationSpace>();
    registry.register::<Goal>();
    registry.register::<JointGoal>();
    registry.register::<AxisGoal>();
    registry.register::<RandomizePose>();
    registry.register::<RandomizeTarget>();
    registry.register::<KinematicMotion>();
}
