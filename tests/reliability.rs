//! Nothing dropped or corrupted silently: stores under concurrency and change, checkpoints with
//! bad numbers, odd names and list files, outputs, degenerate SVM runs, and clear errors. Each
//! test is a defect that once gave wrong output or lost data with exit code 0.

use std::path::Path;
use std::process::{Command, Stdio};

use candle_core::{Device, Tensor};

use crate::util::{self, bin, vggfeat};

/// `root/<class>/<name>` copies of the fixture PNGs: classes `a` and `b`, six images each.
fn dataset(root: &Path) {
    util::tiny_folder(root, &["a", "b"], 6);
}

fn ids(store: &Path) -> Vec<String> {
    vggfeat::Store::open(store)
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.id)
        .collect()
}

fn stderr_of(c: &mut Command) -> (Option<i32>, String) {
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Two writers on one store, started together and staggered, with equal and different chunk
/// sizes: one writes, the other is refused with a clear message (or, staggered, resumes a
/// finished store); afterwards every id is in the store exactly once and it exports.
#[test]
fn two_writers_never_corrupt_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dataset(&input);
    for (chunks, staggered) in [("1", false), ("2", false), ("1", true), ("3", true)] {
        let store = tmp.path().join(format!("s{chunks}{staggered}"));
        let mut first = util::extract_tiny(&[&input], &store, &["--chunk", "1"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if staggered {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        let second = util::extract_tiny(&[&input], &store, &["--chunk", chunks])
            .output()
            .unwrap();
        let first_ok = first.wait().unwrap();
        let err = String::from_utf8_lossy(&second.stderr);
        match second.status.code() {
            Some(0) => {}
            Some(3) => assert!(err.contains("another vggfeat process is writing"), "{err}"),
            c => panic!("second writer: {c:?}\n{err}"),
        }
        assert!(first_ok.success() || second.status.success());
        // A refused writer left the store to the other: finish it, then check it. A run with
        // nothing left to do reports no rate (it once said "1000000000.00 images/s").
        let (code, err) = stderr_of(&mut util::extract_tiny(&[&input], &store, &[]));
        assert_eq!(code, Some(0), "{err}");
        assert!(!err.contains("images/s"), "{err}");
        let got = ids(&store);
        let mut want = got.clone();
        want.dedup();
        assert_eq!(got.len(), 12, "{got:?}");
        assert_eq!(got, want);
        vggfeat()
            .args(["export", "--csv"])
            .arg(tmp.path().join("x.csv"))
            .arg(&store)
            .assert()
            .success();
    }
}

#[test]
fn a_store_that_lost_its_manifest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dataset(&input);
    let store = tmp.path().join("s");
    assert!(
        util::extract_tiny(&[&input], &store, &[])
            .status()
            .unwrap()
            .success()
    );
    std::fs::remove_file(store.join("manifest.json")).unwrap();
    let (code, err) = stderr_of(&mut util::extract_tiny(&[&input], &store, &[]));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("no manifest.json"), "{err}");
    // Merging into such a folder is refused too.
    let (code, err) = stderr_of(
        Command::new(bin())
            .arg("merge")
            .arg(&store)
            .arg("-o")
            .arg(&store),
    );
    assert_eq!(code, Some(3), "{err}");
}

/// Files replaced, deleted, added, and a failed file repaired: the next run re-extracts what
/// changed, drops what is gone, adds what is new and retries the repaired file; export and svm
/// say when a store is stale; a deleted chunk is named.
#[test]
fn a_store_follows_its_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dataset(&input);
    let broken = input.join("b/broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    let store = tmp.path().join("s");
    assert_eq!(
        util::extract_tiny(&[&input], &store, &[])
            .status()
            .unwrap()
            .code(),
        Some(1)
    );
    let csv = |name: &str| {
        let p = tmp.path().join(name);
        let o = vggfeat()
            .args(["export", "--csv"])
            .arg(&p)
            .arg(&store)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            std::fs::read_to_string(&p).unwrap(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (before, warn) = csv("before.csv");
    assert!(!warn.contains("warning"), "{warn}");
    let row = |csv: &str, id: &str| {
        csv.lines()
            .find(|l| l.starts_with(&format!("{id},")))
            .map(str::to_string)
    };

    // Replace a/img0 with another picture, delete a/img1, add a/new, repair the broken file.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(util::tiny().join("images/2.png"), input.join("a/img0.png")).unwrap();
    std::fs::remove_file(input.join("a/img1.png")).unwrap();
    std::fs::copy(util::tiny().join("images/1.png"), input.join("a/new.png")).unwrap();
    std::fs::copy(util::tiny().join("images/0.png"), &broken).unwrap();
    let (_, warn) = csv("stale.csv");
    assert!(
        warn.contains("stale") && warn.contains("2 changed") && warn.contains("1 deleted"),
        "{warn}"
    );
    assert!(warn.contains("1 new (a/new.png)"), "{warn}");

    let (code, err) = stderr_of(&mut util::extract_tiny(&[&input], &store, &[]));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("1 re-extracted because their file changed")
            && err.contains("1 failed before and tried again")
            && err.contains("1 removed from the store"),
        "{err}"
    );
    let (after, warn) = csv("after.csv");
    assert!(!warn.contains("warning"), "{warn}");
    assert_ne!(row(&before, "a/img0.png"), row(&after, "a/img0.png"));
    assert_eq!(row(&before, "b/img2.png"), row(&after, "b/img2.png"));
    assert!(row(&after, "a/img1.png").is_none());
    assert!(row(&after, "a/new.png").is_some() && row(&after, "b/broken.png").is_some());

    // A deleted chunk is an error naming it, not a shorter export.
    std::fs::remove_file(store.join("chunks/000000.chunk")).unwrap();
    let o = vggfeat()
        .args(["export", "--csv"])
        .arg(tmp.path().join("x.csv"))
        .arg(&store)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("000000.chunk") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn merging_one_shard_alone_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dataset(&input);
    let shard = tmp.path().join("s0");
    assert!(
        util::extract_tiny(&[&input], &shard, &["--shard", "0/2"])
            .status()
            .unwrap()
            .success()
    );
    let (code, err) = stderr_of(
        Command::new(bin())
            .arg("merge")
            .arg(&shard)
            .arg("-o")
            .arg(tmp.path().join("m")),
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("shard(s) 1/2 not given"), "{err}");
    let (code, err) = stderr_of(
        Command::new(bin())
            .args(["merge", "--allow-partial"])
            .arg(&shard)
            .arg("-o")
            .arg(tmp.path().join("m")),
    );
    assert_eq!(code, Some(0), "{err}");
    let o = vggfeat()
        .args(["export", "--csv"])
        .arg(tmp.path().join("m.csv"))
        .arg(tmp.path().join("m"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("incomplete") && err.contains("1/2 not given"),
        "{err}"
    );
}

/// Inf in a bias gave NaN descriptors and NaN% results; NaN in a weight silently changed every
/// descriptor. Both are refused when the checkpoint is read.
#[test]
fn checkpoints_with_non_finite_values_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t =
        candle_core::safetensors::load(util::tiny().join("weights.safetensors"), &Device::Cpu)
            .unwrap();
    let b = &t["features.0.bias"];
    let mut v: Vec<f32> = b.to_vec1().unwrap();
    v[0] = f32::INFINITY;
    t.insert(
        "features.0.bias".into(),
        Tensor::from_vec(v, b.shape(), &Device::Cpu).unwrap(),
    );
    let w = tmp.path().join("inf.safetensors");
    candle_core::safetensors::save(&t, &w).unwrap();
    for cmd in [&["extract", "-o", "/nonexistent/s"][..], &["classify"][..]] {
        let o = vggfeat()
            .args(cmd)
            .arg("-w")
            .arg(&w)
            .arg(util::tiny().join("images/0.png"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{cmd:?}: {err}");
        assert!(
            err.contains("features.0.bias") && err.contains("1 infinite"),
            "{err}"
        );
    }
}

/// A name that is not UTF-8 was skipped without a word; a broken link too. Now the first is
/// extracted under an escaped id and the second is a failed input, reported and recorded.
#[test]
fn odd_names_and_listing_problems_are_not_dropped() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dataset(&input);
    let odd = input.join(std::ffi::OsStr::from_bytes(b"a/caf\xe9.png"));
    std::fs::copy(util::tiny().join("images/0.png"), &odd).unwrap();
    std::os::unix::fs::symlink("gone.png", input.join("b/link.png")).unwrap();
    let store = tmp.path().join("s");
    let (code, err) = stderr_of(&mut util::extract_tiny(&[&input], &store, &[]));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("b/link.png") && err.contains("No such file"),
        "{err}"
    );
    let s = vggfeat::Store::open(&store).unwrap();
    assert!(s.ok_records().any(|(r, _)| r.id == "a/caf%E9.png"));
    assert_eq!(s.failures().len(), 1);
    assert_eq!(s.failures()[0].0, "b/link.png");
}

/// A list file's byte-order mark, a comma in a file name, and a label holding `;`.
#[test]
fn list_files_keep_names_and_labels_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["first.png", "with,comma.png", "semi.png"] {
        std::fs::copy(util::tiny().join("images/0.png"), dir.join(name)).unwrap();
    }
    std::fs::write(
        dir.join("list.txt"),
        "\u{FEFF}first.png\tcat\nwith,comma.png\tdog\nsemi.png\tx;y\n",
    )
    .unwrap();
    let store = tmp.path().join("s");
    let (code, err) = stderr_of(&mut util::extract_tiny(
        &[&dir.join("list.txt")],
        &store,
        &[],
    ));
    assert_eq!(code, Some(0), "{err}");
    let out = tmp.path().join("e.csv");
    vggfeat()
        .args(["export", "--csv"])
        .arg(&out)
        .arg(&store)
        .assert()
        .success();
    let mut r = csv::Reader::from_path(&out).unwrap();
    let rows: Vec<(String, String)> = r
        .records()
        .map(|x| {
            let x = x.unwrap();
            (x[0].to_string(), x[1].to_string())
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("first.png".to_string(), "cat".to_string()),
            // One label per image: the `label` column holds it verbatim (a table reader takes a
            // `label` cell whole).
            ("semi.png".into(), "x;y".into()),
            ("with,comma.png".into(), "dog".into()),
        ]
    );
}

/// Outputs: a CSV written onto a symbolic link keeps the link; a failed export leaves no
/// temporary file; the `.npy` and its ids stay a pair when the second cannot be written; resume
/// leaves a user's `.tmp` file alone; a reused `svm -o` folder keeps no stale split files; run
/// records hold no absolute paths.
#[test]
fn outputs_are_whole_and_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dataset(&input);
    let store = tmp.path().join("s");
    assert!(
        util::extract_tiny(&[&input], &store, &[])
            .status()
            .unwrap()
            .success()
    );
    let export = |args: &[&str]| {
        let o = vggfeat()
            .arg("export")
            .args(args)
            .arg(&store)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // Symlink.
    let real = tmp.path().join("real.csv");
    std::fs::write(&real, "old").unwrap();
    let link = tmp.path().join("link.csv");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_eq!(export(&["--csv", link.to_str().unwrap()]).0, Some(0));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .starts_with("id,label,d0")
    );
    // A failed export leaves nothing behind.
    let dir = tmp.path().join("adir");
    std::fs::create_dir(&dir).unwrap();
    let (code, _) = export(&["--csv", dir.to_str().unwrap()]);
    assert_eq!(code, Some(3));
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // npy + ids: when the ids file cannot be written, the old pair stays.
    let npy = tmp.path().join("d.npy");
    assert_eq!(export(&["--npy", npy.to_str().unwrap()]).0, Some(0));
    let (a, b) = (std::fs::read(&npy).unwrap(), tmp.path().join("d.ids.csv"));
    let ids_before = std::fs::read(&b).unwrap();
    std::fs::remove_file(&b).unwrap();
    std::fs::create_dir(&b).unwrap(); // the ids file cannot be replaced now
    std::fs::write(&npy, b"sentinel").unwrap();
    assert_eq!(export(&["--npy", npy.to_str().unwrap()]).0, Some(3));
    assert_eq!(
        std::fs::read(&npy).unwrap(),
        b"sentinel",
        "the .npy was replaced alone"
    );
    assert!(!a.is_empty() && !ids_before.is_empty());
    // Resume leaves a user's .tmp file in chunks/ alone.
    std::fs::write(store.join("chunks/notes.tmp"), "mine").unwrap();
    assert!(
        util::extract_tiny(&[&input], &store, &[])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        std::fs::read_to_string(store.join("chunks/notes.tmp")).unwrap(),
        "mine"
    );
    // A reused results folder: 3 splits, then 2.
    let res = tmp.path().join("res");
    for splits in ["3", "2"] {
        svm_names_no_path_of(tmp.path(), &store, &res, splits);
    }
    assert!(res.join("split1.csv").exists() && !res.join("split2.csv").exists());
}

/// Runs `svm` (5 training and 1 test image per class, `splits` splits) on `store` into `res`
/// and checks that its run record names no path under `tmp` (the test's own folder) absolutely.
fn svm_names_no_path_of(tmp: &Path, store: &Path, res: &Path, splits: &str) {
    vggfeat()
        .args(["svm", "--train-per-class", "5", "--test-per-class", "1"])
        .args(["--splits", splits, "-f"])
        .arg(store)
        .arg("-o")
        .arg(res)
        .assert()
        .success();
    let json = std::fs::read_to_string(res.join("metrics.json")).unwrap();
    let tmp_path = std::fs::canonicalize(tmp).unwrap();
    assert!(
        !json.contains(tmp_path.to_str().unwrap()),
        "absolute path in the run record:\n{json}"
    );
}

/// A store made from several table inputs (vggfeat's split files under `--root`): the run
/// record of `svm` on it names the tables and the root relative to itself, as it does a folder.
#[test]
fn run_records_name_table_inputs_relatively() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dataset(&input);
    let tables: Vec<_> = ["a", "b"]
        .iter()
        .map(|c| {
            let t = tmp.path().join(format!("{c}.csv"));
            let rows: String = (0..6)
                .map(|i| format!("{c}/img{i}.png,{c},train\n"))
                .collect();
            std::fs::write(&t, format!("id,label,set\n{rows}")).unwrap();
            t
        })
        .collect();
    let store = tmp.path().join("s");
    let mut c = util::extract_tiny(&[&tables[0]], &store, &["--root", input.to_str().unwrap()]);
    assert!(c.arg(&tables[1]).status().unwrap().success());
    svm_names_no_path_of(tmp.path(), &store, &tmp.path().join("res"), "3");
}

/// The results table says what was run, and degenerate classes are refused or flagged.
#[test]
fn svm_tables_say_what_was_run() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    dataset(&input);
    let store = tmp.path().join("s");
    assert!(
        util::extract_tiny(&[&input], &store, &[])
            .status()
            .unwrap()
            .success()
    );
    let svm = |args: &[&str], out: &str| {
        let o = vggfeat()
            .arg("svm")
            .args(args)
            .arg("-f")
            .arg(&store)
            .arg("-o")
            .arg(tmp.path().join(out))
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // 100 asked for, 6 images per class: the title says 5 train / 1 test.
    let (code, err) = svm(&["--train-per-class", "100", "--splits", "1"], "r1");
    assert_eq!(code, Some(0), "{err}");
    let md = std::fs::read_to_string(tmp.path().join("r1/table.md")).unwrap();
    assert!(
        md.starts_with("# D fc7, stack of Q 224: 5 train / 1 test per class"),
        "{md}"
    );
    // Split files: the title counts the files' images, not the defaults.
    let files = tmp.path().join("r1/split0.csv");
    let (code, err) = svm(&["--split-files", files.to_str().unwrap()], "r2");
    assert_eq!(code, Some(0), "{err}");
    let md = std::fs::read_to_string(tmp.path().join("r2/table.md")).unwrap();
    assert!(md.contains(": 5 train / 1 test per class"), "{md}");
    // A class without training images in a split file: refused, naming it.
    let text = std::fs::read_to_string(&files).unwrap();
    let only_test: String = text
        .lines()
        .map(|l| {
            if l.starts_with("b/") {
                l.replace(",train", ",test")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let bad = tmp.path().join("bad_split.csv");
    std::fs::write(&bad, only_test + "\n").unwrap();
    let (code, err) = svm(&["--split-files", bad.to_str().unwrap()], "r3");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("class(es) b have no training images"), "{err}");
    // A class without test images: listed as not scored, not silently missing.
    let no_test: String = text
        .lines()
        .filter(|l| !(l.starts_with("b/") && l.ends_with(",test")))
        .collect::<Vec<_>>()
        .join("\n");
    let nt = tmp.path().join("no_test.csv");
    std::fs::write(&nt, no_test + "\n").unwrap();
    let (code, err) = svm(&["--split-files", nt.to_str().unwrap()], "r4");
    assert_eq!(code, Some(0), "{err}");
    let md = std::fs::read_to_string(tmp.path().join("r4/table.md")).unwrap();
    assert!(
        md.contains("Not scored") && md.contains("- b: no test images"),
        "{md}"
    );
    // One class: refused (it would score 100 %).
    let one = tmp.path().join("one");
    let one_in = tmp.path().join("one_in");
    std::fs::create_dir_all(one_in.join("a")).unwrap();
    for i in 0..3 {
        std::fs::copy(
            util::tiny().join(format!("images/{i}.png")),
            one_in.join(format!("a/{i}.png")),
        )
        .unwrap();
    }
    assert!(
        util::extract_tiny(&[&one_in], &one, &[])
            .status()
            .unwrap()
            .success()
    );
    let o = vggfeat()
        .args(["svm", "--train-per-class", "2", "-f"])
        .arg(&one)
        .arg("-o")
        .arg(tmp.path().join("r5"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 2 classes"));
}

/// Crashes, hangs and unclear messages of the command line.
#[test]
fn bad_requests_get_clear_errors() {
    let w = util::tiny().join("weights.safetensors");
    let img = util::tiny().join("images/0.png");
    // Thousands of threads: refused.
    let o = vggfeat()
        .args(["--threads", "100000", "info"])
        .arg(&w)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // A huge scale is a per-image failure under the pixel limit, not an abort.
    let o = vggfeat()
        .args(["classify", "--scale", "100000", "-w"])
        .arg(&w)
        .arg(&img)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("over the limit") && err.contains("too large"),
        "{err}"
    );
    // A closed pipe ends the process quietly.
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} info {} | head -1",
            bin().display(),
            w.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&child.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // An image given as INPUT.
    let o = vggfeat()
        .args(["extract", "-w"])
        .arg(&w)
        .args(["-o", "/nonexistent/s"])
        .arg(&img)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("this is an image, not a list file"), "{err}");
    // An OS error is printed once.
    let o = vggfeat()
        .args(["info", "/nonexistent/w.safetensors"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    // --max-pixels 0 and a negative C: usage errors.
    let o = vggfeat()
        .args(["extract", "--max-pixels", "0", "-w"])
        .arg(&w)
        .args(["-o", "/nonexistent/s"])
        .arg(util::tiny().join("images"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = vggfeat()
        .args([
            "svm",
            "-f",
            "/nonexistent",
            "-o",
            "/nonexistent",
            "--c-grid",
            "-1,1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("must be finite and > 0, got -1"), "{err}");
    // svm -o onto a file.
    let f = tempfile::NamedTempFile::new().unwrap();
    let o = vggfeat()
        .args(["svm", "-f", "/nonexistent", "-o"])
        .arg(f.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("exists and is not a folder"), "{err}");
}

/// Unknown `preprocess` metadata was taken as absent (torchvision): a silent change of every
/// descriptor of a Caffe-convention checkpoint with a typo. Now it is an error naming the value,
/// and `info` shows it.
#[test]
fn unknown_preprocess_metadata_is_not_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let w =
        vggfeat::model::checkpoint::load(&util::tiny().join("weights.safetensors"), &Device::Cpu)
            .unwrap();
    let p = tmp.path().join("odd.safetensors");
    let meta = [("preprocess".to_string(), "cafe: BGR".to_string())]
        .into_iter()
        .collect();
    vggfeat::model::checkpoint::save_torchvision(&w, &p, &meta).unwrap();
    let o = vggfeat()
        .args(["extract", "-w"])
        .arg(&p)
        .args(["-o"])
        .arg(tmp.path().join("s"))
        .arg(util::tiny().join("images"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("\"cafe: BGR\"") && err.contains("name the preprocessing"),
        "{err}"
    );
    // An explicit convention overrides it.
    vggfeat()
        .args(["extract", "--quiet", "--preprocess", "caffe", "-w"])
        .arg(&p)
        .args(["-o"])
        .arg(tmp.path().join("s"))
        .arg(util::tiny().join("images"))
        .assert()
        .success();
    let o = vggfeat().arg("info").arg(&p).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("preprocess:    unknown"), "{out}");
}

/// VOC: a class without training positives got an AP counted in the mAP, and a class without
/// test positives aborted the whole run naming no class. Both are now listed as not scored,
/// out of the mAP, and the run goes on.
#[test]
fn voc_classes_without_positives_are_not_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let (devkit, store) = crate::svm_cli::synthetic_devkit(tmp.path(), |set, labels| {
        let gone = if set == 0 { 0 } else { 1 }; // aeroplane in trainval, bicycle in test
        labels[gone] = -1;
    });
    let out = tmp.path().join("voc");
    let o = vggfeat()
        .args(["svm", "--protocol", "voc", "--aggregate", "avg", "--voc"])
        .arg(&devkit)
        .arg("-f")
        .arg(&store)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(
        md.contains("- aeroplane: no training positives in `trainval`")
            && md.contains("- bicycle: no test positives in `test` (AP undefined)"),
        "{md}"
    );
    let scored = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| class"))
        .count();
    assert_eq!(scored, 18 + 1, "18 classes and the mean:\n{md}");
}
