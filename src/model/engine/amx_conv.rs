//! Direct 3x3 convolution (stride 1, padding 1) in int8 on AMX-INT8, for the fast engine's
//! [`Precision::Int8`](crate::model::Precision) on CPUs that have the tile unit.
//!
//! Winograd pays for its fewer products with transforms and a dequantisation of 16 planes per
//! 2x2 outputs; on AMX the products are so cheap that those passes dominate (measured: the
//! int8 F(2x2) layers spent about a quarter of their time in the tile products). Here the
//! products run straight on the quantised input instead, as an implicit GEMM: the input map
//! (non-negative: every 3x3 layer but the first follows a ReLU) is quantised once per image
//! with one step (its largest value over 255) into a zero-padded channels-last u8 copy, and each
//! A tile is 16 neighbouring pixels of one row read in place (`tileloadd` with the channel count
//! as stride) at one tap and 64 channels; the weights are the unfold GEMM's int8 packing
//! (row `tap * cin + ci`), so each 64-deep step of the product is one tap's channel block. Blocks
//! of 32 pixels (16 neighbours in two consecutive rows) by 32 output channels accumulate over
//! all 9 * cin in tiles and are dequantised (`step * col_step * acc + bias`, ReLU) straight into
//! the output, or max-pooled 2x2 first when a pool follows (the two rows of a block are a row
//! of pooling windows).

use rayon::prelude::*;

use super::gemm::PackedB;
#[cfg(target_arch = "x86_64")]
use super::gemm::x86::{Align64, amx_ready, quantize_scaled, range, tiles};
use super::isa::Kernel;

/// A 3x3 conv's weights for [`conv3x3`]: per-column steps and the int8 values in the order
/// the tiles read them, each 32-column block's steps one after another, each step's two
/// 16-column B tiles as 1 KB each (so that a block's products stream its weights sequentially,
/// which the hardware prefetcher follows; the GEMM's panels put a tile's rows 256 bytes apart).
#[derive(Debug)]
pub struct AmxConv {
    cin: usize,
    cout: usize,
    scale: Vec<f32>,
    q: Vec<u8>,
}

impl AmxConv {
    /// The weights (cout, cin, 3, 3) packed for the direct int8 path, or None where it does
    /// not run: no usable AMX-INT8, or channel counts that are not multiples of 64 (input) and
    /// 32 (output).
    pub fn new(w4: &[f32], cout: usize, cin: usize) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if amx_ready() && cin.is_multiple_of(64) && cout.is_multiple_of(32) {
            let w = PackedB::from_conv(w4, cout, cin, 9, Kernel::Int8);
            let (pq, scale, _) = w.int8_parts().expect("int8 weights");
            let kq = super::gemm::int8_quads(9 * cin);
            let steps = kq / 16;
            let mut q = vec![0u8; cout / 32 * steps * 2048];
            for (i, tile) in q.chunks_exact_mut(1024).enumerate() {
                let (cb, s, t) = (i / (2 * steps), (i / 2) % steps, i % 2);
                let s = packed_step(s, cin);
                let (p, j) = (cb / 2, (cb % 2) * 32 + t * 16);
                for r in 0..16 {
                    let src = (p * kq + s * 16 + r) * 64 * 4 + j * 4;
                    for (d, v) in tile[r * 64..(r + 1) * 64]
                        .iter_mut()
                        .zip(&pq[src..src + 64])
                    {
                        *d = *v as u8;
                    }
                }
            }
            let scale = scale.to_vec();
            return Some(AmxConv {
                cin,
                cout,
                scale,
                q,
            });
        }
        let _ = (w4, cout, cin);
        None
    }
}

/// The (tap, channel block of 64) of the products' step `s`: channel blocks outer, taps inner,
/// so that the nine taps of a block of channels read the same few input rows while they are in
/// L1 (taps outer made the tiles wait on L2 for their input).
fn step_order(s: usize) -> (usize, usize) {
    (s % 9, s / 9)
}

/// The step of the unfold GEMM's packing (k = tap * cin + channel, 64 per step) that holds
/// step `s` of [`step_order`].
fn packed_step(s: usize, cin: usize) -> usize {
    let (tap, cb) = step_order(s);
    (tap * cin + cb * 64) / 64
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: used only to write disjoint output pixels from several threads.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

/// 3x3 convolution with padding 1 of the channels-last input (n, h, w, cin) into `out`, plus
/// bias and optional ReLU: (n, h, w, cout), or with `pool` its 2x2 max-pool (n, h/2, w/2,
/// cout). Returns false, having written nothing, when the input has a negative value (this
/// path quantises non-negative maps only; the caller then runs another).
#[allow(clippy::too_many_arguments)]
pub fn conv3x3(
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    k: &AmxConv,
    bias: &[f32],
    relu: bool,
    pool: bool,
    out: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        run(x, Dims { n, h, w }, k, Epi { bias, relu, pool }, out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, n, h, w, k, bias, relu, pool, out);
        false
    }
}

/// A layer input's image count and size.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    h: usize,
    w: usize,
}

/// What follows the product: bias, ReLU, 2x2 max-pool.
#[derive(Clone, Copy)]
struct Epi<'a> {
    bias: &'a [f32],
    relu: bool,
    pool: bool,
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The quantised copy of a layer's input: it lives on in the calling thread between layers
    /// and calls (a fresh one per layer costs its page faults).
    static Q: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(target_arch = "x86_64")]
fn run(x: &[f32], d: Dims, k: &AmxConv, e: Epi, out: &mut [f32]) -> bool {
    let Dims { n, h, w } = d;
    let (cin, cout) = (k.cin, k.cout);
    assert_eq!(x.len(), n * h * w * cin);
    let (oh, ow) = if e.pool { (h / 2, w / 2) } else { (h, w) };
    assert_eq!(out.len(), n * oh * ow * cout);
    assert!(e.bias.len() >= cout);
    if n * h * w == 0 {
        return true;
    }
    // Each image's range: the step of its quantisation.
    let mut steps = Vec::with_capacity(n);
    for img in x.chunks_exact(h * w * cin) {
        let (lo, hi) = img
            .par_chunks(1 << 16)
            // SAFETY: amx_ready (checked when the weights were packed) implies AVX-512F.
            .map(|c| unsafe { range(c) })
            .reduce(|| (0.0, 0.0), |a, b| (a.0.min(b.0), a.1.max(b.1)));
        if lo < 0.0 || !hi.is_finite() {
            return false;
        }
        steps.push(if hi > 0.0 { hi / 255.0 } else { 0.0 });
    }
    // The quantised, zero-padded copy, with slack after the last row for the pixels a partial
    // 16-pixel segment reads past the edge (their products are never stored). Only the padding
    // and the slack are zeroed; the rest is overwritten.
    let (ph, pw) = (h + 2, w + 2);
    // The buffer is taken out of the thread-local while in use (the rayon work below may run
    // another forward on this thread, which then gets a fresh buffer), and put back after.
    let mut q = Q.with(|q| std::mem::take(&mut *q.borrow_mut()));
    {
        let len = (n * ph * pw + 2 * pw + 32) * cin;
        if q.len() < len {
            q.resize(len, 0);
        }
        let (rows, slack) = q[..len].split_at_mut(n * ph * pw * cin);
        slack.fill(0);
        rows.par_chunks_mut(pw * cin)
            .enumerate()
            .for_each(|(row, dst)| {
                let (img, py) = (row / ph, row % ph);
                if py == 0 || py == ph - 1 {
                    dst.fill(0);
                    return;
                }
                dst[..cin].fill(0);
                dst[(w + 1) * cin..].fill(0);
                let inv = if steps[img] > 0.0 {
                    1.0 / steps[img]
                } else {
                    0.0
                };
                let src = &x[((img * h + py - 1) * w) * cin..][..w * cin];
                // SAFETY: amx_ready (checked when the weights were packed) implies AVX-512F.
                unsafe { quantize_scaled(src, &mut dst[cin..(w + 1) * cin], inv) };
            });
        convolve(&q[..len], d, k, e, &steps, out);
    }
    Q.with(|slot| {
        let slot = &mut *slot.borrow_mut();
        if slot.capacity() < q.capacity() {
            *slot = q;
        }
    });
    true
}

/// The products of [`run`] on the quantised copy `q`.
#[cfg(target_arch = "x86_64")]
fn convolve(q: &[u8], d: Dims, k: &AmxConv, e: Epi, steps: &[f32], out: &mut [f32]) {
    let Dims { n, h, w } = d;
    let cin = k.cin;
    let pw = w + 2;
    // Blocks: 16 neighbouring pixels of rows y and y + 1 (y even; the second row missing at an
    // odd bottom edge).
    let blocks: Vec<(usize, usize, usize)> = (0..n)
        .flat_map(|img| {
            (0..h)
                .step_by(2)
                .flat_map(move |y| (0..w).step_by(16).map(move |x0| (img, y, x0)))
        })
        .collect();
    // Byte offset of each 64-deep step's tap and channel block from a pixel's window corner,
    // in the order of `step_order`.
    let offs: Vec<usize> = (0..9 * cin / 64)
        .map(|s| {
            let (tap, cb) = step_order(s);
            ((tap / 3) * pw + tap % 3) * cin + cb * 64
        })
        .collect();
    let (wq, sw) = (&k.q, &k.scale);
    let job = Job {
        blocks: &blocks,
        offs: &offs,
        steps,
        wq: wq.as_ptr(),
        sw,
        q: q.as_ptr(),
        out: SyncPtr(out.as_mut_ptr()),
        d,
        e,
        cin,
        cout: k.cout,
    };
    let threads = rayon::current_num_threads().max(1);
    let per_task = blocks.len().div_ceil(threads * 4).max(1);
    (0..blocks.len().div_ceil(per_task))
        .into_par_iter()
        .for_each(|task| {
            let range = task * per_task..((task + 1) * per_task).min(blocks.len());
            // SAFETY: AMX is usable (amx_ready, which implies AVX-512); see `Job::run`.
            unsafe { job.run(range) }
        });
}

/// One layer's work, shared by the tasks: the blocks, the step offsets, the quantised input
/// and the packed weights.
#[cfg(target_arch = "x86_64")]
struct Job<'a> {
    blocks: &'a [(usize, usize, usize)],
    offs: &'a [usize],
    steps: &'a [f32],
    wq: *const u8,
    sw: &'a [f32],
    q: *const u8,
    out: SyncPtr,
    d: Dims,
    e: Epi<'a>,
    cin: usize,
    cout: usize,
}

// SAFETY: the pointers are read-only (weights, quantised input) or written at disjoint pixels
// (output) by the tasks.
#[cfg(target_arch = "x86_64")]
unsafe impl Sync for Job<'_> {}

#[cfg(target_arch = "x86_64")]
impl Job<'_> {
    /// The blocks `range` for every output channel block, on this thread's tiles.
    ///
    /// # Safety
    /// AMX is usable ([`amx_ready`]); the job's buffers are as [`run`] made them: every A read
    /// is inside the quantised copy (its slack covers segments cut by the right edge), every B
    /// read inside the packed weights, every store an output pixel of these blocks.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn run(&self, range: std::ops::Range<usize>) {
        use std::arch::x86_64::*;
        let Dims { n: _, h, w } = self.d;
        let Epi { bias, relu, pool } = self.e;
        let (cin, cout, pw, ph) = (self.cin, self.cout, w + 2, h + 2);
        let (oh, ow) = (h / 2, w / 2);
        let mut acc = Align64([0i32; 32 * 32]);
        // SAFETY (whole body): as the contract says.
        unsafe {
            let zero = _mm512_setzero_ps();
            tiles::begin();
            for cb in 0..cout / 32 {
                let bp = self.wq.add(cb * self.offs.len() * 2048);
                let co = cb * 32;
                let swv = [
                    _mm512_loadu_ps(self.sw.as_ptr().add(co)),
                    _mm512_loadu_ps(self.sw.as_ptr().add(co + 16)),
                ];
                let bv = [
                    _mm512_loadu_ps(bias.as_ptr().add(co)),
                    _mm512_loadu_ps(bias.as_ptr().add(co + 16)),
                ];
                for &(img, y, x0) in &self.blocks[range.clone()] {
                    let second = y + 1 < h;
                    let base = |yy: usize| self.q.add(((img * ph + yy) * pw + x0) * cin);
                    let (a0, a1) = (base(y), base(if second { y + 1 } else { y }));
                    tiles::zero();
                    for (s, off) in self.offs.iter().enumerate() {
                        tiles::step(a0.add(*off), a1.add(*off), cin, bp.add(s * 2048), 1024, 64);
                    }
                    tiles::store(acc.0.as_mut_ptr());
                    let sv = _mm512_set1_ps(self.steps[img]);
                    let scale = [_mm512_mul_ps(sv, swv[0]), _mm512_mul_ps(sv, swv[1])];
                    // The dequantised value of block row r (0-15 row y, 16-31 row y + 1),
                    // channels 16 * hh ..
                    let val = |r: usize, hh: usize| {
                        let a = _mm512_loadu_si512(acc.0.as_ptr().add(r * 32 + 16 * hh).cast());
                        let v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), scale[hh], bv[hh]);
                        if relu { _mm512_max_ps(v, zero) } else { v }
                    };
                    let cols = 16.min(w - x0);
                    if pool {
                        // Windows cut by an odd edge are dropped, as the pool floors.
                        if !second {
                            continue;
                        }
                        for j in 0..cols / 2 {
                            let px = ((img * oh + y / 2) * ow + x0 / 2 + j) * cout + co;
                            for hh in 0..2 {
                                let top = _mm512_max_ps(val(2 * j, hh), val(2 * j + 1, hh));
                                let bot = _mm512_max_ps(val(16 + 2 * j, hh), val(17 + 2 * j, hh));
                                let m = _mm512_max_ps(top, bot);
                                _mm512_storeu_ps(self.out.0.add(px + 16 * hh), m);
                            }
                        }
                        continue;
                    }
                    for (half, yy) in [(0, y), (1, y + 1)] {
                        if yy >= h {
                            break;
                        }
                        for i in 0..cols {
                            let px = ((img * h + yy) * w + x0 + i) * cout + co;
                            for hh in 0..2 {
                                _mm512_storeu_ps(
                                    self.out.0.add(px + 16 * hh),
                                    val(half * 16 + i, hh),
                                );
                            }
                        }
                    }
                }
            }
            tiles::end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::engine::winograd::tests::{assert_pooled, direct};

    /// Non-negative pseudo-random values (a ReLU's output: a quarter of them zero).
    fn relu_vals(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 1.0).max(0.0)
            })
            .collect()
    }

    /// Against an f64 direct convolution (bias, ReLU) and its 2x2 max-pool: odd sizes (partial
    /// 16-pixel segments, a missing second row, windows the pool drops), several images,
    /// several channel blocks; relative L2 within 1e-2 (per-image activation steps and
    /// per-channel weight steps: 3e-3 to 5e-3 measured). A negative input is refused.
    #[test]
    fn direct_int8_matches_a_plain_convolution() {
        #[cfg(target_arch = "x86_64")]
        if !amx_ready() {
            eprintln!("skipped: AMX-INT8 is not usable here (the direct int8 path never runs)");
            return;
        }
        for &(n, h, w, cin, cout) in &[(2, 7, 9, 64, 64), (1, 5, 33, 128, 96), (1, 1, 1, 64, 32)] {
            let x = relu_vals(n * h * w * cin, 1);
            let wt: Vec<f32> = relu_vals(cout * cin * 9, 2)
                .iter()
                .map(|v| (v - 0.5) * 0.1)
                .collect();
            let bias: Vec<f32> = relu_vals(cout, 3).iter().map(|v| v - 1.0).collect();
            let k = AmxConv::new(&wt, cout, cin).expect("AMX is usable");
            let want = direct(&x, n, h, w, cin, &wt, &bias, cout);
            let rel = |got: &[f32], want: &[f64]| {
                let e: f64 = got
                    .iter()
                    .zip(want)
                    .map(|(a, b)| (f64::from(*a) - b).powi(2))
                    .sum();
                let norm: f64 = want.iter().map(|b| b * b).sum();
                (e / norm.max(1e-30)).sqrt()
            };
            let mut got = vec![f32::NAN; n * h * w * cout];
            assert!(conv3x3(&x, n, h, w, &k, &bias, true, false, &mut got));
            let r = rel(&got, &want);
            assert!(r < 1e-2, "{n}x{h}x{w}x{cin}->{cout}: rel L2 {r:.2e}");
            let mut pooled = vec![f32::NAN; n * (h / 2) * (w / 2) * cout];
            assert!(conv3x3(&x, n, h, w, &k, &bias, true, true, &mut pooled));
            assert_pooled(&got, &pooled, (n, h, w, cout), "amx");
            let mut neg = x.clone();
            neg[0] = -1.0;
            let mut untouched = vec![7f32; n * h * w * cout];
            assert!(!conv3x3(
                &neg,
                n,
                h,
                w,
                &k,
                &bias,
                true,
                false,
                &mut untouched
            ));
            assert!(untouched.iter().all(|&v| v == 7.0));
            eprintln!("{n}x{h}x{w}x{cin}->{cout}: rel L2 {r:.2e}");
        }
    }
}
