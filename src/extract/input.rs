//! What an extraction reads, and how one input becomes the images the network sees: an
//! [`Image`]
//! given in memory (a path, encoded bytes, or decoded pixels) or a dataset item (a file, or a
//! member of a tar shard) is read, decoded ([`crate::image_io`]) and rescaled to every scale
//! ([`crate::preprocess`]). A dataset item also records the file it came from (size, times and
//! content hash) for resuming.

use image::RgbImage;
use sha2::{Digest, Sha256};

use crate::dataset::Item;
use crate::error::Error;
use crate::image_io::{DecodeOptions, Image, decode_rgb, read_image_bytes, read_member_bytes};
use crate::preprocess::{check_scaled_size, resize_smallest_side};
use crate::store::Source;

/// One input decoded and rescaled to every scale, or why it cannot be used.
pub(super) type Scaled = std::result::Result<Vec<RgbImage>, String>;

/// The reason in an error about an image, without the path (the caller names the input).
fn reason(e: Error) -> String {
    match e {
        Error::Image { reason, .. } => reason,
        e => e.to_string(),
    }
}

/// `img` rescaled to smallest side `q` for each of `scales`, refusing a result larger than the
/// pixel limit.
fn rescale(img: &RgbImage, scales: &[u32], decode: &DecodeOptions) -> Scaled {
    let mut out = Vec::with_capacity(scales.len());
    for &q in scales {
        check_scaled_size(img.width(), img.height(), q, decode.max_pixels)?;
        out.push(resize_smallest_side(img, q));
    }
    Ok(out)
}

/// An in-memory image, decoded and rescaled.
pub(super) fn prepare_image(
    image: &Image,
    index: usize,
    scales: &[u32],
    decode: &DecodeOptions,
) -> Scaled {
    match image.decode(index, decode) {
        Ok(img) => rescale(&img, scales, decode),
        Err(e) => Err(reason(e)),
    }
}

/// A dataset item read, hashed, decoded and rescaled; and the file it came from (size, times
/// and the SHA-256 of the bytes read; `None` when the file could not be examined).
pub(super) fn prepare_item(
    item: &Item,
    scales: &[u32],
    decode: &DecodeOptions,
) -> (Scaled, Option<Source>) {
    let meta = match std::fs::metadata(&item.path) {
        Ok(m) => m,
        Err(e) => return (Err(format!("cannot read: {e}")), None),
    };
    let mut source = Source::of_metadata(&meta);
    let bytes = match item.member {
        Some(m) => read_member_bytes(&item.path, m.offset, m.size, decode),
        None => read_image_bytes(&item.path, decode),
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return (Err(reason(e)), Some(source)),
    };
    source.sha256 = Some(Sha256::digest(&bytes).into());
    let scaled = decode_rgb(&item.path, &bytes, decode)
        .map_err(reason)
        .and_then(|img| rescale(&img, scales, decode));
    (scaled, Some(source))
}
