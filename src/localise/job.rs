//! `vggfeat localise`: localisation nets (and optionally classification nets) applied to a
//! devkit's images or to unlabelled images, under the paper's protocols (Sect. 4.1, App. A):
//!
//! - **centre** (protocol 1): each localiser's boxes on the central crop at each scale;
//! - **dense** (protocol 2): each localiser applied over the whole image at each scale (and its
//!   mirror image), a box per window ([`super::predict`]).
//!
//! For each class considered, the boxes of every localiser, scale, window and flip are pooled
//! (the paper's union) and merged by [`super::greedy_merge`]; the class's box is the merged box of
//! highest score. Boxes are rated by the class's posterior from the classifiers (the dense
//! protocol of [`crate::classify`], averaged over the classifiers and scales) times their count,
//! or, without classifiers, by their count. The classes considered are the classifiers' top five
//! (for the top-1 / top-5 error) and, for a labelled devkit, each ground-truth class of the image
//! (for the ground-truth-class error, which needs no classifier).
//!
//! A localiser is a `vggfeat train --task localise` checkpoint or run folder (its best epoch), or
//! `baseline:SPLIT`: the mean box of that image set's objects (each relative to its image's size)
//! centred in the image, the reference a localiser must beat.
//!
//! Outputs in the `out` folder: `boxes.csv` (`id, rank, class, score, xmin, ymin, xmax, ymax`:
//! the boxes of the classes considered in rank order, the classifiers' ranking or the
//! ground-truth classes; coordinates in original-image pixels in VOC's 1-based inclusive
//! convention, as the annotations), for a labelled devkit `metrics.json` and `table.md`,
//! `problems.txt` (every image or annotation not used, and why), and `pictures/` (the first
//! images with their ground truth in green and predicted boxes in red, as SVG).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use image::RgbImage;
use rayon::prelude::*;

use super::bbox::Rect;
use super::head::Regression;
use super::merge::{ScoredBox, greedy_merge};
use super::metric::{Guess, Truth, gt_class_error, localisation_error};
use super::predict::{WindowBoxes, centre_crop_boxes, dense_boxes, window_side};
use crate::classify::{ClassNet, Evaluation, check_scale, posteriors};
use crate::dataset::annotation::{Annotation, image_path, read_devkit};
use crate::dataset::{Dataset, Item};
use crate::error::{Error, Param, Result};
use crate::image_io::{DecodeOptions, load_item};
use crate::model::checkpoint::{expected_normalization, meta};
use crate::model::{DeviceSpec, Engine, Precision, RunOptions, Vgg, VggWeights};
use crate::preprocess::Normalization;
use crate::report::html::escape;
use crate::util::{Progress, write_atomic, write_json};

/// How many classes the classifiers' ranking contributes (top-5 error).
const TOP: usize = 5;

/// Where boxes come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum LocSource {
    /// A localisation checkpoint, or a run folder (its `best.safetensors`).
    Net(PathBuf),
    /// The mean box of a devkit image set's objects, centred.
    Baseline(String),
}

impl FromStr for LocSource {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.strip_prefix("baseline:") {
            Some("") => Err(Error::param(
                Param::Localisers,
                "baseline: needs an image set, e.g. baseline:train",
            )),
            Some(set) => Ok(LocSource::Baseline(set.to_string())),
            None => Ok(LocSource::Net(PathBuf::from(s))),
        }
    }
}

impl std::fmt::Display for LocSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocSource::Net(p) => write!(f, "{}", p.display()),
            LocSource::Baseline(s) => write!(f, "baseline:{s}"),
        }
    }
}

/// The paper's two localisation test protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LocProtocol {
    /// Protocol 1: the central crop only.
    Centre,
    /// Protocol 2: dense application over the whole image.
    Dense,
}

impl FromStr for LocProtocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "centre" | "center" => Ok(LocProtocol::Centre),
            "dense" => Ok(LocProtocol::Dense),
            _ => Err(Error::param(
                Param::Protocol,
                format!("`{s}`: expected center or dense"),
            )),
        }
    }
}

impl std::fmt::Display for LocProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LocProtocol::Centre => "center",
            LocProtocol::Dense => "dense",
        })
    }
}

/// Checked parameters of a localisation job; from [`LocaliseParams::check`] only.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LocaliseValidParams {
    input: PathBuf,
    out: PathBuf,
    localisers: Vec<LocSource>,
    classifiers: Vec<PathBuf>,
    protocol: LocProtocol,
    scales: Vec<u32>,
    gt_class: bool,
    voc_split: String,
    merge_iou: f64,
    flip: bool,
    pictures: usize,
    device: DeviceSpec,
    engine: Engine,
    precision: Precision,
}

impl LocaliseValidParams {
    /// The output folder.
    pub fn out(&self) -> &Path {
        &self.out
    }
}

/// Parameters of a localisation job (a builder; see the module docs for what it computes).
#[derive(Debug, Clone, PartialEq)]
pub struct LocaliseParams {
    p: LocaliseValidParams,
}

impl Default for LocaliseParams {
    fn default() -> Self {
        Self::new()
    }
}

impl LocaliseParams {
    /// Defaults: protocol centre, each localiser's own scale, merge IoU 0.5, flips, devkit set
    /// `test`, 8 pictures, the CPU.
    pub fn new() -> Self {
        LocaliseParams {
            p: LocaliseValidParams {
                input: PathBuf::new(),
                out: PathBuf::new(),
                localisers: Vec::new(),
                classifiers: Vec::new(),
                protocol: LocProtocol::Centre,
                scales: Vec::new(),
                gt_class: false,
                voc_split: "test".into(),
                merge_iou: 0.5,
                flip: true,
                pictures: 8,
                device: DeviceSpec::Cpu,
                engine: Engine::Auto,
                precision: Precision::F32,
            },
        }
    }
    /// The images: a VOC-format devkit (labelled: `Annotations/`), or any input
    /// [`Dataset::open`] reads (unlabelled). Required.
    pub fn input(mut self, v: impl Into<PathBuf>) -> Self {
        self.p.input = v.into();
        self
    }
    /// The output folder (created). Required.
    pub fn out(mut self, v: impl Into<PathBuf>) -> Self {
        self.p.out = v.into();
        self
    }
    /// The localisers (at least one): checkpoints, run folders or `baseline:SPLIT`.
    pub fn localisers(mut self, v: Vec<LocSource>) -> Self {
        self.p.localisers = v;
        self
    }
    /// Classification nets whose posteriors rank the classes (top-1 / top-5) and rate the
    /// boxes. Default none.
    pub fn classifiers(mut self, v: Vec<PathBuf>) -> Self {
        self.p.classifiers = v;
        self
    }
    /// Protocol 1 (centre) or 2 (dense). Default centre.
    pub fn protocol(mut self, v: LocProtocol) -> Self {
        self.p.protocol = v;
        self
    }
    /// Test scales (smallest image side). Default: each localiser's own (its run's test scale,
    /// else 8/7 of its crop, the paper's 256 for 224).
    pub fn scales(mut self, v: Vec<u32>) -> Self {
        self.p.scales = v;
        self
    }
    /// Write the ground-truth classes' boxes (protocol 1's variant) rather than the
    /// classifiers' guesses; needs a labelled devkit, no classifier. Default false.
    pub fn gt_class(mut self, v: bool) -> Self {
        self.p.gt_class = v;
        self
    }
    /// The devkit's image set. Default `test`.
    pub fn voc_split(mut self, v: impl Into<String>) -> Self {
        self.p.voc_split = v.into();
        self
    }
    /// The overlap from which boxes merge; in (0, 1]. Default 0.5.
    pub fn merge_iou(mut self, v: f64) -> Self {
        self.p.merge_iou = v;
        self
    }
    /// Dense protocol: also apply the nets to the mirror image. Default true.
    pub fn flip(mut self, v: bool) -> Self {
        self.p.flip = v;
        self
    }
    /// How many images get a picture. Default 8.
    pub fn pictures(mut self, v: usize) -> Self {
        self.p.pictures = v;
        self
    }
    /// Device. Default the CPU.
    pub fn device(mut self, v: DeviceSpec) -> Self {
        self.p.device = v;
        self
    }
    /// Engine. Default auto.
    pub fn engine(mut self, v: Engine) -> Self {
        self.p.engine = v;
        self
    }
    /// Arithmetic. Default f32.
    pub fn precision(mut self, v: Precision) -> Self {
        self.p.precision = v;
        self
    }

    /// Checks the parameters without I/O.
    pub fn check(self) -> Result<LocaliseValidParams> {
        let p = &self.p;
        if p.input.as_os_str().is_empty() {
            return Err(Error::param(Param::Inputs, "the images are required"));
        }
        if p.out.as_os_str().is_empty() {
            return Err(Error::param(Param::Out, "the output folder is required"));
        }
        if p.localisers.is_empty() {
            return Err(Error::param(
                Param::Localisers,
                "at least one localiser is required (a checkpoint, a run folder or baseline:SPLIT)",
            ));
        }
        if let Some(s) = p.scales.iter().find(|&&s| s < 32) {
            return Err(Error::param(Param::Scales, format!("{s} is below 32")));
        }
        if !(p.merge_iou > 0.0 && p.merge_iou <= 1.0) {
            return Err(Error::param(
                Param::MergeIou,
                format!("{} must be in (0, 1]", p.merge_iou),
            ));
        }
        if p.gt_class && !p.classifiers.is_empty() {
            return Err(Error::param(
                Param::GtClass,
                "the ground-truth-class variant takes the ground truth's classes; drop the \
                 classifiers, or drop gt_class for their top-1 / top-5",
            ));
        }
        Ok(self.p)
    }
}

/// What a localisation job measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LocalisationError {
    /// Ground-truth-class error (a labelled devkit).
    pub gt_class: Option<f64>,
    /// Top-1 error (with classifiers).
    pub top1: Option<f64>,
    /// Top-5 error (with classifiers).
    pub top5: Option<f64>,
}

/// What a localisation job did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LocaliseReport {
    /// Images localised.
    pub images: usize,
    /// (image, ground-truth class) pairs scored.
    pub pairs: usize,
    /// The errors (a labelled devkit only).
    pub localisation_error: Option<LocalisationError>,
    /// Every image or annotation not used, and why.
    pub problems: Vec<String>,
    /// Seconds spent.
    pub seconds: f64,
}

/// A loaded localiser.
enum Localiser {
    Net {
        vgg: Box<Vgg>,
        norm: Normalization,
        regression: Regression,
        classes: Vec<String>,
        scales: Vec<u32>,
    },
    /// Mean relative box (width, height).
    Baseline(f64, f64),
}

/// A loaded classifier.
struct Classifier {
    vgg: Vgg,
    norm: Normalization,
    classes: Vec<String>,
}

/// The class names of a net's fc8: its `vggfeat.classes` metadata, ImageNet's synset ids for
/// 1000 classes, else `class_<i>`.
fn class_names(w: &VggWeights) -> Result<Vec<String>> {
    if let Some(j) = w.metadata.get(meta::CLASSES) {
        return serde_json::from_str(j).map_err(|e| Error::Data {
            path: w.path.clone(),
            reason: format!("metadata {}: {e}", meta::CLASSES),
        });
    }
    let n = w.num_classes().unwrap_or(0);
    Ok((0..n)
        .map(|i| match (n, crate::imagenet::class(i)) {
            (crate::imagenet::NUM_CLASSES, Some((wnid, _))) => wnid.to_string(),
            _ => format!("class_{i}"),
        })
        .collect())
}

fn run_options(p: &LocaliseValidParams) -> RunOptions {
    RunOptions {
        engine: p.engine,
        precision: p.precision,
    }
}

fn load_localiser(
    src: &LocSource,
    p: &LocaliseValidParams,
    device: &candle_core::Device,
) -> Result<Localiser> {
    let path = match src {
        LocSource::Baseline(set) => {
            if !p.input.join("Annotations").is_dir() {
                return Err(Error::param(
                    Param::Localisers,
                    format!("{src} needs a devkit input with Annotations/"),
                ));
            }
            let (anns, _) = read_devkit(&p.input, set)?;
            let rel: Vec<(f64, f64)> = anns
                .iter()
                .filter_map(|a| a.size.map(|s| (a, s)))
                .flat_map(|(a, (w, h))| {
                    a.objects.iter().map(move |o| {
                        let r = Rect::from_voc(&o.bbox);
                        (r.width() / f64::from(w), r.height() / f64::from(h))
                    })
                })
                .collect();
            if rel.is_empty() {
                return Err(Error::param(
                    Param::Localisers,
                    format!("{src}: the image set has no object with a known image size"),
                ));
            }
            let n = rel.len() as f64;
            let (w, h) = rel.iter().fold((0.0, 0.0), |(a, b), (w, h)| (a + w, b + h));
            return Ok(Localiser::Baseline(w / n, h / n));
        }
        LocSource::Net(path) => path,
    };
    let (file, run_scale) = if path.is_dir() {
        let best = path.join("best.safetensors");
        let file = if best.exists() {
            best
        } else {
            path.join("model.safetensors")
        };
        let record: serde_json::Value = crate::util::read_json(&path.join("params.json"))?;
        let q = record["resolved"]["test_scale"].as_u64().map(|q| q as u32);
        (file, q)
    } else {
        (path.clone(), None)
    };
    let vgg = Vgg::load_with(&file, device, run_options(p))?;
    let w = vgg.weights();
    let regression: Regression = w
        .metadata
        .get(meta::BOX_HEAD)
        .ok_or_else(|| Error::NotVgg {
            path: file.clone(),
            reason: format!(
                "no `{}` metadata: not a localisation net (one trained with the localise task)",
                meta::BOX_HEAD
            ),
        })?
        .parse()
        .map_err(|e: Error| Error::Data {
            path: file.clone(),
            reason: e.to_string(),
        })?;
    let classes = class_names(w)?;
    let width = w.num_classes().unwrap_or(0);
    regression
        .check_width(width, classes.len())
        .map_err(|e| Error::Data {
            path: file.clone(),
            reason: e.to_string(),
        })?;
    let crop = window_side(&vgg)?;
    let scales = if !p.scales.is_empty() {
        p.scales.clone()
    } else {
        vec![run_scale.unwrap_or((crop * 8).div_ceil(7))]
    };
    for &s in &scales {
        if s < crop {
            return Err(Error::param(
                Param::Scales,
                format!("{s} is below {}'s {crop}-pixel window", file.display()),
            ));
        }
    }
    let norm = expected_normalization(w)?.0;
    Ok(Localiser::Net {
        vgg: Box::new(vgg),
        norm,
        regression,
        classes,
        scales,
    })
}

/// One image's candidate boxes for a class, pooled over localisers, scales, windows and flips.
fn pooled_boxes(
    locs: &[Localiser],
    windows: &[Vec<WindowBoxes>],
    img: &RgbImage,
    class: &str,
) -> Vec<Rect> {
    let mut out = Vec::new();
    for (l, wins) in locs.iter().zip(windows) {
        match l {
            Localiser::Baseline(w, h) => {
                let (iw, ih) = (f64::from(img.width()), f64::from(img.height()));
                let (bw, bh) = (w * iw, h * ih);
                out.push(Rect::new(
                    0.5 * (iw - bw),
                    0.5 * (ih - bh),
                    0.5 * (iw + bw),
                    0.5 * (ih + bh),
                ));
            }
            Localiser::Net {
                regression,
                classes,
                ..
            } => {
                let slot = match regression {
                    Regression::Scr => Some(0),
                    Regression::Pcr => classes.iter().position(|c| c == class),
                };
                if let Some(s) = slot {
                    out.extend(wins.iter().map(|w| w.boxes[s]));
                }
            }
        }
    }
    out
}

/// Every localiser's windows on one image (none for a baseline).
fn windows_of(
    locs: &[Localiser],
    img: &RgbImage,
    protocol: LocProtocol,
    flip: bool,
) -> Result<Vec<Vec<WindowBoxes>>> {
    locs.iter()
        .map(|l| match l {
            Localiser::Baseline(..) => Ok(Vec::new()),
            Localiser::Net {
                vgg, norm, scales, ..
            } => {
                let mut all = Vec::new();
                for &s in scales {
                    match protocol {
                        LocProtocol::Centre => all.push(centre_crop_boxes(vgg, img, s, *norm)?),
                        LocProtocol::Dense => all.extend(dense_boxes(vgg, img, s, *norm, flip)?),
                    }
                }
                Ok(all)
            }
        })
        .collect()
}

/// One image's result.
struct Done {
    rows: Vec<(usize, String, f64, Rect)>,
    gt_pairs: Vec<(Option<Rect>, Vec<Rect>)>,
    guesses: Vec<Guess>,
    truths: Vec<Truth>,
    picture: Option<String>,
}

/// Runs the job (see the module docs); `progress` hears of every image.
pub fn localise(p: &LocaliseValidParams, progress: &dyn Progress) -> Result<LocaliseReport> {
    let t0 = std::time::Instant::now();
    std::fs::create_dir_all(&p.out).map_err(|e| Error::io(&p.out, e))?;
    let labelled = p.input.join("Annotations").is_dir();
    // The nets first: a wrong file fails before any image is read.
    let device = p.device.open()?;
    let locs = p
        .localisers
        .iter()
        .map(|l| load_localiser(l, p, &device))
        .collect::<Result<Vec<_>>>()?;
    let classifiers = p
        .classifiers
        .iter()
        .map(|c| {
            let vgg = Vgg::load_with(c, &device, run_options(p))?;
            let norm = expected_normalization(vgg.weights())?.0;
            let classes = class_names(vgg.weights())?;
            Ok(Classifier { vgg, norm, classes })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut problems = Vec::new();
    // (id, image, annotation)
    let item = |id: String, path: PathBuf| Item {
        id,
        path,
        labels: Vec::new(),
        voc_labels: None,
        member: None,
    };
    let images: Vec<(String, Item, Option<Annotation>)> = if labelled {
        let (anns, unread) = read_devkit(&p.input, &p.voc_split)?;
        for (path, why) in unread {
            problems.push(format!("{}: {why}; image not used", path.display()));
        }
        anns.into_iter()
            .map(|a| {
                for q in &a.problems {
                    problems.push(format!("{}: {q}", a.path.display()));
                }
                let path = image_path(&p.input, &a);
                let id = a
                    .path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                (id.clone(), item(id, path), Some(a))
            })
            .collect()
    } else {
        if p.gt_class {
            return Err(Error::param(
                Param::GtClass,
                format!(
                    "{} is not a devkit with Annotations/: there is no ground truth",
                    p.input.display()
                ),
            ));
        }
        let ds = Dataset::open(&p.input)?;
        ds.items
            .into_iter()
            .map(|i| (i.id.clone(), i, None))
            .collect()
    };
    if !labelled && p.classifiers.is_empty() {
        return Err(Error::param(
            Param::Weights,
            "unlabelled images need a classifier to say which classes to localise",
        ));
    }
    // The classifiers' scales: the job's, else every localiser's.
    let class_scales: Vec<u32> = if p.scales.is_empty() {
        locs.iter()
            .filter_map(|l| match l {
                Localiser::Net { scales, .. } => Some(scales.clone()),
                Localiser::Baseline(..) => None,
            })
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    } else {
        p.scales.clone()
    };
    let class_scales = if class_scales.is_empty() {
        vec![256]
    } else {
        class_scales
    };
    for c in &classifiers {
        for &q in &class_scales {
            check_scale(&c.vgg, q)?;
        }
        if c.classes != classifiers[0].classes {
            return Err(Error::param(
                Param::Weights,
                "the classifiers have different classes; their posteriors cannot be averaged",
            ));
        }
    }
    // One index per class name, over every source of names.
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut intern = |n: &str| -> usize {
        if let Some(&i) = index.get(n) {
            return i;
        }
        index.insert(n.to_string(), names.len());
        names.push(n.to_string());
        names.len() - 1
    };
    let truths_of: Vec<Vec<Truth>> = images
        .iter()
        .map(|(_, _, a)| {
            a.iter()
                .flat_map(|a| &a.objects)
                .map(|o| Truth {
                    class: intern(&o.class),
                    rect: Rect::from_voc(&o.bbox),
                })
                .collect()
        })
        .collect();
    if let Some(c) = classifiers.first() {
        for n in &c.classes {
            intern(n);
        }
    }
    // Ground-truth classes a per-class localiser has no box for: their objects count as missed.
    let truth_classes: BTreeSet<usize> = truths_of.iter().flatten().map(|t| t.class).collect();
    for (l, src) in locs.iter().zip(&p.localisers) {
        if let Localiser::Net {
            regression: Regression::Pcr,
            classes,
            ..
        } = l
        {
            for &c in &truth_classes {
                if !classes.contains(&names[c]) {
                    let n = truths_of.iter().flatten().filter(|t| t.class == c).count();
                    problems.push(format!(
                        "{src}: no box for class `{}` ({n} objects); they count as missed unless \
                         another localiser has one",
                        names[c]
                    ));
                }
            }
        }
    }
    // The classifiers' posteriors: dense, averaged over the scales and the nets (classify's).
    let class_nets: Vec<ClassNet<'_>> = classifiers
        .iter()
        .map(|c| ClassNet {
            net: &c.vgg,
            norm: c.norm,
        })
        .collect();
    let class_eval = Evaluation {
        scales: class_scales,
        dense: true,
        crops: None,
    };
    let decode = DecodeOptions::default();
    progress.begin("localise", "images", images.len() as u64);
    let results: Vec<std::result::Result<Done, String>> = images
        .par_iter()
        .zip(&truths_of)
        .enumerate()
        .map(|(n, ((_, item, _), truths))| {
            let r = (|| -> Result<Done> {
                let img = load_item(item, &decode)?;
                let windows = windows_of(&locs, &img, p.protocol, p.flip)?;
                // The classifiers' ranking of classes.
                let probs = if class_nets.is_empty() {
                    None
                } else {
                    Some(posteriors(&class_nets, &img, &class_eval)?)
                };
                // A class's boxes share one rating, so its merge does not depend on it: each
                // class is merged once (votes of 1), its best group rated `score x members`.
                let mut merged: HashMap<String, Option<(usize, Rect)>> = HashMap::new();
                let mut best_box = |class: &str, score: f64| -> Option<(f64, Rect)> {
                    let m = merged.entry(class.to_string()).or_insert_with(|| {
                        let boxes: Vec<ScoredBox> = pooled_boxes(&locs, &windows, &img, class)
                            .into_iter()
                            .map(|rect| ScoredBox { rect, score: 1.0 })
                            .collect();
                        greedy_merge(&boxes, p.merge_iou)
                            .first()
                            .map(|m| (m.members, m.rect))
                    });
                    m.map(|(n, rect)| (score * n as f64, rect))
                };
                let mut rows = Vec::new();
                let mut guesses = Vec::new();
                if let (Some(probs), Some(c)) = (&probs, classifiers.first()) {
                    let ranking = crate::metrics::ranking(probs);
                    for (rank, &k) in ranking.iter().take(TOP).enumerate() {
                        let name = &c.classes[k];
                        if let Some((score, rect)) = best_box(name, f64::from(probs[k])) {
                            guesses.push(Guess {
                                class: index[name.as_str()],
                                rect,
                            });
                            if !p.gt_class {
                                rows.push((rank + 1, name.clone(), score, rect));
                            }
                        }
                    }
                }
                let mut gt_pairs = Vec::new();
                let gt: BTreeSet<usize> = truths.iter().map(|t| t.class).collect();
                for (rank, c) in gt.into_iter().enumerate() {
                    let name = &names[c];
                    let b = best_box(name, 1.0);
                    if p.gt_class
                        && let Some((score, rect)) = b
                    {
                        rows.push((rank + 1, name.clone(), score, rect));
                    }
                    let mine = truths.iter().filter(|t| t.class == c).map(|t| t.rect);
                    gt_pairs.push((b.map(|b| b.1), mine.collect()));
                }
                let picture = (n < p.pictures)
                    .then(|| picture_svg(&img, truths, &names, &rows))
                    .transpose()?;
                Ok(Done {
                    rows,
                    gt_pairs,
                    guesses,
                    truths: truths.clone(),
                    picture,
                })
            })();
            progress.advance(1);
            r.map_err(|e| format!("{}: {e}; image not used", item.path.display()))
        })
        .collect();
    progress.end();
    // Outputs.
    let mut csv = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| Error::Internal(format!("boxes.csv: {e}"));
    csv.write_record([
        "id", "rank", "class", "score", "xmin", "ymin", "xmax", "ymax",
    ])
    .map_err(csv_err)?;
    let pictures = p.out.join("pictures");
    let (mut gt_pairs, mut scored, mut used) = (Vec::new(), Vec::new(), 0);
    for ((id, _, _), r) in images.iter().zip(results) {
        let d = match r {
            Ok(d) => d,
            Err(why) => {
                progress.note(&why);
                problems.push(why);
                continue;
            }
        };
        used += 1;
        for (rank, class, score, r) in &d.rows {
            csv.write_record([
                id.clone(),
                rank.to_string(),
                class.clone(),
                format!("{score:.6}"),
                format!("{:.2}", r.x1 + 1.0),
                format!("{:.2}", r.y1 + 1.0),
                format!("{:.2}", r.x2),
                format!("{:.2}", r.y2),
            ])
            .map_err(csv_err)?;
        }
        if let Some(svg) = d.picture {
            std::fs::create_dir_all(&pictures).map_err(|e| Error::io(&pictures, e))?;
            let name: String = id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            write_atomic(&pictures.join(format!("{name}.svg")), svg.as_bytes())?;
        }
        gt_pairs.extend(d.gt_pairs);
        if !d.truths.is_empty() {
            scored.push((d.guesses, d.truths));
        }
    }
    let bytes = csv
        .into_inner()
        .map_err(|e| Error::Internal(format!("boxes.csv: {e}")))?;
    write_atomic(&p.out.join("boxes.csv"), &bytes)?;
    let mut text = problems.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    write_atomic(&p.out.join("problems.txt"), text.as_bytes())?;
    let error = if labelled && !gt_pairs.is_empty() {
        let (top1, top5) = if classifiers.is_empty() {
            (None, None)
        } else {
            (
                Some(localisation_error(&scored, 1)?),
                Some(localisation_error(&scored, TOP)?),
            )
        };
        Some(LocalisationError {
            gt_class: Some(gt_class_error(&gt_pairs)?),
            top1,
            top5,
        })
    } else {
        None
    };
    let report = LocaliseReport {
        images: used,
        pairs: gt_pairs.len(),
        localisation_error: error,
        problems,
        seconds: t0.elapsed().as_secs_f64(),
    };
    if let Some(e) = &report.localisation_error {
        write_json(
            &p.out.join("metrics.json"),
            &serde_json::json!({
                "localisation_error": e,
                "images": report.images,
                "pairs": report.pairs,
                "unused": report.problems.len(),
                "params": p,
                "seconds": report.seconds,
            }),
        )?;
        write_atomic(&p.out.join("table.md"), table_md(p, &report, e).as_bytes())?;
    }
    Ok(report)
}

fn table_md(p: &LocaliseValidParams, r: &LocaliseReport, e: &LocalisationError) -> String {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}", 100.0 * v));
    let locs: Vec<String> = p.localisers.iter().map(|l| l.to_string()).collect();
    let scales = if p.scales.is_empty() {
        "each localiser's".to_string()
    } else {
        p.scales
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "| protocol | scales | localisers | images | gt-class error (%) | top-1 error (%) | top-5 error (%) |\n\
         | --- | --- | --- | --: | --: | --: | --: |\n\
         | {} | {scales} | {} | {} | {} | {} | {} |\n",
        p.protocol,
        locs.join(" + "),
        r.images,
        f(e.gt_class),
        f(e.top1),
        f(e.top5)
    )
}

/// The image with its ground truth (green) and the predicted boxes (red, labelled with class
/// and score), as a self-contained SVG (the image as a `data:` URI). All text is escaped.
fn picture_svg(
    img: &RgbImage,
    truths: &[Truth],
    names: &[String],
    rows: &[(usize, String, f64, Rect)],
) -> Result<String> {
    let mut jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 85)
        .encode_image(img)
        .map_err(|e| Error::Internal(format!("picture: {e}")))?;
    let (w, h) = (img.width(), img.height());
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\">\n<image width=\"{w}\" height=\"{h}\" \
         href=\"data:image/jpeg;base64,{}\"/>\n",
        base64::engine::general_purpose::STANDARD.encode(&jpg)
    );
    let rect = |r: &Rect, colour: &str, dash: &str| {
        format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" \
             stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\n",
            r.x1,
            r.y1,
            r.width(),
            r.height()
        )
    };
    for t in truths {
        s.push_str(&rect(&t.rect, "#00c000", ""));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#00c000\" font-size=\"12\" \
             font-family=\"sans-serif\">{}</text>\n",
            t.rect.x1 + 2.0,
            t.rect.y2 - 3.0,
            escape(&names[t.class])
        ));
    }
    for (rank, class, score, r) in rows {
        let dash = if *rank == 1 {
            ""
        } else {
            " stroke-dasharray=\"4 3\""
        };
        s.push_str(&rect(r, "#e00000", dash));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#e00000\" font-size=\"12\" \
             font-family=\"sans-serif\">{rank}. {} {score:.2}</text>\n",
            r.x1 + 2.0,
            r.y1 + 13.0,
            escape(class)
        ));
    }
    s.push_str("</svg>\n");
    Ok(s)
}
