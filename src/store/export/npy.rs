//! `.npy`: a float32 (n, d) matrix written row by row by `npyz`, and the `OUT.ids.csv` beside
//! it; both are written in full before either replaces an older pair ([`commit_pair`]).

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use npyz::WriterBuilder;

use super::Sink;
use super::csv::CsvSink;
use crate::error::{Error, Result};
use crate::util::AtomicFile;

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
pub(super) struct NpyMatrix {
    pub(super) path: PathBuf,
    writer: npyz::NpyWriter<f32, SharedFile>,
    file: SharedFile,
}

impl NpyMatrix {
    pub(super) fn create(path: &Path, rows: usize, dim: usize) -> Result<Self> {
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

    pub(super) fn push(&mut self, row: &[f32]) -> Result<()> {
        self.writer
            .extend(row.iter().copied())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Checks that every announced row was written; the file, ready to commit.
    pub(super) fn finish(self) -> Result<AtomicFile> {
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
pub(super) struct NpySink {
    pub(super) npy: NpyMatrix,
    pub(super) ids: CsvSink,
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
        commit_pair(matrix, ids)?;
        Ok(vec![path, ids_path])
    }
}

/// Commits a file and its companion (a matrix and its ids), both written in full, so that no
/// moment shows the new one beside the old other: the old companion is removed first, then the
/// file replaces its old version, then the companion appears. A crash in between leaves the
/// file without a companion (visibly incomplete), never a mismatched pair; a failure to commit
/// the companion removes the new file too and reports the error.
pub(super) fn commit_pair(file: AtomicFile, companion: AtomicFile) -> Result<()> {
    let (target, other) = (
        file.target().to_path_buf(),
        companion.target().to_path_buf(),
    );
    match std::fs::remove_file(&other) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&other, e)),
    }
    file.commit()?;
    companion.commit().inspect_err(|_| {
        let _ = std::fs::remove_file(&target);
    })
}

/// Writes `rows` (all of equal length) as a (n, d) little-endian float32 `.npy` file; `numpy.load`
/// reads it as is.
#[cfg(test)]
pub(super) fn write_npy(path: &Path, rows: &[Vec<f32>]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An old pair `m` + `ids` on disk, new contents being written for both, and then `gone`
    /// (the folder of one of them) removed before the commit: the commit fails.
    fn commit_after_losing(m: &Path, ids: &Path, gone: &Path) {
        std::fs::create_dir_all(gone).unwrap();
        std::fs::write(m, b"old matrix").unwrap();
        std::fs::write(ids, b"old ids").unwrap();
        let mut a = AtomicFile::create(m).unwrap();
        a.write_all(b"new matrix").unwrap();
        let mut b = AtomicFile::create(ids).unwrap();
        b.write_all(b"new ids").unwrap();
        std::fs::remove_dir_all(gone).unwrap();
        assert!(commit_pair(a, b).is_err());
    }

    /// The ids file cannot be committed (its folder is gone when the commit comes): no new
    /// matrix is left beside it.
    #[test]
    fn a_failed_ids_commit_leaves_no_mismatched_pair() {
        let d = tempfile::tempdir().unwrap();
        let (m, ids_dir) = (d.path().join("x.npy"), d.path().join("ids"));
        commit_after_losing(&m, &ids_dir.join("x.ids.csv"), &ids_dir);
        assert!(!m.exists() || std::fs::read(&m).unwrap() == b"old matrix");
    }

    /// A matrix that cannot be committed leaves no ids that would claim the new rows.
    #[test]
    fn a_failed_matrix_commit_leaves_no_new_ids() {
        let d = tempfile::tempdir().unwrap();
        let (m_dir, ids) = (d.path().join("m"), d.path().join("x.ids.csv"));
        commit_after_losing(&m_dir.join("x.npy"), &ids, &m_dir);
        assert_ne!(std::fs::read(&ids).ok().as_deref(), Some(&b"new ids"[..]));
    }
}
