//! Numerical agreement with PyTorch (`../shared/fixtures`, made by `gen_reference.py` there):
//! the network from the stored inputs within 1e-4 relative (PROTOCOL.md), every checkpoint
//! spelling, both engines.

use candle_core::{Device, Tensor};
use vggfeat::model::checkpoint;
use vggfeat::model::config::{ConfigName, LayerName};
use vggfeat::model::{Engine, Vgg};
use vggfeat::model::{InitScheme, Naming, VggWeights};
use vggfeat::preprocess::{Normalization, resize_smallest_side};

use crate::util;

fn nets(file: &str) -> Vec<Vgg> {
    let w = checkpoint::load(&util::tiny().join(file), &Device::Cpu).unwrap();
    assert_eq!(w.config, ConfigName::D);
    [Engine::Candle, Engine::Fast, Engine::FastGemm]
        .into_iter()
        .map(|e| Vgg::new(w.clone(), &Device::Cpu, e).unwrap())
        .collect()
}

fn check_tiny(file: &str, naming: Naming) {
    let r = util::reference(&util::tiny());
    for net in nets(file) {
        assert_eq!(net.weights().naming, naming);
        let tag = format!("{file} {net:?}");
        // The classic fixed-size path, as one batch of 3.
        let (fc7, logits) = net.forward_classic(&r["fixed224.input"]).unwrap();
        util::assert_close(&format!("{tag} fixed224.fc7"), &fc7, &r["fixed224.fc7"]);
        util::assert_close(
            &format!("{tag} fixed224.logits"),
            &logits.unwrap(),
            &r["fixed224.logits"],
        );
        // At 224 the dense head gives the same numbers as the classic path.
        let dense = net
            .forward_to(&r["fixed224.input"], LayerName::Fc7)
            .unwrap();
        util::assert_close(
            &format!("{tag} dense@224"),
            &dense.flatten_from(1).unwrap(),
            &r["fixed224.fc7"],
        );
        // Dense maps from the stored inputs (first scale).
        for i in 0..3 {
            let x = r[&format!("img{i}.q256.input")].unsqueeze(0).unwrap();
            let maps = net.forward_head_maps(&x).unwrap();
            util::assert_close(
                &format!("{tag} img{i} fc7map"),
                &maps.fc7.squeeze(0).unwrap(),
                &r[&format!("img{i}.q256.fc7map")],
            );
            util::assert_close(
                &format!("{tag} img{i} scoremap"),
                &maps.fc8.unwrap().squeeze(0).unwrap(),
                &r[&format!("img{i}.q256.scoremap")],
            );
        }
    }
}

#[test]
fn torchvision_safetensors_matches_pytorch() {
    check_tiny("weights.safetensors", Naming::Torchvision);
}

#[test]
fn timm_safetensors_matches_pytorch() {
    check_tiny("weights_timm.safetensors", Naming::Timm);
}

#[test]
fn pth_matches_pytorch() {
    check_tiny("weights.pth", Naming::Torchvision);
}

/// The second scale has no stored input: our Pillow-exact resize produces it, and the maps must
/// still agree to the network tolerance (the resize is bit-exact, see `preprocess_is_pillow_exact`).
#[test]
fn second_scale_from_png_matches_pytorch() {
    let r = util::reference(&util::tiny());
    let net = Vgg::load(&util::tiny().join("weights.safetensors"), &Device::Cpu).unwrap();
    for i in 0..3 {
        let img =
            vggfeat::image_io::load_rgb(&util::tiny().join(format!("images/{i}.png"))).unwrap();
        let s = resize_smallest_side(&img, 384);
        let x = Tensor::from_vec(
            Normalization::Torchvision.to_chw(&s, false),
            (1, 3, s.height() as usize, s.width() as usize),
            &Device::Cpu,
        )
        .unwrap();
        let maps = net.forward_head_maps(&x).unwrap();
        util::assert_close(
            &format!("img{i} q384 fc7map"),
            &maps.fc7.squeeze(0).unwrap(),
            &r[&format!("img{i}.q384.fc7map")],
        );
        util::assert_close(
            &format!("img{i} q384 scoremap"),
            &maps.fc8.unwrap().squeeze(0).unwrap(),
            &r[&format!("img{i}.q384.scoremap")],
        );
    }
}

/// Our decoder + resizer + normalisation against the stored inputs, for both conventions.
/// Tolerance: 1e-5 absolute (float rounding of the normalisation only; the resize is bit-exact).
#[test]
fn preprocess_is_pillow_exact() {
    for (dir, norm) in [
        (util::tiny(), Normalization::Torchvision),
        (util::hed_fixture(), Normalization::Caffe),
    ] {
        let r = util::reference(&dir);
        for i in 0..3 {
            let img = vggfeat::image_io::load_rgb(&dir.join(format!("images/{i}.png"))).unwrap();
            let s = resize_smallest_side(&img, 256);
            let want = &r[&format!("img{i}.q256.input")];
            assert_eq!(want.dims(), &[3, s.height() as usize, s.width() as usize]);
            let got = norm.to_chw(&s, false);
            let want = util::to_vec(want);
            let err = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-5, "{} img{i}: max error {err}", dir.display());
        }
    }
}

/// The real float16 VGG-16 conv weights reproduce PyTorch's pool5 maps.
#[test]
fn real_vgg16_conv_weights_match_pytorch_pool5() {
    let w = checkpoint::load(&util::hed_weights(), &Device::Cpu).unwrap();
    assert_eq!(w.config, ConfigName::D);
    assert_eq!(w.naming, Naming::BodyOnly);
    assert_eq!(w.dtype_on_disk, candle_core::DType::F16);
    assert_eq!(w.param_count(), 14_714_688);
    let r = util::reference(&util::hed_fixture());
    for engine in [Engine::Fast, Engine::Candle] {
        let net = Vgg::new(w.clone(), &Device::Cpu, engine).unwrap();
        assert_eq!(net.default_layer(), LayerName::Pool(5));
        for i in 0..3 {
            let x = r[&format!("img{i}.q256.input")].unsqueeze(0).unwrap();
            let p5 = net.forward_features(&x).unwrap();
            util::assert_close(
                &format!("{engine:?} img{i} pool5"),
                &p5.squeeze(0).unwrap(),
                &r[&format!("img{i}.q256.pool5map")],
            );
        }
    }
}

/// The fast path against candle's convolutions on random inputs of odd sizes, every layer kind.
#[test]
fn fast_engine_matches_candle_on_odd_sizes() {
    let w = checkpoint::load(&util::tiny().join("weights.safetensors"), &Device::Cpu).unwrap();
    let fast = Vgg::new(w.clone(), &Device::Cpu, Engine::Fast).unwrap();
    let slow = Vgg::new(w, &Device::Cpu, Engine::Candle).unwrap();
    for (n, h, wd) in [(1, 37, 45), (2, 225, 231), (1, 250, 301)] {
        let x = Tensor::randn(0f32, 1.0, (n, 3, h, wd), &Device::Cpu).unwrap();
        let mut layers = vec![
            LayerName::Conv(1, 1),
            LayerName::Conv(3, 3),
            LayerName::Pool(2),
            LayerName::Pool(5),
        ];
        if h.min(wd) >= 224 {
            layers.extend([LayerName::Fc6, LayerName::Fc7, LayerName::Fc8]);
        }
        for l in layers {
            let a = fast.forward_to(&x, l).unwrap();
            let b = slow.forward_to(&x, l).unwrap();
            util::assert_close(&format!("{n}x{h}x{wd} {l}"), &a, &b);
        }
    }
}

#[test]
fn too_small_inputs_are_refused_clearly() {
    let net = Vgg::load(&util::tiny().join("weights.safetensors"), &Device::Cpu).unwrap();
    let x = Tensor::zeros((1, 3, 100, 300), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = net.forward_to(&x, LayerName::Fc7).unwrap_err().to_string();
    assert!(e.contains("at least 224"), "{e}");
    assert!(net.forward_to(&x, LayerName::Pool(5)).is_ok());
}

#[test]
fn small_crop_head_round_trips_and_runs_densely() {
    // A net trained at crop 96 has a 3x3 fc6 (pool5 of 96 is 3x3); it saves with torchvision
    // names (fc6 a Linear over C*3*3), loads back, and runs densely from a side of 96.
    let w =
        VggWeights::random_with_fc6(ConfigName::A, 16, Some(24), 3, 5, InitScheme::He, 3).unwrap();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("k3.safetensors");
    checkpoint::save_torchvision(&w, &p, &Default::default()).unwrap();
    let back = checkpoint::load(&p, &Device::Cpu).unwrap();
    let h = back.head.as_ref().unwrap();
    assert_eq!(h.fc6_kernel(), 3);
    assert_eq!(h.fc6.weight.dims(), &[24, 32, 3, 3]);
    let a = util::to_vec(&w.head.as_ref().unwrap().fc6.weight);
    assert_eq!(a, util::to_vec(&h.fc6.weight));
    let info = vggfeat::model::describe(&back).to_string();
    assert!(info.contains("conv 3x3 + ReLU (dense head)"), "{info}");
    let fast = Vgg::new(back.clone(), &Device::Cpu, Engine::Fast).unwrap();
    let slow = Vgg::new(back, &Device::Cpu, Engine::Candle).unwrap();
    assert_eq!(slow.min_head_input(), Some(96));
    let x = Tensor::randn(0f32, 1.0, (1, 3, 100, 130), &Device::Cpu).unwrap();
    let (a, b) = (
        fast.forward_to(&x, LayerName::Fc8).unwrap(),
        slow.forward_to(&x, LayerName::Fc8).unwrap(),
    );
    assert_eq!(a.dims(), &[1, 5, 1, 2]);
    util::assert_close("k3 fc8", &a, &b);
    let small = Tensor::zeros((1, 3, 95, 200), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = slow
        .forward_to(&small, LayerName::Fc7)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 96 (pool5 of at least 3x3)"), "{e}");
}

/// `tests/data/reference/classify_tiny.json` (`scripts/torch_references.py`).
fn classify_references() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/reference/classify_tiny.json"),
        )
        .unwrap(),
    )
    .unwrap()
}

/// The paper's dense classification (`vggfeat classify`): per image, the softmax of the fc8
/// score map's mean, averaged with the flipped image's softmax, pinned against PyTorch on the fixture
/// (`scripts/torch_references.py`, Pillow's resize) within 1e-5 absolute, on every engine.
#[test]
fn dense_classification_posteriors_match_pytorch() {
    let refs = classify_references();
    let q = refs["scale"].as_u64().unwrap() as u32;
    for net in nets("weights.safetensors") {
        for i in 0..3 {
            let name = format!("{i}.png");
            let img =
                vggfeat::image_io::load_rgb(&util::tiny().join("images").join(&name)).unwrap();
            let got =
                vggfeat::classify::class_probs(&net, &img, q, Normalization::Torchvision).unwrap();
            let want: Vec<f32> = refs["posteriors"][&name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(got.len(), want.len());
            let err = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-5, "{net:?} {name}: max |p - p_torch| = {err}");
        }
    }
}

fn posteriors_of(refs: &serde_json::Value, name: &str) -> Vec<f32> {
    refs["posteriors"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Multi-crop classification: the posteriors of 224 x 224 crops on a regular grid (each with its
/// flip) averaged, pinned against PyTorch for the same crops of Pillow-resized images
/// (`scripts/torch_references.py`) within 1e-4, on every engine: a 5 x 5 grid at Q = 256 (the
/// paper's 50 crops of a scale) and a 3 x 3 grid at Q = 240.
#[test]
fn multi_crop_posteriors_match_pytorch() {
    let refs = classify_references();
    let cases = refs["crops"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    let mut worst = 0f32;
    for net in nets("weights.safetensors") {
        for case in cases {
            let (q, grid) = (
                case["scale"].as_u64().unwrap() as u32,
                case["grid"].as_u64().unwrap() as u32,
            );
            for i in 0..3 {
                let name = format!("{i}.png");
                let img =
                    vggfeat::image_io::load_rgb(&util::tiny().join("images").join(&name)).unwrap();
                let got =
                    vggfeat::classify::crop_probs(&net, &img, q, Normalization::Torchvision, grid)
                        .unwrap();
                let err = max_abs(&got, &posteriors_of(case, &name));
                worst = worst.max(err);
                assert!(
                    err <= 1e-4,
                    "{net:?} {name} Q {q} grid {grid}: max |p - p_torch| = {err}"
                );
            }
        }
    }
    eprintln!("multi-crop posteriors vs PyTorch: max |p - p_torch| = {worst:.2e}");
}

/// Dense + multi-crop is the mean of the two methods' posteriors, several scales the mean over
/// scales, and the fusion of two nets the mean of their posteriors.
#[test]
fn combined_evaluations_and_fusion_average_posteriors() {
    use vggfeat::classify::{ClassNet, Evaluation, class_probs, crop_probs, posteriors};
    let a = nets("weights.safetensors").remove(1);
    // A second, different net: the fixture with its class scores negated.
    let mut w = a.weights().clone();
    let h = w.head.as_mut().unwrap();
    let f8 = h.fc8.as_mut().unwrap();
    f8.weight = f8.weight.neg().unwrap();
    let b = Vgg::new(w, &Device::Cpu, Engine::Fast).unwrap();
    let norm = Normalization::Torchvision;
    let img = vggfeat::image_io::load_rgb(&util::tiny().join("images/0.png")).unwrap();
    let mean = |v: &[Vec<f32>]| -> Vec<f32> {
        (0..v[0].len())
            .map(|j| v.iter().map(|p| p[j]).sum::<f32>() / v.len() as f32)
            .collect()
    };
    let eval = Evaluation {
        scales: vec![224, 256],
        dense: true,
        crops: Some(2),
    };
    let one = |n: &Vgg| {
        let dense = mean(&[
            class_probs(n, &img, 224, norm).unwrap(),
            class_probs(n, &img, 256, norm).unwrap(),
        ]);
        let crops = mean(&[
            crop_probs(n, &img, 224, norm, 2).unwrap(),
            crop_probs(n, &img, 256, norm, 2).unwrap(),
        ]);
        mean(&[dense, crops])
    };
    let (pa, pb) = (one(&a), one(&b));
    let single = posteriors(&[ClassNet { net: &a, norm }], &img, &eval).unwrap();
    assert!(max_abs(&single, &pa) <= 1e-6);
    let fused = posteriors(
        &[ClassNet { net: &a, norm }, ClassNet { net: &b, norm }],
        &img,
        &eval,
    )
    .unwrap();
    assert!(max_abs(&pa, &pb) > 0.01, "the two nets should disagree");
    assert!(max_abs(&fused, &mean(&[pa, pb])) <= 1e-6);
    assert!((fused.iter().sum::<f32>() - 1.0).abs() <= 1e-5);
}

#[test]
fn crop_grid_spans_the_image() {
    use vggfeat::classify::crop_grid;
    let g = crop_grid(341, 256, 224, 5);
    assert_eq!(g.len(), 25);
    assert_eq!(g[0], (0, 0));
    assert_eq!(g[24], (117, 32));
    // round(i * 117 / 4): 0, 29.25, 58.5, 87.75, 117 (halves away from zero).
    let xs: Vec<u32> = g[..5].iter().map(|c| c.0).collect();
    assert_eq!(xs, [0, 29, 59, 88, 117]);
    assert_eq!(crop_grid(300, 224, 224, 1), [(38, 0)]);
    assert_eq!(crop_grid(224, 224, 224, 3), vec![(0, 0); 9]);
}

/// `--precision bf16` from the stored inputs (the network alone): the per-scale descriptor (the
/// flip-averaged spatial mean of vgg-d-tiny's fc7 and of the real VGG-16 conv weights' pool5)
/// within 1e-2 relative L2 of PyTorch's f32 `desc`, and the maps within 3e-2, on both fast
/// engines. On a CPU with AVX512-BF16 (asked of the CPU, not inferred from an error) the bf16
/// kernel must run: its maps differ from the f32 engine's by more than f32 rounding (1e-5) and
/// less than 3e-2. On a CPU without it, the request must be refused naming AVX512-BF16.
#[test]
fn bf16_per_scale_descriptors_match_pytorch_within_1e_2() {
    use vggfeat::descriptor::{flip_average, spatial_mean};
    use vggfeat::model::{Precision, RunOptions};
    let tiny = checkpoint::load(&util::tiny().join("weights.safetensors"), &Device::Cpu).unwrap();
    let hed = checkpoint::load(&util::hed_weights(), &Device::Cpu).unwrap();
    let bf16 = |engine| RunOptions {
        engine,
        precision: Precision::Bf16,
    };
    if !util::has_bf16() {
        let e = Vgg::new(tiny.clone(), &Device::Cpu, bf16(Engine::Fast)).unwrap_err();
        assert!(e.to_string().contains("AVX512-BF16"), "{e}");
        eprintln!("skipped: bf16 descriptors (this CPU lacks AVX512-BF16; the refusal checked)");
        return;
    }
    let mut worst = (0f32, 0f32);
    let mut least_from_f32 = f32::INFINITY;
    for (w, fixture, layer, map_key) in [
        (&tiny, util::tiny(), LayerName::Fc7, "fc7map"),
        (&hed, util::hed_fixture(), LayerName::Pool(5), "pool5map"),
    ] {
        let r = util::reference(&fixture);
        for engine in [Engine::Fast, Engine::FastGemm] {
            let net = Vgg::new(w.clone(), &Device::Cpu, bf16(engine)).unwrap();
            for i in 0..3 {
                let x = r[&format!("img{i}.q256.input")].unsqueeze(0).unwrap();
                let both = Tensor::cat(&[&x, &x.flip(&[3]).unwrap()], 0).unwrap();
                let map = net.forward_map(&both, layer).unwrap();
                let means = spatial_mean(&map);
                let desc = flip_average(&means[0], &means[1]);
                let want = util::to_vec(&r[&format!("img{i}.q256.desc")]);
                let tag = format!("bf16 {engine:?} {} img{i}", fixture.display());
                let e = util::assert_rel_l2(&format!("{tag} desc"), &desc, &want, 1e-2);
                let got_map = net.forward_to(&x, layer).unwrap();
                let f32_net = Vgg::new(
                    w.clone(),
                    &Device::Cpu,
                    RunOptions {
                        engine,
                        precision: Precision::F32,
                    },
                )
                .unwrap();
                let f32_map = f32_net.forward_to(&x, layer).unwrap();
                let from_f32 = util::assert_rel_l2(
                    &format!("{tag} {map_key} vs f32"),
                    &util::to_vec(&got_map),
                    &util::to_vec(&f32_map),
                    3e-2,
                );
                least_from_f32 = least_from_f32.min(from_f32);
                let m = util::assert_rel_l2(
                    &format!("{tag} {map_key}"),
                    &util::to_vec(&got_map.squeeze(0).unwrap()),
                    &util::to_vec(&r[&format!("img{i}.q256.{map_key}")]),
                    3e-2,
                );
                worst = (worst.0.max(e), worst.1.max(m));
            }
        }
    }
    assert!(
        least_from_f32 > 1e-5,
        "bf16 maps within {least_from_f32:.1e} of f32's: the bf16 kernel did not run"
    );
    eprintln!(
        "bf16: largest relative L2 error of a per-scale descriptor {:.2e}, of a map {:.2e}; \
         smallest distance of a bf16 map from f32's {least_from_f32:.2e}",
        worst.0, worst.1
    );
}

/// A net whose metadata says `vggfeat.fc6_input = sqrt` (`vggfeat train --fc6-input sqrt`):
/// every engine's head equals a plain matrix product of the element-wise root of its own pool5
/// (which the tests above pin against PyTorch), to the network tolerance; an unknown transform
/// is refused naming the file.
#[test]
fn square_rooted_fc6_input_is_applied_by_every_engine() {
    let r = util::reference(&util::tiny());
    let mut w = checkpoint::load(&util::tiny().join("weights.safetensors"), &Device::Cpu).unwrap();
    w.metadata.insert("vggfeat.fc6_input".into(), "sqrt".into());
    let x = &r["fixed224.input"];
    for engine in [Engine::Candle, Engine::Fast, Engine::FastGemm] {
        let net = Vgg::new(w.clone(), &Device::Cpu, engine).unwrap();
        let head = net.weights().head.as_ref().unwrap();
        let fc = |x: &Tensor, p: &vggfeat::model::ConvParams, relu: bool| {
            let wt = p.weight.flatten_from(1).unwrap().t().unwrap();
            let y = x.matmul(&wt).unwrap().broadcast_add(&p.bias).unwrap();
            if relu { y.relu().unwrap() } else { y }
        };
        let p5 = net.forward_features(x).unwrap();
        let rooted = p5.sqrt().unwrap().flatten_from(1).unwrap();
        let fc7 = fc(&fc(&rooted, &head.fc6, true), &head.fc7, true);
        let logits = fc(&fc7, head.fc8.as_ref().unwrap(), false);
        let dense = net.forward_to(x, LayerName::Fc8).unwrap();
        util::assert_close(
            &format!("{engine:?} sqrt head"),
            &dense.flatten_from(1).unwrap(),
            &logits,
        );
        // Not the identity head's numbers.
        let d = (dense.flatten_from(1).unwrap() - &r["fixed224.logits"])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d > 1e-2, "{engine:?}: the root changed nothing ({d})");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.safetensors");
    let mut meta = w.metadata.clone();
    meta.insert("vggfeat.fc6_input".into(), "cube".into());
    checkpoint::save_torchvision(&w, &bad, &meta).unwrap();
    let e = checkpoint::load(&bad, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.safetensors") && e.contains("cube"), "{e}");
}
