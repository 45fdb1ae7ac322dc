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

/// `vggfeat extract`.
#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// A folder of images (class = first-level sub-folder), a PASCAL VOC devkit root, or a list
    /// file (one path per line, optional label after a tab).
    pub input: PathBuf,
    /// Checkpoint(s); several store one descriptor set per net (late fusion, the paper's D & E).
    #[arg(long, short = 'w', required = true)]
    pub weights: Vec<PathBuf>,
    /// Output store folder (created; an existing store made with the same parameters is resumed).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Scales Q, comma-separated.
    #[arg(long, default_value = "256,384,512", value_delimiter = ',')]
    pub scales: Vec<u32>,
    /// Do not average with the horizontal flip.
    #[arg(long)]
    pub no_flip: bool,
    /// Descriptor layer by its paper name (conv1_1 .. conv5_4, pool1 .. pool5, fc6, fc7);
    /// default fc7, or pool5 for a checkpoint without fc layers.
    #[arg(long)]
    pub layer: Option<String>,
    /// Input convention: auto (the checkpoint's metadata, else torchvision), torchvision, caffe.
    #[arg(long, default_value = "auto")]
    pub preprocess: String,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Implementation: auto, fast or candle.
    #[arg(long, default_value = "auto")]
    pub engine: String,
    /// Inputs per forward pass at most (an image and its flip count as two).
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Images per atomic store chunk (a kill loses at most this many).
    #[arg(long, default_value_t = 32)]
    pub chunk: usize,
    /// VOC image set (ImageSets/Main/<split>.txt), for a devkit input.
    #[arg(long, default_value = "trainval")]
    pub split: String,
    /// Only the first K images of each class (sorted order), for quick runs.
    #[arg(long)]
    pub limit_per_class: Option<usize>,
    /// Extract a deterministic 1/N of the inputs: `--shard i/N` (0 <= i < N); join with `merge`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Largest accepted image, in pixels (decompression-bomb guard).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad =
        || vggfeat::Error::InvalidParam(format!("bad --shard `{s}` (expected i/N, 0 <= i < N)"));
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad().into());
    }
    Ok((i, n))
}

pub fn extract(a: ExtractArgs) -> Result<u8> {
    use vggfeat::dataset::{Dataset, OpenOptions};
    use vggfeat::extract::{ExtractParams, NetEntry};
    let layer = a.layer.as_deref().map(str::parse).transpose()?;
    let norm = match a.preprocess.as_str() {
        "auto" => None,
        s => Some(s.parse::<Normalization>()?),
    };
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let params = ExtractParams {
        scales: a.scales.clone(),
        flip: !a.no_flip,
        batch: a.batch,
        chunk_records: a.chunk,
        decode: DecodeOptions {
            max_pixels: a.max_pixels,
            ..Default::default()
        },
        progress: !a.quiet,
        ..Default::default()
    };
    let device = model::parse_device(&a.device)?;
    let engine: Engine = a.engine.parse()?;
    let mut nets = Vec::new();
    for p in &a.weights {
        let w = model::weights::load(p, &candle_core::Device::Cpu)
            .with_context(|| format!("loading weights {}", p.display()))?;
        let vgg = Vgg::new(w, &device, engine)?;
        let entry = NetEntry::new(vgg, layer, norm)?;
        if layer.is_none() && !entry.vgg.has_head() && !a.quiet {
            eprintln!(
                "{}: no fc layers, using pool5 as the descriptor layer",
                p.display()
            );
        }
        nets.push(entry);
    }
    let ds = Dataset::open_with(
        &a.input,
        &OpenOptions {
            voc_split: a.split.clone(),
            ..Default::default()
        },
    )?;
    let mut ds = match a.limit_per_class {
        Some(k) => ds.limit_per_class(k),
        None => ds,
    };
    if let Some((i, n)) = shard {
        ds = ds.shard(i, n)?;
    }
    if ds.is_empty() {
        anyhow::bail!("{}: no images found", a.input.display());
    }
    let input = vggfeat::store::InputSpec {
        root: vggfeat::extract::canonical_root(&a.input),
        kind: ds.kind.to_string(),
        split: (ds.kind == vggfeat::dataset::SourceKind::Voc).then(|| a.split.clone()),
        limit_per_class: a.limit_per_class,
        shard,
    };
    if !a.quiet {
        eprintln!(
            "{} images ({} classes) from {}; {} net(s), scales {:?}{}",
            ds.len(),
            ds.classes.len(),
            a.input.display(),
            nets.len(),
            params.scales,
            if params.flip { ", with flips" } else { "" }
        );
    }
    let s = vggfeat::extract::extract(ds.items, &nets, &a.out, input, &params)?;
    eprintln!(
        "extracted {} images in {:.1} s ({:.2} images/s end to end, {:.2} images/s in the network); \
         {} already in the store; {} failed",
        s.extracted,
        s.seconds,
        s.images_per_sec(),
        (s.extracted + s.failed.len()) as f64 / s.network_seconds.max(1e-9),
        s.already_done,
        s.failed.len()
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

/// `vggfeat export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The store folder written by `extract`.
    pub store: PathBuf,
    /// Scale aggregation: avg (L2-normalised mean) or stack (L2-normalised concatenation).
    #[arg(long, default_value = "avg")]
    pub aggregate: String,
    /// Nets to use: all, or indices like 0,1 (fused by stacking).
    #[arg(long, default_value = "all")]
    pub nets: String,
    /// Write CSV: header id,label,d0,d1,...
    #[arg(long, conflicts_with = "npy")]
    pub csv: Option<PathBuf>,
    /// Write a float32 .npy matrix, plus OUT.ids.csv (id,label) beside it.
    #[arg(long)]
    pub npy: Option<PathBuf>,
}

pub fn export(a: ExportArgs) -> Result<u8> {
    use vggfeat::aggregate::{aggregate_store, parse_nets};
    let store = vggfeat::store::Store::open(&a.store)?;
    let how = a.aggregate.parse()?;
    let nets = parse_nets(&a.nets, store.manifest.nets.len())?;
    let d = aggregate_store(&store, how, &nets)?;
    let labels: Vec<String> = d.labels.iter().map(|l| l.join(";")).collect();
    match (&a.csv, &a.npy) {
        (Some(p), None) => vggfeat::store::write_csv(p, &d.ids, &labels, &d.rows)?,
        (None, Some(p)) => {
            vggfeat::store::npy::write_npy(p, &d.rows)?;
            let ids = p.with_extension("ids.csv");
            vggfeat::store::write_csv(&ids, &d.ids, &labels, &vec![Vec::new(); d.ids.len()])?;
        }
        _ => anyhow::bail!("give one of --csv OUT.csv or --npy OUT.npy"),
    }
    eprintln!(
        "exported {} descriptors of dimension {} ({} failed inputs left out)",
        d.rows.len(),
        d.rows.first().map_or(0, Vec::len),
        store.failures().len()
    );
    Ok(EXIT_OK)
}

/// `vggfeat merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Shard stores (from `extract --shard i/N`).
    #[arg(required = true)]
    pub stores: Vec<PathBuf>,
    /// The merged store (must not exist).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
}

pub fn merge(a: MergeArgs) -> Result<u8> {
    let s = vggfeat::store::merge(&a.stores, &a.out)?;
    eprintln!(
        "merged {} records ({} failed) into {}",
        s.records.len(),
        s.failures().len(),
        a.out.display()
    );
    Ok(EXIT_OK)
}

/// `vggfeat svm`.
#[derive(Args, Debug)]
pub struct SvmArgs {
    /// Feature store(s) from `extract` (several are joined by image id, e.g. VOC train + test).
    #[arg(long = "features", short = 'f', required = true)]
    pub features: Vec<PathBuf>,
    /// Scale aggregation: avg or stack.
    #[arg(long, default_value = "stack")]
    pub aggregate: String,
    /// Nets: all, or indices like 0,1 (late fusion by stacking).
    #[arg(long, default_value = "all")]
    pub nets: String,
    /// caltech (random per-class splits, mean class recall) or voc (devkit sets, AP / mAP).
    #[arg(long, default_value = "caltech")]
    pub protocol: String,
    /// Caltech: training images per class.
    #[arg(long, default_value_t = 30)]
    pub train_per_class: usize,
    /// Caltech: test images per class at most, or `all` (Caltech-256).
    #[arg(long, default_value = "50")]
    pub test_per_class: String,
    /// Caltech: number of random splits.
    #[arg(long, default_value_t = 3)]
    pub splits: usize,
    /// Seed of the split sampler and of the C-selection hold-out.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Caltech: classes to leave out (e.g. BACKGROUND_Google).
    #[arg(long)]
    pub drop_class: Vec<String>,
    /// Caltech: explicit split files (id,label,set CSV), comma-separated, instead of sampling.
    #[arg(long, value_delimiter = ',')]
    pub split_files: Vec<PathBuf>,
    /// VOC: the devkit year folder (with JPEGImages and ImageSets/Main).
    #[arg(long)]
    pub voc: Option<PathBuf>,
    /// VOC: training image set.
    #[arg(long, default_value = "trainval")]
    pub train_set: String,
    /// VOC: test image set.
    #[arg(long, default_value = "test")]
    pub test_set: String,
    /// VOC: AP definition, voc07 (11-point) or area (VOC 2010+).
    #[arg(long, default_value = "voc07")]
    pub ap: String,
    /// Solver: dcd (liblinear's dual coordinate descent) or linfa (linfa-svm SMO; small problems).
    #[arg(long, default_value = "dcd")]
    pub solver: String,
    /// Loss: squared-hinge (L2-loss, liblinear's default) or hinge.
    #[arg(long, default_value = "squared-hinge")]
    pub loss: String,
    /// C grid for selection on a 20 % hold-out of each training split, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.1,1,10,100,1000")]
    pub c_grid: Vec<f64>,
    /// Results folder (table.md, table.csv, metrics.json, plots, splits).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Title of the results table (default: from the store and the protocol).
    #[arg(long)]
    pub title: Option<String>,
}

pub fn svm(a: SvmArgs) -> Result<u8> {
    use linfa::ParamGuard;
    use vggfeat::aggregate::{Aggregate, aggregate_stores, parse_nets};
    use vggfeat::svm::{LinearSvmParams, Loss, SelectCParams, Solver};
    let how: Aggregate = a.aggregate.parse()?;
    let mut stores = Vec::new();
    for p in &a.features {
        stores.push(vggfeat::store::Store::open(p)?);
    }
    let first = &stores[0];
    let nets = parse_nets(&a.nets, first.manifest.nets.len())?;
    let desc = aggregate_stores(&stores, how, &nets)?;
    let solver = match a.solver.as_str() {
        "dcd" => Solver::Dcd,
        "linfa" | "linfa-svm" => Solver::LinfaSvm,
        s => anyhow::bail!(vggfeat::Error::InvalidParam(format!(
            "unknown solver `{s}` (dcd or linfa)"
        ))),
    };
    let loss = match a.loss.as_str() {
        "squared-hinge" | "l2" => Loss::SquaredHinge,
        "hinge" | "l1" => Loss::Hinge,
        s => anyhow::bail!(vggfeat::Error::InvalidParam(format!(
            "unknown loss `{s}` (squared-hinge or hinge)"
        ))),
    };
    let svm = LinearSvmParams::new()
        .loss(loss)
        .solver(solver)
        .seed(a.seed)
        .check()?;
    let ap: vggfeat::metrics::ApKind = match a.ap.as_str() {
        "voc07" | "11point" => vggfeat::metrics::ApKind::Voc07,
        "area" => vggfeat::metrics::ApKind::Area,
        s => anyhow::bail!(vggfeat::Error::InvalidParam(format!(
            "unknown --ap `{s}` (voc07 or area)"
        ))),
    };
    let select = SelectCParams::new()
        .grid(a.c_grid.clone())
        .seed(a.seed)
        .ap_kind(ap)
        .check()?;
    let m = &first.manifest;
    let layer_desc = m
        .nets
        .iter()
        .enumerate()
        .filter(|(i, _)| nets.contains(i))
        .map(|(_, n)| format!("{} {}", n.config, n.layer))
        .collect::<Vec<_>>()
        .join(" & ");
    let agg = vggfeat::protocol::describe_aggregation(how, &m.scales);
    let params = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "features": a.features,
        "aggregate": how,
        "nets": nets,
        "protocol": a.protocol,
        "solver": a.solver,
        "loss": a.loss,
        "c_grid": a.c_grid,
        "seed": a.seed,
        "validation_fraction": 0.2,
    });
    let t0 = std::time::Instant::now();
    match a.protocol.as_str() {
        "caltech" => {
            let test_per_class = match a.test_per_class.as_str() {
                "all" => None,
                n => Some(n.parse().map_err(|_| {
                    vggfeat::Error::InvalidParam(format!(
                        "bad --test-per-class `{n}` (a number or all)"
                    ))
                })?),
            };
            let source = if a.split_files.is_empty() {
                vggfeat::protocol::SplitSource::Sample(vggfeat::dataset::SplitParams {
                    train_per_class: a.train_per_class,
                    test_per_class,
                    seed: a.seed,
                    splits: a.splits,
                    drop_classes: a.drop_class.clone(),
                })
            } else {
                vggfeat::protocol::SplitSource::Files(a.split_files.clone())
            };
            let title = a.title.clone().unwrap_or_else(|| {
                format!(
                    "{layer_desc}, {agg}: {} train / {} test per class",
                    a.train_per_class, a.test_per_class
                )
            });
            let o = vggfeat::protocol::run_caltech(
                first, &desc, &source, &select, &svm, &title, params, &a.out,
            )?;
            for s in &o.splits {
                eprintln!(
                    "split {}: C = {}, mean class recall {:.2} % ({} train, {} test, {:.1} s)",
                    s.split,
                    s.c,
                    100.0 * s.mean_class_recall,
                    s.n_train,
                    s.n_test,
                    s.seconds
                );
            }
            println!(
                "mean class recall {:.2} ± {:.2} % over {} splits ({:.1} s); results in {}",
                100.0 * o.recall.mean,
                100.0 * o.recall.std.unwrap_or(0.0),
                o.splits.len(),
                t0.elapsed().as_secs_f64(),
                a.out.display()
            );
        }
        "voc" => {
            let devkit = a.voc.as_ref().ok_or_else(|| {
                vggfeat::Error::InvalidParam("--protocol voc needs --voc DEVKIT".into())
            })?;
            let title = a.title.clone().unwrap_or_else(|| {
                format!(
                    "{layer_desc}, {agg}: VOC {} -> {} ({})",
                    a.train_set, a.test_set, a.ap
                )
            });
            let o = vggfeat::protocol::run_voc(
                devkit,
                &a.train_set,
                &a.test_set,
                &desc,
                ap,
                &select,
                &svm,
                &title,
                params,
                &a.out,
            )?;
            println!(
                "mAP {:.2} % (C = {}, {:.1} s); results in {}",
                100.0 * o.table.mean,
                o.c,
                t0.elapsed().as_secs_f64(),
                a.out.display()
            );
        }
        p => anyhow::bail!(vggfeat::Error::InvalidParam(format!(
            "unknown protocol `{p}` (caltech or voc)"
        ))),
    }
    Ok(EXIT_OK)
}

/// `vggfeat reproduce`.
#[derive(Args, Debug)]
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
    #[arg(long)]
    pub layer: Option<String>,
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
    /// Seed of the splits and hold-outs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn reproduce(a: ReproduceArgs) -> Result<u8> {
    use linfa::ParamGuard;
    use vggfeat::reproduce::{Benchmark, ReproduceParams, run_benchmark, table11};
    let layer = a.layer.as_deref().map(str::parse).transpose()?;
    let device = model::parse_device(&a.device)?;
    let mut skipped = Vec::new();
    let mut nets = Vec::new();
    for (name, w) in [("D", &a.weights_d), ("E", &a.weights_e)] {
        match w {
            Some(p) => {
                let wts = model::weights::load(p, &candle_core::Device::Cpu)
                    .with_context(|| format!("loading weights {}", p.display()))?;
                let vgg = Vgg::new(wts, &device, Engine::Auto)?;
                nets.push((
                    name.to_string(),
                    vggfeat::extract::NetEntry::new(vgg, layer, None)?,
                ));
            }
            None => skipped.push(format!(
                "net {name}: no --weights-{} given",
                name.to_lowercase()
            )),
        }
    }
    if nets.is_empty() {
        anyhow::bail!(vggfeat::Error::InvalidParam(
            "give --weights-d and/or --weights-e".into()
        ));
    }
    let p = ReproduceParams {
        work: a.work.clone(),
        out: a.out.clone(),
        scales: a.scales.clone(),
        extract: vggfeat::extract::ExtractParams {
            progress: !a.quiet,
            ..Default::default()
        },
        skip_checks: a.skip_checks,
        svm: vggfeat::svm::LinearSvmParams::new().seed(a.seed).check()?,
        select: vggfeat::svm::SelectCParams::new().seed(a.seed).check()?,
        seed: a.seed,
    };
    let mut cells = Vec::new();
    for (b, dir) in [
        (Benchmark::Voc2007, &a.voc2007),
        (Benchmark::Voc2012, &a.voc2012),
        (Benchmark::Caltech101, &a.caltech101),
        (Benchmark::Caltech256, &a.caltech256),
    ] {
        let Some(dir) = dir else {
            skipped.push(format!("{}: no folder given", b.name()));
            continue;
        };
        eprintln!("== {} ({})", b.name(), dir.display());
        cells.extend(run_benchmark(b, dir, &nets, &p)?);
    }
    let mut table = table11(&cells, &skipped);
    if let Some(s) = &a.scales {
        table.push_str(&format!("\nScales overridden to {s:?} (the paper's: VOC 256..768 avg, Caltech 256,384,512 stack).\n"));
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let path = a.out.join("table11.md");
    std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;
    println!("{table}");
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    Ok(EXIT_OK)
}
