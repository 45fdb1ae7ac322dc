//! Retrieval: the `k` nearest neighbours of queries among a store's descriptors, by cosine
//! similarity: exact by default, or proposed by an approximate index ([`index`]) and scored
//! exactly.
//!
//! The store's descriptors are aggregated as [`crate::export()`] writes them (scales by
//! [`Aggregate`], nets fused by stacking) and L2-normalised, so the cosine similarity of two
//! images is the dot product of their rows. A query is a store id (its own row) or an image file,
//! described with the store's own nets, layer, convention, scales, flip and decode limit
//! ([`Extractor::for_store`]), so its row compares with the store's.
//!
//! The search streams the store ([`StoreStream::ok_rows`]) in blocks of
//! [`NeighboursParams::block`] rows, read and aggregated on one thread while the previous block
//! is multiplied: each block is one matrix product `block x queries^T` (the fast engine's GEMM,
//! the queries packed once), and every query keeps a bounded heap of its best `k` rows. Memory
//! is the queries, at most three blocks, one block of similarities and the store's index (about
//! 0.5 KB per record, as for `export`), whatever the number of rows.
//!
//! Order: by similarity, highest first; equal similarities by row (the store's id order),
//! lower first, so results never depend on the blocking or the threads. A row's similarity is
//! the same float wherever it falls in a block (every product sums over the dimension in the
//! same order), so identical descriptors tie exactly. `-0.0` counts as `0.0`. A query by id
//! leaves its own record out ([`NeighboursParams::exclude_self`]), not other records with the
//! same descriptor. With fewer rows than `k` (after that exclusion), every row is returned.
//!
//! With an index ([`NeighboursParams::index`]) the store is not streamed: the HNSW graph
//! proposes each query's 2 `k` rows ([`index::OVERSAMPLE`]; one more for a query by id, whose
//! own row is dropped), which are read back from the store and scored exactly, the best `k`
//! kept (f64 sums of the same aggregated rows), then
//! ordered as above. The similarities are the exact ones (to float rounding); the set of
//! neighbours is the graph's, as good as the index's recall (measured when it was built, in its
//! `index.json`).
//!
//! Output ([`NeighboursParams::out`]): `neighbours.csv` (`query,rank,id,label,similarity`, rank
//! from 1, labels joined as `export` joins them) and `neighbours.html`, one self-contained page
//! (no network: thumbnails are JPEG data URIs) with each query's thumbnail then its neighbours
//! with rank, id, label and similarity. The thumbnails of store ids are found by listing the
//! store's inputs again; an image that cannot be shown is a placeholder stating why.

pub mod index;

use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::aggregate::Aggregate;
use crate::error::{Error, Param, Result};
use crate::extract::Extractor;
use crate::image_io::{DecodeOptions, Image};
use crate::model::Precision;
use crate::model::engine::gemm::{Epilogue, Lhs, PackedB, gemm};
use crate::model::engine::isa::kernel_for;
use crate::report::html::escape;
use crate::report::thumbnail::image_data_uri;
use crate::store::{Nets, StoreStream};
use crate::util::{AtomicFile, Progress};

/// Neighbours per query by default.
pub const DEFAULT_K: usize = 10;
/// Store rows per matrix product by default.
pub const DEFAULT_BLOCK: usize = 4096;
/// Thumbnail side in pixels by default.
pub const DEFAULT_THUMBNAIL: u32 = 128;

/// One query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// A record of the store, by id.
    Id(String),
    /// An image file, described with the store's nets.
    Image(PathBuf),
}

impl Query {
    /// How the query is named in the outputs: the id, or the path as given.
    pub fn name(&self) -> String {
        match self {
            Query::Id(id) => id.clone(),
            Query::Image(p) => p.display().to_string(),
        }
    }
}

/// Checked parameters of a search; obtained only from [`NeighboursParams::check`]. See
/// [`NeighboursParams`] for every field's meaning, default and range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighboursValidParams {
    store: PathBuf,
    queries: Vec<Query>,
    k: usize,
    aggregate: Aggregate,
    nets: Nets,
    exclude_self: bool,
    block: usize,
    weights: Vec<PathBuf>,
    out: Option<PathBuf>,
    thumbnail: u32,
    index: Option<PathBuf>,
    expansion: Option<usize>,
}

impl NeighboursValidParams {
    /// The approximate index folder, if the search uses one.
    pub fn index(&self) -> Option<&Path> {
        self.index.as_deref()
    }
    /// The index's search expansion, if overridden.
    pub fn expansion(&self) -> Option<usize> {
        self.expansion
    }
    /// The store folder.
    pub fn store(&self) -> &Path {
        &self.store
    }
    /// The queries, in order.
    pub fn queries(&self) -> &[Query] {
        &self.queries
    }
    /// Neighbours per query.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Scale aggregation.
    pub fn aggregate(&self) -> Aggregate {
        self.aggregate
    }
    /// The nets used.
    pub fn nets(&self) -> &Nets {
        &self.nets
    }
    /// Whether a query by id leaves its own record out.
    pub fn exclude_self(&self) -> bool {
        self.exclude_self
    }
    /// Store rows per matrix product.
    pub fn block(&self) -> usize {
        self.block
    }
    /// Weights replacing the manifest's paths for image queries (empty: the manifest's).
    pub fn weights(&self) -> &[PathBuf] {
        &self.weights
    }
    /// The output folder, if any.
    pub fn out(&self) -> Option<&Path> {
        self.out.as_deref()
    }
    /// Thumbnail side in pixels.
    pub fn thumbnail(&self) -> u32 {
        self.thumbnail
    }
}

/// What to search for in which store: a builder. [`check`](NeighboursParams::check) is the only
/// way to [`NeighboursValidParams`]; [`neighbours`] runs the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighboursParams(NeighboursValidParams);

impl Default for NeighboursParams {
    fn default() -> Self {
        Self::new()
    }
}

impl NeighboursParams {
    /// The defaults: no store nor query yet, `k` = [`DEFAULT_K`], scales averaged, every net,
    /// a query's own record left out, blocks of [`DEFAULT_BLOCK`] rows, no output files.
    pub fn new() -> Self {
        NeighboursParams(NeighboursValidParams {
            store: PathBuf::new(),
            queries: Vec::new(),
            k: DEFAULT_K,
            aggregate: Aggregate::DEFAULT,
            nets: Nets::All,
            exclude_self: true,
            block: DEFAULT_BLOCK,
            weights: Vec::new(),
            out: None,
            thumbnail: DEFAULT_THUMBNAIL,
            index: None,
            expansion: None,
        })
    }

    /// An approximate index folder built from this store by [`index::build_index`] (`vggfeat
    /// index`): the graph proposes each query's neighbours, which are then scored exactly.
    /// Default none: the exact search. The index must have been built from the same records
    /// with the same aggregation and nets (checked by [`neighbours`]); [`Self::block`] is then
    /// unused.
    pub fn index(mut self, index: Option<PathBuf>) -> Self {
        self.0.index = index;
        self
    }

    /// The index's search expansion (candidate list), overriding the one it was built with.
    /// Default none: the index's own; 8..=4096. Only with [`Self::index`].
    pub fn expansion(mut self, ef: Option<usize>) -> Self {
        self.0.expansion = ef;
        self
    }

    /// The store folder written by an extraction. Required.
    pub fn store(mut self, store: impl Into<PathBuf>) -> Self {
        self.0.store = store.into();
        self
    }

    /// Adds queries (in order). At least one is required; a store id must have a descriptor in
    /// the store and an image file must be readable (checked by [`neighbours`]).
    pub fn queries(mut self, queries: impl IntoIterator<Item = Query>) -> Self {
        self.0.queries.extend(queries);
        self
    }

    /// Adds queries by store id.
    pub fn ids<S: Into<String>>(self, ids: impl IntoIterator<Item = S>) -> Self {
        self.queries(ids.into_iter().map(|s| Query::Id(s.into())))
    }

    /// Adds queries by image file.
    pub fn images<P: Into<PathBuf>>(self, images: impl IntoIterator<Item = P>) -> Self {
        self.queries(images.into_iter().map(|p| Query::Image(p.into())))
    }

    /// Neighbours per query. Default [`DEFAULT_K`]; at least 1. A store with fewer rows gives
    /// them all.
    pub fn k(mut self, k: usize) -> Self {
        self.0.k = k;
        self
    }

    /// Scale aggregation of the store's (and the image queries') descriptors. Default
    /// [`Aggregate::DEFAULT`] (stack), as `export` and `svm`.
    pub fn aggregate(mut self, aggregate: Aggregate) -> Self {
        self.0.aggregate = aggregate;
        self
    }

    /// Nets to use, fused by stacking in the order given. Default [`Nets::All`]; indices must
    /// exist in the store and not repeat.
    pub fn nets(mut self, nets: Nets) -> Self {
        self.0.nets = nets;
        self
    }

    /// Whether a query by id leaves its own record out of its neighbours. Default true (the
    /// record itself would always come first, at similarity 1). Other records with the same
    /// descriptor stay; image queries are never matched to a record.
    pub fn exclude_self(mut self, exclude: bool) -> Self {
        self.0.exclude_self = exclude;
        self
    }

    /// Store rows per matrix product. Default [`DEFAULT_BLOCK`]; 1..=1,048,576. Memory grows with
    /// it (three blocks of rows and one of similarities), the result does not change.
    pub fn block(mut self, block: usize) -> Self {
        self.0.block = block;
        self
    }

    /// Weights for the image queries, replacing the paths the store's manifest recorded (one per
    /// net used, in order), for weights that moved. Default none: the manifest's. Each must be
    /// the net the store recorded (its SHA-256).
    pub fn weights<P: Into<PathBuf>>(mut self, weights: impl IntoIterator<Item = P>) -> Self {
        self.0.weights = weights.into_iter().map(Into::into).collect();
        self
    }

    /// A folder (created if needed) for `neighbours.csv` and `neighbours.html`. Default none:
    /// nothing is written.
    pub fn out(mut self, out: Option<PathBuf>) -> Self {
        self.0.out = out;
        self
    }

    /// Longest side of the page's thumbnails in pixels. Default [`DEFAULT_THUMBNAIL`];
    /// 16..=1024.
    pub fn thumbnail(mut self, side: u32) -> Self {
        self.0.thumbnail = side;
        self
    }

    /// Checks every range given in the setters' docs, without I/O.
    pub fn check(self) -> Result<NeighboursValidParams> {
        let p = self.0;
        if p.store.as_os_str().is_empty() {
            return Err(Error::param(Param::Store, "the store folder is required"));
        }
        if p.queries.is_empty() {
            return Err(Error::param(
                Param::Ids,
                "no queries: give store ids or images",
            ));
        }
        if let Some(q) = p.queries.iter().find(|q| match q {
            Query::Id(id) => id.is_empty(),
            Query::Image(path) => path.as_os_str().is_empty(),
        }) {
            let param = match q {
                Query::Id(_) => Param::Ids,
                Query::Image(_) => Param::Images,
            };
            return Err(Error::param(param, "an empty query"));
        }
        if p.k == 0 {
            return Err(Error::param(Param::K, "must be at least 1"));
        }
        if !(1..=1 << 20).contains(&p.block) {
            return Err(Error::param(Param::Block, "must be in 1..=1048576"));
        }
        if !(16..=1024).contains(&p.thumbnail) {
            return Err(Error::param(Param::Thumbnail, "must be in 16..=1024"));
        }
        if let Nets::Some(v) = &p.nets {
            crate::store::check_net_list(v)?;
        }
        if let Some(ef) = p.expansion {
            if p.index.is_none() {
                return Err(Error::param(
                    Param::Expansion,
                    "applies to an approximate index only: give the index too",
                ));
            }
            index::check_expansion(ef)?;
        }
        Ok(p)
    }
}

/// One neighbour of a query.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Neighbour {
    /// Its row among the store's descriptors (successful records in id order, as `export`
    /// writes them).
    pub row: usize,
    /// Its id.
    pub id: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// The cosine similarity with the query.
    pub similarity: f32,
}

/// The neighbours of one query, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryNeighbours {
    /// The query.
    pub query: Query,
    /// The query's own row, for a query by id.
    pub row: Option<usize>,
    /// Its neighbours, best first (at most `k`).
    pub neighbours: Vec<Neighbour>,
}

/// What [`neighbours`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct NeighboursReport {
    /// One entry per query, in the order given.
    pub queries: Vec<QueryNeighbours>,
    /// Rows searched (the store's descriptors).
    pub rows: usize,
    /// Their dimension.
    pub dim: usize,
    /// The approximate index used, if any.
    pub approximate: Option<Approximate>,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// What is wrong with the store, if anything: incomplete, or stale against its inputs.
    pub warnings: Vec<String>,
}

/// The approximate index a search used.
#[derive(Debug, Clone, PartialEq)]
pub struct Approximate {
    /// Its description (`index.json`), with the recall measured when it was built.
    pub meta: index::IndexMeta,
    /// The search expansion used.
    pub expansion: usize,
}

/// The number of rows of a store that can be searched (its successful records); an error
/// naming `path` when there are none.
pub(crate) fn searchable_rows(store: &StoreStream, path: &Path) -> Result<usize> {
    let rows = store.ok_len();
    if rows == 0 {
        return Err(Error::Data {
            path: path.to_path_buf(),
            reason: if store.entries.is_empty() {
                "the store has no records: nothing to search".into()
            } else {
                format!(
                    "none of its {} records has a descriptor (every extraction failed): \
                     nothing to search",
                    store.entries.len()
                )
            },
        });
    }
    Ok(rows)
}

/// Where each successful row (an index among the successful records) sits in
/// [`StoreStream::entries`]; built once per search, not per batch of rows read back.
pub(crate) struct EntryPositions(Vec<usize>);

impl EntryPositions {
    /// The positions of `store`'s successful records.
    pub(crate) fn of(store: &StoreStream) -> Self {
        Self(
            store
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.failure.is_none())
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// The entry positions of `rows`, in the order given.
    pub(crate) fn of_rows(&self, rows: &[usize]) -> Vec<usize> {
        rows.iter().map(|&r| self.0[r]).collect()
    }
}

/// Streams a store's successful rows, aggregated (`how`, `nets`; `dim` floats each), to `each`
/// in blocks of at most `block` rows with the first block's row: one thread reads and
/// aggregates the next block while `each` works on this one. An error from either side stops
/// the stream and is returned; every row is passed exactly once.
pub(crate) fn stream_rows(
    store: &StoreStream,
    nets: &[usize],
    how: Aggregate,
    block: usize,
    dim: usize,
    mut each: impl FnMut(usize, &[f32]) -> Result<()>,
) -> Result<()> {
    let layout = store.manifest.layout();
    let rows = store.ok_len();
    std::thread::scope(|sc| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<f32>>>(1);
        sc.spawn(move || {
            let mut it = store.ok_rows();
            loop {
                let mut b = Vec::with_capacity(block * dim);
                for _ in 0..block {
                    let v = match it.next() {
                        None => break,
                        Some(row) => {
                            row.and_then(|(_, floats)| layout.aggregate(&floats, how, nets))
                        }
                    };
                    match v {
                        Ok(v) => b.extend_from_slice(&v),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                if b.is_empty() || tx.send(Ok(b)).is_err() {
                    return;
                }
            }
        });
        let mut first = 0;
        for b in rx {
            let b = b?;
            each(first, &b)?;
            first += b.len() / dim;
        }
        if first != rows {
            return Err(Error::Internal(format!(
                "{first} of {rows} rows were searched"
            )));
        }
        Ok(())
    })
}

/// Finds each query's `k` nearest rows of the store (see the module docs). Errors name the
/// store, the id or the image: an id not in the store or without a descriptor, an unreadable
/// query image, a store without descriptors.
pub fn neighbours(p: &NeighboursValidParams, progress: &dyn Progress) -> Result<NeighboursReport> {
    let store = StoreStream::open(&p.store)?;
    let m = &store.manifest;
    let nets = p.nets.resolve(m.nets.len())?;
    let layout = m.layout();
    let dim = layout.dim(p.aggregate, &nets);
    let rows = searchable_rows(&store, &p.store)?;
    // Each entry's row among the successful records.
    let mut row_of = Vec::with_capacity(store.entries.len());
    let mut r = 0;
    for e in &store.entries {
        row_of.push(r);
        r += usize::from(e.failure.is_none());
    }

    let nq = p.queries.len();
    let mut q = vec![0f32; nq * dim];
    let mut own_row = vec![None; nq];
    // Queries by id: their records' rows.
    let mut by_id = Vec::new();
    for (i, query) in p.queries.iter().enumerate() {
        if let Query::Id(id) = query {
            let at = store
                .entries
                .binary_search_by(|e| e.id.as_str().cmp(id))
                .map_err(|_| {
                    Error::param(
                        Param::Ids,
                        format!("{id}: no such id in the store {}", p.store.display()),
                    )
                })?;
            if let Some(why) = &store.entries[at].failure {
                return Err(Error::param(
                    Param::Ids,
                    format!(
                        "{id}: its extraction failed in the store {} ({why}), so it has no \
                         descriptor",
                        p.store.display()
                    ),
                ));
            }
            own_row[i] = Some(row_of[at]);
            by_id.push((i, at));
        }
    }
    let at: Vec<usize> = by_id.iter().map(|&(_, at)| at).collect();
    for ((i, _), floats) in by_id.iter().zip(store.floats_at(&at)?) {
        let v = layout.aggregate(&floats, p.aggregate, &nets)?;
        q[i * dim..(i + 1) * dim].copy_from_slice(&v);
    }
    // Queries by image: described with the store's nets.
    let images: Vec<(usize, Image)> = p
        .queries
        .iter()
        .enumerate()
        .filter_map(|(i, q)| match q {
            Query::Image(path) => Some((i, Image::Path(path.clone()))),
            Query::Id(_) => None,
        })
        .collect();
    if !images.is_empty() {
        let extractor = Extractor::for_store(m, &nets, &p.weights)?;
        let list: Vec<Image> = images.iter().map(|(_, im)| im.clone()).collect();
        let described = extractor.describe_all(&list, progress)?;
        if let Some(f) = described.failed().first() {
            return Err(f.to_error());
        }
        let x = described.aggregated(p.aggregate)?;
        for ((i, _), row) in images.iter().zip(x.rows()) {
            q[i * dim..(i + 1) * dim].copy_from_slice(row.as_slice().expect("standard layout"));
        }
    }

    let exclude: Vec<Option<usize>> = if p.exclude_self {
        own_row.clone()
    } else {
        vec![None; nq]
    };
    let (hits, approximate) = match &p.index {
        None => {
            let mut search = Search::new(&q, dim, p.k, exclude)?;
            progress.begin("neighbours", "rows", rows as u64);
            let found = stream_rows(&store, &nets, p.aggregate, p.block, dim, |first, b| {
                search.add(first, b);
                progress.advance((b.len() / dim) as u64);
                Ok(())
            });
            progress.end();
            found?;
            (search.finish(), None)
        }
        Some(dir) => {
            let open = index::open_for(dir, &store, p.aggregate, &nets, dim, p.expansion)?;
            let index_file = dir.join(index::INDEX_FILE);
            progress.begin("neighbours (index)", "queries", nq as u64);
            let cands: Vec<Vec<usize>> = q
                .par_chunks(dim)
                .zip(&exclude)
                .map(|(v, &ex)| {
                    let c = index::candidates(&open.index, &index_file, v, p.k, ex);
                    progress.advance(1);
                    c
                })
                .collect::<Result<_>>()?;
            progress.end();
            let hits = index::rescore(&store, p.aggregate, &nets, &q, &cands, p.k)?;
            let ef = open.index.expansion_search();
            (
                hits,
                Some(Approximate {
                    meta: open.meta,
                    expansion: ef,
                }),
            )
        }
    };

    let queries = p
        .queries
        .iter()
        .zip(own_row)
        .zip(hits)
        .map(|((query, row), hits)| QueryNeighbours {
            query: query.clone(),
            row,
            neighbours: hits
                .into_iter()
                .map(|(row, similarity)| Neighbour {
                    row,
                    id: String::new(),
                    labels: Vec::new(),
                    similarity,
                })
                .collect(),
        })
        .collect::<Vec<_>>();
    let mut report = NeighboursReport {
        queries,
        rows,
        dim,
        approximate,
        files: Vec::new(),
        warnings: store.freshness().warnings(),
    };
    name_rows(&store, &mut report.queries);
    if let Some(out) = &p.out {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let csv = out.join("neighbours.csv");
        write_csv(&csv, &report)?;
        let html = out.join("neighbours.html");
        write_html(&html, &store, &report, p, progress)?;
        report.files = vec![csv, html];
    }
    Ok(report)
}

/// Fills in the ids and labels of the neighbours' rows (one pass over the index).
fn name_rows(store: &StoreStream, queries: &mut [QueryNeighbours]) {
    let ok: Vec<&crate::store::Entry> = store
        .entries
        .iter()
        .filter(|e| e.failure.is_none())
        .collect();
    for n in queries.iter_mut().flat_map(|q| q.neighbours.iter_mut()) {
        n.id = ok[n.row].id.clone();
        n.labels = ok[n.row].labels.clone();
    }
}

/// The `k` nearest rows of `x` (rows of `dim` floats, L2-normalised) to each row of `queries`
/// by dot product, best first, as `(row, similarity)`: the search [`neighbours`] runs over a
/// store, on matrices in memory, `block` rows per product. `exclude[i]` is a row query `i`
/// leaves out (empty: none). Ordered as the module docs say.
pub fn knn(
    x: &[f32],
    queries: &[f32],
    dim: usize,
    k: usize,
    block: usize,
    exclude: &[Option<usize>],
) -> Result<Vec<Vec<(usize, f32)>>> {
    if dim == 0 || !x.len().is_multiple_of(dim) || !queries.len().is_multiple_of(dim) {
        return Err(Error::usage(format!(
            "matrices of {} and {} floats do not have rows of {dim}",
            x.len(),
            queries.len()
        )));
    }
    if k == 0 || block == 0 {
        return Err(Error::usage("k and the block must be at least 1"));
    }
    let nq = queries.len() / dim;
    let exclude = if exclude.is_empty() {
        vec![None; nq]
    } else if exclude.len() == nq {
        exclude.to_vec()
    } else {
        return Err(Error::usage(format!(
            "{} exclusions for {nq} queries",
            exclude.len()
        )));
    };
    let mut s = Search::new(queries, dim, k, exclude)?;
    for (b, rows) in x.chunks(block * dim).enumerate() {
        s.add(b * block, rows);
    }
    Ok(s.finish())
}

/// A candidate row of one query. Ordered worst first (lower similarity, then higher row), so
/// that a max-heap keeps the worst of the best `k` on top.
#[derive(Debug, Clone, Copy)]
struct Cand {
    sim: f32,
    row: usize,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.sim.total_cmp(&self.sim).then(self.row.cmp(&o.row))
    }
}

/// One query's best `k` rows so far.
#[derive(Debug)]
struct Best {
    heap: BinaryHeap<Cand>,
    exclude: Option<usize>,
}

impl Best {
    /// Offers row `row` at similarity `sim`; rows come in increasing order, so an equal
    /// similarity never displaces an earlier row.
    #[inline]
    fn offer(&mut self, k: usize, row: usize, sim: f32) {
        let sim = sim + 0.0; // -0.0 as 0.0
        if self.heap.len() < k {
            if self.exclude != Some(row) {
                self.heap.push(Cand { sim, row });
            }
        } else if let Some(mut worst) = self.heap.peek_mut()
            && sim.total_cmp(&worst.sim).is_gt()
            && self.exclude != Some(row)
        {
            *worst = Cand { sim, row };
        }
    }
}

/// The search state: the queries packed once for the GEMM, each query's heap, and the block of
/// similarities.
struct Search {
    packed: PackedB,
    nq: usize,
    dim: usize,
    k: usize,
    best: Vec<Best>,
    sims: Vec<f32>,
}

/// Rows of a block per GEMM task (a multiple of the micro-kernel's 6 rows).
const ROWS_PER_TASK: usize = 96;
/// Queries per top-k task.
const QUERIES_PER_TASK: usize = 16;

impl Search {
    fn new(queries: &[f32], dim: usize, k: usize, exclude: Vec<Option<usize>>) -> Result<Self> {
        let nq = queries.len() / dim;
        // B = queries^T (dim x nq), row-major, packed for the f32 kernel of this CPU.
        let mut qt = vec![0f32; dim * nq];
        for (j, q) in queries.chunks_exact(dim).enumerate() {
            for (t, v) in q.iter().enumerate() {
                qt[t * nq + j] = *v;
            }
        }
        let packed = PackedB::new(&qt, dim, nq, kernel_for(Precision::F32)?);
        Ok(Search {
            packed,
            nq,
            dim,
            k,
            best: exclude
                .into_iter()
                .map(|exclude| Best {
                    heap: BinaryHeap::with_capacity(k + 1),
                    exclude,
                })
                .collect(),
            sims: Vec::new(),
        })
    }

    /// Rows `first..` of the database, `rows` holding them (`dim` floats each).
    fn add(&mut self, first: usize, rows: &[f32]) {
        let (nq, dim, k) = (self.nq, self.dim, self.k);
        let n = rows.len() / dim;
        if n == 0 || nq == 0 {
            return;
        }
        self.sims.resize(n * nq, 0.0);
        let packed = &self.packed;
        self.sims
            .par_chunks_mut(ROWS_PER_TASK * nq)
            .zip(rows.par_chunks(ROWS_PER_TASK * dim))
            .for_each(|(c, a)| {
                gemm(
                    a.len() / dim,
                    Lhs::F32(a),
                    dim,
                    packed,
                    0..nq,
                    c,
                    nq,
                    Epilogue::NONE,
                )
            });
        let sims = &self.sims;
        self.best
            .par_chunks_mut(QUERIES_PER_TASK)
            .enumerate()
            .for_each(|(g, best)| {
                let j0 = g * QUERIES_PER_TASK;
                for i in 0..n {
                    let s = &sims[i * nq + j0..i * nq + j0 + best.len()];
                    for (b, &sim) in best.iter_mut().zip(s) {
                        b.offer(k, first + i, sim);
                    }
                }
            });
    }

    /// Each query's rows, best first.
    fn finish(self) -> Vec<Vec<(usize, f32)>> {
        self.best
            .into_iter()
            .map(|b| {
                b.heap
                    .into_sorted_vec()
                    .into_iter()
                    .map(|c| (c.row, c.sim))
                    .collect()
            })
            .collect()
    }
}

impl NeighboursReport {
    /// Writes the neighbours as CSV: `query,rank,id,label,similarity`, one row per neighbour,
    /// rank from 1, labels joined as `export` joins them (`;`, escaped). What
    /// `neighbours.csv` holds.
    pub fn write_csv<W: std::io::Write>(&self, out: W) -> std::result::Result<(), csv::Error> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(["query", "rank", "id", "label", "similarity"])?;
        for q in &self.queries {
            let name = q.query.name();
            for (rank, n) in q.neighbours.iter().enumerate() {
                w.write_record([
                    name.as_str(),
                    &(rank + 1).to_string(),
                    &n.id,
                    &crate::store::export::join_labels(&n.labels),
                    &n.similarity.to_string(),
                ])?;
            }
        }
        w.flush()?;
        Ok(())
    }
}

/// `neighbours.csv`, written atomically.
fn write_csv(path: &Path, r: &NeighboursReport) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    r.write_csv(f.writer())
        .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    f.commit()
}

/// Where a thumbnail comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Thumb {
    Row(usize),
    File(PathBuf),
}

/// `neighbours.html` (see the module docs).
fn write_html(
    path: &Path,
    store: &StoreStream,
    r: &NeighboursReport,
    p: &NeighboursValidParams,
    progress: &dyn Progress,
) -> Result<()> {
    // Every image shown, once.
    let mut wanted: Vec<Thumb> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for q in &r.queries {
        let first = match (&q.query, q.row) {
            (Query::Image(path), _) => Thumb::File(path.clone()),
            (Query::Id(_), Some(row)) => Thumb::Row(row),
            (Query::Id(_), None) => continue,
        };
        for t in std::iter::once(first).chain(q.neighbours.iter().map(|n| Thumb::Row(n.row))) {
            if seen.insert(t.clone()) {
                wanted.push(t);
            }
        }
    }
    let ok: Vec<&crate::store::Entry> = store
        .entries
        .iter()
        .filter(|e| e.failure.is_none())
        .collect();
    // The store's inputs, for the files of its ids.
    let needs_listing = wanted.iter().any(|t| matches!(t, Thumb::Row(_)));
    let listing = if needs_listing {
        progress.status("listing the store's inputs for the thumbnails");
        let ids: std::collections::HashSet<&str> = wanted
            .iter()
            .filter_map(|t| match t {
                Thumb::Row(r) => Some(ok[*r].id.as_str()),
                Thumb::File(_) => None,
            })
            .collect();
        crate::store::items_by_id(&store.manifest, &ids)
    } else {
        Ok(HashMap::new())
    };
    let opts = DecodeOptions {
        max_pixels: store.manifest.max_pixels,
        ..Default::default()
    };
    let side = p.thumbnail;
    let thumbs: HashMap<Thumb, std::result::Result<String, String>> = wanted
        .par_iter()
        .map(|t| {
            let img = match t {
                Thumb::File(path) => {
                    crate::image_io::load_rgb_with(path, &opts).map_err(|e| e.to_string())
                }
                Thumb::Row(r) => match &listing {
                    Err(why) => Err(format!("the store's inputs cannot be listed: {why}")),
                    Ok(items) => match items.get(ok[*r].id.as_str()) {
                        None => Err("no longer among the store's inputs".to_string()),
                        Some(item) => {
                            crate::image_io::load_item(item, &opts).map_err(|e| e.to_string())
                        }
                    },
                },
            };
            (
                t.clone(),
                img.and_then(|img| image_data_uri(img, side).map_err(|e| e.to_string())),
            )
        })
        .collect();

    let mut h = String::new();
    h.push_str(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>vggfeat neighbours</title>\n<style>\n\
         body { font-family: sans-serif; margin: 1em; }\n\
         section { margin-bottom: 1.5em; border-bottom: 1px solid #ccc; }\n\
         .row { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; }\n\
         figure { margin: 0; width: SIDEpx; font-size: 11px; overflow-wrap: anywhere; }\n\
         figure.query { border-right: 3px solid #36c; padding-right: 8px; }\n\
         figure img { display: block; max-width: SIDEpx; max-height: SIDEpx; }\n\
         .missing { width: SIDEpx; height: SIDEpx; background: #eee; color: #a00; \
         display: flex; align-items: center; justify-content: center; text-align: center; \
         font-size: 10px; }\n\
         </style>\n</head>\n<body>\n"
            .replace("SIDE", &side.to_string())
            .as_str(),
    );
    h.push_str(&format!(
        "<h1>Neighbours</h1>\n<p>Store <code>{}</code>: {} descriptors of dimension {}; the \
         {} nearest by cosine similarity (exact){}.</p>\n",
        escape(&p.store.display().to_string()),
        r.rows,
        r.dim,
        p.k,
        if p.exclude_self {
            ", a query's own record left out"
        } else {
            ""
        }
    ));
    for w in &r.warnings {
        h.push_str(&format!("<p><strong>warning:</strong> {}</p>\n", escape(w)));
    }
    let figure = |h: &mut String, t: Option<&Thumb>, class: &str, caption: &str| {
        h.push_str(&format!("<figure class=\"{class}\">"));
        match t.map(|t| &thumbs[t]) {
            Some(Ok(uri)) => h.push_str(&format!("<img src=\"{uri}\" alt=\"\">")),
            Some(Err(why)) => h.push_str(&format!(
                "<div class=\"missing\">cannot show: {}</div>",
                escape(why)
            )),
            None => h.push_str("<div class=\"missing\">no image</div>"),
        }
        h.push_str(&format!("<figcaption>{caption}</figcaption></figure>\n"));
    };
    for q in &r.queries {
        let name = q.query.name();
        h.push_str(&format!(
            "<section>\n<h2>{}</h2>\n<div class=\"row\">\n",
            escape(&name)
        ));
        let (t, labels) = match (&q.query, q.row) {
            (Query::Image(path), _) => (Some(Thumb::File(path.clone())), String::new()),
            (Query::Id(_), Some(row)) => (Some(Thumb::Row(row)), ok[row].labels.join(", ")),
            (Query::Id(_), None) => (None, String::new()),
        };
        figure(
            &mut h,
            t.as_ref(),
            "query",
            &format!("query<br>{}<br>{}", escape(&name), escape(&labels)),
        );
        for (rank, n) in q.neighbours.iter().enumerate() {
            figure(
                &mut h,
                Some(&Thumb::Row(n.row)),
                "hit",
                &format!(
                    "#{} &middot; {:.4}<br>{}<br>{}",
                    rank + 1,
                    n.similarity,
                    escape(&n.id),
                    escape(&n.labels.join(", "))
                ),
            );
        }
        h.push_str("</div>\n</section>\n");
    }
    h.push_str("</body>\n</html>\n");
    crate::util::write_atomic(path, h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force in f64 with a full sort: similarity descending, row ascending.
    fn brute(x: &[f32], q: &[f32], dim: usize, k: usize, ex: Option<usize>) -> Vec<usize> {
        let mut s: Vec<(f64, usize)> = x
            .chunks(dim)
            .enumerate()
            .filter(|(r, _)| Some(*r) != ex)
            .map(|(r, row)| {
                let d: f64 = row.iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum();
                (d, r)
            })
            .collect();
        s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        s.into_iter().take(k).map(|(_, r)| r).collect()
    }

    #[test]
    fn matches_brute_force_across_blocks() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (n, nq, dim) = (1000, 37, 70);
        let mut x: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        for r in x.chunks_mut(dim) {
            crate::aggregate::l2_normalize(r);
        }
        let q: Vec<f32> = x[..nq * dim].to_vec();
        let ex: Vec<Option<usize>> = (0..nq).map(|i| (i % 2 == 0).then_some(i)).collect();
        for block in [1, 7, 96, 5000] {
            let got = knn(&x, &q, dim, 12, block, &ex).unwrap();
            for (i, g) in got.iter().enumerate() {
                let rows: Vec<usize> = g.iter().map(|h| h.0).collect();
                assert_eq!(
                    rows,
                    brute(&x, &q[i * dim..(i + 1) * dim], dim, 12, ex[i]),
                    "query {i}, block {block}"
                );
                assert!(g.windows(2).all(|w| w[0].1 >= w[1].1));
            }
        }
    }

    #[test]
    fn ties_go_to_the_lower_row_and_k_past_the_rows() {
        // Rows 0, 2 and 3 are the same vector; row 1 is orthogonal to the query.
        let x = [0.6, 0.8, 1.0, 0.0, 0.6, 0.8, 0.6, 0.8];
        let q = [0.6, 0.8];
        let got = knn(&x, &q, 2, 10, 1, &[]).unwrap();
        let rows: Vec<usize> = got[0].iter().map(|h| h.0).collect();
        assert_eq!(rows, vec![0, 2, 3, 1]);
        assert_eq!(got[0][0].1, got[0][2].1);
        let got = knn(&x, &q, 2, 2, 3, &[Some(0)]).unwrap();
        assert_eq!(got[0].iter().map(|h| h.0).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn parameters_are_checked() {
        let ok = || NeighboursParams::new().store("s").ids(["a"]);
        assert!(ok().check().is_ok());
        let param = |p: NeighboursParams| match p.check() {
            Err(Error::Param { param, .. }) => param,
            other => panic!("{other:?}"),
        };
        assert_eq!(param(ok().k(0)), Param::K);
        assert_eq!(param(ok().block(0)), Param::Block);
        assert_eq!(param(ok().thumbnail(8)), Param::Thumbnail);
        assert_eq!(param(NeighboursParams::new().store("s")), Param::Ids);
        assert_eq!(param(NeighboursParams::new().ids(["a"])), Param::Store);
        assert_eq!(param(ok().nets(Nets::Some(vec![0, 0]))), Param::Nets);
    }

    #[test]
    fn html_text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
