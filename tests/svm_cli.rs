//! `vggfeat svm` end to end on synthetic stores (written with the library's `StoreWriter`), so
//! the protocols are exercised without running a network: Caltech-style splits (sampled, then
//! re-read from the written split files, giving the same numbers) and a VOC-style devkit.

use std::path::Path;

use rand::{Rng, SeedableRng};
use vggfeat::dataset::{SourceKind, VOC_CLASSES};
use vggfeat::model::config::{ConfigName, LayerName};
use vggfeat::preprocess::Normalization;
use vggfeat::store::{FORMAT_VERSION, InputSpec, Manifest, NetSpec, Outcome, Record, StoreWriter};

use crate::util::vggfeat;

const D: usize = 16;

fn manifest(root: &str) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        tool_version: "synthetic".into(),
        input: InputSpec::new(root, SourceKind::Folder),
        nets: vec![NetSpec {
            weights: "synthetic".into(),
            sha256: "00".into(),
            config: ConfigName::D,
            layer: LayerName::Fc7,
            dim: D,
            preprocess: Normalization::Torchvision,
            precision: Default::default(),
        }],
        scales: vec![256, 384],
        flip: true,
        max_pixels: 1,
    }
}

/// Non-negative features near a per-class centroid (or a sum of centroids), two scales.
fn features(rng: &mut impl Rng, classes: &[usize], noise: f32) -> Vec<f32> {
    let mut v = Vec::with_capacity(2 * D);
    for _ in 0..2 {
        for j in 0..D {
            let base: f32 = classes
                .iter()
                .map(|&c| {
                    if j % 8 == c % 8 && (j / 8) == (c / 8) % 2 {
                        1.0
                    } else {
                        0.0
                    }
                })
                .sum();
            v.push((base + noise * rng.gen_range(0.0..1.0f32)).max(0.0));
        }
    }
    v
}

#[test]
fn caltech_protocol_and_split_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let (mut w, _) = StoreWriter::create_or_resume(&store, &manifest("/data"), 64).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for c in 0..6 {
        for i in 0..20 {
            w.push(Record {
                id: format!("class{c}/img{i:02}.jpg"),
                labels: vec![format!("class{c}")],
                outcome: Outcome::Ok(features(&mut rng, &[c], 0.8)),
                source: None,
            })
            .unwrap();
        }
    }
    w.push(Record {
        id: "class0/broken.jpg".into(),
        labels: vec!["class0".into()],
        outcome: Outcome::Failed("truncated".into()),
        source: None,
    })
    .unwrap();
    w.flush().unwrap();

    let out = tmp.path().join("res");
    let a = vggfeat()
        .args([
            "svm",
            "--aggregate",
            "stack",
            "--train-per-class",
            "10",
            "--test-per-class",
            "5",
            "--splits",
            "2",
            "-f",
        ])
        .arg(&store)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let line = String::from_utf8_lossy(&a.stdout).to_string();
    assert!(
        line.starts_with("mean class recall") && line.contains("over 2 splits"),
        "{line}"
    );
    for f in [
        "table.md",
        "table.csv",
        "metrics.json",
        "per_class.svg",
        "split0.csv",
        "split1.csv",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let text = m.to_string();
    assert!(text.contains("\"failed_inputs_left_out\":1"), "{text}");
    let mean = m["mean"]
        .as_f64()
        .or_else(|| m["score"].as_f64())
        .unwrap_or_else(|| panic!("no mean in {text}"));
    assert!(mean > 0.8, "separable classes: mean class recall {mean}");
    let split0 = std::fs::read_to_string(out.join("split0.csv")).unwrap();
    assert_eq!(split0.lines().filter(|l| l.ends_with(",train")).count(), 60);
    assert_eq!(split0.lines().filter(|l| l.ends_with(",test")).count(), 30);

    // The written split files reproduce the same numbers.
    let out2 = tmp.path().join("res2");
    let files = format!(
        "{},{}",
        out.join("split0.csv").display(),
        out.join("split1.csv").display()
    );
    let b = vggfeat()
        .args(["svm", "--aggregate", "stack", "--split-files", &files, "-f"])
        .arg(&store)
        .arg("-o")
        .arg(&out2)
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("table.csv")).unwrap(),
        std::fs::read_to_string(out2.join("table.csv")).unwrap()
    );

    // Each split's classifiers, applied by `predict` to the store, give the split's own
    // decision values for its test images (1e-6); the true labels are in the scores file.
    for s in 0..2 {
        let csv = tmp.path().join(format!("predicted{s}.csv"));
        vggfeat()
            .arg("predict")
            .arg("--model")
            .arg(out.join(format!("model_split{s}.safetensors")))
            .arg("-f")
            .arg(&store)
            .arg("--csv")
            .arg(&csv)
            .assert()
            .success();
        let read = |p: &Path| -> Vec<Vec<String>> {
            csv::Reader::from_path(p)
                .unwrap()
                .records()
                .map(|r| r.unwrap().iter().map(String::from).collect())
                .collect()
        };
        let run = read(&out.join(format!("scores_split{s}.csv")));
        let all = read(&csv);
        assert_eq!(run.len(), 30);
        assert_eq!(all.len(), 120, "every successful record is scored");
        for row in &run {
            let p = all.iter().find(|r| r[0] == row[0]).unwrap();
            assert_eq!(p[1], row[1], "labels of {}", row[0]);
            assert!(
                row[0].starts_with(&row[1]),
                "{} labelled {}",
                row[0],
                row[1]
            );
            for (a, b) in row[2..].iter().zip(&p[2..]) {
                let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
                assert!((a - b).abs() <= 1e-6, "{}: {a} vs {b}", row[0]);
            }
        }
    }
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

/// An image id with its 20 VOC labels.
type Labelled = (String, Vec<i8>);

/// A synthetic VOC devkit with a store of separable descriptors for its trainval and test
/// images; `relabel(set, labels)` may change an image's 20 labels (set 0 trainval, 1 test).
pub(crate) fn synthetic_devkit(
    tmp: &Path,
    relabel: impl Fn(usize, &mut [i8]),
) -> (std::path::PathBuf, std::path::PathBuf) {
    let devkit = tmp.join("VOC2007");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let store = tmp.join("store");
    let (mut w, _) =
        StoreWriter::create_or_resume(&store, &manifest(&devkit.display().to_string()), 256)
            .unwrap();
    let mut sets: Vec<(String, Vec<Labelled>)> =
        vec![("trainval".into(), vec![]), ("test".into(), vec![])];
    for (s, (_, rows)) in sets.iter_mut().enumerate() {
        for i in 0..160 {
            let id = format!("{:06}", s * 1000 + i);
            let a = i % 20;
            let b = (i * 7 + 3) % 20;
            let mut labels = vec![-1i8; 20];
            labels[a] = 1;
            if i % 3 == 0 {
                labels[b] = 1;
            }
            if i % 11 == 0 {
                labels[(a + 1) % 20] = 0; // difficult
            }
            relabel(s, &mut labels);
            let pos: Vec<usize> = (0..20).filter(|&k| labels[k] == 1).collect();
            w.push(Record {
                id: format!("JPEGImages/{id}.jpg"),
                labels: vec![],
                outcome: Outcome::Ok(features(&mut rng, &pos, 0.5)),
                source: None,
            })
            .unwrap();
            rows.push((id, labels));
        }
    }
    w.flush().unwrap();
    for (set, rows) in &sets {
        let ids: String = rows.iter().map(|(id, _)| format!("{id}\n")).collect();
        write(&devkit.join(format!("ImageSets/Main/{set}.txt")), &ids);
        for (k, class) in VOC_CLASSES.iter().enumerate() {
            let body: String = rows
                .iter()
                .map(|(id, l)| format!("{id} {:>2}\n", l[k]))
                .collect();
            write(
                &devkit.join(format!("ImageSets/Main/{class}_{set}.txt")),
                &body,
            );
        }
        for (id, _) in rows {
            write(&devkit.join(format!("JPEGImages/{id}.jpg")), "");
        }
    }
    (devkit, store)
}

#[test]
fn voc_protocol_on_a_synthetic_devkit() {
    let tmp = tempfile::tempdir().unwrap();
    let (devkit, store) = synthetic_devkit(tmp.path(), |_, _| {});
    let out = tmp.path().join("voc");
    let a = vggfeat()
        .args(["svm", "--protocol", "voc", "--aggregate", "avg", "--voc"])
        .arg(&devkit)
        .arg("-f")
        .arg(&store)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&a.stdout);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(stdout.starts_with("mAP"), "{stdout}");
    let map: f64 = stdout.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(map > 50.0, "{stdout}");
    assert!(out.join("pr_curves.svg").exists() && out.join("table.md").exists());
}

#[test]
fn svm_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    vggfeat()
        .args(["svm", "-f", "/nonexistent/store", "-o"])
        .arg(tmp.path())
        .assert()
        .code(3);
    let store = tmp.path().join("s");
    let (mut w, _) = StoreWriter::create_or_resume(&store, &manifest("/d"), 1).unwrap();
    w.flush().unwrap();
    for (args, code) in [
        (vec!["--aggregate", "max"], 2),
        (vec!["--protocol", "imagenet"], 2),
        (vec!["--solver", "sgd"], 2),
        (vec!["--nets", "3"], 2),
    ] {
        vggfeat()
            .arg("svm")
            .args(&args)
            .arg("-f")
            .arg(&store)
            .arg("-o")
            .arg(tmp.path().join("o"))
            .assert()
            .code(code);
    }
}
