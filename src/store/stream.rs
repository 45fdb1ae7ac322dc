//! A store read row by row, in id order, without its descriptors in memory. One pass over the
//! chunks (each one checked against its checksum) builds an index of the live records: id,
//! labels, source, and the byte offset of the record's floats in its chunk file. The floats are
//! then read by offset as they are asked for, whatever order the chunks hold the ids in (merged
//! shards, resumed runs). This is what exports of stores larger than memory use
//! ([`super::export`]).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::chunk::{Outcome, Record, Source};
use super::state::read_state;
use super::{Manifest, StoreState, incomplete_note, read_live, read_manifest};
use ndarray::Array2;

use super::Nets;
use crate::aggregate::Aggregate;
use crate::error::{Error, Result};

/// One live record of the index.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Image id.
    pub id: String,
    /// Labels.
    pub labels: Vec<String>,
    /// Where it was computed from.
    pub source: Option<Source>,
    /// The failure's reason, for failed inputs.
    pub failure: Option<String>,
    chunk: usize,
    offset: usize,
}

/// A store opened for streaming: manifest, state and the index of live records.
#[derive(Debug, Clone)]
pub struct StoreStream {
    /// The store folder.
    pub dir: PathBuf,
    /// What it holds.
    pub manifest: Manifest,
    /// How far its writing got.
    pub state: Option<StoreState>,
    /// Live records, sorted by id.
    pub entries: Vec<Entry>,
    /// Chunk files with their sizes when indexed.
    files: Vec<(PathBuf, u64)>,
}

impl StoreStream {
    /// Opens a store with the same checks as [`super::Store::open`], keeping no descriptor.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = read_manifest(dir)?;
        let state = read_state(dir)?;
        let (files, live) = read_live(
            dir,
            &manifest,
            state.as_ref(),
            false,
            |chunk, offset, r: Record| Entry {
                failure: match r.outcome {
                    Outcome::Failed(why) => Some(why),
                    _ => None,
                },
                id: r.id,
                labels: r.labels,
                source: r.source,
                chunk,
                offset,
            },
        )?;
        let files = files
            .into_iter()
            .map(|p| {
                let len = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len();
                Ok((p, len))
            })
            .collect::<Result<_>>()?;
        Ok(StoreStream {
            dir: dir.to_path_buf(),
            manifest,
            state,
            entries: live.into_iter().map(|(_, e)| e).collect(),
            files,
        })
    }

    /// Records with descriptors.
    pub fn ok_len(&self) -> usize {
        self.entries.iter().filter(|e| e.failure.is_none()).count()
    }

    /// The failed records as (id, reason).
    pub fn failures(&self) -> Vec<(&str, &str)> {
        self.entries
            .iter()
            .filter_map(|e| e.failure.as_deref().map(|f| (e.id.as_str(), f)))
            .collect()
    }

    /// Why the store is not a complete extraction, if it is not.
    pub fn incomplete(&self) -> Option<String> {
        incomplete_note(self.state.as_ref(), self.entries.len())
    }

    /// Whether the store still matches its inputs.
    pub fn freshness(&self) -> super::Freshness {
        super::check::check_records(
            &self.manifest,
            self.incomplete(),
            self.entries
                .iter()
                .map(|e| (e.id.as_str(), e.source.as_ref())),
        )
    }

    /// The descriptors of every successful record, in id order, as one (records, d) matrix:
    /// aggregated over scales by `how` with `nets` fused by stacking and L2-normalised (what
    /// `export` writes), or `raw` (each net's per-scale descriptors, unnormalised). Filled row by
    /// row from the chunks: memory is the matrix and one record.
    pub fn to_array(&self, how: Aggregate, nets: &Nets, raw: bool) -> Result<Array2<f32>> {
        let nets = nets.resolve(self.manifest.nets.len())?;
        let layout = self.manifest.layout();
        let d = if raw {
            nets.iter().map(|&n| layout.dims[n]).sum::<usize>() * layout.scales
        } else {
            layout.dim(how, &nets)
        };
        let mut x = Array2::<f32>::zeros((self.ok_len(), d));
        for (mut out, row) in x.rows_mut().into_iter().zip(self.ok_rows()) {
            let (_, floats) = row?;
            let v = if raw {
                layout.raw(&floats, &nets)
            } else {
                layout.aggregate(&floats, how, &nets)?
            };
            out.assign(&ndarray::ArrayView1::from(&v[..]));
        }
        Ok(x)
    }

    /// The successful records with their floats (laid out as [`Manifest::slot`] says), in id
    /// order, read as they are reached.
    pub fn ok_rows(&self) -> OkRows<'_> {
        OkRows {
            stream: self,
            next: 0,
            reader: FloatReader::new(self),
        }
    }
}

/// The iterator of [`StoreStream::ok_rows`].
pub struct OkRows<'a> {
    stream: &'a StoreStream,
    next: usize,
    reader: FloatReader<'a>,
}

/// Reads records' floats by their place in the chunk files, keeping one chunk open: a record
/// after the last one read in the same chunk is reached by a relative seek that keeps what is
/// already buffered (records of a chunk are read in file order by a scan), any other by a seek.
struct FloatReader<'a> {
    stream: &'a StoreStream,
    /// Bytes of a record's floats.
    bytes: usize,
    /// The open chunk, its reader and the reader's position.
    open: Option<(usize, std::io::BufReader<std::fs::File>, u64)>,
    buf: Vec<u8>,
}

impl<'a> FloatReader<'a> {
    fn new(stream: &'a StoreStream) -> Self {
        FloatReader {
            stream,
            bytes: stream.manifest.floats_per_record() * 4,
            open: None,
            buf: Vec::new(),
        }
    }

    fn floats(&mut self, e: &Entry) -> Result<Vec<f32>> {
        let (path, len) = &self.stream.files[e.chunk];
        let changed = || Error::Data {
            path: path.clone(),
            reason: "the chunk changed while the store was read".into(),
        };
        if self.open.as_ref().is_none_or(|(c, _, _)| *c != e.chunk) {
            let f = std::fs::File::open(path).map_err(|err| Error::io(path, err))?;
            if f.metadata().map_err(|err| Error::io(path, err))?.len() != *len {
                return Err(changed());
            }
            self.open = Some((e.chunk, std::io::BufReader::with_capacity(1 << 16, f), 0));
        }
        let (_, f, pos) = self.open.as_mut().expect("just opened");
        self.buf.resize(self.bytes, 0);
        let at = e.offset as u64;
        let seek = if at >= *pos {
            f.seek_relative((at - *pos) as i64)
        } else {
            f.seek(SeekFrom::Start(at)).map(|_| ())
        };
        let read = seek.and_then(|_| f.read_exact(&mut self.buf));
        // After a failed read the position is unknown: the next read seeks from the start.
        *pos = if read.is_ok() {
            at + self.bytes as u64
        } else {
            u64::MAX
        };
        read.map_err(|err| Error::io(path, err))?;
        Ok(self
            .buf
            .chunks_exact(4)
            .map(|x| f32::from_le_bytes(x.try_into().expect("4 bytes")))
            .collect())
    }
}

impl StoreStream {
    /// The floats of the entries at `positions` (indices into [`StoreStream::entries`], each a
    /// successful record), in the order given.
    pub fn floats_at(&self, positions: &[usize]) -> Result<Vec<Vec<f32>>> {
        let mut r = FloatReader::new(self);
        positions
            .iter()
            .map(|&i| {
                let e = &self.entries[i];
                match &e.failure {
                    Some(why) => Err(Error::usage(format!(
                        "{} has no descriptor: its extraction failed ({why})",
                        e.id
                    ))),
                    None => r.floats(e),
                }
            })
            .collect()
    }
}

impl<'a> Iterator for OkRows<'a> {
    type Item = Result<(&'a Entry, Vec<f32>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let entries = &self.stream.entries;
        while self.next < entries.len() && entries[self.next].failure.is_some() {
            self.next += 1;
        }
        let e = entries.get(self.next)?;
        self.next += 1;
        Some(self.reader.floats(e).map(|v| (e, v)))
    }
}
