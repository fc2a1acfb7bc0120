//! The paper's identities as numerical checks on random MDPs.
//!
//! Each check computes the two sides independently: one from the paper's closed form, the other
//! from the definition (a scalar or vector function of θ differentiated by sixth-order finite
//! differences, or a literal matrix formula). [`identities`] are the claims that must hold;
//! [`conditions`] probe the assumptions (they are expected to show a gap, or an equality the
//! paper does not state).

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::LabError;
use super::exact::{FD_STEP, PolicyEval, Vector, Weighting, fd_gradient, fd_jacobian};
use super::mdp::TabularMdp;

/// One identity evaluated on one instance: `lhs` should equal `rhs` when `expect_equal`.
#[derive(Clone, Debug)]
pub struct IdentityCheck {
    /// Short identifier, e.g. `thm1_actor_o_gap`.
    pub id: &'static str,
    /// The statement checked, in the paper's notation.
    pub statement: &'static str,
    /// Whether the paper (or our analysis) claims equality.
    pub expect_equal: bool,
    /// Left-hand side, flattened.
    pub lhs: Vector,
    /// Right-hand side, flattened.
    pub rhs: Vector,
}

impl IdentityCheck {
    /// max |lhs - rhs|.
    pub fn abs_err(&self) -> f64 {
        (&self.lhs - &self.rhs).amax()
    }
    /// max(|lhs|∞, |rhs|∞), the size of the quantities compared.
    pub fn scale(&self) -> f64 {
        self.lhs.amax().max(self.rhs.amax())
    }
    /// abs_err / scale.
    pub fn rel_err(&self) -> f64 {
        self.abs_err() / self.scale().max(f64::MIN_POSITIVE)
    }
    /// Equality up to `tol`, relative to max(1, scale) so that O(1) quantities are held to an
    /// absolute `tol`.
    pub fn holds(&self, tol: f64) -> bool {
        self.abs_err() <= tol * self.scale().max(1.0)
    }
}

/// A random MDP with a random softmax actor θ, an arbitrary tabular critic q and a random
/// off-policy weighting (all from one seed).
#[derive(Clone, Debug)]
pub struct Instance {
    /// The MDP.
    pub mdp: TabularMdp,
    /// Actor logits, uniform in [-2, 2].
    pub theta: Vector,
    /// Critic, uniform in [-2, 2]: the identities hold for any critic, not only a fitted one.
    pub q: Vector,
    /// A full-support distribution over (s, a) unrelated to π_θ.
    pub d_offpolicy: Vector,
}

impl Instance {
    /// Draws an instance; sizes and γ are the caller's, everything else comes from `seed`.
    pub fn random(
        n_states: usize,
        n_actions: usize,
        gamma: f64,
        seed: u64,
    ) -> Result<Self, LabError> {
        let mdp = TabularMdp::random(n_states, n_actions, gamma, n_states, seed)?;
        Ok(Self::with_mdp(mdp, seed))
    }

    /// Draws θ, q and the off-policy weighting for a given MDP.
    pub fn with_mdp(mdp: TabularMdp, seed: u64) -> Self {
        let mut rng = Pcg64Mcg::seed_from_u64(seed ^ 0x005e_ed1a_b07a_61e5_u64);
        let n = mdp.n_sa();
        let theta = Vector::from_fn(n, |_, _| rng.random_range(-2.0..2.0));
        let q = Vector::from_fn(n, |_, _| rng.random_range(-2.0..2.0));
        let w = Vector::from_fn(n, |_, _| rng.random_range(0.1..1.0));
        let d_offpolicy = &w / w.sum();
        Self {
            mdp,
            theta,
            q,
            d_offpolicy,
        }
    }

    fn eval(&self) -> Result<PolicyEval<'_>, LabError> {
        PolicyEval::new(&self.mdp, &self.theta)
    }
}

fn flatten(m: &nalgebra::DMatrix<f64>) -> Vector {
    Vector::from_column_slice(m.as_slice())
}

/// Eq. (6) = eq. (7): (1-γ) μ0ᵀ Π q_θ = d_θᵀ r, and the state-level evaluation agrees with the
/// literal q_θ = Ψ_θ⁻¹ r and eq. (3) solved with the dense Ψ_θ.
pub fn duality_and_definitions(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let ev = inst.eval()?;
    let lhs = Vector::from_iterator(
        1 + 2 * ev.q.len(),
        std::iter::once(ev.j_primal())
            .chain(ev.q.iter().cloned())
            .chain(ev.d.iter().cloned()),
    );
    let (qd, dd) = (ev.q_dense()?, ev.d_dense()?);
    let rhs = Vector::from_iterator(
        lhs.len(),
        std::iter::once(ev.j())
            .chain(qd.iter().cloned())
            .chain(dd.iter().cloned()),
    );
    Ok(IdentityCheck {
        id: "eq6_7_duality",
        statement: "(1-γ)μ0ᵀΠq_θ = d_θᵀr; q_θ = Ψ⁻¹r; d_θ solves eq. (3)",
        expect_equal: true,
        lhs,
        rhs,
    })
}

/// Eq. (8): the closed-form policy gradient equals the gradient of J (finite differences).
pub fn policy_gradient(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let m = &inst.mdp;
    let lhs = inst.eval()?.grad_j();
    let rhs = fd_gradient(
        |t| Ok(PolicyEval::new(m, t)?.j_primal()),
        &inst.theta,
        FD_STEP,
    )?;
    Ok(IdentityCheck {
        id: "eq8_policy_gradient",
        statement: "Σ_s d_S(s) Σ_a q_θ(s,a)∇π(s,a) = ∇_θ J (FD)",
        expect_equal: true,
        lhs,
        rhs,
    })
}

/// Eq. (19): J(θ) - J_π(θ, φ) = d_θᵀ δ_{θ,φ}.
pub fn objective_gap(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let ev = inst.eval()?;
    Ok(IdentityCheck {
        id: "eq19_objective_gap",
        statement: "d_θᵀr - (1-γ)μ0ᵀΠ_θ q_φ = d_θᵀ δ_{θ,φ}",
        expect_equal: true,
        lhs: Vector::from_element(1, ev.j() - ev.actor_objective(&inst.q)),
        rhs: Vector::from_element(1, ev.d.dot(&ev.residual(&inst.q))),
    })
}

/// Theorem 1, first gap: ∇J - ∂_θ J_π = ∂_θ E_{d_θ}[δ_{θ,φ}] (total derivative, by FD).
pub fn theorem1_actor_o(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let (m, q) = (&inst.mdp, &inst.q);
    let ev = inst.eval()?;
    let lhs = ev.grad_j() - ev.grad_actor_o(q);
    let rhs = fd_gradient(
        |t| {
            let e = PolicyEval::new(m, t)?;
            Ok(e.d.dot(&e.residual(q)))
        },
        &inst.theta,
        FD_STEP,
    )?;
    Ok(IdentityCheck {
        id: "thm1_actor_o_gap",
        statement: "∇J - ∂_θJ_π = ∂_θ(d_θᵀ δ_{θ,φ})",
        expect_equal: true,
        lhs,
        rhs,
    })
}

/// Theorem 1, second gap: ∇J - ∇^φ J = ∂_θ E_{d_θ}[δ'_{θ,φ}] (δ' held fixed, by FD).
pub fn theorem1_actor_g(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let m = &inst.mdp;
    let ev = inst.eval()?;
    let lhs = ev.grad_j() - ev.grad_actor_g(&inst.q);
    let delta_fixed = ev.residual(&inst.q);
    let rhs = fd_gradient(
        |t| Ok(PolicyEval::new(m, t)?.d.dot(&delta_fixed)),
        &inst.theta,
        FD_STEP,
    )?;
    Ok(IdentityCheck {
        id: "thm1_actor_g_gap",
        statement: "∇J - ∇^φJ = ∂_θ(d_θᵀ δ'_{θ,φ})",
        expect_equal: true,
        lhs,
        rhs,
    })
}

/// Eq. (24): ∂_θ[J_π + (d'_θ)ᵀ δ_{θ,φ}] = ∇^φ J (d' held fixed, by FD).
pub fn actor_g_objective(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let (m, q) = (&inst.mdp, &inst.q);
    let ev = inst.eval()?;
    let d_fixed = ev.d.clone();
    let rhs = fd_gradient(
        |t| {
            let e = PolicyEval::new(m, t)?;
            Ok(e.actor_objective(q) + d_fixed.dot(&e.residual(q)))
        },
        &inst.theta,
        FD_STEP,
    )?;
    Ok(IdentityCheck {
        id: "eq24_actor_g_objective",
        statement: "∂_θ[J_π + (d'_θ)ᵀ δ_{θ,φ}] = Σ_s d_S(s) Σ_a q_φ(s,a)∇π(s,a) = ∇^φJ",
        expect_equal: true,
        lhs: ev.grad_actor_g(q),
        rhs,
    })
}

/// Theorem 2: Υ = H_θ Δ(Ξᵀ d_S) Ψ_θ⁻¹ equals the Jacobian of d_θ (FD), Υ_{i,sa} = ∂d(s,a)/∂θ_i.
pub fn theorem2_upsilon(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let m = &inst.mdp;
    let ups = inst.eval()?.upsilon();
    let jac = fd_jacobian(|t| Ok(PolicyEval::new(m, t)?.d), &inst.theta, FD_STEP)?;
    Ok(IdentityCheck {
        id: "thm2_upsilon",
        statement: "H_θ Δ(Ξᵀd_S) Ψ_θ⁻¹ = [∂d_θ(s,a)/∂θ_i] (FD)",
        expect_equal: true,
        lhs: flatten(&ups),
        rhs: flatten(&jac.transpose()),
    })
}

/// Eq. (29): ∇J - ∇^φ J = Υ δ_{θ,φ}.
pub fn gap_is_upsilon_delta(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let ev = inst.eval()?;
    Ok(IdentityCheck {
        id: "eq29_upsilon_delta",
        statement: "∇J - ∇^φJ = Υ δ_{θ,φ}",
        expect_equal: true,
        lhs: ev.grad_j() - ev.grad_actor_g(&inst.q),
        rhs: &ev.upsilon() * ev.residual(&inst.q),
    })
}

/// Eq. (39): ∂²_q J_q = Ψᵀ D_θ Ψ (Jacobian of eq. 13 in q, by FD).
pub fn critic_hessian(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let ev = inst.eval()?;
    let w = ev.d.clone();
    let jac = fd_jacobian(|q| Ok(ev.critic_grad_full(q, &w)), &inst.q, FD_STEP)?;
    Ok(IdentityCheck {
        id: "eq39_critic_hessian",
        statement: "∂²_q J_q = Ψ_θᵀ D_θ Ψ_θ",
        expect_equal: true,
        lhs: flatten(&ev.critic_hessian_full(&w)),
        rhs: flatten(&jac),
    })
}

/// Stackelberg gradient (eq. 38) with every ingredient taken from its definition: the mixed
/// derivative ∂_θ∂_q J_q by FD of eq. (13) with D = D_θ, the Hessian eq. (39) solved densely,
/// ∂_q J_π = (1-γ)Πᵀμ0 (eq. 58).
fn stackelberg_by_definition(inst: &Instance, semi: bool) -> Result<Vector, LabError> {
    let (m, q) = (&inst.mdp, &inst.q);
    let ev = inst.eval()?;
    let n = m.n_sa();
    let critic_grad = |t: &Vector| -> Result<Vector, LabError> {
        let e = PolicyEval::new(m, t)?;
        Ok(if semi {
            e.critic_grad_semi(q, &e.d)
        } else {
            e.critic_grad_full(q, &e.d)
        })
    };
    // mixed[(sa, i)] = ∂(∂_q J_q)_{sa} / ∂θ_i.
    let mixed = fd_jacobian(critic_grad, &inst.theta, FD_STEP)?;
    let (hess, dq_jpi) = if semi {
        // Eq. (40) and eq. (42).
        (nalgebra::DMatrix::from_diagonal(&ev.d), ev.d.clone())
    } else {
        (ev.critic_hessian_full(&ev.d), ev.actor_objective_grad_q())
    };
    let u = hess
        .lu()
        .solve(&dq_jpi)
        .ok_or_else(|| LabError::Singular("critic Hessian".into()))?;
    debug_assert_eq!(u.len(), n);
    Ok(ev.grad_actor_o(q) - mixed.transpose() * u)
}

/// Theorem 3: under Assumption 1, g_{S,θ} (eq. 38) = ∇J, for any critic q.
pub fn theorem3_stackelberg(inst: &Instance) -> Result<IdentityCheck, LabError> {
    Ok(IdentityCheck {
        id: "thm3_stackelberg",
        statement: "∂_θJ_π - (∂_θ∂_qJ_q)ᵀ(∂²_qJ_q)⁻¹∂_qJ_π = ∇J (D = D_θ, mixed term by FD)",
        expect_equal: true,
        lhs: stackelberg_by_definition(inst, false)?,
        rhs: inst.eval()?.grad_j(),
    })
}

/// Eq. (46): the semi-gradient Stackelberg gradient (eq. 43) also equals ∇J.
pub fn semi_stackelberg(inst: &Instance) -> Result<IdentityCheck, LabError> {
    Ok(IdentityCheck {
        id: "eq46_semi_stackelberg",
        statement: "∂_θJ_π - (∂_θ∂^semi_qJ_q)ᵀ D_θ⁻¹ d_θ = ∇J (mixed term by FD)",
        expect_equal: true,
        lhs: stackelberg_by_definition(inst, true)?,
        rhs: inst.eval()?.grad_j(),
    })
}

/// The analytic Stackelberg gradients of [`PolicyEval`] (full and semi, η = 0) agree with ∇J.
pub fn stackelberg_closed_form(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let ev = inst.eval()?;
    let g = ev.grad_j();
    let full = ev.stackelberg_grad(&inst.q, &Weighting::OnPolicy, 0.0)?;
    let semi = ev.stackelberg_grad_semi(&inst.q, &Weighting::OnPolicy, 0.0)?;
    let n = g.len();
    Ok(IdentityCheck {
        id: "thm3_eq46_closed_form",
        statement: "g_{S,θ} and g^semi_{S,θ} via product rule + Theorem 2 = ∇J",
        expect_equal: true,
        lhs: Vector::from_iterator(2 * n, full.iter().chain(semi.iter()).cloned()),
        rhs: Vector::from_iterator(2 * n, g.iter().chain(g.iter()).cloned()),
    })
}

/// Eq. (30): ∇_θ J_δ = ∂_θ(d_θᵀ δ') = ∇J - ∇^φJ (the residual objective, FD in θ with the
/// residual reward δ' held fixed).
pub fn residual_objective(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let m = &inst.mdp;
    let ev = inst.eval()?;
    let delta_fixed = ev.residual(&inst.q);
    let lhs = fd_gradient(
        |t| Ok(PolicyEval::new(m, t)?.j_delta(&delta_fixed)),
        &inst.theta,
        FD_STEP,
    )?;
    Ok(IdentityCheck {
        id: "eq30_residual_objective",
        statement: "∇_θ[(1-γ)μ0ᵀΠ_θ w_θ] = ∇J - ∇^φJ",
        expect_equal: true,
        lhs,
        rhs: ev.grad_j() - ev.grad_actor_g(&inst.q),
    })
}

/// Eqs. (31)-(33): the exact res-critic w_θ = Ψ⁻¹δ' zeroes the res-critic loss (31) and both its
/// gradients, q + w_θ = q_θ, and the Res-AC actor (eq. 33) with it is ∇J.
pub fn res_ac_exact(inst: &Instance) -> Result<IdentityCheck, LabError> {
    let ev = inst.eval()?;
    let q = &inst.q;
    let delta = ev.residual(q);
    let w = ev.res_critic_exact(&delta);
    let (g_full, g_semi) = (
        ev.res_critic_grad_full(&w, &delta, &ev.d),
        ev.res_critic_grad_semi(&w, &delta, &ev.d),
    );
    let actor = ev.res_ac_actor(q, &w);
    let n = q.len();
    let lhs = Vector::from_iterator(
        4 * n + 1,
        actor
            .iter()
            .chain((q + &w).iter())
            .chain(g_full.iter())
            .chain(g_semi.iter())
            .cloned()
            .chain(std::iter::once(ev.res_critic_objective(&w, &delta, &ev.d))),
    );
    let grad_j = ev.grad_j();
    let rhs = Vector::from_iterator(
        4 * n + 1,
        grad_j
            .iter()
            .chain(ev.q.iter())
            .cloned()
            .chain(std::iter::repeat_n(0.0, 2 * n + 1)),
    );
    Ok(IdentityCheck {
        id: "eq31_33_res_ac",
        statement: "w_θ=Ψ⁻¹δ': ∇^φJ + ∇^ψJ_δ = ∇J, q+w_θ = q_θ, J_w = ∂J_w = 0",
        expect_equal: true,
        lhs,
        rhs,
    })
}

/// Every identity the paper claims (plus the definitions they rest on).
pub fn identities(inst: &Instance) -> Result<Vec<IdentityCheck>, LabError> {
    Ok(vec![
        duality_and_definitions(inst)?,
        policy_gradient(inst)?,
        objective_gap(inst)?,
        theorem1_actor_o(inst)?,
        theorem1_actor_g(inst)?,
        actor_g_objective(inst)?,
        theorem2_upsilon(inst)?,
        gap_is_upsilon_delta(inst)?,
        critic_hessian(inst)?,
        theorem3_stackelberg(inst)?,
        semi_stackelberg(inst)?,
        stackelberg_closed_form(inst)?,
        residual_objective(inst)?,
        res_ac_exact(inst)?,
    ])
}

/// Probes of the conditions behind Theorem 3 and eq. (46):
/// * off-policy weighting (Assumption 1 violated): g_S ≠ ∇J, and g^semi_S = ∇^φJ for any fixed D
///   (the semi-Hessian D cancels D in the mixed term);
/// * D_θ held fixed under ∂_θ (what a sample estimate computes, §5.3): g_S = g^semi_S = ∇^φJ,
///   the Actor_g gradient, not ∇J;
/// * the η-regularised semi-gradient form of §5.3 (η = 0.5): g ≠ ∇J;
/// * even with the exact critic q = q_θ, the Actor_o gradient (PG_o) ≠ ∇J.
pub fn conditions(inst: &Instance) -> Result<Vec<IdentityCheck>, LabError> {
    let ev = inst.eval()?;
    let q = &inst.q;
    let grad_j = ev.grad_j();
    let off = Weighting::Fixed(inst.d_offpolicy.clone());
    Ok(vec![
        IdentityCheck {
            id: "thm3_offpolicy_fails",
            statement: "g_S with a fixed off-policy D vs ∇J",
            expect_equal: false,
            lhs: ev.stackelberg_grad(q, &off, 0.0)?,
            rhs: grad_j.clone(),
        },
        IdentityCheck {
            id: "eq46_fixed_d_is_actor_g",
            statement: "g^semi_S with any fixed D (here off-policy) = ∇^φJ",
            expect_equal: true,
            lhs: ev.stackelberg_grad_semi(q, &off, 0.0)?,
            rhs: ev.grad_actor_g(q),
        },
        IdentityCheck {
            id: "thm3_detached_is_actor_g",
            statement: "g_S with D_θ held fixed under ∂_θ = ∇^φJ",
            expect_equal: true,
            lhs: ev.stackelberg_grad(q, &Weighting::Detached, 0.0)?,
            rhs: ev.grad_actor_g(q),
        },
        IdentityCheck {
            id: "eq46_detached_is_actor_g",
            statement: "g^semi_S with D_θ held fixed under ∂_θ = ∇^φJ",
            expect_equal: true,
            lhs: ev.stackelberg_grad_semi(q, &Weighting::Detached, 0.0)?,
            rhs: ev.grad_actor_g(q),
        },
        IdentityCheck {
            id: "eq46_detached_misses_gap",
            statement: "g^semi_S with D_θ held fixed vs ∇J",
            expect_equal: false,
            lhs: ev.stackelberg_grad_semi(q, &Weighting::Detached, 0.0)?,
            rhs: grad_j.clone(),
        },
        IdentityCheck {
            id: "eq46_eta_0.5_biased",
            statement: "g^semi_S with (D_θ + 0.5 I)⁻¹ vs ∇J",
            expect_equal: false,
            lhs: ev.stackelberg_grad_semi(q, &Weighting::OnPolicy, 0.5)?,
            rhs: grad_j.clone(),
        },
        IdentityCheck {
            id: "pg_o_ne_pg",
            statement: "∂_θJ_π at q = q_θ (PG_o) vs ∇J (PG_g)",
            expect_equal: false,
            lhs: ev.grad_actor_o(&ev.q),
            rhs: grad_j,
        },
    ])
}

/// The identities that need no finite differences (cheap enough for FourRoom's 412 parameters).
pub fn closed_form_identities(inst: &Instance) -> Result<Vec<IdentityCheck>, LabError> {
    Ok(vec![
        duality_and_definitions(inst)?,
        objective_gap(inst)?,
        gap_is_upsilon_delta(inst)?,
        stackelberg_closed_form(inst)?,
        res_ac_exact(inst)?,
    ])
}
