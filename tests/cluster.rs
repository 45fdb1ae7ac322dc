//! Extraction on a cluster: shards chosen by the scheduler, merged from nodes that mount the data
//! at different paths, progress in a batch log, a statistics file, and retrying failures.

use std::path::Path;
use std::process::Command;

use crate::util::{self, bin, vggfeat};

fn caltech_copy(dst: &Path, classes: &[&str], per_class: usize) {
    let src = util::shared().join("datasets/caltech101/101_ObjectCategories");
    for c in classes {
        std::fs::create_dir_all(dst.join(c)).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(src.join(c))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names.into_iter().take(per_class) {
            std::fs::copy(src.join(c).join(&n), dst.join(c).join(&n)).unwrap();
        }
    }
}

/// `--shard auto` in a Slurm array that starts at 1, `auto/N` with a Kubernetes index; and a
/// clear usage error outside any scheduler.
#[test]
fn shards_from_the_scheduler() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    caltech_copy(&data, &["Faces", "watch"], 3);
    let whole = tmp.path().join("whole");
    assert!(
        util::extract_tiny(&[&data], &whole, &[])
            .status()
            .unwrap()
            .success()
    );
    let mut stores = Vec::new();
    for task in 1..=2 {
        let s = tmp.path().join(format!("slurm{task}"));
        let st = util::extract_tiny(&[&data], &s, &["--shard", "auto"])
            .env("SLURM_ARRAY_TASK_ID", task.to_string())
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_COUNT", "2")
            .status()
            .unwrap();
        assert!(st.success());
        let m = vggfeat::store::read_manifest(&s).unwrap();
        assert_eq!(m.input.shard, Some((task - 1, 2)));
        stores.push(s);
    }
    let k8s = tmp.path().join("k8s1");
    assert!(
        util::extract_tiny(&[&data], &k8s, &["--shard", "auto/2"])
            .env("JOB_COMPLETION_INDEX", "1")
            .status()
            .unwrap()
            .success()
    );
    let a = vggfeat::Store::open(&k8s).unwrap();
    let b = vggfeat::Store::open(&stores[1]).unwrap();
    assert_eq!(a.records, b.records, "the same shard either way");
    let o = util::extract_tiny(&[&data], &tmp.path().join("none"), &["--shard", "auto"])
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not in a Slurm job array"), "{err}");
    // The two Slurm shards merge into the single run.
    let merged = tmp.path().join("merged");
    vggfeat()
        .arg("merge")
        .args(&stores)
        .arg("-o")
        .arg(&merged)
        .assert()
        .success();
    let m = vggfeat::Store::open(&merged).unwrap();
    assert_eq!(m.records, vggfeat::Store::open(&whole).unwrap().records);
}

/// Shards extracted from two copies of one dataset at different paths (two nodes' mounts) merge
/// into the single run, bit for bit; shards of different datasets are refused naming the
/// fingerprints, and an overlapping or missing shard is refused too.
#[test]
fn shards_from_different_mount_paths_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (
        tmp.path().join("node0/data"),
        tmp.path().join("node1/mnt/c101"),
    );
    caltech_copy(&a, &["Faces", "watch", "ant"], 3);
    caltech_copy(&b, &["Faces", "watch", "ant"], 3);
    let whole = tmp.path().join("whole");
    assert!(
        util::extract_tiny(&[&a], &whole, &[])
            .status()
            .unwrap()
            .success()
    );
    let (s0, s1) = (tmp.path().join("s0"), tmp.path().join("s1"));
    assert!(
        util::extract_tiny(&[&a], &s0, &["--shard", "0/2"])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        util::extract_tiny(&[&b], &s1, &["--shard", "1/2"])
            .status()
            .unwrap()
            .success()
    );
    let merged = tmp.path().join("merged");
    vggfeat()
        .arg("merge")
        .arg(&s0)
        .arg(&s1)
        .arg("-o")
        .arg(&merged)
        .assert()
        .success();
    let (m, w) = (
        vggfeat::Store::open(&merged).unwrap(),
        vggfeat::Store::open(&whole).unwrap(),
    );
    // Ids, labels, descriptors bit for bit and content hashes; only the copies' times differ.
    let key = |s: &vggfeat::Store| -> Vec<_> {
        s.records
            .iter()
            .map(|r| {
                let hash = r.source.and_then(|s| s.sha256);
                (r.id.clone(), r.labels.clone(), r.outcome.clone(), hash)
            })
            .collect()
    };
    assert_eq!(key(&m), key(&w));
    assert!(m.incomplete().is_none());
    // Another dataset (one more image) has another fingerprint.
    let c = tmp.path().join("node2/data");
    caltech_copy(&c, &["Faces", "watch", "ant"], 3);
    std::fs::copy(a.join("Faces/image_0001.jpg"), c.join("Faces/extra.jpg")).unwrap();
    let s1c = tmp.path().join("s1c");
    assert!(
        util::extract_tiny(&[&c], &s1c, &["--shard", "1/2"])
            .status()
            .unwrap()
            .success()
    );
    let o = vggfeat()
        .arg("merge")
        .arg(&s0)
        .arg(&s1c)
        .arg("-o")
        .arg(tmp.path().join("m2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("listed from another dataset (fingerprint"),
        "{err}"
    );
    // Overlap (a shard twice) and a missing shard.
    for (args, msg) in [
        (vec![&s0, &s0], "is given twice"),
        (vec![&s0], "shard(s) 1/2 not given"),
    ] {
        let o = vggfeat()
            .arg("merge")
            .args(args)
            .arg("-o")
            .arg(tmp.path().join("m3"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(err.contains(msg), "{err}");
    }
}

/// With stderr in a file (a batch job's log): a progress line every `--progress-interval`,
/// with done/total, rate and ETA; and `stats.json` beside the store.
#[test]
fn progress_lines_in_a_log_and_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    caltech_copy(&data, &["Faces", "watch", "ant", "cup"], 6);
    let store = tmp.path().join("s");
    let log = std::fs::File::create(tmp.path().join("job.log")).unwrap();
    let st = Command::new(bin())
        .args([
            "extract",
            "--scales",
            "224,256",
            "--progress-interval",
            "0.05",
            "-w",
        ])
        .arg(util::tiny().join("weights.safetensors"))
        .arg("-o")
        .arg(&store)
        .arg(&data)
        .stderr(log)
        .status()
        .unwrap();
    assert!(st.success());
    let log = std::fs::read_to_string(tmp.path().join("job.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("extract: ")).collect();
    assert!(!lines.is_empty(), "no progress line in\n{log}");
    assert!(
        lines[0].contains("/24 images (")
            && lines[0].contains("images/s")
            && lines[0].contains("ETA"),
        "{}",
        lines[0]
    );
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["counts"]["extracted"], 24);
    assert_eq!(stats["finished"], true);
    assert!(stats["images_per_second"]["end_to_end"].as_f64().unwrap() > 0.0);
    assert!(!stats["host"].as_str().unwrap().is_empty());
}

/// A file that could not be read in a first run (as `nobody`: permission denied) and was made
/// readable afterwards is extracted by `--retry-failed`.
#[test]
fn retry_failed_recovers_a_file_made_readable() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path();
    std::fs::set_permissions(top, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = top.join("data");
    caltech_copy(&data, &["Faces", "watch"], 2);
    for d in [&data, &data.join("Faces"), &data.join("watch")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let locked = data.join("watch/image_0001.jpg");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = top.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let store = out.join("s");
    // Root reads every file: run as nobody then, for whom the permission counts.
    let as_user = |extra: &[&str]| {
        let mut c = if std::fs::read(&locked).is_ok() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(bin());
            c
        } else {
            Command::new(bin())
        };
        c.args(["extract", "--quiet", "--scales", "224", "-w"])
            .arg(util::tiny().join("weights.safetensors"))
            .arg("-o")
            .arg(&store)
            .args(extra)
            .arg(&data);
        c.output().unwrap()
    };
    let first = as_user(&[]);
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(1), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).unwrap();
    let second = as_user(&["--retry-failed"]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{err}");
    assert!(err.contains("1 failed before and tried again"), "{err}");
    let s = vggfeat::Store::open(&store).unwrap();
    assert!(s.failures().is_empty());
    assert_eq!(s.ok_records().count(), 4);
}
