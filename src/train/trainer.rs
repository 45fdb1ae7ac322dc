//! A training run: starting one (dataset, split, initial weights, colour PCA, `params.json`),
//! resuming one exactly from its folder, and saving after each epoch.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use candle_core::Device;

use super::augment::{Augment, fit_colour_pca};
use super::checkpoint::{self, RunDir, RunState};
use super::localise::{self, BoxData};
use super::log::{self, EpochMetrics};
use super::net::{self, Init, NetShape, TrainNet};
use super::optim::Optimizer;
use super::params::{Resolved, RunRecord, Summary, Task, TrainParams, TrainValidParams};
use super::rng::RNG_NOTE;
use super::schedule::Plateau;
use crate::dataset::{Dataset, Split, SplitParams, sample_split};
use crate::error::{Error, Param, Result};
use crate::image_io::DecodeOptions;
use crate::model::Fc6Input;
use crate::model::checkpoint::{expected_normalization, meta};
use crate::model::config::{IMAGENET_FC_WIDTH, LayerName};
use crate::util::{Progress, read_json, write_json};

/// A training run in progress.
pub struct Trainer {
    pub(super) record: RunRecord,
    pub(super) dir: RunDir,
    pub(super) ds: Dataset,
    pub(super) split: Split,
    pub(super) net: TrainNet,
    pub(super) opt: Optimizer,
    pub(super) state: RunState,
    pub(super) augment: Augment,
    pub(super) device: Device,
    pub(super) decode: DecodeOptions,
    pub(super) metadata: BTreeMap<String, String>,
    /// A localisation run's boxes (`None` for classification).
    pub(super) boxes: Option<BoxData>,
    /// The frozen layers' outputs (`cache_frozen`), built by the first epoch this process runs.
    pub(super) cache: Option<super::cache::FrozenCache>,
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
    /// Starts the run `params` describe: a new one ([`Trainer::new`]), or, with
    /// [`Init::Resume`], the run in that folder ([`Trainer::resume`], with the new epoch limit if
    /// one was given).
    pub fn start(params: &TrainValidParams) -> Result<Self> {
        match &params.init {
            Init::Resume(dir) => Self::resume(dir, params.new_epochs),
            _ => Self::new(params.clone()),
        }
    }

    /// Starts a new run: lists the dataset, samples and writes the split, builds the initial
    /// weights, fits the colour PCA, and writes `params.json`. Errors if `params.out` already
    /// holds a run (`state.json`).
    pub fn new(params: TrainValidParams) -> Result<Self> {
        if let Init::Resume(dir) = &params.init {
            return Self::resume(dir, params.new_epochs);
        }
        let device = params.device.open()?;
        let dir = RunDir::new(&params.out);
        if dir.state().exists() {
            return Err(Error::param(
                Param::Out,
                format!(
                    "{} already holds a run; resume it (init resume:{0}) or choose another run \
                     folder",
                    dir.root.display()
                ),
            ));
        }
        std::fs::create_dir_all(&dir.root).map_err(|e| Error::io(&dir.root, e))?;

        // Dataset and split (classification), or the devkit's boxes (localisation).
        let (ds, split, split_params, boxes) = match params.task {
            Task::Classify => {
                let (ds, split, split_params) = classification_split(&params)?;
                split.write_csv(&ds, &dir.split())?;
                (ds, split, split_params, None)
            }
            Task::Localise => {
                let (ds, split, b) = localise::load(
                    &params.data,
                    &params.voc_split,
                    params.val_split.as_deref(),
                    params.regression,
                )?;
                b.write(&ds, &split, &dir.root)?;
                (ds, split, params.split.clone(), Some(b))
            }
        };

        // Initial weights.
        let source = match &params.init {
            Init::Shallower(p) | Init::Pretrained(p) => {
                Some(crate::model::checkpoint::load(p, &Device::Cpu)?)
            }
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
            classes: boxes.as_ref().map_or(split.classes.len(), BoxData::outputs),
        };
        let (mut w, init_report) = net::initial_weights(
            &params.init,
            source.as_ref(),
            shape,
            params.init_scheme,
            params.seed,
        )?;
        // Localisation: a random fc8 starts at the mean training box (train::localise).
        let mut box_bias = Vec::new();
        if let Some(b) = &boxes
            && init_report.random.iter().any(|l| l == "fc8")
        {
            box_bias = b.mean_targets(params.scale.default_test_scale(), params.crop);
            let fc8 = w
                .head
                .as_mut()
                .and_then(|h| h.fc8.as_mut())
                .ok_or_else(|| Error::Internal("a localisation net without fc8".into()))?;
            let flat: Vec<f32> = box_bias.iter().flatten().copied().collect();
            fc8.bias = candle_core::Tensor::from_vec(flat, fc8.bias.shape(), fc8.bias.device())?;
        }
        // fc6's input transform: recorded in the weights, so that the plan, the checkpoints and
        // every command loading them apply it. A pretrained fc6 keeps the transform it was
        // trained with, or the run is refused.
        if let Some(src) = &source
            && !init_report.random.iter().any(|l| l == "fc6")
            && src.head.is_some()
        {
            let trained = Fc6Input::of(src)?;
            if trained != params.fc6_input {
                return Err(Error::param(
                    Param::Fc6Input,
                    format!(
                        "{} has an fc6 trained on input `{trained}`; this run gives fc6 `{}`",
                        src.path.display(),
                        params.fc6_input
                    ),
                ));
            }
        }
        if params.fc6_input != Fc6Input::Identity {
            w.metadata
                .insert(meta::FC6_INPUT.into(), params.fc6_input.to_string());
        }
        let norm = params
            .preprocess
            .map_or_else(|| expected_normalization(&w).map(|n| n.0), Ok)?;
        let frozen = match params.freeze_through {
            Some(l) => net::frozen_layers(config, l)?,
            None => Vec::new(),
        };
        let mut net = TrainNet::new(
            w,
            &device,
            frozen.clone(),
            params.dropout,
            params.decay_biases,
        )?;
        net.set_engine(params.engine)?;
        let opt = Optimizer::new(net.params().to_vec(), params.sgd)?;

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
            problems: boxes.as_ref().map_or_else(Vec::new, |b| b.problems.clone()),
            box_bias,
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let record = RunRecord { params, resolved };
        write_json(&dir.params(), &record)?;
        Self::assemble(record, dir, ds, split, boxes, net, opt, state, device)
    }

    /// Reopens the run in `dir` after its last completed epoch: parameters, split, weights,
    /// momentum buffers, schedule and history are read back, so that [`Trainer::run`] continues
    /// exactly as the uninterrupted run would have. `epochs` replaces the run's epoch limit
    /// (nothing else can change). Errors name the file that is missing or inconsistent.
    pub fn resume(dir: &Path, epochs: Option<usize>) -> Result<Self> {
        let dir = RunDir::new(dir);
        let mut record: RunRecord = read_json(&dir.params())?;
        record.params.out = dir.root.clone();
        let mut p = TrainParams::from(record.params);
        if let Some(e) = epochs {
            p = p.epochs(e);
        }
        record.params = p.check()?;
        let state: RunState = read_json(&dir.state())?;
        let device = record.params.device.open()?;
        let p = &record.params;
        let (ds, split, boxes) = match p.task {
            Task::Classify => {
                let ds = Dataset::open(&p.data)?;
                let split = Split::read_csv(&dir.split(), &ds)?;
                (ds, split, None)
            }
            Task::Localise => {
                let (ds, split, b) =
                    localise::load(&p.data, &p.voc_split, p.val_split.as_deref(), p.regression)?;
                if split.train.len() != record.resolved.train_images
                    || split.test.len() != record.resolved.val_images
                {
                    return Err(Error::Data {
                        path: p.data.clone(),
                        reason: format!(
                            "its annotations changed since the run started: {} training and {} \
                             validation samples now, {} and {} in {}",
                            split.train.len(),
                            split.test.len(),
                            record.resolved.train_images,
                            record.resolved.val_images,
                            dir.params().display()
                        ),
                    });
                }
                (ds, split, Some(b))
            }
        };
        if split.classes != record.resolved.classes {
            return Err(Error::Data {
                path: dir.split(),
                reason: "its classes differ from params.json's".into(),
            });
        }
        let mut w = crate::model::checkpoint::load(&dir.model(), &Device::Cpu)?;
        let model_epoch = checkpoint::epoch_of(&dir.model(), &w.metadata)?;
        let (buffers, optim_epoch) = checkpoint::load_optimizer(&dir.optimizer())?;
        checkpoint::check_epochs(&dir, state.epoch, model_epoch, optim_epoch)?;
        w.metadata.remove(meta::EPOCH);
        let frozen = record
            .resolved
            .frozen
            .iter()
            .map(|l| l.parse())
            .collect::<Result<Vec<LayerName>>>()?;
        let mut net = TrainNet::new(
            w,
            &device,
            frozen,
            record.params.dropout,
            record.params.decay_biases,
        )?;
        net.set_engine(record.params.engine)?;
        let mut opt = Optimizer::new(net.params().to_vec(), record.params.sgd)?;
        opt.set_lr(state.schedule.lr)?;
        opt.set_buffers(&buffers).map_err(|e| Error::Data {
            path: dir.optimizer(),
            reason: e.to_string(),
        })?;
        Self::assemble(record, dir, ds, split, boxes, net, opt, state, device)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        record: RunRecord,
        dir: RunDir,
        ds: Dataset,
        split: Split,
        boxes: Option<BoxData>,
        net: TrainNet,
        opt: Optimizer,
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
        metadata.insert(meta::PREPROCESS.to_string(), r.preprocess.to_string());
        metadata.insert(meta::CONFIG.into(), r.config.to_string());
        metadata.insert(meta::CROP.into(), p.crop.to_string());
        metadata.insert(
            meta::CLASSES.into(),
            serde_json::to_string(&r.classes).expect("strings serialise"),
        );
        if let Some(b) = &boxes {
            metadata.insert(meta::BOX_HEAD.into(), b.regression.to_string());
        }
        if p.fc6_input != Fc6Input::Identity {
            metadata.insert(meta::FC6_INPUT.into(), p.fc6_input.to_string());
        }
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
            boxes,
            cache: None,
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

    /// What was not used, and why (see [`Resolved::problems`]).
    pub fn problems(&self) -> &[String] {
        &self.record.resolved.problems
    }

    /// Trains until the epoch limit or the schedule's stop, checkpointing after every epoch,
    /// and calls `on_epoch` with each epoch's metrics. `progress` hears of every epoch's images
    /// and running loss. Subnormal floats are flushed to zero meanwhile
    /// ([`crate::util::FlushSubnormals`]).
    pub fn run(
        &mut self,
        progress: &dyn Progress,
        mut on_epoch: impl FnMut(&EpochMetrics),
    ) -> Result<Summary> {
        // Subnormal weights, gradients and moments otherwise slow the epochs down as they
        // spread (util::subnormals).
        let _flush = crate::util::FlushSubnormals::set();
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
            .min_by(|a, b| a.watched().total_cmp(&b.watched()));
        Summary {
            dir: self.dir.root.clone(),
            latest: self.dir.model(),
            best: self.dir.best(),
            epochs: self.state.epoch,
            stopped: self.state.stopped.clone(),
            best_epoch: best.map_or(0, |m| m.epoch),
            best_top1_err: best.map_or(f64::NAN, |m| m.val_top1_err),
            best_top5_err: best.map_or(f64::NAN, |m| m.val_top5_err),
            seconds: self.state.history.iter().map(|m| m.seconds).sum(),
        }
    }

    /// Writes the checkpoint, the state, the log and the plot; `t0` is the epoch's start (the
    /// epoch's seconds include the saving of the weights).
    pub(super) fn save(&mut self, improved: bool, t0: Instant) -> Result<()> {
        let e = self.state.epoch;
        let w = self.net.snapshot()?;
        checkpoint::save_model(&w, &self.dir.model(), e, &self.metadata)?;
        if improved {
            checkpoint::save_model(&w, &self.dir.best(), e, &self.metadata)?;
        }
        checkpoint::save_optimizer(&self.opt.buffers()?, &self.dir.optimizer(), e)?;
        self.state.history.last_mut().expect("pushed").seconds = t0.elapsed().as_secs_f64();
        write_json(&self.dir.state(), &self.state)?;
        log::write_csv(
            &self.state.history,
            self.boxes.is_some(),
            &self.dir.metrics_csv(),
        )?;
        let r = &self.record.resolved;
        let what = match &self.boxes {
            None => format!("{} classes", r.classes.len()),
            Some(b) => format!("{} box head, {} classes", b.regression, r.classes.len()),
        };
        let title = format!(
            "VGG {} /{} crop {} ({what})",
            r.config, self.record.params.width_div, self.record.params.crop,
        );
        log::plot_svg(
            &self.state.history,
            self.boxes.is_some(),
            &title,
            &self.dir.metrics_svg(),
        )
    }
}

/// A classification run's dataset and its sampled split, with the split parameters used
/// (`max_classes` turned into dropped classes). Errors on fewer than 2 classes.
fn classification_split(params: &TrainValidParams) -> Result<(Dataset, Split, SplitParams)> {
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
    Ok((ds, split, split_params))
}
