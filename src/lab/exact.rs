//! Exact policy-gradient quantities of Wen et al. (2021) for a tabular softmax actor
//! (logits θ ∈ R^{|S||A|}) and a tabular critic q ∈ R^{|S||A|}, in f64.
//!
//! Equation numbers refer to the paper. Notation: Π (eq. 1) is the |S|×|S||A| block matrix of
//! π_θ, Ξ (eq. 4) the marginalisation matrix, H_θ (eq. 2) the softmax Jacobian with
//! (H_θ)_{i,sa} = ∂π(s,a)/∂θ_i, Ψ_θ = I - γPΠ_θ (after eq. 11), D = Δ(d) a critic weighting.
//!
//! Only |S|×|S| systems are factorised: with M = I - γ P_π and P_π = ΠP,
//! Ψ⁻¹ = I + γ P M⁻¹ Π (checked against the dense |S||A|×|S||A| inverse in the tests),
//! which keeps FourRoom (|S||A| = 412) cheap enough for thousands of iterations.

use nalgebra::{DMatrix, DVector, Dyn, LU};

use super::LabError;
use super::mdp::TabularMdp;

/// Column vector of f64.
pub type Vector = DVector<f64>;
/// Dense f64 matrix.
pub type Matrix = DMatrix<f64>;

fn check_len(what: &'static str, v: &Vector, expected: usize) -> Result<(), LabError> {
    if v.len() != expected {
        return Err(LabError::Dimension {
            what,
            expected,
            got: v.len(),
        });
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(LabError::Config(format!(
            "{what} contains a non-finite entry"
        )));
    }
    Ok(())
}

/// π_θ: per-state softmax of the logits θ (§2), as a vector indexed by s·|A|+a.
pub fn softmax_policy(n_actions: usize, theta: &Vector) -> Vector {
    let mut pi = theta.clone();
    for row in pi.as_mut_slice().chunks_mut(n_actions) {
        // Subtracting the row maximum avoids overflow without changing the softmax.
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut z = 0.0;
        for x in row.iter_mut() {
            *x = (*x - m).exp();
            z += *x;
        }
        for x in row.iter_mut() {
            *x /= z;
        }
    }
    pi
}

/// Π (eq. 1): the |S|×|S||A| block-diagonal matrix with π_sᵀ on the diagonal.
pub fn pi_matrix(n_states: usize, n_actions: usize, pi: &Vector) -> Matrix {
    let mut m = Matrix::zeros(n_states, n_states * n_actions);
    for s in 0..n_states {
        for a in 0..n_actions {
            m[(s, s * n_actions + a)] = pi[s * n_actions + a];
        }
    }
    m
}

/// Ξ (eq. 4): the |S|×|S||A| marginalisation matrix.
pub fn xi_matrix(n_states: usize, n_actions: usize) -> Matrix {
    pi_matrix(
        n_states,
        n_actions,
        &Vector::from_element(n_states * n_actions, 1.0),
    )
}

/// H_θ (eq. 2) for the tabular softmax: block diagonal, ∂π(s,a)/∂θ(s,b) = π(s,a)(1[a=b] - π(s,b)).
/// Rows index θ, columns index (s, a).
pub fn softmax_jacobian(n_actions: usize, pi: &Vector) -> Matrix {
    let n = pi.len();
    let mut h = Matrix::zeros(n, n);
    for s in 0..n / n_actions {
        for b in 0..n_actions {
            for a in 0..n_actions {
                let (i, j) = (s * n_actions + b, s * n_actions + a);
                let kron = if a == b { 1.0 } else { 0.0 };
                h[(i, j)] = pi[j] * (kron - pi[i]);
            }
        }
    }
    h
}

/// H_θ x without forming H: (H x)(s,b) = π(s,b)(x(s,b) - Σ_a π(s,a) x(s,a)).
pub fn h_apply(n_actions: usize, pi: &Vector, x: &Vector) -> Vector {
    let mut g = Vector::zeros(pi.len());
    for s in 0..pi.len() / n_actions {
        let r = s * n_actions..(s + 1) * n_actions;
        let mean: f64 = r.clone().map(|j| pi[j] * x[j]).sum();
        for j in r {
            g[j] = pi[j] * (x[j] - mean);
        }
    }
    g
}

/// H_θ Δ(Ξᵀ w) x: the softmax chain rule for Σ_s w(s) Σ_a π(s,a) x(s,a) with w ∈ R^{|S|}.
fn h_apply_state_weighted(n_actions: usize, pi: &Vector, w: &Vector, x: &Vector) -> Vector {
    let mut g = h_apply(n_actions, pi, x);
    for (j, gj) in g.iter_mut().enumerate() {
        *gj *= w[j / n_actions];
    }
    g
}

/// How the critic loss (eq. 11) weights the state-action pairs.
#[derive(Clone, Debug)]
pub enum Weighting {
    /// D = D_θ, and θ-derivatives go through D_θ (Assumption 1 as the theory uses it).
    OnPolicy,
    /// D = D_θ in value, but held fixed under ∂θ: what a sample estimate computes (§5.3).
    Detached,
    /// A fixed distribution d, e.g. a replay buffer (off-policy).
    Fixed(Vector),
}

/// All exact quantities of one policy π_θ on one MDP.
#[derive(Clone, Debug)]
pub struct PolicyEval<'a> {
    mdp: &'a TabularMdp,
    /// π_θ ∈ R^{|S||A|}.
    pub pi: Vector,
    /// Discounted stationary state distribution d_{S,θ} = Ξ d_θ ∈ R^{|S|}.
    pub d_s: Vector,
    /// Discounted stationary state-action distribution d_θ (eq. 3).
    pub d: Vector,
    /// State values v_θ = Π_θ q_θ.
    pub v: Vector,
    /// q_θ = Ψ_θ⁻¹ r.
    pub q: Vector,
    lu: LU<f64, Dyn, Dyn>,
    /// The LU factors again, unpacked, to solve with Mᵀ without a second factorisation.
    l: Matrix,
    u: Matrix,
}

impl<'a> PolicyEval<'a> {
    /// Evaluates the softmax policy with logits θ exactly.
    pub fn new(mdp: &'a TabularMdp, theta: &Vector) -> Result<Self, LabError> {
        check_len("θ", theta, mdp.n_sa())?;
        let pi = softmax_policy(mdp.n_actions(), theta);
        Self::from_policy(mdp, pi)
    }

    /// Evaluates an explicit policy vector π (rows must be distributions).
    pub fn from_policy(mdp: &'a TabularMdp, pi: Vector) -> Result<Self, LabError> {
        let (ns, na, g) = (mdp.n_states(), mdp.n_actions(), mdp.gamma());
        check_len("π", &pi, mdp.n_sa())?;
        for (s, row) in pi.as_slice().chunks(na).enumerate() {
            if row.iter().any(|&x| x < 0.0) || (row.iter().sum::<f64>() - 1.0).abs() > 1e-9 {
                return Err(LabError::Config(format!(
                    "π(s = {s}, ·) is not a probability distribution"
                )));
            }
        }
        // M = I - γ P_π with P_π = Π P: the state-level system behind q_θ and d_θ.
        let p = mdp.p();
        let mut m = Matrix::identity(ns, ns);
        for s in 0..ns {
            for a in 0..na {
                let w = g * pi[s * na + a];
                if w != 0.0 {
                    for t in 0..ns {
                        m[(s, t)] -= w * p[(s * na + a, t)];
                    }
                }
            }
        }
        let lu = m.lu();
        let singular = || LabError::Singular("I - γ P_π (is γ < 1 and is π a policy?)".into());
        if !lu.is_invertible() {
            return Err(singular());
        }
        let (l, u) = (lu.l(), lu.u());
        let r_pi = pi_expect(na, &pi, mdp.r());
        let v = lu.solve(&r_pi).ok_or_else(singular)?;
        let q = mdp.r() + p * &v * g;
        let mut ev = Self {
            mdp,
            pi,
            d_s: Vector::zeros(ns),
            d: Vector::zeros(mdp.n_sa()),
            v,
            q,
            lu,
            l,
            u,
        };
        // Summing eq. (3) over actions gives d_S = (1-γ) μ0 + γ Pᵀ d = (1-γ) μ0 + γ P_πᵀ d_S,
        // and eq. (3) itself then reads d = Πᵀ d_S.
        ev.d_s = ev.solve_m_t(&(mdp.mu0() * (1.0 - g)))?;
        ev.d = pi_t(na, &ev.pi, &ev.d_s);
        Ok(ev)
    }

    /// Solves Mᵀ x = b with the factors of P M = L U: Mᵀ = Uᵀ Lᵀ P, so x = P⁻¹ L⁻ᵀ U⁻ᵀ b.
    fn solve_m_t(&self, b: &Vector) -> Result<Vector, LabError> {
        let singular = || LabError::Singular("(I - γ P_π)ᵀ".into());
        let y = self.u.tr_solve_upper_triangular(b).ok_or_else(singular)?;
        let mut w = self.l.tr_solve_lower_triangular(&y).ok_or_else(singular)?;
        self.lu.p().inv_permute_rows(&mut w);
        Ok(w)
    }

    /// The MDP this evaluation belongs to.
    pub fn mdp(&self) -> &TabularMdp {
        self.mdp
    }

    fn na(&self) -> usize {
        self.mdp.n_actions()
    }

    fn gamma(&self) -> f64 {
        self.mdp.gamma()
    }

    /// Π x ∈ R^{|S|}: the policy's expectation of x(s, ·) in each state.
    pub fn pi_apply(&self, x: &Vector) -> Vector {
        pi_expect(self.na(), &self.pi, x)
    }

    /// Πᵀ y ∈ R^{|S||A|}: (s, a) ↦ π(s,a) y(s).
    pub fn pi_t_apply(&self, y: &Vector) -> Vector {
        pi_t(self.na(), &self.pi, y)
    }

    /// Ψ_θ x = x - γ P Π x.
    pub fn psi_apply(&self, x: &Vector) -> Vector {
        x - self.mdp.p() * self.pi_apply(x) * self.gamma()
    }

    /// Ψ_θᵀ y = y - γ Πᵀ Pᵀ y.
    pub fn psi_t_apply(&self, y: &Vector) -> Vector {
        y - self.pi_t_apply(&self.mdp.p().tr_mul(y)) * self.gamma()
    }

    /// Ψ_θ⁻¹ x = x + γ P M⁻¹ Π x (Woodbury with M = I - γ ΠP).
    pub fn psi_inv_apply(&self, x: &Vector) -> Vector {
        let z = self
            .lu
            .solve(&self.pi_apply(x))
            .expect("M is invertible: checked in new");
        x + self.mdp.p() * z * self.gamma()
    }

    /// Ψ_θ⁻ᵀ y = y + γ Πᵀ M⁻ᵀ Pᵀ y.
    pub fn psi_inv_t_apply(&self, y: &Vector) -> Vector {
        let z = self
            .solve_m_t(&self.mdp.p().tr_mul(y))
            .expect("Mᵀ is invertible: checked in new");
        y + self.pi_t_apply(&z) * self.gamma()
    }

    /// Dense Ψ_θ = I - γ P Π_θ ∈ R^{|S||A|×|S||A|} (for small MDPs and cross-checks).
    pub fn psi_matrix(&self) -> Matrix {
        let m = self.mdp;
        let n = m.n_sa();
        let pi_m = pi_matrix(m.n_states(), m.n_actions(), &self.pi);
        Matrix::identity(n, n) - m.p() * pi_m * self.gamma()
    }

    /// q_θ = Ψ_θ⁻¹ r solved literally with the dense |S||A|×|S||A| Ψ_θ (cross-check of `q`).
    pub fn q_dense(&self) -> Result<Vector, LabError> {
        self.psi_matrix()
            .lu()
            .solve(self.mdp.r())
            .ok_or_else(|| LabError::Singular("Ψ_θ".into()))
    }

    /// d_θ from eq. (3) solved literally: Ψ_θᵀ d = (1-γ) Πᵀ μ0 (cross-check of `d`).
    pub fn d_dense(&self) -> Result<Vector, LabError> {
        let b = self.pi_t_apply(self.mdp.mu0()) * (1.0 - self.gamma());
        self.psi_matrix()
            .transpose()
            .lu()
            .solve(&b)
            .ok_or_else(|| LabError::Singular("Ψ_θᵀ".into()))
    }

    /// J(θ) = d_θᵀ r (eq. 7).
    pub fn j(&self) -> f64 {
        self.d.dot(self.mdp.r())
    }

    /// J(θ) = (1-γ) μ0ᵀ Π_θ q_θ (eq. 6), the primal form of eq. (7).
    pub fn j_primal(&self) -> f64 {
        self.actor_objective(&self.q)
    }

    /// ∇_θ J = Σ_s d_S(s) Σ_a q_θ(s,a) ∇π(s,a) = H Δ(Ξᵀ d_S) q_θ (eq. 8, eq. 25).
    pub fn grad_j(&self) -> Vector {
        h_apply_state_weighted(self.na(), &self.pi, &self.d_s, &self.q)
    }

    /// J_π(θ, q) = (1-γ) μ0ᵀ Π_θ q (eq. 10), the actor objective.
    pub fn actor_objective(&self, q: &Vector) -> f64 {
        (1.0 - self.gamma()) * self.mdp.mu0().dot(&self.pi_apply(q))
    }

    /// Actor_o gradient ∂_θ J_π = (1-γ) Σ_s μ0(s) Σ_a q(s,a) ∇π(s,a) (eq. 12).
    pub fn grad_actor_o(&self, q: &Vector) -> Vector {
        let w = self.mdp.mu0() * (1.0 - self.gamma());
        h_apply_state_weighted(self.na(), &self.pi, &w, q)
    }

    /// Actor_g gradient ∇^φ_θ J = Σ_s d_S(s) Σ_a q(s,a) ∇π(s,a) (eq. 9).
    pub fn grad_actor_g(&self, q: &Vector) -> Vector {
        h_apply_state_weighted(self.na(), &self.pi, &self.d_s, q)
    }

    /// The critic's residual δ_{θ,φ} = r - Ψ_θ q = r + γ P Π q - q (after eq. 13).
    pub fn residual(&self, q: &Vector) -> Vector {
        self.mdp.r() - self.psi_apply(q)
    }

    /// The weights D of a [`Weighting`].
    pub fn weights(&self, weighting: &Weighting) -> Result<Vector, LabError> {
        match weighting {
            Weighting::OnPolicy | Weighting::Detached => Ok(self.d.clone()),
            Weighting::Fixed(w) => {
                check_len("critic weighting", w, self.mdp.n_sa())?;
                Ok(w.clone())
            }
        }
    }

    /// J_q(θ, q) = ½ ‖r + γPΠq - q‖²_d = ½ δᵀ D δ (eq. 11).
    pub fn critic_objective(&self, q: &Vector, w: &Vector) -> f64 {
        let delta = self.residual(q);
        0.5 * delta.component_mul(&delta).dot(w)
    }

    /// Full (Bellman-residual) critic gradient ∂_q J_q = Ψᵀ D (Ψ q - r) = -Ψᵀ D δ (eq. 13,
    /// H_φ = I for the tabular critic).
    pub fn critic_grad_full(&self, q: &Vector, w: &Vector) -> Vector {
        -self.psi_t_apply(&self.residual(q).component_mul(w))
    }

    /// Semi (TD) critic gradient ∂^semi_q J_q = -D δ (eq. 18): the target r + γPΠq is held fixed.
    pub fn critic_grad_semi(&self, q: &Vector, w: &Vector) -> Vector {
        -self.residual(q).component_mul(w)
    }

    /// ∂²_q J_q = Ψᵀ D Ψ (eq. 39), dense.
    pub fn critic_hessian_full(&self, w: &Vector) -> Matrix {
        let psi = self.psi_matrix();
        psi.transpose() * Matrix::from_diagonal(w) * psi
    }

    /// Υ = H_θ Δ(Ξᵀ d_S) Ψ_θ⁻¹ (Theorem 2), dense, with Υ_{i,sa} = ∂d_θ(s,a)/∂θ_i.
    pub fn upsilon(&self) -> Matrix {
        let n = self.mdp.n_sa();
        let mut ups = Matrix::zeros(n, n);
        // Column j of Υ is H Δ(Ξᵀ d_S) Ψ⁻¹ e_j.
        for j in 0..n {
            let mut e = Vector::zeros(n);
            e[j] = 1.0;
            ups.set_column(j, &self.upsilon_apply(&e));
        }
        ups
    }

    /// Υ x = H_θ Δ(Ξᵀ d_S) Ψ_θ⁻¹ x (Theorem 2) without forming Υ: the gradient of d_θᵀ x for a
    /// fixed x.
    pub fn upsilon_apply(&self, x: &Vector) -> Vector {
        h_apply_state_weighted(self.na(), &self.pi, &self.d_s, &self.psi_inv_apply(x))
    }

    /// ∂_θ(d'ᵀ δ_{θ,φ}) for a fixed weighting d' (the second term of eq. 21; eq. 22):
    /// γ H Δ(Ξᵀ Pᵀ d') q.
    pub fn grad_fixed_d_residual(&self, q: &Vector, d_fixed: &Vector) -> Vector {
        let w = self.mdp.p().tr_mul(d_fixed) * self.gamma();
        h_apply_state_weighted(self.na(), &self.pi, &w, q)
    }

    /// ∂_θ(d_θᵀ δ_{θ,φ}), the total derivative (Theorem 1), by the product rule of eq. (20):
    /// Υ δ + γ H Δ(Ξᵀ Pᵀ d_θ) q.
    pub fn grad_d_residual(&self, q: &Vector) -> Vector {
        self.upsilon_apply(&self.residual(q)) + self.grad_fixed_d_residual(q, &self.d)
    }

    /// (∂_θ ∂_q J_q)ᵀ u for the full critic gradient (eq. 13), u fixed: ∇_θ of -(Ψ_θ u)ᵀ D δ_θ.
    /// Differentiates through D_θ only for [`Weighting::OnPolicy`].
    pub fn critic_mixed_t_full(
        &self,
        q: &Vector,
        u: &Vector,
        weighting: &Weighting,
    ) -> Result<Vector, LabError> {
        let (na, g) = (self.na(), self.gamma());
        let w = self.weights(weighting)?;
        let delta = self.residual(q);
        let a = self.psi_apply(u);
        let p = self.mdp.p();
        // ∂_θ xᵀ Ψ_θ u = -γ H Δ(Ξᵀ Pᵀ x) u, with x = D δ held fixed.
        let through_psi =
            h_apply_state_weighted(na, &self.pi, &(p.tr_mul(&w.component_mul(&delta)) * -g), u);
        // ∂_θ xᵀ δ_θ = γ H Δ(Ξᵀ Pᵀ x) q, with x = D Ψ u held fixed.
        let through_delta =
            h_apply_state_weighted(na, &self.pi, &(p.tr_mul(&w.component_mul(&a)) * g), q);
        let mut total = through_psi + through_delta;
        if matches!(weighting, Weighting::OnPolicy) {
            total += self.upsilon_apply(&a.component_mul(&delta));
        }
        Ok(-total)
    }

    /// (∂_θ ∂^semi_q J_q)ᵀ u for the semi-gradient (eq. 18), u fixed: ∇_θ of -uᵀ D δ_θ.
    pub fn critic_mixed_t_semi(
        &self,
        q: &Vector,
        u: &Vector,
        weighting: &Weighting,
    ) -> Result<Vector, LabError> {
        let w = self.weights(weighting)?;
        let mut total = self.grad_fixed_d_residual(q, &w.component_mul(u));
        if matches!(weighting, Weighting::OnPolicy) {
            total += self.upsilon_apply(&u.component_mul(&self.residual(q)));
        }
        Ok(-total)
    }

    /// ∂_q J_π = (1-γ) Πᵀ μ0 (eq. 58).
    pub fn actor_objective_grad_q(&self) -> Vector {
        self.pi_t_apply(self.mdp.mu0()) * (1.0 - self.gamma())
    }

    /// Stackelberg gradient (eq. 38) with the full-gradient critic:
    /// ∂_θ J_π - (∂_θ ∂_q J_q)ᵀ (∂²_q J_q + ηI)⁻¹ ∂_q J_π, the Hessian from eq. (39) solved
    /// densely. η = 0 is the paper's g_{S,θ}; η > 0 is the regularised form of §5.3.
    pub fn stackelberg_grad(
        &self,
        q: &Vector,
        weighting: &Weighting,
        eta: f64,
    ) -> Result<Vector, LabError> {
        check_len("critic q", q, self.mdp.n_sa())?;
        let w = self.weights(weighting)?;
        let n = self.mdp.n_sa();
        let hess = self.critic_hessian_full(&w) + Matrix::identity(n, n) * eta;
        let u = hess
            .lu()
            .solve(&self.actor_objective_grad_q())
            .ok_or_else(|| {
                LabError::Singular(
                    "critic Hessian Ψᵀ D Ψ + ηI (does the weighting have full support?)".into(),
                )
            })?;
        Ok(self.grad_actor_o(q) - self.critic_mixed_t_full(q, &u, weighting)?)
    }

    /// Semi-gradient Stackelberg gradient (eq. 43):
    /// ∂_θ J_π - (∂_θ ∂^semi_q J_q)ᵀ (D + ηI)⁻¹ ∂^semi_q J_π with the semi-Hessian D (eq. 40)
    /// and ∂^semi_q J_π = d_θ (eq. 42).
    pub fn stackelberg_grad_semi(
        &self,
        q: &Vector,
        weighting: &Weighting,
        eta: f64,
    ) -> Result<Vector, LabError> {
        check_len("critic q", q, self.mdp.n_sa())?;
        let w = self.weights(weighting)?;
        let denom = w.add_scalar(eta);
        if denom.iter().any(|&x| x.abs() < 1e-300) {
            return Err(LabError::Singular(
                "semi-Hessian D + ηI has a zero entry (weighting without full support, η = 0)"
                    .into(),
            ));
        }
        let u = self.d.component_div(&denom);
        Ok(self.grad_actor_o(q) - self.critic_mixed_t_semi(q, &u, weighting)?)
    }

    /// The on-policy res-critic w_θ = Σ_i (γPΠ)^i δ' = Ψ_θ⁻¹ δ' (after eq. 30), δ' a fixed reward.
    pub fn res_critic_exact(&self, delta: &Vector) -> Vector {
        self.psi_inv_apply(delta)
    }

    /// J_δ(θ) = (1-γ) μ0ᵀ Π_θ w_θ (eq. 30), with the residual reward δ' held fixed.
    pub fn j_delta(&self, delta: &Vector) -> f64 {
        self.actor_objective(&self.res_critic_exact(delta))
    }

    /// J_w(ψ; θ, φ) = ½ ‖δ' + γPΠw - w‖²_d (eq. 31).
    pub fn res_critic_objective(&self, w: &Vector, delta: &Vector, weights: &Vector) -> f64 {
        let e = delta - self.psi_apply(w);
        0.5 * e.component_mul(&e).dot(weights)
    }

    /// Full gradient of J_w in the tabular res-critic: -Ψᵀ D (δ' - Ψ w).
    pub fn res_critic_grad_full(&self, w: &Vector, delta: &Vector, weights: &Vector) -> Vector {
        -self.psi_t_apply(&(delta - self.psi_apply(w)).component_mul(weights))
    }

    /// Semi (TD) gradient of J_w: -D (δ' - Ψ w).
    pub fn res_critic_grad_semi(&self, w: &Vector, delta: &Vector, weights: &Vector) -> Vector {
        -(delta - self.psi_apply(w)).component_mul(weights)
    }

    /// ∇^ψ_θ J_δ = Σ_s d_S(s) Σ_a w(s,a) ∇π(s,a) (eq. 32; the paper's "d_θ(s)" is d_{S,θ}(s)).
    pub fn grad_res_actor(&self, w: &Vector) -> Vector {
        self.grad_actor_g(w)
    }

    /// Res-AC actor direction ∇^φ_θ J + ∇^ψ_θ J_δ (eq. 33).
    pub fn res_ac_actor(&self, q: &Vector, w: &Vector) -> Vector {
        self.grad_actor_g(q) + self.grad_res_actor(w)
    }
}

/// Π x for a policy vector π: per-state expectation.
fn pi_expect(n_actions: usize, pi: &Vector, x: &Vector) -> Vector {
    let ns = pi.len() / n_actions;
    Vector::from_fn(ns, |s, _| {
        (0..n_actions)
            .map(|a| pi[s * n_actions + a] * x[s * n_actions + a])
            .sum()
    })
}

/// Πᵀ y for a policy vector π: (s, a) ↦ π(s,a) y(s).
fn pi_t(n_actions: usize, pi: &Vector, y: &Vector) -> Vector {
    Vector::from_fn(pi.len(), |j, _| pi[j] * y[j / n_actions])
}

/// Sixth-order central-difference weights for offsets ±1, ±2, ±3 (times 1/(60h)).
const FD_WEIGHTS: [(f64, f64); 3] = [(1.0, 45.0), (2.0, -9.0), (3.0, 1.0)];

/// Step used by [`fd_gradient`] and [`fd_jacobian`]: the sixth-order stencil's truncation error
/// is O(h⁶) ≈ 1e-18 and its rounding error ≈ 110·ε/(60h) ≈ 4e-13, so the finite differences
/// are accurate to ~1e-12 and can certify identities at 1e-8.
pub const FD_STEP: f64 = 1e-3;

/// Gradient of a scalar function by sixth-order central differences.
pub fn fd_gradient<F>(f: F, x: &Vector, h: f64) -> Result<Vector, LabError>
where
    F: Fn(&Vector) -> Result<f64, LabError>,
{
    let mut g = Vector::zeros(x.len());
    let mut xp = x.clone();
    for i in 0..x.len() {
        let mut acc = 0.0;
        for &(k, c) in &FD_WEIGHTS {
            xp[i] = x[i] + k * h;
            let fp = f(&xp)?;
            xp[i] = x[i] - k * h;
            let fm = f(&xp)?;
            acc += c * (fp - fm);
        }
        xp[i] = x[i];
        g[i] = acc / (60.0 * h);
    }
    Ok(g)
}

/// Jacobian (rows: outputs, columns: inputs) of a vector function by sixth-order central
/// differences.
pub fn fd_jacobian<F>(f: F, x: &Vector, h: f64) -> Result<Matrix, LabError>
where
    F: Fn(&Vector) -> Result<Vector, LabError>,
{
    if x.is_empty() {
        return Err(LabError::Config(
            "finite differences need at least one input".into(),
        ));
    }
    let mut xp = x.clone();
    let mut cols = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let mut acc: Option<Vector> = None;
        for &(k, c) in &FD_WEIGHTS {
            xp[i] = x[i] + k * h;
            let fp = f(&xp)?;
            xp[i] = x[i] - k * h;
            let fm = f(&xp)?;
            let term = (fp - fm) * c;
            acc = Some(match acc {
                Some(a) => a + term,
                None => term,
            });
        }
        xp[i] = x[i];
        cols.push(acc.unwrap_or_else(|| Vector::zeros(0)) / (60.0 * h));
    }
    Ok(Matrix::from_columns(&cols))
}
