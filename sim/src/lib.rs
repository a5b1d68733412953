//! qamlab's simulation runtime: task scenes become Rapier worlds, many envs live in one Bevy World, and the
//! batched env API exchanges flat `f32` buffers with learners.
//!
//! * [`authoring`]: the reflect-registered components a task scene file is made of.
//! * [`scene`]: loading and checking a scene into a [`TaskScene`].
//! * [`physics`]: one env's Rapier world: building, joint readings, motors.
//! * [`env`](mod@env): one env's state and the work of each control-step phase.
//! * [`extent`]: [`extent::SceneExtent`], the box around a scene, and the bodies that have left it.
//! * [`systems`]: those phases as Bevy systems, with the batch buffers as resources.
//! * [`batched`]: [`BatchedEnv`], the headless driver.
//! * [`spec`]: [`EnvSpec`], the plain-data description of an env.
//! * [`error`](mod@error): [`SimError`], what loading a scene or driving the envs can refuse.

#![warn(missing_docs)]

pub mod authoring;
pub mod batched;
pub mod env;
pub mod error;
pub mod extent;
mod missing_field;
pub mod physics;
pub mod scene;
pub mod spec;
pub mod systems;

use bevy::ecs::schedule::{InternedScheduleLabel, ScheduleLabel};
use bevy::prelude::*;

/// The commonly used types.
pub mod prelude {
    pub use crate::authoring::*;
    pub use crate::batched::BatchedEnv;
    pub use crate::error::SimError;
    pub use crate::scene::TaskScene;
    pub use crate::spec::EnvSpec;
    pub use crate::systems::{BatchActions, EnvOptions, StepOutput};
    pub use crate::{EnvSet, SimPlugin};
}

pub use batched::BatchedEnv;
pub use error::SimError;
pub use scene::TaskScene;
pub use spec::{EnvSpec, QPOS_PER_BODY, QVEL_PER_BODY};
pub use systems::{EnvOptions, StepOutput};

/// The phases of one control step, in order. A step runs only when [`systems::BatchActions`] is pending, so a
/// window updating at its own frame rate steps the envs exactly as often as actions arrive.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvSet {
    /// Action rows become joint motor targets.
    ApplyActions,
    /// The physics substeps of every env (in parallel).
    Physics,
    /// Sensors fill the observation rows.
    ReadSensors,
    /// Success, reward, termination and truncation.
    Score,
    /// Envs whose episode ended start a new one.
    Reset,
    /// Results are gathered into [`systems::StepOutput`].
    Publish,
}

/// Registers the authoring types and runs the control step in `schedule` (`Update` by default). Headless and
/// windowed runs use this same plugin, so both execute the same systems.
pub struct SimPlugin {
    /// Schedule the control step runs in.
    pub schedule: InternedScheduleLabel,
}

impl Default for SimPlugin {
    fn default() -> Self {
        Self {
            schedule: Update.intern(),
        }
    }
}

impl Plugin for SimPlugin {
    fn build(&self, app: &mut App) {
        {
            let registry = app.world().resource::<AppTypeRegistry>().clone();
            authoring::register_authoring_types(&mut registry.write());
        }
        // Idle buffers until envs are spawned, so the run condition and systems always find their resources.
        app.init_resource::<systems::BatchActions>()
            .init_resource::<systems::StepOutput>();
        app.configure_sets(
            self.schedule,
            (
                EnvSet::ApplyActions,
                EnvSet::Physics,
                EnvSet::ReadSensors,
                EnvSet::Score,
                EnvSet::Reset,
                EnvSet::Publish,
            )
                .chain()
                .run_if(systems::actions_pending),
        );
        app.add_systems(
            self.schedule,
            (
                systems::apply_actions.in_set(EnvSet::ApplyActions),
                systems::step_physics.in_set(EnvSet::Physics),
                systems::sense.in_set(EnvSet::ReadSensors),
                systems::score.in_set(EnvSet::Score),
                systems::auto_reset.in_set(EnvSet::Reset),
                systems::publish.in_set(EnvSet::Publish),
            ),
        );
    }
}
