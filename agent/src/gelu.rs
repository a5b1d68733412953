//! GELU in the reference's tanh form, `0.5·x·(1 + tanh(u))` with `u = √(2/π)·(x + 0.044715·x³)`,
//! and its derivative.
//!
//! Float32 tensors on the CPU take a kernel of our own: libtorch's CPU GELU evaluates a 1-ulp
//! vector `tanh` that costs about 4 ns an element, a quarter of a small update's time on the
//! demo's CPU, where this one uses `0.5·(1 + tanh(u)) = σ(2u)` with a short `exp` and costs about
//! 1 ns. The two agree to a few float32 ulps (see the tests), well inside the fixtures'
//! tolerances. Everything else (CUDA, other dtypes, CPUs without FMA) goes through libtorch.
//!
//! On CUDA, a Dense layer and its GELU in a pass without autograd become one cuBLASLt call
//! (`dense_gelu`) once [`check_cuda_dense_gelu`] has seen that its GELU is the tanh form.

use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

/// The `approximate` argument of libtorch's GELU ops for the reference's GELU.
pub(crate) const GELU_FORM: &str = "tanh";

/// `GELU(pre)`, as a new tensor.
pub(crate) fn gelu(pre: &Tensor) -> Tensor {
    if !takes_own_kernel(&[pre]) {
        return pre.gelu(GELU_FORM);
    }
    if pre.requires_grad() {
        return tangent_gelu(pre);
    }
    let mut out = fresh_like(pre);
    kernels::forward(read(pre), write(&mut out));
    out
}

/// GELU for a tensor that autograd tracks, which cannot run our kernel backwards: the tangent
/// line of GELU at `pre`, `b + pre·d` with constants `d = GELU'(pre)` and `b = GELU(pre) − pre·d`.
/// Its value and its gradient are GELU's, and its backward is one product.
fn tangent_gelu(pre: &Tensor) -> Tensor {
    let (mut slope, mut offset) = (fresh_like(pre), fresh_like(pre));
    kernels::tangent(read(&pre.detach()), write(&mut slope), write(&mut offset));
    offset.addcmul(pre, &slope)
}

/// `grad · GELU'(pre)`: the vector-Jacobian product of GELU at `pre`, as a new tensor.
pub(crate) fn gelu_backward(grad: &Tensor, pre: &Tensor) -> Tensor {
    if !takes_own_kernel(&[grad, pre])
        || grad.requires_grad()
        || pre.requires_grad()
        || grad.size() != pre.size()
    {
        return pre.gelu_backward(grad, GELU_FORM);
    }
    let mut out = fresh_like(pre);
    kernels::backward(read(grad), read(pre), write(&mut out));
    out
}

/// Whether this CPU runs our kernel and every tensor is a non-empty, contiguous float32 CPU
/// tensor (an empty one may have no storage to point at).
fn takes_own_kernel(tensors: &[&Tensor]) -> bool {
    kernels::available()
        && tensors.iter().all(|t| {
            t.device() == Device::Cpu
                && t.kind() == Kind::Float
                && t.is_contiguous()
                && t.numel() > 0
        })
}

/// A new contiguous float32 CPU tensor of `t`'s shape (contents undefined).
fn fresh_like(t: &Tensor) -> Tensor {
    Tensor::empty(t.size(), (Kind::Float, Device::Cpu))
}

/// The elements of a tensor that passed [`takes_own_kernel`].
fn read(t: &Tensor) -> &[f32] {
    // SAFETY: `t` is a contiguous float32 CPU tensor, so its `numel` elements lie in one run from
    // `data_ptr`, and they stay alive and unwritten while `t` is borrowed (our kernels write only
    // to fresh tensors).
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) }
}

/// The elements of a tensor made by [`fresh_like`], to fill.
fn write(t: &mut Tensor) -> &mut [f32] {
    // SAFETY: as in `read`; `t` is fresh (no other tensor shares its storage) and borrowed mutably, so nothing
    // else reads or writes its storage meanwhile.
    unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel()) }
}

/// What [`check_cuda_dense_gelu`] found per CUDA device index: the largest difference between
/// libtorch's fused Dense + GELU and the tanh-form GELU, or why the fused op failed.
static CUDA_DENSE_GELU: Mutex<Vec<(usize, Result<f64, String>)>> = Mutex::new(Vec::new());

/// The largest difference the fused Dense + GELU may show against `gelu(…, "tanh")` on exact
/// products (a tanh-form epilogue is within ~1e-7 of it; the erf form differs by up to 4.7e-4).
pub const FUSED_GELU_TOLERANCE: f64 = 1e-5;

#[cfg(qamlab_cuda_shim)]
unsafe extern "C" {
    fn qamlab_addmm_gelu(
        bias: *const std::ffi::c_void,
        x: *const std::ffi::c_void,
        kernel: *const std::ffi::c_void,
        out: *mut *mut std::ffi::c_void,
    ) -> *mut std::ffi::c_char;
}

/// libtorch's `_addmm_activation(bias, x, kernel, use_gelu = true)`, through the C++ shim (tch's
/// own binding of it always applies ReLU). On the CPU it computes the erf form of GELU.
fn addmm_gelu(bias: &Tensor, x: &Tensor, kernel: &Tensor) -> Result<Tensor, String> {
    #[cfg(qamlab_cuda_shim)]
    {
        let mut out = std::ptr::null_mut();
        // SAFETY: the three handles are live tch tensors (pointers to `at::Tensor`) for the
        // call; on success `out` is a new `at::Tensor` that `from_ptr` takes ownership of.
        let message = unsafe {
            qamlab_addmm_gelu(
                bias.as_ptr().cast(),
                x.as_ptr().cast(),
                kernel.as_ptr().cast(),
                &mut out,
            )
        };
        match crate::shim::take_error(message) {
            Some(e) => Err(e),
            None => Ok(unsafe { Tensor::from_ptr(out.cast()) }),
        }
    }
    #[cfg(not(qamlab_cuda_shim))]
    {
        let _ = (bias, x, kernel);
        Err("this build has no fused Dense + GELU (no CUDA headers when it was built)".into())
    }
}

/// `GELU(x·W + b)` for a Dense layer (`x [M, in]`, `kernel [in, out]`, `bias [out]`).
///
/// On a CUDA device where [`check_cuda_dense_gelu`] passed, with nothing tracked by autograd,
/// this is one fused op (cuBLASLt's bias + GELU epilogue): one kernel instead of two in the
/// frozen roll-outs, whose update is bound by kernel count. Elsewhere it is [`gelu`] of `addmm`.
pub(crate) fn dense_gelu(x: &Tensor, kernel: &Tensor, bias: &Tensor) -> Tensor {
    let tracked = x.requires_grad() || kernel.requires_grad() || bias.requires_grad();
    if !tracked
        && x.kind() == Kind::Float
        && cuda_fusion_passed(x.device())
        && let Ok(out) = addmm_gelu(bias, x, kernel)
    {
        return out;
    }
    gelu(&bias.addmm(x, kernel))
}

/// Whether [`check_cuda_dense_gelu`] ran on `device` (a CUDA device) and passed.
fn cuda_fusion_passed(device: Device) -> bool {
    let Device::Cuda(index) = device else {
        return false;
    };
    let checked = CUDA_DENSE_GELU.lock().unwrap_or_else(|e| e.into_inner());
    checked
        .iter()
        .any(|(i, diff)| *i == index && matches!(diff, Ok(d) if *d <= FUSED_GELU_TOLERANCE))
}

/// Checks, once per CUDA device, that libtorch's fused Dense + GELU computes the tanh form, and
/// returns the largest difference found (within [`FUSED_GELU_TOLERANCE`]: `dense_gelu` fuses
/// on that device) or why the op failed; `None` off CUDA. It draws no random numbers and
/// synchronises the device, so [`crate::Agent::new`] calls it before any graph capture.
pub fn check_cuda_dense_gelu(device: Device) -> Option<Result<f64, String>> {
    let Device::Cuda(index) = device else {
        return None;
    };
    let mut checked = CUDA_DENSE_GELU.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, found)) = checked.iter().find(|(i, _)| *i == index) {
        return Some(found.clone());
    }
    let found = fused_gelu_difference(device);
    checked.push((index, found.clone()));
    Some(found)
}

/// The largest difference between the fused Dense + GELU on `device` and the tanh-form GELU, on
/// a 512×512 identity times values `k/64` in [−4, 4]: products exact in IEEE fp32 and TF32
/// alike, so only the GELU is compared. NaN (a broken op) fails the check too.
fn fused_gelu_difference(device: Device) -> Result<f64, String> {
    tch::no_grad(|| {
        let n = 512;
        let eye = Tensor::eye(n, (Kind::Float, device));
        let values = (Tensor::arange(n * n, (Kind::Int64, device)).remainder(513) - 256)
            .to_kind(Kind::Float)
            .reshape([n, n])
            / 64.0;
        let zero = Tensor::zeros([n], (Kind::Float, device));
        let fused = addmm_gelu(&zero, &eye, &values)?;
        let diff = (fused - values.gelu(GELU_FORM))
            .abs()
            .max()
            .double_value(&[]);
        Ok(if diff.is_nan() { f64::INFINITY } else { diff })
    })
}

/// The element loops, in fused multiply-adds (IEEE `fma`, exactly rounded), so every machine that
/// runs them gives the same bytes: x86-64 with AVX2 and FMA, and aarch64. Elsewhere libtorch's
/// kernel runs instead.
mod kernels {
    /// `√(2/π)`.
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    /// The cubic coefficient of the tanh form.
    const CUBIC: f32 = 0.044_715;

    /// Whether this CPU runs the loops (with its fused multiply-add instructions).
    pub(super) fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        #[cfg(target_arch = "aarch64")]
        return true;
        #[allow(unreachable_code)]
        false
    }

    /// `exp(z)` for `z` in [−87, 88]: `2^k·e^r` with `k = round(z/ln 2)`, `|r| ≤ ln 2 / 2`, and
    /// the degree-7 Taylor polynomial of `e^r`, whose truncation error (below 1e-8) is under a
    /// float32 ulp. Branch-free so that the loops vectorise.
    #[inline(always)]
    fn exp(z: f32) -> f32 {
        /// 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
        const ROUNDER: f32 = 12_582_912.0;
        const LOG2_E: f32 = std::f32::consts::LOG2_E;
        // ln 2 split so that `k·LN2_HI` is exact for the k that occur.
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        let z = z.clamp(-87.0, 88.0);
        let shifted = z.mul_add(LOG2_E, ROUNDER);
        let k = shifted - ROUNDER;
        let r = (-k).mul_add(LN2_LO, (-k).mul_add(LN2_HI, z));
        // Estrin's scheme: four independent pairs, then two levels, for a short dependency chain.
        let (r2, c) = (r * r, |a: f32, b: f32| r.mul_add(b, a));
        let (p01, p23) = (c(1.0, 1.0), c(0.5, 1.0 / 6.0));
        let (p45, p67) = (c(1.0 / 24.0, 1.0 / 120.0), c(1.0 / 720.0, 1.0 / 5040.0));
        let (lo, hi) = (p23.mul_add(r2, p01), p67.mul_add(r2, p45));
        let p = hi.mul_add(r2 * r2, lo);
        let k_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits());
        let scale = f32::from_bits(k_bits.wrapping_add(127) << 23);
        p * scale
    }

    /// `(σ(2u), 1 − σ(2u))` for `u(x)`, where `σ(2u) = 0.5·(1 + tanh(u))`; the complement is
    /// computed as `e^{−2u}·σ(2u)`, without the cancellation of `1 − σ`.
    ///
    /// Below 2⁻²⁶ `σ` is flushed to 0, where float32 `tanh(u)` is −1 and libtorch's (and XLA's)
    /// GELU and slope are exactly 0: the far tail then stays 0 rather than a tiny number whose
    /// products in later layers and in backward passes would sink into slow subnormals.
    #[inline(always)]
    fn sigmoid_2u(x: f32) -> (f32, f32) {
        // −2u = x·(−2√(2/π) − 2√(2/π)·0.044715·x²)
        const A: f32 = -2.0 * SQRT_2_OVER_PI;
        /// 2²⁶.
        const FLUSH: f32 = 67_108_864.0;
        let e = exp(x * (x * x).mul_add(A * CUBIC, A));
        let s = if e > FLUSH { 0.0 } else { 1.0 / (1.0 + e) };
        (s, e * s)
    }

    /// `y = GELU(x)`, element by element.
    #[inline(always)]
    pub(super) fn forward_loop(x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * sigmoid_2u(x).0;
        }
    }

    /// `2u'(x) = 2√(2/π)·(1 + 3·0.044715·x²)`, for `d/dx x·σ(2u) = σ + x·σ(1 − σ)·2u'(x)`.
    #[inline(always)]
    fn du2(x: f32) -> f32 {
        const B: f32 = 2.0 * SQRT_2_OVER_PI;
        (x * x).mul_add(3.0 * CUBIC * B, B)
    }

    /// `y = g · GELU'(x)`: the gradient through GELU.
    #[inline(always)]
    pub(super) fn backward_loop(g: &[f32], x: &[f32], y: &mut [f32]) {
        for ((y, &g), &x) in y.iter_mut().zip(g).zip(x) {
            let (s, one_minus_s) = sigmoid_2u(x);
            *y = g * (x * s * one_minus_s).mul_add(du2(x), s);
        }
    }

    /// GELU's tangent at each `x`: `slope = GELU'(x)` and `offset = GELU(x) − x·slope`.
    #[inline(always)]
    pub(super) fn tangent_loop(x: &[f32], slope: &mut [f32], offset: &mut [f32]) {
        for ((d, b), &x) in slope.iter_mut().zip(offset.iter_mut()).zip(x) {
            let (s, one_minus_s) = sigmoid_2u(x);
            *d = (x * s * one_minus_s).mul_add(du2(x), s);
            // GELU(x) − x·d, with one rounding.
            *b = (-x).mul_add(*d, x * s);
        }
    }

    /// Defines `pub(super) fn $name` that runs `$body` compiled for AVX-512 where the CPU has it,
    /// else for AVX2 and FMA, on x86-64 (as is elsewhere), and on x86-64 `$avx2`, the AVX2 build
    /// alone (what CPUs without AVX-512 run; the byte test runs both); to be called only where
    /// [`available`] (they assert it).
    macro_rules! wide {
        ($(#[$doc:meta])* $name:ident, $avx2:ident => $body:ident($($arg:ident: $ty:ty),*)) => {
            $(#[$doc])*
            pub(super) fn $name($($arg: $ty),*) {
                // A check, not a debug one: the safe function's soundness rests on it (the CPU's features are
                // detected once and cached, so it costs a load).
                assert!(available(), "GELU kernels called on a CPU without AVX2 and FMA");
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    fn x86_512($($arg: $ty),*) {
                        $body($($arg),*)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has AVX-512F, and (`available`) AVX2 and FMA.
                        unsafe { x86_512($($arg),*) }
                    } else {
                        $avx2($($arg),*)
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                $body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            $(#[$doc])*
            pub(super) fn $avx2($($arg: $ty),*) {
                assert!(available(), "GELU kernels called on a CPU without AVX2 and FMA");
                #[target_feature(enable = "avx2,fma")]
                fn x86($($arg: $ty),*) {
                    $body($($arg),*)
                }
                // SAFETY: `available` checked that the CPU has AVX2 and FMA.
                unsafe { x86($($arg),*) }
            }
        };
    }

    wide!(
        /// `y = GELU(x)`.
        forward, forward_avx2 => forward_loop(x: &[f32], y: &mut [f32])
    );
    wide!(
        /// `y = g·GELU'(x)`.
        backward, backward_avx2 => backward_loop(g: &[f32], x: &[f32], y: &mut [f32])
    );
    wide!(
        /// `slope = GELU'(x)`, `offset = GELU(x) − x·slope`.
        tangent, tangent_avx2 => tangent_loop(x: &[f32], slope: &mut [f32], offset: &mut [f32])
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs across GELU's range: the bulk near 0, the tails where `tanh` saturates, exact
    /// zeros and the extremes of `exp`'s clamp.
    fn inputs() -> Tensor {
        let spread = Tensor::linspace(-12.0, 12.0, 24_000, (Kind::Float, Device::Cpu));
        let odd = Tensor::from_slice(&[0.0f32, -0.0, 1e-30, -1e-30, 40.0, -40.0, 1e4, -1e4]);
        Tensor::cat(&[spread, odd], 0).reshape([-1, 8])
    }

    /// The largest of `|a − exact|` less a few float32 ulps of `max(1, |x|)` (`|GELU(x)| ≤ |x|`
    /// and `|GELU'(x)| < 1.2`): at most 0 when `a` is within them everywhere.
    fn excess_error(a: &Tensor, exact: &Tensor, x: &Tensor) -> f64 {
        let ulps = x.abs().clamp_min(1.0).to_kind(Kind::Double) * 4e-7;
        ((a.to_kind(Kind::Double) - exact).abs() - ulps)
            .max()
            .double_value(&[])
    }

    fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
        (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[])
    }

    #[test]
    fn the_cpu_kernel_agrees_with_exact_gelu_and_with_libtorch() {
        let x = inputs();
        assert!(takes_own_kernel(&[&x]), "the test must reach our kernel");
        let g = (&x * 0.37).sin();
        let exact = x.to_kind(Kind::Double).gelu(GELU_FORM);
        let exact_vjp = x
            .to_kind(Kind::Double)
            .gelu_backward(&g.to_kind(Kind::Double), GELU_FORM);

        let (value, vjp) = (gelu(&x), gelu_backward(&g, &x));
        assert!(excess_error(&value, &exact, &x) <= 0.0, "GELU");
        assert!(excess_error(&vjp, &exact_vjp, &x) <= 0.0, "GELU backward");
        assert!(max_abs(&value, &x.gelu(GELU_FORM)) < 4e-6);
        assert!(max_abs(&vjp, &x.gelu_backward(&g, GELU_FORM)) < 4e-6);

        // Tracked: the tangent line has GELU's value and, through autograd, its gradient.
        let tracked = x.detach().set_requires_grad(true);
        let value = gelu(&tracked);
        assert!(value.requires_grad());
        assert!(excess_error(&value, &exact, &x) <= 0.0, "tracked GELU");
        let grad =
            Tensor::run_backward(&[(&value * &g).sum(Kind::Float)], &[&tracked], false, false);
        assert!(
            excess_error(&grad[0], &exact_vjp, &x) <= 0.0,
            "tracked gradient"
        );
    }

    #[test]
    fn other_layouts_go_through_libtorch_and_agree() {
        let x = inputs();
        let transposed = x.tr();
        assert!(!takes_own_kernel(&[&transposed]));
        assert_eq!(
            max_abs(&gelu(&transposed), &transposed.gelu(GELU_FORM)),
            0.0
        );
        let double = x.to_kind(Kind::Double);
        assert_eq!(max_abs(&gelu(&double), &double.gelu(GELU_FORM)), 0.0);
        let empty = Tensor::zeros([0, 8], (Kind::Float, Device::Cpu));
        assert_eq!(gelu(&empty).size(), vec![0, 8]);
    }

    #[test]
    fn the_fusion_check_tells_the_tanh_form_from_the_erf_form() {
        // Draws from libtorch's global generator, which another test may have just seeded to check its draws.
        let _rng = crate::noise::torch_rng_lock();
        // libtorch's CPU `_addmm_activation` applies the erf GELU: the check must refuse it (and
        // tch's own binding, which applies ReLU, would differ by 0.17).
        if cfg!(qamlab_cuda_shim) {
            let diff = fused_gelu_difference(Device::Cpu).unwrap();
            assert!(diff > 10.0 * FUSED_GELU_TOLERANCE, "erf vs tanh: {diff:e}");
            assert!(diff < 1e-3, "{diff:e}");
        } else {
            assert!(fused_gelu_difference(Device::Cpu).is_err());
        }
        assert_eq!(check_cuda_dense_gelu(Device::Cpu), None);
        assert!(!cuda_fusion_passed(Device::Cpu));
        // Off CUDA, `dense_gelu` is `gelu` of the Dense layer.
        let (x, w, b) = (
            Tensor::randn([6, 4], (Kind::Float, Device::Cpu)),
            Tensor::randn([4, 3], (Kind::Float, Device::Cpu)),
            Tensor::randn([3], (Kind::Float, Device::Cpu)),
        );
        assert!(dense_gelu(&x, &w, &b).equal(&gelu(&b.addmm(&x, &w))));
    }

    #[test]
    fn non_finite_inputs_stay_non_finite() {
        let x = Tensor::from_slice(&[f32::NAN, 1.0, f32::INFINITY, f32::NEG_INFINITY]);
        let y = Vec::<f32>::try_from(gelu(&x)).unwrap();
        assert!(y[0].is_nan());
        assert!((y[1] - 0.841_192).abs() < 1e-6);
        assert_eq!(y[2], f32::INFINITY);
        assert!(!y[3].is_finite());
        let d = Vec::<f32>::try_from(gelu_backward(&Tensor::ones_like(&x), &x)).unwrap();
        assert!(d[0].is_nan());
        let tracked = gelu(&x.set_requires_grad(true));
        assert!(Vec::<f32>::try_from(tracked.detach()).unwrap()[0].is_nan());
    }

    #[test]
    fn the_vector_and_the_scalar_loops_give_the_same_bytes() {
        let x = Vec::<f32>::try_from(inputs().flatten(0, 1)).unwrap();
        let g: Vec<f32> = x.iter().map(|v| (v * 0.37).sin()).collect();
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
        let n = x.len();
        type Forward = fn(&[f32], &mut [f32]);
        type Backward = fn(&[f32], &[f32], &mut [f32]);
        type Tangent = fn(&[f32], &mut [f32], &mut [f32]);
        // The dispatching builds (AVX-512 on CPUs that have it), and on x86-64 the AVX2 ones too.
        let mut builds: Vec<(Forward, Backward, Tangent)> =
            vec![(kernels::forward, kernels::backward, kernels::tangent)];
        #[cfg(target_arch = "x86_64")]
        builds.push((
            kernels::forward_avx2,
            kernels::backward_avx2,
            kernels::tangent_avx2,
        ));
        for (forward, backward, tangent) in builds {
            let (mut wide, mut plain) = (vec![0.0; n], vec![0.0; n]);
            forward(&x, &mut wide);
            kernels::forward_loop(&x, &mut plain);
            assert!(same(&wide, &plain));
            backward(&g, &x, &mut wide);
            kernels::backward_loop(&g, &x, &mut plain);
            assert!(same(&wide, &plain));
            let (mut wide_b, mut plain_b) = (vec![0.0; n], vec![0.0; n]);
            tangent(&x, &mut wide, &mut wide_b);
            kernels::tangent_loop(&x, &mut plain, &mut plain_b);
            assert!(same(&wide, &plain) && same(&wide_b, &plain_b));
        }
    }
}
