//! Checkpoints: the ONLY module that knows tensor names, file formats and on-disk shapes.
//!
//! Reads safetensors (float32, float16 or bfloat16) and PyTorch `.pth` files written by
//! `torch.save(state_dict)` (also `{"state_dict": ...}` / `{"model": ...}` wrappers and
//! DataParallel's `module.` prefix), with either naming:
//!
//! | layer | torchvision | timm |
//! | --- | --- | --- |
//! | convs | `features.N.{weight,bias}` | same |
//! | fc6 | `classifier.0`, Linear (F, C*k*k) | `pre_logits.fc1`, conv (F, C, k, k) |
//! | fc7 | `classifier.3`, Linear (F, F) | `pre_logits.fc2`, conv (F, F, 1, 1) |
//! | fc8 | `classifier.6`, Linear (K, F) | `head.fc`, Linear (K, F) |
//!
//! Batch-norm variants (`vgg16_bn`) are recognised by their `running_var` tensors and folded
//! into the convolutions at load time. The configuration (A .. E) is inferred from which
//! `features.N` indices hold convolutions and their kernel sizes; every width is read from the
//! shapes, so narrow networks load without flags. fc6's kernel side k is read from its shape too:
//! 7 for every ImageNet network (pool5 of a 224 crop), `crop / 32` for a network trained by
//! `vggfeat train` at a smaller crop (a torchvision Linear (F, C*k*k) is accepted when C*k*k
//! factors with C = pool5's channels). Every key and shape is checked, and every problem is
//! reported with the file, the key, and what was expected.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::config::{BodyLayer, ConfigName, FC6_KERNEL, LayerName, Spec};
use crate::error::{Error, Result};

/// On-disk format of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    /// A `.safetensors` file.
    Safetensors,
    /// A PyTorch zip archive written by `torch.save`.
    Pth,
}

/// Tensor naming convention of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Naming {
    /// torchvision's `features.N` / `classifier.{0,3,6}` (fc layers as Linear).
    Torchvision,
    /// timm's `features.N` / `pre_logits.fc1/fc2` (convs) / `head.fc`.
    Timm,
    /// Conv body only (`features.N`), no fc layers.
    BodyOnly,
}

/// Weights of one convolution, ready to use: float32, (out, in, k, k) and (out).
#[derive(Debug, Clone)]
pub struct ConvParams {
    /// The layer's paper name (`conv3_2`).
    pub name: LayerName,
    /// Kernel, (out, in, k, k).
    pub weight: Tensor,
    /// Bias, (out).
    pub bias: Tensor,
}

/// The fully-convolutional head: fc6 as a k x k conv (k = 7 for ImageNet networks), fc7 and fc8
/// as 1x1 convs.
#[derive(Debug, Clone)]
pub struct HeadParams {
    /// fc6, (F, C, k, k).
    pub fc6: ConvParams,
    /// fc7, (F, F, 1, 1).
    pub fc7: ConvParams,
    /// fc8, (classes, F, 1, 1); absent in checkpoints saved without a classifier.
    pub fc8: Option<ConvParams>,
}

/// A VGG checkpoint, validated and converted to float32 convolution weights.
#[derive(Debug, Clone)]
pub struct VggWeights {
    /// The file it came from.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Its naming convention.
    pub naming: Naming,
    /// The element type on disk (F32, F16, BF16).
    pub dtype_on_disk: DType,
    /// The configuration inferred from the layout.
    pub config: ConfigName,
    /// Whether batch-norm layers were folded into the convs.
    pub batch_norm: bool,
    /// The conv body, in order; LRN and pooling have no weights.
    pub convs: Vec<ConvParams>,
    /// The head, if the checkpoint has fc layers.
    pub head: Option<HeadParams>,
    /// Free-form metadata stored in the file (safetensors `__metadata__`).
    pub metadata: BTreeMap<String, String>,
}

impl HeadParams {
    /// The side k of fc6's kernel: the pool5 size the network was trained at (7 for a 224 crop,
    /// `crop / 32` in general).
    pub fn fc6_kernel(&self) -> usize {
        self.fc6.weight.dims()[2]
    }
}

impl VggWeights {
    /// Total number of parameters (after folding batch norm, if any).
    pub fn param_count(&self) -> usize {
        let mut n = 0;
        let mut add = |c: &ConvParams| n += c.weight.elem_count() + c.bias.elem_count();
        self.convs.iter().for_each(&mut add);
        if let Some(h) = &self.head {
            add(&h.fc6);
            add(&h.fc7);
            if let Some(f) = &h.fc8 {
                add(f);
            }
        }
        n
    }

    /// Number of classes of fc8, if present.
    pub fn num_classes(&self) -> Option<usize> {
        self.head.as_ref()?.fc8.as_ref().map(|f| f.weight.dims()[0])
    }

    /// Moves every tensor to `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let mv = |c: &ConvParams| -> Result<ConvParams> {
            Ok(ConvParams {
                name: c.name,
                weight: c.weight.to_device(device)?,
                bias: c.bias.to_device(device)?,
            })
        };
        let head = match &self.head {
            None => None,
            Some(h) => Some(HeadParams {
                fc6: mv(&h.fc6)?,
                fc7: mv(&h.fc7)?,
                fc8: h.fc8.as_ref().map(mv).transpose()?,
            }),
        };
        Ok(VggWeights {
            convs: self.convs.iter().map(mv).collect::<Result<_>>()?,
            head,
            ..self.clone()
        })
    }
}

/// How [`VggWeights::random`] draws weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitScheme {
    /// The paper's: weights from N(0, 0.01^2), zero biases.
    Paper,
    /// Glorot / Xavier uniform (Glorot & Bengio 2010), zero biases.
    Glorot,
    /// He / Kaiming normal (fan-in, ReLU), zero biases: trains deep nets from scratch without
    /// the paper's staged initialisation.
    He,
    /// torchvision's `VGG._initialize_weights`: convs He / Kaiming normal with fan-out, the fc
    /// layers N(0, 0.01^2) (the paper's), zero biases. Suits full-width networks; in narrow
    /// ones (`width_div` > 1) the 0.01 fc layers shrink the signal by ~4x each and training
    /// stalls, so use [`InitScheme::He`] there.
    Torchvision,
}

impl std::str::FromStr for InitScheme {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "paper" => Ok(InitScheme::Paper),
            "glorot" | "xavier" => Ok(InitScheme::Glorot),
            "he" | "kaiming" => Ok(InitScheme::He),
            "torchvision" => Ok(InitScheme::Torchvision),
            _ => Err(Error::InvalidParam(format!(
                "unknown init scheme `{s}` (expected paper, glorot, he or torchvision)"
            ))),
        }
    }
}

impl VggWeights {
    /// Randomly initialised weights for `config` with channel widths divided by `width_div`
    /// (1 = ImageNet widths), fc width `fc_width` (None = no head) and `classes` outputs, fc6
    /// 7x7 as in the ImageNet networks. Deterministic for a seed.
    pub fn random(
        config: ConfigName,
        width_div: usize,
        fc_width: Option<usize>,
        classes: usize,
        scheme: InitScheme,
        seed: u64,
    ) -> Result<Self> {
        Self::random_with_fc6(
            config, width_div, fc_width, FC6_KERNEL, classes, scheme, seed,
        )
    }

    /// [`VggWeights::random`] with fc6 a `fc6_kernel` x `fc6_kernel` conv (at least 1): the
    /// head of a network trained at crop `32 * fc6_kernel`. The draws are in layer order, so
    /// the conv body is the same as [`VggWeights::random`]'s for the same seed.
    pub fn random_with_fc6(
        config: ConfigName,
        width_div: usize,
        fc_width: Option<usize>,
        fc6_kernel: usize,
        classes: usize,
        scheme: InitScheme,
        seed: u64,
    ) -> Result<Self> {
        if fc6_kernel == 0 {
            return Err(Error::InvalidParam("fc6 kernel must be at least 1".into()));
        }
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |shape: &[usize], fc: bool| -> Result<Tensor> {
            let n: usize = shape.iter().product();
            let fan_in: usize = shape[1..].iter().product();
            let fan_out = shape[0] * shape[2..].iter().product::<usize>();
            let v: Vec<f32> = match scheme {
                InitScheme::Paper => (0..n).map(|_| normal(&mut rng) * 0.01).collect(),
                InitScheme::Torchvision if fc => (0..n).map(|_| normal(&mut rng) * 0.01).collect(),
                InitScheme::Torchvision => {
                    let s = (2.0 / fan_out as f32).sqrt();
                    (0..n).map(|_| normal(&mut rng) * s).collect()
                }
                InitScheme::He => {
                    let s = (2.0 / fan_in as f32).sqrt();
                    (0..n).map(|_| normal(&mut rng) * s).collect()
                }
                InitScheme::Glorot => {
                    let a = (6.0 / (fan_in + fan_out) as f32).sqrt();
                    (0..n).map(|_| rng.gen_range(-a..a)).collect()
                }
            };
            Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
        };
        let div = width_div.max(1);
        let mut convs = Vec::new();
        let mut c_in = 3;
        for l in config.layers() {
            if let Spec::Conv { kernel, width } = l.spec {
                let out = (width / div).max(1);
                convs.push(ConvParams {
                    name: l.name,
                    weight: draw(&[out, c_in, kernel, kernel], false)?,
                    bias: Tensor::zeros(out, DType::F32, &Device::Cpu)?,
                });
                c_in = out;
            }
        }
        let head = match fc_width {
            None => None,
            Some(f) => Some(HeadParams {
                fc6: ConvParams {
                    name: LayerName::Fc6,
                    weight: draw(&[f, c_in, fc6_kernel, fc6_kernel], true)?,
                    bias: Tensor::zeros(f, DType::F32, &Device::Cpu)?,
                },
                fc7: ConvParams {
                    name: LayerName::Fc7,
                    weight: draw(&[f, f, 1, 1], true)?,
                    bias: Tensor::zeros(f, DType::F32, &Device::Cpu)?,
                },
                fc8: Some(ConvParams {
                    name: LayerName::Fc8,
                    weight: draw(&[classes, f, 1, 1], true)?,
                    bias: Tensor::zeros(classes, DType::F32, &Device::Cpu)?,
                }),
            }),
        };
        Ok(VggWeights {
            path: PathBuf::from(format!("<random {config} /{div} seed {seed}>")),
            format: Format::Safetensors,
            naming: if head.is_some() {
                Naming::Torchvision
            } else {
                Naming::BodyOnly
            },
            dtype_on_disk: DType::F32,
            config,
            batch_norm: false,
            convs,
            head,
            metadata: BTreeMap::new(),
        })
    }
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut impl rand::Rng) -> f32 {
    let u1: f64 = rng.r#gen::<f64>().max(1e-300);
    let u2: f64 = rng.r#gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
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
pub fn read_raw(path: &Path) -> Result<RawCheckpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() {
        return Err(ckpt_err(path, "the file is empty"));
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return read_pth(path);
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

fn read_pth(path: &Path) -> Result<RawCheckpoint> {
    // candle's pickle reader is not hardened against every malformed archive: contain panics.
    let read = |key: Option<&str>| {
        let key = key.map(str::to_string);
        let p = path.to_path_buf();
        std::panic::catch_unwind(move || candle_core::pickle::read_all_with_key(&p, key.as_deref()))
            .unwrap_or_else(|_| Err(candle_core::Error::Msg("malformed pickle".into())))
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
    if device.is_cpu() {
        Ok(w)
    } else {
        w.to_device(device)
    }
}

/// Interprets raw tensors as a VGG network (see the module docs for the accepted layouts).
pub fn from_raw(raw: RawCheckpoint) -> Result<VggWeights> {
    let path = raw.path.clone();
    // Strip DataParallel's prefix.
    let mut t: BTreeMap<String, Tensor> = raw
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
    let mut used = BTreeSet::new();
    let mut take = |t: &BTreeMap<String, Tensor>, key: &str, context: &str| -> Result<Tensor> {
        used.insert(key.to_string());
        t.get(key).cloned().ok_or_else(|| Error::MissingKey {
            path: path.clone(),
            key: key.to_string(),
            context: context.to_string(),
        })
    };

    let mut convs = Vec::new();
    let mut c_in = 3usize;
    for l in &layers {
        let Spec::Conv { kernel, .. } = l.spec else {
            continue;
        };
        let wkey = format!("features.{}.weight", l.index);
        let bkey = format!("features.{}.bias", l.index);
        let ctx = format!("{} of configuration {config}", l.name);
        let mut w = take(&t, &wkey, &ctx)?;
        let out = w.dims().first().copied().unwrap_or(0);
        check_shape(
            &path,
            &wkey,
            &w,
            &[Some(out), Some(c_in), Some(kernel), Some(kernel)],
        )?;
        let mut b = take(&t, &bkey, &ctx)?;
        check_shape(&path, &bkey, &b, &[Some(out)])?;
        if batch_norm {
            let bn = l.index + 1;
            let ctx = format!("batch norm after {}", l.name);
            let mut get = |name: &str| -> Result<Tensor> {
                let key = format!("features.{bn}.{name}");
                let v = take(&t, &key, &ctx)?;
                check_shape(&path, &key, &v, &[Some(out)])?;
                Ok(v)
            };
            let gamma = get("weight")?;
            let beta = get("bias")?;
            let mean = get("running_mean")?;
            let var = get("running_var")?;
            // y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta
            let scale = gamma.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
            w = w.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
            b = ((b - mean)? * &scale)?.add(&beta)?;
        }
        convs.push(ConvParams {
            name: l.name,
            weight: w.contiguous()?,
            bias: b,
        });
        c_in = out;
    }

    // The head: torchvision or timm naming, or none.
    let has = |p: &str| t.keys().any(|k| k.starts_with(p));
    let naming = if has("classifier.") {
        Naming::Torchvision
    } else if has("pre_logits.") || has("head.") {
        Naming::Timm
    } else {
        Naming::BodyOnly
    };
    let head = match naming {
        Naming::BodyOnly => None,
        Naming::Torchvision | Naming::Timm => {
            let tv = naming == Naming::Torchvision;
            let (k6, k7, k8) = if tv {
                ("classifier.0", "classifier.3", "classifier.6")
            } else {
                ("pre_logits.fc1", "pre_logits.fc2", "head.fc")
            };
            let w6 = take(&t, &format!("{k6}.weight"), "fc6")?;
            let f = w6.dims().first().copied().unwrap_or(0);
            let w6 = if tv {
                let cols = w6.dims().get(1).copied().unwrap_or(0);
                let k = fc6_kernel_of(cols, c_in);
                check_shape(
                    &path,
                    &format!("{k6}.weight"),
                    &w6,
                    &[Some(f), Some(c_in * k * k)],
                )
                .map_err(|e| annotate_fc6(e, c_in))?;
                w6.reshape((f, c_in, k, k))?
            } else {
                let k = w6.dims().get(2).copied().unwrap_or(0);
                check_shape(
                    &path,
                    &format!("{k6}.weight"),
                    &w6,
                    &[Some(f), Some(c_in), Some(k.max(1)), Some(k.max(1))],
                )?;
                w6
            };
            let b6 = take(&t, &format!("{k6}.bias"), "fc6")?;
            check_shape(&path, &format!("{k6}.bias"), &b6, &[Some(f)])?;
            let w7 = take(&t, &format!("{k7}.weight"), "fc7")?;
            let w7 = if tv {
                check_shape(&path, &format!("{k7}.weight"), &w7, &[Some(f), Some(f)])?;
                w7.reshape((f, f, 1, 1))?
            } else {
                check_shape(
                    &path,
                    &format!("{k7}.weight"),
                    &w7,
                    &[Some(f), Some(f), Some(1), Some(1)],
                )?;
                w7
            };
            let b7 = take(&t, &format!("{k7}.bias"), "fc7")?;
            check_shape(&path, &format!("{k7}.bias"), &b7, &[Some(f)])?;
            let fc8 = if t.contains_key(&format!("{k8}.weight"))
                || t.contains_key(&format!("{k8}.bias"))
            {
                let w8 = take(&t, &format!("{k8}.weight"), "fc8")?;
                let k = w8.dims().first().copied().unwrap_or(0);
                check_shape(&path, &format!("{k8}.weight"), &w8, &[Some(k), Some(f)])?;
                let b8 = take(&t, &format!("{k8}.bias"), "fc8")?;
                check_shape(&path, &format!("{k8}.bias"), &b8, &[Some(k)])?;
                Some(ConvParams {
                    name: LayerName::Fc8,
                    weight: w8.reshape((k, f, 1, 1))?,
                    bias: b8,
                })
            } else {
                None
            };
            Some(HeadParams {
                fc6: ConvParams {
                    name: LayerName::Fc6,
                    weight: w6.contiguous()?,
                    bias: b6,
                },
                fc7: ConvParams {
                    name: LayerName::Fc7,
                    weight: w7.contiguous()?,
                    bias: b7,
                },
                fc8,
            })
        }
    };

    // Strict: every tensor in the file must have been used.
    t.retain(|k, _| !used.contains(k));
    if !t.is_empty() {
        let extra: Vec<_> = t.keys().take(8).cloned().collect();
        return Err(Error::NotVgg {
            path,
            reason: format!(
                "unexpected tensors for configuration {config}{}: {}{}",
                if batch_norm { " with batch norm" } else { "" },
                extra.join(", "),
                if t.len() > 8 {
                    format!(" and {} more", t.len() - 8)
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
        .map(|e| e.map_or("*".to_string(), |v| v.to_string()))
        .collect();
    Err(Error::Shape {
        path: path.to_path_buf(),
        key: key.to_string(),
        expected: format!("({})", words.join(", ")),
        found: dims.to_vec(),
    })
}

/// Which configuration has convolutions exactly at the `features.N` indices of the file, with
/// the same kernel sizes.
fn infer_config(
    path: &Path,
    t: &BTreeMap<String, Tensor>,
) -> Result<(ConfigName, bool, Vec<BodyLayer>)> {
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
        let layers = indexed_layers(config, batch_norm);
        let want: BTreeMap<usize, usize> = layers
            .iter()
            .filter_map(|l| match l.spec {
                Spec::Conv { kernel, .. } => Some((l.index, kernel)),
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

/// The body layers of `config` with torchvision indices, accounting for batch-norm modules.
fn indexed_layers(config: ConfigName, batch_norm: bool) -> Vec<BodyLayer> {
    let mut layers = config.layers();
    if batch_norm {
        let mut index = 0;
        for l in &mut layers {
            l.index = index;
            index += match l.spec {
                Spec::Conv { .. } => 3, // conv, bn, relu
                _ => 1,
            };
        }
    }
    layers
}

/// Writes weights as a torchvision-named safetensors file (fc6 as a Linear), with metadata.
pub fn save_torchvision(
    weights: &VggWeights,
    path: &Path,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut out: Vec<(String, Tensor)> = Vec::new();
    let layers = indexed_layers(weights.config, false);
    let mut it = weights.convs.iter();
    for l in layers
        .iter()
        .filter(|l| matches!(l.spec, Spec::Conv { .. }))
    {
        let c = it
            .next()
            .ok_or_else(|| Error::InvalidParam("too few conv layers".into()))?;
        out.push((
            format!("features.{}.weight", l.index),
            c.weight.to_device(&Device::Cpu)?,
        ));
        out.push((
            format!("features.{}.bias", l.index),
            c.bias.to_device(&Device::Cpu)?,
        ));
    }
    if let Some(h) = &weights.head {
        let f = h.fc6.weight.dims()[0];
        out.push((
            "classifier.0.weight".into(),
            h.fc6.weight.flatten_from(1)?.reshape((f, ()))?,
        ));
        out.push(("classifier.0.bias".into(), h.fc6.bias.clone()));
        out.push(("classifier.3.weight".into(), h.fc7.weight.flatten_from(1)?));
        out.push(("classifier.3.bias".into(), h.fc7.bias.clone()));
        if let Some(f8) = &h.fc8 {
            out.push(("classifier.6.weight".into(), f8.weight.flatten_from(1)?));
            out.push(("classifier.6.bias".into(), f8.bias.clone()));
        }
    }
    let out: Vec<(String, Tensor)> = out
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    let tmp = path.with_extension("safetensors.tmp");
    let meta: std::collections::HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let views: Vec<(String, TensorBytes)> = out
        .iter()
        .map(|(k, v)| Ok((k.clone(), TensorBytes::new(v)?)))
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// A float32 tensor as raw little-endian bytes, for safetensors serialisation.
struct TensorBytes {
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl TensorBytes {
    fn new(t: &Tensor) -> Result<Self> {
        let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
        Ok(TensorBytes {
            shape: t.dims().to_vec(),
            data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
    }
}

impl safetensors::View for TensorBytes {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}
