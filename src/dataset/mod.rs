//! Listing images and their labels: the one implementation that extraction, the SVMs and training
//! all use. Three sources, detected from the path by [`Dataset::open`]:
//!
//! - a **folder** of class sub-folders (Caltech-101/256 layout), see [`Dataset::from_folder`];
//! - a **PASCAL VOC devkit** root (`JPEGImages/`, `ImageSets/Main/`), see [`Dataset::from_voc`];
//! - a **list file**, one path per line with an optional label, see [`Dataset::from_list`].
//!
//! Whatever the source, items are sorted by id (byte-wise), ids are unique, and
//! [`Dataset::classes`] is sorted, so class indices are stable. [`Dataset::limit_per_class`] and
//! [`Dataset::shard`] select subsets deterministically; [`split`] samples seeded train/test
//! splits and writes them to CSV.
//!
//! ```no_run
//! # fn main() -> vggfeat::Result<()> {
//! use vggfeat::dataset::Dataset;
//! let ds = Dataset::open("101_ObjectCategories".as_ref())?;
//! println!("{} images, {} classes, {} files skipped", ds.len(), ds.classes.len(), ds.skipped.len());
//! let my_part = ds.shard(0, 4)?; // a quarter of the images, the same on every machine
//! # Ok(()) }
//! ```

pub mod annotation;
mod folder;
mod list;
pub mod shard;
pub mod split;
pub mod table;
mod voc;
mod webdataset;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Param, Result};

pub use shard::ShardSpec;
pub use split::{Split, SplitParams, sample_split, sample_splits};
pub(crate) use voc::check_split as check_voc_split;

/// The 20 PASCAL VOC classes, in the devkit's (alphabetical) order. A VOC dataset's
/// [`Dataset::classes`] is exactly this list.
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// File extensions (lower case, compared case-insensitively) that mark a file as an image in a
/// folder listing even when its content is not recognised, so that a corrupt `photo.jpg` is
/// listed and then reported by the decoder instead of vanishing.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "apng", "gif", "bmp", "dib", "webp", "tif", "tiff", "ppm",
    "pgm", "pbm", "pnm", "pam", "tga", "ico", "avif", "qoi", "hdr", "exr", "dds", "ff",
];

/// Where a dataset was listed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A folder, listed recursively; the label is the first-level sub-folder.
    Folder,
    /// A PASCAL VOC devkit root.
    Voc,
    /// A list file.
    List,
    /// A WebDataset tar shard.
    Tar,
    /// A CSV, TSV or Parquet table with a header.
    Table,
}

impl std::str::FromStr for SourceKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "folder" | "dir" | "directory" => Ok(SourceKind::Folder),
            "voc" | "pascal" => Ok(SourceKind::Voc),
            "list" | "file" => Ok(SourceKind::List),
            "tar" | "webdataset" => Ok(SourceKind::Tar),
            "table" | "csv" | "tsv" | "parquet" => Ok(SourceKind::Table),
            _ => Err(Error::Usage(format!(
                "unknown dataset kind `{s}` (expected folder, voc, list, tar or table)"
            ))),
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceKind::Folder => "folder",
            SourceKind::Voc => "voc",
            SourceKind::List => "list",
            SourceKind::Tar => "tar",
            SourceKind::Table => "table",
        })
    }
}

/// One image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The image's path relative to the dataset root, with `/` separators
    /// (`Faces/image_0001.jpg`, `JPEGImages/000005.jpg`); unique within a dataset. For a list
    /// file entry outside the list's folder, the absolute path. A `%` in a name is written
    /// `%25` and a byte that is not valid UTF-8 `%XX` (see [`id_of`]), so every file has an id
    /// and [`path_of_id`] gives its path back.
    pub id: String,
    /// The path to open (the root joined with the relative path, or the absolute path).
    pub path: PathBuf,
    /// Class names this image belongs to, in [`Dataset::classes`] order: one for folder and
    /// labelled list entries, none for unlabelled ones, the positive (+1) classes for VOC.
    pub labels: Vec<String>,
    /// VOC only: one entry per class of [`Dataset::classes`]: +1 positive, -1 negative,
    /// 0 difficult (neither, ignored by the VOC evaluation). `None` for other sources and for a
    /// VOC split without class files (e.g. the VOC2012 test set).
    pub voc_labels: Option<Vec<i8>>,
    /// For an image inside a tar shard: where its bytes are in the file at `path`.
    pub member: Option<Member>,
}

/// Where an image's bytes are inside an archive: the byte range of a tar member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Offset of the member's data in the archive.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

impl Item {
    /// The size of the image's bytes: its file's, or its tar member's (`None` when the file
    /// cannot be examined).
    pub fn size(&self) -> Option<u64> {
        match self.member {
            Some(m) => Some(m.size),
            None => std::fs::metadata(&self.path).ok().map(|m| m.len()),
        }
    }
}

/// Whether a listing skipped an entry on purpose or because it could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// A hidden file or folder (name starting with `.`), deliberately left out.
    Hidden,
    /// A file that is recognisably not an image (no image signature, no image extension).
    NotAnImage,
    /// An entry that could not be examined: an unreadable folder or file, a broken symbolic
    /// link, a link loop, something that is not a regular file. Extraction reports these as
    /// failed inputs, like a decode failure.
    Unusable,
}

/// A file or folder that was not listed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file or folder.
    pub path: PathBuf,
    /// The id it would have had (see [`Item::id`]); extraction records it as a failed input.
    pub id: String,
    /// Why it was skipped: "hidden", "not an image", "cannot read: ...", "not a regular file",
    /// or the directory walker's error (permission, symlink loop, broken symlink).
    pub reason: String,
    /// Deliberate or a problem.
    pub kind: SkipKind,
    /// Its labels when the listing knows them (a folder's class folder, none for a file at the
    /// top; a tar sample's readable label), `None` when it cannot tell (a tar sample whose label
    /// member is unreadable or missing). A failed input is recorded with these labels, and
    /// `--classes` keeps an entry of unknown class in the report.
    pub labels: Option<Vec<String>>,
}

/// A list of images with labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// The folder ids are relative to: the folder, the VOC root, or the list file's folder.
    pub root: PathBuf,
    /// Where the list came from.
    pub kind: SourceKind,
    /// The images, sorted by id (byte-wise), ids unique.
    pub items: Vec<Item>,
    /// Sorted class names (byte-wise; [`VOC_CLASSES`] for VOC). Subsets made by
    /// [`Dataset::shard`] and [`Dataset::limit_per_class`] keep the full list so that class
    /// indices agree between subsets.
    pub classes: Vec<String>,
    /// What a folder listing skipped (hidden and non-image files, unreadable entries), sorted by
    /// path; empty for VOC and list sources.
    pub skipped: Vec<Skipped>,
}

/// How [`Dataset::open_with`] reads a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// The source kind; `None` (default) detects it with [`Dataset::detect_kind`].
    pub kind: Option<SourceKind>,
    /// The VOC image set to read (`ImageSets/Main/<split>.txt`); default `"trainval"`. Ignored
    /// by the other sources.
    pub voc_split: String,
    /// Tables: the folder relative paths (or a split file's ids) are resolved against; default
    /// the table's folder.
    pub root: Option<PathBuf>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            kind: None,
            voc_split: "trainval".to_string(),
            root: None,
        }
    }
}

/// Which images of an input to use: the VOC image set, some classes, the first K per class, one
/// shard. What `extract` records in a store's manifest, so that the same images can be listed
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The VOC image set (`ImageSets/Main/<split>.txt`) for a devkit input. Default `trainval`.
    pub voc_split: String,
    /// Only these classes (folder and labelled list inputs). Default all.
    pub classes: Option<Vec<String>>,
    /// Only the first K images of each class (sorted order). Default all.
    pub limit_per_class: Option<usize>,
    /// Shard `(i, N)` of the inputs ([`Dataset::shard`]). Default none.
    pub shard: Option<(usize, usize)>,
    /// Tables: the root of their relative paths ([`OpenOptions::root`]).
    pub root: Option<PathBuf>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            voc_split: OpenOptions::default().voc_split,
            classes: None,
            limit_per_class: None,
            shard: None,
            root: None,
        }
    }
}

impl Dataset {
    /// Lists `path` (kind detected) and applies the selection: classes, then the limit per
    /// class, then the shard.
    pub fn open_selection(path: &Path, sel: &Selection) -> Result<Dataset> {
        Dataset::open_inputs_selection(&[path.to_path_buf()], sel)
    }

    /// [`Dataset::open_selection`] of several inputs ([`Dataset::open_inputs`]).
    pub fn open_inputs_selection(paths: &[PathBuf], sel: &Selection) -> Result<Dataset> {
        if let Some(r) = &sel.root
            && !paths.iter().any(|p| table::is_table(p))
        {
            return Err(Error::param(
                Param::Root,
                format!(
                    "{}: only the relative paths of a table (.csv, .tsv, .parquet) use a root, \
                     and no input is a table",
                    r.display()
                ),
            ));
        }
        let ds = Dataset::open_inputs(
            paths,
            &OpenOptions {
                voc_split: sel.voc_split.clone(),
                root: sel.root.clone(),
                ..Default::default()
            },
        )?;
        let ds = match &sel.classes {
            Some(c) => ds.select_classes(c)?,
            None => ds,
        };
        let ds = match sel.limit_per_class {
            Some(k) => ds.limit_per_class(k),
            None => ds,
        };
        match sel.shard {
            Some((i, n)) => ds.shard(i, n),
            None => Ok(ds),
        }
    }

    /// Lists `path` with default [`OpenOptions`]: the kind is detected, VOC reads `trainval`.
    pub fn open(path: &Path) -> Result<Dataset> {
        Dataset::open_with(path, &OpenOptions::default())
    }

    /// Lists `path` as `opts` says.
    pub fn open_with(path: &Path, opts: &OpenOptions) -> Result<Dataset> {
        let kind = match opts.kind {
            Some(k) => k,
            None => Dataset::detect_kind(path)?,
        };
        match kind {
            SourceKind::Folder => Dataset::from_folder(path),
            SourceKind::Voc => Dataset::from_voc(path, &opts.voc_split),
            SourceKind::List => Dataset::from_list(path),
            SourceKind::Tar => webdataset::list(path),
            SourceKind::Table => table::list(path, opts.root.as_deref()),
        }
    }

    /// Lists several inputs ([`Dataset::open_with`] each) as one dataset: their items together,
    /// their skipped entries, their classes. An id in two inputs must name the same image with
    /// the same labels (it is then one item, as in the split files of several splits); otherwise
    /// it is an error naming both inputs. The root and kind
    /// are the first input's. One input is the same as [`Dataset::open_with`].
    pub fn open_inputs(paths: &[PathBuf], opts: &OpenOptions) -> Result<Dataset> {
        let Some(first) = paths.first() else {
            return Err(Error::Usage("no input given".into()));
        };
        if paths.len() == 1 {
            return Dataset::open_with(first, opts);
        }
        let mut items: Vec<Item> = Vec::new();
        let mut skipped = Vec::new();
        // id -> (input, index in `items`)
        let mut from: HashMap<String, (&Path, usize)> = HashMap::new();
        let mut kind = None;
        for p in paths {
            let ds = Dataset::open_with(p, opts)?;
            kind.get_or_insert(ds.kind);
            for it in ds.items {
                match from.get(&it.id) {
                    // The same image listed by two inputs (e.g. the split files of several
                    // splits): one item.
                    Some(&(_, k))
                        if items[k].path == it.path
                            && items[k].member == it.member
                            && items[k].labels == it.labels => {}
                    Some(&(other, _)) => {
                        return Err(Error::Usage(format!(
                            "image id `{}` is in two inputs, {} and {}, for different images or \
                             labels: give inputs whose ids differ (e.g. shards with different \
                             names)",
                            it.id,
                            other.display(),
                            p.display()
                        )));
                    }
                    None => {
                        from.insert(it.id.clone(), (p, items.len()));
                        items.push(it);
                    }
                }
            }
            skipped.extend(ds.skipped);
        }
        let root = Dataset::detect_root(first);
        let mut ds = Dataset::from_items(root, kind.unwrap_or(SourceKind::Folder), items)?;
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        ds.skipped = skipped;
        Ok(ds)
    }

    /// The folder ids of the input at `path` are relative to: the folder itself, or a file's
    /// folder.
    fn detect_root(path: &Path) -> PathBuf {
        if path.is_dir() {
            return path.to_path_buf();
        }
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// The kind of source at `path`. A `.tar` file is a WebDataset shard. A `.csv`, `.tsv` or
    /// `.parquet` file is a table (with a header naming a `path` or `id` column). Any other
    /// file is a list. A folder with both `JPEGImages/` and `ImageSets/Main/` is a VOC devkit
    /// root (e.g. `VOCdevkit/VOC2007`), and any other folder is a folder of images. Errors if
    /// `path` does not exist.
    pub fn detect_kind(path: &Path) -> Result<SourceKind> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            if path.join("JPEGImages").is_dir() && path.join("ImageSets/Main").is_dir() {
                Ok(SourceKind::Voc)
            } else {
                Ok(SourceKind::Folder)
            }
        } else if webdataset::is_tar(path) {
            Ok(SourceKind::Tar)
        } else if table::is_table(path) {
            Ok(SourceKind::Table)
        } else {
            Ok(SourceKind::List)
        }
    }

    /// Lists a folder recursively. The label of a file is its first-level sub-folder
    /// (`root/cat/a.jpg` and `root/cat/more/b.jpg` are both `cat`); files directly in `root`
    /// have no label. Symbolic links are followed; loops and broken links are recorded in
    /// [`Dataset::skipped`] instead of failing the listing. Hidden files and folders (name
    /// starting with `.`) are skipped without being descended into.
    ///
    /// A file is listed when its first bytes are a known image signature (so Caltech-101's
    /// extension-less JPEG `BACKGROUND_Google/tmp` is included) **or** its extension is in
    /// [`IMAGE_EXTENSIONS`]: a `.jpg` that is empty, truncated or not an image at all is listed,
    /// and the decoder reports it with its reason when it is used. Other files (`.txt`,
    /// `.DS_Store`, ...) go to [`Dataset::skipped`]. Files whose relative path is not valid
    /// UTF-8 are skipped too (ids are strings). Classes are the labels that have at least one
    /// image.
    pub fn from_folder(root: &Path) -> Result<Dataset> {
        folder::list(root)
    }

    /// Reads a PASCAL VOC devkit root (the folder holding `JPEGImages/` and `ImageSets/`):
    /// image ids from `ImageSets/Main/<split>.txt`, labels from the 20
    /// `ImageSets/Main/<class>_<split>.txt` files (`<image id> <1|-1|0>` per line), images at
    /// `JPEGImages/<image id>.jpg`. Every class file must list exactly the images of the split.
    /// If none of the class files exists (a test set without annotations), items get no labels
    /// and `voc_labels` is `None`; if only some exist, that is an error naming the first
    /// missing one. Errors name the file and line.
    pub fn from_voc(root: &Path, split: &str) -> Result<Dataset> {
        voc::list(root, split)
    }

    /// Reads a list file: one image per line, `path` or `path<TAB>label`. Relative paths are
    /// relative to the list file's folder. Only a tab separates the label, so paths may hold
    /// commas and spaces. Paths and labels are trimmed of surrounding white space; an empty
    /// label means none; a label is one class name whatever it contains (`x;y` is one class). A
    /// UTF-8 byte-order mark at the start is ignored. Blank lines and lines starting with `#`
    /// are ignored. Listed files are not opened here: a missing file is reported by the decoder
    /// when it is used. Errors (an image given instead of a list, empty path, the same image
    /// twice, a file that is not UTF-8 text) name the file and line number.
    pub fn from_list(file: &Path) -> Result<Dataset> {
        list::list(file)
    }

    /// Builds a dataset from items: sorts them by id, checks that ids are unique, and collects
    /// the sorted class names from their labels.
    pub fn from_items(root: PathBuf, kind: SourceKind, mut items: Vec<Item>) -> Result<Dataset> {
        items.sort_by(|a, b| a.id.cmp(&b.id));
        // What a store can record of an image (ids and labels are 16-bit counted there).
        let max = usize::from(u16::MAX);
        if let Some(i) = items.iter().find(|i| {
            i.id.len() > max || i.labels.len() > max || i.labels.iter().any(|l| l.len() > max)
        }) {
            return Err(Error::Data {
                path: root,
                reason: format!(
                    "image `{:.80}`: an id or a label longer than {max} bytes, or more than {max} \
                     labels ({} here)",
                    i.id,
                    i.labels.len()
                ),
            });
        }
        if let Some(w) = items.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(Error::Data {
                path: root,
                reason: format!("image `{}` is listed twice", w[0].id),
            });
        }
        let mut classes: Vec<String> = items.iter().flat_map(|i| i.labels.clone()).collect();
        classes.sort();
        classes.dedup();
        Ok(Dataset {
            root,
            kind,
            items,
            classes,
            skipped: Vec::new(),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The position of a class in [`Dataset::classes`].
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.binary_search_by(|c| c.as_str().cmp(name)).ok()
    }

    /// The position of the item with this id in [`Dataset::items`].
    pub fn item_index(&self, id: &str) -> Option<usize> {
        self.items.binary_search_by(|i| i.id.as_str().cmp(id)).ok()
    }

    /// Number of images carrying each class, aligned with [`Dataset::classes`] (VOC: positives).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for item in &self.items {
            for l in &item.labels {
                if let Some(c) = self.class_index(l) {
                    counts[c] += 1;
                }
            }
        }
        counts
    }

    /// The class index of each item, for single-label datasets (Caltech, labelled lists).
    /// Errors naming the first item that has no label or several.
    pub fn single_labels(&self) -> Result<Vec<usize>> {
        self.items
            .iter()
            .map(|item| match item.labels.as_slice() {
                [one] => self.class_index(one).ok_or_else(|| Error::Data {
                    path: self.root.clone(),
                    reason: format!("`{}` has label `{one}`, which is not a class", item.id),
                }),
                labels => Err(Error::Data {
                    path: self.root.clone(),
                    reason: format!(
                        "`{}` has {} labels; this needs exactly one label per image",
                        item.id,
                        labels.len()
                    ),
                }),
            })
            .collect()
    }

    /// The first `k` images of each class, in sorted (id) order. An image is kept while any of
    /// its classes has fewer than `k` kept images, and then counts for all its classes (the same
    /// as "first k per class" for single-label data); unlabelled images form one group of their
    /// own. `k = 0` gives no images. Classes are kept unchanged.
    pub fn limit_per_class(&self, k: usize) -> Dataset {
        let mut kept_per_class = vec![0usize; self.classes.len()];
        let mut kept_unlabelled = 0usize;
        let mut items = Vec::new();
        for item in &self.items {
            let idx: Vec<usize> = item
                .labels
                .iter()
                .filter_map(|l| self.class_index(l))
                .collect();
            let keep = if idx.is_empty() {
                kept_unlabelled < k
            } else {
                idx.iter().any(|&c| kept_per_class[c] < k)
            };
            if keep {
                if idx.is_empty() {
                    kept_unlabelled += 1;
                }
                for c in idx {
                    kept_per_class[c] += 1;
                }
                items.push(item.clone());
            }
        }
        Dataset {
            items,
            skipped: self.skipped.clone(),
            ..self.clone_empty()
        }
    }

    /// The images carrying at least one of `classes`, with only those classes (in sorted
    /// order): a smaller benchmark made of some classes. Errors (usage) naming a class the
    /// dataset does not have.
    pub fn select_classes(&self, classes: &[String]) -> Result<Dataset> {
        if let Some(c) = classes.iter().find(|c| self.class_index(c).is_none()) {
            return Err(Error::param(
                Param::Classes,
                format!(
                    "{}: no class `{c}` (it has {} classes, e.g. {})",
                    self.root.display(),
                    self.classes.len(),
                    self.classes
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let keep = |l: &String| classes.contains(l);
        let items = self
            .items
            .iter()
            .filter(|i| i.labels.iter().any(keep))
            .cloned()
            .collect();
        // Entries of the classes kept, and unusable entries whose class is unknown (they may
        // belong to a kept class: reported rather than lost).
        let in_classes = |s: &&Skipped| match &s.labels {
            Some(l) => l.iter().any(keep),
            None => s.kind == SkipKind::Unusable,
        };
        let mut out = Dataset {
            items,
            skipped: self.skipped.iter().filter(in_classes).cloned().collect(),
            ..self.clone_empty()
        };
        out.classes.retain(keep);
        Ok(out)
    }

    /// Shard `index` of `count`: the images whose id hashes to `index` (see [`shard_of`]).
    /// Depends only on each id, so it is the same on every machine, does not change when other
    /// images are added or removed, and the `count` shards are disjoint and cover the dataset.
    /// Classes are kept unchanged. Errors unless `count >= 1` and `index < count`.
    pub fn shard(&self, index: usize, count: usize) -> Result<Dataset> {
        if count == 0 || index >= count {
            return Err(Error::Usage(format!(
                "shard {index} of {count}: need count >= 1 and 0 <= index < count"
            )));
        }
        let items = self
            .items
            .iter()
            .filter(|i| shard_of(&i.id, count) == index)
            .cloned()
            .collect();
        let skipped = self
            .skipped
            .iter()
            .filter(|s| {
                let rel = s.path.strip_prefix(&self.root).unwrap_or(&s.path);
                shard_of(&id_of(rel), count) == index
            })
            .cloned()
            .collect();
        Ok(Dataset {
            items,
            skipped,
            ..self.clone_empty()
        })
    }

    /// A copy without items and without the skipped list (the subsets above keep the part of
    /// it that belongs to them).
    fn clone_empty(&self) -> Dataset {
        Dataset {
            root: self.root.clone(),
            kind: self.kind,
            items: Vec::new(),
            classes: self.classes.clone(),
            skipped: Vec::new(),
        }
    }
}

/// The shard (0..`count`) an id belongs to: FNV-1a 64 of the id's UTF-8 bytes, mixed by the
/// SplitMix64 finaliser, modulo `count`. A fixed, documented function, so any tool can
/// recompute it. `count` must be at least 1.
pub fn shard_of(id: &str, count: usize) -> usize {
    assert!(count > 0, "shard count must be at least 1");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % count as u64) as usize
}

/// `rel` as an id: its normal components joined with `/` (`.` components dropped), each
/// escaped so that any file name has a reversible id: `%` becomes `%25`, and every byte of a
/// sequence that is not valid UTF-8 becomes `%XX` (upper-case hex). Valid UTF-8 names without
/// `%` are unchanged.
pub fn id_of(rel: &Path) -> String {
    use std::path::Component;
    let mut parts: Vec<String> = Vec::new();
    for c in rel.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => parts.push("..".into()),
            Component::Normal(s) => parts.push(escape_component(s.as_encoded_bytes())),
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    parts.join("/")
}

fn escape_component(mut bytes: &[u8]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, percent_encode};
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(&s.replace('%', "%25"));
                return out;
            }
            Err(e) => {
                let (ok, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(&std::str::from_utf8(ok).expect("valid").replace('%', "%25"));
                let bad = e.error_len().unwrap_or(rest.len());
                // Bytes of an invalid sequence are never alphanumeric ASCII: all escaped.
                out.extend(percent_encode(&rest[..bad], NON_ALPHANUMERIC));
                bytes = &rest[bad..];
            }
        }
    }
}

/// The relative path an id was made from by [`id_of`] (`%XX` escapes decoded to their bytes).
pub fn path_of_id(id: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(id).collect();
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

/// Whether the file name's extension is in [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, labels: &[&str]) -> Item {
        Item {
            id: id.to_string(),
            path: PathBuf::from(id),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            voc_labels: None,
            member: None,
        }
    }

    #[test]
    fn shard_of_is_fnv1a_splitmix() {
        // Values computed independently in Python (see the doc of shard_of):
        //   h = fnv1a64(id); h = splitmix64_finaliser(h); h % count
        assert_eq!(
            shard_of("", 1_000_003),
            (0xF52A_15E9_A9B5_E89Bu64 % 1_000_003) as usize
        );
        assert_eq!(
            shard_of("Faces/image_0001.jpg", 1_000_003),
            (0x4541_CA7F_ACA2_EE4Du64 % 1_000_003) as usize
        );
        for id in ["a", "b/c.jpg", "ünï"] {
            assert!(shard_of(id, 7) < 7);
            assert_eq!(shard_of(id, 1), 0);
        }
    }

    #[test]
    fn from_items_sorts_and_refuses_duplicates() {
        let ds = Dataset::from_items(
            PathBuf::from("r"),
            SourceKind::List,
            vec![
                item("b/2", &["b"]),
                item("a/1", &["a"]),
                item("B/0", &["B"]),
            ],
        )
        .unwrap();
        let ids: Vec<&str> = ds.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["B/0", "a/1", "b/2"]);
        assert_eq!(ds.classes, ["B", "a", "b"]);
        assert_eq!(ds.item_index("a/1"), Some(1));
        assert_eq!(ds.class_index("b"), Some(2));
        let e = Dataset::from_items(
            PathBuf::from("r"),
            SourceKind::List,
            vec![item("x", &[]), item("x", &[])],
        )
        .unwrap_err();
        assert!(e.to_string().contains("`x` is listed twice"), "{e}");
    }

    #[test]
    fn limit_per_class_multi_label_and_unlabelled() {
        let ds = Dataset::from_items(
            PathBuf::from("r"),
            SourceKind::Voc,
            vec![
                item("1", &["cat", "dog"]),
                item("2", &["cat"]),
                item("3", &["dog"]),
                item("4", &["cat", "dog"]),
                item("5", &[]),
                item("6", &[]),
            ],
        )
        .unwrap();
        let ids = |d: &Dataset| d.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        // k = 1: "1" fills both classes, so 2, 3, 4 are dropped; one unlabelled image.
        assert_eq!(ids(&ds.limit_per_class(1)), ["1", "5"]);
        // k = 2: "1", then "2" (cat 2nd), "3" (dog 2nd); "4" has no room left.
        assert_eq!(ids(&ds.limit_per_class(2)), ["1", "2", "3", "5", "6"]);
        assert!(ds.limit_per_class(0).is_empty());
        assert_eq!(ds.limit_per_class(1).classes, ds.classes);
    }

    #[test]
    fn odd_names_have_reversible_ids() {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9 100%\xff.jpg");
        let rel = Path::new("cls").join(name);
        let id = id_of(&rel);
        assert_eq!(id, "cls/caf%E9 100%25%FF.jpg");
        assert_eq!(path_of_id(&id), rel);
        for plain in ["a/b c.jpg", "é/ü.png", "x%y/100%.jpg"] {
            assert_eq!(path_of_id(&id_of(Path::new(plain))), Path::new(plain));
        }
    }

    #[test]
    fn class_selection_keeps_those_classes_only() {
        let ds = Dataset::from_items(
            PathBuf::from("r"),
            SourceKind::Folder,
            vec![
                item("a/1", &["a"]),
                item("b/1", &["b"]),
                item("c/1", &["c"]),
            ],
        )
        .unwrap();
        let sel = ds.select_classes(&["c".into(), "a".into()]).unwrap();
        assert_eq!(sel.classes, ["a", "c"]);
        assert_eq!(sel.len(), 2);
        let e = ds.select_classes(&["z".into()]).unwrap_err().to_string();
        assert!(e.contains("no class `z`"), "{e}");
    }

    #[test]
    fn shards_partition_the_items() {
        let items = (0..1000)
            .map(|i| item(&format!("c{}/img{i}", i % 7), &[]))
            .collect();
        let ds = Dataset::from_items(PathBuf::from("r"), SourceKind::Folder, items).unwrap();
        let mut seen = Vec::new();
        for s in 0..4 {
            let part = ds.shard(s, 4).unwrap();
            assert!(
                part.len() > 200 && part.len() < 300,
                "shard {s}: {}",
                part.len()
            );
            seen.extend(part.items.into_iter().map(|i| i.id));
        }
        seen.sort();
        let all: Vec<String> = ds.items.iter().map(|i| i.id.clone()).collect();
        assert_eq!(seen, all);
        assert!(ds.shard(4, 4).is_err());
        assert!(ds.shard(0, 0).is_err());
    }

    #[test]
    fn ids_use_slashes_and_drop_dots() {
        assert_eq!(id_of(Path::new("./a/./b.jpg")), "a/b.jpg");
        assert_eq!(id_of(Path::new("../x/y.png")), "../x/y.png");
        assert!(has_image_extension(Path::new("a/B.JPG")));
        assert!(has_image_extension(Path::new("x.jpeg")));
        assert!(!has_image_extension(Path::new("tmp")));
        assert!(!has_image_extension(Path::new("notes.txt")));
    }
}
