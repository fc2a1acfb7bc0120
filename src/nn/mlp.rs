//! Multi-layer perceptron with PyTorch's default `nn.Linear` initialisation drawn from our RNG.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Linear, VarMap};

use super::activation::Activation;
use super::linear::linear;
use crate::rng::Rng;

/// Layer sizes and activations of an [`Mlp`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlpConfig {
    /// `[in, hidden_1, ..., hidden_k, out]`; at least two entries, all positive.
    pub sizes: Vec<usize>,
    /// Activation after every layer except the last.
    pub hidden_activation: Activation,
    /// Activation after the last layer (usually [`Activation::Identity`]).
    pub output_activation: Activation,
}

impl MlpConfig {
    /// `in -> hidden... -> out` with the given hidden activation and a linear output.
    pub fn new(input: usize, hidden: &[usize], output: usize, activation: Activation) -> Self {
        let mut sizes = Vec::with_capacity(hidden.len() + 2);
        sizes.push(input);
        sizes.extend_from_slice(hidden);
        sizes.push(output);
        Self {
            sizes,
            hidden_activation: activation,
            output_activation: Activation::Identity,
        }
    }
}

/// A fully connected network `x -> act(W_1 x + b_1) -> ... -> out_act(W_n h + b_n)`.
///
/// Weights are stored as `[out, in]` (PyTorch layout) in a [`VarMap`] under
/// `{prefix}.{i}.weight` / `{prefix}.{i}.bias`.
#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    vars: Vec<Var>,
    config: MlpConfig,
}

impl Mlp {
    /// Builds the network, registering its variables in `varmap`.
    ///
    /// Initialisation is PyTorch's default for `nn.Linear` (`kaiming_uniform_(a = sqrt(5))`
    /// for the weight, which reduces to `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, and the same
    /// bound for the bias), drawn from `rng` layer by layer: weight (row-major), then bias.
    pub fn new(
        config: &MlpConfig,
        varmap: &VarMap,
        prefix: &str,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        if config.sizes.len() < 2 || config.sizes.contains(&0) {
            candle_core::bail!(
                "Mlp {prefix}: sizes must have >= 2 positive entries, got {:?}",
                config.sizes
            );
        }
        if !dtype.is_float() {
            candle_core::bail!("Mlp {prefix}: dtype must be floating point, got {dtype:?}");
        }
        let mut layers = Vec::with_capacity(config.sizes.len() - 1);
        let mut vars = Vec::with_capacity(2 * (config.sizes.len() - 1));
        let mut data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("Mlp: VarMap mutex poisoned".into()))?;
        for (i, w) in config.sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = 1.0 / (fan_in as f64).sqrt();
            let weight = Var::from_tensor(&rng.uniform_tensor(
                (fan_out, fan_in),
                -bound,
                bound,
                dtype,
                device,
            )?)?;
            let bias =
                Var::from_tensor(&rng.uniform_tensor(fan_out, -bound, bound, dtype, device)?)?;
            for (name, var) in [("weight", &weight), ("bias", &bias)] {
                let key = format!("{prefix}.{i}.{name}");
                if data.contains_key(&key) {
                    candle_core::bail!("Mlp: variable {key} already exists in the VarMap");
                }
                data.insert(key, var.clone());
            }
            layers.push(Linear::new(
                weight.as_tensor().clone(),
                Some(bias.as_tensor().clone()),
            ));
            vars.push(weight);
            vars.push(bias);
        }
        Ok(Self {
            layers,
            vars,
            config: config.clone(),
        })
    }

    /// Forward pass on a batch `[batch, in]`, returning `[batch, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match x.dims() {
            [_, d] if *d == self.in_dim() => {}
            dims => candle_core::bail!(
                "Mlp::forward: expected input [batch, {}], got {dims:?}",
                self.in_dim()
            ),
        }
        let last = self.layers.len() - 1;
        let mut h = x.clone();
        for i in 0..self.layers.len() {
            let act = if i == last {
                self.config.output_activation
            } else {
                self.config.hidden_activation
            };
            // One fused op per layer (see `super::linear`); same values as Linear + act.
            h = linear(
                &h,
                self.vars[2 * i].as_tensor(),
                self.vars[2 * i + 1].as_tensor(),
                act,
            )?;
        }
        Ok(h)
    }

    /// The variables in layer order: `[w_0, b_0, w_1, b_1, ...]`.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The configuration the network was built with.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.config.sizes[0]
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.config.sizes[self.config.sizes.len() - 1]
    }

    /// Number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }
}

/// Copies `src` into `dst` variable by variable (shapes must match).
pub fn copy_vars(dst: &[Var], src: &[Var]) -> Result<()> {
    if dst.len() != src.len() {
        candle_core::bail!(
            "copy_vars: {} destination vs {} source vars",
            dst.len(),
            src.len()
        );
    }
    for (d, s) in dst.iter().zip(src) {
        if d.shape() != s.shape() {
            candle_core::bail!("copy_vars: shape {:?} vs {:?}", d.shape(), s.shape());
        }
        d.set(&s.as_tensor().detach())?;
    }
    Ok(())
}
