//! One network of an extraction: the loaded [`Vgg`], its descriptor layer and input convention,
//! and what a store's manifest records about it ([`NetSpec`]: the weights' SHA-256, layer,
//! dimension, preprocessing, precision).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::config::LayerName;
use crate::model::{Format, Vgg, VggWeights};
use crate::preprocess::{Normalization, Preprocess};
use crate::store::NetSpec;

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
    /// [`Preprocess::Auto`] = the checkpoint's metadata, else torchvision. The manifest
    /// identifies the weights by the SHA-256 of their file, or, for weights made in memory, of
    /// their tensors.
    pub fn new(vgg: Vgg, layer: Option<LayerName>, preprocess: Preprocess) -> Result<Self> {
        let layer = layer.unwrap_or_else(|| vgg.default_layer());
        vgg.check_layer(layer)?;
        let norm = vgg.normalization(preprocess)?;
        let w = vgg.weights();
        let sha256 = match w.format {
            Format::Memory => weights_sha256(w)?,
            _ => sha256_file(&w.path)?,
        };
        let spec = NetSpec {
            weights: w.path.display().to_string(),
            sha256,
            config: w.config,
            layer,
            dim: vgg.layer_channels(layer)?,
            preprocess: norm,
            precision: vgg.precision(),
        };
        Ok(NetEntry {
            vgg,
            layer,
            norm,
            spec,
        })
    }

    /// The smallest input side this net's descriptor layer accepts.
    pub fn min_side(&self) -> u32 {
        self.vgg.plan().min_side(self.layer) as u32
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

/// SHA-256 of weights in memory: the configuration, then every layer's shape and float32 values
/// (little-endian) in network order.
pub fn weights_sha256(w: &VggWeights) -> Result<String> {
    let mut h = Sha256::new();
    h.update(w.config.to_string().as_bytes());
    for l in w.layers() {
        for t in [&l.weight, &l.bias] {
            for d in t.dims() {
                h.update((*d as u64).to_le_bytes());
            }
            let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
            for x in v {
                h.update(x.to_le_bytes());
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}
