//! Progress reporting: an indicatif bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a run reports progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    /// A bar when stdout is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Always the bar (on stdout).
    Bar,
    /// Plain lines on stdout (one per log interval).
    Plain,
    /// Nothing.
    None,
}

impl std::str::FromStr for ProgressMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "bar" => Ok(Self::Bar),
            "plain" => Ok(Self::Plain),
            "none" => Ok(Self::None),
            _ => Err(format!(
                "unknown progress mode '{s}'; valid: auto, bar, plain, none"
            )),
        }
    }
}

/// The progress display of one run.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: u64,
    started: Instant,
    start_step: u64,
}

impl Progress {
    /// A display for a run of `total` steps resuming at `start`.
    pub fn new(mode: ProgressMode, total: u64, start: u64, label: &str) -> Self {
        let use_bar = match mode {
            ProgressMode::Auto => std::io::stdout().is_terminal(),
            ProgressMode::Bar => true,
            ProgressMode::Plain | ProgressMode::None => false,
        };
        let bar = use_bar.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} (eta {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            bar.set_position(start);
            bar.reset_eta();
            bar
        });
        Self {
            bar,
            plain: mode == ProgressMode::Plain
                || (mode == ProgressMode::Auto && !std::io::stdout().is_terminal()),
            total,
            started: Instant::now(),
            start_step: start,
        }
    }

    /// Moves the bar to `step` and sets its message.
    pub fn update(&self, step: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_message(message.to_string());
        }
    }

    /// A status line: printed above the bar, or as a plain line with step and speed.
    pub fn status(&self, step: u64, message: &str) {
        if self.plain {
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            let rate = (step - self.start_step.min(step)) as f64 / secs;
            println!("step {step}/{} | {rate:.0} steps/s | {message}", self.total);
        } else {
            self.update(step, message);
        }
    }

    /// A line of its own (events such as checkpoints); printed in plain and bar modes.
    pub fn println(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None if self.plain => println!("{message}"),
            None => {}
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
