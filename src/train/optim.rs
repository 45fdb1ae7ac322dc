//! Mini-batch SGD with momentum and weight decay over candle [`Var`]s, in PyTorch's formulation
//! (`torch.optim.SGD(momentum=mu, weight_decay=wd, dampening=0, nesterov=False)`):
//!
//! ```text
//! g = grad + wd * w        (wd only for parameters marked `decay`)
//! v = mu * v + g           (v starts at 0, so the first step has v = g, as in PyTorch)
//! w = w - lr * v
//! ```
//!
//! candle_nn's `SGD` has neither momentum nor weight decay, hence this module. Gradients of
//! several micro-batches are summed by [`GradAccum`] before one [`Sgd::step`] (gradient
//! accumulation to an effective batch). The momentum buffers are the optimiser's state, saved
//! and restored by the checkpoint code through [`Sgd::buffers`] and [`Sgd::set_buffers`].

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Tensor, Var};
use rayon::prelude::*;

use crate::error::{Error, Param, Result};

/// One trainable tensor.
#[derive(Debug, Clone)]
pub struct Trainable {
    /// A stable name (`conv1_1.weight`, `fc8.bias`), used for checkpointing the buffers.
    pub name: String,
    /// The variable.
    pub var: Var,
    /// Whether weight decay applies (weights yes, biases no, by default).
    pub decay: bool,
}

/// Hyper-parameters of [`Sgd`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgdParams {
    /// Learning rate. Default 0.01 (the paper's initial rate); must be > 0 and finite.
    pub lr: f64,
    /// Momentum mu. Default 0.9 (the paper's); in [0, 1).
    pub momentum: f64,
    /// L2 weight decay wd, added to the gradient as `wd * w`. Default 5e-4 (the paper's);
    /// >= 0 and finite.
    pub weight_decay: f64,
}

impl Default for SgdParams {
    fn default() -> Self {
        SgdParams {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
        }
    }
}

impl SgdParams {
    /// Checks the ranges given in the field docs.
    pub fn check(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::param(
                Param::Lr,
                format!("learning rate {} must be positive", self.lr),
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::param(
                Param::Momentum,
                format!("momentum {} must be in [0, 1)", self.momentum),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::param(
                Param::WeightDecay,
                format!("weight decay {} must be >= 0", self.weight_decay),
            ));
        }
        Ok(())
    }
}

/// Sums the gradients of several backward passes, one slot per [`Trainable`].
#[derive(Debug)]
pub struct GradAccum {
    sums: Vec<Option<Tensor>>,
}

impl GradAccum {
    /// An empty accumulator for `n` parameters.
    pub fn new(n: usize) -> Self {
        GradAccum {
            sums: vec![None; n],
        }
    }

    /// Adds the gradients of `grads` for `params` (parameters without a gradient are skipped).
    pub fn add(&mut self, params: &[Trainable], grads: &GradStore) -> Result<()> {
        for (slot, p) in self.sums.iter_mut().zip(params) {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                let g = g.detach();
                *slot = Some(match slot.take() {
                    None => g,
                    Some(s) => (s + g)?,
                });
            }
        }
        Ok(())
    }

    /// Adds one pass's gradients, one per parameter in order (as
    /// [`super::net::Backprop::grads`]); on the CPU the sums are updated in place.
    pub fn add_grads(&mut self, grads: Vec<Option<Tensor>>) -> Result<()> {
        if grads.len() != self.sums.len() {
            return Err(Error::Internal(format!(
                "{} gradients for {} parameters",
                grads.len(),
                self.sums.len()
            )));
        }
        for (slot, g) in self.sums.iter_mut().zip(grads) {
            let Some(g) = g else { continue };
            *slot = Some(match slot.take() {
                None => g,
                Some(s) if s.device().is_cpu() && s.is_contiguous() && g.is_contiguous() => {
                    s.inplace_op2(&g, &AddInPlace)?;
                    s
                }
                Some(s) => (s + g)?,
            });
        }
        Ok(())
    }

    /// The summed gradient of parameter `i`, if any backward pass reached it.
    pub fn get(&self, i: usize) -> Option<&Tensor> {
        self.sums.get(i).and_then(|s| s.as_ref())
    }
}

/// SGD with momentum and weight decay (see the module docs).
#[derive(Debug)]
pub struct Sgd {
    params: Vec<Trainable>,
    hp: SgdParams,
    buffers: Vec<Tensor>,
}

impl Sgd {
    /// An optimiser over `params` with zero momentum buffers.
    pub fn new(params: Vec<Trainable>, hp: SgdParams) -> Result<Self> {
        hp.check()?;
        let buffers = params
            .iter()
            .map(|p| p.var.as_tensor().zeros_like())
            .collect::<candle_core::Result<_>>()?;
        Ok(Sgd {
            params,
            hp,
            buffers,
        })
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[Trainable] {
        &self.params
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.hp.lr
    }

    /// Sets the learning rate (the schedule's decision); must be > 0.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        SgdParams { lr, ..self.hp }.check()?;
        self.hp.lr = lr;
        Ok(())
    }

    /// One update from accumulated gradients. A parameter no gradient reached keeps its value
    /// and momentum (as in PyTorch, which skips parameters whose `.grad` is None).
    pub fn step(&mut self, grads: &GradAccum) -> Result<()> {
        let SgdParams {
            lr,
            momentum,
            weight_decay,
        } = self.hp;
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = grads.get(i) else { continue };
            let w = p.var.as_tensor();
            let v = &self.buffers[i];
            if [w, g, v]
                .iter()
                .all(|t| t.device().is_cpu() && t.is_contiguous())
            {
                // Fused, in place: one pass for the momentum, one for the weights, the same
                // f32 operations in the same order as the tensor expressions below.
                let decay = if p.decay { weight_decay as f32 } else { 0.0 };
                v.inplace_op3(
                    w,
                    g,
                    &Momentum {
                        momentum: momentum as f32,
                        decay: (p.decay && weight_decay != 0.0).then_some(decay),
                    },
                )?;
                w.inplace_op2(v, &Descend { lr: lr as f32 })?;
                continue;
            }
            let w = w.detach();
            let g = if p.decay && weight_decay != 0.0 {
                (g + (&w * weight_decay)?)?
            } else {
                g.clone()
            };
            let v = ((&self.buffers[i] * momentum)? + g)?;
            let new_w = (&w - (&v * lr)?)?;
            p.var.set(&new_w)?;
            self.buffers[i] = v;
        }
        Ok(())
    }

    /// The momentum buffers, named like the parameters.
    pub fn buffers(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.buffers)
            .map(|(p, b)| (p.name.clone(), b.clone()))
            .collect()
    }

    /// Restores momentum buffers saved by [`Sgd::buffers`]: every parameter must have one, with
    /// its shape.
    pub fn set_buffers(
        &mut self,
        saved: &std::collections::BTreeMap<String, Tensor>,
    ) -> Result<()> {
        for (p, b) in self.params.iter().zip(self.buffers.iter_mut()) {
            let t = saved
                .get(&p.name)
                .ok_or_else(|| Error::Usage(format!("no momentum buffer for `{}`", p.name)))?;
            if t.dims() != p.var.dims() {
                return Err(Error::Usage(format!(
                    "momentum buffer `{}` has shape {:?}, the parameter {:?}",
                    p.name,
                    t.dims(),
                    p.var.dims()
                )));
            }
            *b = t.to_device(p.var.device())?;
        }
        if saved.len() != self.params.len() {
            return Err(Error::Usage(format!(
                "{} momentum buffers for {} parameters",
                saved.len(),
                self.params.len()
            )));
        }
        Ok(())
    }
}

/// The CPU values of an in-place op's operand (contiguous, f32).
fn values<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("an SGD operand is not contiguous".into()))?;
    Ok(&s.as_slice::<f32>()?[a..b])
}

fn values_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("an SGD operand is not contiguous".into()))?;
    match s {
        CpuStorage::F32(v) => Ok(&mut v[a..b]),
        _ => Err(candle_core::Error::Msg("SGD needs f32 tensors".into())),
    }
}

/// Elements per parallel task of the fused passes.
const PAR_CHUNK: usize = 1 << 16;

/// `sum += g`, in place.
struct AddInPlace;

impl InplaceOp2 for AddInPlace {
    fn name(&self) -> &'static str {
        "vggfeat-grad-add"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let (d, g) = (values_mut(dst, dst_l)?, values(g, gl)?);
        d.par_chunks_mut(PAR_CHUNK)
            .zip(g.par_chunks(PAR_CHUNK))
            .for_each(|(d, g)| d.iter_mut().zip(g).for_each(|(d, g)| *d += g));
        Ok(())
    }
}

/// `v = momentum * v + (g + decay * w)`, in place on v.
struct Momentum {
    momentum: f32,
    decay: Option<f32>,
}

impl InplaceOp3 for Momentum {
    fn name(&self) -> &'static str {
        "vggfeat-sgd-momentum"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let (v, w, g) = (values_mut(dst, dst_l)?, values(w, wl)?, values(g, gl)?);
        let (mu, decay) = (self.momentum, self.decay);
        v.par_chunks_mut(PAR_CHUNK)
            .zip(w.par_chunks(PAR_CHUNK))
            .zip(g.par_chunks(PAR_CHUNK))
            .for_each(|((v, w), g)| {
                for ((v, w), g) in v.iter_mut().zip(w).zip(g) {
                    let g = match decay {
                        Some(d) => g + w * d,
                        None => *g,
                    };
                    *v = *v * mu + g;
                }
            });
        Ok(())
    }
}

/// `w = w - lr * v`, in place on w.
struct Descend {
    lr: f32,
}

impl InplaceOp2 for Descend {
    fn name(&self) -> &'static str {
        "vggfeat-sgd-descend"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<()> {
        let (w, v) = (values_mut(dst, dst_l)?, values(v, vl)?);
        let lr = self.lr;
        w.par_chunks_mut(PAR_CHUNK)
            .zip(v.par_chunks(PAR_CHUNK))
            .for_each(|(w, v)| w.iter_mut().zip(v).for_each(|(w, v)| *w -= v * lr));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn var(v: &[f32]) -> Var {
        Var::from_tensor(&Tensor::new(v, &Device::Cpu).unwrap()).unwrap()
    }

    fn vals(v: &Var) -> Vec<f32> {
        v.as_tensor().to_vec1().unwrap()
    }

    /// Two steps pinned against numbers computed by hand, which PyTorch reproduces:
    /// ```python
    /// w = torch.tensor([1.0, -2.0], requires_grad=True); b = torch.tensor([0.5], requires_grad=True)
    /// opt = torch.optim.SGD([{"params": [w], "weight_decay": 0.01},
    ///                        {"params": [b], "weight_decay": 0.0}], lr=0.1, momentum=0.9)
    /// for _ in range(2):
    ///     w.grad = torch.tensor([0.1, 0.2]); b.grad = torch.tensor([0.3]); opt.step()
    /// # w = [0.968111, -2.052182], b = [0.413]
    /// ```
    #[test]
    fn two_steps_match_hand_computed_values() {
        let (w, b) = (var(&[1.0, -2.0]), var(&[0.5]));
        let params = vec![
            Trainable {
                name: "w".into(),
                var: w.clone(),
                decay: true,
            },
            Trainable {
                name: "b".into(),
                var: b.clone(),
                decay: false,
            },
        ];
        let hp = SgdParams {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
        };
        let mut opt = Sgd::new(params, hp).unwrap();
        let grads = GradAccum {
            sums: vec![
                Some(Tensor::new(&[0.1f32, 0.2], &Device::Cpu).unwrap()),
                Some(Tensor::new(&[0.3f32], &Device::Cpu).unwrap()),
            ],
        };
        opt.step(&grads).unwrap();
        // v = g + wd w = [0.11, 0.18]; w = w - 0.1 v
        let close = |a: &[f32], b: &[f64]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (f64::from(*x) - y).abs() < 1e-6)
        };
        assert!(close(&vals(&w), &[0.989, -2.018]), "{:?}", vals(&w));
        assert!(close(&vals(&b), &[0.47]), "{:?}", vals(&b));
        opt.step(&grads).unwrap();
        // g = [0.1 + 0.00989, 0.2 - 0.02018]; v = 0.9 [0.11, 0.18] + g = [0.20889, 0.34182]
        assert!(close(&vals(&w), &[0.968111, -2.052182]), "{:?}", vals(&w));
        // v = 0.9 * 0.3 + 0.3 = 0.57; b = 0.47 - 0.057
        assert!(close(&vals(&b), &[0.413]), "{:?}", vals(&b));
        let bufs = opt.buffers();
        let v: Vec<f32> = bufs[0].1.to_vec1().unwrap();
        assert!(close(&v, &[0.20889, 0.34182]), "{v:?}");
    }

    #[test]
    fn weight_decay_alone_shrinks_weights_not_biases() {
        let (w, b) = (var(&[2.0, -4.0]), var(&[1.0]));
        let mut opt = Sgd::new(
            vec![
                Trainable {
                    name: "w".into(),
                    var: w.clone(),
                    decay: true,
                },
                Trainable {
                    name: "b".into(),
                    var: b.clone(),
                    decay: false,
                },
            ],
            SgdParams {
                lr: 0.5,
                momentum: 0.0,
                weight_decay: 0.1,
            },
        )
        .unwrap();
        let zero = GradAccum {
            sums: vec![
                Some(Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap()),
                Some(Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap()),
            ],
        };
        opt.step(&zero).unwrap();
        // w (1 - lr wd) = w * 0.95; the bias has no decay and no gradient: unchanged.
        let w = vals(&w);
        assert!(
            (w[0] - 1.9).abs() < 1e-6 && (w[1] + 3.8).abs() < 1e-6,
            "{w:?}"
        );
        assert_eq!(vals(&b), vec![1.0]);
    }

    #[test]
    fn missing_gradient_leaves_the_parameter_alone_and_bad_params_are_refused() {
        let w = var(&[1.0]);
        let mut opt = Sgd::new(
            vec![Trainable {
                name: "w".into(),
                var: w.clone(),
                decay: true,
            }],
            SgdParams::default(),
        )
        .unwrap();
        opt.step(&GradAccum::new(1)).unwrap();
        assert_eq!(vals(&w), vec![1.0]);
        assert!(opt.set_lr(0.0).is_err());
        assert!(
            SgdParams {
                momentum: 1.0,
                ..Default::default()
            }
            .check()
            .is_err()
        );
        let mut saved = std::collections::BTreeMap::new();
        saved.insert(
            "w".to_string(),
            Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap(),
        );
        let e = opt.set_buffers(&saved).unwrap_err().to_string();
        assert!(e.contains("momentum buffer `w` has shape [2]"), "{e}");
    }
}
