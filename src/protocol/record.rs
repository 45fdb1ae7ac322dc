//! The typed record of a protocol run, written as `parameters` in `metrics.json`: what was run
//! (command, stores, aggregation, nets, protocol, SVM and C-selection parameters) and what the
//! protocol chose on the way (splits with their C, the store's manifest; VOC's C and image sets).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::aggregate::Aggregate;
use crate::store::Manifest;
use crate::svm::{CScore, LinearSvmValidParams, SelectCValidParams};

/// `path` relative to `base` (both made absolute first), so that a record written into `base`
/// names the machine's paths only relative to itself; `path` unchanged when that is not possible.
pub fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let abs = |p: &Path| std::fs::canonicalize(p).ok();
    match (abs(path), abs(base)) {
        (Some(p), Some(b)) => pathdiff::diff_paths(&p, &b).unwrap_or(p),
        _ => path.to_path_buf(),
    }
}

impl RunRecord {
    /// The record as written into `out`: stores and every path of the store's manifest (inputs,
    /// tables' root, weights files) named relative to `out`.
    pub fn relative_to(&self, out: &Path) -> RunRecord {
        let mut r = self.clone();
        r.features = r.features.iter().map(|f| relative_to(f, out)).collect();
        // The program by name; arguments that are absolute paths relative to the record.
        r.command = r
            .command
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let p = Path::new(a);
                if i == 0 {
                    p.file_name()
                        .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
                } else if p.is_absolute() && p.exists() {
                    relative_to(p, out).display().to_string()
                } else {
                    a.clone()
                }
            })
            .collect();
        if let Some(ProtocolResult::Caltech { store_manifest, .. }) = &mut r.result {
            for p in store_manifest.paths_mut() {
                *p = relative_to(Path::new(p), out).display().to_string();
            }
        }
        r
    }
}

/// Which protocol a run followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolName {
    /// Caltech-style random per-class splits, mean class recall.
    Caltech,
    /// PASCAL VOC devkit image sets, per-class AP and mAP.
    Voc,
}

crate::util::choice::choice!(ProtocolName, "protocol", crate::error::Param::Protocol, [
    ProtocolName::Caltech => "caltech": "Random per-class splits, mean class recall.",
    ProtocolName::Voc => "voc": "A VOC devkit's image sets, AP and mAP.",
]);

/// The run's parameters and choices.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The command line, if the run came from one (as written: the program by name, absolute
    /// paths relative to the record's folder).
    pub command: Vec<String>,
    /// The feature stores.
    pub features: Vec<PathBuf>,
    /// Scale aggregation.
    pub aggregate: Aggregate,
    /// The nets used (indices into the stores), fused by stacking.
    pub nets: Vec<usize>,
    /// The protocol.
    pub protocol: ProtocolName,
    /// The benchmark of a `reproduce` run (`Caltech-101`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<String>,
    /// The binary SVMs' parameters (C is chosen per run).
    pub svm: LinearSvmValidParams,
    /// The C selection's parameters (grid, validation, folds, hold-out fraction, seed, AP kind).
    pub select: SelectCValidParams,
    /// What is wrong with the stores, if anything (incomplete, stale against their inputs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub store_warnings: Vec<String>,
    /// What the protocol could not do as asked (e.g. classes with fewer images than the split
    /// asked for); also printed as warnings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What the protocol chose and counted; filled by the protocol runner.
    #[serde(flatten)]
    pub result: Option<ProtocolResult>,
}

/// What a protocol run chose and counted.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ProtocolResult {
    /// Caltech.
    Caltech {
        /// Per split: C, scores per C, recall, counts, time.
        splits: Vec<SplitResult>,
        /// The manifest of the (first) store.
        store_manifest: Box<Manifest>,
        /// Failed inputs of the store, which have no descriptor.
        failed_inputs_left_out: usize,
        /// Classes with fewer images than the sampled splits asked for, and what they got.
        #[serde(skip_serializing_if = "Option::is_none")]
        shrunk: Option<super::caltech::Shrunk>,
    },
    /// VOC.
    Voc {
        /// The chosen C.
        c: f64,
        /// The validation of each C of the grid (mAP per fold, mean, std, hinge loss); empty
        /// for a grid of one C.
        c_scores: Vec<CScore>,
        /// Validation rounds: folds of the cross-validation (1: hold-out, 0: not validated).
        folds: usize,
        /// The training image set.
        train_set: String,
        /// The test image set.
        test_set: String,
    },
}

/// The result of one split.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SplitResult {
    /// Split number.
    pub split: usize,
    /// Chosen C.
    pub c: f64,
    /// The validation of each C of the grid (mean class recall per fold, mean, std, hinge
    /// loss); empty for a grid of one C.
    pub c_scores: Vec<CScore>,
    /// Validation rounds: folds of the cross-validation (1: hold-out, 0: not validated).
    pub folds: usize,
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
