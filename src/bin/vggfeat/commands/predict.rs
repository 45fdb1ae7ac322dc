//! `vggfeat predict`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::EXIT_OK;
use crate::choice::Choice;
use vggfeat::report::Scores;
use vggfeat::{Aggregate, PredictParams};

/// Apply saved classifiers (`svm`'s model_<split>.safetensors) to a store.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  vggfeat predict --model results/c101/model_split0.safetensors -f stores/new --top 3\n  vggfeat predict --model results/voc07/model_trainval.safetensors -f stores/more --csv scores.csv\n\nThe store must hold the descriptors the classifier was trained on (same nets, layer, scales and\nflip); it is aggregated as the classifier was trained. Anything else is refused, naming both."
)]
pub struct PredictArgs {
    /// The classifier file written by `vggfeat svm`.
    #[arg(long, short = 'm')]
    pub model: PathBuf,
    /// Feature stores to score (joined by image id).
    #[arg(long = "features", short = 'f', required = true)]
    pub features: Vec<PathBuf>,
    /// Check that the classifier was trained on this aggregation (default: use its own).
    #[arg(long, value_parser = Choice::<Aggregate>::new())]
    pub aggregate: Option<Aggregate>,
    /// Classes to print per image, highest decision value first.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Write every class's decision value per image as CSV (id,label,<classes>) instead of
    /// printing the top classes.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// Scores the stores and prints the top classes, or writes the CSV.
pub fn run(a: PredictArgs) -> Result<u8> {
    let params = PredictParams::new()
        .model(a.model)
        .features(a.features)
        .aggregate(a.aggregate)
        .check()?;
    let p = vggfeat::predict(&params)?;
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }
    match &a.csv {
        Some(path) => {
            let n = p.ids.len();
            let k = p.classes.len();
            let scores = Scores {
                set: "predict".into(),
                ids: p.ids,
                labels: p.labels,
                classes: p.classes,
                values: p.values,
            };
            vggfeat::report::write_scores(path, &scores)?;
            eprintln!("{n} images scored by {k} classes into {}", path.display());
        }
        None => {
            for (id, row) in p.ids.iter().zip(p.values.rows()) {
                let v: Vec<f32> = row.to_vec();
                let top: Vec<String> = vggfeat::metrics::ranking(&v)
                    .into_iter()
                    .take(a.top)
                    .map(|k| format!("{} {:.4}", p.classes[k], v[k]))
                    .collect();
                println!("{id}\t{}", top.join("\t"));
            }
        }
    }
    Ok(EXIT_OK)
}
