//! The optimisers of a training run over candle [`Var`]s, in PyTorch's formulations.
//!
//! Mini-batch SGD with momentum and weight decay, the paper's ([`Method::Sgd`];
//! `torch.optim.SGD(momentum=mu, weight_decay=wd, dampening=0, nesterov=False)`):
//!
//! ```text
//! g = grad + wd * w        (wd only for parameters marked `decay`)
//! v = mu * v + g           (v starts at 0, so the first step has v = g, as in PyTorch)
//! w = w - lr * v
//! ```
//!
//! Adam ([`Method::Adam`]; `torch.optim.Adam(betas=(mu, 0.999), eps=1e-8, weight_decay=wd)`,
//! weight decay as an L2 term of the gradient, not AdamW's), step t counted from 1:
//!
//! ```text
//! g = grad + wd * w
//! m = m + (1 - mu) * (g - m)             (PyTorch's lerp)
//! v = 0.999 * v + 0.001 * g * g
//! w = w - lr / (1 - mu^t) * m / (sqrt(v) / sqrt(1 - 0.999^t) + 1e-8)
//! ```
//!
//! Not the paper's: it is there for heads on frozen features whose scale is far from what the
//! paper's SGD rate suits (results/localisation). candle_nn's `SGD` has neither momentum nor
//! weight decay and its `AdamW` decays weights the AdamW way, hence this module. Gradients of
//! several micro-batches are summed by [`GradAccum`] before one [`Optimizer::step`] (gradient
//! accumulation to an effective batch). The buffers (SGD's momentum; Adam's two moments and its
//! step count) are the optimiser's state, saved and restored by the checkpoint code through
//! [`Optimizer::buffers`] and [`Optimizer::set_buffers`].

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

/// The update rule (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// SGD with momentum, the paper's.
    #[default]
    Sgd,
    /// Adam, with the momentum as its first beta.
    Adam,
}

crate::util::choice::choice!(Method, "optimizer", Param::Optimizer, [
    Method::Sgd => "sgd": "SGD with momentum (the paper's).",
    Method::Adam => "adam": "Adam, betas (momentum, 0.999), eps 1e-8, L2 weight decay.",
]);

/// Adam's second beta and epsilon (PyTorch's defaults).
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

/// Hyper-parameters of [`Optimizer`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimParams {
    /// Learning rate. Default 0.01 (the paper's initial rate); must be > 0 and finite.
    pub lr: f64,
    /// Momentum mu (Adam's first beta). Default 0.9 (the paper's); in [0, 1).
    pub momentum: f64,
    /// L2 weight decay wd, added to the gradient as `wd * w`. Default 5e-4 (the paper's);
    /// >= 0 and finite.
    pub weight_decay: f64,
    /// The update rule. Default [`Method::Sgd`]; runs recorded before Adam existed read SGD.
    #[serde(default)]
    pub method: Method,
}

impl Default for OptimParams {
    fn default() -> Self {
        OptimParams {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            method: Method::Sgd,
        }
    }
}

impl OptimParams {
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

/// SGD with momentum or Adam, with weight decay (see the module docs).
#[derive(Debug)]
pub struct Optimizer {
    params: Vec<Trainable>,
    hp: OptimParams,
    /// SGD's momentum buffers, or Adam's first moments.
    buffers: Vec<Tensor>,
    /// Adam's second moments (empty for SGD).
    second: Vec<Tensor>,
    /// Adam's steps taken (PyTorch's `step`, one count for every parameter: a parameter no
    /// gradient reached is not updated, and the runs here reach every one).
    steps: u64,
}

/// The name of Adam's second moment of parameter `name`, and of its step count, in the saved
/// state.
fn second_name(name: &str) -> String {
    format!("{name}.exp_avg_sq")
}
const ADAM_STEPS: &str = "adam.step";

impl Optimizer {
    /// An optimiser over `params` with zero buffers.
    pub fn new(params: Vec<Trainable>, hp: OptimParams) -> Result<Self> {
        hp.check()?;
        let zeros = || -> Result<Vec<Tensor>> {
            Ok(params
                .iter()
                .map(|p| p.var.as_tensor().zeros_like())
                .collect::<candle_core::Result<_>>()?)
        };
        let buffers = zeros()?;
        let second = match hp.method {
            Method::Sgd => Vec::new(),
            Method::Adam => zeros()?,
        };
        Ok(Optimizer {
            params,
            hp,
            buffers,
            second,
            steps: 0,
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
        OptimParams { lr, ..self.hp }.check()?;
        self.hp.lr = lr;
        Ok(())
    }

    /// One update from accumulated gradients. A parameter no gradient reached keeps its value
    /// and buffers (as in PyTorch, which skips parameters whose `.grad` is None).
    pub fn step(&mut self, grads: &GradAccum) -> Result<()> {
        match self.hp.method {
            Method::Sgd => self.sgd_step(grads),
            Method::Adam => self.adam_step(grads),
        }
    }

    fn sgd_step(&mut self, grads: &GradAccum) -> Result<()> {
        let OptimParams {
            lr,
            momentum,
            weight_decay,
            ..
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

    /// Adam, each element's f32 operations in PyTorch's order (its single-tensor
    /// `_single_tensor_adam`); on the CPU fused into three in-place passes (first moment,
    /// second moment, weights) that flush subnormal results to 0 ([`flush`]), elsewhere as
    /// tensor expressions.
    fn adam_step(&mut self, grads: &GradAccum) -> Result<()> {
        let OptimParams {
            lr,
            momentum: beta1,
            weight_decay,
            ..
        } = self.hp;
        self.steps += 1;
        let t = self.steps as i32;
        // The scalars in f64, as PyTorch computes them from Python floats.
        let step_size = lr / (1.0 - beta1.powi(t));
        let bc2_sqrt = (1.0 - ADAM_BETA2.powi(t)).sqrt();
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = grads.get(i) else { continue };
            let wd = if p.decay { weight_decay } else { 0.0 };
            let w = p.var.as_tensor();
            let (m, v) = (&self.buffers[i], &self.second[i]);
            if [w, g, m, v]
                .iter()
                .all(|t| t.device().is_cpu() && t.is_contiguous())
            {
                let decay = (wd != 0.0).then_some(wd as f32);
                m.inplace_op3(
                    w,
                    g,
                    &AdamMoment {
                        decay,
                        keep: beta1 as f32,
                        rest: (1.0 - beta1) as f32,
                        second: false,
                    },
                )?;
                v.inplace_op3(
                    w,
                    g,
                    &AdamMoment {
                        decay,
                        keep: ADAM_BETA2 as f32,
                        rest: (1.0 - ADAM_BETA2) as f32,
                        second: true,
                    },
                )?;
                w.inplace_op3(
                    m,
                    v,
                    &AdamDescend {
                        step_size: step_size as f32,
                        bc2_sqrt: bc2_sqrt as f32,
                        eps: ADAM_EPS as f32,
                    },
                )?;
                continue;
            }
            let w = w.detach();
            let g = if wd != 0.0 {
                (g + (&w * wd)?)?
            } else {
                g.clone()
            };
            // exp_avg.lerp_(g, 1 - beta1): m + (1 - beta1) * (g - m).
            let m = (m + ((&g - m)? * (1.0 - beta1))?)?;
            // exp_avg_sq.mul_(beta2).addcmul_(g, g, value = 1 - beta2).
            let v = ((v * ADAM_BETA2)? + ((&g * &g)? * (1.0 - ADAM_BETA2))?)?;
            // denom = exp_avg_sq.sqrt() / bc2_sqrt + eps; w.addcdiv_(m, denom, -step_size).
            let denom = ((v.sqrt()? / bc2_sqrt)? + ADAM_EPS)?;
            let new_w = (&w - ((&m / &denom)? * step_size)?)?;
            p.var.set(&new_w)?;
            self.buffers[i] = m;
            self.second[i] = v;
        }
        Ok(())
    }

    /// The state to save, named: SGD's momentum buffers under the parameters' names; for Adam,
    /// the first moments under those names, the second moments under `<name>.exp_avg_sq` and
    /// the step count as `adam.step` (one f64).
    pub fn buffers(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out: Vec<(String, Tensor)> = self
            .params
            .iter()
            .zip(&self.buffers)
            .map(|(p, b)| (p.name.clone(), b.clone()))
            .collect();
        if self.hp.method == Method::Adam {
            out.extend(
                self.params
                    .iter()
                    .zip(&self.second)
                    .map(|(p, b)| (second_name(&p.name), b.clone())),
            );
            out.push((
                ADAM_STEPS.into(),
                Tensor::new(&[self.steps as f64], &candle_core::Device::Cpu)?,
            ));
        }
        Ok(out)
    }

    /// Restores the state saved by [`Optimizer::buffers`]: every parameter must have its
    /// buffers, with its shape, and nothing else may be there.
    pub fn set_buffers(
        &mut self,
        saved: &std::collections::BTreeMap<String, Tensor>,
    ) -> Result<()> {
        let fetch = |name: &str, p: &Trainable| -> Result<Tensor> {
            let t = saved
                .get(name)
                .ok_or_else(|| Error::Usage(format!("no optimizer buffer `{name}`")))?;
            if t.dims() != p.var.dims() {
                return Err(Error::Usage(format!(
                    "optimizer buffer `{name}` has shape {:?}, the parameter {:?}",
                    t.dims(),
                    p.var.dims()
                )));
            }
            Ok(t.to_device(p.var.device())?)
        };
        for (p, b) in self.params.iter().zip(self.buffers.iter_mut()) {
            *b = fetch(&p.name, p)?;
        }
        let mut expected = self.params.len();
        if self.hp.method == Method::Adam {
            for (p, b) in self.params.iter().zip(self.second.iter_mut()) {
                *b = fetch(&second_name(&p.name), p)?;
            }
            let steps = saved
                .get(ADAM_STEPS)
                .ok_or_else(|| Error::Usage(format!("no optimizer buffer `{ADAM_STEPS}`")))?
                .flatten_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_vec1::<f64>()?;
            match steps.as_slice() {
                [s] if *s >= 0.0 && s.fract() == 0.0 => self.steps = *s as u64,
                _ => {
                    return Err(Error::Usage(format!(
                        "optimizer buffer `{ADAM_STEPS}` is {steps:?}, not one step count"
                    )));
                }
            }
            expected = 2 * self.params.len() + 1;
        }
        if saved.len() != expected {
            return Err(Error::Usage(format!(
                "{} optimizer buffers for {} parameters ({}: {expected} expected)",
                saved.len(),
                self.params.len(),
                self.hp.method
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

/// `f(dst, a, b)` for every element of a three-operand in-place op, in parallel chunks.
fn each3(
    (dst, dst_l): (&mut CpuStorage, &Layout),
    (a, al): (&CpuStorage, &Layout),
    (b, bl): (&CpuStorage, &Layout),
    f: impl Fn(&mut f32, f32, f32) + Sync,
) -> candle_core::Result<()> {
    let (d, a, b) = (values_mut(dst, dst_l)?, values(a, al)?, values(b, bl)?);
    d.par_chunks_mut(PAR_CHUNK)
        .zip(a.par_chunks(PAR_CHUNK))
        .zip(b.par_chunks(PAR_CHUNK))
        .for_each(|((d, a), b)| {
            for ((d, a), b) in d.iter_mut().zip(a).zip(b) {
                f(d, *a, *b);
            }
        });
    Ok(())
}

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
        let (mu, decay) = (self.momentum, self.decay);
        each3((dst, dst_l), (w, wl), (g, gl), |v, w, g| {
            let g = match decay {
                Some(d) => g + w * d,
                None => g,
            };
            *v = *v * mu + g;
        })
    }
}

/// `x`, or 0 where it is subnormal. Adam drives the weights of inputs that are always 0 (dead
/// pool5 units) and their moments towards 0 geometrically; once subnormal, every product that
/// reads them takes a slow path on x86 (results/localisation: epochs of the cached head grew from
/// 11 to 23 s, with 5 % of fc6's weights subnormal after 20 epochs). PyTorch keeps them; the
/// difference is below f32's smallest normal, 1.2e-38.
#[inline]
fn flush(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE { 0.0 } else { x }
}

/// One of Adam's moments, in place: with `gd = g + decay * w`, the first
/// `m = m + rest * (gd - m)` (PyTorch's lerp), the second `v = keep * v + rest * gd * gd`, where
/// `rest = 1 - keep` is computed in f64 (as PyTorch's Python floats) and rounded once.
struct AdamMoment {
    decay: Option<f32>,
    keep: f32,
    rest: f32,
    second: bool,
}

impl InplaceOp3 for AdamMoment {
    fn name(&self) -> &'static str {
        "vggfeat-adam-moment"
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
        let (decay, keep, rest, second) = (self.decay, self.keep, self.rest, self.second);
        each3((dst, dst_l), (w, wl), (g, gl), |m, w, g| {
            let g = match decay {
                Some(d) => g + w * d,
                None => g,
            };
            *m = flush(if second {
                *m * keep + g * g * rest
            } else {
                *m + (g - *m) * rest
            });
        })
    }
}

/// Adam's update, in place on w: `w = w - step_size * m / (sqrt(v) / bc2_sqrt + eps)`.
struct AdamDescend {
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
}

impl InplaceOp3 for AdamDescend {
    fn name(&self) -> &'static str {
        "vggfeat-adam-descend"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<()> {
        let Self {
            step_size,
            bc2_sqrt,
            eps,
        } = *self;
        each3((dst, dst_l), (m, ml), (v, vl), |w, m, v| {
            *w = flush(*w - step_size * (m / (v.sqrt() / bc2_sqrt + eps)));
        })
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

    /// A weight `w` = [1, -2] with decay and a bias `b` = [0.5] without, as trainables.
    fn weight_and_bias() -> (Vec<Trainable>, Var, Var) {
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
        (params, w, b)
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
        let (params, w, b) = weight_and_bias();
        let hp = OptimParams {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
            method: Method::Sgd,
        };
        let mut opt = Optimizer::new(params, hp).unwrap();
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
        let bufs = opt.buffers().unwrap();
        let v: Vec<f32> = bufs[0].1.to_vec1().unwrap();
        assert!(close(&v, &[0.20889, 0.34182]), "{v:?}");
    }

    /// Three Adam steps, a saved state and a resume, pinned against PyTorch 2 (to 1e-6; f32):
    /// ```python
    /// w = torch.tensor([1.0, -2.0], requires_grad=True); b = torch.tensor([0.5], requires_grad=True)
    /// opt = torch.optim.Adam([{"params": [w], "weight_decay": 0.01},
    ///                         {"params": [b], "weight_decay": 0.0}], lr=0.1, betas=(0.8, 0.999))
    /// for k in range(3):
    ///     w.grad = torch.tensor([0.1, 0.2]) * (k + 1); b.grad = torch.tensor([0.3]) * (-1) ** k
    ///     opt.step()
    /// # after each step: w = [0.9000000, -2.0999999], [0.8012143, -2.1979194],
    /// #   [0.7014564, -2.2969196]; b = [0.4], [0.4111111], [0.3766849]
    /// # opt.state[w]: exp_avg [0.10912243, 0.19928417], exp_avg_sq [1.5058463e-4, 5.0994067e-4]
    /// ```
    #[test]
    fn adam_matches_pytorch_and_resumes_exactly() {
        let make = || {
            let (params, w, b) = weight_and_bias();
            let hp = OptimParams {
                lr: 0.1,
                momentum: 0.8,
                weight_decay: 0.01,
                method: Method::Adam,
            };
            (Optimizer::new(params, hp).unwrap(), w, b)
        };
        let grads = |k: usize| GradAccum {
            sums: vec![
                Some(
                    Tensor::new(
                        &[0.1f32 * (k + 1) as f32, 0.2 * (k + 1) as f32],
                        &Device::Cpu,
                    )
                    .unwrap(),
                ),
                Some(
                    Tensor::new(
                        &[0.3f32 * if k.is_multiple_of(2) { 1.0 } else { -1.0 }],
                        &Device::Cpu,
                    )
                    .unwrap(),
                ),
            ],
        };
        let close = |a: &[f32], b: &[f64]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| (f64::from(*x) - y).abs() < 1e-6)
        };
        let want_w = [
            [0.9000000, -2.0999999],
            [0.8012143, -2.1979194],
            [0.7014564, -2.2969196],
        ];
        let want_b = [0.4, 0.4111111, 0.3766849];
        let (mut opt, w, b) = make();
        for k in 0..3 {
            opt.step(&grads(k)).unwrap();
            assert!(close(&vals(&w), &want_w[k]), "step {k}: {:?}", vals(&w));
            assert!(close(&vals(&b), &[want_b[k]]), "step {k}: {:?}", vals(&b));
        }
        let saved: std::collections::BTreeMap<String, Tensor> =
            opt.buffers().unwrap().into_iter().collect();
        let m: Vec<f32> = saved["w"].to_vec1().unwrap();
        let v: Vec<f32> = saved["w.exp_avg_sq"].to_vec1().unwrap();
        assert!(close(&m, &[0.10912243, 0.19928417]), "{m:?}");
        assert!(close(&v, &[1.5058463e-4, 5.0994067e-4]), "{v:?}");
        assert_eq!(
            saved.len(),
            5,
            "two moments per parameter and the step count"
        );
        // A run resumed after step 2 from the saved state equals the uninterrupted one, bit
        // for bit.
        let (mut a, wa, _) = make();
        a.step(&grads(0)).unwrap();
        a.step(&grads(1)).unwrap();
        let state: std::collections::BTreeMap<String, Tensor> =
            a.buffers().unwrap().into_iter().collect();
        let (mut r, wr, _) = make();
        wr.set(wa.as_tensor()).unwrap();
        r.set_buffers(&state).unwrap();
        r.step(&grads(2)).unwrap();
        assert_eq!(vals(&wr), vals(&w));
        // An SGD state does not restore an Adam run.
        let mut sgd_state = state.clone();
        sgd_state.retain(|k, _| !k.contains('.'));
        let e = r.set_buffers(&sgd_state).unwrap_err().to_string();
        assert!(e.contains("no optimizer buffer `w.exp_avg_sq`"), "{e}");
        assert_eq!("ADAM".parse::<Method>().unwrap(), Method::Adam);
        assert!("rmsprop".parse::<Method>().is_err());
    }

    /// Subnormal results of the fused Adam passes become 0; normal ones, however small, stay.
    #[test]
    fn adam_flushes_subnormal_values_only() {
        assert_eq!(flush(1e-39), 0.0);
        assert_eq!(flush(-1e-40), 0.0);
        assert_eq!(flush(f32::MIN_POSITIVE), f32::MIN_POSITIVE);
        assert_eq!(flush(-2e-38), -2e-38);
        assert_eq!(flush(0.5), 0.5);
        // A weight with no gradient and no decay decays to 0 through its first moment, never
        // through the subnormals.
        let w = var(&[3e-38]);
        let mut opt = Optimizer::new(
            vec![Trainable {
                name: "w".into(),
                var: w.clone(),
                decay: true,
            }],
            OptimParams {
                lr: 1e-4,
                weight_decay: 0.5,
                method: Method::Adam,
                ..Default::default()
            },
        )
        .unwrap();
        let zero = GradAccum {
            sums: vec![Some(
                Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
            )],
        };
        for _ in 0..50 {
            opt.step(&zero).unwrap();
            let v = vals(&w)[0];
            assert!(v == 0.0 || v.abs() >= f32::MIN_POSITIVE, "{v:e}");
            let state = opt.buffers().unwrap();
            for (name, t) in &state[..2] {
                let x: Vec<f32> = t.to_vec1().unwrap();
                assert!(
                    x[0] == 0.0 || x[0].abs() >= f32::MIN_POSITIVE,
                    "{name} {:e}",
                    x[0]
                );
            }
        }
    }

    #[test]
    fn weight_decay_alone_shrinks_weights_not_biases() {
        let (w, b) = (var(&[2.0, -4.0]), var(&[1.0]));
        let mut opt = Optimizer::new(
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
            OptimParams {
                lr: 0.5,
                momentum: 0.0,
                weight_decay: 0.1,
                method: Method::Sgd,
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
        let mut opt = Optimizer::new(
            vec![Trainable {
                name: "w".into(),
                var: w.clone(),
                decay: true,
            }],
            OptimParams::default(),
        )
        .unwrap();
        opt.step(&GradAccum::new(1)).unwrap();
        assert_eq!(vals(&w), vec![1.0]);
        assert!(opt.set_lr(0.0).is_err());
        assert!(
            OptimParams {
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
        assert!(e.contains("optimizer buffer `w` has shape [2]"), "{e}");
    }
}
