//! Localisation: training runs and `vggfeat localise` on small synthetic devkits, and the
//! arithmetic (IoU, OverFeat's greedy merging, ILSVRC's localisation error) against the
//! independent reference `scripts/localisation_reference.py`, whose seeded cases and
//! answers are committed as tests/golden/localisation_reference.json (CI regenerates it with
//! `--check`). Tolerance: 1e-9 relative on coordinates and scores (the reference sums a group's
//! members afresh, the Rust code keeps running sums); errors compare exactly.

use std::path::Path;

use candle_core::Device;
use serde_json::Value;
use vggfeat::localise::{
    Guess, LocProtocol, Rect, Regression, ScoredBox, Truth, greedy_merge, gt_class_error,
    localisation_error,
};
use vggfeat::model::config::ConfigName;
use vggfeat::model::{Fc6Input, InitScheme};
use vggfeat::train::optim::Method;
use vggfeat::train::{Init, Task, Trainer};
use vggfeat::util::Silent;

use crate::util;

fn reference() -> Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/localisation_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn rect(v: &Value) -> Rect {
    let a: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    Rect::new(a[0], a[1], a[2], a[3])
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn iou_matches_the_reference() {
    let r = reference();
    let cases = r["iou"].as_array().unwrap();
    assert!(cases.len() >= 100);
    let mut overlapping = 0;
    for c in cases {
        let want = c["iou"].as_f64().unwrap();
        let got = rect(&c["a"]).iou(&rect(&c["b"]));
        assert!(close(got, want), "{c}: {got} vs {want}");
        overlapping += usize::from(want > 0.0);
    }
    assert!(
        overlapping > cases.len() / 3,
        "the cases must overlap often"
    );
}

#[test]
fn greedy_merging_matches_the_reference() {
    let r = reference();
    let cases = r["merge"].as_array().unwrap();
    let (mut joined, mut kept_apart) = (0, 0);
    for (n, c) in cases.iter().enumerate() {
        let scores = c["scores"].as_array().unwrap();
        let boxes: Vec<ScoredBox> = c["boxes"]
            .as_array()
            .unwrap()
            .iter()
            .zip(scores)
            .map(|(b, s)| ScoredBox {
                rect: rect(b),
                score: s.as_f64().unwrap(),
            })
            .collect();
        let want = c["merged"].as_array().unwrap();
        let got = greedy_merge(&boxes, c["min_iou"].as_f64().unwrap());
        assert_eq!(got.len(), want.len(), "case {n}: number of groups");
        for (g, w) in got.iter().zip(want) {
            let wr = rect(&w["rect"]);
            assert_eq!(g.members as u64, w["members"].as_u64().unwrap(), "case {n}");
            assert!(close(g.score, w["score"].as_f64().unwrap()), "case {n}");
            for (a, b) in [
                (g.rect.x1, wr.x1),
                (g.rect.y1, wr.y1),
                (g.rect.x2, wr.x2),
                (g.rect.y2, wr.y2),
            ] {
                assert!(close(a, b), "case {n}: {:?} vs {wr:?}", g.rect);
            }
        }
        joined += usize::from(got.len() < boxes.len());
        kept_apart += usize::from(got.len() > 1);
    }
    assert!(joined > 20 && kept_apart > 20, "{joined} {kept_apart}");
}

#[test]
fn localisation_errors_match_the_reference() {
    let r = reference();
    let pair = |v: &Value| {
        let a = v.as_array().unwrap();
        (a[0].as_u64().unwrap() as usize, rect(&a[1]))
    };
    let images: Vec<(Vec<Guess>, Vec<Truth>)> = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let guesses = i["guesses"].as_array().unwrap().iter().map(pair);
            let truths = i["truths"].as_array().unwrap().iter().map(pair);
            (
                guesses.map(|(class, rect)| Guess { class, rect }).collect(),
                truths.map(|(class, rect)| Truth { class, rect }).collect(),
            )
        })
        .collect();
    for (k, key) in [(1, "top1_error"), (5, "top5_error")] {
        let want = r[key].as_f64().unwrap();
        assert_eq!(localisation_error(&images, k).unwrap(), want, "{key}");
        assert!(
            want > 0.05 && want < 0.95,
            "{key} {want}: cases must discriminate"
        );
    }
    let pairs: Vec<(Option<Rect>, Vec<Rect>)> = r["gt_pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let b = (!p["box"].is_null()).then(|| rect(&p["box"]));
            (
                b,
                p["truths"].as_array().unwrap().iter().map(rect).collect(),
            )
        })
        .collect();
    assert_eq!(
        gt_class_error(&pairs).unwrap(),
        r["gt_class_error"].as_f64().unwrap()
    );
}

/// A VOC-format devkit of `per_class` x 2 images per image set (`train`, `val`): noise with one
/// red or blue square (the object, its box annotated), each image its own size and place. With
/// `bad`, `train` also lists an annotation that does not parse, an image without objects, and a
/// box reaching outside its image.
fn box_devkit(root: &Path, per_class: usize, bad: bool) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for d in ["JPEGImages", "Annotations", "ImageSets/Main"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let xml = |id: &str, w: u32, h: u32, objects: &str| {
        format!(
            "<annotation><filename>{id}.png</filename><size><width>{w}</width>\
             <height>{h}</height><depth>3</depth></size>{objects}</annotation>"
        )
    };
    let object = |name: &str, b: [i64; 4]| {
        format!(
            "<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{}</xmin>\
             <ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>",
            b[0], b[1], b[2], b[3]
        )
    };
    for set in ["train", "val"] {
        let mut ids = Vec::new();
        for i in 0..2 * per_class {
            let id = format!("{set}{i:02}");
            let (w, h) = (64 + 8 * (i as u32 % 3), 48 + 8 * (i as u32 % 2));
            let side = rng.gen_range(16..=32u32);
            let (x0, y0) = (rng.gen_range(0..=w - side), rng.gen_range(0..=h - side));
            let red = i % 2 == 0;
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let inside = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side;
                let n: u8 = rng.gen_range(0..60);
                match (inside, red) {
                    (true, true) => image::Rgb([230, n, n]),
                    (true, false) => image::Rgb([n, n, 230]),
                    _ => image::Rgb([n + 60, n + 60, n + 60]),
                }
            });
            img.save(root.join("JPEGImages").join(format!("{id}.png")))
                .unwrap();
            let b = [x0 + 1, y0 + 1, x0 + side, y0 + side].map(i64::from);
            let name = if red { "red" } else { "blue" };
            std::fs::write(
                root.join("Annotations").join(format!("{id}.xml")),
                xml(&id, w, h, &object(name, b)),
            )
            .unwrap();
            ids.push(id);
        }
        if bad && set == "train" {
            std::fs::write(root.join("Annotations/broken.xml"), "<annotation><size>").unwrap();
            image::RgbImage::new(64, 48)
                .save(root.join("JPEGImages/empty.png"))
                .unwrap();
            std::fs::write(root.join("Annotations/empty.xml"), xml("empty", 64, 48, "")).unwrap();
            image::RgbImage::from_pixel(64, 48, image::Rgb([230, 0, 0]))
                .save(root.join("JPEGImages/outside.png"))
                .unwrap();
            std::fs::write(
                root.join("Annotations/outside.xml"),
                xml("outside", 64, 48, &object("red", [10, 10, 80, 40])),
            )
            .unwrap();
            ids.extend(["broken", "empty", "outside"].map(String::from));
        }
        std::fs::write(
            root.join("ImageSets/Main").join(format!("{set}.txt")),
            ids.join("\n") + "\n",
        )
        .unwrap();
    }
}

fn loc_builder(devkit: &Path, out: &Path, epochs: usize) -> vggfeat::TrainParams {
    vggfeat::TrainParams::new()
        .data(devkit)
        .out(out)
        .task(Task::Localise)
        .regression(Regression::Pcr)
        .voc_split("train".into())
        .val_split(Some("val".into()))
        .config(Some(ConfigName::A))
        .init_scheme(InitScheme::He)
        .width_div(16)
        .fc_width(Some(16))
        .crop(32)
        .scale("40:48".parse().unwrap())
        .batch(6)
        .micro_batch(4)
        .lr(1e-3)
        .epochs(epochs)
        .patience(1)
        .pca_images(4)
        .seed(3)
}

fn raw(p: &Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    vggfeat::model::checkpoint::read_raw(p)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

/// The checkpoints of two run folders (model, optimizer, best) hold the same tensors, bit for bit.
fn assert_same_run_files(one: &Path, two: &Path) {
    for file in [
        "model.safetensors",
        "optimizer.safetensors",
        "best.safetensors",
    ] {
        let (a, b) = (raw(&one.join(file)), raw(&two.join(file)));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (k, v) in &a {
            assert!(v == &b[k], "{file} {k} differs after resuming");
        }
    }
}

/// A localisation run (PCR over 2 classes): the odd annotations are reported (in problems.txt,
/// params.json and the trainer), the log has the localisation columns, the checkpoint names its
/// box head, and a run resumed after epoch 1 ends bit for bit where an uninterrupted one does.
#[test]
fn a_localisation_run_reports_bad_annotations_and_resumes_exactly() {
    let d = tempfile::tempdir().unwrap();
    let kit = d.path().join("kit");
    box_devkit(&kit, 4, true);
    let (one, two) = (d.path().join("straight"), d.path().join("resumed"));
    let mut t = Trainer::start(&loc_builder(&kit, &one, 3).check().unwrap()).unwrap();
    let problems = t.problems().join("\n");
    for want in [
        "broken.xml: ",
        "empty.xml: no usable object",
        "outside.xml: object 1 (red)",
    ] {
        assert!(problems.contains(want), "{want} not in:\n{problems}");
    }
    let r = &t.record().resolved;
    assert_eq!(r.classes, ["blue", "red"]);
    // 8 clean training objects and the clipped one; 8 validation images.
    assert_eq!((r.train_images, r.val_images), (9, 8));
    let straight = t.run(&Silent, |_| {}).unwrap();
    assert_eq!(straight.epochs, 3);
    assert!((0.0..=1.0).contains(&straight.best_top1_err));
    let written = std::fs::read_to_string(one.join("problems.txt")).unwrap();
    assert_eq!(written.lines().count(), t.problems().len());
    let csv = std::fs::read_to_string(one.join("metrics.csv")).unwrap();
    assert!(
        csv.starts_with("epoch,train_loss,train_box_miss,val_gt_class_loc_err,"),
        "{csv}"
    );
    let boxes = std::fs::read_to_string(one.join("boxes.csv")).unwrap();
    assert!(
        boxes.contains("train,JPEGImages/outside.png,red,10,10,64,40"),
        "{boxes}"
    );
    Trainer::start(&loc_builder(&kit, &two, 1).check().unwrap())
        .unwrap()
        .run(&Silent, |_| {})
        .unwrap();
    let mut t = Trainer::resume(&two, Some(3)).unwrap();
    assert_eq!(t.state().epoch, 1);
    t.run(&Silent, |_| {}).unwrap();
    assert_same_run_files(&one, &two);
    let w = vggfeat::model::checkpoint::load(&one.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(w.metadata["vggfeat.box_head"], "pcr");
    assert_eq!(w.num_classes(), Some(8), "4 outputs per class");
    let info = vggfeat::info(&one.join("model.safetensors"))
        .unwrap()
        .to_string();
    assert!(
        info.contains("box head:      pcr, per-class regression"),
        "{info}"
    );
    // A per-class localiser has no box for a class it was not trained on: said, and missed.
    let green = d.path().join("green");
    for dir in ["JPEGImages", "Annotations", "ImageSets/Main"] {
        std::fs::create_dir_all(green.join(dir)).unwrap();
    }
    std::fs::copy(
        kit.join("JPEGImages/val00.png"),
        green.join("JPEGImages/g.png"),
    )
    .unwrap();
    std::fs::write(
        green.join("Annotations/g.xml"),
        "<annotation><filename>g.png</filename><size><width>64</width><height>48</height>\
         </size><object><name>green</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>30</xmax>\
         <ymax>30</ymax></bndbox></object></annotation>",
    )
    .unwrap();
    std::fs::write(green.join("ImageSets/Main/test.txt"), "g\n").unwrap();
    let p = vggfeat::LocaliseParams::new()
        .input(&green)
        .out(d.path().join("green-out"))
        .localisers(vec![vggfeat::localise::LocSource::Net(one.clone())])
        .gt_class(true)
        .scales(vec![48])
        .check()
        .unwrap();
    let r = vggfeat::localise(&p, &Silent).unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("no box for class `green` (1 objects)")),
        "{:?}",
        r.problems
    );
    assert_eq!(r.localisation_error.unwrap().gt_class, Some(1.0));
    // Options of the other task are refused, naming them.
    let e = loc_builder(&kit, &d.path().join("x"), 1)
        .max_classes(Some(3))
        .check()
        .unwrap_err();
    assert!(e.to_string().contains("classification only"), "{e}");
    let e = vggfeat::TrainParams::new()
        .data(&kit)
        .out(d.path().join("y"))
        .config(Some(ConfigName::A))
        .regression(Regression::Scr)
        .check()
        .unwrap_err();
    assert!(e.to_string().contains("localisation only"), "{e}");
}

/// The recipe of results/localisation: an SCR head on a frozen body, fc6 on the square root of
/// pool5 and Adam. A run resumed after epoch 1 ends bit for bit where an uninterrupted one does
/// (Adam's moments and step count are saved), the checkpoint records the root and `info` names
/// it, `localise` applies it, and what cannot hold is refused: the root with a trainable conv,
/// and a pretrained fc6 fine-tuned on another input than its own.
#[test]
fn an_adam_run_on_square_rooted_features_resumes_exactly() {
    let d = tempfile::tempdir().unwrap();
    let kit = d.path().join("kit");
    box_devkit(&kit, 4, false);
    let builder = |out: &Path, epochs: usize| {
        loc_builder(&kit, out, epochs)
            .regression(Regression::Scr)
            .freeze_through(Some("pool5".parse().unwrap()))
            .optimizer(Method::Adam)
            .weight_decay(1e-3)
            .fc6_input(Fc6Input::Sqrt)
    };
    let (one, two) = (d.path().join("straight"), d.path().join("resumed"));
    Trainer::start(&builder(&one, 3).check().unwrap())
        .unwrap()
        .run(&Silent, |_| {})
        .unwrap();
    Trainer::start(&builder(&two, 1).check().unwrap())
        .unwrap()
        .run(&Silent, |_| {})
        .unwrap();
    let mut t = Trainer::resume(&two, Some(3)).unwrap();
    assert_eq!(t.state().epoch, 1);
    t.run(&Silent, |_| {}).unwrap();
    assert_same_run_files(&one, &two);
    let opt = raw(&one.join("optimizer.safetensors"));
    assert!(
        opt.contains_key("fc6.weight.exp_avg_sq"),
        "{:?}",
        opt.keys()
    );
    // 9 training objects in batches of 6: 2 steps an epoch.
    assert_eq!(opt["adam.step"], vec![6.0]);
    let model = one.join("model.safetensors");
    let w = vggfeat::model::checkpoint::load(&model, &Device::Cpu).unwrap();
    assert_eq!(w.metadata["vggfeat.fc6_input"], "sqrt");
    let info = vggfeat::info(&model).unwrap().to_string();
    assert!(info.contains("square root of the input"), "{info}");
    let p = vggfeat::LocaliseParams::new()
        .input(&kit)
        .out(d.path().join("boxes"))
        .localisers(vec![vggfeat::localise::LocSource::Net(one.clone())])
        .gt_class(true)
        .protocol(LocProtocol::Dense)
        .scales(vec![48])
        .voc_split("val")
        .check()
        .unwrap();
    let r = vggfeat::localise(&p, &Silent).unwrap();
    assert!(r.localisation_error.unwrap().gt_class.is_some());
    // The root needs every conv frozen.
    let e = builder(&d.path().join("x"), 1)
        .freeze_through(Some("conv5_1".parse().unwrap()))
        .check()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("invalid fc6_input: sqrt needs every conv frozen"),
        "{e}"
    );
    // Fine-tuning the rooted fc6 on pool5 as it is would change what it computes: refused.
    let e = builder(&d.path().join("y"), 1)
        .fc6_input(Fc6Input::Identity)
        .init(Init::Pretrained(model.clone()))
        .check()
        .and_then(|p| Trainer::start(&p).map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has an fc6 trained on input `sqrt`; this run gives fc6 `identity`"),
        "{e}"
    );
}

/// `vggfeat train --task localise` then `vggfeat localise` on the devkit: both protocols write
/// boxes, metrics, a table and pictures; the baseline of centred mean boxes is exactly right on
/// a devkit whose objects are all the same centred box; a classifier is refused as a localiser.
#[test]
fn localise_cli_scores_a_devkit_with_both_protocols() {
    let d = tempfile::tempdir().unwrap();
    let kit = d.path().join("kit");
    box_devkit(&kit, 3, false);
    let run = d.path().join("scr");
    // (Temporary folders have no spaces.)
    let train = format!(
        "train {} --task localise --regression scr --split train --val-split val --config A \
         --width-div 16 --fc-width 16 --crop 32 --scale 48 --batch 6 --micro-batch 3 --epochs 1 \
         --init-scheme he --lr 0.001 --no-progress -o {}",
        kit.display(),
        run.display()
    );
    util::vggfeat()
        .args(train.split_whitespace())
        .assert()
        .success()
        .stdout(predicates::str::contains("val loc err (gt class)"));
    for protocol in ["center", "dense"] {
        let out = d.path().join(protocol);
        util::vggfeat()
            .args([
                "localise",
                kit.to_str().unwrap(),
                "--split",
                "val",
                "--gt-class",
            ])
            .args([
                "--protocol",
                protocol,
                "--no-progress",
                "--pictures",
                "2",
                "--loc",
            ])
            .arg(&run)
            .arg("-o")
            .arg(&out)
            .assert()
            .success()
            .stdout(predicates::str::contains("localisation error gt-class"));
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap())
                .unwrap();
        let e = m["localisation_error"]["gt_class"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&e), "{m}");
        assert!(m["localisation_error"]["top1"].is_null());
        assert_eq!(m["images"], 6);
        let boxes = std::fs::read_to_string(out.join("boxes.csv")).unwrap();
        assert!(boxes.starts_with("id,rank,class,score,xmin,ymin,xmax,ymax\n"));
        assert_eq!(boxes.lines().count(), 7, "one box per image: {boxes}");
        let table = std::fs::read_to_string(out.join("table.md")).unwrap();
        assert!(table.contains(&format!("| {protocol} |")), "{table}");
        let pics = std::fs::read_dir(out.join("pictures")).unwrap().count();
        assert_eq!(pics, 2);
        let svg = std::fs::read_to_string(out.join("pictures/val00.svg")).unwrap();
        assert!(svg.contains("data:image/jpeg;base64,") && svg.contains("#00c000"));
    }
    // A (random) classifier of the devkit's two classes: with one SCR box per image, the top-5
    // guesses hold that box under both classes, so the top-5 error is the ground-truth-class
    // error exactly, and the top-1 error is no lower.
    let w = vggfeat::model::VggWeights::random_with_fc6(
        ConfigName::A,
        16,
        Some(16),
        1,
        2,
        InitScheme::He,
        9,
    )
    .unwrap();
    let classifier = d.path().join("classifier.safetensors");
    let meta: std::collections::BTreeMap<String, String> = [
        ("vggfeat.classes", r#"["blue","red"]"#),
        ("vggfeat.crop", "32"),
        ("vggfeat.config", "A"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vggfeat::model::checkpoint::save_torchvision(&w, &classifier, &meta).unwrap();
    let out = d.path().join("top5");
    util::vggfeat()
        .args([
            "localise",
            kit.to_str().unwrap(),
            "--split",
            "val",
            "--no-progress",
        ])
        .args(["--scales", "48", "--loc"])
        .arg(&run)
        .arg("-w")
        .arg(&classifier)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let e = &m["localisation_error"];
    let (gt, top1, top5) = (
        e["gt_class"].as_f64().unwrap(),
        e["top1"].as_f64().unwrap(),
        e["top5"].as_f64().unwrap(),
    );
    assert_eq!(top5, gt, "{m}");
    assert!(top1 >= top5, "{m}");
    let boxes = std::fs::read_to_string(out.join("boxes.csv")).unwrap();
    assert_eq!(
        boxes.lines().count(),
        1 + 2 * 6,
        "both classes per image: {boxes}"
    );
    // Unlabelled images (a list file): boxes of the classifier's guesses, no metrics.
    let list = d.path().join("images.txt");
    let names: Vec<String> = (0..3)
        .map(|i| {
            kit.join(format!("JPEGImages/val{i:02}.png"))
                .display()
                .to_string()
        })
        .collect();
    std::fs::write(&list, names.join("\n") + "\n").unwrap();
    let out = d.path().join("unlabelled");
    util::vggfeat()
        .args([
            "localise",
            list.to_str().unwrap(),
            "--no-progress",
            "--scales",
            "48",
        ])
        .arg("--loc")
        .arg(&run)
        .arg("-w")
        .arg(&classifier)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    assert!(!out.join("metrics.json").exists());
    let boxes = std::fs::read_to_string(out.join("boxes.csv")).unwrap();
    assert_eq!(boxes.lines().count(), 1 + 2 * 3, "{boxes}");
    // Without ground truth there is no ground-truth class.
    util::vggfeat()
        .args([
            "localise",
            list.to_str().unwrap(),
            "--gt-class",
            "--no-progress",
            "--loc",
        ])
        .arg(&run)
        .arg("-o")
        .arg(d.path().join("no-gt"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("no ground truth"));
    // Every object the same centred box (a quarter of each side): the baseline is exact.
    let centred = d.path().join("centred");
    for dir in ["JPEGImages", "Annotations", "ImageSets/Main"] {
        std::fs::create_dir_all(centred.join(dir)).unwrap();
    }
    let mut ids = Vec::new();
    for i in 0..4u32 {
        let (w, h) = (40 + 8 * i, 40 + 4 * i);
        image::RgbImage::new(w, h)
            .save(centred.join(format!("JPEGImages/c{i}.png")))
            .unwrap();
        std::fs::write(
            centred.join(format!("Annotations/c{i}.xml")),
            format!(
                "<annotation><filename>c{i}.png</filename><size><width>{w}</width>\
                 <height>{h}</height></size><object><name>thing</name><bndbox><xmin>{}</xmin>\
                 <ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object></annotation>",
                w / 4 + 1,
                h / 4 + 1,
                3 * w / 4,
                3 * h / 4
            ),
        )
        .unwrap();
        ids.push(format!("c{i}"));
    }
    std::fs::write(centred.join("ImageSets/Main/test.txt"), ids.join("\n")).unwrap();
    let out = d.path().join("base");
    util::vggfeat()
        .args([
            "localise",
            centred.to_str().unwrap(),
            "--gt-class",
            "--no-progress",
        ])
        .args(["--loc", "baseline:test", "-o"])
        .arg(&out)
        .assert()
        .success();
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(
        m["localisation_error"]["gt_class"].as_f64(),
        Some(0.0),
        "{m}"
    );
    // A classification checkpoint is not a localiser.
    let e = util::vggfeat()
        .args([
            "localise",
            kit.to_str().unwrap(),
            "--gt-class",
            "--no-progress",
            "--loc",
        ])
        .arg(util::tiny().join("weights.safetensors"))
        .arg("-o")
        .arg(d.path().join("no"))
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&e.get_output().stderr).to_string();
    assert!(err.contains("not a localisation net"), "{err}");
}
