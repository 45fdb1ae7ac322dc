//! The fast engine's matrix product: `C (m x n, f32) = A (m x k) * B (k x n)` with B (the
//! weights) packed once, when the engine is built, into panels of [`NR`] columns laid out for a
//! register-blocked micro-kernel, and A (activations: unfolded patches, Winograd-domain tiles)
//! read in place, row-major. Every conv of the fast engine ends up here: the Winograd products
//! of the 3x3 layers and the unfold + GEMM of conv1_1 and the head.
//!
//! Three kernels, chosen once per engine ([`Isa`]):
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
}

/// The left operand: `m` rows of [`PackedB::lhs_width`] values at stride `lda`, in the packed
/// matrix's element type.
#[derive(Debug, Clone, Copy)]
pub enum Lhs<'a> {
    /// f32 rows (kernels [`Kernel::F32`] and [`Kernel::Portable`]).
    F32(&'a [f32]),
    /// bf16 rows (kernel [`Kernel::Bf16`]); an odd k is padded with a zero column.
    Bf16(&'a [bf16]),
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
        };
        PackedB { k, n: cout, data }
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
        };
        PackedB { k, n, data }
    }

    /// The length each row of A must have: k, or k rounded up to even (zero-padded) for bf16.
    pub fn lhs_width(&self) -> usize {
        match self.data {
            Packed::Bf16(_) => self.k.next_multiple_of(2),
            _ => self.k,
        }
    }

    /// The kernel the matrix is packed for.
    pub fn kernel(&self) -> Kernel {
        match self.data {
            Packed::RowMajor(_) => Kernel::Portable,
            Packed::F32(_) => Kernel::F32,
            Packed::Bf16(_) => Kernel::Bf16,
        }
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
mod x86 {
    //! The AVX-512 micro-kernels and their drivers.
    use std::arch::x86_64::*;
    use std::ops::Range;

    use half::bf16;

    use super::{Epilogue, KC, MR, NR};

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
    unsafe fn store_acc<const R: usize>(
        acc: [[__m512; 4]; R],
        c: *mut f32,
        ldc: usize,
        relu: bool,
    ) {
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
        relu: bool,
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
            store_acc::<R>(acc, c, ldc, relu);
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
            let relu = last && epi.relu;
            for p in p0..p1 {
                let width = (cols.end - p * NR).min(NR);
                let cc = (p - p0) * NR;
                // SAFETY (loop body): the caller's asserts bound A, B and C; partial blocks
                // go through `tile`.
                unsafe {
                    let bp = w.add((p * steps + s0) * NR * unit);
                    let start = if pass > 0 {
                        Start::Load
                    } else {
                        match epi.bias {
                            None => Start::Zero,
                            Some(b) if width == NR => Start::Bias(b.as_ptr().add(p * NR)),
                            Some(b) => {
                                bias_tile[..width].copy_from_slice(&b[p * NR..p * NR + width]);
                                Start::Bias(bias_tile.as_ptr())
                            }
                        }
                    };
                    let mut r0 = 0;
                    while r0 < m {
                        let rows = MR.min(m - r0);
                        let ap = a.add(r0 * lda + s0 * unit);
                        let cp = c.add(r0 * ldc + cc);
                        if width == NR {
                            call::<K>(rows, s, ap, lda, bp, cp, ldc, start, relu);
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
                            call::<K>(rows, s, ap, lda, bp, tile.as_mut_ptr(), NR, start, relu);
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
        relu: bool,
    ) {
        // SAFETY: forwarded contract of `Micro::run`.
        unsafe {
            match rows {
                6 => run::<K, 6>(s, a, lda, b, c, ldc, start, relu),
                5 => run::<K, 5>(s, a, lda, b, c, ldc, start, relu),
                4 => run::<K, 4>(s, a, lda, b, c, ldc, start, relu),
                3 => run::<K, 3>(s, a, lda, b, c, ldc, start, relu),
                2 => run::<K, 2>(s, a, lda, b, c, ldc, start, relu),
                _ => run::<K, 1>(s, a, lda, b, c, ldc, start, relu),
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
        unsafe { drive::<F32>(m, a.as_ptr(), lda, k, w.as_ptr(), cols, c, ldc, epi) }
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
        unsafe { drive::<Bf16>(m, a.as_ptr(), lda, kp, w.as_ptr(), cols, c, ldc, epi) }
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
                _ => false,
            };
            assert!(same, "{kernel:?}");
        }
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
                for (cols, relu) in [(0..n, false), ((n / 64) * 64..n, true)] {
                    let epi = Epilogue {
                        bias: Some(&bias),
                        relu,
                    };
                    let width = cols.len();
                    let mut c = vec![f32::NAN; m * width];
                    match kernel {
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
                                let p = f64::from(round(a[r * k + kk]))
                                    * f64::from(round(b[kk * n + j]));
                                want += p;
                                mag += p.abs();
                            }
                            if relu {
                                want = want.max(0.0);
                            }
                            let got = f64::from(c[r * width + jj]);
                            assert!(
                                (got - want).abs() <= 1e-6 * mag.max(1.0),
                                "{kernel:?} {m}x{n}x{k} cols {cols:?} [{r}][{j}]: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
