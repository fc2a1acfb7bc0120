//! MLP initialisation, activations, and the policies' log-probabilities against closed forms
//! computed independently in f64.
#![cfg(feature = "trainer")]

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarMap;
use stackrl::nn::{
    Activation, CategoricalPolicy, DiagGaussianPolicy, LogStdBound, Mlp, MlpConfig,
    SquashedGaussianActor, SquashedGaussianConfig, fast_tanh,
};
use stackrl::rng::Rng;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2().unwrap()
}

fn vec1(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

#[test]
fn mlp_init_is_pytorch_default_and_reproducible() {
    let dev = Device::Cpu;
    let cfg = MlpConfig::new(400, &[300], 5, Activation::Relu);
    let vm = VarMap::new();
    let net = Mlp::new(
        &cfg,
        &vm,
        "net",
        DType::F32,
        &dev,
        &mut Rng::seed_from_u64(0),
    )
    .unwrap();
    assert_eq!(net.num_params(), 400 * 300 + 300 + 300 * 5 + 5);
    assert_eq!(vm.all_vars().len(), 4);
    for (k, fan_in) in [(0usize, 400f64), (2, 300.0)] {
        let bound = 1.0 / fan_in.sqrt();
        let w: Vec<f64> = vec1(&net.vars()[k].as_tensor().flatten_all().unwrap());
        let b: Vec<f64> = vec1(net.vars()[k + 1].as_tensor());
        assert!(w.iter().chain(&b).all(|x| x.abs() <= bound));
        // U(-c, c) has variance c²/3.
        let var = w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64;
        let rel = (var / (bound * bound / 3.0) - 1.0).abs();
        assert!(rel < 0.05, "layer {k}: variance off by {rel}");
    }
    // Same seed, same weights; also across dtypes (drawn in f64, then rounded).
    let net2 = Mlp::new(
        &cfg,
        &VarMap::new(),
        "net",
        DType::F64,
        &dev,
        &mut Rng::seed_from_u64(0),
    )
    .unwrap();
    for (a, b) in net.vars().iter().zip(net2.vars()) {
        let a = vec1(&a.as_tensor().flatten_all().unwrap());
        let b = vec1(&b.as_tensor().flatten_all().unwrap());
        assert!(a.iter().zip(&b).all(|(x, y)| *x == (*y as f32) as f64));
    }
    // Errors: duplicate names, bad sizes, wrong input width.
    assert!(
        Mlp::new(
            &cfg,
            &vm,
            "net",
            DType::F32,
            &dev,
            &mut Rng::seed_from_u64(0)
        )
        .is_err()
    );
    let bad = MlpConfig::new(3, &[0], 1, Activation::Relu);
    assert!(
        Mlp::new(
            &bad,
            &VarMap::new(),
            "x",
            DType::F32,
            &dev,
            &mut Rng::seed_from_u64(0)
        )
        .is_err()
    );
    assert!(
        net.forward(&Tensor::zeros((2, 3), DType::F32, &dev).unwrap())
            .is_err()
    );
    let y = net
        .forward(&Tensor::zeros((2, 400), DType::F32, &dev).unwrap())
        .unwrap();
    assert_eq!(y.dims(), &[2, 5]);
}

#[test]
fn mlp_forward_matches_manual_computation() {
    let dev = Device::Cpu;
    let cfg = MlpConfig {
        sizes: vec![3, 4, 2],
        hidden_activation: Activation::Tanh,
        output_activation: Activation::Relu,
    };
    let net = Mlp::new(
        &cfg,
        &VarMap::new(),
        "n",
        DType::F64,
        &dev,
        &mut Rng::seed_from_u64(5),
    )
    .unwrap();
    let x = Rng::seed_from_u64(6)
        .normal_tensor((5, 3), 0.0, 1.0, DType::F64, &dev)
        .unwrap();
    let y = rows(&net.forward(&x).unwrap());
    let w1 = rows(net.vars()[0].as_tensor());
    let b1 = vec1(net.vars()[1].as_tensor());
    let w2 = rows(net.vars()[2].as_tensor());
    let b2 = vec1(net.vars()[3].as_tensor());
    for (xi, yi) in rows(&x).iter().zip(&y) {
        let h: Vec<f64> = (0..4)
            .map(|j| (b1[j] + (0..3).map(|k| w1[j][k] * xi[k]).sum::<f64>()).tanh())
            .collect();
        for o in 0..2 {
            let z = (b2[o] + (0..4).map(|j| w2[o][j] * h[j]).sum::<f64>()).max(0.0);
            assert!((z - yi[o]).abs() < 1e-14);
        }
    }
}

#[test]
fn fast_tanh_matches_tanh() {
    let dev = Device::Cpu;
    let xs: Vec<f64> = (0..=4000).map(|i| -20.0 + i as f64 * 0.01).collect();
    let t64 = Tensor::from_slice(&xs, xs.len(), &dev).unwrap();
    let f64_err = vec1(&fast_tanh(&t64).unwrap())
        .iter()
        .zip(&xs)
        .map(|(y, x)| (y - x.tanh()).abs())
        .fold(0.0, f64::max);
    let f32_err = vec1(&fast_tanh(&t64.to_dtype(DType::F32).unwrap()).unwrap())
        .iter()
        .zip(&xs)
        .map(|(y, x)| (y - (*x as f32 as f64).tanh()).abs())
        .fold(0.0, f64::max);
    eprintln!("fast_tanh max abs err: f64 {f64_err:.1e}, f32 {f32_err:.1e}");
    assert!(f64_err < 1e-15);
    assert!(f32_err < 5e-7);
}

fn box_config() -> SquashedGaussianConfig {
    SquashedGaussianConfig::new(
        4,
        &[16, 16],
        Activation::Relu,
        vec![-2.0, 0.0, -1.0],
        vec![2.0, 1.0, 3.0],
    )
}

/// `ln π(a|s)` by the change of variables, in f64, from the Gaussian parameters: the density
/// of `u` evaluated from `u` itself (not via `eps`), and `|da/du| = scale / cosh²(u)`.
fn closed_form_log_prob(mean: &[f64], log_std: &[f64], eps: &[f64], scale: &[f64]) -> f64 {
    (0..mean.len())
        .map(|i| {
            let std = log_std[i].exp();
            let u = mean[i] + std * eps[i];
            let z = (u - mean[i]) / std;
            let log_normal = -0.5 * z * z - std.ln() - 0.5 * LN_2PI;
            let log_jac = scale[i].ln() - 2.0 * u.cosh().ln();
            log_normal - log_jac
        })
        .sum()
}

fn check_squashed_log_prob(dtype: DType, eps_scale: f64) -> f64 {
    let dev = Device::Cpu;
    let cfg = box_config();
    let scale = [2.0, 0.5, 2.0];
    let bias = [0.0, 0.5, 1.0];
    let mut rng = Rng::seed_from_u64(11);
    let actor =
        SquashedGaussianActor::new(&cfg, &VarMap::new(), "pi", dtype, &dev, &mut rng).unwrap();
    let obs = rng.normal_tensor((64, 4), 0.0, 2.0, dtype, &dev).unwrap();
    let eps = rng
        .normal_tensor((64, 3), 0.0, eps_scale, dtype, &dev)
        .unwrap();
    let s = actor.sample_with_noise(&obs, &eps).unwrap();
    let (mean, log_std) = actor.mean_log_std(&obs).unwrap();
    let (mean, log_std, eps) = (rows(&mean), rows(&log_std), rows(&eps));
    let (act, lp, u) = (rows(&s.action), vec1(&s.log_prob), rows(&s.pre_tanh));
    let mut max_rel = 0f64;
    for i in 0..64 {
        let expected = closed_form_log_prob(&mean[i], &log_std[i], &eps[i], &scale);
        assert!(lp[i].is_finite());
        max_rel = max_rel.max((lp[i] - expected).abs() / expected.abs().max(1.0));
        for j in 0..3 {
            let a = scale[j] * u[i][j].tanh() + bias[j];
            assert!((act[i][j] - a).abs() <= 1e-6 * scale[j]);
            assert!(act[i][j] >= bias[j] - scale[j] && act[i][j] <= bias[j] + scale[j]);
            assert!((-5.0..=2.0).contains(&log_std[i][j]));
        }
    }
    max_rel
}

#[test]
fn squashed_gaussian_log_prob_matches_change_of_variables() {
    let e64 = check_squashed_log_prob(DType::F64, 1.0);
    let e32 = check_squashed_log_prob(DType::F32, 1.0);
    // Large |u| (saturated tanh): the naive ln(1 - tanh²) would be -inf in f32.
    let e32_sat = check_squashed_log_prob(DType::F32, 30.0);
    let e64_sat = check_squashed_log_prob(DType::F64, 30.0);
    eprintln!(
        "squashed log-prob max rel err: f64 {e64:.1e}, f32 {e32:.1e}, saturated f64 {e64_sat:.1e}, f32 {e32_sat:.1e}"
    );
    assert!(e64 < 1e-13 && e64_sat < 1e-13);
    assert!(e32 < 1e-5 && e32_sat < 1e-5);
}

#[test]
fn squashed_gaussian_sampling_deterministic_action_and_log_std_bounds() {
    let dev = Device::Cpu;
    let mut cfg = box_config();
    let build = |cfg: &SquashedGaussianConfig| {
        SquashedGaussianActor::new(
            cfg,
            &VarMap::new(),
            "pi",
            DType::F64,
            &dev,
            &mut Rng::seed_from_u64(2),
        )
        .unwrap()
    };
    let actor = build(&cfg);
    let obs = Rng::seed_from_u64(3)
        .normal_tensor((5, 4), 0.0, 1.0, DType::F64, &dev)
        .unwrap();
    // Sampling is reproducible from the RNG state.
    let a1 = rows(
        &actor
            .sample(&obs, &mut Rng::seed_from_u64(4))
            .unwrap()
            .action,
    );
    let a2 = rows(
        &actor
            .sample(&obs, &mut Rng::seed_from_u64(4))
            .unwrap()
            .action,
    );
    let a3 = rows(
        &actor
            .sample(&obs, &mut Rng::seed_from_u64(5))
            .unwrap()
            .action,
    );
    assert_eq!(a1, a2);
    assert_ne!(a1, a3);
    // Deterministic action = scale * tanh(mean) + bias.
    let (mean, _) = actor.mean_log_std(&obs).unwrap();
    let det = rows(&actor.deterministic(&obs).unwrap());
    let (scale, bias) = ([2.0, 0.5, 2.0], [0.0, 0.5, 1.0]);
    for (m, d) in rows(&mean).iter().zip(&det) {
        for j in 0..3 {
            assert!((d[j] - (scale[j] * m[j].tanh() + bias[j])).abs() < 1e-14);
        }
    }
    // Force the raw log-std: zero the last layer's weights and set its bias.
    let raw = [10.0f64, -10.0, 0.3];
    let set_raw = |actor: &SquashedGaussianActor| {
        let vars = actor.vars();
        let (w, b) = (&vars[vars.len() - 2], &vars[vars.len() - 1]);
        w.set(&w.as_tensor().zeros_like().unwrap()).unwrap();
        let bias = Tensor::new(&[0.0, 0.0, 0.0, raw[0], raw[1], raw[2]], &dev).unwrap();
        b.set(&bias).unwrap();
    };
    set_raw(&actor);
    let (_, ls) = actor.mean_log_std(&obs).unwrap();
    assert_eq!(rows(&ls)[0], vec![2.0, -5.0, 0.3]);
    cfg.log_std_bound = LogStdBound::Tanh;
    let actor = build(&cfg);
    set_raw(&actor);
    let (_, ls) = actor.mean_log_std(&obs).unwrap();
    for (j, r) in raw.iter().enumerate() {
        let expected = -5.0 + 3.5 * (r.tanh() + 1.0);
        assert!((rows(&ls)[0][j] - expected).abs() < 1e-14);
    }
    // Bad configurations are errors.
    let mut bad = box_config();
    bad.action_high[1] = -1.0;
    assert!(
        SquashedGaussianActor::new(
            &bad,
            &VarMap::new(),
            "pi",
            DType::F64,
            &dev,
            &mut Rng::seed_from_u64(0)
        )
        .is_err()
    );
    let mut bad = box_config();
    bad.action_high.pop();
    assert!(
        SquashedGaussianActor::new(
            &bad,
            &VarMap::new(),
            "pi",
            DType::F64,
            &dev,
            &mut Rng::seed_from_u64(0)
        )
        .is_err()
    );
    let wrong_noise = Tensor::zeros((5, 2), DType::F64, &dev).unwrap();
    assert!(actor.sample_with_noise(&obs, &wrong_noise).is_err());
}

#[test]
fn diag_gaussian_log_prob_entropy_and_sampling() {
    let dev = Device::Cpu;
    let cfg = MlpConfig::new(3, &[8], 2, Activation::Tanh);
    let mut rng = Rng::seed_from_u64(21);
    let pi = DiagGaussianPolicy::new(&cfg, -0.5, &VarMap::new(), "pi", DType::F64, &dev, &mut rng)
        .unwrap();
    pi.vars()[pi.vars().len() - 1]
        .set(&Tensor::new(&[-0.5, 0.25], &dev).unwrap())
        .unwrap();
    let obs = rng
        .normal_tensor((6, 3), 0.0, 1.0, DType::F64, &dev)
        .unwrap();
    let acts = rng
        .normal_tensor((6, 2), 0.0, 1.0, DType::F64, &dev)
        .unwrap();
    let lp = vec1(&pi.log_prob(&obs, &acts).unwrap());
    let mean = rows(&pi.mean(&obs).unwrap());
    let std = [(-0.5f64).exp(), 0.25f64.exp()];
    for (i, a) in rows(&acts).iter().enumerate() {
        // Product of 1-D normal densities, evaluated directly.
        let p: f64 = (0..2)
            .map(|j| {
                let z = (a[j] - mean[i][j]) / std[j];
                (-0.5 * z * z).exp() / (std[j] * (2.0 * std::f64::consts::PI).sqrt())
            })
            .product();
        assert!((lp[i] - p.ln()).abs() < 1e-12);
    }
    let h = pi.entropy().unwrap().to_scalar::<f64>().unwrap();
    let expected = (0..2)
        .map(|j| 0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E * std[j] * std[j]).ln())
        .sum::<f64>();
    assert!((h - expected).abs() < 1e-12);
    // Sample moments for one repeated state.
    let n = 20_000;
    let one = obs.narrow(0, 0, 1).unwrap().repeat((n, 1)).unwrap();
    let s = rows(&pi.sample(&one, &mut Rng::seed_from_u64(1)).unwrap());
    for j in 0..2 {
        let m = s.iter().map(|r| r[j]).sum::<f64>() / n as f64;
        let sd = (s.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!((m - mean[0][j]).abs() < 4.0 * std[j] / (n as f64).sqrt());
        assert!((sd / std[j] - 1.0).abs() < 0.03);
    }
    assert!(pi.log_prob(&obs, &acts.narrow(0, 0, 2).unwrap()).is_err());
}

#[test]
fn categorical_log_prob_entropy_and_sampling() {
    let dev = Device::Cpu;
    let cfg = MlpConfig::new(4, &[8], 3, Activation::Tanh);
    let mut rng = Rng::seed_from_u64(31);
    let pi =
        CategoricalPolicy::new(&cfg, &VarMap::new(), "pi", DType::F64, &dev, &mut rng).unwrap();
    let obs = rng
        .normal_tensor((5, 4), 0.0, 3.0, DType::F64, &dev)
        .unwrap();
    let logits = rows(&pi.logits(&obs).unwrap());
    let probs: Vec<Vec<f64>> = logits
        .iter()
        .map(|l| {
            let z: f64 = l.iter().map(|x| x.exp()).sum();
            l.iter().map(|x| x.exp() / z).collect()
        })
        .collect();
    let actions = [0u32, 2, 1, 1, 0];
    let lp = vec1(&pi.log_prob(&obs, &actions).unwrap());
    let ent = vec1(&pi.entropy(&obs).unwrap());
    for i in 0..5 {
        assert!((lp[i] - probs[i][actions[i] as usize].ln()).abs() < 1e-12);
        let h: f64 = -probs[i].iter().map(|p| p * p.ln()).sum::<f64>();
        assert!((ent[i] - h).abs() < 1e-12);
    }
    let all = pi
        .log_probs(&obs)
        .unwrap()
        .exp()
        .unwrap()
        .sum(D::Minus1)
        .unwrap();
    assert!(vec1(&all).iter().all(|s| (s - 1.0).abs() < 1e-12));
    let greedy = pi.greedy(&obs).unwrap();
    for (g, l) in greedy.iter().zip(&logits) {
        assert!(l.iter().all(|x| *x <= l[*g as usize]));
    }
    // Empirical frequencies for one state (5 sigma bound per action).
    let n = 30_000;
    let one = obs.narrow(0, 0, 1).unwrap().repeat((n, 1)).unwrap();
    let s = pi.sample(&one, &mut Rng::seed_from_u64(2)).unwrap();
    assert_eq!(s, pi.sample(&one, &mut Rng::seed_from_u64(2)).unwrap());
    for (k, p) in probs[0].iter().enumerate() {
        let f = s.iter().filter(|&&a| a as usize == k).count() as f64 / n as f64;
        assert!(
            (f - p).abs() < 5.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-9,
            "action {k}: {f} vs {p}"
        );
    }
    assert!(pi.log_prob(&obs, &[0, 1, 2, 3, 0]).is_err());
    assert!(pi.log_prob(&obs, &[0, 1]).is_err());
}
