//! Thumbnails for the HTML report: an image file decoded as the extractor decodes it
//! ([`crate::image_io`]: EXIF orientation, grey, CMYK, size limits), shrunk so that its longer
//! side is at most `max_side` pixels (aspect kept, never enlarged), encoded as JPEG (quality 80)
//! and returned as a `data:image/jpeg;base64,...` URI, so that the page needs no other file.

use std::io::Cursor;
use std::path::Path;

use base64::Engine;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;

use crate::error::{Error, Result};
use crate::image_io::{DecodeOptions, load_rgb_with};

/// The image at `path` as a JPEG `data:` URI (`data:image/jpeg;base64,...`, quality 80) whose
/// longer side is at most `max_side` pixels (aspect kept, never enlarged), decoded as the
/// extractor decodes images. Errors (naming the file) as [`load_rgb_with`] does when the image
/// cannot be read or decoded.
pub fn thumbnail_data_uri(path: &Path, max_side: u32) -> Result<String> {
    image_data_uri(load_rgb_with(path, &DecodeOptions::default())?, max_side)
}

/// An image already decoded as a JPEG `data:` URI, as [`thumbnail_data_uri`] makes it.
pub fn image_data_uri(img: image::RgbImage, max_side: u32) -> Result<String> {
    let (w, h) = img.dimensions();
    let scale = (max_side.max(1) as f64 / w.max(h).max(1) as f64).min(1.0);
    let size = |v: u32| ((v as f64 * scale).round() as u32).max(1);
    let small = if scale < 1.0 {
        image::imageops::resize(&img, size(w), size(h), FilterType::Triangle)
    } else {
        img
    };
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(Cursor::new(&mut jpeg), 80)
        .encode_image(&small)
        .map_err(|e| Error::Internal(format!("JPEG encoding of a thumbnail failed: {e}")))?;
    Ok(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&jpeg)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_keeps_aspect_and_encodes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wide.png");
        image::RgbImage::from_pixel(400, 100, image::Rgb([200, 10, 10]))
            .save(&p)
            .unwrap();
        let uri = thumbnail_data_uri(&p, 128).unwrap();
        let b64 = uri.strip_prefix("data:image/jpeg;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (128, 32));

        // A missing file is an error naming it.
        let err = thumbnail_data_uri(&dir.path().join("gone.jpg"), 128).unwrap_err();
        assert!(err.to_string().contains("gone.jpg"), "{err}");
    }
}
