//! Network-only throughput of VGG-16 on this machine (random ImageNet-width weights; speed does
//! not depend on the values). Workloads match `scripts/bench_torch.py`: the classic 224x224 at
//! batch 8, and dense evaluation (fc8 score map) on square Q x Q inputs at batch 1.
//! Prints one JSON line per workload. Run through `scripts/bench_speed.sh`.
//!
//! `cargo run --release --example bench_net -- [--engine fast|candle] [--quick]`

use std::time::Instant;

use candle_core::{Device, Tensor};
use vggfeat::model::config::{ConfigName, LayerName};
use vggfeat::model::{Engine, InitScheme, Precision, RunOptions, Vgg, VggWeights};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engine: Engine = args
        .iter()
        .position(|a| a == "--engine")
        .map(|i| args[i + 1].parse().unwrap())
        .unwrap_or(Engine::Fast);
    let precision: Precision = args
        .iter()
        .position(|a| a == "--precision")
        .map(|i| args[i + 1].parse().unwrap())
        .unwrap_or_default();
    let quick = args.iter().any(|a| a == "--quick");
    let peak_q: Option<usize> = args
        .iter()
        .position(|a| a == "--peak-q")
        .map(|i| args[i + 1].parse().unwrap());
    let w = VggWeights::random(ConfigName::D, 1, Some(4096), 1000, InitScheme::He, 0).unwrap();
    let net = Vgg::new(w, &Device::Cpu, RunOptions { engine, precision }).unwrap();
    let name = match precision {
        Precision::F32 => format!("vggfeat-{engine:?}"),
        p => format!("vggfeat-{engine:?}-{p}"),
    };
    if let Some(q) = peak_q {
        // One image and its flip at Q x Q, as two batch-1 dense forwards; then report peak RSS.
        let x = Tensor::randn(0f32, 1.0, (1, 3, q, q), &Device::Cpu).unwrap();
        net.forward_to(&x, LayerName::Fc8).unwrap();
        net.forward_to(&x.flip(&[3]).unwrap(), LayerName::Fc8)
            .unwrap();
        println!(
            "{{\"impl\":\"{name}\",\"workload\":\"peak{q}\",\"peak_rss_mib\":{:.1}}}",
            peak_rss_mib()
        );
        return;
    }
    let workloads: &[(&str, usize, usize)] = if quick {
        &[("classic224", 2, 224)]
    } else {
        &[
            ("classic224", 8, 224),
            ("dense384", 1, 384),
            ("dense512", 1, 512),
        ]
    };
    let label = name;
    for &(name, batch, q) in workloads {
        let x = Tensor::randn(0f32, 1.0, (batch, 3, q, q), &Device::Cpu).unwrap();
        // warm-up
        net.forward_to(&x, LayerName::Fc8).unwrap();
        let reps = if quick { 1 } else { (16 / batch).clamp(2, 4) };
        let t = Instant::now();
        for _ in 0..reps {
            net.forward_to(&x, LayerName::Fc8).unwrap();
        }
        let secs = t.elapsed().as_secs_f64() / reps as f64;
        let ips = batch as f64 / secs;
        let plan = net.plan();
        let gflops = plan.flops(q, q, 0..plan.steps().len()) * batch as f64 / secs / 1e9;
        println!(
            "{{\"impl\":\"{label}\",\"workload\":\"{name}\",\"batch\":{batch},\"q\":{q},\"images_per_s\":{ips:.3},\"gflops\":{gflops:.1}}}"
        );
    }
}

/// Peak resident memory of this process (VmHWM), MiB.
fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
