//! Times training steps (forward, backward, SGD update) of a narrow VGG on random inputs, to
//! size a CPU training run: `cargo run --release --example bench_train -- A 8 96 16`
//! (configuration, width divisor, crop, micro-batch, and optionally the engine: `auto`, the
//! default, `fast` or `candle`, and a layer to freeze through, e.g. `pool5`). Prints the median milliseconds per step of 10 (after a warm-up step) and images per second; the values
//! are random, the timing does not depend on them. `scripts/bench_train.sh` runs it beside the
//! same step in PyTorch.

use std::time::Instant;

use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use vggfeat::model::config::ConfigName;
use vggfeat::model::{Engine, InitScheme, VggWeights};
use vggfeat::train::Targets;
use vggfeat::train::net::TrainNet;
use vggfeat::train::optim::{GradAccum, OptimParams, Optimizer};

/// Timed steps after the first (a warm-up); the median is reported.
const STEPS: usize = 10;

fn main() -> vggfeat::Result<()> {
    // As `vggfeat train` does.
    vggfeat::train::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let config: ConfigName = arg(0, "A").parse()?;
    let div: usize = arg(1, "8").parse().expect("width divisor");
    let crop: usize = arg(2, "96").parse().expect("crop");
    let batch: usize = arg(3, "16").parse().expect("micro-batch");
    let engine: Engine = arg(4, "auto").parse()?;
    let frozen = match args.get(5) {
        Some(l) => vggfeat::train::net::frozen_layers(config, l.parse()?)?,
        None => Vec::new(),
    };
    let fc = 4096 / div;
    let w = VggWeights::random_with_fc6(config, div, Some(fc), crop / 32, 20, InitScheme::He, 0)?;
    let mut net = TrainNet::new(w, &Device::Cpu, frozen, 0.5, false)?;
    net.set_engine(engine)?;
    let mut opt = Optimizer::new(net.params().to_vec(), OptimParams::default())?;
    let x = Tensor::randn(0f32, 1.0, (batch, 3, crop, crop), &Device::Cpu)?;
    let targets = Targets::Classes((0..batch as u32).map(|i| i % 20).collect());
    let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut times = Vec::new();
    for i in 0..=STEPS {
        let t = Instant::now();
        let mut acc = GradAccum::new(opt.params().len());
        acc.add_grads(net.backprop(&x, &targets, Some(&mut rng), 1.0)?.grads)?;
        let t_grad = t.elapsed();
        opt.step(&acc)?;
        let dt = t.elapsed();
        if i > 0 {
            times.push(dt.as_secs_f64());
        }
        println!(
            "step {i}: {:.1} ms (forward and backward {:.1} ms)",
            dt.as_secs_f64() * 1e3,
            t_grad.as_secs_f64() * 1e3
        );
    }
    times.sort_by(f64::total_cmp);
    let mean = (times[(STEPS - 1) / 2] + times[STEPS / 2]) / 2.0;
    println!(
        "{config} /{div} crop {crop} batch {batch} ({}{}): {:.1} ms per step, {:.1} images/s",
        net.engine_used(),
        args.get(5)
            .map(|l| format!(", frozen through {l}"))
            .unwrap_or_default(),
        mean * 1e3,
        batch as f64 / mean
    );
    Ok(())
}
