//! Benchmark of the SVM stage alone, on features exported as CSV: C selection on a 20 % hold-out,
//! one-vs-rest training on the whole training split, and test scoring by mean class recall — the
//! Caltech protocol. `scripts/bench_svm.py` does the same with scikit-learn's `LinearSVC`, and
//! `scripts/bench_svm.sh` runs both on the same data and compares.
//!
//! ```text
//! cargo run --release --example svm_bench -- --features feats.csv \
//!     [--split split.csv | --train-per-class 30 --test-per-class 50] [--seed 0] \
//!     [--grid 0.01,0.1,1,10,100,1000] [--eps 0.1] [--loss squared-hinge|hinge] \
//!     [--binary-only] [--json out.json] [--write-split partition.csv]
//! ```
//!
//! `feats.csv` has the header `id,label,d0,d1,...` (as `vggfeat export --csv` writes); `split.csv`
//! has `id,set` with `set` = `train` or `test`. Without a split file, each class's items are
//! shuffled with the seed and the first `--train-per-class` go to training, the next (up to)
//! `--test-per-class` to test. `--binary-only` times a single binary problem instead (class 0
//! against the rest on the whole training split, C = 1), for comparing one solver run with
//! liblinear's. The number of threads is rayon's (`RAYON_NUM_THREADS`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use linfa::prelude::*;
use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use vggfeat::metrics::mean_class_recall;
use vggfeat::svm::{LinearSvmParams, Loss, SelectCParams, Validation};

#[derive(Parser)]
struct Args {
    /// Features CSV: `id,label,d0,d1,...`.
    #[arg(long)]
    features: PathBuf,
    /// Split CSV: `id,set` with set `train` or `test`.
    #[arg(long)]
    split: Option<PathBuf>,
    /// Training items per class for the seeded split (without --split).
    #[arg(long, default_value_t = 30)]
    train_per_class: usize,
    /// Test items per class (at most) for the seeded split.
    #[arg(long, default_value_t = 50)]
    test_per_class: usize,
    /// Seed of the split, the hold-out and the solver.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Comma-separated grid of C.
    #[arg(long, default_value = "0.01,0.1,1,10,100,1000")]
    grid: String,
    /// Solver tolerance (liblinear's -e; sklearn's tol).
    #[arg(long, default_value_t = 0.1)]
    eps: f64,
    /// Loss: squared-hinge (LinearSVC's default) or hinge.
    #[arg(long, default_value = "squared-hinge")]
    loss: String,
    /// Time one binary problem (class 0 vs rest, C = 1) instead of the full protocol.
    #[arg(long)]
    binary_only: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the partition used (`id,set` with set train / val / test, val = the C-selection
    /// hold-out) here, for `scripts/bench_svm.py`.
    #[arg(long)]
    write_split: Option<PathBuf>,
}

struct Features {
    ids: Vec<String>,
    labels: Vec<usize>,
    classes: Vec<String>,
    x: Array2<f32>,
}

fn read_features(path: &PathBuf) -> anyhow::Result<Features> {
    let mut rdr = csv::Reader::from_path(path)?;
    let header = rdr.headers()?.clone();
    anyhow::ensure!(
        header.len() > 2 && &header[0] == "id" && &header[1] == "label",
        "{}: header must be id,label,d0,...",
        path.display()
    );
    let d = header.len() - 2;
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut data = Vec::new();
    for rec in rdr.records() {
        let rec = rec?;
        ids.push(rec[0].to_string());
        names.push(rec[1].to_string());
        for v in rec.iter().skip(2) {
            data.push(v.parse::<f32>()?);
        }
    }
    let classes: Vec<String> = {
        let mut c = names.clone();
        c.sort();
        c.dedup();
        c
    };
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let labels = names.iter().map(|n| index[n.as_str()]).collect();
    let x = Array2::from_shape_vec((ids.len(), d), data)?;
    Ok(Features {
        ids,
        labels,
        classes,
        x,
    })
}

fn split(args: &Args, f: &Features) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    if let Some(path) = &args.split {
        let mut set = HashMap::new();
        for rec in csv::Reader::from_path(path)?.records() {
            let rec = rec?;
            set.insert(rec[0].to_string(), rec[1].to_string());
        }
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (i, id) in f.ids.iter().enumerate() {
            match set.get(id).map(String::as_str) {
                Some("train") => train.push(i),
                Some("test") => test.push(i),
                Some(s) => anyhow::bail!("{}: unknown set {s:?} for {id}", path.display()),
                None => {}
            }
        }
        return Ok((train, test));
    }
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &l) in f.labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (_, mut items) in by_class {
        items.shuffle(&mut rng);
        let n_train = args.train_per_class.min(items.len());
        train.extend_from_slice(&items[..n_train]);
        let rest = &items[n_train..];
        test.extend_from_slice(&rest[..args.test_per_class.min(rest.len())]);
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok((train, test))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let t0 = Instant::now();
    let f = read_features(&args.features)?;
    let load_s = t0.elapsed().as_secs_f64();
    let (train, test) = split(&args, &f)?;
    let k = f.classes.len();
    let loss = match args.loss.as_str() {
        "squared-hinge" => Loss::SquaredHinge,
        "hinge" => Loss::Hinge,
        l => anyhow::bail!("unknown loss {l}"),
    };
    let grid: Vec<f64> = args
        .grid
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let svm = LinearSvmParams::new()
        .loss(loss)
        .eps(args.eps)
        .seed(args.seed)
        .check()?;
    let x_train = f.x.select(Axis(0), &train);
    let y_train: Vec<usize> = train.iter().map(|&i| f.labels[i]).collect();
    eprintln!(
        "loaded {} items x {} dims, {k} classes in {load_s:.1}s; {} train, {} test; {} threads",
        f.x.nrows(),
        f.x.ncols(),
        train.len(),
        test.len(),
        rayon::current_num_threads()
    );

    if args.binary_only {
        let y: Array1<bool> = y_train.iter().map(|&l| l == 0).collect();
        let ds = DatasetView::new(x_train.view(), y.view());
        let t = Instant::now();
        let m = LinearSvmParams::new()
            .loss(loss)
            .eps(args.eps)
            .seed(args.seed)
            .c(1.0)
            .fit(&ds)?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{{\"impl\": \"vggfeat\", \"mode\": \"binary\", \"n\": {}, \"d\": {}, \"fit_s\": {secs:.4}, \"iterations\": {}, \"n_support\": {}}}",
            x_train.nrows(),
            x_train.ncols(),
            m.iterations(),
            m.n_support()
        );
        return Ok(());
    }

    let t = Instant::now();
    // The hold-out (not the default k-fold): its split is written for the reference to reuse.
    let sel = SelectCParams::new()
        .validation(Validation::Holdout)
        .grid(grid)
        .seed(args.seed)
        .check()?
        .select_one_vs_rest(&svm, x_train.view(), &y_train, k)?;
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let x_test = f.x.select(Axis(0), &test);
    let y_test: Vec<usize> = test.iter().map(|&i| f.labels[i]).collect();
    let pred = sel.model.predict(x_test.view());
    let recall = mean_class_recall(&y_test, &pred, k)?;
    let test_s = t.elapsed().as_secs_f64();
    if let Some(p) = &args.write_split {
        let mut w = csv::Writer::from_path(p)?;
        w.write_record(["id", "set"])?;
        // The items the first validation round held out.
        let val: std::collections::HashSet<usize> = sel
            .folds
            .validated_in(0)
            .iter()
            .map(|&j| train[j])
            .collect();
        for &i in &train {
            w.write_record([
                f.ids[i].as_str(),
                if val.contains(&i) { "val" } else { "train" },
            ])?;
        }
        for &i in &test {
            w.write_record([f.ids[i].as_str(), "test"])?;
        }
        w.flush()?;
    }
    for s in &sel.scores {
        eprintln!(
            "C = {:<8} validation mean class recall {:.4}{}",
            s.c,
            s.score,
            if s.converged {
                ""
            } else {
                " (max_iter reached)"
            }
        );
    }
    let out = serde_json::json!({
        "impl": "vggfeat",
        "n_train": train.len(),
        "n_test": test.len(),
        "d": f.x.ncols(),
        "classes": k,
        "threads": rayon::current_num_threads(),
        "chosen_c": sel.c,
        "validation": sel.scores,
        "train_s": train_s,
        "test_s": test_s,
        "total_s": train_s + test_s,
        "mean_class_recall": recall.mean,
        "accuracy": recall.accuracy,
    });
    println!("{out}");
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}
