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
use candle_core::{DType, Device, Result, Tensor, Var};

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

    /// The optimiser state as named tensors (`{prefix}.{i}.m`, `{prefix}.{i}.v`,
    /// `{prefix}.steps` as F64 `[n_vars]`), e.g. for `candle_core::safetensors::save`.
    pub fn state_tensors(&self, prefix: &str) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for i in 0..self.vars.len() {
            out.insert(format!("{prefix}.{i}.m"), self.m[i].clone());
            out.insert(format!("{prefix}.{i}.v"), self.v[i].clone());
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
                dst.push(t.to_dtype(var.dtype())?.to_device(var.device())?.detach());
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
