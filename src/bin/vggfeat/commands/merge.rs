//! `vggfeat merge`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::EXIT_OK;

/// Join shard stores into one.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  vggfeat merge stores/part0 stores/part1 stores/part2 -o stores/all"
)]
pub struct MergeArgs {
    /// Shard stores (from `extract --shard i/N`).
    #[arg(required = true)]
    pub stores: Vec<PathBuf>,
    /// The merged store (must not exist).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Merge what is there even if shards are missing or incomplete; the merged store is then
    /// marked incomplete, saying what it lacks (export and svm repeat it).
    #[arg(long)]
    pub allow_partial: bool,
}

/// Merges and says how many records went where.
pub fn run(a: MergeArgs) -> Result<u8> {
    let s = vggfeat::merge(&a.stores, &a.out, a.allow_partial)?;
    if let Some(why) = s.incomplete() {
        eprintln!("warning: {why}");
    }
    eprintln!(
        "merged {} records ({} failed) into {}",
        s.records.len(),
        s.failures().len(),
        a.out.display()
    );
    Ok(EXIT_OK)
}
