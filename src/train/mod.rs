//! Training VGG networks with the paper's recipe (Section 3.1): from scratch, from a shallower
//! trained net, or fine-tuning a pretrained one; and resuming any of these exactly.
//!
//! The recipe: mini-batch SGD with momentum 0.9 and weight decay 5e-4 ([`optim`]), dropout 0.5
//! after fc6 and fc7, learning rate 1e-2 divided by 10 when the validation accuracy stops
//! improving and stopping after the third decrease (`schedule`), batches of 256 made of
//! micro-batches by gradient accumulation, and augmentation by scale (fixed or jittered),
//! random crop, horizontal flip and AlexNet's colour shift (`augment`). Each epoch ends with
//! the validation top-1 and top-5 errors under the paper's dense test protocol (the same
//! [`crate::classify::class_probs`] that `vggfeat classify` uses) and a checkpoint
//! (`checkpoint`); the run folder has the split, parameters, metrics CSV and plot (`log`).
//! Two options leave the recipe, for heads on frozen features far from ImageNet's scale
//! (results/localisation): Adam instead of SGD (`optimizer`), and fc6 on the square root of
//! pool5 (`fc6_input`, [`crate::model::Fc6Input`]).
//!
//! Files: `params` (what a run is asked and what it resolved to), `trainer` (starting,
//! resuming, saving), `epoch` (one epoch: training pass and validation), `cache` (a frozen
//! prefix's outputs, computed once per image and augmentation variant), `rng` (the random
//! streams), [`net`] (the trainable network over the shared [`crate::model::plan`]), `conv`
//! (its CPU convolution), [`optim`], `schedule`, `augment`, `checkpoint`, `log`.
//!
//! Inputs are square crops of side `crop = 32 k`; fc6 is a k x k convolution over pool5 (7x7 at
//! the paper's 224). Narrow, small-crop networks (`width_div`, `crop`) run the same code path.
//!
//! Randomness: every random draw comes from a ChaCha8 stream whose 32-byte seed is
//! `SHA-256("vggfeat-train" || purpose || 0 || seed LE || a LE || b LE)` (`stream`): the
//! epoch's order (`order`, epoch), each sample's augmentation (`augment`, epoch, image), each
//! micro-batch's dropout masks (`dropout`, epoch, micro-batch), the colour PCA's images
//! (`pca`); with a frozen cache, each cached variant's augmentation (`variant`, image, variant)
//! and the variant each epoch trains on (`pick`, epoch, image). The random initial weights come from
//! [`crate::model::VggWeights::random_with_fc6`] with the seed.
//! There is therefore no generator state to save: the seed and the epoch counter determine the
//! rest, and a resumed run computes exactly what an uninterrupted one would.
//!
//! On the CPU, the steps run on the fast backend (`backprop`: the inference engine's Winograd
//! and packed-GEMM kernels, forward and backward; [`net::TrainNet::set_engine`]); candle's
//! autograd with the GEMM-based convolution of `conv` is the reference and the CUDA path. Each
//! step allocates its activations and gradients afresh; [`keep_freed_memory`] (which `vggfeat
//! train` calls) stops glibc from returning them to the kernel between steps, which otherwise
//! faults every page in again (about 1.4x slower steps for A /8 at crop 96).
//!
//! ```no_run
//! # fn main() -> vggfeat::Result<()> {
//! use vggfeat::train::{TrainParams, Trainer};
//! use vggfeat::util::Silent;
//! let params = TrainParams::new()
//!     .data("101_ObjectCategories")
//!     .out("runs/a16")
//!     .config(Some("A".parse()?))
//!     .width_div(16)
//!     .crop(96)
//!     .scale("112:144".parse()?)
//!     .batch(64)
//!     .epochs(10)
//!     .check()?;
//! let mut t = Trainer::start(&params)?;
//! let summary = t.run(&Silent, |m| println!("epoch {}: top-1 error {:.3}", m.epoch, m.val_top1_err))?;
//! println!("best top-1 error {:.3}", summary.best_top1_err);
//! # Ok(()) }
//! ```

mod augment;
mod backprop;
mod cache;
mod checkpoint;
mod conv;
mod epoch;
mod localise;
mod log;
mod loss;
pub mod net;
pub mod optim;
mod params;
mod rng;
mod schedule;
mod trainer;

pub use augment::TrainScale;
pub use checkpoint::{RunDir, RunState};
pub use log::EpochMetrics;
pub use loss::Targets;
pub use net::{Backprop, Features, Init};
pub use params::{Resolved, RunRecord, Summary, Task, TrainParams, TrainValidParams};
pub use schedule::Plateau;
pub use trainer::Trainer;

/// Keeps the memory that training steps free inside the process for the next step (glibc only;
/// elsewhere a no-op): allocations up to 32 MiB (glibc's largest threshold) come from the heap
/// rather than fresh `mmap`s, and the heap is never trimmed. Each step frees and allocates the
/// same sizes again, so the process's peak is unchanged; what it saves is zeroing and
/// faulting in every page anew. Call once, before training.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before the training threads
    // allocate (and glibc serialises it with allocations anyway).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
