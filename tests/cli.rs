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
