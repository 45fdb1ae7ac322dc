//! Decoding any image file to 8-bit RGB, as Pillow's `Image.open(p).convert("RGB")` would, with
//! EXIF orientation applied and limits against decompression bombs. Formats are recognised by
//! content (magic bytes), never by extension. Every failure is an [`Error::Image`] that names the
//! file and the reason; no input makes this module panic (a decoder panic is caught and reported
//! as an error).
//!
//! What each kind of file becomes, and where it differs from Pillow (checked against Pillow 13
//! with libjpeg-turbo 3 on the fixtures of `tests/data/images/`, see `make_images.py` there):
//!
//! | input | result | vs Pillow |
//! | --- | --- | --- |
//! | RGB / YCbCr JPEG | RGB | zune-jpeg vs libjpeg-turbo: IDCT and chroma upsampling differ, typically max 3 levels, mean < 0.3 |
//! | greyscale (8-bit) | grey replicated to R = G = B | identical |
//! | CMYK and YCCK (Adobe APP14) JPEG | `R = (255 - C)(255 - K) / 255` on the un-inverted inks | within 1 level: both assume Photoshop's inverted storage for every 4-channel JPEG |
//! | RGBA, grey + alpha, palette with transparency | alpha dropped, colour kept (not composited on a background) | identical |
//! | palette (PNG, GIF) | palette resolved | identical |
//! | 16-bit RGB(A), grey + alpha | high byte (`v >> 8`) | identical |
//! | 16-bit greyscale | high byte (`v >> 8`) | **differs**: Pillow's `I;16 -> RGB` clips to 255 (turning most images white); we scale like the other 16-bit modes |
//! | 32-bit float (HDR, EXR) | clamped to [0, 1], times 255, rounded | Pillow cannot open these |
//! | animated GIF / APNG / WebP | first frame (APNG: the default image) | identical |
//! | EXIF orientation (JPEG, PNG, WebP, TIFF) | applied | like `ImageOps.exif_transpose`; plain `Image.open` does not rotate |
//! | truncated file | error | Pillow raises too (`LOAD_TRUNCATED_IMAGES = False`) |
//!
//! Truncated JPEGs need special care: `image` 0.25 runs zune-jpeg in its lenient mode, which
//! returns a partial image whose missing rows are filled with grey (128) and no error. So before
//! decoding we walk the JPEG's marker segments and entropy-coded data and require the
//! end-of-image marker (EOI) of the main image; a file that ends first is refused as truncated,
//! as Pillow refuses it ("image file is truncated"), even when only the final two bytes are
//! missing. Bytes after the EOI are ignored, as by Pillow. PNG, GIF, WebP, TIFF and BMP decoders
//! already report truncation as an error ("unexpected end of file", "failed to fill whole
//! buffer"); a GIF whose first frame is complete but whose later frames are cut decodes, as in
//! Pillow.

use std::borrow::Cow;
use std::io::{BufReader, Cursor};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};

use crate::error::{Error, Result};

/// Default limit on decoded pixels (width x height): 100 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Default limit on the size of an image file: 1 GiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 30;

/// Options for [`load_rgb_with`] and [`decode_rgb`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Largest accepted width x height, checked from the file header before any pixel is
    /// decoded (against decompression bombs). Default [`DEFAULT_MAX_PIXELS`] (100 MP); must be
    /// at least 1. Pillow's own default warns at 89 MP and refuses at 179 MP.
    pub max_pixels: u64,
    /// Largest accepted file size in bytes, checked before the file is read (the whole file is
    /// read into memory). Default [`DEFAULT_MAX_FILE_BYTES`] (1 GiB); must be at least 1.
    /// Only [`load_rgb_with`] uses it.
    pub max_file_bytes: u64,
    /// Apply the EXIF orientation tag (default true), as `PIL.ImageOps.exif_transpose` does.
    /// With false the stored pixel grid is returned, as plain `Image.open` does.
    pub apply_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_pixels: DEFAULT_MAX_PIXELS,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
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

/// Whether a file looks like an image we can try to decode, judging by its first bytes (the
/// signatures `image::guess_format` knows: JPEG, PNG, GIF, WebP, TIFF, BMP, ICO, PNM, QOI, HDR,
/// EXR, DDS, farbfeld, AVIF). False for unreadable files, directories and empty files. Says
/// nothing about whether the rest of the file is intact.
pub fn is_image_file(path: &Path) -> bool {
    let mut head = [0u8; 32];
    let n = match std::fs::File::open(path) {
        Ok(mut f) => read_up_to(&mut f, &mut head).unwrap_or(0),
        Err(_) => return false,
    };
    n > 0 && image::guess_format(&head[..n]).is_ok()
}

/// Reads until `buf` is full or the end of the file.
fn read_up_to(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An image to describe in memory.
#[derive(Debug, Clone)]
pub enum Image {
    /// An image file, decoded as the store's inputs are ([`crate::image_io::load_rgb_with`]).
    Path(PathBuf),
    /// The bytes of an encoded image file (JPEG, PNG, ...).
    Bytes(Vec<u8>),
    /// Decoded 8-bit RGB pixels.
    Rgb(RgbImage),
}

impl From<PathBuf> for Image {
    fn from(p: PathBuf) -> Self {
        Image::Path(p)
    }
}

impl From<&Path> for Image {
    fn from(p: &Path) -> Self {
        Image::Path(p.to_path_buf())
    }
}

impl From<&str> for Image {
    fn from(p: &str) -> Self {
        Image::Path(PathBuf::from(p))
    }
}

impl From<Vec<u8>> for Image {
    fn from(b: Vec<u8>) -> Self {
        Image::Bytes(b)
    }
}

impl From<RgbImage> for Image {
    fn from(i: RgbImage) -> Self {
        Image::Rgb(i)
    }
}

impl Image {
    /// How errors name the `index`-th image of a list: its path, or its position and kind
    /// (`images[3] (bytes)`).
    pub fn name(&self, index: usize) -> PathBuf {
        match self {
            Image::Path(p) => p.clone(),
            Image::Bytes(_) => PathBuf::from(format!("images[{index}] (bytes)")),
            Image::Rgb(_) => PathBuf::from(format!("images[{index}] (pixels)")),
        }
    }

    /// The image as 8-bit RGB, decoded as [`load_rgb_with`] decodes files; errors are
    /// [`Error::Image`] naming the image as [`Image::name`] does. Pixels given decoded are
    /// checked against [`DecodeOptions::max_pixels`] too (and borrowed, not copied).
    pub fn decode(&self, index: usize, opts: &DecodeOptions) -> Result<Cow<'_, RgbImage>> {
        match self {
            Image::Path(p) => load_rgb_with(p, opts).map(Cow::Owned),
            Image::Bytes(b) => decode_rgb(&self.name(index), b, opts).map(Cow::Owned),
            Image::Rgb(img) => {
                let pixels = u64::from(img.width()) * u64::from(img.height());
                if pixels == 0 {
                    return Err(img_err(
                        &self.name(index),
                        format!("empty image ({}x{})", img.width(), img.height()),
                    ));
                }
                if pixels > opts.max_pixels {
                    return Err(img_err(
                        &self.name(index),
                        format!(
                            "image of {}x{} pixels exceeds the limit of {} pixels",
                            img.width(),
                            img.height(),
                            opts.max_pixels
                        ),
                    ));
                }
                Ok(Cow::Borrowed(img))
            }
        }
    }
}

/// Decodes `path` to 8-bit RGB with default options (see [`load_rgb_with`]).
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    load_rgb_with(path, &DecodeOptions::default())
}

/// Decodes `path` to 8-bit RGB: greyscale is expanded, palettes resolved, 16-bit scaled to
/// 8 bits, alpha dropped, CMYK converted, animated files give their first frame, EXIF
/// orientation applied (see the module docs for the exact rules).
///
/// Errors ([`Error::Image`], naming `path`): the file cannot be opened or read (missing,
/// permission), is a directory or not a regular file, is empty, exceeds
/// [`DecodeOptions::max_file_bytes`] or [`DecodeOptions::max_pixels`], is not an image, is
/// truncated or corrupt, uses an unsupported feature, or the decoder panicked.
pub fn load_rgb_with(path: &Path, opts: &DecodeOptions) -> Result<RgbImage> {
    decode_rgb(path, &read_image_bytes(path, opts)?, opts)
}

/// The bytes of an image file, after the checks [`load_rgb_with`] makes before reading: the
/// path must be a regular file (not a folder) of at most [`DecodeOptions::max_file_bytes`].
pub fn read_image_bytes(path: &Path, opts: &DecodeOptions) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| img_err(path, format!("cannot read: {e}")))?;
    if meta.is_dir() {
        return Err(img_err(path, "is a directory, not an image file"));
    }
    if !meta.is_file() {
        return Err(img_err(path, "not a regular file"));
    }
    if meta.len() > opts.max_file_bytes {
        return Err(img_err(
            path,
            format!(
                "file of {} bytes exceeds the limit of {} bytes",
                meta.len(),
                opts.max_file_bytes
            ),
        ));
    }
    std::fs::read(path).map_err(|e| img_err(path, format!("cannot read: {e}")))
}

/// Loads a dataset item's image: its file, or its member of a tar shard ([`read_member_bytes`]),
/// decoded as [`load_rgb_with`] does.
pub fn load_item(item: &crate::dataset::Item, opts: &DecodeOptions) -> Result<RgbImage> {
    match item.member {
        Some(m) => decode_rgb(
            &item.path,
            &read_member_bytes(&item.path, m.offset, m.size, opts)?,
            opts,
        ),
        None => load_rgb_with(&item.path, opts),
    }
}

/// The bytes of an image stored inside an archive at `path` (a tar member): `size` bytes at
/// `offset`, with the same size limit as [`read_image_bytes`]. Errors name the archive.
pub fn read_member_bytes(
    path: &Path,
    offset: u64,
    size: u64,
    opts: &DecodeOptions,
) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    if size > opts.max_file_bytes {
        return Err(img_err(
            path,
            format!(
                "member of {size} bytes exceeds the limit of {} bytes",
                opts.max_file_bytes
            ),
        ));
    }
    let mut f =
        std::fs::File::open(path).map_err(|e| img_err(path, format!("cannot read: {e}")))?;
    let mut buf = vec![0u8; size as usize];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut buf))
        .map_err(|e| {
            img_err(
                path,
                format!("cannot read the member at byte {offset}: {e}"),
            )
        })?;
    Ok(buf)
}

/// Decodes an in-memory file to 8-bit RGB exactly as [`load_rgb_with`] does; `path` is only used
/// in error messages and [`DecodeOptions::max_file_bytes`] is not checked.
pub fn decode_rgb(path: &Path, bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage> {
    if opts.max_pixels == 0 {
        return Err(Error::param(
            crate::error::Param::MaxPixels,
            "must be at least 1",
        ));
    }
    guarded(path, || decode_unguarded(path, bytes, opts))
}

/// Runs `f`, turning a panic into an [`Error::Image`] "decoder panicked: ..." for `path` (the last
/// line of defence against decoder bugs; the panic hook still prints the panic to stderr).
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(img_err(
            path,
            format!("decoder panicked: {}", panic_message(payload.as_ref())),
        )),
    }
}

/// The text of a caught panic, when it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// The upper-case name of a format, for messages ("JPEG", "PNG").
fn format_name(format: ImageFormat) -> String {
    format!("{format:?}").to_uppercase()
}

/// Turns a decoder error into a reason a user can act on.
fn decode_reason(format: ImageFormat, e: &ImageError) -> String {
    let name = format_name(format);
    match e {
        ImageError::Limits(l) => {
            format!("{name} exceeds the decoder's memory limit ({l}); possible decompression bomb")
        }
        ImageError::Unsupported(u) => format!("unsupported {name} feature: {u}"),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("truncated or corrupt {name}: {io}")
        }
        _ => format!("cannot decode {name}: {e}"),
    }
}

fn decode_unguarded(path: &Path, bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(img_err(path, "empty file (0 bytes)"));
    }
    let reader = ImageReader::new(BufReader::new(Cursor::new(bytes)))
        .with_guessed_format()
        .map_err(|e| img_err(path, format!("cannot read: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(img_err(path, "not an image (unrecognised file signature)"));
    };
    if format == ImageFormat::Jpeg {
        jpeg_complete(bytes).map_err(|reason| img_err(path, reason))?;
    }
    // The reader's default limits (512 MiB of allocations during header parsing) stay on until
    // the pixel count has been checked; then the allocation limit is scaled to `max_pixels`.
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| img_err(path, decode_reason(format, &e)))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(img_err(path, format!("image has no pixels ({w}x{h})")));
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels > opts.max_pixels {
        return Err(img_err(
            path,
            format!(
                "{w}x{h} = {:.1} megapixels exceeds the limit of {:.1} megapixels \
                 (possible decompression bomb; raise the pixel limit to accept it)",
                pixels as f64 / 1e6,
                opts.max_pixels as f64 / 1e6
            ),
        ));
    }
    let mut limits = image::Limits::default();
    // 16 bytes per pixel covers RGBA f32, the widest decoded layout, plus working buffers.
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(16).max(1 << 26));
    decoder
        .set_limits(limits)
        .map_err(|e| img_err(path, decode_reason(format, &e)))?;
    let orientation = if opts.apply_orientation {
        // A malformed EXIF block is ignored, as Pillow's exif_transpose ignores it.
        decoder.orientation().ok()
    } else {
        None
    };
    let mut img = DynamicImage::from_decoder(decoder)
        .map_err(|e| img_err(path, decode_reason(format, &e)))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(to_rgb8(img))
}

/// Converts to 8-bit RGB the way Pillow's `convert("RGB")` does: alpha is dropped (not
/// composited), grey is replicated, 16-bit channels keep their high byte (Pillow's `;16B`
/// raw modes; for 16-bit grey Pillow clips instead, see the module docs), float channels are
/// clamped to [0, 1] and scaled.
fn to_rgb8(img: DynamicImage) -> RgbImage {
    fn high_byte(v: u16) -> u8 {
        (v >> 8) as u8
    }
    let (w, h) = (img.width(), img.height());
    match img {
        DynamicImage::ImageRgb8(i) => i,
        DynamicImage::ImageLuma16(i) => RgbImage::from_fn(w, h, |x, y| {
            let v = high_byte(i.get_pixel(x, y).0[0]);
            image::Rgb([v, v, v])
        }),
        DynamicImage::ImageLumaA16(i) => RgbImage::from_fn(w, h, |x, y| {
            let v = high_byte(i.get_pixel(x, y).0[0]);
            image::Rgb([v, v, v])
        }),
        DynamicImage::ImageRgb16(i) => RgbImage::from_fn(w, h, |x, y| {
            let p = i.get_pixel(x, y).0;
            image::Rgb([high_byte(p[0]), high_byte(p[1]), high_byte(p[2])])
        }),
        DynamicImage::ImageRgba16(i) => RgbImage::from_fn(w, h, |x, y| {
            let p = i.get_pixel(x, y).0;
            image::Rgb([high_byte(p[0]), high_byte(p[1]), high_byte(p[2])])
        }),
        other => other.to_rgb8(),
    }
}

/// Checks that a JPEG's main image runs to its end-of-image marker: walks the marker segments
/// from SOI (skipping each by its length, so thumbnails inside APP1 are never mistaken for the
/// end) and, after each start-of-scan, the entropy-coded data up to the next marker. Stray bytes
/// between segments are tolerated as libjpeg tolerates them. Returns the reason on failure.
fn jpeg_complete(b: &[u8]) -> std::result::Result<(), String> {
    const TRUNCATED: &str =
        "truncated JPEG: the file ends before the end-of-image marker (partial image refused)";
    if b.len() < 2 || b[0] != 0xFF || b[1] != 0xD8 {
        return Err("not a JPEG (no start-of-image marker)".to_string());
    }
    let mut pos = 2;
    loop {
        // Find the next marker: skip stray bytes, then any 0xFF fill bytes.
        while pos < b.len() && b[pos] != 0xFF {
            pos += 1;
        }
        while pos < b.len() && b[pos] == 0xFF {
            pos += 1;
        }
        if pos >= b.len() {
            return Err(TRUNCATED.to_string());
        }
        let marker = b[pos];
        pos += 1;
        match marker {
            0xD9 => return Ok(()),
            // Markers without a length: TEM, RST0..7, and a stuffed zero outside a scan.
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            0xD8 => return Err("corrupt JPEG: a second start-of-image marker".to_string()),
            _ => {}
        }
        if pos + 2 > b.len() {
            return Err(TRUNCATED.to_string());
        }
        let len = usize::from(u16::from_be_bytes([b[pos], b[pos + 1]]));
        if len < 2 {
            return Err(format!(
                "corrupt JPEG: marker 0xFF{marker:02X} has an invalid length {len}"
            ));
        }
        if pos + len > b.len() {
            return Err(TRUNCATED.to_string());
        }
        pos += len;
        if marker == 0xDA {
            // Entropy-coded data: ends at a 0xFF that is not a stuffed zero nor a restart marker.
            loop {
                match b[pos..].iter().position(|&v| v == 0xFF) {
                    None => return Err(TRUNCATED.to_string()),
                    Some(k) => pos += k,
                }
                match b.get(pos + 1) {
                    None => return Err(TRUNCATED.to_string()),
                    Some(0x00) | Some(0xD0..=0xD7) => pos += 2,
                    Some(0xFF) => pos += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut buf = Vec::new();
        img.write_to(&mut Cursor::new(&mut buf), format).unwrap();
        buf
    }

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
        let g = image::GrayImage::from_pixel(3, 2, image::Luma([77]));
        let buf = encode(g.into(), ImageFormat::Png);
        let rgb = decode_rgb(Path::new("g.png"), &buf, &DecodeOptions::default()).unwrap();
        assert_eq!(rgb.get_pixel(1, 1).0, [77, 77, 77]);

        let a = image::RgbaImage::from_pixel(3, 2, image::Rgba([10, 20, 30, 0]));
        let buf = encode(a.into(), ImageFormat::Png);
        let rgb = decode_rgb(Path::new("a.png"), &buf, &DecodeOptions::default()).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [10, 20, 30]);
    }

    #[test]
    fn sixteen_bit_keeps_the_high_byte() {
        let vals = [0u16, 255, 256, 32767, 32768, 65279, 65280, 65535];
        let img = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(8, 1, |x, _| {
            let v = vals[x as usize];
            image::Rgb([v, 65535 - v, v / 2])
        });
        let rgb = to_rgb8(DynamicImage::ImageRgb16(img));
        for (x, &v) in vals.iter().enumerate() {
            let want = [
                (v >> 8) as u8,
                ((65535 - v) >> 8) as u8,
                ((v / 2) >> 8) as u8,
            ];
            assert_eq!(rgb.get_pixel(x as u32, 0).0, want, "value {v}");
        }
        let grey = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(8, 1, |x, _| {
            image::Luma([vals[x as usize]])
        });
        let rgb = to_rgb8(DynamicImage::ImageLuma16(grey));
        for (x, &v) in vals.iter().enumerate() {
            let b = (v >> 8) as u8;
            assert_eq!(rgb.get_pixel(x as u32, 0).0, [b, b, b], "value {v}");
        }
    }

    #[test]
    fn pixel_limit_refuses_before_decoding() {
        let buf = encode(image::GrayImage::new(200, 200).into(), ImageFormat::Png);
        let opts = DecodeOptions {
            max_pixels: 10_000,
            ..Default::default()
        };
        let e = decode_rgb(Path::new("big.png"), &buf, &opts).unwrap_err();
        assert!(e.to_string().contains("exceeds the limit"), "{e}");
        let opts = DecodeOptions {
            max_pixels: 40_000,
            ..Default::default()
        };
        assert!(decode_rgb(Path::new("big.png"), &buf, &opts).is_ok());
        let opts = DecodeOptions {
            max_pixels: 0,
            ..Default::default()
        };
        assert!(matches!(
            decode_rgb(Path::new("big.png"), &buf, &opts),
            Err(Error::Param { .. })
        ));
    }

    #[test]
    fn jpeg_walker_accepts_whole_files_and_refuses_every_cut() {
        let img = image::RgbImage::from_fn(37, 29, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 9) as u8, ((x * y) % 251) as u8])
        });
        let buf = encode(img.into(), ImageFormat::Jpeg);
        assert_eq!(jpeg_complete(&buf), Ok(()));
        let mut trailing = buf.clone();
        trailing.extend_from_slice(b"\x00\x00garbage after the end");
        assert_eq!(jpeg_complete(&trailing), Ok(()));
        for cut in 2..buf.len() {
            let r = jpeg_complete(&buf[..cut]);
            assert!(r.is_err(), "cut at {cut} of {} accepted", buf.len());
        }
        let e = decode_rgb(
            Path::new("t.jpg"),
            &buf[..buf.len() - 2],
            &Default::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("t.jpg: truncated JPEG"), "{e}");
    }

    #[test]
    fn decoder_panics_become_errors() {
        // No known input makes a decoder panic, so the guard decode_rgb uses is tested directly.
        let p = Path::new("bad.gif");
        let e = guarded(p, || -> Result<()> { panic!("boom") }).unwrap_err();
        assert_eq!(e.to_string(), "bad.gif: decoder panicked: boom");
        let e = guarded(p, || -> Result<()> { panic!("n = {}", 3) }).unwrap_err();
        assert_eq!(e.to_string(), "bad.gif: decoder panicked: n = 3");
        assert_eq!(guarded(p, || Ok(7)).unwrap(), 7);
    }
}
