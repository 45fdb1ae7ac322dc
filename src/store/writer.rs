//! Appending records to a store in atomic chunks, and resuming a store made with the same
//! parameters.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::chunk::{Record, data_err, encode_chunk};
use super::manifest::{Manifest, read_manifest};
use super::{Store, chunk_files};
use crate::error::{Error, Result};
use crate::util::write_atomic;

/// Appends records to a store in atomic chunks.
#[derive(Debug)]
pub struct StoreWriter {
    dir: PathBuf,
    floats: usize,
    next_chunk: usize,
    pending: Vec<Record>,
    chunk_records: usize,
}

impl StoreWriter {
    /// Creates a store, or reopens one made with the same manifest to resume. Returns the writer
    /// and the ids already done (successes and failures). Refuses a store whose manifest differs,
    /// listing the differences. Leftover temp files of a killed run are removed.
    pub fn create_or_resume(
        dir: &Path,
        manifest: &Manifest,
        chunk_records: usize,
    ) -> Result<(StoreWriter, HashSet<String>)> {
        let cdir = dir.join("chunks");
        std::fs::create_dir_all(&cdir).map_err(|e| Error::io(&cdir, e))?;
        let mpath = dir.join("manifest.json");
        let mut done = HashSet::new();
        if mpath.exists() {
            let old = read_manifest(dir)?;
            let diff = old.differences(manifest, false);
            if !diff.is_empty() {
                return Err(data_err(
                    dir,
                    format!(
                        "this store was made with different parameters ({}); use another --out \
                         folder, or the original parameters to resume",
                        diff.join("; ")
                    ),
                ));
            }
            for e in std::fs::read_dir(&cdir).map_err(|e| Error::io(&cdir, e))? {
                let p = e.map_err(|e| Error::io(&cdir, e))?.path();
                if p.extension().is_some_and(|x| x == "tmp") {
                    let _ = std::fs::remove_file(&p);
                }
            }
            let store = Store::open(dir)?;
            done.extend(store.records.into_iter().map(|r| r.id));
        } else {
            crate::util::write_json(&mpath, manifest)?;
        }
        let next_chunk = chunk_files(dir)?
            .iter()
            .filter_map(|p| p.file_stem()?.to_str()?.parse::<usize>().ok())
            .max()
            .map_or(0, |m| m + 1);
        Ok((
            StoreWriter {
                dir: dir.to_path_buf(),
                floats: manifest.floats_per_record(),
                next_chunk,
                pending: Vec::new(),
                chunk_records: chunk_records.max(1),
            },
            done,
        ))
    }

    /// Adds a record; writes a chunk when `chunk_records` are pending.
    pub fn push(&mut self, r: Record) -> Result<()> {
        self.pending.push(r);
        if self.pending.len() >= self.chunk_records {
            self.flush()?;
        }
        Ok(())
    }

    /// Number of records not yet on disk.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Writes pending records as one atomic chunk.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let bytes = encode_chunk(&self.pending, self.floats)?;
        let p = self
            .dir
            .join("chunks")
            .join(format!("{:06}.chunk", self.next_chunk));
        write_atomic(&p, &bytes)?;
        self.next_chunk += 1;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::dataset::SourceKind;
    use crate::model::config::{ConfigName, LayerName};
    use crate::preprocess::Normalization;
    use crate::store::chunk::Outcome;
    use crate::store::manifest::{FORMAT_VERSION, InputSpec, NetSpec};

    pub(crate) fn manifest() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            tool_version: "test".into(),
            input: InputSpec {
                root: "/data".into(),
                kind: SourceKind::Folder,
                split: None,
                classes: None,
                limit_per_class: None,
                shard: None,
            },
            nets: vec![NetSpec {
                weights: "w.safetensors".into(),
                sha256: "ab".into(),
                config: ConfigName::D,
                layer: LayerName::Fc7,
                dim: 2,
                preprocess: Normalization::Torchvision,
            }],
            scales: vec![256, 384],
            flip: true,
            max_pixels: 100,
        }
    }

    pub(crate) fn rec(id: &str, ok: bool) -> Record {
        Record {
            id: id.into(),
            labels: vec!["cls".into()],
            outcome: if ok {
                Outcome::Ok(vec![1.0, 2.0, 3.0, f32::MIN_POSITIVE])
            } else {
                Outcome::Failed("truncated JPEG".into())
            },
        }
    }

    #[test]
    fn resume_and_refuse() {
        let d = tempfile::tempdir().unwrap();
        let m = manifest();
        let (mut w, done) = StoreWriter::create_or_resume(d.path(), &m, 2).unwrap();
        assert!(done.is_empty());
        for id in ["a", "b", "c"] {
            w.push(rec(id, id != "b")).unwrap();
        }
        // "c" is pending: a crash now loses it only. Simulate a leftover temp file too.
        std::fs::write(d.path().join("chunks/000009.tmp"), b"partial").unwrap();
        drop(w);
        let (mut w, done) = StoreWriter::create_or_resume(d.path(), &m, 2).unwrap();
        assert_eq!(done, ["a", "b"].iter().map(|s| s.to_string()).collect());
        assert!(!d.path().join("chunks/000009.tmp").exists());
        w.push(rec("c", true)).unwrap();
        w.flush().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert_eq!(
            s.records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["a", "b", "c"]
        );
        assert_eq!(s.failures(), vec![("b", "truncated JPEG")]);

        let mut other = m.clone();
        other.scales = vec![256];
        let e = StoreWriter::create_or_resume(d.path(), &other, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("different parameters") && e.contains("scales"),
            "{e}"
        );
    }
}
