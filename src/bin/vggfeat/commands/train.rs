//! `vggfeat train`: flags mapped onto [`vggfeat::train::TrainParams`] (unset flags take the
//! library's defaults), progress and per-epoch lines, and the resume rules. Nothing else: the
//! recipe lives in the library.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::svm::PerClass;
use crate::EXIT_OK;
use crate::choice::{Choice, ConfigArg, InitSchemeArg, PreprocessArg, lib_parser};
use vggfeat::model::DeviceSpec;
use vggfeat::model::config::LayerName;
use vggfeat::train::augment::TrainScale;
use vggfeat::train::log::EpochMetrics;
use vggfeat::train::net::Init;
use vggfeat::train::{Summary, TrainParams, Trainer};

/// `vggfeat train`: train a VGG network with the paper's recipe (Section 3.1).
///
/// Unset options take the library's defaults (the paper's values), listed in each option's
/// help. With `--init resume:DIR` the run continues exactly from its last checkpoint and only
/// `--epochs` (a new limit) may be given besides `--no-progress` and `--quiet`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  vggfeat train 101_ObjectCategories --config A --width-div 8 --crop 96 --scale 112:144 --batch 64 --epochs 40 -o runs/a8\n  vggfeat train 101_ObjectCategories --init pretrained:vgg16.safetensors --freeze-through pool4 -o runs/ft\n  vggfeat train --init resume:runs/a8 --epochs 60   # continue exactly where it stopped"
)]
pub struct TrainArgs {
    /// Dataset: a folder of class folders (Caltech layout) or a labelled list file. Not needed
    /// with --init resume:DIR.
    pub data: Option<PathBuf>,
    /// Configuration (default with --init pretrained: the checkpoint's).
    #[arg(long, value_parser = Choice::<ConfigArg>::new())]
    pub config: Option<ConfigArg>,
    /// Run folder for checkpoints, split, parameters, metrics and plot (not needed with resume).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Where weights start: scratch, shallower:CKPT (first four convs and fc6-fc8 of a trained
    /// shallower net), pretrained:CKPT (fine-tuning: every layer that fits, fc8 rebuilt), or
    /// resume:DIR.
    #[arg(long, default_value = "scratch", value_parser = lib_parser::<Init>)]
    pub init: Init,
    /// Random layers: paper (N(0, 0.01^2)), glorot, he, or torchvision (He fan-out convs,
    /// N(0, 0.01^2) fc layers). [default: paper]
    #[arg(long, value_parser = Choice::<InitSchemeArg>::new())]
    pub init_scheme: Option<InitSchemeArg>,
    /// Keep layers fixed up to this one, e.g. conv5_3, pool4, fc7.
    #[arg(long, value_parser = lib_parser::<LayerName>)]
    pub freeze_through: Option<LayerName>,
    /// Divide every channel width by K (1..=64) for a CPU-sized network. [default: 1]
    #[arg(long)]
    pub width_div: Option<usize>,
    /// Width of fc6 and fc7. [default: the pretrained net's, else 4096 / width-div]
    #[arg(long)]
    pub fc_width: Option<usize>,
    /// Training crop side, a multiple of 32; fc6 is a (crop/32) x (crop/32) conv over pool5.
    /// [default: 224]
    #[arg(long)]
    pub crop: Option<u32>,
    /// Training scale S (e.g. 256) or jittered Smin:Smax (e.g. 256:512), each >= crop.
    /// [default: 256]
    #[arg(long, value_parser = lib_parser::<TrainScale>)]
    pub scale: Option<TrainScale>,
    /// Validation test scale Q. [default: S, or (Smin+Smax)/2]
    #[arg(long)]
    pub test_scale: Option<u32>,
    /// Images per SGD step (effective batch). [default: 256]
    #[arg(long)]
    pub batch: Option<usize>,
    /// Images per forward/backward pass; gradients are accumulated to --batch. [default: 16]
    #[arg(long)]
    pub micro_batch: Option<usize>,
    /// Initial learning rate. [default: 0.01]
    #[arg(long)]
    pub lr: Option<f64>,
    /// Momentum, in [0, 1). [default: 0.9]
    #[arg(long)]
    pub momentum: Option<f64>,
    /// L2 weight decay (weights only unless --decay-biases). [default: 5e-4]
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Apply weight decay to biases too.
    #[arg(long)]
    pub decay_biases: bool,
    /// Dropout probability after fc6 and fc7, in [0, 1). [default: 0.5]
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Learning-rate division factor on a plateau. [default: 10]
    #[arg(long)]
    pub lr_factor: Option<f64>,
    /// Epochs without a better validation top-1 error before the rate is divided. [default: 2]
    #[arg(long)]
    pub patience: Option<usize>,
    /// Rate decreases before the next plateau stops training. [default: 3]
    #[arg(long)]
    pub max_decreases: Option<usize>,
    /// Most epochs; with resume, the new limit. [default: 74]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// No random horizontal flips.
    #[arg(long)]
    pub no_flip: bool,
    /// Std of the AlexNet colour-shift coefficients; 0 turns the shift off. [default: 0.1]
    #[arg(long)]
    pub colour_std: Option<f32>,
    /// Training images sampled to fit the colour PCA. [default: 256]
    #[arg(long)]
    pub pca_images: Option<usize>,
    /// Training images per class. [default: 30]
    #[arg(long)]
    pub train_per_class: Option<usize>,
    /// Validation images per class at most, or `all`. [default: 50]
    #[arg(long, value_parser = lib_parser::<PerClass>)]
    pub val_per_class: Option<PerClass>,
    /// Seed of the train/validation split. [default: 0]
    #[arg(long)]
    pub split_seed: Option<u64>,
    /// Leave a class out (repeatable), e.g. BACKGROUND_Google.
    #[arg(long)]
    pub drop_class: Vec<String>,
    /// Use only the first N classes (sorted), after --drop-class.
    #[arg(long)]
    pub max_classes: Option<usize>,
    /// Seed of the initial weights, order, augmentation and dropout. [default: 0]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Input convention. [default: auto = the pretrained net's, else torchvision]
    #[arg(long, value_parser = Choice::<PreprocessArg>::new())]
    pub preprocess: Option<PreprocessArg>,
    /// Device: cpu, cuda or cuda:N. [default: cpu]
    #[arg(long, value_parser = lib_parser::<DeviceSpec>)]
    pub device: Option<DeviceSpec>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// No per-epoch lines (the summary is still printed).
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    /// Whether any option that shapes a run (everything but --epochs and the output switches)
    /// was given.
    fn shapes_the_run(&self) -> bool {
        self.data.is_some()
            || self.config.is_some()
            || self.out.is_some()
            || self.init_scheme.is_some()
            || self.freeze_through.is_some()
            || self.width_div.is_some()
            || self.fc_width.is_some()
            || self.crop.is_some()
            || self.scale.is_some()
            || self.test_scale.is_some()
            || self.batch.is_some()
            || self.micro_batch.is_some()
            || self.lr.is_some()
            || self.momentum.is_some()
            || self.weight_decay.is_some()
            || self.decay_biases
            || self.dropout.is_some()
            || self.lr_factor.is_some()
            || self.patience.is_some()
            || self.max_decreases.is_some()
            || self.no_flip
            || self.colour_std.is_some()
            || self.pca_images.is_some()
            || self.train_per_class.is_some()
            || self.val_per_class.is_some()
            || self.split_seed.is_some()
            || !self.drop_class.is_empty()
            || self.max_classes.is_some()
            || self.seed.is_some()
            || self.preprocess.is_some()
            || self.device.is_some()
    }

    /// The library parameters for a new run (defaults for everything not given).
    fn params(&self, init: Init) -> Result<TrainParams> {
        let d = TrainParams::default();
        let data = self
            .data
            .clone()
            .ok_or_else(|| usage("the dataset (DATA) is required for a new run"))?;
        let out = self
            .out
            .clone()
            .ok_or_else(|| usage("--out DIR is required for a new run"))?;
        let val = self.val_per_class.map_or(d.split.test_per_class, |p| p.0);
        Ok(TrainParams {
            data,
            out,
            init,
            config: self.config.map(Into::into),
            init_scheme: self.init_scheme.map_or(d.init_scheme, Into::into),
            freeze_through: self.freeze_through.map(|l| l.to_string()),
            width_div: self.width_div.unwrap_or(d.width_div),
            fc_width: self.fc_width,
            crop: self.crop.unwrap_or(d.crop),
            scale: self.scale.unwrap_or(d.scale),
            test_scale: self.test_scale,
            batch: self.batch.unwrap_or(d.batch),
            micro_batch: self.micro_batch.unwrap_or(d.micro_batch),
            sgd: vggfeat::train::optim::SgdParams {
                lr: self.lr.unwrap_or(d.sgd.lr),
                momentum: self.momentum.unwrap_or(d.sgd.momentum),
                weight_decay: self.weight_decay.unwrap_or(d.sgd.weight_decay),
            },
            decay_biases: self.decay_biases,
            dropout: self.dropout.unwrap_or(d.dropout),
            lr_factor: self.lr_factor.unwrap_or(d.lr_factor),
            patience: self.patience.unwrap_or(d.patience),
            max_decreases: self.max_decreases.unwrap_or(d.max_decreases),
            epochs: self.epochs.unwrap_or(d.epochs),
            flip: !self.no_flip,
            colour_std: self.colour_std.unwrap_or(d.colour_std),
            pca_images: self.pca_images.unwrap_or(d.pca_images),
            split: vggfeat::dataset::SplitParams {
                train_per_class: self.train_per_class.unwrap_or(d.split.train_per_class),
                test_per_class: val,
                seed: self.split_seed.unwrap_or(d.split.seed),
                splits: 1,
                drop_classes: self.drop_class.clone(),
            },
            max_classes: self.max_classes,
            seed: self.seed.unwrap_or(d.seed),
            preprocess: self.preprocess.and_then(Into::into),
            device: self.device.map_or(d.device, |s| s.to_string()),
        })
    }
}

fn usage(m: &str) -> vggfeat::Error {
    vggfeat::Error::InvalidParam(m.to_string())
}

fn epoch_line(m: &EpochMetrics) {
    println!(
        "epoch {:>3}  loss {:.4}  train err {:.3}  val top-1 err {:.3}  top-5 err {:.3}  lr {:.0e}  {:.1} s",
        m.epoch, m.train_loss, m.train_top1_err, m.val_top1_err, m.val_top5_err, m.lr, m.seconds
    );
}

fn print_summary(s: &Summary) {
    println!(
        "done: {} epochs{} in {:.1} min; best validation top-1 error {:.3}, top-5 error {:.3} \
         (epoch {})",
        s.epochs,
        s.stopped
            .as_ref()
            .map(|r| format!(" (stopped: {r})"))
            .unwrap_or_default(),
        s.seconds / 60.0,
        s.best_top1_err,
        s.best_top5_err,
        s.best_epoch
    );
    println!(
        "weights: {} (latest), {} (best)",
        s.dir.join("model.safetensors").display(),
        s.dir.join("best.safetensors").display()
    );
}

/// Runs `vggfeat train`; returns the exit code (0).
pub fn run(a: TrainArgs) -> Result<u8> {
    let init = a.init.clone();
    let progress = !a.no_progress;
    let quiet = a.quiet;
    let on_epoch = move |m: &EpochMetrics| {
        if !quiet {
            epoch_line(m)
        }
    };
    let summary = if let Init::Resume(dir) = &init {
        if a.shapes_the_run() {
            bail!(vggfeat::Error::InvalidParam(format!(
                "--init resume:{} continues that run exactly; only --epochs may be given \
                 (its parameters are in {})",
                dir.display(),
                dir.join("params.json").display()
            )));
        }
        let mut t = Trainer::resume(dir, a.epochs)
            .with_context(|| format!("resuming the run in {}", dir.display()))?;
        println!(
            "resuming {} after epoch {} (limit {} epochs)",
            dir.display(),
            t.state().epoch,
            t.record().params.epochs
        );
        t.run(progress, on_epoch)?
    } else {
        let params = a.params(init)?;
        let mut t = Trainer::new(params)?;
        let r = &t.record().resolved;
        let p = &t.record().params;
        println!(
            "training VGG {} (width /{}, fc {}, crop {}, fc6 {}x{}) on {} images of {} classes, \
             validating on {} at Q={}; init: {} ({} layers copied); run folder {}",
            r.config,
            p.width_div,
            r.fc_width,
            p.crop,
            r.fc6_kernel,
            r.fc6_kernel,
            r.train_images,
            r.classes.len(),
            r.val_images,
            r.test_scale,
            p.init,
            r.init.copied.len(),
            p.out.display()
        );
        t.run(progress, on_epoch)?
    };
    print_summary(&summary);
    Ok(EXIT_OK)
}
