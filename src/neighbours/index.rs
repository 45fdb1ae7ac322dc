//! The approximate index: an HNSW graph over a store's descriptors, for stores where even a
//! streamed exact search ([`super::neighbours`] without an index) is too slow — a few million
//! rows and more.
//!
//! The graph is USearch's (the `usearch` crate, Unum's single-file HNSW library, as used by
//! ClickHouse and DuckDB): cosine metric, the vectors stored in the index at a chosen
//! [`Quantization`] (bf16 by default: half the memory of f32 at no measurable recall cost on
//! L2-normalised descriptors), saved as one file and memory-mapped when searched (the index is
//! not read into memory). Building streams the store once, as the exact search does, adding
//! each block's rows on every thread; the key of a vector is its row (successful records in id
//! order, as `export` writes them).
//!
//! An index folder holds `index.usearch` (the graph and vectors) and `index.json`
//! ([`IndexMeta`]): what was indexed (the store's path, a fingerprint of its ids, nets, layer,
//! scales and flip, the aggregation and nets used, rows and dimension), how (quantization,
//! connectivity, expansions), and the index's measured recall. A search refuses an index whose
//! fingerprint, aggregation, nets, rows or dimension differ from the store's, naming each.
//!
//! Recall is measured when the index is built ([`IndexParams::recall_queries`]): that many rows
//! drawn without replacement (seeded) are searched both ways, each leaving itself out; recall@k
//! is the mean fraction of a query's exact `k` nearest rows that the index also returns (ties
//! at the k-th similarity count as found either way). It is written to `index.json` and returned,
//! so every index states how approximate it is.
//!
//! Searching ([`super::NeighboursParams::index`]) asks the graph for the [`OVERSAMPLE`] x `k`
//! (plus one for a query's own row) best candidates at the index's search expansion (or
//! [`super::NeighboursParams::expansion`]), then scores them exactly against the store's own
//! f32 rows and keeps the best `k`: similarities in the output are exact, only the set of
//! neighbours is approximate. The recall measured at build time is that of this search.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::index::sample;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::aggregate::Aggregate;
use crate::error::{Error, Param, Result};
use crate::store::{Nets, StoreStream};
use crate::util::Progress;
use crate::util::atomic::{TMP_PREFIX, TMP_SUFFIX, read_json, write_json};

/// The index file in an index folder.
pub const INDEX_FILE: &str = "index.usearch";
/// The description file in an index folder ([`IndexMeta`]).
pub const META_FILE: &str = "index.json";
/// Version of [`IndexMeta`]'s layout.
pub const INDEX_FORMAT: u32 = 1;
/// Default graph connectivity (edges per node; USearch's and hnswlib's `M`).
pub const DEFAULT_CONNECTIVITY: usize = 16;
/// Default candidate list while adding (`efConstruction`).
pub const DEFAULT_EXPANSION_ADD: usize = 128;
/// Default candidate list while searching (`ef`).
pub const DEFAULT_EXPANSION_SEARCH: usize = 64;
/// Default number of rows whose recall is measured when an index is built.
pub const DEFAULT_RECALL_QUERIES: usize = 1000;
/// Default `k` of the measured recall.
pub const DEFAULT_RECALL_K: usize = 10;

/// How the vectors are stored in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// 32-bit floats: 4 bytes per dimension.
    F32,
    /// bfloat16: 2 bytes per dimension, the default.
    #[default]
    Bf16,
    /// IEEE half precision: 2 bytes per dimension.
    F16,
    /// 8-bit integers (USearch scales unit vectors by 127): 1 byte per dimension.
    I8,
}

crate::util::choice::choice!(Quantization, "index quantization", crate::error::Param::Quantization, [
    Quantization::F32 => "f32": "32-bit floats (4 bytes per dimension).",
    Quantization::Bf16 => "bf16": "bfloat16 (2 bytes per dimension), the default.",
    Quantization::F16 => "f16": "IEEE half precision (2 bytes per dimension).",
    Quantization::I8 => "i8": "8-bit integers (1 byte per dimension).",
]);

impl Quantization {
    fn scalar(self) -> usearch::ScalarKind {
        match self {
            Quantization::F32 => usearch::ScalarKind::F32,
            Quantization::Bf16 => usearch::ScalarKind::BF16,
            Quantization::F16 => usearch::ScalarKind::F16,
            Quantization::I8 => usearch::ScalarKind::I8,
        }
    }
}

/// The recall of an index, measured when it was built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recall {
    /// Neighbours per query.
    pub k: usize,
    /// Queries: store rows drawn without replacement, each leaving itself out.
    pub queries: usize,
    /// Seed of the draw.
    pub seed: u64,
    /// Search expansion used.
    pub expansion: usize,
    /// Mean fraction of the exact `k` nearest rows the index returned.
    pub recall: f64,
    /// The worst query's fraction.
    pub min: f64,
    /// Milliseconds per query of the exact search (streamed store, all queries at once).
    pub exact_ms_per_query: f64,
    /// Milliseconds per query of the index (one query at a time, over the threads).
    pub index_ms_per_query: f64,
}

/// `index.json`: what an index holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    /// [`INDEX_FORMAT`].
    pub format: u32,
    /// vggfeat version that built it.
    pub tool_version: String,
    /// USearch version that built it.
    pub usearch_version: String,
    /// The store, as given when building.
    pub store: String,
    /// SHA-256 of the store's indexed content: its nets, scales and flip, and the ids of its
    /// successful records in order ([`fingerprint`]).
    pub fingerprint: String,
    /// Scale aggregation of the indexed rows.
    pub aggregate: Aggregate,
    /// Nets of the indexed rows (indices into the store's nets).
    pub nets: Vec<usize>,
    /// Rows indexed.
    pub rows: usize,
    /// Their dimension.
    pub dim: usize,
    /// How the vectors are stored.
    pub quantization: Quantization,
    /// Edges per node.
    pub connectivity: usize,
    /// Candidate list while adding.
    pub expansion_add: usize,
    /// Default candidate list while searching.
    pub expansion_search: usize,
    /// Seconds the build took (streaming and adding).
    pub build_seconds: f64,
    /// Size of `index.usearch` in bytes.
    pub bytes: u64,
    /// The recall measured at build time, if it was.
    pub recall: Option<Recall>,
}

/// Checked parameters of an index build; obtained only from [`IndexParams::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexValidParams {
    store: PathBuf,
    out: PathBuf,
    aggregate: Aggregate,
    nets: Nets,
    quantization: Quantization,
    connectivity: usize,
    expansion_add: usize,
    expansion_search: usize,
    recall_queries: usize,
    recall_k: usize,
    seed: u64,
    block: usize,
}

impl IndexValidParams {
    /// The store folder.
    pub fn store(&self) -> &Path {
        &self.store
    }
    /// The index folder.
    pub fn out(&self) -> &Path {
        &self.out
    }
    /// Scale aggregation.
    pub fn aggregate(&self) -> Aggregate {
        self.aggregate
    }
    /// The nets used.
    pub fn nets(&self) -> &Nets {
        &self.nets
    }
    /// How vectors are stored.
    pub fn quantization(&self) -> Quantization {
        self.quantization
    }
    /// Edges per node.
    pub fn connectivity(&self) -> usize {
        self.connectivity
    }
    /// Candidate list while adding.
    pub fn expansion_add(&self) -> usize {
        self.expansion_add
    }
    /// Candidate list while searching.
    pub fn expansion_search(&self) -> usize {
        self.expansion_search
    }
    /// Rows whose recall is measured (0: none).
    pub fn recall_queries(&self) -> usize {
        self.recall_queries
    }
    /// `k` of the measured recall.
    pub fn recall_k(&self) -> usize {
        self.recall_k
    }
    /// Seed of the recall queries' draw.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// An approximate index to build over a store: a builder. [`check`](IndexParams::check) is the
/// only way to [`IndexValidParams`]; [`build_index`] builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexParams(IndexValidParams);

impl Default for IndexParams {
    fn default() -> Self {
        Self::new()
    }
}

impl IndexParams {
    /// The defaults: no store nor output yet, the default aggregation, every net, bf16 vectors,
    /// connectivity [`DEFAULT_CONNECTIVITY`], expansions [`DEFAULT_EXPANSION_ADD`] /
    /// [`DEFAULT_EXPANSION_SEARCH`], recall@[`DEFAULT_RECALL_K`] measured on
    /// [`DEFAULT_RECALL_QUERIES`] rows drawn with seed 0.
    pub fn new() -> Self {
        IndexParams(IndexValidParams {
            store: PathBuf::new(),
            out: PathBuf::new(),
            aggregate: Aggregate::DEFAULT,
            nets: Nets::All,
            quantization: Quantization::default(),
            connectivity: DEFAULT_CONNECTIVITY,
            expansion_add: DEFAULT_EXPANSION_ADD,
            expansion_search: DEFAULT_EXPANSION_SEARCH,
            recall_queries: DEFAULT_RECALL_QUERIES,
            recall_k: DEFAULT_RECALL_K,
            seed: 0,
            block: super::DEFAULT_BLOCK,
        })
    }

    /// The store folder written by an extraction. Required.
    pub fn store(mut self, store: impl Into<PathBuf>) -> Self {
        self.0.store = store.into();
        self
    }

    /// The index folder, created if needed; its `index.usearch` and `index.json` are replaced
    /// atomically. Required; must not be the store's own folder.
    pub fn out(mut self, out: impl Into<PathBuf>) -> Self {
        self.0.out = out.into();
        self
    }

    /// Scale aggregation of the indexed rows. Default [`Aggregate::DEFAULT`]; a search must use
    /// the same.
    pub fn aggregate(mut self, aggregate: Aggregate) -> Self {
        self.0.aggregate = aggregate;
        self
    }

    /// Nets of the indexed rows, fused by stacking. Default [`Nets::All`]; a search must use the
    /// same.
    pub fn nets(mut self, nets: Nets) -> Self {
        self.0.nets = nets;
        self
    }

    /// How the vectors are stored. Default [`Quantization::Bf16`].
    pub fn quantization(mut self, q: Quantization) -> Self {
        self.0.quantization = q;
        self
    }

    /// Edges per node. Default [`DEFAULT_CONNECTIVITY`]; 4..=256. More: better recall, a
    /// larger index and a slower build.
    pub fn connectivity(mut self, m: usize) -> Self {
        self.0.connectivity = m;
        self
    }

    /// Candidate list while adding. Default [`DEFAULT_EXPANSION_ADD`]; 8..=4096.
    pub fn expansion_add(mut self, ef: usize) -> Self {
        self.0.expansion_add = ef;
        self
    }

    /// Candidate list while searching, recorded as the index's default. Default
    /// [`DEFAULT_EXPANSION_SEARCH`]; 8..=4096. More: better recall, slower queries.
    pub fn expansion_search(mut self, ef: usize) -> Self {
        self.0.expansion_search = ef;
        self
    }

    /// Rows whose recall@k is measured after the build (searched exactly and by the index).
    /// Default [`DEFAULT_RECALL_QUERIES`]; 0 skips the measurement (it costs one exact search
    /// of that many queries, one more pass over the store). More than the store's rows: all.
    pub fn recall_queries(mut self, n: usize) -> Self {
        self.0.recall_queries = n;
        self
    }

    /// `k` of the measured recall. Default [`DEFAULT_RECALL_K`]; at least 1.
    pub fn recall_k(mut self, k: usize) -> Self {
        self.0.recall_k = k;
        self
    }

    /// Seed of the recall queries' draw. Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Checks every range given in the setters' docs, without I/O.
    pub fn check(self) -> Result<IndexValidParams> {
        let p = self.0;
        if p.store.as_os_str().is_empty() {
            return Err(Error::param(Param::Store, "the store folder is required"));
        }
        if p.out.as_os_str().is_empty() {
            return Err(Error::param(Param::Out, "the index folder is required"));
        }
        if p.out == p.store {
            return Err(Error::param(
                Param::Out,
                "the index folder must not be the store's own folder",
            ));
        }
        if !(4..=256).contains(&p.connectivity) {
            return Err(Error::param(Param::Connectivity, "must be in 4..=256"));
        }
        if !(8..=4096).contains(&p.expansion_add) {
            return Err(Error::param(Param::ExpansionAdd, "must be in 8..=4096"));
        }
        check_expansion(p.expansion_search)?;
        if p.recall_k == 0 {
            return Err(Error::param(Param::K, "must be at least 1"));
        }
        if let Nets::Some(v) = &p.nets {
            crate::store::check_net_list(v)?;
        }
        Ok(p)
    }
}

/// Checks a search expansion.
pub(crate) fn check_expansion(ef: usize) -> Result<()> {
    if !(8..=4096).contains(&ef) {
        return Err(Error::param(Param::Expansion, "must be in 8..=4096"));
    }
    Ok(())
}

/// What [`build_index`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexReport {
    /// The index's description, as written to `index.json`.
    pub meta: IndexMeta,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// What is wrong with the store, if anything: incomplete, or stale against its inputs.
    pub warnings: Vec<String>,
}

/// SHA-256 of what a store's rows are: its nets (weights' SHA-256, configuration, layer,
/// dimension, preprocessing, precision), scales and flip, and the ids of its successful records
/// in id order. Two stores with the same fingerprint have the same rows in the same order.
pub fn fingerprint(store: &StoreStream) -> String {
    let m = &store.manifest;
    let mut h = Sha256::new();
    let nets = serde_json::to_string(&m.nets).unwrap_or_default();
    h.update(nets.as_bytes());
    h.update(format!("\nscales {:?} flip {}\n", m.scales, m.flip).as_bytes());
    for e in store.entries.iter().filter(|e| e.failure.is_none()) {
        h.update(e.id.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

fn usearch_error(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
    }
}

/// Builds an index over a store (see the module docs): streams it once into the graph, saves
/// `index.usearch` atomically, measures the recall, writes `index.json`. Errors name the store
/// or the index folder.
pub fn build_index(p: &IndexValidParams, progress: &dyn Progress) -> Result<IndexReport> {
    let store = StoreStream::open(&p.store)?;
    let nets = p.nets.resolve(store.manifest.nets.len())?;
    let dim = store.manifest.layout().dim(p.aggregate, &nets);
    let rows = super::searchable_rows(&store, &p.store)?;
    std::fs::create_dir_all(&p.out).map_err(|e| Error::io(&p.out, e))?;
    let file = p.out.join(INDEX_FILE);

    let t0 = Instant::now();
    let options = usearch::IndexOptions {
        dimensions: dim,
        metric: usearch::MetricKind::Cos,
        quantization: p.quantization.scalar(),
        connectivity: p.connectivity,
        expansion_add: p.expansion_add,
        expansion_search: p.expansion_search,
        multi: false,
    };
    let index = usearch::Index::new(&options).map_err(|e| usearch_error(&file, "USearch", e))?;
    let threads = rayon::current_num_threads();
    index
        .reserve_capacity_and_threads(rows, threads)
        .map_err(|e| usearch_error(&file, "cannot reserve the index", e))?;
    progress.begin("index", "rows", rows as u64);
    let added = super::stream_rows(&store, &nets, p.aggregate, p.block, dim, |first, block| {
        block
            .par_chunks(dim)
            .enumerate()
            .try_for_each(|(i, v)| index.add((first + i) as u64, v))
            .map_err(|e| usearch_error(&file, "cannot add a row", e))?;
        progress.advance((block.len() / dim) as u64);
        Ok(())
    });
    progress.end();
    added?;
    if index.size() != rows {
        return Err(Error::Internal(format!(
            "{} of {rows} rows were indexed",
            index.size()
        )));
    }
    save_atomic(&index, &file)?;
    let build_seconds = t0.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&file)
        .map_err(|e| Error::io(&file, e))?
        .len();

    let recall = if p.recall_queries > 0 {
        progress.status("measuring recall against the exact search");
        Some(measure_recall(
            &store, &nets, p, dim, rows, &index, progress,
        )?)
    } else {
        None
    };
    let meta = IndexMeta {
        format: INDEX_FORMAT,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        usearch_version: usearch::version().into(),
        store: p.store.display().to_string(),
        fingerprint: fingerprint(&store),
        aggregate: p.aggregate,
        nets,
        rows,
        dim,
        quantization: p.quantization,
        connectivity: p.connectivity,
        expansion_add: p.expansion_add,
        expansion_search: p.expansion_search,
        build_seconds,
        bytes,
        recall,
    };
    let json = p.out.join(META_FILE);
    write_json(&json, &meta)?;
    Ok(IndexReport {
        meta,
        files: vec![file, json],
        warnings: store.freshness().warnings(),
    })
}

/// Saves the index to a temporary file beside `file` (mode 0o666 less the umask), syncs it and
/// renames it over `file`: a reader sees the old index or the new one. USearch writes the file
/// itself by path, so [`crate::util::AtomicFile`]'s writer cannot be used.
fn save_atomic(index: &usearch::Index, file: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = file.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o666))
        .prefix(TMP_PREFIX)
        .suffix(TMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(|e| Error::io(file, e))?;
    let path = tmp.path().to_str().ok_or_else(|| Error::Data {
        path: file.to_path_buf(),
        reason: "USearch needs a UTF-8 path".into(),
    })?;
    index
        .save(path)
        .map_err(|e| usearch_error(file, "cannot save the index", e))?;
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(file, e))?;
    tmp.persist(file).map_err(|e| Error::io(file, e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Recall@k of `index` against the exact search, on rows drawn from the store.
fn measure_recall(
    store: &StoreStream,
    nets: &[usize],
    p: &IndexValidParams,
    dim: usize,
    rows: usize,
    index: &usearch::Index,
    progress: &dyn Progress,
) -> Result<Recall> {
    let nq = p.recall_queries.min(rows);
    let k = p.recall_k.min(rows.saturating_sub(1)).max(1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed);
    let mut picked = sample(&mut rng, rows, nq).into_vec();
    picked.sort_unstable();
    // The drawn rows' vectors, from the store.
    let positions = super::EntryPositions::of(store).of_rows(&picked);
    let layout = store.manifest.layout();
    let mut q = Vec::with_capacity(nq * dim);
    for floats in store.floats_at(&positions)? {
        q.extend(layout.aggregate(&floats, p.aggregate, nets)?);
    }
    let exclude: Vec<Option<usize>> = picked.iter().map(|&r| Some(r)).collect();
    let t = Instant::now();
    let mut search = super::Search::new(&q, dim, k, exclude)?;
    progress.begin("exact search", "rows", rows as u64);
    let streamed = super::stream_rows(store, nets, p.aggregate, p.block, dim, |first, b| {
        search.add(first, b);
        progress.advance((b.len() / dim) as u64);
        Ok(())
    });
    progress.end();
    streamed?;
    let exact = search.finish();
    let exact_ms = t.elapsed().as_secs_f64() * 1e3 / nq as f64;

    let t = Instant::now();
    let file = p.out.join(INDEX_FILE);
    let rows_found: Vec<Vec<usize>> = picked
        .par_iter()
        .zip(q.par_chunks(dim))
        .map(|(&own, v)| candidates(index, &file, v, k, Some(own)))
        .collect::<Result<_>>()?;
    let index_ms = t.elapsed().as_secs_f64() * 1e3 / nq as f64;
    let found = rescore(store, p.aggregate, nets, &q, &rows_found, k)?;

    let mut sum = 0.0;
    let mut min = 1.0f64;
    for (e, f) in exact.iter().zip(&found) {
        let r = recall_of(e, f);
        sum += r;
        min = min.min(r);
    }
    Ok(Recall {
        k,
        queries: nq,
        seed: p.seed,
        expansion: p.expansion_search,
        recall: sum / nq as f64,
        min,
        exact_ms_per_query: exact_ms,
        index_ms_per_query: index_ms,
    })
}

/// The fraction of `exact` (a query's true neighbours, best first) that `found` (exactly
/// scored) holds, a row of `found` counting too when its similarity ties the k-th true
/// neighbour's (the exact search breaks such ties by row, the graph arbitrarily: duplicate
/// images are common in real collections).
pub(crate) fn recall_of(exact: &[(usize, f32)], found: &[(usize, f32)]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let kth = exact[exact.len() - 1].1;
    let hits = found
        .iter()
        .filter(|(row, sim)| exact.iter().any(|(r, _)| r == row) || *sim >= kth - TIE)
        .count()
        .min(exact.len());
    hits as f64 / exact.len() as f64
}

/// Candidates the graph proposes per neighbour asked for: the proposals are ranked by the
/// index's quantized vectors, so a true neighbour near the cut-off can rank just below it there;
/// scoring twice as many exactly keeps it (as faiss's re-ranking `k_factor` does).
pub const OVERSAMPLE: usize = 2;

/// The graph's [`OVERSAMPLE`] x `k` best rows for the unit vector `q`, leaving out `exclude`, in
/// the graph's order ([`rescore`] keeps the best `k`). `file` is the index's file, named in an
/// error.
pub(crate) fn candidates(
    index: &usearch::Index,
    file: &Path,
    q: &[f32],
    k: usize,
    exclude: Option<usize>,
) -> Result<Vec<usize>> {
    let k = OVERSAMPLE * k;
    let want = k + usize::from(exclude.is_some());
    let m = index.search(q, want).map_err(|e| Error::Data {
        path: file.to_path_buf(),
        reason: format!("search failed: {e}"),
    })?;
    Ok(m.keys
        .iter()
        .map(|&key| key as usize)
        .filter(|&row| Some(row) != exclude)
        .take(k)
        .collect())
}

/// Similarities this close count as tied in [`recall_of`] (the exact search sums in f32 in
/// GEMM order, [`rescore`] in f64).
const TIE: f32 = 1e-6;

/// Queries per batch of rows read back for [`rescore`].
const RESCORE_QUERIES: usize = 256;

/// Scores each query's candidate rows exactly against the store's own rows (aggregated as the
/// search's), best first in the exact search's order (similarity, then row; `-0.0` as `0.0`),
/// at most `k` each. `queries` holds the unit query vectors, one per entry of `cands`.
pub(crate) fn rescore(
    store: &StoreStream,
    how: Aggregate,
    nets: &[usize],
    queries: &[f32],
    cands: &[Vec<usize>],
    k: usize,
) -> Result<Vec<Vec<(usize, f32)>>> {
    let layout = store.manifest.layout();
    let dim = if cands.is_empty() {
        return Ok(Vec::new());
    } else {
        queries.len() / cands.len()
    };
    let mut out = Vec::with_capacity(cands.len());
    let positions = super::EntryPositions::of(store);
    for (qs, cs) in queries
        .chunks(RESCORE_QUERIES * dim)
        .zip(cands.chunks(RESCORE_QUERIES))
    {
        let rows: Vec<usize> = cs.iter().flatten().copied().collect();
        let floats = store.floats_at(&positions.of_rows(&rows))?;
        let mut at = 0;
        for (q, c) in qs.chunks(dim).zip(cs) {
            let mut scored = Vec::with_capacity(c.len());
            for &row in c {
                let v = layout.aggregate(&floats[at], how, nets)?;
                at += 1;
                // Summed in f64: a candidate's score does not depend on the summation order.
                let s: f64 = q.iter().zip(&v).map(|(a, b)| *a as f64 * *b as f64).sum();
                scored.push((row, s as f32 + 0.0));
            }
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            scored.truncate(k);
            out.push(scored);
        }
    }
    Ok(out)
}

/// An index opened for searching a store: memory-mapped, checked against the store.
pub(crate) struct OpenIndex {
    pub(crate) index: usearch::Index,
    pub(crate) meta: IndexMeta,
}

/// Opens the index folder `dir` for a search of `store` with `how` and `nets`, refusing one
/// built from other rows (naming each difference); `expansion` overrides its search expansion.
pub(crate) fn open_for(
    dir: &Path,
    store: &StoreStream,
    how: Aggregate,
    nets: &[usize],
    dim: usize,
    expansion: Option<usize>,
) -> Result<OpenIndex> {
    let json = dir.join(META_FILE);
    let file = dir.join(INDEX_FILE);
    if !json.is_file() || !file.is_file() {
        return Err(Error::Data {
            path: dir.to_path_buf(),
            reason: format!(
                "not an index folder: it needs {INDEX_FILE} and {META_FILE} (made by `vggfeat \
                 index`)"
            ),
        });
    }
    let meta: IndexMeta = read_json(&json)?;
    if meta.format != INDEX_FORMAT {
        return Err(Error::Data {
            path: json,
            reason: format!(
                "index format {} (this vggfeat reads {INDEX_FORMAT}): rebuild it",
                meta.format
            ),
        });
    }
    let mut differ = Vec::new();
    if meta.fingerprint != fingerprint(store) {
        differ.push(format!(
            "it was built from other records (store {}; its ids, nets, scales or flip differ \
             from this store's)",
            meta.store
        ));
    }
    if meta.aggregate != how {
        differ.push(format!(
            "aggregation {} (the search asks for {how})",
            meta.aggregate
        ));
    }
    if meta.nets != nets {
        differ.push(format!(
            "nets {:?} (the search asks for {nets:?})",
            meta.nets
        ));
    }
    if meta.dim != dim {
        differ.push(format!("dimension {} (the store's is {dim})", meta.dim));
    }
    if !differ.is_empty() {
        return Err(Error::Data {
            path: dir.to_path_buf(),
            reason: format!(
                "this index does not match the store {}: {}; rebuild it with `vggfeat index`",
                store.dir.display(),
                differ.join("; ")
            ),
        });
    }
    let path = file.to_str().ok_or_else(|| Error::Data {
        path: file.clone(),
        reason: "USearch needs a UTF-8 path".into(),
    })?;
    let index =
        usearch::Index::restore_view(path).map_err(|e| usearch_error(&file, "cannot open", e))?;
    if index.size() != meta.rows || index.dimensions() != meta.dim {
        return Err(Error::Data {
            path: file,
            reason: format!(
                "holds {} vectors of dimension {}, but {META_FILE} says {} of {}: rebuild it",
                index.size(),
                index.dimensions(),
                meta.rows,
                meta.dim
            ),
        });
    }
    let ef = expansion.unwrap_or(meta.expansion_search);
    check_expansion(ef)?;
    index.change_expansion_search(ef);
    Ok(OpenIndex { index, meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_ties_at_the_kth_similarity_as_found() {
        let exact = [(3, 0.9), (7, 0.8), (1, 0.5)];
        assert_eq!(recall_of(&exact, &[(3, 0.9), (7, 0.8), (1, 0.5)]), 1.0);
        // Row 9 ties row 1's similarity: as good an answer.
        assert_eq!(recall_of(&exact, &[(3, 0.9), (9, 0.5), (7, 0.8)]), 1.0);
        // Row 9 is worse: one of three missed.
        assert!((recall_of(&exact, &[(3, 0.9), (7, 0.8), (9, 0.4)]) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(recall_of(&exact, &[]), 0.0);
        assert_eq!(recall_of(&[], &[]), 1.0);
    }
}
