//! The run folder: what a training run writes beside itself, and how it is read back to resume.
//!
//! | file | what |
//! | --- | --- |
//! | `params.json` | the run's parameters and what they resolved to (classes, counts, init report) |
//! | `split.csv` | the train/val split (`id,label,set`; `test` = validation), [`crate::dataset::Split`]'s format |
//! | `model.safetensors` | the latest weights, torchvision names ([`crate::model::checkpoint::save_torchvision`]), loadable by `info`, `classify`, `extract` |
//! | `best.safetensors` | the weights of the epoch with the lowest validation top-1 error |
//! | `optimizer.safetensors` | the optimiser's state: SGD's momentum buffers, named `conv1_1.weight` .. `fc8.bias`; for Adam its first moments under those names, its second moments as `<name>.exp_avg_sq` and its step count as `adam.step` |
//! | `state.json` | epoch counter, schedule, colour PCA, history, stop reason |
//! | `metrics.csv`, `metrics.svg` | the per-epoch log and its plot |
//!
//! Every file is written to a temporary name and renamed, so a kill leaves either the old or
//! the new version. The model and optimizer files carry the epoch in their safetensors metadata
//! and `state.json`, written last, names the epoch it belongs to; resuming checks that all three
//! agree, so a kill between the three writes is reported, not silently mixed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::augment::ColourPca;
use super::log::EpochMetrics;
use super::schedule::Plateau;
use crate::error::{Error, Result};
use crate::model::VggWeights;
use crate::model::checkpoint::{self as ckpt, meta};
use crate::util::write_atomic;

/// Paths of a run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    /// The folder.
    pub root: PathBuf,
}

impl RunDir {
    /// The run folder at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }
    /// `params.json`.
    pub fn params(&self) -> PathBuf {
        self.root.join("params.json")
    }
    /// `split.csv`.
    pub fn split(&self) -> PathBuf {
        self.root.join("split.csv")
    }
    /// `model.safetensors`.
    pub fn model(&self) -> PathBuf {
        self.root.join("model.safetensors")
    }
    /// `best.safetensors`.
    pub fn best(&self) -> PathBuf {
        self.root.join("best.safetensors")
    }
    /// `optimizer.safetensors`.
    pub fn optimizer(&self) -> PathBuf {
        self.root.join("optimizer.safetensors")
    }
    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// `metrics.csv`.
    pub fn metrics_csv(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }
    /// `metrics.svg`.
    pub fn metrics_svg(&self) -> PathBuf {
        self.root.join("metrics.svg")
    }
}

/// The mutable state of a run after an epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    /// Epochs completed (1-based count; 0 before the first).
    pub epoch: usize,
    /// The learning-rate schedule.
    pub schedule: Plateau,
    /// The colour components of the augmentation, if enabled (fitted once per run).
    pub colour_pca: Option<ColourPca>,
    /// One entry per completed epoch.
    pub history: Vec<EpochMetrics>,
    /// Why training stopped early, if it did.
    pub stopped: Option<String>,
    /// How the random streams are derived, for the reader: there is no other generator state.
    pub rng: String,
}

/// Saves the weights with torchvision names and `metadata` plus the epoch.
pub fn save_model(
    w: &VggWeights,
    path: &Path,
    epoch: usize,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut m = metadata.clone();
    m.insert(meta::EPOCH.into(), epoch.to_string());
    ckpt::save_torchvision(w, path, &m)
}

/// Saves the optimiser's buffers (`Optimizer::buffers`) with the epoch in the metadata.
pub fn save_optimizer(buffers: &[(String, Tensor)], path: &Path, epoch: usize) -> Result<()> {
    let cpu: Vec<(String, Tensor)> = buffers
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    let m = std::collections::HashMap::from([(meta::EPOCH.to_string(), epoch.to_string())]);
    let bytes =
        safetensors::serialize(cpu.iter().map(|(k, t)| (k.as_str(), t)), Some(m)).map_err(|e| {
            Error::Checkpoint {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
    write_atomic(path, &bytes)
}

/// Reads the optimiser's buffers and the epoch they belong to.
pub fn load_optimizer(path: &Path) -> Result<(BTreeMap<String, Tensor>, usize)> {
    let raw = ckpt::read_raw(path)?;
    let epoch = epoch_of(path, &raw.metadata)?;
    Ok((raw.tensors, epoch))
}

/// The epoch recorded in a checkpoint's metadata.
pub fn epoch_of(path: &Path, metadata: &BTreeMap<String, String>) -> Result<usize> {
    metadata
        .get(meta::EPOCH)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Checkpoint {
            path: path.to_path_buf(),
            reason: format!(
                "no `{}` metadata: not written by `vggfeat train`",
                meta::EPOCH
            ),
        })
}

/// Checks that the model and optimizer files belong to the epoch `state.json` names.
pub fn check_epochs(dir: &RunDir, state_epoch: usize, model: usize, optim: usize) -> Result<()> {
    if model != state_epoch || optim != state_epoch {
        return Err(Error::Data {
            path: dir.root.clone(),
            reason: format!(
                "inconsistent checkpoint: state.json is at epoch {state_epoch}, \
                 model.safetensors at {model}, optimizer.safetensors at {optim} (the run was \
                 killed while saving); cannot resume exactly"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimizer_state_round_trips_with_its_epoch() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("optimizer.safetensors");
        let t = Tensor::new(&[[1f32, -2.5], [3.0, 1e-7]], &Device::Cpu).unwrap();
        save_optimizer(&[("conv1_1.weight".into(), t.clone())], &p, 7).unwrap();
        let (back, epoch) = load_optimizer(&p).unwrap();
        assert_eq!(epoch, 7);
        assert_eq!(
            back["conv1_1.weight"].to_vec2::<f32>().unwrap(),
            t.to_vec2::<f32>().unwrap()
        );
        let dir = RunDir::new(d.path());
        assert!(check_epochs(&dir, 7, 7, 7).is_ok());
        let e = check_epochs(&dir, 7, 8, 7).unwrap_err().to_string();
        assert!(e.contains("model.safetensors at 8"), "{e}");
        assert!(!d.path().join("optimizer.safetensors.tmp").exists());
    }
}
