//! Golden-file tests of the results tables (`src/report.rs`). The expected outputs live in
//! `tests/golden/`; regenerate them deliberately with `UPDATE_GOLDEN=1 cargo test report::`
//! and review the diff.

use vggfeat::metrics::mean_std;
use vggfeat::report::{ClassScore, ResultsTable};

use crate::util::golden;

/// A VOC-like table of one run: plain scores, awkward names (comma, quote, pipe).
fn voc_table() -> ResultsTable {
    let classes = vec![
        ClassScore::new("aeroplane", 0.9871),
        ClassScore::new("bicycle", 0.8125),
        ClassScore::new("dining, table", 0.75),
        ClassScore::new("pipe|name \"quoted\"", 0.0649),
    ];
    let mean = classes.iter().map(|c| c.score).sum::<f64>() / classes.len() as f64;
    ResultsTable::new("VOC 2007 test, VGG-D", "AP", classes, mean).unwrap()
}

/// A Caltech-like table over three splits: per-class mean ± std and the mean over splits.
fn caltech_table() -> ResultsTable {
    let per_split = [[0.9, 0.8, 1.0], [0.7, 0.6, 0.8], [1.0, 0.95, 0.9]];
    let classes = ["accordion", "airplanes", "anchor"]
        .iter()
        .zip(per_split)
        .map(|(name, s)| {
            let m = mean_std(&s).unwrap();
            ClassScore {
                name: name.to_string(),
                score: m.mean,
                std: m.std,
            }
        })
        .collect::<Vec<_>>();
    let split_means: Vec<f64> = (0..3)
        .map(|j| per_split.iter().map(|c| c[j]).sum::<f64>() / 3.0)
        .collect();
    let splits = mean_std(&split_means).unwrap();
    ResultsTable::new(
        "Caltech-101, 30 train / 50 test, 3 splits",
        "recall",
        classes,
        splits.mean,
    )
    .unwrap()
    .with_splits(splits)
}

#[test]
fn voc_table_markdown_and_csv() {
    let t = voc_table();
    golden("voc_table.md", &t.to_markdown());
    golden("voc_table.csv", &t.to_csv());
}

#[test]
fn caltech_table_with_splits_markdown_and_csv() {
    let t = caltech_table();
    golden("caltech_table.md", &t.to_markdown());
    golden("caltech_table.csv", &t.to_csv());
}

#[test]
fn csv_round_trips_through_a_csv_reader() {
    let t = voc_table();
    let csv = t.to_csv();
    let mut rdr = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(&rows[3][0], "pipe|name \"quoted\"");
    assert_eq!(rows[2][1].parse::<f64>().unwrap(), 0.75);
    assert_eq!(rows[4][1].parse::<f64>().unwrap(), t.mean);
}
