//! The real binary on fixture files: output compared to golden files (regenerate deliberately
//! with `UPDATE_GOLDEN=1 cargo test cli::`), exit codes, and failure messages.

use predicates::prelude::*;

use crate::util::{self, golden, vggfeat};

/// Paths in output are made relative to `../shared` so golden files do not depend on the machine.
fn rel(out: &[u8]) -> String {
    let shared = util::shared().display().to_string();
    String::from_utf8_lossy(out).replace(&shared, "<shared>")
}

#[test]
fn info_tiny_and_real() {
    let shared = util::shared();
    let out = vggfeat()
        .arg("info")
        .arg(shared.join("fixtures/vgg-d-tiny/weights.pth"))
        .arg(shared.join("weights/vgg16-conv-hed/vgg16_conv_hed.safetensors"))
        .output()
        .unwrap();
    assert!(out.status.success());
    golden("info.txt", &rel(&out.stdout));
}

#[test]
fn classify_fixture_images() {
    let t = util::tiny();
    let out = vggfeat()
        .args(["classify", "--top", "3", "--scale", "256", "-w"])
        .arg(t.join("weights_timm.safetensors"))
        .arg(t.join("images/0.png"))
        .arg(t.join("images/2.png"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    golden("classify.txt", &rel(&out.stdout));
}

/// `classify --precision bf16` (dense and multi-crop, two scales) gives every class's posterior
/// within one percentage point of f32's on the fixture images (0.5 measured: the tiny net's
/// posteriors are peaked, and the output has 0.1-point steps); on a CPU without AVX512-BF16 it
/// is refused (exit 3).
#[test]
fn classify_in_bf16_agrees_with_f32() {
    classify_agrees_with_f32("bf16", util::has_bf16(), 1.0);
}

/// `classify --precision int8`, likewise within 2.5 percentage points of f32's (1.6 measured:
/// the tiny net is 1/16 as wide (4 to 32 channels), so each row.s quantisation step is coarse);
/// refused (exit 3) on a CPU without AVX512-VNNI.
#[test]
fn classify_in_int8_agrees_with_f32() {
    classify_agrees_with_f32("int8", util::has_vnni(), 2.5);
}

fn classify_agrees_with_f32(precision: &str, supported: bool, points: f64) {
    let t = util::tiny();
    let run = |precision: &str| {
        vggfeat()
            .args([
                "classify", "--top", "10", "--scale", "256,288", "--dense", "--crops", "2",
            ])
            .args(["--precision", precision, "-w"])
            .arg(t.join("weights.safetensors"))
            .arg(t.join("images/0.png"))
            .arg(t.join("images/1.png"))
            .output()
            .unwrap()
    };
    let parse = |out: &std::process::Output| -> Vec<(String, f64)> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains('%'))
            .map(|l| {
                let (rank, rest) = l.split_once('%').unwrap();
                let pct: f64 = rank.split_whitespace().last().unwrap().parse().unwrap();
                (rest.trim().to_string(), pct)
            })
            .collect()
    };
    let low = run(precision);
    if !supported {
        assert_eq!(low.status.code(), Some(3));
        return;
    }
    let f32 = run("f32");
    assert!(low.status.success() && f32.status.success());
    let (a, b) = (parse(&f32), parse(&low));
    assert_eq!(a.len(), 20, "{a:?}");
    for (i, (class, p)) in a.iter().enumerate() {
        let img = i / 10;
        let q = b[img * 10..(img + 1) * 10]
            .iter()
            .find(|(c, _)| c == class)
            .map(|(_, q)| *q)
            .unwrap_or_else(|| panic!("{class} missing from {precision}'s ranking"));
        assert!(
            (p - q).abs() <= points,
            "image {img} {class}: f32 {p} %, {precision} {q} %"
        );
    }
}

#[test]
fn classify_reports_bad_images_and_exits_1() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 truncated").unwrap();
    let t = util::tiny();
    vggfeat()
        .args(["classify", "-w"])
        .arg(t.join("weights.safetensors"))
        .arg(&bad)
        .arg(t.join("images/1.png"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("1.png"))
        .stderr(
            predicate::str::contains("broken.jpg")
                .and(predicate::str::contains("1 of 2 images failed")),
        );
}

/// The classes `classify` ranks for an image, best first.
fn ranked(weights: &std::path::Path, image: &std::path::Path) -> Vec<String> {
    let out = vggfeat()
        .args(["classify", "--top", "10", "--scale", "224", "-w"])
        .arg(weights)
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split("class").nth(1).unwrap().trim().to_string())
        .collect()
}

#[test]
fn classify_eval_reports_top1_and_top5_error() {
    let t = util::tiny();
    let w = t.join("weights.safetensors");
    let d = tempfile::tempdir().unwrap();
    let images: Vec<_> = (0..3).map(|i| t.join(format!("images/{i}.png"))).collect();
    let ranks: Vec<Vec<String>> = images.iter().map(|p| ranked(&w, p)).collect();
    assert_eq!(ranks[0].len(), 10);
    // Labelled with their top class: no error; one labelled with its last class: top-1 and
    // top-5 error 1/3; a broken file is reported and left out (exit 1).
    let list = |labels: &[&str], extra: &str| {
        let p = d.path().join("list.txt");
        let mut s: String = images
            .iter()
            .zip(labels)
            .map(|(p, l)| format!("{}\t{l}\n", p.display()))
            .collect();
        s.push_str(extra);
        std::fs::write(&p, s).unwrap();
        p
    };
    let top: Vec<&str> = ranks.iter().map(|r| r[0].as_str()).collect();
    vggfeat()
        .args(["classify", "--scale", "224", "-w"])
        .arg(&w)
        .arg("--eval")
        .arg(list(&top, ""))
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "top-1 error 0.00 %, top-5 error 0.00 % over 3 images (dense at Q 224)",
        ));
    let bad = d.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG truncated").unwrap();
    let mixed = [top[0], top[1], ranks[2][9].as_str()];
    vggfeat()
        .args(["classify", "--scale", "224", "-w"])
        .arg(&w)
        .arg("--eval")
        .arg(list(&mixed, &format!("{}\t0\n", bad.display())))
        .assert()
        .code(1)
        .stdout(predicate::str::starts_with(
            "top-1 error 33.33 %, top-5 error 33.33 % over 3 images",
        ))
        .stderr(predicate::str::contains("broken.png").and(predicate::str::contains("1 of 4")));
    // A label that is no class of the net: a usage error before any image is read.
    vggfeat()
        .args(["classify", "-w"])
        .arg(&w)
        .arg("--eval")
        .arg(list(&["4", "12", "4"], ""))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "label `12` is not a class of the net",
        ));
}

#[test]
fn classify_multi_crop_dense_and_fusion() {
    let t = util::tiny();
    let img = t.join("images/0.png");
    let run = |args: &[&str], weights: &[&str]| -> String {
        let mut c = vggfeat();
        c.arg("classify").args(args);
        for w in weights {
            c.arg("-w").arg(t.join(w));
        }
        let out = c.arg(&img).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let w = ["weights.safetensors"];
    let dense = run(&["--scale", "224,256"], &w);
    let crops = run(&["--scale", "224,256", "--crops", "3"], &w);
    let both = run(&["--scale", "224,256", "--crops", "3", "--dense"], &w);
    assert_ne!(dense, crops);
    assert_ne!(both, dense);
    assert_ne!(both, crops);
    // The same weights in two spellings fused: the posteriors of one.
    let fused = run(
        &["--scale", "224,256"],
        &["weights.safetensors", "weights.pth"],
    );
    assert_eq!(fused, dense);
    // Nets with other class counts cannot be fused; a scale under the crop size is refused.
    vggfeat()
        .args(["classify", "--crops", "0", "-w"])
        .arg(t.join("weights.safetensors"))
        .arg(&img)
        .assert()
        .code(2);
    vggfeat()
        .args(["classify", "--scale", "200", "--crops", "5", "-w"])
        .arg(t.join("weights.safetensors"))
        .arg(&img)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("scale 200 is below 224"));
}

#[test]
fn classify_needs_fc8() {
    vggfeat()
        .args(["classify", "-w"])
        .arg(util::hed_weights())
        .arg(util::tiny().join("images/0.png"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("no fc8"));
}

#[test]
fn cuda_without_feature_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    vggfeat()
        .args(["classify", "--device", "cuda", "-w"])
        .arg(util::tiny().join("weights.safetensors"))
        .arg(util::tiny().join("images/0.png"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("--features cuda"));
}

#[test]
fn usage_errors_exit_2() {
    vggfeat().args(["classify"]).assert().code(2);
    vggfeat()
        .args(["classify", "--engine", "turbo", "-w"])
        .arg(util::tiny().join("weights.safetensors"))
        .arg(util::tiny().join("images/0.png"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown engine"));
}

#[test]
fn bad_weights_file_names_file_and_reason() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("vgg16.safetensors");
    std::fs::write(&p, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    vggfeat().arg("info").arg(&p).assert().code(3).stderr(
        predicate::str::contains(p.display().to_string())
            .and(predicate::str::contains("cannot read checkpoint")),
    );
}

/// Offline (here: an endpoint nobody listens on), `weights fetch` fails fast and says where to
/// download the file by hand.
#[test]
fn weights_fetch_offline_fails_fast_with_a_hint() {
    let cache = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    vggfeat()
        .args(["weights", "fetch", "vgg19"])
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", cache.path())
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains(
                "https://huggingface.co/timm/vgg19.tv_in1k/resolve/main/model.safetensors",
            )
            .and(predicate::str::contains("vgg19-dcbb9e9d.pth")),
        );
    assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
    vggfeat()
        .args(["weights", "fetch", "vgg11"])
        .assert()
        .code(2);
}

/// Every closed choice is checked by the parser: a bad value exits 2 at once (before any file is
/// read: the store and weights named here do not exist) and the message lists the allowed values.
#[test]
fn every_typed_choice_exits_2_listing_the_allowed_values() {
    // Each case: the command line (split at spaces) and what the error must say.
    let cases: &[(&str, &str)] = &[
        (
            "svm -f /nonexistent -o /nonexistent --solver bogus",
            "unknown solver `bogus` (expected dcd or linfa)",
        ),
        (
            "svm -f /nonexistent -o /nonexistent --loss x",
            "unknown loss `x` (expected squared-hinge or hinge)",
        ),
        (
            "svm -f /nonexistent -o /nonexistent --ap x",
            "unknown AP kind `x` (expected voc07 or area)",
        ),
        (
            "svm -f /nonexistent -o /nonexistent --protocol x",
            "unknown protocol `x` (expected caltech or voc)",
        ),
        (
            "svm -f /nonexistent -o /nonexistent --aggregate max",
            "unknown aggregation `max` (expected avg or stack)",
        ),
        (
            "export /nonexistent --csv x.csv --aggregate max",
            "unknown aggregation `max`",
        ),
        (
            "extract /nonexistent -w /nonexistent -o /nonexistent --engine x",
            "unknown engine `x` (expected auto, fast, fast-gemm or candle)",
        ),
        (
            "extract /nonexistent -w /nonexistent -o /nonexistent --preprocess x",
            "unknown preprocessing `x` (expected auto, torchvision or caffe)",
        ),
        (
            "classify -w /nonexistent /nonexistent.jpg --precision f16",
            "unknown precision `f16` (expected f32, bf16 or int8)",
        ),
        (
            "extract /nonexistent -w /nonexistent -o /nonexistent --decode-threads 0",
            "--decode-threads",
        ),
        (
            "train /nonexistent -o /nonexistent --config F",
            "unknown VGG configuration `F` (expected A, A-LRN, B, C, D or E)",
        ),
        (
            "train /nonexistent -o /nonexistent --config A --init-scheme x",
            "unknown init scheme `x` (expected paper, glorot, he or torchvision)",
        ),
        (
            "weights fetch vgg11",
            "unknown pretrained network `vgg11` (expected vgg16 or vgg19)",
        ),
        (
            "classify -w /nonexistent /nonexistent.jpg --device gpu",
            "unknown device `gpu`",
        ),
        (
            "extract /nonexistent -w /nonexistent -o /nonexistent --layer fc9",
            "unknown layer `fc9`",
        ),
    ];
    for (line, msg) in cases {
        let args: Vec<&str> = line.split_whitespace().collect();
        let out = vggfeat().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: expected `{msg}` in\n{err}");
    }
}

#[test]
fn export_needs_exactly_one_output_and_exits_2_without() {
    for args in [
        &["export", "/nonexistent"][..],
        &["export", "/nonexistent", "--csv", "a.csv", "--npy", "a.npy"][..],
    ] {
        let out = vggfeat().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--csv") && err.contains("--npy"), "{err}");
    }
}

/// `-q` means `--quiet` wherever it exists; classify's scale is `-s`.
#[test]
fn one_meaning_per_short_flag() {
    for cmd in ["extract", "reproduce"] {
        let help = vggfeat().args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(help.contains("-q, --quiet"), "{cmd}: {help}");
    }
    let help = vggfeat().args(["classify", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("-s, --scale") && !help.contains("-q,"),
        "{help}"
    );
}

#[test]
fn every_commands_help_ends_with_examples() {
    let commands: &[&[&str]] = &[
        &[],
        &["info"],
        &["classify"],
        &["extract"],
        &["export"],
        &["merge"],
        &["svm"],
        &["reproduce"],
        &["train"],
        &["weights", "fetch"],
        &["weights", "list"],
    ];
    for cmd in commands {
        let out = vggfeat().args(*cmd).arg("--help").output().unwrap();
        assert!(out.status.success(), "{cmd:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        let tail = &help[help
            .rfind("Example")
            .unwrap_or_else(|| panic!("{cmd:?}: no examples in\n{help}"))..];
        assert!(tail.contains("vggfeat "), "{cmd:?}: {tail}");
        assert!(
            help.trim_end().ends_with(tail.trim_end()),
            "{cmd:?}: examples are not the end of the help"
        );
    }
}

/// Defaults shown in `--help` are the library's.
#[test]
fn help_shows_the_library_defaults() {
    let out = vggfeat().args(["svm", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for d in [
        "[default: 30]",
        "[default: 50]",
        "[default: 3]",
        "[default: 0.01 0.1 1 10 100 1000]",
        "[default: dcd]",
        "[default: squared-hinge]",
    ] {
        assert!(help.contains(d), "{d} not in\n{help}");
    }
    let out = vggfeat().args(["extract", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[default: 256 384 512]"), "{help}");
}

/// The library's messages name parameters, never command-line flags (the CLI maps a parameter to
/// its flag, the Python binding to its keyword): no code line under src/ outside the binary
/// spells a `--flag`.
#[test]
fn library_messages_name_no_flags() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offending = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p != src.join("bin") {
                    dirs.push(p);
                }
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") || code.contains("cargo ") {
                    continue;
                }
                let flag = code
                    .match_indices("--")
                    .any(|(i, _)| code[i + 2..].starts_with(|c: char| c.is_ascii_lowercase()));
                if flag {
                    offending.push(format!("{}:{}: {code}", p.display(), n + 1));
                }
            }
        }
    }
    assert!(offending.is_empty(), "{}", offending.join("\n"));
    assert!(src.join("lib.rs").is_file());
}
