//! The rows of a dataset being built, one state of an episode each.

/// The rows of a dataset being built, flat and row-major.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetRows {
    /// Observation width.
    pub obs_dim: usize,
    /// Action width.
    pub action_dim: usize,
    /// `qpos` width.
    pub qpos_dim: usize,
    /// `qvel` width.
    pub qvel_dim: usize,
    /// `[R * obs_dim]`.
    pub observations: Vec<f32>,
    /// `[R * action_dim]`.
    pub actions: Vec<f32>,
    /// `[R]`.
    pub terminals: Vec<bool>,
    /// `[R]`.
    pub rewards: Vec<f32>,
    /// `[R]`.
    pub masks: Vec<f32>,
    /// `[R]`.
    pub successes: Vec<bool>,
    /// `[R * qpos_dim]`.
    pub qpos: Vec<f32>,
    /// `[R * qvel_dim]`.
    pub qvel: Vec<f32>,
}

/// One row to append.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    /// The state's observation.
    pub observation: &'a [f32],
    /// The action taken (zeros on a final row).
    pub action: &'a [f32],
    /// Reward of the step (see the table in [`dataset`](super)).
    pub reward: f32,
    /// Success of the step (see the table in [`dataset`](super)).
    pub success: bool,
    /// Whether this is the episode's final row.
    pub terminal: bool,
    /// Physics positions of the state.
    pub qpos: &'a [f32],
    /// Physics velocities of the state.
    pub qvel: &'a [f32],
}

impl DatasetRows {
    /// No rows yet, with these widths.
    pub fn new(obs_dim: usize, action_dim: usize, qpos_dim: usize, qvel_dim: usize) -> Self {
        Self {
            obs_dim,
            action_dim,
            qpos_dim,
            qvel_dim,
            ..Self::default()
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.terminals.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.terminals.is_empty()
    }

    /// Appends a row (widths must match; a programming error otherwise).
    pub fn push(&mut self, row: Row<'_>) {
        assert_eq!(row.observation.len(), self.obs_dim, "observation width");
        assert_eq!(row.action.len(), self.action_dim, "action width");
        assert_eq!(row.qpos.len(), self.qpos_dim, "qpos width");
        assert_eq!(row.qvel.len(), self.qvel_dim, "qvel width");
        self.observations.extend_from_slice(row.observation);
        self.actions.extend_from_slice(row.action);
        self.terminals.push(row.terminal);
        self.rewards.push(row.reward);
        self.masks.push(if row.success { 0.0 } else { 1.0 });
        self.successes.push(row.success);
        self.qpos.extend_from_slice(row.qpos);
        self.qvel.extend_from_slice(row.qvel);
    }

    /// Appends all rows of `other` (same widths).
    pub fn append(&mut self, other: &DatasetRows) {
        assert_eq!(
            (self.obs_dim, self.action_dim, self.qpos_dim, self.qvel_dim),
            (
                other.obs_dim,
                other.action_dim,
                other.qpos_dim,
                other.qvel_dim
            ),
            "row widths"
        );
        self.observations.extend_from_slice(&other.observations);
        self.actions.extend_from_slice(&other.actions);
        self.terminals.extend_from_slice(&other.terminals);
        self.rewards.extend_from_slice(&other.rewards);
        self.masks.extend_from_slice(&other.masks);
        self.successes.extend_from_slice(&other.successes);
        self.qpos.extend_from_slice(&other.qpos);
        self.qvel.extend_from_slice(&other.qvel);
    }

    /// The bytes one row takes: its float32 columns, reward and mask, and its two flags.
    pub fn row_bytes(&self) -> usize {
        (self.obs_dim + self.action_dim + self.qpos_dim + self.qvel_dim + 2) * 4 + 2
    }

    /// Makes room for `rows` more rows at once (a large dataset then holds no spare capacity); `false` where the
    /// memory cannot be had.
    pub fn try_reserve_exact(&mut self, rows: usize) -> bool {
        // Saturated, a count past memory is refused by the allocator.
        let values = |width: usize| rows.saturating_mul(width);
        self.observations
            .try_reserve_exact(values(self.obs_dim))
            .is_ok()
            && self
                .actions
                .try_reserve_exact(values(self.action_dim))
                .is_ok()
            && self.terminals.try_reserve_exact(rows).is_ok()
            && self.rewards.try_reserve_exact(rows).is_ok()
            && self.masks.try_reserve_exact(rows).is_ok()
            && self.successes.try_reserve_exact(rows).is_ok()
            && self.qpos.try_reserve_exact(values(self.qpos_dim)).is_ok()
            && self.qvel.try_reserve_exact(values(self.qvel_dim)).is_ok()
    }

    /// Drops every row, keeping the memory for the next ones.
    pub fn clear(&mut self) {
        self.observations.clear();
        self.actions.clear();
        self.terminals.clear();
        self.rewards.clear();
        self.masks.clear();
        self.successes.clear();
        self.qpos.clear();
        self.qvel.clear();
    }
}
