//! Every way a checkpoint can be wrong gives a clear error naming the file, the key, and what was
//! expected — never a panic. Broken files are made from the fixture in a tempdir.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use vggfeat::Error;
use vggfeat::model::checkpoint::{self as weights, torchvision_layout};
use vggfeat::model::config::{ConfigName, imagenet_param_count};
use vggfeat::model::{Engine, Vgg};

use crate::util;

fn tiny_tensors() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(util::tiny().join("weights.safetensors"), &Device::Cpu).unwrap()
}

fn save(dir: &Path, name: &str, t: &HashMap<String, Tensor>) -> PathBuf {
    let p = dir.join(name);
    candle_core::safetensors::save(t, &p).unwrap();
    p
}

fn err(p: &Path) -> (Error, String) {
    let e = weights::load(p, &Device::Cpu).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains(&p.display().to_string()),
        "error does not name the file: {s}"
    );
    (e, s)
}

#[test]
fn missing_file() {
    let (e, _) = err(Path::new("/nonexistent/vgg16.safetensors"));
    assert!(matches!(e, Error::Io { .. }));
}

#[test]
fn empty_truncated_and_garbage_files() {
    let d = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(util::tiny().join("weights.safetensors")).unwrap();
    let pth = std::fs::read(util::tiny().join("weights.pth")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.safetensors", vec![], "empty"),
        (
            "trunc.safetensors",
            bytes[..bytes.len() / 2].to_vec(),
            "safetensors",
        ),
        ("header.safetensors", bytes[..20].to_vec(), "safetensors"),
        (
            "garbage.bin",
            b"this is not a checkpoint at all".to_vec(),
            "safetensors",
        ),
        ("trunc.pth", pth[..pth.len() / 2].to_vec(), "PyTorch"),
        ("legacy.pth", vec![0x80, 0x02, 0x8a, 0x0a], "legacy"),
    ];
    for (name, data, word) in cases {
        let p = d.path().join(name);
        std::fs::write(&p, data).unwrap();
        let (e, s) = err(&p);
        assert!(matches!(e, Error::Checkpoint { .. }), "{name}: {s}");
        assert!(s.contains(word), "{name}: {s}");
    }
}

#[test]
fn corrupt_pth_member_is_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let mut pth = std::fs::read(util::tiny().join("weights.pth")).unwrap();
    // Flip bytes in the middle of the archive (tensor data and pickle), keep the zip signature.
    let n = pth.len();
    for b in &mut pth[n / 3..n / 3 + 4096] {
        *b ^= 0x5a;
    }
    let p = d.path().join("flipped.pth");
    std::fs::write(&p, pth).unwrap();
    // A clean error (the archive's checksums no longer match), never a panic, never a load.
    let (e, s) = err(&p);
    assert!(matches!(e, Error::Checkpoint { .. }), "{s}");
}

/// Bytes changed inside one tensor's data only (the pickle intact): the member's CRC-32 catches
/// it, so the file does not load with different numbers.
#[test]
fn pth_with_a_bad_checksum_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut pth = std::fs::read(util::tiny().join("weights.pth")).unwrap();
    let f = std::fs::File::open(util::tiny().join("weights.pth")).unwrap();
    let mut zip = zip::ZipArchive::new(f).unwrap();
    let (start, len) = (0..zip.len())
        .map(|i| {
            let m = zip.by_index(i).unwrap();
            (m.data_start().unwrap() as usize, m.size() as usize)
        })
        .max_by_key(|(_, len)| *len)
        .unwrap();
    pth[start + len / 2] ^= 0x01; // one bit of the largest tensor
    let p = d.path().join("bitflip.pth");
    std::fs::write(&p, pth).unwrap();
    let (e, s) = err(&p);
    assert!(matches!(e, Error::Checkpoint { .. }), "{s}");
    assert!(s.contains("checksum"), "{s}");
}

/// A NaN or an infinity in any tensor is refused, naming the tensor and how many values.
#[test]
fn non_finite_tensors_are_refused() {
    let d = tempfile::tempdir().unwrap();
    for (key, bad, word) in [
        ("features.0.bias", f32::INFINITY, "1 infinite"),
        ("features.2.weight", f32::NAN, "1 NaN"),
    ] {
        let mut t = tiny_tensors();
        let v = &t[key];
        let mut vals: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
        vals[1] = bad;
        t.insert(
            key.to_string(),
            Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap(),
        );
        let (e, s) = err(&save(d.path(), "nonfinite.safetensors", &t));
        assert!(matches!(e, Error::Checkpoint { .. }), "{s}");
        assert!(s.contains(key) && s.contains(word), "{s}");
    }
}

#[test]
fn a_zero_sized_tensor_is_described_as_such() {
    let d = tempfile::tempdir().unwrap();
    let mut t = tiny_tensors();
    t.insert(
        "features.0.weight".into(),
        Tensor::zeros((0, 3, 3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    t.remove("features.0.bias");
    let (_, s) = err(&save(d.path(), "zero.safetensors", &t));
    assert!(s.contains("no zero-sized dimension"), "{s}");
}

#[test]
fn not_a_vgg() {
    let d = tempfile::tempdir().unwrap();
    let mut t = HashMap::new();
    t.insert(
        "encoder.layer.0.weight".to_string(),
        Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap(),
    );
    let (e, s) = err(&save(d.path(), "bert.safetensors", &t));
    assert!(matches!(e, Error::NotVgg { .. }), "{s}");
    assert!(s.contains("encoder.layer.0.weight"), "{s}");

    // A VGG with one conv too many (a ResNet-like layout) matches no configuration.
    let mut t = tiny_tensors();
    t.insert(
        "features.32.weight".into(),
        Tensor::zeros((32, 32, 3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let (e, s) = err(&save(d.path(), "odd.safetensors", &t));
    assert!(matches!(e, Error::NotVgg { .. }), "{s}");
    assert!(s.contains("32:3x3"), "{s}");
}

#[test]
fn missing_key() {
    let d = tempfile::tempdir().unwrap();
    for key in [
        "classifier.3.weight",
        "features.2.bias",
        "classifier.0.bias",
    ] {
        let mut t = tiny_tensors();
        t.remove(key);
        let (e, s) = err(&save(d.path(), "missing.safetensors", &t));
        assert!(matches!(e, Error::MissingKey { .. }), "{key}: {s}");
        assert!(s.contains(key), "{s}");
    }
}

#[test]
fn wrong_shapes() {
    let d = tempfile::tempdir().unwrap();
    let z = |s: &[usize]| Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap();
    let cases = [
        // conv2 must take conv1's 4 channels
        ("features.2.weight", z(&[4, 5, 3, 3]), "(4, 4, 3, 3)"),
        ("features.2.bias", z(&[5]), "(4)"),
        // fc6 must be F x (32*7*7)
        ("classifier.0.weight", z(&[64, 1500]), "(64, 1568)"),
        ("classifier.3.weight", z(&[64, 63]), "(64, 64)"),
        ("classifier.6.weight", z(&[10, 63]), "(10, 64)"),
    ];
    for (key, t, expected) in cases {
        let mut all = tiny_tensors();
        all.insert(key.to_string(), t);
        let (e, s) = err(&save(d.path(), "shape.safetensors", &all));
        assert!(matches!(e, Error::Shape { .. }), "{key}: {s}");
        assert!(s.contains(key) && s.contains(expected), "{key}: {s}");
    }
}

#[test]
fn unexpected_extra_tensor() {
    let d = tempfile::tempdir().unwrap();
    let mut t = tiny_tensors();
    t.insert(
        "classifier.9.weight".into(),
        Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let (e, s) = err(&save(d.path(), "extra.safetensors", &t));
    assert!(
        matches!(e, Error::NotVgg { .. }) && s.contains("classifier.9.weight"),
        "{s}"
    );
}

#[test]
fn integer_tensor_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut t = tiny_tensors();
    t.insert(
        "features.0.bias".into(),
        Tensor::zeros(4, DType::U32, &Device::Cpu).unwrap(),
    );
    let (e, s) = err(&save(d.path(), "int.safetensors", &t));
    assert!(
        matches!(e, Error::Checkpoint { .. }) && s.contains("features.0.bias"),
        "{s}"
    );
}

#[test]
fn half_precision_and_prefixes_load() {
    let d = tempfile::tempdir().unwrap();
    for dt in [DType::BF16, DType::F16] {
        let t: HashMap<_, _> = tiny_tensors()
            .into_iter()
            .map(|(k, v)| (format!("module.{k}"), v.to_dtype(dt).unwrap()))
            .collect();
        let w = weights::load(&save(d.path(), "half.safetensors", &t), &Device::Cpu).unwrap();
        assert_eq!(w.dtype_on_disk, dt);
        assert_eq!(w.config, ConfigName::D);
        assert_eq!(w.param_count(), 163_054);
    }
}

/// A batch-norm network with non-trivial statistics (`scripts/torch_references.py`, PyTorch
/// eval mode): the folded convolutions equal `torch.nn.utils.fusion.fuse_conv_bn_eval`'s, and the
/// classic path gives PyTorch's fc7 and logits, within the fixtures' 1e-4 relative tolerance.
#[test]
fn batch_norm_is_folded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference");
    let w = weights::load(&dir.join("bn_tiny.safetensors"), &Device::Cpu).unwrap();
    assert!(w.batch_norm);
    assert_eq!(w.config, ConfigName::A);
    let r = candle_core::safetensors::load(dir.join("bn_tiny_reference.safetensors"), &Device::Cpu)
        .unwrap();
    let layout = torchvision_layout(ConfigName::A, true);
    let indices = layout
        .iter()
        .filter(|(l, _)| matches!(l.spec, vggfeat::model::config::Spec::Conv { .. }));
    for ((_, index), conv) in indices.zip(&w.convs) {
        util::assert_close(
            &format!("folded features.{index}.weight"),
            &conv.weight,
            &r[&format!("folded.features.{index}.weight")],
        );
        util::assert_close(
            &format!("folded features.{index}.bias"),
            &conv.bias,
            &r[&format!("folded.features.{index}.bias")],
        );
    }
    for engine in [Engine::Candle, Engine::Fast] {
        let net = Vgg::new(w.clone(), &Device::Cpu, engine).unwrap();
        let (fc7, logits) = net.forward_classic(&r["input"]).unwrap();
        util::assert_close("bn fc7", &fc7, &r["fc7"]);
        util::assert_close("bn logits", &logits.unwrap(), &r["logits"]);
    }
}

#[test]
fn full_size_parameter_counts() {
    assert_eq!(imagenet_param_count(ConfigName::D), 138_357_544);
    assert_eq!(imagenet_param_count(ConfigName::E), 143_667_240);
}

#[test]
fn save_and_reload_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let w = weights::load(&util::tiny().join("weights_timm.safetensors"), &Device::Cpu).unwrap();
    let p = d.path().join("re.safetensors");
    let meta = [("preprocess".to_string(), "caffe".to_string())]
        .into_iter()
        .collect();
    weights::save_torchvision(&w, &p, &meta).unwrap();
    let r = weights::load(&p, &Device::Cpu).unwrap();
    assert_eq!(r.naming, weights::Naming::Torchvision);
    assert_eq!(
        r.metadata.get("preprocess").map(String::as_str),
        Some("caffe")
    );
    util::assert_close(
        "fc6",
        &r.head.as_ref().unwrap().fc6.weight,
        &w.head.as_ref().unwrap().fc6.weight,
    );
}
