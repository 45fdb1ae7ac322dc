//! A stride-1 convolution with bias and optional ReLU for training on the CPU: explicit im2col
//! plus one GEMM forward, and the two GEMMs (plus col2im) of its backward.
//!
//! candle 0.11 differentiates `conv2d` through `conv_transpose2d`, whose CPU kernel is a direct
//! loop, and computes the kernel gradient as a convolution whose "kernel" is the whole output
//! gradient, which its tiled im2col handles element by element; the bias gradient of a broadcast
//! add is a strided reduction. On narrow VGG nets these took most of a training step. Here, with
//! `cols` the (C*k*k, N*H'*W') unfolding of the padded input, `W` the kernel as a
//! (C_out, C*k*k) matrix and `dY` the output gradient (masked by the ReLU) as (C_out, N*H'*W'):
//!
//! ```text
//! forward:  Y = relu(W cols + b)        then to NCHW
//! backward: dW = dY cols^T
//!           db = row sums of dY
//!           dX = col2im(W^T dY)         (scatter-add of the unfolded gradient)
//! ```
//!
//! The unfolding copies contiguous runs of rows, so it runs at memory speed; the products are
//! candle matmuls (the `gemm` crate). Other devices use candle's `conv2d` and autograd.

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;
use crate::model::engine::candle::conv_bias_relu;
use crate::model::engine::unfold::{Geom, fold_nchw, unfold_nchw};

/// `relu?(x.conv2d(w, padding, 1, 1, 1) + b)` for NCHW float32 `x`, kernel (out, in, k, k) and
/// bias (out), with the GEMM-based forward and backward of the module docs on the CPU.
/// `padding` must be < k.
pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor, padding: usize, relu: bool) -> Result<Tensor> {
    if x.device().is_cpu() {
        Ok(x.apply_op3(w, b, Conv { padding, relu })?)
    } else {
        conv_bias_relu(x, w, b, padding, relu)
    }
}

struct Conv {
    padding: usize,
    relu: bool,
}

/// The data of a storage seen through a layout, contiguous (copied only when strided).
fn contiguous_data<'a>(
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<std::borrow::Cow<'a, [f32]>> {
    let v = s.as_slice::<f32>()?;
    if let Some((a, b)) = l.contiguous_offsets() {
        return Ok(std::borrow::Cow::Borrowed(&v[a..b]));
    }
    // Walk the strided layout in row-major order.
    let (dims, strides) = (l.dims(), l.stride());
    let n: usize = dims.iter().product();
    let mut data = Vec::with_capacity(n);
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..n {
        let off: usize = idx.iter().zip(strides).map(|(i, s)| i * s).sum();
        data.push(v[l.start_offset() + off]);
        for d in (0..dims.len()).rev() {
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(std::borrow::Cow::Owned(data))
}

/// Runs `f` on a CPU tensor's data in row-major order (borrowed when contiguous).
fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let (st, l) = t.storage_and_layout();
    match &*st {
        candle_core::Storage::Cpu(c) => Ok(f(&contiguous_data(c, l)?)),
        _ => candle_core::bail!("vggfeat-conv2d: the CPU path got a tensor on another device"),
    }
}

impl Conv {
    fn geom(&self, x: &[usize], w: &[usize]) -> candle_core::Result<Geom> {
        let (&[n, c, h, wd], &[_, wc, k, k2]) = (x, w) else {
            candle_core::bail!("vggfeat-conv2d: expected NCHW input and (O, I, k, k) kernel");
        };
        if wc != c
            || k != k2
            || self.padding >= k
            || h + 2 * self.padding < k
            || wd + 2 * self.padding < k
        {
            candle_core::bail!(
                "vggfeat-conv2d: input {x:?}, kernel {w:?}, padding {}",
                self.padding
            );
        }
        Ok(Geom {
            n,
            c,
            h,
            w: wd,
            k,
            p: self.padding,
        })
    }
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "vggfeat-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.geom(l1.dims(), l2.dims())?;
        let co = l2.dims()[0];
        if l3.dims() != [co] {
            candle_core::bail!("vggfeat-conv2d: bias {:?} for {co} outputs", l3.dims());
        }
        let x = contiguous_data(s1, l1)?;
        let w = contiguous_data(s2, l2)?;
        let b = contiguous_data(s3, l3)?;
        let cols = Tensor::from_vec(
            unfold_nchw(&x, g),
            (g.c * g.k * g.k, g.cols()),
            &Device::Cpu,
        )?;
        let wm = Tensor::from_slice(&w, (co, g.c * g.k * g.k), &Device::Cpu)?;
        let ym = wm.matmul(&cols)?;
        // (C_out, N, L) -> (N, C_out, L), adding the bias and applying the ReLU on the way.
        let l = g.out_h() * g.out_w();
        let mut out = vec![0f32; g.n * co * l];
        with_data(&ym, |ym| {
            out.par_chunks_mut(l).enumerate().for_each(|(nc, dst)| {
                let (n, c) = (nc / co, nc % co);
                let src = &ym[c * g.cols() + n * l..c * g.cols() + (n + 1) * l];
                for (d, s) in dst.iter_mut().zip(src) {
                    let v = s + b[c];
                    *d = if self.relu { v.max(0.0) } else { v };
                }
            })
        })?;
        Ok((
            CpuStorage::F32(out),
            Shape::from((g.n, co, g.out_h(), g.out_w())),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.geom(x.dims(), w.dims())?;
        let co = w.dim(0)?;
        let l = g.out_h() * g.out_w();
        // (N, C_out, L) -> (C_out, N*L), masked by the ReLU.
        let ncols = g.cols();
        let mut dy2 = vec![0f32; co * ncols];
        let relu = self.relu;
        let transpose = |dyv: &[f32], yv: &[f32], dy2: &mut [f32]| {
            dy2.par_chunks_mut(ncols).enumerate().for_each(|(c, dst)| {
                for n in 0..g.n {
                    let s = (n * co + c) * l;
                    let d = &mut dst[n * l..(n + 1) * l];
                    if relu {
                        for ((o, v), y) in d.iter_mut().zip(&dyv[s..s + l]).zip(&yv[s..s + l]) {
                            *o = if *y > 0.0 { *v } else { 0.0 };
                        }
                    } else {
                        d.copy_from_slice(&dyv[s..s + l]);
                    }
                }
            })
        };
        with_data(dy, |dyv| {
            if relu {
                with_data(res, |yv| transpose(dyv, yv, &mut dy2))
            } else {
                transpose(dyv, &[], &mut dy2);
                Ok(())
            }
        })??;
        let db: Vec<f32> = dy2.chunks(ncols).map(|r| r.iter().sum()).collect();
        let dy2 = Tensor::from_vec(dy2, (co, ncols), &Device::Cpu)?;
        let cols = with_data(x, |xs| unfold_nchw(xs, g))?;
        let cols = Tensor::from_vec(cols, (g.c * g.k * g.k, ncols), &Device::Cpu)?;
        let dw = dy2.matmul(&cols.t()?)?.reshape(w.shape())?;
        let wm = w.reshape((co, g.c * g.k * g.k))?;
        let dcols = wm.t()?.matmul(&dy2)?;
        let dx = Tensor::from_vec(
            with_data(&dcols, |d| fold_nchw(d, g))?,
            x.shape(),
            &Device::Cpu,
        )?;
        let db = Tensor::from_vec(db, co, &Device::Cpu)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Values and gradients of the custom op equal candle's conv2d + bias (+ ReLU).
    #[test]
    fn values_and_gradients_match_candles_conv2d() {
        let dev = Device::Cpu;
        let cases = [
            (3, 1, 9, 7, true),
            (1, 0, 5, 6, false),
            (3, 0, 6, 6, true),
            (2, 1, 4, 5, false),
            (3, 1, 2, 3, true),
        ];
        for (k, p, h, w, relu) in cases {
            // A transposed (non-contiguous) input exercises the strided copy.
            let x =
                Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, w, h), &dev).unwrap()).unwrap();
            let xin = x.transpose(2, 3).unwrap();
            assert!(!xin.is_contiguous());
            let wt =
                Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 3, k, k), &dev).unwrap()).unwrap();
            let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 4, &dev).unwrap()).unwrap();
            let (ho, wo) = (h + 2 * p + 1 - k, w + 2 * p + 1 - k);
            let r = Tensor::randn(0f32, 1.0, (2, 4, ho, wo), &dev).unwrap();
            let ours = conv2d(&xin, &wt, &b, p, relu).unwrap();
            let lin = xin
                .conv2d(&wt, p, 1, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, 4, 1, 1)).unwrap())
                .unwrap();
            let theirs = if relu { lin.relu().unwrap() } else { lin };
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_diff(&ours, &theirs) < 1e-4, "forward k{k} p{p}");
            let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (theirs * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&x, &wt, &b] {
                let (a, c) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                assert_eq!(a.dims(), c.dims());
                assert!(max_diff(a, c) < 1e-3, "gradient k{k} p{p} {:?}", v.dims());
            }
        }
    }
}
