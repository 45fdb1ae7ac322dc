//! The binary linear SVM as a linfa estimator: [`LinearSvmParams`] (unchecked builder) ->
//! [`LinearSvmValidParams`] (only via `check()`) -> `fit` -> [`LinearSvm`] (weights and bias),
//! with `decision_function` and linfa's `Predict`.

use linfa::dataset::AsSingleTargets;
use linfa::traits::{Fit, PredictInplace};
use linfa::{DatasetBase, ParamGuard};
use ndarray::{Array1, ArrayBase, ArrayView2, Data, Ix1, Ix2};

use super::dcd::{self, DcdOptions};
use super::simd::SvmFloat;
use super::{Loss, Solver};
use crate::error::{Error, Param, Result};

/// Checked hyperparameters of the linear SVM; obtained only from [`LinearSvmParams::check`] (or
/// implicitly by `fit` on the unchecked builder). See [`LinearSvmParams`] for every field's
/// meaning, default and range.
///
/// It serialises (to record a run's parameters) but deliberately does not deserialise: that would
/// be a way around `check()`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LinearSvmValidParams {
    c: f64,
    loss: Loss,
    eps: f64,
    max_iter: usize,
    shrinking: bool,
    bias: f64,
    seed: u64,
    solver: Solver,
}

impl LinearSvmValidParams {
    /// Misclassification cost `C`.
    pub fn c(&self) -> f64 {
        self.c
    }
    /// Loss function.
    pub fn loss(&self) -> Loss {
        self.loss
    }
    /// Stopping tolerance.
    pub fn eps(&self) -> f64 {
        self.eps
    }
    /// Maximum number of outer iterations.
    pub fn max_iter(&self) -> usize {
        self.max_iter
    }
    /// Whether the solver shrinks the active set.
    pub fn shrinking(&self) -> bool {
        self.shrinking
    }
    /// Value `B` of the constant bias feature (0: no bias).
    pub fn bias(&self) -> f64 {
        self.bias
    }
    /// Seed of the coordinate permutations.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Which solver fits the model.
    pub fn solver(&self) -> Solver {
        self.solver
    }
    /// The same parameters with another `C` (used by C selection; `c` must be finite and > 0).
    pub(crate) fn with_c(mut self, c: f64) -> Self {
        debug_assert!(c.is_finite() && c > 0.0);
        self.c = c;
        self
    }

    pub(crate) fn dcd_options(&self, stream: u64) -> DcdOptions {
        DcdOptions {
            c: self.c,
            loss: self.loss,
            eps: self.eps,
            max_iter: self.max_iter,
            shrinking: self.shrinking,
            bias: self.bias,
            seed: self.seed,
            stream,
        }
    }
}

/// Unchecked hyperparameters of the linear SVM, a builder. Call [`check`](ParamGuard::check) (or
/// `fit`, which checks) to validate them.
///
/// ```
/// use linfa::prelude::*;
/// use ndarray::array;
/// use vggfeat::svm::{LinearSvmParams, Loss};
///
/// let x = array![[1.0f32, 0.0], [0.9, 0.2], [0.0, 1.0], [0.1, 0.8]];
/// let y = array![true, true, false, false];
/// let model = LinearSvmParams::new()
///     .c(10.0)
///     .loss(Loss::Hinge)
///     .fit(&Dataset::new(x.clone(), y))?;
/// let pred: ndarray::Array1<bool> = model.predict(&x);
/// assert_eq!(pred.to_vec(), vec![true, true, false, false]);
/// # Ok::<(), vggfeat::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSvmParams(LinearSvmValidParams);

impl Default for LinearSvmParams {
    fn default() -> Self {
        Self::new()
    }
}

impl LinearSvmParams {
    /// The defaults: `C = 1`, squared hinge loss, `eps = 0.1`, `max_iter = 1000`, shrinking on,
    /// bias feature `B = 1`, seed 0, the DCD solver (liblinear's `-s 1` defaults).
    pub fn new() -> Self {
        Self(LinearSvmValidParams {
            c: 1.0,
            loss: Loss::SquaredHinge,
            eps: 0.1,
            max_iter: 1000,
            shrinking: true,
            bias: 1.0,
            seed: 0,
            solver: Solver::Dcd,
        })
    }

    /// Misclassification cost `C`, weighing the loss against `1/2 |w|^2`. Default 1; must be
    /// finite and > 0.
    pub fn c(mut self, c: f64) -> Self {
        self.0.c = c;
        self
    }

    /// Loss: [`Loss::SquaredHinge`] (L2-loss, default; liblinear `-s 1`, sklearn `LinearSVC`) or
    /// [`Loss::Hinge`] (L1-loss, liblinear `-s 3`). [`Solver::LinfaSvm`] needs `Hinge`.
    pub fn loss(mut self, loss: Loss) -> Self {
        self.0.loss = loss;
        self
    }

    /// Stopping tolerance: DCD stops when the spread of projected gradients `max PG - min PG` is
    /// at most `eps` (liblinear's `-e`); for [`Solver::LinfaSvm`] it is SMO's maximal-violating
    /// pair tolerance. Default 0.1 (liblinear's default for dual solvers); must be finite and > 0.
    pub fn eps(mut self, eps: f64) -> Self {
        self.0.eps = eps;
        self
    }

    /// Maximum number of outer iterations (passes over the data) of DCD; the fit is marked
    /// [not converged](LinearSvm::converged) when reached. Default 1000 (liblinear's); must be
    /// >= 1. Ignored by [`Solver::LinfaSvm`].
    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.0.max_iter = max_iter;
        self
    }

    /// Shrinking of the active set (liblinear always shrinks; turning it off gives the plain
    /// algorithm of Hsieh et al.). Default `true`; any value is valid. Passed on to SMO for
    /// [`Solver::LinfaSvm`].
    pub fn shrinking(mut self, shrinking: bool) -> Self {
        self.0.shrinking = shrinking;
        self
    }

    /// Value `B` of the constant feature appended to every item to fit a bias, as liblinear's
    /// `-B` and sklearn's `intercept_scaling`: the bias is `B * w_B` and `w_B` is regularised like
    /// any weight, so a larger `B` regularises the bias less. `0` fits no bias (the hyperplane
    /// passes through the origin). Default 1; must be finite and >= 0. [`Solver::LinfaSvm`]
    /// always fits an unregularised bias and needs `B > 0` (its value is then unused).
    pub fn bias(mut self, bias: f64) -> Self {
        self.0.bias = bias;
        self
    }

    /// Seed of the random coordinate order of DCD; a fit is deterministic for a seed. Default 0;
    /// any value is valid. Ignored by [`Solver::LinfaSvm`] (deterministic).
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Solver: [`Solver::Dcd`] (default, fast, for real use) or [`Solver::LinfaSvm`] (linfa-svm's
    /// SMO with a dense linear kernel matrix, quadratic in the number of items: a cross-check for
    /// small problems).
    pub fn solver(mut self, solver: Solver) -> Self {
        self.0.solver = solver;
        self
    }
}

impl ParamGuard for LinearSvmParams {
    type Checked = LinearSvmValidParams;
    type Error = Error;

    fn check_ref(&self) -> Result<&LinearSvmValidParams> {
        let p = &self.0;
        if !(p.c.is_finite() && p.c > 0.0) {
            return Err(Error::param(
                Param::C,
                format!("must be finite and > 0, got {}", p.c),
            ));
        }
        if !(p.eps.is_finite() && p.eps > 0.0) {
            return Err(Error::param(
                Param::Eps,
                format!("must be finite and > 0, got {}", p.eps),
            ));
        }
        if p.max_iter == 0 {
            return Err(Error::param(Param::MaxIter, "must be >= 1"));
        }
        if !(p.bias.is_finite() && p.bias >= 0.0) {
            return Err(Error::param(
                Param::Bias,
                format!("the bias feature B must be finite and >= 0, got {}", p.bias),
            ));
        }
        if p.solver == Solver::LinfaSvm {
            if p.loss != Loss::Hinge {
                return Err(Error::param(
                    Param::Loss,
                    "the linfa-svm solver solves the hinge-loss (L1) dual only: set the loss to \
                     hinge",
                ));
            }
            if p.bias == 0.0 {
                return Err(Error::param(
                    Param::Bias,
                    "the linfa-svm solver always fits a bias: set B > 0",
                ));
            }
        }
        Ok(p)
    }

    fn check(self) -> Result<LinearSvmValidParams> {
        self.check_ref()?;
        Ok(self.0)
    }
}

/// A fitted binary linear SVM: `f(x) = w.x + b`, positive class where `f(x) >= 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearSvm<F> {
    weights: Array1<F>,
    bias: F,
    iterations: usize,
    converged: bool,
    n_support: usize,
}

impl<F: SvmFloat> LinearSvm<F> {
    /// The default hyperparameters, to be adjusted and fitted (the same as
    /// [`LinearSvmParams::new`], which needs no type annotation).
    pub fn params() -> LinearSvmParams {
        LinearSvmParams::new()
    }

    /// A model from its weights and bias (e.g. loaded from disk).
    pub fn from_parts(weights: Array1<F>, bias: F) -> Self {
        Self {
            weights,
            bias,
            iterations: 0,
            converged: true,
            n_support: 0,
        }
    }

    /// The weight vector `w`, one per feature.
    pub fn weights(&self) -> &Array1<F> {
        &self.weights
    }

    /// The bias `b` (for DCD, `B` times the weight of the bias feature).
    pub fn bias(&self) -> F {
        self.bias
    }

    /// Outer iterations the solver ran (SMO iterations are not exposed by linfa-svm: 0).
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Whether the solver met its stopping criterion (false: stopped at `max_iter`).
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// Number of support vectors (training items with a non-zero dual variable); 0 for a model
    /// built with [`from_parts`](Self::from_parts).
    pub fn n_support(&self) -> usize {
        self.n_support
    }

    /// Real-valued decision values `w.x + b` of the rows of `x` (`n x d`, `d` = number of weights).
    ///
    /// # Panics
    ///
    /// If `x` does not have one column per weight (as linfa's `Predict`, which cannot fail).
    pub fn decision_function<D: Data<Elem = F>>(&self, x: &ArrayBase<D, Ix2>) -> Array1<F> {
        assert_eq!(
            x.ncols(),
            self.weights.len(),
            "decision_function: {} columns but {} weights",
            x.ncols(),
            self.weights.len()
        );
        x.dot(&self.weights) + self.bias
    }

    /// Decision value of one item.
    ///
    /// # Panics
    ///
    /// If `x` does not have one entry per weight.
    pub fn decision_value<D: Data<Elem = F>>(&self, x: &ArrayBase<D, Ix1>) -> F {
        x.dot(&self.weights) + self.bias
    }

    pub(crate) fn from_dcd(sol: dcd::DcdSolution<F>) -> Self {
        Self {
            weights: Array1::from(sol.w),
            bias: F::of_f64(sol.bias),
            iterations: sol.iterations,
            converged: sol.converged,
            n_support: sol.alpha.iter().filter(|&&a| a > 0.0).count(),
        }
    }
}

/// Fits on a linfa dataset whose targets are `bool` (true = positive class). The dataset's sample
/// weights, if any, are ignored (as in linfa-svm).
impl<F, D, T> Fit<ArrayBase<D, Ix2>, T, Error> for LinearSvmValidParams
where
    F: SvmFloat,
    D: Data<Elem = F>,
    T: AsSingleTargets<Elem = bool>,
{
    type Object = LinearSvm<F>;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<LinearSvm<F>> {
        let x = dataset.records();
        let y = dataset.as_single_targets();
        if x.nrows() != y.len() {
            return Err(Error::Usage(format!(
                "SVM fit: {} items but {} targets",
                x.nrows(),
                y.len()
            )));
        }
        if x.nrows() == 0 {
            return Err(Error::Usage("SVM fit: no items".into()));
        }
        match self.solver {
            Solver::Dcd => {
                let x = x.as_standard_layout();
                let xs = x.as_slice().expect("standard layout is contiguous");
                let d = x.ncols();
                let norms = dcd::row_sq_norms(xs, d);
                let rows: Vec<usize> = (0..x.nrows()).collect();
                let y: Vec<i8> = y.iter().map(|&t| if t { 1 } else { -1 }).collect();
                let sol = dcd::solve(xs, d, &norms, &rows, &y, &self.dcd_options(0));
                Ok(LinearSvm::from_dcd(sol))
            }
            Solver::LinfaSvm => fit_linfa_svm(self, x.view(), y.to_owned()),
        }
    }
}

/// linfa-svm's SMO with a linear kernel, turned into weights and bias: `w_j` is the decision
/// function's weighted sum at the unit vector `e_j`, `b = -rho`.
pub(crate) fn fit_linfa_svm<F: SvmFloat>(
    p: &LinearSvmValidParams,
    x: ArrayView2<'_, F>,
    y: Array1<bool>,
) -> Result<LinearSvm<F>> {
    let c = F::of_f64(p.c);
    let params = linfa_svm::Svm::<F, bool>::params()
        .pos_neg_weights(c, c)
        .eps(F::of_f64(p.eps))
        .shrinking(p.shrinking)
        .linear_kernel();
    let ds = DatasetBase::new(x, y.view());
    let svm = params
        .fit(&ds)
        .map_err(|e| Error::Solver(format!("linfa-svm: {e}")))?;
    let d = x.ncols();
    let mut e = Array1::<F>::zeros(d);
    let mut w = Array1::<F>::zeros(d);
    for j in 0..d {
        e[j] = F::one();
        w[j] = svm.weighted_sum(&e);
        e[j] = F::zero();
    }
    Ok(LinearSvm {
        weights: w,
        bias: -svm.rho,
        iterations: 0,
        converged: true,
        n_support: svm.nsupport(),
    })
}

/// Predicts `true` (positive class) where the decision value is >= 0.
impl<F: SvmFloat, D: Data<Elem = F>> PredictInplace<ArrayBase<D, Ix2>, Array1<bool>>
    for LinearSvm<F>
{
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<bool>) {
        assert_eq!(
            x.nrows(),
            y.len(),
            "The number of data points must match the number of output targets."
        );
        let f = self.decision_function(x);
        for (t, v) in y.iter_mut().zip(f) {
            *t = v >= F::zero();
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<bool> {
        Array1::from_elem(x.nrows(), false)
    }
}
