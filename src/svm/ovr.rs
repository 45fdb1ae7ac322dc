//! One-vs-rest: one binary linear SVM per class, trained in parallel with rayon.
//!
//! Multi-class (Caltech): class `k`'s problem has the items of class `k` as positives and every
//! other item as negatives. Multi-label (VOC): class `k`'s labels are given per item as `+1`, `-1`
//! or `0`; items labelled `0` (difficult) are left out of class `k`'s problem only.
//!
//! Class `k` uses the ChaCha stream `k` of the parameters' seed, so the result does not depend on
//! the number of threads or the order in which classes finish.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::dcd;
use super::linear::{LinearSvm, LinearSvmValidParams};
use super::simd::SvmFloat;
use super::{Loss, Solver};
use crate::error::{Error, Result};

/// `K` binary linear SVMs, one per class.
#[derive(Debug, Clone, PartialEq)]
pub struct OneVsRest<F> {
    models: Vec<LinearSvm<F>>,
}

impl<F: SvmFloat> OneVsRest<F> {
    /// Wraps already fitted per-class models (class `k` = `models[k]`); they must share one
    /// dimension.
    pub fn from_models(models: Vec<LinearSvm<F>>) -> Result<Self> {
        if let Some(first) = models.first() {
            let d = first.weights().len();
            if let Some(k) = models.iter().position(|m| m.weights().len() != d) {
                return Err(Error::Usage(format!(
                    "one-vs-rest: model {k} has {} weights, model 0 has {d}",
                    models[k].weights().len()
                )));
            }
        }
        Ok(Self { models })
    }

    /// Number of classes `K`.
    pub fn n_classes(&self) -> usize {
        self.models.len()
    }

    /// The binary model of each class.
    pub fn models(&self) -> &[LinearSvm<F>] {
        &self.models
    }

    /// Whether every class's solver met its stopping criterion.
    pub fn converged(&self) -> bool {
        self.models.iter().all(|m| m.converged())
    }

    /// Decision values, `n x K`: entry `(i, k)` is `w_k.x_i + b_k`.
    ///
    /// # Panics
    ///
    /// If `x` does not have one column per weight of the models.
    pub fn decision_function(&self, x: ArrayView2<'_, F>) -> Array2<F> {
        let k = self.models.len();
        let d = self.models.first().map_or(x.ncols(), |m| m.weights().len());
        assert_eq!(
            x.ncols(),
            d,
            "decision_function: {} columns, models have {d}",
            x.ncols()
        );
        let mut w = Array2::<F>::zeros((d, k));
        let mut b = Array1::<F>::zeros(k);
        for (j, m) in self.models.iter().enumerate() {
            w.column_mut(j).assign(m.weights());
            b[j] = m.bias();
        }
        x.dot(&w) + &b.insert_axis(Axis(0))
    }

    /// Multi-class prediction: the class with the largest decision value (the lowest index on
    /// ties).
    ///
    /// # Panics
    ///
    /// As [`decision_function`](Self::decision_function).
    pub fn predict(&self, x: ArrayView2<'_, F>) -> Vec<usize> {
        argmax_rows(&self.decision_function(x))
    }
}

/// Index of the largest entry of each row (the first one on ties; NaN never wins).
pub(crate) fn argmax_rows<F: SvmFloat>(f: &Array2<F>) -> Vec<usize> {
    f.outer_iter()
        .map(|row| {
            let mut best = 0;
            for (k, &v) in row.iter().enumerate() {
                if v > row[best] || row[best].is_nan() {
                    best = k;
                }
            }
            best
        })
        .collect()
}

/// One binary problem: the items (row indices of the data) and their labels in {-1, +1}.
pub(crate) struct Problem {
    pub rows: Vec<usize>,
    pub y: Vec<i8>,
}

/// Data shared by all the problems of a one-vs-rest fit.
pub(crate) struct Shared<'a, F> {
    pub x: &'a [F],
    pub n: usize,
    pub d: usize,
    pub sq_norms: Vec<f64>,
}

impl<'a, F: SvmFloat> Shared<'a, F> {
    /// `x` must be in standard (row-major) layout.
    pub fn new(x: &'a ArrayView2<'a, F>) -> Result<Self> {
        let xs = x.as_slice().ok_or_else(|| {
            Error::Internal("SVM data must be a contiguous row-major matrix".into())
        })?;
        Ok(Self {
            x: xs,
            n: x.nrows(),
            d: x.ncols(),
            sq_norms: dcd::row_sq_norms(xs, x.ncols()),
        })
    }
}

/// Fits every problem in parallel; problem `k` uses stream `k`.
pub(crate) fn fit_problems<F: SvmFloat>(
    p: &LinearSvmValidParams,
    data: &Shared<'_, F>,
    problems: &[Problem],
) -> Result<OneVsRest<F>> {
    let models = problems
        .par_iter()
        .enumerate()
        .map(|(k, prob)| match p.solver() {
            Solver::Dcd => {
                let sol = dcd::solve(
                    data.x,
                    data.d,
                    &data.sq_norms,
                    &prob.rows,
                    &prob.y,
                    &p.dcd_options(k as u64),
                );
                Ok(LinearSvm::from_dcd(sol))
            }
            Solver::LinfaSvm => {
                debug_assert_eq!(p.loss(), Loss::Hinge);
                let mut xs = Array2::<F>::zeros((prob.rows.len(), data.d));
                for (i, &r) in prob.rows.iter().enumerate() {
                    xs.row_mut(i).assign(&ndarray::ArrayView1::from(
                        &data.x[r * data.d..(r + 1) * data.d],
                    ));
                }
                let y: Array1<bool> = prob.y.iter().map(|&v| v > 0).collect();
                super::linear::fit_linfa_svm(p, xs.view(), y)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(OneVsRest { models })
}

/// The problems of a multi-class one-vs-rest fit on the items `rows`.
pub(crate) fn multi_class_problems(
    rows: &[usize],
    labels: &[usize],
    n_classes: usize,
) -> Vec<Problem> {
    (0..n_classes)
        .map(|k| Problem {
            rows: rows.to_vec(),
            y: rows
                .iter()
                .map(|&r| if labels[r] == k { 1 } else { -1 })
                .collect(),
        })
        .collect()
}

/// The problems of a multi-label fit on the items `rows`: class `k` leaves out items labelled 0.
pub(crate) fn multi_label_problems(rows: &[usize], labels: &ArrayView2<'_, i8>) -> Vec<Problem> {
    labels
        .axis_iter(Axis(1))
        .map(|col| {
            let rows: Vec<usize> = rows.iter().copied().filter(|&r| col[r] != 0).collect();
            let y = rows.iter().map(|&r| col[r]).collect();
            Problem { rows, y }
        })
        .collect()
}

pub(crate) fn check_multi_class(n: usize, labels: &[usize], n_classes: usize) -> Result<()> {
    if labels.len() != n {
        return Err(Error::Usage(format!(
            "one-vs-rest: {n} items but {} labels",
            labels.len()
        )));
    }
    if n == 0 || n_classes == 0 {
        return Err(Error::Usage(
            "one-vs-rest needs at least one item and one class".into(),
        ));
    }
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l >= n_classes) {
        return Err(Error::Usage(format!(
            "one-vs-rest: item {i} has class {l}, but there are {n_classes} classes"
        )));
    }
    Ok(())
}

pub(crate) fn check_multi_label(n: usize, labels: &ArrayView2<'_, i8>) -> Result<()> {
    if labels.nrows() != n {
        return Err(Error::Usage(format!(
            "multi-label: {n} items but {} label rows",
            labels.nrows()
        )));
    }
    if n == 0 || labels.ncols() == 0 {
        return Err(Error::Usage(
            "multi-label fit needs at least one item and one class".into(),
        ));
    }
    if let Some(((i, k), v)) = labels.indexed_iter().find(|(_, v)| !matches!(**v, -1..=1)) {
        return Err(Error::Usage(format!(
            "multi-label: item {i}, class {k} has label {v}, expected -1, 0 or 1"
        )));
    }
    if let Some(k) = (0..labels.ncols()).find(|&k| labels.column(k).iter().all(|&v| v == 0)) {
        return Err(Error::Usage(format!(
            "multi-label: class {k} has no training item that is not difficult"
        )));
    }
    Ok(())
}

impl LinearSvmValidParams {
    /// Multi-class one-vs-rest: `labels[i]` (below `n_classes`) is the class of row `i` of `x`
    /// (`n x d`, any layout). A class without training items gets a model that is negative
    /// everywhere. Classes are fitted in parallel.
    pub fn fit_one_vs_rest<F: SvmFloat>(
        &self,
        x: ArrayView2<'_, F>,
        labels: &[usize],
        n_classes: usize,
    ) -> Result<OneVsRest<F>> {
        check_multi_class(x.nrows(), labels, n_classes)?;
        let x = x.as_standard_layout();
        let xv = x.view();
        let data = Shared::new(&xv)?;
        let rows: Vec<usize> = (0..data.n).collect();
        fit_problems(self, &data, &multi_class_problems(&rows, labels, n_classes))
    }

    /// Multi-label (VOC): `labels` is `n x K` with `+1` (positive), `-1` (negative) or `0`
    /// (difficult: left out of that class's problem). Classes are fitted in parallel.
    pub fn fit_multi_label<F: SvmFloat>(
        &self,
        x: ArrayView2<'_, F>,
        labels: ArrayView2<'_, i8>,
    ) -> Result<OneVsRest<F>> {
        check_multi_label(x.nrows(), &labels)?;
        let x = x.as_standard_layout();
        let xv = x.view();
        let data = Shared::new(&xv)?;
        let rows: Vec<usize> = (0..data.n).collect();
        fit_problems(self, &data, &multi_label_problems(&rows, &labels))
    }
}
