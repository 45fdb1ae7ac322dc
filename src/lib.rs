//! # vggfeat
//!
//! Very deep convolutional networks (Simonyan & Zisserman, ICLR 2015, configurations A to E) as a
//! transfer-learning tool: load pretrained VGG checkpoints (torchvision or timm names,
//! safetensors, PyTorch `.pth` or Keras `.h5`), run them densely over images at several scales
//! with a fully-convolutional head, turn a layer's maps into the paper's image descriptors, train
//! linear SVMs on them, classify and train with the paper's protocols.
//!
//! ## The front door
//!
//! Every job is a builder of parameters whose `check()` is the only way to a valid set (errors
//! name the [`Param`] and why, never a command-line flag), then one call:
//!
//! | job | parameters | call | returns |
//! | --- | --- | --- | --- |
//! | describe images in memory | [`ExtractorParams`] | [`Extractor::new`], [`Extractor::describe`] | `ndarray` rows |
//! | extract a dataset into a store | [`ExtractParams`] | [`Extractor::extract`] | [`ExtractSummary`] |
//! | export a store | [`ExportParams`] | [`export`] | [`ExportSummary`] |
//! | evaluate SVMs on stores | [`EvaluateParams`] | [`evaluate`] | [`EvaluateReport`] |
//! | the paper's Table 11 | [`ReproduceParams`] | [`reproduce`] | [`Table11`] |
//! | classify images | [`ClassifyParams`] | [`ImageClassifier::new`] | [`Prediction`]s, [`EvalReport`] |
//! | train (new or resumed) | [`TrainParams`] | [`Trainer::start`] | [`TrainSummary`] |
//! | apply saved SVMs | [`PredictParams`] | [`predict`] | [`Predictions`] |
//! | nearest neighbours in a store | [`NeighboursParams`] | [`neighbours()`] | [`NeighboursReport`] |
//! | an approximate index of a store | [`IndexParams`] | [`build_index`] | [`IndexReport`] |
//! | localise objects (box-regression nets) | [`LocaliseParams`] | [`localise()`] | [`LocaliseReport`] |
//!
//! Long jobs report to a [`Progress`] observer the caller supplies ([`Silent`] shows nothing).
//! Data flows one way through the modules, top to bottom: [`dataset`] (images, labels, splits)
//! -> [`image_io`] (decode) -> [`preprocess`] (rescale, normalise) -> [`model`] (the network: its
//! [`model::plan`], weights, checkpoints and engines) -> [`descriptor`] (spatial mean, flip
//! average) -> [`extract`] (multi-scale description, in memory or into a store) -> [`store`]
//! (descriptors on disk, joins, exports) -> [`aggregate`] (scales and nets, L2) ->
//! [`mod@neighbours`] (cosine k-NN over a store, exact or by an approximate index). The transfer experiments then go
//! [`metrics`] -> [`svm`] -> [`classifier`] (saved SVMs) -> [`report`] ->
//! [`protocol`] (Caltech and VOC benchmarks, Table 11); [`classify`] is the paper's test-time
//! classification, [`mod@localise`] its object localisation and [`train`] its training recipe. [`util`] and [`error`] serve every layer.
//!
//! ```no_run
//! use vggfeat::{ExtractorParams, Extractor, Image};
//! # fn main() -> vggfeat::Result<()> {
//! let params = ExtractorParams::new()
//!     .weights(["vgg16.safetensors"])
//!     .scales([256, 384, 512])
//!     .check()?;
//! let extractor = Extractor::new(&params)?;
//! let x = extractor.describe(&[Image::from("cat.jpg"), Image::from("dog.png")])?;
//! println!("{} x {}", x.nrows(), x.ncols());
//! # Ok(()) }
//! ```

pub mod aggregate;
pub mod classifier;
pub mod classify;
pub mod dataset;
pub mod descriptor;
pub mod error;
pub mod extract;
pub mod hub;
pub mod image_io;
pub mod imagenet;
pub mod localise;
pub mod metrics;
pub mod model;
pub mod neighbours;
mod param;
pub mod preprocess;
pub mod protocol;
pub mod report;
pub mod store;
pub mod svm;
pub mod train;
pub mod util;

// The jobs and what they return.
pub use classifier::{Classifier, PredictParams, PredictValidParams, Predictions, predict};
pub use classify::{ClassifyParams, ClassifyValidParams, EvalReport, ImageClassifier, Prediction};
pub use extract::{
    Described, ExtractParams, ExtractSummary, ExtractValidParams, Extraction, Extractor,
    ExtractorParams, ExtractorValidParams, Failure,
};
pub use image_io::Image;
pub use localise::{LocaliseParams, LocaliseReport, LocaliseValidParams, localise};
pub use model::{ModelInfo, info};
pub use neighbours::index::{
    IndexMeta, IndexParams, IndexReport, IndexValidParams, Quantization, build_index,
};
pub use neighbours::{
    Approximate, Neighbour, NeighboursParams, NeighboursReport, NeighboursValidParams, Query,
    QueryNeighbours, neighbours,
};
pub use protocol::{
    Benchmark, EvaluateOutcome, EvaluateParams, EvaluateReport, EvaluateValidParams,
    ReproduceParams, ReproduceValidParams, Table11, evaluate, reproduce,
};
pub use store::{
    ExportFormat, ExportParams, ExportSummary, ExportValidParams, Nets, Store, StoreStream, export,
    merge_with as merge,
};
pub use train::{Summary as TrainSummary, TrainParams, TrainValidParams, Trainer};

// The types their parameters take.
pub use aggregate::Aggregate;
pub use dataset::{Dataset, ShardSpec};
pub use error::{Error, Param, Result};
pub use model::config::{ConfigName, LayerName};
pub use model::{DeviceSpec, Engine, Precision, Vgg};
pub use preprocess::{Normalization, Preprocess};
pub use svm::{LinearSvmParams, Loss, Solver};
pub use util::{Choice, Progress, Silent};
