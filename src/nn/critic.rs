//! Critics: twin soft Q-functions with Polyak-averaged targets (SAC, Res-SAC's res-critic,
//! Stack-SAC), a state-value critic (AC / STAC), and SAC's automatic entropy tuning.

use candle_core::{D, DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;

use super::activation::Activation;
use super::mlp::{Mlp, MlpConfig, copy_vars};
use crate::rng::Rng;

/// Polyak averaging `target <- tau * online + (1 - tau) * target`, variable by variable
/// (SAC's target smoothing coefficient, Table 3 of paper 001: tau = 0.005).
pub fn polyak_update(target: &[Var], online: &[Var], tau: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&tau) {
        candle_core::bail!("polyak_update: tau must be in [0, 1], got {tau}");
    }
    if target.len() != online.len() {
        candle_core::bail!(
            "polyak_update: {} target vs {} online vars",
            target.len(),
            online.len()
        );
    }
    for (t, o) in target.iter().zip(online) {
        if t.shape() != o.shape() {
            candle_core::bail!("polyak_update: shape {:?} vs {:?}", t.shape(), o.shape());
        }
        let (tt, ot) = (t.as_tensor(), o.as_tensor());
        if tt.device().is_cpu()
            && matches!(tt.dtype(), DType::F32 | DType::F64)
            && ot.dtype() == tt.dtype()
            && tt.is_contiguous()
            && ot.is_contiguous()
        {
            // One pass in place instead of two scalings, a sum and a copy.
            tt.inplace_op2(ot, &Polyak { tau })?;
        } else {
            // Detached so the update never records a graph, whatever the detach mode.
            let new = ((tt.detach() * (1.0 - tau))? + (ot.detach() * tau)?)?;
            t.set(&new)?;
        }
    }
    Ok(())
}

/// `target ← target · (1 − τ) + online · τ` in place, with the rounding of the tensor
/// expression it replaces (each product in the storage's dtype, then the sum).
struct Polyak {
    tau: f64,
}

impl candle_core::InplaceOp2 for Polyak {
    fn name(&self) -> &'static str {
        "stackrl-polyak"
    }

    fn cpu_fwd(
        &self,
        s1: &mut candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<()> {
        use candle_core::CpuStorage as S;
        let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("polyak: contiguous operands expected");
        };
        if a1 - a0 != b1 - b0 {
            candle_core::bail!("polyak: {} vs {} elements", a1 - a0, b1 - b0);
        }
        match (s1, s2) {
            (S::F32(t), S::F32(o)) => {
                let (keep, mix) = ((1.0 - self.tau) as f32, self.tau as f32);
                for (t, &o) in t[a0..a1].iter_mut().zip(&o[b0..b1]) {
                    *t = *t * keep + o * mix;
                }
            }
            (S::F64(t), S::F64(o)) => {
                let (keep, mix) = (1.0 - self.tau, self.tau);
                for (t, &o) in t[a0..a1].iter_mut().zip(&o[b0..b1]) {
                    *t = *t * keep + o * mix;
                }
            }
            _ => candle_core::bail!("polyak: f32 or f64 operands of one dtype"),
        }
        Ok(())
    }
}

/// SAC's default target entropy `-dim(A)` (Table 3 of paper 001).
pub fn target_entropy(act_dim: usize) -> f64 {
    -(act_dim as f64)
}

/// A state-action value network `Q(s, a) = MLP([s, a])`.
#[derive(Clone, Debug)]
pub struct QNetwork {
    net: Mlp,
    obs_dim: usize,
    act_dim: usize,
}

impl QNetwork {
    /// `[obs_dim + act_dim] -> hidden -> 1`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        obs_dim: usize,
        act_dim: usize,
        hidden: &[usize],
        activation: Activation,
        varmap: &VarMap,
        prefix: &str,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        if obs_dim == 0 || act_dim == 0 {
            candle_core::bail!("QNetwork: zero obs_dim ({obs_dim}) or act_dim ({act_dim})");
        }
        let cfg = MlpConfig::new(obs_dim + act_dim, hidden, 1, activation);
        Ok(Self {
            net: Mlp::new(&cfg, varmap, prefix, dtype, device, rng)?,
            obs_dim,
            act_dim,
        })
    }

    /// `Q(s, a)`, `[batch]`, for `obs [batch, obs_dim]`, `act [batch, act_dim]`.
    pub fn forward(&self, obs: &Tensor, act: &Tensor) -> Result<Tensor> {
        let (b, o) = obs.dims2()?;
        let (b2, a) = act.dims2()?;
        if b != b2 || o != self.obs_dim || a != self.act_dim {
            candle_core::bail!(
                "QNetwork: obs {:?} / act {:?}, expected [b, {}] / [b, {}]",
                obs.dims(),
                act.dims(),
                self.obs_dim,
                self.act_dim
            );
        }
        let x = Tensor::cat(&[obs, act], 1)?;
        self.net.forward(&x)?.squeeze(D::Minus1)
    }

    /// Trainable variables.
    pub fn vars(&self) -> &[Var] {
        self.net.vars()
    }

    /// The network on `[s, a]` (for exact curvature products, [`super::MlpCurvature`]).
    pub fn mlp(&self) -> &Mlp {
        &self.net
    }

    /// The network's input `[s, a]`, `[batch, obs_dim + act_dim]`.
    pub fn input(&self, obs: &Tensor, act: &Tensor) -> Result<Tensor> {
        Tensor::cat(&[obs, act], 1)
    }
}

/// Twin Q critics `Q_1, Q_2` (clipped double-Q) with Polyak-averaged target copies.
///
/// The online networks live in [`TwinQ::varmap`] (give its variables to the optimiser), the
/// targets in a separate [`TwinQ::target_varmap`] so that they are never optimised.
#[derive(Clone)]
pub struct TwinQ {
    online: [QNetwork; 2],
    target: [QNetwork; 2],
    varmap: VarMap,
    target_varmap: VarMap,
}

// `VarMap` is not `Debug`: print the networks only.
impl std::fmt::Debug for TwinQ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwinQ")
            .field("online", &self.online)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for VCritic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VCritic")
            .field("online", &self.online)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl TwinQ {
    /// Builds `Q_1`, `Q_2` (`{prefix}.q1`, `{prefix}.q2`) and targets initialised as copies.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        obs_dim: usize,
        act_dim: usize,
        hidden: &[usize],
        activation: Activation,
        prefix: &str,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        let varmap = VarMap::new();
        let target_varmap = VarMap::new();
        let build = |vm: &VarMap, name: &str, rng: &mut Rng| {
            QNetwork::new(
                obs_dim,
                act_dim,
                hidden,
                activation,
                vm,
                &format!("{prefix}.{name}"),
                dtype,
                device,
                rng,
            )
        };
        let online = [build(&varmap, "q1", rng)?, build(&varmap, "q2", rng)?];
        // Targets are overwritten by the copy below; a throwaway RNG keeps `rng`'s stream
        // independent of whether targets exist.
        let mut scratch = Rng::seed_from_u64(0);
        let target = [
            build(&target_varmap, "q1", &mut scratch)?,
            build(&target_varmap, "q2", &mut scratch)?,
        ];
        let twin = Self {
            online,
            target,
            varmap,
            target_varmap,
        };
        twin.hard_update()?;
        Ok(twin)
    }

    /// `(Q_1(s, a), Q_2(s, a))`, each `[batch]`.
    pub fn forward(&self, obs: &Tensor, act: &Tensor) -> Result<(Tensor, Tensor)> {
        // The two heads on the two threads when there are two (see `kernels::join`).
        let (q1, q2) = super::kernels::join(
            || self.online[0].forward(obs, act),
            || self.online[1].forward(obs, act),
        );
        Ok((q1?, q2?))
    }

    /// `min(Q_1, Q_2)`, `[batch]`.
    pub fn min_q(&self, obs: &Tensor, act: &Tensor) -> Result<Tensor> {
        let (q1, q2) = self.forward(obs, act)?;
        q1.minimum(&q2)
    }

    /// Target values `(Q'_1(s, a), Q'_2(s, a))`. Gradients flow to `obs`/`act` (e.g. to the
    /// actor through a sampled next action) but the target parameters are never optimised.
    pub fn target_forward(&self, obs: &Tensor, act: &Tensor) -> Result<(Tensor, Tensor)> {
        // The two heads on the two threads when there are two (see `kernels::join`).
        let (q1, q2) = super::kernels::join(
            || self.target[0].forward(obs, act),
            || self.target[1].forward(obs, act),
        );
        Ok((q1?, q2?))
    }

    /// `min(Q'_1, Q'_2)`, `[batch]`.
    pub fn target_min_q(&self, obs: &Tensor, act: &Tensor) -> Result<Tensor> {
        let (q1, q2) = self.target_forward(obs, act)?;
        q1.minimum(&q2)
    }

    /// The two online networks.
    pub fn online(&self) -> &[QNetwork; 2] {
        &self.online
    }

    /// The two target networks.
    pub fn targets(&self) -> &[QNetwork; 2] {
        &self.target
    }

    /// Online variables `[Q_1 vars..., Q_2 vars...]` (for the optimiser).
    pub fn vars(&self) -> Vec<Var> {
        self.online.iter().flat_map(|q| q.vars().to_vec()).collect()
    }

    /// Target variables in the same order as [`TwinQ::vars`].
    pub fn target_vars(&self) -> Vec<Var> {
        self.target.iter().flat_map(|q| q.vars().to_vec()).collect()
    }

    /// Online variable store (for checkpoints).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Target variable store (for checkpoints).
    pub fn target_varmap(&self) -> &VarMap {
        &self.target_varmap
    }

    /// Polyak update of both targets: `target <- tau * online + (1 - tau) * target`.
    pub fn soft_update(&self, tau: f64) -> Result<()> {
        polyak_update(&self.target_vars(), &self.vars(), tau)
    }

    /// Copies the online weights into the targets.
    pub fn hard_update(&self) -> Result<()> {
        copy_vars(&self.target_vars(), &self.vars())
    }
}

/// State-value critic `V(s)` with an optional Polyak-averaged target copy.
#[derive(Clone)]
pub struct VCritic {
    online: Mlp,
    target: Option<Mlp>,
    varmap: VarMap,
    target_varmap: VarMap,
}

impl VCritic {
    /// `obs_dim -> hidden -> 1`, registered as `{prefix}.*`; `with_target` adds a target copy.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        obs_dim: usize,
        hidden: &[usize],
        activation: Activation,
        with_target: bool,
        prefix: &str,
        dtype: DType,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        let cfg = MlpConfig::new(obs_dim, hidden, 1, activation);
        let varmap = VarMap::new();
        let target_varmap = VarMap::new();
        let online = Mlp::new(&cfg, &varmap, prefix, dtype, device, rng)?;
        let target = if with_target {
            let mut scratch = Rng::seed_from_u64(0);
            let t = Mlp::new(&cfg, &target_varmap, prefix, dtype, device, &mut scratch)?;
            copy_vars(t.vars(), online.vars())?;
            Some(t)
        } else {
            None
        };
        Ok(Self {
            online,
            target,
            varmap,
            target_varmap,
        })
    }

    /// `V(s)`, `[batch]`.
    pub fn forward(&self, obs: &Tensor) -> Result<Tensor> {
        self.online.forward(obs)?.squeeze(D::Minus1)
    }

    /// Target `V'(s)`, `[batch]`; errors if built without a target.
    pub fn target_forward(&self, obs: &Tensor) -> Result<Tensor> {
        match &self.target {
            Some(t) => t.forward(obs)?.squeeze(D::Minus1),
            None => candle_core::bail!("VCritic: built without a target network"),
        }
    }

    /// Online variables.
    pub fn vars(&self) -> &[Var] {
        self.online.vars()
    }

    /// The online network (for exact curvature products, [`super::MlpCurvature`]).
    pub fn mlp(&self) -> &Mlp {
        &self.online
    }

    /// Online variable store.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Target variable store (empty without a target).
    pub fn target_varmap(&self) -> &VarMap {
        &self.target_varmap
    }

    /// Polyak update of the target; errors if built without one.
    pub fn soft_update(&self, tau: f64) -> Result<()> {
        match &self.target {
            Some(t) => polyak_update(t.vars(), self.online.vars(), tau),
            None => candle_core::bail!("VCritic: built without a target network"),
        }
    }
}

/// Automatic entropy tuning: learns `ln alpha` so that the policy entropy tracks
/// `target_entropy` (Haarnoja et al. 2018b; paper 001 Table 3: target `-dim(A)`).
#[derive(Clone, Debug)]
pub struct EntropyTuner {
    log_alpha: Var,
    target_entropy: f64,
}

impl EntropyTuner {
    /// `ln alpha` initialised to `ln(init_alpha)` (SB3 / CleanRL: `init_alpha = 1`), target
    /// entropy `-act_dim`.
    pub fn new(act_dim: usize, init_alpha: f64, dtype: DType, device: &Device) -> Result<Self> {
        Self::with_target(target_entropy(act_dim), init_alpha, dtype, device)
    }

    /// As [`EntropyTuner::new`] with an explicit target entropy.
    pub fn with_target(
        target_entropy: f64,
        init_alpha: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if !(init_alpha.is_finite() && init_alpha > 0.0 && target_entropy.is_finite()) {
            candle_core::bail!(
                "EntropyTuner: need init_alpha > 0 and finite target, got {init_alpha}, \
                 {target_entropy}"
            );
        }
        let log_alpha = Var::from_tensor(
            &Tensor::new(&[init_alpha.ln()], &Device::Cpu)?
                .to_dtype(dtype)?
                .to_device(device)?,
        )?;
        Ok(Self {
            log_alpha,
            target_entropy,
        })
    }

    /// `alpha = exp(ln alpha)` as a number.
    pub fn alpha(&self) -> Result<f64> {
        self.log_alpha
            .as_tensor()
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()
            .map(|v| v[0].exp())
    }

    /// `alpha` as a detached rank-0 tensor (to weight `ln pi` in the actor / critic losses
    /// without differentiating into `ln alpha`; combine with `broadcast_mul`).
    pub fn alpha_tensor(&self) -> Result<Tensor> {
        self.log_alpha.as_tensor().detach().exp()?.squeeze(0)
    }

    /// The target entropy.
    pub fn target_entropy(&self) -> f64 {
        self.target_entropy
    }

    /// The trainable `ln alpha` (shape `[1]`).
    pub fn vars(&self) -> Vec<Var> {
        vec![self.log_alpha.clone()]
    }

    /// Temperature loss `-mean(ln alpha * (ln pi + target_entropy))` with `ln pi` detached
    /// (softlearning / SB3 form: its gradient `-mean(ln pi + target)` lowers alpha when the
    /// entropy `-ln pi` exceeds the target).
    pub fn loss(&self, log_prob: &Tensor) -> Result<Tensor> {
        let shifted = (log_prob.detach() + self.target_entropy)?;
        let per = shifted.broadcast_mul(self.log_alpha.as_tensor())?;
        per.mean_all()?.neg()
    }
}
