//! Extraction into a feature store: which inputs and where to ([`ExtractParams`], checked
//! without I/O), the dataset listed and the provenance the store's manifest records derived from
//! them ([`Extraction`]), then the run: resume bookkeeping, the decode pipeline, batches through
//! the nets, records into the store in atomic chunks, and `stats.json`. A file that cannot be
//! used is recorded as a failure with its reason and the run goes on; a killed run resumes
//! where it stopped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Extractor;
use super::input::prepare_item;
use super::resume::{self, unusable};
use super::stats::ExtractSummary;
use super::stats::RunStats;
use crate::dataset::{Dataset, Selection, ShardSpec, SourceKind};
use crate::error::{Error, Param, Result};
use crate::store::{
    DatasetPrint, FORMAT_VERSION, InputSpec, Manifest, Outcome, Record, StoreWriter,
};
use crate::util::Progress;

/// Images per store chunk by default ([`ExtractParams::chunk`]).
pub const DEFAULT_CHUNK: usize = 32;

/// Checked parameters of an extraction into a store; obtained only from
/// [`ExtractParams::check`]. See [`ExtractParams`] for every field's meaning, default and range.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractValidParams {
    inputs: Vec<PathBuf>,
    out: PathBuf,
    selection: Selection,
    chunk: usize,
    retry_failed: bool,
}

impl ExtractValidParams {
    /// The inputs.
    pub fn inputs(&self) -> &[PathBuf] {
        &self.inputs
    }
    /// The store folder.
    pub fn out(&self) -> &std::path::Path {
        &self.out
    }
    /// Which images of the inputs (the shard resolved).
    pub fn selection(&self) -> &Selection {
        &self.selection
    }
    /// Images per store chunk.
    pub fn chunk(&self) -> usize {
        self.chunk
    }
    /// Whether every failed input is tried again.
    pub fn retry_failed(&self) -> bool {
        self.retry_failed
    }
}

/// What to extract into which store: a builder. Call [`check`](ExtractParams::check) for the
/// only way to [`ExtractValidParams`], and [`Extractor::extract`] to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractParams {
    valid: ExtractValidParams,
    shard: Option<ShardSpec>,
}

impl Default for ExtractParams {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtractParams {
    /// The defaults: no inputs nor store yet, every image, chunks of 32, failed inputs tried
    /// again only when their file changed.
    pub fn new() -> Self {
        ExtractParams {
            valid: ExtractValidParams {
                inputs: Vec::new(),
                out: PathBuf::new(),
                selection: Selection::default(),
                chunk: DEFAULT_CHUNK,
                retry_failed: false,
            },
            shard: None,
        }
    }

    /// The inputs, one or more: folders of images (class = first-level sub-folder), PASCAL VOC
    /// devkit roots, list files, CSV/TSV/Parquet tables, WebDataset `.tar` shards. Their ids
    /// must differ. Required.
    pub fn inputs<P: Into<PathBuf>>(mut self, inputs: impl IntoIterator<Item = P>) -> Self {
        self.valid.inputs = inputs.into_iter().map(Into::into).collect();
        self
    }

    /// The store folder: created, or resumed when it was made with the same parameters.
    /// Required.
    pub fn out(mut self, out: impl Into<PathBuf>) -> Self {
        self.valid.out = out.into();
        self
    }

    /// Tables: the folder their relative paths (a split file's ids) are resolved against.
    /// Default each table's folder.
    pub fn root(mut self, root: Option<PathBuf>) -> Self {
        self.valid.selection.root = root;
        self
    }

    /// The VOC image set of a devkit input (`ImageSets/Main/<set>.txt`). Default `trainval`;
    /// a plain name.
    pub fn voc_split(mut self, split: impl Into<String>) -> Self {
        self.valid.selection.voc_split = split.into();
        self
    }

    /// Only these classes. Default all.
    pub fn classes(mut self, classes: Option<Vec<String>>) -> Self {
        self.valid.selection.classes = classes;
        self
    }

    /// Only the first K images of each class (sorted order). Default all; K >= 1.
    pub fn limit_per_class(mut self, k: Option<usize>) -> Self {
        self.valid.selection.limit_per_class = k;
        self
    }

    /// A deterministic 1/N of the inputs ([`crate::dataset::shard_of`]), to join with
    /// [`crate::store::merge`]: fixed, or from a Slurm array or Kubernetes Indexed Job (resolved
    /// by [`ExtractParams::check`] from the environment). Default none.
    pub fn shard(mut self, shard: Option<ShardSpec>) -> Self {
        self.shard = shard;
        self
    }

    /// Images per atomic store chunk: a kill loses at most this many. Default 32; >= 1.
    pub fn chunk(mut self, chunk: usize) -> Self {
        self.valid.chunk = chunk;
        self
    }

    /// Try every input that failed in an earlier run again, not only those whose file changed.
    /// Default false.
    pub fn retry_failed(mut self, retry: bool) -> Self {
        self.valid.retry_failed = retry;
        self
    }

    /// Checks the ranges in the setters' docs and resolves the shard from the environment
    /// (no file is read).
    pub fn check(self) -> Result<ExtractValidParams> {
        let mut v = self.valid;
        if v.inputs.is_empty() {
            return Err(Error::param(Param::Inputs, "at least one input is needed"));
        }
        if v.out.as_os_str().is_empty() {
            return Err(Error::param(Param::Out, "the store folder is required"));
        }
        if v.chunk == 0 {
            return Err(Error::param(Param::Chunk, "must be at least 1"));
        }
        if v.selection.limit_per_class == Some(0) {
            return Err(Error::param(Param::LimitPerClass, "must be at least 1"));
        }
        crate::dataset::check_voc_split(&v.selection.voc_split)?;
        v.selection.shard = self.shard.map(ShardSpec::resolve).transpose()?;
        Ok(v)
    }
}

/// The fingerprint of a listing: its items' ids and file sizes, and its unusable entries.
pub(crate) fn fingerprint(ds: &Dataset) -> DatasetPrint {
    DatasetPrint::of(
        ds.items
            .iter()
            .map(|i| (i.id.clone(), i.size()))
            .chain(unusable(&ds.skipped).into_iter().map(|u| (u.id, None))),
    )
}

/// The canonical form of an input path, for the manifest.
pub(crate) fn canonical_root(p: &std::path::Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// An extraction ready to run: the dataset listed (and fingerprinted before sharding, so that
/// every shard records the same fingerprint wherever the data is mounted) and the provenance of
/// the store derived.
#[derive(Debug)]
pub struct Extraction<'a> {
    extractor: &'a Extractor,
    params: ExtractValidParams,
    dataset: Dataset,
    print: DatasetPrint,
}

impl Extractor {
    /// Lists the inputs of `params` (classes, limit per class, then the shard). Errors before
    /// any image is decoded: an input that cannot be listed, an empty selection.
    pub fn prepare(&self, params: &ExtractValidParams) -> Result<Extraction<'_>> {
        let mut whole = params.selection.clone();
        whole.shard = None;
        let all = Dataset::open_inputs_selection(&params.inputs, &whole)?;
        self.extraction(params, all)
    }

    /// [`Extractor::prepare`] of inputs already listed: `all` is the listing of `params`'
    /// inputs with its selection but before its shard (a caller that listed them to check
    /// them does not list them again).
    pub(crate) fn extraction(
        &self,
        params: &ExtractValidParams,
        all: Dataset,
    ) -> Result<Extraction<'_>> {
        let shard = params.selection.shard;
        let print = fingerprint(&all);
        // Inputs with nothing to extract are an error; one shard of them that happens to hold
        // no image (more array tasks than images) is an empty store, so that the array's merge
        // still finds every shard.
        let unusable = all
            .skipped
            .iter()
            .any(|s| s.kind == crate::dataset::SkipKind::Unusable);
        if all.is_empty() && !unusable {
            return Err(Error::Data {
                path: params.inputs[0].clone(),
                reason: "no images found".into(),
            });
        }
        let dataset = match shard {
            Some((i, n)) => all.shard(i, n)?,
            None => all,
        };
        Ok(Extraction {
            extractor: self,
            params: params.clone(),
            dataset,
            print,
        })
    }

    /// Extracts the inputs of `params` into its store ([`Extractor::prepare`], then
    /// [`Extraction::run`]).
    pub fn extract(
        &self,
        params: &ExtractValidParams,
        progress: &dyn Progress,
    ) -> Result<ExtractSummary> {
        self.prepare(params)?.run(progress)
    }
}

impl Extraction<'_> {
    /// The images to extract.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The parameters.
    pub fn params(&self) -> &ExtractValidParams {
        &self.params
    }

    /// What the manifest records about the input.
    pub fn input_spec(&self) -> InputSpec {
        let p = &self.params;
        let s = &p.selection;
        InputSpec {
            root: canonical_root(&p.inputs[0]),
            kind: self.dataset.kind,
            split: (self.dataset.kind == SourceKind::Voc).then(|| s.voc_split.clone()),
            classes: s.classes.clone(),
            limit_per_class: s.limit_per_class,
            shard: s.shard,
            more: p.inputs[1..].iter().map(|i| canonical_root(i)).collect(),
            table_root: s.root.as_deref().map(canonical_root),
        }
    }

    /// The manifest of the store.
    pub fn manifest(&self) -> Manifest {
        let e = self.extractor.params();
        Manifest {
            format_version: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            input: self.input_spec(),
            nets: self.extractor.net_specs(),
            scales: e.scales().to_vec(),
            flip: e.flip(),
            max_pixels: e.max_pixels(),
        }
    }

    /// Runs the extraction into the store, resuming a store made with the same parameters
    /// (see [`crate::store`]). Inputs that fail are recorded with their reasons, told to
    /// `progress` and listed in the summary; the run goes on. Records reach the store in atomic
    /// chunks (and at least every 30 s); `stats.json` says what the run did, also when it
    /// stopped on an error.
    pub fn run(self, progress: &dyn Progress) -> Result<ExtractSummary> {
        let ex = self.extractor;
        let decode = ex.params().decode();
        let scales = ex.params().scales().to_vec();
        let manifest = self.manifest();
        let store_dir = self.params.out.clone();
        let (mut writer, existing) = StoreWriter::open(&store_dir, &manifest, self.params.chunk)?;
        writer.set_dataset(Some(self.print));
        let started = std::time::SystemTime::now();
        let items = self.dataset.items;
        let failed_entries = unusable(&self.dataset.skipped);
        let plan = resume::plan(&items, &failed_entries, existing, self.params.retry_failed);
        let mut summary = plan.summary;
        for r in plan.records {
            writer.push(r)?;
        }
        if !plan.relabel.is_empty() {
            // Kept records whose labels changed: the same descriptors (or failure) under the
            // input's labels now.
            let by_id: std::collections::HashMap<&str, &Vec<String>> = plan
                .relabel
                .iter()
                .map(|&i| (items[i].id.as_str(), &items[i].labels))
                .collect();
            let wanted = |id: &str| by_id.contains_key(id);
            for mut r in crate::store::read_records(&store_dir, &manifest, wanted)? {
                r.labels = by_id[r.id.as_str()].clone();
                writer.push(r)?;
            }
        }
        let todo = plan.todo;
        // The rates' clock: the processing the progress bar shows, from its start.
        let start = Instant::now();
        progress.begin("extract", "images", todo.len() as u64);
        for (id, reason) in &summary.failed {
            progress.note(&format!("skipped {id}: {reason}"));
        }
        let mut last_flush = Instant::now();
        let result = ex.pipeline().run(
            &todo,
            |i| prepare_item(&items[i], &scales, &decode),
            |group| {
                let ok: Vec<&Vec<image::RgbImage>> = group
                    .iter()
                    .filter_map(|g| g.scaled.as_ref().ok())
                    .collect();
                let mut floats = ex
                    .describe_group(&ok, &mut summary.network_seconds)
                    .into_iter();
                for g in &group {
                    let item = &items[g.index];
                    let outcome = match &g.scaled {
                        Err(reason) => Outcome::Failed(reason.clone()),
                        Ok(_) => match floats.next().expect("one result per decoded image") {
                            Ok(v) => Outcome::Ok(v),
                            Err(reason) => Outcome::Failed(reason),
                        },
                    };
                    match &outcome {
                        Outcome::Ok(_) => summary.extracted += 1,
                        Outcome::Failed(reason) => {
                            progress.note(&format!("skipped {}: {reason}", item.path.display()));
                            summary.failed.push((item.id.clone(), reason.clone()));
                        }
                        Outcome::Removed => unreachable!("extraction removes nothing"),
                    }
                    writer.push(Record {
                        id: item.id.clone(),
                        labels: item.labels.clone(),
                        outcome,
                        source: g.source,
                    })?;
                    summary.processed += 1;
                    progress.advance(1);
                }
                if last_flush.elapsed() > Duration::from_secs(30) {
                    writer.flush()?;
                    last_flush = Instant::now();
                }
                Ok(())
            },
        );
        progress.end();
        summary.seconds = start.elapsed().as_secs_f64();
        let stats = RunStats::new(&summary, &manifest, ex.runtime(), started, result.is_ok());
        if let Err(e) = result {
            // Keep the statistics of what was done before the error, then report it.
            let _ = stats.write(&store_dir);
            return Err(e);
        }
        writer.finish(true, Some(summary.total), None)?;
        stats.write(&store_dir)?;
        Ok(summary)
    }
}
