//! Descriptors out of a store, streamed: records are read in id order a chunk at a time
//! ([`super::StoreStream`]), aggregated and L2-normalised one by one ([`super::join`]), and
//! written as they come: the descriptors are never all in memory, only an index of every
//! record (id, labels, where it is) and the re-listing of the inputs that checks freshness, about
//! 0.5 KB per record (scripts/export_memory.sh: 64-69 MiB peak on a 100,000 x 4,096 store).
//! Formats:
//!
//! * CSV: header `id,label,d0,d1,...`, one row per image.
//! * `.npy`: a float32 matrix (rows in id order, written by `npyz`) with `OUT.ids.csv`
//!   (`id,label`) beside it.
//! * Parquet (`parquet`/`arrow` crates): columns `id`, `label` (or `labels`, a list, when an
//!   image has more than one label), and `features`, a fixed-size list of float32. It is
//!   written in row groups of about 4 MiB of descriptors. pandas reads it as is
//!   (`np.stack(pd.read_parquet(f).features)`), and so does polars.
//! * Sharded `.npy` (the layout clip-retrieval and autofaiss read): `emb_00000.npy` and
//!   `meta_00000.parquet` (`id`, `label` or `labels`) pairs of at most N rows each.
//! * Raw ([`ExportParams::raw`], CSV or Parquet): the stored per-net, per-scale descriptors before any
//!   normalisation or aggregation. There is one column group per (net, scale), named
//!   `net<i>_<config>_<layer>_q<Q>` (`..._d<j>` in CSV).
//!
//! One file per format (`csv`, `npy`, `parquet`, `shards`), each a `Sink` that takes rows one at
//! a time. Every file is written atomically ([`crate::util::AtomicFile`]). The `.npy` and its ids
//! file are both written in full before either replaces an older pair, and the older ids file is
//! removed first, so no moment leaves a matrix beside the ids of another: a failure or a crash
//! between the two leaves a pair whose ids file is missing, never a mismatched one.
//!
//! One label convention for every format, so that an export read back as a table
//! ([`crate::dataset`]) gives every image its labels ([`LabelColumn`](csv::LabelColumn)): a `label` column (one
//! label, verbatim) when no image has several, else `labels`, which in CSV joins an image's
//! labels with `;`; a `;` or `\` inside a label is then written `\;` or `\\` ([`join_labels`](csv::join_labels)),
//! so `x;y` (two labels) and `x\;y` (one) stay apart.

mod csv;
mod npy;
mod parquet;
mod shards;

use std::path::PathBuf;

use super::StoreStream;
use super::join::Nets;
use crate::aggregate::Aggregate;
use crate::error::{Error, Param, Result};

pub(crate) use csv::{join_labels, write_named_csv};

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

/// Checked parameters of an export; obtained only from [`ExportParams::check`]. See
/// [`ExportParams`] for every field's meaning, default and range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportValidParams {
    store: PathBuf,
    aggregate: Aggregate,
    nets: Nets,
    format: ExportFormat,
    raw: bool,
}

impl ExportValidParams {
    /// The store folder.
    pub fn store(&self) -> &std::path::Path {
        &self.store
    }
    /// Scale aggregation.
    pub fn aggregate(&self) -> Aggregate {
        self.aggregate
    }
    /// The nets used.
    pub fn nets(&self) -> &Nets {
        &self.nets
    }
    /// Where and how.
    pub fn format(&self) -> &ExportFormat {
        &self.format
    }
    /// Whether raw per-net, per-scale descriptors are written.
    pub fn raw(&self) -> bool {
        self.raw
    }
}

/// What to export from which store: a builder. Call [`check`](ExportParams::check) for the only
/// way to [`ExportValidParams`], and [`export`] to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportParams {
    store: PathBuf,
    aggregate: Aggregate,
    nets: Nets,
    format: Option<ExportFormat>,
    raw: bool,
}

impl Default for ExportParams {
    fn default() -> Self {
        Self::new()
    }
}

impl ExportParams {
    /// The defaults: no store nor output yet, scales stacked ([`Aggregate::DEFAULT`], as `svm`),
    /// every net, aggregated descriptors.
    pub fn new() -> Self {
        ExportParams {
            store: PathBuf::new(),
            aggregate: Aggregate::DEFAULT,
            nets: Nets::All,
            format: None,
            raw: false,
        }
    }

    /// The store folder written by an extraction. Required.
    pub fn store(mut self, store: impl Into<PathBuf>) -> Self {
        self.store = store.into();
        self
    }

    /// Scale aggregation (ignored with `raw`). Default [`Aggregate::DEFAULT`] (stack, as `svm`).
    pub fn aggregate(mut self, aggregate: Aggregate) -> Self {
        self.aggregate = aggregate;
        self
    }

    /// Nets to use, fused by stacking in the order given. Default [`Nets::All`]; indices must
    /// exist in the store and not repeat (checked by [`export`]).
    pub fn nets(mut self, nets: Nets) -> Self {
        self.nets = nets;
        self
    }

    /// Where and how to write. Required; [`ExportFormat::NpyShards`] needs `rows >= 1`.
    pub fn format(mut self, format: ExportFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Write the stored per-net, per-scale descriptors before any normalisation or
    /// aggregation, one column group per (net, scale). Default false; CSV and Parquet only.
    pub fn raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }

    /// Checks the parameters without I/O.
    pub fn check(self) -> Result<ExportValidParams> {
        if self.store.as_os_str().is_empty() {
            return Err(Error::param(Param::Store, "the store folder is required"));
        }
        let Some(format) = self.format else {
            return Err(Error::param(
                Param::Format,
                "give one output: CSV, .npy, Parquet or .npy shards",
            ));
        };
        if self.raw
            && matches!(
                format,
                ExportFormat::Npy(_) | ExportFormat::NpyShards { .. }
            )
        {
            return Err(Error::param(
                Param::Raw,
                "raw descriptors are named by net and scale, which a .npy matrix cannot hold: \
                 write CSV or Parquet",
            ));
        }
        if let ExportFormat::NpyShards { rows: 0, .. } = format {
            return Err(Error::param(Param::Rows, "must be at least 1"));
        }
        if let Nets::Some(v) = &self.nets {
            super::join::check_net_list(v)?;
        }
        Ok(ExportValidParams {
            store: self.store,
            aggregate: self.aggregate,
            nets: self.nets,
            format,
            raw: self.raw,
        })
    }
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
pub(super) struct Group {
    pub(super) name: String,
    pub(super) offset: usize,
    pub(super) len: usize,
}

impl ExportFormat {
    /// The files (or, for shards, the folder) this export writes.
    fn outputs(&self) -> Vec<PathBuf> {
        match self {
            ExportFormat::Csv(p) | ExportFormat::Parquet(p) => vec![p.clone()],
            ExportFormat::Npy(p) => vec![p.clone(), p.with_extension("ids.csv")],
            ExportFormat::NpyShards { dir, .. } => vec![dir.clone()],
        }
    }
}

/// Exports a store's descriptors (see the module docs). Refused before anything is written: an
/// output that is one of the store's own files. A missing output folder is created.
pub fn export(p: &ExportValidParams) -> Result<ExportSummary> {
    for out in p.format.outputs() {
        if super::is_own_file(&p.store, &out) {
            return Err(Error::param(
                Param::Format,
                format!(
                    "{}: this is a file of the store {} itself; write the export elsewhere",
                    out.display(),
                    p.store.display()
                ),
            ));
        }
    }
    let store = StoreStream::open(&p.store)?;
    for out in p.format.outputs() {
        let dir = match &p.format {
            ExportFormat::NpyShards { .. } => Some(out.as_path()),
            _ => out.parent().filter(|d| !d.as_os_str().is_empty()),
        };
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
    }
    let m = &store.manifest;
    let nets = p.nets.resolve(m.nets.len())?;
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
        let dim = m.layout().dim(p.aggregate, &nets);
        vec![Group {
            name: "features".into(),
            offset: 0,
            len: dim,
        }]
    };
    let dim: usize = groups.iter().map(|g| g.len).sum();
    let meta = provenance(m, &nets, p, dim);
    let row_of = |floats: &[f32]| -> Result<Vec<f32>> {
        if !p.raw {
            return m.layout().aggregate(floats, p.aggregate, &nets);
        }
        Ok(m.layout().raw(floats, &nets))
    };
    let labels = csv::LabelColumn::of(
        store
            .entries
            .iter()
            .filter(|e| e.failure.is_none())
            .map(|e| e.labels.as_slice()),
    );
    let multi_label = labels == csv::LabelColumn::Many;
    let n = store.ok_len();
    let mut sink: Box<dyn Sink> = match &p.format {
        ExportFormat::Csv(path) => {
            Box::new(csv::CsvSink::new(path, &csv_columns(&groups), labels)?)
        }
        ExportFormat::Npy(path) => Box::new(npy::NpySink {
            npy: npy::NpyMatrix::create(path, n, dim)?,
            ids: csv::CsvSink::new(&path.with_extension("ids.csv"), &[], labels)?,
        }),
        ExportFormat::Parquet(path) => Box::new(parquet::ParquetSink::new(
            path,
            &groups,
            multi_label,
            dim,
            &meta,
        )?),
        ExportFormat::NpyShards { dir, rows } => Box::new(shards::ShardSink::new(
            dir,
            *rows,
            n,
            dim,
            multi_label,
            meta,
        )?),
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

/// What the exported descriptors are, as Parquet key-value metadata (pyarrow:
/// `pq.read_schema(f).metadata`, polars: `pl.read_parquet_metadata(f)`): keys `vggfeat.<field>`;
/// per-net fields are JSON arrays in net order (`weights`, `weights_sha256`, `config`, `layer`,
/// `preprocess`, `precision`), `scales` a JSON array, `flip` and `normalised` `true`/`false`,
/// `aggregate` (`stack`, `avg` or `raw`), `dim` the row length, `version` vggfeat's, `failed_left_out`
/// the store's failed inputs (not exported).
fn provenance(
    m: &super::Manifest,
    nets: &[usize],
    p: &ExportValidParams,
    dim: usize,
) -> Vec<(String, String)> {
    use serde_json::{Value, json};
    let per_net = |f: &dyn Fn(&super::NetSpec) -> Value| -> Value {
        Value::Array(nets.iter().map(|&n| f(&m.nets[n])).collect())
    };
    let fields: Vec<(&str, Value)> = vec![
        ("version", json!(env!("CARGO_PKG_VERSION"))),
        ("weights", per_net(&|n| json!(n.weights))),
        ("weights_sha256", per_net(&|n| json!(n.sha256))),
        ("config", per_net(&|n| json!(n.config.to_string()))),
        ("layer", per_net(&|n| json!(n.layer.to_string()))),
        ("preprocess", per_net(&|n| json!(n.preprocess))),
        ("precision", per_net(&|n| json!(n.precision.to_string()))),
        ("scales", json!(m.scales)),
        ("flip", json!(m.flip)),
        (
            "aggregate",
            json!(if p.raw {
                "raw".to_string()
            } else {
                p.aggregate.to_string()
            }),
        ),
        ("normalised", json!(!p.raw)),
        ("dim", json!(dim)),
    ];
    fields
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (format!("vggfeat.{k}"), v)
        })
        .collect()
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
pub(super) trait Sink {
    /// Writes one image's row.
    fn push(&mut self, id: &str, labels: &[String], row: &[f32]) -> Result<()>;
    /// Completes the files; returns them.
    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_with_separators_stay_apart() {
        let j = |l: &[&str]| {
            super::csv::join_labels(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
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
        super::npy::write_npy(&p, &[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
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
