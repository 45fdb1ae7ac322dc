//! The benchmark protocols of the paper's transfer experiments, from feature stores to a results
//! folder: Caltech-style ([`caltech`]: random per-class splits, mean class recall, mean ± std
//! over splits) and VOC-style ([`voc`]: one-vs-rest on a devkit's train set, per-class AP and
//! mAP on its test set). Both select C on a stratified hold-out of the training split, retrain
//! on the whole split, write the splits they used next to the results, and record every
//! parameter in a typed [`record::RunRecord`]. [`reproduce`] runs them all as the paper's
//! Table 11.
//!
//! [`SvmRequest`] / [`run_svm`] is the `vggfeat svm` command as one call.

pub mod caltech;
pub mod record;
pub mod reproduce;
pub mod voc;

use std::path::PathBuf;

use ndarray::{Array2, Axis};

use crate::aggregate::Aggregate;
use crate::classifier::FeatureSpec;
use crate::dataset::{Dataset, Item, SourceKind};
use crate::error::{Error, Result};
use crate::store::{Descriptors, Nets, Store, aggregate_stores, read_manifest};
use crate::svm::{LinearSvmValidParams, SelectCValidParams};

pub use caltech::{CaltechOutcome, SplitSource, run_caltech};
pub use record::{ProtocolName, ProtocolResult, RunRecord, SplitResult};
pub use voc::{VocOutcome, VocParams, run_voc};

/// What every protocol run needs besides its data: the run record (which holds the
/// classifiers' parameters; the runner adds what it chose), the results table's title, the
/// results folder, and what the descriptors are (saved with the classifiers).
#[derive(Debug, Clone)]
pub struct Run {
    /// The record of the run.
    pub record: RunRecord,
    /// Title of the results table; `None`: the runner makes one from `description` and what
    /// it actually ran (images per class, image sets).
    pub title: Option<String>,
    /// What the descriptors are, for default titles (`D fc7, stack of Q 256,384,512`).
    pub description: String,
    /// The results folder.
    pub out: PathBuf,
    /// The descriptors the classifiers take (saved with them as `model_<split>.safetensors`).
    pub features: FeatureSpec,
}

/// The protocol of an `svm` run.
#[derive(Debug, Clone, PartialEq)]
pub enum Protocol {
    /// Caltech-style splits.
    Caltech(SplitSource),
    /// A VOC devkit.
    Voc(VocParams),
}

/// Everything `vggfeat svm` is asked to do.
#[derive(Debug, Clone)]
pub struct SvmRequest {
    /// Feature stores, joined by image id (e.g. VOC train + test).
    pub features: Vec<PathBuf>,
    /// Scale aggregation.
    pub aggregate: Aggregate,
    /// Nets to use (fused by stacking).
    pub nets: Nets,
    /// The protocol.
    pub protocol: Protocol,
    /// The binary SVMs' parameters.
    pub svm: LinearSvmValidParams,
    /// How C is chosen.
    pub select: SelectCValidParams,
    /// Title of the results table (default: from the stores and the protocol).
    pub title: Option<String>,
    /// The results folder.
    pub out: PathBuf,
    /// The command line, for the record.
    pub command: Vec<String>,
}

/// What an `svm` run produced, and what is wrong with its stores if anything (incomplete,
/// stale against their inputs; also in `metrics.json`).
#[derive(Debug, Clone)]
pub struct SvmReport {
    /// The protocol's outcome.
    pub outcome: SvmOutcome,
    /// Warnings about the stores.
    pub warnings: Vec<String>,
}

/// The outcome of one protocol.
#[derive(Debug, Clone)]
pub enum SvmOutcome {
    /// A Caltech-style run.
    Caltech(CaltechOutcome),
    /// A VOC-style run.
    Voc(VocOutcome),
}

/// Runs `vggfeat svm`: reads the stores' manifests and checks the net selection (a usage error
/// is found before any descriptor is read), joins and aggregates the stores, runs the protocol
/// and writes the results folder.
pub fn run_svm(req: &SvmRequest) -> Result<SvmReport> {
    if req.out.exists() && !req.out.is_dir() {
        return Err(Error::InvalidParam(format!(
            "-o {}: exists and is not a folder",
            req.out.display()
        )));
    }
    let first = req
        .features
        .first()
        .ok_or_else(|| Error::InvalidParam("at least one feature store is needed".into()))?;
    let manifest = read_manifest(first)?;
    let nets = req.nets.resolve(manifest.nets.len())?;
    let stores = req
        .features
        .iter()
        .map(|p| Store::open(p))
        .collect::<Result<Vec<_>>>()?;
    let desc = aggregate_stores(&stores, req.aggregate, &nets)?;
    let store_warnings: Vec<String> = stores
        .iter()
        .flat_map(|s| {
            crate::store::check_inputs(s)
                .warnings()
                .into_iter()
                .map(|w| format!("{}: {w}", s.dir.display()))
        })
        .collect();
    let layers = nets
        .iter()
        .map(|&i| {
            let n = &manifest.nets[i];
            format!("{} {}", n.config, n.layer)
        })
        .collect::<Vec<_>>()
        .join(" & ");
    let agg = describe_aggregation(req.aggregate, &manifest.scales);
    let record = RunRecord {
        command: req.command.clone(),
        features: req.features.clone(),
        aggregate: req.aggregate,
        nets,
        protocol: match req.protocol {
            Protocol::Caltech(_) => ProtocolName::Caltech,
            Protocol::Voc(_) => ProtocolName::Voc,
        },
        benchmark: None,
        store_warnings: store_warnings.clone(),
        svm: req.svm,
        select: req.select.clone(),
        result: None,
    };
    let run = Run {
        title: req.title.clone(),
        features: FeatureSpec::of_store(&manifest, req.aggregate, &record.nets),
        description: format!("{layers}, {agg}"),
        record,
        out: req.out.clone(),
    };
    let outcome = match &req.protocol {
        Protocol::Caltech(splits) => {
            SvmOutcome::Caltech(run_caltech(&stores[0], &desc, splits, &run)?)
        }
        Protocol::Voc(v) => SvmOutcome::Voc(run_voc(v, &desc, &run)?),
    };
    Ok(SvmReport {
        outcome,
        warnings: store_warnings,
    })
}

/// The rows of `pick` as an (n, d) matrix.
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
            member: None,
        })
        .collect();
    Dataset::from_items(root, SourceKind::Folder, items)
}

/// A short description of an aggregation for titles: `avg of Q 256,384`.
pub fn describe_aggregation(how: Aggregate, scales: &[u32]) -> String {
    let q: Vec<String> = scales.iter().map(u32::to_string).collect();
    format!("{how} of Q {}", q.join(","))
}
