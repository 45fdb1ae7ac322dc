//! The localisation task of a training run (`--task localise`, the paper's Sect. 4 and App. A):
//! a devkit's boxes as training samples and validation images, and the validation's
//! ground-truth-class localisation error on the central crop (protocol 1), which the schedule
//! watches as a classification run watches its top-1 error.
//!
//! Samples: every object of the training image set that is not `difficult`, one sample per
//! object (an image with two objects is seen twice per epoch, each time with its own target).
//! The classes are the training objects' class names, sorted; per-class regression has a box
//! per class in that order. Validation scores every object of a class the training set has;
//! the rest are reported. Nothing is left out silently: unreadable annotation files, each
//! file's odd boxes ([`crate::dataset::annotation`]), images with nothing usable and objects of
//! unknown classes are listed in [`BoxData::problems`], which the run writes to `problems.txt`
//! and `params.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rayon::prelude::*;

use crate::dataset::annotation::{Annotation, image_path, read_devkit};
use crate::dataset::{Dataset, Item, SourceKind, Split};
use crate::error::{Error, Result};
use crate::image_io::{DecodeOptions, load_item};
use crate::localise::predict::centre_crop_boxes;
use crate::localise::{Rect, Regression, Truth, gt_class_error};
use crate::model::Vgg;
use crate::preprocess::Normalization;
use crate::util::write_atomic;

/// The boxes a localisation run trains and validates on.
#[derive(Debug, Clone)]
pub(super) struct BoxData {
    /// The box head.
    pub regression: Regression,
    /// Class names, sorted.
    pub classes: Vec<String>,
    /// Per training sample (parallel to the split's `train`): its class and box.
    pub train: Vec<(usize, Rect)>,
    /// Per validation image (parallel to the split's `test`): its objects.
    pub val: Vec<Vec<Truth>>,
    /// Every file or object not used, and why: `path: reason`.
    pub problems: Vec<String>,
}

fn annotations(root: &Path, split: &str, problems: &mut Vec<String>) -> Result<Vec<Annotation>> {
    let (good, unread) = read_devkit(root, split)?;
    for (p, why) in unread {
        problems.push(format!("{}: {why}; image not used", p.display()));
    }
    for a in &good {
        for p in &a.problems {
            problems.push(format!("{}: {p}", a.path.display()));
        }
    }
    Ok(good)
}

/// Reads the devkit at `root`: the training samples of image set `split`, the validation images
/// of `val_split`, as a dataset (every image once, sorted by id) with a split whose training
/// entries are the samples and whose test entries are the validation images.
pub(super) fn load(
    root: &Path,
    split: &str,
    val_split: Option<&str>,
    regression: Regression,
) -> Result<(Dataset, Split, BoxData)> {
    let mut problems = Vec::new();
    let train_ann = annotations(root, split, &mut problems)?;
    let val_ann = match val_split {
        Some(v) => annotations(root, v, &mut problems)?,
        None => Vec::new(),
    };
    let classes: Vec<String> = train_ann
        .iter()
        .flat_map(|a| a.objects.iter().filter(|o| !o.difficult))
        .map(|o| o.class.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let class_of = |c: &str| classes.binary_search_by(|x| x.as_str().cmp(c)).ok();
    // Every image once, by id (its path relative to the devkit).
    let mut items: BTreeMap<String, Item> = BTreeMap::new();
    let mut add = |a: &Annotation| -> String {
        let path = image_path(root, a);
        let id = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        items.entry(id.clone()).or_insert_with(|| Item {
            id: id.clone(),
            path,
            labels: Vec::new(),
            voc_labels: None,
            member: None,
        });
        id
    };
    let mut train = Vec::new();
    let mut train_ids = Vec::new();
    for a in &train_ann {
        let before = train.len();
        for o in a.objects.iter().filter(|o| !o.difficult) {
            let c = class_of(&o.class).expect("training classes come from here");
            train.push((c, Rect::from_voc(&o.bbox)));
        }
        if train.len() == before {
            if !a.objects.is_empty() {
                problems.push(format!(
                    "{}: only difficult objects; not used for training",
                    a.path.display()
                ));
            }
            continue;
        }
        let id = add(a);
        train_ids.extend(std::iter::repeat_n(id, train.len() - before));
    }
    if train.is_empty() {
        return Err(Error::Data {
            path: root.join("ImageSets/Main").join(format!("{split}.txt")),
            reason: "no usable (non-difficult) object to train on".into(),
        });
    }
    let mut val = Vec::new();
    let mut val_ids = Vec::new();
    for a in &val_ann {
        let mut truths = Vec::new();
        for o in &a.objects {
            match class_of(&o.class) {
                Some(class) => truths.push(Truth {
                    class,
                    rect: Rect::from_voc(&o.bbox),
                }),
                None => problems.push(format!(
                    "{}: class `{}` is not among the training classes; that object is not scored",
                    a.path.display(),
                    o.class
                )),
            }
        }
        if truths.is_empty() {
            if !a.objects.is_empty() {
                problems.push(format!(
                    "{}: no object of a training class; not validated",
                    a.path.display()
                ));
            }
            continue;
        }
        val_ids.push(add(a));
        val.push(truths);
    }
    let position: BTreeMap<&str, usize> = items
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let split = Split {
        classes: classes.clone(),
        train: train_ids.iter().map(|id| position[id.as_str()]).collect(),
        train_labels: train.iter().map(|(c, _)| *c).collect(),
        test: val_ids.iter().map(|id| position[id.as_str()]).collect(),
        test_labels: val.iter().map(|t| t[0].class).collect(),
    };
    let ds = Dataset {
        root: root.to_path_buf(),
        kind: SourceKind::Voc,
        items: items.into_values().collect(),
        classes: classes.clone(),
        skipped: Vec::new(),
    };
    let data = BoxData {
        regression,
        classes,
        train,
        val,
        problems,
    };
    Ok((ds, split, data))
}

impl BoxData {
    /// The last layer's width.
    pub fn outputs(&self) -> usize {
        self.regression.outputs(self.classes.len())
    }

    /// Writes the samples (`boxes.csv`: set, id, class, VOC box) and the problems
    /// (`problems.txt`, one per line) into the run folder.
    pub fn write(&self, ds: &Dataset, split: &Split, dir: &Path) -> Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| Error::Internal(format!("boxes.csv: {e}"));
        w.write_record(["set", "id", "class", "xmin", "ymin", "xmax", "ymax"])
            .map_err(csv_err)?;
        let row = |set: &str, i: usize, t: &Truth| {
            vec![
                set.to_string(),
                ds.items[i].id.clone(),
                self.classes[t.class].clone(),
                (t.rect.x1 + 1.0).to_string(),
                (t.rect.y1 + 1.0).to_string(),
                t.rect.x2.to_string(),
                t.rect.y2.to_string(),
            ]
        };
        for (&i, &(class, rect)) in split.train.iter().zip(&self.train) {
            w.write_record(row("train", i, &Truth { class, rect }))
                .map_err(csv_err)?;
        }
        for (&i, truths) in split.test.iter().zip(&self.val) {
            for t in truths {
                w.write_record(row("val", i, t)).map_err(csv_err)?;
            }
        }
        let bytes = w
            .into_inner()
            .map_err(|e| Error::Internal(format!("boxes.csv: {e}")))?;
        write_atomic(&dir.join("boxes.csv"), &bytes)?;
        let mut text = self.problems.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        write_atomic(&dir.join("problems.txt"), text.as_bytes())
    }

    /// Whether a predicted box (outputs `pred` of one sample, in units of the crop) misses its
    /// target: intersection over union at most [`crate::localise::HIT_IOU`].
    pub fn misses(&self, pred: &[f32], class: usize, target: &[f32; 4]) -> bool {
        let unit = crate::localise::Window {
            x0: 0.0,
            y0: 0.0,
            side: 1.0,
        };
        let o = self.regression.slot(class);
        let p = crate::localise::BoxParams([pred[o], pred[o + 1], pred[o + 2], pred[o + 3]]);
        let t = crate::localise::BoxParams(*target);
        unit.decode(p).iou(&unit.decode(t)) <= crate::localise::HIT_IOU
    }

    /// The ground-truth-class localisation error of `net` on the validation images (the central
    /// crop at scale `q`): per image and ground-truth class, the box predicted for that class
    /// (the one box of SCR) against that class's boxes.
    pub fn validate(
        &self,
        net: &Vgg,
        ds: &Dataset,
        split: &Split,
        q: u32,
        norm: Normalization,
        decode: &DecodeOptions,
    ) -> Result<f64> {
        let pairs: Vec<Vec<(Option<Rect>, Vec<Rect>)>> = split
            .test
            .par_iter()
            .zip(&self.val)
            .map(|(&i, truths)| {
                let img = load_item(&ds.items[i], decode)?;
                let boxes = centre_crop_boxes(net, &img, q, norm)?.boxes;
                let classes: BTreeSet<usize> = truths.iter().map(|t| t.class).collect();
                Ok(classes
                    .into_iter()
                    .map(|c| {
                        let mine = truths.iter().filter(|t| t.class == c).map(|t| t.rect);
                        let b = boxes.get(self.regression.slot(c) / 4).copied();
                        (b, mine.collect())
                    })
                    .collect())
            })
            .collect::<Result<_>>()?;
        gt_class_error(&pairs.into_iter().flatten().collect::<Vec<_>>())
    }
}
