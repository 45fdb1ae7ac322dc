//! `vggfeat classify`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::RunOpts;
use crate::{EXIT_OK, EXIT_SOME_FAILED};
use vggfeat::classify::DEFAULT_SCALE;
use vggfeat::image_io::{DEFAULT_MAX_PIXELS, DecodeOptions};

/// Classify images with the paper's dense protocol.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  vggfeat classify -w vgg16.safetensors cat.jpg dog.png\n  vggfeat classify --scale 256 --top 3 -w runs/a8/best.safetensors img/*.jpg"
)]
pub struct ClassifyArgs {
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Checkpoint with fc layers (safetensors or .pth).
    #[arg(long, short = 'w')]
    pub weights: PathBuf,
    #[command(flatten)]
    pub run: RunOpts,
    /// Test scale Q: the smallest image side after isotropic rescaling (>= 224 for ImageNet nets).
    #[arg(long, short = 's', default_value_t = DEFAULT_SCALE)]
    pub scale: u32,
    /// Number of classes to print per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Largest accepted image, in pixels (decompression-bomb guard).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: u64,
}

/// Classifies each image; a bad image is reported and the others go on.
pub fn run(a: ClassifyArgs) -> Result<u8> {
    let (net, norm) = a.run.load(&a.weights)?;
    let classes = net
        .weights()
        .num_classes()
        .context("the checkpoint has no fc8 (class scores); classify needs a full network")?;
    vggfeat::classify::check_scale(&net, a.scale)?;
    let names = classes == vggfeat::imagenet::NUM_CLASSES;
    let decode = DecodeOptions {
        max_pixels: a.max_pixels,
        ..Default::default()
    };
    let mut failed = Vec::new();
    for p in &a.images {
        match vggfeat::classify::classify_file(&net, p, a.scale, norm, a.top, &decode) {
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
    if failed.is_empty() {
        Ok(EXIT_OK)
    } else {
        eprintln!("{} of {} images failed:", failed.len(), a.images.len());
        for f in &failed {
            eprintln!("  {f}");
        }
        Ok(EXIT_SOME_FAILED)
    }
}
