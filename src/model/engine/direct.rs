//! Direct 3x3 convolutions (stride 1, padding 1) of channels-last maps, for training the layers
//! with few channels: a net's first layer (3 inputs) and the narrow nets' thin layers (8 to 32
//! channels). The forward pass, and the weight gradient; the data gradient is the forward pass
//! of the flipped kernel ([`flipped_rows`]).
//!
//! With few channels the other routes waste most of their work: unfolding a patch writes
//! 9 x cin floats per position that the product then reads once (the copy costs as much as the
//! product), and the packed GEMM and the Winograd products pad the outputs to panels of 64
//! columns, four times the work for 16 outputs. Here the input is read in place (the taps that
//! fall on the padding are skipped: no padded copy, which for the thin layers' large maps cost
//! as much as the products): a block of R consecutive output positions keeps R x NV vector
//! accumulators (NV vectors of output channels) in registers, and each kernel row
//! (tap, input channel) is one vector load and R broadcast multiply-adds. The weight gradient
//! keeps a block of kernel rows' accumulators instead and streams the positions through
//! them, a chunk at a time (the chunk's input and gradient stay in L1/L2 across the blocks).
//! With one or two output vectors (at most 32 outputs) both go by input column instead: an
//! input value meets three kernel columns (three outputs, or three positions' gradients), so
//! it is broadcast once for three multiply-adds; otherwise the broadcasts would be as many as
//! the multiply-adds and the loads would set the pace.
//! Hand-written because no crate offers channels-last direct convolutions; the vector type is
//! the engine's ([`super::simd`]).
//!
//! Order of the sums (what the tests' tolerances allow for): a forward output adds the bias,
//! then the taps row by row, each row's (column, channel) pairs in memory order (channels
//! before columns for at most 32 outputs: [`column_block`]); a weight gradient sums positions
//! in increasing order within the caller's range.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::isa::Kernel;
use super::simd::{Arr, Vf};
use super::winograd::Simd;

/// Input channels of a net's first layer.
pub(crate) const CIN: usize = 3;
/// Vector accumulators a block keeps (of AVX-512's 32 registers; the rest hold operands).
const ACC: usize = 24;
/// Most output vectors a block covers (wider outputs run as several column blocks).
const MAX_NV: usize = 4;
/// Bytes of gradient rows per chunk of a weight gradient's positions (per column block): the
/// chunk's gradient stays in L1, its input rows in L2, while every block of kernel rows passes
/// over them.
const CHUNK_BYTES: usize = 16 << 10;

/// The kernel rows of the data gradient's convolution for a kernel `w4` (cout, cin, 3, 3):
/// `(9 * cout, cin)`, row `t * cout + o` holding `w4[o][ci][8 - t]` (the kernel rotated by 180
/// degrees, inputs and outputs swapped), so that [`forward`] of the output gradient with them
/// is the input gradient.
pub(crate) fn flipped_rows(w4: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    assert_eq!(w4.len(), cout * cin * 9, "kernel");
    let mut rows = vec![0f32; 9 * cout * cin];
    rows.par_chunks_mut(cout * cin)
        .enumerate()
        .for_each(|(t, r)| {
            for (o, dst) in r.chunks_exact_mut(cin).enumerate() {
                for (ci, d) in dst.iter_mut().enumerate() {
                    *d = w4[(o * cin + ci) * 9 + 8 - t];
                }
            }
        });
    rows
}

/// `y = relu?(conv(x, W) + b)` for `x` `(n, h, w, cin)`; `wt` is the kernel as
/// `(9 * cin, cout)` rows (tap-major, then channel: [`super::unfold::kernel_rows`]'s order),
/// `y` `(n, h, w, cout)`, every element written (it may start uninitialised). One task per
/// output row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    x: &[f32],
    (n, h, w): (usize, usize, usize),
    cin: usize,
    wt: &[f32],
    b: &[f32],
    cout: usize,
    relu: bool,
    kernel: Kernel,
    y: &mut [MaybeUninit<f32>],
) {
    assert_eq!(x.len(), n * h * w * cin, "input");
    assert_eq!(wt.len(), 9 * cin * cout, "kernel rows");
    assert_eq!(b.len(), cout, "bias");
    assert_eq!(y.len(), n * h * w * cout, "output");
    if y.is_empty() {
        return;
    }
    let simd = Simd::for_kernel(kernel);
    y.par_chunks_mut(w * cout)
        .enumerate()
        .for_each(|(row, out)| {
            let (img, oy) = (row / h, row % h);
            let a = RowArgs {
                x,
                img: img * h * w * cin,
                oy,
                hw: (h, w),
                cin,
                wt,
                b,
                cout,
                relu,
            };
            // SAFETY: `a` addresses image img of `x` (asserted sizes), `out` is one output row
            // of w * cout floats; the features are the CPU's (for_kernel).
            unsafe {
                match simd {
                    #[cfg(target_arch = "x86_64")]
                    Simd::Avx512 | Simd::Avx512Bf16 => forward_row_avx512(a, w, out),
                    #[cfg(target_arch = "x86_64")]
                    Simd::Avx2 => forward_row_avx2(a, w, out),
                    Simd::Base => forward_row::<Arr>(a, w, out),
                }
            }
        });
}

/// One output row's operands.
#[derive(Clone, Copy)]
struct RowArgs<'a> {
    x: &'a [f32],
    /// Offset of the row's image.
    img: usize,
    /// The output row.
    oy: usize,
    /// The map's rows and columns.
    hw: (usize, usize),
    cin: usize,
    wt: &'a [f32],
    b: &'a [f32],
    cout: usize,
    relu: bool,
}

/// Lanes of output vector `v` of the column block starting at channel `o0`.
#[inline(always)]
fn lanes<V: Vf>(cout: usize, o0: usize, v: usize) -> usize {
    V::LANES.min(cout.saturating_sub(o0 + v * V::LANES))
}

/// # Safety
/// The CPU has `V`'s features; `a` and `out` as [`forward`] builds them.
#[inline(always)]
unsafe fn forward_row<V: Vf>(a: RowArgs, w: usize, out: &mut [MaybeUninit<f32>]) {
    // The common input widths as constants: a block's input addresses are then offsets of one
    // pointer (with the width in a register, they form a chain of additions that holds the
    // multiply-adds to one per cycle).
    // SAFETY: forwarded.
    unsafe {
        match a.cin {
            3 => forward_cin::<V, 3>(a, w, out),
            8 => forward_cin::<V, 8>(a, w, out),
            16 => forward_cin::<V, 16>(a, w, out),
            32 => forward_cin::<V, 32>(a, w, out),
            64 => forward_cin::<V, 64>(a, w, out),
            _ => forward_cin::<V, 0>(a, w, out),
        }
    }
}

/// [`forward_row`] for inputs of C channels (0: `a.cin`).
///
/// # Safety
/// As [`forward_row`], with `C` 0 or `a.cin`.
#[inline(always)]
unsafe fn forward_cin<V: Vf, const C: usize>(a: RowArgs, w: usize, out: &mut [MaybeUninit<f32>]) {
    let mut o0 = 0;
    while o0 < a.cout {
        // SAFETY: forwarded.
        unsafe {
            match (a.cout - o0).div_ceil(V::LANES).min(MAX_NV) {
                1 => row_columns::<V, C, 1, 16>(a, o0, w, out),
                2 => row_columns::<V, C, 2, 8>(a, o0, w, out),
                3 => row_blocks::<V, C, 3, { ACC / 3 }>(a, o0, w, out),
                _ => row_blocks::<V, C, 4, { ACC / 4 }>(a, o0, w, out),
            }
        }
        o0 += MAX_NV * V::LANES;
    }
}

/// A row's positions in blocks of R, then of 4 and 1, for the output vectors NV from `o0`; the
/// first and last positions (whose left or right taps fall on the padding) one by one.
///
/// # Safety
/// As [`forward_row`].
#[inline(always)]
unsafe fn row_blocks<V: Vf, const C: usize, const NV: usize, const R: usize>(
    a: RowArgs,
    o0: usize,
    w: usize,
    out: &mut [MaybeUninit<f32>],
) {
    // SAFETY: forwarded; every block's taps stay inside the row (the column range kx says
    // which).
    unsafe {
        if w == 1 {
            return out_block::<V, C, NV, 1>(a, o0, 0, 1..2, out);
        }
        out_block::<V, C, NV, 1>(a, o0, 0, 1..3, out);
        let mut ox = 1;
        while w - 1 - ox >= R {
            out_block::<V, C, NV, R>(a, o0, ox, 0..3, out);
            ox += R;
        }
        while w - 1 - ox >= 4 {
            out_block::<V, C, NV, 4>(a, o0, ox, 0..3, out);
            ox += 4;
        }
        while ox < w - 1 {
            out_block::<V, C, NV, 1>(a, o0, ox, 0..3, out);
            ox += 1;
        }
        out_block::<V, C, NV, 1>(a, o0, w - 1, 0..2, out);
    }
}

/// Outputs `ox .. ox + R` of the row, channels `o0 ..` (NV vectors), from the taps of columns
/// `kx` (those of rows off the map skipped).
///
/// # Safety
/// As [`forward_row`], with `ox + R <= w` and the columns `ox + kx - 1` of every position
/// inside the map.
#[inline(always)]
unsafe fn out_block<V: Vf, const C: usize, const NV: usize, const R: usize>(
    a: RowArgs,
    o0: usize,
    ox: usize,
    kx: std::ops::Range<usize>,
    out: &mut [MaybeUninit<f32>],
) {
    let ((h, w), cout) = (a.hw, a.cout);
    let cin = if C > 0 { C } else { a.cin };
    let nl: [usize; NV] = std::array::from_fn(|v| lanes::<V>(cout, o0, v));
    // SAFETY: reads stay in `wt` (rows of cout values, lanes bounded by nl), `b` and the input
    // rows oy - 1 ..= oy + 1 inside the map, columns ox + kx - 1 (the caller's promise);
    // writes in `out`; V's features are the caller's.
    unsafe {
        let bv: [V; NV] =
            std::array::from_fn(|v| V::load(a.b.as_ptr().add(o0 + v * V::LANES), nl[v]));
        let mut acc = [bv; R];
        for ky in 0..3 {
            let Some(iy) = (a.oy + ky).checked_sub(1).filter(|&iy| iy < h) else {
                continue;
            };
            let xr = a.x.as_ptr().add(a.img + (iy * w + ox + kx.start - 1) * cin);
            let wr = a.wt.as_ptr().add(((ky * 3 + kx.start) * cin) * cout + o0);
            for j in 0..kx.len() * cin {
                let wv: [V; NV] =
                    std::array::from_fn(|v| V::load(wr.add(j * cout + v * V::LANES), nl[v]));
                for (p, acc) in acc.iter_mut().enumerate() {
                    let s = *xr.add(p * cin + j);
                    for v in 0..NV {
                        acc[v] = acc[v].axpy(s, wv[v]);
                    }
                }
            }
        }
        for (p, acc) in acc.iter().enumerate() {
            for v in 0..NV {
                let r = if a.relu { acc[v].relu() } else { acc[v] };
                r.store(
                    out.as_mut_ptr()
                        .cast::<f32>()
                        .add((ox + p) * cout + o0 + v * V::LANES),
                    nl[v],
                );
            }
        }
    }
}

/// [`row_blocks`] for one or two output vectors, by input column: each input value is
/// broadcast once and multiplied by the three kernel columns it meets (into three outputs),
/// where [`out_block`] broadcasts it once per tap. With so few output vectors the broadcasts
/// would otherwise be as many as the multiply-adds, and the loads, not the arithmetic, would
/// set the pace. Rows of at least R positions run in blocks of R only (of 4 or 1 below that):
/// the first and last block of a row skip the padding's column, and the last one starts R
/// before the end, recomputing (bit for bit) any outputs the one before it wrote. Smaller
/// blocks are slower than their size says: an output's sum is one chain of dependent
/// multiply-adds, and a block of few outputs has too few chains to fill the units.
///
/// # Safety
/// As [`forward_row`].
#[inline(always)]
unsafe fn row_columns<V: Vf, const C: usize, const NV: usize, const R: usize>(
    a: RowArgs,
    o0: usize,
    w: usize,
    out: &mut [MaybeUninit<f32>],
) {
    // SAFETY: forwarded.
    unsafe {
        if w >= R {
            row_of::<V, C, NV, R>(a, o0, w, out)
        } else if w >= 4 {
            row_of::<V, C, NV, 4>(a, o0, w, out)
        } else {
            row_of::<V, C, NV, 1>(a, o0, w, out)
        }
    }
}

/// A row of `w >= B` positions in blocks of B: the first (LEFT), those that touch neither end,
/// and the last (RIGHT), which may overlap the one before.
///
/// # Safety
/// As [`forward_row`], with `w >= B`.
#[inline(always)]
unsafe fn row_of<V: Vf, const C: usize, const NV: usize, const B: usize>(
    a: RowArgs,
    o0: usize,
    w: usize,
    out: &mut [MaybeUninit<f32>],
) {
    // SAFETY: forwarded; every block lies inside the row, and exactly the blocks at its ends
    // are LEFT and RIGHT.
    unsafe {
        if w == B {
            return column_block::<V, C, NV, B, true, true>(a, o0, 0, out);
        }
        column_block::<V, C, NV, B, true, false>(a, o0, 0, out);
        let mut ox = B;
        while ox + B < w {
            column_block::<V, C, NV, B, false, false>(a, o0, ox, out);
            ox += B;
        }
        column_block::<V, C, NV, B, false, true>(a, o0, w - B, out);
    }
}

/// Outputs `ox .. ox + R` of the row, channels `o0 ..` (NV vectors): per tap row and input
/// channel, the block's input columns `ox - 1 ..= ox + R` in order (without the first when
/// LEFT, the block starting the row, and the last when RIGHT, the block ending it), each
/// broadcast once and multiplied by the kernel columns that reach an output of the block. An
/// output's sum: the bias, then per tap row (top first) and input channel, its kernel columns
/// left to right.
///
/// # Safety
/// As [`forward_row`], with `ox + R <= w`, `ox == 0` exactly when LEFT and `ox + R == w`
/// exactly when RIGHT.
#[inline(always)]
unsafe fn column_block<
    V: Vf,
    const C: usize,
    const NV: usize,
    const R: usize,
    const LEFT: bool,
    const RIGHT: bool,
>(
    a: RowArgs,
    o0: usize,
    ox: usize,
    out: &mut [MaybeUninit<f32>],
) {
    let ((h, w), cout) = (a.hw, a.cout);
    let cin = if C > 0 { C } else { a.cin };
    let nl: [usize; NV] = std::array::from_fn(|v| lanes::<V>(cout, o0, v));
    // Block column q (input column ox - 1 + q) for q in q0 .. q1.
    let (q0, q1) = (usize::from(LEFT), R + 2 - usize::from(RIGHT));
    assert!(R + 2 <= 26, "block wider than the unrolled columns");
    // SAFETY: reads stay in `wt` (rows of cout values, lanes bounded by nl), `b` and the input
    // rows oy - 1 ..= oy + 1 inside the map, columns ox - 1 + q for q in q0 .. q1 (inside the
    // row by the caller's promise); writes in `out`; V's features are the caller's.
    unsafe {
        let bv: [V; NV] =
            std::array::from_fn(|v| V::load(a.b.as_ptr().add(o0 + v * V::LANES), nl[v]));
        let mut acc = [bv; R];
        for ky in 0..3 {
            let Some(iy) = (a.oy + ky).checked_sub(1).filter(|&iy| iy < h) else {
                continue;
            };
            // Input column ox - 1 + q0.
            let xr = a.x.as_ptr().add(a.img + (iy * w + ox + q0 - 1) * cin);
            let wr = a.wt.as_ptr().add(ky * 3 * cin * cout + o0);
            for ci in 0..cin {
                let wv: [[V; NV]; 3] = std::array::from_fn(|kx| {
                    std::array::from_fn(|v| {
                        V::load(wr.add((kx * cin + ci) * cout + v * V::LANES), nl[v])
                    })
                });
                // Unrolled by hand: left as a loop, the compiler keeps it one (up to 26
                // steps of an inner loop), with the accumulators in memory.
                unrolled!(q in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
                    19, 20, 21, 22, 23, 24, 25] {
                    if (q0..q1).contains(&q) {
                        let s = *xr.add((q - q0) * cin + ci);
                        for kx in 0..3 {
                            if q >= kx && q - kx < R {
                                for v in 0..NV {
                                    acc[q - kx][v] = acc[q - kx][v].axpy(s, wv[kx][v]);
                                }
                            }
                        }
                    }
                });
            }
        }
        for (p, acc) in acc.iter().enumerate() {
            for v in 0..NV {
                let r = if a.relu { acc[v].relu() } else { acc[v] };
                r.store(
                    out.as_mut_ptr()
                        .cast::<f32>()
                        .add((ox + p) * cout + o0 + v * V::LANES),
                    nl[v],
                );
            }
        }
    }
}

/// The weight gradient over output positions `range` (flat indices into `(n, h, w)`): `dwt`
/// `(9 * cin, cout)` = sum over the positions of the padded patch (as rows of [`forward`]'s
/// kernel) times `g`'s row; `g` is `(n, h, w, cout)`, `x` `(n, h, w, cin)`; and the bias
/// gradient `db` (`cout`), the sum of `g`'s rows in the range, in order (each chunk's rows while
/// they are in L1). Overwrites `dwt` and `db`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_gradient(
    x: &[f32],
    (n, h, w): (usize, usize, usize),
    cin: usize,
    g: &[f32],
    cout: usize,
    range: std::ops::Range<usize>,
    kernel: Kernel,
    dwt: &mut [f32],
    db: &mut [f32],
) {
    assert_eq!(x.len(), n * h * w * cin, "input");
    assert_eq!(g.len(), n * h * w * cout, "gradient");
    assert!(range.end <= n * h * w, "positions");
    assert_eq!(dwt.len(), 9 * cin * cout, "weight gradient");
    assert_eq!(db.len(), cout, "bias gradient");
    dwt.fill(0.0);
    db.fill(0.0);
    let a = GradArgs {
        x,
        hw: (h, w),
        cin,
        g,
        cout,
    };
    // SAFETY: sizes asserted above; the features are the CPU's (for_kernel).
    unsafe {
        match Simd::for_kernel(kernel) {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 | Simd::Avx512Bf16 => grad_avx512(a, range, dwt, db),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => grad_avx2(a, range, dwt, db),
            Simd::Base => grad::<Arr>(a, range, dwt, db),
        }
    }
}

/// A weight gradient's operands.
#[derive(Clone, Copy)]
struct GradArgs<'a> {
    x: &'a [f32],
    hw: (usize, usize),
    cin: usize,
    g: &'a [f32],
    cout: usize,
}

/// # Safety
/// The CPU has `V`'s features; sizes as [`weight_gradient`] asserts them.
#[inline(always)]
unsafe fn grad<V: Vf>(a: GradArgs, range: std::ops::Range<usize>, dwt: &mut [f32], db: &mut [f32]) {
    let per = (CHUNK_BYTES / (4 * a.cout.min(MAX_NV * V::LANES))).max(16);
    let mut p = range.start;
    while p < range.end {
        let chunk = p..(p + per).min(range.end);
        let mut o0 = 0;
        while o0 < a.cout {
            // SAFETY: forwarded.
            unsafe {
                match (a.cout - o0).div_ceil(V::LANES).min(MAX_NV) {
                    // A first layer's 27 kernel rows in one block.
                    1 if a.cin == CIN => grad_block::<V, 1, 3, { 3 * CIN }>(a, &chunk, o0, 0, dwt),
                    1 => grad_columns::<V, 1, { ACC / 3 }>(a, &chunk, o0, dwt),
                    2 => grad_columns::<V, 2, { ACC / 6 }>(a, &chunk, o0, dwt),
                    3 => grad_blocks::<V, 3, { ACC / 3 }>(a, &chunk, o0, dwt),
                    _ => grad_blocks::<V, 4, { ACC / 4 }>(a, &chunk, o0, dwt),
                }
            }
            o0 += MAX_NV * V::LANES;
        }
        for row in a.g[chunk.start * a.cout..chunk.end * a.cout].chunks_exact(a.cout) {
            db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
        }
        p = chunk.end;
    }
}

/// [`grad_blocks`] for one or two output vectors, by input column (as [`row_columns`]): per
/// tap row, blocks of GC input channels (then 4 and 1) with the accumulators of all three
/// kernel columns, so that each input value is broadcast once and multiplied by the gradients
/// of the three positions it reaches, which slide along the row in registers.
///
/// # Safety
/// As [`grad`].
#[inline(always)]
unsafe fn grad_columns<V: Vf, const NV: usize, const GC: usize>(
    a: GradArgs,
    chunk: &std::ops::Range<usize>,
    o0: usize,
    dwt: &mut [f32],
) {
    for ky in 0..3 {
        let mut c0 = 0;
        // SAFETY: forwarded; every block's channels are inside the input's.
        unsafe {
            while a.cin - c0 >= GC {
                channel_block::<V, NV, GC>(a, chunk, o0, ky, c0, dwt);
                c0 += GC;
            }
            while a.cin - c0 >= 4 {
                channel_block::<V, NV, 4>(a, chunk, o0, ky, c0, dwt);
                c0 += 4;
            }
            while c0 < a.cin {
                channel_block::<V, NV, 1>(a, chunk, o0, ky, c0, dwt);
                c0 += 1;
            }
        }
    }
}

/// Kernel rows `(ky, kx, c0 + c)` for every `kx` and `c < GC`, output channels `o0 ..` (NV
/// vectors): their gradient rows in `dwt` plus the chunk's positions. Along each row segment
/// of the chunk, input column `ix` meets the gradients of positions `ix + 1 - kx`; its values
/// are broadcast once each, against the three gradients (held in registers as they slide).
/// Each kernel row adds the positions in increasing order, as [`grad_block`] does.
///
/// # Safety
/// As [`grad`], with `ky < 3` and `c0 + GC <= cin`.
// The loops index the accumulators and the gradient window by the same constants (kept in
// registers once unrolled); iterators over one of them would hide the pairing.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn channel_block<V: Vf, const NV: usize, const GC: usize>(
    a: GradArgs,
    chunk: &std::ops::Range<usize>,
    o0: usize,
    ky: usize,
    c0: usize,
    dwt: &mut [f32],
) {
    let ((h, w), cin, cout) = (a.hw, a.cin, a.cout);
    let nl: [usize; NV] = std::array::from_fn(|v| lanes::<V>(cout, o0, v));
    let (d, x, g) = (dwt.as_mut_ptr(), a.x.as_ptr(), a.g.as_ptr());
    // SAFETY (whole body): positions are below n * h * w, input reads at columns 0 .. w of
    // rows inside the map, channels c0 .. c0 + GC; gradient reads rows of the segment;
    // accumulator rows of `dwt`; V's features are the caller's.
    unsafe {
        let at = |kx: usize, c: usize, v: usize| {
            d.add(((ky * 3 + kx) * cin + c0 + c) * cout + o0 + v * V::LANES)
        };
        let mut acc = [[[V::zero(); NV]; GC]; 3];
        for (kx, acc) in acc.iter_mut().enumerate() {
            for (c, acc) in acc.iter_mut().enumerate() {
                for v in 0..NV {
                    acc[v] = V::load(at(kx, c, v), nl[v]);
                }
            }
        }
        let mut p = chunk.start;
        while p < chunk.end {
            let (img, rem) = (p / (h * w), p % (h * w));
            let (oy, s) = (rem / w, rem % w);
            let len = (chunk.end - p).min(w - s);
            let e = s + len;
            let iy = oy + ky;
            if (1..=h).contains(&iy) {
                let xr = x.add(((img * h + iy - 1) * w) * cin + c0);
                // The gradient of position ox (of this row), zero outside s .. e.
                let gp = g.add((p - s) * cout + o0);
                let grad = |ox: usize| -> [V; NV] {
                    std::array::from_fn(|v| {
                        if (s..e).contains(&ox) {
                            V::load(gp.add(ox * cout + v * V::LANES), nl[v])
                        } else {
                            V::zero()
                        }
                    })
                };
                // Input column ix feeds kx = 0, 1, 2 through positions ix + 1, ix, ix - 1.
                // Columns s - 1 .. e inside the map; the first two and last two (where a
                // position is outside the segment) check each kernel column.
                let (first, last) = (s.saturating_sub(1), (e + 1).min(w));
                // (g(first - 1) is before the segment: zero.)
                let mut win: [[V; NV]; 3] = [grad(first + 1), grad(first), [V::zero(); NV]];
                for ix in first..last {
                    // win = [g(ix + 1), g(ix), g(ix - 1)].
                    let xs = xr.add(ix * cin);
                    if ix > s && ix + 1 < e {
                        for c in 0..GC {
                            let bx = *xs.add(c);
                            for kx in 0..3 {
                                for v in 0..NV {
                                    acc[kx][c][v] = acc[kx][c][v].axpy(bx, win[kx][v]);
                                }
                            }
                        }
                    } else {
                        let on: [bool; 3] = std::array::from_fn(|kx| {
                            ix + 1 >= kx && (s..e).contains(&(ix + 1 - kx))
                        });
                        for c in 0..GC {
                            let bx = *xs.add(c);
                            for kx in 0..3 {
                                if on[kx] {
                                    for v in 0..NV {
                                        acc[kx][c][v] = acc[kx][c][v].axpy(bx, win[kx][v]);
                                    }
                                }
                            }
                        }
                    }
                    win = [grad(ix + 2), win[0], win[1]];
                }
            }
            p += len;
        }
        for (kx, acc) in acc.iter().enumerate() {
            for (c, acc) in acc.iter().enumerate() {
                for v in 0..NV {
                    acc[v].store(at(kx, c, v), nl[v]);
                }
            }
        }
    }
}

/// Every kernel row's gradient over the chunk, for the output vectors NV from `o0`: per tap
/// row, blocks of G (column, channel) pairs, then of 4 and 1.
///
/// # Safety
/// As [`grad`].
#[inline(always)]
unsafe fn grad_blocks<V: Vf, const NV: usize, const G: usize>(
    a: GradArgs,
    chunk: &std::ops::Range<usize>,
    o0: usize,
    dwt: &mut [f32],
) {
    let row = 3 * a.cin;
    for ky in 0..3 {
        let mut j = 0;
        // SAFETY: forwarded; every block stays inside the tap row.
        unsafe {
            while row - j >= G {
                grad_block::<V, NV, 1, G>(a, chunk, o0, ky * row + j, dwt);
                j += G;
            }
            while row - j >= 4 {
                grad_block::<V, NV, 1, 4>(a, chunk, o0, ky * row + j, dwt);
                j += 4;
            }
            while j < row {
                grad_block::<V, NV, 1, 1>(a, chunk, o0, ky * row + j, dwt);
                j += 1;
            }
        }
    }
}

/// Kernel rows `r0 + k * 3 * cin + jj` for `k < KY`, `jj < G` (G (column, channel) pairs of KY
/// consecutive tap rows; `r0 = ky0 * 3 * cin + j0`), output channels `o0 ..` (NV vectors):
/// their gradient rows in `dwt` plus the chunk's positions, in order (taps on the padding add
/// nothing and are skipped).
///
/// # Safety
/// As [`grad`], with the rows inside the kernel.
#[inline(always)]
unsafe fn grad_block<V: Vf, const NV: usize, const KY: usize, const G: usize>(
    a: GradArgs,
    chunk: &std::ops::Range<usize>,
    o0: usize,
    r0: usize,
    dwt: &mut [f32],
) {
    let ((h, w), cin, cout) = (a.hw, a.cin, a.cout);
    let row = 3 * cin;
    let (ky0, j0) = (r0 / row, r0 % row);
    let nl: [usize; NV] = std::array::from_fn(|v| lanes::<V>(cout, o0, v));
    let (d, x) = (dwt.as_mut_ptr(), a.x.as_ptr());
    // SAFETY (whole body): the positions are below n * h * w; every input read is at a row
    // and column inside the map (checked, or inside the interior range), every gradient read a
    // row of `g`, the accumulators rows of `dwt`; V's features are the caller's.
    unsafe {
        let at =
            |k: usize, jj: usize, v: usize| d.add((r0 + k * row + jj) * cout + o0 + v * V::LANES);
        let mut acc = [[[V::zero(); NV]; G]; KY];
        for (k, acc) in acc.iter_mut().enumerate() {
            for (jj, acc) in acc.iter_mut().enumerate() {
                for v in 0..NV {
                    acc[v] = V::load(at(k, jj, v), nl[v]);
                }
            }
        }
        // An edge position's taps (a tap off the map), zeros where off the map; the block's
        // (column, channel) pairs, worked out once (divisions are slow in the gather).
        let mut patch = [[0f32; G]; KY];
        let pairs: [(usize, usize); G] =
            std::array::from_fn(|jj| ((j0 + jj) / cin, (j0 + jj) % cin));
        let mut p = chunk.start;
        while p < chunk.end {
            let (img, rem) = (p / (h * w), p % (h * w));
            let (oy, ox0) = (rem / w, rem % w);
            let len = (chunk.end - p).min(w - ox0);
            let rows_on = (0..KY).all(|k| (1..=h).contains(&(oy + ky0 + k)));
            if !rows_on && KY == 1 {
                // The block's one tap row is off the map: nothing to add.
                p += len;
                continue;
            }
            let g0 = a.g.as_ptr().add(p * cout + o0);
            for i in 0..len {
                let ox = ox0 + i;
                // The block's inputs for this position: in place, rows `stride` apart, or
                // (at an edge) gathered into the patch.
                let (xs, stride) = if rows_on && ox >= 1 && ox + 1 < w {
                    let xs = x.add(((img * h + oy + ky0 - 1) * w + ox - 1) * cin + j0);
                    (xs, w * cin)
                } else {
                    for (k, prow) in patch.iter_mut().enumerate() {
                        let iy = (oy + ky0 + k).checked_sub(1).filter(|&iy| iy < h);
                        for (v, &(kx, c)) in prow.iter_mut().zip(&pairs) {
                            let ix = (ox + kx).checked_sub(1).filter(|&ix| ix < w);
                            *v = match (iy, ix) {
                                (Some(iy), Some(ix)) => *x.add(((img * h + iy) * w + ix) * cin + c),
                                _ => 0.0,
                            };
                        }
                    }
                    (patch.as_ptr().cast::<f32>(), G)
                };
                let gv: [V; NV] =
                    std::array::from_fn(|v| V::load(g0.add(i * cout + v * V::LANES), nl[v]));
                for (k, acc) in acc.iter_mut().enumerate() {
                    let xk = xs.add(k * stride);
                    for (jj, acc) in acc.iter_mut().enumerate() {
                        let s = *xk.add(jj);
                        for v in 0..NV {
                            acc[v] = acc[v].axpy(s, gv[v]);
                        }
                    }
                }
            }
            p += len;
        }
        for (k, acc) in acc.iter().enumerate() {
            for (jj, acc) in acc.iter().enumerate() {
                for v in 0..NV {
                    acc[v].store(at(k, jj, v), nl[v]);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn forward_row_avx512(a: RowArgs, w: usize, out: &mut [MaybeUninit<f32>]) {
    // SAFETY: forwarded; the caller checked the features.
    unsafe { forward_row::<super::simd::Z>(a, w, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_row_avx2(a: RowArgs, w: usize, out: &mut [MaybeUninit<f32>]) {
    // SAFETY: forwarded; the caller checked the features.
    unsafe { forward_row::<Arr>(a, w, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn grad_avx512(a: GradArgs, range: std::ops::Range<usize>, dwt: &mut [f32], db: &mut [f32]) {
    // SAFETY: forwarded; the caller checked the features.
    unsafe { grad::<super::simd::Z>(a, range, dwt, db) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grad_avx2(a: GradArgs, range: std::ops::Range<usize>, dwt: &mut [f32], db: &mut [f32]) {
    // SAFETY: forwarded; the caller checked the features.
    unsafe { grad::<Arr>(a, range, dwt, db) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain loops in f64 over the unpadded input.
    fn reference(
        x: &[f32],
        (n, h, w): (usize, usize, usize),
        cin: usize,
        wt: &[f32],
        cout: usize,
    ) -> Vec<f64> {
        let mut y = vec![0f64; n * h * w * cout];
        for img in 0..n {
            for oy in 0..h {
                for ox in 0..w {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = (oy + ky, ox + kx);
                            if iy < 1 || ix < 1 || iy > h || ix > w {
                                continue;
                            }
                            for c in 0..cin {
                                let v = x[((img * h + iy - 1) * w + ix - 1) * cin + c] as f64;
                                for o in 0..cout {
                                    y[((img * h + oy) * w + ox) * cout + o] +=
                                        v * wt[((ky * 3 + kx) * cin + c) * cout + o] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        y
    }

    /// A written buffer as the output `forward` takes.
    fn uninit(v: &mut [f32]) -> &mut [MaybeUninit<f32>] {
        // SAFETY: MaybeUninit<f32> has f32's layout, and `forward` writes only f32 values.
        unsafe { &mut *(v as *mut [f32] as *mut [MaybeUninit<f32>]) }
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| (((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 - 1000.0) / 1000.0)
            .collect()
    }

    #[test]
    fn forward_and_gradients_match_plain_loops() {
        for kernel in [
            Kernel::Portable,
            crate::model::engine::isa::kernel_for(crate::model::Precision::F32).unwrap(),
        ] {
            // First layers (3 inputs), the narrow nets' thin layers, odd sizes, rows shorter
            // than a block, and outputs wider than one column block.
            for (n, h, w, cin, cout) in [
                (2, 5, 7, 3, 8),
                (1, 4, 3, 3, 21),
                (3, 6, 6, 3, 64),
                (2, 5, 30, 8, 16),
                (1, 6, 27, 16, 32),
                (2, 4, 5, 5, 13),
                (1, 3, 9, 16, 70),
                (1, 2, 2, 33, 40),
                // Several chunks of positions, chunks ending mid-row.
                (2, 21, 30, 3, 8),
                (1, 23, 17, 8, 16),
                (1, 11, 13, 16, 64),
                (3, 8, 8, 64, 64),
                (3, 8, 8, 32, 64),
                // Rows of exactly one block, of four, and of one position.
                (1, 3, 16, 8, 16),
                (2, 3, 8, 16, 32),
                (1, 2, 4, 8, 16),
                (1, 3, 1, 8, 32),
            ] {
                let dims = (n, h, w);
                let x = values(n * h * w * cin, 1);
                let wt = values(9 * cin * cout, 2);
                let b = values(cout, 3);
                // NaNs first: every output must be written.
                let mut y = vec![f32::NAN; n * h * w * cout];
                forward(&x, dims, cin, &wt, &b, cout, false, kernel, uninit(&mut y));
                let want = reference(&x, dims, cin, &wt, cout);
                for (i, (a, r)) in y.iter().zip(&want).enumerate() {
                    let r = r + b[i % cout] as f64;
                    assert!(
                        (*a as f64 - r).abs() < 1e-5 * cin as f64,
                        "forward {i}: {a} vs {r}"
                    );
                }
                let mut yr = vec![f32::NAN; y.len()];
                forward(&x, dims, cin, &wt, &b, cout, true, kernel, uninit(&mut yr));
                assert!(yr.iter().zip(&y).all(|(r, v)| *r == v.max(0.0)));

                // dW = patches^T g and dx = conv(g, W flipped): the adjoints of the forward in
                // W and in x, checked by <conv(x, W), g> = <W, dW(x, g)> = <x, dx(g, W)> with
                // the bias left out.
                let g = values(n * h * w * cout, 4);
                let m = n * h * w;
                let mut dwt = vec![f32::NAN; 9 * cin * cout];
                let mut db = vec![f32::NAN; cout];
                weight_gradient(&x, dims, cin, &g, cout, 0..m, kernel, &mut dwt, &mut db);
                for (o, d) in db.iter().enumerate() {
                    let want: f64 = g.iter().skip(o).step_by(cout).map(|v| *v as f64).sum();
                    assert!(
                        (*d as f64 - want).abs() < 1e-4 * m as f64,
                        "db {o}: {d} vs {want}"
                    );
                }
                let lhs: f64 = want.iter().zip(&g).map(|(y, g)| y * *g as f64).sum();
                let dot = |a: &[f32], b: &[f32]| -> f64 {
                    a.iter().zip(b).map(|(a, b)| *a as f64 * *b as f64).sum()
                };
                let rhs = dot(&wt, &dwt);
                assert!(
                    (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
                    "dW: {lhs} vs {rhs}"
                );
                // Two ranges summed: the same (a range may start mid-row).
                let mut halves = vec![0f32; dwt.len()];
                let mut part = vec![0f32; dwt.len()];
                let (mut db1, mut db2) = (vec![0f32; cout], vec![0f32; cout]);
                let first = 0..m / 2 + 1;
                weight_gradient(
                    &x,
                    dims,
                    cin,
                    &g,
                    cout,
                    first,
                    kernel,
                    &mut halves,
                    &mut db1,
                );
                weight_gradient(
                    &x,
                    dims,
                    cin,
                    &g,
                    cout,
                    m / 2 + 1..m,
                    kernel,
                    &mut part,
                    &mut db2,
                );
                halves.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
                for ((d, d1), d2) in db.iter().zip(&db1).zip(&db2) {
                    assert!((d - (d1 + d2)).abs() < 1e-4 * d.abs().max(1.0), "db halves");
                }
                for (a, b) in dwt.iter().zip(&halves) {
                    assert!((a - b).abs() < 1e-4 * a.abs().max(1.0), "{a} vs {b}");
                }
                // The data gradient from the same g: W = (cout, cin, 3, 3) from the rows.
                let mut w4 = vec![0f32; cout * cin * 9];
                for t in 0..9 {
                    for c in 0..cin {
                        for o in 0..cout {
                            w4[(o * cin + c) * 9 + t] = wt[(t * cin + c) * cout + o];
                        }
                    }
                }
                let mut dx = vec![f32::NAN; x.len()];
                let zero = vec![0f32; cin];
                let rows = flipped_rows(&w4, cout, cin);
                forward(
                    &g,
                    dims,
                    cout,
                    &rows,
                    &zero,
                    cin,
                    false,
                    kernel,
                    uninit(&mut dx),
                );
                let rhs = dot(&x, &dx);
                assert!(
                    (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
                    "dx: {lhs} vs {rhs}"
                );
            }
        }
    }
}
