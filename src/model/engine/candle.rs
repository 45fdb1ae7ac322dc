//! The reference engine: candle's own ops (`conv2d`, `max_pool2d`) on any device, CPU or CUDA
//! (cuDNN). Also the two ops every other user of candle tensors shares: a conv with bias and
//! ReLU, and the LRN (differentiable, so training uses them too).

use candle_core::{DType, Tensor};

use super::{FeatureMap, Layout, TensorIo};
use crate::error::{Error, Result};
use crate::model::Precision;
use crate::model::config::LRN_PARAMS;
use crate::model::params::{ConvParams, VggWeights};
use crate::model::plan::{Backend, Conv, Step};

/// `relu?(x.conv2d(w, padding) + b)` for an NCHW `x`, kernel (out, in, k, k) and bias (out).
pub fn conv_bias_relu(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    padding: usize,
    relu: bool,
) -> Result<Tensor> {
    let c = b.dims()[0];
    let y = x
        .conv2d(w, padding, 1, 1, 1)?
        .broadcast_add(&b.reshape((1, c, 1, 1))?)?;
    Ok(if relu { y.relu()? } else { y })
}

/// Local response normalisation across the channels of dimension `dim` (1 for NCHW, 3 for
/// NHWC), PyTorch/Caffe convention: `x / (k + alpha / n * sum_{window} x^2)^beta` with
/// [`LRN_PARAMS`], the window `[c - n/2, c + (n-1)/2]` clipped to the channels.
/// Differentiable (training uses it too).
pub fn lrn(x: &Tensor, dim: usize) -> Result<Tensor> {
    let (n, alpha, beta, k) = LRN_PARAMS;
    let c = x.dim(dim)?;
    let sq = x.sqr()?;
    let padded = sq.pad_with_zeros(dim, n / 2, (n - 1) / 2)?;
    let mut sum = padded.narrow(dim, 0, c)?;
    for i in 1..n {
        sum = (sum + padded.narrow(dim, i, c)?)?;
    }
    let denom = ((sum * (alpha / n as f64))? + k)?.powf(beta)?;
    Ok((x / denom)?)
}

/// The candle engine: the layers' tensors on the network's device, in the engine's dtype.
#[derive(Debug)]
pub struct CandleEngine {
    layers: Vec<ConvParams>,
    dtype: DType,
}

impl CandleEngine {
    /// Takes the layers of `w` (already on the device the engine runs on). In bf16 (CUDA only:
    /// candle has no bf16 matrix product on the CPU) the weights and activations are bf16
    /// tensors and cuDNN's bf16 convolutions run them; maps leave as f32.
    pub fn new(w: &VggWeights, precision: Precision) -> Result<Self> {
        let dtype = match precision {
            Precision::F32 => DType::F32,
            Precision::Bf16 => {
                if w.convs.first().is_none_or(|c| c.weight.device().is_cpu()) {
                    return Err(Error::Unsupported(
                        "bf16 precision with the candle engine runs on CUDA only (candle has no \
                         bf16 matrix product on the CPU); on the CPU use the auto or fast engine"
                            .into(),
                    ));
                }
                DType::BF16
            }
            Precision::Int8 => {
                return Err(Error::Unsupported(
                    "int8 precision runs on the fast CPU engine only (auto or fast engine, on \
                     the CPU); candle has no int8 convolution"
                        .into(),
                ));
            }
        };
        let mut layers = Vec::new();
        for l in w.layers() {
            layers.push(ConvParams {
                name: l.name,
                weight: l.weight.to_dtype(dtype)?,
                bias: l.bias.to_dtype(dtype)?,
            });
        }
        Ok(CandleEngine { layers, dtype })
    }
}

impl Backend for CandleEngine {
    type Act = Tensor;

    fn conv(&self, x: Tensor, c: &Conv, _: &Step) -> Result<Tensor> {
        let Conv {
            pad,
            relu,
            param,
            sqrt_input,
            ..
        } = *c;
        let p = &self.layers[param];
        let x = if sqrt_input { x.relu()?.sqrt()? } else { x };
        conv_bias_relu(&x, &p.weight, &p.bias, pad, relu)
    }

    fn lrn(&self, x: Tensor, _: &Step) -> Result<Tensor> {
        lrn(&x, 1)
    }

    fn pool(&self, x: Tensor, _: &Step) -> Result<Tensor> {
        Ok(x.max_pool2d(2)?)
    }
}

impl TensorIo for CandleEngine {
    fn input(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.to_dtype(self.dtype)?)
    }

    fn to_tensor(&self, x: Tensor) -> Result<Tensor> {
        Ok(x.to_dtype(DType::F32)?)
    }

    fn to_map(&self, x: Tensor) -> Result<FeatureMap> {
        let x = x.to_dtype(DType::F32)?;
        let (n, channels, h, w) = x.dims4()?;
        Ok(FeatureMap {
            n,
            channels,
            h,
            w,
            layout: Layout::Nchw,
            data: x
                .flatten_all()?
                .to_device(&candle_core::Device::Cpu)?
                .to_vec1()?,
        })
    }
}
