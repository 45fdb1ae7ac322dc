//! Boxes as the localisation nets see them: [`Rect`] in continuous pixel coordinates, their
//! intersection over union, and the four numbers a box-regression layer predicts for a crop
//! window ([`BoxParams`]: centre x, centre y, width, height, in units of the window's side, as
//! the paper's Section 4 / Appendix A describes the last layer's outputs).
//!
//! Continuous coordinates put the image's top-left corner at (0, 0) and a pixel `(c, r)` (0-based)
//! over `[c, c + 1) x [r, r + 1)`. VOC's 1-based inclusive box `xmin..=xmax` is therefore
//! `[xmin - 1, xmax)`: its width `xmax - xmin + 1` is the devkit's, and the IoU of two integer
//! VOC boxes here equals the devkit's and ILSVRC's (which add 1 to every side length).

use crate::dataset::annotation::BBox;

/// An axis-aligned box `[x1, x2) x [y1, y2)` in continuous pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rect {
    /// Left edge.
    pub x1: f64,
    /// Top edge.
    pub y1: f64,
    /// Right edge.
    pub x2: f64,
    /// Bottom edge.
    pub y2: f64,
}

impl Rect {
    /// The box `[x1, x2) x [y1, y2)`.
    pub fn new(x1: f64, y1: f64, x2: f64, y2: f64) -> Self {
        Rect { x1, y1, x2, y2 }
    }

    /// A VOC box (1-based, inclusive) in continuous coordinates: `[xmin - 1, xmax)`.
    pub fn from_voc(b: &BBox) -> Self {
        Rect::new(
            f64::from(b.xmin) - 1.0,
            f64::from(b.ymin) - 1.0,
            f64::from(b.xmax),
            f64::from(b.ymax),
        )
    }

    /// Width (0 for an inverted box).
    pub fn width(&self) -> f64 {
        (self.x2 - self.x1).max(0.0)
    }

    /// Height (0 for an inverted box).
    pub fn height(&self) -> f64 {
        (self.y2 - self.y1).max(0.0)
    }

    /// Area (0 for an inverted box).
    pub fn area(&self) -> f64 {
        self.width() * self.height()
    }

    /// The area both boxes cover.
    pub fn intersection(&self, o: &Rect) -> f64 {
        let w = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let h = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        w * h
    }

    /// Intersection over union; 0 when the union is empty.
    pub fn iou(&self, o: &Rect) -> f64 {
        let i = self.intersection(o);
        let u = self.area() + o.area() - i;
        if u > 0.0 { i / u } else { 0.0 }
    }

    /// The box scaled by `f` about the origin (from a rescaled image back to the original).
    pub fn scaled(&self, f: f64) -> Rect {
        Rect::new(self.x1 * f, self.y1 * f, self.x2 * f, self.y2 * f)
    }

    /// The box scaled by `fx` horizontally and `fy` vertically about the origin (from an image
    /// resized to other proportions, as rounding makes every resize, back to the original).
    pub fn scaled_xy(&self, fx: f64, fy: f64) -> Rect {
        Rect::new(self.x1 * fx, self.y1 * fy, self.x2 * fx, self.y2 * fy)
    }

    /// The box mirrored left-right in an image `width` pixels wide.
    pub fn flipped(&self, width: f64) -> Rect {
        Rect::new(width - self.x2, self.y1, width - self.x1, self.y2)
    }

    /// The box moved by `(dx, dy)`.
    pub fn shifted(&self, dx: f64, dy: f64) -> Rect {
        Rect::new(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)
    }

    /// The box cut to `[0, width) x [0, height)` (inverted if it lies outside).
    pub fn clipped(&self, width: f64, height: f64) -> Rect {
        Rect::new(
            self.x1.clamp(0.0, width),
            self.y1.clamp(0.0, height),
            self.x2.clamp(0.0, width),
            self.y2.clamp(0.0, height),
        )
    }
}

/// What a box-regression layer predicts for one square window: the box's centre and size in
/// units of the window's side, the centre measured from the window's top-left corner. A box
/// filling the window is `[0.5, 0.5, 1, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxParams(pub [f32; 4]);

/// A square window of an image: its top-left corner and side, in the same coordinates as the
/// boxes it encodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Left edge.
    pub x0: f64,
    /// Top edge.
    pub y0: f64,
    /// Side.
    pub side: f64,
}

impl Window {
    /// The regression target of `r` in this window.
    pub fn encode(&self, r: &Rect) -> BoxParams {
        let s = self.side;
        BoxParams([
            ((0.5 * (r.x1 + r.x2) - self.x0) / s) as f32,
            ((0.5 * (r.y1 + r.y2) - self.y0) / s) as f32,
            (r.width() / s) as f32,
            (r.height() / s) as f32,
        ])
    }

    /// The box that `p` describes in this window. A predicted width or height below zero is
    /// taken as zero (an empty box), never as an inverted one.
    pub fn decode(&self, p: BoxParams) -> Rect {
        let s = self.side;
        let [cx, cy, w, h] = p.0.map(f64::from);
        let (cx, cy) = (self.x0 + cx * s, self.y0 + cy * s);
        let (hw, hh) = (0.5 * w.max(0.0) * s, 0.5 * h.max(0.0) * s);
        Rect::new(cx - hw, cy - hh, cx + hw, cy + hh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_by_hand() {
        let a = Rect::new(0.0, 0.0, 4.0, 4.0);
        let b = Rect::new(2.0, 2.0, 6.0, 6.0);
        // Intersection 2 x 2 = 4, union 16 + 16 - 4 = 28.
        assert!((a.iou(&b) - 4.0 / 28.0).abs() < 1e-15);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&Rect::new(4.0, 0.0, 8.0, 4.0)), 0.0, "touching edges");
        let empty = Rect::new(1.0, 1.0, 1.0, 1.0);
        assert_eq!(empty.iou(&empty), 0.0);
    }

    #[test]
    fn voc_boxes_get_the_devkits_plus_one_sizes() {
        // VOC box 1..=10 x 1..=5: 10 x 5 pixels. Against 6..=15 x 1..=5: overlap 5 x 5.
        let a = Rect::from_voc(&BBox {
            xmin: 1.0,
            ymin: 1.0,
            xmax: 10.0,
            ymax: 5.0,
        });
        let b = Rect::from_voc(&BBox {
            xmin: 6.0,
            ymin: 1.0,
            xmax: 15.0,
            ymax: 5.0,
        });
        assert_eq!((a.width(), a.height()), (10.0, 5.0));
        // The devkit: iw = min(10, 15) - max(1, 6) + 1 = 5, ih = 5; union 50 + 50 - 25.
        assert!((a.iou(&b) - 25.0 / 75.0).abs() < 1e-15);
    }

    #[test]
    fn windows_encode_and_decode_inversely() {
        let w = Window {
            x0: 32.0,
            y0: 64.0,
            side: 224.0,
        };
        let r = Rect::new(40.0, 100.0, 200.0, 300.0);
        let p = w.encode(&r);
        let back = w.decode(p);
        for (a, b) in [
            (back.x1, r.x1),
            (back.y1, r.y1),
            (back.x2, r.x2),
            (back.y2, r.y2),
        ] {
            assert!((a - b).abs() < 1e-4, "{back:?} vs {r:?}");
        }
        let full = w.encode(&Rect::new(32.0, 64.0, 256.0, 288.0));
        assert_eq!(full.0, [0.5, 0.5, 1.0, 1.0]);
        let neg = w.decode(BoxParams([0.5, 0.5, -1.0, 0.5]));
        assert_eq!(neg.area(), 0.0);
        assert_eq!(neg.width(), 0.0);
    }

    #[test]
    fn flips_and_scales_move_boxes_with_the_image() {
        let r = Rect::new(10.0, 20.0, 30.0, 60.0);
        assert_eq!(r.flipped(100.0), Rect::new(70.0, 20.0, 90.0, 60.0));
        assert_eq!(r.flipped(100.0).flipped(100.0), r);
        assert_eq!(r.scaled(2.0), Rect::new(20.0, 40.0, 60.0, 120.0));
        assert_eq!(r.clipped(25.0, 50.0), Rect::new(10.0, 20.0, 25.0, 50.0));
    }
}
