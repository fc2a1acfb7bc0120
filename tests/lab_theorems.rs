//! Numerical proofs of the paper's identities (Wen et al., ICML 2021) on random MDPs, in f64.
//!
//! Each identity is checked on several random MDPs (different seeds, sizes and discounts) with a
//! random softmax actor and an arbitrary critic. Derivatives that the paper's closed forms claim
//! to equal are computed from their definitions by sixth-order finite differences (accuracy
//! ~1e-12), so every check holds to 1e-8 relative to max(1, size of the compared quantities).
#![cfg(feature = "trainer")]

use stackrl::lab::LabError;
use stackrl::lab::exact::{PolicyEval, Vector, Weighting, fd_jacobian, softmax_jacobian};
use stackrl::lab::mdp::TabularMdp;
use stackrl::lab::theorems::{self, IdentityCheck, Instance};

const TOL: f64 = 1e-8;

/// Random instances: (|S|, |A|, γ, seed), including a near-undiscounted one (γ = 0.99).
fn instances() -> Vec<Instance> {
    [
        (3, 2, 0.9, 1),
        (5, 3, 0.9, 2),
        (4, 4, 0.5, 3),
        (6, 2, 0.99, 4),
        (7, 3, 0.9, 5),
        (2, 5, 0.8, 6),
    ]
    .into_iter()
    .map(|(ns, na, g, seed)| Instance::random(ns, na, g, seed).expect("valid instance"))
    .collect()
}

fn assert_holds(check: fn(&Instance) -> Result<IdentityCheck, LabError>) {
    for (k, inst) in instances().iter().enumerate() {
        let c = check(inst).expect("check runs");
        assert!(c.expect_equal);
        assert!(
            c.holds(TOL),
            "{} fails on instance {k}: abs err {:e}, scale {:e}",
            c.id,
            c.abs_err(),
            c.scale()
        );
        // The compared quantities are not trivially zero.
        assert!(c.scale() > 1e-6, "{}: degenerate instance {k}", c.id);
    }
}

#[test]
fn duality_eq6_eq7_and_state_level_evaluation() {
    assert_holds(theorems::duality_and_definitions);
}

#[test]
fn policy_gradient_eq8_is_the_gradient_of_j() {
    assert_holds(theorems::policy_gradient);
}

#[test]
fn objective_gap_eq19() {
    assert_holds(theorems::objective_gap);
}

#[test]
fn theorem1_actor_o_gap() {
    assert_holds(theorems::theorem1_actor_o);
}

#[test]
fn theorem1_actor_g_gap() {
    assert_holds(theorems::theorem1_actor_g);
}

#[test]
fn eq24_actor_g_is_gradient_of_actor_objective_plus_fixed_d_residual() {
    assert_holds(theorems::actor_g_objective);
}

#[test]
fn theorem2_upsilon_matches_finite_differences_of_d() {
    assert_holds(theorems::theorem2_upsilon);
}

#[test]
fn eq29_gap_is_upsilon_delta() {
    assert_holds(theorems::gap_is_upsilon_delta);
}

#[test]
fn eq39_critic_hessian() {
    assert_holds(theorems::critic_hessian);
}

#[test]
fn theorem3_stackelberg_gradient_is_policy_gradient() {
    assert_holds(theorems::theorem3_stackelberg);
}

#[test]
fn eq46_semi_gradient_stackelberg_is_policy_gradient() {
    assert_holds(theorems::semi_stackelberg);
}

#[test]
fn theorem3_eq46_closed_forms_agree() {
    assert_holds(theorems::stackelberg_closed_form);
}

#[test]
fn eq30_residual_objective_gradient_is_the_gap() {
    assert_holds(theorems::residual_objective);
}

#[test]
fn eq31_33_exact_res_critic_recovers_policy_gradient() {
    assert_holds(theorems::res_ac_exact);
}

/// The conditions: identities claimed by our analysis hold; the gaps that must exist are large.
#[test]
fn stackelberg_conditions() {
    for (k, inst) in instances().iter().enumerate() {
        for c in theorems::conditions(inst).expect("conditions run") {
            if c.expect_equal {
                assert!(
                    c.holds(TOL),
                    "{} fails on instance {k}: {:e}",
                    c.id,
                    c.abs_err()
                );
            } else {
                assert!(
                    c.rel_err() > 1e-3,
                    "{} unexpectedly (nearly) equal on instance {k}: rel err {:e}",
                    c.id,
                    c.rel_err()
                );
            }
        }
    }
}

/// The checks are sensitive: perturbing one side by 1e-6 in one coordinate is detected.
#[test]
fn checks_detect_small_errors() {
    let inst = &instances()[1];
    let mut c = theorems::theorem1_actor_o(inst).unwrap();
    assert!(c.holds(TOL));
    c.lhs[0] += 1e-6;
    assert!(!c.holds(TOL));
    // A plausible wrong formula: weighting eq. (8) by μ0 instead of d_S is caught.
    let ev = PolicyEval::new(&inst.mdp, &inst.theta).unwrap();
    let wrong = ev.grad_actor_o(&ev.q) / (1.0 - inst.mdp.gamma());
    let good = theorems::policy_gradient(inst).unwrap();
    assert!((wrong - &good.rhs).amax() > 1e-3);
}

/// H_θ (eq. 2) is the Jacobian of the softmax.
#[test]
fn softmax_jacobian_matches_finite_differences() {
    for inst in instances() {
        let na = inst.mdp.n_actions();
        let pi = stackrl::lab::exact::softmax_policy(na, &inst.theta);
        let h = softmax_jacobian(na, &pi);
        let fd = fd_jacobian(
            |t| Ok(stackrl::lab::exact::softmax_policy(na, t)),
            &inst.theta,
            1e-3,
        )
        .unwrap();
        // fd[(sa, i)] = ∂π(sa)/∂θ_i; H[(i, sa)].
        assert!((h - fd.transpose()).amax() < 1e-10);
    }
}

/// Ψ⁻¹ and Ψ⁻ᵀ via the |S|×|S| Woodbury form agree with the dense inverse, and Ψ⁻¹1 = 1/(1-γ) 1
/// (eq. 62).
#[test]
fn psi_inverse_forms_agree_with_dense_inverse() {
    for inst in instances() {
        let ev = PolicyEval::new(&inst.mdp, &inst.theta).unwrap();
        let inv = ev.psi_matrix().try_inverse().unwrap();
        let x = &inst.q;
        assert!((ev.psi_inv_apply(x) - &inv * x).amax() < 1e-10);
        assert!((ev.psi_inv_t_apply(x) - inv.transpose() * x).amax() < 1e-10);
        let ones = Vector::from_element(x.len(), 1.0);
        let g = inst.mdp.gamma();
        assert!((ev.psi_inv_apply(&ones) - &ones / (1.0 - g)).amax() < 1e-9);
    }
}

/// At the exact critic q = q_θ both critic gradients vanish and J_q = 0; away from it they do not.
#[test]
fn critic_gradients_vanish_exactly_at_q_theta() {
    for inst in instances() {
        let ev = PolicyEval::new(&inst.mdp, &inst.theta).unwrap();
        let w = ev.d.clone();
        assert!(ev.critic_objective(&ev.q, &w) < 1e-24);
        assert!(ev.critic_grad_full(&ev.q, &w).amax() < 1e-12);
        assert!(ev.critic_grad_semi(&ev.q, &w).amax() < 1e-12);
        assert!(ev.critic_grad_semi(&inst.q, &w).amax() > 1e-4);
    }
}

/// Assumption 1 matters in practice too: a weighting without full support makes the
/// (unregularised) Stackelberg gradient undefined, reported as an error rather than a panic;
/// η > 0 repairs it.
#[test]
fn singular_weighting_is_an_error_not_a_panic() {
    let inst = &instances()[0];
    let ev = PolicyEval::new(&inst.mdp, &inst.theta).unwrap();
    let mut w = inst.d_offpolicy.clone();
    w[0] = 0.0;
    let fixed = Weighting::Fixed(w);
    assert!(matches!(
        ev.stackelberg_grad_semi(&inst.q, &fixed, 0.0),
        Err(LabError::Singular(_))
    ));
    assert!(ev.stackelberg_grad_semi(&inst.q, &fixed, 0.5).is_ok());
    assert!(matches!(
        ev.stackelberg_grad(&inst.q, &Weighting::Fixed(Vector::zeros(3)), 0.0),
        Err(LabError::Dimension { .. })
    ));
}

/// A μ0 without full support (Assumption 1 asks for it) still gives Theorem 3, as long as every
/// state is reached (d_θ > 0): the real condition is full support of d_θ.
#[test]
fn theorem3_needs_full_support_of_d_not_of_mu0() {
    for seed in 0..4 {
        let mdp = TabularMdp::random(5, 3, 0.9, 1, 100 + seed).unwrap();
        assert_eq!(mdp.mu0().iter().filter(|&&m| m > 0.0).count(), 1);
        let inst = Instance::with_mdp(mdp, seed);
        let ev = PolicyEval::new(&inst.mdp, &inst.theta).unwrap();
        assert!(ev.d.min() > 0.0);
        for c in [
            theorems::theorem3_stackelberg(&inst).unwrap(),
            theorems::semi_stackelberg(&inst).unwrap(),
        ] {
            assert!(c.holds(TOL), "{}: {:e}", c.id, c.abs_err());
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let inst = &instances()[0];
    assert!(matches!(
        PolicyEval::new(&inst.mdp, &Vector::zeros(1)),
        Err(LabError::Dimension { .. })
    ));
    let mut nan = inst.theta.clone();
    nan[0] = f64::NAN;
    assert!(PolicyEval::new(&inst.mdp, &nan).is_err());
    let bad_pi = Vector::from_element(inst.mdp.n_sa(), 0.9);
    assert!(PolicyEval::from_policy(&inst.mdp, bad_pi).is_err());
    assert!(TabularMdp::random(3, 2, 1.0, 3, 0).is_err());
    assert!(TabularMdp::random(3, 2, 0.9, 0, 0).is_err());
}
