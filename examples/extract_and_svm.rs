//! The main job through the library's front door, no command-line code: dense multi-scale
//! descriptors of a class-folder dataset (the first `PER_CLASS` images of the first `CLASSES`
//! classes) into a resumable store, then one-vs-rest linear SVMs on a seeded split (half of each
//! class to train, C chosen by cross-validation) and the mean class recall on the rest.
//!
//! ```text
//! cargo run --release --example extract_and_svm -- DIR WEIGHTS [CLASSES [PER_CLASS]]
//! cargo run --release --example extract_and_svm -- \
//!     ../shared/datasets/caltech101/101_ObjectCategories \
//!     ../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors 5 20
//! ```
//!
//! The store is kept in `target/extract_and_svm/store` (a second run resumes it), the results in
//! `target/extract_and_svm/results`. Checkpoints without fc layers (such as the HED conv weights)
//! describe images by pool5, full networks by fc7.

use vggfeat::{Dataset, EvaluateOutcome as Outcome, EvaluateParams, ExtractParams, Extractor};
use vggfeat::{ExtractorParams, Silent, evaluate};

const STORE: &str = "target/extract_and_svm/store";
const RESULTS: &str = "target/extract_and_svm/results";

fn main() -> vggfeat::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(weights)) = (args.first(), args.get(1)) else {
        eprintln!("usage: extract_and_svm DIR WEIGHTS [CLASSES [PER_CLASS]]");
        std::process::exit(2);
    };
    let number = |i: usize, default: usize| args.get(i).map_or(default, |s| s.parse().unwrap());
    let (n_classes, per_class) = (number(2, 5), number(3, 20));
    // Descriptors: the first images of the first classes, at two scales with flips.
    let classes = Dataset::open(dir.as_ref())?.classes[..n_classes].to_vec();
    let nets = ExtractorParams::new().weights([weights]).scales([224, 288]);
    let job = ExtractParams::new().inputs([dir]).out(STORE);
    let job = job.classes(Some(classes)).limit_per_class(Some(per_class));
    let s = Extractor::new(&nets.check()?)?.extract(&job.check()?, &Silent)?;
    println!(
        "{} images extracted, {} failed",
        s.extracted,
        s.failed.len()
    );
    // One seeded split, half of each class to train; the scales stacked.
    let eval = EvaluateParams::new()
        .features([STORE])
        .out(RESULTS)
        .splits(1);
    let eval = eval.train_per_class(per_class / 2).test_per_class(None);
    if let Outcome::Caltech(o) = evaluate(&eval.check()?)?.outcome {
        let (c, recall) = (o.splits[0].c, 100.0 * o.recall.mean);
        println!("C = {c}: mean class recall {recall:.1} %");
    }
    Ok(())
}
