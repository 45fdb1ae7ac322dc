//! A localisation net's boxes on an image, under the paper's two test protocols (Sect. 4.1):
//! the central crop only ([`centre_crop_boxes`]), or dense application over the whole image
//! ([`dense_boxes`]), where the fully-convolutional head gives a box per spatial location.
//!
//! The image is rescaled isotropically to smallest side `s` (as in classification). Location
//! `(row, col)` of the head's output map is the `crop x crop` window whose top-left corner is
//! `(32 col, 32 row)` in the rescaled image (fc6 is a `crop/32`-square convolution over pool5,
//! whose cells are 32 pixels apart), where `crop` is the net's training crop (32 x fc6's kernel
//! side). Each group of 4 outputs is a [`BoxParams`] in that window; the boxes are returned in
//! the original image's pixels, the rescaling undone per axis. With the flip, the mirrored
//! image's boxes are mirrored back.

use candle_core::Tensor;
use image::RgbImage;

use super::bbox::{BoxParams, Rect, Window};
use crate::error::{Error, Result};
use crate::model::Vgg;
use crate::model::config::LayerName;
use crate::preprocess::{Normalization, resize_smallest_side};

/// The boxes of one window: one per group of 4 outputs (one for SCR, one per class for PCR).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowBoxes {
    /// Output-map row.
    pub row: usize,
    /// Output-map column.
    pub col: usize,
    /// Whether the window is in the mirrored image.
    pub flipped: bool,
    /// The boxes, in original-image pixels.
    pub boxes: Vec<Rect>,
}

/// The side of the windows the net sees: 32 x its fc6 kernel side.
pub fn window_side(net: &Vgg) -> Result<u32> {
    let k = net.plan().fc6_kernel().ok_or_else(|| {
        Error::Usage(format!(
            "{}: a localisation net needs fc6 to fc8",
            net.weights().path.display()
        ))
    })?;
    Ok(32 * k as u32)
}

fn rescaled(net: &Vgg, img: &RgbImage, s: u32) -> Result<(RgbImage, u32, f64, f64)> {
    let crop = window_side(net)?;
    let r = resize_smallest_side(img, s);
    if r.width() < crop || r.height() < crop {
        return Err(Error::Usage(format!(
            "scale {s} gives a {}x{} image, smaller than the net's {crop} window",
            r.width(),
            r.height()
        )));
    }
    let fx = f64::from(img.width()) / f64::from(r.width());
    let fy = f64::from(img.height()) / f64::from(r.height());
    Ok((r, crop, fx, fy))
}

/// Decodes a window's outputs into boxes in original-image pixels.
fn decode(outputs: &[f32], win: Window, fx: f64, fy: f64) -> Vec<Rect> {
    outputs
        .chunks_exact(4)
        .map(|p| {
            win.decode(BoxParams([p[0], p[1], p[2], p[3]]))
                .scaled_xy(fx, fy)
        })
        .collect()
}

/// Protocol 1: the boxes predicted on the central `crop x crop` window of the image rescaled to
/// smallest side `s`.
pub fn centre_crop_boxes(
    net: &Vgg,
    img: &RgbImage,
    s: u32,
    norm: Normalization,
) -> Result<WindowBoxes> {
    let (r, crop, fx, fy) = rescaled(net, img, s)?;
    let (x0, y0) = ((r.width() - crop) / 2, (r.height() - crop) / 2);
    let c = image::imageops::crop_imm(&r, x0, y0, crop, crop).to_image();
    let side = crop as usize;
    let x = Tensor::from_vec(norm.to_chw(&c, false), (1, 3, side, side), net.device())?;
    let out: Vec<f32> = net
        .forward_to(&x, LayerName::Fc8)?
        .flatten_all()?
        .to_vec1()?;
    let win = Window {
        x0: f64::from(x0),
        y0: f64::from(y0),
        side: f64::from(crop),
    };
    Ok(WindowBoxes {
        row: 0,
        col: 0,
        flipped: false,
        boxes: decode(&out, win, fx, fy),
    })
}

/// Protocol 2: the boxes of every window of the image rescaled to smallest side `s` (and of its
/// mirror image, with `flip`), row by row, the mirrored windows after the others.
pub fn dense_boxes(
    net: &Vgg,
    img: &RgbImage,
    s: u32,
    norm: Normalization,
    flip: bool,
) -> Result<Vec<WindowBoxes>> {
    let (r, crop, fx, fy) = rescaled(net, img, s)?;
    let (w, h) = (r.width() as usize, r.height() as usize);
    let mut data = norm.to_chw(&r, false);
    if flip {
        data.extend(norm.to_chw(&r, true));
    }
    let n = 1 + usize::from(flip);
    let x = Tensor::from_vec(data, (n, 3, h, w), net.device())?;
    let out = net.forward_to(&x, LayerName::Fc8)?;
    let (_, width, oh, ow) = out.dims4()?;
    let v: Vec<f32> = out.flatten_all()?.to_vec1()?;
    let plane = oh * ow;
    let mut all = Vec::with_capacity(n * plane);
    for b in 0..n {
        for row in 0..oh {
            for col in 0..ow {
                let o: Vec<f32> = (0..width)
                    .map(|ch| v[(b * width + ch) * plane + row * ow + col])
                    .collect();
                let win = Window {
                    x0: 32.0 * col as f64,
                    y0: 32.0 * row as f64,
                    side: f64::from(crop),
                };
                let mut boxes = decode(&o, win, 1.0, 1.0);
                if b == 1 {
                    for bx in &mut boxes {
                        *bx = bx.flipped(w as f64);
                    }
                }
                for bx in &mut boxes {
                    *bx = bx.scaled_xy(fx, fy);
                }
                all.push(WindowBoxes {
                    row,
                    col,
                    flipped: b == 1,
                    boxes,
                });
            }
        }
    }
    Ok(all)
}
