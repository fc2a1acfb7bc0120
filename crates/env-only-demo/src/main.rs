//! A crate that uses only stackrl's environments (`default-features = false`): it
//! compiles none of the trainer's dependencies (Candle, clap, ...). `cargo tree -p
//! env-only-demo` shows it; `.ci/run` checks it.

use stackrl::envs::{self, Env, VecEnv};

fn main() -> Result<(), envs::EnvError> {
    let mut env = envs::make("Walker2d-v5")?;
    let (obs, _) = env.reset(Some(42))?;
    let zero = vec![0.0; env.action_space().dim()];
    let mut steps = 0;
    loop {
        let step = env.step(&zero)?;
        steps += 1;
        if step.terminated || step.truncated {
            break;
        }
    }
    println!(
        "Walker2d-v5 with zero torques: {} observations, episode of {steps} steps",
        obs.len()
    );

    let mut vec_env = VecEnv::make("HalfCheetah-v5", 4, 2, &Default::default())?;
    vec_env.reset(Some(0))?;
    let actions = vec![0.5; 4 * vec_env.action_space().dim()];
    for _ in 0..100 {
        vec_env.step(&actions)?;
    }
    println!(
        "HalfCheetah-v5 ×4 after 100 steps: rewards {:?}",
        vec_env.rewards()
    );
    Ok(())
}
