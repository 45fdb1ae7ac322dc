//! CSV: descriptors (`id,label,d0,d1,...`) and named value columns (decision values), written
//! row by row into an atomic file; the label cell convention ([`LabelColumn`], [`join_labels`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Sink;
use crate::error::{Error, Result};
use crate::util::AtomicFile;

fn csv_err(path: &Path, e: csv::Error) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// An image's labels as one `labels` cell: joined by `;`, with `\` and `;` inside a label
/// escaped as `\\` and `\;` (what the table reader splits, [`crate::dataset::split_labels`]).
pub fn join_labels(labels: &[String]) -> String {
    labels
        .iter()
        .map(|l| l.replace('\\', "\\\\").replace(';', "\\;"))
        .collect::<Vec<_>>()
        .join(";")
}

/// How an export names and fills its label column, the same for CSV and Parquet, so that a
/// table reader ([`crate::dataset`]'s tables) gets every image's labels back exactly: when no
/// image has more than one label, a `label` column holding the label as it is (empty or null
/// for none); otherwise a `labels` column holding all of them (a Parquet list, or in CSV the
/// labels joined by [`join_labels`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelColumn {
    /// `label`: at most one label per image, verbatim.
    One,
    /// `labels`: any number per image.
    Many,
}

impl LabelColumn {
    /// The column for these images' labels.
    pub fn of<'a>(labels: impl IntoIterator<Item = &'a [String]>) -> LabelColumn {
        if labels.into_iter().any(|l| l.len() > 1) {
            LabelColumn::Many
        } else {
            LabelColumn::One
        }
    }

    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            LabelColumn::One => "label",
            LabelColumn::Many => "labels",
        }
    }

    /// One image's CSV cell.
    pub fn cell(self, labels: &[String]) -> String {
        match self {
            LabelColumn::One => labels.first().cloned().unwrap_or_default(),
            LabelColumn::Many => join_labels(labels),
        }
    }
}

/// A CSV being written row by row into an atomic file.
pub(super) struct CsvSink {
    pub(super) path: PathBuf,
    writer: csv::Writer<AtomicFileWriter>,
    labels: LabelColumn,
}

/// An [`AtomicFile`] as an owned `Write` (the csv crate owns its writer).
pub(super) struct AtomicFileWriter(pub(super) AtomicFile);

impl Write for AtomicFileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.writer().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.writer().flush()
    }
}

impl CsvSink {
    pub(super) fn new(path: &Path, columns: &[String], labels: LabelColumn) -> Result<Self> {
        let mut writer = csv::Writer::from_writer(AtomicFileWriter(AtomicFile::create(path)?));
        let mut header = vec!["id".to_string(), labels.name().to_string()];
        header.extend(columns.iter().cloned());
        writer.write_record(&header).map_err(|e| csv_err(path, e))?;
        Ok(CsvSink {
            path: path.to_path_buf(),
            writer,
            labels,
        })
    }

    pub(super) fn into_file(self) -> Result<AtomicFile> {
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
        rec.push(self.labels.cell(labels));
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
/// `id,label,<columns...>` (or `id,labels,...`, [`LabelColumn`]; e.g. decision values, one
/// column per class), floats in shortest round-trip form.
pub(crate) fn write_named_csv(
    path: &Path,
    ids: &[String],
    labels: &[Vec<String>],
    columns: &[String],
    rows: &[Vec<f32>],
) -> Result<()> {
    let column = LabelColumn::of(labels.iter().map(Vec::as_slice));
    let mut sink = CsvSink::new(path, columns, column)?;
    for ((id, l), row) in ids.iter().zip(labels).zip(rows) {
        sink.push(id, l, row)?;
    }
    sink.into_file()?.commit()
}
