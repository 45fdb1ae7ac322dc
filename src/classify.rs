//! The paper's test-time classification protocol (Section 3.2): rescale isotropically to the
//! test scale Q, apply the network densely, average the class score map spatially and over the
//! horizontal flip, softmax, and rank the classes.

use std::path::Path;

use candle_core::Tensor;
use image::RgbImage;

use crate::error::{Error, Result};
use crate::image_io::{DecodeOptions, load_rgb_with};
use crate::model::Vgg;
use crate::preprocess::{Normalization, resize_smallest_side};

/// One ranked class.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Class index (fc8 row).
    pub class: usize,
    /// Softmax probability.
    pub prob: f32,
}

/// Classifies one image at scale `q` (default in the CLI: 384), returning the `top_k` classes.
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
    Ok(rank(&class_probs(net, &img, q, norm)?, top_k))
}

/// Checks that the test scale `q` is at least the network's smallest dense input
/// ([`Vgg::min_head_input`]: 224 for ImageNet networks, 32k for a k x k fc6).
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
    Ok(())
}

/// The class probabilities of one decoded image under the paper's dense protocol: rescale to
/// smallest side `q` (Pillow-exact), normalise, [`Vgg::classify_dense`]. Returns one
/// probability per fc8 class. `q` must pass [`check_scale`].
pub fn class_probs(net: &Vgg, img: &RgbImage, q: u32, norm: Normalization) -> Result<Vec<f32>> {
    let s = resize_smallest_side(img, q);
    let x = Tensor::from_vec(
        norm.to_chw(&s, false),
        (1, 3, s.height() as usize, s.width() as usize),
        net.device(),
    )?;
    Ok(net.classify_dense(&x)?.squeeze(0)?.to_vec1()?)
}

/// The `top_k` classes of a probability vector, most probable first (ties: lower index first).
pub fn rank(probs: &[f32], top_k: usize) -> Vec<Prediction> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    idx.into_iter()
        .take(top_k)
        .map(|class| Prediction {
            class,
            prob: probs[class],
        })
        .collect()
}
