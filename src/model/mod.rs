//! The VGG network: a conv body (`forward_features`, up to pool5) and a fully-convolutional head
//! (fc6 as a 7x7 conv without padding, fc7 and fc8 as 1x1 convs), so that the network applies
//! densely to any image whose smallest side is at least 224 and returns maps. A network trained
//! at a smaller crop (`vggfeat train --crop 32k`) has a k x k fc6 and applies densely from a
//! smallest side of 32k ([`Vgg::min_head_input`]). Inputs and outputs
//! are batch-first NCHW float32 tensors.
//!
//! Two engines compute the same function: candle's own ops (any device, the reference), and on
//! the CPU a fast path ([`fast`]) that keeps activations channels-last and runs each conv as one
//! large GEMM with bias and ReLU fused.

pub mod config;
pub mod fast;
pub mod weights;
pub mod winograd;

use std::path::Path;

use candle_core::{D, Device, Tensor};

use crate::error::{Error, Result};
use crate::preprocess::Normalization;
use config::{ConfigName, LRN_PARAMS, LayerName};
use weights::{ConvParams, VggWeights};

/// Which implementation runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The fast CPU path on the CPU, candle (cuDNN) on CUDA.
    #[default]
    Auto,
    /// candle's conv2d everywhere (the reference implementation).
    Candle,
    /// The fast CPU path (CPU only): Winograd F(2x2,3x3) for the 3x3 layers, GEMM elsewhere.
    Fast,
    /// The fast CPU path with every conv as unfold + GEMM (no Winograd), for comparison.
    FastGemm,
}

impl std::str::FromStr for Engine {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Engine::Auto),
            "candle" => Ok(Engine::Candle),
            "fast" => Ok(Engine::Fast),
            "fast-gemm" => Ok(Engine::FastGemm),
            _ => Err(Error::InvalidParam(format!(
                "unknown engine `{s}` (expected auto, fast, fast-gemm or candle)"
            ))),
        }
    }
}

/// Parses `cpu`, `cuda` or `cuda:N` into a device; CUDA needs the `cuda` cargo feature.
pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        _ if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse::<usize>()
                    .map_err(|_| Error::InvalidParam(format!("bad CUDA device `{s}`")))?,
                None => 0,
            };
            if !cfg!(feature = "cuda") {
                return Err(Error::Unsupported(format!(
                    "`--device {s}`: this vggfeat was built without CUDA support; rebuild with \
                     `cargo build --release --features cuda` (needs the CUDA toolkit and cuDNN)"
                )));
            }
            Device::new_cuda(ordinal)
                .map_err(|e| Error::Unsupported(format!("cannot open CUDA device {ordinal}: {e}")))
        }
        _ => Err(Error::InvalidParam(format!(
            "unknown device `{s}` (expected cpu, cuda or cuda:N)"
        ))),
    }
}

/// Maps of the fully-convolutional head.
#[derive(Debug, Clone)]
pub struct HeadMaps {
    /// fc6 after ReLU, (N, F, h, w).
    pub fc6: Tensor,
    /// fc7 after ReLU, (N, F, h, w): the paper's descriptor layer.
    pub fc7: Tensor,
    /// Class scores before softmax, (N, classes, h, w), if the checkpoint has fc8.
    pub fc8: Option<Tensor>,
}

/// A VGG network ready to run.
pub struct Vgg {
    weights: VggWeights,
    device: Device,
    engine: Engine,
    fast: Option<fast::FastVgg>,
}

impl std::fmt::Debug for Vgg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vgg")
            .field("config", &self.weights.config)
            .field("device", &self.device)
            .field("engine", &self.engine)
            .finish()
    }
}

impl Vgg {
    /// Loads a checkpoint (see [`weights`]) onto `device` with the default engine.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::new(weights::load(path, &Device::Cpu)?, device, Engine::Auto)
    }

    /// Builds the network from validated weights.
    pub fn new(weights: VggWeights, device: &Device, engine: Engine) -> Result<Self> {
        let use_fast = match engine {
            Engine::Auto => device.is_cpu(),
            Engine::Candle => false,
            Engine::Fast | Engine::FastGemm => {
                if !device.is_cpu() {
                    return Err(Error::InvalidParam(
                        "the fast engine runs on the CPU only; use --engine candle or auto on CUDA"
                            .into(),
                    ));
                }
                true
            }
        };
        let winograd = engine != Engine::FastGemm;
        let fast = if use_fast {
            Some(fast::FastVgg::new(&weights, winograd)?)
        } else {
            None
        };
        let weights = if device.is_cpu() {
            weights
        } else {
            weights.to_device(device)?
        };
        Ok(Vgg {
            weights,
            device: device.clone(),
            engine: if use_fast {
                Engine::Fast
            } else {
                Engine::Candle
            },
            fast,
        })
    }

    /// The validated weights.
    pub fn weights(&self) -> &VggWeights {
        &self.weights
    }

    /// The configuration (A .. E).
    pub fn config(&self) -> ConfigName {
        self.weights.config
    }

    /// The device tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The engine in use ([`Engine::Fast`] or [`Engine::Candle`]).
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Whether the checkpoint has fc layers.
    pub fn has_head(&self) -> bool {
        self.weights.head.is_some()
    }

    /// The paper's descriptor layer: fc7 if the checkpoint has fc layers, else pool5.
    pub fn default_layer(&self) -> LayerName {
        if self.has_head() {
            LayerName::Fc7
        } else {
            LayerName::Pool(5)
        }
    }

    /// The smallest input side the fc layers accept: 32 times fc6's kernel side (224 for the
    /// ImageNet networks, whose fc6 is 7x7 over pool5); `None` without fc layers.
    pub fn min_head_input(&self) -> Option<usize> {
        self.weights.head.as_ref().map(|h| 32 * h.fc6_kernel())
    }

    /// Checks that `layer` exists in this network.
    pub fn check_layer(&self, layer: LayerName) -> Result<()> {
        let ok = match layer {
            LayerName::Fc6 | LayerName::Fc7 => self.has_head(),
            LayerName::Fc8 => self.weights.num_classes().is_some(),
            l => self.config().layers().iter().any(|b| b.name == l),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidParam(format!(
                "layer {layer} does not exist in {} (configuration {}{})",
                self.weights.path.display(),
                self.config(),
                if self.has_head() {
                    ""
                } else {
                    ", no fc layers"
                }
            )))
        }
    }

    /// Number of channels of `layer`'s output.
    pub fn layer_channels(&self, layer: LayerName) -> Result<usize> {
        self.check_layer(layer)?;
        let w = &self.weights;
        Ok(match layer {
            LayerName::Fc6 | LayerName::Fc7 => {
                w.head.as_ref().expect("checked").fc7.weight.dims()[0]
            }
            LayerName::Fc8 => w.num_classes().expect("checked"),
            l => {
                let mut c = 3;
                for b in self.config().layers() {
                    if let Some(conv) = w.convs.iter().find(|cv| cv.name == b.name) {
                        c = conv.weight.dims()[0];
                    }
                    if b.name == l {
                        break;
                    }
                }
                c
            }
        })
    }

    /// Validates an input batch for `layer`: three channels, large enough for the layer.
    fn check_input(&self, x: &Tensor, layer: LayerName) -> Result<()> {
        self.check_layer(layer)?;
        let (_, c, h, w) = x.dims4()?;
        if c != 3 {
            return Err(Error::InvalidParam(format!(
                "input has {c} channels, expected 3"
            )));
        }
        if let Some(min) = self.min_head_input()
            && layer.is_head()
            && h.min(w) < min
        {
            let k = min / 32;
            return Err(Error::InvalidParam(format!(
                "input {w}x{h} is too small for the dense head: fc6 needs a smallest side of at \
                 least {min} (pool5 of at least {k}x{k})"
            )));
        }
        if h.min(w) < 32 && !matches!(layer, LayerName::Conv(1, _) | LayerName::Lrn) {
            return Err(Error::InvalidParam(format!(
                "input {w}x{h} is too small: the smallest side must be at least 32"
            )));
        }
        Ok(())
    }

    /// Runs the network on `x` (N, 3, H, W) and returns the map of `layer` (N, C, h, w):
    /// conv layers after ReLU, pool layers, fc6/fc7 after ReLU, fc8 before softmax.
    pub fn forward_to(&self, x: &Tensor, layer: LayerName) -> Result<Tensor> {
        self.check_input(x, layer)?;
        if let Some(f) = &self.fast {
            return f.forward_to(x, layer);
        }
        let stop_body = if layer.is_head() {
            LayerName::Pool(5)
        } else {
            layer
        };
        let mut x = x.clone();
        let mut convs = self.weights.convs.iter();
        for l in self.config().layers() {
            x = match l.spec {
                config::Spec::Conv { kernel, .. } => {
                    let p = convs.next().expect("weights match the config");
                    conv_relu(&x, p, kernel / 2, true)?
                }
                config::Spec::Lrn => lrn(&x)?,
                config::Spec::Pool => x.max_pool2d(2)?,
            };
            if l.name == stop_body {
                break;
            }
        }
        if !layer.is_head() {
            return Ok(x);
        }
        let head = self.weights.head.as_ref().expect("checked");
        let fc6 = conv_relu(&x, &head.fc6, 0, true)?;
        if layer == LayerName::Fc6 {
            return Ok(fc6);
        }
        let fc7 = conv_relu(&fc6, &head.fc7, 0, true)?;
        if layer == LayerName::Fc7 {
            return Ok(fc7);
        }
        conv_relu(&fc7, head.fc8.as_ref().expect("checked"), 0, false)
    }

    /// Runs the network and returns the spatial mean of `layer`'s map, (N, C): the paper's
    /// global average pooling of a dense map.
    pub fn forward_pooled(&self, x: &Tensor, layer: LayerName) -> Result<Tensor> {
        if let Some(f) = &self.fast {
            self.check_input(x, layer)?;
            return f.forward_pooled(x, layer);
        }
        Ok(self.forward_to(x, layer)?.mean((2, 3))?)
    }

    /// The conv body up to pool5.
    pub fn forward_features(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_to(x, LayerName::Pool(5))
    }

    /// All head maps (fc6, fc7 and, if present, fc8) for input `x`.
    pub fn forward_head_maps(&self, x: &Tensor) -> Result<HeadMaps> {
        let fc6 = self.forward_to(x, LayerName::Fc6)?;
        let head = self
            .weights
            .head
            .as_ref()
            .expect("forward_to checked the head");
        let fc7 = conv_relu(&fc6, &head.fc7, 0, true)?;
        let fc8 = head
            .fc8
            .as_ref()
            .map(|p| conv_relu(&fc7, p, 0, false))
            .transpose()?;
        Ok(HeadMaps { fc6, fc7, fc8 })
    }

    /// The classic fixed-size path: conv body, adaptive average pool to 7x7 (to k x k for a
    /// k x k fc6), fc6, fc7 (after ReLU) and fc8. Returns (fc7 (N, F), logits (N, classes) if fc8 exists).
    pub fn forward_classic(&self, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let Some(head) = &self.weights.head else {
            return Err(Error::InvalidParam(format!(
                "{} has no fc layers",
                self.weights.path.display()
            )));
        };
        let p5 = self.forward_features(x)?;
        let p = adaptive_avg_pool(&p5, head.fc6_kernel())?;
        let fc6 = conv_relu(&p, &head.fc6, 0, true)?;
        let fc7 = conv_relu(&fc6, &head.fc7, 0, true)?;
        let logits = head
            .fc8
            .as_ref()
            .map(|p| conv_relu(&fc7, p, 0, false).and_then(|t| Ok(t.flatten_from(1)?)))
            .transpose()?;
        Ok((fc7.flatten_from(1)?, logits))
    }

    /// The paper's test-time classification: dense class scores averaged over the map and over
    /// the horizontal flip, then softmax. `x` is (N, 3, H, W); returns (N, classes).
    pub fn classify_dense(&self, x: &Tensor) -> Result<Tensor> {
        let s = self.forward_to(x, LayerName::Fc8)?.mean((2, 3))?;
        let sf = self
            .forward_to(&x.flip(&[3])?, LayerName::Fc8)?
            .mean((2, 3))?;
        Ok(candle_nn::ops::softmax(&((s + sf)? * 0.5)?, D::Minus1)?)
    }
}

fn conv_relu(x: &Tensor, p: &ConvParams, padding: usize, relu: bool) -> Result<Tensor> {
    let c = p.bias.dims()[0];
    let y = x
        .conv2d(&p.weight, padding, 1, 1, 1)?
        .broadcast_add(&p.bias.reshape((1, c, 1, 1))?)?;
    Ok(if relu { y.relu()? } else { y })
}

/// Local response normalisation across channels (A-LRN), PyTorch/Caffe convention:
/// `x / (k + alpha / n * sum_{window} x^2)^beta` with [`LRN_PARAMS`], on an NCHW tensor.
/// Differentiable (training uses it too).
pub fn lrn(x: &Tensor) -> Result<Tensor> {
    let (n, alpha, beta, k) = LRN_PARAMS;
    let c = x.dim(1)?;
    let sq = x.sqr()?;
    let padded = sq.pad_with_zeros(1, n / 2, (n - 1) / 2)?;
    let mut sum = padded.narrow(1, 0, c)?;
    for i in 1..n {
        sum = (sum + padded.narrow(1, i, c)?)?;
    }
    let denom = ((sum * (alpha / n as f64))? + k)?.powf(beta)?;
    Ok((x / denom)?)
}

/// PyTorch's `AdaptiveAvgPool2d((out, out))`: bin i covers [floor(i*H/out), ceil((i+1)*H/out)).
pub fn adaptive_avg_pool(x: &Tensor, out: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h == out && w == out {
        return Ok(x.clone());
    }
    let mut rows = Vec::with_capacity(out);
    for i in 0..out {
        let (y0, y1) = (i * h / out, ((i + 1) * h).div_ceil(out));
        let mut cols = Vec::with_capacity(out);
        for j in 0..out {
            let (x0, x1) = (j * w / out, ((j + 1) * w).div_ceil(out));
            cols.push(
                x.narrow(2, y0, y1 - y0)?
                    .narrow(3, x0, x1 - x0)?
                    .mean_keepdim((2, 3))?,
            );
        }
        rows.push(Tensor::cat(&cols, 3)?);
    }
    Ok(Tensor::cat(&rows, 2)?)
}

/// The input convention a checkpoint expects: its safetensors metadata `preprocess` if present
/// (`"caffe: ..."`), else torchvision's. Returns the convention and where it came from.
pub fn expected_normalization(w: &VggWeights) -> (Normalization, &'static str) {
    match w
        .metadata
        .get("preprocess")
        .and_then(|v| Normalization::from_metadata(v))
    {
        Some(n) => (n, "checkpoint metadata `preprocess`"),
        None => (
            Normalization::Torchvision,
            "default (no `preprocess` metadata)",
        ),
    }
}

/// One row of [`ModelInfo`]'s layer table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerInfo {
    /// Paper name (`conv3_2`, `pool3`, `fc6`).
    pub name: String,
    /// What it computes.
    pub kind: String,
    /// Weight shape (empty for pooling / LRN).
    pub weight_shape: Vec<usize>,
    /// Output channels.
    pub channels: usize,
    /// Total stride relative to the input.
    pub stride: usize,
    /// Parameters (weights + biases).
    pub params: usize,
}

/// A summary of a checkpoint, for `vggfeat info`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// The file.
    pub path: String,
    /// Configuration letter.
    pub config: String,
    /// Weight layers (the paper's depth).
    pub weight_layers: usize,
    /// File format and naming.
    pub format: String,
    /// Element type on disk.
    pub dtype: String,
    /// Whether batch norm was folded into the convs.
    pub batch_norm: bool,
    /// Layer table.
    pub layers: Vec<LayerInfo>,
    /// Total parameters.
    pub params: usize,
    /// fc8 classes, if any.
    pub classes: Option<usize>,
    /// Expected input convention.
    pub preprocess: Normalization,
    /// Where the convention came from.
    pub preprocess_source: String,
}

/// Describes a checkpoint: configuration, layer table with shapes, parameter count, preprocessing.
pub fn describe(w: &VggWeights) -> ModelInfo {
    let mut layers = Vec::new();
    let mut convs = w.convs.iter();
    let (mut stride, mut channels) = (1, 3);
    let row = |name: String, kind: &str, p: Option<&ConvParams>, channels, stride| LayerInfo {
        name,
        kind: kind.to_string(),
        weight_shape: p.map(|p| p.weight.dims().to_vec()).unwrap_or_default(),
        channels,
        stride,
        params: p.map_or(0, |p| p.weight.elem_count() + p.bias.elem_count()),
    };
    for l in w.config.layers() {
        match l.spec {
            config::Spec::Conv { kernel, .. } => {
                let p = convs.next();
                channels = p.map_or(channels, |p| p.weight.dims()[0]);
                layers.push(row(
                    l.name.to_string(),
                    &format!("conv {kernel}x{kernel} + ReLU"),
                    p,
                    channels,
                    stride,
                ));
            }
            config::Spec::Lrn => {
                layers.push(row(l.name.to_string(), "LRN", None, channels, stride))
            }
            config::Spec::Pool => {
                stride *= 2;
                layers.push(row(
                    l.name.to_string(),
                    "max-pool 2x2",
                    None,
                    channels,
                    stride,
                ));
            }
        }
    }
    if let Some(h) = &w.head {
        let f = h.fc6.weight.dims()[0];
        let k = h.fc6_kernel();
        layers.push(row(
            "fc6".into(),
            &format!("conv {k}x{k} + ReLU (dense head)"),
            Some(&h.fc6),
            f,
            stride,
        ));
        layers.push(row(
            "fc7".into(),
            "conv 1x1 + ReLU",
            Some(&h.fc7),
            f,
            stride,
        ));
        if let Some(p) = &h.fc8 {
            layers.push(row(
                "fc8".into(),
                "conv 1x1 (class scores)",
                Some(p),
                p.weight.dims()[0],
                stride,
            ));
        }
    }
    let (pre, src) = expected_normalization(w);
    ModelInfo {
        path: w.path.display().to_string(),
        config: w.config.to_string(),
        weight_layers: w.convs.len() + w.head.as_ref().map_or(0, |h| 2 + h.fc8.is_some() as usize),
        format: format!("{:?}, {:?} names", w.format, w.naming),
        dtype: format!("{:?}", w.dtype_on_disk),
        batch_norm: w.batch_norm,
        layers,
        params: w.param_count(),
        classes: w.num_classes(),
        preprocess: pre,
        preprocess_source: src.to_string(),
    }
}

impl std::fmt::Display for ModelInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "file:          {}", self.path)?;
        writeln!(
            f,
            "configuration: {} ({} weight layers{})",
            self.config,
            self.weight_layers,
            if self.batch_norm {
                ", batch norm folded"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "format:        {}, {} on disk",
            self.format,
            self.dtype.to_lowercase()
        )?;
        writeln!(
            f,
            "preprocess:    {} ({})",
            self.preprocess, self.preprocess_source
        )?;
        match self.classes {
            Some(k) => writeln!(f, "classes:       {k}")?,
            None => writeln!(f, "classes:       none (no fc8)")?,
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<8} {:<30} {:<20} {:>8} {:>7} {:>12}",
            "layer", "kind", "weight", "channels", "stride", "params"
        )?;
        for l in &self.layers {
            let shape = if l.weight_shape.is_empty() {
                "-".to_string()
            } else {
                format!("{:?}", l.weight_shape)
            };
            writeln!(
                f,
                "{:<8} {:<30} {:<20} {:>8} {:>7} {:>12}",
                l.name,
                l.kind,
                shape,
                l.channels,
                l.stride,
                group_digits(l.params)
            )?;
        }
        write!(f, "\nparameters:    {}", group_digits(self.params))
    }
}

/// `138357544` -> `138,357,544`.
pub fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
