//! WebDataset tar shards (img2dataset's output, what clip-retrieval reads) as datasets. A shard is
//! read once, as a stream, with the `tar` crate; nothing is unpacked to disk.
//!
//! * **Sample.** A sample is the members that share a key, by WebDataset's rule: the member's
//!   path up to the first dot of its last component (`00/000123.jpg` and `00/000123.cls` are
//!   sample `00/000123`; `a.b.jpg` is sample `a`'s `b.jpg`). What a member is goes by the last
//!   part of its extension (`b.jpg` is an image), as WebDataset's decoders do.
//! * **Image.** The sample's image is its `.jpg`, `.jpeg`, `.png` or `.webp` member. Only the
//!   member's byte range is recorded ([`super::Member`]); the decoder reads that range from the
//!   shard.
//! * **Label.** The label is the text of a `.cls` member, or else the `label` field of a `.json`
//!   member (a string, a number, or a list of them for several labels).
//! * **Id.** The id is `SHARDSTEM/KEY`: `shard-00042.tar`'s sample `000123` is
//!   `shard-00042/000123`. The dataset's root is the shard's folder.
//!
//! Other members (captions, metadata) are not images and are left alone. A sample is reported
//! as a failed input, like a decode failure, when it has no image, two images, two `.cls`
//! labels, an empty or unreadable label, or a member the shard ends inside. A shard that ends
//! early (a truncated download) keeps the samples before the damage; the sample being read when
//! it ends is a failed input (it may have lost its label), and the shard's damage is reported
//! too, also when the cut falls between two members (tar's end-of-archive marker is missing).
//! A file that is not a tar at all is an error, and so is a gzip-compressed shard (`.tar.gz`,
//! `.tgz`, or gzip bytes named `.tar`): images are read by their byte range in the shard, so it
//! must be given uncompressed.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{Dataset, Item, Member, SkipKind, Skipped, SourceKind};
use crate::error::{Error, Result};

/// Image member extensions (compared in lower case).
const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Largest label member read (`.cls`, `.json`).
const MAX_LABEL_BYTES: u64 = 1 << 20;

/// Whether `path` names a tar file (by extension): `.tar`, or a compressed `.tar.gz` / `.tgz`
/// (which [`list`] refuses, naming gzip).
pub(super) fn is_tar(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

/// What a shard's members say about one sample.
#[derive(Default)]
struct Sample {
    image: Option<Member>,
    /// The labels and the member they came from.
    labels: Option<(Vec<String>, String)>,
    problems: Vec<String>,
}

impl Sample {
    /// The member the labels came from, when it is a `.cls` (which wins over `.json`).
    fn cls_member(&self) -> Option<&str> {
        self.labels
            .as_ref()
            .map(|(_, m)| m.as_str())
            .filter(|m| m.to_ascii_lowercase().ends_with(".cls"))
    }
}

/// A member's sample key and its extension, by WebDataset's rule: the key is the path up to the
/// first dot of its last component, the extension everything after it (`a/b.c.jpg` is key
/// `a/b`, extension `c.jpg`). `None` for a name without a dot in its last component.
fn key_and_extension(name: &str) -> Option<(String, String)> {
    let (dir, base) = match name.rsplit_once('/') {
        Some((d, b)) => (format!("{d}/"), b),
        None => (String::new(), name),
    };
    let (key, ext) = base.split_once('.')?;
    Some((format!("{dir}{key}"), ext.to_ascii_lowercase()))
}

/// What a member is by its extension's last part (WebDataset decodes `c.jpg` as a `jpg`).
fn last_extension(ext: &str) -> &str {
    ext.rsplit('.').next().unwrap_or(ext)
}

/// The labels in a `.json` member's `label` field.
fn json_labels(text: &str) -> std::result::Result<Option<Vec<String>>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("its .json member is not JSON: {e}"))?;
    let one = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) if s.trim().is_empty() => {
            Err("its .json `label` is an empty string".to_string())
        }
        serde_json::Value::String(s) => Ok(s.trim().to_string()),
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

/// The gzip signature: WebDataset reads compressed shards as a stream; vggfeat reads each
/// image by its byte range in the shard, which a compressed file does not have.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Bytes after the last member of a complete tar: the end-of-archive marker, two zero blocks.
const END_OF_ARCHIVE: u64 = 1024;

/// Lists a WebDataset shard (see the module docs).
pub(super) fn list(shard: &Path) -> Result<Dataset> {
    let bad = |reason: String| Error::Data {
        path: shard.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(shard).map_err(|e| Error::io(shard, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(shard, e))?.len();
    let mut magic = [0u8; 2];
    let got = file.read(&mut magic).map_err(|e| Error::io(shard, e))?;
    if got == 2 && magic == GZIP_MAGIC {
        return Err(bad(
            "a gzip-compressed shard: vggfeat reads each image by its byte range in the tar, so \
             give it uncompressed (gunzip -k)"
                .into(),
        ));
    }
    {
        use std::io::Seek;
        file.rewind().map_err(|e| Error::io(shard, e))?;
    }
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
    // The sample of the last member read, and where that member's data ends (padded to
    // tar's 512-byte blocks).
    let mut last_key: Option<String> = None;
    let mut data_end = 0u64;
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) if members == 0 => return Err(bad(format!("not a tar archive: {e}"))),
            Err(e) => {
                damage = Some(format!(
                    "the shard is unreadable after {members} members ({e}): the rest of it is lost"
                ));
                break;
            }
        };
        members += 1;
        let kind = entry.header().entry_type();
        let size = entry.size();
        let offset = entry.raw_file_position();
        data_end = offset
            .saturating_add(size)
            .div_ceil(512)
            .saturating_mul(512);
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
        let Some((key, ext)) = key_and_extension(&name) else {
            last_key = None;
            continue; // no extension: not a sample member
        };
        last_key = Some(key.clone());
        let sample = samples.entry(key).or_default();
        let what = last_extension(&ext);
        if offset.saturating_add(size) > file_len {
            sample.problems.push(format!(
                "its member `{name}` is cut short (the shard ends inside it)"
            ));
            continue;
        }
        if !kind.is_file() {
            if IMAGE_EXTENSIONS.contains(&what) {
                sample
                    .problems
                    .push(format!("its image member `{name}` is not a regular file"));
            }
            continue;
        }
        if IMAGE_EXTENSIONS.contains(&what) {
            if sample.image.is_some() {
                sample
                    .problems
                    .push(format!("it has two images (the second is `{name}`)"));
            }
            sample.image = Some(Member { offset, size });
        } else if what == "cls" {
            match read_text(&mut entry, size, ".cls") {
                Ok(t) if t.trim().is_empty() => sample
                    .problems
                    .push(format!("its label member `{name}` is empty")),
                Ok(t) => {
                    if let Some(first) = sample.cls_member() {
                        let two = format!("it has two .cls labels (`{first}` and `{name}`)");
                        sample.problems.push(two);
                    }
                    sample.labels = Some((vec![t.trim().to_string()], name.clone()));
                }
                Err(p) => sample.problems.push(p),
            }
        } else if what == "json" {
            match read_text(&mut entry, size, ".json").and_then(|t| json_labels(&t)) {
                Ok(Some(l)) if l.is_empty() => {
                    sample
                        .problems
                        .push("its .json `label` is an empty list".into());
                }
                Ok(Some(l)) => {
                    if sample.cls_member().is_none() {
                        sample.labels = Some((l, name.clone()));
                    }
                }
                Ok(None) => {}
                Err(p) => sample.problems.push(p),
            }
        }
    }
    if members == 0 && damage.is_none() {
        return Err(bad(
            "not a tar archive, or an empty one: it has no members".into()
        ));
    }
    // A shard cut at a member boundary ends without tar's end-of-archive marker: the sample
    // being written when it was cut may have lost members (its label, say).
    if damage.is_none() && members > 0 && file_len < data_end.saturating_add(END_OF_ARCHIVE) {
        damage = Some(format!(
            "the shard ends after {members} members without tar's end-of-archive marker: it was \
             cut short"
        ));
    }
    if damage.is_some()
        && let Some(key) = &last_key
        && let Some(s) = samples.get_mut(key)
    {
        s.problems
            .push("the shard is cut short in this sample: some of its members may be lost".into());
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
        let labels = s.labels.map(|(l, _)| l);
        match reason {
            Some(reason) => skipped.push(Skipped {
                path: root.join(&id),
                id,
                reason,
                kind: SkipKind::Unusable,
                labels,
            }),
            None => items.push(Item {
                id,
                path: shard.to_path_buf(),
                labels: labels.unwrap_or_default(),
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
            labels: None,
        });
    }
    let mut ds = Dataset::from_items(root, SourceKind::Tar, items)?;
    ds.skipped = skipped;
    Ok(ds)
}
