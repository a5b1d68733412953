//! What the envs look like: a lit PBR mesh for every collider shape (table, robot links, objects), translucent
//! markers at the goal targets, and transforms copied from each env's Rapier world every frame.
//!
//! Task scenes are z-up; Bevy is y-up. Each env's visuals hang under a root entity that turns one into the other
//! and places the env in the grid, so body transforms are copied from Rapier unchanged.

use std::f32::consts::FRAC_PI_2;

use bevy::asset::RenderAssetUsages;
use bevy::mesh::PrimitiveTopology;
use bevy::prelude::*;
use bevy_rapier3d::rapier::parry::transformation::convex_hull;
use qamlab_sim::TaskScene;
use qamlab_sim::authoring::{BodyKind, JointKind, Shape};
use qamlab_sim::env::{EnvState, EnvWorld};

use super::ViewTask;
use super::layout::{self, Bounds, Grid};
use super::panel::ViewCommand;
use super::stepping::{EnvEntities, EnvGeneration, SteppingSet};

/// Rotation taking the scenes' z-up frame to Bevy's y-up frame: (x, y, z) -> (x, z, -y).
pub const Z_UP_TO_Y_UP: Quat = Quat::from_xyzw(
    -std::f32::consts::FRAC_1_SQRT_2,
    0.0,
    0.0,
    std::f32::consts::FRAC_1_SQRT_2,
);

/// Colour of fixed bodies (the table).
pub const TABLE_COLOR: Color = Color::srgb(0.62, 0.47, 0.32);
/// Colour of robot links (bodies moved by joints).
pub const ROBOT_COLOR: Color = Color::srgb(0.95, 0.42, 0.08);
/// Colours of free objects, in body order.
pub const OBJECT_COLORS: [Color; 4] = [
    Color::srgb(0.85, 0.12, 0.15),
    Color::srgb(0.15, 0.35, 0.9),
    Color::srgb(0.2, 0.75, 0.3),
    Color::srgb(0.9, 0.8, 0.15),
];
/// Colour of a goal marker whose goal holds.
const GOAL_MET_COLOR: Color = Color::srgba(0.2, 1.0, 0.35, 0.45);
/// Colour of the arrow along a body's axis now (an axis goal's): a dark slate, unlike any marker or body, and lighter
/// than the window's background.
const AXIS_NOW_COLOR: Color = Color::srgb(0.26, 0.28, 0.4);
/// Colour of the floor.
const FLOOR_COLOR: Color = Color::srgb(0.2, 0.21, 0.23);
/// Colour of the rods drawn along joints (the robot's structure between its bodies).
const ROD_COLOR: Color = Color::srgb(0.55, 0.57, 0.6);
/// Radius of those rods.
const ROD_RADIUS: f32 = 0.008;

/// Whether every env is shown (in a grid) or env 0 alone.
#[derive(Resource, Debug)]
pub struct ShownEnvs {
    /// All envs in a grid.
    pub grid: bool,
}

/// What the camera frames: the working volumes of the shown envs (see [`layout::working_volume`]), in Bevy
/// coordinates (changed only when they move, so a reset leaves the camera where the user put it).
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub struct SceneFrame(pub Bounds);

impl Default for SceneFrame {
    fn default() -> Self {
        Self(Bounds::new(Vec3::splat(-0.3), Vec3::splat(0.3)))
    }
}

/// Root of one env's visuals, or the floor: what a rebuild removes.
#[derive(Component, Debug)]
pub struct EnvVisualRoot;

/// The root of env `env`'s visuals: it places the env in the grid and turns the scene's z-up frame to Bevy's.
#[derive(Component, Debug)]
pub struct EnvRoot {
    /// Env index.
    pub env: usize,
}

/// A mesh following scene body `body` of env `env`; `local` places the mesh in the body frame.
#[derive(Component, Debug)]
pub struct BodyVisual {
    /// Env index.
    pub env: usize,
    /// Index into the scene's bodies.
    pub body: usize,
    /// Mesh pose in the body frame (collider offset, axis turn of capsules and cylinders).
    pub local: Transform,
}

/// A thin rod between the origins of two jointed bodies of env `env`, so a robot's links read as one machine.
#[derive(Component, Debug)]
pub struct RodVisual {
    /// Env index.
    pub env: usize,
    /// Parent body index.
    pub from: usize,
    /// Child body index.
    pub to: usize,
}

/// A translucent marker at goal `goal`'s target in env `env`.
#[derive(Component, Debug)]
pub struct GoalVisual {
    /// Env index.
    pub env: usize,
    /// Index into the scene's goals.
    pub goal: usize,
    /// Marker pose relative to the target (minus the goal frame's offset).
    pub local: Transform,
    /// Material while the goal does not hold.
    pub pending: Handle<StandardMaterial>,
}

/// A translucent copy of (a piece of) joint goal `goal`'s moving body in env `env`, where it is when the joint's
/// coordinate is at this episode's target (the door at its goal angle with its welded handle, the drawer pulled out).
#[derive(Component, Debug)]
pub struct JointGoalVisual {
    /// Env index.
    pub env: usize,
    /// Index into the scene's joint goals.
    pub goal: usize,
    /// The body copied: the one the joint moves, or one welded to it.
    pub body: usize,
    /// Mesh pose in the body frame, a little enlarged (see [`GOAL_COPY_SCALE`]).
    pub local: Transform,
    /// Material while the goal does not hold.
    pub pending: Handle<StandardMaterial>,
}

/// An arrow of axis goal `goal` in env `env`, from its body's centre: the target direction (`current` false), or
/// where the body's axis points now (`current` true, thinner and dark), so the gap between the two reads at a glance.
/// The two are as long as each other, and longer for each later axis goal on the same body, so pairs read by length.
#[derive(Component, Debug)]
pub struct AxisGoalVisual {
    /// Env index.
    pub env: usize,
    /// Index into the scene's axis goals.
    pub goal: usize,
    /// Whether this arrow follows the body's axis rather than the target direction.
    pub current: bool,
    /// Material while the goal does not hold (the target arrow's; the current one's never changes).
    pub pending: Handle<StandardMaterial>,
}

/// The material of a met goal, shared by every marker.
#[derive(Resource, Debug)]
struct GoalMetMaterial(Handle<StandardMaterial>);

/// Builds the visuals of the envs and keeps them in step with physics.
pub struct RenderSyncPlugin {
    /// Start with every env shown in a grid.
    pub grid: bool,
}

impl Plugin for RenderSyncPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ShownEnvs { grid: self.grid })
            .init_resource::<SceneFrame>()
            .add_message::<ViewCommand>()
            .add_systems(Startup, goal_met_material)
            .add_systems(
                Update,
                (
                    toggle_grid,
                    rebuild_visuals,
                    sync_bodies,
                    sync_rods,
                    sync_goals,
                    sync_joint_goals,
                    sync_axis_goals,
                )
                    .chain()
                    .after(SteppingSet::Step),
            );
    }
}

fn goal_met_material(mut commands: Commands, mut materials: ResMut<Assets<StandardMaterial>>) {
    let material = materials.add(translucent(GOAL_MET_COLOR));
    commands.insert_resource(GoalMetMaterial(material));
}

/// Applies the show-one / show-all command (not to one env: its grid is that env, as the panel's disabled button
/// says; G is ignored too).
fn toggle_grid(
    mut commands: MessageReader<ViewCommand>,
    mut shown: ResMut<ShownEnvs>,
    entities: Res<EnvEntities>,
) {
    for command in commands.read() {
        if *command == ViewCommand::ToggleGrid && (shown.grid || entities.0.len() > 1) {
            shown.grid = !shown.grid;
        }
    }
}

/// Rebuilds every visual when the envs or the shown set change.
#[allow(clippy::too_many_arguments)]
fn rebuild_visuals(
    mut commands: Commands,
    generation: Res<EnvGeneration>,
    shown: Res<ShownEnvs>,
    task: Res<ViewTask>,
    entities: Res<EnvEntities>,
    old: Query<Entity, With<EnvVisualRoot>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    mut frame: ResMut<SceneFrame>,
) {
    if !(generation.is_changed() || shown.is_changed()) {
        return;
    }
    for entity in &old {
        commands.entity(entity).despawn();
    }
    let scene = &task.scene;
    let looks = BodyLooks::new(scene, &mut meshes, &mut materials);
    let shown_envs = if shown.grid { entities.0.len() } else { 1 };
    let grid = Grid::new(shown_envs, scene);
    for env in 0..shown_envs {
        let root = commands
            .spawn((
                EnvVisualRoot,
                EnvRoot { env },
                Transform::from_rotation(Z_UP_TO_Y_UP)
                    .with_translation(Z_UP_TO_Y_UP * grid.cell(env).extend(0.0)),
                Visibility::default(),
            ))
            .id();
        spawn_env_visuals(&mut commands, root, env, scene, &looks);
    }
    let floor_z = layout::floor_height(scene);
    let floor_size = grid.spacing * grid.cols.max(grid.rows) as f32 + 4.0;
    commands.spawn((
        EnvVisualRoot,
        Mesh3d(meshes.add(Plane3d::new(Vec3::Z, Vec2::splat(floor_size / 2.0)))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: FLOOR_COLOR,
            perceptual_roughness: 0.9,
            ..default()
        })),
        Transform::from_rotation(Z_UP_TO_Y_UP)
            .with_translation(Z_UP_TO_Y_UP * Vec3::new(0.0, 0.0, floor_z)),
    ));
    let work = grid.framed(shown_envs, layout::working_volume(scene));
    frame.set_if_neq(SceneFrame(work.rotated(Z_UP_TO_Y_UP)));
}

/// How one body with a collider looks.
struct BodyLook {
    mesh: Handle<Mesh>,
    /// Mesh pose in the body frame.
    local: Transform,
    material: Handle<StandardMaterial>,
}

/// The meshes and materials of a scene's bodies, built once per rebuild and shared by every env.
struct BodyLooks {
    /// Per body, if it has a collider.
    bodies: Vec<Option<BodyLook>>,
    /// Joints drawn as rods: (parent, child) bodies whose origins lie apart.
    rods: Vec<(usize, usize)>,
    /// Unit-length rod mesh (along y) and its material.
    rod: (Handle<Mesh>, Handle<StandardMaterial>),
    /// Per goal: the translucent material of its marker.
    goal_materials: Vec<Handle<StandardMaterial>>,
    /// Per goal drawn as a sphere of its tolerance ([`GoalMarker::Sphere`]), that sphere.
    goal_spheres: Vec<Option<Handle<Mesh>>>,
    /// Per joint goal: the translucent material of its body's copy.
    joint_goal_materials: Vec<Handle<StandardMaterial>>,
    /// Per axis goal: its two arrows' meshes (target, current) and the target's material.
    axis_goal_arrows: Vec<(Handle<Mesh>, Handle<Mesh>, Handle<StandardMaterial>)>,
    /// The material of every arrow along a body's axis now: dark, apart from every marker's colour.
    axis_now: Handle<StandardMaterial>,
    /// The legs drawn under a table (unit cube mesh, its material, and each leg's place and size).
    legs: (Handle<Mesh>, Handle<StandardMaterial>, Vec<Transform>),
}

impl BodyLooks {
    fn new(
        scene: &TaskScene,
        meshes: &mut Assets<Mesh>,
        materials: &mut Assets<StandardMaterial>,
    ) -> Self {
        let colors = body_colors(scene);
        let bodies = scene
            .bodies
            .iter()
            .zip(&colors)
            .map(|(def, &color)| {
                let collider = def.collider.as_ref()?;
                let (mesh, turn) = shape_mesh(&collider.shape);
                let material = materials.add(StandardMaterial {
                    base_color: color,
                    perceptual_roughness: if def.body.kind == BodyKind::Fixed {
                        0.8
                    } else {
                        0.45
                    },
                    metallic: if color == ROBOT_COLOR { 0.3 } else { 0.0 },
                    ..default()
                });
                let local = Transform::from_translation(collider.offset).with_rotation(turn);
                Some(BodyLook {
                    mesh: meshes.add(mesh),
                    local,
                    material,
                })
            })
            .collect();
        let goal_materials = scene
            .goals
            .iter()
            .map(|g| {
                materials.add(translucent(
                    marker_color(colors[g.frame.body]).with_alpha(0.35),
                ))
            })
            .collect();
        let joint_goal_materials = scene
            .joint_goals
            .iter()
            .map(|g| {
                let moved = joint_goal_body(scene, g.joint);
                materials.add(translucent(marker_color(colors[moved]).with_alpha(0.35)))
            })
            .collect();
        let axis_goal_arrows = scene
            .axis_goals
            .iter()
            .enumerate()
            .map(|(k, g)| {
                let length = axis_arrow_length(scene, k);
                (
                    meshes.add(arrow_mesh(length, AXIS_ARROW_RADIUS)),
                    meshes.add(arrow_mesh(length, AXIS_ARROW_RADIUS * 0.5)),
                    materials.add(translucent(marker_color(colors[g.body]).with_alpha(0.5))),
                )
            })
            .collect();
        let goal_spheres = (0..scene.goals.len())
            .map(|g| match goal_marker(scene, g) {
                GoalMarker::Sphere(radius) => Some(meshes.add(Sphere::new(radius))),
                GoalMarker::BodyCopy => None,
            })
            .collect();
        let legs = (
            meshes.add(Cuboid::from_size(Vec3::ONE)),
            materials.add(StandardMaterial {
                base_color: TABLE_COLOR,
                perceptual_roughness: 0.8,
                ..default()
            }),
            layout::table_legs(scene)
                .iter()
                .map(|leg| Transform::from_translation(leg.center()).with_scale(leg.size()))
                .collect(),
        );
        // Not along a weld to a piece with a shape of its own: that piece is drawn, in its parent's colour, and a rod
        // from origin to origin would cross it (a rail welded to a beam) as if it were a part.
        let rods = scene
            .joints
            .iter()
            .filter(|j| {
                let (a, b) = (&scene.bodies[j.parent], &scene.bodies[j.child]);
                let drawn_weld = j.joint.kind == JointKind::Fixed
                    && a.collider.is_some()
                    && b.collider.is_some();
                !drawn_weld && a.body.translation.distance(b.body.translation) > 0.03
            })
            .map(|j| (j.parent, j.child))
            .collect();
        let rod = (
            meshes.add(Cylinder::new(ROD_RADIUS, 1.0)),
            materials.add(StandardMaterial {
                base_color: ROD_COLOR,
                metallic: 0.6,
                perceptual_roughness: 0.35,
                ..default()
            }),
        );
        Self {
            bodies,
            rods,
            rod,
            goal_materials,
            goal_spheres,
            joint_goal_materials,
            axis_goal_arrows,
            axis_now: materials.add(StandardMaterial {
                base_color: AXIS_NOW_COLOR,
                perceptual_roughness: 0.5,
                ..default()
            }),
            legs,
        }
    }
}

/// Per body, its colour: wood for fixed bodies, orange for the robot's links ([`robot_links`]), and the object
/// colours in file order for the rest, a piece welded by `Fixed` joints to an earlier object taking that object's
/// (a door's handle is the door's colour).
fn body_colors(scene: &TaskScene) -> Vec<Color> {
    let robot = robot_links(scene);
    let mut objects = 0;
    let mut colors: Vec<Color> = Vec::with_capacity(scene.bodies.len());
    for (b, def) in scene.bodies.iter().enumerate() {
        let first_of_piece = qamlab_sim::scene::welded_group(&scene.joints, b)
            .into_iter()
            .min()
            .unwrap_or(b);
        let color = if def.body.kind == BodyKind::Fixed {
            TABLE_COLOR
        } else if robot[b] {
            ROBOT_COLOR
        } else if first_of_piece < b && !robot[first_of_piece] {
            colors[first_of_piece]
        } else {
            objects += 1;
            OBJECT_COLORS[(objects - 1) % OBJECT_COLORS.len()]
        };
        colors.push(color);
    }
    colors
}

/// Per body, whether it is one of the robot's links: the child of a joint an actuator drives, or of a joint whose
/// parent is such a link (a hand welded to an arm). A body hinged to the world by a joint nothing drives (a door, a
/// drawer) is an object the robot works on, coloured as one.
fn robot_links(scene: &TaskScene) -> Vec<bool> {
    let mut robot = vec![false; scene.bodies.len()];
    for a in &scene.actuators {
        for &j in &a.joints {
            robot[scene.joints[j].child] = true;
        }
    }
    // Down the joint trees, whatever order the file lists their joints in.
    let mut grew = true;
    while grew {
        grew = false;
        for j in &scene.joints {
            if robot[j.parent] && !robot[j.child] {
                robot[j.child] = true;
                grew = true;
            }
        }
    }
    robot
}

/// The colour of a marker of a goal on a body of colour `body` while the goal does not hold: the body's, unless it
/// is a green near [`GOAL_MET_COLOR`]'s (the third object's), which would look met already; then a pale grey.
fn marker_color(body: Color) -> Color {
    let (hue, met_hue) = (Hsla::from(body).hue, Hsla::from(GOAL_MET_COLOR).hue);
    let apart = (hue - met_hue).abs().min(360.0 - (hue - met_hue).abs());
    if apart < 45.0 && Hsla::from(body).saturation > 0.3 {
        MARKER_GREY
    } else {
        body
    }
}

/// The colour of the markers of goals on green bodies (see [`marker_color`]).
const MARKER_GREY: Color = Color::srgb(0.86, 0.86, 0.9);

fn translucent(color: Color) -> StandardMaterial {
    StandardMaterial {
        base_color: color,
        alpha_mode: AlphaMode::Blend,
        perceptual_roughness: 0.6,
        ..default()
    }
}

/// Spawns one env's body meshes and goal markers under `root`.
fn spawn_env_visuals(
    commands: &mut Commands,
    root: Entity,
    env: usize,
    scene: &TaskScene,
    looks: &BodyLooks,
) {
    for (body, look) in looks.bodies.iter().enumerate() {
        let Some(BodyLook {
            mesh,
            local,
            material,
        }) = look
        else {
            continue;
        };
        commands.spawn((
            BodyVisual {
                env,
                body,
                local: *local,
            },
            Mesh3d(mesh.clone()),
            MeshMaterial3d(material.clone()),
            *local,
            ChildOf(root),
        ));
    }
    let (leg_mesh, leg_material, legs) = &looks.legs;
    for leg in legs {
        commands.spawn((
            Mesh3d(leg_mesh.clone()),
            MeshMaterial3d(leg_material.clone()),
            *leg,
            ChildOf(root),
        ));
    }
    for &(from, to) in &looks.rods {
        commands.spawn((
            RodVisual { env, from, to },
            Mesh3d(looks.rod.0.clone()),
            MeshMaterial3d(looks.rod.1.clone()),
            Transform::default(),
            ChildOf(root),
        ));
    }
    for (goal, def) in scene.goals.iter().enumerate() {
        let (mesh, local) = match (&looks.goal_spheres[goal], &looks.bodies[def.frame.body]) {
            (Some(sphere), _) => (sphere.clone(), Transform::IDENTITY),
            // A little larger than the body, about its goal point: a body resting on its target would otherwise
            // share every face with the copy, which then flickers through it in stripes.
            (None, Some(BodyLook { mesh, local, .. })) => (
                mesh.clone(),
                Transform::from_scale(Vec3::splat(GOAL_COPY_SCALE))
                    * Transform::from_translation(-def.frame.offset)
                    * *local,
            ),
            // A body without a collider has a sphere (see `goal_marker`).
            (None, None) => continue,
        };
        let pending = looks.goal_materials[goal].clone();
        commands.spawn((
            GoalVisual {
                env,
                goal,
                local,
                pending: pending.clone(),
            },
            Mesh3d(mesh),
            MeshMaterial3d(pending),
            local,
            // A marker, not a thing: it casts no shadow on the scene.
            bevy::light::NotShadowCaster,
            ChildOf(root),
        ));
    }
    for (goal, def) in scene.joint_goals.iter().enumerate() {
        // The moved body and what is welded to it (a door's handle), each with a collider to copy.
        let moved = joint_goal_body(scene, def.joint);
        for body in qamlab_sim::scene::welded_group(&scene.joints, moved) {
            let Some(BodyLook { mesh, local, .. }) = &looks.bodies[body] else {
                continue;
            };
            let local = Transform::from_scale(Vec3::splat(GOAL_COPY_SCALE)) * *local;
            let pending = looks.joint_goal_materials[goal].clone();
            commands.spawn((
                JointGoalVisual {
                    env,
                    goal,
                    body,
                    local,
                    pending: pending.clone(),
                },
                Mesh3d(mesh.clone()),
                MeshMaterial3d(pending),
                local,
                bevy::light::NotShadowCaster,
                ChildOf(root),
            ));
        }
    }
    for (goal, (target_arrow, current_arrow, pending)) in looks.axis_goal_arrows.iter().enumerate()
    {
        for (current, mesh, material) in [
            (false, target_arrow, pending),
            (true, current_arrow, &looks.axis_now),
        ] {
            commands.spawn((
                AxisGoalVisual {
                    env,
                    goal,
                    current,
                    pending: material.clone(),
                },
                Mesh3d(mesh.clone()),
                MeshMaterial3d(material.clone()),
                Transform::default(),
                bevy::light::NotShadowCaster,
                ChildOf(root),
            ));
        }
    }
}

/// How far an axis goal's target arrow reaches past its body's bounding sphere (m).
const AXIS_ARROW_OVERHANG: f32 = 0.08;
/// The radius of an axis goal's target arrow's shaft (m).
const AXIS_ARROW_RADIUS: f32 = 0.006;

/// How long axis goal `k`'s two arrows are, from the centre of its body's collider (where they start): past the
/// collider's bounding sphere by [`axis_arrow_overhangs`] overhangs.
pub fn axis_arrow_length(scene: &TaskScene, k: usize) -> f32 {
    let body = scene.axis_goals[k].body;
    let reach = scene.bodies[body]
        .collider
        .as_ref()
        .map_or(0.0, |c| bounding_radius(&c.shape));
    reach + AXIS_ARROW_OVERHANG * axis_arrow_overhangs(scene, k)
}

/// How many overhangs past its body axis goal `k`'s two arrows reach: the goals on one body get one more for each
/// later one, so each goal's target and axis arrows pair up by length, and every arrow clears the body.
fn axis_arrow_overhangs(scene: &TaskScene, k: usize) -> f32 {
    let body = scene.axis_goals[k].body;
    let later = scene.axis_goals[k + 1..]
        .iter()
        .filter(|g| g.body == body)
        .count();
    (1 + later) as f32
}

/// An arrow `length` long from the origin along +y (Bevy's round shapes' axis): a shaft of radius `radius` and a
/// head a fifth of the length, three times as wide.
fn arrow_mesh(length: f32, radius: f32) -> Mesh {
    let head = length * 0.2;
    let shaft = Mesh::from(Cylinder::new(radius, length - head))
        .translated_by(Vec3::Y * (length - head) / 2.0);
    let tip = Mesh::from(Cone {
        radius: radius * 3.0,
        height: head,
    })
    .translated_by(Vec3::Y * (length - head / 2.0));
    let mut arrow = shaft;
    arrow
        .merge(&tip)
        .expect("a cylinder's and a cone's meshes have the same attributes");
    arrow
}

/// The body a joint goal's marker copies: the joint's child, unless only its parent moves.
fn joint_goal_body(scene: &TaskScene, joint: usize) -> usize {
    let j = &scene.joints[joint];
    if scene.bodies[j.child].body.kind == BodyKind::Dynamic {
        j.child
    } else {
        j.parent
    }
}

/// How much larger than its body a goal's copy is drawn.
const GOAL_COPY_SCALE: f32 = 1.12;

/// How a goal's marker is drawn at its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GoalMarker {
    /// A copy of the goal's body, a little larger: where the body goes (a cube onto its place).
    BodyCopy,
    /// A sphere of this radius, the goal's tolerance: where the goal's point must come.
    Sphere(f32),
}

/// A body fills its goal's tolerance well enough to stand for it while the tolerance's sphere is no more than this
/// many times the body's own bounding sphere (a 4 cm cube, 3.5 cm to a corner, in a 4 cm tolerance).
const BODY_FILLS_TOLERANCE: f32 = 1.5;

/// How goal `goal` of `scene` is drawn: a copy of its body where the body about fills the tolerance, else the
/// sphere of the tolerance itself: a goal on a point off the body's origin (a pendulum's tip: a copy of the
/// whole body would float away from where it could be), on a body without a collider, or on a body much smaller
/// than its tolerance (antmaze's 11 cm torso must come within 30 cm of its target: a torso-sized copy would make
/// the goal look far stricter than it is).
pub fn goal_marker(scene: &TaskScene, goal: usize) -> GoalMarker {
    let def = &scene.goals[goal];
    let tolerance = def.goal.tolerance;
    let collider = scene.bodies[def.frame.body].collider.as_ref();
    match collider {
        Some(collider)
            if def.frame.offset == Vec3::ZERO
                && tolerance
                    <= BODY_FILLS_TOLERANCE
                        * (collider.offset.length() + bounding_radius(&collider.shape)) =>
        {
            GoalMarker::BodyCopy
        }
        _ => GoalMarker::Sphere(tolerance),
    }
}

/// The radius of the smallest sphere about a shape's centre holding it.
fn bounding_radius(shape: &Shape) -> f32 {
    match shape {
        Shape::Cuboid { half_extents } => half_extents.length(),
        Shape::Ball { radius } => *radius,
        Shape::Capsule {
            half_height,
            radius,
        } => half_height + radius,
        Shape::Cylinder {
            half_height,
            radius,
        } => half_height.hypot(*radius),
        Shape::ConvexHull { points } => points.iter().map(|p| p.length()).fold(0.0, f32::max),
    }
}

/// Copies every shown body's pose from its env's Rapier world.
fn sync_bodies(
    entities: Res<EnvEntities>,
    envs: Query<&EnvWorld>,
    mut visuals: Query<(&BodyVisual, &mut Transform)>,
) {
    for (visual, mut transform) in &mut visuals {
        let Some(world) = entities.0.get(visual.env).and_then(|&e| envs.get(e).ok()) else {
            continue;
        };
        let pose = world.0.pose(visual.body);
        *transform = Transform::from_translation(pose.translation).with_rotation(pose.rotation)
            * visual.local;
    }
}

/// Stretches each rod between its two bodies' origins.
fn sync_rods(
    entities: Res<EnvEntities>,
    envs: Query<&EnvWorld>,
    mut rods: Query<(&RodVisual, &mut Transform)>,
) {
    for (rod, mut transform) in &mut rods {
        let Some(world) = entities.0.get(rod.env).and_then(|&e| envs.get(e).ok()) else {
            continue;
        };
        let (a, b) = (
            world.0.pose(rod.from).translation,
            world.0.pose(rod.to).translation,
        );
        let length = a.distance(b);
        let direction = if length > 1e-6 {
            (b - a) / length
        } else {
            Vec3::Z
        };
        *transform = Transform {
            translation: (a + b) / 2.0,
            rotation: Quat::from_rotation_arc(Vec3::Y, direction),
            scale: Vec3::new(1.0, length, 1.0),
        };
    }
}

/// Moves the goal markers to this episode's targets and colours the ones that hold.
fn sync_goals(
    entities: Res<EnvEntities>,
    envs: Query<(&EnvWorld, &EnvState)>,
    task: Res<ViewTask>,
    met: Res<GoalMetMaterial>,
    mut markers: Query<(
        &GoalVisual,
        &mut Transform,
        &mut MeshMaterial3d<StandardMaterial>,
    )>,
) {
    for (marker, mut transform, mut material) in &mut markers {
        let Some((world, state)) = entities.0.get(marker.env).and_then(|&e| envs.get(e).ok())
        else {
            continue;
        };
        let Some(target) = state.targets.get(marker.goal) else {
            continue;
        };
        *transform = Transform::from_translation(*target) * marker.local;
        let goal = &task.scene.goals[marker.goal];
        let holds = world.0.frame_position(goal.frame).distance(*target) <= goal.goal.tolerance;
        let wanted = if holds { &met.0 } else { &marker.pending };
        if material.0 != *wanted {
            material.0 = wanted.clone();
        }
    }
}

/// Moves each joint goal's body copy to where the body is with its joint at this episode's target (about the
/// other body's pose now) and colours the ones that hold.
fn sync_joint_goals(
    entities: Res<EnvEntities>,
    envs: Query<(&EnvWorld, &EnvState)>,
    task: Res<ViewTask>,
    met: Res<GoalMetMaterial>,
    mut markers: Query<(
        &JointGoalVisual,
        &mut Transform,
        &mut MeshMaterial3d<StandardMaterial>,
    )>,
) {
    let scene = &task.scene;
    for (marker, mut transform, mut material) in &mut markers {
        let Some((world, state)) = entities.0.get(marker.env).and_then(|&e| envs.get(e).ok())
        else {
            continue;
        };
        let (Some(def), Some(&target)) = (
            scene.joint_goals.get(marker.goal),
            state.joint_targets.get(marker.goal),
        ) else {
            continue;
        };
        let joint = &scene.joints[def.joint];
        let moved = joint_goal_body(scene, def.joint);
        let at_target = if moved == joint.child {
            joint.child_pose_at(world.0.pose(joint.parent), target)
        } else {
            joint.parent_pose_at(world.0.pose(joint.child), target)
        };
        // A welded piece keeps its place on the moved body.
        let pose = at_target * world.0.pose(moved).inv_mul(&world.0.pose(marker.body));
        *transform = Transform::from_translation(pose.translation).with_rotation(pose.rotation)
            * marker.local;
        let holds = qamlab_sim::env::joint_goal_holds(scene, &world.0, def, target);
        let wanted = if holds { &met.0 } else { &marker.pending };
        if material.0 != *wanted {
            material.0 = wanted.clone();
        }
    }
}

/// Points each axis goal's arrows from its body's centre along this episode's target direction and along the
/// body's axis now, and colours the target arrows of the goals that hold.
fn sync_axis_goals(
    entities: Res<EnvEntities>,
    envs: Query<(&EnvWorld, &EnvState)>,
    task: Res<ViewTask>,
    met: Res<GoalMetMaterial>,
    mut arrows: Query<(
        &AxisGoalVisual,
        &mut Transform,
        &mut MeshMaterial3d<StandardMaterial>,
    )>,
) {
    let scene = &task.scene;
    for (arrow, mut transform, mut material) in &mut arrows {
        let Some((world, state)) = entities.0.get(arrow.env).and_then(|&e| envs.get(e).ok()) else {
            continue;
        };
        let (Some(def), Some(&target)) = (
            scene.axis_goals.get(arrow.goal),
            state.axis_targets.get(arrow.goal),
        ) else {
            continue;
        };
        let pose = world.0.pose(def.body);
        let centre = scene.bodies[def.body]
            .collider
            .as_ref()
            .map_or(Vec3::ZERO, |c| c.offset);
        let axis = pose.rotation * def.axis;
        let along = if arrow.current { axis } else { target };
        *transform = Transform::from_translation(pose.transform_point(centre))
            .with_rotation(Quat::from_rotation_arc(Vec3::Y, along));
        if !arrow.current {
            let holds = qamlab_sim::env::axis_goal_holds(&world.0, def, target);
            let wanted = if holds { &met.0 } else { &arrow.pending };
            if material.0 != *wanted {
                material.0 = wanted.clone();
            }
        }
    }
}

/// A mesh for a collider shape, and the turn that aligns it with the shape's axis (Bevy's round shapes run along
/// y, the scenes' along z).
pub fn shape_mesh(shape: &Shape) -> (Mesh, Quat) {
    let along_z = Quat::from_rotation_x(FRAC_PI_2);
    match shape {
        Shape::Cuboid { half_extents } => (
            Mesh::from(Cuboid::from_size(*half_extents * 2.0)),
            Quat::IDENTITY,
        ),
        Shape::Ball { radius } => (Mesh::from(Sphere::new(*radius)), Quat::IDENTITY),
        Shape::Capsule {
            half_height,
            radius,
        } => (
            Mesh::from(Capsule3d::new(*radius, 2.0 * half_height)),
            along_z,
        ),
        Shape::Cylinder {
            half_height,
            radius,
        } => (
            Mesh::from(Cylinder::new(*radius, 2.0 * half_height)),
            along_z,
        ),
        Shape::ConvexHull { points } => (hull_mesh(points), Quat::IDENTITY),
    }
}

/// A flat-shaded mesh of the convex hull of `points`.
fn hull_mesh(points: &[Vec3]) -> Mesh {
    let (vertices, triangles) = convex_hull(points);
    let mut positions = Vec::with_capacity(triangles.len() * 3);
    let mut normals = Vec::with_capacity(triangles.len() * 3);
    for [a, b, c] in triangles {
        let (a, b, c) = (
            vertices[a as usize],
            vertices[b as usize],
            vertices[c as usize],
        );
        let normal = (b - a).cross(c - a).normalize_or_zero();
        for p in [a, b, c] {
            positions.push(p.to_array());
            normals.push(normal.to_array());
        }
    }
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
    .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, normals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy::camera::primitives::MeshAabb;

    #[test]
    fn the_grid_toggles_for_several_envs_but_not_for_one() {
        for (envs, grid_after_g) in [(1, false), (4, true)] {
            let mut app = App::new();
            app.add_message::<ViewCommand>()
                .insert_resource(ShownEnvs { grid: false })
                .insert_resource(EnvEntities(vec![Entity::PLACEHOLDER; envs]))
                .add_systems(Update, toggle_grid);
            app.world_mut().write_message(ViewCommand::ToggleGrid);
            app.update();
            assert_eq!(
                app.world().resource::<ShownEnvs>().grid,
                grid_after_g,
                "{envs} envs"
            );
        }
    }

    #[test]
    fn goal_markers_are_drawn_at_the_size_of_their_tolerance_where_the_body_is_much_smaller() {
        // antmaze's 11 cm torso must come within 30 cm of its target: the marker is that 30 cm sphere.
        let ant = qamlab_tasks::load_task("antmaze-umaze").unwrap().scene;
        assert_eq!(ant.goals[0].goal.tolerance, 0.3);
        assert_eq!(goal_marker(&ant, 0), GoalMarker::Sphere(0.3));
        let mut meshes = Assets::<Mesh>::default();
        let mut materials = Assets::<StandardMaterial>::default();
        let looks = BodyLooks::new(&ant, &mut meshes, &mut materials);
        let sphere = looks.goal_spheres[0].as_ref().expect("a sphere marker");
        let aabb = meshes.get(sphere).unwrap().compute_aabb().unwrap();
        // Its poles at the tolerance (the faceted equator a little inside).
        assert!(
            (aabb.half_extents.max_element() - 0.3).abs() < 1e-4,
            "{aabb:?}"
        );
        // A cube about fills its 4 cm tolerance: its copy shows where it goes.
        let cubes = qamlab_tasks::load_task("cube-double").unwrap().scene;
        assert_eq!(goal_marker(&cubes, 0), GoalMarker::BodyCopy);
        assert_eq!(goal_marker(&cubes, 1), GoalMarker::BodyCopy);
        // The pendulum's goal is its tip, a point off the pole's origin: the sphere of its tolerance.
        let pendulum = qamlab_sim::TaskScene::from_file(
            crate::checkout_dir().join("assets/tasks/examples/pendulum.scn.ron"),
        )
        .unwrap();
        assert_eq!(goal_marker(&pendulum, 0), GoalMarker::Sphere(0.1));
    }

    fn door() -> TaskScene {
        TaskScene::from_file(crate::checkout_dir().join("assets/tasks/examples/door.scn.ron"))
            .unwrap()
    }

    #[test]
    fn a_door_is_an_object_and_the_finger_pushing_it_a_robot_link() {
        // In the built-ins every jointed body is moved by an actuator or hangs from one: the rule colours them as
        // before.
        for task in ["cube-single", "cube-double", "antmaze-umaze"] {
            let scene = qamlab_tasks::load_task(task).unwrap().scene;
            let jointed: Vec<bool> = (0..scene.bodies.len())
                .map(|b| scene.joints.iter().any(|j| j.child == b))
                .collect();
            assert_eq!(robot_links(&scene), jointed, "{task}");
        }
        let scene = door();
        let robot = robot_links(&scene);
        let link = |name: &str| {
            robot[scene
                .bodies
                .iter()
                .position(|b| b.body.name == name)
                .unwrap()]
        };
        assert!(!link("door"), "the door's hinge is driven by nothing");
        assert!(link("carriage") && link("finger"));
        assert!(!link("post") && !link("mount"));
        // The handle welded to the door is the door's colour, the first object's.
        let colors = body_colors(&scene);
        let color = |name: &str| {
            colors[scene
                .bodies
                .iter()
                .position(|b| b.body.name == name)
                .unwrap()]
        };
        assert_eq!(color("door"), OBJECT_COLORS[0]);
        assert_eq!(color("handle"), OBJECT_COLORS[0]);
        assert_eq!(color("finger"), ROBOT_COLOR);
    }

    /// An app with one env (its world and state) of `scene`, the met material and `systems`; returns it, the env's
    /// entity, the met material and a pending one for markers to start with.
    fn marker_app(
        scene: &TaskScene,
        physics: qamlab_sim::physics::EnvPhysics,
        state: EnvState,
        systems: bevy::ecs::schedule::ScheduleConfigs<bevy::ecs::system::ScheduleSystem>,
    ) -> (
        App,
        Entity,
        Handle<StandardMaterial>,
        Handle<StandardMaterial>,
    ) {
        let mut app = App::new();
        let mut materials = Assets::<StandardMaterial>::default();
        let met = materials.add(translucent(GOAL_MET_COLOR));
        let pending = materials.add(translucent(Color::WHITE));
        let env = app.world_mut().spawn((EnvWorld(physics), state)).id();
        app.insert_resource(EnvEntities(vec![env]))
            .insert_resource(GoalMetMaterial(met.clone()))
            .insert_resource(crate::view::ViewTask {
                name: scene.settings.name.clone(),
                scene: scene.clone(),
                watch: None,
            })
            .add_systems(Update, systems);
        (app, env, met, pending)
    }

    #[test]
    fn a_joint_goal_is_drawn_as_its_body_where_the_target_puts_it_and_turns_green_when_met() {
        let scene = door();
        let spec = qamlab_sim::EnvSpec::new(&scene, 200);
        let mut state = EnvState::new(&scene, &spec, 0);
        let physics = qamlab_sim::env::reset_env(&scene, &mut state);
        let target = state.joint_targets[0];
        assert!((0.5..=1.2).contains(&target), "{target}");
        let hinge = &scene.joints[scene.joint_goals[0].joint];
        let (door, post) = (hinge.child, hinge.parent);
        let handle = scene
            .bodies
            .iter()
            .position(|b| b.body.name == "handle")
            .unwrap();
        assert_eq!(
            qamlab_sim::scene::welded_group(&scene.joints, door),
            [door, handle]
        );
        // Where the door is with its hinge at `angle`, the post where the env has it.
        let post_pose = physics.pose(post);
        let door_at = |angle: f32| hinge.child_pose_at(post_pose, angle);

        let (mut app, env, met, pending) =
            marker_app(&scene, physics, state, sync_joint_goals.into_configs());
        let mut copy_of = |body: usize| {
            app.world_mut()
                .spawn((
                    JointGoalVisual {
                        env: 0,
                        goal: 0,
                        body,
                        local: Transform::IDENTITY,
                        pending: pending.clone(),
                    },
                    Transform::IDENTITY,
                    MeshMaterial3d(pending.clone()),
                ))
                .id()
        };
        let (marker, handle_marker) = (copy_of(door), copy_of(handle));
        app.update();
        // The welded handle's copy keeps its place on the door's: 14 cm out and 3.5 cm off its face, turned with it.
        let handle_drawn = app
            .world()
            .get::<Transform>(handle_marker)
            .unwrap()
            .translation;
        let door_copy = door_at(target);
        let expected_handle =
            door_copy.translation + door_copy.rotation * Vec3::new(0.14, 0.035, 0.0);
        assert!(
            handle_drawn.distance(expected_handle) < 1e-4,
            "{handle_drawn} against {expected_handle}"
        );
        let drawn = *app.world().get::<Transform>(marker).unwrap();
        let expected = door_at(target);
        assert!(
            drawn.translation.distance(expected.translation) < 1e-5,
            "{drawn:?}"
        );
        assert!(drawn.rotation.angle_between(expected.rotation) < 1e-3);
        assert_eq!(
            app.world()
                .get::<MeshMaterial3d<StandardMaterial>>(marker)
                .unwrap()
                .0,
            pending
        );

        // The door put at its target: the goal holds, and its copy turns green.
        let mut poses: Vec<_> = (0..scene.bodies.len())
            .map(|b| app.world().get::<EnvWorld>(env).unwrap().0.pose(b))
            .collect();
        let turn = door_at(target + 0.05) * poses[door].inverse();
        poses[door] = turn * poses[door];
        poses[handle] = turn * poses[handle];
        app.world_mut().get_mut::<EnvWorld>(env).unwrap().0 =
            qamlab_sim::physics::EnvPhysics::build(&scene, &poses);
        app.update();
        assert_eq!(
            app.world()
                .get::<MeshMaterial3d<StandardMaterial>>(marker)
                .unwrap()
                .0,
            met
        );
    }

    #[test]
    fn an_axis_goals_arrows_point_along_the_target_and_the_axis_and_turn_green_when_met() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/tasks/examples/topple.scn.ron"
        );
        let scene = TaskScene::from_file(path).unwrap();
        let spec = qamlab_sim::EnvSpec::new(&scene, 100);
        let mut state = EnvState::new(&scene, &spec, 3);
        let physics = qamlab_sim::env::reset_env(&scene, &mut state);
        let target = state.axis_targets[0];
        let cylinder = scene.axis_goals[0].body;
        let standing = physics.pose(cylinder);

        let (mut app, env, met, pending) =
            marker_app(&scene, physics, state, sync_axis_goals.into_configs());
        let mut arrow = |current: bool| {
            app.world_mut()
                .spawn((
                    AxisGoalVisual {
                        env: 0,
                        goal: 0,
                        current,
                        pending: pending.clone(),
                    },
                    Transform::IDENTITY,
                    MeshMaterial3d(pending.clone()),
                ))
                .id()
        };
        let (target_arrow, current_arrow) = (arrow(false), arrow(true));
        app.update();
        let drawn = |app: &App, e: Entity| *app.world().get::<Transform>(e).unwrap();
        let material = |app: &App, e: Entity| {
            app.world()
                .get::<MeshMaterial3d<StandardMaterial>>(e)
                .unwrap()
                .0
                .clone()
        };
        // Both from the cylinder's centre: the target along this episode's direction, the other up its axis.
        for e in [target_arrow, current_arrow] {
            assert!(drawn(&app, e).translation.distance(standing.translation) < 1e-6);
        }
        assert!((drawn(&app, target_arrow).rotation * Vec3::Y).distance(target) < 1e-5);
        assert!((drawn(&app, current_arrow).rotation * Vec3::Y).distance(Vec3::Z) < 1e-5);
        assert_eq!(material(&app, target_arrow), pending);

        // The cylinder laid along the target, 0.2 rad off (within 0.4): the target arrow turns green.
        let mut poses: Vec<_> = (0..scene.bodies.len())
            .map(|b| app.world().get::<EnvWorld>(env).unwrap().0.pose(b))
            .collect();
        let lying = Quat::from_rotation_z(0.2) * Quat::from_rotation_arc(Vec3::Z, target);
        poses[cylinder].rotation = lying;
        app.world_mut().get_mut::<EnvWorld>(env).unwrap().0 =
            qamlab_sim::physics::EnvPhysics::build(&scene, &poses);
        app.update();
        assert_eq!(material(&app, target_arrow), met);
        assert_eq!(
            material(&app, current_arrow),
            pending,
            "the axis arrow keeps its colour"
        );
        let axis_drawn = drawn(&app, current_arrow).rotation * Vec3::Y;
        assert!(axis_drawn.distance(lying * Vec3::Z) < 1e-5, "{axis_drawn}");
    }

    #[test]
    fn axis_goals_on_one_body_pair_their_arrows_by_length() {
        let text = include_str!("../../assets/tasks/examples/topple.scn.ron").replacen(
            "  entities: {",
            "  entities: {\n    90: (components: {\"qamlab_sim::authoring::AxisGoal\": (name: \"second\", \
             body: \"cylinder\", axis: (1.0, 0.0, 0.0), direction: (0.0, 0.0, 1.0), tolerance: 0.3)}),",
            1,
        );
        let scene = TaskScene::from_ron(&text, "two").unwrap();
        assert_eq!(scene.axis_goals[1].goal.name, "fallen");
        assert_eq!(axis_arrow_overhangs(&scene, 0), 2.0);
        assert_eq!(axis_arrow_overhangs(&scene, 1), 1.0);
    }

    #[test]
    fn an_arrow_mesh_reaches_its_length_along_y() {
        let aabb = arrow_mesh(0.3, 0.01).compute_aabb().unwrap();
        let (min, max) = (Vec3::from(aabb.min()), Vec3::from(aabb.max()));
        assert!(
            min.y.abs() < 1e-6 && (max.y - 0.3).abs() < 1e-6,
            "{min} {max}"
        );
        assert!(
            (max.x - 0.03).abs() < 1e-4,
            "the head three times the shaft: {max}"
        );
    }

    #[test]
    fn a_goal_on_a_green_body_is_marked_in_grey_until_met() {
        // The third object is green, as a met goal's marker is: its markers would look met from the start.
        assert_eq!(marker_color(OBJECT_COLORS[2]), MARKER_GREY);
        for color in [
            OBJECT_COLORS[0],
            OBJECT_COLORS[1],
            OBJECT_COLORS[3],
            ROBOT_COLOR,
        ] {
            assert_eq!(marker_color(color), color);
        }
    }

    #[test]
    fn z_up_becomes_y_up() {
        assert!((Z_UP_TO_Y_UP * Vec3::Z - Vec3::Y).length() < 1e-6);
        assert!((Z_UP_TO_Y_UP * Vec3::Y + Vec3::Z).length() < 1e-6);
        assert!((Z_UP_TO_Y_UP * Vec3::X - Vec3::X).length() < 1e-6);
    }

    #[test]
    fn every_shape_has_a_mesh_of_its_size() {
        let points = vec![Vec3::ZERO, Vec3::X, Vec3::Y, Vec3::Z, Vec3::ONE];
        let shapes = [
            Shape::Cuboid {
                half_extents: Vec3::new(0.1, 0.2, 0.3),
            },
            Shape::Ball { radius: 0.1 },
            Shape::Capsule {
                half_height: 0.2,
                radius: 0.05,
            },
            Shape::Cylinder {
                half_height: 0.2,
                radius: 0.05,
            },
            Shape::ConvexHull { points },
        ];
        for shape in shapes {
            let (mesh, turn) = shape_mesh(&shape);
            let aabb = mesh.compute_aabb().expect("a mesh with positions");
            // The mesh, turned into the body frame, spans the shape's height along z.
            let half = turn * Vec3::from(aabb.half_extents);
            let expected = match &shape {
                Shape::Cuboid { half_extents } => half_extents.z,
                Shape::Ball { radius } => *radius,
                Shape::Capsule {
                    half_height,
                    radius,
                } => half_height + radius,
                Shape::Cylinder { half_height, .. } => *half_height,
                Shape::ConvexHull { .. } => 0.5,
            };
            assert!(
                (half.z.abs() - expected).abs() < 1e-3,
                "{shape:?}: half height {} != {expected}",
                half.z
            );
        }
    }
}
