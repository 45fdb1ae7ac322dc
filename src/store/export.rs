//! Descriptors out of a store: aggregated and L2-normalised ([`super::join`]), written as CSV
//! (`id,label,d0,d1,...`) or as a float32 NumPy matrix with an `ids.csv` beside it. Every file is
//! written atomically ([`crate::util::AtomicFile`]); the `.npy` and its ids file are both written
//! in full before either replaces an older pair, so a failure leaves the old pair.
//!
//! The `label` column joins an image's labels with `;`; a `;` or `\` inside a label is written
//! `\;` or `\\` ([`join_labels`]), so `x;y` (two labels) and `x\;y` (one) stay apart.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Store;
use super::join::{Nets, aggregate_store};
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
}

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportParams {
    /// The store folder.
    pub store: PathBuf,
    /// Scale aggregation.
    pub aggregate: Aggregate,
    /// Nets to use (fused by stacking).
    pub nets: Nets,
    /// Output.
    pub format: ExportFormat,
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

/// Exports a store's aggregated descriptors (see the module docs).
pub fn export(p: &ExportParams) -> Result<ExportSummary> {
    let store = Store::open(&p.store)?;
    let nets = p.nets.resolve(store.manifest.nets.len())?;
    let warnings = super::check_inputs(&store).warnings();
    let d = aggregate_store(&store, p.aggregate, &nets)?;
    let labels: Vec<String> = d.labels.iter().map(|l| join_labels(l)).collect();
    let files = match &p.format {
        ExportFormat::Csv(path) => {
            csv_file(path, &d.ids, &labels, &d.rows)?.commit()?;
            vec![path.clone()]
        }
        ExportFormat::Npy(path) => {
            let ids = path.with_extension("ids.csv");
            let empty = vec![Vec::new(); d.ids.len()];
            let matrix = npy_file(path, &d.rows)?;
            let names = csv_file(&ids, &d.ids, &labels, &empty)?;
            names.commit()?;
            matrix.commit()?;
            vec![path.clone(), ids]
        }
    };
    Ok(ExportSummary {
        rows: d.rows.len(),
        dim: d.rows.first().map_or(0, Vec::len),
        failed_left_out: store.failures().len(),
        files,
        warnings,
    })
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

/// Writes descriptors as CSV: header `id,label,d0,d1,...`, one row per image (`label` as
/// [`join_labels`] makes it), floats in shortest round-trip form.
pub fn write_csv(path: &Path, ids: &[String], labels: &[String], rows: &[Vec<f32>]) -> Result<()> {
    csv_file(path, ids, labels, rows)?.commit()
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
    named_csv_file(path, ids, labels, columns, rows)?.commit()
}

fn csv_file(
    path: &Path,
    ids: &[String],
    labels: &[String],
    rows: &[Vec<f32>],
) -> Result<AtomicFile> {
    let d = rows.first().map_or(0, Vec::len);
    let columns: Vec<String> = (0..d).map(|i| format!("d{i}")).collect();
    named_csv_file(path, ids, labels, &columns, rows)
}

fn named_csv_file(
    path: &Path,
    ids: &[String],
    labels: &[String],
    columns: &[String],
    rows: &[Vec<f32>],
) -> Result<AtomicFile> {
    let mut file = AtomicFile::create(path)?;
    {
        let mut w = csv::Writer::from_writer(file.writer());
        let mut header = vec!["id".to_string(), "label".to_string()];
        header.extend(columns.iter().cloned());
        w.write_record(&header).map_err(|e| csv_err(path, e))?;
        for ((id, label), row) in ids.iter().zip(labels).zip(rows) {
            let mut rec = vec![id.clone(), label.clone()];
            rec.extend(row.iter().map(|x| x.to_string()));
            w.write_record(&rec).map_err(|e| csv_err(path, e))?;
        }
        w.flush().map_err(|e| Error::io(path, e))?;
    }
    Ok(file)
}

/// Writes `rows` (all of equal length) as a (n, d) little-endian float32 `.npy` file (format
/// 1.0, C order); `numpy.load` reads it as is.
pub fn write_npy(path: &Path, rows: &[Vec<f32>]) -> Result<()> {
    npy_file(path, rows)?.commit()
}

fn npy_file(path: &Path, rows: &[Vec<f32>]) -> Result<AtomicFile> {
    let d = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != d) {
        return Err(Error::Internal("descriptor rows differ in length".into()));
    }
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        rows.len(),
        d
    );
    // magic(6) + version(2) + len(2) + header + '\n' must be a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut file = AtomicFile::create(path)?;
    let io = |e| Error::io(path, e);
    let w = file.writer();
    w.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    w.write_all(&(header.len() as u16).to_le_bytes())
        .map_err(io)?;
    w.write_all(header.as_bytes()).map_err(io)?;
    for r in rows {
        for x in r {
            w.write_all(&x.to_le_bytes()).map_err(io)?;
        }
    }
    Ok(file)
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
    }

    #[test]
    fn header_is_aligned() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.npy");
        super::write_npy(&p, &[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
        let b = std::fs::read(&p).unwrap();
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        assert!(
            std::str::from_utf8(&b[10..10 + hl])
                .unwrap()
                .contains("'shape': (2, 2)")
        );
        assert_eq!(b.len(), 10 + hl + 16);
        assert_eq!(
            f32::from_le_bytes(b[10 + hl + 12..].try_into().unwrap()),
            4.0
        );
    }
}
