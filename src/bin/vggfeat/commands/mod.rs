//! One file per command: its clap arguments (with `--help` examples), their conversion into the
//! library's checked parameters (`TryFrom`), the one library call, and what is printed.

pub mod classify;
pub mod export;
pub mod extract;
pub mod index;
pub mod info;
pub mod localise;
pub mod merge;
pub mod neighbours;
pub mod predict;
pub mod reproduce;
pub mod svm;
pub mod train;
pub mod weights;

use clap::Args;

use crate::choice::{Choice, lib_parser};
use vggfeat::{DeviceSpec, Engine, Precision, Preprocess};

/// Where and how the network runs (shared by the commands that run one).
#[derive(Args, Debug, Clone)]
pub struct RunOpts {
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value_t = DeviceSpec::default(), value_parser = lib_parser::<DeviceSpec>)]
    pub device: DeviceSpec,
    /// Implementation.
    #[arg(long, default_value_t = Engine::default(), value_parser = Choice::<Engine>::new())]
    pub engine: Engine,
    /// Arithmetic of the convolutions: bf16 rounds weights and activations to bf16 in the
    /// products (f32 accumulation): about twice as fast on CPUs with AVX512-BF16, descriptors
    /// within about 1e-2 relative of f32's.
    #[arg(long, default_value_t = Precision::default(), value_parser = Choice::<Precision>::new())]
    pub precision: Precision,
    /// Input convention: auto = the checkpoint's metadata, else torchvision.
    #[arg(long, default_value_t = Preprocess::Auto, value_parser = Choice::<Preprocess>::new())]
    pub preprocess: Preprocess,
}
