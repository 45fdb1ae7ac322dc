//! Batching: a group of prepared inputs through every net at every scale. Inputs of equal shape
//! (an image and its flip, equal-size images) share a forward pass
//! ([`crate::descriptor::PerScale`]); the result does not depend on how inputs were grouped.

use image::RgbImage;

use super::Extractor;
use crate::descriptor::PerScale;

/// Per input, its floats (net 0 scale 0, net 0 scale 1, ..., net 1 scale 0, ...: a store
/// record's layout), or the first failure in words.
pub(super) type Floats = std::result::Result<Vec<f32>, String>;

impl Extractor {
    /// Every net's per-scale descriptors for a group of prepared images (one image per scale
    /// each), run on the extractor's thread pool; adds the seconds spent in the network to
    /// `network_seconds`.
    pub(super) fn describe_group(
        &self,
        images: &[&Vec<RgbImage>],
        network_seconds: &mut f64,
    ) -> Vec<Floats> {
        match &self.pool {
            Some(pool) => pool.install(|| self.describe_group_here(images, network_seconds)),
            None => self.describe_group_here(images, network_seconds),
        }
    }

    fn describe_group_here(
        &self,
        images: &[&Vec<RgbImage>],
        network_seconds: &mut f64,
    ) -> Vec<Floats> {
        let p = &self.params;
        let mut out: Vec<Floats> = images.iter().map(|_| Ok(Vec::new())).collect();
        for net in &self.nets {
            let per_scale = PerScale {
                net: &net.vgg,
                layer: net.layer,
                norm: net.norm,
                flip: p.flip,
                batch: p.batch,
            };
            for (s, q) in p.scales.iter().enumerate() {
                let at_scale: Vec<&RgbImage> = images.iter().map(|im| &im[s]).collect();
                let (descs, secs) = per_scale.describe(&at_scale);
                *network_seconds += secs;
                for (acc, d) in out.iter_mut().zip(descs) {
                    match (acc.as_mut(), d) {
                        (Ok(_), Ok(v)) if v.iter().any(|x| !x.is_finite()) => {
                            let bad = v.iter().filter(|x| !x.is_finite()).count();
                            *acc = Err(format!(
                                "the network gave {bad} non-finite descriptor value(s) at scale \
                                 {q} (NaN or infinity): the weights or the input are broken"
                            ));
                        }
                        (Ok(a), Ok(v)) => a.extend(v),
                        (Ok(_), Err(e)) => *acc = Err(format!("network failed at scale {q}: {e}")),
                        (Err(_), _) => {}
                    }
                }
            }
        }
        out
    }
}
