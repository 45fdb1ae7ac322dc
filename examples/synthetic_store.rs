//! Writes a synthetic feature store of N records of dimension D (one net, one scale, seeded
//! values), for measuring exports on stores larger than a real run here can make:
//! `cargo run --release --example synthetic_store -- OUT N D` (see scripts/export_memory.sh).

use rand::{Rng, SeedableRng};
use vggfeat::dataset::SourceKind;
use vggfeat::model::config::{ConfigName, LayerName};
use vggfeat::preprocess::Normalization;
use vggfeat::store::{FORMAT_VERSION, InputSpec, Manifest, NetSpec, Outcome, Record, StoreWriter};

fn main() -> vggfeat::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, n, d] = args.as_slice() else {
        eprintln!("usage: synthetic_store OUT N D");
        std::process::exit(2);
    };
    let (n, d): (usize, usize) = (n.parse().expect("N"), d.parse().expect("D"));
    let m = Manifest {
        format_version: FORMAT_VERSION,
        tool_version: "synthetic".into(),
        input: InputSpec::new("synthetic", SourceKind::Folder),
        nets: vec![NetSpec {
            weights: "synthetic".into(),
            sha256: "00".into(),
            config: ConfigName::D,
            layer: LayerName::Fc7,
            dim: d,
            preprocess: Normalization::Torchvision,
            precision: Default::default(),
        }],
        scales: vec![384],
        flip: true,
        max_pixels: 1,
    };
    let (mut w, _) = StoreWriter::create_or_resume(out.as_ref(), &m, 256)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    for i in 0..n {
        let v: Vec<f32> = (0..d).map(|_| rng.gen_range(0.0..1.0f32)).collect();
        w.push(Record {
            id: format!("class{:03}/img{i:07}.jpg", i % 100),
            labels: vec![format!("class{:03}", i % 100)],
            outcome: Outcome::Ok(v),
            source: None,
        })?;
    }
    w.flush()?;
    Ok(())
}
