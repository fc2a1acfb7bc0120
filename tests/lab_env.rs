//! FourRoom, random MDPs, the DP experiments and the sample-based algorithms: behaviour tests.
#![cfg(feature = "trainer")]

use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use stackrl::lab::LabError;
use stackrl::lab::dp::{self, ActorRule, CriticRule, DpConfig};
use stackrl::lab::exact::{PolicyEval, Vector};
use stackrl::lab::mdp::{FOUR_ROOM_GOAL, FOUR_ROOM_LAYOUT, FourRoom, GoalMode, TabularMdp};
use stackrl::lab::sample::{self, Algorithm, SampleConfig, StackGrad};

#[test]
fn four_room_layout_and_dynamics() {
    let free: usize = FOUR_ROOM_LAYOUT
        .iter()
        .map(|r| r.bytes().filter(|&b| b == b' ').count())
        .sum();
    assert_eq!(free, 104);
    let env = FourRoom::paper();
    let m = &env.mdp;
    assert_eq!((m.n_states(), m.n_actions()), (103, 4));
    assert_eq!(m.gamma(), 0.9);
    assert!(!env.cells.contains(&FOUR_ROOM_GOAL));
    // Rows of P are distributions; μ0 is uniform over the 103 non-goal cells.
    for i in 0..m.n_sa() {
        assert!((m.p().row(i).sum() - 1.0).abs() < 1e-12);
    }
    assert!(m.mu0().iter().all(|&x| (x - 1.0 / 103.0).abs() < 1e-15));
    let idx = |rc| env.cells.iter().position(|&c| c == rc).unwrap();
    let (up, down, left, right) = (0, 1, 2, 3);
    // (1,1) is the top-left corner: up and left are walls, so the agent stays.
    let s = idx((1, 1));
    assert_eq!(m.p()[(s * 4 + up, s)], 1.0);
    assert_eq!(m.p()[(s * 4 + left, s)], 1.0);
    assert_eq!(m.p()[(s * 4 + right, idx((1, 2)))], 1.0);
    assert_eq!(m.p()[(s * 4 + down, idx((2, 1)))], 1.0);
    // Reward 1 exactly for the moves into the goal (7,9): from (6,9) down, from (8,9) up.
    let rewarded: Vec<usize> = (0..m.n_sa()).filter(|&i| m.r()[i] != 0.0).collect();
    assert_eq!(rewarded, {
        let mut v = vec![idx((6, 9)) * 4 + down, idx((8, 9)) * 4 + up];
        v.sort();
        v
    });
    // Reaching the goal restarts from μ0.
    let i = idx((6, 9)) * 4 + down;
    assert!((m.p().row(i).transpose() - m.mu0()).amax() < 1e-15);
}

#[test]
fn four_room_absorbing_goal_and_slip() {
    let env = FourRoom::new((1, 1), GoalMode::Absorb, 1.0 / 3.0, 0.9).unwrap();
    let m = &env.mdp;
    assert_eq!(m.n_states(), 104);
    let g = env.cells.iter().position(|&c| c == (1, 1)).unwrap();
    assert_eq!(m.mu0()[g], 0.0);
    for a in 0..4 {
        assert_eq!(m.p()[(g * 4 + a, g)], 1.0);
        assert_eq!(m.r()[g * 4 + a], 0.0);
    }
    // From (1,2) moving left reaches the goal with probability 2/3 (+ 0 from the slips).
    let s = env.cells.iter().position(|&c| c == (1, 2)).unwrap();
    assert!((m.r()[s * 4 + 2] - 2.0 / 3.0).abs() < 1e-12);
    // Slips move in the three other directions with 1/9 each; up is a wall (stay).
    assert!((m.p()[(s * 4 + 2, s)] - 1.0 / 9.0).abs() < 1e-12);
}

#[test]
fn four_room_rejects_bad_settings() {
    assert!(matches!(
        FourRoom::new((0, 0), GoalMode::Restart, 0.0, 0.9),
        Err(LabError::Config(_))
    ));
    assert!(FourRoom::new((40, 2), GoalMode::Restart, 0.0, 0.9).is_err());
    assert!(FourRoom::new((7, 9), GoalMode::Restart, 1.5, 0.9).is_err());
    assert!(FourRoom::new((7, 9), GoalMode::Restart, 0.0, 1.0).is_err());
}

/// Sampled transitions follow P and sampled rewards average to r.
#[test]
fn sampling_matches_the_model() {
    let env = FourRoom::new(FOUR_ROOM_GOAL, GoalMode::Restart, 1.0 / 3.0, 0.9).unwrap();
    let m = &env.mdp;
    let mut rng = Pcg64Mcg::seed_from_u64(7);
    let n = 60_000;
    let sa = env.cells.iter().position(|&c| c == (6, 9)).unwrap() * 4 + 1;
    let (s, a) = (sa / 4, sa % 4);
    let mut counts = vec![0.0; m.n_states()];
    let mut reward = 0.0;
    for _ in 0..n {
        let (r, next) = m.step(s, a, &mut rng);
        counts[next] += 1.0 / n as f64;
        reward += r / n as f64;
    }
    for (t, c) in counts.iter().enumerate() {
        assert!((c - m.p()[(sa, t)]).abs() < 0.01, "state {t}");
    }
    assert!((reward - m.r()[sa]).abs() < 0.01);
    let mut init = vec![0.0; m.n_states()];
    for _ in 0..n {
        init[m.sample_initial(&mut rng)] += 1.0 / n as f64;
    }
    assert!(init.iter().all(|&c| (c - 1.0 / 103.0).abs() < 0.004));
}

/// J* from value iteration equals J of the greedy policy and bounds random policies.
#[test]
fn optimal_value_is_attained_by_the_greedy_policy() {
    let mdp = TabularMdp::random(6, 3, 0.9, 6, 11).unwrap();
    let j_star = mdp.optimal_j(1e-13);
    // Greedy policy from a long value iteration.
    let mut v = Vector::zeros(6);
    for _ in 0..2000 {
        let q = mdp.r() + mdp.p() * &v * 0.9;
        v = Vector::from_fn(6, |s, _| {
            (0..3).map(|a| q[s * 3 + a]).fold(f64::MIN, f64::max)
        });
    }
    let q = mdp.r() + mdp.p() * &v * 0.9;
    let mut pi = Vector::zeros(18);
    for s in 0..6 {
        let best = (0..3)
            .max_by(|&a, &b| q[s * 3 + a].total_cmp(&q[s * 3 + b]))
            .unwrap();
        pi[s * 3 + best] = 1.0;
    }
    let ev = PolicyEval::from_policy(&mdp, pi).unwrap();
    assert!((ev.j() - j_star).abs() < 1e-10);
    for seed in 0..5 {
        let theta = Vector::from_fn(18, |i, _| ((i as f64 + seed as f64) * 1.7).sin() * 3.0);
        assert!(PolicyEval::new(&mdp, &theta).unwrap().j() <= j_star + 1e-12);
    }
}

/// DP: every actor improves J from the uniform policy; PG's J curve does not depend on the
/// critic; the BR critic drives J_q down.
#[test]
fn dp_experiments_learn() {
    let env = FourRoom::paper();
    let j_star = env.mdp.optimal_j(1e-12);
    let cfg = DpConfig {
        iters: 300,
        log_every: 50,
        ..DpConfig::default()
    };
    let mut pg_curves = Vec::new();
    for (actor, critic) in dp::METHODS {
        let log = dp::run(&env.mdp, actor, critic, &cfg).unwrap();
        assert_eq!(log.len(), 7);
        let (first, last) = (&log[0], &log[log.len() - 1]);
        assert!(first.j < 0.2 * j_star, "uniform policy is far from optimal");
        assert!(
            last.j > 0.7 * j_star,
            "{actor:?}+{critic:?}: J/J* = {}",
            last.j / j_star
        );
        assert!(last.j_q < first.j_q);
        if actor == ActorRule::Pg {
            assert!((last.cos_to_pg - 1.0).abs() < 1e-12);
            pg_curves.push(log.iter().map(|p| p.j).collect::<Vec<_>>());
        }
    }
    assert_eq!(pg_curves[0], pg_curves[1]);
    assert!(
        dp::run(
            &env.mdp,
            ActorRule::Pg,
            CriticRule::Br,
            &DpConfig { iters: 0, ..cfg }
        )
        .is_err()
    );
}

/// Sample-based algorithms: each improves J within a small budget; runs are reproducible from the
/// seed and differ across seeds.
#[test]
fn sample_algorithms_learn_and_are_reproducible() {
    let env = FourRoom::paper();
    let cfg = SampleConfig {
        episodes: 120,
        ..SampleConfig::default()
    };
    let j0 = PolicyEval::new(&env.mdp, &Vector::zeros(env.mdp.n_sa()))
        .unwrap()
        .j();
    for alg in Algorithm::ALL {
        let log = sample::run(alg, &env.mdp, &cfg, 3).unwrap();
        assert_eq!(log.len(), 120);
        assert_eq!(log[119].env_steps, 120 * 300);
        let last = log[110..].iter().map(|e| e.j).sum::<f64>() / 10.0;
        assert!(last > 1.5 * j0, "{alg:?}: J went from {j0} to {last}");
        if alg != Algorithm::ResAc {
            assert_eq!(log[5].pred_critic, log[5].pred_critic_res);
        }
    }
    let short = SampleConfig {
        episodes: 5,
        ..cfg.clone()
    };
    let a = sample::run(Algorithm::StackAc, &env.mdp, &short, 9).unwrap();
    let b = sample::run(Algorithm::StackAc, &env.mdp, &short, 9).unwrap();
    let c = sample::run(Algorithm::StackAc, &env.mdp, &short, 10).unwrap();
    let js = |l: &[sample::EpisodeLog]| l.iter().map(|e| e.j).collect::<Vec<_>>();
    assert_eq!(js(&a), js(&b));
    assert_ne!(js(&a), js(&c));
    let expected = SampleConfig {
        stack_grad: StackGrad::Expected,
        ..short.clone()
    };
    let d = sample::run(Algorithm::StackAc, &env.mdp, &expected, 9).unwrap();
    assert_ne!(js(&a), js(&d));
    assert!(
        sample::run(
            Algorithm::ResAc,
            &env.mdp,
            &SampleConfig { batch: 0, ..short },
            0
        )
        .is_err()
    );
}

/// With a fixed policy (actor learning rate ~0), the TD critic and the res-critic converge so that
/// q + w approaches q_θ: the premise of Fig. 2.
#[test]
fn res_critic_closes_the_critic_gap_under_a_fixed_policy() {
    let env = FourRoom::paper();
    let cfg = SampleConfig {
        episodes: 150,
        lr_actor: 1e-12,
        res_updates: 5,
        ..SampleConfig::default()
    };
    let log = sample::res_ac(&env.mdp, &cfg, 1).unwrap();
    let tail = &log[100..];
    let mean = |f: fn(&sample::EpisodeLog) -> f64| tail.iter().map(f).sum::<f64>() / 50.0;
    let (with_res, critic) = (
        mean(|e| (e.pred_critic_res - e.j).abs()),
        mean(|e| (e.pred_critic - e.j).abs()),
    );
    assert!(with_res < critic, "{with_res} vs {critic}");
}
