//! `vggfeat export`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::EXIT_OK;
use crate::choice::{Choice, lib_parser};
use vggfeat::{Aggregate, ExportFormat, ExportParams, ExportValidParams, Nets, export};

/// Export descriptors: aggregated and L2-normalised, or raw per net and scale.
#[derive(Args, Debug)]
#[command(
    group(clap::ArgGroup::new("output").required(true).args(["csv", "npy", "parquet", "npy_shards"])),
    after_help = "Examples:\n  vggfeat export stores/c101 --aggregate stack --csv c101.csv\n  vggfeat export stores/voc07 --nets 0,1 --npy voc07.npy            # also writes voc07.ids.csv\n  vggfeat export stores/big --parquet big.parquet                    # pandas: np.stack(pd.read_parquet('big.parquet').features)\n  vggfeat export stores/big --npy-shards emb/ --rows 100000          # emb_00000.npy + meta_00000.parquet, ...\n  vggfeat export stores/c101 --raw --parquet raw.parquet             # per net and scale, not normalised\n\nEvery format is streamed: the descriptors are never all in memory (about 0.5 KB per record for the index)."
)]
pub struct ExportArgs {
    /// The store folder written by `extract`.
    pub store: PathBuf,
    /// Scale aggregation: the same default as `svm` (stack), so that what is exported is what
    /// `svm` trains on.
    #[arg(long, default_value_t = Aggregate::DEFAULT, value_parser = Choice::<Aggregate>::new())]
    pub aggregate: Aggregate,
    /// Nets to use: all, or indices like 0,1 (fused by stacking).
    #[arg(long, default_value = "all", value_parser = lib_parser::<Nets>)]
    pub nets: Nets,
    /// Write CSV: header id,label,d0,d1,...
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write a float32 .npy matrix, plus OUT.ids.csv (id,label) beside it.
    #[arg(long)]
    pub npy: Option<PathBuf>,
    /// Write Parquet: id, label (or labels, a list, for multi-label stores), features.
    #[arg(long)]
    pub parquet: Option<PathBuf>,
    /// Write emb_NNNNN.npy + meta_NNNNN.parquet pairs of at most --rows rows into a folder.
    #[arg(long, value_name = "DIR")]
    pub npy_shards: Option<PathBuf>,
    /// Rows per --npy-shards pair.
    #[arg(long, default_value_t = 100_000, requires = "npy_shards", value_parser = clap::value_parser!(u64).range(1..))]
    pub rows: u64,
    /// The stored per-net, per-scale descriptors, before any normalisation or aggregation
    /// (columns net<i>_<config>_<layer>_q<Q>; with --csv or --parquet).
    #[arg(long, conflicts_with_all = ["npy", "npy_shards"])]
    pub raw: bool,
}

impl TryFrom<ExportArgs> for ExportValidParams {
    type Error = vggfeat::Error;
    fn try_from(a: ExportArgs) -> vggfeat::Result<Self> {
        let mut p = ExportParams::new()
            .store(a.store)
            .aggregate(a.aggregate)
            .nets(a.nets)
            .raw(a.raw);
        // clap's group makes exactly one of them present.
        if let Some(f) = a.csv {
            p = p.format(ExportFormat::Csv(f));
        } else if let Some(f) = a.npy {
            p = p.format(ExportFormat::Npy(f));
        } else if let Some(f) = a.parquet {
            p = p.format(ExportFormat::Parquet(f));
        } else if let Some(dir) = a.npy_shards {
            p = p.format(ExportFormat::NpyShards {
                dir,
                rows: a.rows as usize,
            });
        }
        p.check()
    }
}

/// Exports and says how many descriptors of which dimension went where.
pub fn run(a: ExportArgs) -> Result<u8> {
    let s = export(&ExportValidParams::try_from(a)?)?;
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "exported {} descriptors of dimension {} ({} failed inputs left out)",
        s.rows, s.dim, s.failed_left_out
    );
    Ok(EXIT_OK)
}
