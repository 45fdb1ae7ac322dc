//! The paper's test-time classification protocols (Section 3.2, Tables 3-5, Section 4.3).
//!
//! * **Dense**: rescale isotropically to the test scale Q and apply the network densely (its
//!   fully-convolutional head). The class score map is averaged spatially. The soft-max
//!   posteriors of the image and its horizontal flip are averaged.
//! * **Multi-crop**: rescale to Q, take 224 x 224 crops on a regular `g x g` grid, and add each
//!   crop's flip. The paper uses `g = 5`: 50 crops per scale, 150 over 3 scales. The crops'
//!   soft-max posteriors are averaged. The crop side is the net's smallest dense input, 224 for
//!   ImageNet networks.
//! * **Several scales**: the posteriors are averaged over the scales (Table 4).
//! * **Dense + multi-crop**: each method's posteriors are averaged over its scales, then the
//!   two are averaged (Table 5).
//! * **Fusion of nets**: the nets' posteriors are averaged (Section 4.3, Table 6).
//!
//! [`ClassifyParams`] / [`ImageClassifier`] is the front door: the nets loaded once, images
//! classified (top classes) or a labelled dataset evaluated (top-1 and top-5 error, as the
//! paper's tables report). The functions below it ([`posteriors`], [`class_probs`],
//! [`crop_probs`], [`evaluate`]) are the protocols themselves, on nets already in memory.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use image::RgbImage;

use crate::dataset::Dataset;
use crate::descriptor::pooled;
use crate::error::{Error, Param, Result};
use crate::image_io::{DEFAULT_MAX_PIXELS, DecodeOptions, Image, load_item, load_rgb_with};
use crate::model::config::LayerName;
use crate::model::{DeviceSpec, Engine, Precision, RunOptions, Vgg};
use crate::preprocess::{Normalization, Preprocess, check_scaled_size, resize_smallest_side};
use crate::util::Progress;

/// The paper's default test scale for classification (Table 3's single scale Q = 384).
pub const DEFAULT_SCALE: u32 = 384;

/// The paper's multi-crop grid: 5 x 5 crops, each with its flip, per scale.
pub const PAPER_GRID: u32 = 5;

/// One ranked class.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Class index (fc8 row).
    pub class: usize,
    /// Softmax probability.
    pub prob: f32,
}

/// How an image's class posteriors are computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Test scales Q (smallest image side). Posteriors are averaged over them.
    pub scales: Vec<u32>,
    /// Dense evaluation.
    pub dense: bool,
    /// Multi-crop evaluation on a `g x g` grid with flips, when set.
    pub crops: Option<u32>,
}

impl Default for Evaluation {
    /// Dense at Q = 384, the paper's single-scale setting.
    fn default() -> Self {
        Evaluation {
            scales: vec![DEFAULT_SCALE],
            dense: true,
            crops: None,
        }
    }
}

/// A network with its input convention.
#[derive(Debug, Clone, Copy)]
pub struct ClassNet<'a> {
    /// The network (with fc6..fc8).
    pub net: &'a Vgg,
    /// Its input convention.
    pub norm: Normalization,
}

/// Checks that the net has a classifier and that the test scale `q` is at least its smallest
/// dense input ([`Vgg::min_head_input`]: 224 for ImageNet networks, 32k for a k x k fc6).
pub fn check_scale(net: &Vgg, q: u32) -> Result<()> {
    let min = net.min_head_input().ok_or_else(|| {
        Error::Usage(format!(
            "{} has no fc layers; classification needs fc6..fc8",
            net.weights().path.display()
        ))
    })?;
    if (q as usize) < min {
        return Err(Error::param(
            Param::Scales,
            format!("scale {q} is below {min}, the smallest input of the dense head"),
        ));
    }
    net.check_layer(LayerName::Fc8)
}

/// Checks an evaluation against its nets before any image is read. It needs at least one net
/// and one scale, at least one method, a grid of at least 1, and nets with equal class counts.
/// A net without fc8 is an [`Error::Data`] naming its file.
/// Every scale must pass [`check_scale`] for every net. Returns the number of classes.
pub fn check(nets: &[ClassNet<'_>], eval: &Evaluation) -> Result<usize> {
    let usage = |m: String| Err(Error::Usage(m));
    if nets.is_empty() {
        return usage("no networks to classify with".into());
    }
    if eval.scales.is_empty() {
        return usage("no test scales".into());
    }
    if !eval.dense && eval.crops.is_none() {
        return usage("neither dense nor multi-crop evaluation was asked for".into());
    }
    if eval.crops == Some(0) {
        return usage("a crop grid needs at least 1 x 1 crops".into());
    }
    let mut classes = None;
    for n in nets {
        if n.net.weights().num_classes().is_none() {
            return Err(Error::Data {
                path: n.net.weights().path.clone(),
                reason: "no fc8 (class scores): classification needs a full network".into(),
            });
        }
        for &q in &eval.scales {
            check_scale(n.net, q)?;
        }
        let k = n.net.weights().num_classes().ok_or_else(|| {
            Error::Usage(format!(
                "{} has no fc8 (class scores)",
                n.net.weights().path.display()
            ))
        })?;
        match classes {
            None => classes = Some(k),
            Some(c) if c != k => {
                return usage(format!(
                    "nets to fuse must score the same classes: {} has {k}, the first net {c}",
                    n.net.weights().path.display()
                ));
            }
            _ => {}
        }
    }
    Ok(classes.unwrap_or(0))
}

/// Classifies one image file, returning its `top_k` classes under `eval`, fused over `nets`
/// (which must pass [`check`]).
pub fn classify_file(
    nets: &[ClassNet<'_>],
    path: &Path,
    eval: &Evaluation,
    top_k: usize,
    decode: &DecodeOptions,
) -> Result<Vec<Prediction>> {
    Ok(rank(&file_posteriors(nets, path, eval, decode)?, top_k))
}

/// The fused posteriors of one image file. An image that cannot be decoded, or is too large
/// once rescaled to a scale, is an [`Error::Image`] naming the file.
pub fn file_posteriors(
    nets: &[ClassNet<'_>],
    path: &Path,
    eval: &Evaluation,
    decode: &DecodeOptions,
) -> Result<Vec<f32>> {
    image_posteriors(nets, path, load_rgb_with(path, decode)?, eval, decode)
}

/// [`file_posteriors`] of a decoded image (`path` names it in errors).
fn image_posteriors(
    nets: &[ClassNet<'_>],
    path: &Path,
    img: RgbImage,
    eval: &Evaluation,
    decode: &DecodeOptions,
) -> Result<Vec<f32>> {
    for &q in &eval.scales {
        check_scaled_size(img.width(), img.height(), q, decode.max_pixels).map_err(|reason| {
            Error::Image {
                path: path.to_path_buf(),
                reason,
            }
        })?;
    }
    posteriors(nets, &img, eval)
}

/// The class posteriors of one decoded image under `eval`, averaged over `nets` (late fusion).
pub fn posteriors(nets: &[ClassNet<'_>], img: &RgbImage, eval: &Evaluation) -> Result<Vec<f32>> {
    let mut per_net = Vec::with_capacity(nets.len());
    for n in nets {
        let mut methods = Vec::new();
        if eval.dense {
            let per_scale = eval
                .scales
                .iter()
                .map(|&q| class_probs(n.net, img, q, n.norm))
                .collect::<Result<Vec<_>>>()?;
            methods.push(mean_of(&per_scale));
        }
        if let Some(g) = eval.crops {
            let per_scale = eval
                .scales
                .iter()
                .map(|&q| crop_probs(n.net, img, q, n.norm, g))
                .collect::<Result<Vec<_>>>()?;
            methods.push(mean_of(&per_scale));
        }
        per_net.push(mean_of(&methods));
    }
    Ok(mean_of(&per_net))
}

/// The element-wise mean of equally long vectors (accumulated in f64).
fn mean_of(v: &[Vec<f32>]) -> Vec<f32> {
    let k = v.first().map_or(0, Vec::len);
    (0..k)
        .map(|j| (v.iter().map(|p| f64::from(p[j])).sum::<f64>() / v.len() as f64) as f32)
        .collect()
}

/// The dense class posteriors of one decoded image at scale `q`, following the paper. The image
/// is rescaled to smallest side `q` (Pillow-exact) and normalised. The net gives the fc8 map of
/// the image and of its flip, in one batch. Each map's spatial mean goes through a soft-max, and
/// the two posteriors are averaged. Returns one probability per fc8 class. `q` must pass
/// [`check_scale`].
pub fn class_probs(net: &Vgg, img: &RgbImage, q: u32, norm: Normalization) -> Result<Vec<f32>> {
    let s = resize_smallest_side(img, q);
    let (h, w) = (s.height() as usize, s.width() as usize);
    let mut data = norm.to_chw(&s, false);
    data.extend(norm.to_chw(&s, true));
    let x = Tensor::from_vec(data, (2, 3, h, w), net.device())?;
    let means = pooled(net, &x, LayerName::Fc8)?;
    Ok(mean_of(&[softmax(&means[0]), softmax(&means[1])]))
}

/// The top-left corners of a `grid x grid` grid of `crop x crop` crops in a `width x height`
/// image. The corners are evenly spaced from one border to the other,
/// `round(i * (side - crop) / (grid - 1))`; a 1 x 1 grid is the centre crop
/// `(side - crop) / 2`, rounded down. The order is row by row.
pub fn crop_grid(width: u32, height: u32, crop: u32, grid: u32) -> Vec<(u32, u32)> {
    let offsets = |side: u32| -> Vec<u32> {
        let room = side.saturating_sub(crop);
        if grid <= 1 {
            return vec![room / 2];
        }
        (0..grid)
            .map(|i| ((i as f64) * (room as f64) / ((grid - 1) as f64)).round() as u32)
            .collect()
    };
    let (xs, ys) = (offsets(width), offsets(height));
    ys.iter()
        .flat_map(|&y| xs.iter().map(move |&x| (x, y)))
        .collect()
}

/// The multi-crop class posteriors of one decoded image at scale `q`. The image is rescaled to
/// smallest side `q`, and [`crop_grid`] gives the crops, whose side is the net's smallest dense
/// input. Each crop and its flip go through the network to fc8 (a 1 x 1 map) and a soft-max.
/// The `2 * grid^2` posteriors are averaged. A grid row at a time is one batch.
pub fn crop_probs(
    net: &Vgg,
    img: &RgbImage,
    q: u32,
    norm: Normalization,
    grid: u32,
) -> Result<Vec<f32>> {
    let crop = net.min_head_input().ok_or_else(|| {
        Error::Usage(format!(
            "{} has no fc layers; classification needs fc6..fc8",
            net.weights().path.display()
        ))
    })? as u32;
    let s = resize_smallest_side(img, q);
    let corners = crop_grid(s.width(), s.height(), crop, grid);
    let mut probs = Vec::with_capacity(2 * corners.len());
    for row in corners.chunks(grid.max(1) as usize) {
        let mut data = Vec::with_capacity(row.len() * 2 * 3 * (crop * crop) as usize);
        for &(x, y) in row {
            let c = image::imageops::crop_imm(&s, x, y, crop, crop).to_image();
            data.extend(norm.to_chw(&c, false));
            data.extend(norm.to_chw(&c, true));
        }
        let c = crop as usize;
        let x = Tensor::from_vec(data, (2 * row.len(), 3, c, c), net.device())?;
        probs.extend(pooled(net, &x, LayerName::Fc8)?.iter().map(|m| softmax(m)));
    }
    Ok(mean_of(&probs))
}

/// `exp(v - max) / sum`, in f32 (as PyTorch's and candle's softmax).
pub fn softmax(v: &[f32]) -> Vec<f32> {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = v.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

/// The `top_k` classes of a probability vector, most probable first (ties: lower index first).
pub fn rank(probs: &[f32], top_k: usize) -> Vec<Prediction> {
    crate::metrics::ranking(probs)
        .into_iter()
        .take(top_k)
        .map(|class| Prediction {
            class,
            prob: probs[class],
        })
        .collect()
}

/// The class index of a dataset label, for a net with `classes` outputs. The label is either a
/// class index (`0`..`classes - 1`) or, for a 1000-class net, an ImageNet synset id
/// (`n01440764`) or short name (`tench`). A short name that two ImageNet classes share
/// (`crane`: 134 the bird and 517 the machine; `maillot`: 638 and 639) is refused, listing the
/// candidates, as is a label that names no class; the error is the reason, in words.
pub fn class_of_label(label: &str, classes: usize) -> std::result::Result<usize, String> {
    let imagenet = classes == crate::imagenet::NUM_CLASSES;
    let none = || {
        format!(
            "label `{label}` is not a class of the net (an index below {classes}{})",
            if imagenet {
                ", an ImageNet synset id or a short name"
            } else {
                ""
            }
        )
    };
    if let Ok(i) = label.parse::<usize>() {
        return if i < classes { Ok(i) } else { Err(none()) };
    }
    if !imagenet {
        return Err(none());
    }
    if let Some(i) =
        (0..classes).find(|&i| crate::imagenet::class(i).is_some_and(|(wnid, _)| wnid == label))
    {
        return Ok(i);
    }
    let named: Vec<usize> = (0..classes)
        .filter(|&i| crate::imagenet::short_name(i) == Some(label))
        .collect();
    match named[..] {
        [i] => Ok(i),
        [] => Err(none()),
        _ => Err(format!(
            "label `{label}` names {} ImageNet classes: {}; give the synset id or the index",
            named.len(),
            named
                .iter()
                .map(|&i| {
                    let (wnid, name) = crate::imagenet::class(i).expect("a class index");
                    format!("{i} ({wnid}, {name})")
                })
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The top-1 and top-5 error of an evaluation over a labelled dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalReport {
    /// Images classified.
    pub images: usize,
    /// Top-1 error (fraction).
    pub top1_error: f64,
    /// Top-5 error (fraction).
    pub top5_error: f64,
    /// Images that could not be used, with the reason.
    pub failed: Vec<(PathBuf, String)>,
}

/// Classifies every image of a labelled dataset (one label per image, see
/// [`class_of_label`]) under `eval` with `nets` fused, and returns the top-1 and top-5 errors.
/// A label that names no class of the nets is a usage error, found before any image is read.
/// An image that cannot be decoded is listed in [`EvalReport::failed`] and left out.
/// `progress(done, total)` is called after each image.
pub fn evaluate(
    nets: &[ClassNet<'_>],
    dataset: &Dataset,
    eval: &Evaluation,
    decode: &DecodeOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<EvalReport> {
    let classes = check(nets, eval)?;
    let labels = dataset
        .items
        .iter()
        .map(|item| match item.labels.as_slice() {
            [l] => class_of_label(l, classes)
                .map_err(|why| Error::Usage(format!("{}: {why}", item.path.display()))),
            other => Err(Error::Usage(format!(
                "{}: {} labels; top-k error needs exactly one per image",
                item.path.display(),
                other.len()
            ))),
        })
        .collect::<Result<Vec<usize>>>()?;
    let mut ranks = Vec::with_capacity(labels.len());
    let mut failed = Vec::new();
    for (i, (item, &label)) in dataset.items.iter().zip(&labels).enumerate() {
        let p = load_item(item, decode)
            .and_then(|img| image_posteriors(nets, &item.path, img, eval, decode));
        match p {
            Ok(p) => ranks.push(crate::metrics::label_rank(&p, label)),
            Err(e @ Error::Image { .. }) => failed.push((item.path.clone(), e.to_string())),
            Err(e) => return Err(e),
        }
        progress(i + 1, labels.len());
    }
    if ranks.is_empty() {
        return Err(Error::Data {
            path: dataset.root.clone(),
            reason: format!("none of its {} images could be classified", labels.len()),
        });
    }
    Ok(EvalReport {
        images: ranks.len(),
        top1_error: crate::metrics::top_k_error(&ranks, 1)?,
        top5_error: crate::metrics::top_k_error(&ranks, 5)?,
        failed,
    })
}

/// Checked parameters of an [`ImageClassifier`]; obtained only from [`ClassifyParams::check`].
/// See [`ClassifyParams`] for every field's meaning, default and range.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyValidParams {
    weights: Vec<PathBuf>,
    preprocess: Preprocess,
    precision: Precision,
    engine: Engine,
    device: DeviceSpec,
    eval: Evaluation,
    top: usize,
    max_pixels: u64,
}

impl ClassifyValidParams {
    /// The checkpoints, fused by averaging their posteriors.
    pub fn weights(&self) -> &[PathBuf] {
        &self.weights
    }
    /// The test protocol: scales, dense, multi-crop grid.
    pub fn evaluation(&self) -> &Evaluation {
        &self.eval
    }
    /// Classes reported per image.
    pub fn top(&self) -> usize {
        self.top
    }
}

/// The paper's test-time classification with one or several nets: a builder. Call
/// [`check`](ClassifyParams::check) for the only way to [`ClassifyValidParams`], and
/// [`ImageClassifier::new`] to load the nets.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyParams(ClassifyValidParams);

impl Default for ClassifyParams {
    fn default() -> Self {
        Self::new()
    }
}

impl ClassifyParams {
    /// The defaults: no weights yet, the checkpoint's preprocessing, f32, the automatic engine
    /// on the CPU, dense evaluation at Q = 384 (the paper's single scale), the top 5 classes,
    /// a 100 MP pixel limit.
    pub fn new() -> Self {
        ClassifyParams(ClassifyValidParams {
            weights: Vec::new(),
            preprocess: Preprocess::Auto,
            precision: Precision::F32,
            engine: Engine::Auto,
            device: DeviceSpec::Cpu,
            eval: Evaluation::default(),
            top: 5,
            max_pixels: DEFAULT_MAX_PIXELS,
        })
    }

    /// Checkpoints with fc layers (fc8 included); several are fused by averaging their
    /// posteriors and must score the same classes. At least one.
    pub fn weights<P: Into<PathBuf>>(mut self, weights: impl IntoIterator<Item = P>) -> Self {
        self.0.weights = weights.into_iter().map(Into::into).collect();
        self
    }

    /// Input convention. Default [`Preprocess::Auto`].
    pub fn preprocess(mut self, preprocess: Preprocess) -> Self {
        self.0.preprocess = preprocess;
        self
    }

    /// Arithmetic of the products. Default [`Precision::F32`].
    pub fn precision(mut self, precision: Precision) -> Self {
        self.0.precision = precision;
        self
    }

    /// Implementation. Default [`Engine::Auto`].
    pub fn engine(mut self, engine: Engine) -> Self {
        self.0.engine = engine;
        self
    }

    /// Device. Default the CPU.
    pub fn device(mut self, device: DeviceSpec) -> Self {
        self.0.device = device;
        self
    }

    /// Test scales Q; posteriors are averaged over them. Default 384; at least one, each at
    /// least the nets' smallest dense input (224 for ImageNet nets; checked on loading).
    pub fn scales(mut self, scales: impl IntoIterator<Item = u32>) -> Self {
        self.0.eval.scales = scales.into_iter().collect();
        self
    }

    /// Dense evaluation. Default true.
    pub fn dense(mut self, dense: bool) -> Self {
        self.0.eval.dense = dense;
        self
    }

    /// Multi-crop evaluation on a G x G grid of crops with their flips per scale (the paper's
    /// G = 5). Default none; 1..=32. With dense evaluation too, the two are averaged.
    pub fn crops(mut self, grid: Option<u32>) -> Self {
        self.0.eval.crops = grid;
        self
    }

    /// Classes reported per image by [`ImageClassifier::classify`]. Default 5.
    pub fn top(mut self, top: usize) -> Self {
        self.0.top = top;
        self
    }

    /// Largest accepted image in pixels. Default 100,000,000; >= 1.
    pub fn max_pixels(mut self, max_pixels: u64) -> Self {
        self.0.max_pixels = max_pixels;
        self
    }

    /// Checks the ranges in the setters' docs, without I/O.
    pub fn check(self) -> Result<ClassifyValidParams> {
        let p = self.0;
        if p.weights.is_empty() {
            return Err(Error::param(Param::Weights, "at least one is needed"));
        }
        if p.eval.scales.is_empty() {
            return Err(Error::param(Param::Scales, "at least one scale is needed"));
        }
        if !p.eval.dense && p.eval.crops.is_none() {
            return Err(Error::param(
                Param::Dense,
                "neither dense nor multi-crop evaluation was asked for",
            ));
        }
        if p.eval.crops.is_some_and(|g| !(1..=32).contains(&g)) {
            return Err(Error::param(
                Param::Crops,
                "the grid side must be in 1..=32",
            ));
        }
        if p.max_pixels == 0 {
            return Err(Error::param(Param::MaxPixels, "must be at least 1"));
        }
        Ok(p)
    }
}

/// Nets loaded to classify images with the paper's test protocols.
#[derive(Debug)]
pub struct ImageClassifier {
    nets: Vec<(Vgg, Normalization)>,
    params: ClassifyValidParams,
    classes: usize,
}

impl ImageClassifier {
    /// Loads the nets and checks the protocol against them (fc8 present, equal class counts,
    /// scales at least the dense head's smallest input).
    pub fn new(params: &ClassifyValidParams) -> Result<Self> {
        let device = params.device.open()?;
        let run = RunOptions {
            engine: params.engine,
            precision: params.precision,
        };
        let nets = params
            .weights
            .iter()
            .map(|w| {
                let net = Vgg::load_with(w, &device, run)?;
                let norm = net.normalization(params.preprocess)?;
                Ok((net, norm))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut c = ImageClassifier {
            nets,
            params: params.clone(),
            classes: 0,
        };
        c.classes = check(&c.class_nets(), &params.eval)?;
        Ok(c)
    }

    fn class_nets(&self) -> Vec<ClassNet<'_>> {
        self.nets
            .iter()
            .map(|(net, norm)| ClassNet { net, norm: *norm })
            .collect()
    }

    /// The number of classes the nets score.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The parameters.
    pub fn params(&self) -> &ClassifyValidParams {
        &self.params
    }

    fn decode(&self) -> DecodeOptions {
        DecodeOptions {
            max_pixels: self.params.max_pixels,
            ..Default::default()
        }
    }

    /// The fused class posteriors of one image (`index` names bytes and pixels in errors). An
    /// image that cannot be decoded, or is too large once rescaled, is an [`Error::Image`].
    pub fn posteriors(&self, image: &Image, index: usize) -> Result<Vec<f32>> {
        let decode = self.decode();
        let img = image.decode(index, &decode)?;
        image_posteriors(
            &self.class_nets(),
            &image.name(index),
            img.into_owned(),
            &self.params.eval,
            &decode,
        )
    }

    /// The top classes of one image, most probable first ([`ClassifyParams::top`] of them).
    pub fn classify(&self, image: &Image, index: usize) -> Result<Vec<Prediction>> {
        Ok(rank(&self.posteriors(image, index)?, self.params.top))
    }

    /// The top-1 and top-5 error over a labelled dataset (see [`evaluate`]); `progress` hears
    /// of every image.
    pub fn evaluate(&self, dataset: &Dataset, progress: &dyn Progress) -> Result<EvalReport> {
        progress.begin("classify", "img", dataset.len() as u64);
        let r = evaluate(
            &self.class_nets(),
            dataset,
            &self.params.eval,
            &self.decode(),
            |_, _| progress.advance(1),
        );
        progress.end();
        r
    }
}
