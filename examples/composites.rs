//! Builds a small real-image localisation benchmark as a VOC-format devkit: Caltech-101 object
//! photos pasted at random positions and scales onto `BACKGROUND_Google` clutter, the pasted
//! rectangle being the object's box (issue 26's composite set; results/localisation/).
//!
//! ```text
//! cargo run --release --example composites -- CALTECH101 OUT [TRAIN VAL TEST] [SEED]
//! ```
//!
//! `CALTECH101` is the `101_ObjectCategories` folder. Per class of [`CLASSES`], `TRAIN`, `VAL` and
//! `TEST` composites (default 30, 10, 15) go to the image sets `train`, `val`, `test` (and
//! `trainval`). No photo or background is shared between the sets: each class's photos and
//! the backgrounds are shuffled and dealt to `test` and `val` first (one photo and one
//! background per composite), the rest to `train`. Training composites reuse their class's
//! remaining photos when `TRAIN` exceeds them (each reuse mirrored at random, at a new scale and
//! place, on another background), and the training backgrounds when there are fewer than
//! composites (each reuse a random crop, mirrored at random). Everything is drawn from one
//! ChaCha8 stream seeded with `SEED` (default 0): the same arguments give the same files, byte
//! for byte.
//!
//! Each composite is 320 x 240: a background rescaled to cover it and centre-cropped (a random
//! crop when reused), and an object photo rescaled (its aspect kept) so that its longer side is
//! a uniform fraction in [0.3, 0.8] of 240, placed uniformly at random inside the canvas.
//! Annotations are VOC XML (written with quick-xml), boxes 1-based inclusive.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{RgbImage, codecs::jpeg::JpegEncoder};
use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The object classes: Caltech-101 classes with at least 99 photos each.
const CLASSES: [&str; 8] = [
    "Faces_easy",
    "Leopards",
    "Motorbikes",
    "airplanes",
    "bonsai",
    "car_side",
    "ketch",
    "watch",
];
const W: u32 = 320;
const H: u32 = 240;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn images_of(dir: &Path) -> Res<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("jpg")))
        .collect();
    v.sort();
    Ok(v)
}

fn open(p: &Path) -> Res<RgbImage> {
    Ok(image::open(p)
        .map_err(|e| format!("{}: {e}", p.display()))?
        .to_rgb8())
}

/// The background rescaled to cover the canvas and centre-cropped to it; on reuse, cropped at
/// random and mirrored at random instead.
fn canvas(bg: &RgbImage, reuse: bool, rng: &mut ChaCha8Rng) -> RgbImage {
    let f = (W as f64 / bg.width() as f64).max(H as f64 / bg.height() as f64);
    let (w, h) = (
        ((bg.width() as f64 * f).ceil() as u32).max(W),
        ((bg.height() as f64 * f).ceil() as u32).max(H),
    );
    let r = image::imageops::resize(bg, w, h, FilterType::Triangle);
    if !reuse {
        return image::imageops::crop_imm(&r, (w - W) / 2, (h - H) / 2, W, H).to_image();
    }
    let (x0, y0) = (rng.gen_range(0..=w - W), rng.gen_range(0..=h - H));
    mirror(image::imageops::crop_imm(&r, x0, y0, W, H).to_image(), rng)
}

/// The image, mirrored left to right with probability 1/2.
fn mirror(img: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
    if rng.r#gen::<bool>() {
        image::imageops::flip_horizontal(&img)
    } else {
        img
    }
}

fn annotation(id: &str, class: &str, b: [u32; 4]) -> Res<Vec<u8>> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let open = |w: &mut Writer<Vec<u8>>, t: &str| w.write_event(Event::Start(BytesStart::new(t)));
    let close = |w: &mut Writer<Vec<u8>>, t: &str| w.write_event(Event::End(BytesEnd::new(t)));
    let leaf = |w: &mut Writer<Vec<u8>>, t: &str, v: &str| -> std::io::Result<()> {
        w.write_event(Event::Start(BytesStart::new(t)))?;
        w.write_event(Event::Text(BytesText::new(v)))?;
        w.write_event(Event::End(BytesEnd::new(t)))
    };
    open(&mut w, "annotation")?;
    leaf(&mut w, "folder", "composites")?;
    leaf(&mut w, "filename", &format!("{id}.jpg"))?;
    open(&mut w, "size")?;
    leaf(&mut w, "width", &W.to_string())?;
    leaf(&mut w, "height", &H.to_string())?;
    leaf(&mut w, "depth", "3")?;
    close(&mut w, "size")?;
    open(&mut w, "object")?;
    leaf(&mut w, "name", class)?;
    leaf(&mut w, "truncated", "0")?;
    leaf(&mut w, "difficult", "0")?;
    open(&mut w, "bndbox")?;
    for (k, v) in ["xmin", "ymin", "xmax", "ymax"].iter().zip(b) {
        leaf(&mut w, k, &v.to_string())?;
    }
    close(&mut w, "bndbox")?;
    close(&mut w, "object")?;
    close(&mut w, "annotation")?;
    let mut out = w.into_inner();
    out.push(b'\n');
    Ok(out)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: composites CALTECH101 OUT [TRAIN VAL TEST] [SEED]");
        std::process::exit(2);
    }
    let (src, out) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let num = |i: usize, d: usize| -> Res<usize> {
        Ok(args.get(i).map(|s| s.parse()).transpose()?.unwrap_or(d))
    };
    let counts = [num(3, 30)?, num(4, 10)?, num(5, 15)?];
    let seed = num(6, 0)? as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for d in ["JPEGImages", "Annotations", "ImageSets/Main"] {
        std::fs::create_dir_all(out.join(d))?;
    }
    let mut backgrounds = images_of(&src.join("BACKGROUND_Google"))?;
    backgrounds.shuffle(&mut rng);
    // Backgrounds: test's, then val's, then the rest for train (set order 2, 1, 0).
    let classes = CLASSES.len();
    let mut pools: [Vec<PathBuf>; 3] = Default::default();
    let mut rest = backgrounds.into_iter();
    for set in [2, 1] {
        pools[set] = rest.by_ref().take(counts[set] * classes).collect();
        if pools[set].len() < counts[set] * classes {
            return Err(format!(
                "BACKGROUND_Google: too few backgrounds for {} val and test composites",
                (counts[1] + counts[2]) * classes
            )
            .into());
        }
    }
    pools[0] = rest.collect();
    if counts[0] > 0 && pools[0].is_empty() {
        return Err("BACKGROUND_Google: no background left for the training composites".into());
    }
    let mut used = [0usize; 3];
    let mut sets: [Vec<String>; 3] = Default::default();
    let mut n = 0usize;
    for class in CLASSES {
        let mut photos = images_of(&src.join(class))?;
        let held_out = counts[1] + counts[2];
        if photos.len() <= held_out {
            return Err(format!(
                "{class}: {} photos, more than {held_out} needed (val and test, and at least \
                 one for train)",
                photos.len()
            )
            .into());
        }
        photos.shuffle(&mut rng);
        let (test, rest) = photos.split_at(counts[2]);
        let (val, train) = rest.split_at(counts[1]);
        for (set, mine) in [(0, train), (1, val), (2, test)] {
            for i in 0..counts[set] {
                let id = format!("c{n:05}");
                n += 1;
                let pool = &pools[set];
                let bg_reuse = used[set] >= pool.len();
                let mut img = canvas(&open(&pool[used[set] % pool.len()])?, bg_reuse, &mut rng);
                used[set] += 1;
                let mut photo = open(&mine[i % mine.len()])?;
                if i >= mine.len() {
                    photo = mirror(photo, &mut rng);
                }
                let long = rng.gen_range(0.3..=0.8) * H as f64;
                let f = long / photo.width().max(photo.height()) as f64;
                let (pw, ph) = (
                    ((photo.width() as f64 * f).round() as u32).clamp(8, W),
                    ((photo.height() as f64 * f).round() as u32).clamp(8, H),
                );
                let obj = image::imageops::resize(&photo, pw, ph, FilterType::Triangle);
                let (x0, y0) = (rng.gen_range(0..=W - pw), rng.gen_range(0..=H - ph));
                image::imageops::replace(&mut img, &obj, x0 as i64, y0 as i64);
                let mut jpg = Vec::new();
                JpegEncoder::new_with_quality(&mut jpg, 90).encode_image(&img)?;
                std::fs::write(out.join("JPEGImages").join(format!("{id}.jpg")), jpg)?;
                let xml = annotation(&id, class, [x0 + 1, y0 + 1, x0 + pw, y0 + ph])?;
                std::fs::write(out.join("Annotations").join(format!("{id}.xml")), xml)?;
                sets[set].push(id);
            }
        }
    }
    let main = out.join("ImageSets/Main");
    for (name, ids) in ["train", "val", "test"].iter().zip(&sets) {
        std::fs::write(main.join(format!("{name}.txt")), ids.join("\n") + "\n")?;
    }
    let trainval: Vec<&String> = sets[0].iter().chain(&sets[1]).collect();
    let tv: Vec<&str> = trainval.iter().map(|s| s.as_str()).collect();
    std::fs::write(main.join("trainval.txt"), tv.join("\n") + "\n")?;
    println!(
        "{n} composites of {} classes in {} (train {}, val {}, test {}; seed {seed})",
        CLASSES.len(),
        out.display(),
        sets[0].len(),
        sets[1].len(),
        sets[2].len()
    );
    Ok(())
}
