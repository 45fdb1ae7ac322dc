//! The benchmark protocols of the paper's transfer experiments, from feature stores to a results
//! folder: Caltech-style (`caltech`: random per-class splits, mean class recall, mean ± std
//! over splits) and VOC-style (`voc`: one-vs-rest on a devkit's train set, per-class AP and
//! mAP on its test set). Both select C by stratified cross-validation of the training split, retrain
//! on the whole split, write the splits they used next to the results, and record every
//! parameter in a typed [`record::RunRecord`]. [`reproduce`] runs them all as the paper's
//! Table 11.
//!
//! [`EvaluateParams`] / [`evaluate`] is the front door: stores in, results folder out, with the
//! tables and per-split decision values also returned in memory ([`EvaluateReport`]). Every run
//! also writes `report.html`, one self-contained page of its results (see `page`).

mod caltech;
mod page;
mod record;
mod reproduce;
mod voc;

use std::path::PathBuf;

use ndarray::{Array2, Axis};

use linfa::ParamGuard;

use crate::aggregate::Aggregate;
use crate::classifier::FeatureSpec;
use crate::dataset::{Dataset, Item, SourceKind, SplitParams};
use crate::error::{Error, Param, Result};
use crate::store::{Descriptors, Nets, Store, aggregate_stores, read_manifest};
use crate::svm::{
    DEFAULT_C_GRID, LinearSvmParams, LinearSvmValidParams, SelectCParams, SelectCValidParams,
    Validation,
};

pub(crate) use caltech::run_caltech;
pub use caltech::{CaltechOutcome, Shrunk, ShrunkClass, SplitSource};
pub use record::{ProtocolName, ProtocolResult, RunRecord, SplitResult};
pub use reproduce::{Benchmark, ReproduceParams, ReproduceValidParams, Table11, reproduce};
pub(crate) use voc::run_voc;
pub use voc::{VocOutcome, VocParams};

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
    /// The paper's number for this run (`reproduce`), shown beside ours in `report.html`.
    pub paper: Option<String>,
}

/// The protocol of an evaluation, with where its splits or image sets come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Protocol {
    /// Caltech-style splits.
    Caltech(SplitSource),
    /// A VOC devkit.
    Voc(VocParams),
}

/// Checked parameters of an evaluation; obtained only from [`EvaluateParams::check`]. See
/// [`EvaluateParams`] for every field's meaning, default and range.
#[derive(Debug, Clone)]
pub struct EvaluateValidParams {
    features: Vec<PathBuf>,
    aggregate: Aggregate,
    nets: Nets,
    protocol: Protocol,
    svm: LinearSvmValidParams,
    select: SelectCValidParams,
    title: Option<String>,
    out: PathBuf,
    command: Vec<String>,
}

impl EvaluateValidParams {
    /// The feature stores.
    pub fn features(&self) -> &[PathBuf] {
        &self.features
    }
    /// Scale aggregation.
    pub fn aggregate(&self) -> Aggregate {
        self.aggregate
    }
    /// The protocol.
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }
    /// The binary SVMs' parameters (C is chosen per run).
    pub fn svm(&self) -> &LinearSvmValidParams {
        &self.svm
    }
    /// How C is chosen.
    pub fn select(&self) -> &SelectCValidParams {
        &self.select
    }
    /// The results folder.
    pub fn out(&self) -> &std::path::Path {
        &self.out
    }
}

/// Linear SVMs evaluated on stored descriptors under a benchmark protocol: a builder. Call
/// [`check`](EvaluateParams::check) for the only way to [`EvaluateValidParams`], and
/// [`evaluate`] to run it.
#[derive(Debug, Clone)]
pub struct EvaluateParams {
    features: Vec<PathBuf>,
    aggregate: Aggregate,
    nets: Nets,
    protocol: ProtocolName,
    split: SplitParams,
    split_files: Vec<PathBuf>,
    voc: VocParams,
    devkit: Option<PathBuf>,
    svm: LinearSvmParams,
    c_grid: Vec<f64>,
    select: SelectCParams,
    title: Option<String>,
    out: PathBuf,
    command: Vec<String>,
}

impl Default for EvaluateParams {
    fn default() -> Self {
        Self::new()
    }
}

impl EvaluateParams {
    /// The defaults: no store nor results folder yet, scales stacked, every net, the Caltech
    /// protocol with 3 seeded splits of 30 training and up to 50 test images per class (seed 0),
    /// VOC sets trainval -> test with the 11-point AP, liblinear's SVM defaults, the default C
    /// grid.
    pub fn new() -> Self {
        EvaluateParams {
            features: Vec::new(),
            aggregate: Aggregate::DEFAULT,
            nets: Nets::All,
            protocol: ProtocolName::Caltech,
            split: SplitParams::default(),
            split_files: Vec::new(),
            voc: VocParams::new(""),
            devkit: None,
            svm: LinearSvmParams::new(),
            c_grid: DEFAULT_C_GRID.to_vec(),
            select: SelectCParams::new(),
            title: None,
            out: PathBuf::new(),
            command: Vec::new(),
        }
    }

    /// Feature stores, joined by image id (e.g. a VOC trainval store and a test store). At
    /// least one.
    pub fn features<P: Into<PathBuf>>(mut self, stores: impl IntoIterator<Item = P>) -> Self {
        self.features = stores.into_iter().map(Into::into).collect();
        self
    }

    /// Scale aggregation. Default [`Aggregate::DEFAULT`] (stack, as `export`).
    pub fn aggregate(mut self, aggregate: Aggregate) -> Self {
        self.aggregate = aggregate;
        self
    }

    /// Nets to use, fused by stacking. Default [`Nets::All`].
    pub fn nets(mut self, nets: Nets) -> Self {
        self.nets = nets;
        self
    }

    /// The protocol. Default [`ProtocolName::Caltech`]; [`ProtocolName::Voc`] needs
    /// [`EvaluateParams::devkit`].
    pub fn protocol(mut self, protocol: ProtocolName) -> Self {
        self.protocol = protocol;
        self
    }

    /// Caltech: training images per class. Default 30; >= 1.
    pub fn train_per_class(mut self, n: usize) -> Self {
        self.split.train_per_class = n;
        self
    }

    /// Caltech: test images per class at most (`None`: all the rest). Default 50; >= 1.
    pub fn test_per_class(mut self, n: Option<usize>) -> Self {
        self.split.test_per_class = n;
        self
    }

    /// Caltech: number of random splits. Default 3; >= 1.
    pub fn splits(mut self, n: usize) -> Self {
        self.split.splits = n;
        self
    }

    /// Seed of the split sampler, of the C selection's folds and of the solver. Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.split.seed = seed;
        self
    }

    /// Caltech: classes to leave out (e.g. `BACKGROUND_Google`). Default none; each must exist.
    pub fn drop_classes(mut self, classes: Vec<String>) -> Self {
        self.split.drop_classes = classes;
        self
    }

    /// Caltech: explicit split files (`id,label,set` CSV, one per split) instead of sampling.
    /// Default none.
    pub fn split_files(mut self, files: Vec<PathBuf>) -> Self {
        self.split_files = files;
        self
    }

    /// VOC: the devkit year folder (with `JPEGImages/` and `ImageSets/Main/`). Required by the
    /// VOC protocol.
    pub fn devkit(mut self, devkit: Option<PathBuf>) -> Self {
        self.devkit = devkit;
        self
    }

    /// VOC: the training image set. Default `trainval`.
    pub fn train_set(mut self, set: impl Into<String>) -> Self {
        self.voc.train_set = set.into();
        self
    }

    /// VOC: the test image set. Default `test`.
    pub fn test_set(mut self, set: impl Into<String>) -> Self {
        self.voc.test_set = set.into();
        self
    }

    /// VOC: the AP definition. Default [`crate::metrics::ApKind::Voc07`] (11-point).
    pub fn ap(mut self, ap: crate::metrics::ApKind) -> Self {
        self.voc.ap = ap;
        self
    }

    /// The binary SVMs (loss, solver, tolerance, bias; C is chosen on the grid and the seed is
    /// [`EvaluateParams::seed`]'s). Default [`LinearSvmParams::new`].
    pub fn svm(mut self, svm: LinearSvmParams) -> Self {
        self.svm = svm;
        self
    }

    /// The C grid of the selection. Default [`DEFAULT_C_GRID`]; every C finite and > 0.
    pub fn c_grid(mut self, grid: Vec<f64>) -> Self {
        self.c_grid = grid;
        self
    }

    /// How the C grid is validated. Default [`Validation::KFold`] (stratified cross-validation;
    /// see [`crate::svm::SelectCParams`] for the rule).
    pub fn validation(mut self, validation: Validation) -> Self {
        self.select = self.select.validation(validation);
        self
    }

    /// Folds of the cross-validation at most (fewer when a class has fewer training images).
    /// Default [`crate::svm::DEFAULT_FOLDS`] (5); >= 2.
    pub fn folds(mut self, folds: usize) -> Self {
        self.select = self.select.folds(folds);
        self
    }

    /// Fraction of each class held out by [`Validation::Holdout`]. Default 0.2; in (0, 1).
    pub fn validation_fraction(mut self, fraction: f64) -> Self {
        self.select = self.select.validation_fraction(fraction);
        self
    }

    /// Title of the results table. Default: from the stores and the protocol.
    pub fn title(mut self, title: Option<String>) -> Self {
        self.title = title;
        self
    }

    /// The results folder (tables, plots, `metrics.json`, splits, scores, classifiers).
    /// Required; an existing one must be a folder.
    pub fn out(mut self, out: impl Into<PathBuf>) -> Self {
        self.out = out.into();
        self
    }

    /// The command line that asked for the run, recorded in `metrics.json`. Default none.
    pub fn command(mut self, command: Vec<String>) -> Self {
        self.command = command;
        self
    }

    /// Checks every range given in the setters' docs, without I/O.
    pub fn check(self) -> Result<EvaluateValidParams> {
        if self.features.is_empty() {
            return Err(Error::param(
                Param::Features,
                "at least one feature store is needed",
            ));
        }
        if self.out.as_os_str().is_empty() {
            return Err(Error::param(Param::Out, "the results folder is required"));
        }
        if let Nets::Some(v) = &self.nets {
            crate::store::check_net_list(v)?;
        }
        let seed = self.split.seed;
        let svm = self.svm.seed(seed).check()?;
        let select = self
            .select
            .grid(self.c_grid)
            .seed(seed)
            .ap_kind(self.voc.ap)
            .check()?;
        let protocol = match self.protocol {
            ProtocolName::Caltech if self.split_files.is_empty() => {
                self.split.check_ranges()?;
                Protocol::Caltech(SplitSource::Sample(self.split))
            }
            ProtocolName::Caltech => Protocol::Caltech(SplitSource::Files(self.split_files)),
            ProtocolName::Voc => {
                let devkit = self.devkit.ok_or_else(|| {
                    Error::param(Param::Devkit, "the VOC protocol needs a devkit folder")
                })?;
                Protocol::Voc(VocParams { devkit, ..self.voc })
            }
        };
        Ok(EvaluateValidParams {
            features: self.features,
            aggregate: self.aggregate,
            nets: self.nets,
            protocol,
            svm,
            select,
            title: self.title,
            out: self.out,
            command: self.command,
        })
    }
}

/// What an evaluation produced (also written to its results folder), and what is wrong with its
/// stores if anything (incomplete, stale against their inputs; also in `metrics.json`).
#[derive(Debug, Clone)]
pub struct EvaluateReport {
    /// The protocol's outcome.
    pub outcome: EvaluateOutcome,
    /// Warnings about the stores and the protocol (classes with fewer images than asked).
    pub warnings: Vec<String>,
}

/// The outcome of one protocol.
#[derive(Debug, Clone)]
pub enum EvaluateOutcome {
    /// A Caltech-style run.
    Caltech(CaltechOutcome),
    /// A VOC-style run.
    Voc(VocOutcome),
}

/// Runs an evaluation: reads the stores' manifests and checks the net selection (a usage error
/// is found before any descriptor is read), joins and aggregates the stores, runs the protocol
/// and writes the results folder.
pub fn evaluate(req: &EvaluateValidParams) -> Result<EvaluateReport> {
    if req.out.exists() && !req.out.is_dir() {
        return Err(Error::param(
            Param::Out,
            format!("{}: exists and is not a folder", req.out.display()),
        ));
    }
    let first = &req.features[0];
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
        warnings: Vec::new(),
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
        paper: None,
    };
    let mut warnings = store_warnings;
    let outcome = match &req.protocol {
        Protocol::Caltech(splits) => {
            let o = run_caltech(&stores[0], &desc, splits, &run)?;
            warnings.extend(o.warnings.iter().cloned());
            EvaluateOutcome::Caltech(o)
        }
        Protocol::Voc(v) => EvaluateOutcome::Voc(run_voc(v, &desc, &run)?),
    };
    Ok(EvaluateReport { outcome, warnings })
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
