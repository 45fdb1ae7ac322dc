//! The `extract` command as one library job: list the dataset (with its subset options), load
//! every checkpoint onto the device, check the parameters against the nets, then run the
//! [`Extractor`] into the store. [`ExtractRequest::check`] validates without I/O, so a usage error
//! is reported before anything heavy is read.

use std::path::PathBuf;

use super::{ExtractParams, Extractor, Inputs, NetEntry, Summary, canonical_root};
use crate::dataset::{Dataset, Selection, SourceKind};
use crate::error::{Error, Result};
use crate::model::config::LayerName;
use crate::model::{DeviceSpec, Engine, Precision, RunOptions};
use crate::preprocess::Normalization;
use crate::store::{DatasetPrint, InputSpec};

/// Everything `vggfeat extract` is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractRequest {
    /// The inputs: folders, VOC devkits, list files, tables or WebDataset tar shards (one or
    /// more; their ids must differ).
    pub inputs: Vec<PathBuf>,
    /// Checkpoints, one descriptor set per net.
    pub weights: Vec<PathBuf>,
    /// The store folder (created, or resumed when made with the same parameters).
    pub out: PathBuf,
    /// Descriptor layer; default fc7, or pool5 for checkpoints without fc layers.
    pub layer: Option<LayerName>,
    /// Input convention; default each checkpoint's metadata, else torchvision.
    pub preprocess: Option<Normalization>,
    /// Where the nets run.
    pub device: DeviceSpec,
    /// Which engine runs them.
    pub engine: Engine,
    /// The arithmetic of their products (bf16 needs AVX512-BF16 on the CPU).
    pub precision: Precision,
    /// Which images.
    pub dataset: Selection,
    /// Scales, flip, batching, decoding.
    pub params: ExtractParams,
}

impl ExtractRequest {
    /// Checks everything that can be checked without reading a file.
    pub fn check(&self) -> Result<()> {
        if self.inputs.is_empty() {
            return Err(Error::InvalidParam("at least one input is needed".into()));
        }
        if self.weights.is_empty() {
            return Err(Error::InvalidParam(
                "at least one --weights is needed".into(),
            ));
        }
        if let Some((i, n)) = self.dataset.shard
            && (n == 0 || i >= n)
        {
            return Err(Error::InvalidParam(format!(
                "bad --shard `{i}/{n}` (expected i/N, 0 <= i < N)"
            )));
        }
        self.params.check_basic()
    }
}

/// A prepared extraction: the nets loaded, the dataset listed.
#[derive(Debug)]
pub struct ExtractJob {
    request: ExtractRequest,
    extractor: Extractor,
    dataset: Dataset,
    print: DatasetPrint,
    notes: Vec<String>,
}

/// The fingerprint of a listing: its items' ids and file sizes, and its unusable entries.
pub fn fingerprint(ds: &Dataset) -> DatasetPrint {
    let inputs = Inputs::from(ds);
    DatasetPrint::of(
        inputs
            .items
            .iter()
            .map(|i| (i.id.clone(), i.size()))
            .chain(inputs.unusable.into_iter().map(|u| (u.id, None))),
    )
}

impl ExtractJob {
    /// Loads the nets, checks the scales against them, and lists the dataset. Errors before any
    /// image is decoded.
    pub fn prepare(request: ExtractRequest) -> Result<Self> {
        request.check()?;
        let device = request.device.open()?;
        let mut nets = Vec::new();
        let mut notes = Vec::new();
        for p in &request.weights {
            let run = RunOptions {
                engine: request.engine,
                precision: request.precision,
            };
            let net = NetEntry::load(p, &device, run, request.layer, request.preprocess)?;
            if request.layer.is_none() && !net.vgg.has_head() {
                notes.push(format!(
                    "{}: no fc layers, using {} as the descriptor layer",
                    p.display(),
                    net.layer
                ));
            }
            nets.push(net);
        }
        let extractor = Extractor::new(nets)?;
        request.params.check(extractor.min_side())?;
        // The whole selection is listed (and fingerprinted) before the shard is taken, so that
        // every shard records the same dataset fingerprint wherever the data is mounted.
        let mut whole = request.dataset.clone();
        let shard = whole.shard.take();
        let all = Dataset::open_inputs_selection(&request.inputs, &whole)?;
        let print = fingerprint(&all);
        let ds = match shard {
            Some((i, n)) => all.shard(i, n)?,
            None => all,
        };
        if ds.is_empty() {
            return Err(Error::Data {
                path: request.inputs[0].clone(),
                reason: "no images found".into(),
            });
        }
        Ok(ExtractJob {
            request,
            extractor,
            dataset: ds,
            print,
            notes,
        })
    }

    /// The request being carried out.
    pub fn request(&self) -> &ExtractRequest {
        &self.request
    }

    /// The images to extract.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The nets.
    pub fn extractor(&self) -> &Extractor {
        &self.extractor
    }

    /// Remarks about the choices made (e.g. the descriptor layer of a net without fc layers).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// What the manifest records about the input.
    pub fn input_spec(&self) -> InputSpec {
        let r = &self.request;
        InputSpec {
            root: canonical_root(&r.inputs[0]),
            kind: self.dataset.kind,
            split: (self.dataset.kind == SourceKind::Voc).then(|| r.dataset.voc_split.clone()),
            classes: r.dataset.classes.clone(),
            limit_per_class: r.dataset.limit_per_class,
            shard: r.dataset.shard,
            more: r.inputs[1..].iter().map(|p| canonical_root(p)).collect(),
            table_root: r.dataset.root.as_deref().map(canonical_root),
        }
    }

    /// Runs the extraction into the store.
    pub fn run(self) -> Result<Summary> {
        let input = self.input_spec();
        let mut inputs = Inputs::from(&self.dataset);
        inputs.print = Some(self.print);
        self.extractor
            .run(inputs, &self.request.out, input, &self.request.params)
    }
}
