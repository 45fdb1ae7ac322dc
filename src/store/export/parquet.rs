//! Parquet (`parquet`/`arrow` crates): `id`, `label` or `labels`, and one fixed-size float32
//! list column per value group, written a row group (about 4 MiB of descriptors) at a time, with
//! the export's provenance as key-value metadata (in the file's and in the Arrow schema's).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::csv::AtomicFileWriter;
use super::{Group, Sink};
use crate::error::{Error, Result};
use crate::util::AtomicFile;

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
fn schema(groups: &[Group], multi_label: bool, meta: &[(String, String)]) -> Arc<Schema> {
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
    Arc::new(Schema::new_with_metadata(
        fields,
        meta.iter()
            .cloned()
            .collect::<std::collections::HashMap<_, _>>(),
    ))
}

/// A Parquet file written a row group at a time: rows are buffered until a group is full.
pub(super) struct ParquetSink {
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
    pub(super) fn new(
        path: &Path,
        groups: &[Group],
        multi_label: bool,
        dim: usize,
        meta: &[(String, String)],
    ) -> Result<Self> {
        let schema = schema(groups, multi_label, meta);
        let per_group = rows_per_group(dim);
        // Descriptors are floats without repeats: dictionary encoding and min/max statistics
        // would cost time and memory for nothing.
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(per_group))
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
            .set_key_value_metadata(Some(
                meta.iter()
                    .map(|(k, v)| parquet::file::metadata::KeyValue::new(k.clone(), v.clone()))
                    .collect(),
            ))
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
