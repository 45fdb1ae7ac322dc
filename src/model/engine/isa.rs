//! What this CPU can run, decided once per engine: which [`Kernel`] a precision gets, or why it
//! cannot run here.
//!
//! `VGGFEAT_MAX_ISA` caps what is used, as oneDNN's `ONEDNN_MAX_CPU_ISA` does: `portable` (no
//! hand-written SIMD: the `gemm` crate, f32 only), `avx512` (f32 micro-kernels, no bf16) or
//! `avx512-bf16` (everything; the default). It exists to check the slower paths on a fast CPU
//! and to reproduce another machine's behaviour.

use crate::error::{Error, Result};
use crate::model::Precision;

/// The environment variable that caps the instruction sets used.
pub const MAX_ISA_VAR: &str = "VGGFEAT_MAX_ISA";

/// The GEMM kernel a precision runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// f32 through the `gemm` crate (any CPU).
    Portable,
    /// f32 through the AVX-512F micro-kernel.
    F32,
    /// bf16 products with f32 accumulation through AVX512-BF16's `vdpbf16ps`.
    Bf16,
}

impl Kernel {
    /// What the kernel is, for run headers and `stats.json`.
    pub fn describe(self) -> &'static str {
        match self {
            Kernel::Portable => "portable f32 GEMM (gemm crate)",
            Kernel::F32 => "AVX-512F f32 micro-kernels",
            Kernel::Bf16 => "AVX512-BF16 vdpbf16ps, f32 accumulation",
        }
    }
}

/// Instruction-set levels, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Portable,
    Avx512,
    Avx512Bf16,
}

fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            if std::arch::is_x86_feature_detected!("avx512bf16") {
                return Level::Avx512Bf16;
            }
            return Level::Avx512;
        }
    }
    Level::Portable
}

fn cap() -> Result<Option<Level>> {
    match std::env::var(MAX_ISA_VAR) {
        Err(_) => Ok(None),
        Ok(v) => match v.as_str() {
            "portable" => Ok(Some(Level::Portable)),
            "avx512" => Ok(Some(Level::Avx512)),
            "avx512-bf16" | "" => Ok(Some(Level::Avx512Bf16)),
            _ => Err(Error::Usage(format!(
                "{MAX_ISA_VAR}={v}: expected portable, avx512 or avx512-bf16"
            ))),
        },
    }
}

/// The kernel `precision` runs on here, or a clear error when this CPU (or `VGGFEAT_MAX_ISA`)
/// does not allow it.
pub fn kernel_for(precision: Precision) -> Result<Kernel> {
    let found = detected();
    let level = match cap()? {
        Some(c) => c.min(found),
        None => found,
    };
    match precision {
        Precision::F32 => Ok(if level >= Level::Avx512 {
            Kernel::F32
        } else {
            Kernel::Portable
        }),
        Precision::Bf16 if level >= Level::Avx512Bf16 => Ok(Kernel::Bf16),
        Precision::Bf16 => Err(Error::Unsupported(if found >= Level::Avx512Bf16 {
            format!(
                "bf16 precision needs AVX512-BF16, which {MAX_ISA_VAR} turns off; unset it \
                 or use f32 precision"
            )
        } else {
            "bf16 precision needs a CPU with AVX512-BF16 (vdpbf16ps: Intel Cooper Lake, \
             Sapphire Rapids or later, AMD Zen 4 or later); this CPU lacks it: use f32 precision"
                .to_string()
        })),
    }
}

/// Every kernel this CPU can run (for tests that check each against a reference). The kernels
/// it cannot run are named on stderr (`cargo test` shows it), so that a test over fewer kernels
/// says so instead of passing silently.
#[cfg(test)]
pub fn available() -> Vec<Kernel> {
    let mut v = vec![Kernel::Portable];
    let level = detected();
    if level >= Level::Avx512 {
        v.push(Kernel::F32);
    } else {
        eprintln!("skipped: Kernel::F32 (this CPU lacks AVX-512F)");
    }
    if level >= Level::Avx512Bf16 {
        v.push(Kernel::Bf16);
    } else {
        eprintln!("skipped: Kernel::Bf16 (this CPU lacks AVX512-BF16)");
    }
    v
}
