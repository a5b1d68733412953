//! What an update reports: scalar metrics kept as device tensors until the caller reads them, and
//! an optional trace of every named intermediate (used by the fixture tests).

use std::collections::BTreeMap;

use tch::{Device, Kind, Tensor};

use crate::error::{AgentError, Result};

/// Scalar metrics of one update as 0-d device tensors. Reading them ([`UpdateMetrics::to_pairs`],
/// [`UpdateMetrics::check_finite`]) is the only host synchronisation, and happens when the caller
/// chooses (e.g. every log interval).
#[derive(Default, Debug)]
pub struct UpdateMetrics {
    entries: Vec<(&'static str, Tensor)>,
}

impl UpdateMetrics {
    /// Adds a scalar (detached; reduced to 0-d by mean if it is not).
    pub(crate) fn push(&mut self, name: &'static str, value: &Tensor) {
        let v = value.detach();
        let v = if v.dim() == 0 { v } else { v.mean(Kind::Float) };
        self.entries.push((name, v));
    }

    /// Appends the metrics of `other` (report order: these, then those).
    pub(crate) fn extend(&mut self, other: UpdateMetrics) {
        self.entries.extend(other.entries);
    }

    /// The metric names in report order.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|(n, _)| *n).collect()
    }

    /// The 0-d tensor of metric `name`, if reported.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
    }

    /// Reads every metric to the host in one transfer: `(name, value)` pairs.
    pub fn to_pairs(&self) -> Result<Vec<(String, f64)>> {
        if self.entries.is_empty() {
            return Ok(Vec::new());
        }
        let stacked = Tensor::f_stack(
            &self
                .entries
                .iter()
                .map(|(_, t)| t.to_kind(Kind::Double))
                .collect::<Vec<_>>(),
            0,
        )?
        .f_to_device(Device::Cpu)?;
        let values: Vec<f64> = Vec::try_from(&stacked)?;
        Ok(self
            .entries
            .iter()
            .map(|(n, _)| n.to_string())
            .zip(values)
            .collect())
    }

    /// A copy made by one stack kernel, for metrics that live in a CUDA graph's static outputs
    /// (its next replay overwrites them).
    pub(crate) fn snapshot(&self) -> Result<UpdateMetrics> {
        if self.entries.is_empty() {
            return Ok(UpdateMetrics::default());
        }
        let values: Vec<Tensor> = self
            .entries
            .iter()
            .map(|(_, t)| t.shallow_clone())
            .collect();
        let stacked = Tensor::f_stack(&values, 0)?;
        let entries = (0..)
            .zip(&self.entries)
            .map(|(i, (name, _))| (*name, stacked.select(0, i)))
            .collect();
        Ok(UpdateMetrics { entries })
    }

    /// Errors naming the first loss or gradient norm ([`must_be_finite`]) that is NaN or infinite, among the
    /// metrics pushed so far (an update's own check, before its optimizer step, sees its losses only).
    pub fn check_finite(&self) -> Result<()> {
        for (name, value) in self.to_pairs()? {
            if must_be_finite(&name) && !value.is_finite() {
                return Err(AgentError::NonFinite { name, value });
            }
        }
        Ok(())
    }
}

/// Whether a non-finite value of metric `name` means training has failed: a loss (`*_loss`), or the global
/// gradient norm, whose overflow makes the clipping scale every gradient to zero, so that the update, though its
/// losses are finite, changes nothing.
pub fn must_be_finite(name: &str) -> bool {
    name.ends_with("_loss") || name == "grad_norm"
}

/// Intermediates that are also update metrics, in report order: a disabled trace keeps these.
const REPORTED: [&str; 6] = [
    "adj_abs_max",
    "fql_distill_loss",
    "fql_q_loss",
    "edit_q_loss",
    "edit_entropy",
    "edit_alpha",
];

/// Named intermediates of an update (names as in the fixture's `outputs.safetensors`). Recording
/// is off unless enabled; a disabled trace still keeps the few intermediates that are reported
/// as metrics (`adj_abs_max`, the QAM-F and QAM-E terms).
#[derive(Default)]
pub struct Trace {
    tensors: BTreeMap<String, Tensor>,
    all: bool,
}

impl Trace {
    /// A trace that records.
    pub fn enabled() -> Self {
        Self {
            tensors: BTreeMap::new(),
            all: true,
        }
    }

    /// A trace that keeps only the intermediates reported as metrics.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// An empty trace that records what this one does (for work done on another thread).
    pub(crate) fn fork(&self) -> Self {
        Self {
            tensors: BTreeMap::new(),
            all: self.all,
        }
    }

    /// Takes in every record of `other` (a [`Trace::fork`] of this one).
    pub(crate) fn absorb(&mut self, other: Trace) {
        self.tensors.extend(other.tensors);
    }

    /// Records a detached handle to `t` under `name` (no copy).
    pub fn record(&mut self, name: impl AsRef<str>, t: &Tensor) {
        let name = name.as_ref();
        if self.all || REPORTED.contains(&name) {
            self.tensors.insert(name.to_owned(), t.detach());
        }
    }

    /// The recorded tensor `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// The recorded intermediates that are reported as metrics, in report order.
    pub(crate) fn reported(&self) -> impl Iterator<Item = (&'static str, &Tensor)> {
        REPORTED
            .iter()
            .filter_map(|&name| Some((name, self.tensors.get(name)?)))
    }

    /// All recorded names.
    pub fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }
}
