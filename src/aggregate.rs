//! Pure functions that turn per-scale descriptors into the paper's image descriptors
//! (Appendix B / PROTOCOL.md): each per-scale descriptor is L2-normalised, then scales are
//! either averaged (`avg`, the L2-normalised mean) or stacked (`stack`, the L2-normalised
//! concatenation in scale order); several nets are fused late by stacking their aggregated
//! descriptors (the paper's D & E), and the result is L2-normalised again. Pure functions on
//! slices; `crate::store::join` applies them to a store's records.

use crate::error::{Error, Result};

/// How per-scale descriptors are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// The L2-normalised mean of the L2-normalised per-scale descriptors (dimension F).
    Avg,
    /// The L2-normalised concatenation of the L2-normalised per-scale descriptors (F x scales).
    Stack,
}

impl Aggregate {
    /// The one default of every job that aggregates (`export`, `svm`, `predict` of a new store,
    /// the extractor, the Python package): [`Aggregate::Stack`], so that what a user exports is
    /// what `svm` trained on. (The paper stacks for Caltech and averages for VOC; `reproduce`
    /// follows the paper per benchmark.)
    pub const DEFAULT: Aggregate = Aggregate::Stack;
}

impl Default for Aggregate {
    fn default() -> Self {
        Self::DEFAULT
    }
}

crate::util::choice::choice!(Aggregate, "aggregation", crate::error::Param::Aggregate, [
    Aggregate::Avg => "avg" | "average" | "mean": "The L2-normalised mean of the L2-normalised per-scale descriptors.",
    Aggregate::Stack => "stack" | "concat": "Their L2-normalised concatenation.",
]);

/// Divides `v` by its L2 norm (clamped at 1e-12, as PyTorch's `F.normalize`), in place.
pub fn l2_normalize(v: &mut [f32]) {
    let n = v
        .iter()
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    let n = n.max(1e-12) as f32;
    v.iter_mut().for_each(|x| *x /= n);
}

/// Aggregates one net's per-scale descriptors (each of the same length) as the paper does.
pub fn aggregate_scales(per_scale: &[&[f32]], how: Aggregate) -> Result<Vec<f32>> {
    let Some(first) = per_scale.first() else {
        return Err(Error::Usage("no scales to aggregate".into()));
    };
    let d = first.len();
    if per_scale.iter().any(|s| s.len() != d) {
        return Err(Error::Usage(
            "per-scale descriptors differ in length".into(),
        ));
    }
    let normed: Vec<Vec<f32>> = per_scale
        .iter()
        .map(|s| {
            let mut v = s.to_vec();
            l2_normalize(&mut v);
            v
        })
        .collect();
    let mut out = match how {
        Aggregate::Avg => {
            let mut m = vec![0f32; d];
            for v in &normed {
                m.iter_mut().zip(v).for_each(|(a, b)| *a += b);
            }
            let k = normed.len() as f32;
            m.iter_mut().for_each(|a| *a /= k);
            m
        }
        Aggregate::Stack => normed.concat(),
    };
    l2_normalize(&mut out);
    Ok(out)
}

/// Late fusion of several nets: the L2-normalised concatenation of their (already aggregated,
/// L2-normalised) descriptors. One net is returned unchanged.
pub fn fuse_nets(per_net: &[Vec<f32>]) -> Vec<f32> {
    if per_net.len() == 1 {
        return per_net[0].clone();
    }
    let mut v = per_net.concat();
    l2_normalize(&mut v);
    v
}

/// The layout of one image's raw descriptors, as a store record and
/// [`crate::Extractor::describe_all`] hold them: net 0 at every scale, then net 1, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLayout {
    /// Each net's descriptor dimension.
    pub dims: Vec<usize>,
    /// The number of scales.
    pub scales: usize,
}

impl RecordLayout {
    /// Floats per image.
    pub fn floats(&self) -> usize {
        self.dims.iter().sum::<usize>() * self.scales
    }

    /// Offset and length of (net, scale) within an image's floats.
    pub fn slot(&self, net: usize, scale: usize) -> (usize, usize) {
        let before: usize = self.dims[..net].iter().sum::<usize>() * self.scales;
        let d = self.dims[net];
        (before + scale * d, d)
    }

    /// The dimension of [`RecordLayout::aggregate`]'s descriptors: per net its dimension
    /// (`avg`) or its dimension times the scales (`stack`), summed over `nets`.
    pub fn dim(&self, how: Aggregate, nets: &[usize]) -> usize {
        nets.iter()
            .map(|&n| match how {
                Aggregate::Avg => self.dims[n],
                Aggregate::Stack => self.dims[n] * self.scales,
            })
            .sum()
    }

    /// One image's raw descriptors of `nets` (every scale, in order), unnormalised.
    pub fn raw(&self, floats: &[f32], nets: &[usize]) -> Vec<f32> {
        let mut v =
            Vec::with_capacity(nets.iter().map(|&n| self.dims[n]).sum::<usize>() * self.scales);
        for &n in nets {
            let (o, _) = self.slot(n, 0);
            v.extend_from_slice(&floats[o..o + self.dims[n] * self.scales]);
        }
        v
    }

    /// One image's descriptor: its floats aggregated over scales per net by `how`
    /// ([`aggregate_scales`]), nets fused by stacking in the order given ([`fuse_nets`]).
    pub fn aggregate(&self, floats: &[f32], how: Aggregate, nets: &[usize]) -> Result<Vec<f32>> {
        let mut per_net = Vec::with_capacity(nets.len());
        for &n in nets {
            let slices: Vec<&[f32]> = (0..self.scales)
                .map(|s| {
                    let (o, d) = self.slot(n, s);
                    &floats[o..o + d]
                })
                .collect();
            per_net.push(aggregate_scales(&slices, how)?);
        }
        Ok(fuse_nets(&per_net))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avg_and_stack_by_hand() {
        let a = [3.0, 4.0]; // normalised: 0.6, 0.8
        let b = [0.0, 2.0]; // normalised: 0, 1
        let avg = aggregate_scales(&[&a, &b], Aggregate::Avg).unwrap();
        // mean (0.3, 0.9), norm sqrt(0.9) -> (0.3162, 0.9487)
        assert!((avg[0] - 0.316_227_8).abs() < 1e-6 && (avg[1] - 0.948_683_3).abs() < 1e-6);
        let st = aggregate_scales(&[&a, &b], Aggregate::Stack).unwrap();
        let s = 1.0 / 2f32.sqrt();
        assert_eq!(st.len(), 4);
        for (x, y) in st.iter().zip([0.6 * s, 0.8 * s, 0.0, s]) {
            assert!((x - y).abs() < 1e-6);
        }
    }

    #[test]
    fn fusion_and_means() {
        let f = fuse_nets(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!(
            (f[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6
                && (f[3] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6
        );
        let mut z = vec![0.0f32; 3];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0; 3]);
        assert!(aggregate_scales(&[], Aggregate::Avg).is_err());
    }
}
