//! Descriptors out of a store, streamed: records are read in id order a chunk at a time
//! ([`super::StoreStream`]), aggregated and L2-normalised one by one ([`super::join`]), and
//! written as they come, so memory stays flat however large the store. Formats:
//!
//! * CSV: header `id,label,d0,d1,...`, one row per image.
//! * `.npy`: a float32 matrix (rows in id order, written by `npyz`) with `OUT.ids.csv`
//!   (`id,label`) beside it.
//! * Parquet (`parquet`/`arrow` crates): columns `id`, `label` (or `labels`, a list, when any
//!   image has more or fewer than one label), and `features`, a fixed-size list of float32. It is
//!   written in row groups of about 4 MiB of descriptors. pandas reads it as is
//!   (`np.stack(pd.read_parquet(f).features)`), and so does polars.
//! * Sharded `.npy` (the layout clip-retrieval and autofaiss read): `emb_00000.npy` and
//!   `meta_00000.parquet` (`id`, `label` or `labels`) pairs of at most N rows each.
//! * Raw (`--raw`, CSV or Parquet): the stored per-net, per-scale descriptors before any
//!   normalisation or aggregation. There is one column group per (net, scale), named
//!   `net<i>_<config>_<layer>_q<Q>` (`..._d<j>` in CSV).
//!
//! Every file is written atomically ([`crate::util::AtomicFile`]). The `.npy` and its ids file are
//! both written in full before either replaces an older pair, so a failure leaves the old pair.
//!
//! The `label` column joins an image's labels with `;`. A `;` or `\` inside a label is written
//! `\;` or `\\` ([`join_labels`]), so `x;y` (two labels) and `x\;y` (one) stay apart.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use npyz::WriterBuilder;

use super::StoreStream;
use super::join::{Nets, aggregate_record};
use crate::aggregate::Aggregate;
use crate::error::{Error, Result};
use crate::util::AtomicFile;

/// Where and how `export` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportFormat {
    /// CSV: header `id,label,d0,d1,...`, one row per image.
    Csv(PathBuf),
    /// A float32 `.npy` matrix (rows in id order) plus `OUT.ids.csv` (`id,label`) beside it.
    Npy(PathBuf),
    /// A Parquet file: `id`, `label`/`labels`, `features`.
    Parquet(PathBuf),
    /// `emb_<k>.npy` + `meta_<k>.parquet` pairs of at most `rows` rows in a folder.
    NpyShards {
        /// The folder (created if needed).
        dir: PathBuf,
        /// Rows per shard at most (at least 1).
        rows: usize,
    },
}

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportParams {
    /// The store folder.
    pub store: PathBuf,
    /// Scale aggregation (ignored with `raw`).
    pub aggregate: Aggregate,
    /// Nets to use (fused by stacking).
    pub nets: Nets,
    /// Output.
    pub format: ExportFormat,
    /// The stored per-net, per-scale descriptors instead of the aggregated ones (CSV, Parquet).
    pub raw: bool,
}

/// What `export` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Descriptors written.
    pub rows: usize,
    /// Their dimension.
    pub dim: usize,
    /// Failed inputs of the store, which have no descriptor.
    pub failed_left_out: usize,
    /// The files written.
    pub files: Vec<PathBuf>,
    /// What is wrong with the store, if anything: incomplete, or stale against its inputs.
    pub warnings: Vec<String>,
}

/// Value columns of a row: one group named `name` of `len` floats (aggregated: one group).
#[derive(Debug, Clone)]
struct Group {
    name: String,
    offset: usize,
    len: usize,
}

/// Exports a store's descriptors (see the module docs).
pub fn export(p: &ExportParams) -> Result<ExportSummary> {
    let store = StoreStream::open(&p.store)?;
    let m = &store.manifest;
    let nets = p.nets.resolve(m.nets.len())?;
    if p.raw
        && matches!(
            p.format,
            ExportFormat::Npy(_) | ExportFormat::NpyShards { .. }
        )
    {
        return Err(Error::InvalidParam(
            "--raw names its columns by net and scale, which a .npy matrix cannot hold: use --csv \
             or --parquet"
                .into(),
        ));
    }
    if let ExportFormat::NpyShards { rows: 0, .. } = p.format {
        return Err(Error::InvalidParam("--rows must be at least 1".into()));
    }
    let warnings = store.freshness().warnings();
    // The value columns, and how a record's floats become a row.
    let groups: Vec<Group> = if p.raw {
        let mut g = Vec::new();
        let mut offset = 0;
        for &n in &nets {
            let spec = &m.nets[n];
            for (s, q) in m.scales.iter().enumerate() {
                let (_, len) = m.slot(n, s);
                g.push(Group {
                    name: format!("net{n}_{}_{}_q{q}", spec.config, spec.layer),
                    offset,
                    len,
                });
                offset += len;
            }
        }
        g
    } else {
        let dim = super::join::descriptor_dim(m, p.aggregate, &nets);
        vec![Group {
            name: "features".into(),
            offset: 0,
            len: dim,
        }]
    };
    let dim: usize = groups.iter().map(|g| g.len).sum();
    let row_of = |floats: &[f32]| -> Result<Vec<f32>> {
        if !p.raw {
            return aggregate_record(m, floats, p.aggregate, &nets);
        }
        let mut v = Vec::with_capacity(dim);
        for &n in &nets {
            for s in 0..m.scales.len() {
                let (o, d) = m.slot(n, s);
                v.extend_from_slice(&floats[o..o + d]);
            }
        }
        Ok(v)
    };
    let multi_label = store
        .entries
        .iter()
        .any(|e| e.failure.is_none() && e.labels.len() != 1);
    let n = store.ok_len();
    let mut sink: Box<dyn Sink> = match &p.format {
        ExportFormat::Csv(path) => Box::new(CsvSink::new(path, &csv_columns(&groups))?),
        ExportFormat::Npy(path) => Box::new(NpySink {
            npy: NpyMatrix::create(path, n, dim)?,
            ids: CsvSink::new(&path.with_extension("ids.csv"), &[])?,
        }),
        ExportFormat::Parquet(path) => Box::new(ParquetSink::new(path, &groups, multi_label, dim)?),
        ExportFormat::NpyShards { dir, rows } => {
            Box::new(ShardSink::new(dir, *rows, n, dim, multi_label)?)
        }
    };
    for row in store.ok_rows() {
        let (e, floats) = row?;
        sink.push(&e.id, &e.labels, &row_of(&floats)?)?;
    }
    let files = sink.finish()?;
    Ok(ExportSummary {
        rows: n,
        dim,
        failed_left_out: store.failures().len(),
        files,
        warnings,
    })
}

/// The CSV value columns of the groups: `d<j>` for one aggregated group, `<group>_d<j>` raw.
fn csv_columns(groups: &[Group]) -> Vec<String> {
    match groups {
        [g] if g.name == "features" => (0..g.len).map(|j| format!("d{j}")).collect(),
        _ => groups
            .iter()
            .flat_map(|g| (0..g.len).map(move |j| format!("{}_d{j}", g.name)))
            .collect(),
    }
}

/// A destination that takes rows one at a time.
trait Sink {
    /// Writes one image's row.
    fn push(&mut self, id: &str, labels: &[String], row: &[f32]) -> Result<()>;
    /// Completes the files; returns them.
    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>>;
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// An image's labels as one `label` cell: joined by `;`, with `\` and `;` inside a label
/// escaped as `\\` and `\;`.
pub fn join_labels(labels: &[String]) -> String {
    labels
        .iter()
        .map(|l| l.replace('\\', "\\\\").replace(';', "\\;"))
        .collect::<Vec<_>>()
        .join(";")
}

/// A CSV being written row by row into an atomic file.
struct CsvSink {
    path: PathBuf,
    writer: csv::Writer<AtomicFileWriter>,
}

/// An [`AtomicFile`] as an owned `Write` (the csv crate owns its writer).
struct AtomicFileWriter(AtomicFile);

impl Write for AtomicFileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.writer().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.writer().flush()
    }
}

impl CsvSink {
    fn new(path: &Path, columns: &[String]) -> Result<Self> {
        let mut writer = csv::Writer::from_writer(AtomicFileWriter(AtomicFile::create(path)?));
        let mut header = vec!["id".to_string(), "label".to_string()];
        header.extend(columns.iter().cloned());
        writer.write_record(&header).map_err(|e| csv_err(path, e))?;
        Ok(CsvSink {
            path: path.to_path_buf(),
            writer,
        })
    }

    fn into_file(self) -> Result<AtomicFile> {
        let path = self.path;
        let w = self
            .writer
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        Ok(w.0)
    }
}

impl Sink for CsvSink {
    fn push(&mut self, id: &str, labels: &[String], row: &[f32]) -> Result<()> {
        let mut rec = Vec::with_capacity(row.len() + 2);
        rec.push(id.to_string());
        rec.push(join_labels(labels));
        rec.extend(row.iter().map(|x| x.to_string()));
        self.writer
            .write_record(&rec)
            .map_err(|e| csv_err(&self.path, e))
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>> {
        let path = self.path.clone();
        self.into_file()?.commit()?;
        Ok(vec![path])
    }
}

/// Writes one row of values per image as CSV with the given value columns: header
/// `id,label,<columns...>` (e.g. decision values, one column per class), floats in shortest
/// round-trip form.
pub fn write_named_csv(
    path: &Path,
    ids: &[String],
    labels: &[String],
    columns: &[String],
    rows: &[Vec<f32>],
) -> Result<()> {
    let mut sink = CsvSink::new(path, columns)?;
    for ((id, label), row) in ids.iter().zip(labels).zip(rows) {
        let mut rec = vec![id.clone(), label.clone()];
        rec.extend(row.iter().map(|x| x.to_string()));
        sink.writer
            .write_record(&rec)
            .map_err(|e| csv_err(path, e))?;
    }
    sink.into_file()?.commit()
}

/// Writes descriptors as CSV: header `id,label,d0,d1,...`, one row per image (`label` as
/// [`join_labels`] makes it), floats in shortest round-trip form.
pub fn write_csv(path: &Path, ids: &[String], labels: &[String], rows: &[Vec<f32>]) -> Result<()> {
    let d = rows.first().map_or(0, Vec::len);
    let columns: Vec<String> = (0..d).map(|i| format!("d{i}")).collect();
    write_named_csv(path, ids, labels, &columns, rows)
}

/// An [`AtomicFile`] shared with an `npyz` writer, which owns its writer and does not give it
/// back: the file is taken out for the commit once the writer has finished.
#[derive(Clone)]
struct SharedFile(Rc<RefCell<Option<AtomicFile>>>);

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.borrow_mut().as_mut() {
            Some(f) => f.writer().write(buf),
            None => Err(std::io::Error::other("the file was already committed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.borrow_mut().as_mut() {
            Some(f) => f.writer().flush(),
            None => Ok(()),
        }
    }
}

/// A float32 (n, d) `.npy` matrix in C order written row by row (its shape is known in
/// advance); `numpy.load` reads it as is.
struct NpyMatrix {
    path: PathBuf,
    writer: npyz::NpyWriter<f32, SharedFile>,
    file: SharedFile,
}

impl NpyMatrix {
    fn create(path: &Path, rows: usize, dim: usize) -> Result<Self> {
        let file = SharedFile(Rc::new(RefCell::new(Some(AtomicFile::create(path)?))));
        let writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[rows as u64, dim as u64])
            .writer(file.clone())
            .begin_nd()
            .map_err(|e| Error::io(path, e))?;
        Ok(NpyMatrix {
            path: path.to_path_buf(),
            writer,
            file,
        })
    }

    fn push(&mut self, row: &[f32]) -> Result<()> {
        self.writer
            .extend(row.iter().copied())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Checks that every announced row was written; the file, ready to commit.
    fn finish(self) -> Result<AtomicFile> {
        let path = self.path;
        self.writer.finish().map_err(|e| Error::io(&path, e))?;
        self.file
            .0
            .borrow_mut()
            .take()
            .ok_or_else(|| Error::Internal(format!("{}: written twice", path.display())))
    }
}

/// A `.npy` matrix plus the `OUT.ids.csv` beside it.
struct NpySink {
    npy: NpyMatrix,
    ids: CsvSink,
}

impl Sink for NpySink {
    fn push(&mut self, id: &str, labels: &[String], row: &[f32]) -> Result<()> {
        self.npy.push(row)?;
        self.ids.push(id, labels, &[])
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>> {
        let (path, ids_path) = (self.npy.path.clone(), self.ids.path.clone());
        let matrix = self.npy.finish()?;
        let ids = self.ids.into_file()?;
        ids.commit()?;
        matrix.commit()?;
        Ok(vec![path, ids_path])
    }
}

/// Writes `rows` (all of equal length) as a (n, d) little-endian float32 `.npy` file; `numpy.load`
/// reads it as is.
pub fn write_npy(path: &Path, rows: &[Vec<f32>]) -> Result<()> {
    let d = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != d) {
        return Err(Error::Internal("descriptor rows differ in length".into()));
    }
    let mut m = NpyMatrix::create(path, rows.len(), d)?;
    for r in rows {
        m.push(r)?;
    }
    m.finish()?.commit()
}

/// Rows per Parquet row group: about 4 MiB of descriptors, between 1 and 8192 rows.
fn rows_per_group(dim: usize) -> usize {
    ((4 << 20) / (4 * dim.max(1))).clamp(1, 8192)
}

fn parquet_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        reason: format!("writing Parquet: {e}"),
    }
}

/// The Parquet schema: `id`, `label` (nullable string) or `labels` (list of strings), then one
/// fixed-size float32 list per group.
fn schema(groups: &[Group], multi_label: bool) -> Arc<Schema> {
    let mut fields = vec![Field::new("id", DataType::Utf8, false)];
    fields.push(if multi_label {
        Field::new(
            "labels",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        )
    } else {
        Field::new("label", DataType::Utf8, true)
    });
    for g in groups {
        fields.push(Field::new(
            &g.name,
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, false)),
                g.len as i32,
            ),
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// A Parquet file written a row group at a time: rows are buffered until a group is full.
struct ParquetSink {
    path: PathBuf,
    schema: Arc<Schema>,
    groups: Vec<Group>,
    multi_label: bool,
    writer: parquet::arrow::ArrowWriter<AtomicFileWriter>,
    ids: Vec<String>,
    labels: Vec<Vec<String>>,
    values: Vec<f32>,
    per_group: usize,
}

impl ParquetSink {
    fn new(path: &Path, groups: &[Group], multi_label: bool, dim: usize) -> Result<Self> {
        let schema = schema(groups, multi_label);
        let per_group = rows_per_group(dim);
        // Descriptors are floats without repeats: dictionary encoding and min/max statistics
        // would cost time and memory for nothing.
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(per_group))
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
            .build();
        let writer = parquet::arrow::ArrowWriter::try_new(
            AtomicFileWriter(AtomicFile::create(path)?),
            schema.clone(),
            Some(props),
        )
        .map_err(|e| parquet_err(path, e))?;
        Ok(ParquetSink {
            path: path.to_path_buf(),
            schema,
            groups: groups.to_vec(),
            multi_label,
            writer,
            ids: Vec::new(),
            labels: Vec::new(),
            values: Vec::with_capacity(per_group * dim),
            per_group,
        })
    }

    /// Writes the buffered rows as one record batch.
    fn flush(&mut self) -> Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let dim: usize = self.groups.iter().map(|g| g.len).sum();
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from(std::mem::take(&mut self.ids)))];
        let labels = std::mem::take(&mut self.labels);
        columns.push(label_column(&labels, self.multi_label));
        for g in &self.groups {
            let mut v = Vec::with_capacity(labels.len() * g.len);
            for row in self.values.chunks_exact(dim.max(1)) {
                v.extend_from_slice(&row[g.offset..g.offset + g.len]);
            }
            let list = FixedSizeListArray::try_new(
                Arc::new(Field::new("item", DataType::Float32, false)),
                g.len as i32,
                Arc::new(Float32Array::from(v)),
                None,
            )
            .map_err(|e| parquet_err(&self.path, e))?;
            columns.push(Arc::new(list));
        }
        self.values.clear();
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| parquet_err(&self.path, e))?;
        self.writer
            .write(&batch)
            .map_err(|e| parquet_err(&self.path, e))
    }
}

/// The `label` (string, null when an image has none) or `labels` (list) column.
fn label_column(labels: &[Vec<String>], multi_label: bool) -> ArrayRef {
    if multi_label {
        let mut b = ListBuilder::new(StringBuilder::new());
        for l in labels {
            for x in l {
                b.values().append_value(x);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    } else {
        Arc::new(StringArray::from(
            labels
                .iter()
                .map(|l| l.first().map(String::as_str))
                .collect::<Vec<_>>(),
        ))
    }
}

impl Sink for ParquetSink {
    fn push(&mut self, id: &str, labels: &[String], row: &[f32]) -> Result<()> {
        self.ids.push(id.to_string());
        self.labels.push(labels.to_vec());
        self.values.extend_from_slice(row);
        if self.ids.len() >= self.per_group {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<PathBuf>> {
        self.flush()?;
        let path = self.path.clone();
        let w = self
            .writer
            .into_inner()
            .map_err(|e| parquet_err(&path, e))?;
        w.0.commit()?;
        Ok(vec![path])
    }
}

/// `emb_<k>.npy` + `meta_<k>.parquet` pairs of at most `rows` rows; older pairs beyond the last
/// one written are removed at the end.
struct ShardSink {
    dir: PathBuf,
    rows: usize,
    total: usize,
    dim: usize,
    multi_label: bool,
    shard: usize,
    in_shard: usize,
    current: Option<(NpyMatrix, ParquetSink)>,
    files: Vec<PathBuf>,
}

impl ShardSink {
    fn new(dir: &Path, rows: usize, total: usize, dim: usize, multi_label: bool) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(ShardSink {
            dir: dir.to_path_buf(),
            rows,
            total,
            dim,
            multi_label,
            shard: 0,
            in_shard: 0,
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
        let parquet = ParquetSink::new(&meta, &[], self.multi_label, 1)?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn labels_with_separators_stay_apart() {
        let j =
            |l: &[&str]| super::join_labels(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(j(&["x", "y"]), "x;y");
        assert_eq!(j(&["x;y"]), "x\\;y");
        assert_eq!(j(&["a\\b"]), "a\\\\b");
        assert_ne!(j(&["x", "y"]), j(&["x;y"]));
        for l in [vec!["x", "y"], vec!["x;y"], vec!["a\\b", "c"]] {
            assert_eq!(crate::dataset::table::split_labels(&j(&l)), l);
        }
    }

    #[test]
    fn header_is_aligned() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.npy");
        super::write_npy(&p, &[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
        let b = std::fs::read(&p).unwrap();
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        // npyz pads the header to a multiple of 16 bytes, as the .npy format 1.0 asks.
        assert_eq!((10 + hl) % 16, 0);
        let f = npyz::NpyFile::new(&b[..]).unwrap();
        assert_eq!(f.shape(), &[2, 2]);
        assert_eq!(b.len(), 10 + hl + 16);
        assert_eq!(
            f32::from_le_bytes(b[10 + hl + 12..].try_into().unwrap()),
            4.0
        );
    }
}
