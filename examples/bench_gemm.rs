//! Raw f32 GEMM throughput of the `gemm` crate on this machine (the limit for any method that
//! does every multiply), square 2048^3 and the shapes of VGG-16's conv layers as im2col GEMMs.
//! `cargo run --release --example bench_gemm`
use std::time::Instant;

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
}
