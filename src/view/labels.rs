//! A label over each env of the grid, so that one can be told from another: its index and how many of its
//! episodes succeeded, drawn by egui over the 3D view above the env's working volume.

use bevy::prelude::*;
use bevy_egui::egui::{self, Align2, Color32, FontId};
use bevy_egui::{EguiContexts, EguiPrimaryContextPass};

use super::ViewTask;
use super::camera::OrbitCamera;
use super::layout;
use super::policy::{EnvTally, EpisodeStats};
use super::render_sync::EnvRoot;

/// Labels each env shown in the grid.
pub struct EnvLabelsPlugin;

impl Plugin for EnvLabelsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<LabelAnchor>()
            .add_systems(Update, place_anchor)
            .add_systems(EguiPrimaryContextPass, draw_labels);
    }
}

/// Where a label hangs in its env (scene coordinates): on the top of the far side, as the camera looks, of what
/// the env stands on (its table, its maze), so that it reads above the env, beside what the env moves and clear
/// of what stands in its middle (antmaze's wall); where nothing is under the work, over the middle of the working
/// volume's top (see [`LabelAnchor::of`]).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq)]
pub struct LabelAnchor {
    /// The middle of the top of the stage or working volume.
    pub top: Vec3,
    /// Half the stage's extent along x and y (zero over a working volume: the label hangs over its middle).
    pub half: Vec2,
}

impl LabelAnchor {
    /// The point of the top's outline farthest along the horizontal direction `away` (from the camera).
    pub fn far_side(&self, away: Vec2) -> Vec3 {
        let away = away.normalize_or_zero();
        // The box's support point along `away`, along each axis alone: the middle of the far edge, or the far
        // corner where the camera looks along a diagonal.
        let reach = Vec2::new(
            away.x.signum() * self.half.x * (away.x.abs() * 2.0).min(1.0),
            away.y.signum() * self.half.y * (away.y.abs() * 2.0).min(1.0),
        );
        self.top + reach.extend(0.0)
    }
}

/// Places the anchor for the task (again when a reload changes it).
fn place_anchor(task: Res<ViewTask>, mut anchor: ResMut<LabelAnchor>) {
    if task.is_changed() {
        anchor.set_if_neq(LabelAnchor::of(&task.scene));
    }
}

impl LabelAnchor {
    /// The anchor for `scene`: over its stage where what moves stands on it (a table, a maze's floor: the stage
    /// reaches below every moving body), else over the middle of its working volume's top (a pendulum's pivot is
    /// in its swing). Nothing rises above that top to be covered, and its far edge, a swing's reach away from
    /// the goal drawn in the middle, would leave the label in the air beside the env rather than over it.
    pub fn of(scene: &qamlab_sim::TaskScene) -> Self {
        let moving_bottom = (0..scene.bodies.len())
            .filter(|&b| scene.bodies[b].body.kind != qamlab_sim::authoring::BodyKind::Fixed)
            .filter_map(|b| scene.collider_bounds(b))
            .map(|(low, _)| low.z)
            .fold(f32::INFINITY, f32::min);
        match layout::stage(scene).filter(|stage| stage.min.z < moving_bottom) {
            Some(stage) => Self {
                top: stage.center().truncate().extend(stage.max.z),
                half: stage.size().truncate() / 2.0,
            },
            None => {
                let work = layout::working_volume(scene);
                Self {
                    top: work.center().truncate().extend(work.max.z),
                    half: Vec2::ZERO,
                }
            }
        }
    }
}

/// A label's text: the env's index, then its successes out of its finished episodes once there are any.
pub fn label_text(env: usize, tally: Option<&EnvTally>) -> String {
    match tally {
        Some(tally) if tally.episodes > 0 => {
            // In words: a mark beside "0/16" read as solved.
            format!("env {env} · {}/{} solved", tally.successes, tally.episodes)
        }
        _ => format!("env {env}"),
    }
}

/// Size of the labels' text (points).
const LABEL_SIZE: f32 = 14.0;

/// Draws each shown env's label where its anchor shows in the 3D view (one env alone needs none: the panel
/// speaks of it).
fn draw_labels(
    mut contexts: EguiContexts,
    anchor: Res<LabelAnchor>,
    stats: Res<EpisodeStats>,
    roots: Query<(&EnvRoot, &GlobalTransform)>,
    camera: Single<(&Camera, &GlobalTransform), With<OrbitCamera>>,
) -> Result {
    if roots.iter().count() < 2 {
        return Ok(());
    }
    let (camera, eye) = *camera;
    let Some(view) = camera.logical_viewport_rect() else {
        return Ok(());
    };
    let ctx = contexts.ctx_mut()?;
    // Under the panel's windows and pop-ups, and never over the panel itself.
    let painter = ctx
        .layer_painter(egui::LayerId::new(
            egui::Order::Background,
            egui::Id::new("env labels"),
        ))
        .with_clip_rect(egui::Rect::from_min_max(
            egui::pos2(view.min.x, view.min.y),
            egui::pos2(view.max.x, view.max.y),
        ));
    let spots: Vec<(usize, egui::Pos2)> = roots
        .iter()
        .filter_map(|(root, transform)| {
            // In the env's own (scene, z-up) frame, where the anchor is.
            let local_eye = transform
                .affine()
                .inverse()
                .transform_point3(eye.translation());
            let away = (anchor.top - local_eye).truncate();
            let spot = camera
                .world_to_viewport(eye, transform.transform_point(anchor.far_side(away)))
                .ok()?;
            Some((root.env, egui::pos2(spot.x, spot.y)))
        })
        .collect();
    let plate = |spot: egui::Pos2, text: String| {
        let galley = painter.layout_no_wrap(text, FontId::proportional(LABEL_SIZE), Color32::WHITE);
        let rect = Align2::CENTER_BOTTOM.anchor_size(spot, galley.size());
        (rect.expand2(egui::vec2(5.0, 2.0)), rect.min, galley)
    };
    let full: Vec<_> = spots
        .iter()
        .map(|&(env, spot)| plate(spot, label_text(env, stats.per_env.get(env))))
        .collect();
    // Envs far away in a large grid sit closer than their labels are wide: then each shows its index alone.
    let crowded = full
        .iter()
        .enumerate()
        .any(|(i, a)| full[i + 1..].iter().any(|b| a.0.intersects(b.0)));
    let labels = if crowded {
        spots
            .iter()
            .map(|&(env, spot)| plate(spot, env.to_string()))
            .collect()
    } else {
        full
    };
    for (background, at, galley) in labels {
        // A dark plate: white text reads over the table, the floor and the sky alike.
        painter.rect_filled(background, 4.0, Color32::from_black_alpha(170));
        painter.galley(at, galley, Color32::WHITE);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_hangs_on_the_far_side_of_the_working_volume() {
        let anchor = LabelAnchor {
            top: Vec3::new(1.0, 2.0, 0.5),
            half: Vec2::new(3.0, 1.0),
        };
        // Looking along +y: the middle of the far (+y) edge; along -x: the middle of the -x edge.
        assert_eq!(anchor.far_side(Vec2::Y), Vec3::new(1.0, 3.0, 0.5));
        assert_eq!(
            anchor.far_side(Vec2::NEG_X * 5.0),
            Vec3::new(-2.0, 2.0, 0.5)
        );
        // Along a diagonal: the far corner.
        let corner = anchor.far_side(Vec2::new(1.0, 1.0));
        assert!(
            (corner - Vec3::new(4.0, 3.0, 0.5)).length() < 1e-5,
            "{corner}"
        );
        // Straight down: the middle.
        assert_eq!(anchor.far_side(Vec2::ZERO), anchor.top);
    }

    #[test]
    fn labels_hang_over_a_table_or_a_maze_and_above_a_pendulums_swing() {
        let task = |name: &str| qamlab_tasks::load_task(name).unwrap().scene;
        // cube-single: the table top, z = 0.
        assert!(LabelAnchor::of(&task("cube-single")).top.z.abs() < 1e-4);
        // antmaze-umaze: its walls' top, 0.3 m.
        assert!((LabelAnchor::of(&task("antmaze-umaze")).top.z - 0.3).abs() < 1e-4);
        // The pendulum: above its goal (1.5 m, give or take 0.1), not at its pivot (1 m); over the goal from any
        // side, not a swing's reach (0.52 m) beside it.
        let pendulum = crate::checkout_dir().join("assets/tasks/examples/pendulum.scn.ron");
        let anchor = LabelAnchor::of(&qamlab_sim::TaskScene::from_file(pendulum).unwrap());
        assert!(anchor.top.z >= 1.5, "{anchor:?}");
        for away in [Vec2::X, Vec2::new(-1.0, 1.0), Vec2::NEG_Y] {
            let spot = anchor.far_side(away);
            assert!(spot.truncate().length() < 1e-4, "{spot} for {away}");
        }
    }

    #[test]
    fn a_label_names_its_env_and_its_successes() {
        assert_eq!(label_text(3, None), "env 3");
        let none_yet = EnvTally::default();
        assert_eq!(label_text(0, Some(&none_yet)), "env 0");
        let tally = EnvTally {
            episodes: 4,
            successes: 3,
        };
        assert_eq!(label_text(7, Some(&tally)), "env 7 · 3/4 solved");
    }
}
