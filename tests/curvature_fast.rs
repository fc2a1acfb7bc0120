//! The fast curvature engine (`nn::rop`, `CurvatureEngine::Fast`) against the generic double
//! backward (`CurvatureEngine::Autodiff`, itself checked against f64 finite differences in
//! `tests/nn_autodiff.rs`, `tests/sac_algos.rs` and `tests/stac_implicit.rs`):
//!
//! * MLP Hessian-vector products (exact and Gauss-Newton) and Jacobian-vector products for
//!   ReLU, tanh and fast-tanh networks, several random directions, f64 and f32;
//! * Stack-SAC's eq. (43) pieces (CG solution, mixed term, total) on twin critics, and whole
//!   Stack-SAC updates from the same seed;
//! * STAC's eq. (19) pieces on CartPole, and whole STAC epochs from the same seed.
#![cfg(feature = "trainer")]

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::VarMap;
use stackrl::algos::{
    Algo, CriticHessian, OnPolicyAgent, OnPolicyAlgo, OnPolicyConfig, Precision, SacAgent,
    SacConfig, StacConfig, StacEstimator, StackHessian, stac, stack_sac,
};
use stackrl::autodiff::{self, CurvatureEngine, GradGraph, flatten};
use stackrl::envs;
use stackrl::nn::{Activation, Mlp, MlpConfig, MlpCurvature, Residual};
use stackrl::replay::ReplayBuffer;
use stackrl::rng::Rng;

fn to_vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn flat(ts: &[Tensor]) -> Vec<f64> {
    to_vec(&flatten(ts).unwrap())
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let den = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    assert!(den > 0.0, "reference is zero");
    num / den
}

fn values(vars: &[Var]) -> Vec<f64> {
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    flat(&ts)
}

/// A `5 → 7 → 6 → 1` network, a batch of 9 inputs and targets.
fn problem(act: Activation, dtype: DType, seed: u64) -> (Mlp, Tensor, Tensor) {
    let mut rng = Rng::seed_from_u64(seed);
    let vm = VarMap::new();
    let cfg = MlpConfig::new(5, &[7, 6], 1, act);
    let net = Mlp::new(&cfg, &vm, "net", dtype, &Device::Cpu, &mut rng).unwrap();
    let x = rng
        .normal_tensor((9, 5), 0.0, 1.0, dtype, &Device::Cpu)
        .unwrap();
    let y = rng.normal_tensor(9, 0.0, 1.0, dtype, &Device::Cpu).unwrap();
    (net, x, y)
}

fn direction(vars: &[Var], rng: &mut Rng) -> Vec<Tensor> {
    vars.iter()
        .map(|v| {
            rng.normal_tensor(v.shape(), 0.0, 1.0, v.dtype(), &Device::Cpu)
                .unwrap()
        })
        .collect()
}

/// `(scale/2) Σ (f − y)²`, or its Gauss-Newton form `(scale/2) Σ (f − sg f)²`, by Candle ops.
fn reference_loss(net: &Mlp, x: &Tensor, y: &Tensor, scale: f64, r: Residual) -> Tensor {
    let f = net.forward(x).unwrap().squeeze(D::Minus1).unwrap();
    let target = match r {
        Residual::Exact => y.clone(),
        Residual::Zero => f.detach(),
    };
    ((&f - target).unwrap().sqr().unwrap().sum_all().unwrap() * (scale / 2.0)).unwrap()
}

fn check_mlp(act: Activation, dtype: DType, tol: f64) {
    autodiff::enable_second_order().unwrap();
    let (net, x, y) = problem(act, dtype, 3);
    let scale = 0.37;
    let mut rng = Rng::seed_from_u64(11);
    for residual in [Residual::Exact, Residual::Zero] {
        let fast = MlpCurvature::new(&net, &x, &y, scale, residual).unwrap();
        assert_eq!(
            to_vec(fast.output()),
            to_vec(&net.forward(&x).unwrap().squeeze(D::Minus1).unwrap())
        );
        let gg =
            GradGraph::new(&reference_loss(&net, &x, &y, scale, residual), net.vars()).unwrap();
        for _ in 0..4 {
            let v = direction(net.vars(), &mut rng);
            let (hv, jvp) = fast.hvp_jvp(&v).unwrap();
            let want = to_vec(&gg.hvp(&flatten(&v).unwrap()).unwrap());
            let e = rel_err(&flat(&hv), &want);
            assert!(
                e < tol,
                "{act:?} {dtype:?} {residual:?}: HVP rel. error {e:.2e}"
            );
            // JVP against the directional derivative of the outputs, by central differences
            // in f64 (f32: by the vector-Jacobian product Σ_b ∂f_b/∂w · v per sample).
            let jvp = to_vec(&jvp);
            assert_eq!(jvp, to_vec(&fast.jvp(&v).unwrap()));
            let reference: Vec<f64> = (0..9)
                .map(|b| {
                    let fb = net
                        .forward(&x.narrow(0, b, 1).unwrap())
                        .unwrap()
                        .sum_all()
                        .unwrap();
                    let g = autodiff::grads(&fb, net.vars()).unwrap();
                    flat(&g).iter().zip(flat(&v)).map(|(g, v)| g * v).sum()
                })
                .collect();
            let e = rel_err(&jvp, &reference);
            assert!(e < tol, "{act:?} {dtype:?}: JVP rel. error {e:.2e}");
        }
    }
}

#[test]
fn mlp_products_match_double_backward_f64() {
    for act in [Activation::Relu, Activation::Tanh, Activation::FastTanh] {
        check_mlp(act, DType::F64, 1e-10);
    }
}

#[test]
fn mlp_products_match_double_backward_f32() {
    for act in [Activation::Relu, Activation::Tanh, Activation::FastTanh] {
        check_mlp(act, DType::F32, 1e-4);
    }
}

#[test]
fn curvature_rejects_bad_shapes() {
    let (net, x, y) = problem(Activation::Tanh, DType::F64, 1);
    assert!(
        MlpCurvature::new(&net, &x, &y.narrow(0, 0, 4).unwrap(), 1.0, Residual::Exact).is_err()
    );
    let fast = MlpCurvature::new(&net, &x, &y, 1.0, Residual::Exact).unwrap();
    let mut v: Vec<Tensor> = net
        .vars()
        .iter()
        .map(|v| v.as_tensor().zeros_like().unwrap())
        .collect();
    v.pop();
    assert!(fast.hvp(&v).is_err());
}

// ---- Stack-SAC ---------------------------------------------------------------------------

const OBS: usize = 3;
const ACT: usize = 2;

fn sac_config(act: Activation, hessian: StackHessian, engine: CurvatureEngine) -> SacConfig {
    SacConfig {
        hidden: vec![16, 12],
        activation: act,
        batch_size: 24,
        init_alpha: 0.7,
        eta: 0.5,
        cg_iters: 10,
        cg_tol: 0.0,
        stack_hessian: hessian,
        curvature: engine,
        ..SacConfig::default()
    }
}

fn sac_agent(cfg: &SacConfig, dtype: DType, seed: u64) -> SacAgent {
    let mut rng = Rng::seed_from_u64(seed);
    SacAgent::new(
        Algo::StackSac,
        cfg,
        OBS,
        &[-2.0, -1.0],
        &[2.0, 0.5],
        dtype,
        &mut rng,
    )
    .unwrap()
}

fn replay(n: usize, seed: u64) -> ReplayBuffer {
    let mut rng = Rng::seed_from_u64(seed);
    let mut buf = ReplayBuffer::new(n, OBS, ACT).unwrap();
    for i in 0..n {
        let mut o = [0f32; OBS];
        let mut n2 = [0f32; OBS];
        rng.fill_normal_f32(&mut o);
        rng.fill_normal_f32(&mut n2);
        let a = [
            rng.uniform_range(-2.0, 2.0).unwrap() as f32,
            rng.uniform_range(-1.0, 0.5).unwrap() as f32,
        ];
        buf.push(&o, &a, rng.normal_f64() as f32, &n2, i % 3 == 0)
            .unwrap();
    }
    buf
}

#[test]
fn stack_sac_gradient_fast_equals_autodiff() {
    autodiff::enable_second_order().unwrap();
    let buf = replay(200, 5);
    for act in [Activation::Relu, Activation::Tanh] {
        for (hessian, eta) in [
            (StackHessian::Exact, 0.5),
            // η large enough for all 10 CG iterations to run.
            (StackHessian::Exact, 50.0),
            (StackHessian::GaussNewton, 0.5),
        ] {
            let mut cfg = sac_config(act, hessian, CurvatureEngine::Autodiff);
            cfg.eta = eta;
            let mut agent = sac_agent(&cfg, DType::F64, 2);
            let mut rng = Rng::seed_from_u64(9);
            let b = agent.sample_batch(&buf, &mut rng).unwrap();
            let eps = agent.noise(&mut rng, 24).unwrap();
            let eps_next = agent.noise(&mut rng, 24).unwrap();
            let warm = {
                let n = autodiff::numel(&agent.critic().vars());
                rng.normal_tensor(n, 0.0, 0.1, DType::F64, &Device::Cpu)
                    .unwrap()
            };
            let l = stack_sac::losses(&agent, &b, &eps, &eps_next).unwrap();
            let want = stack_sac::stackelberg_gradient(&agent, &l, Some(&warm)).unwrap();
            let parts = stack_sac::actor_parts(&agent, &b, &eps).unwrap();
            let got =
                stack_sac::fast_stackelberg_gradient(&agent, &b, &parts, &eps_next, Some(&warm))
                    .unwrap();
            let tag = format!(
                "{act:?} {hessian:?} η={eta} ({} CG its)",
                want.cg.iterations
            );
            assert_eq!(got.cg.iterations, want.cg.iterations, "{tag}");
            assert!(
                rel_err(&flat(&got.direct), &flat(&want.direct)) < 1e-12,
                "{tag}"
            );
            let e_u = rel_err(&to_vec(&got.cg.x), &to_vec(&want.cg.x));
            let e_mixed = rel_err(&flat(&got.implicit), &flat(&want.implicit));
            let e_total = rel_err(&flat(&got.total), &flat(&want.total));
            eprintln!("{tag}: u {e_u:.1e}, mixed {e_mixed:.1e}, total {e_total:.1e}");
            assert!(e_u < 1e-8 && e_mixed < 1e-8 && e_total < 1e-8, "{tag}");
            // The mixed term is not trivially zero.
            assert!(flat(&want.implicit).iter().any(|x| x.abs() > 1e-6), "{tag}");
        }
    }
}

/// Runs `rounds` Stack-SAC updates and returns the actor and critic weights.
fn stack_sac_run(cfg: &SacConfig, dtype: DType, rounds: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let buf = replay(300, 5);
    let mut agent = sac_agent(cfg, dtype, 4);
    let mut rng = Rng::seed_from_u64(13);
    let mut cg = Vec::new();
    for _ in 0..rounds {
        let s = stackrl::algos::update(&mut agent, &buf, &mut rng).unwrap();
        cg.push(s.cg_iters.unwrap());
    }
    (
        values(agent.actor().vars()),
        values(&agent.critic().vars()),
        cg,
    )
}

#[test]
fn stack_sac_updates_fast_equal_autodiff() {
    autodiff::enable_second_order().unwrap();
    for (dtype, tol) in [(DType::F64, 1e-9), (DType::F32, 1e-3)] {
        for act in [Activation::Relu, Activation::Tanh] {
            let mut cfg = sac_config(act, StackHessian::Exact, CurvatureEngine::Fast);
            cfg.cg_tol = 1e-4;
            let (a_f, c_f, cg_f) = stack_sac_run(&cfg, dtype, 5);
            cfg.curvature = CurvatureEngine::Autodiff;
            let (a_r, c_r, cg_r) = stack_sac_run(&cfg, dtype, 5);
            let (ea, ec) = (rel_err(&a_f, &a_r), rel_err(&c_f, &c_r));
            eprintln!(
                "{dtype:?} {act:?}: actor {ea:.1e}, critic {ec:.1e}, CG {cg_f:?} vs {cg_r:?}"
            );
            assert!(ea < tol && ec < tol, "{dtype:?} {act:?}: {ea:.1e} {ec:.1e}");
            // Same seed, same engine: identical.
            cfg.curvature = CurvatureEngine::Fast;
            assert_eq!(
                stack_sac_run(&cfg, dtype, 2).0,
                stack_sac_run(&cfg, dtype, 2).0
            );
        }
    }
}

#[test]
fn curvature_batch_is_validated_and_used() {
    autodiff::enable_second_order().unwrap();
    let mut cfg = sac_config(Activation::Relu, StackHessian::Exact, CurvatureEngine::Fast);
    for bad in [0, 25] {
        cfg.curvature_batch = Some(bad);
        let mut rng = Rng::seed_from_u64(0);
        let r = SacAgent::new(
            Algo::StackSac,
            &cfg,
            OBS,
            &[-1.0; ACT],
            &[1.0; ACT],
            DType::F64,
            &mut rng,
        );
        assert!(r.is_err(), "curvature_batch {bad}");
    }
    cfg.curvature_batch = Some(8);
    cfg.curvature = CurvatureEngine::Autodiff;
    let mut rng = Rng::seed_from_u64(0);
    assert!(
        SacAgent::new(
            Algo::StackSac,
            &cfg,
            OBS,
            &[-1.0; ACT],
            &[1.0; ACT],
            DType::F64,
            &mut rng
        )
        .is_err()
    );
    // A sub-sample gives a different (approximate) step; the whole batch as "sub-sample"
    // gives the exact one.
    cfg.curvature = CurvatureEngine::Fast;
    let sub = stack_sac_run(&cfg, DType::F64, 2).0;
    cfg.curvature_batch = Some(24);
    let whole = stack_sac_run(&cfg, DType::F64, 2).0;
    cfg.curvature_batch = None;
    assert_eq!(whole, stack_sac_run(&cfg, DType::F64, 2).0);
    assert!(rel_err(&sub, &whole) > 1e-9);
}

// ---- STAC --------------------------------------------------------------------------------

fn stac_config(lambda: f64, hessian: CriticHessian, engine: CurvatureEngine) -> OnPolicyConfig {
    OnPolicyConfig {
        algo: OnPolicyAlgo::Stac,
        steps_per_epoch: 300,
        precision: Precision::F64,
        hidden: vec![16, 16],
        activation: Activation::Tanh,
        critic_steps: 3,
        stac: StacConfig {
            lambda,
            hessian,
            cg_rel_tol: 0.0,
            warm_start: true,
            curvature: engine,
            ..StacConfig::default()
        },
        ..OnPolicyConfig::default()
    }
}

fn stac_agent(cfg: OnPolicyConfig) -> (OnPolicyAgent, Box<dyn envs::Env>, Rng) {
    let env = envs::make("CartPole-v1").unwrap();
    let mut rng = Rng::seed_from_u64(21);
    let a = OnPolicyAgent::new(cfg, env.observation_space(), env.action_space(), &mut rng).unwrap();
    (a, env, rng)
}

#[test]
fn stac_direction_fast_equals_autodiff() {
    autodiff::enable_second_order().unwrap();
    let cases = [
        (CriticHessian::Exact, StacEstimator::Exact),
        (CriticHessian::GaussNewton, StacEstimator::Exact),
        (CriticHessian::Exact, StacEstimator::Paper),
    ];
    for (hessian, estimator) in cases {
        // λ large enough that H + λI is positive definite and CG runs all 10 iterations.
        for lambda in [20.0, 500.0] {
            let mut cfg = stac_config(lambda, hessian, CurvatureEngine::Fast);
            cfg.stac.estimator = estimator;
            let (mut a, mut env, mut rng) = stac_agent(cfg);
            let data = a.collect_epoch(env.as_mut(), &mut rng).unwrap();
            let batch = a.prepare(&data).unwrap();
            let (got, obj) = stac::fast_direction(&a, &batch).unwrap();
            let (want, l) = stac::autodiff_direction(&a, &batch).unwrap();
            let tag = format!("{hessian:?} {estimator:?} λ={lambda}");
            assert_eq!(to_vec(&obj), to_vec(&l.actor_objective), "{tag}");
            assert_eq!(got.cg.iterations, want.cg.iterations, "{tag}");
            let e_u = rel_err(&to_vec(&got.cg.x), &to_vec(&want.cg.x));
            let e_mixed = rel_err(&flat(&got.implicit), &flat(&want.implicit));
            let e_total = rel_err(&flat(&got.total), &flat(&want.total));
            eprintln!(
                "{tag}: u {e_u:.1e}, mixed {e_mixed:.1e}, total {e_total:.1e} ({} its, {:?})",
                want.cg.iterations, want.cg.stop
            );
            assert!(e_u < 1e-8 && e_mixed < 1e-8 && e_total < 1e-8, "{tag}");
            assert!(flat(&want.implicit).iter().any(|x| x.abs() > 1e-8), "{tag}");
        }
    }
}

fn stac_epochs(engine: CurvatureEngine, precision: Precision) -> (Vec<f64>, Vec<f64>) {
    let mut cfg = stac_config(5.0, CriticHessian::Exact, engine);
    cfg.precision = precision;
    let (mut a, mut env, mut rng) = stac_agent(cfg);
    for _ in 0..3 {
        let data = a.collect_epoch(env.as_mut(), &mut rng).unwrap();
        a.update(&data).unwrap();
    }
    (values(a.policy().vars()), values(a.critic().vars()))
}

#[test]
fn stac_epochs_fast_equal_autodiff() {
    autodiff::enable_second_order().unwrap();
    for (precision, tol) in [(Precision::F64, 1e-9), (Precision::F32, 1e-3)] {
        let (pf, cf) = stac_epochs(CurvatureEngine::Fast, precision);
        let (pr, cr) = stac_epochs(CurvatureEngine::Autodiff, precision);
        let (ep, ec) = (rel_err(&pf, &pr), rel_err(&cf, &cr));
        eprintln!("{precision:?}: policy {ep:.1e}, critic {ec:.1e}");
        assert!(ep < tol && ec < tol, "{precision:?}: {ep:.1e} {ec:.1e}");
    }
}

#[test]
fn sub_sampled_hvp_is_the_hessian_of_the_first_rows() {
    for act in [Activation::Relu, Activation::Tanh] {
        let (net, x, y) = problem(act, DType::F64, 8);
        let mut rng = Rng::seed_from_u64(2);
        let v = flatten(&direction(net.vars(), &mut rng)).unwrap();
        for residual in [Residual::Exact, Residual::Zero] {
            let full = MlpCurvature::new(&net, &x, &y, 1.0 / 9.0, residual).unwrap();
            let (got, jvp) = full.hvp_jvp_rows(&v, 4).unwrap();
            let (x4, y4) = (x.narrow(0, 0, 4).unwrap(), y.narrow(0, 0, 4).unwrap());
            let part = MlpCurvature::new(&net, &x4, &y4, 1.0 / 4.0, residual).unwrap();
            let (want, jvp4) = part.hvp_jvp_flat(&v).unwrap();
            let e = rel_err(&to_vec(&got), &to_vec(&want));
            assert!(e < 1e-12, "{act:?} {residual:?}: {e:.1e}");
            assert_eq!(to_vec(&jvp), to_vec(&jvp4));
            assert!(full.hvp_jvp_rows(&v, 0).is_err() && full.hvp_jvp_rows(&v, 10).is_err());
        }
    }
}
