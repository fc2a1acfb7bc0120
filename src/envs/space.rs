//! Observation and action spaces: Gymnasium's `Box` and `Discrete`.

use std::fmt;

/// A space, as in `gymnasium.spaces`.
#[derive(Debug, Clone, PartialEq)]
pub enum Space {
    /// `Box(low, high, shape)`: a vector of reals with per-entry bounds (which may be
    /// infinite). Flattened: `low.len() == high.len()` is the dimension.
    Box {
        /// Lower bounds.
        low: Vec<f64>,
        /// Upper bounds.
        high: Vec<f64>,
    },
    /// `Discrete(n)`: the integers `0..n`.
    Discrete(usize),
}

impl Space {
    /// A box with the same bounds on every entry.
    pub fn uniform_box(dim: usize, low: f64, high: f64) -> Space {
        Space::Box {
            low: vec![low; dim],
            high: vec![high; dim],
        }
    }

    /// The number of entries of an element: the box dimension, or 1 for `Discrete`
    /// (its one-hot size is [`Space::n`]).
    pub fn dim(&self) -> usize {
        match self {
            Space::Box { low, .. } => low.len(),
            Space::Discrete(_) => 1,
        }
    }

    /// Entries of an action in this space as passed to `step`: the box dimension,
    /// or 1 (the index) for `Discrete`.
    pub fn action_len(&self) -> usize {
        self.dim()
    }

    /// The number of choices of a `Discrete` space.
    pub fn n(&self) -> Option<usize> {
        match self {
            Space::Discrete(n) => Some(*n),
            Space::Box { .. } => None,
        }
    }

    /// True for `Discrete`.
    pub fn is_discrete(&self) -> bool {
        matches!(self, Space::Discrete(_))
    }

    /// The box bounds, if this is a box.
    pub fn bounds(&self) -> Option<(&[f64], &[f64])> {
        match self {
            Space::Box { low, high } => Some((low, high)),
            Space::Discrete(_) => None,
        }
    }

    /// Whether `x` lies in the space (bounds inclusive, as Gymnasium's `contains`).
    pub fn contains(&self, x: &[f64]) -> bool {
        match self {
            Space::Box { low, high } => {
                x.len() == low.len()
                    && x.iter()
                        .zip(low.iter().zip(high))
                        .all(|(v, (lo, hi))| *lo <= *v && *v <= *hi)
            }
            Space::Discrete(n) => {
                x.len() == 1 && x[0].fract() == 0.0 && x[0] >= 0.0 && x[0] < *n as f64
            }
        }
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Discrete(n) => write!(f, "Discrete({n})"),
            Space::Box { low, high } => {
                let same = |v: &[f64]| v.iter().all(|x| *x == v[0]);
                if !low.is_empty() && same(low) && same(high) {
                    write!(f, "Box({}, {}, ({},))", low[0], high[0], low.len())
                } else {
                    write!(f, "Box(low={low:?}, high={high:?}, ({},))", low.len())
                }
            }
        }
    }
}
