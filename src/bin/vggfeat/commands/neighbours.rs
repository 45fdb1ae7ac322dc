//! `vggfeat neighbours`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::EXIT_OK;
use crate::choice::{Choice, lib_parser};
use crate::progress::Shown;
use vggfeat::neighbours::{DEFAULT_BLOCK, DEFAULT_K, DEFAULT_THUMBNAIL};
use vggfeat::{Aggregate, NeighboursParams, NeighboursValidParams, Nets, Query, neighbours};

/// Nearest neighbours in a store: cosine k-NN over its L2-normalised descriptors, exact, or
/// proposed by an approximate index and scored exactly.
#[derive(Args, Debug)]
#[command(
    group(clap::ArgGroup::new("queries").required(true).multiple(true).args(["ids", "ids_file", "query"])),
    after_help = "Examples:\n  vggfeat neighbours -f stores/c101 --ids Faces/image_0001.jpg,Leopards/image_0007.jpg -k 5\n  vggfeat neighbours -f stores/c101 --query cat.jpg --query dog.png -o nn/     # nn/neighbours.csv + nn/neighbours.html\n  vggfeat neighbours -f stores/big --ids-file queries.txt -k 10 -o nn/\n\nThe store is streamed in blocks of --block rows (one matrix product each): memory does not grow\nwith the store. Ties in similarity go to the lower row (the store's id order). Query images are\ndescribed with the store's own nets, layer, scales, flip and preprocessing (its manifest names\nthe weights; --weights if they moved). Without -o the CSV goes to stdout."
)]
pub struct NeighboursArgs {
    /// The store folder written by `extract`.
    #[arg(short = 'f', long = "features", value_name = "STORE")]
    pub store: PathBuf,
    /// Query by store ids (comma-separated, or the flag repeated).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub ids: Vec<String>,
    /// Query by the store ids listed in a file, one per line (blank lines ignored).
    #[arg(long, value_name = "FILE")]
    pub ids_file: Option<PathBuf>,
    /// Query by an image file (repeatable), described as the store's images were.
    #[arg(long, value_name = "IMG")]
    pub query: Vec<PathBuf>,
    /// Neighbours per query.
    #[arg(short, default_value_t = DEFAULT_K)]
    pub k: usize,
    /// Keep a query's own record among its neighbours (queries by id; left out by default).
    #[arg(long)]
    pub include_self: bool,
    /// Scale aggregation: the default of `export` and `svm` (stack).
    #[arg(long, default_value_t = Aggregate::DEFAULT, value_parser = Choice::<Aggregate>::new())]
    pub aggregate: Aggregate,
    /// Nets to use: all, or indices like 0,1 (fused by stacking).
    #[arg(long, default_value = "all", value_parser = lib_parser::<Nets>)]
    pub nets: Nets,
    /// Write OUT/neighbours.csv (query,rank,id,label,similarity) and OUT/neighbours.html
    /// (self-contained page of thumbnails).
    #[arg(short, long, value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// Weights for --query images, when they are no longer where the store's manifest says
    /// (one per net used).
    #[arg(short, long)]
    pub weights: Vec<PathBuf>,
    /// Store rows per matrix product (memory grows with it; results do not change).
    #[arg(long, default_value_t = DEFAULT_BLOCK)]
    pub block: usize,
    /// An approximate index folder made by `vggfeat index` from this store: its graph proposes
    /// the neighbours, scored exactly (for stores of millions of rows; see its recall in
    /// index.json).
    #[arg(long, value_name = "INDEX")]
    pub index: Option<PathBuf>,
    /// The index's search expansion (ef), instead of the one it was built with: more is better
    /// recall, slower.
    #[arg(long, requires = "index")]
    pub expansion: Option<usize>,
    /// Longest side of the page's thumbnails, in pixels.
    #[arg(long, default_value_t = DEFAULT_THUMBNAIL)]
    pub thumbnail: u32,
    /// No progress.
    #[arg(short, long)]
    pub quiet: bool,
}

impl TryFrom<NeighboursArgs> for NeighboursValidParams {
    type Error = vggfeat::Error;
    fn try_from(a: NeighboursArgs) -> vggfeat::Result<Self> {
        let mut ids = a.ids;
        if let Some(f) = &a.ids_file {
            let text = std::fs::read_to_string(f).map_err(|e| vggfeat::Error::io(f, e))?;
            ids.extend(
                text.lines()
                    .map(str::trim_end)
                    .filter(|l| !l.is_empty())
                    .map(String::from),
            );
        }
        NeighboursParams::new()
            .store(a.store)
            .queries(ids.into_iter().map(Query::Id))
            .images(a.query)
            .k(a.k)
            .exclude_self(!a.include_self)
            .aggregate(a.aggregate)
            .nets(a.nets)
            .out(a.out)
            .weights(a.weights)
            .block(a.block)
            .thumbnail(a.thumbnail)
            .index(a.index)
            .expansion(a.expansion)
            .check()
    }
}

/// Searches, then writes the CSV to stdout (without -o) or says what was written.
pub fn run(a: NeighboursArgs) -> Result<u8> {
    let quiet = a.quiet;
    let p = NeighboursValidParams::try_from(a)?;
    let r = neighbours(
        &p,
        &Shown::visible(!quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())),
    )?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if let (Some(ap), false) = (&r.approximate, quiet) {
        let recall = ap.meta.recall.as_ref().map_or_else(
            || "its recall was not measured".to_string(),
            |rc| {
                format!(
                    "recall@{} {:.4} measured at ef = {}",
                    rc.k, rc.recall, rc.expansion
                )
            },
        );
        eprintln!(
            "approximate search: index of {} rows ({}), ef = {}; {recall}",
            ap.meta.rows, ap.meta.quantization, ap.expansion
        );
    }
    if r.files.is_empty() {
        r.write_csv(std::io::stdout().lock())?;
    } else if !quiet {
        let files: Vec<String> = r.files.iter().map(|f| f.display().to_string()).collect();
        eprintln!(
            "{} queries against {} descriptors of dimension {}: wrote {}",
            r.queries.len(),
            r.rows,
            r.dim,
            files.join(", ")
        );
    }
    Ok(EXIT_OK)
}
