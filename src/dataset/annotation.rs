//! Object boxes from VOC-format XML annotations (`Annotations/<id>.xml` in a PASCAL VOC devkit;
//! ILSVRC's localisation release uses the same format): each object's class, box, and the
//! `difficult` / `truncated` flags, for the paper's localisation task.
//!
//! Coordinates are kept as the files give them: VOC's 1-based, inclusive pixel indices, so a box
//! covers columns `xmin..=xmax` and rows `ymin..=ymax` of an image of `width` x `height` pixels.
//!
//! Nothing odd is dropped silently. [`Annotation::problems`] lists, per file, in document order:
//! - an object without a `name`, a `bndbox`, or with a coordinate that is missing or not a
//!   number. Such an object is left out of [`Annotation::objects`].
//! - a box of zero area (`xmax < xmin` or `ymax < ymin`), also left out.
//! - a box reaching outside the image (`xmin < 1`, `ymin < 1`, `xmax > width`,
//!   `ymax > height`). It is clipped to the image and kept.
//! - a missing or zero `size` (the box cannot be checked against the image; such boxes are kept
//!   as given).
//! - a file with no usable object.
//!
//! A file that cannot be read, is not XML, or whose root is not `<annotation>` is an error naming
//! it. [`read_devkit`] records such a file and goes on to the next one.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A box in VOC's 1-based inclusive pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    /// First column.
    pub xmin: f32,
    /// First row.
    pub ymin: f32,
    /// Last column.
    pub xmax: f32,
    /// Last row.
    pub ymax: f32,
}

/// One annotated object.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Its class (`name`): a VOC class or an ILSVRC synset id.
    pub class: String,
    /// Its box (clipped to the image where it reached outside, see [`Annotation::problems`]).
    pub bbox: BBox,
    /// VOC's `difficult` flag (absent: false).
    pub difficult: bool,
    /// VOC's `truncated` flag (absent: false).
    pub truncated: bool,
}

/// One annotation file.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// The file.
    pub path: PathBuf,
    /// The image file it names (`filename`), if it does.
    pub filename: Option<String>,
    /// The image's `(width, height)` in pixels, if the file gives a non-zero size.
    pub size: Option<(u32, u32)>,
    /// Its usable objects, in document order.
    pub objects: Vec<Object>,
    /// What was odd, as the module docs list it; empty for a clean file.
    pub problems: Vec<String>,
}

fn data_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The trimmed text of `node`'s first child element named `name`.
fn child_text<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.has_tag_name(name))
        .and_then(|c| c.text())
        .map(str::trim)
}

/// A `0` / `1` flag (absent or anything else: false).
fn flag(node: roxmltree::Node, name: &str) -> bool {
    child_text(node, name).is_some_and(|t| t == "1")
}

/// Reads one annotation file (see the module docs).
pub fn read_annotation(path: &Path) -> Result<Annotation> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| data_err(path, "not UTF-8 text"))?;
    parse_annotation(path, &text)
}

/// Parses the text of an annotation file; `path` names it in errors and problems.
pub fn parse_annotation(path: &Path, text: &str) -> Result<Annotation> {
    let doc = roxmltree::Document::parse(text)
        .map_err(|e| data_err(path, format!("not valid XML: {e}")))?;
    let root = doc.root_element();
    if !root.has_tag_name("annotation") {
        return Err(data_err(
            path,
            format!(
                "the root element is <{}>, not a VOC <annotation>",
                root.tag_name().name()
            ),
        ));
    }
    let mut problems = Vec::new();
    let size = root
        .children()
        .find(|c| c.has_tag_name("size"))
        .and_then(|s| {
            let w = child_text(s, "width")?.parse::<u32>().ok()?;
            let h = child_text(s, "height")?.parse::<u32>().ok()?;
            (w > 0 && h > 0).then_some((w, h))
        });
    if size.is_none() {
        problems.push(
            "no usable <size> (width and height): its boxes cannot be checked against the image"
                .to_string(),
        );
    }
    let mut objects = Vec::new();
    for (i, o) in root
        .children()
        .filter(|c| c.has_tag_name("object"))
        .enumerate()
    {
        let n = i + 1;
        let Some(class) = child_text(o, "name").filter(|s| !s.is_empty()) else {
            problems.push(format!("object {n}: no <name>; left out"));
            continue;
        };
        let Some(b) = o.children().find(|c| c.has_tag_name("bndbox")) else {
            problems.push(format!("object {n} ({class}): no <bndbox>; left out"));
            continue;
        };
        let mut v = [0f32; 4];
        let mut bad = None;
        for (slot, key) in v.iter_mut().zip(["xmin", "ymin", "xmax", "ymax"]) {
            match child_text(b, key).map(|t| (t, t.parse::<f32>())) {
                Some((_, Ok(x))) if x.is_finite() => *slot = x,
                Some((t, _)) => {
                    bad = Some(format!("<{key}> `{t}` is not a number"));
                    break;
                }
                None => {
                    bad = Some(format!("no <{key}>"));
                    break;
                }
            }
        }
        if let Some(why) = bad {
            problems.push(format!("object {n} ({class}): {why}; left out"));
            continue;
        }
        let mut bbox = BBox {
            xmin: v[0],
            ymin: v[1],
            xmax: v[2],
            ymax: v[3],
        };
        if bbox.xmax < bbox.xmin || bbox.ymax < bbox.ymin {
            problems.push(format!(
                "object {n} ({class}): box ({}, {}, {}, {}) has zero area; left out",
                bbox.xmin, bbox.ymin, bbox.xmax, bbox.ymax
            ));
            continue;
        }
        if let Some((w, h)) = size {
            let (w, h) = (w as f32, h as f32);
            if bbox.xmin < 1.0 || bbox.ymin < 1.0 || bbox.xmax > w || bbox.ymax > h {
                let clipped = BBox {
                    xmin: bbox.xmin.clamp(1.0, w),
                    ymin: bbox.ymin.clamp(1.0, h),
                    xmax: bbox.xmax.clamp(1.0, w),
                    ymax: bbox.ymax.clamp(1.0, h),
                };
                problems.push(format!(
                    "object {n} ({class}): box ({}, {}, {}, {}) reaches outside the {}x{} image; \
                     clipped to ({}, {}, {}, {})",
                    bbox.xmin,
                    bbox.ymin,
                    bbox.xmax,
                    bbox.ymax,
                    w,
                    h,
                    clipped.xmin,
                    clipped.ymin,
                    clipped.xmax,
                    clipped.ymax
                ));
                bbox = clipped;
            }
        }
        objects.push(Object {
            class: class.to_string(),
            bbox,
            difficult: flag(o, "difficult"),
            truncated: flag(o, "truncated"),
        });
    }
    if objects.is_empty() {
        problems.push("no usable object: the image has nothing to localise".into());
    }
    Ok(Annotation {
        path: path.to_path_buf(),
        filename: child_text(root, "filename").map(String::from),
        size,
        objects,
        problems,
    })
}

/// The image file an annotation of the devkit at `root` describes: `JPEGImages/<filename>`,
/// or `JPEGImages/<file stem>.jpg` when the file names none (as VOC's and ILSVRC's ids are the
/// annotation's stem).
pub fn image_path(root: &Path, a: &Annotation) -> PathBuf {
    let name = match &a.filename {
        Some(f) if !f.is_empty() => f.clone(),
        _ => format!(
            "{}.jpg",
            a.path.file_stem().unwrap_or_default().to_string_lossy()
        ),
    };
    root.join("JPEGImages").join(name)
}

/// Annotation files that could not be read, each with the reason.
pub type Unread = Vec<(PathBuf, String)>;

/// The annotations of a devkit's image set: `Annotations/<id>.xml` for each id of
/// `ImageSets/Main/<split>.txt`, in the set's order, and every file that could not be read
/// (missing, not XML, not an annotation) with the reason. Such files are skipped and listed,
/// never dropped silently.
pub fn read_devkit(root: &Path, split: &str) -> Result<(Vec<Annotation>, Unread)> {
    super::voc::check_split(split)?;
    let set_file = root
        .join("ImageSets")
        .join("Main")
        .join(format!("{split}.txt"));
    let text = std::fs::read_to_string(&set_file).map_err(|e| Error::io(&set_file, e))?;
    let mut good = Vec::new();
    let mut failed = Vec::new();
    for id in text.lines().filter_map(|l| l.split_whitespace().next()) {
        let path = root.join("Annotations").join(format!("{id}.xml"));
        match read_annotation(&path) {
            Ok(a) => good.push(a),
            Err(e) => failed.push((path, e.to_string())),
        }
    }
    if good.is_empty() && failed.is_empty() {
        return Err(data_err(&set_file, "lists no images"));
    }
    Ok((good, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Result<Annotation> {
        parse_annotation(Path::new("Annotations/x.xml"), xml)
    }

    const GOOD: &str = r#"<annotation>
        <folder>VOC2007</folder><filename>000001.jpg</filename>
        <size><width>353</width><height>500</height><depth>3</depth></size>
        <object><name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
          <bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox></object>
        <object><name>person</name><truncated>0</truncated><difficult>1</difficult>
          <bndbox><xmin>8</xmin><ymin>12</ymin><xmax>352</xmax><ymax>498</ymax></bndbox></object>
    </annotation>"#;

    #[test]
    fn reads_a_voc_annotation() {
        let a = parse(GOOD).unwrap();
        assert_eq!(a.filename.as_deref(), Some("000001.jpg"));
        assert_eq!(a.size, Some((353, 500)));
        assert!(a.problems.is_empty(), "{:?}", a.problems);
        assert_eq!(a.objects.len(), 2);
        assert_eq!(a.objects[0].class, "dog");
        assert_eq!(
            a.objects[0].bbox,
            BBox {
                xmin: 48.0,
                ymin: 240.0,
                xmax: 195.0,
                ymax: 371.0
            }
        );
        assert!(a.objects[0].truncated && !a.objects[0].difficult);
        assert!(!a.objects[1].truncated && a.objects[1].difficult);
    }

    #[test]
    fn odd_boxes_are_reported_never_dropped_silently() {
        let xml = r#"<annotation><filename>a.jpg</filename>
            <size><width>100</width><height>80</height></size>
            <object><name>cat</name>
              <bndbox><xmin>-5</xmin><ymin>10</ymin><xmax>120</xmax><ymax>70</ymax></bndbox></object>
            <object><name>dog</name>
              <bndbox><xmin>50</xmin><ymin>10</ymin><xmax>40</xmax><ymax>70</ymax></bndbox></object>
            <object><name>bird</name></object>
            <object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>
            <object><name>cow</name>
              <bndbox><xmin>1</xmin><ymin>one</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>
            <object><name>sheep</name>
              <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax></bndbox></object>
            <object><name>horse</name>
              <bndbox><xmin>7</xmin><ymin>7</ymin><xmax>7</xmax><ymax>7</ymax></bndbox></object>
        </annotation>"#;
        let a = parse(xml).unwrap();
        let kept: Vec<&str> = a.objects.iter().map(|o| o.class.as_str()).collect();
        // The clipped cat and the one-pixel horse stay; the rest are left out, each said.
        assert_eq!(kept, ["cat", "horse"]);
        assert_eq!(
            a.objects[0].bbox,
            BBox {
                xmin: 1.0,
                ymin: 10.0,
                xmax: 100.0,
                ymax: 70.0
            }
        );
        assert_eq!(
            a.problems,
            [
                "object 1 (cat): box (-5, 10, 120, 70) reaches outside the 100x80 image; \
                 clipped to (1, 10, 100, 70)",
                "object 2 (dog): box (50, 10, 40, 70) has zero area; left out",
                "object 3 (bird): no <bndbox>; left out",
                "object 4: no <name>; left out",
                "object 5 (cow): <ymin> `one` is not a number; left out",
                "object 6 (sheep): no <ymax>; left out",
            ]
        );
    }

    #[test]
    fn no_objects_no_size_and_broken_files() {
        let a = parse("<annotation><filename>e.jpg</filename></annotation>").unwrap();
        assert!(a.objects.is_empty());
        assert_eq!(a.problems.len(), 2, "{:?}", a.problems);
        assert!(a.problems[0].contains("no usable <size>"));
        assert!(a.problems[1].contains("no usable object"));
        let e = parse("<annotation><object>").unwrap_err().to_string();
        assert!(
            e.contains("Annotations/x.xml") && e.contains("not valid XML"),
            "{e}"
        );
        let e = parse("<html/>").unwrap_err().to_string();
        assert!(e.contains("root element is <html>"), "{e}");
    }

    #[test]
    fn a_devkit_goes_on_past_broken_files() {
        let d = tempfile::tempdir().unwrap();
        let main = d.path().join("ImageSets/Main");
        let ann = d.path().join("Annotations");
        std::fs::create_dir_all(&main).unwrap();
        std::fs::create_dir_all(&ann).unwrap();
        std::fs::write(main.join("trainval.txt"), "a\nb\nc\n").unwrap();
        std::fs::write(ann.join("a.xml"), GOOD).unwrap();
        std::fs::write(ann.join("b.xml"), "<annotation><size>").unwrap();
        let (good, failed) = read_devkit(d.path(), "trainval").unwrap();
        assert_eq!(good.len(), 1);
        assert_eq!(good[0].path, ann.join("a.xml"));
        assert_eq!(failed.len(), 2);
        assert_eq!(failed[0].0, ann.join("b.xml"));
        assert!(failed[0].1.contains("not valid XML"), "{}", failed[0].1);
        assert_eq!(failed[1].0, ann.join("c.xml"));
        assert!(read_devkit(d.path(), "../x").is_err());
    }
}
