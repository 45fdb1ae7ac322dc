//! The paper's learning-rate schedule (Section 3.1): start at 1e-2, divide by 10 when the
//! validation accuracy stops improving; "in total, the learning rate was decreased 3 times" and
//! training then stopped. Here: after `patience` epochs without a new best validation top-1
//! error the rate is divided by `factor`; when that would happen a `max_decreases + 1`-th time,
//! training stops instead. Pure bookkeeping, serialisable for resuming.

use crate::error::{Error, Param, Result};

/// What the schedule decided after an epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Keep the learning rate.
    Continue,
    /// The rate was divided; the new rate.
    Decreased(f64),
    /// The validation error has stopped improving after the last allowed decrease.
    Stop,
}

/// Reduce-on-plateau state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plateau {
    /// Current learning rate.
    pub lr: f64,
    /// Division factor. Default 10 (the paper's); > 1.
    pub factor: f64,
    /// Epochs without improvement before a decrease. Default 2; at least 1.
    pub patience: usize,
    /// Decreases before the next plateau stops training. Default 3 (the paper's).
    pub max_decreases: usize,
    /// The best (lowest) validation top-1 error so far.
    pub best: Option<f64>,
    /// Epochs since `best` improved.
    pub bad_epochs: usize,
    /// Decreases so far.
    pub decreases: usize,
}

impl Plateau {
    /// A fresh schedule starting at `lr`. Errors on `lr <= 0`, `factor <= 1` or `patience == 0`.
    pub fn new(lr: f64, factor: f64, patience: usize, max_decreases: usize) -> Result<Self> {
        if !(lr.is_finite() && lr > 0.0 && factor.is_finite() && factor > 1.0) {
            return Err(Error::param(
                Param::LrFactor,
                format!("schedule: learning rate {lr} must be > 0 and factor {factor} > 1"),
            ));
        }
        if patience == 0 {
            return Err(Error::param(Param::Patience, "must be at least 1 epoch"));
        }
        Ok(Plateau {
            lr,
            factor,
            patience,
            max_decreases,
            best: None,
            bad_epochs: 0,
            decreases: 0,
        })
    }

    /// Records an epoch's validation top-1 error (lower is better; an improvement must be
    /// strict) and decides.
    pub fn observe(&mut self, top1_err: f64) -> Decision {
        if self.best.is_none_or(|b| top1_err < b) {
            self.best = Some(top1_err);
            self.bad_epochs = 0;
            return Decision::Continue;
        }
        self.bad_epochs += 1;
        if self.bad_epochs < self.patience {
            return Decision::Continue;
        }
        if self.decreases >= self.max_decreases {
            return Decision::Stop;
        }
        self.decreases += 1;
        self.bad_epochs = 0;
        self.lr /= self.factor;
        Decision::Decreased(self.lr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divides_on_plateaus_and_stops_after_the_last_decrease() {
        let mut s = Plateau::new(0.01, 10.0, 2, 3).unwrap();
        let errs = [0.9, 0.8, 0.8, 0.85, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6];
        let d: Vec<Decision> = errs.iter().map(|&e| s.observe(e)).collect();
        use Decision::*;
        let expect = [
            Continue,
            Continue,
            Continue,
            Decreased(0.001),
            Continue,
            Continue,
            Decreased(0.0001),
            Continue,
            Continue,
            Decreased(0.00001),
            Continue,
            Stop,
        ];
        for (i, (a, b)) in d.iter().zip(expect).enumerate() {
            match (a, b) {
                (Decreased(x), Decreased(y)) => assert!((x - y).abs() < 1e-15, "epoch {i}"),
                _ => assert_eq!(*a, b, "epoch {i}"),
            }
        }
        assert_eq!(s.decreases, 3);
        assert_eq!(s.best, Some(0.6));
        assert!(Plateau::new(0.01, 1.0, 1, 3).is_err());
        assert!(Plateau::new(0.01, 10.0, 0, 3).is_err());
    }
}
