//! AC and STAC end to end: a short CartPole run rises well above a random policy's return,
//! the same seed gives the same numbers, resuming from `state_tensors` (through a safetensors
//! file) continues bit-exactly, continuous actions work, and bad inputs are clear errors.
#![cfg(feature = "trainer")]

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use stackrl::algos::{
    EpochData, OnPolicyAgent, OnPolicyAlgo, OnPolicyConfig, OnPolicyError, OptimizerKind,
    SegmentEnd, StacConfig, run_epochs,
};
use stackrl::autodiff;
use stackrl::envs::{self, Env, Space};
use stackrl::rng::Rng;

/// A budget that learns CartPole within 10 epochs of 1000 steps on every seed we tried
/// (AC and STAC, seeds 0-5: mean return of epochs 8-10 between 83 and 280; a uniformly
/// random policy averages about 22).
fn quick_config(algo: OnPolicyAlgo) -> OnPolicyConfig {
    OnPolicyConfig {
        algo,
        steps_per_epoch: 1000,
        critic_steps: 10,
        optimizer: OptimizerKind::Adam,
        actor_lr: 1e-2,
        critic_lr: 1e-2,
        ..OnPolicyConfig::default()
    }
}

fn returns(records: &[stackrl::algos::EpochRecord]) -> Vec<f64> {
    records
        .iter()
        .map(|r| r.stats.mean_return.unwrap_or(f64::NAN))
        .collect()
}

fn check_learns(algo: OnPolicyAlgo, seed: u64) {
    let records = run_epochs("CartPole-v1", &quick_config(algo), seed, 10).unwrap();
    let r = returns(&records);
    let late = (r[7] + r[8] + r[9]) / 3.0;
    eprintln!("{algo:?} seed {seed}: epoch mean returns {r:.0?}; last three {late:.1}");
    assert!(r[0] < 35.0, "the first epoch is near random: {}", r[0]);
    assert!(late > 60.0, "mean return of epochs 8-10 is {late}");
    let mut with_implicit = 0;
    for rec in &records {
        let s = &rec.stats;
        assert!(s.critic_loss.is_finite() && s.total_grad_norm.is_finite());
        if algo == OnPolicyAlgo::Stac {
            assert_eq!(s.lambda, Some(0.0));
            assert!(s.cg_iterations >= 1);
            eprintln!(
                "  epoch {}: CG {} iterations, {:?}, |implicit| {:.2e} vs |direct| {:.2e}",
                s.epoch, s.cg_iterations, s.cg_stop, s.implicit_grad_norm, s.direct_grad_norm
            );
            // With λ = 0 an indefinite Hessian can stop CG at its first direction (then the
            // step is AC's); most epochs must carry an implicit term.
            with_implicit += usize::from(s.implicit_grad_norm > 0.0);
        }
    }
    if algo == OnPolicyAlgo::Stac {
        assert!(
            with_implicit >= 5,
            "{with_implicit} of 10 epochs had an implicit term"
        );
    }
}

#[test]
fn ac_learns_cartpole() {
    check_learns(OnPolicyAlgo::Ac, 0);
    check_learns(OnPolicyAlgo::Ac, 1);
}

#[test]
fn stac_learns_cartpole() {
    check_learns(OnPolicyAlgo::Stac, 0);
    check_learns(OnPolicyAlgo::Stac, 1);
}

/// STAC with every piece of state exercised: Adam moments, a decaying λ (epoch counter) and
/// the CG warm start.
fn stateful_config() -> OnPolicyConfig {
    OnPolicyConfig {
        algo: OnPolicyAlgo::Stac,
        steps_per_epoch: 300,
        critic_steps: 5,
        optimizer: OptimizerKind::Adam,
        actor_lr: 1e-2,
        critic_lr: 1e-2,
        hidden: vec![32, 32],
        stac: StacConfig {
            lambda: 50.0,
            lambda_decay: 0.5,
            lambda_min: 1.0,
            warm_start: true,
            ..StacConfig::default()
        },
        ..OnPolicyConfig::default()
    }
}

#[test]
fn same_seed_same_numbers() {
    autodiff::enable_second_order().unwrap();
    let cfg = stateful_config();
    let a = run_epochs("CartPole-v1", &cfg, 3, 3).unwrap();
    let b = run_epochs("CartPole-v1", &cfg, 3, 3).unwrap();
    let c = run_epochs("CartPole-v1", &cfg, 4, 3).unwrap();
    let stats =
        |r: &[stackrl::algos::EpochRecord]| r.iter().map(|x| x.stats.clone()).collect::<Vec<_>>();
    assert_eq!(stats(&a), stats(&b));
    assert_ne!(stats(&a), stats(&c));
    // λ follows its schedule: 50, 25, 12.5.
    let lambdas: Vec<_> = a.iter().map(|r| r.stats.lambda.unwrap()).collect();
    assert_eq!(lambdas, vec![50.0, 25.0, 12.5]);
}

fn new_agent(cfg: &OnPolicyConfig, env: &dyn Env, rng: &mut Rng) -> OnPolicyAgent {
    OnPolicyAgent::new(
        cfg.clone(),
        env.observation_space(),
        env.action_space(),
        rng,
    )
    .unwrap()
}

fn tensors_equal(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, t)| {
            b.get(k).is_some_and(|u| {
                t.shape() == u.shape()
                    && t.to_dtype(DType::F64)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f64>()
                        .unwrap()
                        == u.to_dtype(DType::F64)
                            .unwrap()
                            .flatten_all()
                            .unwrap()
                            .to_vec1::<f64>()
                            .unwrap()
            })
        })
}

#[test]
fn resume_from_saved_state_is_exact() {
    autodiff::enable_second_order().unwrap();
    let cfg = stateful_config();
    let mut env = envs::make("CartPole-v1").unwrap();
    // Uninterrupted: four epochs.
    let mut rng = Rng::seed_from_u64(9);
    let mut agent = new_agent(&cfg, env.as_ref(), &mut rng);
    let mut straight = Vec::new();
    for _ in 0..4 {
        let d = agent.collect_epoch(env.as_mut(), &mut rng).unwrap();
        straight.push(agent.update(&d).unwrap());
    }
    let final_state = agent.state_tensors().unwrap();
    assert!(final_state.contains_key("cg_warm_start"));
    assert!(final_state.contains_key("actor_opt.0.m"));

    // Two epochs, checkpoint to a safetensors file with the RNG state, restore into an agent
    // initialised differently, two more epochs.
    let mut rng = Rng::seed_from_u64(9);
    let mut agent = new_agent(&cfg, env.as_ref(), &mut rng);
    for _ in 0..2 {
        let d = agent.collect_epoch(env.as_mut(), &mut rng).unwrap();
        agent.update(&d).unwrap();
    }
    let path = std::env::temp_dir().join(format!("stackrl-stac-resume-{}.st", std::process::id()));
    candle_core::safetensors::save(&agent.state_tensors().unwrap(), &path).unwrap();
    let rng_bytes = rng.to_bytes();
    drop(agent);
    let mut other = Rng::seed_from_u64(12345);
    let mut resumed = new_agent(&cfg, env.as_ref(), &mut other);
    let loaded = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    std::fs::remove_file(&path).ok();
    resumed.load_state_tensors(&loaded).unwrap();
    assert_eq!(resumed.epochs_done(), 2);
    let mut rng = Rng::from_bytes(&rng_bytes).unwrap();
    for (i, want) in straight[2..].iter().enumerate() {
        let d = resumed.collect_epoch(env.as_mut(), &mut rng).unwrap();
        let got = resumed.update(&d).unwrap();
        assert_eq!(&got, want, "epoch {}", i + 3);
    }
    assert!(tensors_equal(
        &resumed.state_tensors().unwrap(),
        &final_state
    ));
}

#[test]
fn continuous_actions_gaussian_policy() {
    autodiff::enable_second_order().unwrap();
    let cfg = OnPolicyConfig {
        algo: OnPolicyAlgo::Stac,
        steps_per_epoch: 200,
        critic_steps: 3,
        init_log_std: Some(-1.0),
        stac: StacConfig {
            lambda: 500.0,
            ..StacConfig::default()
        },
        ..OnPolicyConfig::default()
    };
    let mut env = envs::make("InvertedPendulum-v5").unwrap();
    let mut rng = Rng::seed_from_u64(0);
    let mut agent = new_agent(&cfg, env.as_ref(), &mut rng);
    let log_std = agent.policy().vars().last().unwrap().as_tensor();
    assert_eq!(
        log_std
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap(),
        vec![-1.0]
    );
    for _ in 0..2 {
        let d = agent.collect_epoch(env.as_mut(), &mut rng).unwrap();
        assert_eq!(d.act_len, 1);
        assert!(
            d.actions.iter().any(|a| *a != d.actions[0]),
            "actions are sampled"
        );
        let s = agent.update(&d).unwrap();
        assert!(s.critic_loss.is_finite() && s.total_grad_norm.is_finite());
        assert!(s.cg_iterations >= 1 && s.implicit_grad_norm > 0.0);
        assert_eq!(s.lambda, Some(500.0));
    }
    let a = agent.act(&[0.0; 4], true, &mut rng).unwrap();
    assert_eq!(a.len(), 1);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let cartpole = envs::make("CartPole-v1").unwrap();
    let (obs, act) = (cartpole.observation_space(), cartpole.action_space());
    let build = |cfg: OnPolicyConfig| {
        OnPolicyAgent::new(cfg, obs, act, &mut Rng::seed_from_u64(0)).map(|_| ())
    };
    let base = OnPolicyConfig::default;
    let with_lambda = |l: f64| OnPolicyConfig {
        stac: StacConfig {
            lambda: l,
            ..StacConfig::default()
        },
        ..base()
    };
    for l in [-1.0, f64::NAN, f64::INFINITY] {
        let e = build(with_lambda(l)).unwrap_err();
        assert!(matches!(e, OnPolicyError::InvalidLambda(_)), "{e}");
        assert!(e.to_string().contains("lambda"), "{e}");
    }
    let e = build(OnPolicyConfig {
        critic_steps: 0,
        ..base()
    })
    .unwrap_err();
    assert!(matches!(e, OnPolicyError::ZeroCriticSteps), "{e}");
    let e = build(OnPolicyConfig {
        init_log_std: Some(-0.5),
        ..base()
    })
    .unwrap_err();
    assert!(
        matches!(
            e,
            OnPolicyError::ContinuousOnlyOption {
                option: "init_log_std",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("Discrete(2)"), "{e}");
    let invalid = [
        OnPolicyConfig {
            steps_per_epoch: 0,
            ..base()
        },
        OnPolicyConfig {
            gamma: 0.0,
            ..base()
        },
        OnPolicyConfig {
            gae_lambda: 1.5,
            ..base()
        },
        OnPolicyConfig {
            actor_lr: -1e-3,
            ..base()
        },
        OnPolicyConfig {
            critic_lr: f64::NAN,
            ..base()
        },
        OnPolicyConfig {
            hidden: vec![],
            ..base()
        },
        OnPolicyConfig {
            stac: StacConfig {
                lambda_decay: 0.0,
                ..StacConfig::default()
            },
            ..base()
        },
        OnPolicyConfig {
            stac: StacConfig {
                lambda: 1.0,
                lambda_min: 2.0,
                ..StacConfig::default()
            },
            ..base()
        },
        OnPolicyConfig {
            stac: StacConfig {
                cg_iters: 0,
                ..StacConfig::default()
            },
            ..base()
        },
    ];
    for cfg in invalid {
        let e = build(cfg.clone()).unwrap_err();
        assert!(matches!(e, OnPolicyError::InvalidConfig(_)), "{cfg:?}: {e}");
    }
    // Unsupported spaces.
    let e = OnPolicyAgent::new(base(), &Space::Discrete(3), act, &mut Rng::seed_from_u64(0))
        .unwrap_err();
    assert!(matches!(e, OnPolicyError::UnsupportedSpace(_)), "{e}");
    // Unknown environment.
    let e = run_epochs("NoSuchEnv-v0", &base(), 0, 1).unwrap_err();
    assert!(matches!(e, OnPolicyError::Env(_)), "{e}");

    // An agent for CartPole on another environment, and malformed epoch data.
    let cfg = OnPolicyConfig {
        steps_per_epoch: 50,
        ..base()
    };
    let mut rng = Rng::seed_from_u64(1);
    let mut agent = OnPolicyAgent::new(cfg, obs, act, &mut rng).unwrap();
    let mut pendulum = envs::make("InvertedPendulum-v5").unwrap();
    let e = agent
        .collect_epoch(pendulum.as_mut(), &mut rng)
        .unwrap_err();
    assert!(matches!(e, OnPolicyError::Mismatch(_)), "{e}");
    let mut env = envs::make("CartPole-v1").unwrap();
    let good = agent.collect_epoch(env.as_mut(), &mut rng).unwrap();
    type Breakage = Box<dyn Fn(&mut EpochData)>;
    let broken: Vec<(&str, Breakage)> = vec![
        (
            "no steps",
            Box::new(|d| {
                *d = EpochData {
                    obs: vec![],
                    actions: vec![],
                    rewards: vec![],
                    segments: vec![],
                    ..d.clone()
                }
            }),
        ),
        (
            "short obs",
            Box::new(|d| {
                d.obs.pop();
            }),
        ),
        ("gap", Box::new(|d| d.segments[0].len -= 1)),
        (
            "uncovered",
            Box::new(|d| {
                d.segments.pop();
            }),
        ),
        ("nan reward", Box::new(|d| d.rewards[3] = f64::NAN)),
        ("action 2 of Discrete(2)", Box::new(|d| d.actions[0] = 2.0)),
        ("fractional action", Box::new(|d| d.actions[0] = 0.5)),
        ("wrong width", Box::new(|d| d.obs_dim = 3)),
        (
            "bad bootstrap",
            Box::new(|d| {
                d.segments.last_mut().unwrap().end = SegmentEnd::EpochEnd {
                    next_obs: vec![0.0; 2],
                }
            }),
        ),
    ];
    for (what, f) in &broken {
        let mut d = good.clone();
        f(&mut d);
        let e = agent.update(&d).unwrap_err();
        assert!(matches!(e, OnPolicyError::Mismatch(_)), "{what}: {e}");
    }
    assert_eq!(agent.epochs_done(), 0, "failed updates change nothing");
    agent.update(&good).unwrap();

    // Saved state with missing or misshapen entries.
    let state = agent.state_tensors().unwrap();
    let mut missing = state.clone();
    missing.remove("critic.0");
    assert!(matches!(
        agent.load_state_tensors(&missing).unwrap_err(),
        OnPolicyError::Mismatch(_)
    ));
    let mut misshapen = state.clone();
    misshapen.insert(
        "actor.0".into(),
        Tensor::zeros((3, 3), DType::F32, &candle_core::Device::Cpu).unwrap(),
    );
    assert!(matches!(
        agent.load_state_tensors(&misshapen).unwrap_err(),
        OnPolicyError::Mismatch(_)
    ));
    // A failed load leaves the agent as it was.
    assert!(tensors_equal(&agent.state_tensors().unwrap(), &state));
    // Wrong observation width when acting.
    assert!(agent.act(&[0.0; 3], true, &mut rng).is_err());
}
