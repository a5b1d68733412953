//! Injected randomness. Every loss and sampler draws through a [`Noise`] source, so a real run uses
//! a seeded torch generator ([`TorchNoise`]) and a fixture test replays the reference draws in
//! order ([`ReplayNoise`]).

use std::collections::VecDeque;

use tch::{Device, Kind, Tensor};

use crate::error::{AgentError, Result};

/// A source of standard-normal and uniform `[0, 1)` float32 draws.
///
/// `label` says what the draw is for (e.g. `bc_x0`); sources may ignore it, the replay source
/// checks it against the recorded name.
pub trait Noise: Send {
    /// Standard-normal draw of `shape` on `device`.
    fn normal(&mut self, label: &str, shape: &[i64], device: Device) -> Result<Tensor>;
    /// Uniform `[0, 1)` draw of `shape` on `device`.
    fn uniform(&mut self, label: &str, shape: &[i64], device: Device) -> Result<Tensor>;
    /// Called at the start of every update (`stream = 0`) and every acting call (`stream ≥ 1`) so
    /// a source can make its draws a function of `(seed, step, stream)` only.
    fn reseed(&mut self, _step: u64, _stream: u64) {}
    /// Whether draws come from libtorch's process-global generator; the agent then holds
    /// [`torch_rng_lock`] for the whole update / acting call.
    fn uses_global_torch_rng(&self) -> bool {
        false
    }
    /// The base seed if this is a seeded [`TorchNoise`] (what CUDA graphs can reproduce).
    fn torch_seed(&self) -> Option<u64> {
        None
    }
}

static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Process-wide lock over libtorch's global generator, held by an agent from its reseed to its
/// last draw so that agents stepping in different threads cannot interleave their draws.
pub fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Torch's generator, reseeded from `(seed, step, stream)` before every update and acting call, so
/// a run resumed from a checkpoint draws exactly what the uninterrupted run would have drawn.
///
/// tch exposes only libtorch's *global* generator (per device). Agents therefore hold
/// [`torch_rng_lock`] from the reseed to the last draw of an update or acting call, so agents in
/// different threads stay deterministic; torch sampling elsewhere in the process that does not
/// take the lock can still interleave (and is itself affected by the reseeds).
#[derive(Debug, Clone)]
pub struct TorchNoise {
    seed: u64,
}

impl TorchNoise {
    /// A source whose draws depend only on `seed` and the `(step, stream)` passed to `reseed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The base seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// SplitMix64 finaliser: a well-mixed 63-bit seed from `(seed, step, stream)`.
fn mix(seed: u64, step: u64, stream: u64) -> i64 {
    let mut z = seed
        .wrapping_add(step.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

impl Noise for TorchNoise {
    fn normal(&mut self, _label: &str, shape: &[i64], device: Device) -> Result<Tensor> {
        Ok(Tensor::f_randn(shape, (Kind::Float, device))?)
    }

    fn uniform(&mut self, _label: &str, shape: &[i64], device: Device) -> Result<Tensor> {
        Ok(Tensor::f_rand(shape, (Kind::Float, device))?)
    }

    fn uses_global_torch_rng(&self) -> bool {
        true
    }

    fn torch_seed(&self) -> Option<u64> {
        Some(self.seed)
    }

    fn reseed(&mut self, step: u64, stream: u64) {
        // Seeds the CPU and every CUDA generator; no device synchronisation.
        tch::manual_seed(mix(self.seed, step, stream));
    }
}

/// A source that refuses every draw: stands in for an agent's own source while that one is lent
/// out to an update (never asked for a draw).
pub(crate) struct NoDraws;

impl Noise for NoDraws {
    fn normal(&mut self, label: &str, _shape: &[i64], _device: Device) -> Result<Tensor> {
        Err(AgentError::Noise(format!("no source to draw {label} from")))
    }

    fn uniform(&mut self, label: &str, _shape: &[i64], _device: Device) -> Result<Tensor> {
        Err(AgentError::Noise(format!("no source to draw {label} from")))
    }
}

/// Recorded draws returned in order; each request must match the next draw's label suffix (if the
/// recorded name carries one) and shape, otherwise it is an error naming both.
pub struct ReplayNoise {
    draws: VecDeque<(String, Tensor)>,
}

impl ReplayNoise {
    /// Replays `draws` (name, tensor) in the given order. Names like `003_adj_x0` match the label
    /// `adj_x0`; `adj_noise_2` matches the label `adj_noise`.
    pub fn new(draws: Vec<(String, Tensor)>) -> Self {
        Self {
            draws: draws.into(),
        }
    }

    fn next(&mut self, label: &str, shape: &[i64], device: Device) -> Result<Tensor> {
        let (name, t) = self.draws.pop_front().ok_or_else(|| {
            AgentError::Noise(format!(
                "replay exhausted: no recorded draw left for {label} {shape:?}"
            ))
        })?;
        let stem = name.split_once('_').map_or(name.as_str(), |(_, rest)| rest);
        let base = stem
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches('_');
        if stem != label && base != label {
            return Err(AgentError::Noise(format!(
                "replay out of order: next recorded draw is {name}, requested {label}"
            )));
        }
        if t.size() != shape {
            return Err(AgentError::Noise(format!(
                "replayed draw {name}: expected shape {shape:?}, recorded {:?}",
                t.size()
            )));
        }
        Ok(t.f_to_kind(Kind::Float)?.f_to_device(device)?)
    }
}

impl Noise for ReplayNoise {
    fn normal(&mut self, label: &str, shape: &[i64], device: Device) -> Result<Tensor> {
        self.next(label, shape, device)
    }

    fn uniform(&mut self, label: &str, shape: &[i64], device: Device) -> Result<Tensor> {
        self.next(label, shape, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_noise_is_a_function_of_seed_step_stream() {
        let _lock = torch_rng_lock();
        let mut a = TorchNoise::new(3);
        a.reseed(10, 0);
        let x = a.normal("x", &[5], Device::Cpu).unwrap();
        a.reseed(11, 0);
        let y = a.normal("x", &[5], Device::Cpu).unwrap();
        a.reseed(10, 0);
        let z = a.normal("x", &[5], Device::Cpu).unwrap();
        assert!(x.equal(&z));
        assert!(!x.equal(&y));
        let u = a.uniform("u", &[1000], Device::Cpu).unwrap();
        assert!(u.min().double_value(&[]) >= 0.0 && u.max().double_value(&[]) < 1.0);
    }

    #[test]
    fn replay_checks_label_order_and_shape() {
        let mut r = ReplayNoise::new(vec![
            (
                "000_bc_x0".into(),
                Tensor::zeros([2, 3], (Kind::Float, Device::Cpu)),
            ),
            (
                "001_adj_noise_0".into(),
                Tensor::ones([2, 3], (Kind::Float, Device::Cpu)),
            ),
            (
                "002_adj_noise_1".into(),
                Tensor::ones([2, 3], (Kind::Float, Device::Cpu)),
            ),
        ]);
        // The recorded draws come back, in order: zeros, then the first ones.
        let zeros = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
        let ones = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        assert!(
            r.normal("bc_x0", &[2, 3], Device::Cpu)
                .unwrap()
                .equal(&zeros)
        );
        assert!(
            r.normal("adj_noise", &[2, 3], Device::Cpu)
                .unwrap()
                .equal(&ones)
        );
        let e = r
            .normal("adj_noise", &[3, 2], Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("002_adj_noise_1") && e.contains("[3, 2]"), "{e}");
        assert!(
            r.normal("bc_t", &[1], Device::Cpu)
                .unwrap_err()
                .to_string()
                .contains("exhausted")
        );
    }
}
