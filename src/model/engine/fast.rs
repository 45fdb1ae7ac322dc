//! The fast CPU engine for inference. Activations stay channels-last (NHWC) f32 from the first
//! layer to the last; every 3x3 layer (but conv1_1) runs as Winograd ([`super::winograd`]:
//! F(4x4, 3x3) in f32, F(2x2, 3x3) in bf16), every other conv as an unfold
//! ([`super::unfold`]) into a bounded scratch buffer followed by one packed GEMM
//! ([`super::gemm`]) that starts from the bias and applies the ReLU before it stores. 1x1 convs
//! (fc7, fc8, config C) multiply the activations directly. Buffers come from a pool and are
//! reused across layers and calls instead of being allocated per op.
//!
//! [`Precision::Bf16`] rounds the GEMM operands (weights once, activations as they enter each
//! product) to bf16 and accumulates in f32; everything between the products (transforms, bias,
//! ReLU, pooling, the maps handed out) stays f32. [`Precision::Int8`] quantises the weights once
//! per output channel (in the Winograd domain for the 3x3 layers, which then run F(2x2, 3x3))
//! and each row of the GEMM's left operand as it enters the product (see [`super::gemm`]);
//! again everything between the products stays f32. On a CPU with AMX-INT8 the 3x3 layers run
//! as direct int8 convolutions on the tile unit instead ([`super::amx_conv`]: one step per
//! image and layer for the activations), with the 2x2 pool fused; Winograd takes over for an
//! input it refuses (a negative value).
//!
//! Work is split over output rows when there are many (each rayon worker unfolds and multiplies
//! its own chunk, so the unfold is parallel too), and over column panels when there are few
//! (the head on one image).

use std::sync::Mutex;

use candle_core::{Device, Tensor};
use half::bf16;
use rayon::prelude::*;

use super::amx_conv::{self, AmxConv};
use super::gemm::{
    Epilogue, Lhs, MR, NR, PackedB, gemm, gemm_ptr, quantize_rows, row_block, to_bf16_rows,
};
use super::isa::{Kernel, kernel_for};
use super::unfold::{Geom, transpose_planes, unfold_nhwc_rows};
use super::winograd::{Tile, WinogradKernel, conv3x3};
use super::{FeatureMap, Layout, TensorIo};
use crate::error::Result;
use crate::model::Precision;
use crate::model::params::{ConvParams, VggWeights};
use crate::model::plan::{Backend, Conv, Op, Step};

/// Target size of one unfolded chunk (bytes): big enough for GEMM efficiency, small enough to
/// bound memory (conv1_2 of a batch of 8 at 224 would unfold to 925 MB at once).
const CHUNK_BYTES: usize = 6 << 20;
/// Largest left operand of the few-rows path (the head's fc6 on one image): all its rows at
/// once, so that fc6's 100-400 MB of weights are read from memory once per forward.
const FEW_ROWS_BYTES: usize = 64 << 20;

/// The Winograd tile for a kernel: F(4x4, 3x3) in f32, whose transforms f32 absorbs;
/// F(2x2, 3x3) for bf16 and int8 operands, whose 8 bits cannot take F(4x4)'s larger
/// transform entries.
fn tile_for(kernel: Kernel) -> Tile {
    match kernel {
        Kernel::Bf16 | Kernel::Int8 => Tile::F2,
        Kernel::F32 | Kernel::Portable => Tile::F4,
    }
}

/// A convolution prepared for the engine: the Winograd kernels of a 3x3 layer, or the weights
/// as a packed (k*k*cin, cout) matrix for unfold + GEMM.
#[derive(Debug)]
struct FastConv {
    k: usize,
    cin: usize,
    cout: usize,
    /// The GEMM weights (absent when Winograd runs the layer).
    w: Option<PackedB>,
    b: Vec<f32>,
    /// The same kernel in the Winograd domain, for 3x3 / pad 1 layers when enabled.
    wino: Option<WinogradKernel>,
    /// int8 on AMX: the direct 3x3 path (tried first; Winograd runs an input it refuses).
    amx: Option<AmxConv>,
}

impl FastConv {
    fn new(p: &ConvParams, pad: usize, winograd: bool, kernel: Kernel) -> Result<Self> {
        let (cout, cin, k, _) = p.weight.dims4()?;
        // The first layer (3 input channels) gains little from Winograd: keep the GEMM.
        let use_wino = winograd && k == 3 && pad == 1 && cin >= 8;
        let amx = if use_wino && kernel == Kernel::Int8 {
            with_values(&p.weight, |w4| AmxConv::new(w4, cout, cin))?
        } else {
            None
        };
        let (w, wino) = with_values(&p.weight, |w4| {
            if use_wino {
                let wk = WinogradKernel::new(w4, cout, cin, tile_for(kernel), kernel);
                (None, Some(wk))
            } else {
                (Some(PackedB::from_conv(w4, cout, cin, k * k, kernel)), None)
            }
        })?;
        Ok(FastConv {
            k,
            cin,
            cout,
            w,
            b: p.bias.to_vec1()?,
            wino,
            amx,
        })
    }
}

/// Runs `f` on a CPU f32 tensor's values in order: borrowed from its storage when contiguous
/// (fc6's kernel is 400 MB; a copy would double the peak while the engine is built), else
/// copied.
fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
            && let Ok(all) = cpu.as_slice::<f32>()
        {
            return Ok(f(&all[start..end]));
        }
    }
    let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
    Ok(f(&v))
}

/// A channels-last activation (N, H, W, C).
#[derive(Debug)]
pub struct Act {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    data: Vec<f32>,
}

/// VGG inference on the CPU with channels-last GEMM / Winograd convolutions.
#[derive(Debug)]
pub struct FastEngine {
    /// Prepared layers, indexed like [`VggWeights::layers`].
    convs: Vec<FastConv>,
    /// The GEMM kernel every layer runs on.
    kernel: Kernel,
    /// Reusable activation buffers.
    pool: Mutex<Vec<Vec<f32>>>,
}

impl FastEngine {
    /// Prepares the weights for `precision` (reordered and packed for the GEMM, or transformed
    /// into the Winograd domain: 4x the 3x3 kernels for F(4x4) in f32, 16/9 of them in bf16 at
    /// half the bytes). Fails when this CPU cannot run `precision` (see [`super::isa`]).
    pub fn new(
        w: &VggWeights,
        plan: &crate::model::plan::Plan,
        winograd: bool,
        precision: Precision,
    ) -> Result<Self> {
        let kernel = kernel_for(precision)?;
        let layers = w.layers();
        let mut convs = Vec::with_capacity(layers.len());
        for s in plan.steps() {
            if let Op::Conv(Conv { pad, param, .. }) = s.op {
                debug_assert_eq!(param, convs.len());
                convs.push(FastConv::new(layers[param], pad, winograd, kernel)?);
            }
        }
        Ok(FastEngine {
            convs,
            kernel,
            pool: Mutex::new(Vec::new()),
        })
    }

    fn take(&self, len: usize) -> Vec<f32> {
        let mut pool = self.pool.lock().expect("buffer pool poisoned");
        let pos = pool
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        let mut v = match pos {
            Some(i) => pool.swap_remove(i),
            None => Vec::with_capacity(len),
        };
        drop(pool);
        // Every user overwrites the whole buffer: only a grown tail is initialised.
        v.truncate(len);
        v.resize(len, 0.0);
        v
    }

    fn give(&self, v: Vec<f32>) {
        let mut pool = self.pool.lock().expect("buffer pool poisoned");
        pool.push(v);
        // Keep the largest few only.
        if pool.len() > 2 {
            pool.sort_by_key(|v| std::cmp::Reverse(v.capacity()));
            pool.truncate(2);
        }
    }

    /// Replaces `x`'s data by `out` of shape (n, h, w, c), returning the old buffer to the pool.
    fn next(&self, x: Act, h: usize, w: usize, c: usize, data: Vec<f32>) -> Act {
        let act = Act {
            n: x.n,
            h,
            w,
            c,
            data,
        };
        self.give(x.data);
        act
    }

    fn gemm_conv(&self, x: Act, cv: &FastConv, pad: usize, relu: bool) -> Act {
        let b =
            cv.w.as_ref()
                .expect("a conv without Winograd kernels has GEMM weights");
        let g = Geom {
            n: x.n,
            c: cv.cin,
            h: x.h,
            w: x.w,
            k: cv.k,
            p: pad,
        };
        let (oh, ow) = (g.out_h(), g.out_w());
        let m = g.cols();
        let kk = g.patch();
        let n = cv.cout;
        let mut out = self.take(m * n);
        let kernel = self.kernel;
        let bf = kernel == Kernel::Bf16;
        let lda = b.lhs_width();
        // 1x1 convs read the activations in place (f32) or convert them (bf16, int8).
        let in_place = cv.k == 1 && pad == 0;
        let row_bytes = lda * kernel.lhs_bytes();
        let rb = row_block(kernel);
        let rows = ((CHUNK_BYTES / row_bytes).clamp(64, 16384) / rb * rb).min(m.max(1));
        let threads = rayon::current_num_threads();
        let epi = Epilogue {
            bias: Some(&cv.b),
            relu,
        };
        // The left operand for rows r0 .. r0 + r, in the kernel's precision, into `s`.
        let prepare = |r0: usize, r: usize, s: &mut Scratch| {
            if bf {
                s.b.resize(r * lda, bf16::ZERO);
                if in_place {
                    to_bf16_rows(&x.data[r0 * kk..(r0 + r) * kk], kk, &mut s.b, lda);
                } else {
                    unfold_nhwc_rows(&x.data, g, r0, r, &mut s.b, lda, bf16::from_f32);
                }
                return;
            }
            if !in_place {
                s.f.resize(r * kk, 0.0);
                unfold_nhwc_rows(&x.data, g, r0, r, &mut s.f, kk, |v| v);
            }
            if kernel == Kernel::Int8 {
                let src = if in_place {
                    &x.data[r0 * kk..(r0 + r) * kk]
                } else {
                    &s.f[..r * kk]
                };
                s.q.resize(r * lda, 0);
                s.qs.resize(r, 0.0);
                s.ql.resize(r, 0.0);
                quantize_rows(src, kk, kk, r, &mut s.q, lda, &mut s.qs, &mut s.ql);
            }
        };
        if m.div_ceil(rows) >= 2 * threads && threads > 1 {
            // Many rows: each worker unfolds and multiplies its own chunk.
            out.par_chunks_mut(rows * n)
                .enumerate()
                .for_each(|(ci, o)| {
                    SCRATCH.with(|s| {
                        let s = &mut s.borrow_mut();
                        let (r0, r) = (ci * rows, o.len() / n);
                        prepare(r0, r, s);
                        let a = operand(kernel, in_place, &x.data, r0, r, kk, lda, s);
                        gemm(r, a, lda, b, 0..n, o, n, epi);
                    })
                });
        } else {
            // Few rows (the head): as many at once as FEW_ROWS_BYTES allows, so that the
            // weights stream through the cache once; the columns are split over the workers.
            let rows = (FEW_ROWS_BYTES / row_bytes).max(rows).min(m);
            let panels = n.div_ceil(NR);
            let per = panels.div_ceil(threads.max(1)).max(1);
            let mut s = Scratch::default();
            for r0 in (0..m).step_by(rows) {
                let r = rows.min(m - r0);
                prepare_parallel(&prepare, r0, r, threads, &mut s);
                let a = operand(kernel, in_place, &x.data, r0, r, kk, lda, &s);
                let c = SyncPtr(out[r0 * n..].as_mut_ptr());
                (0..panels.div_ceil(per)).into_par_iter().for_each(|gi| {
                    let cols = gi * per * NR..((gi + 1) * per * NR).min(n);
                    // SAFETY: C is rows r0 .. r0 + r of `out` (n floats each); each worker
                    // writes its own column block.
                    unsafe { gemm_ptr(r, a, lda, b, cols.clone(), c.at(cols.start), n, epi) };
                });
            }
        }
        self.next(x, oh, ow, n, out)
    }
}

/// Runs `prepare` for rows `r0 .. r0 + r` into `s`, split over `threads` workers when the rows
/// are many (each fills its own rows of the scratch).
fn prepare_parallel(
    prepare: &(impl Fn(usize, usize, &mut Scratch) + Sync),
    r0: usize,
    r: usize,
    threads: usize,
    s: &mut Scratch,
) {
    if threads < 2 || r < 2 * MR {
        prepare(r0, r, s);
        return;
    }
    let part = r.div_ceil(threads);
    let parts: Vec<Scratch> = (0..r.div_ceil(part))
        .into_par_iter()
        .map(|j| {
            let mut p = Scratch::default();
            prepare(r0 + j * part, part.min(r - j * part), &mut p);
            p
        })
        .collect();
    s.f.clear();
    s.b.clear();
    s.q.clear();
    s.qs.clear();
    s.ql.clear();
    for p in parts {
        s.f.extend_from_slice(&p.f);
        s.b.extend_from_slice(&p.b);
        s.q.extend_from_slice(&p.q);
        s.qs.extend_from_slice(&p.qs);
        s.ql.extend_from_slice(&p.ql);
    }
}

/// The left operand of rows `r0 .. r0 + r`: the activations in place (f32 1x1 convs), the
/// unfolded rows, or their bf16 or quantised copy.
#[allow(clippy::too_many_arguments)]
fn operand<'a>(
    kernel: Kernel,
    in_place: bool,
    x: &'a [f32],
    r0: usize,
    r: usize,
    kk: usize,
    lda: usize,
    s: &'a Scratch,
) -> Lhs<'a> {
    match kernel {
        Kernel::Bf16 => Lhs::Bf16(&s.b[..r * lda]),
        Kernel::Int8 => Lhs::U8 {
            q: &s.q[..r * lda],
            scale: &s.qs[..r],
            lo: &s.ql[..r],
        },
        Kernel::F32 | Kernel::Portable if in_place => Lhs::F32(&x[r0 * kk..(r0 + r) * kk]),
        Kernel::F32 | Kernel::Portable => Lhs::F32(&s.f[..r * kk]),
    }
}

/// Per-thread scratch of the unfold + GEMM path: unfolded rows, and their bf16 or quantised
/// copy (u8 values, each row's step and offset).
#[derive(Default)]
struct Scratch {
    f: Vec<f32>,
    b: Vec<bf16>,
    q: Vec<u8>,
    qs: Vec<f32>,
    ql: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: used only to write disjoint column blocks of the output from several threads.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// The pointer `i` floats on (a method, so that closures capture the whole `SyncPtr`).
    ///
    /// # Safety
    /// `i` is inside the buffer.
    unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: as the caller promises.
        unsafe { self.0.add(i) }
    }
}

/// `v = sqrt(max(v, 0))` for every element ([`Conv::sqrt_input`]), in parallel chunks.
pub(crate) fn sqrt_in_place(data: &mut [f32]) {
    data.par_chunks_mut(1 << 14)
        .for_each(|c| c.iter_mut().for_each(|v| *v = v.max(0.0).sqrt()));
}

impl Backend for FastEngine {
    type Act = Act;

    fn conv(&self, mut x: Act, c: &Conv, _: &Step) -> Result<Act> {
        let Conv {
            pad,
            relu,
            param,
            sqrt_input,
            ..
        } = *c;
        if sqrt_input {
            sqrt_in_place(&mut x.data);
        }
        let cv = &self.convs[param];
        if let Some(ac) = &cv.amx {
            let mut out = self.take(x.n * x.h * x.w * cv.cout);
            if amx_conv::conv3x3(&x.data, x.n, x.h, x.w, ac, &cv.b, relu, false, &mut out) {
                let (h, w) = (x.h, x.w);
                return Ok(self.next(x, h, w, cv.cout, out));
            }
            self.give(out);
        }
        if let Some(wk) = &cv.wino {
            let mut out = self.take(x.n * x.h * x.w * cv.cout);
            conv3x3(&x.data, x.n, x.h, x.w, wk, &cv.b, relu, false, &mut out);
            let (h, w) = (x.h, x.w);
            return Ok(self.next(x, h, w, cv.cout, out));
        }
        Ok(self.gemm_conv(x, cv, pad, relu))
    }

    fn conv_pool(&self, x: Act, c: &Conv, step: &Step, pool: &Step) -> Result<Act> {
        let cv = &self.convs[c.param];
        if let Some(ac) = &cv.amx {
            let (h, w) = (x.h / 2, x.w / 2);
            let mut out = self.take(x.n * h * w * cv.cout);
            if amx_conv::conv3x3(&x.data, x.n, x.h, x.w, ac, &cv.b, c.relu, true, &mut out) {
                return Ok(self.next(x, h, w, cv.cout, out));
            }
            self.give(out);
        }
        let Some(wk) = &cv.wino else {
            let y = self.conv(x, c, step)?;
            return self.pool(y, pool);
        };
        // The pool is taken in the output transform, so the full-size map is never written.
        let (h, w) = (x.h / 2, x.w / 2);
        let mut out = self.take(x.n * h * w * cv.cout);
        conv3x3(&x.data, x.n, x.h, x.w, wk, &cv.b, c.relu, true, &mut out);
        Ok(self.next(x, h, w, cv.cout, out))
    }

    fn lrn(&self, mut x: Act, _: &Step) -> Result<Act> {
        // The one LRN implementation, on the channels-last data seen as an (N, H, W, C) tensor.
        let t = Tensor::from_vec(
            std::mem::take(&mut x.data),
            (x.n, x.h, x.w, x.c),
            &Device::Cpu,
        )?;
        x.data = super::candle::lrn(&t, 3)?.flatten_all()?.to_vec1()?;
        Ok(x)
    }

    fn pool(&self, x: Act, _: &Step) -> Result<Act> {
        let (oh, ow, c) = (x.h / 2, x.w / 2, x.c);
        let mut out = self.take(x.n * oh * ow * c);
        out.par_chunks_mut(ow * c).enumerate().for_each(|(row, o)| {
            let (img, oy) = (row / oh, row % oh);
            let base = |dy: usize, dx: usize, ox: usize| {
                ((img * x.h + 2 * oy + dy) * x.w + 2 * ox + dx) * c
            };
            for ox in 0..ow {
                let (a, b, cc, d) = (
                    base(0, 0, ox),
                    base(0, 1, ox),
                    base(1, 0, ox),
                    base(1, 1, ox),
                );
                let dst = &mut o[ox * c..(ox + 1) * c];
                for (ch, v) in dst.iter_mut().enumerate() {
                    *v = x.data[a + ch]
                        .max(x.data[b + ch])
                        .max(x.data[cc + ch])
                        .max(x.data[d + ch]);
                }
            }
        });
        Ok(self.next(x, oh, ow, c, out))
    }
}

impl TensorIo for FastEngine {
    fn input(&self, x: &Tensor) -> Result<Act> {
        let (n, c, h, w) = x.dims4()?;
        let src: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let mut data = self.take(n * h * w * c);
        transpose_planes(&src, &mut data, c, h * w);
        Ok(Act { n, h, w, c, data })
    }

    fn to_tensor(&self, x: Act) -> Result<Tensor> {
        let mut out = vec![0f32; x.data.len()];
        transpose_planes(&x.data, &mut out, x.h * x.w, x.c);
        let shape = (x.n, x.c, x.h, x.w);
        self.give(x.data);
        Ok(Tensor::from_vec(out, shape, &Device::Cpu)?)
    }

    fn to_map(&self, x: Act) -> Result<FeatureMap> {
        // A copy of the (small) map, so that the pooled buffer, whose capacity may be that of
        // a much larger layer, goes back to the pool.
        let map = FeatureMap {
            n: x.n,
            channels: x.c,
            h: x.h,
            w: x.w,
            layout: Layout::Nhwc,
            data: x.data.clone(),
        };
        self.give(x.data);
        Ok(map)
    }
}
