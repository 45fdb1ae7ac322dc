//! Subcommand arguments and their mapping onto library calls.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use vggfeat::image_io::{DEFAULT_MAX_PIXELS, DecodeOptions};
use vggfeat::model::{self, Engine, Vgg};
use vggfeat::preprocess::Normalization;

use crate::{EXIT_OK, EXIT_SOME_FAILED};

/// Options shared by every command that runs the network.
#[derive(Args, Debug, Clone)]
pub struct NetOpts {
    /// Checkpoint: safetensors (torchvision or timm names) or PyTorch .pth.
    #[arg(long, short = 'w')]
    pub weights: PathBuf,
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Implementation: auto (fast CPU path on the CPU, candle on CUDA), fast, or candle.
    #[arg(long, default_value = "auto")]
    pub engine: String,
    /// Input convention: auto (the checkpoint's metadata, else torchvision), torchvision, caffe.
    #[arg(long, default_value = "auto")]
    pub preprocess: String,
}

impl NetOpts {
    /// Loads the network and resolves the preprocessing convention.
    pub fn load(&self) -> Result<(Vgg, Normalization)> {
        let device = model::parse_device(&self.device)?;
        let engine: Engine = self.engine.parse()?;
        let w = model::weights::load(&self.weights, &candle_core::Device::Cpu)
            .with_context(|| format!("loading weights {}", self.weights.display()))?;
        let norm = match self.preprocess.as_str() {
            "auto" => model::expected_normalization(&w).0,
            s => s.parse()?,
        };
        Ok((Vgg::new(w, &device, engine)?, norm))
    }
}

/// `vggfeat info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Checkpoint file(s).
    #[arg(required = true)]
    pub weights: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn info(a: InfoArgs) -> Result<u8> {
    for (i, p) in a.weights.iter().enumerate() {
        let w = model::weights::load(p, &candle_core::Device::Cpu)?;
        let info = model::describe(&w);
        if a.json {
            println!("{}", serde_json::to_string_pretty(&info)?);
        } else {
            if i > 0 {
                println!();
            }
            println!("{info}");
        }
    }
    Ok(EXIT_OK)
}

/// `vggfeat classify`.
#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub net: NetOpts,
    /// Test scale Q: the smallest image side after isotropic rescaling (>= 224).
    #[arg(long, short = 'q', default_value_t = 384)]
    pub scale: u32,
    /// Number of classes to print per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Largest accepted image, in pixels (decompression-bomb guard).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
}

pub fn classify(a: ClassifyArgs) -> Result<u8> {
    let (net, norm) = a.net.load()?;
    let classes = net
        .weights()
        .num_classes()
        .context("the checkpoint has no fc8 (class scores); classify needs a full network")?;
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

/// `vggfeat weights ...`.
#[derive(Subcommand, Debug)]
pub enum WeightsAction {
    /// Download timm's vgg16.tv_in1k / vgg19.tv_in1k (ImageNet) and print the local path.
    Fetch {
        /// vgg16 or vgg19.
        name: String,
    },
    /// List the networks `fetch` knows, with their download addresses.
    List,
}

pub fn weights(a: WeightsAction) -> Result<u8> {
    match a {
        WeightsAction::Fetch { name } => {
            let p = vggfeat::hub::Pretrained::find(&name)?;
            let path = p.fetch()?;
            println!("{}", path.display());
        }
        WeightsAction::List => {
            for p in vggfeat::hub::PRETRAINED {
                println!(
                    "{:<6} {}  (torchvision: {})",
                    p.name,
                    p.url(),
                    p.torchvision_url
                );
            }
        }
    }
    Ok(EXIT_OK)
}
