//! No silently wrong answer where things are combined: several stores, relabelled inputs, typed
//! table columns, saved models, tar shards cut short, export files read back as tables. Each test
//! is a case that once gave a wrong result with exit code 0 (issue 22's numbered cases).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};

use crate::util::{self, vggfeat};

/// Extracts with the tiny fixture; asserts the exit code.
fn extract(inputs: &[&Path], store: &Path, args: &[&str], code: i32) -> String {
    let o = util::extract_tiny(inputs, store, args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "{err}");
    err
}

/// id -> labels of a store's records (successes and failures).
fn labels(store: &Path) -> HashMap<String, Vec<String>> {
    vggfeat::Store::open(store)
        .unwrap()
        .records
        .into_iter()
        .map(|r| (r.id, r.labels))
        .collect()
}

/// Writes a Parquet file of these columns.
fn parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// The tiny fixture's weights with every value of the first conv scaled: another net of the same
/// configuration and dimension (as VGG-16 and VGG-19 are both 4,096-d at fc7).
fn other_weights(dir: &Path) -> PathBuf {
    let src = util::tiny().join("weights.safetensors");
    let mut t = candle_core::safetensors::load(&src, &candle_core::Device::Cpu).unwrap();
    let w = t["features.0.weight"].clone();
    t.insert("features.0.weight".into(), (w * 1.5).unwrap());
    let out = dir.join("other.safetensors");
    candle_core::safetensors::save(&t, &out).unwrap();
    out
}

/// Case 1: `svm`'s stores (a train store beside a test store) are joined only when their
/// descriptors are the same kind: another flip or another layer is refused, naming the field
/// and both values.
#[test]
fn stores_of_other_descriptors_are_not_joined() {
    let tmp = tempfile::tempdir().unwrap();
    util::tiny_folder(&tmp.path().join("train"), &["a", "b"], 2);
    util::tiny_folder(&tmp.path().join("test"), &["a", "b"], 1);
    let (train, test, fc6) = (
        tmp.path().join("s-train"),
        tmp.path().join("s-test"),
        tmp.path().join("s-test-fc6"),
    );
    extract(&[&tmp.path().join("train")], &train, &[], 0);
    extract(&[&tmp.path().join("test")], &test, &["--no-flip"], 0);
    extract(&[&tmp.path().join("test")], &fc6, &["--layer", "fc6"], 0);
    let open = |p: &Path| vggfeat::Store::open(p).unwrap();
    for (other, want) in [(&test, "flip: true vs false"), (&fc6, "layer: fc7 vs fc6")] {
        let e = vggfeat::store::aggregate_stores(
            &[open(&train), open(other)],
            vggfeat::Aggregate::Avg,
            &[0],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(want) && e.contains(&*other.to_string_lossy()),
            "{e}"
        );
    }
    // The command line says the same (exit 3), before training anything.
    let res = tmp.path().join("res");
    let o = vggfeat()
        .args([
            "svm",
            "--train-per-class",
            "1",
            "--test-per-class",
            "1",
            "-f",
        ])
        .arg(&train)
        .arg("-f")
        .arg(&test)
        .arg("-o")
        .arg(&res)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("flip: true vs false"), "{err}");
    assert!(!res.join("model_split0.safetensors").exists());
}

/// Case 2: `predict` over two stores holding the same two nets in another order scores each
/// store's images with the classifier's net, found by its weights in each store.
#[test]
fn predict_finds_the_classifiers_net_in_every_store() {
    let tmp = tempfile::tempdir().unwrap();
    let other = other_weights(tmp.path());
    let mine = util::tiny().join("weights.safetensors");
    util::tiny_folder(&tmp.path().join("x"), &["a", "b"], 6);
    util::tiny_folder(&tmp.path().join("y"), &["c", "d"], 1);
    let (sx, sy) = (tmp.path().join("sx"), tmp.path().join("sy"));
    // util::extract_tiny gives the tiny weights first; add the other net after it for x, and
    // before it for y.
    let run = |input: &Path, store: &Path, first: &Path, second: &Path| {
        vggfeat()
            .args(["extract", "--quiet", "--scales", "224", "-w"])
            .arg(first)
            .arg("-w")
            .arg(second)
            .arg("-o")
            .arg(store)
            .arg(input)
            .assert()
            .success();
    };
    run(&tmp.path().join("x"), &sx, &mine, &other);
    run(&tmp.path().join("y"), &sy, &other, &mine);
    let res = tmp.path().join("res");
    util::svm_small(&sx, &res, &["--nets", "0"]);
    let clf = vggfeat::Classifier::load(&res.join("model_split0.safetensors")).unwrap();
    let open = |p: &Path| vggfeat::Store::open(p).unwrap();
    let both = vggfeat::classifier::predict_with(&clf, &[open(&sx), open(&sy)], None).unwrap();
    let alone = vggfeat::classifier::predict_with(&clf, &[open(&sy)], None).unwrap();
    assert_eq!(alone.ids.len(), 2);
    for (k, id) in alone.ids.iter().enumerate() {
        let j = both.ids.iter().position(|i| i == id).unwrap();
        assert_eq!(
            both.values.row(j),
            alone.values.row(k),
            "{id}: scored with another net when stores are combined"
        );
    }
}

/// Case 3: a relabelled list keeps the descriptors but not the old labels: the record is
/// rewritten without the network, and the run says so.
#[test]
fn relabelled_inputs_update_their_records() {
    let tmp = tempfile::tempdir().unwrap();
    util::tiny_folder(&tmp.path().join("img"), &["a"], 3);
    let list = tmp.path().join("list.txt");
    let write = |l: &str| {
        std::fs::write(
            &list,
            format!("img/a/img0.png\tcat\nimg/a/img1.png\t{l}\nimg/a/img2.png\n"),
        )
        .unwrap()
    };
    write("dog");
    let store = tmp.path().join("store");
    extract(&[&list], &store, &[], 0);
    let before = vggfeat::Store::open(&store).unwrap();
    write("cow");
    let err = extract(&[&list], &store, &[], 0);
    let after = vggfeat::Store::open(&store).unwrap();
    let l = labels(&store);
    assert_eq!(l["img/a/img1.png"], ["cow"], "the old label was kept");
    assert_eq!(l["img/a/img0.png"], ["cat"]);
    assert!(l["img/a/img2.png"].is_empty());
    let floats =
        |s: &vggfeat::Store| -> Vec<Vec<f32>> { s.ok_records().map(|(_, v)| v.to_vec()).collect() };
    assert_eq!(
        floats(&before),
        floats(&after),
        "descriptors must not change"
    );
    assert!(err.contains("1 kept with new labels"), "{err}");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["counts"]["relabelled"], 1, "{stats}");
    assert_eq!(stats["counts"]["extracted"], 0, "{stats}");
}

/// Cases 4, 9 and 14: Parquet label, path and id columns of every type pandas, polars and
/// pyarrow write (integers, categoricals, string views, large lists) are read; a type that is
/// not is refused naming the column. An `id` standing for a path has its `%XX` escapes undone.
/// `--root` with inputs that never use it is a usage error.
#[test]
fn typed_table_columns_are_read_or_refused() {
    use arrow_array::builder::{LargeListBuilder, StringBuilder};
    use arrow_array::types::Int32Type;
    use arrow_array::{DictionaryArray, Float64Array, Int64Array, StringArray, StringViewArray};
    let tmp = tempfile::tempdir().unwrap();
    util::tiny_folder(&tmp.path().join("img"), &["a"], 3);
    // A file whose name needs escaping in an id.
    std::fs::copy(
        tmp.path().join("img/a/img0.png"),
        tmp.path().join("img/a/100%.png"),
    )
    .unwrap();
    let paths = ["img/a/img0.png", "img/a/img1.png", "img/a/img2.png"];
    let open = |p: &Path| vggfeat::Dataset::open(p);

    // Integer labels, a categorical path column, string-view ids, large-list labels.
    let t = tmp.path().join("typed.parquet");
    let mut lb = LargeListBuilder::new(StringBuilder::new());
    for l in [&["x", "y"][..], &["z"], &[]] {
        for v in l {
            lb.values().append_value(v);
        }
        lb.append(true);
    }
    parquet(
        &t,
        vec![
            (
                "path",
                Arc::new(
                    paths
                        .iter()
                        .copied()
                        .collect::<DictionaryArray<Int32Type>>(),
                ) as ArrayRef,
            ),
            (
                "id",
                Arc::new(StringViewArray::from(vec!["i0", "i1", "i2"])),
            ),
            ("label", Arc::new(Int64Array::from(vec![7, 8, 9]))),
            ("labels", Arc::new(lb.finish())),
        ],
    );
    let ds = open(&t).unwrap();
    let got: Vec<(&str, Vec<String>, bool)> = ds
        .items
        .iter()
        .map(|i| (i.id.as_str(), i.labels.clone(), i.path.is_file()))
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        [
            ("i0", s(&["7", "x", "y"]), true),
            ("i1", s(&["8", "z"]), true),
            ("i2", s(&["9"]), true),
        ]
    );
    // Categorical labels and integer ids standing for paths.
    let c = tmp.path().join("img/a/c.parquet");
    std::fs::copy(
        tmp.path().join("img/a/img1.png"),
        tmp.path().join("img/a/5"),
    )
    .unwrap();
    parquet(
        &c,
        vec![
            ("id", Arc::new(Int64Array::from(vec![5])) as ArrayRef),
            (
                "label",
                Arc::new(["cat"].into_iter().collect::<DictionaryArray<Int32Type>>()),
            ),
        ],
    );
    let ds = open(&c).unwrap();
    assert_eq!(ds.items[0].labels, ["cat"]);
    assert!(ds.items[0].path.is_file(), "{}", ds.items[0].path.display());
    // A float label column is refused, naming the column and its type.
    let f = tmp.path().join("float.parquet");
    parquet(
        &f,
        vec![
            (
                "path",
                Arc::new(StringArray::from(vec![paths[0]])) as ArrayRef,
            ),
            ("label", Arc::new(Float64Array::from(vec![1.5]))),
        ],
    );
    let e = open(&f).unwrap_err().to_string();
    assert!(
        e.contains("float.parquet") && e.contains("`label`") && e.contains("Float64"),
        "{e}"
    );

    // Case 9: a split file's id (escaped as vggfeat writes ids) names its file.
    let split = tmp.path().join("split.csv");
    std::fs::write(
        &split,
        "id,label,set\na/100%25.png,a,train\na/img1.png,a,test\n",
    )
    .unwrap();
    let sel = vggfeat::dataset::Selection {
        root: Some(tmp.path().join("img")),
        ..Default::default()
    };
    let ds = vggfeat::Dataset::open_inputs_selection(std::slice::from_ref(&split), &sel).unwrap();
    let item = ds.items.iter().find(|i| i.id == "a/100%25.png").unwrap();
    assert!(item.path.is_file(), "{}", item.path.display());

    // Case 14: --root with a folder input is a usage error.
    let e = vggfeat::Dataset::open_inputs_selection(&[tmp.path().join("img")], &sel)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("root") && e.contains("no input is a table"),
        "{e}"
    );
}

/// Case 5: an export read back as a table gives every image its labels, both ways: two labels
/// stay two, a label holding `;` stays one.
#[test]
fn exports_round_trip_through_tables() {
    let tmp = tempfile::tempdir().unwrap();
    util::tiny_folder(&tmp.path().join("img"), &["a"], 3);
    // Multi-label: a table with `labels` cells.
    let table = tmp.path().join("t.csv");
    std::fs::write(
        &table,
        "path,labels\nimg/a/img0.png,x;y\nimg/a/img1.png,x\\;y\nimg/a/img2.png,\n",
    )
    .unwrap();
    // Single-label with a `;` inside the label: a list file (a label is one class whatever it
    // holds).
    let list = tmp.path().join("l.txt");
    std::fs::write(&list, "img/a/img0.png\tp;q\nimg/a/img1.png\tr\n").unwrap();
    for (input, want) in [
        (
            &table,
            vec![
                ("img/a/img0.png", vec!["x", "y"]),
                ("img/a/img1.png", vec!["x;y"]),
                ("img/a/img2.png", vec![]),
            ],
        ),
        (
            &list,
            vec![
                ("img/a/img0.png", vec!["p;q"]),
                ("img/a/img1.png", vec!["r"]),
            ],
        ),
    ] {
        let name = input.file_stem().unwrap().to_string_lossy().to_string();
        let store = tmp.path().join(format!("{name}-store"));
        extract(&[input], &store, &[], 0);
        let csv = tmp.path().join(format!("{name}-export.csv"));
        vggfeat()
            .arg("export")
            .arg(&store)
            .arg("--csv")
            .arg(&csv)
            .assert()
            .success();
        // The export as a table (ids are relative to the inputs' folder).
        let back = tmp.path().join(format!("{name}-back"));
        extract(
            &[&csv],
            &back,
            &["--root", &tmp.path().to_string_lossy()],
            0,
        );
        let l = labels(&back);
        for (id, want) in &want {
            assert_eq!(&l[*id], want, "{name}: {id}");
        }
        assert_eq!(
            labels(&store),
            l,
            "{name}: labels changed on the round trip"
        );
    }
}

/// Cases 6, 7 and 13: WebDataset shards. A shard cut between a sample's image and its label
/// fails that sample (it lost its label) instead of keeping it unlabelled; `--classes` keeps the
/// failures of its classes and of unknown class, recorded with their labels, not the shard's
/// name; a second `.cls`, an empty label, a gzip'd or non-tar `.tar` are refused; `a.b.jpg` is
/// sample `a`'s image.
#[test]
fn tar_shards_lose_no_label_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let png = std::fs::read(util::tiny().join("images/0.png")).unwrap();
    let shard = |name: &str, members: &[(&str, &[u8])]| -> PathBuf {
        let mut b = tar::Builder::new(Vec::new());
        for (n, d) in members {
            util::tar_add(&mut b, n, d);
        }
        let p = tmp.path().join(name);
        std::fs::write(&p, b.into_inner().unwrap()).unwrap();
        p
    };
    // k1 and k2 cannot be used (two images each): failed inputs of the listing.
    let good = shard(
        "s.tar",
        &[
            ("k0.jpg", &png),
            ("k0.cls", b"airplanes"),
            ("k1.jpg", &png),
            ("k1.png", &png),
            ("k1.cls", b"airplanes"),
            ("k2.jpg", &png),
            ("k2.png", &png),
            ("k2.cls", b"watch"),
            ("k3.jpg", &png),
            ("k3.cls", b"watch"),
        ],
    );
    // Case 6: cut where k3.cls's header starts: k3's image is whole, its label is gone.
    let bytes = std::fs::read(&good).unwrap();
    let at = bytes.windows(6).position(|w| w == b"k3.cls").unwrap();
    let cut = tmp.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..at]).unwrap();
    let ds = vggfeat::Dataset::open(&cut).unwrap();
    assert!(
        ds.items.iter().all(|i| i.id != "cut/k3"),
        "k3 kept without its label"
    );
    let k3 = ds.skipped.iter().find(|s| s.id == "cut/k3").unwrap();
    assert!(k3.reason.contains("cut short"), "{}", k3.reason);
    assert!(
        ds.skipped.iter().any(|s| s.id == "cut/"),
        "{:?}",
        ds.skipped
    );

    // Case 7: --classes airplanes keeps k1's failure, labelled airplanes, and drops k2's.
    let store = tmp.path().join("store");
    extract(&[&good], &store, &["--classes", "airplanes"], 1);
    let s = vggfeat::Store::open(&store).unwrap();
    let failed: Vec<(&str, &[String])> = s
        .records
        .iter()
        .filter(|r| matches!(r.outcome, vggfeat::store::Outcome::Failed(_)))
        .map(|r| (r.id.as_str(), r.labels.as_slice()))
        .collect();
    assert_eq!(failed, [("s/k1", &["airplanes".to_string()][..])]);

    // Case 13.
    let twice = shard(
        "twice.tar",
        &[
            ("a.jpg", &png),
            ("a.cls", b"x"),
            ("a.b.cls", b"y"),
            ("e.jpg", &png),
            ("e.json", br#"{"label": ""}"#),
            ("m.b.jpg", &png),
            ("m.cls", b"z"),
        ],
    );
    let ds = vggfeat::Dataset::open(&twice).unwrap();
    let why = |id: &str| {
        ds.skipped
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.reason.clone())
            .unwrap_or_default()
    };
    assert!(why("twice/a").contains("two .cls"), "{}", why("twice/a"));
    assert!(why("twice/e").contains("empty"), "{}", why("twice/e"));
    assert_eq!(ds.items.len(), 1);
    assert_eq!(
        (ds.items[0].id.as_str(), &ds.items[0].labels[..]),
        ("twice/m", &["z".to_string()][..])
    );
    let not_tar = tmp.path().join("notes.tar");
    std::fs::write(&not_tar, b"hello, this is not a tar file at all").unwrap();
    let e = vggfeat::Dataset::open(&not_tar).unwrap_err().to_string();
    assert!(e.contains("not a tar archive"), "{e}");
    for name in ["gz.tar.gz", "gz.tar"] {
        let p = tmp.path().join(name);
        std::fs::write(&p, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
        let e = vggfeat::Dataset::open(&p).unwrap_err().to_string();
        assert!(e.contains("gzip") && e.contains(name), "{e}");
    }
}

/// Case 8: `classify --eval` with a short ImageNet name that two classes share is refused,
/// listing both; a synset id or an index picks one.
#[test]
fn ambiguous_imagenet_names_are_refused() {
    use vggfeat::classify::class_of_label;
    let e = class_of_label("crane", 1000).unwrap_err();
    assert!(
        e.contains("134 (n02012849") && e.contains("517 (n03126707"),
        "{e}"
    );
    let e = class_of_label("maillot", 1000).unwrap_err();
    assert!(e.contains("638") && e.contains("639"), "{e}");
    assert_eq!(class_of_label("n03126707", 1000), Ok(517));
    assert_eq!(class_of_label("517", 1000), Ok(517));
    assert_eq!(class_of_label("tench", 1000), Ok(0));
    assert!(class_of_label("tench", 10).is_err());
}

/// Case 12: a shard with no image (more array tasks than images) is an empty, valid store, and
/// the merge of every shard has every image.
#[test]
fn an_empty_shard_is_an_empty_store() {
    let tmp = tempfile::tempdir().unwrap();
    util::tiny_folder(&tmp.path().join("img"), &["a"], 2);
    let n = 4;
    let empty = (0..n)
        .find(|&i| {
            ["a/img0.png", "a/img1.png"]
                .iter()
                .all(|id| vggfeat::dataset::shard_of(id, n) != i)
        })
        .expect("2 images leave a shard of 4 empty");
    let mut merge = vggfeat();
    merge.arg("merge");
    for i in 0..n {
        let s = tmp.path().join(format!("s{i}"));
        extract(
            &[&tmp.path().join("img")],
            &s,
            &["--shard", &format!("{i}/{n}")],
            0,
        );
        if i == empty {
            assert!(vggfeat::Store::open(&s).unwrap().records.is_empty());
        }
        merge.arg(&s);
    }
    let all = tmp.path().join("all");
    merge.arg("-o").arg(&all).assert().success();
    assert_eq!(vggfeat::Store::open(&all).unwrap().records.len(), 2);
}

/// Case 15: a `torch.save` of a strided view (a tensor permuted before saving) loads as the
/// values it shows. Made from the fixture's real `weights.pth` by storing the first kernel with
/// its two spatial axes swapped and declaring the strides that undo it.
#[test]
fn strided_pytorch_tensors_load() {
    use std::io::{Read, Write};
    let src = util::tiny().join("weights.pth");
    let mut zin = zip::ZipArchive::new(std::fs::File::open(&src).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("strided.pth");
    let mut zout = zip::ZipWriter::new(std::fs::File::create(&out).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut patched = 0;
    for i in 0..zin.len() {
        let mut m = zin.by_index(i).unwrap();
        let name = m.name().unwrap().to_string();
        let mut bytes = Vec::new();
        m.read_to_end(&mut bytes).unwrap();
        if name.ends_with("data.pkl") {
            // features.0.weight (4, 3, 3, 3): strides (27, 9, 3, 1) -> (27, 9, 1, 3).
            let old = [b'K', 27, b'K', 9, b'K', 3, b'K', 1];
            let at = bytes.windows(8).position(|w| w == old).unwrap();
            bytes[at..at + 8].copy_from_slice(&[b'K', 27, b'K', 9, b'K', 1, b'K', 3]);
            patched += 1;
        }
        if name.ends_with("data/0") {
            // The storage with each 3x3 kernel transposed.
            let v: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let mut t = v.clone();
            for k in 0..v.len() / 9 {
                for y in 0..3 {
                    for x in 0..3 {
                        t[k * 9 + x * 3 + y] = v[k * 9 + y * 3 + x];
                    }
                }
            }
            bytes = t.iter().flat_map(|f| f.to_le_bytes()).collect();
            patched += 1;
        }
        zout.start_file(&name, stored).unwrap();
        zout.write_all(&bytes).unwrap();
    }
    zout.finish().unwrap();
    assert_eq!(
        patched, 2,
        "the fixture's first tensor was not where expected"
    );
    let load = |p: &Path| {
        vggfeat::model::checkpoint::load(p, &candle_core::Device::Cpu)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let (a, b) = (load(&src), load(&out));
    let w = |v: &vggfeat::model::VggWeights| util::to_vec(&v.convs[0].weight);
    assert_eq!(w(&a), w(&b));
}

/// Case 16: `svm --split-files` whose file has no test rows is refused before anything is
/// written; `export` never writes a store's own files.
#[test]
fn nothing_is_written_before_a_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    util::tiny_folder(&tmp.path().join("img"), &["a", "b"], 2);
    let store = tmp.path().join("store");
    extract(&[&tmp.path().join("img")], &store, &[], 0);
    let split = tmp.path().join("split.csv");
    std::fs::write(
        &split,
        "id,label,set\na/img0.png,a,train\nb/img0.png,b,train\n",
    )
    .unwrap();
    let res = tmp.path().join("res");
    let o = vggfeat()
        .args(["svm", "--split-files"])
        .arg(&split)
        .arg("-f")
        .arg(&store)
        .arg("-o")
        .arg(&res)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        err.contains("split.csv") && err.contains("no test images"),
        "{err}"
    );
    assert!(
        !res.exists() || std::fs::read_dir(&res).unwrap().next().is_none(),
        "files were written before the refusal"
    );
    let manifest = std::fs::read(store.join("manifest.json")).unwrap();
    for own in ["manifest.json", "state.json", "chunks/000000.chunk"] {
        let o = vggfeat()
            .arg("export")
            .arg(&store)
            .arg("--csv")
            .arg(store.join(own))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{own}: {err}");
        assert!(err.contains("store") && err.contains(own), "{err}");
    }
    assert_eq!(
        std::fs::read(store.join("manifest.json")).unwrap(),
        manifest
    );
    vggfeat::Store::open(&store).unwrap();
    // Into a folder that does not exist yet: created.
    vggfeat()
        .arg("export")
        .arg(&store)
        .arg("--csv")
        .arg(tmp.path().join("new/deeper/x.csv"))
        .assert()
        .success();
}

/// Case 17: stores, exports and results follow the umask (they were 0600 whatever it said).
#[test]
fn written_files_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    util::tiny_folder(&tmp.path().join("img"), &["a", "b"], 2);
    let store = tmp.path().join("store");
    let c = util::extract_tiny(&[&tmp.path().join("img")], &store, &[]);
    // The child's umask, set through a shell.
    let cmd = "umask 022 && exec \"$0\" \"$@\"";
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(cmd)
        .arg(c.get_program())
        .args(c.get_args());
    assert!(sh.status().unwrap().success());
    let csv = tmp.path().join("x.csv");
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(cmd)
        .arg(util::bin())
        .arg("export")
        .arg(&store)
        .arg("--csv")
        .arg(&csv);
    assert!(sh.status().unwrap().success());
    // A Parquet export into a folder that does not exist yet, and an svm results folder.
    let pq = tmp.path().join("new/dir/x.parquet");
    let res = tmp.path().join("res");
    let idx = tmp.path().join("idx");
    for args in [
        vec![
            "index".into(),
            "-f".into(),
            store.clone().into_os_string(),
            "-o".into(),
            idx.clone().into(),
            "--recall-queries".into(),
            "2".into(),
        ],
        vec![
            "export".into(),
            store.clone().into_os_string(),
            "--parquet".into(),
            pq.clone().into(),
        ],
        vec![
            "svm".into(),
            "-f".into(),
            store.clone().into(),
            "--c-grid".into(),
            "1".into(),
            "--train-per-class".into(),
            "1".into(),
            "-o".into(),
            res.clone().into(),
        ],
    ] {
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c").arg(cmd).arg(util::bin()).args(args);
        assert!(sh.status().unwrap().success());
    }
    for f in [
        store.join("manifest.json"),
        store.join("state.json"),
        store.join("stats.json"),
        store.join("chunks/000000.chunk"),
        csv,
        pq,
        res.join("metrics.json"),
        res.join("table.md"),
        res.join("split0.csv"),
        res.join("scores_split0.csv"),
        res.join("model_split0.safetensors"),
        res.join("per_class.svg"),
        idx.join("index.usearch"),
        idx.join("index.json"),
    ] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}: {mode:o}", f.display());
    }
}

/// Reachable panics: a state file whose dataset hash is short, a classifier whose hash is not
/// ASCII, a file time past 2262: each a clear error or handled, never a panic.
#[test]
fn hostile_values_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    util::tiny_folder(&tmp.path().join("img"), &["a"], 2);
    // A file time beyond 64-bit nanoseconds: extracted, and resumed as unchanged.
    let far = tmp.path().join("img/a/img0.png");
    let f = std::fs::File::options().write(true).open(&far).unwrap();
    let year_3000 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(32_503_680_000);
    f.set_modified(year_3000).unwrap();
    drop(f);
    let store = tmp.path().join("store");
    extract(&[&tmp.path().join("img")], &store, &[], 0);
    let err = extract(&[&tmp.path().join("img")], &store, &[], 0);
    assert!(err.contains("extracted 0 images"), "{err}");
    // Two shards whose state.json holds a dataset hash of 3 characters, then merged.
    let (s0, s1) = (tmp.path().join("s0"), tmp.path().join("s1"));
    extract(&[&tmp.path().join("img")], &s0, &["--shard", "0/2"], 0);
    extract(&[&tmp.path().join("img")], &s1, &["--shard", "1/2"], 0);
    let state = s1.join("state.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    v["dataset"]["sha256"] = "é".into();
    std::fs::write(&state, v.to_string()).unwrap();
    let o = vggfeat()
        .arg("merge")
        .arg(&s0)
        .arg(&s1)
        .arg("-o")
        .arg(tmp.path().join("m"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("fingerprint"), "{err}");
}
