//! Environment-stepping benchmark: each environment against the raw `mj_step` loop
//! on the same model, measured in the same run (`cargo bench --bench envs` or
//! `stackrl bench envs`).
//!
//! The floor replays *the same trajectory* as the environment: the environment runs
//! once untimed with seeded random actions and records the state after every reset;
//! the timed environment run repeats it exactly (same seed), and the raw loop sets
//! the same controls, calls `mj_step` `frame_skip` times per step and restores the
//! recorded states at the same steps. The difference is therefore the environment's
//! own overhead (action checks, observation, reward, termination, time limit), not a
//! difference in contacts.
//!
//! Single-thread runs are timed in CPU time of the stepping thread
//! (`CLOCK_THREAD_CPUTIME_ID`), so that other processes on a shared machine do not
//! count against either side; `VecEnv` runs are timed in wall-clock time, which is
//! what parallel speed-up is about (and is only meaningful on an otherwise idle machine).

use crate::envs::{self, Env, EnvConfig, EnvError, Space, VecEnv};
use mujoco_rs::prelude::{MjData, MjModel};
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// Settings of [`bench_envs`].
#[derive(Debug, Clone)]
pub struct EnvBenchConfig {
    /// Environment ids to measure.
    pub ids: Vec<String>,
    /// Environment steps per timed run (single environment).
    pub steps: usize,
    /// Timed repetitions; medians are reported.
    pub repeats: usize,
    /// Environments in the `VecEnv` runs.
    pub num_envs: usize,
    /// Thread counts for the `VecEnv` runs.
    pub threads: Vec<usize>,
    /// Seed of the actions and resets.
    pub seed: u64,
}

impl Default for EnvBenchConfig {
    fn default() -> Self {
        EnvBenchConfig {
            ids: envs::ids().into_iter().map(String::from).collect(),
            steps: 20_000,
            repeats: 5,
            num_envs: 8,
            threads: vec![1, 2],
            seed: 0,
        }
    }
}

/// The medians measured for one environment.
#[derive(Debug, Clone)]
pub struct EnvBenchRow {
    /// Environment id.
    pub id: String,
    /// `frame_skip × mj_step` per environment step, as environment steps per CPU
    /// second (`None` for CartPole, which has no physics engine).
    pub floor_steps_per_sec: Option<f64>,
    /// One environment, stepped in the calling thread (steps per CPU second).
    pub env_steps_per_sec: f64,
    /// `(threads, environment steps per wall-clock second summed over the VecEnv)`.
    pub vec_steps_per_sec: Vec<(usize, f64)>,
}

impl EnvBenchRow {
    /// Time per environment step above the floor, in percent.
    pub fn overhead_percent(&self) -> Option<f64> {
        self.floor_steps_per_sec
            .map(|floor| (floor / self.env_steps_per_sec - 1.0) * 100.0)
    }
}

/// Seconds of CPU time consumed by the calling thread.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        // No per-thread clock: fall back to wall time from an arbitrary origin.
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        return ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64();
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn random_actions(space: &Space, count: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    match space {
        Space::Discrete(n) => (0..count).map(|_| rng.random_range(0..*n) as f64).collect(),
        Space::Box { low, high } => (0..count)
            .flat_map(|_| {
                low.iter()
                    .zip(high)
                    .map(|(l, h)| l + (h - l) * rng.random::<f64>())
                    .collect::<Vec<_>>()
            })
            .collect(),
    }
}

/// A reset recorded during the untimed run: the step after which it happened and
/// the state it produced.
struct RecordedReset {
    after_step: usize,
    qpos: Vec<f64>,
    qvel: Vec<f64>,
}

/// Runs `env` over `actions`, resetting when an episode ends; returns the seconds
/// taken and, if asked, the resets.
fn run_env(
    env: &mut dyn Env,
    actions: &[f64],
    seed: u64,
    record: bool,
) -> Result<(f64, Vec<RecordedReset>), EnvError> {
    let alen = env.action_space().action_len();
    let mut obs = vec![0.0; env.observation_space().dim()];
    let mut resets = Vec::new();
    env.reset_into(Some(seed), &mut obs)?;
    let start = thread_cpu_seconds();
    for (t, action) in actions.chunks(alen).enumerate() {
        let outcome = env.step_into(action, &mut obs)?;
        if outcome.terminated || outcome.truncated {
            env.reset_into(None, &mut obs)?;
            if record && let Some(mj) = env.as_mujoco() {
                let (qpos, qvel) = mj.state();
                resets.push(RecordedReset {
                    after_step: t,
                    qpos,
                    qvel,
                });
            }
        }
    }
    Ok((thread_cpu_seconds() - start, resets))
}

/// The raw loop: the same controls through `mj_step`, the same states restored.
fn run_floor(
    model_xml: &str,
    frame_skip: usize,
    start: (&[f64], &[f64]),
    actions: &[f64],
    resets: &[RecordedReset],
) -> Result<f64, EnvError> {
    let model = MjModel::from_xml_string(model_xml).map_err(|e| EnvError::ModelLoad {
        source_name: "benchmark".into(),
        message: e.to_string(),
    })?;
    let mut data = MjData::new(Box::new(model));
    let nu = data.ctrl().len();
    let set_state = |data: &mut MjData<Box<MjModel>>, qpos: &[f64], qvel: &[f64]| {
        data.qpos_mut().copy_from_slice(qpos);
        data.qvel_mut().copy_from_slice(qvel);
        data.forward();
    };
    set_state(&mut data, start.0, start.1);
    let mut next_reset = resets.iter().peekable();
    let begin = thread_cpu_seconds();
    for (t, ctrl) in actions.chunks(nu).enumerate() {
        data.ctrl_mut().copy_from_slice(ctrl);
        for _ in 0..frame_skip {
            data.step();
        }
        if let Some(reset) = next_reset.next_if(|r| r.after_step == t) {
            data.reset();
            set_state(&mut data, &reset.qpos, &reset.qvel);
        }
    }
    Ok(thread_cpu_seconds() - begin)
}

/// Measures every environment of `config`; prints nothing.
pub fn bench_envs(config: &EnvBenchConfig) -> Result<Vec<EnvBenchRow>, EnvError> {
    let mut rows = Vec::new();
    for id in &config.ids {
        let spec = envs::spec(id)?;
        let mut env = envs::make(id)?;
        let alen = env.action_space().action_len();
        let actions = random_actions(env.action_space(), config.steps, config.seed);
        // Untimed pass: warms caches and records the resets and the first state.
        let mut obs = vec![0.0; env.observation_space().dim()];
        env.reset_into(Some(config.seed), &mut obs)?;
        let first_state = env.as_mujoco().map(|mj| mj.state());
        let (_, resets) = run_env(env.as_mut(), &actions, config.seed, true)?;
        let frame_skip = env.as_mujoco().map(|mj| mj.sim().frame_skip());

        let mut env_times = Vec::new();
        let mut floor_times = Vec::new();
        for _ in 0..config.repeats {
            env_times.push(run_env(env.as_mut(), &actions, config.seed, false)?.0);
            if let (Some(xml), Some((qpos, qvel)), Some(skip)) =
                (spec.model_xml, first_state.as_ref(), frame_skip)
            {
                floor_times.push(run_floor(xml, skip, (qpos, qvel), &actions, &resets)?);
            }
        }
        let steps = config.steps as f64;
        let env_steps_per_sec = steps / median(env_times);
        let floor_steps_per_sec = (!floor_times.is_empty()).then(|| steps / median(floor_times));

        let mut vec_steps_per_sec = Vec::new();
        for &threads in &config.threads {
            let mut vec_env = VecEnv::make(id, config.num_envs, threads, &EnvConfig::default())?;
            let per_env = (config.steps / config.num_envs).max(1);
            let batch: Vec<f64> = random_actions(
                vec_env.action_space(),
                per_env * config.num_envs,
                config.seed + 1,
            );
            let mut times = Vec::new();
            for _ in 0..config.repeats {
                vec_env.reset(Some(config.seed))?;
                let start = Instant::now();
                for actions in batch.chunks(config.num_envs * alen) {
                    vec_env.step(actions)?;
                }
                times.push(start.elapsed().as_secs_f64());
            }
            vec_steps_per_sec.push((threads, (per_env * config.num_envs) as f64 / median(times)));
        }
        rows.push(EnvBenchRow {
            id: id.clone(),
            floor_steps_per_sec,
            env_steps_per_sec,
            vec_steps_per_sec,
        });
    }
    Ok(rows)
}

/// The rows as a Markdown table.
pub fn format_table(rows: &[EnvBenchRow], config: &EnvBenchConfig) -> String {
    let mut out = String::new();
    let vec_header: Vec<String> = config
        .threads
        .iter()
        .map(|t| format!("VecEnv×{} {t} thr (steps/s)", config.num_envs))
        .collect();
    out.push_str(&format!(
        "| env | mj_step floor (steps/CPU-s) | single env (steps/CPU-s) | overhead | {} | speed-up {}→{} thr |\n",
        vec_header.join(" | "),
        config.threads.first().copied().unwrap_or(1),
        config.threads.last().copied().unwrap_or(1),
    ));
    out.push_str(&format!(
        "|---|---|---|---|{}---|\n",
        "---|".repeat(vec_header.len())
    ));
    for row in rows {
        let floor = row
            .floor_steps_per_sec
            .map_or("n/a (no physics engine)".to_string(), |f| format!("{f:.0}"));
        let overhead = row
            .overhead_percent()
            .map_or("n/a".to_string(), |o| format!("{o:+.1}%"));
        let vec: Vec<String> = row
            .vec_steps_per_sec
            .iter()
            .map(|(_, s)| format!("{s:.0}"))
            .collect();
        let speedup = match (row.vec_steps_per_sec.first(), row.vec_steps_per_sec.last()) {
            (Some((_, a)), Some((_, b))) => format!("{:.2}×", b / a),
            _ => "n/a".into(),
        };
        out.push_str(&format!(
            "| {} | {floor} | {:.0} | {overhead} | {} | {speedup} |\n",
            row.id,
            row.env_steps_per_sec,
            vec.join(" | ")
        ));
    }
    out
}
