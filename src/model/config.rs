//! The VGG family as data: the paper's Table 1 (configurations A, A-LRN, B, C, D, E) in one
//! table, and layer names in the paper's convention (`conv3_2`, `pool4`, `fc7`). Widths here are
//! ImageNet's; a checkpoint may be narrower (the loader reads the real widths from the tensor
//! shapes). How checkpoints number these layers is [`super::checkpoint`]'s business; how a
//! network is walked is [`super::plan`]'s.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Param, Result};

/// One of the paper's six configurations (Table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ConfigName {
    /// 11 weight layers.
    A,
    /// A with local response normalisation after the first conv layer.
    #[serde(rename = "A-LRN")]
    ALrn,
    /// 13 weight layers.
    B,
    /// 16 weight layers, the last conv of blocks 3-5 is 1x1.
    C,
    /// 16 weight layers, all 3x3 (VGG-16).
    D,
    /// 19 weight layers (VGG-19).
    E,
}

/// One entry of a configuration's conv body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// A convolution with square kernel `kernel` (3 or 1) and `width` output channels (ImageNet
    /// width), padding `kernel / 2`, followed by ReLU.
    Conv {
        /// Kernel side.
        kernel: usize,
        /// Output channels of the ImageNet network.
        width: usize,
    },
    /// Local response normalisation across channels (Krizhevsky et al.).
    Lrn,
    /// 2x2 max-pooling, stride 2, flooring odd sizes.
    Pool,
}

const fn c3(width: usize) -> Spec {
    Spec::Conv { kernel: 3, width }
}
const fn c1(width: usize) -> Spec {
    Spec::Conv { kernel: 1, width }
}
const M: Spec = Spec::Pool;
const L: Spec = Spec::Lrn;

/// The paper's Table 1, conv bodies only (all nets end with the same three fc layers).
const TABLE: [(ConfigName, &[Spec]); 6] = [
    (
        ConfigName::A,
        &[
            c3(64),
            M,
            c3(128),
            M,
            c3(256),
            c3(256),
            M,
            c3(512),
            c3(512),
            M,
            c3(512),
            c3(512),
            M,
        ],
    ),
    (
        ConfigName::ALrn,
        &[
            c3(64),
            L,
            M,
            c3(128),
            M,
            c3(256),
            c3(256),
            M,
            c3(512),
            c3(512),
            M,
            c3(512),
            c3(512),
            M,
        ],
    ),
    (
        ConfigName::B,
        &[
            c3(64),
            c3(64),
            M,
            c3(128),
            c3(128),
            M,
            c3(256),
            c3(256),
            M,
            c3(512),
            c3(512),
            M,
            c3(512),
            c3(512),
            M,
        ],
    ),
    (
        ConfigName::C,
        &[
            c3(64),
            c3(64),
            M,
            c3(128),
            c3(128),
            M,
            c3(256),
            c3(256),
            c1(256),
            M,
            c3(512),
            c3(512),
            c1(512),
            M,
            c3(512),
            c3(512),
            c1(512),
            M,
        ],
    ),
    (
        ConfigName::D,
        &[
            c3(64),
            c3(64),
            M,
            c3(128),
            c3(128),
            M,
            c3(256),
            c3(256),
            c3(256),
            M,
            c3(512),
            c3(512),
            c3(512),
            M,
            c3(512),
            c3(512),
            c3(512),
            M,
        ],
    ),
    (
        ConfigName::E,
        &[
            c3(64),
            c3(64),
            M,
            c3(128),
            c3(128),
            M,
            c3(256),
            c3(256),
            c3(256),
            c3(256),
            M,
            c3(512),
            c3(512),
            c3(512),
            c3(512),
            M,
            c3(512),
            c3(512),
            c3(512),
            c3(512),
            M,
        ],
    ),
];

/// Width of fc6 and fc7 in the ImageNet networks.
pub const IMAGENET_FC_WIDTH: usize = 4096;
/// Number of ImageNet classes (fc8 width).
pub const IMAGENET_CLASSES: usize = 1000;
/// Spatial size of fc6's kernel in the ImageNet networks: fc6 is a 7x7 convolution over the pool5
/// of a 224 crop. A network trained at crop 32k has a k x k fc6 (see `weights`).
pub const FC6_KERNEL: usize = 7;

/// Krizhevsky's LRN parameters, used by A-LRN: window `n`, `alpha`, `beta`, `k`.
/// The sum is scaled by `alpha / n`, as in Caffe and PyTorch's `LocalResponseNorm`.
pub const LRN_PARAMS: (usize, f64, f64, f64) = (5, 1e-4, 0.75, 2.0);

impl ConfigName {
    /// All configurations, in the paper's order.
    pub const ALL: [ConfigName; 6] = [
        ConfigName::A,
        ConfigName::ALrn,
        ConfigName::B,
        ConfigName::C,
        ConfigName::D,
        ConfigName::E,
    ];

    /// The conv body of this configuration, as in the paper's Table 1.
    pub fn specs(self) -> &'static [Spec] {
        TABLE
            .iter()
            .find(|(n, _)| *n == self)
            .map(|(_, s)| *s)
            .expect("every config is in TABLE")
    }

    /// Number of weight layers (convs + 3 fc), the number in the paper's column heads.
    pub fn weight_layers(self) -> usize {
        self.specs()
            .iter()
            .filter(|s| matches!(s, Spec::Conv { .. }))
            .count()
            + 3
    }

    /// The named layers of the conv body, in order.
    pub fn layers(self) -> Vec<BodyLayer> {
        let mut out = Vec::new();
        let (mut block, mut in_block) = (1usize, 0usize);
        for spec in self.specs() {
            let (name, kernel, width) = match *spec {
                Spec::Conv { kernel, width } => {
                    in_block += 1;
                    (LayerName::Conv(block, in_block), kernel, width)
                }
                Spec::Lrn => (LayerName::Lrn, 0, 0),
                Spec::Pool => {
                    let name = LayerName::Pool(block);
                    block += 1;
                    in_block = 0;
                    (name, 0, 0)
                }
            };
            out.push(BodyLayer {
                spec: *spec,
                name,
                kernel,
                width,
            });
        }
        out
    }
}

crate::util::choice::choice!(ConfigName, "VGG configuration", crate::error::Param::Config, [
    ConfigName::A => "A" | "vgg11": "11 weight layers.",
    ConfigName::ALrn => "A-LRN" | "alrn" | "a_lrn": "A with LRN.",
    ConfigName::B => "B" | "vgg13": "13 weight layers.",
    ConfigName::C => "C": "16 weight layers, 1x1 convs in blocks 3-5.",
    ConfigName::D => "D" | "vgg16": "16 weight layers (VGG-16).",
    ConfigName::E => "E" | "vgg19": "19 weight layers (VGG-19).",
]);

/// A layer of the conv body with its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLayer {
    /// What the layer is.
    pub spec: Spec,
    /// Its name in the paper's convention.
    pub name: LayerName,
    /// Kernel side for convs, 0 otherwise.
    pub kernel: usize,
    /// ImageNet output width for convs, 0 otherwise.
    pub width: usize,
}

/// A layer name in the paper's convention: `conv3_2` (after ReLU), `pool4`, `fc6`, `fc7` (after
/// ReLU), `fc8` (class scores, no softmax), `lrn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerName {
    /// `conv{block}_{k}`, after its ReLU.
    Conv(usize, usize),
    /// The local response normalisation of A-LRN.
    Lrn,
    /// `pool{block}`.
    Pool(usize),
    /// fc6 as a 7x7 conv, after ReLU.
    Fc6,
    /// fc7 as a 1x1 conv, after ReLU: the penultimate layer, the paper's descriptor.
    Fc7,
    /// fc8, the class score map (no softmax).
    Fc8,
}

crate::util::serde_as_str!(LayerName);

impl LayerName {
    /// Whether this layer belongs to the fully-convolutional head (fc6..fc8).
    pub fn is_head(self) -> bool {
        matches!(self, LayerName::Fc6 | LayerName::Fc7 | LayerName::Fc8)
    }
}

impl fmt::Display for LayerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerName::Conv(b, k) => write!(f, "conv{b}_{k}"),
            LayerName::Lrn => f.write_str("lrn"),
            LayerName::Pool(b) => write!(f, "pool{b}"),
            LayerName::Fc6 => f.write_str("fc6"),
            LayerName::Fc7 => f.write_str("fc7"),
            LayerName::Fc8 => f.write_str("fc8"),
        }
    }
}

impl FromStr for LayerName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::param(
                Param::Layer,
                format!(
                    "unknown layer `{s}` (expected conv1_1 .. conv5_4, pool1 .. pool5, fc6, fc7 \
                     or fc8)"
                ),
            )
        };
        let l = s.to_ascii_lowercase();
        match l.as_str() {
            "fc6" => return Ok(LayerName::Fc6),
            "fc7" => return Ok(LayerName::Fc7),
            "fc8" | "scores" | "logits" => return Ok(LayerName::Fc8),
            "lrn" => return Ok(LayerName::Lrn),
            _ => {}
        }
        if let Some(rest) = l.strip_prefix("pool") {
            let b: usize = rest.parse().map_err(|_| bad())?;
            return if (1..=5).contains(&b) {
                Ok(LayerName::Pool(b))
            } else {
                Err(bad())
            };
        }
        if let Some(rest) = l.strip_prefix("conv") {
            let (b, k) = rest.split_once('_').ok_or_else(bad)?;
            let (b, k): (usize, usize) =
                (b.parse().map_err(|_| bad())?, k.parse().map_err(|_| bad())?);
            return if (1..=5).contains(&b) && (1..=4).contains(&k) {
                Ok(LayerName::Conv(b, k))
            } else {
                Err(bad())
            };
        }
        Err(bad())
    }
}

/// Parameter count of the full ImageNet network of a configuration (conv body + fc6..fc8).
pub fn imagenet_param_count(config: ConfigName) -> usize {
    let mut c_in = 3;
    let mut n = 0;
    for l in config.layers() {
        if let Spec::Conv { kernel, width } = l.spec {
            n += width * c_in * kernel * kernel + width;
            c_in = width;
        }
    }
    let f = IMAGENET_FC_WIDTH;
    n += f * c_in * FC6_KERNEL * FC6_KERNEL + f;
    n += f * f + f;
    n += IMAGENET_CLASSES * f + IMAGENET_CLASSES;
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_weight_layer_counts() {
        let counts: Vec<_> = ConfigName::ALL.iter().map(|c| c.weight_layers()).collect();
        assert_eq!(counts, vec![11, 11, 13, 16, 16, 19]);
    }

    #[test]
    fn imagenet_parameter_counts_match_torchvision() {
        // torchvision: sum(p.numel() for p in vgg16().parameters()) etc.
        assert_eq!(imagenet_param_count(ConfigName::A), 132_863_336);
        assert_eq!(imagenet_param_count(ConfigName::B), 133_047_848);
        assert_eq!(imagenet_param_count(ConfigName::D), 138_357_544);
        assert_eq!(imagenet_param_count(ConfigName::E), 143_667_240);
        // The paper's Table 2: A, B, C, D, E are 133, 133, 134, 138, 144 million.
        assert_eq!(
            (imagenet_param_count(ConfigName::C) as f64 / 1e6).round(),
            134.0
        );
    }

    #[test]
    fn layer_names_round_trip() {
        for s in ["conv1_1", "conv5_4", "pool3", "fc6", "fc7", "fc8"] {
            assert_eq!(s.parse::<LayerName>().unwrap().to_string(), s);
        }
        for s in ["conv6_1", "conv1", "pool0", "fc9", "", "relu"] {
            assert!(s.parse::<LayerName>().is_err(), "{s}");
        }
        assert_eq!("vgg19".parse::<ConfigName>().unwrap(), ConfigName::E);
        assert_eq!(ConfigName::ALrn.to_string(), "A-LRN");
    }
}
