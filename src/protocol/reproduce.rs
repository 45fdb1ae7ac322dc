//! The paper's transfer table (Table 11) as one command: for each benchmark the user has, check
//! the folder against `datasets/`, extract with the paper's settings (VOC: Q = 256..768 averaged;
//! Caltech: Q = 256, 384, 512 stacked; flips on), run the SVM protocol for net D, net E and the
//! D & E fusion, and write the table with the paper's numbers beside ours.

use std::path::{Path, PathBuf};

use super::{ProtocolName, Run, RunRecord, SplitSource, VocParams, run_caltech, run_voc};
use crate::aggregate::Aggregate;
use crate::classifier::FeatureSpec;
use crate::dataset::{Dataset, OpenOptions, SourceKind, SplitParams};
use crate::error::{Error, Param, Result};
use crate::extract::{ExtractParams, Extractor, ExtractorParams};
use crate::metrics::ApKind;
use crate::model::DeviceSpec;
use crate::model::config::LayerName;
use crate::store::{Store, aggregate_stores};
use crate::svm::{LinearSvmParams, SelectCParams};
use crate::util::Progress;
use linfa::ParamGuard;

/// One benchmark of Table 11.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Benchmark {
    /// PASCAL VOC 2007: trainval -> test, 11-point mAP.
    Voc2007,
    /// PASCAL VOC 2012: train -> val offline, area AP; when the devkit has the test images,
    /// also trainval -> test as the evaluation server's result files (the paper's number).
    Voc2012,
    /// Caltech-101: 3 splits, 30 train / 50 test per class, stacked scales.
    Caltech101,
    /// Caltech-256: 3 splits, 60 train / rest test per class, stacked scales.
    Caltech256,
}

impl Benchmark {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::Voc2007 => "VOC-2007",
            Benchmark::Voc2012 => "VOC-2012",
            Benchmark::Caltech101 => "Caltech-101",
            Benchmark::Caltech256 => "Caltech-256",
        }
    }

    /// The paper's Table 11 numbers for D, E and D & E (percent; std for Caltech).
    pub fn paper(self) -> [&'static str; 3] {
        match self {
            Benchmark::Voc2007 => ["89.3", "89.3", "89.7"],
            Benchmark::Voc2012 => ["89.0", "89.0", "89.3"],
            Benchmark::Caltech101 => ["91.8 ± 1.0", "92.3 ± 0.5", "92.7 ± 0.5"],
            Benchmark::Caltech256 => ["85.0 ± 0.2", "85.1 ± 0.3", "86.2 ± 0.3"],
        }
    }

    /// The paper's extraction scales and aggregation (Appendix B).
    pub fn paper_scales(self) -> (Vec<u32>, Aggregate) {
        match self {
            Benchmark::Voc2007 | Benchmark::Voc2012 => {
                (vec![256, 384, 512, 640, 768], Aggregate::Avg)
            }
            Benchmark::Caltech101 | Benchmark::Caltech256 => {
                (vec![256, 384, 512], Aggregate::Stack)
            }
        }
    }

    /// Expected class folders and least number of images (from `datasets/*.md`), for Caltech.
    fn expected_folder(self) -> Option<(usize, usize)> {
        match self {
            Benchmark::Caltech101 => Some((102, 9144)),
            Benchmark::Caltech256 => Some((257, 30607)),
            _ => None,
        }
    }

    /// VOC image sets (train, test) and their expected sizes.
    fn voc_sets(self) -> Option<[(&'static str, usize); 2]> {
        match self {
            Benchmark::Voc2007 => Some([("trainval", 5011), ("test", 4952)]),
            Benchmark::Voc2012 => Some([("train", 5717), ("val", 5823)]),
            _ => None,
        }
    }

    /// The image set scored only by the evaluation server, with its size, when `dir` has it:
    /// VOC 2012's `test` (its labels are not released), when `ImageSets/Main/test.txt` and its
    /// first image are there (the test images come in a separate download).
    fn server_set(self, dir: &Path) -> Option<(&'static str, usize)> {
        if self != Benchmark::Voc2012 {
            return None;
        }
        let list = std::fs::read_to_string(dir.join("ImageSets/Main/test.txt")).ok()?;
        let first = list.split_whitespace().next()?;
        dir.join("JPEGImages")
            .join(format!("{first}.jpg"))
            .is_file()
            .then_some(("test", 10991))
    }
}

/// Checks a benchmark folder against the expectations documented in `datasets/`, before hours
/// of extraction. Returns the dataset(s) listed: one for Caltech, (train, test) for VOC, and
/// VOC 2012's server test set third when the devkit has it.
pub fn check_folder(b: Benchmark, dir: &Path) -> Result<Vec<Dataset>> {
    let bad = |reason: String| Error::Data {
        path: dir.to_path_buf(),
        reason: format!("{reason}; see datasets/ for how to get {}", b.name()),
    };
    if let Some((classes, images)) = b.expected_folder() {
        let ds = Dataset::open_with(
            dir,
            &OpenOptions {
                kind: Some(SourceKind::Folder),
                ..Default::default()
            },
        )?;
        if ds.classes.len() != classes || ds.len() < images {
            return Err(bad(format!(
                "expected {classes} class folders and at least {images} images, found {} and {}",
                ds.classes.len(),
                ds.len()
            )));
        }
        return Ok(vec![ds]);
    }
    let sets = b.voc_sets().expect("VOC benchmarks have sets");
    let mut out = Vec::new();
    for (set, n) in sets.into_iter().chain(b.server_set(dir)) {
        let ds = Dataset::from_voc(dir, set)?;
        if ds.len() != n {
            return Err(bad(format!(
                "image set `{set}` has {} images, expected {n}",
                ds.len()
            )));
        }
        out.push(ds);
    }
    Ok(out)
}

/// One row of the table: our number for a net combination, or why there is none.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Benchmark.
    pub benchmark: Benchmark,
    /// `D`, `E` or `D & E`.
    pub nets: String,
    /// Our score, formatted (percent).
    pub ours: String,
    /// VOC 2012: the folder of the evaluation server's result files (trainval -> test), when
    /// the devkit has the test set.
    pub server_files: Option<PathBuf>,
    /// The run's results folder (with its `report.html`).
    pub results: PathBuf,
}

/// Checked parameters of a reproduction; obtained only from [`ReproduceParams::check`]. See
/// [`ReproduceParams`] for every field's meaning, default and range.
#[derive(Debug, Clone)]
pub struct ReproduceValidParams {
    benchmarks: Vec<(Benchmark, PathBuf)>,
    weights_d: Option<PathBuf>,
    weights_e: Option<PathBuf>,
    layer: Option<LayerName>,
    device: DeviceSpec,
    scales: Option<Vec<u32>>,
    work: PathBuf,
    out: PathBuf,
    skip_checks: bool,
    seed: u64,
}

impl ReproduceValidParams {
    /// The benchmarks with their folders.
    pub fn benchmarks(&self) -> &[(Benchmark, PathBuf)] {
        &self.benchmarks
    }
    /// The results folder.
    pub fn out(&self) -> &Path {
        &self.out
    }
}

/// The paper's Table 11 for the benchmarks and nets given: a builder. Call
/// [`check`](ReproduceParams::check) for the only way to [`ReproduceValidParams`], and
/// [`reproduce`] to run it.
#[derive(Debug, Clone)]
pub struct ReproduceParams(ReproduceValidParams);

impl Default for ReproduceParams {
    fn default() -> Self {
        Self::new()
    }
}

impl ReproduceParams {
    /// The defaults: no benchmark nor net yet, each net's default layer, the CPU, the paper's
    /// scales, stores in `reproduce-work`, results in `results/table11`, folder checks on,
    /// seed 0.
    pub fn new() -> Self {
        ReproduceParams(ReproduceValidParams {
            benchmarks: Vec::new(),
            weights_d: None,
            weights_e: None,
            layer: None,
            device: DeviceSpec::Cpu,
            scales: None,
            work: PathBuf::from("reproduce-work"),
            out: PathBuf::from("results/table11"),
            skip_checks: false,
            seed: 0,
        })
    }

    /// Adds a benchmark with its folder (a VOC devkit year folder, or a Caltech class-folder
    /// root). Each benchmark at most once; the table lists them in its own column order.
    pub fn benchmark(mut self, b: Benchmark, dir: impl Into<PathBuf>) -> Self {
        self.0.benchmarks.push((b, dir.into()));
        self
    }

    /// Weights of net D (VGG-16). At least one of D and E is required.
    pub fn weights_d(mut self, w: Option<PathBuf>) -> Self {
        self.0.weights_d = w;
        self
    }

    /// Weights of net E (VGG-19).
    pub fn weights_e(mut self, w: Option<PathBuf>) -> Self {
        self.0.weights_e = w;
        self
    }

    /// Descriptor layer. Default fc7, or pool5 for checkpoints without fc layers.
    pub fn layer(mut self, layer: Option<LayerName>) -> Self {
        self.0.layer = layer;
        self
    }

    /// Device. Default the CPU.
    pub fn device(mut self, device: DeviceSpec) -> Self {
        self.0.device = device;
        self
    }

    /// Scales instead of the paper's (quick runs; the table then says so). Default `None`: the
    /// paper's; otherwise valid extraction scales.
    pub fn scales(mut self, scales: Option<Vec<u32>>) -> Self {
        self.0.scales = scales;
        self
    }

    /// Working folder of the feature stores (resumable). Default `reproduce-work`.
    pub fn work(mut self, work: impl Into<PathBuf>) -> Self {
        self.0.work = work.into();
        self
    }

    /// Results folder. Default `results/table11`.
    pub fn out(mut self, out: impl Into<PathBuf>) -> Self {
        self.0.out = out.into();
        self
    }

    /// Skip the folder checks against `datasets/` (partial copies; results are then not
    /// comparable with the paper's). Default false.
    pub fn skip_checks(mut self, skip: bool) -> Self {
        self.0.skip_checks = skip;
        self
    }

    /// Seed of the splits, the C selection's folds and the solvers. Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Checks the parameters without I/O.
    pub fn check(self) -> Result<ReproduceValidParams> {
        let p = self.0;
        if p.weights_d.is_none() && p.weights_e.is_none() {
            return Err(Error::param(
                Param::Weights,
                "give the weights of net D and/or net E",
            ));
        }
        for (i, (b, _)) in p.benchmarks.iter().enumerate() {
            if p.benchmarks[..i].iter().any(|(x, _)| x == b) {
                return Err(Error::param(
                    Param::Benchmarks,
                    format!("{} is given twice", b.name()),
                ));
            }
        }
        if let Some(s) = &p.scales {
            ExtractorParams::new().scales(s.clone()).check()?;
        }
        Ok(p)
    }
}

/// Runs one benchmark with the extractor's nets (named `D`, `E` by `names`, in order) and
/// returns its table cells.
fn run_benchmark(
    b: Benchmark,
    dir: &Path,
    extractor: &mut Extractor,
    names: &[String],
    p: &ReproduceValidParams,
    progress: &dyn Progress,
) -> Result<Vec<Cell>> {
    // The image sets to extract: the folder, or the VOC sets (and the server's test set);
    // checked against datasets/ unless asked not to, and then extracted as listed.
    let sets: Vec<Option<&str>> = match b.voc_sets() {
        None => vec![None],
        Some(sets) => sets
            .iter()
            .chain(b.server_set(dir).as_ref())
            .map(|(s, _)| Some(*s))
            .collect(),
    };
    let mut checked = if p.skip_checks {
        Vec::new()
    } else {
        check_folder(b, dir)?
    }
    .into_iter();
    let (paper_scales, how) = b.paper_scales();
    let scales = p.scales.clone().unwrap_or(paper_scales);
    extractor.set_scales(&scales)?;
    let mut stores = Vec::new();
    for (i, set) in sets.into_iter().enumerate() {
        let store_dir = p.work.join(format!("{}-{}", b.name().to_lowercase(), i));
        let mut params = ExtractParams::new().inputs([dir]).out(&store_dir);
        if let Some(set) = set {
            params = params.voc_split(set);
        }
        let params = params.check()?;
        let extraction = match checked.next() {
            Some(ds) => extractor.extraction(&params, ds)?,
            None => extractor.prepare(&params)?,
        };
        let summary = extraction.run(progress)?;
        if !summary.failed.is_empty() {
            progress.note(&format!(
                "{}: {} inputs failed (left out)",
                b.name(),
                summary.failed.len()
            ));
        }
        stores.push(Store::open(&store_dir)?);
    }
    let svm = LinearSvmParams::new().seed(p.seed).check()?;
    let select = SelectCParams::new().seed(p.seed).check()?;
    let mut combos: Vec<(String, Vec<usize>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), vec![i]))
        .collect();
    if names.len() > 1 {
        combos.push((names.join(" & "), (0..names.len()).collect()));
    }
    let mut cells = Vec::new();
    for (name, idx) in combos {
        let out = p.out.join(format!(
            "{}-{}",
            b.name().to_lowercase(),
            name.replace(" & ", "")
        ));
        let desc = aggregate_stores(&stores, how, &idx)?;
        let features = FeatureSpec::of_store(&stores[0].manifest, how, &idx);
        let title = format!(
            "{} — {name}, {}",
            b.name(),
            super::describe_aggregation(how, &scales)
        );
        let run = Run {
            title: Some(title),
            description: String::new(),
            record: RunRecord {
                command: Vec::new(),
                features: stores.iter().map(|s| s.dir.clone()).collect(),
                aggregate: how,
                nets: idx.clone(),
                protocol: if b.voc_sets().is_some() {
                    ProtocolName::Voc
                } else {
                    ProtocolName::Caltech
                },
                benchmark: Some(format!("{} ({name})", b.name())),
                store_warnings: Vec::new(),
                warnings: Vec::new(),
                svm,
                select: select.clone(),
                result: None,
            },
            out,
            features,
            paper: ["D", "E", "D & E"]
                .iter()
                .position(|n| *n == name)
                .map(|row| b.paper()[row].to_string()),
        };
        let mut server_files = None;
        let ours = match b {
            Benchmark::Caltech101 | Benchmark::Caltech256 => {
                let split = SplitParams {
                    train_per_class: if b == Benchmark::Caltech101 { 30 } else { 60 },
                    test_per_class: if b == Benchmark::Caltech101 {
                        Some(50)
                    } else {
                        None
                    },
                    seed: p.seed,
                    splits: 3,
                    drop_classes: Vec::new(),
                };
                let o = run_caltech(&stores[0], &desc, &SplitSource::Sample(split), &run)?;
                for w in &o.warnings {
                    progress.note(&format!("{}: {w}", b.name()));
                }
                format!(
                    "{:.1} ± {:.1}",
                    100.0 * o.recall.mean,
                    100.0 * o.recall.std.unwrap_or(0.0)
                )
            }
            Benchmark::Voc2007 | Benchmark::Voc2012 => {
                let [(tr, _), (te, _)] = b.voc_sets().expect("VOC");
                let ap = if b == Benchmark::Voc2007 {
                    ApKind::Voc07
                } else {
                    ApKind::Area
                };
                let voc = VocParams {
                    devkit: dir.to_path_buf(),
                    train_set: tr.to_string(),
                    test_set: te.to_string(),
                    ap,
                };
                let o = run_voc(&voc, &desc, &run)?;
                if b.server_set(dir).is_some() {
                    // The paper's VOC-2012 number: trained on trainval, scored by the server.
                    let server = VocParams {
                        train_set: "trainval".into(),
                        test_set: "test".into(),
                        ..voc
                    };
                    let run = Run {
                        title: Some(format!(
                            "{} (trainval -> test, for the server)",
                            run.title.as_deref().unwrap_or_default()
                        )),
                        out: run.out.with_file_name(format!(
                            "{}-server",
                            run.out
                                .file_name()
                                .and_then(|n| n.to_str())
                                .unwrap_or("voc")
                        )),
                        ..run.clone()
                    };
                    let files = run_voc(&server, &desc, &run)?.result_files;
                    server_files = Some(super::record::relative_to(&files, &p.out));
                }
                let table = o.table.ok_or_else(|| Error::Data {
                    path: dir.to_path_buf(),
                    reason: format!("image set `{te}` has no labels"),
                })?;
                format!("{:.1}", 100.0 * table.mean)
            }
        };
        cells.push(Cell {
            benchmark: b,
            nets: name,
            ours,
            server_files,
            results: run.out.clone(),
        });
    }
    Ok(cells)
}

/// The paper's Table 11 layout with our numbers beside the paper's, as Markdown.
pub fn table11(cells: &[Cell], skipped: &[String]) -> String {
    let mut s = String::from(
        "# Table 11: transfer results (ours / paper)\n\n\
         | net | VOC-2007 mAP | VOC-2012 mAP | Caltech-101 recall | Caltech-256 recall |\n\
         |:--|--:|--:|--:|--:|\n",
    );
    let benches = [
        Benchmark::Voc2007,
        Benchmark::Voc2012,
        Benchmark::Caltech101,
        Benchmark::Caltech256,
    ];
    for (row, name) in ["D", "E", "D & E"].iter().enumerate() {
        s.push_str(&format!("| {name} |"));
        for b in benches {
            let ours = cells
                .iter()
                .find(|c| c.benchmark == b && c.nets == *name)
                .map_or("—", |c| c.ours.as_str());
            s.push_str(&format!(" {ours} / {} |", b.paper()[row]));
        }
        s.push('\n');
    }
    let server: Vec<&Cell> = cells.iter().filter(|c| c.server_files.is_some()).collect();
    if !server.is_empty() {
        s.push_str(
            "\nVOC-2012 (ours) is train -> val, scored offline; the paper's number is trainval -> \
             test from the evaluation server. Result files to submit (competition 2):\n",
        );
        for c in server {
            let p = c.server_files.as_deref().unwrap_or(Path::new(""));
            s.push_str(&format!("- {}: {}\n", c.nets, p.display()));
        }
    }
    if !skipped.is_empty() {
        s.push_str("\nSkipped:\n");
        for k in skipped {
            s.push_str(&format!("- {k}\n"));
        }
    }
    s
}

/// What `reproduce` produced.
#[derive(Debug, Clone)]
pub struct Table11 {
    /// Our numbers.
    pub cells: Vec<Cell>,
    /// What was not run, and why.
    pub skipped: Vec<String>,
    /// The table as Markdown (also written to `table11.md` in the results folder).
    pub markdown: String,
    /// Where the table was written.
    pub path: PathBuf,
}

/// The benchmarks in Table 11's column order.
pub const BENCHMARKS: [Benchmark; 4] = [
    Benchmark::Voc2007,
    Benchmark::Voc2012,
    Benchmark::Caltech101,
    Benchmark::Caltech256,
];

/// Runs the reproduction: loads the nets given, runs every benchmark given (telling
/// `progress` before each, and of every extraction), and writes `table11.md` and `report.html`
/// (the table linked to each run's own `report.html`).
pub fn reproduce(p: &ReproduceValidParams, progress: &dyn Progress) -> Result<Table11> {
    let mut skipped = Vec::new();
    let mut names = Vec::new();
    let mut weights = Vec::new();
    for (name, w) in [("D", &p.weights_d), ("E", &p.weights_e)] {
        match w {
            Some(w) => {
                weights.push(w.clone());
                names.push(name.to_string());
            }
            None => skipped.push(format!("net {name}: no weights given")),
        }
    }
    let ex = ExtractorParams::new()
        .weights(weights)
        .layer(p.layer)
        .device(p.device)
        .check()?;
    let mut extractor = Extractor::new(&ex)?;
    let mut cells = Vec::new();
    for b in BENCHMARKS {
        let Some((_, dir)) = p.benchmarks.iter().find(|(x, _)| *x == b) else {
            skipped.push(format!("{}: no folder given", b.name()));
            continue;
        };
        progress.note(&format!("== {} ({})", b.name(), dir.display()));
        cells.extend(run_benchmark(b, dir, &mut extractor, &names, p, progress)?);
    }
    let mut markdown = table11(&cells, &skipped);
    let notes: Vec<String> = p
        .scales
        .iter()
        .map(|s| {
            format!(
                "Scales overridden to {s:?} (the paper's: VOC 256..768 avg, Caltech 256,384,512 \
                 stack)."
            )
        })
        .collect();
    for n in &notes {
        markdown.push_str(&format!("\n{n}\n"));
    }
    let out = &p.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let path = out.join("table11.md");
    crate::util::write_atomic(&path, markdown.as_bytes())?;
    super::page::write_table11_page(out, &cells, &skipped, &notes)?;
    Ok(Table11 {
        cells,
        skipped,
        markdown,
        path,
    })
}
