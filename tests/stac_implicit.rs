//! The STAC actor step in f64:
//!
//! * as λ → ∞ it is the AC step (paper 000 Sec. 3.1), for the gradient and for whole
//!   training epochs;
//! * on networks small enough to form every matrix, its implicit term equals
//!   `B (H + λI)⁻¹ g` from a dense LU solve, with `H`, `B` and `g` built column by column from
//!   central finite differences of first-order gradients (no second-order autodiff involved).
#![cfg(feature = "trainer")]

use candle_core::{DType, Device, Tensor, Var};
use nalgebra::{DMatrix, DVector};
use stackrl::algos::{
    CriticHessian, OnPolicyAgent, OnPolicyAlgo, OnPolicyConfig, Precision, StacConfig, ac, stac,
};
use stackrl::autodiff::{self, CgStop, flatten};
use stackrl::envs;
use stackrl::nn::Activation;
use stackrl::rng::Rng;

fn values(vars: &[Var]) -> Vec<f64> {
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    to_vec(&flatten(&ts).unwrap())
}

fn set_values(vars: &[Var], x: &[f64]) {
    let mut off = 0;
    for v in vars {
        let n = v.elem_count();
        let t = Tensor::from_slice(&x[off..off + n], v.shape(), &Device::Cpu)
            .unwrap()
            .to_dtype(v.dtype())
            .unwrap();
        v.set(&t).unwrap();
        off += n;
    }
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

fn flat(ts: &[Tensor]) -> Vec<f64> {
    to_vec(&flatten(ts).unwrap())
}

fn flat_grad(loss: &Tensor, wrt: &[Var]) -> Vec<f64> {
    flat(&autodiff::grads(loss, wrt).unwrap())
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    num / b.iter().map(|y| y * y).sum::<f64>().sqrt()
}

fn config(lambda: f64, hidden: &[usize], steps: usize) -> OnPolicyConfig {
    OnPolicyConfig {
        algo: OnPolicyAlgo::Stac,
        steps_per_epoch: steps,
        precision: Precision::F64,
        hidden: hidden.to_vec(),
        activation: Activation::Tanh,
        stac: StacConfig {
            lambda,
            ..StacConfig::default()
        },
        ..OnPolicyConfig::default()
    }
}

fn agent(config: OnPolicyConfig, seed: u64) -> (OnPolicyAgent, Box<dyn envs::Env>, Rng) {
    let env = envs::make("CartPole-v1").unwrap();
    let mut rng = Rng::seed_from_u64(seed);
    let a = OnPolicyAgent::new(
        config,
        env.observation_space(),
        env.action_space(),
        &mut rng,
    )
    .unwrap();
    (a, env, rng)
}

fn all_params(a: &OnPolicyAgent) -> (Vec<f64>, Vec<f64>) {
    (values(a.policy().vars()), values(a.critic().vars()))
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn large_lambda_gives_the_ac_step() {
    autodiff::enable_second_order().unwrap();
    let steps = 200;
    let mut ac_cfg = config(0.0, &[64, 64], steps);
    ac_cfg.algo = OnPolicyAlgo::Ac;
    let (mut a_ac, mut env_ac, mut rng_ac) = agent(ac_cfg, 7);
    let (a_st0, mut env_st0, mut rng_st0) = agent(config(1e10, &[64, 64], steps), 7);
    let (a_mid, _, _) = agent(config(1.0, &[64, 64], steps), 7);
    assert_eq!(all_params(&a_ac), all_params(&a_st0));
    let mut a_st = a_st0;

    // The gradient: ‖dJ/dθ − ∂J/∂θ‖ / ‖∂J/∂θ‖ at λ = 1e10 ...
    let data = a_st.collect_epoch(env_st0.as_mut(), &mut rng_st0).unwrap();
    let batch = a_st.prepare(&data).unwrap();
    let (_, g_ac) = ac::policy_gradient(a_ac.policy(), &batch).unwrap();
    let g_ac = flat(&g_ac);
    let (sg, _) = stac::stackelberg_direction(&a_st, &batch).unwrap();
    let e = rel_err(&flat(&sg.total), &g_ac);
    eprintln!(
        "λ = 1e10: ‖dJ/dθ − ∂J/∂θ‖/‖∂J/∂θ‖ = {e:.2e} (CG {} iterations, residual {:.1e})",
        sg.cg.iterations, sg.cg.rel_residual
    );
    assert!(e < 1e-6, "{e}");
    assert!(rel_err(&flat(&sg.direct), &g_ac) < 1e-12);
    // ... while at λ = 1 the implicit term is not negligible (the test above can fail).
    let (sg1, _) = stac::stackelberg_direction(&a_mid, &batch).unwrap();
    let e1 = rel_err(&flat(&sg1.total), &g_ac);
    eprintln!("λ = 1: ‖dJ/dθ − ∂J/∂θ‖/‖∂J/∂θ‖ = {e1:.2e}");
    assert!(e1 > 1e-2, "{e1}");

    // Whole epochs (collection, one actor step, 80 critic steps), three times, from scratch.
    let (mut a_st, mut env_st, mut rng_st) = agent(config(1e10, &[64, 64], steps), 7);
    for epoch in 0..3 {
        let d_ac = a_ac.collect_epoch(env_ac.as_mut(), &mut rng_ac).unwrap();
        let d_st = a_st.collect_epoch(env_st.as_mut(), &mut rng_st).unwrap();
        assert_eq!(d_ac, d_st, "epoch {epoch}: the same actions");
        let s_ac = a_ac.update(&d_ac).unwrap();
        let s_st = a_st.update(&d_st).unwrap();
        let (th_ac, w_ac) = all_params(&a_ac);
        let (th_st, w_st) = all_params(&a_st);
        let (dth, dw) = (max_abs_diff(&th_ac, &th_st), max_abs_diff(&w_ac, &w_st));
        eprintln!(
            "epoch {epoch}: max |θ_AC − θ_STAC| = {dth:.2e}, max |w_AC − w_STAC| = {dw:.2e}, \
             implicit norm {:.2e}",
            s_st.implicit_grad_norm
        );
        assert!(dth < 1e-6 && dw < 1e-6, "{dth} {dw}");
        assert_eq!(s_ac.mean_return, s_st.mean_return);
    }
}

/// `(H, B, g)`: critic Hessian (w × w), mixed matrix ∂²M/∂θ∂w (θ × w) and ∂J/∂w, each from
/// first-order gradients (central differences of them for `H` and `B`).
fn dense_pieces(
    a: &OnPolicyAgent,
    batch: &stackrl::algos::on_policy::Batch,
    hessian: CriticHessian,
) -> (DMatrix<f64>, DMatrix<f64>, DVector<f64>) {
    let (theta, w) = (a.policy().vars().to_vec(), a.critic().vars().to_vec());
    let cfg = a.config();
    let losses = || {
        stac::losses(
            a.policy(),
            a.critic(),
            batch,
            cfg.gamma,
            cfg.gae_lambda,
            hessian,
            stackrl::algos::StacEstimator::Exact,
        )
        .unwrap()
    };
    let (nt, nw) = (autodiff::numel(&theta), autodiff::numel(&w));
    let w0 = values(&w);
    let h = 1e-5;
    let mut hm = DMatrix::zeros(nw, nw);
    let mut bm = DMatrix::zeros(nt, nw);
    for j in 0..nw {
        let at = |s: f64| {
            let mut x = w0.clone();
            x[j] += s * h;
            set_values(&w, &x);
            let l = losses();
            (flat_grad(&l.hessian_loss, &w), flat_grad(&l.mixed, &theta))
        };
        let ((hp, bp), (hmn, bmn)) = (at(1.0), at(-1.0));
        for i in 0..nw {
            hm[(i, j)] = (hp[i] - hmn[i]) / (2.0 * h);
        }
        for i in 0..nt {
            bm[(i, j)] = (bp[i] - bmn[i]) / (2.0 * h);
        }
    }
    set_values(&w, &w0);
    let g = DVector::from_vec(flat_grad(&losses().objective, &w));
    if hessian == CriticHessian::GaussNewton {
        // The Gauss-Newton surrogate is re-centred wherever it is evaluated (its gradient is
        // identically 0), so differences say nothing: form (2/N) Σ_t ∇V(s_t) ∇V(s_t)ᵀ from
        // per-state gradients instead.
        hm.fill(0.0);
        for t in 0..batch.n {
            let x = batch.obs.narrow(0, t, 1).unwrap();
            let v = a.critic().forward(&x).unwrap().sum_all().unwrap();
            let gt = DVector::from_vec(flat_grad(&v, &w));
            hm += &gt * gt.transpose() * (2.0 / batch.n as f64);
        }
    }
    let hm = (&hm + hm.transpose()) * 0.5;
    (hm, bm, g)
}

fn check_dense(hessian: CriticHessian, seed: u64) {
    autodiff::enable_second_order().unwrap();
    // Tiny networks: θ has 4·4+4+4·2+2 = 30 entries, w has 4·4+4+4+1 = 25.
    let (mut probe, mut env, mut rng) = agent(config(0.0, &[4], 40), seed);
    let data = probe.collect_epoch(env.as_mut(), &mut rng).unwrap();
    let batch = probe.prepare(&data).unwrap();
    let (hm, bm, g) = dense_pieces(&probe, &batch, hessian);
    let eig = hm.clone().symmetric_eigenvalues();
    let (lo, hi) = (eig.min(), eig.max());
    // λ just large enough for H + λI to be positive definite, but far from dominating it.
    let lambda = (-lo).max(0.0) + 0.02 * hi.abs();
    eprintln!("{hessian:?}: eigenvalues of H in [{lo:.3e}, {hi:.3e}], λ = {lambda:.3e}");
    let mut cfg = config(lambda, &[4], 40);
    cfg.stac.hessian = hessian;
    cfg.stac.cg_iters = 500;
    cfg.stac.cg_rel_tol = 1e-13;
    cfg.stac.cg_true_residual = true;
    let (a, _, _) = agent(cfg, seed);
    assert_eq!(all_params(&a), all_params(&probe));
    let (sg, _) = stac::stackelberg_direction(&a, &batch).unwrap();
    assert_eq!(sg.cg.stop, CgStop::Converged);
    let n = hm.nrows();
    let x = (&hm + DMatrix::identity(n, n) * lambda)
        .lu()
        .solve(&g)
        .unwrap();
    let implicit_dense: Vec<f64> = (&bm * &x).iter().copied().collect();
    let implicit = flat(&sg.implicit);
    let e = rel_err(&implicit, &implicit_dense);
    let e_g = rel_err(&to_vec(&sg.objective_grad_w), g.as_slice());
    let e_x = rel_err(&to_vec(&sg.cg.x), x.as_slice());
    eprintln!(
        "{hessian:?}: implicit term vs dense solve rel err {e:.2e} (u: {e_x:.2e}, ∂J/∂w: \
         {e_g:.2e}; CG {} iterations, true residual {:.1e}; ‖implicit‖ {:.3e}, ‖∂J/∂θ‖ {:.3e})",
        sg.cg.iterations,
        sg.cg.rel_residual,
        implicit.iter().map(|v| v * v).sum::<f64>().sqrt(),
        flat(&sg.direct).iter().map(|v| v * v).sum::<f64>().sqrt()
    );
    assert!(e < 1e-6 && e_x < 1e-6 && e_g < 1e-8, "{e} {e_x} {e_g}");
}

#[test]
fn implicit_term_matches_dense_solve_exact_hessian() {
    check_dense(CriticHessian::Exact, 3);
}

#[test]
fn implicit_term_matches_dense_solve_gauss_newton() {
    check_dense(CriticHessian::GaussNewton, 4);
}
