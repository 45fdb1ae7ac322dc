//! The parameters of a training run (checked without I/O), what they resolved to, and how the
//! run ended. Saved as `params.json` in the run folder.

use std::path::PathBuf;

use super::augment::TrainScale;
use super::net::{self, Init, InitReport};
use super::optim::SgdParams;
use super::schedule::Plateau;
use crate::dataset::SplitParams;
use crate::error::{Error, Result};
use crate::model::DeviceSpec;
use crate::model::InitScheme;
use crate::model::config::{ConfigName, LayerName};
use crate::preprocess::Normalization;

/// Parameters of a training run. Build with [`TrainParams::default`] and struct update; the
/// trainer calls [`TrainParams::check`]. Saved as `params.json` in the run folder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainParams {
    /// The dataset (a folder of class folders, or a labelled list file; see [`crate::dataset::Dataset::open`]).
    /// Required.
    pub data: PathBuf,
    /// The run folder (created; must not hold a run already). Required.
    pub out: PathBuf,
    /// Where the weights start. Default [`Init::Scratch`]. [`Init::Resume`] is handled by
    /// [`super::Trainer::resume`], not [`super::Trainer::new`].
    pub init: Init,
    /// Configuration A .. E. Required, except with [`Init::Pretrained`], where it defaults to
    /// the checkpoint's (and must equal it).
    pub config: Option<ConfigName>,
    /// How random layers are drawn. Default [`InitScheme::Paper`] (N(0, 0.01^2), zero biases,
    /// as the paper; deep or narrow nets from scratch need [`InitScheme::He`]).
    pub init_scheme: InitScheme,
    /// Keep the layers up to this one fixed (`conv5_3`, `pool4`, `fc7`; see
    /// [`net::frozen_layers`]). Default none.
    pub freeze_through: Option<String>,
    /// Channel widths divided by this (1 = the paper's). Default 1; 1..=64.
    pub width_div: usize,
    /// Width of fc6 and fc7. Default: the pretrained checkpoint's, else 4096 / `width_div`.
    pub fc_width: Option<usize>,
    /// Side of the square training crop; a multiple of 32 (so every max-pool input is even and
    /// pool5 is `crop / 32` square, fc6's kernel side). Default 224 (the paper's).
    pub crop: u32,
    /// Training scale S, fixed or jittered; S >= `crop`. Default 256.
    pub scale: TrainScale,
    /// Test scale Q of the validation; >= `crop`. Default: the paper's, Q = S or
    /// (Smin + Smax) / 2 ([`TrainScale::default_test_scale`]).
    pub test_scale: Option<u32>,
    /// Images per SGD step (the effective batch). Default 256 (the paper's); at least 1.
    pub batch: usize,
    /// Images per forward/backward pass; gradients of a batch's micro-batches are summed.
    /// Default 16; 1..=`batch`.
    pub micro_batch: usize,
    /// Learning rate (initial), momentum and weight decay. Defaults 0.01, 0.9, 5e-4.
    pub sgd: SgdParams,
    /// Apply weight decay to biases too. Default false (Caffe's `decay_mult: 0` for biases).
    pub decay_biases: bool,
    /// Dropout probability after fc6 and fc7. Default 0.5; in [0, 1).
    pub dropout: f32,
    /// Learning-rate division factor on a plateau. Default 10; > 1.
    pub lr_factor: f64,
    /// Epochs without a better validation top-1 error before the rate is divided. Default 2;
    /// at least 1.
    pub patience: usize,
    /// Rate decreases before the next plateau stops training. Default 3 (the paper's).
    pub max_decreases: usize,
    /// Most epochs (the run may stop earlier on the schedule). Default 74 (the paper's
    /// 370K iterations of 256); at least 1.
    pub epochs: usize,
    /// Random horizontal flips. Default true.
    pub flip: bool,
    /// Standard deviation of the colour-shift coefficients; 0 disables the colour shift.
    /// Default 0.1 (AlexNet's); finite, >= 0.
    pub colour_std: f32,
    /// Training images sampled (seeded) to fit the colour PCA. Default 256; at least 1.
    pub pca_images: usize,
    /// The train/validation split: `train_per_class` images per class train, up to
    /// `test_per_class` validate; `seed` and `drop_classes` as in [`SplitParams`] (`splits` is
    /// ignored: split 0 is used). Default 30 / 50, seed 0.
    pub split: SplitParams,
    /// Use only the first N classes (sorted, after `drop_classes`). Default all; at least 2.
    pub max_classes: Option<usize>,
    /// Seed of the initial weights and of every random stream. Default 0.
    pub seed: u64,
    /// Input convention. Default: the pretrained checkpoint's, else torchvision.
    pub preprocess: Option<Normalization>,
    /// `cpu`, `cuda` or `cuda:N`. Default `cpu`.
    pub device: String,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            data: PathBuf::new(),
            out: PathBuf::new(),
            init: Init::Scratch,
            config: None,
            init_scheme: InitScheme::Paper,
            freeze_through: None,
            width_div: 1,
            fc_width: None,
            crop: 224,
            scale: TrainScale::Fixed(256),
            test_scale: None,
            batch: 256,
            micro_batch: 16,
            sgd: SgdParams::default(),
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
            device: "cpu".into(),
        }
    }
}

impl TrainParams {
    /// Checks every range given in the field docs, without I/O.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidParam(m));
        if self.data.as_os_str().is_empty() {
            return bad("the dataset path is required".into());
        }
        if self.out.as_os_str().is_empty() {
            return bad("the output folder is required".into());
        }
        if self.config.is_none() && !matches!(self.init, Init::Pretrained(_)) {
            return bad("--config is required (A, A-LRN, B, C, D or E)".into());
        }
        if !(1..=64).contains(&self.width_div) {
            return bad(format!(
                "width divisor {} must be in 1..=64",
                self.width_div
            ));
        }
        if self.fc_width == Some(0) {
            return bad("fc width must be at least 1".into());
        }
        if self.crop < 32 || !self.crop.is_multiple_of(32) {
            return bad(format!(
                "crop {} must be a positive multiple of 32 (e.g. 64, 96, 128, 224): pool5 is \
                 then crop/32 square, fc6's kernel side, and every max-pool input is even, which \
                 candle's max-pool gradient requires",
                self.crop
            ));
        }
        if self.scale.min() < self.crop {
            return bad(format!(
                "training scale {} is below the crop {}",
                self.scale, self.crop
            ));
        }
        let q = self.test_scale();
        if q < self.crop {
            return bad(format!(
                "test scale {q} is below the crop {} (the smallest input of the dense head)",
                self.crop
            ));
        }
        if self.batch == 0 || self.micro_batch == 0 || self.micro_batch > self.batch {
            return bad(format!(
                "need 1 <= micro-batch ({}) <= batch ({})",
                self.micro_batch, self.batch
            ));
        }
        self.sgd.check()?;
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout {} must be in [0, 1)", self.dropout));
        }
        Plateau::new(
            self.sgd.lr,
            self.lr_factor,
            self.patience,
            self.max_decreases,
        )?;
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if !(self.colour_std.is_finite() && self.colour_std >= 0.0) {
            return bad(format!("colour std {} must be >= 0", self.colour_std));
        }
        if self.pca_images == 0 {
            return bad("pca images must be at least 1".into());
        }
        if self.max_classes.is_some_and(|n| n < 2) {
            return bad("max classes must be at least 2".into());
        }
        if let Some(l) = &self.freeze_through {
            let layer: LayerName = l.parse()?;
            if let Some(c) = self.config {
                net::frozen_layers(c, layer)?;
            }
        }
        self.device.parse::<DeviceSpec>().map(|_| ())
    }

    /// The validation's test scale Q ([`TrainParams::test_scale`] field, or the paper's default).
    pub fn test_scale(&self) -> u32 {
        self.test_scale
            .unwrap_or_else(|| self.scale.default_test_scale())
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
    /// vggfeat's version.
    pub version: String,
}

/// `params.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// As given.
    pub params: TrainParams,
    /// As resolved.
    pub resolved: Resolved,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The run folder.
    pub dir: PathBuf,
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
