//! The VGG network: a conv body (up to pool5) and a fully-convolutional head (fc6 as a k x k conv
//! without padding, fc7 and fc8 as 1x1 convs), so that the network applies densely to any image
//! whose smallest side is at least 32 k (224 for the ImageNet networks, whose fc6 is 7x7) and
//! returns maps. Inputs are batch-first NCHW float32 tensors.
//!
//! - [`config`]: the paper's Table 1 as data, layer names;
//! - [`plan`]: the one walk of a network, body and head, that every engine and the trainer run;
//! - [`params`]: the weight types; [`init`]: random initialisation;
//! - [`checkpoint`]: every file format and tensor name (read, write, batch-norm folding);
//! - `info`: a checkpoint's description for `vggfeat info`;
//! - the engines (private): candle's ops on any device, and a fast CPU engine (channels-last,
//!   Winograd and GEMM), chosen by [`Engine`].
//!
//! [`Vgg`] ties them together: weights, their plan and an engine.

pub mod checkpoint;
pub mod config;
pub(crate) mod engine;
pub mod info;
pub mod init;
pub mod params;
pub mod plan;

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::{Error, Param, Result};
use crate::preprocess::{Normalization, Preprocess};
use config::{ConfigName, LayerName};
use engine::Runner;

pub use checkpoint::expected_normalization;
pub use engine::{FeatureMap, Layout, gemm_probe};
pub use info::{LayerInfo, ModelInfo, describe, info};
pub use init::InitScheme;
pub use params::{ConvParams, Format, HeadParams, Naming, VggWeights};
pub use plan::{Fc6Input, Plan};

/// Which implementation runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The fast CPU path on the CPU, candle (cuDNN) on CUDA.
    #[default]
    Auto,
    /// candle's conv2d everywhere (the reference implementation).
    Candle,
    /// The fast CPU path (CPU only): Winograd for the 3x3 layers (F(4x4,3x3) in f32, F(2x2,3x3)
    /// in bf16), packed GEMM micro-kernels elsewhere.
    Fast,
    /// The fast CPU path with every conv as unfold + GEMM (no Winograd), for comparison.
    FastGemm,
}

crate::util::choice::choice!(Engine, "engine", crate::error::Param::Engine, [
    Engine::Auto => "auto": "The fast CPU path on the CPU, candle (cuDNN) on CUDA.",
    Engine::Fast => "fast": "The fast CPU path: Winograd for 3x3 layers, GEMM elsewhere.",
    Engine::FastGemm => "fast-gemm": "The fast CPU path with every conv as unfold + GEMM.",
    Engine::Candle => "candle": "candle's own convolutions (the reference).",
]);

/// The arithmetic of a network's products (convolutions and fc layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// f32 everywhere (the reference; what PyTorch computes).
    #[default]
    F32,
    /// bf16 weights and activations in the products, accumulated in f32; maps and descriptors
    /// stay f32. On the CPU it needs AVX512-BF16 and runs about twice as fast; descriptors are
    /// within about 1e-2 relative L2 of f32's.
    Bf16,
    /// int8 products with i32 accumulation: weights quantised once per output channel (in the
    /// Winograd domain for 3x3 layers), activations per row as they enter each product (no
    /// calibration step); maps and descriptors stay f32. On the CPU it needs AVX512-VNNI.
    Int8,
}

crate::util::choice::choice!(Precision, "precision", crate::error::Param::Precision, [
    Precision::F32 => "f32": "f32 products (the reference).",
    Precision::Bf16 => "bf16": "bf16 products with f32 accumulation: about twice as fast on CPUs with AVX512-BF16.",
    Precision::Int8 => "int8": "int8 products with i32 accumulation (dynamic quantisation, no calibration): the fastest on CPUs with AVX512-VNNI.",
]);

/// How a network runs: the engine and the precision of its products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunOptions {
    /// Which implementation (default [`Engine::Auto`]).
    pub engine: Engine,
    /// Which arithmetic (default [`Precision::F32`]).
    pub precision: Precision,
}

impl From<Engine> for RunOptions {
    fn from(engine: Engine) -> Self {
        RunOptions {
            engine,
            ..RunOptions::default()
        }
    }
}

/// A device by name: `cpu`, `cuda` (= `cuda:0`) or `cuda:N`. Parsing checks the spelling only;
/// [`DeviceSpec::open`] opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse::<usize>()
                    .map(DeviceSpec::Cuda)
                    .map_err(|_| Error::param(Param::Device, format!("bad CUDA device `{s}`"))),
                None => Err(Error::param(
                    Param::Device,
                    format!("unknown device `{s}` (expected cpu, cuda or cuda:N)"),
                )),
            },
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

crate::util::serde_as_str!(DeviceSpec);

impl DeviceSpec {
    /// Opens the device; CUDA needs the `cuda` cargo feature (without it: a clear
    /// [`Error::Unsupported`]).
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(ordinal) => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::Unsupported(format!(
                        "device {self}: this vggfeat was built without CUDA support; rebuild \
                         with `cargo build --release --features cuda` (needs the CUDA toolkit and \
                         cuDNN)"
                    )));
                }
                Device::new_cuda(ordinal).map_err(|e| {
                    Error::Unsupported(format!("cannot open CUDA device {ordinal}: {e}"))
                })
            }
        }
    }
}

/// Parses and opens a device: `cpu`, `cuda` or `cuda:N` (see [`DeviceSpec`]).
pub fn parse_device(s: &str) -> Result<Device> {
    s.parse::<DeviceSpec>()?.open()
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

/// A VGG network ready to run: validated weights, their [`Plan`] and an engine.
pub struct Vgg {
    weights: VggWeights,
    plan: Plan,
    device: Device,
    engine: Engine,
    precision: Precision,
    runner: Runner,
}

impl std::fmt::Debug for Vgg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vgg")
            .field("config", &self.weights.config)
            .field("device", &self.device)
            .field("engine", &self.engine)
            .field("precision", &self.precision)
            .finish()
    }
}

impl Vgg {
    /// Loads a checkpoint (see [`checkpoint`]) onto `device` with the default engine.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::load_with(path, device, Engine::Auto)
    }

    /// Loads a checkpoint onto `device` with an engine (or [`RunOptions`]: engine and
    /// precision).
    pub fn load_with(path: &Path, device: &Device, run: impl Into<RunOptions>) -> Result<Self> {
        Self::new(checkpoint::load(path, &Device::Cpu)?, device, run)
    }

    /// Builds the network from validated weights (in memory or loaded from a file), to run
    /// with an engine (or [`RunOptions`]: engine and precision). A precision this machine
    /// cannot run (bf16 on a CPU without AVX512-BF16) is an [`Error::Unsupported`] naming it.
    pub fn new(weights: VggWeights, device: &Device, run: impl Into<RunOptions>) -> Result<Self> {
        let RunOptions { engine, precision } = run.into();
        let use_fast = match engine {
            Engine::Auto => device.is_cpu(),
            Engine::Candle => false,
            Engine::Fast | Engine::FastGemm => {
                if !device.is_cpu() {
                    return Err(Error::param(
                        Param::Engine,
                        "the fast engine runs on the CPU only; use the candle or auto engine on \
                         CUDA",
                    ));
                }
                true
            }
        };
        let plan = Plan::new(&weights);
        let weights = if device.is_cpu() {
            weights
        } else {
            weights.to_device(device)?
        };
        let runner = if use_fast {
            Runner::fast(&weights, &plan, engine != Engine::FastGemm, precision)?
        } else {
            Runner::candle(&weights, precision)?
        };
        Ok(Vgg {
            weights,
            plan,
            device: device.clone(),
            engine: match (use_fast, engine) {
                (true, Engine::FastGemm) => Engine::FastGemm,
                (true, _) => Engine::Fast,
                (false, _) => Engine::Candle,
            },
            precision,
            runner,
        })
    }

    /// The input convention `preprocess` asks for: the one named, or for
    /// [`Preprocess::Auto`] the checkpoint's metadata, else torchvision.
    pub fn normalization(&self, preprocess: Preprocess) -> Result<Normalization> {
        match preprocess.named() {
            Some(n) => Ok(n),
            None => Ok(expected_normalization(&self.weights)?.0),
        }
    }

    /// The validated weights.
    pub fn weights(&self) -> &VggWeights {
        &self.weights
    }

    /// The walk of this network.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The configuration (A .. E).
    pub fn config(&self) -> ConfigName {
        self.weights.config
    }

    /// The device tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The engine in use ([`Engine::Fast`], [`Engine::FastGemm`] or [`Engine::Candle`]).
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The kernels the network runs on, in words: the fast engine's GEMM micro-kernels for this
    /// CPU and precision (`AVX-512F f32 micro-kernels`, ...), or candle's convolution.
    pub fn kernel(&self) -> String {
        match self.engine {
            Engine::Candle if self.device.is_cpu() => "candle conv2d (CPU)".into(),
            Engine::Candle => "candle conv2d (CUDA, cuDNN)".into(),
            _ => engine::isa::kernel_for(self.precision)
                .map_or_else(|e| e.to_string(), |k| k.describe().into()),
        }
    }

    /// The precision of the network's products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Whether the checkpoint has fc layers.
    pub fn has_head(&self) -> bool {
        self.plan.has_head()
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
        self.plan.min_head_input()
    }

    /// Checks that `layer` exists in this network; the error names the weights file.
    pub fn check_layer(&self, layer: LayerName) -> Result<()> {
        self.plan.index_of(layer).map(|_| ()).map_err(|e| match e {
            Error::Param { param, reason } => Error::Param {
                param,
                reason: format!("{reason} ({})", self.weights.path.display()),
            },
            e => e,
        })
    }

    /// Number of channels of `layer`'s output.
    pub fn layer_channels(&self, layer: LayerName) -> Result<usize> {
        self.check_layer(layer)?;
        self.plan.channels(layer)
    }

    fn check_input(&self, x: &Tensor, layer: LayerName) -> Result<()> {
        self.check_layer(layer)?;
        let (_, c, h, w) = x.dims4()?;
        self.plan.check_input(c, h, w, layer)
    }

    /// Runs the network on `x` (N, 3, H, W) and returns the map of `layer` (N, C, h, w):
    /// conv layers after ReLU, pool layers, fc6/fc7 after ReLU, fc8 before softmax.
    pub fn forward_to(&self, x: &Tensor, layer: LayerName) -> Result<Tensor> {
        self.check_input(x, layer)?;
        self.runner
            .tensor(&self.plan, x, self.plan.through(layer)?, &self.device)
    }

    /// Runs the network and returns `layer`'s map on the CPU in the engine's own layout (the
    /// fast engine's is channels-last): what descriptors are computed from, without a transpose.
    pub fn forward_map(&self, x: &Tensor, layer: LayerName) -> Result<FeatureMap> {
        self.check_input(x, layer)?;
        self.runner.map(&self.plan, x, self.plan.through(layer)?)
    }

    /// The conv body up to pool5.
    pub fn forward_features(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_to(x, LayerName::Pool(5))
    }

    /// Runs the single head step producing `layer` on `x`, the map of the step before it.
    fn head_step(&self, x: &Tensor, layer: LayerName) -> Result<Tensor> {
        let i = self.plan.index_of(layer)?;
        self.runner.tensor(&self.plan, x, i..i + 1, &self.device)
    }

    /// All head maps (fc6, fc7 and, if present, fc8) for input `x`.
    pub fn forward_head_maps(&self, x: &Tensor) -> Result<HeadMaps> {
        let fc6 = self.forward_to(x, LayerName::Fc6)?;
        let fc7 = self.head_step(&fc6, LayerName::Fc7)?;
        let fc8 = if self.weights.num_classes().is_some() {
            Some(self.head_step(&fc7, LayerName::Fc8)?)
        } else {
            None
        };
        Ok(HeadMaps { fc6, fc7, fc8 })
    }

    /// The classic fixed-size path: conv body, adaptive average pool to 7x7 (to k x k for a
    /// k x k fc6), fc6, fc7 (after ReLU) and fc8. Returns (fc7 (N, F), logits (N, classes) if fc8
    /// exists).
    pub fn forward_classic(&self, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let Some(k) = self.plan.fc6_kernel() else {
            return Err(Error::Usage(format!(
                "{} has no fc layers",
                self.weights.path.display()
            )));
        };
        let p5 = self.forward_features(x)?;
        let p = adaptive_avg_pool(&p5, k)?;
        let fc6 = self.head_step(&p, LayerName::Fc6)?;
        let fc7 = self.head_step(&fc6, LayerName::Fc7)?;
        let logits = if self.weights.num_classes().is_some() {
            Some(self.head_step(&fc7, LayerName::Fc8)?.flatten_from(1)?)
        } else {
            None
        };
        Ok((fc7.flatten_from(1)?, logits))
    }
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
