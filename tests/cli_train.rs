//! `vggfeat train` as a user runs it: a short run on a synthetic folder dataset, its checkpoint
//! read by `info` and `classify`, resuming with a new epoch limit, and the usage errors.

use predicates::prelude::*;

use crate::util::{self, vggfeat};

const TINY: &[&str] = &[
    "--config",
    "A",
    "--width-div",
    "16",
    "--fc-width",
    "16",
    "--crop",
    "32",
    "--scale",
    "32:40",
    "--batch",
    "6",
    "--micro-batch",
    "3",
    "--init-scheme",
    "he",
    "--train-per-class",
    "5",
    "--val-per-class",
    "3",
    "--pca-images",
    "4",
    "--no-progress",
];

#[test]
fn train_then_info_classify_and_resume() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    util::synthetic_dataset(&data, 3, 8);
    let run = d.path().join("run");
    vggfeat()
        .arg("train")
        .arg(&data)
        .args(TINY)
        .args(["--epochs", "1", "-o"])
        .arg(&run)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("on 15 images of 3 classes, validating on 9 at Q=36")
                .and(predicate::str::contains("epoch   1  loss"))
                .and(predicate::str::contains("done: 1 epochs")),
        );
    let model = run.join("model.safetensors");
    vggfeat().arg("info").arg(&model).assert().success().stdout(
        predicate::str::contains("conv 1x1 + ReLU (dense head)")
            .and(predicate::str::contains("classes:       3"))
            .and(predicate::str::contains("preprocess:    torchvision")),
    );
    vggfeat()
        .args(["classify", "--scale", "36", "-w"])
        .arg(&model)
        .arg(data.join("class2/img03.png"))
        .assert()
        .success()
        .stdout(predicate::str::contains("1. "));
    // Resuming takes only a new epoch limit.
    vggfeat()
        .args(["train", "--no-progress", "--epochs", "2", "--init"])
        .arg(format!("resume:{}", run.display()))
        .assert()
        .success()
        .stdout(
            predicate::str::contains("after epoch 1")
                .and(predicate::str::contains("epoch   2  loss"))
                .and(predicate::str::contains("done: 2 epochs")),
        );
    vggfeat()
        .args(["train", "--lr", "0.1", "--init"])
        .arg(format!("resume:{}", run.display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--lr: resume:"))
        .stderr(predicate::str::contains(
            "only the epoch limit may be given",
        ));
    // A second run into the same folder is refused.
    vggfeat()
        .arg("train")
        .arg(&data)
        .args(TINY)
        .arg("-o")
        .arg(&run)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already holds a run"));
}

#[test]
fn train_usage_errors_exit_2() {
    let d = tempfile::tempdir().unwrap();
    for (args, msg) in [
        (&["--config", "A", "--crop", "100"][..], "multiple of 32"),
        (&["--config", "Z"][..], "unknown VGG configuration"),
        (&["--config", "A", "--init", "warm"][..], "unknown init"),
        (
            &["--config", "A", "--scale", "300:200"][..],
            "Smin must be below Smax",
        ),
        (
            &["--config", "A", "--init-scheme", "lecun"][..],
            "unknown init scheme `lecun`",
        ),
    ] {
        vggfeat()
            .arg("train")
            .arg(d.path())
            .args(args)
            .arg("-o")
            .arg(d.path().join("o"))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(msg));
    }
}
