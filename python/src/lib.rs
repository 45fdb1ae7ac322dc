//! The Python binding of vggfeat (`vggfeat._vggfeat`): a thin layer over the library's front
//! door. Keyword values are parsed by the library's own spellings, library errors become Python
//! exceptions naming the keyword or the item, compute runs with the interpreter released, and
//! arrays are handed to numpy without a copy. The Python package (`python/vggfeat`) adds what
//! Python idioms need: image conversion, pickling, progress bars, scikit-learn estimators.

use std::path::PathBuf;

use linfa::ParamGuard;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayDyn, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use vggfeat::dataset::{Dataset, Item, Selection};
use vggfeat::svm::{LinearSvm, LinearSvmParams, OneVsRest};
use vggfeat::{
    Aggregate, Choice, DeviceSpec, Engine, ExtractParams, Extractor, ExtractorParams, Image,
    LayerName, Nets, Precision, Preprocess, Progress, StoreStream,
};

pyo3::create_exception!(
    vggfeat,
    ImageError,
    PyOSError,
    "An image that cannot be used: its path (or its index for bytes and arrays) and the reason."
);
pyo3::create_exception!(
    vggfeat,
    CheckpointError,
    PyValueError,
    "A weights file that cannot be used as a VGG network: the file and the reason."
);
pyo3::create_exception!(
    vggfeat,
    StoreError,
    PyValueError,
    "A feature store or dataset that is inconsistent: the folder or file and the reason."
);

/// A library error as the Python exception a user expects: a bad keyword value is a
/// `ValueError` naming the keyword, an unusable image an `ImageError`, a missing file an
/// `OSError`, a bad checkpoint a `CheckpointError`, an inconsistent store a `StoreError`.
fn py_err(e: vggfeat::Error) -> PyErr {
    use vggfeat::Error as E;
    match e {
        E::Param { param, reason } => PyValueError::new_err(format!("{}: {reason}", param.name())),
        E::Usage(m) => PyValueError::new_err(m),
        e @ E::Image { .. } => ImageError::new_err(e.to_string()),
        E::Io { path, source } => PyOSError::new_err((
            source.raw_os_error().unwrap_or(0),
            source.to_string(),
            path.display().to_string(),
        )),
        e @ (E::Checkpoint { .. } | E::NotVgg { .. } | E::MissingKey { .. } | E::Shape { .. }) => {
            CheckpointError::new_err(e.to_string())
        }
        e @ E::Data { .. } => StoreError::new_err(e.to_string()),
        e => PyRuntimeError::new_err(e.to_string()),
    }
}

/// Parses a keyword value by the library's spelling, naming the keyword on error.
fn choice<T: Choice>(value: &str) -> PyResult<T> {
    vggfeat::util::choice::parse(value).map_err(py_err)
}

/// A Python callable `progress(event, *args)` as the library's progress observer: events
/// `"begin"` (task, unit, total), `"advance"` (n), `"status"` (message), `"note"` (line) and
/// `"end"`. Errors raised by the callable are printed and ignored (progress never stops work).
struct Callback(Py<PyAny>);

impl Callback {
    fn call<A>(&self, args: A)
    where
        A: for<'py> pyo3::call::PyCallArgs<'py>,
    {
        Python::attach(|py| {
            if let Err(e) = self.0.call1(py, args) {
                e.print(py);
            }
        });
    }
}

impl Progress for Callback {
    fn begin(&self, task: &str, unit: &str, total: u64) {
        self.call(("begin", task, unit, total));
    }
    fn advance(&self, n: u64) {
        self.call(("advance", n));
    }
    fn status(&self, message: &str) {
        self.call(("status", message));
    }
    fn note(&self, line: &str) {
        self.call(("note", line));
    }
    fn end(&self) {
        self.call(("end",));
    }
}

/// The observer for an optional callback.
fn observer(progress: Option<Py<PyAny>>) -> Box<dyn Progress> {
    match progress {
        Some(p) => Box::new(Callback(p)),
        None => Box::new(vggfeat::Silent),
    }
}

/// Python inputs as the library's images: `str` paths, `bytes` of encoded files, or
/// C-contiguous (H, W, 3) uint8 arrays (the Python layer converts everything else). Copied out
/// of Python objects so that the work can run without the interpreter.
fn images(items: &Bound<'_, PyList>) -> PyResult<Vec<Image>> {
    items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            if let Ok(s) = it.cast::<PyString>() {
                return Ok(Image::Path(PathBuf::from(s.to_cow()?.into_owned())));
            }
            if let Ok(b) = it.cast::<PyBytes>() {
                return Ok(Image::Bytes(b.as_bytes().to_vec()));
            }
            let a: PyReadonlyArray3<'_, u8> = it.extract().map_err(|_| {
                PyValueError::new_err(format!(
                    "images[{i}]: expected a path, bytes or an (H, W, 3) uint8 array"
                ))
            })?;
            let v = a.as_array();
            let (h, w, c) = v.dim();
            if c != 3 {
                return Err(PyValueError::new_err(format!(
                    "images[{i}]: an array of shape ({h}, {w}, {c}); expected (H, W, 3)"
                )));
            }
            let pixels: Vec<u8> = v.iter().copied().collect();
            let img = image::RgbImage::from_raw(w as u32, h as u32, pixels)
                .ok_or_else(|| PyValueError::new_err(format!("images[{i}]: bad array")))?;
            Ok(Image::Rgb(img))
        })
        .collect()
}

/// What a description returns to Python: the rows (aggregated, or raw as a 4-d array), the
/// positions kept, and the failures as (index, name, reason).
type DescribeOut<'py> = (
    Bound<'py, PyArrayDyn<f32>>,
    Vec<usize>,
    Vec<(usize, String, String)>,
);

fn described<'py>(py: Python<'py>, d: vggfeat::Described, raw: bool) -> PyResult<DescribeOut<'py>> {
    let kept = d.kept().to_vec();
    let failed = d
        .failed()
        .iter()
        .map(|f| (f.index, f.name.display().to_string(), f.reason.clone()))
        .collect();
    let x = if raw {
        to_numpy(d.into_raw().map_err(py_err)?.into_dyn())
    } else {
        to_numpy(d.features().map_err(py_err)?.into_dyn())
    };
    Ok((x.into_pyarray(py), kept, failed))
}

/// Nets loaded to describe images (`vggfeat.Extractor` wraps it).
#[pyclass(name = "_Extractor", module = "vggfeat._vggfeat", frozen)]
struct PyExtractor {
    inner: Extractor,
}

#[pymethods]
impl PyExtractor {
    #[new]
    #[pyo3(signature = (weights, layer, scales, flip, preprocess, precision, aggregate, threads,
                        batch, engine, device, max_pixels, decode_threads))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        weights: Vec<PathBuf>,
        layer: Option<String>,
        scales: Vec<u32>,
        flip: bool,
        preprocess: &str,
        precision: &str,
        aggregate: &str,
        threads: Option<usize>,
        batch: usize,
        engine: &str,
        device: &str,
        max_pixels: u64,
        decode_threads: usize,
    ) -> PyResult<Self> {
        let layer = layer
            .map(|l| l.parse::<LayerName>())
            .transpose()
            .map_err(py_err)?;
        let params = ExtractorParams::new()
            .weights(weights)
            .layer(layer)
            .scales(scales)
            .flip(flip)
            .preprocess(choice::<Preprocess>(preprocess)?)
            .precision(choice::<Precision>(precision)?)
            .aggregate(choice::<Aggregate>(aggregate)?)
            .engine(choice::<Engine>(engine)?)
            .device(device.parse::<DeviceSpec>().map_err(py_err)?)
            .threads(threads)
            .batch(batch)
            .max_pixels(max_pixels)
            .decode_threads(decode_threads)
            .check()
            .map_err(py_err)?;
        let inner = py.detach(|| Extractor::new(&params)).map_err(py_err)?;
        Ok(PyExtractor { inner })
    }

    /// The descriptor dimension of `describe`'s rows.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Notes about choices made (the layer of a net without fc layers).
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.inner.notes().to_vec()
    }

    /// The nets as the store manifest records them (JSON).
    fn nets_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.net_specs())
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Describes images; see `vggfeat.Extractor.describe`.
    #[pyo3(signature = (items, raw, progress=None))]
    fn describe<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyList>,
        raw: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<DescribeOut<'py>> {
        let images = images(items)?;
        let obs = observer(progress);
        let d = py
            .detach(|| self.inner.describe_all(&images, obs.as_ref()))
            .map_err(py_err)?;
        described(py, d, raw)
    }

    /// Describes `listing.items[start:end]`.
    #[pyo3(signature = (listing, start, end, raw, progress=None))]
    fn describe_listed<'py>(
        &self,
        py: Python<'py>,
        listing: &Listing,
        start: usize,
        end: usize,
        raw: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<DescribeOut<'py>> {
        let end = end.min(listing.items.len());
        let items = &listing.items[start.min(end)..end];
        let obs = observer(progress);
        let d = py
            .detach(|| self.inner.describe_items(items, obs.as_ref()))
            .map_err(py_err)?;
        described(py, d, raw)
    }

    /// Extracts inputs into a store; returns the run's summary as JSON.
    #[pyo3(signature = (inputs, out, root, voc_split, classes, limit_per_class, chunk,
                        retry_failed, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn extract(
        &self,
        py: Python<'_>,
        inputs: Vec<PathBuf>,
        out: PathBuf,
        root: Option<PathBuf>,
        voc_split: String,
        classes: Option<Vec<String>>,
        limit_per_class: Option<usize>,
        chunk: usize,
        retry_failed: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let params = ExtractParams::new()
            .inputs(inputs)
            .out(out)
            .root(root)
            .voc_split(voc_split)
            .classes(classes)
            .limit_per_class(limit_per_class)
            .chunk(chunk)
            .retry_failed(retry_failed)
            .check()
            .map_err(py_err)?;
        let obs = observer(progress);
        let s = py
            .detach(|| self.inner.extract(&params, obs.as_ref()))
            .map_err(py_err)?;
        serde_json::to_string(&s).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }
}

/// A dataset listed (folders, devkits, lists, tables, tar shards): its items' ids and labels.
#[pyclass(module = "vggfeat._vggfeat", frozen)]
struct Listing {
    items: Vec<Item>,
}

#[pymethods]
impl Listing {
    #[new]
    #[pyo3(signature = (inputs, root, voc_split, classes, limit_per_class))]
    fn new(
        py: Python<'_>,
        inputs: Vec<PathBuf>,
        root: Option<PathBuf>,
        voc_split: String,
        classes: Option<Vec<String>>,
        limit_per_class: Option<usize>,
    ) -> PyResult<Self> {
        let sel = Selection {
            voc_split,
            classes,
            limit_per_class,
            shard: None,
            root,
        };
        let ds = py
            .detach(|| Dataset::open_inputs_selection(&inputs, &sel))
            .map_err(py_err)?;
        Ok(Listing { items: ds.items })
    }

    fn __len__(&self) -> usize {
        self.items.len()
    }

    /// Image ids of `items[start:end]`.
    fn ids(&self, start: usize, end: usize) -> Vec<String> {
        let end = end.min(self.items.len());
        self.items[start.min(end)..end]
            .iter()
            .map(|i| i.id.clone())
            .collect()
    }

    /// Labels of `items[start:end]`.
    fn labels(&self, start: usize, end: usize) -> Vec<Vec<String>> {
        let end = end.min(self.items.len());
        self.items[start.min(end)..end]
            .iter()
            .map(|i| i.labels.clone())
            .collect()
    }
}

/// A feature store opened for reading (`vggfeat.Store` wraps it).
#[pyclass(name = "_Store", module = "vggfeat._vggfeat", frozen)]
struct PyStore {
    inner: StoreStream,
}

#[pymethods]
impl PyStore {
    #[new]
    fn new(py: Python<'_>, dir: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| StoreStream::open(&dir)).map_err(py_err)?;
        Ok(PyStore { inner })
    }

    /// Ids of the successful records, in id order.
    #[getter]
    fn ids(&self) -> Vec<String> {
        self.ok().map(|e| e.id.clone()).collect()
    }

    /// Labels of the successful records.
    #[getter]
    fn labels(&self) -> Vec<Vec<String>> {
        self.ok().map(|e| e.labels.clone()).collect()
    }

    /// Failed inputs as (id, reason).
    #[getter]
    fn failed(&self) -> Vec<(String, String)> {
        self.inner
            .entries
            .iter()
            .filter_map(|e| e.failure.as_ref().map(|f| (e.id.clone(), f.clone())))
            .collect()
    }

    /// The manifest as JSON.
    fn manifest_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.manifest)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Warnings about the store (incomplete, stale against its inputs).
    fn warnings(&self) -> Vec<String> {
        self.inner.freshness().warnings()
    }

    /// The descriptors of every successful record as one (n, d) float32 matrix, filled row by
    /// row from the chunks (memory: the matrix, plus one record).
    #[pyo3(signature = (aggregate, nets, raw))]
    fn to_numpy<'py>(
        &self,
        py: Python<'py>,
        aggregate: &str,
        nets: &str,
        raw: bool,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let how = choice::<Aggregate>(aggregate)?;
        let nets: Nets = nets.parse().map_err(py_err)?;
        let x = py
            .detach(|| self.inner.to_array(how, &nets, raw))
            .map_err(py_err)?;
        Ok(to_numpy2(x).into_pyarray(py))
    }
}

impl PyStore {
    fn ok(&self) -> impl Iterator<Item = &vggfeat::store::Entry> {
        self.inner.entries.iter().filter(|e| e.failure.is_none())
    }
}

/// The library's ndarray (0.16) matrices moved into the numpy crate's ndarray without a copy
/// of the data (two versions of ndarray live in this build).
fn to_numpy2(x: ndarray::Array2<f32>) -> numpy::ndarray::Array2<f32> {
    let (r, c) = x.dim();
    numpy::ndarray::Array2::from_shape_vec((r, c), standard_vec(x.into_dyn()))
        .expect("the shape of the data")
}

/// The values of `x` in C order: its own buffer when it is already laid out so (no copy).
fn standard_vec(x: ndarray::ArrayD<f32>) -> Vec<f32> {
    let x = if x.is_standard_layout() {
        x
    } else {
        x.as_standard_layout().into_owned()
    };
    let (v, offset) = x.into_raw_vec_and_offset();
    debug_assert_eq!(offset.unwrap_or(0), 0);
    v
}

/// [`to_numpy2`] for any dimension.
fn to_numpy(x: ndarray::ArrayD<f32>) -> numpy::ndarray::ArrayD<f32> {
    let shape = x.shape().to_vec();
    numpy::ndarray::ArrayD::from_shape_vec(shape, standard_vec(x)).expect("the shape of the data")
}

/// A numpy matrix as the library's ndarray (a copy, so that the work runs without the
/// interpreter).
fn to_lib2(x: &numpy::ndarray::ArrayView2<'_, f32>) -> ndarray::Array2<f32> {
    let (r, c) = x.dim();
    ndarray::Array2::from_shape_vec((r, c), x.iter().copied().collect())
        .expect("the shape of the data")
}

/// Describes a checkpoint: the JSON of `vggfeat info --json`.
#[pyfunction]
fn info_json(py: Python<'_>, weights: PathBuf) -> PyResult<String> {
    let i = py.detach(|| vggfeat::info(&weights)).map_err(py_err)?;
    serde_json::to_string(&i).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// Fits linear SVMs with liblinear's dual coordinate descent (the library's, as `vggfeat svm`
/// trains them) on rows `x` of classes `y` (0 .. n_classes - 1): one-vs-rest for three classes
/// or more, one model (class 1 positive) for two. Returns the weights (k, d), the biases (k) and
/// whether every fit converged.
#[pyfunction]
#[pyo3(signature = (x, y, n_classes, c, loss, tol, max_iter, intercept_scaling, seed))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn fit_svms<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    y: Vec<usize>,
    n_classes: usize,
    c: f64,
    loss: &str,
    tol: f64,
    max_iter: usize,
    intercept_scaling: f64,
    seed: u64,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<f32>>, bool)> {
    let params = LinearSvmParams::new()
        .c(c)
        .loss(choice(loss)?)
        .eps(tol)
        .max_iter(max_iter)
        .bias(intercept_scaling)
        .seed(seed)
        .check()
        .map_err(py_err)?;
    let x = to_lib2(&x.as_array());
    let model = py
        .detach(|| {
            if n_classes == 2 {
                let t =
                    ndarray::Array2::from_shape_fn(
                        (y.len(), 1),
                        |(i, _)| {
                            if y[i] == 1 { 1 } else { -1 }
                        },
                    );
                params.fit_multi_label(x.view(), t.view())
            } else {
                params.fit_one_vs_rest(x.view(), &y, n_classes)
            }
        })
        .map_err(py_err)?;
    let k = model.n_classes();
    let d = model.models().first().map_or(0, |m| m.weights().len());
    let mut w = Vec::with_capacity(k * d);
    let mut b = Vec::with_capacity(k);
    for m in model.models() {
        w.extend(m.weights().iter());
        b.push(m.bias());
    }
    let w = numpy::ndarray::Array2::from_shape_vec((k, d), w)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok((w.into_pyarray(py), b.into_pyarray(py), model.converged()))
}

/// The decision values `x @ w.T + b` as the library computes them (the same arithmetic as the
/// classifiers `vggfeat svm` saves).
#[pyfunction]
fn decision_function<'py>(
    py: Python<'py>,
    w: PyReadonlyArray2<'py, f32>,
    b: numpy::PyReadonlyArray1<'py, f32>,
    x: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let (w, b, x) = (w.as_array(), b.as_array(), x.as_array());
    if b.len() != w.nrows() || x.ncols() != w.ncols() {
        return Err(PyValueError::new_err(format!(
            "x has {} features, the model {} (and {} biases for {} classes)",
            x.ncols(),
            w.ncols(),
            b.len(),
            w.nrows()
        )));
    }
    let models = w
        .rows()
        .into_iter()
        .zip(b.iter())
        .map(|(r, &bias)| LinearSvm::from_parts(r.iter().copied().collect(), bias))
        .collect();
    let ovr = OneVsRest::from_models(models).map_err(py_err)?;
    let x = to_lib2(&x);
    let f = py.detach(|| ovr.decision_function(x.view()));
    Ok(to_numpy2(f).into_pyarray(py))
}

/// One query's answer: its name, its own row (queries by id), and its neighbours' rows, ids,
/// labels and similarities, best first.
type QueryOut = (
    String,
    Option<usize>,
    Vec<usize>,
    Vec<String>,
    Vec<Vec<String>>,
    Vec<f32>,
);

/// Exact cosine k-NN of store ids and image files among a store's descriptors (the library's
/// `neighbours`, as `vggfeat neighbours` runs it): one tuple per query, and the store's
/// warnings.
#[pyfunction]
#[pyo3(signature = (store, ids, images, k, aggregate, nets, exclude_self, block, weights, out,
                    progress=None, index=None, expansion=None))]
#[allow(clippy::too_many_arguments)]
fn neighbours(
    py: Python<'_>,
    store: PathBuf,
    ids: Vec<String>,
    images: Vec<PathBuf>,
    k: usize,
    aggregate: &str,
    nets: &str,
    exclude_self: bool,
    block: usize,
    weights: Vec<PathBuf>,
    out: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
    index: Option<PathBuf>,
    expansion: Option<usize>,
) -> PyResult<(Vec<QueryOut>, Vec<String>)> {
    let params = vggfeat::NeighboursParams::new()
        .store(store)
        .ids(ids)
        .images(images)
        .k(k)
        .aggregate(choice::<Aggregate>(aggregate)?)
        .nets(nets.parse::<Nets>().map_err(py_err)?)
        .exclude_self(exclude_self)
        .block(block)
        .weights(weights)
        .out(out)
        .index(index)
        .expansion(expansion)
        .check()
        .map_err(py_err)?;
    let obs = observer(progress);
    let r = py
        .detach(|| vggfeat::neighbours(&params, obs.as_ref()))
        .map_err(py_err)?;
    let queries = r
        .queries
        .into_iter()
        .map(|q| {
            let n = q.neighbours;
            (
                q.query.name(),
                q.row,
                n.iter().map(|h| h.row).collect(),
                n.iter().map(|h| h.id.clone()).collect(),
                n.iter().map(|h| h.labels.clone()).collect(),
                n.iter().map(|h| h.similarity).collect(),
            )
        })
        .collect();
    Ok((queries, r.warnings))
}

/// Builds an approximate index of a store (the library's `build_index`, as `vggfeat index`
/// runs it): its `index.json` as a JSON string, and the store's warnings.
#[pyfunction]
#[pyo3(signature = (store, out, quantization, connectivity, expansion_add, expansion,
                    recall_queries, recall_k, seed, aggregate, nets, progress=None))]
#[allow(clippy::too_many_arguments)]
fn build_index(
    py: Python<'_>,
    store: PathBuf,
    out: PathBuf,
    quantization: &str,
    connectivity: usize,
    expansion_add: usize,
    expansion: usize,
    recall_queries: usize,
    recall_k: usize,
    seed: u64,
    aggregate: &str,
    nets: &str,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, Vec<String>)> {
    let params = vggfeat::IndexParams::new()
        .store(store)
        .out(out)
        .quantization(choice::<vggfeat::Quantization>(quantization)?)
        .connectivity(connectivity)
        .expansion_add(expansion_add)
        .expansion_search(expansion)
        .recall_queries(recall_queries)
        .recall_k(recall_k)
        .seed(seed)
        .aggregate(choice::<Aggregate>(aggregate)?)
        .nets(nets.parse::<Nets>().map_err(py_err)?)
        .check()
        .map_err(py_err)?;
    let obs = observer(progress);
    let r = py
        .detach(|| vggfeat::build_index(&params, obs.as_ref()))
        .map_err(py_err)?;
    let json = serde_json::to_string(&r.meta).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((json, r.warnings))
}

/// Localises objects with the paper's box-regression nets (`vggfeat localise`): OUT gets
/// boxes.csv, metrics.json (a labelled devkit), table.md, problems.txt and pictures/. Returns
/// the report as a JSON string.
#[pyfunction]
#[pyo3(signature = (input, out, localisers, classifiers, protocol, scales, gt_class, split,
                    merge_iou, flip, pictures, progress=None))]
#[allow(clippy::too_many_arguments)]
fn localise(
    py: Python<'_>,
    input: PathBuf,
    out: PathBuf,
    localisers: Vec<String>,
    classifiers: Vec<PathBuf>,
    protocol: &str,
    scales: Vec<u32>,
    gt_class: bool,
    split: String,
    merge_iou: f64,
    flip: bool,
    pictures: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let localisers = localisers
        .iter()
        .map(|l| l.parse::<vggfeat::localise::LocSource>())
        .collect::<vggfeat::Result<Vec<_>>>()
        .map_err(py_err)?;
    let params = vggfeat::LocaliseParams::new()
        .input(input)
        .out(out)
        .localisers(localisers)
        .classifiers(classifiers)
        .protocol(
            protocol
                .parse::<vggfeat::localise::LocProtocol>()
                .map_err(py_err)?,
        )
        .scales(scales)
        .gt_class(gt_class)
        .voc_split(split)
        .merge_iou(merge_iou)
        .flip(flip)
        .pictures(pictures)
        .check()
        .map_err(py_err)?;
    let obs = observer(progress);
    let r = py
        .detach(|| vggfeat::localise(&params, obs.as_ref()))
        .map_err(py_err)?;
    serde_json::to_string(&r).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The module.
#[pymodule]
fn _vggfeat(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyExtractor>()?;
    m.add_class::<Listing>()?;
    m.add_class::<PyStore>()?;
    m.add_function(wrap_pyfunction!(info_json, m)?)?;
    m.add_function(wrap_pyfunction!(fit_svms, m)?)?;
    m.add_function(wrap_pyfunction!(decision_function, m)?)?;
    m.add_function(wrap_pyfunction!(neighbours, m)?)?;
    m.add_function(wrap_pyfunction!(build_index, m)?)?;
    m.add_function(wrap_pyfunction!(localise, m)?)?;
    let py = m.py();
    m.add("ImageError", py.get_type::<ImageError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    m.add("StoreError", py.get_type::<StoreError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
