//! One epoch of a run: the training pass (a decoding thread prepares augmented micro-batches
//! ahead of the network; gradients accumulate to the batch; SGD steps), the validation under the
//! paper's dense test protocol, and the schedule's decision.

use std::time::Instant;

use candle_core::{D, Tensor};
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::log::EpochMetrics;
use super::loss::Targets;
use super::optim::GradAccum;
use super::rng::stream;
use super::schedule::Decision;
use super::trainer::Trainer;
use crate::classify::{check_scale, class_probs};
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
    /// A second thread decodes and augments the next micro-batches (up to [`PREFETCH`] ahead),
    /// with their box targets for localisation, while this one runs the network; samples depend
    /// only on their streams, not on timing.
    fn train_epoch(&mut self, e: usize, progress: &dyn Progress) -> Result<(f64, f64)> {
        let p = &self.record.params;
        let seed = p.seed;
        let mut order: Vec<usize> = (0..self.split.train.len()).collect();
        order.shuffle(&mut stream(seed, "order", e as u64, 0));
        progress.begin(&format!("epoch {e}"), "images", order.len() as u64);
        let crop = p.crop as usize;
        // (batch size, micro-batch positions), in training order.
        let micros: Vec<(usize, &[usize])> = order
            .chunks(p.batch)
            .flat_map(|b| b.chunks(p.micro_batch).map(move |m| (b.len(), m)))
            .collect();
        let (ds, split, augment, decode) = (&self.ds, &self.split, &self.augment, &self.decode);
        let (net, opt, device, boxes) = (&self.net, &mut self.opt, &self.device, &self.boxes);
        let (mut loss_sum, mut wrong, mut seen) = (0f64, 0usize, 0usize);
        type Micro = (Vec<f32>, Vec<[f32; 4]>);
        std::thread::scope(|scope| -> Result<()> {
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
            let mut acc = GradAccum::new(opt.params().len());
            let mut in_batch = 0;
            for (mi, &(batch_len, micro)) in micros.iter().enumerate() {
                let (data, box_targets) = rx.recv().map_err(|_| {
                    Error::Worker("the training decode thread stopped unexpectedly".into())
                })??;
                let n = micro.len();
                let x = Tensor::from_vec(data, (n, 3, crop, crop), device)?;
                let labels: Vec<u32> = micro
                    .iter()
                    .map(|&pos| split.train_labels[pos] as u32)
                    .collect();
                let mut drng = stream(seed, "dropout", e as u64, mi as u64);
                let targets = match boxes {
                    None => Targets::Classes(labels.clone()),
                    Some(b) => Targets::Boxes {
                        boxes: box_targets.clone(),
                        classes: (b.regression == Regression::Pcr).then(|| labels.clone()),
                    },
                };
                // Mean over the batch: each micro-batch's mean loss weighted by its share.
                let step =
                    net.backprop(&x, &targets, Some(&mut drng), n as f64 / batch_len as f64)?;
                let ce_val = f64::from(step.loss);
                if !ce_val.is_finite() {
                    return Err(Error::Diverged(format!(
                        "loss {ce_val} in epoch {e}; lower the learning rate or use the he \
                         init scheme"
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
                loss_sum += ce_val * n as f64;
                seen += n;
                progress.advance(n as u64);
                progress.status(&format!("loss {:.4}", loss_sum / seen as f64));
                in_batch += n;
                if in_batch == batch_len {
                    opt.step(&acc)?;
                    acc = GradAccum::new(opt.params().len());
                    in_batch = 0;
                }
            }
            Ok(())
        })?;
        progress.end();
        Ok((loss_sum / seen as f64, wrong as f64 / seen as f64))
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
