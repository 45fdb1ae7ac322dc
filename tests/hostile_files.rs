//! Damaged files of every format vggfeat reads: each reader checks declared sizes against the
//! bytes that exist before allocating, and a seeded byte-flip loop over real files of each format
//! never panics, aborts or hangs (a damaged file is an error or, where the damage is in values,
//! possibly a success).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::util;

/// A Keras file (a valid HDF5 file of 700 KB) whose first kernel declares 2^50 output channels:
/// the reader allocated the declared size (a capacity-overflow panic or an abort); now it is an
/// error naming the tensor.
#[test]
fn a_keras_file_declaring_a_huge_kernel_is_refused() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference/tiny_keras2.h5");
    let mut b = std::fs::read(&src).unwrap();
    // The dataspace of the first kernel, (3, 3, 3, 4) as little-endian u64 (dims and max dims).
    let dims: Vec<u8> = [3u64, 3, 3, 4]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    let at: Vec<usize> = b
        .windows(dims.len())
        .enumerate()
        .filter(|(_, w)| *w == dims.as_slice())
        .map(|(i, _)| i)
        .collect();
    assert!(!at.is_empty(), "the kernel's dataspace was not found");
    for i in at {
        b[i + 24..i + 32].copy_from_slice(&(1u64 << 50).to_le_bytes());
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("huge.h5");
    std::fs::write(&p, &b).unwrap();
    let e = vggfeat::model::checkpoint::load(&p, &candle_core::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("huge.h5") && e.contains("declares shape"), "{e}");
    // `info` says the same, with exit code 3.
    let o = util::vggfeat().arg("info").arg(&p).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A reader under test: opens the file at the path, and says whether it was read.
type Reader = fn(&Path) -> bool;

/// `n` copies of `bytes`, each with 1 to 4 bytes changed (seeded), given to `read` at `path`:
/// none may panic, and all must be done within a minute.
fn flip_loop(name: &str, bytes: Vec<u8>, path: PathBuf, read: Reader, n: usize, seed: u64) {
    let (tx, rx) = mpsc::channel();
    let tag = name.to_string();
    std::thread::spawn(move || {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut read_ok = 0;
        for i in 0..n {
            let mut b = bytes.clone();
            for _ in 0..rng.gen_range(1..=4) {
                // Half the changes in the first or last 4 KiB (headers, footers, indices), half
                // anywhere.
                let len = b.len();
                let at = match rng.gen_range(0..4) {
                    0 => rng.gen_range(0..len.min(4096)),
                    1 => len - 1 - rng.gen_range(0..len.min(4096)),
                    _ => rng.gen_range(0..len),
                };
                b[at] = match rng.gen_range(0..3) {
                    0 => b[at] ^ (1 << rng.gen_range(0..8)),
                    1 => 0xff,
                    _ => rng.r#gen(),
                };
            }
            std::fs::write(&path, &b).unwrap();
            match std::panic::catch_unwind(|| read(&path)) {
                Ok(ok) => read_ok += ok as usize,
                Err(_) => {
                    let _ = tx.send(Err(format!("{tag}: flip {i} (seed {seed}) panicked")));
                    return;
                }
            }
        }
        let _ = tx.send(Ok(read_ok));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(ok)) => eprintln!("{name}: {n} damaged copies, {ok} still read, none panicked"),
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("{name}: the byte-flip loop hung (over 60 s)"),
    }
}

/// The byte-flip loop over a real file of every format: tar shard, CSV, TSV and Parquet
/// tables, Keras `.h5`, PyTorch `.pth`, safetensors, a store chunk, a saved classifier.
#[test]
fn damaged_files_of_every_format_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let images = t.join("img");
    util::tiny_folder(&images, &["a", "b"], 6);
    // A tar shard of the images with .cls labels.
    let mut tb = tar::Builder::new(Vec::new());
    for (k, class) in ["a", "b"].iter().enumerate() {
        for i in 0..3 {
            let png = std::fs::read(images.join(class).join(format!("img{i}.png"))).unwrap();
            for (name, data) in [
                (format!("{k}{i}.png"), png.as_slice()),
                (format!("{k}{i}.cls"), class.as_bytes()),
            ] {
                util::tar_add(&mut tb, &name, data);
            }
        }
    }
    let tar_bytes = tb.into_inner().unwrap();
    let rows = "path,label,labels\nimg/a/img0.png,a,x;y\nimg/b/img1.png,b,\n";
    // Tables are written by the export of a store made here.
    let store = t.join("store");
    assert!(
        util::extract_tiny(&[&images], &store, &[])
            .status()
            .unwrap()
            .success()
    );
    let pq = t.join("table.parquet");
    util::vggfeat()
        .arg("export")
        .arg(&store)
        .arg("--parquet")
        .arg(&pq)
        .assert()
        .success();
    let res = t.join("res");
    util::svm_small(&store, &res, &[]);
    let chunk = std::fs::read(store.join("chunks/000000.chunk")).unwrap();
    let model = std::fs::read(res.join("model_split0.safetensors")).unwrap();
    let tiny = util::tiny();
    let keras = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference/tiny_keras2.h5");

    let dataset: Reader = |p| vggfeat::Dataset::open(p).is_ok();
    let checkpoint: Reader =
        |p| vggfeat::model::checkpoint::load(p, &candle_core::Device::Cpu).is_ok();
    let cases: Vec<(&str, Vec<u8>, PathBuf, Reader, usize)> = vec![
        ("tar shard", tar_bytes, images.join("x.tar"), dataset, 200),
        ("CSV table", rows.into(), t.join("x.csv"), dataset, 200),
        (
            "TSV table",
            rows.replace(',', "\t").into(),
            t.join("x.tsv"),
            dataset,
            100,
        ),
        (
            "Parquet table",
            std::fs::read(&pq).unwrap(),
            t.join("x.parquet"),
            dataset,
            200,
        ),
        (
            "Keras .h5",
            std::fs::read(&keras).unwrap(),
            t.join("x.h5"),
            checkpoint,
            200,
        ),
        (
            "PyTorch .pth",
            std::fs::read(tiny.join("weights.pth")).unwrap(),
            t.join("x.pth"),
            checkpoint,
            200,
        ),
        (
            "safetensors",
            std::fs::read(tiny.join("weights.safetensors")).unwrap(),
            t.join("x.safetensors"),
            checkpoint,
            200,
        ),
        (
            "store chunk",
            chunk,
            store.join("chunks/000000.chunk"),
            |p| vggfeat::Store::open(p.parent().unwrap().parent().unwrap()).is_ok(),
            200,
        ),
        (
            "saved classifier",
            model,
            t.join("x.safetensors"),
            |p| vggfeat::Classifier::load(p).is_ok(),
            200,
        ),
    ];
    for (k, (name, bytes, path, read, n)) in cases.into_iter().enumerate() {
        flip_loop(name, bytes, path, read, n, 22 + k as u64);
    }
}
