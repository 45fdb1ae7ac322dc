//! Tables of images as datasets: a CSV or TSV file with a header row (`csv` crate), or a Parquet
//! file (`parquet`/`arrow` crates).
//!
//! * **Image.** The `path` column names the image. Without a `path` column, the `id` column
//!   names it relative to the root. vggfeat's own split files (`id,label,set`, as `svm` writes
//!   them) are such tables.
//! * **Root.** Relative paths are resolved against the root: `--root`, or by default the table's
//!   folder.
//! * **Labels.** An optional `label` column gives one label. A `labels` column gives several,
//!   joined by `;` with `\;` and `\\` escapes as `export` writes them, or as a Parquet list of
//!   strings.
//! * **Id.** An `id` column gives the id. Otherwise it is made from the path as for list files.
//!
//! Other columns (`set`, captions, ...) are left alone. A row without a path, a repeated id or a
//! missing column is an error naming the file and the row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Dataset, Item, SourceKind, id_of};
use crate::error::{Error, Result};

/// The table formats, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv(u8),
    Parquet,
}

fn format_of(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(Format::Csv(b',')),
        "tsv" => Some(Format::Csv(b'\t')),
        "parquet" | "pq" => Some(Format::Parquet),
        _ => None,
    }
}

/// Whether `path` is a table: a `.csv`, `.tsv` or `.parquet` file (by extension). A table without
/// a `path` or `id` column is then an error naming the file, not a list of odd paths.
pub(super) fn is_table(path: &Path) -> bool {
    format_of(path).is_some()
}

/// Splits a `labels` cell as `export` joins it: `;` separates, `\;` and `\\` are a literal `;`
/// and `\`.
pub fn split_labels(cell: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.push(chars.next().unwrap_or('\\')),
            ';' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.retain(|l| !l.is_empty());
    out
}

/// One row as read: path, id, labels.
struct Row {
    path: Option<String>,
    id: Option<String>,
    labels: Vec<String>,
}

/// Lists a table (see the module docs); `root` resolves relative paths (default: the table's
/// folder).
pub(super) fn list(file: &Path, root: Option<&Path>) -> Result<Dataset> {
    let bad = |reason: String| Error::Data {
        path: file.to_path_buf(),
        reason,
    };
    let rows = match format_of(file) {
        Some(Format::Csv(sep)) => read_csv(file, sep)?,
        Some(Format::Parquet) => read_parquet(file)?,
        None => return Err(bad("not a .csv, .tsv or .parquet table".into())),
    };
    let base = match root {
        Some(r) => r.to_path_buf(),
        None => match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
    };
    let mut items = Vec::with_capacity(rows.len());
    let mut first_row: HashMap<String, usize> = HashMap::new();
    for (i, r) in rows.into_iter().enumerate() {
        let n = i + 2; // the header is row 1
        let Some(given) = r.path.clone().or_else(|| r.id.clone()) else {
            return Err(bad(format!("row {n}: no path")));
        };
        if given.trim().is_empty() {
            return Err(bad(format!("row {n}: an empty path")));
        }
        let given = Path::new(given.trim());
        let full = if given.is_absolute() {
            given.to_path_buf()
        } else {
            base.join(given)
        };
        let id = match r.id {
            Some(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => match given.strip_prefix(&base) {
                Ok(rel) => id_of(rel),
                Err(_) if given.is_absolute() => format!("/{}", id_of(given)),
                Err(_) => id_of(given),
            },
        };
        if let Some(first) = first_row.insert(id.clone(), n) {
            return Err(bad(format!(
                "row {n}: `{id}` is listed twice (first on row {first})"
            )));
        }
        items.push(Item {
            id,
            path: full,
            labels: r.labels,
            voc_labels: None,
            member: None,
        });
    }
    if items.is_empty() {
        return Err(bad("the table has no rows".into()));
    }
    Dataset::from_items(base, SourceKind::Table, items)
}

fn read_csv(file: &Path, sep: u8) -> Result<Vec<Row>> {
    let bad = |reason: String| Error::Data {
        path: file.to_path_buf(),
        reason,
    };
    let mut r = csv::ReaderBuilder::new()
        .delimiter(sep)
        .has_headers(true)
        .from_path(file)
        .map_err(|e| bad(e.to_string()))?;
    let header: Vec<String> = r
        .headers()
        .map_err(|e| bad(format!("header: {e}")))?
        .iter()
        .map(|c| c.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    let col = |name: &str| header.iter().position(|c| c == name);
    let (path, id, label, labels) = (col("path"), col("id"), col("label"), col("labels"));
    if path.is_none() && id.is_none() {
        return Err(bad(format!(
            "the header {header:?} has neither a `path` nor an `id` column"
        )));
    }
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| bad(format!("row {}: {e}", i + 2)))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).map(str::to_string);
        let mut l: Vec<String> = get(label)
            .filter(|s| !s.trim().is_empty())
            .map(|s| vec![s.trim().to_string()])
            .unwrap_or_default();
        if let Some(cell) = get(labels) {
            l.extend(split_labels(&cell));
        }
        rows.push(Row {
            path: get(path),
            id: get(id),
            labels: l,
        });
    }
    Ok(rows)
}

fn read_parquet(file: &Path) -> Result<Vec<Row>> {
    use arrow_array::{Array, LargeStringArray, ListArray, StringArray};
    let bad = |reason: String| Error::Data {
        path: file.to_path_buf(),
        reason,
    };
    let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?
        .build()
        .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
    // A string column's value at a row, whichever string type it has.
    fn string_at(col: &dyn Array, i: usize) -> Option<String> {
        if col.is_null(i) {
            return None;
        }
        let any = col.as_any();
        if let Some(s) = any.downcast_ref::<StringArray>() {
            return Some(s.value(i).to_string());
        }
        any.downcast_ref::<LargeStringArray>()
            .map(|s| s.value(i).to_string())
    }
    let mut rows = Vec::new();
    for batch in reader {
        let b = batch.map_err(|e| bad(format!("reading Parquet: {e}")))?;
        let col = |name: &str| b.column_by_name(name).cloned();
        let (path, id, label, labels) = (col("path"), col("id"), col("label"), col("labels"));
        if path.is_none() && id.is_none() {
            return Err(bad(
                "the table has neither a `path` nor an `id` column".into()
            ));
        }
        for i in 0..b.num_rows() {
            let mut l: Vec<String> = label
                .as_ref()
                .and_then(|c| string_at(c.as_ref(), i))
                .filter(|s| !s.trim().is_empty())
                .into_iter()
                .collect();
            if let Some(c) = &labels {
                if let Some(list) = c.as_any().downcast_ref::<ListArray>() {
                    if !list.is_null(i) {
                        let v = list.value(i);
                        l.extend((0..v.len()).filter_map(|j| string_at(v.as_ref(), j)));
                    }
                } else if let Some(s) = string_at(c.as_ref(), i) {
                    l.extend(split_labels(&s));
                }
            }
            rows.push(Row {
                path: path.as_ref().and_then(|c| string_at(c.as_ref(), i)),
                id: id.as_ref().and_then(|c| string_at(c.as_ref(), i)),
                labels: l,
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_split_as_export_joins_them() {
        assert_eq!(super::split_labels("x;y"), ["x", "y"]);
        assert_eq!(super::split_labels("x\\;y"), ["x;y"]);
        assert_eq!(super::split_labels("a\\\\b;c"), ["a\\b", "c"]);
        assert!(super::split_labels("").is_empty());
    }
}
