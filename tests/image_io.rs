//! The decoder against Pillow: fixtures made by `tests/data/images/make_images.py` (each with
//! Pillow's decoding beside it as `<name>.pillow.png`), Caltech-101 images against the Pillow
//! summary `tests/data/caltech101_pillow.csv` (`tests/data/caltech101_pillow.py`), and bad inputs
//! (truncated, empty, not an image, bombs, directories, odd names) that must give clear errors.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageFormat, RgbImage};
use vggfeat::image_io::{DecodeOptions, decode_rgb, is_image_file, load_rgb, load_rgb_with};

use crate::util;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/images")
        .join(name)
}

fn pillow(name: &str) -> RgbImage {
    // The references are plain 8-bit RGB PNGs, so any PNG reader gives the same pixels.
    image::open(fixture(&format!("{name}.pillow.png")))
        .unwrap()
        .to_rgb8()
}

/// (max |a - b|, mean |a - b|) over all channels.
fn diff(a: &RgbImage, b: &RgbImage) -> (u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut max = 0u8;
    let mut sum = 0u64;
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        sum += u64::from(d);
    }
    (max, sum as f64 / a.as_raw().len() as f64)
}

fn err_of(path: &Path) -> String {
    match load_rgb(path) {
        Ok(img) => panic!("{} decoded to {:?}", path.display(), img.dimensions()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fixtures_match_pillow() {
    // (file, max abs difference, max mean abs difference). Lossless formats must be exact;
    // JPEGs differ by zune-jpeg's vs libjpeg-turbo's IDCT and chroma upsampling.
    let cases: &[(&str, u8, f64)] = &[
        ("rgb.jpg", 4, 0.5),
        ("rgb444.jpg", 4, 0.5),
        ("progressive.jpg", 4, 0.5),
        ("grey.jpg", 1, 0.05),
        ("cmyk.jpg", 1, 0.05),
        ("ycck.jpg", 1, 0.05),
        ("exif3.jpg", 4, 0.5),
        ("exif6.jpg", 4, 0.5),
        ("exif8.jpg", 4, 0.5),
        ("exif6.png", 0, 0.0),
        ("rgb16.png", 0, 0.0),
        ("rgba.png", 0, 0.0),
        ("rgba_alpha.png", 0, 0.0),
        ("la.png", 0, 0.0),
        ("palette.png", 0, 0.0),
        ("palette_trns.png", 0, 0.0),
        ("trns.gif", 0, 0.0),
        ("anim.gif", 0, 0.0),
        ("anim.png", 0, 0.0),
        ("anim.webp", 0, 0.0),
        ("lossless.webp", 0, 0.0),
        ("rgb.bmp", 0, 0.0),
        ("rgb.tif", 0, 0.0),
    ];
    for &(name, max_tol, mean_tol) in cases {
        let ours = load_rgb(&fixture(name)).unwrap_or_else(|e| panic!("{e}"));
        let reference = pillow(name);
        assert_eq!(
            ours.dimensions(),
            reference.dimensions(),
            "{name}: dimensions"
        );
        let (max, mean) = diff(&ours, &reference);
        assert!(
            max <= max_tol && mean <= mean_tol,
            "{name}: max diff {max} (allowed {max_tol}), mean {mean:.3} (allowed {mean_tol})"
        );
    }
}

/// The corner blocks of the fixture pattern (make_images.py): top-left red, top-right green,
/// bottom-left blue, bottom-right white, on a 40x24 landscape image.
const RED: [u8; 3] = [220, 30, 30];
const GREEN: [u8; 3] = [30, 200, 40];
const BLUE: [u8; 3] = [30, 40, 220];
const WHITE: [u8; 3] = [250, 250, 250];

fn near(p: [u8; 3], want: [u8; 3], tol: u8) -> bool {
    p.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= tol)
}

fn corners(img: &RgbImage) -> [[u8; 3]; 4] {
    let (w, h) = img.dimensions();
    [
        img.get_pixel(2, 2).0,
        img.get_pixel(w - 3, 2).0,
        img.get_pixel(2, h - 3).0,
        img.get_pixel(w - 3, h - 3).0,
    ]
}

#[test]
fn exif_orientation_is_applied() {
    // (file, dimensions after rotation, expected corners TL, TR, BL, BR)
    let cases = [
        ("rgb.jpg", (40, 24), [RED, GREEN, BLUE, WHITE]),
        ("exif3.jpg", (40, 24), [WHITE, BLUE, GREEN, RED]),
        ("exif6.jpg", (24, 40), [BLUE, RED, WHITE, GREEN]),
        ("exif8.jpg", (24, 40), [GREEN, WHITE, RED, BLUE]),
        ("exif6.png", (24, 40), [BLUE, RED, WHITE, GREEN]),
    ];
    for (name, dims, want) in cases {
        let img = load_rgb(&fixture(name)).unwrap();
        assert_eq!(img.dimensions(), dims, "{name}");
        for (got, want) in corners(&img).into_iter().zip(want) {
            assert!(
                near(got, want, 12),
                "{name}: corner {got:?}, expected {want:?}"
            );
        }
        // Without orientation the stored grid comes back unchanged.
        let opts = DecodeOptions {
            apply_orientation: false,
            ..Default::default()
        };
        let raw = load_rgb_with(&fixture(name), &opts).unwrap();
        assert_eq!(raw.dimensions(), (40, 24), "{name} unrotated");
        assert!(near(raw.get_pixel(2, 2).0, RED, 12), "{name} unrotated");
    }
}

#[test]
fn cmyk_and_ycck_jpegs_give_correct_colours() {
    // cmyk.jpg stores the pattern in Adobe-inverted CMYK: its corners must come back as the
    // original colours, not inverted or shifted.
    let img = load_rgb(&fixture("cmyk.jpg")).unwrap();
    for (got, want) in corners(&img).into_iter().zip([RED, GREEN, BLUE, WHITE]) {
        assert!(near(got, want, 3), "corner {got:?}, expected {want:?}");
    }
    // ycck.jpg is the same file flagged YCCK, so the first three channels go through
    // YCbCr->RGB before the CMYK step: a different picture, but the same as Pillow's.
    let ycck = load_rgb(&fixture("ycck.jpg")).unwrap();
    assert!(diff(&ycck, &img).0 > 50, "YCCK flag ignored");
    assert!(diff(&ycck, &pillow("ycck.jpg")).0 <= 1);
}

#[test]
fn grey16_is_scaled_not_clipped() {
    // make_images.py writes v = (1621 x + 977 y) mod 65536; we keep the high byte. Pillow's
    // I;16 -> RGB clips at 255 instead (a documented difference), so its reference is mostly
    // white and must not match.
    let img = load_rgb(&fixture("grey16.png")).unwrap();
    assert_eq!(img.dimensions(), (40, 24));
    for (x, y, p) in img.enumerate_pixels() {
        let v = (((x * 1621 + y * 977) % 65536) >> 8) as u8;
        assert_eq!(p.0, [v, v, v], "pixel ({x}, {y})");
    }
    let clipped = pillow("grey16.png");
    let white = clipped.pixels().filter(|p| p.0 == [255; 3]).count();
    assert!(white > 900, "Pillow's reference is expected to be clipped");
}

#[test]
fn animated_files_give_their_first_frame() {
    // Frame 0 is the pattern, frames 1 and 2 are solid blue and green.
    for name in ["anim.gif", "anim.png", "anim.webp"] {
        let img = load_rgb(&fixture(name)).unwrap();
        assert_eq!(corners(&img), [RED, GREEN, BLUE, WHITE], "{name}");
    }
}

#[test]
fn truncated_files_are_refused() {
    for name in ["rgb.jpg", "progressive.jpg", "cmyk.jpg", "grey.jpg"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for cut in [
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len() * 9 / 10,
            bytes.len() - 2,
            bytes.len() - 1,
        ] {
            let e = decode_rgb(Path::new(name), &bytes[..cut], &DecodeOptions::default())
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("{name}: ")) && e.contains("truncated"),
                "{name} cut at {cut}: {e}"
            );
        }
        // Bytes after the end-of-image marker are ignored, as by Pillow.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0u8; 100]);
        assert!(decode_rgb(Path::new(name), &padded, &DecodeOptions::default()).is_ok());
    }
    // PNG, GIF, WebP, TIFF, BMP: a noisy 120x80 image (so the pixel data is most of the file)
    // cut at 50% and 95%.
    let mut state = 12345u32;
    let img = RgbImage::from_fn(120, 80, |_, _| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        image::Rgb([(state >> 24) as u8, (state >> 16) as u8, (state >> 8) as u8])
    });
    for format in [
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::WebP,
        ImageFormat::Tiff,
        ImageFormat::Bmp,
    ] {
        let mut buf = Vec::new();
        let dynamic = if format == ImageFormat::Gif {
            image::DynamicImage::ImageRgba8(image::DynamicImage::ImageRgb8(img.clone()).to_rgba8())
        } else {
            image::DynamicImage::ImageRgb8(img.clone())
        };
        dynamic
            .write_to(&mut Cursor::new(&mut buf), format)
            .unwrap();
        assert!(decode_rgb(Path::new("whole"), &buf, &DecodeOptions::default()).is_ok());
        for cut in [buf.len() / 2, buf.len() * 95 / 100] {
            let r = decode_rgb(Path::new("cut.img"), &buf[..cut], &DecodeOptions::default());
            let e = r
                .err()
                .unwrap_or_else(|| panic!("{format:?} cut at {cut} decoded"));
            assert!(e.to_string().starts_with("cut.img: "), "{e}");
        }
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend(crc32(&body).to_be_bytes());
}

#[test]
fn huge_declared_dimensions_are_refused_from_the_header() {
    // A 200-byte PNG claiming 100000 x 100000 RGB pixels (30 GB decoded).
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    // An empty zlib stream: the decoder would only find out when reading pixels.
    png_chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0, 0, 0, 1],
    );
    png_chunk(&mut png, b"IEND", &[]);

    // A JPEG whose SOF0 claims 65000 x 65000 (the real scan is 40 x 24).
    let mut jpeg = std::fs::read(fixture("rgb.jpg")).unwrap();
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]);

    // A GIF whose logical screen claims 65535 x 65535.
    let mut gif = std::fs::read(fixture("anim.gif")).unwrap();
    gif[6..10].copy_from_slice(&[0xFF; 4]);

    for (name, bytes, megapixels) in [
        ("bomb.png", &png, "10000000000"),
        ("bomb.jpg", &jpeg, "4225000000"),
        ("bomb.gif", &gif, "4294836225"),
    ] {
        let e = decode_rgb(Path::new(name), bytes, &DecodeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{name}: ")) && e.contains("exceeds the limit of 100.0"),
            "{e}"
        );
        let mp = megapixels.parse::<f64>().unwrap() / 1e6;
        assert!(e.contains(&format!("{mp:.1} megapixels")), "{e}");
    }
    // The limit is configurable: 960 pixels pass at 1000 and fail at 900.
    let bytes = std::fs::read(fixture("rgb.jpg")).unwrap();
    let with = |max_pixels| DecodeOptions {
        max_pixels,
        ..Default::default()
    };
    assert!(decode_rgb(Path::new("a.jpg"), &bytes, &with(1000)).is_ok());
    assert!(decode_rgb(Path::new("a.jpg"), &bytes, &with(900)).is_err());
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    std::fs::write(d.join("empty.jpg"), b"").unwrap();
    let e = err_of(&d.join("empty.jpg"));
    assert!(e.ends_with("empty.jpg: empty file (0 bytes)"), "{e}");

    std::fs::write(d.join("notes.jpg"), b"just some text, saved as .jpg\n").unwrap();
    let e = err_of(&d.join("notes.jpg"));
    assert!(
        e.ends_with("notes.jpg: not an image (unrecognised file signature)"),
        "{e}"
    );
    assert!(!is_image_file(&d.join("notes.jpg")));

    // JPEG signature followed by garbage.
    std::fs::write(d.join("garbage.jpg"), b"\xFF\xD8\xFF\xE0 not really a jpeg").unwrap();
    let e = err_of(&d.join("garbage.jpg"));
    assert!(e.contains("garbage.jpg: ") && e.contains("JPEG"), "{e}");

    std::fs::create_dir(d.join("folder.jpg")).unwrap();
    let e = err_of(&d.join("folder.jpg"));
    assert!(
        e.ends_with("folder.jpg: is a directory, not an image file"),
        "{e}"
    );
    assert!(!is_image_file(&d.join("folder.jpg")));

    let e = err_of(&d.join("missing.jpg"));
    assert!(e.contains("missing.jpg: cannot read: No such file"), "{e}");

    let big = d.join("big.jpg");
    std::fs::copy(fixture("rgb.jpg"), &big).unwrap();
    let opts = DecodeOptions {
        max_file_bytes: 100,
        ..Default::default()
    };
    let e = load_rgb_with(&big, &opts).unwrap_err().to_string();
    let size = std::fs::metadata(&big).unwrap().len();
    assert!(
        e.contains(&format!(
            "big.jpg: file of {size} bytes exceeds the limit of 100 bytes"
        )),
        "{e}"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = d.join("locked.jpg");
        std::fs::copy(fixture("rgb.jpg"), &locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::read(&locked).is_err() {
            let e = err_of(&locked);
            assert!(
                e.contains("locked.jpg: cannot read: Permission denied"),
                "{e}"
            );
        } else {
            // Running as root (CI does): permissions are not enforced for root, so the check
            // runs the binary as `nobody` (setpriv, util-linux), for whom they are.
            let open = std::fs::Permissions::from_mode(0o755);
            let top = tempfile::tempdir().unwrap();
            std::fs::set_permissions(top.path(), open.clone()).unwrap();
            let data = top.path().join("data");
            std::fs::create_dir_all(data.join("c")).unwrap();
            std::fs::set_permissions(&data, open.clone()).unwrap();
            std::fs::set_permissions(data.join("c"), open).unwrap();
            std::fs::copy(&locked, data.join("c/locked.jpg")).unwrap();
            std::fs::set_permissions(
                data.join("c/locked.jpg"),
                std::fs::Permissions::from_mode(0o000),
            )
            .unwrap();
            let out = top.path().join("out");
            std::fs::create_dir(&out).unwrap();
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
            let run = std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(util::bin())
                .args(["extract", "--quiet", "--scales", "224", "-w"])
                .arg(util::tiny().join("weights.safetensors"))
                .arg("-o")
                .arg(out.join("store"))
                .arg(&data)
                .output()
                .expect("setpriv (util-linux) runs the check as nobody");
            let err = String::from_utf8_lossy(&run.stderr);
            assert_eq!(run.status.code(), Some(1), "{err}");
            assert!(
                err.lines()
                    .any(|l| l.contains("c/locked.jpg")
                        && l.contains("cannot read: Permission denied")),
                "{err}"
            );
        }
    }
}

#[test]
fn odd_file_names_decode() {
    let dir = tempfile::tempdir().unwrap();
    let want = load_rgb(&fixture("rgb.jpg")).unwrap();
    for name in [
        "with space.jpg",
        "ünïcødé 画像.jpg",
        "no_extension",
        "jpeg content.png",
        "UPPER.JPG",
        "comma,semi;colon.jpeg",
    ] {
        let p = dir.path().join(name);
        std::fs::copy(fixture("rgb.jpg"), &p).unwrap();
        assert!(is_image_file(&p), "{name}");
        assert_eq!(load_rgb(&p).unwrap(), want, "{name}");
    }
}

/// Caltech-101: every image of the subset decodes to Pillow's size, and the mean of each channel
/// is within 0.5 of Pillow's (the decoders differ by a few levels on some pixels).
#[test]
fn caltech101_subset_matches_pillow() {
    let root = util::shared().join("datasets/caltech101/101_ObjectCategories");
    let csv = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/caltech101_pillow.csv"),
    )
    .unwrap();
    let mut rows = 0;
    let mut grey = 0;
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let img = load_rgb(&root.join(f[0])).unwrap_or_else(|e| panic!("{e}"));
        let dims: (u32, u32) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        assert_eq!(img.dimensions(), dims, "{}", f[0]);
        let n = f64::from(dims.0 * dims.1);
        for c in 0..3 {
            let mean = img.pixels().map(|p| f64::from(p.0[c])).sum::<f64>() / n;
            let want: f64 = f[4 + c].parse().unwrap();
            assert!(
                (mean - want).abs() < 0.5,
                "{} channel {c}: mean {mean:.3}, Pillow {want:.3}",
                f[0]
            );
        }
        if f[3] == "L" {
            grey += 1;
            assert!(img.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
        }
        rows += 1;
    }
    assert_eq!(rows, 205);
    assert!(grey > 0, "the subset should include greyscale images");
}

/// Every Caltech-101 file decodes (Pillow decodes all 9,145). Slow: run with `--ignored`.
#[test]
#[ignore]
fn caltech101_all_files_decode() {
    let root = util::shared().join("datasets/caltech101/101_ObjectCategories");
    let mut n = 0;
    for entry in walkdir::WalkDir::new(&root) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            load_rgb(entry.path()).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert_eq!(n, 9145);
}
