//! Inputs beyond folders: WebDataset tar shards (streamed, labels from `.cls` or `.json`), CSV and
//! Parquet tables, vggfeat's own split files, and several inputs in one run. Descriptors must be
//! bit for bit those of the same images in a folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::util;

const CLASSES: [&str; 3] = ["airplanes", "Leopards", "watch"];

/// A folder of 3 x 3 real Caltech-101 images (copies), and the list of (class, file).
fn folder(root: &Path) -> Vec<(String, PathBuf)> {
    let src = util::shared().join("datasets/caltech101/101_ObjectCategories");
    let mut out = Vec::new();
    for c in CLASSES {
        std::fs::create_dir_all(root.join(c)).unwrap();
        for i in 1..=3 {
            let f = format!("image_{i:04}.jpg");
            std::fs::copy(src.join(c).join(&f), root.join(c).join(&f)).unwrap();
            out.push((c.to_string(), root.join(c).join(&f)));
        }
    }
    out
}

/// Successful records (id -> labels, floats) and failures (id, reason).
type Records = (
    HashMap<String, (Vec<String>, Vec<f32>)>,
    Vec<(String, String)>,
);

/// id -> (labels, floats) of a store's successful records, and its failures.
fn records(store: &Path) -> Records {
    let s = vggfeat::Store::open(store).unwrap();
    let ok = s
        .ok_records()
        .map(|(r, v)| (r.id.clone(), (r.labels.clone(), v.to_vec())))
        .collect();
    let failed = s
        .failures()
        .into_iter()
        .map(|(i, w)| (i.to_string(), w.to_string()))
        .collect();
    (ok, failed)
}

use util::tar_add as add;

#[test]
fn tar_shards_give_the_folder_descriptors_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let files = folder(&tmp.path().join("images"));
    // Shard a: the first 6 images, labels in .cls; shard b: the rest, labels in .json, plus
    // captions, a sample without image and a corrupt image.
    let shards = tmp.path().join("shards");
    std::fs::create_dir_all(&shards).unwrap();
    let mut keys = HashMap::new();
    for (s, part) in [("a", &files[..6]), ("b", &files[6..])] {
        let mut b = tar::Builder::new(
            std::fs::File::create(shards.join(format!("shard-{s}.tar"))).unwrap(),
        );
        for (k, (class, path)) in part.iter().enumerate() {
            let key = format!("{k:06}");
            add(&mut b, &format!("{key}.jpg"), &std::fs::read(path).unwrap());
            if s == "a" {
                add(
                    &mut b,
                    &format!("{key}.cls"),
                    format!("{class}\n").as_bytes(),
                );
            } else {
                add(
                    &mut b,
                    &format!("{key}.json"),
                    format!(r#"{{"label": "{class}", "url": "x"}}"#).as_bytes(),
                );
                add(&mut b, &format!("{key}.txt"), b"a caption");
            }
            let folder_id = format!("{class}/{}", path.file_name().unwrap().to_string_lossy());
            keys.insert(format!("shard-{s}/{key}"), folder_id);
        }
        if s == "b" {
            add(&mut b, "no-image.cls", b"watch");
            add(&mut b, "broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg");
        }
        b.finish().unwrap();
    }
    let (fs, ts) = (
        tmp.path().join("folder-store"),
        tmp.path().join("tar-store"),
    );
    assert!(
        util::extract_tiny(&[&tmp.path().join("images")], &fs, &[])
            .output()
            .unwrap()
            .status
            .success()
    );
    let (a, b) = (shards.join("shard-a.tar"), shards.join("shard-b.tar"));
    let o = util::extract_tiny(&[&a, &b], &ts, &[]).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("shard-b/no-image") && stderr.contains("shard-b/broken"),
        "{stderr}"
    );
    let (folder_recs, _) = records(&fs);
    let (tar_recs, failed) = records(&ts);
    assert_eq!(tar_recs.len(), 9);
    for (tid, (labels, v)) in &tar_recs {
        let (flabels, fv) = &folder_recs[&keys[tid]];
        assert_eq!(labels, flabels, "{tid}: labels from .cls / .json");
        assert_eq!(v, fv, "{tid}: descriptors differ from the folder's");
    }
    let ids: Vec<&str> = failed.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, ["shard-b/broken", "shard-b/no-image"]);
    assert!(failed[1].1.contains("no image member"), "{failed:?}");

    // Resumed: nothing new; a shard mixed with a folder; a truncated shard keeps what it can.
    let again = util::extract_tiny(&[&a, &b], &ts, &[]).output().unwrap();
    assert!(
        again.status.success(),
        "failures already recorded are not retried"
    );
    assert_eq!(records(&ts).0, tar_recs);
    let mixed = tmp.path().join("mixed");
    assert!(
        util::extract_tiny(&[&a, &tmp.path().join("images/watch")], &mixed, &[])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert_eq!(records(&mixed).0.len(), 6 + 3);
    let bytes = std::fs::read(&a).unwrap();
    let cut = shards.join("shard-cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let cs = tmp.path().join("cut-store");
    let o = util::extract_tiny(&[&cut], &cs, &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let (ok, failed) = records(&cs);
    assert!(!ok.is_empty() && ok.len() < 6, "{} kept", ok.len());
    for (tid, (l, v)) in &ok {
        let orig = tid.replace("shard-cut", "shard-a");
        assert_eq!(v, &folder_recs[&keys[&orig]].1);
        // Every sample kept has its label: the one the cut fell in is a failed input instead.
        assert_eq!(
            l, &folder_recs[&keys[&orig]].0,
            "{tid}: label lost or truncated"
        );
    }
    assert!(
        failed
            .iter()
            .any(|(_, w)| w.contains("cut short in this sample")),
        "{failed:?}"
    );
    assert!(
        failed.iter().any(|(_, w)| w.contains("unreadable after")),
        "{failed:?}"
    );
}

#[test]
fn tables_and_split_files_as_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("images");
    let files = folder(&root);
    let fs = tmp.path().join("folder-store");
    assert!(
        util::extract_tiny(&[&root], &fs, &[])
            .output()
            .unwrap()
            .status
            .success()
    );
    let (want, _) = records(&fs);

    // A CSV table with a header, paths relative to its folder, labels, and other columns.
    let csv = tmp.path().join("table.csv");
    let mut body = String::from("caption,path,label\n");
    for (c, p) in &files {
        let rel = p.strip_prefix(tmp.path()).unwrap().display().to_string();
        body.push_str(&format!("\"a photo, of {c}\",{rel},{c}\n"));
    }
    std::fs::write(&csv, body).unwrap();
    let cs = tmp.path().join("csv-store");
    assert!(
        util::extract_tiny(&[&csv], &cs, &[])
            .output()
            .unwrap()
            .status
            .success()
    );
    let (got, _) = records(&cs);
    assert_eq!(got.len(), 9);
    for (id, (l, v)) in &got {
        let key = id.strip_prefix("images/").unwrap();
        assert_eq!(&want[key].0, l);
        assert_eq!(&want[key].1, v, "{id}");
    }

    // vggfeat's own split file (`id,label,set`, as `svm` writes it) with --root: the ids of
    // the folder run, so the stores agree id for id.
    let split = tmp.path().join("split0.csv");
    let mut body = String::from("id,label,set\n");
    for (k, (c, p)) in files.iter().enumerate() {
        let id = format!("{c}/{}", p.file_name().unwrap().to_string_lossy());
        body.push_str(&format!(
            "{id},{c},{}\n",
            if k % 3 == 0 { "test" } else { "train" }
        ));
    }
    std::fs::write(&split, body).unwrap();
    let ss = tmp.path().join("split-store");
    let rootarg = root.display().to_string();
    assert!(
        util::extract_tiny(&[&split], &ss, &["--root", &rootarg])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert_eq!(records(&ss).0, want);
    // Several split files share ids: their union, each image once.
    let other = tmp.path().join("split1.csv");
    let mut body = String::from("id,label,set\n");
    for (c, p) in &files[..4] {
        let id = format!("{c}/{}", p.file_name().unwrap().to_string_lossy());
        body.push_str(&format!("{id},{c},train\n"));
    }
    std::fs::write(&other, body).unwrap();
    let us = tmp.path().join("union-store");
    assert!(
        util::extract_tiny(&[&split, &other], &us, &["--root", &rootarg])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert_eq!(records(&us).0, want);
    // The same id for another image is refused, naming both inputs.
    let clash = tmp.path().join("clash.csv");
    std::fs::write(
        &clash,
        "id,label,set\nairplanes/image_0001.jpg,watch,train\n",
    )
    .unwrap();
    let o = util::extract_tiny(
        &[&split, &clash],
        &tmp.path().join("clash-store"),
        &["--root", &rootarg],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("split0.csv") && err.contains("clash.csv"),
        "{err}"
    );

    // A Parquet table with a `labels` list column.
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    let paths: Vec<String> = files.iter().map(|(_, p)| p.display().to_string()).collect();
    let mut lb = ListBuilder::new(StringBuilder::new());
    for (c, _) in &files {
        lb.values().append_value(c);
        lb.values().append_value("caltech");
        lb.append(true);
    }
    let batch = RecordBatch::try_from_iter([
        ("path", Arc::new(StringArray::from(paths)) as ArrayRef),
        ("labels", Arc::new(lb.finish()) as ArrayRef),
    ])
    .unwrap();
    let pq = tmp.path().join("table.parquet");
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&pq).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let ps = tmp.path().join("parquet-store");
    assert!(
        util::extract_tiny(&[&pq], &ps, &[])
            .output()
            .unwrap()
            .status
            .success()
    );
    let (got, _) = records(&ps);
    assert_eq!(got.len(), 9);
    for (id, (l, v)) in &got {
        let key = id.strip_prefix("images/").unwrap();
        assert_eq!(l, &vec![want[key].0[0].clone(), "caltech".to_string()]);
        assert_eq!(&want[key].1, v);
    }

    // A table without a path or id column is refused, naming the file.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "file,label\nx.jpg,a\n").unwrap();
    let o = util::extract_tiny(&[&bad], &tmp.path().join("bad-store"), &[])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.csv") && err.contains("neither a `path` nor an `id` column"),
        "{err}"
    );
}
