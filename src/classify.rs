//! The paper's test-time classification protocol (Section 3.2): rescale isotropically to the
//! test scale Q, apply the network densely, average the class score map spatially and over the
//! horizontal flip, softmax, and rank the classes.

use std::path::Path;

use candle_core::Tensor;

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
    if q < 224 {
        return Err(Error::InvalidParam(format!(
            "scale {q} is below 224, the smallest input of the dense head"
        )));
    }
    let img = load_rgb_with(path, decode)?;
    let s = resize_smallest_side(&img, q);
    let x = Tensor::from_vec(
        norm.to_chw(&s, false),
        (1, 3, s.height() as usize, s.width() as usize),
        net.device(),
    )?;
    let probs: Vec<f32> = net.classify_dense(&x)?.squeeze(0)?.to_vec1()?;
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    Ok(idx
        .into_iter()
        .take(top_k)
        .map(|class| Prediction {
            class,
            prob: probs[class],
        })
        .collect())
}
