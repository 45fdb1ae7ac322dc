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

/// Asserts that `html` is one self-contained page: no URL of another host (`http://`,
/// `https://`, protocol-relative `//`), no external script, style sheet or font; every `src` a
/// `data:` URI.
pub fn assert_self_contained(html: &str) {
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "{}",
        &html[..60.min(html.len())]
    );
    for bad in [
        "http://",
        "https://",
        "src=\"//",
        "href=\"//",
        "<script",
        "<link",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(bad), "report.html contains {bad}");
    }
    for (i, _) in html.match_indices(" src=\"") {
        let rest = &html[i + 6..];
        assert!(
            rest.starts_with("data:image/"),
            "{}",
            &rest[..40.min(rest.len())]
        );
    }
}

/// A real `svm` run (Caltech protocol, 3 Caltech-101 classes, 2 splits) on a store extracted
/// with the tiny fixture net: its `report.html` is self-contained and shows the table's classes,
/// the confusion matrix, thumbnails of the worst-classified images and the provenance. When the
/// images are gone, the thumbnails are placeholders with the reason.
#[test]
fn svm_writes_a_self_contained_report_html() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("caltech");
    let src = crate::util::shared().join("datasets/caltech101/101_ObjectCategories");
    let classes = ["Faces_easy", "airplanes", "watch"];
    for class in classes {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 1..=8 {
            let f = format!("image_{i:04}.jpg");
            std::os::unix::fs::symlink(src.join(class).join(&f), root.join(class).join(&f))
                .unwrap();
        }
    }
    let store = tmp.path().join("store");
    let st = crate::util::extract_tiny(&[&root], &store, &[]).status();
    assert!(st.unwrap().success());
    let svm = |out: &std::path::Path| {
        let o = crate::util::vggfeat()
            .args(["svm", "--train-per-class", "4", "--test-per-class", "4"])
            .args(["--splits", "2", "-f"])
            .arg(&store)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out.join("report.html")).unwrap()
    };
    let html = svm(&tmp.path().join("res"));
    assert_self_contained(&html);
    for class in classes {
        assert!(
            html.contains(&format!("<td>{class}</td>")),
            "table lacks {class}"
        );
    }
    for want in [
        "Confusion matrix",
        "<table class=\"cm\">",
        "of 24 test images on the diagonal",
        "Worst-classified test images",
        "data:image/jpeg;base64,",
        "± std",
        "error bars: ± std over splits",
        "<th>command</th><td>vggfeat svm",
        "sha256 ",
        "<th>scales</th><td>Q = 224, flip on</td>",
        "<th>split 1</th><td>C = ",
        "<th>aggregation</th><td>stack</td>",
        concat!("<th>vggfeat</th><td>", env!("CARGO_PKG_VERSION"), "</td>"),
    ] {
        assert!(html.contains(want), "report.html lacks {want}");
    }
    assert_eq!(html.matches("<figure>").count(), 12);

    // The images moved away: the same run shows placeholders that say why.
    std::fs::remove_dir_all(&root).unwrap();
    let html = svm(&tmp.path().join("res2"));
    assert_self_contained(&html);
    assert!(!html.contains("data:image/"));
    assert_eq!(html.matches("no thumbnail: ").count(), 12);
    assert!(html.contains("cannot read"), "the reason is shown");
}
