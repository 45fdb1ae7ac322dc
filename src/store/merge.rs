//! Joining shard stores (`extract --shard i/N`) into one store equal to a single-machine run.

use std::path::{Path, PathBuf};

use super::Store;
use super::chunk::data_err;
use super::manifest::read_manifest;
use super::state::{DatasetPrint, read_state};
use super::writer::StoreWriter;
use crate::error::{Error, Result};

/// Joins shard stores into one store equal to a single-machine run. The shards must be the
/// N shards of one extraction (`--shard i/N` for every i, each once), each complete, with
/// manifests that agree on everything but the shard, and on the input path too unless their
/// dataset fingerprints ([`DatasetPrint`]) agree (one dataset mounted at different paths); ids
/// must not repeat, and together they must hold every entry of the dataset. The result has no
/// shard in its manifest. With `allow_partial`, missing or incomplete shards are merged as they
/// are and the result is marked incomplete, saying what it lacks.
pub fn merge_with(inputs: &[PathBuf], out: &Path, allow_partial: bool) -> Result<Store> {
    let Some(first) = inputs.first() else {
        return Err(Error::Usage("merge needs at least one store".into()));
    };
    if out.join("manifest.json").exists() {
        return Err(data_err(out, "the output store already exists"));
    }
    let base = read_manifest(first)?;
    // Shards listed from one dataset have the same fingerprint wherever it is mounted: then
    // their input paths may differ; otherwise they must be the same path.
    let prints: Vec<Option<DatasetPrint>> = inputs
        .iter()
        .map(|p| Ok(read_state(p)?.and_then(|s| s.dataset)))
        .collect::<Result<_>>()?;
    let print = prints[0].clone();
    let same_dataset = print.is_some() && prints.iter().all(|p| *p == print);
    let mut records = Vec::new();
    let mut shards: Vec<(usize, &PathBuf)> = Vec::new();
    let mut gaps = Vec::new();
    let count = base.input.shard.map(|(_, n)| n);
    for (p, pp) in inputs.iter().zip(&prints) {
        let s = Store::open(p)?;
        if let (Some(a), Some(b)) = (&print, pp)
            && a != b
        {
            return Err(data_err(
                p,
                format!(
                    "cannot merge with {}: listed from another dataset (fingerprint {} of {} \
                     entries vs {} of {})",
                    first.display(),
                    b.sha256.chars().take(12).collect::<String>(),
                    b.entries,
                    a.sha256.chars().take(12).collect::<String>(),
                    a.entries
                ),
            ));
        }
        let diff = base.differences_but(&s.manifest, true, same_dataset);
        if !diff.is_empty() {
            return Err(data_err(
                p,
                format!("cannot merge with {}: {}", first.display(), diff.join("; ")),
            ));
        }
        match (s.manifest.input.shard, count) {
            (Some((i, n)), Some(m)) if n == m => {
                if let Some((_, q)) = shards.iter().find(|(j, _)| *j == i) {
                    return Err(data_err(
                        p,
                        format!("shard {i}/{n} is given twice (also {})", q.display()),
                    ));
                }
                shards.push((i, p));
            }
            (shard, _) => {
                return Err(data_err(
                    p,
                    format!(
                        "not a shard of the same extraction as {} (shard {shard:?}, expected i/{})",
                        first.display(),
                        count.map_or("N".to_string(), |n| n.to_string())
                    ),
                ));
            }
        }
        if let Some(why) = s.incomplete() {
            gaps.push(format!("{} is incomplete: {why}", p.display()));
        }
        records.extend(s.records);
    }
    let n = count.expect("checked: every input is a shard");
    let missing: Vec<String> = (0..n)
        .filter(|i| !shards.iter().any(|(j, _)| j == i))
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        gaps.insert(0, format!("shard(s) {} not given", missing.join(", ")));
    }
    if !gaps.is_empty() && !allow_partial {
        return Err(data_err(
            out,
            format!(
                "the merge would not be a whole extraction: {}; give every shard, or \
                 allow a partial merge to merge what is there",
                gaps.join("; ")
            ),
        ));
    }
    records.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = records.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(data_err(
            out,
            format!("id {} is in more than one shard", w[0].id),
        ));
    }
    if let Some(p) = &print
        && gaps.is_empty()
        && records.len() != p.entries
    {
        let msg = format!(
            "the shards hold {} records but their dataset lists {} entries",
            records.len(),
            p.entries
        );
        if !allow_partial {
            return Err(data_err(
                out,
                format!("{msg}; a partial merge merges them anyway"),
            ));
        }
        gaps.push(msg);
    }
    let mut manifest = base;
    manifest.input.shard = None;
    let (mut w, _) = StoreWriter::open(out, &manifest, 1024)?;
    w.set_dataset(print);
    let total = records.len();
    for r in records {
        w.push(r)?;
    }
    let note = (!gaps.is_empty()).then(|| format!("partial merge: {}", gaps.join("; ")));
    w.finish(gaps.is_empty(), Some(total), note)?;
    Store::open(out)
}

/// [`merge_with`] without partial merges.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Store> {
    merge_with(inputs, out, false)
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
            w.finish(true, Some(2), None).unwrap();
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

    #[test]
    fn a_missing_or_incomplete_shard_is_refused_unless_partial() {
        let d = tempfile::tempdir().unwrap();
        let shard = |i: usize, done: bool| {
            let mut m = manifest();
            m.input.shard = Some((i, 3));
            let p = d.path().join(format!("s{i}"));
            let (mut w, _) = StoreWriter::create_or_resume(&p, &m, 10).unwrap();
            w.push(rec(&format!("id{i}"), true)).unwrap();
            if done {
                w.finish(true, Some(1), None).unwrap();
            } else {
                w.flush().unwrap();
            }
            p
        };
        let (s0, s1) = (shard(0, true), shard(1, false));
        let e = merge(std::slice::from_ref(&s0), &d.path().join("m1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("shard(s) 1/3, 2/3 not given"), "{e}");
        let e = merge(&[s0.clone(), s1.clone()], &d.path().join("m2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("s1 is incomplete"), "{e}");
        let m = merge_with(&[s0, s1], &d.path().join("m3"), true).unwrap();
        assert_eq!(m.records.len(), 2);
        let why = m.incomplete().unwrap();
        assert!(
            why.contains("partial merge") && why.contains("2/3 not given"),
            "{why}"
        );
    }
}
