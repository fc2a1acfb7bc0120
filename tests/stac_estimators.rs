//! STAC's ingredients against independent references, in f64:
//!
//! * GAE and Monte-Carlo returns against their closed forms, with bootstrapping only at
//!   truncations and epoch ends;
//! * the critic loss's Hessian-vector products (exact and Gauss-Newton) and the mixed
//!   products of the Proposition 1 surrogate against central finite differences;
//! * `∂J/∂w` against finite differences of an independent λ-return implementation;
//! * the Proposition 1 estimator's exact expectation (enumerating every trajectory of a small
//!   finite MDP) against `∂²L/∂θ∂w` from exact dynamic programming.
//!
//! Every test calls `enable_second_order()` first (each test runs in its own thread).
#![cfg(feature = "trainer")]
// Index loops mirror the sums of the formulas they check.
#![allow(clippy::needless_range_loop)]

use candle_core::{DType, Device, Tensor, Var};
use stackrl::algos::on_policy::{discounted_returns, gae_advantages};
use stackrl::algos::{
    CriticHessian, EpochData, OnPolicyAgent, OnPolicyAlgo, OnPolicyConfig, Precision, Segment,
    SegmentEnd, ac, stac,
};
use stackrl::autodiff::{self, GradGraph, flatten};
use stackrl::envs::{self, Space};
use stackrl::nn::Activation;
use stackrl::rng::Rng;

// ---------------------------------------------------------------------------------------
// helpers

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

fn flat_grad(loss: &Tensor, wrt: &[Var]) -> Vec<f64> {
    to_vec(&flatten(&autodiff::grads(loss, wrt).unwrap()).unwrap())
}

fn flat_tensor(x: &[f64]) -> Tensor {
    Tensor::from_slice(x, x.len(), &Device::Cpu).unwrap()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    let den = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den
}

fn random_vec(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| rng.normal_f64()).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central difference of `f` (a vector function of the variables `moved`) along `dir`.
fn fd<F: Fn() -> Vec<f64>>(moved: &[Var], dir: &[f64], h: f64, f: F) -> Vec<f64> {
    let x0 = values(moved);
    let at = |s: f64| {
        let x: Vec<f64> = x0.iter().zip(dir).map(|(a, d)| a + s * h * d).collect();
        set_values(moved, &x);
        f()
    };
    let (plus, minus) = (at(1.0), at(-1.0));
    set_values(moved, &x0);
    plus.iter()
        .zip(&minus)
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect()
}

/// A f64 STAC agent with the paper's 64x64 tanh networks and one CartPole epoch of `steps`
/// steps (several episodes, the last one cut by the epoch end).
fn cartpole_agent(steps: usize, hidden: &[usize], seed: u64) -> (OnPolicyAgent, EpochData) {
    let config = OnPolicyConfig {
        algo: OnPolicyAlgo::Stac,
        steps_per_epoch: steps,
        precision: Precision::F64,
        hidden: hidden.to_vec(),
        activation: Activation::Tanh,
        ..OnPolicyConfig::default()
    };
    let mut env = envs::make("CartPole-v1").unwrap();
    let mut rng = Rng::seed_from_u64(seed);
    let mut agent = OnPolicyAgent::new(
        config,
        env.observation_space(),
        env.action_space(),
        &mut rng,
    )
    .unwrap();
    let data = agent.collect_epoch(env.as_mut(), &mut rng).unwrap();
    assert!(
        data.segments.len() >= 2,
        "want several episodes in the epoch"
    );
    (agent, data)
}

// ---------------------------------------------------------------------------------------
// GAE and returns

#[test]
fn gae_and_returns_match_closed_forms() {
    let (g, l) = (0.9, 0.8);
    let r = [1.0, -0.5, 2.0, 0.25];
    let v = [0.5, 0.4, -0.3, 1.2];
    let last = 2.0;
    let adv = gae_advantages(&r, &v, last, g, l);
    let ret = discounted_returns(&r, last, g);
    let n = r.len();
    let val = |i: usize| if i < n { v[i] } else { last };
    for t in 0..n {
        let mut a = 0.0;
        let mut gt = 0.0;
        for j in t..n {
            let delta = r[j] + g * val(j + 1) - v[j];
            a += (g * l).powi((j - t) as i32) * delta;
            gt += g.powi((j - t) as i32) * r[j];
        }
        gt += g.powi((n - t) as i32) * last;
        assert!((adv[t] - a).abs() < 1e-14, "adv[{t}] {} vs {a}", adv[t]);
        assert!((ret[t] - gt).abs() < 1e-14, "ret[{t}] {} vs {gt}", ret[t]);
    }
    // λ = 1: GAE is the Monte-Carlo advantage G_t − V(s_t).
    let adv1 = gae_advantages(&r, &v, last, g, 1.0);
    for t in 0..n {
        assert!((adv1[t] - (ret[t] - v[t])).abs() < 1e-14);
    }
}

#[test]
fn bootstrap_only_after_truncation_and_epoch_end() {
    let (agent, mut data) = cartpole_agent(64, &[8], 5);
    let batch = agent.prepare(&data).unwrap();
    let gamma = agent.config().gamma;
    for (s, bs) in data.segments.iter().zip(&batch.segments) {
        let r = &data.rewards[s.start..s.start + s.len];
        let last = match s.end.bootstrap_obs() {
            None => {
                assert!(bs.bootstrap_row.is_none());
                0.0
            }
            Some(o) => {
                let x = Tensor::from_slice(o, (1, o.len()), &Device::Cpu).unwrap();
                to_vec(&agent.critic().forward(&x).unwrap())[0]
            }
        };
        let expect = discounted_returns(r, last, gamma);
        for (a, b) in batch.returns[s.start..s.start + s.len].iter().zip(&expect) {
            assert!((a - b).abs() < 1e-12);
        }
    }
    // CartPole episodes terminate; the last piece is cut by the epoch end.
    assert!(matches!(data.segments[0].end, SegmentEnd::Terminated));
    assert!(matches!(
        data.segments.last().unwrap().end,
        SegmentEnd::EpochEnd { .. }
    ));
    // Turning the first episode's ending into a time-limit truncation adds exactly the
    // discounted bootstrap γ^{T−t} V(s_T) to its returns.
    let s0 = data.segments[0].clone();
    let next = data.obs[s0.len * 4..s0.len * 4 + 4].to_vec(); // any finite state will do
    data.segments[0].end = SegmentEnd::Truncated {
        next_obs: next.clone(),
    };
    let b2 = agent.prepare(&data).unwrap();
    let x = Tensor::from_slice(&next, (1, 4), &Device::Cpu).unwrap();
    let v_next = to_vec(&agent.critic().forward(&x).unwrap())[0];
    for t in 0..s0.len {
        let d = b2.returns[t] - batch.returns[t];
        let want = gamma.powi((s0.len - t) as i32) * v_next;
        assert!((d - want).abs() < 1e-12, "t {t}: {d} vs {want}");
    }
}

// ---------------------------------------------------------------------------------------
// Hessian-vector and mixed products against finite differences

#[test]
fn critic_hvp_matches_finite_differences() {
    autodiff::enable_second_order().unwrap();
    let (agent, data) = cartpole_agent(96, &[64, 64], 1);
    let batch = agent.prepare(&data).unwrap();
    let w = agent.critic().vars().to_vec();
    let mut rng = Rng::seed_from_u64(11);
    let v = random_vec(autodiff::numel(&w), &mut rng);
    let loss = ac::critic_loss(agent.critic(), &batch).unwrap();
    let hv = to_vec(
        &GradGraph::new(&loss, &w)
            .unwrap()
            .hvp(&flat_tensor(&v))
            .unwrap(),
    );
    let fd_hv = fd(&w, &v, 1e-5, || {
        flat_grad(&ac::critic_loss(agent.critic(), &batch).unwrap(), &w)
    });
    let e = rel_err(&hv, &fd_hv);
    eprintln!("critic HVP vs central FD: rel err {e:.2e}");
    assert!(e < 1e-7, "rel err {e}");

    // The STAC losses' critic loss is the same function (shared forward pass).
    let l = stac::losses(
        agent.policy(),
        agent.critic(),
        &batch,
        0.99,
        0.97,
        CriticHessian::Exact,
        stackrl::algos::StacEstimator::Exact,
    )
    .unwrap();
    let hv2 = to_vec(
        &GradGraph::new(&l.hessian_loss, &w)
            .unwrap()
            .hvp(&flat_tensor(&v))
            .unwrap(),
    );
    assert!(rel_err(&hv2, &hv) < 1e-12);
}

#[test]
fn gauss_newton_hvp_is_the_outer_product_of_critic_gradients() {
    autodiff::enable_second_order().unwrap();
    let (agent, data) = cartpole_agent(40, &[16, 16], 2);
    let batch = agent.prepare(&data).unwrap();
    let w = agent.critic().vars().to_vec();
    let mut rng = Rng::seed_from_u64(12);
    let v = random_vec(autodiff::numel(&w), &mut rng);
    let l = stac::losses(
        agent.policy(),
        agent.critic(),
        &batch,
        0.99,
        0.97,
        CriticHessian::GaussNewton,
        stackrl::algos::StacEstimator::Exact,
    )
    .unwrap();
    let gn = to_vec(
        &GradGraph::new(&l.hessian_loss, &w)
            .unwrap()
            .hvp(&flat_tensor(&v))
            .unwrap(),
    );
    // (2/N) Σ_t ∇V(s_t) (∇V(s_t) · v), from per-state gradients.
    let n = batch.n;
    let mut want = vec![0.0; v.len()];
    for t in 0..n {
        let x = batch.obs.narrow(0, t, 1).unwrap();
        let vt = agent.critic().forward(&x).unwrap().sum_all().unwrap();
        let g = flat_grad(&vt, &w);
        let s = dot(&g, &v) * 2.0 / n as f64;
        for (a, b) in want.iter_mut().zip(&g) {
            *a += s * b;
        }
    }
    let e = rel_err(&gn, &want);
    eprintln!("Gauss-Newton HVP vs dense outer products: rel err {e:.2e}");
    assert!(e < 1e-12, "rel err {e}");
    // And it differs from the exact Hessian (the (V − G) ∇²V term is not negligible here).
    let exact = to_vec(
        &GradGraph::new(&l.critic_loss, &w)
            .unwrap()
            .hvp(&flat_tensor(&v))
            .unwrap(),
    );
    assert!(rel_err(&exact, &want) > 1e-3);
}

#[test]
fn mixed_products_match_finite_differences() {
    autodiff::enable_second_order().unwrap();
    let (agent, data) = cartpole_agent(96, &[64, 64], 3);
    let batch = agent.prepare(&data).unwrap();
    let (theta, w) = (
        agent.policy().vars().to_vec(),
        agent.critic().vars().to_vec(),
    );
    let mixed = || {
        stac::losses(
            agent.policy(),
            agent.critic(),
            &batch,
            0.99,
            0.97,
            CriticHessian::Exact,
            stackrl::algos::StacEstimator::Exact,
        )
        .unwrap()
        .mixed
    };
    let mut rng = Rng::seed_from_u64(13);
    // (∂²M/∂θ∂w) u = d/dε ∇θ M(θ, w + ε u): what STAC multiplies the CG solution by.
    let u = random_vec(autodiff::numel(&w), &mut rng);
    let m = to_vec(
        &GradGraph::new(&mixed(), &w)
            .unwrap()
            .mixed(&flat_tensor(&u), &theta)
            .unwrap(),
    );
    let fd_m = fd(&w, &u, 1e-5, || flat_grad(&mixed(), &theta));
    let e = rel_err(&m, &fd_m);
    eprintln!("mixed (∂²M/∂θ∂w)u vs central FD: rel err {e:.2e}");
    assert!(e < 1e-7, "rel err {e}");
    // Transpose: (∂²M/∂w∂θ) z = d/dε ∇w M(θ + ε z, w).
    let z = random_vec(autodiff::numel(&theta), &mut rng);
    let mt = to_vec(
        &GradGraph::new(&mixed(), &theta)
            .unwrap()
            .mixed(&flat_tensor(&z), &w)
            .unwrap(),
    );
    let fd_t = fd(&theta, &z, 1e-5, || flat_grad(&mixed(), &w));
    let e_t = rel_err(&mt, &fd_t);
    eprintln!("mixed transpose (∂²M/∂w∂θ)z vs central FD: rel err {e_t:.2e}");
    assert!(e_t < 1e-7, "rel err {e_t}");
    assert!((dot(&z, &m) - dot(&u, &mt)).abs() < 1e-10 * dot(&z, &m).abs().max(1e-12));
}

/// `J(w) = (1/(σN)) Σ_t G^λ_t(w)` written out directly from the critic's values.
fn lambda_return_objective(agent: &OnPolicyAgent, data: &EpochData, sigma: f64) -> f64 {
    let (g, l) = (agent.config().gamma, agent.config().gae_lambda);
    let value = |o: &[f64]| {
        let x = Tensor::from_slice(o, (1, o.len()), &Device::Cpu).unwrap();
        to_vec(&agent.critic().forward(&x).unwrap())[0]
    };
    let mut total = 0.0;
    for s in &data.segments {
        let v: Vec<f64> = (s.start..s.start + s.len)
            .map(|t| value(&data.obs[t * 4..t * 4 + 4]))
            .collect();
        let last = s.end.bootstrap_obs().map_or(0.0, value);
        let vn = |i: usize| if i < s.len { v[i] } else { last };
        for t in 0..s.len {
            // G^λ_t = Σ_j (γλ)^{j−t} [r_j + γ(1−λ) V_{j+1}] + (γλ)^{n−t} ... written as
            // V_t + Σ_j (γλ)^{j−t} δ_j.
            let mut gl = v[t];
            for j in t..s.len {
                let delta = data.rewards[s.start + j] + g * vn(j + 1) - v[j];
                gl += (g * l).powi((j - t) as i32) * delta;
            }
            total += gl;
        }
    }
    total / (sigma * data.len() as f64)
}

#[test]
fn objective_gradients_are_the_policy_gradient_and_the_lambda_return_derivative() {
    autodiff::enable_second_order().unwrap();
    let (agent, data) = cartpole_agent(80, &[32, 32], 4);
    let batch = agent.prepare(&data).unwrap();
    let (theta, w) = (
        agent.policy().vars().to_vec(),
        agent.critic().vars().to_vec(),
    );
    let l = stac::losses(
        agent.policy(),
        agent.critic(),
        &batch,
        0.99,
        0.97,
        CriticHessian::Exact,
        stackrl::algos::StacEstimator::Exact,
    )
    .unwrap();
    // ∂J/∂θ is AC's policy gradient.
    let gj_theta = flat_grad(&l.objective, &theta);
    let (_, g_ac) = ac::policy_gradient(agent.policy(), &batch).unwrap();
    let g_ac = to_vec(&flatten(&g_ac).unwrap());
    assert!(rel_err(&gj_theta, &g_ac) < 1e-12);
    // ∂J/∂w against central differences of the independent λ-return objective.
    let gj_w = flat_grad(&l.objective, &w);
    let mut rng = Rng::seed_from_u64(14);
    for _ in 0..3 {
        let u = random_vec(autodiff::numel(&w), &mut rng);
        let fd_u = fd(&w, &u, 1e-5, || {
            vec![lambda_return_objective(
                &agent,
                &data,
                batch.advantage_scale,
            )]
        })[0];
        let an = dot(&gj_w, &u);
        eprintln!("∂J/∂w · u = {an:.10e}, central FD {fd_u:.10e}");
        assert!(
            (an - fd_u).abs() <= 1e-7 * an.abs().max(1e-3),
            "{an} vs {fd_u}"
        );
    }
    // Not the paper code's ∇w mean V(s_t): that direction differs.
    let mean_v = agent
        .critic()
        .forward(&batch.obs)
        .unwrap()
        .mean_all()
        .unwrap();
    let g_mean = flat_grad(&mean_v, &w);
    let cos = dot(&g_mean, &gj_w) / (dot(&g_mean, &g_mean) * dot(&gj_w, &gj_w)).sqrt();
    eprintln!("cosine(∂J/∂w, ∇ mean V) = {cos:.4}");
    assert!(cos < 0.999);
}

// ---------------------------------------------------------------------------------------
// Proposition 1 on a finite MDP: exact expectation of the estimator vs exact ∂²L/∂θ∂w

const S: usize = 3; // states
const A: usize = 2; // actions
const T: usize = 3; // horizon: every episode terminates after T steps
const GAMMA: f64 = 0.9;

/// A fixed random MDP: `p[s][a][s']`, `r[s][a]`, initial `rho[s]`.
struct Mdp {
    p: [[[f64; S]; A]; S],
    r: [[f64; A]; S],
    rho: [f64; S],
}

impl Mdp {
    fn new(rng: &mut Rng) -> Self {
        let dist = |rng: &mut Rng| {
            let x: Vec<f64> = (0..S).map(|_| 0.2 + rng.uniform_f64()).collect();
            let z: f64 = x.iter().sum();
            [x[0] / z, x[1] / z, x[2] / z]
        };
        let mut p = [[[0.0; S]; A]; S];
        let mut r = [[0.0; A]; S];
        for s in 0..S {
            for a in 0..A {
                p[s][a] = dist(rng);
                r[s][a] = rng.normal_f64();
            }
        }
        let rho = dist(rng);
        Self { p, r, rho }
    }
}

/// Observation of state `s` at time `t`: one-hot over (t, s), so that the critic can
/// represent the time-dependent values of the finite horizon.
fn one_hot(s: usize, t: usize) -> Vec<f64> {
    let mut x = vec![0.0; S * T];
    x[t * S + s] = 1.0;
    x
}

/// `π(a | s, t)` for every (t, s) from the agent's policy.
fn policy_table(agent: &OnPolicyAgent) -> Vec<[f64; A]> {
    let mut x = Vec::new();
    for t in 0..T {
        for s in 0..S {
            x.extend(one_hot(s, t));
        }
    }
    let obs = Tensor::from_vec(x, (S * T, S * T), &Device::Cpu).unwrap();
    let lp = match agent.policy() {
        stackrl::algos::on_policy::Policy::Categorical(p) => p.log_probs(&obs).unwrap(),
        _ => unreachable!(),
    };
    lp.exp()
        .unwrap()
        .to_vec2::<f64>()
        .unwrap()
        .into_iter()
        .map(|row| [row[0], row[1]])
        .collect()
}

/// Exact `V^π_t(s)` by backward induction, `[t][s]`.
fn exact_values(mdp: &Mdp, pi: &[[f64; A]]) -> Vec<[f64; S]> {
    let mut v = vec![[0.0; S]; T + 1];
    for t in (0..T).rev() {
        for s in 0..S {
            let mut acc = 0.0;
            for a in 0..A {
                let next: f64 = (0..S).map(|s2| mdp.p[s][a][s2] * v[t + 1][s2]).sum();
                acc += pi[t * S + s][a] * (mdp.r[s][a] + GAMMA * next);
            }
            v[t][s] = acc;
        }
    }
    v
}

#[test]
fn proposition_1_estimator_is_unbiased_on_a_finite_mdp() {
    autodiff::enable_second_order().unwrap();
    let mut rng = Rng::seed_from_u64(21);
    let mdp = Mdp::new(&mut rng);
    let config = OnPolicyConfig {
        algo: OnPolicyAlgo::Stac,
        steps_per_epoch: T,
        gamma: GAMMA,
        gae_lambda: 1.0, // Monte-Carlo advantages: the estimator is then unbiased
        precision: Precision::F64,
        hidden: vec![5],
        activation: Activation::Tanh,
        ..OnPolicyConfig::default()
    };
    let obs_space = Space::uniform_box(S * T, 0.0, 1.0);
    let agent = OnPolicyAgent::new(config, &obs_space, &Space::Discrete(A), &mut rng).unwrap();
    let (theta, w) = (
        agent.policy().vars().to_vec(),
        agent.critic().vars().to_vec(),
    );
    let u = random_vec(autodiff::numel(&w), &mut rng);
    let pi = policy_table(&agent);

    // E_τ[estimator]: every trajectory (s0 a0 s1 a1 s2 a2), weighted by its probability.
    let mut expectation = vec![0.0; autodiff::numel(&theta)];
    let mut total_p = 0.0;
    let mut idx = [0usize; 2 * T];
    loop {
        let (mut p, mut obs, mut acts, mut rews) = (1.0, Vec::new(), Vec::new(), Vec::new());
        for t in 0..T {
            let (s, a) = (idx[2 * t], idx[2 * t + 1]);
            p *= if t == 0 {
                mdp.rho[s]
            } else {
                let (sp, ap) = (idx[2 * t - 2], idx[2 * t - 1]);
                mdp.p[sp][ap][s]
            };
            p *= pi[t * S + s][a];
            obs.extend(one_hot(s, t));
            acts.push(a as f64);
            rews.push(mdp.r[s][a]);
        }
        let data = EpochData {
            obs_dim: S * T,
            act_len: 1,
            obs,
            actions: acts,
            rewards: rews.clone(),
            segments: vec![Segment {
                start: 0,
                len: T,
                end: SegmentEnd::Terminated,
            }],
            episode_returns: vec![rews.iter().sum()],
            episode_lengths: vec![T],
        };
        let batch = agent.prepare(&data).unwrap();
        let l = stac::losses(
            agent.policy(),
            agent.critic(),
            &batch,
            GAMMA,
            1.0,
            CriticHessian::Exact,
            stackrl::algos::StacEstimator::Exact,
        )
        .unwrap();
        let m = to_vec(
            &GradGraph::new(&l.mixed, &w)
                .unwrap()
                .mixed(&flat_tensor(&u), &theta)
                .unwrap(),
        );
        for (e, x) in expectation.iter_mut().zip(&m) {
            *e += p * x;
        }
        total_p += p;
        // next trajectory (odometer over states and actions)
        let mut k = 2 * T;
        loop {
            if k == 0 {
                break;
            }
            k -= 1;
            let base = if k.is_multiple_of(2) { S } else { A };
            idx[k] += 1;
            if idx[k] < base {
                break;
            }
            idx[k] = 0;
        }
        if idx.iter().all(|&i| i == 0) {
            break;
        }
    }
    assert!(
        (total_p - 1.0).abs() < 1e-12,
        "probabilities sum to {total_p}"
    );

    // Truth: L(θ, w) = (1/T) Σ_t Σ_s d_t(s) (V_w(x(s,t)) − V^π_t(s))² with the state
    // distribution d_t held fixed, so (∂²L/∂θ∂w) u = −(2/T) Σ_{t,s} d_t(s) (∇V_w·u) ∂V^π_t(s)/∂θ.
    let mut d = [[0.0; S]; T];
    d[0] = mdp.rho;
    for t in 1..T {
        for s in 0..S {
            for a in 0..A {
                for s2 in 0..S {
                    d[t][s2] += d[t - 1][s] * pi[(t - 1) * S + s][a] * mdp.p[s][a][s2];
                }
            }
        }
    }
    let theta0 = values(&theta);
    let h = 1e-5;
    let mut dv = vec![vec![[0.0; S]; T]; theta0.len()]; // ∂V^π_t(s)/∂θ_i
    for i in 0..theta0.len() {
        let at = |delta: f64| {
            let mut x = theta0.clone();
            x[i] += delta;
            set_values(&theta, &x);
            exact_values(&mdp, &policy_table(&agent))
        };
        let (vp, vm) = (at(h), at(-h));
        for t in 0..T {
            for s in 0..S {
                dv[i][t][s] = (vp[t][s] - vm[t][s]) / (2.0 * h);
            }
        }
    }
    set_values(&theta, &theta0);
    let mut truth = vec![0.0; theta0.len()];
    for t in 0..T {
        for s in 0..S {
            let x = Tensor::from_vec(one_hot(s, t), (1, S * T), &Device::Cpu).unwrap();
            let vsum = agent.critic().forward(&x).unwrap().sum_all().unwrap();
            let gu = dot(&flat_grad(&vsum, &w), &u);
            for i in 0..theta0.len() {
                truth[i] += -2.0 / T as f64 * d[t][s] * gu * dv[i][t][s];
            }
        }
    }
    let e = rel_err(&expectation, &truth);
    eprintln!(
        "E[Prop. 1 mixed estimator]·u vs exact (∂²L/∂θ∂w)·u: rel err {e:.2e} (|truth| {:.3e})",
        dot(&truth, &truth).sqrt()
    );
    assert!(e < 1e-7, "rel err {e}");
}
