//! `vggfeat export` in every format on synthetic stores (written with the library's
//! `StoreWriter`): Parquet read back by the parquet crate equal to the CSV export, sharded .npy,
//! raw per-scale columns equal to the stored floats, multi-label `labels` lists.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::{Array, FixedSizeListArray, Float32Array, ListArray, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vggfeat::dataset::SourceKind;
use vggfeat::model::config::{ConfigName, LayerName};
use vggfeat::preprocess::Normalization;
use vggfeat::store::{FORMAT_VERSION, InputSpec, Manifest, NetSpec, Outcome, Record, StoreWriter};

use crate::util::vggfeat;

/// A store of `n` records: 2 nets (dims 5 and 3) x 2 scales, seeded values, one failed input;
/// labels from `labels(i)`. Chunks of 7 records, written in reverse id order so that reading in
/// id order crosses chunks.
fn store(dir: &Path, n: usize, labels: impl Fn(usize) -> Vec<String>) -> Vec<(String, Vec<f32>)> {
    let net = |dim, layer| NetSpec {
        weights: "synthetic".into(),
        sha256: format!("{dim:02}"),
        config: ConfigName::D,
        layer,
        dim,
        preprocess: Normalization::Torchvision,
        precision: Default::default(),
    };
    let m = Manifest {
        format_version: FORMAT_VERSION,
        tool_version: "synthetic".into(),
        input: InputSpec::new("/synthetic", SourceKind::Folder),
        nets: vec![net(5, LayerName::Fc7), net(3, LayerName::Pool(5))],
        scales: vec![224, 256],
        flip: true,
        max_pixels: 1,
    };
    let (mut w, _) = StoreWriter::create_or_resume(dir, &m, 7).unwrap();
    let mut out = Vec::new();
    for i in (0..n).rev() {
        let v: Vec<f32> = (0..16)
            .map(|j| ((i * 31 + j * 7) % 23) as f32 / 7.0 + 0.01)
            .collect();
        let id = format!("c{}/img{i:05}.jpg", i % 3);
        w.push(Record {
            id: id.clone(),
            labels: labels(i),
            outcome: Outcome::Ok(v.clone()),
            source: None,
        })
        .unwrap();
        out.push((id, v));
    }
    w.push(Record {
        id: "c0/broken.jpg".into(),
        labels: vec!["c0".into()],
        outcome: Outcome::Failed("truncated".into()),
        source: None,
    })
    .unwrap();
    w.flush().unwrap();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn export(store: &Path, args: &[&str], out: &Path) {
    let o = vggfeat()
        .arg("export")
        .arg(store)
        .args(args)
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// CSV rows: id -> (label cell, values).
/// A Parquet file's columns: ids, labels (a list per row), and each float column's rows.
type Columns = (
    Vec<String>,
    Vec<Vec<String>>,
    HashMap<String, Vec<Vec<f32>>>,
);

fn read_parquet(p: &Path) -> Columns {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(p).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let (mut ids, mut labels, mut floats) = (Vec::new(), Vec::new(), HashMap::new());
    for batch in reader {
        let b = batch.unwrap();
        let schema = b.schema();
        for (f, col) in schema.fields().iter().zip(b.columns()) {
            let any = col.as_any();
            match f.name().as_str() {
                "id" => {
                    let s = any.downcast_ref::<StringArray>().unwrap();
                    ids.extend((0..s.len()).map(|i| s.value(i).to_string()));
                }
                "label" => {
                    let s = any.downcast_ref::<StringArray>().unwrap();
                    labels.extend((0..s.len()).map(|i| {
                        if s.is_null(i) {
                            vec![]
                        } else {
                            vec![s.value(i).to_string()]
                        }
                    }));
                }
                "labels" => {
                    let l = any.downcast_ref::<ListArray>().unwrap();
                    for i in 0..l.len() {
                        let v = l.value(i);
                        let s = v.as_any().downcast_ref::<StringArray>().unwrap();
                        labels.push((0..s.len()).map(|j| s.value(j).to_string()).collect());
                    }
                }
                name => {
                    let l = any.downcast_ref::<FixedSizeListArray>().unwrap();
                    let rows: &mut Vec<Vec<f32>> = floats.entry(name.to_string()).or_default();
                    for i in 0..l.len() {
                        let v = l.value(i);
                        let x = v.as_any().downcast_ref::<Float32Array>().unwrap();
                        rows.push(x.values().to_vec());
                    }
                }
            }
        }
    }
    (ids, labels, floats)
}

#[test]
fn parquet_equals_csv_and_npy_shards_cover_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("store");
    let stored = store(&s, 40, |i| vec![format!("c{}", i % 3)]);
    let (csv, pq) = (tmp.path().join("d.csv"), tmp.path().join("d.parquet"));
    export(&s, &["--aggregate", "stack", "--csv"], &csv);
    export(&s, &["--aggregate", "stack", "--parquet"], &pq);
    let (header, rows) = crate::util::read_csv(&csv);
    assert_eq!(header.len(), 2 + 16);
    let (ids, labels, floats) = read_parquet(&pq);
    assert_eq!(ids.len(), 40);
    assert_eq!(ids, stored.iter().map(|r| r.0.clone()).collect::<Vec<_>>());
    let features = &floats["features"];
    for (i, (id, label, v)) in rows.iter().enumerate() {
        assert_eq!(&ids[i], id);
        assert_eq!(&labels[i], &vec![label.clone()]);
        assert_eq!(&features[i], v, "{id}: Parquet and CSV differ");
    }

    // Shards of 15 rows: 15 + 15 + 10, concatenated equal to the single .npy.
    let npy = tmp.path().join("d.npy");
    export(&s, &["--aggregate", "stack", "--npy"], &npy);
    let all: Vec<f32> = npyz::NpyFile::new(File::open(&npy).unwrap())
        .unwrap()
        .into_vec()
        .unwrap();
    let dir = tmp.path().join("shards");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("emb_00007.npy"), b"stale").unwrap();
    std::fs::write(dir.join("emb_00003.npy"), b"stale").unwrap();
    export(
        &s,
        &["--aggregate", "stack", "--rows", "15", "--npy-shards"],
        &dir,
    );
    let mut cat = Vec::new();
    let mut meta_ids = Vec::new();
    for k in 0..3 {
        let f =
            npyz::NpyFile::new(File::open(dir.join(format!("emb_{k:05}.npy"))).unwrap()).unwrap();
        assert_eq!(f.shape(), &[if k < 2 { 15 } else { 10 }, 16]);
        cat.extend(f.into_vec::<f32>().unwrap());
        let (ids, labels, _) = read_parquet(&dir.join(format!("meta_{k:05}.parquet")));
        assert_eq!(ids.len(), labels.len());
        meta_ids.extend(ids);
    }
    assert_eq!(cat, all);
    assert_eq!(meta_ids, ids);
    assert!(
        !dir.join("emb_00003.npy").exists(),
        "a stale shard after the last is removed"
    );
    // A shard from an unrelated, non-contiguous numbering is not ours to judge: left alone.
    assert!(dir.join("emb_00007.npy").exists());
}

#[test]
fn raw_columns_are_the_stored_floats_and_multi_label_is_a_list() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("store");
    let stored = store(&s, 12, |i| match i % 3 {
        0 => vec![],
        1 => vec!["a".into()],
        _ => vec!["a".into(), "b;c".into()],
    });
    let pq = tmp.path().join("raw.parquet");
    export(&s, &["--raw", "--parquet"], &pq);
    let (ids, labels, floats) = read_parquet(&pq);
    let mut names: Vec<&String> = floats.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "net0_D_fc7_q224",
            "net0_D_fc7_q256",
            "net1_D_pool5_q224",
            "net1_D_pool5_q256"
        ]
    );
    for (i, (id, v)) in stored.iter().enumerate() {
        assert_eq!(&ids[i], id);
        assert_eq!(floats["net0_D_fc7_q224"][i], v[0..5]);
        assert_eq!(floats["net0_D_fc7_q256"][i], v[5..10]);
        assert_eq!(floats["net1_D_pool5_q224"][i], v[10..13]);
        assert_eq!(floats["net1_D_pool5_q256"][i], v[13..16]);
    }
    let n: usize = id_number(&ids[0]);
    assert_eq!(labels[0].len(), [0, 1, 2][n % 3]);
    assert!(
        labels
            .iter()
            .any(|l| l == &["a".to_string(), "b;c".to_string()])
    );

    // CSV raw: the same values, columns named by net and scale.
    let csv = tmp.path().join("raw.csv");
    export(&s, &["--raw", "--nets", "1", "--csv"], &csv);
    let (header, rows) = crate::util::read_csv(&csv);
    assert_eq!(header[2], "net1_D_pool5_q224_d0");
    assert_eq!(header.last().unwrap(), "net1_D_pool5_q256_d2");
    assert_eq!(rows[0].2, stored[0].1[10..16]);
    assert_eq!(rows[8].1, "a;b\\;c");

    // Raw has no column names in .npy: refused with the reason.
    vggfeat()
        .arg("export")
        .arg(&s)
        .args(["--raw", "--npy"])
        .arg(tmp.path().join("x.npy"))
        .assert()
        .code(2);
}

fn id_number(id: &str) -> usize {
    id.split("img").nth(1).unwrap()[..5].parse().unwrap()
}
