//! Writes a demonstration report (tables, JSON, bar chart, PR curves) from made-up VOC-style
//! scores, to show what `vggfeat::report` produces without running a whole experiment.
//!
//! ```text
//! cargo run --example report_demo -- OUT_DIR
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vggfeat::metrics::{ApKind, mean_average_precision};
use vggfeat::report::{ClassScore, ResultsTable, write_pr_curves, write_results};

fn main() -> anyhow::Result<()> {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: report_demo OUT_DIR"))?,
    );
    let names = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus"];
    // Scores: positives shifted up by a class-dependent margin; every 10th item difficult.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut data = Vec::new();
    for k in 0..names.len() {
        let (mut s, mut l) = (Vec::new(), Vec::new());
        for i in 0..400 {
            let pos = rng.gen_bool(0.1);
            let label = if i % 10 == 0 {
                0
            } else if pos {
                1
            } else {
                -1
            };
            let shift = if pos { 0.1 + 0.15 * k as f64 } else { 0.0 };
            s.push(rng.r#gen::<f64>() + shift);
            l.push(label);
        }
        data.push((s, l));
    }
    let refs: Vec<(&[f64], &[i8])> = data.iter().map(|(s, l)| (&s[..], &l[..])).collect();
    let map = mean_average_precision(&refs, ApKind::Voc07)?;
    let classes = names
        .iter()
        .zip(&map.per_class)
        .map(|(n, r)| ClassScore::new(*n, r.ap))
        .collect();
    let table = ResultsTable::new("Demo: made-up VOC scores", "AP", classes, map.map)?;
    let params = serde_json::json!({"demo": true, "ap": ApKind::Voc07});
    let files = write_results(&out, &table, &params)?;
    let curves: Vec<(&str, _)> = names.iter().copied().zip(&map.per_class).collect();
    write_pr_curves(&out.join("pr_curves.svg"), "Demo PR curves", &curves)?;
    println!("{}", table.to_markdown());
    eprintln!(
        "wrote {} and pr_curves.svg",
        files.markdown.parent().unwrap().display()
    );
    Ok(())
}
