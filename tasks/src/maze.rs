//! Where a walking robot can be in a task scene. [`Maze`]: where the walking script's robot can stand, as an
//! occupancy grid of its floor with the walls grown by the robot's reach, and [`DistanceField`]s over it that lead
//! to a target around the walls. [`Terrain`]: where its torso could get to with any gait on level ground, stepping
//! over things, crawling under them and held over gaps by its legs, which only a task that cannot be solved lacks.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bevy::math::{Quat, Vec2, Vec3};
use qamlab_sim::TaskScene;
use qamlab_sim::authoring::{BodyKind, Collider, Shape};
use qamlab_sim::scene::BodyDef;

/// Grid resolution (metres per cell).
pub(crate) const CELL: f32 = 0.05;
/// Half a cell's diagonal: the farthest a point of a cell is from its centre.
pub(crate) const HALF_DIAGONAL: f32 = CELL * std::f32::consts::FRAC_1_SQRT_2;
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

/// The robot's lowest point (its feet) and its highest (its head), from its bodies' colliders.
fn feet_and_head(scene: &TaskScene, robot: &[usize]) -> Result<(f32, f32), String> {
    let bounds: Vec<(Vec3, Vec3)> = robot
        .iter()
        .filter_map(|&b| scene.collider_bounds(b))
        .collect();
    let feet = bounds.iter().map(|b| b.0.z).fold(f32::INFINITY, f32::min);
    let head = bounds
        .iter()
        .map(|b| b.1.z)
        .fold(f32::NEG_INFINITY, f32::max);
    if !feet.is_finite() {
        return Err("the robot's bodies to have colliders".into());
    }
    Ok((feet, head))
}

/// The bounding boxes of the scene's fixed and kinematic colliders, the robot's own left out.
fn solids(scene: &TaskScene, robot: &[usize]) -> Vec<Footprint> {
    (0..scene.bodies.len())
        .filter(|&b| !robot.contains(&b) && scene.bodies[b].body.kind != BodyKind::Dynamic)
        .filter_map(|b| scene.collider_bounds(b))
        .map(|(min, max)| Footprint { min, max })
        .collect()
}

/// The horizontal rectangle that `prints` cover together.
fn outline(prints: &[Footprint]) -> (Vec2, Vec2) {
    let lo = prints
        .iter()
        .fold(Vec2::INFINITY, |m, f| m.min(f.min.truncate()));
    let hi = prints
        .iter()
        .fold(Vec2::NEG_INFINITY, |m, f| m.max(f.max.truncate()));
    (lo, hi)
}

/// Square cells of [`CELL`] over a rectangle of the horizontal plane, numbered row by row (x fastest).
#[derive(Clone, Copy, Debug)]
struct Grid {
    /// Corner of cell (0, 0).
    origin: Vec2,
    nx: usize,
    ny: usize,
}

impl Grid {
    /// The grid covering `lo` to `hi`, or an error naming the size allowed and the size it would have.
    fn covering(lo: Vec2, hi: Vec2) -> Result<Self, String> {
        let (nx, ny) = (
            ((hi.x - lo.x) / CELL).ceil() as usize,
            ((hi.y - lo.y) / CELL).ceil() as usize,
        );
        if nx == 0 || ny == 0 || nx > MAX_SIDE || ny > MAX_SIDE {
            return Err(format!(
                "between {CELL} and {} m on a side (it spans {} x {} m)",
                CELL * MAX_SIDE as f32,
                hi.x - lo.x,
                hi.y - lo.y
            ));
        }
        Ok(Self { origin: lo, nx, ny })
    }

    /// Number of cells.
    fn len(&self) -> usize {
        self.nx * self.ny
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

    /// The cell `di`, `dj` cells away from cell `c` along x and y, if on the grid.
    fn offset(&self, c: usize, di: isize, dj: isize) -> Option<usize> {
        let (a, b) = ((c % self.nx) as isize + di, (c / self.nx) as isize + dj);
        (a >= 0 && b >= 0 && (a as usize) < self.nx && (b as usize) < self.ny)
            .then(|| b as usize * self.nx + a as usize)
    }
}

/// The floor of a scene and where on it a robot of a given reach fits, on a grid.
#[derive(Clone, Debug)]
pub struct Maze {
    grid: Grid,
    /// Per cell: whether the robot's centre may be there.
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
        let (feet, head) = feet_and_head(scene, robot)?;
        let (mut floors, mut walls) = (Vec::new(), Vec::new());
        for print in solids(scene, robot) {
            if (print.max.z - feet).abs() <= STEP {
                floors.push(print);
            } else if print.max.z > feet + STEP && print.min.z < head {
                walls.push(print);
            }
        }
        if floors.is_empty() {
            return Err(format!(
                "a fixed floor whose top is level with the robot's feet (z = {feet})"
            ));
        }
        let (lo, hi) = outline(&floors);
        let grid = Grid::covering(lo, hi).map_err(|size| format!("a floor {size}"))?;
        let mut maze = Self {
            grid,
            free: vec![false; grid.len()],
            free_cells: Vec::new(),
        };
        for c in 0..grid.len() {
            let p = grid.center(c);
            // On the floor with room for the robot's reach on every side (floors may be tiled), and that far from
            // every wall.
            let on_floor = [Vec2::ZERO, Vec2::X, -Vec2::X, Vec2::Y, -Vec2::Y]
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
        self.grid.center(c)
    }

    /// The cell holding `p`, if on the grid.
    fn cell(&self, p: Vec2) -> Option<usize> {
        self.grid.cell(p)
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
        let at = move |di: isize, dj: isize| self.grid.offset(c, di, dj).filter(|&n| self.free[n]);
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

/// What a walking robot's legs can do for its torso, bounded generously.
#[derive(Clone, Copy, Debug)]
pub struct Legs {
    /// How far they reach from the torso's centre, horizontally, as authored (m).
    pub reach: f32,
    /// The longest a leg is straightened, from the torso's centre to its foot's farthest point (m).
    pub straight: f32,
    /// How much higher than they stand they may throw the torso, kicking at their joints' top speed (m).
    pub jump: f32,
}

/// A walking robot's torso as [`Terrain`] sees it, from the robot's pose at the start.
#[derive(Clone, Copy, Debug)]
pub struct Torso {
    /// How far from its centre, horizontally, it keeps from what it cannot pass over or under (m): what it fills
    /// however it turns, less the grid's half-diagonal.
    pub half_width: f32,
    /// The highest step it takes up (m): the whole robot's height at the start, or a leg straightened and its own
    /// longest extent (stood on end on that leg) where that is more, and on top the legs' jump.
    pub climb: f32,
    /// Lying flat, it passes under what is this high above the ground (m).
    pub thickness: f32,
    /// How far its legs reach from its centre, horizontally (m): ground that near holds it up.
    pub legs: f32,
}

impl Torso {
    /// The torso of the robot made of `robot` (body indices, the torso first), with legs `legs`. Errors where its
    /// collider is missing or a shape it does not size (a convex hull).
    pub fn from_scene(scene: &TaskScene, robot: &[usize], legs: Legs) -> Result<Self, String> {
        let torso = robot[0];
        let Some(collider) = &scene.bodies[torso].collider else {
            return Err("a torso with a collider".into());
        };
        // Its smallest and largest half-extents, whichever way it turns.
        let (inscribed, circumscribed) = match collider.shape {
            Shape::Cuboid { half_extents } => (half_extents.min_element(), half_extents.length()),
            Shape::Ball { radius } => (radius, radius),
            // A capsule's caps add to its length: its radius is its smallest half-extent.
            Shape::Capsule {
                radius,
                half_height,
            } => (radius, radius + half_height),
            Shape::Cylinder {
                half_height,
                radius,
            } => (radius.min(half_height), radius.hypot(half_height)),
            Shape::ConvexHull { .. } => return Err("a torso that is no convex hull".into()),
        };
        let (low, high) = scene.collider_bounds(torso).expect("it has a collider");
        let (feet, head) = feet_and_head(scene, robot)?;
        // However it turns, it fills a ball of its inscribed size about its collider's centre, the offset's
        // length from its origin (a tilt may carry the offset sideways); the grid holds its origin only to within
        // a cell's half-diagonal.
        let half_width = (inscribed - collider.offset.length() - HALF_DIAGONAL).max(0.0);
        // Turned onto its thinnest side, it may be no thicker than that.
        let thickness = (high.z - low.z).min(2.0 * inscribed);
        Ok(Self {
            half_width,
            // A robot authored crouched may stand taller: on a leg straightened under it, the torso stood on end;
            // and a crouch snapped straight throws it higher still.
            climb: (head - feet).max(legs.straight.max(legs.reach) + 2.0 * circumscribed)
                + legs.jump,
            thickness,
            legs: legs.reach,
        })
    }
}

/// Whether two colliders touch: each one's filter shares a bit with the other's membership.
fn touch(a: &Collider, b: &Collider) -> bool {
    a.filter & b.membership != 0 && b.filter & a.membership != 0
}

/// Whether a rotation is none or a turn about the vertical by a multiple of 90 degrees, within a milliradian.
fn quarter_turn(rotation: Quat) -> bool {
    let q = rotation.normalize();
    let (x, z) = (q * Vec3::X, q * Vec3::Z);
    let near_one = |v: f32| v.abs() > 1.0 - 5e-7;
    near_one(z.z) && (near_one(x.x) || near_one(x.y))
}

/// The box of a body's collider, exactly its shape: an unturned or quarter-turned cuboid, else `None`.
fn exact_box(def: &BodyDef) -> Option<Footprint> {
    let collider = def.collider.as_ref()?;
    let Shape::Cuboid { half_extents } = collider.shape else {
        return None;
    };
    if !quarter_turn(def.body.rotation) {
        return None;
    }
    let q = def.body.rotation.normalize();
    let centre = def.body.translation + q * collider.offset;
    let half = (q * half_extents).abs();
    Some(Footprint {
        min: centre - half,
        max: centre + half,
    })
}

/// The boxes the torso of the robot made of `robot` meets: the fixed and kinematic colliders that touch it.
/// Errors where boxes would not describe the scene exactly: a loose (`Dynamic`) body besides the robot, a fixed one
/// moved at reset, one that is no unturned or quarter-turned cuboid, or one only the legs touch.
fn exact_solids(scene: &TaskScene, robot: &[usize]) -> Result<Vec<Footprint>, String> {
    let own: Vec<&Collider> = robot
        .iter()
        .filter_map(|&b| scene.bodies[b].collider.as_ref())
        .collect();
    let torso = scene.bodies[robot[0]]
        .collider
        .as_ref()
        .ok_or("a torso with a collider")?;
    let mut boxes = Vec::new();
    for (b, def) in scene.bodies.iter().enumerate() {
        let Some(collider) = def.collider.as_ref().filter(|_| !robot.contains(&b)) else {
            continue;
        };
        let name = &def.body.name;
        if def.body.kind == BodyKind::Dynamic {
            return Err(format!(
                "no loose bodies (`{name}` may be pushed into a step or a bridge)"
            ));
        }
        if !own.iter().any(|r| touch(collider, r)) {
            continue;
        }
        if !touch(collider, torso) {
            return Err(format!(
                "`{name}` to touch the torso too, or none of the robot"
            ));
        }
        if def.randomize.is_some() {
            return Err(format!("`{name}` to stay where it is authored"));
        }
        let Some(print) = exact_box(def) else {
            return Err(format!(
                "`{name}` to be a cuboid unturned or turned by quarter turns about z"
            ));
        };
        boxes.push(print);
    }
    Ok(boxes)
}

/// Where a robot's torso could get to with any gait, on level ground: a height field over the scene's fixed and
/// kinematic colliders that it touches, each cell holding the ground heights within its legs' reach there (the
/// legs hold it at any of them, so it crosses gaps narrower than their reach) and those the torso fits over. It
/// steps up at most its [`climb`](Torso::climb), passes over what is lower than its underside standing and under
/// what is higher than its top lying flat. A fall has no horizontal bound (running off an edge, it flies as far as
/// its speed carries it, and over walls as high as where it left), so only where it stays on ground of one height
/// is anything judged: where it can get to other ground, or to an edge with nothing to hold it, or starts over
/// nothing, [`Terrain::reach_from`] does not say. A target it cannot get to then is one no policy reaches. Only
/// scenes its boxes describe exactly are judged (see [`Terrain::from_scene`]).
#[derive(Clone, Debug)]
pub struct Terrain {
    grid: Grid,
    climb: f32,
    /// The robot's lowest point at the start: the torso begins over ground no higher than that.
    feet: f32,
    /// The heights of everything within the legs' reach of cell `c`, ascending:
    /// `ground[ground_starts[c]..ground_starts[c + 1]]`.
    ground: Vec<f32>,
    ground_starts: Vec<usize>,
    /// The heights the torso fits over in cell `c`, ascending: `heights[starts[c]..starts[c + 1]]`.
    heights: Vec<f32>,
    starts: Vec<usize>,
}

impl Terrain {
    /// The terrain of `scene` for `torso`, the body of the robot made of `robot` (body indices, the torso first).
    /// Errors, and judges nothing, where it cannot be exact: for a scene boxes do not describe exactly (a loose
    /// body, a fixed one moved at reset, one that is no unturned or quarter-turned cuboid, one only the legs
    /// touch), or too large to grid.
    pub fn from_scene(scene: &TaskScene, robot: &[usize], torso: Torso) -> Result<Self, String> {
        let (feet, _) = feet_and_head(scene, robot)?;
        let solids = exact_solids(scene, robot)?;
        // A foothold anywhere the torso's centre may be in a cell is this near the cell's centre.
        let legs = torso.legs + HALF_DIAGONAL;
        // Every collider, and room past them for the torso held out over an edge and for the edge beyond it.
        let (lo, hi) = outline(&solids);
        let margin = Vec2::splat(2.0 * legs + CELL);
        let grid =
            Grid::covering(lo - margin, hi + margin).map_err(|size| format!("a scene {size}"))?;
        let mut terrain = Self {
            grid,
            climb: torso.climb,
            feet,
            ground: Vec::new(),
            ground_starts: vec![0],
            heights: Vec::new(),
            starts: vec![0],
        };
        for c in 0..grid.len() {
            let p = grid.center(c);
            let mut ground: Vec<f32> = solids
                .iter()
                .filter(|s| s.distance(p) <= legs)
                .map(|s| s.max.z)
                .collect();
            ground.sort_by(f32::total_cmp);
            ground.dedup_by(|a, b| *a - *b < 1e-3);
            // Over ground at `g` its underside is anywhere from `g` (lying flat) to `g + climb` (standing): what
            // it can neither pass over standing nor under lying flat is in its way at any height.
            let near: Vec<&Footprint> = solids
                .iter()
                .filter(|s| s.distance(p) < torso.half_width)
                .collect();
            let fits = |g: f32| {
                near.iter()
                    .all(|s| s.max.z <= g + torso.climb || s.min.z >= g + torso.thickness)
            };
            terrain
                .heights
                .extend(ground.iter().copied().filter(|&g| fits(g)));
            terrain.starts.push(terrain.heights.len());
            terrain.ground.extend(ground);
            terrain.ground_starts.push(terrain.ground.len());
        }
        Ok(terrain)
    }

    /// The heights the torso fits over in cell `c`, as indices into `heights`.
    fn nodes(&self, c: usize) -> std::ops::Range<usize> {
        self.starts[c]..self.starts[c + 1]
    }

    /// The heights of everything within the legs' reach of cell `c`.
    fn ground(&self, c: usize) -> &[f32] {
        &self.ground[self.ground_starts[c]..self.ground_starts[c + 1]]
    }

    /// Where the torso can get to from `start`, or `None` where that is not sure: it starts over no ground, or in
    /// something (the solver pushes it out anywhere), or drops there next to something it may push off, or it can
    /// get to ground of another height or to an edge (it may fall off, and a fall has no horizontal bound).
    pub fn reach_from(&self, start: Vec2) -> Option<Reach> {
        let cell = self.grid.cell(start)?;
        // It falls onto anything at or below its feet, and rests over the highest of it.
        let seeds: Vec<usize> = self
            .nodes(cell)
            .filter(|&n| self.heights[n] <= self.feet + STEP)
            .collect();
        let level = seeds.iter().map(|&n| self.heights[n]).reduce(f32::max)?;
        // Dropping onto it, it lands where it starts unless it has something else to push off.
        let dropped = level < self.feet - STEP;
        if dropped && self.ground(cell).iter().any(|&g| (g - level).abs() > STEP) {
            return None;
        }
        let level_with = |n: usize| (self.heights[n] - level).abs() <= STEP;
        let mut reached = vec![false; self.heights.len()];
        let mut stack = Vec::new();
        for n in seeds {
            if !level_with(n) {
                return None;
            }
            reached[n] = true;
            stack.push((cell, n));
        }
        // Depth-first over (cell, height), to a side cell or within the cell, at most a step up: only ground of
        // the start's height, with ground at its height to hold it in every cell it may step into, diagonally too.
        while let Some((c, n)) = stack.pop() {
            let h = self.heights[n];
            for (di, dj) in (-1..=1).flat_map(|di| (-1..=1).map(move |dj| (di, dj))) {
                let near = self.grid.offset(c, di, dj)?;
                if !self.ground(near).iter().any(|&g| (g - h).abs() <= STEP) {
                    return None;
                }
            }
            for (di, dj) in [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)] {
                let side = self
                    .grid
                    .offset(c, di, dj)
                    .expect("on the grid, as checked above");
                for m in self.nodes(side) {
                    if !reached[m] && self.heights[m] - h <= self.climb {
                        if !level_with(m) {
                            return None;
                        }
                        reached[m] = true;
                        stack.push((side, m));
                    }
                }
            }
        }
        let cells = (0..self.grid.len())
            .map(|c| self.nodes(c).any(|n| reached[n]))
            .collect();
        Some(Reach {
            grid: self.grid,
            cells,
        })
    }

    /// The centre of the cell nearest to `p` where the torso fits at some height, and its distance from `p`; `None`
    /// where it fits nowhere.
    pub fn room_near(&self, p: Vec2) -> Option<(Vec2, f32)> {
        nearest(&self.grid, p, |c| !self.nodes(c).is_empty())
    }
}

/// The places a torso can get to over a [`Terrain`] from one start.
#[derive(Clone, Debug)]
pub struct Reach {
    grid: Grid,
    /// Per cell: whether the torso gets there.
    cells: Vec<bool>,
}

impl Reach {
    /// Whether the torso gets to `p`.
    pub fn reaches(&self, p: Vec2) -> bool {
        self.grid.cell(p).is_some_and(|c| self.cells[c])
    }

    /// Distance from `p` to the nearest place the torso gets to (infinite where there is none).
    pub fn distance(&self, p: Vec2) -> f32 {
        nearest(&self.grid, p, |c| self.cells[c]).map_or(f32::INFINITY, |(_, d)| d)
    }
}

/// The centre of the cell of `grid` nearest to `p` among those `keep` takes, and its distance from `p`.
fn nearest(grid: &Grid, p: Vec2, keep: impl Fn(usize) -> bool) -> Option<(Vec2, f32)> {
    (0..grid.len())
        .filter(|&c| keep(c))
        .map(|c| (grid.center(c), grid.center(c).distance(p)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}
