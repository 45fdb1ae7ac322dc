//! Reading a PASCAL VOC devkit root: image ids from `ImageSets/Main/<split>.txt`, per-class
//! labels {+1, -1, 0} from `ImageSets/Main/<class>_<split>.txt`. The rules are documented on
//! [`Dataset::from_voc`](super::Dataset::from_voc).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Dataset, Item, SourceKind, VOC_CLASSES};
use crate::error::{Error, Param, Result};

fn data_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|_| data_err(path, "not UTF-8 text"))
}

/// The non-blank lines of a file, with 1-based line numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
}

pub(super) fn list(root: &Path, split: &str) -> Result<Dataset> {
    check_split(split)?;
    let main = root.join("ImageSets").join("Main");
    let set_file = main.join(format!("{split}.txt"));
    let text = read_text(&set_file)?;
    let mut ids: Vec<String> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for (n, line) in lines(&text) {
        let id = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if id.contains(['/', '\\']) {
            return Err(data_err(
                &set_file,
                format!("line {n}: `{id}` is not an image id"),
            ));
        }
        if position.insert(id.clone(), ids.len()).is_some() {
            return Err(data_err(
                &set_file,
                format!("line {n}: image `{id}` is listed twice"),
            ));
        }
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(data_err(&set_file, "lists no images"));
    }

    let class_files: Vec<PathBuf> = VOC_CLASSES
        .iter()
        .map(|c| main.join(format!("{c}_{split}.txt")))
        .collect();
    let present = class_files.iter().filter(|p| p.is_file()).count();
    let labels: Option<Vec<Vec<i8>>> = if present == 0 {
        None
    } else if let Some(missing) = class_files.iter().find(|p| !p.is_file()) {
        return Err(data_err(
            missing,
            format!(
                "missing: {present} of the 20 class files of split `{split}` exist, \
                 all or none must"
            ),
        ));
    } else {
        // labels[image][class]
        let mut labels = vec![vec![i8::MIN; VOC_CLASSES.len()]; ids.len()];
        for (c, file) in class_files.iter().enumerate() {
            let text = read_text(file)?;
            let mut seen = 0;
            for (n, line) in lines(&text) {
                let mut tok = line.split_whitespace();
                let (Some(id), Some(value), None) = (tok.next(), tok.next(), tok.next()) else {
                    return Err(data_err(
                        file,
                        format!("line {n}: expected `<image id> <1|-1|0>`, found `{line}`"),
                    ));
                };
                let value: i8 = match value {
                    "1" => 1,
                    "-1" => -1,
                    "0" => 0,
                    _ => {
                        return Err(data_err(
                            file,
                            format!("line {n}: label `{value}` is not 1, -1 or 0"),
                        ));
                    }
                };
                let Some(&i) = position.get(id) else {
                    return Err(data_err(
                        file,
                        format!("line {n}: image `{id}` is not in {split}.txt"),
                    ));
                };
                if labels[i][c] != i8::MIN {
                    return Err(data_err(
                        file,
                        format!("line {n}: image `{id}` is labelled twice"),
                    ));
                }
                labels[i][c] = value;
                seen += 1;
            }
            if seen != ids.len() {
                let first = labels.iter().position(|l| l[c] == i8::MIN).unwrap_or(0);
                return Err(data_err(
                    file,
                    format!(
                        "labels {seen} of the {} images of {split}.txt; `{}` is missing",
                        ids.len(),
                        ids[first]
                    ),
                ));
            }
        }
        Some(labels)
    };

    let items = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let voc_labels = labels.as_ref().map(|l| l[i].clone());
            let positives = voc_labels
                .as_ref()
                .map(|l| {
                    VOC_CLASSES
                        .iter()
                        .zip(l)
                        .filter(|(_, v)| **v == 1)
                        .map(|(c, _)| c.to_string())
                        .collect()
                })
                .unwrap_or_default();
            Item {
                id: format!("JPEGImages/{id}.jpg"),
                path: root.join("JPEGImages").join(format!("{id}.jpg")),
                labels: positives,
                voc_labels,
                member: None,
            }
        })
        .collect();
    let mut ds = Dataset::from_items(root.to_path_buf(), SourceKind::Voc, items)?;
    ds.classes = VOC_CLASSES.iter().map(|c| c.to_string()).collect();
    Ok(ds)
}

/// A VOC image set must be a plain name (it becomes a file name under `ImageSets/Main`).
pub(crate) fn check_split(split: &str) -> Result<()> {
    if split.is_empty() || split.contains(['/', '\\']) || split.starts_with('.') {
        return Err(Error::param(
            Param::VocSplit,
            format!("`{split}` must be a plain name such as trainval, train, val or test"),
        ));
    }
    Ok(())
}
