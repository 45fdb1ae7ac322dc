//! The chunk file: a batch of records, written atomically, with a checksum (format in
//! [`super`]'s docs). Version 2 records where each input's descriptor came from
//! ([`Source`]) and can remove a record ([`Outcome::Removed`]); version 1 chunks (no sources)
//! are still read.

use std::path::Path;

use crate::error::{Error, Result};

const MAGIC_V1: &[u8; 8] = b"VGGFCHK1";
const MAGIC_V2: &[u8; 8] = b"VGGFCHK2";

pub(super) fn data_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// What happened to one input.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Descriptors, laid out as [`super::Manifest::slot`] says.
    Ok(Vec<f32>),
    /// The input could not be used; the reason names the problem.
    Failed(String),
    /// The input no longer exists: this record removes earlier records of its id.
    Removed,
}

/// The file a record was computed from, as it was then: its size, modification and status-change
/// times (a quick check), and the SHA-256 of its bytes (the verdict: a file whose times changed
/// but whose bytes did not is the same input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Status-change time (changes with permissions too), nanoseconds since the Unix epoch.
    pub ctime_ns: i64,
    /// SHA-256 of the file's bytes, when they could be read.
    pub sha256: Option<[u8; 32]>,
}

impl Source {
    /// The size and times of `meta`, without a content hash.
    pub fn of_metadata(meta: &std::fs::Metadata) -> Source {
        use std::os::unix::fs::MetadataExt;
        Source {
            size: meta.len(),
            mtime_ns: nanoseconds(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: nanoseconds(meta.ctime(), meta.ctime_nsec()),
            sha256: None,
        }
    }

    /// Whether `other` (a fresh stat) has the same size and times.
    pub fn same_stat(&self, other: &Source) -> bool {
        (self.size, self.mtime_ns, self.ctime_ns) == (other.size, other.mtime_ns, other.ctime_ns)
    }
}

/// A file time in nanoseconds since the Unix epoch. Times beyond what 64 bits of nanoseconds
/// hold (before 1678 or after 2262, which a file can be given) saturate rather than overflow:
/// such a file is still fingerprinted by its size, its other time and its content hash.
fn nanoseconds(seconds: i64, nanos: i64) -> i64 {
    seconds.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// One input's entry in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Path relative to the input root (see [`crate::dataset::Item::id`]).
    pub id: String,
    /// Labels (class folder name; empty for unlabelled inputs).
    pub labels: Vec<String>,
    /// Descriptors, the failure, or the removal.
    pub outcome: Outcome,
    /// The file it was computed from; `None` in version 1 chunks and when the file could not
    /// even be examined.
    pub source: Option<Source>,
}

/// A record without its descriptor values: what resuming and checking a store need.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordMeta {
    /// The record's id.
    pub id: String,
    /// Whether it holds descriptors (`Some(true)`), a failure (`Some(false)`), or removes its
    /// id (`None`).
    pub ok: Option<bool>,
    /// Its source.
    pub source: Option<Source>,
    /// Its labels.
    pub labels: Vec<String>,
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
        .map_err(|_| Error::Usage(format!("string too long for the store: {s:.80}...")))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Serialises records into one (version 2) chunk.
pub fn encode_chunk(records: &[Record], floats: usize) -> Result<Vec<u8>> {
    let mut b = Vec::with_capacity(16 + records.len() * (128 + 4 * floats));
    b.extend_from_slice(MAGIC_V2);
    let count = |n: usize, what: &str| {
        u32::try_from(n).map_err(|_| Error::Internal(format!("{n} {what} in one chunk")))
    };
    b.extend_from_slice(&count(records.len(), "records")?.to_le_bytes());
    b.extend_from_slice(&count(floats, "floats per record")?.to_le_bytes());
    for r in records {
        put_str16(&mut b, &r.id)?;
        let labels = u16::try_from(r.labels.len()).map_err(|_| {
            Error::Usage(format!(
                "image {} has {} labels; a store holds at most {} per image",
                r.id,
                r.labels.len(),
                u16::MAX
            ))
        })?;
        b.extend_from_slice(&labels.to_le_bytes());
        for l in &r.labels {
            put_str16(&mut b, l)?;
        }
        match &r.source {
            None => b.push(0),
            Some(s) => {
                b.push(if s.sha256.is_some() { 2 } else { 1 });
                b.extend_from_slice(&s.size.to_le_bytes());
                b.extend_from_slice(&s.mtime_ns.to_le_bytes());
                b.extend_from_slice(&s.ctime_ns.to_le_bytes());
                if let Some(h) = &s.sha256 {
                    b.extend_from_slice(h);
                }
            }
        }
        match &r.outcome {
            Outcome::Ok(v) => {
                if v.len() != floats {
                    return Err(Error::Internal(format!(
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
                b.extend_from_slice(
                    &count(reason.len(), "bytes in a failure reason")?.to_le_bytes(),
                );
                b.extend_from_slice(reason.as_bytes());
            }
            Outcome::Removed => b.push(2),
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
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize)
    }
    fn u32(&mut self) -> Result<usize> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self, n: usize) -> Result<String> {
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| data_err(self.path, "invalid UTF-8 in chunk"))
    }
}

/// Walks the records of a chunk; `f` gets each record's id, labels, source, status and payload
/// cursor position, and must consume the payload through `payload`.
fn walk(
    path: &Path,
    bytes: &[u8],
    mut f: impl FnMut(String, Vec<String>, Option<Source>, u8, &mut Cursor, usize) -> Result<()>,
) -> Result<usize> {
    let v2 = bytes.len() >= 8 && &bytes[..8] == MAGIC_V2;
    if bytes.len() < 24 || !(v2 || &bytes[..8] == MAGIC_V1) {
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
    for _ in 0..n {
        let len = c.u16()?;
        let id = c.string(len)?;
        let nl = c.u16()?;
        let mut labels = Vec::with_capacity(nl);
        for _ in 0..nl {
            let len = c.u16()?;
            labels.push(c.string(len)?);
        }
        let source = if v2 {
            match c.u8()? {
                0 => None,
                k @ (1 | 2) => {
                    let size = c.u64()?;
                    let mtime_ns = c.u64()? as i64;
                    let ctime_ns = c.u64()? as i64;
                    let sha256 = if k == 2 {
                        Some(c.take(32)?.try_into().expect("32 bytes"))
                    } else {
                        None
                    };
                    Some(Source {
                        size,
                        mtime_ns,
                        ctime_ns,
                        sha256,
                    })
                }
                k => return Err(data_err(path, format!("bad source flag {k}"))),
            }
        } else {
            None
        };
        let status = c.u8()?;
        f(id, labels, source, status, &mut c, floats)?;
    }
    if c.pos != body.len() {
        return Err(data_err(path, "trailing bytes after the last record"));
    }
    Ok(floats)
}

/// Parses one chunk; `path` is used in errors. Returns the floats per record and the records.
#[cfg(test)]
fn decode_chunk(path: &Path, bytes: &[u8]) -> Result<(usize, Vec<Record>)> {
    let (floats, recs) = index_chunk(path, bytes, true)?;
    Ok((floats, recs.into_iter().map(|(r, _)| r).collect()))
}

/// Parses one chunk, giving each record with the byte offset of its payload in the file (for a
/// successful record, its floats: `floats` little-endian float32 values). With `keep_floats`
/// false, successful records carry no values (`Outcome::Ok` of an empty vector), so that an
/// index of a large store stays small.
pub(crate) fn index_chunk(
    path: &Path,
    bytes: &[u8],
    keep_floats: bool,
) -> Result<(usize, Vec<(Record, usize)>)> {
    let mut out = Vec::new();
    let floats = walk(path, bytes, |id, labels, source, status, c, floats| {
        let at = c.pos;
        let outcome = match status {
            0 => {
                let raw = c.take(floats * 4)?;
                Outcome::Ok(if keep_floats {
                    raw.chunks_exact(4)
                        .map(|x| f32::from_le_bytes(x.try_into().expect("4 bytes")))
                        .collect()
                } else {
                    Vec::new()
                })
            }
            1 => {
                let len = c.u32()?;
                Outcome::Failed(c.string(len)?)
            }
            2 => Outcome::Removed,
            s => return Err(data_err(path, format!("bad record status {s}"))),
        };
        out.push((
            Record {
                id,
                labels,
                outcome,
                source,
            },
            at,
        ));
        Ok(())
    })?;
    Ok((floats, out))
}

/// Parses one chunk without keeping the descriptor values.
pub fn scan_chunk(path: &Path, bytes: &[u8]) -> Result<(usize, Vec<RecordMeta>)> {
    let mut out = Vec::new();
    let floats = walk(path, bytes, |id, labels, source, status, c, floats| {
        let ok = match status {
            0 => {
                c.take(floats * 4)?;
                Some(true)
            }
            1 => {
                let len = c.u32()?;
                c.take(len)?;
                Some(false)
            }
            2 => None,
            s => return Err(data_err(path, format!("bad record status {s}"))),
        };
        out.push(RecordMeta {
            id,
            ok,
            source,
            labels,
        });
        Ok(())
    })?;
    Ok((floats, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::writer::tests::rec;

    #[test]
    fn chunk_round_trip_and_corruption() {
        let mut removed = rec("c", true);
        removed.outcome = Outcome::Removed;
        let mut with_source = rec("a/1.jpg", true);
        with_source.source = Some(Source {
            size: 7,
            mtime_ns: -3,
            ctime_ns: 1 << 40,
            sha256: Some([9; 32]),
        });
        let recs = vec![with_source, rec("b/é 2.jpg", false), removed];
        let bytes = encode_chunk(&recs, 4).unwrap();
        let (f, back) = decode_chunk(Path::new("x"), &bytes).unwrap();
        assert_eq!((f, &back), (4, &recs));
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
        let (_, metas) = scan_chunk(Path::new("x"), &bytes).unwrap();
        assert_eq!(
            metas.iter().map(|m| m.ok).collect::<Vec<_>>(),
            [Some(true), Some(false), None]
        );
        assert_eq!(metas[0].source, recs[0].source);
    }
}
