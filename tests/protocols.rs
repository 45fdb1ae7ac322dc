//! The paper's protocols end to end on real images: the VOC devkit's result files (checked by
//! the devkit's own rules and an independent 11-point AP), saved classifiers applied with
//! `predict`, a test set whose labels only the evaluation server has, and VOC 2012's server files
//! from `reproduce`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vggfeat::dataset::VOC_CLASSES;

use crate::util::{self, vggfeat};

/// Caltech-101 classes standing in for VOC classes (real photographs of those objects).
const STAND_INS: [(&str, &str); 4] = [
    ("airplanes", "aeroplane"),
    ("Motorbikes", "motorbike"),
    ("Faces_easy", "person"),
    ("car_side", "car"),
];

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

/// A VOC-style devkit of real Caltech-101 images: `sets` are (name, images per class, labelled);
/// each image is positive for its stand-in class, every third also for the next class
/// (multi-label), every fifth is `difficult` (0) for its own class. Returns the devkit folder.
fn caltech_devkit(root: &Path, year: &str, sets: &[(&str, usize, bool)]) -> PathBuf {
    let devkit = root.join(format!("VOCdevkit/VOC{year}"));
    let src = util::shared().join("datasets/caltech101/101_ObjectCategories");
    let mut next = 1usize;
    for &(set, per_class, labelled) in sets {
        let mut ids = Vec::new();
        let mut labels: Vec<Vec<i8>> = Vec::new();
        for (c, (caltech, _)) in STAND_INS.iter().enumerate() {
            for i in 0..per_class {
                let id = format!("{year}_{next:06}");
                let file = src.join(caltech).join(format!("image_{next:04}.jpg"));
                next += 1;
                let jpg = devkit.join(format!("JPEGImages/{id}.jpg"));
                std::fs::create_dir_all(jpg.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(&file, &jpg).unwrap();
                let mut l = vec![-1i8; VOC_CLASSES.len()];
                let class = |k: usize| {
                    VOC_CLASSES
                        .iter()
                        .position(|v| *v == STAND_INS[k % STAND_INS.len()].1)
                        .unwrap()
                };
                l[class(c)] = if i % 5 == 4 { 0 } else { 1 };
                if i % 3 == 0 {
                    l[class(c + 1)] = 1;
                }
                ids.push(id);
                labels.push(l);
            }
        }
        let list: String = ids.iter().map(|i| format!("{i}\n")).collect();
        write(&devkit.join(format!("ImageSets/Main/{set}.txt")), &list);
        if labelled {
            for (k, class) in VOC_CLASSES.iter().enumerate() {
                let body: String = ids
                    .iter()
                    .zip(&labels)
                    .map(|(id, l)| format!("{id} {:>2}\n", l[k]))
                    .collect();
                write(
                    &devkit.join(format!("ImageSets/Main/{class}_{set}.txt")),
                    &body,
                );
            }
        }
    }
    devkit
}

/// Parses a devkit result file by the devkit's rule (`textread(..., '%s %f')`): every line an
/// image id and one number.
fn read_result_file(path: &Path) -> Vec<(String, f64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let mut t = line.split_whitespace();
            let (Some(id), Some(v), None) = (t.next(), t.next(), t.next()) else {
                panic!("{}: `{line}` is not `%s %f`", path.display());
            };
            (id.to_string(), v.parse::<f64>().unwrap())
        })
        .collect()
}

/// MATLAB's `0:0.1:1` (the colon operator fills from both ends: `a + k*d` in the first half,
/// `b - (n-k)*d` in the second).
fn matlab_thresholds() -> Vec<f64> {
    (0..=10)
        .map(|k| {
            if k <= 5 {
                k as f64 * 0.1
            } else {
                1.0 - (10 - k) as f64 * 0.1
            }
        })
        .collect()
}

/// VOCevalcls.m's 11-point AP, written from the devkit's code: sort by descending confidence,
/// gt > 0 is a true positive, gt < 0 a false positive, gt == 0 (difficult) neither;
/// ap = sum over t of max(prec(rec >= t)) / 11.
fn devkit_ap(conf: &[f64], gt: &[i8]) -> f64 {
    let mut order: Vec<usize> = (0..conf.len()).collect();
    order.sort_by(|&a, &b| conf[b].partial_cmp(&conf[a]).unwrap());
    let npos = gt.iter().filter(|g| **g > 0).count() as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut curve = Vec::new();
    for &i in &order {
        if gt[i] > 0 {
            tp += 1.0;
        } else if gt[i] < 0 {
            fp += 1.0;
        }
        if tp + fp > 0.0 {
            curve.push((tp / npos, tp / (tp + fp)));
        }
    }
    matlab_thresholds()
        .iter()
        .map(|&t| {
            curve
                .iter()
                .filter(|(r, _)| *r >= t)
                .map(|(_, p)| *p)
                .fold(0.0, f64::max)
                / 11.0
        })
        .sum()
}

/// The per-class labels of a devkit set: class -> (image id -> label).
fn devkit_labels(devkit: &Path, set: &str) -> HashMap<String, HashMap<String, i8>> {
    VOC_CLASSES
        .iter()
        .map(|c| {
            let text =
                std::fs::read_to_string(devkit.join(format!("ImageSets/Main/{c}_{set}.txt")))
                    .unwrap();
            let m = text
                .lines()
                .map(|l| {
                    let mut t = l.split_whitespace();
                    (
                        t.next().unwrap().to_string(),
                        t.next().unwrap().parse().unwrap(),
                    )
                })
                .collect();
            (c.to_string(), m)
        })
        .collect()
}

/// Reads a `scores_*.csv` or `predict --csv` file: id -> decision values (class order of the
/// header).
fn read_scores(path: &Path) -> (Vec<String>, HashMap<String, Vec<f64>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    // `label` when every image has at most one, `labels` (`;`-joined) when one has several.
    assert!(
        header[0] == "id" && (header[1] == "label" || header[1] == "labels"),
        "{}: {header:?}",
        path.display()
    );
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            let v = rec.iter().skip(2).map(|x| x.parse().unwrap()).collect();
            (rec[0].to_string(), v)
        })
        .collect();
    (header[2..].to_vec(), rows)
}

/// A devkit of real images with its `trainval` and `test` sets extracted into two stores.
fn extracted_devkit(
    tmp: &Path,
    year: &str,
    sets: &[(&str, usize, bool)],
) -> (PathBuf, PathBuf, PathBuf) {
    let devkit = caltech_devkit(tmp, year, sets);
    let (train, test) = (tmp.join("trainval"), tmp.join("test"));
    for (set, store) in [("trainval", &train), ("test", &test)] {
        let args = ["--split", set, "--scales", "224,256"];
        let st = util::extract_tiny(&[&devkit], store, &args).status();
        assert!(st.unwrap().success());
    }
    (devkit, train, test)
}

/// `vggfeat svm --protocol voc` on the devkit's two stores, with `args`.
fn svm_voc(
    devkit: &Path,
    train: &Path,
    test: &Path,
    out: &Path,
    args: &[&str],
) -> std::process::Output {
    vggfeat()
        .args(["svm", "--protocol", "voc"])
        .args(args)
        .arg("--voc")
        .arg(devkit)
        .arg("-f")
        .arg(train)
        .arg("-f")
        .arg(test)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn voc_result_files_scores_and_saved_classifiers() {
    let tmp = tempfile::tempdir().unwrap();
    let (devkit, train, test) = extracted_devkit(
        tmp.path(),
        "2007",
        &[("trainval", 8, true), ("test", 6, true)],
    );
    let out = tmp.path().join("voc");
    let o = svm_voc(&devkit, &train, &test, &out, &["--aggregate", "avg"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // One result file per class, one `%s %f` line per test image, the ids of test.txt.
    let test_ids: Vec<String> = std::fs::read_to_string(devkit.join("ImageSets/Main/test.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let main = out.join("results/VOC2007/Main");
    let labels = devkit_labels(&devkit, "test");
    let table: HashMap<String, f64> = std::fs::read_to_string(out.join("table.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut t = l.split(',');
            Some((t.next()?.to_string(), t.next()?.parse().ok()?))
        })
        .collect();
    let mut checked = 0;
    for class in VOC_CLASSES {
        let lines = read_result_file(&main.join(format!("comp2_cls_test_{class}.txt")));
        let mut ids: Vec<String> = lines.iter().map(|(i, _)| i.clone()).collect();
        ids.sort();
        let mut want = test_ids.clone();
        want.sort();
        assert_eq!(ids, want, "{class}");
        // The 11-point AP recomputed from the file equals the table's (exact fractions in
        // table.csv) to 1e-6, for every class that was scored.
        if let Some(&ap) = table.get(class) {
            let conf: Vec<f64> = lines.iter().map(|(_, v)| *v).collect();
            let gt: Vec<i8> = lines.iter().map(|(i, _)| labels[class][i]).collect();
            let ours = devkit_ap(&conf, &gt);
            assert!((ours - ap).abs() <= 1e-6, "{class}: {ours} vs {ap}");
            checked += 1;
        }
    }
    assert_eq!(checked, STAND_INS.len(), "{table:?}");
    let md = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(
        md.contains("bicycle") && md.contains("no training positives"),
        "{md}"
    );
    // report.html: the PR curves, the worst (image, class) pairs with thumbnails from the devkit.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    crate::report::assert_self_contained(&html);
    for want in [
        "Precision/recall curves",
        "Worst-classified test images",
        "data:image/jpeg;base64,",
        "aeroplane",
        "trainval -&gt; test",
    ] {
        assert!(html.contains(want), "report.html lacks {want}");
    }

    // The saved classifier reproduces the run's own decision values.
    let model = out.join("model_trainval.safetensors");
    let again = tmp.path().join("again.csv");
    vggfeat()
        .arg("predict")
        .arg("--model")
        .arg(&model)
        .arg("-f")
        .arg(&test)
        .arg("--csv")
        .arg(&again)
        .assert()
        .success();
    let (classes, run) = read_scores(&out.join("scores_test.csv"));
    let (classes2, predicted) = read_scores(&again);
    assert_eq!(classes, VOC_CLASSES);
    assert_eq!(classes, classes2);
    assert_eq!(run.len(), test_ids.len());
    for (id, v) in &run {
        let p = &predicted[id];
        for (a, b) in v.iter().zip(p) {
            assert!((a - b).abs() <= 1e-6, "{id}: {a} vs {b}");
        }
    }
    // Top classes are printed without --csv.
    let o = vggfeat()
        .arg("predict")
        .arg("-m")
        .arg(&model)
        .args(["--top", "2", "-f"])
        .arg(&test)
        .output()
        .unwrap();
    assert!(o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.lines().count(), test_ids.len(), "{stdout}");
    assert_eq!(stdout.lines().next().unwrap().split('\t').count(), 3);

    // A reused results folder loses the old result files with the old tables.
    let stale = main.join("comp2_cls_val_dog.txt");
    std::fs::write(&stale, "x 1\n").unwrap();
    let o = svm_voc(&devkit, &train, &test, &out, &["--aggregate", "avg"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stale.exists());
}

#[test]
fn predict_refuses_other_descriptors() {
    let tmp = tempfile::tempdir().unwrap();
    let (devkit, train, test) = extracted_devkit(
        tmp.path(),
        "2007",
        &[("trainval", 5, true), ("test", 3, true)],
    );
    let out = tmp.path().join("voc");
    let o = svm_voc(&devkit, &train, &test, &out, &["--aggregate", "stack"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = out.join("model_trainval.safetensors");

    // Another aggregation than the classifier's: a usage error naming both.
    let o = vggfeat()
        .arg("predict")
        .arg("-m")
        .arg(&model)
        .args(["--aggregate", "avg", "-f"])
        .arg(&test)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--aggregate: avg") && err.contains("`stack`"),
        "{err}"
    );

    // A store with one scale: stacked descriptors of another dimension.
    let one = tmp.path().join("one-scale");
    vggfeat()
        .arg("extract")
        .arg(&devkit)
        .args(["--split", "test", "--scales", "224", "-q", "-w"])
        .arg(util::tiny().join("weights.safetensors"))
        .arg("-o")
        .arg(&one)
        .assert()
        .success();
    let o = vggfeat()
        .arg("predict")
        .arg("-m")
        .arg(&model)
        .arg("-f")
        .arg(&one)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("descriptor dimension differs")
            && err.contains("stack of Q 224,256 (flip) of D fc7 [64]")
            && err.contains("128 dimensions")
            && err.contains("stack of Q 224 (flip)")
            && err.contains("64 dimensions"),
        "{err}"
    );

    // Not a classifier file.
    let o = vggfeat()
        .arg("predict")
        .arg("-m")
        .arg(util::tiny().join("weights.safetensors"))
        .arg("-f")
        .arg(&test)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a classifier saved by `vggfeat svm`"));
}

#[test]
fn a_test_set_without_labels_gets_result_files_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (devkit, train, test) = extracted_devkit(
        tmp.path(),
        "2012",
        &[("trainval", 5, true), ("test", 3, false)],
    );
    let out = tmp.path().join("server");
    let o = svm_voc(
        &devkit,
        &train,
        &test,
        &out,
        &["--ap", "area", "--aggregate", "avg"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("evaluation server"));
    for class in VOC_CLASSES {
        let lines =
            read_result_file(&out.join(format!("results/VOC2012/Main/comp2_cls_test_{class}.txt")));
        assert_eq!(lines.len(), 12);
    }
    assert!(!out.join("table.md").exists());
    assert!(out.join("metrics.json").exists() && out.join("scores_test.csv").exists());
    // report.html says what there is: no scores, the provenance.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    crate::report::assert_self_contained(&html);
    assert!(html.contains("no labels") && html.contains("Provenance"));
    assert!(!html.contains("Confusion matrix") && !html.contains("data:image/"));
}

#[test]
fn reproduce_voc2012_writes_the_server_files() {
    let tmp = tempfile::tempdir().unwrap();
    let devkit = caltech_devkit(
        tmp.path(),
        "2012",
        &[("train", 4, true), ("val", 3, true), ("test", 2, false)],
    );
    // trainval = train + val, as in the real devkit.
    let main = devkit.join("ImageSets/Main");
    for class in VOC_CLASSES
        .iter()
        .map(|c| format!("{c}_"))
        .chain([String::new()])
    {
        let a = std::fs::read_to_string(main.join(format!("{class}train.txt"))).unwrap();
        let b = std::fs::read_to_string(main.join(format!("{class}val.txt"))).unwrap();
        write(&main.join(format!("{class}trainval.txt")), &(a + &b));
    }
    let out = tmp.path().join("t11");
    let o = vggfeat()
        .args([
            "reproduce",
            "--quiet",
            "--skip-checks",
            "--scales",
            "224",
            "--voc2012",
        ])
        .arg(&devkit)
        .arg("--weights-d")
        .arg(util::tiny().join("weights.safetensors"))
        .arg("--work")
        .arg(tmp.path().join("work"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(out.join("table11.md")).unwrap();
    assert!(
        table.contains("evaluation server")
            && table.contains("voc-2012-D-server/results/VOC2012/Main"),
        "{table}"
    );
    let files = out.join("voc-2012-D-server/results/VOC2012/Main");
    for class in VOC_CLASSES {
        let lines = read_result_file(&files.join(format!("comp2_cls_test_{class}.txt")));
        assert_eq!(lines.len(), 8, "{class}");
    }
    // The offline number (train -> val) is still the table's.
    assert!(out.join("voc-2012-D/table.md").exists());
}
