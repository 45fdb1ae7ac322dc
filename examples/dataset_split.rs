//! Lists a dataset (class folders, VOC devkit or list file, detected from the path), prints its
//! classes and what was skipped, and for single-label data writes seeded Caltech-style splits
//! (30 train / up to 50 test per class) as `split<N>.csv` into an output folder.
//!
//! ```text
//! cargo run --example dataset_split -- ../shared/datasets/caltech101/101_ObjectCategories target/splits
//! ```

use std::path::PathBuf;

use vggfeat::dataset::{Dataset, SplitParams, sample_splits};

fn main() -> vggfeat::Result<()> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(input), out) = (args.next(), args.next()) else {
        eprintln!("usage: dataset_split <folder | VOC root | list file> [output folder]");
        std::process::exit(2);
    };
    let ds = Dataset::open(&input)?;
    println!(
        "{}: {}, {} images, {} classes, {} entries skipped",
        input.display(),
        ds.kind,
        ds.len(),
        ds.classes.len(),
        ds.skipped.len()
    );
    for (class, n) in ds.classes.iter().zip(ds.class_counts()) {
        println!("  {class:<24} {n}");
    }
    for s in ds.skipped.iter().take(10) {
        println!("  skipped {}: {}", s.path.display(), s.reason);
    }
    if let Some(out) = out {
        std::fs::create_dir_all(&out).map_err(|e| vggfeat::Error::io(&out, e))?;
        let params = SplitParams::default();
        for (s, split) in sample_splits(&ds, &params)?.iter().enumerate() {
            let file = out.join(format!("split{s}.csv"));
            split.write_csv(&ds, &file)?;
            println!(
                "{}: {} train, {} test",
                file.display(),
                split.train.len(),
                split.test.len()
            );
        }
    }
    Ok(())
}
