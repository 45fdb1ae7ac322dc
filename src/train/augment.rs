//! Training-time augmentation (the paper's Section 3.1, after Krizhevsky et al. 2012): isotropic
//! rescaling to a training scale S (fixed, or drawn per image from [Smin, Smax]: scale
//! jittering), a random square crop, a random horizontal flip, and AlexNet's RGB colour shift
//! along the principal components of the training set's pixel values.
//!
//! Everything random is drawn from the generator the caller passes, in a fixed order (S, crop
//! x, crop y, flip, the three colour coefficients), so a sample is a pure function of the image
//! and the generator's state. Rescaling is [`crate::preprocess`]'s Pillow-exact bilinear filter.
//!
//! The colour shift adds `sum_i p_i * a_i * sqrt(l_i)` to every pixel, with `p_i`, `l_i` the
//! eigenvectors and eigenvalues of the 3x3 covariance of RGB values on the [0, 1] scale and
//! `a_i ~ N(0, sigma^2)` drawn once per image (sigma 0.1 as in AlexNet). AlexNet's text scales by
//! the eigenvalue `l_i`; we scale by its square root, the standard deviation along the
//! component, which does not depend on the pixel scale (with 0..255 pixels the eigenvalue would
//! shift colours by hundreds of levels) and is what common implementations do.

use image::RgbImage;
use rand::Rng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::rng::stream;
use crate::dataset::{Dataset, Split};
use crate::error::{Error, Param, Result};
use crate::image_io::{DecodeOptions, load_item};
use crate::localise::{BoxParams, Rect, Window};
use crate::preprocess::{Normalization, resize_smallest_side};
use crate::util::rng::normal;

/// The training scale S: the smallest image side after isotropic rescaling, before cropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TrainScale {
    /// Single-scale training at S (the paper: 256 or 384).
    Fixed(u32),
    /// Multi-scale training: S drawn uniformly per image from [min, max] (the paper: 256..512).
    Jitter(u32, u32),
}

impl TrainScale {
    /// The smallest S this can draw.
    pub fn min(self) -> u32 {
        match self {
            TrainScale::Fixed(s) => s,
            TrainScale::Jitter(a, _) => a,
        }
    }

    /// The paper's test scale for this training scale: Q = S for a fixed scale,
    /// Q = (Smin + Smax) / 2 for a jittered one.
    pub fn default_test_scale(self) -> u32 {
        match self {
            TrainScale::Fixed(s) => s,
            TrainScale::Jitter(a, b) => (a + b) / 2,
        }
    }

    /// Draws S.
    pub fn draw(self, rng: &mut impl Rng) -> u32 {
        match self {
            TrainScale::Fixed(s) => s,
            TrainScale::Jitter(a, b) => rng.gen_range(a..=b),
        }
    }
}

impl std::str::FromStr for TrainScale {
    type Err = Error;
    /// `256` or `256:512`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::param(
                Param::TrainScale,
                format!(
                    "bad training scale `{s}` (expected S like 256, or Smin:Smax like 256:512)"
                ),
            )
        };
        let num = |t: &str| t.trim().parse::<u32>().map_err(|_| bad());
        match s.split_once(':') {
            None => Ok(TrainScale::Fixed(num(s)?)),
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a >= b {
                    return Err(Error::param(
                        Param::TrainScale,
                        format!("training scale `{s}`: Smin must be below Smax"),
                    ));
                }
                Ok(TrainScale::Jitter(a, b))
            }
        }
    }
}

impl std::fmt::Display for TrainScale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainScale::Fixed(s) => write!(f, "{s}"),
            TrainScale::Jitter(a, b) => write!(f, "{a}:{b}"),
        }
    }
}

/// Principal components of RGB pixel values (on the [0, 1] scale).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColourPca {
    /// Eigenvalues (variances), largest first.
    pub eigenvalues: [f32; 3],
    /// Unit eigenvectors in RGB order, `eigenvectors[i]` for `eigenvalues[i]`; each with its
    /// largest-magnitude component positive.
    pub eigenvectors: [[f32; 3]; 3],
    /// Pixels the covariance was computed from.
    pub pixels: u64,
}

impl ColourPca {
    /// Fits the components to every `stride`-th pixel (in raster order) of `images`.
    /// Errors if no pixel was seen or `stride` is 0.
    pub fn fit<'a>(images: impl IntoIterator<Item = &'a RgbImage>, stride: usize) -> Result<Self> {
        if stride == 0 {
            return Err(Error::Usage("pixel stride must be at least 1".into()));
        }
        let mut n = 0u64;
        let mut sum = [0f64; 3];
        let mut sq = [[0f64; 3]; 3];
        for img in images {
            for p in img.as_raw().chunks_exact(3).step_by(stride) {
                let v = [
                    f64::from(p[0]) / 255.0,
                    f64::from(p[1]) / 255.0,
                    f64::from(p[2]) / 255.0,
                ];
                for i in 0..3 {
                    sum[i] += v[i];
                    for j in 0..3 {
                        sq[i][j] += v[i] * v[j];
                    }
                }
                n += 1;
            }
        }
        if n < 2 {
            return Err(Error::Usage("colour PCA needs at least two pixels".into()));
        }
        let nf = n as f64;
        let mut cov = [[0f64; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                cov[i][j] = (sq[i][j] - sum[i] * sum[j] / nf) / (nf - 1.0);
            }
        }
        let (vals, vecs) = symmetric_eigen3(cov);
        let mut order = [0usize, 1, 2];
        order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
        let mut eigenvalues = [0f32; 3];
        let mut eigenvectors = [[0f32; 3]; 3];
        for (k, &i) in order.iter().enumerate() {
            eigenvalues[k] = vals[i].max(0.0) as f32;
            let v = [vecs[0][i], vecs[1][i], vecs[2][i]];
            let big = v
                .iter()
                .copied()
                .max_by(|a, b| a.abs().total_cmp(&b.abs()))
                .unwrap_or(1.0);
            let sign = if big < 0.0 { -1.0 } else { 1.0 };
            eigenvectors[k] = [
                (v[0] * sign) as f32,
                (v[1] * sign) as f32,
                (v[2] * sign) as f32,
            ];
        }
        Ok(ColourPca {
            eigenvalues,
            eigenvectors,
            pixels: n,
        })
    }

    /// The RGB shift (on the [0, 1] scale) for coefficients `alpha`:
    /// `sum_i p_i * alpha_i * sqrt(l_i)`.
    pub fn shift(&self, alpha: [f32; 3]) -> [f32; 3] {
        let mut d = [0f32; 3];
        for ((a, l), p) in alpha.iter().zip(&self.eigenvalues).zip(&self.eigenvectors) {
            let s = a * l.sqrt();
            for (dc, pc) in d.iter_mut().zip(p) {
                *dc += pc * s;
            }
        }
        d
    }
}

/// Eigen-decomposition of a symmetric 3x3 matrix by cyclic Jacobi rotations: eigenvalues and
/// the matrix whose columns are the eigenvectors.
fn symmetric_eigen3(mut a: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..50 {
        let off = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
        if off < 1e-30 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q].abs() < 1e-300 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // A <- J^T A J with the rotation J in the (p, q) plane.
            for row in a.iter_mut() {
                let (akp, akq) = (row[p], row[q]);
                row[p] = c * akp - s * akq;
                row[q] = s * akp + c * akq;
            }
            let (rp, rq) = (a[p], a[q]);
            for (k, (apk, aqk)) in rp.iter().zip(&rq).enumerate() {
                a[p][k] = c * apk - s * aqk;
                a[q][k] = s * apk + c * aqk;
            }
            for row in v.iter_mut() {
                let (vp, vq) = (row[p], row[q]);
                row[p] = c * vp - s * vq;
                row[q] = s * vp + c * vq;
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

/// How one training sample is drawn from an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Augment {
    /// Training scale S (each drawn S must be >= `crop`).
    pub scale: TrainScale,
    /// Side of the square crop, in pixels.
    pub crop: u32,
    /// Flip horizontally with probability 1/2.
    pub flip: bool,
    /// The colour components and sigma of the coefficients (None: no colour shift).
    pub colour: Option<(ColourPca, f32)>,
    /// Input convention.
    pub norm: Normalization,
}

impl Augment {
    /// One sample: a `3 x crop x crop` planar buffer in the input convention.
    #[cfg(test)]
    pub fn sample(&self, img: &RgbImage, rng: &mut impl Rng) -> Vec<f32> {
        self.sample_with_geometry(img, rng).0
    }

    /// One sample and where it came from in `img` (to move a box with it).
    pub fn sample_with_geometry(&self, img: &RgbImage, rng: &mut impl Rng) -> (Vec<f32>, Geometry) {
        let s = self.scale.draw(rng).max(self.crop);
        let r = resize_smallest_side(img, s);
        let (w, h) = (r.width(), r.height());
        let x0 = rng.gen_range(0..=w - self.crop);
        let y0 = rng.gen_range(0..=h - self.crop);
        let flip = self.flip && rng.r#gen::<bool>();
        let geometry = Geometry {
            fx: f64::from(w) / f64::from(img.width()),
            fy: f64::from(h) / f64::from(img.height()),
            x0,
            y0,
            crop: self.crop,
            flip,
        };
        let crop = image::imageops::crop_imm(&r, x0, y0, self.crop, self.crop).to_image();
        let mut out = self.norm.to_chw(&crop, flip);
        if let Some((pca, sigma)) = &self.colour {
            let alpha = [
                normal(rng) * sigma,
                normal(rng) * sigma,
                normal(rng) * sigma,
            ];
            let off = self.norm.plane_offsets(pca.shift(alpha));
            let plane = (self.crop * self.crop) as usize;
            for (c, o) in off.iter().enumerate() {
                for v in &mut out[c * plane..(c + 1) * plane] {
                    *v += o;
                }
            }
        }
        (out, geometry)
    }
}

/// Where a training sample came from: the rescaling of the image (new size over old, per axis),
/// the crop's top-left corner in the rescaled image and its side, and the flip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Horizontal scale factor.
    pub fx: f64,
    /// Vertical scale factor.
    pub fy: f64,
    /// Crop's left edge.
    pub x0: u32,
    /// Crop's top edge.
    pub y0: u32,
    /// Crop side.
    pub crop: u32,
    /// Whether the crop was mirrored.
    pub flip: bool,
}

impl Geometry {
    /// The regression target of `r` (a box in the original image) in this sample: the box
    /// rescaled, moved into the crop and mirrored with it, in units of the crop
    /// ([`Window::encode`]). It may reach outside the crop, as the object may.
    pub fn box_target(&self, r: &Rect) -> BoxParams {
        let c = f64::from(self.crop);
        let mut b = r
            .scaled_xy(self.fx, self.fy)
            .shifted(-f64::from(self.x0), -f64::from(self.y0));
        if self.flip {
            b = b.flipped(c);
        }
        Window {
            x0: 0.0,
            y0: 0.0,
            side: c,
        }
        .encode(&b)
    }
}

/// Fits the colour PCA on `n` training images chosen by the `pca` stream (every 7th pixel).
pub fn fit_colour_pca(
    ds: &Dataset,
    split: &Split,
    n: usize,
    seed: u64,
    decode: &DecodeOptions,
) -> Result<ColourPca> {
    let mut pick: Vec<usize> = split.train.clone();
    pick.shuffle(&mut stream(seed, "pca", 0, 0));
    pick.truncate(n);
    pick.sort_unstable();
    let images: Vec<image::RgbImage> = pick
        .par_iter()
        .map(|&i| load_item(&ds.items[i], decode))
        .collect::<Result<_>>()?;
    ColourPca::fit(&images, 7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn scales_parse_and_draw_in_range() {
        assert_eq!("256".parse::<TrainScale>().unwrap(), TrainScale::Fixed(256));
        let j: TrainScale = "256:512".parse().unwrap();
        assert_eq!(j, TrainScale::Jitter(256, 512));
        assert_eq!(j.default_test_scale(), 384);
        assert_eq!(j.to_string(), "256:512");
        for bad in ["", "a", "512:256", "256:256", "1:2:3"] {
            assert!(bad.parse::<TrainScale>().is_err(), "{bad}");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d: Vec<u32> = (0..200).map(|_| j.draw(&mut rng)).collect();
        assert!(d.iter().all(|s| (256..=512).contains(s)));
        assert!(d.iter().any(|&s| s < 300) && d.iter().any(|&s| s > 470));
    }

    #[test]
    fn pca_recovers_a_known_colour_axis() {
        // Pixels vary along (1, 1, 0)/sqrt2 only, plus a constant blue: one non-zero component.
        let mut raw = Vec::new();
        for i in 0..200u32 {
            let v = (i % 200) as u8;
            raw.extend_from_slice(&[v, v, 40]);
        }
        let img = RgbImage::from_raw(200, 1, raw).unwrap();
        let pca = ColourPca::fit([&img], 1).unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let p = pca.eigenvectors[0];
        assert!((p[0] - h).abs() < 1e-5 && (p[1] - h).abs() < 1e-5 && p[2].abs() < 1e-5);
        // variance of i/255 over i = 0..199, times 2 (two channels along the unit vector)
        let var = (0..200)
            .map(|i| (i as f64 / 255.0 - 99.5 / 255.0).powi(2))
            .sum::<f64>()
            / 199.0;
        assert!((f64::from(pca.eigenvalues[0]) - 2.0 * var).abs() < 1e-6);
        assert!(pca.eigenvalues[1].abs() < 1e-9 && pca.eigenvalues[2].abs() < 1e-9);
        let d = pca.shift([1.0, 0.0, 0.0]);
        let s = (2.0 * var).sqrt() as f32;
        assert!((d[0] - h * s).abs() < 1e-5 && (d[1] - h * s).abs() < 1e-5);
    }

    #[test]
    fn jacobi_diagonalises_a_full_matrix() {
        let a = [[4.0, 1.0, 2.0], [1.0, 3.0, 0.5], [2.0, 0.5, 5.0]];
        let (vals, v) = symmetric_eigen3(a);
        for k in 0..3 {
            // A v_k = l_k v_k
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i][j] * v[j][k]).sum();
                assert!((av - vals[k] * v[i][k]).abs() < 1e-10);
            }
        }
        assert!((vals.iter().sum::<f64>() - 12.0).abs() < 1e-10);
    }

    #[test]
    fn samples_are_seeded_crops_with_flips() {
        // A horizontal ramp: a crop's first row tells where it was cut and whether it was flipped.
        let mut raw = Vec::new();
        for _y in 0..40 {
            for x in 0..60u32 {
                raw.extend_from_slice(&[(x * 4) as u8, 0, 0]);
            }
        }
        let img = RgbImage::from_raw(60, 40, raw).unwrap();
        let aug = Augment {
            scale: TrainScale::Fixed(40),
            crop: 32,
            flip: true,
            colour: None,
            norm: Normalization::Caffe,
        };
        let mut seen_flip = [false; 2];
        let mut starts = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let a = aug.sample(&img, &mut ChaCha8Rng::seed_from_u64(seed));
            let b = aug.sample(&img, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(a, b, "seeded");
            assert_eq!(a.len(), 3 * 32 * 32);
            // plane 2 is R in Caffe order; red increases by 4 per column unless flipped
            let r = &a[2 * 1024..2 * 1024 + 32];
            let flipped = r[0] > r[31];
            seen_flip[flipped as usize] = true;
            starts.insert(if flipped { r[31] } else { r[0] } as i32);
            assert!(((r[1] - r[0]).abs() - 4.0).abs() < 1e-4);
        }
        assert!(seen_flip[0] && seen_flip[1], "both orientations occur");
        assert!(starts.len() > 10, "crop positions vary: {starts:?}");
        // A colour shift along pure red moves every pixel of the red plane by the same amount
        // and leaves the other planes alone.
        let pca = ColourPca {
            eigenvalues: [0.04, 0.0, 0.0],
            eigenvectors: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            pixels: 1,
        };
        let flat = RgbImage::from_pixel(50, 40, image::Rgb([100, 50, 20]));
        let col = Augment {
            colour: Some((pca, 0.1)),
            ..aug
        };
        let plain = Normalization::Caffe.to_chw(
            &RgbImage::from_pixel(1, 1, image::Rgb([100, 50, 20])),
            false,
        );
        let mut shifts = Vec::new();
        for seed in 0..20 {
            let a = col.sample(&flat, &mut ChaCha8Rng::seed_from_u64(seed));
            assert!(
                a[..1024].iter().all(|v| (v - plain[0]).abs() < 1e-3),
                "B unchanged"
            );
            assert!(
                a[1024..2048].iter().all(|v| (v - plain[1]).abs() < 1e-3),
                "G unchanged"
            );
            let r = &a[2048..];
            assert!(r.iter().all(|v| (v - r[0]).abs() < 1e-3), "uniform shift");
            // shift = alpha * sqrt(0.04) * 255 levels, alpha ~ N(0, 0.1^2): a few levels
            shifts.push(r[0] - plain[2]);
        }
        assert!(shifts.iter().all(|d| d.abs() < 0.5 * 0.2 * 255.0));
        assert!(
            shifts.iter().filter(|d| d.abs() > 0.5).count() > 10,
            "{shifts:?}"
        );
    }

    /// A white rectangle on black, rescaled, cropped and mirrored: the box target, decoded in the
    /// sample, covers exactly the white pixels of the sample (to a pixel, the resize's blur).
    #[test]
    fn box_targets_follow_the_sample() {
        // 120 x 80 image, white over columns 30..70 and rows 20..50 (VOC 31..=70, 21..=50).
        let mut img = RgbImage::new(120, 80);
        for y in 20..50 {
            for x in 30..70 {
                img.put_pixel(x, y, image::Rgb([255, 255, 255]));
            }
        }
        let rect = Rect::new(30.0, 20.0, 70.0, 50.0);
        let aug = Augment {
            scale: TrainScale::Jitter(64, 96),
            crop: 64,
            flip: true,
            colour: None,
            norm: Normalization::Caffe,
        };
        let mut flips = [0; 2];
        for seed in 0..30 {
            let (x, g) = aug.sample_with_geometry(&img, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(x, aug.sample(&img, &mut ChaCha8Rng::seed_from_u64(seed)));
            flips[usize::from(g.flip)] += 1;
            let b = Window {
                x0: 0.0,
                y0: 0.0,
                side: 64.0,
            }
            .decode(g.box_target(&rect));
            // Caffe: plane 0 is blue minus its mean; white pixels are the maximum.
            let max = x[..64 * 64].iter().fold(f32::MIN, |m, v| m.max(*v));
            for r in 0..64 {
                for c in 0..64 {
                    let white = x[r * 64 + c] > max - 1.0;
                    let (cx, cy) = (c as f64 + 0.5, r as f64 + 0.5);
                    let inside =
                        cx > b.x1 + 1.0 && cx < b.x2 - 1.0 && cy > b.y1 + 1.0 && cy < b.y2 - 1.0;
                    let outside =
                        cx < b.x1 - 1.0 || cx > b.x2 + 1.0 || cy < b.y1 - 1.0 || cy > b.y2 + 1.0;
                    assert!(
                        !inside || white,
                        "seed {seed}: ({c}, {r}) inside {b:?} is not white"
                    );
                    assert!(
                        !outside || !white,
                        "seed {seed}: ({c}, {r}) outside {b:?} is white"
                    );
                }
            }
        }
        assert!(flips[0] > 0 && flips[1] > 0);
    }
}
