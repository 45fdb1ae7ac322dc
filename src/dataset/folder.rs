//! Listing a folder of images recursively; the label is the first-level sub-folder. The rules
//! are documented on [`Dataset::from_folder`](super::Dataset::from_folder).

use std::io::Read;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::{Dataset, Item, SkipKind, Skipped, SourceKind, has_image_extension, id_of};
use crate::error::{Error, Result};

/// Whether the first bytes of `path` are an image signature known to `image::guess_format`.
/// `Err` with the reason when the file cannot be read.
fn sniff(path: &Path) -> std::result::Result<bool, String> {
    let mut head = [0u8; 32];
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read: {e}")),
        }
    }
    Ok(n > 0 && image::guess_format(&head[..n]).is_ok())
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

pub(super) fn list(root: &Path) -> Result<Dataset> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !meta.is_dir() {
        return Err(Error::Data {
            path: root.to_path_buf(),
            reason: "not a folder".to_string(),
        });
    }
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    let skip = |skipped: &mut Vec<Skipped>, path: PathBuf, reason: String, kind: SkipKind| {
        let id = id_of(path.strip_prefix(root).unwrap_or(&path));
        // The class folder it is in (none for an entry at the top).
        let labels = Some(match id.split_once('/') {
            Some((class, _)) => vec![class.to_string()],
            None => Vec::new(),
        });
        skipped.push(Skipped {
            path,
            id,
            reason,
            kind,
            labels,
        });
    };
    let mut walk = WalkDir::new(root)
        .follow_links(true)
        .min_depth(1)
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // Unreadable folder, symbolic-link loop, broken link: recorded, not fatal.
                let path = e.path().unwrap_or(root).to_path_buf();
                let reason = match e.loop_ancestor() {
                    Some(a) => format!("symbolic link loop back to {}", a.display()),
                    None => e
                        .io_error()
                        .map_or_else(|| e.to_string(), |io| format!("cannot read: {io}")),
                };
                skip(&mut skipped, path, reason, SkipKind::Unusable);
                continue;
            }
        };
        if is_hidden(entry.file_name()) {
            if entry.file_type().is_dir() {
                walk.skip_current_dir();
            }
            skip(
                &mut skipped,
                entry.into_path(),
                "hidden".to_string(),
                SkipKind::Hidden,
            );
            continue;
        }
        if entry.file_type().is_dir() {
            continue;
        }
        if !entry.file_type().is_file() {
            skip(
                &mut skipped,
                entry.into_path(),
                "not a regular file".to_string(),
                SkipKind::Unusable,
            );
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("walkdir yields paths under its root");
        let id = id_of(rel);
        if !has_image_extension(entry.path()) {
            match sniff(entry.path()) {
                Ok(true) => {}
                Ok(false) => {
                    skip(
                        &mut skipped,
                        entry.into_path(),
                        "not an image".to_string(),
                        SkipKind::NotAnImage,
                    );
                    continue;
                }
                Err(reason) => {
                    skip(&mut skipped, entry.into_path(), reason, SkipKind::Unusable);
                    continue;
                }
            }
        }
        let labels = match id.split_once('/') {
            Some((class, _)) => vec![class.to_string()],
            None => Vec::new(),
        };
        items.push(Item {
            id,
            path: entry.into_path(),
            labels,
            voc_labels: None,
            member: None,
        });
    }
    let mut ds = Dataset::from_items(root.to_path_buf(), SourceKind::Folder, items)?;
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    ds.skipped = skipped;
    Ok(ds)
}
