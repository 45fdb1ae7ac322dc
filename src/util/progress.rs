//! Progress of a long loop, for a person at a terminal or for a batch job's log. On a terminal
//! (stderr is a TTY) it is an `indicatif` bar; otherwise it prints a plain line to stderr every
//! `interval` (default [`DEFAULT_LOG_INTERVAL`]) with done/total, the rate and the time left, so
//! that a scheduler's log shows where a job is. Hidden, it prints nothing. Messages printed
//! through [`Progress::println`] do not tear the bar.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seconds between two log lines when stderr is not a terminal.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on a terminal, log lines otherwise.
    Auto,
    /// Log lines every so often, whatever stderr is.
    Log,
    /// Nothing.
    Hidden,
}

#[derive(Debug)]
struct LogState {
    done: u64,
    message: String,
    last: Instant,
}

#[derive(Debug)]
enum Sink {
    Bar(indicatif::ProgressBar),
    Log {
        state: Mutex<LogState>,
        start: Instant,
        interval: Duration,
    },
    Hidden,
}

/// A progress reporter for `total` steps of what `label` names (`"images"`, `"epoch 3"`).
#[derive(Debug)]
pub struct Progress {
    label: String,
    unit: String,
    total: u64,
    sink: Sink,
}

impl Progress {
    /// A reporter: a bar on a terminal, log lines otherwise (every [`DEFAULT_LOG_INTERVAL`]);
    /// `show = false` hides it.
    pub fn new(label: &str, unit: &str, total: u64, show: bool) -> Self {
        let mode = if show {
            ProgressMode::Auto
        } else {
            ProgressMode::Hidden
        };
        Self::with_mode(label, unit, total, mode, DEFAULT_LOG_INTERVAL)
    }

    /// A reporter with an explicit mode and log interval.
    pub fn with_mode(
        label: &str,
        unit: &str,
        total: u64,
        mode: ProgressMode,
        interval: Duration,
    ) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let sink = match mode {
            ProgressMode::Hidden => Sink::Hidden,
            ProgressMode::Auto if terminal => {
                let bar = indicatif::ProgressBar::new(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix} {elapsed_precise} [{bar:40}] {pos}/{len} {msg} {per_sec} ETA {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(label.to_string());
                Sink::Bar(bar)
            }
            ProgressMode::Auto | ProgressMode::Log => Sink::Log {
                state: Mutex::new(LogState {
                    done: 0,
                    message: String::new(),
                    last: Instant::now(),
                }),
                start: Instant::now(),
                interval,
            },
        };
        Progress {
            label: label.to_string(),
            unit: unit.to_string(),
            total,
            sink,
        }
    }

    /// Counts `n` more steps done.
    pub fn inc(&self, n: u64) {
        match &self.sink {
            Sink::Bar(b) => b.inc(n),
            Sink::Log {
                state,
                start,
                interval,
            } => {
                let mut s = state.lock().expect("progress lock");
                s.done += n;
                if s.last.elapsed() >= *interval {
                    s.last = Instant::now();
                    eprintln!("{}", self.line(s.done, &s.message, start.elapsed()));
                }
            }
            Sink::Hidden => {}
        }
    }

    /// Sets a short message shown with the progress (e.g. the running loss).
    pub fn set_message(&self, m: String) {
        match &self.sink {
            Sink::Bar(b) => b.set_message(m),
            Sink::Log { state, .. } => state.lock().expect("progress lock").message = m,
            Sink::Hidden => {}
        }
    }

    /// Prints a line to stderr without tearing the bar.
    pub fn println(&self, line: &str) {
        match &self.sink {
            Sink::Bar(b) => b.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }

    /// Removes the bar (a log prints nothing more).
    pub fn finish(&self) {
        if let Sink::Bar(b) = &self.sink {
            b.finish_and_clear();
        }
    }

    /// `label: done/total unit (p %), r unit/s, ETA t` for a log.
    fn line(&self, done: u64, message: &str, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let pct = if self.total > 0 {
            100.0 * done as f64 / self.total as f64
        } else {
            100.0
        };
        let eta = if rate > 0.0 && self.total >= done {
            format_duration(Duration::from_secs_f64((self.total - done) as f64 / rate))
        } else {
            "unknown".to_string()
        };
        let msg = if message.is_empty() {
            String::new()
        } else {
            format!(", {message}")
        };
        format!(
            "{}: {done}/{} {} ({pct:.1} %), {rate:.2} {}/s, elapsed {}, ETA {eta}{msg}",
            self.label,
            self.total,
            self.unit,
            self.unit,
            format_duration(elapsed)
        )
    }
}

/// `1h02m03s`, `2m05s`, `7s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_say_done_rate_and_eta() {
        let p = Progress::with_mode(
            "extract",
            "images",
            10,
            ProgressMode::Log,
            Duration::from_secs(3600),
        );
        let l = p.line(4, "loss 0.5", Duration::from_secs(8));
        assert_eq!(
            l,
            "extract: 4/10 images (40.0 %), 0.50 images/s, elapsed 8s, ETA 12s, loss 0.5"
        );
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h02m03s");
        assert!(p.line(0, "", Duration::ZERO).ends_with("ETA unknown"));
    }
}
