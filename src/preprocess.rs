//! Image preprocessing: isotropic rescaling to a smallest side Q with Pillow's antialiased
//! bilinear filter (bit-exact with `PIL.Image.resize(..., BILINEAR)`, including its 8-bit
//! fixed-point arithmetic and horizontal-then-vertical pass order), horizontal flips, and the two
//! input conventions: torchvision (RGB, [0, 1], ImageNet mean/std) and Caffe (BGR, 0..255, minus
//! the mean pixel). Output is a planar CHW float32 buffer.

use image::RgbImage;

/// How pixels are turned into network inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// torchvision: RGB, scaled to [0, 1], minus mean (0.485, 0.456, 0.406), divided by std
    /// (0.229, 0.224, 0.225).
    Torchvision,
    /// Caffe (the original VGG release): BGR, 0..255, minus the mean pixel
    /// (B 103.939, G 116.779, R 123.68).
    Caffe,
}

crate::util::choice::choice!(Normalization, "preprocessing", crate::error::Param::Preprocess, [
    Normalization::Torchvision => "torchvision" | "pytorch" | "imagenet": "RGB, [0, 1], ImageNet mean and std.",
    Normalization::Caffe => "caffe" | "bgr": "BGR, 0..255, minus the mean pixel (the original Caffe release).",
]);

/// Which input convention a run uses: the checkpoint's own, or one named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preprocess {
    /// The checkpoint's metadata ([`crate::model::expected_normalization`]), else torchvision.
    #[default]
    Auto,
    /// [`Normalization::Torchvision`].
    Torchvision,
    /// [`Normalization::Caffe`].
    Caffe,
}

crate::util::choice::choice!(Preprocess, "preprocessing", crate::error::Param::Preprocess, [
    Preprocess::Auto => "auto": "The checkpoint's metadata, else torchvision.",
    Preprocess::Torchvision => "torchvision" | "pytorch" | "imagenet": "RGB, [0, 1], ImageNet mean and std.",
    Preprocess::Caffe => "caffe" | "bgr": "BGR, 0..255, minus the mean pixel (the original Caffe release).",
]);

impl Preprocess {
    /// The convention named, or `None` for [`Preprocess::Auto`].
    pub fn named(self) -> Option<Normalization> {
        match self {
            Preprocess::Auto => None,
            Preprocess::Torchvision => Some(Normalization::Torchvision),
            Preprocess::Caffe => Some(Normalization::Caffe),
        }
    }
}

impl From<Option<Normalization>> for Preprocess {
    fn from(n: Option<Normalization>) -> Self {
        match n {
            None => Preprocess::Auto,
            Some(Normalization::Torchvision) => Preprocess::Torchvision,
            Some(Normalization::Caffe) => Preprocess::Caffe,
        }
    }
}

impl Normalization {
    /// Reads the convention from a checkpoint's `preprocess` metadata value, whose first word
    /// names it (`"caffe: BGR order, ..."`).
    pub fn from_metadata(value: &str) -> Option<Self> {
        let word: String = value
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        word.parse().ok()
    }

    /// Converts an RGB image to a planar CHW float32 buffer in this convention.
    pub fn to_chw(self, img: &RgbImage, flip: bool) -> Vec<f32> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let plane = w * h;
        let mut out = vec![0f32; 3 * plane];
        let raw = img.as_raw();
        // Per channel (in RGB order): out = (v * a - m) / s, computed in f32 as the references do.
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x };
                let p = &raw[(y * w + sx) * 3..(y * w + sx) * 3 + 3];
                let o = y * w + x;
                match self {
                    Normalization::Torchvision => {
                        const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
                        const STD: [f32; 3] = [0.229, 0.224, 0.225];
                        for c in 0..3 {
                            out[c * plane + o] = (p[c] as f32 / 255.0 - MEAN[c]) / STD[c];
                        }
                    }
                    Normalization::Caffe => {
                        const MEAN_BGR: [f32; 3] = [103.939, 116.779, 123.68];
                        for c in 0..3 {
                            out[c * plane + o] = p[2 - c] as f32 - MEAN_BGR[c];
                        }
                    }
                }
            }
        }
        out
    }
}

impl Normalization {
    /// The offsets to add to the planes of [`Normalization::to_chw`]'s output (in its plane
    /// order) to shift the image's colours by `delta_rgb`, given in RGB order on the [0, 1]
    /// pixel scale (a shift of 1/255 is one 8-bit level): `delta / std` per plane for
    /// torchvision, `delta * 255` in BGR order for Caffe. Used by training's colour
    /// augmentation, so that the shift means the same whatever the input convention.
    pub fn plane_offsets(self, delta_rgb: [f32; 3]) -> [f32; 3] {
        match self {
            Normalization::Torchvision => {
                const STD: [f32; 3] = [0.229, 0.224, 0.225];
                [
                    delta_rgb[0] / STD[0],
                    delta_rgb[1] / STD[1],
                    delta_rgb[2] / STD[2],
                ]
            }
            Normalization::Caffe => [
                delta_rgb[2] * 255.0,
                delta_rgb[1] * 255.0,
                delta_rgb[0] * 255.0,
            ],
        }
    }
}

/// The size of an image rescaled isotropically so that its smallest side is `q`: the other side
/// is `round(side * q / smallest)` (at least 1), as the paper's protocol and the fixtures do.
pub fn scaled_size(width: u32, height: u32, q: u32) -> (u32, u32) {
    let r = |side: u32, small: u32| ((side as f64 * q as f64 / small as f64).round() as u32).max(1);
    if width <= height {
        (q, r(height, width))
    } else {
        (r(width, height), q)
    }
}

/// Checks that an image of `width` x `height` rescaled to smallest side `q` stays under the
/// pixel limit; the reason says whether the image is unusually elongated or the scale too large.
pub fn check_scaled_size(
    width: u32,
    height: u32,
    q: u32,
    max_pixels: u64,
) -> std::result::Result<(u32, u32), String> {
    let (w, h) = scaled_size(width, height, q);
    if (w as u64) * (h as u64) <= max_pixels {
        return Ok((w, h));
    }
    let ratio = w.max(h) as f64 / w.min(h).max(1) as f64;
    let why = if ratio > 4.0 {
        format!("its aspect ratio is {ratio:.1}:1")
    } else {
        format!("scale {q} is too large for the limit")
    };
    Err(format!(
        "{width}x{height} image rescaled to smallest side {q} would be {w}x{h} = {} pixels, over \
         the limit of {} ({why})",
        w as u64 * h as u64,
        max_pixels
    ))
}

/// Rescales so that the smallest side equals `q` (Pillow-exact antialiased bilinear).
pub fn resize_smallest_side(img: &RgbImage, q: u32) -> RgbImage {
    let (w, h) = scaled_size(img.width(), img.height(), q);
    resize_bilinear(img, w, h)
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: first input index, number of taps, and fixed-point weights.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear (triangle) filter.
fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support is 1.0
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let t = ((x + xmin) as f64 - center + 0.5) * ss;
            let v = (1.0 - t.abs()).max(0.0);
            *kx = v;
            ww += v;
        }
        for x in 0..n {
            if ww != 0.0 {
                k[x] /= ww;
            }
            let v = k[x] * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if k[x] < 0.0 {
                (-0.5 + v) as i32
            } else {
                (0.5 + v) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs {
        ksize,
        bounds,
        weights,
    }
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Resizes to exactly `width` x `height` with Pillow's antialiased bilinear filter, bit-exact
/// with Pillow >= 7 (`Image.resize((w, h), Image.BILINEAR)` on an RGB image).
pub fn resize_bilinear(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    if iw == ow && ih == oh {
        return img.clone();
    }
    let src = img.as_raw();
    let cv = coeffs(ih, oh);
    // Rows of the source the vertical pass will read.
    let y_first = cv.bounds[0].0;
    let y_last = cv.bounds[oh - 1].0 + cv.bounds[oh - 1].1;

    // Horizontal pass over the rows in use.
    let (tmp, tw, y_off) = if iw != ow {
        let ch = coeffs(iw, ow);
        let rows = y_last - y_first;
        let mut tmp = vec![0u8; rows * ow * 3];
        for r in 0..rows {
            let srow = &src[(r + y_first) * iw * 3..(r + y_first + 1) * iw * 3];
            let drow = &mut tmp[r * ow * 3..(r + 1) * ow * 3];
            for xx in 0..ow {
                let (xmin, n) = ch.bounds[xx];
                let k = &ch.weights[xx * ch.ksize..xx * ch.ksize + n];
                let mut ss = [1i32 << (PRECISION_BITS - 1); 3];
                for (x, &kx) in k.iter().enumerate() {
                    let p = &srow[(xmin + x) * 3..(xmin + x) * 3 + 3];
                    for c in 0..3 {
                        ss[c] = ss[c].wrapping_add(p[c] as i32 * kx);
                    }
                }
                for c in 0..3 {
                    drow[xx * 3 + c] = clip8(ss[c]);
                }
            }
        }
        (tmp, ow, y_first)
    } else {
        (src.to_vec(), iw, 0)
    };

    if ih == oh {
        return RgbImage::from_raw(ow as u32, oh as u32, tmp).expect("buffer size matches");
    }
    // Vertical pass.
    let mut out = vec![0u8; ow * oh * 3];
    for yy in 0..oh {
        let (ymin, n) = cv.bounds[yy];
        let ymin = ymin - y_off;
        let k = &cv.weights[yy * cv.ksize..yy * cv.ksize + n];
        let drow = &mut out[yy * tw * 3..(yy + 1) * tw * 3];
        for (i, d) in drow.iter_mut().enumerate() {
            let mut ss = 1i32 << (PRECISION_BITS - 1);
            for (y, &ky) in k.iter().enumerate() {
                ss = ss.wrapping_add(tmp[(ymin + y) * tw * 3 + i] as i32 * ky);
            }
            *d = clip8(ss);
        }
    }
    RgbImage::from_raw(ow as u32, oh as u32, out).expect("buffer size matches")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_sizes_follow_the_protocol() {
        assert_eq!(scaled_size(640, 480, 256), (341, 256));
        assert_eq!(scaled_size(480, 640, 256), (256, 341));
        assert_eq!(scaled_size(300, 300, 384), (384, 384));
        assert_eq!(scaled_size(10000, 1, 256), (2560000, 256));
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(123, 77, image::Rgb([10, 200, 255]));
        for (w, h) in [(256, 160), (40, 20), (123, 300), (500, 77)] {
            let r = resize_bilinear(&img, w, h);
            assert!(r.pixels().all(|p| p.0 == [10, 200, 255]), "{w}x{h}");
        }
    }

    #[test]
    fn normalisations() {
        let img = RgbImage::from_raw(2, 1, vec![255, 0, 0, 0, 0, 255]).unwrap();
        let t = Normalization::Torchvision.to_chw(&img, false);
        assert!((t[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        let c = Normalization::Caffe.to_chw(&img, true);
        // flipped: first pixel is blue (0,0,255) -> B plane first
        assert!((c[0] - (255.0 - 103.939)).abs() < 1e-4);
        assert!((c[5] - (255.0 - 123.68)).abs() < 1e-4); // R plane, second pixel = red
        assert!((c[4] + 123.68).abs() < 1e-4);
        // A colour shift of one level in red moves the red plane by 1/255 before normalising.
        let red = RgbImage::from_raw(1, 1, vec![100, 0, 0]).unwrap();
        let red2 = RgbImage::from_raw(1, 1, vec![101, 0, 0]).unwrap();
        for n in [Normalization::Torchvision, Normalization::Caffe] {
            let (a, b) = (n.to_chw(&red, false), n.to_chw(&red2, false));
            let o = n.plane_offsets([1.0 / 255.0, 0.0, 0.0]);
            for p in 0..3 {
                assert!((a[p] + o[p] - b[p]).abs() < 1e-5, "{n} plane {p}");
            }
        }
        assert_eq!(
            Normalization::from_metadata("caffe: BGR order, 0..255"),
            Some(Normalization::Caffe)
        );
    }
}
