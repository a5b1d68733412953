//! The orbit camera (left drag: turn, right or middle drag: pan, wheel: zoom) and the lights.

use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll, MouseScrollUnit};
use bevy::prelude::*;
use bevy_egui::input::EguiWantsInput;

use super::panel::ViewCommand;
use super::render_sync::{SceneFrame, Z_UP_TO_Y_UP};

/// A camera circling `target` at `distance`, turned by `yaw` about the vertical and `pitch` above the horizon.
#[derive(Component, Debug, Clone, Copy)]
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

impl OrbitCamera {
    /// The view of a scene frame: from the front right, a little above.
    fn framing(frame: &SceneFrame) -> Self {
        Self {
            target: frame.center,
            // Far enough to see the whole height (a tall, narrow scene), else the radius's rule of thumb.
            distance: (2.3 * frame.radius - 0.75).max(frame.fit_distance()),
            yaw: 0.6,
            pitch: 0.62,
        }
    }

    /// The camera transform this orbit gives.
    fn transform(&self) -> Transform {
        let rotation = Quat::from_euler(EulerRot::YXZ, self.yaw, -self.pitch, 0.0);
        let position = self.target + rotation * Vec3::new(0.0, 0.0, self.distance);
        Transform::from_translation(position).looking_at(self.target, Vec3::Y)
    }
}

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
    let orbit = OrbitCamera::framing(&SceneFrame {
        center: Vec3::ZERO,
        radius: 0.5,
        half_height: 0.1,
    });
    commands.spawn((Camera3d::default(), orbit, orbit.transform()));
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

/// Frames the shown envs when they change, or on the frame-camera command.
fn frame_scene(
    frame: Res<SceneFrame>,
    mut commands: MessageReader<ViewCommand>,
    mut cameras: Query<&mut OrbitCamera>,
) {
    let asked = commands.read().any(|c| *c == ViewCommand::FrameCamera);
    if !(asked || frame.is_changed()) {
        return;
    }
    for mut orbit in &mut cameras {
        *orbit = OrbitCamera::framing(&frame);
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
            orbit.distance = (orbit.distance * 0.9f32.powf(wheel)).clamp(0.2, 50.0);
        }
    }
}

/// Places each orbit camera.
fn apply_orbit(mut cameras: Query<(&OrbitCamera, &mut Transform), Changed<OrbitCamera>>) {
    for (orbit, mut transform) in &mut cameras {
        *transform = orbit.transform();
    }
}
