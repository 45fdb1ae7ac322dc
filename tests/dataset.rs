//! Dataset listing (folder, VOC devkit, list file), subsets and splits: on the real Caltech-101
//! folder in `../shared` (counts checked against its SOURCE.md) and on small synthetic sources
//! built in temporary folders.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use vggfeat::dataset::{
    Dataset, Item, OpenOptions, SourceKind, Split, SplitParams, VOC_CLASSES, sample_split,
    sample_splits, shard_of,
};

use crate::util;

fn caltech_root() -> PathBuf {
    util::shared().join("datasets/caltech101/101_ObjectCategories")
}

/// The per-class counts of `../shared/datasets/caltech101/SOURCE.md` (`| class | images |` rows).
fn source_md_counts() -> BTreeMap<String, usize> {
    let md = std::fs::read_to_string(util::shared().join("datasets/caltech101/SOURCE.md")).unwrap();
    let mut counts = BTreeMap::new();
    for line in md.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() == 4 && cells[1] != "class" && !cells[1].starts_with("---") {
            // "468 (467 .jpg + `tmp`)" -> 468
            let n = cells[2].split_whitespace().next().unwrap().parse().unwrap();
            counts.insert(cells[1].to_string(), n);
        }
    }
    counts
}

fn ids(ds: &Dataset) -> Vec<&str> {
    ds.items.iter().map(|i| i.id.as_str()).collect()
}

#[test]
fn caltech101_folder_listing() {
    let ds = Dataset::open(&caltech_root()).unwrap();
    assert_eq!(ds.kind, SourceKind::Folder);
    assert_eq!(ds.classes.len(), 102);
    assert_eq!(ds.len(), 9145);
    assert!(
        ds.skipped.is_empty(),
        "{:?}",
        &ds.skipped[..3.min(ds.skipped.len())]
    );
    let expected = source_md_counts();
    assert_eq!(expected.len(), 102);
    let counts = ds.class_counts();
    for (class, n) in ds.classes.iter().zip(&counts) {
        assert_eq!(Some(n), expected.get(class), "class {class}");
    }
    let count = |c: &str| counts[ds.class_index(c).unwrap()];
    assert_eq!(count("Faces"), 435);
    assert_eq!(count("inline_skate"), 31);
    assert_eq!(count("BACKGROUND_Google"), 468);
    // The extension-less JPEG is recognised by content.
    let tmp = &ds.items[ds.item_index("BACKGROUND_Google/tmp").unwrap()];
    assert_eq!(tmp.labels, ["BACKGROUND_Google"]);
    assert_eq!(tmp.path, caltech_root().join("BACKGROUND_Google/tmp"));
    // Sorted byte-wise (upper case first), unique, and the same on a second listing.
    assert!(ds.items.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(ds.items[0].id, "BACKGROUND_Google/image_0001.jpg");
    assert_eq!(ds.items.last().unwrap().id, "yin_yang/image_0060.jpg");
    assert_eq!(Dataset::from_folder(&caltech_root()).unwrap(), ds);
}

#[test]
fn caltech101_limit_and_shards() {
    let ds = Dataset::from_folder(&caltech_root()).unwrap();
    let small = ds.limit_per_class(3);
    assert_eq!(small.len(), 306);
    assert_eq!(small.classes, ds.classes);
    assert!(small.class_counts().iter().all(|&n| n == 3));
    assert_eq!(
        ids(&small)[..4],
        [
            "BACKGROUND_Google/image_0001.jpg",
            "BACKGROUND_Google/image_0002.jpg",
            "BACKGROUND_Google/image_0003.jpg",
            "Faces/image_0001.jpg"
        ]
    );
    // inline_skate has 31 images: a limit above that keeps them all.
    let c = ds.class_index("inline_skate").unwrap();
    assert_eq!(ds.limit_per_class(40).class_counts()[c], 31);

    let n = 5;
    let mut all = Vec::new();
    for s in 0..n {
        let part = ds.shard(s, n).unwrap();
        assert_eq!(part.classes, ds.classes);
        // Roughly a fifth each (9145 / 5 = 1829).
        assert!(
            (1650..2010).contains(&part.len()),
            "shard {s}: {}",
            part.len()
        );
        assert!(part.items.iter().all(|i| shard_of(&i.id, n) == s));
        all.extend(part.items.into_iter().map(|i| i.id));
    }
    all.sort();
    assert_eq!(all, ids(&ds));
}

#[test]
fn caltech101_splits() {
    let ds = Dataset::from_folder(&caltech_root()).unwrap();
    let params = SplitParams::default(); // 30 train, up to 50 test, seed 0, 3 splits
    let splits = sample_splits(&ds, &params).unwrap();
    assert_eq!(splits.len(), 3);
    let counts = ds.class_counts();
    let want_test: usize = counts.iter().map(|&n| (n - 30).min(50)).sum();
    for split in &splits {
        assert_eq!(split.classes, ds.classes);
        assert_eq!(split.train.len(), 102 * 30);
        assert_eq!(split.test.len(), want_test);
        for (c, &(tr, te)) in split.class_counts().iter().enumerate() {
            assert_eq!(
                (tr, te),
                (30, (counts[c] - 30).min(50)),
                "{}",
                ds.classes[c]
            );
        }
        let train: HashSet<usize> = split.train.iter().copied().collect();
        assert!(split.test.iter().all(|i| !train.contains(i)), "overlap");
        // Labels agree with the dataset.
        for (&i, &c) in split.train.iter().zip(&split.train_labels) {
            assert_eq!(ds.items[i].labels[0], split.classes[c]);
        }
        for (&i, &c) in split.test.iter().zip(&split.test_labels) {
            assert_eq!(ds.items[i].labels[0], split.classes[c]);
        }
    }
    assert_ne!(splits[0].train, splits[1].train);
    assert_ne!(splits[1].train, splits[2].train);
    // Same seed, same split; another seed, another split.
    assert_eq!(sample_split(&ds, &params, 1).unwrap(), splits[1]);
    let other = SplitParams {
        seed: 1,
        ..params.clone()
    };
    assert_ne!(sample_split(&ds, &other, 0).unwrap().train, splits[0].train);

    // Dropping the background class removes it and leaves every other class's draw unchanged.
    let dropped = SplitParams {
        drop_classes: vec!["BACKGROUND_Google".to_string()],
        ..params.clone()
    };
    let d = sample_split(&ds, &dropped, 0).unwrap();
    assert_eq!(d.classes.len(), 101);
    assert!(!d.classes.iter().any(|c| c == "BACKGROUND_Google"));
    let bg = ds.class_index("BACKGROUND_Google").unwrap();
    let keep: Vec<usize> = splits[0]
        .train
        .iter()
        .copied()
        .filter(|&i| ds.items[i].labels[0] != ds.classes[bg])
        .collect();
    assert_eq!(d.train, keep);

    // Caltech-256 protocol: all the rest for testing.
    let rest = SplitParams {
        test_per_class: None,
        ..params.clone()
    };
    let r = sample_split(&ds, &rest, 0).unwrap();
    assert_eq!(r.train.len() + r.test.len(), ds.len());
    assert_eq!(
        r.train, splits[0].train,
        "train draw independent of test size"
    );

    // The CSV round trip.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("split0.csv");
    splits[0].write_csv(&ds, &file).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("id,label,set\n"));
    assert_eq!(text.lines().count(), 1 + 3060 + want_test);
    assert_eq!(Split::read_csv(&file, &ds).unwrap(), splits[0]);
}

fn item(id: &str, label: &str) -> Item {
    Item {
        id: id.to_string(),
        path: PathBuf::from(id),
        labels: vec![label.to_string()],
        voc_labels: None,
        member: None,
    }
}

fn synthetic(classes: &[(&str, usize)]) -> Dataset {
    let items = classes
        .iter()
        .flat_map(|&(c, n)| (0..n).map(move |i| item(&format!("{c}/{i:03}.jpg"), c)))
        .collect();
    Dataset::from_items(PathBuf::from("synthetic"), SourceKind::Folder, items).unwrap()
}

#[test]
fn small_classes_and_invalid_split_parameters() {
    let ds = synthetic(&[("big", 12), ("one", 1), ("small", 3)]);
    let params = SplitParams {
        train_per_class: 5,
        test_per_class: Some(4),
        splits: 1,
        ..Default::default()
    };
    let e = sample_split(&ds, &params, 0).unwrap_err().to_string();
    assert!(e.contains("class `one` has 1 image(s)"), "{e}");
    let params = SplitParams {
        drop_classes: vec!["one".to_string()],
        ..params
    };
    let s = sample_split(&ds, &params, 0).unwrap();
    assert_eq!(s.classes, ["big", "small"]);
    // big: 5 train, 4 test; small (3 <= 5): 2 train, 1 test.
    assert_eq!(s.class_counts(), [(5, 4), (2, 1)]);

    for bad in [
        SplitParams {
            train_per_class: 0,
            ..Default::default()
        },
        SplitParams {
            test_per_class: Some(0),
            ..Default::default()
        },
        SplitParams {
            splits: 0,
            ..Default::default()
        },
        SplitParams {
            drop_classes: vec!["nope".to_string()],
            ..Default::default()
        },
    ] {
        assert!(matches!(
            sample_splits(&ds, &bad),
            Err(vggfeat::Error::Param { .. })
        ));
    }
    // Unlabelled images cannot be split.
    let mut unlabelled = ds.clone();
    unlabelled.items[0].labels.clear();
    let e = sample_split(&unlabelled, &params, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`big/000.jpg` has 0 labels"), "{e}");
}

#[test]
fn split_csv_errors_name_the_line() {
    let ds = synthetic(&[("a", 4), ("b", 4)]);
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "id,label\na/000.jpg,a\n",
            "line 1: the header must be `id,label,set`",
        ),
        (
            "id,label,set\na/000.jpg,a,train\nzzz.jpg,a,test\n",
            "line 3: image `zzz.jpg` is not in the dataset",
        ),
        (
            "id,label,set\na/000.jpg,b,train\n",
            "line 2: image `a/000.jpg` is labelled `b`, the dataset says `a`",
        ),
        (
            "id,label,set\na/000.jpg,a,val\n",
            "line 2: set `val` is not `train` or `test`",
        ),
        (
            "id,label,set\na/000.jpg,a,train\nb/001.jpg,b,test\na/000.jpg,a,test\n",
            "line 4: image `a/000.jpg` is listed twice (first on line 2)",
        ),
    ];
    for (text, want) in cases {
        let file = dir.path().join("s.csv");
        std::fs::write(&file, text).unwrap();
        let e = Split::read_csv(&file, &ds).unwrap_err().to_string();
        assert!(
            e.contains("s.csv: ") && e.contains(want),
            "{e}\nexpected: {want}"
        );
    }
    // A hand-written split is read back with its own classes.
    let file = dir.path().join("ok.csv");
    std::fs::write(&file, "id,label,set\nb/003.jpg,b,test\nb/000.jpg,b,train\n").unwrap();
    let s = Split::read_csv(&file, &ds).unwrap();
    assert_eq!(s.classes, ["b"]);
    assert_eq!((s.train.clone(), s.test.clone()), (vec![4], vec![7]));
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn jpeg_bytes() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/images/rgb.jpg")).unwrap()
}

#[test]
fn folder_listing_rules() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let jpg = jpeg_bytes();
    write(&root.join("cat/a.jpg"), &jpg);
    write(&root.join("cat/sub/deep.jpg"), &jpg);
    write(&root.join("cat/tmp"), &jpg); // no extension: recognised by content
    write(&root.join("cat/broken.jpg"), b"this is not a JPEG"); // listed, fails to decode
    write(&root.join("cat/empty.jpg"), b"");
    write(&root.join("cat/notes.txt"), b"some notes");
    write(&root.join("cat/.DS_Store"), b"\0\0\0\x01Bud1");
    write(&root.join(".hidden/h.jpg"), &jpg);
    write(&root.join("dog/x.JPG"), &jpg);
    write(&root.join("only_text/readme.txt"), b"no images here");
    write(&root.join("root.jpg"), &jpg);
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        std::os::unix::fs::symlink(root.join("dog"), root.join("dog_link")).unwrap();
        std::fs::create_dir(root.join("loop")).unwrap();
        std::os::unix::fs::symlink("..", root.join("loop/up")).unwrap();
        std::os::unix::fs::symlink("missing.jpg", root.join("dangling.jpg")).unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"cat/\xFF.jpg");
        write(&root.join(bad), &jpg);
    }
    let ds = Dataset::open(&root).unwrap();
    assert_eq!(ds.kind, SourceKind::Folder);
    let mut want = vec![
        "cat/a.jpg",
        "cat/broken.jpg",
        "cat/empty.jpg",
        "cat/sub/deep.jpg",
        "cat/tmp",
        "dog/x.JPG",
        "root.jpg",
    ];
    if cfg!(unix) {
        want.push("dog_link/x.JPG");
        want.push("cat/%FF.jpg");
        want.sort();
    }
    assert_eq!(ids(&ds), want);
    let labels: Vec<Vec<String>> = ds.items.iter().map(|i| i.labels.clone()).collect();
    assert_eq!(labels[0], ["cat"]);
    assert_eq!(labels[3], ["cat"], "label is the first-level folder");
    assert!(
        ds.items.last().unwrap().labels.is_empty(),
        "root files have no label"
    );
    let mut want_classes = vec!["cat", "dog"];
    if cfg!(unix) {
        want_classes.push("dog_link");
    }
    assert_eq!(ds.classes, want_classes);
    assert!(ds.items.iter().all(|i| i.path.starts_with(&root)));

    let reasons: BTreeMap<String, String> = ds
        .skipped
        .iter()
        .map(|s| {
            let rel = s
                .path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, s.reason.clone())
        })
        .collect();
    assert_eq!(reasons[".hidden"], "hidden");
    assert_eq!(reasons["cat/.DS_Store"], "hidden");
    assert_eq!(reasons["cat/notes.txt"], "not an image");
    assert_eq!(reasons["only_text/readme.txt"], "not an image");
    if cfg!(unix) {
        assert!(
            reasons["loop/up"].starts_with("symbolic link loop"),
            "{reasons:?}"
        );
        assert!(
            reasons["dangling.jpg"].contains("No such file"),
            "{reasons:?}"
        );
        assert_eq!(ds.skipped.len(), 6);
        // A name that is not UTF-8 is listed under a reversible escaped id.
        use std::os::unix::ffi::OsStrExt;
        let odd = &ds.items[ds.item_index("cat/%FF.jpg").unwrap()];
        let raw = std::ffi::OsStr::from_bytes(b"cat/\xFF.jpg");
        assert_eq!(odd.path, root.join(raw));
        assert_eq!(vggfeat::dataset::path_of_id(&odd.id), Path::new(raw));
    } else {
        assert_eq!(ds.skipped.len(), 4);
    }

    // Listed files with bad content are reported by the decoder, naming the file.
    let broken = &ds.items[ds.item_index("cat/broken.jpg").unwrap()];
    let e = vggfeat::image_io::load_rgb(&broken.path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.jpg: not an image"), "{e}");
    let tmp = &ds.items[ds.item_index("cat/tmp").unwrap()];
    assert!(vggfeat::image_io::load_rgb(&tmp.path).is_ok());

    // A file is not a folder; a missing path is an I/O error naming it.
    assert!(Dataset::from_folder(&root.join("root.jpg")).is_err());
    let e = Dataset::open(&root.join("nope")).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}

/// A tiny VOC devkit: 3 images, `cat` and `dog` labelled, every other class negative.
fn voc_devkit(root: &Path, split: &str, overrides: &[(&str, &str)]) {
    std::fs::create_dir_all(root.join("JPEGImages")).unwrap();
    let main = root.join("ImageSets/Main");
    write(
        &main.join(format!("{split}.txt")),
        b"000002\n000001\n000003\n",
    );
    for class in VOC_CLASSES {
        let text = match class {
            "cat" => "000001  1\n000002 -1\n000003  0\n",
            "dog" => "000001 -1\n000002  1\n000003  1\n",
            _ => "000001 -1\n000002 -1\n000003 -1\n",
        };
        let text = overrides
            .iter()
            .find(|(c, _)| *c == class)
            .map_or(text, |(_, t)| t);
        write(&main.join(format!("{class}_{split}.txt")), text.as_bytes());
    }
}

#[test]
fn voc_devkit_labels() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("VOC2007");
    voc_devkit(&root, "trainval", &[]);
    let ds = Dataset::open(&root).unwrap();
    assert_eq!(ds.kind, SourceKind::Voc);
    assert_eq!(ds.classes, VOC_CLASSES);
    assert_eq!(
        ids(&ds),
        [
            "JPEGImages/000001.jpg",
            "JPEGImages/000002.jpg",
            "JPEGImages/000003.jpg"
        ]
    );
    assert_eq!(ds.items[0].path, root.join("JPEGImages/000001.jpg"));
    let (cat, dog) = (
        ds.class_index("cat").unwrap(),
        ds.class_index("dog").unwrap(),
    );
    let voc: Vec<&Vec<i8>> = ds
        .items
        .iter()
        .map(|i| i.voc_labels.as_ref().unwrap())
        .collect();
    assert_eq!([voc[0][cat], voc[1][cat], voc[2][cat]], [1, -1, 0]);
    assert_eq!([voc[0][dog], voc[1][dog], voc[2][dog]], [-1, 1, 1]);
    assert!(voc.iter().all(|v| v.len() == 20 && v[0] == -1));
    assert_eq!(ds.items[0].labels, ["cat"]);
    assert_eq!(
        ds.items[2].labels,
        ["dog"],
        "difficult (0) is not a positive"
    );
    assert_eq!(ds.class_counts()[cat], 1);
    assert_eq!(ds.class_counts()[dog], 2);
    // Multi-label data has its own splits.
    assert!(sample_split(&ds, &SplitParams::default(), 0).is_err());

    // A split without class files (a test set): images without labels.
    write(&root.join("ImageSets/Main/test.txt"), b"000010\n000011\n");
    let opts = OpenOptions {
        voc_split: "test".to_string(),
        ..Default::default()
    };
    let test = Dataset::open_with(&root, &opts).unwrap();
    assert_eq!(test.len(), 2);
    assert!(
        test.items
            .iter()
            .all(|i| i.voc_labels.is_none() && i.labels.is_empty())
    );
    assert_eq!(test.classes, VOC_CLASSES);

    let opts = OpenOptions {
        voc_split: "../x".to_string(),
        ..Default::default()
    };
    assert!(matches!(
        Dataset::open_with(&root, &opts),
        Err(vggfeat::Error::Param {
            param: vggfeat::Param::VocSplit,
            ..
        })
    ));
}

/// (class files with contents, expected file name, expected words).
type VocCase<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

#[test]
fn voc_devkit_errors_name_file_and_line() {
    let cases: [VocCase; 5] = [
        (
            &[("cat", "000001 1\n000002 2\n000003 1\n")],
            "cat_trainval.txt",
            "line 2: label `2` is not 1, -1 or 0",
        ),
        (
            &[("dog", "000001 1\n000009 1\n000003 1\n")],
            "dog_trainval.txt",
            "line 2: image `000009` is not in trainval.txt",
        ),
        (
            &[("bus", "000001 1\n000002 1\n")],
            "bus_trainval.txt",
            "labels 2 of the 3 images of trainval.txt; `000003` is missing",
        ),
        (
            &[("cow", "000001 1 extra\n")],
            "cow_trainval.txt",
            "line 1: expected `<image id> <1|-1|0>`",
        ),
        (
            &[("sofa", "000001 1\n000001 -1\n")],
            "sofa_trainval.txt",
            "line 2: image `000001` is labelled twice",
        ),
    ];
    for (overrides, file, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        voc_devkit(dir.path(), "trainval", overrides);
        let e = Dataset::from_voc(dir.path(), "trainval")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{file}: {want}")),
            "{e}\nexpected: {file}: {want}"
        );
    }
    // Some class files but not all.
    let dir = tempfile::tempdir().unwrap();
    voc_devkit(dir.path(), "trainval", &[]);
    std::fs::remove_file(dir.path().join("ImageSets/Main/tvmonitor_trainval.txt")).unwrap();
    let e = Dataset::from_voc(dir.path(), "trainval")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tvmonitor_trainval.txt: missing: 19 of the 20"),
        "{e}"
    );
    // No such split.
    let e = Dataset::from_voc(dir.path(), "val")
        .unwrap_err()
        .to_string();
    assert!(e.contains("val.txt"), "{e}");
}

#[test]
fn list_file_sources() {
    let dir = tempfile::tempdir().unwrap();
    let lists = dir.path().join("lists");
    let abs = dir.path().join("elsewhere/e.jpg");
    // A byte-order mark first (as Windows editors write); only a tab separates a label, so
    // `images/b,x.jpg` is a path with a comma.
    let text = format!(
        "\u{FEFF}images/a.jpg\tcat\n\
         # images for the test\n\
         images/b.jpg\tdog\n\
         \n\
         ./images/c d.jpg\n\
         {}\t cat \n\
         images/f,g.jpg\tdog\n\
         images/b,x.jpg\n\
         \x20  # an indented comment\n\
         {}/images/h.jpg\tsiamese cat\r\n",
        abs.display(),
        lists.display()
    );
    write(&lists.join("set.txt"), text.as_bytes());
    let ds = Dataset::open(&lists.join("set.txt")).unwrap();
    assert_eq!(ds.kind, SourceKind::List);
    assert_eq!(ds.root, lists);
    let abs_id = format!("/{}", abs.to_str().unwrap().trim_start_matches('/'));
    let mut want = vec![
        abs_id.as_str(),
        "images/a.jpg",
        "images/b,x.jpg",
        "images/b.jpg",
        "images/c d.jpg",
        "images/f,g.jpg",
        "images/h.jpg",
    ];
    want.sort();
    assert_eq!(ids(&ds), want);
    assert_eq!(ds.classes, ["cat", "dog", "siamese cat"]);
    let get = |id: &str| &ds.items[ds.item_index(id).unwrap()];
    assert_eq!(get("images/a.jpg").path, lists.join("images/a.jpg"));
    assert_eq!(get("images/b.jpg").labels, ["dog"]);
    assert!(get("images/c d.jpg").labels.is_empty());
    assert_eq!(get(&abs_id).path, abs);
    assert_eq!(get(&abs_id).labels, ["cat"]);
    assert_eq!(get("images/f,g.jpg").labels, ["dog"]);
    assert_eq!(get("images/h.jpg").labels, ["siamese cat"]);
    assert_eq!(
        get("images/a.jpg").labels,
        ["cat"],
        "the BOM is not part of the path"
    );
    assert!(get("images/b,x.jpg").labels.is_empty());

    for (text, want) in [
        (
            "a.jpg\ncat\n\n# x\na.jpg\tdog\n",
            "line 5: `a.jpg` is listed twice (first on line 1)",
        ),
        ("a.jpg\n\tcat\n", "line 2: no path before the label"),
        (
            "a.jpg\n./b.jpg\nb.jpg\n",
            "line 3: `b.jpg` is listed twice (first on line 2)",
        ),
    ] {
        let file = lists.join("bad.txt");
        std::fs::write(&file, text).unwrap();
        let e = Dataset::from_list(&file).unwrap_err().to_string();
        assert!(
            e.contains(&format!("bad.txt: {want}")),
            "{e}\nexpected: {want}"
        );
    }
    let file = lists.join("photo.txt");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/images/rgb.jpg"),
        &file,
    )
    .unwrap();
    let e = Dataset::from_list(&file).unwrap_err().to_string();
    assert!(
        e.contains("photo.txt: this is an image, not a list file"),
        "{e}"
    );
    let file = lists.join("latin1.txt");
    std::fs::write(&file, b"a.jpg\nb\xE9.jpg\n").unwrap();
    let e = Dataset::from_list(&file).unwrap_err().to_string();
    assert!(e.contains("latin1.txt: line 2: not UTF-8 text"), "{e}");
}
