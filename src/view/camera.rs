//! The orbit camera (left drag: turn, right or middle drag: pan, wheel: zoom), which starts framing the shown envs'
//! working volumes ([`SceneFrame`]), and the lights.

use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll, MouseScrollUnit};
use bevy::prelude::*;
use bevy_egui::input::EguiWantsInput;

use super::layout::Bounds;
use super::panel::ViewCommand;
use super::render_sync::{SceneFrame, Z_UP_TO_Y_UP};

/// A camera circling `target` at `distance`, turned by `yaw` about the vertical and `pitch` above the horizon.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct OrbitCamera {
    /// Point looked at (Bevy coordinates).
    pub target: Vec3,
    /// Distance from the target.
    pub distance: f32,
    /// Turn about the vertical (radians).
    pub yaw: f32,
    /// Elevation above the horizon (radians).
    pub pitch: f32,
}

/// The camera's vertical field of view (Bevy's default perspective projection's).
pub const FIELD_OF_VIEW: f32 = std::f32::consts::FRAC_PI_4;
/// The share of the half field of view, each way, that a framed box may fill: the rest is margin.
const FILL: f32 = 0.9;

impl OrbitCamera {
    /// The view of `bounds` (Bevy coordinates) from the front right, a little above: as close as it can be with
    /// every corner in a view of width / height `aspect`, the box's picture centred in it.
    pub fn framing(bounds: &Bounds, aspect: f32) -> Self {
        let mut orbit = Self {
            target: bounds.center(),
            distance: MIN_DISTANCE,
            yaw: 0.6,
            pitch: 0.62,
        };
        let rotation = orbit.rotation();
        let tan_y = (FIELD_OF_VIEW / 2.0).tan() * FILL;
        let tan = Vec2::new(tan_y * aspect.max(0.1), tan_y);
        // The box's near corners show larger than its far ones, so its picture is lopsided about its centre: move
        // the target across the view by the picture's offset, and fit the distance again, until it is centred.
        for _ in 0..FRAMING_ROUNDS {
            let corners = bounds
                .corners()
                .map(|corner| rotation.inverse() * (corner - orbit.target));
            // In the camera's frame a corner at (x, y, z) from the target lies `distance - z` ahead, and shows while
            // |x| and |y| are within that depth times the half view's tangents.
            orbit.distance = corners
                .iter()
                .map(|q| q.z + (q.x.abs() / tan.x).max(q.y.abs() / tan.y))
                .fold(MIN_DISTANCE, f32::max);
            let spots = corners.map(|q| q.truncate() / (tan * (orbit.distance - q.z)));
            let low = spots.iter().copied().fold(Vec2::INFINITY, Vec2::min);
            let high = spots.iter().copied().fold(Vec2::NEG_INFINITY, Vec2::max);
            let offset = (low + high) / 2.0;
            orbit.target += rotation * (offset * tan * orbit.distance).extend(0.0);
        }
        orbit
    }

    /// The camera's turn: `yaw` about the vertical, then `pitch` down.
    fn rotation(&self) -> Quat {
        Quat::from_euler(EulerRot::YXZ, self.yaw, -self.pitch, 0.0)
    }

    /// The camera transform this orbit gives.
    pub fn transform(&self) -> Transform {
        let position = self.target + self.rotation() * Vec3::new(0.0, 0.0, self.distance);
        Transform::from_translation(position).looking_at(self.target, Vec3::Y)
    }
}

/// Rounds of [`OrbitCamera::framing`]'s centring (each leaves a fraction of the offset before it).
const FRAMING_ROUNDS: usize = 6;

/// The closest the camera comes to its target (the wheel's limit too).
const MIN_DISTANCE: f32 = 0.2;

/// The framing last given to a camera, and the shape of the view it was fitted to: while the user has not moved
/// the camera, a view of another shape (the panel resized, the window's first frames) is framed again.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct Framed {
    /// The view's width / height.
    pub aspect: f32,
    /// The orbit that framing gave.
    pub orbit: OrbitCamera,
}

/// The view's width / height until the camera knows its viewport.
const DEFAULT_ASPECT: f32 = 4.0 / 3.0;

/// Spawns the camera and lights, and moves the camera with the mouse.
pub struct CameraPlugin;

impl Plugin for CameraPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<ViewCommand>()
            .insert_resource(ClearColor(Color::srgb(0.11, 0.12, 0.14)))
            .insert_resource(GlobalAmbientLight {
                color: Color::WHITE,
                brightness: 350.0,
                ..default()
            })
            .add_systems(Startup, spawn_camera_and_lights)
            .add_systems(Update, (frame_scene, orbit_with_mouse, apply_orbit).chain());
    }
}

fn spawn_camera_and_lights(mut commands: Commands) {
    let orbit = OrbitCamera::framing(&SceneFrame::default().0, DEFAULT_ASPECT);
    commands.spawn((
        Camera3d::default(),
        orbit,
        orbit.transform(),
        Framed {
            aspect: DEFAULT_ASPECT,
            orbit,
        },
    ));
    commands.spawn((
        DirectionalLight {
            illuminance: 6_000.0,
            shadow_maps_enabled: true,
            ..default()
        },
        // Sun from above and to the side (a direction in scene terms, turned to y-up).
        Transform::default().looking_to(Z_UP_TO_Y_UP * Vec3::new(0.4, 0.6, -1.0), Vec3::Y),
    ));
}

/// Frames the shown envs when they change, on the frame-camera command, or when the view changes shape while
/// the camera is still where the last framing put it.
fn frame_scene(
    frame: Res<SceneFrame>,
    mut commands: MessageReader<ViewCommand>,
    mut cameras: Query<(&mut OrbitCamera, &mut Framed, &Camera)>,
) {
    let asked = commands.read().any(|c| *c == ViewCommand::FrameCamera);
    for (mut orbit, mut framed, camera) in &mut cameras {
        let aspect = camera
            .logical_viewport_size()
            .filter(|size| size.x > 0.0 && size.y > 0.0)
            .map_or(DEFAULT_ASPECT, |size| size.x / size.y);
        let reshaped = (aspect - framed.aspect).abs() > 1e-3 && *orbit == framed.orbit;
        if asked || frame.is_changed() || reshaped {
            *orbit = OrbitCamera::framing(&frame.0, aspect);
            *framed = Framed {
                aspect,
                orbit: *orbit,
            };
        }
    }
}

/// Turns, pans and zooms with the mouse, unless the pointer is busy with the panel (the offscreen video has
/// neither egui nor a pointer).
fn orbit_with_mouse(
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    egui: Option<Res<EguiWantsInput>>,
    mut cameras: Query<&mut OrbitCamera>,
) {
    if egui.is_some_and(|egui| egui.wants_pointer_input() || egui.is_pointer_over_area()) {
        return;
    }
    let delta = motion.delta;
    let wheel = match scroll.unit {
        MouseScrollUnit::Line => scroll.delta.y,
        MouseScrollUnit::Pixel => scroll.delta.y / 40.0,
    };
    for mut orbit in &mut cameras {
        if buttons.pressed(MouseButton::Left) {
            orbit.yaw -= delta.x * 0.008;
            orbit.pitch = (orbit.pitch + delta.y * 0.008).clamp(-0.2, 1.5);
        }
        if buttons.pressed(MouseButton::Right) || buttons.pressed(MouseButton::Middle) {
            let rotation = orbit.transform().rotation;
            let scale = orbit.distance * 0.0015;
            orbit.target += rotation * Vec3::new(-delta.x * scale, delta.y * scale, 0.0);
        }
        if wheel != 0.0 {
            orbit.distance = (orbit.distance * 0.9f32.powf(wheel)).clamp(MIN_DISTANCE, 50.0);
        }
    }
}

/// Places each orbit camera.
fn apply_orbit(mut cameras: Query<(&OrbitCamera, &mut Transform), Changed<OrbitCamera>>) {
    for (orbit, mut transform) in &mut cameras {
        *transform = orbit.transform();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::layout::{Grid, working_volume};

    /// Where `point` shows in the view of `orbit`: x and y as a share of the half view (within [-1, 1] is in view).
    fn on_screen(orbit: &OrbitCamera, aspect: f32, point: Vec3) -> Vec2 {
        let camera = orbit.transform();
        let q = camera.rotation.inverse() * (point - camera.translation);
        let tan_y = (FIELD_OF_VIEW / 2.0).tan();
        Vec2::new(q.x / (-q.z * tan_y * aspect), q.y / (-q.z * tan_y))
    }

    #[test]
    fn the_camera_frames_the_working_volume_filling_the_view() {
        for (task, aspect) in [
            ("cube-single", 1.24),
            ("antmaze-umaze", 1.24),
            ("cube-double", 0.7),
        ] {
            let scene = qamlab_tasks::load_task(task).unwrap().scene;
            let work = working_volume(&scene).rotated(Z_UP_TO_Y_UP);
            let orbit = OrbitCamera::framing(&work, aspect);
            let spots: Vec<Vec2> = work
                .corners()
                .iter()
                .map(|&c| on_screen(&orbit, aspect, c))
                .collect();
            // Every corner in view, within the margin...
            let reach = spots
                .iter()
                .map(|s| s.abs().max_element())
                .fold(0.0, f32::max);
            assert!(
                reach <= FILL + 2e-3,
                "{task}: a corner at {reach} of the half view"
            );
            // ...and one at its edge: no closer view holds them all.
            assert!(
                reach > FILL - 2e-3,
                "{task}: the corners reach only {reach} of the half view"
            );
            // The box's picture centred in the view, seen from above.
            let low = spots.iter().copied().fold(Vec2::INFINITY, Vec2::min);
            let high = spots.iter().copied().fold(Vec2::NEG_INFINITY, Vec2::max);
            assert!(
                ((low + high) / 2.0).length() < 5e-3,
                "{task}: the picture spans {low}..{high}"
            );
            assert!(
                orbit.transform().translation.y > work.max.y,
                "{task}: {orbit:?}"
            );
        }
    }

    #[test]
    fn the_cube_shows_larger_than_in_a_view_of_the_whole_table() {
        // A 4 cm cube at the centre of cube-single's table, in the window's 3D view (940 x 760 beside the panel):
        // framing the gantry's reach shows it half as large again as framing the whole table with its legs would.
        let scene = qamlab_tasks::load_task("cube-single").unwrap().scene;
        let aspect = 940.0 / 760.0;
        let cube_height = |framed: Bounds| {
            let orbit = OrbitCamera::framing(&framed.rotated(Z_UP_TO_Y_UP), aspect);
            let low = on_screen(&orbit, aspect, Vec3::ZERO);
            let high = on_screen(&orbit, aspect, Vec3::new(0.0, 0.04, 0.0));
            (high.y - low.y) / 2.0
        };
        let work = working_volume(&scene);
        let table = Bounds::new(Vec3::new(-0.5, -0.5, -0.8), Vec3::new(0.5, 0.5, 0.0));
        let (near, whole) = (cube_height(work), cube_height(work.union(table)));
        assert!(
            near > 0.025 && near > 1.5 * whole,
            "the cube is {near} of the view's height ({whole} with the whole table in view)"
        );
    }

    #[test]
    fn a_grid_of_envs_is_framed_whole() {
        let scene = qamlab_tasks::load_task("cube-single").unwrap().scene;
        let work = working_volume(&scene);
        let one = OrbitCamera::framing(&work.rotated(Z_UP_TO_Y_UP), 1.24);
        let grid = Grid::new(9, &scene);
        let framed = grid.framed(9, work).rotated(Z_UP_TO_Y_UP);
        let orbit = OrbitCamera::framing(&framed, 1.24);
        assert!(orbit.distance > 2.0 * one.distance, "{orbit:?} vs {one:?}");
        for env in 0..9 {
            let centre = work.translated(grid.cell(env).extend(0.0)).center();
            let spot = on_screen(&orbit, 1.24, Z_UP_TO_Y_UP * centre);
            assert!(spot.abs().max_element() < FILL, "env {env} at {spot}");
        }
    }
}
