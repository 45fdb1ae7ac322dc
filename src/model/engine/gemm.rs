//! The fast engine's matrix product: `C (m x n, f32) = A (m x k) * B (k x n)` with B (the
//! weights) packed once, when the engine is built, into panels of [`NR`] columns laid out for a
//! register-blocked micro-kernel, and A (activations: unfolded patches, Winograd-domain tiles)
//! read in place, row-major. Every conv of the fast engine ends up here: the Winograd products
//! of the 3x3 layers and the unfold + GEMM of conv1_1 and the head.
//!
//! Four kernels, chosen once per engine ([`Isa`]):
//! - [`Kernel::Int8`]: AVX512-VNNI's `vpdpbusd` (four u8 x s8 products per 32-bit lane,
//!   accumulated in i32): B quantised once per column (symmetric, s8, packed as k-quads
//!   `[k/4][NR][4]`), A quantised per row (asymmetric, u8: `lo + scale * q`, see
//!   [`quantize_rows`]); the dequantisation (`sw * (scale * acc + lo * colsum)`), bias and
//!   ReLU are fused into the micro-kernel's store; twice the bf16 rate;
//!   On CPUs with AMX-INT8 (Intel Sapphire Rapids and later) whole 32-row blocks run on the
//!   tile unit instead (`tdpbusd`: a 16 x 64 by 64 x 16 product per instruction, on the same
//!   packed B, whose k-quad panels are AMX's B-tile layout), the rest on `vpdpbusd`;
//! - [`Kernel::Bf16`]: AVX512-BF16's `vdpbf16ps` (two bf16 products per f32 lane, accumulated
//!   in f32): A and B in bf16, B packed as k-pairs `[k/2][NR][2]`; about twice the f32 rate;
//! - [`Kernel::F32`]: an AVX-512F FMA micro-kernel on f32 panels `[k][NR]`;
//! - [`Kernel::Portable`]: the `gemm` crate (any CPU) on a row-major B.
//!
//! The AVX-512 micro-kernels are written by hand (`std::arch`) because no maintained crate
//! offers a bf16 dot-product GEMM on the CPU, nor one that takes pre-packed weights; each
//! computes an [`MR`] x [`NR`] block of C in 24 zmm accumulators, the shape that runs at 95 % of
//! the core's peak on Zen 4 (`examples/bench_gemm.rs` measures it). Accumulation is always f32.
//! Callers split the work across threads; one call runs on the calling thread.

use std::ops::Range;

use half::bf16;
use rayon::prelude::*;

use super::isa::Kernel;

/// Rows of C per micro-kernel call.
pub const MR: usize = 6;
/// Columns per packed panel (4 zmm of f32).
pub const NR: usize = 64;
/// Depth of one pass over k (elements): the B block of a pass (`KC x NR`) stays in L2.
const KC: usize = 512;

/// A weight matrix B (k x n) packed for one [`Kernel`].
#[derive(Debug)]
pub struct PackedB {
    k: usize,
    n: usize,
    data: Packed,
}

#[derive(Debug)]
enum Packed {
    /// Row-major (k x n), for the `gemm` crate.
    RowMajor(Vec<f32>),
    /// Panels of NR columns, each `[k][NR]`, zero-padded columns.
    F32(Vec<f32>),
    /// Panels of NR columns, each `[k/2][NR][2]` (k-pairs together), zero-padded.
    Bf16(Vec<bf16>),
    /// Panels of NR columns, each `[k/4][NR][4]` (k-quads together), zero-padded, with each
    /// column's scale and the sum of its quantised values (both padded to whole panels).
    Int8 {
        q: Vec<i8>,
        scale: Vec<f32>,
        colsum: Vec<f32>,
    },
}

/// The left operand: `m` rows of [`PackedB::lhs_width`] values at stride `lda`, in the packed
/// matrix's element type.
#[derive(Debug, Clone, Copy)]
pub enum Lhs<'a> {
    /// f32 rows (kernels [`Kernel::F32`] and [`Kernel::Portable`]).
    F32(&'a [f32]),
    /// bf16 rows (kernel [`Kernel::Bf16`]); an odd k is padded with a zero column.
    Bf16(&'a [bf16]),
    /// Quantised rows (kernel [`Kernel::Int8`]): row r stands for `lo[r] + scale[r] * q`
    /// ([`quantize_rows`]); k is padded to a multiple of 4 (the padding's values do not
    /// matter: B's padding rows are zero).
    U8 {
        /// The quantised values.
        q: &'a [u8],
        /// Each row's step.
        scale: &'a [f32],
        /// Each row's offset (its smallest value).
        lo: &'a [f32],
    },
}

/// What C holds before the product is added, and what happens after.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// Added to every row (length n), or zero.
    pub bias: Option<&'a [f32]>,
    /// ReLU on the result.
    pub relu: bool,
}

impl Epilogue<'_> {
    /// C = A B.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        relu: false,
    };
}

impl PackedB {
    /// Packs a conv kernel `w4` (cout, cin, k, k) as the (k*k*cin, cout) matrix whose row
    /// `(ky*k + kx)*cin + ci` multiplies unfolded patches (see `unfold::kernel_rows`), for
    /// `kernel`, without a row-major copy in between (fc6's is 400 MB); panels in parallel.
    pub fn from_conv(w4: &[f32], cout: usize, cin: usize, kk: usize, kernel: Kernel) -> Self {
        let k = kk * cin;
        assert_eq!(w4.len(), cout * k);
        let panels = cout.div_ceil(NR);
        // Source rows (co) are read in order; each panel's destination is its own block.
        let fill = |p: usize, put: &mut dyn FnMut(usize, usize, f32)| {
            for j in 0..NR.min(cout - p * NR) {
                let src = &w4[(p * NR + j) * k..(p * NR + j + 1) * k];
                for ci in 0..cin {
                    for t in 0..kk {
                        put(t * cin + ci, j, src[ci * kk + t]);
                    }
                }
            }
        };
        let data = match kernel {
            Kernel::Portable => Packed::RowMajor(super::unfold::kernel_rows(w4, cout, cin, kk)),
            Kernel::F32 => {
                let mut d = vec![0f32; panels * k * NR];
                d.par_chunks_mut(k * NR).enumerate().for_each(|(p, d)| {
                    fill(p, &mut |row, j, v| d[row * NR + j] = v);
                });
                Packed::F32(d)
            }
            Kernel::Bf16 => {
                let kp = k.div_ceil(2);
                let mut d = vec![bf16::ZERO; panels * kp * NR * 2];
                d.par_chunks_mut(kp * NR * 2)
                    .enumerate()
                    .for_each(|(p, d)| {
                        fill(p, &mut |row, j, v| {
                            d[((row / 2) * NR + j) * 2 + row % 2] = bf16::from_f32(v)
                        });
                    });
                Packed::Bf16(d)
            }
            Kernel::Int8 => {
                let scale: Vec<f32> = (0..cout)
                    .map(|co| col_scale(w4[co * k..(co + 1) * k].iter().copied()))
                    .collect();
                pack_int8(k, cout, &scale, |p, put| fill(p, put))
            }
        };
        PackedB { k, n: cout, data }
    }

    /// B (k x n) already in [`Kernel::F32`]'s panels: the entry at each index as
    /// [`f32_panel_entry`] places it, the padding columns zero.
    pub fn from_f32_panels(data: Vec<f32>, k: usize, n: usize) -> Self {
        assert_eq!(data.len(), n.div_ceil(NR) * k * NR, "f32 panels");
        PackedB {
            k,
            n,
            data: Packed::F32(data),
        }
    }

    /// Packs the row-major (k x n) `b` for `kernel`.
    pub fn new(b: &[f32], k: usize, n: usize, kernel: Kernel) -> Self {
        assert_eq!(b.len(), k * n);
        let panels = n.div_ceil(NR);
        let data = match kernel {
            Kernel::Portable => Packed::RowMajor(b.to_vec()),
            Kernel::F32 => {
                let mut d = vec![0f32; panels * k * NR];
                for p in 0..panels {
                    let cols = p * NR..((p + 1) * NR).min(n);
                    for kk in 0..k {
                        let dst = &mut d[(p * k + kk) * NR..][..cols.len()];
                        dst.copy_from_slice(&b[kk * n + cols.start..kk * n + cols.end]);
                    }
                }
                Packed::F32(d)
            }
            Kernel::Bf16 => {
                let kp = k.div_ceil(2);
                let mut d = vec![bf16::ZERO; panels * kp * NR * 2];
                for p in 0..panels {
                    for kk in 0..k {
                        for j in 0..NR.min(n - p * NR) {
                            let v = b[kk * n + p * NR + j];
                            d[((p * kp + kk / 2) * NR + j) * 2 + kk % 2] = bf16::from_f32(v);
                        }
                    }
                }
                Packed::Bf16(d)
            }
            Kernel::Int8 => {
                let scale: Vec<f32> = (0..n)
                    .map(|j| col_scale((0..k).map(|kk| b[kk * n + j])))
                    .collect();
                pack_int8(k, n, &scale, |p, put| {
                    for kk in 0..k {
                        for j in 0..NR.min(n - p * NR) {
                            put(kk, j, b[kk * n + p * NR + j]);
                        }
                    }
                })
            }
        };
        PackedB { k, n, data }
    }

    /// The length each row of A must have: k, or k rounded up to even (zero-padded) for bf16.
    pub fn lhs_width(&self) -> usize {
        match self.data {
            Packed::Bf16(_) => self.k.next_multiple_of(2),
            Packed::Int8 { .. } => int8_quads(self.k) * 4,
            _ => self.k,
        }
    }

    /// An int8 matrix's packed k-quad panels, per-column steps and sums (both padded to whole
    /// panels); None for the other kernels.
    pub(crate) fn int8_parts(&self) -> Option<(&[i8], &[f32], &[f32])> {
        match &self.data {
            Packed::Int8 { q, scale, colsum } => Some((q, scale, colsum)),
            _ => None,
        }
    }

    /// The kernel the matrix is packed for.
    pub fn kernel(&self) -> Kernel {
        match self.data {
            Packed::RowMajor(_) => Kernel::Portable,
            Packed::F32(_) => Kernel::F32,
            Packed::Bf16(_) => Kernel::Bf16,
            Packed::Int8 { .. } => Kernel::Int8,
        }
    }
}

/// The (row, column) of index `i` of a (k x n) matrix's [`Kernel::F32`] panels (`[n / NR][k][NR]`),
/// or None for a padding column.
pub(crate) fn f32_panel_entry(k: usize, n: usize, i: usize) -> Option<(usize, usize)> {
    let (p, rem) = (i / (k * NR), i % (k * NR));
    let col = p * NR + rem % NR;
    (col < n).then_some((rem / NR, col))
}

/// The k-quads of an int8 B of depth `k`: k padded to a multiple of 64, the depth of one AMX
/// tile (the padding rows are zero, so any values of A there add nothing).
pub(crate) fn int8_quads(k: usize) -> usize {
    k.next_multiple_of(64) / 4
}

/// The symmetric int8 step of a column: its largest magnitude over 127 (1 for a zero column).
fn col_scale(v: impl Iterator<Item = f32>) -> f32 {
    let m = v.fold(0f32, |m, x| m.max(x.abs()));
    if m > 0.0 { m / 127.0 } else { 1.0 }
}

/// Packs an int8 B of `k` rows and `n` columns with per-column steps `scale`: `fill(p, put)`
/// calls `put(row, j, value)` for the values of panel p (column p * NR + j), in any order.
fn pack_int8(
    k: usize,
    n: usize,
    scale: &[f32],
    fill: impl Fn(usize, &mut dyn FnMut(usize, usize, f32)) + Sync,
) -> Packed {
    let panels = n.div_ceil(NR);
    let kq = int8_quads(k);
    let mut q = vec![0i8; panels * kq * NR * 4];
    let mut colsum = vec![0f32; panels * NR];
    q.par_chunks_mut(kq * NR * 4)
        .zip(colsum.par_chunks_mut(NR))
        .enumerate()
        .for_each(|(p, (d, cs))| {
            let mut sums = [0i64; NR];
            fill(p, &mut |row, j, v| {
                let x = (v / scale[p * NR + j])
                    .round_ties_even()
                    .clamp(-127.0, 127.0) as i8;
                d[((row / 4) * NR + j) * 4 + row % 4] = x;
                sums[j] += i64::from(x);
            });
            for (c, s) in cs.iter_mut().zip(sums) {
                *c = s as f32;
            }
        });
    let mut sc = vec![0f32; panels * NR];
    sc[..n].copy_from_slice(scale);
    Packed::Int8 {
        q,
        scale: sc,
        colsum,
    }
}

/// The rows a caller should hand the GEMM at once in multiples of, for `kernel`: 32 for int8 on
/// a CPU with AMX-INT8 (whose tiles take whole 32-row blocks; a rest runs on VNNI, several
/// times slower), else [`MR`].
pub fn row_block(kernel: Kernel) -> usize {
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Int8 && x86::amx_ready() {
        return 32;
    }
    let _ = kernel;
    MR
}

/// Quantises `rows` rows of `k` f32 values (`src`, rows `lds` apart) to u8 rows of `ld >= k`
/// values in `q` (the padding zeroed), each row as `lo + scale * q` with `lo` its smallest
/// value and `scale` its range over 255, rounding to nearest (ties to even): the left operand
/// of [`Kernel::Int8`], quantised as it enters the product (dynamic: no calibration).
#[allow(clippy::too_many_arguments)]
pub fn quantize_rows(
    src: &[f32],
    lds: usize,
    k: usize,
    rows: usize,
    q: &mut [u8],
    ld: usize,
    scale: &mut [f32],
    lo: &mut [f32],
) {
    assert!(rows == 0 || src.len() >= (rows - 1) * lds + k);
    assert!(q.len() >= rows * ld && ld >= k && scale.len() >= rows && lo.len() >= rows);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        for r in 0..rows {
            let (s, d) = (&src[r * lds..r * lds + k], &mut q[r * ld..(r + 1) * ld]);
            // SAFETY: AVX-512F is present; `s` and `d` are the row's slices.
            (scale[r], lo[r]) = unsafe { x86::quantize_row(s, d) };
        }
        return;
    }
    for r in 0..rows {
        let (s, d) = (&src[r * lds..r * lds + k], &mut q[r * ld..(r + 1) * ld]);
        (scale[r], lo[r]) = quantize_row(s, d);
    }
}

/// One row of [`quantize_rows`], without SIMD (the reference the AVX-512 version is tested
/// against).
fn quantize_row(s: &[f32], d: &mut [u8]) -> (f32, f32) {
    let lo = s.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (lo, hi) = if s.is_empty() { (0.0, 0.0) } else { (lo, hi) };
    let (step, inv) = steps(lo, hi);
    for (o, v) in d.iter_mut().zip(s) {
        *o = ((v - lo) * inv).round_ties_even().clamp(0.0, 255.0) as u8;
    }
    d[s.len()..].fill(0);
    (step, lo)
}

/// The step of a row whose values span `lo ..= hi` and its inverse (both 0 for a constant row,
/// which then quantises to 0s standing for `lo`).
fn steps(lo: f32, hi: f32) -> (f32, f32) {
    let range = hi - lo;
    if range > 0.0 && range.is_finite() {
        (range / 255.0, 255.0 / range)
    } else {
        (0.0, 0.0)
    }
}

/// `C[r][j - cols.start] = epilogue(A[r] . B[:, j])` for rows `0..m` and columns `cols` of B
/// (`cols.start` a multiple of [`NR`]). A has `m` rows of `b.lhs_width()` values at stride
/// `lda`; C's rows are `ldc` apart. Runs on the calling thread.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    a: Lhs,
    lda: usize,
    b: &PackedB,
    cols: Range<usize>,
    c: &mut [f32],
    ldc: usize,
    epi: Epilogue,
) {
    if m == 0 || cols.is_empty() {
        return;
    }
    assert!(c.len() >= (m - 1) * ldc + cols.len(), "C too small");
    // SAFETY: C covers m rows of the block at stride ldc (asserted) and is a unique borrow.
    unsafe { gemm_ptr(m, a, lda, b, cols, c.as_mut_ptr(), ldc, epi) }
}

/// [`gemm`] into a C behind a pointer, so that threads can fill disjoint column blocks of the
/// same rows.
///
/// # Safety
/// `c` must be valid for writes of `m` rows of `cols.len()` floats at stride `ldc`, and no
/// other thread may touch those elements during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_ptr(
    m: usize,
    a: Lhs,
    lda: usize,
    b: &PackedB,
    cols: Range<usize>,
    c: *mut f32,
    ldc: usize,
    epi: Epilogue,
) {
    if m == 0 || cols.is_empty() {
        return;
    }
    assert!(
        cols.end <= b.n && cols.start.is_multiple_of(NR),
        "bad column range"
    );
    assert!(lda >= b.lhs_width());
    if let Some(bias) = epi.bias {
        assert!(bias.len() >= b.n);
    }
    // SAFETY (all arms): C as the caller promises; A bounded by the asserts in each arm; the
    // AVX-512 arms are reached only with panels packed for a kernel the CPU has (isa.rs).
    unsafe {
        match (&b.data, a) {
            (Packed::RowMajor(w), Lhs::F32(a)) => {
                assert!(a.len() >= (m - 1) * lda + b.k);
                portable(m, a, lda, b.k, b.n, w, cols, c, ldc, epi)
            }
            #[cfg(target_arch = "x86_64")]
            (Packed::F32(w), Lhs::F32(a)) => {
                assert!(a.len() >= (m - 1) * lda + b.k);
                x86::drive_f32(m, a, lda, b.k, w, cols, c, ldc, epi)
            }
            #[cfg(target_arch = "x86_64")]
            (Packed::Bf16(w), Lhs::Bf16(a)) => {
                assert!(a.len() >= (m - 1) * lda + b.lhs_width());
                x86::drive_bf16(m, a, lda, b.k.div_ceil(2), w, cols, c, ldc, epi)
            }
            #[cfg(target_arch = "x86_64")]
            (
                Packed::Int8 { q, scale, colsum },
                Lhs::U8 {
                    q: a,
                    scale: sa,
                    lo,
                },
            ) => {
                assert!(a.len() >= (m - 1) * lda + b.lhs_width());
                assert!(sa.len() >= m && lo.len() >= m);
                let deq = x86::Deq {
                    row_scale: sa.as_ptr(),
                    row_lo: lo.as_ptr(),
                    col_scale: scale.as_ptr(),
                    col_sum: colsum.as_ptr(),
                };
                let kq = int8_quads(b.k);
                // Whole 32-row blocks on AMX where there is one, the rest on VNNI.
                let tiled = if x86::amx_ready() { m / 32 * 32 } else { 0 };
                if tiled > 0 {
                    x86::drive_amx(tiled, a, lda, kq, q, cols.clone(), c, ldc, epi, deq);
                }
                if tiled < m {
                    let deq = x86::Deq {
                        row_scale: sa[tiled..].as_ptr(),
                        row_lo: lo[tiled..].as_ptr(),
                        ..deq
                    };
                    let c = c.add(tiled * ldc);
                    x86::drive_int8(
                        m - tiled,
                        &a[tiled * lda..],
                        lda,
                        kq,
                        q,
                        cols,
                        c,
                        ldc,
                        epi,
                        deq,
                    )
                }
            }
            _ => panic!("left operand of the wrong precision for the packed weights"),
        }
    }
}

/// Rows of `k` f32 values (`src`, contiguous) as bf16 rows of `ld >= k` values in `dst`, the
/// padding zeroed.
pub fn to_bf16_rows(src: &[f32], k: usize, dst: &mut [bf16], ld: usize) {
    for (s, d) in src.chunks_exact(k).zip(dst.chunks_exact_mut(ld)) {
        for (o, v) in d.iter_mut().zip(s) {
            *o = bf16::from_f32(*v);
        }
        d[k..].fill(bf16::ZERO);
    }
}

/// The `gemm` crate's product on a column block of a row-major B.
///
/// # Safety
/// As [`gemm_ptr`].
#[allow(clippy::too_many_arguments)]
unsafe fn portable(
    m: usize,
    a: &[f32],
    lda: usize,
    k: usize,
    n: usize,
    w: &[f32],
    cols: Range<usize>,
    c: *mut f32,
    ldc: usize,
    epi: Epilogue,
) {
    let width = cols.len();
    // SAFETY: C as the caller promises.
    let row = |r: usize| unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), width) };
    for r in 0..m {
        match epi.bias {
            Some(b) => row(r).copy_from_slice(&b[cols.clone()]),
            None => row(r).fill(0.0),
        }
    }
    // SAFETY: A is m x k at stride lda, B's column block is k x width at stride n, C is
    // m x width at stride ldc, all inside their buffers; C aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            width,
            k,
            c,
            1,
            ldc as isize,
            true,
            a.as_ptr(),
            1,
            lda as isize,
            w.as_ptr().add(cols.start),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    if epi.relu {
        for r in 0..m {
            for v in row(r) {
                *v = v.max(0.0);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! The AVX-512 micro-kernels and their drivers.
    use std::arch::x86_64::*;
    use std::ops::Range;

    use half::bf16;

    use super::{Epilogue, KC, MR, NR};

    /// The int8 dequantisation of a product: per-row steps and offsets of A (indexed from the
    /// product's first row), per-column steps and sums of B (whole panels).
    #[derive(Clone, Copy)]
    pub(super) struct Deq {
        pub row_scale: *const f32,
        pub row_lo: *const f32,
        pub col_scale: *const f32,
        pub col_sum: *const f32,
    }

    /// How a micro-kernel ends: stores its accumulators (f32, or an int8 product's raw i32
    /// between passes over k), or dequantises them (the last pass of an int8 product).
    #[derive(Clone, Copy)]
    enum Fin {
        Store {
            relu: bool,
        },
        /// R rows' A steps and offsets at `sa` / `lo`, the block's NR column steps, sums and
        /// bias (null: none) at `sw`, `cs`, `bias`.
        Deq {
            sa: *const f32,
            lo: *const f32,
            sw: *const f32,
            cs: *const f32,
            bias: *const f32,
            relu: bool,
        },
    }

    /// How a micro-kernel starts its accumulators.
    #[derive(Clone, Copy)]
    enum Start {
        /// From zero.
        Zero,
        /// From the bias (NR values).
        Bias(*const f32),
        /// From C (a later pass over k).
        Load,
    }

    /// The arithmetic of one micro-kernel: how a step of B is loaded (4 vectors cover NR
    /// columns), how a step of one A row is broadcast, and the multiply-add.
    trait Micro {
        /// Element type of A and B.
        type A;
        /// Elements of k per step (1 for f32; 2 for bf16 pairs).
        const UNIT: usize;
        /// One vector of B.
        type Bv: Copy;
        /// One broadcast step of A.
        type Av: Copy;
        /// # Safety
        /// `p` points to 16 * UNIT readable elements; the CPU has the kernel's features.
        unsafe fn load_b(p: *const Self::A) -> Self::Bv;
        /// # Safety
        /// `p` points to UNIT readable elements; the CPU has the kernel's features.
        unsafe fn bcast(p: *const Self::A) -> Self::Av;
        /// `acc + a . b` per lane.
        ///
        /// # Safety
        /// The CPU has the kernel's features.
        unsafe fn madd(acc: __m512, a: Self::Av, b: Self::Bv) -> __m512;
    }

    #[inline(always)]
    unsafe fn start_acc<const R: usize>(
        start: Start,
        c: *const f32,
        ldc: usize,
    ) -> [[__m512; 4]; R] {
        // SAFETY: the callers run with AVX-512F.
        let mut acc = [[unsafe { _mm512_setzero_ps() }; 4]; R];
        match start {
            Start::Zero => {}
            Start::Bias(b) => {
                for row in acc.iter_mut() {
                    for (j, v) in row.iter_mut().enumerate() {
                        // SAFETY: the bias block has NR values.
                        *v = unsafe { _mm512_loadu_ps(b.add(16 * j)) };
                    }
                }
            }
            Start::Load => {
                for (r, row) in acc.iter_mut().enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        // SAFETY: C has R rows of NR floats at stride ldc.
                        *v = unsafe { _mm512_loadu_ps(c.add(r * ldc + 16 * j)) };
                    }
                }
            }
        }
        acc
    }

    #[inline(always)]
    unsafe fn store_acc<const R: usize>(acc: [[__m512; 4]; R], c: *mut f32, ldc: usize, fin: Fin) {
        let relu = match fin {
            Fin::Store { relu } => relu,
            // SAFETY: forwarded.
            Fin::Deq { .. } => return unsafe { store_deq::<R>(acc, c, ldc, fin) },
        };
        // SAFETY: the callers run with AVX-512F.
        let zero = unsafe { _mm512_setzero_ps() };
        for (r, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                // SAFETY: as above.
                let v = if relu {
                    unsafe { _mm512_max_ps(*v, zero) }
                } else {
                    *v
                };
                // SAFETY: C has R rows of NR floats at stride ldc.
                unsafe { _mm512_storeu_ps(c.add(r * ldc + 16 * j), v) };
            }
        }
    }

    /// Stores int8 accumulators (i32 lanes) dequantised: `sw * (sa * acc + lo * cs) + bias`,
    /// then the ReLU.
    ///
    /// # Safety
    /// `fin` is [`Fin::Deq`] with its pointers valid for R rows / NR columns; C as in
    /// [`store_acc`]; the CPU has AVX-512F.
    #[inline(always)]
    unsafe fn store_deq<const R: usize>(acc: [[__m512; 4]; R], c: *mut f32, ldc: usize, fin: Fin) {
        let Fin::Deq {
            sa,
            lo,
            sw,
            cs,
            bias,
            relu,
        } = fin
        else {
            unreachable!("store_deq takes Fin::Deq")
        };
        // SAFETY (whole body): as the contract says.
        unsafe {
            let zero = _mm512_setzero_ps();
            let swv: [__m512; 4] = std::array::from_fn(|j| _mm512_loadu_ps(sw.add(16 * j)));
            let csv: [__m512; 4] = std::array::from_fn(|j| _mm512_loadu_ps(cs.add(16 * j)));
            let bv: [__m512; 4] = std::array::from_fn(|j| {
                if bias.is_null() {
                    zero
                } else {
                    _mm512_loadu_ps(bias.add(16 * j))
                }
            });
            for (r, row) in acc.iter().enumerate() {
                let (s, l) = (_mm512_set1_ps(*sa.add(r)), _mm512_set1_ps(*lo.add(r)));
                for (j, v) in row.iter().enumerate() {
                    let a = _mm512_cvtepi32_ps(_mm512_castps_si512(*v));
                    let t = _mm512_fmadd_ps(a, s, _mm512_mul_ps(l, csv[j]));
                    let mut o = _mm512_fmadd_ps(t, swv[j], bv[j]);
                    if relu {
                        o = _mm512_max_ps(o, zero);
                    }
                    _mm512_storeu_ps(c.add(r * ldc + 16 * j), o);
                }
            }
        }
    }

    struct F32;
    // SAFETY (every method): as the trait requires.
    impl Micro for F32 {
        type A = f32;
        const UNIT: usize = 1;
        type Bv = __m512;
        type Av = __m512;
        #[inline(always)]
        unsafe fn load_b(p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn bcast(p: *const f32) -> __m512 {
            unsafe { _mm512_set1_ps(*p) }
        }
        #[inline(always)]
        unsafe fn madd(acc: __m512, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, acc) }
        }
    }

    struct Bf16;
    // SAFETY (every method): as the trait requires; a step is a k-pair, read from A as one
    // 32-bit word.
    impl Micro for Bf16 {
        type A = bf16;
        const UNIT: usize = 2;
        type Bv = __m512bh;
        type Av = __m512bh;
        #[inline(always)]
        unsafe fn load_b(p: *const bf16) -> __m512bh {
            unsafe { std::mem::transmute::<__m512, __m512bh>(_mm512_loadu_ps(p.cast())) }
        }
        #[inline(always)]
        unsafe fn bcast(p: *const bf16) -> __m512bh {
            unsafe {
                let pair = p.cast::<i32>().read_unaligned();
                std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair))
            }
        }
        #[inline(always)]
        unsafe fn madd(acc: __m512, a: __m512bh, b: __m512bh) -> __m512 {
            unsafe { _mm512_dpbf16_ps(acc, a, b) }
        }
    }

    struct Int8;
    // SAFETY (every method): as the trait requires; a step is a k-quad, read from A as one
    // 32-bit word; the accumulators hold i32 lanes (bit casts of the f32 registers).
    impl Micro for Int8 {
        type A = u8;
        const UNIT: usize = 4;
        type Bv = __m512i;
        type Av = __m512i;
        #[inline(always)]
        unsafe fn load_b(p: *const u8) -> __m512i {
            unsafe { _mm512_loadu_si512(p.cast()) }
        }
        #[inline(always)]
        unsafe fn bcast(p: *const u8) -> __m512i {
            unsafe { _mm512_set1_epi32(p.cast::<i32>().read_unaligned()) }
        }
        #[inline(always)]
        unsafe fn madd(acc: __m512, a: __m512i, b: __m512i) -> __m512 {
            unsafe { _mm512_castsi512_ps(_mm512_dpbusd_epi32(_mm512_castps_si512(acc), a, b)) }
        }
    }

    /// One micro-kernel call: R rows (R <= MR) by NR columns, `steps` steps of k, in 24 (at
    /// R = MR) accumulator registers.
    ///
    /// # Safety
    /// `a` has R rows of `steps` steps at stride `lda` elements, `b` a panel block of `steps`
    /// steps, `c` R rows of NR floats at stride `ldc`; the CPU has the kernel's features.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn run<K: Micro, const R: usize>(
        steps: usize,
        a: *const K::A,
        lda: usize,
        b: *const K::A,
        c: *mut f32,
        ldc: usize,
        start: Start,
        fin: Fin,
    ) {
        // SAFETY (whole body): the contract above bounds every pointer.
        unsafe {
            let mut acc = start_acc::<R>(start, c, ldc);
            let (mut ap, mut bp) = (a, b);
            for _ in 0..steps {
                let bv = [
                    K::load_b(bp),
                    K::load_b(bp.add(16 * K::UNIT)),
                    K::load_b(bp.add(32 * K::UNIT)),
                    K::load_b(bp.add(48 * K::UNIT)),
                ];
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = K::bcast(ap.add(r * lda));
                    for (v, bj) in row.iter_mut().zip(&bv) {
                        *v = K::madd(*v, av, *bj);
                    }
                }
                ap = ap.add(K::UNIT);
                bp = bp.add(NR * K::UNIT);
            }
            store_acc::<R>(acc, c, ldc, fin);
        }
    }

    /// The blocked loops around a micro-kernel: passes of KC over k, panels, blocks of MR rows;
    /// partial blocks (fewer rows, fewer columns) through a stack tile.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn drive<K: Micro>(
        m: usize,
        a: *const K::A,
        lda: usize,
        steps: usize,
        w: *const K::A,
        cols: Range<usize>,
        c: *mut f32,
        ldc: usize,
        epi: Epilogue,
        deq: Option<Deq>,
    ) {
        let unit = K::UNIT;
        let kc = KC / unit;
        let passes = steps.div_ceil(kc).max(1);
        let p0 = cols.start / NR;
        let p1 = cols.end.div_ceil(NR);
        let mut tile = [0f32; MR * NR];
        let mut bias_tile = [0f32; NR];
        for pass in 0..passes {
            let s0 = pass * kc;
            let s = kc.min(steps - s0);
            let last = pass + 1 == passes;
            for p in p0..p1 {
                let width = (cols.end - p * NR).min(NR);
                let cc = (p - p0) * NR;
                // SAFETY (loop body): the caller's asserts bound A, B and C; partial blocks
                // go through `tile`.
                unsafe {
                    let bp = w.add((p * steps + s0) * NR * unit);
                    // The bias of this panel (NR values), or null.
                    let bias = match epi.bias {
                        None => std::ptr::null(),
                        Some(b) if width == NR => b.as_ptr().add(p * NR),
                        Some(b) => {
                            bias_tile[..width].copy_from_slice(&b[p * NR..p * NR + width]);
                            bias_tile.as_ptr()
                        }
                    };
                    let start = if pass > 0 {
                        Start::Load
                    } else if bias.is_null() || deq.is_some() {
                        Start::Zero
                    } else {
                        Start::Bias(bias)
                    };
                    let mut r0 = 0;
                    while r0 < m {
                        let rows = MR.min(m - r0);
                        let ap = a.add(r0 * lda + s0 * unit);
                        let cp = c.add(r0 * ldc + cc);
                        let fin = match deq {
                            Some(d) if last => Fin::Deq {
                                sa: d.row_scale.add(r0),
                                lo: d.row_lo.add(r0),
                                sw: d.col_scale.add(p * NR),
                                cs: d.col_sum.add(p * NR),
                                bias,
                                relu: epi.relu,
                            },
                            _ => Fin::Store {
                                relu: last && epi.relu && deq.is_none(),
                            },
                        };
                        if width == NR {
                            call::<K>(rows, s, ap, lda, bp, cp, ldc, start, fin);
                        } else {
                            if matches!(start, Start::Load) {
                                for r in 0..rows {
                                    std::ptr::copy_nonoverlapping(
                                        cp.add(r * ldc),
                                        tile.as_mut_ptr().add(r * NR),
                                        width,
                                    );
                                }
                            }
                            call::<K>(rows, s, ap, lda, bp, tile.as_mut_ptr(), NR, start, fin);
                            for r in 0..rows {
                                std::ptr::copy_nonoverlapping(
                                    tile.as_ptr().add(r * NR),
                                    cp.add(r * ldc),
                                    width,
                                );
                            }
                        }
                        r0 += rows;
                    }
                }
            }
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn call<K: Micro>(
        rows: usize,
        s: usize,
        a: *const K::A,
        lda: usize,
        b: *const K::A,
        c: *mut f32,
        ldc: usize,
        start: Start,
        fin: Fin,
    ) {
        // SAFETY: forwarded contract of `Micro::run`.
        unsafe {
            match rows {
                6 => run::<K, 6>(s, a, lda, b, c, ldc, start, fin),
                5 => run::<K, 5>(s, a, lda, b, c, ldc, start, fin),
                4 => run::<K, 4>(s, a, lda, b, c, ldc, start, fin),
                3 => run::<K, 3>(s, a, lda, b, c, ldc, start, fin),
                2 => run::<K, 2>(s, a, lda, b, c, ldc, start, fin),
                _ => run::<K, 1>(s, a, lda, b, c, ldc, start, fin),
            }
        }
    }

    /// # Safety
    /// The CPU has AVX-512F; the slices cover the operands (see [`super::gemm`]).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn drive_f32(
        m: usize,
        a: &[f32],
        lda: usize,
        k: usize,
        w: &[f32],
        cols: Range<usize>,
        c: *mut f32,
        ldc: usize,
        epi: Epilogue,
    ) {
        // SAFETY: forwarded.
        unsafe { drive::<F32>(m, a.as_ptr(), lda, k, w.as_ptr(), cols, c, ldc, epi, None) }
    }

    /// # Safety
    /// The CPU has AVX512-BF16; the slices cover the operands (see [`super::gemm`]).
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn drive_bf16(
        m: usize,
        a: &[bf16],
        lda: usize,
        kp: usize,
        w: &[bf16],
        cols: Range<usize>,
        c: *mut f32,
        ldc: usize,
        epi: Epilogue,
    ) {
        // SAFETY: forwarded.
        unsafe { drive::<Bf16>(m, a.as_ptr(), lda, kp, w.as_ptr(), cols, c, ldc, epi, None) }
    }

    /// # Safety
    /// The CPU has AVX512-VNNI and AVX512-BW; the slices cover the operands and `deq`'s
    /// pointers the rows and panels (see [`super::gemm`]).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn drive_int8(
        m: usize,
        a: &[u8],
        lda: usize,
        kq: usize,
        w: &[i8],
        cols: Range<usize>,
        c: *mut f32,
        ldc: usize,
        epi: Epilogue,
        deq: Deq,
    ) {
        let w = w.as_ptr().cast::<u8>();
        // SAFETY: forwarded; B's bytes are read only as the s8 operand of vpdpbusd.
        unsafe { drive::<Int8>(m, a.as_ptr(), lda, kq, w, cols, c, ldc, epi, Some(deq)) }
    }

    /// Whether AMX-INT8 runs here: the CPU has it (CPUID leaf 7: AMX-TILE, AMX-INT8), the
    /// kernel lets this process use the tile data (`arch_prctl(ARCH_REQ_XCOMP_PERM)`, asked
    /// once), `VGGFEAT_NO_AMX` is unset (to measure or test the VNNI path on such a CPU) and
    /// `VGGFEAT_MAX_ISA` caps nothing (AMX is above every level it names but the last).
    pub(crate) fn amx_ready() -> bool {
        static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *READY.get_or_init(|| {
            if std::env::var_os("VGGFEAT_NO_AMX").is_some() {
                return false;
            }
            let cap = std::env::var(crate::model::engine::isa::MAX_ISA_VAR);
            if cap.is_ok_and(|c| !c.is_empty() && c != "avx512-bf16") {
                return false;
            }
            // CPUID leaf 7 exists on every x86-64 CPU with AVX-512 (the only callers).
            let l7 = __cpuid_count(7, 0);
            let (tile, int8) = (l7.edx & (1 << 24) != 0, l7.edx & (1 << 25) != 0);
            if !(tile && int8) {
                return false;
            }
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // SAFETY: a plain system call with integer arguments.
            unsafe {
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_REQ_XCOMP_PERM,
                    XFEATURE_XTILEDATA,
                ) == 0
            }
        })
    }

    /// The tile configuration: palette 1, eight tiles of 16 rows by 64 bytes (tmm0-3 the i32
    /// accumulators of a 32 x 32 block, tmm4-5 two 16-row slices of A, tmm6-7 two 16-column
    /// slices of B).
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    impl TileConfig {
        fn new() -> Self {
            let mut c = [0u8; 64];
            c[0] = 1;
            for t in 0..8 {
                c[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes());
                c[48 + t] = 16;
            }
            TileConfig(c)
        }
    }

    /// C (32 x 32 i32, rows 128 bytes apart) = A (32 rows at `a`, `lda` bytes apart) times
    /// B (`blocks` blocks of 16 k-quads, each quad row `NR * 4` bytes apart, 32 columns at `b`)
    /// on AMX, through the same tile steps as the direct convolution.
    ///
    /// # Safety
    /// [`tiles::begin`] ran on this thread; the pointers cover the operands.
    #[inline(always)]
    unsafe fn amx_block(a: *const u8, lda: usize, b: *const u8, blocks: usize, c: *mut i32) {
        // SAFETY: as the contract says.
        unsafe {
            tiles::zero();
            for s in 0..blocks {
                let ap = a.add(64 * s);
                tiles::step(
                    ap,
                    ap.add(16 * lda),
                    lda,
                    b.add(s * 16 * NR * 4),
                    64,
                    NR * 4,
                );
            }
            tiles::store(c);
        }
    }

    /// [`drive_int8`] on AMX for `m` rows (a multiple of 32): 32 x 32 blocks of C, each
    /// accumulated in tiles over the whole depth, then dequantised (as [`store_deq`]) from a
    /// stack buffer into C, partial column blocks masked.
    ///
    /// # Safety
    /// [`amx_ready`] is true; as [`drive_int8`] otherwise.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn drive_amx(
        m: usize,
        a: &[u8],
        lda: usize,
        kq: usize,
        w: &[i8],
        cols: Range<usize>,
        c: *mut f32,
        ldc: usize,
        epi: Epilogue,
        deq: Deq,
    ) {
        debug_assert!(m.is_multiple_of(32) && kq.is_multiple_of(16));
        let mut acc = Align64([0i32; 32 * 32]);
        let (p0, p1) = (cols.start / NR, cols.end.div_ceil(NR));
        // SAFETY (whole body): the asserts of `gemm_ptr` bound A, B, C and the scales; the
        // tile configuration is loaded before the first tile instruction and released after.
        unsafe {
            tiles::begin();
            let zero = _mm512_setzero_ps();
            for p in p0..p1 {
                let bp = w.as_ptr().cast::<u8>().add(p * kq * NR * 4);
                for j0 in [0, 32] {
                    let col = p * NR + j0;
                    if col >= cols.end {
                        break;
                    }
                    let valid = (cols.end - col).min(32);
                    let masks: [__mmask16; 2] = std::array::from_fn(|h| {
                        let n = valid.saturating_sub(16 * h).min(16);
                        if n == 16 { 0xffff } else { (1u16 << n) - 1 }
                    });
                    let ld = |base: *const f32, h: usize| -> __m512 {
                        _mm512_maskz_loadu_ps(masks[h], base.add(col + 16 * h))
                    };
                    let sw = [ld(deq.col_scale, 0), ld(deq.col_scale, 1)];
                    let cs = [ld(deq.col_sum, 0), ld(deq.col_sum, 1)];
                    let bias = match epi.bias {
                        Some(b) => [ld(b.as_ptr(), 0), ld(b.as_ptr(), 1)],
                        None => [zero; 2],
                    };
                    for r0 in (0..m).step_by(32) {
                        let ap = a.as_ptr().add(r0 * lda);
                        amx_block(ap, lda, bp.add(j0 * 4), kq / 16, acc.0.as_mut_ptr());
                        for r in 0..32 {
                            let s = _mm512_set1_ps(*deq.row_scale.add(r0 + r));
                            let l = _mm512_set1_ps(*deq.row_lo.add(r0 + r));
                            let out = c.add((r0 + r) * ldc + col - cols.start);
                            for h in 0..2 {
                                if masks[h] == 0 {
                                    break;
                                }
                                let v =
                                    _mm512_loadu_si512(acc.0.as_ptr().add(r * 32 + 16 * h).cast());
                                let t = _mm512_fmadd_ps(
                                    _mm512_cvtepi32_ps(v),
                                    s,
                                    _mm512_mul_ps(l, cs[h]),
                                );
                                let mut o = _mm512_fmadd_ps(t, sw[h], bias[h]);
                                if epi.relu {
                                    o = _mm512_max_ps(o, zero);
                                }
                                _mm512_mask_storeu_ps(out.add(16 * h), masks[h], o);
                            }
                        }
                    }
                }
            }
            tiles::end();
        }
    }

    /// A 64-byte aligned buffer (tile stores).
    #[repr(C, align(64))]
    pub(crate) struct Align64<T>(pub T);

    /// The tile primitives of a caller that walks its own A addresses (the direct int8
    /// convolution, `super::super::amx_conv`): the same four accumulators as
    /// [`amx_block`], fed one 64-deep step at a time.
    pub(crate) mod tiles {
        use super::TileConfig;

        /// Loads the tile configuration on this thread.
        ///
        /// # Safety
        /// [`super::amx_ready`] is true.
        pub(crate) unsafe fn begin() {
            let cfg = TileConfig::new();
            // SAFETY: AMX is enabled for this process; the configuration is 64 valid bytes.
            unsafe { std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack)) };
        }

        /// Releases the tiles of this thread.
        ///
        /// # Safety
        /// [`begin`] ran on this thread.
        pub(crate) unsafe fn end() {
            // SAFETY: as the contract says.
            unsafe { std::arch::asm!("tilerelease", options(nostack)) };
        }

        /// Zeroes the four accumulators.
        ///
        /// # Safety
        /// [`begin`] ran on this thread.
        pub(crate) unsafe fn zero() {
            // SAFETY: as the contract says.
            unsafe {
                std::arch::asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                )
            };
        }

        /// Adds one step: rows 0-15 of the block from `a0`, rows 16-31 from `a1` (64 u8 each,
        /// rows `lda` bytes apart), times 16 k-quads of 32 columns: columns 0-15 at `b`,
        /// 16-31 at `b + b1`, quad rows `ldb` bytes apart.
        ///
        /// # Safety
        /// [`begin`] ran on this thread; the pointers cover 16 rows each.
        #[inline(always)]
        pub(crate) unsafe fn step(
            a0: *const u8,
            a1: *const u8,
            lda: usize,
            b: *const u8,
            b1: usize,
            ldb: usize,
        ) {
            // SAFETY: as the contract says.
            unsafe {
                std::arch::asm!(
                    "tileloadd tmm4, [{a0} + {lda}]",
                    "tileloadd tmm5, [{a1} + {lda}]",
                    "tileloadd tmm6, [{b} + {ldb}]",
                    "tileloadd tmm7, [{b1} + {ldb}]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm4, tmm7",
                    "tdpbusd tmm2, tmm5, tmm6",
                    "tdpbusd tmm3, tmm5, tmm7",
                    a0 = in(reg) a0,
                    a1 = in(reg) a1,
                    lda = in(reg) lda,
                    b = in(reg) b,
                    b1 = in(reg) b.add(b1),
                    ldb = in(reg) ldb,
                    options(nostack, readonly),
                )
            };
        }

        /// Stores the accumulators as a 32 x 32 i32 block (rows 128 bytes apart) at `c`.
        ///
        /// # Safety
        /// [`begin`] ran on this thread; `c` holds 1024 i32.
        pub(crate) unsafe fn store(c: *mut i32) {
            // SAFETY: as the contract says.
            unsafe {
                std::arch::asm!(
                    "tilestored [{c0} + {ldc}], tmm0",
                    "tilestored [{c0} + {ldc} + 64], tmm1",
                    "tilestored [{c2} + {ldc}], tmm2",
                    "tilestored [{c2} + {ldc} + 64], tmm3",
                    c0 = in(reg) c,
                    c2 = in(reg) c.add(16 * 32),
                    ldc = in(reg) 128usize,
                    options(nostack),
                )
            };
        }
    }

    /// The smallest and largest of `s` (+inf and -inf when empty).
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn range(s: &[f32]) -> (f32, f32) {
        let k = s.len();
        // SAFETY (whole body): masked loads stay inside `s`.
        unsafe {
            let mut vlo = _mm512_set1_ps(f32::INFINITY);
            let mut vhi = _mm512_set1_ps(f32::NEG_INFINITY);
            let mut i = 0;
            while i + 16 <= k {
                let v = _mm512_loadu_ps(s.as_ptr().add(i));
                vlo = _mm512_min_ps(vlo, v);
                vhi = _mm512_max_ps(vhi, v);
                i += 16;
            }
            if i < k {
                let m: __mmask16 = (1u16 << (k - i)) - 1;
                let v = _mm512_maskz_loadu_ps(m, s.as_ptr().add(i));
                vlo = _mm512_mask_min_ps(vlo, m, vlo, v);
                vhi = _mm512_mask_max_ps(vhi, m, vhi, v);
            }
            (_mm512_reduce_min_ps(vlo), _mm512_reduce_max_ps(vhi))
        }
    }

    /// `dst[i] = round(src[i] * inv)`, saturated to 0..=255 (`vpmovusdb`): a non-negative map
    /// quantised with one step.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `dst` is at least as long as `src`.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn quantize_scaled(src: &[f32], dst: &mut [u8], inv: f32) {
        let k = src.len();
        assert!(dst.len() >= k);
        // SAFETY (whole body): masked loads and stores stay inside `src` and `dst`.
        unsafe {
            let vi = _mm512_set1_ps(inv);
            let mut i = 0;
            while i < k {
                let n = (k - i).min(16);
                let m: __mmask16 = if n == 16 { 0xffff } else { (1u16 << n) - 1 };
                let v = _mm512_maskz_loadu_ps(m, src.as_ptr().add(i));
                let q = _mm512_max_epi32(
                    _mm512_cvtps_epi32(_mm512_mul_ps(v, vi)),
                    _mm512_setzero_si512(),
                );
                _mm512_mask_cvtusepi32_storeu_epi8(dst.as_mut_ptr().add(i).cast(), m, q);
                i += 16;
            }
        }
    }

    /// One row of [`super::quantize_rows`] with AVX-512F: its range, then the rounded values
    /// packed to u8 (`vpmovusdb`); returns (step, lo).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `d` is at least as long as `s`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn quantize_row(s: &[f32], d: &mut [u8]) -> (f32, f32) {
        let k = s.len();
        if k == 0 {
            d.fill(0);
            return (0.0, 0.0);
        }
        let mask = |i: usize| -> __mmask16 {
            let n = (k - i).min(16);
            if n == 16 { 0xffff } else { (1u16 << n) - 1 }
        };
        // SAFETY (whole body): masked loads and stores stay inside `s` and `d`.
        unsafe {
            let (lo, hi) = range(s);
            let (step, inv) = super::steps(lo, hi);
            let (vl, vi) = (_mm512_set1_ps(lo), _mm512_set1_ps(inv));
            let mut i = 0;
            while i < k {
                let m = mask(i);
                let v = _mm512_maskz_loadu_ps(m, s.as_ptr().add(i));
                let q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(v, vl), vi));
                let q = _mm512_max_epi32(q, _mm512_setzero_si512());
                _mm512_mask_cvtusepi32_storeu_epi8(d.as_mut_ptr().add(i).cast(), m, q);
                i += 16;
            }
            d[k..].fill(0);
            (step, lo)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::engine::isa::available;

    /// A deterministic pseudo-random matrix in [-1, 1).
    fn mat(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Packing a conv kernel directly gives the same matrix as packing its row-major form.
    #[test]
    fn conv_kernels_pack_as_their_rows() {
        let (cout, cin, kk) = (70, 5, 9);
        let w4 = mat(cout * cin * kk, 4);
        let rows = crate::model::engine::unfold::kernel_rows(&w4, cout, cin, kk);
        for kernel in available() {
            let (a, b) = (
                PackedB::from_conv(&w4, cout, cin, kk, kernel),
                PackedB::new(&rows, cin * kk, cout, kernel),
            );
            let same = match (&a.data, &b.data) {
                (Packed::RowMajor(x), Packed::RowMajor(y)) | (Packed::F32(x), Packed::F32(y)) => {
                    x == y
                }
                (Packed::Bf16(x), Packed::Bf16(y)) => x == y,
                (
                    Packed::Int8 {
                        q: x,
                        scale: sx,
                        colsum: cx,
                    },
                    Packed::Int8 {
                        q: y,
                        scale: sy,
                        colsum: cy,
                    },
                ) => x == y && sx == sy && cx == cy,
                _ => false,
            };
            assert!(same, "{kernel:?}");
        }
    }

    /// B (k x n) as the int8 packing represents it: `scale[j] * q[k][j]`.
    fn dequantized_b(b: &PackedB) -> Vec<f32> {
        let Packed::Int8 { q, scale, .. } = &b.data else {
            panic!("not int8")
        };
        let kq = int8_quads(b.k);
        let mut out = vec![0f32; b.k * b.n];
        for kk in 0..b.k {
            for j in 0..b.n {
                let (p, jj) = (j / NR, j % NR);
                let v = q[((p * kq + kk / 4) * NR + jj) * 4 + kk % 4];
                out[kk * b.n + j] = scale[j] * f32::from(v);
            }
        }
        out
    }

    /// The AVX-512 row quantiser equals the plain one bit for bit, and each value is within half
    /// a step of what it stands for; the extremes are exact.
    #[test]
    fn rows_quantise_to_within_half_a_step() {
        for k in [1, 5, 16, 17, 40, 513] {
            let src: Vec<f32> = mat(3 * k, k as u64).iter().map(|v| v * 3.0 + 0.5).collect();
            let ld = k.next_multiple_of(4) + 4;
            let (mut q, mut sc, mut lo) = (vec![7u8; 3 * ld], [0f32; 3], [0f32; 3]);
            quantize_rows(&src, k, k, 3, &mut q, ld, &mut sc, &mut lo);
            for r in 0..3 {
                let row = &src[r * k..(r + 1) * k];
                let mut plain = vec![9u8; ld];
                assert_eq!(quantize_row(row, &mut plain), (sc[r], lo[r]), "k {k}");
                assert_eq!(plain, q[r * ld..(r + 1) * ld], "k {k} row {r}");
                for (v, x) in row.iter().zip(&q[r * ld..]) {
                    let back = lo[r] + sc[r] * f32::from(*x);
                    assert!((back - v).abs() <= 0.5001 * sc[r] + 1e-6, "{v} -> {back}");
                }
                assert!(q[r * ld + k..(r + 1) * ld].iter().all(|&x| x == 0));
            }
        }
        // A constant row: step 0, every value its offset.
        let (mut q, mut sc, mut lo) = (vec![1u8; 8], [1f32], [0f32]);
        quantize_rows(&[2.5; 5], 5, 5, 1, &mut q, 8, &mut sc, &mut lo);
        assert_eq!((sc[0], lo[0], &q[..]), (0.0, 2.5, &[0u8; 8][..]));
    }

    /// On a CPU with AMX-INT8, the tile path and the VNNI path give the same products bit for
    /// bit (both sum the same integers exactly, then dequantise with the same operations), over
    /// several 32-row blocks, a partial column block, a depth that is not a multiple of 64,
    /// bias and ReLU.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn amx_and_vnni_give_the_same_int8_products() {
        if !x86::amx_ready() {
            eprintln!("skipped: AMX-INT8 is not usable here (only the VNNI path runs)");
            return;
        }
        let (m, n, k) = (96, 80, 300);
        let (a, b, bias) = (mat(m * k, 11), mat(k * n, 12), mat(n, 13));
        let pb = PackedB::new(&b, k, n, Kernel::Int8);
        let lda = pb.lhs_width();
        let (mut q, mut qs, mut ql) = (vec![0u8; m * lda], vec![0f32; m], vec![0f32; m]);
        quantize_rows(&a, k, k, m, &mut q, lda, &mut qs, &mut ql);
        let Packed::Int8 {
            q: w,
            scale,
            colsum,
        } = &pb.data
        else {
            unreachable!()
        };
        let deq = x86::Deq {
            row_scale: qs.as_ptr(),
            row_lo: ql.as_ptr(),
            col_scale: scale.as_ptr(),
            col_sum: colsum.as_ptr(),
        };
        let epi = Epilogue {
            bias: Some(&bias),
            relu: true,
        };
        let kq = int8_quads(k);
        let (mut tiles, mut vnni) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
        // SAFETY: AMX and VNNI are present (amx_ready); the buffers cover the operands.
        unsafe {
            x86::drive_amx(m, &q, lda, kq, w, 0..n, tiles.as_mut_ptr(), n, epi, deq);
            x86::drive_int8(m, &q, lda, kq, w, 0..n, vnni.as_mut_ptr(), n, epi, deq);
        }
        assert!(
            tiles
                .iter()
                .zip(&vnni)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }

    /// Every kernel against an f64 product of the same (for bf16: rounded) operands, on shapes
    /// with partial row blocks, partial panels, odd depths, several passes over k, column
    /// sub-ranges, bias and ReLU.
    #[test]
    fn every_kernel_matches_a_plain_product() {
        for kernel in available() {
            for &(m, n, k) in &[
                (1, 1, 1),
                (7, 70, 27),
                (13, 128, 64),
                (6, 64, 1100),
                (20, 200, 513),
                // Whole 32-row blocks (AMX-INT8 where there is one) and a rest.
                (70, 100, 300),
                (64, 64, 64),
                (33, 130, 27),
            ] {
                let a = mat(m * k, 1);
                let b = mat(k * n, 2);
                let bias = mat(n, 3);
                let pb = PackedB::new(&b, k, n, kernel);
                let lda = pb.lhs_width() + 3;
                let round = |v: f32| match kernel {
                    Kernel::Bf16 => bf16::from_f32(v).to_f32(),
                    _ => v,
                };
                // int8: the operands as quantised (A per row, B per column).
                let (mut aq, mut qs, mut ql) = (vec![3u8; m * lda], vec![0f32; m], vec![0f32; m]);
                let (a_ref, b_ref) = if kernel == Kernel::Int8 {
                    quantize_rows(&a, k, k, m, &mut aq, lda, &mut qs, &mut ql);
                    let a_ref = (0..m * k)
                        .map(|i| ql[i / k] + qs[i / k] * f32::from(aq[(i / k) * lda + i % k]))
                        .collect();
                    (a_ref, dequantized_b(&pb))
                } else {
                    (
                        a.iter().map(|v| round(*v)).collect(),
                        b.iter().map(|v| round(*v)).collect(),
                    )
                };
                let (a_ref, b_ref): (Vec<f32>, Vec<f32>) = (a_ref, b_ref);
                for (cols, relu) in [(0..n, false), ((n / 64) * 64..n, true)] {
                    let epi = Epilogue {
                        bias: Some(&bias),
                        relu,
                    };
                    let width = cols.len();
                    let mut c = vec![f32::NAN; m * width];
                    match kernel {
                        Kernel::Int8 => {
                            let lhs = Lhs::U8 {
                                q: &aq,
                                scale: &qs,
                                lo: &ql,
                            };
                            gemm(m, lhs, lda, &pb, cols.clone(), &mut c, width, epi);
                        }
                        Kernel::Bf16 => {
                            let mut ab = vec![bf16::from_f32(7.0); m * lda];
                            for r in 0..m {
                                to_bf16_rows(
                                    &a[r * k..(r + 1) * k],
                                    k,
                                    &mut ab[r * lda..r * lda + pb.lhs_width()],
                                    pb.lhs_width(),
                                );
                            }
                            gemm(
                                m,
                                Lhs::Bf16(&ab),
                                lda,
                                &pb,
                                cols.clone(),
                                &mut c,
                                width,
                                epi,
                            );
                        }
                        _ => {
                            let mut af = vec![7.0; m * lda];
                            for r in 0..m {
                                af[r * lda..r * lda + k].copy_from_slice(&a[r * k..(r + 1) * k]);
                            }
                            gemm(m, Lhs::F32(&af), lda, &pb, cols.clone(), &mut c, width, epi);
                        }
                    }
                    for r in 0..m {
                        for (jj, j) in cols.clone().enumerate() {
                            let mut want = f64::from(bias[j]);
                            let mut mag = want.abs();
                            for kk in 0..k {
                                let p = f64::from(a_ref[r * k + kk]) * f64::from(b_ref[kk * n + j]);
                                want += p;
                                mag += p.abs();
                            }
                            if relu {
                                want = want.max(0.0);
                            }
                            let got = f64::from(c[r * width + jj]);
                            // int8 dequantises in f32 from an i32 sum: a little more rounding.
                            let tol = if kernel == Kernel::Int8 { 1e-5 } else { 1e-6 };
                            assert!(
                                (got - want).abs() <= tol * mag.max(1.0),
                                "{kernel:?} {m}x{n}x{k} cols {cols:?} [{r}][{j}]: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
