//! The feature store: per-image, per-net, per-scale descriptors on disk (no candle types here).
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

pub mod npy;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"VGGFCHK1";
/// Version of the on-disk format described in the module docs.
pub const FORMAT_VERSION: u32 = 1;

/// Where the inputs came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// The input path as canonicalised at extraction time.
    pub root: String,
    /// Source kind (`folder`, `voc`, `list`).
    pub kind: String,
    /// VOC split, if any.
    pub split: Option<String>,
    /// `--limit-per-class`, if any.
    pub limit_per_class: Option<usize>,
    /// `--shard i/N` as (i, N), if any.
    pub shard: Option<(usize, usize)>,
}

/// One network of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSpec {
    /// The weights file as given.
    pub weights: String,
    /// SHA-256 of the weights file (hex).
    pub sha256: String,
    /// Configuration letter.
    pub config: String,
    /// Descriptor layer (`fc7`, `pool5`, ...).
    pub layer: String,
    /// Descriptor dimension (channels of the layer).
    pub dim: usize,
    /// Input convention (`torchvision` or `caffe`).
    pub preprocess: String,
}

/// Everything that determines a store's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// On-disk format version.
    pub format_version: u32,
    /// vggfeat version that wrote the store.
    pub tool_version: String,
    /// Inputs.
    pub input: InputSpec,
    /// Networks, in `--weights` order.
    pub nets: Vec<NetSpec>,
    /// Scales Q (smallest image side), in order.
    pub scales: Vec<u32>,
    /// Whether descriptors average the horizontal flip.
    pub flip: bool,
    /// Decode limit in pixels (affects which inputs fail).
    pub max_pixels: u64,
}

impl Manifest {
    /// Floats per successful record.
    pub fn floats_per_record(&self) -> usize {
        self.nets.iter().map(|n| n.dim * self.scales.len()).sum()
    }

    /// Offset and length of (net, scale) within a record's floats.
    pub fn slot(&self, net: usize, scale: usize) -> (usize, usize) {
        let before: usize = self.nets[..net]
            .iter()
            .map(|n| n.dim * self.scales.len())
            .sum();
        let d = self.nets[net].dim;
        (before + scale * d, d)
    }

    /// The fields that differ from `other`, in words (weights paths are ignored: the hash
    /// identifies a net). With `ignore_shard`, shard assignments may differ (for merging).
    pub fn differences(&self, other: &Manifest, ignore_shard: bool) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |what: &str, a: String, b: String| {
            if a != b {
                d.push(format!("{what}: {a} vs {b}"));
            }
        };
        cmp(
            "format version",
            self.format_version.to_string(),
            other.format_version.to_string(),
        );
        cmp(
            "tool version",
            self.tool_version.clone(),
            other.tool_version.clone(),
        );
        cmp("input", self.input.root.clone(), other.input.root.clone());
        cmp(
            "input kind",
            self.input.kind.clone(),
            other.input.kind.clone(),
        );
        cmp(
            "split",
            format!("{:?}", self.input.split),
            format!("{:?}", other.input.split),
        );
        cmp(
            "limit per class",
            format!("{:?}", self.input.limit_per_class),
            format!("{:?}", other.input.limit_per_class),
        );
        if !ignore_shard {
            cmp(
                "shard",
                format!("{:?}", self.input.shard),
                format!("{:?}", other.input.shard),
            );
        }
        cmp(
            "number of nets",
            self.nets.len().to_string(),
            other.nets.len().to_string(),
        );
        for (i, (a, b)) in self.nets.iter().zip(&other.nets).enumerate() {
            cmp(
                &format!("net {i} weights (sha256)"),
                a.sha256.clone(),
                b.sha256.clone(),
            );
            cmp(&format!("net {i} layer"), a.layer.clone(), b.layer.clone());
            cmp(
                &format!("net {i} preprocessing"),
                a.preprocess.clone(),
                b.preprocess.clone(),
            );
        }
        cmp(
            "scales",
            format!("{:?}", self.scales),
            format!("{:?}", other.scales),
        );
        cmp("flip", self.flip.to_string(), other.flip.to_string());
        cmp(
            "max pixels",
            self.max_pixels.to_string(),
            other.max_pixels.to_string(),
        );
        d
    }
}

/// What happened to one input.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Descriptors, laid out as [`Manifest::slot`] says.
    Ok(Vec<f32>),
    /// The input could not be used; the reason names the problem.
    Failed(String),
}

/// One input's entry in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Path relative to the input root.
    pub id: String,
    /// Labels (class folder name; empty for unlabelled inputs).
    pub labels: Vec<String>,
    /// Descriptors or the failure.
    pub outcome: Outcome,
}

fn data_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn put_str16(buf: &mut Vec<u8>, s: &str) -> Result<()> {
    let len = u16::try_from(s.len())
        .map_err(|_| Error::InvalidParam(format!("string too long for the store: {s:.80}...")))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Serialises records into one chunk.
pub fn encode_chunk(records: &[Record], floats: usize) -> Result<Vec<u8>> {
    let mut b = Vec::with_capacity(16 + records.len() * (64 + 4 * floats));
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&(records.len() as u32).to_le_bytes());
    b.extend_from_slice(&(floats as u32).to_le_bytes());
    for r in records {
        put_str16(&mut b, &r.id)?;
        b.extend_from_slice(&(r.labels.len() as u16).to_le_bytes());
        for l in &r.labels {
            put_str16(&mut b, l)?;
        }
        match &r.outcome {
            Outcome::Ok(v) => {
                if v.len() != floats {
                    return Err(Error::InvalidParam(format!(
                        "record {} has {} floats, the store expects {floats}",
                        r.id,
                        v.len()
                    )));
                }
                b.push(0);
                for x in v {
                    b.extend_from_slice(&x.to_le_bytes());
                }
            }
            Outcome::Failed(reason) => {
                b.push(1);
                b.extend_from_slice(&(reason.len() as u32).to_le_bytes());
                b.extend_from_slice(reason.as_bytes());
            }
        }
    }
    let h = fnv1a(&b);
    b.extend_from_slice(&h.to_le_bytes());
    Ok(b)
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.b.len());
        let end = end.ok_or_else(|| data_err(self.path, "chunk ends early (truncated)"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<usize> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize)
    }
    fn u32(&mut self) -> Result<usize> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }
    fn string(&mut self, n: usize) -> Result<String> {
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| data_err(self.path, "invalid UTF-8 in chunk"))
    }
}

/// Parses one chunk; `path` is used in errors.
pub fn decode_chunk(path: &Path, bytes: &[u8]) -> Result<(usize, Vec<Record>)> {
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return Err(data_err(
            path,
            "not a vggfeat chunk (bad magic or too short)",
        ));
    }
    let (body, check) = bytes.split_at(bytes.len() - 8);
    if fnv1a(body) != u64::from_le_bytes(check.try_into().expect("8 bytes")) {
        return Err(data_err(path, "chunk checksum mismatch (corrupt file)"));
    }
    let mut c = Cursor {
        b: body,
        pos: 8,
        path,
    };
    let n = c.u32()?;
    let floats = c.u32()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = c.u16()?;
        let id = c.string(len)?;
        let nl = c.u16()?;
        let mut labels = Vec::with_capacity(nl);
        for _ in 0..nl {
            let len = c.u16()?;
            labels.push(c.string(len)?);
        }
        let status = c.take(1)?[0];
        let outcome = match status {
            0 => {
                let raw = c.take(floats * 4)?;
                Outcome::Ok(
                    raw.chunks_exact(4)
                        .map(|x| f32::from_le_bytes(x.try_into().expect("4 bytes")))
                        .collect(),
                )
            }
            1 => {
                let len = c.u32()?;
                Outcome::Failed(c.string(len)?)
            }
            s => return Err(data_err(path, format!("bad record status {s}"))),
        };
        out.push(Record {
            id,
            labels,
            outcome,
        });
    }
    if c.pos != body.len() {
        return Err(data_err(path, "trailing bytes after the last record"));
    }
    Ok((floats, out))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn chunk_files(dir: &Path) -> Result<Vec<PathBuf>> {
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

/// Reads a store's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let p = dir.join("manifest.json");
    let s = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    serde_json::from_str(&s).map_err(|e| data_err(&p, format!("invalid manifest: {e}")))
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
            let json = serde_json::to_string_pretty(manifest).expect("manifest serialises");
            write_atomic(&mpath, json.as_bytes())?;
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

/// Writes descriptors as CSV: header `id,label,d0,d1,...`, one row per image (labels joined
/// by `;`), floats in shortest round-trip form.
pub fn write_csv(path: &Path, ids: &[String], labels: &[String], rows: &[Vec<f32>]) -> Result<()> {
    let d = rows.first().map_or(0, Vec::len);
    let tmp = path.with_extension("csv.tmp");
    let mut w = csv::Writer::from_path(&tmp).map_err(|e| data_err(&tmp, e.to_string()))?;
    let mut header = vec!["id".to_string(), "label".to_string()];
    header.extend((0..d).map(|i| format!("d{i}")));
    w.write_record(&header)
        .map_err(|e| data_err(&tmp, e.to_string()))?;
    for ((id, label), row) in ids.iter().zip(labels).zip(rows) {
        let mut rec = vec![id.clone(), label.clone()];
        rec.extend(row.iter().map(|x| x.to_string()));
        w.write_record(&rec)
            .map_err(|e| data_err(&tmp, e.to_string()))?;
    }
    w.flush().map_err(|e| Error::io(&tmp, e))?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            tool_version: "test".into(),
            input: InputSpec {
                root: "/data".into(),
                kind: "folder".into(),
                split: None,
                limit_per_class: None,
                shard: None,
            },
            nets: vec![NetSpec {
                weights: "w.safetensors".into(),
                sha256: "ab".into(),
                config: "D".into(),
                layer: "fc7".into(),
                dim: 2,
                preprocess: "torchvision".into(),
            }],
            scales: vec![256, 384],
            flip: true,
            max_pixels: 100,
        }
    }

    fn rec(id: &str, ok: bool) -> Record {
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
    fn chunk_round_trip_and_corruption() {
        let recs = vec![rec("a/1.jpg", true), rec("b/é 2.jpg", false)];
        let bytes = encode_chunk(&recs, 4).unwrap();
        let (f, back) = decode_chunk(Path::new("x"), &bytes).unwrap();
        assert_eq!((f, back), (4, recs));
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(
            decode_chunk(Path::new("x"), &bad)
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
        assert!(decode_chunk(Path::new("x"), &bytes[..bytes.len() - 3]).is_err());
        assert!(encode_chunk(&[rec("a", true)], 3).is_err());
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
