//! Choice of the SVM cost `C` as in the paper: hold out part of the training split as validation
//! data (stratified, seeded), fit one-vs-rest SVMs for every `C` of a log grid on the rest, score
//! them on the validation items (mean class recall for multi-class, mAP for multi-label), and
//! retrain on the whole training split with the best `C`.

use linfa::ParamGuard;
use ndarray::{ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::linear::LinearSvmValidParams;
use super::ovr::{self, OneVsRest, Shared};
use super::simd::SvmFloat;
use crate::error::{Error, Param, Result};
use crate::metrics::{self, ApKind};

/// The default grid of `C`: one value per decade from 10^-2 to 10^3. With L2-normalised
/// descriptors (all kernel values in [-1, 1]) the best `C` is usually inside it; widen it if the
/// chosen `C` is at an end of the grid.
pub const DEFAULT_C_GRID: [f64; 6] = [1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3];

/// Checked parameters of the `C` selection; obtained only from [`SelectCParams::check`]. It
/// serialises (to record a run's parameters) but does not deserialise, which would bypass `check`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SelectCValidParams {
    grid: Vec<f64>,
    validation_fraction: f64,
    seed: u64,
    ap_kind: ApKind,
}

/// Unchecked parameters of the `C` selection, a builder; [`check`](ParamGuard::check) validates.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectCParams(SelectCValidParams);

impl Default for SelectCParams {
    fn default() -> Self {
        Self::new()
    }
}

impl SelectCParams {
    /// The defaults: [`DEFAULT_C_GRID`], 20 % of each stratum held out, seed 0, VOC2007 11-point
    /// AP for multi-label scoring.
    pub fn new() -> Self {
        Self(SelectCValidParams {
            grid: DEFAULT_C_GRID.to_vec(),
            validation_fraction: 0.2,
            seed: 0,
            ap_kind: ApKind::Voc07,
        })
    }

    /// The values of `C` to try. Default [`DEFAULT_C_GRID`]; must be non-empty, every value
    /// finite and > 0. Sorted ascending and de-duplicated by `check`.
    pub fn grid(mut self, grid: impl Into<Vec<f64>>) -> Self {
        self.0.grid = grid.into();
        self
    }

    /// Fraction of each stratum (class) held out for validation. Default 0.2 (the paper's
    /// 20 %); must be in (0, 1).
    pub fn validation_fraction(mut self, fraction: f64) -> Self {
        self.0.validation_fraction = fraction;
        self
    }

    /// Seed of the validation split. Default 0; any value is valid. (The SVM's own seed is in
    /// its parameters.)
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Which AP scores multi-label validation. Default [`ApKind::Voc07`] (the VOC2007 protocol
    /// of the paper); either kind is valid.
    pub fn ap_kind(mut self, kind: ApKind) -> Self {
        self.0.ap_kind = kind;
        self
    }
}

impl ParamGuard for SelectCParams {
    type Checked = SelectCValidParams;
    type Error = Error;

    fn check_ref(&self) -> Result<&SelectCValidParams> {
        let p = &self.0;
        if p.grid.is_empty() {
            return Err(Error::param(Param::CGrid, "the C grid is empty"));
        }
        if let Some(c) = p.grid.iter().find(|c| !(c.is_finite() && **c > 0.0)) {
            return Err(Error::param(
                Param::CGrid,
                format!("every C of the grid must be finite and > 0, got {c}"),
            ));
        }
        if !(p.validation_fraction > 0.0 && p.validation_fraction < 1.0) {
            return Err(Error::param(
                Param::ValidationFraction,
                format!("must be in (0, 1), got {}", p.validation_fraction),
            ));
        }
        Ok(p)
    }

    fn check(self) -> Result<SelectCValidParams> {
        self.check_ref()?;
        let mut p = self.0;
        p.grid.sort_by(f64::total_cmp);
        p.grid.dedup();
        Ok(p)
    }
}

/// The validation score of one `C`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CScore {
    /// The cost.
    pub c: f64,
    /// Mean class recall (multi-class) or mAP (multi-label) on the validation items.
    pub score: f64,
    /// Whether every class's solver converged for this `C`.
    pub converged: bool,
}

/// The outcome of a `C` selection.
#[derive(Debug, Clone)]
pub struct CSelection<F> {
    /// The chosen `C`: the best validation score, the smallest `C` on ties.
    pub c: f64,
    /// The validation score of every `C` of the grid, ascending in `C`.
    pub scores: Vec<CScore>,
    /// The model retrained with the chosen `C` on the whole training split.
    pub model: OneVsRest<F>,
    /// The items (row indices) that were held out for validation, ascending.
    pub validation_items: Vec<usize>,
}

/// A stratified hold-out: for every stratum (`strata[i]` is item `i`'s), shuffle its items with a
/// generator seeded by `seed` and hold out `round(fraction * size)` of them, but always leave at
/// least one for training (so a stratum of one item is never held out). Strata are processed in
/// ascending order. Returns `(train, validation)`, both ascending.
pub fn stratified_holdout(strata: &[usize], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n_strata = strata.iter().max().map_or(0, |m| m + 1);
    let mut members = vec![Vec::new(); n_strata];
    for (i, &s) in strata.iter().enumerate() {
        members[s].push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut train = Vec::with_capacity(strata.len());
    let mut val = Vec::new();
    for mut items in members {
        if items.is_empty() {
            continue;
        }
        items.shuffle(&mut rng);
        let n_val = ((fraction * items.len() as f64).round() as usize).min(items.len() - 1);
        val.extend_from_slice(&items[..n_val]);
        train.extend_from_slice(&items[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// Multi-label strata: each item's rarest positive class (fewest positives over all items, the
/// lowest index on ties), or `K` for items without a positive label.
fn multi_label_strata(labels: &ArrayView2<'_, i8>) -> Vec<usize> {
    let k = labels.ncols();
    let counts: Vec<usize> = labels
        .axis_iter(Axis(1))
        .map(|c| c.iter().filter(|&&v| v == 1).count())
        .collect();
    labels
        .outer_iter()
        .map(|row| {
            (0..k)
                .filter(|&j| row[j] == 1)
                .min_by_key(|&j| (counts[j], j))
                .unwrap_or(k)
        })
        .collect()
}

/// Index of the first maximal score.
fn best(scores: &[CScore]) -> usize {
    let mut b = 0;
    for (i, s) in scores.iter().enumerate() {
        if s.score > scores[b].score {
            b = i;
        }
    }
    b
}

impl SelectCValidParams {
    /// The grid of `C`, ascending.
    pub fn grid(&self) -> &[f64] {
        &self.grid
    }
    /// Fraction held out for validation.
    pub fn validation_fraction(&self) -> f64 {
        self.validation_fraction
    }
    /// Seed of the validation split.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// AP used for multi-label scoring.
    pub fn ap_kind(&self) -> ApKind {
        self.ap_kind
    }

    /// Multi-class `C` selection (Caltech): strata are the classes, the score is the mean class
    /// recall of the argmax prediction on the validation items (classes without validation items
    /// excluded). `svm`'s own `C` is ignored; everything else of it is used for every fit.
    pub fn select_one_vs_rest<F: SvmFloat>(
        &self,
        svm: &LinearSvmValidParams,
        x: ArrayView2<'_, F>,
        labels: &[usize],
        n_classes: usize,
    ) -> Result<CSelection<F>> {
        ovr::check_multi_class(x.nrows(), labels, n_classes)?;
        let x = x.as_standard_layout();
        let xv = x.view();
        let data = Shared::new(&xv)?;
        let (train, val) = stratified_holdout(labels, self.validation_fraction, self.seed);
        if val.is_empty() {
            return Err(Error::Usage(
                "C selection: no class has enough training items to hold any out".into(),
            ));
        }
        let problems = ovr::multi_class_problems(&train, labels, n_classes);
        let x_val = xv.select(Axis(0), &val);
        let truth: Vec<usize> = val.iter().map(|&i| labels[i]).collect();
        let mut scores = Vec::with_capacity(self.grid.len());
        for &c in &self.grid {
            let model = ovr::fit_problems(&svm.with_c(c), &data, &problems)?;
            let pred = model.predict(x_val.view());
            let recall = metrics::mean_class_recall(&truth, &pred, n_classes)?;
            scores.push(CScore {
                c,
                score: recall.mean,
                converged: model.converged(),
            });
        }
        let c = scores[best(&scores)].c;
        let all: Vec<usize> = (0..data.n).collect();
        let model = ovr::fit_problems(
            &svm.with_c(c),
            &data,
            &ovr::multi_class_problems(&all, labels, n_classes),
        )?;
        Ok(CSelection {
            c,
            scores,
            model,
            validation_items: val,
        })
    }

    /// Multi-label `C` selection (VOC): `labels` is `n x K` in {+1, -1, 0 (difficult)}; strata
    /// are each item's rarest positive class; the score is the mean over classes with a
    /// validation positive of the AP ([`ap_kind`](Self::ap_kind)) of the decision values on the
    /// validation items (difficult ones ignored). `svm`'s own `C` is ignored.
    pub fn select_multi_label<F: SvmFloat>(
        &self,
        svm: &LinearSvmValidParams,
        x: ArrayView2<'_, F>,
        labels: ArrayView2<'_, i8>,
    ) -> Result<CSelection<F>> {
        ovr::check_multi_label(x.nrows(), &labels)?;
        let x = x.as_standard_layout();
        let xv = x.view();
        let data = Shared::new(&xv)?;
        let strata = multi_label_strata(&labels);
        let (train, val) = stratified_holdout(&strata, self.validation_fraction, self.seed);
        let val_labels = labels.select(Axis(0), &val);
        let scored: Vec<usize> = (0..labels.ncols())
            .filter(|&k| val_labels.column(k).iter().any(|&v| v == 1))
            .collect();
        if scored.is_empty() {
            return Err(Error::Usage(
                "C selection: no class has a positive validation item".into(),
            ));
        }
        let problems = ovr::multi_label_problems(&train, &labels);
        let x_val = xv.select(Axis(0), &val);
        let mut scores = Vec::with_capacity(self.grid.len());
        for &c in &self.grid {
            let model = ovr::fit_problems(&svm.with_c(c), &data, &problems)?;
            let f = model.decision_function(x_val.view());
            let mut sum = 0.0;
            for &k in &scored {
                let s: Vec<f64> = f.column(k).iter().map(|v| v.as_f64()).collect();
                let l: Vec<i8> = val_labels.column(k).to_vec();
                sum += metrics::average_precision(&s, &l, self.ap_kind)?.ap;
            }
            scores.push(CScore {
                c,
                score: sum / scored.len() as f64,
                converged: model.converged(),
            });
        }
        let c = scores[best(&scores)].c;
        let all: Vec<usize> = (0..data.n).collect();
        let model = ovr::fit_problems(
            &svm.with_c(c),
            &data,
            &ovr::multi_label_problems(&all, &labels),
        )?;
        Ok(CSelection {
            c,
            scores,
            model,
            validation_items: val,
        })
    }
}
