//! One file per command: its clap arguments (with `--help` examples), their conversion into the
//! library's parameters, the library call, and what is printed.

pub mod classify;
pub mod export;
pub mod extract;
pub mod info;
pub mod merge;
pub mod predict;
pub mod reproduce;
pub mod svm;
pub mod train;
pub mod weights;

use std::path::Path;

use clap::Args;

use crate::choice::{Choice, EngineArg, PrecisionArg, PreprocessArg, lib_parser};
use vggfeat::model::{DeviceSpec, Engine, Precision, RunOptions, Vgg};
use vggfeat::preprocess::Normalization;

/// Where and how the network runs (shared by the commands that run one).
#[derive(Args, Debug, Clone)]
pub struct RunOpts {
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value_t = DeviceSpec::default(), value_parser = lib_parser::<DeviceSpec>)]
    pub device: DeviceSpec,
    /// Implementation.
    #[arg(long, default_value_t = EngineArg::of(Engine::default()), value_parser = Choice::<EngineArg>::new())]
    pub engine: EngineArg,
    /// Arithmetic of the convolutions: bf16 rounds weights and activations to bf16 in the
    /// products (f32 accumulation): about twice as fast on CPUs with AVX512-BF16, descriptors
    /// within about 1e-2 relative of f32's.
    #[arg(long, default_value_t = PrecisionArg::of(Precision::default()), value_parser = Choice::<PrecisionArg>::new())]
    pub precision: PrecisionArg,
    /// Input convention: auto = the checkpoint's metadata, else torchvision.
    #[arg(long, default_value_t = PreprocessArg::Auto, value_parser = Choice::<PreprocessArg>::new())]
    pub preprocess: PreprocessArg,
}

impl RunOpts {
    /// The engine and precision.
    pub fn options(&self) -> RunOptions {
        RunOptions {
            engine: self.engine.into(),
            precision: self.precision.into(),
        }
    }

    /// Loads one checkpoint onto the device with the engine and precision, and resolves the
    /// input convention.
    pub fn load(&self, weights: &Path) -> vggfeat::Result<(Vgg, Normalization)> {
        let net = Vgg::load_with(weights, &self.device.open()?, self.options())?;
        let norm = match Option::<Normalization>::from(self.preprocess) {
            Some(n) => n,
            None => vggfeat::model::expected_normalization(net.weights())?.0,
        };
        Ok((net, norm))
    }
}
