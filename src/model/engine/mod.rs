//! The engines that run a [`Plan`]: each implements the plan's [`Backend`] (a conv step, LRN,
//! max-pool over its own activation type) and [`TensorIo`] (how a batch enters and a map
//! leaves). [`Runner`] is the closed set of engines a [`crate::model::Vgg`] can hold; adding an
//! engine is one more variant and one more pair of impls.
//!
//! - [`candle`]: candle's ops on any device (the reference; cuDNN on CUDA);
//! - [`fast`]: the CPU engine, channels-last, Winograd for 3x3 layers and unfold + GEMM
//!   elsewhere ([`winograd`], [`unfold`]), every product in [`gemm`]'s packed micro-kernels
//!   (f32, bf16 or int8, chosen per CPU by [`isa`]); int8 3x3 layers on AMX as direct
//!   convolutions ([`amx_conv`]).
//!
//! [`unfold`] is also training's: one place owns im2col, col2im and kernel reordering.

/// `body` once per listed value of `q`, as straight-line code (the direct kernels' inner loops:
/// left as loops over up to 26 steps, the compiler keeps them loops, with the accumulators in
/// memory).
macro_rules! unrolled {
    ($q:ident in [$($n:literal),* $(,)?] $body:block) => {
        $({
            let $q: usize = $n;
            $body
        })*
    };
}

mod amx_conv;
pub(crate) mod candle;
pub(crate) mod direct;
pub(crate) mod fast;
pub(crate) mod first_layer;
pub(crate) mod gemm;
pub(crate) mod isa;
mod simd;
pub(crate) mod unfold;
pub(crate) mod winograd;

use std::ops::Range;

use candle_core::{Device, Tensor};

use super::Precision;
use super::params::VggWeights;
use super::plan::{Backend, Plan};
use crate::error::Result;

/// How a [`FeatureMap`]'s values are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// (N, C, H, W): channel planes.
    Nchw,
    /// (N, H, W, C): channels-last, one pixel's channels together.
    Nhwc,
}

/// A layer's output for a batch, on the CPU, in the layout the engine computed it in (so that
/// descriptors can be taken without a transpose).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMap {
    /// Images.
    pub n: usize,
    /// Channels.
    pub channels: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Order of `data`.
    pub layout: Layout,
    /// `n * channels * h * w` values.
    pub data: Vec<f32>,
}

impl FeatureMap {
    /// The values of image `i` (`channels * h * w`, in [`FeatureMap::layout`] order).
    pub fn image(&self, i: usize) -> &[f32] {
        let per = self.channels * self.h * self.w;
        &self.data[i * per..(i + 1) * per]
    }
}

/// How a batch enters an engine and how a result leaves it.
pub trait TensorIo: Backend {
    /// An NCHW float32 batch (on the engine's device) as the engine's activation.
    fn input(&self, x: &Tensor) -> Result<Self::Act>;
    /// An activation as an NCHW tensor on the engine's device.
    fn to_tensor(&self, x: Self::Act) -> Result<Tensor>;
    /// An activation as a CPU [`FeatureMap`].
    fn to_map(&self, x: Self::Act) -> Result<FeatureMap>;
}

/// The engine a network runs on.
#[derive(Debug)]
pub enum Runner {
    /// candle's ops.
    Candle(candle::CandleEngine),
    /// The fast CPU engine.
    Fast(fast::FastEngine),
}

fn tensor<E: TensorIo>(e: &E, plan: &Plan, x: &Tensor, steps: Range<usize>) -> Result<Tensor> {
    e.to_tensor(plan.walk(e, e.input(x)?, steps)?)
}

fn map<E: TensorIo>(e: &E, plan: &Plan, x: &Tensor, steps: Range<usize>) -> Result<FeatureMap> {
    e.to_map(plan.walk(e, e.input(x)?, steps)?)
}

impl Runner {
    /// The candle engine for `w` (whose tensors are on the device it will run on), computing
    /// in `precision`.
    pub fn candle(w: &VggWeights, precision: Precision) -> Result<Self> {
        Ok(Runner::Candle(candle::CandleEngine::new(w, precision)?))
    }

    /// The fast CPU engine; `winograd = false` runs every conv as unfold + GEMM.
    pub fn fast(w: &VggWeights, plan: &Plan, winograd: bool, precision: Precision) -> Result<Self> {
        Ok(Runner::Fast(fast::FastEngine::new(
            w, plan, winograd, precision,
        )?))
    }

    /// Runs `steps` of `plan` on `x`; the result is an NCHW tensor on `device`.
    pub fn tensor(
        &self,
        plan: &Plan,
        x: &Tensor,
        steps: Range<usize>,
        device: &Device,
    ) -> Result<Tensor> {
        let t = match self {
            Runner::Candle(e) => tensor(e, plan, x, steps)?,
            Runner::Fast(e) => tensor(e, plan, x, steps)?,
        };
        Ok(t.to_device(device)?)
    }

    /// Runs `steps` of `plan` on `x`; the result is a CPU map in the engine's layout.
    pub fn map(&self, plan: &Plan, x: &Tensor, steps: Range<usize>) -> Result<FeatureMap> {
        match self {
            Runner::Candle(e) => map(e, plan, x, steps),
            Runner::Fast(e) => map(e, plan, x, steps),
        }
    }
}

/// Throughput (GFLOP/s, 2 per multiply-add) of the fast engine's GEMM in `precision` on this
/// machine: `threads` workers each multiply an (m x k) operand by `copies` packed (k x n)
/// weight matrices in turn (shared by the workers; several copies make them stream from the
/// last-level cache or memory, as a layer's Winograd kernels do), `reps` times. A probe for
/// `examples/bench_gemm.rs`: "% of the limit" figures divide by it.
pub fn gemm_probe(
    precision: Precision,
    (m, n, k): (usize, usize, usize),
    copies: usize,
    threads: usize,
    reps: usize,
) -> Result<f64> {
    use rayon::prelude::*;
    let kernel = isa::kernel_for(precision)?;
    let w: Vec<f32> = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
    let packed: Vec<gemm::PackedB> = (0..copies.max(1))
        .map(|_| gemm::PackedB::new(&w, k, n, kernel))
        .collect();
    let lda = packed[0].lhs_width();
    let run = || {
        (0..threads.max(1)).into_par_iter().for_each(|_| {
            let af = vec![0.5f32; m * lda];
            let ab = vec![half::bf16::from_f32(0.5); m * lda];
            let (aq, qs, ql) = (vec![128u8; m * lda], vec![0.01f32; m], vec![0f32; m]);
            let mut c = vec![0f32; m * n];
            for _ in 0..reps {
                for b in &packed {
                    let a = match kernel {
                        isa::Kernel::Bf16 => gemm::Lhs::Bf16(&ab),
                        isa::Kernel::Int8 => gemm::Lhs::U8 {
                            q: &aq,
                            scale: &qs,
                            lo: &ql,
                        },
                        _ => gemm::Lhs::F32(&af),
                    };
                    gemm::gemm(m, a, lda, b, 0..n, &mut c, n, gemm::Epilogue::NONE);
                }
            }
            std::hint::black_box(&c);
        })
    };
    run();
    let t = std::time::Instant::now();
    run();
    let flops = 2.0 * (m * n * k) as f64 * (reps * packed.len() * threads.max(1)) as f64;
    Ok(flops / t.elapsed().as_secs_f64() / 1e9)
}
