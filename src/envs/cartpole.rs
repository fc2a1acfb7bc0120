//! CartPole-v1: Gymnasium's closed-form cart-pole (Barto, Sutton & Anderson 1983)
//! with explicit Euler, in plain Rust (ENV_SPEC §7).

use super::{
    Env, EnvConfig, EnvError, EnvRng, Info, Result, Space, StepOutcome, check_action,
    check_obs_len, reseed, uniform,
};

const GRAVITY: f64 = 9.8;
const MASS_CART: f64 = 1.0;
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_POLE + MASS_CART;
/// Half the pole's length.
const LENGTH: f64 = 0.5;
const POLE_MASS_LENGTH: f64 = MASS_POLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
const TAU: f64 = 0.02;
/// Cart position beyond which the episode ends.
pub const X_THRESHOLD: f64 = 2.4;
/// Pole angle beyond which the episode ends: 12° in radians.
pub const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;

/// Overrides CartPole-v1 accepts.
pub(crate) const OPTIONS: &[&str] = &["sutton_barto_reward"];

/// CartPole-v1: push a cart left or right (`Discrete(2)`) to keep a pole upright.
#[derive(Debug, Clone)]
pub struct CartPole {
    state: [f64; 4],
    sutton_barto_reward: bool,
    steps_beyond_terminated: Option<usize>,
    rng: Option<EnvRng>,
    observation_space: Space,
    action_space: Space,
    needs_reset: bool,
}

impl CartPole {
    /// Builds CartPole-v1 with `config`'s overrides (already validated).
    pub fn with_config(config: &EnvConfig) -> Result<CartPole> {
        let high = [
            X_THRESHOLD * 2.0,
            f64::INFINITY,
            THETA_THRESHOLD * 2.0,
            f64::INFINITY,
        ];
        Ok(CartPole {
            state: [0.0; 4],
            sutton_barto_reward: config.sutton_barto_reward.unwrap_or(false),
            steps_beyond_terminated: None,
            rng: None,
            observation_space: Space::Box {
                low: high.iter().map(|h| -h).collect(),
                high: high.to_vec(),
            },
            action_space: Space::Discrete(2),
            needs_reset: true,
        })
    }

    /// The state `(x, ẋ, θ, θ̇)`.
    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    /// Sets the state `(x, ẋ, θ, θ̇)` (must be finite) and clears the
    /// stepped-beyond-termination counter, as assigning Gymnasium's `env.state` does.
    pub fn set_state(&mut self, state: [f64; 4]) -> Result<()> {
        if state.iter().any(|x| !x.is_finite()) {
            return Err(EnvError::InvalidState(format!(
                "state must be finite, got {state:?}"
            )));
        }
        self.state = state;
        self.steps_beyond_terminated = None;
        Ok(())
    }

    fn observe(&self, obs: &mut [f64]) {
        // Gymnasium keeps the state in float64 and returns it as float32.
        for (o, s) in obs.iter_mut().zip(self.state) {
            *o = s as f32 as f64;
        }
    }
}

impl Env for CartPole {
    fn id(&self) -> &str {
        "CartPole-v1"
    }
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }
    fn action_space(&self) -> &Space {
        &self.action_space
    }
    fn dt(&self) -> f64 {
        TAU
    }

    /// Every state entry ~ U(−0.05, 0.05).
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<Info> {
        check_obs_len(&self.observation_space, obs)?;
        let rng = reseed(&mut self.rng, seed);
        for s in &mut self.state {
            *s = uniform(rng, -0.05, 0.05);
        }
        self.steps_beyond_terminated = None;
        self.needs_reset = false;
        self.observe(obs);
        Ok(Info::EMPTY)
    }

    fn step_into(&mut self, action: &[f64], obs: &mut [f64]) -> Result<StepOutcome> {
        if self.needs_reset {
            return Err(EnvError::NeedsReset(
                "the environment has not been reset yet",
            ));
        }
        check_action(&self.action_space, action)?;
        check_obs_len(&self.observation_space, obs)?;
        let [x, x_dot, theta, theta_dot] = self.state;
        let force = if action[0] == 1.0 {
            FORCE_MAG
        } else {
            -FORCE_MAG
        };
        let (sintheta, costheta) = (theta.sin(), theta.cos());
        // The same expressions, in the same order, as Gymnasium's code.
        let temp = (force + POLE_MASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS;
        let thetaacc = (GRAVITY * sintheta - costheta * temp)
            / (LENGTH * (4.0 / 3.0 - MASS_POLE * (costheta * costheta) / TOTAL_MASS));
        let xacc = temp - POLE_MASS_LENGTH * thetaacc * costheta / TOTAL_MASS;
        // Explicit Euler: positions move with the old velocities.
        self.state = [
            x + TAU * x_dot,
            x_dot + TAU * xacc,
            theta + TAU * theta_dot,
            theta_dot + TAU * thetaacc,
        ];
        let [x, _, theta, _] = self.state;
        // Gymnasium's comparisons verbatim: a NaN state is *not* terminal there, which
        // a range `contains` would change.
        #[allow(clippy::manual_range_contains)]
        let terminated = x < -X_THRESHOLD
            || x > X_THRESHOLD
            || theta < -THETA_THRESHOLD
            || theta > THETA_THRESHOLD;
        let (alive, end, beyond) = if self.sutton_barto_reward {
            (0.0, -1.0, -1.0)
        } else {
            (1.0, 1.0, 0.0)
        };
        let reward = if !terminated {
            alive
        } else if self.steps_beyond_terminated.is_none() {
            self.steps_beyond_terminated = Some(0);
            end
        } else {
            *self.steps_beyond_terminated.as_mut().expect("set") += 1;
            beyond
        };
        self.observe(obs);
        Ok(StepOutcome {
            reward,
            terminated,
            truncated: false,
            instability: None,
        })
    }

    fn info(&self) -> Info {
        Info::EMPTY
    }
}
