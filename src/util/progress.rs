//! Progress as an observer the caller supplies: a long job ([`crate::Extraction`], training,
//! a dataset evaluation, an in-memory description) tells a [`Progress`] what it does, and the
//! caller decides what that looks like: the command line draws a bar on a terminal or writes log
//! lines, the Python binding forwards to a callback or tqdm, a service records it, and
//! [`Silent`] ignores it. The library itself never draws anything.

/// What a long job tells its caller as it goes. Every method has an empty default, so an
/// observer implements only what it shows. Calls come from the thread that runs the job.
pub trait Progress: Send + Sync {
    /// A task of `total` steps of `unit` (`"images"`) begins, named `task` (`"extract"`,
    /// `"epoch 3"`).
    fn begin(&self, task: &str, unit: &str, total: u64) {
        let _ = (task, unit, total);
    }

    /// `n` more steps of the current task are done.
    fn advance(&self, n: u64) {
        let _ = n;
    }

    /// A short status of the current task (the running loss).
    fn status(&self, message: &str) {
        let _ = message;
    }

    /// A line for the person watching (an input was skipped, and why). The job also reports
    /// what it says here in what it returns.
    fn note(&self, line: &str) {
        let _ = line;
    }

    /// The current task ended.
    fn end(&self) {}
}

/// An observer that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}

impl<P: Progress + ?Sized> Progress for &P {
    fn begin(&self, task: &str, unit: &str, total: u64) {
        (**self).begin(task, unit, total)
    }
    fn advance(&self, n: u64) {
        (**self).advance(n)
    }
    fn status(&self, message: &str) {
        (**self).status(message)
    }
    fn note(&self, line: &str) {
        (**self).note(line)
    }
    fn end(&self) {
        (**self).end()
    }
}

/// `1h02m03s`, `2m05s`, `7s`.
pub fn format_duration(d: std::time::Duration) -> String {
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
    use std::sync::Mutex;

    #[derive(Default)]
    struct Count(Mutex<(u64, Vec<String>)>);

    impl Progress for Count {
        fn advance(&self, n: u64) {
            self.0.lock().unwrap().0 += n;
        }
        fn note(&self, line: &str) {
            self.0.lock().unwrap().1.push(line.into());
        }
    }

    #[test]
    fn observers_get_only_what_they_implement() {
        let c = Count::default();
        let p: &dyn Progress = &c;
        p.begin("x", "images", 3);
        p.advance(2);
        (&p).advance(1);
        p.note("skipped a");
        p.end();
        assert_eq!(*c.0.lock().unwrap(), (3, vec!["skipped a".to_string()]));
        Silent.advance(1);
        assert_eq!(
            format_duration(std::time::Duration::from_secs(3723)),
            "1h02m03s"
        );
    }
}
