//! The training objectives: the paper's multinomial logistic regression for classification
//! (softmax cross-entropy, Sect. 3.1) and its Euclidean loss on box parameters for localisation
//! (Sect. 4 / App. A), with single-class (SCR: one box, 4 outputs) or per-class regression (PCR:
//! a box per class, 4 x C outputs, only the ground-truth class's box penalised).
//!
//! The Euclidean loss is Caffe's `EuclideanLoss`, as the paper's code base had it:
//! `1 / (2 N) * sum over the batch of |prediction - target|^2` over the penalised outputs, whose
//! gradient is `(prediction - target) / N`. Each objective exists twice: on slices for the fast
//! backend ([`Targets::loss_and_gradient`]) and as a candle expression for autograd
//! ([`Targets::candle_loss`]); tests pin both against each other and against PyTorch
//! (tests/train.rs, `scripts/reference_box_loss.py`).

use candle_core::Tensor;

use crate::error::{Error, Result};

/// What a micro-batch's outputs are compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// A class per image (softmax cross-entropy over the outputs).
    Classes(Vec<u32>),
    /// A box per image, as [`crate::localise::BoxParams`] (centre x, centre y, width, height in
    /// units of the crop), and with per-class regression the class whose 4 outputs it
    /// penalises (`None`: single-class regression, 4 outputs).
    Boxes {
        /// The target boxes.
        boxes: Vec<[f32; 4]>,
        /// The ground-truth classes (PCR), or `None` (SCR).
        classes: Option<Vec<u32>>,
    },
}

impl Targets {
    /// Images in the micro-batch.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(l) => l.len(),
            Targets::Boxes { boxes, .. } => boxes.len(),
        }
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class labels, for classification.
    pub fn labels(&self) -> Option<&[u32]> {
        match self {
            Targets::Classes(l) => Some(l),
            Targets::Boxes { .. } => None,
        }
    }

    /// Checks that `width` outputs per image fit these targets; returns, for boxes, each
    /// image's first penalised output.
    fn offsets(&self, width: usize) -> Result<Vec<usize>> {
        match self {
            Targets::Classes(labels) => {
                if let Some(l) = labels.iter().find(|&&l| l as usize >= width) {
                    return Err(Error::Internal(format!("label {l} for {width} classes")));
                }
                Ok(Vec::new())
            }
            Targets::Boxes { boxes, classes } => match classes {
                None if width == 4 => Ok(vec![0; boxes.len()]),
                None => Err(Error::Internal(format!(
                    "single-class box regression needs 4 outputs, the net has {width}"
                ))),
                Some(c) if c.len() == boxes.len() => c
                    .iter()
                    .map(|&c| {
                        let o = 4 * c as usize;
                        if !width.is_multiple_of(4) || o + 4 > width {
                            Err(Error::Internal(format!(
                                "per-class box of class {c} in {width} outputs"
                            )))
                        } else {
                            Ok(o)
                        }
                    })
                    .collect(),
                Some(c) => Err(Error::Internal(format!(
                    "{} classes for {} boxes",
                    c.len(),
                    boxes.len()
                ))),
            },
        }
    }

    /// The mean loss of `outputs` (N x `width`, row-major) and its gradient times `scale`.
    pub fn loss_and_gradient(
        &self,
        outputs: &[f32],
        width: usize,
        scale: f32,
    ) -> Result<(f32, Vec<f32>)> {
        let n = self.len();
        if n == 0 || outputs.len() != n * width {
            return Err(Error::Internal(format!(
                "{} outputs for {n} targets of width {width}",
                outputs.len()
            )));
        }
        let offsets = self.offsets(width)?;
        match self {
            Targets::Classes(labels) => Ok(softmax_cross_entropy(outputs, labels, width, scale)),
            Targets::Boxes { boxes, .. } => {
                let mut d = vec![0f32; outputs.len()];
                let mut total = 0f32;
                let k = scale / n as f32;
                for (i, (b, o)) in boxes.iter().zip(offsets).enumerate() {
                    let row = i * width + o;
                    for (j, t) in b.iter().enumerate() {
                        let r = outputs[row + j] - t;
                        total += r * r;
                        d[row + j] = r * k;
                    }
                }
                Ok((total / (2 * n) as f32, d))
            }
        }
    }

    /// The mean loss of `outputs` (N, width) as a candle expression (for autograd).
    pub fn candle_loss(&self, outputs: &Tensor) -> Result<Tensor> {
        let (n, width) = outputs.dims2()?;
        if n != self.len() || n == 0 {
            return Err(Error::Internal(format!(
                "{n} outputs for {} targets",
                self.len()
            )));
        }
        let offsets = self.offsets(width)?;
        let dev = outputs.device();
        match self {
            Targets::Classes(labels) => {
                let y = Tensor::new(labels.as_slice(), dev)?;
                Ok(candle_nn::loss::cross_entropy(outputs, &y)?)
            }
            Targets::Boxes { boxes, .. } => {
                // The targets and a 0/1 mask, spread over the outputs.
                let mut t = vec![0f32; n * width];
                let mut m = vec![0f32; n * width];
                for (i, (b, o)) in boxes.iter().zip(offsets).enumerate() {
                    t[i * width + o..i * width + o + 4].copy_from_slice(b);
                    m[i * width + o..i * width + o + 4].fill(1.0);
                }
                let t = Tensor::from_vec(t, (n, width), dev)?;
                let m = Tensor::from_vec(m, (n, width), dev)?;
                let r = ((outputs - t)? * m)?;
                Ok((r.sqr()?.sum_all()? / (2 * n) as f64)?)
            }
        }
    }
}

/// Mean softmax cross-entropy of `logits` (n x classes) against `labels` (checked to be below
/// `classes`), and its gradient times `scale`: `scale * (softmax - onehot) / n`.
fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    scale: f32,
) -> (f32, Vec<f32>) {
    let n = labels.len();
    let mut d = vec![0f32; logits.len()];
    let mut total = 0f32;
    for (i, (z, dz)) in logits
        .chunks_exact(classes)
        .zip(d.chunks_exact_mut(classes))
        .enumerate()
    {
        let label = labels[i] as usize;
        let max = z.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        let sum: f32 = z.iter().map(|v| (v - max).exp()).sum();
        total += max + sum.ln() - z[label];
        let k = scale / n as f32;
        for (o, v) in dz.iter_mut().zip(z) {
            *o = (v - max).exp() / sum * k;
        }
        dz[label] -= k;
    }
    (total / n as f32, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn cross_entropy_and_its_gradient_by_hand() {
        // logits (0, ln 3): softmax (1/4, 3/4); label 1: loss ln(4/3).
        let t = Targets::Classes(vec![1]);
        let (loss, d) = t.loss_and_gradient(&[0.0, 3f32.ln()], 2, 1.0).unwrap();
        assert!((loss - (4f32 / 3.0).ln()).abs() < 1e-6);
        assert!((d[0] - 0.25).abs() < 1e-6 && (d[1] + 0.25).abs() < 1e-6);
        let bad = Targets::Classes(vec![2]);
        assert!(bad.loss_and_gradient(&[0.0, 0.0], 2, 1.0).is_err());
    }

    #[test]
    fn euclidean_loss_by_hand() {
        // SCR, two images: residuals (1, 0, 0, 0) and (0, 2, 0, 0): loss (1 + 4) / (2 * 2).
        let t = Targets::Boxes {
            boxes: vec![[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]],
            classes: None,
        };
        let out = [1.5, 0.5, 1.0, 1.0, 0.0, 2.0, 0.5, 0.5];
        let (loss, d) = t.loss_and_gradient(&out, 4, 2.0).unwrap();
        assert_eq!(loss, 1.25);
        // Gradient (p - t) / N, times the scale 2.
        assert_eq!(d, [1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0]);
        // PCR with 2 classes: only the named class's 4 outputs count.
        let p = Targets::Boxes {
            boxes: vec![[0.5, 0.5, 1.0, 1.0]],
            classes: Some(vec![1]),
        };
        let out = [9.0, 9.0, 9.0, 9.0, 0.5, 0.5, 1.0, 3.0];
        let (loss, d) = p.loss_and_gradient(&out, 8, 1.0).unwrap();
        assert_eq!(loss, 2.0);
        assert_eq!(d, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]);
        // A class past the outputs, or SCR on 8 outputs, is refused.
        let far = Targets::Boxes {
            boxes: vec![[0.0; 4]],
            classes: Some(vec![2]),
        };
        assert!(far.loss_and_gradient(&out, 8, 1.0).is_err());
        assert!(t.loss_and_gradient(&[0.0; 16], 8, 1.0).is_err());
    }

    #[test]
    fn the_candle_losses_equal_the_slice_losses_and_gradients() {
        let dev = Device::Cpu;
        let out: Vec<f32> = (0..24).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
        let cases = [
            (Targets::Classes(vec![0, 5, 3]), 8),
            (
                Targets::Boxes {
                    boxes: vec![
                        [0.1, 0.2, 0.3, 0.4],
                        [0.5, 0.6, 0.7, 0.8],
                        [1.0, 0.0, 0.5, 0.25],
                    ],
                    classes: Some(vec![1, 0, 1]),
                },
                8,
            ),
            (
                Targets::Boxes {
                    boxes: vec![[0.1, 0.2, 0.3, 0.4]; 6],
                    classes: None,
                },
                4,
            ),
        ];
        for (t, width) in cases {
            let n = out.len() / width;
            let v = Var::from_vec(out.clone(), (n, width), &dev).unwrap();
            let l = t.candle_loss(v.as_tensor()).unwrap();
            let g = (l.clone() * 0.5).unwrap().backward().unwrap();
            let g: Vec<f32> = g
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let (loss, d) = t.loss_and_gradient(&out, width, 0.5).unwrap();
            assert!((l.to_scalar::<f32>().unwrap() - loss).abs() < 1e-5, "{t:?}");
            for (a, b) in g.iter().zip(&d) {
                assert!((a - b).abs() < 1e-6, "{t:?}: {a} vs {b}");
            }
        }
    }
}
