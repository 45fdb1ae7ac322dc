//! Multi-scale dense extraction (the paper's Appendix B): for each image and scale Q, rescale
//! isotropically to smallest side Q, run the network densely, global-average-pool the chosen
//! layer, do the same for the horizontal flip and average the two. The per-scale descriptors of
//! every net go to the [`crate::store`]; aggregation happens later.
//!
//! Decoding and resizing run on their own threads ahead of the network, through a bounded queue
//! (memory stays flat on any folder size); inputs of equal shape (an image and its flip, and
//! equal-shape images that arrive together) share one forward pass. A file that cannot be used
//! is recorded as a failure with its reason and the run goes on.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use candle_core::Tensor;
use image::RgbImage;
use sha2::{Digest, Sha256};

use crate::dataset::Item;
use crate::error::{Error, Result};
use crate::image_io::{DecodeOptions, load_rgb_with};
use crate::model::config::LayerName;
use crate::model::{Vgg, expected_normalization};
use crate::preprocess::{Normalization, resize_smallest_side, scaled_size};
use crate::store::{FORMAT_VERSION, InputSpec, Manifest, NetSpec, Outcome, Record, StoreWriter};

/// Extraction parameters. Build with [`ExtractParams::default`] and struct update, then
/// [`ExtractParams::check`].
#[derive(Debug, Clone)]
pub struct ExtractParams {
    /// Scales Q (smallest side after rescaling), each >= 224 for fc layers, >= 32 for conv
    /// layers. Default `[256, 384, 512]` (the paper's Caltech setting).
    pub scales: Vec<u32>,
    /// Average with the horizontal flip (default true).
    pub flip: bool,
    /// Inputs per forward pass at most (an image and its flip count as two). Default 2.
    pub batch: usize,
    /// Images per atomic store chunk (default 32): a kill loses at most this many.
    pub chunk_records: usize,
    /// Decoded images waiting for the network at most (default 4): bounds memory.
    pub queue: usize,
    /// Decoding threads (default 1; decoding is a small share of the time).
    pub decode_threads: usize,
    /// Decoder options (pixel limit, EXIF orientation).
    pub decode: DecodeOptions,
    /// Show a progress bar on a terminal (default true).
    pub progress: bool,
}

impl Default for ExtractParams {
    fn default() -> Self {
        ExtractParams {
            scales: vec![256, 384, 512],
            flip: true,
            batch: 2,
            chunk_records: 32,
            queue: 4,
            decode_threads: 1,
            decode: DecodeOptions::default(),
            progress: true,
        }
    }
}

impl ExtractParams {
    /// Validates the parameters for nets whose smallest accepted input side is `min_side`
    /// (224 for an ImageNet head, 32 x the fc6 kernel for nets trained at a smaller crop, 32 for
    /// conv layers).
    pub fn check(&self, min_side: u32) -> Result<()> {
        if self.scales.is_empty() {
            return Err(Error::InvalidParam("at least one scale is needed".into()));
        }
        let min = min_side;
        if let Some(q) = self.scales.iter().find(|q| **q < min) {
            return Err(Error::InvalidParam(format!(
                "scale {q} is below {min}, the smallest input of the chosen layer"
            )));
        }
        let mut sorted = self.scales.clone();
        sorted.dedup();
        if sorted.len() != self.scales.len() {
            return Err(Error::InvalidParam("scales repeat".into()));
        }
        if self.batch == 0 || self.chunk_records == 0 || self.queue == 0 || self.decode_threads == 0
        {
            return Err(Error::InvalidParam(
                "batch, chunk size, queue and decode threads must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One network of a run, with its descriptor layer and input convention.
#[derive(Debug)]
pub struct NetEntry {
    /// The network.
    pub vgg: Vgg,
    /// The layer whose spatial mean is the descriptor.
    pub layer: LayerName,
    /// Input convention.
    pub norm: Normalization,
    /// What the manifest records about it.
    pub spec: NetSpec,
}

impl NetEntry {
    /// Prepares a net: `layer` None = fc7, or pool5 for a checkpoint without fc layers;
    /// `norm` None = the checkpoint's metadata, else torchvision. Hashes the weights file.
    pub fn new(vgg: Vgg, layer: Option<LayerName>, norm: Option<Normalization>) -> Result<Self> {
        let layer = layer.unwrap_or_else(|| vgg.default_layer());
        vgg.check_layer(layer)?;
        let norm = norm.unwrap_or_else(|| expected_normalization(vgg.weights()).0);
        let w = vgg.weights();
        let spec = NetSpec {
            weights: w.path.display().to_string(),
            sha256: sha256_file(&w.path)?,
            config: w.config.to_string(),
            layer: layer.to_string(),
            dim: vgg.layer_channels(layer)?,
            preprocess: norm.to_string(),
        };
        Ok(NetEntry {
            vgg,
            layer,
            norm,
            spec,
        })
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Inputs given.
    pub total: usize,
    /// Inputs already in the store (resumed), skipped.
    pub already_done: usize,
    /// Inputs extracted by this run.
    pub extracted: usize,
    /// Inputs that failed in this run: (id, reason).
    pub failed: Vec<(String, String)>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// Seconds spent in the network (forward passes).
    pub network_seconds: f64,
}

impl Summary {
    /// Images per second end to end.
    pub fn images_per_sec(&self) -> f64 {
        (self.extracted + self.failed.len()) as f64 / self.seconds.max(1e-9)
    }
}

/// A decoded input, resized to every scale.
struct Prepared {
    item: usize,
    result: std::result::Result<Vec<RgbImage>, String>,
}

fn prepare(item: &Item, params: &ExtractParams) -> std::result::Result<Vec<RgbImage>, String> {
    let img = load_rgb_with(&item.path, &params.decode).map_err(|e| match e {
        Error::Image { reason, .. } => reason,
        e => e.to_string(),
    })?;
    let mut out = Vec::with_capacity(params.scales.len());
    for &q in &params.scales {
        let (w, h) = scaled_size(img.width(), img.height(), q);
        if (w as u64) * (h as u64) > params.decode.max_pixels {
            return Err(format!(
                "{}x{} image rescaled to smallest side {q} would be {w}x{h}, over the pixel limit \
                 (extreme aspect ratio)",
                img.width(),
                img.height()
            ));
        }
        out.push(resize_smallest_side(&img, q));
    }
    Ok(out)
}

/// Starts the decode threads over `todo` (indices into `items`); results arrive on the receiver
/// in any order. The queue holds at most `params.queue` decoded images.
fn spawn_decoders(
    items: Arc<Vec<Item>>,
    todo: Arc<Vec<usize>>,
    params: &ExtractParams,
    stop: Arc<AtomicBool>,
) -> (Receiver<Prepared>, Vec<std::thread::JoinHandle<()>>) {
    let (tx, rx) = sync_channel(params.queue);
    let next = Arc::new(AtomicUsize::new(0));
    let handles = (0..params.decode_threads)
        .map(|_| {
            let (tx, items, todo, next, stop) = (
                tx.clone(),
                items.clone(),
                todo.clone(),
                next.clone(),
                stop.clone(),
            );
            let params = params.clone();
            std::thread::spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = todo.get(k) else { break };
                    let result = std::panic::catch_unwind(|| prepare(&items[i], &params))
                        .unwrap_or_else(|_| Err("decoder panicked".into()));
                    if tx.send(Prepared { item: i, result }).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    (rx, handles)
}

/// Computes one net's per-scale descriptors for a group of prepared images (all scales),
/// batching equal-shape inputs. Returns per image: Ok(floats for this net) or Err(reason).
fn describe_group(
    net: &NetEntry,
    images: &[&Vec<RgbImage>],
    params: &ExtractParams,
    network_seconds: &mut f64,
) -> Vec<std::result::Result<Vec<f32>, String>> {
    let d = net.spec.dim;
    let ns = params.scales.len();
    let mut out: Vec<std::result::Result<Vec<f32>, String>> =
        images.iter().map(|_| Ok(vec![0f32; ns * d])).collect();
    let views = if params.flip { 2 } else { 1 };
    for s in 0..ns {
        // Group (image, view) inputs by shape, in a deterministic order.
        let mut groups: BTreeMap<(u32, u32), Vec<(usize, bool)>> = BTreeMap::new();
        for (i, im) in images.iter().enumerate() {
            for v in 0..views {
                groups
                    .entry(im[s].dimensions())
                    .or_default()
                    .push((i, v == 1));
            }
        }
        for ((w, h), members) in groups {
            for batch in members.chunks(params.batch) {
                let mut data = Vec::with_capacity(batch.len() * 3 * (w * h) as usize);
                for &(i, flip) in batch {
                    data.extend(net.norm.to_chw(&images[i][s], flip));
                }
                let t0 = Instant::now();
                let pooled = Tensor::from_vec(
                    data,
                    (batch.len(), 3, h as usize, w as usize),
                    net.vgg.device(),
                )
                .map_err(Error::from)
                .and_then(|x| net.vgg.forward_pooled(&x, net.layer))
                .and_then(|p| Ok(p.to_device(&candle_core::Device::Cpu)?.to_vec2::<f32>()?));
                *network_seconds += t0.elapsed().as_secs_f64();
                match pooled {
                    Ok(rows) => {
                        for (&(i, _), row) in batch.iter().zip(rows) {
                            if let Ok(v) = &mut out[i] {
                                let slot = &mut v[s * d..(s + 1) * d];
                                for (a, b) in slot.iter_mut().zip(row) {
                                    *a += b / views as f32;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        for &(i, _) in batch {
                            out[i] =
                                Err(format!("network failed at scale {}: {e}", params.scales[s]));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Runs the extraction of `items` with `nets` into the store at `store_dir`, resuming a store
/// made with the same parameters. Inputs that fail are recorded (with their reasons) and
/// reported in the summary; the run goes on.
pub fn extract(
    items: Vec<Item>,
    nets: &[NetEntry],
    store_dir: &Path,
    input: InputSpec,
    params: &ExtractParams,
) -> Result<Summary> {
    let refs: Vec<&NetEntry> = nets.iter().collect();
    extract_with(items, &refs, store_dir, input, params)
}

/// [`extract`] with borrowed nets (a net may serve several runs).
pub fn extract_with(
    items: Vec<Item>,
    nets: &[&NetEntry],
    store_dir: &Path,
    input: InputSpec,
    params: &ExtractParams,
) -> Result<Summary> {
    let min_side = nets
        .iter()
        .map(|n| match (n.layer.is_head(), n.vgg.min_head_input()) {
            (true, Some(m)) => m as u32,
            _ => 32,
        })
        .max()
        .unwrap_or(32);
    params.check(min_side)?;
    if nets.is_empty() {
        return Err(Error::InvalidParam(
            "at least one --weights is needed".into(),
        ));
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        input,
        nets: nets.iter().map(|n| n.spec.clone()).collect(),
        scales: params.scales.clone(),
        flip: params.flip,
        max_pixels: params.decode.max_pixels,
    };
    let (mut writer, done) =
        StoreWriter::create_or_resume(store_dir, &manifest, params.chunk_records)?;
    let start = Instant::now();
    let todo: Vec<usize> = (0..items.len())
        .filter(|&i| !done.contains(&items[i].id))
        .collect();
    let mut summary = Summary {
        total: items.len(),
        already_done: items.len() - todo.len(),
        ..Default::default()
    };
    let bar = progress_bar(todo.len(), params.progress);
    let items = Arc::new(items);
    let todo = Arc::new(todo);
    let stop = Arc::new(AtomicBool::new(false));
    let (rx, handles) = spawn_decoders(items.clone(), todo.clone(), params, stop.clone());
    let mut last_flush = Instant::now();
    let group_max = params
        .batch
        .div_ceil(if params.flip { 2 } else { 1 })
        .max(1);

    let result = (|| -> Result<()> {
        let mut received = 0;
        while received < todo.len() {
            // Take one prepared image, then whatever else is ready, up to the group size.
            let Ok(first) = rx.recv() else { break };
            let mut group = vec![first];
            while group.len() < group_max {
                match rx.try_recv() {
                    Ok(p) => group.push(p),
                    Err(_) => break,
                }
            }
            received += group.len();
            let ok: Vec<&Prepared> = group.iter().filter(|p| p.result.is_ok()).collect();
            let imgs: Vec<&Vec<RgbImage>> = ok
                .iter()
                .map(|p| p.result.as_ref().expect("filtered"))
                .collect();
            let mut per_image: Vec<std::result::Result<Vec<f32>, String>> =
                imgs.iter().map(|_| Ok(Vec::new())).collect();
            for net in nets {
                let r = describe_group(net, &imgs, params, &mut summary.network_seconds);
                for (acc, r) in per_image.iter_mut().zip(r) {
                    match (acc.as_mut(), r) {
                        (Ok(a), Ok(v)) => a.extend(v),
                        (Ok(_), Err(e)) => *acc = Err(e),
                        (Err(_), _) => {}
                    }
                }
            }
            let mut results = per_image.into_iter();
            for p in &group {
                let item = &items[p.item];
                let outcome = match &p.result {
                    Err(reason) => Outcome::Failed(reason.clone()),
                    Ok(_) => match results.next().expect("one result per ok image") {
                        Ok(v) => Outcome::Ok(v),
                        Err(reason) => Outcome::Failed(reason),
                    },
                };
                match &outcome {
                    Outcome::Ok(_) => summary.extracted += 1,
                    Outcome::Failed(reason) => {
                        bar.suspend(|| eprintln!("skipped {}: {reason}", item.path.display()));
                        summary.failed.push((item.id.clone(), reason.clone()));
                    }
                }
                writer.push(Record {
                    id: item.id.clone(),
                    labels: item.labels.clone(),
                    outcome,
                })?;
                bar.inc(1);
            }
            if last_flush.elapsed() > Duration::from_secs(30) {
                writer.flush()?;
                last_flush = Instant::now();
            }
        }
        writer.flush()
    })();
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    for h in handles {
        let _ = h.join();
    }
    bar.finish_and_clear();
    result?;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn progress_bar(len: usize, show: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} images  {per_sec}  ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// The canonical form of an input path, for the manifest.
pub fn canonical_root(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| PathBuf::from(p))
        .display()
        .to_string()
}
