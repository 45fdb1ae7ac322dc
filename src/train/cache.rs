//! The frozen prefix's outputs, computed once per training image and augmented variant
//! (`vggfeat train --freeze-through L --cache-frozen V`): with the conv body frozen, every epoch
//! would otherwise decode, augment and run the body again for each image, although only the
//! layers after it learn. With the cache, an epoch costs only the trainable layers.
//!
//! Variant `v` of the training image at position `pos` of the split is the augmentation
//! [`super::augment`] draws from the stream (`variant`, `pos`, `v`); epoch `e` trains on variant
//! `stream(pick, e, pos) mod V` of each image. The cache is built in batches of the run's
//! micro-batch, in position order, whenever a run starts or resumes (it is not saved: a resumed
//! run recomputes exactly the same values, so resuming stays exact). It lives in memory:
//! images x V x the prefix output's size x 4 bytes (after pool5 of crop 224, 100 KB per
//! variant).
//!
//! With a cache folder (`--cache-dir`), it is also saved there as `frozen-<key>.safetensors`
//! (tensors `features`, `targets` for localisation, and `key`), and any run whose cache would
//! hold the same values reads it instead of computing it: a resumed run, or the second head
//! trained on the same frozen body. The key is a SHA-256 of everything the values depend on
//! ([`key`]). A file under that name that cannot be read or does not match is an error naming
//! it, never silently replaced.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::Rng;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::net::Features;
use super::rng::stream;
use super::trainer::Trainer;
use crate::error::{Error, Result};
use crate::image_io::load_item;
use crate::util::Progress;

/// Every training image's cached variants.
#[derive(Debug)]
pub(super) struct FrozenCache {
    /// Variants per image.
    variants: usize,
    /// One variant's (height, width, channels).
    dims: (usize, usize, usize),
    /// The prefix outputs, (position, variant) major.
    data: Vec<f32>,
    /// The box targets, per (position, variant), for localisation.
    targets: Vec<[f32; 4]>,
}

impl FrozenCache {
    /// The run's cache: read from its cache folder if it holds this cache, else computed
    /// ([`FrozenCache::build`]) and saved there (if the run has a cache folder).
    pub fn open(trainer: &Trainer, progress: &dyn Progress) -> Result<Self> {
        let Some(dir) = &trainer.record.params.cache_dir else {
            return Self::build(trainer, progress);
        };
        let key = key(trainer)?;
        let path = dir.join(format!("frozen-{}.safetensors", &hex::encode(key)[..32]));
        if path.exists() {
            return Self::load(&path, &key, trainer);
        }
        let cache = Self::build(trainer, progress)?;
        cache.save(&path, &key)?;
        Ok(cache)
    }

    /// Reads a saved cache, checking its key and sizes.
    fn load(path: &Path, key: &[u8; 32], trainer: &Trainer) -> Result<Self> {
        let bad = |why: String| {
            Error::Usage(format!(
                "{}: {why}; delete it to have the cache computed again",
                path.display()
            ))
        };
        let t = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| bad(format!("not a readable frozen cache ({e})")))?;
        let get = |name: &str| {
            t.get(name)
                .ok_or_else(|| bad(format!("no `{name}` tensor")))
        };
        let stored: Vec<u8> = get("key")?.to_vec1()?;
        if stored != key {
            return Err(bad("its key does not match its name".into()));
        }
        let p = &trainer.record.params;
        let rows = trainer.split.train.len() * p.cache_frozen;
        let f = get("features")?;
        let (r, h, w, c) = f
            .dims4()
            .map_err(|_| bad(format!("features of shape {:?}", f.dims())))?;
        if r != rows {
            return Err(bad(format!(
                "{r} cached variants where {rows} were expected"
            )));
        }
        let targets = match (&trainer.boxes, t.get("targets")) {
            (None, _) => Vec::new(),
            (Some(_), None) => return Err(bad("no `targets` tensor".into())),
            (Some(_), Some(tt)) => {
                let v: Vec<Vec<f32>> = tt.to_vec2().map_err(|e| bad(format!("targets: {e}")))?;
                if v.len() != rows || v.iter().any(|r| r.len() != 4) {
                    return Err(bad(format!("targets of shape {:?}", tt.dims())));
                }
                v.into_iter().map(|r| [r[0], r[1], r[2], r[3]]).collect()
            }
        };
        Ok(FrozenCache {
            variants: p.cache_frozen,
            dims: (h, w, c),
            data: f.flatten_all()?.to_vec1()?,
            targets,
        })
    }

    /// Writes the cache to `path` (through a temporary file, renamed when complete).
    fn save(&self, path: &Path, key: &[u8; 32]) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let rows = self.data.len() / (self.dims.0 * self.dims.1 * self.dims.2).max(1);
        let mut t = HashMap::new();
        t.insert(
            "features".to_string(),
            Tensor::from_slice(
                &self.data,
                (rows, self.dims.0, self.dims.1, self.dims.2),
                &Device::Cpu,
            )?,
        );
        t.insert(
            "key".to_string(),
            Tensor::from_slice(key, 32, &Device::Cpu)?,
        );
        if !self.targets.is_empty() {
            let flat: Vec<f32> = self.targets.iter().flatten().copied().collect();
            t.insert(
                "targets".to_string(),
                Tensor::from_vec(flat, (rows, 4), &Device::Cpu)?,
            );
        }
        let tmp = PathBuf::from(format!("{}.part", path.display()));
        candle_core::safetensors::save(&t, &tmp)
            .map_err(|e| Error::Usage(format!("{}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Computes every training image's `trainer.record.params.cache_frozen` variants through
    /// the trainer's frozen prefix.
    pub fn build(trainer: &Trainer, progress: &dyn Progress) -> Result<Self> {
        let p = &trainer.record.params;
        let variants = p.cache_frozen;
        let (seed, crop) = (p.seed, p.crop as usize);
        let n = trainer.split.train.len();
        progress.begin(
            "caching the frozen layers' outputs",
            "variants",
            (n * variants) as u64,
        );
        let rows: Vec<(usize, usize)> = (0..n)
            .flat_map(|pos| (0..variants).map(move |v| (pos, v)))
            .collect();
        let mut data = Vec::new();
        let mut targets = Vec::new();
        let mut dims = (0, 0, 0);
        for chunk in rows.chunks(p.micro_batch) {
            // Decoding and augmenting in parallel; each sample depends only on its stream.
            let samples = chunk
                .par_iter()
                .map(|&(pos, v)| {
                    let img =
                        load_item(&trainer.ds.items[trainer.split.train[pos]], &trainer.decode)?;
                    let mut rng = stream(seed, "variant", pos as u64, v as u64);
                    let (x, g) = trainer.augment.sample_with_geometry(&img, &mut rng);
                    let t = trainer
                        .boxes
                        .as_ref()
                        .map(|b| g.box_target(&b.train[pos].1).0);
                    Ok((x, t))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut x = Vec::with_capacity(chunk.len() * 3 * crop * crop);
            for (s, t) in samples {
                x.extend(s);
                targets.extend(t);
            }
            let x = candle_core::Tensor::from_vec(
                x,
                (chunk.len(), 3, crop, crop),
                &candle_core::Device::Cpu,
            )?;
            let f = trainer.net.frozen_features(&x)?;
            let (_, h, w, c) = f.dims();
            if data.is_empty() {
                dims = (h, w, c);
                data.reserve_exact(rows.len() * h * w * c);
            }
            data.extend_from_slice(&f.0.data);
            progress.advance(chunk.len() as u64);
            progress.status(&format!("{} MiB", (data.len() * 4) >> 20));
        }
        progress.end();
        Ok(FrozenCache {
            variants,
            dims,
            data,
            targets,
        })
    }

    /// The variant epoch `e` trains image `pos` on.
    fn pick(&self, seed: u64, e: usize, pos: usize) -> usize {
        stream(seed, "pick", e as u64, pos as u64).gen_range(0..self.variants)
    }

    /// Epoch `e`'s micro-batch of the images at `positions`: their prefix outputs, and their
    /// box targets for localisation (empty otherwise).
    pub fn micro(
        &self,
        seed: u64,
        e: usize,
        positions: &[usize],
    ) -> Result<(Features, Vec<[f32; 4]>)> {
        let len = self.dims.0 * self.dims.1 * self.dims.2;
        let rows: Vec<usize> = positions
            .iter()
            .map(|&pos| pos * self.variants + self.pick(seed, e, pos))
            .collect();
        let f = Features::from_images(
            rows.iter().map(|&r| &self.data[r * len..(r + 1) * len]),
            self.dims,
        )?;
        let t = if self.targets.is_empty() {
            Vec::new()
        } else {
            rows.iter().map(|&r| self.targets[r]).collect()
        };
        Ok((f, t))
    }
}

/// The SHA-256 a saved cache is known by: of the frozen layers ([`TrainNet::frozen_digest`]),
/// the bytes of every training image in order, the boxes, the augmentation (scale, crop, flip,
/// colour PCA and its deviation, normalisation), the seed, the variants per image and the
/// micro-batch (the batches the prefix ran in).
///
/// [`TrainNet::frozen_digest`]: super::net::TrainNet::frozen_digest
fn key(trainer: &Trainer) -> Result<[u8; 32]> {
    let p = &trainer.record.params;
    let mut h = Sha256::new();
    h.update(b"vggfeat frozen cache 1");
    h.update(trainer.net.frozen_digest()?);
    for &i in &trainer.split.train {
        let path = &trainer.ds.items[i].path;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    if let Some(b) = &trainer.boxes {
        h.update(format!("{:?}", b.train).as_bytes());
    }
    h.update(format!("{:?}", trainer.augment).as_bytes());
    h.update(format!("{} {} {}", p.seed, p.cache_frozen, p.micro_batch).as_bytes());
    Ok(h.finalize().into())
}
