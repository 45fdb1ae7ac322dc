//! The weight types: a validated VGG network as float32 convolution kernels, whatever file it
//! came from. Reading and writing them is [`super::checkpoint`]'s job, drawing them at random
//! [`super::init`]'s, walking them [`super::plan`]'s.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

use super::config::{ConfigName, LayerName};
use crate::error::Result;

/// On-disk format of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    /// A `.safetensors` file.
    Safetensors,
    /// A PyTorch zip archive written by `torch.save`.
    Pth,
    /// A Keras HDF5 weights file (Keras 2 `save_weights` or Keras 3 `.weights.h5`).
    KerasH5,
    /// Weights made in memory (drawn at random, or a training snapshot), never read from a file.
    Memory,
}

/// Tensor naming convention of a checkpoint; the names themselves are in
/// [`super::checkpoint::HEAD_NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Naming {
    /// torchvision's (fc layers as Linear).
    Torchvision,
    /// timm's (fc6 and fc7 as convolutions).
    Timm,
    /// Conv body only, no fc layers.
    BodyOnly,
}

/// Weights of one convolution, ready to use: float32, (out, in, k, k) and (out).
#[derive(Debug, Clone)]
pub struct ConvParams {
    /// The layer's paper name (`conv3_2`, `fc6`).
    pub name: LayerName,
    /// Kernel, (out, in, k, k).
    pub weight: Tensor,
    /// Bias, (out).
    pub bias: Tensor,
}

impl ConvParams {
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Kernel side.
    pub fn kernel(&self) -> usize {
        self.weight.dims()[2]
    }

    /// Weights plus biases.
    pub fn param_count(&self) -> usize {
        self.weight.elem_count() + self.bias.elem_count()
    }

    /// The same layer on `device`.
    pub fn to_device(&self, device: &Device) -> Result<ConvParams> {
        Ok(ConvParams {
            name: self.name,
            weight: self.weight.to_device(device)?,
            bias: self.bias.to_device(device)?,
        })
    }
}

/// The fully-convolutional head: fc6 as a k x k conv (k = 7 for ImageNet networks), fc7 and fc8
/// as 1x1 convs.
#[derive(Debug, Clone)]
pub struct HeadParams {
    /// fc6, (F, C, k, k).
    pub fc6: ConvParams,
    /// fc7, (F, F, 1, 1).
    pub fc7: ConvParams,
    /// fc8, (classes, F, 1, 1); absent in checkpoints saved without a classifier.
    pub fc8: Option<ConvParams>,
}

impl HeadParams {
    /// The side k of fc6's kernel: the pool5 size the network was trained at (7 for a 224 crop,
    /// `crop / 32` in general).
    pub fn fc6_kernel(&self) -> usize {
        self.fc6.kernel()
    }
}

/// A VGG network, validated and converted to float32 convolution weights.
#[derive(Debug, Clone)]
pub struct VggWeights {
    /// The file it came from (or a description in angle brackets for weights made in memory).
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Its naming convention.
    pub naming: Naming,
    /// The element type on disk (F32, F16, BF16).
    pub dtype_on_disk: DType,
    /// The configuration inferred from the layout.
    pub config: ConfigName,
    /// Whether batch-norm layers were folded into the convs.
    pub batch_norm: bool,
    /// The conv body, in order; LRN and pooling have no weights.
    pub convs: Vec<ConvParams>,
    /// The head, if the checkpoint has fc layers.
    pub head: Option<HeadParams>,
    /// Free-form metadata stored in the file (safetensors `__metadata__`; keys in
    /// [`super::checkpoint::meta`]).
    pub metadata: BTreeMap<String, String>,
}

impl VggWeights {
    /// Every layer with weights, in network order: the body's convs, then fc6, fc7, fc8.
    /// [`super::plan::Conv::param`] indexes this list.
    pub fn layers(&self) -> Vec<&ConvParams> {
        let mut v: Vec<&ConvParams> = self.convs.iter().collect();
        if let Some(h) = &self.head {
            v.push(&h.fc6);
            v.push(&h.fc7);
            v.extend(h.fc8.as_ref());
        }
        v
    }

    /// The body's convs and the head from layers in network order (as [`VggWeights::layers`]
    /// lists them): the head is fc6 and fc7 (and fc8 if present), by name.
    pub fn split_layers(layers: Vec<ConvParams>) -> (Vec<ConvParams>, Option<HeadParams>) {
        let (head, convs): (Vec<ConvParams>, Vec<ConvParams>) =
            layers.into_iter().partition(|l| l.name.is_head());
        let mut head = head.into_iter();
        let h = match (head.next(), head.next()) {
            (Some(fc6), Some(fc7)) => Some(HeadParams {
                fc6,
                fc7,
                fc8: head.next(),
            }),
            _ => None,
        };
        (convs, h)
    }

    /// [`VggWeights::layers`], mutable.
    pub fn layers_mut(&mut self) -> Vec<&mut ConvParams> {
        let mut v: Vec<&mut ConvParams> = self.convs.iter_mut().collect();
        if let Some(h) = &mut self.head {
            v.push(&mut h.fc6);
            v.push(&mut h.fc7);
            v.extend(h.fc8.as_mut());
        }
        v
    }

    /// Total number of parameters (after folding batch norm, if any).
    pub fn param_count(&self) -> usize {
        self.layers().iter().map(|c| c.param_count()).sum()
    }

    /// Number of classes of fc8, if present.
    pub fn num_classes(&self) -> Option<usize> {
        self.head.as_ref()?.fc8.as_ref().map(|f| f.out_channels())
    }

    /// fc6's kernel side, if the network has fc layers.
    pub fn fc6_kernel(&self) -> Option<usize> {
        self.head.as_ref().map(HeadParams::fc6_kernel)
    }

    /// Moves every tensor to `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let mut out = self.clone();
        for (dst, src) in out.layers_mut().into_iter().zip(self.layers()) {
            *dst = src.to_device(device)?;
        }
        Ok(out)
    }
}
