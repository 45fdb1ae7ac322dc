//! The chunk file: a batch of records, written atomically, with a checksum (format in
//! [`super`]'s docs).

use std::path::Path;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"VGGFCHK1";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::writer::tests::rec;

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
}
