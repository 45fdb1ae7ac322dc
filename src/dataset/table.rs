//! Tables of images as datasets: a CSV or TSV file with a header row (`csv` crate), or a Parquet
//! file (`parquet`/`arrow` crates).
//!
//! * **Image.** The `path` column names the image. Without a `path` column, the `id` column
//!   names it relative to the root, as vggfeat writes ids (`%XX` escapes undone). vggfeat's own split files (`id,label,set`, as `svm` writes
//!   them) are such tables.
//! * **Root.** Relative paths are resolved against the root: `--root`, or by default the table's
//!   folder.
//! * **Labels.** An optional `label` column gives one label. A `labels` column gives several,
//!   joined by `;` with `\;` and `\\` escapes as `export` writes them, or as a Parquet list of
//!   strings.
//! * **Id.** An `id` column gives the id. Otherwise it is made from the path as for list files.
//!
//! Parquet columns may be of any type pandas, polars or pyarrow write for them: strings
//! (`Utf8`, `LargeUtf8`, `Utf8View`), integers, dictionaries of those (categoricals), and for
//! `labels` lists of those (`List`, `LargeList`, `FixedSizeList`, `ListView`); another type is
//! an error naming the column and its type, never a silently missing value.
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
    let mut used_root = false;
    let mut first_row: HashMap<String, usize> = HashMap::new();
    for (i, r) in rows.into_iter().enumerate() {
        let n = i + 2; // the header is row 1
        // A `path` cell is a path; an `id` cell standing in for it is an id as vggfeat writes
        // them, `%XX`-escaped ([`super::id_of`]), so its path is the escapes undone.
        let given = match (&r.path, &r.id) {
            (Some(p), _) if !p.trim().is_empty() => PathBuf::from(p.trim()),
            (None, Some(id)) if !id.trim().is_empty() => super::path_of_id(id.trim()),
            (None, None) => return Err(bad(format!("row {n}: no path"))),
            _ => return Err(bad(format!("row {n}: an empty path"))),
        };
        let given = given.as_path();
        let full = if given.is_absolute() {
            given.to_path_buf()
        } else {
            used_root = true;
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
    if let Some(r) = root
        && !used_root
    {
        return Err(Error::param(
            crate::error::Param::Root,
            format!(
                "{}: every path in {} is absolute, so the root is never used",
                r.display(),
                file.display()
            ),
        ));
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

/// A Parquet column as the cells of one `path`, `id` or `label` value per row: strings of any
/// Arrow string type (`Utf8`, `LargeUtf8`, `Utf8View`), integers (as their decimal text), and
/// dictionaries of those (pandas' categoricals). Other types are refused, naming the column.
fn scalar_cells(
    col: &dyn arrow_array::Array,
    name: &str,
) -> std::result::Result<Vec<Option<String>>, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use arrow_schema::DataType as T;
    let n = col.len();
    let valid = |i: usize| col.is_valid(i);
    macro_rules! cells {
        ($arr:expr) => {{
            let a = $arr;
            (0..n)
                .map(|i| valid(i).then(|| a.value(i).to_string()))
                .collect()
        }};
    }
    Ok(match col.data_type() {
        T::Utf8 => cells!(col.as_string::<i32>()),
        T::LargeUtf8 => cells!(col.as_string::<i64>()),
        T::Utf8View => cells!(col.as_string_view()),
        T::Int8 => cells!(col.as_primitive::<Int8Type>()),
        T::Int16 => cells!(col.as_primitive::<Int16Type>()),
        T::Int32 => cells!(col.as_primitive::<Int32Type>()),
        T::Int64 => cells!(col.as_primitive::<Int64Type>()),
        T::UInt8 => cells!(col.as_primitive::<UInt8Type>()),
        T::UInt16 => cells!(col.as_primitive::<UInt16Type>()),
        T::UInt32 => cells!(col.as_primitive::<UInt32Type>()),
        T::UInt64 => cells!(col.as_primitive::<UInt64Type>()),
        T::Dictionary(_, _) => {
            let d = col
                .as_any_dictionary_opt()
                .ok_or_else(|| format!("column `{name}`: an unreadable dictionary"))?;
            let values = scalar_cells(d.values().as_ref(), name)?;
            let keys = d.normalized_keys();
            (0..n)
                .map(|i| {
                    if !valid(i) {
                        return Ok(None);
                    }
                    values.get(keys[i]).cloned().ok_or_else(|| {
                        format!(
                            "column `{name}`, row {}: a dictionary key out of range",
                            i + 2
                        )
                    })
                })
                .collect::<std::result::Result<_, _>>()?
        }
        other => {
            return Err(format!(
                "column `{name}` has type {other}; expected strings or integers (or a \
                 dictionary of them)"
            ));
        }
    })
}

/// A Parquet `labels` column as the labels of each row: a list (`List`, `LargeList`,
/// `FixedSizeList`, `ListView`) of strings or integers, or a string cell joined by `;` as
/// `export` writes it.
fn list_cells(
    col: &dyn arrow_array::Array,
    name: &str,
) -> std::result::Result<Vec<Vec<String>>, String> {
    use arrow_array::cast::AsArray;
    use arrow_schema::DataType as T;
    let n = col.len();
    let each = |value: &dyn Fn(usize) -> arrow_array::ArrayRef| {
        (0..n)
            .map(|i| {
                if col.is_null(i) {
                    return Ok(Vec::new());
                }
                Ok(scalar_cells(value(i).as_ref(), name)?
                    .into_iter()
                    .flatten()
                    .collect())
            })
            .collect::<std::result::Result<Vec<Vec<String>>, String>>()
    };
    match col.data_type() {
        T::List(_) => each(&|i| col.as_list::<i32>().value(i)),
        T::LargeList(_) => each(&|i| col.as_list::<i64>().value(i)),
        T::FixedSizeList(_, _) => each(&|i| col.as_fixed_size_list().value(i)),
        T::ListView(_) => each(&|i| col.as_list_view::<i32>().value(i)),
        T::LargeListView(_) => each(&|i| col.as_list_view::<i64>().value(i)),
        _ => Ok(scalar_cells(col, name)?
            .into_iter()
            .map(|c| c.map(|c| split_labels(&c)).unwrap_or_default())
            .collect()),
    }
}

fn read_parquet(file: &Path) -> Result<Vec<Row>> {
    let bad = |reason: String| Error::Data {
        path: file.to_path_buf(),
        reason,
    };
    let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?
        .build()
        .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
    let mut rows = Vec::new();
    for batch in reader {
        let b = batch.map_err(|e| bad(format!("reading Parquet: {e}")))?;
        let scalar = |name: &str| -> Result<Option<Vec<Option<String>>>> {
            b.column_by_name(name)
                .map(|c| scalar_cells(c.as_ref(), name).map_err(bad))
                .transpose()
        };
        let (path, id, label) = (scalar("path")?, scalar("id")?, scalar("label")?);
        let labels = b
            .column_by_name("labels")
            .map(|c| list_cells(c.as_ref(), "labels").map_err(bad))
            .transpose()?;
        if path.is_none() && id.is_none() {
            return Err(bad(
                "the table has neither a `path` nor an `id` column".into()
            ));
        }
        let at = |c: &Option<Vec<Option<String>>>, i: usize| c.as_ref().and_then(|c| c[i].clone());
        for i in 0..b.num_rows() {
            let mut l: Vec<String> = at(&label, i)
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().to_string())
                .into_iter()
                .collect();
            if let Some(c) = &labels {
                l.extend(c[i].iter().filter(|x| !x.trim().is_empty()).cloned());
            }
            rows.push(Row {
                path: at(&path, i),
                id: at(&id, i),
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
