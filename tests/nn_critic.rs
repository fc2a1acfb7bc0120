//! Critics, target networks (Polyak averaging), entropy tuning, and the Adam optimiser.
#![cfg(feature = "trainer")]

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use stackrl::nn::{
    Activation, Adam, AdamConfig, EntropyTuner, TwinQ, VCritic, polyak_update, target_entropy,
};
use stackrl::rng::Rng;

fn flat(vars: &[Var]) -> Vec<f64> {
    vars.iter()
        .flat_map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        })
        .collect()
}

fn random_vars(rng: &mut Rng, shapes: &[&[usize]]) -> Vec<Var> {
    shapes
        .iter()
        .map(|s| {
            Var::from_tensor(
                &rng.normal_tensor(s.to_vec(), 0.0, 1.0, DType::F64, &Device::Cpu)
                    .unwrap(),
            )
            .unwrap()
        })
        .collect()
}

#[test]
fn polyak_update_math() {
    let mut rng = Rng::seed_from_u64(1);
    let shapes: [&[usize]; 2] = [&[3, 4], &[4]];
    let target = random_vars(&mut rng, &shapes);
    let online = random_vars(&mut rng, &shapes);
    let (t0, o) = (flat(&target), flat(&online));
    let tau = 0.005;
    polyak_update(&target, &online, tau).unwrap();
    for ((t, t0), o) in flat(&target).iter().zip(&t0).zip(&o) {
        assert!((t - (tau * o + (1.0 - tau) * t0)).abs() < 1e-15);
    }
    // k updates towards a fixed online network: t_k = o + (1 - tau)^k (t_0 - o).
    for _ in 1..200 {
        polyak_update(&target, &online, tau).unwrap();
    }
    let decay = (1.0f64 - tau).powi(200);
    for ((t, t0), o) in flat(&target).iter().zip(&t0).zip(&o) {
        assert!((t - (o + decay * (t0 - o))).abs() < 1e-13);
    }
    // tau = 0 keeps, tau = 1 copies.
    let before = flat(&target);
    polyak_update(&target, &online, 0.0).unwrap();
    assert_eq!(flat(&target), before);
    polyak_update(&target, &online, 1.0).unwrap();
    assert_eq!(flat(&target), o);
    // Bad input.
    assert!(polyak_update(&target, &online, 1.5).is_err());
    assert!(polyak_update(&target, &online[..1], 0.1).is_err());
    assert!(polyak_update(&target[..1], &online[1..], 0.1).is_err());
}

#[test]
fn twin_q_targets_track_online_networks() {
    let dev = Device::Cpu;
    let mut rng = Rng::seed_from_u64(2);
    let q = TwinQ::new(
        5,
        2,
        &[16, 16],
        Activation::Relu,
        "q",
        DType::F64,
        &dev,
        &mut rng,
    )
    .unwrap();
    let obs = rng
        .normal_tensor((7, 5), 0.0, 1.0, DType::F64, &dev)
        .unwrap();
    let act = rng
        .uniform_tensor((7, 2), -1.0, 1.0, DType::F64, &dev)
        .unwrap();
    let v = |t: &Tensor| t.to_vec1::<f64>().unwrap();
    let (q1, q2) = q.forward(&obs, &act).unwrap();
    let (t1, t2) = q.target_forward(&obs, &act).unwrap();
    assert_eq!(q1.dims(), &[7]);
    assert_eq!((v(&q1), v(&q2)), (v(&t1), v(&t2)));
    assert_ne!(
        v(&q1),
        v(&q2),
        "the two critics must be initialised independently"
    );
    let m = v(&q.min_q(&obs, &act).unwrap());
    for ((m, a), b) in m.iter().zip(v(&q1)).zip(v(&q2)) {
        assert_eq!(*m, a.min(b));
    }
    assert_eq!(q.varmap().all_vars().len(), 12);
    assert_eq!(q.target_varmap().all_vars().len(), 12);

    // Train the online critics; the targets move only with soft_update.
    let target_before = flat(&q.target_vars());
    let mut opt = Adam::new(q.vars(), AdamConfig::with_lr(1e-2)).unwrap();
    let (q1, q2) = q.forward(&obs, &act).unwrap();
    let loss =
        (q1.sqr().unwrap().mean_all().unwrap() + q2.sqr().unwrap().mean_all().unwrap()).unwrap();
    opt.backward_step(&loss).unwrap();
    assert_eq!(flat(&q.target_vars()), target_before);
    let online = flat(&q.vars());
    assert_ne!(online, target_before);
    q.soft_update(0.005).unwrap();
    for ((t, t0), o) in flat(&q.target_vars())
        .iter()
        .zip(&target_before)
        .zip(&online)
    {
        assert!((t - (0.005 * o + 0.995 * t0)).abs() < 1e-15);
    }
    q.hard_update().unwrap();
    assert_eq!(flat(&q.target_vars()), online);
    assert!(q.forward(&obs, &obs).is_err());
}

#[test]
fn v_critic_with_and_without_target() {
    let dev = Device::Cpu;
    let mut rng = Rng::seed_from_u64(3);
    let v = VCritic::new(
        4,
        &[8],
        Activation::Tanh,
        true,
        "v",
        DType::F32,
        &dev,
        &mut rng,
    )
    .unwrap();
    let obs = rng
        .normal_tensor((3, 4), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let a = v.forward(&obs).unwrap();
    assert_eq!(a.dims(), &[3]);
    assert_eq!(
        a.to_vec1::<f32>().unwrap(),
        v.target_forward(&obs).unwrap().to_vec1::<f32>().unwrap()
    );
    v.soft_update(0.5).unwrap();
    let plain = VCritic::new(
        4,
        &[8],
        Activation::Tanh,
        false,
        "v",
        DType::F32,
        &dev,
        &mut rng,
    )
    .unwrap();
    assert!(plain.target_forward(&obs).is_err());
    assert!(plain.soft_update(0.1).is_err());
}

#[test]
fn entropy_tuning_target_and_gradient_direction() {
    assert_eq!(target_entropy(6), -6.0);
    assert_eq!(target_entropy(1), -1.0);
    let dev = Device::Cpu;
    let tuner = EntropyTuner::new(3, 0.5, DType::F64, &dev).unwrap();
    assert_eq!(tuner.target_entropy(), -3.0);
    assert!((tuner.alpha().unwrap() - 0.5).abs() < 1e-15);
    // loss = -ln α · mean(ln π + target); ∂loss/∂ln α = -mean(ln π + target).
    let log_prob = Tensor::new(&[-1.0f64, -2.0, -4.5], &dev).unwrap();
    let loss = tuner.loss(&log_prob).unwrap();
    let mean_shift = (-1.0 - 2.0 - 4.5) / 3.0 - 3.0;
    assert!((loss.to_scalar::<f64>().unwrap() - (-(0.5f64.ln()) * mean_shift)).abs() < 1e-14);
    let g = loss.backward().unwrap();
    let g = g
        .get(tuner.vars()[0].as_tensor())
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()[0];
    assert!((g - (-mean_shift)).abs() < 1e-14);
    // Entropy -mean(ln π) = 2.5 exceeds the target -3, so α must decrease.
    let mut opt = Adam::new(tuner.vars(), AdamConfig::with_lr(0.1)).unwrap();
    opt.backward_step(&tuner.loss(&log_prob).unwrap()).unwrap();
    assert!(tuner.alpha().unwrap() < 0.5);
    // And increase when the entropy is below target (ln π large); fresh Adam moments so the
    // first step follows the gradient sign.
    let low_entropy = Tensor::new(&[5.0f64, 6.0], &dev).unwrap();
    let before = tuner.alpha().unwrap();
    let mut opt = Adam::new(tuner.vars(), AdamConfig::with_lr(0.1)).unwrap();
    opt.backward_step(&tuner.loss(&low_entropy).unwrap())
        .unwrap();
    assert!(tuner.alpha().unwrap() > before);
    // The detached alpha does not carry gradient into ln α.
    assert_eq!(tuner.alpha_tensor().unwrap().dims(), &[] as &[usize]);
    assert!(EntropyTuner::new(2, 0.0, DType::F32, &dev).is_err());
}

/// A quadratic-plus-quartic loss with gradients that change sign across steps.
fn loss_of(x: &Var, step: usize) -> Tensor {
    let c = Tensor::new(&[1.0f64, -2.0, 0.5, 3.0], &Device::Cpu).unwrap();
    let shift = ((step as f64) * 0.7).sin();
    let d = (x.as_tensor() - (c * shift).unwrap()).unwrap();
    (d.sqr().unwrap().sum_all().unwrap() + (d.powf(4.0).unwrap().sum_all().unwrap() * 0.1).unwrap())
        .unwrap()
}

/// PyTorch's `torch.optim.Adam` single-tensor update written out in plain f64.
fn reference_adam(
    x0: &[f64],
    grads: impl Fn(&[f64], usize) -> Vec<f64>,
    steps: usize,
    c: &AdamConfig,
) -> Vec<f64> {
    let mut x = x0.to_vec();
    let mut m = vec![0.0; x.len()];
    let mut v = vec![0.0; x.len()];
    for t in 1..=steps {
        let g = grads(&x, t - 1);
        let bc1 = 1.0 - c.beta1.powi(t as i32);
        let bc2 = 1.0 - c.beta2.powi(t as i32);
        for i in 0..x.len() {
            m[i] += (g[i] - m[i]) * (1.0 - c.beta1);
            v[i] = v[i] * c.beta2 + g[i] * g[i] * (1.0 - c.beta2);
            let denom = v[i].sqrt() / bc2.sqrt() + c.eps;
            x[i] -= c.lr / bc1 * m[i] / denom;
        }
    }
    x
}

#[test]
fn adam_matches_pytorch_formula_and_candle_adamw_without_decay() {
    let cfg = AdamConfig {
        lr: 0.05,
        ..AdamConfig::default()
    };
    let x0 = [0.3f64, -0.1, 2.0, 0.0];
    let steps = 60;
    let ours = Var::new(&x0, &Device::Cpu).unwrap();
    let mut adam = Adam::new(vec![ours.clone()], cfg.clone()).unwrap();
    for t in 0..steps {
        adam.backward_step(&loss_of(&ours, t)).unwrap();
    }
    let theirs = Var::new(&x0, &Device::Cpu).unwrap();
    let params = candle_nn::ParamsAdamW {
        lr: cfg.lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        weight_decay: 0.0,
    };
    let mut adamw = candle_nn::AdamW::new(vec![theirs.clone()], params).unwrap();
    for t in 0..steps {
        adamw.backward_step(&loss_of(&theirs, t)).unwrap();
    }
    let grad_fn = |x: &[f64], t: usize| {
        let v = Var::new(x, &Device::Cpu).unwrap();
        let g = loss_of(&v, t).backward().unwrap();
        g.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap()
    };
    let reference = reference_adam(&x0, grad_fn, steps, &cfg);
    let (a, b) = (flat(&[ours]), flat(&[theirs]));
    let err_ref = a
        .iter()
        .zip(&reference)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let err_candle = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let moved = a
        .iter()
        .zip(&x0)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "Adam after {steps} steps: max |ours - PyTorch formula| {err_ref:.1e}, |ours - candle AdamW(wd=0)| {err_candle:.1e}, moved {moved:.2}"
    );
    assert!(moved > 0.5);
    assert!(err_ref < 1e-13);
    assert!(err_candle < 1e-12);
}

#[test]
fn adam_state_export_restore_and_explicit_gradients() {
    let dev = Device::Cpu;
    let x0 = [0.3f64, -0.1, 2.0, 0.0];
    let cfg = AdamConfig::with_lr(0.05);
    let a = Var::new(&x0, &dev).unwrap();
    let mut opt_a = Adam::new(vec![a.clone()], cfg.clone()).unwrap();
    for t in 0..10 {
        opt_a.backward_step(&loss_of(&a, t)).unwrap();
    }
    // Round-trip the state through a safetensors file, into a fresh optimiser over a copy.
    let path =
        std::env::temp_dir().join(format!("stackrl_adam_{}.safetensors", std::process::id()));
    candle_core::safetensors::save(&opt_a.state_tensors("opt").unwrap(), &path).unwrap();
    let loaded = candle_core::safetensors::load(&path, &dev).unwrap();
    std::fs::remove_file(&path).ok();
    let b = Var::from_tensor(&a.as_tensor().copy().unwrap()).unwrap();
    let mut opt_b = Adam::new(vec![b.clone()], cfg.clone()).unwrap();
    opt_b.load_state_tensors(&loaded, "opt").unwrap();
    // A fresh optimiser without the state diverges from the original.
    let c = Var::from_tensor(&a.as_tensor().copy().unwrap()).unwrap();
    let mut opt_c = Adam::new(vec![c.clone()], cfg.clone()).unwrap();
    for t in 10..20 {
        opt_a.backward_step(&loss_of(&a, t)).unwrap();
        // Explicit gradients through step_with (as the Stackelberg trainers do).
        let g = loss_of(&b, t)
            .backward()
            .unwrap()
            .get(b.as_tensor())
            .unwrap()
            .clone();
        opt_b.step_with(&[Some(g)]).unwrap();
        opt_c.backward_step(&loss_of(&c, t)).unwrap();
    }
    assert_eq!(flat(std::slice::from_ref(&a)), flat(&[b]));
    assert_ne!(flat(&[a]), flat(&[c]));
    // Bad state / gradients are errors.
    assert!(opt_b.load_state_tensors(&loaded, "other").is_err());
    assert!(opt_b.step_with(&[]).is_err());
    let wrong = Tensor::zeros(3, DType::F64, &dev).unwrap();
    assert!(opt_b.step_with(&[Some(wrong)]).is_err());
    assert!(Adam::new(vec![], AdamConfig { beta1: 1.0, ..cfg }).is_err());
}

#[test]
fn adam_skips_variables_without_gradient() {
    let dev = Device::Cpu;
    let used = Var::new(&[1.0f64], &dev).unwrap();
    let unused = Var::new(&[1.0f64], &dev).unwrap();
    let mut opt = Adam::new(vec![used.clone(), unused.clone()], AdamConfig::with_lr(0.1)).unwrap();
    for _ in 0..3 {
        opt.backward_step(&used.as_tensor().sqr().unwrap().sum_all().unwrap())
            .unwrap();
    }
    assert_eq!(flat(&[unused]), vec![1.0]);
    let steps = opt.state_tensors("s").unwrap()["s.steps"]
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(steps, vec![3.0, 0.0]);
    // First Adam step moves by exactly lr (bias-corrected m / sqrt(v) = sign(g)).
    let x = Var::new(&[1.0f64], &dev).unwrap();
    let mut opt = Adam::new(
        vec![x.clone()],
        AdamConfig {
            lr: 0.1,
            eps: 0.0,
            ..AdamConfig::default()
        },
    )
    .unwrap();
    opt.backward_step(&x.as_tensor().sqr().unwrap().sum_all().unwrap())
        .unwrap();
    assert!((flat(&[x])[0] - 0.9).abs() < 1e-15);
}
