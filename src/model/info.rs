//! A checkpoint described for a person (`vggfeat info`): configuration, the plan's layer table
//! with weight shapes, channels and strides, parameter count, and the input convention.

use super::checkpoint::{expected_normalization, meta};
use super::config::LayerName;
use super::params::{Format, VggWeights};
use super::plan::{Conv, Op, Plan};
use crate::preprocess::Normalization;

/// One row of [`ModelInfo`]'s layer table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerInfo {
    /// Paper name (`conv3_2`, `pool3`, `fc6`).
    pub name: String,
    /// What it computes.
    pub kind: String,
    /// Weight shape (empty for pooling / LRN).
    pub weight_shape: Vec<usize>,
    /// Output channels.
    pub channels: usize,
    /// Total stride relative to the input.
    pub stride: usize,
    /// Parameters (weights + biases).
    pub params: usize,
}

/// A summary of a checkpoint, for `vggfeat info`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// The file.
    pub path: String,
    /// Configuration letter.
    pub config: String,
    /// Weight layers (the paper's depth).
    pub weight_layers: usize,
    /// File format and naming.
    pub format: String,
    /// Element type on disk.
    pub dtype: String,
    /// Whether batch norm was folded into the convs.
    pub batch_norm: bool,
    /// Layer table.
    pub layers: Vec<LayerInfo>,
    /// Total parameters.
    pub params: usize,
    /// fc8 classes, if any.
    pub classes: Option<usize>,
    /// Expected input convention (`None` when the metadata names an unknown one).
    pub preprocess: Option<Normalization>,
    /// Where the convention came from.
    pub preprocess_source: String,
    /// Layers of the file that are not VGG layers and were left out (Keras files).
    pub ignored: Option<String>,
    /// A localisation net's box head (`vggfeat train --task localise`), described.
    pub box_head: Option<String>,
}

/// Reads the checkpoint at `path` and describes it ([`describe`]).
pub fn info(path: &std::path::Path) -> crate::error::Result<ModelInfo> {
    Ok(describe(&super::checkpoint::load(
        path,
        &candle_core::Device::Cpu,
    )?))
}

/// Describes a checkpoint: configuration, layer table with shapes, parameter count, preprocessing.
pub fn describe(w: &VggWeights) -> ModelInfo {
    let plan = Plan::new(w);
    let params = w.layers();
    let layers = plan
        .steps()
        .iter()
        .map(|s| {
            let (kind, p) = match s.op {
                Op::Conv(Conv {
                    kernel,
                    relu,
                    param,
                    sqrt_input,
                    ..
                }) => {
                    let kind = match s.name {
                        LayerName::Fc6 if sqrt_input => format!(
                            "square root of the input, conv {kernel}x{kernel} + ReLU (dense head)"
                        ),
                        LayerName::Fc6 => format!("conv {kernel}x{kernel} + ReLU (dense head)"),
                        LayerName::Fc8 => "conv 1x1 (class scores)".to_string(),
                        _ if relu => format!("conv {kernel}x{kernel} + ReLU"),
                        _ => format!("conv {kernel}x{kernel}"),
                    };
                    (kind, Some(params[param]))
                }
                Op::Lrn => ("LRN".to_string(), None),
                Op::Pool => ("max-pool 2x2".to_string(), None),
            };
            LayerInfo {
                name: s.name.to_string(),
                kind,
                weight_shape: p.map(|p| p.weight.dims().to_vec()).unwrap_or_default(),
                channels: s.channels,
                stride: s.stride,
                params: p.map_or(0, |p| p.param_count()),
            }
        })
        .collect();
    let (pre, src) = match expected_normalization(w) {
        Ok((n, src)) => (Some(n), src.to_string()),
        Err(e) => (None, e.to_string()),
    };
    ModelInfo {
        path: w.path.display().to_string(),
        config: w.config.to_string(),
        weight_layers: params.len(),
        format: match w.format {
            Format::KerasH5 => "Keras HDF5, Keras names (read as torchvision's)".to_string(),
            f => format!("{f:?}, {:?} names", w.naming),
        },
        dtype: format!("{:?}", w.dtype_on_disk),
        batch_norm: w.batch_norm,
        layers,
        params: w.param_count(),
        classes: w.num_classes(),
        preprocess: pre,
        preprocess_source: src,
        ignored: w.metadata.get(meta::IGNORED).cloned(),
        box_head: w.metadata.get(meta::BOX_HEAD).map(|h| {
            let n = w.num_classes().unwrap_or(0);
            match h.as_str() {
                "scr" => format!(
                    "scr, single-class regression: fc8's {n} outputs are one box (centre x, \
                     centre y, width, height in units of the crop)"
                ),
                "pcr" => format!(
                    "pcr, per-class regression: fc8's {n} outputs are {} boxes, one per class \
                     (centre x, centre y, width, height in units of the crop)",
                    n / 4
                ),
                other => format!("`{other}` (unknown to this version)"),
            }
        }),
    }
}

impl std::fmt::Display for ModelInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "file:          {}", self.path)?;
        writeln!(
            f,
            "configuration: {} ({} weight layers{})",
            self.config,
            self.weight_layers,
            if self.batch_norm {
                ", batch norm folded"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "format:        {}, {} on disk",
            self.format,
            self.dtype.to_lowercase()
        )?;
        writeln!(
            f,
            "preprocess:    {} ({})",
            self.preprocess
                .map_or("unknown".to_string(), |p| p.to_string()),
            self.preprocess_source
        )?;
        match self.classes {
            Some(k) => writeln!(f, "classes:       {k}")?,
            None => writeln!(f, "classes:       none (no fc8)")?,
        }
        if let Some(i) = &self.ignored {
            writeln!(f, "not VGG:       {i} (left out)")?;
        }
        if let Some(b) = &self.box_head {
            writeln!(f, "box head:      {b}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<8} {:<30} {:<20} {:>8} {:>7} {:>12}",
            "layer", "kind", "weight", "channels", "stride", "params"
        )?;
        for l in &self.layers {
            let shape = if l.weight_shape.is_empty() {
                "-".to_string()
            } else {
                format!("{:?}", l.weight_shape)
            };
            writeln!(
                f,
                "{:<8} {:<30} {:<20} {:>8} {:>7} {:>12}",
                l.name,
                l.kind,
                shape,
                l.channels,
                l.stride,
                group_digits(l.params)
            )?;
        }
        write!(f, "\nparameters:    {}", group_digits(self.params))
    }
}

/// `138357544` -> `138,357,544`.
pub fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
