//! Winograd convolution for the 3x3, stride-1, padding-1 layers of the fast CPU engine (Lavin &
//! Gray, CVPR 2016), in two tile sizes:
//!
//! - F(2x2, 3x3): 4x4 input tiles, 16 products per output pair per 2x2 outputs (2.25x fewer
//!   than direct); transform entries 0, +-1, +-1/2, so bf16 and int8 operands stay accurate;
//! - F(4x4, 3x3): 6x6 input tiles, 36 products per 4x4 outputs (4x fewer than direct); the
//!   points 0, +-1, +-2 give larger transform entries (up to 8 in `A`, 5 in `B`), which f32
//!   absorbs (the fixtures' 1e-4 holds) but bf16's 8-bit mantissa does not.
//!
//! A layer runs in chunks of tiles, each on one thread with its own scratch: the tiles are
//! transformed channels-last (`V = B^T d B`, written in the GEMM's operand precision, f32 or
//! bf16), the alpha^2 transformed planes are multiplied by the pre-transformed kernels
//! (`U = G g G^T`, packed once) in [`super::gemm`], and the products are transformed back
//! (`Y = A^T M A`) with bias and ReLU fused.
//!
//! The transforms are written once over [`Vf`] vectors of channels and compiled for AVX-512,
//! AVX2 and the baseline, chosen at run time.

use half::bf16;
use rayon::prelude::*;

use super::gemm::{Epilogue, Lhs, NR, PackedB, f32_panel_entry, gemm, quantize_rows, row_block};
use super::isa::Kernel;
use super::simd::{Arr, Vf};
#[cfg(target_arch = "x86_64")]
use super::simd::{Z, Zb};

/// Scratch per chunk (bytes) for the transformed input and the products: small enough to stay
/// in a core's L2 cache, so that the transforms read and write it there (measured on Zen 4:
/// the transforms of conv1_2 take half the time they take with 4 MB chunks).
const CHUNK_BYTES: usize = 768 << 10;
/// Fewest tiles per chunk: each chunk streams all the layer's Winograd kernels (8 MB for a
/// 512-channel layer in bf16) through the cache, which this many tiles amortise.
const MIN_TILES: usize = 36;

/// The output tile of a Winograd transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    /// F(2x2, 3x3).
    F2,
    /// F(4x4, 3x3).
    F4,
}

impl Tile {
    /// Output tile side m.
    pub fn m(self) -> usize {
        match self {
            Tile::F2 => 2,
            Tile::F4 => 4,
        }
    }

    /// Input tile side alpha = m + 2.
    pub fn alpha(self) -> usize {
        self.m() + 2
    }

    /// G (alpha x 3), the kernel transform.
    fn g(self) -> &'static [[f64; 3]] {
        match self {
            Tile::F2 => &[
                [1.0, 0.0, 0.0],
                [0.5, 0.5, 0.5],
                [0.5, -0.5, 0.5],
                [0.0, 0.0, 1.0],
            ],
            Tile::F4 => &[
                [1.0 / 4.0, 0.0, 0.0],
                [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
                [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
                [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
                [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
                [0.0, 0.0, 1.0],
            ],
        }
    }
}

/// The kernels of one 3x3 conv in the Winograd domain: alpha^2 matrices (cin x cout), packed.
#[derive(Debug)]
pub struct WinogradKernel {
    tile: Tile,
    cin: usize,
    cout: usize,
    u: Vec<PackedB>,
}

impl WinogradKernel {
    /// Transforms a (cout, cin, 3, 3) kernel, `U = G g G^T` per (cout, cin) pair (in f64, then
    /// rounded), and packs the alpha^2 planes for `kernel`. Runs on the rayon pool: the trainer
    /// transforms every Winograd layer's kernels twice a step (forward and backward-data), and
    /// a 512-channel layer's are 9.4 M values to write (and 37.7 MB to pack).
    pub fn new(w: &[f32], cout: usize, cin: usize, tile: Tile, kernel: Kernel) -> Self {
        let a = tile.alpha();
        let g = tile.g();
        assert_eq!(w.len(), cout * cin * 9);
        // U for every plane at once, for the (ci, co) pair at each index of the planes' layout
        // (None: padding, left zero); each task fills one run of indices in every plane.
        let fill = |planes: &mut [Vec<f32>],
                    at: &(dyn Fn(usize) -> Option<(usize, usize)> + Sync)| {
            const RUN: usize = 1 << 12;
            let len = planes[0].len();
            let mut runs: Vec<Vec<&mut [f32]>> =
                (0..len.div_ceil(RUN)).map(|_| Vec::new()).collect();
            for plane in planes.iter_mut() {
                for (r, chunk) in plane.chunks_mut(RUN).enumerate() {
                    runs[r].push(chunk);
                }
            }
            runs.into_par_iter().enumerate().for_each(|(r, mut out)| {
                for e in r * RUN..(r * RUN + RUN).min(len) {
                    let Some((ci, co)) = at(e) else { continue };
                    let k = &w[(co * cin + ci) * 9..][..9];
                    // t = G k (alpha x 3), then U = t G^T (alpha x alpha).
                    let mut t = [[0f64; 3]; 6];
                    for (ti, gi) in t.iter_mut().zip(g) {
                        for (j, tij) in ti.iter_mut().enumerate() {
                            *tij = (0..3).map(|q| gi[q] * f64::from(k[q * 3 + j])).sum();
                        }
                    }
                    for (i, ti) in t.iter().take(a).enumerate() {
                        for (j, gj) in g.iter().enumerate() {
                            let u: f64 = (0..3).map(|q| ti[q] * gj[q]).sum();
                            out[i * a + j][e - r * RUN] = u as f32;
                        }
                    }
                }
            });
        };
        let zeros = |len: usize| -> Vec<Vec<f32>> {
            (0..a * a)
                .into_par_iter()
                .map(|_| vec![0f32; len])
                .collect()
        };
        let u = if kernel == Kernel::F32 {
            // Straight into the f32 panels ([`PackedB::from_f32_panels`]), no copy.
            let mut panels = zeros(cout.div_ceil(NR) * cin * NR);
            fill(&mut panels, &|e| f32_panel_entry(cin, cout, e));
            panels
                .into_iter()
                .map(|d| PackedB::from_f32_panels(d, cin, cout))
                .collect()
        } else {
            // Row-major (cin x cout) planes, then packed for the kernel.
            let mut planes = zeros(cin * cout);
            fill(&mut planes, &|e| Some((e / cout, e % cout)));
            planes
                .par_iter()
                .map(|p| PackedB::new(p, cin, cout, kernel))
                .collect()
        };
        WinogradKernel { tile, cin, cout, u }
    }

    fn kernel_of(&self) -> Kernel {
        self.u[0].kernel()
    }
}

/// Per-thread scratch: the transformed tiles (in one of the two precisions), one plane of them
/// quantised for int8 (values, and each row's step and offset), and the products.
#[derive(Default)]
struct Scratch {
    vf: Vec<f32>,
    vb: Vec<bf16>,
    vq: Vec<u8>,
    qs: Vec<f32>,
    ql: Vec<f32>,
    m: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: used only to write disjoint output pixels from several threads.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

/// Geometry of one layer's tiling.
#[derive(Clone, Copy)]
struct Tiling {
    tile: Tile,
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
}

impl Tiling {
    /// (image, first output row, first output column) of tile `t`.
    fn origin(&self, t: usize) -> (usize, usize, usize) {
        let per = self.th * self.tw;
        let (img, r) = (t / per, t % per);
        let m = self.tile.m();
        (img, (r / self.tw) * m, (r % self.tw) * m)
    }
}

/// The tiles `t0 .. t0 + t` of a layer's tiling: what one chunk transforms.
#[derive(Clone, Copy)]
struct Chunk {
    geo: Tiling,
    t0: usize,
    t: usize,
}

/// 3x3 convolution with padding 1 of a channels-last input (n, h, w, cin) into `out`, plus
/// bias and optional ReLU: (n, h, w, cout), or with `pool` the 2x2 max-pool of that,
/// (n, h/2, w/2, cout), taken while each tile's outputs are still in registers.
#[allow(clippy::too_many_arguments)]
pub fn conv3x3(
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    k: &WinogradKernel,
    bias: &[f32],
    relu: bool,
    pool: bool,
    out: &mut [f32],
) {
    let (cin, cout) = (k.cin, k.cout);
    assert_eq!(x.len(), n * h * w * cin);
    let (oh, ow) = if pool { (h / 2, w / 2) } else { (h, w) };
    assert_eq!(out.len(), n * oh * ow * cout);
    let (m, a) = (k.tile.m(), k.tile.alpha());
    let geo = Tiling {
        tile: k.tile,
        h,
        w,
        th: h.div_ceil(m),
        tw: w.div_ceil(m),
    };
    let tiles = n * geo.th * geo.tw;
    if tiles == 0 {
        return;
    }
    let kernel = k.kernel_of();
    let lda = k.u[0].lhs_width();
    // Bytes per transformed value: bf16, f32, or f32 and (one plane at a time) its u8.
    let esize = kernel.lhs_bytes();
    // Tiles per chunk: within the scratch budget (or MIN_TILES), a multiple of the GEMM's row
    // block, and spread
    // evenly over the threads.
    let per_tile = a * a * (lda * esize + cout * 4);
    let rb = row_block(kernel);
    let max_chunk = ((CHUNK_BYTES / per_tile).max(MIN_TILES) / rb * rb).max(rb);
    let threads = rayon::current_num_threads().max(1);
    let n_chunks = tiles.div_ceil(max_chunk).div_ceil(threads) * threads;
    let chunk = tiles.div_ceil(n_chunks).next_multiple_of(rb).max(rb);
    let n_chunks = tiles.div_ceil(chunk);
    let simd = Simd::for_kernel(kernel);
    let out_ptr = SyncPtr(out.as_mut_ptr());
    let work = |ci: usize, s: &mut Scratch| {
        let t0 = ci * chunk;
        let t = chunk.min(tiles - t0);
        s.m.resize(a * a * t * cout, 0.0);
        let bf = kernel == Kernel::Bf16;
        let v = if bf {
            s.vb.resize(a * a * t * lda, bf16::ZERO);
            VOut::Bf16(s.vb.as_mut_ptr())
        } else {
            s.vf.resize(a * a * t * lda, 0.0);
            VOut::F32(s.vf.as_mut_ptr())
        };
        // SAFETY: the buffer behind `v` holds alpha^2 planes of t rows of lda values.
        unsafe { simd.input(x, Chunk { geo, t0, t }, cin, lda, v) };
        if kernel == Kernel::Int8 {
            s.vq.resize(t * lda, 0);
            s.qs.resize(t, 0.0);
            s.ql.resize(t, 0.0);
        }
        for xi in 0..a * a {
            let plane = xi * t * lda..(xi + 1) * t * lda;
            let v = if bf {
                Lhs::Bf16(&s.vb[plane])
            } else if kernel == Kernel::Int8 {
                // Each tile's row of this plane quantised as it enters the product.
                let (q, sc, lo) = (&mut s.vq, &mut s.qs, &mut s.ql);
                quantize_rows(&s.vf[plane], lda, cin, t, q, lda, sc, lo);
                Lhs::U8 {
                    q: &s.vq[..],
                    scale: &s.qs[..],
                    lo: &s.ql[..],
                }
            } else {
                Lhs::F32(&s.vf[plane])
            };
            let mm = &mut s.m[xi * t * cout..(xi + 1) * t * cout];
            gemm(t, v, lda, &k.u[xi], 0..cout, mm, cout, Epilogue::NONE);
        }
        // SAFETY: `out` is (n, h, w, cout); each tile writes only its own output pixels, and
        // chunks hold disjoint tiles.
        unsafe { simd.output(&s.m, Chunk { geo, t0, t }, cout, bias, relu, pool, out_ptr) };
    };
    if n_chunks > 1 && threads > 1 {
        (0..n_chunks)
            .into_par_iter()
            .for_each(|ci| SCRATCH.with(|s| work(ci, &mut s.borrow_mut())));
    } else {
        SCRATCH.with(|s| {
            let s = &mut s.borrow_mut();
            for ci in 0..n_chunks {
                work(ci, s);
            }
        });
    }
}

/// Where the input transform writes: the GEMM's left operand, f32 or bf16.
#[derive(Clone, Copy)]
enum VOut {
    F32(*mut f32),
    Bf16(*mut bf16),
}

/// The instruction set the transforms (and [`super::direct`]'s loops) are compiled for.
#[derive(Clone, Copy)]
pub(crate) enum Simd {
    Base,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx512Bf16,
}

impl Simd {
    /// The widest instruction set this CPU has that `kernel` allows.
    pub(crate) fn for_kernel(kernel: Kernel) -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            // The bf16 kernel is chosen only on CPUs with AVX512-BF16 (isa.rs).
            if kernel == Kernel::Bf16 && std::arch::is_x86_feature_detected!("avx512bw") {
                return Simd::Avx512Bf16;
            }
            // The AVX-512 kernels are chosen only on CPUs with AVX-512F; BW comes with it on
            // every such CPU but is checked anyway.
            if kernel != Kernel::Portable && std::arch::is_x86_feature_detected!("avx512bw") {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Simd::Avx2;
            }
        }
        let _ = kernel;
        Simd::Base
    }

    /// # Safety
    /// `v` has room for alpha^2 planes of `t` rows of `lda` values.
    unsafe fn input(self, x: &[f32], ch: Chunk, cin: usize, lda: usize, v: VOut) {
        // SAFETY: forwarded; each variant is chosen only when the CPU has its features.
        unsafe {
            match self {
                Simd::Base => input_transform::<Arr>(x, ch, cin, lda, v),
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => input_avx2(x, ch, cin, lda, v),
                #[cfg(target_arch = "x86_64")]
                Simd::Avx512 => input_avx512(x, ch, cin, lda, v),
                #[cfg(target_arch = "x86_64")]
                Simd::Avx512Bf16 => input_avx512bf16(x, ch, cin, lda, v),
            }
        }
    }

    /// # Safety
    /// As [`output_transform`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn output(
        self,
        m: &[f32],
        ch: Chunk,
        cout: usize,
        bias: &[f32],
        relu: bool,
        pool: bool,
        out: SyncPtr,
    ) {
        let e = Epi { bias, relu, pool };
        // SAFETY: forwarded; the features as in `input`.
        unsafe {
            match self {
                Simd::Base => output_transform::<Arr>(m, ch, cout, e, out),
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => output_avx2(m, ch, cout, e, out),
                #[cfg(target_arch = "x86_64")]
                Simd::Avx512 | Simd::Avx512Bf16 => output_avx512(m, ch, cout, e, out),
            }
        }
    }
}

/// `unsafe fn $name(args)`: `$body::<$v>(args)` compiled with `$features` enabled, for callers
/// that have checked the CPU has them.
macro_rules! with_features {
    ($name:ident, $features:literal, $body:ident::<$v:ty>($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name($($arg: $ty),*) {
            // SAFETY: forwarded; the caller checked the features.
            unsafe { $body::<$v>($($arg),*) }
        }
    };
}

with_features!(input_avx512bf16, "avx512f,avx512bw,avx512bf16,avx2,fma", input_transform::<Zb>(
    x: &[f32], ch: Chunk, cin: usize, lda: usize, v: VOut));
with_features!(input_avx512, "avx512f,avx512bw,avx2,fma", input_transform::<Z>(
    x: &[f32], ch: Chunk, cin: usize, lda: usize, v: VOut));
with_features!(input_avx2, "avx2,fma", input_transform::<Arr>(
    x: &[f32], ch: Chunk, cin: usize, lda: usize, v: VOut));
with_features!(output_avx512, "avx512f,avx512bw,avx2,fma", output_transform::<Z>(
    m: &[f32], ch: Chunk, cout: usize, e: Epi, out: SyncPtr));
with_features!(output_avx2, "avx2,fma", output_transform::<Arr>(
    m: &[f32], ch: Chunk, cout: usize, e: Epi, out: SyncPtr));

// The 1-D transforms below act on one column (or row) of a tile, each entry a vector of
// channels. SAFETY of their bodies: the vector ops are sound whenever the caller runs with the
// features of `V` (see `Vf`).

/// One column of `B^T d`, F(2x2, 3x3): rows (1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0),
/// (0, 1, 0, -1).
#[inline(always)]
unsafe fn bt4<V: Vf>(d: [V; 4]) -> [V; 4] {
    unsafe {
        [
            d[0].sub(d[2]),
            d[1].add(d[2]),
            d[2].sub(d[1]),
            d[1].sub(d[3]),
        ]
    }
}

/// One column of `B^T d`, F(4x4, 3x3): rows (4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0),
/// (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1).
#[inline(always)]
unsafe fn bt6<V: Vf>(d: [V; 6]) -> [V; 6] {
    unsafe {
        let p = d[4].axpy(-4.0, d[2]); // d4 - 4 d2
        let q = d[3].axpy(-4.0, d[1]); // d3 - 4 d1
        let r = d[4].sub(d[2]);
        let s = d[3].sub(d[1]);
        let s2 = s.add(s); // 2 (d3 - d1)
        [
            d[4].axpy(-5.0, d[2]).axpy(4.0, d[0]),
            p.add(q),
            p.sub(q),
            r.add(s2),
            r.sub(s2),
            d[5].axpy(-5.0, d[3]).axpy(4.0, d[1]),
        ]
    }
}

/// One column of `A^T m`, F(2x2, 3x3): rows (1, 1, 1, 0), (0, 1, -1, -1).
#[inline(always)]
unsafe fn at4<V: Vf>(m: [V; 4]) -> [V; 2] {
    unsafe { [m[0].add(m[1]).add(m[2]), m[1].sub(m[2]).sub(m[3])] }
}

/// One column of `A^T m`, F(4x4, 3x3): rows (1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0),
/// (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1).
#[inline(always)]
unsafe fn at6<V: Vf>(m: [V; 6]) -> [V; 4] {
    unsafe {
        let s1 = m[1].add(m[2]);
        let d1 = m[1].sub(m[2]);
        let s2 = m[3].add(m[4]);
        let d2 = m[3].sub(m[4]);
        [
            m[0].add(s1).add(s2),
            d1.axpy(2.0, d2),
            s1.axpy(4.0, s2),
            d1.axpy(8.0, d2).add(m[5]),
        ]
    }
}

/// One column of `B^T d` for an alpha-point tile.
#[inline(always)]
unsafe fn bt<V: Vf, const A: usize>(d: [V; A]) -> [V; A] {
    // SAFETY: as the 1-D transforms; A is 4 or 6 (the branch is resolved at compile time).
    unsafe {
        if A == 4 {
            let o = bt4([d[0], d[1], d[2], d[3]]);
            std::array::from_fn(|i| o[i])
        } else {
            let o = bt6([d[0], d[1], d[2], d[3], d[4], d[5]]);
            std::array::from_fn(|i| o[i])
        }
    }
}

/// One column of `A^T m` for an alpha-point tile with M outputs.
#[inline(always)]
unsafe fn at<V: Vf, const A: usize, const M: usize>(m: [V; A]) -> [V; M] {
    // SAFETY: as the 1-D transforms; (A, M) is (4, 2) or (6, 4).
    unsafe {
        if A == 4 {
            let o = at4([m[0], m[1], m[2], m[3]]);
            std::array::from_fn(|i| o[i])
        } else {
            let o = at6([m[0], m[1], m[2], m[3], m[4], m[5]]);
            std::array::from_fn(|i| o[i])
        }
    }
}

#[allow(clippy::needless_range_loop)] // a transpose reads clearer with indices
/// `B^T d B` of one tile's channel block: `ld(r, c)` gives the input at tile row r, column
/// c; `put(k, v)` takes transformed entry k = r * A + c.
#[inline(always)]
unsafe fn tile_in<V: Vf, const A: usize>(
    ld: impl Fn(usize, usize) -> V,
    mut put: impl FnMut(usize, V),
) {
    // SAFETY: as the 1-D transforms.
    unsafe {
        let mut tt = [[V::zero(); A]; A];
        for col in 0..A {
            let o = bt::<V, A>(std::array::from_fn(|r| ld(r, col)));
            for r in 0..A {
                tt[r][col] = o[r];
            }
        }
        for (r, row) in tt.iter().enumerate() {
            let o = bt::<V, A>(*row);
            for (c, val) in o.into_iter().enumerate() {
                put(r * A + c, val);
            }
        }
    }
}

/// `V = B^T d B` for tiles `t0 .. t0 + t`, written as alpha^2 planes of `t` rows of `lda`
/// values (channels, then zeros up to `lda`).
///
/// # Safety
/// The CPU has `V`'s features; `v` has room for alpha^2 planes of `t` rows of `lda` values.
#[inline(always)]
unsafe fn input_transform<V: Vf>(x: &[f32], ch: Chunk, cin: usize, lda: usize, v: VOut) {
    // SAFETY: forwarded.
    unsafe {
        match ch.geo.tile {
            Tile::F2 => input_tiles::<V, 4>(x, ch, cin, lda, v),
            Tile::F4 => input_tiles::<V, 6>(x, ch, cin, lda, v),
        }
    }
}

/// [`input_transform`] for alpha = A.
///
/// # Safety
/// As [`input_transform`].
#[inline(always)]
unsafe fn input_tiles<V: Vf, const A: usize>(
    x: &[f32],
    ch: Chunk,
    cin: usize,
    lda: usize,
    v: VOut,
) {
    let Chunk { geo, t0, t } = ch;
    let plane = t * lda;
    let (h, w) = (geo.h, geo.w);
    assert!(x.len() >= h * w * cin * (geo.origin(t0 + t - 1).0 + 1));
    // SAFETY (whole body): writes stay inside the planes (row < t, column < lda); reads stay
    // inside the input (interior tiles lie wholly in their image, border tiles check each
    // pixel).
    unsafe {
        let put = |at: usize, val: V, n: usize| match v {
            VOut::F32(p) => val.store(p.add(at), n),
            VOut::Bf16(p) => val.store_bf16(p.add(at), n),
        };
        if lda > cin {
            for row in 0..A * A * t {
                for c in cin..lda {
                    match v {
                        VOut::F32(p) => *p.add(row * lda + c) = 0.0,
                        VOut::Bf16(p) => *p.add(row * lda + c) = bf16::ZERO,
                    }
                }
            }
        }
        let rs = w * cin;
        for i in 0..t {
            let (img, oy, ox) = geo.origin(t0 + i);
            let row = i * lda;
            if oy >= 1 && ox >= 1 && oy + A - 1 <= h && ox + A - 1 <= w {
                // The whole window is inside the image: no checks.
                let base = x.as_ptr().add(((img * h + oy - 1) * w + ox - 1) * cin);
                let mut c0 = 0;
                while c0 < cin {
                    let n = V::LANES.min(cin - c0);
                    tile_in::<V, A>(
                        |r, c| V::load(base.add(r * rs + c * cin + c0), n),
                        |k, val| put(k * plane + row + c0, val, n),
                    );
                    c0 += n;
                }
            } else {
                let mut src = [usize::MAX; 36];
                for r in 0..A {
                    for c in 0..A {
                        let (y, xx) = ((oy + r) as isize - 1, (ox + c) as isize - 1);
                        if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                            src[r * A + c] = ((img * h + y as usize) * w + xx as usize) * cin;
                        }
                    }
                }
                let mut c0 = 0;
                while c0 < cin {
                    let n = V::LANES.min(cin - c0);
                    tile_in::<V, A>(
                        |r, c| match src[r * A + c] {
                            usize::MAX => V::zero(),
                            s => V::load(x.as_ptr().add(s + c0), n),
                        },
                        |k, val| put(k * plane + row + c0, val, n),
                    );
                    c0 += n;
                }
            }
        }
    }
}

/// What follows the output transform: bias, ReLU, and the 2x2 max-pool.
#[derive(Clone, Copy)]
struct Epi<'a> {
    bias: &'a [f32],
    relu: bool,
    pool: bool,
}

/// `Y = A^T M A` + bias (+ ReLU) for tiles `t0 .. t0 + t` (products `m`: alpha^2 planes of `t`
/// rows of `cout`), written into the (n, h, w, cout) output behind `out`, or with `e.pool`
/// max-pooled into an (n, h/2, w/2, cout) output (tiles start at even rows and columns, so
/// each holds whole 2x2 windows; a window cut by an odd edge is dropped, as the pool floors).
///
/// # Safety
/// The CPU has `V`'s features; `out` points to the output buffer, and no other thread writes
/// the pixels of these tiles.
#[inline(always)]
unsafe fn output_transform<V: Vf>(m: &[f32], ch: Chunk, cout: usize, e: Epi, out: SyncPtr) {
    // SAFETY: forwarded.
    unsafe {
        match ch.geo.tile {
            Tile::F2 => output_tiles::<V, 4, 2>(m, ch, cout, e, out),
            Tile::F4 => output_tiles::<V, 6, 4>(m, ch, cout, e, out),
        }
    }
}

#[allow(clippy::needless_range_loop)] // a transpose reads clearer with indices
/// [`output_transform`] for alpha = A, M outputs per tile side.
///
/// # Safety
/// As [`output_transform`].
#[inline(always)]
unsafe fn output_tiles<V: Vf, const A: usize, const M: usize>(
    m: &[f32],
    ch: Chunk,
    cout: usize,
    e: Epi,
    out: SyncPtr,
) {
    let Epi { bias, relu, pool } = e;
    let Chunk { geo, t0, t } = ch;
    let plane = t * cout;
    let (ph, pw) = (geo.h / 2, geo.w / 2);
    assert!(m.len() >= A * A * plane && bias.len() >= cout);
    // SAFETY (whole body): reads stay inside `m` (asserted) and `bias`; each written pixel is
    // inside the output and belongs to this tile.
    unsafe {
        for i in 0..t {
            let (img, oy, ox) = geo.origin(t0 + i);
            let rows = M.min(geo.h - oy);
            let cols = M.min(geo.w - ox);
            let mut c0 = 0;
            while c0 < cout {
                let n = V::LANES.min(cout - c0);
                let src = m.as_ptr().add(i * cout + c0);
                let b = V::load(bias.as_ptr().add(c0), n);
                let mut s = [[V::zero(); A]; M];
                for col in 0..A {
                    let o = at::<V, A, M>(std::array::from_fn(|r| {
                        V::load(src.add((r * A + col) * plane), n)
                    }));
                    for r in 0..M {
                        s[r][col] = o[r];
                    }
                }
                let y: [[V; M]; M] = std::array::from_fn(|r| at::<V, A, M>(s[r]));
                let fin = |v: V| if relu { v.add(b).relu() } else { v.add(b) };
                if pool {
                    for py in 0..M / 2 {
                        for px in 0..M / 2 {
                            let (yy, xx) = (oy / 2 + py, ox / 2 + px);
                            if yy < ph && xx < pw {
                                let (r, c) = (2 * py, 2 * px);
                                let top = y[r][c].max(y[r][c + 1]);
                                let o = fin(top.max(y[r + 1][c].max(y[r + 1][c + 1])));
                                o.store(out.0.add(((img * ph + yy) * pw + xx) * cout + c0), n);
                            }
                        }
                    }
                } else {
                    for (dy, yrow) in y.iter().enumerate().take(rows) {
                        for (dx, val) in yrow.iter().enumerate().take(cols) {
                            let px = ((img * geo.h + oy + dy) * geo.w + ox + dx) * cout + c0;
                            fin(*val).store(out.0.add(px), n);
                        }
                    }
                }
                c0 += n;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::engine::isa::available;

    fn vals(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let v = (i as u32)
                    .wrapping_mul(2654435761)
                    .wrapping_add(seed.wrapping_mul(40503));
                (v >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// Direct 3x3 convolution, padding 1, channels-last, in f64, with bias and ReLU (the
    /// reference of the int8 direct path's test too).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn direct(
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        cin: usize,
        wt: &[f32],
        bias: &[f32],
        cout: usize,
    ) -> Vec<f64> {
        let mut out = vec![0f64; n * h * w * cout];
        for img in 0..n {
            for y in 0..h {
                for xx in 0..w {
                    for co in 0..cout {
                        let mut s = f64::from(bias[co]);
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) =
                                    (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                for ci in 0..cin {
                                    let xv =
                                        x[((img * h + iy as usize) * w + ix as usize) * cin + ci];
                                    s += f64::from(xv)
                                        * f64::from(wt[((co * cin + ci) * 3 + ky) * 3 + kx]);
                                }
                            }
                        }
                        out[((img * h + y) * w + xx) * cout + co] = s.max(0.0);
                    }
                }
            }
        }
        out
    }

    /// `pooled` is the 2x2 max-pool of the (n, h, w, c) map `full`, odd edges dropped.
    pub(crate) fn assert_pooled(
        full: &[f32],
        pooled: &[f32],
        (n, h, w, c): (usize, usize, usize, usize),
        what: &str,
    ) {
        let (ph, pw) = (h / 2, w / 2);
        for img in 0..n {
            for y in 0..ph {
                for xx in 0..pw {
                    for ch in 0..c {
                        let at = |yy: usize, xq: usize| full[((img * h + yy) * w + xq) * c + ch];
                        let m = at(2 * y, 2 * xx)
                            .max(at(2 * y, 2 * xx + 1))
                            .max(at(2 * y + 1, 2 * xx))
                            .max(at(2 * y + 1, 2 * xx + 1));
                        assert_eq!(
                            pooled[((img * ph + y) * pw + xx) * c + ch],
                            m,
                            "{what} pool"
                        );
                    }
                }
            }
        }
    }

    /// Both tile sizes on every kernel against a direct convolution: odd sizes (partial tiles),
    /// channel counts that leave partial vectors and partial panels, and the fused max-pool
    /// (whose odd edges are dropped) against the pool of the direct result.
    #[test]
    fn winograd_matches_direct_convolution() {
        for &(n, h, w, cin, cout) in &[
            (2, 7, 9, 20, 70),
            (1, 1, 1, 8, 16),
            (1, 12, 10, 64, 64),
            (1, 5, 6, 33, 8),
        ] {
            let x = vals(n * h * w * cin, 1);
            let wt: Vec<f32> = vals(cout * cin * 9, 2).iter().map(|v| v * 0.2).collect();
            let bias = vals(cout, 3);
            let want = direct(&x, n, h, w, cin, &wt, &bias, cout);
            let norm = want.iter().map(|v| v * v).sum::<f64>().sqrt();
            let mag = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1.0);
            for kernel in available() {
                for tile in [Tile::F2, Tile::F4] {
                    let k = WinogradKernel::new(&wt, cout, cin, tile, kernel);
                    let mut got = vec![f32::NAN; n * h * w * cout];
                    conv3x3(&x, n, h, w, &k, &bias, true, false, &mut got);
                    let err = got
                        .iter()
                        .zip(&want)
                        .map(|(a, b)| (f64::from(*a) - b).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    let max = got
                        .iter()
                        .zip(&want)
                        .fold(0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()));
                    if matches!(kernel, Kernel::Bf16 | Kernel::Int8) {
                        // F(4x4) in bf16 is about 3x less accurate than F(2x2) (single layer:
                        // ~1.3e-2 against ~4e-3), which is why the engine never pairs them;
                        // int8 likewise (F(2x2): 0.4-8e-3 here; F(4x4): 1e-3 to 4e-2).
                        let bound = match (kernel, tile) {
                            (Kernel::Bf16, Tile::F2) => 1e-2,
                            (Kernel::Bf16, Tile::F4) => 3e-2,
                            (_, Tile::F2) => 1.5e-2,
                            (_, Tile::F4) => 8e-2,
                        };
                        assert!(
                            err <= bound * norm,
                            "{kernel:?} {tile:?} {n}x{h}x{w}x{cin}->{cout}: rel L2 {}",
                            err / norm
                        );
                    } else {
                        assert!(
                            max <= 1e-5 * mag,
                            "{kernel:?} {tile:?} {n}x{h}x{w}x{cin}->{cout}: max {max}"
                        );
                    }
                    let mut pooled = vec![f32::NAN; n * (h / 2) * (w / 2) * cout];
                    conv3x3(&x, n, h, w, &k, &bias, true, true, &mut pooled);
                    assert_pooled(
                        &got,
                        &pooled,
                        (n, h, w, cout),
                        &format!("{kernel:?} {tile:?}"),
                    );
                }
            }
        }
    }
}
