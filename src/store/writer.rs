//! Appending records to a store in atomic chunks, and resuming a store made with the same
//! parameters. A writer holds the store's lock (`STORE/.lock`, an advisory `flock` released
//! when the process ends, however it ends), so two processes never write one store: the second
//! is refused with a message naming the holder.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::chunk::{Record, RecordMeta, data_err, encode_chunk, scan_chunk};
use super::manifest::{Manifest, read_manifest};
use super::state::{DatasetPrint, StoreState, read_state, write_state};
use super::{check_chunks, chunk_files};
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
    state: StoreState,
    /// Held for the writer's lifetime: the store's lock.
    _lock: File,
}

/// Takes the store's lock, or says who holds it.
fn lock(dir: &Path) -> Result<File> {
    let p = dir.join(".lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&p)
        .map_err(|e| Error::io(&p, e))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&p).unwrap_or_default();
            return Err(data_err(
                dir,
                format!(
                    "another vggfeat process is writing this store ({}); wait for it to finish, \
                     then re-run to resume, or use another store folder",
                    holder.trim().trim_end_matches('.')
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&p, e)),
    }
    let me = format!(
        "pid {} on {}",
        std::process::id(),
        gethostname::gethostname().to_string_lossy()
    );
    f.set_len(0).map_err(|e| Error::io(&p, e))?;
    f.write_all(me.as_bytes()).map_err(|e| Error::io(&p, e))?;
    Ok(f)
}

/// Whether `name` is a temporary file a writer of this or an earlier version left behind
/// (`.vggfeat-XXXXXX.tmp`, or `NNNNNN.tmp` from before); other `.tmp` files are not ours.
fn is_leftover(path: &Path) -> bool {
    if crate::util::atomic::is_temporary(path) {
        return true;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.strip_suffix(".tmp")
        .is_some_and(|stem| stem.len() == 6 && stem.bytes().all(|b| b.is_ascii_digit()))
}

/// The live records of a store (a later record of an id supersedes earlier ones; a removal
/// removes it), without their descriptor values.
fn scan(dir: &Path, floats: usize, state: Option<&StoreState>) -> Result<Vec<RecordMeta>> {
    let files = chunk_files(dir)?;
    check_chunks(dir, &files, state)?;
    let mut live: HashMap<String, RecordMeta> = HashMap::new();
    for (_, p) in files {
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        let (f, recs) = scan_chunk(&p, &bytes)?;
        if f != floats {
            return Err(data_err(
                &p,
                format!("chunk has {f} floats per record, manifest says {floats}"),
            ));
        }
        for r in recs {
            match r.ok {
                None => {
                    live.remove(&r.id);
                }
                Some(_) => {
                    live.insert(r.id.clone(), r);
                }
            }
        }
    }
    let mut v: Vec<RecordMeta> = live.into_values().collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(v)
}

impl StoreWriter {
    /// Creates a store, or reopens one made with the same manifest to resume; takes the store's
    /// lock either way. Returns the writer and the store's live records (ids, outcomes and
    /// sources, without descriptor values). Refuses: a store whose manifest differs (listing
    /// the differences), a folder with chunks but no manifest, a store another process is
    /// writing, a store with a missing chunk. Leftover temporary files of a killed run are
    /// removed (and nothing else).
    pub fn open(
        dir: &Path,
        manifest: &Manifest,
        chunk_records: usize,
    ) -> Result<(StoreWriter, Vec<RecordMeta>)> {
        let cdir = dir.join("chunks");
        std::fs::create_dir_all(&cdir).map_err(|e| Error::io(&cdir, e))?;
        let lock = lock(dir)?;
        let mpath = dir.join("manifest.json");
        let floats = manifest.floats_per_record();
        let (existing, state) = if mpath.exists() {
            let old = read_manifest(dir)?;
            let diff = old.differences(manifest, false);
            if !diff.is_empty() {
                return Err(data_err(
                    dir,
                    format!(
                        "this store was made with different parameters ({}); use another store \
                         folder, or the original parameters to resume",
                        diff.join("; ")
                    ),
                ));
            }
            for e in std::fs::read_dir(&cdir).map_err(|e| Error::io(&cdir, e))? {
                let p = e.map_err(|e| Error::io(&cdir, e))?.path();
                if is_leftover(&p) {
                    let _ = std::fs::remove_file(&p);
                }
            }
            let state = read_state(dir)?;
            (
                scan(dir, floats, state.as_ref())?,
                state.unwrap_or_default(),
            )
        } else {
            let chunks = chunk_files(dir)?;
            if !chunks.is_empty() {
                return Err(data_err(
                    dir,
                    format!(
                        "holds {} chunk file(s) but no manifest.json, so nothing says what they \
                         were computed with; restore manifest.json, or use another store folder",
                        chunks.len()
                    ),
                ));
            }
            crate::util::write_json(&mpath, manifest)?;
            (Vec::new(), StoreState::default())
        };
        let next_chunk = chunk_files(dir)?.last().map_or(0, |(n, _)| n + 1);
        let w = StoreWriter {
            dir: dir.to_path_buf(),
            floats,
            next_chunk,
            pending: Vec::new(),
            chunk_records: chunk_records.max(1),
            state: StoreState {
                chunks: next_chunk,
                complete: false,
                inputs: state.inputs,
                note: None,
                dataset: state.dataset,
            },
            _lock: lock,
        };
        write_state(&w.dir, &w.state)?;
        Ok((w, existing))
    }

    /// [`StoreWriter::open`], returning the ids of the live records (successes and failures).
    pub fn create_or_resume(
        dir: &Path,
        manifest: &Manifest,
        chunk_records: usize,
    ) -> Result<(StoreWriter, HashSet<String>)> {
        let (w, existing) = Self::open(dir, manifest, chunk_records)?;
        Ok((w, existing.into_iter().map(|r| r.id).collect()))
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

    /// Writes pending records as one atomic chunk, then the state.
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
        self.state.chunks = self.next_chunk;
        write_state(&self.dir, &self.state)
    }

    /// Records the fingerprint of the dataset the inputs were selected from (kept in
    /// `state.json` by the next flush or [`StoreWriter::finish`]).
    pub fn set_dataset(&mut self, print: Option<DatasetPrint>) {
        self.state.dataset = print;
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Flushes, and records whether the run went through all of its `inputs` (with an
    /// explanation when it did not).
    pub fn finish(
        mut self,
        complete: bool,
        inputs: Option<usize>,
        note: Option<String>,
    ) -> Result<()> {
        self.flush()?;
        self.state.complete = complete;
        self.state.inputs = inputs;
        self.state.note = note;
        write_state(&self.dir, &self.state)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::dataset::SourceKind;
    use crate::model::config::{ConfigName, LayerName};
    use crate::preprocess::Normalization;
    use crate::store::Store;
    use crate::store::chunk::Outcome;
    use crate::store::manifest::{FORMAT_VERSION, InputSpec, NetSpec};

    pub(crate) fn manifest() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            tool_version: "test".into(),
            input: InputSpec::new("/data", SourceKind::Folder),
            nets: vec![NetSpec {
                weights: "w.safetensors".into(),
                sha256: "ab".into(),
                config: ConfigName::D,
                layer: LayerName::Fc7,
                dim: 2,
                preprocess: Normalization::Torchvision,
                precision: Default::default(),
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
            source: None,
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
        // While a writer holds the store, another is refused.
        let e = StoreWriter::create_or_resume(d.path(), &m, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("another vggfeat process is writing"), "{e}");
        drop(w);

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
