//! Preallocated ring-buffer replay memory for off-policy training (SAC / Res-SAC / Stack-SAC;
//! paper 001 Table 3: capacity 10⁶).
//!
//! Transitions are stored column-wise in flat `f32` vectors allocated once; sampling draws
//! indices uniformly with replacement from [`Rng`] (as SB3 / CleanRL do) into a preallocated
//! [`Batch`], so the training loop does not allocate.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::rng::Rng;

/// Replay-buffer errors.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Invalid construction arguments.
    #[error("invalid replay configuration: {0}")]
    Config(String),
    /// A transition or batch of the wrong width.
    #[error("dimension mismatch: {0}")]
    Dim(String),
    /// Sampling from an empty buffer.
    #[error("cannot sample from an empty replay buffer")]
    Empty,
    /// File I/O.
    #[error("replay file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Malformed or incompatible file.
    #[error("replay file format: {0}")]
    Format(String),
    /// Tensor conversion.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// A sampled minibatch in preallocated row-major buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Batch size.
    pub size: usize,
    /// Observation width.
    pub obs_dim: usize,
    /// Action width.
    pub act_dim: usize,
    /// `[size * obs_dim]`.
    pub obs: Vec<f32>,
    /// `[size * act_dim]`.
    pub actions: Vec<f32>,
    /// `[size]`.
    pub rewards: Vec<f32>,
    /// `[size * obs_dim]`.
    pub next_obs: Vec<f32>,
    /// `[size]`, 1.0 if the episode terminated (no bootstrapping), else 0.0.
    pub terminated: Vec<f32>,
    /// `[size]`, the sampled buffer rows.
    pub indices: Vec<usize>,
}

/// A minibatch as tensors (`f32`).
#[derive(Clone, Debug)]
pub struct BatchTensors {
    /// `[size, obs_dim]`.
    pub obs: Tensor,
    /// `[size, act_dim]`.
    pub actions: Tensor,
    /// `[size]`.
    pub rewards: Tensor,
    /// `[size, obs_dim]`.
    pub next_obs: Tensor,
    /// `[size]`.
    pub terminated: Tensor,
}

impl Batch {
    /// Preallocates a batch.
    pub fn new(size: usize, obs_dim: usize, act_dim: usize) -> Self {
        Self {
            size,
            obs_dim,
            act_dim,
            obs: vec![0.0; size * obs_dim],
            actions: vec![0.0; size * act_dim],
            rewards: vec![0.0; size],
            next_obs: vec![0.0; size * obs_dim],
            terminated: vec![0.0; size],
            indices: vec![0; size],
        }
    }

    /// Copies the batch into `f32` tensors on `device`.
    pub fn to_tensors(&self, device: &Device) -> candle_core::Result<BatchTensors> {
        let t2 = |v: &[f32], w: usize| Tensor::from_slice(v, (self.size, w), device);
        Ok(BatchTensors {
            obs: t2(&self.obs, self.obs_dim)?,
            actions: t2(&self.actions, self.act_dim)?,
            rewards: Tensor::from_slice(&self.rewards, self.size, device)?,
            next_obs: t2(&self.next_obs, self.obs_dim)?,
            terminated: Tensor::from_slice(&self.terminated, self.size, device)?,
        })
    }
}

/// One stored transition, borrowed from the buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transition<'a> {
    /// Observation.
    pub obs: &'a [f32],
    /// Action.
    pub action: &'a [f32],
    /// Reward.
    pub reward: f32,
    /// Successor observation.
    pub next_obs: &'a [f32],
    /// Whether the episode terminated.
    pub terminated: bool,
}

/// Fixed-capacity FIFO replay memory.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    act_dim: usize,
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    next_obs: Vec<f32>,
    terminated: Vec<f32>,
    /// Next row to write.
    pos: usize,
    /// Rows filled (`<= capacity`).
    len: usize,
}

impl ReplayBuffer {
    /// Allocates all storage up front.
    pub fn new(capacity: usize, obs_dim: usize, act_dim: usize) -> Result<Self, ReplayError> {
        if capacity == 0 || obs_dim == 0 || act_dim == 0 {
            return Err(ReplayError::Config(format!(
                "capacity {capacity}, obs_dim {obs_dim}, act_dim {act_dim} must be positive"
            )));
        }
        let n_obs = capacity.checked_mul(obs_dim);
        let n_act = capacity.checked_mul(act_dim);
        let (Some(n_obs), Some(n_act)) = (n_obs, n_act) else {
            return Err(ReplayError::Config("size overflows usize".into()));
        };
        // Fallible allocation: a capacity the machine cannot hold is an error, not an abort.
        let zeros = |n: usize| -> Result<Vec<f32>, ReplayError> {
            let mut v = Vec::new();
            v.try_reserve_exact(n).map_err(|_| {
                ReplayError::Config(format!(
                    "cannot allocate a replay buffer of {capacity} transitions ({} floats \
                     per array): not enough memory",
                    n
                ))
            })?;
            v.resize(n, 0.0);
            Ok(v)
        };
        Ok(Self {
            capacity,
            obs_dim,
            act_dim,
            obs: zeros(n_obs)?,
            actions: zeros(n_act)?,
            rewards: zeros(capacity)?,
            next_obs: zeros(n_obs)?,
            terminated: zeros(capacity)?,
            pos: 0,
            len: 0,
        })
    }

    /// Capacity in transitions.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Stored transitions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Action width.
    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// The row the next [`push`](Self::push) writes (the oldest row once full).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Appends a transition, overwriting the oldest once full. `next_obs` must be the true
    /// successor observation (not the reset observation) when an episode ends by truncation.
    pub fn push(
        &mut self,
        obs: &[f32],
        action: &[f32],
        reward: f32,
        next_obs: &[f32],
        terminated: bool,
    ) -> Result<(), ReplayError> {
        if obs.len() != self.obs_dim || next_obs.len() != self.obs_dim {
            return Err(ReplayError::Dim(format!(
                "obs {} / next_obs {}, expected {}",
                obs.len(),
                next_obs.len(),
                self.obs_dim
            )));
        }
        if action.len() != self.act_dim {
            return Err(ReplayError::Dim(format!(
                "action {}, expected {}",
                action.len(),
                self.act_dim
            )));
        }
        let i = self.pos;
        self.obs[i * self.obs_dim..(i + 1) * self.obs_dim].copy_from_slice(obs);
        self.next_obs[i * self.obs_dim..(i + 1) * self.obs_dim].copy_from_slice(next_obs);
        self.actions[i * self.act_dim..(i + 1) * self.act_dim].copy_from_slice(action);
        self.rewards[i] = reward;
        self.terminated[i] = if terminated { 1.0 } else { 0.0 };
        self.pos = (self.pos + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
        Ok(())
    }

    /// Row `i` (`0 <= i < len`, in storage order), or `None` past the filled rows.
    pub fn get(&self, i: usize) -> Option<Transition<'_>> {
        if i >= self.len {
            return None;
        }
        Some(Transition {
            obs: &self.obs[i * self.obs_dim..(i + 1) * self.obs_dim],
            action: &self.actions[i * self.act_dim..(i + 1) * self.act_dim],
            reward: self.rewards[i],
            next_obs: &self.next_obs[i * self.obs_dim..(i + 1) * self.obs_dim],
            terminated: self.terminated[i] != 0.0,
        })
    }

    /// Fills `batch` with `batch.size` transitions drawn uniformly with replacement.
    pub fn sample_into(&self, rng: &mut Rng, batch: &mut Batch) -> Result<(), ReplayError> {
        if self.len == 0 {
            return Err(ReplayError::Empty);
        }
        if batch.obs_dim != self.obs_dim
            || batch.act_dim != self.act_dim
            || batch.obs.len() != batch.size * self.obs_dim
            || batch.next_obs.len() != batch.size * self.obs_dim
            || batch.actions.len() != batch.size * self.act_dim
            || batch.rewards.len() != batch.size
            || batch.terminated.len() != batch.size
            || batch.indices.len() != batch.size
        {
            return Err(ReplayError::Dim(
                "batch buffers do not match the replay buffer".into(),
            ));
        }
        let (od, ad) = (self.obs_dim, self.act_dim);
        for k in 0..batch.size {
            let i = rng.below(self.len)?;
            batch.indices[k] = i;
            batch.obs[k * od..(k + 1) * od].copy_from_slice(&self.obs[i * od..(i + 1) * od]);
            batch.next_obs[k * od..(k + 1) * od]
                .copy_from_slice(&self.next_obs[i * od..(i + 1) * od]);
            batch.actions[k * ad..(k + 1) * ad]
                .copy_from_slice(&self.actions[i * ad..(i + 1) * ad]);
            batch.rewards[k] = self.rewards[i];
            batch.terminated[k] = self.terminated[i];
        }
        Ok(())
    }

    /// Saves the contents (filled rows only) and ring position as a safetensors file.
    pub fn save(&self, path: &Path) -> Result<(), ReplayError> {
        let n = self.len;
        let (od, ad) = (self.obs_dim, self.act_dim);
        let views = [
            ("obs", F32View::new(&self.obs[..n * od], vec![n, od])),
            (
                "actions",
                F32View::new(&self.actions[..n * ad], vec![n, ad]),
            ),
            ("rewards", F32View::new(&self.rewards[..n], vec![n])),
            (
                "next_obs",
                F32View::new(&self.next_obs[..n * od], vec![n, od]),
            ),
            ("terminated", F32View::new(&self.terminated[..n], vec![n])),
        ];
        let meta: HashMap<String, String> = [
            ("format", "stackrl-replay-v1".to_string()),
            ("capacity", self.capacity.to_string()),
            ("obs_dim", od.to_string()),
            ("act_dim", ad.to_string()),
            ("pos", self.pos.to_string()),
            ("len", n.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        safetensors::serialize_to_file(views, Some(meta), path)
            .map_err(|e| ReplayError::Format(e.to_string()))
    }

    /// Loads a buffer written by [`save`](Self::save) (capacity and widths come from the file).
    pub fn load(path: &Path) -> Result<Self, ReplayError> {
        let bytes = std::fs::read(path)?;
        let fmt = |e: safetensors::SafeTensorError| ReplayError::Format(e.to_string());
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(fmt)?;
        let meta = header
            .metadata()
            .as_ref()
            .ok_or_else(|| ReplayError::Format("missing metadata".into()))?;
        let field = |k: &str| -> Result<usize, ReplayError> {
            meta.get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| ReplayError::Format(format!("missing or invalid `{k}`")))
        };
        if meta.get("format").map(String::as_str) != Some("stackrl-replay-v1") {
            return Err(ReplayError::Format("not a stackrl-replay-v1 file".into()));
        }
        let mut buf = Self::new(field("capacity")?, field("obs_dim")?, field("act_dim")?)?;
        let (len, pos) = (field("len")?, field("pos")?);
        let consistent = len <= buf.capacity
            && pos < buf.capacity
            && (len == buf.capacity || pos == len % buf.capacity);
        if !consistent {
            return Err(ReplayError::Format(format!(
                "inconsistent len {len} / pos {pos} / capacity {}",
                buf.capacity
            )));
        }
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(fmt)?;
        let (od, ad) = (buf.obs_dim, buf.act_dim);
        let read = |name: &str, dst: &mut [f32]| -> Result<(), ReplayError> {
            let t = st.tensor(name).map_err(fmt)?;
            if t.dtype() != safetensors::Dtype::F32 || t.data().len() != dst.len() * 4 {
                return Err(ReplayError::Format(format!(
                    "tensor `{name}` has wrong type/size"
                )));
            }
            for (d, c) in dst.iter_mut().zip(t.data().chunks_exact(4)) {
                *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            Ok(())
        };
        read("obs", &mut buf.obs[..len * od])?;
        read("actions", &mut buf.actions[..len * ad])?;
        read("rewards", &mut buf.rewards[..len])?;
        read("next_obs", &mut buf.next_obs[..len * od])?;
        read("terminated", &mut buf.terminated[..len])?;
        buf.len = len;
        buf.pos = pos;
        Ok(buf)
    }
}

/// A little-endian f32 view for safetensors serialisation.
struct F32View<'a> {
    data: &'a [f32],
    shape: Vec<usize>,
}

impl<'a> F32View<'a> {
    fn new(data: &'a [f32], shape: Vec<usize>) -> Self {
        Self { data, shape }
    }
}

impl safetensors::View for F32View<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Owned(self.data.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}
