//! A store's records as the paper's image descriptors: per record, each net's per-scale
//! descriptors aggregated ([`crate::aggregate`]), nets fused; several stores joined by image id.

use super::Store;
use crate::aggregate::Aggregate;
use crate::error::{Error, Param, Result};

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
    /// The indices for a store with `available` nets; a usage error on an index out of range
    /// or repeated, or an empty list.
    pub fn resolve(&self, available: usize) -> Result<Vec<usize>> {
        let v = match self {
            Nets::All => return Ok((0..available).collect()),
            Nets::Some(v) => v,
        };
        check_net_list(v)?;
        if let Some(i) = v.iter().find(|&&i| i >= available) {
            return Err(Error::param(
                Param::Nets,
                format!("{i}: the store has {available} net(s), numbered from 0"),
            ));
        }
        Ok(v.clone())
    }
}

impl std::str::FromStr for Nets {
    type Err = Error;
    /// `all`, or indices like `0,1`.
    fn from_str(s: &str) -> Result<Self> {
        if s == "all" {
            return Ok(Nets::All);
        }
        s.split(',')
            .map(|p| {
                p.trim().parse().map_err(|_| {
                    Error::param(
                        Param::Nets,
                        format!("bad nets `{s}` (expected all or indices like 0,1)"),
                    )
                })
            })
            .collect::<Result<Vec<usize>>>()
            .map(Nets::Some)
    }
}

/// A net list must not be empty or repeat an index.
pub(crate) fn check_net_list(v: &[usize]) -> Result<()> {
    if v.is_empty() {
        return Err(Error::param(Param::Nets, "no nets selected"));
    }
    for (k, i) in v.iter().enumerate() {
        if v[..k].contains(i) {
            return Err(Error::param(Param::Nets, format!("{i} is given twice")));
        }
    }
    Ok(())
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
    if nets.is_empty() {
        return Err(Error::param(Param::Nets, "no nets selected"));
    }
    let layout = store.manifest.layout();
    let mut out = Descriptors {
        ids: Vec::new(),
        labels: Vec::new(),
        rows: Vec::new(),
    };
    for (r, floats) in store.ok_records() {
        out.ids.push(r.id.clone());
        out.labels.push(r.labels.clone());
        out.rows.push(layout.aggregate(floats, how, nets)?);
    }
    Ok(out)
}

/// Aggregates several stores (e.g. a VOC train store and a test store) into one set of
/// descriptors sorted by id, taking the nets `nets` of each. The stores must give the same
/// descriptors for them (weights, configuration, layer, dimension, preprocessing, precision,
/// scales, flip: [`Manifest::descriptor_differences`]), which is refused naming each field that
/// differs and both values; no id may appear in two of them.
///
/// [`Manifest::descriptor_differences`]: super::Manifest::descriptor_differences
pub fn aggregate_stores(stores: &[Store], how: Aggregate, nets: &[usize]) -> Result<Descriptors> {
    let Some(first) = stores.first() else {
        return Err(Error::param(Param::Features, "no feature stores"));
    };
    for s in stores {
        let diff = first
            .manifest
            .descriptor_differences(nets, &s.manifest, nets);
        if !diff.is_empty() {
            return Err(Error::Data {
                path: s.dir.clone(),
                reason: format!(
                    "its descriptors differ from those of {}: {}",
                    first.dir.display(),
                    diff.join("; ")
                ),
            });
        }
    }
    let parts: Vec<(&Store, Vec<usize>)> = stores.iter().map(|s| (s, nets.to_vec())).collect();
    aggregate_parts(&parts, how)
}

/// The descriptors of several stores joined by id, with each store's own net indices (the
/// same nets may sit at other positions in another store). The caller has checked that the
/// parts give the same descriptors (`predict` checks each store against the classifier).
pub(crate) fn aggregate_parts(
    parts: &[(&Store, Vec<usize>)],
    how: Aggregate,
) -> Result<Descriptors> {
    let mut rows: Vec<(String, Vec<String>, Vec<f32>)> = Vec::new();
    for (s, nets) in parts {
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
        return Err(Error::usage(format!(
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
