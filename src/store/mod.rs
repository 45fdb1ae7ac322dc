//! The feature store: per-image, per-net, per-scale descriptors on disk (no candle types here).
//!
//! - `manifest`: what a store holds (typed, versioned); `chunk`: the record files;
//! - `writer`: appending and resuming; `merge`: joining shards;
//! - `join`: a store's records aggregated into descriptors (one store or several joined by id);
//! - `export`: descriptors out as CSV, `.npy`, Parquet or `.npy` shards ([`export()`]);
//! - `state`: how far the writing got; `check`: whether the store still matches its inputs.
//!
//! ## Layout
//!
//! ```text
//! STORE/
//!   manifest.json        what was computed: inputs (root, kind, selection), nets (weights
//!                        SHA-256, config, layer, dimension, preprocessing), scales, flip, decode
//!                        limit, format and tool versions
//!   state.json           how far the writing got: chunks written, whether the last run went
//!                        through all its inputs (rewritten atomically after every chunk)
//!   stats.json           what the last extraction run did (counts, rates, failures by reason)
//!   .lock                held (flock) by the one process writing the store; names it
//!   chunks/000000.chunk  records, written atomically (temp file + fsync + rename)
//!   chunks/000001.chunk  ...
//! ```
//!
//! ## Chunk format (little-endian)
//!
//! ```text
//! magic     8 bytes  "VGGFCHK2" ("VGGFCHK1": version 1, no source field, still read)
//! n         u32      number of records
//! floats    u32      floats per successful record = sum over nets of (scales x dim)
//! n records:
//!   id      u16 length + UTF-8 bytes (path relative to the input root, '/' separators)
//!   labels  u16 count, each u16 length + UTF-8 bytes
//!   source  u8       0 = none; 1 = size u64, mtime ns i64, ctime ns i64; 2 = those + SHA-256
//!                    (32 bytes) of the file's bytes (version 2 only)
//!   status  u8       0 = ok, 1 = failed, 2 = removed
//!   ok:     floats x f32: net 0 scale 0 (dim 0 values), net 0 scale 1, ..., net 1 scale 0, ...
//!   failed: u32 length + UTF-8 reason
//! check     u64      FNV-1a 64 of every byte before it
//! ```
//!
//! Records are read in chunk order: a record replaces earlier records of its id, a `removed`
//! record deletes them. Descriptors are stored as computed: float32, per scale, not normalised
//! (aggregation and L2 normalisation happen at export / SVM time). A run killed at any moment
//! loses at most the chunk in flight; re-running the same command resumes: an input whose file
//! is unchanged (size, modification and status-change times) is skipped, a changed one is
//! extracted again (the recorded SHA-256 tells what the descriptor was computed from), a failed
//! one is retried when its file changed, and records of deleted inputs are removed. A store is
//! refused for a run with different parameters, while another process writes it, when a chunk
//! is missing, and when it has chunks but no manifest.

mod check;
mod chunk;
pub(crate) mod export;
mod join;
mod manifest;
mod merge;
mod state;
mod stream;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use chunk::{data_err, index_chunk};
use state::read_state;

pub use check::Freshness;
pub(crate) use check::{check_inputs, items_by_id};
pub(crate) use chunk::RecordMeta;
pub use chunk::{Outcome, Record, Source};
pub use export::{ExportFormat, ExportParams, ExportSummary, ExportValidParams, export};
pub(crate) use join::aggregate_parts;
pub(crate) use join::check_net_list;
pub use join::{Descriptors, Nets, aggregate_store, aggregate_stores};
pub use manifest::{FORMAT_VERSION, InputSpec, Manifest, NetSpec, read_manifest};
pub use merge::{merge, merge_with};
pub use state::{DatasetPrint, StoreState};
pub use stream::{Entry, StoreStream};
pub use writer::StoreWriter;

/// The chunk files of a store with their numbers, in number order.
pub(crate) fn chunk_files(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let cdir = dir.join("chunks");
    let mut v = Vec::new();
    if !cdir.is_dir() {
        return Ok(v);
    }
    for e in std::fs::read_dir(&cdir).map_err(|e| Error::io(&cdir, e))? {
        let p = e.map_err(|e| Error::io(&cdir, e))?.path();
        if p.extension().is_some_and(|x| x == "chunk") {
            let n = p
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| data_err(&p, "a chunk file not named by its number"))?;
            v.push((n, p));
        }
    }
    v.sort();
    Ok(v)
}

/// Checks that chunks 0 .. N-1 are all there (N from `state.json`, or the highest number + 1):
/// a deleted chunk is an error naming it, not a silently shorter store.
pub(crate) fn check_chunks(
    dir: &Path,
    files: &[(usize, PathBuf)],
    state: Option<&StoreState>,
) -> Result<()> {
    let expected = state
        .map(|s| s.chunks)
        .unwrap_or(0)
        .max(files.last().map_or(0, |(n, _)| n + 1));
    let have: std::collections::HashSet<usize> = files.iter().map(|(n, _)| *n).collect();
    let missing: Vec<String> = (0..expected)
        .filter(|n| !have.contains(n))
        .map(|n| format!("{n:06}.chunk"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(data_err(
        &dir.join("chunks"),
        format!(
            "{} of {expected} chunks are missing ({}{}): the store has lost records; re-run the \
             extraction into a new store",
            missing.len(),
            missing[..missing.len().min(5)].join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        ),
    ))
}

/// A store opened for reading: the manifest, its writing state, and every live record, sorted
/// by id. A record supersedes earlier records of its id (in chunk order); a
/// [`Outcome::Removed`] record removes them.
#[derive(Debug, Clone)]
pub struct Store {
    /// The store folder.
    pub dir: PathBuf,
    /// What it holds.
    pub manifest: Manifest,
    /// How far its writing got (`None` for stores that predate `state.json`).
    pub state: Option<StoreState>,
    /// All live records (successes and failures), sorted by id.
    pub records: Vec<Record>,
}

/// A store's chunk files and its live records (id, what was kept), sorted by id.
pub(crate) type LiveRecords<R> = (Vec<PathBuf>, Vec<(String, R)>);

/// Reads every chunk of a store in order and returns its chunk files and its live records, sorted
/// by id, each as `keep(chunk index, byte offset of its payload in the chunk file, record)` made
/// it (successful records without their floats unless `keep_floats`). A later record of an id
/// supersedes earlier ones and a [`Outcome::Removed`] record deletes them. Each chunk is checked:
/// its floats per record must match the manifest, and no id may appear twice in one chunk. No
/// chunk may be missing. Only one chunk's records are in memory at a time, beyond what `keep`
/// keeps.
pub(crate) fn read_live<R>(
    dir: &Path,
    manifest: &Manifest,
    state: Option<&StoreState>,
    keep_floats: bool,
    mut keep: impl FnMut(usize, usize, Record) -> R,
) -> Result<LiveRecords<R>> {
    let floats = manifest.floats_per_record();
    let files = chunk_files(dir)?;
    check_chunks(dir, &files, state)?;
    let mut live: HashMap<String, R> = HashMap::new();
    for (c, (_, p)) in files.iter().enumerate() {
        let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
        let (f, recs) = index_chunk(p, &bytes, keep_floats)?;
        if f != floats {
            return Err(data_err(
                p,
                format!("chunk has {f} floats per record, manifest says {floats}"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (r, at) in recs {
            if !seen.insert(r.id.clone()) {
                return Err(data_err(p, format!("id {} appears twice", r.id)));
            }
            match r.outcome {
                Outcome::Removed => {
                    live.remove(&r.id);
                }
                _ => {
                    let id = r.id.clone();
                    live.insert(id, keep(c, at, r));
                }
            }
        }
    }
    let mut records: Vec<(String, R)> = live.into_iter().collect();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((files.into_iter().map(|(_, p)| p).collect(), records))
}

/// The files of a store folder beside its chunks (see the layout above).
const OWN_FILES: [&str; 4] = ["manifest.json", "state.json", "stats.json", ".lock"];

/// Whether writing `out` would write one of the store's own files (its manifest, state,
/// statistics, lock, chunks) or replace the store folder itself. Paths are compared once
/// resolved (symbolic links, `..`), the output's folder as far as it exists.
pub(crate) fn is_own_file(store: &Path, out: &Path) -> bool {
    let Ok(store) = store.canonicalize() else {
        return false;
    };
    let out = match out.canonicalize() {
        Ok(p) => p,
        Err(_) => match (out.parent(), out.file_name()) {
            (Some(dir), Some(name)) => {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                match dir.canonicalize() {
                    Ok(d) => d.join(name),
                    Err(_) => return false,
                }
            }
            _ => return false,
        },
    };
    out == store
        || out.starts_with(store.join("chunks"))
        || OWN_FILES.iter().any(|f| out == store.join(f))
}

/// The live records of the store at `dir` whose id is `wanted` (descriptors included), in id
/// order.
pub(crate) fn read_records(
    dir: &Path,
    manifest: &Manifest,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<Record>> {
    let state = read_state(dir)?;
    let (_, live) = read_live(dir, manifest, state.as_ref(), true, |_, _, r| {
        wanted(&r.id).then_some(r)
    })?;
    Ok(live.into_iter().filter_map(|(_, r)| r).collect())
}

impl Store {
    /// Opens a store, validating every chunk and that no chunk is missing.
    pub fn open(dir: &Path) -> Result<Store> {
        let manifest = read_manifest(dir)?;
        let state = read_state(dir)?;
        let (_, live) = read_live(dir, &manifest, state.as_ref(), true, |_, _, r| r)?;
        Ok(Store {
            dir: dir.to_path_buf(),
            manifest,
            state,
            records: live.into_iter().map(|(_, r)| r).collect(),
        })
    }

    /// The failed records as (id, reason).
    pub fn failures(&self) -> Vec<(&str, &str)> {
        self.records
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Failed(why) => Some((r.id.as_str(), why.as_str())),
                _ => None,
            })
            .collect()
    }

    /// The successful records.
    pub fn ok_records(&self) -> impl Iterator<Item = (&Record, &[f32])> {
        self.records.iter().filter_map(|r| match &r.outcome {
            Outcome::Ok(v) => Some((r, v.as_slice())),
            _ => None,
        })
    }

    /// Why the store is not a complete extraction, in words, or `None` when it is (or predates
    /// `state.json`).
    pub fn incomplete(&self) -> Option<String> {
        incomplete_note(self.state.as_ref(), self.records.len())
    }
}

/// Why a store with `state` and `records` live records is not a complete extraction.
pub(crate) fn incomplete_note(state: Option<&StoreState>, records: usize) -> Option<String> {
    let s = state?;
    if s.complete {
        return None;
    }
    Some(s.note.clone().unwrap_or_else(|| {
        format!(
            "its extraction did not finish ({records} of {} inputs recorded); re-run the same \
             command to complete it",
            s.inputs.map_or("?".to_string(), |n| n.to_string())
        )
    }))
}
