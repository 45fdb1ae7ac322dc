//! Choice of the SVM cost `C`: every `C` of a log grid is scored by validation on the training
//! split, and the model is retrained on the whole training split with the chosen `C`.
//!
//! **Validation.** By default stratified k-fold cross-validation ([`Validation::KFold`], k = 5),
//! as a scikit-learn user's `GridSearchCV(LinearSVC(), cv=StratifiedKFold(5))` does: every
//! training item is validated once, by a model that did not see it. k shrinks to the size of the
//! smallest class (stratum) of at least 2 items, so that every fold validates every class; classes
//! of one item are never held out. The paper's single stratified hold-out (20 % of each class,
//! [`Validation::Holdout`]) stays as an option. Folds and hold-out are seeded. A grid of one `C`
//! does no validation at all.
//!
//! **Scores.** A fold's score is the mean class recall of the argmax prediction on its items
//! (multi-class) or the mean over classes with a positive among them of the AP of the decision
//! values (multi-label, difficult items ignored); a `C`'s score is the mean over folds. Each `C`
//! also gets the mean hinge loss `max(0, 1 - y f(x))` of its decision values on the validated
//! items (over every item and class, `y = ±1`; difficult ones ignored).
//!
//! **The rule** ([`choose`]): the best score wins. Scores within [`TIE_TOLERANCE`] of the best
//! tie, and ties go to the lowest validation hinge loss: recall and AP count only which side of
//! the boundary an item falls, so on small validation sets several `C` reach the same figure, and
//! the loss tells them apart by how well the held-out items are separated (a heavily regularised
//! model that is right by a hair has a loss near 1). Remaining ties go to the smallest `C`. The
//! per-`C` scores, their spread over folds and the losses are returned (and written to
//! `metrics.json` by the protocols).

use linfa::ParamGuard;
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::linear::LinearSvmValidParams;
use super::ovr::{self, OneVsRest, Problem, Shared};
use super::simd::SvmFloat;
use crate::error::{Error, Param, Result};
use crate::metrics::{self, ApKind};

/// The default grid of `C`: one value per decade from 10^-2 to 10^3. With L2-normalised
/// descriptors (all kernel values in [-1, 1]) the best `C` is usually inside it; widen it if the
/// chosen `C` is at an end of the grid.
pub const DEFAULT_C_GRID: [f64; 6] = [1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3];

/// The default number of folds of [`Validation::KFold`].
pub const DEFAULT_FOLDS: usize = 5;

/// Scores closer than this to the best one tie (they are means of fractions: equal scores can
/// differ by rounding).
pub const TIE_TOLERANCE: f64 = 1e-9;

/// How the `C` of the grid are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// Stratified k-fold cross-validation (the default).
    KFold,
    /// One stratified hold-out (the paper's 20 %).
    Holdout,
}

crate::util::choice::choice!(Validation, "C validation", crate::error::Param::CValidation, [
    Validation::KFold => "kfold" | "k-fold" | "cv": "Stratified k-fold cross-validation.",
    Validation::Holdout => "holdout" | "hold-out": "One stratified hold-out of each class.",
]);

/// Checked parameters of the `C` selection; obtained only from [`SelectCParams::check`]. It
/// serialises (to record a run's parameters) but does not deserialise, which would bypass `check`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SelectCValidParams {
    grid: Vec<f64>,
    validation: Validation,
    folds: usize,
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
    /// The defaults: [`DEFAULT_C_GRID`], 5-fold stratified cross-validation (hold-out fraction
    /// 0.2 if the hold-out is asked for), seed 0, VOC2007 11-point AP for multi-label scoring.
    pub fn new() -> Self {
        Self(SelectCValidParams {
            grid: DEFAULT_C_GRID.to_vec(),
            validation: Validation::KFold,
            folds: DEFAULT_FOLDS,
            validation_fraction: 0.2,
            seed: 0,
            ap_kind: ApKind::Voc07,
        })
    }

    /// The values of `C` to try. Default [`DEFAULT_C_GRID`]; must be non-empty, every value
    /// finite and > 0. Sorted ascending and de-duplicated by `check`. One value: no validation.
    pub fn grid(mut self, grid: impl Into<Vec<f64>>) -> Self {
        self.0.grid = grid.into();
        self
    }

    /// How the grid is validated. Default [`Validation::KFold`].
    pub fn validation(mut self, validation: Validation) -> Self {
        self.0.validation = validation;
        self
    }

    /// Folds of [`Validation::KFold`] at most (fewer when the smallest class has fewer training
    /// items). Default [`DEFAULT_FOLDS`] (5); must be >= 2.
    pub fn folds(mut self, folds: usize) -> Self {
        self.0.folds = folds;
        self
    }

    /// Fraction of each stratum (class) held out by [`Validation::Holdout`]. Default 0.2 (the
    /// paper's 20 %); must be in (0, 1).
    pub fn validation_fraction(mut self, fraction: f64) -> Self {
        self.0.validation_fraction = fraction;
        self
    }

    /// Seed of the folds or hold-out. Default 0; any value is valid. (The SVM's own seed is in
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
        if p.folds < 2 {
            return Err(Error::param(
                Param::Folds,
                format!("cross-validation needs at least 2 folds, got {}", p.folds),
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

/// The validation of one `C`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CScore {
    /// The cost.
    pub c: f64,
    /// Mean over folds of the mean class recall (multi-class) or mAP (multi-label) on the
    /// validated items.
    pub score: f64,
    /// Sample standard deviation of the score over folds (0 with one fold).
    pub std: f64,
    /// The score of each fold.
    pub folds: Vec<f64>,
    /// Mean hinge loss `max(0, 1 - y f(x))` of the decision values on the validated items (the
    /// tie-breaker; see [`choose`]).
    pub loss: f64,
    /// Whether every class's solver converged in every fold.
    pub converged: bool,
}

/// How the training items were validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folds {
    /// Number of validation rounds: k for k-fold, 1 for the hold-out, 0 when nothing was
    /// validated (a grid of one `C`).
    pub k: usize,
    /// Per training item, the round that validated it (`None`: only ever trained on).
    pub of_item: Vec<Option<usize>>,
}

impl Folds {
    /// The items validated in round `f`, ascending.
    pub fn validated_in(&self, f: usize) -> Vec<usize> {
        (0..self.of_item.len())
            .filter(|&i| self.of_item[i] == Some(f))
            .collect()
    }

    /// The items trained on in round `f`, ascending.
    pub fn trained_in(&self, f: usize) -> Vec<usize> {
        (0..self.of_item.len())
            .filter(|&i| self.of_item[i] != Some(f))
            .collect()
    }
}

/// The outcome of a `C` selection.
#[derive(Debug, Clone)]
pub struct CSelection<F> {
    /// The chosen `C` (see [`choose`]).
    pub c: f64,
    /// The validation of every `C` of the grid, ascending in `C`; empty for a grid of one `C`.
    pub scores: Vec<CScore>,
    /// The model retrained with the chosen `C` on the whole training split.
    pub model: OneVsRest<F>,
    /// How the training items were validated.
    pub folds: Folds,
}

/// A stratified hold-out: for every stratum (`strata[i]` is item `i`'s), shuffle its items with a
/// generator seeded by `seed` and hold out `round(fraction * size)` of them, but always leave at
/// least one for training (so a stratum of one item is never held out). Strata are processed in
/// ascending order. Returns `(train, validation)`, both ascending.
pub fn stratified_holdout(strata: &[usize], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut train = Vec::with_capacity(strata.len());
    let mut val = Vec::new();
    for mut items in members(strata) {
        items.shuffle(&mut rng);
        let n_val = ((fraction * items.len() as f64).round() as usize).min(items.len() - 1);
        val.extend_from_slice(&items[..n_val]);
        train.extend_from_slice(&items[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// Stratified k-fold: `k = min(folds, size of the smallest stratum of at least 2 items)`; each
/// such stratum's items (strata in ascending order) are shuffled with a generator seeded by
/// `seed` and dealt to the folds in turn, each stratum starting at the fold after the one where
/// the previous stratum stopped, so that fold sizes differ by at most one. Strata of one item are
/// in no fold (always trained on). `k` is 0 when no stratum has 2 items.
pub fn stratified_folds(strata: &[usize], folds: usize, seed: u64) -> Folds {
    let groups = members(strata);
    let k = groups
        .iter()
        .map(Vec::len)
        .filter(|&n| n >= 2)
        .min()
        .map_or(0, |n| n.min(folds));
    let mut of_item = vec![None; strata.len()];
    if k >= 2 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut next = 0;
        for mut items in groups.into_iter().filter(|g| g.len() >= 2) {
            items.shuffle(&mut rng);
            for i in items {
                of_item[i] = Some(next);
                next = (next + 1) % k;
            }
        }
    }
    Folds {
        k: if k >= 2 { k } else { 0 },
        of_item,
    }
}

/// The items of each non-empty stratum, ascending, strata in ascending order.
fn members(strata: &[usize]) -> Vec<Vec<usize>> {
    let n_strata = strata.iter().max().map_or(0, |m| m + 1);
    let mut members = vec![Vec::new(); n_strata];
    for (i, &s) in strata.iter().enumerate() {
        members[s].push(i);
    }
    members.retain(|m| !m.is_empty());
    members
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

/// The index of the chosen `C` among `scores` (ascending in `C`): the best score; scores within
/// [`TIE_TOLERANCE`] of it tie and go to the lowest loss; then to the smallest `C`. `None` for no
/// scores.
pub fn choose(scores: &[CScore]) -> Option<usize> {
    let best = scores
        .iter()
        .map(|s| s.score)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut pick: Option<usize> = None;
    for (i, s) in scores.iter().enumerate() {
        if s.score < best - TIE_TOLERANCE {
            continue;
        }
        match pick {
            Some(p) if scores[p].loss <= s.loss => {}
            _ => pick = Some(i),
        }
    }
    pick
}

/// Mean and sample standard deviation (0 for one value).
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, std)
}

/// The hinge losses `max(0, 1 - y f)` of decision values `f` (`n x K`) against `y` in
/// {+1, -1, 0 (ignored)}: their sum and count.
fn hinge<F: SvmFloat>(f: &Array2<F>, y: impl Fn(usize, usize) -> i8) -> (f64, usize) {
    let (mut sum, mut n) = (0.0, 0);
    for ((i, k), v) in f.indexed_iter() {
        let t = y(i, k);
        if t != 0 {
            sum += (1.0 - t as f64 * v.as_f64()).max(0.0);
            n += 1;
        }
    }
    (sum, n)
}

/// A fitted model's score on a round's validated items, with its hinge-loss sum and count.
type Scorer<'a, F> = Box<dyn Fn(&OneVsRest<F>) -> Result<(f64, (f64, usize))> + 'a>;

/// One validation round: the problems to fit, and how to score a fitted model on the round's
/// validated items.
struct Round<'a, F> {
    problems: Vec<Problem>,
    score: Scorer<'a, F>,
}

impl SelectCValidParams {
    /// The grid of `C`, ascending.
    pub fn grid(&self) -> &[f64] {
        &self.grid
    }
    /// How the grid is validated.
    pub fn validation(&self) -> Validation {
        self.validation
    }
    /// Folds of the k-fold validation at most.
    pub fn folds(&self) -> usize {
        self.folds
    }
    /// Fraction held out by the hold-out validation.
    pub fn validation_fraction(&self) -> f64 {
        self.validation_fraction
    }
    /// Seed of the folds or hold-out.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// AP used for multi-label scoring.
    pub fn ap_kind(&self) -> ApKind {
        self.ap_kind
    }

    /// The validation rounds of items in `strata`; an error naming the problem when nothing can
    /// be validated (a grid of one `C` validates nothing and never fails).
    fn folds_of(&self, strata: &[usize]) -> Result<Folds> {
        if self.grid.len() == 1 {
            return Ok(Folds {
                k: 0,
                of_item: vec![None; strata.len()],
            });
        }
        let folds = match self.validation {
            Validation::KFold => stratified_folds(strata, self.folds, self.seed),
            Validation::Holdout => {
                let (_, val) = stratified_holdout(strata, self.validation_fraction, self.seed);
                let mut of_item = vec![None; strata.len()];
                for &i in &val {
                    of_item[i] = Some(0);
                }
                Folds {
                    k: usize::from(!val.is_empty()),
                    of_item,
                }
            }
        };
        if folds.k == 0 {
            return Err(Error::Usage(
                "C selection: no class has 2 training items, so none can be held out to \
                 validate the C grid; give a grid of one C or more training items"
                    .into(),
            ));
        }
        Ok(folds)
    }

    /// Scores every `C` over the rounds, chooses one and retrains on all items.
    fn run<F: SvmFloat>(
        &self,
        svm: &LinearSvmValidParams,
        data: &Shared<'_, F>,
        rounds: &[Round<'_, F>],
        all: &[Problem],
        folds: Folds,
    ) -> Result<CSelection<F>> {
        let mut scores = Vec::new();
        if !rounds.is_empty() {
            for &c in &self.grid {
                let params = svm.with_c(c);
                let (mut per_fold, mut loss, mut n, mut converged) = (Vec::new(), 0.0, 0, true);
                for round in rounds {
                    let model = ovr::fit_problems(&params, data, &round.problems)?;
                    converged &= model.converged();
                    let (s, (l, m)) = (round.score)(&model)?;
                    per_fold.push(s);
                    loss += l;
                    n += m;
                }
                let (score, std) = mean_std(&per_fold);
                scores.push(CScore {
                    c,
                    score,
                    std,
                    folds: per_fold,
                    loss: loss / n.max(1) as f64,
                    converged,
                });
            }
        }
        let c = choose(&scores).map_or(self.grid[0], |i| scores[i].c);
        let model = ovr::fit_problems(&svm.with_c(c), data, all)?;
        Ok(CSelection {
            c,
            scores,
            model,
            folds,
        })
    }

    /// Multi-class `C` selection (Caltech): strata are the classes; a round's score is the mean
    /// class recall of the argmax prediction on its validated items (classes without validated
    /// items excluded). `svm`'s own `C` is ignored; everything else of it is used for every fit.
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
        let folds = self.folds_of(labels)?;
        let rounds = (0..folds.k)
            .map(|f| {
                let val = folds.validated_in(f);
                let x_val = xv.select(Axis(0), &val);
                let truth: Vec<usize> = val.iter().map(|&i| labels[i]).collect();
                Round {
                    problems: ovr::multi_class_problems(&folds.trained_in(f), labels, n_classes),
                    score: Box::new(move |model: &OneVsRest<F>| {
                        let f = model.decision_function(x_val.view());
                        let pred = model.predict(x_val.view());
                        let recall = metrics::mean_class_recall(&truth, &pred, n_classes)?;
                        let loss = hinge(&f, |i, k| if truth[i] == k { 1 } else { -1 });
                        Ok((recall.mean, loss))
                    }),
                }
            })
            .collect::<Vec<_>>();
        let all: Vec<usize> = (0..data.n).collect();
        let everything = ovr::multi_class_problems(&all, labels, n_classes);
        self.run(svm, &data, &rounds, &everything, folds)
    }

    /// Multi-label `C` selection (VOC): `labels` is `n x K` in {+1, -1, 0 (difficult)}; strata
    /// are each item's rarest positive class; a round's score is the mean over classes with a
    /// validated positive of the AP ([`ap_kind`](Self::ap_kind)) of the decision values on its
    /// validated items (difficult ones ignored). `svm`'s own `C` is ignored.
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
        let folds = self.folds_of(&multi_label_strata(&labels))?;
        let ap_kind = self.ap_kind;
        let mut rounds = Vec::with_capacity(folds.k);
        for f in 0..folds.k {
            let val = folds.validated_in(f);
            let val_labels = labels.select(Axis(0), &val);
            let scored: Vec<usize> = (0..labels.ncols())
                .filter(|&k| val_labels.column(k).iter().any(|&v| v == 1))
                .collect();
            if scored.is_empty() {
                return Err(Error::Usage(format!(
                    "C selection: validation round {f} has no positive item of any class"
                )));
            }
            let x_val = xv.select(Axis(0), &val);
            rounds.push(Round {
                problems: ovr::multi_label_problems(&folds.trained_in(f), &labels),
                score: Box::new(move |model: &OneVsRest<F>| {
                    let f = model.decision_function(x_val.view());
                    let mut sum = 0.0;
                    for &k in &scored {
                        let s: Vec<f64> = f.column(k).iter().map(|v| v.as_f64()).collect();
                        let l: Vec<i8> = val_labels.column(k).to_vec();
                        sum += metrics::average_precision(&s, &l, ap_kind)?.ap;
                    }
                    let loss = hinge(&f, |i, k| val_labels[(i, k)]);
                    Ok((sum / scored.len() as f64, loss))
                }),
            });
        }
        let all: Vec<usize> = (0..data.n).collect();
        let everything = ovr::multi_label_problems(&all, &labels);
        self.run(svm, &data, &rounds, &everything, folds)
    }
}
