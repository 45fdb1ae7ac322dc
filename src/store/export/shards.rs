//! Sharded `.npy` (the layout clip-retrieval and autofaiss read): `emb_<k>.npy` +
//! `meta_<k>.parquet` pairs of at most N rows each.

use std::path::{Path, PathBuf};

use super::Sink;
use super::npy::NpyMatrix;
use super::parquet::ParquetSink;
use crate::error::{Error, Result};

/// `emb_<k>.npy` + `meta_<k>.parquet` pairs of at most `rows` rows; older pairs beyond the last
/// one written are removed at the end.
pub(super) struct ShardSink {
    dir: PathBuf,
    rows: usize,
    total: usize,
    dim: usize,
    multi_label: bool,
    shard: usize,
    in_shard: usize,
    meta: Vec<(String, String)>,
    current: Option<(NpyMatrix, ParquetSink)>,
    files: Vec<PathBuf>,
}

impl ShardSink {
    pub(super) fn new(
        dir: &Path,
        rows: usize,
        total: usize,
        dim: usize,
        multi_label: bool,
        meta: Vec<(String, String)>,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(ShardSink {
            dir: dir.to_path_buf(),
            rows,
            total,
            dim,
            multi_label,
            shard: 0,
            in_shard: 0,
            meta,
            current: None,
            files: Vec::new(),
        })
    }

    fn names(&self, k: usize) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("emb_{k:05}.npy")),
            self.dir.join(format!("meta_{k:05}.parquet")),
        )
    }

    fn open_shard(&mut self) -> Result<()> {
        let (emb, meta) = self.names(self.shard);
        let rows = self.rows.min(self.total - self.shard * self.rows);
        let npy = NpyMatrix::create(&emb, rows, self.dim)?;
        let parquet = ParquetSink::new(&meta, &[], self.multi_label, 1, &self.meta)?;
        self.current = Some((npy, parquet));
        Ok(())
    }

    fn close_shard(&mut self) -> Result<()> {
        if let Some((npy, meta)) = self.current.take() {
            let (emb, meta_path) = self.names(self.shard);
            let file = npy.finish()?;
            Box::new(meta).finish()?;
            file.commit()?;
            self.files.push(emb);
            self.files.push(meta_path);
            self.shard += 1;
            self.in_shard = 0;
        }
        Ok(())
    }
}

impl Sink for ShardSink {
    fn push(&mut self, id: &str, labels: &[String], row: &[f32]) -> Result<()> {
        if self.current.is_none() {
            self.open_shard()?;
        }
        let (npy, meta) = self.current.as_mut().expect("just opened");
        npy.push(row)?;
        meta.push(id, labels, &[])?;
        self.in_shard += 1;
        if self.in_shard == self.rows {
            self.close_shard()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<PathBuf>> {
        self.close_shard()?;
        // Pairs left from an earlier, larger export would read as part of this one.
        let mut k = self.shard;
        loop {
            let (emb, meta) = self.names(k);
            let mut any = false;
            for p in [emb, meta] {
                if p.is_file() {
                    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                    any = true;
                }
            }
            if !any {
                break;
            }
            k += 1;
        }
        Ok(self.files)
    }
}
