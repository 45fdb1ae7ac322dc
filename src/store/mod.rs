//! The feature store: per-image, per-net, per-scale descriptors on disk (no candle types here).
//!
//! - [`manifest`]: what a store holds (typed, versioned); [`chunk`]: the record files;
//! - [`writer`]: appending and resuming; [`merge`](mod@merge): joining shards;
//! - [`join`]: a store's records aggregated into descriptors (one store or several joined by id);
//! - [`export`]: descriptors out as CSV or `.npy`.
//!
//! ## Layout
//!
//! ```text
//! STORE/
//!   manifest.json        what was computed: inputs, nets (weights SHA-256, config, layer,
//!                        dimension, preprocessing), scales, flip, decode limit, tool version
//!   chunks/000000.chunk  records, written atomically (temp file + fsync + rename)
//!   chunks/000001.chunk  ...
//! ```
//!
//! ## Chunk format (little-endian)
//!
//! ```text
//! magic     8 bytes  "VGGFCHK1"
//! n         u32      number of records
//! floats    u32      floats per successful record = sum over nets of (scales x dim)
//! n records:
//!   id      u16 length + UTF-8 bytes (path relative to the input root, '/' separators)
//!   labels  u16 count, each u16 length + UTF-8 bytes
//!   status  u8       0 = ok, 1 = failed
//!   ok:     floats x f32: net 0 scale 0 (dim 0 values), net 0 scale 1, ..., net 1 scale 0, ...
//!   failed: u32 length + UTF-8 reason
//! check     u64      FNV-1a 64 of every byte before it
//! ```
//!
//! Descriptors are stored as computed: float32, per scale, not normalised (aggregation and L2
//! normalisation happen at export / SVM time). A run killed at any moment loses at most the
//! chunk in flight; re-running the same command resumes (finished ids, failures included, are
//! skipped). A store is refused for a run with different parameters.

pub mod chunk;
pub mod export;
pub mod join;
pub mod manifest;
pub mod merge;
pub mod writer;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use chunk::{data_err, decode_chunk};

pub use chunk::{Outcome, Record};
pub use join::{Descriptors, Nets, aggregate_store, aggregate_stores};
pub use manifest::{FORMAT_VERSION, InputSpec, Manifest, NetSpec, read_manifest};
pub use merge::merge;
pub use writer::StoreWriter;

pub(crate) fn chunk_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let cdir = dir.join("chunks");
    let mut v = Vec::new();
    if !cdir.is_dir() {
        return Ok(v);
    }
    for e in std::fs::read_dir(&cdir).map_err(|e| Error::io(&cdir, e))? {
        let p = e.map_err(|e| Error::io(&cdir, e))?.path();
        if p.extension().is_some_and(|x| x == "chunk") {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// A store opened for reading: the manifest and every record, sorted by id.
#[derive(Debug, Clone)]
pub struct Store {
    /// The store folder.
    pub dir: PathBuf,
    /// What it holds.
    pub manifest: Manifest,
    /// All records (successes and failures), sorted by id.
    pub records: Vec<Record>,
}

impl Store {
    /// Opens a store, validating every chunk.
    pub fn open(dir: &Path) -> Result<Store> {
        let manifest = read_manifest(dir)?;
        let floats = manifest.floats_per_record();
        let mut records = Vec::new();
        for p in chunk_files(dir)? {
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            let (f, recs) = decode_chunk(&p, &bytes)?;
            if f != floats {
                return Err(data_err(
                    &p,
                    format!("chunk has {f} floats per record, manifest says {floats}"),
                ));
            }
            records.extend(recs);
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(w) = records.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(data_err(dir, format!("id {} appears twice", w[0].id)));
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            manifest,
            records,
        })
    }

    /// The failed records as (id, reason).
    pub fn failures(&self) -> Vec<(&str, &str)> {
        self.records
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Failed(why) => Some((r.id.as_str(), why.as_str())),
                Outcome::Ok(_) => None,
            })
            .collect()
    }

    /// The successful records.
    pub fn ok_records(&self) -> impl Iterator<Item = (&Record, &[f32])> {
        self.records.iter().filter_map(|r| match &r.outcome {
            Outcome::Ok(v) => Some((r, v.as_slice())),
            Outcome::Failed(_) => None,
        })
    }
}
