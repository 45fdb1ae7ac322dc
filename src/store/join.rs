//! A store's records as the paper's image descriptors: per record, each net's per-scale
//! descriptors aggregated ([`crate::aggregate`]), nets fused; several stores joined by image id.

use super::{Manifest, Store};
use crate::aggregate::{Aggregate, aggregate_scales, fuse_nets};
use crate::error::{Error, Result};

/// Which nets of a store to use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Nets {
    /// Every net, in store order.
    #[default]
    All,
    /// These nets (indices from 0), in this order; fused by stacking.
    Some(Vec<usize>),
}

impl Nets {
    /// The indices for a store with `available` nets; errors (usage) on an index out of range or
    /// repeated, or an empty list.
    pub fn resolve(&self, available: usize) -> Result<Vec<usize>> {
        let v = match self {
            Nets::All => return Ok((0..available).collect()),
            Nets::Some(v) => v,
        };
        if v.is_empty() {
            return Err(Error::InvalidParam("no nets selected".into()));
        }
        for (k, &i) in v.iter().enumerate() {
            if i >= available {
                return Err(Error::InvalidParam(format!(
                    "--nets {i}: the store has {available} net(s), numbered from 0"
                )));
            }
            if v[..k].contains(&i) {
                return Err(Error::InvalidParam(format!("--nets repeats {i}")));
            }
        }
        Ok(v.clone())
    }
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
        out.ids.push(r.id.clone());
        out.labels.push(r.labels.clone());
        out.rows.push(aggregate_record(m, floats, how, nets)?);
    }
    Ok(out)
}

/// The dimension of [`aggregate_record`]'s descriptors: per net its dimension (`avg`) or its
/// dimension times the number of scales (`stack`), summed over `nets`.
pub fn descriptor_dim(m: &Manifest, how: Aggregate, nets: &[usize]) -> usize {
    nets.iter()
        .map(|&n| match how {
            Aggregate::Avg => m.nets[n].dim,
            Aggregate::Stack => m.nets[n].dim * m.scales.len(),
        })
        .sum()
}

/// One record's descriptor: the floats of a store record (laid out as [`Manifest::slot`] says)
/// aggregated over scales per net by `how`, nets fused by stacking in the order given.
pub fn aggregate_record(
    m: &Manifest,
    floats: &[f32],
    how: Aggregate,
    nets: &[usize],
) -> Result<Vec<f32>> {
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
    Ok(fuse_nets(&per_net))
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
