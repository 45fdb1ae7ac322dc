//! Multi-scale dense description (the paper's Appendix B): for each image and scale Q, the
//! per-scale descriptor of every net ([`crate::descriptor`]). Two ways out:
//!
//! - in memory ([`Extractor::describe`], [`Extractor::describe_raw`], [`Extractor::describe_all`]):
//!   paths, encoded bytes or decoded pixels ([`Image`]) straight to an `ndarray` matrix, rows in
//!   input order, aggregated over scales and L2-normalised ([`crate::aggregate`]) or raw per net
//!   and scale, with no store;
//! - into a feature store ([`Extractor::extract`] with [`ExtractParams`]): a dataset (folders,
//!   devkits, lists, tables, tar shards) into a resumable store, aggregated later
//!   ([`crate::store`]).
//!
//! [`ExtractorParams`] says which nets and how they see images; [`Extractor::new`] loads them.
//! Files: `net` (a net with its layer, convention and manifest entry), `input` (what an input is
//! and how it is decoded and rescaled), `pipeline` (decoding threads ahead of the network),
//! `batch` (a group of inputs through every net and scale), `describe` (the in-memory path),
//! `resume` (what a resumed store still needs), `job` (extraction into a store), `stats`
//! (`stats.json`).
//!
//! ```no_run
//! # fn main() -> vggfeat::Result<()> {
//! use vggfeat::{ExtractorParams, Extractor, Image};
//! let params = ExtractorParams::new()
//!     .weights(["vgg16.safetensors"])
//!     .scales([256, 384, 512])
//!     .check()?;
//! let extractor = Extractor::new(&params)?;
//! let x = extractor.describe(&[Image::from("cat.jpg"), Image::from("dog.png")])?;
//! println!("{} x {}", x.nrows(), x.ncols());
//! # Ok(()) }
//! ```

mod batch;
mod describe;
mod input;
mod job;
mod net;
mod pipeline;
mod resume;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;

use crate::aggregate::{Aggregate, RecordLayout};
use crate::error::{Error, Param, Result};
use crate::image_io::DEFAULT_MAX_PIXELS;
use crate::model::config::LayerName;
use crate::model::{DeviceSpec, Engine, Precision, RunOptions, Vgg};
use crate::preprocess::Preprocess;
use crate::store::NetSpec;

pub use crate::image_io::Image;
pub use describe::{Described, Failure};
pub use job::{DEFAULT_CHUNK, ExtractParams, ExtractValidParams, Extraction};
pub use net::{NetEntry, sha256_file, weights_sha256};
pub use stats::{ExtractSummary, Runtime, RuntimeNet};

/// Checked parameters of an [`Extractor`]; obtained only from [`ExtractorParams::check`]. See
/// [`ExtractorParams`] for every field's meaning, default and range.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractorValidParams {
    weights: Vec<PathBuf>,
    layer: Option<LayerName>,
    preprocess: Preprocess,
    precision: Precision,
    engine: Engine,
    device: DeviceSpec,
    scales: Vec<u32>,
    flip: bool,
    batch: usize,
    max_pixels: u64,
    decode_threads: usize,
    queue: usize,
    aggregate: Aggregate,
    threads: Option<usize>,
}

impl ExtractorValidParams {
    /// Checkpoint files, one descriptor set per net.
    pub fn weights(&self) -> &[PathBuf] {
        &self.weights
    }
    /// Descriptor layer (`None`: fc7, or pool5 for checkpoints without fc layers).
    pub fn layer(&self) -> Option<LayerName> {
        self.layer
    }
    /// Input convention.
    pub fn preprocess(&self) -> Preprocess {
        self.preprocess
    }
    /// Arithmetic of the products.
    pub fn precision(&self) -> Precision {
        self.precision
    }
    /// Engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }
    /// Device.
    pub fn device(&self) -> DeviceSpec {
        self.device
    }
    /// Scales Q, in order.
    pub fn scales(&self) -> &[u32] {
        &self.scales
    }
    /// Whether descriptors average the horizontal flip.
    pub fn flip(&self) -> bool {
        self.flip
    }
    /// Inputs per forward pass at most.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Largest accepted image in pixels.
    pub fn max_pixels(&self) -> u64 {
        self.max_pixels
    }
    /// Decoding threads.
    pub fn decode_threads(&self) -> usize {
        self.decode_threads
    }
    /// Prepared images waiting for the network at most.
    pub fn queue(&self) -> usize {
        self.queue
    }
    /// Scale aggregation of [`Extractor::describe`].
    pub fn aggregate(&self) -> Aggregate {
        self.aggregate
    }
    /// Compute threads (`None`: all cores).
    pub fn threads(&self) -> Option<usize> {
        self.threads
    }
    /// The decoder's options.
    pub(crate) fn decode(&self) -> crate::image_io::DecodeOptions {
        crate::image_io::DecodeOptions {
            max_pixels: self.max_pixels,
            ..Default::default()
        }
    }
    /// The engine and precision.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            engine: self.engine,
            precision: self.precision,
        }
    }
}

/// Which nets describe images, and how they see them: a builder. Call
/// [`check`](ExtractorParams::check) for the only way to [`ExtractorValidParams`].
///
/// ```
/// use vggfeat::{Aggregate, ExtractorParams};
/// let p = ExtractorParams::new()
///     .weights(["vgg16.safetensors", "vgg19.safetensors"])
///     .scales([256, 384, 512])
///     .aggregate(Aggregate::Avg)
///     .check()?;
/// assert_eq!(p.scales(), &[256, 384, 512]);
/// assert!(ExtractorParams::new().scales([256, 256]).check().is_err());
/// # Ok::<(), vggfeat::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractorParams(ExtractorValidParams);

impl Default for ExtractorParams {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtractorParams {
    /// The defaults: no weights yet, the default layer, the checkpoint's preprocessing, f32, the
    /// automatic engine on the CPU, scales 256, 384, 512 with flips, batches of 2, a 100 MP
    /// pixel limit, 1 decoding thread, a queue of 4, stacked scales, all cores.
    pub fn new() -> Self {
        ExtractorParams(ExtractorValidParams {
            weights: Vec::new(),
            layer: None,
            preprocess: Preprocess::Auto,
            precision: Precision::F32,
            engine: Engine::Auto,
            device: DeviceSpec::Cpu,
            scales: vec![256, 384, 512],
            flip: true,
            batch: 2,
            max_pixels: DEFAULT_MAX_PIXELS,
            decode_threads: 1,
            queue: 4,
            aggregate: Aggregate::DEFAULT,
            threads: None,
        })
    }

    /// Checkpoint files (safetensors, `.pth`, Keras `.h5`), one descriptor set per net, stored
    /// and fused in this order (the paper's D & E). Required (at least one) by
    /// [`Extractor::new`]; [`Extractor::from_nets`] takes nets already in memory instead.
    pub fn weights<P: Into<PathBuf>>(mut self, weights: impl IntoIterator<Item = P>) -> Self {
        self.0.weights = weights.into_iter().map(Into::into).collect();
        self
    }

    /// The descriptor layer by its paper name (`fc7`, `pool5`, `conv5_3`). Default `None`: fc7,
    /// or pool5 for a checkpoint without fc layers. Must exist in every net.
    pub fn layer(mut self, layer: Option<LayerName>) -> Self {
        self.0.layer = layer;
        self
    }

    /// Input convention. Default [`Preprocess::Auto`]: the checkpoint's metadata, else
    /// torchvision.
    pub fn preprocess(mut self, preprocess: Preprocess) -> Self {
        self.0.preprocess = preprocess;
        self
    }

    /// Arithmetic of the products. Default [`Precision::F32`]; [`Precision::Bf16`] needs
    /// AVX512-BF16 on the CPU (refused by [`Extractor::new`] otherwise).
    pub fn precision(mut self, precision: Precision) -> Self {
        self.0.precision = precision;
        self
    }

    /// Implementation. Default [`Engine::Auto`] (the fast CPU engine on the CPU, candle on
    /// CUDA).
    pub fn engine(mut self, engine: Engine) -> Self {
        self.0.engine = engine;
        self
    }

    /// Device. Default the CPU; CUDA needs a build with the `cuda` feature.
    pub fn device(mut self, device: DeviceSpec) -> Self {
        self.0.device = device;
        self
    }

    /// Scales Q: the smallest image side after isotropic rescaling, each at least the nets'
    /// smallest input (224 for an ImageNet head, 32 for conv layers; checked by
    /// [`Extractor::new`]), none repeated, at least one. Default 256, 384, 512 (the paper's
    /// Caltech setting).
    pub fn scales(mut self, scales: impl IntoIterator<Item = u32>) -> Self {
        self.0.scales = scales.into_iter().collect();
        self
    }

    /// Average each per-scale descriptor with that of the horizontal flip. Default true.
    pub fn flip(mut self, flip: bool) -> Self {
        self.0.flip = flip;
        self
    }

    /// Inputs per forward pass at most (an image and its flip count as two). Default 2; >= 1.
    pub fn batch(mut self, batch: usize) -> Self {
        self.0.batch = batch;
        self
    }

    /// Largest accepted image, width x height, checked from the file header before decoding
    /// (a decompression-bomb guard), and largest rescaled image. Default 100,000,000; >= 1.
    pub fn max_pixels(mut self, max_pixels: u64) -> Self {
        self.0.max_pixels = max_pixels;
        self
    }

    /// Threads that decode and rescale images ahead of the network. Default 1; 1..=256.
    pub fn decode_threads(mut self, threads: usize) -> Self {
        self.0.decode_threads = threads;
        self
    }

    /// Prepared images waiting for the network at most (bounds memory). Default 4; >= 1.
    pub fn queue(mut self, queue: usize) -> Self {
        self.0.queue = queue;
        self
    }

    /// How [`Extractor::describe`] combines scales (and [`Described::features`]). Default
    /// [`Aggregate::DEFAULT`] (stack). Stores keep the per-scale descriptors; this does not apply to them.
    pub fn aggregate(mut self, aggregate: Aggregate) -> Self {
        self.0.aggregate = aggregate;
        self
    }

    /// Threads of the network's computation, in a pool of the extractor's own. Default `None`:
    /// the process's pool (all cores); 1..=1024.
    pub fn threads(mut self, threads: Option<usize>) -> Self {
        self.0.threads = threads;
        self
    }

    /// Checks every range given in the setters' docs, without I/O.
    pub fn check(self) -> Result<ExtractorValidParams> {
        let p = self.0;
        let bad = |param, reason: &str| Err(Error::param(param, reason));
        if p.scales.is_empty() {
            return bad(Param::Scales, "at least one scale is needed");
        }
        if let Some(q) = p.scales.iter().find(|q| **q == 0) {
            return bad(Param::Scales, &format!("scale {q} must be at least 1"));
        }
        let mut sorted = p.scales.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != p.scales.len() {
            return bad(Param::Scales, "scales repeat");
        }
        if p.batch == 0 {
            return bad(Param::Batch, "must be at least 1");
        }
        if p.max_pixels == 0 {
            return bad(Param::MaxPixels, "must be at least 1");
        }
        if !(1..=256).contains(&p.decode_threads) {
            return bad(Param::DecodeThreads, "must be in 1..=256");
        }
        if p.queue == 0 {
            return bad(Param::Queue, "must be at least 1");
        }
        if p.threads.is_some_and(|t| !(1..=1024).contains(&t)) {
            return bad(Param::Threads, "must be in 1..=1024");
        }
        Ok(p)
    }
}

impl From<ExtractorValidParams> for ExtractorParams {
    /// Checked parameters back as a builder, to change some.
    fn from(p: ExtractorValidParams) -> Self {
        ExtractorParams(p)
    }
}

/// Refuses a scale below `min`, the nets' smallest input.
fn scales_fit(scales: &[u32], min: u32) -> Result<()> {
    match scales.iter().find(|q| **q < min) {
        Some(q) => Err(Error::param(
            Param::Scales,
            format!("scale {q} is below {min}, the smallest input of the chosen layer"),
        )),
        None => Ok(()),
    }
}

/// Nets ready to describe images: loaded, their layers and conventions resolved, the scales
/// checked against them.
pub struct Extractor {
    nets: Vec<NetEntry>,
    params: ExtractorValidParams,
    pool: Option<Arc<rayon::ThreadPool>>,
    notes: Vec<String>,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("nets", &self.nets)
            .field("params", &self.params)
            .finish()
    }
}

impl Extractor {
    /// The nets `nets` (indices into `manifest.nets`) of a store, loaded to describe new images
    /// exactly as the store's were: the same layer, input convention, precision, scales, flip
    /// and decode limit; the store's aggregated descriptors and these rows
    /// ([`Described::aggregated`]) then compare. `weights` replaces the paths the manifest
    /// recorded (one per net of `nets`, in order), for weights that moved; empty: the
    /// manifest's. Each net loaded must be the one the store recorded (its SHA-256, layer,
    /// dimension, convention and precision), or the refusal names the file and the fields.
    pub fn for_store(
        manifest: &crate::store::Manifest,
        nets: &[usize],
        weights: &[PathBuf],
    ) -> Result<Self> {
        let specs: Vec<&NetSpec> = nets.iter().map(|&i| &manifest.nets[i]).collect();
        if !weights.is_empty() && weights.len() != specs.len() {
            return Err(Error::param(
                Param::Weights,
                format!(
                    "{} given for {} net(s) of the store",
                    weights.len(),
                    specs.len()
                ),
            ));
        }
        let paths: Vec<PathBuf> = if weights.is_empty() {
            specs.iter().map(|s| PathBuf::from(&s.weights)).collect()
        } else {
            weights.to_vec()
        };
        if let Some(p) = paths.iter().find(|p| !p.is_file()) {
            return Err(Error::param(
                Param::Weights,
                format!(
                    "{}: the weights the store was extracted with are not here; give their                      path",
                    p.display()
                ),
            ));
        }
        // One value for every net where the store has one; otherwise each net's own (the
        // default layer, the checkpoint's convention), checked below against the store.
        let same = |f: &dyn Fn(&NetSpec) -> String| specs.windows(2).all(|w| f(w[0]) == f(w[1]));
        let first = specs
            .first()
            .ok_or_else(|| Error::param(Param::Nets, "no nets selected"))?;
        let layer = same(&|s| s.layer.to_string()).then_some(first.layer);
        let preprocess = if same(&|s| s.preprocess.to_string()) {
            Preprocess::from(Some(first.preprocess))
        } else {
            Preprocess::Auto
        };
        if !same(&|s| s.precision.to_string()) {
            return Err(Error::usage(
                "the store's nets differ in precision; describe images with one net at a time                  (nets)",
            ));
        }
        let params = ExtractorParams::new()
            .weights(paths.clone())
            .layer(layer)
            .preprocess(preprocess)
            .precision(first.precision)
            .scales(manifest.scales.iter().copied())
            .flip(manifest.flip)
            .max_pixels(manifest.max_pixels)
            .check()?;
        let extractor = Extractor::new(&params)?;
        for ((have, want), path) in extractor.net_specs().iter().zip(&specs).zip(&paths) {
            let diff = have.differences(want, "net");
            if !diff.is_empty() {
                return Err(Error::Data {
                    path: path.clone(),
                    reason: format!(
                        "these weights do not give the store's descriptors: {}",
                        diff.join("; ")
                    ),
                });
            }
        }
        Ok(extractor)
    }

    /// Loads every checkpoint of `params` onto its device with its engine and precision, and
    /// checks the layer and the scales against the nets. Errors name the file or the parameter.
    pub fn new(params: &ExtractorValidParams) -> Result<Self> {
        if params.weights.is_empty() {
            return Err(Error::param(Param::Weights, "at least one is needed"));
        }
        let device = params.device.open()?;
        let nets = params
            .weights
            .iter()
            .map(|p| Vgg::load_with(p, &device, params.run_options()))
            .collect::<Result<Vec<_>>>()?;
        Self::from_nets(nets, params)
    }

    /// An extractor of nets already in memory (in the order their descriptors are stored);
    /// [`ExtractorValidParams::weights`] is not read.
    pub fn from_nets(nets: Vec<Vgg>, params: &ExtractorValidParams) -> Result<Self> {
        if nets.is_empty() {
            return Err(Error::param(Param::Weights, "at least one net is needed"));
        }
        let mut notes = Vec::new();
        let nets = nets
            .into_iter()
            .map(|vgg| {
                if params.layer.is_none() && !vgg.has_head() {
                    notes.push(format!(
                        "{}: no fc layers, using {} as the descriptor layer",
                        vgg.weights().path.display(),
                        vgg.default_layer()
                    ));
                }
                NetEntry::new(vgg, params.layer, params.preprocess)
            })
            .collect::<Result<Vec<_>>>()?;
        scales_fit(
            &params.scales,
            nets.iter().map(NetEntry::min_side).max().unwrap_or(1),
        )?;
        let pool = match params.threads {
            Some(n) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::Internal(format!("cannot start {n} threads: {e}")))?,
            )),
            None => None,
        };
        Ok(Extractor {
            nets,
            params: params.clone(),
            pool,
            notes,
        })
    }

    /// Describes at other scales from now on (the nets stay loaded): checked as
    /// [`ExtractorParams::scales`] says and against the nets' smallest input.
    pub fn set_scales(&mut self, scales: &[u32]) -> Result<()> {
        let p = ExtractorParams(self.params.clone())
            .scales(scales.iter().copied())
            .check()?;
        scales_fit(&p.scales, self.min_side())?;
        self.params = p;
        Ok(())
    }

    /// The nets, in store order.
    pub fn nets(&self) -> &[NetEntry] {
        &self.nets
    }

    /// The parameters.
    pub fn params(&self) -> &ExtractorValidParams {
        &self.params
    }

    /// Remarks about choices made for the user (the descriptor layer of a net without fc
    /// layers).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// What a store's manifest records about each net.
    pub fn net_specs(&self) -> Vec<NetSpec> {
        self.nets.iter().map(|n| n.spec.clone()).collect()
    }

    /// What computes the descriptors (engine, kernels, precision, threads, nets and
    /// dimensions): the run header of `extract` and `stats.json`'s `runtime`.
    pub fn runtime(&self) -> Runtime {
        let first = &self.nets[0].vgg;
        let all: Vec<usize> = (0..self.nets.len()).collect();
        let layout = self.layout();
        Runtime {
            engine: first.engine().to_string(),
            kernel: first.kernel(),
            precision: first.precision().to_string(),
            device: self.params.device.to_string(),
            threads: self
                .pool
                .as_ref()
                .map_or_else(rayon::current_num_threads, |p| p.current_num_threads()),
            nets: self
                .nets
                .iter()
                .map(|n| RuntimeNet {
                    config: n.spec.config.to_string(),
                    layer: n.spec.layer.to_string(),
                    dim: n.spec.dim,
                })
                .collect(),
            scales: self.params.scales.clone(),
            flip: self.params.flip,
            record_dim: layout.dims.iter().sum::<usize>() * layout.scales,
            descriptor_dim: layout.dim(Aggregate::Stack, &all),
        }
    }

    /// The smallest scale every net accepts.
    pub fn min_side(&self) -> u32 {
        self.nets.iter().map(NetEntry::min_side).max().unwrap_or(1)
    }

    /// How one image's raw descriptors are laid out: per net, every scale.
    pub fn layout(&self) -> RecordLayout {
        RecordLayout {
            dims: self.nets.iter().map(|n| n.spec.dim).collect(),
            scales: self.params.scales.len(),
        }
    }

    /// The dimension of [`Extractor::describe`]'s rows: per net its dimension (avg) or its
    /// dimension times the scales (stack), summed over nets.
    pub fn dim(&self) -> usize {
        let all: Vec<usize> = (0..self.nets.len()).collect();
        self.layout().dim(self.params.aggregate, &all)
    }

    /// The pipeline of this extractor's decoding threads.
    fn pipeline(&self) -> pipeline::Pipeline {
        pipeline::Pipeline {
            threads: self.params.decode_threads,
            queue: self.params.queue,
            group: self
                .params
                .batch
                .div_ceil(if self.params.flip { 2 } else { 1 })
                .max(1),
        }
    }
}
