//! Networks of spec §1: the MLP block (Dense → GELU(tanh) → LayerNorm), the batched critic
//! ensemble, flow vector fields, and the QAM-E edit actor with its temperature.
//!
//! Kernels are stored in the JAX `[in, out]` layout (ensembles `[K, in, out]`) under the reference
//! parameter names, so a fixture or checkpoint maps onto them by name.

use tch::{Device, Kind, Tensor};

use crate::gelu::{dense_gelu, gelu, gelu_backward};

/// LayerNorm epsilon of the reference (flax default; libtorch's default is 1e-5).
pub const LAYER_NORM_EPS: f64 = 1e-6;

/// A parameter tensor under its reference name.
pub type NamedTensor = (String, Tensor);

/// Anything made of named parameter tensors.
pub trait Parameters {
    /// Shallow handles (shared storage) to every parameter, with full names, in a fixed order.
    fn named_parameters(&self) -> Vec<NamedTensor>;
    /// Mutable handles to the same tensors, in the same order (used to re-home them as views of
    /// one flat buffer, see [`flatten_parameters`]).
    fn parameters_mut(&mut self) -> Vec<&mut Tensor>;
}

/// Floats from the start of one parameter to the next in a flat buffer are a multiple of this, so
/// every parameter view starts on a 64-byte boundary (as the buffer does), like a tensor of its
/// own: packed tight, most views after the critic's `[K, 1]` bias started on 8-byte boundaries,
/// which rules out cuBLAS(Lt)'s and libtorch's vectorised kernels (16 bytes) and aligned AVX-512
/// loads (64).
pub const SLOT_ALIGN: i64 = 16;

/// Where each of tensors with `numels` elements starts in a flat buffer (each start a multiple of
/// [`SLOT_ALIGN`]), and the buffer's length. The floats between slots stay zero: their gradient is
/// zero, so Adam and Polyak leave them zero and the global norm does not see them.
pub fn flat_layout(numels: impl IntoIterator<Item = i64>) -> (Vec<i64>, i64) {
    let mut end = 0;
    let starts = numels
        .into_iter()
        .map(|n| {
            let start = end;
            end += slot_len(n);
            start
        })
        .collect();
    (starts, end)
}

/// The floats a tensor of `numel` elements takes in a flat buffer: rounded up to [`SLOT_ALIGN`].
pub fn slot_len(numel: i64) -> i64 {
    (numel as u64).next_multiple_of(SLOT_ALIGN as u64) as i64
}

/// Moves every tensor of `params` into one new flat buffer (in order, laid out by
/// [`flat_layout`]) and replaces each by a view of it; with `trainable` the views are gradient
/// leaves. Backward still yields one small gradient per tensor (views of a non-differentiable
/// buffer, so no full-size scatter per view), while the optimiser and Polyak updates run as a
/// handful of whole-buffer kernels.
pub fn flatten_parameters(params: Vec<&mut Tensor>, trainable: bool, device: Device) -> Tensor {
    let (starts, total) = flat_layout(params.iter().map(|p| p.numel() as i64));
    let flat = Tensor::zeros([total], (Kind::Float, device));
    tch::no_grad(|| {
        for (p, &start) in params.iter().zip(&starts) {
            flat.narrow(0, start, p.numel() as i64)
                .copy_(&p.reshape([-1]));
        }
    });
    for (p, start) in params.into_iter().zip(starts) {
        let (n, shape) = (p.numel() as i64, p.size());
        *p = flat
            .narrow(0, start, n)
            .view(shape.as_slice())
            .set_requires_grad(trainable);
    }
    flat
}

/// Xavier/Glorot-uniform `[.., in, out]` tensor (bound `√(6/(in+out))`) drawn from torch's generator.
fn xavier_uniform(shape: &[i64], device: Device) -> Tensor {
    let (fan_in, fan_out) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    (Tensor::rand(shape, (Kind::Float, device)) * (2.0 * bound) - bound).set_requires_grad(true)
}

fn zeros(shape: &[i64], device: Device) -> Tensor {
    Tensor::zeros(shape, (Kind::Float, device)).set_requires_grad(true)
}

fn ones(shape: &[i64], device: Device) -> Tensor {
    Tensor::ones(shape, (Kind::Float, device)).set_requires_grad(true)
}

/// A parameter as seen by a forward pass: live (gradients flow into it) or frozen (a detached
/// view sharing storage — "constant" in the spec, used for target networks and for terms whose
/// gradient must only reach the input, e.g. `Q(s, a_os)` in QAM-F).
fn view(p: &Tensor, frozen: bool) -> Tensor {
    if frozen {
        p.detach()
    } else {
        p.shallow_clone()
    }
}

/// Flattens `[..., n]` to `[M, n]`, returning the leading shape.
fn flatten_lead(x: &Tensor) -> (Vec<i64>, Tensor) {
    let size = x.size();
    let n = *size
        .last()
        .expect("network input must have at least one dimension");
    (size[..size.len() - 1].to_vec(), x.reshape([-1, n]))
}

/// Builds the Dense/LayerNorm sizes of `MLP(sizes)` for input width `input`.
fn layer_shapes(input: usize, sizes: &[usize]) -> Vec<(i64, i64)> {
    let mut fan_in = input as i64;
    sizes
        .iter()
        .map(|&out| {
            let s = (fan_in, out as i64);
            fan_in = out as i64;
            s
        })
        .collect()
}

/// One `x @ W + b` layer, kernel in `[in, out]` layout.
pub struct Dense {
    /// `[in, out]`.
    pub kernel: Tensor,
    /// `[out]`.
    pub bias: Tensor,
}

/// `MLP(sizes, activate_final, layer_norm)` of spec §1.1 (one member).
pub struct Mlp {
    prefix: String,
    dense: Vec<Dense>,
    /// `(scale, bias)` of `LayerNorm_j`, present on the activated layers when layer norm is on.
    norms: Vec<Option<(Tensor, Tensor)>>,
    activate_final: bool,
}

impl Mlp {
    /// Xavier-uniform kernels, zero biases, LayerNorm scale 1 / bias 0; names `{prefix}/Dense_j/…`.
    pub fn new(
        prefix: &str,
        input: usize,
        sizes: &[usize],
        activate_final: bool,
        layer_norm: bool,
        device: Device,
    ) -> Self {
        let shapes = layer_shapes(input, sizes);
        let n = shapes.len();
        let dense = shapes
            .iter()
            .map(|&(i, o)| Dense {
                kernel: xavier_uniform(&[i, o], device),
                bias: zeros(&[o], device),
            })
            .collect();
        let norms = shapes
            .iter()
            .enumerate()
            .map(|(j, &(_, o))| {
                let activated = j + 1 < n || activate_final;
                (layer_norm && activated).then(|| (ones(&[o], device), zeros(&[o], device)))
            })
            .collect();
        Self {
            prefix: prefix.to_string(),
            dense,
            norms,
            activate_final,
        }
    }

    /// `[..., in] → [..., out]`; `frozen` evaluates with detached parameters.
    pub fn forward(&self, x: &Tensor, frozen: bool) -> Tensor {
        let (lead, h) = flatten_lead(x);
        let first = &self.dense[0];
        let pre = view(&first.bias, frozen).addmm(&h, &view(&first.kernel, frozen));
        let out = self.forward_from_first(pre, frozen);
        let width = out.size()[1];
        out.reshape([lead, vec![width]].concat())
    }

    /// The rest of the network from the first Dense layer's output `pre` (`[M, H₀]`).
    fn forward_from_first(&self, pre: Tensor, frozen: bool) -> Tensor {
        let n = self.dense.len();
        let out = if n == 1 {
            pre
        } else {
            let d = &self.dense[n - 1];
            let h = self.last_hidden_from_first(pre, frozen);
            view(&d.bias, frozen).addmm(&h, &view(&d.kernel, frozen))
        };
        if self.activate_final {
            self.activate(n - 1, &out, frozen)
        } else {
            out
        }
    }

    /// The output layer's input, from the first Dense layer's output `pre`: the activated hidden
    /// layers. Needs at least one hidden layer.
    fn last_hidden_from_first(&self, pre: Tensor, frozen: bool) -> Tensor {
        let n = self.dense.len();
        assert!(
            n > 1,
            "an MLP without hidden layers has no last hidden layer"
        );
        let mut h = self.activate(0, &pre, frozen);
        for (j, d) in self.dense.iter().enumerate().take(n - 1).skip(1) {
            let (kernel, bias) = (view(&d.kernel, frozen), view(&d.bias, frozen));
            h = match self.norms[j] {
                None => dense_gelu(&h, &kernel, &bias),
                Some(_) => self.activate(j, &bias.addmm(&h, &kernel), frozen),
            };
        }
        h
    }

    /// GELU (tanh form), then layer `j`'s LayerNorm when it has one.
    fn activate(&self, j: usize, pre: &Tensor, frozen: bool) -> Tensor {
        let h = gelu(pre);
        match &self.norms[j] {
            Some((scale, bias)) => {
                let width = h.size()[1];
                h.layer_norm(
                    [width],
                    Some(view(scale, frozen)),
                    Some(view(bias, frozen)),
                    LAYER_NORM_EPS,
                    true,
                )
            }
            None => h,
        }
    }

    /// Whether any layer has a LayerNorm.
    fn has_layer_norm(&self) -> bool {
        self.norms.iter().any(Option::is_some)
    }
}

impl Parameters for Mlp {
    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        let mut v = Vec::new();
        for (d, norm) in self.dense.iter_mut().zip(self.norms.iter_mut()) {
            v.push(&mut d.bias);
            v.push(&mut d.kernel);
            if let Some((scale, bias)) = norm {
                v.push(bias);
                v.push(scale);
            }
        }
        v
    }

    fn named_parameters(&self) -> Vec<NamedTensor> {
        let layers = self.dense.iter().map(|d| (&d.kernel, &d.bias));
        named_layers(&self.prefix, layers, &self.norms)
    }
}

/// Reference names of an MLP's parameters (`<prefix>/Dense_j/{bias,kernel}`,
/// `<prefix>/LayerNorm_j/{bias,scale}`), shared by the single and the ensemble MLP.
fn named_layers<'a>(
    prefix: &str,
    layers: impl Iterator<Item = (&'a Tensor, &'a Tensor)>,
    norms: &[Option<(Tensor, Tensor)>],
) -> Vec<NamedTensor> {
    let mut v = Vec::new();
    for (j, ((kernel, bias), norm)) in layers.zip(norms).enumerate() {
        v.push((format!("{prefix}/Dense_{j}/bias"), bias.shallow_clone()));
        v.push((format!("{prefix}/Dense_{j}/kernel"), kernel.shallow_clone()));
        if let Some((scale, bias)) = norm {
            v.push((format!("{prefix}/LayerNorm_{j}/bias"), bias.shallow_clone()));
            v.push((
                format!("{prefix}/LayerNorm_{j}/scale"),
                scale.shallow_clone(),
            ));
        }
    }
    v
}

/// `K` independent MLPs evaluated as one batched module: kernels `[K, in, out]`, biases and
/// LayerNorm parameters `[K, out]`; every layer is one `baddbmm`.
pub struct EnsembleMlp {
    prefix: String,
    members: i64,
    /// `([K, in, out], [K, out])` per layer.
    dense: Vec<(Tensor, Tensor)>,
    norms: Vec<Option<(Tensor, Tensor)>>,
}

impl EnsembleMlp {
    /// `K` members, each initialised independently (Xavier-uniform kernels, zero biases).
    pub fn new(
        prefix: &str,
        members: usize,
        input: usize,
        sizes: &[usize],
        layer_norm: bool,
        device: Device,
    ) -> Self {
        let k = members as i64;
        let shapes = layer_shapes(input, sizes);
        let n = shapes.len();
        let dense = shapes
            .iter()
            .map(|&(i, o)| (xavier_uniform(&[k, i, o], device), zeros(&[k, o], device)))
            .collect();
        let norms = shapes
            .iter()
            .enumerate()
            .map(|(j, &(_, o))| {
                (layer_norm && j + 1 < n).then(|| (ones(&[k, o], device), zeros(&[k, o], device)))
            })
            .collect();
        Self {
            prefix: prefix.to_string(),
            members: k,
            dense,
            norms,
        }
    }

    /// Shared input `[..., in]` → `[K, ..., out]` (no final activation).
    pub fn forward(&self, x: &Tensor, frozen: bool) -> Tensor {
        let (lead, flat) = flatten_lead(x);
        let m = flat.size()[0];
        let in_dim = flat.size()[1];
        let mut h = flat.unsqueeze(0).expand([self.members, m, in_dim], false);
        let n = self.dense.len();
        for (j, ((w, b), norm)) in self.dense.iter().zip(&self.norms).enumerate() {
            h = view(b, frozen)
                .unsqueeze(1)
                .baddbmm(&h, &view(w, frozen), 1.0, 1.0);
            if j + 1 < n {
                h = gelu(&h);
                if let Some((scale, bias)) = norm {
                    let width = h.size()[2];
                    let normed = h.layer_norm(
                        [width],
                        None::<Tensor>,
                        None::<Tensor>,
                        LAYER_NORM_EPS,
                        true,
                    );
                    h = view(bias, frozen)
                        .unsqueeze(1)
                        .addcmul(&normed, &view(scale, frozen).unsqueeze(1));
                }
            }
        }
        let out = h.size()[2];
        h.reshape([vec![self.members], lead, vec![out]].concat())
    }
}

impl Parameters for EnsembleMlp {
    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        let mut v = Vec::new();
        for ((w, b), norm) in self.dense.iter_mut().zip(self.norms.iter_mut()) {
            v.push(b);
            v.push(w);
            if let Some((scale, bias)) = norm {
                v.push(bias);
                v.push(scale);
            }
        }
        v
    }

    fn named_parameters(&self) -> Vec<NamedTensor> {
        let layers = self.dense.iter().map(|(w, b)| (w, b));
        named_layers(&self.prefix, layers, &self.norms)
    }
}

/// Critic `Value` ensemble (§1.2): `Q_k(s, a)` for `K` members, input `concat(obs, action)`.
pub struct Critic {
    net: EnsembleMlp,
}

impl Critic {
    /// `name` is `critic` or `target_critic`; parameters live under `{name}/value_net/…`.
    pub fn new(
        name: &str,
        k: usize,
        obs: usize,
        act: usize,
        hidden: &[usize],
        ln: bool,
        device: Device,
    ) -> Self {
        let sizes = [hidden, &[1]].concat();
        Self {
            net: EnsembleMlp::new(
                &format!("{name}/value_net"),
                k,
                obs + act,
                &sizes,
                ln,
                device,
            ),
        }
    }

    /// `obs [..., O]`, `action [..., D]` → `[K, ...]`.
    pub fn forward(&self, obs: &Tensor, action: &Tensor, frozen: bool) -> Tensor {
        self.net
            .forward(&Tensor::cat(&[obs, action], -1), frozen)
            .squeeze_dim(-1)
    }
}

impl Parameters for Critic {
    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        self.net.parameters_mut()
    }

    fn named_parameters(&self) -> Vec<NamedTensor> {
        self.net.named_parameters()
    }
}

/// Flow velocity field (§1.3): input `concat(obs, x, t)`; without time input (`timed = false`) it
/// is the one-step actor `concat(obs, noise)`.
pub struct VectorField {
    mlp: Mlp,
    timed: bool,
}

impl VectorField {
    /// Parameters under `{name}/mlp/…`; `timed` adds the scalar time input.
    pub fn new(
        name: &str,
        obs: usize,
        d: usize,
        hidden: &[usize],
        ln: bool,
        timed: bool,
        device: Device,
    ) -> Self {
        let sizes = [hidden, &[d]].concat();
        let input = obs + d + usize::from(timed);
        Self {
            mlp: Mlp::new(&format!("{name}/mlp"), input, &sizes, false, ln, device),
            timed,
        }
    }

    /// `obs [..., O]`, `x [..., D]`, `t [..., 1]` (ignored when untimed) → velocity `[..., D]`.
    pub fn forward(&self, obs: &Tensor, x: &Tensor, t: Option<&Tensor>, frozen: bool) -> Tensor {
        let input = match (self.timed, t) {
            (true, Some(t)) => Tensor::cat(&[obs, x, t], -1),
            (true, None) => panic!("timed vector field called without a time input"),
            (false, _) => Tensor::cat(&[obs, x], -1),
        };
        self.mlp.forward(&input, frozen)
    }
}

impl Parameters for VectorField {
    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        self.mlp.parameters_mut()
    }

    fn named_parameters(&self) -> Vec<NamedTensor> {
        self.mlp.named_parameters()
    }
}

/// A timed [`VectorField`] with frozen parameters and one fixed observation batch, evaluated at
/// the flow times `i/T` (`i = 0..=T`): the inner loop of every roll-out. The first layer's
/// observation part and bias (`[M, H₀]`) and each time's term (`[T+1, H₀]`) are computed once,
/// so a step adds its time row and multiplies only `x`, with no concatenation and no time tensor
/// per step: on a GPU each of the update's ~1,000 small kernels costs a launch
/// (docs/benchmarks.md, "Agent").
pub struct FrozenFlow<'a> {
    mlp: &'a Mlp,
    /// `obs·W_obs + b`, `[M, H₀]`.
    at_obs: Tensor,
    /// `(i/T)·w_t` for `i = 0..=T`, `[T+1, H₀]`.
    at_time: Tensor,
    /// The action rows of the first kernel, `[D, H₀]`.
    kernel_x: Tensor,
    /// Leading shape of the observations (`M` is its product).
    lead: Vec<i64>,
    steps: usize,
}

impl VectorField {
    /// This field frozen at `obs [..., O]`, for `flow_steps` steps at the times `i/flow_steps`.
    pub fn frozen_flow(&self, obs: &Tensor, flow_steps: usize) -> FrozenFlow<'_> {
        assert!(self.timed, "frozen_flow needs a timed vector field");
        tch::no_grad(|| {
            let (lead, obs) = flatten_lead(obs);
            let o = obs.size()[1];
            let dense = &self.mlp.dense[0];
            let kernel = dense.kernel.detach();
            let d = kernel.size()[0] - o - 1;
            // `i/T` rounded once to float32, as `Tensor::full(.., i as f64 / T)` would round it,
            // built on the device so that a CUDA-graph capture needs no host copy.
            let times = (Tensor::arange(flow_steps as i64 + 1, (Kind::Double, obs.device()))
                / flow_steps as f64)
                .to_kind(Kind::Float);
            FrozenFlow {
                mlp: &self.mlp,
                at_obs: dense.bias.detach().addmm(&obs, &kernel.narrow(0, 0, o)),
                at_time: times.unsqueeze(1) * kernel.select(0, o + d).unsqueeze(0),
                kernel_x: kernel.narrow(0, o, d),
                lead,
                steps: flow_steps,
            }
        })
    }
}

impl FrozenFlow<'_> {
    /// The number of flow steps `T` (times `0, 1/T, …, 1`).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Leading shape of the observations the field is frozen at.
    pub fn lead(&self) -> &[i64] {
        &self.lead
    }

    /// The field's device.
    pub fn device(&self) -> Device {
        self.at_obs.device()
    }

    /// The first layer's output at `x [M, D]` and time `step/T`: the time row added to the
    /// observation part, then `x·W_x` accumulated into it in place (one GEMM, no copy).
    fn first_layer(&self, x: &Tensor, step: usize) -> Tensor {
        let mut pre = &self.at_obs + self.at_time.get(step as i64);
        let _ = pre.addmm_(x, &self.kernel_x);
        pre
    }

    fn shaped(&self, lead: &[i64], flat: Tensor) -> Tensor {
        let width = flat.size()[1];
        flat.reshape([lead, &[width]].concat())
    }

    /// `field(obs, x, step/T)` for `x [..., D]` (leading shape as the observations').
    pub fn velocity(&self, x: &Tensor, step: usize) -> Tensor {
        let (lead, x) = flatten_lead(x);
        let pre = self.first_layer(&x, step);
        self.shaped(&lead, self.mlp.forward_from_first(pre, true))
    }

    /// `EulerFlow` (§6.1) from `eps [..., D]`: `a ← a + velocity(a, i)/T` for `i < T`, then clip
    /// to [−1, 1]. The `1/T` is folded into the output layer once (`a + b/T`, then `h·(W/T)`
    /// accumulated in place), so a step has one op fewer than `a + v/T`: acting is ten of these.
    pub fn euler(&self, eps: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let (lead, mut a) = flatten_lead(eps);
            let dense = &self.mlp.dense;
            let inv = 1.0 / self.steps as f64;
            if dense.len() == 1 {
                for i in 0..self.steps {
                    a = &a + self.first_layer(&a, i) * inv;
                }
            } else {
                let out = &dense[dense.len() - 1];
                let (kernel, bias) = (out.kernel.detach() * inv, out.bias.detach() * inv);
                for i in 0..self.steps {
                    let h = self
                        .mlp
                        .last_hidden_from_first(self.first_layer(&a, i), true);
                    let mut next = &a + &bias;
                    let _ = next.addmm_(&h, &kernel);
                    a = next;
                }
            }
            self.shaped(&lead, a.clamp(-1.0, 1.0))
        })
    }

    /// The velocities at every step `i < n` at once: `xs [n, ..., D]` (`xs[i]` at time `i/T`)
    /// → `[n, ..., D]`, as one pass over `n·M` rows.
    pub fn velocities(&self, xs: &Tensor) -> Tensor {
        let n = xs.size()[0];
        let (lead, flat) = flatten_lead(xs);
        let width = self.at_obs.size()[1];
        let mut pre = (self.at_obs.unsqueeze(0) + self.at_time.narrow(0, 0, n).unsqueeze(1))
            .reshape([-1, width]);
        let _ = pre.addmm_(&flat, &self.kernel_x);
        self.shaped(&lead, self.mlp.forward_from_first(pre, true))
    }

    /// `keep·c + scale·J(x)ᵀc`, with `J(x)` the Jacobian of `velocity(x, step)` with respect to
    /// `x` and `c` a cotangent (both `[..., D]`): one step of a backward adjoint recursion.
    ///
    /// Without LayerNorm the vector-Jacobian product is written out (GELU backward and one
    /// matrix product per layer, the scalars folded into the last product), which skips the
    /// output layer's forward and autograd's bookkeeping: about half the kernels of
    /// `run_backward`. With LayerNorm, whose backward tch does not expose, autograd computes it.
    pub fn adjoint_step(
        &self,
        x: &Tensor,
        step: usize,
        cot: &Tensor,
        keep: f64,
        scale: f64,
    ) -> Result<Tensor, tch::TchError> {
        if self.mlp.has_layer_norm() || self.mlp.activate_final {
            let x = x.detach().set_requires_grad(true);
            let dot = (self.velocity(&x, step) * cot).sum(Kind::Float);
            let vjp = Tensor::f_run_backward(&[dot], &[&x], false, false)?.remove(0);
            return Ok(cot * keep + vjp * scale);
        }
        Ok(tch::no_grad(|| {
            let (lead, x) = flatten_lead(x);
            let (_, cot) = flatten_lead(cot);
            let dense = &self.mlp.dense;
            // Pre-activations of the hidden layers; the output layer's value is not needed.
            let mut pres = vec![self.first_layer(&x, step)];
            for d in &dense[1..(dense.len() - 1).max(1)] {
                let h = gelu(pres.last().expect("first layer"));
                pres.push(d.bias.detach().addmm(&h, &d.kernel.detach()));
            }
            let mut g = cot.shallow_clone();
            for (d, pre) in dense[1..].iter().zip(&pres).rev() {
                g = gelu_backward(&g.mm(&d.kernel.detach().tr()), pre);
            }
            let out = cot.unsqueeze(0).baddbmm(
                &g.unsqueeze(0),
                &self.kernel_x.tr().unsqueeze(0),
                keep,
                scale,
            );
            self.shaped(&lead, out.squeeze_dim(0))
        }))
    }
}

/// A reparameterised tanh-Gaussian sample of the edit actor (§1.4), all `[..., D]` except `log_prob`.
pub struct EditSample {
    /// Mean of the pre-tanh Gaussian.
    pub mean: Tensor,
    /// `exp(clip(log_std, −20, 2))`.
    pub std: Tensor,
    /// `u = mean + std·ξ`.
    pub pre_tanh: Tensor,
    /// `e = tanh(u)`.
    pub edit: Tensor,
    /// `log π(e)` from the pre-tanh sample, `[...]`.
    pub log_prob: Tensor,
}

/// QAM-E edit actor: trunk `MLP(hidden, activate_final)` and Dense heads for mean and log-std.
pub struct EditActor {
    trunk: Mlp,
    mean: Dense,
    log_std: Dense,
}

impl EditActor {
    /// Parameters under `edit_actor/MLP_0/…`, `edit_actor/OutputDenseMean/…`, `…/OutputDenseLogStd/…`. The
    /// trunk never layer-normalises, whatever `actor_layer_norm` says of the flow actors (as the reference).
    pub fn new(obs: usize, d: usize, hidden: &[usize], device: Device) -> Self {
        let last = *hidden.last().unwrap_or(&(obs + d)) as i64;
        let head = || Dense {
            kernel: xavier_uniform(&[last, d as i64], device),
            bias: zeros(&[d as i64], device),
        };
        Self {
            trunk: Mlp::new("edit_actor/MLP_0", obs + d, hidden, true, false, device),
            mean: head(),
            log_std: head(),
        }
    }

    /// Samples the edit for `obs [..., O]`, flow action `a [..., D]` and standard-normal `ξ [..., D]`.
    pub fn sample(&self, obs: &Tensor, a: &Tensor, xi: &Tensor, frozen: bool) -> EditSample {
        let feat = self.trunk.forward(&Tensor::cat(&[obs, a], -1), frozen);
        let head = |d: &Dense| feat.matmul(&view(&d.kernel, frozen)) + view(&d.bias, frozen);
        let mean = head(&self.mean);
        let log_std = head(&self.log_std).clamp(-20.0, 2.0);
        let std = log_std.exp();
        let pre_tanh = &mean + &std * xi;
        let edit = pre_tanh.tanh();
        let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let gauss =
            (xi.square() * -0.5 - &log_std - half_log_2pi).sum_dim_intlist(-1, false, Kind::Float);
        let log_det = ((-&pre_tanh * 2.0).softplus() + &pre_tanh - std::f64::consts::LN_2) * -2.0;
        let log_prob = gauss - log_det.sum_dim_intlist(-1, false, Kind::Float);
        EditSample {
            mean,
            std,
            pre_tanh,
            edit,
            log_prob,
        }
    }
}

impl Parameters for EditActor {
    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        let mut v = self.trunk.parameters_mut();
        for d in [&mut self.log_std, &mut self.mean] {
            v.push(&mut d.bias);
            v.push(&mut d.kernel);
        }
        v
    }

    fn named_parameters(&self) -> Vec<NamedTensor> {
        let mut v = self.trunk.named_parameters();
        for (name, d) in [
            ("OutputDenseLogStd", &self.log_std),
            ("OutputDenseMean", &self.mean),
        ] {
            v.push((format!("edit_actor/{name}/bias"), d.bias.shallow_clone()));
            v.push((
                format!("edit_actor/{name}/kernel"),
                d.kernel.shallow_clone(),
            ));
        }
        v
    }
}

/// Learned temperature `alpha = exp(log_alpha)` of QAM-E (`edit_alpha/log_value`, init 0).
pub struct Temperature {
    /// 0-d `log_alpha`.
    pub log_value: Tensor,
}

impl Temperature {
    /// `log_alpha = log 1 = 0`.
    pub fn new(device: Device) -> Self {
        Self {
            log_value: zeros(&[], device),
        }
    }

    /// `alpha = exp(log_alpha)` (0-d).
    pub fn alpha(&self, frozen: bool) -> Tensor {
        view(&self.log_value, frozen).exp()
    }
}

impl Parameters for Temperature {
    fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        vec![&mut self.log_value]
    }

    fn named_parameters(&self) -> Vec<NamedTensor> {
        vec![(
            "edit_alpha/log_value".to_string(),
            self.log_value.shallow_clone(),
        )]
    }
}

/// Copies `src` into `dst` tensor by tensor (same order and shapes), without gradient tracking.
pub fn copy_parameters(dst: &impl Parameters, src: &impl Parameters) {
    tch::no_grad(|| {
        for ((_, mut d), (_, s)) in dst
            .named_parameters()
            .into_iter()
            .zip(src.named_parameters())
        {
            d.copy_(&s);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensemble_matches_member_loop_and_gelu_is_tanh() {
        // Draws from libtorch's global generator, which another test may have just seeded to check its draws.
        let _rng = crate::noise::torch_rng_lock();
        tch::manual_seed(0);
        let ens = EnsembleMlp::new("c", 3, 4, &[8, 8, 1], true, Device::Cpu);
        let x = Tensor::randn([5, 2, 4], (Kind::Float, Device::Cpu));
        // Tracked: GELU as its tangent line; frozen (untracked): the plain CPU kernel of `gelu`.
        let (out, frozen_out) = (ens.forward(&x, false), ens.forward(&x, true));
        assert!(out.requires_grad() && !frozen_out.requires_grad());
        assert_eq!(out.size(), vec![3, 5, 2, 1]);
        let p = ens.named_parameters();
        let get = |n: &str| p.iter().find(|(k, _)| k == n).unwrap().1.shallow_clone();
        for k in 0..3 {
            let mut h = x.reshape([-1, 4]);
            for j in 0..3 {
                h = h.matmul(&get(&format!("c/Dense_{j}/kernel")).get(k))
                    + get(&format!("c/Dense_{j}/bias")).get(k);
                if j < 2 {
                    let inner = (&h + h.pow_tensor_scalar(3) * 0.044715)
                        * (2.0 / std::f64::consts::PI).sqrt();
                    h = &h * 0.5 * (inner.tanh() + 1.0);
                    let mu = h.mean_dim(-1, true, Kind::Float);
                    let var = (&h - &mu).square().mean_dim(-1, true, Kind::Float);
                    h = (&h - mu) / (var + 1e-6).sqrt()
                        * get(&format!("c/LayerNorm_{j}/scale")).get(k)
                        + get(&format!("c/LayerNorm_{j}/bias")).get(k);
                }
            }
            for out in [&out, &frozen_out] {
                let diff = (out.get(k).reshape([-1, 1]) - &h)
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(diff < 1e-5, "member {k}: {diff}");
            }
        }
    }

    /// `J(x)ᵀc` of `field.forward` at time `t`, by autograd through the concatenated input.
    fn autograd_vjp(field: &VectorField, obs: &Tensor, x: &Tensor, t: f64, c: &Tensor) -> Tensor {
        let x = x.detach().set_requires_grad(true);
        let mut time = x.size();
        *time.last_mut().unwrap() = 1;
        let t = Tensor::full(time, t, (Kind::Float, Device::Cpu));
        let dot = (field.forward(obs, &x, Some(&t), true) * c).sum(Kind::Float);
        Tensor::run_backward(&[dot], &[&x], false, false).remove(0)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        assert_eq!(a.size(), b.size());
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn frozen_flow_matches_the_concatenated_forward_and_autograd() {
        // Draws from libtorch's global generator, which another test may have just seeded to check its draws.
        let _rng = crate::noise::torch_rng_lock();
        tch::manual_seed(2);
        let steps = 4;
        for (hidden, ln) in [
            (vec![16, 16, 16], false),
            (vec![16], false),
            (vec![16, 16], true),
            (vec![], false),
        ] {
            let field = VectorField::new("f", 3, 2, &hidden, ln, true, Device::Cpu);
            // Shared trailing observations, as `sample_actions` lays out best-of-N candidates.
            let obs = Tensor::randn([5, 3, 3], (Kind::Float, Device::Cpu));
            let x = Tensor::randn([5, 3, 2], (Kind::Float, Device::Cpu));
            let c = Tensor::randn([5, 3, 2], (Kind::Float, Device::Cpu));
            let flow = field.frozen_flow(&obs, steps);
            for step in [0, 1, steps] {
                let t = step as f64 / steps as f64;
                let time = Tensor::full([5, 3, 1], t, (Kind::Float, Device::Cpu));
                let want = field.forward(&obs, &x, Some(&time), true);
                let diff = max_diff(&flow.velocity(&x, step), &want);
                assert!(
                    diff < 1e-5,
                    "velocity {hidden:?} ln {ln} step {step}: {diff}"
                );
                let vjp = autograd_vjp(&field, &obs, &x, t, &c);
                for (keep, scale) in [(0.0, 1.0), (0.75, 0.2)] {
                    let got = flow.adjoint_step(&x, step, &c, keep, scale).unwrap();
                    let want = &c * keep + &vjp * scale;
                    let diff = max_diff(&got, &want);
                    assert!(
                        diff < 1e-5,
                        "adjoint {hidden:?} ln {ln} step {step}: {diff}"
                    );
                }
            }
            let mut a = x.shallow_clone();
            for i in 0..steps {
                a = &a + flow.velocity(&a, i) / steps as f64;
            }
            let diff = max_diff(&flow.euler(&x), &a.clamp(-1.0, 1.0));
            assert!(diff < 1e-5, "euler {hidden:?} ln {ln}: {diff}");
            let xs = Tensor::randn([steps as i64, 5, 3, 2], (Kind::Float, Device::Cpu));
            let all = flow.velocities(&xs);
            for i in 0..steps {
                let diff = max_diff(&all.get(i as i64), &flow.velocity(&xs.get(i as i64), i));
                assert!(diff < 1e-5, "velocities {hidden:?} step {i}: {diff}");
            }
        }
    }

    #[test]
    fn xavier_bounds_and_zero_bias() {
        // Draws from libtorch's global generator, which another test may have just seeded to check its draws.
        let _rng = crate::noise::torch_rng_lock();
        tch::manual_seed(1);
        let m = Mlp::new("a/mlp", 10, &[16, 6], false, false, Device::Cpu);
        let p = m.named_parameters();
        let k = &p
            .iter()
            .find(|(n, _)| n == "a/mlp/Dense_0/kernel")
            .unwrap()
            .1;
        assert_eq!(k.size(), vec![10, 16]);
        let bound = (6.0f64 / 26.0).sqrt();
        assert!(k.abs().max().double_value(&[]) <= bound);
        assert!(k.abs().max().double_value(&[]) > 0.8 * bound);
        assert_eq!(
            p.iter()
                .find(|(n, _)| n == "a/mlp/Dense_1/bias")
                .unwrap()
                .1
                .abs()
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
        assert!(!p.iter().any(|(n, _)| n.contains("LayerNorm")));
    }
}
