//! Seeded train/test splits for single-label datasets (the Caltech protocol), and their CSV file
//! (`id,label,set`) so that every reported number can be re-derived.
//!
//! The protocol: for each class, its images (in sorted id order) are shuffled with a ChaCha8
//! generator whose 32-byte seed is
//! `SHA-256("vggfeat-split" || seed as u64 LE || split number as u64 LE || class name UTF-8)`
//! (rand 0.8's `SliceRandom::shuffle`); the first `train_per_class` go to training, the next
//! `test_per_class` (or all the rest) to testing. Each class's draw depends only on the seed,
//! the split number and its own images, so dropping or adding another class changes nothing
//! else. Caltech-101 uses 30 training images and up to 50 test images per class
//! (`test_per_class: Some(50)`), Caltech-256 uses all the rest (`None`).
//!
//! A class with `n <= train_per_class` images trains on `n - 1` and tests on the last one, so
//! that every class keeps at least one test image; [`Split::class_counts`] shows where this
//! happened. A class with fewer than 2 images is an error (drop it with
//! [`SplitParams::drop_classes`]).

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::Dataset;
use crate::error::{Error, Param, Result};

/// Parameters of [`sample_splits`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitParams {
    /// Training images per class. Default 30 (Caltech-101); at least 1.
    pub train_per_class: usize,
    /// Most test images per class; `None` takes all the images not used for training
    /// (Caltech-256). Default `Some(50)`; `Some(0)` is invalid.
    pub test_per_class: Option<usize>,
    /// Seed of the shuffles. Default 0; any value.
    pub seed: u64,
    /// Number of splits, numbered 0.. and each with its own draws. Default 3; at least 1.
    pub splits: usize,
    /// Classes left out of every split (e.g. `BACKGROUND_Google`). Default none; each must be a
    /// class of the dataset.
    pub drop_classes: Vec<String>,
}

impl Default for SplitParams {
    fn default() -> Self {
        SplitParams {
            train_per_class: 30,
            test_per_class: Some(50),
            seed: 0,
            splits: 3,
            drop_classes: Vec::new(),
        }
    }
}

impl SplitParams {
    /// Checks the parameters against a dataset; [`sample_split`] calls it.
    pub fn check(&self, ds: &Dataset) -> Result<()> {
        self.check_ranges()?;
        if let Some(c) = self
            .drop_classes
            .iter()
            .find(|c| ds.class_index(c).is_none())
        {
            return Err(Error::param(
                Param::DropClasses,
                format!("cannot drop class `{c}`: the dataset has no such class"),
            ));
        }
        Ok(())
    }

    /// Checks the ranges of the counts, without a dataset.
    pub fn check_ranges(&self) -> Result<()> {
        if self.train_per_class == 0 {
            return Err(Error::param(Param::TrainPerClass, "must be at least 1"));
        }
        if self.test_per_class == Some(0) {
            return Err(Error::param(
                Param::TestPerClass,
                "must be at least 1 (or unlimited)",
            ));
        }
        if self.splits == 0 {
            return Err(Error::param(Param::Splits, "must be at least 1"));
        }
        Ok(())
    }
}

/// Which side of a split an image is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Set {
    /// Training.
    Train,
    /// Testing.
    Test,
}

impl Set {
    /// `"train"` or `"test"`, as in the CSV file.
    pub fn as_str(self) -> &'static str {
        match self {
            Set::Train => "train",
            Set::Test => "test",
        }
    }
}

/// One train/test split of a dataset. Indices refer to [`Dataset::items`] of the dataset it was
/// sampled from (or read against); labels index [`Split::classes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The classes in the split (the dataset's classes minus dropped ones), sorted.
    pub classes: Vec<String>,
    /// Training items, ascending.
    pub train: Vec<usize>,
    /// Class of each training item, an index into `classes`.
    pub train_labels: Vec<usize>,
    /// Test items, ascending.
    pub test: Vec<usize>,
    /// Class of each test item, an index into `classes`.
    pub test_labels: Vec<usize>,
}

/// The 32-byte ChaCha8 seed for one class of one split (see the module docs).
fn class_seed(seed: u64, split: usize, class: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"vggfeat-split");
    h.update(seed.to_le_bytes());
    h.update((split as u64).to_le_bytes());
    h.update(class.as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    out
}

/// Samples split number `s` (0-based; any value, though [`sample_splits`] uses
/// `0..params.splits`) of a single-label dataset. Errors if an image has no label or several
/// (see [`Dataset::single_labels`]), if the parameters are invalid, or if a kept class has fewer
/// than 2 images.
pub fn sample_split(ds: &Dataset, params: &SplitParams, s: usize) -> Result<Split> {
    params.check(ds)?;
    let labels = ds.single_labels()?;
    let classes: Vec<String> = ds
        .classes
        .iter()
        .filter(|c| !params.drop_classes.contains(c))
        .cloned()
        .collect();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); ds.classes.len()];
    for (i, &c) in labels.iter().enumerate() {
        members[c].push(i);
    }
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (k, class) in classes.iter().enumerate() {
        let mut idx = members[ds.class_index(class).expect("a dataset class")].clone();
        let n = idx.len();
        if n < 2 {
            return Err(Error::Data {
                path: ds.root.clone(),
                reason: format!(
                    "class `{class}` has {n} image(s); a split needs at least 2 \
                     (one to train, one to test): drop the class"
                ),
            });
        }
        idx.shuffle(&mut ChaCha8Rng::from_seed(class_seed(
            params.seed,
            s,
            class,
        )));
        let n_train = params.train_per_class.min(n - 1);
        let n_test = params.test_per_class.unwrap_or(usize::MAX).min(n - n_train);
        train.extend(idx[..n_train].iter().map(|&i| (i, k)));
        test.extend(idx[n_train..n_train + n_test].iter().map(|&i| (i, k)));
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok(Split {
        classes,
        train_labels: train.iter().map(|p| p.1).collect(),
        train: train.into_iter().map(|p| p.0).collect(),
        test_labels: test.iter().map(|p| p.1).collect(),
        test: test.into_iter().map(|p| p.0).collect(),
    })
}

/// Samples splits `0..params.splits` (see [`sample_split`]).
pub fn sample_splits(ds: &Dataset, params: &SplitParams) -> Result<Vec<Split>> {
    params.check(ds)?;
    (0..params.splits)
        .map(|s| sample_split(ds, params, s))
        .collect()
}

impl Split {
    /// (training, test) image counts per class, aligned with [`Split::classes`].
    pub fn class_counts(&self) -> Vec<(usize, usize)> {
        let mut counts = vec![(0, 0); self.classes.len()];
        for &c in &self.train_labels {
            counts[c].0 += 1;
        }
        for &c in &self.test_labels {
            counts[c].1 += 1;
        }
        counts
    }

    /// Writes the split as CSV with the header `id,label,set`: one row per image in dataset
    /// order, `set` being `train` or `test`. `ds` must be the dataset the split indexes.
    pub fn write_csv(&self, ds: &Dataset, path: &Path) -> Result<()> {
        let mut rows: Vec<(usize, usize, Set)> = self
            .train
            .iter()
            .zip(&self.train_labels)
            .map(|(&i, &c)| (i, c, Set::Train))
            .chain(
                self.test
                    .iter()
                    .zip(&self.test_labels)
                    .map(|(&i, &c)| (i, c, Set::Test)),
            )
            .collect();
        rows.sort_unstable_by_key(|r| r.0);
        let io = |e: csv::Error| Error::Data {
            path: path.to_path_buf(),
            reason: format!("cannot write: {e}"),
        };
        let mut file = crate::util::AtomicFile::create(path)?;
        {
            let mut w = csv::Writer::from_writer(file.writer());
            w.write_record(["id", "label", "set"]).map_err(io)?;
            for (i, c, set) in rows {
                w.write_record([ds.items[i].id.as_str(), &self.classes[c], set.as_str()])
                    .map_err(io)?;
            }
            w.flush().map_err(|e| Error::io(path, e))?;
        }
        file.commit()
    }

    /// Reads a split written by [`Split::write_csv`] (or by hand) against `ds`: every id must be
    /// an image of `ds` listed once, with the dataset's label for it, and `set` must be `train`
    /// or `test`. `classes` are the labels that occur in the file, sorted. Errors name the file
    /// and line.
    pub fn read_csv(path: &Path, ds: &Dataset) -> Result<Split> {
        let err = |line: u64, reason: String| Error::Data {
            path: path.to_path_buf(),
            reason: format!("line {line}: {reason}"),
        };
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(path)
            .map_err(|e| match e.into_kind() {
                csv::ErrorKind::Io(io) => Error::io(path, io),
                other => err(1, format!("{other:?}")),
            })?;
        let header = r.headers().map_err(|e| err(1, e.to_string()))?.clone();
        if header.iter().collect::<Vec<_>>() != ["id", "label", "set"] {
            return Err(err(1, "the header must be `id,label,set`".to_string()));
        }
        let labels = ds.single_labels()?;
        let mut rows: Vec<(usize, String, Set)> = Vec::new();
        let mut seen = vec![0u64; ds.len()];
        for record in r.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                err(line, e.to_string())
            })?;
            let line = record.position().map_or(0, |p| p.line());
            let (id, label, set) = (&record[0], &record[1], &record[2]);
            let Some(i) = ds.item_index(id) else {
                return Err(err(line, format!("image `{id}` is not in the dataset")));
            };
            if seen[i] != 0 {
                return Err(err(
                    line,
                    format!("image `{id}` is listed twice (first on line {})", seen[i]),
                ));
            }
            seen[i] = line;
            let want = &ds.classes[labels[i]];
            if label != want {
                return Err(err(
                    line,
                    format!("image `{id}` is labelled `{label}`, the dataset says `{want}`"),
                ));
            }
            let set = match set {
                "train" => Set::Train,
                "test" => Set::Test,
                other => {
                    return Err(err(line, format!("set `{other}` is not `train` or `test`")));
                }
            };
            rows.push((i, label.to_string(), set));
        }
        let mut classes: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
        classes.sort();
        classes.dedup();
        rows.sort_unstable_by_key(|r| r.0);
        let mut split = Split {
            classes,
            train: Vec::new(),
            train_labels: Vec::new(),
            test: Vec::new(),
            test_labels: Vec::new(),
        };
        for (i, label, set) in rows {
            let c = split
                .classes
                .binary_search(&label)
                .expect("collected above");
            match set {
                Set::Train => {
                    split.train.push(i);
                    split.train_labels.push(c);
                }
                Set::Test => {
                    split.test.push(i);
                    split.test_labels.push(c);
                }
            }
        }
        Ok(split)
    }
}
