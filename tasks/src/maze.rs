//! [`Maze`]: where a walking robot can stand in a task scene, as an occupancy grid of its floor with the walls
//! grown by the robot's reach, and [`DistanceField`]s over it that lead to a target around the walls.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bevy::math::{Vec2, Vec3};
use qamlab_sim::TaskScene;
use qamlab_sim::authoring::BodyKind;

/// Grid resolution (metres per cell).
pub(crate) const CELL: f32 = 0.05;
/// A fixed surface whose top is within this of the robot's feet is floor; one higher is a wall.
const STEP: f32 = 0.02;
/// At most this many cells on a side: a larger floor is refused rather than planned slowly.
const MAX_SIDE: usize = 1024;

/// An axis-aligned box in the horizontal plane, with the height range it spans.
#[derive(Clone, Copy, Debug)]
struct Footprint {
    min: Vec3,
    max: Vec3,
}

impl Footprint {
    /// Horizontal distance from `p` to the box (0 inside).
    fn distance(&self, p: Vec2) -> f32 {
        let dx = (self.min.x - p.x).max(p.x - self.max.x).max(0.0);
        let dy = (self.min.y - p.y).max(p.y - self.max.y).max(0.0);
        (dx * dx + dy * dy).sqrt()
    }
}

/// The floor of a scene and where on it a robot of a given reach fits, on a grid.
#[derive(Clone, Debug)]
pub struct Maze {
    /// Corner of cell (0, 0).
    origin: Vec2,
    nx: usize,
    ny: usize,
    /// Per cell (row-major, x fastest): whether the robot's centre may be there.
    free: Vec<bool>,
    /// The free cells, for drawing random places.
    free_cells: Vec<usize>,
}

impl Maze {
    /// The maze of `scene` for the robot made of `robot` (body indices): its floor is the fixed colliders whose top
    /// is level with the robot's lowest point, its walls the fixed or kinematic colliders standing higher than
    /// that (below the robot's top); the robot's centre keeps `reach` from walls and floor edges. Errors name what
    /// is missing.
    pub fn from_scene(scene: &TaskScene, robot: &[usize], reach: f32) -> Result<Self, String> {
        Self::build(scene, robot, reach, None)
    }

    /// The maze of `scene` as [`from_scene`](Self::from_scene) makes it, but bounded by its walls alone, and only
    /// those standing higher than `underside` (what a body that high passes over is no wall): every place within the
    /// floor's outline counts as floor, as legs may step over a gap the centre could not stand on. What no robot
    /// of this reach and underside could get through, with any gait.
    pub fn walls_only(
        scene: &TaskScene,
        robot: &[usize],
        reach: f32,
        underside: f32,
    ) -> Result<Self, String> {
        Self::build(scene, robot, reach, Some(underside))
    }

    /// The maze: with `walls_only`, the underside of [`walls_only`](Self::walls_only).
    fn build(
        scene: &TaskScene,
        robot: &[usize],
        reach: f32,
        walls_only: Option<f32>,
    ) -> Result<Self, String> {
        let robot_bounds: Vec<(Vec3, Vec3)> = robot
            .iter()
            .filter_map(|&b| scene.collider_bounds(b))
            .collect();
        let feet = robot_bounds
            .iter()
            .map(|b| b.0.z)
            .fold(f32::INFINITY, f32::min);
        let head = robot_bounds
            .iter()
            .map(|b| b.1.z)
            .fold(f32::NEG_INFINITY, f32::max);
        if !feet.is_finite() {
            return Err("the robot's bodies to have colliders".into());
        }
        let (mut floors, mut walls) = (Vec::new(), Vec::new());
        for (b, def) in scene.bodies.iter().enumerate() {
            if robot.contains(&b) || def.body.kind == BodyKind::Dynamic {
                continue;
            }
            let Some((min, max)) = scene.collider_bounds(b) else {
                continue;
            };
            let print = Footprint { min, max };
            if (max.z - feet).abs() <= STEP {
                floors.push(print);
            } else if max.z > walls_only.unwrap_or(feet + STEP) && min.z < head {
                walls.push(print);
            }
        }
        if floors.is_empty() {
            return Err(format!(
                "a fixed floor whose top is level with the robot's feet (z = {feet})"
            ));
        }
        let lo = floors
            .iter()
            .fold(Vec2::INFINITY, |m, f| m.min(f.min.truncate()));
        let hi = floors
            .iter()
            .fold(Vec2::NEG_INFINITY, |m, f| m.max(f.max.truncate()));
        let (nx, ny) = (
            ((hi.x - lo.x) / CELL).ceil() as usize,
            ((hi.y - lo.y) / CELL).ceil() as usize,
        );
        if nx == 0 || ny == 0 || nx > MAX_SIDE || ny > MAX_SIDE {
            return Err(format!(
                "a floor between {CELL} and {} m on a side (it spans {} x {} m)",
                CELL * MAX_SIDE as f32,
                hi.x - lo.x,
                hi.y - lo.y
            ));
        }
        let mut maze = Self {
            origin: lo,
            nx,
            ny,
            free: vec![false; nx * ny],
            free_cells: Vec::new(),
        };
        for c in 0..nx * ny {
            let p = maze.center(c);
            // On the floor with room for the robot's reach on every side (floors may be tiled), and that far from
            // every wall.
            let on_floor = walls_only.is_some()
                || [Vec2::ZERO, Vec2::X, -Vec2::X, Vec2::Y, -Vec2::Y]
                    .iter()
                    .all(|&d| floors.iter().any(|f| f.distance(p + d * reach) == 0.0));
            let clear = walls.iter().all(|w| w.distance(p) >= reach);
            if on_floor && clear {
                maze.free[c] = true;
                maze.free_cells.push(c);
            }
        }
        if maze.free_cells.is_empty() {
            return Err(format!(
                "room on the floor for a robot reaching {reach:.2} m"
            ));
        }
        Ok(maze)
    }

    /// Centre of cell `c`.
    fn center(&self, c: usize) -> Vec2 {
        let (i, j) = (c % self.nx, c / self.nx);
        self.origin + Vec2::new((i as f32 + 0.5) * CELL, (j as f32 + 0.5) * CELL)
    }

    /// The cell holding `p`, if on the grid.
    fn cell(&self, p: Vec2) -> Option<usize> {
        let q = (p - self.origin) / CELL;
        if !(q.x >= 0.0 && q.y >= 0.0) {
            return None;
        }
        let (i, j) = (q.x as usize, q.y as usize);
        (i < self.nx && j < self.ny).then_some(j * self.nx + i)
    }

    /// Whether the robot's centre may be at `p`.
    pub fn is_free(&self, p: Vec2) -> bool {
        self.cell(p).is_some_and(|c| self.free[c])
    }

    /// Number of free cells (at least one).
    pub fn free_count(&self) -> usize {
        self.free_cells.len()
    }

    /// The centre of the `k`-th free cell (`k < free_count()`), for drawing random places.
    pub fn free_place(&self, k: usize) -> Vec2 {
        self.center(self.free_cells[k])
    }

    /// `p` if the robot's centre may be there, else the centre of the free cell nearest to it.
    pub fn snap(&self, p: Vec2) -> Vec2 {
        if self.is_free(p) {
            p
        } else {
            self.center(self.nearest_free(p))
        }
    }

    /// The free cell nearest to `p` (by centre distance).
    fn nearest_free(&self, p: Vec2) -> usize {
        *self
            .free_cells
            .iter()
            .min_by(|&&a, &&b| {
                self.center(a)
                    .distance_squared(p)
                    .total_cmp(&self.center(b).distance_squared(p))
            })
            .expect("a maze has free cells")
    }

    /// The 8 neighbours of cell `c` a robot can move to: free, and diagonals only past two free sides.
    fn moves(&self, c: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let (i, j) = ((c % self.nx) as isize, (c / self.nx) as isize);
        let at = move |di: isize, dj: isize| {
            let (a, b) = (i + di, j + dj);
            (a >= 0 && b >= 0 && (a as usize) < self.nx && (b as usize) < self.ny)
                .then(|| b as usize * self.nx + a as usize)
                .filter(|&n| self.free[n])
        };
        [
            (-1, 0),
            (1, 0),
            (0, -1),
            (0, 1),
            (-1, -1),
            (-1, 1),
            (1, -1),
            (1, 1),
        ]
        .into_iter()
        .filter_map(move |(di, dj)| {
            let n = at(di, dj)?;
            if di != 0 && dj != 0 {
                at(di, 0)?;
                at(0, dj)?;
                Some((n, std::f32::consts::SQRT_2))
            } else {
                Some((n, 1.0))
            }
        })
    }

    /// Path lengths (in cells) to `target` from every cell, through free cells; a target off the free cells is
    /// reached through the free cell nearest to it.
    pub fn distances_to(&self, target: Vec2) -> DistanceField {
        let goal = self
            .cell(target)
            .filter(|&c| self.free[c])
            .unwrap_or_else(|| self.nearest_free(target));
        let mut dist = vec![f32::INFINITY; self.free.len()];
        let mut queue = BinaryHeap::new();
        dist[goal] = 0.0;
        // Non-negative floats order as their bit patterns do.
        queue.push(Reverse((0f32.to_bits(), goal)));
        while let Some(Reverse((d, c))) = queue.pop() {
            let d = f32::from_bits(d);
            if d > dist[c] {
                continue;
            }
            for (n, step) in self.moves(c) {
                let nd = d + step;
                if nd < dist[n] {
                    dist[n] = nd;
                    queue.push(Reverse((nd.to_bits(), n)));
                }
            }
        }
        DistanceField { target, goal, dist }
    }
}

/// Path lengths to one target over a [`Maze`], and the way along them.
#[derive(Clone, Debug)]
pub struct DistanceField {
    target: Vec2,
    goal: usize,
    dist: Vec<f32>,
}

impl DistanceField {
    /// The target it leads to.
    pub fn target(&self) -> Vec2 {
        self.target
    }

    /// Whether the target can be reached from `p`.
    pub fn reaches(&self, maze: &Maze, p: Vec2) -> bool {
        self.path_length(maze, p).is_some()
    }

    /// Length of the way from `p` to the target (m), if there is one.
    pub fn path_length(&self, maze: &Maze, p: Vec2) -> Option<f32> {
        let c = maze.cell(p)?;
        self.dist[c]
            .is_finite()
            .then(|| self.dist[c] * CELL + maze.center(self.goal).distance(self.target))
    }

    /// Where to head from `p`: the point `lookahead` cells down the path, or the target once the path is that
    /// short. From a cell off the path (the robot pushed into a wall's margin), the nearest cell on it.
    pub fn waypoint(&self, maze: &Maze, p: Vec2, lookahead: usize) -> Vec2 {
        let mut c = match maze.cell(p).filter(|&c| self.dist[c].is_finite()) {
            Some(c) => c,
            None => {
                let on_path = maze
                    .free_cells
                    .iter()
                    .copied()
                    .filter(|&c| self.dist[c].is_finite())
                    .min_by(|&a, &b| {
                        maze.center(a)
                            .distance_squared(p)
                            .total_cmp(&maze.center(b).distance_squared(p))
                    });
                return on_path.map_or(self.target, |c| maze.center(c));
            }
        };
        for _ in 0..lookahead {
            if c == self.goal {
                return self.target;
            }
            let next = maze
                .moves(c)
                .min_by(|a, b| self.dist[a.0].total_cmp(&self.dist[b.0]))
                .map(|(n, _)| n);
            match next {
                Some(n) if self.dist[n] < self.dist[c] => c = n,
                _ => return self.target,
            }
        }
        maze.center(c)
    }
}
