//! Descriptors of a few images in memory, no store: the in-memory front door.
//!
//! ```text
//! cargo run --release --example describe -- WEIGHTS IMAGE...
//! cargo run --release --example describe -- \
//!     ../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors \
//!     ../shared/datasets/caltech101/101_ObjectCategories/Faces/image_0001.jpg
//! ```
//!
//! Prints the matrix shape as `N x D` (rows in input order, the scales 256, 384 and 512 stacked
//! and L2-normalised, the images averaged with their flips).

use vggfeat::{Extractor, ExtractorParams, Image};

fn main() -> vggfeat::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((weights, images)) = args.split_first().filter(|(_, i)| !i.is_empty()) else {
        eprintln!("usage: describe WEIGHTS IMAGE...");
        std::process::exit(2);
    };
    let extractor = Extractor::new(&ExtractorParams::new().weights([weights]).check()?)?;
    let images: Vec<Image> = images.iter().map(|p| Image::from(p.as_str())).collect();
    let x = extractor.describe(&images)?;
    println!("{} x {}", x.nrows(), x.ncols());
    Ok(())
}
