//! `vggfeat svm`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use linfa::ParamGuard;

use crate::EXIT_OK;
use crate::choice::{Choice, lib_parser};
use vggfeat::dataset::SplitParams;
use vggfeat::metrics::ApKind;
use vggfeat::protocol::{ProtocolName, VocParams};
use vggfeat::svm::{DEFAULT_C_GRID, DEFAULT_FOLDS, Validation};
use vggfeat::{
    Aggregate, EvaluateOutcome, EvaluateParams, EvaluateValidParams, LinearSvmParams, Loss, Nets,
    Solver,
};

/// `--test-per-class N|all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerClass(pub Option<usize>);

impl std::str::FromStr for PerClass {
    type Err = vggfeat::Error;
    fn from_str(s: &str) -> vggfeat::Result<Self> {
        match s {
            "all" => Ok(PerClass(None)),
            n => n.parse().map(|n| PerClass(Some(n))).map_err(|_| {
                vggfeat::Error::Usage(format!("bad --test-per-class `{n}` (a number or all)"))
            }),
        }
    }
}

impl std::fmt::Display for PerClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("all"),
        }
    }
}

fn svm_defaults() -> vggfeat::svm::LinearSvmValidParams {
    LinearSvmParams::new()
        .check()
        .expect("the defaults are valid")
}

/// Train and evaluate linear SVMs on stored descriptors.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  vggfeat svm -f stores/c101 -o results/c101             # 3 splits, 30 train / 50 test per class\n  vggfeat svm -f stores/c101 --split-files s0.csv,s1.csv -o results/c101-fixed\n  vggfeat svm -f stores/voc07-trainval -f stores/voc07-test --protocol voc --voc VOCdevkit/VOC2007 --aggregate avg -o results/voc07\n  vggfeat svm -f stores/c101 --c-grid -1,1   # refused: every C must be > 0 (exit 2)"
)]
pub struct SvmArgs {
    /// Feature store(s) from `extract` (several are joined by image id, e.g. VOC train + test).
    #[arg(long = "features", short = 'f', required = true)]
    pub features: Vec<PathBuf>,
    /// Scale aggregation: the same default as `export` (stack), so that what is exported is
    /// what `svm` trains on.
    #[arg(long, default_value_t = Aggregate::DEFAULT, value_parser = Choice::<Aggregate>::new())]
    pub aggregate: Aggregate,
    /// Nets: all, or indices like 0,1 (late fusion by stacking).
    #[arg(long, default_value = "all", value_parser = lib_parser::<Nets>)]
    pub nets: Nets,
    /// Protocol: caltech (random per-class splits, mean class recall) or voc (devkit sets, AP).
    #[arg(long, default_value_t = ProtocolName::Caltech, value_parser = Choice::<ProtocolName>::new())]
    pub protocol: ProtocolName,
    /// Caltech: training images per class.
    #[arg(long, default_value_t = SplitParams::default().train_per_class)]
    pub train_per_class: usize,
    /// Caltech: test images per class at most, or `all` (Caltech-256).
    #[arg(long, default_value_t = PerClass(SplitParams::default().test_per_class), value_parser = lib_parser::<PerClass>)]
    pub test_per_class: PerClass,
    /// Caltech: number of random splits.
    #[arg(long, default_value_t = SplitParams::default().splits)]
    pub splits: usize,
    /// Seed of the split sampler, of the C selection's folds and of the solver.
    #[arg(long, default_value_t = SplitParams::default().seed)]
    pub seed: u64,
    /// Caltech: classes to leave out (e.g. BACKGROUND_Google); repeatable.
    #[arg(long)]
    pub drop_class: Vec<String>,
    /// Caltech: explicit split files (id,label,set CSV), comma-separated, instead of sampling.
    #[arg(long, value_delimiter = ',')]
    pub split_files: Vec<PathBuf>,
    /// VOC: the devkit year folder (with JPEGImages and ImageSets/Main).
    #[arg(long)]
    pub voc: Option<PathBuf>,
    /// VOC: training image set.
    #[arg(long, default_value_t = VocParams::new("").train_set)]
    pub train_set: String,
    /// VOC: test image set.
    #[arg(long, default_value_t = VocParams::new("").test_set)]
    pub test_set: String,
    /// VOC: AP definition.
    #[arg(long, default_value_t = VocParams::new("").ap, value_parser = Choice::<ApKind>::new())]
    pub ap: ApKind,
    /// Solver.
    #[arg(long, default_value_t = svm_defaults().solver(), value_parser = Choice::<Solver>::new())]
    pub solver: Solver,
    /// Loss.
    #[arg(long, default_value_t = svm_defaults().loss(), value_parser = Choice::<Loss>::new())]
    pub loss: Loss,
    /// C grid, comma-separated; the C of each training split is chosen on it by validation (one
    /// value: no validation).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true, default_values_t = DEFAULT_C_GRID.to_vec())]
    pub c_grid: Vec<f64>,
    /// How the C grid is validated: kfold (stratified cross-validation of the training split;
    /// best mean score, ties to the lowest validation hinge loss, then the smallest C) or
    /// holdout (the paper's single 20 % hold-out).
    #[arg(long, default_value_t = Validation::KFold, value_parser = Choice::<Validation>::new())]
    pub c_validation: Validation,
    /// Folds of the cross-validation at most (fewer when a class has fewer training images).
    #[arg(long, default_value_t = DEFAULT_FOLDS)]
    pub folds: usize,
    /// Fraction of each class held out by `--c-validation holdout`.
    #[arg(long, default_value_t = 0.2)]
    pub validation_fraction: f64,
    /// Results folder (table.md, table.csv, metrics.json, plots, report.html, splits,
    /// scores_*.csv, model_*.safetensors; VOC: results/VOC<year>/Main/comp2_cls_*.txt for the
    /// devkit).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Title of the results table (default: from the store and the protocol).
    #[arg(long)]
    pub title: Option<String>,
}

impl TryFrom<SvmArgs> for EvaluateValidParams {
    type Error = vggfeat::Error;
    fn try_from(a: SvmArgs) -> vggfeat::Result<Self> {
        EvaluateParams::new()
            .features(a.features)
            .aggregate(a.aggregate)
            .nets(a.nets)
            .protocol(a.protocol)
            .train_per_class(a.train_per_class)
            .test_per_class(a.test_per_class.0)
            .splits(a.splits)
            .seed(a.seed)
            .drop_classes(a.drop_class)
            .split_files(a.split_files)
            .devkit(a.voc)
            .train_set(a.train_set)
            .test_set(a.test_set)
            .ap(a.ap)
            .svm(LinearSvmParams::new().loss(a.loss).solver(a.solver))
            .c_grid(a.c_grid)
            .validation(a.c_validation)
            .folds(a.folds)
            .validation_fraction(a.validation_fraction)
            .title(a.title)
            .out(a.out)
            .command(std::env::args().collect())
            .check()
    }
}

/// How C was chosen, from the number of validation rounds.
fn validated_by(rounds: usize) -> String {
    match rounds {
        0 => "one C, not validated".into(),
        1 => "hold-out".into(),
        k => format!("{k}-fold cross-validation"),
    }
}

/// Runs the protocol and prints its headline numbers.
pub fn run(a: SvmArgs) -> Result<u8> {
    let req = EvaluateValidParams::try_from(a)?;
    let t0 = std::time::Instant::now();
    let report = vggfeat::evaluate(&req)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    match report.outcome {
        EvaluateOutcome::Caltech(o) => {
            for s in &o.splits {
                eprintln!(
                    "split {}: C = {} ({}), mean class recall {:.2} % ({} train, {} test, {:.1} s)",
                    s.split,
                    s.c,
                    validated_by(s.folds),
                    100.0 * s.mean_class_recall,
                    s.n_train,
                    s.n_test,
                    s.seconds
                );
            }
            println!(
                "mean class recall {:.2} ± {:.2} % over {} splits ({:.1} s); results in {}",
                100.0 * o.recall.mean,
                100.0 * o.recall.std.unwrap_or(0.0),
                o.splits.len(),
                t0.elapsed().as_secs_f64(),
                req.out().display()
            );
        }
        EvaluateOutcome::Voc(o) => match &o.table {
            Some(t) => println!(
                "mAP {:.2} % (C = {}, {:.1} s); results in {}; devkit result files in {}",
                100.0 * t.mean,
                o.c,
                t0.elapsed().as_secs_f64(),
                req.out().display(),
                o.result_files.display()
            ),
            None => println!(
                "the test set has no labels (the evaluation server holds them): devkit result \
                 files written to {} (C = {}, {:.1} s); tar the `results` folder to submit",
                o.result_files.display(),
                o.c,
                t0.elapsed().as_secs_f64()
            ),
        },
    }
    Ok(EXIT_OK)
}
