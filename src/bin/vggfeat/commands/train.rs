//! `vggfeat train`: flags mapped onto [`vggfeat::TrainParams`] (unset flags take the library's
//! defaults; the library refuses what a resumed run cannot change), progress and per-epoch
//! lines. Nothing else: the recipe and the resume rules live in the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::svm::PerClass;
use crate::EXIT_OK;
use crate::choice::{Choice, lib_parser};
use crate::progress::Shown;
use vggfeat::localise::Regression;
use vggfeat::model::{Engine, Fc6Input, InitScheme};
use vggfeat::train::optim::Method;
use vggfeat::train::{EpochMetrics, Init, Task, TrainScale};
use vggfeat::{
    ConfigName, DeviceSpec, LayerName, Preprocess, TrainParams, TrainSummary, TrainValidParams,
    Trainer,
};

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
    /// Dataset: a folder of class folders (Caltech layout) or a labelled list file; with
    /// --task localise, a VOC-format devkit (Annotations/, ImageSets/Main/, JPEGImages/). Not
    /// needed with --init resume:DIR.
    pub data: Option<PathBuf>,
    /// What to train: classify, or localise (the paper's box-regression nets, Sect. 4).
    /// [default: classify]
    #[arg(long, value_parser = lib_parser::<Task>)]
    pub task: Option<Task>,
    /// Localisation: the box head, pcr (a box per class) or scr (one box). [default: pcr]
    #[arg(long, value_parser = lib_parser::<Regression>)]
    pub regression: Option<Regression>,
    /// Localisation: the devkit's training image set. [default: trainval]
    #[arg(long)]
    pub split: Option<String>,
    /// Localisation: the devkit's validation image set (none: the schedule watches the
    /// training loss).
    #[arg(long)]
    pub val_split: Option<String>,
    /// Configuration (default with --init pretrained: the checkpoint's).
    #[arg(long, value_parser = Choice::<ConfigName>::new())]
    pub config: Option<ConfigName>,
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
    #[arg(long, value_parser = Choice::<InitScheme>::new())]
    pub init_scheme: Option<InitScheme>,
    /// The code that computes the gradients: auto (the fast CPU backend on the CPU, candle on
    /// CUDA and for A-LRN), fast, or candle (the reference). [default: auto]
    #[arg(long, value_parser = Choice::<Engine>::new())]
    pub engine: Option<Engine>,
    /// Keep layers fixed up to this one, e.g. conv5_3, pool4, fc7.
    #[arg(long, value_parser = lib_parser::<LayerName>)]
    pub freeze_through: Option<LayerName>,
    /// With --freeze-through: compute the frozen layers' outputs once for V augmented variants of
    /// each training image (when the run starts or resumes; kept in memory), and let each epoch
    /// pick one variant per image and run only the trainable layers. [default: 0, no cache]
    #[arg(long, value_name = "V")]
    pub cache_frozen: Option<usize>,
    /// With --cache-frozen: keep the cache in DIR too, and reuse it in any run that would
    /// compute the same values (same frozen weights, images, boxes, augmentation, seed, crop).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
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
    /// The update rule: sgd (the paper's) or adam (PyTorch's Adam with betas (--momentum,
    /// 0.999), for heads on frozen features far from the paper's scale). [default: sgd]
    #[arg(long, value_parser = Choice::<Method>::new())]
    pub optimizer: Option<Method>,
    /// What fc6 does to pool5 first: identity (the paper's) or sqrt (element-wise square
    /// root; needs --freeze-through pool5 or later). Recorded in the checkpoints, so that
    /// every command loading them applies it. [default: identity]
    #[arg(long, value_parser = Choice::<Fc6Input>::new())]
    pub fc6_input: Option<Fc6Input>,
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
    #[arg(long, value_parser = Choice::<Preprocess>::new())]
    pub preprocess: Option<Preprocess>,
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

/// Calls the builder's setter for each option that was given.
macro_rules! given {
    ($p:ident, $a:ident, $($name:ident),+ $(,)?) => {
        $(if let Some(v) = $a.$name.clone() {
            $p = $p.$name(v);
        })+
    };
}

impl TryFrom<&TrainArgs> for TrainValidParams {
    type Error = vggfeat::Error;
    fn try_from(a: &TrainArgs) -> vggfeat::Result<Self> {
        let mut p = TrainParams::new();
        given!(
            p,
            a,
            data,
            out,
            init_scheme,
            width_div,
            crop,
            scale,
            batch,
            micro_batch,
            lr,
            momentum,
            optimizer,
            fc6_input,
            weight_decay,
            dropout,
            lr_factor,
            patience,
            max_decreases,
            epochs,
            colour_std,
            pca_images,
            train_per_class,
            seed,
            preprocess,
            device,
        );
        if let Some(c) = a.config {
            p = p.config(Some(c));
        }
        if let Some(t) = a.task {
            p = p.task(t);
        }
        if let Some(r) = a.regression {
            p = p.regression(r);
        }
        if let Some(s) = &a.split {
            p = p.voc_split(s.clone());
        }
        if let Some(v) = &a.val_split {
            p = p.val_split(Some(v.clone()));
        }
        if let Some(e) = a.engine {
            p = p.engine(e);
        }
        if let Some(l) = a.freeze_through {
            p = p.freeze_through(Some(l));
        }
        if let Some(v) = a.cache_frozen {
            p = p.cache_frozen(v);
        }
        if let Some(d) = &a.cache_dir {
            p = p.cache_dir(Some(d.clone()));
        }
        if let Some(f) = a.fc_width {
            p = p.fc_width(Some(f));
        }
        if let Some(q) = a.test_scale {
            p = p.test_scale(Some(q));
        }
        if let Some(v) = a.val_per_class {
            p = p.val_per_class(v.0);
        }
        if let Some(s) = a.split_seed {
            p = p.split_seed(s);
        }
        if !a.drop_class.is_empty() {
            p = p.drop_classes(a.drop_class.clone());
        }
        if let Some(n) = a.max_classes {
            p = p.max_classes(Some(n));
        }
        if a.decay_biases {
            p = p.decay_biases(true);
        }
        if a.no_flip {
            p = p.flip(false);
        }
        if a.init != Init::Scratch {
            p = p.init(a.init.clone());
        }
        p.check()
    }
}

fn epoch_line(m: &EpochMetrics, task: Task) {
    match task {
        Task::Classify => println!(
            "epoch {:>3}  loss {:.4}  train err {:.3}  val top-1 err {:.3}  top-5 err {:.3}  lr {:.0e}  {:.1} s",
            m.epoch,
            m.train_loss,
            m.train_top1_err,
            m.val_top1_err,
            m.val_top5_err,
            m.lr,
            m.seconds
        ),
        Task::Localise => println!(
            "epoch {:>3}  box loss {:.4}  train box miss {:.3}  val loc err (gt class) {:.3}  lr {:.0e}  {:.1} s",
            m.epoch, m.train_loss, m.train_top1_err, m.val_top1_err, m.lr, m.seconds
        ),
    }
}

fn print_summary(s: &TrainSummary, task: Task) {
    if task == Task::Localise {
        println!(
            "done: {} epochs{} in {:.1} min; best validation localisation error (gt class, \
             central crop) {:.3} (epoch {})",
            s.epochs,
            s.stopped
                .as_ref()
                .map(|r| format!(" (stopped: {r})"))
                .unwrap_or_default(),
            s.seconds / 60.0,
            s.best_top1_err,
            s.best_epoch
        );
        println!(
            "weights: {} (latest), {} (best)",
            s.latest.display(),
            s.best.display()
        );
        return;
    }
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
        s.latest.display(),
        s.best.display()
    );
}

/// Runs `vggfeat train`; returns the exit code (0).
pub fn run(a: TrainArgs) -> Result<u8> {
    vggfeat::train::keep_freed_memory();
    let params = TrainValidParams::try_from(&a)?;
    let quiet = a.quiet;
    let progress = Shown::visible(!a.no_progress);
    let mut t = match params.init() {
        Init::Resume(dir) => {
            let t = Trainer::start(&params)
                .with_context(|| format!("resuming the run in {}", dir.display()))?;
            println!(
                "resuming {} after epoch {} (limit {} epochs)",
                dir.display(),
                t.state().epoch,
                t.record().params.epochs()
            );
            t
        }
        _ => {
            let t = Trainer::start(&params)?;
            let r = &t.record().resolved;
            let p = &t.record().params;
            println!(
                "training VGG {} (width /{}, fc {}, crop {}, fc6 {}x{}) on {} images of {} \
                 classes, validating on {} at Q={}; init: {} ({} layers copied); run folder {}",
                r.config,
                p.width_div(),
                r.fc_width,
                p.crop(),
                r.fc6_kernel,
                r.fc6_kernel,
                r.train_images,
                r.classes.len(),
                r.val_images,
                r.test_scale,
                p.init(),
                r.init.copied.len(),
                p.out().display()
            );
            t
        }
    };
    let task = t.record().params.task();
    if !t.problems().is_empty() {
        eprintln!(
            "{} annotation problem(s) (every one in {}):",
            t.problems().len(),
            t.dir().root.join("problems.txt").display()
        );
        for p in t.problems().iter().take(10) {
            eprintln!("  {p}");
        }
    }
    let on_epoch = move |m: &EpochMetrics| {
        if !quiet {
            epoch_line(m, task)
        }
    };
    let summary = t.run(&progress, on_epoch)?;
    print_summary(&summary, task);
    if !t.problems().is_empty() {
        eprintln!(
            "not used or odd: {} annotation problem(s), listed in {}",
            t.problems().len(),
            t.dir().root.join("problems.txt").display()
        );
    }
    Ok(EXIT_OK)
}
