//! The one walk of a VGG network: the conv body of its configuration (convs with ReLU, LRN,
//! pools) followed by the fully-convolutional head (fc6 a k x k conv without padding, fc7 and
//! fc8 1x1 convs), as a list of [`Step`]s that every engine and the trainer consume. An engine
//! implements [`Backend`] (three operations: a conv step, LRN, max-pool) and [`Plan::walk`] runs
//! it over any range of steps; nothing else in the crate spells out the order of the layers.
//!
//! The plan also answers the questions that depend on the walk: which layers exist, their
//! channels and strides, the smallest input each accepts ([`Plan::check_input`]), and the
//! multiply-adds of a forward pass ([`Plan::flops`]).

use std::ops::Range;

use super::config::{ConfigName, LayerName, Spec};
use super::params::VggWeights;
use crate::error::{Error, Param, Result};

/// A stride-1 `kernel` x `kernel` convolution with zero padding `pad`, plus bias, then ReLU
/// when `relu` (every layer but fc8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv {
    /// Kernel side.
    pub kernel: usize,
    /// Zero padding on each side (`kernel / 2` in the body, 0 in the head).
    pub pad: usize,
    /// Whether a ReLU follows.
    pub relu: bool,
    /// Index of the layer's weights in [`VggWeights::layers`].
    pub param: usize,
    /// Whether the input is replaced by its element-wise square root first (fc6 of a net
    /// trained with [`Fc6Input::Sqrt`]; the input is a pool5 map, never negative, and is
    /// clamped at 0 all the same).
    pub sqrt_input: bool,
}

/// What fc6 does to its input before its product: the paper's identity, or the element-wise
/// square root (`vggfeat train --fc6-input sqrt`), a power normalisation that puts frozen
/// features of a scale far from ImageNet's (HED's pool5 has an L2 norm near 2,500) within
/// reach of a small head (results/localisation). A checkpoint records it in its metadata
/// ([`crate::model::checkpoint::meta::FC6_INPUT`]), and [`Plan::new`] reads it there, so that
/// every engine and command applies it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fc6Input {
    /// pool5 as it is (the paper's).
    #[default]
    Identity,
    /// The element-wise square root of pool5.
    Sqrt,
}

crate::util::choice::choice!(Fc6Input, "fc6 input", Param::Fc6Input, [
    Fc6Input::Identity => "identity": "pool5 as it is (the paper's).",
    Fc6Input::Sqrt => "sqrt": "The element-wise square root of pool5 (every conv frozen).",
]);

impl Fc6Input {
    /// The transform `w`'s metadata names (the identity when it names none); an unknown name
    /// is an error naming the file.
    pub fn of(w: &VggWeights) -> Result<Fc6Input> {
        match w.metadata.get(crate::model::checkpoint::meta::FC6_INPUT) {
            None => Ok(Fc6Input::Identity),
            Some(v) => v.parse().map_err(|e: Error| Error::Data {
                path: w.path.clone(),
                reason: format!(
                    "metadata {}: {e}",
                    crate::model::checkpoint::meta::FC6_INPUT
                ),
            }),
        }
    }
}

/// The shape of a layer with weights: its name, kernel side and output channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerShape {
    /// Paper name.
    pub name: LayerName,
    /// Kernel side.
    pub kernel: usize,
    /// Output channels.
    pub out: usize,
}

/// The shape of a head: fc6 a `fc6_kernel` square conv to `width`, fc7 1x1 to `width`, fc8 1x1
/// to `classes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadShape {
    /// Width of fc6 and fc7.
    pub width: usize,
    /// fc6's kernel side (crop / 32).
    pub fc6_kernel: usize,
    /// fc8's outputs.
    pub classes: usize,
}

/// What a step computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A convolution (body conv or head layer).
    Conv(Conv),
    /// Local response normalisation across channels (A-LRN).
    Lrn,
    /// 2x2 max-pooling, stride 2, flooring odd sizes.
    Pool,
}

/// One step of the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The layer's paper name; the step's output is that layer's map.
    pub name: LayerName,
    /// What it computes.
    pub op: Op,
    /// Channels of its output.
    pub channels: usize,
    /// Total stride of its output relative to the input.
    pub stride: usize,
    /// Training applies dropout to this step's output (fc6 and fc7, the paper's Section 3.1).
    pub dropout: bool,
}

impl Step {
    /// Whether the step belongs to the dense head (fc6 .. fc8).
    pub fn is_head(&self) -> bool {
        self.name.is_head()
    }
}

/// An engine's three operations over its own activation type. [`Plan::walk`] calls them in the
/// plan's order; `step` is the step being computed (a conv's weights are found through its
/// [`Conv::param`]).
pub trait Backend {
    /// The activation between steps (a tensor, a channels-last buffer, ...).
    type Act;
    /// A conv step (body conv or head layer).
    fn conv(&self, x: Self::Act, conv: &Conv, step: &Step) -> Result<Self::Act>;
    /// The LRN step.
    fn lrn(&self, x: Self::Act, step: &Step) -> Result<Self::Act>;
    /// A max-pool step.
    fn pool(&self, x: Self::Act, step: &Step) -> Result<Self::Act>;
    /// A conv step directly followed by a max-pool step (`pool`), whose pooled map is all that
    /// leaves. The default runs the two in turn; an engine may fuse them.
    fn conv_pool(&self, x: Self::Act, conv: &Conv, step: &Step, pool: &Step) -> Result<Self::Act> {
        let y = self.conv(x, conv, step)?;
        self.pool(y, pool)
    }
}

/// The walk of one network (its configuration and actual widths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    config: ConfigName,
    steps: Vec<Step>,
    body: usize,
    fc6_kernel: Option<usize>,
    has_fc8: bool,
}

impl Plan {
    /// The plan of `w`: its configuration's body with the checkpoint's widths, and its head if
    /// it has fc layers, whose fc6 takes the input transform of `w`'s metadata
    /// ([`Fc6Input::of`]; the checkpoint loader has refused a name it does not know, and one
    /// set in memory after loading reads as the identity).
    pub fn new(w: &VggWeights) -> Plan {
        let shapes: Vec<LayerShape> = w
            .layers()
            .iter()
            .map(|l| LayerShape {
                name: l.name,
                kernel: l.kernel(),
                out: l.out_channels(),
            })
            .collect();
        let fc6_input = Fc6Input::of(w).unwrap_or_default();
        Plan::from_shapes(w.config, &shapes, fc6_input)
    }

    /// The plan of `config` with its ImageNet widths divided by `width_div`, and a head when
    /// `head` is given: what [`VggWeights::random_with_fc6`] draws, and what the layer
    /// questions of a configuration (which convs come before a layer) are answered from.
    pub fn for_config(config: ConfigName, width_div: usize, head: Option<HeadShape>) -> Plan {
        let div = width_div.max(1);
        let mut shapes: Vec<LayerShape> = config
            .layers()
            .into_iter()
            .filter_map(|l| match l.spec {
                Spec::Conv { kernel, width } => Some(LayerShape {
                    name: l.name,
                    kernel,
                    out: (width / div).max(1),
                }),
                _ => None,
            })
            .collect();
        if let Some(h) = head {
            shapes.extend(
                [
                    (LayerName::Fc6, h.fc6_kernel, h.width),
                    (LayerName::Fc7, 1, h.width),
                    (LayerName::Fc8, 1, h.classes),
                ]
                .map(|(name, kernel, out)| LayerShape { name, kernel, out }),
            );
        }
        Plan::from_shapes(config, &shapes, Fc6Input::Identity)
    }

    /// The plan of `config` whose layers with weights have `shapes` (network order: the body's
    /// convs, then fc6, fc7 and optionally fc8).
    fn from_shapes(config: ConfigName, shapes: &[LayerShape], fc6_input: Fc6Input) -> Plan {
        let mut steps = Vec::new();
        let (mut channels, mut stride) = (3, 1);
        let body_convs = shapes.iter().take_while(|s| !s.name.is_head()).count();
        let mut param = 0;
        for l in config.layers() {
            let op = match l.spec {
                Spec::Conv { kernel, .. } => {
                    channels = shapes[..body_convs].get(param).map_or(channels, |s| s.out);
                    param += 1;
                    Op::Conv(Conv {
                        kernel,
                        pad: kernel / 2,
                        relu: true,
                        param: param - 1,
                        sqrt_input: false,
                    })
                }
                Spec::Lrn => Op::Lrn,
                Spec::Pool => {
                    stride *= 2;
                    Op::Pool
                }
            };
            steps.push(Step {
                name: l.name,
                op,
                channels,
                stride,
                dropout: false,
            });
        }
        let body = steps.len();
        for (k, s) in shapes[body_convs..].iter().enumerate() {
            let last = s.name == LayerName::Fc8;
            steps.push(Step {
                name: s.name,
                op: Op::Conv(Conv {
                    kernel: s.kernel,
                    pad: 0,
                    relu: !last,
                    param: body_convs + k,
                    sqrt_input: s.name == LayerName::Fc6 && fc6_input == Fc6Input::Sqrt,
                }),
                channels: s.out,
                stride,
                dropout: !last,
            });
        }
        let head = &shapes[body_convs..];
        Plan {
            config,
            steps,
            body,
            fc6_kernel: head.first().map(|s| s.kernel),
            has_fc8: head.iter().any(|s| s.name == LayerName::Fc8),
        }
    }

    /// The layers with weights (convs, in network order), with their kernel and output width.
    pub fn conv_layers(&self) -> impl Iterator<Item = (&Step, usize)> {
        self.steps.iter().filter_map(|s| match s.op {
            Op::Conv(c) => Some((s, c.kernel)),
            _ => None,
        })
    }

    /// The layers with weights up to and including `layer`, in network order (a pool or the LRN
    /// stands for the convs before it); an error when the plan has no such layer.
    pub fn convs_through(&self, layer: LayerName) -> Result<Vec<LayerName>> {
        let end = self.index_of(layer)?;
        Ok(self.steps[..=end]
            .iter()
            .filter(|s| matches!(s.op, Op::Conv(_)))
            .map(|s| s.name)
            .collect())
    }

    /// The configuration.
    pub fn config(&self) -> ConfigName {
        self.config
    }

    /// Every step, body then head.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The conv body's steps (up to pool5).
    pub fn body(&self) -> &[Step] {
        &self.steps[..self.body]
    }

    /// The head's steps (fc6, fc7 and fc8 when present).
    pub fn head(&self) -> &[Step] {
        &self.steps[self.body..]
    }

    /// Whether the network has fc layers.
    pub fn has_head(&self) -> bool {
        self.fc6_kernel.is_some()
    }

    /// fc6's kernel side, if the network has fc layers.
    pub fn fc6_kernel(&self) -> Option<usize> {
        self.fc6_kernel
    }

    /// The steps to run for `layer`'s output: `0 .. position + 1`.
    pub fn through(&self, layer: LayerName) -> Result<Range<usize>> {
        Ok(0..self.index_of(layer)? + 1)
    }

    /// The position of `layer`, or an error naming what the network lacks.
    pub fn index_of(&self, layer: LayerName) -> Result<usize> {
        self.steps
            .iter()
            .position(|s| s.name == layer)
            .ok_or_else(|| {
                Error::param(
                    Param::Layer,
                    format!(
                        "layer {layer} does not exist in configuration {}{}",
                        self.config,
                        if !self.has_head() {
                            ", no fc layers"
                        } else if !self.has_fc8 {
                            ", no fc8"
                        } else {
                            ""
                        }
                    ),
                )
            })
    }

    /// The step producing `layer`.
    pub fn step(&self, layer: LayerName) -> Result<&Step> {
        Ok(&self.steps[self.index_of(layer)?])
    }

    /// Channels of `layer`'s output.
    pub fn channels(&self, layer: LayerName) -> Result<usize> {
        Ok(self.step(layer)?.channels)
    }

    /// The smallest input side `layer` accepts: 32 x fc6's kernel for the head (224 for the
    /// ImageNet networks), 1 for conv1 and the LRN, 32 for anything after a pool (five pools
    /// need a side of 32 to leave a 1x1 pool5).
    pub fn min_side(&self, layer: LayerName) -> usize {
        match (layer.is_head(), self.fc6_kernel) {
            (true, Some(k)) => 32 * k,
            _ if matches!(layer, LayerName::Conv(1, _) | LayerName::Lrn) => 1,
            _ => 32,
        }
    }

    /// The smallest input the dense head accepts (`None` without fc layers).
    pub fn min_head_input(&self) -> Option<usize> {
        self.fc6_kernel.map(|k| 32 * k)
    }

    /// Checks an input of `channels` x `h` x `w` for `layer`: three channels, and a smallest side
    /// of at least [`Plan::min_side`]. The one place that states these limits.
    pub fn check_input(&self, channels: usize, h: usize, w: usize, layer: LayerName) -> Result<()> {
        self.index_of(layer)?;
        if channels != 3 {
            return Err(Error::Usage(format!(
                "input has {channels} channels, expected 3"
            )));
        }
        let min = self.min_side(layer);
        if h.min(w) >= min {
            return Ok(());
        }
        Err(Error::Usage(if layer.is_head() {
            let k = min / 32;
            format!(
                "input {w}x{h} is too small for the dense head: fc6 needs a smallest side of at \
                 least {min} (pool5 of at least {k}x{k})"
            )
        } else {
            format!("input {w}x{h} is too small: the smallest side must be at least {min}")
        }))
    }

    /// Runs `steps` of the plan on `x` with `backend`; a conv followed by a pool inside the
    /// range goes to [`Backend::conv_pool`].
    pub fn walk<B: Backend>(
        &self,
        backend: &B,
        mut x: B::Act,
        steps: Range<usize>,
    ) -> Result<B::Act> {
        let steps = &self.steps[steps];
        let mut i = 0;
        while i < steps.len() {
            let step = &steps[i];
            x = match (step.op, steps.get(i + 1)) {
                (Op::Conv(c), Some(next)) if next.op == Op::Pool => {
                    i += 1;
                    backend.conv_pool(x, &c, step, next)?
                }
                (Op::Conv(c), _) => backend.conv(x, &c, step)?,
                (Op::Lrn, _) => backend.lrn(x, step)?,
                (Op::Pool, _) => backend.pool(x, step)?,
            };
            i += 1;
        }
        Ok(x)
    }

    /// Multiply-add FLOPs (2 per multiply-add) of `steps` on an `h` x `w` input (convs only; the
    /// head densely, one fc6 window per output position).
    pub fn flops(&self, h: usize, w: usize, steps: Range<usize>) -> f64 {
        let (mut h, mut w, mut c, mut f) = (h, w, 3usize, 0f64);
        for (i, s) in self.steps.iter().enumerate() {
            match s.op {
                Op::Conv(Conv { kernel, pad, .. }) => {
                    h = (h + 2 * pad + 1).saturating_sub(kernel);
                    w = (w + 2 * pad + 1).saturating_sub(kernel);
                    if steps.contains(&i) {
                        f += 2.0 * (kernel * kernel * c * s.channels * h * w) as f64;
                    }
                }
                Op::Pool => {
                    h /= 2;
                    w /= 2;
                }
                Op::Lrn => {}
            }
            c = s.channels;
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::InitScheme;

    #[test]
    fn vgg16_plan_has_the_papers_layers_and_strides() {
        let w = VggWeights::random(ConfigName::D, 8, Some(16), 10, InitScheme::He, 0).unwrap();
        let p = Plan::new(&w);
        assert_eq!(p.body().len(), 18);
        let head: Vec<_> = p.head().iter().map(|s| s.name.to_string()).collect();
        assert_eq!(head, ["fc6", "fc7", "fc8"]);
        assert_eq!(p.step(LayerName::Pool(5)).unwrap().stride, 32);
        assert_eq!(p.channels(LayerName::Conv(3, 1)).unwrap(), 32);
        assert_eq!(p.channels(LayerName::Fc8).unwrap(), 10);
        assert!(!p.step(LayerName::Fc8).unwrap().dropout);
        assert!(p.step(LayerName::Fc7).unwrap().dropout);
        assert_eq!(p.through(LayerName::Pool(5)).unwrap(), 0..18);
        assert!(p.index_of(LayerName::Conv(3, 4)).is_err());
        // Every weight layer appears once, in the order of VggWeights::layers.
        let params: Vec<usize> = p
            .steps()
            .iter()
            .filter_map(|s| match s.op {
                Op::Conv(c) => Some(c.param),
                _ => None,
            })
            .collect();
        assert_eq!(params, (0..w.layers().len()).collect::<Vec<_>>());
    }

    #[test]
    fn flops_of_vgg16_at_224() {
        // 15.47 GMACs for VGG-16 at 224 (the usual figure), i.e. 30.9 GFLOPs.
        let w = VggWeights::random(ConfigName::D, 1, Some(4096), 1000, InitScheme::He, 0).unwrap();
        let p = Plan::new(&w);
        let g = p.flops(224, 224, 0..p.steps().len()) / 1e9;
        assert!((g - 30.95).abs() < 0.05, "{g}");
    }

    #[test]
    fn input_limits() {
        let w = VggWeights::random(ConfigName::A, 16, Some(8), 3, InitScheme::He, 0).unwrap();
        let p = Plan::new(&w);
        assert!(p.check_input(3, 224, 300, LayerName::Fc7).is_ok());
        let e = p.check_input(3, 223, 300, LayerName::Fc7).unwrap_err();
        assert!(
            e.to_string()
                .contains("at least 224 (pool5 of at least 7x7)"),
            "{e}"
        );
        assert!(p.check_input(3, 32, 40, LayerName::Pool(5)).is_ok());
        assert!(p.check_input(3, 31, 40, LayerName::Pool(1)).is_err());
        assert!(p.check_input(3, 5, 5, LayerName::Conv(1, 1)).is_ok());
        assert!(p.check_input(1, 224, 224, LayerName::Pool(1)).is_err());
    }
}
