//! The PASCAL VOC protocol (the paper's Table 11): one-vs-rest SVMs on a devkit's training
//! image set, per-class AP on its test set (11-point for VOC 2007, area for VOC 2010+), mAP, and
//! the devkit's result files for the evaluation server (competition 2), which is the only way to
//! score VOC 2012's test set.

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2};

use super::page::{Diagnostics, write_run_page};
use super::record::ProtocolResult;
use super::{Run, matrix};
use crate::classifier::Classifier;
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::metrics::{self, ApKind, ApResult};
use crate::report::{self, ClassScore, ResultsTable, Scores, Unscored};
use crate::store::Descriptors;

/// Everything a VOC-style run produced.
#[derive(Debug, Clone)]
pub struct VocOutcome {
    /// Chosen C.
    pub c: f64,
    /// Per-class AP and the mAP; `None` when the test set has no labels (VOC 2012's test set,
    /// whose labels the evaluation server holds): only the result files are written.
    pub table: Option<ResultsTable>,
    /// Per-class AP results with PR curves.
    pub aps: Vec<(String, ApResult)>,
    /// The folder of the devkit-format result files (`.../results/VOC<year>/Main`).
    pub result_files: PathBuf,
    /// The test images' decision values (also in `scores_<test set>.csv`).
    pub scores: Scores,
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

/// The devkit's name for the results folder of `devkit`: the `VOC<year>` in its folder name
/// (`VOCdevkit/VOC2012` -> `VOC2012`), else the folder name itself.
pub fn devkit_name(devkit: &Path) -> String {
    let name = devkit
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("VOC")
        .to_string();
    name.find("VOC")
        .and_then(|i| {
            let year = name.get(i + 3..i + 7)?;
            year.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| format!("VOC{year}"))
        })
        .unwrap_or(name)
}

/// Writes the devkit's classification result files for competition 2 (trained on outside data,
/// here ImageNet features): `<out>/results/<VOCyear>/Main/comp2_cls_<test set>_<class>.txt`, one
/// per class, one line `<image id> <confidence>` per test image in the order of
/// `ImageSets/Main/<test set>.txt` (the decision value, in shortest round-trip form, which the
/// devkit's `%s %f` reads). Returns the `Main` folder; tar `results/` to submit.
pub fn write_result_files(
    out: &Path,
    devkit: &Path,
    test_set: &str,
    image_ids: &[String],
    classes: &[String],
    f: ArrayView2<'_, f32>,
) -> Result<PathBuf> {
    let main = out.join("results").join(devkit_name(devkit)).join("Main");
    std::fs::create_dir_all(&main).map_err(|e| Error::io(&main, e))?;
    for (k, class) in classes.iter().enumerate() {
        let mut body = String::with_capacity(image_ids.len() * 20);
        for (id, v) in image_ids.iter().zip(f.column(k)) {
            body.push_str(&format!("{id} {v}\n"));
        }
        crate::util::write_atomic(
            &main.join(format!("comp2_cls_{test_set}_{class}.txt")),
            body.as_bytes(),
        )?;
    }
    Ok(main)
}

/// Runs the VOC protocol: one-vs-rest SVMs on the devkit's training set (labels +1 / -1 / 0
/// difficult from `ImageSets/Main/<class>_<set>.txt`), decision values on the test set written
/// as the devkit's result files ([`write_result_files`]), `scores_<test set>.csv` and the
/// classifiers as `model_<train set>.safetensors`; when the test set has labels, AP per class
/// ranked by the decision values, difficult images ignored, and the tables. Descriptors are
/// looked up by image id (the devkit-relative path `JPEGImages/<id>.jpg`), in one or several
/// stores' descriptors.
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
    type Loaded = (Dataset, Vec<usize>, Option<Array2<i8>>);
    let load = |set: &str| -> Result<Loaded> {
        let ds = Dataset::from_voc(devkit, set)?;
        let mut rows = Vec::with_capacity(ds.len());
        let labelled = ds.items.iter().all(|i| i.voc_labels.is_some());
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
            if let Some(l) = &item.voc_labels {
                for (k, v) in l.iter().enumerate() {
                    labels[[i, k]] = *v;
                }
            }
        }
        Ok((ds, rows, labelled.then_some(labels)))
    };
    let (train, tr_rows, tr_labels) = load(train_set)?;
    let tr_labels = tr_labels.ok_or_else(|| Error::Data {
        path: devkit.to_path_buf(),
        reason: format!("training set `{train_set}` has no per-class label files"),
    })?;
    let (test, te_rows, te_labels) = load(test_set)?;
    let xtr = matrix(&desc.rows, &tr_rows);
    let xte = matrix(&desc.rows, &te_rows);
    let sel = select.select_multi_label(svm, xtr.view(), tr_labels.view())?;
    let f = sel.model.decision_function(xte.view());

    report::clear_results(out)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let image_ids: Vec<String> = test
        .items
        .iter()
        .map(|i| voc_image_id(&i.id).to_string())
        .collect();
    let result_files =
        write_result_files(out, devkit, test_set, &image_ids, &train.classes, f.view())?;
    let test_ids: Vec<String> = test.items.iter().map(|i| i.id.clone()).collect();
    let test_labels: Vec<Vec<String>> = test.items.iter().map(|i| i.labels.clone()).collect();
    let scores = Scores {
        set: test_set.to_string(),
        ids: test_ids,
        labels: test_labels,
        classes: train.classes.clone(),
        values: f,
    };
    report::write_scores(&out.join(format!("scores_{test_set}.csv")), &scores)?;
    let f = scores.values.view();
    Classifier::new(
        sel.model.clone(),
        train.classes.clone(),
        vec![sel.c; train.classes.len()],
        run.features.clone(),
        format!(
            "VOC `{train_set}` of {}: {} images",
            devkit_name(devkit),
            train.len()
        ),
        true,
    )?
    .save(&out.join(format!("model_{train_set}.safetensors")))?;
    let mut record = run.record.clone();
    record.result = Some(ProtocolResult::Voc {
        c: sel.c,
        c_scores: sel.scores.clone(),
        folds: sel.folds.k,
        train_set: train_set.to_string(),
        test_set: test_set.to_string(),
    });
    let Some(te_labels) = te_labels else {
        // The test labels are held by the evaluation server: the result files are the output.
        crate::util::write_json(&out.join("metrics.json"), &record.relative_to(out))?;
        let diagnostics = Diagnostics::Voc {
            scores: &scores,
            labels: None,
            aps: &[],
            image_root: devkit,
        };
        write_run_page(run, &record, None, diagnostics)?;
        return Ok(VocOutcome {
            c: sel.c,
            table: None,
            aps: Vec::new(),
            result_files,
            scores,
        });
    };

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
    report::write_results(out, &table, &record.relative_to(out))?;
    let curves: Vec<(&str, &ApResult)> = aps.iter().map(|(n, a)| (n.as_str(), a)).collect();
    report::write_pr_curves(&out.join("pr_curves.svg"), &title, &curves)?;
    let diagnostics = Diagnostics::Voc {
        scores: &scores,
        labels: Some(te_labels.view()),
        aps: &aps,
        image_root: devkit,
    };
    write_run_page(run, &record, Some(&table), diagnostics)?;
    Ok(VocOutcome {
        c: sel.c,
        table: Some(table),
        aps,
        result_files,
        scores,
    })
}

/// The devkit's image id of a VOC item id (`JPEGImages/000012.jpg` -> `000012`).
fn voc_image_id(id: &str) -> &str {
    id.strip_prefix("JPEGImages/")
        .and_then(|r| r.strip_suffix(".jpg"))
        .unwrap_or(id)
}
