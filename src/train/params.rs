//! The parameters of a training run (checked without I/O), what they resolved to, and how the
//! run ended. Saved as `params.json` in the run folder.

use std::path::{Path, PathBuf};

use super::augment::TrainScale;
use super::net::{self, Init, InitReport};
use super::optim::{Method, OptimParams};
use super::schedule::Plateau;
use crate::dataset::SplitParams;
use crate::error::{Error, Param, Result};
use crate::localise::Regression;
use crate::model::config::{ConfigName, LayerName};
use crate::model::{DeviceSpec, Engine};
use crate::model::{Fc6Input, InitScheme};
use crate::preprocess::{Normalization, Preprocess};

/// Checked parameters of a training run; obtained only from [`TrainParams::check`] (a run's
/// `params.json` is read back through it too). See [`TrainParams`] for every field's meaning,
/// default and range. Saved as `params.json` in the run folder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainValidParams {
    pub(crate) data: PathBuf,
    pub(crate) out: PathBuf,
    pub(crate) init: Init,
    pub(crate) config: Option<ConfigName>,
    pub(crate) init_scheme: InitScheme,
    pub(crate) freeze_through: Option<LayerName>,
    pub(crate) width_div: usize,
    pub(crate) fc_width: Option<usize>,
    pub(crate) crop: u32,
    pub(crate) scale: TrainScale,
    pub(crate) test_scale: Option<u32>,
    pub(crate) batch: usize,
    pub(crate) micro_batch: usize,
    pub(crate) sgd: OptimParams,
    pub(crate) decay_biases: bool,
    pub(crate) dropout: f32,
    pub(crate) lr_factor: f64,
    pub(crate) patience: usize,
    pub(crate) max_decreases: usize,
    pub(crate) epochs: usize,
    pub(crate) flip: bool,
    pub(crate) colour_std: f32,
    pub(crate) pca_images: usize,
    pub(crate) split: SplitParams,
    pub(crate) max_classes: Option<usize>,
    pub(crate) seed: u64,
    pub(crate) preprocess: Option<Normalization>,
    pub(crate) device: DeviceSpec,
    /// The training backend ([`TrainNet::set_engine`](super::net::TrainNet::set_engine)); runs
    /// recorded before it existed read as `auto`.
    #[serde(default)]
    pub(crate) engine: Engine,
    /// What the run trains; runs recorded before localisation existed read as classification.
    #[serde(default)]
    pub(crate) task: Task,
    /// The box head of a localisation run.
    #[serde(default = "default_regression")]
    pub(crate) regression: Regression,
    /// A localisation run's training image set of the devkit.
    #[serde(default = "default_voc_split")]
    pub(crate) voc_split: String,
    /// A localisation run's validation image set, if any.
    #[serde(default)]
    pub(crate) val_split: Option<String>,
    /// Augmented variants per training image whose frozen-prefix outputs are computed once and
    /// cached (0: none; every epoch augments afresh). Runs recorded before it existed read 0.
    #[serde(default)]
    pub(crate) cache_frozen: usize,
    /// Where the frozen cache is kept between runs (none: in memory only).
    #[serde(default)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// What fc6 does to its input; runs recorded before it existed read the identity.
    #[serde(default)]
    pub(crate) fc6_input: Fc6Input,
    /// With [`Init::Resume`]: the new epoch limit, if one was given.
    #[serde(skip)]
    pub(crate) new_epochs: Option<usize>,
}

fn default_regression() -> Regression {
    Regression::Pcr
}

fn default_voc_split() -> String {
    "trainval".into()
}

/// What a run trains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Image classification: a folder of class folders or a labelled list; softmax
    /// cross-entropy; validated by the top-1 error of dense evaluation (the paper's Sect. 3).
    #[default]
    Classify,
    /// Object localisation: a VOC-format devkit with box annotations; a box-regression head
    /// ([`Regression`]) under the Euclidean loss; validated by the ground-truth-class
    /// localisation error on the central crop (the paper's Sect. 4 / App. A).
    Localise,
}

impl std::str::FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "classify" => Ok(Task::Classify),
            "localise" | "localize" => Ok(Task::Localise),
            _ => Err(Error::param(
                Param::Task,
                format!("`{s}`: expected classify or localise"),
            )),
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Classify => "classify",
            Task::Localise => "localise",
        })
    }
}

impl TrainValidParams {
    /// The dataset.
    pub fn data(&self) -> &Path {
        &self.data
    }
    /// The run folder.
    pub fn out(&self) -> &Path {
        &self.out
    }
    /// Where the weights start.
    pub fn init(&self) -> &Init {
        &self.init
    }
    /// Channel-width divisor.
    pub fn width_div(&self) -> usize {
        self.width_div
    }
    /// Training crop side.
    pub fn crop(&self) -> u32 {
        self.crop
    }
    /// Epoch limit.
    pub fn epochs(&self) -> usize {
        self.epochs
    }
    /// What the run trains.
    pub fn task(&self) -> Task {
        self.task
    }
    /// The validation's test scale Q ([`TrainParams::test_scale`], or the paper's default).
    pub fn test_scale(&self) -> u32 {
        self.test_scale
            .unwrap_or_else(|| self.scale.default_test_scale())
    }
}

/// Parameters of a training run with the paper's recipe (Section 3.1): a builder. Call
/// [`check`](TrainParams::check) for the only way to [`TrainValidParams`], and
/// [`super::Trainer::start`] to start (or resume) the run.
///
/// ```
/// use vggfeat::train::TrainParams;
/// use vggfeat::train::net::Init;
/// let p = TrainParams::new()
///     .data("101_ObjectCategories")
///     .out("runs/a16")
///     .config(Some("A".parse()?))
///     .width_div(16)
///     .crop(96)
///     .check()?;
/// assert_eq!(p.test_scale(), 256);
/// // A resumed run continues exactly; only the epoch limit may change.
/// let resume = TrainParams::new().init(Init::Resume("runs/a16".into()));
/// assert!(resume.clone().epochs(60).check().is_ok());
/// assert!(resume.lr(0.1).check().is_err());
/// # Ok::<(), vggfeat::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    p: TrainValidParams,
    /// The parameters set, in order (a resumed run refuses all but its epoch limit).
    given: Vec<Param>,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self::new()
    }
}

impl From<TrainValidParams> for TrainParams {
    /// Checked parameters back as a builder (nothing marked as given).
    fn from(p: TrainValidParams) -> Self {
        TrainParams {
            p,
            given: Vec::new(),
        }
    }
}

/// Declares the builder's setters: each sets one field and marks its [`Param`] as given.
macro_rules! setters {
    ($($(#[$m:meta])* $name:ident($($field:ident).+: $ty:ty) => $param:ident;)+) => {
        impl TrainParams {
            $(
                $(#[$m])*
                pub fn $name(mut self, v: $ty) -> Self {
                    self.p.$($field).+ = v;
                    self.given.push(Param::$param);
                    self
                }
            )+
        }
    };
}

setters! {
    /// Where the weights start: [`Init::Scratch`] (default), [`Init::Shallower`] (the paper's
    /// initialisation of deeper nets), [`Init::Pretrained`] (fine-tuning), or [`Init::Resume`]
    /// (continue a run exactly; then only [`TrainParams::epochs`] may be given).
    init(init: Init) => Init;
    /// Configuration A .. E. Required, except with [`Init::Pretrained`], where it defaults to
    /// the checkpoint's (and must equal it).
    config(config: Option<ConfigName>) => Config;
    /// How random layers are drawn. Default [`InitScheme::Paper`] (N(0, 0.01^2), zero biases,
    /// as the paper; deep or narrow nets from scratch need [`InitScheme::He`]).
    init_scheme(init_scheme: InitScheme) => InitScheme;
    /// Keep the layers up to this one fixed (`conv5_3`, `pool4`, `fc7`; see
    /// [`super::net::frozen_layers`]); fc8 cannot be frozen. Default none.
    freeze_through(freeze_through: Option<LayerName>) => FreezeThrough;
    /// With a frozen prefix ([`TrainParams::freeze_through`]): draw this many augmented
    /// variants of each training image once (scale, crop, flip and colour shift, seeded per
    /// image and variant), compute the frozen layers' outputs for them when the run starts or
    /// resumes, keep them in memory, and let every epoch pick one variant per image (seeded per
    /// epoch and image). Each epoch then costs only the trainable layers; augmentation is
    /// limited to the cached variants. Needs the fast CPU backend and no dropout among the
    /// frozen layers. Default 0 (no cache: every epoch augments afresh); 0..=64.
    cache_frozen(cache_frozen: usize) => CacheFrozen;
    /// With [`TrainParams::cache_frozen`]: a folder where the cache is also saved
    /// (`frozen-<key>.safetensors`), and read back by any run whose cache would hold the same
    /// values: the key is a SHA-256 of the frozen layers' weights, the training images' bytes
    /// and boxes, the augmentation, seed, variants, crop and micro-batch. A resumed run or a
    /// second head on the same frozen body then skips the frozen layers entirely. Default none
    /// (in memory only).
    cache_dir(cache_dir: Option<PathBuf>) => CacheDir;
    /// Channel widths divided by this (1 = the paper's). Default 1; 1..=64.
    width_div(width_div: usize) => WidthDiv;
    /// Width of fc6 and fc7. Default: the pretrained checkpoint's, else 4096 / `width_div`;
    /// >= 1.
    fc_width(fc_width: Option<usize>) => FcWidth;
    /// Side of the square training crop; a multiple of 32 (so every max-pool input is even and
    /// pool5 is `crop / 32` square, fc6's kernel side). Default 224 (the paper's).
    crop(crop: u32) => Crop;
    /// Training scale S, fixed or jittered; S >= `crop`. Default 256.
    scale(scale: TrainScale) => TrainScale;
    /// Test scale Q of the validation; >= `crop`. Default: the paper's, Q = S or
    /// (Smin + Smax) / 2 ([`TrainScale::default_test_scale`]).
    test_scale(test_scale: Option<u32>) => TestScale;
    /// Images per SGD step (the effective batch). Default 256 (the paper's); at least 1.
    batch(batch: usize) => Batch;
    /// Images per forward/backward pass; gradients of a batch's micro-batches are summed.
    /// Default 16; 1..=`batch`.
    micro_batch(micro_batch: usize) => MicroBatch;
    /// Initial learning rate. Default 0.01; finite, > 0.
    lr(sgd.lr: f64) => Lr;
    /// Momentum (Adam's first beta). Default 0.9; in [0, 1).
    momentum(sgd.momentum: f64) => Momentum;
    /// The update rule: [`Method::Sgd`] (default, the paper's) or [`Method::Adam`] (PyTorch's,
    /// betas (momentum, 0.999), eps 1e-8, weight decay in the gradient; see
    /// [`super::optim`]).
    optimizer(sgd.method: Method) => Optimizer;
    /// What fc6 does to its input before the product: [`Fc6Input::Identity`] (default, the
    /// paper's) or [`Fc6Input::Sqrt`], the element-wise square root of pool5 (a power
    /// normalisation for frozen features of a scale far from ImageNet's; needs every conv
    /// frozen, `freeze_through` pool5 or later). Saved in the checkpoints' metadata, so that
    /// every command that loads the net applies it.
    fc6_input(fc6_input: Fc6Input) => Fc6Input;
    /// L2 weight decay. Default 5e-4; finite, >= 0.
    weight_decay(sgd.weight_decay: f64) => WeightDecay;
    /// Apply weight decay to biases too. Default false (Caffe's `decay_mult: 0` for biases).
    decay_biases(decay_biases: bool) => DecayBiases;
    /// Dropout probability after fc6 and fc7. Default 0.5; in [0, 1).
    dropout(dropout: f32) => Dropout;
    /// Learning-rate division factor on a plateau. Default 10; > 1.
    lr_factor(lr_factor: f64) => LrFactor;
    /// Epochs without a better validation top-1 error before the rate is divided. Default 2;
    /// at least 1.
    patience(patience: usize) => Patience;
    /// Rate decreases before the next plateau stops training. Default 3 (the paper's).
    max_decreases(max_decreases: usize) => MaxDecreases;
    /// Random horizontal flips. Default true.
    flip(flip: bool) => Flip;
    /// Standard deviation of the colour-shift coefficients; 0 disables the colour shift.
    /// Default 0.1 (AlexNet's); finite, >= 0.
    colour_std(colour_std: f32) => ColourStd;
    /// Training images sampled (seeded) to fit the colour PCA. Default 256; at least 1.
    pca_images(pca_images: usize) => PcaImages;
    /// Training images per class. Default 30; at least 1.
    train_per_class(split.train_per_class: usize) => TrainPerClass;
    /// Validation images per class at most (`None`: all the rest). Default 50; at least 1.
    val_per_class(split.test_per_class: Option<usize>) => ValPerClass;
    /// Seed of the train/validation split. Default 0.
    split_seed(split.seed: u64) => SplitSeed;
    /// Classes to leave out (e.g. `BACKGROUND_Google`). Default none.
    drop_classes(split.drop_classes: Vec<String>) => DropClasses;
    /// Use only the first N classes (sorted, after the dropped ones). Default all; at least 2.
    max_classes(max_classes: Option<usize>) => MaxClasses;
    /// Seed of the initial weights and of every random stream. Default 0.
    seed(seed: u64) => Seed;
    /// Device. Default the CPU.
    device(device: DeviceSpec) => Device;
    /// The code that computes each step's gradients: [`Engine::Auto`] (default: the fast CPU
    /// backend on the CPU, candle's autograd on CUDA and for A-LRN), [`Engine::Fast`] or
    /// [`Engine::Candle`] (the reference).
    engine(engine: Engine) => Engine;
    /// What to train: [`Task::Classify`] (default) or [`Task::Localise`] (the dataset is then a
    /// VOC-format devkit with `Annotations/`).
    task(task: Task) => Task;
    /// Localisation: the box head, [`Regression::Pcr`] (default; the paper's better one) or
    /// [`Regression::Scr`].
    regression(regression: Regression) => Regression;
    /// Localisation: the devkit's training image set (`ImageSets/Main/<name>.txt`). Default
    /// `trainval`.
    voc_split(voc_split: String) => VocSplit;
    /// Localisation: the devkit's validation image set. Default none: the schedule then
    /// watches the training loss and every epoch's weights count as the best so far when it
    /// falls.
    val_split(val_split: Option<String>) => ValSplit;
}

impl TrainParams {
    /// The paper's recipe with its defaults (see each setter); the dataset and the run folder
    /// are still to be given.
    pub fn new() -> Self {
        TrainParams {
            p: TrainValidParams {
                data: PathBuf::new(),
                out: PathBuf::new(),
                init: Init::Scratch,
                config: None,
                init_scheme: InitScheme::Paper,
                freeze_through: None,
                cache_frozen: 0,
                cache_dir: None,
                fc6_input: Fc6Input::Identity,
                width_div: 1,
                fc_width: None,
                crop: 224,
                scale: TrainScale::Fixed(256),
                test_scale: None,
                batch: 256,
                micro_batch: 16,
                sgd: OptimParams::default(),
                decay_biases: false,
                dropout: 0.5,
                lr_factor: 10.0,
                patience: 2,
                max_decreases: 3,
                epochs: 74,
                flip: true,
                colour_std: 0.1,
                pca_images: 256,
                split: SplitParams {
                    splits: 1,
                    ..SplitParams::default()
                },
                max_classes: None,
                seed: 0,
                preprocess: None,
                device: DeviceSpec::Cpu,
                engine: Engine::Auto,
                task: Task::Classify,
                regression: Regression::Pcr,
                voc_split: default_voc_split(),
                val_split: None,
                new_epochs: None,
            },
            given: Vec::new(),
        }
    }

    /// The dataset: a folder of class folders, or a labelled list file (see
    /// [`crate::dataset::Dataset::open`]). Required for a new run.
    pub fn data(mut self, data: impl Into<PathBuf>) -> Self {
        self.p.data = data.into();
        self.given.push(Param::Data);
        self
    }

    /// The run folder (created; must not hold a run already). Required for a new run.
    pub fn out(mut self, out: impl Into<PathBuf>) -> Self {
        self.p.out = out.into();
        self.given.push(Param::Out);
        self
    }

    /// Most epochs (the run may stop earlier on the schedule); for a resumed run, its new
    /// limit. Default 74 (the paper's 370K iterations of 256); at least 1.
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.p.epochs = epochs;
        self.p.new_epochs = Some(epochs);
        self.given.push(Param::Epochs);
        self
    }

    /// Input convention. Default [`Preprocess::Auto`]: the pretrained checkpoint's, else
    /// torchvision.
    pub fn preprocess(mut self, preprocess: Preprocess) -> Self {
        self.p.preprocess = preprocess.named();
        self.given.push(Param::Preprocess);
        self
    }

    /// Checks every range given in the setters' docs, without I/O. A resumed run
    /// ([`Init::Resume`]) continues exactly: anything but its epoch limit is refused, naming the
    /// parameter.
    pub fn check(self) -> Result<TrainValidParams> {
        if let Init::Resume(dir) = &self.p.init {
            if let Some(p) = self
                .given
                .iter()
                .find(|p| !matches!(p, Param::Init | Param::Epochs))
            {
                return Err(Error::param(
                    *p,
                    format!(
                        "resume:{} continues that run exactly; only the epoch limit may be given \
                         (its parameters are in {})",
                        dir.display(),
                        dir.join("params.json").display()
                    ),
                ));
            }
            if self.p.new_epochs == Some(0) {
                return Err(Error::param(Param::Epochs, "must be at least 1"));
            }
            return Ok(self.p);
        }
        let p = &self.p;
        let bad = |param: Param, m: String| Err(Error::param(param, m));
        if p.data.as_os_str().is_empty() {
            return bad(Param::Data, "the dataset is required for a new run".into());
        }
        if p.out.as_os_str().is_empty() {
            return bad(
                Param::Out,
                "the run folder is required for a new run".into(),
            );
        }
        if p.config.is_none() && !matches!(p.init, Init::Pretrained(_)) {
            return bad(
                Param::Config,
                "a configuration is required (A, A-LRN, B, C, D or E)".into(),
            );
        }
        if !(1..=64).contains(&p.width_div) {
            return bad(
                Param::WidthDiv,
                format!("{} must be in 1..=64", p.width_div),
            );
        }
        if p.fc_width == Some(0) {
            return bad(Param::FcWidth, "must be at least 1".into());
        }
        if p.crop < 32 || !p.crop.is_multiple_of(32) {
            return bad(
                Param::Crop,
                format!(
                    "{} must be a positive multiple of 32 (e.g. 64, 96, 128, 224): pool5 is then \
                     crop/32 square, fc6's kernel side, and every max-pool input is even, which \
                     candle's max-pool gradient requires",
                    p.crop
                ),
            );
        }
        if p.scale.min() < p.crop {
            return bad(
                Param::TrainScale,
                format!("training scale {} is below the crop {}", p.scale, p.crop),
            );
        }
        let q = p.test_scale();
        if q < p.crop {
            return bad(
                Param::TestScale,
                format!(
                    "test scale {q} is below the crop {} (the smallest input of the dense head)",
                    p.crop
                ),
            );
        }
        if p.batch == 0 {
            return bad(Param::Batch, "must be at least 1".into());
        }
        if p.micro_batch == 0 || p.micro_batch > p.batch {
            return bad(
                Param::MicroBatch,
                format!(
                    "need 1 <= micro-batch ({}) <= batch ({})",
                    p.micro_batch, p.batch
                ),
            );
        }
        p.sgd.check()?;
        if !(0.0..1.0).contains(&p.dropout) {
            return bad(Param::Dropout, format!("{} must be in [0, 1)", p.dropout));
        }
        Plateau::new(p.sgd.lr, p.lr_factor, p.patience, p.max_decreases)?;
        if p.epochs == 0 {
            return bad(Param::Epochs, "must be at least 1".into());
        }
        if !(p.colour_std.is_finite() && p.colour_std >= 0.0) {
            return bad(Param::ColourStd, format!("{} must be >= 0", p.colour_std));
        }
        if p.pca_images == 0 {
            return bad(Param::PcaImages, "must be at least 1".into());
        }
        if p.split.train_per_class == 0 {
            return bad(Param::TrainPerClass, "must be at least 1".into());
        }
        if p.split.test_per_class == Some(0) {
            return bad(
                Param::ValPerClass,
                "must be at least 1 (or unlimited)".into(),
            );
        }
        if p.max_classes.is_some_and(|n| n < 2) {
            return bad(Param::MaxClasses, "must be at least 2".into());
        }
        if let (Some(l), Some(c)) = (p.freeze_through, p.config) {
            net::frozen_layers(c, l)?;
        }
        if p.fc6_input == Fc6Input::Sqrt
            && !p
                .freeze_through
                .is_some_and(|l| l == LayerName::Pool(5) || l.is_head())
        {
            return bad(
                Param::Fc6Input,
                "sqrt needs every conv frozen (freeze_through pool5 or later): no gradient is \
                 taken through the square root"
                    .into(),
            );
        }
        if p.cache_frozen > 64 {
            return bad(
                Param::CacheFrozen,
                format!("{} variants per image: at most 64", p.cache_frozen),
            );
        }
        if p.cache_dir.is_some() && p.cache_frozen == 0 {
            return bad(
                Param::CacheDir,
                "keeps the frozen cache: give the variants to cache (cache_frozen)".into(),
            );
        }
        if p.cache_frozen > 0 {
            if p.freeze_through.is_none() {
                return bad(
                    Param::CacheFrozen,
                    "caches the frozen layers' outputs: give the layers to freeze \
                     (freeze_through)"
                        .into(),
                );
            }
            if p.engine == Engine::Candle {
                return bad(
                    Param::CacheFrozen,
                    "needs the fast training backend (engine auto or fast), not candle".into(),
                );
            }
        }
        if p.task == Task::Classify
            && let Some(param) = self
                .given
                .iter()
                .find(|g| matches!(g, Param::Regression | Param::VocSplit | Param::ValSplit))
        {
            return bad(
                *param,
                "applies to localisation only (task localise)".into(),
            );
        }
        if p.task == Task::Localise
            && let Some(param) = self.given.iter().find(|g| {
                matches!(
                    g,
                    Param::TrainPerClass
                        | Param::ValPerClass
                        | Param::SplitSeed
                        | Param::DropClasses
                        | Param::MaxClasses
                )
            })
        {
            return bad(
                *param,
                "applies to classification only: a localisation run takes its images from the \
                 devkit's image sets (voc_split, val_split)"
                    .into(),
            );
        }
        for (param, name) in [
            (Param::VocSplit, Some(&p.voc_split)),
            (Param::ValSplit, p.val_split.as_ref()),
        ] {
            if let Some(n) = name
                && (n.is_empty() || n.contains(['/', '\\']))
            {
                return bad(param, format!("`{n}` is not an image-set name"));
            }
        }
        Ok(self.p)
    }
}

/// What the parameters resolved to, recorded in `params.json` beside them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Resolved {
    /// Configuration.
    pub config: ConfigName,
    /// fc6/fc7 width.
    pub fc_width: usize,
    /// fc6 kernel side (crop / 32).
    pub fc6_kernel: usize,
    /// Class names, in fc8 order.
    pub classes: Vec<String>,
    /// Training images.
    pub train_images: usize,
    /// Validation images.
    pub val_images: usize,
    /// Test scale of the validation.
    pub test_scale: u32,
    /// Input convention.
    pub preprocess: Normalization,
    /// Frozen layers.
    pub frozen: Vec<String>,
    /// What the initialisation copied and drew.
    pub init: InitReport,
    /// Trainable parameters (elements).
    pub trainable_params: usize,
    /// Split parameters actually used (with the classes `max_classes` left out).
    pub split: SplitParams,
    /// What was not used, and why (localisation: annotation files, odd boxes, objects of unknown
    /// classes), one `path: reason` per entry; also in the run folder's `problems.txt`.
    #[serde(default)]
    pub problems: Vec<String>,
    /// Localisation: fc8's initial biases, the mean training box per class (PCR) or overall
    /// (SCR), as centre x, centre y, width, height in units of the crop; empty otherwise.
    #[serde(default)]
    pub box_bias: Vec<[f32; 4]>,
    /// vggfeat's version.
    pub version: String,
}

/// `params.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// As given.
    pub params: TrainValidParams,
    /// As resolved.
    pub resolved: Resolved,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The run folder.
    pub dir: PathBuf,
    /// The latest weights (`model.safetensors` in the run folder).
    pub latest: PathBuf,
    /// The weights of the best epoch (`best.safetensors`).
    pub best: PathBuf,
    /// Epochs completed in total.
    pub epochs: usize,
    /// Why it stopped before `epochs`, if it did.
    pub stopped: Option<String>,
    /// Epoch with the lowest validation top-1 error.
    pub best_epoch: usize,
    /// That error.
    pub best_top1_err: f64,
    /// The top-5 error of that epoch.
    pub best_top5_err: f64,
    /// Seconds spent, summed over epochs (all sessions).
    pub seconds: f64,
}
