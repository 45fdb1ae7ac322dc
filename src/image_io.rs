//! Decoding any image file to 8-bit RGB, as Pillow's `Image.open(p).convert("RGB")` would, with
//! EXIF orientation applied and a pixel-count limit against decompression bombs. Formats are
//! recognised by content, not by extension. Every failure names the file and the reason.

use std::io::{BufReader, Cursor};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::error::{Error, Result};

/// Default limit on decoded pixels (width x height): 100 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Options for [`load_rgb`].
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Largest accepted width x height; larger images are refused before decoding.
    /// Default [`DEFAULT_MAX_PIXELS`].
    pub max_pixels: u64,
    /// Apply the EXIF orientation tag (default true).
    pub apply_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_pixels: DEFAULT_MAX_PIXELS,
            apply_orientation: true,
        }
    }
}

fn img_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether a file looks like an image we can decode, judging by its first bytes.
pub fn is_image_file(path: &Path) -> bool {
    let mut head = [0u8; 32];
    let n = match std::fs::File::open(path) {
        Ok(mut f) => std::io::Read::read(&mut f, &mut head).unwrap_or(0),
        Err(_) => return false,
    };
    n > 0 && image::guess_format(&head[..n]).is_ok()
}

/// Decodes `path` to 8-bit RGB with default options.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    load_rgb_with(path, &DecodeOptions::default())
}

/// Decodes `path` to 8-bit RGB: greyscale is expanded, palettes resolved, 16-bit scaled to
/// 8 bits, alpha dropped, CMYK converted, animated files give their first frame, EXIF
/// orientation applied.
pub fn load_rgb_with(path: &Path, opts: &DecodeOptions) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| img_err(path, format!("cannot read: {e}")))?;
    decode_rgb(path, &bytes, opts)
}

/// Decodes an in-memory file; `path` is only used in error messages.
pub fn decode_rgb(path: &Path, bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(img_err(path, "empty file"));
    }
    let reader = ImageReader::new(BufReader::new(Cursor::new(bytes)))
        .with_guessed_format()
        .map_err(|e| img_err(path, format!("cannot read: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(img_err(path, "not an image (unrecognised file signature)"));
    };
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(8).max(1 << 26));
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| img_err(path, format!("cannot decode {format:?}: {e}")))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(img_err(path, format!("image has no pixels ({w}x{h})")));
    }
    if (w as u64) * (h as u64) > opts.max_pixels {
        return Err(img_err(
            path,
            format!(
                "{w}x{h} = {:.1} megapixels exceeds the limit of {:.1} megapixels \
                 (possible decompression bomb; raise --max-pixels to accept it)",
                (w as f64 * h as f64) / 1e6,
                opts.max_pixels as f64 / 1e6
            ),
        ));
    }
    decoder
        .set_limits(limits)
        .map_err(|e| img_err(path, format!("{e}")))?;
    let orientation = if opts.apply_orientation {
        decoder.orientation().ok()
    } else {
        None
    };
    let mut img = DynamicImage::from_decoder(decoder)
        .map_err(|e| img_err(path, format!("cannot decode {format:?}: {e}")))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(to_rgb8(img))
}

/// Converts to 8-bit RGB the way Pillow's `convert("RGB")` does: alpha is dropped (not
/// composited), 16-bit and float channels are scaled to 8 bits, grey is replicated.
fn to_rgb8(img: DynamicImage) -> RgbImage {
    match img {
        DynamicImage::ImageRgb8(i) => i,
        other => other.to_rgb8(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_and_garbage() {
        let p = Path::new("x.jpg");
        let e = decode_rgb(p, b"", &DecodeOptions::default()).unwrap_err();
        assert!(e.to_string().contains("x.jpg: empty file"), "{e}");
        let e = decode_rgb(p, b"hello world, not an image", &DecodeOptions::default()).unwrap_err();
        assert!(e.to_string().contains("not an image"), "{e}");
    }

    #[test]
    fn grey_and_rgba_become_rgb() {
        let mut buf = Vec::new();
        let g = image::GrayImage::from_pixel(3, 2, image::Luma([77]));
        g.write_to(&mut Cursor::new(&mut buf), image::ImageFormat::Png)
            .unwrap();
        let rgb = decode_rgb(Path::new("g.png"), &buf, &DecodeOptions::default()).unwrap();
        assert_eq!(rgb.get_pixel(1, 1).0, [77, 77, 77]);

        let mut buf = Vec::new();
        let a = image::RgbaImage::from_pixel(3, 2, image::Rgba([10, 20, 30, 0]));
        a.write_to(&mut Cursor::new(&mut buf), image::ImageFormat::Png)
            .unwrap();
        let rgb = decode_rgb(Path::new("a.png"), &buf, &DecodeOptions::default()).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [10, 20, 30]);
    }

    #[test]
    fn pixel_limit_refuses_before_decoding() {
        let mut buf = Vec::new();
        image::GrayImage::new(200, 200)
            .write_to(&mut Cursor::new(&mut buf), image::ImageFormat::Png)
            .unwrap();
        let opts = DecodeOptions {
            max_pixels: 10_000,
            ..Default::default()
        };
        let e = decode_rgb(Path::new("big.png"), &buf, &opts).unwrap_err();
        assert!(e.to_string().contains("exceeds the limit"), "{e}");
    }
}
