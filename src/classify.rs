//! The paper's test-time classification protocol (Section 3.2): rescale isotropically to the
//! test scale Q, apply the network densely, average the class score map spatially and over the
//! horizontal flip ([`crate::descriptor`] of fc8), softmax, and rank the classes.

use std::path::Path;

use candle_core::Tensor;
use image::RgbImage;

use crate::descriptor::{flip_average, pooled};
use crate::error::{Error, Result};
use crate::image_io::{DecodeOptions, load_rgb_with};
use crate::model::Vgg;
use crate::model::config::LayerName;
use crate::preprocess::{Normalization, check_scaled_size, resize_smallest_side};

/// The paper's default test scale for classification (Table 3's single scale Q = 384).
pub const DEFAULT_SCALE: u32 = 384;

/// One ranked class.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Class index (fc8 row).
    pub class: usize,
    /// Softmax probability.
    pub prob: f32,
}

/// Classifies one image at scale `q`, returning the `top_k` classes.
pub fn classify_file(
    net: &Vgg,
    path: &Path,
    q: u32,
    norm: Normalization,
    top_k: usize,
    decode: &DecodeOptions,
) -> Result<Vec<Prediction>> {
    check_scale(net, q)?;
    let img = load_rgb_with(path, decode)?;
    check_scaled_size(img.width(), img.height(), q, decode.max_pixels).map_err(|reason| {
        Error::Image {
            path: path.to_path_buf(),
            reason,
        }
    })?;
    Ok(rank(&class_probs(net, &img, q, norm)?, top_k))
}

/// Checks that the net has a classifier and that the test scale `q` is at least its smallest
/// dense input ([`Vgg::min_head_input`]: 224 for ImageNet networks, 32k for a k x k fc6).
pub fn check_scale(net: &Vgg, q: u32) -> Result<()> {
    let min = net.min_head_input().ok_or_else(|| {
        Error::InvalidParam(format!(
            "{} has no fc layers; classification needs fc6..fc8",
            net.weights().path.display()
        ))
    })?;
    if (q as usize) < min {
        return Err(Error::InvalidParam(format!(
            "scale {q} is below {min}, the smallest input of the dense head"
        )));
    }
    net.check_layer(LayerName::Fc8)
}

/// The class probabilities of one decoded image under the paper's dense protocol: rescale to
/// smallest side `q` (Pillow-exact), normalise, the fc8 map of the image and its flip (one
/// batch), spatial means, their average, softmax. Returns one probability per fc8 class. `q`
/// must pass [`check_scale`].
pub fn class_probs(net: &Vgg, img: &RgbImage, q: u32, norm: Normalization) -> Result<Vec<f32>> {
    let s = resize_smallest_side(img, q);
    let (h, w) = (s.height() as usize, s.width() as usize);
    let mut data = norm.to_chw(&s, false);
    data.extend(norm.to_chw(&s, true));
    let x = Tensor::from_vec(data, (2, 3, h, w), net.device())?;
    let means = pooled(net, &x, LayerName::Fc8)?;
    Ok(softmax(&flip_average(&means[0], &means[1])))
}

/// `exp(v - max) / sum`, in f32 (as PyTorch's and candle's softmax).
pub fn softmax(v: &[f32]) -> Vec<f32> {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = v.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

/// The `top_k` classes of a probability vector, most probable first (ties: lower index first).
pub fn rank(probs: &[f32], top_k: usize) -> Vec<Prediction> {
    crate::metrics::ranking(probs)
        .into_iter()
        .take(top_k)
        .map(|class| Prediction {
            class,
            prob: probs[class],
        })
        .collect()
}
