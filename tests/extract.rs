//! `extract` + `export` end to end with the real binary: the fixtures' aggregated descriptors
//! from their PNGs (PROTOCOL.md: relative L2 error <= 0.02; we hold ourselves to 1e-4, since the
//! resize is Pillow-exact), bad inputs that must not stop a run, kill -9 and resume, shards and
//! merge, and refusal of a store made with other parameters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use predicates::prelude::*;

use crate::util::{self, vggfeat};

/// Reads an exported CSV into id -> (label, descriptor).
fn read_csv(p: &Path) -> BTreeMap<String, (String, Vec<f32>)> {
    let (h, rows) = util::read_csv(p);
    assert_eq!((&h[0][..], &h[1][..], &h[2][..]), ("id", "label", "d0"));
    rows.into_iter().map(|(id, l, v)| (id, (l, v))).collect()
}

fn export(store: &Path, how: &str) -> BTreeMap<String, (String, Vec<f32>)> {
    let out = store.with_extension(format!("{how}.csv"));
    vggfeat()
        .args(["export", "--aggregate", how, "--csv"])
        .arg(&out)
        .arg(store)
        .assert()
        .success();
    read_csv(&out)
}

fn check_fixture(dir: &Path, weights: &Path, extra: &[&str]) {
    check_fixture_within(dir, weights, extra, &[], 1e-4);
}

/// Extracts the fixture's images at Q 256,384 with `extra` arguments and `env`, and checks the
/// aggregated descriptors against PyTorch's within `tol` relative L2; returns the largest error.
fn check_fixture_within(
    dir: &Path,
    weights: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
    tol: f32,
) -> f32 {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let mut cmd = vggfeat();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["extract", "--quiet", "--scales", "256,384", "-w"])
        .arg(weights)
        .arg("-o")
        .arg(&store)
        .args(extra)
        .arg(dir.join("images"))
        .assert()
        .success();
    let r = util::reference(dir);
    let mut worst = 0f32;
    for how in ["avg", "stack"] {
        let got = export(&store, how);
        assert_eq!(got.len(), 3);
        for i in 0..3 {
            let (_, v) = &got[&format!("{i}.png")];
            let want = util::to_vec(&r[&format!("img{i}.{how}")]);
            let rel =
                util::assert_rel_l2(&format!("{} img{i} {how}", dir.display()), v, &want, 0.02);
            assert!(rel < tol, "img{i} {how}: {rel} >= {tol}");
            worst = worst.max(rel);
        }
    }
    worst
}

/// The fixture's images extracted into `out` with `args` and `env` set ([`util::extract_tiny`]).
fn extract_images(out: &Path, env: &[(&str, &str)], args: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = util::extract_tiny(&[&util::tiny().join("images")], out, args);
    cmd.envs(env.iter().copied());
    assert_cmd::Command::from_std(cmd).assert()
}

/// `--precision bf16`: the aggregated descriptors of both fixtures (vgg-d-tiny fc7, the real
/// VGG-16 conv weights' pool5) stay within 1e-2 relative L2 of PyTorch's f32 ones. On a CPU
/// without AVX512-BF16 the request is refused with a message saying so.
#[test]
fn bf16_descriptors_stay_within_1e_2_of_pytorch() {
    if !util::has_bf16() {
        extract_images(
            Path::new("/nonexistent/never-created"),
            &[],
            &["--precision", "bf16"],
        )
        .code(3)
        .stderr(predicate::str::contains("needs a CPU with AVX512-BF16"));
        return;
    }
    let tiny = check_fixture_within(
        &util::tiny(),
        &util::tiny().join("weights.safetensors"),
        &["--precision", "bf16"],
        &[],
        1e-2,
    );
    let hed = check_fixture_within(
        &util::hed_fixture(),
        &util::hed_weights(),
        &["--layer", "pool5", "--precision", "bf16"],
        &[],
        1e-2,
    );
    eprintln!(
        "bf16 aggregated descriptors, largest relative L2 error: vgg-d-tiny fc7 {tiny:.2e}, vgg16-conv-hed pool5 {hed:.2e}"
    );
}

/// `--precision int8`: the aggregated descriptors of both fixtures (vgg-d-tiny fc7: its fc6 and
/// fc7 as int8 GEMMs; the real VGG-16 conv weights' pool5: thirteen int8 Winograd layers) stay
/// within 2e-2 relative L2 of PyTorch's f32 ones (issue 25's bound; largest measured on the real
/// weights: 4.4e-3 with VNNI's per-row Winograd, 6.8e-3 with AMX's direct convolutions; the
/// tiny net, 1/16 as wide, 1.2e-2). Refused with a reason on a CPU without AVX512-VNNI, and when
/// `VGGFEAT_MAX_ISA` turns VNNI off.
#[test]
fn int8_descriptors_stay_within_2e_2_of_pytorch() {
    let nowhere = Path::new("/nonexistent/never-created");
    if !util::has_vnni() {
        extract_images(nowhere, &[], &["--precision", "int8"])
            .code(3)
            .stderr(predicate::str::contains("needs a CPU with AVX512-VNNI"));
        return;
    }
    extract_images(
        nowhere,
        &[("VGGFEAT_MAX_ISA", "avx512")],
        &["--precision", "int8"],
    )
    .code(3)
    .stderr(predicate::str::contains(
        "needs AVX512-VNNI, which VGGFEAT_MAX_ISA turns off",
    ));
    let tiny = check_fixture_within(
        &util::tiny(),
        &util::tiny().join("weights.safetensors"),
        &["--precision", "int8"],
        &[],
        2e-2,
    );
    let hed = check_fixture_within(
        &util::hed_fixture(),
        &util::hed_weights(),
        &["--layer", "pool5", "--precision", "int8"],
        &[],
        2e-2,
    );
    // `avx512-vnni` keeps an AMX CPU on the VNNI path (per-row Winograd), so that both int8
    // paths are checked end to end on such a CPU.
    let vnni = check_fixture_within(
        &util::hed_fixture(),
        &util::hed_weights(),
        &["--layer", "pool5", "--precision", "int8"],
        &[("VGGFEAT_MAX_ISA", "avx512-vnni")],
        2e-2,
    );
    eprintln!(
        "int8 aggregated descriptors, largest relative L2 error: vgg-d-tiny fc7 {tiny:.2e}, vgg16-conv-hed pool5 {hed:.2e} (VNNI only: {vnni:.2e})"
    );
}

/// `VGGFEAT_MAX_ISA` caps the kernels: `portable` runs f32 through the `gemm` crate (the path of
/// CPUs without AVX-512) and still matches PyTorch within 1e-4; `avx512` refuses bf16 clearly.
#[test]
fn capped_instruction_sets_run_the_portable_path_or_refuse_bf16() {
    check_fixture_within(
        &util::tiny(),
        &util::tiny().join("weights.safetensors"),
        &[],
        &[("VGGFEAT_MAX_ISA", "portable")],
        1e-4,
    );
    let nowhere = Path::new("/nonexistent/never-created");
    extract_images(
        nowhere,
        &[("VGGFEAT_MAX_ISA", "avx512")],
        &["--precision", "bf16"],
    )
    .code(3)
    .stderr(predicate::str::contains("needs").and(predicate::str::contains("AVX512-BF16")));
    extract_images(nowhere, &[("VGGFEAT_MAX_ISA", "sse9")], &[])
        .code(2)
        .stderr(predicate::str::contains("VGGFEAT_MAX_ISA=sse9"));
}

/// A store extracted in f32 is not resumed in bf16 (nor the other way): the refusal names the
/// net's precision on both sides.
#[test]
fn a_store_of_another_precision_is_refused() {
    if !util::has_bf16() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let run = |precision: &str| {
        extract_images(&store, &[], &["--scales", "256", "--precision", precision])
    };
    run("f32").success();
    run("bf16")
        .code(3)
        .stderr(predicate::str::contains("net 0 precision: f32 vs bf16"));
    let manifest = std::fs::read_to_string(store.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"precision\": \"f32\""), "{manifest}");
}

#[test]
fn tiny_fixture_descriptors_match_pytorch() {
    check_fixture(
        &util::tiny(),
        &util::tiny().join("weights.safetensors"),
        &[],
    );
}

#[test]
fn real_vgg16_pool5_caffe_descriptors_match_pytorch() {
    // Caffe preprocessing comes from the checkpoint's metadata (--preprocess auto).
    check_fixture(
        &util::hed_fixture(),
        &util::hed_weights(),
        &["--layer", "pool5"],
    );
}

/// A folder with every kind of awkward input: good ones are extracted, bad ones are listed with
/// their reasons in the summary and the store, and the exit code says some failed.
#[test]
fn bad_inputs_do_not_stop_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("in");
    let good = root.join("good");
    let bad = root.join("bad");
    std::fs::create_dir_all(&good).unwrap();
    std::fs::create_dir_all(&bad).unwrap();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/images");
    for f in [
        "cmyk.jpg",
        "grey.jpg",
        "rgba.png",
        "exif6.jpg",
        "rgb16.png",
        "palette.png",
        "anim.gif",
    ] {
        std::fs::copy(data.join(f), good.join(f)).unwrap();
    }
    std::fs::copy(data.join("rgb.jpg"), good.join("odd name é ü.jpg")).unwrap();
    std::fs::copy(data.join("rgb.jpg"), good.join("no_extension")).unwrap();
    let jpg = std::fs::read(data.join("rgb.jpg")).unwrap();
    std::fs::write(bad.join("truncated.jpg"), &jpg[..jpg.len() / 2]).unwrap();
    std::fs::write(bad.join("empty.jpg"), b"").unwrap();
    std::fs::write(
        bad.join("text.jpg"),
        b"this is a text file with a .jpg name",
    )
    .unwrap();
    // A PNG header claiming 100000 x 100000 pixels (a decompression bomb).
    let mut bomb = Vec::new();
    image::GrayImage::new(8, 8)
        .write_to(
            &mut std::io::Cursor::new(&mut bomb),
            image::ImageFormat::Png,
        )
        .unwrap();
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]); // IHDR type + data
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(bad.join("bomb.png"), &bomb).unwrap();
    std::fs::write(root.join("notes.txt"), b"not an image, not listed").unwrap();

    let store = tmp.path().join("store");
    let out = vggfeat()
        .args(["extract", "--quiet", "--scales", "224", "-w"])
        .arg(util::tiny().join("weights.safetensors"))
        .arg("-o")
        .arg(&store)
        .arg(&root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for (f, why) in [
        ("truncated.jpg", "truncated"),
        ("empty.jpg", "empty"),
        ("text.jpg", "not an image"),
        ("bomb.png", "exceeds the limit"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(f) && l.contains(why)),
            "{f}: {why} not in\n{err}"
        );
    }
    assert!(
        err.contains("extracted 9 images") && err.contains("4 failed"),
        "{err}"
    );
    let s = vggfeat::store::Store::open(&store).unwrap();
    assert_eq!(s.failures().len(), 4);
    assert!(s.failures().iter().all(|(id, _)| id.starts_with("bad/")));
    let got = export(&store, "avg");
    assert_eq!(got.len(), 9);
    assert_eq!(got["good/odd name é ü.jpg"].0, "good");
    // The same pixels under another name give the same descriptor.
    assert_eq!(got["good/no_extension"].1, got["good/odd name é ü.jpg"].1);
}

/// CRC-32 (IEEE), as PNG chunks use.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn caltech_subset() -> PathBuf {
    util::shared().join("datasets/caltech101/101_ObjectCategories")
}

fn extract_cmd(store: &Path, extra: &[&str]) -> std::process::Command {
    let args = [&["--limit-per-class", "2", "--chunk", "4"], extra].concat();
    util::extract_tiny(&[&caltech_subset()], store, &args)
}

/// Kills an extraction with SIGKILL once some chunks are on disk, resumes it, and compares with
/// an uninterrupted run: the same ids, and descriptors bit for bit.
#[test]
fn kill_and_resume_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    assert!(extract_cmd(&full, &[]).status().unwrap().success());

    let resumed = tmp.path().join("resumed");
    let mut child = extract_cmd(&resumed, &[])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        let n = std::fs::read_dir(resumed.join("chunks"))
            .map(|d| d.count())
            .unwrap_or(0);
        if n >= 3 || t.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = vggfeat::store::Store::open(&resumed).unwrap();
    assert!(
        !partial.records.is_empty(),
        "nothing was written before the kill"
    );
    let full_store = vggfeat::store::Store::open(&full).unwrap();
    assert!(
        partial.records.len() < full_store.records.len(),
        "the run finished before the kill"
    );

    let out = extract_cmd(&resumed, &[]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{} already in the store", partial.records.len())),
        "{err}"
    );
    let resumed_store = vggfeat::store::Store::open(&resumed).unwrap();
    assert_eq!(resumed_store.records, full_store.records);
}

#[test]
fn shards_merge_into_the_single_run() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    assert!(extract_cmd(&full, &[]).status().unwrap().success());
    let mut shards = Vec::new();
    for i in 0..3 {
        let p = tmp.path().join(format!("shard{i}"));
        // Larger batches group equal-shape images differently: results must not change.
        assert!(
            extract_cmd(&p, &["--shard", &format!("{i}/3"), "--batch", "8"])
                .status()
                .unwrap()
                .success()
        );
        shards.push(p);
    }
    let merged = tmp.path().join("merged");
    vggfeat()
        .arg("merge")
        .args(&shards)
        .arg("-o")
        .arg(&merged)
        .assert()
        .success();
    let a = vggfeat::store::Store::open(&merged).unwrap();
    let b = vggfeat::store::Store::open(&full).unwrap();
    assert_eq!(a.records, b.records);
    assert_eq!(a.manifest, b.manifest);
}

#[test]
fn a_store_with_other_parameters_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let run = |scales: &str| extract_images(&store, &[], &["--scales", scales]);
    run("256").success();
    run("256,384").code(3).stderr(
        predicate::str::contains("different parameters").and(predicate::str::contains("scales")),
    );
    // The same parameters resume (nothing left to do).
    run("256")
        .success()
        .stderr(predicate::str::contains("3 already in the store"));
}

#[test]
fn usage_errors() {
    let w = util::tiny().join("weights.safetensors");
    for (args, msg) in [
        (vec!["--scales", "100"], "below 224"),
        (vec!["--layer", "conv9_9"], "unknown layer"),
        (vec!["--shard", "3/3"], "bad shard"),
        (
            vec!["--layer", "fc7", "--preprocess", "rgb"],
            "unknown preprocessing",
        ),
    ] {
        vggfeat()
            .arg("extract")
            .args(&args)
            .arg("-w")
            .arg(&w)
            .args(["-o", "/nonexistent/never-created"])
            .arg(util::tiny().join("images"))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(msg));
    }
}

/// The library extracts with a network that exists only in memory (random weights): the store
/// identifies it by the SHA-256 of its tensors, resumes with the same weights and refuses others.
#[test]
fn extractor_runs_an_in_memory_network() {
    use vggfeat::model::{InitScheme, VggWeights};
    use vggfeat::{ConfigName, ExtractParams, Extractor, ExtractorParams, Silent, Vgg};
    let params = ExtractorParams::new().scales([64, 96]).check().unwrap();
    let net = |seed| {
        let w = VggWeights::random(ConfigName::A, 16, None, 0, InitScheme::He, seed).unwrap();
        let vgg = Vgg::new(w, &candle_core::Device::Cpu, vggfeat::Engine::default()).unwrap();
        Extractor::from_nets(vec![vgg], &params).unwrap()
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let job = ExtractParams::new()
        .inputs([util::tiny().join("images")])
        .out(&store)
        .check()
        .unwrap();
    let a = net(1);
    let spec = &a.nets()[0].spec;
    assert_eq!(spec.sha256.len(), 64);
    assert!(spec.weights.starts_with("<random A"), "{}", spec.weights);
    let s = a.extract(&job, &Silent).unwrap();
    assert_eq!((s.extracted, s.failed.len()), (3, 0));
    // The same weights again resume (nothing to do); other weights are refused.
    let again = net(1).extract(&job, &Silent);
    assert_eq!(again.unwrap().already_done, 3);
    let e = net(2).extract(&job, &Silent).unwrap_err().to_string();
    assert!(e.contains("net 0 weights (sha256)"), "{e}");
    let st = vggfeat::Store::open(&store).unwrap();
    assert_eq!(st.ok_records().count(), 3);
    assert_eq!(st.manifest.floats_per_record(), 2 * 32);
}
