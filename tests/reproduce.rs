//! `vggfeat reproduce`: folder checks against `datasets/`, and a whole (tiny) Table 11 run with
//! the fixture net as D and its timm spelling as E on a few Caltech-101 classes.

use predicates::prelude::*;

use crate::util::{self, vggfeat};

#[test]
fn a_wrong_folder_is_refused_before_extraction() {
    let tmp = tempfile::tempdir().unwrap();
    vggfeat()
        .args(["reproduce", "--quiet", "--caltech101"])
        .arg(util::tiny().join("images"))
        .arg("--weights-d")
        .arg(util::tiny().join("weights.safetensors"))
        .arg("--work")
        .arg(tmp.path().join("w"))
        .arg("-o")
        .arg(tmp.path().join("o"))
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("expected 102 class folders")
                .and(predicate::str::contains("datasets/")),
        );
    assert!(
        !tmp.path().join("w").exists(),
        "nothing is extracted from a refused folder"
    );
}

#[test]
fn tiny_table11_with_fusion() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("caltech");
    let src = util::shared().join("datasets/caltech101/101_ObjectCategories");
    for class in ["Faces_easy", "Motorbikes", "airplanes", "watch"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 1..=12 {
            let f = format!("image_{i:04}.jpg");
            std::os::unix::fs::symlink(src.join(class).join(&f), root.join(class).join(&f))
                .unwrap();
        }
    }
    let out = tmp.path().join("results");
    let o = vggfeat()
        .args([
            "reproduce",
            "--quiet",
            "--skip-checks",
            "--scales",
            "224",
            "--caltech101",
        ])
        .arg(&root)
        .arg("--weights-d")
        .arg(util::tiny().join("weights.safetensors"))
        .arg("--weights-e")
        .arg(util::tiny().join("weights_timm.safetensors"))
        .arg("--work")
        .arg(tmp.path().join("work"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(out.join("table11.md")).unwrap();
    assert_eq!(table, stdout.trim_end_matches('\n').to_string() + "\n");
    for row in ["| D |", "| E |", "| D & E |"] {
        let line = table.lines().find(|l| l.starts_with(row)).unwrap();
        // Caltech-101 column has a number (ours) beside the paper's.
        assert!(
            line.contains("/ 91.8 ± 1.0")
                || line.contains("/ 92.3 ± 0.5")
                || line.contains("/ 92.7 ± 0.5"),
            "{line}"
        );
        assert!(
            !line.split('|').nth(4).unwrap().trim().starts_with('—'),
            "{line}"
        );
    }
    // D and E are the same weights in two spellings: identical descriptors, identical scores.
    let d = std::fs::read_to_string(out.join("caltech-101-D/table.csv")).unwrap();
    let e = std::fs::read_to_string(out.join("caltech-101-E/table.csv")).unwrap();
    assert_eq!(d, e);
    assert!(out.join("caltech-101-DE/split0.csv").exists());
    assert!(table.contains("VOC-2007: no folder given") && table.contains("Scales overridden"));
    // report.html: the same table, each cell linked to its run's own report.html, which shows
    // the paper's number beside ours.
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    crate::report::assert_self_contained(&page);
    for want in [
        "href=\"caltech-101-DE/report.html\"",
        "/ 92.7 ± 0.5",
        "Scales overridden",
    ] {
        assert!(page.contains(want), "report.html lacks {want}");
    }
    let de = std::fs::read_to_string(out.join("caltech-101-DE/report.html")).unwrap();
    assert!(
        de.contains("(paper: 92.7 ± 0.5 %)"),
        "the D & E run's page lacks the paper"
    );

    // The D & E cell is the fused run's own result...
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("caltech-101-DE/metrics.json")).unwrap(),
    )
    .unwrap();
    let (mean, std) = (
        m["splits"]["mean"].as_f64().unwrap(),
        m["splits"]["std"].as_f64().unwrap(),
    );
    let cell = format!("{:.1} ± {:.1} / 92.7 ± 0.5", 100.0 * mean, 100.0 * std);
    let row = table.lines().find(|l| l.starts_with("| D & E |")).unwrap();
    assert!(row.contains(&cell), "{row} lacks {cell}");
    assert_eq!(m["parameters"]["nets"], serde_json::json!([0, 1]));
    // ...computed on the late fusion of the two nets: the L2-normalised concatenation of each
    // net's aggregated descriptor, here [d, d] / sqrt(2) since D and E are the same weights.
    let store = vggfeat::Store::open(&tmp.path().join("work/caltech-101-0")).unwrap();
    let agg = vggfeat::Aggregate::Stack;
    let one = vggfeat::store::aggregate_store(&store, agg, &[0]).unwrap();
    let both = vggfeat::store::aggregate_store(&store, agg, &[0, 1]).unwrap();
    assert_eq!(one.ids, both.ids);
    for (d, de) in one.rows.iter().zip(&both.rows) {
        assert_eq!(de.len(), 2 * d.len());
        for (k, v) in de.iter().enumerate() {
            let want = d[k % d.len()] / std::f32::consts::SQRT_2;
            assert!((v - want).abs() <= 1e-6, "{v} vs {want}");
        }
    }
}
