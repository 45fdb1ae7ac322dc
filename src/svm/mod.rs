//! Linear SVMs on image descriptors, as in the paper's transfer experiments: binary L2-regularised
//! linear SVMs, one-vs-rest over classes (multi-class Caltech, multi-label VOC with difficult items
//! ignored), and the choice of `C` by cross-validation on the training split.
//!
//! * [`LinearSvm`] / [`LinearSvmParams`]: a linfa estimator (`ParamGuard` builder, `Fit` on a
//!   `linfa::Dataset<f32 | f64, bool>`, `Predict`, and [`LinearSvm::decision_function`]).
//!   [`Solver::Dcd`] is liblinear's dual coordinate descent (L1- or L2-loss, bias as a
//!   regularised constant feature, shrinking, seeded permutations); [`Solver::LinfaSvm`] wraps
//!   linfa-svm's SMO with a linear kernel as a cross-check on small problems.
//! * [`OneVsRest`]: `K` binary models trained in parallel (rayon), decision values `n x K`,
//!   multi-class prediction by argmax. Built by [`LinearSvmValidParams::fit_one_vs_rest`] and
//!   [`LinearSvmValidParams::fit_multi_label`].
//! * [`SelectCParams`]: score a log grid of `C` by stratified 5-fold cross-validation of the
//!   training split (or the paper's 20 % hold-out), by mean class recall (multi-class) or mAP
//!   (multi-label), ties to the lowest validation hinge loss; retrain on the whole split with the
//!   chosen `C`.
//!
//! Everything is seeded and deterministic for a seed, whatever the number of threads.

mod dcd;
mod linear;
mod ovr;
mod select;
mod simd;

pub use linear::{LinearSvm, LinearSvmParams, LinearSvmValidParams};
pub use ovr::OneVsRest;
pub use select::{
    CScore, CSelection, DEFAULT_C_GRID, DEFAULT_FOLDS, Folds, SelectCParams, SelectCValidParams,
    TIE_TOLERANCE, Validation, choose, stratified_folds, stratified_holdout,
};
pub use simd::SvmFloat;

/// The loss of the L2-regularised linear SVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// L1-loss `max(0, 1 - y f(x))` (liblinear `-s 3`, sklearn `loss="hinge"`).
    Hinge,
    /// L2-loss `max(0, 1 - y f(x))^2` (liblinear `-s 1`, sklearn `LinearSVC`'s default).
    SquaredHinge,
}

/// Which algorithm fits a binary linear SVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// liblinear's dual coordinate descent (Hsieh et al., ICML 2008): fast, for real use.
    Dcd,
    /// linfa-svm's SMO (`Svm::params().linear_kernel()`), hinge loss with an unregularised bias.
    /// It builds the dense `n x n` kernel matrix: only for small problems and cross-checks.
    LinfaSvm,
}

crate::util::choice::choice!(Loss, "loss", crate::error::Param::Loss, [
    Loss::SquaredHinge => "squared-hinge" | "l2": "L2-loss (liblinear's default).",
    Loss::Hinge => "hinge" | "l1": "L1-loss.",
]);

crate::util::choice::choice!(Solver, "solver", crate::error::Param::Solver, [
    Solver::Dcd => "dcd": "liblinear's dual coordinate descent.",
    Solver::LinfaSvm => "linfa" | "linfa-svm": "linfa-svm's SMO (small problems; a cross-check).",
]);

#[cfg(test)]
mod tests;
