//! ILSVRC's localisation error, as the paper reports it (Sect. 4.1, Table 8-10): a predicted box
//! is correct when its class is the ground truth's and its intersection over union with a
//! ground-truth box of that class is above 0.5 ([`HIT_IOU`]); an image is localised when one of
//! its first k guesses is correct (top-1, top-5 error); and, for comparing localisation nets
//! without a classifier, the error of the box predicted for the ground-truth class (protocol 1's
//! "ground-truth class" variant, Table 8), counted per image and ground-truth class.
//!
//! Every ground-truth box counts, `difficult` ones included (ILSVRC has no such flag; VOC's
//! localisation devkit does the same). Pinned by hand-worked cases below and against the
//! independent `scripts/localisation_reference.py` (tests/localisation.rs).

use super::bbox::Rect;
use crate::error::{Error, Result};

/// The overlap a correct box must exceed.
pub const HIT_IOU: f64 = 0.5;

/// A ground-truth object: class index and box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    /// Its class.
    pub class: usize,
    /// Its box.
    pub rect: Rect,
}

/// A guess: a class and where it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guess {
    /// The guessed class.
    pub class: usize,
    /// The guessed box.
    pub rect: Rect,
}

/// Whether `g` is correct for an image with objects `truths`.
pub fn is_hit(g: &Guess, truths: &[Truth]) -> bool {
    truths
        .iter()
        .any(|t| t.class == g.class && g.rect.iou(&t.rect) > HIT_IOU)
}

/// The top-`k` localisation error over images, each given as (its guesses, best first; its
/// objects): the share of images none of whose first `k` guesses is correct. An image without
/// guesses counts as an error. Errors on no images or `k == 0`.
pub fn localisation_error(images: &[(Vec<Guess>, Vec<Truth>)], k: usize) -> Result<f64> {
    if images.is_empty() || k == 0 {
        return Err(Error::Usage(format!(
            "top-{k} localisation error of {} images",
            images.len()
        )));
    }
    let missed = images
        .iter()
        .filter(|(guesses, truths)| !guesses.iter().take(k).any(|g| is_hit(g, truths)))
        .count();
    Ok(missed as f64 / images.len() as f64)
}

/// The ground-truth-class localisation error: over (the box predicted for one ground-truth class
/// of an image; that image's boxes of that class), the share whose box overlaps none of them by
/// more than [`HIT_IOU`]. A `None` box (nothing predicted) is an error. Errors on no pairs.
pub fn gt_class_error(pairs: &[(Option<Rect>, Vec<Rect>)]) -> Result<f64> {
    if pairs.is_empty() {
        return Err(Error::Usage(
            "ground-truth-class localisation error of no images".into(),
        ));
    }
    let missed = pairs
        .iter()
        .filter(|(b, truths)| !b.is_some_and(|b| truths.iter().any(|t| b.iou(t) > HIT_IOU)))
        .count();
    Ok(missed as f64 / pairs.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(class: usize, x1: f64, x2: f64) -> Guess {
        Guess {
            class,
            rect: Rect::new(x1, 0.0, x2, 1.0),
        }
    }

    #[test]
    fn hits_need_the_class_and_more_than_half_overlap() {
        let truths = [Truth {
            class: 3,
            rect: Rect::new(0.0, 0.0, 4.0, 1.0),
        }];
        assert!(is_hit(&g(3, 0.0, 3.0), &truths)); // IoU 3/4
        assert!(!is_hit(&g(2, 0.0, 4.0), &truths)); // wrong class
        // IoU exactly 0.5 (2 / 4) is not above 0.5.
        assert!(!is_hit(&g(3, 0.0, 2.0), &truths));
        assert!(is_hit(&g(3, 0.0, 2.01), &truths));
    }

    #[test]
    fn top_k_counts_an_image_once_whatever_its_hits() {
        let t = |c| {
            vec![Truth {
                class: c,
                rect: Rect::new(0.0, 0.0, 4.0, 1.0),
            }]
        };
        let images = vec![
            (vec![g(1, 0.0, 4.0), g(1, 0.0, 4.0)], t(1)), // hit at 1
            (vec![g(0, 0.0, 4.0), g(2, 0.0, 4.0)], t(2)), // hit at 2
            (vec![g(2, 3.0, 4.0), g(2, 0.0, 1.0)], t(2)), // misses both
            (vec![], t(0)),                               // no guess
        ];
        assert_eq!(localisation_error(&images, 1).unwrap(), 0.75);
        assert_eq!(localisation_error(&images, 5).unwrap(), 0.5);
        assert!(localisation_error(&[], 1).is_err());
        assert!(localisation_error(&images, 0).is_err());
    }

    #[test]
    fn ground_truth_class_error_by_hand() {
        let truth = vec![
            Rect::new(0.0, 0.0, 4.0, 1.0),
            Rect::new(10.0, 0.0, 12.0, 1.0),
        ];
        let pairs = vec![
            (Some(Rect::new(10.0, 0.0, 12.5, 1.0)), truth.clone()), // the second object
            (Some(Rect::new(5.0, 0.0, 9.0, 1.0)), truth.clone()),   // neither
            (None, truth),
        ];
        assert!((gt_class_error(&pairs).unwrap() - 2.0 / 3.0).abs() < 1e-15);
        assert!(gt_class_error(&[]).is_err());
    }
}
