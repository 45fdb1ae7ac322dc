//! Writes a synthetic feature store of N records of dimension D (one net, one scale, seeded
//! values), for measuring exports and searches on stores larger than a real run here can make:
//! `cargo run --release --example synthetic_store -- OUT N D [CLUSTERS]` (see
//! scripts/export_memory.sh, scripts/bench_neighbours.sh, scripts/bench_index.sh).
//!
//! Without CLUSTERS the values are uniform in [0, 1): every pair of rows is at a cosine near
//! 0.75, the hardest case for an approximate index (no structure to find). With CLUSTERS, row `i`
//! is centre `i % CLUSTERS` (uniform [0, 1)) plus uniform noise of width 1, clipped at 0: groups
//! of similar rows, as real descriptors of photos of a few thousand kinds of things are.

use rand::{Rng, SeedableRng};
use vggfeat::dataset::SourceKind;
use vggfeat::model::config::{ConfigName, LayerName};
use vggfeat::preprocess::Normalization;
use vggfeat::store::{FORMAT_VERSION, InputSpec, Manifest, NetSpec, Outcome, Record, StoreWriter};

fn main() -> vggfeat::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (out, n, d, clusters) = match args.as_slice() {
        [_, out, n, d] => (out, n, d, 0),
        [_, out, n, d, c] => (out, n, d, c.parse::<usize>().expect("CLUSTERS")),
        _ => {
            eprintln!("usage: synthetic_store OUT N D [CLUSTERS]");
            std::process::exit(2);
        }
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
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..d).map(|_| rng.gen_range(0.0..1.0f32)).collect())
        .collect();
    for i in 0..n {
        let v: Vec<f32> = if clusters == 0 {
            (0..d).map(|_| rng.gen_range(0.0..1.0f32)).collect()
        } else {
            let c = &centres[i % clusters];
            c.iter()
                .map(|x| (x + rng.gen_range(-0.5..0.5f32)).max(0.0))
                .collect()
        };
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
