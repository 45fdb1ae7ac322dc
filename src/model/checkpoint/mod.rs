//! Checkpoints: the ONLY module that knows tensor names, file formats, on-disk shapes and
//! metadata keys. Reads and writes them; turns them into [`VggWeights`].
//!
//! Reads safetensors (float32, float16, bfloat16 or float64) and PyTorch `.pth` files written by
//! `torch.save(state_dict)` (also `{"state_dict": ...}` / `{"model": ...}` wrappers and
//! DataParallel's `module.` prefix), with either naming ([`HEAD_NAMES`]), and Keras HDF5 weight
//! files (Keras applications' `vgg16_weights_tf_dim_ordering_tf_kernels.h5`, Keras 3
//! `.weights.h5`), whose names and layouts `keras.rs` translates into torchvision's:
//!
//! | layer | torchvision | timm |
//! | --- | --- | --- |
//! | convs | `features.N.{weight,bias}` | same |
//! | fc6 | `classifier.0`, Linear (F, C*k*k) | `pre_logits.fc1`, conv (F, C, k, k) |
//! | fc7 | `classifier.3`, Linear (F, F) | `pre_logits.fc2`, conv (F, F, 1, 1) |
//! | fc8 | `classifier.6`, Linear (K, F) | `head.fc`, Linear (K, F) |
//!
//! The conv body's module indices `N` are torchvision's ([`torchvision_layout`]): a conv and its
//! ReLU take two indices (three with batch norm), a pool or the LRN one. Batch-norm variants
//! (`vgg16_bn`) are recognised by their `running_var` tensors and folded into the convolutions at
//! load time. The configuration (A .. E) is inferred from which `features.N` indices hold
//! convolutions and their kernel sizes; every width is read from the shapes, so narrow networks
//! load without flags. fc6's kernel side k is read from its shape too: 7 for every ImageNet
//! network (pool5 of a 224 crop), `crop / 32` for a network trained by `vggfeat train` at a
//! smaller crop (a torchvision Linear (F, C*k*k) is accepted when C*k*k factors with C = pool5's
//! channels). Every key and shape is checked, and every problem is reported with the file, the
//! key, and what was expected. Values must be finite, and a `.pth` archive must pass its CRC-32
//! checks ([`read_raw`]).
//!
//! Metadata (safetensors `__metadata__`) keys are in [`meta`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::config::{BodyLayer, ConfigName, FC6_KERNEL, LayerName, Spec};
use super::params::{ConvParams, HeadParams, VggWeights};
pub use super::params::{Format, Naming};
use crate::error::{Error, Result};
use crate::preprocess::Normalization;

/// The metadata keys vggfeat reads and writes in safetensors files.
pub mod meta {
    /// The input convention the weights expect: a value whose first word is `caffe` or
    /// `torchvision` (e.g. `"caffe: BGR order, 0..255, minus the mean pixel"`).
    pub const PREPROCESS: &str = "preprocess";
    /// The configuration letter of a network written by `vggfeat train`.
    pub const CONFIG: &str = "vggfeat.config";
    /// The training crop side of a network written by `vggfeat train`.
    pub const CROP: &str = "vggfeat.crop";
    /// The class names of fc8, as a JSON list of strings (`vggfeat train`).
    pub const CLASSES: &str = "vggfeat.classes";
    /// The box-regression head of a localisation net written by `vggfeat train --task
    /// localise`: `scr` or `pcr` ([`crate::localise::Regression`]); absent for a classifier.
    pub const BOX_HEAD: &str = "vggfeat.box_head";
    /// What fc6 does to its input first ([`crate::model::plan::Fc6Input`]): `sqrt`, or absent
    /// (the paper's identity).
    pub const FC6_INPUT: &str = "vggfeat.fc6_input";
    /// The epoch of a training checkpoint (model and optimizer files).
    pub const EPOCH: &str = "vggfeat.epoch";
    /// Layers of a Keras file left out because they are not VGG layers (e.g. HED's side
    /// outputs), comma-separated.
    pub const IGNORED: &str = "vggfeat.ignored";
}

mod keras;

/// The input convention a checkpoint expects: its metadata [`meta::PREPROCESS`] if present
/// (`"caffe: ..."`), else torchvision's. Returns the convention and where it came from. A
/// `preprocess` value that names no known convention is an error naming the value (it is not
/// taken as absent: guessing the convention would silently change every descriptor).
pub fn expected_normalization(w: &VggWeights) -> Result<(Normalization, &'static str)> {
    match w.metadata.get(meta::PREPROCESS) {
        None => Ok((
            Normalization::Torchvision,
            "default (no `preprocess` metadata)",
        )),
        Some(v) => Normalization::from_metadata(v)
            .map(|n| (n, "checkpoint metadata `preprocess`"))
            .ok_or_else(|| Error::Checkpoint {
                path: w.path.clone(),
                reason: format!(
                    "metadata `preprocess` is {v:?}, which names no input convention vggfeat \
                     knows (torchvision, caffe); name the preprocessing (torchvision or caffe)"
                ),
            }),
    }
}

/// How a head layer's kernel is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// A Linear layer: (out, in * k * k).
    Linear,
    /// A convolution: (out, in, k, k).
    Conv,
}

/// The tensor names of one naming convention's head.
#[derive(Debug, Clone, Copy)]
pub struct HeadNames {
    /// The convention.
    pub naming: Naming,
    /// Prefixes whose presence identifies the convention.
    pub prefixes: &'static [&'static str],
    /// Module names of fc6, fc7 and fc8, with how each is stored.
    layers: [(&'static str, Stored); 3],
}

/// The naming table: the head of each convention with fc layers (the body is `features.N`).
pub const HEAD_NAMES: [HeadNames; 2] = [
    HeadNames {
        naming: Naming::Torchvision,
        prefixes: &["classifier."],
        layers: [
            ("classifier.0", Stored::Linear),
            ("classifier.3", Stored::Linear),
            ("classifier.6", Stored::Linear),
        ],
    },
    HeadNames {
        naming: Naming::Timm,
        prefixes: &["pre_logits.", "head."],
        layers: [
            ("pre_logits.fc1", Stored::Conv),
            ("pre_logits.fc2", Stored::Conv),
            ("head.fc", Stored::Linear),
        ],
    },
];

/// Body layers with their torchvision module indices.
pub type IndexedLayers = Vec<(BodyLayer, usize)>;

/// The body layers of `config` with their torchvision module indices in `features`
/// (`features.{index}.weight`): conv + ReLU take two indices (conv + BN + ReLU three with
/// `batch_norm`), a pool or the LRN one.
pub fn torchvision_layout(config: ConfigName, batch_norm: bool) -> IndexedLayers {
    let mut index = 0;
    config
        .layers()
        .into_iter()
        .map(|l| {
            let at = index;
            index += match l.spec {
                Spec::Conv { .. } if batch_norm => 3,
                Spec::Conv { .. } => 2,
                _ => 1,
            };
            (l, at)
        })
        .collect()
}

/// The raw tensors of a checkpoint file, in float32 on the CPU, before any interpretation.
#[derive(Debug)]
pub struct RawCheckpoint {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// The element type of its (floating-point) tensors on disk.
    pub dtype_on_disk: DType,
    /// Tensors by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// Metadata, if the format has any.
    pub metadata: BTreeMap<String, String>,
}

fn ckpt_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads every tensor of a safetensors or `.pth` file (detected by content, not extension).
///
/// Every tensor must hold finite values only: a NaN or an infinity is refused, naming the tensor
/// and how many values are bad (a NaN in a weight would otherwise hide behind a ReLU and change
/// every descriptor). A `.pth` archive's CRC-32 checksums are verified member by member before
/// it is parsed. float64 tensors are accepted and converted to float32, like float16/bfloat16.
pub fn read_raw(path: &Path) -> Result<RawCheckpoint> {
    let raw = read_raw_unchecked(path)?;
    for (name, t) in &raw.tensors {
        let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
        let nan = v.iter().filter(|x| x.is_nan()).count();
        let inf = v.iter().filter(|x| x.is_infinite()).count();
        if nan + inf > 0 {
            return Err(ckpt_err(
                path,
                format!(
                    "tensor `{name}` holds {nan} NaN and {inf} infinite value(s) out of {}: the \
                     checkpoint is broken",
                    v.len()
                ),
            ));
        }
    }
    Ok(raw)
}

/// Verifies every member of a zip archive against its CRC-32 by reading it to the end.
fn verify_zip(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f))
        .map_err(|e| ckpt_err(path, format!("corrupt PyTorch archive: {e}")))?;
    for i in 0..zip.len() {
        let mut member = zip
            .by_index(i)
            .map_err(|e| ckpt_err(path, format!("corrupt PyTorch archive: {e}")))?;
        let name = member
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("#{i}"));
        std::io::copy(&mut member, &mut std::io::sink()).map_err(|e| {
            ckpt_err(
                path,
                format!("corrupt PyTorch archive: member `{name}` fails its checksum ({e})"),
            )
        })?;
    }
    Ok(())
}

fn read_raw_unchecked(path: &Path) -> Result<RawCheckpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() {
        return Err(ckpt_err(path, "the file is empty"));
    }
    if bytes.starts_with(b"PK\x03\x04") {
        drop(bytes);
        verify_zip(path)?;
        return read_pth(path);
    }
    if keras::is_hdf5(&bytes) {
        return keras::read_keras(path, bytes);
    }
    if bytes.len() >= 2 && bytes[0] == 0x80 && bytes[1] <= 5 {
        return Err(ckpt_err(
            path,
            "legacy (pre-1.6, non-zip) PyTorch pickle; re-save it with torch.save(state_dict, f) \
             from a current PyTorch, or convert it to safetensors",
        ));
    }
    read_safetensors(path, &bytes)
}

fn read_safetensors(path: &Path, bytes: &[u8]) -> Result<RawCheckpoint> {
    use safetensors::{Dtype, SafeTensors};
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        ckpt_err(
            path,
            format!("neither a PyTorch zip archive nor a valid safetensors file ({e})"),
        )
    })?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| ckpt_err(path, e.to_string()))?;
    let metadata: BTreeMap<String, String> = meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut tensors = BTreeMap::new();
    let mut disk = None;
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::F64 => DType::F64,
            Dtype::I64 if name.ends_with("num_batches_tracked") => continue,
            other => {
                return Err(ckpt_err(
                    path,
                    format!("tensor `{name}` has element type {other:?}; expected a float type"),
                ));
            }
        };
        if disk.is_none() || dtype != DType::F32 {
            disk = Some(dtype);
        }
        let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &Device::Cpu)?
            .to_dtype(DType::F32)?;
        tensors.insert(name, t);
    }
    Ok(RawCheckpoint {
        path: path.to_path_buf(),
        format: Format::Safetensors,
        dtype_on_disk: disk.unwrap_or(DType::F32),
        tensors,
        metadata,
    })
}

/// How much larger than its file a tensor may be once decompressed: deflate (Keras' one HDF5
/// filter; `torch.save` stores members uncompressed) expands at most about 1032:1. A tensor
/// declaring more values than that is refused before anything is allocated.
const MAX_EXPANSION: u64 = 1032;

/// The tensors of a PyTorch zip archive (the `state_dict` under `key`, if given). candle's
/// pickle reader gives each tensor's storage, offset, shape and strides; the values are read
/// here, so that a tensor saved as a strided view of its storage (a permuted or sliced tensor,
/// which candle refuses) loads, and so that a declared shape is checked against the bytes the
/// storage has before anything is allocated.
fn read_pth_tensors(
    path: &Path,
    key: Option<&str>,
) -> std::result::Result<Vec<(String, Tensor)>, String> {
    use std::io::Read;
    let infos =
        candle_core::pickle::read_pth_tensor_info(path, false, key).map_err(|e| e.to_string())?;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(infos.len());
    for info in infos {
        let name = &info.name;
        let es = info.dtype.size_in_bytes();
        let dims = info.layout.dims();
        let stride = info.layout.stride();
        let offset = info.layout.start_offset() / es;
        let too_big =
            || format!("tensor `{name}` declares a shape {dims:?} its storage cannot hold");
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(too_big)?;
        // The largest storage index the view reaches.
        let last = if n == 0 {
            0
        } else {
            dims.iter()
                .zip(stride)
                .try_fold(offset, |a, (&d, &s)| a.checked_add((d - 1).checked_mul(s)?))
                .ok_or_else(too_big)?
        };
        let storage = info.storage_size;
        let bytes = storage
            .checked_mul(es)
            .filter(|&b| b as u64 <= file_len.saturating_mul(MAX_EXPANSION))
            .ok_or_else(|| {
                format!("tensor `{name}`: a storage of {storage} values in a {file_len}-byte file")
            })?;
        if n > 0 && last >= storage {
            return Err(format!(
                "tensor `{name}`: shape {dims:?} with strides {stride:?} from offset {offset} \
                 reaches past its storage of {storage} values"
            ));
        }
        let mut member = zip
            .by_name(&info.path)
            .map_err(|e| format!("tensor `{name}`: storage `{}`: {e}", info.path))?;
        let mut buf = Vec::new();
        (&mut member)
            .take(bytes as u64)
            .read_to_end(&mut buf)
            .map_err(|e| format!("tensor `{name}`: storage `{}`: {e}", info.path))?;
        if buf.len() < bytes {
            return Err(format!(
                "tensor `{name}`: storage `{}` has {} bytes, {bytes} declared",
                info.path,
                buf.len()
            ));
        }
        let values: Vec<u8> = if info.layout.is_contiguous() {
            buf[offset * es..(offset + n) * es].to_vec()
        } else {
            // Walk the view's indices in row-major order.
            let mut v = Vec::with_capacity(n * es);
            let mut index = vec![0usize; dims.len()];
            for _ in 0..n {
                let at = offset + index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>();
                v.extend_from_slice(&buf[at * es..(at + 1) * es]);
                for d in (0..dims.len()).rev() {
                    index[d] += 1;
                    if index[d] < dims[d] {
                        break;
                    }
                    index[d] = 0;
                }
            }
            v
        };
        let t = Tensor::from_raw_buffer(&values, info.dtype, dims, &Device::Cpu)
            .map_err(|e| format!("tensor `{name}`: {e}"))?;
        out.push((info.name, t));
    }
    Ok(out)
}

fn read_pth(path: &Path) -> Result<RawCheckpoint> {
    // candle's pickle reader is not hardened against every malformed archive: contain panics.
    let read = |key: Option<&str>| {
        let key = key.map(str::to_string);
        let p = path.to_path_buf();
        std::panic::catch_unwind(move || read_pth_tensors(&p, key.as_deref()))
            .unwrap_or_else(|_| Err("malformed pickle".into()))
    };
    let mut found =
        read(None).map_err(|e| ckpt_err(path, format!("corrupt PyTorch archive: {e}")))?;
    if !found.iter().any(|(k, _)| k.contains("features.")) {
        for key in ["state_dict", "model", "model_state_dict"] {
            if let Ok(t) = read(Some(key))
                && !t.is_empty()
            {
                found = t;
                break;
            }
        }
    }
    if found.is_empty() {
        return Err(ckpt_err(path, "the PyTorch archive holds no tensors"));
    }
    let mut tensors = BTreeMap::new();
    let mut disk = None;
    for (name, t) in found {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let dtype = t.dtype();
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
            return Err(ckpt_err(
                path,
                format!("tensor `{name}` has element type {dtype:?}; expected a float type"),
            ));
        }
        if disk.is_none() || dtype != DType::F32 {
            disk = Some(dtype);
        }
        tensors.insert(name, t.to_dtype(DType::F32)?.contiguous()?);
    }
    Ok(RawCheckpoint {
        path: path.to_path_buf(),
        format: Format::Pth,
        dtype_on_disk: disk.unwrap_or(DType::F32),
        tensors,
        metadata: BTreeMap::new(),
    })
}

/// Reads and validates a VGG checkpoint, returning float32 weights on `device`.
pub fn load(path: &Path, device: &Device) -> Result<VggWeights> {
    let raw = read_raw(path)?;
    let w = from_raw(raw)?;
    crate::model::Fc6Input::of(&w)?;
    if device.is_cpu() {
        Ok(w)
    } else {
        w.to_device(device)
    }
}

/// Takes tensors out of a checkpoint by name, remembering which were used (so that leftovers
/// can be reported) and naming the file in every error.
struct Taker<'a> {
    path: &'a Path,
    tensors: &'a BTreeMap<String, Tensor>,
    used: BTreeSet<String>,
}

impl Taker<'_> {
    fn take(&mut self, key: &str, context: &str) -> Result<Tensor> {
        self.used.insert(key.to_string());
        self.tensors
            .get(key)
            .cloned()
            .ok_or_else(|| Error::MissingKey {
                path: self.path.to_path_buf(),
                key: key.to_string(),
                context: context.to_string(),
            })
    }

    /// A tensor of the given shape (`None` = any size, but not 0).
    fn take_shaped(&mut self, key: &str, context: &str, shape: &[Option<usize>]) -> Result<Tensor> {
        let t = self.take(key, context)?;
        check_shape(self.path, key, &t, shape)?;
        Ok(t)
    }

    fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// One head layer stored as `stored` under `module`, as a (out, c_in, k, k) conv.
    /// `out = None` takes the output width from the tensor; `free_kernel` (fc6) reads k from the
    /// shape, otherwise k = 1.
    fn head_layer(
        &mut self,
        name: LayerName,
        (module, stored): (&str, Stored),
        out: Option<usize>,
        c_in: usize,
        free_kernel: bool,
    ) -> Result<ConvParams> {
        let (wkey, bkey) = (format!("{module}.weight"), format!("{module}.bias"));
        let context = name.to_string();
        let w = self.take(&wkey, &context)?;
        let out = out.unwrap_or_else(|| w.dims().first().copied().unwrap_or(0));
        let weight = match stored {
            Stored::Linear => {
                let cols = w.dims().get(1).copied().unwrap_or(0);
                let k = if free_kernel {
                    fc6_kernel_of(cols, c_in)
                } else {
                    1
                };
                check_shape(self.path, &wkey, &w, &[Some(out), Some(c_in * k * k)]).map_err(
                    |e| {
                        if free_kernel {
                            annotate_fc6(e, c_in)
                        } else {
                            e
                        }
                    },
                )?;
                w.reshape((out, c_in, k, k))?
            }
            Stored::Conv => {
                let k = if free_kernel {
                    w.dims().get(2).copied().unwrap_or(0).max(1)
                } else {
                    1
                };
                check_shape(
                    self.path,
                    &wkey,
                    &w,
                    &[Some(out), Some(c_in), Some(k), Some(k)],
                )?;
                w
            }
        };
        let bias = self.take_shaped(&bkey, &context, &[Some(out)])?;
        Ok(ConvParams {
            name,
            weight: weight.contiguous()?,
            bias,
        })
    }
}

/// Folds an eval-mode batch norm into the preceding conv:
/// `gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta` with PyTorch's eps = 1e-5.
fn fold_batch_norm(
    w: Tensor,
    b: Tensor,
    [gamma, beta, mean, var]: [Tensor; 4],
) -> Result<(Tensor, Tensor)> {
    let out = b.dims()[0];
    let scale = gamma.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    let w = w.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
    let b = ((b - mean)? * &scale)?.add(&beta)?;
    Ok((w, b))
}

/// Interprets raw tensors as a VGG network (see the module docs for the accepted layouts).
pub fn from_raw(raw: RawCheckpoint) -> Result<VggWeights> {
    let path = raw.path.clone();
    // Strip DataParallel's prefix.
    let t: BTreeMap<String, Tensor> = raw
        .tensors
        .into_iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("module.").map(str::to_string).unwrap_or(k),
                v,
            )
        })
        .collect();

    let (config, batch_norm, layers) = infer_config(&path, &t)?;
    let mut tk = Taker {
        path: &path,
        tensors: &t,
        used: BTreeSet::new(),
    };

    let mut convs = Vec::new();
    let mut c_in = 3usize;
    for (l, index) in &layers {
        let Spec::Conv { kernel, .. } = l.spec else {
            continue;
        };
        let ctx = format!("{} of configuration {config}", l.name);
        let wkey = format!("features.{index}.weight");
        let w = tk.take(&wkey, &ctx)?;
        let out = w.dims().first().copied().unwrap_or(0);
        check_shape(
            &path,
            &wkey,
            &w,
            &[Some(out), Some(c_in), Some(kernel), Some(kernel)],
        )?;
        let b = tk.take_shaped(&format!("features.{index}.bias"), &ctx, &[Some(out)])?;
        let (w, b) = if batch_norm {
            let ctx = format!("batch norm after {}", l.name);
            let bn = index + 1;
            let stats = ["weight", "bias", "running_mean", "running_var"]
                .map(|f| tk.take_shaped(&format!("features.{bn}.{f}"), &ctx, &[Some(out)]));
            let [g, be, m, v] = stats;
            fold_batch_norm(w, b, [g?, be?, m?, v?])?
        } else {
            (w, b)
        };
        convs.push(ConvParams {
            name: l.name,
            weight: w.contiguous()?,
            bias: b,
        });
        c_in = out;
    }

    // The head: the first convention of the naming table whose prefixes appear, or none.
    let names = HEAD_NAMES.iter().find(|n| {
        n.prefixes
            .iter()
            .any(|p| t.keys().any(|k| k.starts_with(p)))
    });
    let naming = names.map_or(Naming::BodyOnly, |n| n.naming);
    let head = match names {
        None => None,
        Some(n) => {
            let [l6, l7, l8] = n.layers;
            let fc6 = tk.head_layer(LayerName::Fc6, l6, None, c_in, true)?;
            let f = fc6.out_channels();
            let fc7 = tk.head_layer(LayerName::Fc7, l7, Some(f), f, false)?;
            let fc8 = if tk.has(&format!("{}.weight", l8.0)) || tk.has(&format!("{}.bias", l8.0)) {
                Some(tk.head_layer(LayerName::Fc8, l8, None, f, false)?)
            } else {
                None
            };
            Some(HeadParams { fc6, fc7, fc8 })
        }
    };

    // Strict: every tensor in the file must have been used.
    let extra: Vec<&String> = t.keys().filter(|k| !tk.used.contains(*k)).collect();
    if !extra.is_empty() {
        let shown: Vec<&str> = extra.iter().take(8).map(|s| s.as_str()).collect();
        return Err(Error::NotVgg {
            path,
            reason: format!(
                "unexpected tensors for configuration {config}{}: {}{}",
                if batch_norm { " with batch norm" } else { "" },
                shown.join(", "),
                if extra.len() > 8 {
                    format!(" and {} more", extra.len() - 8)
                } else {
                    String::new()
                }
            ),
        });
    }

    Ok(VggWeights {
        path: raw.path,
        format: raw.format,
        naming,
        dtype_on_disk: raw.dtype_on_disk,
        config,
        batch_norm,
        convs,
        head,
        metadata: raw.metadata,
    })
}

/// The side k of a torchvision fc6 Linear with `cols` inputs over `c_in` pool5 channels:
/// `cols = c_in * k * k`. Falls back to 7 (the ImageNet size) when `cols` does not factor, so
/// that the shape error names the usual expectation.
fn fc6_kernel_of(cols: usize, c_in: usize) -> usize {
    if c_in == 0 || cols == 0 || !cols.is_multiple_of(c_in) {
        return FC6_KERNEL;
    }
    let kk = cols / c_in;
    let k = (kk as f64).sqrt().round() as usize;
    if k * k == kk { k } else { FC6_KERNEL }
}

fn annotate_fc6(e: Error, c_in: usize) -> Error {
    match e {
        Error::Shape {
            path,
            key,
            expected,
            found,
        } => Error::Shape {
            path,
            key,
            expected: format!(
                "{expected} (fc6 over a {c_in}x7x7 pool5; a net trained at crop 32k has \
                 {c_in}*k*k inputs)"
            ),
            found,
        },
        e => e,
    }
}

fn check_shape(path: &Path, key: &str, t: &Tensor, expected: &[Option<usize>]) -> Result<()> {
    let dims = t.dims();
    let ok = dims.len() == expected.len()
        && dims
            .iter()
            .zip(expected)
            .all(|(d, e)| e.is_none_or(|e| e == *d) && *d > 0);
    if ok {
        return Ok(());
    }
    let words: Vec<String> = expected
        .iter()
        .map(|e| match e {
            Some(0) | None => "*".to_string(),
            Some(v) => v.to_string(),
        })
        .collect();
    let zero = if dims.contains(&0) {
        " with no zero-sized dimension"
    } else {
        ""
    };
    Err(Error::Shape {
        path: path.to_path_buf(),
        key: key.to_string(),
        expected: format!("({}){zero}", words.join(", ")),
        found: dims.to_vec(),
    })
}

/// Which configuration has convolutions exactly at the `features.N` indices of the file, with
/// the same kernel sizes.
fn infer_config(
    path: &Path,
    t: &BTreeMap<String, Tensor>,
) -> Result<(ConfigName, bool, IndexedLayers)> {
    let mut conv_at: BTreeMap<usize, usize> = BTreeMap::new(); // index -> kernel
    let mut batch_norm = false;
    for (k, v) in t {
        let Some(rest) = k.strip_prefix("features.") else {
            continue;
        };
        let Some((idx, field)) = rest.split_once('.') else {
            continue;
        };
        let Ok(idx) = idx.parse::<usize>() else {
            continue;
        };
        if field == "running_var" {
            batch_norm = true;
        }
        if field == "weight" && v.rank() == 4 {
            conv_at.insert(idx, v.dims()[3]);
        }
    }
    if conv_at.is_empty() {
        let sample: Vec<_> = t.keys().take(5).cloned().collect();
        return Err(Error::NotVgg {
            path: path.to_path_buf(),
            reason: format!(
                "no convolution tensors `features.N.weight` (found {} tensors, e.g. {})",
                t.len(),
                if sample.is_empty() {
                    "none".to_string()
                } else {
                    sample.join(", ")
                }
            ),
        });
    }
    for config in ConfigName::ALL {
        let layers = torchvision_layout(config, batch_norm);
        let want: BTreeMap<usize, usize> = layers
            .iter()
            .filter_map(|(l, index)| match l.spec {
                Spec::Conv { kernel, .. } => Some((*index, kernel)),
                _ => None,
            })
            .collect();
        if want == conv_at {
            return Ok((config, batch_norm, layers));
        }
    }
    let found: Vec<String> = conv_at
        .iter()
        .map(|(i, k)| format!("{i}:{k}x{k}"))
        .collect();
    Err(Error::NotVgg {
        path: path.to_path_buf(),
        reason: format!(
            "{} convolutions at features indices [{}]{}; no configuration of the paper's Table 1 \
             (A, A-LRN, B, C, D, E) has this layout",
            conv_at.len(),
            found.join(", "),
            if batch_norm { " with batch norm" } else { "" }
        ),
    })
}

/// Writes weights as a torchvision-named safetensors file (fc layers as Linear), with metadata,
/// atomically.
pub fn save_torchvision(
    weights: &VggWeights,
    path: &Path,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut out: Vec<(String, Tensor)> = Vec::new();
    let body = torchvision_layout(weights.config, false)
        .into_iter()
        .filter(|(l, _)| matches!(l.spec, Spec::Conv { .. }));
    if body.clone().count() != weights.convs.len() {
        return Err(Error::Internal(format!(
            "{} conv layers for configuration {}",
            weights.convs.len(),
            weights.config
        )));
    }
    for ((_, index), c) in body.zip(&weights.convs) {
        out.push((format!("features.{index}.weight"), c.weight.clone()));
        out.push((format!("features.{index}.bias"), c.bias.clone()));
    }
    // The head's layers (fc6, fc7, fc8 in network order) as torchvision's Linear modules.
    let head = weights.layers().into_iter().filter(|l| l.name.is_head());
    for (p, (module, _)) in head.zip(HEAD_NAMES[0].layers) {
        let f = p.out_channels();
        out.push((format!("{module}.weight"), p.weight.reshape((f, ()))?));
        out.push((format!("{module}.bias"), p.bias.clone()));
    }
    let views: Vec<(String, crate::util::F32View)> = out
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                crate::util::F32View::of_tensor(&v.to_device(&Device::Cpu)?)?,
            ))
        })
        .collect::<Result<_>>()?;
    let meta: std::collections::HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    crate::util::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_indices_of_vgg16() {
        let l = torchvision_layout(ConfigName::D, false);
        let convs: Vec<_> = l
            .iter()
            .filter(|(x, _)| matches!(x.spec, Spec::Conv { .. }))
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(convs, vec![0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]);
        assert_eq!(l.last().unwrap().1, 30);
        assert_eq!(l.last().unwrap().0.name, LayerName::Pool(5));
        let bn = torchvision_layout(ConfigName::A, true);
        assert_eq!(
            bn.iter().map(|(_, i)| *i).take(4).collect::<Vec<_>>(),
            [0, 3, 4, 7]
        );
    }
}
