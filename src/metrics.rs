//! Evaluation measures of the paper's transfer experiments, as pure functions: PASCAL VOC average
//! precision (11-point VOC2007 and area-under-curve VOC2010+ variants) with its precision/recall
//! curve, mean average precision, Caltech-101/256 mean class recall, ImageNet-style top-k error,
//! and mean ± sample standard deviation over random splits.
//!
//! Nothing here knows about SVMs or linfa: inputs are scores and labels, outputs are numbers.
//!
//! # Ranking and ties
//!
//! Average precision ranks the items by descending score with a *stable* sort, so items with equal
//! scores keep their input order. This is what the VOC devkit does: `VOCevalcls.m` calls MATLAB's
//! `sort(-out)`, which is stable. The AP of tied items therefore depends on their order in the
//! input; shuffle beforehand if that is not wanted.
//!
//! # Difficult items
//!
//! Labels are `+1` (positive), `-1` (negative) and `0` (difficult). Difficult items are removed
//! before ranking. The devkit keeps them in the ranking but counts them neither as true nor as
//! false positives, which gives the same precision/recall points (a difficult item repeats the
//! previous point), so the two are equivalent.

use ndarray::ArrayView2;

use crate::error::{Error, Result};

/// Which definition of average precision to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApKind {
    /// VOC2007 11-point interpolated AP: the mean over thresholds t in {0, 0.1, ..., 1} of the
    /// maximum precision at recall >= t (0 when no point reaches t). The thresholds are those of
    /// MATLAB's `0:0.1:1`, as in the VOC2007 devkit (see [`VOC07_THRESHOLDS`]).
    Voc07,
    /// VOC2010+ AP: the area under the precision/recall curve after making precision
    /// monotonically decreasing from the right, summed at the points where recall changes.
    Area,
}

crate::util::choice::choice!(ApKind, "AP kind", crate::error::Param::Ap, [
    ApKind::Voc07 => "voc07" | "11point": "VOC 2007's 11-point interpolated AP.",
    ApKind::Area => "area": "The area under the interpolated curve (VOC 2010+).",
]);

/// The recall thresholds of the VOC2007 11-point AP, exactly as MATLAB's colon operator builds
/// `0:0.1:1` in the devkit: the first half is `k * 0.1` and the second half `1 - (10 - k) * 0.1`.
/// They equal `k / 10` except for the fourth, `3 * 0.1 = 0.30000000000000004`, so a recall of
/// exactly 3/10 does not reach the 0.3 threshold (as in the devkit, and in Python ports that use
/// `np.arange(0, 1.1, 0.1)`).
pub const VOC07_THRESHOLDS: [f64; 11] = [
    0.0,
    0.1,
    0.2,
    3.0 * 0.1,
    4.0 * 0.1,
    5.0 * 0.1,
    1.0 - 4.0 * 0.1,
    1.0 - 3.0 * 0.1,
    1.0 - 2.0 * 0.1,
    1.0 - 0.1,
    1.0,
];

/// One point of a precision/recall curve: the state after the item of rank `rank` (1-based,
/// difficult items removed) has been retrieved.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PrPoint {
    /// Fraction of the positives retrieved so far.
    pub recall: f64,
    /// Fraction of the retrieved items that are positive.
    pub precision: f64,
    /// Score of the item retrieved at this point (the threshold).
    pub score: f64,
}

/// Average precision of one class, with its raw (uninterpolated) precision/recall curve.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApResult {
    /// The average precision, in [0, 1].
    pub ap: f64,
    /// Which definition `ap` follows.
    pub kind: ApKind,
    /// One point per ranked (non-difficult) item, in rank order.
    pub curve: Vec<PrPoint>,
    /// Number of positive items.
    pub n_pos: usize,
    /// Number of negative items.
    pub n_neg: usize,
    /// Number of difficult items removed before ranking.
    pub n_difficult: usize,
}

/// Average precision of `scores` (higher = more confident positive) against `labels` (`+1`
/// positive, `-1` negative, `0` difficult).
///
/// Difficult items are removed, the rest ranked by descending score with a stable sort (ties keep
/// input order; see the [module docs](self)). Errors if the lengths differ, a label is not -1, 0
/// or 1, a score is NaN, or there is no positive item (AP is undefined).
pub fn average_precision(scores: &[f64], labels: &[i8], kind: ApKind) -> Result<ApResult> {
    if scores.len() != labels.len() {
        return Err(Error::Usage(format!(
            "average precision: {} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    let mut order = Vec::with_capacity(scores.len());
    let (mut n_pos, mut n_neg, mut n_difficult) = (0usize, 0usize, 0usize);
    for (i, (&s, &l)) in scores.iter().zip(labels).enumerate() {
        if s.is_nan() {
            return Err(Error::Usage(format!(
                "average precision: score of item {i} is NaN"
            )));
        }
        match l {
            1 => n_pos += 1,
            -1 => n_neg += 1,
            0 => {
                n_difficult += 1;
                continue;
            }
            _ => {
                return Err(Error::Usage(format!(
                    "average precision: label of item {i} is {l}, expected -1, 0 or 1"
                )));
            }
        }
        order.push(i);
    }
    if n_pos == 0 {
        return Err(Error::Usage(
            "average precision is undefined without positive items".into(),
        ));
    }
    // `sort_by` is stable: equal scores keep their input order.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));

    let mut curve = Vec::with_capacity(order.len());
    let mut tp = 0usize;
    for (rank, &i) in order.iter().enumerate() {
        if labels[i] == 1 {
            tp += 1;
        }
        curve.push(PrPoint {
            recall: tp as f64 / n_pos as f64,
            precision: tp as f64 / (rank + 1) as f64,
            score: scores[i],
        });
    }
    let ap = match kind {
        ApKind::Voc07 => ap_voc07(&curve),
        ApKind::Area => ap_area(&curve),
    };
    Ok(ApResult {
        ap,
        kind,
        curve,
        n_pos,
        n_neg,
        n_difficult,
    })
}

/// VOC2007: `ap = sum_t max(prec(rec >= t)) / 11`, with an empty max counting as 0.
fn ap_voc07(curve: &[PrPoint]) -> f64 {
    VOC07_THRESHOLDS
        .iter()
        .map(|&t| {
            curve
                .iter()
                .filter(|p| p.recall >= t)
                .map(|p| p.precision)
                .fold(0.0, f64::max)
        })
        .sum::<f64>()
        / 11.0
}

/// VOC2010+: `mrec = [0; rec; 1]`, `mpre = [0; prec; 0]`, `mpre(i) = max(mpre(i), mpre(i+1))` from
/// the right, then `sum((mrec(i) - mrec(i-1)) * mpre(i))` over the `i` where recall changes.
fn ap_area(curve: &[PrPoint]) -> f64 {
    let mut mrec = Vec::with_capacity(curve.len() + 2);
    let mut mpre = Vec::with_capacity(curve.len() + 2);
    mrec.push(0.0);
    mpre.push(0.0);
    for p in curve {
        mrec.push(p.recall);
        mpre.push(p.precision);
    }
    mrec.push(1.0);
    mpre.push(0.0);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    (1..mrec.len())
        .filter(|&i| mrec[i] != mrec[i - 1])
        .map(|i| (mrec[i] - mrec[i - 1]) * mpre[i])
        .sum()
}

/// Per-class average precisions and their mean.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MapResult {
    /// One result per class, in input order.
    pub per_class: Vec<ApResult>,
    /// Mean of the per-class APs.
    pub map: f64,
}

/// Mean average precision over classes: `classes[k] = (scores, labels)` of class `k`, each as in
/// [`average_precision`]. Every class must have a positive item; errors name the class index.
pub fn mean_average_precision(classes: &[(&[f64], &[i8])], kind: ApKind) -> Result<MapResult> {
    if classes.is_empty() {
        return Err(Error::Usage(
            "mean average precision of zero classes".into(),
        ));
    }
    let per_class = classes
        .iter()
        .enumerate()
        .map(|(k, (s, l))| {
            average_precision(s, l, kind).map_err(|e| match e {
                Error::Usage(m) => Error::Usage(format!("class {k}: {m}")),
                e => e,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let map = per_class.iter().map(|r| r.ap).sum::<f64>() / per_class.len() as f64;
    Ok(MapResult { per_class, map })
}

/// Mean average precision from an `n x K` matrix of scores (e.g. one-vs-rest decision values)
/// and an `n x K` matrix of labels in {+1, -1, 0}: column `k` is class `k`, as in
/// [`mean_average_precision`].
pub fn mean_average_precision_columns(
    scores: ArrayView2<'_, f64>,
    labels: ArrayView2<'_, i8>,
    kind: ApKind,
) -> Result<MapResult> {
    if scores.dim() != labels.dim() {
        return Err(Error::Usage(format!(
            "mean average precision: scores are {:?} but labels {:?}",
            scores.dim(),
            labels.dim()
        )));
    }
    let cols: Vec<(Vec<f64>, Vec<i8>)> = (0..scores.ncols())
        .map(|k| (scores.column(k).to_vec(), labels.column(k).to_vec()))
        .collect();
    let refs: Vec<(&[f64], &[i8])> = cols.iter().map(|(s, l)| (&s[..], &l[..])).collect();
    mean_average_precision(&refs, kind)
}

/// Per-class recall (the fraction of a class's test items predicted as that class) and the mean
/// over classes, the Caltech-101/256 measure.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassRecall {
    /// Recall of each class; `None` for a class without test items.
    pub per_class: Vec<Option<f64>>,
    /// Number of test items of each class.
    pub counts: Vec<usize>,
    /// Mean recall over the classes that have test items.
    pub mean: f64,
    /// Overall accuracy (fraction of all items correctly predicted), for reference.
    pub accuracy: f64,
}

/// Mean class recall of `predicted` against `truth` (class indices below `n_classes`).
///
/// Classes with no test item are excluded from the mean (their recall is undefined) and reported
/// as `None`: a class that is never tested neither helps nor hurts. Errors on length mismatch, an
/// index `>= n_classes`, or no items at all.
pub fn mean_class_recall(
    truth: &[usize],
    predicted: &[usize],
    n_classes: usize,
) -> Result<ClassRecall> {
    if truth.len() != predicted.len() {
        return Err(Error::Usage(format!(
            "mean class recall: {} true labels but {} predictions",
            truth.len(),
            predicted.len()
        )));
    }
    if truth.is_empty() {
        return Err(Error::Usage("mean class recall of zero items".into()));
    }
    let mut counts = vec![0usize; n_classes];
    let mut correct = vec![0usize; n_classes];
    for (i, (&t, &p)) in truth.iter().zip(predicted).enumerate() {
        if t >= n_classes || p >= n_classes {
            return Err(Error::Usage(format!(
                "mean class recall: item {i} has class {t} / prediction {p}, \
                 but there are {n_classes} classes"
            )));
        }
        counts[t] += 1;
        if t == p {
            correct[t] += 1;
        }
    }
    let per_class: Vec<Option<f64>> = counts
        .iter()
        .zip(&correct)
        .map(|(&n, &c)| (n > 0).then(|| c as f64 / n as f64))
        .collect();
    let present: Vec<f64> = per_class.iter().flatten().copied().collect();
    let mean = present.iter().sum::<f64>() / present.len() as f64;
    let accuracy = correct.iter().sum::<usize>() as f64 / truth.len() as f64;
    Ok(ClassRecall {
        per_class,
        counts,
        mean,
        accuracy,
    })
}

/// Mean and sample standard deviation of a measure over repeated random splits.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeanStd {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divisor `n - 1`); `None` for a single value.
    pub std: Option<f64>,
    /// Number of values.
    pub n: usize,
}

impl std::fmt::Display for MeanStd {
    /// `mean ± std`, or just `mean` for one value; formatting options apply to both numbers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = f.precision().unwrap_or(4);
        match self.std {
            Some(s) => write!(f, "{:.p$} ± {:.p$}", self.mean, s),
            None => write!(f, "{:.p$}", self.mean),
        }
    }
}

/// Mean ± sample standard deviation of `values` (e.g. mean class recall of each split). Errors on
/// an empty slice or a non-finite value.
pub fn mean_std(values: &[f64]) -> Result<MeanStd> {
    if values.is_empty() {
        return Err(Error::Usage("mean of zero values".into()));
    }
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::Usage(format!("mean of a non-finite value {v}")));
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = (n > 1)
        .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    Ok(MeanStd { mean, std, n })
}

/// The classes ordered by descending score; ties go to the lower index first (so a classifier
/// that scores every class alike is not rewarded: the true class ranks by its index).
pub fn ranking(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// How many classes [`ranking`] puts before `label`: 0 when the label is the top class.
pub fn label_rank(scores: &[f32], label: usize) -> usize {
    let p = scores[label];
    scores
        .iter()
        .enumerate()
        .filter(|&(c, &v)| v > p || (v == p && c < label))
        .count()
}

/// Top-k error: the fraction of items whose label has rank k or worse ([`label_rank`] >= k);
/// `ranks` holds one label rank per item. Errors on no items or k = 0.
pub fn top_k_error(ranks: &[usize], k: usize) -> Result<f64> {
    if ranks.is_empty() || k == 0 {
        return Err(Error::Usage(format!(
            "top-{k} error of {} items",
            ranks.len()
        )));
    }
    Ok(ranks.iter().filter(|&&r| r >= k).count() as f64 / ranks.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_top_k_errors_by_hand() {
        let s = [0.1, 0.5, 0.5, 0.2];
        assert_eq!(ranking(&s), [1, 2, 3, 0]);
        assert_eq!(label_rank(&s, 1), 0);
        assert_eq!(label_rank(&s, 2), 1); // tied with 1, which has the lower index
        assert_eq!(label_rank(&s, 0), 3);
        let ranks = [0, 1, 3, 7];
        assert_eq!(top_k_error(&ranks, 1).unwrap(), 0.75);
        assert_eq!(top_k_error(&ranks, 5).unwrap(), 0.25);
        assert!(top_k_error(&[], 1).is_err());
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn ap_with_difficult_items() {
        // Items (score, label):     a(.9,+1) b(.8,-1) c(.7,0) d(.6,+1) e(.5,-1) f(.4,+1)
        // c is difficult and removed -> ranking a b d e f, 3 positives.
        // rank  item  tp fp  recall  precision
        //  1     a    1  0   1/3     1
        //  2     b    1  1   1/3     1/2
        //  3     d    2  1   2/3     2/3
        //  4     e    2  2   2/3     1/2
        //  5     f    3  2   1       3/5
        let scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let labels = [1, -1, 0, 1, -1, 1];
        let r = average_precision(&scores, &labels, ApKind::Area).unwrap();
        assert_eq!((r.n_pos, r.n_neg, r.n_difficult), (3, 2, 1));
        assert_eq!(r.curve.len(), 5);
        let rp: Vec<(f64, f64)> = r.curve.iter().map(|p| (p.recall, p.precision)).collect();
        let want = [
            (1. / 3., 1.),
            (1. / 3., 0.5),
            (2. / 3., 2. / 3.),
            (2. / 3., 0.5),
            (1., 0.6),
        ];
        for (g, w) in rp.iter().zip(&want) {
            close(g.0, w.0);
            close(g.1, w.1);
        }
        // Area: precision made monotone from the right: at recall 1/3 -> 1, 2/3 -> 2/3, 1 -> 3/5.
        // AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5 = (15 + 10 + 9) / 45 = 34/45.
        close(r.ap, 34.0 / 45.0);
        // Voc07: thresholds 0, .1, .2, .3 -> max prec at rec >= t = 1 (4 thresholds);
        // .4, .5, .6 -> 2/3 (3 thresholds); .7, .8, .9, 1 -> 3/5 (4 thresholds).
        // AP = (4 * 1 + 3 * 2/3 + 4 * 3/5) / 11 = (4 + 2 + 2.4) / 11 = 8.4 / 11.
        let r07 = average_precision(&scores, &labels, ApKind::Voc07).unwrap();
        close(r07.ap, 8.4 / 11.0);
        // Removing the difficult item by hand gives the same result.
        let r2 = average_precision(
            &[0.9, 0.8, 0.6, 0.5, 0.4],
            &[1, -1, 1, -1, 1],
            ApKind::Voc07,
        )
        .unwrap();
        close(r2.ap, r07.ap);
    }

    #[test]
    fn ties_keep_input_order() {
        // All three items tie. Stable sort keeps input order.
        // Order (-1, +1, +1): precisions 0, 1/2, 2/3 at recalls 0, 1/2, 1.
        //   Area: monotone prec at recall 1/2 -> 2/3, at 1 -> 2/3; AP = 1/2*2/3 + 1/2*2/3 = 2/3.
        // Order (+1, +1, -1): precisions 1, 1, 2/3 at recalls 1/2, 1, 1; AP = 1.
        let s = [0.5, 0.5, 0.5];
        let neg_first = average_precision(&s, &[-1, 1, 1], ApKind::Area).unwrap();
        close(neg_first.ap, 2.0 / 3.0);
        let pos_first = average_precision(&s, &[1, 1, -1], ApKind::Area).unwrap();
        close(pos_first.ap, 1.0);
        // Voc07, neg first: every threshold 0..1 is reached only at rank >= 2; max prec at
        // rec >= t is 2/3 for all 11 thresholds (rank 3 has prec 2/3 > rank 2's 1/2) -> 2/3.
        let v = average_precision(&s, &[-1, 1, 1], ApKind::Voc07).unwrap();
        close(v.ap, 2.0 / 3.0);
        // A tie between a higher and a lower block: (.9,-1) (.5,+1) (.5,-1) (.1,+1)
        // -> order as given: prec 0, 1/2, 1/3, 1/2 at rec 0, 1/2, 1/2, 1.
        // Area: monotone: rec 1/2 -> max(1/2, 1/3, 1/2) = 1/2, rec 1 -> 1/2; AP = 1/2.
        let m = average_precision(&[0.9, 0.5, 0.5, 0.1], &[-1, 1, -1, 1], ApKind::Area).unwrap();
        close(m.ap, 0.5);
        // Swapping the tied pair puts the negative first: prec 0, 0, 1/3, 1/2 at rec 0, 0, 1/2, 1.
        // Area: rec 1/2 -> max(1/3, 1/2) = 1/2, rec 1 -> 1/2; AP = 1/2 as well (the final point
        // dominates), but the curve differs at rank 2.
        let m2 = average_precision(&[0.9, 0.5, 0.5, 0.1], &[-1, -1, 1, 1], ApKind::Area).unwrap();
        close(m2.ap, 0.5);
        close(m.curve[1].precision, 0.5);
        close(m2.curve[1].precision, 0.0);
    }

    #[test]
    fn voc07_threshold_at_three_tenths_follows_matlab() {
        // 10 positives, ranking: 3 positives, then 1 negative, then the other 7 positives.
        // Precision: ranks 1-3: 1 (recall .1, .2, .3); rank 4: 3/4 (recall .3);
        // ranks 5..11: (k-1)/k for positives 4..10 -> recall .4 .. 1.0.
        // At t = 0.30000000000000004 (MATLAB's 3*0.1) recall 0.3 does not qualify, so the max
        // precision at t_3 is that of rank 5: 4/5. With t = 0.3 it would be 1.
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for k in 0..11 {
            scores.push(100.0 - k as f64);
            labels.push(if k == 3 { -1 } else { 1 });
        }
        let r = average_precision(&scores, &labels, ApKind::Voc07).unwrap();
        // Max precision at recall >= t for each threshold: t = 0, .1, .2 -> 1 (ranks 1..3).
        // From t = 3*0.1 on, only recalls .4 .. 1 qualify (ranks 5..11, precision k/(k+1) for
        // k = 4..10, increasing), so the max is rank 11's 10/11 for the 8 thresholds left.
        // AP = (3 * 1 + 8 * 10/11) / 11. With t = 0.3 exactly it would be (4 + 7 * 10/11) / 11.
        let want: f64 = (3.0 + 8.0 * 10.0 / 11.0) / 11.0;
        assert!((want - (4.0 + 7.0 * 10.0 / 11.0) / 11.0).abs() > 1e-3);
        close(r.ap, want);
    }

    #[test]
    fn perfect_and_worst_rankings() {
        let r = average_precision(&[3.0, 2.0, 1.0], &[1, 1, -1], ApKind::Voc07).unwrap();
        close(r.ap, 1.0);
        // Positive last of 3: precision 1/3 at recall 1, so Area AP = 1/3 and Voc07 = 1/3.
        let r = average_precision(&[3.0, 2.0, 1.0], &[-1, -1, 1], ApKind::Area).unwrap();
        close(r.ap, 1.0 / 3.0);
        let r = average_precision(&[3.0, 2.0, 1.0], &[-1, -1, 1], ApKind::Voc07).unwrap();
        close(r.ap, 1.0 / 3.0);
    }

    #[test]
    fn ap_rejects_bad_input() {
        assert!(average_precision(&[1.0], &[1, -1], ApKind::Area).is_err());
        assert!(average_precision(&[1.0, 2.0], &[-1, 0], ApKind::Area).is_err());
        assert!(average_precision(&[f64::NAN], &[1], ApKind::Area).is_err());
        assert!(average_precision(&[1.0], &[2], ApKind::Area).is_err());
    }

    #[test]
    fn map_is_mean_of_aps() {
        let s1 = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let l1 = [1, -1, 0, 1, -1, 1]; // Area AP 34/45 (see ap_with_difficult_items)
        let s2 = [0.5, 0.5, 0.5];
        let l2 = [-1, 1, 1]; // Area AP 2/3 (see ties_keep_input_order)
        let m = mean_average_precision(&[(&s1, &l1), (&s2, &l2)], ApKind::Area).unwrap();
        close(m.map, (34.0 / 45.0 + 2.0 / 3.0) / 2.0);
        let err = mean_average_precision(&[(&s1, &l1), (&s2, &[-1, -1, 0])], ApKind::Area)
            .unwrap_err()
            .to_string();
        assert!(err.contains("class 1"), "{err}");

        // The same from n x K matrices (s2/l2 padded to 6 items with difficult entries).
        let scores = ndarray::Array2::from_shape_fn((6, 2), |(i, k)| {
            if k == 0 {
                s1[i]
            } else if i < 3 {
                s2[i]
            } else {
                0.0
            }
        });
        let labels = ndarray::Array2::from_shape_fn((6, 2), |(i, k)| {
            if k == 0 {
                l1[i]
            } else if i < 3 {
                l2[i]
            } else {
                0
            }
        });
        let mm =
            mean_average_precision_columns(scores.view(), labels.view(), ApKind::Area).unwrap();
        close(mm.map, m.map);
        assert!(mean_average_precision_columns(scores.view(), labels.t(), ApKind::Area).is_err());
    }

    #[test]
    fn class_recall_excludes_untested_classes() {
        // Class 0: 3 items, 2 right -> 2/3. Class 1: 1 item, wrong -> 0. Class 2: none -> None.
        // Class 3: 2 items, both right -> 1. Mean over 3 tested classes = (2/3 + 0 + 1) / 3 = 5/9.
        // Accuracy = 4 / 6.
        let truth = [0, 0, 0, 1, 3, 3];
        let pred = [0, 2, 0, 0, 3, 3];
        let r = mean_class_recall(&truth, &pred, 4).unwrap();
        assert_eq!(r.per_class.len(), 4);
        close(r.per_class[0].unwrap(), 2.0 / 3.0);
        close(r.per_class[1].unwrap(), 0.0);
        assert_eq!(r.per_class[2], None);
        close(r.per_class[3].unwrap(), 1.0);
        assert_eq!(r.counts, vec![3, 1, 0, 2]);
        close(r.mean, 5.0 / 9.0);
        close(r.accuracy, 4.0 / 6.0);
        assert!(mean_class_recall(&[0, 4], &[0, 0], 4).is_err());
        assert!(mean_class_recall(&[0], &[0, 0], 4).is_err());
    }

    #[test]
    fn mean_and_sample_std() {
        // values 1, 2, 4: mean 7/3; deviations -4/3, -1/3, 5/3; squares 16/9 + 1/9 + 25/9 = 42/9;
        // sample variance 42/9 / 2 = 7/3; std = sqrt(7/3).
        let m = mean_std(&[1.0, 2.0, 4.0]).unwrap();
        close(m.mean, 7.0 / 3.0);
        close(m.std.unwrap(), (7.0f64 / 3.0).sqrt());
        assert_eq!(m.n, 3);
        assert_eq!(format!("{:.2}", m), "2.33 ± 1.53");
        let one = mean_std(&[0.5]).unwrap();
        assert_eq!(one.std, None);
        assert!(mean_std(&[]).is_err());
        assert!(mean_std(&[f64::INFINITY]).is_err());
    }
}
