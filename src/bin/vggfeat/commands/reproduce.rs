//! `vggfeat reproduce`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::EXIT_OK;
use crate::choice::lib_parser;
use crate::progress::Shown;
use vggfeat::{Benchmark, DeviceSpec, LayerName, ReproduceParams, ReproduceValidParams};

/// The paper's transfer table.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  vggfeat reproduce --caltech101 101_ObjectCategories --weights-d vgg16.safetensors --weights-e vgg19.safetensors\n  vggfeat reproduce --voc2007 VOCdevkit/VOC2007 --weights-d vgg16.safetensors -o results/t11\n  vggfeat reproduce --caltech101 101_ObjectCategories --weights-d vgg16_conv.safetensors --layer pool5 --scales 224 --skip-checks   # quick, not comparable"
)]
pub struct ReproduceArgs {
    /// PASCAL VOC 2007 devkit year folder (VOCdevkit/VOC2007).
    #[arg(long)]
    pub voc2007: Option<PathBuf>,
    /// PASCAL VOC 2012 devkit year folder (VOCdevkit/VOC2012).
    #[arg(long)]
    pub voc2012: Option<PathBuf>,
    /// Caltech-101 folder (101_ObjectCategories).
    #[arg(long)]
    pub caltech101: Option<PathBuf>,
    /// Caltech-256 folder (256_ObjectCategories).
    #[arg(long)]
    pub caltech256: Option<PathBuf>,
    /// Weights of net D (VGG-16).
    #[arg(long)]
    pub weights_d: Option<PathBuf>,
    /// Weights of net E (VGG-19).
    #[arg(long)]
    pub weights_e: Option<PathBuf>,
    /// Descriptor layer (default fc7, or pool5 for checkpoints without fc layers).
    #[arg(long, value_parser = lib_parser::<LayerName>)]
    pub layer: Option<LayerName>,
    /// Override the paper's scales (quick runs; the table then says so).
    #[arg(long, value_delimiter = ',')]
    pub scales: Option<Vec<u32>>,
    /// Working folder for the feature stores (resumable).
    #[arg(long, default_value = "reproduce-work")]
    pub work: PathBuf,
    /// Results folder.
    #[arg(long, short = 'o', default_value = "results/table11")]
    pub out: PathBuf,
    /// Skip the dataset folder checks (partial copies; not comparable with the paper).
    #[arg(long)]
    pub skip_checks: bool,
    /// Seed of the splits and the C selection's folds.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value_t = DeviceSpec::default(), value_parser = lib_parser::<DeviceSpec>)]
    pub device: DeviceSpec,
    /// No progress.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl TryFrom<&ReproduceArgs> for ReproduceValidParams {
    type Error = vggfeat::Error;
    fn try_from(a: &ReproduceArgs) -> vggfeat::Result<Self> {
        let mut p = ReproduceParams::new()
            .weights_d(a.weights_d.clone())
            .weights_e(a.weights_e.clone())
            .layer(a.layer)
            .device(a.device)
            .scales(a.scales.clone())
            .work(&a.work)
            .out(&a.out)
            .skip_checks(a.skip_checks)
            .seed(a.seed);
        for (b, d) in [
            (Benchmark::Voc2007, &a.voc2007),
            (Benchmark::Voc2012, &a.voc2012),
            (Benchmark::Caltech101, &a.caltech101),
            (Benchmark::Caltech256, &a.caltech256),
        ] {
            if let Some(d) = d {
                p = p.benchmark(b, d);
            }
        }
        p.check()
    }
}

/// Runs every benchmark given and prints the table.
pub fn run(a: ReproduceArgs) -> Result<u8> {
    let p = ReproduceValidParams::try_from(&a)?;
    let t = vggfeat::reproduce(&p, &Shown::visible(!a.quiet))?;
    println!("{}", t.markdown);
    for s in &t.skipped {
        eprintln!("skipped {s}");
    }
    Ok(EXIT_OK)
}
