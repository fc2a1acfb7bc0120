//! Adam with exportable state.
//!
//! Why not `candle_nn::AdamW`: with `weight_decay = 0` it *is* Adam mathematically (the decay
//! factor is `1 - lr * 0 = 1`, an exact multiplication, and `m_hat / (sqrt(v_hat) + eps)` equals
//! PyTorch's `m / (sqrt(v) / sqrt(bc2) + eps) / bc1`; `tests/nn_optim.rs` checks agreement to
//! ~1e-15 in f64), but its moments and step counter are private fields with no accessor, so
//! they cannot be saved in or restored from a checkpoint. It also keeps one global step counter
//! where PyTorch counts per parameter (they differ only when a parameter gets no gradient in
//! some step), and it records autograd graphs for its update when gradients are not detached
//! (see [`crate::autodiff`]). This small Adam follows PyTorch's `torch.optim.Adam`
//! (single-tensor path) and exposes its state.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, Layout, Result, Tensor, Var};

/// Adam hyper-parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    /// Learning rate (paper 001 Table 3: 3e-4).
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
}

impl Default for AdamConfig {
    /// `lr = 3e-4`, `betas = (0.9, 0.999)`, `eps = 1e-8`.
    fn default() -> Self {
        Self {
            lr: 3e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// Default betas / eps with the given learning rate.
    pub fn with_lr(lr: f64) -> Self {
        Self {
            lr,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr >= 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps.is_finite()
            && self.eps >= 0.0;
        if !ok {
            candle_core::bail!("invalid Adam config {self:?}");
        }
        Ok(())
    }
}

/// Adam (PyTorch semantics, per-parameter step counts, no weight decay).
#[derive(Debug)]
pub struct Adam {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    steps: Vec<u64>,
    config: AdamConfig,
}

impl Adam {
    /// An optimiser over `vars` (all must be floating point).
    ///
    /// The state is keyed by position, so pass the variables in a deterministic order
    /// (`Mlp::vars`, `TwinQ::vars`, ...), not `VarMap::all_vars()`, which follows `HashMap`
    /// iteration order and changes from run to run.
    pub fn new(vars: Vec<Var>, config: AdamConfig) -> Result<Self> {
        config.validate()?;
        let mut m = Vec::with_capacity(vars.len());
        let mut v = Vec::with_capacity(vars.len());
        for var in &vars {
            if !var.dtype().is_float() {
                candle_core::bail!("Adam: non-float variable of dtype {:?}", var.dtype());
            }
            m.push(var.zeros_like()?.detach());
            v.push(var.zeros_like()?.detach());
        }
        let steps = vec![0; vars.len()];
        Ok(Self {
            vars,
            m,
            v,
            steps,
            config,
        })
    }

    /// The optimised variables.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// Hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Changes the learning rate.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        let mut c = self.config.clone();
        c.lr = lr;
        c.validate()?;
        self.config = c;
        Ok(())
    }

    /// Backward pass of `loss` and one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// One step with the gradients in `grads`; variables without a gradient are skipped
    /// (their moments and step count are left unchanged, as in PyTorch).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        for i in 0..self.vars.len() {
            if let Some(g) = grads.get(self.vars[i].as_tensor()) {
                let g = g.detach();
                self.update(i, &g)?;
            }
        }
        Ok(())
    }

    /// One step with explicit gradients, one per variable in order (e.g. a Stackelberg
    /// gradient from [`crate::autodiff::stackelberg_gradient`]); `None` skips a variable.
    pub fn step_with(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        if grads.len() != self.vars.len() {
            candle_core::bail!(
                "Adam::step_with: {} grads for {} vars",
                grads.len(),
                self.vars.len()
            );
        }
        for (i, g) in grads.iter().enumerate() {
            if let Some(g) = g {
                if g.shape() != self.vars[i].shape() {
                    candle_core::bail!(
                        "Adam::step_with: grad {:?} for var {:?}",
                        g.shape(),
                        self.vars[i].shape()
                    );
                }
                self.update(i, &g.detach())?;
            }
        }
        Ok(())
    }

    fn update(&mut self, i: usize, g: &Tensor) -> Result<()> {
        let c = &self.config;
        self.steps[i] += 1;
        let t = self.steps[i] as i32;
        if fused_ok(self.vars[i].as_tensor(), &self.m[i], &self.v[i], g) {
            return self.update_in_place(i, g, t);
        }
        // m.lerp_(g, 1 - beta1); v = beta2 v + (1 - beta2) g^2 (PyTorch's order of operations)
        let m = (&self.m[i] + ((g - &self.m[i])? * (1.0 - c.beta1))?)?;
        let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let step_size = c.lr / bc1;
        let denom = v.sqrt()?.affine(1.0 / bc2.sqrt(), c.eps)?;
        let var = &self.vars[i];
        let new = (var.as_tensor().detach() - ((&m / denom)? * step_size)?)?;
        var.set(&new)?;
        self.m[i] = m;
        self.v[i] = v;
        Ok(())
    }

    /// [`Adam::update`] in three in-place passes (moments, then parameter) instead of a dozen
    /// allocating tensor ops; the same operations in the same order and precision, so the
    /// result is bit-identical.
    fn update_in_place(&mut self, i: usize, g: &Tensor, t: i32) -> Result<()> {
        let c = &self.config;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        self.m[i].inplace_op2(g, &FirstMoment(1.0 - c.beta1))?;
        self.v[i].inplace_op2(g, &SecondMoment(c.beta2, 1.0 - c.beta2))?;
        self.vars[i].as_tensor().inplace_op3(
            &self.m[i],
            &self.v[i],
            &ParamStep {
                step_size: c.lr / bc1,
                inv_sqrt_bc2: 1.0 / bc2.sqrt(),
                eps: c.eps,
            },
        )
    }

    /// The optimiser state as named tensors (`{prefix}.{i}.m`, `{prefix}.{i}.v`,
    /// `{prefix}.steps` as F64 `[n_vars]`), e.g. for `candle_core::safetensors::save`.
    pub fn state_tensors(&self, prefix: &str) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for i in 0..self.vars.len() {
            // Copies: the moments are updated in place afterwards.
            out.insert(format!("{prefix}.{i}.m"), self.m[i].copy()?);
            out.insert(format!("{prefix}.{i}.v"), self.v[i].copy()?);
        }
        let steps: Vec<f64> = self.steps.iter().map(|&s| s as f64).collect();
        let n = steps.len();
        out.insert(
            format!("{prefix}.steps"),
            Tensor::from_vec(steps, n, &Device::Cpu)?,
        );
        Ok(out)
    }

    /// Restores the state written by [`Adam::state_tensors`] (same variables, same order).
    pub fn load_state_tensors(
        &mut self,
        state: &HashMap<String, Tensor>,
        prefix: &str,
    ) -> Result<()> {
        let get = |k: String| {
            state
                .get(&k)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg(format!("Adam state: missing {k}")))
        };
        let steps = get(format!("{prefix}.steps"))?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        if steps.len() != self.vars.len() {
            candle_core::bail!(
                "Adam state: {} step counts for {} vars",
                steps.len(),
                self.vars.len()
            );
        }
        let mut m = Vec::with_capacity(self.vars.len());
        let mut v = Vec::with_capacity(self.vars.len());
        for (i, var) in self.vars.iter().enumerate() {
            for (name, dst) in [("m", &mut m), ("v", &mut v)] {
                let t = get(format!("{prefix}.{i}.{name}"))?;
                if t.shape() != var.shape() {
                    candle_core::bail!(
                        "Adam state: {prefix}.{i}.{name} has shape {:?}, var {:?}",
                        t.shape(),
                        var.shape()
                    );
                }
                // A copy: the moments are updated in place, never the caller's tensor.
                dst.push(
                    t.to_dtype(var.dtype())?
                        .to_device(var.device())?
                        .copy()?
                        .detach(),
                );
            }
        }
        if steps.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
            candle_core::bail!("Adam state: invalid step counts {steps:?}");
        }
        self.m = m;
        self.v = v;
        self.steps = steps.iter().map(|&s| s as u64).collect();
        Ok(())
    }
}

/// Whether the in-place path applies: CPU, one float dtype, contiguous, equal shapes.
fn fused_ok(w: &Tensor, m: &Tensor, v: &Tensor, g: &Tensor) -> bool {
    let dt = w.dtype();
    w.device().is_cpu()
        && matches!(dt, DType::F32 | DType::F64)
        && [m, v, g]
            .iter()
            .all(|t| t.dtype() == dt && t.shape() == w.shape())
        && [w, m, v, g].iter().all(|t| t.is_contiguous())
}

fn slices<'a, T: candle_core::WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("adam: non-contiguous operand".into()))?;
    Ok(&T::cpu_storage_as_slice(s)?[a..b])
}

fn slices_mut<'a, T: candle_core::WithDType>(
    s: &'a mut CpuStorage,
    l: &Layout,
) -> Result<&'a mut [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("adam: non-contiguous operand".into()))?;
    let v: &mut [T] = match s {
        CpuStorage::F32(v) => bytemuck_slice(v)?,
        CpuStorage::F64(v) => bytemuck_slice(v)?,
        _ => candle_core::bail!("adam: f32 or f64 only"),
    };
    Ok(&mut v[a..b])
}

/// `&mut [U]` as `&mut [T]` when `T` and `U` are the same type (checked at run time).
fn bytemuck_slice<T: 'static, U: 'static>(v: &mut [U]) -> Result<&mut [T]> {
    if std::any::TypeId::of::<T>() != std::any::TypeId::of::<U>() {
        candle_core::bail!("adam: dtype mismatch");
    }
    // SAFETY: T and U are the same type (checked above), so the layout is identical.
    Ok(unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut T, v.len()) })
}

/// `m ← m + (g − m)(1 − β1)` (PyTorch's `lerp_`), as the tensor path computes it.
struct FirstMoment(f64);

impl candle_core::InplaceOp2 for FirstMoment {
    fn name(&self) -> &'static str {
        "adam-first-moment"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        fn run<T: candle_core::WithDType>(
            a: f64,
            s1: &mut CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<()> {
            let a = T::from_f64(a);
            let zero = T::from_f64(0.0);
            let g = slices::<T>(s2, l2)?;
            for (m, &g) in slices_mut::<T>(s1, l1)?.iter_mut().zip(g) {
                *m += (g - *m) * a + zero;
            }
            Ok(())
        }
        match s1 {
            CpuStorage::F32(_) => run::<f32>(self.0, s1, l1, s2, l2),
            _ => run::<f64>(self.0, s1, l1, s2, l2),
        }
    }
}

/// `v ← β2 v + (1 − β2) g²`, as the tensor path computes it.
struct SecondMoment(f64, f64);

impl candle_core::InplaceOp2 for SecondMoment {
    fn name(&self) -> &'static str {
        "adam-second-moment"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        fn run<T: candle_core::WithDType>(
            (b2, c2): (f64, f64),
            s1: &mut CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<()> {
            let (b2, c2, zero) = (T::from_f64(b2), T::from_f64(c2), T::from_f64(0.0));
            let g = slices::<T>(s2, l2)?;
            for (v, &g) in slices_mut::<T>(s1, l1)?.iter_mut().zip(g) {
                *v = (*v * b2 + zero) + ((g * g) * c2 + zero);
            }
            Ok(())
        }
        match s1 {
            CpuStorage::F32(_) => run::<f32>((self.0, self.1), s1, l1, s2, l2),
            _ => run::<f64>((self.0, self.1), s1, l1, s2, l2),
        }
    }
}

/// `w ← w − (m / (√v / √bc2 + ε)) · lr / bc1`, as the tensor path computes it.
struct ParamStep {
    step_size: f64,
    inv_sqrt_bc2: f64,
    eps: f64,
}

impl candle_core::InplaceOp3 for ParamStep {
    fn name(&self) -> &'static str {
        "adam-param-step"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        fn run<T: candle_core::WithDType + num_sqrt::Sqrt>(
            p: &ParamStep,
            s1: &mut CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            s3: &CpuStorage,
            l3: &Layout,
        ) -> Result<()> {
            let step = T::from_f64(p.step_size);
            let inv = T::from_f64(p.inv_sqrt_bc2);
            let eps = T::from_f64(p.eps);
            let zero = T::from_f64(0.0);
            let (m, v) = (slices::<T>(s2, l2)?, slices::<T>(s3, l3)?);
            for ((w, &m), &v) in slices_mut::<T>(s1, l1)?.iter_mut().zip(m).zip(v) {
                let denom = v.sqrt_() * inv + eps;
                *w -= (m / denom) * step + zero;
            }
            Ok(())
        }
        match s1 {
            CpuStorage::F32(_) => run::<f32>(self, s1, l1, s2, l2, s3, l3),
            _ => run::<f64>(self, s1, l1, s2, l2, s3, l3),
        }
    }
}

mod num_sqrt {
    /// `sqrt` for the two float types.
    pub trait Sqrt {
        fn sqrt_(self) -> Self;
    }
    impl Sqrt for f32 {
        fn sqrt_(self) -> Self {
            self.sqrt()
        }
    }
    impl Sqrt for f64 {
        fn sqrt_(self) -> Self {
            self.sqrt()
        }
    }
}
