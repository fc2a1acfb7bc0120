//! The public environment API (`stackrl::envs`): registry, configuration overrides,
//! input validation, seeding, physics semantics and instability handling.
//!
//! Gymnasium-exactness of trajectories is checked in `gymnasium_fixtures.rs`; these
//! tests check the behaviour around it. Every test is deterministic (seeded resets,
//! seeded action generators) and runs in milliseconds.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use stackrl::envs::{
    self, CartPole, Env, EnvConfig, EnvError, Instability, MujocoEnv, Space, Step, TimeLimit,
};
use std::f64::consts::PI;
use std::path::PathBuf;

/// Every registered id, in registry order.
const IDS: [&str; 7] = [
    "Hopper-v5",
    "Walker2d-v5",
    "HalfCheetah-v5",
    "Reacher-v5",
    "InvertedPendulum-v5",
    "Pendulum-v1",
    "CartPole-v1",
];

/// The MuJoCo-backed ids.
const MUJOCO_IDS: [&str; 6] = [
    "Hopper-v5",
    "Walker2d-v5",
    "HalfCheetah-v5",
    "Reacher-v5",
    "InvertedPendulum-v5",
    "Pendulum-v1",
];

fn make(id: &str) -> Box<dyn Env> {
    envs::make(id).unwrap_or_else(|e| panic!("make({id}): {e}"))
}

fn make_with(id: &str, config: &EnvConfig) -> Box<dyn Env> {
    envs::make_with(id, config).unwrap_or_else(|e| panic!("make_with({id}): {e}"))
}

fn make_err(id: &str, config: &EnvConfig) -> EnvError {
    match envs::make_with(id, config) {
        Ok(_) => panic!("make_with({id}, {config:?}) should fail"),
        Err(e) => e,
    }
}

fn mj(env: &dyn Env) -> &dyn MujocoEnv {
    env.as_mujoco().expect("a MuJoCo environment")
}

fn mj_mut(env: &mut dyn Env) -> &mut dyn MujocoEnv {
    env.as_mujoco_mut().expect("a MuJoCo environment")
}

fn state(env: &dyn Env) -> (Vec<f64>, Vec<f64>) {
    mj(env).state()
}

fn model_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(file)
}

/// A path in the temp dir unique to this process and `tag`.
fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("stackrl_env_api_{}_{tag}.xml", std::process::id()))
}

/// A uniformly random valid action of `space`.
fn random_action(space: &Space, rng: &mut Pcg64) -> Vec<f64> {
    match space {
        Space::Discrete(n) => vec![rng.random_range(0..*n) as f64],
        Space::Box { low, high } => low
            .iter()
            .zip(high)
            .map(|(lo, hi)| rng.random_range(*lo..*hi))
            .collect(),
    }
}

/// A fixed valid, non-zero action.
fn some_action(env: &dyn Env) -> Vec<f64> {
    match env.action_space() {
        Space::Discrete(_) => vec![1.0],
        Space::Box { high, .. } => high.iter().map(|h| 0.5 * h).collect(),
    }
}

// ---------------------------------------------------------------------------
// 1. Registry
// ---------------------------------------------------------------------------

#[test]
fn registry_lists_exactly_the_seven_ids() {
    let mut ids = envs::ids();
    assert_eq!(ids.len(), 7, "{ids:?}");
    ids.sort_unstable();
    let mut expected = IDS.to_vec();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    // The specs agree with ids() and each id resolves to its own spec.
    assert_eq!(
        envs::specs().iter().map(|s| s.id).collect::<Vec<_>>(),
        envs::ids()
    );
    for id in IDS {
        assert_eq!(envs::spec(id).unwrap().id, id);
    }
}

#[test]
fn unknown_id_errors_listing_valid_ids() {
    for result in [
        envs::make("Nope-v0").map(|_| ()),
        envs::make_with("Nope-v0", &EnvConfig::default()).map(|_| ()),
        envs::spec("Nope-v0").map(|_| ()),
    ] {
        let err = result.expect_err("unknown id must fail");
        let message = err.to_string();
        match &err {
            EnvError::UnknownId { id, valid } => {
                assert_eq!(id, "Nope-v0");
                let mut valid = valid.clone();
                valid.sort_unstable();
                let mut expected = IDS.to_vec();
                expected.sort_unstable();
                assert_eq!(valid, expected);
            }
            other => panic!("expected UnknownId, got {other:?}"),
        }
        assert!(message.contains("Nope-v0"), "{message}");
        for id in IDS {
            assert!(message.contains(id), "'{message}' does not list {id}");
        }
    }
    // Near misses are not accepted either (ids are exact).
    assert!(envs::make("hopper-v5").is_err());
    assert!(envs::make("Hopper-v4").is_err());
}

#[test]
fn registered_spaces_match_the_spec() {
    // (id, obs dim, action space)
    let expected: [(&str, usize, Space); 7] = [
        ("Hopper-v5", 11, Space::uniform_box(3, -1.0, 1.0)),
        ("Walker2d-v5", 17, Space::uniform_box(6, -1.0, 1.0)),
        ("HalfCheetah-v5", 17, Space::uniform_box(6, -1.0, 1.0)),
        ("Reacher-v5", 10, Space::uniform_box(2, -1.0, 1.0)),
        ("InvertedPendulum-v5", 4, Space::uniform_box(1, -3.0, 3.0)),
        ("Pendulum-v1", 3, Space::uniform_box(1, -2.0, 2.0)),
        ("CartPole-v1", 4, Space::Discrete(2)),
    ];
    for (id, obs_dim, action_space) in expected {
        let mut env = make(id);
        assert_eq!(env.id(), id);
        assert_eq!(env.observation_space().dim(), obs_dim, "{id} obs dim");
        assert_eq!(env.action_space(), &action_space, "{id} action space");
        // The buffers the allocating API hands out have the same sizes.
        let (obs, _) = env.reset(Some(0)).unwrap();
        assert_eq!(obs.len(), obs_dim, "{id} reset obs");
        let step = env.step(&some_action(env.as_ref())).unwrap();
        assert_eq!(step.obs.len(), obs_dim, "{id} step obs");
        // MuJoCo v5 environments have unbounded observations.
        if id.ends_with("-v5") {
            assert_eq!(
                env.observation_space(),
                &Space::uniform_box(obs_dim, f64::NEG_INFINITY, f64::INFINITY),
                "{id} observation space"
            );
        }
        assert_eq!(
            env.as_mujoco().is_some(),
            id != "CartPole-v1",
            "{id} as_mujoco"
        );
        assert_eq!(envs::spec(id).unwrap().mujoco, id != "CartPole-v1");
    }

    let pendulum = make("Pendulum-v1");
    assert_eq!(
        pendulum.observation_space(),
        &Space::Box {
            low: vec![-1.0, -1.0, -8.0],
            high: vec![1.0, 1.0, 8.0],
        }
    );
    let cartpole = make("CartPole-v1");
    let (low, high) = cartpole.observation_space().bounds().unwrap();
    let theta = 12.0 * 2.0 * PI / 360.0;
    assert_eq!(high, &[4.8, f64::INFINITY, 2.0 * theta, f64::INFINITY]);
    assert_eq!(
        low,
        &[-4.8, f64::NEG_INFINITY, -2.0 * theta, f64::NEG_INFINITY]
    );
    assert!((high[2] - 0.41887902).abs() < 1e-8);
    assert_eq!(cartpole.action_space().n(), Some(2));
}

#[test]
fn registered_dt_render_fps_and_limits() {
    // (id, dt, render_fps, max_episode_steps)
    let expected = [
        ("Hopper-v5", 0.008, 125, 1000),
        ("Walker2d-v5", 0.008, 125, 1000),
        ("HalfCheetah-v5", 0.05, 20, 1000),
        ("Reacher-v5", 0.02, 50, 50),
        ("InvertedPendulum-v5", 0.04, 25, 1000),
        ("Pendulum-v1", 0.05, 20, 200),
        ("CartPole-v1", 0.02, 50, 500),
    ];
    for (id, dt, fps, limit) in expected {
        let env = make(id);
        assert!(
            (env.dt() - dt).abs() < 1e-15,
            "{id}: dt {} != {dt}",
            env.dt()
        );
        assert_eq!(env.render_fps(), fps, "{id} render_fps");
        assert_eq!(envs::spec(id).unwrap().max_episode_steps, limit, "{id}");
    }
}

#[test]
fn default_time_limits_truncate_at_the_registered_step() {
    // Reacher and Pendulum never terminate, so their registered limits are reached.
    for (id, limit) in [("Reacher-v5", 50), ("Pendulum-v1", 200)] {
        let mut env = make(id);
        env.reset(Some(3)).unwrap();
        let action = some_action(env.as_ref());
        for t in 1..=limit {
            let step = env.step(&action).unwrap();
            assert!(!step.terminated, "{id} step {t}");
            assert_eq!(step.truncated, t == limit, "{id} step {t}");
        }
    }
}

// ---------------------------------------------------------------------------
// 2. EnvConfig overrides
// ---------------------------------------------------------------------------

#[test]
fn inapplicable_option_errors_naming_accepted_options() {
    let config = EnvConfig {
        healthy_z_range: Some((0.5, 2.0)),
        ..Default::default()
    };
    let err = make_err("HalfCheetah-v5", &config);
    assert!(matches!(err, EnvError::InvalidConfig { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("healthy_z_range"), "{message}");
    for accepted in [
        "max_episode_steps",
        "frame_skip",
        "xml_file",
        "reset_noise_scale",
        "forward_reward_weight",
        "ctrl_cost_weight",
        "exclude_current_positions_from_observation",
    ] {
        assert!(message.contains(accepted), "'{message}' lacks {accepted}");
    }
    // The same option is accepted where it applies.
    assert!(envs::make_with("Hopper-v5", &config).is_ok());

    // Other mismatches: MuJoCo options on CartPole, CartPole's option on Pendulum, g on Hopper.
    let cases: [(&str, EnvConfig, &str); 5] = [
        (
            "CartPole-v1",
            EnvConfig {
                frame_skip: Some(2),
                ..Default::default()
            },
            "frame_skip",
        ),
        (
            "Pendulum-v1",
            EnvConfig {
                sutton_barto_reward: Some(true),
                ..Default::default()
            },
            "sutton_barto_reward",
        ),
        (
            "Hopper-v5",
            EnvConfig {
                g: Some(9.81),
                ..Default::default()
            },
            "'g'",
        ),
        (
            "Pendulum-v1",
            EnvConfig {
                xml_file: Some(model_path("pendulum.xml")),
                ..Default::default()
            },
            "xml_file",
        ),
        (
            "Reacher-v5",
            EnvConfig {
                ctrl_cost_weight: Some(0.1),
                ..Default::default()
            },
            "ctrl_cost_weight",
        ),
    ];
    for (id, config, name) in cases {
        let err = make_err(id, &config);
        assert!(
            matches!(err, EnvError::InvalidConfig { .. }),
            "{id}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{id}: {err}");
    }
    // max_episode_steps applies to every environment.
    for id in IDS {
        let config = EnvConfig {
            max_episode_steps: Some(7),
            ..Default::default()
        };
        assert!(envs::make_with(id, &config).is_ok(), "{id}");
    }
}

#[test]
fn bad_config_values_error() {
    let cases: Vec<(&str, EnvConfig)> = vec![
        (
            "Hopper-v5",
            EnvConfig {
                frame_skip: Some(0),
                ..Default::default()
            },
        ),
        (
            "CartPole-v1",
            EnvConfig {
                max_episode_steps: Some(0),
                ..Default::default()
            },
        ),
        (
            "Hopper-v5",
            EnvConfig {
                max_episode_steps: Some(0),
                ..Default::default()
            },
        ),
        (
            "HalfCheetah-v5",
            EnvConfig {
                ctrl_cost_weight: Some(f64::NAN),
                ..Default::default()
            },
        ),
        (
            "Hopper-v5",
            EnvConfig {
                forward_reward_weight: Some(f64::INFINITY),
                ..Default::default()
            },
        ),
        (
            "Reacher-v5",
            EnvConfig {
                reward_dist_weight: Some(f64::NAN),
                ..Default::default()
            },
        ),
        (
            "Pendulum-v1",
            EnvConfig {
                g: Some(f64::NEG_INFINITY),
                ..Default::default()
            },
        ),
        (
            "Hopper-v5",
            EnvConfig {
                healthy_z_range: Some((2.0, 0.7)),
                ..Default::default()
            },
        ),
        (
            "Hopper-v5",
            EnvConfig {
                healthy_angle_range: Some((0.1, 0.1)),
                ..Default::default()
            },
        ),
        (
            "Hopper-v5",
            EnvConfig {
                healthy_state_range: Some((f64::NAN, 100.0)),
                ..Default::default()
            },
        ),
        (
            "InvertedPendulum-v5",
            EnvConfig {
                reset_noise_scale: Some(-0.01),
                ..Default::default()
            },
        ),
    ];
    for (id, config) in cases {
        let err = make_err(id, &config);
        assert!(
            matches!(err, EnvError::InvalidConfig { .. }),
            "{id} {config:?}: {err:?}"
        );
    }
    // Open upper bounds are fine (Hopper's default z range is (0.7, inf)).
    let ok = EnvConfig {
        healthy_z_range: Some((0.7, f64::INFINITY)),
        ..Default::default()
    };
    assert!(envs::make_with("Hopper-v5", &ok).is_ok());
}

#[test]
fn frame_skip_override_changes_dt() {
    for (id, frame_skip, dt, fps) in [
        ("Hopper-v5", 2, 0.004, 250),
        ("HalfCheetah-v5", 1, 0.01, 100),
        ("Reacher-v5", 5, 0.05, 20),
    ] {
        let config = EnvConfig {
            frame_skip: Some(frame_skip),
            ..Default::default()
        };
        let env = make_with(id, &config);
        assert!((env.dt() - dt).abs() < 1e-15, "{id}: {}", env.dt());
        assert_eq!(env.render_fps(), fps, "{id}");
        assert_eq!(mj(env.as_ref()).sim().frame_skip(), frame_skip);
    }
    // The simulation time advanced by a step is dt.
    let config = EnvConfig {
        frame_skip: Some(3),
        ..Default::default()
    };
    let mut env = make_with("Hopper-v5", &config);
    env.reset(Some(0)).unwrap();
    env.step(&[0.0; 3]).unwrap();
    let time = mj(env.as_ref()).data().time();
    assert!((time - 0.006).abs() < 1e-12, "time {time}");
}

#[test]
fn max_episode_steps_override_truncates_exactly() {
    for id in ["Pendulum-v1", "Reacher-v5", "HalfCheetah-v5"] {
        let config = EnvConfig {
            max_episode_steps: Some(3),
            ..Default::default()
        };
        let mut env = make_with(id, &config);
        let action = some_action(env.as_ref());
        for episode in 0..2 {
            env.reset(Some(episode)).unwrap();
            for t in 1..=5 {
                let step = env.step(&action).unwrap();
                assert_eq!(step.truncated, t >= 3, "{id} episode {episode} step {t}");
                assert!(!step.terminated);
            }
        }
    }
    // The TimeLimit type reports its count and limit.
    let mut env = TimeLimit::new(CartPole::with_config(&EnvConfig::default()).unwrap(), 2);
    assert_eq!(env.max_episode_steps(), 2);
    env.reset(Some(0)).unwrap();
    assert_eq!(env.elapsed_steps(), 0);
    assert!(!env.step(&[0.0]).unwrap().truncated);
    assert_eq!(env.elapsed_steps(), 1);
    assert!(env.step(&[1.0]).unwrap().truncated);
    assert_eq!(env.elapsed_steps(), 2);
    env.reset(None).unwrap();
    assert_eq!(env.elapsed_steps(), 0);
}

#[test]
fn zero_ctrl_cost_weight_changes_reward_by_reward_ctrl() {
    for (id, default_weight) in [
        ("Hopper-v5", 1e-3),
        ("HalfCheetah-v5", 0.1),
        ("Walker2d-v5", 1e-3),
    ] {
        let mut default = make(id);
        let config = EnvConfig {
            ctrl_cost_weight: Some(0.0),
            ..Default::default()
        };
        let mut free = make_with(id, &config);
        default.reset(Some(11)).unwrap();
        free.reset(Some(11)).unwrap();
        let mut rng = Pcg64::seed_from_u64(5);
        for t in 0..10 {
            let action = random_action(default.action_space(), &mut rng);
            let a = default.step(&action).unwrap();
            let b = free.step(&action).unwrap();
            // Same physics, only the reward differs.
            assert_eq!(a.obs, b.obs, "{id} step {t}");
            let ctrl = a.info.get("reward_ctrl").unwrap();
            let expected_ctrl: f64 = action.iter().map(|x| x * x).sum::<f64>() * default_weight;
            assert!(ctrl < 0.0, "{id}: reward_ctrl {ctrl}");
            assert!(
                (ctrl + expected_ctrl).abs() <= 1e-6 * expected_ctrl,
                "{id}: reward_ctrl {ctrl} vs -{expected_ctrl}"
            );
            assert_eq!(b.info.get("reward_ctrl").unwrap(), 0.0, "{id}");
            assert_eq!(a.reward, b.reward + ctrl, "{id} step {t}");
            if a.terminated || b.terminated {
                break;
            }
        }
    }
}

#[test]
fn hopper_with_current_position_observes_x() {
    let config = EnvConfig {
        exclude_current_positions_from_observation: Some(false),
        ..Default::default()
    };
    let mut with_x = make_with("Hopper-v5", &config);
    let mut without_x = make("Hopper-v5");
    assert_eq!(with_x.observation_space().dim(), 12);
    let (obs, info) = with_x.reset(Some(4)).unwrap();
    let (obs11, _) = without_x.reset(Some(4)).unwrap();
    assert_eq!(obs.len(), 12);
    assert_eq!(obs[0], info.get("x_position").unwrap());
    assert_eq!(obs[0], state(with_x.as_ref()).0[0]);
    assert_eq!(&obs[1..], &obs11[..]);
    for _ in 0..20 {
        let a = with_x.step(&[0.4, -0.2, 0.3]).unwrap();
        let b = without_x.step(&[0.4, -0.2, 0.3]).unwrap();
        assert_eq!(a.obs.len(), 12);
        assert_eq!(a.obs[0], a.info.get("x_position").unwrap());
        assert_eq!(&a.obs[1..], &b.obs[..]);
        assert_eq!(a.reward, b.reward);
    }
    // The hopper moved, so obs[0] is a live x and not a constant.
    assert_ne!(state(with_x.as_ref()).0[0], obs[0]);
    // HalfCheetah likewise: 18 entries.
    let cheetah = make_with("HalfCheetah-v5", &config);
    assert_eq!(cheetah.observation_space().dim(), 18);
}

#[test]
fn xml_file_missing_errors_model_load() {
    let path = temp_path("missing");
    let _ = std::fs::remove_file(&path);
    let config = EnvConfig {
        xml_file: Some(path.clone()),
        ..Default::default()
    };
    match make_err("Hopper-v5", &config) {
        EnvError::ModelLoad { source_name, .. } => {
            assert!(source_name.contains("stackrl_env_api_"), "{source_name}");
        }
        other => panic!("expected ModelLoad, got {other:?}"),
    }
}

#[test]
fn xml_file_malformed_errors_with_mujoco_text() {
    let path = temp_path("malformed");
    std::fs::write(
        &path,
        "<mujoco model=\"broken\">\n  <worldbody>\n    <body>\n</mujoco>\n",
    )
    .unwrap();
    let config = EnvConfig {
        xml_file: Some(path.clone()),
        ..Default::default()
    };
    let err = make_err("Hopper-v5", &config);
    std::fs::remove_file(&path).unwrap();
    match &err {
        EnvError::ModelLoad {
            source_name,
            message,
        } => {
            assert!(source_name.contains("malformed"), "{source_name}");
            // MuJoCo's (tinyxml's) own words, e.g. "XML parse error 14: ...".
            assert!(message.contains("XML parse error"), "{message}");
        }
        other => panic!("expected ModelLoad, got {other:?}"),
    }

    // A well-formed XML that MuJoCo's compiler rejects (unknown joint in an actuator).
    let path = temp_path("uncompilable");
    std::fs::write(
        &path,
        "<mujoco><worldbody><body><geom size=\"0.1\"/><joint name=\"j\"/></body></worldbody>\
         <actuator><motor joint=\"missing\"/></actuator></mujoco>",
    )
    .unwrap();
    let config = EnvConfig {
        xml_file: Some(path.clone()),
        ..Default::default()
    };
    let err = make_err("InvertedPendulum-v5", &config);
    std::fs::remove_file(&path).unwrap();
    match &err {
        EnvError::ModelLoad { message, .. } => {
            // MuJoCo's compiler: "unknown transmission target 'missing' ...".
            assert!(message.contains("'missing'"), "{message}");
        }
        other => panic!("expected ModelLoad, got {other:?}"),
    }
}

#[test]
fn xml_file_of_another_model_errors_model_mismatch() {
    for (id, file) in [
        ("Hopper-v5", "reacher.xml"),
        ("Reacher-v5", "hopper.xml"),
        // (walker2d.xml has HalfCheetah's sizes, 9/9/6, and would be accepted: the
        // check is structural, as Gymnasium's xml_file is unchecked.)
        ("HalfCheetah-v5", "hopper.xml"),
        ("Walker2d-v5", "inverted_pendulum.xml"),
        ("InvertedPendulum-v5", "pendulum.xml"),
    ] {
        let config = EnvConfig {
            xml_file: Some(model_path(file)),
            ..Default::default()
        };
        match make_err(id, &config) {
            EnvError::ModelMismatch {
                env, source_name, ..
            } => {
                assert_eq!(env, id);
                assert!(source_name.contains(file), "{source_name}");
            }
            other => panic!("{id} with {file}: expected ModelMismatch, got {other:?}"),
        }
    }

    // Right sizes but a missing body: Reacher needs a body called "fingertip".
    let xml = std::fs::read_to_string(model_path("reacher.xml")).unwrap();
    let renamed = xml.replace("<body name=\"fingertip\"", "<body name=\"tip\"");
    assert_ne!(renamed, xml);
    let path = temp_path("no_fingertip");
    std::fs::write(&path, renamed).unwrap();
    let config = EnvConfig {
        xml_file: Some(path.clone()),
        ..Default::default()
    };
    let err = make_err("Reacher-v5", &config);
    std::fs::remove_file(&path).unwrap();
    match &err {
        EnvError::ModelMismatch { message, .. } => {
            assert!(message.contains("fingertip"), "{message}")
        }
        other => panic!("expected ModelMismatch, got {other:?}"),
    }
}

#[test]
fn xml_file_of_the_builtin_model_behaves_like_the_builtin() {
    for (id, file) in [("Hopper-v5", "hopper.xml"), ("Reacher-v5", "reacher.xml")] {
        let config = EnvConfig {
            xml_file: Some(model_path(file)),
            ..Default::default()
        };
        let mut from_file = make_with(id, &config);
        let mut builtin = make(id);
        assert!(mj(from_file.as_ref()).sim().source().contains(file));
        assert_eq!(
            from_file.reset(Some(9)).unwrap(),
            builtin.reset(Some(9)).unwrap()
        );
        let mut rng = Pcg64::seed_from_u64(1);
        for _ in 0..20 {
            let action = random_action(builtin.action_space(), &mut rng);
            assert_eq!(
                from_file.step(&action).unwrap(),
                builtin.step(&action).unwrap()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Bad input never panics and leaves the state untouched
// ---------------------------------------------------------------------------

#[test]
fn step_before_reset_needs_reset() {
    for id in IDS {
        let mut env = make(id);
        let action = some_action(env.as_ref());
        let err = env.step(&action).expect_err(id);
        assert!(matches!(err, EnvError::NeedsReset(_)), "{id}: {err:?}");
        // A bad action before reset is still reported as NeedsReset or a bad action, not a panic.
        assert!(env.step(&[]).is_err());
        env.reset(Some(0)).unwrap();
        assert!(env.step(&action).is_ok(), "{id}");
    }
}

/// Actions that must be rejected for `space`.
fn bad_actions(space: &Space) -> Vec<Vec<f64>> {
    let dim = space.action_len();
    let good = vec![0.0; dim];
    let mut bad = vec![vec![], vec![0.0; dim + 1]];
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut a = good.clone();
        a[dim - 1] = value;
        bad.push(a);
    }
    bad
}

#[test]
fn bad_actions_error_and_leave_mujoco_state_untouched() {
    for id in MUJOCO_IDS {
        let mut env = make(id);
        let mut twin = make(id);
        env.reset(Some(21)).unwrap();
        twin.reset(Some(21)).unwrap();
        let mut rng = Pcg64::seed_from_u64(2);
        // Move away from the reset state first.
        for _ in 0..3 {
            let action = random_action(env.action_space(), &mut rng);
            assert_eq!(env.step(&action).unwrap(), twin.step(&action).unwrap());
        }
        for bad in bad_actions(env.action_space()) {
            let before = state(env.as_ref());
            let time_before = mj(env.as_ref()).data().time();
            let info_before = env.info();
            let mut obs = vec![12345.0; env.observation_space().dim()];
            let err = env.step_into(&bad, &mut obs).expect_err(id);
            if bad.len() != env.action_space().action_len() {
                assert!(
                    matches!(err, EnvError::ActionLength { got, .. } if got == bad.len()),
                    "{id} {bad:?}: {err:?}"
                );
            } else {
                assert!(
                    matches!(err, EnvError::NonFiniteAction { index, .. } if index == bad.len() - 1),
                    "{id} {bad:?}: {err:?}"
                );
            }
            assert_eq!(state(env.as_ref()), before, "{id} {bad:?}");
            assert_eq!(mj(env.as_ref()).data().time(), time_before, "{id}");
            assert_eq!(env.info(), info_before, "{id}");
            assert!(obs.iter().all(|x| *x == 12345.0), "{id}: obs written");
        }
        // The next valid step is what the twin, which never saw a bad call, gives.
        for _ in 0..3 {
            let action = random_action(env.action_space(), &mut rng);
            assert_eq!(
                env.step(&action).unwrap(),
                twin.step(&action).unwrap(),
                "{id}"
            );
        }
    }
}

#[test]
fn bad_actions_do_not_count_towards_the_time_limit() {
    let config = EnvConfig {
        max_episode_steps: Some(3),
        ..Default::default()
    };
    for id in ["Pendulum-v1", "CartPole-v1"] {
        let mut env = make_with(id, &config);
        env.reset(Some(0)).unwrap();
        let action = some_action(env.as_ref());
        assert!(!env.step(&action).unwrap().truncated, "{id} step 1");
        // Rejected calls (before and after the step) are not steps.
        for _ in 0..3 {
            assert!(env.step(&[f64::NAN]).is_err());
            assert!(env.step(&[]).is_err());
        }
        assert!(!env.step(&action).unwrap().truncated, "{id} step 2");
        assert!(env.step(&action).unwrap().truncated, "{id} step 3");
    }
}

#[test]
fn cartpole_rejects_non_index_actions() {
    let mut env = CartPole::with_config(&EnvConfig::default()).unwrap();
    let mut twin = CartPole::with_config(&EnvConfig::default()).unwrap();
    env.reset(Some(8)).unwrap();
    twin.reset(Some(8)).unwrap();
    let before = env.state();
    for value in [2.0, 0.5, -1.0, 1.0000001, 3.0] {
        let err = env.step(&[value]).expect_err("invalid discrete action");
        match err {
            EnvError::InvalidDiscreteAction { value: v, n } => {
                assert_eq!(v, value);
                assert_eq!(n, 2);
            }
            other => panic!("{value}: expected InvalidDiscreteAction, got {other:?}"),
        }
        assert_eq!(env.state(), before);
    }
    for bad in bad_actions(env.action_space()) {
        assert!(env.step(&bad).is_err(), "{bad:?}");
        assert_eq!(env.state(), before);
    }
    assert!(matches!(
        env.step(&[f64::NAN]),
        Err(EnvError::NonFiniteAction { .. })
    ));
    assert!(matches!(
        env.step(&[0.0, 1.0]),
        Err(EnvError::ActionLength {
            expected: 1,
            got: 2,
            ..
        })
    ));
    for action in [0.0, 1.0, 1.0, 0.0] {
        assert_eq!(env.step(&[action]).unwrap(), twin.step(&[action]).unwrap());
    }
    // The two actions push in opposite directions.
    let mut left = CartPole::with_config(&EnvConfig::default()).unwrap();
    let mut right = CartPole::with_config(&EnvConfig::default()).unwrap();
    left.reset(Some(1)).unwrap();
    right.reset(Some(1)).unwrap();
    let l = left.step(&[0.0]).unwrap().obs;
    let r = right.step(&[1.0]).unwrap().obs;
    assert!(l[1] < r[1], "x_dot: left {} right {}", l[1], r[1]);
}

#[test]
fn set_state_rejects_bad_states() {
    for id in MUJOCO_IDS {
        let mut env = make(id);
        env.reset(Some(3)).unwrap();
        let (qpos, qvel) = state(env.as_ref());
        let (nq, nv) = (qpos.len(), qvel.len());
        let mut nan_pos = qpos.clone();
        nan_pos[0] = f64::NAN;
        let mut inf_vel = qvel.clone();
        inf_vel[nv - 1] = f64::INFINITY;
        let cases: Vec<(Vec<f64>, Vec<f64>)> = vec![
            (qpos[..nq - 1].to_vec(), qvel.clone()),
            (qpos.clone(), vec![0.0; nv + 1]),
            (vec![], vec![]),
            (nan_pos, qvel.clone()),
            (qpos.clone(), inf_vel),
        ];
        for (p, v) in cases {
            let err = mj_mut(env.as_mut())
                .set_state(&p, &v)
                .expect_err("bad state");
            assert!(matches!(err, EnvError::InvalidState(_)), "{id}: {err:?}");
            assert_eq!(state(env.as_ref()), (qpos.clone(), qvel.clone()), "{id}");
        }
        // A valid state is taken as given.
        let p2: Vec<f64> = qpos.iter().map(|x| x + 0.01).collect();
        let v2: Vec<f64> = qvel.iter().map(|x| x - 0.02).collect();
        mj_mut(env.as_mut()).set_state(&p2, &v2).unwrap();
        assert_eq!(state(env.as_ref()), (p2, v2));
    }

    let mut cartpole = CartPole::with_config(&EnvConfig::default()).unwrap();
    cartpole.reset(Some(0)).unwrap();
    let before = cartpole.state();
    for bad in [
        [f64::NAN, 0.0, 0.0, 0.0],
        [0.0, 0.0, f64::INFINITY, 0.0],
        [0.0, 0.0, 0.0, f64::NEG_INFINITY],
    ] {
        let err = cartpole.set_state(bad).expect_err("bad state");
        assert!(matches!(err, EnvError::InvalidState(_)), "{err:?}");
        assert_eq!(cartpole.state(), before);
    }
    cartpole.set_state([0.1, 0.2, 0.03, -0.4]).unwrap();
    assert_eq!(cartpole.state(), [0.1, 0.2, 0.03, -0.4]);
}

#[test]
fn wrong_observation_buffer_length_errors() {
    for id in IDS {
        let mut env = make(id);
        let mut twin = make(id);
        let dim = env.observation_space().dim();
        for len in [0, dim - 1, dim + 1] {
            let mut obs = vec![0.0; len];
            let err = env.reset_into(Some(0), &mut obs).expect_err(id);
            assert!(matches!(err, EnvError::InvalidState(_)), "{id}: {err:?}");
        }
        // A failed reset did not reset: stepping still needs a reset.
        assert!(matches!(
            env.step(&some_action(env.as_ref())),
            Err(EnvError::NeedsReset(_))
        ));
        env.reset(Some(6)).unwrap();
        twin.reset(Some(6)).unwrap();
        let action = some_action(env.as_ref());
        for len in [0, dim - 1, dim + 1] {
            let mut obs = vec![0.0; len];
            let err = env.step_into(&action, &mut obs).expect_err(id);
            assert!(matches!(err, EnvError::InvalidState(_)), "{id}: {err:?}");
            // A failed reset_into with a seed must not reseed or reset either.
            let err = env.reset_into(Some(99), &mut obs).expect_err(id);
            assert!(matches!(err, EnvError::InvalidState(_)), "{id}: {err:?}");
        }
        // Nothing moved and the generator was not touched: env and twin still agree.
        for _ in 0..3 {
            assert_eq!(
                env.step(&action).unwrap(),
                twin.step(&action).unwrap(),
                "{id}"
            );
        }
        assert_eq!(env.reset(None).unwrap(), twin.reset(None).unwrap(), "{id}");
    }
}

// ---------------------------------------------------------------------------
// 4. Seeding
// ---------------------------------------------------------------------------

#[test]
fn same_seed_same_reset_different_seeds_differ() {
    for id in IDS {
        let mut env = make(id);
        let (a, info_a) = env.reset(Some(42)).unwrap();
        env.step(&some_action(env.as_ref())).unwrap();
        let (b, info_b) = env.reset(Some(42)).unwrap();
        assert_eq!(a, b, "{id}");
        assert_eq!(info_a, info_b, "{id}");
        // A fresh environment gives the same too.
        assert_eq!(make(id).reset(Some(42)).unwrap().0, a, "{id}");
        let (c, _) = env.reset(Some(43)).unwrap();
        assert_ne!(a, c, "{id}: seeds 42 and 43 gave the same reset");
        let (d, _) = env.reset(Some(0)).unwrap();
        assert_ne!(a, d, "{id}");
        assert_ne!(c, d, "{id}");
    }
}

#[test]
fn seeded_then_unseeded_resets_are_reproducible() {
    for id in IDS {
        let mut a = make(id);
        let mut b = make(id);
        let mut rng = Pcg64::seed_from_u64(3);
        let first_a = a.reset(Some(77)).unwrap().0;
        let first_b = b.reset(Some(77)).unwrap().0;
        assert_eq!(first_a, first_b);
        let mut seen = vec![first_a.clone()];
        for k in 0..5 {
            // `a` plays a few steps between resets; `b` does not. Steps draw nothing.
            for _ in 0..4 {
                let action = random_action(a.action_space(), &mut rng);
                a.step(&action).unwrap();
            }
            let oa = a.reset(None).unwrap().0;
            let ob = b.reset(None).unwrap().0;
            assert_eq!(oa, ob, "{id} episode {k}");
            assert!(
                !seen.contains(&oa),
                "{id}: episode {k} repeats an earlier start"
            );
            seen.push(oa);
        }
        // Re-seeding restarts the stream.
        assert_eq!(a.reset(Some(77)).unwrap().0, first_a, "{id}");
        assert_eq!(a.reset(None).unwrap().0, seen[1], "{id}");
    }
}

#[test]
fn unseeded_first_resets_differ_between_environments() {
    // OS entropy: two fresh environments do not start identically.
    for id in ["Hopper-v5", "CartPole-v1"] {
        let a = make(id).reset(None).unwrap().0;
        let b = make(id).reset(None).unwrap().0;
        assert_ne!(a, b, "{id}");
    }
}

/// Largest |state - qpos0/0| seen over `n` resets, (positions, velocities).
fn reset_noise_extent(id: &str, n: u64) -> (f64, f64) {
    let mut env = make(id);
    let (mut max_p, mut max_v) = (0.0f64, 0.0f64);
    env.reset(Some(1000)).unwrap();
    for _ in 0..n {
        env.reset(None).unwrap();
        let sim = mj(env.as_ref()).sim();
        for (q, q0) in sim.qpos().iter().zip(sim.init_qpos()) {
            max_p = max_p.max((q - q0).abs());
        }
        for v in sim.qvel() {
            max_v = max_v.max(v.abs());
        }
        assert!(sim.init_qvel().iter().all(|v| *v == 0.0));
    }
    (max_p, max_v)
}

#[test]
fn hopper_walker_inverted_pendulum_reset_noise_is_bounded() {
    for (id, scale) in [
        ("Hopper-v5", 5e-3),
        ("Walker2d-v5", 5e-3),
        ("InvertedPendulum-v5", 0.01),
    ] {
        let (p, v) = reset_noise_extent(id, 300);
        assert!(p < scale && v < scale, "{id}: {p} {v} beyond {scale}");
        // And the noise fills its range (max of ~1800 uniform draws).
        assert!(p > 0.95 * scale && v > 0.95 * scale, "{id}: {p} {v}");
    }
    // Hopper's qpos0 has rootz at 1.25.
    let env = make("Hopper-v5");
    assert_eq!(mj(env.as_ref()).sim().init_qpos()[1], 1.25);
    // reset_noise_scale scales it.
    let config = EnvConfig {
        reset_noise_scale: Some(0.0),
        ..Default::default()
    };
    let mut quiet = make_with("Hopper-v5", &config);
    quiet.reset(Some(1)).unwrap();
    let sim = mj(quiet.as_ref()).sim();
    assert_eq!(sim.qpos(), sim.init_qpos());
    assert!(sim.qvel().iter().all(|v| *v == 0.0));
}

#[test]
fn reacher_goal_stays_in_the_disc() {
    let mut env = make("Reacher-v5");
    env.reset(Some(5)).unwrap();
    let (mut max_r, mut quadrants) = (0.0f64, [false; 4]);
    for _ in 0..2000 {
        let (obs, info) = env.reset(None).unwrap();
        assert!(info.is_empty());
        let (qpos, qvel) = state(env.as_ref());
        let r = qpos[2].hypot(qpos[3]);
        assert!(r < 0.2, "goal {:?} outside the disc", &qpos[2..4]);
        max_r = max_r.max(r);
        quadrants[usize::from(qpos[2] > 0.0) * 2 + usize::from(qpos[3] > 0.0)] = true;
        assert_eq!(&obs[4..6], &qpos[2..4]);
        assert_eq!(&qvel[2..4], &[0.0, 0.0]);
        assert!(qpos[..2].iter().all(|q| q.abs() <= 0.1));
        assert!(qvel[..2].iter().all(|v| v.abs() <= 0.005));
    }
    assert!(max_r > 0.19, "goals do not reach the rim: {max_r}");
    assert!(quadrants.iter().all(|q| *q), "{quadrants:?}");
}

#[test]
fn pendulum_reset_ranges() {
    let mut env = make("Pendulum-v1");
    env.reset(Some(9)).unwrap();
    let (mut min_t, mut max_t, mut min_v, mut max_v) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for _ in 0..2000 {
        let (obs, _) = env.reset(None).unwrap();
        let (qpos, qvel) = state(env.as_ref());
        let (theta, theta_dot) = (qpos[0], qvel[0]);
        assert!((-PI..PI).contains(&theta), "theta {theta}");
        assert!((-1.0..1.0).contains(&theta_dot), "theta_dot {theta_dot}");
        assert_eq!(
            obs,
            vec![
                theta.cos() as f32 as f64,
                theta.sin() as f32 as f64,
                theta_dot as f32 as f64
            ]
        );
        min_t = min_t.min(theta);
        max_t = max_t.max(theta);
        min_v = min_v.min(theta_dot);
        max_v = max_v.max(theta_dot);
    }
    assert!(min_t < -3.0 && max_t > 3.0, "{min_t} {max_t}");
    assert!(min_v < -0.99 && max_v > 0.99, "{min_v} {max_v}");
}

#[test]
fn cartpole_reset_ranges() {
    let mut env = CartPole::with_config(&EnvConfig::default()).unwrap();
    env.reset(Some(2)).unwrap();
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for _ in 0..2000 {
        let (obs, info) = env.reset(None).unwrap();
        assert!(info.is_empty());
        let s = env.state();
        for (x, o) in s.iter().zip(&obs) {
            assert!((-0.05..0.05).contains(x), "{s:?}");
            assert_eq!(*o, *x as f32 as f64);
            lo = lo.min(*x);
            hi = hi.max(*x);
        }
    }
    assert!(lo < -0.0499 && hi > 0.0499, "{lo} {hi}");
}

#[test]
fn half_cheetah_velocity_noise_is_gaussian() {
    let mut env = make("HalfCheetah-v5");
    env.reset(Some(123)).unwrap();
    let mut velocities = Vec::new();
    let mut max_p = 0.0f64;
    while velocities.len() < 2000 {
        let (obs, info) = env.reset(None).unwrap();
        let sim = mj(env.as_ref()).sim();
        velocities.extend_from_slice(sim.qvel());
        for (q, q0) in sim.qpos().iter().zip(sim.init_qpos()) {
            max_p = max_p.max((q - q0).abs());
        }
        assert_eq!(&obs[8..], sim.qvel());
        assert_eq!(info.get("x_position"), Some(sim.qpos()[0]));
    }
    let n = velocities.len() as f64;
    let mean = velocities.iter().sum::<f64>() / n;
    let std = (velocities.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((0.09..0.11).contains(&std), "std {std}");
    // A uniform ±0.1 could never give these.
    let beyond = velocities.iter().filter(|v| v.abs() > 0.2).count();
    assert!(beyond > 20, "only {beyond} of {n} draws beyond 2 sigma");
    // Positions are uniform within ±0.1.
    assert!(max_p <= 0.1 && max_p > 0.09, "{max_p}");
}

// ---------------------------------------------------------------------------
// 5. Physics semantics
// ---------------------------------------------------------------------------

#[test]
fn hopper_unhealthy_terminates_with_zero_survive_reward() {
    // The torso starts at z ≈ 1.25, outside (2, 3): unhealthy from the first step.
    let config = EnvConfig {
        healthy_z_range: Some((2.0, 3.0)),
        ..Default::default()
    };
    let mut env = make_with("Hopper-v5", &config);
    env.reset(Some(0)).unwrap();
    let step = env.step(&[0.0; 3]).unwrap();
    assert!(step.terminated);
    assert!(!step.truncated);
    assert_eq!(step.info.get("reward_survive"), Some(0.0));
    let forward = step.info.get("reward_forward").unwrap();
    let ctrl = step.info.get("reward_ctrl").unwrap();
    assert_eq!(step.reward, forward + 0.0 + ctrl);

    // The default hopper is healthy on the same step and earns the survive reward.
    let mut healthy = make("Hopper-v5");
    healthy.reset(Some(0)).unwrap();
    let step = healthy.step(&[0.0; 3]).unwrap();
    assert!(!step.terminated);
    assert_eq!(step.info.get("reward_survive"), Some(1.0));

    // healthy_reward scales it.
    let config = EnvConfig {
        healthy_reward: Some(2.5),
        ..Default::default()
    };
    let mut env = make_with("Hopper-v5", &config);
    env.reset(Some(0)).unwrap();
    assert_eq!(
        env.step(&[0.0; 3]).unwrap().info.get("reward_survive"),
        Some(2.5)
    );
}

#[test]
fn hopper_without_terminate_when_unhealthy_never_terminates() {
    let config = EnvConfig {
        healthy_z_range: Some((2.0, 3.0)),
        terminate_when_unhealthy: Some(false),
        max_episode_steps: Some(100),
        ..Default::default()
    };
    let mut env = make_with("Hopper-v5", &config);
    env.reset(Some(0)).unwrap();
    let mut rng = Pcg64::seed_from_u64(0);
    for t in 1..=100 {
        let action = random_action(env.action_space(), &mut rng);
        let step = env.step(&action).unwrap();
        assert!(!step.terminated, "step {t}");
        assert_eq!(step.truncated, t == 100);
        assert_eq!(step.info.get("reward_survive"), Some(0.0));
    }
    // With the default range the same random policy falls over and terminates.
    let config = EnvConfig {
        terminate_when_unhealthy: Some(false),
        ..Default::default()
    };
    let mut lenient = make_with("Hopper-v5", &config);
    let mut strict = make("Hopper-v5");
    lenient.reset(Some(0)).unwrap();
    strict.reset(Some(0)).unwrap();
    let mut rng = Pcg64::seed_from_u64(0);
    let mut strict_terminated = false;
    for _ in 0..300 {
        let action = random_action(lenient.action_space(), &mut rng);
        let a = lenient.step(&action).unwrap();
        assert!(!a.terminated);
        if !strict_terminated {
            let b = strict.step(&action).unwrap();
            assert_eq!(a.obs, b.obs);
            strict_terminated = b.terminated;
            if b.terminated {
                assert_eq!(a.info.get("reward_survive"), Some(0.0));
            }
        }
    }
    assert!(strict_terminated, "the random policy never fell");
}

#[test]
fn hopper_and_walker_clip_observed_velocities_only() {
    for (id, vel_start) in [("Hopper-v5", 5), ("Walker2d-v5", 8)] {
        let mut env = make(id);
        env.reset(Some(0)).unwrap();
        let (qpos, mut qvel) = state(env.as_ref());
        qvel[0] = 50.0; // rootx: the torso flies forward
        qvel[2] = -30.0; // rooty: and spins
        mj_mut(env.as_mut()).set_state(&qpos, &qvel).unwrap();
        let mut obs = vec![0.0; env.observation_space().dim()];
        mj(env.as_ref()).observe(&mut obs);
        assert_eq!(obs[vel_start], 10.0, "{id}");
        assert_eq!(obs[vel_start + 2], -10.0, "{id}");
        assert_eq!(state(env.as_ref()).1[0], 50.0);

        let step = env.step(&[0.0; 6][..env.action_space().dim()]).unwrap();
        let (_, qvel) = state(env.as_ref());
        assert!(qvel[0] > 10.0, "{id}: qvel {qvel:?}");
        assert!(qvel[2] < -10.0, "{id}: qvel {qvel:?}");
        for (j, v) in qvel.iter().enumerate() {
            assert_eq!(step.obs[vel_start + j], v.clamp(-10.0, 10.0), "{id} {j}");
        }
        // Positions are not clipped or altered.
        assert_eq!(&step.obs[..vel_start], &state(env.as_ref()).0[1..]);
    }
}

#[test]
fn reacher_target_never_moves() {
    let mut env = make("Reacher-v5");
    let (obs0, _) = env.reset(Some(17)).unwrap();
    let (qpos0, _) = state(env.as_ref());
    let target = [qpos0[2], qpos0[3]];
    assert_eq!(&obs0[4..6], &target);
    let mut rng = Pcg64::seed_from_u64(17);
    let mut arm_moved = false;
    for _ in 0..50 {
        // Full-scale random torques, plus out-of-range ones that MuJoCo clamps.
        let mut action = random_action(env.action_space(), &mut rng);
        action[0] *= 3.0;
        let step = env.step(&action).unwrap();
        let (qpos, qvel) = state(env.as_ref());
        assert_eq!(&step.obs[4..6], &target);
        assert_eq!(&qpos[2..4], &target);
        assert_eq!(&qvel[2..4], &[0.0, 0.0]);
        arm_moved |= (qpos[0] - qpos0[0]).abs() > 0.5;
        // The reward terms add up and are reported in the info.
        let dist = step.info.get("reward_dist").unwrap();
        let ctrl = step.info.get("reward_ctrl").unwrap();
        assert_eq!(step.reward, dist + ctrl);
        assert!(dist <= 0.0 && ctrl < 0.0);
    }
    assert!(arm_moved, "the arm should swing under random torques");
}

#[test]
fn pendulum_upright_at_rest_stays() {
    let mut env = make("Pendulum-v1");
    env.reset(Some(0)).unwrap();
    mj_mut(env.as_mut()).set_state(&[0.0], &[0.0]).unwrap();
    for _ in 0..10 {
        let step = env.step(&[0.0]).unwrap();
        assert_eq!(step.obs, vec![1.0, 0.0, 0.0]);
        assert_eq!(step.reward, 0.0);
        assert!(!step.terminated && !step.truncated);
    }
    // A small push makes it fall: the equilibrium is unstable, not frozen.
    let step = env.step(&[0.5]).unwrap();
    assert!(step.obs[2] > 0.0 && step.obs[1] > 0.0, "{:?}", step.obs);
    // The reward is -(θ² + 0.1 θ̇² + 0.001 u²) of the state before the step.
    mj_mut(env.as_mut()).set_state(&[0.3], &[-1.5]).unwrap();
    let step = env.step(&[1.0]).unwrap();
    let expected = -(0.09 + 0.1 * 2.25 + 0.001);
    assert!(
        (step.reward - expected).abs() < 1e-9,
        "{} {expected}",
        step.reward
    );
}

#[test]
fn pendulum_velocity_is_clipped_to_max_speed() {
    for (start, sign) in [(20.0, 1.0), (-20.0, -1.0)] {
        let mut env = make("Pendulum-v1");
        env.reset(Some(0)).unwrap();
        mj_mut(env.as_mut()).set_state(&[0.1], &[start]).unwrap();
        let step = env.step(&[0.0]).unwrap();
        assert_eq!(step.obs[2], 8.0 * sign);
        let (qpos, qvel) = state(env.as_ref());
        // The simulated state is clipped too, and the angle moved with the clipped velocity.
        assert_eq!(qvel[0], 8.0 * sign);
        assert!(
            (qpos[0] - (0.1 + 8.0 * sign * 0.05)).abs() < 1e-12,
            "{qpos:?}"
        );
        assert!(env.observation_space().contains(&step.obs));
    }
}

#[test]
fn pendulum_torque_saturates_at_two() {
    let run = |u: f64, theta: f64, theta_dot: f64| -> Step {
        let mut env = make("Pendulum-v1");
        env.reset(Some(0)).unwrap();
        mj_mut(env.as_mut())
            .set_state(&[theta], &[theta_dot])
            .unwrap();
        env.step(&[u]).unwrap()
    };
    for (theta, theta_dot) in [(0.7, 0.3), (-2.0, -0.5)] {
        let plus2 = run(2.0, theta, theta_dot);
        let plus5 = run(5.0, theta, theta_dot);
        assert_eq!(plus2.obs, plus5.obs);
        assert_eq!(plus2.reward, plus5.reward);
        let minus2 = run(-2.0, theta, theta_dot);
        let minus5 = run(-1e6, theta, theta_dot);
        assert_eq!(minus2.obs, minus5.obs);
        assert_eq!(minus2.reward, minus5.reward);
        // Below the limit the torque matters.
        let one = run(1.0, theta, theta_dot);
        assert_ne!(one.obs, plus2.obs);
        assert_ne!(one.reward, plus2.reward);
        assert_ne!(plus2.obs, minus2.obs);
    }
}

#[test]
fn pendulum_gravity_override() {
    let config = EnvConfig {
        g: Some(0.0),
        ..Default::default()
    };
    let mut weightless = make_with("Pendulum-v1", &config);
    let mut normal = make("Pendulum-v1");
    for env in [&mut weightless, &mut normal] {
        env.reset(Some(0)).unwrap();
        mj_mut(env.as_mut()).set_state(&[1.0], &[0.0]).unwrap();
    }
    let a = weightless.step(&[0.0]).unwrap();
    let b = normal.step(&[0.0]).unwrap();
    assert_eq!(a.obs[2], 0.0, "no gravity, no torque: no motion");
    // g = 10: θ̇' = 15 sin(1) dt.
    assert!(
        (b.obs[2] - 15.0 * 1f64.sin() * 0.05).abs() < 1e-6,
        "{}",
        b.obs[2]
    );
}

#[test]
fn inverted_pendulum_pays_zero_on_the_terminating_step() {
    let mut env = make("InvertedPendulum-v5");
    env.reset(Some(0)).unwrap();
    let mut steps = 0;
    loop {
        steps += 1;
        let step = env.step(&[3.0]).unwrap();
        let angle = state(env.as_ref()).0[1];
        assert_eq!(step.obs[1], angle);
        if step.terminated {
            assert!(angle.abs() > 0.2);
            assert_eq!(step.reward, 0.0);
            assert_eq!(step.info.get("reward_survive"), Some(0.0));
            break;
        }
        assert!(angle.abs() <= 0.2);
        assert_eq!(step.reward, 1.0);
        assert_eq!(step.info.get("reward_survive"), Some(1.0));
        assert!(steps < 100, "a full push should topple the pole");
    }
    assert!(steps > 1);
}

#[test]
fn cartpole_pays_one_on_the_terminating_step_and_zero_after() {
    let mut env = CartPole::with_config(&EnvConfig::default()).unwrap();
    env.reset(Some(0)).unwrap();
    let mut steps = 0;
    loop {
        steps += 1;
        let step = env.step(&[1.0]).unwrap();
        assert_eq!(step.reward, 1.0);
        if step.terminated {
            break;
        }
        assert!(steps < 200);
    }
    let after = env.step(&[1.0]).unwrap();
    assert!(after.terminated);
    assert_eq!(after.reward, 0.0);

    let config = EnvConfig {
        sutton_barto_reward: Some(true),
        ..Default::default()
    };
    let mut env = CartPole::with_config(&config).unwrap();
    env.reset(Some(0)).unwrap();
    let rewards: Vec<f64> = (0..steps + 1)
        .map(|_| env.step(&[1.0]).unwrap().reward)
        .collect();
    assert!(
        rewards[..steps - 1].iter().all(|r| *r == 0.0),
        "{rewards:?}"
    );
    assert_eq!(rewards[steps - 1], -1.0);
    assert_eq!(rewards[steps], -1.0);
}

// ---------------------------------------------------------------------------
// 6. Instability
// ---------------------------------------------------------------------------

/// Blows the simulation up through the public API: `set_state` accepts any finite
/// state, and MuJoCo's `mj_step` checks (`mj_checkPos` / `mj_checkVel`) flag any
/// |qpos| or |qvel| above mjMAXVAL = 1e10 as bad, warn and reset the data. So a
/// velocity (or position) of 1e12, legal for `set_state`, makes the next step unstable.
fn blow_up(env: &mut dyn Env, huge_velocity: bool) {
    let (mut qpos, mut qvel) = state(env);
    if huge_velocity {
        qvel[0] = 1e12;
    } else {
        qpos[0] = 1e12;
    }
    mj_mut(env).set_state(&qpos, &qvel).unwrap();
}

#[test]
fn instability_truncates_and_requires_reset() {
    for (id, huge_velocity, expected) in [
        ("HalfCheetah-v5", true, Instability::BadQvel),
        ("Hopper-v5", true, Instability::BadQvel),
        ("Hopper-v5", false, Instability::BadQpos),
        ("Reacher-v5", true, Instability::BadQvel),
        ("Pendulum-v1", false, Instability::BadQpos),
    ] {
        let mut env = make(id);
        env.reset(Some(0)).unwrap();
        let action = some_action(env.as_ref());
        // A normal step is stable.
        let step = env.step(&action).unwrap();
        assert_eq!(step.instability, None, "{id}");
        blow_up(env.as_mut(), huge_velocity);
        let step = env.step(&action).unwrap();
        assert_eq!(step.instability, Some(expected), "{id}");
        assert!(step.truncated, "{id}: an unstable step ends the episode");
        assert!(
            step.obs.iter().all(|x| x.is_finite()),
            "{id}: {:?}",
            step.obs
        );
        // The episode is over until reset.
        for _ in 0..2 {
            let err = env.step(&action).expect_err(id);
            assert!(matches!(err, EnvError::NeedsReset(_)), "{id}: {err:?}");
        }
        let mut obs = vec![0.0; env.observation_space().dim()];
        assert!(matches!(
            env.step_into(&action, &mut obs),
            Err(EnvError::NeedsReset(_))
        ));
        // reset() makes it usable again, with the seeded start as usual.
        let (obs, _) = env.reset(Some(0)).unwrap();
        assert_eq!(obs, make(id).reset(Some(0)).unwrap().0, "{id}");
        let step = env.step(&action).unwrap();
        assert_eq!(step.instability, None, "{id}");
        assert!(!step.truncated, "{id}");
    }
}

#[test]
fn instability_is_reported_through_the_time_limit_on_its_step_only() {
    // With a limit far away, truncated comes from the instability alone; a state that
    // is large but below MuJoCo's threshold is no instability.
    let mut env = make("HalfCheetah-v5");
    env.reset(Some(1)).unwrap();
    let (qpos, mut qvel) = state(env.as_ref());
    qvel[0] = 1e3;
    mj_mut(env.as_mut()).set_state(&qpos, &qvel).unwrap();
    let step = env.step(&[0.0; 6]).unwrap();
    assert_eq!(step.instability, None);
    assert!(!step.truncated);
    assert!(step.info.get("x_velocity").unwrap() > 100.0);
}
