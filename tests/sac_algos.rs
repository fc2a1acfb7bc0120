//! SAC, Res-SAC and Stack-SAC update math on tiny f64 problems: the soft Q target, the
//! Polyak update inside the critic step, the Algo-x-y schedule, Res-SAC's clipped residual
//! target, Stack-SAC's mixed term and full eq. (43) gradient against f64 central finite
//! differences, and the agent's state round trip / mismatch errors.
//! (Log-probabilities, Polyak math, replay wrap-around and generic HVP/CG checks live in
//! `tests/nn_*.rs`.)
#![cfg(feature = "trainer")]

use candle_core::{DType, Device, Tensor, Var};
use nalgebra::{DMatrix, DVector};
use stackrl::algos::{self, Algo, AlgoError, SacAgent, SacConfig, res_sac, stack_sac};
use stackrl::autodiff;
use stackrl::nn::Activation;
use stackrl::replay::{BatchTensors, ReplayBuffer};
use stackrl::rng::Rng;

const OBS: usize = 3;
const ACT: usize = 2;

fn config(hidden: usize, batch: usize) -> SacConfig {
    SacConfig {
        hidden: vec![hidden],
        activation: Activation::Tanh,
        batch_size: batch,
        init_alpha: 0.7,
        ..SacConfig::default()
    }
}

fn agent(algo: Algo, cfg: &SacConfig, seed: u64) -> SacAgent {
    let mut rng = Rng::seed_from_u64(seed);
    SacAgent::new(
        algo,
        cfg,
        OBS,
        &[-2.0, -1.0],
        &[2.0, 0.5],
        DType::F64,
        &mut rng,
    )
    .unwrap()
}

/// A replay buffer of random transitions, every third one terminal.
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

fn v1(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

fn row(t: &Tensor, i: usize) -> Tensor {
    t.narrow(0, i, 1).unwrap()
}

fn scalar0(t: &Tensor) -> f64 {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()[0]
}

#[test]
fn soft_q_target_matches_the_per_sample_formula() {
    let cfg = config(6, 8);
    let mut ag = agent(Algo::Sac, &cfg, 1);
    let buf = replay(40, 2);
    let mut rng = Rng::seed_from_u64(3);
    let b = ag.sample_batch(&buf, &mut rng).unwrap();
    let eps = ag.noise(&mut rng, 8).unwrap();
    let y = v1(&ag.soft_q_target(&b, &eps).unwrap());
    let alpha = ag.entropy().alpha().unwrap();
    assert!((alpha - 0.7).abs() < 1e-12);
    let (r, d) = (v1(&b.rewards), v1(&b.terminated));
    let mut terminal = 0;
    for i in 0..8 {
        // One sample at a time through the public networks.
        let s2 = row(&b.next_obs, i);
        let next = ag.actor().sample_with_noise(&s2, &row(&eps, i)).unwrap();
        let (q1, q2) = ag.critic().target_forward(&s2, &next.action).unwrap();
        let soft_v = scalar0(&q1).min(scalar0(&q2)) - alpha * scalar0(&next.log_prob);
        let expected = r[i] + 0.99 * (1.0 - d[i]) * soft_v;
        assert!(
            (y[i] - expected).abs() < 1e-12,
            "row {i}: {} vs {expected}",
            y[i]
        );
        if d[i] == 1.0 {
            terminal += 1;
            assert_eq!(y[i], r[i], "terminal transitions must not bootstrap");
        }
    }
    assert!(terminal > 0 && terminal < 8, "want both kinds in the batch");
}

fn flat(vars: &[Var]) -> Vec<f64> {
    vars.iter()
        .flat_map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        })
        .collect()
}

#[test]
fn critic_step_polyak_averages_the_targets_after_the_adam_step() {
    let cfg = SacConfig {
        tau: 0.3,
        ..config(5, 8)
    };
    let mut ag = agent(Algo::Sac, &cfg, 4);
    let buf = replay(30, 5);
    let mut rng = Rng::seed_from_u64(6);
    // Make target and online differ first.
    ag.critic_step(&buf, &mut rng).unwrap();
    let target_before = flat(&ag.critic().target_vars());
    let online_before = flat(&ag.critic().vars());
    let (_, stats) = ag.critic_step(&buf, &mut rng).unwrap();
    assert!(stats.loss.is_finite() && stats.td_abs_max >= stats.td_abs_mean);
    let online_after = flat(&ag.critic().vars());
    let target_after = flat(&ag.critic().target_vars());
    assert_ne!(online_before, online_after, "the critic must have moved");
    for ((t1, t0), o) in target_after.iter().zip(&target_before).zip(&online_after) {
        assert!((t1 - (0.3 * o + 0.7 * t0)).abs() < 1e-14);
    }
}

#[test]
fn algo_x_y_schedule_counts_updates_per_learner() {
    let buf = replay(50, 7);
    for (algo, x, y) in [
        (Algo::Sac, 1, 0),
        (Algo::Sac, 10, 0),
        (Algo::ResSac, 3, 2),
        (Algo::StackSac, 2, 0),
    ] {
        let cfg = SacConfig {
            critic_updates: x,
            res_updates: y,
            clip: (algo == Algo::ResSac).then_some(1.0),
            ..config(4, 6)
        };
        let mut ag = agent(algo, &cfg, 8);
        let mut rng = Rng::seed_from_u64(9);
        autodiff::enable_second_order().unwrap();
        for round in 1..=2u64 {
            let stats = algos::update(&mut ag, &buf, &mut rng).unwrap();
            assert!(stats.actor_loss.is_finite());
            let (actor, critic, res, alpha) = ag.optimizer_steps().unwrap();
            assert_eq!(actor, round, "{algo}-{x}-{y}: one actor step per round");
            assert_eq!(alpha, round);
            assert_eq!(critic, x as u64 * round, "{algo}-{x}-{y}: x critic steps");
            assert_eq!(res, (algo == Algo::ResSac).then_some(y as u64 * round));
            assert_eq!(stats.res_loss.is_some(), algo == Algo::ResSac);
            assert_eq!(stats.cg_iters.is_some(), algo == Algo::StackSac);
        }
    }
}

fn batch_and_noise(ag: &mut SacAgent, seed: u64) -> (BatchTensors, Tensor, Tensor) {
    let buf = replay(30, seed);
    let mut rng = Rng::seed_from_u64(seed + 1);
    let b = ag.sample_batch(&buf, &mut rng).unwrap();
    let n = b.obs.dim(0).unwrap();
    let e1 = ag.noise(&mut rng, n).unwrap();
    let e2 = ag.noise(&mut rng, n).unwrap();
    (b, e1, e2)
}

#[test]
fn res_sac_target_is_the_clipped_critic_residual_without_entropy() {
    // A large temperature: an entropy term in the target would be visible.
    let base = SacConfig {
        init_alpha: 5.0,
        clip: Some(1e9),
        res_updates: 1,
        ..config(6, 10)
    };
    // Residuals of this agent, unclipped, to pick a clip value that binds on some rows only.
    let mut probe = agent(Algo::ResSac, &base, 11);
    let (b, _, eps) = batch_and_noise(&mut probe, 12);
    let wide = res_sac::res_target(&probe, &b, &eps).unwrap();
    let mut abs: Vec<f64> = v1(&wide.delta).iter().map(|x| x.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let c = abs[abs.len() / 2];

    let cfg = SacConfig {
        clip: Some(c),
        ..base
    };
    let mut ag = agent(Algo::ResSac, &cfg, 11);
    // One round first so that W and its target (and Q and its target) differ.
    let buf = replay(30, 13);
    algos::update(&mut ag, &buf, &mut Rng::seed_from_u64(14)).unwrap();
    let (b, _, eps) = batch_and_noise(&mut ag, 12);
    let t = res_sac::res_target(&ag, &b, &eps).unwrap();
    let (target, delta, reward) = (v1(&t.target), v1(&t.delta), v1(&t.reward));
    let (r, d) = (v1(&b.rewards), v1(&b.terminated));
    let w = ag.res_critic().unwrap();
    let (mut clipped, mut free) = (0, 0);
    for i in 0..10 {
        let (s, a, s2) = (row(&b.obs, i), row(&b.actions, i), row(&b.next_obs, i));
        let a2 = ag
            .actor()
            .sample_with_noise(&s2, &row(&eps, i))
            .unwrap()
            .action;
        let (qt1, qt2) = ag.critic().target_forward(&s2, &a2).unwrap();
        let (q1, q2) = ag.critic().forward(&s, &a).unwrap();
        let disc = 0.99 * (1.0 - d[i]);
        let dl = r[i] + disc * scalar0(&qt1).min(scalar0(&qt2)) - scalar0(&q1).min(scalar0(&q2));
        assert!((delta[i] - dl).abs() < 1e-12, "δ row {i}");
        let rt = dl.clamp(-c, c);
        assert!((reward[i] - rt).abs() < 1e-12, "clipped reward row {i}");
        let w_next = scalar0(&w.target_forward(&s2, &a2).unwrap());
        let w_online = scalar0(&w.forward(&s2, &a2).unwrap());
        assert!(
            (w_next - w_online).abs() > 1e-9,
            "target and online W must differ here"
        );
        assert!(
            (target[i] - (rt + disc * w_next)).abs() < 1e-12,
            "row {i}: {} vs {}",
            target[i],
            rt + disc * w_next
        );
        if dl.abs() > c {
            clipped += 1;
        } else {
            free += 1;
        }
    }
    assert!(
        clipped > 0 && free > 0,
        "clipped {clipped}, unclipped {free}"
    );
}

fn set_flat(vars: &[Var], x: &[f64]) {
    let mut off = 0;
    for v in vars {
        let n = v.elem_count();
        let t = Tensor::from_slice(&x[off..off + n], v.shape(), &Device::Cpu).unwrap();
        v.set(&t).unwrap();
        off += n;
    }
}

fn grad_flat(loss: &Tensor, wrt: &[Var]) -> Vec<f64> {
    autodiff::grads(loss, wrt)
        .unwrap()
        .iter()
        .flat_map(|g| g.flatten_all().unwrap().to_vec1::<f64>().unwrap())
        .collect()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

#[test]
fn stack_sac_mixed_term_and_gradient_match_finite_differences() {
    autodiff::enable_second_order().unwrap();
    // η = 5 rather than the paper's 0.5: on this random tiny problem the semi-gradient
    // Hessian has eigenvalues near −2.4 (the residual term), and CG needs H + ηI positive
    // definite to reproduce the dense solve.
    let cfg = SacConfig {
        eta: 5.0,
        cg_iters: 400,
        cg_tol: 1e-13,
        cg_warm_start: false,
        ..config(4, 5)
    };
    let mut ag = agent(Algo::StackSac, &cfg, 21);
    let (b, eps, eps_next) = batch_and_noise(&mut ag, 22);
    let theta: Vec<Var> = ag.actor().vars().to_vec();
    let phi: Vec<Var> = ag.critic().vars();
    let (nt, np) = (autodiff::numel(&theta), autodiff::numel(&phi));
    let theta0 = flat(&theta);
    let losses = || stack_sac::losses(&ag, &b, &eps, &eps_next).unwrap();

    // (a) The mixed product (∂θ∂φ J_Q)ᵀ u against central differences of ∂φ J_Q · u.
    let mut rng = Rng::seed_from_u64(23);
    let u: Vec<f64> = (0..np).map(|_| rng.normal_f64()).collect();
    let u_t: Vec<Tensor> = {
        let mut off = 0;
        phi.iter()
            .map(|v| {
                let n = v.elem_count();
                let t = Tensor::from_slice(&u[off..off + n], v.shape(), &Device::Cpu).unwrap();
                off += n;
                t
            })
            .collect()
    };
    let mixed: Vec<f64> = autodiff::mixed_vp(|| Ok(losses().critic_loss_mixed), &theta, &phi, &u_t)
        .unwrap()
        .iter()
        .flat_map(|g| g.flatten_all().unwrap().to_vec1::<f64>().unwrap())
        .collect();
    let norm = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(
        norm(&mixed) > 1e-3 * norm(&u),
        "the mixed term must not vanish: the target depends on θ through a′"
    );
    let h = 1e-5;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut fd_mixed = vec![0.0; nt];
    for (j, fd) in fd_mixed.iter_mut().enumerate() {
        let mut x = theta0.clone();
        x[j] += h;
        set_flat(&theta, &x);
        let gp = dot(&grad_flat(&losses().critic_loss_mixed, &phi), &u);
        x[j] -= 2.0 * h;
        set_flat(&theta, &x);
        let gm = dot(&grad_flat(&losses().critic_loss_mixed, &phi), &u);
        *fd = (gp - gm) / (2.0 * h);
    }
    set_flat(&theta, &theta0);
    let e = rel_err(&mixed, &fd_mixed);
    assert!(
        e < 1e-6,
        "mixed term vs finite differences: relative error {e}"
    );
    // With the target detached the mixed term is exactly zero (why eq. 43 needs a′_θ).
    let zero: Vec<f64> =
        autodiff::mixed_vp(|| Ok(losses().critic_loss_hessian), &theta, &phi, &u_t)
            .unwrap()
            .iter()
            .flat_map(|g| g.flatten_all().unwrap().to_vec1::<f64>().unwrap())
            .collect();
    assert!(norm(&zero) == 0.0);

    // (b) The whole eq. (43) gradient against a dense f64 computation whose second
    // derivatives come from central differences of first-order gradients.
    let phi0 = flat(&phi);
    let mut hess = DMatrix::<f64>::zeros(np, np);
    for j in 0..np {
        let mut x = phi0.clone();
        x[j] += h;
        set_flat(&phi, &x);
        let gp = grad_flat(&losses().critic_loss_hessian, &phi);
        x[j] -= 2.0 * h;
        set_flat(&phi, &x);
        let gm = grad_flat(&losses().critic_loss_hessian, &phi);
        for i in 0..np {
            hess[(i, j)] = (gp[i] - gm[i]) / (2.0 * h);
        }
    }
    set_flat(&phi, &phi0);
    let hess = (&hess + hess.transpose()) * 0.5;
    let reg = &hess + DMatrix::<f64>::identity(np, np) * cfg.eta;
    let min_eig = reg.clone().symmetric_eigen().eigenvalues.min();
    assert!(
        min_eig > 0.0,
        "H + ηI must be positive definite here ({min_eig})"
    );
    // M[j, :] = ∂θ_j ∂φ J_Q.
    let mut m = DMatrix::<f64>::zeros(nt, np);
    for j in 0..nt {
        let mut x = theta0.clone();
        x[j] += h;
        set_flat(&theta, &x);
        let gp = grad_flat(&losses().critic_loss_mixed, &phi);
        x[j] -= 2.0 * h;
        set_flat(&theta, &x);
        let gm = grad_flat(&losses().critic_loss_mixed, &phi);
        for i in 0..np {
            m[(j, i)] = (gp[i] - gm[i]) / (2.0 * h);
        }
    }
    set_flat(&theta, &theta0);
    let l = losses();
    let g_theta = DVector::from_vec(grad_flat(&l.actor_loss, &theta));
    let g_phi = DVector::from_vec(grad_flat(&l.actor_loss, &phi));
    let sol = reg.cholesky().expect("positive definite").solve(&g_phi);
    let dense = &g_theta - &m * sol;

    let l = losses();
    let g = stack_sac::stackelberg_gradient(&ag, &l, None).unwrap();
    let total: Vec<f64> = g
        .total
        .iter()
        .flat_map(|t| t.flatten_all().unwrap().to_vec1::<f64>().unwrap())
        .collect();
    let e = rel_err(&total, dense.as_slice());
    assert!(e < 1e-6, "eq. (43) vs dense finite-difference formula: {e}");
    let direct: Vec<f64> = g
        .direct
        .iter()
        .flat_map(|t| t.flatten_all().unwrap().to_vec1::<f64>().unwrap())
        .collect();
    assert!(
        rel_err(&total, &direct) > 1e-3,
        "the Stackelberg correction must change the actor gradient"
    );
}

#[test]
fn agent_state_round_trips_and_rejects_other_agents() {
    autodiff::enable_second_order().unwrap();
    let buf = replay(40, 31);
    for algo in Algo::ALL {
        let cfg = SacConfig {
            res_updates: if algo == Algo::ResSac { 1 } else { 0 },
            clip: (algo == Algo::ResSac).then_some(2.0),
            ..config(5, 6)
        };
        let mut a = agent(algo, &cfg, 32);
        let mut rng = Rng::seed_from_u64(33);
        algos::update(&mut a, &buf, &mut rng).unwrap();
        algos::update(&mut a, &buf, &mut rng).unwrap();
        // A differently initialised agent takes over the state ...
        let mut b = agent(algo, &cfg, 99);
        b.load_weight_tensors(&a.weight_tensors().unwrap()).unwrap();
        b.load_optimizer_tensors(&a.optimizer_tensors().unwrap())
            .unwrap();
        // ... and continues exactly as the original.
        let mut rng_b = rng.clone();
        let sa = algos::update(&mut a, &buf, &mut rng).unwrap();
        let sb = algos::update(&mut b, &buf, &mut rng_b).unwrap();
        assert_eq!(sa, sb, "{algo}: restored agent diverges");
        assert_eq!(flat(a.actor().vars()), flat(b.actor().vars()));
    }
    // Another algorithm's or another size's state is refused with a mismatch error.
    let res_cfg = SacConfig {
        res_updates: 1,
        clip: Some(1.0),
        ..config(5, 6)
    };
    let res = agent(Algo::ResSac, &res_cfg, 1);
    let mut sac = agent(Algo::Sac, &config(5, 6), 1);
    let e = sac
        .load_weight_tensors(&res.weight_tensors().unwrap())
        .unwrap_err();
    assert!(matches!(e, AlgoError::StateMismatch(_)), "{e}");
    let big = agent(Algo::Sac, &config(7, 6), 1);
    let e = sac
        .load_weight_tensors(&big.weight_tensors().unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("shape"), "{e}");
}

#[test]
fn config_validation_names_the_bad_option() {
    let bad = |algo: Algo, cfg: SacConfig, needle: &str| {
        let e = SacAgent::new(
            algo,
            &cfg,
            OBS,
            &[-1.0, -1.0],
            &[1.0, 1.0],
            DType::F32,
            &mut Rng::seed_from_u64(0),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains(needle),
            "{e} should mention {needle}"
        );
    };
    let c = SacConfig::default;
    bad(
        Algo::Sac,
        SacConfig {
            batch_size: 0,
            ..c()
        },
        "batch_size",
    );
    bad(
        Algo::Sac,
        SacConfig {
            hidden: vec![],
            ..c()
        },
        "hidden",
    );
    bad(
        Algo::Sac,
        SacConfig {
            critic_updates: 0,
            ..c()
        },
        "critic_updates",
    );
    bad(
        Algo::Sac,
        SacConfig {
            lr: f64::NAN,
            ..c()
        },
        "lr",
    );
    bad(
        Algo::Sac,
        SacConfig {
            res_updates: 2,
            ..c()
        },
        "res_updates",
    );
    bad(
        Algo::ResSac,
        SacConfig {
            res_updates: 1,
            ..c()
        },
        "clip",
    );
    bad(
        Algo::ResSac,
        SacConfig {
            res_updates: 1,
            clip: Some(-1.0),
            ..c()
        },
        "clip",
    );
    bad(Algo::StackSac, SacConfig { eta: -0.5, ..c() }, "eta");
    bad(Algo::StackSac, SacConfig { cg_iters: 0, ..c() }, "cg_iters");
    assert_eq!("res-sac".parse::<Algo>().unwrap(), Algo::ResSac);
    let e = "ppo".parse::<Algo>().unwrap_err().to_string();
    assert!(e.contains("sac, res-sac, stack-sac"), "{e}");
}
