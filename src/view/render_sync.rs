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
use qamlab_sim::authoring::{BodyKind, Shape};
use qamlab_sim::env::{EnvState, EnvWorld};

use super::ViewTask;
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

/// Where the shown envs are, in Bevy coordinates: what the camera frames (changed only when it moves, so a reset
/// leaves the camera where the user put it).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq)]
pub struct SceneFrame {
    /// Centre of the shown envs.
    pub center: Vec3,
    /// Radius enclosing them.
    pub radius: f32,
    /// Half the height the view must show: the moving bodies and the goals' targets.
    pub half_height: f32,
}

impl SceneFrame {
    /// The camera distance at which the whole height shows, with a margin (the camera's field of view is Bevy's
    /// default, 45 degrees vertically).
    pub fn fit_distance(&self) -> f32 {
        1.6 * self.half_height / (std::f32::consts::FRAC_PI_8).tan()
    }
}

/// Root of one env's visuals.
#[derive(Component, Debug)]
pub struct EnvVisualRoot;

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

/// Applies the show-one / show-all command.
fn toggle_grid(mut commands: MessageReader<ViewCommand>, mut shown: ResMut<ShownEnvs>) {
    for command in commands.read() {
        if *command == ViewCommand::ToggleGrid {
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
    let extent = scene_extent(scene);
    let spacing = 2.0 * extent + 0.3;
    let cols = (shown_envs as f32).sqrt().ceil() as usize;
    let rows = shown_envs.div_ceil(cols);
    let origin = Vec2::new((cols - 1) as f32, (rows - 1) as f32) * spacing / 2.0;
    for env in 0..shown_envs {
        let cell = Vec2::new((env % cols) as f32, (env / cols) as f32) * spacing - origin;
        let root = commands
            .spawn((
                EnvVisualRoot,
                Transform::from_rotation(Z_UP_TO_Y_UP)
                    .with_translation(Z_UP_TO_Y_UP * cell.extend(0.0)),
                Visibility::default(),
            ))
            .id();
        spawn_env_visuals(&mut commands, root, env, scene, &looks);
    }
    let floor_z = floor_height(scene);
    let floor_size = spacing * cols.max(rows) as f32 + 4.0;
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
    let half = Vec2::new(cols as f32, rows as f32) * spacing / 2.0;
    // Centred on the moving bodies' heights: a scene authored above the ground (a pendulum hung at 1 m) is in view.
    let (low, high) = vertical_extent(scene);
    frame.set_if_neq(SceneFrame {
        center: Z_UP_TO_Y_UP * Vec3::new(0.0, 0.0, (low + high) / 2.0),
        radius: half.length().max((high - low) / 2.0).max(0.4),
        half_height: (high - low) / 2.0,
    });
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
    /// Marker for goals on bodies without a collider.
    fallback_marker: Handle<Mesh>,
    /// Joints drawn as rods: (parent, child) bodies whose origins lie apart.
    rods: Vec<(usize, usize)>,
    /// Unit-length rod mesh (along y) and its material.
    rod: (Handle<Mesh>, Handle<StandardMaterial>),
    /// Per goal: the translucent material of its marker.
    goal_materials: Vec<Handle<StandardMaterial>>,
    /// Per goal on a point off its body's origin (a site, like a pendulum's tip): a sphere of its tolerance, where
    /// a ghost of the whole body would float away from where it could be.
    goal_spheres: Vec<Option<Handle<Mesh>>>,
}

impl BodyLooks {
    fn new(
        scene: &TaskScene,
        meshes: &mut Assets<Mesh>,
        materials: &mut Assets<StandardMaterial>,
    ) -> Self {
        let jointed: Vec<bool> = (0..scene.bodies.len())
            .map(|b| scene.joints.iter().any(|j| j.child == b))
            .collect();
        let mut objects = 0;
        let mut colors = Vec::with_capacity(scene.bodies.len());
        for (b, def) in scene.bodies.iter().enumerate() {
            let color = if def.body.kind == BodyKind::Fixed {
                TABLE_COLOR
            } else if jointed[b] {
                ROBOT_COLOR
            } else {
                objects += 1;
                OBJECT_COLORS[(objects - 1) % OBJECT_COLORS.len()]
            };
            colors.push(color);
        }
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
            .map(|g| materials.add(translucent(colors[g.frame.body].with_alpha(0.35))))
            .collect();
        let goal_spheres = scene
            .goals
            .iter()
            .map(|g| {
                (g.frame.offset != Vec3::ZERO).then(|| meshes.add(Sphere::new(g.goal.tolerance)))
            })
            .collect();
        let rods = scene
            .joints
            .iter()
            .filter(|j| {
                let (a, b) = (&scene.bodies[j.parent].body, &scene.bodies[j.child].body);
                a.translation.distance(b.translation) > 0.03
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
            fallback_marker: meshes.add(Sphere::new(0.02)),
            rods,
            rod,
            goal_materials,
            goal_spheres,
        }
    }
}

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
            (None, None) => (looks.fallback_marker.clone(), Transform::IDENTITY),
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
}

/// How much larger than its body a goal's copy is drawn.
const GOAL_COPY_SCALE: f32 = 1.12;

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

/// Half the width of a scene in the table plane: the farthest corner of any collider's bounding box from the
/// origin at its initial pose (at least 0.3 m).
fn scene_extent(scene: &TaskScene) -> f32 {
    (0..scene.bodies.len())
        .filter_map(|b| scene.collider_bounds(b))
        .map(|(min, max)| min.truncate().abs().max(max.truncate().abs()).length())
        .fold(0.3, f32::max)
}

/// Lowest and highest point of the moving bodies' colliders at their authored poses (of all colliders in a scene
/// where nothing moves; a 0.2 m band about 0.1 m without any), and of every height a goal's target can take (a
/// pendulum hanging at rest with its goal above): a deep slab of ground does not pull the view down.
fn vertical_extent(scene: &TaskScene) -> (f32, f32) {
    let extent = |moving_only: bool| {
        (0..scene.bodies.len())
            .filter(|&b| !moving_only || scene.bodies[b].body.kind != BodyKind::Fixed)
            .filter_map(|b| scene.collider_bounds(b))
            .map(|(min, max)| (min.z, max.z))
            .reduce(|(lo, hi), (min, max)| (lo.min(min), hi.max(max)))
    };
    let (low, high) = extent(true).or_else(|| extent(false)).unwrap_or((0.0, 0.2));
    scene.goals.iter().fold((low, high), |(lo, hi), goal| {
        let z = goal.goal.target.z;
        let range = goal.randomize.as_ref().and_then(|(r, _)| r.z.as_ref());
        let (min, max) = range.map_or((z, z), |r| (r.min, r.max));
        (lo.min(min), hi.max(max))
    })
}

/// Height of the floor: 0.7 m under the lowest fixed collider (a table's legs' worth).
fn floor_height(scene: &TaskScene) -> f32 {
    (0..scene.bodies.len())
        .filter(|&b| scene.bodies[b].body.kind == BodyKind::Fixed)
        .filter_map(|b| scene.collider_bounds(b))
        .map(|(min, _)| min.z)
        .fold(0.0, f32::min)
        - 0.7
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy::camera::primitives::MeshAabb;

    #[test]
    fn the_camera_is_centred_on_the_colliders_heights() {
        let task = qamlab_tasks::load_task("cube-single").unwrap();
        let (low, high) = vertical_extent(&task.scene);
        // The cube on the table up to the gantry's top; not the table.
        assert!(
            low.abs() < 1e-4 && (high - 0.26).abs() < 1e-4,
            "{low}..{high}"
        );
        // The same scene authored 1 m higher.
        let mut scene = task.scene.clone();
        for body in &mut scene.bodies {
            body.body.translation.z += 1.0;
        }
        for goal in &mut scene.goals {
            goal.goal.target.z += 1.0;
        }
        let (low, high) = vertical_extent(&scene);
        assert!(
            (low - 1.0).abs() < 1e-4 && (high - 1.26).abs() < 1e-4,
            "{low}..{high}"
        );
        // The pendulum hangs from 0.48 to 1.02 m; its goal is up at 1.5 m, and in view.
        let scene = qamlab_sim::TaskScene::from_file(
            crate::checkout_dir().join("assets/tasks/examples/pendulum.scn.ron"),
        )
        .unwrap();
        let (low, high) = vertical_extent(&scene);
        assert!(
            (low - 0.48).abs() < 1e-3 && (high - 1.5).abs() < 1e-3,
            "{low}..{high}"
        );
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
