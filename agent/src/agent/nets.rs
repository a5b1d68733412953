//! The networks an agent holds, with their parameters in one flat trainable buffer and one flat
//! target buffer.

use tch::{Device, Kind, Tensor};

use crate::config::{AgentConfig, AgentKind};
use crate::networks::{
    Critic, EditActor, NamedTensor, Parameters, SLOT_ALIGN, Temperature, VectorField,
    copy_parameters, flat_layout, flatten_parameters,
};

/// Calls macro `$m` with the trainable networks of [`Nets`] in optimiser order: the one list that the flat
/// parameter buffer (`Nets::new`) and the parameter names (`Nets::trainable`) both follow, so they cannot part.
macro_rules! trainable_networks {
    ($m:ident) => {
        $m!(
            critic,
            actor_slow,
            actor_fast,
            one_step_actor,
            edit_actor,
            edit_alpha
        )
    };
}

/// Every network an agent may own; which ones exist depends on [`AgentKind`].
///
/// FQL and BC keep their BC flow actor in `actor_slow` (named `actor_bc_flow`) and FQL its
/// one-step actor in `one_step_actor` (named `actor_onestep_flow`), as in `agents/fql.py`.
/// QAM's `target_actor_fast` is never read by the reference and is not built.
pub struct Nets {
    /// Online critic ensemble (`critic`); absent for BC.
    pub critic: Option<Critic>,
    /// Polyak copy of the critic (`target_critic`).
    pub target_critic: Option<Critic>,
    /// Behaviour flow policy trained by BC (`actor_slow`, or `actor_bc_flow` for FQL/BC).
    pub actor_slow: Option<VectorField>,
    /// Polyak copy of `actor_slow`: the base model of adjoint matching (QAM variants).
    pub target_actor_slow: Option<VectorField>,
    /// The acting flow policy trained by adjoint matching (QAM variants).
    pub actor_fast: Option<VectorField>,
    /// One-step actor (`one_step_actor` for QAM-F, `actor_onestep_flow` for FQL).
    pub one_step_actor: Option<VectorField>,
    /// QAM-E edit actor.
    pub edit_actor: Option<EditActor>,
    /// QAM-E temperature.
    pub edit_alpha: Option<Temperature>,
    /// Act with `actor_fast` (QAM with `inv_temp ≠ 0`) rather than the BC flow actor.
    pub act_with_fast: bool,
    /// Every trainable parameter lives in this one flat buffer (in [`Nets::trainable`] order);
    /// the networks hold views of it that are gradient leaves.
    pub flat: Tensor,
    /// Every target parameter in one flat buffer: `target_critic`, then `target_actor_slow`.
    pub flat_targets: Tensor,
    /// Polyak pairs as `(online name prefix, offset, length)`: the same range in `flat` and in
    /// `flat_targets` (the online networks that have targets come first in `flat`).
    pub polyak_ranges: Vec<(String, i64, i64)>,
    /// [`SLOT_ALIGN`] zeros on the device: the flat gradient's padding between slots is views of
    /// it (no allocation or fill per update, and a captured graph can read it).
    pub slot_padding: Tensor,
}

impl Nets {
    /// Builds (and initialises) the networks of `cfg.kind`; targets start as exact copies.
    pub fn new(cfg: &AgentConfig, obs: usize, d: usize, device: Device) -> Self {
        let (ah, vh) = (&cfg.actor_hidden_dims, &cfg.value_hidden_dims);
        let field = |name: &str, timed: bool| {
            VectorField::new(name, obs, d, ah, cfg.actor_layer_norm, timed, device)
        };
        let critic =
            |name: &str| Critic::new(name, cfg.num_qs, obs, d, vh, cfg.value_layer_norm, device);
        let qam = cfg.kind.is_qam();
        let mut nets = Nets {
            critic: None,
            target_critic: None,
            actor_slow: None,
            target_actor_slow: None,
            actor_fast: None,
            one_step_actor: None,
            edit_actor: None,
            edit_alpha: None,
            act_with_fast: qam && cfg.inv_temp != 0.0,
            flat: Tensor::zeros([0], (Kind::Float, device)),
            flat_targets: Tensor::zeros([0], (Kind::Float, device)),
            polyak_ranges: Vec::new(),
            slot_padding: Tensor::zeros([SLOT_ALIGN], (Kind::Float, device)),
        };
        // Creation order = reference module order (critic, actor_slow, actor_fast, extras).
        if cfg.kind.has_critic() {
            nets.critic = Some(critic("critic"));
            nets.target_critic = Some(critic("target_critic"));
        }
        if qam {
            nets.actor_slow = Some(field("actor_slow", true));
            nets.target_actor_slow = Some(field("target_actor_slow", true));
            nets.actor_fast = Some(field("actor_fast", true));
        } else {
            nets.actor_slow = Some(field("actor_bc_flow", true));
        }
        match cfg.kind {
            AgentKind::QamF => nets.one_step_actor = Some(field("one_step_actor", false)),
            AgentKind::Fql => nets.one_step_actor = Some(field("actor_onestep_flow", false)),
            AgentKind::QamE => {
                nets.edit_actor = Some(EditActor::new(obs, d, ah, device));
                nets.edit_alpha = Some(Temperature::new(device));
            }
            AgentKind::Qam | AgentKind::Bc => {}
        }
        if let (Some(t), Some(o)) = (&nets.target_critic, &nets.critic) {
            copy_parameters(t, o);
        }
        if let (Some(t), Some(o)) = (&nets.target_actor_slow, &nets.actor_slow) {
            copy_parameters(t, o);
        }
        let mut offset = 0;
        for (online, has_target) in [
            (
                nets.critic
                    .as_ref()
                    .map(|c| (c.named_parameters(), "critic/")),
                nets.target_critic.is_some(),
            ),
            (
                nets.actor_slow
                    .as_ref()
                    .map(|a| (a.named_parameters(), "actor_slow/")),
                nets.target_actor_slow.is_some(),
            ),
        ] {
            if let (Some((params, prefix)), true) = (online, has_target) {
                let (_, len) = flat_layout(params.iter().map(|(_, t)| t.numel() as i64));
                nets.polyak_ranges.push((prefix.to_string(), offset, len));
                offset += len;
            }
        }
        let mut trainable: Vec<&mut Tensor> = Vec::new();
        macro_rules! collect_mut {
            ($($f:ident),*) => { $( if let Some(n) = &mut nets.$f { trainable.extend(n.parameters_mut()); } )* };
        }
        trainable_networks!(collect_mut);
        let flat = flatten_parameters(trainable, true, device);
        let mut targets: Vec<&mut Tensor> = Vec::new();
        if let Some(t) = &mut nets.target_critic {
            targets.extend(t.parameters_mut());
        }
        if let Some(t) = &mut nets.target_actor_slow {
            targets.extend(t.parameters_mut());
        }
        nets.flat_targets = flatten_parameters(targets, false, device);
        nets.flat = flat;
        nets
    }

    /// The online critic ensemble: every kind but BC has one, and BC's losses never ask.
    pub fn critic(&self) -> &Critic {
        self.critic
            .as_ref()
            .expect("the critic: built for every kind but BC")
    }

    /// The critic's Polyak copy, built with the critic.
    pub fn target_critic(&self) -> &Critic {
        self.target_critic
            .as_ref()
            .expect("the target critic: built with the critic")
    }

    /// The behaviour flow actor trained by BC (`actor_slow`; `actor_bc_flow` for FQL and BC): every kind has one.
    pub fn bc_actor(&self) -> &VectorField {
        self.actor_slow
            .as_ref()
            .expect("the BC flow actor: built for every kind")
    }

    /// The BC actor's Polyak copy, the base model of adjoint matching (QAM variants).
    pub fn target_bc_actor(&self) -> &VectorField {
        self.target_actor_slow
            .as_ref()
            .expect("the BC actor's target: built for the QAM variants")
    }

    /// The flow actor trained by adjoint matching (QAM variants).
    pub fn actor_fast(&self) -> &VectorField {
        self.actor_fast
            .as_ref()
            .expect("actor_fast: built for the QAM variants")
    }

    /// The one-step actor (QAM-F's `one_step_actor`, FQL's `actor_onestep_flow`).
    pub fn one_step_actor(&self) -> &VectorField {
        self.one_step_actor
            .as_ref()
            .expect("the one-step actor: built for QAM-F and FQL")
    }

    /// QAM-E's edit actor.
    pub fn edit_actor(&self) -> &EditActor {
        self.edit_actor
            .as_ref()
            .expect("the edit actor: built for QAM-E")
    }

    /// QAM-E's temperature.
    pub fn edit_alpha(&self) -> &Temperature {
        self.edit_alpha
            .as_ref()
            .expect("the edit temperature: built for QAM-E")
    }

    /// The flow field used for acting and the TD target (§6.1): `actor_fast` for QAM with
    /// `inv_temp ≠ 0`, otherwise the BC flow actor.
    pub fn acting_field(&self) -> &VectorField {
        match &self.actor_fast {
            Some(fast) if self.act_with_fast => fast,
            _ => self.bc_actor(),
        }
    }

    /// Trainable parameters in optimiser order.
    pub fn trainable(&self) -> Vec<NamedTensor> {
        let mut v = Vec::new();
        macro_rules! add {
            ($($f:ident),*) => { $( if let Some(n) = &self.$f { v.extend(n.named_parameters()); } )* };
        }
        trainable_networks!(add);
        v
    }

    /// `(target, online)` parameter lists of the Polyak-averaged pairs.
    pub(crate) fn target_pairs(&self) -> Vec<(Vec<NamedTensor>, Vec<NamedTensor>)> {
        let mut v = Vec::new();
        if let (Some(t), Some(o)) = (&self.target_critic, &self.critic) {
            v.push((t.named_parameters(), o.named_parameters()));
        }
        if let (Some(t), Some(o)) = (&self.target_actor_slow, &self.actor_slow) {
            v.push((t.named_parameters(), o.named_parameters()));
        }
        v
    }

    /// Every parameter: trainable ones, then the targets.
    pub fn all(&self) -> Vec<NamedTensor> {
        let mut v = self.trainable();
        for (t, _) in self.target_pairs() {
            v.extend(t);
        }
        v
    }
}
