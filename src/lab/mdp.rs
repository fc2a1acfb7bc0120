//! Finite MDPs in the paper's matrix-vector notation (§2): FourRoom and seeded random MDPs.
//!
//! Indexing: the state-action pair (s, a) is row `s * |A| + a` of P and of r, θ, q, d.

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::LabError;

/// One possible result of taking action a in state s.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Probability of this outcome.
    pub prob: f64,
    /// Reward received.
    pub reward: f64,
    /// Next state, or `None` for a restart: the next state is drawn from μ0
    /// (FourRoom restarts after the goal is reached, see [`FourRoom`]).
    pub next: Option<usize>,
}

/// A finite discounted MDP M = {S, A, r, P, μ0, γ}.
///
/// Built from per-(s, a) outcome lists so that sampling returns the realised reward, while
/// the exact quantities use the expected reward r(s, a) and the dense P ∈ R^{|S||A|×|S|}.
#[derive(Clone, Debug)]
pub struct TabularMdp {
    n_states: usize,
    n_actions: usize,
    p: DMatrix<f64>,
    r: DVector<f64>,
    mu0: DVector<f64>,
    gamma: f64,
    outcomes: Vec<Vec<Outcome>>,
    mu0_cdf: Vec<f64>,
}

fn cdf_sample(cdf: &[f64], u: f64) -> usize {
    // First index whose cumulative probability exceeds u; the last one absorbs rounding.
    cdf.iter().position(|&c| u < c).unwrap_or(cdf.len() - 1)
}

impl TabularMdp {
    /// Builds an MDP from outcome lists (`outcomes[s * n_actions + a]`), μ0 and γ, and checks
    /// that every distribution is a distribution and γ ∈ [0, 1).
    pub fn from_outcomes(
        n_states: usize,
        n_actions: usize,
        outcomes: Vec<Vec<Outcome>>,
        mu0: DVector<f64>,
        gamma: f64,
    ) -> Result<Self, LabError> {
        if n_states == 0 || n_actions == 0 {
            return Err(LabError::InvalidMdp(
                "need at least one state and one action".into(),
            ));
        }
        if !(0.0..1.0).contains(&gamma) {
            return Err(LabError::InvalidMdp(format!(
                "discount must lie in [0, 1), got {gamma}"
            )));
        }
        let sa = n_states * n_actions;
        if outcomes.len() != sa {
            return Err(LabError::Dimension {
                what: "outcome lists",
                expected: sa,
                got: outcomes.len(),
            });
        }
        if mu0.len() != n_states {
            return Err(LabError::Dimension {
                what: "initial distribution",
                expected: n_states,
                got: mu0.len(),
            });
        }
        if mu0.iter().any(|&m| m.is_nan() || m < 0.0) || (mu0.sum() - 1.0).abs() > 1e-9 {
            return Err(LabError::InvalidMdp(
                "μ0 must be non-negative and sum to 1".into(),
            ));
        }
        let mut p = DMatrix::zeros(sa, n_states);
        let mut r = DVector::zeros(sa);
        for (i, outs) in outcomes.iter().enumerate() {
            let mut total = 0.0;
            for o in outs {
                if o.prob.is_nan() || o.prob < 0.0 || !o.reward.is_finite() {
                    return Err(LabError::InvalidMdp(format!(
                        "row {i}: probabilities must be non-negative and rewards finite"
                    )));
                }
                total += o.prob;
                r[i] += o.prob * o.reward;
                match o.next {
                    Some(s) if s < n_states => p[(i, s)] += o.prob,
                    Some(s) => {
                        return Err(LabError::InvalidMdp(format!(
                            "row {i}: next state {s} out of range (|S| = {n_states})"
                        )));
                    }
                    None => {
                        for s in 0..n_states {
                            p[(i, s)] += o.prob * mu0[s];
                        }
                    }
                }
            }
            if (total - 1.0).abs() > 1e-9 {
                return Err(LabError::InvalidMdp(format!(
                    "row {i}: outcome probabilities sum to {total}, not 1"
                )));
            }
        }
        let mut acc = 0.0;
        let mu0_cdf = mu0
            .iter()
            .map(|&m| {
                acc += m;
                acc
            })
            .collect();
        Ok(Self {
            n_states,
            n_actions,
            p,
            r,
            mu0,
            gamma,
            outcomes,
            mu0_cdf,
        })
    }

    /// A random MDP for the numerical proofs: Dirichlet(1) transition rows, rewards uniform in
    /// [-1, 1], and a Dirichlet(1) initial distribution (full support, as Assumption 1 needs).
    /// With `mu0_support < n_states`, μ0 is restricted to the first `mu0_support` states.
    pub fn random(
        n_states: usize,
        n_actions: usize,
        gamma: f64,
        mu0_support: usize,
        seed: u64,
    ) -> Result<Self, LabError> {
        if mu0_support == 0 || mu0_support > n_states {
            return Err(LabError::InvalidMdp(format!(
                "μ0 support {mu0_support} must be in 1..={n_states}"
            )));
        }
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        fn dirichlet(n: usize, rng: &mut Pcg64Mcg) -> Vec<f64> {
            // Normalised exponential draws: a Dirichlet(1, ..., 1) sample, floored away from 0
            // so that every transition has some probability.
            let e: Vec<f64> = (0..n)
                .map(|_| -(1.0 - rng.random::<f64>()).ln() + 1e-3)
                .collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|x| x / s).collect()
        }
        let mut outcomes = Vec::with_capacity(n_states * n_actions);
        for _ in 0..n_states * n_actions {
            let reward = rng.random_range(-1.0..1.0);
            let row = dirichlet(n_states, &mut rng);
            outcomes.push(
                row.into_iter()
                    .enumerate()
                    .map(|(s, prob)| Outcome {
                        prob,
                        reward,
                        next: Some(s),
                    })
                    .collect(),
            );
        }
        let mut mu0 = DVector::zeros(n_states);
        for (s, m) in dirichlet(mu0_support, &mut rng).into_iter().enumerate() {
            mu0[s] = m;
        }
        Self::from_outcomes(n_states, n_actions, outcomes, mu0, gamma)
    }

    /// |S|.
    pub fn n_states(&self) -> usize {
        self.n_states
    }
    /// |A|.
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }
    /// |S||A|, the length of θ, q, r and d.
    pub fn n_sa(&self) -> usize {
        self.n_states * self.n_actions
    }
    /// Transition matrix P ∈ R^{|S||A|×|S|}.
    pub fn p(&self) -> &DMatrix<f64> {
        &self.p
    }
    /// Expected reward vector r ∈ R^{|S||A|}.
    pub fn r(&self) -> &DVector<f64> {
        &self.r
    }
    /// Initial state distribution μ0 ∈ R^{|S|}.
    pub fn mu0(&self) -> &DVector<f64> {
        &self.mu0
    }
    /// Discount γ.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// Samples s0 ~ μ0.
    pub fn sample_initial(&self, rng: &mut impl Rng) -> usize {
        cdf_sample(&self.mu0_cdf, rng.random::<f64>())
    }

    /// Samples one transition from (s, a): returns (reward, next state).
    pub fn step(&self, s: usize, a: usize, rng: &mut impl Rng) -> (f64, usize) {
        let outs = &self.outcomes[s * self.n_actions + a];
        let u = rng.random::<f64>();
        let mut acc = 0.0;
        let mut chosen = &outs[outs.len() - 1];
        for o in outs {
            acc += o.prob;
            if u < acc {
                chosen = o;
                break;
            }
        }
        let next = match chosen.next {
            Some(s) => s,
            None => self.sample_initial(rng),
        };
        (chosen.reward, next)
    }

    /// Optimal normalised value J* = (1-γ) μ0ᵀ v* by value iteration to `tol` (sup norm);
    /// used only to express learning curves as a fraction of the optimum.
    pub fn optimal_j(&self, tol: f64) -> f64 {
        let (ns, na, g) = (self.n_states, self.n_actions, self.gamma);
        let mut v = DVector::<f64>::zeros(ns);
        loop {
            let q = &self.r + &self.p * &v * g;
            let v_new = DVector::from_fn(ns, |s, _| {
                (0..na)
                    .map(|a| q[s * na + a])
                    .fold(f64::NEG_INFINITY, f64::max)
            });
            let diff = (&v_new - &v).amax();
            v = v_new;
            // The sup-norm contraction bounds the remaining error by γ/(1-γ)·diff.
            if diff * g / (1.0 - g) < tol {
                break;
            }
        }
        (1.0 - g) * self.mu0.dot(&v)
    }
}

/// The four-rooms layout of Sutton, Precup & Singh (1999): 13×13 with walls, 104 free cells.
pub const FOUR_ROOM_LAYOUT: [&str; 13] = [
    "wwwwwwwwwwwww",
    "w     w     w",
    "w     w     w",
    "w           w",
    "w     w     w",
    "w     w     w",
    "ww wwww     w",
    "w     www www",
    "w     w     w",
    "w     w     w",
    "w           w",
    "w     w     w",
    "wwwwwwwwwwwww",
];

/// Default goal: row 7, column 9, the hallway between the two east rooms (cell 62 in the
/// row-major numbering of free cells, the goal of the common option-critic FourRooms).
pub const FOUR_ROOM_GOAL: (usize, usize) = (7, 9);

/// What happens once the goal is reached (the paper does not say).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, clap::ValueEnum)]
pub enum GoalMode {
    /// Reward 1, then the agent restarts from μ0: a continuing task, so every step of a fixed
    /// 300-step episode is informative. The goal is never occupied and is not a state.
    #[default]
    Restart,
    /// Reward 1, then the agent stays in the goal, an absorbing state with reward 0.
    Absorb,
}

/// FourRoom with a goal cell (Appendix D.1, Fig. 4a).
///
/// Moving into the goal gives reward 1, every other transition 0; what follows is
/// [`GoalMode`]. μ0 is uniform over the free cells other than the goal. Actions: up, down,
/// left, right; walls block moves. With probability `slip` the action is replaced by one of the
/// other three directions uniformly (Sutton, Precup & Singh use slip = 1/3; the default is 0).
#[derive(Clone, Debug)]
pub struct FourRoom {
    /// The MDP (γ as given, 0.9 in the paper).
    pub mdp: TabularMdp,
    /// Grid (row, column) of each state.
    pub cells: Vec<(usize, usize)>,
    /// Goal cell (row, column).
    pub goal: (usize, usize),
    /// Probability that a move goes in one of the other three directions.
    pub slip: f64,
    /// What happens at the goal.
    pub mode: GoalMode,
}

impl FourRoom {
    /// Builds FourRoom with the given goal cell, goal mode, slip probability and discount.
    pub fn new(
        goal: (usize, usize),
        mode: GoalMode,
        slip: f64,
        gamma: f64,
    ) -> Result<Self, LabError> {
        if !(0.0..=1.0).contains(&slip) {
            return Err(LabError::Config(format!(
                "slip must lie in [0, 1], got {slip}"
            )));
        }
        let grid: Vec<&[u8]> = FOUR_ROOM_LAYOUT.iter().map(|r| r.as_bytes()).collect();
        let free =
            |(r, c): (usize, usize)| r < grid.len() && c < grid[r].len() && grid[r][c] == b' ';
        if !free(goal) {
            return Err(LabError::Config(format!(
                "goal ({}, {}) is not a free cell of the FourRoom grid",
                goal.0, goal.1
            )));
        }
        let absorb = mode == GoalMode::Absorb;
        let cells: Vec<(usize, usize)> = (0..grid.len())
            .flat_map(|r| (0..grid[r].len()).map(move |c| (r, c)))
            .filter(|&rc| free(rc) && (absorb || rc != goal))
            .collect();
        let index = |rc: (usize, usize)| cells.iter().position(|&x| x == rc);
        const MOVES: [(isize, isize); 4] = [(-1, 0), (1, 0), (0, -1), (0, 1)];
        let n_states = cells.len();
        let mut outcomes = Vec::with_capacity(n_states * 4);
        for &(r, c) in &cells {
            for a in 0..4 {
                if (r, c) == goal {
                    // Absorbing goal: stay, reward 0.
                    outcomes.push(vec![Outcome {
                        prob: 1.0,
                        reward: 0.0,
                        next: index(goal),
                    }]);
                    continue;
                }
                let mut outs: Vec<Outcome> = Vec::new();
                for (m, &(dr, dc)) in MOVES.iter().enumerate() {
                    let prob = if m == a { 1.0 - slip } else { slip / 3.0 };
                    if prob == 0.0 {
                        continue;
                    }
                    let target = (r.wrapping_add_signed(dr), c.wrapping_add_signed(dc));
                    let (reward, next) = if target == goal {
                        (1.0, if absorb { index(goal) } else { None })
                    } else if free(target) {
                        (0.0, index(target))
                    } else {
                        (0.0, index((r, c)))
                    };
                    outs.push(Outcome { prob, reward, next });
                }
                outcomes.push(outs);
            }
        }
        let n_start = cells.iter().filter(|&&rc| rc != goal).count() as f64;
        let mu0 = DVector::from_iterator(
            n_states,
            cells
                .iter()
                .map(|&rc| if rc == goal { 0.0 } else { 1.0 / n_start }),
        );
        let mdp = TabularMdp::from_outcomes(n_states, 4, outcomes, mu0, gamma)?;
        Ok(Self {
            mdp,
            cells,
            goal,
            slip,
            mode,
        })
    }

    /// The default setting: default goal, restart at the goal, deterministic moves, γ = 0.9.
    pub fn paper() -> Self {
        // The default goal is a free cell and γ = 0.9 is valid, so this cannot fail.
        Self::new(FOUR_ROOM_GOAL, GoalMode::Restart, 0.0, 0.9).expect("default FourRoom is valid")
    }
}
