//! The training log: one [`EpochMetrics`] row per epoch, written as CSV and plotted as an SVG
//! (training loss on the left, training and validation error on the right).

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::util::write_atomic;

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's training samples (with augmentation and dropout).
    pub train_loss: f64,
    /// Top-1 error on the training samples as seen in training (augmented, with dropout).
    pub train_top1_err: f64,
    /// Validation top-1 error (dense evaluation at the test scale).
    pub val_top1_err: f64,
    /// Validation top-5 error.
    pub val_top5_err: f64,
    /// Learning rate used during the epoch.
    pub lr: f64,
    /// Wall-clock seconds of the epoch (training, validation and saving).
    pub seconds: f64,
}

/// The CSV header of [`write_csv`].
pub const CSV_HEADER: &str = "epoch,train_loss,train_top1_err,val_top1_err,val_top5_err,lr,seconds";

/// Writes the history as CSV (errors as fractions in [0, 1]), atomically.
pub fn write_csv(history: &[EpochMetrics], path: &Path) -> Result<()> {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for m in history {
        s.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:e},{:.3}\n",
            m.epoch,
            m.train_loss,
            m.train_top1_err,
            m.val_top1_err,
            m.val_top5_err,
            m.lr,
            m.seconds
        ));
    }
    write_atomic(path, s.as_bytes())
}

/// Plots the history as an SVG (written atomically): loss per epoch, and top-1 / top-5 errors.
pub fn plot_svg(history: &[EpochMetrics], title: &str, path: &Path) -> Result<()> {
    let mut svg = String::new();
    draw(history, title, &mut svg).map_err(|e| Error::Data {
        path: path.to_path_buf(),
        reason: format!("cannot draw the plot: {e}"),
    })?;
    write_atomic(path, svg.as_bytes())
}

fn draw(
    history: &[EpochMetrics],
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
        .y_desc("cross-entropy")
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
    let series: [Series; 3] = [
        ("val top-1", RED, |m| m.val_top1_err),
        ("val top-5", BLUE, |m| m.val_top5_err),
        ("train top-1", GREEN, |m| m.train_top1_err),
    ];
    for (name, colour, f) in series {
        c.draw_series(LineSeries::new(
            history.iter().map(|m| (m.epoch as f64, f(m))),
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
                lr: 0.01,
                seconds: 1.5,
            })
            .collect();
        write_csv(&h, &d.path().join("m.csv")).unwrap();
        let csv = std::fs::read_to_string(d.path().join("m.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[3], "3,0.666667,0.500000,0.300000,0.200000,1e-2,1.500");
        plot_svg(&h, "run", &d.path().join("m.svg")).unwrap();
        let svg = std::fs::read_to_string(d.path().join("m.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("val top-1") && svg.contains("polyline"));
    }
}
