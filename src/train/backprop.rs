//! Backpropagation on the fast CPU engine's kernels: one training step of a
//! [`super::net::TrainNet`] (forward keeping what the backward needs, the objective of
//! [`super::loss`], backward, every parameter's gradient) along the same [`Plan`], without autograd.
//!
//! Activations are channels-last (N, H, W, C) f32 throughout, as in inference. Per conv layer
//! (`x` its input, `y` its output after ReLU and dropout, `g` the gradient of `y`):
//!
//! ```text
//! forward:        y = drop(relu(conv(x, W) + b))       direct loops (engine::direct) for 3x3
//!                                                      layers of 3 inputs (a net's first) or
//!                                                      of at most 512 = cin x cout (the
//!                                                      narrow nets' thin layers), Winograd
//!                                                      F(4x4, 3x3) for the other 3x3 layers
//!                                                      of >= 8 inputs and >= 16 outputs,
//!                                                      unfold + packed GEMM otherwise (the
//!                                                      `gemm` crate below 32 outputs), one
//!                                                      product for the head (1x1 output)
//! masks:          g = g * m * [y > 0]                  (m the dropout mask); a ReLU right
//!                                                      below a max-pool is taken by the
//!                                                      pool's backward, on the winners
//! weights:        dW^T = unfold(x)^T g (summed over positions in blocks; direct loops for
//!                 3x3 layers of 3 inputs or at most 64 outputs),  db = sum of g
//! data:           dx = conv(g, W flipped, in <-> out)  direct loops for cin x cout <= 512,
//!                                                      Winograd for the other 3x3 layers;
//!                                                      g W then col2im otherwise
//! max-pool:       the gradient goes to the first maximum of each 2x2 window (as PyTorch)
//! ```
//!
//! A first layer of 8 outputs (the /8 nets') on AVX-512 runs on [`first_layer`]'s kernels
//! from the planar images instead, forward and weight gradient, with the max-pool after it
//! (configuration A's) fused into both.
//!
//! The weights are read where candle keeps them ((cout, cin, k, k)) and transformed or packed
//! per step (they change every step; a layer's transformed copy lives only while the layer
//! runs). Frozen layers before the first trainable one cost their forward pass only: their
//! activations are dropped as soon as the next layer has read them, and the backward stops at
//! the first trainable layer.
//!
//! Determinism (what makes a resumed run equal an uninterrupted one): every output is computed
//! by one thread in a fixed order; the weight gradients' sums over positions run in a fixed
//! number of partitions (a function of the layer's size, not of the thread count) added in
//! order. The products that take strides (transposed operands) go through the `gemm` crate,
//! which splits work over outputs only.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use rand::Rng;
use rayon::prelude::*;

use super::loss::Targets;
use crate::error::{Error, Result};
use crate::model::engine::direct;
use crate::model::engine::fast::sqrt_in_place;
use crate::model::engine::first_layer::{self, Padded};
use crate::model::engine::gemm::{Epilogue, Lhs, NR, PackedB, gemm};
use crate::model::engine::isa::Kernel;
use crate::model::engine::unfold::{
    Geom, fold_nhwc_image, kernel_rows, transpose_planes, unfold_nhwc_rows,
};
use crate::model::engine::winograd::{Tile, WinogradKernel, conv3x3};
use crate::model::plan::{Conv, Op, Plan};

/// Target size of one unfolded block (bytes).
const CHUNK_BYTES: usize = 2 << 20;
/// Positions per partition of a weight gradient's sum (before the [`MAX_PARTS`] cap).
const PART_ROWS: usize = 512;
/// Most partitions of a weight gradient's sum (each holds a partial dW).
const MAX_PARTS: usize = 8;

/// One layer's parameters where candle keeps them: weight (cout, cin, k, k), bias (cout).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerRef<'a> {
    /// Kernel values.
    pub w: &'a [f32],
    /// Bias values.
    pub b: &'a [f32],
    /// Output channels.
    pub cout: usize,
    /// Input channels.
    pub cin: usize,
    /// Kernel side.
    pub k: usize,
    /// Whether its gradients are wanted.
    pub trainable: bool,
}

/// What one step computed.
#[derive(Debug)]
pub(crate) struct StepResult {
    /// The objective's mean over the batch (unscaled).
    pub loss: f32,
    /// The last layer's outputs (class scores or box parameters), (N, width) row-major.
    pub logits: Vec<f32>,
    /// Per layer, its (weight, bias) gradients in candle's layout; `None` when frozen.
    pub grads: Vec<Option<(Vec<f32>, Vec<f32>)>>,
}

/// A channels-last map (N, H, W, C).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Map {
    /// Images.
    pub n: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// The values, (N, H, W, C) row-major.
    pub data: Vec<f32>,
}

/// `len` zeros, written by every thread: the step's buffers are reused freed memory
/// ([`super::keep_freed_memory`]), which the allocator zeroes on one thread otherwise — about
/// 7 % of a D /4 step on 2 cores.
fn zeroed(len: usize) -> Vec<f32> {
    let mut v = Vec::new();
    rayon::iter::repeat_n(0f32, len).collect_into_vec(&mut v);
    v
}

impl Map {
    pub(crate) fn zeros(n: usize, h: usize, w: usize, c: usize) -> Map {
        Map {
            n,
            h,
            w,
            c,
            data: zeroed(n * h * w * c),
        }
    }

    /// A map whose values `fill` writes, without zeroing them first (the thin layers' maps are
    /// the step's largest: zeroing one costs about a third of the pass that then writes it).
    ///
    /// # Safety
    /// `fill` writes every element of the slice it is given.
    unsafe fn written(
        n: usize,
        h: usize,
        w: usize,
        c: usize,
        fill: impl FnOnce(&mut [MaybeUninit<f32>]),
    ) -> Map {
        let len = n * h * w * c;
        let mut data = Vec::with_capacity(len);
        fill(&mut data.spare_capacity_mut()[..len]);
        // SAFETY: `fill` wrote every element (the caller's promise).
        unsafe { data.set_len(len) };
        Map { n, h, w, c, data }
    }
}

/// Whether a 3x3 convolution from `cin` to `cout` channels runs as Winograd: 3x3 with padding
/// 1, enough input channels (as the inference engine decides), and outputs wide enough: the
/// products pad `cout` to a multiple of [`NR`] columns, so F(4x4)'s 36 products per 16
/// outputs cost 2.25 x ceil(cout / NR) x NR against 9 x cout for a direct product, a loss
/// below 16 outputs (narrow nets' first layers, and their backward-data passes).
fn winograd(k: usize, pad: usize, cin: usize, cout: usize) -> bool {
    k == 3 && pad == 1 && cin >= 8 && cout >= 16
}

/// Largest `cin x cout` of a 3x3 convolution whose forward and data gradient run as
/// [`direct`]'s loops: the narrow nets' thin layers (8 -> 16, 16 -> 16, 16 -> 32 channels),
/// where the Winograd products pad the outputs to panels of [`NR`] columns (four times the
/// work for 16) and the transforms cost as much as the products. Measured per layer on A /8
/// and D /4 (results/speed/train.md): 32 -> 32 layers are faster as Winograd.
const DIRECT_MAX: usize = 512;

/// Most outputs of a 3x3 convolution whose weight gradient runs as [`direct`]'s loops (no
/// unfolded copy of the input); 128-output layers were no faster.
const DIRECT_WGRAD_MAX_COUT: usize = 64;

/// Whether a convolution is a thin 3x3 layer ([`DIRECT_MAX`]) with padding 1.
fn thin(l: &LayerRef, pad: usize) -> bool {
    l.k == 3 && pad == 1 && l.cin * l.cout <= DIRECT_MAX
}

/// Whether a convolution's forward runs as [`direct`]'s loops: 3x3 with padding 1 on 3
/// channels (a net's first layer, where unfolding costs as much as the product), or a thin
/// layer.
fn direct_conv(l: &LayerRef, pad: usize) -> bool {
    thin(l, pad) || (l.k == 3 && pad == 1 && l.cin == direct::CIN)
}

/// Whether a convolution's weight gradient runs as [`direct`]'s loops: 3x3 with padding 1 on
/// 3 channels, or with at most [`DIRECT_WGRAD_MAX_COUT`] outputs.
fn direct_wgrad(l: &LayerRef, pad: usize) -> bool {
    l.k == 3 && pad == 1 && (l.cin == direct::CIN || l.cout <= DIRECT_WGRAD_MAX_COUT)
}

/// Whether a convolution's data gradient runs as [`direct`]'s loops (the forward of the
/// flipped kernel): a thin layer.
fn direct_data(l: &LayerRef, pad: usize) -> bool {
    thin(l, pad)
}

/// Output channels from which the packed GEMM (panels of [`NR`] columns) beats the `gemm`
/// crate on a body convolution.
const PACKED_MIN_COUT: usize = NR / 2;

/// What a step starts from.
#[derive(Debug)]
pub(crate) enum Input<'a> {
    /// An NCHW batch (n, 3, s, s) with `s = 32 * fc6 kernel`.
    Images {
        /// The pixels.
        x: &'a [f32],
        /// Images.
        n: usize,
        /// Side.
        s: usize,
    },
    /// What [`frozen_prefix`] computed for such a batch: the input of the first trainable layer.
    Frozen(Map),
}

/// The step of the first trainable layer: where the backward stops, and what a frozen prefix's
/// output feeds.
fn first_trainable(plan: &Plan, layers: &[LayerRef]) -> Result<usize> {
    plan.steps()
        .iter()
        .position(|st| matches!(st.op, Op::Conv(c) if layers[c.param].trainable))
        .ok_or_else(|| Error::Usage("every layer is frozen: nothing to train".into()))
}

/// The images of an NCHW batch, channels-last.
fn image_map(x: &[f32], n: usize, s: usize) -> Map {
    let mut input = Map::zeros(n, s, s, 3);
    transpose_planes(x, &mut input.data, 3, s * s);
    input
}

/// The plan's first layer when it runs on [`first_layer`]'s kernels for `s x s` images (8
/// outputs with ReLU and no dropout, on AVX-512): its parameters' index, and whether the
/// kernels also take the max-pool after it (configuration A's; one without dropout).
fn first_layer_fused(
    plan: &Plan,
    layers: &[LayerRef],
    kernel: Kernel,
    s: usize,
) -> Option<(usize, bool)> {
    let steps = plan.steps();
    let st = steps.first()?;
    let Op::Conv(c) = st.op else { return None };
    let l = &layers[c.param];
    let runs = l.k == 3
        && c.pad == 1
        && c.relu
        && !c.sqrt_input
        && !st.dropout
        && first_layer::applies(kernel, l.cin, l.cout, (s, s));
    let pool = matches!(steps.get(1), Some(st) if matches!(st.op, Op::Pool) && !st.dropout);
    runs.then_some((c.param, pool))
}

/// The first layer on [`first_layer`]'s kernels for an NCHW batch `x` (n, 3, s, s), with the
/// pool after it when `pool`: the padded images (which its weight gradient reads), its output
/// (the pool's with `pool`), and the pool's winners.
fn first_layer_forward(
    l: &LayerRef,
    x: &[f32],
    (n, s): (usize, usize),
    pool: bool,
) -> (Padded, Map, Option<Vec<u8>>) {
    let xp = Padded::new(x, (n, s, s));
    let c = first_layer::COUT;
    if !pool {
        let fill = |y: &mut [MaybeUninit<f32>]| first_layer::forward(&xp, l.w, l.b, y, None);
        // SAFETY: the forward writes every output.
        let y = unsafe { Map::written(n, s, s, c, fill) };
        return (xp, y, None);
    }
    let o = s / 2;
    let mut idx = vec![0u8; n * o * o * c];
    let fill = |y: &mut [MaybeUninit<f32>]| {
        first_layer::forward(&xp, l.w, l.b, y, Some(&mut idx));
    };
    // SAFETY: the forward writes every pooled output.
    let y = unsafe { Map::written(n, o, o, c, fill) };
    (xp, y, Some(idx))
}

/// Takes a square-rooted fc6 input's root in place ([`Conv::sqrt_input`]) and returns the step
/// with the root done, for [`forward_step`]: the stored input is then what the product saw,
/// which the weight gradient reads.
fn root_input(op: Op, x: &mut Map) -> Op {
    match op {
        Op::Conv(c) if c.sqrt_input => {
            sqrt_in_place(&mut x.data);
            Op::Conv(Conv {
                sqrt_input: false,
                ..c
            })
        }
        op => op,
    }
}

/// One step's forward (no dropout): its output, and a max-pool's choices.
fn forward_step(
    op: Op,
    x: &Map,
    layers: &[LayerRef],
    kernel: Kernel,
) -> Result<(Map, Option<Vec<u8>>)> {
    match op {
        Op::Conv(c) => {
            debug_assert!(!c.sqrt_input, "the root is taken by root_input");
            Ok((conv_forward(x, &layers[c.param], c, kernel), None))
        }
        Op::Pool => {
            let (y, idx) = pool_forward(x);
            Ok((y, Some(idx)))
        }
        Op::Lrn => Err(Error::Internal(
            "the fast training path has no LRN (A-LRN trains on candle)".into(),
        )),
    }
}

/// The output of the layers before the first trainable one (the frozen prefix) for an NCHW
/// batch (n, 3, s, s): exactly what [`step`] computes for them, so that a step from it
/// ([`Input::Frozen`]) equals a step from the images. The prefix has no dropout (callers refuse
/// one that would).
pub(crate) fn frozen_prefix(
    plan: &Plan,
    layers: &[LayerRef],
    kernel: Kernel,
    x: &[f32],
    (n, s): (usize, usize),
) -> Result<Map> {
    let first = first_trainable(plan, layers)?;
    let (mut cur, start) = match first_layer_fused(plan, layers, kernel, s) {
        Some((p, pool)) if first > 0 => {
            let (_, y, _) = first_layer_forward(&layers[p], x, (n, s), pool);
            (y, 1 + usize::from(pool))
        }
        _ => (image_map(x, n, s), 0),
    };
    for st in &plan.steps()[start..first] {
        let op = root_input(st.op, &mut cur);
        cur = forward_step(op, &cur, layers, kernel)?.0;
    }
    Ok(cur)
}

/// Whether a frozen step of the plan applies dropout (then its output is not a function of the
/// input alone, and [`frozen_prefix`] cannot stand for it).
pub(crate) fn prefix_has_dropout(plan: &Plan, layers: &[LayerRef]) -> Result<bool> {
    let first = first_trainable(plan, layers)?;
    Ok(plan.steps()[..first].iter().any(|st| st.dropout))
}

/// One training step from `input` (images, or their frozen prefix's output), against `targets`;
/// the loss's gradient is scaled by `scale` (a micro-batch's share of the batch).
/// With a generator, dropout `p` applies after the steps the plan marks, drawing one value per
/// unit in (image, channel) order, as the candle path does.
pub(crate) fn step(
    plan: &Plan,
    layers: &[LayerRef],
    kernel: Kernel,
    input: Input,
    targets: &Targets,
    dropout: (f32, Option<&mut dyn rand::RngCore>),
    scale: f32,
) -> Result<StepResult> {
    let steps = plan.steps();
    // The backward runs down to the first trainable layer's step.
    let first = first_trainable(plan, layers)?;
    let (p, mut rng) = dropout;
    // acts[i] is step i's input (acts[i + 1] its output); masks[i] / argmax[i] its dropout mask
    // and pool choices.
    let mut acts: Vec<Option<Map>> = (0..=steps.len()).map(|_| None).collect();
    let mut masks: Vec<Option<Vec<f32>>> = vec![None; steps.len()];
    let mut argmax: Vec<Option<Vec<u8>>> = vec![None; steps.len()];
    // The images, planar: a frozen prefix of nothing is the images themselves.
    let images = match input {
        Input::Images { x, n, s } => Ok((Cow::Borrowed(x), n, s)),
        Input::Frozen(m) if first == 0 && m.c == 3 && m.h == m.w => {
            let mut x = zeroed(m.data.len());
            transpose_planes(&m.data, &mut x, m.h * m.w, 3);
            Ok((Cow::Owned(x), m.n, m.h))
        }
        Input::Frozen(m) => Err(m),
    };
    // The first layer's padded images, whether it took the pool and its parameters' index,
    // when first_layer's kernels ran it (and it is trained).
    let mut fused: Option<(Padded, bool, usize)> = None;
    let start = match images {
        Ok((x, n, s)) => match first_layer_fused(plan, layers, kernel, s) {
            Some((p, pool)) => {
                let (xp, y, idx) = first_layer_forward(&layers[p], &x, (n, s), pool);
                let next = 1 + usize::from(pool);
                if pool {
                    argmax[1] = idx;
                }
                acts[next] = Some(y);
                if first == 0 {
                    fused = Some((xp, pool, p));
                }
                next
            }
            None => {
                acts[0] = Some(image_map(&x, n, s));
                0
            }
        },
        Err(m) => {
            let Op::Conv(c) = steps[first].op else {
                unreachable!("the first trainable step is a convolution")
            };
            if m.c != layers[c.param].cin {
                return Err(Error::Usage(format!(
                    "frozen features of {} channels for a layer of {} inputs",
                    m.c, layers[c.param].cin
                )));
            }
            acts[first] = Some(m);
            first
        }
    };
    let n = acts[start].as_ref().expect("set").n;
    for (i, st) in steps.iter().enumerate().skip(start) {
        // No gradient goes through a root: the parameters refuse it unless every conv is
        // frozen, so the backward stops at its step.
        if i > first && matches!(st.op, Op::Conv(c) if c.sqrt_input) {
            return Err(Error::Internal(
                "a square-rooted fc6 input after a trainable layer".into(),
            ));
        }
        let op = root_input(st.op, acts[i].as_mut().expect("computed"));
        let xin = acts[i].as_ref().expect("computed");
        let (mut y, idx) = forward_step(op, xin, layers, kernel)?;
        argmax[i] = idx;
        if let (true, Some(r)) = (st.dropout && p > 0.0, rng.as_mut()) {
            let m = dropout_mask(y.data.len(), p, r);
            for (v, m) in y.data.iter_mut().zip(&m) {
                *v *= m;
            }
            masks[i] = Some(m);
        }
        if i < first {
            acts[i] = None; // a frozen prefix keeps nothing
        }
        acts[i + 1] = Some(y);
    }
    let out = acts[steps.len()].as_ref().expect("computed");
    if out.h != 1 || out.w != 1 {
        return Err(Error::Internal(format!(
            "training output {}x{} (expected 1x1)",
            out.h, out.w
        )));
    }
    let classes = out.c;
    let logits = out.data.clone();
    let (loss, dlogits) = targets.loss_and_gradient(&logits, classes, scale)?;
    let mut g = Map {
        n,
        h: 1,
        w: 1,
        c: classes,
        data: dlogits,
    };
    let mut grads: Vec<Option<(Vec<f32>, Vec<f32>)>> = vec![None; layers.len()];
    // Whether `g` already went through the ReLU of the step below (a pool took it).
    let mut relu_taken = false;
    for i in (first..steps.len()).rev() {
        let y = acts[i + 1].take().expect("kept for the backward");
        if let Some((xp, pool, p)) = fused.as_ref().filter(|f| i == usize::from(f.1)) {
            // The first layer on first_layer's kernels (with the pool's backward when it took
            // the pool): its weight gradient, and the backward ends.
            let grad = if *pool {
                let idx = argmax[1].as_deref().expect("recorded");
                first_layer::Grad::Pooled {
                    g: &g.data,
                    idx,
                    y: &y.data,
                }
            } else {
                if !relu_taken {
                    mask_gradient(&mut g.data, &y.data, true, None);
                }
                first_layer::Grad::Dense(&g.data)
            };
            grads[*p] = Some(first_layer::weight_gradient(xp, grad));
            break;
        }
        let xin = acts[i].as_ref().expect("kept for the backward");
        match steps[i].op {
            Op::Pool => {
                // A ReLU (without dropout) right below the pool is taken on the winners: the
                // gradient passes where the pooled value is positive, which is where the
                // winner's is.
                relu_taken = i > 0
                    && matches!(steps[i - 1].op, Op::Conv(c) if c.relu)
                    && masks[i - 1].is_none();
                let idx = argmax[i].as_ref().expect("recorded");
                let pooled = relu_taken.then_some(&y.data[..]);
                g = pool_backward(&g, idx, (xin.h, xin.w), pooled);
            }
            Op::Conv(c) => {
                if !std::mem::take(&mut relu_taken) {
                    mask_gradient(&mut g.data, &y.data, c.relu, masks[i].as_deref());
                }
                drop(y);
                let l = &layers[c.param];
                if l.trainable {
                    grads[c.param] = Some(weight_gradient(xin, &g, l, c.pad, kernel));
                }
                if i == first {
                    break;
                }
                g = data_gradient(xin, &g, l, c.pad, kernel);
            }
            Op::Lrn => unreachable!("refused in the forward"),
        }
    }
    Ok(StepResult {
        loss,
        logits,
        grads,
    })
}

/// An inverted-dropout mask of `len` units with drop probability `p`: `1 / (1 - p)` where one
/// uniform draw per unit, in order, is below `1 - p`, else 0. Both engines draw it here, so they
/// drop the same units for the same generator.
pub(crate) fn dropout_mask(len: usize, p: f32, r: &mut (impl Rng + ?Sized)) -> Vec<f32> {
    let keep = 1.0 - p;
    (0..len)
        .map(|_| {
            if r.r#gen::<f32>() < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect()
}

/// Per image, a (rows, cols) block as (cols, rows): a channels-last patch (taps, C) in candle's
/// kernel order (C, taps), and back with the sides swapped.
fn swap_blocks(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = zeroed(src.len());
    transpose_planes(src, &mut out, rows, cols);
    out
}

/// `dst (m x n) = [dst +] lhs (m x k) * rhs (k x n)`, operands at any strides (the `gemm`
/// crate, which packs them itself); `dst` row-major with row stride `n`.
#[allow(clippy::too_many_arguments)]
fn product(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (a, a_rs, a_cs) = lhs;
    let (b, b_rs, b_cs) = rhs;
    assert!(dst.len() >= m * n);
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs, "lhs too small");
    assert!(b.len() > (k - 1) * b_rs + (n - 1) * b_cs, "rhs too small");
    let par = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts bound every element the strides reach; dst is a unique borrow that
    // aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rows of one unfolded block for `chunk_rows` positions of `kk` values.
fn chunk_rows(kk: usize) -> usize {
    (CHUNK_BYTES / (kk * 4)).clamp(16, 4096)
}

/// The geometry of layer `l` on input `x`.
fn geometry(x: &Map, l: &LayerRef, pad: usize) -> Geom {
    Geom {
        n: x.n,
        c: l.cin,
        h: x.h,
        w: x.w,
        k: l.k,
        p: pad,
    }
}

/// `y = relu?(conv(x) + b)`.
fn conv_forward(x: &Map, l: &LayerRef, c: Conv, kernel: Kernel) -> Map {
    let g = geometry(x, l, c.pad);
    let (oh, ow) = (g.out_h(), g.out_w());
    if direct_conv(l, c.pad) {
        let wr = kernel_rows(l.w, l.cout, l.cin, l.k * l.k);
        let dims = (x.n, x.h, x.w);
        let fill = |y: &mut [MaybeUninit<f32>]| {
            direct::forward(&x.data, dims, l.cin, &wr, l.b, l.cout, c.relu, kernel, y)
        };
        // SAFETY: the direct forward writes every output.
        return unsafe { Map::written(x.n, oh, ow, l.cout, fill) };
    }
    let mut y = Map::zeros(x.n, oh, ow, l.cout);
    if winograd(l.k, c.pad, l.cin, l.cout) {
        let wk = WinogradKernel::new(l.w, l.cout, l.cin, Tile::F4, kernel);
        conv3x3(&x.data, x.n, x.h, x.w, &wk, l.b, c.relu, false, &mut y.data);
    } else if oh * ow == 1 && c.pad == 0 {
        // The head: one product with the weights as they are, y^T = W (cout x C*k*k) *
        // patches^T, the long side (cout) as the product's rows (which the `gemm` crate
        // vectorises; the batch is short).
        let kk = g.patch();
        let xp = if l.k == 1 {
            x.data.clone()
        } else {
            swap_blocks(&x.data, l.k * l.k, l.cin)
        };
        let mut yt = zeroed(l.cout * x.n);
        product(
            (l.cout, x.n, kk),
            &mut yt,
            false,
            (l.w, kk, 1),
            (&xp, 1, kk),
            true,
        );
        transpose_planes(&yt, &mut y.data, l.cout, x.n);
        bias_relu(&mut y.data, l.b, c.relu);
    } else if l.cout < PACKED_MIN_COUT {
        // Few outputs: unfolded rows times the (taps*C, cout) kernel matrix, unpadded.
        let kk = g.patch();
        let wr = kernel_rows(l.w, l.cout, l.cin, l.k * l.k);
        let rows = chunk_rows(kk);
        y.data
            .par_chunks_mut(rows * l.cout)
            .enumerate()
            .for_each(|(ci, o)| {
                let (r0, r) = (ci * rows, o.len() / l.cout);
                SCRATCH.with(|s| {
                    let s = &mut s.borrow_mut();
                    s.resize(r * kk, 0.0);
                    unfold_nhwc_rows(&x.data, g, r0, r, s, kk, |v| v);
                    product(
                        (r, l.cout, kk),
                        o,
                        false,
                        (s, kk, 1),
                        (&wr, l.cout, 1),
                        false,
                    );
                });
                bias_relu(o, l.b, c.relu);
            });
    } else {
        let packed = PackedB::from_conv(l.w, l.cout, l.cin, l.k * l.k, kernel);
        let kk = g.patch();
        let in_place = l.k == 1 && c.pad == 0;
        let rows = chunk_rows(kk);
        let epi = Epilogue {
            bias: Some(l.b),
            relu: c.relu,
        };
        y.data
            .par_chunks_mut(rows * l.cout)
            .enumerate()
            .for_each(|(ci, o)| {
                let (r0, r) = (ci * rows, o.len() / l.cout);
                if in_place {
                    let a = &x.data[r0 * kk..(r0 + r) * kk];
                    gemm(r, Lhs::F32(a), kk, &packed, 0..l.cout, o, l.cout, epi);
                    return;
                }
                SCRATCH.with(|s| {
                    let s = &mut s.borrow_mut();
                    s.resize(r * kk, 0.0);
                    unfold_nhwc_rows(&x.data, g, r0, r, s, kk, |v| v);
                    gemm(r, Lhs::F32(s), kk, &packed, 0..l.cout, o, l.cout, epi);
                })
            });
    }
    y
}

fn bias_relu(y: &mut [f32], b: &[f32], relu: bool) {
    for row in y.chunks_exact_mut(b.len()) {
        for (v, b) in row.iter_mut().zip(b) {
            let s = *v + b;
            *v = if relu { s.max(0.0) } else { s };
        }
    }
}

/// 2x2 max-pool, stride 2, flooring odd sizes; also which of the four inputs won
/// (0 = top left, 1 top right, 2 bottom left, 3 bottom right; the first of equal maxima).
fn pool_forward(x: &Map) -> (Map, Vec<u8>) {
    let (oh, ow, c) = (x.h / 2, x.w / 2, x.c);
    let mut idx = vec![0u8; x.n * oh * ow * c];
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(ow * c)
            .zip(idx.par_chunks_mut(ow * c))
            .enumerate()
            .for_each(|(row, (o, id))| {
                let (img, oy) = (row / oh, row % oh);
                let top = &x.data[((img * x.h + 2 * oy) * x.w) * c..][..2 * x.w * c];
                let (r0, r1) = top.split_at(x.w * c);
                for (ox, (o, id)) in o
                    .chunks_exact_mut(c)
                    .zip(id.chunks_exact_mut(c))
                    .enumerate()
                {
                    let (a, b) = r0[2 * ox * c..][..2 * c].split_at(c);
                    let (d, e) = r1[2 * ox * c..][..2 * c].split_at(c);
                    for ch in 0..c {
                        // The first of equal maxima, in the order a, b, d, e.
                        let (mut best, mut k) = (a[ch], 0u8);
                        for (v, j) in [(b[ch], 1), (d[ch], 2), (e[ch], 3)] {
                            if v > best {
                                (best, k) = (v, j);
                            }
                        }
                        o[ch].write(best);
                        id[ch] = k;
                    }
                }
            });
    };
    // SAFETY: every row's outputs are written.
    let y = unsafe { Map::written(x.n, oh, ow, c, fill) };
    (y, idx)
}

/// The pool's input gradient, (n, h, w, c) for a pool of an (h, w) map: each output's gradient
/// to its winner, zero elsewhere; with `relu_of` (the pool's outputs, which passed a ReLU), only
/// where the output is positive (the ReLU's gradient, taken on the winners).
fn pool_backward(g: &Map, idx: &[u8], (h, w): (usize, usize), relu_of: Option<&[f32]>) -> Map {
    let (oh, ow, c) = (g.h, g.w, g.c);
    let mut dx = Map::zeros(g.n, h, w, c);
    dx.data
        .par_chunks_mut(h * w * c)
        .enumerate()
        .for_each(|(img, d)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = ((img * oh + oy) * ow + ox) * c;
                    for ch in 0..c {
                        if relu_of.is_some_and(|p| p[o + ch] <= 0.0) {
                            continue;
                        }
                        let j = idx[o + ch] as usize;
                        let (dy, dxx) = (j / 2, j % 2);
                        d[((2 * oy + dy) * w + 2 * ox + dxx) * c + ch] = g.data[o + ch];
                    }
                }
            }
        });
    dx
}

/// Elements per parallel task of the element-wise passes (long enough to vectorise).
const EW_CHUNK: usize = 1 << 14;

/// The gradient of a conv's pre-activation from its output's: through dropout and ReLU.
fn mask_gradient(g: &mut [f32], y: &[f32], relu: bool, mask: Option<&[f32]>) {
    let gs = g.par_chunks_mut(EW_CHUNK).zip(y.par_chunks(EW_CHUNK));
    match (relu, mask) {
        (true, Some(m)) => gs.zip(m.par_chunks(EW_CHUNK)).for_each(|((g, y), m)| {
            for ((g, y), m) in g.iter_mut().zip(y).zip(m) {
                *g = if *y > 0.0 { *g * m } else { 0.0 };
            }
        }),
        (true, None) => gs.for_each(|(g, y)| {
            for (g, y) in g.iter_mut().zip(y) {
                *g = if *y > 0.0 { *g } else { 0.0 };
            }
        }),
        (false, Some(m)) => g
            .par_chunks_mut(EW_CHUNK)
            .zip(m.par_chunks(EW_CHUNK))
            .for_each(|(g, m)| g.iter_mut().zip(m).for_each(|(g, m)| *g *= m)),
        (false, None) => {}
    }
}

/// (dW, db) of a conv in candle's layout, from its input `x` and pre-activation gradient `g`.
fn weight_gradient(
    x: &Map,
    g: &Map,
    l: &LayerRef,
    pad: usize,
    kernel: Kernel,
) -> (Vec<f32>, Vec<f32>) {
    let geo = geometry(x, l, pad);
    let (m, kk, co) = (geo.cols(), geo.patch(), l.cout);
    if g.h * g.w == 1 && pad == 0 {
        // The head: dW = g^T (co x N) * patches (N x C*k*k, candle's order).
        let xp = if l.k == 1 {
            x.data.clone()
        } else {
            swap_blocks(&x.data, l.k * l.k, l.cin)
        };
        let mut dw = vec![0f32; co * kk];
        product(
            (co, kk, x.n),
            &mut dw,
            false,
            (&g.data, 1, co),
            (&xp, kk, 1),
            true,
        );
        return (dw, column_sums(&g.data, co));
    }
    let parts = m.div_ceil(PART_ROWS).clamp(1, MAX_PARTS);
    let per = m.div_ceil(parts);
    let rows = chunk_rows(kk);
    let in_place = l.k == 1 && pad == 0;
    let direct = direct_wgrad(l, pad);
    // Per partition, dW^T (taps*C x co, channels-last rows) += patches^T (kk x r) * g (r x co):
    // the long side (kk) is the product's row dimension, which the `gemm` crate vectorises.
    let partial: Vec<(Vec<f32>, Vec<f32>)> = (0..parts)
        .into_par_iter()
        .map(|p| {
            let mut dwt = vec![0f32; kk * co];
            let (a, b) = (p * per, ((p + 1) * per).min(m));
            let mut db = vec![0f32; co];
            if direct {
                let (dims, d) = ((x.n, x.h, x.w), &mut dwt);
                direct::weight_gradient(
                    &x.data,
                    dims,
                    l.cin,
                    &g.data,
                    co,
                    a..b,
                    kernel,
                    d,
                    &mut db,
                );
                return (dwt, db);
            }
            let mut u = Vec::new();
            for r0 in (a..b).step_by(rows) {
                let r = rows.min(b - r0);
                let patches: &[f32] = if in_place {
                    &x.data[r0 * kk..(r0 + r) * kk]
                } else {
                    u.resize(r * kk, 0.0);
                    unfold_nhwc_rows(&x.data, geo, r0, r, &mut u, kk, |v| v);
                    &u
                };
                let gr = &g.data[r0 * co..(r0 + r) * co];
                add_rows(&mut db, gr);
                product(
                    (kk, co, r),
                    &mut dwt,
                    r0 > a,
                    (patches, 1, kk),
                    (gr, co, 1),
                    false,
                );
            }
            (dwt, db)
        })
        .collect();
    let mut it = partial.into_iter();
    let (mut dwt, mut db) = it.next().expect("at least one partition");
    for (w, b) in it {
        dwt.iter_mut().zip(&w).for_each(|(d, v)| *d += v);
        db.iter_mut().zip(&b).for_each(|(d, v)| *d += v);
    }
    // (taps, C, co) -> candle's (co, C, taps).
    let taps = l.k * l.k;
    let mut dw = vec![0f32; co * kk];
    for t in 0..taps {
        for ci in 0..l.cin {
            let src = &dwt[(t * l.cin + ci) * co..][..co];
            for (o, v) in src.iter().enumerate() {
                dw[(o * l.cin + ci) * taps + t] = *v;
            }
        }
    }
    (dw, db)
}

/// Sums of the rows of a (rows x n) matrix, in row order.
fn column_sums(g: &[f32], n: usize) -> Vec<f32> {
    let mut s = vec![0f32; n];
    add_rows(&mut s, g);
    s
}

/// Adds the rows of `g` (rows of `s.len()` values) to `s`, in row order.
fn add_rows(s: &mut [f32], g: &[f32]) {
    for row in g.chunks_exact(s.len()) {
        s.iter_mut().zip(row).for_each(|(d, v)| *d += v);
    }
}

/// The gradient of a conv's input from its pre-activation gradient `g`.
fn data_gradient(x: &Map, g: &Map, l: &LayerRef, pad: usize, kernel: Kernel) -> Map {
    let geo = geometry(x, l, pad);
    let (kk, co) = (geo.patch(), l.cout);
    if direct_data(l, pad) {
        let rows = direct::flipped_rows(l.w, co, l.cin);
        let zero = vec![0f32; l.cin];
        let dims = (g.n, g.h, g.w);
        let fill = |dx: &mut [MaybeUninit<f32>]| {
            direct::forward(&g.data, dims, co, &rows, &zero, l.cin, false, kernel, dx)
        };
        // SAFETY: the direct forward writes every output.
        return unsafe { Map::written(x.n, x.h, x.w, l.cin, fill) };
    }
    let mut dx = Map::zeros(x.n, x.h, x.w, l.cin);
    if winograd(l.k, pad, co, l.cin) {
        // dx = conv(g, W') with W'[ci][co] = W[co][ci] rotated by 180 degrees, padding 1.
        let mut wf = vec![0f32; l.w.len()];
        wf.par_chunks_mut(co * 9).enumerate().for_each(|(i, wi)| {
            for (o, dst) in wi.chunks_exact_mut(9).enumerate() {
                let src = &l.w[(o * l.cin + i) * 9..][..9];
                for t in 0..9 {
                    dst[t] = src[8 - t];
                }
            }
        });
        let wk = WinogradKernel::new(&wf, l.cin, co, Tile::F4, kernel);
        let zero = vec![0f32; l.cin];
        conv3x3(
            &g.data,
            g.n,
            g.h,
            g.w,
            &wk,
            &zero,
            false,
            false,
            &mut dx.data,
        );
    } else if g.h * g.w == 1 && pad == 0 {
        // The head: patches' gradient g (N x co) * W (co x C*k*k), back to channels-last.
        // (As dp^T = W^T g^T, with the long side as the rows like the forward's, it is
        // slower: the `gemm` crate then reads W down its columns.)
        let mut dp = vec![0f32; x.n * kk];
        product(
            (x.n, kk, co),
            &mut dp,
            false,
            (&g.data, co, 1),
            (l.w, kk, 1),
            true,
        );
        dx.data = if l.k == 1 {
            dp
        } else {
            swap_blocks(&dp, l.cin, l.k * l.k)
        };
    } else if l.k == 1 && pad == 0 {
        let m = geo.cols();
        product(
            (m, l.cin, co),
            &mut dx.data,
            false,
            (&g.data, co, 1),
            (l.w, kk, 1),
            true,
        );
    } else {
        // Per image: the unfolded gradient g W (positions x C*k*k), folded back (col2im).
        let (oh, ow) = (geo.out_h(), geo.out_w());
        let per_in = x.h * x.w * l.cin;
        dx.data
            .par_chunks_mut(per_in)
            .enumerate()
            .for_each(|(img, d)| {
                let gi = &g.data[img * oh * ow * co..(img + 1) * oh * ow * co];
                let mut cols = vec![0f32; oh * ow * kk];
                product(
                    (oh * ow, kk, co),
                    &mut cols,
                    false,
                    (gi, co, 1),
                    (l.w, kk, 1),
                    false,
                );
                fold_nhwc_image(&cols, Geom { n: 1, ..geo }, d);
            });
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_routes_to_the_first_maximum() {
        let x = Map {
            n: 1,
            h: 3,
            w: 2,
            c: 1,
            data: vec![1.0, 2.0, 2.0, 0.0, 9.0, 9.0],
        };
        let (y, idx) = pool_forward(&x);
        assert_eq!((y.h, y.w, y.data.clone()), (1, 1, vec![2.0]));
        assert_eq!(idx, vec![1]);
        let g = Map {
            data: vec![5.0],
            ..y
        };
        let dx = pool_backward(&g, &idx, (x.h, x.w), None);
        assert_eq!(dx.data, vec![0.0, 5.0, 0.0, 0.0, 0.0, 0.0]);
        // With the ReLU taken on the winners: a winner that is not positive passes nothing.
        let relu = pool_backward(&g, &idx, (x.h, x.w), Some(&[2.0]));
        assert_eq!(relu.data, dx.data);
        let dead = pool_backward(&g, &idx, (x.h, x.w), Some(&[0.0]));
        assert_eq!(dead.data, vec![0.0; 6]);
    }

    /// The pool's backward against a plain scatter of each window's gradient to its winner,
    /// on odd sides (the last row and column in no window) and several images and channels.
    #[test]
    fn pool_backward_is_the_scatter_to_the_winners() {
        let (n, h, w, c) = (2, 5, 7, 3);
        let data: Vec<f32> = (0..n * h * w * c)
            .map(|i| ((i * 37) % 11) as f32 - 5.0)
            .collect();
        let x = Map { n, h, w, c, data };
        let (y, idx) = pool_forward(&x);
        let g = Map {
            data: (0..y.data.len()).map(|i| i as f32 + 1.0).collect(),
            ..y
        };
        for relu in [None, Some(&y.data[..])] {
            let mut want = vec![0f32; x.data.len()];
            for (q, k) in idx.iter().enumerate() {
                let (ch, ox, oy, img) = (q % c, q / c % g.w, q / c / g.w % g.h, q / c / g.w / g.h);
                if relu.is_some_and(|p| p[q] <= 0.0) {
                    continue;
                }
                let (yy, xx) = (2 * oy + *k as usize / 2, 2 * ox + *k as usize % 2);
                want[((img * h + yy) * w + xx) * c + ch] = g.data[q];
            }
            assert_eq!(pool_backward(&g, &idx, (h, w), relu).data, want);
        }
    }

    #[test]
    fn the_relu_taken_on_the_winners_is_the_relu_of_the_map() {
        // A ReLU's output (a third of it zeros, odd sides), pooled; the pool's gradient with the
        // ReLU taken on the winners equals the plain pool gradient masked by the map's ReLU.
        let (n, h, w, c) = (2, 7, 5, 3);
        let v = |i: usize, s: usize| ((i * 2_654_435_761 + s) % 1000) as f32 / 500.0 - 0.6;
        let x = Map {
            n,
            h,
            w,
            c,
            data: (0..n * h * w * c).map(|i| v(i, 1).max(0.0)).collect(),
        };
        let (y, idx) = pool_forward(&x);
        let g = Map {
            data: (0..y.data.len()).map(|i| v(i, 7)).collect(),
            ..y.clone()
        };
        let mut want = pool_backward(&g, &idx, (h, w), None);
        mask_gradient(&mut want.data, &x.data, true, None);
        let got = pool_backward(&g, &idx, (h, w), Some(&y.data));
        assert_eq!(got, want);
        assert!(got.data.iter().any(|v| *v != 0.0) && got.data.contains(&0.0));
    }
}
