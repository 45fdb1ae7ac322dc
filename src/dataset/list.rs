//! Reading a list file: one image path per line with an optional label after a tab. The rules
//! are documented on [`Dataset::from_list`](super::Dataset::from_list).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Dataset, Item, SourceKind, id_of};
use crate::error::{Error, Result};

/// Splits a list line into path and optional label at the first tab (a comma is part of the
/// path: file names may hold commas).
fn split_line(line: &str) -> (&str, Option<&str>) {
    match line.split_once('\t') {
        Some((path, label)) => {
            let label = label.trim();
            (path.trim(), (!label.is_empty()).then_some(label))
        }
        None => (line.trim(), None),
    }
}

pub(super) fn list(file: &Path) -> Result<Dataset> {
    let data_err = |reason: String| Error::Data {
        path: file.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
    if image::guess_format(&bytes[..bytes.len().min(32)]).is_ok() {
        return Err(data_err(
            "this is an image, not a list file: give the folder that holds it, or a list file \
             with one path per line"
                .into(),
        ));
    }
    // A UTF-8 byte-order mark (as Windows editors write) is not part of the first path.
    let bytes = bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .map(<[u8]>::to_vec)
        .unwrap_or(bytes);
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        data_err(format!("line {line}: not UTF-8 text"))
    })?;
    let root = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut items = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        // Trimmed only on the right first, so that a leading tab still separates an empty
        // path from a label.
        let line = raw.trim_end();
        if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (path, label) = split_line(line);
        if path.is_empty() {
            return Err(data_err(format!("line {n}: no path before the label")));
        }
        let given = Path::new(path);
        let (id, full) = if given.is_absolute() {
            let id = match given.strip_prefix(&root) {
                Ok(rel) => id_of(rel),
                Err(_) => format!("/{}", id_of(given)),
            };
            (id, given.to_path_buf())
        } else {
            (id_of(given), root.join(given))
        };
        if id.is_empty() || id == "/" {
            return Err(data_err(format!("line {n}: `{path}` does not name a file")));
        }
        if let Some(first) = first_line.insert(id.clone(), n) {
            return Err(data_err(format!(
                "line {n}: `{id}` is listed twice (first on line {first})"
            )));
        }
        items.push(Item {
            id,
            path: full,
            labels: label.map(|l| vec![l.to_string()]).unwrap_or_default(),
            voc_labels: None,
            member: None,
        });
    }
    Dataset::from_items(root, SourceKind::List, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_splitting() {
        assert_eq!(split_line("a/b.jpg"), ("a/b.jpg", None));
        assert_eq!(split_line("a/b.jpg\tcat"), ("a/b.jpg", Some("cat")));
        // A comma belongs to the path: only a tab separates the label.
        assert_eq!(split_line("a/b.jpg , cat "), ("a/b.jpg , cat", None));
        assert_eq!(split_line("a,b.jpg\tcat"), ("a,b.jpg", Some("cat")));
        assert_eq!(split_line("a,b.jpg,cat"), ("a,b.jpg,cat", None));
        assert_eq!(split_line("a.jpg,"), ("a.jpg,", None));
        assert_eq!(split_line("a.jpg\t"), ("a.jpg", None));
        assert_eq!(
            split_line("my cat.jpg\tsiamese cat"),
            ("my cat.jpg", Some("siamese cat"))
        );
    }
}
