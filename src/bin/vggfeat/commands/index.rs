//! `vggfeat index`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::EXIT_OK;
use crate::choice::{Choice, lib_parser};
use crate::progress::Shown;
use vggfeat::neighbours::index::{
    DEFAULT_CONNECTIVITY, DEFAULT_EXPANSION_ADD, DEFAULT_EXPANSION_SEARCH, DEFAULT_RECALL_K,
    DEFAULT_RECALL_QUERIES,
};
use vggfeat::{Aggregate, IndexParams, IndexValidParams, Nets, Quantization, build_index};

/// An approximate (HNSW) index of a store, for `neighbours --index`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  vggfeat index -f stores/big -o stores/big-index\n  vggfeat neighbours -f stores/big --index stores/big-index --ids-file queries.txt -k 10 -o nn/\n  vggfeat index -f stores/big -o idx-i8 --quantization i8 --connectivity 32 --recall-queries 5000\n\nOUT gets index.usearch (USearch's HNSW graph and vectors, memory-mapped when searched) and\nindex.json (what was indexed, how, and the recall measured here). The recall@k is measured on\n--recall-queries rows of the store drawn with --seed, each searched exactly and by the index,\nleaving itself out. A search with the index scores its candidates exactly; only the set of\nneighbours is approximate. The exact search (neighbours without --index) needs no index: use\nthis for stores of millions of rows."
)]
pub struct IndexArgs {
    /// The store folder written by `extract`.
    #[arg(short = 'f', long = "features", value_name = "STORE")]
    pub store: PathBuf,
    /// The index folder (created if needed; its files are replaced atomically).
    #[arg(short, long, value_name = "OUT")]
    pub out: PathBuf,
    /// How vectors are stored: f32 (4 bytes per dimension), bf16 or f16 (2), i8 (1).
    #[arg(long, default_value_t = Quantization::default(), value_parser = Choice::<Quantization>::new())]
    pub quantization: Quantization,
    /// Edges per node (HNSW's M): more is better recall, a larger index, a slower build.
    #[arg(long, default_value_t = DEFAULT_CONNECTIVITY)]
    pub connectivity: usize,
    /// Candidate list while adding (efConstruction).
    #[arg(long, default_value_t = DEFAULT_EXPANSION_ADD)]
    pub expansion_add: usize,
    /// Candidate list while searching (ef), the index's default for `neighbours`.
    #[arg(long, default_value_t = DEFAULT_EXPANSION_SEARCH)]
    pub expansion: usize,
    /// Rows whose recall@k is measured against the exact search (0: not measured).
    #[arg(long, default_value_t = DEFAULT_RECALL_QUERIES)]
    pub recall_queries: usize,
    /// k of the measured recall.
    #[arg(long, default_value_t = DEFAULT_RECALL_K)]
    pub recall_k: usize,
    /// Seed of the recall queries' draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Scale aggregation: the default of `export`, `svm` and `neighbours` (stack).
    #[arg(long, default_value_t = Aggregate::DEFAULT, value_parser = Choice::<Aggregate>::new())]
    pub aggregate: Aggregate,
    /// Nets to use: all, or indices like 0,1 (fused by stacking).
    #[arg(long, default_value = "all", value_parser = lib_parser::<Nets>)]
    pub nets: Nets,
    /// No progress and no summary.
    #[arg(short, long)]
    pub quiet: bool,
}

impl TryFrom<IndexArgs> for IndexValidParams {
    type Error = vggfeat::Error;
    fn try_from(a: IndexArgs) -> vggfeat::Result<Self> {
        IndexParams::new()
            .store(a.store)
            .out(a.out)
            .quantization(a.quantization)
            .connectivity(a.connectivity)
            .expansion_add(a.expansion_add)
            .expansion_search(a.expansion)
            .recall_queries(a.recall_queries)
            .recall_k(a.recall_k)
            .seed(a.seed)
            .aggregate(a.aggregate)
            .nets(a.nets)
            .check()
    }
}

/// Builds the index, then says what it holds and its recall.
pub fn run(a: IndexArgs) -> Result<u8> {
    let quiet = a.quiet;
    let p = IndexValidParams::try_from(a)?;
    let r = build_index(
        &p,
        &Shown::visible(!quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())),
    )?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if !quiet {
        let m = &r.meta;
        eprintln!(
            "indexed {} rows of dimension {} ({}, M = {}, ef_add = {}) in {:.1} s: {} ({:.1} MiB)",
            m.rows,
            m.dim,
            m.quantization,
            m.connectivity,
            m.expansion_add,
            m.build_seconds,
            p.out().display(),
            m.bytes as f64 / (1 << 20) as f64
        );
        if let Some(rc) = &m.recall {
            eprintln!(
                "recall@{} {:.4} (worst query {:.2}) on {} rows, ef = {}: {:.3} ms per query \
                 against {:.3} ms exact",
                rc.k,
                rc.recall,
                rc.min,
                rc.queries,
                rc.expansion,
                rc.index_ms_per_query,
                rc.exact_ms_per_query
            );
        }
    }
    Ok(EXIT_OK)
}
