//! The benchmark protocols of the paper's transfer experiments, from a feature store to a
//! results folder: Caltech-style (random per-class splits, mean class recall, mean ± std over
//! splits) and VOC-style (one-vs-rest on a devkit's train set, per-class AP and mAP on its test
//! set). Both select C on a stratified 20 % hold-out of the training split, retrain on the whole
//! split, write the splits they used next to the results, and record every parameter.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array2, Axis};

use crate::aggregate::{Aggregate, Descriptors};
use crate::dataset::{Dataset, Item, SourceKind, Split, SplitParams, sample_split};
use crate::error::{Error, Result};
use crate::metrics::{self, ApKind, ApResult, MeanStd};
use crate::report::{self, ClassScore, ResultsTable};
use crate::store::Store;
use crate::svm::{LinearSvmValidParams, SelectCValidParams};

/// Where the splits of a Caltech-style run come from.
#[derive(Debug, Clone)]
pub enum SplitSource {
    /// Sampled with these parameters (seeded).
    Sample(SplitParams),
    /// Read from `id,label,set` CSV files (one per split).
    Files(Vec<PathBuf>),
}

/// The result of one split.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SplitResult {
    /// Split number.
    pub split: usize,
    /// Chosen C.
    pub c: f64,
    /// Validation score per C of the grid.
    pub c_scores: Vec<(f64, f64)>,
    /// Mean class recall on the test items.
    pub mean_class_recall: f64,
    /// Plain accuracy, for reference.
    pub accuracy: f64,
    /// Training / test items.
    pub n_train: usize,
    /// Test items.
    pub n_test: usize,
    /// Seconds for C selection + training + testing.
    pub seconds: f64,
}

/// Everything a Caltech-style run produced.
#[derive(Debug, Clone)]
pub struct CaltechOutcome {
    /// Per split.
    pub splits: Vec<SplitResult>,
    /// Mean ± std of the mean class recall over splits.
    pub recall: MeanStd,
    /// The per-class table (mean over splits).
    pub table: ResultsTable,
}

fn matrix(rows: &[Vec<f32>], pick: &[usize]) -> Array2<f32> {
    let d = rows.first().map_or(0, Vec::len);
    let mut m = Array2::<f32>::zeros((pick.len(), d));
    for (mut r, &i) in m.axis_iter_mut(Axis(0)).zip(pick) {
        r.assign(&ndarray::ArrayView1::from(&rows[i][..]));
    }
    m
}

/// A single-label dataset made of the store's successful records (failed inputs cannot be used;
/// their number is reported by the caller).
pub fn dataset_of(store: &Store, desc: &Descriptors) -> Result<Dataset> {
    let root = PathBuf::from(&store.manifest.input.root);
    let items = desc
        .ids
        .iter()
        .zip(&desc.labels)
        .map(|(id, labels)| Item {
            id: id.clone(),
            path: root.join(id),
            labels: labels.clone(),
            voc_labels: None,
        })
        .collect();
    Dataset::from_items(root, SourceKind::Folder, items)
}

/// Runs the Caltech protocol on aggregated descriptors and writes `out` (tables, plots,
/// `metrics.json` with `parameters`, and `split<N>.csv`).
#[allow(clippy::too_many_arguments)]
pub fn run_caltech(
    store: &Store,
    desc: &Descriptors,
    splits: &SplitSource,
    select: &SelectCValidParams,
    svm: &LinearSvmValidParams,
    title: &str,
    parameters: serde_json::Value,
    out: &Path,
) -> Result<CaltechOutcome> {
    let ds = dataset_of(store, desc)?;
    let splits: Vec<Split> = match splits {
        SplitSource::Sample(p) => {
            p.check(&ds)?;
            (0..p.splits)
                .map(|s| sample_split(&ds, p, s))
                .collect::<Result<_>>()?
        }
        SplitSource::Files(files) => files
            .iter()
            .map(|f| Split::read_csv(f, &ds))
            .collect::<Result<_>>()?,
    };
    if splits.is_empty() {
        return Err(Error::InvalidParam("no splits".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let classes = splits[0].classes.clone();
    let mut per_class: Vec<Vec<f64>> = vec![Vec::new(); classes.len()];
    let mut results = Vec::new();
    for (s, split) in splits.iter().enumerate() {
        if split.classes != classes {
            return Err(Error::InvalidParam(
                "splits disagree on the class list".into(),
            ));
        }
        split.write_csv(&ds, &out.join(format!("split{s}.csv")))?;
        let t0 = Instant::now();
        let row_of = |i: usize| ds.items[i].id.as_str();
        let idx = |items: &[usize]| -> Vec<usize> {
            items
                .iter()
                .map(|&i| {
                    desc.ids
                        .binary_search_by(|x| x.as_str().cmp(row_of(i)))
                        .expect("dataset built from desc")
                })
                .collect()
        };
        let xtr = matrix(&desc.rows, &idx(&split.train));
        let xte = matrix(&desc.rows, &idx(&split.test));
        let sel = select.select_one_vs_rest(svm, xtr.view(), &split.train_labels, classes.len())?;
        let pred = sel.model.predict(xte.view());
        let rec = metrics::mean_class_recall(&split.test_labels, &pred, classes.len())?;
        for (k, r) in rec.per_class.iter().enumerate() {
            if let Some(r) = r {
                per_class[k].push(*r);
            }
        }
        results.push(SplitResult {
            split: s,
            c: sel.c,
            c_scores: sel.scores.iter().map(|c| (c.c, c.score)).collect(),
            mean_class_recall: rec.mean,
            accuracy: rec.accuracy,
            n_train: split.train.len(),
            n_test: split.test.len(),
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    let recall = metrics::mean_std(
        &results
            .iter()
            .map(|r| r.mean_class_recall)
            .collect::<Vec<_>>(),
    )?;
    let rows: Vec<ClassScore> = classes
        .iter()
        .zip(&per_class)
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, v)| {
            let ms = metrics::mean_std(v).expect("non-empty");
            ClassScore {
                name: name.clone(),
                score: ms.mean,
                std: ms.std,
            }
        })
        .collect();
    let table = ResultsTable::new(title, "recall", rows, recall.mean)?.with_splits(recall);
    let mut params = parameters;
    params["splits"] = serde_json::to_value(&results).expect("serialisable");
    params["store_manifest"] = serde_json::to_value(&store.manifest).expect("serialisable");
    params["failed_inputs_left_out"] = store.failures().len().into();
    report::write_results(out, &table, &params)?;
    Ok(CaltechOutcome {
        splits: results,
        recall,
        table,
    })
}

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

/// Runs the VOC protocol: one-vs-rest SVMs on the devkit's `train_set` (labels +1 / -1 / 0
/// difficult from `ImageSets/Main/<class>_<set>.txt`), AP per class on `test_set` ranked by the
/// decision values, difficult images ignored. Descriptors are looked up by image id (the
/// devkit-relative path `JPEGImages/<id>.jpg`), in one or several stores' descriptors.
#[allow(clippy::too_many_arguments)]
pub fn run_voc(
    devkit: &Path,
    train_set: &str,
    test_set: &str,
    desc: &Descriptors,
    ap: ApKind,
    select: &SelectCValidParams,
    svm: &LinearSvmValidParams,
    title: &str,
    parameters: serde_json::Value,
    out: &Path,
) -> Result<VocOutcome> {
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
    let mut aps = Vec::new();
    for (k, class) in train.classes.iter().enumerate() {
        let s: Vec<f64> = f.column(k).iter().map(|v| *v as f64).collect();
        let l: Vec<i8> = te_labels.column(k).to_vec();
        aps.push((class.clone(), metrics::average_precision(&s, &l, ap)?));
    }
    let map = aps.iter().map(|(_, a)| a.ap).sum::<f64>() / aps.len().max(1) as f64;
    let rows = aps
        .iter()
        .map(|(n, a)| ClassScore::new(n.clone(), a.ap))
        .collect();
    let table = ResultsTable::new(title, "AP", rows, map)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut params = parameters;
    params["c"] = sel.c.into();
    params["c_scores"] = serde_json::to_value(
        sel.scores
            .iter()
            .map(|c| (c.c, c.score))
            .collect::<Vec<_>>(),
    )
    .expect("serialisable");
    params["train_set"] = train_set.into();
    params["test_set"] = test_set.into();
    report::write_results(out, &table, &params)?;
    let curves: Vec<(&str, &ApResult)> = aps.iter().map(|(n, a)| (n.as_str(), a)).collect();
    report::write_pr_curves(&out.join("pr_curves.svg"), title, &curves)?;
    Ok(VocOutcome {
        c: sel.c,
        table,
        aps,
    })
}

/// A short description of an aggregation for titles: `avg of Q 256,384`.
pub fn describe_aggregation(how: Aggregate, scales: &[u32]) -> String {
    let q: Vec<String> = scales.iter().map(u32::to_string).collect();
    format!("{how} of Q {}", q.join(","))
}
