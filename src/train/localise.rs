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
//!
//! One departure from the paper, for CPU-sized runs: fc8's biases start at the mean training
//! box (per class for PCR; [`BoxData::mean_targets`]) rather than at zero. Its weights are
//! random, as the paper's. With a rate of 1e-3 a zero bias needs hundreds of steps only to
//! reach the average box, which the paper's ILSVRC runs (thousands of iterations of 256)
//! absorb and a run of a few hundred steps does not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rayon::prelude::*;

use super::augment::Geometry;
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
    /// Per training sample: its image's size, if the annotation gives it.
    pub sizes: Vec<Option<(u32, u32)>>,
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
    let mut sizes = Vec::new();
    let mut train_ids = Vec::new();
    for a in &train_ann {
        let before = train.len();
        for o in a.objects.iter().filter(|o| !o.difficult) {
            let c = class_of(&o.class).expect("training classes come from here");
            train.push((c, Rect::from_voc(&o.bbox)));
            sizes.push(a.size);
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
        sizes,
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

    /// The mean regression target of the training boxes (per class for PCR, one for SCR), each
    /// box as the central `crop` of its image at training scale `s` would show it: the initial
    /// biases of fc8 (see [`super::trainer::Trainer::new`]). Samples whose annotation gives no
    /// image size are left out; a class without any takes the mean of all.
    pub fn mean_targets(&self, s: u32, crop: u32) -> Vec<[f32; 4]> {
        let k = match self.regression {
            Regression::Scr => 1,
            Regression::Pcr => self.classes.len(),
        };
        let mut sum = vec![[0f64; 4]; k + 1];
        let mut count = vec![0usize; k + 1];
        for (&(class, rect), size) in self.train.iter().zip(&self.sizes) {
            let Some((w, h)) = *size else { continue };
            let (rw, rh) = crate::preprocess::scaled_size(w, h, s);
            let g = Geometry {
                fx: f64::from(rw) / f64::from(w),
                fy: f64::from(rh) / f64::from(h),
                x0: rw.saturating_sub(crop) / 2,
                y0: rh.saturating_sub(crop) / 2,
                crop,
                flip: false,
            };
            let t = g.box_target(&rect).0;
            let slot = self.regression.slot(class) / 4;
            for i in [slot, k] {
                for (a, v) in sum[i].iter_mut().zip(t) {
                    *a += f64::from(v);
                }
                count[i] += 1;
            }
        }
        let mean = |i: usize| sum[i].map(|v| (v / count[i].max(1) as f64) as f32);
        (0..k)
            .map(|i| if count[i] > 0 { mean(i) } else { mean(k) })
            .collect()
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
    /// (the one box of SCR) against that class's boxes; and the mean over those pairs of the
    /// box's best IoU with them.
    pub fn validate(
        &self,
        net: &Vgg,
        ds: &Dataset,
        split: &Split,
        q: u32,
        norm: Normalization,
        decode: &DecodeOptions,
    ) -> Result<(f64, f64)> {
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
        let pairs: Vec<(Option<Rect>, Vec<Rect>)> = pairs.into_iter().flatten().collect();
        let iou = pairs
            .iter()
            .map(|(b, truths)| {
                b.map_or(0.0, |b| truths.iter().map(|t| b.iou(t)).fold(0.0, f64::max))
            })
            .sum::<f64>()
            / pairs.len() as f64;
        Ok((gt_class_error(&pairs)?, iou))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_targets_by_hand() {
        // 200 x 100 images at S = 100 keep their size; the central 100 crop starts at x = 50.
        let b = BoxData {
            regression: Regression::Pcr,
            classes: vec!["a".into(), "b".into(), "c".into()],
            train: vec![
                (0, Rect::new(50.0, 0.0, 150.0, 100.0)), // the whole crop
                (1, Rect::new(60.0, 10.0, 100.0, 50.0)), // centre (80, 30), 40 x 40
                (1, Rect::new(0.0, 0.0, 10.0, 10.0)),    // no size: left out
            ],
            sizes: vec![Some((200, 100)), Some((200, 100)), None],
            val: Vec::new(),
            problems: Vec::new(),
        };
        let m = b.mean_targets(100, 100);
        assert_eq!(m[0], [0.5, 0.5, 1.0, 1.0]);
        assert_eq!(m[1], [0.3, 0.3, 0.4, 0.4]);
        // Class c has no sample: the mean of all.
        let all = m[2];
        for (a, w) in all.iter().zip([0.4, 0.4, 0.7, 0.7]) {
            assert!((a - w).abs() < 1e-6, "{all:?}");
        }
        let scr = BoxData {
            regression: Regression::Scr,
            ..b
        };
        assert_eq!(scr.mean_targets(100, 100).len(), 1);
    }
}
