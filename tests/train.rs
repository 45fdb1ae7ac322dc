//! Training: the optimiser, loss and gradients drive a tiny network to fit a handful of images;
//! a resumed run equals an uninterrupted one bit for bit; checkpoints load as networks; the
//! initialisations copy what they say; frozen layers stay fixed.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vggfeat::model::checkpoint as weights;
use vggfeat::model::config::{ConfigName, LayerName};
use vggfeat::model::{Engine, Vgg};
use vggfeat::model::{InitScheme, VggWeights};
use vggfeat::train::net::{self, Init, NetShape, TrainNet};
use vggfeat::train::optim::{GradAccum, OptimParams, Optimizer};
use vggfeat::train::{Targets, TrainParams, TrainValidParams, Trainer};
use vggfeat::util::Silent;

use crate::util;

fn vals(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// One SGD step on a batch; returns the loss before the step.
fn step(net: &TrainNet, opt: &mut Optimizer, x: &Tensor, y: &Tensor) -> f32 {
    let logits = net.forward(x, None::<&mut ChaCha8Rng>).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, y).unwrap();
    let mut acc = GradAccum::new(opt.params().len());
    acc.add(opt.params(), &loss.backward().unwrap()).unwrap();
    opt.step(&acc).unwrap();
    loss.to_scalar::<f32>().unwrap()
}

#[test]
fn tiny_net_drives_the_loss_of_a_handful_of_images_near_zero() {
    let w =
        VggWeights::random_with_fc6(ConfigName::A, 16, Some(32), 1, 4, InitScheme::He, 0).unwrap();
    let net = TrainNet::new(w, &Device::Cpu, Vec::new(), 0.0, false).unwrap();
    let mut opt = Optimizer::new(
        net.params().to_vec(),
        OptimParams {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let xv: Vec<f32> = (0..8 * 3 * 32 * 32)
        .map(|_| rng.gen_range(-1.0f32..1.0))
        .collect();
    let x = Tensor::from_vec(xv, (8, 3, 32, 32), &Device::Cpu).unwrap();
    let y = Tensor::new(&[0u32, 1, 2, 3, 0, 1, 2, 3], &Device::Cpu).unwrap();
    let first = step(&net, &mut opt, &x, &y);
    let mut last = first;
    let t = std::time::Instant::now();
    for i in 0..150 {
        last = step(&net, &mut opt, &x, &y);
        if i % 10 == 0 {
            eprintln!("{i} {last} {:?}", t.elapsed());
        }
    }
    eprintln!("loss {first} -> {last}");
    assert!(first > 1.0, "starts near ln 4: {first}");
    assert!(
        last < 0.05,
        "the net should memorise 8 images: loss {first} -> {last}"
    );
}

fn tiny_builder(data: &Path, out: &Path, epochs: usize) -> TrainParams {
    TrainParams::new()
        .data(data)
        .out(out)
        .config(Some(ConfigName::A))
        .init_scheme(InitScheme::He)
        .width_div(16)
        .fc_width(Some(16))
        .crop(32)
        .scale("32:40".parse().unwrap())
        .batch(6)
        .micro_batch(4)
        .epochs(epochs)
        .patience(1)
        .pca_images(4)
        .train_per_class(5)
        .val_per_class(Some(3))
        .split_seed(3)
        .seed(5)
}

fn tiny_params(data: &Path, out: &Path, epochs: usize) -> TrainValidParams {
    tiny_builder(data, out, epochs).check().unwrap()
}

fn tensors(p: &Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    weights::read_raw(p)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(k, v)| (k, vals(&v)))
        .collect()
}

/// Runs `params` for 3 epochs straight and for 1 epoch then resumed to 3, in `d`'s folders
/// `straight` and `resumed`, and asserts that both end bit for bit the same (weights, momentum
/// buffers, best weights, metrics up to the timings); returns the two folders.
fn assert_resume_is_exact(
    d: &Path,
    params: impl Fn(&Path, usize) -> TrainValidParams,
) -> (PathBuf, PathBuf) {
    let (one, two) = (d.join("straight"), d.join("resumed"));
    let straight = Trainer::new(params(&one, 3))
        .unwrap()
        .run(&Silent, |_| {})
        .unwrap();
    assert_eq!(straight.epochs, 3);
    Trainer::new(params(&two, 1))
        .unwrap()
        .run(&Silent, |_| {})
        .unwrap();
    let mut t = Trainer::resume(&two, Some(3)).unwrap();
    assert_eq!(t.state().epoch, 1);
    let resumed = t.run(&Silent, |_| {}).unwrap();
    assert_eq!(resumed.epochs, 3);
    for file in [
        "model.safetensors",
        "optimizer.safetensors",
        "best.safetensors",
    ] {
        let (a, b) = (tensors(&one.join(file)), tensors(&two.join(file)));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (k, v) in &a {
            assert!(v == &b[k], "{file} {k} differs after resuming");
        }
    }
    let strip = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p.join("metrics.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(strip(&one), strip(&two));
    assert_eq!(strip(&one).len(), 4);
    (one, two)
}

#[test]
fn resuming_after_epoch_k_gives_the_weights_of_an_uninterrupted_run() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    util::synthetic_dataset(&data, 3, 8);
    let (one, _) = assert_resume_is_exact(d.path(), |out, e| tiny_params(&data, out, e));
    // The weights moved: training happened.
    let t0 = Trainer::new(tiny_params(&data, &d.path().join("init"), 1)).unwrap();
    let w0 = t0.net().snapshot().unwrap();
    let a = tensors(&one.join("model.safetensors"));
    assert_ne!(a["features.0.weight"], vals(&w0.convs[0].weight));
    // A run folder is not overwritten, and resuming a folder without a run names the file.
    let e = Trainer::new(tiny_params(&data, &one, 3))
        .unwrap_err()
        .to_string();
    assert!(e.contains("already holds a run"), "{e}");
    let e = Trainer::resume(&d.path().join("nothing"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("params.json"), "{e}");
}

#[test]
fn a_run_on_cached_frozen_outputs_resumes_exactly_and_trains_only_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    util::synthetic_dataset(&data, 3, 8);
    let cached = |out: &Path, e: usize| {
        tiny_builder(&data, out, e)
            .freeze_through(Some("pool3".parse().unwrap()))
            .cache_frozen(3)
            .cache_dir(Some(d.path().join("cache")))
            .check()
            .unwrap()
    };
    // The second run and the resumed one read the first one's saved cache (the same values it
    // computed, so the key is the same): the runs stay bit-exact.
    let (one, _) = assert_resume_is_exact(d.path(), cached);
    let saved: Vec<PathBuf> = std::fs::read_dir(d.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let name = saved[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("frozen-") && name.ends_with(".safetensors"),
        "{name}"
    );
    // Another seed draws other variants: another key, another file.
    let other = d.path().join("other");
    let params = tiny_builder(&data, &other, 1)
        .seed(6)
        .freeze_through(Some("pool3".parse().unwrap()))
        .cache_frozen(3)
        .cache_dir(Some(d.path().join("cache")));
    Trainer::new(params.check().unwrap())
        .unwrap()
        .run(&Silent, |_| {})
        .unwrap();
    assert_eq!(
        std::fs::read_dir(d.path().join("cache")).unwrap().count(),
        2
    );
    // A damaged cache file is an error naming it, not silently recomputed.
    std::fs::write(&saved[0], b"not safetensors").unwrap();
    let e = Trainer::new(cached(&d.path().join("damaged"), 1))
        .unwrap()
        .run(&Silent, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains(&name) && e.contains("delete it"), "{e}");
    let t0 = Trainer::new(cached(&d.path().join("init"), 1)).unwrap();
    let w0 = t0.net().snapshot().unwrap();
    let a = tensors(&one.join("model.safetensors"));
    // Frozen layers kept, the rest trained.
    assert_eq!(a["features.0.weight"], vals(&w0.convs[0].weight));
    assert_ne!(a["features.11.weight"], vals(&w0.convs[4].weight));
    // Training on the cached variants is another run than augmenting afresh every epoch.
    let fresh = d.path().join("fresh");
    Trainer::new(
        tiny_builder(&data, &fresh, 3)
            .freeze_through(Some("pool3".parse().unwrap()))
            .check()
            .unwrap(),
    )
    .unwrap()
    .run(&Silent, |_| {})
    .unwrap();
    assert_ne!(
        a["features.11.weight"],
        tensors(&fresh.join("model.safetensors"))["features.11.weight"]
    );
}
#[test]
fn the_checkpoint_is_a_network_that_info_and_classify_accept() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    util::synthetic_dataset(&data, 3, 8);
    let out = d.path().join("run");
    let s = Trainer::new(tiny_params(&data, &out, 2))
        .unwrap()
        .run(&Silent, |_| {})
        .unwrap();
    assert!(s.best_epoch >= 1 && s.best_top1_err <= 1.0 && s.best_top5_err == 0.0);
    let w = weights::load(&out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(w.config, ConfigName::A);
    assert_eq!(w.num_classes(), Some(3));
    assert_eq!(w.head.as_ref().unwrap().fc6_kernel(), 1);
    assert_eq!(w.metadata["preprocess"], "torchvision");
    assert_eq!(
        w.metadata["vggfeat.classes"],
        r#"["class0","class1","class2"]"#
    );
    let info = vggfeat::model::describe(&w).to_string();
    assert!(info.contains("classes:       3"), "{info}");
    let net = Vgg::new(w, &Device::Cpu, Engine::Auto).unwrap();
    assert_eq!(net.min_head_input(), Some(32));
    let img = data.join("class1/img00.png");
    let nets = [vggfeat::classify::ClassNet {
        net: &net,
        norm: vggfeat::preprocess::Normalization::Torchvision,
    }];
    let eval = vggfeat::classify::Evaluation {
        scales: vec![36],
        ..Default::default()
    };
    let preds =
        vggfeat::classify::classify_file(&nets, &img, &eval, 3, &Default::default()).unwrap();
    assert_eq!(preds.len(), 3);
    assert!((preds.iter().map(|p| p.prob).sum::<f32>() - 1.0).abs() < 1e-5);
    // The run folder: split, parameters, log, plot.
    let split = std::fs::read_to_string(out.join("split.csv")).unwrap();
    assert!(split.starts_with("id,label,set\n"));
    assert_eq!(split.lines().filter(|l| l.ends_with(",train")).count(), 15);
    assert_eq!(split.lines().filter(|l| l.ends_with(",test")).count(), 9);
    let params: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("params.json")).unwrap()).unwrap();
    assert_eq!(params["resolved"]["fc6_kernel"], 1);
    assert_eq!(params["params"]["crop"], 32);
    assert!(out.join("metrics.svg").exists() && out.join("state.json").exists());
}

fn save(w: &VggWeights, p: &Path) {
    weights::save_torchvision(w, p, &Default::default()).unwrap();
}

#[test]
fn pretrained_copies_every_layer_but_fc8_which_gets_the_new_classes() {
    let d = tempfile::tempdir().unwrap();
    let src =
        VggWeights::random_with_fc6(ConfigName::D, 16, Some(16), 2, 7, InitScheme::He, 1).unwrap();
    let p = d.path().join("src.safetensors");
    save(&src, &p);
    let loaded = weights::load(&p, &Device::Cpu).unwrap();
    let shape = NetShape {
        config: ConfigName::D,
        width_div: 16,
        fc_width: 16,
        fc6_kernel: 2,
        classes: 3,
    };
    let (w, report) = net::initial_weights(
        &Init::Pretrained(p.clone()),
        Some(&loaded),
        shape,
        InitScheme::Paper,
        9,
    )
    .unwrap();
    assert_eq!(report.random, vec!["fc8"]);
    assert_eq!(report.copied.len(), 13 + 2);
    for (a, b) in w.convs.iter().zip(&src.convs) {
        assert_eq!(vals(&a.weight), vals(&b.weight), "{}", a.name);
        assert_eq!(vals(&a.bias), vals(&b.bias), "{}", a.name);
    }
    let (h, sh) = (w.head.as_ref().unwrap(), src.head.as_ref().unwrap());
    assert_eq!(vals(&h.fc6.weight), vals(&sh.fc6.weight));
    assert_eq!(vals(&h.fc7.weight), vals(&sh.fc7.weight));
    let f8 = h.fc8.as_ref().unwrap();
    assert_eq!(f8.weight.dims(), &[3, 16, 1, 1]);
    assert_eq!(w.num_classes(), Some(3));
    // A crop whose fc6 does not fit keeps the body and draws fc6 anew.
    let (_, r) = net::initial_weights(
        &Init::Pretrained(p.clone()),
        Some(&loaded),
        NetShape {
            fc6_kernel: 3,
            ..shape
        },
        InitScheme::Paper,
        9,
    )
    .unwrap();
    assert_eq!(r.random, vec!["fc6", "fc8"]);
    // Nothing fits at another width: an error naming the file.
    let e = net::initial_weights(
        &Init::Pretrained(p.clone()),
        Some(&loaded),
        NetShape {
            width_div: 8,
            ..shape
        },
        InitScheme::Paper,
        9,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("src.safetensors") && e.contains("the width divisor"),
        "{e}"
    );
}

#[test]
fn shallower_copies_four_convs_and_the_fc_layers_by_name() {
    let d = tempfile::tempdir().unwrap();
    let a =
        VggWeights::random_with_fc6(ConfigName::A, 16, Some(16), 2, 5, InitScheme::He, 1).unwrap();
    let p = d.path().join("a.safetensors");
    save(&a, &p);
    let loaded = weights::load(&p, &Device::Cpu).unwrap();
    let shape = NetShape {
        config: ConfigName::E,
        width_div: 16,
        fc_width: 16,
        fc6_kernel: 2,
        classes: 5,
    };
    let (w, report) = net::initial_weights(
        &Init::Shallower(p),
        Some(&loaded),
        shape,
        InitScheme::Paper,
        2,
    )
    .unwrap();
    assert_eq!(
        report.copied,
        [
            "conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8"
        ]
    );
    for name in ["conv1_1", "conv2_1", "conv3_1", "conv3_2"] {
        let l: LayerName = name.parse().unwrap();
        let (x, y) = (
            w.convs.iter().find(|c| c.name == l).unwrap(),
            a.convs.iter().find(|c| c.name == l).unwrap(),
        );
        assert_eq!(vals(&x.weight), vals(&y.weight), "{name}");
    }
    let c12 = w
        .convs
        .iter()
        .find(|c| c.name == LayerName::Conv(1, 2))
        .unwrap();
    assert!(report.random.contains(&"conv1_2".to_string()));
    assert_eq!(c12.weight.dims(), &[4, 4, 3, 3]);
    let f8 = w.head.as_ref().unwrap().fc8.as_ref().unwrap();
    assert_eq!(
        vals(&f8.weight),
        vals(&a.head.as_ref().unwrap().fc8.as_ref().unwrap().weight)
    );
}

#[test]
fn frozen_layers_stay_fixed_while_the_rest_trains() {
    let w =
        VggWeights::random_with_fc6(ConfigName::A, 16, Some(16), 1, 3, InitScheme::He, 0).unwrap();
    let frozen = net::frozen_layers(ConfigName::A, "pool4".parse().unwrap()).unwrap();
    let net = TrainNet::new(w.clone(), &Device::Cpu, frozen, 0.0, false).unwrap();
    let mut opt = Optimizer::new(net.params().to_vec(), OptimParams::default()).unwrap();
    let x = Tensor::randn(0f32, 1.0, (4, 3, 32, 32), &Device::Cpu).unwrap();
    let y = Tensor::new(&[0u32, 1, 2, 0], &Device::Cpu).unwrap();
    for _ in 0..3 {
        step(&net, &mut opt, &x, &y);
    }
    let after = net.snapshot().unwrap();
    for (a, b) in after.convs.iter().zip(&w.convs) {
        let same = vals(&a.weight) == vals(&b.weight);
        let frozen = matches!(a.name, LayerName::Conv(b, _) if b <= 4);
        assert_eq!(same, frozen, "{}", a.name);
    }
    let (h, h0) = (after.head.as_ref().unwrap(), w.head.as_ref().unwrap());
    assert_ne!(vals(&h.fc6.weight), vals(&h0.fc6.weight));
    // Freezing through fc7 leaves only fc8 to train.
    let net = TrainNet::new(
        w.clone(),
        &Device::Cpu,
        net::frozen_layers(ConfigName::A, LayerName::Fc7).unwrap(),
        0.0,
        false,
    )
    .unwrap();
    let names: Vec<&str> = net.params().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["fc8.weight", "fc8.bias"]);
}

#[test]
fn invalid_parameters_are_refused_with_reasons() {
    let ok = tiny_builder(Path::new("d"), Path::new("o"), 1);
    let cases: [(TrainParams, &str); 11] = [
        (
            ok.clone().fc6_input(vggfeat::model::Fc6Input::Sqrt),
            "invalid fc6_input: sqrt needs every conv frozen",
        ),
        (ok.clone().crop(100), "multiple of 32"),
        (ok.clone().scale("24".parse().unwrap()), "below the crop"),
        (ok.clone().micro_batch(7), "micro-batch"),
        (ok.clone().config(None), "configuration is required"),
        (
            ok.clone().freeze_through(Some("conv1_2".parse().unwrap())),
            "no such layer",
        ),
        (
            ok.clone().cache_frozen(2),
            "invalid cache_frozen: caches the frozen layers",
        ),
        (
            ok.clone().cache_dir(Some("c".into())),
            "invalid cache_dir: keeps the frozen cache",
        ),
        (
            ok.clone()
                .freeze_through(Some("pool2".parse().unwrap()))
                .cache_frozen(65),
            "at most 64",
        ),
        (
            ok.clone()
                .freeze_through(Some("pool2".parse().unwrap()))
                .cache_frozen(2)
                .engine(Engine::Candle),
            "needs the fast training backend",
        ),
        // A resumed run continues exactly: the parameter that would change it is named.
        (
            TrainParams::new()
                .init(Init::Resume("run".into()))
                .epochs(3)
                .lr(0.1),
            "invalid lr: resume:run continues that run exactly",
        ),
    ];
    assert!(ok.check().is_ok());
    for (p, want) in cases {
        let e = p.check().unwrap_err().to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
}

#[test]
fn init_schemes_draw_the_documented_scales() {
    let std = |t: &Tensor| {
        let v = vals(t);
        let m = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt()
    };
    let w = |s: InitScheme| {
        VggWeights::random_with_fc6(ConfigName::A, 4, Some(256), 1, 10, s, 0).unwrap()
    };
    let tv = w("torchvision".parse().unwrap());
    let h = tv.head.as_ref().unwrap();
    // convs: He with fan-out (out * 3 * 3); fc layers: N(0, 0.01^2)
    let c = &tv.convs[2]; // conv3_1 of A /4: (64, 32, 3, 3)
    let want = (2.0f32 / (64.0 * 9.0)).sqrt();
    assert!(
        (std(&c.weight) / want - 1.0).abs() < 0.05,
        "{}",
        std(&c.weight)
    );
    for fc in [&h.fc6, &h.fc7] {
        assert!(
            (std(&fc.weight) / 0.01 - 1.0).abs() < 0.05,
            "{}",
            std(&fc.weight)
        );
    }
    let he = w(InitScheme::He);
    let want = (2.0f32 / (32.0 * 9.0)).sqrt(); // fan-in
    assert!((std(&he.convs[2].weight) / want - 1.0).abs() < 0.05);
    let paper = w(InitScheme::Paper);
    assert!((std(&paper.convs[2].weight) / 0.01 - 1.0).abs() < 0.05);
    assert!(vals(&paper.convs[2].bias).iter().all(|b| *b == 0.0));
    assert!("lecun".parse::<InitScheme>().is_err());
}

/// One training step of the fixture `vgg-d-tiny` (configuration D, widths / 16, 224 x 224,
/// 3 images, no dropout) against PyTorch (`scripts/torch_train_reference.py` made
/// `tests/data/reference/train_step_d_tiny.safetensors`): the loss, the scores and every
/// parameter's gradient, on both engines. Tolerance: max |a - b| <= 1e-4 x max |b| per tensor
/// (the fixtures' network tolerance; the fast engine's Winograd F(4x4, 3x3) forward and
/// backward stay within it).
#[test]
fn a_training_step_matches_pytorch_on_the_fixture_net() {
    let refs = candle_core::safetensors::load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/reference/train_step_d_tiny.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let inputs = util::reference(&util::tiny());
    let x = &inputs["fixed224.input"];
    let w = weights::load(&util::tiny().join("weights.safetensors"), &Device::Cpu).unwrap();
    for engine in [Engine::Fast, Engine::Candle] {
        let mut net = TrainNet::new(w.clone(), &Device::Cpu, Vec::new(), 0.5, false).unwrap();
        net.set_engine(engine).unwrap();
        let r = net
            .backprop(
                x,
                &Targets::Classes(vec![3, 7, 1]),
                None::<&mut ChaCha8Rng>,
                1.0,
            )
            .unwrap();
        let what = |s: &str| format!("{engine:?} {s}");
        let loss = refs["loss"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        assert!(
            (r.loss - loss).abs() <= 1e-4 * loss.abs(),
            "{}",
            what("loss")
        );
        close_to(what("logits"), &r.logits, &refs["logits"]);
        assert_eq!(r.grads.len(), net.params().len());
        for (g, p) in r.grads.iter().zip(net.params()) {
            close_to(what(&p.name), g.as_ref().unwrap(), &refs[&p.name]);
        }
    }
}

/// max |a - b| <= 1e-4 x max |b| (the fixtures' network tolerance), and `b` not all zero.
fn close_to(what: String, a: &Tensor, b: &Tensor) {
    assert_eq!(a.dims(), b.dims(), "{what}");
    let (a, b) = (vals(a), vals(b));
    let max = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(max > 0.0 && err <= 1e-4 * max, "{what}: {err:e} of {max:e}");
}

/// The localisation objective against PyTorch (`scripts/torch_box_loss_reference.py` made
/// `tests/data/reference/box_step_d_tiny.safetensors`): the fixture `vgg-d-tiny` with its fc8
/// replaced by the script's seeded box layer, the Euclidean loss on per-class (2 classes, 8
/// outputs) and single-class (4 outputs) regression, 3 images, no dropout; the loss, the outputs
/// and every gradient on both engines, within the same 1e-4 as the classification step.
#[test]
fn a_box_regression_step_matches_pytorch_on_the_fixture_net() {
    let refs = candle_core::safetensors::load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/reference/box_step_d_tiny.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let inputs = util::reference(&util::tiny());
    let x = &inputs["fixed224.input"];
    let boxes = vec![
        [0.5, 0.4, 0.8, 0.6],
        [0.2, 0.7, 0.3, 0.5],
        [0.6, 0.5, 1.0, 0.9],
    ];
    for (head, classes) in [("pcr", Some(vec![1, 0, 1])), ("scr", None)] {
        let mut w = weights::load(&util::tiny().join("weights.safetensors"), &Device::Cpu).unwrap();
        let fc8 = w.head.as_mut().unwrap().fc8.as_mut().unwrap();
        fc8.weight = refs[&format!("{head}.fc8_init.weight")].clone();
        fc8.bias = refs[&format!("{head}.fc8_init.bias")].clone();
        let targets = Targets::Boxes {
            boxes: boxes.clone(),
            classes,
        };
        for engine in [Engine::Fast, Engine::Candle] {
            let mut net = TrainNet::new(w.clone(), &Device::Cpu, Vec::new(), 0.5, false).unwrap();
            net.set_engine(engine).unwrap();
            let r = net
                .backprop(x, &targets, None::<&mut ChaCha8Rng>, 1.0)
                .unwrap();
            let what = |s: &str| format!("{head} {engine:?} {s}");
            let loss = vals(&refs[&format!("{head}.loss")])[0];
            assert!(
                (r.loss - loss).abs() <= 1e-4 * loss.abs(),
                "{}: {} vs {loss}",
                what("loss"),
                r.loss
            );
            close_to(
                what("outputs"),
                &r.logits,
                &refs[&format!("{head}.outputs")],
            );
            assert_eq!(r.grads.len(), net.params().len());
            for (g, p) in r.grads.iter().zip(net.params()) {
                let want = &refs[&format!("{head}.{}", p.name)];
                close_to(what(&p.name), g.as_ref().unwrap(), want);
            }
        }
    }
}
