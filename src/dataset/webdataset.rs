//! WebDataset tar shards (img2dataset's output, what clip-retrieval reads) as datasets. A shard is
//! read once, as a stream, with the `tar` crate; nothing is unpacked to disk.
//!
//! * **Sample.** A sample is the members that share a key: the member's path up to the first dot
//!   of its last component (`00/000123.jpg` and `00/000123.cls` are sample `00/000123`).
//! * **Image.** The sample's image is its `.jpg`, `.jpeg`, `.png` or `.webp` member. Only the
//!   member's byte range is recorded ([`super::Member`]); the decoder reads that range from the
//!   shard.
//! * **Label.** The label is the text of a `.cls` member, or else the `label` field of a `.json`
//!   member (a string, a number, or a list of them for several labels).
//! * **Id.** The id is `SHARDSTEM/KEY`: `shard-00042.tar`'s sample `000123` is
//!   `shard-00042/000123`. The dataset's root is the shard's folder.
//!
//! Other members (captions, metadata) are not images and are left alone. A sample without an
//! image, with two images or with an unreadable label is reported as a failed input, like a
//! decode failure. So is the rest of a shard that ends early (a truncated download): the samples
//! before the damage are kept.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{Dataset, Item, Member, SkipKind, Skipped, SourceKind};
use crate::error::{Error, Result};

/// Image member extensions (compared in lower case).
const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Largest label member read (`.cls`, `.json`).
const MAX_LABEL_BYTES: u64 = 1 << 20;

/// Whether `path` names a tar file (by extension).
pub(super) fn is_tar(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("tar"))
}

/// What a shard's members say about one sample.
#[derive(Default)]
struct Sample {
    image: Option<Member>,
    labels: Option<Vec<String>>,
    problems: Vec<String>,
}

/// The labels in a `.json` member's `label` field.
fn json_labels(text: &str) -> std::result::Result<Option<Vec<String>>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("its .json member is not JSON: {e}"))?;
    let one = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "its .json `label` is {other}, not a string or a number"
        )),
    };
    match v.get("label") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Array(a)) => a.iter().map(one).collect::<Result<_, _>>().map(Some),
        Some(x) => one(x).map(|l| Some(vec![l])),
    }
}

/// Reads a label member's text, at most [`MAX_LABEL_BYTES`].
fn read_text(entry: &mut impl Read, size: u64, what: &str) -> std::result::Result<String, String> {
    if size > MAX_LABEL_BYTES {
        return Err(format!(
            "its {what} member has {size} bytes (at most {MAX_LABEL_BYTES})"
        ));
    }
    let mut s = String::new();
    entry
        .read_to_string(&mut s)
        .map_err(|e| format!("its {what} member cannot be read as UTF-8 text: {e}"))?;
    Ok(s)
}

/// Lists a WebDataset shard (see the module docs).
pub(super) fn list(shard: &Path) -> Result<Dataset> {
    let file = std::fs::File::open(shard).map_err(|e| Error::io(shard, e))?;
    let root = match shard.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let stem = shard
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 16, file));
    let mut samples: BTreeMap<String, Sample> = BTreeMap::new();
    let mut damage: Option<String> = None;
    let mut members = 0usize;
    let entries = archive.entries().map_err(|e| Error::Data {
        path: shard.to_path_buf(),
        reason: format!("not a tar archive: {e}"),
    })?;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                damage = Some(format!(
                    "the shard is unreadable after {members} members ({e}): the rest of it is lost"
                ));
                break;
            }
        };
        members += 1;
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() {
            continue;
        }
        let name = match entry.path() {
            Ok(p) => p.to_string_lossy().replace('\\', "/"),
            Err(e) => {
                damage = Some(format!("member {members} has an unreadable name: {e}"));
                break;
            }
        };
        let (dir, base) = match name.rsplit_once('/') {
            Some((d, b)) => (format!("{d}/"), b.to_string()),
            None => (String::new(), name.clone()),
        };
        let Some((key_base, ext)) = base.split_once('.') else {
            continue; // no extension: not a sample member
        };
        let key = format!("{dir}{key_base}");
        let ext = ext.to_ascii_lowercase();
        let sample = samples.entry(key).or_default();
        if !kind.is_file() {
            if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                sample
                    .problems
                    .push(format!("its image member `{name}` is not a regular file"));
            }
            continue;
        }
        let size = entry.size();
        if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
            if sample.image.is_some() {
                sample
                    .problems
                    .push(format!("it has two images (the second is `{name}`)"));
            }
            sample.image = Some(Member {
                offset: entry.raw_file_position(),
                size,
            });
        } else if ext == "cls" {
            match read_text(&mut entry, size, ".cls") {
                Ok(t) if t.trim().is_empty() => {
                    sample.problems.push("its .cls member is empty".into())
                }
                Ok(t) => sample.labels = Some(vec![t.trim().to_string()]),
                Err(p) => sample.problems.push(p),
            }
        } else if ext == "json" {
            match read_text(&mut entry, size, ".json").and_then(|t| json_labels(&t)) {
                Ok(Some(l)) => {
                    sample.labels.get_or_insert(l);
                }
                Ok(None) => {}
                Err(p) => sample.problems.push(p),
            }
        }
    }
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    for (key, s) in samples {
        let id = format!("{stem}/{key}");
        let reason = if !s.problems.is_empty() {
            Some(s.problems.join("; "))
        } else if s.image.is_none() {
            Some("the sample has no image member (.jpg, .jpeg, .png or .webp)".to_string())
        } else {
            None
        };
        match reason {
            Some(reason) => skipped.push(Skipped {
                path: root.join(&id),
                id,
                reason,
                kind: SkipKind::Unusable,
            }),
            None => items.push(Item {
                id,
                path: shard.to_path_buf(),
                labels: s.labels.unwrap_or_default(),
                voc_labels: None,
                member: s.image,
            }),
        }
    }
    if let Some(reason) = damage {
        skipped.push(Skipped {
            path: shard.to_path_buf(),
            id: format!("{stem}/"),
            reason,
            kind: SkipKind::Unusable,
        });
    }
    let mut ds = Dataset::from_items(root, SourceKind::Tar, items)?;
    ds.skipped = skipped;
    Ok(ds)
}
