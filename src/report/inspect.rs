//! What went wrong in a run, from its test images' decision values ([`Scores`]): the confusion
//! matrix of a single-label run (Caltech) and the worst-classified test images, pure functions.
//!
//! # Rules
//!
//! * The predicted class of an image is the argmax of its decision values; on a tie the class
//!   listed first wins, and a NaN value never wins (it compares as smaller than anything).
//! * Single-label margin (Caltech): the true class's value minus the best value among the other
//!   classes. Negative means misclassified; the smaller, the worse.
//! * Binary margin (VOC, per image and class): `y * s` for a label `y` of `+1` or `-1` and a
//!   decision value `s`: a positive scored low and a negative scored high both have a small
//!   margin. Difficult items (`0`) are left out, as the AP leaves them out.
//! * The worst `n` are the `n` smallest margins; equal margins keep the input order (splits in
//!   order, rows in order, classes in order), so the choice is deterministic.

use ndarray::ArrayView2;

use super::Scores;
use crate::error::{Error, Result};

/// Counts of (true class, predicted class) over one or several sets of test images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    /// Class names, the order of rows and columns.
    pub classes: Vec<String>,
    /// `counts[t][p]`: images of true class `t` predicted as `p`.
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// Images counted.
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Images on the diagonal (predicted as their true class).
    pub fn correct(&self) -> usize {
        (0..self.classes.len()).map(|k| self.counts[k][k]).sum()
    }

    /// The largest count off the diagonal (0 when every image is right).
    pub fn max_off_diagonal(&self) -> usize {
        let k = self.classes.len();
        (0..k)
            .flat_map(|t| (0..k).filter(move |&p| p != t).map(move |p| (t, p)))
            .map(|(t, p)| self.counts[t][p])
            .max()
            .unwrap_or(0)
    }
}

/// The index of the largest value of `row` (first on a tie; NaN never wins). `None` if `row` is
/// empty or all NaN.
pub fn argmax(row: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (j, &v) in row.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((j, v));
        }
    }
    best.map(|(j, _)| j)
}

/// The single label of row `i` of `s` as a class index. Errors if the image has no label or
/// several, or one that is not a class of `s`.
fn true_class(s: &Scores, i: usize) -> Result<usize> {
    let labels = &s.labels[i];
    let [label] = labels.as_slice() else {
        return Err(Error::Usage(format!(
            "{}: image {} has {} labels; a confusion matrix needs exactly one",
            s.set,
            s.ids[i],
            labels.len()
        )));
    };
    s.classes.iter().position(|c| c == label).ok_or_else(|| {
        Error::Usage(format!(
            "{}: image {} has label {label}, which is not a class of the scores",
            s.set, s.ids[i]
        ))
    })
}

/// The confusion matrix of single-label `scores`, summed over the sets given (e.g. the splits
/// of a Caltech run). Errors if the sets have different classes, or an image has not exactly one
/// label among them.
pub fn confusion_matrix(scores: &[Scores]) -> Result<ConfusionMatrix> {
    let classes = scores
        .first()
        .map(|s| s.classes.clone())
        .unwrap_or_default();
    let k = classes.len();
    let mut counts = vec![vec![0usize; k]; k];
    for s in scores {
        if s.classes != classes {
            return Err(Error::Usage(format!(
                "{}: its classes differ from those of {}",
                s.set, scores[0].set
            )));
        }
        for (i, row) in s.values.rows().into_iter().enumerate() {
            let t = true_class(s, i)?;
            let row = row.to_vec();
            if let Some(p) = argmax(&row) {
                counts[t][p] += 1;
            }
        }
    }
    Ok(ConfusionMatrix { classes, counts })
}

/// One badly classified test image (or image and class, for a multi-label run).
#[derive(Debug, Clone, PartialEq)]
pub struct Misfit {
    /// The set of test images it is from (`split0`, `test`).
    pub set: String,
    /// Image id.
    pub id: String,
    /// Its true labels.
    pub labels: Vec<String>,
    /// The margin (see the [module docs](self)); the smaller, the worse.
    pub margin: f32,
    /// What the classifiers said.
    pub verdict: Verdict,
}

/// The scores behind a [`Misfit`].
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Single-label: the true class's value and the best other class with its value.
    SingleLabel {
        /// True class.
        truth: String,
        /// Its decision value.
        truth_score: f32,
        /// The predicted class (the argmax; the true class when the margin is >= 0 and wins).
        predicted: String,
        /// The best class other than the true one.
        runner_up: String,
        /// Its decision value.
        runner_up_score: f32,
    },
    /// Multi-label: one class's classifier on this image.
    Binary {
        /// The class.
        class: String,
        /// Whether the image is a positive of the class.
        positive: bool,
        /// The class's decision value.
        score: f32,
    },
}

/// Keeps the `n` smallest margins, stable for equal margins (input order).
fn smallest(mut all: Vec<Misfit>, n: usize) -> Vec<Misfit> {
    all.sort_by(|a, b| a.margin.total_cmp(&b.margin));
    all.truncate(n);
    all
}

/// The `n` test images with the smallest single-label margin over all sets of `scores` (a
/// Caltech run's splits). Errors as [`confusion_matrix`] does; images of a set with fewer than
/// two classes have no margin and are skipped.
pub fn worst_single_label(scores: &[Scores], n: usize) -> Result<Vec<Misfit>> {
    let mut all = Vec::new();
    for s in scores {
        if s.classes.len() < 2 {
            continue;
        }
        for (i, row) in s.values.rows().into_iter().enumerate() {
            let t = true_class(s, i)?;
            let row = row.to_vec();
            let others: Vec<f32> = row
                .iter()
                .enumerate()
                .map(|(j, &v)| if j == t { f32::NAN } else { v })
                .collect();
            let (Some(r), Some(p)) = (argmax(&others), argmax(&row)) else {
                continue;
            };
            all.push(Misfit {
                set: s.set.clone(),
                id: s.ids[i].clone(),
                labels: s.labels[i].clone(),
                margin: row[t] - row[r],
                verdict: Verdict::SingleLabel {
                    truth: s.classes[t].clone(),
                    truth_score: row[t],
                    predicted: s.classes[p].clone(),
                    runner_up: s.classes[r].clone(),
                    runner_up_score: row[r],
                },
            });
        }
    }
    Ok(smallest(all, n))
}

/// The `n` (image, class) pairs of a multi-label run with the smallest binary margin `y * s`:
/// positives scored lowest and negatives scored highest. `labels` is (images, classes) of
/// `+1` / `-1` / `0` (difficult, skipped), in the rows and columns of `scores`.
pub fn worst_binary(scores: &Scores, labels: ArrayView2<'_, i8>, n: usize) -> Result<Vec<Misfit>> {
    if labels.dim() != scores.values.dim() {
        return Err(Error::Usage(format!(
            "{}: labels of shape {:?} for scores of shape {:?}",
            scores.set,
            labels.dim(),
            scores.values.dim()
        )));
    }
    let mut all = Vec::new();
    for (i, (row, y)) in scores
        .values
        .rows()
        .into_iter()
        .zip(labels.rows())
        .enumerate()
    {
        for (k, (&s, &y)) in row.iter().zip(y).enumerate() {
            if y == 0 {
                continue;
            }
            all.push(Misfit {
                set: scores.set.clone(),
                id: scores.ids[i].clone(),
                labels: scores.labels[i].clone(),
                margin: f32::from(y) * s,
                verdict: Verdict::Binary {
                    class: scores.classes[k].clone(),
                    positive: y > 0,
                    score: s,
                },
            });
        }
    }
    Ok(smallest(all, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn scores(set: &str, labels: &[&str], values: ndarray::Array2<f32>) -> Scores {
        Scores {
            set: set.into(),
            ids: (0..labels.len()).map(|i| format!("{set}/img{i}")).collect(),
            labels: labels.iter().map(|l| vec![l.to_string()]).collect(),
            classes: vec!["a".into(), "b".into(), "c".into()],
            values,
        }
    }

    /// Two splits, worked by hand:
    /// split0: img0 (a) [2, 1, 0] -> a, margin 2-1 = 1; img1 (b) [0.5, 0.2, 0.1] -> a, margin
    /// 0.2-0.5 = -0.3; img2 (c) [0, 0, 3] -> c, margin 3.
    /// split1: img0 (a) [1, 1, 0] -> a (tie: first wins), margin 0; img1 (c) [0, 2, 1] -> b,
    /// margin 1-2 = -1.
    fn two_splits() -> Vec<Scores> {
        vec![
            scores(
                "split0",
                &["a", "b", "c"],
                array![[2.0, 1.0, 0.0], [0.5, 0.2, 0.1], [0.0, 0.0, 3.0]],
            ),
            scores(
                "split1",
                &["a", "c"],
                array![[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]],
            ),
        ]
    }

    #[test]
    fn confusion_matrix_by_hand() {
        let m = confusion_matrix(&two_splits()).unwrap();
        // rows: true a, b, c; columns: predicted a, b, c.
        assert_eq!(m.counts, vec![vec![2, 0, 0], vec![1, 0, 0], vec![0, 1, 1]]);
        assert_eq!((m.total(), m.correct(), m.max_off_diagonal()), (5, 3, 1));
    }

    #[test]
    fn worst_single_label_by_hand() {
        let w = worst_single_label(&two_splits(), 3).unwrap();
        let got: Vec<(&str, f32)> = w.iter().map(|m| (m.id.as_str(), m.margin)).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, "split1/img1");
        assert!((got[0].1 + 1.0).abs() < 1e-6);
        assert_eq!(got[1].0, "split0/img1");
        assert!((got[1].1 + 0.3).abs() < 1e-6);
        assert_eq!(got[2], ("split1/img0", 0.0));
        let Verdict::SingleLabel {
            truth,
            predicted,
            runner_up,
            runner_up_score,
            ..
        } = &w[0].verdict
        else {
            panic!("{:?}", w[0].verdict)
        };
        assert_eq!((truth.as_str(), predicted.as_str()), ("c", "b"));
        assert_eq!((runner_up.as_str(), *runner_up_score), ("b", 2.0));
        // The tie: img0 of split1 is predicted `a` (first wins), its runner-up is `b` at 1.
        let Verdict::SingleLabel { predicted, .. } = &w[2].verdict else {
            panic!()
        };
        assert_eq!(predicted, "a");
    }

    #[test]
    fn argmax_ties_and_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, -1.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN]), None);
        assert_eq!(argmax(&[]), None);
    }

    /// img0 is positive for a (score -0.5: margin -0.5) and negative for b (score 0.8: margin
    /// -0.8); img1 is difficult for a (skipped) and negative for b (score -2: margin 2).
    #[test]
    fn worst_binary_by_hand() {
        let s = Scores {
            set: "test".into(),
            ids: vec!["img0".into(), "img1".into()],
            labels: vec![vec!["a".into()], vec![]],
            classes: vec!["a".into(), "b".into()],
            values: array![[-0.5, 0.8], [9.0, -2.0]],
        };
        let y = array![[1i8, -1], [0, -1]];
        let w = worst_binary(&s, y.view(), 10).unwrap();
        let got: Vec<(&str, f32)> = w.iter().map(|m| (m.id.as_str(), m.margin)).collect();
        assert_eq!(got, vec![("img0", -0.8), ("img0", -0.5), ("img1", 2.0)]);
        assert_eq!(
            w[0].verdict,
            Verdict::Binary {
                class: "b".into(),
                positive: false,
                score: 0.8
            }
        );
        assert!(worst_binary(&s, y.slice(ndarray::s![..1, ..]), 1).is_err());
    }

    #[test]
    fn refuses_labels_outside_the_classes() {
        let mut s = two_splits();
        s[0].labels[0] = vec!["zebra".into()];
        assert!(confusion_matrix(&s).is_err());
        s[0].labels[0] = vec![];
        assert!(worst_single_label(&s, 1).is_err());
    }
}
