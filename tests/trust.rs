//! Results a researcher can trust at first sight (issue 23): the C selection is cross-validated
//! and recorded, protocols say when they shrink, `export` and `svm` aggregate alike, exports carry
//! their provenance, and an extraction names what computed it.

use std::path::Path;

use crate::util;

/// A store of the tiny fixture over `classes` x `per_class` images at two scales.
fn store(dir: &Path, classes: &[&str], per_class: usize) -> std::path::PathBuf {
    let img = dir.join("img");
    util::tiny_folder(&img, classes, per_class);
    let store = dir.join("store");
    let out = util::extract_tiny(&[&img], &store, &["--scales", "224,256"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    store
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Asking for more images per class than the classes have warns on stderr and in
/// `metrics.json`, with the counts each class got; a run that gets what it asks for does not.
#[test]
fn shrinking_protocols_warn_with_the_counts_used() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), &["a", "b", "c"], 6);
    let res = tmp.path().join("res");
    let out = util::vggfeat()
        .args(["svm", "--c-grid", "1", "--train-per-class", "30"])
        .args(["--test-per-class", "50", "--splits", "2", "-f"])
        .arg(&s)
        .arg("-o")
        .arg(&res)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "warning: asked for 30 training / 50 test images per class, but 3 of 3 classes have \
             fewer (3 of them fewer training images)"
        ) && err.contains("a 5/1, b 5/1, c 5/1"),
        "{err}"
    );
    let p = &json(&res.join("metrics.json"))["parameters"];
    assert_eq!(p["shrunk"]["asked_train"], 30);
    assert_eq!(p["shrunk"]["asked_test"], 50);
    let classes = p["shrunk"]["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 3);
    assert_eq!(
        (
            &classes[1]["class"],
            &classes[1]["train"],
            &classes[1]["test"]
        ),
        (&"b".into(), &5.into(), &1.into())
    );
    assert!(p["warnings"][0].as_str().unwrap().contains("asked for 30"));

    // Only the test side short: still said. Nothing short: no warning, no `shrunk`.
    let res2 = tmp.path().join("res2");
    let out = util::vggfeat()
        .args(["svm", "--c-grid", "1", "--train-per-class", "4"])
        .args(["--test-per-class", "2", "-f"])
        .arg(&s)
        .arg("-o")
        .arg(&res2)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    let p = &json(&res2.join("metrics.json"))["parameters"];
    assert!(
        p.get("shrunk").is_none() && p.get("warnings").is_none(),
        "{p}"
    );
}

/// The default selection is 5-fold cross-validation, recorded per C and fold in `metrics.json`,
/// and the chosen C follows the documented rule (best mean, ties to the lowest loss, then the
/// smallest C); `--c-validation holdout` is one round.
#[test]
fn k_fold_selection_is_recorded_and_follows_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), &["a", "b", "c"], 8);
    let res = tmp.path().join("res");
    let out = util::vggfeat()
        .args([
            "svm",
            "--train-per-class",
            "6",
            "--test-per-class",
            "2",
            "-f",
        ])
        .arg(&s)
        .arg("-o")
        .arg(&res)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(5-fold cross-validation)"), "{err}");
    let p = &json(&res.join("metrics.json"))["parameters"];
    assert_eq!(p["select"]["validation"], "kfold");
    assert_eq!(p["select"]["folds"], 5);
    for split in p["splits"].as_array().unwrap() {
        assert_eq!(split["folds"], 5);
        let scores = split["c_scores"].as_array().unwrap();
        assert_eq!(scores.len(), 6, "the default grid");
        let get = |s: &serde_json::Value, k: &str| s[k].as_f64().unwrap();
        for s in scores {
            let folds: Vec<f64> = s["folds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(folds.len(), 5);
            let mean = folds.iter().sum::<f64>() / 5.0;
            assert!((mean - get(s, "score")).abs() < 1e-12);
        }
        // The rule, recomputed from the record.
        let best = scores
            .iter()
            .map(|s| get(s, "score"))
            .fold(f64::MIN, f64::max);
        let tied: Vec<&serde_json::Value> = scores
            .iter()
            .filter(|s| get(s, "score") >= best - 1e-9)
            .collect();
        let low = tied.iter().map(|s| get(s, "loss")).fold(f64::MAX, f64::min);
        let chosen = tied.iter().find(|s| get(s, "loss") == low).unwrap();
        assert_eq!(split["c"], chosen["c"]);
    }

    let res = tmp.path().join("holdout");
    util::svm_small(
        &s,
        &res,
        &["--c-grid", "0.1,10", "--c-validation", "holdout"],
    );
    let p = &json(&res.join("metrics.json"))["parameters"];
    assert_eq!(p["select"]["validation"], "holdout");
    assert_eq!(p["splits"][0]["folds"], 1);
    assert_eq!(
        p["splits"][0]["c_scores"][0]["folds"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// `export` and `svm` aggregate alike by default (stack), and a Parquet export (and the
/// shards' metadata files) carry the descriptors' provenance as key-value metadata.
#[test]
fn exports_carry_provenance_and_the_svm_default_aggregation() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), &["a", "b"], 3);
    let manifest = json(&s.join("manifest.json"));
    let pq = tmp.path().join("x.parquet");
    let shards = tmp.path().join("shards");
    util::vggfeat()
        .arg("export")
        .arg(&s)
        .arg("--parquet")
        .arg(&pq)
        .assert()
        .success();
    util::vggfeat()
        .arg("export")
        .arg(&s)
        .args(["--rows", "4", "--npy-shards"])
        .arg(&shards)
        .assert()
        .success();
    let dim = 2 * manifest["nets"][0]["dim"].as_u64().unwrap();
    for f in [
        pq,
        shards.join("meta_00000.parquet"),
        shards.join("meta_00001.parquet"),
    ] {
        let r = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
        let kv: std::collections::HashMap<String, String> = r
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
            .collect();
        let sha = manifest["nets"][0]["sha256"].as_str().unwrap();
        let layer = manifest["nets"][0]["layer"].as_str().unwrap();
        for (k, v) in [
            ("vggfeat.aggregate", "stack".to_string()),
            ("vggfeat.dim", dim.to_string()),
            ("vggfeat.scales", "[224,256]".into()),
            ("vggfeat.flip", "true".into()),
            ("vggfeat.normalised", "true".into()),
            ("vggfeat.weights_sha256", format!("[\"{sha}\"]")),
            ("vggfeat.layer", format!("[\"{layer}\"]")),
            ("vggfeat.config", "[\"D\"]".into()),
            ("vggfeat.precision", "[\"f32\"]".into()),
            ("vggfeat.version", env!("CARGO_PKG_VERSION").into()),
        ] {
            assert_eq!(kv.get(k), Some(&v), "{}: {k}", f.display());
        }
        for k in ["vggfeat.weights", "vggfeat.preprocess"] {
            assert!(kv.contains_key(k), "{}: {k}", f.display());
        }
    }
    // The svm default is the export default.
    let res = tmp.path().join("res");
    util::vggfeat()
        .args(["svm", "--c-grid", "1", "--train-per-class", "2"])
        .args(["--test-per-class", "1", "-f"])
        .arg(&s)
        .arg("-o")
        .arg(&res)
        .assert()
        .success();
    assert_eq!(
        json(&res.join("metrics.json"))["parameters"]["aggregate"],
        "stack"
    );
}

/// The run header and `stats.json` name the engine, kernels, precision, threads, layer and
/// dimensions; the last progress line's rate is the summary's.
#[test]
fn extraction_names_what_computed_it() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    util::tiny_folder(&img, &["a", "b"], 3);
    let store = tmp.path().join("store");
    let out = util::vggfeat()
        .args(["--threads", "1", "extract", "--scales", "224,256", "-w"])
        .arg(util::tiny().join("weights.safetensors"))
        .arg("-o")
        .arg(&store)
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let header = err
        .lines()
        .find(|l| l.starts_with("engine "))
        .unwrap_or_else(|| panic!("no run header in:\n{err}"));
    assert!(
        header.contains("precision f32, cpu, 1 thread;")
            && header.contains("scales [224, 256] with flips"),
        "{header}"
    );
    let stats = json(&store.join("stats.json"));
    let rt = &stats["runtime"];
    assert_eq!(rt["threads"], 1);
    assert_eq!(rt["precision"], "f32");
    assert_eq!(rt["nets"][0]["config"], "D");
    let dim = rt["nets"][0]["dim"].as_u64().unwrap();
    assert_eq!(rt["descriptor_dim"].as_u64().unwrap(), 2 * dim);
    assert!(
        header.contains(&format!("descriptor {}-d", 2 * dim)),
        "{header}"
    );
    assert!(!rt["kernel"].as_str().unwrap().is_empty() && rt["engine"] == "fast");
    assert_eq!(stats["counts"]["extracted"], 6);
    // The last progress line (stderr is not a terminal here) and the summary give one rate.
    let rate_after = |line: &str, key: &str| -> f64 {
        let i = line
            .find(key)
            .unwrap_or_else(|| panic!("`{key}` in {line}"));
        let head = &line[..i];
        head.rsplit([' ', '(']).nth(1).unwrap().parse().unwrap()
    };
    let last = err
        .lines()
        .rfind(|l| l.starts_with("extract: 6/6"))
        .unwrap();
    let summary = err
        .lines()
        .find(|l| l.starts_with("extracted 6 images"))
        .unwrap();
    let (a, b) = (
        rate_after(last, "images/s,"),
        rate_after(summary, "images/s end to end"),
    );
    assert!((a - b).abs() <= 0.01 * b.max(0.01), "{last}\n{summary}");
    assert!(
        (stats["images_per_second"]["end_to_end"].as_f64().unwrap() - b).abs() <= 0.006,
        "{summary}"
    );
}
