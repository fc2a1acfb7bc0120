//! Stochastic policies: the tanh-squashed Gaussian actor of SAC / Res-SAC / Stack-SAC, and the
//! plain diagonal Gaussian and categorical policies of the on-policy AC / STAC trainers.
//!
//! Every function here is built from Candle ops whose backward passes are themselves
//! differentiable, so log-probabilities can be differentiated twice (needed for the mixed
//! second derivatives of the Stackelberg gradient, paper 001 eq. (43), paper 000 eq. (19)).

use candle_core::{D, DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;

use super::activation::Activation;
use super::mlp::{Mlp, MlpConfig};
use crate::rng::Rng;

/// `0.5 * ln(2 pi)`.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

/// Numerically stable `softplus(x) = ln(1 + e^x) = max(x, 0) + ln(1 + e^{-|x|})`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    x.relu()? + tail
}

/// `ln(1 - tanh(u)^2)` computed stably as `2 (ln 2 - u - softplus(-2u))`.
///
/// The naive form underflows to `ln(0) = -inf` once `tanh(u)` rounds to 1 (`|u| > ~9` in f32),
/// which is exactly where SAC's log-probabilities matter.
pub fn tanh_log_abs_det_jacobian(u: &Tensor) -> Result<Tensor> {
    let sp = softplus(&u.affine(-2.0, 0.0)?)?;
    // 2 ln2 - 2u - 2 softplus(-2u)
    u.affine(-2.0, 2.0 * std::f64::consts::LN_2)? - sp.affine(2.0, 0.0)?
}

/// How the raw log-std output is bounded to `[log_std_min, log_std_max]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogStdBound {
    /// Hard clamp (SB3's rule; zero gradient outside the box).
    Clamp,
    /// CleanRL's smooth rescaling `min + (max - min) (tanh(x) + 1) / 2`.
    Tanh,
}

/// Configuration of a [`SquashedGaussianActor`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SquashedGaussianConfig {
    /// Observation width.
    pub obs_dim: usize,
    /// Hidden layer widths of the trunk.
    pub hidden: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Lower bounds of the action box (length = action dimension).
    pub action_low: Vec<f64>,
    /// Upper bounds of the action box (length = action dimension).
    pub action_high: Vec<f64>,
    /// Lower log-std bound (CleanRL: -5).
    pub log_std_min: f64,
    /// Upper log-std bound (CleanRL / SB3: 2).
    pub log_std_max: f64,
    /// Bounding rule for the log-std.
    pub log_std_bound: LogStdBound,
}

impl SquashedGaussianConfig {
    /// Defaults: log-std clamped to `[-5, 2]`.
    pub fn new(
        obs_dim: usize,
        hidden: &[usize],
        activation: Activation,
        action_low: Vec<f64>,
        action_high: Vec<f64>,
    ) -> Self {
        Self {
            obs_dim,
            hidden: hidden.to_vec(),
            activation,
            action_low,
            action_high,
            log_std_min: -5.0,
            log_std_max: 2.0,
            log_std_bound: LogStdBound::Clamp,
        }
    }

    /// Action dimension.
    pub fn act_dim(&self) -> usize {
        self.action_low.len()
    }
}

/// A reparameterised sample of a [`SquashedGaussianActor`].
#[derive(Clone, Debug)]
pub struct SquashedSample {
    /// Action in the box, `[batch, act_dim]`: `scale * tanh(u) + bias`.
    pub action: Tensor,
    /// `ln pi(action | obs)` as a density on the action box, `[batch]`.
    pub log_prob: Tensor,
    /// The pre-squash Gaussian sample `u = mean + std * eps`, `[batch, act_dim]`.
    pub pre_tanh: Tensor,
}

/// SAC's actor: `u ~ N(mean(s), diag(std(s)^2))`, `a = scale * tanh(u) + bias`, where
/// `scale = (high - low) / 2`, `bias = (high + low) / 2`.
///
/// One MLP outputs `[mean | raw_log_std]` (2 * act_dim columns; under PyTorch's default init
/// this is distributed exactly as CleanRL's two separate heads).
#[derive(Clone, Debug)]
pub struct SquashedGaussianActor {
    net: Mlp,
    config: SquashedGaussianConfig,
    scale: Tensor,
    bias: Tensor,
    /// `sum_i ln scale_i`, the Jacobian of the affine map to the box.
    log_scale_sum: f64,
}

impl SquashedGaussianActor {
    /// Builds the actor and registers its variables under `{prefix}.*` in `varmap`.
    pub fn new(
        config: &SquashedGaussianConfig,
        varmap: &VarMap,
        prefix: &str,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        let act_dim = config.act_dim();
        if act_dim == 0 || config.action_high.len() != act_dim {
            candle_core::bail!(
                "SquashedGaussianActor: action bounds must be non-empty and of equal length \
                 (low {}, high {})",
                config.action_low.len(),
                config.action_high.len()
            );
        }
        for (l, h) in config.action_low.iter().zip(&config.action_high) {
            if !(l.is_finite() && h.is_finite() && l < h) {
                candle_core::bail!("SquashedGaussianActor: invalid action bound [{l}, {h}]");
            }
        }
        if !(config.log_std_min.is_finite()
            && config.log_std_max.is_finite()
            && config.log_std_min < config.log_std_max)
        {
            candle_core::bail!(
                "SquashedGaussianActor: invalid log-std range [{}, {}]",
                config.log_std_min,
                config.log_std_max
            );
        }
        let mlp = MlpConfig::new(
            config.obs_dim,
            &config.hidden,
            2 * act_dim,
            config.activation,
        );
        let net = Mlp::new(&mlp, varmap, prefix, dtype, device, rng)?;
        let scale: Vec<f64> = config
            .action_low
            .iter()
            .zip(&config.action_high)
            .map(|(l, h)| (h - l) / 2.0)
            .collect();
        let bias: Vec<f64> = config
            .action_low
            .iter()
            .zip(&config.action_high)
            .map(|(l, h)| (h + l) / 2.0)
            .collect();
        let log_scale_sum = scale.iter().map(|s| s.ln()).sum();
        let to_t = |v: Vec<f64>| -> Result<Tensor> {
            Tensor::from_vec(v, (1, act_dim), &Device::Cpu)?
                .to_dtype(dtype)?
                .to_device(device)
        };
        Ok(Self {
            net,
            config: config.clone(),
            scale: to_t(scale)?,
            bias: to_t(bias)?,
            log_scale_sum,
        })
    }

    /// Action dimension.
    pub fn act_dim(&self) -> usize {
        self.config.act_dim()
    }

    /// The configuration.
    pub fn config(&self) -> &SquashedGaussianConfig {
        &self.config
    }

    /// Trainable variables.
    pub fn vars(&self) -> &[Var] {
        self.net.vars()
    }

    /// Gaussian parameters `(mean, log_std)`, each `[batch, act_dim]`, log-std bounded.
    pub fn mean_log_std(&self, obs: &Tensor) -> Result<(Tensor, Tensor)> {
        self.mean_log_std_from_output(&self.net.forward(obs)?)
    }

    /// The network `obs -> [mean, raw log-std]` (`2 act_dim` outputs) behind the policy.
    pub fn net(&self) -> &Mlp {
        &self.net
    }

    /// [`SquashedGaussianActor::mean_log_std`] from the network's output `[batch, 2 act_dim]`
    /// (e.g. computed by [`super::MlpTape`]).
    pub fn mean_log_std_from_output(&self, out: &Tensor) -> Result<(Tensor, Tensor)> {
        let a = self.act_dim();
        if out.dims2()?.1 != 2 * a {
            candle_core::bail!(
                "SquashedGaussianActor: network output {:?}, expected [batch, {}]",
                out.dims(),
                2 * a
            );
        }
        let mean = out.narrow(1, 0, a)?;
        let raw = out.narrow(1, a, a)?;
        let (lo, hi) = (self.config.log_std_min, self.config.log_std_max);
        let log_std = match self.config.log_std_bound {
            LogStdBound::Clamp => raw.clamp(lo, hi)?,
            LogStdBound::Tanh => raw.tanh()?.affine(0.5 * (hi - lo), lo + 0.5 * (hi - lo))?,
        };
        Ok((mean, log_std))
    }

    /// Reparameterised sample with standard normal noise `eps` (`[batch, act_dim]`) drawn
    /// from `rng`.
    pub fn sample(&self, obs: &Tensor, rng: &mut Rng) -> Result<SquashedSample> {
        let batch = obs.dim(0)?;
        let eps =
            rng.normal_tensor((batch, self.act_dim()), 0.0, 1.0, obs.dtype(), obs.device())?;
        self.sample_with_noise(obs, &eps)
    }

    /// Reparameterised sample for given noise `eps` (`[batch, act_dim]`).
    ///
    /// `ln pi(a|s) = sum_i [ ln N(u_i; mean_i, std_i) - ln(1 - tanh(u_i)^2) - ln scale_i ]`
    /// (change of variables `a = scale * tanh(u) + bias`), with the Gaussian term written as
    /// `-eps^2/2 - ln std - ln(2 pi)/2`: identical in value and in gradient, because
    /// `(u - mean) / std = eps` holds identically in the parameters.
    pub fn sample_with_noise(&self, obs: &Tensor, eps: &Tensor) -> Result<SquashedSample> {
        self.sample_from_output(&self.net.forward(obs)?, eps)
    }

    /// [`SquashedGaussianActor::sample_with_noise`] from the network's output
    /// `[batch, 2 act_dim]`.
    pub fn sample_from_output(&self, out: &Tensor, eps: &Tensor) -> Result<SquashedSample> {
        let (mean, log_std) = self.mean_log_std_from_output(out)?;
        if eps.dims() != mean.dims() {
            candle_core::bail!(
                "SquashedGaussianActor: noise shape {:?} != {:?}",
                eps.dims(),
                mean.dims()
            );
        }
        let eps = eps.detach();
        let u = (&mean + (log_std.exp()? * &eps)?)?;
        let action = u
            .tanh()?
            .broadcast_mul(&self.scale)?
            .broadcast_add(&self.bias)?;
        let gauss = ((eps.sqr()? * -0.5)? - &log_std)?;
        let per_dim = (gauss - tanh_log_abs_det_jacobian(&u)?)?;
        let log_prob = per_dim.sum(D::Minus1)?.affine(
            1.0,
            -(self.act_dim() as f64) * HALF_LN_2PI - self.log_scale_sum,
        )?;
        Ok(SquashedSample {
            action,
            log_prob,
            pre_tanh: u,
        })
    }

    /// Deterministic action for evaluation: `scale * tanh(mean) + bias`.
    pub fn deterministic(&self, obs: &Tensor) -> Result<Tensor> {
        let (mean, _) = self.mean_log_std(obs)?;
        mean.tanh()?
            .broadcast_mul(&self.scale)?
            .broadcast_add(&self.bias)
    }
}

/// Diagonal Gaussian policy with a state-independent log-std (on-policy AC / STAC on continuous
/// actions; no squashing, the environment clips).
#[derive(Clone, Debug)]
pub struct DiagGaussianPolicy {
    mean_net: Mlp,
    log_std: Var,
    vars: Vec<Var>,
}

impl DiagGaussianPolicy {
    /// Builds the mean network `obs -> hidden -> act_dim` and a log-std vector initialised to
    /// `init_log_std`, registered as `{prefix}.*` and `{prefix}.log_std`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mean_config: &MlpConfig,
        init_log_std: f64,
        varmap: &VarMap,
        prefix: &str,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        if !init_log_std.is_finite() {
            candle_core::bail!("DiagGaussianPolicy: non-finite init_log_std {init_log_std}");
        }
        let mean_net = Mlp::new(mean_config, varmap, prefix, dtype, device, rng)?;
        let act_dim = mean_net.out_dim();
        let log_std = Var::from_tensor(
            &Tensor::full(init_log_std, act_dim, &Device::Cpu)?
                .to_dtype(dtype)?
                .to_device(device)?,
        )?;
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("VarMap mutex poisoned".into()))?;
            let key = format!("{prefix}.log_std");
            if data.contains_key(&key) {
                candle_core::bail!("DiagGaussianPolicy: variable {key} already exists");
            }
            data.insert(key, log_std.clone());
        }
        let mut vars = mean_net.vars().to_vec();
        vars.push(log_std.clone());
        Ok(Self {
            mean_net,
            log_std,
            vars,
        })
    }

    /// Trainable variables (mean network, then log-std).
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// Action dimension.
    pub fn act_dim(&self) -> usize {
        self.mean_net.out_dim()
    }

    /// Mean action `[batch, act_dim]` (also the deterministic evaluation action).
    pub fn mean(&self, obs: &Tensor) -> Result<Tensor> {
        self.mean_net.forward(obs)
    }

    /// The log-std vector `[act_dim]`.
    pub fn log_std(&self) -> &Tensor {
        self.log_std.as_tensor()
    }

    /// `ln pi(a|s)`, `[batch]`, for actions `[batch, act_dim]`.
    pub fn log_prob(&self, obs: &Tensor, actions: &Tensor) -> Result<Tensor> {
        let mean = self.mean(obs)?;
        if actions.dims() != mean.dims() {
            candle_core::bail!(
                "DiagGaussianPolicy::log_prob: actions {:?} vs mean {:?}",
                actions.dims(),
                mean.dims()
            );
        }
        let log_std = self.log_std.as_tensor();
        let z = (actions - &mean)?.broadcast_div(&log_std.exp()?)?;
        let per_dim = (z.sqr()? * -0.5)?.broadcast_sub(log_std)?;
        per_dim
            .sum(D::Minus1)?
            .affine(1.0, -(self.act_dim() as f64) * HALF_LN_2PI)
    }

    /// Samples actions `[batch, act_dim]` (detached) with noise from `rng`.
    pub fn sample(&self, obs: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let mean = self.mean(obs)?.detach();
        let eps = rng.normal_tensor(mean.shape(), 0.0, 1.0, mean.dtype(), mean.device())?;
        mean + eps.broadcast_mul(&self.log_std.as_tensor().detach().exp()?)?
    }

    /// Entropy of the (state-independent) distribution, a scalar tensor:
    /// `sum_i (1/2 + ln(2 pi)/2 + ln std_i)`.
    pub fn entropy(&self) -> Result<Tensor> {
        self.log_std
            .as_tensor()
            .sum_all()?
            .affine(1.0, self.act_dim() as f64 * (0.5 + HALF_LN_2PI))
    }
}

/// Categorical policy over `n` discrete actions (softmax of MLP logits).
#[derive(Clone, Debug)]
pub struct CategoricalPolicy {
    net: Mlp,
}

impl CategoricalPolicy {
    /// Builds the logits network `obs -> hidden -> n_actions`.
    pub fn new(
        config: &MlpConfig,
        varmap: &VarMap,
        prefix: &str,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        Ok(Self {
            net: Mlp::new(config, varmap, prefix, dtype, device, rng)?,
        })
    }

    /// Trainable variables.
    pub fn vars(&self) -> &[Var] {
        self.net.vars()
    }

    /// Number of actions.
    pub fn n_actions(&self) -> usize {
        self.net.out_dim()
    }

    /// Unnormalised logits `[batch, n]`.
    pub fn logits(&self, obs: &Tensor) -> Result<Tensor> {
        self.net.forward(obs)
    }

    /// `ln pi(.|s)`, `[batch, n]` (log-softmax; twice differentiable).
    pub fn log_probs(&self, obs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::log_softmax(&self.logits(obs)?, D::Minus1)
    }

    /// `ln pi(a|s)` of the given actions, `[batch]` (one-hot contraction, so it stays twice
    /// differentiable without relying on gather's backward).
    pub fn log_prob(&self, obs: &Tensor, actions: &[u32]) -> Result<Tensor> {
        let lp = self.log_probs(obs)?;
        let (b, n) = lp.dims2()?;
        if actions.len() != b {
            candle_core::bail!(
                "CategoricalPolicy::log_prob: {} actions for batch {b}",
                actions.len()
            );
        }
        let mut onehot = vec![0f64; b * n];
        for (i, &a) in actions.iter().enumerate() {
            let a = a as usize;
            if a >= n {
                candle_core::bail!("CategoricalPolicy::log_prob: action {a} >= {n}");
            }
            onehot[i * n + a] = 1.0;
        }
        let onehot = Tensor::from_vec(onehot, (b, n), &Device::Cpu)?
            .to_dtype(lp.dtype())?
            .to_device(lp.device())?;
        (lp * onehot)?.sum(D::Minus1)
    }

    /// Entropy per state, `[batch]`.
    pub fn entropy(&self, obs: &Tensor) -> Result<Tensor> {
        let lp = self.log_probs(obs)?;
        (lp.exp()? * &lp)?.sum(D::Minus1)?.neg()
    }

    /// Samples one action per state by inverse CDF with uniforms from `rng`.
    pub fn sample(&self, obs: &Tensor, rng: &mut Rng) -> Result<Vec<u32>> {
        let probs = self
            .log_probs(obs)?
            .exp()?
            .to_dtype(DType::F64)?
            .to_vec2::<f64>()?;
        Ok(probs
            .iter()
            .map(|row| {
                let u = rng.uniform_f64();
                let mut acc = 0.0;
                let mut last_positive = 0;
                for (j, &p) in row.iter().enumerate() {
                    if p > 0.0 {
                        last_positive = j;
                    }
                    acc += p;
                    if u < acc {
                        return j as u32;
                    }
                }
                // Rounding left the total slightly below u: take the last possible action.
                last_positive as u32
            })
            .collect())
    }

    /// Greedy (arg-max) actions for evaluation.
    pub fn greedy(&self, obs: &Tensor) -> Result<Vec<u32>> {
        self.logits(obs)?.argmax(D::Minus1)?.to_vec1::<u32>()
    }
}
