//! Unfolding (im2col), its adjoint (col2im) and kernel reordering: the convolution-as-matrix-
//! product plumbing shared by the fast inference engine (channels-last
//! rows) and training's CPU convolution (channels-first columns).

use rayon::prelude::*;

/// Geometry of one stride-1 convolution: batch, input channels, input size, kernel, padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel side.
    pub k: usize,
    /// Zero padding on each side.
    pub p: usize,
}

impl Geom {
    /// Output height.
    pub fn out_h(&self) -> usize {
        self.h + 2 * self.p + 1 - self.k
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        self.w + 2 * self.p + 1 - self.k
    }

    /// Output positions over the batch: N * H' * W'.
    pub fn cols(&self) -> usize {
        self.n * self.out_h() * self.out_w()
    }

    /// Length of one unfolded patch: C * k * k.
    pub fn patch(&self) -> usize {
        self.c * self.k * self.k
    }

    /// For kernel column `kx`: the output columns [ox0, ox1) that read inside the image, and
    /// the input column of ox0.
    fn x_range(&self, kx: usize) -> Option<(usize, usize, usize)> {
        let ox0 = self.p.saturating_sub(kx);
        let ox1 = (self.w + self.p).saturating_sub(kx).min(self.out_w());
        (ox0 < ox1).then(|| (ox0, ox1, ox0 + kx - self.p))
    }
}

/// Unfolds a contiguous NCHW input into a (C*k*k, N*H'*W') matrix, row `(c*k + ky)*k + kx`.
/// Copies contiguous runs of rows, so it runs at memory speed.
pub fn unfold_nchw(x: &[f32], g: Geom) -> Vec<f32> {
    let (ho, wo) = (g.out_h(), g.out_w());
    let ncols = g.cols();
    let plane = g.h * g.w;
    let mut out = vec![0f32; g.patch() * ncols];
    out.par_chunks_mut(ncols)
        .enumerate()
        .for_each(|(row, dst)| {
            let (ci, ky, kx) = (row / (g.k * g.k), (row / g.k) % g.k, row % g.k);
            let Some((ox0, ox1, ix0)) = g.x_range(kx) else {
                return;
            };
            for b in 0..g.n {
                let src = &x[(b * g.c + ci) * plane..(b * g.c + ci + 1) * plane];
                for oy in 0..ho {
                    let iy = oy + ky;
                    if iy < g.p || iy - g.p >= g.h {
                        continue;
                    }
                    let s = (iy - g.p) * g.w + ix0;
                    let d = b * ho * wo + oy * wo;
                    dst[d + ox0..d + ox1].copy_from_slice(&src[s..s + (ox1 - ox0)]);
                }
            }
        });
    out
}

/// The adjoint of [`unfold_nchw`]: adds every unfolded entry back to its input position.
pub fn fold_nchw(cols: &[f32], g: Geom) -> Vec<f32> {
    let (ho, wo) = (g.out_h(), g.out_w());
    let ncols = g.cols();
    let plane = g.h * g.w;
    let mut out = vec![0f32; g.n * g.c * plane];
    // One task per (image, channel) plane: its k*k rows are summed into it.
    out.par_chunks_mut(plane).enumerate().for_each(|(bc, dst)| {
        let (b, ci) = (bc / g.c, bc % g.c);
        for ky in 0..g.k {
            for kx in 0..g.k {
                let Some((ox0, ox1, ix0)) = g.x_range(kx) else {
                    continue;
                };
                let row = (ci * g.k + ky) * g.k + kx;
                let src = &cols[row * ncols + b * ho * wo..row * ncols + (b + 1) * ho * wo];
                for oy in 0..ho {
                    let iy = oy + ky;
                    if iy < g.p || iy - g.p >= g.h {
                        continue;
                    }
                    let d = (iy - g.p) * g.w + ix0;
                    let s = oy * wo + ox0;
                    for (o, v) in dst[d..d + (ox1 - ox0)]
                        .iter_mut()
                        .zip(&src[s..s + (ox1 - ox0)])
                    {
                        *o += v;
                    }
                }
            }
        }
    });
    out
}

/// Unfolds output rows `r0 .. r0 + r` of a channels-last (N, H, W, C) input into `dst`
/// (r rows of C*k*k values at stride `ld`, the rest of each row zeroed), each row laid out
/// `(ky*k + kx)*C + c` to match [`kernel_rows`]; `cast` converts each value (identity for f32,
/// rounding for bf16).
#[allow(clippy::too_many_arguments)]
pub fn unfold_nhwc_rows<T: Copy + Default>(
    x: &[f32],
    g: Geom,
    r0: usize,
    r: usize,
    dst: &mut [T],
    ld: usize,
    cast: impl Fn(f32) -> T + Copy,
) {
    let (k, pad, cin) = (g.k, g.p as isize, g.c);
    let (oh, ow) = (g.out_h(), g.out_w());
    let kk = g.patch();
    assert!(ld >= kk && dst.len() >= r * ld);
    for i in 0..r {
        let row = r0 + i;
        let img = row / (oh * ow);
        let rem = row % (oh * ow);
        let (oy, ox) = (rem / ow, rem % ow);
        let d = &mut dst[i * ld..(i + 1) * ld];
        d[kk..].fill(T::default());
        for ky in 0..k {
            let iy = oy as isize + ky as isize - pad;
            for kx in 0..k {
                let ix = ox as isize + kx as isize - pad;
                let t = (ky * k + kx) * cin;
                let seg = &mut d[t..t + cin];
                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                    seg.fill(T::default());
                } else {
                    let s = ((img * g.h + iy as usize) * g.w + ix as usize) * cin;
                    for (o, v) in seg.iter_mut().zip(&x[s..s + cin]) {
                        *o = cast(*v);
                    }
                }
            }
        }
    }
}

/// The adjoint of unfolding one channels-last image (col2im): adds each row of `cols`
/// (`out_h * out_w` rows of `C*k*k` values, laid out `c*k*k + ky*k + kx` like a (cout, cin, k, k)
/// kernel's columns) back onto the input pixels it was read from, into `dx` (H, W, C). `g.n` is
/// ignored (one image). Training's data gradient of the convolutions Winograd does not run.
pub fn fold_nhwc_image(cols: &[f32], g: Geom, dx: &mut [f32]) {
    let (k, c) = (g.k, g.c);
    let (oh, ow, kk) = (g.out_h(), g.out_w(), k * k);
    assert_eq!(cols.len(), oh * ow * c * kk);
    assert_eq!(dx.len(), g.h * g.w * c);
    for oy in 0..oh {
        for ky in 0..k {
            let iy = (oy + ky) as isize - g.p as isize;
            if iy < 0 || iy >= g.h as isize {
                continue;
            }
            for kx in 0..k {
                let Some((ox0, ox1, ix0)) = g.x_range(kx) else {
                    continue;
                };
                for ox in ox0..ox1 {
                    let row = &cols[(oy * ow + ox) * c * kk..][..c * kk];
                    let d = &mut dx[(iy as usize * g.w + ix0 + ox - ox0) * c..][..c];
                    for (ci, v) in d.iter_mut().enumerate() {
                        *v += row[ci * kk + ky * k + kx];
                    }
                }
            }
        }
    }
}

/// A (cout, cin, k, k) kernel (`kk` = k*k) as the (k*k*cin, cout) row-major matrix that
/// multiplies [`unfold_nhwc_rows`]' rows: row `(ky*k + kx)*cin + ci`, column `co`.
pub fn kernel_rows(w4: &[f32], cout: usize, cin: usize, kk: usize) -> Vec<f32> {
    let mut w = vec![0f32; kk * cin * cout];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..kk {
                w[(t * cin + ci) * cout + co] = w4[(co * cin + ci) * kk + t];
            }
        }
    }
    w
}

/// Per image, transposes a (rows, cols) matrix into (cols, rows): NCHW -> NHWC with
/// `rows = C, cols = H*W`, and back with `rows = H*W, cols = C`.
pub fn transpose_planes(src: &[f32], dst: &mut [f32], rows: usize, cols: usize) {
    let per = rows * cols;
    if per == 0 {
        return;
    }
    dst.par_chunks_mut(per).enumerate().for_each(|(img, d)| {
        let s = &src[img * per..(img + 1) * per];
        for r in 0..rows {
            for c in 0..cols {
                d[c * rows + r] = s[r * cols + c];
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_is_the_adjoint_of_unfold() {
        // <unfold(x), c> == <x, fold(c)> for random x, c.
        let g = Geom {
            n: 2,
            c: 3,
            h: 5,
            w: 4,
            k: 3,
            p: 1,
        };
        let x: Vec<f32> = (0..2 * 3 * 5 * 4)
            .map(|i| ((i * 37) % 11) as f32 - 5.0)
            .collect();
        let c: Vec<f32> = (0..27 * g.cols())
            .map(|i| ((i * 13) % 7) as f32 - 3.0)
            .collect();
        let a: f32 = unfold_nchw(&x, g).iter().zip(&c).map(|(p, q)| p * q).sum();
        let b: f32 = x.iter().zip(fold_nchw(&c, g)).map(|(p, q)| p * q).sum();
        assert_eq!(a, b);
    }

    #[test]
    fn nhwc_fold_is_the_adjoint_of_nhwc_unfold() {
        // <unfold(x), c> == <x, fold(c)>, with fold's columns in kernel order (c, ky, kx).
        for (k, p, h, w) in [(3, 1, 5, 4), (3, 0, 4, 6), (2, 1, 3, 3), (1, 0, 2, 3)] {
            let g = Geom {
                n: 1,
                c: 3,
                h,
                w,
                k,
                p,
            };
            let x: Vec<f32> = (0..h * w * 3)
                .map(|i| ((i * 37) % 11) as f32 - 5.0)
                .collect();
            let kk = k * k;
            let cols: Vec<f32> = (0..g.cols() * g.patch())
                .map(|i| ((i * 13) % 7) as f32 - 3.0)
                .collect();
            let mut rows = vec![0f32; g.cols() * g.patch()];
            unfold_nhwc_rows(&x, g, 0, g.cols(), &mut rows, g.patch(), |v| v);
            // rows are (ky, kx, c); read cols in (c, ky, kx) order at the same patch entry.
            let mut a = 0f32;
            for r in 0..g.cols() {
                for c in 0..3 {
                    for t in 0..kk {
                        a += rows[r * g.patch() + t * 3 + c] * cols[r * g.patch() + c * kk + t];
                    }
                }
            }
            let mut dx = vec![0f32; x.len()];
            fold_nhwc_image(&cols, g, &mut dx);
            let b: f32 = x.iter().zip(&dx).map(|(p, q)| p * q).sum();
            assert_eq!(a, b, "k{k} p{p}");
        }
    }

    #[test]
    fn both_layouts_unfold_the_same_patches() {
        let g = Geom {
            n: 1,
            c: 2,
            h: 3,
            w: 4,
            k: 3,
            p: 1,
        };
        let nchw: Vec<f32> = (0..24).map(|i| i as f32 + 1.0).collect();
        let mut nhwc = vec![0f32; 24];
        for c in 0..2 {
            for p in 0..12 {
                nhwc[p * 2 + c] = nchw[c * 12 + p];
            }
        }
        let cols = unfold_nchw(&nchw, g);
        let mut rows = vec![0f32; g.cols() * g.patch()];
        unfold_nhwc_rows(&nhwc, g, 0, g.cols(), &mut rows, g.patch(), |v| v);
        for pos in 0..g.cols() {
            for c in 0..2 {
                for t in 0..9 {
                    assert_eq!(
                        cols[(c * 9 + t) * g.cols() + pos],
                        rows[pos * g.patch() + t * 2 + c]
                    );
                }
            }
        }
    }
}
