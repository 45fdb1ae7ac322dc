//! `report.html` of a protocol run and of `reproduce`, composed from [`crate::report::html`]'s
//! sections.
//!
//! A run's page: the title and headline (mean ± std over splits; the paper's number beside it
//! for a `reproduce` run), the per-class table, the per-class bars with error bars over splits,
//! VOC's precision/recall curves or Caltech's confusion matrix summed over splits, the
//! [`WORST`] worst-classified test images with thumbnails ([`crate::report::inspect`] says how
//! they are chosen), and the run's provenance (command, stores, each net's weights and hash,
//! configuration, layer, scales, flip, precision, aggregation, SVM and C-selection parameters,
//! the C chosen per split, vggfeat's version, the date; the whole record in JSON below). A VOC
//! test set without labels gets what there is: the chosen C, the result files, the provenance.
//!
//! Thumbnails are read from the images the store was extracted from: a store's ids are relative
//! to its manifest's `input.root` (Caltech), a devkit's to the devkit folder (VOC). An image that
//! cannot be read (moved, a member of a tar shard) is shown as a placeholder with the reason.
//!
//! The Table 11 page of `reproduce` puts our numbers beside the paper's and links each cell to
//! its run's own `report.html` (relative links: the results folder can be moved as a whole).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::ArrayView2;

use super::Run;
use super::record::{ProtocolResult, RunRecord, relative_to};
use super::reproduce::{BENCHMARKS, Benchmark, Cell};
use crate::error::Result;
use crate::image_io::{DecodeOptions, load_item};
use crate::metrics::ApResult;
use crate::report::html::{self, Html, Page};
use crate::report::inspect::{self, Misfit};
use crate::report::thumbnail::image_data_uri;
use crate::report::{ResultsTable, Scores, pr_curves_svg, thumbnail_data_uri};
use crate::store::{Manifest, read_manifest};

/// How many worst-classified test images a page shows.
pub const WORST: usize = 12;

/// Longest side of a thumbnail, in pixels.
const THUMB: u32 = 128;

/// An image id's thumbnail as a `data:` URI, or why there is none.
type ThumbOf<'a> = dyn Fn(&str) -> std::result::Result<String, String> + 'a;

/// What a protocol run has to show besides its table.
pub(crate) enum Diagnostics<'a> {
    /// Caltech: the test images' decision values per split; ids are the store's (`manifest`),
    /// whose files are found by listing its inputs again, as `neighbours` finds them (a table's
    /// ids resolve against its `--root`, a tar shard's inside the shard).
    Caltech {
        scores: &'a [Scores],
        manifest: &'a crate::store::Manifest,
    },
    /// VOC: the test set's decision values, its labels (+1 / -1 / 0) when it has any, the
    /// per-class APs with their curves; ids relative to `image_root` (the devkit).
    Voc {
        scores: &'a Scores,
        labels: Option<ArrayView2<'a, i8>>,
        aps: &'a [(String, ApResult)],
        image_root: &'a Path,
    },
}

/// `vggfeat <version>, <UTC date and time>`: the line under a page's title.
fn generated() -> String {
    format!(
        "vggfeat {}, {}",
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// Writes `report.html` into `run.out` for a run whose (absolute) record is `record`, whose
/// table is `table` (`None`: a test set without labels), and returns its path.
pub(crate) fn write_run_page(
    run: &Run,
    record: &RunRecord,
    table: Option<&ResultsTable>,
    diag: Diagnostics<'_>,
) -> Result<PathBuf> {
    let title = table
        .map(|t| t.title.clone())
        .or_else(|| run.title.clone())
        .unwrap_or_else(|| run.description.clone());
    let mut page = Page::new(&title, &generated());
    let paper = run.paper.as_deref();
    match table {
        Some(t) => {
            page.section(
                "results",
                "Results",
                html::headline(t, paper).then(html::results_table(t, paper)),
            );
            page.section(
                "per-class",
                "Per class",
                html::inline_svg(&t.bar_chart_svg()?),
            );
        }
        None => {
            let mut text = String::from(
                "The test set has no labels (the evaluation server holds them): no scores here. \
                 The devkit's result files for the server are under results/.",
            );
            if let Some(ProtocolResult::Voc { c, .. }) = &record.result {
                text.push_str(&format!(" Chosen C: {c}."));
            }
            page.section("results", "Results", html::paragraph(&text));
        }
    }
    let worst: Vec<Misfit> = match &diag {
        Diagnostics::Caltech { scores, .. } => {
            let m = inspect::confusion_matrix(scores)?;
            page.section("confusion", "Confusion matrix", html::confusion_matrix(&m));
            inspect::worst_single_label(scores, WORST)?
        }
        Diagnostics::Voc {
            scores,
            labels,
            aps,
            ..
        } => {
            if !aps.is_empty() {
                let curves: Vec<(&str, &ApResult)> =
                    aps.iter().map(|(n, a)| (n.as_str(), a)).collect();
                page.section(
                    "pr-curves",
                    "Precision/recall curves",
                    html::inline_svg(&pr_curves_svg(&title, &curves)?),
                );
            }
            match labels {
                Some(l) => inspect::worst_binary(scores, *l, WORST)?,
                None => Vec::new(),
            }
        }
    };
    if !worst.is_empty() {
        let mut cache: HashMap<&str, std::result::Result<String, String>> = HashMap::new();
        let thumb: Box<ThumbOf> = match &diag {
            Diagnostics::Voc { image_root, .. } => {
                let root = image_root.to_path_buf();
                Box::new(move |id| {
                    thumbnail_data_uri(&root.join(id), THUMB).map_err(|e| e.to_string())
                })
            }
            Diagnostics::Caltech { manifest, .. } => {
                let opts = DecodeOptions {
                    max_pixels: manifest.max_pixels,
                    ..Default::default()
                };
                let ids = worst.iter().map(|m| m.id.as_str()).collect();
                let items = crate::store::items_by_id(manifest, &ids);
                Box::new(move |id| match &items {
                    Err(why) => Err(format!("cannot read the store's inputs: {why}")),
                    Ok(items) => match items.get(id) {
                        None => Err("no longer among the store's inputs".to_string()),
                        Some(item) => load_item(item, &opts)
                            .and_then(|img| image_data_uri(img, THUMB))
                            .map_err(|e| e.to_string()),
                    },
                })
            }
        };
        for m in &worst {
            cache.entry(m.id.as_str()).or_insert_with(|| thumb(&m.id));
        }
        let cards: Vec<html::Thumbed<'_>> = worst
            .iter()
            .map(|m| (m, cache[m.id.as_str()].clone()))
            .collect();
        let how = match diag {
            Diagnostics::Caltech { .. } => {
                "The test images with the smallest margin (the true class's decision value minus \
                 the best other class's), over all splits."
            }
            Diagnostics::Voc { .. } => {
                "The (image, class) pairs with the smallest margin y·s: positives scored lowest \
                 and negatives scored highest; difficult images left out."
            }
        };
        page.section(
            "worst",
            "Worst-classified test images",
            html::note(how).then(html::misfits(&cards)),
        );
    }
    page.section("provenance", "Provenance", provenance(record, &run.out));
    let path = run.out.join("report.html");
    crate::util::write_atomic(&path, page.render().as_bytes())?;
    Ok(path)
}

/// A JSON value in one line, `k=v` for an object's fields (except `skip`).
fn compact(v: &serde_json::Value, skip: &[&str]) -> String {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={}", compact(v, &[])))
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The store's manifest: the Caltech record's, else the first store's on disk.
fn manifest_of(record: &RunRecord) -> Option<Manifest> {
    match &record.result {
        Some(ProtocolResult::Caltech { store_manifest, .. }) => Some((**store_manifest).clone()),
        _ => record.features.first().and_then(|f| read_manifest(f).ok()),
    }
}

/// The provenance section: the facts a reader looks for, then the whole record as JSON (paths
/// relative to `out`, as in `metrics.json`).
fn provenance(record: &RunRecord, out: &Path) -> Html {
    let rel = record.relative_to(out);
    let mut f: Vec<(String, String)> = Vec::new();
    let command = if rel.command.is_empty() {
        "(a library call)".to_string()
    } else {
        // An argument naming the results folder itself is `` relative to it: shown as `.`.
        let args: Vec<&str> = rel
            .command
            .iter()
            .map(|a| if a.is_empty() { "." } else { a.as_str() })
            .collect();
        args.join(" ")
    };
    f.push(("command".into(), command));
    let stores: Vec<String> = rel
        .features
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    f.push(("stores".into(), stores.join(", ")));
    if let Some(b) = &record.benchmark {
        f.push(("benchmark".into(), b.clone()));
    }
    f.push(("protocol".into(), record.protocol.to_string()));
    if let Some(m) = manifest_of(record) {
        for &i in &record.nets {
            let Some(n) = m.nets.get(i) else { continue };
            let name = Path::new(&n.weights)
                .file_name()
                .map_or(n.weights.clone(), |s| s.to_string_lossy().into_owned());
            f.push((
                format!("net {i}"),
                format!(
                    "VGG-{} {} (dim {}), {} preprocessing, {}; weights {name}, sha256 {}",
                    n.config, n.layer, n.dim, n.preprocess, n.precision, n.sha256
                ),
            ));
        }
        let q: Vec<String> = m.scales.iter().map(u32::to_string).collect();
        f.push((
            "scales".into(),
            format!(
                "Q = {}, flip {}",
                q.join(", "),
                if m.flip { "on" } else { "off" }
            ),
        ));
        f.push((
            "store made by".into(),
            format!("vggfeat {}", m.tool_version),
        ));
    }
    f.push(("aggregation".into(), record.aggregate.to_string()));
    let nets: Vec<String> = record.nets.iter().map(usize::to_string).collect();
    f.push(("nets used".into(), nets.join(" & ")));
    let json = |v: serde_json::Result<serde_json::Value>| v.unwrap_or_default();
    let svm = json(serde_json::to_value(record.svm));
    f.push(("SVM".into(), compact(&svm, &["c"])));
    let select = json(serde_json::to_value(&record.select));
    f.push(("C selection".into(), compact(&select, &[])));
    match &record.result {
        Some(ProtocolResult::Caltech {
            splits,
            failed_inputs_left_out,
            ..
        }) => {
            for s in splits {
                f.push((
                    format!("split {}", s.split),
                    format!(
                        "C = {}, mean class recall {:.1} %, accuracy {:.1} %, {} train / {} test \
                         images, {:.1} s",
                        s.c,
                        100.0 * s.mean_class_recall,
                        100.0 * s.accuracy,
                        s.n_train,
                        s.n_test,
                        s.seconds
                    ),
                ));
            }
            if *failed_inputs_left_out > 0 {
                f.push((
                    "failed inputs".into(),
                    format!("{failed_inputs_left_out} (no descriptor, left out)"),
                ));
            }
        }
        Some(ProtocolResult::Voc {
            c,
            train_set,
            test_set,
            ..
        }) => {
            f.push(("C".into(), c.to_string()));
            f.push(("image sets".into(), format!("{train_set} -> {test_set}")));
        }
        None => {}
    }
    for w in &record.store_warnings {
        f.push(("store warning".into(), w.clone()));
    }
    f.push(("vggfeat".into(), env!("CARGO_PKG_VERSION").into()));
    f.push(("date".into(), generated()));
    let value = serde_json::to_value(&rel).unwrap_or(serde_json::Value::Null);
    html::facts(&f).then(html::json_details(
        "the run record (as in metrics.json)",
        &value,
    ))
}

/// Writes `report.html` of `reproduce` into `out`: Table 11 with our number beside the paper's
/// in every cell, each linked to its run's `report.html`; what was skipped; `notes` (Markdown
/// lines, shown as text). Returns its path.
pub(crate) fn write_table11_page(
    out: &Path,
    cells: &[Cell],
    skipped: &[String],
    notes: &[String],
) -> Result<PathBuf> {
    let mut page = Page::new("Table 11: transfer results (ours / paper)", &generated());
    let mut header = vec!["net"];
    let names: Vec<String> = BENCHMARKS
        .iter()
        .map(|b| {
            let what = match b {
                Benchmark::Voc2007 | Benchmark::Voc2012 => "mAP",
                Benchmark::Caltech101 | Benchmark::Caltech256 => "recall",
            };
            format!("{} {what}", b.name())
        })
        .collect();
    header.extend(names.iter().map(String::as_str));
    let mut rows = Vec::new();
    for (row, net) in ["D", "E", "D & E"].iter().enumerate() {
        let mut r = vec![Html::text(net)];
        for b in BENCHMARKS {
            let cell = cells.iter().find(|c| c.benchmark == b && c.nets == *net);
            let ours = match cell {
                Some(c) => {
                    let report = relative_to(&c.results.join("report.html"), out);
                    html::link(&report.display().to_string(), &c.ours)
                }
                None => Html::text("—"),
            };
            r.push(ours.then(Html::text(&format!(" / {}", b.paper()[row]))));
        }
        rows.push(r);
    }
    let mut body = html::table(&header, &rows).then(html::note(
        "Each of our numbers links to its run's own report.html (per-class results, plots, \
         worst-classified images, provenance). Caltech: mean class recall, mean ± std over 3 \
         splits; VOC: mAP.",
    ));
    let server: Vec<&Cell> = cells.iter().filter(|c| c.server_files.is_some()).collect();
    if !server.is_empty() {
        body = body.then(html::paragraph(
            "VOC-2012 (ours) is train -> val, scored offline; the paper's number is trainval -> \
             test from the evaluation server. Result files to submit (competition 2):",
        ));
        let rows: Vec<Vec<Html>> = server
            .iter()
            .map(|c| {
                let p = c.server_files.as_deref().unwrap_or(Path::new(""));
                vec![Html::text(&c.nets), Html::text(&p.display().to_string())]
            })
            .collect();
        body = body.then(html::table(&["net", "result files"], &rows));
    }
    page.section("table11", "Table 11", body);
    if !skipped.is_empty() || !notes.is_empty() {
        let mut b = Html::default();
        for s in skipped {
            b = b.then(html::paragraph(&format!("Skipped: {s}")));
        }
        for n in notes {
            b = b.then(html::paragraph(n));
        }
        page.section("notes", "Notes", b);
    }
    let runs: Vec<Vec<Html>> = cells
        .iter()
        .map(|c| {
            let report = relative_to(&c.results.join("report.html"), out);
            vec![
                Html::text(c.benchmark.name()),
                Html::text(&c.nets),
                html::link(&report.display().to_string(), &report.display().to_string()),
            ]
        })
        .collect();
    page.section(
        "runs",
        "Runs",
        html::table(&["benchmark", "nets", "report"], &runs).then(html::note(&generated())),
    );
    let path = out.join("report.html");
    crate::util::write_atomic(&path, page.render().as_bytes())?;
    Ok(path)
}
