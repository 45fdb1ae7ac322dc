//! Atomic file writes: the bytes go to a temporary file in the target's folder, which is flushed
//! to disk (`fsync`), renamed over the target, and the folder is synced so the rename itself
//! survives a power cut. A reader therefore sees the old file or the new one, never a mix; a
//! write that fails or is abandoned removes its temporary file. A target that is a symbolic link
//! is written through: the link stays and the file it points to is replaced.
//!
//! The temporary files are named `.vggfeat-XXXXXX.tmp` (random `X`) by the `tempfile` crate.
//! They are created with mode `0o666` less the process's umask, as any other program's files
//! are (`tempfile`'s own default, `0o600`, would leave stores and results unreadable to the
//! rest of a shared cluster whatever the umask says).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Prefix and suffix of the temporary files this module creates.
pub const TMP_PREFIX: &str = ".vggfeat-";
/// Suffix of the temporary files this module creates.
pub const TMP_SUFFIX: &str = ".tmp";

/// A file being written atomically: write through [`AtomicFile::writer`], then
/// [`AtomicFile::commit`]. Dropped without a commit, the temporary file is removed and the target
/// is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: BufWriter<tempfile::NamedTempFile>,
}

/// The file a write to `path` replaces: `path` itself, or the file a symbolic link points to.
fn resolve(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl AtomicFile {
    /// Starts writing `path` (its folder must exist).
    pub fn create(path: &Path) -> Result<Self> {
        let target = resolve(path);
        let dir = parent_of(&target);
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o666))
            .prefix(TMP_PREFIX)
            .suffix(TMP_SUFFIX)
            .tempfile_in(&dir)
            .map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            target,
            tmp: BufWriter::with_capacity(1 << 20, tmp),
        })
    }

    /// The file this write replaces.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The buffered writer of the temporary file.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.tmp
    }

    /// Writes `bytes` (an I/O error names the target).
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.tmp
            .write_all(bytes)
            .map_err(|e| Error::io(&self.target, e))
    }

    /// Flushes, syncs and renames the temporary file over the target, then syncs the folder.
    pub fn commit(self) -> Result<()> {
        let target = self.target;
        let tmp = self
            .tmp
            .into_inner()
            .map_err(|e| Error::io(&target, e.into_error()))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(&target, e))?;
        tmp.persist(&target)
            .map_err(|e| Error::io(&target, e.error))?;
        // The rename is durable once the folder's entry is on disk; failure to sync a folder
        // (some file systems refuse) does not undo the write.
        if let Ok(d) = std::fs::File::open(parent_of(&target)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(value).map_err(|e| Error::Data {
        path: path.to_path_buf(),
        reason: format!("cannot serialise: {e}"),
    })?;
    write_atomic(path, s.as_bytes())
}

/// Reads a JSON file (as written by [`write_json`]); a parse error names the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| Error::Data {
        path: path.to_path_buf(),
        reason: format!("not valid JSON for this file: {e}"),
    })
}

/// Whether `path` is a temporary file of this module (a leftover of a killed write).
pub fn is_temporary(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(TMP_PREFIX) && n.ends_with(TMP_SUFFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_and_drop_leaves_no_trace() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"never committed").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left behind");
    }

    #[test]
    fn a_symlink_target_is_written_through() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real.csv");
        let link = d.path().join("link.csv");
        std::fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
    }

    #[test]
    fn files_follow_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("shared.txt");
        // SAFETY: umask only changes this process's file-creation mask; tests that create
        // files concurrently get at most a stricter mode.
        let old = unsafe { libc::umask(0o022) };
        let written = write_atomic(&p, b"x");
        unsafe { libc::umask(old) };
        written.unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{mode:o}");
    }

    #[test]
    fn temporaries_are_recognised() {
        assert!(is_temporary(Path::new("x/.vggfeat-abc123.tmp")));
        assert!(!is_temporary(Path::new("x/000001.tmp")));
        assert!(!is_temporary(Path::new("x/.vggfeat-abc123")));
    }
}
