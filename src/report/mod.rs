//! Results of a transfer experiment as files: a per-class table in Markdown (`table.md`) and CSV
//! (`table.csv`), the scores with the run's parameters as JSON (`metrics.json`), a per-class bar
//! chart (`per_class.svg`) and, for VOC, precision/recall curves (`pr_curves.svg`); per image,
//! the classifiers' decision values (`scores_<split>.csv`: `id,label,<one column per class>`,
//! labels joined as in exports, values in shortest round-trip form).
//!
//! Formats, fixed so that tables can be compared across runs (golden files in `tests/golden/`):
//!
//! * Markdown: scores in percent with one decimal, as the paper reports them; the mean in bold;
//!   a `± std` column when per-class standard deviations over splits are given; a final line
//!   `mean over N splits: m ± s %` when the mean over splits is given.
//! * CSV: header `class,score,std`, scores as fractions in Rust's shortest round-trip notation,
//!   `std` empty when absent; then a row `mean`, and a row `mean_over_splits` when given; then one
//!   row with an empty score per class that could not be scored.
//! * Classes that could not be scored are listed under the Markdown table with the reason.
//!
//! Plots are SVG written by `plotters` (text is left to the SVG viewer: no font files needed).
//!
//! Beside these files, [`html`] makes `report.html`, one self-contained page of a run (these
//! plots inline, the confusion matrix and worst-classified images of [`inspect`], thumbnails,
//! provenance).

pub mod html;
pub mod inspect;
pub mod thumbnail;

pub use thumbnail::thumbnail_data_uri;

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::metrics::{ApResult, MeanStd};

/// The score of one class.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassScore {
    /// Class name.
    pub name: String,
    /// Score as a fraction in [0, 1] (AP or recall), or its mean over splits.
    pub score: f64,
    /// Sample standard deviation of the score over splits, if several.
    pub std: Option<f64>,
}

impl ClassScore {
    /// A class score without a standard deviation.
    pub fn new(name: impl Into<String>, score: f64) -> Self {
        Self {
            name: name.into(),
            score,
            std: None,
        }
    }
}

/// A per-class results table: what the caller measured, ready to be written out.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResultsTable {
    /// Title, e.g. `Caltech-101, VGG-D, 30 training images per class`.
    pub title: String,
    /// Name of the measure, e.g. `AP` or `recall`.
    pub metric: String,
    /// One row per class, in the order to print.
    pub classes: Vec<ClassScore>,
    /// The headline number: mAP or mean class recall (as the caller computed it, e.g. excluding
    /// classes without test items).
    pub mean: f64,
    /// Mean ± std of the headline number over random splits, if several.
    pub splits: Option<MeanStd>,
    /// Classes that could not be scored (no test images, no positives, ...), with the reason;
    /// they are not in the mean.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unscored: Vec<Unscored>,
}

/// A class the table could not score, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unscored {
    /// Class name.
    pub name: String,
    /// Why it has no score (e.g. `no test images`).
    pub reason: String,
}

impl ResultsTable {
    /// A table from per-class scores and their mean. Errors if a score or the mean is not
    /// finite.
    pub fn new(
        title: impl Into<String>,
        metric: impl Into<String>,
        classes: Vec<ClassScore>,
        mean: f64,
    ) -> Result<Self> {
        if let Some(c) = classes.iter().find(|c| !c.score.is_finite()) {
            return Err(Error::Usage(format!(
                "score of class {} is {}",
                c.name, c.score
            )));
        }
        if !mean.is_finite() {
            return Err(Error::Usage(format!("mean score is {mean}")));
        }
        Ok(Self {
            title: title.into(),
            metric: metric.into(),
            classes,
            mean,
            splits: None,
            unscored: Vec::new(),
        })
    }

    /// Adds classes that could not be scored (listed after the table, not in the mean).
    pub fn with_unscored(mut self, unscored: Vec<Unscored>) -> Self {
        self.unscored = unscored;
        self
    }

    /// Adds the mean ± std of the headline number over splits.
    pub fn with_splits(mut self, splits: MeanStd) -> Self {
        self.splits = Some(splits);
        self
    }

    fn has_std(&self) -> bool {
        self.classes.iter().any(|c| c.std.is_some())
    }

    /// The table in Markdown (see the [module docs](self) for the format).
    pub fn to_markdown(&self) -> String {
        let pct = |v: f64| format!("{:.1}", 100.0 * v);
        let mut s = format!("# {}\n\n", md_escape(&self.title));
        let metric = md_escape(&self.metric);
        if self.has_std() {
            s += &format!("| class | {metric} (%) | ± std |\n|:--|--:|--:|\n");
        } else {
            s += &format!("| class | {metric} (%) |\n|:--|--:|\n");
        }
        for c in &self.classes {
            s += &format!("| {} | {} |", md_escape(&c.name), pct(c.score));
            if self.has_std() {
                s += &format!(" {} |", c.std.map(pct).unwrap_or_default());
            }
            s.push('\n');
        }
        s += &format!("| **mean** | **{}** |", pct(self.mean));
        if self.has_std() {
            s += " |";
        }
        s.push('\n');
        if let Some(sp) = &self.splits {
            s += &format!("\nmean over {} splits: {} %\n", sp.n, split_text(sp));
        }
        if !self.unscored.is_empty() {
            s += "\nNot scored (left out of the mean):\n\n";
            for u in &self.unscored {
                s += &format!("- {}: {}\n", md_escape(&u.name), md_escape(&u.reason));
            }
        }
        s
    }

    /// The table as CSV (see the [module docs](self) for the format).
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        // Writing to a Vec cannot fail.
        w.write_record(["class", "score", "std"]).unwrap();
        for c in &self.classes {
            w.write_record([c.name.as_str(), &c.score.to_string(), &num(c.std)])
                .unwrap();
        }
        w.write_record(["mean", &self.mean.to_string(), ""])
            .unwrap();
        if let Some(sp) = &self.splits {
            w.write_record(["mean_over_splits", &sp.mean.to_string(), &num(sp.std)])
                .unwrap();
        }
        // Unscored classes: their name and an empty score.
        for u in &self.unscored {
            w.write_record([u.name.as_str(), "", ""]).unwrap();
        }
        String::from_utf8(w.into_inner().unwrap()).expect("CSV of UTF-8 strings")
    }

    /// The scores and the caller's `parameters` (the run's configuration) as one JSON value:
    /// `{title, metric, classes: [{name, score, std}], mean, splits, parameters}`.
    pub fn to_json(&self, parameters: &impl serde::Serialize) -> serde_json::Value {
        serde_json::json!({
            "title": self.title,
            "metric": self.metric,
            "classes": self.classes,
            "mean": self.mean,
            "splits": self.splits,
            "unscored": self.unscored,
            "parameters": parameters,
        })
    }

    /// The per-class bar chart as an SVG document: one horizontal bar per class (in table order,
    /// top to bottom), the score in percent, a vertical line at the mean; where a class has a
    /// standard deviation over splits, an error bar from score - std to score + std (clipped to
    /// 0..100).
    pub fn bar_chart_svg(&self) -> Result<String> {
        let k = self.classes.len();
        let height = 120 + 18 * k as u32;
        let longest = self
            .classes
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size((20 + 7 * longest) as u32)
                .build_cartesian_2d(0.0..100.0, (0..k.max(1) - 1).into_segmented())
                .map_err(plot_err)?;
            // Class 0 at the top: row `i` of the table is drawn at segment `k - 1 - i`.
            let names: Vec<&str> = self.classes.iter().map(|c| c.name.as_str()).collect();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .light_line_style(TRANSPARENT)
                .x_labels(11)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_labels(k.max(1))
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(s) if *s < k => names[k - 1 - s].to_string(),
                    _ => String::new(),
                })
                .x_desc(format!(
                    "{} (%); red line: mean {:.1}{}",
                    self.metric,
                    100.0 * self.mean,
                    if self.has_std() {
                        "; error bars: ± std over splits"
                    } else {
                        ""
                    }
                ))
                .draw()
                .map_err(plot_err)?;
            chart
                .draw_series(self.classes.iter().enumerate().map(|(i, c)| {
                    let s = k - 1 - i;
                    let mut bar = Rectangle::new(
                        [
                            (0.0, SegmentValue::Exact(s)),
                            (100.0 * c.score, SegmentValue::Exact(s + 1)),
                        ],
                        BLUE.mix(0.6).filled(),
                    );
                    bar.set_margin(2, 2, 0, 0);
                    bar
                }))
                .map_err(plot_err)?;
            // Error bars: a line over ± std at the bar's centre, with 8-pixel caps.
            let bars = self.classes.iter().enumerate().filter_map(|(i, c)| {
                let sd = c.std?;
                let y = SegmentValue::CenterOf(k - 1 - i);
                let lo = (100.0 * (c.score - sd)).max(0.0);
                let hi = (100.0 * (c.score + sd)).min(100.0);
                Some((lo, hi, y))
            });
            for (lo, hi, y) in bars {
                let cap = |x: f64| {
                    EmptyElement::at((x, y.clone()))
                        + PathElement::new([(0, -4), (0, 4)], BLACK.stroke_width(1))
                };
                chart
                    .draw_series([PathElement::new(
                        [(lo, y.clone()), (hi, y.clone())],
                        BLACK.stroke_width(1),
                    )])
                    .map_err(plot_err)?;
                chart.draw_series([cap(lo), cap(hi)]).map_err(plot_err)?;
            }
            let m = 100.0 * self.mean;
            chart
                .draw_series(LineSeries::new(
                    [(m, SegmentValue::Exact(0)), (m, SegmentValue::Last)],
                    RED.stroke_width(2),
                ))
                .map_err(plot_err)?;
            root.present().map_err(plot_err)?;
        }
        Ok(svg)
    }
}

/// Precision/recall curves of several classes in one SVG document, each labelled with its AP.
/// `curves` pairs a class name with its [`ApResult`].
pub fn pr_curves_svg(title: &str, curves: &[(&str, &ApResult)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 700)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0.0..1.0, 0.0..1.02)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .x_desc("recall")
            .y_desc("precision")
            .draw()
            .map_err(plot_err)?;
        for (i, (name, r)) in curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points = r.curve.iter().map(|p| (p.recall, p.precision));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(plot_err)?
                .label(format!("{name} (AP {:.1})", 100.0 * r.ap))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerLeft)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// The files [`write_results`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `table.md`.
    pub markdown: PathBuf,
    /// `table.csv`.
    pub csv: PathBuf,
    /// `metrics.json`.
    pub json: PathBuf,
    /// `per_class.svg`.
    pub bar_chart: PathBuf,
}

/// Writes `table.md`, `table.csv`, `metrics.json` (with `parameters`) and `per_class.svg` into
/// `dir`, creating it if needed.
pub fn write_results(
    dir: &Path,
    table: &ResultsTable,
    parameters: &impl serde::Serialize,
) -> Result<ReportFiles> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let files = ReportFiles {
        markdown: dir.join("table.md"),
        csv: dir.join("table.csv"),
        json: dir.join("metrics.json"),
        bar_chart: dir.join("per_class.svg"),
    };
    write(&files.markdown, table.to_markdown())?;
    write(&files.csv, table.to_csv())?;
    let json = serde_json::to_string_pretty(&table.to_json(parameters))
        .map_err(|e| Error::Internal(format!("parameters not serialisable: {e}")))?;
    write(&files.json, json + "\n")?;
    write(&files.bar_chart, table.bar_chart_svg()?)?;
    Ok(files)
}

/// Writes decision values as `path`, a CSV with header `id,label,<classes...>` (`labels` when
/// an image has several, joined by `;`), one row per image.
pub fn write_scores(path: &Path, s: &Scores) -> Result<()> {
    let rows: Vec<Vec<f32>> = s.values.rows().into_iter().map(|r| r.to_vec()).collect();
    crate::store::export::write_named_csv(path, &s.ids, &s.labels, &s.classes, &rows)
}

/// The decision values of a set of test images: one row per image, one column per class.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Which test set (`split0`, `test`).
    pub set: String,
    /// Image ids, in row order.
    pub ids: Vec<String>,
    /// Their labels.
    pub labels: Vec<Vec<String>>,
    /// Class names, in column order.
    pub classes: Vec<String>,
    /// Decision values, (images, classes).
    pub values: ndarray::Array2<f32>,
}

/// Whether `name` is `<prefix><N><suffix>` or `<prefix><word><suffix>` as a protocol names its
/// per-split files (`split0.csv`, `scores_test.csv`, `model_trainval.safetensors`).
fn is_split_file(name: &str, prefix: &str, suffix: &str, digits_only: bool) -> bool {
    name.strip_prefix(prefix)
        .and_then(|r| r.strip_suffix(suffix))
        .is_some_and(|n| {
            !n.is_empty()
                && n.bytes().all(|b| {
                    b.is_ascii_digit() || (!digits_only && (b.is_ascii_alphanumeric() || b == b'_'))
                })
        })
}

/// Removes the files an earlier run of a protocol wrote into `dir` (the tables, `metrics.json`,
/// the plots, `report.html`, `split<N>.csv`, `scores_<split>.csv`, `model_<split>.safetensors`, and the VOC
/// result files `results/VOC*/Main/comp2_cls_*.txt`), so that a reused results folder holds only
/// this run's results; other files are left alone. Errors if `dir` exists and is not a folder.
pub fn clear_results(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "the results folder {} exists and is not a folder",
            dir.display()
        )));
    }
    let remove = |p: &Path| std::fs::remove_file(p).map_err(|e| Error::io(p, e));
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ours = matches!(
            name,
            "table.md"
                | "table.csv"
                | "metrics.json"
                | "per_class.svg"
                | "pr_curves.svg"
                | "report.html"
        ) || is_split_file(name, "split", ".csv", true)
            || is_split_file(name, "scores_", ".csv", false)
            || is_split_file(name, "model_", ".safetensors", false);
        if ours && p.is_file() {
            remove(&p)?;
        }
    }
    let results = dir.join("results");
    if results.is_dir() {
        for e in std::fs::read_dir(&results).map_err(|e| Error::io(&results, e))? {
            let year = e.map_err(|e| Error::io(&results, e))?.path();
            let main = year.join("Main");
            let is_voc = year
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("VOC"));
            if !is_voc || !main.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&main).map_err(|e| Error::io(&main, e))? {
                let p = f.map_err(|e| Error::io(&main, e))?.path();
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("comp2_cls_") && name.ends_with(".txt") && p.is_file() {
                    remove(&p)?;
                }
            }
        }
    }
    Ok(())
}

/// Writes the precision/recall curves of [`pr_curves_svg`] to `path`.
pub fn write_pr_curves(path: &Path, title: &str, curves: &[(&str, &ApResult)]) -> Result<()> {
    write(path, pr_curves_svg(title, curves)?)
}

fn write(path: &Path, contents: String) -> Result<()> {
    crate::util::write_atomic(path, contents.as_bytes())
}

fn plot_err<E: std::error::Error>(e: E) -> Error {
    Error::Internal(format!("plotting failed: {e}"))
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn split_text(sp: &MeanStd) -> String {
    match sp.std {
        Some(s) => format!("{:.1} ± {:.1}", 100.0 * sp.mean, 100.0 * s),
        None => format!("{:.1}", 100.0 * sp.mean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ApKind, average_precision};

    fn table() -> ResultsTable {
        ResultsTable::new(
            "t",
            "AP",
            vec![ClassScore::new("cat", 0.5), ClassScore::new("dog", 0.25)],
            0.375,
        )
        .unwrap()
    }

    #[test]
    fn rejects_non_finite_scores() {
        assert!(ResultsTable::new("t", "AP", vec![ClassScore::new("a", f64::NAN)], 0.5).is_err());
        assert!(ResultsTable::new("t", "AP", vec![], f64::INFINITY).is_err());
    }

    #[test]
    fn json_carries_parameters() {
        let v = table().to_json(&serde_json::json!({"C": 0.1, "net": "vgg16"}));
        assert_eq!(v["parameters"]["C"], 0.1);
        assert_eq!(v["classes"][1]["name"], "dog");
        assert_eq!(v["mean"], 0.375);
        assert!(v["splits"].is_null());
    }

    #[test]
    fn svg_plots_name_every_class() {
        let svg = table().bar_chart_svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        for name in ["cat", "dog", "mean 37.5"] {
            assert!(svg.contains(name), "{name} missing");
        }
        let r = average_precision(&[0.9, 0.1, 0.5], &[1, -1, 1], ApKind::Area).unwrap();
        let svg = pr_curves_svg("VOC", &[("bird", &r)]).unwrap();
        assert!(svg.contains("bird (AP 100.0)"));
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn writes_all_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let f = write_results(&out, &table(), &serde_json::json!({"seed": 1})).unwrap();
        for p in [&f.markdown, &f.csv, &f.json, &f.bar_chart] {
            assert!(p.is_file(), "{}", p.display());
        }
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&f.json).unwrap()).unwrap();
        assert_eq!(j["parameters"]["seed"], 1);
        let err = write_results(&f.csv.join("x"), &table(), &serde_json::Value::Null);
        assert!(err.is_err(), "a file as parent folder must fail");
    }
}
