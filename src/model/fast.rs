//! The fast CPU path for inference. Activations stay channels-last (NHWC) from the first layer to
//! the last; every convolution is an unfold (im2col) into a bounded scratch buffer followed by one
//! large GEMM (the `gemm` crate, AVX-512 kernels via its `x86-v4` feature) whose output rows are
//! pre-filled with the bias, with ReLU applied while the chunk is still in cache. 1x1 convs (fc7,
//! fc8, config C) multiply the activations directly. Buffers come from a pool and are reused
//! across layers and calls instead of being allocated per op.
//!
//! Work is split over output rows: each rayon worker unfolds and multiplies its own chunk, so the
//! unfold is parallel too; small layers fall back to gemm's own threading.

use std::sync::Mutex;

use candle_core::{Device, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::config::{LRN_PARAMS, LayerName, Spec};
use super::weights::{ConvParams, VggWeights};
use crate::error::{Error, Result};

/// Target size of one unfolded chunk (bytes): big enough for GEMM efficiency, small enough to
/// bound memory (conv1_2 of a batch of 8 at 224 would unfold to 925 MB at once).
const CHUNK_BYTES: usize = 6 << 20;

/// A convolution prepared for the GEMM: weights as a (k*k*cin, cout) row-major matrix.
#[derive(Debug)]
struct FastConv {
    name: LayerName,
    k: usize,
    pad: usize,
    cin: usize,
    cout: usize,
    relu: bool,
    w: Vec<f32>,
    b: Vec<f32>,
    /// The same kernel in the Winograd domain, for 3x3 / pad 1 layers when enabled.
    wino: Option<super::winograd::WinogradKernel>,
}

impl FastConv {
    fn new(p: &ConvParams, pad: usize, relu: bool, winograd: bool) -> Result<Self> {
        let (cout, cin, k, k2) = p.weight.dims4()?;
        debug_assert_eq!(k, k2);
        let w4: Vec<f32> = p.weight.flatten_all()?.to_vec1()?;
        // (cout, cin, ky, kx) -> row (ky*k + kx)*cin + ci, column co
        let mut w = vec![0f32; k * k * cin * cout];
        for co in 0..cout {
            for ci in 0..cin {
                for t in 0..k * k {
                    w[(t * cin + ci) * cout + co] = w4[(co * cin + ci) * k * k + t];
                }
            }
        }
        // The first layer (3 input channels) gains little from Winograd: keep the GEMM.
        let wino = (winograd && k == 3 && pad == 1 && cin >= 8)
            .then(|| super::winograd::WinogradKernel::new(&w4, cout, cin));
        Ok(FastConv {
            name: p.name,
            k,
            pad,
            cin,
            cout,
            relu,
            w,
            b: p.bias.to_vec1()?,
            wino,
        })
    }
}

#[derive(Debug)]
enum FastLayer {
    Conv(FastConv),
    Lrn,
    Pool(LayerName),
}

/// A channels-last activation (N, H, W, C).
#[derive(Debug)]
struct Act {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    data: Vec<f32>,
}

/// VGG inference on the CPU with channels-last GEMM convolutions.
#[derive(Debug)]
pub struct FastVgg {
    body: Vec<FastLayer>,
    fc6: Option<FastConv>,
    fc7: Option<FastConv>,
    fc8: Option<FastConv>,
    pool: Mutex<Vec<Vec<f32>>>,
}

impl FastVgg {
    /// Prepares the weights (reordered for the GEMM; about as much memory as the checkpoint,
    /// plus 16/9 of the 3x3 kernels in the Winograd domain when `winograd` is on).
    pub fn new(w: &VggWeights, winograd: bool) -> Result<Self> {
        let mut convs = w.convs.iter();
        let mut body = Vec::new();
        for l in w.config.layers() {
            body.push(match l.spec {
                Spec::Conv { kernel, .. } => {
                    let p = convs
                        .next()
                        .ok_or_else(|| Error::InvalidParam("too few convs".into()))?;
                    FastLayer::Conv(FastConv::new(p, kernel / 2, true, winograd)?)
                }
                Spec::Lrn => FastLayer::Lrn,
                Spec::Pool => FastLayer::Pool(l.name),
            });
        }
        let (fc6, fc7, fc8) = match &w.head {
            Some(h) => (
                Some(FastConv::new(&h.fc6, 0, true, false)?),
                Some(FastConv::new(&h.fc7, 0, true, false)?),
                h.fc8
                    .as_ref()
                    .map(|p| FastConv::new(p, 0, false, false))
                    .transpose()?,
            ),
            None => (None, None, None),
        };
        Ok(FastVgg {
            body,
            fc6,
            fc7,
            fc8,
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

    /// Runs the network on a planar NCHW batch and returns `layer`'s map, NCHW.
    pub fn forward_to(&self, x: &Tensor, layer: LayerName) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let src: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let mut data = self.take(n * h * w * c);
        nchw_to_nhwc(&src, &mut data, n, c, h, w);
        let act = self.run(Act { n, h, w, c, data }, layer)?;
        let mut out = vec![0f32; act.data.len()];
        nhwc_to_nchw(&act.data, &mut out, act.n, act.c, act.h, act.w);
        let shape = (act.n, act.c, act.h, act.w);
        self.give(act.data);
        Ok(Tensor::from_vec(out, shape, &Device::Cpu)?)
    }

    /// Runs the network and returns the spatial mean of `layer`'s map, (N, C), computed
    /// directly from the channels-last activations (no transpose of the map).
    pub fn forward_pooled(&self, x: &Tensor, layer: LayerName) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let src: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let mut data = self.take(n * h * w * c);
        nchw_to_nhwc(&src, &mut data, n, c, h, w);
        let act = self.run(Act { n, h, w, c, data }, layer)?;
        let per = act.h * act.w * act.c;
        let mut out = Vec::with_capacity(act.n * act.c);
        for img in act.data.chunks_exact(per.max(1)).take(act.n) {
            out.extend(crate::aggregate::spatial_mean(img, act.c));
        }
        let shape = (act.n, act.c);
        self.give(act.data);
        Ok(Tensor::from_vec(out, shape, &Device::Cpu)?)
    }

    fn run(&self, mut x: Act, layer: LayerName) -> Result<Act> {
        let stop_body = if layer.is_head() {
            LayerName::Pool(5)
        } else {
            layer
        };
        for l in &self.body {
            let name = match l {
                FastLayer::Conv(c) => {
                    x = self.conv(x, c);
                    c.name
                }
                FastLayer::Lrn => {
                    lrn_nhwc(&mut x);
                    LayerName::Lrn
                }
                FastLayer::Pool(name) => {
                    x = self.max_pool(x);
                    *name
                }
            };
            if name == stop_body {
                break;
            }
        }
        if !layer.is_head() {
            return Ok(x);
        }
        let missing = || Error::InvalidParam(format!("the checkpoint has no {layer}"));
        x = self.conv(x, self.fc6.as_ref().ok_or_else(missing)?);
        if layer == LayerName::Fc6 {
            return Ok(x);
        }
        x = self.conv(x, self.fc7.as_ref().ok_or_else(missing)?);
        if layer == LayerName::Fc7 {
            return Ok(x);
        }
        Ok(self.conv(x, self.fc8.as_ref().ok_or_else(missing)?))
    }

    fn max_pool(&self, x: Act) -> Act {
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
        let act = Act {
            n: x.n,
            h: oh,
            w: ow,
            c,
            data: out,
        };
        self.give(x.data);
        act
    }

    fn conv(&self, x: Act, cv: &FastConv) -> Act {
        if let Some(wk) = &cv.wino {
            let mut out = self.take(x.n * x.h * x.w * cv.cout);
            super::winograd::conv3x3(&x.data, x.n, x.h, x.w, wk, &cv.b, cv.relu, &mut out);
            let act = Act {
                n: x.n,
                h: x.h,
                w: x.w,
                c: cv.cout,
                data: out,
            };
            self.give(x.data);
            return act;
        }
        let oh = x.h + 2 * cv.pad + 1 - cv.k;
        let ow = x.w + 2 * cv.pad + 1 - cv.k;
        let m = x.n * oh * ow;
        let kk = cv.k * cv.k * cv.cin;
        let n = cv.cout;
        let mut out = self.take(m * n);
        let direct = cv.k == 1 && cv.pad == 0;
        let rows = (CHUNK_BYTES / (4 * kk)).clamp(64, 16384).min(m.max(1));
        let threads = rayon::current_num_threads();
        let n_chunks = m.div_ceil(rows);
        let split_rows = n_chunks >= 2 * threads && threads > 1;
        let par_gemm = if split_rows || threads == 1 {
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
                im2col(&x, cv, oh, ow, r0, r, scratch);
                scratch
            };
            // SAFETY: all pointers cover r x kk, kk x n and r x n row-major matrices.
            unsafe {
                gemm::gemm(
                    r,
                    n,
                    kk,
                    o.as_mut_ptr(),
                    1,
                    n as isize,
                    true,
                    lhs.as_ptr(),
                    1,
                    kk as isize,
                    cv.w.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par_gemm,
                );
            }
            if cv.relu {
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
        let act = Act {
            n: x.n,
            h: oh,
            w: ow,
            c: n,
            data: out,
        };
        self.give(x.data);
        act
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Unfolds output rows `r0 .. r0 + r` of a (padded) k x k convolution into `dst` (r x k*k*cin).
fn im2col(x: &Act, cv: &FastConv, oh: usize, ow: usize, r0: usize, r: usize, dst: &mut [f32]) {
    let (k, pad, cin) = (cv.k, cv.pad as isize, cv.cin);
    let kk = k * k * cin;
    for i in 0..r {
        let row = r0 + i;
        let img = row / (oh * ow);
        let rem = row % (oh * ow);
        let (oy, ox) = (rem / ow, rem % ow);
        let d = &mut dst[i * kk..(i + 1) * kk];
        for ky in 0..k {
            let iy = oy as isize + ky as isize - pad;
            for kx in 0..k {
                let ix = ox as isize + kx as isize - pad;
                let t = (ky * k + kx) * cin;
                let seg = &mut d[t..t + cin];
                if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                    seg.fill(0.0);
                } else {
                    let s = ((img * x.h + iy as usize) * x.w + ix as usize) * cin;
                    seg.copy_from_slice(&x.data[s..s + cin]);
                }
            }
        }
    }
}

/// LRN across channels in place (PyTorch/Caffe convention), channels-last.
fn lrn_nhwc(x: &mut Act) {
    let (size, alpha, beta, k) = LRN_PARAMS;
    let c = x.c;
    x.data.par_chunks_mut(c).for_each(|px| {
        let sq: Vec<f32> = px.iter().map(|v| v * v).collect();
        for (ch, v) in px.iter_mut().enumerate() {
            let lo = ch.saturating_sub(size / 2);
            let hi = (ch + (size - 1) / 2 + 1).min(c);
            let s: f32 = sq[lo..hi].iter().sum();
            let denom = (k as f32 + (alpha / size as f64) as f32 * s).powf(beta as f32);
            *v /= denom;
        }
    });
}

fn nchw_to_nhwc(src: &[f32], dst: &mut [f32], n: usize, c: usize, h: usize, w: usize) {
    dst.par_chunks_mut(h * w * c)
        .enumerate()
        .for_each(|(img, d)| {
            let s = &src[img * c * h * w..(img + 1) * c * h * w];
            for ch in 0..c {
                for p in 0..h * w {
                    d[p * c + ch] = s[ch * h * w + p];
                }
            }
        });
    let _ = n;
}

fn nhwc_to_nchw(src: &[f32], dst: &mut [f32], n: usize, c: usize, h: usize, w: usize) {
    dst.par_chunks_mut(h * w * c)
        .enumerate()
        .for_each(|(img, d)| {
            let s = &src[img * c * h * w..(img + 1) * c * h * w];
            for p in 0..h * w {
                for ch in 0..c {
                    d[ch * h * w + p] = s[p * c + ch];
                }
            }
        });
    let _ = n;
}
