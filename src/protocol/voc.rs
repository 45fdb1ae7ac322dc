//! The PASCAL VOC protocol (the paper's Table 11): one-vs-rest SVMs on a devkit's training
//! image set, per-class AP on its test set (11-point for VOC 2007, area for VOC 2010+), mAP.

use std::path::PathBuf;

use ndarray::Array2;

use super::record::ProtocolResult;
use super::{Run, matrix};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::metrics::{self, ApKind, ApResult};
use crate::report::{self, ClassScore, ResultsTable, Unscored};
use crate::store::Descriptors;

/// Everything a VOC-style run produced.
#[derive(Debug, Clone)]
pub struct VocOutcome {
    /// Chosen C.
    pub c: f64,
    /// Per-class AP and the mAP.
    pub table: ResultsTable,
    /// Per-class AP results with PR curves.
    pub aps: Vec<(String, ApResult)>,
}

/// Where a VOC-style run's images and labels come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocParams {
    /// The devkit year folder (with `JPEGImages/` and `ImageSets/Main/`).
    pub devkit: PathBuf,
    /// The training image set. Default `trainval`.
    pub train_set: String,
    /// The test image set. Default `test`.
    pub test_set: String,
    /// The AP definition: 11-point (VOC 2007) or area (VOC 2010+). Default 11-point.
    pub ap: ApKind,
}

impl VocParams {
    /// VOC 2007's protocol on `devkit`: trainval -> test, 11-point AP.
    pub fn new(devkit: impl Into<PathBuf>) -> Self {
        VocParams {
            devkit: devkit.into(),
            train_set: "trainval".into(),
            test_set: "test".into(),
            ap: ApKind::Voc07,
        }
    }
}

/// Runs the VOC protocol: one-vs-rest SVMs on the devkit's training set (labels +1 / -1 / 0
/// difficult from `ImageSets/Main/<class>_<set>.txt`), AP per class on the test set ranked by
/// the decision values, difficult images ignored. Descriptors are looked up by image id (the
/// devkit-relative path `JPEGImages/<id>.jpg`), in one or several stores' descriptors.
pub fn run_voc(voc: &VocParams, desc: &Descriptors, run: &Run) -> Result<VocOutcome> {
    let (devkit, train_set, test_set, ap) = (
        voc.devkit.as_path(),
        voc.train_set.as_str(),
        voc.test_set.as_str(),
        voc.ap,
    );
    let (svm, select, out) = (&run.record.svm, &run.record.select, run.out.as_path());
    let title = run
        .title
        .clone()
        .unwrap_or_else(|| format!("{}: VOC {train_set} -> {test_set} ({ap})", run.description));
    let load = |set: &str| -> Result<(Dataset, Vec<usize>, Array2<i8>)> {
        let ds = Dataset::from_voc(devkit, set)?;
        let mut rows = Vec::with_capacity(ds.len());
        let mut labels = Array2::<i8>::zeros((ds.len(), ds.classes.len()));
        for (i, item) in ds.items.iter().enumerate() {
            let r = desc.ids.binary_search(&item.id).map_err(|_| Error::Data {
                path: devkit.to_path_buf(),
                reason: format!(
                    "image {} of set `{set}` has no descriptor in the store (extract it, or it failed)",
                    item.id
                ),
            })?;
            rows.push(r);
            let l = item.voc_labels.as_ref().ok_or_else(|| Error::Data {
                path: devkit.to_path_buf(),
                reason: format!("set `{set}` has no per-class label files"),
            })?;
            for (k, v) in l.iter().enumerate() {
                labels[[i, k]] = *v;
            }
        }
        Ok((ds, rows, labels))
    };
    let (train, tr_rows, tr_labels) = load(train_set)?;
    let (_test, te_rows, te_labels) = load(test_set)?;
    let xtr = matrix(&desc.rows, &tr_rows);
    let xte = matrix(&desc.rows, &te_rows);
    let sel = select.select_multi_label(svm, xtr.view(), tr_labels.view())?;
    let f = sel.model.decision_function(xte.view());
    // A class without training positives has no classifier worth the name, one without test
    // positives no AP: both are listed as not scored and left out of the mAP.
    let mut aps = Vec::new();
    let mut unscored = Vec::new();
    for (k, class) in train.classes.iter().enumerate() {
        let positives = |l: &Array2<i8>| l.column(k).iter().filter(|v| **v == 1).count();
        let reason = if positives(&tr_labels) == 0 {
            Some(format!("no training positives in `{train_set}`"))
        } else if positives(&te_labels) == 0 {
            Some(format!("no test positives in `{test_set}` (AP undefined)"))
        } else {
            None
        };
        if let Some(reason) = reason {
            unscored.push(Unscored {
                name: class.clone(),
                reason,
            });
            continue;
        }
        let s: Vec<f64> = f.column(k).iter().map(|v| *v as f64).collect();
        let l: Vec<i8> = te_labels.column(k).to_vec();
        aps.push((class.clone(), metrics::average_precision(&s, &l, ap)?));
    }
    if aps.is_empty() {
        return Err(Error::Data {
            path: devkit.to_path_buf(),
            reason: format!(
                "no class has both training and test positives ({} and {})",
                train_set, test_set
            ),
        });
    }
    let map = aps.iter().map(|(_, a)| a.ap).sum::<f64>() / aps.len() as f64;
    let rows = aps
        .iter()
        .map(|(n, a)| ClassScore::new(n.clone(), a.ap))
        .collect();
    let table = ResultsTable::new(&title, "AP", rows, map)?.with_unscored(unscored);
    report::clear_results(out)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut record = run.record.clone();
    record.result = Some(ProtocolResult::Voc {
        c: sel.c,
        c_scores: sel.scores.iter().map(|c| (c.c, c.score)).collect(),
        train_set: train_set.to_string(),
        test_set: test_set.to_string(),
    });
    report::write_results(out, &table, &record.relative_to(out))?;
    let curves: Vec<(&str, &ApResult)> = aps.iter().map(|(n, a)| (n.as_str(), a)).collect();
    report::write_pr_curves(&out.join("pr_curves.svg"), &title, &curves)?;
    Ok(VocOutcome {
        c: sel.c,
        table,
        aps,
    })
}
