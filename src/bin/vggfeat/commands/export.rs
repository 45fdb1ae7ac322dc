//! `vggfeat export`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::EXIT_OK;
use crate::choice::{AggregateArg, Choice, lib_parser};
use vggfeat::store::Nets;
use vggfeat::store::export::{ExportFormat, ExportParams, export};

/// `--nets all|0,1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetsArg(pub Nets);

impl std::str::FromStr for NetsArg {
    type Err = vggfeat::Error;
    fn from_str(s: &str) -> vggfeat::Result<Self> {
        if s == "all" {
            return Ok(NetsArg(Nets::All));
        }
        s.split(',')
            .map(|p| {
                p.trim().parse().map_err(|_| {
                    vggfeat::Error::InvalidParam(format!(
                        "bad --nets `{s}` (expected all or indices like 0,1)"
                    ))
                })
            })
            .collect::<vggfeat::Result<Vec<usize>>>()
            .map(|v| NetsArg(Nets::Some(v)))
    }
}

/// Export aggregated descriptors.
#[derive(Args, Debug)]
#[command(
    group(clap::ArgGroup::new("output").required(true).args(["csv", "npy"])),
    after_help = "Examples:\n  vggfeat export stores/c101 --aggregate stack --csv c101.csv\n  vggfeat export stores/voc07 --nets 0,1 --npy voc07.npy   # also writes voc07.ids.csv"
)]
pub struct ExportArgs {
    /// The store folder written by `extract`.
    pub store: PathBuf,
    /// Scale aggregation.
    #[arg(long, default_value_t = AggregateArg::Avg, value_parser = Choice::<AggregateArg>::new())]
    pub aggregate: AggregateArg,
    /// Nets to use: all, or indices like 0,1 (fused by stacking).
    #[arg(long, default_value = "all", value_parser = lib_parser::<NetsArg>)]
    pub nets: NetsArg,
    /// Write CSV: header id,label,d0,d1,...
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write a float32 .npy matrix, plus OUT.ids.csv (id,label) beside it.
    #[arg(long)]
    pub npy: Option<PathBuf>,
}

impl TryFrom<ExportArgs> for ExportParams {
    type Error = vggfeat::Error;
    fn try_from(a: ExportArgs) -> vggfeat::Result<Self> {
        let format = match (a.csv, a.npy) {
            (Some(p), None) => ExportFormat::Csv(p),
            (None, Some(p)) => ExportFormat::Npy(p),
            _ => {
                return Err(vggfeat::Error::InvalidParam(
                    "give one of --csv OUT.csv or --npy OUT.npy".into(),
                ));
            }
        };
        Ok(ExportParams {
            store: a.store,
            aggregate: a.aggregate.into(),
            nets: a.nets.0,
            format,
        })
    }
}

/// Exports and says how many descriptors of which dimension went where.
pub fn run(a: ExportArgs) -> Result<u8> {
    let s = export(&ExportParams::try_from(a)?)?;
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "exported {} descriptors of dimension {} ({} failed inputs left out)",
        s.rows, s.dim, s.failed_left_out
    );
    Ok(EXIT_OK)
}
