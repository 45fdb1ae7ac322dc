//! Multi-scale dense extraction (the paper's Appendix B) over a dataset into a feature store:
//! for each image and scale Q, the per-scale descriptor of every net ([`crate::descriptor`]);
//! aggregation happens later ([`crate::store::join`]).
//!
//! Decoding and resizing run on their own threads ahead of the network (a decode stage), through a
//! bounded queue; inputs of equal shape share a forward pass. A file that cannot be used is
//! recorded as a failure with its reason and the run goes on. Records go to the store in atomic
//! chunks, so a killed run resumes where it stopped.
//!
//! [`Extractor`] is the library entry point for networks already in memory; [`job`] is the
//! command-line job (list a dataset, load checkpoints, run).
//!
//! ```no_run
//! # fn main() -> vggfeat::Result<()> {
//! use vggfeat::extract::{ExtractParams, Extractor, NetEntry};
//! use vggfeat::model::{Vgg, config::ConfigName, InitScheme, VggWeights};
//! let w = VggWeights::random(ConfigName::A, 8, None, 0, InitScheme::He, 0)?;
//! let net = Vgg::new(w, &candle_core::Device::Cpu, vggfeat::model::Engine::default())?;
//! let extractor = Extractor::new(vec![NetEntry::new(net, None, None)?])?;
//! let ds = vggfeat::dataset::Dataset::open("images".as_ref())?;
//! let input = vggfeat::store::InputSpec {
//!     root: "images".into(),
//!     kind: ds.kind,
//!     split: None,
//!     classes: None,
//!     limit_per_class: None,
//!     shard: None,
//!     more: Vec::new(),
//!     table_root: None,
//! };
//! let params = ExtractParams { scales: vec![256], ..ExtractParams::default() };
//! let summary = extractor.run(ds.items, "store".as_ref(), input, &params)?;
//! println!("{} extracted, {} failed", summary.extracted, summary.failed.len());
//! # Ok(()) }
//! ```

mod decode;
pub mod job;
pub mod stats;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use image::RgbImage;
use sha2::{Digest, Sha256};

use crate::dataset::{Dataset, Item, SkipKind};
use crate::descriptor::PerScale;
use crate::error::{Error, Result};
use crate::image_io::DecodeOptions;
use crate::model::config::LayerName;
use crate::model::{Format, Vgg, VggWeights, expected_normalization};
use crate::preprocess::Normalization;
use crate::store::{
    DatasetPrint, FORMAT_VERSION, InputSpec, Manifest, NetSpec, Outcome, Record, RecordMeta,
    Source, StoreWriter,
};
use crate::util::Progress;
use crate::util::progress::ProgressMode;

pub use crate::dataset::Selection;
pub use job::{ExtractJob, ExtractRequest};

/// Extraction parameters. Build with [`ExtractParams::default`] and struct update; checked by
/// [`ExtractParams::check`] (and by [`Extractor::run`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractParams {
    /// Scales Q (smallest side after rescaling), each >= the nets' smallest input (224 for an
    /// ImageNet head, 32 for conv layers), none repeated. Default `[256, 384, 512]` (the
    /// paper's Caltech setting).
    pub scales: Vec<u32>,
    /// Average with the horizontal flip (default true).
    pub flip: bool,
    /// Inputs per forward pass at most (an image and its flip count as two). Default 2; >= 1.
    pub batch: usize,
    /// Images per atomic store chunk (default 32; >= 1): a kill loses at most this many.
    pub chunk_records: usize,
    /// Decoded images waiting for the network at most (default 4; >= 1): bounds memory.
    pub queue: usize,
    /// Decoding threads (default 1; >= 1; decoding is a small share of the time).
    pub decode_threads: usize,
    /// Decoder options (pixel limit, EXIF orientation).
    pub decode: DecodeOptions,
    /// Show progress: a bar on a terminal, log lines otherwise (default true).
    pub progress: bool,
    /// Time between two progress lines when stderr is not a terminal (default 30 s).
    pub progress_interval: Duration,
    /// On resume, try every failed input again, not only those whose file changed (default
    /// false).
    pub retry_failed: bool,
}

impl Default for ExtractParams {
    fn default() -> Self {
        ExtractParams {
            scales: vec![256, 384, 512],
            flip: true,
            batch: 2,
            chunk_records: 32,
            queue: 4,
            decode_threads: 1,
            decode: DecodeOptions::default(),
            progress: true,
            progress_interval: crate::util::progress::DEFAULT_LOG_INTERVAL,
            retry_failed: false,
        }
    }
}

impl ExtractParams {
    /// Checks everything that does not depend on the nets (no I/O).
    pub fn check_basic(&self) -> Result<()> {
        if self.scales.is_empty() {
            return Err(Error::InvalidParam("at least one scale is needed".into()));
        }
        let mut sorted = self.scales.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.scales.len() {
            return Err(Error::InvalidParam("scales repeat".into()));
        }
        if self.batch == 0 || self.chunk_records == 0 || self.queue == 0 || self.decode_threads == 0
        {
            return Err(Error::InvalidParam(
                "batch, chunk size, queue and decode threads must be at least 1".into(),
            ));
        }
        if self.decode.max_pixels == 0 {
            return Err(Error::InvalidParam(
                "--max-pixels must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Validates the parameters for nets whose smallest accepted input side is `min_side`
    /// (224 for an ImageNet head, 32 x the fc6 kernel for nets trained at a smaller crop, 32 for
    /// conv layers).
    pub fn check(&self, min_side: u32) -> Result<()> {
        self.check_basic()?;
        if let Some(q) = self.scales.iter().find(|q| **q < min_side) {
            return Err(Error::InvalidParam(format!(
                "scale {q} is below {min_side}, the smallest input of the chosen layer"
            )));
        }
        Ok(())
    }
}

/// One network of a run, with its descriptor layer and input convention.
#[derive(Debug)]
pub struct NetEntry {
    /// The network.
    pub vgg: Vgg,
    /// The layer whose spatial mean is the descriptor.
    pub layer: LayerName,
    /// Input convention.
    pub norm: Normalization,
    /// What the manifest records about it.
    pub spec: NetSpec,
}

impl NetEntry {
    /// Prepares a net: `layer` None = fc7, or pool5 for a checkpoint without fc layers;
    /// `norm` None = the checkpoint's metadata, else torchvision. The manifest identifies the
    /// weights by the SHA-256 of their file, or, for weights made in memory, of their tensors.
    pub fn new(vgg: Vgg, layer: Option<LayerName>, norm: Option<Normalization>) -> Result<Self> {
        let layer = layer.unwrap_or_else(|| vgg.default_layer());
        vgg.check_layer(layer)?;
        let norm = match norm {
            Some(n) => n,
            None => expected_normalization(vgg.weights())?.0,
        };
        let w = vgg.weights();
        let sha256 = match w.format {
            Format::Memory => weights_sha256(w)?,
            _ => sha256_file(&w.path)?,
        };
        let spec = NetSpec {
            weights: w.path.display().to_string(),
            sha256,
            config: w.config,
            layer,
            dim: vgg.layer_channels(layer)?,
            preprocess: norm,
            precision: vgg.precision(),
        };
        Ok(NetEntry {
            vgg,
            layer,
            norm,
            spec,
        })
    }

    /// Loads a checkpoint onto `device` with an engine (or [`crate::model::RunOptions`]: engine
    /// and precision) and prepares it as [`NetEntry::new`] does.
    pub fn load(
        path: &Path,
        device: &candle_core::Device,
        run: impl Into<crate::model::RunOptions>,
        layer: Option<LayerName>,
        norm: Option<Normalization>,
    ) -> Result<Self> {
        Self::new(Vgg::load_with(path, device, run)?, layer, norm)
    }

    /// The smallest input side this net's descriptor layer accepts.
    pub fn min_side(&self) -> u32 {
        self.vgg.plan().min_side(self.layer) as u32
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// SHA-256 of weights in memory: the configuration, then every layer's shape and float32 values
/// (little-endian) in network order.
pub fn weights_sha256(w: &VggWeights) -> Result<String> {
    let mut h = Sha256::new();
    h.update(w.config.to_string().as_bytes());
    for l in w.layers() {
        for t in [&l.weight, &l.bias] {
            for d in t.dims() {
                h.update((*d as u64).to_le_bytes());
            }
            let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
            for x in v {
                h.update(x.to_le_bytes());
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Inputs given (images and entries the listing could not use).
    pub total: usize,
    /// Inputs already in the store (resumed), skipped.
    pub already_done: usize,
    /// Of those, records from an older store without a file fingerprint (kept unverified).
    pub unverified: usize,
    /// Inputs re-extracted because their file changed since they were stored.
    pub changed: usize,
    /// Failed inputs tried again (their file changed, or `retry_failed`).
    pub retried: usize,
    /// Records removed because their input no longer exists.
    pub removed: usize,
    /// Inputs extracted by this run.
    pub extracted: usize,
    /// Inputs that failed in this run: (id, reason).
    pub failed: Vec<(String, String)>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// Seconds spent in the network (forward passes).
    pub network_seconds: f64,
}

impl Summary {
    /// Images per second end to end.
    pub fn images_per_sec(&self) -> f64 {
        (self.extracted + self.failed.len()) as f64 / self.seconds.max(1e-9)
    }

    /// Images per second in the network alone.
    pub fn network_images_per_sec(&self) -> f64 {
        (self.extracted + self.failed.len()) as f64 / self.network_seconds.max(1e-9)
    }
}

/// An entry the dataset listing could not use (an unreadable folder, a broken link, ...): it is
/// recorded as a failed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// Its id (as an item's would be).
    pub id: String,
    /// Its labels (the class folder it is in).
    pub labels: Vec<String>,
    /// Why it could not be used.
    pub reason: String,
}

/// What a run extracts: images, and entries the listing could not use (reported as failures).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The images.
    pub items: Vec<Item>,
    /// The unusable entries.
    pub unusable: Vec<Unusable>,
    /// The fingerprint of the whole dataset these were selected from (before sharding), kept
    /// in the store's `state.json` so that shards can be merged across mount paths.
    pub print: Option<DatasetPrint>,
}

impl From<Vec<Item>> for Inputs {
    fn from(items: Vec<Item>) -> Self {
        Inputs {
            items,
            unusable: Vec::new(),
            print: None,
        }
    }
}

impl From<&Dataset> for Inputs {
    /// The dataset's items and the [`SkipKind::Unusable`] entries of its listing.
    fn from(ds: &Dataset) -> Self {
        let unusable = ds
            .skipped
            .iter()
            .filter(|s| s.kind == SkipKind::Unusable)
            .map(|s| {
                let id = s.id.clone();
                let labels = match id.split_once('/') {
                    Some((class, _)) => vec![class.to_string()],
                    None => Vec::new(),
                };
                Unusable {
                    id,
                    labels,
                    reason: s.reason.clone(),
                }
            })
            .collect();
        Inputs {
            items: ds.items.clone(),
            unusable,
            print: None,
        }
    }
}

/// Extracts per-scale descriptors of several nets (in memory) into feature stores.
#[derive(Debug)]
pub struct Extractor {
    nets: Vec<NetEntry>,
}

impl Extractor {
    /// An extractor for `nets` (at least one), in the order their descriptors are stored.
    pub fn new(nets: Vec<NetEntry>) -> Result<Self> {
        if nets.is_empty() {
            return Err(Error::InvalidParam(
                "at least one --weights is needed".into(),
            ));
        }
        Ok(Extractor { nets })
    }

    /// The nets.
    pub fn nets(&self) -> &[NetEntry] {
        &self.nets
    }

    /// The smallest scale every net accepts.
    pub fn min_side(&self) -> u32 {
        self.nets.iter().map(NetEntry::min_side).max().unwrap_or(1)
    }

    /// The manifest a run with `params` over `input` writes.
    pub fn manifest(&self, input: InputSpec, params: &ExtractParams) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            input,
            nets: self.nets.iter().map(|n| n.spec.clone()).collect(),
            scales: params.scales.clone(),
            flip: params.flip,
            max_pixels: params.decode.max_pixels,
        }
    }

    /// Runs the extraction of `inputs` into the store at `store_dir`, resuming a store made
    /// with the same parameters: an input already in the store is skipped when its file's size
    /// and times are unchanged, re-extracted when they changed (the content hash recorded with
    /// the descriptor tells a rewritten file from a touched one only after reading it, so a
    /// changed stat is enough to recompute), and a failed input is tried again when its file
    /// changed (or always, with [`ExtractParams::retry_failed`]). Records of inputs that no
    /// longer exist are removed. Inputs that fail are recorded (with their reasons) and
    /// reported in the summary; the run goes on.
    pub fn run(
        &self,
        inputs: impl Into<Inputs>,
        store_dir: &Path,
        input: InputSpec,
        params: &ExtractParams,
    ) -> Result<Summary> {
        params.check(self.min_side())?;
        let Inputs {
            items,
            unusable,
            print,
        } = inputs.into();
        let manifest = self.manifest(input, params);
        let (mut writer, existing) = StoreWriter::open(store_dir, &manifest, params.chunk_records)?;
        if print.is_some() {
            writer.set_dataset(print);
        }
        let start = Instant::now();
        let started = std::time::SystemTime::now();
        let mut summary = Summary {
            total: items.len() + unusable.len(),
            ..Default::default()
        };
        let existing: HashMap<String, RecordMeta> =
            existing.into_iter().map(|r| (r.id.clone(), r)).collect();
        let mut todo = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let unchanged = |s: &Option<Source>| {
                s.as_ref().is_some_and(|s| {
                    std::fs::metadata(&item.path)
                        .is_ok_and(|m| s.same_stat(&Source::of_metadata(&m)))
                })
            };
            match existing.get(&item.id).map(|m| (m.ok, &m.source)) {
                None | Some((None, _)) => todo.push(i),
                Some((Some(true), None)) => {
                    summary.already_done += 1;
                    summary.unverified += 1;
                }
                Some((Some(true), s)) if unchanged(s) => summary.already_done += 1,
                Some((Some(true), _)) => {
                    summary.changed += 1;
                    todo.push(i);
                }
                Some((Some(false), s)) if !params.retry_failed && unchanged(s) => {
                    summary.already_done += 1
                }
                Some((Some(false), _)) => {
                    summary.retried += 1;
                    todo.push(i);
                }
            }
        }
        // Entries the listing could not use, and records of inputs that are gone.
        let mut listed: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
        for u in &unusable {
            listed.insert(u.id.as_str());
            if existing.get(&u.id).is_some_and(|m| m.ok == Some(false)) && !params.retry_failed {
                summary.already_done += 1;
                continue;
            }
            summary.failed.push((u.id.clone(), u.reason.clone()));
            writer.push(Record {
                id: u.id.clone(),
                labels: u.labels.clone(),
                outcome: Outcome::Failed(u.reason.clone()),
                source: None,
            })?;
        }
        let mut gone: Vec<&String> = existing
            .keys()
            .filter(|id| !listed.contains(id.as_str()))
            .collect();
        gone.sort();
        for id in gone {
            summary.removed += 1;
            writer.push(Record {
                id: id.clone(),
                labels: Vec::new(),
                outcome: Outcome::Removed,
                source: None,
            })?;
        }

        let progress = Progress::with_mode(
            "extract",
            "images",
            todo.len() as u64,
            if params.progress {
                ProgressMode::Auto
            } else {
                ProgressMode::Hidden
            },
            params.progress_interval,
        );
        for (id, reason) in &summary.failed {
            progress.println(&format!("skipped {id}: {reason}"));
        }
        let items = Arc::new(items);
        let todo = Arc::new(todo);
        let stop = Arc::new(AtomicBool::new(false));
        let (rx, handles) =
            decode::spawn_decoders(items.clone(), todo.clone(), params, stop.clone());
        let mut last_flush = Instant::now();
        let group_max = params
            .batch
            .div_ceil(if params.flip { 2 } else { 1 })
            .max(1);

        let result = (|| -> Result<()> {
            let mut received = 0;
            while received < todo.len() {
                // Take one prepared image, then whatever else is ready, up to the group size.
                let Ok(first) = rx.recv() else {
                    return Err(Error::Worker(format!(
                        "the decode threads stopped after {received} of {} inputs",
                        todo.len()
                    )));
                };
                let mut group = vec![first];
                while group.len() < group_max {
                    match rx.try_recv() {
                        Ok(p) => group.push(p),
                        Err(_) => break,
                    }
                }
                received += group.len();
                let ok: Vec<&Vec<RgbImage>> = group
                    .iter()
                    .filter_map(|p| p.result.as_ref().ok())
                    .collect();
                let mut results = self
                    .describe(&ok, params, &mut summary.network_seconds)
                    .into_iter();
                for p in &group {
                    let item = &items[p.item];
                    let outcome = match &p.result {
                        Err(reason) => Outcome::Failed(reason.clone()),
                        Ok(_) => match results.next().expect("one result per decoded image") {
                            Ok(v) => Outcome::Ok(v),
                            Err(reason) => Outcome::Failed(reason),
                        },
                    };
                    match &outcome {
                        Outcome::Ok(_) => summary.extracted += 1,
                        Outcome::Failed(reason) => {
                            progress.println(&format!("skipped {}: {reason}", item.path.display()));
                            summary.failed.push((item.id.clone(), reason.clone()));
                        }
                        Outcome::Removed => unreachable!("extraction removes nothing"),
                    }
                    writer.push(Record {
                        id: item.id.clone(),
                        labels: item.labels.clone(),
                        outcome,
                        source: p.source,
                    })?;
                    progress.inc(1);
                }
                if last_flush.elapsed() > Duration::from_secs(30) {
                    writer.flush()?;
                    last_flush = Instant::now();
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        for h in handles {
            let _ = h.join();
        }
        progress.finish();
        summary.seconds = start.elapsed().as_secs_f64();
        let stats = stats::RunStats::new(&summary, &manifest, started, result.is_ok());
        if let Err(e) = result {
            // Keep the statistics of what was done before the error, then report it.
            let _ = stats.write(store_dir);
            return Err(e);
        }
        writer.finish(true, Some(summary.total), None)?;
        stats.write(store_dir)?;
        Ok(summary)
    }

    /// Every net's per-scale descriptors for a group of decoded images (one image per scale
    /// each): per image, the concatenation over nets and scales, or the first failure.
    fn describe(
        &self,
        images: &[&Vec<RgbImage>],
        params: &ExtractParams,
        network_seconds: &mut f64,
    ) -> Vec<std::result::Result<Vec<f32>, String>> {
        let mut out: Vec<std::result::Result<Vec<f32>, String>> =
            images.iter().map(|_| Ok(Vec::new())).collect();
        for net in &self.nets {
            let per_scale = PerScale {
                net: &net.vgg,
                layer: net.layer,
                norm: net.norm,
                flip: params.flip,
                batch: params.batch,
            };
            for (s, q) in params.scales.iter().enumerate() {
                let at_scale: Vec<&RgbImage> = images.iter().map(|im| &im[s]).collect();
                let (descs, secs) = per_scale.describe(&at_scale);
                *network_seconds += secs;
                for (acc, d) in out.iter_mut().zip(descs) {
                    match (acc.as_mut(), d) {
                        (Ok(_), Ok(v)) if v.iter().any(|x| !x.is_finite()) => {
                            let bad = v.iter().filter(|x| !x.is_finite()).count();
                            *acc = Err(format!(
                                "the network gave {bad} non-finite descriptor value(s) at scale \
                                 {q} (NaN or infinity): the weights or the input are broken"
                            ));
                        }
                        (Ok(a), Ok(v)) => a.extend(v),
                        (Ok(_), Err(e)) => *acc = Err(format!("network failed at scale {q}: {e}")),
                        (Err(_), _) => {}
                    }
                }
            }
        }
        out
    }
}

/// The canonical form of an input path, for the manifest.
pub fn canonical_root(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}
