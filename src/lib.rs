//! # vggfeat
//!
//! Very deep convolutional networks (Simonyan & Zisserman, ICLR 2015, configurations A to E) as a
//! transfer-learning tool: load pretrained VGG checkpoints (torchvision or timm names,
//! safetensors or PyTorch `.pth`), run them densely over images at several scales with a
//! fully-convolutional head, turn a layer's maps into the paper's image descriptors, and train
//! linear SVMs on them.
//!
//! Data flows one way through the modules, top to bottom: [`dataset`] (images, labels, splits)
//! -> [`image_io`] (decode) -> [`preprocess`] (rescale, normalise) -> [`model`] (the network: its
//! [`model::plan`], weights, checkpoints and engines) -> [`descriptor`] (spatial mean, flip
//! average) -> [`extract`] (multi-scale extraction over a dataset) -> [`store`] (descriptors on
//! disk, joins, exports) -> [`aggregate`] (scales and nets, L2). The transfer experiments then go
//! [`metrics`] (VOC AP, mean class recall, top-k error) -> [`svm`] (linear SVMs, `C` chosen on a
//! hold-out) -> [`classifier`] (trained SVMs saved with what they take) -> [`report`] (tables and plots) -> [`protocol`] (Caltech and VOC benchmarks, the
//! paper's Table 11); [`classify`] is the dense test protocol and [`train`] the paper's training
//! recipe. [`util`] and [`error`] serve every layer.
//!
//! The types a user needs are re-exported here.
//!
//! ```no_run
//! use vggfeat::{ExtractParams, Extractor, NetEntry, Vgg};
//! # fn main() -> vggfeat::Result<()> {
//! let net = Vgg::load("vgg16.safetensors".as_ref(), &candle_core::Device::Cpu)?;
//! println!("configuration {}, descriptor layer {}", net.config(), net.default_layer());
//! let extractor = Extractor::new(vec![NetEntry::new(net, None, None)?])?;
//! # let _ = (extractor, ExtractParams::default());
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
pub mod metrics;
pub mod model;
pub mod preprocess;
pub mod protocol;
pub mod report;
pub mod store;
pub mod svm;
pub mod train;
pub mod util;

pub use aggregate::Aggregate;
pub use classifier::Classifier;
pub use dataset::{Dataset, SplitParams};
pub use error::{Error, Result};
pub use extract::{ExtractParams, Extractor, NetEntry};
pub use model::{Engine, Precision, RunOptions, Vgg, VggWeights};
pub use protocol::{SvmRequest, run_svm};
pub use store::{Store, StoreWriter};
pub use svm::{LinearSvmParams, SelectCParams};
pub use train::{TrainParams, Trainer};
