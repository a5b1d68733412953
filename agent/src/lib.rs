//! qamlab-agent: QAM (Q-learning with Adjoint Matching) and its variants QAM-F and QAM-E, the FQL
//! baseline and flow BC, on libtorch (`tch`), following `shared/docs/qam-algorithm.md`.
//!
//! Where things live:
//! * [`config`] — hyper-parameters (TOML, reference defaults, validation), [`AgentKind`].
//! * [`networks`] — MLP block, batched critic ensemble, flow fields, edit actor (§1).
//! * [`gelu`] — their activation: our own CPU kernel, and Dense + GELU fused on CUDA.
//! * [`data`] — transition store / replay buffer and chunked `sample_sequence` (§2).
//! * [`noise`] — injected randomness: seeded torch draws or replayed fixture draws.
//! * [`qam`] — the losses: `critic_loss`, `bc_flow_loss`, `memoryless_rollout`,
//!   `lean_adjoint`, `adjoint_matching_loss`, `qam_f_losses`, `qam_e_losses` (§3–§4).
//! * [`fql`] — the FQL actor loss (§8).
//! * [`acting`] — Euler flow and `sample_actions` (§6).
//! * [`optim`] — global-norm clip + Adam, Polyak targets (§5).
//! * [`agent`] — [`Agent`]: networks + optimiser; `update` composes the losses.
//! * [`footprint`] — the least memory an agent's networks and one update take.
//! * [`metrics`] — lazily read update metrics and the intermediate trace.
//! * [`checkpoint`] — atomic safetensors checkpoints.
//! * [`cuda_graph`] — capture and replay of CUDA graphs (a C++ shim over libtorch's).
//! * [`cpu_memory`] — glibc keeps the memory freed tensors leave, for the next update.
//! * [`mkl_kernels`] — which oneMKL matrix kernels the CPU runs (Intel's, on every vendor).
//! * [`precision`] — IEEE fp32 or TF32 for CUDA matmuls (the reference's JAX default is TF32).
//! * [`bench`](mod@bench) — update throughput and acting latency.
//! * [`error`] — [`AgentError`], what the agent refuses (bad configs, checkpoints, shapes).

#![warn(missing_docs)]

pub mod acting;
pub mod agent;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod cpu_memory;
pub mod cuda_graph;
pub mod data;
pub mod error;
pub mod footprint;
pub mod fql;
pub mod gelu;
pub mod metrics;
pub mod mkl_kernels;
pub mod networks;
pub mod noise;
pub mod optim;
pub mod precision;
pub mod qam;
#[cfg(qamlab_cuda_shim)]
mod shim;

pub use agent::Agent;
pub use config::{AgentConfig, AgentKind};
pub use data::{Batch, TransitionStore};
pub use error::AgentError;
pub use metrics::{Trace, UpdateMetrics};
pub use noise::{Noise, ReplayNoise, TorchNoise};
