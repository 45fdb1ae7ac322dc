//! `vggfeat neighbours` on a store extracted from real images (the tiny fixture's and
//! Caltech-101's, through the tiny VGG-D), against a brute-force reference computed here from
//! `export`'s descriptors: f64 dot products and a full sort (similarity descending, then id).
//! Includes exact ties (one image stored under two ids), k larger than the store, queries by
//! image, the page of thumbnails, and the refusals.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::util::{extract_tiny, read_csv, shared, tiny, vggfeat};

/// A folder of real images in two classes: the tiny fixture's three PNGs plus a byte copy of
/// one of them (`a/0-copy.png`, an exact tie), and four Caltech-101 JPEGs.
fn images(root: &Path) {
    let a = root.join("a");
    let b = root.join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    for i in 0..3 {
        std::fs::copy(
            tiny().join(format!("images/{i}.png")),
            a.join(format!("{i}.png")),
        )
        .unwrap();
    }
    std::fs::copy(tiny().join("images/0.png"), a.join("0-copy.png")).unwrap();
    let c101 = shared().join("datasets/caltech101/101_ObjectCategories");
    for (class, n) in [
        ("Faces", 1),
        ("Faces", 2),
        ("Leopards", 1),
        ("airplanes", 1),
    ] {
        let f = format!("image_{n:04}.jpg");
        std::fs::copy(c101.join(class).join(&f), b.join(format!("{class}-{f}"))).unwrap();
    }
}

/// A store of `images` and its exported descriptors by id (id order).
fn store(dir: &Path) -> (PathBuf, Vec<(String, Vec<f32>)>) {
    let imgs = dir.join("imgs");
    images(&imgs);
    let store = dir.join("store");
    let st = extract_tiny(&[&imgs], &store, &["--scales", "224,256"])
        .status()
        .unwrap();
    assert!(st.success());
    let csv = dir.join("x.csv");
    vggfeat()
        .arg("export")
        .arg(&store)
        .arg("--csv")
        .arg(&csv)
        .assert()
        .success();
    let (_, rows) = read_csv(&csv);
    (store, rows.into_iter().map(|(id, _, v)| (id, v)).collect())
}

/// Brute force: every row's f64 dot product with `q`, sorted by similarity (descending) then
/// row; `skip` left out.
fn brute(x: &[(String, Vec<f32>)], q: &[f32], skip: Option<usize>) -> Vec<(String, f64)> {
    let mut s: Vec<(usize, f64)> = x
        .iter()
        .enumerate()
        .filter(|(r, _)| Some(*r) != skip)
        .map(|(r, (_, v))| (r, v.iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum()))
        .collect();
    s.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    s.into_iter().map(|(r, d)| (x[r].0.clone(), d)).collect()
}

/// `neighbours.csv` (or stdout) as query -> [(id, similarity)] in rank order.
fn parse(text: &str) -> HashMap<String, Vec<(String, f32)>> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["query", "rank", "id", "label", "similarity"]
    );
    let mut out: HashMap<String, Vec<(String, f32)>> = HashMap::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        let hits = out.entry(rec[0].to_string()).or_default();
        assert_eq!(
            rec[1].parse::<usize>().unwrap(),
            hits.len() + 1,
            "ranks from 1"
        );
        hits.push((rec[2].to_string(), rec[4].parse().unwrap()));
    }
    out
}

/// The search agrees with the reference: the same similarities rank by rank (1e-5), the same
/// ids wherever the reference's similarities are apart by more than that.
fn agrees(what: &str, got: &[(String, f32)], want: &[(String, f64)]) {
    assert_eq!(got.len(), want.len(), "{what}: number of neighbours");
    for (r, ((gid, gs), (wid, ws))) in got.iter().zip(want).enumerate() {
        assert!(
            (*gs as f64 - ws).abs() < 1e-5,
            "{what} rank {}: similarity {gs} vs {ws}",
            r + 1
        );
        let near = want.iter().filter(|(_, s)| (s - ws).abs() < 1e-5).count();
        if near == 1 {
            assert_eq!(gid, wid, "{what} rank {}", r + 1);
        }
    }
}

#[test]
fn by_id_matches_brute_force_with_ties_and_k_past_the_store() {
    let d = tempfile::tempdir().unwrap();
    let (store, x) = store(d.path());
    assert_eq!(x.len(), 8);
    let ids: Vec<&str> = x.iter().map(|(id, _)| id.as_str()).collect();
    // k = 20 > 8 rows: every other row, in order; blocks of 3 rows cross the store.
    let out = vggfeat()
        .args(["neighbours", "-k", "20", "--block", "3", "-f"])
        .arg(&store)
        .arg("--ids")
        .arg(ids.join(","))
        .assert()
        .success();
    let got = parse(&String::from_utf8(out.get_output().stdout.clone()).unwrap());
    assert_eq!(got.len(), x.len());
    for (r, (id, v)) in x.iter().enumerate() {
        agrees(id, &got[id], &brute(&x, v, Some(r)));
        assert_eq!(got[id].len(), 7, "{id}: its own record is left out");
        assert!(got[id].iter().all(|(n, _)| n != id));
    }
    // The exact tie: a/0.png and a/0-copy.png have the same descriptor, so the same float
    // similarity to every query; the lower id comes first.
    let q = "b/Faces-image_0001.jpg";
    let pos = |n: &str| got[q].iter().position(|(i, _)| i == n).unwrap();
    let (p0, pc) = (pos("a/0.png"), pos("a/0-copy.png"));
    assert_eq!(got[q][p0].1, got[q][pc].1);
    assert_eq!(pc, p0 - 1, "a/0-copy.png sorts before a/0.png ('-' < '.')");
    // Each copy's nearest neighbour is the other, at similarity 1.
    assert_eq!(got["a/0.png"][0].0, "a/0-copy.png");
    assert!((got["a/0.png"][0].1 - 1.0).abs() < 1e-5);

    // --include-self keeps the record: the tie at similarity 1 between a/0.png and its copy
    // goes to the lower id.
    let out = vggfeat()
        .args(["neighbours", "-k", "3", "--include-self", "-f"])
        .arg(&store)
        .args(["--ids", "a/0.png", "--ids", "a/1.png"])
        .assert()
        .success();
    let got = parse(&String::from_utf8(out.get_output().stdout.clone()).unwrap());
    assert_eq!(got["a/0.png"][0].0, "a/0-copy.png");
    assert_eq!(got["a/0.png"][1].0, "a/0.png");
    assert_eq!(got["a/0.png"][0].1, got["a/0.png"][1].1);
    assert_eq!(got["a/1.png"][0].0, "a/1.png");
    agrees("a/1.png", &got["a/1.png"], &brute(&x, &x[2].1, None)[..3]);
}

#[test]
fn image_queries_page_and_refusals() {
    let d = tempfile::tempdir().unwrap();
    let (store, x) = store(d.path());
    // A query image described with the store's own nets finds its stored self at similarity 1,
    // and ranks like the brute force on its stored descriptor.
    let img = d.path().join("imgs/b/Leopards-image_0001.jpg");
    let row = x
        .iter()
        .position(|(id, _)| id == "b/Leopards-image_0001.jpg")
        .unwrap();
    // One neighbour's file is gone since extraction: its thumbnail says why.
    std::fs::remove_file(d.path().join("imgs/b/airplanes-image_0001.jpg")).unwrap();
    let out = d.path().join("nn");
    vggfeat()
        .args(["neighbours", "-k", "8", "--quiet", "-f"])
        .arg(&store)
        .arg("--query")
        .arg(&img)
        .args(["--ids", "a/2.png", "-o"])
        .arg(&out)
        .assert()
        .success()
        .stdout("");
    let got = parse(&std::fs::read_to_string(out.join("neighbours.csv")).unwrap());
    let name = img.display().to_string();
    agrees(&name, &got[&name], &brute(&x, &x[row].1, None));
    assert_eq!(got[&name][0].0, "b/Leopards-image_0001.jpg");
    assert!((got[&name][0].1 - 1.0).abs() < 1e-5);
    agrees("a/2.png", &got["a/2.png"], &brute(&x, &x[3].1, Some(3)));

    let html = std::fs::read_to_string(out.join("neighbours.html")).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    // Each query: its own figure and 8 (then 7) neighbours; one of them shows a placeholder.
    assert_eq!(html.matches("<figure").count(), 2 + 8 + 7);
    assert_eq!(
        html.matches("<img src=\"data:image/jpeg;base64,").count(),
        2 + 8 + 7 - 2
    );
    assert_eq!(
        html.matches("cannot show: no longer among the store&#39;s inputs")
            .count(),
        2
    );

    // Refusals name what is wrong.
    vggfeat()
        .args(["neighbours", "-f"])
        .arg(&store)
        .args(["--ids", "a/nope.png"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "a/nope.png: no such id in the store",
        ));
    let bad = d.path().join("bad.png");
    std::fs::write(&bad, b"not an image").unwrap();
    vggfeat()
        .args(["neighbours", "-f"])
        .arg(&store)
        .arg("--query")
        .arg(&bad)
        .assert()
        .code(3)
        .stderr(predicates::str::contains(bad.display().to_string()));
    vggfeat()
        .args(["neighbours", "-k", "0", "-f"])
        .arg(&store)
        .args(["--ids", "a/1.png"])
        .assert()
        .code(2);
    // A store whose every input failed has nothing to search.
    let broken = d.path().join("broken/c");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("x.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let empty = d.path().join("empty");
    extract_tiny(&[&d.path().join("broken")], &empty, &[])
        .status()
        .unwrap();
    vggfeat()
        .args(["neighbours", "-f"])
        .arg(&empty)
        .arg("--query")
        .arg(&img)
        .assert()
        .code(3)
        .stderr(predicates::str::contains(
            "none of its 1 records has a descriptor",
        ));
}

/// The id -> row map of `x` (export order).
fn rows_by_id(x: &[(String, Vec<f32>)]) -> HashMap<&str, usize> {
    x.iter()
        .enumerate()
        .map(|(r, (id, _))| (id.as_str(), r))
        .collect()
}

/// `neighbours -f STORE --index INDEX -k K --ids IDS`, which must succeed: its (stdout, stderr).
fn search_with_index(store: &Path, idx: &Path, k: usize, ids: &[&str]) -> (String, String) {
    let out = vggfeat()
        .args(["neighbours", "-k", &k.to_string(), "-f"])
        .arg(store)
        .arg("--index")
        .arg(idx)
        .arg("--ids")
        .arg(ids.join(","))
        .assert()
        .success();
    let o = out.get_output();
    (
        String::from_utf8(o.stdout.clone()).unwrap(),
        String::from_utf8(o.stderr.clone()).unwrap(),
    )
}

/// `OUT/index.json` as JSON.
fn index_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap()
}

#[test]
fn an_index_gives_the_exact_answer_on_a_small_store_of_real_images() {
    let d = tempfile::tempdir().unwrap();
    let (store, x) = store(d.path());
    let idx = d.path().join("idx");
    vggfeat()
        .args(["index", "-q", "-f"])
        .arg(&store)
        .arg("-o")
        .arg(&idx)
        .assert()
        .success();
    let meta = index_json(&idx);
    assert_eq!(meta["rows"], 8);
    assert_eq!(meta["quantization"], "bf16");
    assert_eq!(meta["aggregate"], "stack");
    // Eight rows, all of them queries: the graph is searched exhaustively (ef 64 > 8 rows).
    assert_eq!(meta["recall"]["queries"], 8);
    assert_eq!(meta["recall"]["k"], 7, "k = 10 capped at the 7 other rows");
    assert_eq!(meta["recall"]["recall"], 1.0);
    let ids: Vec<&str> = x.iter().map(|(id, _)| id.as_str()).collect();
    let (stdout, err) = search_with_index(&store, &idx, 20, &ids);
    assert!(
        err.contains("approximate search: index of 8 rows (bf16), ef = 64; recall@7 1.0000"),
        "{err}"
    );
    let got = parse(&stdout);
    for (r, (id, v)) in x.iter().enumerate() {
        // Similarities are scored exactly from the store's rows, not the bf16 graph's.
        agrees(id, &got[id], &brute(&x, v, Some(r)));
    }
    // The exact tie keeps the exact search's order: the lower id first.
    assert_eq!(got["a/0.png"][0].0, "a/0-copy.png");
    let q = "b/Faces-image_0001.jpg";
    let pos = |n: &str| got[q].iter().position(|(i, _)| i == n).unwrap();
    assert_eq!(pos("a/0-copy.png") + 1, pos("a/0.png"));
    assert_eq!(rows_by_id(&x).len(), 8);
}

/// A store of `n` rows of dimension 2 x `dim` (two scales): 40 clusters of non-negative
/// vectors, seeded.
fn clustered_store(path: &Path, n: usize, dim: usize) {
    use rand::{Rng, SeedableRng};
    use vggfeat::dataset::SourceKind;
    use vggfeat::model::config::{ConfigName, LayerName};
    use vggfeat::preprocess::Normalization;
    use vggfeat::store::{
        FORMAT_VERSION, InputSpec, Manifest, NetSpec, Outcome, Record, StoreWriter,
    };
    let m = Manifest {
        format_version: FORMAT_VERSION,
        tool_version: "synthetic".into(),
        input: InputSpec::new("/synthetic", SourceKind::Folder),
        nets: vec![NetSpec {
            weights: "synthetic".into(),
            sha256: "00".into(),
            config: ConfigName::D,
            layer: LayerName::Fc7,
            dim,
            preprocess: Normalization::Torchvision,
            precision: Default::default(),
        }],
        scales: vec![256, 384],
        flip: true,
        max_pixels: 1,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let centres: Vec<Vec<f32>> = (0..40)
        .map(|_| (0..2 * dim).map(|_| rng.gen_range(0.0..1.0f32)).collect())
        .collect();
    let (mut w, _) = StoreWriter::create_or_resume(path, &m, 512).unwrap();
    for i in 0..n {
        let c = &centres[i % centres.len()];
        let v = c
            .iter()
            .map(|x| (x + 0.6 * rng.gen_range(-0.5..0.5f32)).max(0.0))
            .collect();
        w.push(Record {
            id: format!("c{:02}/{i:05}.jpg", i % centres.len()),
            labels: vec![format!("c{:02}", i % centres.len())],
            outcome: Outcome::Ok(v),
            source: None,
        })
        .unwrap();
    }
    w.finish(true, Some(n), None).unwrap();
}

#[test]
fn an_index_states_its_recall_finds_the_neighbours_and_refuses_other_stores() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("store");
    clustered_store(&store, 3000, 48);
    let csv = d.path().join("x.csv");
    vggfeat()
        .arg("export")
        .arg(&store)
        .arg("--csv")
        .arg(&csv)
        .assert()
        .success();
    let (_, rows) = read_csv(&csv);
    let x: Vec<(String, Vec<f32>)> = rows.into_iter().map(|(id, _, v)| (id, v)).collect();
    let by_id = rows_by_id(&x);
    let idx = d.path().join("idx");
    let out = vggfeat()
        .args([
            "index",
            "--quantization",
            "f32",
            "--recall-queries",
            "300",
            "-f",
        ])
        .arg(&store)
        .arg("-o")
        .arg(&idx)
        .assert()
        .success();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("indexed 3000 rows of dimension 96 (f32"),
        "{err}"
    );
    let meta = index_json(&idx);
    assert_eq!(meta["recall"]["queries"], 300);
    assert_eq!(meta["recall"]["k"], 10);
    let stated = meta["recall"]["recall"].as_f64().unwrap();
    assert!((0.95..=1.0).contains(&stated), "recall@10 {stated}");

    // Every 30th row as a query: the neighbours' similarities are exact, in order, and most of
    // the true ten nearest are found.
    let queries: Vec<&str> = x.iter().step_by(30).map(|(id, _)| id.as_str()).collect();
    let got = parse(&search_with_index(&store, &idx, 10, &queries).0);
    let mut found = 0;
    for q in &queries {
        let r = by_id[q];
        let want = brute(&x, &x[r].1, Some(r));
        let hits = &got[*q];
        assert_eq!(hits.len(), 10, "{q}");
        for (i, (id, s)) in hits.iter().enumerate() {
            let exact: f64 = x[by_id[id.as_str()]]
                .1
                .iter()
                .zip(&x[r].1)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum();
            assert!(
                (*s as f64 - exact).abs() < 1e-5,
                "{q} -> {id}: {s} vs {exact}"
            );
            assert_ne!(id, q, "its own record is left out");
            if i > 0 {
                assert!(hits[i - 1].1 >= *s, "{q}: best first");
            }
        }
        let kth = want[9].1;
        found += hits
            .iter()
            .filter(|(id, s)| want[..10].iter().any(|(w, _)| w == id) || *s as f64 >= kth - 1e-6)
            .count();
    }
    let recall = found as f64 / (10 * queries.len()) as f64;
    assert!(recall >= 0.9, "recall@10 of the search {recall}");

    // Refusals, each naming what differs.
    let refuse = |extra: &[&str], idx: &Path, store: &Path| -> String {
        let out = vggfeat()
            .arg("neighbours")
            .arg("-f")
            .arg(store)
            .arg("--index")
            .arg(idx)
            .args(["--ids", queries[0]])
            .args(extra)
            .assert()
            .failure();
        String::from_utf8(out.get_output().stderr.clone()).unwrap()
    };
    let e = refuse(&["--aggregate", "avg"], &idx, &store);
    assert!(
        e.contains("aggregation stack (the search asks for avg)")
            && e.contains("dimension 96 (the store's is 48)"),
        "{e}"
    );
    let other = d.path().join("other");
    clustered_store(&other, 2999, 48);
    let e = refuse(&[], &idx, &other);
    assert!(
        e.contains("does not match the store") && e.contains("other records"),
        "{e}"
    );
    let e = refuse(&[], &store, &store);
    assert!(e.contains("not an index folder"), "{e}");
    let e = refuse(&["--expansion", "4"], &idx, &store);
    assert!(e.contains("--expansion: must be in 8..=4096"), "{e}");
    vggfeat()
        .args(["neighbours", "--expansion", "16", "-f"])
        .arg(&store)
        .args(["--ids", queries[0]])
        .assert()
        .failure();
    let out = vggfeat()
        .args(["index", "-f"])
        .arg(&store)
        .arg("-o")
        .arg(&store)
        .assert()
        .failure();
    let e = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        e.contains("--out: the index folder must not be the store's own folder"),
        "{e}"
    );
}
