//! The Caltech-101/256 protocol (the paper's Section 4.3 / Table 11): random per-class splits
//! (e.g. 30 training and up to 50 test images per class, 3 splits), one-vs-rest SVMs with C
//! chosen on a hold-out of each training split, mean class recall per split, mean ± std over
//! splits.

use std::path::PathBuf;
use std::time::Instant;

use super::record::{ProtocolResult, SplitResult};
use super::{Run, dataset_of, matrix};
use crate::dataset::{Split, SplitParams, sample_split};
use crate::error::{Error, Result};
use crate::metrics::{self, MeanStd};
use crate::report::{self, ClassScore, ResultsTable};
use crate::store::{Descriptors, Store};

/// Where the splits of a Caltech-style run come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitSource {
    /// Sampled with these parameters (seeded).
    Sample(SplitParams),
    /// Read from `id,label,set` CSV files (one per split).
    Files(Vec<PathBuf>),
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

/// Runs the Caltech protocol on aggregated descriptors of `store` and writes `run.out` (tables,
/// plots, `metrics.json` with the run record, and `split<N>.csv`).
pub fn run_caltech(
    store: &Store,
    desc: &Descriptors,
    splits: &SplitSource,
    run: &Run,
) -> Result<CaltechOutcome> {
    let (svm, select, out) = (&run.record.svm, &run.record.select, run.out.as_path());
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
    let table = ResultsTable::new(&run.title, "recall", rows, recall.mean)?.with_splits(recall);
    let mut record = run.record.clone();
    record.result = Some(ProtocolResult::Caltech {
        splits: results.clone(),
        store_manifest: Box::new(store.manifest.clone()),
        failed_inputs_left_out: store.failures().len(),
    });
    report::write_results(out, &table, &record)?;
    Ok(CaltechOutcome {
        splits: results,
        recall,
        table,
    })
}
