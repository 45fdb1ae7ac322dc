//! The fast CPU engine for inference. Activations stay channels-last (NHWC) from the first layer
//! to the last; every 3x3 layer (but conv1_1) runs as Winograd F(2x2, 3x3) ([`super::winograd`]),
//! every other conv as an unfold ([`super::unfold`]) into a bounded scratch buffer followed by
//! one large GEMM whose output rows are pre-filled with the bias, with ReLU applied while the
//! chunk is still in cache. 1x1 convs (fc7, fc8, config C) multiply the activations directly.
//! Buffers come from a pool and are reused across layers and calls instead of being allocated
//! per op.
//!
//! Work is split over output rows: each rayon worker unfolds and multiplies its own chunk, so the
//! unfold is parallel too; small layers fall back to gemm's own threading.

use std::sync::Mutex;

use candle_core::{Device, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::unfold::{Geom, gemm_rowmajor, kernel_rows, unfold_nhwc_rows};
use super::winograd::{WinogradKernel, conv3x3};
use super::{FeatureMap, Layout, TensorIo};
use crate::error::Result;
use crate::model::params::{ConvParams, VggWeights};
use crate::model::plan::{Backend, Conv, Op, Step};

/// Target size of one unfolded chunk (bytes): big enough for GEMM efficiency, small enough to
/// bound memory (conv1_2 of a batch of 8 at 224 would unfold to 925 MB at once).
const CHUNK_BYTES: usize = 6 << 20;

/// A convolution prepared for the GEMM: weights as a (k*k*cin, cout) row-major matrix.
#[derive(Debug)]
struct FastConv {
    k: usize,
    cin: usize,
    cout: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    /// The same kernel in the Winograd domain, for 3x3 / pad 1 layers when enabled.
    wino: Option<WinogradKernel>,
}

impl FastConv {
    fn new(p: &ConvParams, pad: usize, winograd: bool) -> Result<Self> {
        let (cout, cin, k, _) = p.weight.dims4()?;
        let w4: Vec<f32> = p.weight.flatten_all()?.to_vec1()?;
        // The first layer (3 input channels) gains little from Winograd: keep the GEMM.
        let wino = (winograd && k == 3 && pad == 1 && cin >= 8)
            .then(|| WinogradKernel::new(&w4, cout, cin));
        Ok(FastConv {
            k,
            cin,
            cout,
            w: kernel_rows(&w4, cout, cin, k),
            b: p.bias.to_vec1()?,
            wino,
        })
    }
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
    /// Reusable activation buffers.
    pool: Mutex<Vec<Vec<f32>>>,
}

impl FastEngine {
    /// Prepares the weights (reordered for the GEMM; about as much memory as the checkpoint,
    /// plus 16/9 of the 3x3 kernels in the Winograd domain when `winograd` is on).
    pub fn new(w: &VggWeights, plan: &crate::model::plan::Plan, winograd: bool) -> Result<Self> {
        let layers = w.layers();
        let mut convs = Vec::with_capacity(layers.len());
        for s in plan.steps() {
            if let Op::Conv(Conv { pad, param, .. }) = s.op {
                debug_assert_eq!(param, convs.len());
                convs.push(FastConv::new(layers[param], pad, winograd)?);
            }
        }
        Ok(FastEngine {
            convs,
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
        v.clear();
        v.resize(len, 0.0);
        v
    }

    fn give(&self, v: Vec<f32>) {
        let mut pool = self.pool.lock().expect("buffer pool poisoned");
        pool.push(v);
        // Keep the largest few only.
        if pool.len() > 4 {
            pool.sort_by_key(|v| std::cmp::Reverse(v.capacity()));
            pool.truncate(4);
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
        let direct = cv.k == 1 && pad == 0;
        let rows = (CHUNK_BYTES / (4 * kk)).clamp(64, 16384).min(m.max(1));
        let threads = rayon::current_num_threads();
        let n_chunks = m.div_ceil(rows);
        let split_rows = n_chunks >= 2 * threads && threads > 1;
        let par = if split_rows || threads == 1 {
            Parallelism::None
        } else {
            Parallelism::Rayon(threads)
        };
        let work = |ci: usize, o: &mut [f32], scratch: &mut Vec<f32>| {
            let r0 = ci * rows;
            let r = o.len() / n;
            for row in o.chunks_exact_mut(n) {
                row.copy_from_slice(&cv.b);
            }
            let lhs: &[f32] = if direct {
                &x.data[r0 * kk..(r0 + r) * kk]
            } else {
                scratch.clear();
                scratch.resize(r * kk, 0.0);
                unfold_nhwc_rows(&x.data, g, r0, r, scratch);
                scratch
            };
            gemm_rowmajor(r, n, kk, o, true, lhs, &cv.w, par);
            if relu {
                for v in o.iter_mut() {
                    *v = v.max(0.0);
                }
            }
        };
        if split_rows {
            out.par_chunks_mut(rows * n)
                .enumerate()
                .for_each(|(ci, o)| {
                    SCRATCH.with(|s| work(ci, o, &mut s.borrow_mut()));
                });
        } else {
            let mut scratch = Vec::new();
            for (ci, o) in out.chunks_mut(rows * n).enumerate() {
                work(ci, o, &mut scratch);
            }
        }
        self.next(x, oh, ow, n, out)
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Backend for FastEngine {
    type Act = Act;

    fn conv(&self, x: Act, c: &Conv, _: &Step) -> Result<Act> {
        let Conv {
            pad, relu, param, ..
        } = *c;
        let cv = &self.convs[param];
        if let Some(wk) = &cv.wino {
            let mut out = self.take(x.n * x.h * x.w * cv.cout);
            conv3x3(&x.data, x.n, x.h, x.w, wk, &cv.b, relu, &mut out);
            let (h, w) = (x.h, x.w);
            return Ok(self.next(x, h, w, cv.cout, out));
        }
        Ok(self.gemm_conv(x, cv, pad, relu))
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

/// Per image, transposes a (rows, cols) matrix into (cols, rows): NCHW -> NHWC with
/// `rows = C, cols = H*W`, and back with `rows = H*W, cols = C`.
fn transpose_planes(src: &[f32], dst: &mut [f32], rows: usize, cols: usize) {
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
