//! `vggfeat localise`: flags mapped onto [`vggfeat::localise::LocaliseParams`], the one library
//! call, and the errors printed.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::RunOpts;
use crate::EXIT_OK;
use crate::choice::lib_parser;
use crate::progress::Shown;
use vggfeat::localise::{LocProtocol, LocSource, LocaliseParams, LocaliseValidParams, localise};

/// `vggfeat localise`: the paper's localisation nets on images (Sect. 4.1, App. A).
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  vggfeat localise composites --loc runs/pcr --gt-class --protocol center -o loc/pcr-center\n  vggfeat localise composites --loc runs/pcr --loc runs/scr --protocol dense --scales 160,224 --gt-class -o loc/fused\n  vggfeat localise composites --loc baseline:train --gt-class -o loc/baseline\n  vggfeat localise VOCdevkit/VOC2007 --split test --loc runs/pcr -w classifier.safetensors --protocol dense -o loc/top5\n\nOUT gets boxes.csv (id, rank, class, score, xmin, ymin, xmax, ymax in original-image pixels, VOC's\n1-based inclusive convention), problems.txt (every image or annotation not used, and why),\npictures/ (the first images with ground truth in green, predictions in red) and, for a devkit,\nmetrics.json and table.md: the ground-truth-class localisation error, and with a classifier the\ntop-1 and top-5 errors (a box is right when its IoU with a ground-truth box of its class is above\n0.5)."
)]
pub struct LocaliseArgs {
    /// A VOC-format devkit (Annotations/, ImageSets/Main/, JPEGImages/), or images: a folder,
    /// list file, table or tar shard (then a classifier is needed).
    pub input: PathBuf,
    /// A localisation net: a `train --task localise` run folder (its best epoch), its
    /// checkpoint, or baseline:SPLIT (the mean box of that image set, centred). Repeatable:
    /// the nets' boxes are pooled before merging.
    #[arg(long = "loc", required = true, value_parser = lib_parser::<LocSource>)]
    pub loc: Vec<LocSource>,
    /// A classification net ranking the classes (top-1 / top-5) and rating the boxes.
    /// Repeatable (posteriors averaged).
    #[arg(short = 'w', long = "weights")]
    pub weights: Vec<PathBuf>,
    /// center (protocol 1: the central crop) or dense (protocol 2: every window, merged).
    #[arg(long, default_value = "center", value_parser = lib_parser::<LocProtocol>)]
    pub protocol: LocProtocol,
    /// Test scales, comma-separated. [default: each localiser's own]
    #[arg(long, value_delimiter = ',')]
    pub scales: Vec<u32>,
    /// Boxes of the ground-truth classes (no classifier needed).
    #[arg(long)]
    pub gt_class: bool,
    /// The devkit's image set.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Boxes whose IoU is at least this merge.
    #[arg(long, default_value_t = 0.5)]
    pub merge_iou: f64,
    /// Dense protocol: without the mirror image.
    #[arg(long)]
    pub no_flip: bool,
    /// Images drawn in OUT/pictures.
    #[arg(long, default_value_t = 8)]
    pub pictures: usize,
    /// Output folder.
    #[arg(short, long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunOpts,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl TryFrom<&LocaliseArgs> for LocaliseValidParams {
    type Error = vggfeat::Error;
    fn try_from(a: &LocaliseArgs) -> vggfeat::Result<Self> {
        LocaliseParams::new()
            .input(&a.input)
            .out(&a.out)
            .localisers(a.loc.clone())
            .classifiers(a.weights.clone())
            .protocol(a.protocol)
            .scales(a.scales.clone())
            .gt_class(a.gt_class)
            .voc_split(&a.split)
            .merge_iou(a.merge_iou)
            .flip(!a.no_flip)
            .pictures(a.pictures)
            .device(a.run.device)
            .engine(a.run.engine)
            .precision(a.run.precision)
            .check()
    }
}

/// Runs `vggfeat localise`; returns the exit code (0).
pub fn run(a: LocaliseArgs) -> Result<u8> {
    let params = LocaliseValidParams::try_from(&a)?;
    let progress = Shown::visible(!a.no_progress);
    let r = localise(&params, &progress)?;
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1} %", 100.0 * v));
    match &r.localisation_error {
        Some(e) => println!(
            "{} images ({} image-class pairs) in {:.1} s: localisation error gt-class {}, top-1 {}, \
             top-5 {}",
            r.images,
            r.pairs,
            r.seconds,
            pct(e.gt_class),
            pct(e.top1),
            pct(e.top5)
        ),
        None => println!("{} images in {:.1} s", r.images, r.seconds),
    }
    println!("boxes: {}", params.out().join("boxes.csv").display());
    if !r.problems.is_empty() {
        eprintln!(
            "not used or odd: {} (every one in {}):",
            r.problems.len(),
            params.out().join("problems.txt").display()
        );
        for p in r.problems.iter().take(10) {
            eprintln!("  {p}");
        }
    }
    Ok(EXIT_OK)
}
