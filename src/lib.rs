//! # vggfeat
//!
//! Very deep convolutional networks (Simonyan & Zisserman, ICLR 2015, configurations A to E) as a
//! transfer-learning tool: load pretrained VGG checkpoints (torchvision or timm names,
//! safetensors or PyTorch `.pth`), run them densely over images at several scales with a
//! fully-convolutional head, and turn the penultimate layer into image descriptors.
//!
//! Data flows one way through the modules, top to bottom: [`dataset`] (list images, labels and
//! splits) -> [`image_io`] (decode) -> [`preprocess`] (rescale, normalise) -> [`model`] (the
//! network) -> [`extract`] (dense multi-scale descriptors) -> [`store`] (on disk) ->
//! [`aggregate`] (scales and nets, L2). The transfer experiments then go [`metrics`] (pure
//! evaluation measures: VOC AP, mean class recall) -> [`svm`] (linear SVMs, `C` chosen by a
//! metric on a hold-out) -> [`report`] (tables and plots) -> [`protocol`] (Caltech and VOC
//! benchmarks from a store to a results folder), and [`classify`] (the dense test protocol) ->
//! [`train`] (the paper's training recipe, fine-tuning, resuming).
//!
//! ```no_run
//! use vggfeat::model::{Vgg, config::LayerName};
//! # fn main() -> vggfeat::Result<()> {
//! let net = Vgg::load("vgg16.safetensors".as_ref(), &candle_core::Device::Cpu)?;
//! println!("configuration {}, descriptor layer {}", net.config(), net.default_layer());
//! # Ok(()) }
//! ```

pub mod aggregate;
pub mod classify;
pub mod dataset;
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
pub mod reproduce;
pub mod store;
pub mod svm;
pub mod train;

pub use error::{Error, Result};
