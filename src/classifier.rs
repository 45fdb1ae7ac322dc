//! A trained transfer classifier on disk: the one-vs-rest linear SVMs of an `svm` run (weights,
//! biases, class names, the C chosen per class) together with a description of the descriptors
//! they take ([`FeatureSpec`]: the nets with their weights' SHA-256, layer and dimension, the
//! scales, the flip and the aggregation), so that `vggfeat predict` can apply them to another
//! store and refuse one whose descriptors are not the kind the classifier was trained on.
//!
//! The file is safetensors: tensors `weights` (K x D, f32) and `biases` (K, f32), and the metadata
//! key `vggfeat.classifier` holding the rest as JSON (classes, C per class, features, what it was
//! trained on, format version). Any safetensors reader (numpy, PyTorch) can use the weights as
//! they are: `scores = X @ weights.T + biases`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::error::{Error, Param, Result};
use crate::store::{Manifest, NetSpec};
use crate::svm::{LinearSvm, OneVsRest};

/// The classifier file format version.
pub const CLASSIFIER_FORMAT: u32 = 1;

/// The safetensors metadata key of the classifier's description.
const META_KEY: &str = "vggfeat.classifier";

/// What descriptors a classifier takes: which nets (identified by their weights' hash and
/// layer), which scales and flip, how scales were aggregated, and the resulting dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Scale aggregation.
    pub aggregate: Aggregate,
    /// The nets, fused by stacking in this order (weights named by file name only).
    pub nets: Vec<NetSpec>,
    /// Scales Q, in order.
    pub scales: Vec<u32>,
    /// Whether the per-scale descriptors average the horizontal flip.
    pub flip: bool,
    /// Descriptor dimension.
    pub dim: usize,
}

impl FeatureSpec {
    /// The descriptors [`crate::store::aggregate_store`] makes of a store with `manifest` for
    /// `nets` (indices into its nets) aggregated by `aggregate`.
    pub fn of_store(manifest: &Manifest, aggregate: Aggregate, nets: &[usize]) -> Self {
        // The weights are identified by their hash; of their path only the file name is kept,
        // so a classifier file does not carry the paths of the machine that made it.
        let specs: Vec<NetSpec> = nets
            .iter()
            .map(|&i| {
                let n = &manifest.nets[i];
                NetSpec {
                    weights: Path::new(&n.weights)
                        .file_name()
                        .map_or_else(|| n.weights.clone(), |f| f.to_string_lossy().into_owned()),
                    ..n.clone()
                }
            })
            .collect();
        FeatureSpec {
            aggregate,
            dim: manifest.layout().dim(aggregate, nets),
            nets: specs,
            scales: manifest.scales.clone(),
            flip: manifest.flip,
        }
    }

    /// In words: `stack of Q 256,384 (flip) of D fc7 [4096], 8192 dimensions`.
    pub fn describe(&self) -> String {
        let q: Vec<String> = self.scales.iter().map(u32::to_string).collect();
        let nets: Vec<String> = self.nets.iter().map(describe_net).collect();
        format!(
            "{} of Q {}{} of {}, {} dimensions",
            self.aggregate,
            q.join(","),
            if self.flip { " (flip)" } else { "" },
            nets.join(" & "),
            self.dim
        )
    }
}

/// `D fc7 [4096] (weights 1a2b3c4d)`, with ` bf16` after the dimension for bf16 descriptors.
fn describe_net(n: &NetSpec) -> String {
    let precision = match n.precision {
        crate::model::Precision::F32 => String::new(),
        p => format!(" {p}"),
    };
    format!(
        "{} {} [{}]{precision} (weights {})",
        n.config,
        n.layer,
        n.dim,
        n.sha256.chars().take(12).collect::<String>()
    )
}

/// The JSON stored under [`META_KEY`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    format: u32,
    classes: Vec<String>,
    c: Vec<f64>,
    features: FeatureSpec,
    trained_on: String,
    multi_label: bool,
}

/// One-vs-rest linear SVMs with what they were trained on.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    /// Class names, one per SVM.
    pub classes: Vec<String>,
    /// The C used for each class.
    pub c: Vec<f64>,
    /// The descriptors the classifier takes.
    pub features: FeatureSpec,
    /// What it was trained on, in words (`split 0 of caltech101: 3060 images`).
    pub trained_on: String,
    /// Multi-label (VOC: each class scored on its own) or multi-class (Caltech: the arg max).
    pub multi_label: bool,
    model: OneVsRest<f32>,
}

impl Classifier {
    /// Wraps a fitted model; one class name and one C per binary SVM, whose dimension must be
    /// `features.dim`.
    pub fn new(
        model: OneVsRest<f32>,
        classes: Vec<String>,
        c: Vec<f64>,
        features: FeatureSpec,
        trained_on: String,
        multi_label: bool,
    ) -> Result<Self> {
        let k = model.n_classes();
        if classes.len() != k || c.len() != k {
            return Err(Error::Internal(format!(
                "classifier: {k} SVMs, {} class names, {} C values",
                classes.len(),
                c.len()
            )));
        }
        if let Some(m) = model.models().first()
            && m.weights().len() != features.dim
        {
            return Err(Error::Internal(format!(
                "classifier: SVMs of dimension {}, features of dimension {}",
                m.weights().len(),
                features.dim
            )));
        }
        Ok(Classifier {
            classes,
            c,
            features,
            trained_on,
            multi_label,
            model,
        })
    }

    /// The binary SVMs.
    pub fn model(&self) -> &OneVsRest<f32> {
        &self.model
    }

    /// Decision values, `n x K`, of descriptors `x` (`n x D`); refuses another dimension.
    pub fn decision_values(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if x.ncols() != self.features.dim {
            return Err(Error::Usage(format!(
                "descriptors of dimension {}, the classifier takes {} ({})",
                x.ncols(),
                self.features.dim,
                self.features.describe()
            )));
        }
        Ok(self.model.decision_function(x))
    }

    /// Writes the classifier as safetensors (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let k = self.classes.len();
        let d = self.features.dim;
        let mut w = Vec::with_capacity(k * d);
        for m in self.model.models() {
            w.extend(m.weights().iter());
        }
        let b: Vec<f32> = self.model.models().iter().map(|m| m.bias()).collect();
        let meta = Meta {
            format: CLASSIFIER_FORMAT,
            classes: self.classes.clone(),
            c: self.c.clone(),
            features: self.features.clone(),
            trained_on: self.trained_on.clone(),
            multi_label: self.multi_label,
        };
        let json = serde_json::to_string(&meta).map_err(|e| Error::Internal(e.to_string()))?;
        let views = vec![
            ("biases", crate::util::F32View::new(vec![k], &b)),
            ("weights", crate::util::F32View::new(vec![k, d], &w)),
        ];
        let bytes = safetensors::serialize(views, Some(HashMap::from([(META_KEY.into(), json)])))
            .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
        crate::util::write_atomic(path, &bytes)
    }

    /// Reads a classifier written by [`Classifier::save`]; any other file is refused with the
    /// reason.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Data {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY))
            .ok_or_else(|| {
                bad(format!(
                    "no `{META_KEY}` metadata: not a classifier saved by `vggfeat svm`"
                ))
            })?;
        let meta: Meta =
            serde_json::from_str(json).map_err(|e| bad(format!("`{META_KEY}` metadata: {e}")))?;
        if meta.format != CLASSIFIER_FORMAT {
            return Err(bad(format!(
                "classifier format {} (this vggfeat reads {CLASSIFIER_FORMAT})",
                meta.format
            )));
        }
        let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = st
                .tensor(name)
                .map_err(|_| bad(format!("no tensor `{name}`")))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
                return Err(bad(format!(
                    "tensor `{name}`: {:?} {:?}, expected F32 {shape:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(bad(format!("tensor `{name}`: non-finite value at {i}")));
            }
            Ok(v)
        };
        let (k, d) = (meta.classes.len(), meta.features.dim);
        if meta.c.len() != k || k == 0 {
            return Err(bad(format!(
                "{k} classes and {} C values in the metadata",
                meta.c.len()
            )));
        }
        let w = tensor("weights", &[k, d])?;
        let b = tensor("biases", &[k])?;
        let models = (0..k)
            .map(|j| LinearSvm::from_parts(Array1::from(w[j * d..(j + 1) * d].to_vec()), b[j]))
            .collect();
        Classifier::new(
            OneVsRest::from_models(models)?,
            meta.classes,
            meta.c,
            meta.features,
            meta.trained_on,
            meta.multi_label,
        )
        .map_err(|e| bad(e.to_string()))
    }

    /// The nets of a store (indices into `manifest.nets`) that give this classifier's
    /// descriptors. Refuses, naming what the classifier takes and what the store has: another
    /// aggregation (`aggregate`, when the user asked for one), a descriptor dimension that
    /// differs, nets that are not in the store (by weights hash and layer), other scales or flip.
    pub fn nets_in(
        &self,
        manifest: &Manifest,
        store: &Path,
        aggregate: Option<Aggregate>,
    ) -> Result<Vec<usize>> {
        let want = &self.features;
        if let Some(a) = aggregate
            && a != want.aggregate
        {
            return Err(Error::param(
                Param::Aggregate,
                format!(
                    "{a}: the classifier was trained on `{}` descriptors ({})",
                    want.aggregate,
                    want.describe()
                ),
            ));
        }
        let found: Vec<Option<usize>> = want
            .nets
            .iter()
            .map(|n| {
                manifest.nets.iter().position(|s| {
                    s.sha256 == n.sha256
                        && s.layer == n.layer
                        && s.config == n.config
                        && s.preprocess == n.preprocess
                        && s.dim == n.dim
                })
            })
            .collect();
        let all: Vec<usize> = (0..manifest.nets.len()).collect();
        let matched: Option<Vec<usize>> = found.iter().copied().collect();
        let have =
            FeatureSpec::of_store(manifest, want.aggregate, matched.as_deref().unwrap_or(&all));
        let refuse = |what: &str| Error::Data {
            path: PathBuf::from(store),
            reason: format!(
                "{what}: the classifier takes {}, the store gives {}",
                want.describe(),
                have.describe()
            ),
        };
        if have.dim != want.dim {
            return Err(refuse("descriptor dimension differs"));
        }
        let Some(matched) = matched else {
            return Err(refuse("the classifier's nets are not in the store"));
        };
        if have.scales != want.scales || have.flip != want.flip {
            return Err(refuse("scales or flip differ"));
        }
        Ok(matched)
    }
}

/// A classifier's decision values for every successful record of some stores.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// Image ids, sorted.
    pub ids: Vec<String>,
    /// The stores' labels of each image (possibly none).
    pub labels: Vec<Vec<String>>,
    /// The classifier's classes, in column order.
    pub classes: Vec<String>,
    /// Decision values, `n x K` (column `k` for `classes[k]`).
    pub values: Array2<f32>,
    /// Warnings about the stores (failed inputs left out, incomplete or stale stores).
    pub warnings: Vec<String>,
}

/// Applies `classifier` to the stores' descriptors (joined by id), aggregated as the classifier
/// was trained; refuses stores whose descriptors differ ([`Classifier::nets_in`]).
pub fn predict_with(
    classifier: &Classifier,
    stores: &[crate::store::Store],
    aggregate: Option<Aggregate>,
) -> Result<Predictions> {
    if stores.is_empty() {
        return Err(Error::param(
            Param::Features,
            "at least one feature store is needed",
        ));
    }
    let mut warnings = Vec::new();
    // Each store's own positions of the classifier's nets: another store may hold them in
    // another order.
    let mut parts = Vec::with_capacity(stores.len());
    for s in stores {
        let store_nets = classifier.nets_in(&s.manifest, &s.dir, aggregate)?;
        for (want, &i) in classifier.features.nets.iter().zip(&store_nets) {
            let have = s.manifest.nets[i].precision;
            if have != want.precision {
                warnings.push(format!(
                    "{}: net {i} was extracted in {have}, the classifier was trained on {} \
                     descriptors (they agree to about 1e-2; scores may differ slightly)",
                    s.dir.display(),
                    want.precision
                ));
            }
        }
        let failed = s.failures().len();
        if failed > 0 {
            warnings.push(format!(
                "{}: {failed} inputs failed extraction and are not scored",
                s.dir.display()
            ));
        }
        warnings.extend(
            crate::store::check_inputs(s)
                .warnings()
                .into_iter()
                .map(|w| format!("{}: {w}", s.dir.display())),
        );
        parts.push((s, store_nets));
    }
    let desc = crate::store::aggregate_parts(&parts, classifier.features.aggregate)?;
    let d = classifier.features.dim;
    let mut x = Array2::<f32>::zeros((desc.rows.len(), d));
    for (mut r, row) in x.rows_mut().into_iter().zip(&desc.rows) {
        if row.len() != d {
            return Err(Error::Internal(format!(
                "aggregated descriptor of dimension {}, expected {d}",
                row.len()
            )));
        }
        r.assign(&ndarray::ArrayView1::from(&row[..]));
    }
    Ok(Predictions {
        classes: classifier.classes.clone(),
        values: classifier.decision_values(x.view())?,
        ids: desc.ids,
        labels: desc.labels,
        warnings,
    })
}

/// Checked parameters of a prediction; obtained only from [`PredictParams::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictValidParams {
    model: PathBuf,
    features: Vec<PathBuf>,
    aggregate: Option<Aggregate>,
}

/// Saved classifiers applied to stores: a builder. Call [`check`](PredictParams::check) for the
/// only way to [`PredictValidParams`], and [`predict`] to run it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PredictParams(PredictValidParams);

impl Default for PredictValidParams {
    fn default() -> Self {
        PredictValidParams {
            model: PathBuf::new(),
            features: Vec::new(),
            aggregate: None,
        }
    }
}

impl PredictParams {
    /// The defaults: no classifier nor store yet, the classifier's own aggregation.
    pub fn new() -> Self {
        Self::default()
    }

    /// The classifier file an evaluation saved (`model_<split>.safetensors`). Required.
    pub fn model(mut self, model: impl Into<PathBuf>) -> Self {
        self.0.model = model.into();
        self
    }

    /// Feature stores to score, joined by image id. At least one.
    pub fn features<P: Into<PathBuf>>(mut self, stores: impl IntoIterator<Item = P>) -> Self {
        self.0.features = stores.into_iter().map(Into::into).collect();
        self
    }

    /// Check that the classifier was trained on this aggregation. Default `None`: use its own.
    pub fn aggregate(mut self, aggregate: Option<Aggregate>) -> Self {
        self.0.aggregate = aggregate;
        self
    }

    /// Checks the parameters without I/O.
    pub fn check(self) -> Result<PredictValidParams> {
        if self.0.model.as_os_str().is_empty() {
            return Err(Error::param(
                Param::Model,
                "the classifier file is required",
            ));
        }
        if self.0.features.is_empty() {
            return Err(Error::param(
                Param::Features,
                "at least one feature store is needed",
            ));
        }
        Ok(self.0)
    }
}

/// Loads the classifier and the stores of `p` and scores every successful record
/// ([`predict_with`]).
pub fn predict(p: &PredictValidParams) -> Result<Predictions> {
    let classifier = Classifier::load(&p.model)?;
    let stores = p
        .features
        .iter()
        .map(|s| crate::store::Store::open(s))
        .collect::<Result<Vec<_>>>()?;
    predict_with(&classifier, &stores, p.aggregate)
}
