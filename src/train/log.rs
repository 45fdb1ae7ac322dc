//! The training log: one [`EpochMetrics`] row per epoch, written as CSV and plotted as an SVG
//! (training loss on the left, training and validation error on the right).

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::util::write_atomic;

/// What one epoch did. In a localisation run ([`super::Task::Localise`]) the fields keep their
/// names and hold that task's figures: `train_loss` the Euclidean box loss, `train_top1_err` the
/// share of training samples whose predicted box overlaps its target by IoU <= 0.5,
/// `val_top1_err` the ground-truth-class localisation error on the central crop (NaN without
/// validation images), `val_top5_err` NaN; [`EpochMetrics::val_iou`] is theirs alone.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's training samples (with augmentation and dropout).
    pub train_loss: f64,
    /// Top-1 error on the training samples as seen in training (augmented, with dropout).
    pub train_top1_err: f64,
    /// Validation top-1 error (dense evaluation at the test scale).
    #[serde(deserialize_with = "null_as_nan")]
    pub val_top1_err: f64,
    /// Validation top-5 error.
    #[serde(deserialize_with = "null_as_nan")]
    pub val_top5_err: f64,
    /// A localisation run's validation mean IoU: per validation image and ground-truth class,
    /// the best overlap of the box predicted for that class (central crop) with that class's
    /// boxes, averaged. The schedule and the best checkpoint watch `1 - val_iou`, a continuous
    /// version of the localisation error. `None` for classification.
    #[serde(default)]
    pub val_iou: Option<f64>,
    /// Learning rate used during the epoch.
    pub lr: f64,
    /// Wall-clock seconds of the epoch (training, validation and saving).
    pub seconds: f64,
}

impl EpochMetrics {
    /// What the schedule and the best checkpoint watch: the validation top-1 error; for
    /// localisation `1 - val_iou`; without validation images the training loss.
    pub fn watched(&self) -> f64 {
        match self.val_iou {
            Some(iou) => 1.0 - iou,
            None if self.val_top1_err.is_nan() => self.train_loss,
            None => self.val_top1_err,
        }
    }
}

/// Reads a number that JSON wrote as `null` (serde_json writes NaN so) as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The CSV header of [`write_csv`].
pub const CSV_HEADER: &str = "epoch,train_loss,train_top1_err,val_top1_err,val_top5_err,lr,seconds";

/// The CSV header of [`write_csv`] for a localisation run.
pub const CSV_HEADER_LOCALISE: &str =
    "epoch,train_loss,train_box_miss,val_gt_class_loc_err,val_mean_iou,lr,seconds";

/// Writes the history as CSV (errors as fractions in [0, 1]), atomically; a localisation run's
/// with [`CSV_HEADER_LOCALISE`]'s columns.
pub fn write_csv(history: &[EpochMetrics], localise: bool, path: &Path) -> Result<()> {
    let mut s = String::from(if localise {
        CSV_HEADER_LOCALISE
    } else {
        CSV_HEADER
    });
    s.push('\n');
    for m in history {
        // The fifth column: the top-5 error, or a localisation run's mean IoU.
        let fifth = if localise {
            m.val_iou.unwrap_or(f64::NAN)
        } else {
            m.val_top5_err
        };
        s.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:e},{:.3}\n",
            m.epoch, m.train_loss, m.train_top1_err, m.val_top1_err, fifth, m.lr, m.seconds
        ));
    }
    write_atomic(path, s.as_bytes())
}

/// Plots the history as an SVG (written atomically): loss per epoch, and top-1 / top-5 errors
/// (a localisation run: box misses and the localisation error).
pub fn plot_svg(history: &[EpochMetrics], localise: bool, title: &str, path: &Path) -> Result<()> {
    let mut svg = String::new();
    draw(history, localise, title, &mut svg).map_err(|e| Error::Data {
        path: path.to_path_buf(),
        reason: format!("cannot draw the plot: {e}"),
    })?;
    write_atomic(path, svg.as_bytes())
}

fn draw(
    history: &[EpochMetrics],
    localise: bool,
    title: &str,
    out: &mut String,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(out, (960, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 18))?;
    let (left, right) = root.split_horizontally(480);
    let n = history.len().max(1) as f64;
    let xs = 0.5..n + 0.5;
    let max_loss = history
        .iter()
        .map(|m| m.train_loss)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.05;
    let mut c = ChartBuilder::on(&left)
        .margin(10)
        .caption("training loss", ("sans-serif", 16))
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(xs.clone(), 0.0..max_loss)?;
    c.configure_mesh()
        .x_desc("epoch")
        .y_desc(if localise {
            "Euclidean box loss"
        } else {
            "cross-entropy"
        })
        .draw()?;
    c.draw_series(LineSeries::new(
        history.iter().map(|m| (m.epoch as f64, m.train_loss)),
        &BLUE,
    ))?;
    let mut c = ChartBuilder::on(&right)
        .margin(10)
        .caption("error", ("sans-serif", 16))
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(xs, 0.0..1.0)?;
    c.configure_mesh().x_desc("epoch").y_desc("error").draw()?;
    type Series = (&'static str, RGBColor, fn(&EpochMetrics) -> f64);
    let series: &[Series] = if localise {
        &[
            ("val loc. error (gt class)", RED, |m| m.val_top1_err),
            ("val 1 - mean IoU", BLUE, |m| {
                1.0 - m.val_iou.unwrap_or(f64::NAN)
            }),
            ("train box miss", GREEN, |m| m.train_top1_err),
        ]
    } else {
        &[
            ("val top-1", RED, |m| m.val_top1_err),
            ("val top-5", BLUE, |m| m.val_top5_err),
            ("train top-1", GREEN, |m| m.train_top1_err),
        ]
    };
    for &(name, colour, f) in series {
        c.draw_series(LineSeries::new(
            history
                .iter()
                .map(|m| (m.epoch as f64, f(m)))
                .filter(|(_, v)| v.is_finite()),
            &colour,
        ))?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_svg_are_written() {
        let d = tempfile::tempdir().unwrap();
        let h: Vec<EpochMetrics> = (1..=3)
            .map(|e| EpochMetrics {
                epoch: e,
                train_loss: 2.0 / e as f64,
                train_top1_err: 0.5,
                val_top1_err: 0.6 - 0.1 * e as f64,
                val_top5_err: 0.2,
                val_iou: Some(0.25),
                lr: 0.01,
                seconds: 1.5,
            })
            .collect();
        write_csv(&h, false, &d.path().join("m.csv")).unwrap();
        let csv = std::fs::read_to_string(d.path().join("m.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[3], "3,0.666667,0.500000,0.300000,0.200000,1e-2,1.500");
        plot_svg(&h, false, "run", &d.path().join("m.svg")).unwrap();
        let svg = std::fs::read_to_string(d.path().join("m.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("val top-1") && svg.contains("polyline"));
        write_csv(&h, true, &d.path().join("l.csv")).unwrap();
        let csv = std::fs::read_to_string(d.path().join("l.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER_LOCALISE);
        assert_eq!(lines[3], "3,0.666667,0.500000,0.300000,0.250000,1e-2,1.500");
        plot_svg(&h, true, "run", &d.path().join("l.svg")).unwrap();
        let svg = std::fs::read_to_string(d.path().join("l.svg")).unwrap();
        assert!(svg.contains("box miss") && !svg.contains("top-5"));
    }
}
