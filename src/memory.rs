//! Up-front memory checks for the sizes a user sets.
//!
//! Options such as `--batch-size`, `--buffer-size`, `--hidden` or `--epoch-steps` decide
//! allocations made long after a command starts (a replay buffer, a batch's activations, an
//! epoch's rollout). A value too large for the machine would abort the process inside the
//! allocator (`memory allocation of … bytes failed`, exit 134), possibly hours into a run.
//! Commands therefore add up what their sizes will need ([`Needs`]) and check the total
//! against the memory the machine has available ([`available_bytes`]) before they create
//! or allocate anything; a value that cannot fit is an error naming the option, the size it
//! would need and what is available.
//!
//! The estimates are lower bounds of what the code allocates (the big buffers and a few
//! copies of the networks and activations), so a run they refuse could never have
//! finished; a run they let through can still run out of memory if other processes take it
//! meanwhile.

use std::fmt;

/// What a command's sizes need, part by part (bytes, saturating: an overflow is simply
/// "too much").
#[derive(Clone, Debug, Default)]
pub struct Needs {
    parts: Vec<(String, u128)>,
}

/// A command's sizes need more memory than is available.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryError {
    /// The largest part (it names the option to change).
    pub largest: String,
    /// Bytes the largest part needs.
    pub largest_bytes: u128,
    /// Bytes all parts need together.
    pub total_bytes: u128,
    /// Bytes available.
    pub available_bytes: u64,
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} needs about {}",
            self.largest,
            human(self.largest_bytes)
        )?;
        if human(self.total_bytes) != human(self.largest_bytes) {
            write!(f, " ({} in all)", human(self.total_bytes))?;
        }
        write!(
            f,
            ", but this machine has {} of memory available; choose a smaller value",
            human(self.available_bytes as u128)
        )
    }
}

impl std::error::Error for MemoryError {}

impl Needs {
    /// No needs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a part: `what` names it with the option that sizes it (e.g. "the replay buffer
    /// (--buffer-size 1000000)").
    pub fn add(&mut self, what: impl Into<String>, bytes: u128) -> &mut Self {
        self.parts.push((what.into(), bytes));
        self
    }

    /// Bytes all parts need together.
    pub fn total(&self) -> u128 {
        self.parts
            .iter()
            .fold(0u128, |acc, (_, b)| acc.saturating_add(*b))
    }

    /// Checks the total against [`available_bytes`] (no check where that is unknown).
    pub fn check(&self) -> Result<(), MemoryError> {
        match available_bytes() {
            Some(available) => self.check_against(available),
            None => Ok(()),
        }
    }

    /// Checks the total against `available` bytes.
    pub fn check_against(&self, available: u64) -> Result<(), MemoryError> {
        let total = self.total();
        if total <= available as u128 {
            return Ok(());
        }
        let (largest, largest_bytes) = self
            .parts
            .iter()
            .max_by_key(|(_, b)| *b)
            .cloned()
            .unwrap_or_default();
        Err(MemoryError {
            largest,
            largest_bytes,
            total_bytes: total,
            available_bytes: available,
        })
    }
}

/// The product of `dims` times `bytes_per_item`, saturating instead of overflowing.
pub fn bytes(dims: &[usize], bytes_per_item: usize) -> u128 {
    dims.iter().fold(bytes_per_item as u128, |acc, &d| {
        acc.saturating_mul(d as u128)
    })
}

/// Parameters of a fully connected network `inputs → hidden… → outputs` (weights and
/// biases), saturating.
pub fn mlp_params(inputs: usize, hidden: &[usize], outputs: usize) -> u128 {
    let mut widths = Vec::with_capacity(hidden.len() + 2);
    widths.push(inputs);
    widths.extend_from_slice(hidden);
    widths.push(outputs);
    widths.windows(2).fold(0u128, |acc, w| {
        acc.saturating_add((w[0] as u128 + 1).saturating_mul(w[1] as u128))
    })
}

/// Memory this process may still take: the kernel's `MemAvailable` plus free swap, capped
/// by the cgroup (v2) limit when one is set. `None` where it cannot be read (not Linux).
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    };
    let mut available = field("MemAvailable:")?.saturating_add(field("SwapFree:").unwrap_or(0));
    let cgroup = |f: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    if let Some(max) = cgroup("memory.max") {
        let used = cgroup("memory.current").unwrap_or(0);
        available = available.min(max.saturating_sub(used));
    }
    Some(available)
}

/// A byte count for people: `512 B`, `3.0 MiB`, `1.1 TiB`.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut x = bytes as f64;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    if x >= 1024.0 {
        return format!("{x:.3e} {}", UNITS[unit]);
    }
    format!("{x:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_saturate_instead_of_overflowing() {
        assert_eq!(bytes(&[3, 4], 8), 96);
        assert_eq!(bytes(&[usize::MAX, usize::MAX, usize::MAX], 8), u128::MAX);
        assert_eq!(mlp_params(3, &[4], 2), 4 * 4 + 5 * 2);
        let mut n = Needs::new();
        n.add("a", u128::MAX).add("b", 5);
        assert_eq!(n.total(), u128::MAX);
    }

    #[test]
    fn the_error_names_the_largest_part_and_both_sizes() {
        let mut n = Needs::new();
        n.add("the networks (--hidden 8)", 1 << 20)
            .add("one batch (--batch-size 9)", 3 << 40);
        assert!(n.check_against(4 << 40).is_ok());
        let e = n.check_against(1 << 40).unwrap_err();
        assert_eq!(e.largest, "one batch (--batch-size 9)");
        let msg = e.to_string();
        assert!(
            msg.starts_with("one batch (--batch-size 9) needs about 3.0 TiB"),
            "{msg}"
        );
        assert!(msg.contains("1.0 TiB of memory available"), "{msg}");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
        assert!(human(u128::MAX).ends_with("EiB"));
    }

    #[test]
    fn this_machine_reports_some_memory() {
        if cfg!(target_os = "linux") {
            assert!(available_bytes().is_some_and(|b| b > 0));
        }
    }
}
