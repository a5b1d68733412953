//! Agent hyper-parameters: serde structs loadable from TOML, with the reference defaults (spec §9.1,
//! action chunking on) and validation.

use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};

/// Which algorithm an [`crate::Agent`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    /// QAM: critic + BC flow (`actor_slow`) + adjoint matching (`actor_fast`), spec §3–§5.
    #[default]
    Qam,
    /// QAM-F: QAM plus a one-step actor distilled from `actor_fast` (`fql_alpha > 0`), spec §4.3.
    #[serde(rename = "qam-f")]
    QamF,
    /// QAM-E: QAM plus a tanh-Gaussian edit actor (`edit_scale > 0`), spec §4.4.
    #[serde(rename = "qam-e")]
    QamE,
    /// FQL baseline (`agents/fql.py`), spec §8.
    Fql,
    /// Plain flow behaviour cloning: `actor_slow` trained by the BC flow loss only, acting by its
    /// Euler flow. No critic is built.
    Bc,
}

impl AgentKind {
    /// Every kind, in the order the docs list them. A new kind goes here as well as in [`as_str`](Self::as_str)
    /// (whose match the compiler checks): parsing, `--agents`' default and the kind lists of messages go by this.
    pub const ALL: [AgentKind; 5] = [
        AgentKind::Qam,
        AgentKind::QamF,
        AgentKind::QamE,
        AgentKind::Fql,
        AgentKind::Bc,
    ];

    /// The name used in TOML, in checkpoints and on the command line (the one table of names: parsing goes by it).
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Qam => "qam",
            AgentKind::QamF => "qam-f",
            AgentKind::QamE => "qam-e",
            AgentKind::Fql => "fql",
            AgentKind::Bc => "bc",
        }
    }

    /// The names of the kinds for which `pred` holds, in [`ALL`](Self::ALL)'s order, as prose: `last` joins the
    /// final two (`names_where(AgentKind::is_qam, "and")` is `qam, qam-f and qam-e`).
    pub fn names_where(pred: impl Fn(AgentKind) -> bool, last: &str) -> String {
        let names: Vec<&str> = Self::ALL
            .into_iter()
            .filter(|&kind| pred(kind))
            .map(AgentKind::as_str)
            .collect();
        match names.split_last() {
            Some((tail, head)) if !head.is_empty() => format!("{} {last} {tail}", head.join(", ")),
            _ => names.concat(),
        }
    }

    /// Whether this kind trains a critic.
    pub fn has_critic(self) -> bool {
        self != AgentKind::Bc
    }

    /// Whether this kind is QAM or one of its variants (the kinds `inv_temp` weighs).
    pub fn is_qam(self) -> bool {
        matches!(self, AgentKind::Qam | AgentKind::QamF | AgentKind::QamE)
    }

    /// The weight that switches this kind's variant on, as its `[agent]` key and the working default it takes
    /// when a config leaves it at zero (the reference sweeps' QAM-F distillation 30, QAM-E edit scale 0.1);
    /// `None` for a kind with no such weight.
    pub fn variant_weight(self) -> Option<(&'static str, f64)> {
        match self {
            AgentKind::QamF => Some(("fql_alpha", 30.0)),
            AgentKind::QamE => Some(("edit_scale", 0.1)),
            AgentKind::Qam | AgentKind::Fql | AgentKind::Bc => None,
        }
    }
}

impl std::str::FromStr for AgentKind {
    type Err = AgentError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| {
                bad(
                    "kind",
                    format!(
                        "unknown kind {s:?} (expected {})",
                        Self::names_where(|_| true, "or")
                    ),
                )
            })
    }
}

/// Every hyper-parameter of an agent. Unknown TOML keys are rejected by name.
///
/// Reference switches that every experiment keeps at their default (`target_actor`, `clip_adj`,
/// `use_target_grad` on; `residual` off) are not configurable: this port implements exactly
/// those defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Algorithm: `qam` (default), `qam-f`, `qam-e`, `fql` or `bc`.
    pub kind: AgentKind,
    /// Adam learning rate.
    pub lr: f64,
    /// Sequences per gradient step (used by the trainer and the benchmark).
    pub batch_size: usize,
    /// Hidden widths of every actor MLP.
    pub actor_hidden_dims: Vec<usize>,
    /// LayerNorm after the hidden activations of the flow actors (never in the QAM-E edit actor, as the reference).
    pub actor_layer_norm: bool,
    /// Hidden widths of each critic member.
    pub value_hidden_dims: Vec<usize>,
    /// LayerNorm after the hidden activations of the critic.
    pub value_layer_norm: bool,
    /// Policy outputs the whole `H`-action chunk (`D = H·A`) instead of one action.
    pub action_chunking: bool,
    /// Chunk length / n-step horizon `H`.
    pub horizon_length: usize,
    /// Critic ensemble size `K` (at least 2).
    pub num_qs: usize,
    /// Pessimism: the TD target uses `mean − rho·std` over the ensemble.
    pub rho: f64,
    /// Discount `γ`.
    pub discount: f64,
    /// Polyak rate of the target networks.
    pub tau: f64,
    /// Euler / SDE steps `T` of the flow policies.
    pub flow_steps: usize,
    /// Candidates per state when acting; the online critic picks the best.
    pub best_of_n: usize,
    /// Inverse temperature of the adjoint-matching target `π* ∝ π_β·exp(inv_temp·Q)`.
    pub inv_temp: f64,
    /// QAM-F: weight of the distillation loss (must be > 0 for `qam-f`, 0 otherwise).
    pub fql_alpha: f64,
    /// QAM-E: scale of the edit added to the flow action (must be > 0 for `qam-e`, 0 otherwise).
    pub edit_scale: f64,
    /// QAM-E: target entropy; `None` means `−edit_target_entropy_multiplier · D`.
    pub edit_target_entropy: Option<f64>,
    /// QAM-E: multiplier used when `edit_target_entropy` is unset.
    pub edit_target_entropy_multiplier: f64,
    /// FQL: weight of the distillation loss (reference `alpha`).
    pub alpha: f64,
    /// Global-norm gradient clipping at 1.0; `None` = the kind's default (on for QAM variants,
    /// off for FQL and BC).
    pub clip_grad: Option<bool>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            kind: AgentKind::Qam,
            lr: 3e-4,
            batch_size: 256,
            actor_hidden_dims: vec![512; 4],
            actor_layer_norm: false,
            value_hidden_dims: vec![512; 4],
            value_layer_norm: true,
            action_chunking: true,
            horizon_length: 5,
            num_qs: 10,
            rho: 0.5,
            discount: 0.99,
            tau: 0.005,
            flow_steps: 10,
            best_of_n: 1,
            inv_temp: 0.3,
            fql_alpha: 0.0,
            edit_scale: 0.0,
            edit_target_entropy: None,
            edit_target_entropy_multiplier: 0.5,
            alpha: 100.0,
            clip_grad: None,
        }
    }
}

/// Widest layer (and widest observation or action) an agent may have. The upper bounds here catch a typo (a few
/// extra digits) before libtorch is asked for memory no machine has, which it answers with an abort.
pub const MAX_WIDTH: usize = 1 << 16;
/// Most hidden layers per network.
pub const MAX_DEPTH: usize = 64;
/// Largest batch, in sequences.
pub const MAX_BATCH: usize = 1 << 20;
/// Most critic ensemble members, flow steps, acting candidates or chunk steps.
pub const MAX_COUNT: usize = 10_000;

fn bad(field: &str, reason: impl Into<String>) -> AgentError {
    AgentError::Config {
        field: field.into(),
        reason: reason.into(),
    }
}

impl AgentConfig {
    /// Sets the agent kind, giving its variant weight ([`AgentKind::variant_weight`]) its working default when the
    /// config left it at zero and clearing the weights of other kinds.
    pub fn select_kind(&mut self, kind: AgentKind) {
        self.kind = kind;
        let own = kind.variant_weight().map(|(key, _)| key);
        for (key, weight) in self.variant_weights_mut() {
            if Some(key) != own {
                *weight = 0.0;
            }
        }
        self.fill_variant_weight();
    }

    /// Gives the kind's own variant weight its working default when the config left it at zero (`kind = "qam-e"`
    /// alone means QAM-E at edit scale 0.1); the other weight is left for validation to question.
    pub fn fill_variant_weight(&mut self) {
        let Some((own, default)) = self.kind.variant_weight() else {
            return;
        };
        for (key, weight) in self.variant_weights_mut() {
            if key == own && *weight <= 0.0 {
                *weight = default;
            }
        }
    }

    /// The variant weights by their `[agent]` key (the keys [`AgentKind::variant_weight`] names).
    fn variant_weights(&self) -> [(&'static str, f64); 2] {
        [
            ("fql_alpha", self.fql_alpha),
            ("edit_scale", self.edit_scale),
        ]
    }

    /// [`variant_weights`](Self::variant_weights), to set.
    fn variant_weights_mut(&mut self) -> [(&'static str, &mut f64); 2] {
        [
            ("fql_alpha", &mut self.fql_alpha),
            ("edit_scale", &mut self.edit_scale),
        ]
    }

    /// Parses a TOML document (unknown keys are an error naming the key) and validates it.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let cfg: AgentConfig =
            toml::from_str(text).map_err(|e| AgentError::ConfigParse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Policy output dimension `D` for an environment action dimension `A`.
    pub fn policy_dim(&self, action_dim: usize) -> usize {
        if self.action_chunking {
            action_dim * self.horizon_length
        } else {
            action_dim
        }
    }

    /// Whether the global-norm clip at 1.0 is applied (explicit value or the kind's default).
    pub fn clip_grad_enabled(&self) -> bool {
        self.clip_grad.unwrap_or(self.kind.is_qam())
    }

    /// QAM-E target entropy for policy dimension `d`.
    pub fn target_entropy(&self, d: usize) -> f64 {
        self.edit_target_entropy
            .unwrap_or(-self.edit_target_entropy_multiplier * d as f64)
    }

    /// Checks ranges and the consistency of `kind`, `fql_alpha` and `edit_scale`.
    pub fn validate(&self) -> Result<()> {
        self.validate_ranges()?;
        self.validate_kind()
    }

    /// Checks the ranges that hold whatever the kind (what a config file must satisfy before a
    /// `--agent` flag picks its kind).
    pub fn validate_ranges(&self) -> Result<()> {
        let positive = [
            ("batch_size", self.batch_size),
            ("horizon_length", self.horizon_length),
            ("flow_steps", self.flow_steps),
            ("best_of_n", self.best_of_n),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(bad(field, "must be at least 1"));
            }
        }
        for (field, v, max) in [
            ("batch_size", self.batch_size, MAX_BATCH),
            ("horizon_length", self.horizon_length, MAX_COUNT),
            ("flow_steps", self.flow_steps, MAX_COUNT),
            ("best_of_n", self.best_of_n, MAX_COUNT),
            ("num_qs", self.num_qs, MAX_COUNT),
        ] {
            if v > max {
                return Err(bad(field, format!("must be at most {max}, got {v}")));
            }
        }
        for (field, dims) in [
            ("actor_hidden_dims", &self.actor_hidden_dims),
            ("value_hidden_dims", &self.value_hidden_dims),
        ] {
            if dims.iter().any(|&w| !(1..=MAX_WIDTH).contains(&w)) {
                return Err(bad(
                    field,
                    format!("hidden widths must be from 1 to {MAX_WIDTH}, got {dims:?}"),
                ));
            }
            if dims.len() > MAX_DEPTH {
                return Err(bad(
                    field,
                    format!("at most {MAX_DEPTH} hidden layers, got {}", dims.len()),
                ));
            }
        }
        for (field, v) in [
            (
                "edit_target_entropy",
                self.edit_target_entropy.unwrap_or(0.0),
            ),
            (
                "edit_target_entropy_multiplier",
                self.edit_target_entropy_multiplier,
            ),
        ] {
            if !v.is_finite() {
                return Err(bad(field, format!("must be finite, got {v}")));
            }
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(bad(
                "lr",
                format!("must be positive and finite, got {}", self.lr),
            ));
        }
        if !(0.0..=1.0).contains(&self.tau) {
            return Err(bad("tau", format!("must lie in [0, 1], got {}", self.tau)));
        }
        if !(0.0..=1.0).contains(&self.discount) {
            return Err(bad(
                "discount",
                format!("must lie in [0, 1], got {}", self.discount),
            ));
        }
        for (field, v) in [
            ("fql_alpha", self.fql_alpha),
            ("edit_scale", self.edit_scale),
            ("alpha", self.alpha),
            ("rho", self.rho),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(bad(field, format!("must be finite and >= 0, got {v}")));
            }
        }
        // The policy is tilted towards exp(inv_temp · Q): a negative value would seek low Q values.
        if !(self.inv_temp >= 0.0 && self.inv_temp.is_finite()) {
            return Err(bad(
                "inv_temp",
                format!(
                    "must be finite and >= 0 (0 is behaviour cloning), got {}",
                    self.inv_temp
                ),
            ));
        }
        Ok(())
    }

    /// Checks what depends on `kind`: the critic ensemble's size, best-of-n, and which of
    /// `fql_alpha` and `edit_scale` is set.
    fn validate_kind(&self) -> Result<()> {
        if self.kind.has_critic() && self.num_qs < 2 {
            return Err(bad(
                "num_qs",
                format!("the critic ensemble needs K >= 2, got {}", self.num_qs),
            ));
        }
        if self.kind == AgentKind::Bc && self.best_of_n > 1 {
            return Err(bad(
                "best_of_n",
                "kind bc has no critic to rank candidates; use 1",
            ));
        }
        if self.fql_alpha > 0.0 && self.edit_scale > 0.0 {
            return Err(bad(
                "fql_alpha",
                format!(
                    "fql_alpha ({}) and edit_scale ({}) cannot both be > 0 (QAM-F and QAM-E are exclusive)",
                    self.fql_alpha, self.edit_scale
                ),
            ));
        }
        let own = self.kind.variant_weight().map(|(key, _)| key);
        let weights = self.variant_weights();
        if let Some(&(key, weight)) = weights.iter().find(|(key, _)| Some(*key) == own)
            && weight <= 0.0
        {
            return Err(bad(
                key,
                format!("kind {} needs {key} > 0", self.kind.as_str()),
            ));
        }
        for (key, weight) in weights {
            if Some(key) != own && weight > 0.0 {
                let users = AgentKind::names_where(
                    |kind| kind.variant_weight().is_some_and(|(used, _)| used == key),
                    "or",
                );
                return Err(bad(
                    key,
                    format!(
                        "is only used by kind {users} (kind is {})",
                        self.kind.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_defaults_with_chunking() {
        let c = AgentConfig::default();
        assert_eq!(
            (c.num_qs, c.flow_steps, c.horizon_length, c.batch_size),
            (10, 10, 5, 256)
        );
        assert!(c.action_chunking && c.clip_grad_enabled());
        assert_eq!(c.policy_dim(5), 25);
        assert_eq!(c.target_entropy(6), -3.0);
        c.validate().unwrap();
    }

    #[test]
    fn every_kind_round_trips_through_its_name_the_parser_and_serde() {
        for kind in AgentKind::ALL {
            let name = kind.as_str();
            assert_eq!(name.parse::<AgentKind>().unwrap(), kind, "{name}");
            let mut cfg = AgentConfig::default();
            cfg.select_kind(kind);
            let text = toml::to_string(&cfg).unwrap();
            assert!(text.contains(&format!("kind = \"{name}\"\n")), "{text}");
            assert_eq!(AgentConfig::from_toml_str(&text).unwrap(), cfg, "{name}");
        }
        // Serde lists every variant it knows in its refusal: a kind left out of ALL (so no `--agent` parses it)
        // shows up there.
        let err = AgentConfig::from_toml_str("kind = \"?\"")
            .unwrap_err()
            .to_string();
        let all = AgentKind::ALL.map(|kind| format!("`{}`", kind.as_str()));
        assert!(
            err.contains(&format!("expected one of {}\n", all.join(", "))),
            "{err}"
        );
        let err = "qamx".parse::<AgentKind>().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid agent config: kind: unknown kind \"qamx\" (expected qam, qam-f, qam-e, fql or bc)"
        );
        assert_eq!(
            AgentKind::names_where(AgentKind::is_qam, "and"),
            "qam, qam-f and qam-e"
        );
        assert_eq!(AgentKind::names_where(|k| k == AgentKind::Fql, "or"), "fql");
        assert_eq!(AgentKind::names_where(|_| false, "or"), "");
    }

    #[test]
    fn a_variant_weight_is_the_kinds_own_key_and_default() {
        for kind in AgentKind::ALL {
            let mut cfg = AgentConfig::default();
            cfg.select_kind(kind);
            cfg.validate().unwrap();
            let weights = cfg.variant_weights();
            match kind.variant_weight() {
                Some((key, default)) => {
                    // Selected, the kind's weight takes its default; the other weights stay 0.
                    for (k, v) in weights {
                        assert_eq!(v, if k == key { default } else { 0.0 }, "{kind:?} {k}");
                    }
                    let text = toml::to_string(&cfg).unwrap();
                    assert!(text.contains(&format!("\n{key} = {default:?}\n")), "{text}");
                    // Written as 0, it is refused by name; another kind's weight is named with its kind.
                    let mut zero = cfg.clone();
                    zero.variant_weights_mut()
                        .into_iter()
                        .for_each(|(_, w)| *w = 0.0);
                    let err = zero.validate().unwrap_err().to_string();
                    assert!(
                        err.ends_with(&format!("{key}: kind {} needs {key} > 0", kind.as_str())),
                        "{err}"
                    );
                    let mut qam = cfg.clone();
                    qam.kind = AgentKind::Qam;
                    let err = qam.validate().unwrap_err().to_string();
                    assert!(
                        err.ends_with(&format!(
                            "{key}: is only used by kind {} (kind is qam)",
                            kind.as_str()
                        )),
                        "{err}"
                    );
                }
                None => assert!(weights.iter().all(|&(_, v)| v == 0.0), "{kind:?}"),
            }
        }
        // Filled in only where the config left the weight at zero.
        let mut set = AgentConfig {
            kind: AgentKind::QamE,
            edit_scale: 0.25,
            ..AgentConfig::default()
        };
        set.fill_variant_weight();
        assert_eq!(set.edit_scale, 0.25);
    }

    #[test]
    fn unknown_key_is_rejected_by_name() {
        let err = AgentConfig::from_toml_str("kind = \"qam\"\nnum_qz = 3\n").unwrap_err();
        assert!(err.to_string().contains("num_qz"), "{err}");
    }

    #[test]
    fn toml_round_trip_and_kind_names() {
        let c =
            AgentConfig::from_toml_str("kind = \"qam-e\"\nedit_scale = 0.1\nnum_qs = 2\n").unwrap();
        assert_eq!(c.kind, AgentKind::QamE);
        assert_eq!(c.num_qs, 2);
        let back = AgentConfig::from_toml_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let fql = AgentConfig {
            kind: AgentKind::Fql,
            ..AgentConfig::default()
        };
        assert!(!fql.clip_grad_enabled());
    }

    #[test]
    fn invalid_combinations_are_named() {
        let both = AgentConfig {
            fql_alpha: 1.0,
            edit_scale: 0.1,
            ..AgentConfig::default()
        };
        assert!(
            both.validate()
                .unwrap_err()
                .to_string()
                .contains("cannot both")
        );
        let k1 = AgentConfig {
            num_qs: 1,
            ..AgentConfig::default()
        };
        assert!(k1.validate().unwrap_err().to_string().contains("num_qs"));
        let zero = AgentConfig {
            actor_hidden_dims: vec![16, 0],
            ..AgentConfig::default()
        };
        assert!(
            zero.validate()
                .unwrap_err()
                .to_string()
                .contains("actor_hidden_dims")
        );
        let qf = AgentConfig {
            kind: AgentKind::QamF,
            ..AgentConfig::default()
        };
        assert!(qf.validate().unwrap_err().to_string().contains("fql_alpha"));
        let t0 = AgentConfig {
            flow_steps: 0,
            ..AgentConfig::default()
        };
        assert!(
            t0.validate()
                .unwrap_err()
                .to_string()
                .contains("flow_steps")
        );
        for inv_temp in [-1.0, f64::NAN] {
            let tilt = AgentConfig {
                inv_temp,
                ..AgentConfig::default()
            };
            assert!(
                tilt.validate()
                    .unwrap_err()
                    .to_string()
                    .contains("inv_temp")
            );
        }
    }

    #[test]
    fn sizes_no_machine_could_hold_are_typos() {
        // Refused here, they cannot reach libtorch, which aborts on an impossible allocation.
        let toml = |text: &str| AgentConfig::from_toml_str(text).unwrap_err().to_string();
        let err = toml("value_hidden_dims = [512, 512, 512, 51200000]\n");
        assert!(
            err.contains("value_hidden_dims") && err.contains("from 1 to 65536"),
            "{err}"
        );
        let err = toml("batch_size = 25600000\n");
        assert!(err.contains("batch_size: must be at most 1048576"), "{err}");
        let err = toml("num_qs = 100000\n");
        assert!(err.contains("num_qs: must be at most 10000"), "{err}");
        let err = toml("kind = \"qam-e\"\nedit_scale = 0.1\nedit_target_entropy = nan\n");
        assert!(err.contains("edit_target_entropy: must be finite"), "{err}");
        let err = crate::Agent::new(
            AgentConfig::default(),
            100_000_000_000,
            5,
            tch::Device::Cpu,
            0,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("obs_dim: must be from 1 to 65536"), "{err}");
    }
}
