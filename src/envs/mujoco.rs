//! The MuJoCo core shared by every MuJoCo environment: Gymnasium's `MujocoEnv`.

use super::{
    EnvConfig, EnvError, EnvRng, Info, Instability, Result, Space, StepOutcome, check_action,
    check_obs_len, reseed,
};
use mujoco_rs::prelude::{MjData, MjModel, MjtObjBase, MjtWarning};
use std::path::Path;

/// A compiled model and its simulation state, stepped `frame_skip` times per
/// environment step (Gymnasium's `MujocoEnv.do_simulation`).
pub struct MujocoSim {
    data: MjData<Box<MjModel>>,
    frame_skip: usize,
    init_qpos: Vec<f64>,
    init_qvel: Vec<f64>,
    source: String,
}

impl std::fmt::Debug for MujocoSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MujocoSim")
            .field("source", &self.source)
            .field("frame_skip", &self.frame_skip)
            .field("nq", &self.nq())
            .field("nv", &self.nv())
            .field("nu", &self.nu())
            .finish()
    }
}

impl MujocoSim {
    /// Compiles an MJCF model given as text. `name` only labels errors.
    pub fn from_xml_str(xml: &str, name: &str, frame_skip: usize) -> Result<MujocoSim> {
        route_mujoco_messages_to_log();
        let model = MjModel::from_xml_string(xml).map_err(|e| EnvError::ModelLoad {
            source_name: name.to_string(),
            message: e.to_string(),
        })?;
        Self::from_model(model, name, frame_skip)
    }

    /// Compiles an MJCF model file.
    pub fn from_xml_file(path: &Path, frame_skip: usize) -> Result<MujocoSim> {
        route_mujoco_messages_to_log();
        let name = path.display().to_string();
        if !path.is_file() {
            return Err(EnvError::ModelLoad {
                source_name: name,
                message: "no such file".into(),
            });
        }
        let model = MjModel::from_xml(path).map_err(|e| EnvError::ModelLoad {
            source_name: name.clone(),
            message: e.to_string(),
        })?;
        Self::from_model(model, &name, frame_skip)
    }

    /// The built-in model, or `config.xml_file` when set, with `config.frame_skip`
    /// or `default_frame_skip`.
    pub(crate) fn load(
        builtin_xml: &str,
        builtin_name: &str,
        config: &EnvConfig,
        default_frame_skip: usize,
    ) -> Result<MujocoSim> {
        let frame_skip = config.frame_skip.unwrap_or(default_frame_skip);
        match &config.xml_file {
            Some(path) => Self::from_xml_file(path, frame_skip),
            None => Self::from_xml_str(builtin_xml, builtin_name, frame_skip),
        }
    }

    fn from_model(model: MjModel, name: &str, frame_skip: usize) -> Result<MujocoSim> {
        if frame_skip == 0 {
            return Err(EnvError::InvalidConfig {
                env: name.to_string(),
                message: "frame_skip must be at least 1".into(),
            });
        }
        let model = Box::new(model);
        let data = MjData::try_new(model).map_err(|e| EnvError::ModelLoad {
            source_name: name.to_string(),
            message: e.to_string(),
        })?;
        let init_qpos = data.qpos().to_vec();
        let init_qvel = data.qvel().to_vec();
        Ok(MujocoSim {
            data,
            frame_skip,
            init_qpos,
            init_qvel,
            source: name.to_string(),
        })
    }

    /// The compiled model.
    pub fn model(&self) -> &MjModel {
        self.data.model()
    }
    /// Sets the gravity vector (Pendulum's `g`).
    pub fn set_gravity(&mut self, gravity: [f64; 3]) {
        // SAFETY: gravity is a plain option value; it changes no array size that
        // mjData was allocated for.
        unsafe { self.data.model_mut() }.opt_mut().gravity = gravity;
    }
    /// The simulation state (read-only: change it through [`MujocoSim::set_state`]).
    pub fn data(&self) -> &MjData<Box<MjModel>> {
        &self.data
    }
    /// Where the model came from (a file path or a built-in name).
    pub fn source(&self) -> &str {
        &self.source
    }
    /// MuJoCo steps per environment step.
    pub fn frame_skip(&self) -> usize {
        self.frame_skip
    }
    /// `model.opt.timestep * frame_skip`.
    pub fn dt(&self) -> f64 {
        self.model().ffi().opt.timestep * self.frame_skip as f64
    }
    /// Number of position coordinates.
    pub fn nq(&self) -> usize {
        self.model().ffi().nq as usize
    }
    /// Number of degrees of freedom.
    pub fn nv(&self) -> usize {
        self.model().ffi().nv as usize
    }
    /// Number of actuators.
    pub fn nu(&self) -> usize {
        self.model().ffi().nu as usize
    }
    /// Positions.
    pub fn qpos(&self) -> &[f64] {
        self.data.qpos()
    }
    /// Velocities.
    pub fn qvel(&self) -> &[f64] {
        self.data.qvel()
    }
    /// The model's `qpos0` (Gymnasium's `init_qpos`).
    pub fn init_qpos(&self) -> &[f64] {
        &self.init_qpos
    }
    /// Zeros (Gymnasium's `init_qvel`).
    pub fn init_qvel(&self) -> &[f64] {
        &self.init_qvel
    }
    /// The frame origin of body `id` in the world (MuJoCo's cached `xpos`).
    pub fn body_xpos(&self, id: usize) -> [f64; 3] {
        self.data.xpos()[id]
    }
    /// The id of the body called `name`.
    pub fn body_id(&self, name: &str) -> Option<usize> {
        self.model().name_to_id(MjtObjBase::mjOBJ_BODY, name)
    }

    /// The action space: a box with the actuators' control ranges.
    pub fn action_space(&self) -> Space {
        let ranges = self.model().actuator_ctrlrange();
        Space::Box {
            low: ranges.iter().map(|r| r[0]).collect(),
            high: ranges.iter().map(|r| r[1]).collect(),
        }
    }

    /// `mj_resetData`: qpos0, zero velocities, cleared warm start and time.
    pub fn reset_data(&mut self) {
        self.data.reset();
    }

    /// Gymnasium's `set_state`: writes qpos and qvel, then `mj_forward`.
    pub fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<()> {
        let (nq, nv) = (self.nq(), self.nv());
        if qpos.len() != nq || qvel.len() != nv {
            return Err(EnvError::InvalidState(format!(
                "qpos has {} entries and qvel {}; the model needs nq = {nq}, nv = {nv}",
                qpos.len(),
                qvel.len()
            )));
        }
        if let Some(bad) = qpos.iter().chain(qvel).find(|x| !x.is_finite()) {
            return Err(EnvError::InvalidState(format!(
                "state entries must be finite, got {bad}"
            )));
        }
        self.data.qpos_mut().copy_from_slice(qpos);
        self.data.qvel_mut().copy_from_slice(qvel);
        self.data.forward();
        Ok(())
    }

    /// Positions, for writing a reset state; call [`MujocoSim::forward`] afterwards.
    pub(crate) fn qpos_mut(&mut self) -> &mut [f64] {
        self.data.qpos_mut()
    }
    /// Velocities, for writing a reset state; call [`MujocoSim::forward`] afterwards.
    pub(crate) fn qvel_mut(&mut self) -> &mut [f64] {
        self.data.qvel_mut()
    }
    /// `mj_forward`: recomputes everything derived from the state.
    pub(crate) fn forward(&mut self) {
        self.data.forward();
    }

    /// Sets the controls and steps `frame_skip` times (Gymnasium's `do_simulation`).
    /// Returns why the result cannot be trusted, if MuJoCo warned of bad positions,
    /// velocities or accelerations, or the state became non-finite.
    ///
    /// Gymnasium also calls `mj_rnePostConstraint` afterwards; that only fills
    /// `cacc`/`cfrc_*`, which no environment here reads, so it is skipped.
    pub fn do_simulation(&mut self, ctrl: &[f64]) -> Option<Instability> {
        const WATCHED: [(MjtWarning, Instability); 3] = [
            (MjtWarning::mjWARN_BADQPOS, Instability::BadQpos),
            (MjtWarning::mjWARN_BADQVEL, Instability::BadQvel),
            (MjtWarning::mjWARN_BADQACC, Instability::BadQacc),
        ];
        // SAFETY: plain integer fields of mjData, written while we hold it mutably.
        unsafe {
            let raw = self.data.ffi_mut();
            for (warning, _) in WATCHED {
                raw.warning[warning as usize].number = 0;
            }
        }
        self.data.ctrl_mut().copy_from_slice(ctrl);
        for _ in 0..self.frame_skip {
            self.data.step();
        }
        let warnings = self.data.warning();
        if let Some((_, kind)) = WATCHED
            .iter()
            .find(|(warning, _)| warnings[*warning as usize].number > 0)
        {
            return Some(*kind);
        }
        let finite = self.qpos().iter().chain(self.qvel()).all(|x| x.is_finite());
        (!finite).then_some(Instability::NonFiniteState)
    }
}

/// Sends MuJoCo's messages to the `log` crate (target `mujoco`) instead of stdout and
/// a `MUJOCO_LOG.TXT` in the working directory. Runs once, before this library loads
/// its first model. Instabilities that matter are reported in step results anyway.
fn route_mujoco_messages_to_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: runs before this library has created any simulation, so none of its
    // threads uses MuJoCo during the call.
    ONCE.call_once(|| unsafe { mujoco_rs::logging::install_logging_hook() });
}

/// Read access to a MuJoCo environment's model and data, and Gymnasium's
/// `state_vector` / `set_state`, so that any state can be reproduced exactly.
pub trait MujocoEnv {
    /// The simulation.
    fn sim(&self) -> &MujocoSim;
    /// The compiled model.
    fn model(&self) -> &MjModel {
        self.sim().model()
    }
    /// The simulation state.
    fn data(&self) -> &MjData<Box<MjModel>> {
        self.sim().data()
    }
    /// `(qpos, qvel)`.
    fn state(&self) -> (Vec<f64>, Vec<f64>) {
        (self.sim().qpos().to_vec(), self.sim().qvel().to_vec())
    }
    /// Sets qpos and qvel, then runs `mj_forward` (Gymnasium's `set_state`).
    fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<()>;
    /// Writes the observation of the current state (Gymnasium's `_get_obs`).
    fn observe(&self, obs: &mut [f64]);
}

/// What distinguishes one MuJoCo environment from another: its observation, reward,
/// termination and reset noise. [`MjEnv`] supplies the rest.
pub trait MujocoTask: Send + 'static {
    /// The registered id.
    const ID: &'static str;
    /// Entries of the observation.
    fn observation_dim(&self, sim: &MujocoSim) -> usize;
    /// The observation space (defaults to an unbounded box).
    fn observation_space(&self, sim: &MujocoSim) -> Space {
        Space::uniform_box(self.observation_dim(sim), f64::NEG_INFINITY, f64::INFINITY)
    }
    /// Writes the observation of the current state.
    fn observe(&self, sim: &MujocoSim, obs: &mut [f64]);
    /// Gymnasium's `reset_model`: draws the initial state from the one `mj_resetData`
    /// left (qpos0, zero velocities) and runs `mj_forward`.
    fn reset_model(&mut self, sim: &mut MujocoSim, rng: &mut EnvRng);
    /// The info returned by `reset`.
    fn reset_info(&self, _sim: &MujocoSim) -> Info {
        Info::EMPTY
    }
    /// Applies a (validated) action, steps the physics and scores the step:
    /// `(reward, terminated, info, instability)`.
    fn step(&mut self, sim: &mut MujocoSim, action: &[f64]) -> TaskStep;
}

/// What [`MujocoTask::step`] returns.
#[derive(Debug, Clone, Copy)]
pub struct TaskStep {
    /// The reward.
    pub reward: f64,
    /// Whether the new state is terminal.
    pub terminated: bool,
    /// The info entries.
    pub info: Info,
    /// Set when the physics went unstable.
    pub instability: Option<Instability>,
}

/// A MuJoCo environment: a [`MujocoSim`] driven by a [`MujocoTask`], with
/// Gymnasium's order enforcing (reset before step).
pub struct MjEnv<T: MujocoTask> {
    sim: MujocoSim,
    task: T,
    rng: Option<EnvRng>,
    observation_space: Space,
    action_space: Space,
    info: Info,
    needs_reset: Option<&'static str>,
}

impl<T: MujocoTask> MjEnv<T> {
    /// Wraps a simulation and a task.
    pub fn new(sim: MujocoSim, task: T) -> MjEnv<T> {
        let observation_space = task.observation_space(&sim);
        let action_space = sim.action_space();
        MjEnv {
            sim,
            task,
            rng: None,
            observation_space,
            action_space,
            info: Info::EMPTY,
            needs_reset: Some("the environment has not been reset yet"),
        }
    }

    /// The task (its parameters).
    pub fn task(&self) -> &T {
        &self.task
    }
}

impl<T: MujocoTask> MujocoEnv for MjEnv<T> {
    fn sim(&self) -> &MujocoSim {
        &self.sim
    }
    fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<()> {
        self.sim.set_state(qpos, qvel)
    }
    fn observe(&self, obs: &mut [f64]) {
        self.task.observe(&self.sim, obs);
    }
}

impl<T: MujocoTask> super::Env for MjEnv<T> {
    fn id(&self) -> &str {
        T::ID
    }
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }
    fn action_space(&self) -> &Space {
        &self.action_space
    }
    fn dt(&self) -> f64 {
        self.sim.dt()
    }

    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<Info> {
        check_obs_len(&self.observation_space, obs)?;
        let rng = reseed(&mut self.rng, seed);
        self.sim.reset_data();
        self.task.reset_model(&mut self.sim, rng);
        self.task.observe(&self.sim, obs);
        self.info = self.task.reset_info(&self.sim);
        self.needs_reset = None;
        Ok(self.info)
    }

    fn step_into(&mut self, action: &[f64], obs: &mut [f64]) -> Result<StepOutcome> {
        if let Some(reason) = self.needs_reset {
            return Err(EnvError::NeedsReset(reason));
        }
        check_action(&self.action_space, action)?;
        check_obs_len(&self.observation_space, obs)?;
        let step = self.task.step(&mut self.sim, action);
        self.task.observe(&self.sim, obs);
        self.info = step.info;
        if step.instability.is_some() {
            self.needs_reset = Some("the simulation went unstable in the previous step");
        }
        Ok(StepOutcome {
            reward: step.reward,
            terminated: step.terminated,
            truncated: step.instability.is_some(),
            instability: step.instability,
        })
    }

    fn info(&self) -> Info {
        self.info
    }
    fn as_mujoco(&self) -> Option<&dyn MujocoEnv> {
        Some(self)
    }
    fn as_mujoco_mut(&mut self) -> Option<&mut dyn MujocoEnv> {
        Some(self)
    }
}

/// `qpos0 + U(-c, c)` for positions and `U(-c, c)` for velocities, drawn in that
/// order: the reset of Hopper, Walker2d and InvertedPendulum. Expects the state
/// that `mj_resetData` leaves (qpos0, zero velocities) and allocates nothing.
pub(crate) fn uniform_reset(sim: &mut MujocoSim, rng: &mut EnvRng, scale: f64) {
    for q in sim.qpos_mut() {
        *q += super::uniform(rng, -scale, scale);
    }
    for v in sim.qvel_mut() {
        *v += super::uniform(rng, -scale, scale);
    }
    sim.forward();
}

/// Checks that a model has the sizes an environment needs (for `xml_file` overrides).
pub(crate) fn expect_sizes(
    env: &'static str,
    sim: &MujocoSim,
    nq: usize,
    nv: usize,
    nu: usize,
) -> Result<()> {
    if (sim.nq(), sim.nv(), sim.nu()) != (nq, nv, nu) {
        return Err(EnvError::ModelMismatch {
            env,
            source_name: sim.source().to_string(),
            message: format!(
                "needs nq/nv/nu = {nq}/{nv}/{nu}, the model has {}/{}/{}",
                sim.nq(),
                sim.nv(),
                sim.nu()
            ),
        });
    }
    Ok(())
}

/// `weight * Σ a²` computed as Gymnasium computes it: its actions are float32 (the
/// action space's dtype), so NumPy 2 squares, sums (pairwise, as `np.sum`) and
/// weights them in float32. Reproducing that keeps rewards exact to the last bit.
pub(crate) fn control_cost(weight: f64, action: &[f64]) -> f64 {
    let squares = action.iter().map(|a| {
        let a = *a as f32;
        a * a
    });
    f64::from(weight as f32 * numpy_sum_f32(squares, action.len()))
}

/// NumPy's float32 pairwise sum for arrays shorter than its 128-element block:
/// a running sum below 8 entries, eight interleaved partial sums from 8 on.
fn numpy_sum_f32(values: impl Iterator<Item = f32>, n: usize) -> f32 {
    if n < 8 {
        return values.fold(0.0f32, |acc, x| acc + x);
    }
    let mut partial = [0.0f32; 8];
    let mut rest = 0.0f32;
    let unrolled = n - n % 8;
    for (i, x) in values.enumerate() {
        if i < 8 {
            partial[i] = x;
        } else if i < unrolled {
            partial[i % 8] += x;
        } else {
            if i == unrolled {
                rest = ((partial[0] + partial[1]) + (partial[2] + partial[3]))
                    + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
            }
            rest += x;
        }
    }
    if unrolled == n {
        rest = ((partial[0] + partial[1]) + (partial[2] + partial[3]))
            + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
    }
    rest
}
