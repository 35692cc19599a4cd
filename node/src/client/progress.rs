//! Feedback for long CLI operations, on stderr (stdout stays for results).
//!
//! On a terminal, an `indicatif` bar (bytes, rate, ETA) or spinner; when
//! stderr is not a terminal (scripts, CI logs), plain lines instead: one
//! when a phase starts, one at most every few seconds while it runs, one
//! when it ends. `--json` callers pass `quiet` and get neither.
//!
//! Any long operation reuses it: a byte transfer ([`Progress::bytes`]), a
//! count of steps ([`Progress::steps`], e.g. unseal shares or members
//! caught up), or a wait with no measure ([`Progress::waiting`]).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain line reports a running operation.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// What a [`Progress`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Bytes,
    Steps,
    Nothing,
}

enum Output {
    Bar(ProgressBar),
    Plain { last: Instant },
    Quiet,
}

/// Progress of one operation.
pub struct Progress {
    output: Output,
    unit: Unit,
    label: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
}

impl Progress {
    /// A transfer of `total` bytes (unknown: `None`).
    pub fn bytes(label: &str, total: Option<u64>, quiet: bool) -> Self {
        Self::new(label, total, Unit::Bytes, quiet)
    }

    /// `total` steps (shares entered, members caught up, ...).
    pub fn steps(label: &str, total: u64, quiet: bool) -> Self {
        Self::new(label, Some(total), Unit::Steps, quiet)
    }

    /// A wait with nothing to count (a spinner and the time elapsed).
    pub fn waiting(label: &str, quiet: bool) -> Self {
        Self::new(label, None, Unit::Nothing, quiet)
    }

    fn new(label: &str, total: Option<u64>, unit: Unit, quiet: bool) -> Self {
        let output = if quiet {
            Output::Quiet
        } else if std::io::stderr().is_terminal() {
            Output::Bar(bar(label, total, unit))
        } else {
            eprintln!("{label}...");
            Output::Plain {
                last: Instant::now(),
            }
        };
        Progress {
            output,
            unit,
            label: label.to_string(),
            total,
            done: 0,
            started: Instant::now(),
        }
    }

    /// Counts `n` more bytes or steps.
    pub fn advance(&mut self, n: u64) {
        self.set_position(self.done + n);
    }

    /// Sets how much is done.
    pub fn set_position(&mut self, done: u64) {
        self.done = done;
        match &mut self.output {
            Output::Bar(bar) => bar.set_position(done),
            Output::Plain { last } if last.elapsed() >= PLAIN_EVERY => {
                *last = Instant::now();
                eprintln!("{}: {}", self.label, self.describe());
            }
            _ => {}
        }
    }

    /// Moves to another phase of the same operation (a new label).
    pub fn phase(&mut self, label: &str) {
        self.label = label.to_string();
        match &mut self.output {
            Output::Bar(bar) => bar.set_message(label.to_string()),
            Output::Plain { last } => {
                *last = Instant::now();
                eprintln!("{label}...");
            }
            Output::Quiet => {}
        }
    }

    /// Ends the operation with a closing line.
    pub fn finish(self, message: &str) {
        let summary = format!("{message} ({})", self.describe());
        match self.output {
            Output::Bar(bar) => bar.finish_with_message(summary),
            Output::Plain { .. } => eprintln!("{summary}"),
            Output::Quiet => {}
        }
    }

    /// Ends the operation without a closing line (it failed; the caller
    /// reports why).
    pub fn abandon(self) {
        if let Output::Bar(bar) = self.output {
            bar.abandon();
        }
    }

    /// "12.0 MiB of 40.0 MiB, 8.1 MiB/s, 1.5s" and the like.
    fn describe(&self) -> String {
        let elapsed = self.started.elapsed();
        let secs = elapsed.as_secs_f64().max(1e-3);
        let time = format!("{:.1}s", elapsed.as_secs_f64());
        match self.unit {
            Unit::Bytes => {
                let of = self
                    .total
                    .map(|t| format!(" of {}", HumanBytes(t)))
                    .unwrap_or_default();
                let rate = HumanBytes((self.done as f64 / secs) as u64);
                format!("{}{of}, {rate}/s, {time}", HumanBytes(self.done))
            }
            Unit::Steps => format!("{} of {}, {time}", self.done, self.total.unwrap_or(0)),
            Unit::Nothing => time,
        }
    }
}

fn bar(label: &str, total: Option<u64>, unit: Unit) -> ProgressBar {
    let template = match (unit, total) {
        (Unit::Bytes, Some(_)) => {
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
        }
        (Unit::Bytes, None) => "{spinner} {msg} {bytes} {binary_bytes_per_sec} {elapsed}",
        (Unit::Steps, _) => "{msg} [{bar:30}] {pos}/{len} {elapsed}",
        (Unit::Nothing, _) => "{spinner} {msg} {elapsed}",
    };
    let bar = match total {
        Some(t) if unit != Unit::Nothing => ProgressBar::new(t),
        _ => ProgressBar::new_spinner(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
