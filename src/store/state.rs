//! `state.json`: how far the store's writing got. Rewritten atomically after every chunk, so a
//! reader can tell a complete store from one whose run was interrupted, and a missing chunk from
//! a short run. Stores written before this file existed have none (nothing is checked then).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::util::{read_json, write_json};

/// The store's writing state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreState {
    /// Chunks written: `chunks/000000.chunk` .. `chunks/{chunks - 1}.chunk` must all exist.
    pub chunks: usize,
    /// Whether the last run went through every input it was given (and, for a merge, whether
    /// every shard was there).
    pub complete: bool,
    /// Inputs the last run was given (listed), if known.
    #[serde(default)]
    pub inputs: Option<usize>,
    /// Why the store is not complete, in words (e.g. the shards a partial merge lacked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The fingerprint of the whole dataset the store's inputs were selected from (before
    /// sharding): the same for every shard of one extraction wherever the data is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetPrint>,
}

/// A dataset's fingerprint: how many entries it lists and the SHA-256 of its sorted ids with
/// their file sizes (sizes, not contents: a fingerprint every shard can afford to compute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetPrint {
    /// Entries listed (images and unusable entries).
    pub entries: usize,
    /// SHA-256 (hex) of `id \t size \n` lines in id order (size `-` when the file cannot be
    /// examined).
    pub sha256: String,
}

impl DatasetPrint {
    /// The fingerprint of `(id, size)` entries (any order).
    pub fn of(entries: impl IntoIterator<Item = (String, Option<u64>)>) -> DatasetPrint {
        use sha2::{Digest, Sha256};
        let mut v: Vec<(String, Option<u64>)> = entries.into_iter().collect();
        v.sort();
        let mut h = Sha256::new();
        for (id, size) in &v {
            h.update(id.as_bytes());
            h.update(b"\t");
            h.update(size.map_or("-".to_string(), |s| s.to_string()).as_bytes());
            h.update(b"\n");
        }
        DatasetPrint {
            entries: v.len(),
            sha256: hex::encode(h.finalize()),
        }
    }
}

/// The path of `state.json` in `dir`.
pub fn state_path(dir: &Path) -> std::path::PathBuf {
    dir.join("state.json")
}

/// Reads `state.json`; `None` when the store predates it.
pub fn read_state(dir: &Path) -> Result<Option<StoreState>> {
    let p = state_path(dir);
    if !p.exists() {
        return Ok(None);
    }
    read_json(&p).map(Some)
}

/// Writes `state.json` atomically.
pub fn write_state(dir: &Path, state: &StoreState) -> Result<()> {
    write_json(&state_path(dir), state)
}
