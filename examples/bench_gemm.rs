//! GEMM limits on this machine: the `gemm` crate's f32 throughput (square 2048^3 and the shapes
//! of VGG-16's conv layers as im2col GEMMs), then the fast engine's own micro-kernels in f32 and
//! bf16 (`vggfeat::model::gemm_probe`: weights packed as the engine packs them, operands in
//! cache, every thread busy) — the limits that "% of the limit" figures divide by, one per
//! precision — and the same kernels on a Winograd layer's shape with its 16 weight matrices
//! streaming from the cache, as a 512-channel layer runs them.
//! `cargo run --release --example bench_gemm`
use std::time::Instant;

use vggfeat::model::{Precision, gemm_probe};

fn run(m: usize, n: usize, k: usize, par: gemm::Parallelism) -> f64 {
    let a = vec![1.0f32; m * k];
    let b = vec![0.5f32; k * n];
    let mut c = vec![0f32; m * n];
    let mut go = || unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    };
    go();
    let reps = 3;
    let t = Instant::now();
    for _ in 0..reps {
        go();
    }
    2.0 * (m * n * k) as f64 * reps as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn main() {
    let threads = rayon::current_num_threads();
    // The limit for any method that does every multiply.
    println!(
        "{{\"gemm\":\"2048^3\",\"threads\":{threads},\"gflops\":{:.1}}}",
        run(2048, 2048, 2048, gemm::Parallelism::Rayon(threads))
    );
    for (name, m, n, k) in [
        ("conv1_2", 4096, 64, 576),
        ("conv2_2", 4096, 128, 1152),
        ("conv3_2", 4096, 256, 2304),
        ("conv4_2", 784, 512, 4608),
        ("conv5_2", 196 * 8, 512, 4608),
    ] {
        println!(
            "{{\"gemm\":\"{name} {m}x{n}x{k}\",\"threads\":{threads},\"gflops\":{:.1},\"single_thread_gflops\":{:.1}}}",
            run(m, n, k, gemm::Parallelism::Rayon(threads)),
            run(m, n, k, gemm::Parallelism::None)
        );
    }
    for p in [Precision::F32, Precision::Bf16] {
        for (name, shape, copies) in [
            ("limit 96x512x512", (96, 512, 512), 1),
            ("winograd 36x512x512 x16", (36, 512, 512), 16),
        ] {
            // The best of three: a limit, so noise from the shared machine only lowers it.
            let reps = 40 / copies;
            let best = |t| {
                (0..3)
                    .map(|_| gemm_probe(p, shape, copies, t, reps))
                    .reduce(|a, b| Ok(a?.max(b?)))
                    .expect("three runs")
            };
            match (best(threads), best(1)) {
                (Ok(all), Ok(one)) => println!(
                    "{{\"gemm\":\"vggfeat-{p} {name}\",\"threads\":{threads},\"gflops\":{all:.1},\"single_thread_gflops\":{one:.1}}}"
                ),
                (Err(e), _) | (_, Err(e)) => eprintln!("vggfeat-{p}: {e}"),
            }
        }
    }
}
