//! Training VGG networks with the paper's recipe (Section 3.1): from scratch, from a shallower
//! trained net, or fine-tuning a pretrained one; and resuming any of these exactly.
//!
//! The recipe: mini-batch SGD with momentum 0.9 and weight decay 5e-4 ([`optim`]), dropout 0.5
//! after fc6 and fc7, learning rate 1e-2 divided by 10 when the validation accuracy stops
//! improving and stopping after the third decrease ([`schedule`]), batches of 256 made of
//! micro-batches by gradient accumulation, and augmentation by scale (fixed or jittered),
//! random crop, horizontal flip and AlexNet's colour shift ([`augment`]). Each epoch ends with
//! the validation top-1 and top-5 errors under the paper's dense test protocol (the same
//! [`crate::classify::class_probs`] that `vggfeat classify` uses) and a checkpoint
//! ([`checkpoint`]); the run folder has the split, parameters, metrics CSV and plot.
//!
//! Inputs are square crops of side `crop = 32 k`; fc6 is a k x k convolution over pool5 (7x7 at
//! the paper's 224). Narrow, small-crop networks (`width_div`, `crop`) run the same code path.
//!
//! Randomness: every random draw comes from a ChaCha8 stream whose 32-byte seed is
//! `SHA-256("vggfeat-train" || purpose || 0 || seed LE || a LE || b LE)` ([`stream`]): the
//! epoch's order (`order`, epoch), each sample's augmentation (`augment`, epoch, image), each
//! micro-batch's dropout masks (`dropout`, epoch, micro-batch), the colour PCA's images
//! (`pca`). The random initial weights come from
//! [`crate::model::weights::VggWeights::random_with_fc6`] with the seed.
//! There is therefore no generator state to save: the seed and the epoch counter determine the
//! rest, and a resumed run computes exactly what an uninterrupted one would.
//!
//! On the CPU, convolutions run through [`conv`] (im2col + GEMM both ways). Two settings of the
//! environment, not of this crate, matter on small machines: `RAYON_NUM_THREADS` (candle's GEMM
//! and element-wise ops read it; on 2 busy cores 1 thread was faster than 2), and, with glibc,
//! `MALLOC_MMAP_THRESHOLD_=1000000000` (keeps the per-step buffers out of fresh `mmap`s: about
//! 1.5-2x faster steps in `examples/bench_train.rs`, A /8 at crop 96).
//!
//! ```no_run
//! # fn main() -> vggfeat::Result<()> {
//! use vggfeat::train::{TrainParams, Trainer};
//! let params = TrainParams {
//!     data: "101_ObjectCategories".into(),
//!     out: "runs/a16".into(),
//!     config: Some("A".parse()?),
//!     width_div: 16,
//!     crop: 96,
//!     scale: "112:144".parse()?,
//!     batch: 64,
//!     epochs: 10,
//!     ..TrainParams::default()
//! };
//! let mut t = Trainer::new(params)?;
//! let summary = t.run(true, |m| println!("epoch {}: top-1 error {:.3}", m.epoch, m.val_top1_err))?;
//! println!("best top-1 error {:.3}", summary.best_top1_err);
//! # Ok(()) }
//! ```

pub mod augment;
pub mod checkpoint;
pub mod conv;
pub mod net;
pub mod optim;
pub mod report;
pub mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{D, Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::classify::{check_scale, class_probs};
use crate::dataset::{Dataset, Split, SplitParams, sample_split};
use crate::error::{Error, Result};
use crate::image_io::{DecodeOptions, load_rgb_with};
use crate::model::config::{ConfigName, IMAGENET_FC_WIDTH, LayerName};
use crate::model::weights::{self, InitScheme};
use crate::model::{Engine, Vgg, expected_normalization, parse_device};
use crate::preprocess::Normalization;
use augment::{Augment, ColourPca, TrainScale};
use checkpoint::{RunDir, RunState};
use net::{Init, InitReport, NetShape, TrainNet};
use optim::{GradAccum, Sgd, SgdParams};
use report::EpochMetrics;
use schedule::{Decision, Plateau};

/// Parameters of a training run. Build with [`TrainParams::default`] and struct update; the
/// trainer calls [`TrainParams::check`]. Saved as `params.json` in the run folder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainParams {
    /// The dataset (a folder of class folders, or a labelled list file; see [`Dataset::open`]).
    /// Required.
    pub data: PathBuf,
    /// The run folder (created; must not hold a run already). Required.
    pub out: PathBuf,
    /// Where the weights start. Default [`Init::Scratch`]. [`Init::Resume`] is handled by
    /// [`Trainer::resume`], not [`Trainer::new`].
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
        parse_device(&self.device).map(|_| ())
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

/// A seeded ChaCha8 stream for `purpose` and two indices (see the module docs).
pub fn stream(seed: u64, purpose: &str, a: u64, b: u64) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(b"vggfeat-train");
    h.update(purpose.as_bytes());
    h.update([0u8]);
    h.update(seed.to_le_bytes());
    h.update(a.to_le_bytes());
    h.update(b.to_le_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finalize());
    ChaCha8Rng::from_seed(out)
}

/// Micro-batches the decoding thread prepares ahead of the network.
pub const PREFETCH: usize = 2;

const RNG_NOTE: &str = "ChaCha8 streams seeded by SHA-256(\"vggfeat-train\", purpose, seed, \
                        epoch, index): the seed and the epoch counter are the whole state";

/// A training run in progress.
pub struct Trainer {
    record: RunRecord,
    dir: RunDir,
    ds: Dataset,
    split: Split,
    net: TrainNet,
    opt: Sgd,
    state: RunState,
    augment: Augment,
    device: Device,
    decode: DecodeOptions,
    metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("dir", &self.dir.root)
            .field("epoch", &self.state.epoch)
            .field("net", &self.net)
            .finish()
    }
}

impl Trainer {
    /// Starts a new run: lists the dataset, samples and writes the split, builds the initial
    /// weights, fits the colour PCA, and writes `params.json`. Errors if `params.out` already
    /// holds a run (`state.json`).
    pub fn new(params: TrainParams) -> Result<Self> {
        if matches!(params.init, Init::Resume(_)) {
            return Err(Error::InvalidParam(
                "resume a run with Trainer::resume".into(),
            ));
        }
        params.check()?;
        let device = parse_device(&params.device)?;
        let dir = RunDir::new(&params.out);
        if dir.state().exists() {
            return Err(Error::InvalidParam(format!(
                "{} already holds a run; resume it with --init resume:{0} or choose another \
                 --out",
                dir.root.display()
            )));
        }
        std::fs::create_dir_all(&dir.root).map_err(|e| Error::io(&dir.root, e))?;

        // Dataset and split.
        let ds = Dataset::open(&params.data)?;
        let mut split_params = SplitParams {
            splits: 1,
            ..params.split.clone()
        };
        if let Some(n) = params.max_classes {
            let kept: Vec<&String> = ds
                .classes
                .iter()
                .filter(|c| !split_params.drop_classes.contains(c))
                .collect();
            let extra: Vec<String> = kept.iter().skip(n).map(|c| c.to_string()).collect();
            split_params.drop_classes.extend(extra);
        }
        let split = sample_split(&ds, &split_params, 0)?;
        if split.classes.len() < 2 {
            return Err(Error::Data {
                path: params.data.clone(),
                reason: format!(
                    "{} class(es); training needs at least 2",
                    split.classes.len()
                ),
            });
        }
        split.write_csv(&ds, &dir.split())?;

        // Initial weights.
        let source = match &params.init {
            Init::Shallower(p) | Init::Pretrained(p) => Some(weights::load(p, &Device::Cpu)?),
            _ => None,
        };
        let config = match (params.config, &source) {
            (Some(c), _) => c,
            (None, Some(s)) => s.config,
            (None, None) => unreachable!("checked"),
        };
        let fc_width = params.fc_width.unwrap_or_else(|| {
            match (&params.init, source.as_ref().and_then(|s| s.head.as_ref())) {
                (Init::Pretrained(_), Some(h)) => h.fc7.weight.dims()[0],
                _ => (IMAGENET_FC_WIDTH / params.width_div).max(1),
            }
        });
        let shape = NetShape {
            config,
            width_div: params.width_div,
            fc_width,
            fc6_kernel: (params.crop / 32) as usize,
            classes: split.classes.len(),
        };
        let (w, init_report) = net::initial_weights(
            &params.init,
            source.as_ref(),
            shape,
            params.init_scheme,
            params.seed,
        )?;
        let norm = params
            .preprocess
            .unwrap_or_else(|| expected_normalization(&w).0);
        let frozen = match &params.freeze_through {
            Some(l) => net::frozen_layers(config, l.parse()?)?,
            None => Vec::new(),
        };
        let net = TrainNet::new(
            w,
            &device,
            frozen.clone(),
            params.dropout,
            params.decay_biases,
        )?;
        let opt = Sgd::new(net.params().to_vec(), params.sgd)?;

        // Colour PCA from a seeded sample of training images.
        let decode = DecodeOptions::default();
        let colour_pca = if params.colour_std > 0.0 {
            Some(fit_colour_pca(
                &ds,
                &split,
                params.pca_images,
                params.seed,
                &decode,
            )?)
        } else {
            None
        };
        let state = RunState {
            epoch: 0,
            schedule: Plateau::new(
                params.sgd.lr,
                params.lr_factor,
                params.patience,
                params.max_decreases,
            )?,
            colour_pca,
            history: Vec::new(),
            stopped: None,
            rng: RNG_NOTE.into(),
        };
        let resolved = Resolved {
            config,
            fc_width,
            fc6_kernel: shape.fc6_kernel,
            classes: split.classes.clone(),
            train_images: split.train.len(),
            val_images: split.test.len(),
            test_scale: params.test_scale(),
            preprocess: norm,
            frozen: frozen.iter().map(|l| l.to_string()).collect(),
            init: init_report,
            trainable_params: net.params().iter().map(|p| p.var.elem_count()).sum(),
            split: split_params,
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let record = RunRecord { params, resolved };
        checkpoint::write_json(&dir.params(), &record)?;
        Self::assemble(record, dir, ds, split, net, opt, state, device)
    }

    /// Reopens the run in `dir` after its last completed epoch: parameters, split, weights,
    /// momentum buffers, schedule and history are read back, so that [`Trainer::run`] continues
    /// exactly as the uninterrupted run would have. `epochs` replaces the run's epoch limit
    /// (nothing else can change). Errors name the file that is missing or inconsistent.
    pub fn resume(dir: &Path, epochs: Option<usize>) -> Result<Self> {
        let dir = RunDir::new(dir);
        let mut record: RunRecord = checkpoint::read_json(&dir.params())?;
        if let Some(e) = epochs {
            record.params.epochs = e;
        }
        record.params.out = dir.root.clone();
        record.params.check()?;
        let state: RunState = checkpoint::read_json(&dir.state())?;
        let device = parse_device(&record.params.device)?;
        let ds = Dataset::open(&record.params.data)?;
        let split = Split::read_csv(&dir.split(), &ds)?;
        if split.classes != record.resolved.classes {
            return Err(Error::Data {
                path: dir.split(),
                reason: "its classes differ from params.json's".into(),
            });
        }
        let mut w = weights::load(&dir.model(), &Device::Cpu)?;
        let model_epoch = checkpoint::epoch_of(&dir.model(), &w.metadata)?;
        let (buffers, optim_epoch) = checkpoint::load_optimizer(&dir.optimizer())?;
        checkpoint::check_epochs(&dir, state.epoch, model_epoch, optim_epoch)?;
        w.metadata.remove(checkpoint::EPOCH_KEY);
        let frozen = record
            .resolved
            .frozen
            .iter()
            .map(|l| l.parse())
            .collect::<Result<Vec<LayerName>>>()?;
        let net = TrainNet::new(
            w,
            &device,
            frozen,
            record.params.dropout,
            record.params.decay_biases,
        )?;
        let mut opt = Sgd::new(net.params().to_vec(), record.params.sgd)?;
        opt.set_lr(state.schedule.lr)?;
        opt.set_buffers(&buffers).map_err(|e| Error::Data {
            path: dir.optimizer(),
            reason: e.to_string(),
        })?;
        Self::assemble(record, dir, ds, split, net, opt, state, device)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        record: RunRecord,
        dir: RunDir,
        ds: Dataset,
        split: Split,
        net: TrainNet,
        opt: Sgd,
        state: RunState,
        device: Device,
    ) -> Result<Self> {
        let p = &record.params;
        let r = &record.resolved;
        let augment = Augment {
            scale: p.scale,
            crop: p.crop,
            flip: p.flip,
            colour: state.colour_pca.clone().map(|c| (c, p.colour_std)),
            norm: r.preprocess,
        };
        let mut metadata = BTreeMap::new();
        metadata.insert("preprocess".to_string(), r.preprocess.to_string());
        metadata.insert("vggfeat.config".into(), r.config.to_string());
        metadata.insert("vggfeat.crop".into(), p.crop.to_string());
        metadata.insert(
            "vggfeat.classes".into(),
            serde_json::to_string(&r.classes).expect("strings serialise"),
        );
        Ok(Trainer {
            record,
            dir,
            ds,
            split,
            net,
            opt,
            state,
            augment,
            device,
            decode: DecodeOptions::default(),
            metadata,
        })
    }

    /// The run's parameters and what they resolved to.
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// The run folder.
    pub fn dir(&self) -> &RunDir {
        &self.dir
    }

    /// The state after the last completed epoch.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// The network being trained.
    pub fn net(&self) -> &TrainNet {
        &self.net
    }

    /// Trains until the epoch limit or the schedule's stop, checkpointing after every epoch,
    /// and calls `on_epoch` with each epoch's metrics. `progress` shows a bar per epoch on a
    /// terminal (hidden otherwise).
    pub fn run(
        &mut self,
        progress: bool,
        mut on_epoch: impl FnMut(&EpochMetrics),
    ) -> Result<Summary> {
        while self.state.stopped.is_none() && self.state.epoch < self.record.params.epochs {
            let m = self.epoch(progress)?;
            on_epoch(&m);
        }
        Ok(self.summary())
    }

    fn summary(&self) -> Summary {
        let best = self
            .state
            .history
            .iter()
            .min_by(|a, b| a.val_top1_err.total_cmp(&b.val_top1_err));
        Summary {
            dir: self.dir.root.clone(),
            epochs: self.state.epoch,
            stopped: self.state.stopped.clone(),
            best_epoch: best.map_or(0, |m| m.epoch),
            best_top1_err: best.map_or(f64::NAN, |m| m.val_top1_err),
            best_top5_err: best.map_or(f64::NAN, |m| m.val_top5_err),
            seconds: self.state.history.iter().map(|m| m.seconds).sum(),
        }
    }

    /// Trains one epoch, validates, applies the schedule and checkpoints.
    fn epoch(&mut self, progress: bool) -> Result<EpochMetrics> {
        let t0 = Instant::now();
        let e = self.state.epoch + 1;
        let lr = self.opt.lr();
        let (train_loss, train_top1_err) = self.train_epoch(e, progress)?;
        let (val_top1_err, val_top5_err) = self.validate()?;
        let improved = self
            .state
            .history
            .iter()
            .all(|m| val_top1_err < m.val_top1_err);
        match self.state.schedule.observe(val_top1_err) {
            Decision::Continue => {}
            Decision::Decreased(new_lr) => self.opt.set_lr(new_lr)?,
            Decision::Stop => {
                self.state.stopped = Some(format!(
                    "validation top-1 error stopped improving after {} learning-rate \
                     decreases",
                    self.state.schedule.decreases
                ))
            }
        }
        self.state.epoch = e;
        let mut m = EpochMetrics {
            epoch: e,
            train_loss,
            train_top1_err,
            val_top1_err,
            val_top5_err,
            lr,
            seconds: 0.0,
        };
        self.state.history.push(m.clone());
        self.save(improved, t0)?;
        m.seconds = self.state.history.last().expect("pushed").seconds;
        Ok(m)
    }

    /// Writes the checkpoint, the state, the log and the plot; `t0` is the epoch's start (the
    /// epoch's seconds include the saving of the weights).
    fn save(&mut self, improved: bool, t0: Instant) -> Result<()> {
        let e = self.state.epoch;
        let w = self.net.snapshot()?;
        checkpoint::save_model(&w, &self.dir.model(), e, &self.metadata)?;
        if improved {
            checkpoint::save_model(&w, &self.dir.best(), e, &self.metadata)?;
        }
        checkpoint::save_optimizer(&self.opt.buffers(), &self.dir.optimizer(), e)?;
        self.state.history.last_mut().expect("pushed").seconds = t0.elapsed().as_secs_f64();
        checkpoint::write_json(&self.dir.state(), &self.state)?;
        report::write_csv(&self.state.history, &self.dir.metrics_csv())?;
        let r = &self.record.resolved;
        let title = format!(
            "VGG {} /{} crop {} ({} classes)",
            r.config,
            self.record.params.width_div,
            self.record.params.crop,
            r.classes.len()
        );
        report::plot_svg(&self.state.history, &title, &self.dir.metrics_svg())
    }

    /// One pass over the training split; returns (mean loss, top-1 error) as seen in training.
    /// A second thread decodes and augments the next micro-batches (up to [`PREFETCH`] ahead)
    /// while this one runs the network; samples depend only on their streams, not on timing.
    fn train_epoch(&mut self, e: usize, progress: bool) -> Result<(f64, f64)> {
        let p = &self.record.params;
        let seed = p.seed;
        let mut order: Vec<usize> = (0..self.split.train.len()).collect();
        order.shuffle(&mut stream(seed, "order", e as u64, 0));
        let bar = progress_bar(progress, order.len() as u64, &format!("epoch {e}"));
        let crop = p.crop as usize;
        // (batch size, micro-batch positions), in training order.
        let micros: Vec<(usize, &[usize])> = order
            .chunks(p.batch)
            .flat_map(|b| b.chunks(p.micro_batch).map(move |m| (b.len(), m)))
            .collect();
        let (ds, split, augment, decode) = (&self.ds, &self.split, &self.augment, &self.decode);
        let (net, opt, device) = (&self.net, &mut self.opt, &self.device);
        let (mut loss_sum, mut wrong, mut seen) = (0f64, 0usize, 0usize);
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<f32>>>(PREFETCH);
            let work = &micros;
            scope.spawn(move || {
                for (_, micro) in work {
                    let mut data = Vec::with_capacity(micro.len() * 3 * crop * crop);
                    let r = micro.iter().try_for_each(|&pos| {
                        let img = load_rgb_with(&ds.items[split.train[pos]].path, decode)?;
                        let mut rng = stream(seed, "augment", e as u64, pos as u64);
                        data.extend(augment.sample(&img, &mut rng));
                        Ok(())
                    });
                    if tx.send(r.map(|()| data)).is_err() {
                        return; // the consumer stopped on an error
                    }
                }
            });
            let mut acc = GradAccum::new(opt.params().len());
            let mut in_batch = 0;
            for (mi, &(batch_len, micro)) in micros.iter().enumerate() {
                let data = rx.recv().map_err(|_| {
                    Error::InvalidParam("the decoding thread stopped unexpectedly".into())
                })??;
                let n = micro.len();
                let x = Tensor::from_vec(data, (n, 3, crop, crop), device)?;
                let labels: Vec<u32> = micro
                    .iter()
                    .map(|&pos| split.train_labels[pos] as u32)
                    .collect();
                let y = Tensor::new(labels.as_slice(), device)?;
                let mut drng = stream(seed, "dropout", e as u64, mi as u64);
                let logits = net.forward(&x, Some(&mut drng))?;
                let ce = candle_nn::loss::cross_entropy(&logits, &y)?;
                let ce_val = f64::from(ce.to_scalar::<f32>()?);
                if !ce_val.is_finite() {
                    return Err(Error::InvalidParam(format!(
                        "training diverged in epoch {e} (loss {ce_val}); lower the learning \
                         rate or use --init-scheme he"
                    )));
                }
                // Mean over the batch: each micro-batch's mean loss weighted by its share.
                let scaled = (ce * (n as f64 / batch_len as f64))?;
                acc.add(opt.params(), &scaled.backward()?)?;
                let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
                wrong += pred.iter().zip(&labels).filter(|(a, b)| a != b).count();
                loss_sum += ce_val * n as f64;
                seen += n;
                bar.inc(n as u64);
                bar.set_message(format!("loss {:.4}", loss_sum / seen as f64));
                in_batch += n;
                if in_batch == batch_len {
                    opt.step(&acc)?;
                    acc = GradAccum::new(opt.params().len());
                    in_batch = 0;
                }
            }
            Ok(())
        })?;
        bar.finish_and_clear();
        Ok((loss_sum / seen as f64, wrong as f64 / seen as f64))
    }

    /// Top-1 and top-5 error on the validation split, dense evaluation at the test scale.
    fn validate(&self) -> Result<(f64, f64)> {
        let vgg = Vgg::new(self.net.snapshot()?, &self.device, Engine::Auto)?;
        let q = self.record.resolved.test_scale;
        check_scale(&vgg, q)?;
        let norm = self.record.resolved.preprocess;
        let results: Vec<(bool, bool)> = self
            .split
            .test
            .par_iter()
            .zip(&self.split.test_labels)
            .map(|(&i, &label)| {
                let img = load_rgb_with(&self.ds.items[i].path, &self.decode)?;
                let probs = class_probs(&vgg, &img, q, norm)?;
                // The label's rank as `classify` ranks: by probability, ties to the lower index
                // (so a network that scores every class alike is not rewarded).
                let p = probs[label];
                let above = probs
                    .iter()
                    .enumerate()
                    .filter(|&(c, &v)| v > p || (v == p && c < label))
                    .count();
                Ok((above >= 1, above >= 5))
            })
            .collect::<Result<_>>()?;
        let n = results.len().max(1) as f64;
        let top1 = results.iter().filter(|r| r.0).count() as f64 / n;
        let top5 = results.iter().filter(|r| r.1).count() as f64 / n;
        Ok((top1, top5))
    }
}

fn progress_bar(show: bool, len: u64, prefix: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    // stderr's draw target hides itself when stderr is not a terminal.
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (eta {eta})",
        )
        .expect("valid template"),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// Fits the colour PCA on `n` training images chosen by the `pca` stream (every 7th pixel).
fn fit_colour_pca(
    ds: &Dataset,
    split: &Split,
    n: usize,
    seed: u64,
    decode: &DecodeOptions,
) -> Result<ColourPca> {
    let mut pick: Vec<usize> = split.train.clone();
    pick.shuffle(&mut stream(seed, "pca", 0, 0));
    pick.truncate(n);
    pick.sort_unstable();
    let images: Vec<image::RgbImage> = pick
        .par_iter()
        .map(|&i| load_rgb_with(&ds.items[i].path, decode))
        .collect::<Result<_>>()?;
    ColourPca::fit(&images, 7)
}
