//! The main job through the library alone, no command-line code: dense multi-scale descriptors
//! of a class-folder dataset (the first `PER_CLASS` images of the first `CLASSES` classes),
//! L2-normalised and stacked over the scales, then one-vs-rest linear SVMs with C chosen on a
//! hold-out of a seeded Caltech-style split, and the mean class recall on the split's test images.
//!
//! ```text
//! cargo run --release --example extract_and_svm -- DIR WEIGHTS [CLASSES [PER_CLASS]]
//! cargo run --release --example extract_and_svm -- \
//!     ../shared/datasets/caltech101/101_ObjectCategories \
//!     ../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors 5 20
//! ```
//!
//! The store is kept in `target/extract_and_svm/store` (a second run resumes it). Checkpoints
//! without fc layers (such as the HED conv weights) describe images by pool5, full networks by
//! fc7.

use std::path::PathBuf;

use linfa::ParamGuard;
use ndarray::Array2;
use vggfeat::dataset::{Dataset, SplitParams, sample_split};
use vggfeat::extract::{ExtractParams, Extractor, NetEntry};
use vggfeat::store::{InputSpec, Store, aggregate_store};
use vggfeat::{Aggregate, LinearSvmParams, SelectCParams, Vgg};

fn main() -> vggfeat::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(weights)) = (args.first(), args.get(1)) else {
        eprintln!("usage: extract_and_svm DIR WEIGHTS [CLASSES [PER_CLASS]]");
        std::process::exit(2);
    };
    let n_classes: usize = args.get(2).map_or(5, |s| s.parse().expect("CLASSES"));
    let per_class: usize = args.get(3).map_or(20, |s| s.parse().expect("PER_CLASS"));

    // The dataset: a few classes, the first images of each.
    let all = Dataset::open(dir.as_ref())?;
    let classes: Vec<String> = all.classes.iter().take(n_classes).cloned().collect();
    let ds = all.select_classes(&classes)?.limit_per_class(per_class);
    println!(
        "{} images of {} classes from {dir}",
        ds.len(),
        ds.classes.len()
    );

    // Extraction: one net, two scales with flips, into a resumable store.
    let net = Vgg::load(weights.as_ref(), &candle_core::Device::Cpu)?;
    let extractor = Extractor::new(vec![NetEntry::new(net, None, None)?])?;
    let store_dir = PathBuf::from("target/extract_and_svm/store");
    let input = InputSpec {
        root: vggfeat::extract::canonical_root(dir.as_ref()),
        kind: ds.kind,
        split: None,
        classes: Some(classes),
        limit_per_class: Some(per_class),
        shard: None,
        more: Vec::new(),
        table_root: None,
    };
    let params = ExtractParams {
        scales: vec![224, 288],
        ..ExtractParams::default()
    };
    let summary = extractor.run(ds.items.clone(), &store_dir, input, &params)?;
    println!(
        "extracted {} ({} already stored, {} failed) in {:.1} s",
        summary.extracted,
        summary.already_done,
        summary.failed.len(),
        summary.seconds
    );

    // Descriptors: per-scale L2, stacked, L2 again.
    let store = Store::open(&store_dir)?;
    let desc = aggregate_store(&store, Aggregate::Stack, &[0])?;
    let described = vggfeat::protocol::dataset_of(&store, &desc)?;

    // A seeded split: half of each class to train, the rest to test.
    let split = sample_split(
        &described,
        &SplitParams {
            train_per_class: per_class / 2,
            test_per_class: None,
            splits: 1,
            ..SplitParams::default()
        },
        0,
    )?;
    // Each split item's descriptor row, found by id.
    let rows = |items: &[usize]| {
        let at: Vec<usize> = items
            .iter()
            .map(|&i| {
                desc.ids
                    .binary_search(&described.items[i].id)
                    .expect("the dataset was made from these descriptors")
            })
            .collect();
        let d = desc.rows[0].len();
        Array2::from_shape_fn((at.len(), d), |(r, c)| desc.rows[at[r]][c])
    };
    let (xtr, xte) = (rows(&split.train), rows(&split.test));

    // One-vs-rest SVMs, C chosen on a stratified 20 % hold-out, retrained on the whole split.
    let svm = LinearSvmParams::new().check()?;
    let sel = SelectCParams::new().check()?.select_one_vs_rest(
        &svm,
        xtr.view(),
        &split.train_labels,
        split.classes.len(),
    )?;
    let pred = sel.model.predict(xte.view());
    let recall =
        vggfeat::metrics::mean_class_recall(&split.test_labels, &pred, split.classes.len())?;
    println!(
        "{} train / {} test images, C = {}: mean class recall {:.1} %",
        split.train.len(),
        split.test.len(),
        sel.c,
        100.0 * recall.mean
    );
    Ok(())
}
