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
