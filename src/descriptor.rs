//! The paper's per-scale image descriptor (Appendix B; `PROTOCOL.md`): rescale the image to
//! smallest side Q, run the network densely to the descriptor layer, average the map over its
//! spatial positions (global average pooling), do the same for the horizontal flip and average
//! the two. The paper's dense test-time classification ([`crate::classify`]) takes the same
//! spatial mean of the fc8 score map, but averages the flip after the soft-max.
//!
//! [`PerScale::describe`] computes it for a group of images already resized to one scale,
//! batching inputs of equal shape (an image and its flip, equal-size images) into one forward
//! pass; the result does not depend on how inputs were batched.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::Tensor;
use image::RgbImage;

use crate::error::Result;
use crate::model::config::LayerName;
use crate::model::{FeatureMap, Layout, Vgg};
use crate::preprocess::Normalization;

/// The spatial mean of each image's map: one `channels`-long vector per image, accumulated in
/// f64 whatever the map's layout.
pub fn spatial_mean(map: &FeatureMap) -> Vec<Vec<f32>> {
    let positions = (map.h * map.w).max(1) as f64;
    (0..map.n)
        .map(|i| {
            let img = map.image(i);
            let mut acc = vec![0f64; map.channels];
            match map.layout {
                Layout::Nhwc => {
                    for px in img.chunks_exact(map.channels.max(1)) {
                        for (a, v) in acc.iter_mut().zip(px) {
                            *a += f64::from(*v);
                        }
                    }
                }
                Layout::Nchw => {
                    for (a, plane) in acc.iter_mut().zip(img.chunks_exact((map.h * map.w).max(1))) {
                        *a = plane.iter().map(|v| f64::from(*v)).sum();
                    }
                }
            }
            acc.into_iter().map(|a| (a / positions) as f32).collect()
        })
        .collect()
}

/// The per-scale descriptor with flip: the mean of the two spatial means, `(a + b) / 2`.
pub fn flip_average(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| 0.5 * (x + y)).collect()
}

/// Runs `net` on the NCHW batch `x` and returns the spatial mean of `layer`'s map per image.
pub fn pooled(net: &Vgg, x: &Tensor, layer: LayerName) -> Result<Vec<Vec<f32>>> {
    Ok(spatial_mean(&net.forward_map(x, layer)?))
}

/// How one net's per-scale descriptors are computed.
#[derive(Debug, Clone, Copy)]
pub struct PerScale<'a> {
    /// The network.
    pub net: &'a Vgg,
    /// The layer whose map is averaged.
    pub layer: LayerName,
    /// Input convention.
    pub norm: Normalization,
    /// Average with the horizontal flip.
    pub flip: bool,
    /// Inputs per forward pass at most (an image and its flip count as two); at least 1.
    pub batch: usize,
}

impl PerScale<'_> {
    /// The descriptor of each image (all resized to the same scale), or the network's error
    /// (in words) for the images of a failed batch; and the seconds spent in the network.
    pub fn describe(
        &self,
        images: &[&RgbImage],
    ) -> (Vec<std::result::Result<Vec<f32>, String>>, f64) {
        let views = if self.flip { 2 } else { 1 };
        // Per image, the spatial mean of each view, filled batch by batch.
        let mut means: Vec<Vec<Option<Vec<f32>>>> = vec![vec![None; views]; images.len()];
        let mut failed: Vec<Option<String>> = vec![None; images.len()];
        let mut seconds = 0.0;
        // (image, view) inputs grouped by shape, in a deterministic order.
        let mut groups: BTreeMap<(u32, u32), Vec<(usize, usize)>> = BTreeMap::new();
        for (i, im) in images.iter().enumerate() {
            for v in 0..views {
                groups.entry(im.dimensions()).or_default().push((i, v));
            }
        }
        for ((w, h), members) in groups {
            for batch in members.chunks(self.batch.max(1)) {
                let mut data = Vec::with_capacity(batch.len() * 3 * (w * h) as usize);
                for &(i, v) in batch {
                    data.extend(self.norm.to_chw(images[i], v == 1));
                }
                let t0 = Instant::now();
                let shape = (batch.len(), 3, h as usize, w as usize);
                let rows = Tensor::from_vec(data, shape, self.net.device())
                    .map_err(Into::into)
                    .and_then(|x| pooled(self.net, &x, self.layer));
                seconds += t0.elapsed().as_secs_f64();
                match rows {
                    Ok(rows) => {
                        for (&(i, v), row) in batch.iter().zip(rows) {
                            means[i][v] = Some(row);
                        }
                    }
                    Err(e) => {
                        for &(i, _) in batch {
                            failed[i] = Some(e.to_string());
                        }
                    }
                }
            }
        }
        let out = means
            .into_iter()
            .zip(failed)
            .map(|(m, f)| match (f, m.as_slice()) {
                (Some(e), _) => Err(e),
                (None, [Some(a)]) => Ok(a.clone()),
                (None, [Some(a), Some(b)]) => Ok(flip_average(a, b)),
                (None, _) => Err("internal error: a view was not computed".to_string()),
            })
            .collect();
        (out, seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(layout: Layout, data: Vec<f32>, c: usize, h: usize, w: usize) -> FeatureMap {
        FeatureMap {
            n: data.len() / (c * h * w),
            channels: c,
            h,
            w,
            layout,
            data,
        }
    }

    #[test]
    fn means_of_both_layouts_and_flip_average() {
        // Two positions, two channels: channels-last [1, 10], [3, 20].
        let nhwc = map(Layout::Nhwc, vec![1.0, 10.0, 3.0, 20.0], 2, 1, 2);
        assert_eq!(spatial_mean(&nhwc), vec![vec![2.0, 15.0]]);
        let nchw = map(Layout::Nchw, vec![1.0, 3.0, 10.0, 20.0], 2, 1, 2);
        assert_eq!(spatial_mean(&nchw), vec![vec![2.0, 15.0]]);
        assert_eq!(flip_average(&[1.0, 2.0], &[3.0, 4.0]), vec![2.0, 3.0]);
    }
}
