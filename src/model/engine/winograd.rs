//! Winograd F(2x2, 3x3) convolution for the 3x3, stride-1, padding-1 layers of the fast CPU
//! path (Lavin & Gray, CVPR 2016): each 2x2 output tile costs 16 multiplies per input/output
//! channel pair instead of 36, i.e. 2.25x fewer. Tiles are transformed channels-last
//! (`V = B^T d B`), the 16 transformed planes are multiplied by the pre-transformed kernels
//! (`U = G g G^T`) as 16 GEMMs (tiles x Cin) x (Cin x Cout), and the results transformed back
//! (`Y = A^T M A`) with bias and ReLU fused. Work is chunked over tiles so scratch memory stays
//! bounded; chunks run in parallel.
//!
//! F(2x2, 3x3) is the numerically tame variant (transform entries 0, +-1, +-1/2): on VGG's
//! layers its outputs stay within the fixtures' 1e-4 relative tolerance of direct convolution
//! (tested against candle's conv on random inputs of odd sizes).

use gemm::Parallelism;
use rayon::prelude::*;

use super::unfold::gemm_rowmajor;

/// Scratch per chunk (bytes) for the transformed input and output planes.
const CHUNK_BYTES: usize = 8 << 20;

/// Kernels of one 3x3 conv in the Winograd domain: 16 matrices (cin x cout), row-major.
#[derive(Debug)]
pub struct WinogradKernel {
    cin: usize,
    cout: usize,
    u: Vec<f32>,
}

impl WinogradKernel {
    /// Transforms a (cout, cin, 3, 3) kernel: `U = G g G^T` per (cout, cin) pair.
    pub fn new(w: &[f32], cout: usize, cin: usize) -> Self {
        let mut u = vec![0f32; 16 * cin * cout];
        for co in 0..cout {
            for ci in 0..cin {
                let g = &w[(co * cin + ci) * 9..(co * cin + ci) * 9 + 9];
                // t = G g (4x3), G = [[1,0,0],[1/2,1/2,1/2],[1/2,-1/2,1/2],[0,0,1]]
                let mut t = [[0f32; 3]; 4];
                for j in 0..3 {
                    let (a, b, c) = (g[j], g[3 + j], g[6 + j]);
                    t[0][j] = a;
                    t[1][j] = 0.5 * (a + b + c);
                    t[2][j] = 0.5 * (a - b + c);
                    t[3][j] = c;
                }
                // U = t G^T (4x4)
                for (i, row) in t.iter().enumerate() {
                    let (a, b, c) = (row[0], row[1], row[2]);
                    let v = [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
                    for (j, x) in v.iter().enumerate() {
                        u[((i * 4 + j) * cin + ci) * cout + co] = *x;
                    }
                }
            }
        }
        WinogradKernel { cin, cout, u }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// 3x3 convolution with padding 1 of a channels-last input (n, h, w, cin) into `out`
/// (n, h, w, cout), plus bias and optional ReLU.
#[allow(clippy::too_many_arguments)]
pub fn conv3x3(
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    k: &WinogradKernel,
    bias: &[f32],
    relu: bool,
    out: &mut [f32],
) {
    let (cin, cout) = (k.cin, k.cout);
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let tiles = n * th * tw;
    let per_tile = 16 * (cin + cout) * 4;
    let chunk = (CHUNK_BYTES / per_tile).clamp(16, 4096).min(tiles.max(1));
    let n_chunks = tiles.div_ceil(chunk);
    let threads = rayon::current_num_threads();
    let split = n_chunks >= 2 * threads && threads > 1;
    let par = if split || threads == 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    };
    let out_ptr = SyncPtr(out.as_mut_ptr());
    let work = |ci: usize, scratch: &mut (Vec<f32>, Vec<f32>)| {
        let t0 = ci * chunk;
        let t = chunk.min(tiles - t0);
        let (v, m) = scratch;
        v.clear();
        v.resize(16 * t * cin, 0.0);
        m.clear();
        m.resize(16 * t * cout, 0.0);
        input_transform(x, h, w, cin, th, tw, t0, t, v);
        for xi in 0..16 {
            // v[xi] is t x cin, u[xi] is cin x cout, m[xi] is t x cout, all row-major.
            gemm_rowmajor(
                t,
                cout,
                cin,
                &mut m[xi * t * cout..(xi + 1) * t * cout],
                false,
                &v[xi * t * cin..(xi + 1) * t * cin],
                &k.u[xi * cin * cout..(xi + 1) * cin * cout],
                par,
            );
        }
        // SAFETY: each tile writes only its own 2x2 output pixels; chunks hold disjoint tiles.
        unsafe { output_transform(m, h, w, cout, th, tw, t0, t, bias, relu, out_ptr) };
    };
    if split {
        (0..n_chunks)
            .into_par_iter()
            .for_each(|ci| SCRATCH.with(|s| work(ci, &mut s.borrow_mut())));
    } else {
        let mut s = (Vec::new(), Vec::new());
        for ci in 0..n_chunks {
            work(ci, &mut s);
        }
    }
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: used only to write disjoint output pixels from several threads.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

/// `out[i] = a[i] op b[i]` over equal-length slices, written so that it vectorises.
#[inline(always)]
fn sub(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x - y;
    }
}

#[inline(always)]
fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

/// `V = B^T d B` for tiles `t0 .. t0 + t`; `v` is laid out [16][t][cin].
#[allow(clippy::too_many_arguments)]
fn input_transform(
    x: &[f32],
    h: usize,
    w: usize,
    cin: usize,
    th: usize,
    tw: usize,
    t0: usize,
    t: usize,
    v: &mut [f32],
) {
    let zeros = vec![0f32; cin];
    let mut tt = vec![0f32; 16 * cin];
    let mut d: [&[f32]; 16] = [&zeros[..]; 16];
    let stride = t * cin;
    for i in 0..t {
        let tile = t0 + i;
        let img = tile / (th * tw);
        let r = tile % (th * tw);
        let (ty, tx) = (r / tw, r % tw);
        for a in 0..4 {
            let y = (2 * ty + a) as isize - 1;
            for b in 0..4 {
                let xx = (2 * tx + b) as isize - 1;
                d[a * 4 + b] = if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
                    &zeros[..]
                } else {
                    let s = ((img * h + y as usize) * w + xx as usize) * cin;
                    &x[s..s + cin]
                };
            }
        }
        // tt = B^T d: row 0 = d0 - d2, row 1 = d1 + d2, row 2 = d2 - d1, row 3 = d1 - d3
        // (rows of d are d[4r .. 4r + 4]), for each column j.
        for j in 0..4 {
            let (d0, d1, d2, d3) = (d[j], d[4 + j], d[8 + j], d[12 + j]);
            let (r0, rest) = tt.split_at_mut(4 * cin);
            let (r1, rest) = rest.split_at_mut(4 * cin);
            let (r2, r3) = rest.split_at_mut(4 * cin);
            let col = j * cin..(j + 1) * cin;
            sub(&mut r0[col.clone()], d0, d2);
            add(&mut r1[col.clone()], d1, d2);
            sub(&mut r2[col.clone()], d2, d1);
            sub(&mut r3[col], d1, d3);
        }
        // V = tt B: per row r, v0 = t0 - t2, v1 = t1 + t2, v2 = t2 - t1, v3 = t1 - t3.
        let base = i * cin;
        for r in 0..4 {
            let row = &tt[r * 4 * cin..(r + 1) * 4 * cin];
            let (a0, a1, a2, a3) = (
                &row[..cin],
                &row[cin..2 * cin],
                &row[2 * cin..3 * cin],
                &row[3 * cin..],
            );
            let at = |k: usize| (r * 4 + k) * stride + base;
            sub(&mut v[at(0)..at(0) + cin], a0, a2);
            add(&mut v[at(1)..at(1) + cin], a1, a2);
            sub(&mut v[at(2)..at(2) + cin], a2, a1);
            sub(&mut v[at(3)..at(3) + cin], a1, a3);
        }
    }
}

/// `Y = A^T M A` + bias (+ ReLU) for tiles `t0 .. t0 + t`, written into the (n, h, w, cout)
/// output behind `out`.
///
/// # Safety
/// `out` must point to an (n, h, w, cout) buffer, and no other thread may write the pixels of
/// these tiles.
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform(
    m: &[f32],
    h: usize,
    w: usize,
    cout: usize,
    th: usize,
    tw: usize,
    t0: usize,
    t: usize,
    bias: &[f32],
    relu: bool,
    out: SyncPtr,
) {
    let stride = t * cout;
    let mut s = vec![0f32; 8 * cout];
    for i in 0..t {
        let tile = t0 + i;
        let img = tile / (th * tw);
        let r = tile % (th * tw);
        let (ty, tx) = (r / tw, r % tw);
        let base = i * cout;
        let (oy, ox) = (2 * ty, 2 * tx);
        let rows = if oy + 1 < h { 2 } else { 1 };
        let cols = if ox + 1 < w { 2 } else { 1 };
        let mk = |k: usize| &m[k * stride + base..k * stride + base + cout];
        // s = A^T m: row 0 = m0 + m1 + m2, row 1 = m1 - m2 - m3 (rows of m), per column j.
        for j in 0..4 {
            let (m0, m1, m2, m3) = (mk(j), mk(4 + j), mk(8 + j), mk(12 + j));
            let (s0, s1) = s.split_at_mut(4 * cout);
            for c in 0..cout {
                s0[j * cout + c] = m0[c] + m1[c] + m2[c];
                s1[j * cout + c] = m1[c] - m2[c] - m3[c];
            }
        }
        for dy in 0..rows {
            let row = &s[dy * 4 * cout..(dy + 1) * 4 * cout];
            let (a0, a1, a2, a3) = (
                &row[..cout],
                &row[cout..2 * cout],
                &row[2 * cout..3 * cout],
                &row[3 * cout..],
            );
            for dx in 0..cols {
                let px = ((img * h + oy + dy) * w + ox + dx) * cout;
                // SAFETY: the pixel is inside the output and belongs to this tile only.
                let o = unsafe { std::slice::from_raw_parts_mut(out.0.add(px), cout) };
                if dx == 0 {
                    for c in 0..cout {
                        o[c] = a0[c] + a1[c] + a2[c] + bias[c];
                    }
                } else {
                    for c in 0..cout {
                        o[c] = a1[c] - a2[c] - a3[c] + bias[c];
                    }
                }
                if relu {
                    for v in o.iter_mut() {
                        *v = v.max(0.0);
                    }
                }
            }
        }
    }
}
