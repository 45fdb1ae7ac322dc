//! Pure functions that turn per-scale descriptors into the paper's image descriptors
//! (Appendix B / PROTOCOL.md): each per-scale descriptor is L2-normalised, then scales are
//! either averaged (`avg`, the L2-normalised mean) or stacked (`stack`, the L2-normalised
//! concatenation in scale order); several nets are fused late by stacking their aggregated
//! descriptors (the paper's D & E), and the result is L2-normalised again.

use crate::error::{Error, Result};
use crate::store::Store;

/// How per-scale descriptors are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// The L2-normalised mean of the L2-normalised per-scale descriptors (dimension F).
    Avg,
    /// The L2-normalised concatenation of the L2-normalised per-scale descriptors (F x scales).
    Stack,
}

impl std::str::FromStr for Aggregate {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "avg" | "average" | "mean" => Ok(Aggregate::Avg),
            "stack" | "concat" => Ok(Aggregate::Stack),
            _ => Err(Error::InvalidParam(format!(
                "unknown aggregation `{s}` (expected avg or stack)"
            ))),
        }
    }
}

impl std::fmt::Display for Aggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Aggregate::Avg => "avg",
            Aggregate::Stack => "stack",
        })
    }
}

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

/// Averages a map's spatial positions: `map` is channels-last (positions x channels).
pub fn spatial_mean(map: &[f32], channels: usize) -> Vec<f32> {
    let positions = map.len() / channels.max(1);
    let mut acc = vec![0f64; channels];
    for px in map.chunks_exact(channels) {
        for (a, v) in acc.iter_mut().zip(px) {
            *a += *v as f64;
        }
    }
    acc.into_iter()
        .map(|a| (a / positions.max(1) as f64) as f32)
        .collect()
}

/// The per-scale descriptor with flip: the mean of the two spatial means.
pub fn flip_average(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| 0.5 * (x + y)).collect()
}

/// Aggregates one net's per-scale descriptors (each of the same length) as the paper does.
pub fn aggregate_scales(per_scale: &[&[f32]], how: Aggregate) -> Result<Vec<f32>> {
    let Some(first) = per_scale.first() else {
        return Err(Error::InvalidParam("no scales to aggregate".into()));
    };
    let d = first.len();
    if per_scale.iter().any(|s| s.len() != d) {
        return Err(Error::InvalidParam(
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

/// Aggregated, L2-normalised descriptors of a store's successful records, in id order.
#[derive(Debug, Clone)]
pub struct Descriptors {
    /// Image ids.
    pub ids: Vec<String>,
    /// Labels per image.
    pub labels: Vec<Vec<String>>,
    /// One descriptor per image.
    pub rows: Vec<Vec<f32>>,
}

/// Which nets of a store to use: all, or a list of indices (`--nets all|0,1`).
pub fn parse_nets(s: &str, available: usize) -> Result<Vec<usize>> {
    if s == "all" {
        return Ok((0..available).collect());
    }
    let mut v = Vec::new();
    for part in s.split(',') {
        let i: usize = part.trim().parse().map_err(|_| {
            Error::InvalidParam(format!(
                "bad --nets `{s}` (expected all or indices like 0,1)"
            ))
        })?;
        if i >= available {
            return Err(Error::InvalidParam(format!(
                "--nets {i}: the store has {available} net(s), numbered from 0"
            )));
        }
        if v.contains(&i) {
            return Err(Error::InvalidParam(format!("--nets repeats {i}")));
        }
        v.push(i);
    }
    Ok(v)
}

/// Aggregates every successful record of `store`: per net, scales by `how`; nets fused by
/// stacking (in the order given).
pub fn aggregate_store(store: &Store, how: Aggregate, nets: &[usize]) -> Result<Descriptors> {
    let m = &store.manifest;
    if nets.is_empty() {
        return Err(Error::InvalidParam("no nets selected".into()));
    }
    let mut out = Descriptors {
        ids: Vec::new(),
        labels: Vec::new(),
        rows: Vec::new(),
    };
    for (r, floats) in store.ok_records() {
        let mut per_net = Vec::with_capacity(nets.len());
        for &n in nets {
            let slices: Vec<&[f32]> = (0..m.scales.len())
                .map(|s| {
                    let (o, d) = m.slot(n, s);
                    &floats[o..o + d]
                })
                .collect();
            per_net.push(aggregate_scales(&slices, how)?);
        }
        out.ids.push(r.id.clone());
        out.labels.push(r.labels.clone());
        out.rows.push(fuse_nets(&per_net));
    }
    Ok(out)
}

/// Aggregates several stores (e.g. a VOC train store and a test store) into one set of
/// descriptors sorted by id. The stores must have the same nets and scales, and no id may appear
/// in two of them.
pub fn aggregate_stores(stores: &[Store], how: Aggregate, nets: &[usize]) -> Result<Descriptors> {
    let Some(first) = stores.first() else {
        return Err(Error::InvalidParam("no feature stores".into()));
    };
    let mut rows: Vec<(String, Vec<String>, Vec<f32>)> = Vec::new();
    for s in stores {
        let (a, b) = (&s.manifest, &first.manifest);
        if a.nets.len() != b.nets.len() || a.scales != b.scales {
            return Err(Error::Data {
                path: s.dir.clone(),
                reason: format!("nets or scales differ from {}", first.dir.display()),
            });
        }
        let d = aggregate_store(s, how, nets)?;
        rows.extend(
            d.ids
                .into_iter()
                .zip(d.labels)
                .zip(d.rows)
                .map(|((i, l), r)| (i, l, r)),
        );
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::InvalidParam(format!(
            "image {} is in more than one store",
            w[0].0
        )));
    }
    let mut out = Descriptors {
        ids: Vec::with_capacity(rows.len()),
        labels: Vec::with_capacity(rows.len()),
        rows: Vec::with_capacity(rows.len()),
    };
    for (i, l, r) in rows {
        out.ids.push(i);
        out.labels.push(l);
        out.rows.push(r);
    }
    Ok(out)
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
        assert_eq!(spatial_mean(&[1.0, 10.0, 3.0, 20.0], 2), vec![2.0, 15.0]);
        assert_eq!(flip_average(&[1.0, 2.0], &[3.0, 4.0]), vec![2.0, 3.0]);
        let mut z = vec![0.0f32; 3];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0; 3]);
        assert!(aggregate_scales(&[], Aggregate::Avg).is_err());
    }
}
