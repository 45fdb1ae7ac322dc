//! A net's first convolution when it has 8 outputs (conv1_1 of the /8 nets: 3 -> 8 channels,
//! 3x3, padding 1, ReLU) for training on AVX-512: two positions per vector; with the 2x2
//! max-pool that follows it in configuration A fused into its forward, and the pool's backward
//! into its weight gradient.
//!
//! [`super::direct`]'s kernels hold one position's output channels per vector, which for 8
//! outputs leaves half of each 16-lane vector idle. Here lane `2o + s` of a vector holds output
//! channel `o` of position `p + s`. The input is the planar image (N, 3, H, W), where the pair
//! `(x[ix], x[ix + 1])` of one channel is adjacent: one 8-byte broadcast (a load, no shuffle)
//! puts `x[ix + s]` in every lane `2o + s`, and it multiplies a kernel entry duplicated across
//! each pair of lanes. The image is copied once per step with its zero border ([`Padded`]), so
//! no load checks a bound; the forward and the weight gradient both read the copy.
//!
//! The pool: output rows `2oy` and `2oy + 1` are computed together, and pair `p = 2ox` of the
//! two rows is exactly pool window `(oy, ox)`. The forward writes only the pooled map and the
//! winners (the first of equal maxima in the order top left, top right, bottom left, bottom
//! right, as the training path's pool takes them); the 8-channel map at full size (the largest
//! of the /8 nets' step) is never stored. The weight gradient rebuilds each window's gradient
//! from the pooled gradient, the winners and the pooled outputs (the ReLU's gradient taken on
//! the winners), instead of reading a full-size gradient map that is three quarters zeros.
//!
//! Order of the sums: an output adds the bias, then per kernel row (top first) and input
//! channel its kernel columns left to right; a weight gradient entry sums, per partition (an
//! image's band of [`BAND`] row pairs), the pool windows in order (top row then bottom row of
//! each), even and odd positions in separate lanes added at the end; partitions in order.
//! Hand-written (with `std::arch` intrinsics) because no crate offers these layouts.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::isa::Kernel;
use super::winograd::Simd;

/// Input channels.
const CIN: usize = 3;
/// Output channels: two positions' fill one 16-lane vector.
pub(crate) const COUT: usize = 8;
/// Row pairs per partition of the weight gradient's sum (a fixed number, whatever the threads).
const BAND: usize = 8;
/// Kernel entries (ky, ci, kx).
const TAPS: usize = 9 * CIN;

/// Whether these kernels run a first layer of `cin -> cout` channels on `h x w` images with
/// `kernel`: 3 -> 8 channels, even sides, an AVX-512 CPU.
pub(crate) fn applies(kernel: Kernel, cin: usize, cout: usize, (h, w): (usize, usize)) -> bool {
    cin == CIN
        && cout == COUT
        && h >= 2
        && w >= 2
        && h.is_multiple_of(2)
        && w.is_multiple_of(2)
        && avx512(kernel)
}

fn avx512(kernel: Kernel) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        matches!(Simd::for_kernel(kernel), Simd::Avx512 | Simd::Avx512Bf16)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = kernel;
        false
    }
}

/// A planar batch of images with a zero border: (n, 3, h + 2, w + 2).
#[derive(Debug)]
pub(crate) struct Padded {
    data: Vec<f32>,
    n: usize,
    h: usize,
    w: usize,
}

impl Padded {
    /// The padded copy of an NCHW batch `x` (n, 3, h, w).
    pub(crate) fn new(x: &[f32], (n, h, w): (usize, usize, usize)) -> Padded {
        assert_eq!(x.len(), n * CIN * h * w, "images");
        let (ph, pw) = (h + 2, w + 2);
        let len = n * CIN * ph * pw;
        // Every element written once, the border too, by every thread (the batch's planes are
        // as large as the step's larger maps; zeroing them first on one thread cost as much
        // as the copy).
        let mut data = Vec::with_capacity(len);
        data.spare_capacity_mut()[..len]
            .par_chunks_mut(ph * pw)
            .zip(x.par_chunks(h * w))
            .for_each(|(d, s)| {
                let zero = MaybeUninit::new(0f32);
                d[..pw].fill(zero);
                d[(h + 1) * pw..].fill(zero);
                for (r, row) in s.chunks_exact(w).enumerate() {
                    let d = &mut d[(r + 1) * pw..][..pw];
                    d[0] = zero;
                    d[w + 1] = zero;
                    for (d, v) in d[1..=w].iter_mut().zip(row) {
                        *d = MaybeUninit::new(*v);
                    }
                }
            });
        // SAFETY: every plane's rows and border were written above.
        unsafe { data.set_len(len) };
        Padded { data, n, h, w }
    }

    /// (n, h, w) of the images.
    pub(crate) fn dims(&self) -> (usize, usize, usize) {
        (self.n, self.h, self.w)
    }
}

/// The kernel (8, 3, 3, 3) in candle's layout as 27 vectors (ky, ci, kx), each entry duplicated
/// into lanes `2o` and `2o + 1`; and the bias likewise.
fn pair_weights(w4: &[f32], b: &[f32]) -> ([[f32; 16]; TAPS], [f32; 16]) {
    assert_eq!(w4.len(), COUT * TAPS, "kernel");
    assert_eq!(b.len(), COUT, "bias");
    let mut wp = [[0f32; 16]; TAPS];
    for (t, v) in wp.iter_mut().enumerate() {
        let (ky, ci, kx) = (t / 9, t / 3 % 3, t % 3);
        for (l, v) in v.iter_mut().enumerate() {
            *v = w4[(((l / 2) * CIN + ci) * 3 + ky) * 3 + kx];
        }
    }
    (wp, std::array::from_fn(|l| b[l / 2]))
}

/// `relu(conv(x, W) + b)` of the padded images, `w4` (8, 3, 3, 3) in candle's layout, `b` (8).
/// Without `idx`: `y` is the (n, h, w, 8) map. With it: `y` is the map's 2x2 max-pool
/// (n, h / 2, w / 2, 8) and `idx` its winners (0 top left, 1 top right, 2 bottom left, 3 bottom
/// right). Every element is written (`y` may start uninitialised). Needs [`applies`].
pub(crate) fn forward(
    xp: &Padded,
    w4: &[f32],
    b: &[f32],
    y: &mut [MaybeUninit<f32>],
    idx: Option<&mut [u8]>,
) {
    let (n, h, w) = xp.dims();
    let (wp, bp) = pair_weights(w4, b);
    let img = CIN * (h + 2) * (w + 2);
    let rows = n * h / 2;
    let a = Args {
        wp: &wp,
        bp: &bp,
        hw: (h, w),
    };
    match idx {
        Some(idx) => {
            let per = w / 2 * COUT;
            assert_eq!(y.len(), rows * per, "pooled output");
            assert_eq!(idx.len(), rows * per, "winners");
            y.par_chunks_mut(per)
                .zip(idx.par_chunks_mut(per))
                .enumerate()
                .for_each(|(r, (o, id))| {
                    let x = &xp.data[(r / (h / 2)) * img..][..img];
                    // SAFETY: `x` is one padded image, `o` / `id` one pooled row; applies()
                    // checked the CPU.
                    unsafe { x86::row_pair::<true>(a, x, r % (h / 2), o, id.as_mut_ptr()) }
                });
        }
        None => {
            let per = 2 * w * COUT;
            assert_eq!(y.len(), rows * per, "output");
            y.par_chunks_mut(per).enumerate().for_each(|(r, o)| {
                let x = &xp.data[(r / (h / 2)) * img..][..img];
                // SAFETY: as above, `o` two output rows.
                unsafe { x86::row_pair::<false>(a, x, r % (h / 2), o, std::ptr::null_mut()) }
            });
        }
    }
}

/// The gradient the weight gradient reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Grad<'a> {
    /// The pre-activation gradient, (n, h, w, 8).
    Dense(&'a [f32]),
    /// The fused pool's: the gradient of its outputs `g` and its outputs `y` (n, h / 2, w / 2,
    /// 8), and its winners `idx` ([`forward`]'s). Each window's winner gets the window's
    /// gradient where the output is positive (the ReLU's gradient, taken on the winners).
    Pooled {
        /// The gradient of the pool's outputs.
        g: &'a [f32],
        /// The winners.
        idx: &'a [u8],
        /// The pool's outputs.
        y: &'a [f32],
    },
}

/// (dW, db) of the layer in candle's layout ((8, 3, 3, 3) and (8)) from the padded images and
/// the gradient `g`. Deterministic: fixed partitions ([`BAND`]), added in order.
pub(crate) fn weight_gradient(xp: &Padded, g: Grad) -> (Vec<f32>, Vec<f32>) {
    let (n, h, w) = xp.dims();
    match g {
        Grad::Dense(g) => assert_eq!(g.len(), n * h * w * COUT, "gradient"),
        Grad::Pooled { g, idx, y } => {
            let len = n * h * w / 4 * COUT;
            assert_eq!(g.len(), len, "pooled gradient");
            assert_eq!(idx.len(), len, "winners");
            assert_eq!(y.len(), len, "pooled output");
        }
    }
    let img = CIN * (h + 2) * (w + 2);
    let oh = h / 2;
    let parts: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (0..oh).step_by(BAND).map(move |r| (i, r)))
        .collect();
    let partial: Vec<[[f32; 16]; TAPS + 1]> = parts
        .par_iter()
        .map(|&(i, r0)| {
            let x = &xp.data[i * img..][..img];
            let rows = r0..(r0 + BAND).min(oh);
            let mut acc = [[0f32; 16]; TAPS + 1];
            // SAFETY: `x` one padded image, the rows inside it, `g`'s sizes asserted;
            // applies() checked the CPU.
            unsafe { x86::band(x, (h, w), i, rows, g, &mut acc) };
            acc
        })
        .collect();
    let mut it = partial.into_iter();
    let mut sum = it.next().expect("at least one image");
    for p in it {
        for (s, v) in sum.iter_mut().zip(&p) {
            s.iter_mut().zip(v).for_each(|(s, v)| *s += v);
        }
    }
    let mut dw = vec![0f32; COUT * TAPS];
    for (t, v) in sum[..TAPS].iter().enumerate() {
        let (ky, ci, kx) = (t / 9, t / 3 % 3, t % 3);
        for o in 0..COUT {
            dw[((o * CIN + ci) * 3 + ky) * 3 + kx] = v[2 * o] + v[2 * o + 1];
        }
    }
    let db = (0..COUT)
        .map(|o| sum[TAPS][2 * o] + sum[TAPS][2 * o + 1])
        .collect();
    (dw, db)
}

/// The kernels' shared operands.
#[derive(Clone, Copy)]
struct Args<'a> {
    wp: &'a [[f32; 16]; TAPS],
    bp: &'a [f32; 16],
    hw: (usize, usize),
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::{Args, CIN, COUT, Grad, TAPS};

    /// Pairs of positions per block of the forward (two rows of them: 24 accumulators).
    const R: usize = 12;

    /// Lanes (even first, then odd): a pair's interleaved channels as two positions' rows.
    #[inline(always)]
    unsafe fn evens_first() -> __m512i {
        // SAFETY: the caller runs with AVX-512F.
        unsafe { _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15) }
    }

    /// `(p[0], p[1])` in every pair of lanes.
    ///
    /// # Safety
    /// Two floats readable at `p`.
    #[inline(always)]
    unsafe fn pair(p: *const f32) -> __m512 {
        // SAFETY: the caller's.
        unsafe { _mm512_castpd_ps(_mm512_set1_pd(p.cast::<f64>().read_unaligned())) }
    }

    /// Output rows `2 * rp` and `2 * rp + 1` of one padded image `x` (pooled, or two rows of
    /// the map), in blocks of R pairs (4 or 1 on narrow rows), the last block ending at the
    /// row's end (it may overlap the one before and rewrites the same values).
    ///
    /// # Safety
    /// The CPU has AVX-512F/BW; `x` one padded image of `a.hw`, `rp < h / 2`; `out` the pooled
    /// row (w / 2 x 8) with `idx` as long when POOL, else the two rows (2 x w x 8).
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
    pub(super) unsafe fn row_pair<const POOL: bool>(
        a: Args,
        x: &[f32],
        rp: usize,
        out: &mut [MaybeUninit<f32>],
        idx: *mut u8,
    ) {
        let pairs = a.hw.1 / 2;
        let blocks = |b: usize, f: &mut dyn FnMut(usize)| {
            let mut j = 0;
            while j + b < pairs {
                f(j);
                j += b;
            }
            f(pairs - b);
        };
        let o = out.as_mut_ptr().cast::<f32>();
        // SAFETY: every block lies in the row; forwarded.
        unsafe {
            if pairs >= R {
                blocks(R, &mut |j| block::<R, POOL>(a, x, rp, j, o, idx));
            } else if pairs >= 4 {
                blocks(4, &mut |j| block::<4, POOL>(a, x, rp, j, o, idx));
            } else {
                blocks(1, &mut |j| block::<1, POOL>(a, x, rp, j, o, idx));
            }
        }
    }

    /// Pairs `j0 .. j0 + B` of output rows `2 rp`, `2 rp + 1`: per padded input row `pr` (of
    /// the four they read) and channel, the input columns `2 j0 + q` in order, each pair
    /// broadcast once against the kernel columns that reach an output of the block, for the top
    /// row (kernel row `pr`) and the bottom (`pr - 1`).
    ///
    /// # Safety
    /// As [`row_pair`], with `j0 + B <= w / 2`.
    #[inline(always)]
    unsafe fn block<const B: usize, const POOL: bool>(
        a: Args,
        x: &[f32],
        rp: usize,
        j0: usize,
        out: *mut f32,
        idx: *mut u8,
    ) {
        let (h, w) = a.hw;
        let (pw, plane) = (w + 2, (h + 2) * (w + 2));
        assert!(2 * B < 25, "block wider than the unrolled columns");
        // SAFETY (whole body): input reads at padded rows 2 rp .. 2 rp + 4 <= h + 2, columns
        // 2 j0 + q + 1 <= 2 (j0 + B) + 1 <= w + 1; writes in the caller's rows.
        unsafe {
            let bias = _mm512_loadu_ps(a.bp.as_ptr());
            let mut top = [bias; B];
            let mut bot = [bias; B];
            let x = x.as_ptr().add((2 * rp) * pw + 2 * j0);
            let tap = (a, x, plane, pw);
            tap_row::<B, true, false>(tap, 0, &mut top, &mut bot);
            tap_row::<B, true, true>(tap, 1, &mut top, &mut bot);
            tap_row::<B, true, true>(tap, 2, &mut top, &mut bot);
            tap_row::<B, false, true>(tap, 3, &mut top, &mut bot);
            let zero = _mm512_setzero_ps();
            let ev = evens_first();
            for r in 0..B {
                let (t, d) = (_mm512_max_ps(top[r], zero), _mm512_max_ps(bot[r], zero));
                if POOL {
                    // Even lanes: a = top left, b = top right, d, e = bottom left, right.
                    let b = _mm512_permute_ps::<0xB1>(t);
                    let e = _mm512_permute_ps::<0xB1>(d);
                    let (mut best, mut k) = (t, _mm512_setzero_si512());
                    for (v, j) in [(b, 1), (d, 2), (e, 3)] {
                        let m = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best);
                        best = _mm512_mask_mov_ps(best, m, v);
                        k = _mm512_mask_mov_epi32(k, m, _mm512_set1_epi32(j));
                    }
                    let at = (j0 + r) * COUT;
                    let pooled = _mm512_permutexvar_ps(ev, best);
                    _mm256_storeu_ps(out.add(at), _mm512_castps512_ps256(pooled));
                    let k = _mm512_cvtepi32_epi8(_mm512_permutexvar_epi32(ev, k));
                    _mm_storel_epi64(idx.add(at).cast::<__m128i>(), k);
                } else {
                    let at = 2 * (j0 + r) * COUT;
                    _mm512_storeu_ps(out.add(at), _mm512_permutexvar_ps(ev, t));
                    _mm512_storeu_ps(out.add(w * COUT + at), _mm512_permutexvar_ps(ev, d));
                }
            }
        }
    }

    /// [`block`]'s padded input row `pr` (of `x` at the block's first column; planes `plane`
    /// apart, rows `pw`): TOP / BOT when it reaches the top output row (kernel row `pr`) / the
    /// bottom (`pr - 1`).
    ///
    /// # Safety
    /// As [`block`].
    #[inline(always)]
    unsafe fn tap_row<const B: usize, const TOP: bool, const BOT: bool>(
        (a, x, plane, pw): (Args, *const f32, usize, usize),
        pr: usize,
        top: &mut [__m512; B],
        bot: &mut [__m512; B],
    ) {
        // SAFETY: the caller's.
        unsafe {
            let w_at = |ky: usize, ci: usize, kx: usize| {
                _mm512_loadu_ps(a.wp[(ky * CIN + ci) * 3 + kx].as_ptr())
            };
            for ci in 0..CIN {
                let base = x.add(ci * plane + pr * pw);
                let zero = _mm512_setzero_ps();
                let wt: [__m512; 3] =
                    std::array::from_fn(|kx| if TOP { w_at(pr, ci, kx) } else { zero });
                let wb: [__m512; 3] = std::array::from_fn(|kx| {
                    if BOT {
                        w_at(pr.wrapping_sub(1), ci, kx)
                    } else {
                        zero
                    }
                });
                unrolled!(q in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
                    19, 20, 21, 22, 23, 24] {
                    if q < 2 * B + 1 {
                        let v = pair(base.add(q));
                        for kx in 0..3 {
                            if q >= kx && (q - kx).is_multiple_of(2) && (q - kx) / 2 < B {
                                let r = (q - kx) / 2;
                                if TOP {
                                    top[r] = _mm512_fmadd_ps(v, wt[kx], top[r]);
                                }
                                if BOT {
                                    bot[r] = _mm512_fmadd_ps(v, wb[kx], bot[r]);
                                }
                            }
                        }
                    }
                });
            }
        }
    }

    /// One partition of the weight gradient: image `img` (padded, `x`), row pairs `rows`, into
    /// `acc` (the 27 kernel entries' lanes, then the bias's).
    ///
    /// # Safety
    /// The CPU has AVX-512F/BW; `x` the padded image, `rows` inside `h / 2`, `g`'s sizes those
    /// of the batch.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
    pub(super) unsafe fn band(
        x: &[f32],
        (h, w): (usize, usize),
        img: usize,
        rows: std::ops::Range<usize>,
        g: Grad,
        acc: &mut [[f32; 16]; TAPS + 1],
    ) {
        // SAFETY: forwarded.
        unsafe {
            match g {
                Grad::Dense(g) => band_of::<false>(x, (h, w), img, rows, (g, &[], &[]), acc),
                Grad::Pooled { g, idx, y } => {
                    band_of::<true>(x, (h, w), img, rows, (g, idx, y), acc)
                }
            }
        }
    }

    /// [`band`] for a dense or (POOL) pooled gradient `(g, idx, y)`.
    ///
    /// # Safety
    /// As [`band`].
    #[inline(always)]
    unsafe fn band_of<const POOL: bool>(
        x: &[f32],
        (h, w): (usize, usize),
        img: usize,
        rows: std::ops::Range<usize>,
        (g, idx, y): (&[f32], &[u8], &[f32]),
        out: &mut [[f32; 16]; TAPS + 1],
    ) {
        let (pw, plane) = (w + 2, (h + 2) * (w + 2));
        let (oh, ow) = (h / 2, w / 2);
        // SAFETY (whole body): gradient reads at the image's rows 2 rp, 2 rp + 1 (pooled row
        // rp), input reads at padded rows 2 rp .. 2 rp + 4, columns 2 j .. 2 j + 3 <= w + 1.
        unsafe {
            let zero = _mm512_setzero_ps();
            let mut acc = [zero; TAPS];
            let mut db = zero;
            let dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            let zip = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
            let (sel_top, sel_bot) = (
                _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1),
                _mm512_setr_epi32(2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3),
            );
            for rp in rows {
                for j in 0..ow {
                    // The window's gradient, lane 2o + s = channel o at column 2 j + s, of
                    // the top row and the bottom.
                    let (gt, gb) = if POOL {
                        let o = ((img * oh + rp) * ow + j) * COUT;
                        let half = |p: *const f32| {
                            _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(p)))
                        };
                        let gd = half(g.as_ptr().add(o));
                        let pos = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(half(y.as_ptr().add(o)), zero);
                        let k8 = _mm512_cvtepu8_epi32(_mm_loadl_epi64(
                            idx.as_ptr().add(o).cast::<__m128i>(),
                        ));
                        let k = _mm512_permutexvar_epi32(dup, k8);
                        (
                            _mm512_maskz_mov_ps(_mm512_mask_cmpeq_epi32_mask(pos, k, sel_top), gd),
                            _mm512_maskz_mov_ps(_mm512_mask_cmpeq_epi32_mask(pos, k, sel_bot), gd),
                        )
                    } else {
                        let at = |row: usize| {
                            let p = g.as_ptr().add(((img * h + row) * w + 2 * j) * COUT);
                            _mm512_permutexvar_ps(zip, _mm512_loadu_ps(p))
                        };
                        (at(2 * rp), at(2 * rp + 1))
                    };
                    db = _mm512_add_ps(db, _mm512_add_ps(gt, gb));
                    // Padded input row pr meets the top row through kernel row pr and the
                    // bottom through pr - 1.
                    for pr in 0..4 {
                        for ci in 0..CIN {
                            let base = x.as_ptr().add(ci * plane + (2 * rp + pr) * pw + 2 * j);
                            for kx in 0..3 {
                                let v = pair(base.add(kx));
                                if pr < 3 {
                                    let t = (pr * CIN + ci) * 3 + kx;
                                    acc[t] = _mm512_fmadd_ps(v, gt, acc[t]);
                                }
                                if pr >= 1 {
                                    let t = ((pr - 1) * CIN + ci) * 3 + kx;
                                    acc[t] = _mm512_fmadd_ps(v, gb, acc[t]);
                                }
                            }
                        }
                    }
                }
            }
            for (o, a) in out.iter_mut().zip(acc.iter().chain([&db])) {
                _mm512_storeu_ps(o.as_mut_ptr(), *a);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    //! Never called: [`super::applies`] is false off x86-64.
    use std::mem::MaybeUninit;

    use super::{Args, Grad, TAPS};

    pub(super) unsafe fn row_pair<const POOL: bool>(
        _: Args,
        _: &[f32],
        _: usize,
        _: &mut [MaybeUninit<f32>],
        _: *mut u8,
    ) {
        unreachable!("first_layer::applies is false off x86-64")
    }

    pub(super) unsafe fn band(
        _: &[f32],
        _: (usize, usize),
        _: usize,
        _: std::ops::Range<usize>,
        _: Grad,
        _: &mut [[f32; 16]; TAPS + 1],
    ) {
        unreachable!("first_layer::applies is false off x86-64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Precision;
    use crate::model::engine::isa::kernel_for;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Plain loops over every output position `p` (flat over (n, h, w)) and kernel entry `t`
    /// ((ci, ky, kx), candle's order within an output channel) whose input `v` (of NCHW `x`)
    /// is inside the image: `f(p, t, v)`.
    fn each_tap(x: &[f32], (n, h, w): (usize, usize, usize), mut f: impl FnMut(usize, usize, f64)) {
        for p in 0..n * h * w {
            let (i, oy, ox) = (p / (h * w), p / w % h, p % w);
            for t in 0..TAPS {
                let (ci, iy, ix) = (t / 9, oy + t / 3 % 3, ox + t % 3);
                if (1..=h).contains(&iy) && (1..=w).contains(&ix) {
                    f(p, t, x[((i * CIN + ci) * h + iy - 1) * w + ix - 1] as f64);
                }
            }
        }
    }

    /// Plain loops: relu(conv(x) + b) as (n, h, w, 8), from NCHW `x`.
    fn conv_ref(x: &[f32], dims: (usize, usize, usize), w4: &[f32], b: &[f32]) -> Vec<f32> {
        let (n, h, w) = dims;
        let mut y: Vec<f64> = (0..n * h * w * COUT).map(|j| b[j % COUT] as f64).collect();
        each_tap(x, dims, |p, t, v| {
            for o in 0..COUT {
                y[p * COUT + o] += v * w4[o * TAPS + t] as f64;
            }
        });
        y.into_iter().map(|v| (v as f32).max(0.0)).collect()
    }

    fn random(len: usize, r: &mut ChaCha8Rng) -> Vec<f32> {
        (0..len).map(|_| r.gen_range(-1.0f32..1.0)).collect()
    }

    fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what} [{i}]: {x} vs {y}"
            );
        }
    }

    const SHAPES: [(usize, usize, usize); 5] =
        [(2, 6, 10), (1, 4, 32), (1, 2, 2), (3, 8, 48), (1, 2, 26)];

    fn kernel() -> Option<Kernel> {
        let k = kernel_for(Precision::F32).ok()?;
        applies(k, CIN, COUT, (2, 2)).then_some(k)
    }

    /// The forward (plain and pooled) against plain loops, tolerance 1e-5 relative (f32 sums
    /// of 27 terms in another order); the winners exactly where the two largest of a window
    /// differ by more than that.
    #[test]
    fn forward_matches_plain_loops() {
        let Some(_) = kernel() else { return };
        let mut r = ChaCha8Rng::seed_from_u64(5);
        for (n, h, w) in SHAPES {
            let x = random(n * CIN * h * w, &mut r);
            let (w4, b) = (random(COUT * TAPS, &mut r), random(COUT, &mut r));
            let want = conv_ref(&x, (n, h, w), &w4, &b);
            let xp = Padded::new(&x, (n, h, w));
            let mut y = vec![MaybeUninit::new(f32::NAN); want.len()];
            forward(&xp, &w4, &b, &mut y, None);
            let y: Vec<f32> = y.iter().map(|v| unsafe { v.assume_init() }).collect();
            close(&y, &want, 1e-5, &format!("map {n}x{h}x{w}"));

            let (oh, ow) = (h / 2, w / 2);
            let mut p = vec![MaybeUninit::new(f32::NAN); n * oh * ow * COUT];
            let mut idx = vec![9u8; p.len()];
            forward(&xp, &w4, &b, &mut p, Some(&mut idx));
            for i in 0..n {
                for py in 0..oh {
                    for px in 0..ow {
                        for o in 0..COUT {
                            let at = |k: usize| {
                                let (yy, xx) = (2 * py + k / 2, 2 * px + k % 2);
                                want[((i * h + yy) * w + xx) * COUT + o]
                            };
                            let vals = [at(0), at(1), at(2), at(3)];
                            let (mut best, mut k) = (vals[0], 0);
                            for (j, v) in vals.iter().enumerate().skip(1) {
                                if *v > best {
                                    (best, k) = (*v, j);
                                }
                            }
                            let q = ((i * oh + py) * ow + px) * COUT + o;
                            let got = unsafe { p[q].assume_init() };
                            assert!((got - best).abs() <= 1e-5 * (1.0 + best.abs()), "pool {q}");
                            let mut sorted = vals;
                            sorted.sort_by(|a, b| b.total_cmp(a));
                            if sorted[0] - sorted[1] > 1e-4 || best == 0.0 && sorted[0] == 0.0 {
                                assert_eq!(idx[q] as usize, k, "winner {q} of {vals:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// The weight gradient (dense, and through the pool) against plain sums, tolerance 1e-4
    /// relative (f32 sums of up to 768 terms in another order).
    #[test]
    fn weight_gradient_matches_plain_sums() {
        let Some(_) = kernel() else { return };
        let mut r = ChaCha8Rng::seed_from_u64(6);
        for (n, h, w) in SHAPES.into_iter().chain([(2, 40, 16)]) {
            let x = random(n * CIN * h * w, &mut r);
            let xp = Padded::new(&x, (n, h, w));
            let plain = |g: &[f32]| {
                let mut dw = vec![0f64; COUT * TAPS];
                let mut db = vec![0f64; COUT];
                for (j, v) in g.iter().enumerate() {
                    db[j % COUT] += *v as f64;
                }
                each_tap(&x, (n, h, w), |p, t, v| {
                    for o in 0..COUT {
                        dw[o * TAPS + t] += v * g[p * COUT + o] as f64;
                    }
                });
                let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<_>>();
                (f(dw), f(db))
            };
            let g = random(n * h * w * COUT, &mut r);
            let (dw, db) = weight_gradient(&xp, Grad::Dense(&g));
            let (dw0, db0) = plain(&g);
            close(&dw, &dw0, 1e-4, "dense dW");
            close(&db, &db0, 1e-4, "dense db");

            // Through the pool: random winners, outputs of both signs.
            let len = n * h * w / 4 * COUT;
            let (gp, yp) = (random(len, &mut r), random(len, &mut r));
            let idx: Vec<u8> = (0..len).map(|_| r.gen_range(0..4u8)).collect();
            let mut dense = vec![0f32; g.len()];
            let (oh, ow) = (h / 2, w / 2);
            for (q, ((gv, yv), k)) in gp.iter().zip(&yp).zip(&idx).enumerate() {
                let (o, px, py, i) = (
                    q % COUT,
                    q / COUT % ow,
                    q / COUT / ow % oh,
                    q / COUT / ow / oh,
                );
                if *yv > 0.0 {
                    let (yy, xx) = (2 * py + *k as usize / 2, 2 * px + *k as usize % 2);
                    dense[((i * h + yy) * w + xx) * COUT + o] = *gv;
                }
            }
            let pooled = Grad::Pooled {
                g: &gp,
                idx: &idx,
                y: &yp,
            };
            let (dw, db) = weight_gradient(&xp, pooled);
            let (dw0, db0) = plain(&dense);
            close(&dw, &dw0, 1e-4, "pooled dW");
            close(&db, &db0, 1e-4, "pooled db");
        }
    }
}
