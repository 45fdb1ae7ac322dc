//! One epoch of a run: the training pass (a decoding thread prepares augmented micro-batches
//! ahead of the network; gradients accumulate to the batch; SGD steps), the validation under the
//! paper's dense test protocol, and the schedule's decision.

use std::time::Instant;

use candle_core::{D, Tensor};
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::cache::FrozenCache;
use super::localise::BoxData;
use super::log::EpochMetrics;
use super::loss::Targets;
use super::net::{Features, TrainNet};
use super::optim::GradAccum;
use super::optim::Optimizer;
use super::rng::stream;
use super::schedule::Decision;
use super::trainer::Trainer;
use crate::classify::{check_scale, class_probs};
use crate::dataset::Split;
use crate::error::{Error, Result};
use crate::image_io::load_item;
use crate::localise::Regression;
use crate::metrics::{label_rank, top_k_error};
use crate::model::{Engine, Vgg};
use crate::util::Progress;

/// Micro-batches the decoding thread prepares ahead of the network.
pub const PREFETCH: usize = 2;

impl Trainer {
    /// Trains one epoch, validates, applies the schedule and checkpoints.
    pub(super) fn epoch(&mut self, progress: &dyn Progress) -> Result<EpochMetrics> {
        let t0 = Instant::now();
        let e = self.state.epoch + 1;
        let lr = self.opt.lr();
        let (train_loss, train_top1_err) = self.train_epoch(e, progress)?;
        let (val_top1_err, val_top5_err, val_iou) = self.validate()?;
        let mut m = EpochMetrics {
            epoch: e,
            train_loss,
            train_top1_err,
            val_top1_err,
            val_top5_err,
            val_iou,
            lr,
            seconds: 0.0,
        };
        let now = m.watched();
        let improved = self.state.history.iter().all(|h| now < h.watched());
        match self.state.schedule.observe(now) {
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
        self.state.history.push(m.clone());
        self.save(improved, t0)?;
        m.seconds = self.state.history.last().expect("pushed").seconds;
        Ok(m)
    }

    /// One pass over the training split; returns (mean loss, top-1 error) as seen in training
    /// (for localisation, the share of samples whose box overlaps its target by IoU <= 0.5).
    /// Without a frozen cache, a second thread decodes and augments the next micro-batches (up
    /// to [`PREFETCH`] ahead), with their box targets for localisation, while this one runs the
    /// network; samples depend only on their streams, not on timing. With one
    /// ([`super::cache`]), each micro-batch is gathered from it.
    fn train_epoch(&mut self, e: usize, progress: &dyn Progress) -> Result<(f64, f64)> {
        if self.record.params.cache_frozen > 0 && self.cache.is_none() {
            self.cache = Some(FrozenCache::open(self, progress)?);
        }
        let p = &self.record.params;
        let seed = p.seed;
        let mut order: Vec<usize> = (0..self.split.train.len()).collect();
        order.shuffle(&mut stream(seed, "order", e as u64, 0));
        let crop = p.crop as usize;
        // (batch size, micro-batch positions), in training order.
        let micros: Vec<(usize, &[usize])> = order
            .chunks(p.batch)
            .flat_map(|b| b.chunks(p.micro_batch).map(move |m| (b.len(), m)))
            .collect();
        let (ds, split, augment, decode) = (&self.ds, &self.split, &self.augment, &self.decode);
        let mut pass = Pass {
            net: &self.net,
            opt: &mut self.opt,
            split,
            boxes: self.boxes.as_ref(),
            seed,
            e,
        };
        progress.begin(&format!("epoch {e}"), "images", order.len() as u64);
        let r = if let Some(cache) = &self.cache {
            pass.run(&micros, progress, |micro| {
                let (f, t) = cache.micro(seed, e, micro)?;
                Ok((Input::Frozen(f), t))
            })
        } else {
            let (device, boxes) = (&self.device, &self.boxes);
            std::thread::scope(|scope| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Micro>>(PREFETCH);
                let work = &micros;
                scope.spawn(move || {
                    for (_, micro) in work {
                        let mut data = Vec::with_capacity(micro.len() * 3 * crop * crop);
                        let mut targets = Vec::new();
                        let r = micro.iter().try_for_each(|&pos| {
                            let img = load_item(&ds.items[split.train[pos]], decode)?;
                            let mut rng = stream(seed, "augment", e as u64, pos as u64);
                            let (x, g) = augment.sample_with_geometry(&img, &mut rng);
                            data.extend(x);
                            if let Some(b) = boxes {
                                targets.push(g.box_target(&b.train[pos].1).0);
                            }
                            Ok(())
                        });
                        if tx.send(r.map(|()| (data, targets))).is_err() {
                            return; // the consumer stopped on an error
                        }
                    }
                });
                pass.run(&micros, progress, |micro| {
                    let (data, targets) = rx.recv().map_err(|_| {
                        Error::Worker("the training decode thread stopped unexpectedly".into())
                    })??;
                    let x = Tensor::from_vec(data, (micro.len(), 3, crop, crop), device)?;
                    Ok((Input::Images(x), targets))
                })
            })
        };
        progress.end();
        r
    }

    /// Top-1 and top-5 error on the validation split, dense evaluation at the test scale; for
    /// localisation, the ground-truth-class localisation error on the central crop at the test
    /// scale, NaN and the mean IoU (NaN, NaN, None without validation images).
    fn validate(&self) -> Result<(f64, f64, Option<f64>)> {
        let vgg = Vgg::new(self.net.snapshot()?, &self.device, Engine::Auto)?;
        let q = self.record.resolved.test_scale;
        check_scale(&vgg, q)?;
        let norm = self.record.resolved.preprocess;
        if let Some(b) = &self.boxes {
            if self.split.test.is_empty() {
                return Ok((f64::NAN, f64::NAN, None));
            }
            let (err, iou) = b.validate(&vgg, &self.ds, &self.split, q, norm, &self.decode)?;
            return Ok((err, f64::NAN, Some(iou)));
        }
        let ranks: Vec<usize> = self
            .split
            .test
            .par_iter()
            .zip(&self.split.test_labels)
            .map(|(&i, &label)| {
                let img = load_item(&self.ds.items[i], &self.decode)?;
                Ok(label_rank(&class_probs(&vgg, &img, q, norm)?, label))
            })
            .collect::<Result<_>>()?;
        Ok((top_k_error(&ranks, 1)?, top_k_error(&ranks, 5)?, None))
    }
}

/// A decoded, augmented micro-batch: its pixels (NCHW) and box targets.
type Micro = (Vec<f32>, Vec<[f32; 4]>);

/// What a micro-batch's step starts from.
enum Input {
    /// Augmented images (N, 3, crop, crop).
    Images(Tensor),
    /// Their frozen prefix's outputs, from the cache.
    Frozen(Features),
}

/// What one training pass works on.
struct Pass<'a> {
    net: &'a TrainNet,
    opt: &'a mut Optimizer,
    split: &'a Split,
    boxes: Option<&'a BoxData>,
    seed: u64,
    e: usize,
}

impl Pass<'_> {
    /// Runs every micro-batch (`next` gives its input and box targets, in order), summing
    /// gradients to the batch and stepping SGD; returns (mean loss, error as seen in training).
    fn run(
        &mut self,
        micros: &[(usize, &[usize])],
        progress: &dyn Progress,
        mut next: impl FnMut(&[usize]) -> Result<(Input, Vec<[f32; 4]>)>,
    ) -> Result<(f64, f64)> {
        let (e, boxes) = (self.e, self.boxes);
        let (mut loss_sum, mut wrong, mut seen) = (0f64, 0usize, 0usize);
        let mut acc = GradAccum::new(self.opt.params().len());
        let mut in_batch = 0;
        for (mi, &(batch_len, micro)) in micros.iter().enumerate() {
            let (input, box_targets) = next(micro)?;
            let n = micro.len();
            let labels: Vec<u32> = micro
                .iter()
                .map(|&pos| self.split.train_labels[pos] as u32)
                .collect();
            let mut drng = stream(self.seed, "dropout", e as u64, mi as u64);
            let targets = match boxes {
                None => Targets::Classes(labels.clone()),
                Some(b) => Targets::Boxes {
                    boxes: box_targets.clone(),
                    classes: (b.regression == Regression::Pcr).then(|| labels.clone()),
                },
            };
            // Mean over the batch: each micro-batch's mean loss weighted by its share.
            let share = n as f64 / batch_len as f64;
            let step = match input {
                Input::Images(x) => self.net.backprop(&x, &targets, Some(&mut drng), share)?,
                Input::Frozen(f) => {
                    self.net
                        .backprop_features(f, &targets, Some(&mut drng), share)?
                }
            };
            let loss = f64::from(step.loss);
            if !loss.is_finite() {
                return Err(Error::Diverged(format!(
                    "loss {loss} in epoch {e}; lower the learning rate or use the he init scheme"
                )));
            }
            acc.add_grads(step.grads)?;
            wrong += match boxes {
                None => {
                    let pred: Vec<u32> = step.logits.argmax(D::Minus1)?.to_vec1()?;
                    pred.iter().zip(&labels).filter(|(a, b)| a != b).count()
                }
                Some(b) => {
                    let out: Vec<Vec<f32>> = step.logits.to_vec2()?;
                    out.iter()
                        .zip(&labels)
                        .zip(&box_targets)
                        .filter(|((o, c), t)| b.misses(o, **c as usize, t))
                        .count()
                }
            };
            loss_sum += loss * n as f64;
            seen += n;
            progress.advance(n as u64);
            progress.status(&format!("loss {:.4}", loss_sum / seen as f64));
            in_batch += n;
            if in_batch == batch_len {
                self.opt.step(&acc)?;
                acc = GradAccum::new(self.opt.params().len());
                in_batch = 0;
            }
        }
        Ok((loss_sum / seen as f64, wrong as f64 / seen as f64))
    }
}
