//! The registry: `make("Hopper-v5")`, as `gymnasium.make`.

use super::{
    CartPole, Env, EnvConfig, EnvError, HalfCheetah, Hopper, InvertedPendulum, Pendulum, Reacher,
    Result, TimeLimit, Walker2d,
};
use super::{cartpole, half_cheetah, hopper, inverted_pendulum, pendulum, reacher, walker2d};

/// A registered environment: its id, defaults and accepted overrides.
#[derive(Debug, Clone, Copy)]
pub struct EnvSpec {
    /// The id, e.g. `"Hopper-v5"`.
    pub id: &'static str,
    /// Gymnasium's `max_episode_steps`.
    pub max_episode_steps: usize,
    /// Gymnasium's `reward_threshold`, where it registers one.
    pub reward_threshold: Option<f64>,
    /// Whether the environment runs on MuJoCo.
    pub mujoco: bool,
    /// The [`EnvConfig`] fields it accepts besides `max_episode_steps`.
    pub options: &'static [&'static str],
    /// The built-in MJCF model (`models/*.xml`), for MuJoCo environments.
    pub model_xml: Option<&'static str>,
    build: fn(&EnvConfig) -> Result<Box<dyn Env>>,
}

fn boxed<E: Env + 'static>(env: Result<E>) -> Result<Box<dyn Env>> {
    env.map(|e| Box::new(e) as Box<dyn Env>)
}

const SPECS: &[EnvSpec] = &[
    EnvSpec {
        id: "Hopper-v5",
        max_episode_steps: 1000,
        reward_threshold: Some(3800.0),
        mujoco: true,
        options: hopper::OPTIONS,
        model_xml: Some(hopper::XML),
        build: |c| boxed(Hopper::with_config(c)),
    },
    EnvSpec {
        id: "Walker2d-v5",
        max_episode_steps: 1000,
        reward_threshold: None,
        mujoco: true,
        options: walker2d::OPTIONS,
        model_xml: Some(walker2d::XML),
        build: |c| boxed(Walker2d::with_config(c)),
    },
    EnvSpec {
        id: "HalfCheetah-v5",
        max_episode_steps: 1000,
        reward_threshold: Some(4800.0),
        mujoco: true,
        options: half_cheetah::OPTIONS,
        model_xml: Some(half_cheetah::XML),
        build: |c| boxed(HalfCheetah::with_config(c)),
    },
    EnvSpec {
        id: "Reacher-v5",
        max_episode_steps: 50,
        reward_threshold: Some(-3.75),
        mujoco: true,
        options: reacher::OPTIONS,
        model_xml: Some(reacher::XML),
        build: |c| boxed(Reacher::with_config(c)),
    },
    EnvSpec {
        id: "InvertedPendulum-v5",
        max_episode_steps: 1000,
        reward_threshold: Some(950.0),
        mujoco: true,
        options: inverted_pendulum::OPTIONS,
        model_xml: Some(inverted_pendulum::XML),
        build: |c| boxed(InvertedPendulum::with_config(c)),
    },
    EnvSpec {
        id: "Pendulum-v1",
        max_episode_steps: 200,
        reward_threshold: None,
        mujoco: true,
        options: pendulum::OPTIONS,
        model_xml: Some(pendulum::XML),
        build: |c| boxed(Pendulum::with_config(c)),
    },
    EnvSpec {
        id: "CartPole-v1",
        max_episode_steps: 500,
        reward_threshold: Some(475.0),
        mujoco: false,
        options: cartpole::OPTIONS,
        model_xml: None,
        build: |c| boxed(CartPole::with_config(c)),
    },
];

/// Every registered environment.
pub fn specs() -> &'static [EnvSpec] {
    SPECS
}

/// The registered ids.
pub fn ids() -> Vec<&'static str> {
    SPECS.iter().map(|s| s.id).collect()
}

/// The spec of `id`, or an error listing the valid ids.
pub fn spec(id: &str) -> Result<&'static EnvSpec> {
    SPECS
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| EnvError::UnknownId {
            id: id.to_string(),
            valid: ids(),
        })
}

/// `gymnasium.make(id)`: the environment with its defaults, wrapped in [`TimeLimit`].
pub fn make(id: &str) -> Result<Box<dyn Env>> {
    make_with(id, &EnvConfig::default())
}

/// `gymnasium.make(id, **kwargs)`: the environment with `config`'s overrides,
/// wrapped in [`TimeLimit`] (`config.max_episode_steps` or the registered limit).
pub fn make_with(id: &str, config: &EnvConfig) -> Result<Box<dyn Env>> {
    let spec = spec(id)?;
    config.validate(spec.id, spec.options)?;
    let env = (spec.build)(config)?;
    let limit = config.max_episode_steps.unwrap_or(spec.max_episode_steps);
    Ok(Box::new(TimeLimit::new(env, limit)))
}
