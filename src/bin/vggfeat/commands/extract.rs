//! `vggfeat extract`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::RunOpts;
use crate::choice::lib_parser;
use crate::progress::{Mode, Shown};
use crate::{EXIT_OK, EXIT_SOME_FAILED};
use vggfeat::image_io::DEFAULT_MAX_PIXELS;
use vggfeat::{
    ExtractParams, ExtractValidParams, Extractor, ExtractorParams, ExtractorValidParams, LayerName,
    ShardSpec,
};

/// Extract dense multi-scale descriptors into a store.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  vggfeat extract 101_ObjectCategories -w vgg16.safetensors -o stores/c101\n  vggfeat extract VOCdevkit/VOC2007 --split test --scales 256,384,512,640,768 -w vgg16.safetensors -w vgg19.safetensors -o stores/voc07-test\n  vggfeat extract images/ --layer pool5 --scales 256 --shard 0/4 -w vgg16_conv.safetensors -o stores/part0\n  vggfeat extract shards/*.tar -w vgg16.safetensors -o stores/laion   # WebDataset shards, streamed\n  vggfeat extract split0.csv --root 101_ObjectCategories -w vgg16.safetensors -o stores/c101-split0\n\nRe-running the same command resumes an interrupted store. Exit code 1: some inputs failed (listed, and recorded in the store)."
)]
pub struct ExtractArgs {
    /// Inputs, one or more: a folder of images (class = first-level sub-folder), a PASCAL VOC
    /// devkit root, a list file (one path per line, optional label after a tab), a CSV/TSV/Parquet
    /// table with a `path` (or `id`) column and optional `label`/`labels` (split files too), or a
    /// WebDataset `.tar` shard (label from `.cls` or `.json`). Ids must differ across inputs.
    #[arg(required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Tables: the folder relative paths (a split file's ids) are resolved against; default the
    /// table's folder.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Checkpoint(s); several store one descriptor set per net (late fusion, the paper's D & E).
    #[arg(long, short = 'w', required = true)]
    pub weights: Vec<PathBuf>,
    /// Output store folder (created; an existing store made with the same parameters is resumed).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Scales Q, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = defaults().scales().to_vec())]
    pub scales: Vec<u32>,
    /// Do not average with the horizontal flip.
    #[arg(long)]
    pub no_flip: bool,
    /// Descriptor layer by its paper name (conv1_1 .. conv5_4, pool1 .. pool5, fc6, fc7);
    /// default fc7, or pool5 for a checkpoint without fc layers.
    #[arg(long, value_parser = lib_parser::<LayerName>)]
    pub layer: Option<LayerName>,
    #[command(flatten)]
    pub run: RunOpts,
    /// Inputs per forward pass at most (an image and its flip count as two).
    #[arg(long, default_value_t = defaults().batch())]
    pub batch: usize,
    /// Images per atomic store chunk (a kill loses at most this many).
    #[arg(long, default_value_t = vggfeat::extract::DEFAULT_CHUNK)]
    pub chunk: usize,
    /// Threads that decode and resize images ahead of the network (they share the cores with
    /// it: more help when images are large and the network fast, e.g. one small scale in bf16).
    #[arg(long, default_value_t = defaults().decode_threads() as u32, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub decode_threads: u32,
    /// VOC image set (ImageSets/Main/<split>.txt), for a devkit input.
    #[arg(long, default_value = "trainval")]
    pub split: String,
    /// Only these classes, comma-separated (a smaller benchmark, or a quick run).
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<String>>,
    /// Only the first K images of each class (sorted order), for quick runs.
    #[arg(long)]
    pub limit_per_class: Option<usize>,
    /// Extract a deterministic 1/N of the inputs and join the parts with `merge`: `--shard i/N`
    /// (0 <= i < N), `auto` (a Slurm job array: index and count from SLURM_ARRAY_*), or `auto/N`
    /// (the index from JOB_COMPLETION_INDEX, a Kubernetes Indexed Job, or from Slurm).
    #[arg(long, value_parser = lib_parser::<ShardSpec>)]
    pub shard: Option<ShardSpec>,
    /// Seconds between progress lines when stderr is not a terminal (a batch job's log).
    #[arg(long, default_value = "30", value_parser = seconds)]
    pub progress_interval: std::time::Duration,
    /// Largest accepted image, in pixels (decompression-bomb guard).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pixels: u64,
    /// Try every input that failed in an earlier run again (by default only those whose file
    /// changed since).
    #[arg(long)]
    pub retry_failed: bool,
    /// No progress (a bar on a terminal, a line every 30 s in a log) and no header line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// A number of seconds >= 0.
fn seconds(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|x| std::time::Duration::try_from_secs_f64(x).ok())
        .ok_or_else(|| format!("`{s}` must be a number of seconds >= 0"))
}

/// The library's defaults, shown in `--help`.
fn defaults() -> ExtractorValidParams {
    ExtractorParams::new()
        .check()
        .expect("the defaults are valid")
}

impl TryFrom<&ExtractArgs> for ExtractorValidParams {
    type Error = vggfeat::Error;
    fn try_from(a: &ExtractArgs) -> vggfeat::Result<Self> {
        ExtractorParams::new()
            .weights(a.weights.clone())
            .layer(a.layer)
            .preprocess(a.run.preprocess)
            .precision(a.run.precision)
            .engine(a.run.engine)
            .device(a.run.device)
            .scales(a.scales.clone())
            .flip(!a.no_flip)
            .batch(a.batch)
            .max_pixels(a.max_pixels)
            .decode_threads(a.decode_threads as usize)
            .check()
    }
}

impl TryFrom<&ExtractArgs> for ExtractValidParams {
    type Error = vggfeat::Error;
    fn try_from(a: &ExtractArgs) -> vggfeat::Result<Self> {
        ExtractParams::new()
            .inputs(a.input.clone())
            .out(&a.out)
            .root(a.root.clone())
            .voc_split(&a.split)
            .classes(a.classes.clone())
            .limit_per_class(a.limit_per_class)
            .shard(a.shard)
            .chunk(a.chunk)
            .retry_failed(a.retry_failed)
            .check()
    }
}

/// Runs the extraction and prints its summary and every failed input.
pub fn run(a: ExtractArgs) -> Result<u8> {
    let nets = ExtractorValidParams::try_from(&a)?;
    let job = ExtractValidParams::try_from(&a)?;
    let extractor = Extractor::new(&nets)?;
    let extraction = extractor.prepare(&job)?;
    if !a.quiet {
        for n in extractor.notes() {
            eprintln!("{n}");
        }
        let ds = extraction.dataset();
        eprintln!(
            "{} images ({} classes) from {}; {} net(s), scales {:?}{}",
            ds.len(),
            ds.classes.len(),
            a.input[0].display(),
            extractor.nets().len(),
            nets.scales(),
            if nets.flip() { ", with flips" } else { "" }
        );
        eprintln!("{}", extractor.runtime());
    }
    let mode = if a.quiet { Mode::Hidden } else { Mode::Auto };
    let s = extraction.run(&Shown::new(mode, a.progress_interval))?;
    let rates = if s.extracted + s.failed.len() > 0 && s.network_seconds > 0.0 {
        format!(
            " ({:.2} images/s end to end, {:.2} images/s in the network)",
            s.images_per_sec(),
            s.network_images_per_sec()
        )
    } else {
        String::new()
    };
    let mut also = Vec::new();
    for (n, what) in [
        (s.changed, "re-extracted because their file changed"),
        (s.retried, "failed before and tried again"),
        (s.removed, "removed from the store: their file is gone"),
        (
            s.relabelled,
            "kept with new labels: their labels changed, their files did not",
        ),
        (
            s.unverified,
            "kept from an older store without file fingerprints",
        ),
    ] {
        if n > 0 {
            also.push(format!("{n} {what}"));
        }
    }
    eprintln!(
        "extracted {} images in {:.1} s{rates}; {} already in the store; {} failed{}",
        s.extracted,
        s.seconds,
        s.already_done,
        s.failed.len(),
        if also.is_empty() {
            String::new()
        } else {
            format!("; {}", also.join("; "))
        }
    );
    if s.failed.is_empty() {
        Ok(EXIT_OK)
    } else {
        eprintln!("failed inputs (recorded in the store):");
        for (id, why) in &s.failed {
            eprintln!("  {id}: {why}");
        }
        Ok(EXIT_SOME_FAILED)
    }
}
