//! Direct 3x3 convolutions (stride 1, padding 1) of three-channel inputs — a net's first
//! layer — channels-last: the forward pass and the weight gradient, for training.
//!
//! With 3 inputs, unfolding a patch writes 27 floats per position to multiply them by a
//! 27-row kernel matrix: the copy costs as much as the product, and the GEMM's panels are
//! mostly padding when the layer has few outputs (8 or 16 in the narrow nets). Here each
//! output position is 27 vector multiply-adds, a vector of up to 16 output channels times one
//! input value, read in place from a zero-padded copy of the input; the 27 weight vectors (or
//! the 27 weight-gradient accumulators) stay in registers. Hand-written because no crate offers
//! channels-last direct convolutions; the vector type is the engine's ([`super::simd`]).
//!
//! Order of the sums (what the tests' tolerances allow for): a forward output adds the bias,
//! then the taps row by row, each row's (column, channel) pairs in memory order; a weight
//! gradient sums positions in increasing order within the caller's range.

use rayon::prelude::*;

use super::isa::Kernel;
use super::simd::{Arr, Vf};
use super::winograd::Simd;

/// Input channels of the layers these loops take.
pub(crate) const CIN: usize = 3;
/// Multiply-adds per output channel and position: 3 x 3 taps of [`CIN`] channels.
const TAPS: usize = 9 * CIN;

/// A zero-padded copy of a channels-last map `(n, h, w, CIN)`: `(n, h + 2, w + 2, CIN)`.
pub(crate) fn pad(x: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
    let wp = w + 2;
    let mut out = vec![0f32; n * (h + 2) * wp * CIN];
    out.par_chunks_mut((h + 2) * wp * CIN)
        .zip(x.par_chunks(h * w * CIN))
        .for_each(|(o, x)| {
            for (r, row) in x.chunks_exact(w * CIN).enumerate() {
                let at = ((r + 1) * wp + 1) * CIN;
                o[at..at + w * CIN].copy_from_slice(row);
            }
        });
    out
}

/// `y = relu?(conv(x, W) + b)` for `x` padded by [`pad`] from `(n, h, w, CIN)`; `wt` is the
/// kernel as `(TAPS, cout)` rows (tap-major, then channel: [`super::unfold::kernel_rows`]'s
/// order), `y` `(n, h, w, cout)`. One task per output row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    xp: &[f32],
    (n, h, w): (usize, usize, usize),
    wt: &[f32],
    b: &[f32],
    cout: usize,
    relu: bool,
    kernel: Kernel,
    y: &mut [f32],
) {
    assert_eq!(xp.len(), n * (h + 2) * (w + 2) * CIN, "padded input");
    assert_eq!(wt.len(), TAPS * cout, "kernel rows");
    assert_eq!(b.len(), cout, "bias");
    assert_eq!(y.len(), n * h * w * cout, "output");
    let simd = Simd::for_kernel(kernel);
    y.par_chunks_mut(w * cout)
        .enumerate()
        .for_each(|(row, out)| {
            let (img, oy) = (row / h, row % h);
            let base = (img * (h + 2) + oy) * (w + 2) * CIN;
            let a = RowArgs {
                xp,
                base,
                wp: w + 2,
                wt,
                b,
                cout,
                relu,
            };
            // SAFETY: `a` addresses rows oy..oy + 3 of image img of `xp` (asserted sizes), `out`
            // is one output row of w * cout floats; the features are the CPU's (for_kernel).
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
    xp: &'a [f32],
    /// Offset of the row's first padded input row.
    base: usize,
    /// Padded width.
    wp: usize,
    wt: &'a [f32],
    b: &'a [f32],
    cout: usize,
    relu: bool,
}

/// # Safety
/// The CPU has `V`'s features; `a` and `out` as [`forward`] builds them.
#[inline(always)]
unsafe fn forward_row<V: Vf>(a: RowArgs, w: usize, out: &mut [f32]) {
    let cout = a.cout;
    let x = a.xp.as_ptr();
    let mut o0 = 0;
    while o0 < cout {
        let nl = V::LANES.min(cout - o0);
        // SAFETY: every read is inside `wt`, `b` and the three padded rows, every write inside
        // `out` (the caller's sizes); the vector ops need V's features (the caller's).
        unsafe {
            let mut wv = [V::zero(); TAPS];
            for (t, v) in wv.iter_mut().enumerate() {
                *v = V::load(a.wt.as_ptr().add(t * cout + o0), nl);
            }
            let bv = V::load(a.b.as_ptr().add(o0), nl);
            for ox in 0..w {
                let mut acc = bv;
                for ky in 0..3 {
                    let p = x.add(a.base + (ky * a.wp + ox) * CIN);
                    for j in 0..3 * CIN {
                        acc = acc.axpy(*p.add(j), wv[ky * 3 * CIN + j]);
                    }
                }
                if a.relu {
                    acc = acc.relu();
                }
                acc.store(out.as_mut_ptr().add(ox * cout + o0), nl);
            }
        }
        o0 += V::LANES;
    }
}

/// The weight gradient over output positions `range` (flat indices into `(n, h, w)`): `dwt`
/// `(TAPS, cout)` = sum over the positions of the padded patch (as rows of [`forward`]'s
/// kernel) times `g`'s row; `g` is `(n, h, w, cout)`, `xp` padded by [`pad`]. Overwrites
/// `dwt`.
pub(crate) fn weight_gradient(
    xp: &[f32],
    (n, h, w): (usize, usize, usize),
    g: &[f32],
    cout: usize,
    range: std::ops::Range<usize>,
    kernel: Kernel,
    dwt: &mut [f32],
) {
    assert_eq!(xp.len(), n * (h + 2) * (w + 2) * CIN, "padded input");
    assert_eq!(g.len(), n * h * w * cout, "gradient");
    assert!(range.end <= n * h * w, "positions");
    assert_eq!(dwt.len(), TAPS * cout, "weight gradient");
    let a = GradArgs {
        xp,
        hw: (h, w),
        g,
        cout,
        range,
    };
    // SAFETY: sizes asserted above; the features are the CPU's (for_kernel).
    unsafe {
        match Simd::for_kernel(kernel) {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 | Simd::Avx512Bf16 => grad_avx512(a, dwt),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => grad_avx2(a, dwt),
            Simd::Base => grad::<Arr>(a, dwt),
        }
    }
}

/// A weight gradient's operands.
#[derive(Clone)]
struct GradArgs<'a> {
    xp: &'a [f32],
    hw: (usize, usize),
    g: &'a [f32],
    cout: usize,
    range: std::ops::Range<usize>,
}

/// # Safety
/// The CPU has `V`'s features; sizes as [`weight_gradient`] asserts them.
#[inline(always)]
unsafe fn grad<V: Vf>(a: GradArgs, dwt: &mut [f32]) {
    let (h, w) = a.hw;
    let (cout, wp) = (a.cout, w + 2);
    let x = a.xp.as_ptr();
    let mut o0 = 0;
    while o0 < cout {
        let nl = V::LANES.min(cout - o0);
        // SAFETY: positions below n * h * w address padded rows inside `xp` and rows of `g`;
        // the stores stay in `dwt`; the vector ops need V's features (the caller's).
        unsafe {
            let mut acc = [V::zero(); TAPS];
            let mut p = a.range.start;
            while p < a.range.end {
                let (img, rem) = (p / (h * w), p % (h * w));
                let (oy, ox0) = (rem / w, rem % w);
                let len = (a.range.end - p).min(w - ox0);
                let base = (img * (h + 2) + oy) * wp * CIN;
                for ox in ox0..ox0 + len {
                    let gv = V::load(a.g.as_ptr().add((p + ox - ox0) * cout + o0), nl);
                    for ky in 0..3 {
                        let px = x.add(base + (ky * wp + ox) * CIN);
                        for j in 0..3 * CIN {
                            let t = ky * 3 * CIN + j;
                            acc[t] = acc[t].axpy(*px.add(j), gv);
                        }
                    }
                }
                p += len;
            }
            for (t, v) in acc.iter().enumerate() {
                v.store(dwt.as_mut_ptr().add(t * cout + o0), nl);
            }
        }
        o0 += V::LANES;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn forward_row_avx512(a: RowArgs, w: usize, out: &mut [f32]) {
    // SAFETY: forwarded; the caller checked the features.
    unsafe { forward_row::<super::simd::Z>(a, w, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_row_avx2(a: RowArgs, w: usize, out: &mut [f32]) {
    // SAFETY: forwarded; the caller checked the features.
    unsafe { forward_row::<Arr>(a, w, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn grad_avx512(a: GradArgs, dwt: &mut [f32]) {
    // SAFETY: forwarded; the caller checked the features.
    unsafe { grad::<super::simd::Z>(a, dwt) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grad_avx2(a: GradArgs, dwt: &mut [f32]) {
    // SAFETY: forwarded; the caller checked the features.
    unsafe { grad::<Arr>(a, dwt) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain loops in f64 over the unpadded input.
    fn reference(x: &[f32], (n, h, w): (usize, usize, usize), wt: &[f32], cout: usize) -> Vec<f64> {
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
                            for c in 0..CIN {
                                let v = x[((img * h + iy - 1) * w + ix - 1) * CIN + c] as f64;
                                for o in 0..cout {
                                    y[((img * h + oy) * w + ox) * cout + o] +=
                                        v * wt[((ky * 3 + kx) * CIN + c) * cout + o] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| (((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 - 1000.0) / 1000.0)
            .collect()
    }

    #[test]
    fn forward_and_weight_gradient_match_plain_loops() {
        for kernel in [
            Kernel::Portable,
            crate::model::engine::isa::kernel_for(crate::model::Precision::F32).unwrap(),
        ] {
            for (n, h, w, cout) in [(2, 5, 7, 8), (1, 4, 3, 21), (3, 6, 6, 64)] {
                let x = values(n * h * w * CIN, 1);
                let wt = values(TAPS * cout, 2);
                let b = values(cout, 3);
                let xp = pad(&x, n, h, w);
                let mut y = vec![0f32; n * h * w * cout];
                forward(&xp, (n, h, w), &wt, &b, cout, false, kernel, &mut y);
                let want = reference(&x, (n, h, w), &wt, cout);
                for (i, (a, r)) in y.iter().zip(&want).enumerate() {
                    let r = r + b[i % cout] as f64;
                    assert!((*a as f64 - r).abs() < 1e-5, "forward {i}: {a} vs {r}");
                }
                let mut yr = vec![0f32; y.len()];
                forward(&xp, (n, h, w), &wt, &b, cout, true, kernel, &mut yr);
                assert!(yr.iter().zip(&y).all(|(r, v)| *r == v.max(0.0)));

                // dW = patches^T g: the adjoint of the forward in W, checked by
                // <conv(x, W), g> = <W, dW(x, g)> with the bias left out.
                let g = values(n * h * w * cout, 4);
                let m = n * h * w;
                let mut dwt = vec![0f32; TAPS * cout];
                let mut halves = vec![0f32; TAPS * cout];
                weight_gradient(&xp, (n, h, w), &g, cout, 0..m, kernel, &mut dwt);
                // Two ranges summed: the same (a range may start mid-row).
                let mut part = vec![0f32; TAPS * cout];
                weight_gradient(&xp, (n, h, w), &g, cout, 0..m / 2 + 1, kernel, &mut halves);
                weight_gradient(&xp, (n, h, w), &g, cout, m / 2 + 1..m, kernel, &mut part);
                halves.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
                let lhs: f64 = want.iter().zip(&g).map(|(y, g)| y * *g as f64).sum();
                let rhs: f64 = wt
                    .iter()
                    .zip(&dwt)
                    .map(|(w, d)| *w as f64 * *d as f64)
                    .sum();
                assert!(
                    (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                    "{lhs} vs {rhs}"
                );
                for (a, b) in dwt.iter().zip(&halves) {
                    assert!((a - b).abs() < 1e-4 * a.abs().max(1.0), "{a} vs {b}");
                }
            }
        }
    }
}
