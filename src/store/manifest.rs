//! `manifest.json`: everything that determines a store's contents, as typed fields. The JSON
//! spelling of every enum is its display name (`"folder"`, `"D"`, `"A-LRN"`, `"fc7"`,
//! `"torchvision"`), so manifests written before the fields were typed read unchanged.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::aggregate::RecordLayout;
use crate::dataset::SourceKind;
use crate::error::{Error, Result};
use crate::model::Precision;
use crate::model::config::{ConfigName, LayerName};
use crate::preprocess::Normalization;

/// Version of the on-disk format described in [`super`]'s docs. A store of another version is
/// refused with a message naming both.
pub const FORMAT_VERSION: u32 = 1;

/// Where the inputs came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// The input path as canonicalised at extraction time.
    pub root: String,
    /// Source kind.
    pub kind: SourceKind,
    /// VOC split, if any.
    pub split: Option<String>,
    /// `--classes`, if any (absent in stores that used every class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// `--limit-per-class`, if any.
    pub limit_per_class: Option<usize>,
    /// `--shard i/N` as (i, N), if any.
    pub shard: Option<(usize, usize)>,
    /// The other inputs, canonicalised, when `extract` was given several (tar shards, folders,
    /// tables).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<String>,
    /// `--root` of table inputs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_root: Option<String>,
}

impl InputSpec {
    /// An input at `root` of `kind`, with every selection at its default (the whole input).
    pub fn new(root: impl Into<String>, kind: SourceKind) -> Self {
        InputSpec {
            root: root.into(),
            kind,
            split: None,
            classes: None,
            limit_per_class: None,
            shard: None,
            more: Vec::new(),
            table_root: None,
        }
    }
}

/// One network of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSpec {
    /// The weights file as given (or a description of weights made in memory).
    pub weights: String,
    /// SHA-256 (hex) of the weights file, or of the tensors of weights made in memory.
    pub sha256: String,
    /// Configuration.
    pub config: ConfigName,
    /// Descriptor layer.
    pub layer: LayerName,
    /// Descriptor dimension (channels of the layer).
    pub dim: usize,
    /// Input convention.
    pub preprocess: Normalization,
    /// Arithmetic of the net's products (stores written before it was recorded are f32).
    #[serde(default)]
    pub precision: Precision,
}

impl NetSpec {
    /// The fields that determine this net's descriptors and differ from `other`, in words, each
    /// starting with `what` (e.g. `net 0 layer: fc7 vs fc6`). The weights path is ignored: the
    /// hash identifies the weights.
    pub fn differences(&self, other: &NetSpec, what: &str) -> Vec<String> {
        let (x, y) = (self, other);
        [
            ("weights (sha256)", x.sha256.clone(), y.sha256.clone()),
            ("configuration", x.config.to_string(), y.config.to_string()),
            ("layer", x.layer.to_string(), y.layer.to_string()),
            ("dimension", x.dim.to_string(), y.dim.to_string()),
            (
                "preprocessing",
                x.preprocess.to_string(),
                y.preprocess.to_string(),
            ),
            (
                "precision",
                x.precision.to_string(),
                y.precision.to_string(),
            ),
        ]
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(field, a, b)| format!("{what} {field}: {a} vs {b}"))
        .collect()
    }
}

/// Everything that determines a store's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// On-disk format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// vggfeat version that wrote the store.
    pub tool_version: String,
    /// Inputs.
    pub input: InputSpec,
    /// Networks, in `--weights` order.
    pub nets: Vec<NetSpec>,
    /// Scales Q (smallest image side), in order.
    pub scales: Vec<u32>,
    /// Whether descriptors average the horizontal flip.
    pub flip: bool,
    /// Decode limit in pixels (affects which inputs fail).
    pub max_pixels: u64,
}

impl Manifest {
    /// Every file-system path the manifest names (the inputs, the tables' root, each net's
    /// weights), so that they can be rewritten together (`metrics.json` names them relative to
    /// itself).
    pub fn paths_mut(&mut self) -> impl Iterator<Item = &mut String> {
        let input = &mut self.input;
        std::iter::once(&mut input.root)
            .chain(input.more.iter_mut())
            .chain(input.table_root.iter_mut())
            .chain(self.nets.iter_mut().map(|n| &mut n.weights))
    }

    /// How a successful record's floats are laid out: per net, every scale.
    pub fn layout(&self) -> RecordLayout {
        RecordLayout {
            dims: self.nets.iter().map(|n| n.dim).collect(),
            scales: self.scales.len(),
        }
    }

    /// What makes descriptors of this store comparable with `other`'s, where they differ: the
    /// nets `mine` of this store against the nets `theirs` of `other` (pairwise), the scales and
    /// the flip. The inputs may differ (a VOC trainval store beside a test store). Empty when
    /// the two give the same kind of descriptor.
    pub fn descriptor_differences(
        &self,
        mine: &[usize],
        other: &Manifest,
        theirs: &[usize],
    ) -> Vec<String> {
        let mut d = Vec::new();
        if mine.len() != theirs.len() {
            d.push(format!(
                "number of nets: {} vs {}",
                mine.len(),
                theirs.len()
            ));
        }
        for (&i, &j) in mine.iter().zip(theirs) {
            let what = if i == j {
                format!("net {i}")
            } else {
                format!("net {i} (vs {j})")
            };
            match (self.nets.get(i), other.nets.get(j)) {
                (Some(x), Some(y)) => d.extend(x.differences(y, &what)),
                _ => d.push(format!("{what}: not in both stores")),
            }
        }
        if self.scales != other.scales {
            d.push(format!("scales: {:?} vs {:?}", self.scales, other.scales));
        }
        if self.flip != other.flip {
            d.push(format!("flip: {} vs {}", self.flip, other.flip));
        }
        d
    }

    /// Floats per successful record.
    pub fn floats_per_record(&self) -> usize {
        self.layout().floats()
    }

    /// Offset and length of (net, scale) within a record's floats.
    pub fn slot(&self, net: usize, scale: usize) -> (usize, usize) {
        self.layout().slot(net, scale)
    }

    /// The fields that differ from `other`, in words (weights paths are ignored: the hash
    /// identifies a net). With `ignore_shard`, shard assignments may differ (for merging).
    pub fn differences(&self, other: &Manifest, ignore_shard: bool) -> Vec<String> {
        self.differences_but(other, ignore_shard, false)
    }

    /// [`Manifest::differences`], ignoring the input's root with `ignore_root` (shards of one
    /// dataset mounted at different paths, known to be the same by their fingerprints).
    pub fn differences_but(
        &self,
        other: &Manifest,
        ignore_shard: bool,
        ignore_root: bool,
    ) -> Vec<String> {
        fn show<T: std::fmt::Debug>(v: &T) -> String {
            format!("{v:?}")
        }
        let mut d = Vec::new();
        let mut cmp = |what: &str, a: String, b: String| {
            if a != b {
                d.push(format!("{what}: {a} vs {b}"));
            }
        };
        let (a, b) = (self, other);
        cmp(
            "format version",
            a.format_version.to_string(),
            b.format_version.to_string(),
        );
        cmp(
            "tool version",
            a.tool_version.clone(),
            b.tool_version.clone(),
        );
        if !ignore_root {
            cmp("input", a.input.root.clone(), b.input.root.clone());
            cmp("other inputs", show(&a.input.more), show(&b.input.more));
            cmp(
                "table root",
                show(&a.input.table_root),
                show(&b.input.table_root),
            );
        } else {
            cmp(
                "number of inputs",
                a.input.more.len().to_string(),
                b.input.more.len().to_string(),
            );
        }
        cmp(
            "input kind",
            a.input.kind.to_string(),
            b.input.kind.to_string(),
        );
        cmp("split", show(&a.input.split), show(&b.input.split));
        cmp("classes", show(&a.input.classes), show(&b.input.classes));
        cmp(
            "limit per class",
            show(&a.input.limit_per_class),
            show(&b.input.limit_per_class),
        );
        if !ignore_shard {
            cmp("shard", show(&a.input.shard), show(&b.input.shard));
        }
        cmp(
            "number of nets",
            a.nets.len().to_string(),
            b.nets.len().to_string(),
        );
        cmp("scales", show(&a.scales), show(&b.scales));
        cmp("flip", a.flip.to_string(), b.flip.to_string());
        cmp(
            "max pixels",
            a.max_pixels.to_string(),
            b.max_pixels.to_string(),
        );
        for (i, (x, y)) in a.nets.iter().zip(&b.nets).enumerate() {
            d.extend(x.differences(y, &format!("net {i}")));
        }
        d
    }
}

/// Reads a store's manifest; a store of another format version is refused naming both versions.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let p = dir.join("manifest.json");
    let s = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let bad = |reason: String| Error::Data {
        path: p.clone(),
        reason,
    };
    let v: serde_json::Value =
        serde_json::from_str(&s).map_err(|e| bad(format!("invalid manifest: {e}")))?;
    match v.get("format_version").and_then(serde_json::Value::as_u64) {
        Some(n) if n == u64::from(FORMAT_VERSION) => {}
        Some(n) => {
            return Err(bad(format!(
                "store format version {n}; this vggfeat ({}) reads version {FORMAT_VERSION}",
                env!("CARGO_PKG_VERSION")
            )));
        }
        None => return Err(bad("invalid manifest: no `format_version`".into())),
    }
    serde_json::from_value(v).map_err(|e| bad(format!("invalid manifest: {e}")))
}
