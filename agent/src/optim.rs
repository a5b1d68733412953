//! One Adam over every trainable parameter (spec §5): optional global-norm clip at 1.0, then
//! bias-corrected Adam with ε outside the square root. Written by hand (tch has no fused/foreach
//! Adam) so it matches optax exactly; no host synchronisation: the clip factor stays a tensor.

use tch::{Kind, Tensor};

use crate::networks::{NamedTensor, flat_layout};

/// Adam hyper-parameters and state. The moments are two flat buffers laid out like the flat
/// parameter buffer; `moments` holds per-parameter views of them (for checkpoints and tests).
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to `√ν̂` (outside the root).
    pub eps: f64,
    /// Clip the global gradient norm to this value before the step (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
    /// Number of steps taken.
    pub count: u64,
    /// `(name, μ, ν)` views, in parameter order.
    pub moments: Vec<(String, Tensor, Tensor)>,
    mu: Tensor,
    nu: Tensor,
    /// `−lr / (1 − β₁ᵗ)` and `1 − β₂ᵗ` of the coming step as 0-d device tensors, filled by
    /// [`Adam::prepare`], so the kernels of [`Adam::apply`] can be replayed from a CUDA graph.
    step_scale: Tensor,
    bias_correction2: Tensor,
}

impl Adam {
    /// Zero moments for the flat parameter buffer `flat`, which holds `params` as laid out by
    /// [`flat_layout`].
    pub fn new(flat: &Tensor, params: &[NamedTensor], lr: f64, max_grad_norm: Option<f64>) -> Self {
        let mu = flat.detach().zeros_like();
        let nu = flat.detach().zeros_like();
        let (starts, total) = flat_layout(params.iter().map(|(_, p)| p.numel() as i64));
        assert_eq!(
            total,
            flat.numel() as i64,
            "params must be laid out in the flat buffer by flat_layout"
        );
        let moments = params
            .iter()
            .zip(starts)
            .map(|((name, p), start)| {
                let (n, shape) = (p.numel() as i64, p.size());
                let view = |t: &Tensor| t.narrow(0, start, n).view(shape.as_slice());
                (name.clone(), view(&mu), view(&nu))
            })
            .collect();
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm,
            count: 0,
            moments,
            step_scale: Tensor::zeros([], (Kind::Float, flat.device())),
            bias_correction2: Tensor::zeros([], (Kind::Float, flat.device())),
            mu,
            nu,
        }
    }

    /// Clips (if configured) and applies one Adam step to the flat parameters `flat` in place,
    /// given their flat gradient: [`Adam::prepare`] then [`Adam::apply`]. Returns the global
    /// gradient norm `√Σ g²` before clipping (0-d tensor, not read on the host).
    pub fn step(&mut self, flat: &Tensor, grad: &Tensor) -> Tensor {
        self.prepare();
        self.apply(flat, grad)
    }

    /// Host half of a step: counts it and writes its bias corrections to the device (two fills,
    /// no synchronisation).
    pub fn prepare(&mut self) {
        self.count += 1;
        let t = self.count as i32;
        let _ = self.step_scale.fill_(-self.lr / (1.0 - self.beta1.powi(t)));
        let _ = self.bias_correction2.fill_(1.0 - self.beta2.powi(t));
    }

    /// Device half of a step, for the count set by the last [`Adam::prepare`]: seven
    /// whole-buffer kernels, no host synchronisation, nothing read from the host.
    pub fn apply(&mut self, flat: &Tensor, grad: &Tensor) -> Tensor {
        let norm = grad.square().sum(Kind::Float).sqrt();
        tch::no_grad(|| {
            // optax clip_by_global_norm: g / max(norm, max) · max, i.e. unchanged when norm < max.
            let g = match self.max_grad_norm {
                Some(m) => grad * (norm.clamp_min(m).reciprocal() * m),
                None => grad.shallow_clone(),
            };
            let _ = self.mu.lerp_(&g, 1.0 - self.beta1);
            self.nu *= self.beta2;
            let _ = self.nu.addcmul_(&(&g * (1.0 - self.beta2)), &g);
            let denom = (&self.nu / &self.bias_correction2).sqrt() + self.eps;
            let mut p = flat.shallow_clone();
            let _ = p.addcdiv_(&(&self.mu * &self.step_scale), &denom);
        });
        norm
    }

    /// The whole-buffer state `(μ, ν)` (to snapshot and restore around a capture).
    pub fn state(&self) -> (&Tensor, &Tensor) {
        (&self.mu, &self.nu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn first_step_moves_by_lr_sign_and_clip_scales() {
        // one slot of three floats and its padding: the padding's zero gradient moves nothing
        let flat = Tensor::zeros([crate::networks::SLOT_ALIGN], (Kind::Float, Device::Cpu));
        let mut p = flat.narrow(0, 0, 3);
        p.copy_(&Tensor::from_slice(&[1.0f32, -2.0, 3.0]));
        let params = vec![("w".to_string(), p.shallow_clone())];
        let g = Tensor::zeros_like(&flat);
        g.narrow(0, 0, 3)
            .copy_(&Tensor::from_slice(&[30.0f32, -40.0, 1e-3]));
        let mut adam = Adam::new(&flat, &params, 0.1, Some(1.0));
        let norm = adam.step(&flat, &g);
        let padding: Vec<f32> = Vec::try_from(flat.narrow(0, 3, flat.numel() as i64 - 3)).unwrap();
        assert!(padding.iter().all(|&x| x == 0.0), "{padding:?}");
        assert!((norm.double_value(&[]) - 50.0).abs() < 1e-3);
        let moved = (&p - Tensor::from_slice(&[1.0f32, -2.0, 3.0])).to_device(Device::Cpu);
        let v: Vec<f32> = Vec::try_from(moved).unwrap();
        assert!(
            (v[0] + 0.1).abs() < 1e-5 && (v[1] - 0.1).abs() < 1e-5,
            "{v:?}"
        );
        // tiny gradient: step shrinks because ε is outside the root (g_c = 2e-5 vs ε = 1e-8)
        assert!(v[2] < 0.0 && v[2] > -0.1);
        let mu: Vec<f32> = Vec::try_from(&adam.moments[0].1).unwrap();
        assert!((mu[0] - 0.1 * 0.6).abs() < 1e-6);
    }
}
