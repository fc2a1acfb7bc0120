//! Tabular lab for "Characterizing the Gap Between Actor-Critic and Policy Gradient"
//! (Wen, Kumar, Gummadi & Schuurmans, ICML 2021).
//!
//! * [`mdp`]: finite MDPs in the paper's matrix-vector notation, FourRoom and seeded random MDPs.
//! * [`exact`]: the paper's exact quantities (f64, nalgebra), tagged with equation numbers.
//! * [`theorems`]: the paper's identities as numerical checks (used by the CLI and the tests).
//! * [`dp`]: the dynamic-programming experiments of Appendix D.1.1.
//! * [`sample`]: the sample-based Algorithms 1-4 of Appendix D.1.2.
//! * [`cli`]: `stackrl lab theorems|dp|sample`.

pub mod cli;
pub mod dp;
pub mod exact;
pub mod mdp;
pub mod optim;
pub mod plot;
pub mod sample;
pub mod theorems;

use std::path::PathBuf;

/// Everything that can go wrong in the lab; bad input is reported, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The MDP description is inconsistent (sizes, probabilities, discount).
    #[error("invalid MDP: {0}")]
    InvalidMdp(String),
    /// A parameter or value vector has the wrong length.
    #[error("dimension mismatch for {what}: expected {expected}, got {got}")]
    Dimension {
        /// Which vector.
        what: &'static str,
        /// Length the MDP requires.
        expected: usize,
        /// Length that was passed.
        got: usize,
    },
    /// A linear system the paper assumes invertible was singular (e.g. a critic weighting
    /// without full support, which breaks Assumption 1).
    #[error("singular linear system: {0}")]
    Singular(String),
    /// An experiment setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Writing results failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Rendering a figure failed.
    #[error("plotting {path} failed: {msg}")]
    Plot {
        /// Figure being written.
        path: PathBuf,
        /// The plotting backend's message.
        msg: String,
    },
}

impl LabError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            path: path.into(),
            source,
        }
    }
}
