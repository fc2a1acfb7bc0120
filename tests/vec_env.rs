//! `VecEnv`: thread-count independence, equivalence with single environments across
//! automatic resets (Gymnasium's SAME_STEP mode), and input validation.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use stackrl::envs::{self, Env, EnvConfig, EnvError, Instability, Space, VecEnv};

const STEPS: usize = 300;

fn random_actions(space: &Space, n: usize, rng: &mut Pcg64) -> Vec<f64> {
    let mut actions = Vec::with_capacity(n * space.action_len());
    for _ in 0..n {
        match space {
            Space::Discrete(k) => actions.push(rng.random_range(0..*k) as f64),
            Space::Box { low, high } => actions.extend(
                low.iter()
                    .zip(high)
                    .map(|(lo, hi)| rng.random_range(*lo..*hi)),
            ),
        }
    }
    actions
}

fn vec_env(id: &str, n: usize, threads: usize) -> VecEnv {
    VecEnv::make(id, n, threads, &EnvConfig::default())
        .unwrap_or_else(|e| panic!("VecEnv::make({id}, {n}, {threads}): {e}"))
}

fn bits(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// The MuJoCo states of every environment.
fn states(v: &VecEnv) -> Vec<(Vec<f64>, Vec<f64>)> {
    v.envs()
        .iter()
        .map(|e| e.as_mujoco().expect("MuJoCo env").state())
        .collect()
}

/// Everything a step exposes, as bits, for exact comparison.
#[derive(Debug, PartialEq)]
struct Snapshot {
    observations: Vec<u64>,
    rewards: Vec<u64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    /// Per done row: final observation, final return, final length.
    finals: Vec<Option<(Vec<u64>, u64, usize)>>,
    instability: Vec<Option<Instability>>,
}

fn snapshot(v: &VecEnv) -> Snapshot {
    let dim = v.observation_space().dim();
    Snapshot {
        observations: bits(v.observations()),
        rewards: bits(v.rewards()),
        terminated: v.terminated().to_vec(),
        truncated: v.truncated().to_vec(),
        finals: (0..v.num_envs())
            .map(|i| {
                v.done(i).then(|| {
                    (
                        bits(&v.final_observations()[i * dim..(i + 1) * dim]),
                        v.final_return(i).to_bits(),
                        v.final_length(i),
                    )
                })
            })
            .collect(),
        instability: (0..v.num_envs()).map(|i| v.instability(i)).collect(),
    }
}

/// Runs `STEPS` seeded random steps; returns a snapshot per step and the number of
/// finished episodes.
fn run(id: &str, n: usize, threads: usize, seed: u64) -> (Vec<Snapshot>, usize) {
    let mut v = vec_env(id, n, threads);
    assert_eq!(v.num_threads(), threads);
    let mut rng = Pcg64::seed_from_u64(seed);
    let first = bits(v.reset(Some(seed)).unwrap());
    let mut snapshots = vec![Snapshot {
        observations: first,
        ..snapshot(&v)
    }];
    let mut episodes = 0;
    for _ in 0..STEPS {
        let actions = random_actions(v.action_space(), n, &mut rng);
        v.step(&actions).unwrap();
        episodes += (0..n).filter(|i| v.done(*i)).count();
        snapshots.push(snapshot(&v));
    }
    (snapshots, episodes)
}

#[test]
fn thread_count_does_not_change_results() {
    for id in ["Hopper-v5", "CartPole-v1", "HalfCheetah-v5"] {
        let (one, episodes) = run(id, 4, 1, 2024);
        let (two, _) = run(id, 4, 2, 2024);
        let (three, _) = run(id, 4, 3, 2024);
        assert_eq!(one.len(), STEPS + 1);
        for (t, ((a, b), c)) in one.iter().zip(&two).zip(&three).enumerate() {
            assert_eq!(a, b, "{id}: 1 vs 2 threads differ at step {t}");
            assert_eq!(a, c, "{id}: 1 vs 3 threads differ at step {t}");
        }
        // The environments are not in lockstep: rows differ from one another.
        let dim = envs::make(id).unwrap().observation_space().dim();
        assert_ne!(
            one[1].observations[..dim],
            one[1].observations[dim..2 * dim]
        );
        if id != "HalfCheetah-v5" {
            assert!(episodes >= 4, "{id}: only {episodes} episodes ended");
        }
        // Another seed gives another run.
        let (other, _) = run(id, 4, 2, 2025);
        assert_ne!(one[0], other[0], "{id}");
    }
}

/// Steps a VecEnv and `n` single environments side by side and checks every row.
/// Returns the number of finished episodes per environment.
fn check_against_single_envs(
    id: &str,
    config: &EnvConfig,
    n: usize,
    threads: usize,
    seed: u64,
) -> Vec<usize> {
    let mut v = VecEnv::make(id, n, threads, config).unwrap();
    let mut singles: Vec<Box<dyn Env>> = (0..n)
        .map(|_| envs::make_with(id, config).unwrap())
        .collect();
    let dim = v.observation_space().dim();
    let alen = v.action_space().action_len();

    let obs = v.reset(Some(seed)).unwrap().to_vec();
    for (i, env) in singles.iter_mut().enumerate() {
        let (single, _) = env.reset(Some(seed + i as u64)).unwrap();
        assert_eq!(
            bits(&obs[i * dim..(i + 1) * dim]),
            bits(&single),
            "{id} env {i} reset"
        );
    }

    let mut rng = Pcg64::seed_from_u64(seed ^ 0xabcdef);
    let mut returns = vec![0.0f64; n];
    let mut lengths = vec![0usize; n];
    let mut episodes = vec![0usize; n];
    for t in 0..STEPS {
        let actions = random_actions(v.action_space(), n, &mut rng);
        v.step(&actions).unwrap();
        for (i, env) in singles.iter_mut().enumerate() {
            let step = env.step(&actions[i * alen..(i + 1) * alen]).unwrap();
            let row = i * dim..(i + 1) * dim;
            let at = format!("{id} env {i} step {t}");
            assert_eq!(v.rewards()[i].to_bits(), step.reward.to_bits(), "{at}");
            assert_eq!(v.terminated()[i], step.terminated, "{at}");
            assert_eq!(v.truncated()[i], step.truncated, "{at}");
            assert_eq!(v.instability(i), step.instability, "{at}");
            assert_eq!(v.done(i), step.terminated || step.truncated, "{at}");
            returns[i] += step.reward;
            lengths[i] += 1;
            if step.terminated || step.truncated {
                // SAME_STEP: the final observation is kept aside, the row holds the
                // first observation of the next episode.
                assert_eq!(
                    bits(&v.final_observations()[row.clone()]),
                    bits(&step.obs),
                    "{at}"
                );
                assert_eq!(v.final_return(i).to_bits(), returns[i].to_bits(), "{at}");
                assert_eq!(v.final_length(i), lengths[i], "{at}");
                let (reset_obs, _) = env.reset(None).unwrap();
                assert_eq!(bits(&v.observations()[row]), bits(&reset_obs), "{at}");
                assert_ne!(bits(&reset_obs), bits(&step.obs), "{at}");
                returns[i] = 0.0;
                lengths[i] = 0;
                episodes[i] += 1;
            } else {
                assert_eq!(bits(&v.observations()[row]), bits(&step.obs), "{at}");
            }
        }
    }
    episodes
}

#[test]
fn rows_match_single_envs_across_autoresets() {
    let default = EnvConfig::default();
    // Random actions topple Hopper and CartPole within tens of steps: many terminations.
    for (id, threads) in [("Hopper-v5", 2), ("CartPole-v1", 2), ("CartPole-v1", 1)] {
        let episodes = check_against_single_envs(id, &default, 4, threads, 100);
        assert!(episodes.iter().all(|e| *e >= 2), "{id}: {episodes:?}");
    }
    // Reacher only truncates (limit 50): 6 episodes per environment in 300 steps.
    let episodes = check_against_single_envs("Reacher-v5", &default, 4, 2, 7);
    assert_eq!(episodes, vec![6; 4]);
    // A shorter limit from the config applies to every environment.
    let short = EnvConfig {
        max_episode_steps: Some(40),
        ..Default::default()
    };
    let episodes = check_against_single_envs("Pendulum-v1", &short, 3, 2, 0);
    assert_eq!(episodes, vec![7; 3]);
}

#[test]
fn final_statistics_of_a_truncated_episode() {
    let config = EnvConfig {
        max_episode_steps: Some(5),
        ..Default::default()
    };
    let mut v = VecEnv::make("Pendulum-v1", 2, 1, &config).unwrap();
    v.reset(Some(3)).unwrap();
    let actions = [0.5, -0.5];
    let mut sums = [0.0f64; 2];
    for t in 1..=5 {
        v.step(&actions).unwrap();
        for (i, sum) in sums.iter_mut().enumerate() {
            *sum += v.rewards()[i];
            assert_eq!(v.done(i), t == 5);
            assert!(!v.terminated()[i]);
        }
    }
    for (i, sum) in sums.iter().enumerate() {
        assert_eq!(v.final_length(i), 5);
        assert_eq!(v.final_return(i), *sum);
        assert!(*sum < 0.0);
    }
    // A reset in the middle of an episode restarts the statistics.
    v.step(&actions).unwrap();
    v.step(&actions).unwrap();
    v.reset(Some(3)).unwrap();
    for t in 1..=5 {
        v.step(&actions).unwrap();
        assert_eq!(v.done(0), t == 5, "step {t} after the reset");
    }
    assert_eq!(v.final_length(0), 5);
    assert_eq!(v.final_return(0), sums[0]);
}

#[test]
fn wrong_action_length_errors_and_moves_nothing() {
    let mut v = vec_env("Hopper-v5", 4, 2);
    let mut twin = vec_env("Hopper-v5", 4, 2);
    v.reset(Some(1)).unwrap();
    twin.reset(Some(1)).unwrap();
    let good = vec![0.1; 12];
    v.step(&good).unwrap();
    twin.step(&good).unwrap();
    let before = states(&v);
    let observations = v.observations().to_vec();
    for len in [0, 3, 11, 13, 16] {
        let err = v.step(&vec![0.1; len]).expect_err("wrong length");
        assert!(matches!(err, EnvError::VecEnv(_)), "{err:?}");
        assert!(err.to_string().contains(&len.to_string()), "{err}");
        assert_eq!(states(&v), before, "length {len}");
        assert_eq!(v.observations(), &observations[..]);
    }
    v.step(&good).unwrap();
    twin.step(&good).unwrap();
    assert_eq!(snapshot(&v), snapshot(&twin));
}

#[test]
fn bad_row_errors_and_no_environment_moves() {
    for threads in [1, 2] {
        let mut v = vec_env("HalfCheetah-v5", 4, threads);
        let mut twin = vec_env("HalfCheetah-v5", 4, threads);
        v.reset(Some(5)).unwrap();
        twin.reset(Some(5)).unwrap();
        let mut rng = Pcg64::seed_from_u64(9);
        let actions = random_actions(v.action_space(), 4, &mut rng);
        v.step(&actions).unwrap();
        twin.step(&actions).unwrap();
        let before = states(&v);
        let snap = snapshot(&v);
        for (row, value) in [(2, f64::NAN), (3, f64::INFINITY), (0, f64::NEG_INFINITY)] {
            let mut bad = random_actions(v.action_space(), 4, &mut rng);
            bad[row * 6 + 4] = value;
            let err = v.step(&bad).expect_err("non-finite action");
            assert!(matches!(err, EnvError::VecEnv(_)), "{err:?}");
            assert!(
                err.to_string().contains(&format!("environment {row}")),
                "{err}"
            );
            // Neither the rows before the bad one nor those after moved.
            assert_eq!(states(&v), before, "threads {threads}, bad row {row}");
            assert_eq!(snapshot(&v), snap);
        }
        // The next valid step matches the twin that never saw the bad calls.
        let actions = random_actions(v.action_space(), 4, &mut rng);
        v.step(&actions).unwrap();
        twin.step(&actions).unwrap();
        assert_eq!(snapshot(&v), snapshot(&twin));
        assert_eq!(states(&v), states(&twin));
    }

    // Discrete rows: an invalid index in the last row stops every row.
    let mut v = vec_env("CartPole-v1", 4, 2);
    let mut twin = vec_env("CartPole-v1", 4, 2);
    v.reset(Some(5)).unwrap();
    twin.reset(Some(5)).unwrap();
    for bad in [
        [0.0, 1.0, 0.0, 2.0],
        [0.5, 1.0, 0.0, 1.0],
        [1.0, -1.0, 0.0, 1.0],
    ] {
        let err = v.step(&bad).expect_err("invalid discrete action");
        assert!(matches!(err, EnvError::VecEnv(_)), "{err:?}");
    }
    for _ in 0..5 {
        v.step(&[0.0, 1.0, 1.0, 0.0]).unwrap();
        twin.step(&[0.0, 1.0, 1.0, 0.0]).unwrap();
        assert_eq!(snapshot(&v), snapshot(&twin));
    }
}

#[test]
fn construction_errors() {
    let config = EnvConfig::default();
    for result in [
        VecEnv::make("Hopper-v5", 0, 1, &config),
        VecEnv::make("Hopper-v5", 2, 0, &config),
        VecEnv::make("CartPole-v1", 0, 0, &config),
        VecEnv::new(Vec::new(), 1),
        VecEnv::new(vec![envs::make("Hopper-v5").unwrap()], 0),
    ] {
        match result {
            Err(EnvError::VecEnv(_)) => {}
            Err(other) => panic!("expected a VecEnv error, got {other:?}"),
            Ok(_) => panic!("expected an error"),
        }
    }
    // Environments with different spaces cannot be stacked.
    let mixed = vec![
        envs::make("Hopper-v5").unwrap(),
        envs::make("Walker2d-v5").unwrap(),
    ];
    assert!(matches!(VecEnv::new(mixed, 1), Err(EnvError::VecEnv(_))));
    // Registry and configuration errors come through unchanged.
    assert!(matches!(
        VecEnv::make("Nope-v0", 2, 1, &config),
        Err(EnvError::UnknownId { .. })
    ));
    let bad = EnvConfig {
        frame_skip: Some(0),
        ..Default::default()
    };
    assert!(matches!(
        VecEnv::make("Hopper-v5", 2, 1, &bad),
        Err(EnvError::InvalidConfig { .. })
    ));
    // The valid shapes work, including more threads than environments.
    let v = VecEnv::make("Reacher-v5", 2, 4, &config).unwrap();
    assert_eq!(v.num_envs(), 2);
    assert_eq!(v.num_threads(), 4);
    assert_eq!(v.observation_space().dim(), 10);
    assert_eq!(v.action_space().action_len(), 2);
    assert_eq!(v.observations().len(), 20);
    assert_eq!(v.rewards().len(), 2);
    assert_eq!(v.envs().len(), 2);
}

#[test]
fn step_before_reset_errors() {
    let mut v = vec_env("Pendulum-v1", 3, 2);
    let err = v.step(&[0.0; 3]).expect_err("step before reset");
    assert!(matches!(err, EnvError::VecEnv(_)), "{err:?}");
    assert!(err.to_string().contains("reset"), "{err}");
    v.reset(Some(0)).unwrap();
    v.step(&[0.0; 3]).unwrap();
}

#[test]
fn more_threads_than_environments_matches_one_thread() {
    let (one, _) = run("Hopper-v5", 2, 1, 31);
    let (four, _) = run("Hopper-v5", 2, 4, 31);
    assert_eq!(one, four);
}

#[test]
fn unstable_environment_is_truncated_and_autoreset() {
    // Environment 1 is handed over in a state MuJoCo rejects: |qvel| = 1e12 exceeds
    // mjMAXVAL (1e10), so the next mj_step warns BADQVEL and resets its data. The
    // VecEnv must end that episode (truncated) and reset it in the same call.
    let mut built: Vec<Box<dyn Env>> = (0..3).map(|_| envs::make("Hopper-v5").unwrap()).collect();
    for (i, env) in built.iter_mut().enumerate() {
        env.reset(Some(i as u64)).unwrap();
    }
    let mj = built[1].as_mujoco_mut().unwrap();
    let (qpos, mut qvel) = mj.state();
    qvel[0] = 1e12;
    mj.set_state(&qpos, &qvel).unwrap();
    let mut v = VecEnv::new(built, 2).unwrap();
    v.step(&[0.0; 9]).unwrap();
    assert_eq!(v.instability(1), Some(Instability::BadQvel));
    assert!(v.truncated()[1] && v.done(1));
    assert_eq!(v.final_length(1), 1);
    assert!(!v.done(0) && !v.done(2));
    assert_eq!(v.instability(0), None);
    // The environment was reset, so stepping goes on without error.
    for _ in 0..5 {
        v.step(&[0.0; 9]).unwrap();
        assert_eq!(v.instability(1), None);
    }
    assert!(v.observations().iter().all(|x| x.is_finite()));
}
