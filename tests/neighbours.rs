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
