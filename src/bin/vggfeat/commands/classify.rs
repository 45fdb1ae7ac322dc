//! `vggfeat classify`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::RunOpts;
use crate::progress::Shown;
use crate::{EXIT_OK, EXIT_SOME_FAILED};
use vggfeat::classify::{DEFAULT_SCALE, Evaluation};
use vggfeat::image_io::DEFAULT_MAX_PIXELS;
use vggfeat::{ClassifyParams, ClassifyValidParams, Image, ImageClassifier};

/// Classify images with the paper's test protocols: dense, multi-crop, or both; one or several
/// scales; one net or several fused.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  vggfeat classify -w vgg16.safetensors cat.jpg dog.png\n  vggfeat classify --scale 256,384,512 --dense --crops 5 -w vgg16.safetensors cat.jpg   # the paper's 150 crops + dense\n  vggfeat classify -w vgg16.safetensors -w vgg19.safetensors cat.jpg                  # fusion: posteriors averaged\n  vggfeat classify --eval val_list.txt -w runs/a8/best.safetensors                    # top-1 / top-5 error\n\nWithout --dense or --crops the evaluation is dense. --crops G takes the paper's grid of G x G\ncrops (224 x 224 for ImageNet nets) with their flips at each scale (G = 5: 50 per scale).\nDense and multi-crop together average the two methods' posteriors; several -w average the\nnets' posteriors. --eval labels are class indices, or ImageNet synset ids or names for\n1000-class nets."
)]
pub struct ClassifyArgs {
    /// Image files.
    #[arg(required_unless_present = "eval", conflicts_with = "eval")]
    pub images: Vec<PathBuf>,
    /// Checkpoint(s) with fc layers (safetensors or .pth); several are fused.
    #[arg(long, short = 'w', required = true)]
    pub weights: Vec<PathBuf>,
    #[command(flatten)]
    pub run: RunOpts,
    /// Test scale(s) Q, comma-separated: the smallest image side after isotropic rescaling
    /// (>= 224 for ImageNet nets); posteriors are averaged over scales.
    #[arg(long, short = 's', value_delimiter = ',', default_values_t = vec![DEFAULT_SCALE])]
    pub scale: Vec<u32>,
    /// Dense evaluation (the default when --crops is not given).
    #[arg(long)]
    pub dense: bool,
    /// Multi-crop evaluation on a G x G grid of crops with their flips, per scale (paper: 5).
    #[arg(long, value_name = "G", value_parser = clap::value_parser!(u32).range(1..=32))]
    pub crops: Option<u32>,
    /// Evaluate on a labelled folder or list file and print the top-1 / top-5 error.
    #[arg(long, value_name = "DATASET")]
    pub eval: Option<PathBuf>,
    /// Number of classes to print per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Largest accepted image, in pixels (decompression-bomb guard).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: u64,
}

impl TryFrom<&ClassifyArgs> for ClassifyValidParams {
    type Error = vggfeat::Error;
    fn try_from(a: &ClassifyArgs) -> vggfeat::Result<Self> {
        ClassifyParams::new()
            .weights(a.weights.clone())
            .preprocess(a.run.preprocess)
            .precision(a.run.precision)
            .engine(a.run.engine)
            .device(a.run.device)
            .scales(a.scale.clone())
            .dense(a.dense || a.crops.is_none())
            .crops(a.crops)
            .top(a.top)
            .max_pixels(a.max_pixels)
            .check()
    }
}

/// Classifies each image (a bad image is reported and the others go on), or evaluates a dataset.
pub fn run(a: ClassifyArgs) -> Result<u8> {
    let params = ClassifyValidParams::try_from(&a)?;
    let classifier = ImageClassifier::new(&params)?;
    let eval = params.evaluation();
    let nets = params.weights().len();
    if let Some(dir) = &a.eval {
        let ds = vggfeat::Dataset::open(dir)?;
        // A bar on a terminal only: an evaluation is short next to an extraction.
        let r = classifier.evaluate(&ds, &Shown::visible(std::io::stderr().is_terminal()))?;
        println!(
            "top-1 error {:.2} %, top-5 error {:.2} % over {} images ({})",
            100.0 * r.top1_error,
            100.0 * r.top5_error,
            r.images,
            describe(eval, nets)
        );
        return Ok(report_failed(
            &r.failed.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
            ds.len(),
        ));
    }
    let names = classifier.classes() == vggfeat::imagenet::NUM_CLASSES;
    let mut failed = Vec::new();
    for (i, p) in a.images.iter().enumerate() {
        match classifier.classify(&Image::Path(p.clone()), i) {
            Ok(preds) => {
                println!("{}", p.display());
                for (rank, pr) in preds.iter().enumerate() {
                    let name = if names {
                        vggfeat::imagenet::short_name(pr.class).unwrap_or("?")
                    } else {
                        ""
                    };
                    println!(
                        "  {}. {:>5.1}%  class {:>4}  {}",
                        rank + 1,
                        pr.prob * 100.0,
                        pr.class,
                        name
                    );
                }
            }
            Err(e @ vggfeat::Error::Image { .. }) => {
                eprintln!("skipped: {e}");
                failed.push(e.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report_failed(&failed, a.images.len()))
}

/// `dense + 5x5 crops at Q 256,384, 2 nets fused`.
fn describe(eval: &Evaluation, nets: usize) -> String {
    let mut m = Vec::new();
    if eval.dense {
        m.push("dense".to_string());
    }
    if let Some(g) = eval.crops {
        m.push(format!("{g}x{g} crops with flips"));
    }
    let q: Vec<String> = eval.scales.iter().map(u32::to_string).collect();
    let fused = if nets > 1 {
        format!(", {nets} nets fused")
    } else {
        String::new()
    };
    format!("{} at Q {}{fused}", m.join(" + "), q.join(","))
}

/// Lists the failed inputs on stderr; the exit code.
fn report_failed(failed: &[String], total: usize) -> u8 {
    if failed.is_empty() {
        return EXIT_OK;
    }
    eprintln!("{} of {total} images failed:", failed.len());
    for f in failed {
        eprintln!("  {f}");
    }
    EXIT_SOME_FAILED
}
