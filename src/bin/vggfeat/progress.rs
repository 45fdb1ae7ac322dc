//! How the command line shows a job's progress (the library's [`vggfeat::Progress`] observer):
//! on a terminal (stderr is a TTY) an `indicatif` bar; otherwise a plain line on stderr every
//! `interval` with done/total, the rate and the time left, so that a scheduler's log shows where
//! a job is; with `--quiet`, nothing but the notes. Notes (skipped inputs) are printed as lines
//! that do not tear the bar.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vggfeat::util::progress::format_duration;

/// Seconds between two log lines when stderr is not a terminal.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A bar on a terminal, log lines otherwise.
    Auto,
    /// Notes only.
    Hidden,
}

#[derive(Debug)]
enum Sink {
    Bar(indicatif::ProgressBar),
    Log {
        done: u64,
        message: String,
        last: Instant,
        start: Instant,
    },
    Hidden,
}

#[derive(Debug)]
struct Task {
    label: String,
    unit: String,
    total: u64,
    sink: Sink,
}

/// The command line's progress observer.
#[derive(Debug)]
pub struct Shown {
    mode: Mode,
    interval: Duration,
    task: Mutex<Option<Task>>,
}

impl Shown {
    /// An observer: a bar or log lines every `interval` (`Mode::Auto`), or notes only.
    pub fn new(mode: Mode, interval: Duration) -> Self {
        Shown {
            mode,
            interval,
            task: Mutex::new(None),
        }
    }

    /// [`Mode::Auto`] when `show`, else hidden, with the default interval.
    pub fn visible(show: bool) -> Self {
        Self::new(
            if show { Mode::Auto } else { Mode::Hidden },
            DEFAULT_LOG_INTERVAL,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Task>> {
        self.task.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl vggfeat::Progress for Shown {
    fn begin(&self, task: &str, unit: &str, total: u64) {
        let sink = match self.mode {
            Mode::Hidden => Sink::Hidden,
            Mode::Auto if std::io::stderr().is_terminal() => {
                let bar = indicatif::ProgressBar::new(total);
                // The rate is the average since the start (indicatif's `per_sec` is smoothed),
                // the figure the job's summary gives at the end.
                let unit_name = unit.to_string();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix} {elapsed_precise} [{bar:40}] {pos}/{len} {msg} {rate} ETA {eta}",
                    )
                    .expect("valid template")
                    .with_key(
                        "rate",
                        move |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.2} {unit_name}/s", average(s.pos(), s.elapsed()));
                        },
                    )
                    .progress_chars("=> "),
                );
                bar.set_prefix(task.to_string());
                Sink::Bar(bar)
            }
            Mode::Auto => Sink::Log {
                done: 0,
                message: String::new(),
                last: Instant::now(),
                start: Instant::now(),
            },
        };
        *self.lock() = Some(Task {
            label: task.to_string(),
            unit: unit.to_string(),
            total,
            sink,
        });
    }

    fn advance(&self, n: u64) {
        let mut guard = self.lock();
        let Some(t) = guard.as_mut() else { return };
        match &mut t.sink {
            Sink::Bar(b) => b.inc(n),
            Sink::Log {
                done,
                message,
                last,
                start,
            } => {
                *done += n;
                if last.elapsed() >= self.interval {
                    *last = Instant::now();
                    eprintln!(
                        "{}",
                        line(&t.label, &t.unit, t.total, *done, message, start.elapsed())
                    );
                }
            }
            Sink::Hidden => {}
        }
    }

    fn status(&self, m: &str) {
        let mut guard = self.lock();
        match guard.as_mut().map(|t| &mut t.sink) {
            Some(Sink::Bar(b)) => b.set_message(m.to_string()),
            Some(Sink::Log { message, .. }) => *message = m.to_string(),
            _ => {}
        }
    }

    fn note(&self, l: &str) {
        match self.lock().as_ref().map(|t| &t.sink) {
            Some(Sink::Bar(b)) => b.suspend(|| eprintln!("{l}")),
            _ => eprintln!("{l}"),
        }
    }

    /// The bar stays, showing the final average rate; a log gets a last line with it.
    fn end(&self) {
        match self.lock().take() {
            Some(Task {
                sink: Sink::Bar(b), ..
            }) => b.finish(),
            Some(Task {
                label,
                unit,
                total,
                sink:
                    Sink::Log {
                        done,
                        message,
                        start,
                        ..
                    },
            }) => eprintln!(
                "{}",
                line(&label, &unit, total, done, &message, start.elapsed())
            ),
            _ => {}
        }
    }
}

/// Units per second since the start: the average, as the job's summary computes it.
fn average(done: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { done as f64 / secs } else { 0.0 }
}

/// `label: done/total unit (p %), r unit/s, elapsed e, ETA t[, message]` for a log.
fn line(
    label: &str,
    unit: &str,
    total: u64,
    done: u64,
    message: &str,
    elapsed: Duration,
) -> String {
    let rate = average(done, elapsed);
    let pct = if total > 0 {
        100.0 * done as f64 / total as f64
    } else {
        100.0
    };
    let eta = if rate > 0.0 && total >= done {
        format_duration(Duration::from_secs_f64((total - done) as f64 / rate))
    } else {
        "unknown".to_string()
    };
    let msg = if message.is_empty() {
        String::new()
    } else {
        format!(", {message}")
    };
    format!(
        "{label}: {done}/{total} {unit} ({pct:.1} %), {rate:.2} {unit}/s, elapsed {}, ETA {eta}{msg}",
        format_duration(elapsed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_say_done_rate_and_eta() {
        let l = line(
            "extract",
            "images",
            10,
            4,
            "loss 0.5",
            Duration::from_secs(8),
        );
        assert_eq!(
            l,
            "extract: 4/10 images (40.0 %), 0.50 images/s, elapsed 8s, ETA 12s, loss 0.5"
        );
        assert!(line("x", "y", 10, 0, "", Duration::ZERO).ends_with("ETA unknown"));
    }
}
