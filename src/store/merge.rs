//! Joining shard stores (`extract --shard i/N`) into one store equal to a single-machine run.

use std::path::{Path, PathBuf};

use super::Store;
use super::chunk::data_err;
use super::manifest::read_manifest;
use super::writer::StoreWriter;
use crate::error::{Error, Result};

/// Joins shard stores into one store equal to a single-machine run: manifests must agree on
/// everything but the shard, ids must not repeat. The result has no shard in its manifest.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Store> {
    let Some(first) = inputs.first() else {
        return Err(Error::InvalidParam("merge needs at least one store".into()));
    };
    let base = read_manifest(first)?;
    let mut records = Vec::new();
    for p in inputs {
        let s = Store::open(p)?;
        let diff = base.differences(&s.manifest, true);
        if !diff.is_empty() {
            return Err(data_err(
                p,
                format!("cannot merge with {}: {}", first.display(), diff.join("; ")),
            ));
        }
        records.extend(s.records);
    }
    records.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = records.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(data_err(
            out,
            format!("id {} is in more than one shard", w[0].id),
        ));
    }
    if out.join("manifest.json").exists() {
        return Err(data_err(out, "the output store already exists"));
    }
    let mut manifest = base;
    manifest.input.shard = None;
    let (mut w, _) = StoreWriter::create_or_resume(out, &manifest, 1024)?;
    for r in records {
        w.push(r)?;
    }
    w.flush()?;
    Store::open(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::writer::tests::{manifest, rec};

    #[test]
    fn merge_shards() {
        let d = tempfile::tempdir().unwrap();
        let mut stores = Vec::new();
        for (i, ids) in [["a", "c"], ["b", "d"]].iter().enumerate() {
            let mut m = manifest();
            m.input.shard = Some((i, 2));
            let p = d.path().join(format!("s{i}"));
            let (mut w, _) = StoreWriter::create_or_resume(&p, &m, 10).unwrap();
            for id in ids {
                w.push(rec(id, true)).unwrap();
            }
            w.flush().unwrap();
            stores.push(p);
        }
        let s = merge(&stores, &d.path().join("all")).unwrap();
        assert_eq!(s.manifest.input.shard, None);
        assert_eq!(
            s.records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["a", "b", "c", "d"]
        );
        // Merging a shard with itself repeats ids.
        assert!(
            merge(
                &[stores[0].clone(), stores[0].clone()],
                &d.path().join("dup")
            )
            .is_err()
        );
    }
}
