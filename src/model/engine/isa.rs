//! What this CPU can run, decided once per engine: which [`Kernel`] a precision gets, or why it
//! cannot run here.
//!
//! `VGGFEAT_MAX_ISA` caps what is used, as oneDNN's `ONEDNN_MAX_CPU_ISA` does: `portable` (no
//! hand-written SIMD: the `gemm` crate, f32 only), `avx512` (f32 micro-kernels, no bf16 or
//! int8), `avx512-vnni` (f32 and int8 on VNNI, no AMX) or `avx512-bf16` (everything, AMX
//! included; the default). It exists to check the slower paths on a fast CPU
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
    /// u8 x s8 products with i32 accumulation through AVX512-VNNI's `vpdpbusd`.
    Int8,
}

impl Kernel {
    /// Scratch bytes per value of a product's left operand: its f32 form, or its bf16 copy,
    /// or (int8) the f32 it is quantised from and its u8.
    pub fn lhs_bytes(self) -> usize {
        match self {
            Kernel::Bf16 => 2,
            Kernel::Int8 => 5,
            Kernel::F32 | Kernel::Portable => 4,
        }
    }

    /// What the kernel is, for run headers and `stats.json`.
    pub fn describe(self) -> &'static str {
        match self {
            Kernel::Portable => "portable f32 GEMM (gemm crate)",
            Kernel::F32 => "AVX-512F f32 micro-kernels",
            Kernel::Bf16 => "AVX512-BF16 vdpbf16ps, f32 accumulation",
            Kernel::Int8 => {
                "AVX512-VNNI vpdpbusd, i32 accumulation, dynamic per-row u8 activations"
            }
        }
    }
}

/// Instruction-set levels, in order (as caps; what a CPU has is [`Found`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Portable,
    Avx512,
    Avx512Vnni,
    Avx512Bf16,
}

/// What this CPU has: AVX-512F, and on top of it VNNI and BF16 (either may come without the
/// other: Ice Lake has VNNI only).
#[derive(Debug, Clone, Copy)]
struct Found {
    avx512: bool,
    vnni: bool,
    bf16: bool,
}

fn detected() -> Found {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") {
            return Found {
                avx512: true,
                vnni: has!("avx512vnni") && has!("avx512bw"),
                bf16: has!("avx512bf16"),
            };
        }
    }
    Found {
        avx512: false,
        vnni: false,
        bf16: false,
    }
}

fn cap() -> Result<Option<Level>> {
    match std::env::var(MAX_ISA_VAR) {
        Err(_) => Ok(None),
        Ok(v) => match v.as_str() {
            "portable" => Ok(Some(Level::Portable)),
            "avx512" => Ok(Some(Level::Avx512)),
            "avx512-vnni" => Ok(Some(Level::Avx512Vnni)),
            "avx512-bf16" | "" => Ok(Some(Level::Avx512Bf16)),
            _ => Err(Error::Usage(format!(
                "{MAX_ISA_VAR}={v}: expected portable, avx512, avx512-vnni or avx512-bf16"
            ))),
        },
    }
}

/// The kernel `precision` runs on here, or a clear error when this CPU (or `VGGFEAT_MAX_ISA`)
/// does not allow it.
pub fn kernel_for(precision: Precision) -> Result<Kernel> {
    let found = detected();
    let cap = cap()?.unwrap_or(Level::Avx512Bf16);
    match precision {
        Precision::F32 => Ok(if found.avx512 && cap >= Level::Avx512 {
            Kernel::F32
        } else {
            Kernel::Portable
        }),
        Precision::Int8 if found.vnni && cap >= Level::Avx512Vnni => Ok(Kernel::Int8),
        Precision::Int8 => Err(Error::Unsupported(if found.vnni {
            format!(
                "int8 precision needs AVX512-VNNI, which {MAX_ISA_VAR} turns off; unset it \
                 or use f32 or bf16 precision"
            )
        } else {
            "int8 precision needs a CPU with AVX512-VNNI (vpdpbusd: Intel Cascade Lake, Ice \
             Lake, Sapphire Rapids or later, AMD Zen 4 or later); this CPU lacks it: use f32 \
             precision (vggfeat has no emulated int8 path: it would be slower than f32)"
                .to_string()
        })),
        Precision::Bf16 if found.bf16 && cap >= Level::Avx512Bf16 => Ok(Kernel::Bf16),
        Precision::Bf16 => Err(Error::Unsupported(if found.bf16 {
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
    let found = detected();
    if found.avx512 {
        v.push(Kernel::F32);
    } else {
        eprintln!("skipped: Kernel::F32 (this CPU lacks AVX-512F)");
    }
    if found.bf16 {
        v.push(Kernel::Bf16);
    } else {
        eprintln!("skipped: Kernel::Bf16 (this CPU lacks AVX512-BF16)");
    }
    if found.vnni {
        v.push(Kernel::Int8);
    } else {
        eprintln!("skipped: Kernel::Int8 (this CPU lacks AVX512-VNNI)");
    }
    v
}
