//! The Caltech-101/256 protocol (the paper's Section 4.3 / Table 11): random per-class splits
//! (e.g. 30 training and up to 50 test images per class, 3 splits), one-vs-rest SVMs with C
//! chosen by cross-validation of each training split, mean class recall per split, mean ± std over
//! splits.

use std::path::PathBuf;
use std::time::Instant;

use super::page::{Diagnostics, write_run_page};
use super::record::{ProtocolResult, SplitResult};
use super::{Run, dataset_of, matrix};
use crate::classifier::Classifier;
use crate::dataset::{Split, SplitParams, sample_split};
use crate::error::{Error, Result};
use crate::metrics::{self, MeanStd};
use crate::report::{self, ClassScore, ResultsTable, Scores, Unscored};
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
    /// Per split, the test images' decision values (also in `scores_split<N>.csv`).
    pub scores: Vec<Scores>,
    /// What the run could not do as asked (classes with fewer images than the split asked for;
    /// also in `metrics.json`).
    pub warnings: Vec<String>,
}

/// Classes that have fewer images than a sampled split asks for: the split takes what there is
/// (all but one for training, the rest for testing), and says so.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shrunk {
    /// Training images per class asked for.
    pub asked_train: usize,
    /// Test images per class asked for at most (`None`: all the rest).
    pub asked_test: Option<usize>,
    /// The classes that got fewer, with the counts they got (the same in every sampled split).
    pub classes: Vec<ShrunkClass>,
}

/// A class that got fewer images than asked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShrunkClass {
    /// Class name.
    pub class: String,
    /// Training images used.
    pub train: usize,
    /// Test images used.
    pub test: usize,
}

impl Shrunk {
    /// The classes of `split` (sampled with `p`) that have fewer images than `p` asks for;
    /// `None` if every class got what was asked.
    pub fn of(split: &Split, p: &SplitParams) -> Option<Shrunk> {
        let classes: Vec<ShrunkClass> = split
            .class_counts()
            .iter()
            .zip(&split.classes)
            .filter(|((train, test), _)| {
                *train < p.train_per_class || p.test_per_class.is_some_and(|t| *test < t)
            })
            .map(|(&(train, test), class)| ShrunkClass {
                class: class.clone(),
                train,
                test,
            })
            .collect();
        (!classes.is_empty()).then_some(Shrunk {
            asked_train: p.train_per_class,
            asked_test: p.test_per_class,
            classes,
        })
    }

    /// The warning: what was asked, how many classes got less, and each one's counts (the first
    /// [`Shrunk::LISTED`]; `metrics.json` has them all).
    pub fn message(&self, n_classes: usize) -> String {
        let test = self
            .asked_test
            .map_or("all remaining".to_string(), |t| t.to_string());
        let mut list: Vec<String> = self
            .classes
            .iter()
            .take(Self::LISTED)
            .map(|c| format!("{} {}/{}", c.class, c.train, c.test))
            .collect();
        if self.classes.len() > Self::LISTED {
            list.push(format!("and {} more", self.classes.len() - Self::LISTED));
        }
        let short_train = self
            .classes
            .iter()
            .filter(|c| c.train < self.asked_train)
            .count();
        format!(
            "asked for {} training / {test} test images per class, but {} of {n_classes} classes \
             have fewer ({short_train} of them fewer training images) and were split as they \
             could be, train/test used: {}",
            self.asked_train,
            self.classes.len(),
            list.join(", ")
        )
    }

    /// Classes named in [`Shrunk::message`] at most.
    pub const LISTED: usize = 20;
}

/// Refuses splits that cannot give a meaningful table, before anything is written: fewer than 2
/// classes (one-vs-rest of one class is trivially right), classes that differ between splits, a
/// class without training images, or no test images in some split. `names` says where each
/// split came from (its file, or `split N`).
fn check_splits(splits: &[Split], names: &[String]) -> Result<()> {
    let classes = &splits[0].classes;
    if classes.len() < 2 {
        return Err(Error::Usage(format!(
            "the Caltech protocol needs at least 2 classes; the splits have {} ({})",
            classes.len(),
            classes.join(", ")
        )));
    }
    for (split, name) in splits.iter().zip(names) {
        if split.classes != *classes {
            return Err(Error::Usage(format!(
                "{name}: its classes differ from those of {}",
                names[0]
            )));
        }
        if split.test.is_empty() {
            return Err(Error::Usage(format!(
                "{name}: no test images (rows with set `test`)"
            )));
        }
        let untrained: Vec<&str> = split
            .class_counts()
            .iter()
            .zip(&split.classes)
            .filter(|((train, _), _)| *train == 0)
            .map(|(_, c)| c.as_str())
            .collect();
        if !untrained.is_empty() {
            return Err(Error::Usage(format!(
                "{name}: class(es) {} have no training images",
                untrained.join(", ")
            )));
        }
    }
    Ok(())
}

/// The images per class actually used, for titles: `30 train / 50 test per class`, or ranges
/// (`5-30 train / 1-50 test per class`) when classes differ.
fn per_class_counts(splits: &[Split]) -> String {
    let counts: Vec<(usize, usize)> = splits.iter().flat_map(Split::class_counts).collect();
    let range = |f: fn(&(usize, usize)) -> usize| {
        let lo = counts.iter().map(f).min().unwrap_or(0);
        let hi = counts.iter().map(f).max().unwrap_or(0);
        if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        }
    };
    format!(
        "{} train / {} test per class",
        range(|c| c.0),
        range(|c| c.1)
    )
}

/// Runs the Caltech protocol on aggregated descriptors of `store` and writes `run.out` (tables,
/// plots, `metrics.json` with the run record, and per split `split<N>.csv`, the test images'
/// decision values `scores_split<N>.csv` and the classifiers `model_split<N>.safetensors`).
pub fn run_caltech(
    store: &Store,
    desc: &Descriptors,
    source: &SplitSource,
    run: &Run,
) -> Result<CaltechOutcome> {
    let (svm, select, out) = (&run.record.svm, &run.record.select, run.out.as_path());
    let ds = dataset_of(store, desc)?;
    // The splits, and where each came from (for messages).
    let (splits, names): (Vec<Split>, Vec<String>) = match source {
        SplitSource::Sample(p) => {
            p.check(&ds)?;
            (
                (0..p.splits)
                    .map(|s| sample_split(&ds, p, s))
                    .collect::<Result<_>>()?,
                (0..p.splits).map(|s| format!("split {s}")).collect(),
            )
        }
        SplitSource::Files(files) => (
            files
                .iter()
                .map(|f| Split::read_csv(f, &ds))
                .collect::<Result<_>>()?,
            files.iter().map(|f| f.display().to_string()).collect(),
        ),
    };
    if splits.is_empty() {
        return Err(Error::Usage("no splits".into()));
    }
    check_splits(&splits, &names)?;
    let shrunk = match source {
        SplitSource::Sample(p) => Shrunk::of(&splits[0], p),
        SplitSource::Files(_) => None,
    };
    let warnings: Vec<String> = shrunk
        .iter()
        .map(|s| s.message(splits[0].classes.len()))
        .collect();
    report::clear_results(out)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let classes = splits[0].classes.clone();
    let mut per_class: Vec<Vec<f64>> = vec![Vec::new(); classes.len()];
    let mut results = Vec::new();
    let mut scores = Vec::new();
    for (s, split) in splits.iter().enumerate() {
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
        let test_ids: Vec<String> = split.test.iter().map(|&i| row_of(i).to_string()).collect();
        let test_labels: Vec<Vec<String>> = split
            .test_labels
            .iter()
            .map(|&k| vec![classes[k].clone()])
            .collect();
        let split_scores = Scores {
            set: format!("split{s}"),
            ids: test_ids,
            labels: test_labels,
            classes: classes.clone(),
            values: sel.model.decision_function(xte.view()),
        };
        report::write_scores(&out.join(format!("scores_split{s}.csv")), &split_scores)?;
        scores.push(split_scores);
        Classifier::new(
            sel.model.clone(),
            classes.clone(),
            vec![sel.c; classes.len()],
            run.features.clone(),
            format!("split {s}: {} training images", split.train.len()),
            false,
        )?
        .save(&out.join(format!("model_split{s}.safetensors")))?;
        let rec = metrics::mean_class_recall(&split.test_labels, &pred, classes.len())?;
        for (k, r) in rec.per_class.iter().enumerate() {
            if let Some(r) = r {
                per_class[k].push(*r);
            }
        }
        results.push(SplitResult {
            split: s,
            c: sel.c,
            c_scores: sel.scores.clone(),
            folds: sel.folds.k,
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
    let mut rows = Vec::new();
    let mut unscored = Vec::new();
    for (name, v) in classes.iter().zip(&per_class) {
        if v.is_empty() {
            unscored.push(Unscored {
                name: name.clone(),
                reason: "no test images in any split".into(),
            });
            continue;
        }
        let ms = metrics::mean_std(v)?;
        rows.push(ClassScore {
            name: name.clone(),
            score: ms.mean,
            std: ms.std,
        });
    }
    let title = run
        .title
        .clone()
        .unwrap_or_else(|| format!("{}: {}", run.description, per_class_counts(&splits)));
    let table = ResultsTable::new(&title, "recall", rows, recall.mean)?
        .with_splits(recall)
        .with_unscored(unscored);
    let mut record = run.record.clone();
    record.result = Some(ProtocolResult::Caltech {
        splits: results.clone(),
        store_manifest: Box::new(store.manifest.clone()),
        failed_inputs_left_out: store.failures().len(),
        shrunk,
    });
    record.warnings.extend(warnings.iter().cloned());
    report::write_results(out, &table, &record.relative_to(out))?;
    let diagnostics = Diagnostics::Caltech {
        scores: &scores,
        manifest: &store.manifest,
    };
    write_run_page(run, &record, Some(&table), diagnostics)?;
    Ok(CaltechOutcome {
        splits: results,
        recall,
        table,
        scores,
        warnings,
    })
}
