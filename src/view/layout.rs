//! Where things go in the picture, as pure functions of a task scene (in the scene's z-up coordinates): each env's
//! working volume (what the camera frames, and where the env's label hangs), the grid the envs are shown in, the
//! floor, and the legs drawn under a table. Drawing only: the envs' physics is built from the scene alone.

use bevy::prelude::*;
use qamlab_sim::TaskScene;
use qamlab_sim::authoring::{BodyKind, JointKind, Shape};

use super::camera::OrbitCamera;
use super::render_sync::Z_UP_TO_Y_UP;

/// An axis-aligned box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// The lowest corner.
    pub min: Vec3,
    /// The highest corner.
    pub max: Vec3,
}

impl Bounds {
    /// The box between two corners.
    pub fn new(min: Vec3, max: Vec3) -> Self {
        Self { min, max }
    }

    /// The smallest box holding both.
    pub fn union(self, other: Self) -> Self {
        Self::new(self.min.min(other.min), self.max.max(other.max))
    }

    /// The centre.
    pub fn center(&self) -> Vec3 {
        (self.min + self.max) / 2.0
    }

    /// The size along each axis.
    pub fn size(&self) -> Vec3 {
        self.max - self.min
    }

    /// The eight corners.
    pub fn corners(&self) -> [Vec3; 8] {
        std::array::from_fn(|k| {
            Vec3::new(
                if k & 1 == 0 { self.min.x } else { self.max.x },
                if k & 2 == 0 { self.min.y } else { self.max.y },
                if k & 4 == 0 { self.min.z } else { self.max.z },
            )
        })
    }

    /// Moved by `by`.
    pub fn translated(self, by: Vec3) -> Self {
        Self::new(self.min + by, self.max + by)
    }

    /// The box around this one turned by `rotation` (exact for quarter turns, as from z-up to y-up).
    pub fn rotated(self, rotation: Quat) -> Self {
        let turned = self.corners().map(|c| rotation * c);
        let min = turned.iter().copied().fold(Vec3::INFINITY, Vec3::min);
        let max = turned.iter().copied().fold(Vec3::NEG_INFINITY, Vec3::max);
        Self::new(min, max)
    }
}

/// Where one env's task happens, which the camera frames: the moving bodies wherever their joints' ranges take
/// them (a gantry's whole reach), where the objects start, where the goals' targets can be drawn (give or take
/// their tolerance), and, for a robot that walks (a free body with legs), every fixed collider: it may go anywhere
/// on them. A scene's table or floor beyond that reach is left to the edges of the picture.
pub fn working_volume(scene: &TaskScene) -> Bounds {
    let joint_of: Vec<Option<usize>> = (0..scene.bodies.len())
        .map(|b| scene.joints.iter().position(|j| j.child == b))
        .collect();
    let moving = (0..scene.bodies.len())
        .filter(|&b| scene.bodies[b].body.kind != BodyKind::Fixed)
        .filter_map(|b| {
            let bounds = scene
                .collider_bounds(b)
                .map(|(min, max)| Bounds::new(min, max))?;
            Some(swept_by_joints(
                scene,
                &joint_of,
                b,
                randomized(scene, b, bounds),
            ))
        });
    let fixed = stage(scene);
    let goals = scene.goals.iter().map(|goal| {
        let span = goal.target_span();
        let min = Vec3::from_array(span.map(|r| r.min));
        let max = Vec3::from_array(span.map(|r| r.max));
        let reach = Vec3::splat(goal.goal.tolerance);
        Bounds::new(min - reach, max + reach)
    });
    // An axis goal's arrows, from its body's collider's centre wherever the body can start, any way round.
    let arrows = (0..scene.axis_goals.len()).filter_map(|k| {
        let b = scene.axis_goals[k].body;
        let (min, max) = scene.collider_bounds(b)?;
        let half = (max - min) / 2.0;
        let starts = randomized(scene, b, Bounds::new(min, max));
        let length = Vec3::splat(super::render_sync::axis_arrow_length(scene, k));
        Some(Bounds::new(
            starts.min + half - length,
            starts.max - half + length,
        ))
    });
    let mut parts: Vec<Bounds> = moving.chain(goals).chain(arrows).collect();
    if walks(scene, &joint_of) || parts.is_empty() {
        parts.extend(fixed);
    }
    parts
        .into_iter()
        .reduce(Bounds::union)
        .unwrap_or(Bounds::new(
            Vec3::new(-0.3, -0.3, 0.0),
            Vec3::new(0.3, 0.3, 0.2),
        ))
}

/// What the env stands on: the box around its fixed colliders (a table top, a maze), if it has any.
pub fn stage(scene: &TaskScene) -> Option<Bounds> {
    (0..scene.bodies.len())
        .filter(|&b| scene.bodies[b].body.kind == BodyKind::Fixed)
        .filter_map(|b| scene.collider_bounds(b))
        .map(|(min, max)| Bounds::new(min, max))
        .reduce(Bounds::union)
}

/// Whether the scene's robot walks: a free body (no joint holds it) carries jointed links, as antmaze's torso.
fn walks(scene: &TaskScene, joint_of: &[Option<usize>]) -> bool {
    (0..scene.bodies.len()).any(|b| {
        scene.bodies[b].body.kind != BodyKind::Fixed
            && joint_of[b].is_none()
            && scene.joints.iter().any(|j| j.parent == b)
    })
}

/// Body `b`'s box wherever its reset draws it: each randomised coordinate over its range, and a randomised yaw
/// turning it all the way round its origin.
fn randomized(scene: &TaskScene, b: usize, mut bounds: Bounds) -> Bounds {
    let def = &scene.bodies[b];
    let Some(random) = &def.randomize else {
        return bounds;
    };
    let origin = def.body.translation;
    if random.yaw.is_some() {
        let reach = bounds
            .corners()
            .iter()
            .map(|c| (*c - origin).truncate().length())
            .fold(0.0, f32::max);
        (bounds.min.x, bounds.max.x) = (origin.x - reach, origin.x + reach);
        (bounds.min.y, bounds.max.y) = (origin.y - reach, origin.y + reach);
    }
    for (axis, range) in [random.x, random.y, random.z].into_iter().enumerate() {
        if let Some(range) = range {
            bounds.min[axis] += range.min - origin[axis];
            bounds.max[axis] += range.max - origin[axis];
        }
    }
    bounds
}

/// Body `b`'s box swept by every joint between it and the root of its chain, its own joint first (each joint
/// moves what the joints below it reach): a prismatic joint over its limits (an unlimited one could go anywhere,
/// and is left out), a revolute joint all the way round its axis.
fn swept_by_joints(
    scene: &TaskScene,
    joint_of: &[Option<usize>],
    b: usize,
    mut bounds: Bounds,
) -> Bounds {
    let mut next = joint_of[b];
    // A chain is never longer than the bodies (the scene's joints form a tree); the bound guards a malformed one.
    for _ in 0..scene.bodies.len() {
        let Some(j) = next else { break };
        let joint = &scene.joints[j].joint;
        bounds = match (joint.kind, joint.limits) {
            (JointKind::Prismatic { axis }, Some(limits)) => {
                let (a, b) = (
                    axis.normalize_or_zero() * limits.min,
                    axis.normalize_or_zero() * limits.max,
                );
                Bounds::new(bounds.min + a.min(b), bounds.max + a.max(b))
            }
            (JointKind::Revolute { axis }, _) => swept_round(bounds, joint.anchor, axis),
            _ => bounds,
        };
        next = joint_of[scene.joints[j].parent];
    }
    bounds
}

/// The box holding `bounds` turned any angle about the line through `anchor` along `axis`: each corner runs
/// round a circle, and the box of those circles holds the turned box (the hull of its turned corners).
fn swept_round(bounds: Bounds, anchor: Vec3, axis: Vec3) -> Bounds {
    let axis = axis.normalize_or_zero();
    // Half the extent of a unit circle about `axis` along each world axis.
    let spread = (Vec3::ONE - axis * axis).max(Vec3::ZERO).map(f32::sqrt);
    bounds
        .corners()
        .map(|corner| {
            let along = axis * (corner - anchor).dot(axis);
            let radius = (corner - anchor - along).length();
            let centre = anchor + along;
            Bounds::new(centre - spread * radius, centre + spread * radius)
        })
        .into_iter()
        .fold(bounds, Bounds::union)
}

/// Half the width of a scene in the table plane: the farthest corner of any collider's bounding box from the
/// origin at its initial pose (at least 0.3 m). Envs shown side by side are this far apart and more.
pub fn scene_extent(scene: &TaskScene) -> f32 {
    (0..scene.bodies.len())
        .filter_map(|b| scene.collider_bounds(b))
        .map(|(min, max)| min.truncate().abs().max(max.truncate().abs()).length())
        .fold(0.3, f32::max)
}

/// How `shown` envs are laid out side by side: a near-square grid, row by row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// Envs in a row.
    pub cols: usize,
    /// Rows.
    pub rows: usize,
    /// Distance between neighbouring envs' origins.
    pub spacing: f32,
}

impl Grid {
    /// The grid of `shown` envs of `scene`: far enough apart that no two tables touch, and that, as the camera
    /// frames the grid, no env's working volume covers another's on screen (a tall scene's top would reach over
    /// the row behind it).
    pub fn new(shown: usize, scene: &TaskScene) -> Self {
        let cols = (shown.max(1) as f32).sqrt().ceil() as usize;
        let rows = shown.max(1).div_ceil(cols);
        let apart = 2.0 * scene_extent(scene) + 0.3;
        Self {
            cols,
            rows,
            spacing: spacing_in_view(cols, rows, working_volume(scene), apart),
        }
    }

    /// Where env `env`'s origin goes, in the scene's plane (the grid centred on the origin).
    pub fn cell(&self, env: usize) -> Vec2 {
        let origin = Vec2::new((self.cols - 1) as f32, (self.rows - 1) as f32) * self.spacing / 2.0;
        Vec2::new((env % self.cols) as f32, (env / self.cols) as f32) * self.spacing - origin
    }

    /// The working volumes of the first `shown` envs together: what the camera frames.
    pub fn framed(&self, shown: usize, work: Bounds) -> Bounds {
        (0..shown.max(1))
            .map(|env| work.translated(self.cell(env).extend(0.0)))
            .reduce(Bounds::union)
            .unwrap_or(work)
    }
}

/// Room left between neighbouring envs' pictures, as a share of the least spacing that keeps them apart: each
/// env's label hangs above it.
const VIEW_MARGIN: f32 = 0.1;

/// The shape (width / height) of the 3D view a grid is spaced for: a window maximised on a 1920 x 1080 screen,
/// beside the panel at its default width. A wider view frames the grid from nearer, where its far rows are seen
/// more edge-on and show closer together (up to one whose height the grid fills, beyond which nothing changes);
/// the window as it opens (1280 x 760) has a narrower one.
const SPACED_FOR_VIEW: f32 = (1920.0 - 340.0) / 1080.0;

/// `apart`, or where the envs would cover each other on screen at that (tall ones), the least spacing of a `cols` x
/// `rows` grid of envs whose working volume is `work` at which, as the camera frames the grid, no env's working
/// volume covers a neighbour's, and [`VIEW_MARGIN`] more. Found in the camera's perspective, not along one
/// direction: the framing fills the view, so the far rows are seen from well under the camera's pitch, more
/// edge-on than the near rows.
fn spacing_in_view(cols: usize, rows: usize, work: Bounds, apart: f32) -> f32 {
    let clear = |spacing| {
        shows_apart(
            &Grid {
                cols,
                rows,
                spacing,
            },
            work,
        )
    };
    if clear(apart) {
        return apart;
    }
    // At `apart` they cover each other: double until they show apart, then halve the gap.
    let (mut low, mut high) = (apart, 2.0 * apart);
    while !clear(high) {
        if high > 64.0 * apart {
            return high;
        }
        (low, high) = (high, 2.0 * high);
    }
    for _ in 0..16 {
        let mid = (low + high) / 2.0;
        if clear(mid) {
            high = mid;
        } else {
            low = mid;
        }
    }
    high * (1.0 + VIEW_MARGIN)
}

/// Whether, as the camera frames `grid` in a view of [`SPACED_FOR_VIEW`], each env's working volume (`work`, in
/// the env's frame) shows clear of its neighbours' (those up to two cells away: farther ones show farther apart).
fn shows_apart(grid: &Grid, work: Bounds) -> bool {
    let shown = grid.cols * grid.rows;
    let pictures = pictures(grid, shown, work, SPACED_FOR_VIEW);
    (0..shown).all(|a| {
        let (col, row) = ((a % grid.cols) as i64, (a / grid.cols) as i64);
        (a + 1..shown).all(|b| {
            let (dx, dy) = ((b % grid.cols) as i64 - col, (b / grid.cols) as i64 - row);
            dx.abs() > 2 || dy.abs() > 2 || !pictures_overlap(&pictures[a], &pictures[b])
        })
    })
}

/// The pictures of the working volumes (`work`, in each env's frame) of the first `shown` envs of `grid`, as the
/// camera frames them in a view of width / height `aspect`: each volume's corners on screen.
fn pictures(grid: &Grid, shown: usize, work: Bounds, aspect: f32) -> Vec<[Vec2; 8]> {
    let framed = grid.framed(shown, work).rotated(Z_UP_TO_Y_UP);
    let camera = OrbitCamera::framing(&framed, aspect).transform();
    let to_camera = camera.rotation.inverse();
    (0..shown)
        .map(|env| {
            work.translated(grid.cell(env).extend(0.0))
                .corners()
                .map(|corner| {
                    let q = to_camera * (Z_UP_TO_Y_UP * corner - camera.translation);
                    q.truncate() / -q.z
                })
        })
        .collect()
}

/// Whether the convex hulls of two sets of points overlap: whether no line through two points of either set has
/// the two hulls on its two sides (the hulls' edges are among those lines).
fn pictures_overlap(a: &[Vec2], b: &[Vec2]) -> bool {
    let normals = |p: &[Vec2]| -> Vec<Vec2> {
        p.iter()
            .enumerate()
            .flat_map(|(k, u)| p[k + 1..].iter().map(move |v| (*v - *u).perp()))
            .filter_map(Vec2::try_normalize)
            .collect()
    };
    let span = |p: &[Vec2], n: Vec2| {
        p.iter()
            .map(|q| q.dot(n))
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            })
    };
    normals(a).into_iter().chain(normals(b)).all(|n| {
        let ((a_lo, a_hi), (b_lo, b_hi)) = (span(a, n), span(b, n));
        a_hi > b_lo && b_hi > a_lo
    })
}

/// How far under a table its floor lies: a table's legs' worth.
pub const TABLE_HEIGHT: f32 = 0.7;

/// Height of the floor drawn under the scene: under a walking robot's ground, that ground's underside (it is the
/// ground: nothing holds it up); otherwise [`TABLE_HEIGHT`] under the lowest fixed collider, the table, which
/// [`table_legs`] hold up.
pub fn floor_height(scene: &TaskScene) -> f32 {
    let lowest = lowest_fixed(scene).unwrap_or(0.0);
    let joint_of: Vec<Option<usize>> = (0..scene.bodies.len())
        .map(|b| scene.joints.iter().position(|j| j.child == b))
        .collect();
    if walks(scene, &joint_of) {
        // A millimetre under, so that the floor never shares a plane with the ground's underside.
        lowest - 0.001
    } else {
        lowest - TABLE_HEIGHT
    }
}

/// The lowest point of the fixed colliders, if any.
fn lowest_fixed(scene: &TaskScene) -> Option<f32> {
    stage(scene).map(|stage| stage.min.z)
}

/// Legs under each table (a fixed box whose underside is the scene's lowest fixed point) down to the floor, one
/// near each corner; none where the floor is the table's own underside (a walking robot's ground). Drawing only:
/// the physics has no legs.
pub fn table_legs(scene: &TaskScene) -> Vec<Bounds> {
    let (Some(lowest), floor) = (lowest_fixed(scene), floor_height(scene)) else {
        return Vec::new();
    };
    if lowest - floor < 0.01 {
        return Vec::new();
    }
    (0..scene.bodies.len())
        .filter(|&b| scene.bodies[b].body.kind == BodyKind::Fixed)
        .filter(|&b| {
            scene.bodies[b]
                .collider
                .as_ref()
                .is_some_and(|c| matches!(c.shape, Shape::Cuboid { .. }))
        })
        .filter_map(|b| scene.collider_bounds(b))
        .filter(|(min, _)| min.z - lowest < 1e-3)
        .flat_map(|(min, max)| {
            let size = max - min;
            // Square legs a few percent of the table's width, set in by their own width from each corner.
            let side = (0.06 * size.x.min(size.y)).clamp(0.03, 0.08);
            let inset = Vec2::splat(side);
            let (low, high) = (min.truncate() + inset, max.truncate() - inset);
            [
                Vec2::new(low.x, low.y),
                Vec2::new(high.x, low.y),
                Vec2::new(low.x, high.y),
                Vec2::new(high.x, high.y),
            ]
            .map(|at| {
                let half = Vec2::splat(side / 2.0);
                Bounds::new((at - half).extend(floor), (at + half).extend(min.z))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str) -> TaskScene {
        qamlab_tasks::load_task(name).unwrap().scene
    }

    fn pendulum() -> TaskScene {
        TaskScene::from_file(crate::checkout_dir().join("assets/tasks/examples/pendulum.scn.ron"))
            .unwrap()
    }

    fn close(a: Vec3, b: Vec3) -> bool {
        (a - b).abs().max_element() < 2e-3
    }

    #[test]
    fn the_gantrys_working_volume_is_its_reach_not_the_table() {
        let work = working_volume(&task("cube-single"));
        // The palm (0.063 m round its yaw axis) slides 0.3 m either way in x and y; the fingers reach from 3 cm
        // under the table top (the z joint's lower limit; the table stops them) to 0.41 m up. The table is 1 m wide.
        assert!(
            close(work.min, Vec3::new(-0.3632, -0.3632, -0.03))
                && close(work.max, Vec3::new(0.3632, 0.3632, 0.41)),
            "{work:?}"
        );
        // cube-double has the same robot, and cubes and goals inside its reach.
        assert_eq!(working_volume(&task("cube-double")), work);
    }

    #[test]
    fn a_walking_robots_working_volume_is_its_whole_maze() {
        let work = working_volume(&task("antmaze-umaze"));
        assert!(
            close(work.min.truncate().extend(0.0), Vec3::new(-1.6, -1.6, 0.0))
                && close(work.max.truncate().extend(0.0), Vec3::new(1.6, 1.6, 0.0)),
            "{work:?}"
        );
        assert!(work.min.z <= -0.1 + 1e-4 && work.max.z >= 0.3, "{work:?}");
    }

    #[test]
    fn an_axis_goals_arrows_are_in_the_working_volume() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/tasks/examples/topple.scn.ron"
        );
        let scene = TaskScene::from_file(path).unwrap();
        let work = working_volume(&scene);
        // The cylinder's centre 10 cm up; its arrows reach its bounding sphere (10.8 cm) and 8 cm past, any way.
        let length = super::super::render_sync::axis_arrow_length(&scene, 0);
        assert!(
            (length - (0.1f32.hypot(0.04) + 0.08)).abs() < 1e-6,
            "{length}"
        );
        assert!(work.max.z >= 0.1 + length - 1e-6, "{work:?}");
        assert!(
            work.min.x <= -length + 1e-6 && work.max.y >= length - 1e-6,
            "{work:?}"
        );
    }

    #[test]
    fn a_pendulums_working_volume_is_its_swing_and_its_goal() {
        let work = working_volume(&pendulum());
        // The pole's far end 0.52 m from the pivot (1 m up), all the way round; the goal 1.5 m up, 0.1 m either way
        // in x, give or take its 0.1 m tolerance.
        assert!(
            close(work.min, Vec3::new(-0.52, -0.1, 0.48))
                && close(work.max, Vec3::new(0.52, 0.1, 1.6)),
            "{work:?}"
        );
    }

    #[test]
    fn a_grid_frames_every_env_in_it() {
        let scene = task("cube-single");
        let work = working_volume(&scene);
        let one = Grid::new(1, &scene);
        assert_eq!(one.cell(0), Vec2::ZERO);
        assert_eq!(one.framed(1, work), work);
        let grid = Grid::new(9, &scene);
        assert_eq!((grid.cols, grid.rows), (3, 3));
        let framed = grid.framed(9, work);
        assert!(close(framed.center(), work.center()), "{framed:?}");
        let wider = Vec3::new(2.0 * grid.spacing, 2.0 * grid.spacing, 0.0);
        assert!(close(framed.size(), work.size() + wider), "{framed:?}");
        // Five envs: two rows of three, the second row short.
        let five = Grid::new(5, &scene);
        assert_eq!((five.cols, five.rows), (3, 2));
        assert!(close(
            five.framed(5, work).size(),
            work.size() + Vec3::new(2.0, 1.0, 0.0) * five.spacing
        ));
    }

    #[test]
    fn no_env_of_a_grid_covers_another_on_screen() {
        // A pendulum's swing stands 1.1 m tall on a 0.6 m footprint: spaced by its footprint alone, each env's
        // top showed over the row behind it.
        for (name, scene) in [
            ("pendulum", pendulum()),
            ("cube-single", task("cube-single")),
            ("antmaze-umaze", task("antmaze-umaze")),
        ] {
            for (shown, aspect) in [
                (9, 940.0 / 760.0),
                (4, SPACED_FOR_VIEW),
                (16, 0.8),
                (25, 1.2),
                (2, 1.0),
            ] {
                let grid = Grid::new(shown, &scene);
                let pictures = pictures(&grid, shown, working_volume(&scene), aspect);
                for a in 0..shown {
                    for b in a + 1..shown {
                        assert!(
                            !pictures_overlap(&pictures[a], &pictures[b]),
                            "{name}, {shown} envs: env {a} covers env {b} on screen"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn low_envs_keep_their_spacing_in_the_table_plane() {
        // Their tables and mazes set them apart, and their working volumes are low enough to show apart then: the
        // cubes' up to 30 envs (a 6 x 6 grid's far rows are seen edge-on enough for the gantry's reach to cover
        // the row behind), antmaze's every count.
        for (name, counts) in [
            ("cube-single", 1..=30),
            ("cube-double", 1..=30),
            ("antmaze-umaze", 1..=64),
        ] {
            let scene = task(name);
            for shown in counts {
                let grid = Grid::new(shown, &scene);
                assert_eq!(
                    grid.spacing,
                    2.0 * scene_extent(&scene) + 0.3,
                    "{name}, {shown} envs"
                );
            }
        }
        // The pendulum's rows stand farther apart than its footprint asks for.
        let scene = pendulum();
        assert!(Grid::new(9, &scene).spacing > 2.0 * scene_extent(&scene) + 0.3 + 0.5);
    }

    #[test]
    fn a_table_stands_on_legs_down_to_the_floor_and_a_maze_on_the_ground() {
        let scene = task("cube-single");
        let floor = floor_height(&scene);
        // The table top at 0, 10 cm thick, 0.7 m above the floor.
        assert!((floor + 0.8).abs() < 1e-4, "{floor}");
        let legs = table_legs(&scene);
        assert_eq!(legs.len(), 4);
        for leg in &legs {
            assert!(
                (leg.min.z - floor).abs() < 1e-4 && (leg.max.z + 0.1).abs() < 1e-4,
                "{leg:?}"
            );
            // Under the table, near a corner.
            let at = leg.center().truncate().abs();
            assert!(
                at.x > 0.4 && at.x < 0.5 && at.y > 0.4 && at.y < 0.5,
                "{leg:?}"
            );
        }
        // antmaze-umaze's floor slab is the ground: the floor is its underside, with no legs.
        let maze = task("antmaze-umaze");
        assert!((floor_height(&maze) + 0.1).abs() < 2e-3);
        assert!(table_legs(&maze).is_empty());
        // The pendulum hangs from a ball: nothing to stand on legs.
        assert!(table_legs(&pendulum()).is_empty());
    }

    #[test]
    fn bounds_turn_from_z_up_to_y_up() {
        let bounds = Bounds::new(Vec3::new(-1.0, -2.0, 0.0), Vec3::new(1.0, 2.0, 3.0));
        let turned = bounds.rotated(super::super::render_sync::Z_UP_TO_Y_UP);
        assert!(
            close(turned.min, Vec3::new(-1.0, 0.0, -2.0))
                && close(turned.max, Vec3::new(1.0, 3.0, 2.0))
        );
    }
}
