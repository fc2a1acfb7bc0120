//! Second-order autodiff: HVPs and mixed products against f64 central finite differences,
//! conjugate gradient against dense solves, and the Stackelberg gradient (paper 000 eq. (19))
//! against its dense closed form. Every test calls `enable_second_order()` first (each test
//! runs in its own thread, and Candle reads its flag per thread).
#![cfg(feature = "trainer")]

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use nalgebra::{DMatrix, DVector};
use stackrl::autodiff::{
    self, CgOptions, CgStop, GradGraph, ImplicitOptions, conjugate_gradient, flatten, hvp,
    mixed_vp, mixed_vp_transpose, stackelberg_gradient,
};
use stackrl::nn::{Activation, QNetwork, SquashedGaussianActor, SquashedGaussianConfig};
use stackrl::rng::Rng;

const B: usize = 8;
const OBS: usize = 3;
const ACT: usize = 2;
const GAMMA: f64 = 0.9;
const ALPHA: f64 = 0.2;

/// A tiny SAC-like problem in f64: actor θ (tanh-squashed Gaussian, one hidden layer of 4
/// tanh units) and critic w (Q network, one hidden layer of 4 units).
struct Problem {
    actor: SquashedGaussianActor,
    critic: QNetwork,
    obs: Tensor,
    act: Tensor,
    rew: Tensor,
    next_obs: Tensor,
    eps: Tensor,
    eps_next: Tensor,
}

impl Problem {
    fn new(dtype: DType, critic_act: Activation) -> Result<Self> {
        let dev = Device::Cpu;
        let mut rng = Rng::seed_from_u64(7);
        let vm = VarMap::new();
        let cfg = SquashedGaussianConfig::new(
            OBS,
            &[4],
            Activation::Tanh,
            vec![-1.0; ACT],
            vec![1.0; ACT],
        );
        let actor = SquashedGaussianActor::new(&cfg, &vm, "pi", dtype, &dev, &mut rng)?;
        let critic = QNetwork::new(OBS, ACT, &[4], critic_act, &vm, "q", dtype, &dev, &mut rng)?;
        Ok(Self {
            actor,
            critic,
            obs: rng.normal_tensor((B, OBS), 0.0, 1.0, dtype, &dev)?,
            act: rng.uniform_tensor((B, ACT), -1.0, 1.0, dtype, &dev)?,
            rew: rng.normal_tensor(B, 0.0, 1.0, dtype, &dev)?,
            next_obs: rng.normal_tensor((B, OBS), 0.0, 1.0, dtype, &dev)?,
            eps: rng.normal_tensor((B, ACT), 0.0, 1.0, dtype, &dev)?,
            eps_next: rng.normal_tensor((B, ACT), 0.0, 1.0, dtype, &dev)?,
        })
    }

    fn theta(&self) -> Vec<Var> {
        self.actor.vars().to_vec()
    }

    fn w(&self) -> Vec<Var> {
        self.critic.vars().to_vec()
    }

    /// Critic loss `L(θ, w) = mean((Q_w(s,a) - r - γ(Q_w(s',a'_θ) - α ln π_θ(a'|s')))²)`
    /// (full gradient: `w` also in the bootstrap term, `θ` through the next action).
    fn critic_loss(&self) -> Result<Tensor> {
        let next = self
            .actor
            .sample_with_noise(&self.next_obs, &self.eps_next)?;
        let q_next = self.critic.forward(&self.next_obs, &next.action)?;
        let soft_v = (q_next - (next.log_prob * ALPHA)?)?;
        let target = (&self.rew + (soft_v * GAMMA)?)?;
        let q = self.critic.forward(&self.obs, &self.act)?;
        (q - target)?.sqr()?.mean_all()
    }

    /// Actor objective `J(θ, w) = mean(Q_w(s, a_θ) - α ln π_θ(a|s))`.
    fn objective(&self) -> Result<Tensor> {
        let s = self.actor.sample_with_noise(&self.obs, &self.eps)?;
        let q = self.critic.forward(&self.obs, &s.action)?;
        (q - (s.log_prob * ALPHA)?)?.mean_all()
    }
}

fn values(vars: &[Var]) -> Vec<f64> {
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    flatten(&ts)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
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

fn flat_grad(loss: &Tensor, wrt: &[Var]) -> Vec<f64> {
    let g = autodiff::grads(loss, wrt).unwrap();
    flatten(&g)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den
}

fn random_vec(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| rng.normal_f64()).collect()
}

fn flat_tensor(x: &[f64]) -> Tensor {
    Tensor::from_slice(x, x.len(), &Device::Cpu).unwrap()
}

/// Central difference of `grad_wrt(L)` along `dir` applied to `moved`.
fn fd_directional(
    p: &Problem,
    loss: fn(&Problem) -> Result<Tensor>,
    moved: &[Var],
    dir: &[f64],
    grad_wrt: &[Var],
    h: f64,
) -> Vec<f64> {
    let x0 = values(moved);
    let shifted = |s: f64| -> Vec<f64> {
        let x: Vec<f64> = x0.iter().zip(dir).map(|(a, d)| a + s * h * d).collect();
        set_values(moved, &x);
        flat_grad(&loss(p).unwrap(), grad_wrt)
    };
    let plus = shifted(1.0);
    let minus = shifted(-1.0);
    set_values(moved, &x0);
    plus.iter()
        .zip(&minus)
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect()
}

#[test]
fn probe_reports_live_second_order() {
    autodiff::enable_second_order().unwrap();
    assert_eq!(autodiff::second_order_probe().unwrap(), 6.0);
}

fn check_hvp_against_fd(act: Activation) -> f64 {
    autodiff::enable_second_order().unwrap();
    let p = Problem::new(DType::F64, act).unwrap();
    let w = p.w();
    let mut rng = Rng::seed_from_u64(1);
    let v = random_vec(autodiff::numel(&w), &mut rng);
    let gg = GradGraph::new(&p.critic_loss().unwrap(), &w).unwrap();
    let hv = to_vec(&gg.hvp(&flat_tensor(&v)).unwrap());
    let fd = fd_directional(&p, Problem::critic_loss, &w, &v, &w, 1e-5);
    rel_err(&hv, &fd)
}

#[test]
fn hvp_matches_central_differences_tanh() {
    let e = check_hvp_against_fd(Activation::Tanh);
    eprintln!("HVP (tanh) vs central FD: rel err {e:.2e}");
    assert!(e < 1e-6, "rel err {e}");
}

#[test]
fn hvp_matches_central_differences_fast_tanh() {
    // 2 sigmoid(2x) - 1: sigmoid's backward must itself be differentiable.
    let e = check_hvp_against_fd(Activation::FastTanh);
    eprintln!("HVP (fast tanh) vs central FD: rel err {e:.2e}");
    assert!(e < 1e-6, "rel err {e}");
}

#[test]
fn hvp_per_variable_api_and_symmetry() {
    autodiff::enable_second_order().unwrap();
    let p = Problem::new(DType::F64, Activation::Tanh).unwrap();
    let w = p.w();
    let mut rng = Rng::seed_from_u64(2);
    let per_var = |rng: &mut Rng| -> Vec<Tensor> {
        w.iter()
            .map(|v| {
                rng.normal_tensor(v.shape(), 0.0, 1.0, DType::F64, &Device::Cpu)
                    .unwrap()
            })
            .collect()
    };
    let (u, v) = (per_var(&mut rng), per_var(&mut rng));
    let hv = hvp(|| p.critic_loss(), &w, &v).unwrap();
    let hu = hvp(|| p.critic_loss(), &w, &u).unwrap();
    for (h, var) in hv.iter().zip(&w) {
        assert_eq!(h.shape(), var.shape());
    }
    let (fu, fv) = (flatten(&u).unwrap(), flatten(&v).unwrap());
    let u_hv = autodiff::dot(&fu, &flatten(&hv).unwrap()).unwrap();
    let v_hu = autodiff::dot(&fv, &flatten(&hu).unwrap()).unwrap();
    eprintln!("uᵀHv = {u_hv}, vᵀHu = {v_hu}");
    assert!((u_hv - v_hu).abs() <= 1e-12 * u_hv.abs().max(1.0));
    // Wrong shapes are errors, not panics.
    assert!(hvp(|| p.critic_loss(), &w, &v[..1]).is_err());
}

#[test]
fn mixed_products_match_central_differences() {
    autodiff::enable_second_order().unwrap();
    let p = Problem::new(DType::F64, Activation::Tanh).unwrap();
    let (theta, w) = (p.theta(), p.w());
    let mut rng = Rng::seed_from_u64(3);
    // (∂²L/∂θ∂w) v = d/dε ∇_θ L(θ, w + ε v)
    let v = random_vec(autodiff::numel(&w), &mut rng);
    let v_t = autodiff::unflatten(&flat_tensor(&v), &autodiff::shapes_of(&w)).unwrap();
    let m = mixed_vp(|| p.critic_loss(), &theta, &w, &v_t).unwrap();
    let m = to_vec(&flatten(&m).unwrap());
    let fd = fd_directional(&p, Problem::critic_loss, &w, &v, &theta, 1e-5);
    let e = rel_err(&m, &fd);
    eprintln!(
        "mixed (∂²L/∂θ∂w)v vs central FD: rel err {e:.2e}, |m| = {:.3e}",
        norm(&fd)
    );
    assert!(e < 1e-6, "rel err {e}");
    // Transpose: (∂²L/∂w∂θ) u = d/dε ∇_w L(θ + ε u, w)
    let u = random_vec(autodiff::numel(&theta), &mut rng);
    let u_t = autodiff::unflatten(&flat_tensor(&u), &autodiff::shapes_of(&theta)).unwrap();
    let mt = mixed_vp_transpose(|| p.critic_loss(), &theta, &w, &u_t).unwrap();
    let mt = to_vec(&flatten(&mt).unwrap());
    let fd_t = fd_directional(&p, Problem::critic_loss, &theta, &u, &w, 1e-5);
    let e_t = rel_err(&mt, &fd_t);
    eprintln!("mixed transpose (∂²L/∂w∂θ)u vs central FD: rel err {e_t:.2e}");
    assert!(e_t < 1e-6, "rel err {e_t}");
    // Consistency: uᵀ(M v) = vᵀ(Mᵀ u).
    let a: f64 = u.iter().zip(&m).map(|(x, y)| x * y).sum();
    let b: f64 = v.iter().zip(&mt).map(|(x, y)| x * y).sum();
    assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "{a} vs {b}");
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|a| a * a).sum::<f64>().sqrt()
}

#[test]
fn hvp_f32_agrees_with_f64() {
    autodiff::enable_second_order().unwrap();
    // FastTanh in f32 runs the rational approximation (f64 uses libm): its error stays ~1e-7.
    for act in [Activation::Tanh, Activation::FastTanh] {
        let p64 = Problem::new(DType::F64, act).unwrap();
        let p32 = Problem::new(DType::F32, act).unwrap();
        let n = autodiff::numel(&p64.w());
        let v = random_vec(n, &mut Rng::seed_from_u64(4));
        let h64 = to_vec(
            &GradGraph::new(&p64.critic_loss().unwrap(), &p64.w())
                .unwrap()
                .hvp(&flat_tensor(&v))
                .unwrap(),
        );
        let v32 = flat_tensor(&v).to_dtype(DType::F32).unwrap();
        let h32 = to_vec(
            &GradGraph::new(&p32.critic_loss().unwrap(), &p32.w())
                .unwrap()
                .hvp(&v32)
                .unwrap(),
        );
        let e = rel_err(&h32, &h64);
        eprintln!("HVP f32 vs f64 ({act:?}): rel err {e:.2e}");
        assert!(e < 1e-5, "rel err {e}");
    }
}

fn spd_matrix(n: usize, rng: &mut Rng) -> DMatrix<f64> {
    let m = DMatrix::from_fn(n, n, |_, _| rng.normal_f64());
    m.transpose() * &m / n as f64 + DMatrix::identity(n, n) * 0.1
}

fn dense_op(a: &DMatrix<f64>) -> impl FnMut(&Tensor) -> Result<Tensor> + '_ {
    move |v: &Tensor| {
        let x = DVector::from_vec(v.to_vec1::<f64>()?);
        let y = a * x;
        Tensor::from_slice(y.as_slice(), y.len(), &Device::Cpu)
    }
}

#[test]
fn cg_matches_dense_solve() {
    let n = 30;
    let mut rng = Rng::seed_from_u64(5);
    let a = spd_matrix(n, &mut rng);
    let b = random_vec(n, &mut rng);
    let direct = a
        .clone()
        .cholesky()
        .unwrap()
        .solve(&DVector::from_vec(b.clone()));
    let opts = CgOptions {
        max_iters: 200,
        rel_tol: 1e-12,
        true_residual: true,
    };
    let r = conjugate_gradient(dense_op(&a), &flat_tensor(&b), &opts, None).unwrap();
    let e = rel_err(&to_vec(&r.x), direct.as_slice());
    eprintln!(
        "CG n={n}: {} iterations, residual {:.2e}, rel err vs Cholesky {e:.2e}",
        r.iterations, r.rel_residual
    );
    assert_eq!(r.stop, CgStop::Converged);
    assert!(r.rel_residual <= 1e-11);
    assert!(e < 1e-9, "rel err {e}");

    // Warm start at the solution: converged without iterating.
    let r2 = conjugate_gradient(dense_op(&a), &flat_tensor(&b), &opts, Some(&r.x)).unwrap();
    assert_eq!((r2.iterations, r2.stop.clone()), (0, CgStop::Converged));
    // Iteration cap respected and reported; zero right-hand side short-circuits.
    let capped = CgOptions {
        max_iters: 3,
        ..opts.clone()
    };
    let r3 = conjugate_gradient(dense_op(&a), &flat_tensor(&b), &capped, None).unwrap();
    assert_eq!((r3.iterations, r3.stop), (3, CgStop::MaxIterations));
    assert!(r3.rel_residual > 1e-6);
    let r4 = conjugate_gradient(dense_op(&a), &flat_tensor(&vec![0.0; n]), &opts, None).unwrap();
    assert_eq!(r4.stop, CgStop::ZeroRhs);
    // Shape errors.
    assert!(
        conjugate_gradient(
            dense_op(&a),
            &flat_tensor(&b),
            &opts,
            Some(&flat_tensor(&[1.0]))
        )
        .is_err()
    );
}

#[test]
fn cg_stops_on_non_positive_curvature() {
    // diag(1, 2, -3): b's component along the negative eigenvector makes pᵀAp <= 0 at some
    // step; CG must stop, report it, and return a finite iterate.
    let a = DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 2.0, -3.0]));
    let b = [1.0, 1.0, 0.5];
    let r =
        conjugate_gradient(dense_op(&a), &flat_tensor(&b), &CgOptions::default(), None).unwrap();
    eprintln!("indefinite CG: {:?} after {} its", r.stop, r.iterations);
    match r.stop {
        CgStop::NonPositiveCurvature { curvature } => assert!(curvature <= 0.0),
        s => panic!("expected non-positive curvature, got {s:?}"),
    }
    // The first step (pᵀAp = 2.25 > 0) was taken, so the iterate moved off the start point.
    assert!(r.iterations >= 2);
    assert!(to_vec(&r.x).iter().any(|x| *x != 0.0));
    assert!(to_vec(&r.x).iter().all(|x| x.is_finite()));
    // First direction already has negative curvature: the start point (0) is returned.
    let r = conjugate_gradient(
        dense_op(&a),
        &flat_tensor(&[0.0, 0.0, 1.0]),
        &CgOptions::default(),
        None,
    )
    .unwrap();
    assert_eq!(r.iterations, 1);
    assert_eq!(to_vec(&r.x), vec![0.0; 3]);
    assert!(matches!(r.stop, CgStop::NonPositiveCurvature { .. }));
}

/// Dense `∂²L/∂w²` and `∂²L/∂θ∂w` built column by column from the matrix-free products.
fn dense_second_derivatives(p: &Problem) -> (DMatrix<f64>, DMatrix<f64>) {
    let (theta, w) = (p.theta(), p.w());
    let (nt, nw) = (autodiff::numel(&theta), autodiff::numel(&w));
    let gg = GradGraph::new(&p.critic_loss().unwrap(), &w).unwrap();
    let mut h = DMatrix::zeros(nw, nw);
    let mut m = DMatrix::zeros(nt, nw);
    for j in 0..nw {
        let mut e = vec![0.0; nw];
        e[j] = 1.0;
        let e = flat_tensor(&e);
        h.set_column(j, &DVector::from_vec(to_vec(&gg.hvp(&e).unwrap())));
        m.set_column(
            j,
            &DVector::from_vec(to_vec(&gg.mixed(&e, &theta).unwrap())),
        );
    }
    (h, m)
}

#[test]
fn stackelberg_gradient_matches_dense_formula() {
    autodiff::enable_second_order().unwrap();
    let p = Problem::new(DType::F64, Activation::Tanh).unwrap();
    let (theta, w) = (p.theta(), p.w());
    let (h, m) = dense_second_derivatives(&p);
    let asym = (&h - h.transpose()).norm() / h.norm();
    assert!(asym < 1e-12, "Hessian asymmetry {asym}");
    let min_eig = h.clone().symmetric_eigen().eigenvalues.min();
    // Smallest λ that keeps H + λI safely positive definite (the Hessian may be indefinite).
    let lambda = (-min_eig).max(0.0) + 0.5;
    let dj_dtheta = DVector::from_vec(flat_grad(&p.objective().unwrap(), &theta));
    let dj_dw = DVector::from_vec(flat_grad(&p.objective().unwrap(), &w));
    let a = &h + DMatrix::identity(h.nrows(), h.ncols()) * lambda;
    let u = a.clone().cholesky().unwrap().solve(&dj_dw);
    let expected = &dj_dtheta - &m * &u;

    let opts = ImplicitOptions {
        lambda,
        cg: CgOptions {
            max_iters: 4 * h.nrows(),
            rel_tol: 1e-13,
            true_residual: true,
        },
    };
    let sg = stackelberg_gradient(
        &p.objective().unwrap(),
        &p.critic_loss().unwrap(),
        None,
        &theta,
        &w,
        &opts,
        None,
    )
    .unwrap();
    let total = to_vec(&flatten(&sg.total).unwrap());
    let e = rel_err(&total, expected.as_slice());
    let e_u = rel_err(&to_vec(&sg.cg.x), u.as_slice());
    eprintln!(
        "Stackelberg gradient (min eig H {min_eig:.3e}, λ {lambda:.3}): {} CG its, residual \
         {:.1e}, rel err total {e:.2e}, u {e_u:.2e}; |implicit|/|direct| = {:.3}",
        sg.cg.iterations,
        sg.cg.rel_residual,
        norm(&to_vec(&flatten(&sg.implicit).unwrap())) / dj_dtheta.norm()
    );
    assert_eq!(sg.cg.stop, CgStop::Converged);
    assert!(e < 1e-9 && e_u < 1e-9, "rel err {e}, {e_u}");
    assert!(rel_err(&to_vec(&flatten(&sg.direct).unwrap()), dj_dtheta.as_slice()) < 1e-14);
    // The implicit term is not negligible here, so the test discriminates.
    assert!((&m * &u).norm() > 1e-3 * dj_dtheta.norm());

    // An explicit mixed loss equal to L gives the same answer; warm starting at the solution
    // needs no iterations.
    let loss = p.critic_loss().unwrap();
    let sg2 = stackelberg_gradient(
        &p.objective().unwrap(),
        &p.critic_loss().unwrap(),
        Some(&loss),
        &theta,
        &w,
        &opts,
        Some(&sg.cg.x),
    )
    .unwrap();
    assert_eq!(sg2.cg.iterations, 0);
    assert!(rel_err(&to_vec(&flatten(&sg2.total).unwrap()), &total) < 1e-12);
}

#[test]
fn stackelberg_gradient_lambda_to_infinity_is_plain_gradient() {
    autodiff::enable_second_order().unwrap();
    let p = Problem::new(DType::F64, Activation::Tanh).unwrap();
    let (theta, w) = (p.theta(), p.w());
    let (_, m) = dense_second_derivatives(&p);
    let dj_dw = DVector::from_vec(flat_grad(&p.objective().unwrap(), &w));
    let limit = &m * &dj_dw; // λ · implicit → (∂²L/∂θ∂w) ∂J/∂w
    let mut prev_gap = f64::INFINITY;
    for lambda in [1e2, 1e4, 1e6, 1e8] {
        let opts = ImplicitOptions {
            lambda,
            cg: CgOptions {
                max_iters: 50,
                rel_tol: 1e-12,
                true_residual: false,
            },
        };
        let sg = stackelberg_gradient(
            &p.objective().unwrap(),
            &p.critic_loss().unwrap(),
            None,
            &theta,
            &w,
            &opts,
            None,
        )
        .unwrap();
        let total = to_vec(&flatten(&sg.total).unwrap());
        let direct = to_vec(&flatten(&sg.direct).unwrap());
        let gap = rel_err(&total, &direct);
        let scaled: Vec<f64> = to_vec(&flatten(&sg.implicit).unwrap())
            .iter()
            .map(|x| x * lambda)
            .collect();
        let e_lim = rel_err(&scaled, limit.as_slice());
        eprintln!(
            "λ = {lambda:.0e}: |total - direct|/|direct| = {gap:.2e}, λ·implicit vs limit {e_lim:.2e}"
        );
        // The implicit term vanishes like 1/λ, with the predicted first-order coefficient.
        assert!(
            gap < prev_gap / 50.0 || gap < 1e-12,
            "gap {gap} after {prev_gap}"
        );
        assert!(e_lim < 1e3 / lambda, "λ {lambda}: {e_lim}");
        prev_gap = gap;
    }
    assert!(prev_gap < 1e-6);
}

#[test]
fn stackelberg_gradient_rejects_bad_input() {
    autodiff::enable_second_order().unwrap();
    let p = Problem::new(DType::F64, Activation::Tanh).unwrap();
    let (theta, w) = (p.theta(), p.w());
    let obj = p.objective().unwrap();
    let loss = p.critic_loss().unwrap();
    let mut opts = ImplicitOptions {
        lambda: -1.0,
        cg: CgOptions::default(),
    };
    assert!(stackelberg_gradient(&obj, &loss, None, &theta, &w, &opts, None).is_err());
    opts.lambda = 1.0;
    assert!(stackelberg_gradient(&obj, &loss, None, &[], &w, &opts, None).is_err());
    let not_scalar = p.critic.forward(&p.obs, &p.act).unwrap();
    assert!(stackelberg_gradient(&obj, &not_scalar, None, &theta, &w, &opts, None).is_err());
}

/// Second-order coverage of the Candle ops (and our composites) the trainers differentiate
/// twice: for each scalar function of a 6-vector, the HVP along a random direction against
/// central differences of the gradient, in f64.
#[test]
fn second_order_op_coverage() {
    autodiff::enable_second_order().unwrap();
    let dev = Device::Cpu;
    let x0 = [0.3f64, -1.2, 0.7, 2.1, -0.4, 1.5];
    let c = Tensor::new(&[1.0f64, -0.5, 2.0, 0.25, -1.5, 0.8], &dev).unwrap();
    let m = Tensor::new(&[[0.5f64, -1.0], [2.0, 0.3], [-0.7, 1.1]], &dev).unwrap();
    type F = fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>;
    let cases: Vec<(&str, F)> = vec![
        ("sigmoid", |w, c, _| {
            (candle_nn::ops::sigmoid(w)? * c)?.sum_all()
        }),
        ("softplus", |w, c, _| {
            (stackrl::nn::softplus(w)? * c)?.sum_all()
        }),
        ("tanh log-det", |w, c, _| {
            (stackrl::nn::tanh_log_abs_det_jacobian(w)? * c)?.sum_all()
        }),
        ("tanh", |w, c, _| (w.tanh()? * c)?.sum_all()),
        ("fast_tanh", |w, c, _| {
            (stackrl::nn::fast_tanh(w)? * c)?.sum_all()
        }),
        ("log_softmax", |w, c, _| {
            (candle_nn::ops::log_softmax(&w.reshape((2, 3))?, 1)? * c.reshape((2, 3))?)?.sum_all()
        }),
        ("softmax", |w, c, _| {
            (candle_nn::ops::softmax(&w.reshape((2, 3))?, 1)? * c.reshape((2, 3))?)?.sum_all()
        }),
        ("exp/log/sqrt/powf", |w, c, _| {
            let a = (w.exp()? * c)?.sum_all()?;
            let b = (w.sqr()? + 1.0)?.log()?.sum_all()?;
            let d = (w.sqr()? + 1.0)?.sqrt()?.powf(3.0)?.sum_all()?;
            (a + b)? + d
        }),
        ("minimum (twin-Q min)", |w, c, _| {
            (w.sqr()?.minimum(&(w * c)?)? * w)?.sum_all()
        }),
        ("clamp interior", |w, _, _| {
            (w.clamp(-5.0, 5.0)? * w.sqr()?)?.sum_all()
        }),
        ("matmul/broadcast/mean", |w, c, m| {
            let y = w.reshape((2, 3))?.matmul(m)?.tanh()?;
            let y = y.broadcast_add(&c.narrow(0, 0, 2)?)?;
            y.sqr()?.mean_all()
        }),
    ];
    let v = [0.9f64, 0.1, -0.6, 0.4, 1.3, -0.2];
    let vt = Tensor::new(&v, &dev).unwrap();
    for (name, f) in cases {
        let w = Var::new(&x0, &dev).unwrap();
        let loss = f(w.as_tensor(), &c, &m).unwrap();
        let hv = to_vec(
            &GradGraph::new(&loss, std::slice::from_ref(&w))
                .unwrap()
                .hvp(&vt)
                .unwrap(),
        );
        let h = 1e-5;
        let grad_at = |s: f64| {
            let x: Vec<f64> = x0.iter().zip(&v).map(|(a, d)| a + s * h * d).collect();
            let wv = Var::new(x.as_slice(), &dev).unwrap();
            flat_grad(&f(wv.as_tensor(), &c, &m).unwrap(), &[wv])
        };
        let (gp, gm) = (grad_at(1.0), grad_at(-1.0));
        let fd: Vec<f64> = gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| (a - b) / (2.0 * h))
            .collect();
        let e = rel_err(&hv, &fd);
        eprintln!("second order through {name}: rel err {e:.1e}");
        assert!(e < 1e-7, "{name}: rel err {e}");
    }
    // candle_nn::ops::softmax_last_dim records no graph (apply_op1_no_bwd): gradients through
    // it are silently missing, not an error. Use candle_nn::ops::softmax.
    let w = Var::new(&x0, &dev).unwrap();
    let sm = candle_nn::ops::softmax_last_dim(&w.as_tensor().reshape((2, 3)).unwrap()).unwrap();
    let loss = (sm * c.reshape((2, 3)).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    assert!(loss.backward().unwrap().get(w.as_tensor()).is_none());
}
